// SPDX-License-Identifier: MIT
// HTTP/1.1 transport: keep-alive, pipelining, chunked bodies, Expect: 100-continue, status
// codes (405, 404, 413, 431), Connection: close, HTTP/1.0, tiny writes, paths, and graceful
// SIGTERM with a request in flight. All over raw sockets so every byte is ours.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    startServer, withServer, healthy, rpc, call, batch, HttpConn, buildRequest, chunked, decorate,
    assertError, assertResult, RPC_PATH,
} from './lib.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.kill(); });

const ping = (id) => call('tennis@ping', undefined, id);

async function withConn(server, fn) {
    const conn = await HttpConn.open(server);
    try {
        return await fn(conn);
    } finally {
        conn.close();
    }
}

test('keep-alive: several requests on one connection, also after errors', async () => {
    await withConn(srv, async (conn) => {
        const bodies = [ping(1), '{"broken', ping(2), call('no.such.method', undefined, 3), '[]', ping(4)];
        for (const b of bodies) {
            const r = await conn.request(srv, { body: b });
            assert.equal(r.status, 200, r.head);
            assert.notEqual((r.headers.connection ?? '').toLowerCase(), 'close', r.head);
        }
        const r404 = await conn.request(srv, { path: '/nope', method: 'GET' });
        assert.equal(r404.status, 404);
        const r405 = await conn.request(srv, { method: 'GET' });
        assert.equal(r405.status, 405);
        const r = await conn.request(srv, { body: ping(6) });
        assertResult(r.json, 'pong', 6);
        assert.ok(!conn.ended, 'connection still open');
    });
});

test('a refused request with a body: keep-alive, or Connection: close and closed', async () => {
    // The server may discard the unwanted body and keep the connection, or say Connection:
    // close and close it; what it must not do is leave the client guessing.
    for (const opts of [{ path: '/nope', body: ping(1) }, { method: 'PUT', body: ping(1) }]) {
        await withConn(srv, async (conn) => {
            const r = await conn.request(srv, opts);
            assert.equal(r.status, opts.method ? 405 : 404, r.head);
            if ((r.headers.connection ?? '').toLowerCase() === 'close') {
                await conn.waitClosed();
            } else {
                const again = await conn.request(srv, { body: ping(2) });
                assertResult(again.json, 'pong', 2);
            }
        });
    }
});

test('pipelining: 10 requests in one write answered in order (slow ones first)', async () => {
    const bodies = [
        call('test.sleep', [200], 0), ping(1), call('test.sleep_async', [100], 2), call('test.echo', ['e'], 3),
        call('tennis@ping'), // notification: 204 in its place
        call('test.sleep', [50], 5), ping(6), batch([call('test.sleep_async', [30], 7), ping(7.5)]),
        call('test.worker_echo', { w: 8 }, 8), ping(9),
    ];
    await withConn(srv, async (conn) => {
        await conn.write(Buffer.concat(bodies.map((body) => buildRequest(srv, { body }))));
        const res = (await conn.readResponses(bodies.length)).map(decorate);
        assertResult(res[0].json, 200, 0);
        assertResult(res[1].json, 'pong', 1);
        assertResult(res[2].json, 100, 2);
        assertResult(res[3].json, ['e'], 3);
        assert.equal(res[4].status, 204);
        assert.equal(res[4].body, '');
        assertResult(res[5].json, 50, 5);
        assertResult(res[6].json, 'pong', 6);
        assert.deepEqual(res[7].json, [{ jsonrpc: '2.0', result: 30, id: 7 }, { jsonrpc: '2.0', result: 'pong', id: 7.5 }]);
        assertResult(res[8].json, { w: 8 }, 8);
        assertResult(res[9].json, 'pong', 9);
    });
});

