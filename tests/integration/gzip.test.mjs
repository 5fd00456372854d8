// SPDX-License-Identifier: MIT
// gzip over HTTP (docs/compression.md): answers compressed for clients that accept gzip (curl
// --compressed, Node fetch, Python) with Accept-Encoding's q-values honoured and Vary sent;
// request bodies with Content-Encoding: gzip decoded, max_body bounding the decoded bytes (a
// bomb gets 413 and jrpcd's peak RSS stays flat); other codings 415.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import zlib from 'node:zlib';
import { withServer, HttpConn, rpc, call, batch, buildRequest, chunked, decorate, scrapeAdmin, compressionSeries, RPC_PATH } from './lib.mjs';

const BIG = call('test.blob', [100000], 1); // a 100 KB answer
const SMALL = '{"jsonrpc":"2.0","method":"tennis@ping","id":1}';
const url = (s) => `http://${s.host}:${s.port}${RPC_PATH}`;

/** The raw answer to body with the given headers (the body bytes as sent, not decoded). */
async function raw(s, body, headers = {}) {
    const conn = await HttpConn.open(s);
    try {
        await conn.write(buildRequest(s, { body, headers }));
        return await conn.readResponse();
    } finally {
        conn.close();
    }
}

test('answers over gzip_min are gzip-encoded for a client that accepts it, byte-exact once decoded', async () => {
    await withServer([], async (s) => {
        const plain = await raw(s, BIG);
        assert.equal(plain.headers['content-encoding'], undefined, 'no Accept-Encoding: identity');
        assert.equal(plain.headers.vary, 'Accept-Encoding');
        const gz = await raw(s, BIG, { 'Accept-Encoding': 'gzip' });
        assert.equal(gz.status, 200);
        assert.equal(gz.headers['content-encoding'], 'gzip');
        assert.equal(gz.headers.vary, 'Accept-Encoding');
        assert.equal(Number(gz.headers['content-length']), gz.bodyBuf.length);
        assert.ok(gz.bodyBuf.length < plain.bodyBuf.length / 10, `compressed to ${gz.bodyBuf.length} bytes`);
        assert.deepEqual(zlib.gunzipSync(gz.bodyBuf), plain.bodyBuf);
        // REST answers too, GET included.
        const conn = await HttpConn.open(s);
        try {
            await conn.write(buildRequest(s, { method: 'GET', path: `/rest/test.echo?a=${'x'.repeat(1500)}`, headers: { 'Accept-Encoding': 'gzip' } }));
            const g = await conn.readResponse();
            assert.equal(g.headers['content-encoding'], 'gzip');
            assert.deepEqual(JSON.parse(zlib.gunzipSync(g.bodyBuf)), { a: 'x'.repeat(1500) });
        } finally {
            conn.close();
        }
        // Below gzip_min: plain for every client, so no Vary either.
        const small = await raw(s, SMALL, { 'Accept-Encoding': 'gzip' });
        assert.equal(small.headers['content-encoding'], undefined);
        assert.equal(small.headers.vary, undefined);
        assert.equal(decorate(small).json.result, 'pong');
    });
});

test('Accept-Encoding q-values: q=0 refuses gzip, * stands for it, a preferred identity wins', async () => {
    await withServer([], async (s) => {
        const cases = [
            ['gzip;q=0', false], ['gzip; q=0.000, identity', false], ['*;q=0.5', true],
            ['br, *;q=0', false], ['identity;q=1, gzip;q=0.5', false], ['gzip;q=0.5, identity;q=0.5', true],
            ['deflate, GZIP', true], ['x-gzip', true], ['br, zstd', false], ['gzip;q=2', false],
            ['deflate, gzip;q=1.0, br;q=0.9, zstd;q=0.8, identity;q=0.1', true],
        ];
        for (const [ae, want] of cases) {
            const r = await raw(s, BIG, { 'Accept-Encoding': ae });
            assert.equal(r.status, 200, ae);
            assert.equal(r.headers['content-encoding'] === 'gzip', want, `Accept-Encoding: ${ae}`);
        }
    });
});

