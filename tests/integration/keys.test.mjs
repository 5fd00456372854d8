// SPDX-License-Identifier: MIT
// API keys, per-call costs and local budgets (issue 13, docs/keys.md): keys in the path (JSON-RPC,
// REST, REST batch, WebSocket) and in both headers; 401 for a missing or unknown key; methods
// outside a key's allowance refused per item; per-item admission in request order with -32005
// and retry_after_ms; a single call over budget is a 429 with Retry-After; costs; anonymous
// per-address budgets, also through a trusted proxy; SIGHUP changes keys in the config and the
// keys_file; exact metrics for a known workload; the access log names keys, never secrets.
// Budgets use rate 1/s with an exact burst, and every bucket is first used by the request that
// the assertion is about, so refill cannot change an outcome (where a later request depends on
// elapsed time, the allowed range is computed from it).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, rpc, call, batch, assertError, assertResult, RPC_PATH, HttpConn, buildRequest, decorate } from './lib.mjs';
import { WsClient, RawWs, waitFor } from './wslib.mjs';

const BOUND_MS = 10_000;
const ALICE = 'alice-secret-0123456789';
const BOB = 'bob-secret-0123456789ab';
const CAROL = 'carol-secret-0123456789';

/** A config file in a fresh directory (plus other files): { dir, file }. */
function writeConfig(text, others = {}) {
    const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-keys-'));
    const file = path.join(dir, 'jrpcd.ini');
    writeFileSync(file, text);
    for (const [name, body] of Object.entries(others)) writeFileSync(path.join(dir, name), body);
    return { dir, file };
}

/** Starts jrpcd with `ini`, runs fn(server, dir), checks it still answers with `healthKey`
 * (null: without a key), and stops it. */
async function withKeys(ini, fn, { args = [], others = {}, healthKey = ALICE } = {}) {
    const { dir, file } = writeConfig(ini, others);
    const srv = await startServer(['--config', file, ...args]);
    try {
        await fn(srv, dir);
        const r = await rpc(srv, call('tennis@ping', undefined, 'health'),
            { headers: healthKey ? { 'X-API-Key': healthKey } : {} });
        assert.equal(r.status, 200, `health: ${r.body}`);
        assertResult(r.json, 'pong', 'health');
        await srv.stop();
    } finally {
        await srv.kill();
        rmSync(dir, { recursive: true, force: true });
    }
}

const pings = (n, tag = 'p') => batch(Array.from({ length: n }, (_, i) => call('tennis@ping', undefined, `${tag}${i}`)));

/** Items of a batch answer: how many results, and the refused ones' ids in order. */
function split(json) {
    const ok = json.filter((x) => 'result' in x);
    const refused = json.filter((x) => x.error && x.error.code === -32005);
    return { ok, refused };
}

