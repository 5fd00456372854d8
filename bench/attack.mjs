#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// bench/attack.mjs — the attackers of bench/soak.sh's attack phase: hostile clients of every class
// of issue 11 (Hardening II), all at once against one jrpcd, each an async task of this process
// with its own tally (bytes sent, connections held, answers got, when jrpcd cut it off). Samples
// jrpcd's RSS (VmRSS, VmHWM) while they run. Runs until SIGINT/SIGTERM (soak.sh sends it once the
// normal clients are done) or --max-seconds, then stops every attacker, checks jrpcd still
// answers, and prints the report: attackers' tallies, and with --baseline/--normal (conns.mjs
// --json outputs) the normal clients' figures without and under attack. Uses `ws` from
// node_modules, otherwise Node built-ins.
//
//   node bench/attack.mjs --port P --pid PID [--upstream-port U] [--max-memory BYTES]
//        [--settings TEXT] [--baseline F --normal F] [--json F] [--only CLASS,...] [class options]
//
// Classes (--only takes these names); defaults in brackets, sized for a 2-core machine:
//   pipe      non-reading HTTP pipeliners: --pipe-conns [4] connections each pipeline up to
//             --pipe-requests [1000] requests with large answers — test.blob [--pipe-blob, 2 MiB],
//             test.echo of a --pipe-echo [256 KiB] string, a batch of 8 test.blob of 1/8 the size —
//             and never read
//   flood     HTTP notification floods: --flood-conns [2] connections each send --flood-rate [10]
//             requests/s (at most --flood-window [64] unanswered), every request a batch of
//             --flood-batch [1000] notifications of test.sleep / test.sleep_async [--sleep-ms, 10000]
//   wsflood   the same over WebSocket: --wsflood-conns [2], --wsflood-rate [200] messages/s each,
//             every message a batch of --wsflood-batch [20] notifications (max_batch_ws)
//   wstrickle --wstrickle-conns [10] WebSockets that send a frame header announcing
//             --trickle-length [1 MiB] bytes, then 1–2 payload bytes per second
//   trickle   --trickle-conns [10] HTTP requests announcing a --trickle-length body, sent at 1–2
//             bytes per second
//   subs      subscription storms: --sub-conns [1] WebSockets each send --sub-count [100000]
//             test.subscribe [60000] calls in batches of --sub-batch [20], at most --sub-window [32]
//             messages unanswered
//   gateway   departed gateway clients: --gw-rate [10] connections per second, each sends one
//             batch of --gw-batch [1000] calls of --gw-method [slow.call] (forwarded to the slow
//             upstream) and leaves after --gw-leave-ms [50]
// --warmup [3] seconds after the start, "attack: running" on stdout says the attackers are at full
// strength; --settle [10] bounds the wait for jrpcd's fds after the stop.
// Every attacker whose connection jrpcd closes opens a new one (a real attacker would), except the
// gateway clients, which leave by design.

import net from 'node:net';
import crypto from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const { values: opt } = parseArgs({
    options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string' },
        path: { type: 'string', default: '/api/v1/endpoint' },
        pid: { type: 'string' },
        'upstream-port': { type: 'string' },
        'max-memory': { type: 'string', default: '' },
        settings: { type: 'string', default: '' },
        baseline: { type: 'string' },
        normal: { type: 'string' },
        json: { type: 'string' },
        only: { type: 'string', default: 'pipe,flood,wsflood,wstrickle,trickle,subs,gateway' },
        warmup: { type: 'string', default: '3' },
        'max-seconds': { type: 'string', default: '300' },
        settle: { type: 'string', default: '10' },
        'pipe-conns': { type: 'string', default: '4' },
        'pipe-requests': { type: 'string', default: '1000' },
        'pipe-blob': { type: 'string', default: String(2 << 20) },
        'pipe-echo': { type: 'string', default: String(256 << 10) },
        'flood-conns': { type: 'string', default: '2' },
        'flood-rate': { type: 'string', default: '10' },
        'flood-window': { type: 'string', default: '64' },
        'flood-batch': { type: 'string', default: '1000' },
        'sleep-ms': { type: 'string', default: '10000' },
        'wsflood-conns': { type: 'string', default: '2' },
        'wsflood-rate': { type: 'string', default: '200' },
        'wsflood-batch': { type: 'string', default: '20' },
        'wstrickle-conns': { type: 'string', default: '10' },
        'trickle-conns': { type: 'string', default: '10' },
        'trickle-length': { type: 'string', default: String(1 << 20) },
        'sub-conns': { type: 'string', default: '1' },
        'sub-count': { type: 'string', default: '100000' },
        'sub-batch': { type: 'string', default: '20' },
        'sub-window': { type: 'string', default: '32' },
        'gw-rate': { type: 'string', default: '10' },
        'gw-batch': { type: 'string', default: '1000' },
        'gw-leave-ms': { type: 'string', default: '50' },
        'gw-method': { type: 'string', default: 'slow.call' },
    },
});
if (!opt.port) {
    console.error('usage: attack.mjs --port P [--pid PID] [--upstream-port U] [--only pipe,flood,...]');
    process.exit(2);
}
const HOST = opt.host;
const PORT = Number(opt.port);
const PID = opt.pid ? Number(opt.pid) : 0;
const N = (name) => Number(opt[name]);
const ONLY = new Set(opt.only.split(',').map((s) => s.trim()).filter(Boolean));
const HEAD = (len, extra = '') =>
    `POST ${opt.path} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\nContent-Type: application/json\r\n${extra}Content-Length: ${len}\r\n\r\n`;
