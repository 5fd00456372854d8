// SPDX-License-Identifier: MIT
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

// curl waits for 100 Continue only 1 s by default and then sends the body anyway, which would
// make these tests depend on how fast the server answers. With a wait longer than any test
// should take, "Done waiting" in curl's trace means the server never sent 100 Continue.
const EXPECT_WAIT = ['--expect100-timeout', '15']; // s; under curl's own 20 s timeout

/** The 100 Continue arrived before curl sent the body, and curl never gave up waiting for it. */
function assertContinuedFirst(stderr) {
    assert.doesNotMatch(stderr, /Done waiting for 100-continue/, stderr.slice(0, 2000));
    const cont = stderr.search(/^< HTTP\/1\.1 100 Continue\r?$/m);
    assert.ok(cont >= 0, 'server sent 100 Continue');
    const uploaded = stderr.indexOf('We are completely uploaded');
    assert.ok(uploaded < 0 || cont < uploaded, 'the 100 Continue came before the body was sent');
}

test('curl forced Expect: 100-continue gets 100 Continue, then the answer', async () => {
    const { stdout, stderr } = await curl(['-sS', '-v', ...EXPECT_WAIT, '-H', 'Expect: 100-continue', url(), '--data-binary', SEED_BODY]);
    assert.match(stderr, /^> Expect: 100-continue\r?$/m);
    assertContinuedFirst(stderr);
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
    // No bound on how long it takes (bench/ measures that); curl's timeout bounds a hang.
    const { stdout, stderr } = await curl(['-sS', '-v', ...EXPECT_WAIT, url(), '--data-binary', `@${file}`]);
    assert.match(stderr, /^> Expect: 100-continue\r?$/m, 'this curl sent Expect: 100-continue');
    assertContinuedFirst(stderr);
    const json = JSON.parse(stdout);
    assert.equal(json.length, 1000);
    json.forEach((x, i) => assert.deepEqual(x, { jsonrpc: '2.0', result: [i, pad], id: i }));
});

test('server still healthy, SIGTERM exits 0', async () => {
    await healthy(srv);
    await srv.stop();
});
