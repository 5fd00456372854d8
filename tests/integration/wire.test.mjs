// SPDX-License-Identifier: MIT
// Wire behaviour: one test per row of DESIGN.md §3 plus the envelope rules around it
// (invalid request objects, duplicated members, extra members, limits with small caps).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    startServer, withServer, rpc, healthy, call, batch, rawIds, rawMembers, timed, release,
    assertError, assertResult, HttpConn, buildRequest, chunked, decorate,
} from './lib.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.kill(); });

// message@create hands out increasing ids, so a later create tells how many ran in between.
async function createId(server) {
    const r = await rpc(server, call('message@create', ['probe'], 'probe'));
    assert.equal(r.status, 200, r.body);
    assert.equal(typeof r.json?.result?.id, 'number', r.body);
    return r.json.result.id;
}

function assertJsonAnswer(r) {
    assert.equal(r.status, 200, r.body);
    assert.match(r.headers['content-type'] ?? '', /^application\/json\b/i, 'Content-Type');
}

test('valid single call → 200, result, same id bytes, application/json', async () => {
    let r = await rpc(srv, call('tennis@ping', undefined, 1));
    assertJsonAnswer(r);
    assertResult(r.json, 'pong', 1);
    assert.deepEqual(rawIds(r.body), ['1']);

    r = await rpc(srv, call('message@create', ['hello'], 7));
    assertJsonAnswer(r);
    assert.equal(r.json.id, 7);
    assert.equal(r.json.result.text, 'hello');
    assert.ok(Number.isInteger(r.json.result.id), r.body);

    r = await rpc(srv, call('subtract', [42, 23], 'a'));
    assertResult(r.json, 19, 'a');
});

test('single notification → 204 with empty body, also for errors', async () => {
    const conn = await HttpConn.open(srv);
    try {
        const notes = [
            call('tennis@ping'),                          // fine
            call('no.such.method', [1]),                  // -32601 if it were a call
            call('test.fail', [-32000, 'boom']),          // handler error
            call('subtract', { subtrahend: 'x' }),        // bad params
            call('test.sleep_async', [10]),               // async reply
            call('test.worker_echo', [1]),                // worker reply
        ];
        for (const n of notes) {
            const r = await conn.request(srv, { body: n });
            assert.equal(r.status, 204, `${n} → ${r.status} ${r.body}`);
            assert.equal(r.bodyBuf.length, 0, n);
            assert.ok(!r.headers['content-length'] || r.headers['content-length'] === '0', r.head);
            assert.ok(!r.headers['transfer-encoding'], r.head);
        }
        // 204 must not carry a body: the next answer on the same connection parses cleanly.
        const r = await conn.request(srv, { body: call('tennis@ping', undefined, 99) });
        assertResult(r.json, 'pong', 99);
    } finally {
        conn.close();
    }
});

test('notifications are executed even though never answered', async () => {
    const a = await createId(srv);
    const r = await rpc(srv, call('message@create', ['note']));
    assert.equal(r.status, 204);
    const b = await createId(srv);
    assert.equal(b, a + 2, 'the notification created a message');
});

test('batch of only notifications → 204, empty body', async () => {
    const r = await rpc(srv, batch([
        call('tennis@ping'), call('no.such.method'), call('test.fail', [-32000, 'x']),
        call('test.nobatch'), call('test.sleep_async', [5]),
    ]));
    assert.equal(r.status, 204, r.body);
    assert.equal(r.body, '');
});

const INVALID_JSON = [
    ['truncated object', '{"jsonrpc":"2.0","method":"tennis@ping","id":1'],
    ['truncated batch', '[{"jsonrpc":"2.0","method":"tennis@ping","id":1},'],
    ['lone [', '['],
    ['trailing garbage', '{"jsonrpc":"2.0","method":"tennis@ping","id":1} x'],
    ['two values', '{"jsonrpc":"2.0","method":"tennis@ping","id":1}{"jsonrpc":"2.0","method":"tennis@ping","id":2}'],
    ['error in last batch item', '[{"jsonrpc":"2.0","method":"tennis@ping","id":1},{"jsonrpc":"2.0","method":"tennis@ping","id":2,}]'],
    ['single quotes', "{'jsonrpc':'2.0','method':'tennis@ping','id':1}"],
    ['leading zero', '{"jsonrpc":"2.0","method":"tennis@ping","id":01}'],
    ['NaN', '{"jsonrpc":"2.0","method":"tennis@ping","id":NaN}'],
    ['bad escape', '{"jsonrpc":"2.0","method":"tennis@ping","params":["\\x"],"id":1}'],
    ['raw control character', '{"jsonrpc":"2.0","method":"tennis@ping","params":["a\u0001b"],"id":1}'],
    ['invalid UTF-8', Buffer.concat([Buffer.from('{"jsonrpc":"2.0","method":"test.echo","params":["'), Buffer.from([0xff, 0xfe]), Buffer.from('"],"id":1}')])],
    ['overlong UTF-8', Buffer.concat([Buffer.from('{"jsonrpc":"2.0","method":"test.echo","params":["'), Buffer.from([0xc0, 0xaf]), Buffer.from('"],"id":1}')])],
    ['empty body', ''],
    ['whitespace only', ' \r\n\t '],
];

