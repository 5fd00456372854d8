// SPDX-License-Identifier: MIT
// The ledger module (examples/ledger, docs/ledger.md) on a real SQLite file: seed 000's batch sent
// verbatim and compared byte for byte with the seed's answers, every params check, transfers
// (alone only, atomic, refused in batches), a batch of 1000 balance reads, concurrent transfers
// from many connections conserving every share, and data surviving a restart.
//
// Expected balances come from examples/ledger/fixture.sql itself, so the fixture can change
// without this file falling out of step. Each test that writes gets a database of its own.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
    startServer, withServer, rpc, call, batch, rawIds, rawElements, rawMembers,
    assertError, HttpConn, JRPCD, MODULES, SOURCE_DIR, RPC_PATH,
} from './lib.mjs';

// ---- Seed 000, verbatim -------------------------------------------------------------------------

const SEED_REQUEST = `[
  {
    "jsonrpc": "2.0",
    "method": "shares.balance",
    "params": ["0x2f0EA53F92252167d658963f334a91de0824e322"],
    "id": 1
  },
  {
    "jsonrpc": "2.0",
    "method": "unsteth.getNFTsByAccount",
    "params": ["0x2f0EA53F92252167d658963f334a91de0824e322"],
    "id": 2
  },
  {
    "jsonrpc": "2.0",
    "method": "events.stethEvents.getLastRebaseEvent",
    "params": [],
    "id": 3
  }
]`;

const SEED_RESPONSE = `[
  {
    "jsonrpc": "2.0",
    "result": [
      {
        "amountOfStETH": "10000000000000000",
        "amountOfShares": "9995810557743733",
        "owner": "0x",
        "timestamp": "16973450812",
        "isFinalized": true,
        "isClaimed": false,
        "id": "777"
      }
    ],
    "id": 2
  },
  {
    "jsonrpc": "2.0",
    "result": "14066156191713469572",
    "id": 1
  },
  {
    "jsonrpc": "2.0",
    "result": {
      "eventName": "TokenRebased",
      "args": {
        "reportTimestamp": "1721072820",
        "timeElapsed": "4608",
        "preTotalShares": "1079179109989045486885777",
        "preTotalEther": "1093196098970760843229455",
        "postTotalShares": "1079179369664131812438396",
        "postTotalEther": "1093198738453702928397482",
        "sharesMintedAsFees": "260563376065765428"
      },
      "address": "0x3f1c547b21f65e10480de3ad8e19faac46c95034",
      "topics": [
        "0xff08c3ef606d198e316ef5b822193c489965899eb4e3c248cea1a4626c3eda50",
        "0x0000000000000000000000000000000000000000000000000000000066957cb4"
      ],
      "data": "0x000000000000000000000000000000000000000000000000000000000000120000000000000000000000000000000000000000000000e4866ab1ef0fa0ba1b9100000000000000000000000000000000000000000000e77e477e6cbd9ce5f90f00000000000000000000000000000000000000000000e4866e4c7c2d1e2e317c00000000000000000000000000000000000000000000e77e6c1fc07dee9674aa000000000000000000000000000000000000000000000000039db5028fe06034",
      "blockNumber": "1934791",
      "transactionHash": "0x826b3e20a499dfb655828829ba08cab037b81873237397502159ea41f9186246",
      "transactionIndex": 16,
      "blockHash": "0x61ea6638b24ef3b0215556e67bb847e44f52c97e9f24b898452b3b6c426ee82e",
      "logIndex": 43,
      "removed": false
    },
    "id": 3
  }
]`;

const SEED_ACCOUNT = '0x2f0EA53F92252167d658963f334a91de0824e322';

// ---- Fixture --------------------------------------------------------------------------------------

/** [address, BigInt shares] of every row of the fixture's shares table, in file order. */
function fixtureShares() {
    const sql = readFileSync(path.join(SOURCE_DIR, 'examples', 'ledger', 'fixture.sql'), 'utf8');
    const start = sql.indexOf('INSERT INTO shares');
    const end = sql.indexOf(';', start);
    const rows = [...sql.slice(start, end).matchAll(/\('(0x[0-9a-f]{40})', '(\d+)'\)/g)]
        .map((m) => [m[1], BigInt(m[2])]);
    assert.ok(rows.length >= 50, `fixture has ${rows.length} accounts`);
    return rows;
}

