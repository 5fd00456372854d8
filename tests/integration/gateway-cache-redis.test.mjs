// SPDX-License-Identifier: MIT
// The response cache's Redis level (docs/gateway.md#the-redis-level): two jrpcd gateways share
// one real redis-server in front of one upstream that records every call it gets
// (upstream-fault.mjs). A cacheable call answered through A is answered through B from Redis
// (the upstream sees it once), then from B's own cache without a round trip; Redis keeps it for
// its TTL (PX), `forever` for a day; an expired answer is asked for again; null, errors, calls
// naming `latest`, writes and results over redis_max_value are never sent to Redis, and a value
// there that is not JSON is never passed on; a Redis that stops answering (SIGSTOP) or is gone
// costs a call at most the [redis] timeout and the call is answered from the upstream; the
// metrics count each case. Skipped when redis-server is not installed. No sleeps: every wait is
// for a condition, with a bound.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JRPCD, startServer, rpc, call, healthy, scrapeAdmin } from './lib.mjs';
import { startFaultServer } from './upstream-fault.mjs';
import { HAVE_REDIS, freePort, redisCmd, waitFor, redisStart, redisStop, redisKill } from './redis-lib.mjs';

const skip = !HAVE_REDIS && 'redis-server is not installed';
const MAX_VALUE = 1024; // [cache] redis_max_value of both gateways

let dir, redis, redisPort, up, a, b;

function ini(port, timeout = '200ms') {
    return `[redis]
url = redis://127.0.0.1:${port}
timeout = ${timeout}

[upstream gw]
url = ${up.url('/ok')}
methods = *

[cache]
redis = on
redis_max_value = ${MAX_VALUE}

[cache ttl]
kept = 1h
short = 1s
big = 1h
x_null = 1h
x_err = 1h
eth_getBalance = 1h
`;
}

async function gateway(name, port, { timeout, args = [] } = {}) {
    const file = path.join(dir, `${name}.ini`);
    writeFileSync(file, ini(port, timeout));
    // One io loop: one Redis connection, so the counts below are exact.
    return startServer(['--config', file, '--admin-listen', '127.0.0.1:0', '--io-threads', '1', ...args]);
}

/** The Redis key of a call: the prefix, then the SHA-256 of upstream NUL method NUL params. */
const keyOf = (method, params) => 'jrpc:c:1:' +
    createHash('sha256').update(`gw\0${method}\0${JSON.stringify(params)}`).digest('hex');
/** An integer reply (":N") of Redis. */
const int = async (line) => {
    const r = await redisCmd(redis.port, line);
    assert.match(r ?? '', /^:-?\d+\r\n$/, `${line}: ${r}`);
    return Number(r.slice(1));
};
/** Calls of `method` the upstream received. */
const received = (method) => up.requests.flatMap((r) => r.methods).filter((m) => m === method).length;
const metric = async (srv, name) => (await scrapeAdmin(srv)).get(name) ?? 0;

before(async () => {
    if (skip) return;
    dir = mkdtempSync(path.join(os.tmpdir(), 'jrpc-cache-redis-'));
    up = await startFaultServer();
    redisPort = await freePort();
    redis = await redisStart(redisPort);
    [a, b] = await Promise.all([gateway('a', redis.port), gateway('b', redis.port)]);
});

after(async () => {
    await a?.kill();
    await b?.kill();
    if (redis) await redisKill(redis);
    await up?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
});

