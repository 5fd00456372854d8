// SPDX-License-Identifier: MIT
// WebSocket helpers for the integration suite: WsClient wraps the real `ws` client (pinned in
// package.json) with a queue of received messages so tests read them in order with a bound, and
// RawWs speaks the protocol byte by byte over node:net for what `ws` refuses to send (reserved
// bits, bad close codes, unmasked frames) or to stop reading on purpose.

import WebSocket from 'ws';
import net from 'node:net';
import crypto from 'node:crypto';
import assert from 'node:assert/strict';
import { HttpConn } from './lib.mjs';

const WAIT_MS = 10_000;

export function wsUrl(server, path = server.path) {
    return `ws://${server.host}:${server.port}${path}`;
}

/** Resolve when `cond()` is true, polling every `every` ms; reject after `timeout` ms. */
export async function waitFor(cond, { timeout = WAIT_MS, every = 20, what = 'condition' } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
        const v = await cond();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeout} ms`);
        await new Promise((r) => setTimeout(r, every));
    }
}

/** A `ws` client whose messages queue up until a test reads them. */
export class WsClient {
    /** Connect to the RPC path (or `path`); `options` go to `new WebSocket`. */
    static open(server, { path, options = {}, timeout = WAIT_MS } = {}) {
        return new Promise((resolve, reject) => {
            const ws = new WebSocket(wsUrl(server, path ?? server.path), { perMessageDeflate: false, ...options });
            const timer = setTimeout(() => { ws.terminate(); reject(new Error('WebSocket open timed out')); }, timeout);
            ws.once('open', () => { clearTimeout(timer); resolve(new WsClient(ws)); });
            ws.once('unexpected-response', (req, res) => {
                clearTimeout(timer);
                reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode }));
            });
            ws.once('error', (e) => { clearTimeout(timer); reject(e); });
        });
    }

    constructor(ws) {
        this.ws = ws;
        this.queue = [];       // { text, binary, data }
        this.closeInfo = null; // { code, reason } once closed
        this.pings = 0;        // pings received from the server
        this.errors = [];
        this.waiters = [];
        this.nextId = 1;
        const wake = () => { for (const w of this.waiters.splice(0)) w(); };
        ws.on('message', (data, binary) => {
            const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
            this.queue.push({ text: buf.toString('utf8'), binary, data: buf });
            wake();
        });
        ws.on('ping', () => { this.pings++; wake(); });
        ws.on('close', (code, reason) => { this.closeInfo = { code, reason: reason.toString() }; wake(); });
        ws.on('error', (e) => { this.errors.push(e); wake(); });
    }

    _wait(deadline) {
        return new Promise((resolve, reject) => {
            const ms = deadline - Date.now();
            if (ms <= 0) return reject(new Error('timed out'));
            const w = () => { clearTimeout(t); resolve(); };
            const t = setTimeout(() => {
                const i = this.waiters.indexOf(w);
                if (i >= 0) this.waiters.splice(i, 1);
                reject(new Error('timed out'));
            }, ms);
            this.waiters.push(w);
        });
    }

    /** Resolve once `cond()` holds; throw `message` when `timeout` ms pass first. */
    async _until(cond, timeout, message) {
        const deadline = Date.now() + timeout;
        while (!cond()) {
            try {
                await this._wait(deadline);
            } catch {
                throw new Error(message);
            }
        }
    }

    /** Send text (a string) or a Buffer; `opts` as ws.send's (binary, fin). */
    send(data, opts = {}) {
        return new Promise((resolve, reject) => this.ws.send(data, opts, (e) => (e ? reject(e) : resolve())));
    }

    /** The next message; throws if none arrives within `timeout` or the connection closes. */
    async next({ timeout = WAIT_MS } = {}) {
        await this._until(() => this.queue.length || this.closeInfo, timeout, `no message within ${timeout} ms`);
        if (this.queue.length) return this.queue.shift();
        throw new Error(`closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for a message`);
    }

    /** The next message parsed as JSON. */
    async nextJson(opts) {
        const m = await this.next(opts);
        return JSON.parse(m.text);
    }

    /** The next n messages parsed as JSON. */
    async take(n, opts) {
        const out = [];
        for (let i = 0; i < n; i++) out.push(await this.nextJson(opts));
        return out;
    }

    /** Send one call and return the parsed answer (the next message: use on a quiet connection). */
    async call(method, params, id = `c${this.nextId++}`) {
        const req = { jsonrpc: '2.0', method, id };
        if (params !== undefined) req.params = params;
        await this.send(JSON.stringify(req));
        const a = await this.nextJson();
        assert.deepEqual(a.id, id, `answer to ${method} carries its id: ${JSON.stringify(a)}`);
        return a;
    }

    /**
     * Everything that arrives before the answer to a fresh tennis@ping: proves a message sent
     * before it was not answered (messages on one connection are read in order, and an answer to
     * an earlier message cannot trail the probe's unless its call is slower than a ping).
     */
    async untilProbe() {
        const id = `probe-${this.nextId++}`;
        await this.send(JSON.stringify({ jsonrpc: '2.0', method: 'tennis@ping', id }));
        const before = [];
        for (;;) {
            const m = await this.nextJson();
            if (m && m.id === id) return before;
            before.push(m);
        }
    }

    /** Resolve with { code, reason } once closed; throws after `timeout`. */
    async closed({ timeout = WAIT_MS } = {}) {
        await this._until(() => this.closeInfo, timeout, `not closed within ${timeout} ms`);
        return this.closeInfo;
    }

    /** Resolve once `cond(this)` holds (pings counted, …); throws after `timeout`. */
    until(cond, { timeout = WAIT_MS, what = 'condition' } = {}) {
        return this._until(() => cond(this), timeout, `${what} not reached within ${timeout} ms`);
    }

    close(code, reason) { this.ws.close(code, reason); }
    terminate() { this.ws.terminate(); }
}

/** Open a WsClient on `server`, run `fn(ws)`, and terminate the connection however fn ends. */
export async function withWs(server, fn, options) {
    const ws = await WsClient.open(server, options);
    try {
        return await fn(ws);
    } finally {
        ws.terminate();
    }
}

// ---------------------------------------------------------------------------------------------
// Raw frames

/** One client frame (masked unless mask is false). */
export function frame({ opcode = 1, fin = true, rsv = 0, payload = Buffer.alloc(0), mask = true, maskKey } = {}) {
    const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
    const len = data.length;
    const head = [((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f))];
    const m = mask ? 0x80 : 0;
    if (len < 126) head.push(m | len);
    else if (len <= 0xffff) head.push(m | 126, len >> 8, len & 0xff);
    else {
        head.push(m | 127);
        const hi = Math.floor(len / 2 ** 32), lo = len >>> 0;
        head.push((hi >>> 24) & 255, (hi >>> 16) & 255, (hi >>> 8) & 255, hi & 255,
            (lo >>> 24) & 255, (lo >>> 16) & 255, (lo >>> 8) & 255, lo & 255);
    }
    if (!mask) return Buffer.concat([Buffer.from(head), data]);
    const key = maskKey ?? crypto.randomBytes(4);
    const body = Buffer.alloc(len);
    for (let i = 0; i < len; i++) body[i] = data[i] ^ key[i & 3];
    return Buffer.concat([Buffer.from(head), key, body]);
}

/** A close frame's payload: code and reason. */
export function closePayload(code, reason = '') {
    const r = Buffer.from(reason, 'utf8');
    const b = Buffer.alloc(2 + r.length);
    b.writeUInt16BE(code, 0);
    r.copy(b, 2);
    return b;
}

/** Parse one server frame at the front of buf: { fin, rsv, opcode, payload, consumed } or null. */
export function parseFrame(buf) {
    if (buf.length < 2) return null;
    const fin = (buf[0] & 0x80) !== 0, rsv = (buf[0] >> 4) & 7, opcode = buf[0] & 0x0f;
    const masked = (buf[1] & 0x80) !== 0;
    let len = buf[1] & 0x7f, off = 2;
    if (len === 126) { if (buf.length < 4) return null; len = buf.readUInt16BE(2); off = 4; }
    else if (len === 127) { if (buf.length < 10) return null; len = Number(buf.readBigUInt64BE(2)); off = 10; }
    if (masked) throw new Error('server frame is masked');
    if (buf.length < off + len) return null;
    return { fin, rsv, opcode, payload: buf.subarray(off, off + len), consumed: off + len };
}

/**
 * A WebSocket client over node:net: the handshake, then frames exactly as built by the test. The
 * socket, its buffer and the waiting are lib.mjs's HttpConn's.
 */
export class RawWs extends HttpConn {
    /**
     * Connect and upgrade. `headers` (name → value, null removes a default) change the request;
     * `extra` bytes are written right after the request, in the same write. Resolves when the
     * 101 head has arrived (or, with expectStatus, when any complete response head did).
     */
    static async open(server, { path = server.path, headers = {}, extra, expectStatus = 101 } = {}) {
        const sock = net.connect({ host: server.host, port: server.port });
        await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
        const raw = new RawWs(sock);
        const key = crypto.randomBytes(16).toString('base64');
        const h = { Host: `${server.host}:${server.port}`, Upgrade: 'websocket', Connection: 'Upgrade',
            'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13', ...headers };
        let req = `GET ${path} HTTP/1.1\r\n`;
        for (const [k, v] of Object.entries(h)) if (v !== null && v !== undefined) req += `${k}: ${v}\r\n`;
        req += '\r\n';
        await raw.write(extra ? Buffer.concat([Buffer.from(req, 'latin1'), extra]) : Buffer.from(req, 'latin1'));
        raw.response = await raw.readHead();
        raw.key = key;
        if (expectStatus !== undefined) assert.equal(raw.response.status, expectStatus, raw.response.head);
        return raw;
    }

    /** An HTTP response head: { status, headers, head }. */
    async readHead({ timeout = WAIT_MS } = {}) {
        const deadline = Date.now() + timeout;
        for (;;) {
            const end = this.buf.indexOf('\r\n\r\n');
            if (end >= 0) {
                const head = this.buf.subarray(0, end).toString('latin1');
                this.buf = this.buf.subarray(end + 4);
                const lines = head.split('\r\n');
                const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0])?.[1]);
                const headers = {};
                for (const l of lines.slice(1)) {
                    const i = l.indexOf(':');
                    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
                }
                return { status, headers, head };
            }
            if (this.ended) throw new Error(`closed before a response head: ${JSON.stringify(this.buf.toString('latin1'))}`);
            await this._wait(deadline);
        }
    }

    /** Skip an HTTP body of Content-Length bytes (after readHead of a non-101 answer). */
    async readBody(n, { timeout = WAIT_MS } = {}) {
        const deadline = Date.now() + timeout;
        while (this.buf.length < n) await this._wait(deadline);
        const b = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
        return b;
    }

    send(opts) { return this.write(frame(opts)); }
    sendText(text) { return this.write(frame({ opcode: 1, payload: text })); }

    /** The next server frame; throws on timeout or when the connection ends first. */
    async readFrame({ timeout = WAIT_MS } = {}) {
        const deadline = Date.now() + timeout;
        for (;;) {
            const f = parseFrame(this.buf);
            if (f) {
                this.buf = this.buf.subarray(f.consumed);
                return f;
            }
            if (this.ended) throw new Error('connection ended before a frame');
            try {
                await this._wait(deadline);
            } catch {
                throw new Error(`no frame within ${timeout} ms`);
            }
        }
    }

    /** Read frames until the server's close frame: { code, reason, frames (those before it) }. */
    async readClose(opts) {
        const frames = [];
        for (;;) {
            const f = await this.readFrame(opts);
            if (f.opcode === 8) {
                const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
                return { code, reason: f.payload.subarray(2).toString('utf8'), frames, payload: f.payload };
            }
            frames.push(f);
        }
    }

    /** Resolve once the server has closed the TCP connection. */
    waitEnd({ timeout = WAIT_MS } = {}) {
        return this.waitClosed(timeout);
    }

    pause() { this.sock.pause(); }
    destroy() { this.sock.destroy(); }
}
