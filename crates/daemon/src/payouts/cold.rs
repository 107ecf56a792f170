//! Cold mode: a batch becomes an unsigned PSBT (inputs locked in the
//! wallet), reviewed by an admin, signed offline, imported back only if it
//! pays exactly what was reviewed, finalized, checked with
//! `testmempoolaccept`, and broadcast.

use pooldesk_proto::model::{PsbtInput, PsbtOutput, PsbtReview, SignatureStatus};

use super::batch::{BatchOutcome, change_row};
use super::db::{self, Batch, PsbtRecord};
use super::{PayoutError, Payouts, crash};
use crate::audit::{self, Actor};
use crate::events::BusEvent;
use crate::wallet::psbt;

impl Payouts {
    /// Builds an unsigned PSBT for approved withdrawals (all payable ones
    /// when `ids` is empty). Returns the batch (with the PSBT) and its
    /// review.
    pub async fn create_psbt(
        &self,
        actor: Actor,
        ids: Vec<i64>,
    ) -> Result<(BatchOutcome, PsbtReview), PayoutError> {
        let _guard = self.inner.lock.lock().await;
        let (plan, fee_rate) = self.plan(&ids).await?;
        let batch = self
            .commit_intent(&actor, "cold", "psbt_pending", &plan, fee_rate, false)
            .await?;
        crash::point("cold_intent");
        let funded = match self
            .inner
            .wallet
            .create_psbt(&batch.outputs, fee_rate)
            .await
        {
            Ok(funded) => funded,
            Err(e) => {
                // Building a PSBT spends nothing; only inputs may stay locked
                // if the answer was lost.
                let note = if e.is_definite() {
                    format!("the wallet could not fund the PSBT: {e}")
                } else {
                    format!(
                        "no clear answer while funding the PSBT ({e}); wallet inputs may stay locked until `lockunspent true`"
                    )
                };
                self.fail_batch(&batch, &note).await?;
                return Err(PayoutError::Node(note));
            }
        };
        crash::point("cold_funded");
        let decoded = psbt::decode(&funded.psbt_base64).map_err(PayoutError::Invalid)?;
        // All inputs are segwit (the wallet's own descriptors), so the
        // unsigned transaction's txid is the final one: recorded now, the
        // batch is found by it whoever signs and broadcasts it.
        let txid = decoded.unsigned_tx.compute_txid().to_string();
        let locked: Vec<String> = decoded
            .unsigned_tx
            .input
            .iter()
            .map(|i| i.previous_output.to_string())
            .collect();
        let network = crate::wallet::to_bitcoin_network(self.inner.network);
        let facts = psbt::facts(&decoded, network);
        // The change output is ours only if the wallet says so.
        let change_is_ours = match funded
            .change_index
            .and_then(|i| facts.outputs.get(i as usize))
        {
            Some(change) => self
                .inner
                .wallet
                .is_mine(&change.address)
                .await
                .unwrap_or(false),
            None => false,
        };
        let (batch_id, base64) = (batch.id, funded.psbt_base64.clone());
        let locked_after = locked.clone();
        let actor_entry = actor.clone();
        let (psbt_id, entry) = self
            .inner
            .store
            .write(move |ctx| {
                let psbt_id = db::insert_psbt(
                    ctx,
                    batch_id,
                    &base64,
                    funded.fee_sat,
                    funded.change_index,
                    change_is_ours,
                    &locked,
                )?;
                db::set_batch_inputs(ctx, batch_id, &locked)?;
                db::set_batch(
                    ctx,
                    batch_id,
                    "psbt_created",
                    Some(&txid),
                    Some(funded.fee_sat),
                    Some("PSBT ready for review and offline signing"),
                )?;
                let entry = audit::record(
                    ctx,
                    &actor_entry,
                    "create_psbt",
                    &format!("batch:{batch_id}"),
                    &format!("psbt {psbt_id}, fee {} sat", funded.fee_sat),
                )?;
                Ok::<_, PayoutError>((psbt_id, entry))
            })
            .await?;
        self.inner.bus.publish(BusEvent::Audit(entry));
        crash::point("cold_created");
        // Persistent locks: the inputs stay reserved across node restarts
        // until the batch is broadcast, cancelled or failed.
        if let Err(e) = self.inner.wallet.lock(&locked_after).await {
            tracing::warn!(batch = batch_id, error = %e, "could not lock the PSBT's inputs persistently");
        }
        let review = self.psbt_review(psbt_id).await?;
        let outcome = self
            .batch_outcome(batch.id, Some(funded.psbt_base64))
            .await?;
        self.inner
            .bus
            .publish(BusEvent::Batch(outcome.batch.clone()));
        Ok((outcome, review))
    }

