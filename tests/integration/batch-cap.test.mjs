// SPDX-License-Identifier: MIT
// Jrpc-Max-Batch: jrpcd says the batch cap that holds for the client, so a client sizes its
// batches without being refused first. On HTTP and REST batch answers (not on single calls), and
// on the WebSocket upgrade's 101 (max_batch_ws); an API key's lower max_batch / max_batch_ws is
// what that key's requests are told.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startServer, healthy, rpc, call, batch, assertResult, RPC_PATH } from './lib.mjs';

const KEY = 'k-batch-cap-0123456789abcdef';
const pings = (n) => batch(Array.from({ length: n }, (_, i) => call('tennis@ping', undefined, i + 1)));

/** The 101's Jrpc-Max-Batch of a WebSocket upgrade to srv with `headers`. */
function upgradeCap(srv, headers = {}) {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${srv.port}${RPC_PATH}`, { headers });
        ws.on('upgrade', (res) => resolve(res.headers['jrpc-max-batch']));
        ws.on('open', () => ws.close());
        ws.on('error', reject);
    });
}

test('batch answers and the 101 carry the cap; single calls do not', async () => {
    const srv = await startServer(['--max-batch', '7', '--max-batch-ws', '5', '--cors-origins', '*']);
    try {
        const b = await rpc(srv, pings(3));
        assert.equal(b.status, 200, b.body);
        assert.equal(b.headers['jrpc-max-batch'], '7');
        // Whitespace before the array is still a batch; an over-cap one is told the cap too.
        const over = await rpc(srv, ` \n${pings(8)}`);
        assert.equal(over.headers['jrpc-max-batch'], '7');
        assert.equal(over.json[0].error.code, -32005);
        const single = await rpc(srv, call('tennis@ping', undefined, 1));
        assertResult(single.json, 'pong', 1);
        assert.equal(single.headers['jrpc-max-batch'], undefined);
        // A page may read it: CORS exposes it.
        const page = await rpc(srv, pings(2), { headers: { Origin: 'https://app.example' } });
        assert.equal(page.headers['jrpc-max-batch'], '7');
        assert.match(page.headers['access-control-expose-headers'], /Jrpc-Max-Batch/);
        // REST: the batch route, not a single call.
        const rb = await rpc(srv, '[[1],[2]]', { path: '/rest/test.echo/batch' });
        assert.equal(rb.status, 200, rb.body);
        assert.equal(rb.headers['jrpc-max-batch'], '7');
        const rs = await rpc(srv, '[1]', { path: '/rest/test.echo' });
        assert.equal(rs.headers['jrpc-max-batch'], undefined);
        assert.equal(await upgradeCap(srv), '5');
        await healthy(srv);
    } finally {
        await srv.stop();
        await srv.kill();
    }
});

test('a key\'s lower max_batch and max_batch_ws are what its requests are told', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-cap-'));
    const file = path.join(dir, 'jrpcd.ini');
    writeFileSync(file, `[server]\nmax_batch = 7\nmax_batch_ws = 5\n` +
        `[key small]\nsecret = ${KEY}\nmax_batch = 3\nmax_batch_ws = 2\n`);
    const srv = await startServer(['--config', file]);
    try {
        const keyed = await rpc(srv, pings(2), { headers: { 'X-API-Key': KEY } });
        assert.equal(keyed.status, 200, keyed.body);
        assert.equal(keyed.headers['jrpc-max-batch'], '3');
        const anon = await rpc(srv, pings(2));
        assert.equal(anon.headers['jrpc-max-batch'], '7');
        const rest = await rpc(srv, '[[1]]', { path: '/rest/test.echo/batch', headers: { 'X-API-Key': KEY } });
        assert.equal(rest.headers['jrpc-max-batch'], '3');
        assert.equal(await upgradeCap(srv, { 'X-API-Key': KEY }), '2');
        assert.equal(await upgradeCap(srv), '5');
        await healthy(srv);
    } finally {
        await srv.stop();
        await srv.kill();
        rmSync(dir, { recursive: true, force: true });
    }
});
