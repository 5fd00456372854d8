// SPDX-License-Identifier: MIT
// ws_peer.mjs — the Node side of the WebSocket benchmark (bench/run.sh): a plain `ws` server
// (pinned in package.json) answering the same JSON-RPC 2.0 that jrpcd serves in the benchmark —
// tennis@ping → "pong", test.echo → its params — with the same rules: single calls,
// notifications (no answer), batches capped at 20 (every item -32005 past it), -32700 / -32600 /
// -32601. One process, one thread, like jrpcd --io-threads 1 across the table.
//
//   node bench/ws_peer.mjs PATH   prints "listening on PORT", serves 127.0.0.1:PORT/PATH

import { WebSocketServer } from 'ws';

const PATH = process.argv[2] || '/api/v1/endpoint';
const MAX_BATCH = 20;
const METHODS = {
    'tennis@ping': () => 'pong',
    'test.echo': (params) => (params === undefined ? null : params),
};

const error = (code, message, id = null) => ({ jsonrpc: '2.0', error: { code, message }, id });

function one(req) {
    if (req === null || typeof req !== 'object' || Array.isArray(req) || req.jsonrpc !== '2.0' ||
        typeof req.method !== 'string') {
        const id = req && typeof req === 'object' && 'id' in req ? req.id : null;
        return error(-32600, 'Invalid Request', id);
    }
    const isCall = 'id' in req;
    const fn = METHODS[req.method];
    if (!fn) return isCall ? error(-32601, 'Method not found', req.id) : undefined;
    const result = fn(req.params);
    return isCall ? { jsonrpc: '2.0', result, id: req.id } : undefined;
}

function handle(text) {
    let msg;
    try {
        msg = JSON.parse(text);
    } catch {
        return error(-32700, 'Parse error');
    }
    if (!Array.isArray(msg)) return one(msg);
    if (msg.length === 0) return error(-32600, 'Invalid Request');
    if (msg.length > MAX_BATCH) {
        const m = `batch of ${msg.length} exceeds limit ${MAX_BATCH}`;
        const out = msg.filter((r) => r && typeof r === 'object' && 'id' in r).map((r) => error(-32005, m, r.id));
        return out.length ? out : error(-32005, m);
    }
    const out = msg.map(one).filter((r) => r !== undefined);
    return out.length ? out : undefined;
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: PATH, perMessageDeflate: false,
    maxPayload: 5 * 1024 * 1024 });
wss.on('connection', (ws) => {
    ws.on('message', (data) => {
        const answer = handle(data.toString());
        if (answer !== undefined) ws.send(JSON.stringify(answer));
    });
});
wss.on('listening', () => console.log(`listening on ${wss.address().port}`));
