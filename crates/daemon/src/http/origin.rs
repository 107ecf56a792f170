//! Cross-site request refusal and the JSON-only rule for browser-facing
//! POSTs.
//!
//! A page on another site can make a visitor's browser send a POST without
//! any preflight when it uses a "simple" content type
//! (`application/x-www-form-urlencoded`, `multipart/form-data`,
//! `text/plain`). So, on every state-changing method (anything but GET,
//! HEAD, OPTIONS):
//!
//! - `Sec-Fetch-Site: cross-site` → 403 `cross_origin`;
//! - an `Origin` that is neither the request's own (`Host`) nor listed in
//!   `http.allowed_origins` → 403 `cross_origin` (`Origin: null` included);
//! - a simple (form) content type → 415 `unsupported_media_type`,
//!   everywhere;
//! - on browser-facing endpoints (everything but pool software's
//!   `/api/report_share`, `/v1/ingest/block`, `/api/v2/shares`, which the
//!   seeds' reporters may call without a content type), a body whose type
//!   is not `application/json` → 415 `unsupported_media_type`. An empty
//!   body needs no type.
//!
//! Non-browser clients send neither `Origin` nor `Sec-Fetch-Site` and are
//! unaffected. No CORS headers are ever sent, so a cross-origin `fetch`
//! with `application/json` or `X-API-KEY` fails its preflight.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::error::ApiError;
use crate::metrics::{Metrics, StateLabel};

pub struct OriginPolicy {
    pub allowed_origins: Vec<String>,
    pub metrics: Metrics,
}

/// Endpoints called by pool software rather than browsers.
pub fn is_pool_endpoint(path: &str) -> bool {
    matches!(
        path,
        "/api/report_share" | "/v1/ingest/block" | "/api/v2/shares"
    )
}

/// The content types a cross-site HTML form (or a no-cors fetch) can send
/// without a preflight.
const SIMPLE_TYPES: [&str; 3] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
];

/// Why a request is refused, if it is.
pub fn check(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    allowed: &[String],
) -> Option<ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let cross = |why: String| Some(ApiError::new(StatusCode::FORBIDDEN, "cross_origin", why));
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes().eq_ignore_ascii_case(b"cross-site")
    {
        return cross(
            "cross-site requests may not change state (Sec-Fetch-Site: cross-site)".into(),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").trim();
        if !origin_allowed(
            origin,
            headers.get(header::HOST).and_then(|h| h.to_str().ok()),
            allowed,
        ) {
            return cross(format!(
                "requests from origin {origin:?} may not change state here (http.allowed_origins)"
            ));
        }
    }
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| {
        v.to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let unsupported = |what: &str| {
        Some(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{what}: send the body as Content-Type: application/json"),
        ))
    };
    if let Some(ct) = &content_type
        && SIMPLE_TYPES.contains(&ct.as_str())
    {
        return unsupported(&format!("{ct} is not accepted"));
    }
    if !is_pool_endpoint(path)
        && has_body(headers)
        && content_type.as_deref() != Some("application/json")
    {
        return match content_type {
            None => unsupported("the body has no Content-Type"),
            Some(ct) => unsupported(&format!("{ct} is not accepted")),
        };
    }
    None
}

/// Whether the request announces a body (a non-zero length, or chunked).
fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// `origin` (`scheme://host[:port]`) is the server's own — its authority is
/// the request's `Host` — or one of `allowed`.
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // "null" and anything else that is not an origin
    };
    let Some(host) = host else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let normalise = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        match a.rsplit_once(':') {
            // Not the inside of an IPv6 literal: a port follows the `]`.
            Some((h, p)) if !h.ends_with(':') && p == default_port && !p.contains(']') => {
                h.to_string()
            }
            _ => a,
        }
    };
    normalise(authority) == normalise(host.trim())
}

