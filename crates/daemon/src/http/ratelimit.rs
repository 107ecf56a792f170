//! Per-client-IP rate limits in front of every HTTP endpoint, by route
//! class, and the per-key limit of signed pool ingest.
//!
//! Keyed GCRA limiters (`governor`), burst included, per client address.
//! The address is the one [`super::client_ip::resolve`] gives — the TCP
//! peer, or the right-most untrusted hop of `X-Forwarded-For` when the peer
//! is a configured proxy — so a client that writes its own
//! `X-Forwarded-For` is still limited by its real address. IPv6 clients are
//! keyed by their /64: one host usually holds a whole /64, and keying by
//! full address would let it rotate past any limit.
//!
//! Every request but pool ingest uses the general allowance
//! (`http.per_ip_per_minute`); public classes also use their own, much
//! smaller one: profiles and miner pages, stream opens, faucet challenges
//! and claims, registrations ([`RouteClass`]).
//!
//! **Signed pool ingest** (`/api/report_share`, `/api/v2/shares`) is never
//! limited by IP: an honest pool sends everything from one gateway address.
//! It is limited by its key (`http.ingest_per_key_per_minute`, charged for
//! every request that passed authentication), and an address is throttled
//! on ingest only after more than `http.ingest_auth_failures_per_ip_per_minute`
//! requests that failed authentication (401). Both are charged after the
//! answer and consulted before the next request, so nobody can spend
//! another's allowance: only requests with the right key charge the key.
//!
//! `/healthz` and `/metrics` asked from loopback are exempt, so local
//! monitoring keeps working while an address is being throttled.
//!
//! Memory: the limiters hold one small cell per address seen recently;
//! once a minute (piggy-backed on requests, off the request path) addresses
//! whose allowance is full again are dropped, so the maps hold at most the
//! addresses of the last minute or so.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use crate::app::App;
use crate::metrics::{LimitLabel, Metrics};

/// Seconds between sweeps of idle addresses.
const SWEEP_EVERY_S: i64 = 60;

/// Which allowance a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// Signed pool reports: limited per key, not per IP.
    PoolIngest,
    Register,
    Faucet,
    Stream,
    Profile,
    General,
}

pub fn classify(method: &Method, path: &str) -> RouteClass {
    match path {
        "/api/report_share" | "/api/v2/shares" => RouteClass::PoolIngest,
        "/v1/user/register" => RouteClass::Register,
        "/api/faucet/challenge" => RouteClass::Faucet,
        "/api/faucet" if method == Method::POST => RouteClass::Faucet,
        "/api/stream" => RouteClass::Stream,
        _ if path.starts_with("/v1/user/profile/") || path.starts_with("/api/miners/") => {
            RouteClass::Profile
        }
        _ => RouteClass::General,
    }
}

/// One keyed limiter and its size, for the 429 message.
struct Limit<K: Hash + Eq + Clone> {
    limiter: Arc<DefaultKeyedRateLimiter<K>>,
    per_minute: u32,
    label: &'static str,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Limit<K> {
    fn new(per_minute: u32, label: &'static str) -> Limit<K> {
        let per_minute = per_minute.max(1);
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).expect("at least 1"));
        Limit {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            per_minute,
            label,
        }
    }

    /// `Err(seconds to wait)` when `key` has no allowance left.
    fn check(&self, key: &K) -> Result<(), u64> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| round_up(not_until.wait_time_from(DefaultClock::default().now())))
    }
}

