// SPDX-License-Identifier: MIT
// jrpc batch for real batch work: chunking to the server's cap, parallel chunks in input order or
// as completed, JSONL in and out, retries of rate-limited items, exit statuses with a summary,
// progress only on a terminal, -H, ws:// (call, batch, subscribe) and usage errors that name the
// problem. The real jrpcd serves where it can; small Node servers stand in where the test must
// see what arrives (chunk sizes, headers) or make the server refuse on purpose.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { startServer, healthy, rpc, call, runCli, scrapeAdmin, JRPCD } from './lib.mjs';
import { waitFor } from './wslib.mjs';

const CLI = process.env.JRPC_CLI || path.join(path.dirname(JRPCD), 'jrpc');
let srv;
let url;
let wsurl;
let tmp;
before(async () => {
    srv = await startServer(['--max-batch', '1000', '--max-batch-ws', '20']);
    url = `http://127.0.0.1:${srv.port}/api/v1/endpoint`;
    wsurl = `ws://127.0.0.1:${srv.port}/api/v1/endpoint`;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jrpc-cli-'));
});
after(async () => {
    await healthy(srv);
    await srv.stop();
    await srv.kill();
    fs.rmSync(tmp, { recursive: true, force: true });
});

/** Runs jrpc with args (no --url added) and optional stdin; resolves {code, out, err}. */
const run = (args, input, { cmd = CLI, env = process.env } = {}) => runCli(args, input, { cmd, env });
const jrpc = (args, input) => run(['--url', url, ...args], input);

const echoLines = (n, from = 1) => Array.from({ length: n }, (_, i) => `test.echo [${i + from}]`).join('\n') + '\n';

/** A Node HTTP JSON-RPC server whose answer to each batch `handle(batch, req, res)` decides. */
async function fakeHttp(handle) {
    const seen = [];
    const server = http.createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8').on('data', (d) => { body += d; });
        req.on('end', () => {
            const batch = JSON.parse(body);
            seen.push({ batch, headers: req.headers });
            handle(batch, req, res, seen.length);
        });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    return {
        url: `http://127.0.0.1:${server.address().port}/`,
        seen,
        close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
    };
}
const echo = (item) => ({ jsonrpc: '2.0', result: item.params ?? null, id: item.id });

test('5000 lines against max_batch 1000: 5000 answers in input order, exit 0, summary', async () => {
    const r = await jrpc(['batch'], echoLines(5000));
    assert.equal(r.code, 0, r.err);
    const a = JSON.parse(r.out);
    assert.equal(a.length, 5000);
    a.forEach((x, i) => assert.deepEqual(x, { jsonrpc: '2.0', result: [i + 1], id: i + 1 }));
    assert.match(r.err, /^jrpc: 5000 calls, 5000 ok, 0 failed, [0-9.]+ s, [0-9]+ calls\/s\n$/);
});

test('the chunk size is learned from the server\'s -32005 cap answer', async () => {
    const small = await startServer(['--max-batch', '300']);
    try {
        const u = `http://127.0.0.1:${small.port}/api/v1/endpoint`;
        const r = await run(['--url', u, 'batch', '--jsonl'], echoLines(1000));
        assert.equal(r.code, 0, r.err);
        const lines = r.out.trimEnd().split('\n').map((l) => JSON.parse(l));
        assert.deepEqual(lines.map((x) => x.result[0]), Array.from({ length: 1000 }, (_, i) => i + 1));
        // An explicit --chunk over the cap is lowered, and said so.
        const r2 = await run(['--url', u, 'batch', '--chunk', '500', '--jsonl'], echoLines(700));
        assert.equal(r2.code, 0, r2.err);
        assert.equal(r2.out.trimEnd().split('\n').length, 700);
        assert.match(r2.err, /at most 300 calls per batch; --chunk 500 lowered/);
    } finally {
        await small.stop();
        await small.kill();
    }
});