test('an answer through A is answered through B from Redis: the upstream sees one call', { skip }, async () => {
    const want = { m: 'kept', p: ['x', 1] };
    const r1 = await rpc(a, call('kept', ['x', 1], 1));
    assert.deepEqual(r1.json, { jsonrpc: '2.0', id: 1, result: want });
    // The SET goes once A has answered: wait for it in Redis.
    const key = keyOf('kept', ['x', 1]);
    await waitFor('the answer in Redis', async () => (await int(`EXISTS ${key}`)) === 1);
    const ttl = await int(`PTTL ${key}`);
    assert.ok(ttl > 3_500_000 && ttl <= 3_600_000, `PX of the rule's 1h: ${ttl}`);
    assert.equal(await redisCmd(redis.port, `GET ${key}`), `$${JSON.stringify(want).length}\r\n${JSON.stringify(want)}\r\n`);

    const r2 = await rpc(b, call('kept', ['x', 1], 'b2'));
    assert.deepEqual(r2.json, { jsonrpc: '2.0', id: 'b2', result: want });
    assert.equal(received('kept'), 1, 'B answered from Redis');
    assert.equal(await metric(b, 'jrpc_upstream_cache_hits_total{level="redis"}'), 1);
    assert.equal(await metric(a, 'jrpc_upstream_cache_redis_stores_total'), 1);
    // Again through B: its own cache now, no round trip.
    const r3 = await rpc(b, call('kept', ['x', 1], 3));
    assert.deepEqual(r3.json.result, want);
    assert.equal(await metric(b, 'jrpc_upstream_cache_hits_total{level="local"}'), 1);
    assert.equal(await metric(b, 'jrpc_upstream_cache_hits_total{level="redis"}'), 1);
    assert.equal(received('kept'), 1);

    // Built-in forever (eth_chainId): a day in Redis.
    await rpc(a, call('eth_chainId', [], 4));
    const ck = keyOf('eth_chainId', []);
    await waitFor('eth_chainId in Redis', async () => (await int(`EXISTS ${ck}`)) === 1);
    const cttl = await int(`PTTL ${ck}`);
    assert.ok(cttl > 86_000_000 && cttl <= 86_400_000, `forever is a day in Redis: ${cttl}`);
});

test('the TTL holds in Redis; an expired answer is asked for again', { skip }, async () => {
    const key = keyOf('short', ['t']);
    assert.equal((await rpc(a, call('short', ['t'], 1))).json.result.m, 'short');
    await waitFor('the answer in Redis', async () => (await int(`EXISTS ${key}`)) === 1);
    const ttl = await int(`PTTL ${key}`);
    assert.ok(ttl > 0 && ttl <= 1000, `PX of the rule's 1s: ${ttl}`);
    assert.equal((await rpc(b, call('short', ['t'], 2))).json.result.m, 'short');
    assert.equal(received('short'), 1, 'B answered from Redis within the TTL');
    await waitFor('Redis expired it', async () => (await int(`EXISTS ${key}`)) === 0);
    // B kept it locally only for what was left of its time in Redis: it asks again.
    await waitFor('B asks the upstream again', async () => {
        assert.equal((await rpc(b, call('short', ['t'], 3))).json.result.m, 'short');
        return received('short') === 2;
    });
    await waitFor('stored again', async () => (await int(`EXISTS ${key}`)) === 1);
});

test('null, errors, latest, writes and results over redis_max_value never reach Redis', { skip }, async () => {
    const before = await int('DBSIZE');
    const stores = await metric(a, 'jrpc_upstream_cache_redis_stores_total');
    const addr = '0x' + '11'.repeat(20);
    const big = 'z'.repeat(MAX_VALUE);
    const cases = [
        ['x_null', [1], (r) => assert.equal(r.result, null)],
        ['x_err', [1], (r) => assert.equal(r.error.code, -32099)],
        ['eth_getBalance', [addr, 'latest'], (r) => assert.equal(r.result.m, 'eth_getBalance')],
        ['eth_sendRawTransaction', ['0x01'], (r) => assert.equal(r.result.m, 'eth_sendRawTransaction')],
        ['uncached', [1], (r) => assert.equal(r.result.m, 'uncached')],
    ];
    for (const [m, p, check] of cases) {
        for (const srv of [a, b]) check((await rpc(srv, call(m, p, 1))).json);
        assert.equal(received(m), 2, `${m}: forwarded by both`);
    }
    // Over the cap: kept locally (A answers it again without the upstream), not in Redis.
    for (const srv of [a, a, b]) assert.equal((await rpc(srv, call('big', [big], 1))).json.result.p[0], big);
    assert.equal(received('big'), 2, 'A\'s local cache kept it; B could not find it in Redis');
    assert.equal(await metric(a, 'jrpc_upstream_cache_redis_too_large_total'), 1);
    assert.equal(await metric(a, 'jrpc_upstream_cache_redis_stores_total'), stores);
    // A cacheable call made last: once it is in Redis, whatever was sent before it is too.
    await rpc(a, call('kept', ['last'], 1));
    await waitFor('the last answer in Redis', async () => (await int(`EXISTS ${keyOf('kept', ['last'])}`)) === 1);
    assert.equal(await int('DBSIZE'), before + 1, 'only the cacheable answer was stored');
});

