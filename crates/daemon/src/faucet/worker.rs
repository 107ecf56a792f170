//! The faucet's payer: every `faucet.batch_interval_s`, queued requests go
//! out in one transaction.
//!
//! Against Bitcoin Core the payment is txid-first, like a hot payout batch
//! (issue 11): the batch (state `sending`) is committed; the wallet funds
//! and signs its transaction without broadcasting it; txid, bytes and inputs
//! are committed; the inputs are locked; only then is it broadcast
//! (`sendrawtransaction`), and recorded `paid` once the node has it. A
//! `sending` batch without a txid provably sent nothing (`failed`, its
//! requests queued again); one with a txid is broadcast again with the same
//! bytes, never rebuilt. The rules below apply to the simulated wallet
//! (demo mode), which pays with one tagged `sendmany`.
//!
//! Never pay twice (`sendmany`):
//! 1. The batch (its requests, its tag, state `sending`) is committed
//!    before `send_many` is called.
//! 2. Success → `paid` with the txid, ledger `faucet:held → faucet:sent`
//!    per request and the fee `pool:fees → fees:network`.
//! 3. A definite error (the wallet refused: insufficient funds, bad
//!    address) proves nothing was sent → the batch is `failed` and its
//!    requests go back to the queue for the next round (new batch, new tag).
//! 4. An ambiguous error (timeout, connection lost after sending) → look for
//!    the tag in the wallet first: found → `paid`; otherwise the batch goes
//!    to `needs_attention` and is **never resent automatically**. Each
//!    round looks for its tag again and marks it paid if it shows up.
//! 5. A batch still `sending` at the start of a round was left by a crash:
//!    it is reconciled the same way as an ambiguous error.

use std::time::Duration;

use crate::app::App;
use crate::events::BusEvent;
use crate::metrics::StateLabel;

use super::{Faucet, db, rules};
use crate::payouts::crash;
use crate::wallet::{Output, WalletTx};

/// Spent challenges are forgotten this long after they expire (slack for
/// a clock stepping backwards).
const CHALLENGE_SLACK_S: i64 = 3600;

/// What one round did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    /// Batches sent and recorded paid this round.
    pub paid_batches: Vec<i64>,
    /// Batches reconciled as paid (found by tag).
    pub reconciled: Vec<i64>,
    /// Batches the wallet refused (their requests are queued again).
    pub failed: Vec<i64>,
    pub needs_attention: Vec<i64>,
}

/// Runs rounds until shutdown. The first round runs at once, so batches
/// left `sending` by a crash are reconciled on start.
pub async fn run(app: App) {
    let interval = Duration::from_secs(app.faucet.settings.batch_interval_s.max(1));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let round = app.faucet.round().await;
        if round != Round::default() {
            tracing::debug!(?round, "faucet round");
        }
    }
}

impl Faucet {
    /// One round: reconcile open batches, book missing fees, pay the queue,
    /// forget expired challenges.
    pub async fn round(&self) -> Round {
        let mut round = Round::default();
        self.reconcile(&mut round).await;
        self.follow_paid().await;
        self.fill_fees().await;
        if self.settings.enabled {
            self.pay_queued(&mut round).await;
        }
        let before = crate::clock::now_s() - CHALLENGE_SLACK_S;
        if let Err(e) = self
            .store
            .write(move |ctx| db::prune_challenges(ctx, before, 5_000))
            .await
        {
            tracing::warn!(error = %e, "faucet: could not prune spent challenges");
        }
        round
    }

    fn publish(&self, ids: &[i64], state: &'static str) {
        for id in ids {
            self.bus.publish(BusEvent::Faucet {
                id: *id,
                state: state.to_string(),
            });
        }
        self.metrics
            .faucet_requests
            .get_or_create(&StateLabel { state })
            .inc_by(ids.len() as u64);
    }

