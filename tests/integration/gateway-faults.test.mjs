// SPDX-License-Identifier: MIT
// Gateway faults a real node does not produce on demand, against the misbehaving upstream of
// upstream-fault.mjs (one path per fault; the header of that file lists them). Every case sends
// a client batch that mixes the faulty upstream's items with local items and items of a healthy
// upstream, and checks that only the affected items get an error (-32000 naming the upstream and
// the cause) while the rest keep their results, in request order, ids byte-exact. Also here:
// regrouping into chunks (sizes, jrpcd's own ids), single calls forwarded alone, max_batch 1,
// retry on the next URL, https with HTTP/2, the deadline, and the per-upstream counters.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { rpc, call, batch, rawIds, healthy, assertError, timed, freePort } from './lib.mjs';
import { startGateway, upstreamReport } from './gateway-lib.mjs';
import { startFaultServer } from './upstream-fault.mjs';
import WebSocket from 'ws';

let fault, tlsFault, gw, tmp, deadPort;

before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'jrpc-gw-tls-'));
    const key = path.join(tmp, 'key.pem');
    const cert = path.join(tmp, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    fault = await startFaultServer();
    tlsFault = await startFaultServer({ tls: { key: readFileSync(key), cert: readFileSync(cert) } });
    deadPort = await freePort(); // nothing listens there
    const u = (p) => fault.url(p);
    gw = await startGateway({
        ok: { urls: u('/ok'), methods: 'ok_* test.*', max_batch: 10 },
        one: { urls: u('/ok'), methods: 'one_*', max_batch: 1 },
        se: { urls: u('/single-error'), methods: 'se_*' },
        short: { urls: u('/short'), methods: 'short_*' },
        unk: { urls: u('/unknown-ids'), methods: 'unk_*' },
        mal: { urls: u('/malformed'), methods: 'mal_*' },
        garbage: { urls: u('/garbage'), methods: 'garbage_*' },
        reset: { urls: u('/reset'), methods: 'reset_*', retries: 0 },
        slow: { urls: u('/slow'), methods: 'slow_*', timeout: '300ms', retries: 0 },
        s503: { urls: u('/503'), methods: 'h503_*', retries: 0 },
        flaky: { urls: [u('/reset'), u('/ok')], methods: 'flaky_*', retries: 1, recheck: '1h' },
        f503: { urls: [u('/503'), u('/ok')], methods: 'f503_*', retries: 1, recheck: '1h' },
        dead: { urls: `http://127.0.0.1:${deadPort}/`, methods: 'dead_*', retries: 1 },
        tls: { urls: tlsFault.url('/ok'), methods: 'tls_*', ca_file: cert },
    });
});

