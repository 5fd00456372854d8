// SPDX-License-Identifier: MIT
// Active health (docs/gateway.md#health-probes): probe = eth_blockNumber every probe_interval to
// each URL of an upstream; a URL more than max_lag blocks behind the best leaves the rotation (no
// call reaches it) and comes back once it catches up; a URL whose probe fails is down until a
// probe succeeds, and /ready names the upstream while none of its URLs is left; a reload moves the
// probes to the new URLs, and a probe left hanging does not hold up a stop. The series pass
// promtool. The nodes are toy nodes (toy-node.mjs) whose block number and probe answers the test
// sets; every wait is for a condition.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, scrapeAdmin, rpc, JRPCD } from './lib.mjs';
import { startGateway, post } from './gateway-lib.mjs';
import { waitFor } from './wslib.mjs';
import { startToyNode } from './toy-node.mjs';
import { startFaultServer } from './upstream-fault.mjs';

const BOUND_MS = 10_000;
const cleanups = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

async function nodes(...names) {
    const out = [];
    for (const n of names) {
        const node = await startToyNode(n);
        cleanups.push(() => node.close());
        out.push(node);
    }
    return out;
}

const probeKeys = { methods: 'eth_*', probe: 'eth_blockNumber', probe_interval: '100ms', max_lag: 5 };
const upOf = (s, n) => s.get(`jrpc_upstream_up{upstream="gw",url="${n.host}"}`);
const series = (s, name, n) => s.get(`${name}{upstream="gw",url="${n.host}"}`);

/** Waits until a scrape satisfies cond; returns it. */
const scrapeUntil = (gw, cond, what) => waitFor(async () => {
    const s = await scrapeAdmin(gw);
    return cond(s) ? s : null;
}, { timeout: BOUND_MS, what });

/** n distinct reads through gw; resolves the nodes that answered them. */
async function reads(gw, n, tag) {
    const r = await post(gw.url, Array.from({ length: n },
        (_, i) => ({ jsonrpc: '2.0', id: i, method: 'eth_getBalance', params: [`0x${tag}${i}`, 'latest'] })));
    assert.equal(r.json?.length, n, r.text);
    return r.json.map((x) => x.result?.node);
}

test('a URL lagging more than max_lag blocks leaves the rotation and comes back once it catches up', async () => {
    const [a, b] = await nodes('a', 'b');
    // url lines: one priority, so both URLs share the calls while both are in rotation.
    const gw = await startGateway({ gw: { url: [a.url, b.url], ...probeKeys, max_batch: 1 } },
        { args: ['--admin-listen', '127.0.0.1:0'] });
    cleanups.push(() => gw.kill());
    await scrapeUntil(gw, (s) => series(s, 'jrpc_upstream_probe_up', a) === 1 && series(s, 'jrpc_upstream_probe_up', b) === 1,
        'both URLs probed');
    assert.deepEqual(new Set(await reads(gw, 6, 'a')), new Set(['a', 'b']), 'both in rotation');

    b.block = 90; // 10 behind a, max_lag 5
    let s = await scrapeUntil(gw, (x) => upOf(x, b) === 0, 'b out of rotation');
    assert.equal(series(s, 'jrpc_upstream_lag_blocks', b), 10);
    assert.equal(series(s, 'jrpc_upstream_block_number', b), 90);
    assert.equal(series(s, 'jrpc_upstream_lag_blocks', a), 0);
    assert.equal(series(s, 'jrpc_upstream_probe_up', b), 0);
    const atB = b.calls().length;
    assert.deepEqual(new Set(await reads(gw, 6, 'b')), new Set(['a']));
    assert.equal(b.calls().length, atB, 'no call reached the lagging URL');

    // b catches up to within max_lag: back in rotation.
    b.block = 96;
    s = await scrapeUntil(gw, (x) => upOf(x, b) === 1, 'b back');
    assert.equal(series(s, 'jrpc_upstream_lag_blocks', b), 4);
    assert.deepEqual(new Set(await reads(gw, 6, 'c')), new Set(['a', 'b']), 'both in rotation again');

    // The best URL is the best of those whose probe succeeds: a failing, b leads alone.
    a.failProbe = true;
    s = await scrapeUntil(gw, (x) => upOf(x, a) === 0 && series(x, 'jrpc_upstream_lag_blocks', b) === 0, 'a out, b the best');
    assert.deepEqual(new Set(await reads(gw, 6, 'd')), new Set(['b']));
    await gw.stop();
});

