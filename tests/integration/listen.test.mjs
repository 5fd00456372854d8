// SPDX-License-Identifier: MIT
// Listening sockets nobody can take over, and a `--check` that validates without side effects:
// a second jrpcd on a port another jrpcd listens on exits 1 with "address in use" while the first
// keeps answering; with --reuse-port on both they share the port (and the kernel spreads the
// connections); one that joins a jrpcd started without it gets no connection. --check refuses
// listen addresses a start would refuse, passes beside the live daemon on its own port, and
// leaves no file behind (the ledger module's database).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, healthy, rpc, moduleArgs, JRPCD, MODULES, RPC_PATH } from './lib.mjs';

const RUN_TIMEOUT_MS = 10_000;
// Fresh connections made to see which instance the kernel hands them to. Spread at random over
// two instances, the chance that one of them gets none of 200 is 2^-199.
const CONNECTS = 200;
const PING = '{"jsonrpc":"2.0","method":"tennis@ping","id":1}';

/**
 * Run jrpcd with exactly `argv` until it exits (bounded); a jrpcd that prints "listening" instead
 * is killed and reported as started. Resolves { code, started, stdout, stderr }.
 */
function run(argv, { cwd } = {}) {
    return new Promise((resolve, reject) => {
        const p = spawn(JRPCD, argv, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        let started = false;
        const timer = setTimeout(() => {
            p.kill('SIGKILL');
            reject(new Error(`jrpcd ${argv.join(' ')}: neither exited nor listened in ${RUN_TIMEOUT_MS} ms`));
        }, RUN_TIMEOUT_MS);
        p.stdout.setEncoding('utf8').on('data', (d) => {
            stdout += d;
            if (!started && /jrpcd listening on/.test(stdout) && !argv.includes('--check')) {
                started = true;
                p.kill('SIGKILL');
            }
        });
        p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
        p.on('error', reject);
        p.on('close', (code) => { clearTimeout(timer); resolve({ code, started, stdout, stderr }); });
    });
}

/** Who answers CONNECTS fresh connections to 127.0.0.1:port: `a` answers on RPC_PATH, a jrpcd
 * serving another path answers 404 there. */
async function whoAnswers(port) {
    const target = { host: '127.0.0.1', port, path: RPC_PATH };
    let a = 0;
    let other = 0;
    for (let i = 0; i < CONNECTS; i++) {
        const r = await rpc(target, PING);
        if (r.status === 200) {
            assert.equal(r.json.result, 'pong');
            a++;
        } else {
            assert.equal(r.status, 404, r.body);
            other++;
        }
    }
    return { a, other };
}

test('a second jrpcd on a taken port exits 1 with "address in use"; the first answers every call', async () => {
    const first = await startServer();
    try {
        for (const addr of [`127.0.0.1:${first.port}`, `0.0.0.0:${first.port}`]) {
            const second = await run(['--listen', addr, ...moduleArgs(), '--path', '/other']);
            assert.equal(second.started, false, `the second jrpcd listened on ${addr}:\n${second.stdout}`);
            assert.equal(second.code, 1, second.stderr);
            assert.match(second.stderr, new RegExp(`cannot listen on ${addr.replace(/\./g, '\\.')}: ` +
                'address already in use', 'i'));
        }
        assert.deepEqual(await whoAnswers(first.port), { a: CONNECTS, other: 0 });
        await healthy(first);
        await first.stop();
    } finally {
        await first.kill();
    }
});

test('with --reuse-port on both, both start and the kernel spreads connections over them', async () => {
    const first = await startServer(['--reuse-port']);
    let second;
    try {
        second = await startServer(['--reuse-port', '--listen', `127.0.0.1:${first.port}`, '--path', '/other']);
        assert.match(second.stdout(), new RegExp(`jrpcd listening on 127\\.0\\.0\\.1:${first.port}\\n`));
        const seen = await whoAnswers(first.port);
        assert.ok(seen.a > 0 && seen.other > 0, `both answer: ${JSON.stringify(seen)}`);
        await healthy(second);
        await second.stop();
        // The first goes on alone once the second has left.
        assert.deepEqual(await whoAnswers(first.port), { a: CONNECTS, other: 0 });
        await healthy(first);
        await first.stop();
    } finally {
        await second?.kill();
        await first.kill();
    }
});

test('a jrpcd that joins with --reuse-port a port started without it gets no connection', async () => {
    const first = await startServer();
    let second;
    try {
        second = await startServer(['--reuse-port', '--listen', `127.0.0.1:${first.port}`, '--path', '/other']);
        assert.deepEqual(await whoAnswers(first.port), { a: CONNECTS, other: 0 });
        await healthy(second);
        await second.stop();
        await healthy(first);
        await first.stop();
    } finally {
        await second?.kill();
        await first.kill();
    }
});

test('--check refuses listen addresses a start refuses, naming them, with the same exit status', async () => {
    for (const addr of ['999.0.0.1:1', '192.0.2.1:8000', '[2001:db8::1]:8000']) {
        const check = await run(['--check', '--listen', addr, ...moduleArgs()]);
        const start = await run(['--listen', addr, ...moduleArgs()]);
        assert.equal(start.started, false, addr);
        assert.equal(start.code, 1, `${addr}: ${start.stderr}`);
        assert.equal(check.code, start.code, `${addr}: ${check.stderr}`);
        assert.match(check.stderr, new RegExp(`cannot listen on ${addr.replace(/[.[\]]/g, '\\$&')}: `));
        assert.equal(check.stdout, '', 'no settings printed for a configuration that cannot start');
    }
});

test('--check beside the live jrpcd passes on its port, and refuses an address listed twice', async () => {
    const live = await startServer();
    try {
        const addr = `127.0.0.1:${live.port}`;
        const ok = await run(['--check', '--listen', addr, ...moduleArgs()]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.match(ok.stdout, new RegExp(`^listen = ${addr.replace(/\./g, '\\.')}$`, 'm'));
        const twice = await run(['--check', '--listen', `${addr},0.0.0.0:${live.port}`, ...moduleArgs()]);
        assert.equal(twice.code, 1, twice.stderr);
        assert.match(twice.stderr, /cannot listen on 0\.0\.0\.0:\d+: address already in use/i);
        assert.deepEqual(await whoAnswers(live.port), { a: CONNECTS, other: 0 });
        await healthy(live);
        await live.stop();
    } finally {
        await live.kill();
    }
});

test('--check with the ledger module and a new database path succeeds and leaves no file', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'jrpc-check-'));
    try {
        const ledger = path.join(MODULES, 'ledger.so');
        // Relative and absolute, with directories that do not exist yet.
        for (const db of ['rel/dir/ledger.db', path.join(tmp, 'abs', 'ledger.db'), 'ledger.db']) {
            const r = await run(['--check', '--listen', '127.0.0.1:0', '--module', `${ledger}:${db}`], { cwd: tmp });
            assert.equal(r.code, 0, r.stderr);
            assert.deepEqual(readdirSync(tmp), [], `nothing created for ${db}`);
        }
        // What a start would refuse is refused: a file that is not a ledger database, and a path
        // under a file. The file is left as it was.
        writeFileSync(path.join(tmp, 'junk.db'), 'not a database, but long enough to have a header');
        let r = await run(['--check', '--module', `${ledger}:junk.db`], { cwd: tmp });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /ledger: .*junk\.db: .*file is not a database/);
        r = await run(['--check', '--module', `${ledger}:junk.db/x.db`], { cwd: tmp });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /ledger: junk\.db\/x\.db: cannot be created: Not a directory/);
        assert.deepEqual(readdirSync(tmp), ['junk.db']);
        // A database a start made passes, and the check adds nothing beside it (no -wal, -shm).
        const made = await startServer(['--module', `${ledger}:${path.join(tmp, 'made.db')}`]);
        await healthy(made);
        await made.stop();
        const files = readdirSync(tmp).sort();
        r = await run(['--check', '--module', `${ledger}:made.db`], { cwd: tmp });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(readdirSync(tmp).sort(), files);
        assert.ok(existsSync(path.join(tmp, 'made.db')));
    } finally {
        rmSync(tmp, { recursive: true, force: true });
    }
});

test('reuse_port: on|off in the file, --reuse-port[=on|off] on the command line, anything else exit 2', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'jrpc-reuse-'));
    try {
        const ini = path.join(tmp, 'j.ini');
        writeFileSync(ini, '[server]\nreuse_port = on\n');
        let r = await run(['--check', '--config', ini]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^reuse_port = on$/m);
        r = await run(['--check', '--config', ini, '--reuse-port=off']);
        assert.match(r.stdout, /^reuse_port = off$/m);
        r = await run(['--check', '--reuse-port']);
        assert.match(r.stdout, /^reuse_port = on$/m);
        r = await run(['--check']);
        assert.match(r.stdout, /^reuse_port = off$/m, 'off by default');
        r = await run(['--check', '--reuse-port=yes']);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /--reuse-port: "yes" is not on or off/);
        writeFileSync(ini, '[server]\nreuse_port = 1\n');
        r = await run(['--check', '--config', ini]);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /j\.ini:2: reuse_port: "1" is not on or off/);
    } finally {
        rmSync(tmp, { recursive: true, force: true });
    }
});
