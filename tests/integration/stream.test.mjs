// SPDX-License-Identifier: MIT
// Streamed batch answers (docs/compression.md): a batch still running after its first loop turn
// is answered with chunked encoding as its items finish, in request order (the finished prefix)
// or, by config or the Jrpc-Batch-Order header, in completion order. The slow item is test.hold,
// which waits for a release the test sends only after it saw the first bytes: bytes arriving
// while the hold is provably still waiting is what "early" means here, never a clock.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { withServer, HttpConn, buildRequest, call, batch, rpc, waitHeld, release, decorate, scrapeAdmin, compressionSeries } from './lib.mjs';
import { waitFor } from './wslib.mjs';

const WAIT_MS = 10_000;
const HOLD = (id) => call('test.hold', undefined, id);

/** Waits until conn has received a response head and body bytes for which pred(body) holds
 * (the body de-chunked as far as it came); returns { head, body }. */
async function waitBody(conn, pred, what) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
        const got = partial(conn.buf);
        if (got && pred(got.body)) return got;
        if (conn.ended) throw new Error(`closed before ${what}: ${conn.buf.toString('latin1').slice(0, 300)}`);
        try { await conn._wait(deadline); } catch { throw new Error(`no ${what} within ${WAIT_MS} ms: ${JSON.stringify(conn.buf.toString('latin1').slice(0, 300))}`); }
    }
}

/** The head and the chunked body received so far (complete chunks only), or null. */
function partial(buf) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const head = buf.subarray(0, end).toString('latin1');
    let off = end + 4;
    const parts = [];
    if (!/transfer-encoding: chunked/i.test(head)) return { head, body: buf.subarray(off) };
    for (;;) {
        const le = buf.indexOf('\r\n', off);
        if (le < 0) break;
        const size = parseInt(buf.subarray(off, le).toString('latin1'), 16);
        if (size === 0 || buf.length < le + 2 + size + 2) break;
        parts.push(buf.subarray(le + 2, le + 2 + size));
        off = le + 2 + size + 2;
    }
    return { head, body: Buffer.concat(parts) };
}

/** Opens a connection and sends body with headers; the connection. */
async function send(s, body, headers = {}, version) {
    const conn = await HttpConn.open(s);
    await conn.write(buildRequest(s, { body, headers, version }));
    return conn;
}

/** A full round trip on another connection: with one io thread, every turn the loop had queued
 * before it (a posted flush) has run by the time it is answered. */
const turn = async (s) => assert.equal((await rpc(s, call('tennis@ping', undefined, 't'))).json.result, 'pong');

const ids = (json) => json.map((e) => e.id);

test('request order: the first item arrives while the second still runs, then the rest; ids and count right', async () => {
    await withServer(['--io-threads', '1'], async (s) => {
        const conn = await send(s, batch([call('test.sleep', [10], 1), HOLD(2)]));
        try {
            const got = await waitBody(conn, (b) => b.includes('"id":1}'), 'the first item');
            assert.match(got.head, /^HTTP\/1\.1 200/);
            assert.match(got.head, /transfer-encoding: chunked/i);
            assert.doesNotMatch(got.head, /content-length/i);
            assert.equal(got.body.toString(), '[{"jsonrpc":"2.0","result":10,"id":1}');
            await waitHeld(s, 1); // the second item runs, and cannot end before the release below
            await release(s);
            const res = decorate(await conn.readResponse());
            assert.equal(res.framing, 'chunked');
            assert.deepEqual(res.json, [{ jsonrpc: '2.0', result: 10, id: 1 }, { jsonrpc: '2.0', result: true, id: 2 }]);
        } finally {
            conn.close();
        }
        // Inline items that finished at once go first, before any worker item completed.
        const c2 = await send(s, batch([call('test.echo', ['a'], 'e'), HOLD('h')]));
        try {
            const got = await waitBody(c2, (b) => b.length > 0, 'the inline item');
            assert.equal(got.body.toString(), '[{"jsonrpc":"2.0","result":["a"],"id":"e"}');
            await waitHeld(s, 1);
            await release(s);
            assert.deepEqual(ids(decorate(await c2.readResponse()).json), ['e', 'h']);
        } finally {
            c2.close();
        }
    });
});

