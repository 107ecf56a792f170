-- Withdrawals, payout batches and PSBTs. Owned by src/payouts.
--
-- Money: a withdrawal's amount moves miner:<id> → withdrawals:held when it
-- is requested, withdrawals:held → payouts:sent when its batch is
-- broadcast (`paid` = 1), and back to the miner when it is rejected or
-- fails. `paid` is what the verify step reconciles against the ledger.

CREATE TABLE payout_batches (
    id              INTEGER PRIMARY KEY,
    mode            TEXT    NOT NULL CHECK (mode IN ('hot', 'cold')),
    -- hot:  sending → broadcast → confirmed | failed | needs_attention
    -- cold: psbt_pending → psbt_created → signed → broadcasting → broadcast
    --       → confirmed | failed | needs_attention
    state           TEXT    NOT NULL CHECK (state IN ('sending', 'psbt_pending', 'psbt_created', 'signed',
                                                      'broadcasting', 'broadcast', 'confirmed', 'failed',
                                                      'needs_attention')),
    -- The wallet comment that finds this batch's transaction again.
    tag             TEXT    NOT NULL UNIQUE,
    -- Merged outputs [{address, amount_sat}], exactly what is paid.
    outputs_json    TEXT    NOT NULL,
    total_sat       INTEGER NOT NULL CHECK (total_sat > 0),
    fee_rate_sat_vb INTEGER NOT NULL CHECK (fee_rate_sat_vb > 0),
    fee_sat         INTEGER,
    txid            TEXT,
    confirmations   INTEGER,
    note            TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX payout_batches_state ON payout_batches (state, id);

CREATE TABLE withdrawals (
    id          INTEGER PRIMARY KEY,
    miner_id    TEXT    NOT NULL,
    address     TEXT    NOT NULL,
    amount_sat  INTEGER NOT NULL CHECK (amount_sat > 0),
    state       TEXT    NOT NULL CHECK (state IN ('requested', 'approved', 'batched', 'broadcast', 'confirmed',
                                                  'rejected', 'failed', 'needs_attention')),
    -- 'miner' (signed request), 'admin' (batch_payout), 'auto' (threshold)
    source      TEXT    NOT NULL,
    -- Idempotency key of the request: a retry answers the same withdrawal.
    request_key TEXT    NOT NULL UNIQUE,
    -- Earliest time it may be paid (new payout address delay).
    payable_at  INTEGER NOT NULL,
    batch_id    INTEGER REFERENCES payout_batches (id),
    txid        TEXT,
    -- 1 once withdrawals:held → payouts:sent was posted.
    paid        INTEGER NOT NULL DEFAULT 0 CHECK (paid IN (0, 1)),
    decided_by  TEXT,
    decided_at  INTEGER,
    note        TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX withdrawals_state ON withdrawals (state, id);
CREATE INDEX withdrawals_miner ON withdrawals (miner_id, id);
CREATE INDEX withdrawals_batch ON withdrawals (batch_id);

CREATE TABLE psbts (
    id               INTEGER PRIMARY KEY,
    batch_id         INTEGER NOT NULL UNIQUE REFERENCES payout_batches (id),
    unsigned_psbt    TEXT    NOT NULL,
    signed_psbt      TEXT,
    final_tx_hex     TEXT,
    -- unsigned, signed, broadcast, abandoned
    state            TEXT    NOT NULL,
    wallet_fee_sat   INTEGER NOT NULL,
    change_index     INTEGER,
    -- Whether the wallet confirmed the change address is its own.
    change_is_ours   INTEGER NOT NULL DEFAULT 0,
    locked_outpoints TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- Small operator settings that survive restarts (payouts paused, …).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
