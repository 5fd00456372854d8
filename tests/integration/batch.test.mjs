// SPDX-License-Identifier: MIT
// Batches: the 1000 cap, per-item answers in request order, notification-only batches,
// concurrency inside a batch and its bound (--batch-concurrency), and the bounded worker queue.
// Concurrency is counted, not timed: test.sleep_peak says how many items were asleep at once.
// Durations appear only as lower bounds (the items did sleep) and as one comparison of two
// bounds measured in the same test; no assertion says how fast a machine must be.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, withServer, rpc, healthy, call, batch, rawIds, timed, assertError, assertResult } from './lib.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.kill(); });

async function createId(server) {
    const r = await rpc(server, call('message@create', ['probe'], 'probe'));
    assert.equal(typeof r.json?.result?.id, 'number', r.body);
    return r.json.result.id;
}

test('1000-item batch: all answered, in order, ids matching', async () => {
    const kinds = [
        (i) => [call('tennis@ping', undefined, i), 'pong'],
        (i) => [call('test.echo', [i, `s${i}`], `e${i}`), [i, `s${i}`]],
        (i) => [call('test.worker_echo', { i }, i), { i }],
        (i) => [call('test.sleep_async', [1], i), 1],
        (i) => [call('subtract', [i, 1], i), i - 1],
    ];
    const items = [];
    const expected = [];
    for (let i = 0; i < 1000; i++) {
        const [text, result] = kinds[i % kinds.length](i);
        items.push(text);
        expected.push({ jsonrpc: '2.0', result, id: JSON.parse(text).id });
    }
    const r = await rpc(srv, batch(items));
    assert.equal(r.status, 200);
    assert.equal(r.json.length, 1000);
    assert.deepEqual(r.json, expected);
    assert.deepEqual(rawIds(r.body), items.map((t) => JSON.stringify(JSON.parse(t).id)));
});

test('1001-item batch: 1001 × -32005, none executed', async () => {
    const a = await createId(srv);
    const items = Array.from({ length: 1001 }, (_, i) => call('message@create', ['x'], i));
    const r = await rpc(srv, batch(items));
    assert.equal(r.status, 200);
    assert.equal(r.json.length, 1001);
    r.json.forEach((x, i) => {
        assertError(x, -32005, i);
        assert.match(x.error.message, /batch of 1001 exceeds limit 1000/);
    });
    assert.equal(await createId(srv), a + 1, 'no message created');
});

test('mixed batch answered per item, in request order', async () => {
    const r = await rpc(srv, `[
        ${call('subtract', [10, 4], 1)},
        {"jsonrpc":"2.0","method":1,"id":2},
        ${call('tennis@ping')},
        ${call('no.such.method', [], 3)},
        ${call('test.nobatch', undefined, 4)},
        ${call('test.fail', [-32000, 'boom', [1]], 5)},
        42,
        ${call('test.sleep', [100], 6)},
        ${call('test.fail', [-32001, 'quiet'])},
        ${call('test.sleep_async', [20], 7)},
        ${call('tennis@ping', undefined, null)}
    ]`);
    assert.equal(r.status, 200);
    assert.equal(r.json.length, 9, r.body);
    assertResult(r.json[0], 6, 1);
    assertError(r.json[1], -32600, 2);
    assertError(r.json[2], -32601, 3);
    assertError(r.json[3], -32004, 4);
    assert.deepEqual(r.json[4], { jsonrpc: '2.0', error: { code: -32000, message: 'boom', data: [1] }, id: 5 });
    assertError(r.json[5], -32600, null);
    assertResult(r.json[6], 100, 6);
    assertResult(r.json[7], 20, 7);
    assertResult(r.json[8], 'pong', null);
});

test('slow items first: still answered in request order', async () => {
    const r = await rpc(srv, batch([call('test.sleep', [300], 'a'), ping('b'), call('test.sleep_async', [150], 'c'),
        call('test.worker_echo', ['w'], 'd'), call('test.sleep', [10], 'e'), call('test.sleep_async', [0], 'f')]));
    assert.deepEqual(r.json.map((x) => x.id), ['a', 'b', 'c', 'd', 'e', 'f']);
    assert.deepEqual(r.json.map((x) => x.result), [300, 'pong', 150, ['w'], 10, 0]);
});

function ping(id) { return call('tennis@ping', undefined, id); }

/** The most test.sleep / test.sleep_async calls asleep at once since the last call of this. */
async function sleepPeak(server) {
    const r = await rpc(server, call('test.sleep_peak', undefined, 'peak'));
    assert.equal(typeof r.json?.result, 'number', r.body);
    return r.json.result;
}

