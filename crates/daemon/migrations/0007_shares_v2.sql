-- Batched share ingest (`POST /api/v2/shares`). Owned by src/shares.

-- One row per share source (a pool process or a bridge). `name` is the
-- `origin` of the batch contract; shares are keyed by (origin_id, seq).
CREATE TABLE share_origins (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    created_at          INTEGER NOT NULL,
    -- Highest seq ever recorded.
    max_seq             INTEGER NOT NULL DEFAULT 0,
    -- Raw shares with seq <= this were pruned: a seq at or below it is
    -- answered as already seen and never credited again.
    pruned_through_seq  INTEGER NOT NULL DEFAULT 0,
    accepted_total      INTEGER NOT NULL DEFAULT 0,
    rejected_total      INTEGER NOT NULL DEFAULT 0,
    blocks_total        INTEGER NOT NULL DEFAULT 0,
    -- Sum of credited_msat of every share of this origin, ever (kept when
    -- raw shares are pruned; reconciled with the ledger by verify).
    credited_msat_total INTEGER NOT NULL DEFAULT 0 CHECK (credited_msat_total >= 0),
    -- Newest share time seen (ms) and when the last batch arrived (s).
    last_share_ms       INTEGER,
    last_batch_at       INTEGER,
    -- What the sender said about itself in its last batch (optional).
    backlog_bytes       INTEGER,
    quarantined_lines   INTEGER
);

-- Raw shares, kept for ingest.retention_days like share_reports.
CREATE TABLE pool_shares (
    origin_id     INTEGER NOT NULL,
    seq           INTEGER NOT NULL CHECK (seq > 0),
    miner_id      TEXT    NOT NULL,
    worker_name   TEXT    NOT NULL,
    -- Credited difficulty exactly as sent (decimal text); money is
    -- computed from it, never from a float.
    diff          TEXT    NOT NULL,
    -- The share's own difficulty (not money).
    sdiff         REAL    NOT NULL,
    accepted      INTEGER NOT NULL CHECK (accepted IN (0, 1)),
    reject_reason TEXT,
    share_ms      INTEGER NOT NULL,
    hash          BLOB,
    height        INTEGER,
    credited_msat INTEGER NOT NULL CHECK (credited_msat >= 0),
    received_at   INTEGER NOT NULL,
    -- The ledger rollup transfer this credit went into (NULL: no credit).
    rollup_group  INTEGER,
    PRIMARY KEY (origin_id, seq),
    CHECK (accepted = 1 OR credited_msat = 0)
) WITHOUT ROWID;
-- No index on rollup_group: verify scans, and the hot path pays for
-- every index on every share.

-- Rejected shares per miner and reason, forever (raw rows are pruned).
CREATE TABLE share_rejects (
    miner_id TEXT    NOT NULL,
    reason   TEXT    NOT NULL,
    count    INTEGER NOT NULL CHECK (count > 0),
    last_at  INTEGER NOT NULL,
    PRIMARY KEY (miner_id, reason)
) WITHOUT ROWID;

-- Block-solving shares. They create no money (block rewards come from the
-- wallet's coinbase); kept forever.
CREATE TABLE block_solves (
    origin_id   INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    height      INTEGER,
    hash        TEXT    NOT NULL,
    miner_id    TEXT    NOT NULL,
    worker_name TEXT    NOT NULL,
    share_ms    INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (origin_id, seq)
) WITHOUT ROWID;