for (const [name, body] of INVALID_JSON) {
    test(`invalid JSON (${name}) → 200, single -32700 object, id null`, async () => {
        const r = await rpc(srv, body);
        assertJsonAnswer(r);
        assert.ok(r.json && !Array.isArray(r.json), `single object expected: ${r.body}`);
        assertError(r.json, -32700, null);
        assert.deepEqual(rawIds(r.body), ['null']);
    });
}

test('invalid JSON anywhere in a batch → nothing executed', async () => {
    const a = await createId(srv);
    const r = await rpc(srv, '[' + call('message@create', ['x'], 1) + ',' + call('message@create', ['y'], 2) + ',{"jsonrpc":}]');
    assertError(r.json, -32700, null);
    const b = await createId(srv);
    assert.equal(b, a + 1, 'no message was created by the unparsable batch');
});

test('[] → 200, single -32600 object, id null', async () => {
    for (const body of ['[]', ' [ ] ', '[\n]']) {
        const r = await rpc(srv, body);
        assertJsonAnswer(r);
        assert.ok(r.json && !Array.isArray(r.json), `single object expected for ${body}: ${r.body}`);
        assertError(r.json, -32600, null);
    }
});

test('[1,2,3] → 200, array of three -32600, id null', async () => {
    const r = await rpc(srv, '[1,2,3]');
    assertJsonAnswer(r);
    assert.ok(Array.isArray(r.json) && r.json.length === 3, r.body);
    for (const item of r.json) assertError(item, -32600, null);
    assert.deepEqual(rawIds(r.body), ['null', 'null', 'null']);
});

test('one-item batch → array of one', async () => {
    let r = await rpc(srv, batch([call('tennis@ping', undefined, 1)]));
    assertJsonAnswer(r);
    assert.deepEqual(r.json, [{ jsonrpc: '2.0', result: 'pong', id: 1 }]);
    // the same for an error item
    r = await rpc(srv, batch([call('no.such.method', undefined, 2)]));
    assert.ok(Array.isArray(r.json) && r.json.length === 1, r.body);
    assertError(r.json[0], -32601, 2);
});

test('batch over the default cap (1000) → every call -32005, nothing executed', async () => {
    const a = await createId(srv);
    const items = [];
    for (let i = 1; i <= 1001; i++) items.push(call('message@create', [`m${i}`], i));
    const r = await rpc(srv, batch(items));
    assertJsonAnswer(r);
    assert.ok(Array.isArray(r.json), r.body.slice(0, 200));
    assert.equal(r.json.length, 1001);
    r.json.forEach((item, i) => {
        assertError(item, -32005, i + 1);
        assert.match(item.error.message, /batch of 1001 exceeds limit 1000/);
    });
    const b = await createId(srv);
    assert.equal(b, a + 1, 'no message was created by the over-cap batch');
});

test('batch over a small --max-batch → every call -32005, nothing executed; at the cap runs', async () => {
    await withServer(['--max-batch', '3'], async (s) => {
        const a = await createId(s);
        let r = await rpc(s, batch([1, 2, 3].map((i) => call('message@create', ['x'], i))));
        assert.deepEqual(r.json.map((x) => x.id), [1, 2, 3]);
        r.json.forEach((x) => assert.equal(typeof x.result?.id, 'number', JSON.stringify(x)));

        r = await rpc(s, batch([1, 2, 3, 4].map((i) => call('message@create', ['x'], i))));
        assert.equal(r.json.length, 4, r.body);
        r.json.forEach((item, i) => {
            assertError(item, -32005, i + 1);
            assert.match(item.error.message, /batch of 4 exceeds limit 3/);
        });

        // notifications in an over-cap batch stay unanswered; the calls are answered -32005
        r = await rpc(s, batch([call('message@create', ['x'], 'a'), call('message@create', ['n']),
            call('message@create', ['x'], 'b'), call('message@create', ['x'], 'c')]));
        assert.equal(r.status, 200, r.body);
        assert.deepEqual(r.json.map((x) => x.id), ['a', 'b', 'c']);
        r.json.forEach((item) => {
            assertError(item, -32005);
            assert.match(item.error.message, /batch of 4 exceeds limit 3/);
        });
        const b = await createId(s);
        assert.equal(b, a + 3 + 1, 'only the at-cap batch created messages');
    });
});

