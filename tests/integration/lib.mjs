// SPDX-License-Identifier: MIT
// Shared harness for the integration suite: starts the real jrpcd on 127.0.0.1:0, talks raw
// HTTP/1.1 to it over node:net (so tests control every byte), and reads JSON-RPC answers
// byte-exact. Node built-ins only.
//
// Environment (set by tests/CMakeLists.txt):
//   JRPCD            path of the jrpcd binary
//   JRPC_MODULES     directory holding testkit.so, tennis.so, spec.so
//   JRPC_SOURCE_DIR  repository root
// When JRPCD is unset, <repo>/build/jrpcd and <repo>/build/modules are tried, so
// `node --test tests/integration/` works from a developer checkout after `make`.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.JRPC_SOURCE_DIR || path.resolve(HERE, '..', '..');
export const JRPCD = process.env.JRPCD || path.join(SOURCE_DIR, 'build', 'jrpcd');
export const MODULES = process.env.JRPC_MODULES || path.join(SOURCE_DIR, 'build', 'modules');
export const RPC_PATH = '/api/v1/endpoint';

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const READ_TIMEOUT_MS = 10_000;
const STDERR_KEEP = 64 * 1024;

// Every jrpcd this process started and has not yet seen exit; killed if the test process dies
// first so no daemon outlives its test file.
const live = new Set();
process.on('exit', () => {
    for (const p of live) {
        try { p.kill('SIGKILL'); } catch { /* already gone */ }
    }
});

/** The module arguments every suite server loads. */
export function moduleArgs() {
    return ['testkit', 'tennis', 'spec'].flatMap((m) => ['--module', path.join(MODULES, `${m}.so`)]);
}

/**
 * Start jrpcd on 127.0.0.1:0 with the three test modules plus `args`; resolve once it prints
 * `jrpcd listening on HOST:PORT`. Rejects after 10 s (or on early exit) with stderr so far.
 * `listen: null` leaves the address to `args` (a config file's `listen`, to restart on a port).
 * Returns { host, port, proc, args, stderr(), stop(), kill() }.
 */
export function startServer(args = [], { timeout = START_TIMEOUT_MS, listen = '127.0.0.1:0' } = {}) {
    if (!existsSync(JRPCD)) {
        return Promise.reject(new Error(`jrpcd not found at ${JRPCD} (set JRPCD and JRPC_MODULES)`));
    }
    const argv = [...(listen === null ? [] : ['--listen', listen]), ...moduleArgs(), ...args];
    const proc = spawn(JRPCD, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    let stderr = '';
    let stdout = '';
    let exited = null; // {code, signal} once the process is gone
    const exitWaiters = [];
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
        stderr += d;
        if (stderr.length > STDERR_KEEP) stderr = stderr.slice(-STDERR_KEEP);
    });
    proc.on('exit', (code, signal) => {
        exited = { code, signal };
        live.delete(proc);
        for (const w of exitWaiters.splice(0)) w(exited);
    });
    const waitExit = () => new Promise((resolve) => (exited ? resolve(exited) : exitWaiters.push(resolve)));

    const pi = argv.lastIndexOf('--path');
    const server = {
        host: '127.0.0.1',
        port: 0,
        path: pi >= 0 ? argv[pi + 1] : RPC_PATH, // the RPC path helpers default to
        proc,
        args: argv,
        stderr: () => stderr,
        stdout: () => stdout,
        get exited() { return exited; },
        /** SIGTERM, wait (bounded) for exit, assert it exited 0; SIGKILL and fail past the bound. */
        async stop({ timeout: t = STOP_TIMEOUT_MS } = {}) {
            if (exited) {
                assert.fail(`jrpcd had already exited (code ${exited.code}, signal ${exited.signal}) ` +
                    `before stop; stderr:\n${stderr}`);
            }
            proc.kill('SIGTERM');
            let timer;
            const res = await Promise.race([
                waitExit(),
                new Promise((resolve) => { timer = setTimeout(() => resolve(null), t); }),
            ]);
            clearTimeout(timer);
            if (!res) {
                proc.kill('SIGKILL');
                await waitExit();
                assert.fail(`jrpcd did not exit within ${t} ms of SIGTERM; stderr:\n${stderr}`);
            }
            assert.equal(res.signal, null, `jrpcd died of signal ${res.signal}; stderr:\n${stderr}`);
            assert.equal(res.code, 0, `jrpcd exited ${res.code} after SIGTERM; stderr:\n${stderr}`);
        },
        /** Cleanup for after() hooks: SIGKILL if still running, no assertions. */
        async kill() {
            if (exited) return;
            proc.kill('SIGKILL');
            await waitExit();
        },
        waitExit,
    };

    return new Promise((resolve, reject) => {
        let done = false;
        const finish = (err) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            proc.stdout.off('data', onData);
            proc.off('exit', onExit);
            proc.off('error', onError);
            if (err) {
                server.kill().finally(() => reject(err));
            } else {
                resolve(server);
            }
        };
        const timer = setTimeout(() => finish(new Error(
            `jrpcd did not print "listening on" within ${timeout} ms\nargs: ${argv.join(' ')}\n` +
            `stdout:\n${stdout}\nstderr:\n${stderr}`)), timeout);
        const onData = (d) => {
            const m = /jrpcd listening on (\S+):(\d+)/.exec(stdout);
            if (m) {
                server.host = m[1].replace(/^\[|\]$/g, '');
                server.port = Number(m[2]);
                finish(null);
            }
        };
        const onExit = (code, signal) => finish(new Error(
            `jrpcd exited (code ${code}, signal ${signal}) before listening\nargs: ${argv.join(' ')}\n` +
            `stdout:\n${stdout}\nstderr:\n${stderr}`));
        const onError = (e) => finish(e);
        proc.stdout.setEncoding('utf8');
        // Keep draining stdout for the whole life of the process so it never blocks on a pipe.
        proc.stdout.on('data', (d) => { stdout += d; if (stdout.length > STDERR_KEEP) stdout = stdout.slice(-STDERR_KEEP); });
        proc.stdout.on('data', onData);
        proc.on('exit', onExit);
        proc.on('error', onError);
    });
}

