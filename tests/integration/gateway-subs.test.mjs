// SPDX-License-Identifier: MIT
// Subscriptions through the gateway (docs/gateway.md#subscriptions): ganache mining a block every
// second behind jrpcd with ws_urls. Real clients — ethers v6 WebSocketProvider (on('block') and
// tx.wait()), viem's watchBlockNumber over webSocket() and web3's subscribe('newHeads') — see the
// blocks the node makes; two
// clients asking the same thing share one upstream subscription, counted on the upstream side by
// a WebSocket pass-through in front of ganache, which also cuts the upstream socket to check that
// clients keep receiving under their ids after jrpcd reconnects. Also: the metrics, the bounds
// (max_ws_message on the upstream socket, ws_max_queue dropping a client that does not read
// without holding up the others, ws_max_subscriptions), [batch] allow with seed 002's kinds, an
// unreachable ws_urls, the error without ws_urls, the config errors, and a stop with
// subscriptions live.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket, WebSocketServer } from 'ws';
import { ethers } from 'ethers';
import { createPublicClient, webSocket } from 'viem';
import { Web3, WebSocketProvider as Web3WsProvider } from 'web3';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGanache, startGateway, callResult } from './gateway-lib.mjs';
import { JRPCD } from './lib.mjs';

const WAIT_MS = 10_000; // bound for each awaited event: blocks come every second
// Account 0 of ganache's deterministic wallet (gateway-lib.mjs starts it so).
const KEY0 = '0x4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d';

let ganache, proxy, gw, gwNoWs, gwDead;

/** Resolves when pred() holds (checked on every event and every 20 ms), rejects past `ms`. */
function until(pred, what, ms = WAIT_MS) {
    return new Promise((resolve, reject) => {
        const t0 = Date.now();
        const tick = () => {
            let v;
            try { v = pred(); } catch (e) { reject(e); return; }
            if (v) { resolve(v); return; }
            if (Date.now() - t0 > ms) { reject(new Error(`timed out waiting for ${what}`)); return; }
            setTimeout(tick, 20);
        };
        tick();
    });
}

function withTimeout(p, what, ms = WAIT_MS) {
    let timer;
    return Promise.race([p, new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms);
    })]).finally(() => clearTimeout(timer));
}

/**
 * A WebSocket pass-through to ganache that records what jrpcd sends upstream: every
 * eth_subscribe / eth_unsubscribe frame, and how many upstream connections were opened.
 * cut() drops every connection (both sides), as a node restart or a load balancer would.
 */
async function startWsProxy(target) {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    const p = {
        url: `ws://127.0.0.1:${wss.address().port}/`,
        connections: 0,
        subscribes: [], // params JSON of each eth_subscribe seen
        unsubscribes: [],
        pairs: new Set(),
        /** Sends text to jrpcd on every upstream socket, as if the node had. */
        inject(text) {
            for (const [down] of p.pairs) down.send(text);
        },
        cut() {
            for (const [a, b] of p.pairs) { a.terminate(); b.terminate(); }
            p.pairs.clear();
        },
        close: () => { p.cut(); return new Promise((r) => wss.close(r)); },
    };
    wss.on('connection', (down) => {
        p.connections++;
        const up = new WebSocket(target);
        const pair = [down, up];
        p.pairs.add(pair);
        const queue = [];
        up.on('open', () => { for (const m of queue.splice(0)) up.send(m); });
        down.on('message', (data) => {
            const text = data.toString();
            try {
                const m = JSON.parse(text);
                if (m.method === 'eth_subscribe') p.subscribes.push(JSON.stringify(m.params));
                if (m.method === 'eth_unsubscribe') p.unsubscribes.push(JSON.stringify(m.params));
            } catch { /* not JSON: forwarded as it is */ }
            if (up.readyState === WebSocket.OPEN) up.send(text); else queue.push(text);
        });
        up.on('message', (data) => {
            const text = data.toString();
            if (text.includes('"eth_subscription"')) p.lastUpId = JSON.parse(text).params.subscription;
            if (down.readyState === WebSocket.OPEN) down.send(text);
        });
        const end = () => { p.pairs.delete(pair); down.terminate(); up.terminate(); };
        up.on('close', end);
        up.on('error', end);
        down.on('close', end);
        down.on('error', end);
    });
    return p;
}