test('no_batch method: -32004 inside a batch, the rest runs; alone it works', async () => {
    let r = await rpc(srv, call('test.nobatch', undefined, 1));
    assertResult(r.json, 'ok', 1);

    r = await rpc(srv, batch([call('test.nobatch', undefined, 1), call('tennis@ping', undefined, 2),
        call('test.nobatch'), call('subtract', [5, 3], 3)]));
    assert.equal(r.json.length, 3, r.body);
    assertError(r.json[0], -32004, 1);
    assert.match(r.json[0].error.message, /test\.nobatch/);
    assert.match(r.json[0].error.message, /not available in batch/);
    assertResult(r.json[1], 'pong', 2);
    assertResult(r.json[2], 2, 3);

    // a one-item batch is still a batch
    r = await rpc(srv, batch([call('test.nobatch', undefined, 9)]));
    assert.ok(Array.isArray(r.json) && r.json.length === 1, r.body);
    assertError(r.json[0], -32004, 9);
});

test('item over its deadline → that item -32002, finished items kept, answered early', async () => {
    // The slow items are testkit holds, which return only when released: each answer is read
    // before the release, and the release still finds the hold waiting, so the answer came from
    // the deadline while the handler ran. A server that waited for the handler never answers
    // (rpc's read timeout ends the test).
    await withServer(['--deadline', '300ms'], async (s) => {
        try {
            let [r, ms] = await timed(() => rpc(s, batch([call('test.hold', undefined, 1), call('tennis@ping', undefined, 2)])));
            assert.equal(r.status, 200);
            assert.equal(r.json.length, 2, r.body);
            assertError(r.json[0], -32002, 1);
            assertResult(r.json[1], 'pong', 2);
            assert.ok(ms >= 250, `answered after ${ms.toFixed(0)} ms, before the 300 ms deadline`);
            assert.equal(await release(s), 1, 'the worker handler was still held when the batch was answered');

            r = await rpc(s, batch([call('test.hold_async', undefined, 'slow'),
                call('test.sleep_async', [50], 'fast'), call('test.sleep', [20], 'w'), call('tennis@ping', undefined, 'p')]));
            assert.equal(r.json.length, 4, r.body);
            assertError(r.json[0], -32002, 'slow');
            assertResult(r.json[1], 50, 'fast');
            assertResult(r.json[2], 20, 'w');
            assertResult(r.json[3], 'pong', 'p');
            assert.equal(await release(s), 1, 'the async handler was still held when the batch was answered');

            // a single call over its deadline
            r = await rpc(s, call('test.hold_async', undefined, 5));
            assert.ok(!Array.isArray(r.json), r.body);
            assertError(r.json, -32002, 5);
            assert.equal(await release(s), 1, 'the handler was still held when the call was answered');
        } finally {
            await release(s).catch(() => {}); // a failed step must not leave jrpcd waiting on a hold
        }
    });
});

test('response over --max-response → items past the cap -32003 with their own ids', async () => {
    const CAP = 1000;
    await withServer(['--max-response', String(CAP)], async (s) => {
        const ids = [1, 2, 3, 4, 5, 6];
        const r = await rpc(s, batch(ids.map((i) => call('test.blob', [300], i))));
        assert.equal(r.status, 200);
        assert.equal(r.json.length, ids.length, r.body.slice(0, 300));
        assert.deepEqual(r.json.map((x) => x.id), ids, 'each item keeps its id, in order');
        const firstErr = r.json.findIndex((x) => 'error' in x);
        assert.ok(firstErr >= 1, `the first item fits under ${CAP} bytes: ${r.body.slice(0, 300)}`);
        assert.ok(firstErr <= 3, `at most three 300-byte results fit under ${CAP} bytes, got ${firstErr}`);
        r.json.forEach((x, i) => {
            if (i < firstErr) assertResult(x, 'x'.repeat(300), ids[i]);
            else assertError(x, -32003, ids[i]);
        });

        // a single answer over the cap
        const one = await rpc(s, call('test.blob', [5000], 'big'));
        assertError(one.json, -32003, 'big');
        assert.ok(one.bodyBuf.length < CAP, `error answer is small (${one.bodyBuf.length} bytes)`);

        const small = await rpc(s, call('test.blob', [100], 'small'));
        assertResult(small.json, 'x'.repeat(100), 'small');
    });
});