test('chunked request bodies: chunk sizes, extensions, trailers, upper-case hex', async () => {
    const body = batch(Array.from({ length: 30 }, (_, i) => ping(i)));
    const expected = Array.from({ length: 30 }, (_, i) => ({ jsonrpc: '2.0', result: 'pong', id: i }));
    const variants = [
        ['1-byte chunks', chunked(body, [1])],
        ['7-byte chunks', chunked(body, [7])],
        ['mixed sizes', chunked(body, [3, 1, 4, 1, 5, 9, 26, 535])],
        ['one chunk', chunked(body, [1 << 20])],
        ['extensions', chunked(body, [100], { ext: ';foo=bar;baz' })],
        ['trailers', chunked(body, [64], { trailers: [['X-Trailer', 'v'], ['X-Other', '1']] })],
        ['upper-case hex', Buffer.from(`${(body.length).toString(16).toUpperCase()}\r\n${body}\r\n0\r\n\r\n`)],
    ];
    await withConn(srv, async (conn) => {
        for (const [name, enc] of variants) {
            const r = await conn.request(srv, { headers: { 'Transfer-Encoding': 'chunked' }, body: enc });
            assert.equal(r.status, 200, `${name}: ${r.head}`);
            assert.deepEqual(r.json, expected, name);
        }
    });
    // a chunked body trickling in over many small writes
    await withConn(srv, async (conn) => {
        await conn.writeSlowly(buildRequest(srv, { headers: { 'Transfer-Encoding': 'chunked' }, body: chunked(body, [50]) }), 37);
        const r = decorate(await conn.readResponse());
        assert.deepEqual(r.json, expected);
    });
});

test('Expect: 100-continue → 100 Continue before the body is sent, then the answer', async () => {
    const body = ping(1);
    await withConn(srv, async (conn) => {
        await conn.write(buildRequest(srv, { headers: { 'Content-Length': String(body.length), Expect: '100-continue' } }));
        const interim = await conn.readResponse({ includeInterim: true });
        assert.equal(interim.status, 100, interim.head);
        await conn.write(body);
        const r = decorate(await conn.readResponse());
        assertResult(r.json, 'pong', 1);
        // the connection stays usable
        const r2 = await conn.request(srv, { body: ping(2) });
        assertResult(r2.json, 'pong', 2);
    });
    // a client that sends the body without waiting still gets its answer
    await withConn(srv, async (conn) => {
        await conn.write(buildRequest(srv, { headers: { Expect: '100-continue' }, body }));
        const r = decorate(await conn.readResponse());
        assertResult(r.json, 'pong', 1);
        assert.ok(r.interim.every((x) => x.status === 100), 'only 100 as interim');
    });
});

test('Expect: 100-continue with a body over --max-body → 413 without 100, closed', async () => {
    await withServer(['--max-body', '1KiB'], async (s) => {
        await withConn(s, async (conn) => {
            await conn.write(buildRequest(s, { headers: { 'Content-Length': '100000', Expect: '100-continue' } }));
            const r = decorate(await conn.readResponse({ includeInterim: true }));
            assert.equal(r.status, 413, r.head);
            assertError(r.json, -32005, null);
            await conn.waitClosed();
        });
    });
});

test('GET on the RPC paths → 405 with Allow: POST, OPTIONS', async () => {
    for (const p of [RPC_PATH, '/']) {
        const r = await rpc(srv, undefined, { method: 'GET', path: p });
        assert.equal(r.status, 405, `${p}: ${r.head}`);
        assert.equal(r.headers.allow, 'POST, OPTIONS', p);
    }
});

test('other paths → 404', async () => {
    for (const p of ['/nope', '/api/v1', '/api/v1/endpointx', '/api/v1/endpoint/extra', '/api/v2/endpoint']) {
        const r = await rpc(srv, ping(1), { path: p });
        assert.equal(r.status, 404, `POST ${p}: ${r.head}`);
        const g = await rpc(srv, undefined, { path: p, method: 'GET' });
        assert.equal(g.status, 404, `GET ${p}: ${g.head}`);
    }
});

test('headers over --max-header → 431', async () => {
    await withServer(['--max-header', '2KiB'], async (s) => {
        let r = await rpc(s, ping(1), { headers: { 'X-Pad': 'a'.repeat(1000) } });
        assertResult(r.json, 'pong', 1);
        r = await rpc(s, ping(2), { headers: { 'X-Pad': 'a'.repeat(4096) } });
        assert.equal(r.status, 431, r.head);
        const many = Array.from({ length: 100 }, (_, i) => [`X-H${i}`, 'v'.repeat(40)]);
        r = await rpc(s, ping(3), { headers: many });
        assert.equal(r.status, 431, r.head);
    });
});

test('answers carry Content-Type: application/json', async () => {
    for (const body of [ping(1), '{', '[]', batch([ping(1), ping(2)]), call('no.such.method', undefined, 1)]) {
        const r = await rpc(srv, body);
        assert.equal(r.status, 200);
        assert.match(r.headers['content-type'] ?? '', /^application\/json\b/i, `${body}: ${r.head}`);
    }
});

