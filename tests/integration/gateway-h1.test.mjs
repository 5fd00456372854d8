// SPDX-License-Identifier: MIT
// The gateway's own HTTP/1.1 client for http:// URLs (src/upstream/h1.c), against a raw TCP
// upstream that frames each answer as the test asks (Content-Length, chunked in small pieces
// over several writes, or up to the close) and counts connections: keep-alive reuse and its
// bound, an idle connection the upstream closes (no fault), a reused connection the upstream
// drops as the request arrives (retried on a fresh one, no fault), an answer over max_response
// (too_large, chunked or not), a refused connect failing over to the next URL, and a host name.
// Run with JRPC_GATEWAY_TRANSPORT=curl (ctest's -curl variant) the same cases pass over libcurl.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { rpc, call, batch, healthy, assertError, scrapeAdmin, freePort } from './lib.mjs';
import { startGateway, checkConfig } from './gateway-lib.mjs';

const BIG = 'x'.repeat(20000); // over the gateway's max_response below

/** A raw HTTP/1.1 upstream: answers each JSON-RPC call {result: method} framed per path. */
function startRawUpstream() {
    const conns = new Set();
    const up = { connections: 0, requests: [], closedAfterIdle: 0 };
    const server = net.createServer((sock) => {
        const id = ++up.connections;
        conns.add(sock);
        let buf = Buffer.alloc(0);
        let served = 0;
        let answeredAll = false;
        sock.on('close', () => {
            conns.delete(sock);
            if (answeredAll) up.closedAfterIdle++;
        });
        sock.on('error', () => {});
        sock.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            for (;;) {
                const end = buf.indexOf('\r\n\r\n');
                if (end < 0) return;
                const head = buf.subarray(0, end).toString();
                const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
                if (buf.length < end + 4 + len) return;
                const body = buf.subarray(end + 4, end + 4 + len).toString();
                buf = buf.subarray(end + 4 + len);
                const path = head.split(' ')[1];
                served++;
                up.requests.push({ path, conn: id, nth: served });
                answeredAll = false;
                respond(sock, path, served, JSON.parse(body), () => { answeredAll = true; });
            }
        });
    });
    function respond(sock, path, nth, req, done) {
        const answer = (c) => ({ jsonrpc: '2.0', id: c.id, result: path.startsWith('/big') ? BIG : c.method });
        const text = JSON.stringify(Array.isArray(req) ? req.map(answer) : answer(req));
        const withLength = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`;
        if (path === '/drop-second' && nth === 2) {
            sock.destroy(); // a reused connection closed as the request arrives, nothing answered
            return;
        }
        if (path === '/chunked' || path === '/big-chunked') {
            // Pieces of 1 to 7 bytes, written over several turns so they arrive in several reads.
            const parts = ['HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'];
            for (let i = 0, k = 1; i < text.length; i += k, k = (k % 7) + 1)
                parts.push(`${text.slice(i, i + k).length.toString(16)}\r\n${text.slice(i, i + k)}\r\n`);
            parts.push('0\r\n\r\n');
            const step = Math.max(1, Math.ceil(parts.length / 4));
            const writeFrom = (i) => {
                if (sock.destroyed) return;
                sock.write(parts.slice(i, i + step).join(''));
                if (i + step < parts.length) setImmediate(writeFrom, i + step);
                else done();
            };
            writeFrom(0);
            return;
        }
        if (path === '/eof') {
            sock.end(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${text}`);
            return;
        }
        sock.write(withLength);
        done();
        if (path === '/close-idle') sock.end(); // keep-alive promised, then closed while idle
    }
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
        up.url = (p) => `http://127.0.0.1:${server.address().port}${p}`;
        up.close = () => new Promise((r) => { for (const s of conns) s.destroy(); server.close(r); });
        resolve(up);
    }));
}

/** Waits until cond() holds, polling, at most ms. */
async function waitFor(cond, ms = 5000) {
    const until = Date.now() + ms;
    while (!cond()) {
        assert.ok(Date.now() < until, 'condition not met in time');
        await new Promise((r) => setTimeout(r, 10));
    }
}