const SHARES = fixtureShares();
const INITIAL = new Map(SHARES);
const TOTAL = SHARES.reduce((t, [, v]) => t + v, 0n);
const TWO64 = 1n << 64n;
const MAX256 = (1n << 256n) - 1n;

// Accounts 1-10 of the fixture, each ~10^21 shares (> 2^64): the ones transfers move shares among.
const MOVERS = SHARES.slice(1, 11).map(([a]) => a);
const EMPTY_ACCOUNT = SHARES.find(([, v]) => v === 0n)[0];
const UNKNOWN = '0x00000000000000000000000000000000000000aa';

// ---- Helpers ----------------------------------------------------------------------------------------

let tmp;
before(() => { tmp = mkdtempSync(path.join(tmpdir(), 'jrpc-ledger-')); });
after(() => { if (tmp) rmSync(tmp, { recursive: true, force: true }); });

let dbCount = 0;
/** A database path of its own (not yet created), under a directory that does not exist yet. */
function freshDb() {
    dbCount++;
    return path.join(tmp, `t${dbCount}`, 'data', 'ledger.db');
}

const ledgerArgs = (db, extra = []) => ['--module', `${path.join(MODULES, 'ledger.so')}:${db}`, ...extra];

/** Runs fn(server) on a jrpcd serving a fresh ledger (then checks health and a clean exit). */
const withLedger = (fn, extra) => withServer(ledgerArgs(freshDb(), extra), fn);

/** One call's parsed response object (status 200 asserted). */
async function one(srv, method, params, id = 1) {
    const r = await rpc(srv, call(method, params, id));
    assert.equal(r.status, 200, r.body);
    return r.json;
}

/** The result of a call that must succeed. */
async function result(srv, method, params) {
    const res = await one(srv, method, params);
    assert.ok('result' in res, `${method} ${JSON.stringify(params)} failed: ${JSON.stringify(res)}`);
    return res.result;
}

const balance = async (srv, a) => BigInt(await result(srv, 'shares.balance', [a]));
const total = async (srv) => BigInt(await result(srv, 'shares.total'));
const isUint = (s) => typeof s === 'string' && /^(0|[1-9][0-9]*)$/.test(s) && BigInt(s) <= MAX256;

// ---- Seed 000 ------------------------------------------------------------------------------------

test('seed 000: the batch sent verbatim gets the seed\'s three answers, in request order', async () => {
    await withLedger(async (srv) => {
        const r = await rpc(srv, SEED_REQUEST);
        assert.equal(r.status, 200, r.body);
        // The seed lists its answers out of order; jrpc answers in request order.
        assert.deepEqual(rawIds(r.body), ['1', '2', '3']);
        const seed = new Map(JSON.parse(SEED_RESPONSE).map((o) => [o.id, o]));
        const items = rawElements(r.body);
        assert.equal(items.length, 3);
        for (const raw of items) {
            const got = JSON.parse(raw);
            const want = seed.get(got.id);
            assert.deepEqual(got, want, `id ${got.id}`);
            // Byte for byte: member order as in the seed, numbers vs strings as in the seed and
            // uint256 values as exact text (JSON.parse would round a bare 14066156191713469572).
            assert.equal(rawMembers(raw).result, JSON.stringify(want.result), `id ${got.id}`);
        }
        assert.equal(JSON.parse(items[0]).result, '14066156191713469572');
        assert.ok(BigInt(JSON.parse(items[0]).result) > 1n << 63n);
    });
});