test('curl --compressed, Node fetch and Python get gzip and decode the same answer', async () => {
    await withServer([], async (s) => {
        const plain = (await rpc(s, BIG)).body;
        const out = execFileSync('curl', ['-sS', '--compressed', '-D', '-', '-H', 'Content-Type: application/json',
            '--data-binary', BIG, url(s)], { encoding: 'latin1', maxBuffer: 1 << 24 });
        const [head, body] = out.split('\r\n\r\n');
        assert.match(head, /^content-encoding: gzip$/im, head);
        assert.equal(body, plain);

        const res = await fetch(url(s), { method: 'POST', body: BIG, headers: { 'Content-Type': 'application/json' } });
        assert.equal(res.headers.get('content-encoding'), 'gzip'); // undici asks for it and decodes
        assert.equal(await res.text(), plain);

        const py = `
import gzip, json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), headers={"Accept-Encoding": "gzip"})
with urllib.request.urlopen(req) as r:
    assert r.headers["Content-Encoding"] == "gzip", r.headers
    body = gzip.decompress(r.read())
# A gzip request body too, as a Python client would send it.
req = urllib.request.Request(sys.argv[1], data=gzip.compress(sys.argv[2].encode()),
                             headers={"Content-Encoding": "gzip"})
with urllib.request.urlopen(req) as r:
    assert r.read() == body
try:
    import requests  # what most Python clients use: decodes gzip by itself
    r = requests.post(sys.argv[1], data=sys.argv[2])
    assert r.headers["Content-Encoding"] == "gzip" and r.content == body
except ImportError:
    pass
sys.stdout.write(body.decode())
`;
        const pyOut = execFileSync('python3', ['-c', py, url(s), BIG], { encoding: 'utf8', maxBuffer: 1 << 24 });
        assert.equal(pyOut, plain);
    });
});

test('gzip request bodies are decoded: Content-Length, chunked in small pieces, several members', async () => {
    await withServer([], async (s) => {
        const items = [];
        for (let i = 0; i < 50; i++) items.push(call('test.echo', [i, 'x'.repeat(100)], i));
        const body = batch(items);
        const want = (await rpc(s, body)).body;
        const gz = zlib.gzipSync(body);
        let r = await rpc(s, gz, { headers: { 'Content-Encoding': 'gzip' } });
        assert.equal(r.status, 200);
        assert.equal(r.body, want);
        r = decorate(await raw(s, chunked(gz, [7, 1, 300]), { 'Content-Encoding': 'gzip', 'Transfer-Encoding': 'chunked' }));
        assert.equal(r.body, want);
        const half = Buffer.from(body).length >> 1;
        const two = Buffer.concat([zlib.gzipSync(Buffer.from(body).subarray(0, half)), zlib.gzipSync(Buffer.from(body).subarray(half))]);
        r = await rpc(s, two, { headers: { 'Content-Encoding': 'x-gzip' } });
        assert.equal(r.body, want);
        // Both ways at once.
        const both = await raw(s, gz, { 'Content-Encoding': 'gzip', 'Accept-Encoding': 'gzip' });
        assert.equal(both.headers['content-encoding'], 'gzip');
        assert.equal(zlib.gunzipSync(both.bodyBuf).toString(), want);
    });
});

test('bad gzip bodies get 400, other codings 415 with Accept-Encoding; gzip off refuses gzip too', async () => {
    await withServer([], async (s) => {
        const gz = zlib.gzipSync(SMALL);
        let r = await rpc(s, gz.subarray(0, gz.length - 4), { headers: { 'Content-Encoding': 'gzip' } });
        assert.equal(r.status, 400);
        assert.match(r.json.error.message, /cut short/);
        r = await rpc(s, 'not gzip at all', { headers: { 'Content-Encoding': 'gzip' } });
        assert.equal(r.status, 400);
        assert.equal(r.json.error.code, -32700);
        for (const ce of ['br', 'deflate', 'gzip, gzip', 'zstd']) {
            r = await rpc(s, SMALL, { headers: { 'Content-Encoding': ce } });
            assert.equal(r.status, 415, ce);
            assert.equal(r.headers['accept-encoding'], 'gzip');
            assert.equal(r.json.error.code, -32600);
            assert.match(r.json.error.message, /Content-Encoding/);
        }
        r = await rpc(s, SMALL, { headers: { 'Content-Encoding': 'identity' } });
        assert.equal(r.json.result, 'pong');
    });
    await withServer(['--gzip=off'], async (s) => {
        const r = await raw(s, BIG, { 'Accept-Encoding': 'gzip' });
        assert.equal(r.headers['content-encoding'], undefined);
        assert.equal(r.headers.vary, undefined);
        const g = await rpc(s, zlib.gzipSync(SMALL), { headers: { 'Content-Encoding': 'gzip' } });
        assert.equal(g.status, 415);
        assert.equal(g.headers['accept-encoding'], 'identity');
    });
});

test('--gzip-min and --gzip-level: the threshold and the level apply', async () => {
    await withServer(['--gzip-min', '100KiB', '--gzip-level', '9'], async (s) => {
        let r = await raw(s, BIG, { 'Accept-Encoding': 'gzip' });
        assert.equal(r.headers['content-encoding'], undefined, '100 036 bytes < 100 KiB');
        r = await raw(s, call('test.blob', [200000], 1), { 'Accept-Encoding': 'gzip' });
        assert.equal(r.headers['content-encoding'], 'gzip');
    });
});

