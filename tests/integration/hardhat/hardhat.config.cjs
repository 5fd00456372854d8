// Minimal Hardhat config for the gateway tests: an in-process chain, nothing to compile, offline.
module.exports = {
    networks: { hardhat: { chainId: 31337 } },
};
