// SPDX-License-Identifier: MIT
// Access lines, log_format, log_file with SIGUSR1, and trusted_proxies: what an operator reads
// in the log names the methods, the failed items by code, the client (the forwarded one behind
// a trusted proxy) and its user agent; per-IP caps apply to the forwarded address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WebSocket } from 'ws';
import {
    withServer, rpc, call, batch, HttpConn, waitHeld, release, RPC_PATH, buildRequest, decorate,
} from './lib.mjs';

const WAIT_MS = 5000;

/** Wait (bounded) until get() returns something truthy; fail with what() otherwise. */
async function until(get, what) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
        const v = get();
        if (v) return v;
        if (Date.now() > deadline) assert.fail(`waited ${WAIT_MS} ms for ${what()}`);
        await new Promise((r) => setImmediate(r));
    }
}

const accessLines = (text, ua) => text.split('\n').filter((l) => l.includes(ua));

// A batch of three with one unknown method: failed=1, code -32601.
const BATCH = batch([
    call('tennis@ping', undefined, 1),
    call('no.such_method', undefined, 2),
    call('test.echo', ['x'], 3),
]);

test('text access line: methods, items, failed items by code, bytes, duration, client, UA', async () => {
    await withServer([], async (srv) => {
        const r = await rpc(srv, BATCH, { headers: { 'User-Agent': 'logs-text/1.0' } });
        assert.equal(r.status, 200);
        const line = await until(() => accessLines(srv.stderr(), 'logs-text/1.0')[0],
            () => `the access line in:\n${srv.stderr()}`);
        assert.match(line, /^\S+ info 127\.0\.0\.1:\d+ "POST \/api\/v1\/endpoint" 200 items=3 /);
        assert.match(line, / method=tennis@ping,no\.such_method,test\.echo /);
        assert.match(line, / failed=1 codes=-32601:1 /);
        assert.match(line, new RegExp(` bytes=${r.bodyBuf.length} \\d+us `));
        assert.match(line, / ua="logs-text\/1\.0"$/);
    });
});

test('a batch past the names that fit says how many more', async () => {
    await withServer([], async (srv) => {
        const items = Array.from({ length: 100 }, (_, i) => call('tennis@ping', undefined, i));
        await rpc(srv, batch(items), { headers: { 'User-Agent': 'logs-many/1.0' } });
        const line = await until(() => accessLines(srv.stderr(), 'logs-many/1.0')[0],
            () => `the access line in:\n${srv.stderr()}`);
        const m = / method=((?:tennis@ping,)+)\+(\d+) failed=0 bytes/.exec(line);
        assert.ok(m, line);
        assert.equal(m[1].split(',').length - 1 + Number(m[2]), 100, line);
    });
});

test('log_format json: one object per line with fixed keys', async () => {
    await withServer(['--log-format', 'json'], async (srv) => {
        const r = await rpc(srv, BATCH, { headers: { 'User-Agent': 'logs-json/1.0' } });
        assert.equal(r.status, 200);
        await until(() => accessLines(srv.stderr(), 'logs-json/1.0')[0], () => srv.stderr());
        const lines = srv.stderr().trim().split('\n');
        const objs = lines.map((l) => JSON.parse(l)); // every line parses
        for (const o of objs) {
            assert.match(o.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
            assert.ok(['error', 'warn', 'info', 'debug'].includes(o.level), JSON.stringify(o));
            assert.equal(typeof o.msg, 'string');
        }
        const a = objs.find((o) => o.user_agent === 'logs-json/1.0');
        assert.equal(a.msg, 'access');
        assert.equal(a.transport, 'http');
        assert.match(a.client, /^127\.0\.0\.1:\d+$/);
        assert.equal(a.http_method, 'POST');
        assert.equal(a.path, RPC_PATH);
        assert.equal(a.status, 200);
        assert.equal(a.items, 3);
        assert.equal(a.method, 'tennis@ping,no.such_method,test.echo');
        assert.equal(a.failed, 1);
        assert.deepEqual(a.codes, { '-32601': 1 });
        assert.equal(a.bytes, r.bodyBuf.length);
        assert.equal(typeof a.duration_us, 'number');
        assert.equal(a.proxy, undefined);
    });
});

test('WebSocket messages get access lines too', async () => {
    await withServer(['--log-format', 'json'], async (srv) => {
        const ws = new WebSocket(`ws://127.0.0.1:${srv.port}${RPC_PATH}`);
        await new Promise((ok, no) => { ws.once('open', ok); ws.once('error', no); });
        const answer = new Promise((ok) => ws.once('message', (d) => ok(d.toString())));
        ws.send(BATCH);
        const text = await answer;
        ws.close();
        const a = await until(() => srv.stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l))
            .find((o) => o.msg === 'access' && o.transport === 'ws'), () => srv.stderr());
        assert.match(a.client, /^127\.0\.0\.1:\d+$/);
        assert.equal(a.proxy, undefined, 'no proxy named when the client came directly');
        assert.equal(a.items, 3);
        assert.equal(a.failed, 1);
        assert.deepEqual(a.codes, { '-32601': 1 });
        assert.equal(a.bytes, Buffer.byteLength(text));
    });
});

