// SPDX-License-Identifier: MIT
// jrpc over TLS: a real HAProxy terminates TLS in front of jrpcd with a certificate this test
// makes with the openssl command (self-signed for "localhost", so it is its own CA). wss://
// `call`, `batch` (chunked to jrpcd's max_batch_ws 20) and `subscribe --count` work with
// --cacert; without it the certificate is not trusted (exit 2, the message says so); a name the
// certificate does not hold is a host name mismatch; a server that does not speak TLS is a
// handshake failure; -k skips the certificate checks; https:// `batch`
// takes the same --cacert and -k. Skipped, with the reason, when haproxy or openssl is missing
// (scripts/setup.sh installs both).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, healthy, rpc, call, runCli, scrapeAdmin, freePort, RPC_PATH } from './lib.mjs';
import { waitFor } from './wslib.mjs';

const HAPROXY = process.env.HAPROXY || '/usr/sbin/haproxy';
const OPENSSL = process.env.OPENSSL || '/usr/bin/openssl';
const skip = !existsSync(HAPROXY) ? `cli-tls: SKIPPED: ${HAPROXY} not found (Debian package haproxy)`
    : !existsSync(OPENSSL) ? `cli-tls: SKIPPED: ${OPENSSL} not found (Debian package openssl)` : false;

let srv;
let lb;
let lbExit;
let dir;
let ca;
let port;
const wssUrl = (host = 'localhost') => `wss://${host}:${port}${RPC_PATH}`;
const httpsUrl = () => `https://localhost:${port}${RPC_PATH}`;
const echoLines = (n) => Array.from({ length: n }, (_, i) => `test.echo [${i + 1}]`).join('\n') + '\n';

const connects = (p) => new Promise((resolve) => {
    const s = net.connect(p, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
});

before(async () => {
    if (skip) return;
    dir = mkdtempSync(path.join(tmpdir(), 'jrpc-tls-'));
    ca = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    const gen = spawnSync(OPENSSL, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-keyout', key, '-out', ca, '-days', '2', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost'], { encoding: 'utf8' });
    assert.equal(gen.status, 0, gen.stderr);
    // HAProxy reads the certificate and its key from one file.
    const pem = path.join(dir, 'site.pem');
    writeFileSync(pem, spawnSync('cat', [ca, key], { encoding: 'utf8' }).stdout);
    srv = await startServer(['--max-batch', '1000', '--max-batch-ws', '20', '--admin-listen', '127.0.0.1:0']);
    port = await freePort();
    const cfg = path.join(dir, 'haproxy.cfg');
    writeFileSync(cfg, [
        'defaults', '    mode http', '    timeout connect 2s', '    timeout client 30s',
        '    timeout server 30s', '    timeout tunnel 1h',
        'frontend tls', `    bind 127.0.0.1:${port} ssl crt ${pem}`, '    default_backend jrpcd',
        'backend jrpcd', `    server a 127.0.0.1:${srv.port}`, ''].join('\n'));
    lb = spawn(HAPROXY, ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    lb.stdout.on('data', (d) => { out += d; });
    lb.stderr.on('data', (d) => { out += d; });
    lbExit = new Promise((r) => lb.on('exit', r));
    await waitFor(async () => lb.exitCode === null && connects(port), { timeout: 10_000, what: `haproxy listening (${out})` });
});

after(async () => {
    if (skip) return;
    if (lb && lb.exitCode === null) {
        lb.kill('SIGTERM');
        await lbExit;
    }
    if (srv) {
        await healthy(srv);
        await srv.stop();
        await srv.kill();
    }
    rmSync(dir, { recursive: true, force: true });
});

test('wss:// call, notify, batch chunked to 20, subscribe --count and bench with --cacert', { skip }, async () => {
    const c = await runCli(['--url', wssUrl(), '--cacert', ca, 'call', 'test.echo', '0x2f', '7']);
    assert.equal(c.code, 0, c.err);
    assert.equal(c.out, '["0x2f",7]\n');

    const m0 = await scrapeAdmin(srv);
    const b = await runCli(['--url', wssUrl(), '--cacert', ca, 'batch', '--jsonl'], echoLines(100));
    assert.equal(b.code, 0, b.err);
    const lines = b.out.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((x) => x.result[0]), Array.from({ length: 100 }, (_, i) => i + 1));
    assert.match(b.err, /100 calls, 100 ok, 0 failed/);
    // Five chunks of 20 reached jrpcd (its batch-size histogram), none refused.
    const m1 = await scrapeAdmin(srv);
    const delta = (k) => (m1.get(k) ?? 0) - (m0.get(k) ?? 0);
    assert.equal(delta('jrpc_batch_size_count'), 5);
    assert.equal(delta('jrpc_batch_size_bucket{le="20"}') - delta('jrpc_batch_size_bucket{le="10"}'), 5);
    assert.equal(delta('jrpc_limit_rejections_total{limit="max_batch"}'), 0);

    const s = await runCli(['--url', wssUrl(), '--cacert', ca, 'subscribe', '--count', '3', 'test.subscribe', '10']);
    assert.equal(s.code, 0, s.err);
    const notes = s.out.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(notes.map((m) => m.params.result), [1, 2, 3]);

    const n = await runCli(['--url', wssUrl(), '--cacert', ca, 'notify', 'tennis@ping']);
    assert.deepEqual([n.code, n.out, n.err], [0, '', '']);
    const bench = await runCli(['--url', wssUrl(), '--cacert', ca, 'bench', '-c', '2', '-n', '200', 'tennis@ping']);
    assert.equal(bench.code, 0, bench.err);
    assert.match(bench.out, /^200 requests in [0-9.]+ s over 2 connections: [0-9]+ req\/s, 0 errors$/m);
});

