//! Per-client-IP rate limit in front of every HTTP endpoint.
//!
//! One keyed GCRA limiter (`governor`) of `http.per_ip_per_minute`
//! requests, burst included, per client address. The address is the one
//! [`super::client_ip::resolve`] gives — the TCP peer, or the right-most
//! untrusted hop of `X-Forwarded-For` when the peer is a configured proxy —
//! so a client that writes its own `X-Forwarded-For` is still limited by its
//! real address. IPv6 clients are keyed by their /64: one host usually holds
//! a whole /64, and keying by full address would let it rotate past any
//! limit.
//!
//! The default (600,000 a minute) is far above what a pool's share gateway
//! sends, so ingest is never throttled by accident; the stricter limits
//! (registration per IP, signed requests per user) live with their
//! services and answer 429 the same way.
//!
//! `/healthz` and `/metrics` asked from loopback are exempt, so local
//! monitoring keeps working while an address is being throttled.
//!
//! Memory: the limiter holds one small cell per address seen recently;
//! once a minute (piggy-backed on requests, off the request path) addresses
//! whose allowance is full again are dropped, so the map holds at most the
//! addresses of the last minute or so.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use crate::app::App;
use crate::metrics::{LimitLabel, Metrics};

/// Seconds between sweeps of idle addresses.
const SWEEP_EVERY_S: i64 = 60;

pub struct IpRateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    per_minute: u32,
    trusted: Vec<IpAddr>,
    metrics: Metrics,
    last_sweep_s: AtomicI64,
}

impl IpRateLimit {
    pub fn new(app: &App) -> Arc<IpRateLimit> {
        let per_minute = app.config.http.per_ip_per_minute.max(1);
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).expect("at least 1"));
        Arc::new(IpRateLimit {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            per_minute,
            trusted: app.config.http.trusted_proxies.clone(),
            metrics: app.metrics.clone(),
            last_sweep_s: AtomicI64::new(crate::clock::now_s()),
        })
    }

    /// Drops idle addresses at most once a minute, on the blocking pool
    /// (the sweep walks the whole map).
    fn maybe_sweep(&self) {
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
        let limiter = self.limiter.clone();
        let gauge = self.metrics.rate_limit_keys.clone();
        tokio::task::spawn_blocking(move || {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            gauge.set(limiter.len() as i64);
        });
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
    if path.starts_with("/api/faucet") {
        None
    } else if path == "/v1/user/register" {
        Some("registration")
    } else {
        Some("user")
    }
}

/// The middleware: refuse with 429 past the per-address allowance.
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
    let client = super::client_ip::resolve(peer, request.headers(), &limit.trusted);
    let path = request.uri().path();
    let exempt = client.is_loopback() && (path == "/healthz" || path == "/metrics");
    let inner = inner_limit(path);
    if !exempt {
        limit.maybe_sweep();
        if let Err(not_until) = limit.limiter.check_key(&key(client)) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Round up: "retry in 0 s" would invite an immediate retry.
            let retry_after_s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            limit
                .metrics
                .rate_limited
                .get_or_create(&LimitLabel { limit: "ip" })
                .inc();
            return ApiError::too_many(
                format!(
                    "too many requests from this address; the limit is {} per minute",
                    limit.per_minute
                ),
                retry_after_s,
            )
            .with("limit_per_minute", limit.per_minute)
            .with("retry_after_s", retry_after_s.max(1))
            .into_response();
        }
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
}