let up, gw, dead;
const transport = process.env.JRPC_GATEWAY_TRANSPORT;

before(async () => {
    up = await startRawUpstream();
    dead = await freePort(); // nothing listens there
    gw = await startGateway({
        cl: { urls: up.url('/cl'), methods: 'cl_*', max_batch: 1, retries: 0 },
        two: { urls: up.url('/two'), methods: 'two_*', max_batch: 1, max_in_flight: 2, retries: 0 },
        chunked: { urls: up.url('/chunked'), methods: 'ch_*', retries: 0 },
        eof: { urls: up.url('/eof'), methods: 'eof_*', retries: 0 },
        idle: { urls: up.url('/close-idle'), methods: 'idle_*', retries: 0 },
        drop: { urls: up.url('/drop-second'), methods: 'drop_*', retries: 0 },
        big: { urls: up.url('/big'), methods: 'big_*', retries: 1 },
        bigch: { urls: up.url('/big-chunked'), methods: 'bigch_*', retries: 1 },
        fo: { urls: [`http://127.0.0.1:${dead}/`, up.url('/fo')], methods: 'fo_*', retries: 1, recheck: '1h' },
        name: { urls: up.url('/name').replace('127.0.0.1', 'localhost'), methods: 'name_*', retries: 0 },
    }, { args: ['--io-threads', '1', '--max-response', '16KiB', '--admin-listen', '127.0.0.1:0'] });
});

after(async () => {
    await gw?.kill();
    await up?.close();
});

const conns = (p) => new Set(up.requests.filter((r) => r.path === p).map((r) => r.conn)).size;
const metric = async (name, labels) => (await scrapeAdmin(gw)).get(`${name}{${labels}}`) ?? 0;
const faults = async (name) => {
    const s = await scrapeAdmin(gw);
    let n = 0;
    for (const [k, v] of s) if (k.startsWith(`jrpc_upstream_faults_total{upstream="${name}",`)) n += v;
    return n;
};

test(`keep-alive: 20 calls in turn share one connection; 8 at once open 8, reused next round (${transport ?? 'auto'})`, async () => {
    for (let i = 0; i < 20; i++) {
        const r = await rpc(gw, call('cl_seq', [], i));
        assert.equal(r.json.result, 'cl_seq', r.body);
    }
    assert.equal(conns('/cl'), 1);
    const eight = batch(Array.from({ length: 8 }, (_, i) => call(`cl_par${i}`, [], i)));
    for (let round = 0; round < 2; round++) {
        const r = await rpc(gw, eight);
        assert.deepEqual(r.json.map((x) => x.result), Array.from({ length: 8 }, (_, i) => `cl_par${i}`));
    }
    assert.ok(conns('/cl') <= 8, `${conns('/cl')} connections`);
    assert.equal(up.requests.filter((r) => r.path === '/cl').length, 36);
    assert.equal(await faults('cl'), 0);
});

test('the pool is bounded by max_in_flight: 8 calls through max_in_flight 2 use 2 connections', async () => {
    const r = await rpc(gw, batch(Array.from({ length: 8 }, (_, i) => call(`two_${i}`, [], i))));
    assert.deepEqual(r.json.map((x) => x.result), Array.from({ length: 8 }, (_, i) => `two_${i}`));
    assert.equal(conns('/two'), 2);
});

test('chunked answers in pieces of 1 to 7 bytes over several reads: every item answered', async () => {
    const items = Array.from({ length: 30 }, (_, i) => call(`ch_m${i}`, [i], i));
    for (let round = 0; round < 3; round++) {
        const r = await rpc(gw, batch(items));
        assert.deepEqual(r.json.map((x) => x.result), items.map((_, i) => `ch_m${i}`));
    }
    assert.equal(conns('/chunked'), 1); // a chunked answer leaves the connection reusable
});