test('notification-only batch → 204', async () => {
    const r = await rpc(srv, batch([call('tennis@ping'), call('test.sleep', [10]), call('test.sleep_async', [10]),
        call('no.such.method'), call('message@create', ['n'])]));
    assert.equal(r.status, 204, r.body);
    assert.equal(r.body, '');
});

test('a batch runs its items concurrently: all 10 asleep at once', async () => {
    // 16 workers, so the pool (8 by default) does not hold test.sleep below 10 at a time
    await withServer(['--workers', '16'], async (s) => {
        for (const m of ['test.sleep', 'test.sleep_async']) {
            await sleepPeak(s);
            const [r, ms] = await timed(() => rpc(s, batch(Array.from({ length: 10 }, (_, i) => call(m, [200], i)))));
            assert.deepEqual(r.json.map((x) => x.result), Array(10).fill(200), m);
            assert.ok(ms >= 190, `${m}: ${ms.toFixed(0)} ms — items did sleep`);
            // One after another, never more than 1 would be asleep.
            assert.equal(await sleepPeak(s), 10, `${m}: items asleep at once`);
        }
    });
});

async function hundredSleeps(server, m) {
    const [r, ms] = await timed(() => rpc(server, batch(Array.from({ length: 100 }, (_, i) => call(m, [50], i)))));
    assert.equal(r.status, 200);
    assert.equal(r.json.length, 100, r.body.slice(0, 300));
    r.json.forEach((x, i) => assertResult(x, 50, i, m));
    return ms;
}

test('--batch-concurrency 10 bounds a batch: 100 × 50 ms, 10 asleep at a time', async () => {
    // 16 workers, so the worker pool is not what limits it to 10 at a time
    await withServer(['--batch-concurrency', '10', '--workers', '16'], async (s) => {
        for (const m of ['test.sleep', 'test.sleep_async']) {
            await sleepPeak(s);
            const ms = await hundredSleeps(s, m);
            assert.ok(ms >= 450, `${m}: ${ms.toFixed(0)} ms, expected ≥ 450 ms with 10 in flight`);
            // Never more than the bound, and the bound is reached (not one at a time).
            assert.equal(await sleepPeak(s), 10, `${m}: items asleep at once`);
        }
    });
});

test('--batch-concurrency 100 lets the same batch run in about one round', async () => {
    // Enough workers and queue that only the batch bound matters. Counted, not timed: how many
    // items were asleep at once (a busy machine or a TSan build slows a run, not this count).
    // Items sleep 300 ms, far longer than starting 100 of them takes, so with the bound at 100
    // far more than 10 (the other test's bound) and the default are asleep together.
    await withServer(['--batch-concurrency', '100', '--workers', '128', '--worker-queue', '1000'], async (s) => {
        for (const m of ['test.sleep', 'test.sleep_async']) {
            await sleepPeak(s);
            const r = await rpc(s, batch(Array.from({ length: 100 }, (_, i) => call(m, [300], i))));
            assert.equal(r.json.length, 100, r.body.slice(0, 300));
            r.json.forEach((x, i) => assertResult(x, 300, i, m));
            const peak = await sleepPeak(s);
            assert.ok(peak >= 50 && peak <= 100, `${m}: ${peak} items asleep at once`);
        }
    });
});

test('a full worker queue answers -32005 per item instead of waiting for room', async () => {
    await withServer(['--workers', '1', '--worker-queue', '1', '--batch-concurrency', '8'], async (s) => {
        // Waiting for room would run all eight, one after another: none refused. (rpc's read
        // timeout bounds a batch that never completes.)
        const r = await rpc(s, batch(Array.from({ length: 8 }, (_, i) => call('test.sleep', [100], i))));
        assert.equal(r.json.length, 8, r.body);
        assert.deepEqual(r.json.map((x) => x.id), [0, 1, 2, 3, 4, 5, 6, 7]);
        let ok = 0;
        let full = 0;
        for (const x of r.json) {
            if ('result' in x) { assert.equal(x.result, 100); ok++; } else { assertError(x, -32005); full++; }
        }
        assert.ok(ok >= 1, `some items ran: ${r.body}`);
        assert.ok(full >= 1, `some items were refused with -32005: ${r.body}`);
        // inline and async methods do not need the pool
        const p = await rpc(s, batch([ping(1), call('test.sleep_async', [10], 2)]));
        assert.deepEqual(p.json.map((x) => x.result), ['pong', 10]);
    });
});

test('server still healthy, SIGTERM exits 0', async () => {
    await healthy(srv);
    await srv.stop();
});
