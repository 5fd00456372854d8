// SPDX-License-Identifier: MIT
// bench/idle.mjs --port P --pid PID [--conns N] — idle keep-alive memory: opens N connections
// to jrpcd, sends one tennis@ping on each and reads its answer (so each connection has served a
// request and sits idle as a keep-alive client leaves it), then reads jrpcd's RSS and prints the
// growth per connection. Node built-ins only; started by bench/soak.sh idle.
import net from 'node:net';
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
};
const PORT = Number(opt('port'));
const PID = Number(opt('pid'));
const CONNS = Number(opt('conns', 10000));
const PATH = opt('path', '/api/v1/endpoint');
const WAVE = 500;

const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${PID}/status`, 'utf8'))[1]);
const body = '{"jsonrpc":"2.0","method":"tennis@ping","id":1}';
const req = `POST ${PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

function one() {
    return new Promise((resolve, reject) => {
        const s = net.connect(PORT, '127.0.0.1');
        let got = '';
        s.setNoDelay(true);
        s.on('error', reject);
        s.on('connect', () => s.write(req));
        s.on('data', (d) => {
            got += d;
            if (got.includes('"pong"')) {
                s.removeAllListeners('data');
                resolve(s);
            }
        });
    });
}

const before = rssKiB();
const socks = [];
for (let i = 0; i < CONNS; i += WAVE) {
    const wave = [];
    for (let j = i; j < Math.min(CONNS, i + WAVE); j++) wave.push(one());
    socks.push(...(await Promise.all(wave)));
}
// Let the server settle (answers written, nothing in flight), measured as RSS that stops moving.
let last = -1, now = rssKiB();
for (let i = 0; i < 50 && now !== last; i++) {
    await new Promise((r) => setTimeout(r, 100));
    last = now;
    now = rssKiB();
}
const perConn = ((now - before) * 1024) / socks.length;
console.log(`idle: ${socks.length} keep-alive connections after one request each: jrpcd RSS ` +
    `${(before / 1024).toFixed(1)} -> ${(now / 1024).toFixed(1)} MB, ` +
    `${(perConn / 1024).toFixed(2)} KB per connection (target <= 1.5)`);
for (const s of socks) s.destroy();
