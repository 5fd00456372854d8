// SPDX-License-Identifier: MIT
// Scale-out behind HAProxy (issue 12, item 9; docs/deploy.md): HAProxy runs dist/haproxy.cfg
// itself (ports, socket and check intervals through its environment variables) in front of two
// jrpcd on loopback. Under continuous load — HTTP clients sending batches on keep-alive
// connections, WebSocket clients sending batches and reconnecting whenever their connection
// closes — each jrpcd is restarted in turn with SIGTERM (a rolling restart), then both reload a
// changed config with SIGHUP. Asserted: every HTTP request is answered 200 with every item's
// result right (0 failed); load ran in every phase and reached each new instance; HAProxy took a
// stopping jrpcd out (/ready 503 during drain_delay) before its listener closed; every
// WebSocket client was closed by a restart (1001) and was back within RECONNECT_MS, and every
// answer it got was right; HAProxy logged no request as failed, retried or redispatched; the
// access logs name the clients HAProxy saw (X-Forwarded-For from a trusted proxy), not HAProxy.
//
// A WebSocket call still in flight when its connection closes may get no answer: the server
// answers what it has read, then closes with 1001; a message it had not read yet is lost with
// the connection. The client sees a close, reconnects and goes on; that is reconnection, not a
// failure, and such calls are counted apart (wsLostAtClose). Skipped, and counted so by ctest,
// when haproxy is not installed. No sleeps as synchronisation: each wait polls a condition with
// a bound; the clients' pause between requests only paces the load.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startServer, call, batch, HttpConn, buildRequest, decorate, SOURCE_DIR, freePort } from './lib.mjs';

const HAPROXY = process.env.HAPROXY || '/usr/sbin/haproxy';
const CONFIG = path.join(SOURCE_DIR, 'dist', 'haproxy.cfg');
const BOUND_MS = 10_000; // generous bound for any condition (ASan builds are slow)
const RECONNECT_MS = 10_000; // a WebSocket client closed by a restart is back within this
// HAProxy's checks, scaled down from the file's 2s / 500ms so the test runs in seconds; the
// drain_delay below covers inter + (fall - 1) * fastinter + a check's time with room for ASan.
const CHECK_INTER = '200ms';
const CHECK_FAST = '100ms';
const DRAIN_DELAY_MS = 2000;
const HTTP_CLIENTS = 4;
const WS_CLIENTS = 3;
const BATCH = 16; // items of one HTTP batch
const PACE_MS = 5; // pause between two requests of one client: load, not a flood of 2 cores
const HTTP_FROM = '127.0.0.2'; // client addresses HAProxy sees, and jrpcd should log
const WS_FROM = '127.0.0.3';

const skip = existsSync(HAPROXY) ? false
    : `deploy: SKIPPED: ${HAPROXY} not found (Debian package haproxy; scripts/setup.sh installs it)`;

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a truthy value; fail with `what` past the bound. */
async function waitFor(what, fn, ms = BOUND_MS) {
    const deadline = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
        await pause(20);
    }
}

// ---- HAProxy ----------------------------------------------------------------------------------

const haproxies = new Set();
process.on('exit', () => {
    for (const p of haproxies) {
        try { p.kill('SIGKILL'); } catch { /* gone */ }
    }
});

