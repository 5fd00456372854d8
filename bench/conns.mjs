#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// bench/conns.mjs — load client for bench/soak.sh (and the smoke test in
// tests/integration/load.test.mjs): opens N keep-alive connections to jrpcd on loopback and
// keeps a mixed load on them for a fixed time — single calls, batches, notifications, calls
// that fail on purpose, worker and async handlers — checking every answer byte for byte or
// field by field. Samples jrpcd's RSS and open fds from /proc while it runs. Node built-ins only.
//
//   node bench/conns.mjs --port P --pid PID [--conns 10000] [--duration 60] [--interval 1000]
//                        [--host 127.0.0.1] [--path /api/v1/endpoint] [--json]
//
// --interval MS: each connection sends one request about every MS (spread at random over the
// first interval); 0 = closed loop, the next request as soon as the answer is in.
// --calls N: stop each connection after N requests instead of after --duration.
// Everything is bounded: connects retry at most 3 times, an answer later than --timeout (10 s)
// counts as an error, and after the load the client waits at most --settle seconds (30) for
// jrpcd's fd count to return to where it was (0 when other clients hold connections, as in the
// attack phase of soak.sh). Exit status 0 when no error was counted, 1 otherwise.

import net from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
    options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string' },
        path: { type: 'string', default: '/api/v1/endpoint' },
        pid: { type: 'string' },
        conns: { type: 'string', default: '10000' },
        duration: { type: 'string', default: '60' },
        interval: { type: 'string', default: '1000' },
        calls: { type: 'string', default: '0' },
        timeout: { type: 'string', default: '10000' },
        ramp: { type: 'string', default: '500' },
        settle: { type: 'string', default: '30' },
        label: { type: 'string', default: 'load' },
        json: { type: 'boolean', default: false },
    },
});
if (!opt.port) {
    console.error('usage: conns.mjs --port P [--pid PID] [--conns N] [--duration S] [--interval MS]');
    process.exit(2);
}
const PORT = Number(opt.port);
const CONNS = Number(opt.conns);
const DURATION_MS = Number(opt.duration) * 1000;
const INTERVAL_MS = Number(opt.interval);
const CALLS = Number(opt.calls);
const TIMEOUT_MS = Number(opt.timeout);
const RAMP = Math.max(1, Number(opt.ramp));
const PID = opt.pid ? Number(opt.pid) : 0;
const HOST_HDR = `Host: ${opt.host}:${PORT}\r\n`;

// ---- jrpcd's RSS and fds -----------------------------------------------------------------------

