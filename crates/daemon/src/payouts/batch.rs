//! Batches: choosing what goes out, sending it (hot), reconciling what is in
//! flight, tracking confirmations, and admin resolution.

use std::collections::BTreeMap;

use pooldesk_proto::model::{
    AuditEntry, BatchResolution, BatchResult, BatchRow, Warning, WithdrawalRow,
};

use super::db::{self, Batch, Withdrawal};
use super::{PAUSED_KEY, PayoutError, Payouts, crash};
use crate::audit::{self, Actor};
use crate::config::PayoutMode;
use crate::events::BusEvent;
use crate::store::WriteCtx;
use crate::wallet::{Output, WalletError, WalletTx};

/// What a batch operation answers: the batch, and for cold batches the
/// PSBT to export.
pub type BatchOutcome = BatchResult;

/// Batches whose fate is not known yet: they block new batches.
const UNRESOLVED: &[&str] = &["sending", "psbt_pending", "broadcasting"];

/// A plan: withdrawals and the merged outputs that pay them.
pub(super) struct Plan {
    pub(super) ids: Vec<i64>,
    pub(super) outputs: Vec<Output>,
}

/// What a change to a batch announces: its withdrawals, the batch, and
/// the audit entry recording the change.
pub(super) struct BatchChange {
    rows: Vec<WithdrawalRow>,
    batch: BatchRow,
    entry: Option<AuditEntry>,
}

/// Automatic batches after definite build failures (Core's `-6`: every
/// `CreateTransaction` failure since v24, e.g. insufficient funds or a fee
/// above `-maxtxfee`): the next automatic attempt waits, doubling from
/// [`BACKOFF_BASE_S`] up to [`BACKOFF_CAP_S`], instead of asking again
/// every interval. An admin's own "send batch" is not held back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Backoff {
    pub(super) failures: u32,
    pub(super) until_s: i64,
    /// Core's message, shown in the warning.
    pub(super) message: String,
}

pub(super) const BACKOFF_BASE_S: i64 = 30;
pub(super) const BACKOFF_CAP_S: i64 = 3_600;

impl Backoff {
    /// Records one more failure at `now_s`.
    pub(super) fn fail(&mut self, now_s: i64, message: String) {
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(16);
        let delay_s = (BACKOFF_BASE_S << doublings).min(BACKOFF_CAP_S);
        self.until_s = now_s + delay_s;
        self.message = message;
    }
}

/// The batch row of a change.
pub(super) fn change_row(change: &BatchChange) -> BatchRow {
    change.batch.clone()
}

/// Reads back a batch after a change, inside the same job.
pub(super) fn batch_change(
    ctx: &WriteCtx<'_>,
    batch_id: i64,
    entry: Option<AuditEntry>,
) -> Result<BatchChange, PayoutError> {
    let rows = db::withdrawals_of_batch(ctx.conn, batch_id)?
        .iter()
        .map(Withdrawal::row)
        .collect();
    let batch = db::get_batch(ctx.conn, batch_id)?.ok_or(PayoutError::NotFound("batch"))?;
    Ok(BatchChange {
        rows,
        batch: db::batch_row(ctx.conn, &batch)?,
        entry,
    })
}

impl Payouts {
    /// Publishes a committed batch change on the bus.
    pub(super) fn publish_change(&self, change: BatchChange) {
        for row in change.rows {
            self.inner.bus.publish(BusEvent::Withdrawal(row));
        }
        self.inner.bus.publish(BusEvent::Batch(change.batch));
        if let Some(entry) = change.entry {
            self.inner.bus.publish(BusEvent::Audit(entry));
        }
    }
}

/// Whether confirmed coins (sat each) pay `total` to `outputs` outputs plus
/// a change output at `fee_rate`, taking the largest first and counting a
/// generous size per input (68 vB, P2WPKH) and output (43 vB, P2TR).
/// `Err((what the coins pay, what is needed))` otherwise.
pub(super) fn confirmed_cover(
    mut coins: Vec<i64>,
    total: i64,
    outputs: usize,
    fee_rate: u64,
) -> Result<(), (i64, i64)> {
    coins.sort_unstable_by(|a, b| b.cmp(a));
    let fee =
        |inputs: usize| (11 + 43 * (outputs as i64 + 1) + 68 * inputs as i64) * fee_rate as i64;
    let mut have = 0;
    for (i, coin) in coins.iter().enumerate() {
        have += coin;
        if have >= total + fee(i + 1) {
            return Ok(());
        }
    }
    Err((have, total + fee(coins.len().max(1))))
}

impl Payouts {
    /// Admin: pay approved withdrawals now (all payable ones when `ids` is
    /// empty). Hot mode sends; cold mode builds a PSBT for review.
    pub async fn send_batch(
        &self,
        actor: Actor,
        ids: Vec<i64>,
    ) -> Result<BatchOutcome, PayoutError> {
        match self.inner.config.mode {
            PayoutMode::Hot => self.send_hot(actor, ids).await,
            PayoutMode::Cold => self
                .create_psbt(actor, ids)
                .await
                .map(|(outcome, _)| outcome),
        }
    }

