// SPDX-License-Identifier: MIT
// Live reload of [upstream] sections (docs/gateway.md#reload): SIGHUP moving an upstream from URL A
// to URL B under continuous calls fails no call, sends every call made after the reload was logged
// to B and none to A, lets a call held in flight at A finish there, and closes jrpcd's
// connections to A once they are idle; /metrics follows the new URL set. A changed timeout and
// header are what the upstream sees next. A section the library refuses refuses the whole reload
// and the old one keeps serving; changed methods are logged as needing a restart while the rest
// of the section applies. The upstreams are upstream-fault.mjs servers (/gate holds a request
// whose call is named "held" until the test opens it). No sleeps: every wait is for a condition.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, healthy, rpc, call, batch, HttpConn, buildRequest, decorate, scrapeAdmin } from './lib.mjs';
import { waitFor } from './wslib.mjs';
import { startFaultServer } from './upstream-fault.mjs';

const BOUND_MS = 10_000; // generous bound for any condition (ASan builds are slow)

const cleanups = [];
after(async () => {
    for (const c of cleanups.reverse()) await c();
});

/** jrpcd on a config file the test rewrites; `lines()` holds every reload-related log line
 * (collected from the stream itself: the server's kept stderr is cut under load). */
async function gateway(ini, args = []) {
    const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-upreload-'));
    const file = path.join(dir, 'jrpcd.ini');
    writeFileSync(file, ini);
    const srv = await startServer(['--config', file, '--admin-listen', '127.0.0.1:0', ...args]);
    cleanups.push(async () => { await srv.kill(); rmSync(dir, { recursive: true, force: true }); });
    let partial = '';
    const kept = [];
    srv.proc.stderr.on('data', (d) => {
        const parts = (partial + d).split('\n');
        partial = parts.pop();
        for (const l of parts) if (/reload|SIGHUP/.test(l)) kept.push(l);
    });
    srv.lines = () => kept;
    srv.reload = async (text, until) => {
        const from = kept.length;
        writeFileSync(file, text);
        srv.proc.kill('SIGHUP');
        await waitFor(() => kept.slice(from).some((l) => until.test(l)),
            { timeout: BOUND_MS, what: `${until} after SIGHUP; got:\n${kept.slice(from).join('\n')}` });
        return kept.slice(from);
    };
    return srv;
}

async function faultServer() {
    const f = await startFaultServer();
    cleanups.push(() => f.close());
    return f;
}

const scrape = scrapeAdmin;

const upSeries = (samples) => [...samples.keys()].filter((k) => k.startsWith('jrpc_upstream_up{')).sort();
const hostOf = (f) => `http://127.0.0.1:${f.port}`;
const section = (keys) => '[upstream gw]\n' + Object.entries(keys).map(([k, v]) => `${k} = ${v}\n`).join('');
const methodsAt = (f) => f.requests.flatMap((r) => r.methods);

