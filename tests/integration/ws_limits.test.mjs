// SPDX-License-Identifier: MIT
// What one WebSocket client may pin, and for how long: a message must arrive within body_timeout
// of pause and at min_body_rate (as an HTTP body must), else close 1008; ws_max_queue bounds what
// is held for a client that does not read, pushes from worker threads included (measured as
// jrpcd's RSS); ws_max_subscriptions bounds the subscriptions of one connection (-32005).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { startServer, withServer, healthy, call, assertError, assertResult } from './lib.mjs';
import { WsClient, RawWs, frame, waitFor } from './wslib.mjs';

const BODY_TIMEOUT_MS = 300;

let srv; // --body-timeout 300ms, pings at the default 30 s
before(async () => { srv = await startServer(['--body-timeout', `${BODY_TIMEOUT_MS}ms`]); });
after(async () => { await srv?.kill(); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The header (with its masking key) and the masked payload of one client frame, apart. */
function split(f) {
    const len7 = f[1] & 0x7f;
    const head = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + 4;
    return [f.subarray(0, head), f.subarray(head)];
}

/**
 * Write `pieces` one after another with `pauseMs` between them until they are all written or the
 * server closes; resolves with how many were written.
 */
async function trickle(raw, pieces, pauseMs) {
    let n = 0;
    for (const p of pieces) {
        if (raw.ended) break;
        raw.sock.write(p);
        n++;
        await sleep(pauseMs);
    }
    return n;
}

// ---- A message's deadline (body_timeout, min_body_rate) --------------------------------------

test('a frame trickled byte by byte (pauses under body_timeout) is cut with 1008 once below min_body_rate', async () => {
    const raw = await RawWs.open(srv);
    try {
        const [head, payload] = split(frame({ payload: call('test.echo', ['x'.repeat(960)], 1) }));
        await raw.write(head);
        // 20 bytes/s, each pause a sixth of body_timeout: only the rate can end this.
        const bytes = [...payload].map((b) => Buffer.from([b]));
        const sending = trickle(raw, bytes, BODY_TIMEOUT_MS / 6);
        const close = await raw.readClose({ timeout: 10_000 });
        assert.equal(close.code, 1008);
        assert.equal(close.reason, 'message slower than 1024 bytes/s');
        assert.ok(await sending < payload.length, 'the message was still incomplete when it was cut');
        await raw.waitEnd();
    } finally {
        raw.destroy();
    }
});

test('fragments that each arrive whole but make a message slower than min_body_rate are cut with 1008', async () => {
    const raw = await RawWs.open(srv);
    try {
        const text = call('test.echo', ['y'.repeat(200)], 2);
        const frags = [];
        for (let i = 0; i < text.length; i += 4) {
            frags.push(frame({ opcode: i === 0 ? 1 : 0, fin: i + 4 >= text.length, payload: text.slice(i, i + 4) }));
        }
        const sending = trickle(raw, frags, BODY_TIMEOUT_MS / 6);
        const close = await raw.readClose({ timeout: 10_000 });
        assert.equal(close.code, 1008);
        assert.equal(close.reason, 'message slower than 1024 bytes/s');
        assert.ok(await sending < frags.length, 'the last fragment was never sent');
    } finally {
        raw.destroy();
    }
});

test('a frame header or payload left half-sent for body_timeout is cut with 1008', async () => {
    const [head, payload] = split(frame({ payload: call('test.echo', [1], 3) }));
    for (const part of [head.subarray(0, 1), Buffer.concat([head, payload.subarray(0, 5)])]) {
        const raw = await RawWs.open(srv);
        try {
            await raw.write(part);
            const close = await raw.readClose({ timeout: 10_000 });
            assert.equal(close.code, 1008, `after ${part.length} bytes`);
            assert.equal(close.reason, 'message incomplete: no byte for body_timeout');
            await raw.waitEnd();
        } finally {
            raw.destroy();
        }
    }
});

test('a message sent at normal speed with pauses under body_timeout is answered; idle time is not a pause', async () => {
    const raw = await RawWs.open(srv);
    try {
        const text = call('test.echo', ['z'.repeat(40_000)], 4);
        const [head, payload] = split(frame({ payload: text }));
        await raw.write(head);
        // 10 pieces, 50 ms apart: the message takes longer than body_timeout, at ~80 KB/s.
        const size = Math.ceil(payload.length / 10);
        const pieces = [];
        for (let i = 0; i < payload.length; i += size) pieces.push(payload.subarray(i, i + size));
        assert.equal(await trickle(raw, pieces, 50), pieces.length);
        const f = await raw.readFrame();
        assert.equal(f.opcode, 1);
        assertResult(JSON.parse(f.payload), ['z'.repeat(40_000)], 4);
        // Between messages nothing is pending: twice body_timeout of silence is fine.
        await sleep(2 * BODY_TIMEOUT_MS);
        await raw.sendText(call('tennis@ping', undefined, 5));
        assertResult(JSON.parse((await raw.readFrame()).payload), 'pong', 5);
        assert.equal(raw.ended, false);
    } finally {
        raw.destroy();
    }
});

test('a message the server did not read while paused at --ws-max-inflight is timed from when reading resumed', async () => {
    await withServer(['--body-timeout', `${BODY_TIMEOUT_MS}ms`, '--ws-max-inflight', '1'], async (s) => {
        const raw = await RawWs.open(s);
        try {
            // The slow call stops reading; the half message behind it waits, unread, for twice
            // body_timeout, and is completed as soon as the slow call's answer shows reading resumed.
            const [head, payload] = split(frame({ payload: call('tennis@ping', undefined, 'b') }));
            await raw.write(Buffer.concat([frame({ payload: call('test.sleep_async', [2 * BODY_TIMEOUT_MS], 'a') }),
                head, payload.subarray(0, 3)]));
            assertResult(JSON.parse((await raw.readFrame()).payload), 2 * BODY_TIMEOUT_MS, 'a');
            await raw.write(payload.subarray(3));
            const f = await raw.readFrame();
            assert.equal(f.opcode, 1, `a close instead of the answer: ${f.payload}`);
            assertResult(JSON.parse(f.payload), 'pong', 'b');
        } finally {
            raw.destroy();
        }
    });
});

test('pings and the idle timer keep their own times beside the message deadline', async () => {
    await withServer(['--body-timeout', `${BODY_TIMEOUT_MS}ms`, '--ws-ping-interval', '100ms',
        '--ws-idle-timeout', '1500ms'], async (s) => {
        const ws = await WsClient.open(s);
        try {
            // Pinged and answering for well past body_timeout, no message: stays open.
            await ws.until((c) => c.pings >= 5, { what: 'five pings' });
            assert.equal(ws.closeInfo, null);
            assertResult(await ws.call('tennis@ping', undefined, 1), 'pong', 1);
            // Then no message either way: the idle close, not a 1008.
            const info = await ws.closed({ timeout: 10_000 });
            assert.equal(info.code, 1001);
            assert.equal(info.reason, 'idle timeout');
        } finally {
            ws.terminate();
        }
        const mute = await WsClient.open(s, { options: { autoPong: false } });
        try {
            assert.equal((await mute.closed({ timeout: 10_000 })).code, 1006, 'a dead peer is still cut');
        } finally {
            mute.terminate();
        }
    });
});

// ---- ws_max_queue counts what is held, pushes from workers included --------------------------

const sanitized = (pid) => /lib[at]san|libclang_rt\.[at]san/.test(readFileSync(`/proc/${pid}/maps`, 'utf8'));

function status(pid, key) {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]) * 1024;
}