test('wss:// without --cacert: certificate not trusted, exit 2; another name: mismatch; -k works', { skip }, async () => {
    const r = await runCli(['--url', wssUrl(), 'call', 'tennis@ping']);
    assert.equal(r.code, 2);
    assert.match(r.err, /TLS: certificate not trusted \(self-signed certificate\); give its CA with --cacert FILE/);
    assert.equal(r.out, '');
    const m = await runCli(['--url', wssUrl('127.0.0.1'), '--cacert', ca, 'call', 'tennis@ping']);
    assert.equal(m.code, 2);
    assert.match(m.err, /TLS: host name mismatch/);
    for (const host of ['localhost', '127.0.0.1']) {
        const k = await runCli(['--url', wssUrl(host), '-k', 'call', 'tennis@ping']);
        assert.equal(k.code, 0, k.err);
        assert.equal(k.out, '"pong"\n');
    }
    // Not TLS at all (jrpcd's own plain port): a handshake failure.
    const plain = await runCli(['--url', `wss://localhost:${srv.port}${RPC_PATH}`, '--cacert', ca, 'call', 'tennis@ping']);
    assert.equal(plain.code, 2);
    assert.match(plain.err, /TLS handshake failure/);
    // A CA file that holds no certificate is refused before anything is sent.
    const bad = path.join(dir, 'empty.pem');
    writeFileSync(bad, 'not a certificate\n');
    const e = await runCli(['--url', wssUrl(), '--cacert', bad, 'call', 'tennis@ping']);
    assert.equal(e.code, 2);
    assert.match(e.err, /--cacert .*empty.pem: cannot load/);
});

test('https:// batch through the same HAProxy takes --cacert and -k', { skip }, async () => {
    const b = await runCli(['--url', httpsUrl(), '--cacert', ca, 'batch', '--jsonl', '--chunk', '40'], echoLines(100));
    assert.equal(b.code, 0, b.err);
    assert.equal(b.out.trimEnd().split('\n').length, 100);
    const untrusted = await runCli(['--url', httpsUrl(), 'batch'], echoLines(3));
    assert.equal(untrusted.code, 2);
    assert.match(untrusted.err, /certificate/);
    const k = await runCli(['--url', httpsUrl(), '-k', 'call', 'tennis@ping']);
    assert.equal(k.code, 0, k.err);
    assert.equal(k.out, '"pong"\n');
    const direct = await rpc(srv, call('tennis@ping', undefined, 1));
    assert.equal(direct.json.result, 'pong');
});
