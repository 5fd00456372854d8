// SPDX-License-Identifier: MIT
// Reload (issue 12, items 4 and 6): SIGHUP makes jrpcd read its configuration file again and
// apply the new limits and log level to the connections it has open, under continuous calls on
// keep-alive HTTP connections and a WebSocket, without a failed call, a dropped connection or a
// lost call in flight; a file that does not load, or a value the library refuses, is refused
// and the old limits stay; [batch] deny and cors_origins change too; a changed listen address is logged as
// needing a restart. jrpcd
// started with NOTIFY_SOCKET (systemd's Type=notify) sends READY=1, RELOADING=1 with
// MONOTONIC_USEC then READY=1 around a reload, and STOPPING=1 on SIGTERM, to a datagram socket
// the test owns (tests/tools/notify_sink.c). No sleeps: every wait is for a condition, bounded.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
    startServer, healthy, rpc, call, batch, HttpConn, buildRequest, decorate, waitHeld, release,
    JRPCD, moduleArgs, SOURCE_DIR,
} from './lib.mjs';
import { WsClient, waitFor } from './wslib.mjs';

const BOUND_MS = 10_000; // generous bound for any condition (ASan builds are slow)
const SINK = process.env.NOTIFY_SINK || path.join(SOURCE_DIR, 'build', 'tests', 'notify_sink');

const pings = (n, tag) => batch(Array.from({ length: n }, (_, i) => call('tennis@ping', undefined, `${tag}-${i}`)));