test('keys in the path and in both headers; 401 for missing and unknown keys', async () => {
    const ini = `[auth]\nrequired = on\npath_prefix = /v2\n[key alice]\nsecret = ${ALICE}\n`;
    await withKeys(ini, async (srv) => {
        const ping = call('tennis@ping', undefined, 1);
        // JSON-RPC at <prefix>/<key>, and with a trailing slash.
        for (const p of [`/v2/${ALICE}`, `/v2/${ALICE}/`]) {
            const r = await rpc(srv, ping, { path: p });
            assert.equal(r.status, 200, `${p}: ${r.body}`);
            assertResult(r.json, 'pong', 1);
        }
        // REST and REST batch under the key.
        let r = await rpc(srv, '', { path: `/v2/${ALICE}/rest/tennis@ping` });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.json, 'pong');
        r = await rpc(srv, '[null, null, null]', { path: `/v2/${ALICE}/rest/tennis@ping/batch` });
        assert.equal(r.status, 200, r.body);
        assert.deepEqual(r.json, ['pong', 'pong', 'pong']);
        // Both headers on the plain RPC path.
        for (const headers of [{ Authorization: `Bearer ${ALICE}` }, { 'X-API-Key': ALICE }]) {
            r = await rpc(srv, ping, { headers });
            assert.equal(r.status, 200, `${JSON.stringify(headers)}: ${r.body}`);
            assertResult(r.json, 'pong', 1);
        }
        // WebSocket upgrade at <prefix>/<key>.
        const ws = await WsClient.open(srv, { path: `/v2/${ALICE}` });
        await ws.send(pings(3, 'w'));
        const wsAns = await ws.nextJson();
        assert.deepEqual(wsAns.map((x) => x.result), ['pong', 'pong', 'pong']);
        ws.close();

        // Missing: the plain path, a wrong scheme, REST. Unknown: path, both headers.
        const refused = [
            [RPC_PATH, {}, 'API key required'],
            [RPC_PATH, { Authorization: `Basic ${ALICE}` }, 'unknown API key'],
            ['/rest/tennis@ping', {}, 'API key required'],
            ['/v2/not-a-key-of-anyone-123', {}, 'unknown API key'],
            [RPC_PATH, { Authorization: 'Bearer not-a-key-of-anyone-123' }, 'unknown API key'],
            [RPC_PATH, { 'X-API-Key': 'not-a-key-of-anyone-123' }, 'unknown API key'],
        ];
        for (const [p, headers, msg] of refused) {
            r = await rpc(srv, ping, { path: p, headers });
            assert.equal(r.status, 401, `${p} ${JSON.stringify(headers)}: ${r.body}`);
            assert.match(r.headers['www-authenticate'], /^Bearer/);
            const body = p.startsWith('/rest') ? { jsonrpc: '2.0', ...r.json, id: null } : r.json;
            assertError(body, -32001, null);
            assert.ok(body.error.message.startsWith(msg), r.body);
        }
        // A WebSocket upgrade without a key is refused before upgrading.
        const raw = await RawWs.open(srv, { expectStatus: 401 });
        assert.equal(raw.response.status, 401);
        raw.close();

        // Refused before routing (a malformed header): the key in its URL is not logged either.
        r = await rpc(srv, ping, { path: `/v2/${ALICE}`, headers: [['Bad Header', 'x']] });
        assert.equal(r.status, 400, r.body);
        await waitFor(() => /"POST \/v2\/[^"]*" 400 /.test(srv.stderr()),
            { timeout: BOUND_MS, what: 'the 400 line' });

        // The access log names the key, never a secret (not even an unknown one).
        await waitFor(() => /key=alice/.test(srv.stderr()), { timeout: BOUND_MS, what: 'key=alice' });
        await waitFor(() => /websocket message items=3 key=alice /.test(srv.stderr()),
            { timeout: BOUND_MS, what: 'the WebSocket line names the key' });
        assert.ok(/key=\?[0-9a-f]{6}/.test(srv.stderr()), 'unknown key marked');
        assert.ok(!srv.stderr().includes(ALICE), 'a secret reached the log');
        assert.ok(!srv.stderr().includes('not-a-key-of-anyone'), 'an unknown secret reached the log');
        assert.ok(srv.stderr().includes('/v2/***'), 'the key in the path is masked');
    });
});

test('per-item admission: budget 7, batch of 10 → 7 results then 3 × -32005, in order', async () => {
    const ini = `[auth]\npath_prefix = /v2\n[key alice]\nsecret = ${ALICE}\nrate = 1/s\nburst = 7\n`;
    await withKeys(ini, async (srv) => {
        const r = await rpc(srv, pings(10), { path: `/v2/${ALICE}` });
        assert.equal(r.status, 200, r.body); // batches stay 200
        assert.equal(r.json.length, 10);
        for (let i = 0; i < 7; i++) assertResult(r.json[i], 'pong', `p${i}`);
        for (let i = 7; i < 10; i++) {
            assertError(r.json[i], -32005, `p${i}`);
            const ms = r.json[i].error.data.retry_after_ms;
            assert.ok(Number.isInteger(ms) && ms > 0 && ms <= 1000, r.body); // 1 unit at 1/s
        }
    }, { args: ['--max-batch', '100'], healthKey: null });
});

