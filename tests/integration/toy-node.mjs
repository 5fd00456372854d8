// SPDX-License-Identifier: MIT
// A toy JSON-RPC node for the hedging and health-probe tests (gateway-hedge, gateway-probe): an
// HTTP server on a free loopback port whose block number, probe answers and holding of calls the
// test sets. eth_blockNumber alone is the probe: it answers the block (or an error while
// `failProbe`); every other call answers {node, m} (who answered, and what) at once, or is held
// while `hold` until release() — the slow URL of a hedge. Every request is recorded as
// { methods, answered, cut } (`cut`: its connection closed before an answer went).

import http from 'node:http';

export async function startToyNode(name) {
    const node = { name, block: 100, hold: false, failProbe: false, requests: [] };
    const held = [];
    const sockets = new Set();
    const server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d) => { body += d; });
        req.on('end', () => {
            let msg;
            try { msg = JSON.parse(body); } catch { res.writeHead(400).end(); return; }
            const calls = Array.isArray(msg) ? msg : [msg];
            const rec = { methods: calls.map((c) => c.method), answered: false, cut: false };
            node.requests.push(rec);
            const probe = !Array.isArray(msg) && msg.method === 'eth_blockNumber';
            const answer = () => {
                if (res.destroyed) return;
                const out = calls.map((c) => (probe && node.failProbe
                    ? { jsonrpc: '2.0', id: c.id, error: { code: -32000, message: 'syncing' } }
                    : { jsonrpc: '2.0', id: c.id, result: probe ? `0x${node.block.toString(16)}` : { node: name, m: c.method } }));
                rec.answered = true;
                res.writeHead(200, { 'content-type': 'application/json' });
                res.end(JSON.stringify(Array.isArray(msg) ? out : out[0]));
            };
            res.on('close', () => { if (!rec.answered) rec.cut = true; });
            if (node.hold && !probe) held.push(answer);
            else answer();
        });
    });
    server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    node.port = server.address().port;
    node.url = `http://127.0.0.1:${node.port}/`;
    node.host = `http://127.0.0.1:${node.port}`;
    /** Answers every held call. */
    node.release = () => { for (const f of held.splice(0)) f(); };
    /** Requests other than probes. */
    node.calls = () => node.requests.filter((r) => !(r.methods.length === 1 && r.methods[0] === 'eth_blockNumber'));
    node.probes = () => node.requests.length - node.calls().length;
    node.close = () => new Promise((r) => {
        node.release();
        for (const s of sockets) s.destroy();
        server.close(r);
    });
    return node;
}