    /// Batches `sending` (left by a crash) or `needs_attention`: look for
    /// their tag in the wallet. Never sends.
    async fn reconcile(&self, round: &mut Round) {
        let open = self
            .store
            .read(|conn| {
                let mut batches = db::batches_in(conn, "sending")?;
                batches.extend(db::batches_in(conn, "needs_attention")?);
                Ok(batches)
            })
            .await;
        let batches = match open {
            Ok(batches) => batches,
            Err(e) => {
                tracing::warn!(error = %e, "faucet: cannot read open batches");
                return;
            }
        };
        for batch in batches {
            if batch.prebuilt && batch.state == "sending" {
                if batch.txid.is_none() {
                    // Interrupted before its transaction was committed:
                    // nothing is broadcast before that commit.
                    self.fail(
                        &batch,
                        "interrupted before its transaction was committed; nothing was broadcast",
                        round,
                    )
                    .await;
                } else if self.send_committed(&batch, None).await {
                    round.reconciled.push(batch.id);
                }
                continue;
            }
            // Known transaction (txid first): its txid, never a tag, says
            // whether it pays. A reopened batch whose transaction is back in
            // the mempool or a block (the conflict reorged away) is paid.
            if let Some(txid) = batch.txid.clone() {
                if let Ok(Some(tx)) = self.wallet.transaction(&txid).await
                    && tx.in_mempool_or_chain
                    && tx.confirmations >= 0
                    && tx.replaced_by_txid.is_none()
                    && self
                        .record_paid(batch.id, &txid, tx.fee_sat.map(i64::abs))
                        .await
                {
                    tracing::warn!(batch = batch.id, %txid, "faucet: batch's transaction is live again and recorded paid");
                    round.reconciled.push(batch.id);
                }
                continue;
            }
            let id = batch.id;
            let outputs = match self
                .store
                .read(move |conn| db::batch_outputs(conn, id))
                .await
            {
                Ok(outputs) => outputs,
                Err(e) => {
                    tracing::warn!(batch = id, error = %e, "faucet: cannot read a batch's outputs");
                    continue;
                }
            };
            match self.wallet.find_by_tag(&batch.tag).await {
                Ok(txs) if paying(&txs, &outputs).is_some() => {
                    if txs.len() > 1 {
                        tracing::error!(
                            batch = batch.id,
                            count = txs.len(),
                            "faucet: several wallet transactions carry one batch tag"
                        );
                    }
                    let tx = paying(&txs, &outputs).expect("checked");
                    let fee = tx.fee_sat.map(i64::abs);
                    if self.record_paid(batch.id, &tx.txid, fee).await {
                        tracing::info!(batch = batch.id, txid = %tx.txid, "faucet: batch found in the wallet and recorded paid");
                        round.reconciled.push(batch.id);
                    }
                }
                Ok(txs) if batch.state == "sending" && !txs.is_empty() => {
                    self.needs_attention(
                        batch.id,
                        "left sending by a restart; the wallet's transactions with this batch's tag are replaced, conflicted, abandoned or pay other outputs",
                        round,
                    )
                    .await;
                }
                Ok(_) if batch.state == "sending" => {
                    self.needs_attention(
                        batch.id,
                        "left sending by a restart and not found in the wallet: cannot prove it was never sent",
                        round,
                    )
                    .await;
                }
                Err(e) if batch.state == "sending" => {
                    self.needs_attention(
                        batch.id,
                        &format!("left sending by a restart; wallet lookup failed: {e}"),
                        round,
                    )
                    .await;
                }
                // needs_attention and still not found: stays for the admin.
                Ok(_) | Err(_) => {}
            }
        }
    }

