// SPDX-License-Identifier: MIT
// Ids are echoed byte-exact: whatever bytes the request's id value had, the answer's id has,
// for results, errors and batch items. Checked on the raw response text (JSON.parse would round
// big numbers, turn 1e400 into Infinity and decode escapes). Ids that are objects, arrays or
// booleans are invalid: -32600 with id null.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, rpc, healthy, rawIds, call, batch, assertError } from './lib.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.kill(); });

const IDS = [
    '1', '0', '-0', '-1', '1.50', '1e400', '-1e400', '1E+2', '1e-7', '0.0', '-1.5e-300',
    '14066156191713469572', '-14066156191713469572', '9007199254740993',
    '123456789012345678901234567890.000000000000000000001e-10',
    '""', '"1"', '"\\u00e9"', '"é"', '"\\u00E9"', '"\\"\\\\\\/\\b\\f\\n\\r\\t"', '"\\ud83d\\ude00"', '"😀"',
    '"\\u0000"', '"a b"', '"id"', '"}]"',
    `"${'L'.repeat(65536)}"`,
    'null',
];

const show = (raw) => (raw.length > 60 ? `${raw.slice(0, 40)}…(${raw.length} bytes)` : raw);

test('each id echoed byte-exact in a single result', async () => {
    for (const raw of IDS) {
        const r = await rpc(srv, call('tennis@ping', undefined, undefined, { rawId: raw }));
        assert.equal(r.status, 200, show(raw));
        assert.deepEqual(rawIds(r.body), [raw], `id ${show(raw)} → ${show(r.body)}`);
        assert.equal(r.json.result, 'pong', show(raw));
    }
});

test('each id echoed byte-exact in a single error (unknown method, invalid request)', async () => {
    for (const raw of IDS) {
        let r = await rpc(srv, call('no.such.method', undefined, undefined, { rawId: raw }));
        assert.deepEqual(rawIds(r.body), [raw], `id ${show(raw)} → ${show(r.body)}`);
        assert.equal(r.json.error.code, -32601);
        r = await rpc(srv, `{"jsonrpc":"1.0","method":"tennis@ping","id":${raw}}`);
        assert.deepEqual(rawIds(r.body), [raw], `id ${show(raw)} → ${show(r.body)}`);
        assert.equal(r.json.error.code, -32600);
    }
});

test('ids echoed byte-exact in a batch, in order, across inline, worker and async methods', async () => {
    const methods = [['tennis@ping'], ['test.worker_echo', [1]], ['test.sleep_async', [1]], ['no.such.method']];
    const items = IDS.map((raw, i) => {
        const [m, p] = methods[i % methods.length];
        return call(m, p, undefined, { rawId: raw });
    });
    const r = await rpc(srv, batch(items));
    assert.equal(r.status, 200);
    assert.deepEqual(rawIds(r.body), IDS);
});

test('whitespace around the id value is not part of it', async () => {
    const r = await rpc(srv, '{"jsonrpc":"2.0","method":"tennis@ping","id" :\n 1.50 \t}');
    assert.deepEqual(rawIds(r.body), ['1.50']);
});

test('object, array and boolean ids → -32600 with id null', async () => {
    const bad = ['{"a":1}', '{}', '[1]', '[]', 'true', 'false'];
    for (const raw of bad) {
        const r = await rpc(srv, call('tennis@ping', undefined, undefined, { rawId: raw }));
        assert.equal(r.status, 200);
        assert.ok(!Array.isArray(r.json), r.body);
        assertError(r.json, -32600, null, `id ${raw}`);
        assert.deepEqual(rawIds(r.body), ['null']);
    }
    const r = await rpc(srv, batch([...bad.map((raw) => call('tennis@ping', undefined, undefined, { rawId: raw })),
        call('tennis@ping', undefined, 'good')]));
    assert.deepEqual(rawIds(r.body), [...bad.map(() => 'null'), '"good"']);
    bad.forEach((raw, i) => assertError(r.json[i], -32600, null, `id ${raw}`));
    assert.equal(r.json.at(-1).result, 'pong');
});

test('duplicate ids in one batch are each answered', async () => {
    const r = await rpc(srv, batch([call('tennis@ping', undefined, 1), call('subtract', [3, 1], 1), call('tennis@ping', undefined, 1)]));
    assert.deepEqual(r.json, [
        { jsonrpc: '2.0', result: 'pong', id: 1 },
        { jsonrpc: '2.0', result: 2, id: 1 },
        { jsonrpc: '2.0', result: 'pong', id: 1 },
    ]);
});

test('server still healthy, SIGTERM exits 0', async () => {
    await healthy(srv);
    await srv.stop();
});