test('request order with the slow item first: nothing is written until it finishes', async () => {
    await withServer(['--io-threads', '1'], async (s) => {
        const conn = await send(s, batch([HOLD(1), call('test.echo', [2], 2), call('test.sleep', [1], 3)]));
        try {
            await waitHeld(s, 1);
            await turn(s);
            await turn(s);
            assert.equal(conn.buf.length, 0, 'no byte before the first item is done');
            await release(s);
            const res = decorate(await conn.readResponse());
            assert.deepEqual(ids(res.json), [1, 2, 3]);
        } finally {
            conn.close();
        }
    });
});

test('completion order: by header and by config, each item as soon as it is done', async () => {
    await withServer(['--io-threads', '1'], async (s) => {
        const body = batch([HOLD(1), call('test.sleep', [5], 2), call('test.echo', [3], 3)]);
        const conn = await send(s, body, { 'Jrpc-Batch-Order': 'completion' });
        try {
            const got = await waitBody(conn, (b) => b.includes('"id":2}'), 'the finished items');
            await waitHeld(s, 1); // the first item runs, and cannot end before the release below
            const early = JSON.parse(got.body.toString() + ']');
            assert.deepEqual(ids(early).sort(), [2, 3]);
            await release(s);
            const res = decorate(await conn.readResponse());
            assert.equal(res.json.length, 3);
            assert.deepEqual(ids(res.json).slice(0, 2).sort(), [2, 3]);
            assert.equal(res.json[2].id, 1);
        } finally {
            conn.close();
        }
        // A bad value is refused.
        const bad = await rpc(s, body, { headers: { 'Jrpc-Batch-Order': 'random' } });
        assert.equal(bad.status, 400);
        assert.match(bad.json.error.message, /Jrpc-Batch-Order/);
    });
    await withServer(['--io-threads', '1', '--batch-order', 'completion'], async (s) => {
        const body = batch([HOLD(1), call('test.echo', [2], 2)]);
        const conn = await send(s, body);
        try {
            await waitBody(conn, (b) => b.includes('"id":2}'), 'the finished item');
            await waitHeld(s, 1);
            await release(s);
            assert.deepEqual(ids(decorate(await conn.readResponse()).json), [2, 1]);
        } finally {
            conn.close();
        }
        // The header overrides the config: request order, nothing before the hold is done.
        const c2 = await send(s, body, { 'Jrpc-Batch-Order': 'request' });
        try {
            await waitHeld(s, 1);
            await turn(s);
            assert.equal(c2.buf.length, 0);
            await release(s);
            assert.deepEqual(ids(decorate(await c2.readResponse()).json), [1, 2]);
        } finally {
            c2.close();
        }
    });
});

test('max_response counts what was written: items past it get -32003 with their ids, and count so', async () => {
    await withServer(['--io-threads', '1', '--max-response', '200', '--admin-listen', '127.0.0.1:0'], async (s) => {
        const conn = await send(s, batch([call('test.blob', [150], 1), HOLD(2), call('test.echo', [3], 3)]));
        try {
            const got = await waitBody(conn, (b) => b.length > 0, 'the first item');
            assert.ok(got.body.length <= 200);
            await waitHeld(s, 1);
            await release(s);
            const res = decorate(await conn.readResponse());
            assert.equal(res.json[0].result.length, 150);
            assert.deepEqual(res.json.slice(1).map((e) => [e.id, e.error?.code]), [[2, -32003], [3, -32003]]);
        } finally {
            conn.close();
        }
        // jrpc_calls_total says what the client got: -32003 for the two, whatever they returned.
        const m = await scrapeAdmin(s);
        const calls = (method, code) => m.get(`jrpc_calls_total{transport="http",method="${method}",code="${code}"}`);
        assert.equal(calls('test.blob', 'ok'), 1);
        assert.equal(calls('test.hold', '-32003'), 1);
        assert.equal(calls('test.echo', '-32003'), 1);
        assert.equal(calls('test.hold', 'ok'), undefined);
        assert.equal(m.get('jrpc_limit_rejections_total{limit="max_response"}'), 1, 'one answer cut');
        assert.equal(m.get('jrpc_http_batch_answers_total{mode="streamed",order="request"}'), 1);
    });
});

