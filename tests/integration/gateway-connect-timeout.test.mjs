// SPDX-License-Identifier: MIT
// connect_timeout (docs/config.md, docs/gateway.md#errors) against a loopback connect that really
// hangs: a listener with a backlog of 1 in a stopped child process (so nothing ever accepts), its
// accept queue filled by raw connections first. Linux drops SYNs to a listener whose accept queue
// is full, so the next connect stays in SYN_SENT. Checked: one URL → the `timeout` fault naming
// the connect timeout, answered long before the request timeout; two URLs (the hanging one first,
// priority 0) → the call answered through the second, the fault counted on the first. The
// item deadline lies between connect_timeout and timeout, so only the connect timeout can pass.
// Run with JRPC_GATEWAY_TRANSPORT=curl (ctest's -curl variant) the same cases pass over libcurl.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { rpc, call, healthy, assertError, scrapeAdmin } from './lib.mjs';
import { startGateway } from './gateway-lib.mjs';

const CONNECT_TIMEOUT_MS = 300;
const TIMEOUT_MS = 20_000; // the request timeout: far above, so the two cannot be confused
// Each item's deadline: between the two, so a call that waited for the request timeout on the
// hanging URL would be answered -32002 rather than through the second URL.
const DEADLINE_MS = 8000;
const PROBE_MS = 1500; // a raw connect not done by then counts as hanging (SYN retried at 1 s)

/** A listener that never accepts: a child node process that listens (backlog 1) and stops. */
function startHangingListener() {
    const code = `const s = require('net').createServer();
        s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
            process.stdout.write(s.address().port + '\\n', () => process.kill(process.pid, 'SIGSTOP'));
        });`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    return new Promise((resolve, reject) => {
        let out = '';
        child.on('error', reject);
        child.stdout.on('data', (d) => {
            out += d;
            const m = /^(\d+)\n/.exec(out);
            if (m) resolve({ port: Number(m[1]), kill: () => child.kill('SIGKILL') });
        });
        child.on('exit', (c, sig) => reject(new Error(`listener exited (${c ?? sig}) before its port`)));
    });
}

/** Resolves 'connected', or 'hangs' when the connect has not completed within PROBE_MS. */
function probe(port, keep) {
    return new Promise((resolve) => {
        const sock = net.connect(port, '127.0.0.1');
        sock.on('error', () => {});
        const timer = setTimeout(() => { sock.destroy(); resolve('hangs'); }, PROBE_MS);
        sock.on('connect', () => {
            clearTimeout(timer);
            keep.push(sock);
            resolve('connected');
        });
    });
}

/** A plain JSON-RPC upstream answering {result: method}; counts its requests. */
function startUpstream() {
    const up = { requests: 0 };
    const server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d) => { body += d; });
        req.on('end', () => {
            up.requests++;
            const c = JSON.parse(body);
            res.setHeader('Content-Type', 'application/json');
            res.end(JSON.stringify({ jsonrpc: '2.0', id: c.id, result: c.method }));
        });
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
        up.url = `http://127.0.0.1:${server.address().port}/`;
        up.close = () => new Promise((r) => { server.closeAllConnections(); server.close(r); });
        resolve(up);
    }));
}

let hang, up, gw, skip;
const fillers = [];
const transport = process.env.JRPC_GATEWAY_TRANSPORT;

before(async () => {
    hang = await startHangingListener();
    // Fill the accept queue (backlog 1 holds two on Linux) until a connect hangs.
    let hangs = false;
    for (let i = 0; i < 6 && !hangs; i++) hangs = (await probe(hang.port, fillers)) === 'hangs';
    if (!hangs) {
        skip = `connect-timeout: SKIPPED: a loopback connect to a listener with a full accept ` +
            `queue did not hang (${fillers.length} connected); this kernel does not drop the SYN`;
        return;
    }
    up = await startUpstream();
    const hangUrl = `http://127.0.0.1:${hang.port}/`;
    const keys = { connect_timeout: `${CONNECT_TIMEOUT_MS}ms`, timeout: `${TIMEOUT_MS / 1000}s` };
    gw = await startGateway({
        one: { urls: hangUrl, methods: 'one_*', retries: 0, ...keys },
        two: { urls: [hangUrl, up.url], methods: 'two_*', retries: 1, recheck: '1h', ...keys },
    }, { args: ['--io-threads', '1', '--deadline', `${DEADLINE_MS}ms`, '--admin-listen', '127.0.0.1:0'] });
});

after(async () => {
    await gw?.kill();
    await up?.close();
    for (const s of fillers) s.destroy();
    hang?.kill();
});

test(`one URL whose connect hangs: the timeout fault names connect_timeout (${transport || 'auto'})`, async (t) => {
    if (skip) return t.skip(skip);
    const from = Date.now();
    const r = await rpc(gw, call('one_x', [], 1));
    const took = Date.now() - from;
    assertError(r.json, -32000, 1);
    assert.equal(r.json.error.message, 'upstream one: no complete answer within the timeout', r.body);
    assert.equal(r.json.error.data.upstream, 'one');
    assert.equal(r.json.error.data.cause, 'timeout', r.body);
    assert.equal(r.json.error.data.detail, `no connection within ${CONNECT_TIMEOUT_MS} ms`, r.body);
    assert.ok(took >= CONNECT_TIMEOUT_MS, `answered after ${took} ms`);
    // Answered by the connect timeout, before the item's deadline or the request timeout fired.
    assert.ok(took < DEADLINE_MS && DEADLINE_MS < TIMEOUT_MS, `answered after ${took} ms`);
    const s = await scrapeAdmin(gw);
    assert.equal(s.get('jrpc_upstream_faults_total{upstream="one",cause="timeout"}'), 1);
});

test('two URLs, the hanging one first: calls answered through the second, the fault on the first', async (t) => {
    if (skip) return t.skip(skip);
    const r = await rpc(gw, call('two_x', [], 1));
    assert.equal(r.json.result, 'two_x', r.body);
    assert.equal(up.requests, 1);
    const r2 = await rpc(gw, call('two_y', [], 2)); // the hanging URL is passed over now
    assert.equal(r2.json.result, 'two_y', r2.body);
    assert.equal(up.requests, 2);
    const s = await scrapeAdmin(gw);
    const hangUrl = `http://127.0.0.1:${hang.port}`;
    const upUrl = up.url.replace(/\/$/, '');
    assert.equal(s.get('jrpc_upstream_faults_total{upstream="two",cause="timeout"}'), 1);
    assert.equal(s.get(`jrpc_upstream_requests_total{upstream="two",url="${hangUrl}",outcome="fault"}`), 1);
    assert.equal(s.get(`jrpc_upstream_requests_total{upstream="two",url="${hangUrl}",outcome="ok"}`) ?? 0, 0);
    assert.equal(s.get(`jrpc_upstream_requests_total{upstream="two",url="${upUrl}",outcome="ok"}`), 2);
    assert.equal(s.get(`jrpc_upstream_up{upstream="two",url="${hangUrl}"}`), 0);
});

test('still healthy; stops cleanly', async (t) => {
    if (skip) return t.skip(skip);
    await healthy(gw);
    await gw.stop();
});
