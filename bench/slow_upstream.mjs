#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// bench/slow_upstream.mjs — a slow JSON-RPC upstream for the attack phase of bench/soak.sh: every
// POST is answered correctly (result {"m": method} per call, batch or single) after --delay ms,
// like a node under load. It counts what jrpcd forwards to it, so the attack report can say how
// much upstream work jrpcd did for clients that had already left. Node built-ins only.
//
//   node bench/slow_upstream.mjs [--delay 2000]
//
// Prints "slow-upstream listening on PORT". GET /mark starts the "after" counters (the attack
// ended: every call from then on is work for nobody); GET /stats answers the counters as JSON;
// SIGTERM or SIGINT prints them as one JSON line on stdout and exits.

import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({ options: { delay: { type: 'string', default: '2000' } } });
const DELAY_MS = Number(opt.delay);
const t0 = Date.now();

const stats = {
    delay_ms: DELAY_MS,
    requests: 0,          // POSTs received
    calls: 0,             // JSON-RPC items in them (calls and notifications)
    notifications: 0,
    open_peak: 0,         // requests waiting for their answer at once
    aborted: 0,           // requests jrpcd gave up on (closed) before the answer
    last_call_s: null,    // seconds since start of the last call received
    mark_s: null,         // when /mark was called
    calls_after_mark: 0,  // calls received after /mark
    requests_after_mark: 0,
};
let open = 0;

const server = http.createServer((req, res) => {
    if (req.method === 'GET') {
        if (req.url === '/mark') {
            stats.mark_s = (Date.now() - t0) / 1000;
            stats.calls_after_mark = 0;
            stats.requests_after_mark = 0;
        }
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(stats));
        return;
    }
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
        let parsed;
        try { parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { parsed = null; }
        const isBatch = Array.isArray(parsed);
        const calls = isBatch ? parsed : parsed ? [parsed] : [];
        stats.requests++;
        stats.calls += calls.length;
        stats.last_call_s = (Date.now() - t0) / 1000;
        if (stats.mark_s !== null) {
            stats.requests_after_mark++;
            stats.calls_after_mark += calls.length;
        }
        const answers = [];
        for (const c of calls) {
            if (c && typeof c === 'object' && 'id' in c) answers.push({ jsonrpc: '2.0', result: { m: c.method }, id: c.id });
            else stats.notifications++;
        }
        open++;
        stats.open_peak = Math.max(stats.open_peak, open);
        let done = false;
        const timer = setTimeout(() => {
            done = true;
            open--;
            if (answers.length === 0) {
                res.writeHead(204);
                res.end();
                return;
            }
            const body = JSON.stringify(isBatch ? answers : answers[0]);
            res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
            res.end(body);
        }, DELAY_MS);
        res.on('close', () => {
            if (done) return;
            clearTimeout(timer);
            open--;
            stats.aborted++;
        });
    });
});
// jrpcd keeps up to max_in_flight requests open; the default (no cap on sockets) serves them.
server.keepAliveTimeout = 75_000;
server.listen(0, '127.0.0.1', () => console.log(`slow-upstream listening on ${server.address().port}`));

const finish = () => {
    console.log(JSON.stringify(stats));
    process.exit(0);
};
process.on('SIGTERM', finish);
process.on('SIGINT', finish);