/** A raw WebSocket JSON-RPC client: call(), and the pushes it received by subscription id. */
async function rawClient(url, opts) {
    const ws = new WebSocket(url, opts);
    await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
    const c = { ws, pending: new Map(), pushes: new Map(), nextId: 1 };
    ws.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (m.method === 'eth_subscription') {
            const list = c.pushes.get(m.params.subscription) ?? [];
            list.push(m.params.result);
            c.pushes.set(m.params.subscription, list);
        } else if (c.pending.has(m.id)) {
            c.pending.get(m.id)(m);
            c.pending.delete(m.id);
        }
    });
    c.call = (method, params) => withTimeout(new Promise((res) => {
        const id = c.nextId++;
        c.pending.set(id, res);
        ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    }), method);
    c.close = () => ws.terminate();
    return c;
}

/** The scrape of jrpcd's admin listener: { series: value } for the series named. */
async function metrics(srv) {
    const m = /jrpcd admin listening on (\S+):(\d+)/.exec(srv.stdout());
    assert.ok(m, 'the admin listener is up');
    const text = await (await fetch(`http://${m[1]}:${m[2]}/metrics`)).text();
    return Object.fromEntries(text.split('\n').filter((l) => l && !l.startsWith('#'))
        .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]));
}

const wsUrl = (srv) => `ws://127.0.0.1:${srv.port}${srv.path}`;

before(async () => {
    ganache = await startGanache({ blockTime: 1 });
    proxy = await startWsProxy(ganache.url.replace('http://', 'ws://'));
    [gw, gwNoWs] = await Promise.all([
        // One io thread: an upstream socket is per io loop, so sharing is per loop.
        startGateway({ eth: { urls: ganache.url, ws_urls: proxy.url, methods: 'eth_* net_* web3_*' } },
            {
                args: ['--io-threads', '1', '--ws-max-subscriptions', '3', '--max-ws-message', '64KiB',
                    '--ws-max-queue', '1MiB',
                    '--admin-listen', '127.0.0.1:0'],
                // Seed 002's batch rule: subscriptions refused in batches but for three kinds.
                extra: '[batch]\ndeny = eth_subscribe\n' +
                    'allow = eth_subscribe:newHeads eth_subscribe:newPendingTransactions eth_subscribe:logs\n',
            }),
        // eth_subscribe listed by name as well as by pattern: still answered with the cause.
        startGateway({ eth: { urls: ganache.url, methods: 'eth_subscribe eth_* net_* web3_*' } }),
    ]);
    // ws_urls where nothing listens: the proxy's port once it is closed again.
    const gone = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => gone.once('listening', r));
    const deadUrl = `ws://127.0.0.1:${gone.address().port}/`;
    await new Promise((r) => gone.close(r));
    gwDead = await startGateway({ eth: { urls: ganache.url, ws_urls: deadUrl, methods: 'eth_*' } });
});

after(async () => {
    await gw?.kill();
    await gwNoWs?.kill();
    await gwDead?.kill();
    await proxy?.close();
    await ganache?.kill();
});

