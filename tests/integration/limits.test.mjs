// SPDX-License-Identifier: MIT
// Slow and hostile clients (docs/security.md): the head, body, idle and send timeouts, the
// minimum body rate, and the connection caps (total and per client address), each against the
// real jrpcd with small limits. Slow clients are simulated by writing on a timer; the server's
// reaction is awaited with a bound (waitClosed / readResponse / untilServed), never assumed after
// a sleep, and no assertion says how soon it must come: where timing is the feature, the test
// compares it with what the client did meanwhile.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { withServer, HttpConn, rpc, buildRequest, decorate, RPC_PATH } from './lib.mjs';

const PING = '{"jsonrpc":"2.0","method":"tennis@ping","id":1}';
const WAIT_MS = 10_000;
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** PING on a fresh connection from `localAddress` (default: the usual 127.0.0.1); its status,
 * 0 when the connection failed. */
async function pingStatus(srv, localAddress) {
    try {
        const conn = await HttpConn.open(srv, { localAddress });
        try {
            return (await conn.request(srv, { body: PING })).status;
        } finally {
            conn.close();
        }
    } catch {
        return 0;
    }
}

/** Calls until one is served (slots free up once the server has seen a close); fails after
 * WAIT_MS. */
async function untilServed(srv, localAddress) {
    const deadline = Date.now() + WAIT_MS;
    let status = 0;
    while ((status = await pingStatus(srv, localAddress)) !== 200 && Date.now() < deadline) await pause(20);
    assert.equal(status, 200, `a connection is served again (last status ${status})`);
}