const httpReq = (body) => {
    const b = Buffer.from(body);
    return Buffer.concat([Buffer.from(HEAD(b.length)), b]);
};
const wsUrl = `ws://${HOST}:${PORT}${opt.path}`;

const t0 = Date.now();
const now = () => (Date.now() - t0) / 1000;
let stopping = false;
const timers = new Set(); // intervals and timeouts to clear at the stop
const later = (fn, ms) => {
    const t = setTimeout(() => { timers.delete(t); fn(); }, ms);
    timers.add(t);
    return t;
};
const every = (fn, ms) => {
    const t = setInterval(fn, ms);
    timers.add(t);
    return t;
};

// ---- jrpcd's memory and fds ------------------------------------------------------------------------

function procStatus() {
    if (!PID) return { rss: 0, hwm: 0 };
    try {
        const s = readFileSync(`/proc/${PID}/status`, 'utf8');
        return { rss: Number(/VmRSS:\s+(\d+)/.exec(s)[1]), hwm: Number(/VmHWM:\s+(\d+)/.exec(s)[1]) };
    } catch { return { rss: 0, hwm: 0 }; }
}
function fdCount() {
    if (!PID) return 0;
    try { return readdirSync(`/proc/${PID}/fd`).length; } catch { return 0; }
}
const mem = { before: procStatus(), fdsBefore: fdCount(), peak: 0, peakAt: 0, hwm: 0, fdsPeak: 0 };
mem.peak = mem.before.rss;
const sampler = setInterval(() => {
    const s = procStatus();
    if (s.rss > mem.peak) { mem.peak = s.rss; mem.peakAt = now(); }
    mem.hwm = Math.max(mem.hwm, s.hwm);
    mem.fdsPeak = Math.max(mem.fdsPeak, fdCount());
}, 100);

// ---- tallies -------------------------------------------------------------------------------------------

/** What one class of attacker achieved. */
class Tally {
    constructor(name, what) {
        this.name = name;
        this.what = what;
        this.opened = 0;      // connections opened (reconnects included)
        this.open = 0;
        this.openPeak = 0;
        this.cut = [];        // { at, life }: seconds since start, and how long it had lived
        this.bytes = 0;       // bytes the kernel took from us
        this.sent = 0;        // requests / messages / calls sent (see `unit`)
        this.unit = 'requests';
        this.answers = 0;     // HTTP answers or WebSocket messages received
        this.status = {};     // HTTP status → count
        this.codes = {};      // JSON-RPC error code → count
        this.closes = {};     // WebSocket close code → count
        this.errors = {};     // socket error code → count
        this.notes = [];
        this.socks = new Set();
    }

    add(map, key, n = 1) { this[map][key] = (this[map][key] ?? 0) + n; }

    /** A connection is up; returns its end(byServer) function, which counts it once. */
    up(sock) {
        this.opened++;
        this.open++;
        this.openPeak = Math.max(this.openPeak, this.open);
        const born = now();
        let ended = false;
        if (sock) this.socks.add(sock);
        return (byServer) => {
            if (ended) return false;
            ended = true;
            this.open--;
            if (sock) this.socks.delete(sock);
            if (byServer && !stopping) this.cut.push({ at: now(), life: now() - born });
            return true;
        };
    }

    codesIn(text) {
        for (const m of text.matchAll(/"code":\s*(-?\d+)/g)) this.add('codes', m[1]);
    }
}
const tallies = [];
const tally = (name, what) => {
    const t = new Tally(name, what);
    tallies.push(t);
    return t;
};