test('ethers WebSocketProvider: on(block) sees the node\'s blocks, tx.wait() returns', async () => {
    const provider = new ethers.WebSocketProvider(wsUrl(gw));
    try {
        const seen = [];
        await provider.on('block', (n) => seen.push(n));
        await until(() => seen.length >= 2, 'two blocks through jrpcd');
        assert.ok(seen[1] > seen[0], `blocks increase: ${seen}`);
        // The numbers are the node's: its own eth_blockNumber is at or past the last one seen.
        const direct = Number(await callResult(ganache.url, 'eth_blockNumber'));
        assert.ok(direct >= seen[1] && direct - seen[1] <= 2, `node at ${direct}, seen ${seen}`);

        const wallet = new ethers.Wallet(KEY0, provider);
        const tx = await wallet.sendTransaction({ to: ethers.Wallet.createRandom().address, value: 1n });
        const receipt = await withTimeout(tx.wait(), 'tx.wait() through jrpcd');
        assert.equal(receipt.status, 1);
        assert.equal(receipt.hash, tx.hash);
        const direct2 = await callResult(ganache.url, 'eth_getTransactionReceipt', [tx.hash]);
        assert.equal(direct2.blockHash, receipt.blockHash);
    } finally {
        await provider.destroy();
    }
});

test('viem watchBlockNumber over webSocket() sees consecutive blocks', async () => {
    const client = createPublicClient({ transport: webSocket(wsUrl(gw), { reconnect: false }) });
    // viem keeps one socket per URL, made with the options of its first use: a plain request
    // first, so that it is made with reconnect: false and close() below really closes it.
    assert.equal(await client.getChainId(), 1337);
    const seen = [];
    const unwatch = client.watchBlockNumber({ onBlockNumber: (n) => seen.push(n), emitMissed: false });
    try {
        await until(() => seen.length >= 2, 'two block numbers from viem');
        assert.equal(seen[1], seen[0] + 1n, `consecutive: ${seen}`);
    } finally {
        const unsubs = proxy.unsubscribes.length;
        unwatch();
        // viem sends its eth_unsubscribe on a later turn; close its socket once jrpcd ended the
        // upstream subscription (it was the only client on it).
        await until(() => proxy.unsubscribes.length > unsubs, 'viem\'s subscription ended upstream');
        (await client.transport.getRpcClient()).close();
    }
});

test('web3 subscribe(newHeads) receives the node\'s blocks; unsubscribe ends it upstream', async () => {
    const web3 = new Web3(new Web3WsProvider(wsUrl(gw), {}, { autoReconnect: false }));
    try {
        const sub = await withTimeout(web3.eth.subscribe('newHeads'), 'web3 subscribe');
        const seen = [];
        sub.on('data', (h) => seen.push(h));
        await until(() => seen.length >= 2, 'two heads from web3');
        assert.equal(BigInt(seen[1].number), BigInt(seen[0].number) + 1n, 'consecutive heads');
        // The heads are the node's own blocks.
        const block = await callResult(ganache.url, 'eth_getBlockByNumber',
            ['0x' + BigInt(seen[0].number).toString(16), false]);
        assert.equal(seen[0].hash, block.hash);

        const unsubs = proxy.unsubscribes.length;
        await withTimeout(sub.unsubscribe(), 'web3 unsubscribe');
        // The only client on it left: jrpcd ends the upstream subscription.
        await until(() => proxy.unsubscribes.length > unsubs, 'web3\'s subscription ended upstream');
        const mt = await metrics(gw);
        assert.equal(mt['jrpc_upstream_subscription_clients{upstream="eth"}'], 0);
    } finally {
        web3.provider.disconnect();
    }
});

