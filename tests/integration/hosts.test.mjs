// SPDX-License-Identifier: MIT
// Browser-facing defaults (docs/security.md, "Browsers"): which names a request may give in
// Host (`hosts`) and which web pages may call and read jrpcd (`cors_origins`), over the RPC
// path, REST and the WebSocket upgrade. The attacks they stop, each as a browser would send it:
// a page whose own name was rebound to 127.0.0.1 (DNS rebinding: Host is the page's name), a
// page of another site posting text/plain (no preflight, so the call would run unread), and an
// <img> pointed at a REST GET (no Origin, Sec-Fetch-Site: cross-site). `message@create` stands
// for a state-changing method: each refused attack must leave its counter where it was.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import {
    startServer, withServer, healthy, rpc, call, HttpConn, buildRequest, decorate, moduleArgs,
    JRPCD, RPC_PATH,
} from './lib.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { await healthy(srv); await srv.stop(); await srv.kill(); });

const PING = call('tennis@ping', undefined, 1);
const CREATE = call('message@create', ['from a web page'], 7);
const EVIL = 'https://evil.example';
const APP = 'https://app.example';

/** The id message@create would hand out next, minus one: how many messages exist. */
async function created(server) {
    const r = await rpc(server, call('message@create', ['probe'], 'probe'));
    assert.equal(r.status, 200, r.body);
    return r.json.result.id;
}

/**
 * One request with these headers (Host defaults to the server's address) on a fresh connection.
 * An answer that says Connection: close is followed by waiting (bounded) for the close.
 */
async function send(server, { method = 'POST', path = RPC_PATH, version, headers = {}, body } = {}) {
    const conn = await HttpConn.open(server);
    try {
        await conn.write(buildRequest(server, { method, path, version, headers, body }));
        const r = decorate(await conn.readResponse());
        if ((r.headers.connection ?? '').toLowerCase() === 'close') {
            await conn.waitClosed(5000);
            r.serverClosed = true;
        }
        return r;
    } finally {
        conn.close();
    }
}

/** A refusal: `status` with a JSON-RPC -32600 object naming `setting`, no CORS header, closed. */
function assertRefused(r, status, setting) {
    assert.equal(r.status, status, `${r.head}\n${r.body}`);
    assert.equal(r.json?.error?.code, -32600, r.body);
    if (setting) assert.match(r.json.error.message, new RegExp(`server setting: ${setting}\\b`), r.body);
    assert.ok(r.serverClosed, `the connection closes after a refusal: ${r.head}`);
    assert.doesNotMatch(r.head, /access-control-/i);
}

/** Wait (bounded) until pred() holds; `what` names it in the failure. */
async function until(pred, what, ms = 5000) {
    const deadline = Date.now() + ms;
    while (!pred()) {
        if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
    }
}

/** A WebSocket upgrade with these headers: the response head's status and headers. */
async function upgrade(server, headers = {}) {
    const conn = await HttpConn.open(server);
    try {
        const key = crypto.randomBytes(16).toString('base64');
        await conn.write(buildRequest(server, {
            method: 'GET', path: RPC_PATH,
            headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13', ...headers },
        }));
        return await conn.readResponse({ includeInterim: true }); // the 101 is all there is
    } finally {
        conn.close();
    }
}

test('default hosts: the localhost names in any case, with or without a port', async () => {
    for (const host of [`127.0.0.1:${srv.port}`, '127.0.0.1', `localhost:${srv.port}`, 'LocalHost', `[::1]:${srv.port}`]) {
        const r = await send(srv, { headers: { Host: host }, body: PING });
        assert.equal(r.status, 200, `Host: ${host}: ${r.body}`);
        assert.equal(r.json.result, 'pong');
    }
});

test('DNS rebinding: a Host not on the list gets 403 and the call does not run (RPC, REST, WebSocket)', async () => {
    const before = await created(srv);
    for (const host of [`attacker.example:${srv.port}`, 'localhost.', '127.0.0.2', '10.0.0.1', 'evil']) {
        assertRefused(await send(srv, { headers: { Host: host }, body: CREATE }), 403, 'hosts');
        assertRefused(await send(srv, { path: '/rest/message@create', headers: { Host: host }, body: '["x"]' }), 403, 'hosts');
        assertRefused(await send(srv, { method: 'GET', path: '/rest/message@create?text=x', headers: { Host: host } }), 403, 'hosts');
        const ws = await upgrade(srv, { Host: host });
        assert.equal(ws.status, 403, ws.head);
    }
    assert.equal(await created(srv), before + 1, 'only the probe created a message');
});

