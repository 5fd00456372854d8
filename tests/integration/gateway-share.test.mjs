// SPDX-License-Identifier: MIT
// Sharing upstream answers (docs/gateway.md#sharing-answers): identical calls in flight at once
// go upstream once and every waiter gets the answer under its own id; a waiter whose client left
// does not cancel the call for the others; writes are never merged nor cached; the response
// cache answers a method within its TTL without the upstream, lets it expire, never keeps errors
// or null; auto_batch merges singles of different clients into upstream batches, and holds
// those that come while its batch is out for the next one, for a bounded time; a reload
// changes all of it live; Cache-Control: no-cache skips the cache. The upstream is upstream-fault.mjs, which records every request it
// gets (/gate holds a request with a call named "held" until the test opens it). No sleeps:
// every wait is for a condition, with a bound.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, healthy, rpc, call, batch, buildRequest, HttpConn, decorate, scrapeAdmin } from './lib.mjs';
import { checkConfig } from './gateway-lib.mjs';
import { waitFor } from './wslib.mjs';
import { startFaultServer } from './upstream-fault.mjs';

const BOUND_MS = 10_000; // generous bound for any condition (ASan builds are slow)

const cleanups = [];
after(async () => {
    for (const c of cleanups.reverse()) await c();
});

/** jrpcd (one io loop: sharing is per loop) on an INI text the test may rewrite and reload. */
async function gateway(ini) {
    const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-share-'));
    const file = path.join(dir, 'jrpcd.ini');
    writeFileSync(file, ini);
    const srv = await startServer(['--config', file, '--admin-listen', '127.0.0.1:0', '--io-threads', '1']);
    cleanups.push(async () => { await srv.kill(); rmSync(dir, { recursive: true, force: true }); });
    let partial = '';
    const kept = [];
    srv.proc.stderr.on('data', (d) => {
        const parts = (partial + d).split('\n');
        partial = parts.pop();
        for (const l of parts) if (/reload/.test(l)) kept.push(l);
    });
    srv.reload = async (text) => {
        const from = kept.length;
        writeFileSync(file, text);
        srv.proc.kill('SIGHUP');
        await waitFor(() => kept.slice(from).some((l) => /reloaded: /.test(l)),
            { timeout: BOUND_MS, what: `reload; got:\n${kept.slice(from).join('\n')}` });
    };
    return srv;
}

async function upstream() {
    const f = await startFaultServer();
    cleanups.push(() => f.close());
    return f;
}

const scrape = scrapeAdmin;

const items = (srv, outcome) => scrape(srv).then((s) => s.get(`jrpc_upstream_items_total{upstream="gw",outcome="${outcome}"}`));
const section = (f, keys = {}, extra = '') => `[upstream gw]\nurl = ${f.url('/gate')}\nmethods = *\n` +
    Object.entries(keys).map(([k, v]) => `${k} = ${v}\n`).join('') + extra;
/** n single calls method(i) on n connections opened first, written together (so that they
 * arrive together, as concurrent clients' calls do); their answers in order. */
async function concurrent(srv, n, method) {
    const conns = await Promise.all(Array.from({ length: n }, () => HttpConn.open(srv)));
    try {
        await Promise.all(conns.map((c, i) => c.write(buildRequest(srv, { body: call(method, [i], i) }))));
        return await Promise.all(conns.map(async (c) => decorate(await c.readResponse())));
    } finally {
        for (const c of conns) c.close();
    }
}

/** Calls of `method` the upstream received, in all requests. */
const received = (f, method) => f.requests.flatMap((r) => r.methods).filter((m) => m === method).length;

test('32 concurrent identical calls: one upstream call, each answer under its own id', async () => {
    const f = await upstream();
    const srv = await gateway(section(f));
    const ids = Array.from({ length: 32 }, (_, i) => (i % 2 ? i : `s${i}`));
    const answers = ids.map((id) => rpc(srv, call('held', [1, { a: 'b' }], id)));
    await waitFor(async () => (await items(srv, 'joined')) === 31, { timeout: BOUND_MS, what: '31 calls joined' });
    f.openGate();
    const got = await Promise.all(answers);
    got.forEach((r, i) => assert.deepEqual(r.json, { jsonrpc: '2.0', id: ids[i], result: { m: 'held', p: [1, { a: 'b' }] } }, r.body));
    assert.equal(received(f, 'held'), 1);
    assert.equal(f.requests.length, 1);
    // Whitespace around params is not part of the key; params that differ are.
    const raw = (p, id) => `{"jsonrpc":"2.0","method":"held2","params":${p},"id":${id}}`;
    const sent = [rpc(srv, `[${raw('[7]', 1)},${raw(' [7] ', 2)},${raw('[8]', 3)}]`)];
    const r = await sent[0];
    assert.deepEqual(r.json.map((x) => x.id), [1, 2, 3]);
    assert.equal(received(f, 'held2'), 2);
    await healthy(srv);
    await srv.stop();
});