    /// Paid batches until final (`payouts.confirmations` deep): a fee bump
    /// that pays the same outputs is followed; a drop from the mempool sends
    /// the same bytes again; a mined conflict, a replacement paying other
    /// outputs or a wallet that forgot the transaction reopens the batch for
    /// the admin (its money stays `sent`: the transaction may still
    /// confirm); a reorg that takes confirmations away is noted.
    async fn follow_paid(&self) {
        let Ok(batches) = self.store.read(db::paid_unfinal).await else {
            return;
        };
        for batch in batches {
            let Some(txid) = batch.txid.clone() else {
                continue;
            };
            let tx = match self.wallet.transaction(&txid).await {
                Ok(Some(tx)) => tx,
                Ok(None) => {
                    self.reopen(
                        &batch,
                        &format!("the wallet does not know transaction {txid} any more"),
                    )
                    .await;
                    continue;
                }
                Err(_) => continue, // node unavailable: next round
            };
            if let Some(replacement) = tx.replaced_by_txid.clone() {
                let id = batch.id;
                let outputs = self
                    .store
                    .read(move |conn| db::batch_outputs(conn, id))
                    .await;
                match (self.wallet.transaction(&replacement).await, outputs) {
                    (Ok(Some(new)), Ok(outputs)) if new.pays_exactly(&outputs) => {
                        let (fee, hex, new_txid) = (
                            new.fee_sat.map(i64::abs),
                            new.hex.clone(),
                            replacement.clone(),
                        );
                        match self
                            .store
                            .write(move |ctx| {
                                db::record_replacement(ctx, id, &new_txid, hex.as_deref(), fee)
                            })
                            .await
                        {
                            Ok(()) => {
                                tracing::warn!(batch = id, old = %txid, new = %replacement, "faucet: payment replaced (fee bump); following the replacement")
                            }
                            Err(e) => {
                                tracing::error!(batch = id, error = %e, "faucet: could not record a replacement")
                            }
                        }
                    }
                    (Ok(_), Ok(_)) => {
                        self.reopen(&batch, &format!("transaction {txid} was replaced by {replacement}, which does not pay the batch")).await;
                    }
                    _ => {} // lookups failed: next round
                }
                continue;
            }
            if tx.confirmations < 0 {
                let conflicts = if tx.wallet_conflicts.is_empty() {
                    "a transaction the wallet does not name".to_string()
                } else {
                    tx.wallet_conflicts.join(", ")
                };
                self.reopen(
                    &batch,
                    &format!(
                        "transaction {txid} conflicts with mined transaction {conflicts} ({} confirmation(s)), which spent one of its inputs: this payment did not happen. Retry or Failed once the conflict has {} confirmation(s)",
                        -tx.confirmations,
                        self.settings.depth
                    ),
                )
                .await;
                continue;
            }
            if tx.confirmations == 0 && !tx.in_mempool_or_chain {
                // Dropped but still in the wallet: the same bytes again,
                // never a new transaction while this one can confirm.
                if let Some(hex) = batch.tx_hex.as_deref()
                    && let Err(e) = self.wallet.broadcast(hex).await
                {
                    tracing::warn!(batch = batch.id, %txid, error = %e, "faucet: rebroadcast of a dropped payment not accepted");
                    self.set_last_error(Some(format!(
                        "{txid} is not in the mempool; rebroadcast not accepted: {e}"
                    )));
                }
                continue;
            }
            let before = batch.confirmations.unwrap_or(0);
            let confirmations = tx.confirmations;
            let final_ = confirmations >= self.settings.depth;
            let note = (confirmations < before).then(|| {
                format!(
                    "reorg: {txid} had {before} confirmation(s), now {confirmations}; followed until {}",
                    self.settings.depth
                )
            });
            if batch.confirmations == Some(confirmations) && !final_ {
                continue;
            }
            if note.is_some() {
                tracing::warn!(batch = batch.id, %txid, before, confirmations, "faucet: payment lost confirmations in a reorg");
            }
            let id = batch.id;
            if let Err(e) = self
                .store
                .write(move |ctx| {
                    db::set_confirmations(ctx, id, confirmations, final_, note.as_deref())
                })
                .await
            {
                tracing::warn!(batch = id, error = %e, "faucet: could not record confirmations");
            } else if final_ {
                tracing::info!(batch = id, %txid, confirmations, "faucet payment final");
                if let Err(e) = self.wallet.unlock(&batch.inputs).await {
                    tracing::warn!(batch = id, error = %e, "faucet: could not unlock a final batch's inputs");
                }
            }
        }
    }