test('body over --max-body → 413 with a -32005 object, connection closed', async () => {
    const CAP = 1024;
    await withServer(['--max-body', '1KiB'], async (s) => {
        const ping = call('tennis@ping', undefined, 1);
        // exactly at the cap: accepted
        let r = await rpc(s, ping + ' '.repeat(CAP - ping.length));
        assertResult(r.json, 'pong', 1);

        // one byte over, Content-Length framed, body sent with the head
        let conn = await HttpConn.open(s);
        try {
            await conn.write(buildRequest(s, { body: ping + ' '.repeat(CAP + 1 - ping.length) }));
            r = decorate(await conn.readResponse());
            assert.equal(r.status, 413, r.head);
            assert.match(r.headers['content-type'] ?? '', /^application\/json\b/i);
            assertError(r.json, -32005, null);
            await conn.waitClosed();
        } finally {
            conn.close();
        }

        // a large Content-Length is refused from the head alone, without waiting for the body
        conn = await HttpConn.open(s);
        try {
            await conn.write(buildRequest(s, { headers: { 'Content-Length': String(100 * CAP) } }));
            r = decorate(await conn.readResponse());
            assert.equal(r.status, 413, r.head);
            assertError(r.json, -32005, null);
            await conn.waitClosed();
        } finally {
            conn.close();
        }

        // chunked: the server counts while reading
        conn = await HttpConn.open(s);
        try {
            const big = batch(Array.from({ length: 40 }, (_, i) => call('tennis@ping', undefined, i)));
            assert.ok(big.length > CAP);
            await conn.write(buildRequest(s, { headers: { 'Transfer-Encoding': 'chunked' }, body: chunked(big, [100]) }));
            r = decorate(await conn.readResponse());
            assert.equal(r.status, 413, r.head);
            assertError(r.json, -32005, null);
            await conn.waitClosed();
        } finally {
            conn.close();
        }
    });
});

test('id null is a call, answered', async () => {
    let r = await rpc(srv, call('tennis@ping', undefined, null));
    assert.equal(r.status, 200);
    assertResult(r.json, 'pong', null);
    assert.deepEqual(rawIds(r.body), ['null']);
    r = await rpc(srv, batch([call('tennis@ping', undefined, null), call('tennis@ping')]));
    assert.deepEqual(r.json, [{ jsonrpc: '2.0', result: 'pong', id: null }]);
});

test('GET on the RPC path → 405 with Allow: POST, OPTIONS', async () => {
    const r = await rpc(srv, undefined, { method: 'GET' });
    assert.equal(r.status, 405, r.head);
    assert.equal(r.headers.allow, 'POST, OPTIONS');
});

test('any Content-Type, or none, is accepted', async () => {
    const types = [null, 'application/json', 'application/json; charset=utf-8', 'text/plain',
        'application/x-www-form-urlencoded', 'application/octet-stream', 'nonsense'];
    for (const ct of types) {
        const r = await rpc(srv, call('tennis@ping', undefined, 1), { headers: ct === null ? {} : { 'Content-Type': ct } });
        assert.equal(r.status, 200, `Content-Type ${ct}: ${r.status}`);
        assertResult(r.json, 'pong', 1, `Content-Type ${ct}`);
    }
});

const INVALID_REQUESTS = [
    // [body, expected id]
    ['{"jsonrpc":"2.0","method":1,"id":1}', 1],
    ['{"jsonrpc":"1.0","method":"tennis@ping","id":2}', 2],
    ['{"method":"tennis@ping","id":3}', 3],
    ['{"jsonrpc":2.0,"method":"tennis@ping","id":4}', 4],
    ['{"jsonrpc":"2.0","id":5}', 5],
    ['{"jsonrpc":"2.0","method":"subtract","params":"bar","id":6}', 6],
    ['{"jsonrpc":"2.0","method":"subtract","params":42,"id":7}', 7],
    ['{"jsonrpc":"2.0","method":null,"id":8}', 8],
    ['{"jsonrpc":"2.0","method":1}', null],
    ['{"jsonrpc":"1.0","method":"tennis@ping"}', null],
    ['{}', null],
    ['"a string"', null],
    ['42', null],
    ['null', null],
    ['true', null],
];

