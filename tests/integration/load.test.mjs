// SPDX-License-Identifier: MIT
// Load smoke test: the short version of bench/soak.sh. 500 keep-alive connections at once, a few
// calls each from the mix of bench/conns.mjs (singles, batches, notifications, errors, worker
// and async calls, every answer checked), three rounds against one jrpcd. After each round the
// open fds of jrpcd come back to exactly where they were, and RSS settles: it does not keep
// growing from round to round. Under a sanitizer build RSS is not compared (ASan keeps freed
// memory in quarantine, TSan grows its shadow and history); the exit status of jrpcd —
// LeakSanitizer's verdict under build-asan — checks leaks there.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, healthy, SOURCE_DIR } from './lib.mjs';

const CONNS = 500;
const CALLS = 4;
const ROUNDS = 3;
const CLIENT = path.join(SOURCE_DIR, 'bench', 'conns.mjs');

let srv;
before(async () => { srv = await startServer(['--log-level', 'warn']); });
after(async () => { await srv?.kill(); });

function runClient(server) {
    return new Promise((resolve, reject) => {
        execFile(process.execPath, [CLIENT, '--port', String(server.port), '--pid', String(server.proc.pid),
            '--conns', String(CONNS), '--calls', String(CALLS), '--interval', '0', '--duration', '30',
            '--ramp', '250', '--json', '--label', 'smoke'],
        { timeout: 120_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
            const line = stdout.trim().split('\n').at(-1);
            let summary;
            try { summary = JSON.parse(line); } catch {
                return reject(new Error(`conns.mjs printed no summary (${err?.message ?? ''})\nstdout:\n${stdout}\nstderr:\n${stderr}`));
            }
            resolve(summary);
        });
    });
}

const sanitized = () => /lib[at]san|libclang_rt\.[at]san/.test(readFileSync(`/proc/${srv.proc.pid}/maps`, 'utf8'));

test(`${CONNS} connections × ${CALLS} calls, ${ROUNDS} rounds: no errors, fds back to the start, RSS settles`, async (t) => {
    const rounds = [];
    for (let i = 0; i < ROUNDS; i++) {
        const s = await runClient(srv);
        t.diagnostic(`round ${i + 1}: ${s.answers} answers, ${s.errors} errors, p50 ${s.p50_ms.toFixed(2)} ms, ` +
            `p99 ${s.p99_ms.toFixed(2)} ms; RSS KiB ${JSON.stringify(s.rss_kib)}; fds ${JSON.stringify(s.fds)}`);
        assert.equal(s.connected, CONNS, `round ${i + 1}: connected`);
        assert.equal(s.errors, 0, `round ${i + 1}: ${JSON.stringify(s.error_kinds)} ${s.first_errors.join('; ')}`);
        assert.equal(s.answers, CONNS * CALLS, `round ${i + 1}: answers`);
        assert.ok(s.fds.peak > s.fds.before + CONNS / 2, `round ${i + 1}: the connections were open at once (fds ${JSON.stringify(s.fds)})`);
        assert.equal(s.fds.after, s.fds.before, `round ${i + 1}: open fds back to where they were`);
        rounds.push(s);
    }
    if (sanitized()) {
        t.diagnostic('sanitizer build: RSS not compared');
    } else {
        // Round 1 warms the allocator's caches; later rounds must not add to them.
        const first = rounds[0].rss_kib.end, last = rounds.at(-1).rss_kib.end;
        assert.ok(last <= first * 1.1 + 2048, `RSS keeps growing: ${rounds.map((r) => r.rss_kib.end).join(' → ')} KiB`);
        assert.ok(last <= rounds[0].rss_kib.start + 64 * 1024, `RSS ${last} KiB after the load, ${rounds[0].rss_kib.start} KiB before`);
    }
    await healthy(srv);
    await srv.stop({ timeout: 30_000 });
});
