//! Share ingest: pool reports (`X-REPORT-SIG` over the raw body) and
//! personal-key block reports, turned into ledger credits.
//!
//! A report is accepted only once its credit is durable: the handler waits
//! for the group commit that contains the report row, the rolled-up credit
//! transfer and the work minute. Replays are stopped by `event_id` (unique
//! in `share_reports`/`block_reports`) and by the timestamp window; the
//! window is what lets raw reports be pruned later without reopening the
//! door to replays (DESIGN.md section 4).

mod db;
pub mod decimal;
pub mod feed;

use std::sync::Arc;

use pooldesk_proto::model::CreditEvent;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::{AuthError, Authenticator, Binding, Bucket};
use crate::config::Config;
use crate::hashrate::HashrateTracker;
use crate::ledger::{self, MAX_TRANSFER_MSAT};
use crate::metrics::Metrics;
use crate::miners::{self, ActivityCache};
use crate::secrets::Secrets;
use crate::store::{StorageFault, Store, StoreError, WriteError};
pub use db::{block_credits_of, prune, share_credits_of, verify};
pub use feed::CreditFeed;

/// Longest `event_id` accepted (one rule for every signed or reported id).
pub use crate::replay::MAX_EVENT_ID_LEN;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(
        "missing X-REPORT-SIG header: sign the raw body with HMAC-SHA256 and the report secret"
    )]
    MissingSignature,
    #[error("X-REPORT-SIG does not match the body")]
    BadSignature,
    #[error(
        "report has no replay protection: add \"event_id\" (unique per report) and \"ts\" (Unix seconds) to the signed body, or set ingest.allow_unprotected_reports = true for legacy reporters"
    )]
    Unprotected,
    #[error("{0}")]
    StaleTimestamp(String),
    #[error("event_id {event_id:?} was already credited")]
    Duplicate {
        event_id: String,
        credited_msat: i64,
    },
    #[error("event_id {0:?} was already used for a different report")]
    EventConflict(String),
    #[error("block_hash {0:?} was already submitted")]
    DuplicateBlock(String),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
    #[error("miner {0:?} is inactive")]
    Inactive(String),
    #[error("miner_id in the body must equal X-User-ID")]
    MinerMismatch,
    #[error(
        "miner_id {0:?} starts with the prefix reserved for self-registered ids (auth.self_registration_prefix); pool reports cannot credit them"
    )]
    ReservedId(String),
    #[error("{0}")]
    CreditLimit(String),
    #[error("{0}")]
    BalanceBound(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ingest storage error: {0}")]
    Db(#[from] rusqlite::Error),
    /// Only raised after the job has written (fast-job rule), so always a
    /// fault that rolls the batch back.
    #[error("ledger refused a credit: {0}")]
    Ledger(#[from] ledger::LedgerError),
}

impl StorageFault for IngestError {
    fn storage_fault(&self) -> Option<String> {
        match self {
            IngestError::Db(e) => Some(e.to_string()),
            IngestError::Ledger(e) => Some(e.to_string()),
            _ => None,
        }
    }
}

impl From<WriteError<IngestError>> for IngestError {
    fn from(e: WriteError<IngestError>) -> Self {
        match e {
            WriteError::Rejected(e) => e,
            WriteError::Store(e) => IngestError::Store(e),
        }
    }
}

impl IngestError {
    /// The label for `pooldesk_reports_total{outcome=…}`.
    pub fn outcome(&self) -> &'static str {
        match self {
            IngestError::MissingSignature => "missing_signature",
            IngestError::BadSignature => "bad_signature",
            IngestError::Unprotected => "unprotected",
            IngestError::StaleTimestamp(_) => "stale_timestamp",
            IngestError::Duplicate { .. } => "duplicate",
            IngestError::EventConflict(_) => "event_conflict",
            IngestError::DuplicateBlock(_) => "duplicate_block",
            IngestError::Malformed(_) => "malformed",
            IngestError::Invalid(_) => "invalid",
            IngestError::Inactive(_) => "inactive",
            IngestError::MinerMismatch => "miner_mismatch",
            IngestError::ReservedId(_) => "reserved_id",
            IngestError::CreditLimit(_) => "credit_limit",
            IngestError::BalanceBound(_) => "balance_bound",
            IngestError::Auth(AuthError::RateLimited { .. }) => "rate_limited",
            IngestError::Auth(AuthError::BadTimestamp(_)) => "stale_timestamp",
            IngestError::Auth(AuthError::BadSignature) => "bad_signature",
            IngestError::Auth(_) => "unauthorized",
            IngestError::Store(_) | IngestError::Db(_) | IngestError::Ledger(_) => "unavailable",
        }
    }
}

/// Per-tier bounds on block-report credits, in msat.
#[derive(Debug, Clone)]
struct BlockCreditLimits {
    max_msat: i64,
    daily_msat: i64,
    tier_max_msat: std::collections::BTreeMap<String, i64>,
    tier_daily_msat: std::collections::BTreeMap<String, i64>,
}

impl BlockCreditLimits {
    fn new(config: &Config) -> BlockCreditLimits {
        let limits = &config.limits;
        let msat = |map: &std::collections::BTreeMap<String, crate::config::BtcMsat>| {
            map.iter().map(|(k, v)| (k.clone(), v.msat())).collect()
        };
        BlockCreditLimits {
            max_msat: limits.block_credit_max_btc.msat(),
            daily_msat: limits.block_credit_daily_btc.msat(),
            tier_max_msat: msat(&limits.tier_block_credit_max_btc),
            tier_daily_msat: msat(&limits.tier_block_credit_daily_btc),
        }
    }

    /// `(per report, per 24 h)` for a miner of `tier`.
    fn of(&self, tier: Option<&str>) -> (i64, i64) {
        let pick = |map: &std::collections::BTreeMap<String, i64>, default: i64| {
            tier.and_then(|t| map.get(t).copied()).unwrap_or(default)
        };
        (
            pick(&self.tier_max_msat, self.max_msat),
            pick(&self.tier_daily_msat, self.daily_msat),
        )
    }
}

/// A validated pool report.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolReport {
    pub miner_id: String,
    pub worker_name: String,
    pub shares: u64,
    pub difficulty: u64,
    pub event_id: Option<String>,
    pub ts: Option<f64>,
}