test('a request without Content-Type is answered', async () => {
    await withConn(srv, async (conn) => {
        const req = `POST ${RPC_PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${ping(1).length}\r\n\r\n${ping(1)}`;
        await conn.write(req);
        const r = decorate(await conn.readResponse());
        assertResult(r.json, 'pong', 1);
    });
});

test('Connection: close is honoured', async () => {
    await withConn(srv, async (conn) => {
        const r = await conn.request(srv, { headers: { Connection: 'close' }, body: ping(1) });
        assertResult(r.json, 'pong', 1);
        await conn.waitClosed();
    });
});

test('HTTP/1.0 request answered (not chunked) and the connection closed', async () => {
    await withConn(srv, async (conn) => {
        await conn.write(buildRequest(srv, { version: 'HTTP/1.0', body: ping(1) }));
        await conn.waitClosed();
        const r = decorate(await conn.readResponse());
        assert.equal(r.status, 200, r.head);
        assert.notEqual(r.framing, 'chunked', 'no chunked answer to HTTP/1.0');
        assertResult(r.json, 'pong', 1);
    });
});

test('a request split across many tiny writes', async () => {
    await withConn(srv, async (conn) => {
        await conn.writeSlowly(buildRequest(srv, { body: call('subtract', [42, 23], 'tiny') }), 1);
        const r = decorate(await conn.readResponse());
        assertResult(r.json, 19, 'tiny');
        // two pipelined requests, 3 bytes at a time
        await conn.writeSlowly(Buffer.concat([buildRequest(srv, { body: ping(1) }), buildRequest(srv, { body: ping(2) })]), 3);
        const [a, b] = (await conn.readResponses(2)).map(decorate);
        assertResult(a.json, 'pong', 1);
        assertResult(b.json, 'pong', 2);
    });
});

test('"/" answers RPC too', async () => {
    const r = await rpc(srv, ping(1), { path: '/' });
    assertResult(r.json, 'pong', 1);
});

test('--path sets the RPC path', async () => {
    await withServer(['--path', '/rpc'], async (s) => {
        let r = await rpc(s, ping(1), { path: '/rpc' });
        assertResult(r.json, 'pong', 1);
        r = await rpc(s, ping(2), { path: RPC_PATH });
        assert.equal(r.status, 404, r.head);
        r = await rpc(s, ping(3), { path: '/' }); // "/" always answers too
        assertResult(r.json, 'pong', 3);
        r = await rpc(s, undefined, { path: '/rpc', method: 'GET' });
        assert.equal(r.status, 405);
    });
});

test('a client that goes away mid-body or mid-call does not hurt the server', async () => {
    // half a body, then close
    await withConn(srv, async (conn) => {
        await conn.write(buildRequest(srv, { headers: { 'Content-Length': '1000' } }));
        await conn.write('{"jsonrpc":"2.0",');
    });
    // a slow call whose connection is gone when it replies; a later, longer call on another
    // connection ends after it, so its reply has been attempted by the time we check health
    await withConn(srv, async (conn) => {
        await conn.write(buildRequest(srv, { body: batch([call('test.sleep', [100], 1), call('test.sleep_async', [100], 2)]) }));
    });
    const r = await rpc(srv, batch([call('test.sleep', [300], 1), call('test.sleep_async', [300], 2)]));
    assert.deepEqual(r.json.map((x) => x.result), [300, 300]);
    await healthy(srv);
});

test('SIGTERM answers the request in flight, then exits 0', async () => {
    const s = await startServer();
    try {
        await withConn(s, async (conn) => {
            // one write: a ping and a slow call; once the ping is answered the server has read both
            await conn.write(Buffer.concat([buildRequest(s, { body: ping(1) }),
                buildRequest(s, { body: call('test.sleep_async', [400], 2) })]));
            const first = decorate(await conn.readResponse());
            assertResult(first.json, 'pong', 1);
            const stopped = s.stop();
            stopped.catch(() => {}); // awaited below; keep an early failure from going unhandled
            const second = decorate(await conn.readResponse());
            assertResult(second.json, 400, 2);
            conn.close(); // whether jrpcd closes idle keep-alive connections on SIGTERM is not tested here
            await stopped;
        });
        assert.ok(s.exited, 'jrpcd exited');
    } finally {
        await s.kill();
    }
});

test('server still healthy, SIGTERM exits 0', async () => {
    await healthy(srv);
    await srv.stop();
});
