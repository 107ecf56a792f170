-- Hot batches know their transaction before it leaves (issue 11).
--
-- A hot batch is funded and signed by the wallet first; its final
-- transaction and txid are committed here, and only then broadcast. After a
-- crash or an unclear answer the same bytes are broadcast again, never a new
-- transaction.
ALTER TABLE payout_batches ADD COLUMN tx_hex TEXT;
-- The outpoints (`txid:vout`) the transaction spends, locked persistently in
-- the wallet until the batch's outcome is final.
ALTER TABLE payout_batches ADD COLUMN inputs_json TEXT;
-- 1 for batches built by the txid-first flow: such a batch without a txid
-- provably sent nothing (nothing is broadcast before the txid is committed).
ALTER TABLE payout_batches ADD COLUMN prebuilt INTEGER NOT NULL DEFAULT 0 CHECK (prebuilt IN (0, 1));

-- This install's random id, generated once: every wallet comment and label
-- carries it, so a second install on the same wallet or a restored ledger
-- never takes another batch's transaction for its own.
INSERT OR IGNORE INTO settings (key, value) VALUES ('install_id', lower(hex(randomblob(8))));
