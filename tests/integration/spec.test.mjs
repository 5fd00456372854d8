// SPDX-License-Identifier: MIT
// The examples of the JSON-RPC 2.0 specification, §7, sent byte for byte as the spec writes
// them (to the spec example module), compared with the spec's expected responses.
// Error objects are compared on code and message; an optional `data` member (e.g. where a
// parse error was found) is allowed and ignored. Batches are answered in request order.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, rpc, healthy, rawIds } from './lib.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.kill(); });

// Drop error.data so answers compare against the spec's data-less examples.
function normalize(v) {
    if (Array.isArray(v)) return v.map(normalize);
    if (v && typeof v === 'object' && v.error && typeof v.error === 'object') {
        const { data, ...error } = v.error; // eslint-disable-line no-unused-vars
        return { ...v, error };
    }
    return v;
}

async function expectAnswer(request, expected) {
    const r = await rpc(srv, request);
    assert.equal(r.status, 200, `${request}\n→ ${r.status} ${r.body}`);
    assert.notEqual(r.json, undefined, `not JSON: ${r.body}`);
    assert.deepEqual(normalize(r.json), JSON.parse(expected), `${request}\n→ ${r.body}`);
    return r;
}

async function expectNothing(request) {
    const r = await rpc(srv, request);
    assert.equal(r.status, 204, `${request}\n→ ${r.status} ${r.body}`);
    assert.equal(r.body, '');
}

test('rpc call with positional parameters', async () => {
    await expectAnswer('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
        '{"jsonrpc": "2.0", "result": 19, "id": 1}');
    await expectAnswer('{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
        '{"jsonrpc": "2.0", "result": -19, "id": 2}');
});

test('rpc call with named parameters', async () => {
    await expectAnswer('{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
        '{"jsonrpc": "2.0", "result": 19, "id": 3}');
    await expectAnswer('{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',
        '{"jsonrpc": "2.0", "result": 19, "id": 4}');
});

test('a notification', async () => {
    await expectNothing('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}');
    await expectNothing('{"jsonrpc": "2.0", "method": "foobar"}');
});

test('rpc call of non-existent method', async () => {
    const r = await expectAnswer('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
        '{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}');
    assert.deepEqual(rawIds(r.body), ['"1"']);
});

test('rpc call with invalid JSON', async () => {
    await expectAnswer('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
        '{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}');
});

test('rpc call with invalid Request object', async () => {
    await expectAnswer('{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
        '{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}');
});

test('rpc call Batch, invalid JSON', async () => {
    await expectAnswer(`[
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
]`, '{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}');
});

test('rpc call with an empty Array', async () => {
    await expectAnswer('[]',
        '{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}');
});

test('rpc call with an invalid Batch (but not empty)', async () => {
    await expectAnswer('[1]',
        '[{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}]');
});

test('rpc call with invalid Batch', async () => {
    await expectAnswer('[1,2,3]', `[
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}
]`);
});

test('rpc call Batch', async () => {
    const r = await expectAnswer(`[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"} 
    ]`, `[
        {"jsonrpc": "2.0", "result": 7, "id": "1"},
        {"jsonrpc": "2.0", "result": 19, "id": "2"},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
        {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
    ]`);
    assert.deepEqual(rawIds(r.body), ['"1"', '"2"', 'null', '"5"', '"9"']);
});

test('rpc call Batch (all notifications)', async () => {
    await expectNothing(`[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]`);
});

test('server still healthy, SIGTERM exits 0', async () => {
    await healthy(srv);
    await srv.stop();
});