test('a waiter whose client left does not cancel the call for the others', async () => {
    const f = await upstream();
    // One request in flight at a time: the shared call waits in the queue while its first
    // client leaves, and the queue sweep sees that.
    const srv = await gateway(section(f, { max_in_flight: 1 }));
    const blocker = rpc(srv, call('held', [0], 1), { timeout: 3 * BOUND_MS });
    await waitFor(() => f.requests.length === 1, { timeout: BOUND_MS, what: 'the blocker in flight' });
    // The first client's call, on a connection of its own that it then leaves.
    const first = await HttpConn.open(srv);
    await first.write(buildRequest(srv, { body: call('shared', [5], 1) }));
    await waitFor(async () => (await scrape(srv)).get('jrpc_upstream_queued_items{upstream="gw"}') === 1,
        { timeout: BOUND_MS, what: 'the first call queued' });
    const others = [2, 3].map((id) => rpc(srv, call('shared', [5], id), { timeout: 3 * BOUND_MS }));
    await waitFor(async () => (await items(srv, 'joined')) === 2, { timeout: BOUND_MS, what: 'two joined' });
    first.sock.resetAndDestroy(); // RST: a FIN would still want the answer
    // A round trip on the same (only) io loop after the close: jrpcd has read the close by then
    // (the connection gauge stays until the call is done, so it cannot tell).
    await healthy(srv);
    f.openGate();
    assert.equal((await blocker).json.result.m, 'held');
    for (const [i, r] of (await Promise.all(others)).entries()) {
        assert.deepEqual(r.json, { jsonrpc: '2.0', id: i + 2, result: { m: 'shared', p: [5] } }, r.body);
    }
    assert.equal(received(f, 'shared'), 1);
    await healthy(srv);
    await srv.stop();
});