test('seed 000 methods alone and by name; addresses in any letter case', async () => {
    await withLedger(async (srv) => {
        const seed = JSON.parse(SEED_RESPONSE);
        const nfts = seed.find((o) => o.id === 2).result;
        const event = seed.find((o) => o.id === 3).result;
        for (const a of [SEED_ACCOUNT, SEED_ACCOUNT.toLowerCase(), '0x' + SEED_ACCOUNT.slice(2).toUpperCase()]) {
            assert.equal(await result(srv, 'shares.balance', [a]), '14066156191713469572');
            assert.equal(await result(srv, 'shares.balance', { address: a }), '14066156191713469572');
            assert.deepEqual(await result(srv, 'unsteth.getNFTsByAccount', { address: a }), nfts);
        }
        // escaped letters are still letters
        assert.equal(await result(srv, 'shares.balance', '["\\u0030x2f0EA53F92252167d658963f334a91de0824e322"]'),
            '14066156191713469572');
        for (const p of [undefined, [], {}]) {
            assert.deepEqual(await result(srv, 'events.stethEvents.getLastRebaseEvent', p), event);
        }
        assert.equal(await result(srv, 'shares.balance', [UNKNOWN]), '0');
        assert.deepEqual(await result(srv, 'unsteth.getNFTsByAccount', [UNKNOWN]), []);
        assert.equal(await result(srv, 'shares.total'), TOTAL.toString());
        assert.equal(await result(srv, 'shares.total', []), TOTAL.toString());
        // Other accounts' NFTs: well-formed and listed by ascending id.
        const list = await result(srv, 'unsteth.getNFTsByAccount', [MOVERS[0]]);
        assert.ok(list.length >= 1);
        let prev = -1n;
        for (const n of list) {
            assert.deepEqual(Object.keys(n), Object.keys(nfts[0]));
            assert.equal(n.owner, MOVERS[0]);
            assert.ok(isUint(n.amountOfStETH) && isUint(n.amountOfShares) && isUint(n.timestamp) && isUint(n.id));
            assert.equal(typeof n.isFinalized, 'boolean');
            assert.ok(BigInt(n.id) > prev);
            prev = BigInt(n.id);
        }
    });
});

// ---- Params -----------------------------------------------------------------------------------------

const A = MOVERS[0];
const B = MOVERS[1];