test('HTTP/1.0 without Host names no host to refuse (browsers always send one)', async () => {
    const r = await send(srv, { version: 'HTTP/1.0', headers: { Host: null }, body: PING });
    assert.equal(r.status, 200, r.body);
});

test('no CORS by default: a page of another site is refused, its call never runs', async () => {
    const before = await created(srv);
    // A form or fetch(..., {mode: "no-cors"}) POST with text/plain: a browser sends it without a
    // preflight, so refusing it is the only way it does not run.
    assertRefused(await send(srv, { headers: { Origin: EVIL, 'Content-Type': 'text/plain' }, body: CREATE }), 403, 'cors_origins');
    assertRefused(await send(srv, { path: '/rest/message@create', headers: { Origin: EVIL }, body: '["x"]' }), 403, 'cors_origins');
    // The preflight a JSON POST needs first.
    assertRefused(await send(srv, { method: 'OPTIONS', headers: { Origin: EVIL, 'Access-Control-Request-Method': 'POST' } }), 403, 'cors_origins');
    // <img src="http://127.0.0.1:PORT/rest/message@create?text=x">: no Origin, but Sec-Fetch-Site.
    for (const site of ['cross-site', 'same-site']) {
        assertRefused(await send(srv, { method: 'GET', path: '/rest/message@create?text=x', headers: { 'Sec-Fetch-Site': site } }), 403, 'cors_origins');
    }
    // A browser page's WebSocket always says its Origin.
    const ws = await upgrade(srv, { Origin: EVIL });
    assert.equal(ws.status, 403, ws.head);
    assert.equal(await created(srv), before + 1, 'only the probe created a message');

    // Clients that are not a page of another site: no Origin (curl, SDKs, the user's own
    // navigation), and no CORS header on the answer either.
    for (const headers of [{}, { 'Sec-Fetch-Site': 'none' }, { 'Sec-Fetch-Site': 'same-origin' }]) {
        const r = await send(srv, { headers, body: PING });
        assert.equal(r.status, 200, r.body);
        assert.doesNotMatch(r.head, /access-control-|vary:/i);
    }
    const r = await send(srv, { method: 'OPTIONS' });
    assert.equal(r.status, 204);
    assert.equal(r.headers.allow, 'POST, OPTIONS');
    assert.doesNotMatch(r.head, /access-control-/i);
    assert.equal((await upgrade(srv)).status, 101);
});

test('cors_origins: a listed page may call and read, with its origin echoed and Vary: Origin', async () => {
    await withServer(['--cors-origins', `${APP}, http://localhost:3000`], async (s) => {
        let r = await send(s, { headers: { Origin: APP, 'Sec-Fetch-Site': 'cross-site' }, body: PING });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.headers['access-control-allow-origin'], APP);
        assert.equal(r.headers.vary, 'Origin');
        r = await send(s, { method: 'OPTIONS', path: '/rest/tennis@ping', headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'GET' } });
        assert.equal(r.status, 204, r.head);
        assert.equal(r.headers['access-control-allow-origin'], 'http://localhost:3000');
        assert.equal(r.headers['access-control-allow-methods'], 'GET, POST, OPTIONS');
        assert.equal(r.headers['access-control-allow-headers'], 'Content-Type');
        r = await send(s, { method: 'GET', path: '/rest/tennis@ping', headers: { Origin: APP } });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.headers['access-control-allow-origin'], APP);
        // Errors reach the page too (it may read why).
        r = await send(s, { headers: { Origin: APP }, body: call('no.such.method', [], 1) });
        assert.equal(r.json.error.code, -32601);
        assert.equal(r.headers['access-control-allow-origin'], APP);
        assert.equal((await upgrade(s, { Origin: APP })).status, 101);
        // Others still refused: another origin, another scheme or port, a look-alike.
        for (const origin of [EVIL, 'http://app.example', `${APP}:8443`, `${APP}.evil.example`, 'null']) {
            assertRefused(await send(s, { headers: { Origin: origin }, body: PING }), 403, 'cors_origins');
            assert.equal((await upgrade(s, { Origin: origin })).status, 403, origin);
        }
    });
});