test('a value in Redis that is not JSON is not passed on: the call goes upstream', { skip }, async () => {
    const key = keyOf('kept', ['bad']);
    assert.equal(await redisCmd(redis.port, `SET ${key} {not-json PX 60000`), '+OK\r\n');
    const invalid = await metric(b, 'jrpc_upstream_cache_redis_errors_total{cause="invalid"}');
    const errors = await metric(b, 'jrpc_upstream_cache_redis_errors_total{cause="error"}');
    const n = received('kept');
    assert.deepEqual((await rpc(b, call('kept', ['bad'], 1))).json, { jsonrpc: '2.0', id: 1, result: { m: 'kept', p: ['bad'] } });
    assert.equal(received('kept'), n + 1);
    // Counted as a bad value, not as a failure of Redis.
    assert.equal(await metric(b, 'jrpc_upstream_cache_redis_errors_total{cause="invalid"}'), invalid + 1);
    assert.equal(await metric(b, 'jrpc_upstream_cache_redis_errors_total{cause="error"}'), errors);
    // The upstream's answer replaces it.
    const good = JSON.stringify({ m: 'kept', p: ['bad'] });
    await waitFor('replaced', async () => (await redisCmd(redis.port, `GET ${key}`)) === `$${good.length}\r\n${good}\r\n`);
});

test('more lookups than a loop keeps in flight: the rest fail at once as `full` and go upstream', { skip }, async () => {
    // 40 batches of 32 (batch_concurrency) distinct cacheable calls on one io loop while Redis
    // does not answer: 1024 GETs wait (JRPC__REDIS_MAX_PENDING), the other 256 lookups fail at
    // once and their calls are forwarded without waiting for Redis.
    const c = await gateway('full', redis.port, { timeout: '20s' });
    try {
        await waitFor('connected', async () => (await metric(c, 'jrpc_redis_up')) === 1);
        const n = received('kept');
        await redisStop(redis);
        const pending = [];
        for (let r = 0; r < 40; r++) {
            const batch = [];
            for (let i = 0; i < 32; i++) batch.push(call('kept', ['full', r, i], i));
            pending.push(rpc(c, `[${batch.join(',')}]`, { timeout: 30_000 }));
        }
        await waitFor('256 lookups refused at once', async () =>
            (await metric(c, 'jrpc_upstream_cache_redis_errors_total{cause="full"}')) >= 256);
        await waitFor('their calls forwarded', async () => received('kept') >= n + 256);
        assert.equal(await metric(c, 'jrpc_upstream_cache_redis_errors_total{cause="down"}'), 0);
        assert.equal(await metric(c, 'jrpc_upstream_cache_redis_errors_total{cause="timeout"}'), 0);
        // Redis answers again: the 1024 GETs are misses, their calls go upstream, all complete.
        redis.proc.kill('SIGCONT');
        for (const [r, p] of pending.entries()) {
            const out = (await p).json;
            assert.equal(out.length, 32);
            for (const [i, item] of out.entries()) assert.deepEqual(item.result, { m: 'kept', p: ['full', r, i] });
        }
        assert.equal(received('kept'), n + 40 * 32, 'every call forwarded once');
    } finally {
        await c.kill();
    }
});