/// What an accepted report answers.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub miner_id: String,
    pub event_id: Option<String>,
    pub credited_msat: i64,
    pub balance_msat: i64,
    pub tier: Option<String>,
}

#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    secrets: Arc<Secrets>,
    auth: Arc<Authenticator>,
    tracker: HashrateTracker,
    activity: ActivityCache,
    feed: CreditFeed,
    metrics: Metrics,
    allow_unprotected: bool,
    tolerance_s: i64,
    rate_per_share_msat: i64,
    /// PPLNS is in force: reports' work goes into the share log.
    pplns: bool,
    rate_per_work_msat: i64,
    max_work_per_report: u64,
    /// Ids pool reports may not use (the self-registration namespace).
    self_prefix: String,
    /// Bounds on what block reports (work a miner reports with its own
    /// key) may credit: per report and per miner per 24 h, by tier.
    block_limits: BlockCreditLimits,
    /// Miners of acknowledged reports (so they exist in the ledger): the
    /// hot path skips their insert. Only filled after a durable commit.
    known_miners: std::sync::RwLock<std::collections::HashSet<String>>,
}

#[allow(clippy::too_many_arguments)]
impl Ingest {
    pub fn new(
        config: &Config,
        store: Store,
        secrets: Arc<Secrets>,
        auth: Arc<Authenticator>,
        tracker: HashrateTracker,
        activity: ActivityCache,
        feed: CreditFeed,
        metrics: Metrics,
    ) -> Ingest {
        Ingest {
            inner: Arc::new(Inner {
                store,
                secrets,
                auth,
                tracker,
                activity,
                feed,
                metrics,
                allow_unprotected: config.ingest.allow_unprotected_reports,
                tolerance_s: config.ingest.timestamp_tolerance_s,
                // PPLNS and SOLO credit nothing per share (blocks pay).
                rate_per_share_msat: crate::blocks::scheme::Scheme::from_config(&config.accounting)
                    .per_share_rate_msat(config.ingest.rate_per_share_btc.msat()),
                pplns: config.accounting.scheme == pooldesk_proto::model::PayoutScheme::Pplns,
                rate_per_work_msat: config.ingest.rate_per_work_btc.msat(),
                max_work_per_report: config.ingest.max_work_per_report,
                self_prefix: config.auth.self_registration_prefix.clone(),
                block_limits: BlockCreditLimits::new(config),
                known_miners: std::sync::RwLock::new(std::collections::HashSet::new()),
            }),
        }
    }

