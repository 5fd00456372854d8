// SPDX-License-Identifier: MIT
// Server push over WebSocket: subscriptions in the shape Ethereum clients use (testkit's
// test.subscribe / test.unsubscribe over jrpc_sub_*), notifications from a worker thread
// (jrpc_conn_notify), the answer-before-pushes order, and the server-side cleanup when a client
// unsubscribes or goes away (testkit's test.subscriptions counts subscriptions whose end_cb has
// not run yet).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, withServer, healthy, call, batch, rpc, assertError, assertResult } from './lib.mjs';
import { WsClient, waitFor, withWs } from './wslib.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.kill(); });

const ID = /^0x[0-9a-f]{32}$/;

async function liveSubs(server) {
    const r = await rpc(server, call('test.subscriptions', undefined, 1));
    return r.json.result;
}

/** Subscribes on a connection that may hold other subscriptions already: their pushes can come
 * before this answer (they run on their own timers), so they are read past. Returns the new id. */
async function subscribeAmidPushes(ws, params, id) {
    await ws.send(call('test.subscribe', params, id));
    for (;;) {
        const m = await ws.nextJson();
        if (m.id === id) return m.result;
        assert.equal(m.method, 'test_subscription', JSON.stringify(m));
    }
}

/** Read messages until `n` pushes for subscription `id` arrived; returns their results. */
async function pushesFor(ws, id, n) {
    const out = [];
    while (out.length < n) {
        const m = await ws.nextJson();
        assert.equal(m.method, 'test_subscription', JSON.stringify(m));
        assert.ok(!('id' in m), 'a push is a notification');
        assert.equal(m.params.subscription, id);
        out.push(m.params.result);
    }
    return out;
}

test('subscribe: the id comes first, then pushes {subscription, result} in order', async () => {
    await withWs(srv, async (ws) => {
        const a = await ws.call('test.subscribe', [20], 'sub');
        assert.match(a.result, ID);
        const got = await pushesFor(ws, a.result, 5);
        assert.deepEqual(got, [1, 2, 3, 4, 5]);
        const m = (await ws.next()).text;
        assert.match(m, new RegExp(`^\\{"jsonrpc":"2\\.0","method":"test_subscription","params":\\{"subscription":"${a.result}","result":6\\}\\}$`),
            'the exact shape Ethereum clients parse');
    });
});

test('unsubscribe: true, the pushes stop, the server ends the subscription; unknown ids are refused', async () => {
    await withWs(srv, async (ws) => {
        const before = await liveSubs(srv);
        const { result: id } = await ws.call('test.subscribe', [20], 1);
        await pushesFor(ws, id, 2);
        await waitFor(async () => (await liveSubs(srv)) === before + 1, { what: 'the subscription counted' });
        await ws.send(call('test.unsubscribe', [id], 'u'));
        // Pushes already on their way may precede the answer; none may follow it.
        for (;;) {
            const m = await ws.nextJson();
            if (m.id === 'u') {
                assertResult(m, true, 'u');
                break;
            }
            assert.equal(m.params?.subscription, id, JSON.stringify(m));
        }
        const after = await ws.untilProbe();   // anything between the answer and a fresh ping
        assert.deepEqual(after, [], 'no push after the unsubscribe answer');
        await waitFor(async () => (await liveSubs(srv)) === before, { what: 'end_cb ran (timer stopped)' });
        assertError(await ws.call('test.unsubscribe', [id], 'again'), -32000, 'again');
        assertError(await ws.call('test.unsubscribe', ['0x00000000000000000000000000000000'], 'x'), -32000, 'x');
        assertError(await ws.call('test.unsubscribe', [1], 'bad'), -32602, 'bad');
    });
});

test('closing the connection ends its subscriptions on the server', async () => {
    const before = await liveSubs(srv);
    for (const how of ['close', 'terminate']) {
        const ws = await WsClient.open(srv);
        const subs = [];
        for (let i = 0; i < 3; i++) subs.push(await subscribeAmidPushes(ws, [10], i));
        assert.equal(new Set(subs).size, 3, 'each subscription has its own id');
        await waitFor(async () => (await liveSubs(srv)) === before + 3, { what: 'three subscriptions live' });
        if (how === 'close') {
            ws.close(1000);
            await ws.closed();
        } else {
            ws.terminate(); // no close handshake: the server learns from the TCP end
        }
        await waitFor(async () => (await liveSubs(srv)) === before, { what: `cleanup after ${how}` });
    }
});

test('two subscriptions on one connection are independent', async () => {
    await withWs(srv, async (ws) => {
        const { result: a } = await ws.call('test.subscribe', [15], 1);
        // a pushes every 15 ms: its pushes may come before the second answer (a slow build).
        await ws.send(call('test.subscribe', [15], 2));
        let b;
        while (b === undefined) {
            const m = await ws.nextJson();
            if (m.id === 2) b = m.result;
            else assert.equal(m.params?.subscription, a, JSON.stringify(m));
        }
        assert.notEqual(a, b);
        await ws.send(call('test.unsubscribe', [a], 'u'));
        // After the answer, only b's pushes arrive.
        for (;;) {
            const m = await ws.nextJson();
            if (m.id === 'u') break;
        }
        const seen = new Set();
        for (let i = 0; i < 6; i++) seen.add((await ws.nextJson()).params.subscription);
        assert.deepEqual([...seen], [b]);
    });
});