/** Counts HTTP/1.1 answers on a byte stream, keeping at most `keep` bytes of each body. */
class RespReader {
    constructor(onResp, keep = 4096) {
        this.onResp = onResp;
        this.keep = keep;
        this.head = Buffer.alloc(0);
        this.need = -1; // body bytes still to come; -1 while reading a head
        this.chunk = null; // in a chunked body: 'size', 'data' or 'trailer'
        this.line = '';
        this.body = [];
        this.kept = 0;
        this.status = 0;
        this.bytes = 0;
    }

    push(d) {
        this.bytes += d.length;
        while (d.length) {
            if (this.chunk) {
                d = this.pushChunked(d);
                continue;
            }
            if (this.need < 0) {
                this.head = this.head.length ? Buffer.concat([this.head, d]) : d;
                const he = this.head.indexOf('\r\n\r\n');
                if (he < 0) {
                    if (this.head.length > 65536) this.head = this.head.subarray(-4); // not HTTP
                    return;
                }
                const text = this.head.toString('latin1', 0, he);
                this.status = Number(text.slice(9, 12));
                const m = /\r\ncontent-length: *(\d+)/i.exec(text);
                this.need = m ? Number(m[1]) : 0;
                d = this.head.subarray(he + 4);
                this.head = Buffer.alloc(0);
                this.body = [];
                this.kept = 0;
                if (/\r\ntransfer-encoding: *chunked/i.test(text)) {
                    // A streamed batch answer (docs/compression.md): size lines, data, CRLFs.
                    this.chunk = 'size';
                    this.line = '';
                    continue;
                }
            }
            const take = Math.min(this.need, d.length);
            if (this.kept < this.keep && take > 0) {
                const k = d.subarray(0, Math.min(take, this.keep - this.kept));
                this.body.push(k);
                this.kept += k.length;
            }
            this.need -= take;
            d = d.subarray(take);
            if (this.need === 0) {
                this.need = -1;
                this.onResp(this.status, Buffer.concat(this.body).toString('utf8'));
            }
        }
    }
}

/** Extends RespReader.push to chunked bodies: takes what it can of d, returns the rest. */
RespReader.prototype.pushChunked = function pushChunked(d) {
    if (this.chunk === 'size' || this.chunk === 'trailer') {
        const nl = d.indexOf('\n');
        this.line += d.toString('latin1', 0, nl < 0 ? d.length : nl + 1);
        if (nl < 0) return d.subarray(d.length);
        const line = this.line.trim();
        this.line = '';
        if (this.chunk === 'trailer') {
            if (line === '') {
                this.chunk = null;
                this.need = -1;
                this.onResp(this.status, Buffer.concat(this.body).toString('utf8'));
            }
        } else if (line !== '') { // '' is the CRLF that ends a chunk's data
            this.need = parseInt(line, 16);
            this.chunk = this.need === 0 ? 'trailer' : 'data';
        }
        return d.subarray(nl + 1);
    }
    if (this.chunk === 'data') {
        const take = Math.min(this.need, d.length);
        if (this.kept < this.keep && take > 0) {
            const k = d.subarray(0, Math.min(take, this.keep - this.kept));
            this.body.push(k);
            this.kept += k.length;
        }
        this.need -= take;
        if (this.need === 0)
            this.chunk = 'size';
        return d.subarray(take);
    }
    return d;
};

/** A TCP connection to jrpcd; resolves the socket once connected, or null. */
function connect() {
    return new Promise((resolve) => {
        const s = net.connect({ host: HOST, port: PORT });
        s.setNoDelay(true);
        s.once('connect', () => resolve(s));
        s.once('error', () => { s.destroy(); resolve(null); });
    });
}

/** Reopen after a cut (a moment later, so a refusing server is not spun against). */
const again = (fn) => { if (!stopping) later(fn, 100); };

// ---- non-reading HTTP pipeliners ----------------------------------------------------------------------

const pipeReader = []; // { sock, tally } to read from after the attack

