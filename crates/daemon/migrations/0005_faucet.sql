-- Faucet: requests, payout batches, used challenges. Owned by src/faucet.
--
-- Money: a queued request holds its amount (faucet:funding -> faucet:held,
-- key 'faucet:<id>:hold'); a paid one moves it to faucet:sent (key
-- 'faucet:<id>:paid'). `pooldeskd verify` checks faucet:held against the
-- requests still unpaid and faucet:sent against the paid ones.

CREATE TABLE faucet_batches (
    id              INTEGER PRIMARY KEY,
    -- Wallet comment of the transaction ('pooldesk faucet batch <id>'):
    -- how a batch is found again after a crash or a timeout.
    tag             TEXT    NOT NULL UNIQUE,
    -- sending: intent committed, outcome not yet known;
    -- paid: in the wallet with `txid`;
    -- failed: the wallet refused (definite), requests went back to the queue;
    -- needs_attention: the outcome cannot be proven; never resent automatically.
    state           TEXT    NOT NULL
        CHECK (state IN ('sending', 'paid', 'failed', 'needs_attention')),
    total_sat       INTEGER NOT NULL CHECK (total_sat > 0),
    outputs         INTEGER NOT NULL CHECK (outputs > 0),
    fee_rate_sat_vb INTEGER NOT NULL CHECK (fee_rate_sat_vb > 0),
    fee_sat         INTEGER CHECK (fee_sat IS NULL OR fee_sat >= 0),
    txid            TEXT,
    note            TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    CHECK (state <> 'paid' OR txid IS NOT NULL)
);
CREATE INDEX faucet_batches_state ON faucet_batches (state, id);

CREATE TABLE faucet_requests (
    id          INTEGER PRIMARY KEY,
    -- Canonical form (as the bitcoin crate prints it), so case variants of
    -- one bech32 address share a cooldown.
    address     TEXT    NOT NULL,
    -- Cooldown key of the client: the IPv4 address, or the /64 of an IPv6 one.
    client_key  TEXT    NOT NULL,
    amount_sat  INTEGER NOT NULL CHECK (amount_sat > 0),
    -- cancelled: an admin gave up on its batch (needs_attention); the hold
    -- went back to faucet:funding (key 'faucet:<id>:release').
    state       TEXT    NOT NULL
        CHECK (state IN ('queued', 'sending', 'paid', 'needs_attention', 'cancelled')),
    batch_id    INTEGER REFERENCES faucet_batches (id),
    txid        TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CHECK (state = 'queued' OR batch_id IS NOT NULL),
    CHECK (state <> 'paid' OR txid IS NOT NULL)
);
CREATE INDEX faucet_requests_address ON faucet_requests (address, created_at);
CREATE INDEX faucet_requests_client ON faucet_requests (client_key, created_at);
CREATE INDEX faucet_requests_state ON faucet_requests (state, id);
CREATE INDEX faucet_requests_created ON faucet_requests (created_at);
CREATE INDEX faucet_requests_batch ON faucet_requests (batch_id);

-- Challenges already spent. Challenges themselves are not stored when
-- issued (they are MAC-signed by the daemon, see src/faucet/challenge.rs),
-- so handing them out costs no write; a spent one is kept until it has
-- expired, which is all single use needs.
CREATE TABLE faucet_challenges (
    challenge  TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL,
    request_id INTEGER NOT NULL REFERENCES faucet_requests (id)
) WITHOUT ROWID;
CREATE INDEX faucet_challenges_expires ON faucet_challenges (expires_at);