    /// A paid batch back to `needs_attention` (its requests stay paid).
    async fn reopen(&self, batch: &db::Batch, note: &str) {
        tracing::error!(batch = batch.id, note, "faucet payment needs attention");
        let (id, owned) = (batch.id, note.to_string());
        match self
            .store
            .write(move |ctx| db::reopen(ctx, id, &owned))
            .await
        {
            Ok(()) => self.set_last_error(Some(format!("faucet batch {id}: {note}"))),
            Err(e) => tracing::warn!(batch = id, error = %e, "faucet: could not reopen a batch"),
        }
    }

    /// Paid batches whose fee the wallet did not tell at the time.
    async fn fill_fees(&self) {
        let Ok(batches) = self.store.read(db::paid_without_fee).await else {
            return;
        };
        for batch in batches {
            let Some(txid) = batch.txid.clone() else {
                continue;
            };
            if let Ok(Some(tx)) = self.wallet.transaction(&txid).await
                && let Some(fee) = tx.fee_sat
            {
                let fee = fee.abs();
                let id = batch.id;
                if let Err(e) = self
                    .store
                    .write(move |ctx| db::record_fee(ctx, id, fee))
                    .await
                {
                    tracing::warn!(batch = id, error = %e, "faucet: could not record a batch fee");
                }
            }
        }
    }