/**
 * Start a server with `args`, run fn(server), then check it is still healthy and stop it
 * (asserting exit 0). The server is killed whatever happens.
 */
export async function withServer(args, fn) {
    const srv = await startServer(args);
    try {
        const r = await fn(srv);
        await healthy(srv);
        await srv.stop();
        return r;
    } finally {
        await srv.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 client

/**
 * Build request bytes. `headers` is an object or an array of [name, value] pairs, added after
 * the defaults (Host, and Content-Length when a body is given and no Transfer-Encoding is);
 * a null value in an object removes that default. `body` is a string or Buffer, sent as is.
 */
export function buildRequest(server, {
    method = 'POST', path: p = server.path ?? RPC_PATH, version = 'HTTP/1.1', headers = {}, body,
} = {}) {
    const bodyBuf = body === undefined ? undefined : (Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'));
    const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
    const names = new Set(pairs.map(([k]) => k.toLowerCase()));
    const out = [];
    const defaults = [['Host', `${server.host}:${server.port}`]];
    if (bodyBuf !== undefined && !names.has('transfer-encoding')) {
        defaults.push(['Content-Length', String(bodyBuf.length)]);
    }
    for (const [k, v] of defaults) {
        if (!names.has(k.toLowerCase())) out.push([k, v]);
    }
    for (const [k, v] of pairs) {
        if (v !== null && v !== undefined) out.push([k, v]);
    }
    const head = `${method} ${p} ${version}\r\n` + out.map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
    return bodyBuf === undefined ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), bodyBuf]);
}

