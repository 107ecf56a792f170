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

#[cfg(test)]
mod tests {
    //! The authenticator against a real ledger file: miners registered
    //! through `miners`, keys derived as the daemon derives them, requests
    //! signed as clients sign them. The signature vectors of the seed are
    //! checked in `proto/tests/vectors.rs` (the primitives) and through a
    //! running daemon in `tests/tests/ingest_http.rs`; replayed `event_id`s
    //! are `replay.rs`'s, not this module's.

    use axum::http::{HeaderMap, HeaderValue};
    use pooldesk_proto::canonical::canonicalize;
    use pooldesk_proto::sig::{bound_message, hmac_sha256_hex};

    use super::*;
    use crate::config::Config;
    use crate::metrics::StoreMetrics;
    use crate::secrets::Secret;
    use crate::store::StoreOptions;

    const MASTER: [u8; 32] = [3; 32];
    const SHARED: [u8; 32] = [4; 32];
    const PATH: &str = "/api/miner/withdraw";

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        auth: Authenticator,
    }

    fn fixture(edit: impl FnOnce(&mut Config)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("ledger.sqlite"),
            StoreOptions::default(),
            StoreMetrics::new(),
        )
        .unwrap();
        let mut config = Config::default();
        edit(&mut config);
        let secrets = Arc::new(Secrets {
            report_secret: Secret::new(vec![1; 32]),
            admin_api_key: Secret::new(b"admin-key-0123456789".to_vec()),
            master_key: Secret::new(MASTER.to_vec()),
            shared_secret: Secret::new(SHARED.to_vec()),
        });
        let auth = Authenticator::new(&config, store.clone(), secrets);
        Fixture {
            _dir: dir,
            store,
            auth,
        }
    }

    impl Fixture {
        async fn register(&self, id: &str, tier: &str, method: &'static str) {
            let (id, tier) = (id.to_string(), tier.to_string());
            self.store
                .write(move |ctx| miners::register(ctx, &id, &tier, method))
                .await
                .unwrap();
        }

        async fn verify(
            &self,
            headers: &HeaderMap,
            body: &[u8],
            binding: Binding<'_>,
        ) -> Result<Signed, AuthError> {
            self.auth
                .verify(headers, body, Bucket::Signed, binding)
                .await
        }
    }

    fn personal_key(id: &str, version: u32) -> Vec<u8> {
        miners::derive_api_key(&MASTER, id, version).into_bytes()
    }

    fn now_s() -> i64 {
        crate::clock::now_s()
    }

    fn body() -> Vec<u8> {
        format!(
            r#"{{"amount_sat":150000,"event_id":"e-1","ts":{}}}"#,
            now_s()
        )
        .into_bytes()
    }

    /// What a client sends: the signature over `METHOD SP PATH LF canonical`.
    fn sign_bound(key: &[u8], method: &str, path: &str, body: &[u8]) -> String {
        let canonical = canonicalize(body).unwrap();
        hmac_sha256_hex(key, bound_message(method, path, &canonical).as_bytes())
    }

    fn sign_body(key: &[u8], body: &[u8]) -> String {
        hmac_sha256_hex(key, canonicalize(body).unwrap().as_bytes())
    }

    fn headers(user: &str, signature: &str, ts: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-user-id", HeaderValue::from_str(user).unwrap());
        h.insert("x-signature", HeaderValue::from_str(signature).unwrap());
        h.insert("x-timestamp", HeaderValue::from_str(ts).unwrap());
        h
    }

    fn post() -> Binding<'static> {
        Binding::Request {
            method: "POST",
            path: PATH,
        }
    }

    #[tokio::test]
    async fn a_request_signed_over_method_path_and_body_is_accepted() {
        let f = fixture(|_| {});
        f.register("alice", "TIER_2_DESKTOP", miners::AUTH_PERSONAL)
            .await;
        let body = body();
        let sig = sign_bound(&personal_key("alice", 1), "POST", PATH, &body);
        let signed = f
            .verify(&headers("alice", &sig, &now_s().to_string()), &body, post())
            .await
            .unwrap();
        assert_eq!(signed.miner.id, "alice");
        assert_eq!(signed.body["amount_sat"], 150000);
    }

    #[tokio::test]
    async fn any_one_byte_change_of_the_body_is_refused() {
        let f = fixture(|c| c.limits.signed_per_minute = 10_000);
        f.register("alice", "TIER_2_DESKTOP", miners::AUTH_PERSONAL)
            .await;
        let body = body();
        let sig = sign_bound(&personal_key("alice", 1), "POST", PATH, &body);
        let h = headers("alice", &sig, &now_s().to_string());
        for i in 0..body.len() {
            let mut changed = body.clone();
            changed[i] ^= 0x01;
            match f.verify(&h, &changed, post()).await {
                Err(AuthError::BadSignature | AuthError::Malformed(_)) => {}
                other => panic!("byte {i} changed: {other:?}"),
            }
        }
        // The untouched body still passes with the same headers.
        assert!(f.verify(&h, &body, post()).await.is_ok());
    }

    #[tokio::test]
    async fn a_signature_is_bound_to_its_method_path_and_form() {
        let f = fixture(|_| {});
        f.register("alice", "TIER_2_DESKTOP", miners::AUTH_PERSONAL)
            .await;
        let key = personal_key("alice", 1);
        let body = body();
        let ts = now_s().to_string();
        let bound = sign_bound(&key, "POST", PATH, &body);
        let body_only = sign_body(&key, &body);
        let refused = [
            // Bound to another endpoint or method.
            (
                &bound,
                Binding::Request {
                    method: "POST",
                    path: "/api/miner/payout_address",
                },
            ),
            (
                &bound,
                Binding::Request {
                    method: "GET",
                    path: PATH,
                },
            ),
            // One form where the other is required.
            (&bound, Binding::Body),
            (&body_only, post()),
        ];
        for (sig, binding) in refused {
            let r = f.verify(&headers("alice", sig, &ts), &body, binding).await;
            assert!(
                matches!(r, Err(AuthError::BadSignature)),
                "{binding:?}: {r:?}"
            );
        }
        // Each form verifies where it is allowed.
        let either = Binding::Either {
            method: "POST",
            path: PATH,
        };
        for (sig, binding) in [
            (&body_only, Binding::Body),
            (&bound, post()),
            (&body_only, either),
            (&bound, either),
        ] {
            let r = f.verify(&headers("alice", sig, &ts), &body, binding).await;
            assert!(r.is_ok(), "{binding:?}: {r:?}");
        }
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused() {
        let f = fixture(|_| {});
        f.register("alice", "TIER_2_DESKTOP", miners::AUTH_PERSONAL)
            .await;
        f.register("bob", "TIER_2_DESKTOP", miners::AUTH_PERSONAL)
            .await;
        let body = body();
        let ts = now_s().to_string();
        let wrong_keys = [
            personal_key("bob", 1),
            personal_key("alice", 2),
            miners::derive_api_key(&[9; 32], "alice", 1).into_bytes(),
            SHARED.to_vec(),
        ];
        for key in wrong_keys {
            let sig = sign_bound(&key, "POST", PATH, &body);
            let r = f.verify(&headers("alice", &sig, &ts), &body, post()).await;
            assert!(matches!(r, Err(AuthError::BadSignature)), "{r:?}");
        }
    }

    #[tokio::test]
    async fn a_rotated_key_stops_working_at_once() {
        let f = fixture(|_| {});
        f.register("alice", "TIER_2_DESKTOP", miners::AUTH_PERSONAL)
            .await;
        let version = f
            .store
            .write(|ctx| miners::issue_key(ctx, "alice", false))
            .await
            .unwrap();
        assert_eq!(version, 2);
        let body = body();
        let ts = now_s().to_string();
        let old = sign_bound(&personal_key("alice", 1), "POST", PATH, &body);
        let r = f.verify(&headers("alice", &old, &ts), &body, post()).await;
        assert!(matches!(r, Err(AuthError::BadSignature)), "{r:?}");
        let new = sign_bound(&personal_key("alice", 2), "POST", PATH, &body);
        assert!(
            f.verify(&headers("alice", &new, &ts), &body, post())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn signatures_are_compared_as_decoded_bytes() {
        let f = fixture(|_| {});
        f.register("alice", "TIER_2_DESKTOP", miners::AUTH_PERSONAL)
            .await;
        let body = body();
        let ts = now_s().to_string();
        let sig = sign_bound(&personal_key("alice", 1), "POST", PATH, &body);
        // The same tag in upper case is the same bytes: accepted. A string
        // comparison would refuse it; the byte comparison is
        // `proto::sig::verify_hmac_sha256_hex` (subtle, constant time).
        let upper = sig.to_uppercase();
        assert!(
            f.verify(&headers("alice", &upper, &ts), &body, post())
                .await
                .is_ok()
        );
        let truncated = &sig[..62];
        let extended = format!("{sig}00");
        let not_hex = format!("{}zz", &sig[..62]);
        for bad in [truncated, extended.as_str(), not_hex.as_str()] {
            let r = f.verify(&headers("alice", bad, &ts), &body, post()).await;
            assert!(matches!(r, Err(AuthError::BadSignature)), "{bad}: {r:?}");
        }
    }

    #[tokio::test]
    async fn header_timestamps_outside_the_window_are_refused_both_ways() {
        let f = fixture(|c| c.ingest.timestamp_tolerance_s = 300);
        f.register("alice", "TIER_2_DESKTOP", miners::AUTH_PERSONAL)
            .await;
        let body = body();
        let sig = sign_bound(&personal_key("alice", 1), "POST", PATH, &body);
        let now = now_s();
        for (ts, word) in [(now - 360, "behind"), (now + 360, "ahead of")] {
            match f
                .verify(&headers("alice", &sig, &ts.to_string()), &body, post())
                .await
            {
                Err(AuthError::BadTimestamp(m)) => {
                    assert!(m.contains(word) && m.contains("300 s"), "{m}")
                }
                other => panic!("{ts}: {other:?}"),
            }
        }
        for ts in ["yesterday", "NaN", "inf", "-inf", "1e400"] {
            let r = f.verify(&headers("alice", &sig, ts), &body, post()).await;
            assert!(matches!(r, Err(AuthError::BadTimestamp(_))), "{ts}: {r:?}");
        }
        // Inside the window, in both directions, with fractions of seconds.
        for ts in [
            (now - 240).to_string(),
            (now + 240).to_string(),
            format!("{now}.25"),
        ] {
            let r = f.verify(&headers("alice", &sig, &ts), &body, post()).await;
            assert!(r.is_ok(), "{ts}: {r:?}");
        }
    }

    #[tokio::test]
    async fn a_signed_body_must_carry_a_ts_inside_the_window() {
        let f = fixture(|c| c.ingest.timestamp_tolerance_s = 300);
        let now = now_s();
        let ts = |v: Value| f.auth.require_body_ts(&serde_json::json!({ "ts": v }));
        assert_eq!(ts(now.into()).unwrap(), now as f64);
        assert!(matches!(
            f.auth.require_body_ts(&serde_json::json!({})),
            Err(AuthError::BadTimestamp(_))
        ));
        for bad in [
            Value::from((now - 360).to_string()),
            Value::from(now - 360),
            Value::from(now + 360),
            Value::Null,
        ] {
            assert!(
                matches!(ts(bad.clone()), Err(AuthError::BadTimestamp(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn missing_or_empty_headers_are_named() {
        let f = fixture(|_| {});
        let body = body();
        let full = headers("alice", &"ab".repeat(32), &now_s().to_string());
        for (name, display) in [
            ("x-user-id", "X-User-ID"),
            ("x-signature", "X-Signature"),
            ("x-timestamp", "X-Timestamp"),
        ] {
            let mut missing = full.clone();
            missing.remove(name);
            let mut empty = full.clone();
            empty.insert(name, HeaderValue::from_static("  "));
            for h in [missing, empty] {
                match f.verify(&h, &body, post()).await {
                    Err(AuthError::Missing(named)) => assert_eq!(named, display),
                    other => panic!("{name}: {other:?}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn users_without_a_usable_key_are_unknown() {
        let f = fixture(|c| c.auth.allow_shared = false);
        // Created by a pool report: no key at all.
        f.store
            .write(|ctx| miners::ensure_exists(ctx, "pool-only", "pool"))
            .await
            .unwrap();
        // A development (shared-secret) user while shared keys are off.
        f.register("dev", "TIER_2_DESKTOP", miners::AUTH_SHARED)
            .await;
        let body = body();
        let ts = now_s().to_string();
        for (user, key) in [
            ("nobody", personal_key("nobody", 1)),
            ("pool-only", personal_key("pool-only", 1)),
            ("dev", SHARED.to_vec()),
        ] {
            let sig = sign_bound(&key, "POST", PATH, &body);
            let r = f.verify(&headers(user, &sig, &ts), &body, post()).await;
            assert!(
                matches!(r, Err(AuthError::UnknownUser(ref u)) if u == user),
                "{r:?}"
            );
        }
        // With shared keys allowed, the development user signs with the
        // shared secret.
        let f = fixture(|c| c.auth.allow_shared = true);
        f.register("dev", "TIER_2_DESKTOP", miners::AUTH_SHARED)
            .await;
        let sig = sign_bound(&SHARED, "POST", PATH, &body);
        assert!(
            f.verify(&headers("dev", &sig, &ts), &body, post())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn an_inactive_miner_is_told_so_only_with_a_valid_signature() {
        let f = fixture(|_| {});
        f.register("alice", "TIER_2_DESKTOP", miners::AUTH_PERSONAL)
            .await;
        f.store
            .write(|ctx| miners::set_active(ctx, "alice", false))
            .await
            .unwrap();
        let body = body();
        let ts = now_s().to_string();
        let forged = sign_bound(&personal_key("bob", 1), "POST", PATH, &body);
        let r = f
            .verify(&headers("alice", &forged, &ts), &body, post())
            .await;
        assert!(matches!(r, Err(AuthError::BadSignature)), "{r:?}");
        let sig = sign_bound(&personal_key("alice", 1), "POST", PATH, &body);
        let r = f.verify(&headers("alice", &sig, &ts), &body, post()).await;
        assert!(matches!(r, Err(AuthError::Inactive)), "{r:?}");
    }

    #[tokio::test]
    async fn only_verified_requests_spend_a_miners_rate_limit() {
        let f = fixture(|c| c.limits.signed_per_minute = 1);
        f.register("alice", "TIER_2_DESKTOP", miners::AUTH_PERSONAL)
            .await;
        let body = body();
        let ts = now_s().to_string();
        let forged = sign_bound(&personal_key("bob", 1), "POST", PATH, &body);
        for _ in 0..5 {
            let r = f
                .verify(&headers("alice", &forged, &ts), &body, post())
                .await;
            assert!(matches!(r, Err(AuthError::BadSignature)), "{r:?}");
        }
        let sig = sign_bound(&personal_key("alice", 1), "POST", PATH, &body);
        let h = headers("alice", &sig, &ts);
        assert!(f.verify(&h, &body, post()).await.is_ok());
        match f.verify(&h, &body, post()).await {
            Err(AuthError::RateLimited {
                limit_per_minute,
                retry_after_s,
            }) => {
                assert_eq!(limit_per_minute, 1);
                assert!(retry_after_s >= 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn block_submissions_are_limited_per_tier() {
        let f = fixture(|c| {
            c.limits.blocks_per_minute = 3;
            c.limits.tiers.insert("TIER_1_MOBILE".into(), 1);
        });
        f.register("phone", "TIER_1_MOBILE", miners::AUTH_PERSONAL)
            .await;
        f.register("desk", "TIER_2_DESKTOP", miners::AUTH_PERSONAL)
            .await;
        let body = body();
        let ts = now_s().to_string();
        let mut admitted = std::collections::BTreeMap::new();
        for user in ["phone", "desk"] {
            let sig = sign_body(&personal_key(user, 1), &body);
            let h = headers(user, &sig, &ts);
            let mut n = 0;
            for _ in 0..5 {
                match f
                    .auth
                    .verify(&h, &body, Bucket::Blocks, Binding::Body)
                    .await
                {
                    Ok(_) => n += 1,
                    Err(AuthError::RateLimited { .. }) => {}
                    Err(e) => panic!("{user}: {e:?}"),
                }
            }
            admitted.insert(user, n);
        }
        assert_eq!(admitted["phone"], 1);
        assert_eq!(admitted["desk"], 3);
        // The signed bucket is a separate budget.
        let sig = sign_bound(&personal_key("phone", 1), "POST", PATH, &body);
        assert!(
            f.verify(&headers("phone", &sig, &ts), &body, post())
                .await
                .is_ok()
        );
    }

    #[test]
    fn the_admin_key_must_match_whole() {
        let secrets = Secrets {
            report_secret: Secret::new(vec![1; 32]),
            admin_api_key: Secret::new(b"admin-key-0123456789".to_vec()),
            master_key: Secret::new(MASTER.to_vec()),
            shared_secret: Secret::new(SHARED.to_vec()),
        };
        assert!(admin_key_matches(&secrets, "admin-key-0123456789"));
        for wrong in [
            "",
            "admin-key-012345678",
            "admin-key-01234567890",
            "ADMIN-KEY-0123456789",
            "admin-key-0123456788",
        ] {
            assert!(!admin_key_matches(&secrets, wrong), "{wrong:?}");
        }
    }
}
