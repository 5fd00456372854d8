// SPDX-License-Identifier: MIT
// Shared harness of the gateway tests (gateway*.test.mjs): real Ethereum nodes from npm (ganache,
// hardhat) started offline on 127.0.0.1 with a port of their own choosing, jrpcd started with an
// INI file of [upstream] sections, a plain HTTP client for talking to a node directly, and a TCP
// pass-through proxy that lets a test watch (and cut) what jrpcd sends to a node. Nothing here
// imitates a node's protocol: the proxy copies bytes, the nodes are the real programs.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startServer, SOURCE_DIR, JRPCD } from './lib.mjs';

const NODE_START_TIMEOUT_MS = 30_000;
const READY_POLL_MS = 50;

// Every node process this test process started; SIGKILLed if the test process dies first.
const live = new Set();
process.on('exit', () => {
    for (const p of live) {
        try { p.kill('SIGKILL'); } catch { /* gone */ }
    }
});

/** POST a JSON-RPC body (string or object) to url; resolves { status, text, json }. */
export async function post(url, body, { timeout = 10_000 } = {}) {
    const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: typeof body === 'string' ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(timeout),
    });
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, text, json };
}

/** One call's result via url, failing loudly on an error answer. */
export async function callResult(url, method, params = []) {
    const r = await post(url, { jsonrpc: '2.0', id: 1, method, params });
    if (!r.json || r.json.error || !('result' in r.json)) {
        throw new Error(`${method} via ${url}: ${r.status} ${r.text}`);
    }
    return r.json.result;
}

/** Poll eth_chainId until the node answers (bounded): readiness without fixed sleeps. */
export async function waitReady(url, timeout = NODE_START_TIMEOUT_MS) {
    const deadline = Date.now() + timeout;
    let last;
    while (Date.now() < deadline) {
        try {
            const r = await post(url, { jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }, { timeout: 2000 });
            if (r.json?.result) return r.json.result;
            last = new Error(`answer ${r.status} ${r.text}`);
        } catch (e) {
            last = e;
        }
        await new Promise((r) => setTimeout(r, READY_POLL_MS));
    }
    throw new Error(`node at ${url} not ready within ${timeout} ms: ${last?.message}`);
}

/**
 * Spawn a node process that prints a line matching `re` (first group: the port) once listening.
 * Resolves { proc, port, url, stop(), kill(), exited }.
 */
function spawnNode(label, cmd, args, re, opts = {}) {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    live.add(proc);
    let out = '';
    let exited = null;
    const waiters = [];
    proc.on('exit', (code, signal) => {
        exited = { code, signal };
        live.delete(proc);
        for (const w of waiters.splice(0)) w(exited);
    });
    const waitExit = () => new Promise((r) => (exited ? r(exited) : waiters.push(r)));
    const node = {
        proc,
        port: 0,
        url: '',
        get exited() { return exited; },
        output: () => out,
        /** SIGKILL (a crash, as far as jrpcd can tell) and wait until the process is gone. */
        async kill() {
            if (exited) return;
            proc.kill('SIGKILL');
            await waitExit();
        },
    };
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            node.kill();
            reject(new Error(`${label} did not start within ${NODE_START_TIMEOUT_MS} ms:\n${out}`));
        }, NODE_START_TIMEOUT_MS);
        const onData = (d) => {
            out += d;
            if (out.length > 64 * 1024) out = out.slice(-64 * 1024);
            const m = re.exec(out);
            if (m && !node.port) {
                node.port = Number(m[1]);
                node.url = `http://127.0.0.1:${node.port}/`;
                clearTimeout(timer);
                resolve(node);
            }
        };
        proc.stdout.setEncoding('utf8');
        proc.stderr.setEncoding('utf8');
        proc.stdout.on('data', onData);
        proc.stderr.on('data', onData);
        proc.once('exit', (code, signal) => {
            if (!node.port) {
                clearTimeout(timer);
                reject(new Error(`${label} exited (${code}, ${signal}) before listening:\n${out}`));
            }
        });
    });
}

// Ganache in a child process (so a test can kill it like a crashed node): the programmatic
// server on port 0, which reports the port it got. Deterministic wallet: every ganache started
// here has the same accounts and balances, so two of them answer alike.
const GANACHE_MAIN = `
const ganache = require('ganache');
const s = ganache.server({
    logging: { quiet: true },
    wallet: { deterministic: true },
    chain: { chainId: 1337 },
    // GANACHE_BLOCK_TIME: mine on a timer (seconds), as a live chain does, instead of at once.
    miner: process.env.GANACHE_BLOCK_TIME
        ? { blockTime: Number(process.env.GANACHE_BLOCK_TIME) }
        : { instamine: 'eager' },
});
s.listen(0, '127.0.0.1', (err) => {
    if (err) { console.error(String(err)); process.exit(1); }
    console.log('ganache listening on ' + s.address().port);
});`;

/**
 * Start ganache 7 (pinned in package.json) offline on 127.0.0.1; resolves once it answers.
 * `blockTime` (seconds): a block on that timer (miner.blockTime) instead of one per transaction.
 */
export async function startGanache({ blockTime } = {}) {
    const env = blockTime ? { ...process.env, GANACHE_BLOCK_TIME: String(blockTime) } : process.env;
    const node = await spawnNode('ganache', process.execPath, ['-e', GANACHE_MAIN],
        /ganache listening on (\d+)/, { cwd: SOURCE_DIR, env });
    await waitReady(node.url);
    return node;
}