test('pushes made before the subscribe answer went out wait for it (worker thread, in a batch)', async () => {
    await withWs(srv, async (ws) => {
        // The worker pushes 0 … 199 right after starting the subscription: the loop may see the
        // pushes before the answer; the client must still get the id first.
        const a = await ws.call('test.subscribe_burst', [200], 'burst');
        assert.match(a.result, ID);
        assert.deepEqual(await pushesFor(ws, a.result, 200), Array.from({ length: 200 }, (_, i) => i));

        // Inside a batch the answer waits for the slowest item; so do the pushes.
        await ws.send(batch([call('test.subscribe_burst', [5], 'b1'), call('test.sleep_async', [200], 'b2')]));
        const answer = await ws.nextJson();
        assert.ok(Array.isArray(answer), `the batch answer first: ${JSON.stringify(answer)}`);
        assert.equal(answer[0].id, 'b1');
        assert.deepEqual(await pushesFor(ws, answer[0].result, 5), [0, 1, 2, 3, 4]);
    });
});

test('a subscription whose id never reaches the client ends at once: its call timed out, or was a notification', async () => {
    await withServer(['--deadline', '100ms'], async (s) => {
        const subscribed = async () => (await rpc(s, call('test.subscribed', undefined, 1))).json.result;
        await withWs(s, async (ws) => {
            // The subscription starts 300 ms in (from a timer on the loop), long after the
            // -32002: the client never learns its id and could never unsubscribe, so it ends as
            // soon as it starts instead of pushing until the connection closes.
            assertError(await ws.call('test.subscribe', [20, 300], 'late'), -32002, 'late');
            await waitFor(async () => (await subscribed()) === 1, { what: 'the late subscription' });
            await waitFor(async () => (await liveSubs(s)) === 0, { what: 'the late subscription ended' });
            // A subscribe sent as a notification gets no answer, so no id either.
            await ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'test.subscribe', params: [20] }));
            await waitFor(async () => (await subscribed()) === 2, { what: 'the notification subscription' });
            await waitFor(async () => (await liveSubs(s)) === 0, { what: 'it ended' });
            // Whatever pushes slipped out before the end, the connection answers and nothing more
            // comes after the probe's answer.
            const before = await ws.untilProbe();
            for (const m of before) assert.equal(m.method, 'test_subscription', JSON.stringify(m));
            assertResult(await ws.call('tennis@ping', undefined, 'alive'), 'pong', 'alive');

            // The same from a worker thread: a subscription started there after the timeout.
            assertError(await ws.call('test.subscribe_burst', [3, 300], 'late2'), -32002, 'late2');
            // The client leaves while a worker is about to subscribe on its connection.
            const gone = await WsClient.open(s);
            await gone.send(call('test.subscribe_burst', [3, 50], 'gone'));
            gone.terminate();
            const rest = await ws.untilProbe();
            for (const m of rest) assert.equal(m.method, 'test_subscription', JSON.stringify(m));
        });
    });
});

test('notifications from a worker thread (jrpc_conn_notify) arrive in order', async () => {
    await withWs(srv, async (ws) => {
        await ws.send(call('test.push', [1000], 'p'));
        const seen = [];
        let answer;
        while (seen.length < 1000 || !answer) {
            const m = await ws.nextJson();
            if (m.id === 'p') answer = m;
            else {
                assert.equal(m.method, 'test_push');
                assert.ok(!('id' in m));
                seen.push(m.params[0]);
            }
        }
        assertResult(answer, 1000, 'p');
        assert.deepEqual(seen, Array.from({ length: 1000 }, (_, i) => i));
    });
});

// A handler's pushes and its reply travel one queue to the connection's loop, in the order they
// were made: the reply is always the message after the last push (two queues let it overtake).
test('pushes made before the reply arrive before it, 100 runs of 200 pushes', async () => {
    await withWs(srv, async (ws) => {
        for (let run = 0; run < 100; run++) {
            await ws.send(call('test.push', [200], run));
            let pushes = 0;
            for (;;) {
                const m = await ws.nextJson();
                if (m.method === 'test_push') {
                    assert.equal(m.params[0], pushes, `run ${run}: push order`);
                    pushes++;
                    continue;
                }
                assertResult(m, 200, run);
                break;
            }
            assert.equal(pushes, 200, `run ${run}: the reply came after ${pushes} of 200 pushes`);
        }
    });
});

test('over HTTP there is nothing to push to: subscribe and push answer -32601', async () => {
    let r = await rpc(srv, call('test.subscribe', [10], 1));
    assertError(r.json, -32601, 1);
    assert.match(r.json.error.message, /notifications not supported/);
    r = await rpc(srv, call('test.push', [1], 2));
    assertError(r.json, -32601, 2);
    r = await rpc(srv, call('test.unsubscribe', ['0x00'], 3));
    assertError(r.json, -32601, 3);
});

test('subscriptions alive at shutdown end cleanly (the server exits 0)', async () => {
    const s = await startServer();
    try {
        const ws = await WsClient.open(s);
        const { result: id } = await ws.call('test.subscribe', [5], 1);
        await pushesFor(ws, id, 3);
        await ws.send(call('test.subscribe_burst', [3], 2));
        s.proc.kill('SIGTERM');
        const info = await ws.closed();
        assert.equal(info.code, 1001);
        assert.equal((await s.waitExit()).code, 0, s.stderr());
    } finally {
        await s.kill();
    }
});

test('server still healthy, no subscription left, SIGTERM exits 0', async () => {
    await waitFor(async () => (await liveSubs(srv)) === 0, { what: 'no live subscription' });
    await healthy(srv);
    await srv.stop();
});