test('SIGHUP moves an upstream from A to B under load: 0 failed calls, A gets none after the reload', async () => {
    const a = await faultServer(), b = await faultServer();
    const base = { methods: 'rl_* held', timeout: '10s', retries: 0 };
    const srv = await gateway(section({ ...base, url: a.url('/gate'), header: 'X-Version: 1' }), ['--io-threads', '2']);
    assert.deepEqual(upSeries(await scrape(srv)), [`jrpc_upstream_up{upstream="gw",url="${hostOf(a)}"}`]);

    // A batch held in flight at A across the reload: it must finish there.
    const heldAnswer = rpc(srv, batch([call('held', [1], 1), call('held', [2], 2)]));
    await waitFor(() => methodsAt(a).includes('held'), { timeout: BOUND_MS, what: 'the held batch at A' });

    // Continuous calls on keep-alive connections: single calls and batches of three, named after
    // what the client knew when it sent them.
    let reloaded = false, stop = false, sent = 0;
    const failures = [];
    const worker = async (w) => {
        const conn = await HttpConn.open(srv);
        try {
            for (let i = 0; !stop; i++) {
                const m = reloaded ? 'rl_after' : 'rl_before';
                const body = i % 2 ? call(m, [w, i], i) : batch([0, 1, 2].map((k) => call(m, [w, i, k], k)));
                await conn.write(buildRequest(srv, { body }));
                const r = decorate(await conn.readResponse());
                const items = Array.isArray(r.json) ? r.json : [r.json];
                sent += items.length;
                if (r.status !== 200 || items.some((it) => !it || it.error || it.result?.m !== m)) {
                    failures.push(`${r.status} ${r.body}`);
                }
            }
        } finally {
            conn.close();
        }
    };
    const workers = [0, 1, 2, 3].map(worker);
    await waitFor(() => methodsAt(a).filter((m) => m === 'rl_before').length >= 50,
        { timeout: BOUND_MS, what: 'calls reaching A before the reload' });

    const lines = await srv.reload(section({ ...base, url: b.url('/gate'), header: 'X-Version: 2' }),
        /reloaded: /);
    reloaded = true;
    assert.ok(lines.some((l) => /reload: upstream gw: 1 URL, .*new calls use these/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /1 \[upstream\] section changed/.test(l)), lines.join('\n'));
    assert.ok(!lines.some((l) => /needs a restart/.test(l)), lines.join('\n'));
    await waitFor(() => methodsAt(b).filter((m) => m === 'rl_after').length >= 50,
        { timeout: BOUND_MS, what: 'calls made after the reload reaching B' });
    stop = true;
    await Promise.all(workers);

    assert.deepEqual(failures, [], `${failures.length} failed of ${sent} calls`);
    assert.ok(!methodsAt(a).includes('rl_after'), 'A got a call made after the reload was logged');
    assert.ok(!methodsAt(b).includes('held'));
    // Headers as each version said.
    assert.ok(a.requests.every((r) => r.headers['x-version'] === '1'));
    assert.ok(b.requests.every((r) => r.headers['x-version'] === '2'));

    // The held batch still answers from A, then jrpcd lets go of its connections to A.
    assert.ok(a.connections() > 0, 'connections to A are open while the batch is held');
    a.openGate();
    const held = await heldAnswer;
    assert.equal(held.status, 200, held.body);
    assert.deepEqual(held.json.map((it) => it.result?.m), ['held', 'held'], held.body);
    await waitFor(() => a.connections() === 0, { timeout: BOUND_MS, what: 'jrpcd closing its idle connections to A' });
    assert.ok(b.connections() > 0, 'B keeps its keep-alive connections');

    // Metrics follow the new URL set; A's requests went through its old series, now gone.
    const s = await scrape(srv);
    assert.deepEqual(upSeries(s), [`jrpc_upstream_up{upstream="gw",url="${hostOf(b)}"}`]);
    assert.equal(s.get(`jrpc_upstream_up{upstream="gw",url="${hostOf(b)}"}`), 1);
    assert.equal(s.get(`jrpc_upstream_requests_total{upstream="gw",url="${hostOf(b)}",outcome="ok"}`),
        b.requests.length);
    assert.equal(s.get('jrpc_upstream_items_total{upstream="gw",outcome="failed"}'), 0);
    await healthy(srv);
    await srv.stop();
});

test('a reload changes the timeout and headers the upstream sees next', async () => {
    const u = await faultServer();
    const keys = { url: u.url('/gate'), methods: 'rl_* held', retries: 0 };
    const srv = await gateway(section({ ...keys, timeout: '1h', header: 'X-Key: one' }));
    const first = await rpc(srv, call('rl_ping', [], 1));
    assert.equal(first.json.result?.m, 'rl_ping', first.body);
    assert.equal(u.requests.at(-1).headers['x-key'], 'one');

    await srv.reload(section({ ...keys, timeout: '300ms', header: 'X-Key: two' }), /reloaded: /);
    // The held call now meets the new timeout: jrpcd gives up and closes the request, which the
    // upstream sees end unanswered.
    const r = await rpc(srv, call('held', [], 2));
    assert.equal(r.json.error?.code, -32000, r.body);
    assert.equal(r.json.error.data.cause, 'timeout', r.body);
    assert.equal(r.json.error.data.detail, 'no answer within 300 ms', r.body);
    const rec = u.requests.at(-1);
    assert.deepEqual(rec.methods, ['held']);
    assert.equal(rec.headers['x-key'], 'two');
    await waitFor(() => rec.closed, { timeout: BOUND_MS, what: 'the upstream seeing the request end' });
    assert.equal(rec.answered, false);
    await healthy(srv);
    await srv.stop();
});

