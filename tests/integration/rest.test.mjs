// SPDX-License-Identifier: MIT
// REST routes (docs/rest.md) over the real jrpcd: POST /rest/<method> with params as the body,
// GET with named params from the query string, POST /rest/<method>/batch with an array of params
// answered in the same order, the status mapping of errors, and rpc.discover validated against
// the OpenRPC meta-schema.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startServer, rpc, healthy, withServer, call } from './lib.mjs';

const require = createRequire(import.meta.url);

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await healthy(srv); await srv.stop(); await srv.kill(); });

const rest = (path, body, opts = {}) => rpc(srv, body, { path, ...opts });

test('POST /rest/<method> answers the bare result', async () => {
    const r = await rest('/rest/tennis@ping', '');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.body, '"pong"');
});

test('params are the body, byte-exact (array and object)', async () => {
    let r = await rest('/rest/test.echo', '[14066156191713469572, 1e400, "\\u00e9"]');
    assert.equal(r.status, 200);
    assert.equal(r.body, '[14066156191713469572, 1e400, "\\u00e9"]');
    r = await rest('/rest/subtract', '{"subtrahend": 23, "minuend": 42}');
    assert.equal(r.body, '19');
});

test('GET takes named params from the query string, percent-decoded, as strings', async () => {
    const r = await rest('/rest/test.echo?address=0x2f0E%41&note=a+b%20c&flag', undefined, { method: 'GET' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { address: '0x2f0EA', note: 'a b c', flag: '' });
});

test('a malformed percent-escape in the query is blamed on the query and its parameter', async () => {
    const cases = [
        ['/rest/test.echo?a=%zz', 'a'],
        ['/rest/test.echo?ok=1&note=50%&z=2', 'note'],
        ['/rest/test.echo?%g1=x', '%g1'],
    ];
    for (const [path, param] of cases) {
        const r = await rest(path, undefined, { method: 'GET' });
        assert.equal(r.status, 400, `${path}: ${r.body}`);
        assert.deepEqual(Object.keys(r.json), ['error'], r.body);
        assert.equal(r.json.error.code, -32602, r.body);
        assert.match(r.json.error.message, /query/, r.body);
        assert.ok(r.json.error.message.includes(`"${param}"`), `${path}: parameter ${param} not named: ${r.body}`);
        assert.doesNotMatch(r.json.error.message, /method/, r.body);
    }
    // The method name's own escapes are still its own error.
    const r = await rest('/rest/tennis%zzping?a=1', undefined, { method: 'GET' });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /method name/, r.body);
});

test('the method name is percent-decoded from the path', async () => {
    const r = await rest('/rest/tennis%40ping', '');
    assert.equal(r.body, '"pong"');
});

test('errors map to HTTP statuses with {"error":{…}}', async () => {
    const cases = [
        ['/rest/no.such.method', '[]', 404, -32601],
        ['/rest/subtract', '[1', 400, -32700],
        ['/rest/subtract', '17', 400, -32600],
        ['/rest/subtract', '["a","b"]', 400, -32602],
        ['/rest/test.fail', '[-32005,"slow down"]', 429, -32005],
        ['/rest/test.fail', '[-32000,"upstream down",{"why":"reset"}]', 500, -32000],
    ];
    for (const [path, body, status, code] of cases) {
        const r = await rest(path, body);
        assert.equal(r.status, status, `${path} ${body} → ${r.status} ${r.body}`);
        assert.equal(r.json.error.code, code, r.body);
        assert.equal(typeof r.json.error.message, 'string');
        assert.deepEqual(Object.keys(r.json), ['error']);
    }
    const r = await rest('/rest/test.fail', '[-32000,"upstream down",{"why":"reset"}]');
    assert.deepEqual(r.json.error.data, { why: 'reset' });
});

test('a deadline maps to 504', async () => {
    await withServer(['--deadline', '200ms'], async (s) => {
        const r = await rpc(s, '[2000]', { path: '/rest/test.sleep_async' });
        assert.equal(r.status, 504, r.body);
        assert.equal(r.json.error.code, -32002);
    });
});

test('REST batch: array of params → array of results in the same order, errors in place', async () => {
    const r = await rest('/rest/subtract/batch', '[[42,23],{"minuend":5,"subtrahend":1},7,["x"],[10,20]]');
    assert.equal(r.status, 200);
    assert.equal(r.json.length, 5);
    assert.equal(r.json[0], 19);
    assert.equal(r.json[1], 4);
    assert.equal(r.json[2].error.code, -32600);
    assert.equal(r.json[3].error.code, -32602);
    assert.equal(r.json[4], -10);
});

test('REST batch order holds when later items finish first', async () => {
    const r = await rest('/rest/test.sleep/batch', '[[150],[1],[60],[0]]');
    assert.equal(r.body, '[150,1,60,0]');
});