/** Batches jrpcd received (by size bucket) and refused over its cap, from its metrics. */
async function batchStats(server) {
    const m = await scrapeAdmin(server);
    return {
        n: m.get('jrpc_batch_size_count') ?? 0,
        le: (b) => m.get(`jrpc_batch_size_bucket{le="${b}"}`) ?? 0,
        overCap: m.get('jrpc_limit_rejections_total{limit="max_batch"}') ?? 0,
    };
}

test('the chunk follows the cap the server advertises (Jrpc-Max-Batch)', async () => {
    const small = await startServer(['--max-batch', '7', '--admin-listen', '127.0.0.1:0']);
    try {
        const u = `http://127.0.0.1:${small.port}/api/v1/endpoint`;
        const r = await run(['--url', u, 'batch', '--jsonl'], echoLines(100));
        assert.equal(r.code, 0, r.err);
        assert.deepEqual(r.out.trimEnd().split('\n').map((l) => JSON.parse(l).result[0]),
            Array.from({ length: 100 }, (_, i) => i + 1));
        // The first chunk (the default 1000, so all 100) is refused and says the cap; then
        // 14 chunks of 7 and one of 2, none refused.
        const st = await batchStats(small);
        assert.equal(st.n, 16);
        assert.equal(st.le(5), 1);
        assert.equal(st.le(10), 15);
        assert.equal(st.overCap, 1);
        await healthy(small);
    } finally {
        await small.stop();
        await small.kill();
    }
    // A cap above the default raises the chunk once the first answer said it: 5000 calls go as
    // 1000 then 3000 and 1000 rather than five of 1000.
    const big = await startServer(['--max-batch', '3000', '--admin-listen', '127.0.0.1:0']);
    try {
        const u = `http://127.0.0.1:${big.port}/api/v1/endpoint`;
        const r = await run(['--url', u, 'batch', '--jsonl'], echoLines(5000));
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out.trimEnd().split('\n').length, 5000);
        const st = await batchStats(big);
        assert.deepEqual([st.n, st.le(1000), st.overCap], [3, 2, 0]);
        // --chunk still wins.
        const r2 = await run(['--url', u, 'batch', '--jsonl', '--chunk', '500'], echoLines(1500));
        assert.equal(r2.code, 0, r2.err);
        const st2 = await batchStats(big);
        assert.deepEqual([st2.n - st.n, st2.le(500) - st.le(500)], [3, 3]);
    } finally {
        await big.stop();
        await big.kill();
    }
});

test('over ws:// the chunk is the cap of the 101: no batch is refused', async () => {
    const small = await startServer(['--max-batch-ws', '5', '--admin-listen', '127.0.0.1:0']);
    try {
        const u = `ws://127.0.0.1:${small.port}/api/v1/endpoint`;
        const r = await run(['--url', u, 'batch', '--jsonl', '-P', '3'], echoLines(100));
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out.trimEnd().split('\n').length, 100);
        const st = await batchStats(small);
        assert.equal(st.n, 20);
        assert.equal(st.le(5), 20, 'every chunk at most 5');
        assert.equal(st.overCap, 0, 'no -32005 for the batch size');
        await healthy(small);
    } finally {
        await small.stop();
        await small.kill();
    }
});

test('a chunk over the server\'s body cap (HTTP 413) is halved until it fits', async () => {
    const small = await startServer(['--max-body', '64KiB']);
    try {
        const u = `http://127.0.0.1:${small.port}/api/v1/endpoint`;
        const pad = 'x'.repeat(200);
        const input = Array.from({ length: 1000 }, (_, i) => `test.echo ["${pad}", ${i + 1}]`).join('\n');
        const r = await run(['--url', u, 'batch', '--jsonl'], input);
        assert.equal(r.code, 0, r.err);
        const out = r.out.trimEnd().split('\n').map((l) => JSON.parse(l));
        assert.deepEqual(out.map((x) => x.result[1]), Array.from({ length: 1000 }, (_, i) => i + 1));
        const r2 = await run(['--url', u, 'batch', '--chunk', '1000', '--jsonl'], input);
        assert.equal(r2.code, 0, r2.err);
        assert.match(r2.err, /refused 1000 calls in one body \(HTTP 413\); --chunk 1000 lowered to 500/);
    } finally {
        await small.stop();
        await small.kill();
    }
});