const sanitized = (pid) => /lib[at]san|libclang_rt\.[at]san/.test(readFileSync(`/proc/${pid}/maps`, 'utf8'));
const status = (pid, key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;

test('a gzip bomb (10 MB decoded from ~10 KB) gets 413 and jrpcd\'s peak RSS stays flat', async (t) => {
    const bomb = zlib.gzipSync(Buffer.alloc(10_000_000, 0x20), { level: 9 });
    assert.ok(bomb.length < 20_000, `bomb is ${bomb.length} bytes`);
    await withServer(['--max-body', '256KiB'], async (s) => {
        const pid = s.proc.pid;
        await rpc(s, zlib.gzipSync(SMALL), { headers: { 'Content-Encoding': 'gzip' } }); // warm up
        try { writeFileSync(`/proc/${pid}/clear_refs`, '5'); } catch { /* VmHWM counts from the start */ }
        const before = status(pid, 'VmHWM');
        for (let i = 0; i < 5; i++) {
            const r = await rpc(s, bomb, { headers: { 'Content-Encoding': 'gzip' } });
            assert.equal(r.status, 413);
            assert.equal(r.json.error.code, -32005);
            assert.match(r.json.error.message, /262144 bytes once decoded/);
        }
        const after = status(pid, 'VmHWM');
        t.diagnostic(`VmHWM ${(before / 1048576).toFixed(1)} MiB before, ${(after / 1048576).toFixed(1)} MiB after 5 bombs`);
        if (!sanitized(pid))
            assert.ok(after - before < 2 << 20, `peak RSS grew by ${after - before} bytes (a bomb decodes to 10 MB)`);
    });
});

test('metrics: gzip answers and decoded bodies move the compression series by what the client saw', async () => {
    await withServer(['--admin-listen', '127.0.0.1:0', '--max-body', '256KiB'], async (s) => {
        const before = await scrapeAdmin(s);
        const z0 = compressionSeries(before, 'http');
        assert.deepEqual(z0.out, { msgs: 0, plain: 0, wire: 0 });
        assert.equal(z0.state, 0);
        // Three gzip answers of known size; what arrived is what counts.
        let plain = 0, wire = 0;
        for (const n of [100000, 20000, 5000]) {
            const r = await raw(s, call('test.blob', [n], n), { 'Accept-Encoding': 'gzip' });
            assert.equal(r.headers['content-encoding'], 'gzip');
            wire += r.bodyBuf.length;
            plain += zlib.gunzipSync(r.bodyBuf).length;
        }
        // Not compressed, so not counted: no Accept-Encoding, under gzip_min.
        assert.equal((await raw(s, BIG)).headers['content-encoding'], undefined);
        assert.equal((await raw(s, SMALL, { 'Accept-Encoding': 'gzip' })).headers['content-encoding'], undefined);
        // Two gzip bodies decoded, one of them chunked (its framing is not counted).
        const body = batch([call('test.echo', ['y'.repeat(3000)], 1), call('tennis@ping', undefined, 2)]);
        const gz = zlib.gzipSync(body);
        assert.equal((await rpc(s, gz, { headers: { 'Content-Encoding': 'gzip' } })).status, 200);
        assert.equal(decorate(await raw(s, chunked(gz, [50]), { 'Content-Encoding': 'gzip', 'Transfer-Encoding': 'chunked' })).json.length, 2);
        // Refused bodies count where they did before, not as decoded: a bomb (413), a coding (415).
        const bomb = zlib.gzipSync(Buffer.alloc(1_000_000, 0x20), { level: 9 });
        assert.equal((await rpc(s, bomb, { headers: { 'Content-Encoding': 'gzip' } })).status, 413);
        assert.equal((await rpc(s, SMALL, { headers: { 'Content-Encoding': 'br' } })).status, 415);

        const after = await scrapeAdmin(s);
        const z = compressionSeries(after, 'http');
        assert.deepEqual(z.out, { msgs: 3, plain, wire });
        assert.deepEqual(z.in, { msgs: 2, plain: 2 * Buffer.byteLength(body), wire: 2 * gz.length });
        assert.equal(z.state, 0, 'every stream ended, its state given back');
        assert.equal(after.get('jrpc_limit_rejections_total{limit="max_body"}'), 1);
        assert.equal(after.get('jrpc_http_requests_total{status="415"}'), 1);
        assert.deepEqual(compressionSeries(after, 'ws').out, { msgs: 0, plain: 0, wire: 0 });
        assert.equal(after.get('jrpc_ws_deflate_connections_total'), 0);
    });
});
