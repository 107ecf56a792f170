-- Faucet payments know their transaction before it leaves (issue 11, item 9),
-- like hot payout batches (0008): funded and signed by the wallet, txid and
-- bytes committed here, then broadcast; after a crash or an unclear answer
-- the same bytes go out again, never a new transaction.
ALTER TABLE faucet_batches ADD COLUMN tx_hex TEXT;
-- The outpoints (`txid:vout`) it spends, locked persistently in the wallet
-- until the transaction is in the mempool or a block.
ALTER TABLE faucet_batches ADD COLUMN inputs_json TEXT;
-- 1 for batches built by the txid-first flow: such a batch without a txid
-- provably sent nothing.
ALTER TABLE faucet_batches ADD COLUMN prebuilt INTEGER NOT NULL DEFAULT 0 CHECK (prebuilt IN (0, 1));