test('an answer the server left out becomes a -32603 for that call; duplicates are ignored', async () => {
    const fake = await fakeHttp((batch, req, res) => {
        const out = batch.map(echo).filter((a) => a.id !== 3);
        out.push(echo(batch[0])); // a duplicate of the first
        res.end(JSON.stringify(out));
    });
    try {
        const r = await run(['--url', fake.url, 'batch', '--jsonl'], echoLines(5));
        assert.equal(r.code, 1);
        const out = r.out.trimEnd().split('\n').map((l) => JSON.parse(l));
        assert.deepEqual(out.map((x) => x.id), [1, 2, 3, 4, 5]);
        assert.equal(out[2].error.code, -32603);
        assert.match(out[2].error.message, /left this call out/);
        assert.match(r.err, /5 calls, 4 ok, 1 failed \(-32603: 1\)/);
    } finally {
        await fake.close();
    }
});

test('one unknown method among 5000: its error in place, exit 1, the summary names -32601', async () => {
    const lines = echoLines(5000).split('\n');
    lines[2500] = 'no.such.method [1]';
    const r = await jrpc(['batch', '--jsonl'], lines.join('\n'));
    assert.equal(r.code, 1);
    const out = r.out.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.equal(out.length, 5000);
    assert.equal(out[2500].error.code, -32601);
    assert.equal(out[2500].id, 2501);
    assert.equal(out[2501].result[0], 2502);
    assert.match(r.err, /5000 calls, 4999 ok, 1 failed \(-32601: 1\)/);
});

test('JSONL request objects: ids kept, missing ids assigned, mixed with METHOD lines', async () => {
    const input = [
        '{"jsonrpc":"2.0","method":"tennis@ping","id":1}',
        '{"jsonrpc":"2.0","method":"test.echo","params":["a"],"id":"s-1"}',
        'test.echo ["b"]',
        '{"method":"test.echo","params":{"k":14066156191713469572}}',
        '{"jsonrpc":"2.0","method":"tennis@ping","id":null}',
    ].join('\n');
    const r = await jrpc(['batch', '--jsonl'], input);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, [
        '{"jsonrpc":"2.0","result":"pong","id":1}',
        '{"jsonrpc":"2.0","result":["a"],"id":"s-1"}',
        '{"jsonrpc":"2.0","result":["b"],"id":3}',
        '{"jsonrpc":"2.0","result":{"k":14066156191713469572},"id":4}',
        '{"jsonrpc":"2.0","result":"pong","id":null}',
    ].join('\n') + '\n');
});

test('bad input is refused before anything is sent, naming the line', async () => {
    const fake = await fakeHttp((b, req, res) => res.end('[]'));
    try {
        for (const [input, re] of [
            ['tennis@ping\n{"method":"x",\n', /line 2: not valid JSON/],
            ['tennis@ping\ntest.echo 17\n', /line 2: params must be one JSON array or object/],
            ['{"jsonrpc":"2.0","id":1}\n', /line 1: no "method" string/],
            ['[{"method":"a"}, 3]', /element 2: a request must be a JSON object/],
        ]) {
            const r = await run(['--url', fake.url, 'batch'], input);
            assert.equal(r.code, 2, input);
            assert.match(r.err, re);
        }
        assert.equal(fake.seen.length, 0, 'nothing reached the server');
    } finally {
        await fake.close();
    }
});

test('empty input sends nothing and exits 0', async () => {
    const fake = await fakeHttp((b, req, res) => res.end('[]'));
    try {
        const r = await run(['--url', fake.url, 'batch'], '\n# only a comment\n');
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out, '');
        assert.match(r.err, /0 calls/);
        assert.equal(fake.seen.length, 0);
    } finally {
        await fake.close();
    }
});