/** Encode `body` as a chunked message body using the given chunk sizes (cycled). */
export function chunked(body, sizes = [16], { ext = '', trailers = [] } = {}) {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    const parts = [];
    let off = 0;
    let i = 0;
    while (off < buf.length) {
        const n = Math.min(sizes[i++ % sizes.length], buf.length - off);
        parts.push(Buffer.from(`${n.toString(16)}${ext}\r\n`, 'latin1'), buf.subarray(off, off + n), Buffer.from('\r\n'));
        off += n;
    }
    parts.push(Buffer.from(`0${ext}\r\n` + trailers.map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n', 'latin1'));
    return Buffer.concat(parts);
}

/**
 * One client connection. Data is buffered as it arrives; readResponse() parses the next
 * response incrementally (status line, headers, Content-Length / chunked / until-close body,
 * 1xx interim responses).
 */
export class HttpConn {
    /** Connect to the server; `localAddress` picks the client's address (127.0.0.2 …). */
    static open(server, { timeout = READ_TIMEOUT_MS, localAddress } = {}) {
        return new Promise((resolve, reject) => {
            const sock = net.connect({ host: server.host, port: server.port, localAddress });
            const timer = setTimeout(() => { sock.destroy(); reject(new Error('connect timed out')); }, timeout);
            sock.once('connect', () => { clearTimeout(timer); resolve(new HttpConn(sock)); });
            sock.once('error', (e) => { clearTimeout(timer); reject(e); });
        });
    }

    constructor(sock) {
        this.sock = sock;
        this.buf = Buffer.alloc(0);
        this.ended = false;  // peer sent FIN (or the socket errored / closed)
        this.error = null;   // socket error, e.g. ECONNRESET
        this.waiters = [];
        sock.setNoDelay(true);
        const wake = () => { for (const w of this.waiters.splice(0)) w(); };
        sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); wake(); });
        sock.on('end', () => { this.ended = true; wake(); });
        sock.on('close', () => { this.ended = true; wake(); });
        sock.on('error', (e) => { this.error = e; this.ended = true; wake(); });
    }

    /** Write bytes; resolves once handed to the kernel. */
    write(data) {
        return new Promise((resolve, reject) => {
            this.sock.write(data, (err) => (err ? reject(err) : resolve()));
        });
    }

    /** Write `data` in pieces of `size` bytes, each flushed (and a loop turn) before the next. */
    async writeSlowly(data, size = 1) {
        const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
        for (let off = 0; off < buf.length; off += size) {
            await this.write(buf.subarray(off, off + size));
            await new Promise((r) => setImmediate(r));
        }
    }

    _wait(deadline) {
        return new Promise((resolve, reject) => {
            const ms = deadline - Date.now();
            if (ms <= 0) return reject(new Error('timed out'));
            const t = setTimeout(() => {
                const i = this.waiters.indexOf(w);
                if (i >= 0) this.waiters.splice(i, 1);
                reject(new Error('timed out'));
            }, ms);
            const w = () => { clearTimeout(t); resolve(); };
            this.waiters.push(w);
        });
    }

    /**
     * Next response. With includeInterim=false (default) 1xx responses are collected into
     * `interim` of the final response; with true a 1xx is returned on its own.
     * `head` marks the request as HEAD (no body expected).
     */
    async readResponse({ timeout = READ_TIMEOUT_MS, includeInterim = false, head = false } = {}) {
        const deadline = Date.now() + timeout;
        const interim = [];
        for (;;) {
            const r = parseResponse(this.buf, this.ended, head);
            if (r) {
                this.buf = this.buf.subarray(r.consumed);
                if (r.res.status < 200 && !includeInterim) {
                    interim.push(r.res);
                    continue;
                }
                r.res.interim = interim;
                return r.res;
            }
            if (this.ended) {
                throw new Error(`connection closed before a complete response` +
                    (this.error ? ` (${this.error.code || this.error.message})` : '') +
                    `; buffered: ${JSON.stringify(this.buf.toString('latin1').slice(0, 500))}`);
            }
            try {
                await this._wait(deadline);
            } catch {
                throw new Error(`no complete response within ${timeout} ms; buffered: ` +
                    JSON.stringify(this.buf.toString('latin1').slice(0, 500)));
            }
        }
    }

    /** Read `n` responses in order. */
    async readResponses(n, opts) {
        const out = [];
        for (let i = 0; i < n; i++) out.push(await this.readResponse(opts));
        return out;
    }

    /** Resolve when the server has closed the connection; reject after `timeout`. */
    async waitClosed(timeout = READ_TIMEOUT_MS) {
        const deadline = Date.now() + timeout;
        while (!this.ended) {
            try {
                await this._wait(deadline);
            } catch {
                throw new Error(`server did not close the connection within ${timeout} ms`);
            }
        }
    }

    /** True if the server has neither closed nor sent anything more within `ms`. */
    async staysOpen(ms = 200) {
        const deadline = Date.now() + ms;
        const before = this.buf.length;
        while (!this.ended && Date.now() < deadline) {
            try { await this._wait(deadline); } catch { break; }
        }
        return !this.ended && this.buf.length === before;
    }

    /** Send a request (see buildRequest) and read its response. */
    async request(server, opts = {}) {
        await this.write(buildRequest(server, opts));
        return decorate(await this.readResponse({ head: opts.method === 'HEAD' }));
    }

    close() { this.sock.destroy(); }
}