test('two clients share one upstream subscription; it survives an upstream cut', async () => {
    // Let earlier tests' subscriptions end upstream first (their clients have left).
    await until(() => proxy.unsubscribes.length >= 3, 'earlier subscriptions ended upstream');
    const subsBefore = proxy.subscribes.length;
    const a = await rawClient(wsUrl(gw));
    const b = await rawClient(wsUrl(gw));
    try {
        const ra = await a.call('eth_subscribe', ['newHeads']);
        const rb = await b.call('eth_subscribe', ['newHeads']);
        const [ida, idb] = [ra.result, rb.result];
        assert.match(ida, /^0x[0-9a-f]{32}$/);
        assert.notEqual(ida, idb, 'each client has its own id');
        assert.deepEqual(proxy.subscribes.slice(subsBefore), ['["newHeads"]'], 'one upstream subscribe');
        let mt = await metrics(gw);
        assert.equal(mt['jrpc_upstream_subscriptions{upstream="eth"}'], 1);
        assert.equal(mt['jrpc_upstream_subscription_clients{upstream="eth"}'], 2);
        const reconnects = mt['jrpc_upstream_ws_reconnects_total{upstream="eth"}'];

        await until(() => (a.pushes.get(ida)?.length ?? 0) >= 1 && (b.pushes.get(idb)?.length ?? 0) >= 1,
            'a block on both clients');
        const ha = a.pushes.get(ida).map((h) => h.hash);
        await until(() => b.pushes.get(idb).some((h) => h.hash === ha[0]) ||
            a.pushes.get(ida).some((h) => h.hash === b.pushes.get(idb)[0].hash), 'the same block on both');

        // Cut the upstream socket: jrpcd reconnects and subscribes again; clients keep their ids.
        const conns = proxy.connections;
        proxy.cut();
        await until(() => proxy.connections > conns, 'jrpcd reconnected');
        await until(() => proxy.subscribes.length === subsBefore + 2, 'subscribed again');
        const na = a.pushes.get(ida).length, nb = b.pushes.get(idb).length;
        await until(() => a.pushes.get(ida).length >= na + 2 && b.pushes.get(idb).length >= nb + 2,
            'blocks after the reconnect, under the same ids');
        assert.equal(a.pushes.size, 1, 'no other subscription id appeared');
        mt = await metrics(gw);
        assert.equal(mt['jrpc_upstream_ws_reconnects_total{upstream="eth"}'], reconnects + 1);
        assert.equal(mt['jrpc_upstream_subscriptions{upstream="eth"}'], 1);

        // Unsubscribing one keeps the upstream subscription; the last one ends it.
        const unsubs = proxy.unsubscribes.length;
        assert.equal((await a.call('eth_unsubscribe', [ida])).result, true);
        assert.equal((await b.call('eth_unsubscribe', [ida])).error?.code, -32000, 'not b\'s id');
        assert.equal(proxy.unsubscribes.length, unsubs);
        assert.equal((await b.call('eth_unsubscribe', [idb])).result, true);
        await until(() => proxy.unsubscribes.length === unsubs + 1, 'upstream unsubscribe');
        mt = await metrics(gw);
        assert.equal(mt['jrpc_upstream_subscriptions{upstream="eth"}'], 0);
        assert.equal(mt['jrpc_upstream_subscription_clients{upstream="eth"}'], 0);
    } finally {
        a.close();
        b.close();
    }
});

test('an upstream message past max_ws_message drops the upstream socket, not the clients', async () => {
    const c = await rawClient(wsUrl(gw));
    try {
        const id = (await c.call('eth_subscribe', ['newHeads'])).result;
        await until(() => (c.pushes.get(id)?.length ?? 0) >= 1, 'a first block');
        const conns = proxy.connections;
        proxy.inject(JSON.stringify({ jsonrpc: '2.0', method: 'eth_subscription',
            params: { subscription: '0x1', result: 'x'.repeat(100 * 1024) } }));
        await until(() => proxy.connections > conns, 'jrpcd dropped the socket and reconnected');
        const n = c.pushes.get(id).length;
        await until(() => c.pushes.get(id).length > n, 'blocks again, same id');
        assert.equal(c.ws.readyState, WebSocket.OPEN);
    } finally {
        c.close();
    }
});

