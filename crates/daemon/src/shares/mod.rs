//! Batched share ingest from pool software: `POST /api/v2/shares`.
//!
//! A batch is `{origin, ts, shares: [...]}`, signed like a pool report
//! (`X-REPORT-SIG`, HMAC-SHA256 of the raw body with the report secret; `ts`
//! inside the signed body must be within `ingest.timestamp_tolerance_s`).
//! Shares are keyed by `(origin, seq)`: a share already recorded is never
//! credited again, so a sender that does not know whether its last batch
//! arrived simply sends it again. The whole batch is one fast write job in
//! the next group commit and is answered only once that commit is durable.
//!
//! Accepted shares are credited PPS (`floor(diff × rate_per_share)` msat,
//! exact integer arithmetic from the JSON literal of `diff`) into rolled-up
//! `pool_share_credit` transfers; rejected shares are counted per miner and
//! reason; block-solving shares are recorded as block solves and create no
//! money. The first malformed share refuses the whole batch, naming its
//! index, before anything is written.

mod db;
pub mod parse;

use std::collections::HashMap;
use std::sync::Arc;

use pooldesk_proto::model::CreditEvent;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::hashrate::HashrateTracker;
use crate::ingest::CreditFeed;
use crate::ledger;
use crate::metrics::Metrics;
use crate::miners::ActivityCache;
use crate::secrets::Secrets;
use crate::store::{StorageFault, Store, StoreError, WriteError};
pub use db::{BlockSolve, Solve, blocks_since, origins, prune, rejects, solve_of, verify};
pub use parse::{Batch, Share, parse_batch};

/// `[shares]` in the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharesConfig {
    /// Most shares in one `POST /api/v2/shares` (more: 413).
    pub max_shares_per_batch: usize,
    /// Largest body of `POST /api/v2/shares` (more: 413).
    pub max_body_bytes: usize,
}