    async fn load_psbt(
        &self,
        psbt_id: i64,
    ) -> Result<(PsbtRecord, Batch, Vec<db::Withdrawal>), PayoutError> {
        self.inner
            .store
            .read(move |conn| {
                let Some(record) = db::get_psbt(conn, psbt_id)? else {
                    return Ok(None);
                };
                let batch = db::get_batch(conn, record.batch_id)?
                    .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                let withdrawals = db::withdrawals_of_batch(conn, batch.id)?;
                Ok(Some((record, batch, withdrawals)))
            })
            .await?
            .ok_or(PayoutError::NotFound("psbt"))
    }

    /// The review of a PSBT: what it spends, whom it pays (mapped to
    /// withdrawals), change, fee, fee rate, signatures, and warnings.
    pub async fn psbt_review(&self, psbt_id: i64) -> Result<PsbtReview, PayoutError> {
        let (record, batch, withdrawals) = self.load_psbt(psbt_id).await?;
        Ok(self.review(&record, &batch, &withdrawals, Vec::new()))
    }

    fn review(
        &self,
        record: &PsbtRecord,
        batch: &Batch,
        withdrawals: &[db::Withdrawal],
        differences: Vec<String>,
    ) -> PsbtReview {
        let network = crate::wallet::to_bitcoin_network(self.inner.network);
        let current = record
            .signed_psbt
            .as_deref()
            .unwrap_or(&record.unsigned_psbt);
        let decoded = match psbt::decode(current) {
            Ok(p) => p,
            Err(e) => {
                return PsbtReview {
                    psbt_id: record.id,
                    batch_id: batch.id,
                    state: record.state.clone(),
                    warnings: vec![format!("the stored PSBT cannot be decoded: {e}")],
                    psbt: current.to_string(),
                    ..PsbtReview::default()
                };
            }
        };
        let facts = psbt::facts(&decoded, network);
        let mut warnings = Vec::new();
        let inputs: Vec<PsbtInput> = facts
            .inputs
            .iter()
            .map(|i| {
                if !i.verified {
                    warnings.push(format!(
                        "input {} amount cannot be verified (no previous transaction in the PSBT)",
                        i.outpoint
                    ));
                }
                PsbtInput {
                    outpoint: i.outpoint.clone(),
                    amount_sat: i.amount_sat,
                    verified: i.verified,
                    signed: i.signed,
                }
            })
            .collect();
        let mut paid_to_miners = 0;
        let mut change_sat = 0;
        let mut matched = vec![false; batch.outputs.len()];
        let outputs: Vec<PsbtOutput> = facts
            .outputs
            .iter()
            .map(|o| {
                let is_change = record.change_index == Some(o.index);
                let batch_match = batch
                    .outputs
                    .iter()
                    .enumerate()
                    .find(|(k, b)| !matched[*k] && b.address == o.address && b.amount_sat == o.amount_sat)
                    .map(|(k, _)| k);
                let (role, ids) = if let Some(k) = batch_match.filter(|_| !is_change) {
                    matched[k] = true;
                    paid_to_miners += o.amount_sat;
                    let ids = withdrawals.iter().filter(|w| w.address == o.address).map(|w| w.id).collect();
                    ("withdrawal", ids)
                } else if is_change && record.change_is_ours {
                    change_sat += o.amount_sat;
                    ("change", Vec::new())
                } else {
                    if is_change {
                        warnings.push(format!(
                            "output {} is marked as change but the wallet does not recognise {} as its own",
                            o.index, o.address
                        ));
                    } else {
                        warnings.push(format!(
                            "output {} pays {} sat to {}, which matches no withdrawal of this batch",
                            o.index, o.amount_sat, o.address
                        ));
                    }
                    ("unknown", Vec::new())
                };
                PsbtOutput {
                    index: o.index,
                    address: o.address.clone(),
                    amount_sat: o.amount_sat,
                    role: role.into(),
                    withdrawal_ids: ids,
                }
            })
            .collect();
        for (k, found) in matched.iter().enumerate() {
            if !found {
                let missing = &batch.outputs[k];
                warnings.push(format!(
                    "the batch pays {} sat to {} but no output of the PSBT does",
                    missing.amount_sat, missing.address
                ));
            }
        }
        let fee_sat = facts.fee_sat;
        if fee_sat.is_none() {
            warnings.push(format!(
                "the fee cannot be computed from the PSBT; the wallet reported {} sat",
                record.wallet_fee_sat
            ));
        }
        let fee = fee_sat.unwrap_or(record.wallet_fee_sat);
        let percent = self.inner.config.max_fee_percent as i64;
        if paid_to_miners > 0 && fee * 100 >= paid_to_miners * percent {
            warnings.push(format!(
                "the fee ({fee} sat) is {}% or more of the amount sent ({paid_to_miners} sat)",
                percent
            ));
        }
        let fee_rate_milli = (facts.vsize > 0).then(|| (fee.max(0) as u64 * 1000) / facts.vsize);
        if let Some(rate) = fee_rate_milli
            && rate > self.inner.config.max_fee_rate_sat_vb * 1000
        {
            warnings.push(format!(
                "the fee rate ({}.{:03} sat/vB) is above payouts.max_fee_rate_sat_vb ({})",
                rate / 1000,
                rate % 1000,
                self.inner.config.max_fee_rate_sat_vb
            ));
        }
        let total = facts.inputs.len() as u32;
        let state = match (record.state.as_str(), facts.inputs_signed) {
            ("unsigned", 0) => "unsigned".to_string(),
            ("unsigned", n) if n < total => "partially_signed".to_string(),
            ("unsigned", _) => "signed".to_string(),
            (other, _) => other.to_string(),
        };
        PsbtReview {
            psbt_id: record.id,
            batch_id: batch.id,
            state,
            inputs,
            outputs,
            total_in_sat: facts.total_in_sat,
            total_out_sat: facts.total_out_sat,
            paid_to_miners_sat: paid_to_miners,
            change_sat,
            fee_sat: Some(fee),
            vsize: Some(facts.vsize),
            fee_rate_milli_sat_vb: fee_rate_milli,
            signatures: SignatureStatus {
                inputs_total: total,
                inputs_signed: facts.inputs_signed,
                complete: total > 0 && facts.inputs_signed == total,
            },
            warnings,
            differences,
            psbt: current.to_string(),
            txid: batch.txid.clone(),
        }
    }

