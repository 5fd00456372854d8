// SPDX-License-Identifier: MIT
// What the gateway holds for clients, against an upstream that never answers (/hang of
// upstream-fault.mjs): the per-upstream queue is bounded by max_queue (items over it get -32005
// at once, notifications counted like calls); a call nobody waits for any more — its client left,
// or its deadline passed — is dropped before it is sent and is not retried; and SIGTERM stops
// jrpcd after `drain` although the queue and the in-flight requests still hold calls, with every
// call answered. Each jrpcd here runs what one case needs; the queue figures come from the
// counters jrpcd logs when it stops.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HttpConn, buildRequest, decorate, rpc, call, batch, healthy, assertError } from './lib.mjs';
import { startGateway, upstreamReport, upstreamQueueReport } from './gateway-lib.mjs';
import { startFaultServer } from './upstream-fault.mjs';

const WAIT_MS = 10_000;

let fault;
const gateways = [];

before(async () => {
    fault = await startFaultServer();
});

after(async () => {
    for (const gw of gateways) await gw.kill();
    await fault?.close();
});

async function gateway(upstreams, args) {
    const gw = await startGateway(upstreams, { args });
    gateways.push(gw);
    return gw;
}

/** Requests the fault server got on `url` (path with its query). */
const seenAt = (url) => fault.requests.filter((r) => r.url === url);
const callsAt = (url) => seenAt(url).reduce((n, r) => n + r.n, 0);

/** Wait (bounded) until cond() holds; fail with what() otherwise. */
async function until(cond, what, timeout = WAIT_MS) {
    const deadline = Date.now() + timeout;
    while (!cond()) {
        if (Date.now() > deadline) assert.fail(`not within ${timeout} ms: ${what()}`);
        await new Promise((r) => setTimeout(r, 10));
    }
}

const items = (n, fn) => Array.from({ length: n }, (_, i) => fn(i));

/** One sample of jrpcd's /metrics on its admin listener (started with --admin-listen). */
async function sample(gw, name) {
    const m = /jrpcd admin listening on (\S+):(\d+)/.exec(gw.stdout());
    assert.ok(m, 'the admin listener is up');
    const r = await rpc({ host: m[1], port: Number(m[2]) }, undefined, { method: 'GET', path: '/metrics' });
    assert.equal(r.status, 200, r.body);
    const line = r.body.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(line, `${name} in the scrape`);
    return Number(line.slice(name.length + 1));
}