    /// Checks everything that must hold before money may leave, and picks
    /// what goes into the batch. Call with the batch lock held.
    pub(super) async fn plan(&self, ids: &[i64]) -> Result<(Plan, u64), PayoutError> {
        let inner = &self.inner;
        let config = &inner.config;
        let (paused, unresolved, approved, batched_today, committed_sat) = inner
            .store
            .read(|conn| {
                let now = crate::clock::now_s();
                Ok((
                    db::setting(conn, PAUSED_KEY)?,
                    db::batches_in(conn, UNRESOLVED)?,
                    db::withdrawals_in_state(conn, "approved", 10_000)?,
                    db::batched_since(conn, now - now.rem_euclid(86_400))?,
                    db::committed_sat(conn)?,
                ))
            })
            .await?;
        if let Some(who) = paused {
            return Err(PayoutError::Waiting(format!("payouts are paused ({who})")));
        }
        if let Some(batch) = unresolved.first() {
            return Err(PayoutError::Waiting(format!(
                "batch {} is {} and must be resolved first",
                batch.id, batch.state
            )));
        }
        let status = inner
            .wallet
            .status()
            .await
            .map_err(|e| PayoutError::Waiting(format!("wallet: {e}")))?;
        let fee_rate = match inner.wallet.estimate_fee_rate().await {
            Ok(Some(rate)) => rate.max(1),
            Ok(None) => config.fallback_fee_rate_sat_vb,
            Err(e) => return Err(PayoutError::Waiting(format!("fee estimate: {e}"))),
        };
        if fee_rate > config.max_fee_rate_sat_vb {
            return Err(PayoutError::Waiting(format!(
                "the fee estimate is {fee_rate} sat/vB, above payouts.max_fee_rate_sat_vb = {}",
                config.max_fee_rate_sat_vb
            )));
        }
        // Solvency: everything the pool has committed to pay (approved and
        // in-flight withdrawals; not mere requests) must be in the wallet
        // before anything goes out, so a batch never fails halfway through
        // the queue.
        if status.spendable_sat < committed_sat {
            return Err(PayoutError::Waiting(format!(
                "wallet shortfall: {} sat spendable, {} sat approved for withdrawals",
                status.spendable_sat, committed_sat
            )));
        }
        let now = crate::clock::now_s();
        let chosen: Vec<&Withdrawal> = approved
            .iter()
            .filter(|w| ids.is_empty() || ids.contains(&w.id))
            .collect();
        if !ids.is_empty() {
            for id in ids {
                if !chosen.iter().any(|w| w.id == *id) {
                    return Err(PayoutError::Invalid(format!(
                        "withdrawal {id} is not approved"
                    )));
                }
            }
        }
        let mut cap_left = config.daily_cap_btc.sat() - batched_today;
        let mut by_address: BTreeMap<String, i64> = BTreeMap::new();
        let mut plan_ids = Vec::new();
        let mut waiting_delay = 0;
        let mut waiting_cap = 0;
        for w in chosen {
            if w.payable_at > now {
                waiting_delay += 1;
                continue;
            }
            if w.amount_sat > cap_left {
                waiting_cap += 1;
                continue;
            }
            if !by_address.contains_key(&w.address)
                && by_address.len() >= config.max_outputs_per_batch
            {
                continue;
            }
            cap_left -= w.amount_sat;
            *by_address.entry(w.address.clone()).or_default() += w.amount_sat;
            plan_ids.push(w.id);
        }
        if plan_ids.is_empty() {
            let mut why = String::from("no approved withdrawal is payable now");
            if waiting_delay > 0 {
                why.push_str(&format!("; {waiting_delay} wait for the new-address delay"));
            }
            if waiting_cap > 0 {
                why.push_str(&format!(
                    "; {waiting_cap} wait for the daily cap (payouts.daily_cap_btc)"
                ));
            }
            return Err(PayoutError::Nothing(why));
        }
        // Same-address outputs merged: one output per address.
        let outputs: Vec<Output> = by_address
            .into_iter()
            .map(|(address, amount_sat)| Output {
                address,
                amount_sat,
            })
            .collect();
        // No chaining on unconfirmed change: `sendmany` ignores its minconf,
        // and Core's coin selection spends unconfirmed change only when its
        // confirmed coins cannot pay (its first eligibility filters are
        // confirmed-only). So a batch goes out only when confirmed coins
        // cover it with its fee; otherwise it waits for change to confirm.
        // (Cold batches also pass minconf 1 to walletcreatefundedpsbt.)
        let coins = inner
            .wallet
            .confirmed_coins()
            .await
            .map_err(|e| PayoutError::Waiting(format!("wallet: {e}")))?;
        if let Some(coins) = coins {
            let total: i64 = outputs.iter().map(|o| o.amount_sat).sum();
            if let Err((have, need)) = confirmed_cover(coins, total, outputs.len(), fee_rate) {
                return Err(PayoutError::Waiting(format!(
                    "waiting for change to confirm: confirmed coins pay {have} sat of the {need} sat this batch needs with its fee, and payouts do not spend unconfirmed change"
                )));
            }
        }
        Ok((
            Plan {
                ids: plan_ids,
                outputs,
            },
            fee_rate,
        ))
    }

    /// Commits the batch and its withdrawals before any RPC.
    pub(super) async fn commit_intent(
        &self,
        actor: &Actor,
        mode: &'static str,
        state: &'static str,
        plan: &Plan,
        fee_rate: u64,
        prebuilt: bool,
    ) -> Result<Batch, PayoutError> {
        let outputs = plan.outputs.clone();
        let ids = plan.ids.clone();
        let actor = actor.clone();
        let (batch, row, entry) = self
            .inner
            .store
            .write(move |ctx| {
                let batch = db::insert_batch(ctx, mode, state, &outputs, fee_rate, prebuilt)?;
                db::assign_to_batch(ctx, batch.id, &ids)?;
                let entry = audit::record(
                    ctx,
                    &actor,
                    "create_batch",
                    &format!("batch:{}", batch.id),
                    &format!(
                        "{mode}: {} withdrawals, {} outputs, {} sat at {fee_rate} sat/vB",
                        ids.len(),
                        outputs.len(),
                        batch.total_sat
                    ),
                )?;
                let row = db::batch_row(ctx.conn, &batch)?;
                Ok::<_, PayoutError>((batch, row, entry))
            })
            .await?;
        self.inner.bus.publish(BusEvent::Batch(row));
        self.inner.bus.publish(BusEvent::Audit(entry));
        Ok(batch)
    }