/**
 * Try to parse one response at the front of `buf`. Returns { res, consumed } or null when more
 * bytes are needed. `ended` says no more bytes will come (for bodies delimited by close).
 */
export function parseResponse(buf, ended, head = false) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
        if (ended && buf.length) throw new Error(`truncated response head: ${JSON.stringify(buf.toString('latin1').slice(0, 500))}`);
        return null;
    }
    const headText = buf.subarray(0, end).toString('latin1');
    const lines = headText.split('\r\n');
    const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
    const status = Number(m[2]);
    const headers = {};
    const rawHeaders = [];
    for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i <= 0) throw new Error(`bad header line: ${JSON.stringify(line)}`);
        const name = line.slice(0, i).trim();
        const value = line.slice(i + 1).trim();
        rawHeaders.push([name, value]);
        const k = name.toLowerCase();
        headers[k] = k in headers ? `${headers[k]}, ${value}` : value;
    }
    const res = { version: m[1], status, reason: m[3] ?? '', headers, rawHeaders, head: headText, trailers: {} };
    let off = end + 4;
    if (status < 200 || status === 204 || status === 304 || head) {
        res.bodyBuf = Buffer.alloc(0);
        res.framing = 'none';
        return { res, consumed: off };
    }
    const te = (headers['transfer-encoding'] || '').toLowerCase();
    if (te) {
        if (!/(^|,)\s*chunked\s*$/.test(te)) throw new Error(`unsupported transfer-encoding ${te}`);
        const parts = [];
        for (;;) {
            const le = buf.indexOf('\r\n', off);
            if (le < 0) return null;
            const sizeText = buf.subarray(off, le).toString('latin1').split(';')[0].trim();
            if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`bad chunk size ${JSON.stringify(sizeText)}`);
            const size = parseInt(sizeText, 16);
            off = le + 2;
            if (size === 0) {
                // trailers, then an empty line
                for (;;) {
                    const te2 = buf.indexOf('\r\n', off);
                    if (te2 < 0) return null;
                    const line = buf.subarray(off, te2).toString('latin1');
                    off = te2 + 2;
                    if (line === '') break;
                    const i = line.indexOf(':');
                    res.trailers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
                }
                break;
            }
            if (buf.length < off + size + 2) return null;
            parts.push(buf.subarray(off, off + size));
            if (buf.subarray(off + size, off + size + 2).toString('latin1') !== '\r\n') throw new Error('chunk not followed by CRLF');
            off += size + 2;
        }
        res.bodyBuf = Buffer.concat(parts);
        res.framing = 'chunked';
        return { res, consumed: off };
    }
    if ('content-length' in headers) {
        if (!/^\d+$/.test(headers['content-length'])) throw new Error(`bad content-length ${headers['content-length']}`);
        const n = Number(headers['content-length']);
        if (buf.length < off + n) {
            if (ended) throw new Error(`connection closed after ${buf.length - off} of ${n} body bytes`);
            return null;
        }
        res.bodyBuf = Buffer.from(buf.subarray(off, off + n));
        res.framing = 'length';
        return { res, consumed: off + n };
    }
    if (!ended) return null;
    res.bodyBuf = Buffer.from(buf.subarray(off));
    res.framing = 'close';
    return { res, consumed: buf.length };
}

function decorate(res) {
    res.body = res.bodyBuf.toString('utf8');
    try { res.json = res.body === '' ? undefined : JSON.parse(res.body); } catch { res.json = undefined; }
    return res;
}

/**
 * POST `body` to the server on a fresh connection and read the answer.
 * Returns { status, headers, body (string), json (parsed or undefined), bodyBuf, … }.
 */
export async function rpc(server, body, { path: p = server.path ?? RPC_PATH, headers = {}, method = 'POST', timeout } = {}) {
    const conn = await HttpConn.open(server);
    try {
        await conn.write(buildRequest(server, { method, path: p, headers, body }));
        return decorate(await conn.readResponse({ timeout }));
    } finally {
        conn.close();
    }
}

/** Decode a raw response (from HttpConn.readResponse) into body text and json. */
export { decorate };