test('a single call over budget is HTTP 429 with Retry-After; WebSocket gets the item error', async () => {
    const ini = `[auth]\n[key alice]\nsecret = ${ALICE}\nrate = 1/s\nburst = 1\n` +
        `[key bob]\nsecret = ${BOB}\nrate = 1/s\nburst = 2\n`;
    await withKeys(ini, async (srv) => {
        const h = { headers: { 'X-API-Key': ALICE } };
        const t0 = Date.now();
        let r = await rpc(srv, call('tennis@ping', undefined, 1), h);
        assert.equal(r.status, 200, r.body);
        r = await rpc(srv, call('tennis@ping', undefined, 2), h);
        const elapsed = Date.now() - t0;
        if (elapsed < 1000) { // a second refills the unit: only then can the outcome differ
            assert.equal(r.status, 429, r.body);
            assert.equal(r.headers['retry-after'], '1');
            assertError(r.json, -32005, 2);
            assert.ok(r.json.error.data.retry_after_ms > 0 && r.json.error.data.retry_after_ms <= 1000);
        }
        // REST single call: 429 too.
        if (Date.now() - t0 < 1000) {
            r = await rpc(srv, '', { path: '/rest/tennis@ping', headers: { 'X-API-Key': ALICE } });
            assert.equal(r.status, 429, r.body);
            assert.equal(r.headers['retry-after'], '1');
        }
        // Over WebSocket: bob's budget of 2, a batch of 3 → 2 results and one -32005.
        const ws = await WsClient.open(srv, { options: { headers: { 'X-API-Key': BOB } } });
        await ws.send(pings(3, 'b'));
        const ans = await ws.nextJson();
        assert.deepEqual(ans.map((x) => x.result ?? x.error.code), ['pong', 'pong', -32005]);
        ws.close();
    }, { healthKey: null });
});

test('costs: a 75-unit method spends 75, a free one nothing; metrics exact', async () => {
    const ini = `[admin]\nlisten = 127.0.0.1:0\n[auth]\n[key costs]\nsecret = ${ALICE}\nrate = 1/s\nburst = 100\n` +
        `[key plain]\nsecret = ${BOB}\n[cost]\ntest.echo = 75\ntennis@* = 0\n`;
    await withKeys(ini, async (srv) => {
        // 75 + 3 × 0 + 25 × 1 = 100 = the burst: the 30th item (1 unit) no longer fits.
        const items = [call('test.echo', [1], 'e')];
        for (let i = 0; i < 3; i++) items.push(call('tennis@ping', undefined, `f${i}`));
        for (let i = 0; i < 26; i++) items.push(call('test.worker_echo', [i], `c${i}`));
        const r = await rpc(srv, batch(items), { headers: { Authorization: `Bearer ${ALICE}` } });
        assert.equal(r.status, 200, r.body);
        const { ok, refused } = split(r.json);
        assert.equal(ok.length, 29, r.body);
        assert.deepEqual(refused.map((x) => x.id), ['c25']);
        // A second echo (75) does not fit what is left (0 + refill < 75 for a minute).
        const again = await rpc(srv, call('test.echo', [2], 'e2'), { headers: { 'X-API-Key': ALICE } });
        assert.equal(again.status, 429, again.body);
        // A method outside no allowance on a key without budget: counted, never refused.
        await rpc(srv, pings(4), { headers: { 'X-API-Key': BOB } });

        const m = /jrpcd admin listening on (\S+):(\d+)/.exec(srv.stdout());
        const admin = { host: m[1], port: Number(m[2]) };
        const text = (await rpc(admin, undefined, { method: 'GET', path: '/metrics' })).body;
        const sample = (s) => {
            const line = text.split('\n').find((l) => l.startsWith(`${s} `));
            return line === undefined ? undefined : Number(line.slice(s.length + 1));
        };
        assert.equal(sample('jrpc_key_calls_total{key="costs"}'), 29, text);
        assert.equal(sample('jrpc_key_units_total{key="costs"}'), 100, text);
        assert.equal(sample('jrpc_key_rejections_total{key="costs",reason="budget"}'), 2, text);
        assert.equal(sample('jrpc_key_rejections_total{key="costs",reason="method"}'), 0, text);
        assert.equal(sample('jrpc_key_calls_total{key="plain"}'), 4, text);
        assert.equal(sample('jrpc_key_units_total{key="plain"}'), 0, text);
        assert.equal(sample('jrpc_key_calls_total{key="(anonymous)"}'), 0, text);
        assert.equal(sample('jrpc_auth_rejections_total{reason="unknown"}'), 0, text);
        assert.ok(!text.includes(ALICE) && !text.includes(BOB), 'a secret in the metrics');
    }, { healthKey: BOB });
});