test('a client that does not read is dropped at ws_max_queue; the others keep up', async () => {
    // Uncompressed: with permessage-deflate the repetitive pushes would shrink past what the
    // bound is measured against.
    const slow = await rawClient(wsUrl(gw), { perMessageDeflate: false });
    const fast = await rawClient(wsUrl(gw), { perMessageDeflate: false });
    try {
        const ids = slow.pushes, idS = (await slow.call('eth_subscribe', ['newHeads'])).result;
        const idF = (await fast.call('eth_subscribe', ['newHeads'])).result;
        await until(() => ids.get(idS)?.length && fast.pushes.get(idF)?.length, 'a block on both');
        const slowClosed = new Promise((r) => slow.ws.once('close', r));
        slow.ws.pause(); // reads nothing more: the kernel's buffers, then jrpcd's queue fill
        // 400 pushes of 32 KiB (13 MB) on the shared upstream subscription, as a node would send
        // them, 8 at a time as the reading client takes them: past what the slow client's socket
        // buffers absorb (a few MB on loopback) plus its 1 MiB ws_max_queue.
        const big = 'x'.repeat(32 * 1024), PUSHES = 400, WINDOW = 8;
        const got = () => fast.pushes.get(idF).filter((r) => r === big).length;
        for (let sent = 0; sent < PUSHES; sent += WINDOW) {
            for (let i = 0; i < WINDOW; i++) {
                proxy.inject(JSON.stringify({ jsonrpc: '2.0', method: 'eth_subscription',
                    params: { subscription: proxy.lastUpId, result: big } }));
            }
            await until(() => got() === sent + WINDOW, `push ${sent + WINDOW} on the client that reads`);
        }
        slow.ws.resume();
        await withTimeout(slowClosed, 'the slow client disconnected');
        assert.ok(ids.get(idS).filter((r) => r === big).length < PUSHES, 'the slow client missed pushes');
        const n = fast.pushes.get(idF).length;
        await until(() => fast.pushes.get(idF).length > n, 'blocks still flow to the reader');
    } finally {
        slow.close();
        fast.close();
    }
});

test('subscriptions count under ws_max_subscriptions; an upstream error passes through', async () => {
    const c = await rawClient(wsUrl(gw));
    try {
        for (let i = 0; i < 3; i++) assert.ok((await c.call('eth_subscribe', ['newHeads'])).result);
        const r = await c.call('eth_subscribe', ['newHeads']);
        assert.equal(r.error?.code, -32005, JSON.stringify(r));
        const bad = await c.call('eth_subscribe', ['noSuchKind']);
        assert.ok(bad.error, JSON.stringify(bad));
        assert.notEqual(bad.error.code, -32005);
    } finally {
        c.close();
    }
});

test('[batch] allow: only the chosen subscription kinds inside a batch', async () => {
    const c = await rawClient(wsUrl(gw));
    try {
        const answer = new Promise((res) => c.ws.once('message', (d) => res(JSON.parse(d.toString()))));
        c.ws.send(JSON.stringify([
            { jsonrpc: '2.0', id: 1, method: 'eth_subscribe', params: ['newHeads'] },
            { jsonrpc: '2.0', id: 2, method: 'eth_subscribe', params: ['syncing'] },
            { jsonrpc: '2.0', id: 3, method: 'eth_subscribe', params: ['logs', {}] },
            { jsonrpc: '2.0', id: 4, method: 'eth_chainId', params: [] },
        ]));
        const batch = await withTimeout(answer, 'batch answer');
        const by = Object.fromEntries(batch.map((a) => [a.id, a]));
        assert.match(by[1].result, /^0x[0-9a-f]{32}$/, JSON.stringify(by[1]));
        assert.equal(by[2].error?.code, -32004, JSON.stringify(by[2]));
        assert.match(by[3].result, /^0x[0-9a-f]{32}$/, JSON.stringify(by[3]));
        assert.equal(by[4].result, '0x539');
        // Alone, the kind the batch refused is the node's business (ganache has no "syncing").
        const alone = await c.call('eth_subscribe', ['syncing']);
        assert.notEqual(alone.error?.code, -32004, JSON.stringify(alone));
    } finally {
        c.close();
    }
});