test('Redis stopped, then gone: calls are answered from the upstream, no hang', { skip }, async () => {
    const ta = await metric(a, 'jrpc_upstream_cache_redis_errors_total{cause="timeout"}');
    const n0 = received('kept');
    await redisStop(redis); // SIGSTOP: connected, never answers
    const r = await rpc(a, call('kept', ['stopped'], 1), { timeout: 10_000 });
    assert.deepEqual(r.json.result, { m: 'kept', p: ['stopped'] });
    assert.equal(received('kept'), n0 + 1, 'forwarded once the GET timed out');
    // The GET's timeout (and the SET's after it, if it came first) is counted.
    assert.ok(await metric(a, 'jrpc_upstream_cache_redis_errors_total{cause="timeout"}') >= ta + 1);

    await redisKill(redis); // gone: the connection drops, calls go upstream at once
    const n = received('kept');
    for (const [srv, i] of [[a, 2], [b, 3], [a, 4]])
        assert.deepEqual((await rpc(srv, call('kept', ['gone', i], i), { timeout: 10_000 })).json.result,
            { m: 'kept', p: ['gone', i] });
    assert.equal(received('kept'), n + 3);
    // A GET in flight when the connection dropped fails as `error`; once the loop knows it has no
    // connection, a GET fails at once and counts as `down`.
    let k = 5;
    await waitFor('a lookup refused at once while Redis is down', async () => {
        const i = k++;
        assert.deepEqual((await rpc(a, call('kept', ['gone', i], i), { timeout: 10_000 })).json.result,
            { m: 'kept', p: ['gone', i] });
        return (await metric(a, 'jrpc_upstream_cache_redis_errors_total{cause="down"}')) >= 1;
    });
    await healthy(a);
    await healthy(b);
    redis = null;
});

test('Redis back: answers are shared again; a stop with a GET in flight exits cleanly', { skip }, async () => {
    redis = await redisStart(redisPort);
    await waitFor('A connected again', async () => (await metric(a, 'jrpc_redis_up')) === 1);
    await rpc(a, call('kept', ['back'], 1));
    await waitFor('stored again', async () => (await int(`EXISTS ${keyOf('kept', ['back'])}`)) === 1);
    const n = received('kept');
    assert.deepEqual((await rpc(b, call('kept', ['back'], 2))).json.result, { m: 'kept', p: ['back'] });
    assert.equal(received('kept'), n, 'B answered from Redis');

    // A GET that Redis will not answer before the stop: the stop answers the call and exits 0.
    const c = await gateway('c', redisPort, { timeout: '20s', args: ['--drain', '100ms'] });
    try {
        await waitFor('C connected', async () => (await metric(c, 'jrpc_redis_up')) === 1);
        await redisStop(redis);
        const pending = rpc(c, call('kept', ['held'], 1), { timeout: 10_000 }).catch((e) => e);
        await waitFor('the call waits for Redis', async () => (await metric(c, 'jrpc_calls_in_flight')) === 1);
        await c.stop();
        // The engine answers it at the end of the drain; the GET's late end changes nothing.
        const r = await pending;
        assert.deepEqual(r.json?.error, { code: -32000, message: 'server shutting down' }, String(r));
    } finally {
        await c.kill();
    }
    await redisKill(redis);
    redis = null;
    await a.stop();
    await b.stop();
});

test('config: redis = on needs [redis] url (also on a reload); bad values are refused; --check prints the keys', { skip }, async () => {
    const check = (text) => {
        const file = path.join(dir, 'check.ini');
        writeFileSync(file, text);
        return spawnSync(JRPCD, ['--check', '--config', file], { encoding: 'utf8' });
    };
    const base = `[upstream gw]\nurl = http://127.0.0.1:1/\nmethods = *\n`;
    let r = check(`${base}[cache]\nredis = on\n`);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /\[cache\] redis = on needs \[redis\] url/);
    r = check(`${base}[cache]\nredis = yes\n`);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /redis.*"yes" is not on or off/);
    r = check(`${base}[cache]\nredis_max_value = 0\n`);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /redis_max_value.*outside 1 byte to 512MiB/);
    r = check(`[redis]\nurl = redis://127.0.0.1:${await freePort()}\n${base}[cache]\nredis = on\nredis_max_value = 64KiB\n`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\[cache\][^[]*redis = on\nredis_max_value = 65536\n/);

    // A reload cannot turn it on without the running [redis] (that takes a restart).
    const file = path.join(dir, 'reload.ini');
    writeFileSync(file, `[upstream gw]\nurl = ${up.url('/ok')}\nmethods = *\n`);
    const srv = await startServer(['--config', file, '--io-threads', '1']);
    try {
        writeFileSync(file, `[upstream gw]\nurl = ${up.url('/ok')}\nmethods = *\n[cache]\nredis = on\n`);
        srv.proc.kill('SIGHUP');
        await waitFor('the reload refused', () =>
            /reload refused: \[cache\] redis = on needs \[redis\] url, which takes a restart/.test(srv.stderr()));
        await healthy(srv);
        await srv.stop();
    } finally {
        await srv.kill();
    }
});
