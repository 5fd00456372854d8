// SPDX-License-Identifier: MIT
// permessage-deflate on WebSocket (RFC 7692, docs/compression.md): negotiated with the `ws`
// client as it offers it by default and with every parameter, answers byte-exact with and
// without context takeover, compressed frames both ways (RSV1) seen on the wire, offers that
// cannot be honoured declined, a client that offers nothing served plain, max_ws_message bounding
// the inflated size (close 1009), and ws_deflate = off.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import WebSocket from 'ws';
import { withServer, rpc, call, batch, scrapeAdmin, compressionSeries } from './lib.mjs';
import { wsUrl, RawWs, WsClient, waitFor } from './wslib.mjs';

const WAIT_MS = 10_000;
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** A ws client with `pmd` as its perMessageDeflate option; resolves once open. ws.negotiated
 * is the server's Sec-WebSocket-Extensions ('' when none). */
function open(s, pmd) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(wsUrl(s), { perMessageDeflate: pmd });
        ws.once('upgrade', (res) => { ws.negotiated = res.headers['sec-websocket-extensions'] ?? ''; });
        const t = setTimeout(() => { ws.terminate(); reject(new Error('open timed out')); }, WAIT_MS);
        ws.once('open', () => { clearTimeout(t); resolve(ws); });
        ws.once('error', (e) => { clearTimeout(t); reject(e); });
    });
}

/** Sends text and resolves with the next message's text. */
function roundTrip(ws, text) {
    return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no answer')), WAIT_MS);
        ws.once('message', (d) => { clearTimeout(t); resolve(Buffer.from(d).toString('utf8')); });
        ws.send(text);
    });
}

/** 1500 letters that repeat nowhere within themselves (a little LCG). */
function noise(seed) {
    let x = seed >>> 0, out = '';
    for (let i = 0; i < 1500; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        out += String.fromCharCode(97 + ((x >>> 16) % 26));
    }
    return out;
}

/** A batch of 20 calls with answers well over gzip_min, different each round. The first item
 * repeats 1500 letters at a distance of 1500 bytes: a compressor keeping to a 1 KiB window
 * (max_window_bits=10) cannot point back at them, one with a larger window would. */
function batch20(round) {
    const items = [];
    const n = noise(round + 1);
    for (let i = 0; i < 20; i++) items.push(call('test.echo', [{ round, i, pad: i === 0 ? n + n : 'abc'.repeat(40 + i) }], `r${round}-${i}`));
    return batch(items);
}

async function checkRoundTrips(s, ws) {
    for (let round = 0; round < 5; round++) {
        const body = batch20(round);
        const want = (await rpc(s, body)).body; // the same answer over plain HTTP
        assert.equal(await roundTrip(ws, body), want, `round ${round} byte-exact`);
    }
}

test('the ws client negotiates permessage-deflate as it offers it by default; 20-item batches round-trip byte-exact', async () => {
    await withServer([], async (s) => {
        const ws = await open(s, true); // offers "permessage-deflate; client_max_window_bits"
        try {
            assert.equal(ws.negotiated, 'permessage-deflate');
            assert.match(ws.extensions, /^permessage-deflate/);
            await checkRoundTrips(s, ws);
        } finally {
            ws.terminate();
        }
    });
});

test('without context takeover and with small windows, both ways: negotiated as offered, still byte-exact', async () => {
    await withServer([], async (s) => {
        const ws = await open(s, { serverNoContextTakeover: true, clientNoContextTakeover: true,
            serverMaxWindowBits: 10, clientMaxWindowBits: 9, threshold: 0 });
        try {
            const ext = ws.negotiated;
            for (const p of ['server_no_context_takeover', 'client_no_context_takeover',
                'server_max_window_bits=10', 'client_max_window_bits=9'])
                assert.ok(ext.includes(p), `${p} in "${ext}"`);
            await checkRoundTrips(s, ws);
            // Small messages too (the client compresses everything at threshold 0).
            assert.equal(await roundTrip(ws, call('tennis@ping', undefined, 1)), '{"jsonrpc":"2.0","result":"pong","id":1}');
        } finally {
            ws.terminate();
        }
    });
});

