//! Transport limits that no single client can exhaust for the others: the
//! one global in-flight request limit, and open connections per peer.
//!
//! **In flight** (`http.max_concurrent_requests`): one semaphore for the
//! whole server, wrapped around the router (not per route). A request holds
//! a slot from the moment it is routed until its response head is ready —
//! reading its body included, which the body deadline bounds
//! (`http.body_timeout_s`); a stream's body does not hold one. Past the
//! limit a request waits up to [`QUEUE_WAIT`] for a slot, then gets 503
//! `overloaded` with `Retry-After`.
//!
//! **Connections per peer** (`http.max_connections_per_ip`): counted in the
//! accept loop by TCP peer (IPv6 per /64), because the peer is what holds
//! the socket. A connection past the cap is answered 429
//! `too_many_connections` with `Connection: close` and closed. Configured
//! trusted proxies are exempt: every client behind them shares the
//! proxy's address, so the per-client connection cap belongs in the proxy
//! (`limit_conn` in nginx); everything keyed per request (rate limits,
//! streams) still sees the real client through `X-Forwarded-For`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;
use crate::app::App;
use crate::metrics::{Metrics, StateLabel};

/// How long a request waits for an in-flight slot before 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// How long a refused connection may take to send its request head.
const REFUSE_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

pub struct InFlight {
    slots: Arc<Semaphore>,
    max: usize,
    metrics: Metrics,
}

impl InFlight {
    pub fn new(app: &App) -> Arc<InFlight> {
        let max = app.config.http.max_concurrent_requests;
        Arc::new(InFlight {
            slots: Arc::new(Semaphore::new(max)),
            max,
            metrics: app.metrics.clone(),
        })
    }
}

/// The middleware: one slot per request, from the whole server's pool.
pub async fn in_flight(
    State(limit): State<Arc<InFlight>>,
    request: Request,
    next: Next,
) -> Response {
    let slot = match limit.slots.clone().try_acquire_owned() {
        Ok(slot) => slot,
        Err(_) => match tokio::time::timeout(QUEUE_WAIT, limit.slots.clone().acquire_owned()).await
        {
            Ok(Ok(slot)) => slot,
            _ => {
                limit
                    .metrics
                    .http_refused
                    .get_or_create(&StateLabel {
                        state: "overloaded",
                    })
                    .inc();
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    format!(
                        "{} requests are in flight (http.max_concurrent_requests); retry shortly",
                        limit.max
                    ),
                )
                .retry_after(1)
                .into_response();
            }
        },
    };
    let response = next.run(request).await;
    drop(slot);
    response
}

/// Open connections per peer address (IPv6 per /64).
pub struct Connections {
    open: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
    exempt: Vec<IpAddr>,
}

/// One open connection's place in [`Connections`]; released on drop.
pub struct Slot {
    connections: Option<(Arc<Connections>, IpAddr)>,
}

impl Connections {
    pub fn new(app: &App) -> Arc<Connections> {
        Arc::new(Connections {
            open: Mutex::new(HashMap::new()),
            max: app.config.http.max_connections_per_ip,
            exempt: app.config.http.trusted_proxies.clone(),
        })
    }

    pub fn max_per_ip(&self) -> usize {
        self.max
    }

    /// A slot for a new connection from `peer`, or `None` past the cap.
    pub fn open(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        if self.exempt.contains(&peer) || self.exempt.contains(&peer.to_canonical()) {
            return Some(Slot { connections: None });
        }
        let key = super::ratelimit::key(peer);
        let mut open = self.open.lock().expect("connection counts");
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            connections: Some((self.clone(), key)),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((connections, key)) = self.connections.take() {
            let mut open = connections.open.lock().expect("connection counts");
            if let Some(count) = open.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&key);
                }
            }
        }
    }
}

/// Answers every request of a connection past the per-peer cap with 429
/// `too_many_connections` and closes it. Served as HTTP (reading the head,
/// bounded in time) so the client sees why rather than a reset.
pub async fn refuse_connection(stream: tokio::net::TcpStream, max: usize) {
    let service = hyper::service::service_fn(move |_request| async move {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            format!("this address has {max} connections open (http.max_connections_per_ip)"),
        )
        .with("limit", max)
        .retry_after(1)
        .into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        Ok::<_, std::convert::Infallible>(response)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(REFUSE_HEAD_TIMEOUT)
        .keep_alive(false)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let _ = tokio::time::timeout(REFUSE_HEAD_TIMEOUT * 2, connection).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connections(max: usize, exempt: &[&str]) -> Arc<Connections> {
        Arc::new(Connections {
            open: Mutex::new(HashMap::new()),
            max,
            exempt: exempt.iter().map(|a| a.parse().unwrap()).collect(),
        })
    }

    #[test]
    fn connections_are_capped_per_peer_and_released() {
        let c = connections(2, &["10.0.0.1"]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = c.open(a).unwrap();
        let _second = c.open(a).unwrap();
        assert!(c.open(a).is_none());
        assert!(c.open(b).is_some());
        drop(first);
        assert!(c.open(a).is_some());
        // A trusted proxy carries many clients: not capped here.
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..5).map(|_| c.open(proxy).unwrap()).collect();
        assert_eq!(held.len(), 5);
    }

    #[test]
    fn ipv6_peers_share_their_64() {
        let c = connections(1, &[]);
        let _one = c.open("2001:db8::1".parse().unwrap()).unwrap();
        assert!(c.open("2001:db8::2".parse().unwrap()).is_none());
        assert!(c.open("2001:db8:0:1::1".parse().unwrap()).is_some());
    }
}
