// SPDX-License-Identifier: MIT
// A real redis-server for the tests that share state through Redis (keys-redis, the gateway's
// Redis cache): a free loopback port, a raw command, start, SIGSTOP (a Redis that stops
// answering) and kill, each process stopped by its PID. HAVE_REDIS says whether it is installed.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';

export const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;
export const WAIT_MS = 20_000; // bound on every wait for a condition

export function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

/** One command to Redis in its inline form; resolves the raw reply text (null: no answer). */
export function redisCmd(port, line, timeout = 2000) {
    return new Promise((resolve) => {
        const sock = net.connect(port, '127.0.0.1');
        let buf = '';
        const done = (v) => { clearTimeout(t); sock.destroy(); resolve(v); };
        const t = setTimeout(() => done(null), timeout);
        sock.on('error', () => done(null));
        sock.on('connect', () => sock.write(`${line}\r\n`));
        sock.on('data', (d) => {
            buf += d;
            // A bulk string ($N\r\n…\r\n) or a one-line reply.
            const m = /^\$(\d+)\r\n/.exec(buf);
            if (m ? buf.length >= m[0].length + Number(m[1]) + 2 : buf.endsWith('\r\n')) done(buf);
        });
    });
}

export async function waitFor(what, fn) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
        if (await fn()) return;
        if (Date.now() > deadline) assert.fail(`${what}: not within ${WAIT_MS} ms`);
        await new Promise((r) => setTimeout(r, 20)); // the next try, not a synchronisation
    }
}

export async function redisStart(port) {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
        '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
    const r = { port, proc, exited: false };
    proc.on('exit', () => { r.exited = true; });
    await waitFor('redis-server answers PING', async () => {
        assert.equal(r.exited, false, 'redis-server exited');
        return (await redisCmd(port, 'PING')) === '+PONG\r\n';
    });
    return r;
}

/** SIGSTOP, then wait until the process is stopped (state T in /proc): kill returns before a
 *  process on another core has stopped, and it could answer one more command meanwhile. */
export async function redisStop(r) {
    r.proc.kill('SIGSTOP');
    await waitFor('redis-server stopped', async () =>
        /^\d+ \(.*\) T /.test(readFileSync(`/proc/${r.proc.pid}/stat`, 'utf8')));
}

export async function redisKill(r) {
    if (r.exited) return;
    const gone = new Promise((resolve) => r.proc.once('exit', resolve));
    r.proc.kill('SIGKILL'); // also when stopped, without running it again first
    await gone;
}