test('methods outside a key\'s allowance are refused per item, the others run', async () => {
    const ini = `[auth]\nrequired = on\n[key alice]\nsecret = ${ALICE}\nmethods = tennis@*, test.*\n` +
        `deny = test.fail\n[key bob]\nsecret = ${BOB}\nmax_batch = 2\n` +
        `[key carol]\nsecret = ${CAROL}\norigins = https://app.example\n`;
    await withKeys(ini, async (srv) => {
        const body = batch([call('tennis@ping', undefined, 1), call('subtract', [3, 1], 2),
            call('test.fail', undefined, 3), call('test.echo', ['x'], 4)]);
        const r = await rpc(srv, body, { headers: { 'X-API-Key': ALICE } });
        assert.equal(r.status, 200, r.body);
        assertResult(r.json[0], 'pong', 1);
        assertError(r.json[1], -32601, 2);
        assert.match(r.json[1].error.message, /not allowed for this API key/);
        assertError(r.json[2], -32601, 3);
        assertResult(r.json[3], ['x'], 4);
        // bob's batch cap is 2.
        const b = await rpc(srv, pings(3), { headers: { 'X-API-Key': BOB } });
        assert.equal(b.json.length, 3, b.body);
        for (const item of b.json) assertError(item, -32005);
        // carol's origins replace cors_origins (none here) for requests with her key.
        const page = { Origin: 'https://app.example' };
        const c = await rpc(srv, call('tennis@ping', undefined, 1), { headers: { ...page, 'X-API-Key': CAROL } });
        assert.equal(c.status, 200, c.body);
        assert.equal(c.headers['access-control-allow-origin'], 'https://app.example');
        const other = await rpc(srv, call('tennis@ping', undefined, 1),
            { headers: { Origin: 'https://evil.example', 'X-API-Key': CAROL } });
        assert.equal(other.status, 403, other.body);
        const alice = await rpc(srv, call('tennis@ping', undefined, 1), { headers: { ...page, 'X-API-Key': ALICE } });
        assert.equal(alice.status, 403, alice.body);
        // A preflight carries no key: allowed for an origin some key names, with the headers a
        // key comes in; not for another origin.
        const pre = await rpc(srv, undefined, { method: 'OPTIONS',
            headers: { ...page, 'Access-Control-Request-Method': 'POST' } });
        assert.equal(pre.status, 204, pre.body);
        assert.equal(pre.headers['access-control-allow-origin'], 'https://app.example');
        assert.match(pre.headers['access-control-allow-headers'], /Authorization, X-API-Key/);
        const preOther = await rpc(srv, undefined, { method: 'OPTIONS',
            headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' } });
        assert.equal(preOther.status, 403, preOther.body);
    });
});

test('anonymous clients: a budget per address, also behind a trusted proxy', async () => {
    const ini = `[auth]\nanonymous_rate = 1/s\nanonymous_burst = 3\n[key alice]\nsecret = ${ALICE}\n`;
    await withKeys(ini, async (srv) => {
        const xff = (a) => ({ headers: { 'X-Forwarded-For': a } });
        const t0 = Date.now();
        let r = await rpc(srv, pings(5), xff('203.0.113.7'));
        assert.equal(split(r.json).ok.length, 3, r.body);
        // Another forwarded client has a budget of its own.
        r = await rpc(srv, pings(5), xff('203.0.113.8'));
        assert.equal(split(r.json).ok.length, 3, r.body);
        // The first one again: only what refilled since (1 unit a second).
        r = await rpc(srv, pings(5), xff('203.0.113.7'));
        const allowed = Math.floor((Date.now() - t0) / 1000);
        assert.ok(split(r.json).ok.length <= Math.min(3, allowed), `${allowed}: ${r.body}`);
        // The proxy's own requests (no X-Forwarded-For) are the proxy's address.
        r = await rpc(srv, pings(5));
        assert.equal(split(r.json).ok.length, 3, r.body);
        // A key is not anonymous: no such limit.
        r = await rpc(srv, pings(5), { headers: { 'X-API-Key': ALICE } });
        assert.equal(split(r.json).ok.length, 5, r.body);
    }, { args: ['--trusted-proxies', '127.0.0.1'] });
});

test('SIGHUP: keys added, removed and changed in the config and the keys_file apply at once', async () => {
    const conf = (aliceSecret) => `[auth]\nrequired = on\nkeys_file = more-keys.ini\n` +
        `[key alice]\nsecret = ${aliceSecret}\n`;
    const ALICE2 = 'alice-new-secret-98765';
    const { dir, file } = writeConfig(conf(ALICE), { 'more-keys.ini': `[key bob]\nsecret = ${BOB}\n` });
    const srv = await startServer(['--config', file]);
    try {
        const status = async (key) => (await rpc(srv, call('tennis@ping', undefined, 1),
            { headers: { 'X-API-Key': key } })).status;
        assert.equal(await status(ALICE), 200);
        assert.equal(await status(BOB), 200);
        assert.equal(await status(CAROL), 401);

        writeFileSync(file, conf(ALICE2));
        writeFileSync(path.join(dir, 'more-keys.ini'), `[key carol]\nsecret = ${CAROL}\n`);
        const reloads = () => (srv.stderr().match(/reloaded: /g) ?? []).length;
        srv.proc.kill('SIGHUP');
        await waitFor(() => reloads() === 1, { timeout: BOUND_MS, what: 'the reload' });
        assert.equal(await status(ALICE), 401);
        assert.equal(await status(ALICE2), 200);
        assert.equal(await status(BOB), 401);
        assert.equal(await status(CAROL), 200);

        // A broken keys_file is refused and the keys stay as they were.
        writeFileSync(path.join(dir, 'more-keys.ini'), `[key dave]\nsecret = short\n`);
        srv.proc.kill('SIGHUP');
        await waitFor(() => /reload refused: .*more-keys.ini:2: \[key dave\]/.test(srv.stderr()),
            { timeout: BOUND_MS, what: 'the refusal' });
        assert.equal(await status(CAROL), 200);
        await srv.stop();
    } finally {
        await srv.kill();
        rmSync(dir, { recursive: true, force: true });
    }
});

test('one connection, several keys: each request is judged by the key it presents', async () => {
    // jrpcd remembers the key a connection presented last (a client sends the same one request
    // after request): a different key, a near miss of it (one byte changed, one short, one long)
    // and a key removed by a reload must each still be judged on their own.
    const conf = (aliceSecret) => `[auth]\nrequired = on\npath_prefix = /v2\n` +
        `[key alice]\nsecret = ${aliceSecret}\nmethods = tennis@*\n[key bob]\nsecret = ${BOB}\ndeny = tennis@*\n`;
    const { dir, file } = writeConfig(conf(ALICE));
    const srv = await startServer(['--config', file]);
    const conns = [];
    try {
        const send = async (conn, key, how) => {
            const opts = how === 'path' ? { path: `/v2/${key}` } : { headers: { 'X-API-Key': key } };
            await conn.write(buildRequest(srv, { ...opts, body: call('tennis@ping', undefined, 1) }));
            return decorate(await conn.readResponse());
        };
        const open = async () => {
            const conn = await HttpConn.open(srv);
            conns.push(conn);
            return conn;
        };
        const last = ALICE.at(-1) === 'x' ? 'y' : 'x';
        const nearMisses = [ALICE.slice(0, -1) + last, ALICE.slice(0, -1), ALICE + last,
            last + ALICE.slice(1)];
        for (const how of ['path', 'header']) {
            const conn = await open();
            let r = await send(conn, ALICE, how);
            assert.equal(r.status, 200, r.body);
            assertResult(r.json, 'pong', 1);
            r = await send(conn, BOB, how); // bob may not call tennis@*: per item
            assert.equal(r.status, 200, r.body);
            assertError(r.json, -32601, 1);
            r = await send(conn, ALICE, how);
            assertResult(r.json, 'pong', 1);
            for (const miss of nearMisses) {
                const c = await open();
                assertResult((await send(c, ALICE, how)).json, 'pong', 1);
                r = await send(c, miss, how);
                assert.equal(r.status, 401, `${how} ${miss}: ${r.body}`);
            }
        }
        // A reload changes alice's secret: the old one is refused on a connection that used it.
        const conn = await open();
        assertResult((await send(conn, ALICE, 'header')).json, 'pong', 1);
        writeFileSync(file, conf('alice-new-secret-98765'));
        srv.proc.kill('SIGHUP');
        await waitFor(() => /reloaded: /.test(srv.stderr()), { timeout: BOUND_MS, what: 'the reload' });
        assert.equal((await send(conn, ALICE, 'header')).status, 401);
        await srv.stop();
    } finally {
        for (const c of conns) c.close();
        await srv.kill();
        rmSync(dir, { recursive: true, force: true });
    }
});

test('bad key settings stop jrpcd --check with FILE:LINE', async () => {
    const { spawnSync } = await import('node:child_process');
    const { JRPCD } = await import('./lib.mjs');
    const cases = [
        [`[key a]\nsecret = short\n`, /jrpcd.ini:2: \[key a\]: a key's secret must be 16 to 128/],
        [`[key a]\nrate = 5/m\nsecret = ${ALICE}\n`, /jrpcd.ini:2: \[key a\] rate: .*units per second/],
        [`[key a]\nsecret = ${ALICE}\n[key b]\nsecret = ${ALICE}\n`, /has the secret of \[key a\]/],
        [`[cost]\ndebug_*x = 3\n`, /jrpcd.ini:2: \[cost\] debug_\*x: '\*' may only end a pattern/],
        [`[auth]\npath_prefix = v2\n`, /path_prefix must start with \//],
        [`[auth]\nrequired = on\nrequired = off\n`, /jrpcd.ini:3: \[auth\] required: already set/],
        [`[key a]\nsecret = ${ALICE}\nrate = 1\nrate = 2\n`, /jrpcd.ini:4: \[key a\] rate: rate is already set/],
        [`[auth]\nkeys_file = missing.ini\n`, /cannot read keys_file .*missing.ini/],
        [`[key a]\nsecret = ${ALICE}\nmax_batch = 5000\n`, /max_batch 5000 is above \[server\] max_batch 1000/],
    ];
    for (const [ini, re] of cases) {
        const { dir, file } = writeConfig(ini);
        const r = spawnSync(JRPCD, ['--config', file, '--check'], { encoding: 'utf8' });
        rmSync(dir, { recursive: true, force: true });
        assert.notEqual(r.status, 0, ini);
        assert.match(r.stderr, re, ini);
    }
    // A valid one prints the keys with the secret hidden.
    const { dir, file } = writeConfig(`[key a]\nsecret = ${ALICE}\nrate = 330/s\n`);
    const r = spawnSync(JRPCD, ['--config', file, '--check'], { encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\[key a\]\nsecret = \(hidden, 23 characters\)\nrate = 330\/s\nburst = 330\n/);
    assert.ok(!r.stdout.includes(ALICE));
});
