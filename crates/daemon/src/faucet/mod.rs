//! The test-coin faucet (DESIGN section 8): hashcash instead of a captcha,
//! a cooldown per address and per client, a daily budget, and payment in
//! batches.
//!
//! Flow: `GET /api/faucet/challenge` mints a signed challenge (no write,
//! see [`challenge`]); `POST /api/faucet` checks the address, the challenge
//! and the proof of work, then [`db::admit`] spends the challenge, checks
//! the cooldowns and the budget and holds the amount
//! (`faucet:funding → faucet:held`) in one writer job. The [`worker`] pays
//! queued requests every `faucet.batch_interval_s` in one `sendmany`,
//! committing the batch's intent first so nothing is ever paid twice.
//!
//! The faucet is refused outright on mainnet, whatever the config says.

pub mod challenge;
pub mod db;
pub mod rules;
pub mod worker;

use std::net::IpAddr;
use std::sync::Mutex;

use pooldesk_proto::model::{FaucetRow, FaucetStatus};

use crate::config::{Config, Network};
use crate::events::{BusEvent, EventBus};
use crate::ledger::LedgerError;
use crate::metrics::{Metrics, StateLabel};
use crate::secrets::Secrets;
use crate::store::{StorageFault, Store, StoreError, WriteError};
use crate::wallet::Wallet;
use challenge::{ChallengeError, ChallengeKey};

/// Why a faucet call was refused. Each refusal changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum FaucetError {
    #[error("{0}")]
    Disabled(String),
    #[error("{0}")]
    BadAddress(String),
    #[error("{0}")]
    BadPow(&'static str),
    #[error("the challenge has expired; fetch a new one")]
    ChallengeExpired,
    #[error("one request per {by} per cooldown; try again in {seconds_left} s")]
    TooSoon { seconds_left: u64, by: &'static str },
    #[error("today's faucet budget is spent; it resets at 00:00 UTC")]
    BudgetExhausted { seconds_left: u64 },
    #[error("the faucet wallet cannot be reached right now; nothing was recorded, try again later")]
    WalletUnavailable(String),
    #[error("no such faucet request or batch")]
    NotFound,
    #[error("{0}")]
    WrongState(String),
    #[error("{0}")]
    Invalid(String),
    #[error("faucet ledger error: {0}")]
    Ledger(#[from] LedgerError),
    #[error("faucet storage error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StorageFault for FaucetError {
    fn storage_fault(&self) -> Option<String> {
        match self {
            FaucetError::Db(e) => Some(e.to_string()),
            FaucetError::Ledger(e) => e.storage_fault(),
            _ => None,
        }
    }
}

impl From<WriteError<FaucetError>> for FaucetError {
    fn from(e: WriteError<FaucetError>) -> Self {
        match e {
            WriteError::Rejected(e) => e,
            WriteError::Store(e) => FaucetError::Store(e),
        }
    }
}

impl FaucetError {
    /// The metric label of a refusal.
    pub fn code(&self) -> &'static str {
        match self {
            FaucetError::Disabled(_) => "faucet_disabled",
            FaucetError::BadAddress(_) => "bad_address",
            FaucetError::BadPow(_) => "bad_pow",
            FaucetError::ChallengeExpired => "challenge_expired",
            FaucetError::TooSoon { .. } => "too_soon",
            FaucetError::BudgetExhausted { .. } => "budget_exhausted",
            FaucetError::WalletUnavailable(_) => "wallet_unavailable",
            FaucetError::NotFound => "not_found",
            FaucetError::WrongState(_) => "wrong_state",
            FaucetError::Invalid(_) => "invalid",
            FaucetError::Ledger(_) | FaucetError::Db(_) | FaucetError::Store(_) => "unavailable",
        }
    }
}

/// The faucet's settings, fixed at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub network: Network,
    pub amount_sat: i64,
    pub cooldown_s: u64,
    pub daily_budget_sat: i64,
    pub difficulty_bits: u32,
    pub batch_interval_s: u64,
    pub challenge_ttl_s: u64,
    pub fallback_fee_rate_sat_vb: u64,
    pub max_fee_rate_sat_vb: u64,
    pub max_outputs_per_batch: usize,
    /// Confirmations after which a payment is final, and how deep a
    /// conflicting spend must be before Retry/Failed (`payouts.confirmations`
    /// or the network's default).
    pub depth: i64,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        let f = &config.faucet;
        let disabled_reason = if config.network == Network::Mainnet {
            Some("the faucet never runs on mainnet".to_string())
        } else if !f.enabled {
            Some("the faucet is disabled (faucet.enabled = false)".to_string())
        } else {
            None
        };
        Settings {
            enabled: disabled_reason.is_none(),
            disabled_reason,
            network: config.network,
            amount_sat: f.amount_btc.sat(),
            cooldown_s: f.cooldown_s,
            daily_budget_sat: f.daily_budget_btc.sat(),
            difficulty_bits: f.difficulty_bits,
            batch_interval_s: f.batch_interval_s,
            challenge_ttl_s: f.challenge_ttl_s,
            fallback_fee_rate_sat_vb: config.payouts.fallback_fee_rate_sat_vb,
            max_fee_rate_sat_vb: config.payouts.max_fee_rate_sat_vb,
            max_outputs_per_batch: config.payouts.max_outputs_per_batch.clamp(1, 1000),
            depth: i64::from(config.payouts.depth(config.network)),
        }
    }
}