    /// `POST /api/report_share`: verify, parse, credit, answer after commit.
    pub async fn report_share(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Accepted, IngestError> {
        let result = self.report_share_inner(signature, body).await;
        self.count("pool", &result);
        result
    }

    async fn report_share_inner(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Accepted, IngestError> {
        let inner = &self.inner;
        let signature = signature.ok_or(IngestError::MissingSignature)?;
        if !pooldesk_proto::sig::verify_hmac_sha256_hex(
            inner.secrets.report_secret.expose(),
            body,
            signature,
        ) {
            return Err(IngestError::BadSignature);
        }
        let report = parse_pool_report(body)?;
        if !inner.self_prefix.is_empty() && report.miner_id.starts_with(&inner.self_prefix) {
            return Err(IngestError::ReservedId(report.miner_id));
        }
        match (&report.event_id, report.ts) {
            (Some(_), Some(ts)) => self.check_ts(ts)?,
            _ if !inner.allow_unprotected => return Err(IngestError::Unprotected),
            (_, Some(ts)) => self.check_ts(ts)?,
            _ => {}
        }
        if inner.activity.is_inactive(&report.miner_id) {
            return Err(IngestError::Inactive(report.miner_id));
        }
        let work = u128::from(report.shares) * u128::from(report.difficulty);
        if work > u128::from(inner.max_work_per_report) {
            return Err(IngestError::Invalid(format!(
                "shares × difficulty is {work}, above the limit of {} per report",
                inner.max_work_per_report
            )));
        }
        let credited = work
            .checked_mul(inner.rate_per_share_msat as u128)
            .filter(|c| *c <= MAX_TRANSFER_MSAT as u128)
            .ok_or_else(|| IngestError::Invalid("credit for this report is too large".into()))?
            as i64;
        let body_sha256: [u8; 32] = Sha256::digest(body).into();
        let row = report.clone();
        let pplns = inner.pplns;
        let known = inner
            .known_miners
            .read()
            .expect("known miners")
            .contains(&report.miner_id);
        let ((account_id, received_at), info) = inner
            .store
            .write_fast(move |ctx| {
                db::insert_share_report(ctx, &row, work, credited, body_sha256, known, pplns)
            })
            .await?;
        if !known {
            inner
                .known_miners
                .write()
                .expect("known miners")
                .insert(report.miner_id.clone());
        }
        let balance_msat = info.balances.get(&account_id).copied().unwrap_or(0);
        let minute = received_at - received_at.rem_euclid(60);
        inner.tracker.record(
            &report.miner_id,
            &report.worker_name,
            minute,
            work,
            received_at,
        );
        // v1 reports carry accepted shares only: rejects are not reported.
        inner.tracker.record_counts(
            &report.miner_id,
            &report.worker_name,
            minute,
            report.shares,
            0,
            false,
        );
        inner.feed.push(CreditEvent {
            miner_id: report.miner_id.clone(),
            worker_name: report.worker_name.clone(),
            event_id: report.event_id.clone().unwrap_or_default(),
            amount_msat: credited,
            balance_msat,
            at: received_at,
        });
        Ok(Accepted {
            miner_id: report.miner_id,
            event_id: report.event_id,
            credited_msat: credited,
            balance_msat,
            tier: None,
        })
    }

    /// `POST /v1/ingest/block`.
    pub async fn ingest_block(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Accepted, IngestError> {
        let result = self.ingest_block_inner(headers, body).await;
        self.count("personal", &result);
        result
    }

    async fn ingest_block_inner(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<Accepted, IngestError> {
        let inner = &self.inner;
        let signed = inner
            .auth
            .verify(headers, body, Bucket::Blocks, Binding::Body)
            .await?;
        let block = parse_block(body, &signed.body)?;
        if block.miner_id != signed.miner.id {
            return Err(IngestError::MinerMismatch);
        }
        inner.auth.require_body_ts(&signed.body)?;
        let credited = decimal::times_rate_msat(
            &block.work_score,
            inner.rate_per_work_msat,
            MAX_TRANSFER_MSAT,
        )
        .map_err(|why| {
            // Work worth more than any bound is a credit-limit refusal,
            // not malformed input.
            if why == "is too large" {
                IngestError::CreditLimit(format!(
                    "work_score {why}: its credit passes every bound on block reports"
                ))
            } else {
                IngestError::Invalid(format!("work_score {why}"))
            }
        })?;
        let (max_msat, daily_msat) = inner.block_limits.of(signed.miner.tier.as_deref());
        if credited > max_msat {
            return Err(IngestError::CreditLimit(format!(
                "this report would credit {} BTC; a block report may credit at most {} BTC (limits.block_credit_max_btc for this tier)",
                pooldesk_proto::amount::format_msat_btc(credited),
                pooldesk_proto::amount::format_msat_btc(max_msat),
            )));
        }
        let body_sha256: [u8; 32] = Sha256::digest(body).into();
        let row = block.clone();
        let ((account_id, received_at), info) = inner
            .store
            .write_fast(move |ctx| {
                db::insert_block_report(ctx, &row, credited, daily_msat, body_sha256)
            })
            .await?;
        let balance_msat = info.balances.get(&account_id).copied().unwrap_or(0);
        inner.feed.push(CreditEvent {
            miner_id: block.miner_id.clone(),
            worker_name: String::new(),
            event_id: block.event_id.clone(),
            amount_msat: credited,
            balance_msat,
            at: received_at,
        });
        Ok(Accepted {
            miner_id: block.miner_id,
            event_id: Some(block.event_id),
            credited_msat: credited,
            balance_msat,
            tier: signed.miner.tier,
        })
    }

    /// `pooldesk_reports_total{contract, outcome}`.
    fn count(&self, contract: &'static str, result: &Result<Accepted, IngestError>) {
        let outcome = match result {
            Ok(_) => "accepted",
            Err(e) => e.outcome(),
        };
        self.inner.metrics.report(contract, outcome);
    }

    fn check_ts(&self, ts: f64) -> Result<(), IngestError> {
        let now = crate::clock::now_ms() as f64 / 1000.0;
        let skew = now - ts;
        if !skew.is_finite() || skew.abs() > self.inner.tolerance_s as f64 {
            return Err(IngestError::StaleTimestamp(format!(
                "ts is {:.0} s {} the server clock; reports must be within {} s",
                skew.abs(),
                if skew > 0.0 { "behind" } else { "ahead of" },
                self.inner.tolerance_s
            )));
        }
        Ok(())
    }
}

fn field_str(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    required: bool,
) -> Result<Option<String>, IngestError> {
    match obj.get(name) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(IngestError::Invalid(format!("{name} is required"))),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(IngestError::Invalid(format!("{name} must be a string"))),
    }
}

/// A positive whole number no larger than `max`. JSON integers only: a
/// `1.5` or `1e3` share count is refused rather than rounded.
fn field_count(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    max: u64,
) -> Result<Option<u64>, IngestError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => Err(IngestError::Invalid(format!("{name} must be at least 1"))),
            Some(v) if v <= max => Ok(Some(v)),
            Some(_) => Err(IngestError::Invalid(format!(
                "{name} is too large (at most {max})"
            ))),
            None if n.as_i64().is_some() => {
                Err(IngestError::Invalid(format!("{name} must not be negative")))
            }
            None if n.as_f64().is_some_and(|f| f < 0.0) => {
                Err(IngestError::Invalid(format!("{name} must not be negative")))
            }
            None if n.as_f64().is_some_and(|f| f >= u64::MAX as f64) => Err(IngestError::Invalid(
                format!("{name} is too large (at most {max})"),
            )),
            None => Err(IngestError::Invalid(format!(
                "{name} must be a whole number"
            ))),
        },
        Some(_) => Err(IngestError::Invalid(format!("{name} must be a number"))),
    }
}