/** Resolves as `promise` does; fails naming `what` when WAIT_MS pass first. */
async function within(promise, what) {
    let timer;
    const late = new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} not within ${WAIT_MS} ms`)), WAIT_MS);
    });
    try {
        return await Promise.race([promise, late]);
    } finally {
        clearTimeout(timer);
    }
}

/** Writes `chunks` one every `every` ms until stop() says so, the server closes, or they run out;
 * resolves how many were written. */
async function trickle(conn, chunks, every, stop = () => false) {
    let written = 0;
    for (const c of chunks) {
        if (stop() || conn.sock.destroyed || conn.sock.writableEnded) break;
        conn.write(c).catch(() => {}); // a server that answered and closed may reset it
        written++;
        await pause(every);
    }
    return written;
}

test('header timeout is absolute from the first byte: a trickled head gets 408 while still arriving', async () => {
    await withServer(['--header-timeout', '300ms'], async (srv) => {
        const conn = await HttpConn.open(srv);
        // One byte every 20 ms: the whole head would take over 6 s. A timer that each byte
        // restarted would not fire until the bytes stopped, so the 408 would follow the last one.
        const head = `POST ${RPC_PATH} HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(300)}`;
        let answered = false;
        const t0 = Date.now();
        const writer = trickle(conn, head.split(''), 20, () => answered);
        const r = decorate(await conn.readResponse({ timeout: 3 * head.length * 20 }));
        answered = true;
        const ms = Date.now() - t0;
        assert.equal(r.status, 408);
        assert.ok(ms >= 250, `408 after ${ms} ms, before the 300 ms header timeout`);
        const written = await writer;
        assert.ok(written < head.length, `408 only once the whole head (${written} of ${head.length} bytes) was sent`);
        await conn.waitClosed(3000);
    });
});

test('body timeout: a body that stops arriving gets 408', async () => {
    await withServer(['--body-timeout', '300ms'], async (srv) => {
        const conn = await HttpConn.open(srv);
        conn.write(`POST ${RPC_PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${PING.length}\r\n\r\n${PING.slice(0, 10)}`);
        const r = decorate(await conn.readResponse({ timeout: 3000 }));
        assert.equal(r.status, 408);
        assert.match(r.body, /body timed out/);
        await conn.waitClosed(3000);
    });
});

test('minimum body rate: a body trickled below it gets 408 even with no long pause', async () => {
    await withServer(['--body-timeout', '300ms', '--min-body-rate', '1000'], async (srv) => {
        const conn = await HttpConn.open(srv);
        const body = ' '.repeat(200) + PING;
        conn.write(`POST ${RPC_PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n`);
        // 4 bytes every 50 ms = 80 bytes/s, far below 1000 bytes/s; no pause reaches 300 ms.
        const chunks = body.match(/.{1,4}/gs);
        const writer = trickle(conn, chunks, 50);
        const r = decorate(await conn.readResponse({ timeout: 5000 }));
        assert.equal(r.status, 408);
        assert.match(r.body, /slower than 1000 bytes\/s/);
        await conn.waitClosed(3000);
        await writer;
    });
});

test('idle keep-alive connections are closed after idle_timeout; busy ones are not', async () => {
    await withServer(['--idle-timeout', '300ms'], async (srv) => {
        const conn = await HttpConn.open(srv);
        const t0 = Date.now();
        const r = await conn.request(srv, { body: PING });
        assert.equal(r.status, 200);
        await conn.waitClosed(3000);
        const ms = Date.now() - t0;
        assert.ok(ms >= 250, `closed after ${ms} ms`);
        // A call running longer than the idle timeout is not cut: idle means nothing to do.
        const busy = await HttpConn.open(srv);
        const slow = await busy.request(srv, { body: '{"jsonrpc":"2.0","method":"test.sleep","params":[600],"id":1}' });
        assert.equal(slow.status, 200);
        assert.equal(JSON.parse(slow.body).result, 600);
        busy.close();
    });
});

test('send timeout: a client that stops reading a large answer is disconnected', async () => {
    // The stalled client comes from 127.0.0.2, which may hold one connection: a second one from
    // there is served only once the server has dropped the first. That is how the test sees the
    // server give up without reading. (The health check comes from 127.0.0.1, outside the cap.)
    const STALLED = '127.0.0.2';
    await withServer(['--send-timeout', '300ms', '--max-response', '64MiB', '--max-connections-per-ip', '1'], async (srv) => {
        const sock = net.connect({ port: srv.port, host: '127.0.0.1', localAddress: STALLED });
        await new Promise((r) => sock.once('connect', r));
        const body = '{"jsonrpc":"2.0","method":"test.blob","params":[40000000],"id":1}';
        let got = 0;
        sock.on('data', (d) => { got += d.length; });
        const closed = new Promise((resolve) => sock.once('close', resolve));
        const started = new Promise((resolve) => sock.once('data', () => { sock.pause(); resolve(); }));
        sock.write(buildRequest(srv, { body }));
        // The answer has begun (the server holds this connection); from here we read nothing, and
        // the rest of the 40 MB cannot fit in the socket buffers.
        await started;
        await untilServed(srv, STALLED);
        // Dropped: drain what the kernel buffered; the stream must end short of the whole answer.
        sock.resume();
        await within(closed, 'the close');
        assert.ok(got < 40000000, `received ${got} bytes: the server never gave up`);
    });
});

test('max_connections: one past the cap gets 503 and a close; a freed slot is reused', async () => {
    await withServer(['--max-connections', '3'], async (srv) => {
        const held = [];
        for (let i = 0; i < 3; i++) {
            const c = await HttpConn.open(srv);
            assert.equal((await c.request(srv, { body: PING })).status, 200);
            held.push(c);
        }
        const extra = await HttpConn.open(srv);
        const r = decorate(await extra.readResponse({ timeout: 3000 }));
        assert.equal(r.status, 503);
        assert.equal(JSON.parse(r.body).error.code, -32005);
        await extra.waitClosed(3000);
        held.pop().close();
        await untilServed(srv); /* the slot comes back once the server has seen the close */
        held.forEach((c) => c.close());
        await untilServed(srv);
    });
});

test('max_connections_per_ip counts WebSocket connections too', async () => {
    await withServer(['--max-connections-per-ip', '2'], async (srv) => {
        const url = `ws://127.0.0.1:${srv.port}${RPC_PATH}`;
        const a = new WebSocket(url);
        const b = new WebSocket(url);
        await Promise.all([a, b].map((w) => new Promise((ok, no) => { w.once('open', ok); w.once('error', no); })));
        const third = await HttpConn.open(srv);
        const r = decorate(await third.readResponse({ timeout: 3000 }));
        assert.equal(r.status, 503);
        await third.waitClosed(3000);
        a.close();
        await new Promise((ok) => a.once('close', ok));
        await untilServed(srv); /* the address has a slot again after a WebSocket closed */
        b.close();
        await new Promise((ok) => b.once('close', ok));
        await untilServed(srv);
    });
});