function pipeliners() {
    const blob = N('pipe-blob');
    const t = tally('pipe', `${N('pipe-conns')} connections pipelining up to ${N('pipe-requests')} requests each ` +
        `(test.blob [${blob}], test.echo of ${N('pipe-echo')} bytes, a batch of 8 test.blob [${blob >> 3}]), never reading`);
    const reqs = [
        httpReq(`{"jsonrpc":"2.0","method":"test.blob","params":[${blob}],"id":1}`),
        httpReq(`{"jsonrpc":"2.0","method":"test.echo","params":["${'e'.repeat(N('pipe-echo'))}"],"id":2}`),
        httpReq(`[${Array.from({ length: 8 }, (_, i) => `{"jsonrpc":"2.0","method":"test.blob","params":[${blob >> 3}],"id":${i}}`).join(',')}]`),
    ];
    const one = async () => {
        const s = await connect();
        if (!s) { t.add('errors', 'connect'); return again(one); }
        if (stopping) return s.destroy();
        s.pause(); // never read: answers pile up in jrpcd, then in the kernel
        const end = t.up(s);
        const ends = []; // cumulative byte offset at which each request ends
        let total = 0;
        let i = 0;
        const conn = { sock: s, ends, flushed: () => s.bytesWritten - s.writableLength };
        pipeReader.push(conn);
        const pump = () => {
            while (!stopping && i < N('pipe-requests') && !s.destroyed) {
                const r = reqs[i++ % reqs.length];
                total += r.length;
                ends.push(total);
                if (!s.write(r)) return void s.once('drain', pump);
            }
        };
        s.on('error', (e) => t.add('errors', e.code ?? e.message));
        s.on('close', () => { if (end(true)) again(one); });
        conn.end = end;
        pump();
    };
    for (let i = 0; i < N('pipe-conns'); i++) one();
    return t;
}

/** After the attack: what each pipeliner had waiting (read for at most `ms`, bodies discarded). */
async function pipeDrain(t, ms) {
    let bytes = 0, answers = 0;
    const status = {};
    const live = pipeReader.filter((c) => !c.sock.destroyed);
    await Promise.all(live.map((c) => new Promise((resolve) => {
        const r = new RespReader((s) => { answers++; status[s] = (status[s] ?? 0) + 1; }, 0);
        const done = () => { clearTimeout(timer); c.end(false); c.sock.destroy(); resolve(); };
        const timer = setTimeout(done, ms);
        c.sock.removeAllListeners('close');
        c.sock.on('close', done);
        c.sock.on('data', (d) => { bytes += d.length; r.push(d); });
        c.sock.resume();
    })));
    // What the kernel took from each connection (the stop let the last writes through).
    for (const c of pipeReader) {
        const sent = c.flushed();
        t.bytes += sent;
        t.sent += c.ends.filter((e) => e <= sent).length;
    }
    t.notes.push(`${live.length} still open at the end; reading them for ${ms / 1000} s afterwards got ` +
        `${answers} answers (${Object.entries(status).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'}), ` +
        `${(bytes / 2 ** 20).toFixed(1)} MiB: what jrpcd and the kernel had held for them`);
}

// ---- notification floods --------------------------------------------------------------------------------

function notes(n) {
    const ms = N('sleep-ms');
    return `[${Array.from({ length: n }, (_, i) =>
        `{"jsonrpc":"2.0","method":"${i % 2 ? 'test.sleep_async' : 'test.sleep'}","params":[${ms}]}`).join(',')}]`;
}

/** Sends up to `rate` per second on ticks of 50 ms while `room()` allows; `send()` sends one. */
function pace(rate, room, send) {
    let credit = 0;
    return every(() => {
        credit = Math.min(credit + rate / 20, Math.max(1, rate));
        while (credit >= 1 && room()) {
            credit--;
            send();
        }
    }, 50);
}

function httpFlood() {
    const window = N('flood-window');
    const req = httpReq(notes(N('flood-batch')));
    const t = tally('flood', `${N('flood-conns')} HTTP connections, ${N('flood-rate')} requests/s each (at most ${window} unanswered), ` +
        `each a batch of ${N('flood-batch')} notifications of test.sleep/test.sleep_async [${N('sleep-ms')}] (${req.length} bytes)`);
    const one = async () => {
        const s = await connect();
        if (!s) { t.add('errors', 'connect'); return again(one); }
        if (stopping) return s.destroy();
        const end = t.up(s);
        let outstanding = 0;
        const r = new RespReader((status, body) => {
            outstanding--;
            t.answers++;
            t.add('status', status);
            if (body) t.codesIn(body);
        });
        s.on('data', (d) => r.push(d));
        const tick = pace(N('flood-rate'), () => outstanding < window && s.writableLength < (1 << 20), () => {
            outstanding++;
            t.sent++;
            t.bytes += req.length;
            s.write(req);
        });
        s.on('error', (e) => t.add('errors', e.code ?? e.message));
        s.on('close', () => {
            clearInterval(tick);
            timers.delete(tick);
            t.bytes -= s.writableLength;
            if (end(true)) again(one);
        });
    };
    for (let i = 0; i < N('flood-conns'); i++) one();
    return t;
}

