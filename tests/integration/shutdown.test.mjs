// SPDX-License-Identifier: MIT
// Graceful shutdown and disconnects (issue 6): SIGTERM with batches in flight on worker and
// async handlers, an idle keep-alive connection closed, new connections refused, exit 0 long
// before the drain time; what --drain does to a handler that outlives it; a second SIGTERM
// leaving at once; and a client that hangs up mid-batch while its calls still run to the end.
//
// "Has the batch started?" is observed through message@create, whose ids only grow: a probe
// call's id tells how many messages were created since the last probe, or through testkit holds
// (test.hold, test.hold_async: handlers that return only when released, by test.release or, once
// jrpcd takes no connections, by SIGUSR2). No sleeps: every wait is for a condition, with a
// bound, and no assertion says how soon something must happen. "Before X" is shown by X being
// impossible yet (a hold not released, a drain far longer than the bound on the wait).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
    startServer, healthy, rpc, call, batch, HttpConn, buildRequest, decorate, assertResult, waitHeld,
} from './lib.mjs';

const BOUND_MS = 10_000; // generous bound for any condition (ASan builds are slow)

/** The id message@create hands out next, minus one (it creates one message). */
async function probe(server) {
    const r = await rpc(server, call('message@create', ['probe'], 'probe'));
    assert.equal(r.status, 200, r.body);
    assert.equal(typeof r.json?.result?.id, 'number', r.body);
    return r.json.result.id;
}

/**
 * A counter of messages created by others: since() says how many message@create calls other
 * than our probes ran after the counter was made.
 */
async function createCounter(server) {
    const base = await probe(server);
    let probes = 0;
    return {
        async since() {
            const id = await probe(server);
            probes++;
            return id - base - probes;
        },
        /** Resolve once at least n messages were created by others; fail after `ms`. */
        async waitFor(n, ms = BOUND_MS) {
            const deadline = Date.now() + ms;
            let got;
            while ((got = await this.since()) < n) {
                if (Date.now() > deadline) assert.fail(`only ${got} of ${n} messages created within ${ms} ms`);
            }
            return got;
        },
    };
}

/** 'refused' | 'closed' (accepted, then closed without an answer) | 'answered' */
function tryRequest(server) {
    return new Promise((resolve) => {
        const sock = net.connect({ host: server.host, port: server.port });
        let got = '';
        const timer = setTimeout(() => { sock.destroy(); resolve('hung'); }, BOUND_MS);
        const done = (v) => { clearTimeout(timer); sock.destroy(); resolve(v); };
        sock.on('connect', () => sock.write(buildRequest(server, { body: call('tennis@ping', undefined, 'late') })));
        sock.on('data', (d) => { got += d.toString('latin1'); if (got.includes('pong')) done('answered'); });
        sock.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'closed'));
        sock.on('close', () => done(got.includes('pong') ? 'answered' : 'closed'));
    });
}

/** Retry until new connections are refused (the listener is closed); fail past the bound. */
async function waitRefused(server, ms = BOUND_MS) {
    const deadline = Date.now() + ms;
    const seen = [];
    for (;;) {
        const r = await tryRequest(server);
        if (r === 'refused') return seen;
        seen.push(r);
        assert.notEqual(r, 'hung', 'a new connection after SIGTERM hung');
        if (Date.now() > deadline) assert.fail(`new connections still accepted ${ms} ms after SIGTERM: ${seen.join(',')}`);
    }
}

/** Wait (bounded) for the process to exit; resolves { code, signal, ms } from `t0`. */
async function exitWithin(server, ms, t0) {
    let timer;
    const res = await Promise.race([
        server.waitExit(),
        new Promise((resolve) => { timer = setTimeout(() => resolve(null), ms); }),
    ]);
    clearTimeout(timer);
    if (!res) {
        await server.kill();
        assert.fail(`jrpcd still running ${ms} ms after SIGTERM; stderr:\n${server.stderr()}`);
    }
    return { ...res, ms: performance.now() - t0 };
}