    /// Checks a signed PSBT against the reviewed one: same inputs, exactly
    /// the same outputs, fee within limits. Returns the differences.
    fn check_signed(&self, record: &PsbtRecord, signed_b64: &str) -> Result<(), PayoutError> {
        let network = crate::wallet::to_bitcoin_network(self.inner.network);
        let reviewed = psbt::decode(&record.unsigned_psbt).map_err(PayoutError::Invalid)?;
        let signed =
            psbt::decode(signed_b64).map_err(|e| PayoutError::Invalid(format!("psbt: {e}")))?;
        let mut diffs = psbt::differences(&reviewed, &signed, network);
        // The fee from the reviewed inputs' amounts (the signer cannot change
        // what the coins are worth) and the signed outputs.
        let reviewed_facts = psbt::facts(&reviewed, network);
        let signed_facts = psbt::facts(&signed, network);
        if let Some(total_in) = reviewed_facts.total_in_sat {
            let fee = total_in - signed_facts.total_out_sat;
            let paid: i64 = signed_facts
                .outputs
                .iter()
                .filter(|o| Some(o.index) != record.change_index)
                .map(|o| o.amount_sat)
                .sum();
            let percent = self.inner.config.max_fee_percent as i64;
            if fee < 0 {
                diffs.push(format!("outputs exceed inputs by {} sat", -fee));
            } else if paid > 0 && fee * 100 > paid * percent {
                diffs.push(format!(
                    "fee {fee} sat is above the limit of {percent}% of the {paid} sat sent"
                ));
            }
            let max_rate = self.inner.config.max_fee_rate_sat_vb;
            if fee >= 0 && signed_facts.vsize > 0 && fee as u64 > max_rate * signed_facts.vsize {
                diffs.push(format!(
                    "fee rate {} sat/vB is above payouts.max_fee_rate_sat_vb = {max_rate}",
                    fee as u64 / signed_facts.vsize
                ));
            }
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(PayoutError::PsbtMismatch(diffs))
        }
    }

