//! Payouts: withdrawals, approval, batches through the wallet (hot
//! `sendmany` or cold PSBT), reconciliation and confirmation tracking.
//!
//! Never pay twice:
//! - A batch row, its tag and its withdrawals are committed **before** any
//!   RPC that can spend. The tag (`pooldesk batch <id>`) is the wallet
//!   comment, so the transaction can always be found again.
//! - After a crash, a timeout or an ambiguous error, a batch stays in
//!   `sending` and is reconciled against the wallet by its tag before
//!   anything else happens; what cannot be proven goes to
//!   `needs_attention` for an admin and is never resent automatically.
//! - Cold batches know their txid before broadcasting, so re-broadcasting
//!   the same signed transaction is the (safe) retry.
//! - Only one batch operation runs at a time (a mutex), and no new batch
//!   starts while an earlier one is unresolved.

mod batch;
mod cold;
pub mod control;
pub mod crash;
pub mod db;
#[cfg(test)]
mod tests;

use std::sync::{Arc, RwLock};

use pooldesk_proto::model::{
    ApprovalResult, Snapshot, WalletHealth, Warning, WithdrawalPage, WithdrawalRow,
};
use tokio::sync::{Mutex, Notify};

use crate::audit::{self, Actor};
use crate::config::{Config, PayoutMode, PayoutsConfig};
use crate::events::{BusEvent, EventBus};
use crate::ledger::LedgerError;
use crate::miners::{self, MinerRecord};
use crate::store::{StorageFault, Store, StoreError, WriteError};
use crate::wallet::{Wallet, WalletError};
pub use batch::BatchOutcome;
pub use db::verify;

#[derive(Debug, thiserror::Error)]
pub enum PayoutError {
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{what} is {state}")]
    WrongState { what: String, state: String },
    #[error("{0}")]
    Invalid(String),
    #[error("amount is below the minimum payout of {min_sat} sat")]
    BelowMinimum { min_sat: i64 },
    #[error("insufficient balance: {balance_msat} msat available, {amount_msat} msat requested")]
    InsufficientFunds { balance_msat: i64, amount_msat: i64 },
    #[error("set a payout address first (POST /api/miner/payout_address)")]
    NoPayoutAddress,
    #[error("{0}")]
    Conflict(String),
    #[error("event_id {0:?} was already used by this miner; every signed change needs a new one")]
    DuplicateEvent(String),
    #[error("the signed PSBT does not match the reviewed one")]
    PsbtMismatch(Vec<String>),
    /// Payouts cannot go now (paused, fees too high, node down, shortfall…).
    #[error("payouts are waiting: {0}")]
    Waiting(String),
    #[error("nothing to pay: {0}")]
    Nothing(String),
    #[error("the node refused: {0}")]
    Node(String),
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("payouts storage error: {0}")]
    Db(#[from] rusqlite::Error),
}

impl PayoutError {
    pub fn from_ledger(e: LedgerError) -> PayoutError {
        match e {
            LedgerError::InsufficientFunds {
                balance_msat,
                amount_msat,
                ..
            } => PayoutError::InsufficientFunds {
                balance_msat,
                amount_msat,
            },
            LedgerError::Db(e) => PayoutError::Db(e),
            other => PayoutError::Invalid(other.to_string()),
        }
    }
}

impl StorageFault for PayoutError {
    fn storage_fault(&self) -> Option<String> {
        match self {
            PayoutError::Db(e) => Some(e.to_string()),
            _ => None,
        }
    }
}

impl From<WriteError<PayoutError>> for PayoutError {
    fn from(e: WriteError<PayoutError>) -> Self {
        match e {
            WriteError::Rejected(e) => e,
            WriteError::Store(e) => PayoutError::Store(e),
        }
    }
}

/// Setting key: payouts paused by an admin (value: who and why).
const PAUSED_KEY: &str = "payouts_paused";