    /// Hot mode: the wallet funds and signs the batch's transaction, its
    /// txid and bytes are committed, its inputs locked, and only then is it
    /// broadcast. A backend that cannot build without sending (the
    /// simulated wallet) pays with one tagged `sendmany`.
    async fn send_hot(&self, actor: Actor, ids: Vec<i64>) -> Result<BatchOutcome, PayoutError> {
        let _guard = self.inner.lock.lock().await;
        let (plan, fee_rate) = self.plan(&ids).await?;
        let prebuilt = self.inner.wallet.kind() != "simulated";
        let batch = self
            .commit_intent(&actor, "hot", "sending", &plan, fee_rate, prebuilt)
            .await?;
        crash::point("hot_intent");
        tracing::info!(
            batch = batch.id,
            outputs = batch.outputs.len(),
            total_sat = batch.total_sat,
            fee_rate,
            "sending payout batch"
        );
        if prebuilt {
            self.build_and_send(&batch, fee_rate).await?;
            return self.batch_outcome(batch.id, None).await;
        }
        match self
            .inner
            .wallet
            .send_many(&batch.outputs, &batch.tag, fee_rate)
            .await
        {
            Ok(txid) => {
                self.finish_broadcast(&batch, &txid, None).await?;
            }
            Err(e) if e.is_definite() => {
                self.fail_batch(&batch, &format!("the node refused the batch: {e}"))
                    .await?;
                return Err(PayoutError::Node(e.to_string()));
            }
            Err(e) => {
                // Maybe sent, maybe not: never resend; find out.
                tracing::warn!(batch = batch.id, error = %e, "payout batch outcome unknown; reconciling");
                self.note_batch(
                    &batch,
                    &format!("outcome unknown ({e}); reconciling with the wallet"),
                )
                .await?;
                self.reconcile_sending(&batch).await;
            }
        }
        self.batch_outcome(batch.id, None).await
    }

    /// The txid-first path of a `sending` batch: fund and sign (nothing
    /// leaves the node), commit, lock, broadcast.
    async fn build_and_send(&self, batch: &Batch, fee_rate: u64) -> Result<(), PayoutError> {
        let signed = match self
            .inner
            .wallet
            .fund_and_sign(&batch.outputs, fee_rate)
            .await
        {
            Ok(Some(signed)) => signed,
            Ok(None) => {
                let note = "the wallet backend cannot build a transaction without sending it";
                self.fail_batch(batch, note).await?;
                return Err(PayoutError::Node(note.into()));
            }
            Err(e) => {
                // Funding and signing broadcast nothing and lock nothing
                // (lockUnspents is off), whatever the answer: the batch
                // provably paid nothing.
                let note = format!("the wallet could not build the batch's transaction: {e}");
                // Core answers FundTransaction failures to
                // walletcreatefundedpsbt with -4 (sendmany: -6): any refusal
                // of a build backs automatic batches off.
                if e.is_insufficient_funds() || matches!(e, WalletError::Rpc { code: -4, .. }) {
                    self.inner
                        .backoff
                        .lock()
                        .expect("backoff lock")
                        .fail(crate::clock::now_s(), e.to_string());
                }
                self.fail_batch(batch, &note).await?;
                return Err(PayoutError::Node(e.to_string()));
            }
        };
        crash::point("hot_signed");
        *self.inner.backoff.lock().expect("backoff lock") = Backoff::default();
        let (batch_id, txid, hex, inputs, fee_sat) = (
            batch.id,
            signed.txid.clone(),
            signed.hex.clone(),
            signed.inputs.clone(),
            signed.fee_sat,
        );
        let entry = self
            .inner
            .store
            .write(move |ctx| {
                db::set_batch_tx(ctx, batch_id, &txid, &hex, &inputs, fee_sat)?;
                Ok::<_, PayoutError>(audit::record(
                    ctx,
                    &Actor::System,
                    "signed",
                    &format!("batch:{batch_id}"),
                    &format!("txid {txid}, fee {fee_sat} sat; committed before broadcast"),
                )?)
            })
            .await?;
        self.inner.bus.publish(BusEvent::Audit(entry));
        crash::point("hot_committed");
        let batch = self.load_batch(batch.id).await?;
        self.send_committed(&batch).await
    }

    /// Locks a committed batch's inputs (persistently) and broadcasts its
    /// transaction: the first send and every retry, always the same bytes.
    async fn send_committed(&self, batch: &Batch) -> Result<(), PayoutError> {
        let (Some(txid), Some(hex)) = (batch.txid.clone(), batch.tx_hex.clone()) else {
            return Ok(());
        };
        if let Err(e) = self.inner.wallet.lock(&batch.inputs).await {
            // Not fatal: the transaction's own bytes fix its inputs; the lock
            // only keeps other spends of this wallet off them.
            tracing::warn!(batch = batch.id, error = %e, "could not lock the batch's inputs");
        }
        crash::point("hot_locked");
        match self.inner.wallet.broadcast(&hex).await {
            Ok(_) => {
                crash::point("hot_broadcast");
                self.finish_broadcast(batch, &txid, batch.fee_sat).await?;
                crash::point("hot_recorded");
                Ok(())
            }
            Err(e) => {
                // Refused or unclear: the transaction may still be in the
                // wallet or the mempool (an earlier attempt). Only the txid
                // decides; the worker retries the same bytes.
                if let Ok(Some(tx)) = self.inner.wallet.transaction(&txid).await
                    && tx.in_mempool_or_chain
                {
                    self.finish_broadcast(batch, &txid, tx.fee_sat.map(i64::abs).or(batch.fee_sat))
                        .await?;
                    return Ok(());
                }
                tracing::warn!(batch = batch.id, txid, error = %e, "payout broadcast not accepted yet; the same transaction will be sent again");
                self.note_batch(
                    batch,
                    &format!("broadcast of {txid} not accepted yet ({e}); the same transaction is sent again"),
                )
                .await?;
                Ok(())
            }
        }
    }

    async fn load_batch(&self, batch_id: i64) -> Result<Batch, PayoutError> {
        self.inner
            .store
            .read(move |conn| db::get_batch(conn, batch_id))
            .await?
            .ok_or(PayoutError::NotFound("batch"))
    }