test('clients that never read while workers push to them: jrpcd holds at most ws_max_queue each, and drops them', async (t) => {
    const CONNS = 4, QUEUE = 256 << 10, CALLS = 10;
    // Beyond the queues: what the allocator keeps touched in the arenas of 4 workers pushing at
    // once and of the loops freeing their messages (measured: 0.6-0.9 MiB in all). Counting
    // payload only and pushes only once they reached the loop, this took 94 MiB; counting what
    // items hold but not at post time, 3-13 MiB.
    const SLACK = 2 << 20;
    const s = await startServer(['--ws-max-queue', '256KiB', '--workers', '4', '--io-threads', '2']);
    try {
        // Warm up what every push path touches (worker threads, their arenas) on a reading client.
        const warm = await WsClient.open(s);
        await warm.send(call('test.push', [200], 'warm'));
        const got = await warm.take(201);
        assertResult(got.at(-1), 200, 'warm');
        warm.terminate();
        const pid = s.proc.pid;
        try { writeFileSync(`/proc/${pid}/clear_refs`, '5'); } catch { /* VmHWM then counts from the start */ }
        const rssBefore = status(pid, 'VmRSS');

        const raws = [];
        for (let i = 0; i < CONNS; i++) {
            const raw = await RawWs.open(s);
            raw.pause(); // never read again: the kernel's buffers fill, then jrpcd's
            const reqs = [];
            for (let k = 0; k < CALLS; k++) reqs.push(frame({ payload: call('test.push', [100000], k) }));
            raw.sock.write(Buffer.concat(reqs));
            raws.push(raw);
        }
        const drops = () => (s.stderr().match(/dropped: \d+ bytes wait unread \(ws_max_queue\)/g) ?? []).length;
        await waitFor(() => drops() >= CONNS, { timeout: 60_000, what: `${CONNS} clients dropped` });
        // Every test.push has returned once the workers are idle again: a probe gets through.
        const probe = await WsClient.open(s);
        assertResult(await probe.call('test.worker_echo', [1], 'probe'), [1], 'probe');
        probe.terminate();
        const peak = status(pid, 'VmHWM');
        t.diagnostic(`RSS before ${(rssBefore / 1048576).toFixed(1)} MiB, peak ${(peak / 1048576).toFixed(1)} MiB: ` +
            `+${((peak - rssBefore) / 1048576).toFixed(1)} MiB for ${CONNS} clients at ws_max_queue ${QUEUE / 1024} KiB`);
        if (sanitized(pid)) {
            t.diagnostic('sanitizer build: RSS not compared');
        } else {
            assert.ok(peak - rssBefore < CONNS * QUEUE + SLACK,
                `peak RSS grew by ${peak - rssBefore} bytes, over ${CONNS} × ws_max_queue + ${SLACK}`);
        }
        for (const raw of raws) raw.destroy();
        await healthy(s);
        await s.stop();
    } finally {
        await s.kill();
    }
});

