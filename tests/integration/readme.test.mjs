// SPDX-License-Identifier: MIT
// The README's shell examples, run as printed: every `curl …` and `build/jrpc …` command of a
// ```sh block that is followed by its expected output as a comment (`# 19` on the same line, or
// a `# …` line right after it) runs against jrpcd with the modules `make run` serves (the
// ledger on a fresh database), with 127.0.0.1:8000 pointed at the test server. A tour whose
// examples drift from what the server answers fails here.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, healthy, JRPCD, MODULES, SOURCE_DIR } from './lib.mjs';

const ROOT = SOURCE_DIR;
const CLI = process.env.JRPC_CLI || path.join(path.dirname(JRPCD), 'jrpc');

/* [{ cmd, expect }] from the README's sh blocks: continuation lines joined, the comment that
 * follows a command taken as its output. */
function examples(text) {
    const out = [];
    for (const block of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
        const lines = block[1].split('\n');
        for (let i = 0; i < lines.length; i++) {
            let cmd = lines[i];
            while (cmd.endsWith('\\') && i + 1 < lines.length)
                cmd = cmd.slice(0, -1) + lines[++i].trim();
            if (!/^(curl|build\/jrpc) /.test(cmd))
                continue;
            let expect;
            const m = cmd.match(/^(.*?)\s+# (.*)$/);
            if (m && !m[1].includes("'#")) {
                cmd = m[1];
                expect = m[2];
            } else if (lines[i + 1]?.startsWith('# ')) {
                expect = lines[i + 1].slice(2);
            }
            if (expect !== undefined && !/req\/s|p50/.test(expect))
                out.push({ cmd, expect });
        }
    }
    return out;
}

let srv;
let tmp;
before(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'jrpc-readme-'));
    srv = await startServer(['--module', `${path.join(MODULES, 'ledger.so')}:${path.join(tmp, 'ledger.db')}`]);
});
after(async () => {
    if (srv) { await healthy(srv); await srv.kill(); }
    rmSync(tmp, { recursive: true, force: true });
});

function sh(cmd) {
    return new Promise((resolve, reject) => {
        execFile('sh', ['-c', cmd], { timeout: 20_000, encoding: 'utf8', env: { ...process.env, JRPC_URL: `http://127.0.0.1:${srv.port}/api/v1/endpoint` } },
            (err, stdout, stderr) => (err ? reject(new Error(`${cmd}: ${err.message} ${stderr}`)) : resolve(stdout)));
    });
}

test('every README shell example with an expected answer gets it', async () => {
    const ex = examples(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
    assert.ok(ex.length >= 5, `README examples found: ${ex.length}`);
    for (const { cmd, expect } of ex) {
        const run = cmd.replaceAll('127.0.0.1:8000', `127.0.0.1:${srv.port}`).replace(/^build\/jrpc /, `${CLI} `);
        assert.equal((await sh(run)).trim(), expect, cmd);
    }
});