test('-P 4 --jsonl: ordered by default, --unordered gives each answer once; chunks as asked', async () => {
    const ordered = await jrpc(['batch', '-P', '4', '--chunk', '100', '--jsonl'], echoLines(3000));
    assert.equal(ordered.code, 0, ordered.err);
    const ids = ordered.out.trimEnd().split('\n').map((l) => JSON.parse(l).id);
    assert.deepEqual(ids, Array.from({ length: 3000 }, (_, i) => i + 1));
    const un = await jrpc(['batch', '-P', '4', '--chunk', '100', '--jsonl', '--unordered'], echoLines(3000));
    assert.equal(un.code, 0, un.err);
    const got = un.out.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.equal(got.length, 3000);
    for (const x of got) assert.deepEqual(x.result, [x.id], 'each answer maps back to its line');
    assert.equal(new Set(got.map((x) => x.id)).size, 3000);

    // What goes on the wire: chunks of --chunk, and -P of them at once on keep-alive connections.
    let most = 0;
    let held = [];
    const sockets = new Set();
    const fake = await fakeHttp((batch, req, res, n) => {
        sockets.add(req.socket);
        // Hold answers until four chunks are waiting (the last round included: 20 = 5 x 4), so
        // the client must have four in flight to get any answer; reply reversed, so it must
        // match answers by id, not by position.
        held.push(() => res.end(JSON.stringify(batch.map(echo).reverse())));
        most = Math.max(most, held.length);
        if (held.length === 4 || n === 20) {
            const now = held;
            held = [];
            for (const reply of now) reply();
        }
    });
    try {
        const r = await run(['--url', fake.url, 'batch', '-P', '4', '--chunk', '50', '--jsonl'], echoLines(1000));
        assert.equal(r.code, 0, r.err);
        assert.deepEqual(r.out.trimEnd().split('\n').map((l) => JSON.parse(l).id), Array.from({ length: 1000 }, (_, i) => i + 1));
        assert.deepEqual(fake.seen.map((s) => s.batch.length), Array(20).fill(50));
        assert.equal(most, 4, 'four chunks in flight');
        assert.ok(sockets.size <= 4, `${sockets.size} connections for 20 requests: keep-alive`);
    } finally {
        await fake.close();
    }
});

test('--retry: only the refused items go again, honouring retry_after_ms and Retry-After', async () => {
    // Refuses odd ids twice with -32005 + data.retry_after_ms, then answers them; even ids at once.
    const tries = new Map();
    const fake = await fakeHttp((batch, req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(batch.map((it) => {
            const n = (tries.get(it.id) ?? 0) + 1;
            tries.set(it.id, n);
            if (it.id % 2 === 1 && n <= 2)
                return { jsonrpc: '2.0', error: { code: -32005, message: 'rate limited', data: { retry_after_ms: 20 } }, id: it.id };
            return echo(it);
        })));
    });
    try {
        const r = await run(['--url', fake.url, 'batch', '--retry', '3', '--jsonl'], echoLines(200));
        assert.equal(r.code, 0, r.err);
        const out = r.out.trimEnd().split('\n').map((l) => JSON.parse(l));
        assert.deepEqual(out.map((x) => x.result[0]), Array.from({ length: 200 }, (_, i) => i + 1));
        assert.equal(fake.seen[0].batch.length, 200);
        for (const s of fake.seen.slice(1))
            assert.ok(s.batch.every((it) => it.id % 2 === 1), 'a retry carries refused items only');
        assert.equal(fake.seen.slice(1).reduce((n, s) => n + s.batch.length, 0), 200, '100 items twice');

        // Without --retry the refusals are answers: exit 1, the summary names -32005.
        tries.clear();
        const no = await run(['--url', fake.url, 'batch', '--jsonl'], echoLines(10));
        assert.equal(no.code, 1);
        assert.match(no.err, /10 calls, 5 ok, 5 failed \(-32005: 5\)/);
    } finally {
        await fake.close();
    }

    // HTTP 429 with Retry-After and a single -32005 object, twice, then answers.
    let n429 = 0;
    const busy = await fakeHttp((batch, req, res) => {
        if (++n429 <= 2) {
            res.writeHead(429, { 'retry-after': '0.05', 'content-type': 'application/json' });
            res.end('{"jsonrpc":"2.0","error":{"code":-32005,"message":"too many requests"},"id":null}');
            return;
        }
        res.end(JSON.stringify(batch.map(echo)));
    });
    try {
        const r = await run(['--url', busy.url, 'batch', '--retry', '2'], echoLines(30));
        assert.equal(r.code, 0, r.err);
        assert.equal(JSON.parse(r.out).length, 30);
        assert.equal(busy.seen.length, 3);
        // Retries spent: the items carry the server's refusal, exit 1.
        n429 = 0;
        const out = await run(['--url', busy.url, 'batch', '--retry', '1', '--jsonl'], echoLines(3));
        assert.equal(out.code, 1, out.err);
        for (const l of out.out.trimEnd().split('\n')) assert.equal(JSON.parse(l).error.code, -32005);
        assert.match(out.err, /-32005: 3/);
    } finally {
        await busy.close();
    }
});

