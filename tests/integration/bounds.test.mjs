// SPDX-License-Identifier: MIT
// What one client can pin (docs/security.md, "Bounds on what clients hold"): work counts against
// its connection's bounds until it finishes, also after its answer went; the server-wide bounds
// max_inflight and max_memory refuse new items with -32005 (HTTP 503 when nothing could be
// admitted) while the connection that holds memory is the one that waits; an HTTP client that
// does not read its answers stops being read past max_unsent. Each test fails on a server that
// lacks the bound: the counts it asserts come from the testkit (calls asleep or held at once),
// not from timing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
    startServer, healthy, rpc, call, batch, HttpConn, buildRequest, decorate, held,
} from './lib.mjs';
import { WsClient, waitFor } from './wslib.mjs';

const BOUND_MS = 20_000; // generous bound for any condition (ASan builds are slow)

/** The most test.sleep / test.sleep_async calls asleep at once since the last query. */
async function sleepPeak(srv) {
    const r = await rpc(srv, call('test.sleep_peak', undefined, 'peak'));
    assert.equal(typeof r.json?.result, 'number', r.body);
    return r.json.result;
}

function rssKiB(pid) {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]);
}

const notifications = (n, method, params) => batch(Array.from({ length: n }, () => call(method, params)));

test('HTTP: pipelined batches of notifications count against max_body until their calls finish', async () => {
    // 100 notifications of test.sleep_async [20] are ~6 KB and answered 204 at once; their calls
    // run on. With max_body 60 KB the connection may hold at most ~11 such requests at a time,
    // batch_concurrency 4 runs 4 calls of each: at most ~44 asleep at once. A server that
    // stops counting a request once it is answered runs all 150 requests at once (600 asleep).
    const REQUESTS = 60, ITEMS = 100, CONC = 4;
    const srv = await startServer(['--max-body', '60KB', '--batch-concurrency', String(CONC)]);
    try {
        const body = notifications(ITEMS, 'test.sleep_async', [20]);
        const bound = Math.ceil(60_000 / body.length) + 1;
        await sleepPeak(srv); // start the count
        const conn = await HttpConn.open(srv);
        const one = buildRequest(srv, { body });
        await conn.write(Buffer.concat(Array.from({ length: REQUESTS }, () => one)));
        // Others are served meanwhile.
        await healthy(srv);
        const res = await conn.readResponses(REQUESTS, { timeout: BOUND_MS });
        assert.deepEqual([...new Set(res.map((r) => r.status))], [204]);
        const peak = await sleepPeak(srv);
        assert.ok(peak > 0, 'the calls ran');
        assert.ok(peak <= bound * CONC, `${peak} calls asleep at once; the bound allows ${bound} requests × ${CONC}`);
        conn.close();
        await healthy(srv);
    } finally {
        await srv.kill();
    }
});

test('WebSocket: messages of notifications count against ws_max_inflight until their calls finish', async () => {
    // 300 messages of 10 notifications each, all answered with nothing at once. ws_max_inflight
    // 16 bounds calls not finished: at most 16 plus one message's 10 asleep at once (a message
    // starts while under the bound). Before, every message started: 3000 asleep.
    const srv = await startServer(['--ws-max-inflight', '16']);
    try {
        await sleepPeak(srv);
        const ws = await WsClient.open(srv);
        const msg = notifications(10, 'test.sleep_async', [20]);
        for (let i = 0; i < 300; i++) ws.send(msg);
        const r = await ws.call('tennis@ping'); // answered once every message before it started
        assert.equal(r.result, 'pong');
        const peak = await sleepPeak(srv);
        assert.ok(peak > 0, 'the calls ran');
        assert.ok(peak <= 16 + 10, `${peak} calls asleep at once (ws_max_inflight 16, messages of 10)`);
        ws.close();
        await healthy(srv);
    } finally {
        await srv.kill();
    }
});

test('max_inflight: items past it get -32005, a single call 503; room comes back as calls finish', async () => {
    const srv = await startServer(['--max-inflight', '4']);
    try {
        const a = await HttpConn.open(srv);
        await a.write(buildRequest(srv, {
            body: batch([1, 2, 3, 4, 5, 6].map((id) => call('test.hold_async', undefined, id))),
        }));
        // Any call is refused once the batch's 4 are in (test.held too): wait for that.
        let single;
        await waitFor(async () => (single = await rpc(srv, call('tennis@ping', undefined, 's'))).status === 503,
            { timeout: BOUND_MS, what: 'a 503 while 4 calls are held' });
        assert.equal(single.json.error.code, -32005);
        assert.match(single.json.error.data, /max_inflight/);
        srv.proc.kill('SIGUSR2'); // testkit: release the holds
        const [res] = (await a.readResponses(1, { timeout: BOUND_MS })).map(decorate);
        assert.equal(res.status, 200);
        assert.deepEqual(res.json.map((x) => x.result ?? x.error.code), [true, true, true, true, -32005, -32005]);
        assert.match(res.json[4].error.data, /max_inflight/);
        a.close();
        await healthy(srv); // the finished calls gave their room back
        assert.equal(await held(srv), 0);
    } finally {
        await srv.kill();
    }
});

