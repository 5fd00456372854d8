// SPDX-License-Identifier: MIT
// DESIGN.md §3 over both transports: every row of contract.mjs runs over HTTP and over WebSocket
// against the real jrpcd (one server per distinct set of flags), then each server must still be
// healthy and exit 0 on SIGTERM.

import { test, after } from 'node:test';
import { startServer, healthy } from './lib.mjs';
import { ROWS, TRANSPORTS } from './contract.mjs';

const servers = new Map(); // flags joined → server

async function serverFor(args = []) {
    const key = args.join(' ');
    if (!servers.has(key)) servers.set(key, await startServer(args));
    return servers.get(key);
}

after(async () => {
    for (const s of servers.values()) await s.kill();
});

for (const row of ROWS) {
    for (const t of TRANSPORTS) {
        test(`§3 ${row.row} [${t.name}]`, async () => {
            const server = await serverFor(row.args);
            const body = typeof row.body === 'function' ? row.body(t) : row.body;
            const answer = await t.send(server, body, row);
            row.expect(answer, t);
        });
    }
}

test('every server still healthy, SIGTERM exits 0', async () => {
    for (const s of servers.values()) {
        await healthy(s);
        await s.stop();
    }
});
