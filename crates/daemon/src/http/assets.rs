//! The PWA: pages and static files embedded in the binary from
//! `crates/daemon/web/` (plain HTML, CSS and JavaScript modules; no build
//! step, nothing fetched from elsewhere).
//!
//! Every asset is served with its content type, an `ETag` (the SHA-256
//! rust-embed computed at build time) so revalidation is a 304, and strict
//! security headers: a Content-Security-Policy allowing only this origin
//! and no inline script or style, `nosniff`, and `no-referrer`.
//!
//! Caching: everything is `no-cache` (always revalidated, cheap with the
//! ETag) because file names carry no content hash — a long `max-age`
//! would pair a new page with an old script after an upgrade. Offline use
//! is the service worker's job, not the HTTP cache's. Icons, which never
//! change meaning, may be cached for a day.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use super::error::ApiError;
use crate::app::App;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

/// Only this origin; no inline code; no plugins; not framable. `connect-src`
/// covers `fetch` and `EventSource`; `worker-src` the service worker and the
/// proof-of-work worker.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; worker-src 'self'; \
manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// The pages, each at one URL at the root.
pub const PAGES: &[&str] = &["index.html", "admin.html", "psbt.html", "faucet.html"];

pub fn routes() -> Router<App> {
    let mut router = Router::new().route(
        "/",
        get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
    );
    for page in PAGES {
        router = router.route(
            &format!("/{page}"),
            get(move |headers: HeaderMap| async move { serve(page, &headers) }),
        );
    }
    router.route("/static/{*path}", get(static_file))
}

async fn static_file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // Pages are not served from /static/ (one URL per page), and nothing
    // outside static/ can be named.
    if path.split('/').any(|part| part.is_empty() || part == "..") {
        return ApiError::not_found("no such file").into_response();
    }
    serve(&format!("static/{path}"), &headers)
}

pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" if path.ends_with("manifest.json") => "application/manifest+json",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn cache_control(path: &str) -> &'static str {
    if path.ends_with(".png") {
        "public, max-age=86400"
    } else {
        "no-cache"
    }
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return ApiError::not_found("no such file").into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = file.data.into_owned().into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control(path)),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if path == "static/service-worker.js" {
        // The worker lives under /static/ but controls the whole app.
        headers.insert("service-worker-allowed", HeaderValue::from_static("/"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_has_a_known_content_type() {
        for path in Assets::iter() {
            assert_ne!(
                content_type(&path),
                "application/octet-stream",
                "{path} has no content type"
            );
        }
    }

    #[test]
    fn pages_and_shell_are_embedded() {
        for path in [
            "index.html",
            "admin.html",
            "psbt.html",
            "faucet.html",
            "static/manifest.json",
            "static/service-worker.js",
            "static/pow-worker.js",
            "static/icon-192.png",
            "static/icon-512.png",
        ] {
            assert!(Assets::get(path).is_some(), "{path} missing");
        }
    }

    #[test]
    fn no_page_has_inline_script_or_style() {
        for path in Assets::iter().filter(|p| p.ends_with(".html")) {
            let text = String::from_utf8(Assets::get(&path).unwrap().data.into_owned()).unwrap();
            for (i, _) in text.match_indices("<script") {
                let tag_end = text[i..].find('>').unwrap() + i;
                assert!(
                    text[i..tag_end].contains("src="),
                    "{path}: inline <script> at byte {i}"
                );
            }
            assert!(!text.contains("<style"), "{path}: inline <style>");
            assert!(!text.contains(" style="), "{path}: style attribute");
            assert!(!text.contains(" onclick="), "{path}: inline handler");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{path}: external URL"
            );
        }
    }
}