test('max_memory: a new request is refused 503, and the connection holding the memory waits', async () => {
    // A held call whose params carry 1.5 MB: its connection holds more than max_memory (1 MB).
    const srv = await startServer(['--max-memory', '1MB', '--io-threads', '1']);
    try {
        const pad = 'x'.repeat(1_500_000);
        const a = await HttpConn.open(srv);
        await a.write(buildRequest(srv, { body: call('test.hold_async', [pad], 'big') }));
        await a.write(buildRequest(srv, { body: call('tennis@ping', undefined, 'behind') }));
        // Another client's request cannot be admitted: 503, -32005 naming the bound.
        await waitFor(async () => (await rpc(srv, call('tennis@ping', undefined, 'b'))).status === 503,
            { timeout: BOUND_MS, what: 'a 503 while memory is full' });
        const r = await rpc(srv, call('tennis@ping', undefined, 'b'));
        assert.equal(r.json.error.code, -32005, r.body);
        assert.match(r.json.error.data, /max_memory/);
        // Connection a holds the memory: its next request is not read (not refused) meanwhile.
        assert.equal(a.buf.length, 0, 'nothing answered on the connection that holds the memory');
        srv.proc.kill('SIGUSR2');
        const res = (await a.readResponses(2, { timeout: BOUND_MS })).map(decorate);
        assert.equal(res[0].json.result, true, res[0].body);
        assert.equal(res[1].json.result, 'pong', `the waiting request ran once the memory was released: ${res[1].body}`);
        a.close();
        await healthy(srv);
    } finally {
        await srv.kill();
    }
});

/** How many message@create calls ran so far (the id of the next one, less the probe). */
async function created(srv) {
    const r = await rpc(srv, call('message@create', ['probe'], 'probe'));
    assert.equal(typeof r.json?.result?.id, 'number', r.body);
    return r.json.result.id;
}

test('max_unsent: a client that pipelines and does not read is not read either; nothing is lost', async () => {
    // 20 requests, each an 8 MB answer and a message@create notification (so each request read
    // is counted). A server without the bound reads and answers all 20 at once: 160 MB held. With
    // max_unsent 1 MiB it stops reading once an answer waits unwritten; the kernel's socket
    // buffers (a few MB on loopback) take part of one, so at most a few requests are read.
    const N = 20, BLOB = 8_000_000;
    const srv = await startServer(['--io-threads', '1']);
    try {
        const before = rssKiB(srv.proc.pid);
        const base = await created(srv);
        const conn = await HttpConn.open(srv);
        conn.sock.pause(); // read nothing (until below)
        const one = buildRequest(srv, {
            body: batch([call('test.blob', [BLOB], 1), call('message@create', ['m'])]),
        });
        await conn.write(Buffer.concat(Array.from({ length: N }, () => one)));
        // One loop: once a probe sent after the flood was read has an answer, the flood's
        // bytes were handled. Wait for the first request to have run.
        let probes = 0;
        const since = async () => (await created(srv)) - base - ++probes;
        await waitFor(async () => (await since()) >= 1, { timeout: BOUND_MS, what: 'the first request ran' });
        const read = await since();
        const grown = rssKiB(srv.proc.pid) - before;
        assert.ok(read >= 1 && read <= 3, `${read} of ${N} requests read from a client that reads nothing`);
        // RSS is compared on plain builds only: sanitizers' shadow memory grows with the run.
        if (!/lib[at]san|libclang_rt\.[at]san/.test(readFileSync(`/proc/${srv.proc.pid}/maps`, 'utf8')))
            assert.ok(grown < (3 * BLOB) / 1024 + 16 * 1024, `RSS grew ${grown} KiB`);
        // The client reads: every answer comes.
        conn.sock.resume();
        const res = await conn.readResponses(N, { timeout: BOUND_MS });
        assert.deepEqual([...new Set(res.map((r) => r.status))], [200]);
        assert.ok(res.every((r) => r.bodyBuf.length > BLOB), 'whole answers');
        conn.close();
        await healthy(srv);
    } finally {
        await srv.kill();
    }
});