/** Start `hardhat node` (pinned) on 127.0.0.1, port chosen by itself; resolves once it answers. */
export async function startHardhat() {
    const dir = path.join(SOURCE_DIR, 'tests', 'integration', 'hardhat');
    const bin = path.join(SOURCE_DIR, 'node_modules', '.bin', 'hardhat');
    const node = await spawnNode('hardhat', bin,
        ['--config', path.join(dir, 'hardhat.config.cjs'), 'node', '--hostname', '127.0.0.1', '--port', '0'],
        /JSON-RPC server at http:\/\/127\.0\.0\.1:(\d+)\//,
        { cwd: dir, env: { ...process.env, HARDHAT_DISABLE_TELEMETRY_PROMPT: 'true', CI: 'true' } });
    await waitReady(node.url);
    return node;
}

/** Writes `text` as dir/jrpcd.ini and runs `jrpcd --config FILE --check` on it: the spawnSync
 * result (status, stdout, stderr). */
export function checkConfig(dir, text) {
    const file = path.join(dir, 'jrpcd.ini');
    writeFileSync(file, text);
    return spawnSync(JRPCD, ['--config', file, '--check'], { encoding: 'utf8' });
}

/**
 * Start jrpcd (with the suite's test modules) from an INI file holding `ini` plus `args`.
 * `upstreams` maps NAME → { urls: [...] | url: [...lines], methods: '...', ...other keys }.
 * With JRPC_GATEWAY_TRANSPORT set, sections without a transport key get that one.
 */
export async function startGateway(upstreams, { batchDeny, args = [], extra = '' } = {}) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'jrpc-gw-'));
    let ini = '';
    for (const [name, given] of Object.entries(upstreams)) {
        // JRPC_GATEWAY_TRANSPORT=curl runs a suite over libcurl for every URL (ctest's -curl tests).
        const keys = process.env.JRPC_GATEWAY_TRANSPORT && !('transport' in given)
            ? { ...given, transport: process.env.JRPC_GATEWAY_TRANSPORT } : given;
        ini += `[upstream ${name}]\n`;
        for (const [k, v] of Object.entries(keys)) {
            if (Array.isArray(v) && k === 'url') for (const line of v) ini += `url = ${line}\n`;
            else ini += `${k} = ${Array.isArray(v) ? v.join(' ') : v}\n`;
        }
        ini += '\n';
    }
    if (batchDeny) ini += `[batch]\ndeny = ${batchDeny}\n`;
    ini += extra;
    const file = path.join(dir, 'jrpcd.ini');
    writeFileSync(file, ini);
    try {
        const srv = await startServer(['--config', file, ...args]);
        srv.url = `http://127.0.0.1:${srv.port}${srv.path}`;
        srv.ini = ini;
        return srv;
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

/** The counters jrpcd logs for upstream `name` when it stops (daemon/upstream.c). */
export function upstreamReport(stderr, name) {
    const re = new RegExp(`upstream ${name}: requests (\\d+), retries (\\d+), items (\\d+), ` +
        `items_failed (\\d+), items_rpc_error (\\d+), mean latency (\\d+) us; faults: (.*)`);
    const m = re.exec(stderr);
    if (!m) return null;
    const faults = Object.fromEntries(m[7].split(', ').map((kv) => kv.split(' ')).map(([k, v]) => [k, Number(v)]));
    return {
        requests: Number(m[1]), retries: Number(m[2]), items: Number(m[3]),
        itemsFailed: Number(m[4]), itemsRpcError: Number(m[5]), faults,
    };
}

/** The queue counters jrpcd logs for upstream `name` when it stops (daemon/upstream.c). */
export function upstreamQueueReport(stderr, name) {
    const re = new RegExp(`upstream ${name}: queue: max_queue (\\d+), peak (\\d+) calls, ` +
        `refused (\\d+), dropped (\\d+)`);
    const m = re.exec(stderr);
    if (!m) return null;
    return { maxQueue: Number(m[1]), peak: Number(m[2]), refused: Number(m[3]), dropped: Number(m[4]) };
}

/**
 * TCP pass-through proxy in front of `target` (a node's port): copies bytes both ways and counts
 * the HTTP requests going through (by their request lines). `onRequest(n)` is called as the n-th
 * request line passes, before its bytes are forwarded; it may return a promise (the forwarding
 * waits for it), e.g. to kill the node right then. Resolves { port, url, requests(), close() }.
 */
export function startProxy(targetPort, { onRequest } = {}) {
    let count = 0;
    const sockets = new Set();
    const server = net.createServer((client) => {
        sockets.add(client);
        const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
        sockets.add(upstream);
        const drop = () => { client.destroy(); upstream.destroy(); };
        upstream.on('error', drop);
        upstream.on('close', drop);
        client.on('error', drop);
        client.on('close', drop);
        upstream.on('data', (d) => client.write(d));
        // Client bytes are handled in order, one chunk at a time, so a request's line is seen
        // (and onRequest runs) before any of its bytes reach the node.
        let chain = Promise.resolve();
        client.on('data', (d) => {
            chain = chain.then(async () => {
                const text = d.toString('latin1');
                const lines = text.match(/POST [^ \r\n]* HTTP\/1\.1\r\n/g) ?? [];
                for (let i = 0; i < lines.length; i++) {
                    count++;
                    if (onRequest) await onRequest(count);
                }
                if (!upstream.destroyed) upstream.write(d);
            });
        });
    });
    return new Promise((resolve) => {
        server.listen(0, '127.0.0.1', () => {
            const port = server.address().port;
            resolve({
                port,
                url: `http://127.0.0.1:${port}/`,
                requests: () => count,
                close: () => new Promise((r) => {
                    for (const s of sockets) s.destroy();
                    server.close(() => r());
                }),
            });
        });
    });
}

/** The raw JSON-RPC items of a batch body, numbered ids 0…n-1 unless `id` maps them. */
export function items(n, fn) {
    return Array.from({ length: n }, (_, i) => fn(i));
}
