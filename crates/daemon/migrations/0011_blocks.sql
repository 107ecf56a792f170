-- Blocks found by the pool's wallet and how each one pays. Owned by
-- src/blocks.

-- One row per coinbase paying the pool's wallet, keyed by block hash; the
-- coinbase txid is unique too, so neither a second sighting nor a reorg
-- that brings the block back can count it twice.
CREATE TABLE blocks (
    hash              TEXT    PRIMARY KEY,
    coinbase_txid     TEXT    NOT NULL UNIQUE,
    height            INTEGER NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('immature', 'matured', 'orphaned')),
    confirmations     INTEGER NOT NULL,
    -- What the coinbase pays the wallet (whole satoshis, in msat).
    reward_msat       INTEGER NOT NULL CHECK (reward_msat >= 0),
    pool_fee_bps      INTEGER NOT NULL CHECK (pool_fee_bps BETWEEN 0 AND 10000),
    pool_fee_msat     INTEGER NOT NULL CHECK (pool_fee_msat >= 0 AND pool_fee_msat <= reward_msat),
    -- The scheme in force when the block was first seen (audited).
    scheme            TEXT    NOT NULL CHECK (scheme IN ('pps', 'pplns', 'solo')),
    window_work       INTEGER NOT NULL CHECK (window_work >= 0),
    total_work        INTEGER NOT NULL CHECK (total_work >= 0),
    first_share_id    INTEGER,
    last_share_id     INTEGER,
    shares_sha256     TEXT    NOT NULL,
    finder_miner_id   TEXT,
    found_at          INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    -- Set while the split is in the miners' balances (matured and not
    -- reversed); cleared when a matured block is orphaned and reversed.
    credited_at       INTEGER,
    -- How many times this block's split was reversed (a matured block
    -- orphaned); the next credit's idempotency keys carry it.
    reversals         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX blocks_state ON blocks (state, height);

-- The split of each block, one row per miner; pending until credited.
CREATE TABLE block_parts (
    block_hash  TEXT    NOT NULL REFERENCES blocks (hash),
    miner_id    TEXT    NOT NULL,
    work        INTEGER NOT NULL CHECK (work >= 0),
    amount_msat INTEGER NOT NULL CHECK (amount_msat >= 0),
    PRIMARY KEY (block_hash, miner_id)
) WITHOUT ROWID;
CREATE INDEX block_parts_miner ON block_parts (miner_id);

-- The window of each block, copied at discovery (oldest first), so a
-- statement can be fetched and checked after raw reports are pruned.
CREATE TABLE block_window (
    block_hash TEXT    NOT NULL REFERENCES blocks (hash),
    pos        INTEGER NOT NULL,
    share_id   INTEGER NOT NULL,
    miner_id   TEXT    NOT NULL,
    work       INTEGER NOT NULL CHECK (work > 0),
    PRIMARY KEY (block_hash, pos)
) WITHOUT ROWID;

-- Under PPLNS and SOLO a pool report is recorded without a per-share
-- credit (its work counts in the window of the next block): credited_msat
-- may be 0 and then there is no rollup group. SQLite cannot relax a CHECK
-- in place, so share_reports (owned by src/ingest) is rebuilt with the
-- same columns, ids and indexes.
CREATE TABLE share_reports_new (
    id            INTEGER PRIMARY KEY,
    event_id      TEXT UNIQUE,
    body_sha256   BLOB    NOT NULL,
    miner_id      TEXT    NOT NULL,
    worker_name   TEXT    NOT NULL,
    shares        INTEGER NOT NULL CHECK (shares > 0),
    difficulty    INTEGER NOT NULL CHECK (difficulty > 0),
    credited_msat INTEGER NOT NULL CHECK (credited_msat >= 0),
    reported_ts   REAL,
    received_at   INTEGER NOT NULL,
    -- The ledger rollup transfer this credit went into (NULL: no credit).
    rollup_group  INTEGER,
    CHECK ((credited_msat = 0) = (rollup_group IS NULL))
);
INSERT INTO share_reports_new
    SELECT id, event_id, body_sha256, miner_id, worker_name, shares, difficulty,
           credited_msat, reported_ts, received_at, rollup_group
    FROM share_reports;
DROP TABLE share_reports;
ALTER TABLE share_reports_new RENAME TO share_reports;
CREATE INDEX share_reports_miner ON share_reports (miner_id, id);