/** Starts notify_sink on a fresh socket path: { path, lines(), kill() }. */
async function startSink(dir) {
    const sockPath = path.join(dir, 'notify.sock');
    const proc = spawn(SINK, [sockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => { out += d; });
    await waitFor(() => out.startsWith('bound\n'), { timeout: BOUND_MS, what: 'notify_sink bound' });
    return {
        path: sockPath,
        lines: () => out.split('\n').slice(1).filter((l) => l !== ''),
        kill: () => proc.kill('SIGKILL'),
    };
}

/** Sends `body` on an open keep-alive connection and returns the decoded answer. */
async function post(conn, server, body) {
    await conn.write(buildRequest(server, { body }));
    return decorate(await conn.readResponse());
}

/** A batch answer in which every item is a result. */
function allOk(r, n, what) {
    assert.equal(r.status, 200, `${what}: ${r.body}`);
    assert.ok(Array.isArray(r.json) && r.json.length === n, `${what}: ${r.body}`);
    for (const item of r.json) assert.equal(item.result, 'pong', `${what}: ${r.body}`);
}

test('SIGHUP under load: new limits and log level, no failed call, no dropped connection', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-reload-'));
    const sink = await startSink(dir);
    const file = path.join(dir, 'jrpcd.ini');
    writeFileSync(file, '[server]\nmax_batch = 4\nmax_batch_ws = 4\nlog_level = info\n');
    process.env.NOTIFY_SOCKET = sink.path;
    let server;
    try {
        server = await startServer(['--config', file]);
    } finally {
        delete process.env.NOTIFY_SOCKET;
    }
    const stops = [];
    try {
        await waitFor(() => sink.lines().includes('READY=1'), { timeout: BOUND_MS, what: 'READY=1' });

        // Opened before the reload and kept: the new limit must reach them.
        const check = await HttpConn.open(server);
        allOk(await post(check, server, pings(4, 'before')), 4, 'a batch of 4 before');
        const ws = await WsClient.open(server);
        await ws.send(pings(4, 'ws-before'));
        const wsBefore = await ws.nextJson();
        assert.equal(wsBefore.length, 4, JSON.stringify(wsBefore));

        // A call in flight across the reload.
        const holder = await HttpConn.open(server);
        await holder.write(buildRequest(server, { body: call('test.hold', undefined, 'held') }));
        await waitHeld(server, 1);

        // Continuous batches of 2 (under the old and the new limit) on three keep-alive HTTP
        // connections and the WebSocket.
        const stats = { calls: 0, failed: [] };
        let running = true;
        const httpLoop = async (k) => {
            const conn = await HttpConn.open(server);
            for (let i = 0; running; i++) {
                const r = await post(conn, server, pings(2, `h${k}-${i}`));
                try { allOk(r, 2, `load h${k}`); stats.calls += 2; } catch (e) { stats.failed.push(e.message); }
            }
            assert.equal(conn.ended, false, 'a load connection was closed');
            conn.close();
        };
        const wsLoop = async () => {
            for (let i = 0; running; i++) {
                await ws.send(pings(2, `w-${i}`));
                const a = await ws.nextJson();
                if (Array.isArray(a) && a.length === 2 && a.every((x) => x.result === 'pong')) stats.calls += 2;
                else stats.failed.push(`ws: ${JSON.stringify(a)}`);
            }
        };
        for (let k = 0; k < 3; k++) stops.push(httpLoop(k));
        stops.push(wsLoop());
        await waitFor(() => stats.calls >= 200, { timeout: BOUND_MS, what: '200 calls before the reload' });
        assert.match(server.stderr(), / info .*items=/, 'access lines are logged at info');

        writeFileSync(file, '[server]\nmax_batch = 3\nmax_batch_ws = 3\nlog_level = warn\n');
        const atReload = stats.calls;
        server.proc.kill('SIGHUP');
        await waitFor(() => /reloaded: max_batch 3, max_batch_ws 3/.test(server.stderr()),
            { timeout: BOUND_MS, what: 'the reload logged' });
        const logAtReload = server.stderr().length;
        await waitFor(() => sink.lines().filter((l) => l === 'READY=1').length === 2,
            { timeout: BOUND_MS, what: 'READY=1 after the reload' });
        const lines = sink.lines();
        assert.match(lines[1], /^RELOADING=1 MONOTONIC_USEC=\d+$/, lines.join(' | '));
        assert.equal(lines[2], 'READY=1', lines.join(' | '));

        // The next batch of 4 on connections opened before the reload meets the new limit.
        const over = await post(check, server, pings(4, 'after'));
        assert.match(over.body, /batch of 4 exceeds limit 3/, over.body);
        allOk(await post(check, server, pings(3, 'after3')), 3, 'a batch of 3 after');
        await waitFor(() => stats.calls >= atReload + 200, { timeout: BOUND_MS, what: '200 calls after the reload' });
        running = false;
        await Promise.all(stops);
        await ws.send(pings(4, 'ws-after'));
        assert.match(JSON.stringify(await ws.nextJson()), /batch of 4 exceeds limit 3/);

        // The call in flight was answered.
        assert.equal(await release(server), 1);
        const held = decorate(await holder.readResponse());
        assert.equal(held.status, 200, held.body);
        assert.equal(held.json.id, 'held', held.body);
        assert.equal(held.json.error, undefined, held.body);

        assert.deepEqual(stats.failed, []);
        assert.equal(ws.closeInfo, null, 'the WebSocket stayed open');
        assert.equal(check.ended, false, 'the keep-alive connection stayed open');
        // log_level = warn: no more access lines.
        await healthy(server);
        assert.doesNotMatch(server.stderr().slice(logAtReload), / info /);
        ws.close();
        check.close();
        holder.close();
        await server.stop();
        await waitFor(() => sink.lines().at(-1) === 'STOPPING=1', { timeout: BOUND_MS, what: 'STOPPING=1' });
    } finally {
        await server.kill();
        sink.kill();
        rmSync(dir, { recursive: true, force: true });
    }
});