/// A challenge handed to a client.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub challenge: String,
    pub difficulty_bits: u32,
    pub expires_at: i64,
    pub amount_sat: i64,
}

/// The public view of the faucet (the faucet page shows it).
#[derive(Debug, Clone)]
pub struct PublicStatus {
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub network: &'static str,
    pub amount_sat: i64,
    pub cooldown_s: u64,
    pub difficulty_bits: u32,
    pub daily_budget_sat: i64,
    pub spent_today_sat: i64,
    pub queued: u64,
    /// The last batch failure, if payouts are currently failing.
    pub last_error: Option<String>,
}

pub struct Faucet {
    pub settings: Settings,
    key: ChallengeKey,
    store: Store,
    wallet: Wallet,
    bus: EventBus,
    metrics: Metrics,
    /// Why the last payout round failed, cleared by the next success.
    last_error: Mutex<Option<String>>,
}

impl Faucet {
    pub fn new(
        config: &Config,
        secrets: &Secrets,
        store: Store,
        wallet: Wallet,
        bus: EventBus,
        metrics: Metrics,
    ) -> Faucet {
        Faucet {
            settings: Settings::from_config(config),
            key: ChallengeKey::derive(secrets.master_key.expose()),
            store,
            wallet,
            bus,
            metrics,
            last_error: Mutex::new(None),
        }
    }

    fn count(&self, state: &'static str) {
        self.metrics
            .faucet_requests
            .get_or_create(&StateLabel { state })
            .inc();
    }

    fn check_enabled(&self) -> Result<(), FaucetError> {
        match &self.settings.disabled_reason {
            Some(reason) => Err(FaucetError::Disabled(reason.clone())),
            None => Ok(()),
        }
    }

    /// A fresh challenge. Costs no write.
    pub fn challenge(&self, now_s: i64) -> Result<Challenge, FaucetError> {
        self.check_enabled()?;
        let expires_at = now_s + self.settings.challenge_ttl_s as i64;
        Ok(Challenge {
            challenge: self.key.mint(expires_at),
            difficulty_bits: self.settings.difficulty_bits,
            expires_at,
            amount_sat: self.settings.amount_sat,
        })
    }

    /// Admits one request. Checks, each refusing with nothing changed:
    /// enabled (never on mainnet) → address valid for the network →
    /// challenge ours → not expired → proof of work → not the faucet's own
    /// address → (one writer job) challenge unspent, cooldown by address and
    /// by client, daily budget, hold.
    ///
    /// The wallet is asked about the address only after the proof of work
    /// is checked, so nobody can make the daemon query the node without
    /// paying the work first.
    pub async fn request(
        &self,
        client: IpAddr,
        address: &str,
        challenge: &str,
        nonce: &str,
    ) -> Result<FaucetRow, FaucetError> {
        let result = self.admit(client, address, challenge, nonce).await;
        match &result {
            Ok(row) => {
                self.count("queued");
                self.bus.publish(BusEvent::Faucet {
                    id: row.id,
                    state: row.state.clone(),
                });
                tracing::info!(request = row.id, address = %row.address, "faucet request queued");
            }
            Err(e) => self.count(e.code()),
        }
        result
    }