function rssKiB() {
    if (!PID) return 0;
    try {
        return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${PID}/status`, 'utf8'))[1]);
    } catch { return 0; }
}
function fdCount() {
    if (!PID) return 0;
    try { return readdirSync(`/proc/${PID}/fd`).length; } catch { return 0; }
}
const mem = { start: rssKiB(), peak: 0, end: 0, fdsBefore: fdCount(), fdsPeak: 0, fdsAfter: 0 };
mem.peak = mem.start;
mem.fdsPeak = mem.fdsBefore;
const sampler = setInterval(() => {
    mem.peak = Math.max(mem.peak, rssKiB());
    mem.fdsPeak = Math.max(mem.fdsPeak, fdCount());
}, 250);

// ---- latency histogram (log buckets, ~2 % wide) ----------------------------------------------

const BUCKETS_PER_E = 50;
const hist = new Float64Array(2000);
let samples = 0;
let maxUs = 0;
function record(us) {
    const b = us < 1 ? 0 : Math.min(hist.length - 1, Math.floor(Math.log(us) * BUCKETS_PER_E));
    hist[b]++;
    samples++;
    if (us > maxUs) maxUs = us;
}
function quantile(q) {
    let want = q * samples;
    for (let b = 0; b < hist.length; b++) {
        want -= hist[b];
        if (want <= 0) return Math.exp((b + 0.5) / BUCKETS_PER_E);
    }
    return maxUs;
}

// ---- the mix --------------------------------------------------------------------------------------

const counts = { single: 0, batch: 0, notification: 0, error: 0, worker: 0, async: 0 };
const errors = { mismatch: 0, timeout: 0, conn: 0, connect: 0, status: 0 };
const firstErrors = [];
function fail(kind, what) {
    errors[kind]++;
    if (firstErrors.length < 10) firstErrors.push(`${kind}: ${what}`);
}

let seq = 0;
const req = (body) => {
    const b = Buffer.from(body);
    return Buffer.concat([Buffer.from(`POST ${opt.path} HTTP/1.1\r\n${HOST_HDR}Content-Type: application/json\r\nContent-Length: ${b.length}\r\n\r\n`), b]);
};
const call = (method, params, id) => `{"jsonrpc":"2.0","method":"${method}"${params === undefined ? '' : `,"params":${JSON.stringify(params)}`}${id === undefined ? '' : `,"id":${id}`}}`;

/** One request of the mix: { kind, bytes, check(status, bodyText) → error text or null }. */
function nextRequest() {
    const id = ++seq;
    const r = Math.random() * 100;
    if (r < 40) {
        const want = `{"jsonrpc":"2.0","result":"pong","id":${id}}`;
        return { kind: 'single', bytes: req(call('tennis@ping', undefined, id)), check: (s, b) => (s === 200 && b === want ? null : `${s} ${b}`) };
    }
    if (r < 55) {
        // 10 items: results, errors and one notification; answered as 9 items in request order.
        const items = [
            [call('tennis@ping', undefined, 1), { result: 'pong' }],
            [call('test.echo', [id, 'x'], 2), { result: [id, 'x'] }],
            [call('test.worker_echo', { k: id }, 3), { result: { k: id } }],
            [call('test.sleep_async', [1], 4), { result: 1 }],
            [call('test.sleep', [0], 5), { result: 0 }],
            [call('no.such.method', undefined, 6), { code: -32601 }],
            [call('test.fail', [-32000, 'boom'], 7), { code: -32000 }],
            [call('tennis@ping'), null],
            ['{"jsonrpc":"1.0","method":"tennis@ping","id":9}', { code: -32600 }],
            [call('tennis@ping', undefined, 10), { result: 'pong' }],
        ];
        const want = items.map(([, w], i) => w && { ...w, id: i + 1 }).filter(Boolean);
        return {
            kind: 'batch',
            bytes: req(`[${items.map(([t]) => t).join(',')}]`),
            check: (s, b) => {
                if (s !== 200) return `status ${s}`;
                let got;
                try { got = JSON.parse(b); } catch { return `not JSON: ${b.slice(0, 200)}`; }
                if (!Array.isArray(got) || got.length !== want.length) return `batch of ${got?.length}: ${b.slice(0, 200)}`;
                for (let i = 0; i < want.length; i++) {
                    const g = got[i], w = want[i];
                    if (g.id !== w.id) return `item ${i} id ${g.id}`;
                    if ('code' in w ? g.error?.code !== w.code : JSON.stringify(g.result) !== JSON.stringify(w.result)) {
                        return `item ${i}: ${JSON.stringify(g)}`;
                    }
                }
                return null;
            },
        };
    }
    if (r < 70) {
        const notes = [call('tennis@ping'), call('test.echo', [1]), call('no.such.method'), call('test.sleep_async', [1])];
        return { kind: 'notification', bytes: req(notes[id % notes.length]), check: (s, b) => (s === 204 && b === '' ? null : `${s} ${b}`) };
    }
    if (r < 85) {
        const cases = [
            ['{"jsonrpc":"2.0","method":"tennis@ping","id":', -32700, null],
            [call('no.such.method', [1], id), -32601, id],
            [call('test.fail', [-32001, 'on purpose'], id), -32001, id],
            [`{"jsonrpc":"2.0","method":42,"id":${id}}`, -32600, id],
            [call('test.sleep', ['x'], id), -32602, id],
        ];
        const [body, code, wantId] = cases[id % cases.length];
        return {
            kind: 'error',
            bytes: req(body),
            check: (s, b) => {
                if (s !== 200) return `status ${s}`;
                let got;
                try { got = JSON.parse(b); } catch { return `not JSON: ${b.slice(0, 200)}`; }
                return got.error?.code === code && got.id === wantId && !('result' in got) ? null : b.slice(0, 200);
            },
        };
    }
    if (r < 95) {
        const want = `{"jsonrpc":"2.0","result":["w",${id}],"id":${id}}`;
        return { kind: 'worker', bytes: req(call('test.worker_echo', ['w', id], id)), check: (s, b) => (s === 200 && b === want ? null : `${s} ${b}`) };
    }
    const want = `{"jsonrpc":"2.0","result":2,"id":${id}}`;
    return { kind: 'async', bytes: req(call('test.sleep_async', [2], id)), check: (s, b) => (s === 200 && b === want ? null : `${s} ${b}`) };
}

// ---- connections ---------------------------------------------------------------------------------

let stopping = false;
let inflight = 0;
let done = 0;
const conns = [];

class Conn {
    constructor() {
        this.sock = null;
        this.buf = Buffer.alloc(0);
        this.pending = null; // { check, t0, kind }
        this.timer = null;
        this.sent = 0;
        this.alive = false;
    }

    connect(tries = 3) {
        return new Promise((resolve) => {
            const sock = net.connect({ host: opt.host, port: PORT });
            sock.setNoDelay(true);
            sock.once('connect', () => {
                this.sock = sock;
                this.alive = true;
                this.buf = Buffer.alloc(0);
                sock.on('data', (d) => this.onData(d));
                sock.on('error', () => {});
                sock.on('close', () => this.onClose());
                resolve(true);
            });
            sock.once('error', (e) => {
                if (this.alive) return;
                sock.destroy();
                if (tries > 1 && !stopping) {
                    this.connect(tries - 1).then(resolve);
                } else {
                    fail('connect', e.code || e.message);
                    resolve(false);
                }
            });
        });
    }

    onClose() {
        const wasAlive = this.alive;
        this.alive = false;
        if (this.pending) {
            fail('conn', `closed with a ${this.pending.kind} request in flight`);
            this.finish();
        } else if (wasAlive && !stopping) {
            fail('conn', 'closed by the server while idle');
        }
        if (!stopping) this.connect().then((ok) => ok && this.schedule(0));
    }

    schedule(delay) {
        if (stopping || !this.alive) return;
        if (CALLS && this.sent >= CALLS) return;
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.send(), delay);
    }

    send() {
        if (stopping || !this.alive || this.pending) return;
        const r = nextRequest();
        this.pending = { ...r, t0: process.hrtime.bigint(), deadline: setTimeout(() => this.onTimeout(), TIMEOUT_MS) };
        this.sent++;
        inflight++;
        this.sock.write(r.bytes);
    }

    onTimeout() {
        if (!this.pending) return;
        fail('timeout', `${this.pending.kind} unanswered after ${TIMEOUT_MS} ms`);
        this.finish();
        this.alive = false;
        this.sock.destroy(); // reconnects in onClose
    }

    finish() {
        clearTimeout(this.pending.deadline);
        this.pending = null;
        inflight--;
        done++;
    }

    onData(d) {
        this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
        for (;;) {
            const he = this.buf.indexOf('\r\n\r\n');
            if (he < 0) return;
            const head = this.buf.toString('latin1', 0, he);
            const status = Number(head.slice(9, 12));
            let body;
            if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
                // A streamed batch answer (docs/compression.md): chunks until the last one.
                const parts = [];
                let off = he + 4, whole = false;
                for (;;) {
                    const le = this.buf.indexOf('\r\n', off);
                    if (le < 0) break;
                    const size = parseInt(this.buf.toString('latin1', off, le), 16);
                    if (this.buf.length < le + 2 + size + 2) break;
                    off = le + 2 + size + 2;
                    if (size === 0) { whole = true; break; }
                    parts.push(this.buf.subarray(le + 2, le + 2 + size));
                }
                if (!whole) return;
                body = Buffer.concat(parts).toString('utf8');
                this.buf = this.buf.subarray(off);
            } else {
                const m = /\r\ncontent-length: *(\d+)/i.exec(head);
                const len = m ? Number(m[1]) : 0;
                if (this.buf.length < he + 4 + len) return;
                body = this.buf.toString('utf8', he + 4, he + 4 + len);
                this.buf = this.buf.subarray(he + 4 + len);
            }
            const p = this.pending;
            if (!p) {
                fail('mismatch', `an answer nobody asked for: ${head.split('\r\n')[0]}`);
                continue;
            }
            const us = Number(process.hrtime.bigint() - p.t0) / 1000;
            record(us);
            counts[p.kind]++;
            if (status >= 500 || status === 0) fail('status', `${head.split('\r\n')[0]} for ${p.kind}`);
            else {
                const why = p.check(status, body);
                if (why) fail('mismatch', `${p.kind}: ${why.slice(0, 300)}`);
            }
            if (/\r\nconnection: *close/i.test(head) && !stopping) fail('conn', 'server said Connection: close');
            this.finish();
            this.schedule(INTERVAL_MS ? INTERVAL_MS * (0.9 + 0.2 * Math.random()) : 0);
        }
    }
}

const fmtMB = (kib) => `${(kib / 1024).toFixed(1)} MB`;
const t0 = Date.now();

// Connect in waves of RAMP so the listen backlog (511) is never the bottleneck.
for (let i = 0; i < CONNS; i += RAMP) {
    const wave = [];
    for (let j = i; j < Math.min(CONNS, i + RAMP); j++) {
        const c = new Conn();
        conns.push(c);
        wave.push(c.connect());
    }
    await Promise.all(wave);
}
const connected = conns.filter((c) => c.alive).length;
const connectMs = Date.now() - t0;
mem.fdsConnected = fdCount();
const rssConnected = rssKiB();
mem.fdsPeak = Math.max(mem.fdsPeak, mem.fdsConnected);
mem.peak = Math.max(mem.peak, rssConnected);
const tLoad = Date.now();
for (const c of conns) c.schedule(INTERVAL_MS ? Math.random() * INTERVAL_MS : 0);

// Progress every 10 s (stderr), and the end of the load.
let lastDone = 0;
const progress = setInterval(() => {
    const rps = (done - lastDone) / 10;
    lastDone = done;
    const errs = Object.values(errors).reduce((a, b) => a + b, 0);
    process.stderr.write(`[${opt.label}] ${((Date.now() - tLoad) / 1000).toFixed(0)} s: ${done} answers (${rps.toFixed(0)}/s), ` +
        `${errs} errors, rss ${fmtMB(rssKiB())}, fds ${fdCount()}\n`);
}, 10_000);

if (CALLS) {
    // Bounded: every connection sends CALLS requests; wait for them (or the duration) to end.
    const deadline = Date.now() + Math.max(DURATION_MS, TIMEOUT_MS * 2);
    while (Date.now() < deadline && conns.some((c) => c.alive && (c.sent < CALLS || c.pending))) {
        await new Promise((r) => setTimeout(r, 20));
    }
} else {
    await new Promise((r) => setTimeout(r, DURATION_MS));
}
// A last sample with every connection still open (short runs end between two samples).
mem.peak = Math.max(mem.peak, rssKiB());
mem.fdsPeak = Math.max(mem.fdsPeak, fdCount());
stopping = true;
const loadMs = Date.now() - tLoad;
clearInterval(progress);
// Answers still in flight: wait for them (bounded by the request timeout).
{
    const deadline = Date.now() + TIMEOUT_MS;
    while (inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}
for (const c of conns) {
    clearTimeout(c.timer);
    c.alive = false;
    c.sock?.end();
}
// jrpcd notices the closes: wait (bounded) for its fd count to come back.
{
    const deadline = Date.now() + Number(opt.settle) * 1000;
    while (PID && fdCount() > mem.fdsBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
for (const c of conns) c.sock?.destroy();
clearInterval(sampler);
mem.fdsAfter = fdCount();
mem.end = rssKiB();
mem.peak = Math.max(mem.peak, mem.end);

const totalErrors = Object.values(errors).reduce((a, b) => a + b, 0);
const summary = {
    label: opt.label, conns: CONNS, connected, connect_ms: connectMs, load_s: loadMs / 1000,
    interval_ms: INTERVAL_MS, answers: samples, rps: Math.round(samples / (loadMs / 1000)), counts,
    errors: totalErrors, error_kinds: errors, first_errors: firstErrors,
    p50_ms: quantile(0.5) / 1000, p99_ms: quantile(0.99) / 1000, max_ms: maxUs / 1000,
    rss_kib: { start: mem.start, connected: rssConnected, peak: mem.peak, end: mem.end },
    fds: { before: mem.fdsBefore, connected: mem.fdsConnected, peak: mem.fdsPeak, after: mem.fdsAfter },
};
if (opt.json) {
    console.log(JSON.stringify(summary));
} else {
    const f = (x) => x.toFixed(2);
    console.log(`[${opt.label}] ${connected}/${CONNS} connections (in ${connectMs} ms), load ${summary.load_s.toFixed(0)} s` +
        (INTERVAL_MS ? `, one request per connection every ~${INTERVAL_MS} ms` : ', closed loop'));
    console.log(`[${opt.label}] answers: ${samples} (${summary.rps}/s): ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    console.log(`[${opt.label}] errors: ${totalErrors} (${Object.entries(errors).map(([k, v]) => `${k} ${v}`).join(', ')})`);
    for (const e of firstErrors) console.log(`[${opt.label}]   ${e}`);
    console.log(`[${opt.label}] latency: p50 ${f(summary.p50_ms)} ms, p99 ${f(summary.p99_ms)} ms, max ${f(summary.max_ms)} ms`);
    if (PID) {
        console.log(`[${opt.label}] jrpcd RSS: start ${fmtMB(mem.start)}, with connections ${fmtMB(rssConnected)}, peak ${fmtMB(mem.peak)}, end ${fmtMB(mem.end)}`);
        console.log(`[${opt.label}] jrpcd open fds: before ${mem.fdsBefore}, connected ${mem.fdsConnected}, peak ${mem.fdsPeak}, after ${mem.fdsAfter}`);
    }
}
process.exit(totalErrors === 0 && connected === CONNS ? 0 : 1);