    /// Imports a signed PSBT for review. Refused (nothing stored) unless it
    /// pays exactly the reviewed outputs with the fee within limits.
    pub async fn import_psbt(
        &self,
        actor: Actor,
        psbt_id: i64,
        signed_b64: String,
    ) -> Result<PsbtReview, PayoutError> {
        let _guard = self.inner.lock.lock().await;
        let (record, batch, _) = self.load_psbt(psbt_id).await?;
        if !["psbt_created", "signed"].contains(&batch.state.as_str()) {
            return Err(PayoutError::WrongState {
                what: format!("batch {}", batch.id),
                state: batch.state,
            });
        }
        if let Err(e) = self.check_signed(&record, &signed_b64) {
            self.audit_refusal(&actor, psbt_id, &e).await;
            return Err(e);
        }
        let batch_id = batch.id;
        let entry = self
            .inner
            .store
            .write(move |ctx| {
                db::set_psbt(ctx, psbt_id, "signed", Some(&signed_b64), None)?;
                db::set_batch(
                    ctx,
                    batch_id,
                    "signed",
                    None,
                    None,
                    Some("signed PSBT imported; ready to finalize"),
                )?;
                Ok::<_, PayoutError>(audit::record(
                    ctx,
                    &actor,
                    "import_psbt",
                    &format!("batch:{batch_id}"),
                    &format!("psbt {psbt_id}"),
                )?)
            })
            .await?;
        self.inner.bus.publish(BusEvent::Audit(entry));
        self.psbt_review(psbt_id).await
    }

    async fn audit_refusal(&self, actor: &Actor, psbt_id: i64, error: &PayoutError) {
        let detail = match error {
            PayoutError::PsbtMismatch(diffs) => diffs.join("; "),
            other => other.to_string(),
        };
        let actor = actor.clone();
        let written = self
            .inner
            .store
            .write(move |ctx| {
                Ok::<_, PayoutError>(audit::record(
                    ctx,
                    &actor,
                    "refuse_psbt",
                    &format!("psbt:{psbt_id}"),
                    &detail,
                )?)
            })
            .await;
        if let Ok(entry) = written {
            self.inner.bus.publish(BusEvent::Audit(entry));
        }
    }

    /// Finalizes the signed PSBT (importing `signed_b64` first when given),
    /// checks it with `testmempoolaccept`, records the intent, and
    /// broadcasts.
    pub async fn finalize_psbt(
        &self,
        actor: Actor,
        psbt_id: i64,
        signed_b64: Option<String>,
    ) -> Result<pooldesk_proto::model::BroadcastResult, PayoutError> {
        if let Some(signed) = signed_b64 {
            self.import_psbt(actor.clone(), psbt_id, signed).await?;
        }
        let _guard = self.inner.lock.lock().await;
        let (record, batch, _) = self.load_psbt(psbt_id).await?;
        if batch.state != "signed" {
            return Err(PayoutError::WrongState {
                what: format!("batch {} (import a signed PSBT first)", batch.id),
                state: batch.state,
            });
        }
        let signed = record
            .signed_psbt
            .clone()
            .ok_or_else(|| PayoutError::Invalid("no signed PSBT imported".into()))?;
        // Check again: what is finalized is what was checked.
        self.check_signed(&record, &signed)?;
        let hex = self
            .inner
            .wallet
            .finalize_psbt(&signed)
            .await?
            .ok_or_else(|| PayoutError::Invalid("the PSBT is not completely signed".into()))?;
        let tx: bitcoin::Transaction =
            bitcoin::consensus::encode::deserialize_hex(&hex).map_err(|e| {
                PayoutError::Invalid(format!("finalized transaction cannot be decoded: {e}"))
            })?;
        let reviewed = psbt::decode(&record.unsigned_psbt).map_err(PayoutError::Invalid)?;
        if tx.compute_txid() != reviewed.unsigned_tx.compute_txid()
            || tx.output != reviewed.unsigned_tx.output
        {
            return Err(PayoutError::PsbtMismatch(vec![
                "the finalized transaction is not the reviewed one".into(),
            ]));
        }
        let txid = tx.compute_txid().to_string();
        let accept = self.inner.wallet.test_mempool_accept(&hex).await?;
        let already = accept.reject_reason.as_deref().is_some_and(|r| {
            // The same transaction with another witness (the signer's own
            // tool broadcast it) is `txn-same-nonwitness-data-in-mempool`.
            r.contains("already") || r.contains("known") || r.contains("same-nonwitness")
        });
        if !accept.allowed && !already {
            return Err(PayoutError::Node(format!(
                "testmempoolaccept refused the transaction: {}",
                accept.reject_reason.unwrap_or_default()
            )));
        }
        // The intent (txid and raw transaction) is durable before the
        // broadcast: a crash or timeout from here on is resolved by looking
        // for this txid, or by broadcasting the same transaction again.
        let (batch_id, hex_owned, txid_owned) = (batch.id, hex.clone(), txid.clone());
        let entry = self
            .inner
            .store
            .write(move |ctx| {
                db::set_psbt(ctx, psbt_id, "signed", None, Some(&hex_owned))?;
                db::set_batch(
                    ctx,
                    batch_id,
                    "broadcasting",
                    Some(&txid_owned),
                    None,
                    Some("broadcasting"),
                )?;
                Ok::<_, PayoutError>(audit::record(
                    ctx,
                    &actor,
                    "finalize_psbt",
                    &format!("batch:{batch_id}"),
                    &format!("txid {txid_owned}"),
                )?)
            })
            .await?;
        self.inner.bus.publish(BusEvent::Audit(entry));
        crash::point("cold_final");
        let batch = Batch {
            state: "broadcasting".into(),
            txid: Some(txid.clone()),
            ..batch
        };
        self.broadcast_final(&batch, &hex, &reviewed).await?;
        Ok(pooldesk_proto::model::BroadcastResult {
            batch_id: batch.id,
            txid,
        })
    }