    /// Records a broadcast: withdrawals paid (held → sent), batch state and
    /// txid, then the fee once the wallet tells it.
    pub(super) async fn finish_broadcast(
        &self,
        batch: &Batch,
        txid: &str,
        fee_sat: Option<i64>,
    ) -> Result<(), PayoutError> {
        let fee_sat = match fee_sat {
            Some(fee) => Some(fee),
            None => match self.inner.wallet.transaction(txid).await {
                Ok(Some(tx)) => tx.fee_sat.map(i64::abs),
                _ => None,
            },
        };
        let (batch_id, txid_owned) = (batch.id, txid.to_string());
        let change = self
            .inner
            .store
            .write(move |ctx| {
                let withdrawals = db::withdrawals_of_batch(ctx.conn, batch_id)?;
                for w in &withdrawals {
                    db::mark_paid(ctx, w, &txid_owned)?;
                }
                db::set_batch(
                    ctx,
                    batch_id,
                    "broadcast",
                    Some(&txid_owned),
                    None,
                    Some("broadcast"),
                )?;
                if let Some(fee) = fee_sat {
                    db::record_fee(ctx, batch_id, &txid_owned, fee)?;
                }
                let entry = audit::record(
                    ctx,
                    &Actor::System,
                    "broadcast",
                    &format!("batch:{batch_id}"),
                    &format!("txid {txid_owned}"),
                )?;
                batch_change(ctx, batch_id, Some(entry))
            })
            .await?;
        tracing::info!(batch = batch.id, txid, "payout batch broadcast");
        self.publish_change(change);
        Ok(())
    }

    /// Records a payment found in the wallet for a batch that was parked in
    /// `needs_attention`.
    async fn settle_found(&self, batch: &Batch, tx: &WalletTx) -> Result<(), PayoutError> {
        self.finish_broadcast(batch, &tx.txid, tx.fee_sat.map(i64::abs))
            .await?;
        let id = batch.id;
        self.inner
            .store
            .write(move |ctx| {
                ctx.conn.execute(
                    "UPDATE withdrawals SET state = 'broadcast', updated_at = ?2 WHERE batch_id = ?1 AND paid = 1 AND state = 'needs_attention'",
                    rusqlite::params![id, ctx.now_s],
                )?;
                Ok::<_, PayoutError>(())
            })
            .await?;
        Ok(())
    }

    /// A batch that provably paid nothing: withdrawals wait again.
    pub(super) async fn fail_batch(&self, batch: &Batch, reason: &str) -> Result<(), PayoutError> {
        let (batch_id, reason_owned) = (batch.id, reason.to_string());
        let change = self
            .inner
            .store
            .write(move |ctx| {
                db::set_batch(ctx, batch_id, "failed", None, None, Some(&reason_owned))?;
                db::unbatch(
                    ctx,
                    batch_id,
                    &format!("batch {batch_id} failed: {reason_owned}"),
                )?;
                let entry = audit::record(
                    ctx,
                    &Actor::System,
                    "batch_failed",
                    &format!("batch:{batch_id}"),
                    &reason_owned,
                )?;
                batch_change(ctx, batch_id, Some(entry))
            })
            .await?;
        tracing::warn!(
            batch = batch.id,
            reason,
            "payout batch failed; its withdrawals wait for the next batch"
        );
        self.publish_change(change);
        Ok(())
    }

    async fn note_batch(&self, batch: &Batch, note: &str) -> Result<(), PayoutError> {
        let (batch_id, state, note) = (batch.id, batch.state.clone(), note.to_string());
        self.inner
            .store
            .write(move |ctx| {
                Ok::<_, PayoutError>(db::set_batch(
                    ctx,
                    batch_id,
                    &state,
                    None,
                    None,
                    Some(&note),
                )?)
            })
            .await?;
        Ok(())
    }

    /// Puts a batch and its withdrawals in `needs_attention`.
    pub(super) async fn needs_attention(
        &self,
        batch: &Batch,
        reason: &str,
    ) -> Result<(), PayoutError> {
        let (batch_id, reason_owned) = (batch.id, reason.to_string());
        let change = self
            .inner
            .store
            .write(move |ctx| {
                db::set_batch(
                    ctx,
                    batch_id,
                    "needs_attention",
                    None,
                    None,
                    Some(&reason_owned),
                )?;
                ctx.conn.execute(
                    "UPDATE withdrawals SET state = 'needs_attention', note = ?2, updated_at = ?3
                     WHERE batch_id = ?1 AND state IN ('batched', 'broadcast')",
                    rusqlite::params![batch_id, reason_owned, ctx.now_s],
                )?;
                let entry = audit::record(
                    ctx,
                    &Actor::System,
                    "needs_attention",
                    &format!("batch:{batch_id}"),
                    &reason_owned,
                )?;
                batch_change(ctx, batch_id, Some(entry))
            })
            .await?;
        tracing::error!(
            batch = batch.id,
            reason,
            "payout batch needs an admin decision"
        );
        self.publish_change(change);
        Ok(())
    }

    /// The transaction that carries a batch, among those the wallet found by
    /// its tag: the one still valid (not replaced, not conflicted).
    fn current_tx(found: &[WalletTx]) -> Option<&WalletTx> {
        found
            .iter()
            .filter(|t| t.replaced_by_txid.is_none() && t.confirmations >= 0 && !t.abandoned)
            .max_by_key(|t| (t.confirmations, t.in_mempool_or_chain))
    }