test('SIGTERM with a batch in flight: answered whole, idle connection closed, new ones refused, exit 0 before the drain ends', async () => {
    // Six times the bound on every wait below: the idle close, the refusal and the exit seen
    // within BOUND_MS cannot be the drain running out.
    const DRAIN_MS = 60_000;
    const srv = await startServer(['--drain', `${DRAIN_MS}ms`, '--io-threads', '2']);
    try {
        // An idle keep-alive connection that has been used once.
        const idle = await HttpConn.open(srv);
        assertResult((await idle.request(srv, { body: call('tennis@ping', undefined, 'i') })).json, 'pong', 'i');

        // The batch: worker and async sleeps, an inline call, and a create that shows it started.
        const counter = await createCounter(srv);
        const busy = await HttpConn.open(srv);
        await busy.write(buildRequest(srv, {
            body: batch([
                call('test.sleep', [300], 1), call('test.sleep_async', [300], 2), call('tennis@ping', undefined, 3),
                call('test.worker_echo', ['w'], 4), call('message@create', ['in flight'], 5),
            ]),
        }));
        await counter.waitFor(1);

        const t0 = performance.now();
        srv.proc.kill('SIGTERM');

        await idle.waitClosed(BOUND_MS); // closed by the server, not by us
        assert.equal(idle.buf.length, 0, `nothing sent on the idle connection: ${idle.buf.toString('latin1')}`);
        await waitRefused(srv);

        const r = decorate(await busy.readResponse({ timeout: BOUND_MS }));
        assert.equal(r.status, 200, r.head);
        assert.equal(r.json.length, 5, r.body);
        assertResult(r.json[0], 300, 1);
        assertResult(r.json[1], 300, 2);
        assertResult(r.json[2], 'pong', 3);
        assertResult(r.json[3], ['w'], 4);
        assert.equal(r.json[4].id, 5);
        assert.equal(r.json[4].result?.text, 'in flight', r.body);
        assert.equal((r.headers.connection ?? '').toLowerCase(), 'close', `the last answer says Connection: close: ${r.head}`);
        await busy.waitClosed(BOUND_MS);

        const ex = await exitWithin(srv, BOUND_MS, t0);
        assert.deepEqual([ex.code, ex.signal], [0, null], srv.stderr());
    } finally {
        await srv.kill();
    }
});

test('SIGTERM with pipelined requests: those received are answered in order, the connection then closes', async () => {
    const srv = await startServer(['--drain', '5s']);
    try {
        const counter = await createCounter(srv);
        const conn = await HttpConn.open(srv);
        await conn.write(Buffer.concat([
            buildRequest(srv, { body: call('test.sleep_async', [200], 1) }),
            buildRequest(srv, { body: call('test.sleep', [100], 2) }),
            buildRequest(srv, { body: call('message@create', ['p'], 3) }),
        ]));
        await counter.waitFor(1); // the third request has been read and run
        const t0 = performance.now();
        srv.proc.kill('SIGTERM');
        const res = (await conn.readResponses(3, { timeout: BOUND_MS })).map(decorate);
        assertResult(res[0].json, 200, 1);
        assertResult(res[1].json, 100, 2);
        assert.equal(res[2].json.id, 3, res[2].body);
        await conn.waitClosed(BOUND_MS);
        const ex = await exitWithin(srv, BOUND_MS, t0);
        assert.deepEqual([ex.code, ex.signal], [0, null], srv.stderr());
    } finally {
        await srv.kill();
    }
});