test('a dropped connection is retried with --retry, a transport error without it exits 2', async () => {
    let drops = 1;
    const flaky = await fakeHttp((batch, req, res) => {
        if (drops-- > 0) {
            req.socket.destroy();
            return;
        }
        res.end(JSON.stringify(batch.map(echo)));
    });
    try {
        const r = await run(['--url', flaky.url, 'batch', '--retry', '2', '--jsonl'], echoLines(5));
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out.trimEnd().split('\n').length, 5);
        drops = 1;
        const fail = await run(['--url', flaky.url, 'batch'], echoLines(5));
        assert.equal(fail.code, 2);
        assert.match(fail.err, /jrpc: .*(Server returned nothing|Empty reply|reset|closed)/i);
    } finally {
        await flaky.close();
    }
});

test('-H headers reach the server on call and batch; bad headers are refused', async () => {
    const fake = await fakeHttp((batch, req, res) => res.end(JSON.stringify(Array.isArray(batch) ? batch.map(echo) : echo(batch))));
    try {
        const h = ['-H', 'Authorization: Bearer k-123', '-H', 'X-Api-Key: abc'];
        assert.equal((await run(['--url', fake.url, ...h, 'call', 'm', '1'])).code, 0);
        assert.equal((await run(['--url', fake.url, ...h, 'batch'], 'm [1]\n')).code, 0);
        for (const s of fake.seen) {
            assert.equal(s.headers.authorization, 'Bearer k-123');
            assert.equal(s.headers['x-api-key'], 'abc');
        }
        const bad = await run(['--url', fake.url, '-H', 'no colon', 'call', 'm']);
        assert.equal(bad.code, 2);
        assert.match(bad.err, /-H: "no colon" is not a header/);
    } finally {
        await fake.close();
    }
});

test('durations take units; a request past -t fails with exit 2', async () => {
    assert.equal((await jrpc(['-t', '0.5s', 'call', 'tennis@ping'])).code, 0);
    assert.equal((await jrpc(['-t', '2000ms', 'call', 'tennis@ping'])).code, 0);
    const silent = await fakeHttp(() => {}); // never answers
    try {
        const r = await run(['--url', silent.url, '-t', '200ms', 'batch'], 'm\n');
        assert.equal(r.code, 2);
        assert.match(r.err, /timed out|Timeout/i);
    } finally {
        await silent.close();
    }
});