/// The middleware.
pub async fn guard(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(refusal) = check(
        request.method(),
        request.uri().path(),
        request.headers(),
        &policy.allowed_origins,
    ) {
        policy
            .metrics
            .http_refused
            .get_or_create(&StateLabel {
                state: refusal.code,
            })
            .inc();
        return refusal.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn code(method: Method, path: &str, pairs: &[(&'static str, &str)]) -> Option<&'static str> {
        check(
            &method,
            path,
            &headers(pairs),
            &["https://pool.example".to_string()],
        )
        .map(|e| e.code)
    }

    #[test]
    fn reads_and_non_browser_clients_pass() {
        assert_eq!(
            code(
                Method::GET,
                "/api/faucet",
                &[("origin", "https://evil.example")]
            ),
            None
        );
        assert_eq!(
            code(
                Method::POST,
                "/api/faucet",
                &[
                    ("content-type", "application/json"),
                    ("content-length", "5")
                ]
            ),
            None
        );
        // Pool software may omit the type.
        assert_eq!(
            code(
                Method::POST,
                "/api/report_share",
                &[("content-length", "5")]
            ),
            None
        );
        assert_eq!(
            code(Method::POST, "/v1/ingest/block", &[("content-length", "5")]),
            None
        );
        // An empty body needs no type.
        assert_eq!(
            code(Method::POST, "/api/admin/withdrawals/1/approve", &[]),
            None
        );
    }

    #[test]
    fn cross_site_is_refused() {
        let h = [
            ("host", "127.0.0.1:8080"),
            ("content-type", "application/json"),
        ];
        assert_eq!(
            code(
                Method::POST,
                "/api/faucet",
                &[h[0], h[1], ("origin", "https://evil.example")]
            ),
            Some("cross_origin")
        );
        assert_eq!(
            code(
                Method::POST,
                "/api/report_share",
                &[h[0], ("origin", "null")]
            ),
            Some("cross_origin")
        );
        assert_eq!(
            code(
                Method::POST,
                "/api/faucet",
                &[h[0], h[1], ("sec-fetch-site", "cross-site")]
            ),
            Some("cross_origin")
        );
        assert_eq!(
            code(
                Method::POST,
                "/api/faucet",
                &[h[0], h[1], ("origin", "http://127.0.0.1:8080")]
            ),
            None
        );
        assert_eq!(
            code(
                Method::POST,
                "/api/faucet",
                &[h[0], h[1], ("origin", "https://pool.example")]
            ),
            None
        );
        assert_eq!(
            code(
                Method::DELETE,
                "/api/admin/x",
                &[h[0], ("origin", "https://evil.example")]
            ),
            Some("cross_origin")
        );
    }

    #[test]
    fn form_types_are_refused_everywhere() {
        for ct in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain;charset=UTF-8",
        ] {
            assert_eq!(
                code(
                    Method::POST,
                    "/api/report_share",
                    &[("content-type", ct), ("content-length", "3")]
                ),
                Some("unsupported_media_type")
            );
            assert_eq!(
                code(
                    Method::POST,
                    "/api/faucet",
                    &[("content-type", ct), ("content-length", "3")]
                ),
                Some("unsupported_media_type")
            );
        }
        assert_eq!(
            code(Method::POST, "/api/withdraw", &[("content-length", "3")]),
            Some("unsupported_media_type")
        );
        assert_eq!(
            code(
                Method::POST,
                "/api/withdraw",
                &[("content-type", "application/xml"), ("content-length", "3")]
            ),
            Some("unsupported_media_type")
        );
        assert_eq!(
            code(
                Method::POST,
                "/api/withdraw",
                &[
                    ("content-type", "Application/JSON; charset=utf-8"),
                    ("content-length", "3")
                ]
            ),
            None
        );
    }

    #[test]
    fn origin_matching() {
        assert!(origin_allowed(
            "https://pool.example",
            Some("pool.example"),
            &[]
        ));
        assert!(origin_allowed(
            "https://pool.example",
            Some("pool.example:443"),
            &[]
        ));
        assert!(origin_allowed("http://[::1]:8080", Some("[::1]:8080"), &[]));
        assert!(!origin_allowed(
            "http://[::1]:8081",
            Some("[::1]:8080"),
            &[]
        ));
        assert!(!origin_allowed(
            "https://pool.example.evil",
            Some("pool.example"),
            &[]
        ));
        assert!(!origin_allowed("null", Some("pool.example"), &[]));
        assert!(!origin_allowed("https://pool.example", None, &[]));
    }
}