/// A limit charged after the answer and consulted before the request: only
/// requests that qualified (passed, or failed, authentication) spend it.
struct Charged<K: Hash + Eq + Clone> {
    limit: Limit<K>,
    blocked: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Charged<K> {
    fn new(per_minute: u32, label: &'static str) -> Charged<K> {
        Charged {
            limit: Limit::new(per_minute, label),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    fn refused(&self, key: &K) -> Option<u64> {
        let mut blocked = self.blocked.lock().expect("limiter lock");
        let until = *blocked.get(key)?;
        let now = Instant::now();
        if until > now {
            return Some(round_up(until - now));
        }
        blocked.remove(key);
        None
    }

    fn charge(&self, key: K) {
        if let Err(wait_s) = self.limit.check(&key) {
            let until = Instant::now() + Duration::from_secs(wait_s);
            self.blocked
                .lock()
                .expect("limiter lock")
                .insert(key, until);
        }
    }
}

/// Round up: "retry in 0 s" would invite an immediate retry.
fn round_up(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

pub struct IpRateLimit {
    general: Limit<IpAddr>,
    profile: Limit<IpAddr>,
    stream: Limit<IpAddr>,
    faucet: Limit<IpAddr>,
    register: Limit<IpAddr>,
    ingest_key: Charged<&'static str>,
    ingest_failures: Charged<IpAddr>,
    trusted: Vec<IpAddr>,
    metrics: Metrics,
    last_sweep_s: AtomicI64,
}

impl IpRateLimit {
    pub fn new(app: &App) -> Arc<IpRateLimit> {
        let http = &app.config.http;
        Arc::new(IpRateLimit {
            general: Limit::new(http.per_ip_per_minute, "ip"),
            profile: Limit::new(http.profile_per_ip_per_minute, "ip_profile"),
            stream: Limit::new(http.stream_per_ip_per_minute, "ip_stream"),
            faucet: Limit::new(http.faucet_per_ip_per_minute, "ip_faucet"),
            register: Limit::new(http.register_per_ip_per_minute, "ip_register"),
            ingest_key: Charged::new(http.ingest_per_key_per_minute, "pool_key"),
            ingest_failures: Charged::new(
                http.ingest_auth_failures_per_ip_per_minute,
                "ip_ingest_auth",
            ),
            trusted: http.trusted_proxies.clone(),
            metrics: app.metrics.clone(),
            last_sweep_s: AtomicI64::new(crate::clock::now_s()),
        })
    }

    /// Drops idle addresses at most once a minute, on the blocking pool
    /// (the sweep walks the whole maps).
    fn maybe_sweep(self: &Arc<Self>) {
        let now = crate::clock::now_s();
        let last = self.last_sweep_s.load(Ordering::Relaxed);
        if now - last < SWEEP_EVERY_S
            || self
                .last_sweep_s
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            for limit in [
                &this.general,
                &this.profile,
                &this.stream,
                &this.faucet,
                &this.register,
                &this.ingest_failures.limit,
            ] {
                limit.limiter.retain_recent();
                limit.limiter.shrink_to_fit();
            }
            this.ingest_key.limit.limiter.retain_recent();
            let now = Instant::now();
            this.ingest_failures
                .blocked
                .lock()
                .expect("limiter lock")
                .retain(|_, until| *until > now);
            this.metrics
                .rate_limit_keys
                .set(this.general.limiter.len() as i64);
        });
    }

    fn refuse(
        &self,
        label: &'static str,
        per_minute: u32,
        retry_after_s: u64,
        what: &str,
    ) -> Response {
        self.metrics
            .rate_limited
            .get_or_create(&LimitLabel { limit: label })
            .inc();
        ApiError::too_many(
            format!("too many {what}; the limit is {per_minute} per minute"),
            retry_after_s,
        )
        .with("limit", label)
        .with("limit_per_minute", per_minute)
        .with("retry_after_s", retry_after_s)
        .into_response()
    }

    fn refuse_by<K: Hash + Eq + Clone + Send + Sync + 'static>(
        &self,
        limit: &Limit<K>,
        retry_after_s: u64,
        what: &str,
    ) -> Response {
        self.refuse(limit.label, limit.per_minute, retry_after_s, what)
    }
}

/// The limiter key: IPv4 (and IPv4-mapped IPv6) as is, IPv6 by /64.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

/// Which limit a 429 from further in came from, for the metric (a bounded
/// label set; faucet cooldowns are counted by `faucet_requests`).
fn inner_limit(path: &str) -> Option<&'static str> {
    if path.starts_with("/api/faucet") || path == "/api/stream" {
        None
    } else if path == "/v1/user/register" {
        Some("registration")
    } else {
        Some("user")
    }
}

/// The pool key a pool-ingest request is charged to. There is one report
/// secret per deployment, so one key per contract.
fn pool_key(path: &str) -> &'static str {
    if path == "/api/v2/shares" {
        "v2_shares"
    } else {
        "report_share"
    }
}