// What the library documents (include/jrpc.h, jrpc_server_stop): once drain_ms is over,
// everything still running is answered -32000 "server shutting down", those answers are
// written, connections close and jrpc_server_run returns, also while handlers never reply. With
// --drain 200ms, a hold nothing releases and a sleep far longer than the bound below, the client
// gets both answers and jrpcd exits 0 within the bound, saying on stderr that handlers never
// replied. (Before, jrpcd closed the connection without an answer and never exited while the
// hold waited.)
for (const [hold, sleep] of [['test.hold', 'test.sleep'], ['test.hold_async', 'test.sleep_async']]) {
    test(`--drain 200ms with ${hold} and ${sleep} in flight: both answered -32000, exit 0 without waiting for them`, async () => {
        const SLEEP_MS = 10 * BOUND_MS; // returns long after any exit the test accepts
        const srv = await startServer(['--drain', '200ms']);
        try {
            const conn = await HttpConn.open(srv);
            await conn.write(buildRequest(srv, { body: batch([call(hold, undefined, 1), call(sleep, [SLEEP_MS], 2)]) }));
            await waitHeld(srv, 1);

            const t0 = performance.now();
            srv.proc.kill('SIGTERM');
            const [res] = (await conn.readResponses(1, { timeout: BOUND_MS })).map(decorate);
            const answeredMs = performance.now() - t0;
            assert.equal(res.status, 200, res.body);
            assert.deepEqual(res.json.map((x) => [x.id, x.error?.code, x.error?.message]),
                [[1, -32000, 'server shutting down'], [2, -32000, 'server shutting down']], res.body);
            assert.match(res.headers.connection ?? '', /close/i);
            assert.ok(answeredMs >= 150, `answered ${answeredMs.toFixed(0)} ms after SIGTERM, before the 200 ms drain`);
            await conn.waitClosed(BOUND_MS);
            assert.equal(await tryRequest(srv), 'refused', 'listener closed during the drain');

            // Nothing releases the hold and the sleep outlasts the bound: any exit is the drain's.
            const ex = await exitWithin(srv, BOUND_MS, t0);
            assert.deepEqual([ex.code, ex.signal], [0, null], srv.stderr());
            assert.match(srv.stderr(), /handlers never replied/);
        } finally {
            await srv.kill();
        }
    });
}

test('a second SIGTERM exits at once with status 1 while held handlers wait', async () => {
    const srv = await startServer(); // default drain: 10 s
    try {
        const conn = await HttpConn.open(srv);
        await conn.write(buildRequest(srv, {
            body: batch([call('test.hold', undefined, 1), call('test.hold_async', undefined, 2)]),
        }));
        await waitHeld(srv, 2);

        srv.proc.kill('SIGTERM');
        await waitRefused(srv); // the first signal has been acted on
        assert.equal(srv.exited, null, 'still draining after the first SIGTERM');
        const t0 = performance.now();
        srv.proc.kill('SIGTERM');
        // Nothing releases the holds, so a jrpcd that waited for its handlers never exits: any
        // exit within the bound is the second signal's.
        const ex = await exitWithin(srv, BOUND_MS, t0);
        assert.deepEqual([ex.code, ex.signal], [1, null], `exit after the second SIGTERM; stderr:\n${srv.stderr()}`);
        assert.match(srv.stderr(), /signal again: exiting now/);
        conn.close();
    } finally {
        await srv.kill();
    }
});

test('a client that closes mid-batch: every call still runs to the end, the server stays healthy', async () => {
    // batch_concurrency 2: the batch runs two items at a time, so the creates after the sleeps
    // can only start once the worker and async sleeps have finished — after the client left.
    const srv = await startServer(['--batch-concurrency', '2']);
    try {
        const counter = await createCounter(srv);
        const conn = await HttpConn.open(srv);
        await conn.write(buildRequest(srv, {
            body: batch([
                call('message@create', ['first'], 1),
                call('test.sleep', [300], 2), call('test.sleep_async', [300], 3),
                call('message@create', ['after the sleeps'], 4),
                call('test.sleep', [100], 5), call('test.sleep_async', [100], 6),
                call('message@create', ['last'], 7),
                call('message@create', ['a notification at the very end']),
            ]),
        }));
        await counter.waitFor(1); // the first item ran: the sleeps are starting now
        conn.close();
        const got = await counter.waitFor(4);
        assert.equal(got, 4, 'each create ran exactly once');

        // The same with the client gone before any item finishes, on one call.
        const single = await HttpConn.open(srv);
        await single.write(buildRequest(srv, { body: batch([call('test.sleep_async', [200], 1), call('message@create', ['s'], 2)]) }));
        await counter.waitFor(5);
        single.close();

        await healthy(srv);
        const r = await rpc(srv, batch([call('test.sleep', [10], 1), call('test.sleep_async', [10], 2)]));
        assert.deepEqual(r.json.map((x) => x.result), [10, 10]);
        await srv.stop({ timeout: BOUND_MS }); // exit 0; under build-asan: nothing leaked
    } finally {
        await srv.kill();
    }
});