test('writes are never merged nor cached, even under a catch-all TTL', async () => {
    const f = await upstream();
    const srv = await gateway(section(f, {}, '[cache ttl]\n* = 1h\n'));
    const tx = '0xf86b80';
    const r = await rpc(srv, batch([
        call('eth_sendRawTransaction', [tx], 1), call('eth_sendRawTransaction', [tx], 2),
        call('eth_sendTransaction', [{ to: '0x1' }], 3), call('eth_sendTransaction', [{ to: '0x1' }], 4),
        call('personal_sign', ['0x1'], 5), call('personal_sign', ['0x1'], 6),
        call('rd', [1], 7), call('rd', [1], 8),
    ]));
    assert.deepEqual(r.json.map((x) => x.id), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(received(f, 'eth_sendRawTransaction'), 2);
    assert.equal(received(f, 'eth_sendTransaction'), 2);
    assert.equal(received(f, 'personal_sign'), 2);
    assert.equal(received(f, 'rd'), 1, 'reads are merged');
    await rpc(srv, call('eth_sendRawTransaction', [tx], 9));
    await rpc(srv, call('rd', [1], 10));
    assert.equal(received(f, 'eth_sendRawTransaction'), 3, 'a write again goes upstream');
    assert.equal(received(f, 'rd'), 1, 'a read within its TTL is answered from the cache');
    // dedup_deny adds patterns of the operator's.
    const g = await upstream();
    const srv2 = await gateway(section(g, { dedup_deny: 'rd' }));
    await rpc(srv2, batch([call('rd', [1], 1), call('rd', [1], 2)]));
    assert.equal(received(g, 'rd'), 2);
    await srv.stop();
    await srv2.stop();
});

test('cache: 100 calls within the TTL reach the upstream once; it expires; errors and null are not kept', async () => {
    const f = await upstream();
    const srv = await gateway(section(f, {}, '[cache ttl]\ncached = 1h\nshort = 300ms\nx_err = 1h\nx_null = 1h\n'));
    for (let i = 0; i < 100; i++) {
        const r = await rpc(srv, call('cached', ['a'], i));
        assert.deepEqual(r.json, { jsonrpc: '2.0', id: i, result: { m: 'cached', p: ['a'] } });
    }
    assert.equal(received(f, 'cached'), 1);
    await rpc(srv, call('cached', ['b'], 1));
    assert.equal(received(f, 'cached'), 2, 'other params are another entry');
    // A request header asks for an answer no cache made (docs/gateway.md#sharing-answers).
    for (const [h, v, n] of [['Cache-Control', 'no-cache', 3], ['Cache-Control', 'max-age=0, No-Cache', 4],
        ['Pragma', 'no-cache', 5], ['Cache-Control', 'no-cachex', 5], ['Cache-Control', 'max-age=0', 5]]) {
        const r = await rpc(srv, call('cached', ['a'], 7), { headers: { [h]: v } });
        assert.deepEqual(r.json, { jsonrpc: '2.0', id: 7, result: { m: 'cached', p: ['a'] } });
        assert.equal(received(f, 'cached'), n, `${h}: ${v}`);
    }

    await rpc(srv, call('short', [], 1));
    await rpc(srv, call('short', [], 2));
    assert.equal(received(f, 'short'), 1);
    await waitFor(async () => { await rpc(srv, call('short', [], 3)); return received(f, 'short') === 2; },
        { timeout: BOUND_MS, what: 'the 300 ms entry expired' });

    for (const m of ['x_err', 'x_null']) {
        const a = await rpc(srv, call(m, [], 1));
        const b = await rpc(srv, call(m, [], 2));
        assert.deepEqual(a.json.error ?? a.json.result, b.json.error ?? b.json.result);
        assert.equal(received(f, m), 2, `${m} is not cached`);
    }
    const s = await scrape(srv);
    assert.ok(s.get('jrpc_upstream_cache_lookups_total{result="hit"}') >= 100, [...s].join('\n'));
    assert.ok(s.get('jrpc_upstream_cache_bytes') > 0);
    assert.ok(s.get('jrpc_upstream_items_total{upstream="gw",outcome="cached"}') >= 100);
    await healthy(srv);
    await srv.stop();
});

test('EVM defaults: eth_chainId kept forever; a call naming latest not kept, one naming a block is', async () => {
    const f = await upstream();
    const srv = await gateway(section(f, {}, '[cache ttl]\neth_getBalance = 1h\n'));
    for (let i = 0; i < 3; i++) await rpc(srv, call('eth_chainId', [], i));
    assert.equal(received(f, 'eth_chainId'), 1);
    for (const params of [['0xa', 'latest'], ['0xa'], ['0xa', 'pending']]) {
        await rpc(srv, call('eth_getBalance', params, 1));
        await rpc(srv, call('eth_getBalance', params, 2));
    }
    assert.equal(received(f, 'eth_getBalance'), 6, 'tags and a missing block are not cached (tag_ttl 0)');
    await rpc(srv, call('eth_getBalance', ['0xa', '0x10'], 1));
    await rpc(srv, call('eth_getBalance', ['0xa', '0x10'], 2));
    assert.equal(received(f, 'eth_getBalance'), 7);
    await srv.stop();
});

test('auto_batch: 32 concurrent distinct singles reach the upstream in a handful of batches', async () => {
    const f = await upstream();
    const srv = await gateway(section(f, { auto_batch: 'on', max_batch: 32, batch_wait: '1ms' }));
    const got = await concurrent(srv, 32, 'ab');
    got.forEach((r, i) => assert.deepEqual(r.json, { jsonrpc: '2.0', id: i, result: { m: 'ab', p: [i] } }));
    const reqs = f.requests.filter((r) => r.methods.includes('ab'));
    assert.equal(reqs.reduce((n, r) => n + r.n, 0), 32, 'all 32 forwarded');
    assert.ok(reqs.length <= 8, `${reqs.length} upstream requests`);
    assert.ok(reqs.some((r) => r.batch && r.n > 1));
    // A single that found no company still goes alone, not as a one-item batch.
    await rpc(srv, call('alone', [], 1));
    assert.equal(f.requests.at(-1).batch, false);
    await srv.stop();
});

test('auto_batch hold: singles that come while its batch is out go as one next batch', async () => {
    const f = await upstream();
    // batch_wait 0: without the hold each single below, read in a loop turn of its own, would go
    // as a request of its own. The hold's bound is batch_hold alone here (no answer times yet).
    const srv = await gateway(section(f, { auto_batch: 'on', batch_wait: '0', batch_hold: '1s', dedup: 'off' }));
    const first = rpc(srv, call('held', [0], 0), { timeout: 3 * BOUND_MS });
    await waitFor(() => f.requests.length === 1, { timeout: BOUND_MS, what: 'the first batch out' });
    const conns = await Promise.all(Array.from({ length: 16 }, () => HttpConn.open(srv)));
    const answers = [];
    for (const [i, c] of conns.entries()) {
        await c.write(buildRequest(srv, { body: call('ab', [i], i) }));
        answers.push(c.readResponse().then(decorate));
        // A round trip on the same (only) io loop: the call was read, and its turn is over.
        await scrape(srv);
    }
    f.openGate();
    assert.equal((await first).json.result.m, 'held');
    for (const [i, r] of (await Promise.all(answers)).entries())
        assert.deepEqual(r.json, { jsonrpc: '2.0', id: i, result: { m: 'ab', p: [i] } });
    for (const c of conns) c.close();
    const reqs = f.requests.filter((r) => r.methods.includes('ab'));
    assert.deepEqual(reqs.map((r) => r.n), [16], 'the 16 singles went as one batch');
    await healthy(srv);
    await srv.stop();
});

test('auto_batch hold is bounded: a slow batch out does not hold the calls behind it', async () => {
    const f = await upstream();
    const srv = await gateway(section(f, { auto_batch: 'on', batch_hold: '50ms', dedup: 'off' }));
    const slow = rpc(srv, call('held', [0], 0), { timeout: 3 * BOUND_MS });
    await waitFor(() => f.requests.length === 1, { timeout: BOUND_MS, what: 'the slow batch out' });
    // Held behind the slow one for at most batch_hold, then sent without waiting for it.
    const r = await rpc(srv, call('ab', [1], 1), { timeout: BOUND_MS });
    assert.deepEqual(r.json, { jsonrpc: '2.0', id: 1, result: { m: 'ab', p: [1] } });
    assert.equal(f.requests[0].answered, false, 'answered while the slow batch is still out');
    // The batch out is now the answered one: the next call is not held at all.
    const r2 = await rpc(srv, call('ab', [2], 2), { timeout: BOUND_MS });
    assert.equal(r2.json.result.p[0], 2);
    f.openGate();
    assert.equal((await slow).json.result.m, 'held');
    await healthy(srv);
    await srv.stop();
});

test('config: batch_hold is off or a duration up to 1s, once; --check prints it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-share-'));
    const check = (extra) => checkConfig(dir, `[upstream eth]\nurls = http://127.0.0.1:1\nmethods = eth_*\n${extra}`);
    try {
        let r = check('batch_hold = 2s\n');
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /jrpcd\.ini:4: \[upstream eth\] batch_hold: "2s" is longer than 1000ms/);
        r = check('batch_hold = soon\n');
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /batch_hold: "soon" is not a duration/);
        r = check('batch_hold = 5ms\nbatch_hold = off\n');
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /batch_hold is already set/);
        r = check('batch_hold = 5ms\n');
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /\[upstream eth\][^[]*\nbatch_hold = 5ms\n/);
        r = check('batch_hold = off\n');
        assert.match(r.stdout, /\[upstream eth\][^[]*\nbatch_hold = off\n/);
        r = check('');
        assert.match(r.stdout, /\[upstream eth\][^[]*\nbatch_hold = 10ms\n/);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test('reload changes dedup, auto_batch and the cache live', async () => {
    const f = await upstream();
    const srv = await gateway(section(f, {}, '[cache ttl]\nkeep = 1h\n'));
    await rpc(srv, call('keep', [], 1));
    await rpc(srv, call('keep', [], 2));
    assert.equal(received(f, 'keep'), 1);
    await rpc(srv, batch([call('rd', [1], 1), call('rd', [1], 2)]));
    assert.equal(received(f, 'rd'), 1);

    await srv.reload(section(f, { dedup: 'off', auto_batch: 'on', batch_wait: '1ms' }, '[cache ttl]\nkeep = 0\n'));
    await rpc(srv, call('keep', [], 3));
    await rpc(srv, call('keep', [], 4));
    assert.equal(received(f, 'keep'), 3, 'the rule is 0 now and the entry was dropped');
    await rpc(srv, batch([call('rd', [1], 1), call('rd', [1], 2)]));
    assert.equal(received(f, 'rd'), 3, 'dedup is off');
    const got = await concurrent(srv, 16, 'ab');
    got.forEach((r, i) => assert.equal(r.json.result.p[0], i));
    assert.ok(f.requests.filter((r) => r.methods.includes('ab')).length < 16, 'auto_batch is on');

    await srv.reload(section(f, {}, '[cache]\nsize = 0\n[cache ttl]\nkeep = 1h\n'));
    await rpc(srv, call('keep', [], 5));
    await rpc(srv, call('keep', [], 6));
    assert.equal(received(f, 'keep'), 5, 'size 0 turns the cache off');
    await healthy(srv);
    await srv.stop();
});