test('on the wire: large answers go out with RSV1 and inflate to the plain answer; compressed requests are read; metrics count them', async () => {
    await withServer(['--admin-listen', '127.0.0.1:0'], async (s) => {
        const raw = await RawWs.open(s, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
        let out = { msgs: 0, plain: 0, wire: 0 };
        const before = compressionSeries(await scrapeAdmin(s), 'ws');
        try {
            assert.equal(raw.response.headers['sec-websocket-extensions'], 'permessage-deflate');
            // Under gzip_min: plain (RSV1 clear).
            await raw.sendText(call('tennis@ping', undefined, 1));
            let f = await raw.readFrame();
            assert.equal(f.rsv, 0);
            assert.equal(f.payload.toString(), '{"jsonrpc":"2.0","result":"pong","id":1}');
            const inflater = zlib.createInflateRaw(); // context kept across messages
            const inflate = (p) => new Promise((resolve) => {
                const out = [];
                const onData = (d) => out.push(d);
                inflater.on('data', onData);
                inflater.write(Buffer.concat([p, TAIL]));
                inflater.flush(zlib.constants.Z_SYNC_FLUSH, () => { inflater.off('data', onData); resolve(Buffer.concat(out).toString()); });
            });
            for (let i = 0; i < 3; i++) {
                const body = call('test.blob', [5000], `b${i}`);
                const want = (await rpc(s, body)).body;
                await raw.sendText(body);
                f = await raw.readFrame();
                assert.equal(f.rsv, 4, 'RSV1 set');
                assert.ok(f.payload.length < want.length / 10, `${f.payload.length} bytes for ${want.length}`);
                assert.equal(await inflate(f.payload), want);
                out = { msgs: out.msgs + 1, plain: out.plain + want.length, wire: out.wire + f.payload.length };
            }
            // A compressed request (RSV1, sync flush without its tail).
            const req = batch20(9);
            const z = zlib.deflateRawSync(Buffer.from(req), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
            assert.deepEqual(z.subarray(-4), TAIL);
            await raw.send({ opcode: 1, rsv: 4, payload: z.subarray(0, -4) });
            f = await raw.readFrame();
            const answer = (await rpc(s, req)).body;
            assert.equal(await inflate(f.payload), answer);
            out = { msgs: out.msgs + 1, plain: out.plain + answer.length, wire: out.wire + f.payload.length };
            // Counted as the client saw them: the small answer plain (not here), payloads without
            // the 00 00 ff ff tail, the request by what it inflated to.
            const m = await scrapeAdmin(s);
            const ws = compressionSeries(m, 'ws');
            assert.deepEqual(before.out, { msgs: 0, plain: 0, wire: 0 });
            assert.deepEqual(ws.out, out);
            assert.deepEqual(ws.in, { msgs: 1, plain: req.length, wire: z.length - 4 });
            // Context takeover both ways: both states live with the connection, in jrpc_held_bytes.
            assert.ok(ws.state > 250 << 10, `state ${ws.state} bytes`);
            assert.ok(m.get('jrpc_held_bytes') >= ws.state);
            assert.equal(m.get('jrpc_ws_deflate_connections'), 1);
            assert.equal(m.get('jrpc_ws_deflate_connections_total'), 1);
            assert.equal(compressionSeries(m, 'http').state, 0);
        } finally {
            raw.destroy();
        }
        await waitFor(async () => compressionSeries(await scrapeAdmin(s), 'ws').state === 0, { what: 'the state given back' });
        const m = await scrapeAdmin(s);
        assert.equal(m.get('jrpc_ws_deflate_connections'), 0);
        assert.equal(m.get('jrpc_ws_deflate_connections_total'), 1);
        // A client that offers nothing is not counted.
        const plainWs = await RawWs.open(s);
        plainWs.destroy();
        await waitFor(async () => (await scrapeAdmin(s)).get('jrpc_connections_total{transport="ws"}') === 2, { what: 'the second upgrade' });
        assert.equal((await scrapeAdmin(s)).get('jrpc_ws_deflate_connections_total'), 1);
    });
});

test('a client that offers no extension gets none, and RSV1 from it is a protocol error', async () => {
    await withServer([], async (s) => {
        const ws = await WsClient.open(s); // perMessageDeflate: false: no offer
        try {
            assert.equal(ws.ws.extensions, '');
            const a = await ws.call('test.blob', [5000]);
            assert.equal(a.result.length, 5000);
        } finally {
            ws.terminate();
        }
        const raw = await RawWs.open(s);
        try {
            assert.equal(raw.response.headers['sec-websocket-extensions'], undefined);
            await raw.send({ opcode: 1, rsv: 4, payload: 'x' });
            assert.equal((await raw.readClose()).code, 1002);
        } finally {
            raw.destroy();
        }
    });
});

test('offers jrpcd cannot honour are declined; the first acceptable one wins', async () => {
    await withServer([], async (s) => {
        const cases = [
            ['permessage-deflate; server_max_window_bits=8', undefined], // zlib has no 256-byte window
            ['permessage-deflate; server_max_window_bits=16', undefined],
            ['permessage-deflate; server_max_window_bits', undefined],
            ['permessage-deflate; client_no_context_takeover; client_no_context_takeover', undefined],
            ['permessage-deflate; unknown_param', undefined],
            ['x-webkit-deflate-frame', undefined],
            ['permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits',
                'permessage-deflate'],
            ['permessage-deflate; client_max_window_bits="12"', 'permessage-deflate; client_max_window_bits=12'],
            ['Permessage-Deflate; Server_No_Context_Takeover', 'permessage-deflate; server_no_context_takeover'],
        ];
        for (const [offer, want] of cases) {
            const raw = await RawWs.open(s, { headers: { 'Sec-WebSocket-Extensions': offer } });
            raw.destroy();
            assert.equal(raw.response.headers['sec-websocket-extensions'], want, offer);
        }
    });
});

test('max_ws_message bounds the inflated size: a deflate bomb closes 1009', async () => {
    await withServer(['--max-ws-message', '64KiB'], async (s) => {
        const raw = await RawWs.open(s, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
        try {
            const text = JSON.stringify({ jsonrpc: '2.0', method: 'test.echo', params: [' '.repeat(4 << 20)], id: 1 });
            const z = zlib.deflateRawSync(Buffer.from(text), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
            assert.ok(z.length < 16 << 10, `${z.length} bytes on the wire`);
            await raw.send({ opcode: 1, rsv: 4, payload: z.subarray(0, -4) });
            const c = await raw.readClose();
            assert.equal(c.code, 1009);
            assert.match(c.reason, /65536/);
        } finally {
            raw.destroy();
        }
    });
});

test('--ws-deflate=off declines the offer; the ws client then talks plain', async () => {
    await withServer(['--ws-deflate=off'], async (s) => {
        const ws = await open(s, true);
        try {
            assert.equal(ws.negotiated, '');
            assert.equal(ws.extensions, '');
            await checkRoundTrips(s, ws);
        } finally {
            ws.terminate();
        }
    });
});

test('the compression state counts in what the connection holds (jrpc_held_bytes) until it closes', async () => {
    await withServer(['--admin-listen', '127.0.0.1:0', '--io-threads', '1'], async (s) => {
        let m = null;
        await waitFor(() => (m = /jrpcd admin listening on (\S+):(\d+)/.exec(s.stdout())) !== null, { what: 'admin line' });
        const admin = { host: m[1], port: Number(m[2]), path: '/metrics' };
        const heldBytes = async () => {
            const r = await rpc(admin, undefined, { method: 'GET', path: '/metrics' });
            return Number(/^jrpc_held_bytes (\d+)$/m.exec(r.body)[1]);
        };
        const idle = await heldBytes();
        const ws = await open(s, true); // context takeover both ways: the state lives on
        try {
            await checkRoundTrips(s, ws); // a compressed answer out, a compressed request in
            const held = await heldBytes();
            // zlib's deflate state at window 15, memory level 8 is about 260 KiB, inflate's 40.
            assert.ok(held - idle > 250 << 10, `held ${held - idle} bytes more while connected`);
        } finally {
            ws.terminate();
        }
        await waitFor(async () => (await heldBytes()) - idle < 16 << 10, { what: 'the state released' });
    });
});