test('invalid request objects → -32600 (id kept when valid, null otherwise)', async () => {
    for (const [body, id] of INVALID_REQUESTS) {
        const r = await rpc(srv, body);
        assert.equal(r.status, 200, body);
        assert.ok(r.json && !Array.isArray(r.json), `${body} → ${r.body}`);
        assertError(r.json, -32600, id, body);
    }
    // the same inside a batch: one answer each, in order, valid items still run
    const r = await rpc(srv, batch([...INVALID_REQUESTS.map(([b]) => b), call('tennis@ping', undefined, 'ok')]));
    assert.equal(r.json.length, INVALID_REQUESTS.length + 1, r.body);
    INVALID_REQUESTS.forEach(([body, id], i) => assertError(r.json[i], -32600, id, body));
    assertResult(r.json.at(-1), 'pong', 'ok');
});

test('extra members in a request object are ignored', async () => {
    const r = await rpc(srv, '{"jsonrpc":"2.0","method":"tennis@ping","extra":{"a":[1,{"id":2}]},"Method":"x","id":1,"z":null}');
    assertResult(r.json, 'pong', 1);
});

test('escaped envelope strings mean what they decode to', async () => {
    const r = await rpc(srv, '{"jsonrpc":"2\\u002e0","method":"tennis\\u0040ping","id":1}');
    assertResult(r.json, 'pong', 1);
});

test('duplicated envelope member → -32600', async () => {
    const cases = [
        ['{"jsonrpc":"2.0","method":"tennis@ping","method":"subtract","id":5}', 5],
        ['{"jsonrpc":"2.0","jsonrpc":"2.0","method":"tennis@ping","id":6}', 6],
        ['{"jsonrpc":"2.0","method":"subtract","params":[1,2],"params":[3,4],"id":7}', 7],
        ['{"jsonrpc":"2.0","method":"tennis@ping","id":1,"id":2}', null],
    ];
    for (const [body, id] of cases) {
        const r = await rpc(srv, body);
        assertError(r.json, -32600, id, body);
    }
    const r = await rpc(srv, batch([cases[0][0], call('tennis@ping', undefined, 'p')]));
    assertError(r.json[0], -32600, 5);
    assertResult(r.json[1], 'pong', 'p');
});

test('unknown method → -32601 with its id', async () => {
    let r = await rpc(srv, call('no.such.method', [1], 'x'));
    assertError(r.json, -32601, 'x');
    r = await rpc(srv, batch([call('tennis@ping', undefined, 1), call('no.such.method', undefined, 2)]));
    assertResult(r.json[0], 'pong', 1);
    assertError(r.json[1], -32601, 2);
});

test('handler errors carry code, message and data as given', async () => {
    let r = await rpc(srv, call('test.fail', [-32000, 'boom', { k: [1, 2], s: 'é' }], 1));
    assert.deepEqual(r.json, { jsonrpc: '2.0', error: { code: -32000, message: 'boom', data: { k: [1, 2], s: 'é' } }, id: 1 });
    r = await rpc(srv, call('test.fail', [-32099, 'plain'], 2));
    assert.deepEqual(r.json, { jsonrpc: '2.0', error: { code: -32099, message: 'plain' }, id: 2 });
    r = await rpc(srv, call('test.fail', [42, 'quote " and \\ and \n newline'], 3));
    assert.deepEqual(r.json.error, { code: 42, message: 'quote " and \\ and \n newline' });
});

test('params are forwarded byte-exact (test.echo, inline and worker)', async () => {
    const params = '{"a":1,"a":2, "b" : [1.50,1e400,-0,14066156191713469572,"\\u00e9","é\\n"] ,"c":{}}';
    for (const m of ['test.echo', 'test.worker_echo']) {
        let r = await rpc(srv, `{"jsonrpc":"2.0","method":"${m}","params":${params},"id":1}`);
        assert.equal(r.status, 200);
        assert.equal(rawMembers(r.body).result, params, `${m}: ${r.body}`);
        r = await rpc(srv, call(m, undefined, 2));
        assertResult(r.json, null, 2, m);
        r = await rpc(srv, call(m, '[ ]', 3));
        assert.equal(rawMembers(r.body).result, '[ ]', m);
    }
});

test('server still healthy, SIGTERM exits 0', async () => {
    await healthy(srv);
    await srv.stop();
});