// [method, params (value, or raw JSON text), message pattern, data.param or undefined]
const INVALID = [
    ['shares.balance', undefined, /missing params/],
    ['shares.balance', [], /expected 1 param, got 0/],
    ['shares.balance', [A, A], /expected 1 param, got 2/],
    ['shares.balance', {}, /missing param "address"/, 'address'],
    ['shares.balance', { addr: A }, /unknown param "addr"/],
    ['shares.balance', { address: A, extra: 1 }, /unknown param "extra"/],
    ['shares.balance', `{"address":"${A}","address":"${A}"}`, /"address" given twice/, 'address'],
    ['shares.balance', [1], /address must be a string/, 'address'],
    ['shares.balance', [null], /address must be a string/, 'address'],
    ['shares.balance', [[A]], /address must be a string/, 'address'],
    ['shares.balance', [''], /address must be "0x" followed by 40 hex digits/, 'address'],
    ['shares.balance', [A.slice(0, 41)], /40 hex digits/, 'address'],
    ['shares.balance', [A + '0'], /40 hex digits/, 'address'],
    ['shares.balance', [A.slice(2) + '00'], /40 hex digits/, 'address'],
    ['shares.balance', ['0X' + A.slice(2)], /40 hex digits/, 'address'],
    ['shares.balance', ['0x' + 'g'.repeat(40)], /40 hex digits/, 'address'],
    ['shares.balance', [' ' + A], /40 hex digits/, 'address'],
    ['shares.balance', [A.slice(0, 41) + '\u00e9'], /40 hex digits/, 'address'],
    ['shares.balance', '["0x2f0ea53f92252167d658963f334a91de0824e32\\u0000"]', /40 hex digits/, 'address'],
    ['unsteth.getNFTsByAccount', [], /expected 1 param, got 0/],
    ['unsteth.getNFTsByAccount', ['0x1234'], /40 hex digits/, 'address'],
    ['unsteth.getNFTsByAccount', { owner: A }, /unknown param "owner"/],
    ['shares.total', [1], /expected 0 params, got 1/],
    ['shares.total', { address: A }, /unknown param "address"/],
    ['events.stethEvents.getLastRebaseEvent', ['latest'], /expected 0 params, got 1/],
    ['events.stethEvents.getLastRebaseEvent', { n: 1 }, /unknown param "n"/],
    ['shares.transfer', undefined, /missing params/],
    ['shares.transfer', [A, B], /expected 3 params, got 2/],
    ['shares.transfer', [A, B, '1', '2'], /expected 3 params, got 4/],
    ['shares.transfer', { from: A, to: B }, /missing param "amount"/, 'amount'],
    ['shares.transfer', { from: A, amount: '1' }, /missing param "to"/, 'to'],
    ['shares.transfer', { from: A, to: B, amount: '1', memo: 'x' }, /unknown param "memo"/],
    ['shares.transfer', ['0x1', B, '1'], /from must be "0x" followed by 40 hex digits/, 'from'],
    ['shares.transfer', [A, 42, '1'], /to must be a string/, 'to'],
    ['shares.transfer', [A, B, '-1'], /amount must not be negative/, 'amount'],
    ['shares.transfer', '["' + A + '","' + B + '",-1]', /amount must not be negative/, 'amount'],
    ['shares.transfer', '["' + A + '","' + B + '",-0]', /amount must not be negative/, 'amount'],
    ['shares.transfer', '["' + A + '","' + B + '",1.5]', /amount must be an integer/, 'amount'],
    ['shares.transfer', '["' + A + '","' + B + '",1.0]', /amount must be an integer/, 'amount'],
    ['shares.transfer', '["' + A + '","' + B + '",1e3]', /amount must be an integer/, 'amount'],
    ['shares.transfer', '["' + A + '","' + B + '",1E3]', /amount must be an integer/, 'amount'],
    ['shares.transfer', [A, B, '1e3'], /amount has a character other than the digits 0-9/, 'amount'],
    ['shares.transfer', [A, B, '0x10'], /amount has a character other than the digits 0-9/, 'amount'],
    ['shares.transfer', [A, B, ' 1'], /amount has a character other than the digits 0-9/, 'amount'],
    ['shares.transfer', [A, B, '+1'], /amount has a character other than the digits 0-9/, 'amount'],
    ['shares.transfer', [A, B, '1.0'], /amount has a character other than the digits 0-9/, 'amount'],
    ['shares.transfer', [A, B, ''], /amount is empty/, 'amount'],
    ['shares.transfer', [A, B, '007'], /amount has a leading zero/, 'amount'],
    ['shares.transfer', [A, B, (MAX256 + 1n).toString()], /amount exceeds 2\^256-1/, 'amount'],
    ['shares.transfer', '["' + A + '","' + B + '",' + (MAX256 + 1n).toString() + ']', /amount exceeds 2\^256-1/, 'amount'],
    ['shares.transfer', [A, B, '9'.repeat(79)], /amount exceeds 2\^256-1/, 'amount'],
    ['shares.transfer', [A, B, '1'.repeat(200)], /amount is longer than 78 digits/, 'amount'],
    ['shares.transfer', [A, B, true], /amount must be a decimal string or an integer/, 'amount'],
    ['shares.transfer', [A, B, null], /amount must be a decimal string or an integer/, 'amount'],
    ['shares.transfer', [A, B, { v: 1 }], /amount must be a decimal string or an integer/, 'amount'],
];

test('every params error is -32602 saying what is wrong, and changes nothing', async () => {
    await withLedger(async (srv) => {
        for (const [method, params, message, param] of INVALID) {
            const what = `${method} ${typeof params === 'string' ? params : JSON.stringify(params)}`;
            const res = await one(srv, method, params, 7);
            assertError(res, -32602, 7, what);
            assert.match(res.error.message, message, what);
            assert.equal(typeof res.error.data, 'object', what);
            assert.equal(typeof res.error.data.usage, 'string', what);
            assert.ok(res.error.data.usage.startsWith(method), what);
            assert.equal(res.error.data.param, param, what);
        }
        // The same errors inside a batch: per item, in order.
        const items = INVALID.filter(([m]) => m !== 'shares.transfer')
            .map(([m, p], i) => call(m, p, i));
        const r = await rpc(srv, batch(items));
        assert.equal(r.json.length, items.length);
        r.json.forEach((x, i) => assertError(x, -32602, i));
        for (const [a, v] of SHARES.slice(0, 12)) assert.equal(await balance(srv, a), v);
        assert.equal(await total(srv), TOTAL);
    });
});

