// SPDX-License-Identifier: MIT
// Health and readiness (issue 12): GET /health, /healthz and /ready on the public listener, their
// bodies, HEAD, what they skip (the Host check, the access log at info), /ready's 503 while a
// SIGTERM drain lets a load balancer see the stop coming (drain_delay) and while every URL of an
// upstream is down, and the stop itself once the delay is over.
//
// No sleeps: every wait polls a condition with a bound. A delay the test must still be inside is
// made far longer than anything the test does in it, or the test checks the order of events only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, healthy, rpc, call, HttpConn, buildRequest, decorate } from './lib.mjs';
import { startGateway, post } from './gateway-lib.mjs';
import { startFaultServer } from './upstream-fault.mjs';

const BOUND_MS = 10_000; // generous bound for any condition (ASan builds are slow)

/** One request on a fresh connection; { status, headers, body, json }. */
async function get(server, p, { method = 'GET', headers = {} } = {}) {
    const conn = await HttpConn.open(server);
    try {
        await conn.write(buildRequest(server, { method, path: p, headers }));
        return decorate(await conn.readResponse({ head: method === 'HEAD' }));
    } finally {
        conn.close();
    }
}

/** Poll `fn` until it returns a truthy value; fail with `what` past the bound. */
async function waitFor(what, fn, ms = BOUND_MS) {
    const deadline = Date.now() + ms;
    let last;
    for (;;) {
        last = await fn();
        if (last) return last;
        if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 20));
    }
}

/** 'refused' when the listener is closed, else 'open'. */
function tryConnect(server) {
    return new Promise((resolve) => {
        const s = net.connect({ host: server.host, port: server.port });
        s.on('connect', () => { s.destroy(); resolve('open'); });
        s.on('error', (e) => resolve(e.code === 'ECONNREFUSED' ? 'refused' : `error ${e.code}`));
    });
}

/** Wait (bounded) for the process to exit; resolves { code, signal }. */
async function exitWithin(server, ms = BOUND_MS) {
    let timer;
    const res = await Promise.race([
        server.waitExit(),
        new Promise((r) => { timer = setTimeout(() => r(null), ms); }),
    ]);
    clearTimeout(timer);
    if (!res) {
        await server.kill();
        assert.fail(`jrpcd still running ${ms} ms after the signal; stderr:\n${server.stderr()}`);
    }
    return res;
}

test('/health, /healthz and /ready answer 200 {"status":"ok"}; HEAD too; other methods 405', async () => {
    const srv = await startServer();
    try {
        for (const p of ['/health', '/healthz', '/ready']) {
            const r = await get(srv, p);
            assert.equal(r.status, 200, `${p}: ${r.body}`);
            assert.deepEqual(r.json, { status: 'ok' }, p);
            assert.equal(r.headers['content-type'], 'application/json', p);
            assert.equal(r.headers['cache-control'], 'no-store', p);
            const h = await get(srv, p, { method: 'HEAD' });
            assert.equal(h.status, 200, p);
            assert.equal(h.headers['content-length'], String(Buffer.byteLength(r.body)), p);
            assert.equal(h.body, '', `${p}: HEAD has no body`);
        }
        const r = await get(srv, '/ready', { method: 'POST' });
        assert.equal(r.status, 405, r.body);
        assert.equal(r.headers.allow, 'GET, HEAD');
        // Other paths are still 404, and the RPC path still serves.
        assert.equal((await get(srv, '/readyz')).status, 404);
        assert.equal((await get(srv, '/health/x')).status, 404);
        await healthy(srv);
        await srv.stop();
    } finally {
        await srv.kill();
    }
});

