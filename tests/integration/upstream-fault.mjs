// SPDX-License-Identifier: MIT
// A small misbehaving JSON-RPC upstream for the faults a real node does not produce on demand.
// One server, one behaviour per URL path, so a single jrpcd can point one [upstream] section at
// each path. Each path names the fault it covers:
//
//   /ok            a correct upstream: result {"m":method,"p":params} per call, answered in
//                  reverse order (ids must be mapped, not positions); a method ending in "_err"
//                  gets a JSON-RPC error {code -32099, message, data} (pass-through), one
//                  ending in "_null" the result null
//   /single-error  a batch is answered with ONE error object (id null); single calls are fine
//   /short         FEWER ANSWERS than asked: only the first half of a batch is answered
//   /unknown-ids   UNKNOWN IDS: every odd call's answer carries an id that was never asked
//   /malformed     every odd call's answer has neither result nor error (a malformed item)
//   /garbage       NON-JSON: HTTP 200 with an HTML body
//   /reset         CONNECTION RESET: the TCP connection is reset once the request arrives
//   /slow          SLOW: answers correctly after 10 s (jrpcd's timeout is set far below)
//   /503           HTTP 503 with a text body (an overloaded node behind a load balancer)
//   /hang          NEVER ANSWERS: the request is read and the connection held until jrpcd gives
//                  up on it (its timeout) or goes away
//   /gate          like /ok, but a request with a call of method "held" is held until the test
//                  calls openGate() (so it is surely in flight while the test does something)
//
// Every request is recorded ({ path, url, httpVersion, headers, batch, n, ids, methods, answered,
// closed })
// so tests can check what jrpcd sent: chunk sizes, its own ids, single versus batch; `answered`
// turns true once this server has sent its answer (or reset), so a test can tell what came first,
// and `closed` once the request's exchange is over (answered, or the connection closed);
// `connections()` is how many client connections are open now. A query
// (`/hang?flood`) lets several upstreams share a path and still be told apart by `url`. With
// { tls: { key, cert } } the server speaks HTTPS with HTTP/2 (and HTTP/1.1 for clients that do
// not offer h2).
// Run alone (`node upstream-fault.mjs`) it prints "upstream-fault listening on PORT".

import http from 'node:http';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';

// Far past any timeout a test sets on /slow: the answer is never what ends a call there.
const SLOW_MS = 10_000;

function answerFor(call) {
    if (typeof call.method === 'string' && call.method.endsWith('_err')) {
        return { jsonrpc: '2.0', error: { code: -32099, message: `no: ${call.method}`, data: { why: [1, 'two'] } }, id: call.id };
    }
    if (typeof call.method === 'string' && call.method.endsWith('_null')) {
        return { jsonrpc: '2.0', result: null, id: call.id };
    }
    return { jsonrpc: '2.0', result: { m: call.method, p: call.params ?? null }, id: call.id };
}

const behaviours = {
    '/ok': (calls, isBatch) => {
        const out = calls.map(answerFor).reverse();
        return { body: JSON.stringify(isBatch ? out : out[0]) };
    },
    '/single-error': (calls, isBatch) => {
        if (!isBatch) return behaviours['/ok'](calls, isBatch);
        return { body: JSON.stringify({ jsonrpc: '2.0', error: { code: -32600, message: 'batch requests are not supported' }, id: null }) };
    },
    '/short': (calls, isBatch) => {
        if (!isBatch) return behaviours['/ok'](calls, isBatch);
        return { body: JSON.stringify(calls.slice(0, Math.ceil(calls.length / 2)).map(answerFor)) };
    },
    '/unknown-ids': (calls, isBatch) => {
        const out = calls.map((c, i) => ({ ...answerFor(c), id: i % 2 ? 9_000_000 + i : c.id }));
        return { body: JSON.stringify(isBatch ? out : out[0]) };
    },
    '/malformed': (calls, isBatch) => {
        const out = calls.map((c, i) => (i % 2 ? { jsonrpc: '2.0', id: c.id } : answerFor(c)));
        return { body: JSON.stringify(isBatch ? out : out[0]) };
    },
    '/garbage': () => ({ body: '<html><body>502 Bad Gateway</body></html>', type: 'text/html' }),
    '/reset': () => ({ reset: true }),
    '/slow': (calls, isBatch) => ({ ...behaviours['/ok'](calls, isBatch), delay: SLOW_MS }),
    '/503': () => ({ status: 503, body: 'upstream overloaded', type: 'text/plain' }),
    '/hang': () => ({ hang: true }),
};

/**
 * Start the server on 127.0.0.1 (port 0). Resolves { port, url(path), requests, connections(),
 * openGate(), close() }.
 */
export function startFaultServer({ tls } = {}) {
    const requests = [];
    const sockets = new Set();
    const timers = new Set();
    let gateOpen = false;
    const gated = []; // sends held at /gate
    const handler = (req, res) => {
        const chunks = [];
        req.on('data', (d) => chunks.push(d));
        req.on('end', () => {
            const path = req.url.split('?')[0];
            let parsed;
            try { parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { parsed = null; }
            const isBatch = Array.isArray(parsed);
            const calls = isBatch ? parsed : parsed ? [parsed] : [];
            const record = {
                path, url: req.url, httpVersion: req.httpVersion, headers: req.headers,
                batch: isBatch, n: calls.length,
                ids: calls.map((c) => c.id), methods: calls.map((c) => c.method), answered: false,
                closed: false,
            };
            requests.push(record);
            res.on('close', () => { record.closed = true; });
            const b = path === '/gate' ? behaviours['/ok'] : behaviours[path];
            if (!b) {
                res.writeHead(404, { 'content-type': 'text/plain' });
                res.end('no such path');
                return;
            }
            const out = b(calls, isBatch);
            if (out.hang) return;
            if (out.reset) {
                // An RST, not a FIN: what a crashing node or a killed proxy looks like.
                record.answered = true;
                const s = req.socket;
                if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
                else s.destroy();
                return;
            }
            const send = () => {
                if (res.destroyed || res.writableEnded) return;
                record.answered = true;
                res.writeHead(out.status ?? 200, { 'content-type': out.type ?? 'application/json' });
                res.end(out.body);
            };
            if (path === '/gate' && !gateOpen && calls.some((c) => c.method === 'held')) {
                gated.push(send);
            } else if (out.delay) {
                const t = setTimeout(() => { timers.delete(t); send(); }, out.delay);
                timers.add(t);
            } else {
                send();
            }
        });
    };
    const server = tls
        ? http2.createSecureServer({ key: tls.key, cert: tls.cert, allowHTTP1: true }, handler)
        : http.createServer({ keepAliveTimeout: 60_000 }, handler);
    server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
    server.on('secureConnection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
    return new Promise((resolve) => {
        server.listen(0, '127.0.0.1', () => {
            const port = server.address().port;
            const scheme = tls ? 'https' : 'http';
            resolve({
                port,
                url: (p) => `${scheme}://127.0.0.1:${port}${p}`,
                requests,
                connections: () => sockets.size,
                openGate: () => {
                    gateOpen = true;
                    for (const send of gated.splice(0)) send();
                },
                close: () => new Promise((r) => {
                    for (const t of timers) clearTimeout(t);
                    for (const s of sockets) s.destroy();
                    server.close(() => r());
                }),
            });
        });
    });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
    const s = await startFaultServer();
    console.log(`upstream-fault listening on ${s.port}`);
}