/** A `ws` client; resolves it once open, or null. */
function wsOpen() {
    return new Promise((resolve) => {
        const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
        ws.on('error', () => {}); // the owner counts errors; a refused one errs again on terminate
        ws.once('open', () => resolve(ws));
        ws.once('unexpected-response', (req, res) => { resolve(null); ws.terminate(); void res; });
        ws.once('error', () => resolve(null));
    });
}

function wsFlood() {
    const msg = notes(N('wsflood-batch'));
    const t = tally('wsflood', `${N('wsflood-conns')} WebSockets, ${N('wsflood-rate')} messages/s each, ` +
        `each a batch of ${N('wsflood-batch')} notifications of test.sleep/test.sleep_async [${N('sleep-ms')}] (${msg.length} bytes)`);
    t.unit = 'messages';
    const one = async () => {
        const ws = await wsOpen();
        if (!ws) { t.add('errors', 'open'); return again(one); }
        if (stopping) return ws.terminate();
        const end = t.up(ws);
        ws.on('message', (data) => { t.answers++; t.codesIn(data.toString()); });
        const tick = pace(N('wsflood-rate'), () => ws.readyState === WebSocket.OPEN && ws.bufferedAmount < (1 << 20), () => {
            t.sent++;
            t.bytes += msg.length;
            ws.send(msg);
        });
        ws.on('error', (e) => t.add('errors', e.code ?? e.message));
        ws.on('close', (code) => {
            clearInterval(tick);
            timers.delete(tick);
            t.bytes -= ws.bufferedAmount;
            if (!stopping) t.add('closes', code);
            if (end(true)) again(one);
        });
    };
    for (let i = 0; i < N('wsflood-conns'); i++) one();
    return t;
}

// ---- trickles ------------------------------------------------------------------------------------------

/** Sends `byte()` 1–2 times a second on `s` until it closes or the attack stops. */
function trickle(s, t, byte) {
    const tick = () => {
        if (stopping || s.destroyed) return;
        s.write(byte());
        t.bytes++;
        later(tick, 500 + Math.random() * 500);
    };
    later(tick, 500 + Math.random() * 500);
}