    /// Broadcasts a finalized cold batch (idempotent: same transaction).
    async fn broadcast_final(
        &self,
        batch: &Batch,
        hex: &str,
        reviewed: &bitcoin::psbt::Psbt,
    ) -> Result<(), PayoutError> {
        let network = crate::wallet::to_bitcoin_network(self.inner.network);
        let fee = psbt::facts(reviewed, network).fee_sat;
        match self.inner.wallet.broadcast(hex).await {
            Ok(txid) => {
                crash::point("cold_broadcast");
                self.finish_broadcast(batch, &txid, fee).await?;
                let id = batch.id;
                self.inner
                    .store
                    .write(move |ctx| {
                        if let Some(p) = db::psbt_of_batch(ctx.conn, id)? {
                            db::set_psbt(ctx, p.id, "broadcast", None, None)?;
                        }
                        Ok::<_, PayoutError>(())
                    })
                    .await?;
                Ok(())
            }
            Err(e) if e.is_definite() => {
                let note = format!("the node refused the broadcast: {e}");
                let id = batch.id;
                let n = note.clone();
                self.inner
                    .store
                    .write(move |ctx| {
                        Ok::<_, PayoutError>(db::set_batch(
                            ctx,
                            id,
                            "signed",
                            None,
                            None,
                            Some(&n),
                        )?)
                    })
                    .await?;
                Err(PayoutError::Node(note))
            }
            // Unknown: the reconciler looks for the txid and re-broadcasts
            // the same transaction if needed.
            Err(e) => Err(PayoutError::Wallet(e)),
        }
    }

    /// After a crash while funding a PSBT: nothing was spent; free the
    /// withdrawals.
    pub(super) async fn reconcile_psbt_pending(&self, batch: &Batch) {
        let _ = self
            .fail_batch(
                batch,
                "interrupted while the wallet was funding the PSBT; nothing was spent (inputs may stay locked until `lockunspent true`)",
            )
            .await;
    }

    /// A cold batch interrupted around its broadcast: the txid is known, so
    /// look for it, and otherwise broadcast the same transaction again.
    pub(super) async fn reconcile_broadcasting(&self, batch: &Batch) {
        let Some(txid) = batch.txid.clone() else {
            return;
        };
        match self.inner.wallet.transaction(&txid).await {
            Ok(Some(tx)) if tx.in_mempool_or_chain => {
                let _ = self
                    .finish_broadcast(batch, &txid, tx.fee_sat.map(i64::abs))
                    .await;
                return;
            }
            Err(_) => return,
            _ => {}
        }
        let id = batch.id;
        let Ok(Some(record)) = self
            .inner
            .store
            .read(move |conn| db::psbt_of_batch(conn, id))
            .await
        else {
            return;
        };
        let (Some(hex), Ok(reviewed)) = (
            record.final_tx_hex.clone(),
            psbt::decode(&record.unsigned_psbt),
        ) else {
            return;
        };
        if let Err(e) = self.broadcast_final(batch, &hex, &reviewed).await {
            tracing::warn!(batch = batch.id, error = %e, "re-broadcast of a finalized cold batch did not succeed");
            if let PayoutError::Node(reason) = &e
                && (reason.contains("missing")
                    || reason.contains("spent")
                    || reason.contains("conflict"))
            {
                let _ = self
                    .needs_attention(
                        batch,
                        &format!(
                            "the finalized transaction {txid} can no longer be broadcast: {reason}"
                        ),
                    )
                    .await;
            }
        }
    }