// ---- ws_max_subscriptions --------------------------------------------------------------------

test('--ws-max-subscriptions: one more subscribe gets -32005 naming the limit; unsubscribing makes room', async () => {
    await withServer(['--ws-max-subscriptions', '3'], async (s) => {
        const ws = await WsClient.open(s);
        const other = await WsClient.open(s);
        try {
            const ids = [];
            for (let i = 0; i < 3; i++) {
                const a = await ws.call('test.subscribe', [60000], `s${i}`);
                assert.match(a.result, /^0x[0-9a-f]{32}$/, JSON.stringify(a));
                ids.push(a.result);
            }
            const refused = await ws.call('test.subscribe', [60000], 's3');
            assertError(refused, -32005, 's3');
            assert.equal(refused.error.message, 'too many subscriptions: limit 3 per connection (ws_max_subscriptions)');
            assertResult(await ws.call('test.subscriptions', undefined, 'n'), 3, 'n');
            // Per connection: another client still subscribes.
            assert.match((await other.call('test.subscribe', [60000], 'o')).result, /^0x/);
            assertResult(await ws.call('test.unsubscribe', [ids[0]], 'u'), true, 'u');
            assert.match((await ws.call('test.subscribe', [60000], 's4')).result, /^0x/);
            assertError(await ws.call('test.subscribe', [60000], 's5'), -32005, 's5');
        } finally {
            ws.terminate();
            other.terminate();
        }
        const probe = await WsClient.open(s);
        try {
            await waitFor(async () => (await probe.call('test.subscriptions')).result === 0,
                { what: 'every subscription ended with its connection' });
        } finally {
            probe.terminate();
        }
    });
});

test('server still healthy, SIGTERM exits 0', async () => {
    await healthy(srv);
    await srv.stop();
});