fn event_id_field(
    obj: &serde_json::Map<String, Value>,
    required: bool,
) -> Result<Option<String>, IngestError> {
    let event_id = field_str(obj, "event_id", required)?;
    if let Some(id) = &event_id {
        crate::replay::validate_event_id(id).map_err(IngestError::Invalid)?;
    }
    Ok(event_id)
}

fn ts_field(obj: &serde_json::Map<String, Value>) -> Result<Option<f64>, IngestError> {
    match obj.get("ts") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(IngestError::Invalid(
            "ts must be a number (Unix seconds)".into(),
        )),
    }
}

/// Parses and validates a pool report body.
pub fn parse_pool_report(body: &[u8]) -> Result<PoolReport, IngestError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| IngestError::Malformed("body is not valid JSON".into()))?;
    let Value::Object(obj) = value else {
        return Err(IngestError::Invalid("body must be a JSON object".into()));
    };
    let miner_id = field_str(&obj, "miner_id", true)?.unwrap_or_default();
    miners::validate_id("miner_id", &miner_id).map_err(IngestError::Invalid)?;
    let worker_name = field_str(&obj, "worker_name", true)?.unwrap_or_default();
    miners::validate_id("worker_name", &worker_name).map_err(IngestError::Invalid)?;
    let shares = field_count(&obj, "shares", u64::MAX)?
        .ok_or_else(|| IngestError::Invalid("shares is required".into()))?;
    let difficulty = field_count(&obj, "difficulty", u64::MAX)?.unwrap_or(1);
    Ok(PoolReport {
        miner_id,
        worker_name,
        shares,
        difficulty,
        event_id: event_id_field(&obj, false)?,
        ts: ts_field(&obj)?,
    })
}

