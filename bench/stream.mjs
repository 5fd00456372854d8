// SPDX-License-Identifier: MIT
// bench/stream.mjs — streamed batch answers against buffered ones (docs/compression.md), and the
// eth_getLogs-shaped body the gzip figures use. Run by bench/run.sh (ONLY=stream):
//   node bench/stream.mjs ttfb BUILD      a 1000-item batch of test.slow_blob (1 ms, 20 KB each;
//                                         item 500 takes 2 s): time to first byte, time to the
//                                         whole answer and jrpcd's peak RSS over its RSS before
//                                         (a fresh jrpcd per case, warmed by a small batch),
//                                         buffered (HTTP/1.0) vs streamed
//   node bench/stream.mjs logs N          an eth_getLogs call's answer shape: N logs as the params
//                                         of test.echo, so the answer carries them back
import net from 'node:net';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const [mode, a1, a2] = process.argv.slice(2);

function hex(n, rnd) {
    let s = '';
    for (let i = 0; i < n; i++) s += '0123456789abcdef'[Math.floor(rnd() * 16)];
    return s;
}
function lcg(seed) {
    let x = seed >>> 0;
    return () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 4294967296);
}

if (mode === 'logs') {
    // Logs of a few contracts and events over a few blocks, as eth_getLogs returns them: the
    // keys and addresses repeat, hashes and data do not.
    const rnd = lcg(7), n = Number(a1 || 1000);
    const contracts = Array.from({ length: 8 }, () => '0x' + hex(40, rnd));
    const events = Array.from({ length: 4 }, () => '0x' + hex(64, rnd));
    const holders = Array.from({ length: 50 }, () => '0x' + '0'.repeat(24) + hex(40, rnd));
    const logs = [];
    let block = 18_000_000, blockHash = '0x' + hex(64, rnd), tx = '0x' + hex(64, rnd);
    for (let i = 0; i < n; i++) {
        if (i % 40 === 0) { block++; blockHash = '0x' + hex(64, rnd); }
        if (i % 3 === 0) tx = '0x' + hex(64, rnd);
        logs.push({
            address: contracts[Math.floor(rnd() * contracts.length)],
            topics: [events[Math.floor(rnd() * events.length)], holders[Math.floor(rnd() * 50)], holders[Math.floor(rnd() * 50)]],
            data: '0x' + '0'.repeat(40) + hex(24, rnd),
            blockNumber: '0x' + block.toString(16), transactionHash: tx,
            transactionIndex: '0x' + (i % 150).toString(16), blockHash,
            logIndex: '0x' + (i % 40).toString(16), removed: false,
        });
    }
    process.stdout.write(JSON.stringify({ jsonrpc: '2.0', method: 'test.echo', params: logs, id: 1 }));
    process.exit(0);
}

if (mode !== 'ttfb') {
    console.error('usage: node bench/stream.mjs ttfb PORT PID | logs N');
    process.exit(2);
}

const build = a1;
let port = 0, pid = 0;
const N = 1000, SLOW = 500, SLOW_MS = 2000, BLOB = 20000;
const items = [];
for (let i = 0; i < N; i++)
    items.push({ jsonrpc: '2.0', method: 'test.slow_blob', params: i === SLOW ? [SLOW_MS, 100] : [1, BLOB], id: i });
const body = Buffer.from(JSON.stringify(items));
const status = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

/** A fresh jrpcd (io_threads 1, 8 workers); resolves once it listens. */
function start() {
    return new Promise((resolve, reject) => {
        const p = spawn(`${build}/jrpcd`, ['--listen', '127.0.0.1:0', '--io-threads', '1', '--workers', '8',
            '--quiet', '--module', `${build}/modules/testkit.so`], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        p.stdout.on('data', (d) => {
            out += d;
            const m = /listening on .*:(\d+)/.exec(out);
            if (m) { port = Number(m[1]); pid = p.pid; resolve(p); }
        });
        p.on('error', reject);
    });
}

function run({ version = '1.1', headers = {} }, payload = body, count = N) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        let t0, first = 0, buf = [], len = 0;
        sock.on('connect', () => {
            let head = `POST /api/v1/endpoint HTTP/${version}\r\nHost: 127.0.0.1\r\nContent-Length: ${payload.length}\r\n`;
            for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
            t0 = process.hrtime.bigint();
            sock.write(Buffer.concat([Buffer.from(head + 'Connection: close\r\n\r\n'), payload]));
        });
        sock.on('data', (d) => {
            if (!first) first = Number(process.hrtime.bigint() - t0) / 1e6;
            buf.push(d);
            len += d.length;
        });
        sock.on('error', reject);
        sock.on('end', () => {
            const total = Number(process.hrtime.bigint() - t0) / 1e6;
            const all = Buffer.concat(buf, len);
            const he = all.indexOf('\r\n\r\n');
            const head = all.subarray(0, he).toString('latin1');
            let payload = all.subarray(he + 4);
            if (/transfer-encoding: chunked/i.test(head)) {
                const parts = [];
                let off = 0;
                for (;;) {
                    const le = payload.indexOf('\r\n', off);
                    const size = parseInt(payload.subarray(off, le).toString('latin1'), 16);
                    if (!size) break;
                    parts.push(payload.subarray(le + 2, le + 2 + size));
                    off = le + 2 + size + 2;
                }
                payload = Buffer.concat(parts);
            }
            const answers = JSON.parse(payload.toString());
            if (answers.length !== count || answers.some((x) => x.error)) reject(new Error('bad answer'));
            resolve({ first, total, bytes: payload.length, chunked: /chunked/i.test(head) });
        });
    });
}

const cases = [
    ['buffered (HTTP/1.0)', { version: '1.0' }],
    ['streamed, request order', {}],
    ['streamed, completion order', { headers: { 'Jrpc-Batch-Order': 'completion' } }],
];
console.log(`streamed batch answers: ${N} items of test.slow_blob (1 ms, ${BLOB / 1000} KB each; item ${SLOW} takes ${SLOW_MS} ms)`);
console.log(`${'case'.padEnd(30)} ${'first byte ms'.padStart(14)} ${'whole ms'.padStart(10)} ${'peak RSS +MiB'.padStart(14)} ${'answer MB'.padStart(10)}`);
const warm = Buffer.from(JSON.stringify(items.slice(0, 50).map((x) => ({ ...x, params: [1, 100] }))));
for (const [name, opt] of cases) {
    const proc = await start();
    await run(opt, warm, 50); // the worker threads and the loop's caches exist
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const before = status('VmRSS');
    const r = await run(opt);
    const peak = status('VmHWM');
    proc.kill();
    await new Promise((res) => proc.once('exit', res));
    console.log(`${name.padEnd(30)} ${r.first.toFixed(1).padStart(14)} ${r.total.toFixed(1).padStart(10)} ` +
        `${((peak - before) / 1024).toFixed(1).padStart(14)} ${(r.bytes / 1e6).toFixed(1).padStart(10)}`);
}