after(async () => {
    await gw?.kill();
    await fault?.close();
    await tlsFault?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Requests the fault server saw on `p` since index `from`. */
const seen = (server, p, from = 0) => server.requests.slice(from).filter((r) => r.path === p);

/** Assert item is a gateway fault of upstream `name` with cause `cause`. */
function assertFault(item, name, cause, id) {
    assertError(item, -32000, id);
    assert.equal(item.error.data?.upstream, name, JSON.stringify(item));
    assert.equal(item.error.data?.cause, cause, JSON.stringify(item));
    assert.equal(typeof item.error.data?.detail, 'string', JSON.stringify(item));
    assert.match(item.error.message, new RegExp(`^upstream ${name}: `));
}

const okResult = (m, p = null) => ({ m, p });

test('results mapped by id although answered in reverse; upstream errors pass through unchanged', async () => {
    const body = batch([
        call('ok_a', [1, { x: 'é' }], 'x'),
        call('ok_b_err', [], 'x'),
        call('tennis@ping', undefined, 7),
        call('ok_c', { k: [true, null] }, undefined, { rawId: '14066156191713469572' }),
        call('ok_d', undefined, null),
        call('test.echo', [42], 'local'),
        call('test.other', [1], 'routed'),
        call('no_such_method', [], 'nf'),
    ]);
    const r = await rpc(gw, body);
    assert.equal(r.status, 200);
    assert.deepEqual(rawIds(r.body), ['"x"', '"x"', '7', '14066156191713469572', 'null', '"local"', '"routed"', '"nf"']);
    const a = r.json;
    assert.deepEqual(a[0].result, okResult('ok_a', [1, { x: 'é' }]));
    assert.deepEqual(a[1], {
        jsonrpc: '2.0', id: 'x',
        error: { code: -32099, message: 'no: ok_b_err', data: { why: [1, 'two'] } },
    });
    assert.equal(a[2].result, 'pong');
    assert.deepEqual(a[3].result, okResult('ok_c', { k: [true, null] }));
    assert.deepEqual(a[4].result, okResult('ok_d'));
    assert.deepEqual(a[5].result, [42], 'an exact local method wins over the upstream pattern test.*');
    assert.deepEqual(a[6].result, okResult('test.other', [1]), 'the pattern serves the other test.* names');
    assertError(a[7], -32601, 'nf');
});

test('method names that need escaping reach the upstream intact', async () => {
    const names = ['ok_"q"\\x', 'ok_\u0001', 'ok_é', 'ok_' + '\u0001'.repeat(300), 'ok_plain', 'ok_\n\t/'];
    const r = await rpc(gw, batch(names.map((m, i) => call(m, [i], i))));
    assert.equal(r.status, 200, r.body);
    r.json.forEach((x, i) => assert.deepEqual(x.result, okResult(names[i], [i]), JSON.stringify(names[i])));
});

test('regrouping: 25 items, max_batch 10 → 3 upstream batches of 9, 8, 8 with jrpcd\'s own ids', async () => {
    const from = fault.requests.length;
    const ids = Array.from({ length: 25 }, (_, i) => `client-${i}`);
    const r = await rpc(gw, batch(ids.map((id, i) => call(`ok_${i}`, [i], id))));
    assert.deepEqual(r.json.map((x) => x.id), ids);
    r.json.forEach((x, i) => assert.deepEqual(x.result, okResult(`ok_${i}`, [i])));
    const reqs = seen(fault, '/ok', from);
    assert.equal(reqs.length, 3, JSON.stringify(reqs));
    assert.ok(reqs.every((q) => q.batch));
    assert.deepEqual(reqs.map((q) => q.n).sort(), [8, 8, 9]);
    const sent = reqs.flatMap((q) => q.ids);
    assert.ok(sent.every((id) => Number.isSafeInteger(id)), `upstream ids are jrpcd's numbers: ${sent}`);
    assert.equal(new Set(sent).size, 25, 'no id repeats across the chunks');
    assert.equal(Math.max(...sent) - Math.min(...sent), 24, 'sequential');
});

test('a whole batch passes through with its own ids, mapped back by id (the upstream reverses)', async () => {
    let from = fault.requests.length;
    const ids = [7, 'a', -3, 0, 'x y', 123456789012345];
    let r = await rpc(gw, batch(ids.map((id, i) => call(`ok_p${i}`, [i], id))));
    assert.deepEqual(r.json.map((x) => x.id), ids);
    r.json.forEach((x, i) => assert.deepEqual(x.result, okResult(`ok_p${i}`, [i])));
    let reqs = seen(fault, '/ok', from);
    assert.equal(reqs.length, 1);
    assert.deepEqual(reqs[0].ids, ids, 'the upstream got the client\'s own ids');

    // A notification inside, duplicate ids, ids an upstream may spell otherwise: jrpcd's numbers.
    const cases = [
        [call('ok_q0', [0], 1), call('ok_q1', [1]), call('ok_q2', [2], 2)],
        [call('ok_q0', [0], 5), call('ok_q1', [1], 'z'), call('ok_q2', [2], 5)],
        [call('ok_q0', [0], 1), call('ok_q1', [1], null), call('ok_q2', [2], 2)],
        [call('ok_q0', [0], 1), call('ok_q1', [1], undefined, { rawId: '1e400' }), call('ok_q2', [2], 2)],
        [call('ok_q0', [0], 1), call('ok_q1', [1], undefined, { rawId: '14066156191713469572' }), call('ok_q2', [2], 2)],
        [call('ok_q0', [0], 1), call('ok_q1', [1], undefined, { rawId: '"\\u00e9"' }), call('ok_q2', [2], 2)],
    ];
    for (const items of cases) {
        from = fault.requests.length;
        const body = batch(items);
        r = await rpc(gw, body);
        assert.equal(r.status, 200, r.body);
        const sentIds = rawIds(body).filter((id) => id !== undefined);
        assert.deepEqual(rawIds(r.body), sentIds, body);
        const named = items.map((t, i) => [t, i]).filter(([t]) => t.includes('"id"'));
        r.json.forEach((x, k) => assert.deepEqual(x.result, okResult(`ok_q${named[k][1]}`, [named[k][1]]), body));
        reqs = seen(fault, '/ok', from);
        assert.equal(reqs.length, 1);
        assert.equal(reqs[0].n, 3, 'the notification is forwarded too');
        const sent = reqs[0].ids;
        assert.ok(sent.every((id, k) => Number.isSafeInteger(id) && id === sent[0] + k), `jrpcd's ids: ${sent}`);
    }
});

test('a single call is forwarded as a single request; a 1-item batch as a 1-item batch', async () => {
    const from = fault.requests.length;
    const one = await rpc(gw, call('ok_single', [1], 1));
    assert.deepEqual(one.json.result, okResult('ok_single', [1]));
    const arr = await rpc(gw, batch([call('ok_single', [2], 2)]));
    assert.deepEqual(arr.json[0].result, okResult('ok_single', [2]));
    const reqs = seen(fault, '/ok', from);
    assert.deepEqual(reqs.map((q) => [q.batch, q.n]), [[false, 1], [true, 1]]);
});

test('max_batch 1: a batch is sent as one single request per call', async () => {
    const from = fault.requests.length;
    const r = await rpc(gw, batch([0, 1, 2, 3].map((i) => call(`one_${i}`, [i], i))));
    r.json.forEach((x, i) => assert.deepEqual(x.result, okResult(`one_${i}`, [i])));
    const reqs = seen(fault, '/ok', from);
    assert.equal(reqs.length, 4);
    assert.ok(reqs.every((q) => !q.batch && q.n === 1));
});

test('notifications are forwarded but never answered', async () => {
    const r = await rpc(gw, batch([call('ok_n1', [1]), call('ok_n2', [2], 'b'), call('ok_n3', [3])]));
    assert.deepEqual(r.json, [{ jsonrpc: '2.0', result: okResult('ok_n2', [2]), id: 'b' }]);
});

test('fault: one error object for a whole batch → each of its items errs, with the upstream error in data', async () => {
    const r = await rpc(gw, batch([
        call('se_1', [], 1), call('ok_1', [], 2), call('se_2', [], 3), call('test.echo', ['e'], 4),
        call('se_3', [], 5),
    ]));
    for (const [i, id] of [[0, 1], [2, 3], [4, 5]]) {
        assertFault(r.json[i], 'se', 'batch_error', id);
        assert.deepEqual(r.json[i].error.data.error, { code: -32600, message: 'batch requests are not supported' });
    }
    assert.deepEqual(r.json[1].result, okResult('ok_1', []));
    assert.deepEqual(r.json[3].result, ['e']);
    const alone = await rpc(gw, call('se_alone', [], 9));
    assert.deepEqual(alone.json.result, okResult('se_alone', []), 'the same upstream answers single calls');
});

test('fault: fewer answers than calls → the unanswered items err, the answered keep results', async () => {
    const r = await rpc(gw, batch([0, 1, 2, 3, 4, 5].map((i) => call(`short_${i}`, [i], i))));
    for (let i = 0; i < 3; i++) assert.deepEqual(r.json[i].result, okResult(`short_${i}`, [i]));
    for (let i = 3; i < 6; i++) {
        assertFault(r.json[i], 'short', 'missing', i);
        assert.match(r.json[i].error.data.detail, /answered 3 of 6/);
    }
});

test('fault: answers with unknown ids → those calls err, the others keep results', async () => {
    const r = await rpc(gw, batch([0, 1, 2, 3, 4, 5].map((i) => call(`unk_${i}`, [i], `u${i}`))));
    r.json.forEach((x, i) => {
        if (i % 2) assertFault(x, 'unk', 'unknown_id', `u${i}`);
        else assert.deepEqual(x.result, okResult(`unk_${i}`, [i]));
    });
});

test('fault: malformed answer items → those calls err (invalid), the others keep results', async () => {
    const r = await rpc(gw, batch([0, 1, 2, 3].map((i) => call(`mal_${i}`, [i], i))));
    r.json.forEach((x, i) => {
        if (i % 2) assertFault(x, 'mal', 'invalid', i);
        else assert.deepEqual(x.result, okResult(`mal_${i}`, [i]));
    });
});

test('fault: non-JSON answer → every item of it errs (invalid); other upstreams and local items are fine', async () => {
    const r = await rpc(gw, batch([call('garbage_1', [], 1), call('ok_g', [], 2), call('garbage_2', [], 3), call('tennis@ping', undefined, 4)]));
    assertFault(r.json[0], 'garbage', 'invalid', 1);
    assert.match(r.json[0].error.data.detail, /not JSON/);
    assertFault(r.json[2], 'garbage', 'invalid', 3);
    assert.deepEqual(r.json[1].result, okResult('ok_g', []));
    assert.equal(r.json[3].result, 'pong');
});

test('fault: connection reset → its items err (reset), the rest answered', async () => {
    const r = await rpc(gw, batch([call('reset_1', [], 1), call('ok_r', [], 2), call('reset_2', [], 3)]));
    assertFault(r.json[0], 'reset', 'reset', 1);
    assertFault(r.json[2], 'reset', 'reset', 3);
    assert.deepEqual(r.json[1].result, okResult('ok_r', []));
    const single = await rpc(gw, call('reset_s', [], 's'));
    assertFault(single.json, 'reset', 'reset', 's');
});

test('fault: slow upstream → its items err at the upstream timeout (300 ms), before its answer', async () => {
    const from = fault.requests.length;
    const [r, ms] = await timed(() => rpc(gw, batch([call('slow_1', [], 1), call('ok_s', [], 2)])));
    assertFault(r.json[0], 'slow', 'timeout', 1);
    assert.match(r.json[0].error.data.detail, /300 ms/);
    assert.deepEqual(r.json[1].result, okResult('ok_s', []));
    assert.ok(ms >= 250, `answered after ${ms.toFixed(0)} ms, before the 300 ms timeout`);
    // Ordering, not a clock: jrpcd gave up while the upstream still held its answer.
    const slow = seen(fault, '/slow', from);
    assert.equal(slow.length, 1, JSON.stringify(slow));
    assert.equal(slow[0].answered, false, 'the upstream had answered before jrpcd did');
});

test('fault: HTTP 503 without a JSON-RPC body → http', async () => {
    const r = await rpc(gw, batch([call('h503_1', [], 1), call('ok_h', [], 2)]));
    assertFault(r.json[0], 's503', 'http', 1);
    assert.match(r.json[0].error.data.detail, /HTTP status 503/);
    assert.deepEqual(r.json[1].result, okResult('ok_h', []));
});

test('fault: nothing listening → connect, after trying again', async () => {
    const r = await rpc(gw, batch([call('dead_1', [], 1), call('ok_d1', [], 2)]));
    assertFault(r.json[0], 'dead', 'connect', 1);
    assert.match(r.json[0].error.data.detail, /refused/i);
    assert.deepEqual(r.json[1].result, okResult('ok_d1', []));
});

test('failover: a reset or a 503 on the first URL is retried on the next; the failed URL is then passed over', async () => {
    const from = fault.requests.length;
    const r = await rpc(gw, batch([call('flaky_1', [1], 1), call('f503_1', [2], 2), call('flaky_2', [3], 3)]));
    assert.deepEqual(r.json[0].result, okResult('flaky_1', [1]));
    assert.deepEqual(r.json[1].result, okResult('f503_1', [2]));
    assert.deepEqual(r.json[2].result, okResult('flaky_2', [3]));
    assert.equal(seen(fault, '/reset', from).length, 1, 'one attempt on the resetting URL');
    assert.equal(seen(fault, '/503', from).length, 1, 'one attempt on the 503 URL');
    const mark = fault.requests.length;
    const again = await rpc(gw, batch([call('flaky_3', [], 1), call('f503_2', [], 2)]));
    assert.deepEqual(again.json.map((x) => x.result), [okResult('flaky_3', []), okResult('f503_2', [])]);
    assert.equal(seen(fault, '/reset', mark).length + seen(fault, '/503', mark).length, 0,
        'down URLs are passed over until recheck');
});

test('https upstream: TLS with the configured CA, HTTP/2 negotiated', async () => {
    const from = tlsFault.requests.length;
    const r = await rpc(gw, batch([0, 1, 2].map((i) => call(`tls_${i}`, [i], i))));
    r.json.forEach((x, i) => assert.deepEqual(x.result, okResult(`tls_${i}`, [i])));
    const reqs = tlsFault.requests.slice(from);
    assert.ok(reqs.length >= 1);
    assert.ok(reqs.every((q) => q.httpVersion === '2.0'), JSON.stringify(reqs));
});

test('REST routes reach upstream methods: bare results, a REST batch regrouped, errors mapped to a status', async () => {
    const from = fault.requests.length;
    const one = await rpc(gw, '[1,"two"]', { path: '/rest/ok_rest' });
    assert.equal(one.status, 200);
    assert.deepEqual(one.json, okResult('ok_rest', [1, 'two']));
    const many = await rpc(gw, '[[1],[2],null,{"k":3}]', { path: '/rest/ok_restb/batch' });
    assert.deepEqual(many.json, [okResult('ok_restb', [1]), okResult('ok_restb', [2]), okResult('ok_restb'),
        okResult('ok_restb', { k: 3 })]);
    const reqs = seen(fault, '/ok', from);
    assert.deepEqual(reqs.map((q) => [q.batch, q.n]), [[false, 1], [true, 4]]);
    const err = await rpc(gw, '[]', { path: '/rest/ok_rest_err' });
    assert.equal(err.status, 500);
    assert.deepEqual(err.json, { error: { code: -32099, message: 'no: ok_rest_err', data: { why: [1, 'two'] } } });
});

test('WebSocket batches are forwarded and regrouped like HTTP ones', async () => {
    const from = fault.requests.length;
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}${gw.path}`);
    try {
        await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
        const answer = new Promise((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()))));
        ws.send(batch(Array.from({ length: 12 }, (_, i) => call(`ok_ws${i}`, [i], i))));
        const a = await answer;
        a.forEach((x, i) => assert.deepEqual(x, { jsonrpc: '2.0', result: okResult(`ok_ws${i}`, [i]), id: i }));
        assert.deepEqual(seen(fault, '/ok', from).map((q) => q.n).sort(), [6, 6]);
    } finally {
        ws.close();
    }
});

test('deadline: unfinished upstream items get -32002, finished items are kept', async () => {
    const dl = await startGateway({
        slow: { urls: fault.url('/slow'), methods: 'slow_*', timeout: '10s' },
        ok: { urls: fault.url('/ok'), methods: 'ok_*' },
    }, { args: ['--deadline', '500ms'] });
    try {
        const r = await rpc(dl, batch([call('ok_1', [], 1), call('slow_1', [], 2), call('tennis@ping', undefined, 3)]));
        assert.deepEqual(r.json[0].result, okResult('ok_1', []));
        assertError(r.json[1], -32002, 2);
        assert.equal(r.json[2].result, 'pong');
        await healthy(dl);
    } finally {
        await dl.kill();
    }
});

test('counters: jrpcd reports each upstream\'s requests, retries, items and faults when it stops', async () => {
    await healthy(gw);
    await gw.stop();
    const err = gw.stderr();
    const se = upstreamReport(err, 'se');
    assert.ok(se, err);
    assert.ok(se.faults.batch_error >= 1 && se.itemsFailed >= 3, JSON.stringify(se));
    const flaky = upstreamReport(err, 'flaky');
    assert.ok(flaky.retries >= 1 && flaky.faults.reset >= 1 && flaky.itemsFailed === 0, JSON.stringify(flaky));
    const ok = upstreamReport(err, 'ok');
    assert.ok(ok.itemsRpcError >= 1 && ok.itemsFailed === 0, JSON.stringify(ok));
    for (const [name, kind] of [['short', 'missing'], ['unk', 'unknown_id'], ['garbage', 'invalid'],
        ['reset', 'reset'], ['slow', 'timeout'], ['s503', 'http'], ['dead', 'connect']]) {
        const s = upstreamReport(err, name);
        assert.ok(s.faults[kind] >= 1, `${name}: ${JSON.stringify(s)}`);
    }
    assert.match(err, /upstream flaky: http:\/\/127\.0\.0\.1:\d+ requests \d+, faults \d+ \(down\)/);
});