// ---- Transfers ------------------------------------------------------------------------------------

test('shares.transfer alone moves shares and answers both new balances; inside a batch -32004', async () => {
    await withLedger(async (srv) => {
        const [a, b] = [MOVERS[2], MOVERS[3]];
        let [va, vb] = [INITIAL.get(a), INITIAL.get(b)];

        // Positional, amount as a decimal string beyond 2^64.
        let amount = TWO64 + 12345n;
        let res = await result(srv, 'shares.transfer', [a, b, amount.toString()]);
        va -= amount; vb += amount;
        assert.deepEqual(res, { from: va.toString(), to: vb.toString() });

        // Named, upper-case hex, amount as a bare JSON integer past 2^64 (taken as exact text).
        amount = 18446744073709551617n;
        const r = await rpc(srv, `{"jsonrpc":"2.0","method":"shares.transfer","params":{"amount":${amount},` +
            `"to":"0x${a.slice(2).toUpperCase()}","from":"${b}"},"id":2}`);
        vb -= amount; va += amount;
        assert.equal(rawMembers(r.body).result, `{"from":"${vb}","to":"${va}"}`, r.body);

        // To an account that did not exist, then back in full: "0" and the account stays known.
        res = await result(srv, 'shares.transfer', { from: a, to: UNKNOWN, amount: '1000' });
        assert.deepEqual(res, { from: (va - 1000n).toString(), to: '1000' });
        res = await result(srv, 'shares.transfer', [UNKNOWN, a, 1000]);
        assert.deepEqual(res, { from: '0', to: va.toString() });
        assert.equal(await balance(srv, UNKNOWN), 0n);

        // Zero, and to oneself: allowed, nothing moves.
        assert.deepEqual(await result(srv, 'shares.transfer', [a, b, '0']), { from: va.toString(), to: vb.toString() });
        assert.deepEqual(await result(srv, 'shares.transfer', [a, a.toUpperCase().replace('0X', '0x'), '5']),
            { from: va.toString(), to: va.toString() });

        // Inside a batch: that item -32004, nothing moved, the other items answered.
        const before = [await balance(srv, a), await balance(srv, b)];
        const br = await rpc(srv, batch([
            call('shares.transfer', [a, b, '1'], 'x'),
            call('shares.balance', [a], 'y'),
            call('shares.transfer', { from: b, to: a, amount: '1' }, 'z'),
        ]));
        assert.equal(br.status, 200);
        assertError(br.json[0], -32004, 'x');
        assert.match(br.json[0].error.message, /shares\.transfer is not available in batch requests/);
        assert.deepEqual(br.json[1], { jsonrpc: '2.0', result: va.toString(), id: 'y' });
        assertError(br.json[2], -32004, 'z');
        assert.deepEqual([await balance(srv, a), await balance(srv, b)], before);
        // A one-item batch is still a batch.
        assertError((await rpc(srv, batch([call('shares.transfer', [a, b, '1'], 1)]))).json[0], -32004, 1);

        assert.deepEqual([await balance(srv, a), await balance(srv, b)], [va, vb]);
        assert.equal(await total(srv), TOTAL);
    });
});