test('max_queue: a flood of notification batches queues at most max_queue calls; the rest get -32005', async () => {
    // One loop, one request in flight of 10 calls, 100 calls may wait: 50 batches of 1000
    // notifications would otherwise queue 50 000 calls behind a node that never answers.
    const MAX_QUEUE = 100, MAX_BATCH = 10, IN_FLIGHT = 1, BATCHES = 50, ITEMS = 1000;
    const gw = await gateway({
        flood: {
            urls: fault.url('/hang?flood'), methods: 'fl_*', max_queue: MAX_QUEUE,
            max_batch: MAX_BATCH, max_in_flight: IN_FLIGHT, timeout: '1h', retries: 0,
        },
    }, ['--io-threads', '1', '--drain', '1s', '--admin-listen', '127.0.0.1:0']);
    const body = batch(items(ITEMS, (i) => call('fl_note', [i])));
    const answers = await Promise.all(items(BATCHES, () => rpc(gw, body)));
    for (const r of answers) assert.equal(r.status, 204, r.body); // notifications: no answer

    // Calls with ids behind the full queue learn why at once, with the limit named, and each
    // counts once as a refusal at that limit (and as a refused item of the upstream).
    const LIMIT = 'jrpc_limit_rejections_total{limit="upstream_queue"}';
    const REFUSED = 'jrpc_upstream_items_total{upstream="flood",outcome="refused"}';
    // A notification batch is answered 204 before its items have all gone through the engine.
    // max_queue counts calls waiting, not the request in flight: when every flood batch is read
    // before the loop's first flush to the upstream, 100 calls are admitted, 10 of them then
    // leave the queue for the request in flight, and 10 places are free again. A top-up batch
    // after the flood has been flushed fills them; 110 flood calls are held either way.
    const waitRefused = async (n) => {
        for (const end = Date.now() + 60_000; (await sample(gw, REFUSED)) < n;) {
            if (Date.now() > end) assert.fail(`flood items refused: ${await sample(gw, REFUSED)} of ${n}`);
            await new Promise((r) => setTimeout(r, 20));
        }
    };
    const HELD = MAX_QUEUE + IN_FLIGHT * MAX_BATCH;
    await waitRefused(BATCHES * ITEMS - HELD);
    const topUp = await rpc(gw, batch(items(MAX_QUEUE, (i) => call('fl_note', [i]))));
    assert.equal(topUp.status, 204, topUp.body);
    await waitRefused(BATCHES * ITEMS + MAX_QUEUE - HELD);
    assert.equal(await sample(gw, REFUSED), BATCHES * ITEMS + MAX_QUEUE - HELD);
    const limitBefore = await sample(gw, LIMIT), refusedBefore = await sample(gw, REFUSED);
    assert.equal(limitBefore, refusedBefore, 'every refusal so far is counted under the limit');
    const r = await rpc(gw, batch(items(20, (i) => call('fl_call', [i], i))));
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.length, 20);
    r.json.forEach((item, i) => {
        assertError(item, -32005, i);
        assert.equal(item.error.message, `upstream flood: queue full (max_queue ${MAX_QUEUE})`);
    });
    assert.equal(await sample(gw, LIMIT) - limitBefore, 20);
    assert.equal(await sample(gw, REFUSED) - refusedBefore, 20);
    assert.equal(seenAt('/hang?flood').length, IN_FLIGHT, 'only the request in flight was sent');
    await healthy(gw);
    await gw.stop();

    // Calls that went into a free in-flight place at once never waited: the constant.
    const q = upstreamQueueReport(gw.stderr(), 'flood');
    assert.ok(q, gw.stderr());
    assert.equal(q.maxQueue, MAX_QUEUE);
    assert.ok(q.peak <= MAX_QUEUE + IN_FLIGHT * MAX_BATCH, JSON.stringify(q));
    assert.equal(q.refused, BATCHES * ITEMS + MAX_QUEUE + 20 - HELD, JSON.stringify(q));
    const s = upstreamReport(gw.stderr(), 'flood');
    assert.equal(s.items, IN_FLIGHT * MAX_BATCH, JSON.stringify(s));
});

test('a client that leaves: its queued calls are dropped, the one in flight is not retried', async () => {
    // A 1000-item batch, 10 calls per upstream request, 1 in flight, retries 1: without the
    // drop the upstream gets every chunk one after another (and each twice), long after the
    // client is gone.
    const gw = await gateway({
        leave: {
            urls: fault.url('/hang?leave'), methods: 'lv_*', max_batch: 10, max_in_flight: 1,
            timeout: '1s', retries: 1,
        },
    }, ['--io-threads', '1']);
    const conn = await HttpConn.open(gw);
    await conn.write(buildRequest(gw, { body: batch(items(1000, (i) => call('lv_get', [i], i))) }));
    await until(() => seenAt('/hang?leave').length >= 1, () => 'the first chunk never reached the upstream');
    conn.sock.resetAndDestroy(); // the client leaves (RST: a FIN would still want the answer)
    // The first attempt ends at the upstream timeout; a retry or the next chunk would follow at once.
    await until(() => seenAt('/hang?leave').every((r) => r.closed), () => 'jrpcd kept the request open');
    await healthy(gw);
    await gw.stop();
    const got = callsAt('/hang?leave');
    assert.ok(got <= 10 + 10, `the upstream got ${got} calls: more than the in-flight share and one chunk`);
    const q = upstreamQueueReport(gw.stderr(), 'leave');
    const s = upstreamReport(gw.stderr(), 'leave');
    assert.ok(q.dropped >= 1000 - got, JSON.stringify(q));
    assert.equal(s.retries, 0, JSON.stringify(s));
});