/// The middleware: refuse with 429 past the allowance of the request's
/// class.
pub async fn limit(
    State(limit): State<Arc<IpRateLimit>>,
    request: Request,
    next: Next,
) -> Response {
    // Without the peer (in-process router tests) there is no one to limit.
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(request).await;
    };
    let client = key(super::client_ip::resolve(
        peer,
        request.headers(),
        &limit.trusted,
    ));
    let path = request.uri().path();
    let exempt = client.is_loopback() && (path == "/healthz" || path == "/metrics");
    let inner = inner_limit(path);
    let class = classify(request.method(), path);
    if exempt {
        return next.run(request).await;
    }
    limit.maybe_sweep();
    if class == RouteClass::PoolIngest {
        let pool = pool_key(path);
        if let Some(wait) = limit.ingest_failures.refused(&client) {
            return limit.refuse_by(
                &limit.ingest_failures.limit,
                wait,
                "reports that failed authentication from this address",
            );
        }
        if let Some(wait) = limit.ingest_key.refused(&pool) {
            return limit.refuse_by(&limit.ingest_key.limit, wait, "reports for this pool key");
        }
        let response = next.run(request).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            limit.ingest_failures.charge(client);
        } else {
            limit.ingest_key.charge(pool);
        }
        return response;
    }
    if let Err(wait) = limit.general.check(&client) {
        return limit.refuse_by(&limit.general, wait, "requests from this address");
    }
    let class_limit = match class {
        RouteClass::Register => Some((&limit.register, "registrations from this address")),
        RouteClass::Faucet => Some((&limit.faucet, "faucet requests from this address")),
        RouteClass::Stream => Some((&limit.stream, "stream opens from this address")),
        RouteClass::Profile => Some((&limit.profile, "profile requests from this address")),
        RouteClass::General | RouteClass::PoolIngest => None,
    };
    if let Some((class_limit, what)) = class_limit
        && let Err(wait) = class_limit.check(&client)
    {
        return limit.refuse_by(class_limit, wait, what);
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::TOO_MANY_REQUESTS
        && let Some(which) = inner
    {
        limit
            .metrics
            .rate_limited
            .get_or_create(&LimitLabel { limit: which })
            .inc();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(key(a), key(b));
        assert_ne!(key(a), key(c));
        assert_eq!(key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ipv4_and_mapped_ipv4_share_a_key() {
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(key(v4), v4);
        assert_eq!(key(mapped), v4);
    }

    #[test]
    fn inner_limits_are_labelled() {
        assert_eq!(inner_limit("/v1/user/register"), Some("registration"));
        assert_eq!(inner_limit("/v1/ingest/block"), Some("user"));
        assert_eq!(inner_limit("/api/faucet"), None);
    }

    #[test]
    fn route_classes() {
        assert_eq!(
            classify(&Method::POST, "/api/report_share"),
            RouteClass::PoolIngest
        );
        assert_eq!(
            classify(&Method::POST, "/api/v2/shares"),
            RouteClass::PoolIngest
        );
        assert_eq!(
            classify(&Method::POST, "/v1/ingest/block"),
            RouteClass::General
        );
        assert_eq!(classify(&Method::POST, "/api/faucet"), RouteClass::Faucet);
        assert_eq!(classify(&Method::GET, "/api/faucet"), RouteClass::General);
        assert_eq!(
            classify(&Method::GET, "/api/faucet/challenge"),
            RouteClass::Faucet
        );
        assert_eq!(classify(&Method::GET, "/api/stream"), RouteClass::Stream);
        assert_eq!(classify(&Method::GET, "/api/miners/x"), RouteClass::Profile);
        assert_eq!(
            classify(&Method::GET, "/v1/user/profile/x"),
            RouteClass::Profile
        );
        assert_eq!(
            classify(&Method::POST, "/v1/user/register"),
            RouteClass::Register
        );
    }

    #[test]
    fn charged_limit_refuses_only_after_charges() {
        let charged: Charged<&'static str> = Charged::new(2, "pool_key");
        assert_eq!(charged.refused(&"k"), None);
        charged.charge("k");
        charged.charge("k");
        assert_eq!(charged.refused(&"k"), None);
        charged.charge("k");
        assert!(charged.refused(&"k").is_some());
        assert_eq!(charged.refused(&"other"), None);
    }
}
