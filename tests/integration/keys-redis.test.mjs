// SPDX-License-Identifier: MIT
// Budgets shared through Redis (issue 13 item 4): two jrpcd pointing at one real redis-server
// enforce one budget per key, with exactly one Redis round trip per HTTP request or WebSocket
// message, over both transports from one bucket; with Redis stopped (SIGSTOP) or killed,
// fail = open admits and fail = closed refuses, neither hangs, and both recover by themselves
// when Redis is back. Skipped when redis-server is not installed.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, rpc, call, batch } from './lib.mjs';
import { WsClient } from './wslib.mjs';
import { HAVE_REDIS, WAIT_MS, freePort, redisCmd, waitFor, redisStart, redisStop, redisKill } from './redis-lib.mjs';

const SECRET = 'redis-shared-key-0123456789';
const KEY_PATH = `/v2/${SECRET}`;

let dir;
let redis; // { port, proc }

async function evalshaCalls(port) {
    const text = await redisCmd(port, 'INFO commandstats');
    assert.ok(text, 'INFO commandstats answered');
    const m = /cmdstat_evalsha:calls=(\d+)/.exec(text);
    return m ? Number(m[1]) : 0;
}

function config(name, { key = name, burst, rate = 1, fail = 'open', timeout = '200ms' }) {
    const file = path.join(dir, `${name}.ini`);
    writeFileSync(file, `[auth]
required = on
path_prefix = /v2

[key ${key}]
secret = ${SECRET}
rate = ${rate}
burst = ${burst}

[redis]
url = redis://127.0.0.1:${redis.port}
timeout = ${timeout}
fail = ${fail}
`);
    return file;
}

const ping = (id) => call('tennis@ping', undefined, id);

/** The admin listener of a server started with --admin-listen 127.0.0.1:0. */
async function adminOf(srv) {
    let m;
    await waitFor('the admin listening line',
        async () => (m = /jrpcd admin listening on (\S+):(\d+)/.exec(srv.stdout())) !== null);
    return { host: m[1], port: Number(m[2]), path: '/metrics' };
}

/** jrpc_redis_* series of one scrape: { 'jrpc_redis_up': 1, 'timeout': n, … }. */
async function redisSeries(admin) {
    const r = await rpc(admin, undefined, { method: 'GET', path: '/metrics' });
    assert.equal(r.status, 200);
    const out = {};
    for (const line of r.body.split('\n')) {
        let m = /^jrpc_redis_requests_total\{outcome="(\w+)"\} (\d+)$/.exec(line);
        if (m) out[m[1]] = Number(m[2]);
        m = /^jrpc_redis_up (\d+)$/.exec(line);
        if (m) out.up = Number(m[1]);
    }
    return out;
}

/** One single call with the key, bounded: { status, ok, retryAfter, code }. */
async function one(server, id = 1) {
    const r = await rpc(server, ping(id), { path: KEY_PATH, timeout: WAIT_MS });
    return {
        status: r.status,
        ok: r.json?.result === 'pong',
        retryAfter: r.headers['retry-after'],
        code: r.json?.error?.code,
        retryMs: r.json?.error?.data?.retry_after_ms,
        body: r.body,
    };
}

before(async () => {
    if (!HAVE_REDIS) return;
    dir = mkdtempSync(path.join(os.tmpdir(), 'jrpc-redis-'));
    redis = await redisStart(await freePort());
});

after(async () => {
    if (redis) await redisKill(redis);
    if (dir) rmSync(dir, { recursive: true, force: true });
});

