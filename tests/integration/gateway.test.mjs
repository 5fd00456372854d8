// SPDX-License-Identifier: MIT
// The gateway in front of real ganache nodes (pinned in package.json, started offline on
// loopback): eth_chainId, eth_blockNumber, eth_getBalance, eth_sendTransaction then
// eth_getTransactionReceipt, each the same through jrpcd as from the node directly; mixed
// batches of local and upstream methods; client ids that must survive regrouping; a batch of
// 1000 with max_batch 10 (100 upstream requests); the [batch] deny policy on upstream methods;
// two nodes with one stopped mid-test (failover, nothing lost); and a node killed in the middle of
// a batch (per-item errors, the rest answered).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rpc, call, batch, rawIds, healthy, assertError } from './lib.mjs';
import { startGanache, startGateway, startProxy, post, callResult, upstreamReport } from './gateway-lib.mjs';

// ganache's deterministic wallet (mnemonic "myth like bonus scare over problem client lizard
// pioneer submit female collect"): the first two accounts.
const ACCOUNT0 = '0x90f8bf6a479f320ead074411a4b0e7944ea8c9c1';
const ACCOUNT1 = '0xffcf8fdee72ac11ab72a01e8f8ed7b8c0ec0ed31';

let node, proxy, gw;

before(async () => {
    node = await startGanache();
    proxy = await startProxy(node.port);
    gw = await startGateway({
        // dedup and the cache off: these tests count how identical calls are regrouped.
        eth: { urls: proxy.url, methods: 'eth_* net_* web3_* debug_*', max_batch: 10, dedup: 'off' },
    }, { batchDeny: 'debug_* trace_*', extra: '[cache]\nsize = 0\n' });
});

after(async () => {
    await gw?.kill();
    await proxy?.close();
    await node?.kill();
});

/** The same call directly and through jrpcd: both results. */
async function both(method, params = []) {
    const direct = await callResult(node.url, method, params);
    const via = await callResult(gw.url, method, params);
    return [direct, via];
}

test('eth_chainId, eth_blockNumber, eth_getBalance, net_version: the same as from the node', async () => {
    for (const [m, p] of [['eth_chainId', []], ['eth_blockNumber', []], ['eth_getBalance', [ACCOUNT0, 'latest']],
        ['net_version', []], ['eth_accounts', []]]) {
        const [direct, via] = await both(m, p);
        assert.deepEqual(via, direct, m);
    }
    assert.equal(await callResult(gw.url, 'eth_chainId'), '0x539');
});

test('eth_sendTransaction then eth_getTransactionReceipt, balances moved, as seen directly', async () => {
    const before1 = BigInt(await callResult(gw.url, 'eth_getBalance', [ACCOUNT1, 'latest']));
    const hash = await callResult(gw.url, 'eth_sendTransaction', [{ from: ACCOUNT0, to: ACCOUNT1, value: '0xde0b6b3a7640000' }]);
    assert.match(hash, /^0x[0-9a-f]{64}$/);
    const receipt = await callResult(gw.url, 'eth_getTransactionReceipt', [hash]);
    assert.equal(receipt.status, '0x1');
    assert.equal(receipt.transactionHash, hash);
    assert.deepEqual(receipt, await callResult(node.url, 'eth_getTransactionReceipt', [hash]));
    const after1 = BigInt(await callResult(gw.url, 'eth_getBalance', [ACCOUNT1, 'latest']));
    assert.equal(after1 - before1, 10n ** 18n);
    const [direct, via] = await both('eth_getBlockByNumber', ['latest', true]);
    assert.deepEqual(via, direct);
    assert.equal(via.transactions[0].hash, hash);
});