function wsTrickles() {
    const len = N('trickle-length');
    const t = tally('wstrickle', `${N('wstrickle-conns')} WebSockets: a text frame header announcing ${len} bytes, then 1–2 bytes/s`);
    t.unit = 'frames begun';
    const one = async () => {
        const s = await connect();
        if (!s) { t.add('errors', 'connect'); return again(one); }
        if (stopping) return s.destroy();
        const key = crypto.randomBytes(16).toString('base64');
        s.write(`GET ${opt.path} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
        let head = '';
        let upgraded = false;
        let end = null;
        s.on('data', (d) => {
            if (!upgraded) {
                head += d.toString('latin1');
                const he = head.indexOf('\r\n\r\n');
                if (he < 0) return;
                const status = Number(head.slice(9, 12));
                t.add('status', status);
                if (status !== 101) return void s.destroy();
                upgraded = true;
                end = t.up(s);
                const mask = crypto.randomBytes(4);
                const hdr = Buffer.alloc(14);
                hdr[0] = 0x81; // FIN, text
                hdr[1] = 0x80 | 127;
                hdr.writeBigUInt64BE(BigInt(len), 2);
                mask.copy(hdr, 10);
                s.write(hdr);
                t.bytes += hdr.length;
                t.sent++;
                let at = 0;
                trickle(s, t, () => Buffer.from([0x20 ^ mask[at++ & 3]])); // masked spaces
                d = Buffer.from(head.slice(he + 4), 'latin1');
                if (!d.length) return;
            }
            t.answers++;
            if (d[0] === 0x88 && d.length >= 4) t.add('closes', d.readUInt16BE(2));
        });
        s.on('error', (e) => t.add('errors', e.code ?? e.message));
        s.on('close', () => {
            if (!end) return again(one);
            if (end(true)) again(one);
        });
    };
    for (let i = 0; i < N('wstrickle-conns'); i++) one();
    return t;
}

function httpTrickles() {
    const len = N('trickle-length');
    const t = tally('trickle', `${N('trickle-conns')} HTTP requests announcing a ${len}-byte body, sent at 1–2 bytes/s`);
    const one = async () => {
        const s = await connect();
        if (!s) { t.add('errors', 'connect'); return again(one); }
        if (stopping) return s.destroy();
        const end = t.up(s);
        const head = HEAD(len);
        s.write(head);
        t.bytes += head.length;
        t.sent++;
        const r = new RespReader((status, body) => { t.answers++; t.add('status', status); t.codesIn(body); });
        s.on('data', (d) => r.push(d));
        trickle(s, t, () => ' ');
        s.on('error', (e) => t.add('errors', e.code ?? e.message));
        s.on('close', () => { if (end(true)) again(one); });
    };
    for (let i = 0; i < N('trickle-conns'); i++) one();
    return t;
}

// ---- subscription storms --------------------------------------------------------------------------------

function subStorms() {
    const batch = N('sub-batch');
    const count = N('sub-count');
    const window = N('sub-window');
    const t = tally('subs', `${N('sub-conns')} WebSocket(s), each ${count} test.subscribe [60000] calls in batches of ${batch}, ` +
        `at most ${window} messages unanswered`);
    t.unit = 'subscribe calls';
    t.subscribed = 0;
    let id = 0;
    const one = async () => {
        const ws = await wsOpen();
        if (!ws) { t.add('errors', 'open'); return again(one); }
        if (stopping) return ws.terminate();
        const end = t.up(ws);
        let sent = 0;
        let outstanding = 0;
        const pump = () => {
            while (!stopping && ws.readyState === WebSocket.OPEN && sent < count && outstanding < window) {
                const n = Math.min(batch, count - sent);
                const items = Array.from({ length: n }, () => `{"jsonrpc":"2.0","method":"test.subscribe","params":[60000],"id":${++id}}`);
                const msg = n === 1 ? items[0] : `[${items.join(',')}]`;
                ws.send(msg);
                sent += n;
                t.sent += n;
                t.bytes += msg.length;
                outstanding++;
            }
        };
        ws.on('message', (data) => {
            const text = data.toString();
            if (text.includes('"method"')) return; // a push
            t.answers++;
            outstanding--;
            t.subscribed += (text.match(/"result"/g) ?? []).length;
            t.codesIn(text);
            pump();
        });
        ws.on('error', (e) => t.add('errors', e.code ?? e.message));
        ws.on('close', (code) => {
            if (!stopping) t.add('closes', code);
            if (end(true)) again(one);
        });
        pump();
    };
    for (let i = 0; i < N('sub-conns'); i++) one();
    return t;
}

// ---- departed gateway clients ----------------------------------------------------------------------------

function gatewayDeparted() {
    const n = N('gw-batch');
    const leave = N('gw-leave-ms');
    const req = httpReq(`[${Array.from({ length: n }, (_, i) => `{"jsonrpc":"2.0","method":"${opt['gw-method']}","params":[${i}],"id":${i}}`).join(',')}]`);
    const t = tally('gateway', `${N('gw-rate')} clients/s, each a batch of ${n} ${opt['gw-method']} calls ` +
        `(forwarded to the slow upstream), gone after ${leave} ms`);
    t.unit = 'batches';
    t.lastLeft = 0;
    const one = async () => {
        const s = await connect();
        if (!s) return void t.add('errors', 'connect');
        if (stopping) return s.destroy();
        const end = t.up(s);
        const r = new RespReader((status, body) => { t.answers++; t.add('status', status); t.codesIn(body); }, 1 << 20);
        s.on('data', (d) => r.push(d));
        s.on('error', (e) => t.add('errors', e.code ?? e.message));
        s.on('close', () => end(true));
        s.write(req);
        t.sent++;
        t.bytes += req.length;
        later(() => {
            t.bytes -= s.writableLength;
            t.lastLeft = now();
            end(false);
            s.destroy();
        }, leave);
    };
    pace(N('gw-rate'), () => true, one);
    return t;
}

// ---- the run -------------------------------------------------------------------------------------------

const upstreamGet = async (what) => {
    if (!opt['upstream-port']) return null;
    try {
        const res = await fetch(`http://127.0.0.1:${opt['upstream-port']}/${what}`);
        return await res.json();
    } catch { return null; }
};

// One attacker's bug must not end the others' attack: say it and go on.
process.on('uncaughtException', (e) => process.stderr.write(`[attack] uncaught: ${e.stack ?? e}\n`));

const starters = { pipe: pipeliners, flood: httpFlood, wsflood: wsFlood, wstrickle: wsTrickles, trickle: httpTrickles, subs: subStorms, gateway: gatewayDeparted };
for (const name of Object.keys(starters)) if (ONLY.has(name)) starters[name]();
for (const name of ONLY) if (!starters[name]) { console.error(`attack: unknown class ${name}`); process.exit(2); }

const fmtMB = (kib) => `${(kib / 1024).toFixed(1)} MiB`;
const fmtBytes = (n) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} bytes`);
const progress = every(() => {
    const s = procStatus();
    process.stderr.write(`[attack] ${now().toFixed(0)} s: jrpcd rss ${fmtMB(s.rss)}, fds ${fdCount()}; ` +
        tallies.map((t) => `${t.name} ${t.open} open/${t.sent} ${t.unit.split(' ').pop()}`).join(', ') + '\n');
}, 10_000);
later(() => console.log(`attack: running (${[...ONLY].join(', ')})`), N('warmup') * 1000);

let stopped = false;
async function stop() {
    if (stopped) return;
    stopped = true;
    stopping = true;
    const attackS = now();
    for (const t of timers) { clearTimeout(t); clearInterval(t); }
    clearInterval(progress);
    // Final sample with every attacker still connected; the peak is the attack's, not the
    // read-out's below.
    clearInterval(sampler);
    const s = procStatus();
    if (s.rss > mem.peak) { mem.peak = s.rss; mem.peakAt = now(); }
    mem.hwm = Math.max(mem.hwm, s.hwm);
    const up1 = await upstreamGet('mark');
    const pipe = tallies.find((t) => t.name === 'pipe');
    for (const t of tallies) {
        if (t === pipe) continue; // pipeDrain counts what the kernel took
        for (const sock of t.socks) t.bytes -= sock instanceof WebSocket ? sock.bufferedAmount : sock.writableLength;
    }
    const openAtEnd = Object.fromEntries(tallies.map((t) => [t.name, t.open]));
    if (pipe) await pipeDrain(pipe, 2000);
    for (const t of tallies) {
        for (const sock of t.socks) sock instanceof WebSocket ? sock.terminate() : sock.destroy();
    }

    // jrpcd after the attack: its fds back (bounded wait), one ping answered, its RSS.
    const after = { fdsBefore: mem.fdsBefore, fds: fdCount(), settleS: 0, ping: 'not tried' };
    const deadline = Date.now() + N('settle') * 1000;
    const ts = Date.now();
    while (PID && fdCount() > mem.fdsBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    after.fds = fdCount();
    after.settleS = (Date.now() - ts) / 1000;
    try {
        const t1 = Date.now();
        const res = await fetch(`http://${HOST}:${PORT}${opt.path}`, {
            method: 'POST', body: '{"jsonrpc":"2.0","method":"tennis@ping","id":1}',
            headers: { 'Content-Type': 'application/json' }, signal: AbortSignal.timeout(10_000),
        });
        after.ping = `${res.status} ${await res.text()} in ${Date.now() - t1} ms`;
    } catch (e) { after.ping = `failed: ${e.message}`; }
    after.rss = procStatus().rss;
    const up2 = await upstreamGet('stats');
    report({ attackS, openAtEnd, after, up1, up2 });
    process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