test('health checks skip the Host check and the access log at info', async () => {
    const srv = await startServer();
    try {
        // A load balancer names the backend by its own name (or sends no Host at all, HTTP/1.0).
        const lb = await get(srv, '/ready', { headers: { host: 'backend-1.internal:8545' } });
        assert.equal(lb.status, 200, lb.body);
        const h10 = await (async () => {
            const conn = await HttpConn.open(srv);
            try {
                await conn.write('GET /health HTTP/1.0\r\n\r\n');
                return decorate(await conn.readResponse());
            } finally {
                conn.close();
            }
        })();
        assert.equal(h10.status, 200, h10.body);
        assert.deepEqual(h10.json, { status: 'ok' });
        // The same Host on the RPC path is refused: only the checks skip it.
        const rpcLb = await rpc(srv, call('tennis@ping', undefined, 1), { headers: { host: 'backend-1.internal:8545' } });
        assert.equal(rpcLb.status, 403, rpcLb.body);
        // A call after the checks is logged; once its line is there, the checks' would be too.
        await rpc(srv, call('tennis@ping', undefined, 'marker'), { path: '/' });
        await waitFor('access line of the call', () => srv.stderr().includes('"POST /"'));
        assert.doesNotMatch(srv.stderr(), /"GET \/(ready|health)/, 'health checks logged at info');
        await healthy(srv);
        await srv.stop();
    } finally {
        await srv.kill();
    }
});

test('SIGTERM with drain_delay: /ready 503 "draining" while calls are served on new connections, then refused and exit 0', async () => {
    // Long enough that the checks below all happen inside it on a slow (ASan) machine; the test
    // then waits for its end.
    const srv = await startServer(['--drain-delay', '6s']);
    try {
        assert.equal((await get(srv, '/ready')).status, 200);
        srv.proc.kill('SIGTERM');
        const r = await waitFor('/ready 503 after SIGTERM', async () => {
            const x = await get(srv, '/ready');
            return x.status === 503 ? x : null;
        });
        assert.deepEqual(r.json, { status: 'draining' });
        // Still served, each on a new connection: liveness, a call, a HEAD of /ready.
        const live = await get(srv, '/health');
        assert.equal(live.status, 200);
        assert.deepEqual(live.json, { status: 'ok' });
        await healthy(srv);
        assert.equal((await get(srv, '/ready', { method: 'HEAD' })).status, 503);
        assert.match(srv.stderr(), /SIGTERM: draining; \/ready answers 503 and all is served for 6000 ms/);
        // Then the listener closes and jrpcd exits 0.
        await waitFor('connection refused after the delay', async () => (await tryConnect(srv)) === 'refused',
            BOUND_MS + 6000);
        const ex = await exitWithin(srv);
        assert.deepEqual(ex, { code: 0, signal: null }, srv.stderr());
    } finally {
        await srv.kill();
    }
});

test('a second SIGTERM during drain_delay exits at once; SIGINT does not wait for the delay', async () => {
    // An hour: exiting within the bound shows neither waited for it.
    const srv = await startServer(['--drain-delay', '1h']);
    try {
        srv.proc.kill('SIGTERM');
        await waitFor('/ready 503 after SIGTERM', async () => (await get(srv, '/ready')).status === 503);
        await healthy(srv);
        srv.proc.kill('SIGTERM');
        const ex = await exitWithin(srv);
        assert.equal(ex.code, 1, srv.stderr());
        assert.match(srv.stderr(), /signal again: exiting now/);
    } finally {
        await srv.kill();
    }
    const srv2 = await startServer(['--drain-delay', '1h']);
    try {
        srv2.proc.kill('SIGINT');
        const ex = await exitWithin(srv2);
        assert.deepEqual(ex, { code: 0, signal: null }, srv2.stderr());
    } finally {
        await srv2.kill();
    }
});

test('/ready 503 while the only URL of an upstream is down, 200 once it answers again', async () => {
    const fault = await startFaultServer();
    // A port nobody listens on, until the test forwards it to the fault server's /ok.
    const hole = net.createServer();
    await new Promise((r) => hole.listen(0, '127.0.0.1', r));
    const port = hole.address().port;
    await new Promise((r) => hole.close(r));
    let fwd;
    const fwdSockets = new Set();
    const gw = await startGateway({
        eth: { urls: `http://127.0.0.1:${port}/ok`, methods: 'eth_*', retries: 0, recheck: '1h' },
        good: { urls: fault.url('/ok'), methods: 'good_*' },
    });
    try {
        // Nothing known down yet: ready.
        let r = await get(gw, '/ready');
        assert.equal(r.status, 200, r.body);
        assert.deepEqual(r.json, { status: 'ok' });
        const fail = await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] });
        assert.equal(fail.json?.error?.code, -32000, fail.text);
        r = await get(gw, '/ready');
        assert.equal(r.status, 503, r.body);
        assert.deepEqual(r.json, { status: 'unavailable', upstreams_down: ['eth'] });
        // Liveness does not depend on upstreams; the other upstream still serves.
        assert.equal((await get(gw, '/health')).status, 200);
        const ok = await post(gw.url, { jsonrpc: '2.0', id: 2, method: 'good_x', params: [] });
        assert.deepEqual(ok.json?.result, { m: 'good_x', p: [] }, ok.text);

        // The node comes back: a pass-through on the same port to a correct upstream.
        fwd = net.createServer((c) => {
            const u = net.connect({ host: '127.0.0.1', port: fault.port });
            fwdSockets.add(c).add(u);
            c.pipe(u).pipe(c);
            const drop = () => { c.destroy(); u.destroy(); };
            c.on('error', drop);
            u.on('error', drop);
        });
        await new Promise((res) => fwd.listen(port, '127.0.0.1', res));
        // With every URL down, calls still go to the soonest back; its answer marks it up.
        const back = await post(gw.url, { jsonrpc: '2.0', id: 3, method: 'eth_chainId', params: [] });
        assert.deepEqual(back.json?.result, { m: 'eth_chainId', p: [] }, back.text);
        r = await get(gw, '/ready');
        assert.equal(r.status, 200, r.body);
        assert.deepEqual(r.json, { status: 'ok' });
        await healthy(gw);
        await gw.stop();
    } finally {
        await gw.kill();
        if (fwd) {
            for (const s of fwdSockets) s.destroy();
            await new Promise((res) => fwd.close(res));
        }
        await fault.close();
    }
});