test('usage errors name the problem (exit 2)', async () => {
    for (const [args, re] of [
        [['frobnicate'], /unknown command "frobnicate": give one of call, notify, batch/],
        [[], /no command/],
        [['--bogus', 'call', 'x'], /unknown option --bogus/],
        [['-Z', 'call', 'x'], /unknown option -Z/],
        [['call'], /call: missing METHOD/],
        [['-t', '5x', 'call', 'x'], /--timeout: "5x" is not a duration/],
        [['-P', '0', 'batch'], /--parallel: "0" is not a number from 1 to 256/],
        [['--chunk', 'many', 'batch'], /--chunk: "many" is not a number/],
        [['--retry'], /--retry needs a value/],
        [['batch', 'a', 'b'], /batch: one input at most/],
        [['--url', 'ftp://x/', 'call', 'x'], /"ftp:\/\/x\/" is not an http:\/\/, https:\/\/, ws:\/\/ or wss:\/\/ URL/],
        [['--cacert', '/nonexistent/ca.pem', 'call', 'x'], /--cacert: cannot read \/nonexistent\/ca.pem/],
        [['batch', '/nonexistent/file'], /cannot open \/nonexistent\/file/],
    ]) {
        const r = await run(args);
        assert.equal(r.code, 2, args.join(' '));
        assert.match(r.err, re, args.join(' '));
        assert.doesNotMatch(r.err, /^usage:/m, 'the problem, not the whole usage');
    }
});

test('$JRPC_URL is the default endpoint', async () => {
    const r = await run(['call', 'tennis@ping'], undefined, { env: { ...process.env, JRPC_URL: url } });
    assert.deepEqual({ code: r.code, out: r.out }, { code: 0, out: '"pong"\n' });
});

test('progress on a terminal (under script), none when stderr is not one', async () => {
    const file = path.join(tmp, 'calls.txt');
    fs.writeFileSync(file, echoLines(2000));
    const errFile = path.join(tmp, 'err.txt');
    // script gives the command a pseudo-terminal; stdout goes to /dev/null, stderr stays on it.
    const cmd = `${CLI} --url ${url} batch ${file} >/dev/null`;
    const r = await run(['-qec', cmd, '/dev/null'], undefined, { cmd: 'script' });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /2000\/2000 calls 100% +[0-9]+ calls\/s +ETA 0:00 +0 errors/);
    assert.match(r.out, /\r/);
    // Not a terminal: no progress, only the summary.
    const plain = await jrpc(['batch', file]);
    assert.equal(plain.code, 0);
    assert.doesNotMatch(plain.err, /\r|ETA/);
    // --no-progress on a terminal, --progress off one.
    const off = await run(['-qec', `${CLI} --url ${url} --no-progress batch ${file} >/dev/null`, '/dev/null'], undefined, { cmd: 'script' });
    assert.doesNotMatch(off.out, /ETA/);
    const forced = await jrpc(['--progress', 'batch', file]);
    assert.match(forced.err, /2000\/2000 calls/);
    fs.rmSync(errFile, { force: true });
});

test('ws:// call and notify against jrpcd', async () => {
    const r = await run(['--url', wsurl, 'call', 'test.echo', '0x2f', '7']);
    assert.deepEqual(r, { code: 0, out: '["0x2f",7]\n', err: '' });
    const e = await run(['--url', wsurl, 'call', 'no.such']);
    assert.equal(e.code, 1);
    assert.equal(JSON.parse(e.err).code, -32601);
    const before = (await rpc(srv, call('message@create', ['a'], 1))).json.result.id;
    assert.equal((await run(['--url', wsurl, 'notify', 'message@create', 'via ws'])).code, 0);
    await waitFor(async () => (await rpc(srv, call('message@create', ['b'], 1))).json.result.id > before + 1,
        { what: 'the notification ran' });
});

test('ws:// batch against jrpcd: chunked to its cap of 20, in order', async () => {
    const r = await run(['--url', wsurl, 'batch', '-P', '3', '--jsonl'], echoLines(500));
    assert.equal(r.code, 0, r.err);
    const out = r.out.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(out.map((x) => x.result[0]), Array.from({ length: 500 }, (_, i) => i + 1));
});