later(stop, N('max-seconds') * 1000);

// ---- the report ------------------------------------------------------------------------------------------

function report({ attackS, openAtEnd, after, up1, up2 }) {
    const out = [];
    const p = (s) => out.push(s);
    const kv = (o) => Object.entries(o).map(([k, v]) => `${k}: ${v}`).join(', ');
    const read = (f) => { try { return f ? JSON.parse(readFileSync(f, 'utf8')) : null; } catch { return null; } };
    const base = read(opt.baseline), under = read(opt.normal);
    p(`== attack report (${attackS.toFixed(0)} s of attack)`);
    if (opt.settings) p(`bounds: ${opt.settings}`);
    if (base || under) {
        const f = (x) => (x === undefined ? '-' : typeof x === 'number' ? x.toFixed(2) : String(x));
        const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}x` : '-');
        p('normal clients            baseline     under attack   ratio');
        p(`  answers              ${String(base?.answers ?? '-').padStart(12)} ${String(under?.answers ?? '-').padStart(16)}`);
        p(`  answers/s            ${String(base?.rps ?? '-').padStart(12)} ${String(under?.rps ?? '-').padStart(16)} ${ratio(under?.rps, base?.rps).padStart(7)}`);
        p(`  errors (goal 0)      ${String(base?.errors ?? '-').padStart(12)} ${String(under?.errors ?? '-').padStart(16)}`);
        p(`  p50 ms               ${f(base?.p50_ms).padStart(12)} ${f(under?.p50_ms).padStart(16)} ${ratio(under?.p50_ms, base?.p50_ms).padStart(7)}`);
        p(`  p99 ms               ${f(base?.p99_ms).padStart(12)} ${f(under?.p99_ms).padStart(16)} ${ratio(under?.p99_ms, base?.p99_ms).padStart(7)}`);
        p(`  max ms               ${f(base?.max_ms).padStart(12)} ${f(under?.max_ms).padStart(16)}`);
        if (under?.errors) p(`  (latencies count every answer: the ${under.errors} errors under attack, often quick refusals, included)`);
        for (const [label, r] of [['baseline', base], ['under attack', under]]) {
            if (!r) { p(`  ${label}: no result (the normal client did not finish)`); continue; }
            if (r.errors) p(`  ${label} errors: ${kv(Object.fromEntries(Object.entries(r.error_kinds).filter(([, v]) => v)))}`);
            if (r.errors) for (const e of r.first_errors.slice(0, 5)) p(`    ${e}`);
        }
    }
    const maxMem = Number(opt['max-memory']) || 0;
    p(`jrpcd RSS: ${fmtMB(mem.before.rss)} before the attack, peak ${fmtMB(mem.peak)} at ${mem.peakAt.toFixed(0)} s ` +
        `(VmHWM ${fmtMB(mem.hwm)})` +
        (maxMem ? `; max_memory ${fmtMB(maxMem / 1024)}: peak is ${(mem.peak * 1024 / maxMem).toFixed(2)}x of it` : '; max_memory not set (not supported)'));
    p(`jrpcd after the attack: fds ${after.fds} (${after.fdsBefore} before it${after.fds > after.fdsBefore ? `, still more after ${after.settleS.toFixed(1)} s` : `, back in ${after.settleS.toFixed(1)} s`}), ` +
        `fds peak ${mem.fdsPeak}, RSS ${fmtMB(after.rss)}, ping: ${after.ping}`);
    p('attackers:');
    const attackers = [];
    for (const t of tallies) {
        const cut = t.cut.length
            ? `${t.cut.length} cut off by jrpcd (first at ${t.cut[0].at.toFixed(1)} s; lived ${Math.min(...t.cut.map((c) => c.life)).toFixed(1)}` +
              `–${Math.max(...t.cut.map((c) => c.life)).toFixed(1)} s)`
            : 'none cut off';
        p(`  ${t.name}: ${t.what}`);
        p(`    connections: ${t.opened} opened, ${openAtEnd[t.name]} held at the end (peak ${t.openPeak}), ${cut}`);
        const extra = [];
        if (Object.keys(t.status).length) extra.push(`HTTP ${kv(t.status)}`);
        if (Object.keys(t.codes).length) extra.push(`JSON-RPC errors ${kv(t.codes)}`);
        if (Object.keys(t.closes).length) extra.push(`close codes ${kv(t.closes)}`);
        if (Object.keys(t.errors).length) extra.push(`socket errors ${kv(t.errors)}`);
        p(`    sent ${fmtBytes(t.bytes)}, ${t.sent} ${t.unit}; answers got ${t.answers}` + (extra.length ? `; ${extra.join('; ')}` : ''));
        if (t.name === 'subs') p(`    subscriptions accepted: ${t.subscribed}`);
        if (t.name === 'gateway') {
            if (up1) p(`    slow upstream during the attack: ${up1.requests} requests, ${up1.calls} calls (delay ${up1.delay_ms} ms, ${up1.open_peak} open at once)`);
            if (up2) p(`    forwarded in the ${after.settleS.toFixed(0)} s after the attack ended, for clients long gone: ${up2.calls_after_mark} calls in ` +
                `${up2.requests_after_mark} requests (the total is printed once jrpcd has exited)`);
        }
        for (const n of t.notes) p(`    ${n}`);
        attackers.push({ ...t, socks: undefined });
    }
    console.log(out.join('\n'));
    if (opt.json) {
        writeFileSync(opt.json, JSON.stringify({
            attack_s: attackS, rss_kib: { before: mem.before.rss, peak: mem.peak, peak_at_s: mem.peakAt, hwm: mem.hwm },
            max_memory: maxMem, after, baseline: base, under_attack: under, attackers, upstream: { at_stop: up1, after: up2 },
        }, null, 1));
    }
}