test('insufficient balance: -32000 with the balance in data, nothing changed', async () => {
    await withLedger(async (srv) => {
        const [a, b] = [MOVERS[4], MOVERS[5]];
        const [va, vb] = [INITIAL.get(a), INITIAL.get(b)];
        const cases = [
            [a, b, va + 1n, va],
            [a, b, MAX256, va],
            [EMPTY_ACCOUNT, b, 1n, 0n],
            [UNKNOWN, b, 1n, 0n],
            [a, a, va + 1n, va], // even to oneself
        ];
        for (const [from, to, amount, bal] of cases) {
            const res = await one(srv, 'shares.transfer', [from, to, amount.toString()], 'i');
            assertError(res, -32000, 'i');
            assert.equal(res.error.message, 'insufficient balance');
            assert.deepEqual(res.error.data, { from, balance: bal.toString(), amount: amount.toString() });
        }
        assert.equal(await balance(srv, a), va);
        assert.equal(await balance(srv, b), vb);
        assert.equal(await balance(srv, UNKNOWN), 0n);
        assert.equal(await total(srv), TOTAL);
        // Exactly the whole balance is fine.
        assert.deepEqual(await result(srv, 'shares.transfer', [a, b, va.toString()]),
            { from: '0', to: (va + vb).toString() });
        assertError(await one(srv, 'shares.transfer', [a, b, '1']), -32000);
        assert.equal(await total(srv), TOTAL);
    });
});

// ---- Batches and concurrency ----------------------------------------------------------------------

test('a batch of 1000 shares.balance calls: every answer exact, in order', async () => {
    await withLedger(async (srv) => {
        const items = [];
        const want = [];
        for (let i = 0; i < 1000; i++) {
            let a;
            let v;
            if (i % 25 === 24) {
                a = '0x' + i.toString(16).padStart(40, '0'); // unknown
                v = 0n;
            } else {
                [a, v] = SHARES[i % SHARES.length];
            }
            if (i % 3 === 1) a = '0x' + a.slice(2).toUpperCase();
            items.push(i % 2 ? call('shares.balance', [a], i) : call('shares.balance', { address: a }, `b${i}`));
            want.push(`"${v}"`);
        }
        assert.ok(want.filter((w) => BigInt(JSON.parse(w)) > TWO64).length > 100, 'many values past 2^64');
        const r = await rpc(srv, batch(items), { timeout: 60_000 });
        assert.equal(r.status, 200);
        const got = rawElements(r.body);
        assert.equal(got.length, 1000);
        assert.deepEqual(rawIds(r.body), items.map((t) => JSON.stringify(JSON.parse(t).id)));
        got.forEach((raw, i) => assert.equal(rawMembers(raw).result, want[i], `item ${i}: ${raw}`));
    });
});

