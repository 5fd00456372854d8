// Seed 001 (Sajya's batch example) with the real curl binary, exactly as the seed writes it,
// and the same bytes over a raw socket with no Content-Type at all. The seed's page shows the
// ids as strings ("1"); jrpc echoes ids byte-exact, so numbers 1 and 2 come back as numbers.
// Also a batch big enough that curl sends `Expect: 100-continue` on its own (bodies over
// 1 MiB in curl ≥ 7.x; older curls did it above 1 KiB), and one where we force the header.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, rpc, healthy, rawIds, call, batch, RPC_PATH } from './lib.mjs';

const SEED_BODY = '[{"jsonrpc":"2.0","method":"tennis@ping","id":1},{"jsonrpc":"2.0","method":"tennis@ping","id":2}]';
const EXPECTED = [
    { jsonrpc: '2.0', result: 'pong', id: 1 },
    { jsonrpc: '2.0', result: 'pong', id: 2 },
];

let srv;
let tmp;
before(async () => {
    srv = await startServer();
    tmp = mkdtempSync(path.join(tmpdir(), 'jrpc-seed-'));
});
after(async () => {
    await srv?.kill();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function curl(args, { timeout = 20_000 } = {}) {
    return new Promise((resolve, reject) => {
        execFile('curl', args, { timeout, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
            if (err) {
                err.message += `\nstdout: ${String(stdout).slice(0, 500)}\nstderr: ${String(stderr).slice(0, 2000)}`;
                reject(err);
            } else {
                resolve({ stdout, stderr });
            }
        });
    });
}

const url = () => `http://127.0.0.1:${srv.port}${RPC_PATH}`;

test('seed 001: curl --data-binary batch of two tennis@ping', async () => {
    // exactly the seed's arguments, with the port we were given
    const { stdout } = await curl([url(), '--data-binary', SEED_BODY]);
    assert.deepEqual(JSON.parse(stdout), EXPECTED, stdout);
    assert.deepEqual(rawIds(stdout), ['1', '2']);
});

test('seed 001 with curl -i: status 200 and a JSON Content-Type', async () => {
    const { stdout } = await curl(['-sS', '-i', url(), '--data-binary', SEED_BODY]);
    const [head, body] = stdout.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 200\b/);
    assert.match(head, /\r\ncontent-type: *application\/json\b/i);
    assert.deepEqual(JSON.parse(body), EXPECTED);
});

test('seed 001 bytes over a raw socket with no Content-Type', async () => {
    const r = await rpc(srv, SEED_BODY);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, EXPECTED);
    assert.deepEqual(rawIds(r.body), ['1', '2']);
});

test('curl forced Expect: 100-continue gets 100 Continue, then the answer', async () => {
    const { stdout, stderr } = await curl(['-sS', '-v', '-H', 'Expect: 100-continue', url(), '--data-binary', SEED_BODY]);
    assert.match(stderr, /^> Expect: 100-continue\r?$/m);
    assert.match(stderr, /^< HTTP\/1\.1 100 Continue\r?$/m, 'server sent 100 Continue');
    assert.deepEqual(JSON.parse(stdout), EXPECTED);
});

test('curl big batch (> 1 MiB, curl sends Expect on its own) answered in order', async () => {
    const pad = 'p'.repeat(1200);
    const items = [];
    for (let i = 0; i < 1000; i++) items.push(call('test.echo', [i, pad], i));
    const body = batch(items);
    assert.ok(body.length > 1024 * 1024);
    const file = path.join(tmp, 'big.json');
    writeFileSync(file, body);
    const t0 = performance.now();
    const { stdout, stderr } = await curl(['-sS', '-v', url(), '--data-binary', `@${file}`]);
    const ms = performance.now() - t0;
    assert.match(stderr, /^> Expect: 100-continue\r?$/m, 'this curl sent Expect: 100-continue');
    assert.match(stderr, /^< HTTP\/1\.1 100 Continue\r?$/m, 'server sent 100 Continue');
    const json = JSON.parse(stdout);
    assert.equal(json.length, 1000);
    json.forEach((x, i) => assert.deepEqual(x, { jsonrpc: '2.0', result: [i, pad], id: i }));
    assert.ok(ms < 10_000, `took ${ms.toFixed(0)} ms`);
});

test('server still healthy, SIGTERM exits 0', async () => {
    await healthy(srv);
    await srv.stop();
});
