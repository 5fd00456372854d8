// SPDX-License-Identifier: MIT
// Metrics (docs/metrics.md): the admin listener is off by default and /metrics is never on the
// public listener; promtool accepts the exposition; a known workload moves exactly the counters
// it should (scrape before and after, compare every sample); method labels are bounded.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withServer, HttpConn, rpc, call, batch } from './lib.mjs';
import { WsClient, waitFor } from './wslib.mjs';

const PING = call('tennis@ping', undefined, 1);

/** The admin listener's address once jrpcd printed it. */
async function adminOf(srv) {
    let m = null;
    await waitFor(() => (m = /jrpcd admin listening on (\S+):(\d+)/.exec(srv.stdout())) !== null,
        { what: 'the admin listening line' });
    return { host: m[1], port: Number(m[2]), path: '/metrics' };
}

async function scrapeRaw(admin) {
    const r = await rpc(admin, undefined, { method: 'GET', path: '/metrics' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    return r.body;
}

/** Every sample of a scrape: "name{labels}" → value. */
async function scrape(admin) {
    const samples = new Map();
    for (const line of (await scrapeRaw(admin)).split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        const at = line.lastIndexOf(' ');
        samples.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
    return samples;
}

/** Samples whose value changed between two scrapes (new ones count from 0), as name → delta,
 * leaving out what no workload can pin down: times, the process's own figures, gauges. */
function deltas(before, after) {
    const out = {};
    for (const [k, v] of after) {
        if (/^process_|_seconds_(bucket|sum)|^jrpc_held_bytes|^jrpc_connections\{/.test(k)) continue;
        const d = v - (before.get(k) ?? 0);
        if (d !== 0) out[k] = d;
    }
    return out;
}

test('promtool accepts the exposition, upstream series included', async () => {
    const check = spawnSync('promtool', ['--version']);
    assert.equal(check.error, undefined, 'promtool is installed (Debian package prometheus; scripts/setup.sh)');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'jrpc-metrics-'));
    const ini = path.join(dir, 'up.ini');
    // An upstream nobody answers, without retries: one request, one fault, the URL down.
    writeFileSync(ini, '[upstream eth]\nurls = http://127.0.0.1:9/\nmethods = eth_chainId\nretries = 0\n');
    try {
        await withServer(['--admin-listen', '127.0.0.1:0', '--config', ini], async (srv) => {
            const admin = await adminOf(srv);
            await rpc(srv, batch([PING, call('nope', [], 2), call('eth_chainId', [], 3)]));
            const ws = await WsClient.open(srv);
            try {
                await ws.send(PING);
                assert.equal((await ws.nextJson()).result, 'pong');
            } finally {
                ws.terminate();
            }
            const text = await scrapeRaw(admin);
            assert.match(text, /^jrpc_request_duration_seconds_count\{transport="ws"\} 1$/m);
            assert.match(text, /^jrpc_request_duration_seconds_bucket\{transport="ws",le="\+Inf"\} 1$/m);
            assert.match(text, /^jrpc_upstream_up\{upstream="eth",url="http:\/\/127\.0\.0\.1:9"\} 0$/m);
            assert.match(text, /^jrpc_upstream_faults_total\{upstream="eth",cause="connect"\} 1$/m);
            assert.match(text, /^jrpc_upstream_items_total\{upstream="eth",outcome="failed"\} 1$/m);
            assert.match(text, /^jrpc_upstream_requests_total\{upstream="eth",url="[^"]+",outcome="fault"\} 1$/m);
            assert.match(text, /^jrpc_upstream_request_duration_seconds_count\{upstream="eth"\} \d+$/m);
            // Compression and streaming (docs/metrics.md), here at rest.
            assert.match(text, /^jrpc_compression_messages_total\{transport="ws",direction="in"\} 0$/m);
            assert.match(text, /^jrpc_compression_compressed_bytes_total\{transport="http",direction="out"\} 0$/m);
            assert.match(text, /^jrpc_compression_state_bytes\{transport="ws"\} 0$/m);
            assert.match(text, /^jrpc_ws_deflate_connections_total 0$/m);
            assert.match(text, /^jrpc_http_batch_answers_total\{mode="streamed",order="completion"\} 0$/m);
            assert.match(text, /^process_resident_memory_bytes \d+$/m);
            assert.match(text, /^process_open_fds \d+$/m);
            assert.match(text, /^process_start_time_seconds \d+(\.\d+)?$/m);
            const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
            assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}\n--- exposition:\n${text}`);
        });
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test('a known workload moves exactly the counters it should', async () => {
    await withServer(['--admin-listen', '127.0.0.1:0', '--max-body', '1000'], async (srv) => {
        const admin = await adminOf(srv);
        const before = await scrape(admin);

        // HTTP, one keep-alive connection: a batch of three with one unknown name, one call.
        const conn = await HttpConn.open(srv);
        try {
            const b = await conn.request(srv, { body: batch([PING, call('no_such', [], 2), call('tennis@ping', undefined, 3)]) });
            assert.equal(b.status, 200, b.body);
            assert.equal(b.json.length, 3);
            const s = await conn.request(srv, { body: PING });
            assert.equal(s.status, 200, s.body);
        } finally {
            conn.close();
        }
        // A body over max_body: 413 on a second connection.
        const big = await rpc(srv, JSON.stringify({ jsonrpc: '2.0', method: 'tennis@ping', params: ['x'.repeat(2000)], id: 4 }));
        assert.equal(big.status, 413, big.body);
        // WebSocket (a third connection, upgraded): three messages of one call each, each timed
        // once from its arrival to its answer.
        const ws = await WsClient.open(srv);
        try {
            for (const id of [5, 6, 7]) {
                await ws.send(call('tennis@ping', undefined, id));
                assert.equal((await ws.nextJson()).result, 'pong');
            }
        } finally {
            ws.terminate();
        }

        const after = await scrape(admin);
        assert.deepEqual(deltas(before, after), {
            'jrpc_http_requests_total{status="200"}': 2,
            'jrpc_http_requests_total{status="413"}': 1,
            'jrpc_connections_total{transport="http"}': 3,
            'jrpc_connections_total{transport="ws"}': 1,
            'jrpc_ws_messages_total{direction="in"}': 3,
            'jrpc_ws_messages_total{direction="out"}': 3,
            'jrpc_calls_total{transport="http",method="tennis@ping",code="ok"}': 3,
            'jrpc_calls_total{transport="http",method="(unknown)",code="-32601"}': 1,
            'jrpc_calls_total{transport="ws",method="tennis@ping",code="ok"}': 3,
            'jrpc_batch_size_count': 1,
            'jrpc_batch_size_sum': 3,
            'jrpc_batch_size_bucket{le="5"}': 1,
            'jrpc_batch_size_bucket{le="10"}': 1,
            'jrpc_batch_size_bucket{le="20"}': 1,
            'jrpc_batch_size_bucket{le="50"}': 1,
            'jrpc_batch_size_bucket{le="100"}': 1,
            'jrpc_batch_size_bucket{le="200"}': 1,
            'jrpc_batch_size_bucket{le="500"}': 1,
            'jrpc_batch_size_bucket{le="1000"}': 1,
            'jrpc_batch_size_bucket{le="+Inf"}': 1,
            'jrpc_call_duration_seconds_count{method="tennis@ping"}': 6,
            'jrpc_request_duration_seconds_count{transport="http"}': 2,
            'jrpc_request_duration_seconds_count{transport="ws"}': 3,
            'jrpc_limit_rejections_total{limit="max_body"}': 1,
            // The batch finished at once: one piece with a Content-Length, in request order.
            'jrpc_http_batch_answers_total{mode="buffered",order="request"}': 1,
        });
        // Scrapes are not counted: two more change nothing.
        const again = await scrape(admin);
        assert.deepEqual(deltas(after, await scrape(admin)), {});
        assert.ok(again.size > 0);
    });
});

test('method labels: registered names, "(unknown)", and "(other)" past max_method_labels', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'jrpc-metrics-'));
    const ini = path.join(dir, 'labels.ini');
    writeFileSync(ini, '[admin]\nmax_method_labels = 0\n');
    try {
        await withServer(['--admin-listen', '127.0.0.1:0', '--config', ini], async (srv) => {
            const admin = await adminOf(srv);
            await rpc(srv, batch([PING, call('rpc.discover', [], 2), call('nope', [], 3)]));
            const s = await scrape(admin);
            assert.equal(s.get('jrpc_calls_total{transport="http",method="(other)",code="ok"}'), 2);
            assert.equal(s.get('jrpc_calls_total{transport="http",method="(unknown)",code="-32601"}'), 1);
            assert.ok(![...s.keys()].some((k) => k.includes('method="tennis@ping"')), 'no label of its own');
        });
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
    await withServer(['--admin-listen', '127.0.0.1:0'], async (srv) => {
        const admin = await adminOf(srv);
        await rpc(srv, PING);
        const s = await scrape(admin);
        assert.equal(s.get('jrpc_calls_total{transport="http",method="tennis@ping",code="ok"}'), 1);
    });
});

test('off by default; /metrics never on the public listener, RPC never on the admin one', async () => {
    await withServer([], async (srv) => {
        const r = await rpc(srv, undefined, { method: 'GET', path: '/metrics' });
        assert.equal(r.status, 404);
        assert.doesNotMatch(srv.stdout(), /admin listening/);
    });
    await withServer(['--admin-listen', '127.0.0.1:0'], async (srv) => {
        const admin = await adminOf(srv);
        assert.equal((await rpc(srv, undefined, { method: 'GET', path: '/metrics' })).status, 404);
        const onAdmin = await rpc(admin, PING, { path: '/api/v1/endpoint' });
        assert.equal(onAdmin.status, 404, 'the RPC path is not served on the admin listener');
        assert.equal((await rpc(admin, PING, { path: '/' })).status, 404);
        assert.equal((await rpc(admin, undefined, { method: 'GET', path: '/other' })).status, 404);
        // Health and readiness answer on the admin listener too.
        for (const p of ['/health', '/ready']) {
            const h = await rpc(admin, undefined, { method: 'GET', path: p });
            assert.equal(h.status, 200, `${p}: ${h.body}`);
            assert.equal(h.json.status, 'ok', h.body);
        }
    });
});