    /// [`Self::current_tx`] if it pays exactly the batch's outputs: a tag
    /// alone (repeated after a ledger restore, or by a second install on
    /// the same wallet) never makes a transaction a batch's payment.
    fn paying_tx<'a>(found: &'a [WalletTx], outputs: &[Output]) -> Option<&'a WalletTx> {
        Self::current_tx(found).filter(|t| t.pays_exactly(outputs))
    }

    /// Reconciles one `sending` batch by its tag. Found: broadcast. Not
    /// found once the grace time has passed: needs attention (never resent).
    /// Node unreachable: try again later.
    pub(super) async fn reconcile_sending(&self, batch: &Batch) {
        let found = match self.inner.wallet.find_by_tag(&batch.tag).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(batch = batch.id, error = %e, "cannot reconcile yet: wallet unavailable");
                return;
            }
        };
        let result = match Self::paying_tx(&found, &batch.outputs) {
            Some(tx) => {
                tracing::warn!(batch = batch.id, txid = %tx.txid, "reconciled: the batch was sent");
                let tx = tx.clone();
                self.finish_broadcast(batch, &tx.txid, tx.fee_sat.map(i64::abs)).await
            }
            None if !found.is_empty() => {
                self.needs_attention(batch, "the wallet's transactions with this batch's tag are replaced, conflicted, abandoned or pay other outputs than the batch")
                    .await
            }
            None => {
                // A node may still be executing a call that timed out: wait
                // twice the RPC timeout before deciding.
                let grace = 2 * self.inner.config.rpc_timeout_s as i64;
                if crate::clock::now_s() - batch.updated_at < grace {
                    return;
                }
                self.needs_attention(
                    batch,
                    "the batch was committed but the wallet has no transaction with its tag: it may never have been sent, or the wallet lost it. Check the node, then resolve: retry (not sent) or paid (give the txid)",
                )
                .await
            }
        };
        if let Err(e) = result {
            tracing::error!(batch = batch.id, error = %e, "could not record reconciliation");
        }
    }

    /// A txid-first batch still `sending` when the worker looks: its
    /// transaction was never committed, and nothing is broadcast before
    /// that commit (funding locks nothing), so it provably paid nothing.
    /// Only the batch lock's holder builds, so this is a crash's leftover.
    async fn reconcile_unbuilt(&self, batch: &Batch) {
        let result = self
            .fail_batch(
                batch,
                "interrupted before its transaction was committed; nothing was broadcast",
            )
            .await;
        if let Err(e) = result {
            tracing::error!(batch = batch.id, error = %e, "could not record reconciliation");
        }
    }

    /// Every in-flight batch: `sending` (hot), `psbt_pending` and
    /// `broadcasting` (cold), then confirmations of broadcast ones.
    pub async fn reconcile_all(&self) {
        let _guard = self.inner.lock.lock().await;
        let batches = match self
            .inner
            .store
            .read(|conn| {
                db::batches_in(
                    conn,
                    &[
                        "sending",
                        "psbt_pending",
                        "psbt_created",
                        "signed",
                        "broadcasting",
                        "broadcast",
                        "needs_attention",
                    ],
                )
            })
            .await
        {
            Ok(batches) => batches,
            Err(e) => {
                tracing::warn!(error = %e, "reconcile: cannot read batches");
                return;
            }
        };
        for batch in batches {
            match batch.state.as_str() {
                "sending" if batch.prebuilt => self.reconcile_unbuilt(&batch).await,
                "sending" => self.reconcile_sending(&batch).await,
                "psbt_pending" => self.reconcile_psbt_pending(&batch).await,
                "broadcasting" if batch.prebuilt => {
                    if let Err(e) = self.send_committed(&batch).await {
                        tracing::warn!(batch = batch.id, error = %e, "could not rebroadcast a committed batch");
                    }
                }
                "broadcasting" => self.reconcile_broadcasting(&batch).await,
                "psbt_created" | "signed" => self.reconcile_unbroadcast(&batch).await,
                "broadcast" => self.track_confirmations(&batch).await,
                // A batch parked because its transaction could not be found:
                // if the wallet shows it now, that is proof, and recording
                // it is safe.
                "needs_attention" if batch.txid.is_none() && batch.mode == "hot" => {
                    if let Ok(found) = self.inner.wallet.find_by_tag(&batch.tag).await
                        && let Some(tx) = Self::paying_tx(&found, &batch.outputs)
                            .filter(|t| t.in_mempool_or_chain)
                    {
                        let tx = tx.clone();
                        tracing::warn!(batch = batch.id, txid = %tx.txid, "batch in needs_attention found in the wallet: recording it as paid");
                        if let Err(e) = self.settle_found(&batch, &tx).await {
                            tracing::error!(batch = batch.id, error = %e, "could not record the found payment");
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Follows a broadcast batch: confirmations, replacements, conflicts,
    /// drops.
    async fn track_confirmations(&self, batch: &Batch) {
        let Some(txid) = batch.txid.clone() else {
            return;
        };
        let tx = match self.inner.wallet.transaction(&txid).await {
            Ok(Some(tx)) => tx,
            Ok(None) => {
                let _ = self
                    .needs_attention(
                        batch,
                        &format!("the wallet does not know transaction {txid} any more"),
                    )
                    .await;
                return;
            }
            Err(_) => return, // node unavailable: try later
        };
        if let Some(replacement) = tx.replaced_by_txid.clone() {
            if let Ok(Some(new)) = self.inner.wallet.transaction(&replacement).await
                && new.pays_exactly(&batch.outputs)
            {
                let fee = new.fee_sat.map(i64::abs);
                let result = self
                    .record_replacement(batch, &replacement, fee, new.hex.clone())
                    .await;
                if let Err(e) = result {
                    tracing::error!(batch = batch.id, error = %e, "could not record the replacement");
                }
                return;
            }
            let _ = self
                .needs_attention(batch, &format!("transaction {txid} was replaced by {replacement}, which does not pay the batch"))
                .await;
            return;
        }
        if tx.confirmations < 0 {
            // A conflicting transaction was mined. A replacement carrying
            // our tag is fine (e.g. fee bumped elsewhere); anything else is
            // for the admin.
            if let Ok(found) = self.inner.wallet.find_by_tag(&batch.tag).await
                && let Some(current) =
                    Self::paying_tx(&found, &batch.outputs).filter(|t| t.txid != txid)
            {
                let current = current.clone();
                let _ = self
                    .record_replacement(
                        batch,
                        &current.txid,
                        current.fee_sat.map(i64::abs),
                        current.hex.clone(),
                    )
                    .await;
                return;
            }
            let conflicts = if tx.wallet_conflicts.is_empty() {
                "a transaction the wallet does not name".to_string()
            } else {
                tx.wallet_conflicts.join(", ")
            };
            let _ = self
                .needs_attention(
                    batch,
                    &format!(
                        "transaction {txid} conflicts with mined transaction {conflicts} ({} confirmation(s)), which spent one of its inputs: this payout did not happen. Retry or Failed once the conflict has {} confirmation(s)",
                        -tx.confirmations,
                        self.depth()
                    ),
                )
                .await;
            return;
        }
        if tx.confirmations == 0 && !tx.in_mempool_or_chain && batch.tx_hex.is_some() {
            // Dropped from the mempool (evicted, expired, a node restart
            // without its mempool) but still in the wallet: the same bytes go
            // out again. Never a new transaction while this one can confirm.
            let hex = batch.tx_hex.clone().unwrap_or_default();
            if let Err(e) = self.inner.wallet.broadcast(&hex).await {
                tracing::warn!(batch = batch.id, txid, error = %e, "rebroadcast of a dropped payout not accepted");
                let _ = self
                    .note_batch(
                        batch,
                        &format!("{txid} is not in the mempool; rebroadcast not accepted: {e}"),
                    )
                    .await;
            } else {
                tracing::info!(batch = batch.id, txid, "dropped payout rebroadcast");
            }
            return;
        }
        if tx.confirmations == 0 && !tx.in_mempool_or_chain {
            let _ = self
                .needs_attention(
                    batch,
                    &format!("transaction {txid} was dropped from the mempool"),
                )
                .await;
            return;
        }
        let required = self.depth();
        let batch_id = batch.id;
        let confirmations = tx.confirmations;
        // Fewer confirmations than last seen: a reorg took the confirming
        // block away. The batch stays broadcast (the same transaction
        // confirms again, or is followed as conflicted or dropped); shown.
        let before = batch.confirmations.unwrap_or(0);
        let reorg = (confirmations < before).then(|| {
            format!("reorg: {txid} had {before} confirmation(s), now {confirmations}; followed until {required}")
        });
        // A fee the wallet did not tell at broadcast is back-filled.
        let backfill = batch
            .fee_sat
            .is_none()
            .then(|| tx.fee_sat.map(i64::abs))
            .flatten();
        let txid_fee = txid.clone();
        let result = self
            .inner
            .store
            .write(move |ctx| {
                db::set_confirmations(ctx, batch_id, confirmations)?;
                if let Some(fee) = backfill {
                    db::record_fee(ctx, batch_id, &txid_fee, fee)?;
                }
                if let Some(note) = &reorg {
                    db::set_batch(ctx, batch_id, "broadcast", None, None, Some(note))?;
                    let entry = audit::record(
                        ctx,
                        &Actor::System,
                        "reorg",
                        &format!("batch:{batch_id}"),
                        note,
                    )?;
                    return Ok::<_, PayoutError>(Some(batch_change(ctx, batch_id, Some(entry))?));
                }
                if confirmations >= required {
                    db::set_batch(ctx, batch_id, "confirmed", None, None, Some(&format!("{confirmations} confirmations")))?;
                    ctx.conn.execute(
                        "UPDATE withdrawals SET state = 'confirmed', updated_at = ?2 WHERE batch_id = ?1 AND state = 'broadcast'",
                        rusqlite::params![batch_id, ctx.now_s],
                    )?;
                    return Ok::<_, PayoutError>(Some(batch_change(ctx, batch_id, None)?));
                }
                Ok(None)
            })
            .await;
        match result {
            Ok(Some(change)) if change.batch.state != "confirmed" => {
                tracing::warn!(
                    batch = batch.id,
                    confirmations,
                    before,
                    "payout batch lost confirmations in a reorg"
                );
                self.publish_change(change);
            }
            Ok(Some(change)) => {
                tracing::info!(batch = batch.id, confirmations, "payout batch confirmed");
                self.publish_change(change);
                // Final: the inputs are spent; their persistent locks go.
                if let Err(e) = self.inner.wallet.unlock(&batch.inputs).await {
                    tracing::warn!(batch = batch.id, error = %e, "could not unlock a confirmed batch's inputs");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(batch = batch.id, error = %e, "could not record confirmations")
            }
        }
    }

    /// Confirmations after which a payout is final (`payouts.confirmations`,
    /// else the network's default), and the depth a conflicting spend needs
    /// before a batch may be paid again.
    pub(super) fn depth(&self) -> i64 {
        i64::from(self.inner.config.depth(self.inner.network))
    }

    async fn record_replacement(
        &self,
        batch: &Batch,
        txid: &str,
        fee_sat: Option<i64>,
        hex: Option<String>,
    ) -> Result<(), PayoutError> {
        let (batch_id, old, new) = (
            batch.id,
            batch.txid.clone().unwrap_or_default(),
            txid.to_string(),
        );
        let entry = self
            .inner
            .store
            .write(move |ctx| {
                for w in db::withdrawals_of_batch(ctx.conn, batch_id)? {
                    db::mark_paid(ctx, &w, &new)?;
                }
                let note = format!("replaced: {old} → {new} (fee bump)");
                db::set_batch(ctx, batch_id, "broadcast", Some(&new), None, Some(&note))?;
                // The replacement's bytes, if the wallet gave them, are what
                // a rebroadcast sends from now on (never the replaced ones).
                ctx.conn.execute(
                    "UPDATE payout_batches SET txid = ?2, tx_hex = ?3 WHERE id = ?1",
                    rusqlite::params![batch_id, new, hex],
                )?;
                if let Some(fee) = fee_sat {
                    db::record_fee(ctx, batch_id, &new, fee)?;
                }
                Ok::<_, PayoutError>(audit::record(
                    ctx,
                    &Actor::System,
                    "replaced",
                    &format!("batch:{batch_id}"),
                    &note,
                )?)
            })
            .await?;
        tracing::warn!(
            batch = batch.id,
            txid,
            "payout transaction was replaced; following the replacement"
        );
        self.inner.bus.publish(BusEvent::Audit(entry));
        Ok(())
    }

    /// Admin decision on a batch in `needs_attention`.
    pub async fn resolve(
        &self,
        actor: Actor,
        batch_id: i64,
        resolution: BatchResolution,
    ) -> Result<BatchRow, PayoutError> {
        let _guard = self.inner.lock.lock().await;
        let batch = self
            .inner
            .store
            .read(move |conn| db::get_batch(conn, batch_id))
            .await?
            .ok_or(PayoutError::NotFound("batch"))?;
        if batch.state != "needs_attention" {
            return Err(PayoutError::WrongState {
                what: format!("batch {batch_id}"),
                state: batch.state,
            });
        }
        match resolution {
            BatchResolution::Paid { txid } => {
                let tx = self.inner.wallet.transaction(&txid).await?.ok_or_else(|| {
                    PayoutError::Invalid(format!("the wallet does not know transaction {txid}"))
                })?;
                if !tx.pays_exactly(&batch.outputs) {
                    return Err(PayoutError::Invalid(format!(
                        "transaction {txid} does not pay exactly the outputs of batch {batch_id}"
                    )));
                }
                self.audit_decision(&actor, batch_id, &format!("resolved as paid by {txid}"))
                    .await?;
                self.settle_found(&batch, &tx).await?;
            }
            BatchResolution::Retry | BatchResolution::Failed => {
                // A batch whose transaction is known may be paid again (or
                // given up) only once that transaction provably cannot
                // confirm: a conflicting spend buried deep enough.
                if let Some(txid) = batch.txid.as_deref() {
                    self.provably_dead(txid).await?;
                }
                // Refuse if the wallet now shows the batch as sent after all.
                if let Ok(found) = self.inner.wallet.find_by_tag(&batch.tag).await
                    && let Some(tx) = Self::current_tx(&found).filter(|t| t.in_mempool_or_chain)
                {
                    return Err(PayoutError::Conflict(format!(
                        "the wallet shows batch {batch_id} as sent in {}: resolve it as paid",
                        tx.txid
                    )));
                }
                let give_up = matches!(resolution, BatchResolution::Failed);
                let who = actor.to_string();
                let decision = if give_up {
                    "resolved as failed: funds returned to the miners"
                } else {
                    "resolved as not sent: withdrawals wait for the next batch"
                };
                let (rows, entry) = self
                    .inner
                    .store
                    .write(move |ctx| {
                        let ids: Vec<i64> = db::withdrawals_of_batch(ctx.conn, batch_id)?
                            .iter()
                            .map(|w| w.id)
                            .collect();
                        for id in &ids {
                            let w = db::get_withdrawal(ctx.conn, *id)?
                                .ok_or(PayoutError::NotFound("withdrawal"))?;
                            db::unmark_paid(ctx, &w)?;
                        }
                        // The dead transaction paid no fee either.
                        db::reverse_fee(ctx, batch_id)?;
                        db::set_batch(ctx, batch_id, "failed", None, None, Some(decision))?;
                        if give_up {
                            for id in &ids {
                                let w = db::get_withdrawal(ctx.conn, *id)?
                                    .ok_or(PayoutError::NotFound("withdrawal"))?;
                                db::release(ctx, &w, "failed", Some(&who), decision)?;
                            }
                        } else {
                            db::unbatch(ctx, batch_id, decision)?;
                        }
                        let entry = audit::record(
                            ctx,
                            &actor,
                            "resolve_batch",
                            &format!("batch:{batch_id}"),
                            decision,
                        )?;
                        let mut rows = Vec::with_capacity(ids.len());
                        for id in &ids {
                            if let Some(w) = db::get_withdrawal(ctx.conn, *id)? {
                                rows.push(w.row());
                            }
                        }
                        Ok::<_, PayoutError>((rows, entry))
                    })
                    .await?;
                for row in rows {
                    self.inner.bus.publish(BusEvent::Withdrawal(row));
                }
                self.inner.bus.publish(BusEvent::Audit(entry));
                // The dead transaction's unspent inputs are free again.
                if let Err(e) = self.inner.wallet.unlock(&batch.inputs).await {
                    tracing::warn!(batch = batch_id, error = %e, "could not unlock the batch's inputs");
                }
            }
        }
        let batch = self
            .inner
            .store
            .read(move |conn| {
                let batch =
                    db::get_batch(conn, batch_id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                db::batch_row(conn, &batch)
            })
            .await?;
        self.inner.bus.publish(BusEvent::Batch(batch.clone()));
        Ok(batch)
    }

    /// `Ok` only when `txid` can never confirm ([`crate::wallet::provably_dead`]).
    async fn provably_dead(&self, txid: &str) -> Result<(), PayoutError> {
        crate::wallet::provably_dead(self.inner.wallet.as_ref(), txid, self.depth())
            .await
            .map_err(PayoutError::Conflict)
    }

    async fn audit_decision(
        &self,
        actor: &Actor,
        batch_id: i64,
        detail: &str,
    ) -> Result<(), PayoutError> {
        let (actor, detail) = (actor.clone(), detail.to_string());
        let entry = self
            .inner
            .store
            .write(move |ctx| {
                Ok::<_, PayoutError>(audit::record(
                    ctx,
                    &actor,
                    "resolve_batch",
                    &format!("batch:{batch_id}"),
                    &detail,
                )?)
            })
            .await?;
        self.inner.bus.publish(BusEvent::Audit(entry));
        Ok(())
    }

    pub async fn batch_outcome(
        &self,
        batch_id: i64,
        psbt: Option<String>,
    ) -> Result<BatchOutcome, PayoutError> {
        let batch = self
            .inner
            .store
            .read(move |conn| {
                let batch =
                    db::get_batch(conn, batch_id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                db::batch_row(conn, &batch)
            })
            .await?;
        Ok(BatchResult { batch, psbt })
    }

    pub async fn batches(&self, limit: u32) -> Result<Vec<BatchRow>, PayoutError> {
        let limit = limit.clamp(1, 500);
        Ok(self
            .inner
            .store
            .read(move |conn| {
                db::recent_batches(conn, limit)?
                    .iter()
                    .map(|b| db::batch_row(conn, b))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?)
    }

    /// Creates withdrawals for miners whose balance reached their threshold
    /// (the seed's auto_batch_payout), one open withdrawal per miner.
    pub async fn auto_withdraw(&self) -> Result<(), PayoutError> {
        let min = self.inner.config.min_payout_btc.sat();
        let delay = self.inner.config.new_address_delay_s as i64;
        let candidates = self
            .inner
            .store
            .read(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT m.id, m.payout_address, m.payout_address_set_at, COALESCE(m.payout_threshold_sat, 0), a.balance_msat
                     FROM miners m JOIN accounts a ON a.name = 'miner:' || m.id
                     WHERE m.active = 1 AND m.payout_address IS NOT NULL AND a.balance_msat >= ?1 * 1000
                       AND NOT EXISTS (SELECT 1 FROM withdrawals w WHERE w.miner_id = m.id
                                       AND w.state IN ('requested','approved','batched','needs_attention'))
                     LIMIT 1000",
                )?;
                let rows = stmt.query_map([min], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let now = crate::clock::now_s();
        for (miner, address, set_at, threshold, balance_msat) in candidates {
            let amount_sat = balance_msat / 1000;
            if amount_sat < threshold.max(min) {
                continue;
            }
            let auto = amount_sat < self.inner.config.auto_approve_below_btc.sat();
            let result = self
                .create(
                    Actor::System,
                    miner.clone(),
                    address,
                    amount_sat,
                    "auto",
                    (miner.clone(), now.to_string()),
                    set_at + delay,
                    auto,
                )
                .await;
            match result {
                Ok(w) => {
                    tracing::info!(miner = %miner, withdrawal = w.id, amount_sat, "automatic withdrawal created")
                }
                Err(PayoutError::InsufficientFunds { .. }) => {}
                Err(e) => tracing::warn!(miner = %miner, error = %e, "automatic withdrawal failed"),
            }
        }
        Ok(())
    }

    /// The worker's batch step: hot mode sends approved withdrawals; cold
    /// mode prepares a PSBT for review when none is waiting. Conditions
    /// that hold payouts back become warnings.
    pub async fn automatic_batch(&self) {
        let pending = self
            .inner
            .store
            .read(|conn| {
                Ok((
                    db::withdrawals_in_state(conn, "approved", 1)?.len(),
                    db::batches_in(conn, &["psbt_created", "signed"])?.len(),
                ))
            })
            .await;
        let Ok((approved, open_cold)) = pending else {
            return;
        };
        if approved == 0 {
            self.set_waiting(Vec::new());
            return;
        }
        if let Some(warning) = self.backoff_warning() {
            self.set_waiting(vec![warning]);
            return;
        }
        let result = match self.inner.config.mode {
            PayoutMode::Hot => self.send_hot(Actor::System, Vec::new()).await.map(|_| ()),
            PayoutMode::Cold if open_cold == 0 => self
                .create_psbt(Actor::System, Vec::new())
                .await
                .map(|_| ()),
            PayoutMode::Cold => Ok(()),
        };
        match result {
            Ok(()) => self.set_waiting(Vec::new()),
            Err(PayoutError::Waiting(why)) => {
                tracing::info!(reason = %why, "payouts waiting");
                self.set_waiting(vec![Warning {
                    code: "payouts_waiting".into(),
                    message: why,
                }]);
            }
            Err(PayoutError::Nothing(why)) => {
                self.set_waiting(vec![Warning {
                    code: "payouts_waiting".into(),
                    message: why,
                }]);
            }
            Err(e) => {
                tracing::warn!(error = %e, "automatic payout batch failed");
                if let Some(warning) = self.backoff_warning() {
                    self.set_waiting(vec![warning]);
                }
            }
        }
    }

    /// While automatic batches back off: the warning, with Core's message.
    fn backoff_warning(&self) -> Option<Warning> {
        let backoff = self.inner.backoff.lock().expect("backoff lock").clone();
        let now = crate::clock::now_s();
        (backoff.until_s > now).then(|| Warning {
            code: "payouts_backoff".into(),
            message: format!(
                "the wallet could not build the last batch ({} time(s) in a row): {}; next automatic try in {} s",
                backoff.failures,
                backoff.message,
                backoff.until_s - now
            ),
        })
    }

    fn set_waiting(&self, warnings: Vec<Warning>) {
        *self.inner.waiting.write().expect("waiting lock") = warnings;
    }
}

#[cfg(test)]
mod tests {
    use super::{BACKOFF_CAP_S, Backoff, confirmed_cover};

    #[test]
    fn definite_build_failures_back_off_exponentially_up_to_the_cap() {
        let mut backoff = Backoff::default();
        let delays: Vec<i64> = (0..10)
            .map(|_| {
                backoff.fail(1_000, "Insufficient funds (code -6)".into());
                backoff.until_s - 1_000
            })
            .collect();
        assert_eq!(
            delays,
            [30, 60, 120, 240, 480, 960, 1_920, 3_600, 3_600, 3_600]
        );
        assert_eq!(backoff.failures, 10);
        assert!(backoff.message.contains("code -6"));
        // No overflow however long it fails.
        for _ in 0..100 {
            backoff.fail(1_000, String::new());
        }
        assert_eq!(backoff.until_s - 1_000, BACKOFF_CAP_S);
    }

    #[test]
    fn confirmed_coins_must_pay_the_batch_and_its_fee() {
        // One output + change, one input at 2 sat/vB: (11 + 86 + 68) × 2 = 330.
        assert_eq!(confirmed_cover(vec![100_330], 100_000, 1, 2), Ok(()));
        assert_eq!(
            confirmed_cover(vec![100_329], 100_000, 1, 2),
            Err((100_329, 100_330))
        );
        // Largest first; each extra input adds its own fee.
        assert_eq!(confirmed_cover(vec![1_000, 99_466], 100_000, 1, 2), Ok(()));
        assert_eq!(
            confirmed_cover(vec![1_000, 99_465], 100_000, 1, 2),
            Err((100_465, 100_466))
        );
        // Nothing confirmed (only unconfirmed change): wait.
        assert_eq!(confirmed_cover(vec![], 1, 1, 1), Err((0, 166)));
    }
}
