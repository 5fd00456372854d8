// SPDX-License-Identifier: MIT
// The wire contract of DESIGN.md §3, as one table that both transports run (contract.test.mjs):
// every row that makes sense over WebSocket as well as HTTP states its input once and checks the
// answer once, with the few differences the transports really have spelled out in the row (HTTP
// says "no answer" with 204, WebSocket by sending nothing; an over-cap body is a 413 over HTTP
// and a close 1009 over WebSocket; the batch cap is 1000 vs 20).

import assert from 'node:assert/strict';
import { rpc, call, batch, rawIds, assertError, assertResult } from './lib.mjs';
import { WsClient } from './wslib.mjs';

/**
 * Transports. send(server, body, row) resolves to one of
 *   { none: true }                     nothing answered (HTTP 204, WebSocket silence)
 *   { text, json, status?, headers? }  one answer
 *   { limit: … }                       the transport's refusal of an over-size body
 * `cap` is the transport's default batch cap.
 */
export const TRANSPORTS = [
    {
        name: 'http',
        cap: 1000,
        async send(server, body, row) {
            const r = await rpc(server, body);
            if (row.limit) return { limit: { status: r.status, json: r.json } };
            if (r.status === 204) {
                assert.equal(r.body, '', '204 carries no body');
                return { none: true };
            }
            assert.equal(r.status, 200, `${r.status} ${r.body}`);
            assert.match(r.headers['content-type'] ?? '', /^application\/json\b/i);
            return { text: r.body, json: r.json };
        },
    },
    {
        name: 'ws',
        cap: 20,
        async send(server, body, row) {
            const ws = await WsClient.open(server);
            try {
                await ws.send(body);
                if (row.limit) return { limit: await ws.closed() };
                if (row.answered === false) {
                    // Messages are read in order: an answer would come before the probe's.
                    const before = await ws.untilProbe();
                    assert.deepEqual(before, [], 'nothing answered before the probe');
                    return { none: true };
                }
                const m = await ws.next();
                assert.equal(m.binary, false, 'a text message is answered in a text frame');
                let json;
                try { json = JSON.parse(m.text); } catch { json = undefined; }
                // The connection stays usable after any answer.
                const again = await ws.call('tennis@ping', undefined, 'after');
                assertResult(again, 'pong', 'after');
                return { text: m.text, json };
            } finally {
                ws.terminate();
            }
        },
    },
];

const ping = (id) => call('tennis@ping', undefined, id);

function single(a) {
    assert.ok(a.json && !Array.isArray(a.json), `one object expected: ${a.text}`);
    return a.json;
}

function array(a, n) {
    assert.ok(Array.isArray(a.json), `an array expected: ${a.text?.slice(0, 200)}`);
    if (n !== undefined) assert.equal(a.json.length, n, a.text?.slice(0, 200));
    return a.json;
}