#[derive(Clone)]
pub struct Payouts {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    wallet: Wallet,
    bus: EventBus,
    config: PayoutsConfig,
    network: crate::config::Network,
    /// One batch operation at a time.
    lock: Mutex<()>,
    health: RwLock<WalletHealth>,
    /// Conditions that hold payouts back right now (fees, shortfall, …),
    /// refreshed by the worker; shown as warnings.
    waiting: RwLock<Vec<Warning>>,
    /// Automatic batches back off after definite build failures.
    backoff: std::sync::Mutex<batch::Backoff>,
    wake: Notify,
}

/// One payment of the seed's `batch_payout` body.
#[derive(Debug, Clone)]
pub struct Payment {
    pub miner_id: String,
    pub to_address: String,
    pub amount_sat: i64,
}

impl Payouts {
    pub fn new(config: &Config, store: Store, wallet: Wallet, bus: EventBus) -> Payouts {
        Payouts {
            inner: Arc::new(Inner {
                store,
                health: RwLock::new(WalletHealth {
                    backend: wallet.kind().to_string(),
                    ..WalletHealth::default()
                }),
                wallet,
                bus,
                config: config.payouts.clone(),
                network: config.network,
                lock: Mutex::new(()),
                waiting: RwLock::new(Vec::new()),
                backoff: std::sync::Mutex::new(batch::Backoff::default()),
                wake: Notify::new(),
            }),
        }
    }

    pub fn mode(&self) -> PayoutMode {
        self.inner.config.mode
    }

    pub fn config(&self) -> &PayoutsConfig {
        &self.inner.config
    }

    fn publish_withdrawal(&self, w: &db::Withdrawal) {
        self.inner.bus.publish(BusEvent::Withdrawal(w.row()));
    }

    fn publish_audit(&self, entry: pooldesk_proto::model::AuditEntry) {
        self.inner.bus.publish(BusEvent::Audit(entry));
    }

    /// Validates an address for the configured network.
    pub fn check_address(&self, address: &str) -> Result<String, PayoutError> {
        crate::wallet::parse_address(address, self.inner.network)
            .map(|a| a.to_string())
            .map_err(PayoutError::Invalid)
    }

    /// Sets a miner's payout address (signed by the miner). A new address
    /// becomes payable after `payouts.new_address_delay_s`.
    pub async fn set_payout_address(
        &self,
        miner: &MinerRecord,
        address: &str,
        threshold_sat: Option<i64>,
        event_id: &str,
    ) -> Result<(MinerRecord, i64), PayoutError> {
        crate::replay::validate_event_id(event_id).map_err(PayoutError::Invalid)?;
        let event_id = event_id.to_string();
        let address = self.check_address(address)?;
        // Paying the pool's own wallet would take the money off the ledger
        // while keeping it: refused, and when the wallet cannot be asked
        // the change is refused too (never assumed safe).
        match self.inner.wallet.is_mine(&address).await {
            Ok(false) => {}
            Ok(true) => {
                return Err(PayoutError::Invalid(
                    "that address belongs to the pool's own wallet".into(),
                ));
            }
            Err(e) => {
                return Err(PayoutError::Node(format!(
                    "cannot check that the address is not the pool's own (wallet: {e}); nothing was changed, try again later"
                )));
            }
        }
        if let Some(t) = threshold_sat
            && t < self.inner.config.min_payout_btc.sat()
        {
            return Err(PayoutError::BelowMinimum {
                min_sat: self.inner.config.min_payout_btc.sat(),
            });
        }
        let id = miner.id.clone();
        let delay = self.inner.config.new_address_delay_s as i64;
        let (record, entry) = self
            .inner
            .store
            .write(move |ctx| {
                if !crate::replay::remember(ctx, &id, &event_id, "payout_address")? {
                    return Err(PayoutError::DuplicateEvent(event_id.clone()));
                }
                let before = miners::get(ctx.conn, &id)?;
                let record = miners::set_payout_address(ctx, &id, &address, threshold_sat)
                    .map_err(|e| match e {
                        miners::MinerError::Db(e) => PayoutError::Db(e),
                        other => PayoutError::Invalid(other.to_string()),
                    })?;
                let changed = before.and_then(|b| b.payout_address) != Some(address.clone());
                let entry = audit::record(
                    ctx,
                    &Actor::Miner(id.clone()),
                    if changed {
                        "set_payout_address"
                    } else {
                        "confirm_payout_address"
                    },
                    &id,
                    &format!("{address} (payable after {delay} s)"),
                )?;
                Ok::<_, PayoutError>((record, entry))
            })
            .await?;
        self.publish_audit(entry);
        let payable_at = record.payout_address_set_at.unwrap_or(0) + delay;
        Ok((record, payable_at))
    }