impl Default for SharesConfig {
    fn default() -> Self {
        SharesConfig {
            max_shares_per_batch: 10_000,
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SharesError {
    #[error(
        "missing X-REPORT-SIG header: sign the raw body with HMAC-SHA256 and the report secret"
    )]
    MissingSignature,
    #[error("X-REPORT-SIG does not match the body")]
    BadSignature,
    #[error("{0}")]
    StaleTimestamp(String),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
    #[error("shares[{index}]: {reason}; nothing in this batch was recorded")]
    BadShare { index: usize, reason: String },
    #[error("{count} shares in one batch; at most {max}")]
    TooMany { count: usize, max: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("share storage error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("ledger refused a credit: {0}")]
    Ledger(#[from] ledger::LedgerError),
    /// Decided before the batch job writes anything: a refusal of this
    /// batch alone.
    #[error("{0}; nothing in this batch was recorded")]
    BalanceBound(String),
}

impl StorageFault for SharesError {
    fn storage_fault(&self) -> Option<String> {
        match self {
            SharesError::Db(e) => Some(e.to_string()),
            SharesError::Ledger(e) => Some(e.to_string()),
            SharesError::BalanceBound(_) => None,
            // The batch job refuses nothing after writing; anything else
            // reaching the writer is a fault too.
            other => Some(other.to_string()),
        }
    }
}

impl From<WriteError<SharesError>> for SharesError {
    fn from(e: WriteError<SharesError>) -> Self {
        match e {
            WriteError::Rejected(e) => e,
            WriteError::Store(e) => SharesError::Store(e),
        }
    }
}

impl SharesError {
    /// The label for `pooldesk_reports_total{contract="shares_v2", outcome}`.
    pub fn outcome(&self) -> &'static str {
        match self {
            SharesError::MissingSignature => "missing_signature",
            SharesError::BadSignature => "bad_signature",
            SharesError::StaleTimestamp(_) => "stale_timestamp",
            SharesError::Malformed(_) => "malformed",
            SharesError::Invalid(_) | SharesError::BadShare { .. } => "invalid",
            SharesError::TooMany { .. } => "too_large",
            SharesError::BalanceBound(_) => "balance_bound",
            SharesError::Store(_) | SharesError::Db(_) | SharesError::Ledger(_) => "unavailable",
        }
    }
}

/// The answer to an accepted batch (also when every share was a repeat).
#[derive(Debug, Clone, Serialize)]
pub struct BatchOutcome {
    pub origin: String,
    pub received: usize,
    /// Shares recorded by this request, and the seqs, as inclusive ranges.
    pub new: usize,
    pub new_seqs: Vec<[i64; 2]>,
    /// Shares already recorded (sent before, or pruned): nothing changed.
    pub duplicates: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub blocks: usize,
    pub credited_msat: i64,
}

#[derive(Clone)]
pub struct Shares {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    secrets: Arc<Secrets>,
    tracker: HashrateTracker,
    activity: ActivityCache,
    feed: CreditFeed,
    metrics: Metrics,
    tolerance_s: i64,
    rate_per_share_msat: i64,
    /// PPLNS is in force: accepted work goes into the share log.
    pplns: bool,
    /// The self-registration namespace (`auth.self_registration_prefix`).
    self_prefix: String,
    max_shares: usize,
}

impl Shares {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        store: Store,
        secrets: Arc<Secrets>,
        tracker: HashrateTracker,
        activity: ActivityCache,
        feed: CreditFeed,
        metrics: Metrics,
    ) -> Shares {
        Shares {
            inner: Arc::new(Inner {
                store,
                secrets,
                tracker,
                activity,
                feed,
                metrics,
                tolerance_s: config.ingest.timestamp_tolerance_s,
                // PPLNS and SOLO credit nothing per share (blocks pay).
                rate_per_share_msat: crate::blocks::scheme::Scheme::from_config(&config.accounting)
                    .per_share_rate_msat(config.ingest.rate_per_share_btc.msat()),
                pplns: config.accounting.scheme == pooldesk_proto::model::PayoutScheme::Pplns,
                self_prefix: config.auth.self_registration_prefix.clone(),
                max_shares: config.shares.max_shares_per_batch,
            }),
        }
    }

    /// `POST /api/v2/shares`: verify, parse, record, answer after commit.
    pub async fn submit(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<BatchOutcome, SharesError> {
        let result = self.submit_inner(signature, body).await;
        self.inner.metrics.report(
            "shares_v2",
            match &result {
                Ok(_) => "accepted",
                Err(e) => e.outcome(),
            },
        );
        result
    }

    async fn submit_inner(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<BatchOutcome, SharesError> {
        let inner = &self.inner;
        let signature = signature.ok_or(SharesError::MissingSignature)?;
        if !pooldesk_proto::sig::verify_hmac_sha256_hex(
            inner.secrets.report_secret.expose(),
            body,
            signature,
        ) {
            return Err(SharesError::BadSignature);
        }
        let batch = parse_batch(body, inner.rate_per_share_msat, inner.max_shares)?;
        self.check_ts(batch.ts)?;
        let pplns = inner.pplns;
        let received = batch.shares.len();
        let origin = batch.origin.clone();
        let activity = inner.activity.clone();
        let self_prefix = inner.self_prefix.clone();
        let (written, info) = inner
            .store
            .write_fast(move |ctx| {
                // Ids of the self-registration namespace never receive pool
                // credits (their shares are recorded, not credited, like an
                // inactive miner's): a self-registered account cannot
                // collect what the pool reports.
                let uncredited = |miner: &str| {
                    activity.is_inactive(miner)
                        || (!self_prefix.is_empty() && miner.starts_with(self_prefix.as_str()))
                };
                db::check_bounds(ctx, &batch, &uncredited)?;
                db::insert_batch(ctx, &batch, &uncredited, pplns)
            })
            .await?;
        // Committed and durable: now the views may learn of it.
        for ((miner, worker, minute), work) in &written.work {
            inner
                .tracker
                .record(miner, worker, *minute, *work, written.received_at);
        }
        for ((miner, worker, minute), (accepted, rejected)) in &written.counts {
            inner
                .tracker
                .record_counts(miner, worker, *minute, *accepted, *rejected, true);
        }
        let first_seq = written.new_ranges.first().map(|r| r.0).unwrap_or(0);
        for (miner, (account_id, amount_msat)) in &written.credits {
            inner.feed.push(CreditEvent {
                miner_id: miner.clone(),
                worker_name: String::new(),
                event_id: format!("{origin}:{first_seq}"),
                amount_msat: *amount_msat,
                balance_msat: info.balances.get(account_id).copied().unwrap_or(0),
                at: written.received_at,
            });
        }
        Ok(BatchOutcome {
            origin,
            received,
            new: written.new_count,
            new_seqs: written.new_ranges.iter().map(|(a, b)| [*a, *b]).collect(),
            duplicates: written.duplicate_count,
            accepted: written.accepted,
            rejected: written.rejected,
            blocks: written.blocks,
            credited_msat: written.credited_msat,
        })
    }

    fn check_ts(&self, ts: f64) -> Result<(), SharesError> {
        let now = crate::clock::now_ms() as f64 / 1000.0;
        let skew = now - ts;
        if !skew.is_finite() || skew.abs() > self.inner.tolerance_s as f64 {
            return Err(SharesError::StaleTimestamp(format!(
                "ts is {:.0} s {} the server clock; batches must be within {} s",
                skew.abs(),
                if skew > 0.0 { "behind" } else { "ahead of" },
                self.inner.tolerance_s
            )));
        }
        Ok(())
    }

    /// Every origin with its last share time and what it reported.
    pub async fn origins(&self) -> Result<Vec<pooldesk_proto::model::OriginStatus>, StoreError> {
        self.inner.store.read(db::origins).await
    }

    /// Rejected shares per miner and reason.
    pub async fn rejects(&self) -> Result<HashMap<(String, String), i64>, StoreError> {
        self.inner
            .store
            .read(|conn| {
                Ok(db::rejects(conn)?
                    .into_iter()
                    .map(|(m, r, n)| ((m, r), n))
                    .collect())
            })
            .await
    }
}

/// Seconds without a batch after which an origin is called silent, and
/// lag after which it is called behind (Overview warnings).
pub const SILENT_AFTER_S: i64 = 600;
pub const BEHIND_AFTER_S: i64 = 120;

/// Adds the origins and their warnings to the snapshot.
pub async fn contribute_to_snapshot(
    app: &crate::app::App,
    snapshot: &mut pooldesk_proto::model::Snapshot,
) {
    let Ok(origins) = app.shares.origins().await else {
        return;
    };
    for origin in &origins {
        if let Some(at) = origin.last_batch_at
            && snapshot.at - at > SILENT_AFTER_S
        {
            snapshot.warnings.push(pooldesk_proto::model::Warning {
                code: "origin_silent".into(),
                message: format!(
                    "share origin {} has sent nothing for {} s",
                    origin.name,
                    snapshot.at - at
                ),
            });
        } else if let Some(lag) = origin.lag_s()
            && lag > BEHIND_AFTER_S
        {
            snapshot.warnings.push(pooldesk_proto::model::Warning {
                code: "origin_behind".into(),
                message: format!("share origin {} is {lag} s behind", origin.name),
            });
        }
    }
    snapshot.origins = origins;
}