/** Starts HAProxy on dist/haproxy.cfg with `env`, in the foreground (-db). */
function startHaproxy(env) {
    const proc = spawn(HAPROXY, ['-f', CONFIG, '-db'], {
        env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    haproxies.add(proc);
    let out = '';
    let exited = null;
    const add = (d) => { out += d; };
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', add);
    proc.stderr.on('data', add);
    const exit = new Promise((r) => proc.on('exit', (code, signal) => {
        exited = { code, signal };
        haproxies.delete(proc);
        r(exited);
    }));
    return {
        proc,
        output: () => out,
        get exited() { return exited; },
        async stop() {
            if (!exited) proc.kill('SIGTERM');
            let t;
            const r = await Promise.race([exit, new Promise((res) => { t = setTimeout(() => res(null), BOUND_MS); })]);
            clearTimeout(t);
            if (!r) { proc.kill('SIGKILL'); await exit; }
        },
    };
}

/** One command on HAProxy's runtime API (the stats socket); resolves its whole answer. */
function lbCommand(socket, cmd) {
    return new Promise((resolve, reject) => {
        const s = net.connect(socket);
        let out = '';
        s.setEncoding('utf8');
        s.on('connect', () => s.write(`${cmd}\n`));
        s.on('data', (d) => { out += d; });
        s.on('end', () => resolve(out));
        s.on('error', reject);
    });
}

/** `show stat` rows of backend jrpcd by server name: { a: {status, wretr, …}, b: … }. */
async function lbServers(socket) {
    let text;
    try {
        text = await lbCommand(socket, 'show stat');
    } catch {
        return {}; // not listening yet
    }
    const lines = text.split('\n').filter((l) => l !== '');
    if (!lines.length || !lines[0].startsWith('# ')) return {};
    const cols = lines[0].slice(2).split(',');
    const out = {};
    for (const l of lines.slice(1)) {
        const row = Object.fromEntries(l.split(',').map((v, i) => [cols[i], v]));
        if (row.pxname === 'jrpcd') out[row.svname] = row;
    }
    return out;
}

/** Waits until HAProxy's state of server `name` satisfies `ok(status)`; returns the status. */
function lbWait(socket, name, what, ok) {
    return waitFor(`HAProxy: ${what}`, async () => {
        const st = (await lbServers(socket))[name]?.status;
        return st !== undefined && ok(st) ? st : null;
    });
}

// ---- jrpcd ------------------------------------------------------------------------------------

/** The config of instance `name`: its port, the drain it gives HAProxy, HAProxy trusted. */
function writeConfig(dir, name, port, { maxBatch = 100, deadline = '30s' } = {}) {
    const file = path.join(dir, `${name}.ini`);
    writeFileSync(file, [
        '[server]',
        `listen = 127.0.0.1:${port}`,
        'io_threads = 1',
        'workers = 4',
        `drain_delay = ${DRAIN_DELAY_MS}ms`,
        'drain = 5s',
        'trusted_proxies = 127.0.0.1',
        'log_format = json',
        `log_file = ${path.join(dir, `${name}.log`)}`,
        `max_batch = ${maxBatch}`,
        `deadline = ${deadline}`,
        '',
        '[admin]',
        'listen = 127.0.0.1:0',
        '',
    ].join('\n'));
    return file;
}

/** Starts instance `name` from its config file; adds `admin` (its metrics listener). */
async function startInstance(dir, name) {
    const srv = await startServer(['--config', path.join(dir, `${name}.ini`)], { listen: null });
    const m = await waitFor(`${name}: admin listening`,
        () => /jrpcd admin listening on 127\.0\.0\.1:(\d+)/.exec(srv.stdout()));
    srv.admin = { host: '127.0.0.1', port: Number(m[1]) };
    return srv;
}

/** Calls the instance finished (every transport), from its /metrics. */
async function callsDone(srv) {
    const conn = await HttpConn.open(srv.admin);
    try {
        await conn.write(buildRequest(srv.admin, { method: 'GET', path: '/metrics' }));
        const r = decorate(await conn.readResponse());
        assert.equal(r.status, 200, r.body);
        let n = 0;
        for (const m of r.body.matchAll(/^jrpc_calls_total\{[^}]*\} (\d+)$/gm)) n += Number(m[1]);
        return n;
    } finally {
        conn.close();
    }
}

/** Resolves { code, signal } once the process exited; fails past the bound. */
async function exitWithin(srv, ms) {
    let t;
    const r = await Promise.race([srv.waitExit(), new Promise((res) => { t = setTimeout(() => res(null), ms); })]);
    clearTimeout(t);
    if (!r) assert.fail(`jrpcd still running ${ms} ms after SIGTERM; stderr:\n${srv.stderr()}`);
    return r;
}

/** Access lines of a JSON log file, but for the test's own /metrics scrapes. */
function accessLines(file) {
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"msg":"access"'))
        .map((l) => JSON.parse(l)).filter((l) => l.path !== '/metrics');
}

// ---- Load -------------------------------------------------------------------------------------

/**
 * The load and what it saw. Each finished request counts in the phase current when it finished;
 * a failure is kept with its phase and what went wrong.
 */
class Load {
    constructor(lb) {
        this.lb = lb;
        this.phase = 'start';
        this.stopping = false;
        this.counts = {};        // phase → { http, ws, wsCloses }
        this.failures = [];      // "phase: what"
        this.reconnectMs = [];   // per WebSocket reconnection: close → open again
        this.closeCodes = {};    // WebSocket close code → times
        this.wsLostAtClose = 0;  // WebSocket calls in flight when their connection closed
        this.wsClosesPerClient = Array(WS_CLIENTS).fill(0);
        this.runs = [];
    }

    count(kind) {
        const c = (this.counts[this.phase] ??= { http: 0, ws: 0, wsCloses: 0 });
        c[kind]++;
    }

    in(phase) { return this.counts[phase] ?? { http: 0, ws: 0, wsCloses: 0 }; }

    fail(what) {
        if (this.failures.length < 50) this.failures.push(`${this.phase}: ${what}`);
        else this.failures.length++; // keep counting, stop keeping text
    }

    start() {
        for (let k = 0; k < HTTP_CLIENTS; k++) this.runs.push(this.http(k));
        for (let k = 0; k < WS_CLIENTS; k++) this.runs.push(this.ws(k));
    }

    async stop() {
        this.stopping = true;
        await Promise.all(this.runs);
    }

    /** One HTTP client: a keep-alive connection to HAProxy, one batch after another. */
    async http(k) {
        let conn = null;
        for (let seq = 0; !this.stopping; seq++) {
            const items = [];
            const want = [];
            for (let i = 0; i < BATCH; i++) {
                const id = `h${k}-${seq}-${i}`;
                if (i === 0) { // a blocking call, so requests are in flight when a restart comes
                    items.push(call('test.sleep', [5], id));
                    want.push([id, 5]);
                } else if (i % 4 === 1) {
                    items.push(call('tennis@ping', undefined, id));
                    want.push([id, 'pong']);
                } else {
                    const m = i % 4 === 2 ? 'test.worker_echo' : 'test.echo';
                    items.push(call(m, [k, seq, i], id));
                    want.push([id, [k, seq, i]]);
                }
            }
            try {
                if (conn === null) conn = await HttpConn.open(this.lb, { localAddress: HTTP_FROM });
                else if (conn.ended) throw new Error('HAProxy closed an idle keep-alive connection');
                await conn.write(buildRequest(this.lb, { body: batch(items) }));
                const r = decorate(await conn.readResponse());
                if (r.status !== 200 || !Array.isArray(r.json) || r.json.length !== BATCH) {
                    throw new Error(`HTTP ${r.status}: ${r.body.slice(0, 300)}`);
                }
                r.json.forEach((item, i) => {
                    const [id, result] = want[i];
                    assert.deepEqual(item, { jsonrpc: '2.0', result, id }, `item ${i}`);
                });
                this.count('http');
            } catch (e) {
                this.fail(`HTTP client ${k} batch ${seq}: ${e.message}`);
                conn?.close();
                conn = null;
            }
            await pause(PACE_MS);
        }
        conn?.close();
    }

    /** Opens a WebSocket through HAProxy, retrying until `since` + RECONNECT_MS. */
    async wsOpen(k, since) {
        for (;;) {
            try {
                return await new Promise((resolve, reject) => {
                    const ws = new WebSocket(`ws://${this.lb.host}:${this.lb.port}/api/v1/endpoint`,
                        { perMessageDeflate: false, localAddress: WS_FROM });
                    ws.once('open', () => { ws.removeAllListeners('error'); resolve(ws); });
                    ws.once('unexpected-response', (req, res) => {
                        ws.terminate();
                        reject(new Error(`upgrade answered ${res.statusCode}`));
                    });
                    ws.once('error', reject);
                });
            } catch (e) {
                if (Date.now() - since > RECONNECT_MS) throw e;
                await pause(50); // HAProxy may briefly have no server up: try again
            }
        }
    }

    /**
     * One WebSocket client: sends small batches, two in flight, checks each answer; when the
     * connection closes it reconnects (bounded) and goes on.
     */
    async ws(k) {
        let seq = 0;
        let closedAt = null;
        while (!this.stopping || closedAt !== null) {
            let ws;
            try {
                ws = await this.wsOpen(k, closedAt ?? Date.now());
            } catch (e) {
                this.fail(`WebSocket client ${k} not back within ${RECONNECT_MS} ms: ${e.message}`);
                return;
            }
            if (closedAt !== null) this.reconnectMs.push(Date.now() - closedAt);
            closedAt = null;
            const pending = new Map(); // message id → the answer it must get
            await new Promise((resolve) => {
                const send = () => {
                    if (ws.readyState !== WebSocket.OPEN) return;
                    if (this.stopping) {
                        if (pending.size === 0) ws.close(1000);
                        return;
                    }
                    const n = seq++;
                    const ids = [`w${k}-${n}-0`, `w${k}-${n}-1`, `w${k}-${n}-2`];
                    pending.set(ids[0], [
                        { jsonrpc: '2.0', result: [k, n], id: ids[0] },
                        { jsonrpc: '2.0', result: 'pong', id: ids[1] },
                        { jsonrpc: '2.0', result: [n, k], id: ids[2] },
                    ]);
                    ws.send(batch([call('test.echo', [k, n], ids[0]), call('tennis@ping', undefined, ids[1]),
                        call('test.worker_echo', [n, k], ids[2])]));
                };
                ws.on('message', (data) => {
                    let got;
                    try {
                        got = JSON.parse(data.toString('utf8'));
                        const want = pending.get(got?.[0]?.id);
                        assert.ok(want, `an answer to a call of this connection: ${data}`);
                        assert.deepEqual(got, want);
                        pending.delete(got[0].id);
                        this.count('ws');
                    } catch (e) {
                        this.fail(`WebSocket client ${k}: ${e.message}`);
                    }
                    if (this.stopping) {
                        if (pending.size === 0) ws.close(1000);
                    } else {
                        setTimeout(send, PACE_MS);
                    }
                });
                ws.on('error', (e) => this.fail(`WebSocket client ${k}: ${e.message}`));
                ws.on('close', (code) => {
                    this.closeCodes[code] = (this.closeCodes[code] ?? 0) + 1;
                    if (!(this.stopping && code === 1000)) {
                        closedAt = Date.now();
                        this.wsLostAtClose += pending.size;
                        this.wsClosesPerClient[k]++;
                        this.count('wsCloses');
                        if (code !== 1001) this.fail(`WebSocket client ${k} closed with ${code}, not 1001`);
                    } else if (pending.size) {
                        this.fail(`WebSocket client ${k}: ${pending.size} calls unanswered at the end`);
                    }
                    resolve();
                });
                send();
                send();
            });
        }
    }
}

// ---- The test ---------------------------------------------------------------------------------

test('behind HAProxy: rolling restart and reload under load, 0 failed requests, WebSocket clients back',
    { skip, timeout: 120_000 }, async (t) => {
        const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-deploy-'));
        const socket = path.join(dir, 'haproxy.sock');
        const ports = { a: await freePort(), b: await freePort() };
        const inst = {};
        let lb;
        let load;
        try {
            for (const n of ['a', 'b']) {
                writeConfig(dir, n, ports[n]);
                inst[n] = await startInstance(dir, n);
            }
            const lbPort = await freePort();
            lb = startHaproxy({
                JRPC_LB_BIND: `127.0.0.1:${lbPort}`,
                JRPCD_A: `127.0.0.1:${ports.a}`,
                JRPCD_B: `127.0.0.1:${ports.b}`,
                JRPC_LB_SOCKET: socket,
                JRPC_CHECK_INTER: CHECK_INTER,
                JRPC_CHECK_FAST: CHECK_FAST,
            });
            for (const n of ['a', 'b']) await lbWait(socket, n, `${n} UP`, (s) => s === 'UP');
            const front = { host: '127.0.0.1', port: lbPort, path: '/api/v1/endpoint' };

            load = new Load(front);
            load.phase = 'steady';
            load.start();
            await waitFor('load runs', () => load.in('steady').http >= 20 && load.in('steady').ws >= 10);

            // Rolling restart: each in turn; HAProxy must take it out while it still serves.
            for (const n of ['a', 'b']) {
                load.phase = `restart-${n}`;
                const old = inst[n];
                old.proc.kill('SIGTERM');
                await lbWait(socket, n, `${n} DOWN after SIGTERM`, (s) => s.startsWith('DOWN'));
                assert.equal(old.exited, null,
                    `${n} exited before HAProxy took it out: drain_delay is too short for the checks`);
                const ex = await exitWithin(old, DRAIN_DELAY_MS + BOUND_MS);
                assert.deepEqual(ex, { code: 0, signal: null }, old.stderr());
                inst[n] = await startInstance(dir, n); // the same port, from the same file
                await lbWait(socket, n, `new ${n} UP`, (s) => s === 'UP');
                await waitFor(`calls reach the new ${n}`, async () => (await callsDone(inst[n])) >= 20);
                assert.ok(load.in(load.phase).http > 0 && load.in(load.phase).ws > 0,
                    `load ran during ${load.phase}: ${JSON.stringify(load.in(load.phase))}`);
            }

            // Reload under load: a changed, valid config on both.
            load.phase = 'reload';
            for (const n of ['a', 'b']) {
                writeConfig(dir, n, ports[n], { maxBatch: 50, deadline: '20s' });
                inst[n].proc.kill('SIGHUP');
            }
            for (const n of ['a', 'b']) {
                const log = path.join(dir, `${n}.log`);
                await waitFor(`${n} reloaded`, () => existsSync(log) && /reloaded: .*max_batch 50/.test(readFileSync(log, 'utf8')));
            }
            const at = load.in('reload').http;
            await waitFor('load after the reload', () => load.in('reload').http >= at + 20 && load.in('reload').ws > 0);

            load.phase = 'end';
            await load.stop();

            // ---- What the clients saw.
            t.diagnostic(`per phase: ${JSON.stringify(load.counts)}`);
            t.diagnostic(`WebSocket: closes ${JSON.stringify(load.closeCodes)}, reconnect ms ` +
                `${JSON.stringify(load.reconnectMs)}, calls lost at a close ${load.wsLostAtClose}`);
            const stats = await lbServers(socket);
            t.diagnostic(`HAProxy: ${['a', 'b'].map((n) => `${n}: retries ${stats[n]?.wretr} ` +
                `redispatches ${stats[n]?.wredis} conn errors ${stats[n]?.econ} resp errors ${stats[n]?.eresp}`).join('; ')}`);
            assert.deepEqual(load.failures, [], `${load.failures.length} failures`);
            for (const p of ['steady', 'restart-a', 'restart-b', 'reload']) {
                assert.ok(load.in(p).http > 0 && load.in(p).ws > 0, `load in ${p}: ${JSON.stringify(load.in(p))}`);
            }
            load.wsClosesPerClient.forEach((c, k) => assert.ok(c >= 1,
                `WebSocket client ${k} was closed by a restart (each is on a or b, and both restart)`));
            assert.equal(load.reconnectMs.length, load.wsClosesPerClient.reduce((x, y) => x + y, 0));
            assert.ok(Math.max(...load.reconnectMs) <= RECONNECT_MS, JSON.stringify(load.reconnectMs));

            // HAProxy logs only requests that went wrong, were retried or redispatched (option
            // dontlog-normal): with drain_delay matched to the checks, none met a stopping jrpcd.
            const bad = lb.output().split('\n').filter((l) => / jrpc jrpcd\//.test(l));
            assert.deepEqual(bad, [], 'requests HAProxy logged as failed, retried or redispatched');

            // ---- X-Forwarded-For from HAProxy (trusted) names the client it saw.
            for (const n of ['a', 'b']) {
                const lines = accessLines(path.join(dir, `${n}.log`));
                assert.ok(lines.length > 0, `${n} logged access lines`);
                for (const l of lines) {
                    const from = l.transport === 'ws' ? WS_FROM : HTTP_FROM;
                    assert.equal(l.client, from, `${n}: ${JSON.stringify(l)}`);
                    // The peer itself was HAProxy (WebSocket lines do not name it).
                    if (l.transport === 'http') assert.match(l.proxy ?? '', /^127\.0\.0\.1:\d+$/, `${n}: ${JSON.stringify(l)}`);
                }
                assert.ok(lines.some((l) => l.transport === 'ws'), `${n} logged WebSocket messages`);
                assert.ok(lines.some((l) => l.transport === 'http'), `${n} logged HTTP requests`);
            }

            // Both still serve through HAProxy, and stop cleanly.
            const conn = await HttpConn.open(front);
            const r = await conn.request(front, { body: call('tennis@ping', undefined, 'end') });
            conn.close();
            assert.deepEqual(r.json, { jsonrpc: '2.0', result: 'pong', id: 'end' }, r.body);
            for (const n of ['a', 'b']) await inst[n].stop({ timeout: DRAIN_DELAY_MS + BOUND_MS });
        } finally {
            if (load && !load.stopping) await load.stop().catch(() => {});
            await lb?.stop();
            if (lb) for (const l of lb.output().split("\n").filter((x) => x && !/Server jrpcd/.test(x))) t.diagnostic(`HAProxy: ${l}`);
            for (const n of ['a', 'b']) await inst[n]?.kill();
            rmSync(dir, { recursive: true, force: true });
        }
    });
