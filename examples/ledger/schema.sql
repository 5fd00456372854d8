-- SPDX-License-Identifier: MIT
-- schema.sql — the ledger's tables, run once when the module creates a new database (the build
-- embeds this file into ledger.so). Amounts that can pass 2^63 (shares, ether) are TEXT holding
-- the canonical decimal digits: SQLite's INTEGER is 64-bit signed and its SUM() falls back to
-- floating point, so all arithmetic happens in C (uint256.c), never in SQL. The CHECKs keep a
-- hand-edited database from holding anything the methods could not answer with.

-- Shares held per account (stETH is a rebasing token; shares are what accounts really hold).
CREATE TABLE shares (
    address TEXT NOT NULL PRIMARY KEY        -- lowercase "0x" + 40 hex digits
        CHECK (length(address) = 42 AND address GLOB '0x*'
               AND substr(address, 3) NOT GLOB '*[^0-9a-f]*'),
    amount  TEXT NOT NULL                    -- uint256, canonical decimal
        CHECK (length(amount) BETWEEN 1 AND 78 AND amount NOT GLOB '*[^0-9]*'
               AND (amount = '0' OR amount NOT GLOB '0*'))
) WITHOUT ROWID;

-- unstETH withdrawal NFTs (Lido's withdrawal queue requests), listed per account.
CREATE TABLE withdrawal_requests (
    id               INTEGER PRIMARY KEY CHECK (id >= 0),   -- request id = token id
    account          TEXT NOT NULL                          -- holder it is listed under (lowercase)
        CHECK (length(account) = 42 AND account GLOB '0x*'
               AND substr(account, 3) NOT GLOB '*[^0-9a-f]*'),
    owner            TEXT NOT NULL                          -- as the queue reported it ("0x" in seed 000)
        CHECK (owner GLOB '0x*' AND substr(owner, 3) NOT GLOB '*[^0-9a-fA-F]*'),
    amount_of_steth  TEXT NOT NULL
        CHECK (length(amount_of_steth) BETWEEN 1 AND 78 AND amount_of_steth NOT GLOB '*[^0-9]*'),
    amount_of_shares TEXT NOT NULL
        CHECK (length(amount_of_shares) BETWEEN 1 AND 78 AND amount_of_shares NOT GLOB '*[^0-9]*'),
    timestamp        TEXT NOT NULL                          -- decimal, as the seed shows it
        CHECK (length(timestamp) BETWEEN 1 AND 78 AND timestamp NOT GLOB '*[^0-9]*'),
    is_finalized     INTEGER NOT NULL CHECK (is_finalized IN (0, 1)),
    is_claimed       INTEGER NOT NULL CHECK (is_claimed IN (0, 1))
);
CREATE INDEX withdrawal_requests_by_account ON withdrawal_requests (account, id);

-- TokenRebased events of the stETH contract, one row per log. The last one is the row with the
-- highest (block_number, log_index).
CREATE TABLE token_rebased_events (
    block_number          INTEGER NOT NULL CHECK (block_number >= 0),
    log_index             INTEGER NOT NULL CHECK (log_index >= 0),
    transaction_index     INTEGER NOT NULL CHECK (transaction_index >= 0),
    block_hash            TEXT NOT NULL,
    transaction_hash      TEXT NOT NULL,
    address               TEXT NOT NULL,                    -- the emitting contract
    topic0                TEXT NOT NULL,                    -- keccak256 of the event signature
    topic1                TEXT NOT NULL,                    -- indexed reportTimestamp, 32 bytes
    data                  TEXT NOT NULL,                    -- ABI-encoded non-indexed args
    removed               INTEGER NOT NULL DEFAULT 0 CHECK (removed IN (0, 1)),
    report_timestamp      TEXT NOT NULL CHECK (report_timestamp NOT GLOB '*[^0-9]*'),
    time_elapsed          TEXT NOT NULL CHECK (time_elapsed NOT GLOB '*[^0-9]*'),
    pre_total_shares      TEXT NOT NULL CHECK (pre_total_shares NOT GLOB '*[^0-9]*'),
    pre_total_ether       TEXT NOT NULL CHECK (pre_total_ether NOT GLOB '*[^0-9]*'),
    post_total_shares     TEXT NOT NULL CHECK (post_total_shares NOT GLOB '*[^0-9]*'),
    post_total_ether      TEXT NOT NULL CHECK (post_total_ether NOT GLOB '*[^0-9]*'),
    shares_minted_as_fees TEXT NOT NULL CHECK (shares_minted_as_fees NOT GLOB '*[^0-9]*'),
    PRIMARY KEY (block_number, log_index)
) WITHOUT ROWID;