test('deadline: notifications past their deadline are neither sent nor retried', async () => {
    // Notifications are not dropped when their client leaves (their effects are still wanted),
    // only once their deadline (1 s) passed. The first chunk's attempt ends at the upstream
    // timeout (1.5 s), after the deadline: anything the upstream gets after it was sent late.
    const gw = await gateway({
        late: {
            urls: fault.url('/hang?late'), methods: 'dl_*', max_batch: 10, max_in_flight: 1,
            timeout: '1500ms', retries: 1,
        },
    }, ['--io-threads', '1', '--deadline', '1s']);
    const r = await rpc(gw, batch(items(1000, (i) => call('dl_note', [i]))));
    assert.equal(r.status, 204, r.body);
    await until(() => seenAt('/hang?late').length >= 1 && seenAt('/hang?late').every((x) => x.closed),
        () => `requests seen: ${JSON.stringify(seenAt('/hang?late').map((x) => x.closed))}`);
    await healthy(gw);
    await gw.stop();
    assert.equal(seenAt('/hang?late').length, 1, 'nothing was sent after the deadline');
    assert.equal(callsAt('/hang?late'), 10);
    const q = upstreamQueueReport(gw.stderr(), 'late');
    assert.equal(q.dropped, 1000, JSON.stringify(q));
});

test('max_in_flight: requests go out together to a plain-HTTP node that has not answered yet', async () => {
    // curl's wait for a connection that may multiplex (HTTP/2) is for https only: over http it
    // held every request back until the node's first answer.
    const gw = await gateway({
        par: { urls: fault.url('/hang?par'), methods: 'par_*', max_batch: 10, max_in_flight: 4, timeout: '1h' },
    }, ['--io-threads', '1', '--drain', '1s']);
    const conn = await HttpConn.open(gw);
    await conn.write(buildRequest(gw, { body: batch(items(60, (i) => call('par_get', [i], i))) }));
    await until(() => seenAt('/hang?par').length >= 4,
        () => `${seenAt('/hang?par').length} of 4 requests in flight reached the node`);
    await healthy(gw);
    const answer = conn.readResponse({ timeout: WAIT_MS }).then(decorate);
    await gw.stop();
    assert.equal((await answer).json.length, 60);
    assert.equal(seenAt('/hang?par').length, 4, 'no more than max_in_flight');
    conn.close();
});

test('SIGTERM with calls queued and in flight: jrpcd exits after drain, every call answered', async () => {
    const gw = await gateway({
        sd: {
            urls: fault.url('/hang?shutdown'), methods: 'sd_*', max_batch: 10, max_in_flight: 2,
            timeout: '1h',
        },
    }, ['--io-threads', '2', '--drain', '1s']);
    // A 300-item batch (30 chunks, most of them queued), single calls on connections of their
    // own, and a batch of notifications, all held by the gateway.
    const conns = [];
    const open = async (body) => {
        const c = await HttpConn.open(gw);
        await c.write(buildRequest(gw, { body }));
        conns.push(c);
    };
    await open(batch(items(300, (i) => call('sd_get', [i], i))));
    for (let i = 0; i < 6; i++) await open(call('sd_one', [i], `one-${i}`));
    const notes = await rpc(gw, batch(items(100, (i) => call('sd_note', [i]))));
    assert.equal(notes.status, 204);
    // Requests on the wire (one per loop at most): everything else is queued behind them.
    await until(() => seenAt('/hang?shutdown').length >= 1, () => 'nothing reached the upstream');
    await healthy(gw);
    const answers = conns.map((c) => c.readResponse({ timeout: WAIT_MS }).then(decorate));
    await gw.stop(); // SIGTERM; asserts exit code 0 within its bound
    const got = await Promise.all(answers);
    const isAnswer = (item, id) => {
        assert.ok(item.error?.code === -32000 || item.error?.code === -32002, JSON.stringify(item));
        assert.deepEqual(item.id, id);
    };
    assert.equal(got[0].status, 200);
    assert.equal(got[0].json.length, 300);
    got[0].json.forEach((item, i) => isAnswer(item, i));
    for (let i = 0; i < 6; i++) isAnswer(got[1 + i].json, `one-${i}`);
    assert.ok(got.flatMap((g) => (Array.isArray(g.json) ? g.json : [g.json]))
        .some((item) => item.error.message === 'server shutting down'), 'the gateway answered');
    for (const c of conns) c.close();
});