test('mixed batch: local and upstream methods answered in request order, unknown names -32601', async () => {
    const direct = await post(node.url, batch([call('eth_blockNumber', [], 1), call('eth_getBalance', [ACCOUNT0, 'latest'], 2)]));
    const r = await rpc(gw, batch([
        call('tennis@ping', undefined, 'a'),
        call('eth_blockNumber', [], 'b'),
        call('test.echo', [1, 2], 'c'),
        call('eth_getBalance', [ACCOUNT0, 'latest'], 'd'),
        call('nope_method', [], 'e'),
        call('subtract', [5, 3], 'f'),
        call('eth_noSuchMethod', [], 'g'),
    ]));
    assert.equal(r.status, 200);
    const a = r.json;
    assert.deepEqual(a.map((x) => x.id), ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    assert.equal(a[0].result, 'pong');
    assert.equal(a[1].result, direct.json.find((x) => x.id === 1).result);
    assert.deepEqual(a[2].result, [1, 2]);
    assert.equal(a[3].result, direct.json.find((x) => x.id === 2).result);
    assertError(a[4], -32601, 'e');
    assert.equal(a[5].result, 2);
    // Not jrpcd's -32601: the node's own error object, passed through unchanged, with ganache's
    // non-standard "stack" member (its text differs per call path, so only its presence counts).
    const nodeSays = await post(node.url, call('eth_noSuchMethod', [], 'g'));
    const { stack: s1, ...e1 } = a[6].error;
    const { stack: s2, ...e2 } = nodeSays.json.error;
    assert.deepEqual(e1, e2);
    assert.equal(typeof s1, 'string', JSON.stringify(a[6]));
    assert.equal(typeof s2, 'string');
});

test('client ids survive regrouping: duplicates, null, huge numbers, strings, exotic numbers', async () => {
    const ids = ['1', '1', 'null', '14066156191713469572', '"\\u00e9"', '1e400', '-0', '"1"', '0.5'];
    const r = await rpc(gw, batch(ids.map((id) => call('eth_chainId', [], undefined, { rawId: id }))));
    assert.deepEqual(rawIds(r.body), ids);
    assert.ok(r.json.every((x) => x.result === '0x539'), r.body);
});

test('batch of 1000 with max_batch 10: 100 upstream requests, every item answered in order', async () => {
    const from = proxy.requests();
    const items = [];
    for (let i = 0; i < 1000; i++) {
        items.push(i % 2 ? call('eth_getBalance', [ACCOUNT0, 'latest'], i) : call('eth_chainId', [], i));
    }
    const balance = await callResult(node.url, 'eth_getBalance', [ACCOUNT0, 'latest']);
    const r = await rpc(gw, batch(items));
    assert.equal(r.status, 200);
    assert.equal(r.json.length, 1000);
    r.json.forEach((x, i) => assert.deepEqual(x, { jsonrpc: '2.0', id: i, result: i % 2 ? balance : '0x539' }));
    assert.equal(proxy.requests() - from, 100, 'regrouped into 100 chunks of 10');
});

test('[batch] deny: an upstream debug_* method is -32004 inside a batch and works alone', async () => {
    const hash = await callResult(gw.url, 'eth_sendTransaction', [{ from: ACCOUNT0, to: ACCOUNT1, value: '0x1' }]);
    const r = await rpc(gw, batch([call('debug_traceTransaction', [hash, {}], 1), call('eth_chainId', [], 2)]));
    assertError(r.json[0], -32004, 1);
    assert.match(r.json[0].error.message, /debug_traceTransaction is not available in batch requests/);
    assert.equal(r.json[1].result, '0x539');
    const alone = await rpc(gw, call('debug_traceTransaction', [hash, {}], 3));
    assert.ok(alone.json.result && Array.isArray(alone.json.result.structLogs), alone.body);
});

test('failover: two nodes, the first stopped mid-test: every call answered, nothing lost', async () => {
    const a = await startGanache();
    const b = await startGanache();
    const fo = await startGateway({
        eth: { urls: [a.url, b.url], methods: 'eth_*', max_batch: 10, retries: 1 },
    });
    try {
        const balance = await callResult(b.url, 'eth_getBalance', [ACCOUNT0, 'latest']);
        let sent = 0;
        let killed = false;
        const round = async (k) => {
            const body = batch(Array.from({ length: 30 }, (_, i) =>
                i % 3 ? call('eth_getBalance', [ACCOUNT0, 'latest'], `${k}.${i}`) : call('eth_chainId', [], `${k}.${i}`)));
            const r = await rpc(fo, body);
            assert.equal(r.json.length, 30);
            r.json.forEach((x, i) => assert.deepEqual(x, { jsonrpc: '2.0', id: `${k}.${i}`, result: i % 3 ? balance : '0x539' },
                `round ${k} item ${i} (node A ${killed ? 'stopped' : 'running'})`));
            sent += 30;
        };
        // Concurrent clients throughout, and node A stopped while their batches are in flight.
        const clients = [0, 1, 2, 3].map(async (c) => {
            for (let k = 0; k < 12; k++) {
                await round(`${c}-${k}`);
                if (c === 0 && k === 4) {
                    killed = true;
                    await a.kill();
                }
            }
        });
        await Promise.all(clients);
        assert.equal(sent, 4 * 12 * 30);
        await healthy(fo);
        await fo.stop();
        const s = upstreamReport(fo.stderr(), 'eth');
        assert.equal(s.itemsFailed, 0, JSON.stringify(s));
        assert.match(fo.stderr(), /is down for \d+ ms/, 'the stopped node was noticed');
    } finally {
        await fo.kill();
        await a.kill();
        await b.kill();
    }
});

test('a node killed in the middle of a batch: answered items keep results, the rest get -32000', async () => {
    const c = await startGanache();
    // Node C dies as jrpcd's 6th upstream request starts to go through: 5 chunks answered.
    const cut = await startProxy(c.port, { onRequest: async (n) => { if (n === 6) await c.kill(); } });
    const kg = await startGateway({
        eth: { urls: cut.url, methods: 'eth_*', max_batch: 10, max_in_flight: 1, retries: 1, dedup: 'off' },
    }, { args: ['--io-threads', '1'] });
    try {
        const r = await rpc(kg, batch(Array.from({ length: 200 }, (_, i) => call('eth_chainId', [], i))));
        assert.equal(r.json.length, 200);
        r.json.forEach((x, i) => assert.equal(x.id, i));
        const ok = r.json.filter((x) => x.result === '0x539').length;
        assert.equal(ok, 50, 'the 5 chunks before the kill');
        for (const x of r.json.slice(50)) {
            assertError(x, -32000, x.id);
            assert.equal(x.error.data.upstream, 'eth');
            assert.ok(['reset', 'connect'].includes(x.error.data.cause), JSON.stringify(x));
        }
        await healthy(kg);
    } finally {
        await kg.kill();
        await cut.close();
        await c.kill();
    }
});

test('still healthy; the counters add up', async () => {
    await healthy(gw);
    await gw.stop();
    const s = upstreamReport(gw.stderr(), 'eth');
    assert.ok(s, gw.stderr());
    assert.ok(s.requests >= 100 && s.items >= 1000, JSON.stringify(s));
    assert.equal(s.itemsFailed, 0, JSON.stringify(s));
});