test('an answer that ends with the connection (no length, not chunked) is complete', async () => {
    for (let i = 0; i < 3; i++) {
        const r = await rpc(gw, call('eof_x', [], i));
        assert.equal(r.json.result, 'eof_x', r.body);
    }
    assert.equal(conns('/eof'), 3);
    assert.equal(await faults('eof'), 0);
});

test('an idle keep-alive connection the upstream closed: no fault, the next call answered', async () => {
    const r1 = await rpc(gw, call('idle_a', [], 1));
    assert.equal(r1.json.result, 'idle_a', r1.body);
    // The own client closes its side as the upstream's close arrives; libcurl notices it only
    // when it next picks the connection from its cache (and then opens another).
    if (transport !== 'curl') await waitFor(() => up.closedAfterIdle >= 1);
    const r2 = await rpc(gw, call('idle_b', [], 2));
    assert.equal(r2.json.result, 'idle_b', r2.body);
    assert.equal(conns('/close-idle'), 2);
    assert.equal(await faults('idle'), 0);
});

test('a reused connection dropped as the request arrives: sent again on a fresh one, no fault', async () => {
    const r1 = await rpc(gw, call('drop_a', [], 1));
    assert.equal(r1.json.result, 'drop_a', r1.body);
    const r2 = await rpc(gw, call('drop_b', [], 2)); // retries 0: a fault would fail it
    assert.equal(r2.json.result, 'drop_b', r2.body);
    const seen = up.requests.filter((r) => r.path === '/drop-second');
    assert.deepEqual(seen.map((r) => r.nth), [1, 2, 1]);
    assert.equal(conns('/drop-second'), 2);
    assert.equal(await faults('drop'), 0);
    assert.equal(await metric('jrpc_upstream_items_total', 'upstream="drop",outcome="failed"'), 0);
});

for (const [name, method] of [['big', 'big_x'], ['bigch', 'bigch_x']]) {
    test(`an answer over max_response (${name === 'big' ? 'Content-Length' : 'chunked'}) → too_large, not retried`, async () => {
        const from = up.requests.length;
        const r = await rpc(gw, call(method, [], 7));
        assertError(r.json, -32000, 7);
        assert.equal(r.json.error.data.cause, 'too_large', r.body);
        assert.equal(r.json.error.data.upstream, name);
        assert.equal(up.requests.length - from, 1); // the next URL would send the same answer
    });
}

test('connect refused → failover to the next URL, the call answered, one connect fault', async () => {
    const r = await rpc(gw, call('fo_x', [], 1));
    assert.equal(r.json.result, 'fo_x', r.body);
    assert.equal(await metric('jrpc_upstream_faults_total', 'upstream="fo",cause="connect"'), 1);
    const r2 = await rpc(gw, call('fo_y', [], 2)); // the dead URL is passed over now
    assert.equal(r2.json.result, 'fo_y', r2.body);
    assert.equal(await metric('jrpc_upstream_faults_total', 'upstream="fo",cause="connect"'), 1);
});

test('a host name (localhost) is looked up and connected to', async () => {
    const r = await rpc(gw, call('name_x', [], 1));
    assert.equal(r.json.result, 'name_x', r.body);
    assert.equal(await faults('name'), 0);
});

test('config: transport is auto or curl, once; --check prints it', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'jrpc-gwh1-'));
    const check = (extra) => checkConfig(dir, `[upstream eth]\nurls = http://127.0.0.1:1\nmethods = eth_*\n${extra}`);
    try {
        let r = check('transport = h2\n');
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /jrpcd\.ini:4: \[upstream eth\] transport: "h2" is not a transport \(auto or curl\)/);
        r = check('transport = curl\ntransport = auto\n');
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /transport is already set/);
        r = check('transport = curl\n');
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /\[upstream eth\][^[]*\ntransport = curl\n/);
        r = check('');
        assert.match(r.stdout, /\[upstream eth\][^[]*\ntransport = auto\n/);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test('still healthy; stops cleanly with idle pooled connections open (exit 0, leaks fail it)', async () => {
    await healthy(gw);
    await gw.stop();
});
