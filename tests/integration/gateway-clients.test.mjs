// SPDX-License-Identifier: MIT
// Real clients and a second real node through the gateway: hardhat (pinned, started once for the
// file since it is slow to start) behind jrpcd for the core calls, and viem (http transport with
// batch: true) and ethers v6 (JsonRpcProvider, which batches on its own) reading blocks and
// balances through jrpcd from ganache and from hardhat — each must see exactly what it sees when
// talking to the node directly.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicClient, http } from 'viem';
import { JsonRpcProvider } from 'ethers';
import { rpc, call, batch, healthy } from './lib.mjs';
import { startGanache, startHardhat, startGateway, callResult } from './gateway-lib.mjs';

// The default accounts of each node's built-in wallet.
const GANACHE_ACCOUNTS = ['0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1', '0xFFcf8FDEE72ac11b5c542428B35EEF5769C409f0'];
const HARDHAT_ACCOUNTS = ['0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266', '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'];

let ganache, hardhat, gwG, gwH;

before(async () => {
    [ganache, hardhat] = await Promise.all([startGanache(), startHardhat()]);
    [gwG, gwH] = await Promise.all([
        startGateway({ eth: { urls: ganache.url, methods: 'eth_* net_* web3_*', max_batch: 3 } }),
        startGateway({ eth: { urls: hardhat.url, methods: 'eth_* net_* web3_*', max_batch: 3 } }),
    ]);
});

after(async () => {
    await gwG?.kill();
    await gwH?.kill();
    await ganache?.kill();
    await hardhat?.kill();
});

test('hardhat through jrpcd: chainId, blockNumber, balance as directly; sendTransaction then receipt', async () => {
    assert.equal(await callResult(gwH.url, 'eth_chainId'), '0x7a69');
    for (const [m, p] of [['eth_blockNumber', []], ['eth_getBalance', [HARDHAT_ACCOUNTS[0], 'latest']], ['net_version', []]]) {
        assert.deepEqual(await callResult(gwH.url, m, p), await callResult(hardhat.url, m, p), m);
    }
    const hash = await callResult(gwH.url, 'eth_sendTransaction', [{ from: HARDHAT_ACCOUNTS[0], to: HARDHAT_ACCOUNTS[1], value: '0x2a' }]);
    const receipt = await callResult(gwH.url, 'eth_getTransactionReceipt', [hash]);
    assert.equal(receipt.status, '0x1');
    assert.deepEqual(receipt, await callResult(hardhat.url, 'eth_getTransactionReceipt', [hash]));
    const r = await rpc(gwH, batch([call('eth_blockNumber', [], 1), call('tennis@ping', undefined, 2), call('eth_getBalance', [HARDHAT_ACCOUNTS[1], 'latest'], 3)]));
    assert.equal(r.json[0].result, await callResult(hardhat.url, 'eth_blockNumber'));
    assert.equal(r.json[1].result, 'pong');
    assert.equal(r.json[2].result, await callResult(hardhat.url, 'eth_getBalance', [HARDHAT_ACCOUNTS[1], 'latest']));
});

/** Reads through a viem client, issued together so its batching transport sends one batch. */
async function viemReads(url, accounts) {
    const client = createPublicClient({ transport: http(url, { batch: true, retryCount: 0 }) });
    const [chainId, number, block0, latest, b0, b1, nonce] = await Promise.all([
        client.getChainId(),
        client.getBlockNumber({ cacheTime: 0 }),
        client.getBlock({ blockNumber: 0n }),
        client.getBlock({ blockTag: 'latest', includeTransactions: true }),
        client.getBalance({ address: accounts[0] }),
        client.getBalance({ address: accounts[1] }),
        client.getTransactionCount({ address: accounts[0] }),
    ]);
    return { chainId, number, block0, latest, b0, b1, nonce };
}

/** The same through an ethers v6 provider (it batches calls made in the same tick). */
async function ethersReads(url, accounts) {
    const provider = new JsonRpcProvider(url, undefined, { batchMaxCount: 10 });
    try {
        const [network, number, block0, latest, b0, b1, nonce] = await Promise.all([
            provider.getNetwork(),
            provider.getBlockNumber(),
            provider.getBlock(0),
            provider.getBlock('latest', true),
            provider.getBalance(accounts[0]),
            provider.getBalance(accounts[1]),
            provider.getTransactionCount(accounts[0]),
        ]);
        return {
            chainId: network.chainId, number, block0: block0.toJSON(), latest: latest.toJSON(), b0, b1, nonce,
        };
    } finally {
        provider.destroy();
    }
}

/** Count of batched requests (items > 1) jrpcd has logged so far. */
const batchedRequests = (gw) => (gw.stderr().match(/ 200 items=([2-9]|\d\d+) /g) ?? []).length;

for (const [label, getNode, getGw, accounts] of [
    ['ganache', () => ganache, () => gwG, GANACHE_ACCOUNTS],
    ['hardhat', () => hardhat, () => gwH, HARDHAT_ACCOUNTS],
]) {
    test(`viem http({ batch: true }) through jrpcd sees what it sees from ${label} directly`, async () => {
        const before = batchedRequests(getGw());
        const via = await viemReads(getGw().url, accounts);
        const direct = await viemReads(getNode().url, accounts);
        assert.deepEqual(via, direct);
        assert.ok(via.b0 > 0n && via.block0.number === 0n);
        assert.ok(batchedRequests(getGw()) > before, 'viem sent a batch through jrpcd');
    });

    test(`ethers v6 JsonRpcProvider through jrpcd sees what it sees from ${label} directly`, async () => {
        const via = await ethersReads(getGw().url, accounts);
        const direct = await ethersReads(getNode().url, accounts);
        assert.deepEqual(via, direct);
        assert.ok(via.b0 > 0n && via.block0.number === 0);
    });
}

test('both gateways still healthy and stop cleanly', async () => {
    for (const gw of [gwG, gwH]) {
        await healthy(gw);
        await gw.stop();
    }
});
