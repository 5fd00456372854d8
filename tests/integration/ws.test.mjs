// SPDX-License-Identifier: MIT
// WebSocket transport (RFC 6455) with the real `ws` client and, where `ws` will not misbehave on
// request, raw frames: handshake and its refusals, single / notification / batch messages and the
// WS batch cap, binary and fragmented messages, ping/pong both ways, close codes (1000, client
// codes, 1002, 1007, 1009), messages in flight and their bound, the outgoing queue bound, idle
// timeout and graceful close on shutdown. The §3 rows shared with HTTP are in contract.test.mjs.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
    startServer, withServer, healthy, call, batch, assertError, assertResult, HttpConn,
    buildRequest, decorate, rpc, timed,
} from './lib.mjs';
import { WsClient, RawWs, frame, closePayload, waitFor, withWs } from './wslib.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.kill(); });

const ping = (id) => call('tennis@ping', undefined, id);

// ---- Handshake ------------------------------------------------------------------------------

test('handshake: 101 with the RFC 6455 Sec-WebSocket-Accept, on the RPC path and on /', async () => {
    for (const path of [srv.path, '/']) {
        const raw = await RawWs.open(srv, { path });
        const accept = crypto.createHash('sha1').update(raw.key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
        assert.equal(raw.response.headers['sec-websocket-accept'], accept);
        assert.match(raw.response.headers.upgrade, /^websocket$/i);
        assert.match(raw.response.headers.connection, /^upgrade$/i);
        await raw.sendText(ping(1));
        const f = await raw.readFrame();
        assert.equal(f.opcode, 1);
        assert.equal(f.fin, true);
        assertResult(JSON.parse(f.payload.toString()), 'pong', 1);
        raw.destroy();
    }
});

test('handshake refusals: 426 for another version, 400 for a bad request, GET without upgrade stays 405', async () => {
    const cases = [
        [{ 'Sec-WebSocket-Version': '8' }, 426],
        [{ 'Sec-WebSocket-Version': null }, 400],
        [{ 'Sec-WebSocket-Key': null }, 400],
        [{ 'Sec-WebSocket-Key': 'c2hvcnQ=' }, 400],                  // 5 bytes, not 16
        [{ 'Sec-WebSocket-Key': 'AAAAAAAAAAAAAAAAAAAAAB==' }, 400],  // 16 bytes with stray bits
        [{ Connection: 'keep-alive' }, 400],                       // no Connection: upgrade
        [{ Upgrade: 'h2c' }, 405],                                  // another protocol: ignored
    ];
    for (const [headers, status] of cases) {
        const raw = await RawWs.open(srv, { headers, expectStatus: status });
        const body = JSON.parse((await raw.readBody(Number(raw.response.headers['content-length']))).toString());
        assertError(body, -32600, null);
        if (status === 426) assert.equal(raw.response.headers['sec-websocket-version'], '13');
        // The HTTP connection stays usable after a refused upgrade.
        await raw.write(buildRequest(srv, { body: ping('after') }));
        const r = await raw.readHead();
        assert.equal(r.status, 200, `after ${JSON.stringify(headers)}`);
        raw.destroy();
    }
    // Upgrade on another path: 404, as any other request there.
    const raw = await RawWs.open(srv, { path: '/elsewhere', expectStatus: 404 });
    raw.destroy();
    // A POST that says Upgrade: websocket is a POST.
    const r = await rpc(srv, ping(5), { headers: { Upgrade: 'websocket', Connection: 'Upgrade' } });
    assertResult(r.json, 'pong', 5);
});

test('upgrade after keep-alive requests on the same connection, frames right behind the request', async () => {
    const conn = await HttpConn.open(srv);
    try {
        const key = crypto.randomBytes(16).toString('base64');
        const upgrade = `GET ${srv.path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
        // One write: a POST, the upgrade, and a frame the client should have waited to send.
        await conn.write(Buffer.concat([buildRequest(srv, { body: ping('http') }), Buffer.from(upgrade),
            frame({ payload: ping('ws') })]));
        const r = decorate(await conn.readResponse());
        assertResult(r.json, 'pong', 'http');
        const sw = await conn.readResponse({ includeInterim: true });
        assert.equal(sw.status, 101);
        // Then one text frame: the answer to the early frame.
        await waitFor(() => conn.buf.length >= 2, { timeout: 5000, what: 'a frame header' });
        const len = conn.buf[1] & 0x7f;
        assert.equal(conn.buf[0], 0x81);
        await waitFor(() => conn.buf.length >= 2 + len, { timeout: 5000, what: 'the frame' });
        assertResult(JSON.parse(conn.buf.subarray(2, 2 + len).toString()), 'pong', 'ws');
    } finally {
        conn.close();
    }
});

// ---- Messages -------------------------------------------------------------------------------

test('single call, notification, batch of 20, batch of 21 (21 × -32005), and the connection stays usable', async () => {
    await withWs(srv, async (ws) => {
        assertResult(await ws.call('tennis@ping', undefined, 1), 'pong', 1);

        await ws.send(call('tennis@ping'));
        assert.deepEqual(await ws.untilProbe(), [], 'a notification is not answered');

        const twenty = Array.from({ length: 20 }, (_, i) => call('test.echo', [i], i));
        await ws.send(batch(twenty));
        const a20 = await ws.nextJson();
        assert.equal(a20.length, 20);
        a20.forEach((x, i) => assertResult(x, [i], i));

        const n21 = Array.from({ length: 21 }, (_, i) => call('message@create', [`m${i}`], i));
        await ws.send(batch(n21));
        const a21 = await ws.nextJson();
        assert.equal(a21.length, 21);
        a21.forEach((x, i) => {
            assertError(x, -32005, i);
            assert.match(x.error.message, /batch of 21 exceeds limit 20/);
        });

        assertResult(await ws.call('tennis@ping', undefined, 'still'), 'pong', 'still');
        assert.equal(ws.closeInfo, null);
    });
});

test('--max-batch-ws sets the WebSocket cap apart from HTTP\'s', async () => {
    await withServer(['--max-batch-ws', '3'], async (s) => {
        await withWs(s, async (ws) => {
            await ws.send(batch([1, 2, 3, 4].map((i) => ping(i))));
            const a = await ws.nextJson();
            a.forEach((x, i) => assertError(x, -32005, i + 1));
            await ws.send(batch([1, 2, 3].map((i) => ping(i))));
            assert.deepEqual((await ws.nextJson()).map((x) => x.result), ['pong', 'pong', 'pong']);
        });
        // HTTP keeps its own cap.
        const r = await rpc(s, batch([1, 2, 3, 4].map((i) => ping(i))));
        assert.deepEqual(r.json.map((x) => x.result), ['pong', 'pong', 'pong', 'pong']);
    });
});

test('binary messages are JSON-RPC too, answered in binary frames; invalid UTF-8 inside is -32700', async () => {
    await withWs(srv, async (ws) => {
        await ws.send(Buffer.from(ping('bin')), { binary: true });
        const m = await ws.next();
        assert.equal(m.binary, true);
        assertResult(JSON.parse(m.text), 'pong', 'bin');

        const bad = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","method":"test.echo","params":["'),
            Buffer.from([0xc3, 0x28]), Buffer.from('"],"id":1}')]);
        await ws.send(bad, { binary: true });
        assertError(JSON.parse((await ws.next()).text), -32700, null);
        assertResult(await ws.call('tennis@ping', undefined, 'ok'), 'pong', 'ok');
    });
});

test('fragmented messages are reassembled, also around a ping between fragments', async () => {
    await withWs(srv, async (ws) => {
        const text = call('test.echo', [{ s: 'é'.repeat(50) }], 'frag');
        const bytes = Buffer.from(text);
        // ws: three frames, the cut falling inside a two-byte UTF-8 character.
        const cut1 = bytes.indexOf(0xc3) + 1, cut2 = cut1 + 40;
        await ws.send(bytes.subarray(0, cut1), { fin: false });
        await ws.send(bytes.subarray(cut1, cut2), { fin: false });
        await ws.send(bytes.subarray(cut2), { fin: true });
        assertResult(await ws.nextJson(), [{ s: 'é'.repeat(50) }], 'frag');
    });
    const raw = await RawWs.open(srv);
    try {
        const b = Buffer.from(ping('raw'));
        await raw.write(Buffer.concat([
            frame({ opcode: 1, fin: false, payload: b.subarray(0, 10) }),
            frame({ opcode: 9, payload: 'mid' }),
            frame({ opcode: 0, fin: false, payload: b.subarray(10, 20) }),
            frame({ opcode: 0, fin: true, payload: b.subarray(20) }),
        ]));
        // The pong and the answer, in whichever order (RFC 6455 orders neither).
        const got = [await raw.readFrame(), await raw.readFrame()];
        const pong = got.find((f) => f.opcode === 10), ans = got.find((f) => f.opcode === 1);
        assert.equal(pong?.payload.toString(), 'mid');
        assertResult(JSON.parse(ans.payload.toString()), 'pong', 'raw');
    } finally {
        raw.destroy();
    }
});

// ---- Ping / pong ----------------------------------------------------------------------------

test('ping from the client gets a pong with the same payload', async () => {
    await withWs(srv, async (ws) => {
        const got = new Promise((resolve) => ws.ws.once('pong', (d) => resolve(d.toString())));
        ws.ws.ping('are you there');
        assert.equal(await got, 'are you there');
        assertResult(await ws.call('tennis@ping', undefined, 1), 'pong', 1);
    });
});

test('keep-alive pings: a silent client is pinged and kept while it answers, dropped when it does not', async () => {
    await withServer(['--ws-ping-interval', '100ms'], async (s) => {
        const ok = await WsClient.open(s);
        const mute = await WsClient.open(s, { options: { autoPong: false } });
        try {
            await ok.until((c) => c.pings >= 3, { what: 'three pings' });
            assert.equal(ok.closeInfo, null, 'a client that answers pings stays');
            const info = await mute.closed({ timeout: 5000 });
            assert.equal(info.code, 1006, 'a client that does not answer is cut off (no close frame)');
            assert.ok(mute.pings >= 1);
            assertResult(await ok.call('tennis@ping', undefined, 'alive'), 'pong', 'alive');
        } finally {
            ok.terminate();
            mute.terminate();
        }
    });
});

// ---- Close ----------------------------------------------------------------------------------

test('close handshake: the client\'s code is echoed (1000, 4000 with a reason), the server then closes TCP', async () => {
    for (const [code, reason] of [[1000, ''], [4000, 'bye']]) {
        const ws = await WsClient.open(srv);
        ws.close(code, reason);
        const info = await ws.closed();
        assert.equal(info.code, code);
        assert.equal(info.reason, reason);
    }
    const raw = await RawWs.open(srv);
    await raw.send({ opcode: 8, payload: closePayload(1000, 'done') });
    const c = await raw.readClose();
    assert.equal(c.code, 1000);
    await raw.waitEnd();
});

test('protocol errors close with 1002', async () => {
    const cases = [
        ['a close code that may not be sent (1005)', { opcode: 8, payload: closePayload(1005) }],
        ['a one-byte close payload', { opcode: 8, payload: Buffer.from([3]) }],
        ['an unmasked frame', { payload: ping(1), mask: false }],
        ['reserved bits without an extension', { payload: ping(1), rsv: 4 }],
        ['a reserved opcode', { opcode: 3, payload: 'x' }],
        ['a continuation frame with no message', { opcode: 0, payload: 'x' }],
        ['a ping longer than 125 bytes', { opcode: 9, payload: 'p'.repeat(126) }],
        ['a fragmented ping', { opcode: 9, fin: false, payload: 'p' }],
    ];
    for (const [what, f] of cases) {
        const raw = await RawWs.open(srv);
        await raw.send(f);
        const c = await raw.readClose();
        assert.equal(c.code, 1002, what);
        await raw.waitEnd();
    }
    // A data frame inside a fragmented message.
    const raw = await RawWs.open(srv);
    await raw.write(Buffer.concat([frame({ opcode: 1, fin: false, payload: '[' }), frame({ opcode: 1, payload: ping(1) })]));
    assert.equal((await raw.readClose()).code, 1002);
    await raw.waitEnd();
});

test('invalid UTF-8 in a text message closes with 1007 (also split across fragments, or cut at the end)', async () => {
    const bad = [
        Buffer.concat([Buffer.from('{"jsonrpc":"2.0","method":"test.echo","params":["'), Buffer.from([0xff]), Buffer.from('"],"id":1}')]),
        Buffer.from([0x5b, 0xed, 0xa0, 0x80, 0x5d]), // a UTF-16 surrogate encoded in UTF-8
    ];
    for (const b of bad) {
        const ws = await WsClient.open(srv);
        await ws.send(b, { binary: false });
        assert.equal((await ws.closed()).code, 1007);
    }
    const ws = await WsClient.open(srv);
    await ws.send(Buffer.from('["'), { fin: false, binary: false });
    await ws.send(Buffer.from([0xc3]), { fin: false, binary: false });
    await ws.send(Buffer.from([0x28]), { fin: true, binary: false }); // 0xc3 0x28: not a character
    assert.equal((await ws.closed()).code, 1007);
    const cut = await WsClient.open(srv);
    await cut.send(Buffer.from([0x22, 0xe2, 0x82]), { binary: false }); // "€ without its last byte
    assert.equal((await cut.closed()).code, 1007);
});

test('message size: 5 MiB is taken, one byte more closes with 1009, also when only the fragments add up', async () => {
    const LIMIT = 5 * 1024 * 1024;
    await withWs(srv, async (ws) => {
        const head = '{"jsonrpc":"2.0","method":"test.echo","params":["', tail = '"],"id":"big"}';
        const body = head + 'x'.repeat(LIMIT - head.length - tail.length) + tail;
        assert.equal(Buffer.byteLength(body), LIMIT);
        await ws.send(body);
        const a = await ws.nextJson({ timeout: 20_000 });
        assert.equal(a.id, 'big');
        assert.equal(a.result[0].length, LIMIT - head.length - tail.length);
        await ws.send(body + ' ');
        const info = await ws.closed({ timeout: 20_000 });
        assert.equal(info.code, 1009);
        assert.match(info.reason, /exceeds 5242880 bytes/);
    });
    await withServer(['--max-ws-message', '1KiB'], async (s) => {
        const w = await WsClient.open(s);
        const part = Buffer.alloc(600, 0x20);
        await w.send(part, { fin: false });
        await w.send(part, { fin: true });
        assert.equal((await w.closed()).code, 1009);
    });
});

// ---- Concurrency and bounds -----------------------------------------------------------------

test('100 messages in flight on one connection: answers interleave as each finishes, ids match', async () => {
    await withWs(srv, async (ws) => {
        // Later messages finish sooner: the answers must come back out of send order.
        const ids = Array.from({ length: 100 }, (_, i) => i);
        await Promise.all(ids.map((i) => ws.send(call('test.sleep_async', [(100 - i) * 3], i))));
        const got = await ws.take(100);
        const order = got.map((a) => a.id);
        assert.deepEqual([...order].sort((a, b) => a - b), ids, 'every id answered once');
        assert.notDeepEqual(order, ids, 'answers went out as they finished, not in send order');
        for (const a of got) assertResult(a, (100 - a.id) * 3, a.id);
        // A fast call overtakes a slow one on the same connection.
        await ws.send(call('test.sleep_async', [500], 'slow'));
        await ws.send(ping('fast'));
        assert.equal((await ws.nextJson()).id, 'fast');
        assert.equal((await ws.nextJson()).id, 'slow');
    });
});

test('--ws-max-inflight bounds the calls one connection runs at once (reading stops past it)', async () => {
    await withServer(['--ws-max-inflight', '2'], async (s) => {
        await withWs(s, async (ws) => {
            const [got, ms] = await timed(async () => {
                for (let i = 0; i < 6; i++) await ws.send(call('test.sleep_async', [300], i));
                return ws.take(6);
            });
            assert.deepEqual(got.map((a) => a.result), [300, 300, 300, 300, 300, 300]);
            // Two at a time: three rounds of 300 ms. Unbounded, all six would finish together.
            assert.ok(ms >= 850, `six 300 ms calls two at a time took only ${ms.toFixed(0)} ms`);
        });
    });
});

test('a client that does not read is disconnected once --ws-max-queue bytes wait for it', async () => {
    await withServer(['--ws-max-queue', '64KiB'], async (s) => {
        const raw = await RawWs.open(s);
        raw.pause(); // read nothing more: the kernel's buffers fill, then the server's queue
        const reqs = [];
        for (let i = 0; i < 400; i++) reqs.push(frame({ payload: call('test.blob', [100000], i) }));
        raw.sock.write(Buffer.concat(reqs));
        // The server gives up on us: the socket errors or ends while we still do not read.
        const deadline = Date.now() + 20_000;
        let gone = false;
        raw.sock.once('close', () => { gone = true; });
        raw.sock.once('error', () => { gone = true; });
        while (!gone && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 50));
            // Probe the server side: a write to a socket the server closed fails.
            raw.sock.write(frame({ opcode: 9, payload: 'x' }));
        }
        assert.ok(gone, 'the server closed the connection of the client that stopped reading');
        raw.destroy();
    });
});

test('--ws-idle-timeout closes a connection without messages with 1001', async () => {
    await withServer(['--ws-idle-timeout', '300ms', '--ws-ping-interval', '0'], async (s) => {
        const ws = await WsClient.open(s);
        assertResult(await ws.call('tennis@ping', undefined, 1), 'pong', 1);
        const info = await ws.closed({ timeout: 5000 });
        assert.equal(info.code, 1001);
        assert.equal(info.reason, 'idle timeout');
    });
});

test('shutdown: answers in flight are sent, then close 1001; idle connections get 1001 at once', async () => {
    const s = await startServer();
    try {
        const busy = await WsClient.open(s);
        const idle = await WsClient.open(s);
        await busy.send(call('test.sleep_async', [400], 'last'));
        await assertResultSoon(busy, 'tennis@ping'); // the slow call is in flight now
        s.proc.kill('SIGTERM');
        assert.equal((await idle.closed()).code, 1001);
        const a = await busy.nextJson();
        assertResult(a, 400, 'last');
        const info = await busy.closed();
        assert.equal(info.code, 1001);
        assert.equal(info.reason, 'server shutting down');
        const res = await s.waitExit();
        assert.equal(res.code, 0, s.stderr());
    } finally {
        await s.kill();
    }
});

test('after its own close (idle timeout, stop) the server keeps TCP open until the client closes too', async () => {
    // RFC 6455 §7.1.1. Behind a proxy that ends the whole tunnel on the server's FIN (HAProxy),
    // an early FIN makes the frames the client still sends draw a reset that can destroy the
    // close frame on the client's side (docs/deploy.md).
    await withServer(['--ws-idle-timeout', '300ms', '--ws-ping-interval', '0'], async (s) => {
        const raw = await RawWs.open(s);
        assert.equal((await raw.readClose()).code, 1001);
        await raw.sendText(ping('late')); // sent before the client saw the close: dropped
        assert.ok(await raw.staysOpen(300), 'no FIN before the client\'s close frame');
        await raw.send({ opcode: 8, payload: closePayload(1000) });
        await raw.waitEnd();
    });
    const s = await startServer();
    try {
        const raw = await RawWs.open(s);
        s.proc.kill('SIGTERM');
        const c = await raw.readClose();
        assert.deepEqual([c.code, c.reason], [1001, 'server shutting down']);
        assert.ok(await raw.staysOpen(300), 'no FIN before the client\'s close frame');
        await raw.send({ opcode: 8, payload: closePayload(1001) });
        await raw.waitEnd();
        assert.deepEqual(await s.waitExit(), { code: 0, signal: null }, s.stderr());
    } finally {
        await s.kill();
    }
});

async function assertResultSoon(ws, method) {
    assertResult(await ws.call(method, undefined, 'soon'), 'pong', 'soon');
}

test('server still healthy, SIGTERM exits 0', async () => {
    await healthy(srv);
    await srv.stop();
});