    async fn pay_queued(&self, round: &mut Round) {
        let limit = self.settings.max_outputs_per_batch;
        let queued = match self.store.read(move |conn| db::queued(conn, limit)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "faucet: cannot read the queue");
                return;
            }
        };
        if queued.is_empty() {
            return;
        }
        let estimate = match self.wallet.estimate_fee_rate().await {
            Ok(estimate) => estimate,
            Err(e) => {
                tracing::debug!(error = %e, "faucet: no fee estimate; using the fallback");
                None
            }
        };
        let fee_rate = rules::fee_rate(
            estimate,
            self.settings.fallback_fee_rate_sat_vb,
            self.settings.max_fee_rate_sat_vb,
        );
        let ids: Vec<i64> = queued.iter().map(|r| r.id).collect();
        let prebuilt = self.wallet.kind() == "bitcoind";
        // 1. The intent, durable before any call that can spend.
        let intent = match self
            .store
            .write(move |ctx| db::open_batch(ctx, &ids, fee_rate, prebuilt))
            .await
        {
            Ok(Some(intent)) => intent,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "faucet: could not open a batch; nothing sent");
                return;
            }
        };
        let batch = intent.batch;
        self.publish(&batch.request_ids, "sending");
        if prebuilt {
            self.build_and_send(&batch, &intent.outputs, fee_rate, round)
                .await;
            return;
        }
        match self
            .wallet
            .send_many(&intent.outputs, &batch.tag, fee_rate)
            .await
        {
            Ok(txid) => {
                let fee = match self.wallet.transaction(&txid).await {
                    Ok(Some(tx)) => tx.fee_sat.map(i64::abs),
                    _ => None,
                };
                if self.record_paid(batch.id, &txid, fee).await {
                    tracing::info!(batch = batch.id, %txid, requests = batch.request_ids.len(), "faucet batch paid");
                    round.paid_batches.push(batch.id);
                }
                self.set_last_error(None);
            }
            Err(e) if e.is_definite() => {
                // Nothing was sent: the requests wait for the next round.
                let note = format!("wallet refused: {e}");
                tracing::error!(batch = batch.id, error = %e, "faucet batch refused by the wallet; requests stay queued");
                self.set_last_error(Some(e.to_string()));
                let id = batch.id;
                let write_note = note.clone();
                match self
                    .store
                    .write(move |ctx| db::mark_failed(ctx, id, &write_note))
                    .await
                {
                    Ok(()) => {
                        self.publish(&batch.request_ids, "queued");
                        round.failed.push(batch.id);
                    }
                    // Left `sending`: the next round reconciles it by tag.
                    Err(e) => {
                        tracing::warn!(batch = id, error = %e, "faucet: could not record a refused batch")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(batch = batch.id, error = %e, "faucet batch: no clear answer from the wallet; reconciling by tag");
                self.set_last_error(Some(e.to_string()));
                match self.wallet.find_by_tag(&batch.tag).await {
                    Ok(txs) if paying(&txs, &intent.outputs).is_some() => {
                        let tx = paying(&txs, &intent.outputs).expect("checked");
                        if self
                            .record_paid(batch.id, &tx.txid, tx.fee_sat.map(i64::abs))
                            .await
                        {
                            round.reconciled.push(batch.id);
                        }
                    }
                    Ok(_) => {
                        self.needs_attention(
                            batch.id,
                            &format!("send had no clear answer ({e}) and the wallet has no transaction with this tag yet"),
                            round,
                        )
                        .await;
                    }
                    Err(lookup) => {
                        self.needs_attention(
                            batch.id,
                            &format!("send had no clear answer ({e}); wallet lookup failed too ({lookup})"),
                            round,
                        )
                        .await;
                    }
                }
            }
        }
    }

    /// The txid-first payment of a committed `sending` batch: fund and sign
    /// (nothing leaves the node, nothing is locked), commit txid and bytes,
    /// then lock and broadcast.
    async fn build_and_send(
        &self,
        batch: &db::Batch,
        outputs: &[Output],
        fee_rate: u64,
        round: &mut Round,
    ) {
        let signed = match self.wallet.fund_and_sign(outputs, fee_rate).await {
            Ok(Some(signed)) => signed,
            Ok(None) => {
                let note = "the wallet backend cannot build a transaction without sending it";
                self.set_last_error(Some(note.into()));
                self.fail(batch, note, round).await;
                return;
            }
            Err(e) => {
                // Funding and signing broadcast nothing, whatever the
                // answer: the batch provably paid nothing.
                tracing::error!(batch = batch.id, error = %e, "faucet batch: the wallet could not build it; requests stay queued");
                self.set_last_error(Some(e.to_string()));
                self.fail(
                    batch,
                    &format!("the wallet could not build the transaction: {e}"),
                    round,
                )
                .await;
                return;
            }
        };
        crash::point("faucet_signed");
        let (id, txid, hex, inputs) = (
            batch.id,
            signed.txid.clone(),
            signed.hex.clone(),
            signed.inputs.clone(),
        );
        if let Err(e) = self
            .store
            .write(move |ctx| db::set_tx(ctx, id, &txid, &hex, &inputs))
            .await
        {
            // Not committed, so not broadcast: the next round finds the
            // batch without a txid and requeues its requests.
            tracing::warn!(batch = id, error = %e, "faucet: could not commit the signed transaction; nothing sent");
            return;
        }
        crash::point("faucet_committed");
        let batch = db::Batch {
            txid: Some(signed.txid.clone()),
            tx_hex: Some(signed.hex.clone()),
            inputs: signed.inputs.clone(),
            ..batch.clone()
        };
        if self.send_committed(&batch, Some(signed.fee_sat)).await {
            tracing::info!(batch = batch.id, txid = %signed.txid, requests = batch.request_ids.len(), "faucet batch paid");
            round.paid_batches.push(batch.id);
            self.set_last_error(None);
        }
    }

    /// Locks a committed batch's inputs and broadcasts its transaction
    /// (the first time and after a crash or an unclear answer: always the
    /// same bytes); records it paid once the node has it. True when this
    /// call recorded it.
    async fn send_committed(&self, batch: &db::Batch, fee_sat: Option<i64>) -> bool {
        let (Some(txid), Some(hex)) = (batch.txid.as_deref(), batch.tx_hex.as_deref()) else {
            return false;
        };
        if let Err(e) = self.wallet.lock(&batch.inputs).await {
            tracing::warn!(batch = batch.id, error = %e, "faucet: could not lock the batch's inputs");
        }
        let fee_sat = match self.wallet.broadcast(hex).await {
            Ok(_) => fee_sat,
            Err(e) => match self.wallet.transaction(txid).await {
                // Sent before (an earlier attempt whose answer was lost).
                Ok(Some(tx)) if tx.in_mempool_or_chain => tx.fee_sat.map(i64::abs).or(fee_sat),
                // A mined conflict spent an input: it will never be
                // accepted. For the admin (Retry/Failed once it is deep).
                Ok(Some(tx)) if tx.confirmations < 0 => {
                    let note = format!(
                        "transaction {txid} conflicts with mined transaction {} ({} confirmation(s)) and was refused: {e}. Retry or Failed once the conflict has {} confirmation(s)",
                        tx.wallet_conflicts.join(", "),
                        -tx.confirmations,
                        self.settings.depth
                    );
                    let mut round = Round::default();
                    self.needs_attention(batch.id, &note, &mut round).await;
                    return false;
                }
                _ => {
                    tracing::warn!(batch = batch.id, txid, error = %e, "faucet: broadcast not accepted yet; the same transaction is sent again next round");
                    self.set_last_error(Some(format!("broadcast of {txid}: {e}")));
                    return false;
                }
            },
        };
        crash::point("faucet_broadcast");
        let recorded = self.record_paid(batch.id, txid, fee_sat).await;
        if recorded {
            // In the mempool: the wallet will not spend these inputs again.
            if let Err(e) = self.wallet.unlock(&batch.inputs).await {
                tracing::warn!(batch = batch.id, error = %e, "faucet: could not unlock a paid batch's inputs");
            }
        }
        recorded
    }

    /// A batch that provably paid nothing: its requests wait for the next
    /// round (a new batch).
    async fn fail(&self, batch: &db::Batch, note: &str, round: &mut Round) {
        let (id, note) = (batch.id, note.to_string());
        match self
            .store
            .write(move |ctx| db::mark_failed(ctx, id, &note))
            .await
        {
            Ok(()) => {
                self.publish(&batch.request_ids, "queued");
                round.failed.push(batch.id);
            }
            Err(e) => {
                tracing::warn!(batch = id, error = %e, "faucet: could not record a failed batch")
            }
        }
    }

    /// Records a batch paid; true when this call changed it.
    async fn record_paid(&self, batch_id: i64, txid: &str, fee_sat: Option<i64>) -> bool {
        let txid_owned = txid.to_string();
        match self
            .store
            .write(move |ctx| db::mark_paid(ctx, batch_id, &txid_owned, fee_sat))
            .await
        {
            Ok(ids) => {
                self.publish(&ids, "paid");
                !ids.is_empty()
            }
            Err(e) => {
                // The batch stays open; the next round finds it by tag.
                tracing::error!(batch = batch_id, %txid, error = %e, "faucet: batch paid but not recorded yet");
                false
            }
        }
    }

    async fn needs_attention(&self, batch_id: i64, note: &str, round: &mut Round) {
        tracing::error!(
            batch = batch_id,
            note,
            "faucet batch needs attention: it will not be resent automatically"
        );
        let note = note.to_string();
        match self
            .store
            .write(move |ctx| db::mark_needs_attention(ctx, batch_id, &note))
            .await
        {
            Ok(ids) => {
                self.publish(&ids, "needs_attention");
                round.needs_attention.push(batch_id);
            }
            Err(e) => {
                tracing::warn!(batch = batch_id, error = %e, "faucet: could not record needs_attention")
            }
        }
    }
}

/// Among the wallet's transactions carrying a batch's tag, the one that
/// pays it: not replaced, conflicted or abandoned, and paying exactly the
/// batch's outputs (a tag alone proves nothing: it repeats after a ledger
/// restore or on a second install sharing the wallet).
fn paying<'a>(txs: &'a [WalletTx], outputs: &[Output]) -> Option<&'a WalletTx> {
    txs.iter()
        .filter(|t| {
            t.replaced_by_txid.is_none()
                && t.confirmations >= 0
                && !t.abandoned
                && t.pays_exactly(outputs)
        })
        .max_by_key(|t| (t.confirmations, t.in_mempool_or_chain))
}