/** jrpcd with only a config file (startServer adds --listen, which would hide the file's). */
async function startFromFile(file) {
    const proc = spawn(JRPCD, ['--config', file, ...moduleArgs()], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    let exited = null;
    proc.on('exit', (code, signal) => { exited = { code, signal }; });
    const m = await waitFor(() => exited === null ? /jrpcd listening on (\S+):(\d+)/.exec(stdout) : assert.fail(stderr),
        { timeout: BOUND_MS, what: 'listening' });
    return {
        host: m[1], port: Number(m[2]), proc, path: '/api/v1/endpoint',
        stderr: () => stderr,
        async stop() {
            proc.kill('SIGTERM');
            await waitFor(() => exited, { timeout: BOUND_MS, what: 'exit' });
            assert.deepEqual(exited, { code: 0, signal: null }, stderr);
        },
        kill() { if (!exited) proc.kill('SIGKILL'); },
    };
}

test('deadline shortened by SIGHUP: a newer call times out at its own deadline, before an older one', async () => {
    // Calls waiting on their deadline are kept soonest first, for one timer per loop: a reload
    // that shortens `deadline` makes a newer call due before an older one.
    const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-reload-'));
    const file = path.join(dir, 'jrpcd.ini');
    writeFileSync(file, '[server]\ndeadline = 1h\n');
    const server = await startServer(['--config', file, '--io-threads', '1']); // one loop's list
    const conns = [];
    try {
        const older = await HttpConn.open(server);
        conns.push(older);
        await older.write(buildRequest(server, { body: call('test.hold', undefined, 'older') }));
        await waitHeld(server, 1);
        writeFileSync(file, '[server]\ndeadline = 300ms\n');
        server.proc.kill('SIGHUP');
        await waitFor(() => /reloaded: /.test(server.stderr()), { timeout: BOUND_MS, what: 'the reload' });
        const newer = await HttpConn.open(server);
        conns.push(newer);
        await newer.write(buildRequest(server, { body: call('test.hold', undefined, 'newer') }));
        const r = decorate(await newer.readResponse({ timeout: BOUND_MS }));
        assert.equal(r.json?.error?.code, -32002, r.body);
        assert.equal(r.json.id, 'newer');
        assert.equal(older.buf.length, 0, 'the older call (deadline 1 h) is still waiting');
        assert.equal(await release(server), 2);
        const o = decorate(await older.readResponse({ timeout: BOUND_MS }));
        assert.equal(o.json?.id, 'older', o.body);
        await server.stop();
    } finally {
        for (const c of conns) c.close();
        await server.kill();
        rmSync(dir, { recursive: true, force: true });
    }
});

test('a config that does not load or validate is refused; a listen change needs a restart', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-reload-'));
    const file = path.join(dir, 'jrpcd.ini');
    writeFileSync(file, '[server]\nlisten = 127.0.0.1:0\nmax_batch = 4\n');
    const server = await startFromFile(file);
    try {
        const refusals = () => server.stderr().split('\n').filter((l) => / error reload refused: /.test(l));

        writeFileSync(file, '[server]\nlisten = 127.0.0.1:0\nmax_batch = lots\n');
        server.proc.kill('SIGHUP');
        await waitFor(() => refusals().length === 1, { timeout: BOUND_MS, what: 'first refusal' });
        assert.match(refusals()[0], /jrpcd\.ini:3: .*max_batch.*still serving with the configuration loaded before/);

        writeFileSync(file, '[server]\nlisten = 127.0.0.1:0\nmax_batch = 4\nno_such_key = 1\n');
        server.proc.kill('SIGHUP');
        await waitFor(() => refusals().length === 2, { timeout: BOUND_MS, what: 'second refusal' });
        assert.match(refusals()[1], /no_such_key/);

        // Still serving, with the old limit.
        let r = await rpc(server, pings(4, 'kept'));
        allOk(r, 4, 'a batch of 4 after the refusals');

        const page = { headers: { Origin: 'https://app.example' } };
        r = await rpc(server, call('tennis@ping', undefined, 'o'), page);
        assert.equal(r.status, 403, 'no cors_origins: a page is refused');

        const echoes = batch([call('test.echo', [1], 'e1'), call('test.echo', [2], 'e2')]);
        r = await rpc(server, echoes);
        assert.deepEqual(r.json.map((x) => x.result), [[1], [2]], r.body);

        // Another port: logged as needing a restart and kept; the limits and the batch policy
        // still change.
        writeFileSync(file, '[server]\nlisten = 127.0.0.1:1\nmax_batch = 3\n' +
            'cors_origins = https://app.example\n[batch]\ndeny = test.*\n');
        server.proc.kill('SIGHUP');
        await waitFor(() => /reloaded: max_batch 3/.test(server.stderr()), { timeout: BOUND_MS, what: 'reloaded' });
        assert.match(server.stderr(), / warn reload: listen changed: needs a restart/);
        r = await rpc(server, pings(4, 'new'));
        assert.match(r.body, /batch of 4 exceeds limit 3/, r.body);
        r = await rpc(server, echoes);
        assert.deepEqual(r.json.map((x) => x.error?.code), [-32004, -32004], r.body);
        r = await rpc(server, call('tennis@ping', undefined, 'o'), page);
        assert.equal(r.status, 200, `the page is allowed after the reload: ${r.body}`);
        await healthy(server);
        await server.stop();
    } finally {
        server.kill();
        rmSync(dir, { recursive: true, force: true });
    }
});
