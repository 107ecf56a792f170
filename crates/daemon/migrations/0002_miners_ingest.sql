-- Miners and share ingest. Owned by src/miners (miners) and src/ingest
-- (share_reports, block_reports) and src/hashrate (work_minutes).

CREATE TABLE miners (
    id                    TEXT    PRIMARY KEY,
    created_at            INTEGER NOT NULL,
    -- Where the miner first came from: 'report', 'register', 'admin'.
    source                TEXT    NOT NULL,
    active                INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    tier                  TEXT,
    -- 'hmac_personal' or 'hmac_shared'; NULL until a key is issued.
    auth_method           TEXT,
    -- Version of the derived personal key; NULL until a key is issued.
    -- The key itself is never stored: it is HMAC(master key, id, version).
    key_version           INTEGER,
    key_issued_at         INTEGER,
    payout_address        TEXT,
    payout_address_set_at INTEGER,
    -- The miner's own threshold for automatic payouts (sat), if higher
    -- than the pool's minimum.
    payout_threshold_sat  INTEGER
) WITHOUT ROWID;

-- Raw pool reports, kept for ingest.retention_days. `event_id` is the
-- replay key (NULL only for legacy unprotected reports).
CREATE TABLE share_reports (
    id            INTEGER PRIMARY KEY,
    event_id      TEXT UNIQUE,
    body_sha256   BLOB    NOT NULL,
    miner_id      TEXT    NOT NULL,
    worker_name   TEXT    NOT NULL,
    shares        INTEGER NOT NULL CHECK (shares > 0),
    difficulty    INTEGER NOT NULL CHECK (difficulty > 0),
    credited_msat INTEGER NOT NULL CHECK (credited_msat > 0),
    reported_ts   REAL,
    received_at   INTEGER NOT NULL,
    -- The ledger rollup transfer this credit went into.
    rollup_group  INTEGER NOT NULL
);
CREATE INDEX share_reports_miner ON share_reports (miner_id, id);

-- Personal-key block reports (COINjecture contract).
CREATE TABLE block_reports (
    id            INTEGER PRIMARY KEY,
    event_id      TEXT    NOT NULL UNIQUE,
    block_hash    TEXT    NOT NULL UNIQUE,
    body_sha256   BLOB    NOT NULL,
    miner_id      TEXT    NOT NULL,
    block_index   INTEGER,
    cid           TEXT,
    capacity      TEXT,
    -- The work score exactly as sent (decimal text).
    work_score    TEXT    NOT NULL,
    credited_msat INTEGER NOT NULL CHECK (credited_msat > 0),
    reported_ts   REAL,
    received_at   INTEGER NOT NULL,
    rollup_group  INTEGER NOT NULL
);
CREATE INDEX block_reports_miner ON block_reports (miner_id, id);

-- Difficulty-weighted shares per miner, worker and minute.
CREATE TABLE work_minutes (
    miner_id    TEXT    NOT NULL,
    worker_name TEXT    NOT NULL,
    minute      INTEGER NOT NULL,
    work        INTEGER NOT NULL,
    reports     INTEGER NOT NULL,
    PRIMARY KEY (miner_id, worker_name, minute)
) WITHOUT ROWID;
CREATE INDEX work_minutes_minute ON work_minutes (minute);