test('HTTP/1.0 gets the whole answer with a Content-Length', async () => {
    await withServer(['--io-threads', '1'], async (s) => {
        const conn = await send(s, batch([call('test.echo', [1], 1), HOLD(2)]), {}, 'HTTP/1.0');
        try {
            await waitHeld(s, 1);
            await turn(s);
            assert.equal(conn.buf.length, 0, 'nothing before the batch is done');
            await release(s);
            const res = decorate(await conn.readResponse());
            assert.equal(res.framing, 'length');
            assert.deepEqual(ids(res.json), [1, 2]);
        } finally {
            conn.close();
        }
    });
});

test('a batch that finishes at once is one piece with a Content-Length', async () => {
    await withServer([], async (s) => {
        const conn = await send(s, batch([call('test.echo', [1], 1), call('tennis@ping', undefined, 2)]));
        try {
            const res = decorate(await conn.readResponse());
            assert.equal(res.framing, 'length');
            assert.deepEqual(ids(res.json), [1, 2]);
        } finally {
            conn.close();
        }
    });
});

test('gzip works with streaming: the first item decodes from the bytes so far', async () => {
    await withServer(['--io-threads', '1'], async (s) => {
        const conn = await send(s, batch([call('test.sleep', [10], 1), HOLD(2)]), { 'Accept-Encoding': 'gzip' });
        try {
            const inflate = (b) => zlib.gunzipSync(b, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString();
            const got = await waitBody(conn, (b) => b.length > 10 && inflate(b).includes('"id":1}'), 'the first item');
            assert.match(got.head, /content-encoding: gzip/i);
            await waitHeld(s, 1);
            await release(s);
            const res = await conn.readResponse();
            assert.equal(zlib.gunzipSync(res.bodyBuf).toString(),
                '[{"jsonrpc":"2.0","result":10,"id":1},{"jsonrpc":"2.0","result":true,"id":2}]');
        } finally {
            conn.close();
        }
    });
});

test('a client that leaves mid-stream: its calls finish, nothing is left behind, the next ones are served', async () => {
    await withServer(['--io-threads', '1', '--admin-listen', '127.0.0.1:0'], async (s) => {
        for (let i = 0; i < 3; i++) {
            const conn = await send(s, batch([call('test.blob', [20000], 1), HOLD(2), call('test.blob', [20000], 3)]),
                i === 1 ? { 'Accept-Encoding': 'gzip' } : {});
            await waitBody(conn, (b) => b.length > 0, 'the first item');
            conn.close();
            await waitHeld(s, 1);
            await release(s);
        }
        // Each was counted as streamed when its head went; the gzip one's state was given back.
        assert.equal((await scrapeAdmin(s)).get('jrpc_http_batch_answers_total{mode="streamed",order="request"}'), 3);
        await waitFor(async () => compressionSeries(await scrapeAdmin(s), 'http').state === 0, { what: 'the gzip state given back' });
        const m = await rpc(s, batch([call('test.sleep', [5], 1), call('test.sleep', [1], 2)]));
        assert.deepEqual(ids(m.json), [1, 2]);
    });
});

test('pipelined after a streamed answer: the next answer follows it, in order', async () => {
    await withServer(['--io-threads', '1'], async (s) => {
        const conn = await HttpConn.open(s);
        try {
            await conn.write(Buffer.concat([buildRequest(s, { body: batch([call('test.sleep', [5], 1), HOLD(2)]) }),
                buildRequest(s, { body: call('tennis@ping', undefined, 'p') })]));
            await waitBody(conn, (b) => b.includes('"id":1}'), 'the first item');
            await waitHeld(s, 1);
            await release(s);
            const [a, b] = await conn.readResponses(2);
            assert.deepEqual(ids(decorate(a).json), [1, 2]);
            assert.equal(decorate(b).json.result, 'pong');
        } finally {
            conn.close();
        }
    });
});

test('metrics: batch answers streamed or buffered, by order; a streamed gzip answer counts what arrived', async () => {
    await withServer(['--io-threads', '1', '--admin-listen', '127.0.0.1:0'], async (s) => {
        const answers = async () => {
            const m = await scrapeAdmin(s);
            const out = {};
            for (const mode of ['buffered', 'streamed'])
                for (const order of ['request', 'completion'])
                    out[`${mode}/${order}`] = m.get(`jrpc_http_batch_answers_total{mode="${mode}",order="${order}"}`);
            return out;
        };
        const zero = { 'buffered/request': 0, 'buffered/completion': 0, 'streamed/request': 0, 'streamed/completion': 0 };
        assert.deepEqual(await answers(), zero);
        // Done at once: buffered, whatever the order asked (single calls are not batches).
        assert.equal((await rpc(s, batch([call('test.echo', [1], 1), call('tennis@ping', undefined, 2)]))).json.length, 2);
        await rpc(s, batch([call('test.echo', [1], 1)]), { headers: { 'Jrpc-Batch-Order': 'completion' } });
        await rpc(s, call('test.echo', [1], 1));
        // HTTP/1.0, still running after its first turn: buffered too.
        const c10 = await send(s, batch([call('test.echo', [1], 1), HOLD(2)]), {}, 'HTTP/1.0');
        try {
            await waitHeld(s, 1);
            await release(s);
            assert.equal(decorate(await c10.readResponse()).framing, 'length');
        } finally {
            c10.close();
        }
        assert.deepEqual(await answers(), { ...zero, 'buffered/request': 2, 'buffered/completion': 1 });

        // Streamed with gzip, request order: counted once as a gzip answer when its head goes, its
        // encoder's state held while the hold runs and given back once the answer is written.
        const conn = await send(s, batch([call('test.blob', [3000], 1), HOLD(2)]), { 'Accept-Encoding': 'gzip' });
        let body;
        try {
            await waitBody(conn, (b) => b.length > 0, 'the first item');
            await waitHeld(s, 1);
            const mid = compressionSeries(await scrapeAdmin(s), 'http');
            assert.equal(mid.out.msgs, 1);
            assert.ok(mid.state > 100 << 10, `gzip state ${mid.state} bytes while streaming`);
            await release(s);
            body = (await conn.readResponse()).bodyBuf; // de-chunked: the gzip stream as sent
        } finally {
            conn.close();
        }
        const plain = zlib.gunzipSync(body);
        assert.equal(JSON.parse(plain).length, 2);
        await waitFor(async () => compressionSeries(await scrapeAdmin(s), 'http').state === 0, { what: 'the gzip state given back' });
        assert.deepEqual(compressionSeries(await scrapeAdmin(s), 'http').out, { msgs: 1, plain: plain.length, wire: body.length });

        // Completion order by header, streamed.
        const cc = await send(s, batch([HOLD(1), call('test.echo', [2], 2)]), { 'Jrpc-Batch-Order': 'completion' });
        try {
            await waitBody(cc, (b) => b.includes('"id":2}'), 'the finished item');
            await waitHeld(s, 1);
            await release(s);
            assert.deepEqual(ids(decorate(await cc.readResponse()).json), [2, 1]);
        } finally {
            cc.close();
        }
        assert.deepEqual(await answers(), { 'buffered/request': 2, 'buffered/completion': 1, 'streamed/request': 1, 'streamed/completion': 1 });
    });
});