    /// A cold batch waiting for its signature: the signer may have
    /// broadcast the transaction with its own tool. Its txid was recorded
    /// at PSBT creation, so the wallet's view of that txid decides.
    pub(super) async fn reconcile_unbroadcast(&self, batch: &Batch) {
        let Some(txid) = batch.txid.clone() else {
            return;
        };
        match self.inner.wallet.transaction(&txid).await {
            Ok(Some(tx)) if tx.in_mempool_or_chain => {}
            Ok(_) => {
                // Not broadcast: keep its inputs reserved (again, if a crash
                // came between the PSBT's record and its lock).
                if let Err(e) = self.inner.wallet.lock(&batch.inputs).await {
                    tracing::warn!(batch = batch.id, error = %e, "could not lock the PSBT's inputs");
                }
                return;
            }
            Err(_) => return,
        }
        tracing::warn!(
            batch = batch.id,
            txid,
            "cold batch broadcast by the signer: recording it"
        );
        let fee = batch.fee_sat;
        let id = batch.id;
        let result = async {
            self.finish_broadcast(batch, &txid, fee).await?;
            self.inner
                .store
                .write(move |ctx| {
                    if let Some(p) = db::psbt_of_batch(ctx.conn, id)? {
                        db::set_psbt(ctx, p.id, "broadcast", None, None)?;
                    }
                    Ok::<_, PayoutError>(())
                })
                .await?;
            Ok::<_, PayoutError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(batch = batch.id, error = %e, "could not record the signer's broadcast");
        }
    }

    /// Admin: cancels a cold batch that was not broadcast (`psbt_created`
    /// or `signed`). Refused when the wallet knows its txid (in the
    /// mempool, in a block, or held for rebroadcast): then it may pay.
    /// Otherwise its withdrawals wait for the next batch and its inputs are
    /// unlocked. The signed PSBT may still exist outside; if it is ever
    /// broadcast, its inputs are spent again by the next batch first or it
    /// conflicts — it can never be paid twice from the same coins, which
    /// is why the inputs are released only here, after the check.
    pub async fn cancel_cold(
        &self,
        actor: Actor,
        batch_id: i64,
    ) -> Result<pooldesk_proto::model::BatchRow, PayoutError> {
        let _guard = self.inner.lock.lock().await;
        let batch = self
            .inner
            .store
            .read(move |conn| db::get_batch(conn, batch_id))
            .await?
            .ok_or(PayoutError::NotFound("batch"))?;
        if batch.mode != "cold" || !matches!(batch.state.as_str(), "psbt_created" | "signed") {
            return Err(PayoutError::WrongState {
                what: format!(
                    "batch {batch_id} (only a cold batch not broadcast can be cancelled)"
                ),
                state: batch.state,
            });
        }
        if let Some(txid) = batch.txid.as_deref()
            && let Some(tx) = self.inner.wallet.transaction(txid).await?
        {
            return Err(PayoutError::Conflict(format!(
                "the wallet knows transaction {} of batch {batch_id} ({} confirmations): it may pay, so it cannot be cancelled",
                tx.txid, tx.confirmations
            )));
        }
        let note = "cancelled by an admin before broadcast; inputs unlocked";
        let change = self
            .inner
            .store
            .write(move |ctx| {
                db::set_batch(ctx, batch_id, "failed", None, None, Some(note))?;
                db::unbatch(ctx, batch_id, note)?;
                if let Some(p) = db::psbt_of_batch(ctx.conn, batch_id)? {
                    db::set_psbt(ctx, p.id, "abandoned", None, None)?;
                }
                let entry = audit::record(
                    ctx,
                    &actor,
                    "cancel_batch",
                    &format!("batch:{batch_id}"),
                    note,
                )?;
                super::batch::batch_change(ctx, batch_id, Some(entry))
            })
            .await?;
        let row = change_row(&change);
        self.publish_change(change);
        if let Err(e) = self.inner.wallet.unlock(&batch.inputs).await {
            tracing::warn!(batch = batch_id, error = %e, "could not unlock a cancelled batch's inputs");
        }
        Ok(row)
    }
}