test('log_file is written, and SIGUSR1 reopens it after a rename', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-logs-'));
    const file = path.join(dir, 'jrpcd.log');
    try {
        await withServer(['--log-file', file], async (srv) => {
            await rpc(srv, BATCH, { headers: { 'User-Agent': 'before-rotate' } });
            await until(() => existsSync(file) && readFileSync(file, 'utf8').includes('before-rotate'),
                () => `the first line in ${file}`);
            assert.ok(!srv.stderr().includes('before-rotate'), 'the line went to stderr too');
            renameSync(file, `${file}.1`);
            srv.proc.kill('SIGUSR1');
            await until(() => existsSync(file) && readFileSync(file, 'utf8').includes('reopened'),
                () => `a new ${file} after SIGUSR1`);
            await rpc(srv, BATCH, { headers: { 'User-Agent': 'after-rotate' } });
            await until(() => readFileSync(file, 'utf8').includes('after-rotate'),
                () => `the next line in the new ${file}`);
            assert.ok(!readFileSync(`${file}.1`, 'utf8').includes('after-rotate'),
                'the rotated file got a line after SIGUSR1');
        });
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test('X-Forwarded-For from a trusted proxy names the client: the right-most untrusted hop', async () => {
    await withServer(['--trusted-proxies', '127.0.0.1, 10.0.0.0/8, 2001:db8::/32'], async (srv) => {
        // Right-most address that is not a trusted proxy: 10.1.2.3 is one, 203.0.113.7 is not.
        await rpc(srv, BATCH, { headers: { 'User-Agent': 'xff-1', 'X-Forwarded-For': '198.51.100.1, 203.0.113.7, 10.1.2.3' } });
        await rpc(srv, BATCH, { headers: { 'User-Agent': 'fwd-1', Forwarded: 'for="[2001:db9::5]:4711";proto=http' } });
        const x = await until(() => accessLines(srv.stderr(), 'xff-1')[0], () => srv.stderr());
        assert.match(x, / info 203\.0\.113\.7 "POST /);
        assert.match(x, / proxy=127\.0\.0\.1:\d+ /);
        const f = await until(() => accessLines(srv.stderr(), 'fwd-1')[0], () => srv.stderr());
        assert.match(f, / info 2001:db9::5 "POST /);
    });
});

test('X-Forwarded-For from a peer that is not a trusted proxy is ignored', async () => {
    await withServer(['--trusted-proxies', '10.0.0.0/8'], async (srv) => {
        await rpc(srv, BATCH, { headers: { 'User-Agent': 'xff-2', 'X-Forwarded-For': '203.0.113.7' } });
        const x = await until(() => accessLines(srv.stderr(), 'xff-2')[0], () => srv.stderr());
        assert.match(x, / info 127\.0\.0\.1:\d+ "POST /);
        assert.ok(!x.includes('203.0.113.7') && !x.includes('proxy='), x);
    });
});

test('max_connections_per_ip applies to the forwarded address behind a trusted proxy', async () => {
    await withServer(['--trusted-proxies', '127.0.0.1', '--max-connections-per-ip', '1'], async (srv) => {
        const A = { 'X-Forwarded-For': '203.0.113.7' };
        // Client A holds one request in flight on the proxy's first connection.
        const first = await HttpConn.open(srv);
        await first.write(buildRequest(srv, { body: call('test.hold', undefined, 1), headers: A }));
        await waitHeld(srv, 1);
        // A second request for A, on another proxy connection: over the cap.
        const r = await rpc(srv, call('tennis@ping', undefined, 2), { headers: A });
        assert.equal(r.status, 429, r.body);
        assert.equal(r.json.error.code, -32005);
        // Another client through the same proxy address is served: the proxy itself is not capped.
        const b = await rpc(srv, call('tennis@ping', undefined, 3), { headers: { 'X-Forwarded-For': '198.51.100.9' } });
        assert.equal(b.status, 200, b.body);
        assert.equal(await release(srv), 1);
        assert.equal(decorate(await first.readResponse()).status, 200);
        first.close();
        // A's request is finished: A has its slot again.
        const again = await rpc(srv, call('tennis@ping', undefined, 4), { headers: A });
        assert.equal(again.status, 200, again.body);
    });
});

test('a WebSocket through a trusted proxy keeps its client counted until it closes', async () => {
    await withServer(['--trusted-proxies', '127.0.0.1', '--max-connections-per-ip', '1', '--log-format', 'json'], async (srv) => {
        const A = { 'X-Forwarded-For': '203.0.113.8' };
        const ws = new WebSocket(`ws://127.0.0.1:${srv.port}${RPC_PATH}`, { headers: { ...A, 'User-Agent': 'ws-fwd' } });
        await new Promise((ok, no) => { ws.once('open', ok); ws.once('error', no); });
        const answer = new Promise((ok) => ws.once('message', (d) => ok(d.toString())));
        ws.send(call('tennis@ping', undefined, 1));
        await answer;
        const a = await until(() => srv.stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l))
            .find((o) => o.msg === 'access' && o.transport === 'ws'), () => srv.stderr());
        assert.equal(a.client, '203.0.113.8');
        assert.match(a.proxy, /^127\.0\.0\.1:\d+$/, 'the proxy is named after the client');
        // The open WebSocket holds A's one slot.
        const r = await rpc(srv, call('tennis@ping', undefined, 2), { headers: A });
        assert.equal(r.status, 429, r.body);
        ws.close();
        await new Promise((ok) => ws.once('close', ok));
        // Once the server has closed its side the slot is free again.
        const deadline = Date.now() + WAIT_MS;
        let again;
        while ((again = await rpc(srv, call('tennis@ping', undefined, 3), { headers: A })).status === 429) {
            if (Date.now() > deadline) assert.fail('the WebSocket kept its slot after closing');
        }
        assert.equal(again.status, 200, again.body);
    });
});

test('bad trusted_proxies and log_format are refused; a log_file that cannot be opened stops jrpcd', async () => {
    const { spawnSync } = await import('node:child_process');
    const { JRPCD } = await import('./lib.mjs');
    const r = spawnSync(JRPCD, ['--trusted-proxies', '10.0.0.0/33', '--check'], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /trusted_proxies.*10\.0\.0\.0\/33|10\.0\.0\.0\/33.*(address|CIDR)/);
    const f = spawnSync(JRPCD, ['--log-format', 'yaml', '--check'], { encoding: 'utf8' });
    assert.equal(f.status, 2, f.stderr);
    assert.match(f.stderr, /"yaml" is not a log format/);
    const { moduleArgs } = await import('./lib.mjs');
    const o = spawnSync(JRPCD, ['--listen', '127.0.0.1:0', ...moduleArgs(), '--log-file', '/nonexistent-dir/jrpcd.log'],
        { encoding: 'utf8', timeout: 10000 });
    assert.equal(o.status, 1, o.stderr);
    assert.match(o.stderr, /log_file: cannot open \/nonexistent-dir\/jrpcd\.log/);
});