    async fn admit(
        &self,
        client: IpAddr,
        address: &str,
        challenge: &str,
        nonce: &str,
    ) -> Result<FaucetRow, FaucetError> {
        self.check_enabled()?;
        let parsed = crate::wallet::parse_address(address, self.settings.network)
            .map_err(FaucetError::BadAddress)?;
        let canonical = parsed.to_string();
        let now = crate::clock::now_s();
        let expires_at = match self.key.check(challenge, now) {
            Ok(expires_at) => expires_at,
            Err(ChallengeError::Unknown) => {
                return Err(FaucetError::BadPow(
                    "unknown challenge: fetch one from /api/faucet/challenge",
                ));
            }
            Err(ChallengeError::Expired) => return Err(FaucetError::ChallengeExpired),
        };
        // The work is over the address exactly as sent (that is what the
        // client hashed); cooldowns use the canonical form.
        if !pooldesk_proto::pow::check_pow(challenge, address, nonce, self.settings.difficulty_bits)
        {
            return Err(FaucetError::BadPow(
                "the nonce does not solve the challenge for this address",
            ));
        }
        match self.wallet.is_mine(&canonical).await {
            Ok(true) => {
                return Err(FaucetError::BadAddress(
                    "that is the faucet's own address".into(),
                ));
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "faucet: could not ask the wallet about an address");
                return Err(FaucetError::WalletUnavailable(e.to_string()));
            }
        }
        let admission = db::Admission {
            address: canonical,
            client_key: rules::client_key(client),
            amount_sat: self.settings.amount_sat,
            challenge: challenge.to_string(),
            challenge_expires_at: expires_at,
            cooldown_s: self.settings.cooldown_s,
            daily_budget_sat: self.settings.daily_budget_sat,
        };
        Ok(self
            .store
            .write(move |ctx| db::admit(ctx, &admission))
            .await?)
    }

    /// One request's public state.
    pub async fn lookup(&self, id: i64) -> Result<FaucetRow, FaucetError> {
        self.store
            .read(move |conn| db::request(conn, id))
            .await?
            .ok_or(FaucetError::NotFound)
    }

    pub async fn public_status(&self) -> Result<PublicStatus, FaucetError> {
        let day = rules::utc_day_start(crate::clock::now_s());
        let (spent_today_sat, queued) = self
            .store
            .read(move |conn| Ok((db::spent_since(conn, day)?, db::queued_count(conn)?)))
            .await?;
        let s = &self.settings;
        Ok(PublicStatus {
            enabled: s.enabled,
            disabled_reason: s.disabled_reason.clone(),
            network: s.network.as_str(),
            amount_sat: s.amount_sat,
            cooldown_s: s.cooldown_s,
            difficulty_bits: s.difficulty_bits,
            daily_budget_sat: s.daily_budget_sat,
            spent_today_sat,
            queued,
            last_error: self.last_error(),
        })
    }

    /// The control socket's view (TUI Faucet tab).
    pub async fn status(&self) -> Result<FaucetStatus, FaucetError> {
        let day = rules::utc_day_start(crate::clock::now_s());
        let (spent_today_sat, queued, recent) = self
            .store
            .read(move |conn| {
                Ok((
                    db::spent_since(conn, day)?,
                    db::queued(conn, 200)?,
                    db::recent(conn, 50)?,
                ))
            })
            .await?;
        let s = &self.settings;
        let disabled_reason = match (&s.disabled_reason, self.last_error()) {
            (Some(reason), _) => Some(reason.clone()),
            (None, Some(error)) => Some(format!("enabled, but payouts are failing: {error}")),
            (None, None) => None,
        };
        Ok(FaucetStatus {
            enabled: s.enabled,
            disabled_reason,
            amount_sat: s.amount_sat,
            cooldown_s: s.cooldown_s,
            daily_budget_sat: s.daily_budget_sat,
            spent_today_sat,
            queued,
            recent,
        })
    }

    /// Admin decision on a batch in `needs_attention`: paid (with a txid
    /// that pays every output), retry (not sent: back to the queue) or
    /// failed (cancelled: the holds return to the budget). Retry and failed
    /// are refused while the wallet shows the batch's transaction.
    pub async fn resolve(
        &self,
        actor: crate::audit::Actor,
        batch_id: i64,
        resolution: pooldesk_proto::model::BatchResolution,
    ) -> Result<String, FaucetError> {
        use pooldesk_proto::model::BatchResolution;
        let (found, outputs) = self
            .store
            .read(move |conn| {
                let found: Option<(String, Option<String>)> = conn
                    .query_row(
                        "SELECT tag, txid FROM faucet_batches WHERE id = ?1",
                        [batch_id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .ok();
                Ok((found, db::batch_outputs(conn, batch_id)?))
            })
            .await?;
        let (tag, known_txid) = found.ok_or(FaucetError::NotFound)?;
        let unavailable =
            |e: crate::wallet::WalletError| FaucetError::WalletUnavailable(e.to_string());
        let (message, detail) = match resolution {
            BatchResolution::Paid { txid } => {
                let tx = self
                    .wallet
                    .transaction(&txid)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| {
                        FaucetError::Invalid(format!("the wallet does not know transaction {txid}"))
                    })?;
                if !tx.pays_exactly(&outputs) {
                    return Err(FaucetError::Invalid(format!(
                        "transaction {txid} does not pay exactly the outputs of faucet batch {batch_id}"
                    )));
                }
                if tx.confirmations < 0 || tx.replaced_by_txid.is_some() {
                    return Err(FaucetError::Invalid(format!(
                        "transaction {txid} is conflicted or replaced: it cannot pay faucet batch {batch_id}"
                    )));
                }
                let fee = tx.fee_sat.map(i64::abs);
                let t = txid.clone();
                self.store
                    .write(move |ctx| {
                        db::attention_requests_check(ctx.conn, batch_id)?;
                        db::mark_paid(ctx, batch_id, &t, fee)
                    })
                    .await?;
                (
                    format!("faucet batch {batch_id} recorded as paid by {txid}"),
                    format!("paid {txid}"),
                )
            }
            BatchResolution::Retry | BatchResolution::Failed => {
                // A batch whose transaction is known may be paid again (or
                // given up) only once that transaction provably cannot
                // confirm: a conflicting spend buried deep enough.
                if let Some(txid) = &known_txid {
                    crate::wallet::provably_dead(self.wallet.as_ref(), txid, self.settings.depth)
                        .await
                        .map_err(FaucetError::WrongState)?;
                }
                let found = self.wallet.find_by_tag(&tag).await.map_err(unavailable)?;
                if let Some(tx) = found.iter().find(|t| {
                    t.in_mempool_or_chain && t.replaced_by_txid.is_none() && t.confirmations >= 0
                }) {
                    return Err(FaucetError::WrongState(format!(
                        "the wallet shows faucet batch {batch_id} as sent in {}: resolve it as paid",
                        tx.txid
                    )));
                }
                let give_up = matches!(resolution, BatchResolution::Failed);
                let note = if give_up {
                    "resolved as failed: requests cancelled, holds returned to the budget"
                } else {
                    "resolved as not sent: requests back in the queue"
                };
                self.store
                    .write(move |ctx| {
                        db::attention_requests_check(ctx.conn, batch_id)?;
                        // A reopened batch (paid, then its transaction
                        // died) first takes its payment back.
                        db::unpay(ctx, batch_id)?;
                        if give_up {
                            db::cancel(ctx, batch_id, note)
                        } else {
                            db::requeue(ctx, batch_id, note)
                        }
                    })
                    .await?;
                (format!("faucet batch {batch_id} {note}"), note.to_string())
            }
        };
        let subject = format!("faucet_batch:{batch_id}");
        let entry = self
            .store
            .write(move |ctx| {
                crate::audit::record(ctx, &actor, "resolve_faucet_batch", &subject, &detail)
                    .map_err(FaucetError::Db)
            })
            .await?;
        self.bus.publish(BusEvent::Audit(entry));
        Ok(message)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("faucet error lock").clone()
    }

    fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().expect("faucet error lock") = error;
    }
}

/// The faucet check of `pooldeskd verify`.
pub fn verify(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<crate::ledger::Violation>> {
    db::verify(conn)
}

#[cfg(test)]
mod tests;