/** Assert tennis@ping still answers pong. Every test file calls this before stopping jrpcd. */
export async function healthy(server) {
    const r = await rpc(server, '{"jsonrpc":"2.0","method":"tennis@ping","id":"health"}');
    assert.equal(r.status, 200, `health check: status ${r.status} body ${r.body}`);
    assert.deepEqual(r.json, { jsonrpc: '2.0', result: 'pong', id: 'health' }, `health check body ${r.body}`);
}

/** testkit holds (test.hold, test.hold_async) waiting now. */
export async function held(server) {
    const r = await rpc(server, call('test.held', undefined, 'held'));
    assert.equal(typeof r.json?.result, 'number', r.body);
    return r.json.result;
}

/** Wait until `n` testkit holds are waiting; fail after `timeout` ms. */
export async function waitHeld(server, n, { timeout = READ_TIMEOUT_MS } = {}) {
    const deadline = Date.now() + timeout;
    let now;
    while ((now = await held(server)) < n) {
        if (Date.now() > deadline) assert.fail(`only ${now} of ${n} holds waiting after ${timeout} ms`);
    }
    return now;
}

/**
 * End every testkit hold waiting now; resolves how many were waiting. Once jrpcd is stopping
 * and takes no connections, server.proc.kill('SIGUSR2') does the same.
 */
export async function release(server) {
    const r = await rpc(server, call('test.release', undefined, 'release'));
    assert.equal(typeof r.json?.result, 'number', r.body);
    return r.json.result;
}

/** A request object's JSON text. `id` undefined → notification; pass raw text via rawId. */
export function call(method, params, id, { rawId } = {}) {
    let s = `{"jsonrpc":"2.0","method":${JSON.stringify(method)}`;
    if (params !== undefined) s += `,"params":${typeof params === 'string' ? params : JSON.stringify(params)}`;
    if (rawId !== undefined) s += `,"id":${rawId}`;
    else if (id !== undefined) s += `,"id":${JSON.stringify(id)}`;
    return s + '}';
}

/** Batch text from request texts. */
export const batch = (items) => `[${items.join(',')}]`;

// ---------------------------------------------------------------------------------------------
// Raw JSON walking: lets tests read ids (and other members) as the exact bytes sent back,
// which JSON.parse cannot (it rounds 14066156191713469572, turns 1e400 into Infinity …).

const WS = new Set([' ', '\t', '\n', '\r']);

function skipWs(s, i) {
    while (i < s.length && WS.has(s[i])) i++;
    return i;
}

/** Index just past the JSON value starting at s[i] (structural walk; assumes valid JSON). */
function valueEnd(s, i) {
    const c = s[i];
    if (c === '"') {
        i++;
        while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
        if (i >= s.length) throw new Error('unterminated string');
        return i + 1;
    }
    if (c === '{' || c === '[') {
        let depth = 0;
        for (; i < s.length; i++) {
            const d = s[i];
            if (d === '"') { i = valueEnd(s, i) - 1; continue; }
            if (d === '{' || d === '[') depth++;
            else if (d === '}' || d === ']') { depth--; if (depth === 0) return i + 1; }
        }
        throw new Error('unterminated container');
    }
    let j = i;
    while (j < s.length && !WS.has(s[j]) && s[j] !== ',' && s[j] !== ']' && s[j] !== '}') j++;
    if (j === i) throw new Error(`no value at ${i}`);
    return j;
}

/** Raw text of each element of a JSON array text. */
export function rawElements(text) {
    let i = skipWs(text, 0);
    if (text[i] !== '[') throw new Error('not an array');
    const out = [];
    i = skipWs(text, i + 1);
    if (text[i] === ']') return out;
    for (;;) {
        const e = valueEnd(text, i);
        out.push(text.slice(i, e));
        i = skipWs(text, e);
        if (text[i] === ']') return out;
        if (text[i] !== ',') throw new Error(`expected , at ${i}`);
        i = skipWs(text, i + 1);
    }
}

/** Map member name → raw value text (first occurrence) of a JSON object text. */
export function rawMembers(text) {
    let i = skipWs(text, 0);
    if (text[i] !== '{') throw new Error(`not an object: ${text.slice(0, 80)}`);
    const out = {};
    i = skipWs(text, i + 1);
    if (text[i] === '}') return out;
    for (;;) {
        const ke = valueEnd(text, i);
        const key = JSON.parse(text.slice(i, ke));
        i = skipWs(text, ke);
        if (text[i] !== ':') throw new Error(`expected : at ${i}`);
        i = skipWs(text, i + 1);
        const ve = valueEnd(text, i);
        if (!(key in out)) out[key] = text.slice(i, ve);
        i = skipWs(text, ve);
        if (text[i] === '}') return out;
        if (text[i] !== ',') throw new Error(`expected , at ${i}`);
        i = skipWs(text, i + 1);
    }
}

