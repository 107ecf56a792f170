//! Authentication of miners' signed requests (the COINjecture contract) and
//! of admin requests.
//!
//! Signed requests carry `X-User-ID`, `X-Signature` (hex HMAC-SHA256 with
//! the miner's key) and `X-Timestamp`. The seed's `/v1/ingest/block` signs
//! the canonical JSON of the body alone (byte-compatible with the seed);
//! every other endpoint signs `METHOD SP PATH LF canonical-body`
//! ([`pooldesk_proto::sig::bound_message`]), so a signature cannot be
//! carried to another endpoint. The header timestamp is not covered by the
//! signature, so state-changing requests must also carry a signed `ts` in
//! the body, checked against the same window, and a unique `event_id`
//! remembered at least as long as that window (each endpoint's own
//! idempotency key, or `signed_events`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::Value;

use crate::miners::{self, MinerRecord};
use crate::secrets::Secrets;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing {0} header; signed requests need X-User-ID, X-Signature and X-Timestamp")]
    Missing(&'static str),
    #[error("{0}")]
    BadTimestamp(String),
    #[error("unknown user {0:?}, or it has no personal key")]
    UnknownUser(String),
    #[error("signature does not match the canonical JSON of the body")]
    BadSignature,
    #[error("user account is inactive")]
    Inactive,
    #[error("{0}")]
    Malformed(String),
    #[error("rate limit exceeded: {limit_per_minute} requests per minute")]
    RateLimited {
        limit_per_minute: u32,
        retry_after_s: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which rate limit a signed request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Block submissions: `limits.blocks_per_minute`, per tier.
    Blocks,
    /// Everything else signed: `limits.signed_per_minute`.
    Signed,
}

/// What the signature covers.
#[derive(Debug, Clone, Copy)]
pub enum Binding<'a> {
    /// The canonical body alone: the seed's `/v1/ingest/block` only.
    Body,
    /// Method, path and canonical body.
    Request { method: &'a str, path: &'a str },
    /// Either form (read-only endpoints such as `auth-test`, which old
    /// clients call with body-only signatures).
    Either { method: &'a str, path: &'a str },
}

/// A verified miner request.
#[derive(Debug)]
pub struct Signed {
    pub miner: MinerRecord,
    /// The parsed body (the signature covered its canonical form).
    pub body: Value,
}

type Limiter = DefaultKeyedRateLimiter<String>;

pub struct Authenticator {
    store: Store,
    secrets: Arc<Secrets>,
    allow_shared: bool,
    tolerance_s: i64,
    blocks_default: u32,
    tiers: std::collections::BTreeMap<String, u32>,
    signed_per_minute: u32,
    /// One limiter per distinct per-minute quota (tiers may differ).
    block_limiters: Mutex<HashMap<u32, Arc<Limiter>>>,
    signed_limiter: Arc<Limiter>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"))
}

impl Authenticator {
    pub fn new(
        config: &crate::config::Config,
        store: Store,
        secrets: Arc<Secrets>,
    ) -> Authenticator {
        Authenticator {
            store,
            secrets,
            allow_shared: config.auth.allow_shared,
            tolerance_s: config.ingest.timestamp_tolerance_s,
            blocks_default: config.limits.blocks_per_minute,
            tiers: config.limits.tiers.clone(),
            signed_per_minute: config.limits.signed_per_minute,
            block_limiters: Mutex::new(HashMap::new()),
            signed_limiter: Arc::new(RateLimiter::keyed(per_minute(
                config.limits.signed_per_minute,
            ))),
        }
    }

    pub fn tolerance_s(&self) -> i64 {
        self.tolerance_s
    }