/** Deterministic PRNG (mulberry32), so a failing run replays. */
function prng(seed) {
    let s = seed >>> 0;
    return () => {
        s = (s + 0x6d2b79f5) >>> 0;
        let t = s;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

test('concurrent transfers from 8 connections (with batches reading meanwhile) conserve every share', async () => {
    await withLedger(async (srv) => {
        const CLIENTS = 8;
        const PER_CLIENT = 50;
        const initialSum = MOVERS.reduce((t, a) => t + INITIAL.get(a), 0n);
        const minBal = MOVERS.reduce((m, a) => (INITIAL.get(a) < m ? INITIAL.get(a) : m), INITIAL.get(MOVERS[0]));
        const done = [];   // successful transfers: [from, to, amount]
        let refused = 0;

        const client = async (c) => {
            const rand = prng(1000 + c);
            const conn = await HttpConn.open(srv);
            try {
                for (let i = 0; i < PER_CLIENT; i++) {
                    const from = MOVERS[Math.floor(rand() * MOVERS.length)];
                    const to = MOVERS[Math.floor(rand() * MOVERS.length)];
                    // Mostly up to a third of the smallest starting balance, so accounts drain and
                    // refill; every 10th more than all ten hold together, so it must be refused.
                    const amount = i % 10 === 9 ? initialSum + 1n
                        : (BigInt(Math.floor(rand() * 2 ** 52)) * (minBal / 3n)) / BigInt(2 ** 52);
                    const res = await conn.request(srv, { body: call('shares.transfer', [from, to, amount.toString()], i) });
                    assert.equal(res.status, 200, res.body);
                    const item = res.json;
                    if (item.error) {
                        assert.equal(item.error.code, -32000, res.body);
                        assert.equal(item.error.message, 'insufficient balance', res.body);
                        assert.ok(BigInt(item.error.data.balance) < amount, res.body);
                        refused++;
                    } else {
                        assert.ok(isUint(item.result.from) && isUint(item.result.to), res.body);
                        done.push([from, to, amount]);
                    }
                }
            } finally {
                conn.close();
            }
        };

        // Meanwhile, batches of reads on another connection: every shares.total is taken from one
        // snapshot, so it never sees half a transfer.
        let writing = true;
        let totalsSeen = 0;
        const reader = async () => {
            const conn = await HttpConn.open(srv);
            try {
                while (writing) {
                    const items = [];
                    for (let i = 0; i < 10; i++) items.push(call('shares.total', undefined, `t${i}`));
                    for (const a of MOVERS) items.push(call('shares.balance', [a], a));
                    const res = await conn.request(srv, { body: batch(items) });
                    assert.equal(res.status, 200);
                    for (const item of res.json) {
                        assert.ok('result' in item, JSON.stringify(item));
                        assert.ok(isUint(item.result), JSON.stringify(item));
                        if (String(item.id).startsWith('t')) {
                            assert.equal(item.result, TOTAL.toString(), 'total mid-transfers');
                            totalsSeen++;
                        }
                    }
                }
            } finally {
                conn.close();
            }
        };

        const readerDone = reader();
        try {
            await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
        } finally {
            writing = false;
        }
        await readerDone;

        assert.equal(done.length + refused, CLIENTS * PER_CLIENT);
        assert.ok(refused >= CLIENTS * (PER_CLIENT / 10), `refused ${refused}`);
        assert.ok(done.length >= CLIENTS * PER_CLIENT / 2, `only ${done.length} transfers went through`);
        assert.ok(totalsSeen > 0);

        // Whatever order they ran in, each account ends at start + in - out: a lost update (two
        // transfers reading the same balance) would break this for some account.
        const want = new Map(MOVERS.map((a) => [a, INITIAL.get(a)]));
        for (const [from, to, amount] of done) {
            want.set(from, want.get(from) - amount);
            want.set(to, want.get(to) + amount);
        }
        const items = MOVERS.map((a, i) => call('shares.balance', [a], i));
        const r = await rpc(srv, batch(items));
        let sum = 0n;
        r.json.forEach((item, i) => {
            assert.ok(isUint(item.result), JSON.stringify(item));
            assert.equal(BigInt(item.result), want.get(MOVERS[i]), MOVERS[i]);
            assert.ok(want.get(MOVERS[i]) >= 0n);
            sum += BigInt(item.result);
        });
        assert.equal(sum, initialSum);
        assert.equal(await total(srv), TOTAL);
    });
});

// ---- The database file --------------------------------------------------------------------------

test('restart keeps data: the file is created (with its directory) once, then reused', async () => {
    const db = freshDb();
    const [a, b] = [MOVERS[6], MOVERS[7]];
    const amount = 123456789012345678901n;
    assert.ok(!existsSync(path.dirname(db)));
    await withServer(ledgerArgs(db), async (srv) => {
        await result(srv, 'shares.transfer', [a, b, amount.toString()]);
    });
    assert.ok(existsSync(db));
    await withServer(ledgerArgs(db), async (srv) => {
        assert.equal(await balance(srv, a), INITIAL.get(a) - amount);
        assert.equal(await balance(srv, b), INITIAL.get(b) + amount);
        assert.equal(await total(srv), TOTAL);
        const r = await rpc(srv, SEED_REQUEST);
        assert.equal(r.json.length, 3, 'the fixture was not loaded twice');
        assert.equal(r.json[0].result, '14066156191713469572');
    });
});

test('a relative database path works from any working directory', async () => {
    // jrpcd started in tmp with a relative args path: the file lands under that directory.
    // (A start, not --check: a check creates nothing, tests/integration/listen.test.mjs.)
    const dir = path.join(tmp, 'cwd');
    mkdirSync(dir, { recursive: true });
    const proc = spawn(JRPCD,
        ['--listen', '127.0.0.1:0', '--module', `${path.join(MODULES, 'ledger.so')}:rel/ledger.db`],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    proc.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    const listening = await Promise.race([
        new Promise((resolve) => proc.stdout.on('data', (d) => {
            stdout += d;
            if (/jrpcd listening on/.test(stdout)) resolve(true);
        })),
        exited.then(() => false),
    ]);
    assert.ok(listening, stderr);
    // Answering means it runs (its signal handlers are in place): stop it as operators do.
    const port = Number(/jrpcd listening on [\d.]+:(\d+)/.exec(stdout)[1]);
    const r = await rpc({ host: '127.0.0.1', port, path: RPC_PATH }, call('shares.total', [], 1));
    assert.equal(r.status, 200, r.body);
    proc.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    assert.ok(existsSync(path.join(dir, 'rel', 'ledger.db')), 'created relative to the working directory');
});

test('a file that is not a ledger database stops jrpcd with a message naming the problem', async () => {
    const junk = path.join(tmp, 'junk.db');
    writeFileSync(junk, 'this is not an SQLite database, just text long enough to have a header...');
    await assert.rejects(startServer(ledgerArgs(junk)), /ledger: .*junk\.db: .*file is not a database/s);
    assert.equal(readFileSync(junk, 'utf8').slice(0, 7), 'this is', 'left as it was');
    await assert.rejects(startServer(ledgerArgs(path.join(tmp, 'dir') + '/')), /ledger: .*is not a file path/s);
});

// ---- REST (docs/rest.md): the same methods without the envelope --------------------------------

test('REST: single POST, GET with named params, and a batch in order with errors in place', async () => {
    await withLedger(async (srv) => {
        const seedAccount = '0x2f0EA53F92252167d658963f334a91de0824e322';
        let r = await rpc(srv, `["${seedAccount}"]`, { path: '/rest/shares.balance' });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.body, '"14066156191713469572"');
        r = await rpc(srv, undefined, { path: `/rest/shares.balance?address=${seedAccount}`, method: 'GET' });
        assert.equal(r.body, '"14066156191713469572"');
        r = await rpc(srv, undefined, { path: '/rest/events.stethEvents.getLastRebaseEvent', method: 'GET' });
        assert.equal(r.json.eventName, 'TokenRebased');
        // A REST batch: results in request order, a bad address answered in its place.
        const [a1, a2] = [SHARES[1], SHARES[2]];
        r = await rpc(srv, JSON.stringify([[a1[0]], ['0xnope'], { address: a2[0] }, [UNKNOWN]]),
            { path: '/rest/shares.balance/batch' });
        assert.equal(r.status, 200, r.body);
        const items = rawElements(r.body);
        assert.equal(items.length, 4);
        assert.equal(items[0], `"${a1[1]}"`);
        assert.equal(JSON.parse(items[1]).error.code, -32602);
        assert.equal(items[2], `"${a2[1]}"`);
        assert.equal(items[3], '"0"');
        // Status mapping: bad params 400, unknown method 404, no_batch inside a REST batch.
        r = await rpc(srv, '["0xnope"]', { path: '/rest/shares.balance' });
        assert.equal(r.status, 400);
        assert.equal(r.json.error.code, -32602);
        r = await rpc(srv, '[]', { path: '/rest/shares.nothing' });
        assert.equal(r.status, 404);
        r = await rpc(srv, JSON.stringify([[MOVERS[0], MOVERS[1], '1']]), { path: '/rest/shares.transfer/batch' });
        assert.equal(r.json[0].error.code, -32004);
        const before0 = await balance(srv, MOVERS[0]);
        r = await rpc(srv, JSON.stringify([MOVERS[0], MOVERS[1], '5']), { path: '/rest/shares.transfer' });
        assert.equal(r.status, 200, r.body);
        assert.equal(await balance(srv, MOVERS[0]), before0 - 5n);
    });
});
