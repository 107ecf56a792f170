-- Hardening against hostile clients (issue 10).
--
-- 1. Block reports: `event_id` and `block_hash` are unique per miner, not
--    across all miners, so one miner cannot front-run another's ids (and
--    a duplicate answers only the miner's own figures). The 24-hour credit
--    bound sums a miner's recent reports: index (miner_id, received_at).
CREATE TABLE block_reports_v2 (
    id            INTEGER PRIMARY KEY,
    event_id      TEXT    NOT NULL,
    block_hash    TEXT    NOT NULL,
    body_sha256   BLOB    NOT NULL,
    miner_id      TEXT    NOT NULL,
    block_index   INTEGER,
    cid           TEXT,
    capacity      TEXT,
    work_score    TEXT    NOT NULL,
    credited_msat INTEGER NOT NULL CHECK (credited_msat > 0),
    reported_ts   REAL,
    received_at   INTEGER NOT NULL,
    rollup_group  INTEGER NOT NULL,
    UNIQUE (miner_id, event_id),
    UNIQUE (miner_id, block_hash)
);
INSERT INTO block_reports_v2 SELECT id, event_id, block_hash, body_sha256, miner_id, block_index, cid, capacity,
    work_score, credited_msat, reported_ts, received_at, rollup_group FROM block_reports;
DROP TABLE block_reports;
ALTER TABLE block_reports_v2 RENAME TO block_reports;
CREATE INDEX block_reports_miner ON block_reports (miner_id, id);
CREATE INDEX block_reports_miner_time ON block_reports (miner_id, received_at);

-- 2. Withdrawal idempotency keys are composite columns: who asked (source),
--    on whose behalf (owner: the miner, or the admin request id) and their
--    reference (the miner's event_id, the payment index). A joined string
--    such as `miner:{id}:{event_id}` collides when ids contain ':'.
--    `request_key` stays (NOT NULL UNIQUE in the original table) and now
--    holds an unambiguous JSON array of the three parts.
ALTER TABLE withdrawals ADD COLUMN request_owner TEXT;
ALTER TABLE withdrawals ADD COLUMN request_ref TEXT;
UPDATE withdrawals SET request_owner = miner_id, request_ref = request_key;
CREATE UNIQUE INDEX withdrawals_request ON withdrawals (source, request_owner, request_ref);

-- 3. Signed requests that change state and have no idempotency record of
--    their own (payout address changes) are remembered by (miner, event_id)
--    for at least the timestamp window, so a captured request cannot be
--    replayed inside it (e.g. to switch an address back).
CREATE TABLE signed_events (
    miner_id TEXT    NOT NULL,
    event_id TEXT    NOT NULL,
    endpoint TEXT    NOT NULL,
    seen_at  INTEGER NOT NULL,
    PRIMARY KEY (miner_id, event_id)
) WITHOUT ROWID;
CREATE INDEX signed_events_seen ON signed_events (seen_at);