test('a WebSocket upstream that cannot be reached: eth_subscribe says so', async () => {
    const c = await rawClient(wsUrl(gwDead));
    try {
        const r = await c.call('eth_subscribe', ['newHeads']);
        assert.equal(r.error?.code, -32000, JSON.stringify(r));
        assert.match(r.error.message, /upstream eth: WebSocket: could not connect/);
        assert.equal(r.error.data?.cause, 'connect');
    } finally {
        c.close();
    }
    await gwDead.stop();
    assert.match(gwDead.stderr(), /upstream eth: WebSocket to 127\.0\.0\.1:\d+ \(loop \d+\): could not connect/);
    gwDead = null;
});

test('without ws_urls eth_subscribe names the cause; over HTTP it is refused', async () => {
    const c = await rawClient(wsUrl(gwNoWs));
    try {
        const r = await c.call('eth_subscribe', ['newHeads']);
        assert.equal(r.error?.code, -32000);
        assert.match(r.error.message, /upstream eth: eth_subscribe needs a WebSocket upstream \(ws_urls/);
        // Other calls are still forwarded over the same connection.
        assert.match((await c.call('eth_chainId', [])).result, /^0x/);
    } finally {
        c.close();
    }
    for (const srv of [gw, gwNoWs]) {
        const res = await fetch(srv.url, {
            method: 'POST', headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_subscribe', params: ['newHeads'] }),
        });
        const j = await res.json();
        assert.equal(j.error?.code, -32601);
        assert.match(j.error.message, /notifications not supported/);
    }
});

test('config: wss:// and a bad [batch] allow are refused with the line named; --check prints both', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'jrpc-gwsubs-'));
    const check = (ini) => {
        const file = path.join(dir, 'jrpcd.ini');
        writeFileSync(file, ini);
        return spawnSync(JRPCD, ['--config', file, '--check'], { encoding: 'utf8' });
    };
    try {
        const up = '[upstream eth]\nurls = http://127.0.0.1:1\nmethods = eth_*\n';
        let r = check(`${up}ws_urls = wss://node.example/ws\n`);
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /jrpcd\.ini:4: \[upstream eth\] ws_urls: "wss:\/\/node\.example\/ws": wss:\/\/ is not supported/);
        r = check(`${up}ws_urls = http://127.0.0.1:1\n`);
        assert.match(r.stderr, /is not a ws:\/\/ URL/);
        r = check('[batch]\ndeny = eth_subscribe\nallow = eth_subscribe:\n');
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /\[batch\] allow: "eth_subscribe:" is not NAME or NAME:KIND/);
        r = check(`${up}ws_urls = ws://127.0.0.1:8546 ws://[::1]:8546/x\n` +
            '[batch]\ndeny = eth_subscribe\nallow = eth_subscribe:newHeads eth_subscribe:logs\n');
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /\nws_urls = ws:\/\/127\.0\.0\.1:8546 ws:\/\/\[::1\]:8546\/x\n/);
        assert.match(r.stdout, /\n\[batch\]\ndeny = eth_subscribe\nallow = eth_subscribe:newHeads eth_subscribe:logs\n/);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test('jrpcd is still healthy and stops cleanly with subscriptions live', async () => {
    assert.match(await callResult(gw.url, 'eth_chainId'), /^0x/);
    const c = await rawClient(wsUrl(gw));
    const id = (await c.call('eth_subscribe', ['newHeads'])).result;
    await until(() => (c.pushes.get(id)?.length ?? 0) >= 1, 'a block before the stop');
    const closed = new Promise((r) => c.ws.once('close', r));
    await gw.stop();
    await withTimeout(closed, 'the client connection closed by the stop');
    await gwNoWs.stop();
    gw = gwNoWs = null;
});