test('ws:// against a peer that pings and fragments: messages of 20, answers joined', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    await new Promise((r) => wss.on('listening', r));
    const sizes = [];
    const headers = [];
    wss.on('connection', (ws, req) => {
        headers.push(req.headers);
        ws.on('message', (data) => {
            const batch = JSON.parse(data.toString());
            sizes.push(batch.length);
            const text = JSON.stringify(batch.map(echo));
            ws.ping('p');
            const mid = text.length >> 1;
            ws.send(text.slice(0, mid), { fin: false });
            ws.send(text.slice(mid), { fin: true });
        });
    });
    try {
        const u = `ws://127.0.0.1:${wss.address().port}/rpc`;
        const r = await run(['--url', u, '-H', 'X-Api-Key: w', 'batch', '--jsonl'], echoLines(95));
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out.trimEnd().split('\n').length, 95);
        assert.deepEqual(sizes, [20, 20, 20, 20, 15]);
        assert.equal(headers[0]['x-api-key'], 'w');
    } finally {
        for (const c of wss.clients) c.terminate();
        await new Promise((r) => wss.close(r));
    }
});

test('ws:// refuses a server whose Sec-WebSocket-Accept is wrong', async () => {
    const server = http.createServer();
    server.on('upgrade', (req, socket) => {
        socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n');
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    try {
        const r = await run(['--url', `ws://127.0.0.1:${server.address().port}/`, 'call', 'x']);
        assert.equal(r.code, 2);
        assert.match(r.err, /Sec-WebSocket-Accept does not match/);
    } finally {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
    }
});

test('subscribe prints --count notifications as JSONL, then unsubscribes', async () => {
    const live = async () => (await rpc(srv, call('test.subscriptions', undefined, 1))).json.result;
    const before = await live();
    const r = await run(['--url', wsurl, 'subscribe', '--count', '3', 'test.subscribe', '10']);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    assert.deepEqual(lines.map((m) => m.params.result), [1, 2, 3]);
    for (const m of lines) {
        assert.equal(m.method, 'test_subscription');
        assert.match(m.params.subscription, /^0x[0-9a-f]{32}$/);
    }
    await waitFor(async () => (await live()) === before, { what: 'the subscription ended on the server' });
    const http1 = await jrpc(['subscribe', 'test.subscribe', '10']);
    assert.equal(http1.code, 2);
    assert.match(http1.err, /subscribe needs a ws:\/\/ or wss:\/\/ URL/);
});

test('subscribe until ^C: SIGINT unsubscribes and exits 0', async () => {
    const live = async () => (await rpc(srv, call('test.subscriptions', undefined, 1))).json.result;
    const before = await live();
    const p = spawn(CLI, ['--url', wsurl, 'subscribe', 'test.subscribe', '10'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
    p.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
    const closed = new Promise((resolve) => p.on('close', (code, signal) => resolve({ code, signal })));
    try {
        await waitFor(() => out.split('\n').length > 2, { what: 'two notifications printed' });
        assert.equal(await live(), before + 1);
        p.kill('SIGINT');
        assert.deepEqual(await closed, { code: 0, signal: null }, err);
    } finally {
        p.kill('SIGKILL');
    }
    for (const l of out.trimEnd().split('\n')) assert.equal(JSON.parse(l).method, 'test_subscription');
    await waitFor(async () => (await live()) === before, { what: 'the subscription ended on the server' });
});

test('ws:// bench: answers counted per connection, errors make exit 1', async () => {
    const r = await run(['--url', wsurl, 'bench', '-c', '3', '-n', '600', 'tennis@ping']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^600 requests in [0-9.]+ s over 3 connections: [0-9]+ req\/s, 0 errors$/m);
    const bad = await run(['--url', wsurl, 'bench', '-c', '2', '-n', '40', 'no.such.method']);
    assert.equal(bad.code, 1);
    assert.match(bad.out, /40 errors/);
});