/** The rows. `body` is text or (t) => text; `args` start a server of their own. */
export const ROWS = [
    {
        row: 'valid single call → result with the same id bytes',
        body: '{"jsonrpc":"2.0","method":"tennis@ping","id":14066156191713469572}',
        expect(a) {
            assert.equal(single(a).result, 'pong');
            assert.deepEqual(rawIds(a.text), ['14066156191713469572'], 'id echoed byte-exact');
        },
    },
    {
        row: 'single notification → no answer',
        answered: false,
        body: call('tennis@ping'),
        expect(a) { assert.ok(a.none); },
    },
    {
        row: 'notification that fails → still no answer',
        answered: false,
        body: call('no.such.method', [1]),
        expect(a) { assert.ok(a.none); },
    },
    {
        row: 'batch of only notifications → no answer',
        answered: false,
        body: batch([call('tennis@ping'), call('no.such.method'), call('test.fail', [-32000, 'x'])]),
        expect(a) { assert.ok(a.none); },
    },
    {
        row: 'invalid JSON (truncated) → single -32700, id null',
        body: '{"jsonrpc":"2.0","method":"tennis@ping","id":1',
        expect(a) { assertError(single(a), -32700, null); },
    },
    {
        row: 'invalid JSON (inside a batch) → single -32700, id null',
        body: '[' + ping(1) + ',{"jsonrpc":}]',
        expect(a) { assertError(single(a), -32700, null); },
    },
    {
        row: 'invalid JSON (empty message) → single -32700, id null',
        body: '',
        expect(a) { assertError(single(a), -32700, null); },
    },
    {
        row: '[] → single -32600, id null',
        body: '[]',
        expect(a) { assertError(single(a), -32600, null); },
    },
    {
        row: '[1,2,3] → array of three -32600, id null',
        body: '[1,2,3]',
        expect(a) {
            for (const item of array(a, 3)) assertError(item, -32600, null);
        },
    },
    {
        row: 'one-item batch → array of one',
        body: batch([ping(1)]),
        expect(a) { assert.deepEqual(array(a, 1), [{ jsonrpc: '2.0', result: 'pong', id: 1 }]); },
    },
    {
        row: 'batch at the transport cap → every item runs, in request order',
        body: (t) => batch(Array.from({ length: t.cap }, (_, i) => call('test.echo', [i], i))),
        expect(a, t) {
            array(a, t.cap).forEach((item, i) => assertResult(item, [i], i));
        },
    },
    {
        row: 'batch over the transport cap → every call -32005, nothing executed',
        body: (t) => batch(Array.from({ length: t.cap + 1 }, (_, i) => call('test.echo', [i], i))),
        expect(a, t) {
            array(a, t.cap + 1).forEach((item, i) => {
                assertError(item, -32005, i);
                assert.match(item.error.message, new RegExp(`batch of ${t.cap + 1} exceeds limit ${t.cap}`));
            });
        },
    },
    {
        row: 'no_batch method inside a batch → that item -32004, the rest runs',
        body: batch([call('test.nobatch', undefined, 1), ping(2)]),
        expect(a) {
            const [x, y] = array(a, 2);
            assertError(x, -32004, 1);
            assertResult(y, 'pong', 2);
        },
    },
    {
        row: 'no_batch method alone → works',
        body: call('test.nobatch', undefined, 1),
        expect(a) { assertResult(single(a), 'ok', 1); },
    },
    {
        row: 'item over its deadline → that item -32002, finished items kept',
        args: ['--deadline', '300ms'],
        body: batch([call('test.sleep_async', [3000], 1), ping(2)]),
        expect(a) {
            const [x, y] = array(a, 2);
            assertError(x, -32002, 1);
            assertResult(y, 'pong', 2);
        },
    },
    {
        row: 'response over max_response → items past the cap -32003 with their own ids',
        args: ['--max-response', '1000'],
        body: batch([1, 2, 3, 4, 5].map((i) => call('test.blob', [300], i))),
        expect(a) {
            const items = array(a, 5);
            assert.deepEqual(items.map((x) => x.id), [1, 2, 3, 4, 5]);
            assertResult(items[0], 'x'.repeat(300), 1);
            assertError(items[4], -32003, 5);
        },
    },
    {
        row: 'body over the size cap → refused (HTTP 413 + -32005; WebSocket close 1009)',
        args: ['--max-body', '1KiB', '--max-ws-message', '1KiB'],
        limit: true,
        body: call('test.echo', ['x'.repeat(1100)], 1),
        expect(a, t) {
            if (t.name === 'http') {
                assert.equal(a.limit.status, 413);
                assertError(a.limit.json, -32005, null);
            } else {
                assert.equal(a.limit.code, 1009, JSON.stringify(a.limit));
            }
        },
    },
    {
        row: 'id null → a call, answered',
        body: ping(null),
        expect(a) {
            assertResult(single(a), 'pong', null);
            assert.deepEqual(rawIds(a.text), ['null']);
        },
    },
];
