//! The HTTP server: routes, shared extractors and the error contract.
//!
//! Handlers parse, call a service, and map its errors; no SQL here. Every
//! failure is JSON `{"error", "message"}` — including the ones produced by
//! layers below the handlers (unknown route, wrong method, overload), which
//! [`json_errors`] rewrites.

pub mod admin;
pub mod assets;
pub mod blocks;
pub mod body;
pub mod client_ip;
pub mod error;
pub mod faucet;
pub mod ingest;
pub mod miner;
pub mod origin;
pub mod payouts;
pub mod ratelimit;
pub mod shares;
pub mod sse;
pub mod transport;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::app::App;
use crate::audit::Actor;
pub use error::ApiError;

/// Builds the router: every route, the fallbacks and the JSON error
/// rewrite. The transport limits wrap it once, outside (see [`service`]):
/// a layer given to `Router::layer` is applied to each route separately,
/// so a `ConcurrencyLimitLayer` there was a limit per route, not one.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(ingest::routes())
        .merge(shares::routes())
        .merge(miner::routes())
        .merge(blocks::routes())
        .merge(admin::routes())
        .merge(payouts::routes())
        .merge(faucet::routes())
        .merge(sse::routes())
        .merge(assets::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(json_errors))
        .with_state(app)
}

/// The whole HTTP service: the router inside the transport layers, each
/// applied once around the whole router (so their limits are global), from
/// the outside in:
///
/// 1. the body deadline (`http.body_timeout_s`) and `Connection: close` on
///    any answer given before the body was read (outside everything that
///    may answer early);
/// 2. per-IP rate limits by route class ([`ratelimit`]) — a throttled
///    client is refused before it waits for an in-flight slot;
/// 3. cross-site and content-type refusals ([`origin`]);
/// 4. the one global in-flight limit (`http.max_concurrent_requests`,
///    [`transport::in_flight`]).
pub fn service(
    app: App,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    let body_timeout = Duration::from_secs(app.config.http.body_timeout_s);
    let per_ip = ratelimit::IpRateLimit::new(&app);
    let policy = std::sync::Arc::new(origin::OriginPolicy {
        allowed_origins: app.config.http.allowed_origins.clone(),
        metrics: app.metrics.clone(),
    });
    let in_flight = transport::InFlight::new(&app);
    tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(
            body_timeout,
            body::close_if_body_unread,
        ))
        .layer(middleware::from_fn_with_state(per_ip, ratelimit::limit))
        .layer(middleware::from_fn_with_state(policy, origin::guard))
        .layer(middleware::from_fn_with_state(
            in_flight,
            transport::in_flight,
        ))
        .service(router(app))
}

async fn healthz(State(app): State<App>) -> Response {
    let faulted = app.store.is_faulted();
    let status = if faulted {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": if faulted { "degraded" } else { "ok" },
        "ledger": if faulted { "unavailable" } else { "ok" },
        "simulated": app.simulated(),
        "uptime_s": crate::clock::now_s() - app.started_at,
        "version": env!("CARGO_PKG_VERSION"),
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
) -> Response {
    // The client, not the TCP peer: behind a local reverse proxy every peer
    // is loopback, and the proxy's X-Forwarded-For names the real client.
    let client = client_ip::resolve(peer.ip(), &headers, &app.config.http.trusted_proxies);
    if !app.config.http.metrics_public && !client.is_loopback() {
        return ApiError::forbidden(
            "forbidden",
            "metrics are served to loopback only (http.metrics_public = false)",
        )
        .into_response();
    }
    let mut response = app.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

/// Rewrites any error response that is not already JSON into the JSON
/// error contract, so no layer can leak a bare text body.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let mut rewritten =
        ApiError::new(status, error::code_for_status(status), reason).into_response();
    if let Some(value) = retry_after {
        rewritten.headers_mut().insert(header::RETRY_AFTER, value);
    }
    rewritten
}

/// An admin request: `X-API-KEY` matched the admin key. A key in the query
/// string is refused outright (it would end up in proxy logs and browser
/// history), even next to a correct header.
pub struct Admin {
    pub actor: Actor,
}

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = App::from_ref(state);
        if let Some(query) = parts.uri.query()
            && query
                .split('&')
                .any(|pair| matches!(pair.split('=').next(), Some(k) if k.eq_ignore_ascii_case("api_key") || k.eq_ignore_ascii_case("x-api-key") || k.eq_ignore_ascii_case("apikey")))
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "key_in_query",
                "the admin key must be sent in the X-API-KEY header, never in the URL",
            ));
        }
        let presented = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("unauthorized", "missing X-API-KEY header"))?;
        if !crate::auth::admin_key_matches(&app.secrets, presented) {
            return Err(ApiError::unauthorized(
                "unauthorized",
                "X-API-KEY is not the admin key",
            ));
        }
        let ip = client_ip::ClientIp::from_request_parts(parts, state).await?;
        Ok(Admin {
            actor: Actor::HttpAdmin(ip.0.to_string()),
        })
    }
}

/// `Option<Admin>`: `None` when no `X-API-KEY` header was sent; a key that
/// was sent must be right (a wrong key is 401, never "not an admin").
impl<S> axum::extract::OptionalFromRequestParts<S> for Admin
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !parts.headers.contains_key("x-api-key") {
            return Ok(None);
        }
        <Admin as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// Serves the HTTP service on `listener` until `app.shutdown` is cancelled,
/// then stops accepting and lets in-flight requests finish, for at most
/// `drain_timeout`.
///
/// An HTTP/1.1-only accept loop rather than `axum::serve`: the daemon speaks
/// HTTP/1.1 (a TLS proxy in front terminates anything else), and the
/// protocol-sniffing connection of `axum::serve` costs memory on every
/// connection — which adds up with ten thousand open SSE streams. It also
/// bounds how long a client may take to send its request head, and caps
/// the connections one peer may hold open (`http.max_connections_per_ip`,
/// [`transport::Connections`]).
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    drain_timeout: Duration,
) -> anyhow::Result<()> {
    use tower::ServiceExt;
    let shutdown = app.shutdown.clone();
    let connections = transport::Connections::new(&app);
    let metrics = app.metrics.clone();
    let service = service(app);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: back off, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(slot) = connections.open(peer.ip()) else {
            metrics
                .http_refused
                .get_or_create(&crate::metrics::StateLabel {
                    state: "connections_per_ip",
                })
                .inc();
            tokio::spawn(transport::refuse_connection(
                stream,
                connections.max_per_ip(),
            ));
            continue;
        };
        let service = service.clone();
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                service.clone().oneshot(request)
            });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .keep_alive(true)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // The slot is this connection's until it ends, however it ends.
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => Ok(()),
        _ = tokio::time::sleep(drain_timeout) => {
            tracing::warn!(?drain_timeout, "in-flight HTTP requests did not finish in time; closing them");
            Ok(())
        }
    }
}