test('a section the library refuses refuses the reload; methods changes need a restart', async () => {
    const a = await faultServer(), b = await faultServer();
    const srv = await gateway(section({ url: a.url('/ok'), methods: 'rl_*', header: 'X-Version: 1' }));
    const ping = async (id) => {
        const r = await rpc(srv, call('rl_ping', [], id));
        assert.equal(r.json.result?.m, 'rl_ping', r.body);
    };
    await ping(1);

    // Port 99999 passes jrpcd's own check (a scheme) and not libcurl's URL parser.
    const refused = await srv.reload(section({ url: 'http://127.0.0.1:99999/', methods: 'rl_*', header: 'X-Version: 2' }),
        /reload refused: /);
    assert.ok(refused.some((l) => /reload refused: \[upstream gw\] \(.*\): a URL or header the library refuses; still serving/.test(l)),
        refused.join('\n'));
    const before = a.requests.length;
    await ping(2);
    assert.equal(a.requests.length, before + 1, 'the old URL still serves');
    assert.equal(a.requests.at(-1).headers['x-version'], '1', 'and with the old headers');
    assert.deepEqual(upSeries(await scrape(srv)), [`jrpc_upstream_up{upstream="gw",url="${hostOf(a)}"}`]);

    // Methods and sections are the server's method table: kept, said so; the URL still moves.
    const lines = await srv.reload(section({ url: b.url('/ok'), methods: 'rl_* x_*' }) +
        '[upstream other]\nurl = http://127.0.0.1:9/\nmethods = other_*\n[batch]\ndeny = rl_nobatch\n',
        /reloaded: /);
    assert.ok(!lines.some((l) => /\[batch\] deny changed/.test(l)), `[batch] deny applies live:\n${lines.join('\n')}`);
    assert.ok(lines.some((l) => /\[upstream gw\] methods changed: needs a restart/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /\[upstream other\] added: needs a restart/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /reload: upstream gw: 1 URL/.test(l)), lines.join('\n'));
    await ping(3);
    assert.equal(b.requests.length, 1);
    const x = await rpc(srv, call('x_new', [], 4));
    assert.equal(x.json.error?.code, -32601, x.body);

    // Reloading the same file again changes nothing more.
    const again = await srv.reload(section({ url: b.url('/ok'), methods: 'rl_* x_*' }) +
        '[upstream other]\nurl = http://127.0.0.1:9/\nmethods = other_*\n[batch]\ndeny = rl_nobatch\n',
        /reloaded: /);
    assert.ok(again.some((l) => /0 \[upstream\] sections changed/.test(l)), again.join('\n'));
    await healthy(srv);
    await srv.stop();
});

test('reload twice with a call held at the first URL: idle old connections go without traffic; stop answers the held call', async () => {
    const a = await faultServer(), b = await faultServer(), c = await faultServer();
    const keys = (u) => section({ url: u.url('/gate'), methods: 'rl_* held', timeout: '1h', retries: 0 });
    const srv = await gateway(keys(a), ['--io-threads', '2', '--drain', '200ms']);
    const held = rpc(srv, call('held', [], 1));
    await waitFor(() => methodsAt(a).includes('held'), { timeout: BOUND_MS, what: 'the held call at A' });

    await srv.reload(keys(b), /reloaded: /);
    const viaB = await rpc(srv, call('rl_ping', [], 2));
    assert.equal(viaB.json.result?.m, 'rl_ping', viaB.body);
    assert.deepEqual(methodsAt(b), ['rl_ping']);
    assert.ok(b.connections() > 0);

    // No call after this reload: B's client is idle, and the reload itself makes it let go.
    await srv.reload(keys(c), /reloaded: /);
    await waitFor(() => b.connections() === 0, { timeout: BOUND_MS, what: 'jrpcd closing its idle connections to B' });
    assert.ok(a.connections() > 0, 'A still holds the call in flight');
    const viaC = await rpc(srv, call('rl_ping', [], 3));
    assert.equal(viaC.json.result?.m, 'rl_ping', viaC.body);
    assert.deepEqual(methodsAt(c), ['rl_ping']);
    assert.equal(c.requests[0].path, '/gate');

    // SIGTERM: the call still held by the oldest client is answered, and jrpcd exits 0.
    await srv.stop();
    const r = await held;
    assert.equal(r.json.error?.code, -32000, r.body);
    assert.match(r.json.error.message, /shutting down/, r.body);
});
