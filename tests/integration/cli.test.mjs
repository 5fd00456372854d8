// SPDX-License-Identifier: MIT
// The jrpc command-line client against the real jrpcd: call, notify, batch (JSON and one call per
// line), bench, exit statuses, and params checked before anything is sent.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { startServer, healthy, rpc, runCli, JRPCD } from './lib.mjs';

const CLI = process.env.JRPC_CLI || path.join(path.dirname(JRPCD), 'jrpc');
let srv;
let url;
before(async () => {
    srv = await startServer();
    url = `http://127.0.0.1:${srv.port}/api/v1/endpoint`;
});
after(async () => { await healthy(srv); await srv.stop(); await srv.kill(); });

const jrpc = (args, input) => runCli(['--url', url, ...args], input, { cmd: CLI, timeout: 20000 });

test('call prints the result byte-exact and exits 0', async () => {
    assert.deepEqual(await jrpc(['call', 'tennis@ping']), { code: 0, out: '"pong"\n', err: '' });
    assert.equal((await jrpc(['call', 'test.echo', '[14066156191713469572, 1e400]'])).out,
        '[14066156191713469572, 1e400]\n');
    assert.equal((await jrpc(['call', 'subtract', '{"minuend": 42, "subtrahend": 23}'])).out, '19\n');
});

test('a JSON-RPC error goes to stderr with exit 1', async () => {
    const r = await jrpc(['call', 'no.such.method']);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.equal(JSON.parse(r.err).code, -32601);
});

test('bad params are refused before sending (exit 2)', async () => {
    const before = (await rpc(srv, '{"jsonrpc":"2.0","method":"message@create","params":["a"],"id":1}')).json.result.id;
    for (const p of ['[1,', '{"a":}', '[1] x']) {
        const r = await jrpc(['call', 'message@create', p]);
        assert.equal(r.code, 2, p);
        assert.match(r.err, /params/);
    }
    const after = (await rpc(srv, '{"jsonrpc":"2.0","method":"message@create","params":["b"],"id":1}')).json.result.id;
    assert.equal(after, before + 1, 'nothing reached the server');
});

test('notify sends a notification (the server answers nothing) and exits 0', async () => {
    const before = (await rpc(srv, '{"jsonrpc":"2.0","method":"message@create","params":["a"],"id":1}')).json.result.id;
    assert.deepEqual(await jrpc(['notify', 'message@create', '["via notify"]']), { code: 0, out: '', err: '' });
    const after = (await rpc(srv, '{"jsonrpc":"2.0","method":"message@create","params":["b"],"id":1}')).json.result.id;
    assert.equal(after, before + 2, 'the notification ran');
});

test('batch from one call per line, comments and blank lines skipped', async () => {
    const r = await jrpc(['batch'], 'subtract [42, 23]\n\n# a comment\ntennis@ping\nget_data\n');
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), [
        { jsonrpc: '2.0', result: 19, id: 1 },
        { jsonrpc: '2.0', result: 'pong', id: 2 },
        { jsonrpc: '2.0', result: ['hello', 5], id: 3 },
    ]);
});

test('batch from a JSON array keeps its ids; a failed item makes the exit status 1', async () => {
    const body = '[{"jsonrpc":"2.0","method":"tennis@ping","id":"x"},{"jsonrpc":"2.0","method":"nope","id":7}]';
    const r = await jrpc(['batch', '-'], body);
    assert.equal(r.code, 1, r.err);
    const a = JSON.parse(r.out);
    assert.deepEqual(a[0], { jsonrpc: '2.0', result: 'pong', id: 'x' });
    assert.equal(a[1].error.code, -32601);
    assert.equal(a[1].id, 7);
    assert.match(r.err, /2 calls, 1 ok, 1 failed \(-32601: 1\)/);
});

test('call: positional params with type inference, --params for the explicit form', async () => {
    const r = await jrpc(['call', 'test.echo', '0x2f0E', '42', 'true', 'null', '"7"', 'plain text', '[1,2]', '--', '-1.5e3']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), ['0x2f0E', 42, true, null, '7', 'plain text', [1, 2], -1.5e3]);
    assert.equal((await jrpc(['call', 'test.echo', '--params', '{"a":1}'])).out, '{"a":1}\n');
    const both = await jrpc(['call', 'test.echo', '--params', '[1]', '2']);
    assert.equal(both.code, 2);
    assert.match(both.err, /either with --params or as arguments/);
});

test('bench loads the server and reports rate, latency and no errors', async () => {
    const r = await jrpc(['bench', '-c', '4', '-n', '2000', 'tennis@ping']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^2000 requests in [0-9.]+ s over 4 connections: [0-9]+ req\/s, 0 errors$/m);
    assert.match(r.out, /latency p50 [0-9]+ us {2}p99 [0-9]+ us/);
    const bad = await jrpc(['bench', '-c', '2', '-n', '50', 'no.such.method']);
    assert.equal(bad.code, 1);
    assert.match(bad.out, /50 errors/);
});

test('usage errors exit 2; --version answers', async () => {
    assert.equal((await jrpc(['frobnicate'])).code, 2);
    assert.equal((await jrpc([])).code, 2);
    const v = spawnSync(CLI, ['--version'], { encoding: 'utf8' });
    assert.match(v.stdout, /^jrpc \d+\.\d+\.\d+\n$/);
    const down = spawnSync(CLI, ['--url', 'http://127.0.0.1:1/', 'call', 'x'], { encoding: 'utf8' });
    assert.equal(down.status, 2);
    assert.match(down.stderr, /jrpc: /);
});
