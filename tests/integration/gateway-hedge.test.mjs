// SPDX-License-Identifier: MIT
// Hedging (docs/gateway.md#hedging): with hedge_after, a chunk of reads unanswered after the
// delay gets a second attempt on another URL; the first answer wins, the slow attempt is cut (its
// connection closed, no fault counted) and the client gets one answer per call. Writes, alone or
// in a batch with reads, are never hedged. hedge_after = pNN takes the delay from the upstream's
// latency histogram once it has enough answers. The upstreams are toy nodes (toy-node.mjs): the
// slow one holds calls until the test releases them, so "slow" needs no timing.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { scrapeAdmin } from './lib.mjs';
import { startGateway, post } from './gateway-lib.mjs';
import { waitFor } from './wslib.mjs';
import { startToyNode } from './toy-node.mjs';

const BOUND_MS = 10_000;
const cleanups = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

/** A slow node (tried first: priority 0) and a fast one behind one upstream `gw`. */
async function setup(keys) {
    const slow = await startToyNode('slow'), fast = await startToyNode('fast');
    cleanups.push(() => slow.close(), () => fast.close());
    const gw = await startGateway({
        gw: { url: [`${slow.url} priority=0`, `${fast.url} priority=1`], methods: 'eth_*', ...keys },
    }, { args: ['--admin-listen', '127.0.0.1:0'] });
    cleanups.push(() => gw.kill());
    return { slow, fast, gw };
}

const read = (id) => ({ jsonrpc: '2.0', id, method: 'eth_getBalance', params: ['0x01', 'latest'] });
const metric = (s, name) => s.get(`${name}{upstream="gw"}`);
const faults = (s) => [...s.entries()].filter(([k]) => k.startsWith('jrpc_upstream_faults_total{'))
    .reduce((a, [, v]) => a + v, 0);

test('a read held at the slow URL is answered by the fast one after hedge_after; the slow attempt is cut', async () => {
    const { slow, fast, gw } = await setup({ hedge_after: '50ms' });
    slow.hold = true;
    const r = await post(gw.url, read(7));
    assert.deepEqual(r.json, { jsonrpc: '2.0', id: 7, result: { node: 'fast', m: 'eth_getBalance' } }, r.text);
    assert.equal(slow.calls().length, 1, 'the first attempt went to the slow URL');
    await waitFor(() => slow.calls()[0].cut, { timeout: BOUND_MS, what: 'the slow attempt cut' });

    // A client batch of reads is one chunk: hedged whole, each call answered once.
    const b = await post(gw.url, [read(1), read(2), read(3)]);
    assert.ok(Array.isArray(b.json), b.text);
    assert.deepEqual(b.json.map((x) => x.id).sort(), [1, 2, 3]);
    for (const x of b.json) assert.equal(x.result?.node, 'fast', b.text);
    await waitFor(() => slow.calls().every((c) => c.cut), { timeout: BOUND_MS, what: 'both slow attempts cut' });

    const s = await scrapeAdmin(gw);
    assert.equal(metric(s, 'jrpc_upstream_hedges_total'), 2);
    assert.equal(metric(s, 'jrpc_upstream_hedges_won_total'), 2);
    assert.equal(faults(s), 0, 'a cut attempt is no fault');
    assert.equal(s.get(`jrpc_upstream_up{upstream="gw",url="${slow.host}"}`), 1);
    assert.equal(fast.calls().length, 2);
    await gw.stop();
    assert.match(gw.stderr(), /upstream gw: hedges 2, won 2/);
});

test('writes are never hedged, alone or in a batch with reads', async () => {
    const { slow, fast, gw } = await setup({ hedge_after: '50ms' });
    slow.hold = true;
    const write = post(gw.url, { jsonrpc: '2.0', id: 1, method: 'eth_sendRawTransaction', params: ['0x02'] });
    const mixed = post(gw.url, [read(2), { jsonrpc: '2.0', id: 3, method: 'eth_sendTransaction', params: [{}] }]);
    await waitFor(() => slow.calls().length === 2, { timeout: BOUND_MS, what: 'both requests at the slow URL' });
    // A read sent after them is hedged once its delay is over: by then the older write chunks
    // were due too, and had they been hedged the fast URL would hold them.
    // (Other params than read(2)'s: an identical read would join it, answer sharing.)
    const r = await post(gw.url, { ...read(4), params: ['0x04', 'latest'] });
    assert.equal(r.json?.result?.node, 'fast', r.text);
    assert.deepEqual(fast.calls().map((c) => c.methods), [['eth_getBalance']]);
    assert.equal(metric(await scrapeAdmin(gw), 'jrpc_upstream_hedges_total'), 1);
    slow.release();
    assert.equal((await write).json?.result?.node, 'slow');
    assert.deepEqual((await mixed).json.map((x) => x.result?.node), ['slow', 'slow']);
    assert.equal(slow.calls().filter((c) => c.cut).length, 1, 'only the hedged read was cut');
    await gw.stop();
});

test('hedge_after = p50 hedges after the observed median once the upstream has enough answers', async () => {
    const { slow, gw } = await setup({ hedge_after: 'p50' });
    // Warm-up: the histogram needs 100 answered requests (JRPC_UPSTREAM_HEDGE_MIN_SAMPLES);
    // distinct params, so that none is merged with another.
    const warm = await Promise.all(Array.from({ length: 110 },
        (_, i) => post(gw.url, { ...read(i), params: [`0x${i.toString(16)}`, 'latest'] })));
    for (const w of warm) assert.equal(w.json?.result?.node, 'slow', w.text);
    slow.hold = true;
    const r = await post(gw.url, read(9));
    assert.equal(r.json?.result?.node, 'fast', r.text);
    const s = await scrapeAdmin(gw);
    assert.equal(metric(s, 'jrpc_upstream_hedges_won_total'), 1);
    await gw.stop();
});