/// A validated block report.
#[derive(Debug, Clone)]
pub struct BlockReport {
    pub event_id: String,
    pub block_index: Option<i64>,
    pub block_hash: String,
    pub cid: Option<String>,
    pub miner_id: String,
    pub capacity: Option<String>,
    /// Exactly as sent.
    pub work_score: String,
    pub ts: Option<f64>,
}

/// The literal text of `work_score` (exact decimal arithmetic needs it).
#[derive(serde::Deserialize)]
struct WorkScoreLiteral<'a> {
    #[serde(borrow)]
    work_score: Option<&'a serde_json::value::RawValue>,
}

pub fn parse_block(body: &[u8], value: &Value) -> Result<BlockReport, IngestError> {
    let Value::Object(obj) = value else {
        return Err(IngestError::Invalid("body must be a JSON object".into()));
    };
    let event_id = event_id_field(obj, true)?.unwrap_or_default();
    let block_hash = field_str(obj, "block_hash", true)?.unwrap_or_default();
    if block_hash.is_empty() || block_hash.len() > 128 || block_hash.chars().any(char::is_control) {
        return Err(IngestError::Invalid(
            "block_hash must be 1 to 128 bytes".into(),
        ));
    }
    let block_index = match obj.get("block_index") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i >= 0) => n.as_i64(),
        Some(_) => {
            return Err(IngestError::Invalid(
                "block_index must be a whole number ≥ 0".into(),
            ));
        }
    };
    let cid = field_str(obj, "cid", false)?;
    let capacity = field_str(obj, "capacity", false)?;
    let miner_id = field_str(obj, "miner_id", true)?.unwrap_or_default();
    let literal: WorkScoreLiteral<'_> = serde_json::from_slice(body)
        .map_err(|_| IngestError::Invalid("work_score must be a number".into()))?;
    let work_score = match literal.work_score {
        Some(raw) if matches!(obj.get("work_score"), Some(Value::Number(_))) => {
            raw.get().to_string()
        }
        _ => {
            return Err(IngestError::Invalid(
                "work_score is required (a number)".into(),
            ));
        }
    };
    Ok(BlockReport {
        event_id,
        block_index,
        block_hash,
        cid,
        miner_id,
        capacity,
        work_score,
        ts: ts_field(obj)?,
    })
}

/// Ledger account of a miner, re-exported for callers of this module.
pub fn miner_account(miner_id: &str) -> String {
    ledger::miner_account(miner_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_report_parses_with_default_difficulty() {
        let r =
            parse_pool_report(br#"{"miner_id":"miner123","worker_name":"worker1","shares":100}"#)
                .unwrap();
        assert_eq!(r.shares, 100);
        assert_eq!(r.difficulty, 1);
        assert_eq!(r.event_id, None);
    }

    #[test]
    fn bad_share_counts_are_refused() {
        for (body, why) in [
            (
                r#"{"miner_id":"m","worker_name":"w","shares":0}"#,
                "at least 1",
            ),
            (
                r#"{"miner_id":"m","worker_name":"w","shares":-5}"#,
                "negative",
            ),
            (
                r#"{"miner_id":"m","worker_name":"w","shares":1.5}"#,
                "whole",
            ),
            (r#"{"miner_id":"m","worker_name":"w","shares":1e400}"#, ""),
            (
                r#"{"miner_id":"m","worker_name":"w","shares":"5"}"#,
                "number",
            ),
            (r#"{"miner_id":"m","worker_name":"w"}"#, "required"),
            (
                r#"{"miner_id":"m","worker_name":"w","shares":99999999999999999999999}"#,
                "",
            ),
            (
                r#"{"miner_id":"","worker_name":"w","shares":1}"#,
                "miner_id",
            ),
            (
                r#"{"miner_id":"m","worker_name":"w","shares":1,"difficulty":0}"#,
                "difficulty",
            ),
            (r#"[1,2]"#, "object"),
        ] {
            match parse_pool_report(body.as_bytes()) {
                Err(IngestError::Invalid(msg)) | Err(IngestError::Malformed(msg)) => {
                    assert!(msg.contains(why), "{body}: {msg}")
                }
                other => panic!("{body}: expected refusal, got {other:?}"),
            }
        }
    }
}