test('two jrpcd share one budget in Redis, one round trip per request', { skip: !HAVE_REDIS && 'redis-server is not installed' }, async () => {
    const N = 60;
    // A timeout no answer misses on a loaded machine: a fail-open answer would admit too much.
    const file = config('shared', { burst: N, rate: 1, timeout: '10s' });
    const a = await startServer(['--config', file]);
    const b = await startServer(['--config', file]);
    try {
        const before = await evalshaCalls(redis.port);
        const t0 = Date.now();
        // Singles and batches of 10 against both instances at once: 3N units asked for.
        const jobs = [];
        let requests = 0;
        for (let i = 0; i < 60; i++) {
            const s = i % 2 ? b : a;
            requests++;
            if (i % 3 === 0) {
                const items = Array.from({ length: 10 }, (_, k) => ping(`${i}.${k}`));
                jobs.push(rpc(s, batch(items), { path: KEY_PATH, timeout: WAIT_MS }));
            } else {
                jobs.push(rpc(s, ping(i), { path: KEY_PATH, timeout: WAIT_MS }));
            }
        }
        const answers = await Promise.all(jobs);
        const elapsed = Date.now() - t0;
        let ok = 0, refused = 0;
        for (const r of answers) {
            const items = Array.isArray(r.json) ? r.json : [r.json];
            if (!Array.isArray(r.json) && r.status === 429) {
                assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After: ${r.body}`);
            } else {
                assert.equal(r.status, 200, r.body);
            }
            for (const it of items) {
                if (it.result === 'pong') ok++;
                else {
                    assert.equal(it.error.code, -32005, JSON.stringify(it));
                    assert.ok(it.error.data.retry_after_ms >= 1, JSON.stringify(it));
                    refused++;
                }
            }
        }
        // The burst, plus at most what refilled at 1 unit/s while the requests ran.
        const slack = Math.floor(elapsed / 1000) + 1;
        assert.ok(ok >= N && ok <= N + slack, `${ok} admitted of ${ok + refused}, burst ${N}, ${elapsed} ms`);
        // Exactly one Redis round trip per HTTP request, however many items it held.
        assert.equal(await evalshaCalls(redis.port) - before, requests);
    } finally {
        await a.stop();
        await b.stop();
    }
});

test('Redis stopped or killed: fail open admits, fail closed refuses, no hang, recovery', { skip: !HAVE_REDIS && 'redis-server is not installed' }, async () => {
    const open = await startServer(['--config', config('open', { key: 'outage', burst: 1000, fail: 'open' })]);
    const closedFile = config('closed', { key: 'outage', burst: 1000, fail: 'closed' });
    const closed = await startServer(['--config', closedFile, '--admin-listen', '127.0.0.1:0']);
    const admin = await adminOf(closed);
    try {
        for (const s of [open, closed]) {
            const r = await one(s);
            assert.ok(r.ok, r.body);
        }

        // SIGSTOP: Redis takes connections and never answers.
        await redisStop(redis);
        for (let i = 0; i < 4; i++) {
            const [o, c] = await Promise.all([one(open, i), one(closed, i)]);
            assert.ok(o.ok, `fail = open serves: ${o.body}`);
            assert.equal(c.status, 429, `fail = closed refuses: ${c.body}`);
            assert.equal(c.code, -32005);
            assert.equal(c.retryMs, 1000);
            assert.equal(c.retryAfter, '1');
        }
        const during = await redisSeries(admin);
        assert.ok(during.timeout + during.down >= 4, JSON.stringify(during));
        redis.proc.kill('SIGCONT');
        await waitFor('fail = closed served again after SIGCONT', async () => (await one(closed)).ok);
        assert.equal((await redisSeries(admin)).up, 1);
        assert.ok((await one(open)).ok);

        // Killed: the loss is seen; both answer as configured; a restart on the same port is
        // found again without a restart of jrpcd.
        await redisKill(redis);
        for (let i = 0; i < 4; i++) {
            const [o, c] = await Promise.all([one(open, i), one(closed, i)]);
            assert.ok(o.ok, o.body);
            assert.equal(c.status, 429, c.body);
        }
        assert.equal((await redisSeries(admin)).up, 0);
        redis = await redisStart(redis.port);
        await waitFor('fail = closed served again after a restart', async () => (await one(closed)).ok);
        await waitFor('fail = open counts in Redis again', async () => {
            const before = await evalshaCalls(redis.port);
            return (await one(open)).ok && await evalshaCalls(redis.port) > before;
        });

        // A reload cannot move budgets to another Redis or change how it fails: it says so and
        // keeps the running section.
        const next = readFileSync(config('closed2', { key: 'outage', burst: 1000, fail: 'open' }), 'utf8');
        writeFileSync(closedFile, next);
        closed.proc.kill('SIGHUP');
        await waitFor('the reload logged', async () => /\[redis\] changed: needs a restart/.test(closed.stderr()));
        await redisStop(redis);
        const c = await one(closed);
        redis.proc.kill('SIGCONT');
        assert.equal(c.status, 429, `still fail = closed after the reload: ${c.body}`);
    } finally {
        await open.stop();
        await closed.stop();
    }
});

test('WebSocket: one Redis round trip per message, the budget shared with HTTP', { skip: !HAVE_REDIS && 'redis-server is not installed' }, async () => {
    const N = 30;
    const srv = await startServer(['--config', config('ws', { burst: N, rate: 1, timeout: '10s' })]);
    try {
        const ws = await WsClient.open(srv, { path: KEY_PATH });
        const before = await evalshaCalls(redis.port);
        const t0 = Date.now();
        let ok = 0, refused = 0;
        // 10 messages of 5 calls: 50 units asked of a 30-unit budget, in request order.
        for (let m = 0; m < 10; m++) {
            await ws.send(batch(Array.from({ length: 5 }, (_, k) => ping(`${m}.${k}`))));
            for (const it of await ws.nextJson()) {
                if (it.result === 'pong') ok++;
                else {
                    assert.equal(it.error.code, -32005, JSON.stringify(it));
                    refused++;
                }
            }
        }
        assert.equal(await evalshaCalls(redis.port) - before, 10);
        const slack = Math.floor((Date.now() - t0) / 1000) + 1;
        assert.ok(ok >= N && ok <= N + slack, `${ok} admitted, ${refused} refused, burst ${N}`);
        ws.close();
        // HTTP spends from the same bucket: it is empty (a unit or so refilled at most).
        const r = await rpc(srv, batch([ping(1), ping(2), ping(3)]), { path: KEY_PATH, timeout: WAIT_MS });
        assert.ok(r.json.filter((it) => it.result === 'pong').length <= slack, r.body);
    } finally {
        await srv.stop();
    }
});
