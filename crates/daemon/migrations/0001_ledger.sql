-- Ledger: accounts and double-entry transfers, amounts in msat.
-- Owned by src/ledger. Every movement is one row in `transfers`; every
-- account's balance equals the sum of its transfers (checked by verify).

CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,      -- 'miner:<id>', 'pool:rewards', ...
    allow_negative INTEGER NOT NULL CHECK (allow_negative IN (0, 1)),
    balance_msat   INTEGER NOT NULL DEFAULT 0
        -- SQLite turns an overflowing integer sum into a REAL silently:
        -- refuse that outright.
        CHECK (typeof(balance_msat) = 'integer'),
    created_at     INTEGER NOT NULL,
    CHECK (allow_negative = 1 OR balance_msat >= 0)
);

CREATE TABLE transfers (
    id                INTEGER PRIMARY KEY,
    idempotency_key   TEXT    NOT NULL UNIQUE,
    debit_account_id  INTEGER NOT NULL REFERENCES accounts(id),
    credit_account_id INTEGER NOT NULL REFERENCES accounts(id),
    amount_msat       INTEGER NOT NULL CHECK (typeof(amount_msat) = 'integer' AND amount_msat > 0),
    kind              TEXT    NOT NULL,
    reference         TEXT,
    -- Credits rolled up per group commit: the group the items carry.
    rollup_group      INTEGER,
    item_count        INTEGER NOT NULL DEFAULT 1,
    created_at        INTEGER NOT NULL,
    CHECK (debit_account_id <> credit_account_id)
);

CREATE INDEX transfers_credit_account ON transfers (credit_account_id, id);
CREATE INDEX transfers_debit_account ON transfers (debit_account_id, id);
