-- The PPLNS share log: one ordered list of the work recorded under PPLNS,
-- whichever contract brought it (a pool report, or one miner's accepted
-- shares in one batch). Owned by src/blocks (window.rs). A block's window
-- is read from here, newest first, and copied into block_window.
--
-- Only work recorded while PPLNS was in force is here: shares credited per
-- share (PPS) are never paid a second time by a block.
CREATE TABLE pplns_work (
    -- AUTOINCREMENT: ids are never reused, even if pruning empties the
    -- table, so a statement's share ids stay unique.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    miner_id    TEXT    NOT NULL,
    work        INTEGER NOT NULL CHECK (work > 0),
    -- What it is: 'report:<share_reports.id>' or
    -- 'batch:<origin>:<first seq>-<last seq>' (that miner's shares in it).
    source      TEXT    NOT NULL,
    received_at INTEGER NOT NULL
);

-- Reports recorded under PPLNS before this log existed (the only reports
-- without a per-share credit), in their order, with their ids.
INSERT INTO pplns_work (id, miner_id, work, source, received_at)
    SELECT id, miner_id, shares * difficulty, 'report:' || id, received_at
    FROM share_reports WHERE credited_msat = 0 ORDER BY id;

-- The log row holding a block's solving share, so the block's window ends
-- there (not at whatever arrived before the wallet saw the coinbase).
ALTER TABLE block_solves ADD COLUMN window_id INTEGER;

-- A window row says what it was (the log's `source`), so a miner can find
-- their shares in it; NULL for windows copied before this migration.
ALTER TABLE block_window ADD COLUMN source TEXT;