test('REST batch runs concurrently under the batch bound: all 10 asleep at once', async () => {
    // Counted, not timed: test.sleep_peak is the most sleeps at once since it was last read; one
    // item after another would never have more than 1. 16 workers, so the pool (8 by default)
    // does not hold test.sleep below 10 at a time.
    await withServer(['--workers', '16'], async (s) => {
        for (const m of ['test.sleep', 'test.sleep_async']) {
            await rpc(s, call('test.sleep_peak', undefined, 'peak'));
            const r = await rpc(s, JSON.stringify(Array.from({ length: 10 }, () => [200])), { path: `/rest/${m}/batch` });
            assert.deepEqual(r.json, Array(10).fill(200), `${m}: ${r.body}`);
            const peak = await rpc(s, call('test.sleep_peak', undefined, 'peak'));
            assert.equal(peak.json.result, 10, `${m}: items asleep at once: ${peak.body}`);
        }
    });
});

test('REST batch keeps the no_batch policy, the cap and an empty array', async () => {
    let r = await rest('/rest/test.nobatch/batch', '[[],[]]');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.map((x) => x.error.code), [-32004, -32004]);
    r = await rest('/rest/test.nobatch', '');
    assert.equal(r.body, '"ok"');
    r = await rest('/rest/tennis@ping/batch', '[]');
    assert.equal(r.body, '[]');
    await withServer(['--max-batch', '3'], async (s) => {
        const before = await rpc(s, '["a"]', { path: '/rest/message@create' });
        const over = await rpc(s, '[["x"],["y"],["z"],["w"]]', { path: '/rest/message@create/batch' });
        assert.equal(over.status, 200);
        assert.deepEqual(over.json.map((x) => x.error.code), [-32005, -32005, -32005, -32005]);
        const after = await rpc(s, '["b"]', { path: '/rest/message@create' });
        assert.equal(after.json.id, before.json.id + 1, 'nothing of the over-cap batch ran');
    });
    r = await rest('/rest/tennis@ping/batch', '{"not":"an array"}');
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, -32600);
});

test('REST route methods and preflight', async () => {
    let r = await rest('/rest/tennis@ping', undefined, { method: 'DELETE' });
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'GET, POST, OPTIONS');
    r = await rest('/rest/tennis@ping/batch', undefined, { method: 'GET' });
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'POST, OPTIONS');
    r = await rest('/rest/tennis@ping', undefined, { method: 'OPTIONS' });
    assert.equal(r.status, 204);
    assert.equal(r.headers.allow, 'GET, POST, OPTIONS');
    // CORS headers only for an Origin on cors_origins (hosts.test.mjs): none by default.
    assert.equal(r.headers['access-control-allow-methods'], undefined, r.head);
    r = await rest('/rest/', '');
    assert.equal(r.status, 404);
});

test('--rest-path moves the routes, and "" turns them off', async () => {
    await withServer(['--rest-path', '/v2'], async (s) => {
        let r = await rpc(s, '', { path: '/v2/tennis@ping' });
        assert.equal(r.body, '"pong"');
        r = await rpc(s, '', { path: '/rest/tennis@ping' });
        assert.equal(r.status, 404);
    });
    await withServer(['--rest-path', ''], async (s) => {
        const r = await rpc(s, '', { path: '/rest/tennis@ping' });
        assert.equal(r.status, 404);
    });
});

test('rpc.discover lists every method and validates against the OpenRPC meta-schema', async () => {
    const r = await rpc(srv, '{"jsonrpc":"2.0","method":"rpc.discover","id":1}');
    const doc = r.json.result;
    const Ajv = require('ajv');
    const meta = require('@open-rpc/meta-schema');
    const jsonSchemaMeta = require('@json-schema-tools/meta-schema'); // what it $refs for schemas
    const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, logger: false });
    const js = jsonSchemaMeta.default ?? jsonSchemaMeta;
    // It is referred to both with and without the trailing slash of its $id.
    ajv.addSchema(js);
    ajv.addSchema({ ...js, $id: js.$id.replace(/\/$/, '') });
    const validate = ajv.compile(meta.default ?? meta);
    assert.ok(validate(doc), JSON.stringify(validate.errors, null, 2));
    const names = doc.methods.map((m) => m.name);
    for (const n of ['tennis@ping', 'message@create', 'subtract', 'get_data', 'test.echo', 'test.nobatch'])
        assert.ok(names.includes(n), `${n} missing from ${names}`);
    assert.ok(!names.includes('rpc.discover'));
    assert.equal(doc.methods.find((m) => m.name === 'test.nobatch')['x-jrpc-no-batch'], true);
    // The same document over REST.
    const g = await rpc(srv, undefined, { path: '/rest/rpc.discover', method: 'GET' });
    assert.deepEqual(g.json, { ...doc });
});