test('failing probes take every URL out: /ready names the upstream until one answers again; promtool accepts the series', async () => {
    const [a, b] = await nodes('a', 'b');
    const gw = await startGateway({ gw: { url: [a.url, b.url], ...probeKeys } },
        { args: ['--admin-listen', '127.0.0.1:0'] });
    cleanups.push(() => gw.kill());
    const ready = async () => {
        const r = await rpc(gw, undefined, { method: 'GET', path: '/ready' });
        return { status: r.status, json: JSON.parse(r.body) };
    };
    await scrapeUntil(gw, (s) => series(s, 'jrpc_upstream_probe_up', a) === 1, 'a probed');
    assert.equal((await ready()).status, 200);
    a.failProbe = b.failProbe = true;
    await scrapeUntil(gw, (s) => upOf(s, a) === 0 && upOf(s, b) === 0, 'both out');
    assert.deepEqual(await ready(), { status: 503, json: { status: 'unavailable', upstreams_down: ['gw'] } });
    b.failProbe = false;
    await scrapeUntil(gw, (s) => upOf(s, b) === 1, 'b back');
    assert.equal((await ready()).status, 200);

    const m = /jrpcd admin listening on (\S+):(\d+)/.exec(gw.stdout());
    const text = (await rpc({ host: m[1], port: Number(m[2]) }, undefined, { method: 'GET', path: '/metrics' })).body;
    assert.match(text, /# TYPE jrpc_upstream_lag_blocks gauge/);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    await gw.stop(); // exit 0 within the bound: the probes' timer did not hold the loop
});

test('a probe in flight to a URL that never answers does not hold up a stop', async () => {
    const f = await startFaultServer();
    cleanups.push(() => f.close());
    const gw = await startGateway({ gw: { urls: f.url('/hang'), methods: 'eth_*', probe: 'eth_blockNumber', probe_interval: '100ms', timeout: '1h' } });
    cleanups.push(() => gw.kill());
    await waitFor(() => f.requests.some((r) => r.methods.includes('eth_blockNumber')), { timeout: BOUND_MS, what: 'a probe at /hang' });
    await gw.stop(); // exit 0 within the bound, the probe cut
    await waitFor(() => f.requests.every((r) => r.closed), { timeout: BOUND_MS, what: 'the probe\'s connection closed' });
});

test('a URL that takes the probe and never answers is out after probe_timeout, not the calls\' timeout', async () => {
    const f = await startFaultServer();
    cleanups.push(() => f.close());
    const [a] = await nodes('a');
    const hang = { host: `http://127.0.0.1:${f.port}` }; // the metrics' url label: no path
    const probes = () => f.requests.filter((r) => r.methods.includes('eth_blockNumber')).length;
    // The default (the smaller of timeout and probe_interval: 100 ms here), and an explicit
    // probe_timeout with rounds far apart: without it, timeout 1h would keep the probe waiting.
    for (const keys of [{ probe_interval: '100ms' }, { probe_interval: '1h', probe_timeout: '200ms' }]) {
        const before = probes();
        const gw = await startGateway({ gw: { url: [f.url('/hang'), a.url], methods: 'eth_*', probe: 'eth_blockNumber', timeout: '1h', ...keys } },
            { args: ['--admin-listen', '127.0.0.1:0'] });
        cleanups.push(() => gw.kill());
        const s = await scrapeUntil(gw, (x) => series(x, 'jrpc_upstream_probe_up', hang) === 0 && series(x, 'jrpc_upstream_probe_up', a) === 1,
            `the hung URL out (${JSON.stringify(keys)})`);
        assert.equal(upOf(s, hang), 0);
        // Calls go to the URL that answers.
        assert.deepEqual(new Set(await reads(gw, 4, 'ff')), new Set(['a']));
        if (keys.probe_interval === '100ms') // the next rounds probe it again: the first was ended
            await waitFor(() => probes() >= before + 3, { timeout: BOUND_MS, what: 'probes at /hang again' });
        await gw.stop();
    }
});

test('a reload moves the probes to the new URLs: removed ones are probed no more', async () => {
    const [a, b] = await nodes('a', 'b');
    const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-probe-'));
    const file = path.join(dir, 'jrpcd.ini');
    const ini = (url) => `[upstream gw]\nurls = ${url}\nmethods = eth_*\nprobe = eth_blockNumber\nprobe_interval = 100ms\n`;
    writeFileSync(file, ini(a.url));
    // One io loop, holding a call at a across the reload: its client of the old settings stays
    // until the call is answered, and the probes must still take the new settings.
    const srv = await startServer(['--config', file, '--io-threads', '1']);
    cleanups.push(async () => { await srv.kill(); rmSync(dir, { recursive: true, force: true }); });
    await waitFor(() => a.probes() >= 2, { timeout: BOUND_MS, what: 'a probed' });
    assert.equal(b.probes(), 0);
    a.hold = true;
    const heldCall = post(`http://127.0.0.1:${srv.port}${srv.path}`,
        { jsonrpc: '2.0', id: 1, method: 'eth_getBalance', params: ['0x01', 'latest'] });
    await waitFor(() => a.calls().length === 1, { timeout: BOUND_MS, what: 'a call held at a' });
    writeFileSync(file, ini(b.url));
    srv.proc.kill('SIGHUP');
    await waitFor(() => /reload/.test(srv.stderr()) && b.probes() >= 1, { timeout: BOUND_MS, what: 'b probed after the reload' });
    const atA = a.probes();
    await waitFor(() => b.probes() >= 4, { timeout: BOUND_MS, what: 'three more rounds at b' });
    assert.ok(a.probes() <= atA + 1, `a probed ${a.probes() - atA} times after b took over`);
    a.release();
    assert.equal((await heldCall).json?.result?.node, 'a', 'the held call finished where it started');
    await srv.stop();
});

test('--check prints the hedging and probe keys; bad values are refused naming the line', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'jrpc-probe-check-'));
    try {
        const file = path.join(dir, 'j.ini');
        const check = (keys) => {
            writeFileSync(file, `[upstream gw]\nurls = http://127.0.0.1:1/ http://127.0.0.1:2/\nmethods = eth_*\n${keys}`);
            return spawnSync(JRPCD, ['--config', file, '--check'], { encoding: 'utf8' });
        };
        let r = check('hedge_after = p95\nprobe = eth_blockNumber\nprobe_interval = 2s\nprobe_timeout = 750ms\nmax_lag = 3\n');
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /hedge_after = p95\nprobe = eth_blockNumber\nprobe_interval = 2s\nprobe_timeout = 750ms\nmax_lag = 3\n/);
        r = check('');
        assert.match(r.stdout, /hedge_after = off\nprobe = off\nprobe_interval = 5s\nprobe_timeout = 5s\nmax_lag = 0\n/);
        // The default: the smaller of timeout and probe_interval.
        r = check('timeout = 2s\nprobe = eth_blockNumber\n');
        assert.match(r.stdout, /probe_interval = 5s\nprobe_timeout = 2s\n/);
        r = check('hedge_after = 250ms\n');
        assert.match(r.stdout, /hedge_after = 250ms\n/);
        const bad = [
            ['hedge_after = p100\n', /j\.ini:4: \[upstream gw\] hedge_after: "p100" is not a latency quantile from p1 to p99/],
            ['hedge_after = soon\n', /j\.ini:4: \[upstream gw\] hedge_after: "soon" is not a delay from 1ms to 1h/],
            ['probe = "eth_x"\n', /j\.ini:4: \[upstream gw\] probe: .* is not a method name/],
            ['probe = eth_blockNumber\nprobe_interval = 10ms\n', /j\.ini:5: \[upstream gw\] probe_interval: "10ms" is out of range \(100ms to 1h\)/],
            ['probe = eth_blockNumber\nprobe_timeout = 0\n', /j\.ini:5: \[upstream gw\] probe_timeout: "0" is out of range \(1ms to 1h\)/],
            ['max_lag = 3\n', /max_lag needs probe = eth_blockNumber/],
            ['probe = net_version\nmax_lag = 3\n', /max_lag needs probe = eth_blockNumber/],
        ];
        for (const [keys, re] of bad) {
            r = check(keys);
            assert.notEqual(r.status, 0, keys);
            assert.match(r.stderr, re, keys);
        }
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});
