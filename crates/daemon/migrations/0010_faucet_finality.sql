-- Faucet payments are followed until final like payout batches (issue 11,
-- item 9): confirmations as last seen (a drop means a reorg, shown), and
-- when the configured depth was reached (no longer followed). A paid batch
-- whose transaction is conflicted, replaced by one that pays other outputs
-- or forgotten by the wallet goes back to `needs_attention`; its requests
-- stay `paid` (the money stays in faucet:sent) until an admin decides, and
-- Retry/Failed then reverse the payment with keys naming the batch
-- ('faucet:<id>:unpaid:<batch>'); payments made from now on are keyed
-- 'faucet:<id>:paid:<batch>', so a request paid again after a reversal
-- never meets its old key.
ALTER TABLE faucet_batches ADD COLUMN confirmations INTEGER;
ALTER TABLE faucet_batches ADD COLUMN final_at INTEGER;