    /// A miner asks for `amount_sat` to its payout address. The amount moves
    /// to the held account at once. `event_id` makes retries idempotent.
    pub async fn request(
        &self,
        miner: &MinerRecord,
        amount_sat: i64,
        event_id: &str,
    ) -> Result<db::Withdrawal, PayoutError> {
        let min = self.inner.config.min_payout_btc.sat();
        if amount_sat < min {
            return Err(PayoutError::BelowMinimum { min_sat: min });
        }
        let address = miner
            .payout_address
            .clone()
            .ok_or(PayoutError::NoPayoutAddress)?;
        let payable_at =
            miner.payout_address_set_at.unwrap_or(0) + self.inner.config.new_address_delay_s as i64;
        let auto = amount_sat < self.inner.config.auto_approve_below_btc.sat();
        self.create(
            Actor::Miner(miner.id.clone()),
            miner.id.clone(),
            address,
            amount_sat,
            "miner",
            (miner.id.clone(), event_id.to_string()),
            payable_at,
            auto,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        actor: Actor,
        miner_id: String,
        address: String,
        amount_sat: i64,
        source: &'static str,
        (request_owner, request_ref): (String, String),
        payable_at: i64,
        auto_approve: bool,
    ) -> Result<db::Withdrawal, PayoutError> {
        let (withdrawal, entries) = self
            .inner
            .store
            .write(move |ctx| {
                let approved_by = auto_approve.then_some("auto");
                let (w, created) = db::insert_withdrawal(
                    ctx,
                    &db::NewWithdrawal {
                        miner_id: &miner_id,
                        address: &address,
                        amount_sat,
                        source,
                        request_owner: &request_owner,
                        request_ref: &request_ref,
                        payable_at: payable_at.max(ctx.now_s),
                        approved_by,
                    },
                )?;
                let mut entries = Vec::new();
                if created {
                    entries.push(audit::record(
                        ctx,
                        &actor,
                        "request_withdrawal",
                        &format!("withdrawal:{}", w.id),
                        &format!("{} sat from {} to {}", w.amount_sat, w.miner_id, w.address),
                    )?);
                    if auto_approve {
                        entries.push(audit::record(
                            ctx,
                            &Actor::System,
                            "approve",
                            &format!("withdrawal:{}", w.id),
                            "auto-approved: below payouts.auto_approve_below_btc",
                        )?);
                    }
                }
                Ok::<_, PayoutError>((w, entries))
            })
            .await?;
        self.publish_withdrawal(&withdrawal);
        for entry in entries {
            self.publish_audit(entry);
        }
        Ok(withdrawal)
    }

    /// Approves requested withdrawals; each id answers on its own.
    pub async fn approve(
        &self,
        actor: Actor,
        ids: Vec<i64>,
    ) -> Result<Vec<ApprovalResult>, PayoutError> {
        let mut results = Vec::with_capacity(ids.len());
        for id in ids {
            let who = actor.to_string();
            let actor = actor.clone();
            let outcome = self
                .inner
                .store
                .write(move |ctx| {
                    let w = db::transition(ctx, id, &["requested"], "approved", Some(&who), None)?;
                    let entry = audit::record(
                        ctx,
                        &actor,
                        "approve",
                        &format!("withdrawal:{id}"),
                        &format!("{} sat from {} to {}", w.amount_sat, w.miner_id, w.address),
                    )?;
                    Ok::<_, PayoutError>((w, entry))
                })
                .await;
            match outcome {
                Ok((w, entry)) => {
                    self.publish_withdrawal(&w);
                    self.publish_audit(entry);
                    results.push(ApprovalResult {
                        id,
                        ok: true,
                        state: Some(w.state),
                        error: None,
                    });
                }
                Err(WriteError::Store(e)) => return Err(e.into()),
                Err(WriteError::Rejected(e)) => results.push(ApprovalResult {
                    id,
                    ok: false,
                    state: None,
                    error: Some(e.to_string()),
                }),
            }
        }
        // Approved withdrawals go out with the next batch (the worker's
        // interval, or an admin's `send_batch`), not instantly: approval
        // and sending are separate decisions.
        Ok(results)
    }

    /// Rejects a withdrawal that has not gone out; the money returns to the
    /// miner.
    pub async fn reject(
        &self,
        actor: Actor,
        id: i64,
        reason: String,
    ) -> Result<db::Withdrawal, PayoutError> {
        let reason = reason.trim().to_string();
        if reason.is_empty() {
            return Err(PayoutError::Invalid(
                "a reason is required to reject a withdrawal".into(),
            ));
        }
        let who = actor.to_string();
        let (w, entry) = self
            .inner
            .store
            .write(move |ctx| {
                let w =
                    db::get_withdrawal(ctx.conn, id)?.ok_or(PayoutError::NotFound("withdrawal"))?;
                if !["requested", "approved"].contains(&w.state.as_str()) {
                    return Err(PayoutError::WrongState {
                        what: format!("withdrawal {id}"),
                        state: w.state,
                    });
                }
                let w = db::release(ctx, &w, "rejected", Some(&who), &reason)?;
                let entry =
                    audit::record(ctx, &actor, "reject", &format!("withdrawal:{id}"), &reason)?;
                Ok((w, entry))
            })
            .await?;
        self.publish_withdrawal(&w);
        self.publish_audit(entry);
        Ok(w)
    }

    pub async fn list(
        &self,
        state: Option<String>,
        offset: u32,
        limit: Option<u32>,
    ) -> Result<WithdrawalPage, PayoutError> {
        if let Some(s) = &state
            && ![
                "requested",
                "approved",
                "batched",
                "broadcast",
                "confirmed",
                "rejected",
                "failed",
                "needs_attention",
            ]
            .contains(&s.as_str())
        {
            return Err(PayoutError::Invalid(format!("unknown state {s:?}")));
        }
        let limit = limit.unwrap_or(100).clamp(1, 1000);
        let (total, rows) = self
            .inner
            .store
            .read(move |conn| db::list_withdrawals(conn, state.as_deref(), offset, limit))
            .await?;
        Ok(WithdrawalPage {
            total,
            offset,
            rows: rows.iter().map(db::Withdrawal::row).collect(),
        })
    }

    pub async fn withdrawals_of_miner(
        &self,
        miner_id: String,
    ) -> Result<Vec<WithdrawalRow>, PayoutError> {
        let rows = self
            .inner
            .store
            .read(move |conn| db::withdrawals_of_miner(conn, &miner_id, 20))
            .await?;
        Ok(rows.iter().map(db::Withdrawal::row).collect())
    }

    pub async fn withdrawal(&self, id: i64) -> Result<db::Withdrawal, PayoutError> {
        self.inner
            .store
            .read(move |conn| db::get_withdrawal(conn, id))
            .await?
            .ok_or(PayoutError::NotFound("withdrawal"))
    }

    /// The seed's `batch_payout`: every payment is validated and held in one
    /// transaction (all or nothing), approved by the admin who sent it, and
    /// paid as one batch.
    pub async fn batch_payout(
        &self,
        actor: Actor,
        payments: Vec<Payment>,
        request_id: Option<String>,
    ) -> Result<BatchOutcome, PayoutError> {
        if payments.is_empty() {
            return Err(PayoutError::Invalid("payments must not be empty".into()));
        }
        if payments.len() > self.inner.config.max_outputs_per_batch {
            return Err(PayoutError::Invalid(format!(
                "at most {} payments per batch (payouts.max_outputs_per_batch)",
                self.inner.config.max_outputs_per_batch
            )));
        }
        let min = self.inner.config.min_payout_btc.sat();
        let mut checked = Vec::with_capacity(payments.len());
        for (i, p) in payments.into_iter().enumerate() {
            miners::validate_id("miner_id", &p.miner_id)
                .map_err(|e| PayoutError::Invalid(format!("payments[{i}]: {e}")))?;
            let address = self
                .check_address(&p.to_address)
                .map_err(|e| PayoutError::Invalid(format!("payments[{i}]: {e}")))?;
            if p.amount_sat <= 0 {
                return Err(PayoutError::Invalid(format!(
                    "payments[{i}]: amount must be greater than zero"
                )));
            }
            if p.amount_sat < min {
                return Err(PayoutError::Invalid(format!(
                    "payments[{i}]: amount is below the minimum payout of {min} sat"
                )));
            }
            checked.push(Payment {
                to_address: address,
                ..p
            });
        }
        let request_id = request_id.unwrap_or_else(|| {
            format!("{}-{:016x}", crate::clock::now_ms(), rand::random::<u64>())
        });
        let who = actor.to_string();
        let audit_actor = actor.clone();
        let (withdrawals, entries) = self
            .inner
            .store
            .write(move |ctx| {
                let mut withdrawals = Vec::new();
                let mut entries = Vec::new();
                for (i, p) in checked.iter().enumerate() {
                    let index = i.to_string();
                    if miners::get(ctx.conn, &p.miner_id)?.is_none() {
                        return Err(PayoutError::Invalid(format!("payments[{i}]: no miner {:?}", p.miner_id)));
                    }
                    let (w, created) = db::insert_withdrawal(
                        ctx,
                        &db::NewWithdrawal {
                            miner_id: &p.miner_id,
                            address: &p.to_address,
                            amount_sat: p.amount_sat,
                            source: "admin",
                            request_owner: &request_id,
                            request_ref: &index,
                            payable_at: ctx.now_s,
                            approved_by: Some(&who),
                        },
                    )
                    .map_err(|e| match e {
                        PayoutError::InsufficientFunds {
                            balance_msat,
                            amount_msat,
                        } => PayoutError::Invalid(format!(
                            "payments[{i}]: miner {} has {balance_msat} msat, the payment needs {amount_msat} msat",
                            p.miner_id
                        )),
                        other => other,
                    })?;
                    if created {
                        entries.push(audit::record(
                            ctx,
                            &audit_actor,
                            "batch_payout",
                            &format!("withdrawal:{}", w.id),
                            &format!("{} sat from {} to {}", w.amount_sat, w.miner_id, w.address),
                        )?);
                    }
                    withdrawals.push(w);
                }
                Ok::<_, PayoutError>((withdrawals, entries))
            })
            .await?;
        for w in &withdrawals {
            self.publish_withdrawal(w);
        }
        for entry in entries {
            self.publish_audit(entry);
        }
        let ids: Vec<i64> = withdrawals
            .iter()
            .filter(|w| w.state == "approved")
            .map(|w| w.id)
            .collect();
        if ids.is_empty() {
            // A retry of a request already paid: answer its batch.
            let batch_id = withdrawals.iter().find_map(|w| w.batch_id).ok_or_else(|| {
                PayoutError::Conflict(
                    "this request_id was already used and its withdrawals are not pending".into(),
                )
            })?;
            return self.batch_outcome(batch_id, None).await;
        }
        self.send_batch(actor, ids).await
    }

    /// Pauses or resumes automatic and manual payouts.
    pub async fn set_paused(&self, actor: Actor, paused: bool) -> Result<(), PayoutError> {
        let who = actor.to_string();
        let entry = self
            .inner
            .store
            .write(move |ctx| {
                if paused {
                    db::set_setting(ctx, PAUSED_KEY, &format!("paused by {who}"))?;
                } else {
                    ctx.conn
                        .execute("DELETE FROM settings WHERE key = ?1", [PAUSED_KEY])?;
                }
                Ok::<_, PayoutError>(audit::record(
                    ctx,
                    &actor,
                    if paused {
                        "pause_payouts"
                    } else {
                        "resume_payouts"
                    },
                    "payouts",
                    "",
                )?)
            })
            .await?;
        self.publish_audit(entry);
        self.inner.wake.notify_one();
        Ok(())
    }

    pub async fn paused(&self) -> Result<Option<String>, PayoutError> {
        Ok(self
            .inner
            .store
            .read(|conn| db::setting(conn, PAUSED_KEY))
            .await?)
    }

    /// Health of the node and wallet as last checked.
    pub fn health(&self) -> WalletHealth {
        self.inner.health.read().expect("health lock").clone()
    }

    /// Refreshes node health (called by the worker and on demand).
    pub async fn refresh_health(&self) {
        let status = self.inner.wallet.status().await;
        let estimate = match &status {
            Ok(_) => self.inner.wallet.estimate_fee_rate().await.ok().flatten(),
            Err(_) => None,
        };
        let paused = self.paused().await.ok().flatten().is_some();
        let mut health = self.inner.health.write().expect("health lock");
        health.checked_at = Some(crate::clock::now_s());
        health.payouts_paused = paused;
        match status {
            Ok(s) => {
                health.connected = true;
                health.chain = Some(s.chain);
                health.block_height = Some(s.blocks);
                health.spendable_sat = Some(s.spendable_sat);
                health.fee_estimate_sat_vb = estimate;
                health.last_error = None;
            }
            Err(e) => {
                health.connected = false;
                health.last_error = Some(e.to_string());
            }
        }
    }

    /// Wakes the worker (after approvals, admin requests).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

/// Adds withdrawal counts, wallet health and payout warnings to the
/// snapshot.
pub async fn contribute_to_snapshot(app: &crate::app::App, snapshot: &mut Snapshot) {
    let payouts = &app.payouts;
    match app
        .store
        .read(|conn| {
            Ok((
                db::counts(conn)?,
                db::setting(conn, PAUSED_KEY)?,
                db::batches_in(conn, &["needs_attention"])?.len(),
            ))
        })
        .await
    {
        Ok((counts, paused, attention)) => {
            snapshot.withdrawals = counts;
            if let Some(who) = paused {
                snapshot.warnings.push(Warning {
                    code: "payouts_paused".into(),
                    message: format!("payouts are paused ({who})"),
                });
            }
            if attention > 0 {
                snapshot.warnings.push(Warning {
                    code: "needs_attention".into(),
                    message: format!("{attention} payout batch(es) need an admin decision"),
                });
            }
        }
        Err(e) => tracing::warn!(error = %e, "snapshot: payout counts unavailable"),
    }
    snapshot.wallet = payouts.health();
    if !snapshot.wallet.connected && snapshot.wallet.checked_at.is_some() {
        snapshot.warnings.push(Warning {
            code: "node_unreachable".into(),
            message: format!(
                "the wallet node is unreachable: {}",
                snapshot.wallet.last_error.clone().unwrap_or_default()
            ),
        });
    }
    snapshot.warnings.extend(
        payouts
            .inner
            .waiting
            .read()
            .expect("waiting lock")
            .iter()
            .cloned(),
    );
}

/// The background worker: health, reconciliation, confirmations, automatic
/// withdrawals and batches.
pub async fn run(app: crate::app::App) {
    let payouts = app.payouts.clone();
    let interval = std::time::Duration::from_secs(payouts.inner.config.batch_interval_s);
    let mut health_tick = tokio::time::interval(std::time::Duration::from_secs(5));
    // The first automatic batch comes one interval after start, not at
    // once: a restart must not surprise the admin with a payout.
    let mut batch_tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    health_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    batch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Reconcile whatever a previous run left in flight before anything else.
    payouts.refresh_health().await;
    payouts.reconcile_all().await;
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = health_tick.tick() => {
                payouts.refresh_health().await;
                payouts.reconcile_all().await;
                continue;
            }
            _ = batch_tick.tick() => {}
            _ = payouts.inner.wake.notified() => {}
        }
        if payouts.inner.config.auto_withdraw
            && let Err(e) = payouts.auto_withdraw().await
        {
            tracing::warn!(error = %e, "automatic withdrawals failed");
        }
        payouts.automatic_batch().await;
    }
}