    /// Verifies headers and signature, then the account state, then the
    /// rate limit (so strangers cannot spend a miner's quota).
    pub async fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        bucket: Bucket,
        binding: Binding<'_>,
    ) -> Result<Signed, AuthError> {
        let user_id = header(headers, "x-user-id")?;
        let signature = header(headers, "x-signature")?;
        let timestamp = header(headers, "x-timestamp")?;
        self.check_time(
            "X-Timestamp",
            parse_ts(&timestamp).ok_or_else(|| {
                AuthError::BadTimestamp("X-Timestamp must be Unix seconds".into())
            })?,
        )?;
        let canonical = pooldesk_proto::canonical::canonicalize(body)
            .map_err(|e| AuthError::Malformed(format!("body is not valid JSON: {e}")))?;
        let lookup_id = user_id.clone();
        let miner = self
            .store
            .read(move |conn| miners::get(conn, &lookup_id))
            .await?
            .ok_or_else(|| AuthError::UnknownUser(user_id.clone()))?;
        let key = miners::signing_key(
            &miner,
            &self.secrets.master_key,
            &self.secrets.shared_secret,
            self.allow_shared,
        )
        .ok_or_else(|| AuthError::UnknownUser(user_id.clone()))?;
        let verify = |message: &str| {
            pooldesk_proto::sig::verify_hmac_sha256_hex(&key, message.as_bytes(), &signature)
        };
        let bound = |method: &str, path: &str| {
            verify(&pooldesk_proto::sig::bound_message(
                method, path, &canonical,
            ))
        };
        let valid = match binding {
            Binding::Body => verify(&canonical),
            Binding::Request { method, path } => bound(method, path),
            // Both are computed so the time taken does not say which form
            // was tried.
            Binding::Either { method, path } => bound(method, path) | verify(&canonical),
        };
        if !valid {
            return Err(AuthError::BadSignature);
        }
        if !miner.active {
            return Err(AuthError::Inactive);
        }
        self.check_rate(&miner, bucket)?;
        // canonicalize accepted it, so serde_json will too (it is stricter
        // only on things canonicalize also refuses).
        let body: Value = serde_json::from_slice(body)
            .map_err(|e| AuthError::Malformed(format!("body is not valid JSON: {e}")))?;
        Ok(Signed { miner, body })
    }

    /// Checks a timestamp (Unix seconds) against the tolerance window, in
    /// both directions.
    pub fn check_time(&self, what: &str, ts: f64) -> Result<(), AuthError> {
        let now = crate::clock::now_ms() as f64 / 1000.0;
        let skew = now - ts;
        if !skew.is_finite() || skew.abs() > self.tolerance_s as f64 {
            return Err(AuthError::BadTimestamp(format!(
                "{what} is {:.0} s {} the server clock; the limit is {} s",
                skew.abs(),
                if skew > 0.0 { "behind" } else { "ahead of" },
                self.tolerance_s
            )));
        }
        Ok(())
    }

    /// Requires a signed body `ts` within the window.
    pub fn require_body_ts(&self, body: &Value) -> Result<f64, AuthError> {
        let ts = body.get("ts").and_then(Value::as_f64).ok_or_else(|| {
            AuthError::BadTimestamp(
                "the body must carry \"ts\" (Unix seconds) so the signature cannot be replayed later".into(),
            )
        })?;
        self.check_time("ts", ts)?;
        Ok(ts)
    }

    fn check_rate(&self, miner: &MinerRecord, bucket: Bucket) -> Result<(), AuthError> {
        let (limiter, limit_per_minute) = match bucket {
            Bucket::Signed => (self.signed_limiter.clone(), self.signed_per_minute),
            Bucket::Blocks => {
                let n = miner
                    .tier
                    .as_deref()
                    .and_then(|t| self.tiers.get(t).copied())
                    .unwrap_or(self.blocks_default);
                let limiter = self
                    .block_limiters
                    .lock()
                    .expect("limiter lock")
                    .entry(n)
                    .or_insert_with(|| Arc::new(RateLimiter::keyed(per_minute(n))))
                    .clone();
                (limiter, n)
            }
        };
        limiter.check_key(&miner.id).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            AuthError::RateLimited {
                limit_per_minute,
                retry_after_s: wait.as_secs() + 1,
            }
        })
    }

    /// Drops limiter state of users idle for a while (bounded memory).
    pub fn retain_recent(&self) {
        self.signed_limiter.retain_recent();
        for limiter in self.block_limiters.lock().expect("limiter lock").values() {
            limiter.retain_recent();
        }
    }
}

fn header(headers: &HeaderMap, name: &'static str) -> Result<String, AuthError> {
    let display = match name {
        "x-user-id" => "X-User-ID",
        "x-signature" => "X-Signature",
        _ => "X-Timestamp",
    };
    let bytes = headers
        .get(name)
        .ok_or(AuthError::Missing(display))?
        .as_bytes();
    // Ids may be non-ASCII (`müller`): clients send UTF-8, and Python's
    // http.client sends Latin-1. Accept both.
    let value = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|b| char::from(*b)).collect(),
    };
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(AuthError::Missing(display));
    }
    Ok(value)
}

fn parse_ts(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|t| t.is_finite())
}

/// Constant-time check of the admin API key (`X-API-KEY` header only).
pub fn admin_key_matches(secrets: &Secrets, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = secrets.admin_api_key.expose();
    // Compare digests so the comparison time does not depend on lengths.
    let a = pooldesk_proto::sig::hmac_sha256(b"pooldesk/admin-key", presented.as_bytes());
    let b = pooldesk_proto::sig::hmac_sha256(b"pooldesk/admin-key", expected);
    bool::from(a.ct_eq(&b))
}