test('cors_origins = *: any page may call, answered "*"', async () => {
    await withServer(['--cors-origins', '*'], async (s) => {
        let r = await send(s, { headers: { Origin: EVIL }, body: PING });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.headers['access-control-allow-origin'], '*');
        r = await send(s, { method: 'GET', path: '/rest/tennis@ping', headers: { 'Sec-Fetch-Site': 'cross-site' } });
        assert.equal(r.status, 200, r.body);
        r = await send(s, { body: PING });
        assert.doesNotMatch(r.head, /access-control-/i, 'no Origin: no CORS header');
    });
});

test('hosts: an explicit list replaces the default; * allows any name', async () => {
    // 127.0.0.1 is listed for withServer's own health check, which sends Host: 127.0.0.1:PORT.
    await withServer(['--hosts', 'rpc.example.com node-1,127.0.0.1'], async (s) => {
        for (const host of ['rpc.example.com', 'RPC.example.com:443', 'node-1:8545']) {
            const r = await send(s, { headers: { Host: host }, body: PING });
            assert.equal(r.status, 200, `${host}: ${r.body}`);
        }
        for (const host of [`localhost:${s.port}`, '[::1]']) {
            assertRefused(await send(s, { headers: { Host: host }, body: PING }), 403, 'hosts');
        }
    });
    await withServer(['--hosts', '*'], async (s) => {
        for (const host of ['anything.example', '10.1.2.3:80', '[2001:db8::1]']) {
            const r = await send(s, { headers: { Host: host }, body: PING });
            assert.equal(r.status, 200, `${host}: ${r.body}`);
        }
        // The syntax is still checked (RFC 9112 §3.2).
        assertRefused(await send(s, { headers: { Host: 'a b' }, body: PING }), 400);
    });
});

test('listening on a loopback address adds its name; a non-loopback one with the default list warns', async () => {
    await withServer(['--listen', '127.0.0.2:0'], async (s) => {
        let m;
        await until(() => (m = /jrpcd listening on 127\.0\.0\.2:(\d+)/.exec(s.stdout())), 'the second address');
        const other = { ...s, host: '127.0.0.2', port: Number(m[1]) };
        const r = await send(other, { body: PING });
        assert.equal(r.status, 200, r.body);
        assert.doesNotMatch(s.stderr(), /default hosts/);
    });
    const warning = /warn listening on 0\.0\.0\.0:\d+ with the default hosts \(localhost 127\.0\.0\.1 ::1\).*set hosts/;
    await withServer(['--listen', '0.0.0.0:0'], async (s) => {
        await until(() => warning.test(s.stderr()), `the warning; stderr: ${s.stderr()}`);
    });
    await withServer(['--listen', '0.0.0.0:0', '--hosts', '*'], async (s) => {
        await healthy(s); // logged by then: the warning comes before "listening on"
        assert.doesNotMatch(s.stderr(), /default hosts/);
    });
});

test('--check shows both settings; a bad value stops jrpcd with exit 2 and names it', () => {
    let p = spawnSync(JRPCD, [...moduleArgs(), '--check', '--hosts', 'rpc.example.com, ::1', '--cors-origins', APP], { encoding: 'utf8' });
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, /^hosts = rpc\.example\.com, ::1$/m);
    assert.match(p.stdout, /^cors_origins = https:\/\/app\.example$/m);
    p = spawnSync(JRPCD, [...moduleArgs(), '--check'], { encoding: 'utf8' });
    assert.match(p.stdout, /^hosts = $/m);
    assert.match(p.stdout, /^cors_origins = $/m);
    for (const [flag, value, why] of [
        ['--hosts', 'localhost:8545', /without a port/],
        ['--hosts', 'a/b', /host name/],
        ['--cors-origins', `${APP}/`, /scheme:\/\/host/],
        ['--cors-origins', 'null', /scheme:\/\/host/],
    ]) {
        p = spawnSync(JRPCD, [...moduleArgs(), '--check', flag, value], { encoding: 'utf8' });
        assert.equal(p.status, 2, `${flag} ${value}: ${p.stdout}${p.stderr}`);
        assert.match(p.stderr, new RegExp(`${flag}: "${value.replace(/[./]/g, '\\$&')}": `));
        assert.match(p.stderr, why);
    }
});