/** Raw `id` text of each response item (one for a single object, n for an array). */
export function rawIds(text) {
    const t = text.trimStart();
    const items = t[0] === '[' ? rawElements(t) : [t.trimEnd()];
    return items.map((o) => rawMembers(o).id);
}

/** Time an async function: resolves [result, elapsed ms]. */
export async function timed(fn) {
    const t0 = performance.now();
    const r = await fn();
    return [r, performance.now() - t0];
}

/** Assert a parsed response item is an error with `code` (and `id` if given). */
export function assertError(item, code, id, msg) {
    assert.equal(typeof item, 'object', `${msg ?? ''} not an object: ${JSON.stringify(item)}`);
    assert.equal(item.jsonrpc, '2.0', `${msg ?? ''} ${JSON.stringify(item)}`);
    assert.ok(item.error && typeof item.error === 'object', `${msg ?? ''} no error member: ${JSON.stringify(item)}`);
    assert.equal(item.error.code, code, `${msg ?? ''} ${JSON.stringify(item)}`);
    assert.equal(typeof item.error.message, 'string', `${msg ?? ''} ${JSON.stringify(item)}`);
    assert.ok(!('result' in item), `${msg ?? ''} error with result: ${JSON.stringify(item)}`);
    if (id !== undefined) assert.deepEqual(item.id, id, `${msg ?? ''} ${JSON.stringify(item)}`);
}

/** Assert a parsed response item is a result `result` with `id`. */
export function assertResult(item, result, id, msg) {
    assert.deepEqual(item, { jsonrpc: '2.0', result, id }, msg);
}

/**
 * Runs a command (the jrpc CLI by default: JRPC_CLI, else beside jrpcd) with args and optional
 * stdin; resolves { code, out, err }. Asynchronous on purpose: jrpcd logs each request to a pipe
 * this process reads, and a spawnSync would stop that reading until the server blocks on it.
 * No input: stdin is /dev/null; with input, a command that exits without reading it must not
 * fail the test with EPIPE.
 */
export function runCli(args, input, { cmd = process.env.JRPC_CLI || path.join(path.dirname(JRPCD), 'jrpc'),
    env = process.env, timeout = 30000 } = {}) {
    return new Promise((resolve, reject) => {
        const p = spawn(cmd, args, { env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${cmd} ${args.join(' ')}: timed out`)); }, timeout);
        p.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
        p.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
        p.on('close', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
        if (input !== undefined) {
            p.stdin.on('error', () => {});
            p.stdin.end(input);
        }
    });
}

/** Every sample of /metrics on srv's admin listener: "name{labels}" → value. */
export async function scrapeAdmin(srv) {
    const m = /jrpcd admin listening on (\S+):(\d+)/.exec(srv.stdout());
    assert.ok(m, srv.stdout());
    const r = await rpc({ host: m[1], port: Number(m[2]) }, undefined, { method: 'GET', path: '/metrics' });
    assert.equal(r.status, 200, r.body);
    const samples = new Map();
    for (const line of r.body.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        const at = line.lastIndexOf(' ');
        samples.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
    return samples;
}

/** A loopback port free now (bound and released), for a server a test starts that cannot bind
 * port 0 and say which it got (HAProxy). */
export async function freePort() {
    const s = net.createServer();
    await new Promise((r) => s.listen(0, '127.0.0.1', r));
    const port = s.address().port;
    await new Promise((r) => s.close(r));
    return port;
}

/** The compression series (docs/metrics.md) of a scrape for one transport: { in, out } each
 * { msgs, plain, wire }, and state (jrpc_compression_state_bytes). */
export function compressionSeries(samples, tr) {
    const get = (name, dir) => samples.get(`jrpc_compression_${name}{transport="${tr}",direction="${dir}"}`);
    const dir = (d) => ({ msgs: get('messages_total', d), plain: get('plain_bytes_total', d), wire: get('compressed_bytes_total', d) });
    return { in: dir('in'), out: dir('out'), state: samples.get(`jrpc_compression_state_bytes{transport="${tr}"}`) };
}
