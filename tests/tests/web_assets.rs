//! The embedded PWA over HTTP (no browser): every page and shell file is
//! served with its content type, the security headers and an ETag; the
//! manifest is a valid web app manifest; the icons are real PNGs of the
//! declared sizes; nothing outside the asset folder can be named.

use pooldesk_e2e::daemon::{Daemon, DaemonOptions};
use serde_json::Value;

const SHELL: &[(&str, &str)] = &[
    ("/", "text/html; charset=utf-8"),
    ("/index.html", "text/html; charset=utf-8"),
    ("/admin.html", "text/html; charset=utf-8"),
    ("/psbt.html", "text/html; charset=utf-8"),
    ("/faucet.html", "text/html; charset=utf-8"),
    ("/static/app.css", "text/css; charset=utf-8"),
    ("/static/common.js", "text/javascript; charset=utf-8"),
    ("/static/dashboard.js", "text/javascript; charset=utf-8"),
    ("/static/admin.js", "text/javascript; charset=utf-8"),
    ("/static/admin-key.js", "text/javascript; charset=utf-8"),
    ("/static/psbt.js", "text/javascript; charset=utf-8"),
    ("/static/faucet.js", "text/javascript; charset=utf-8"),
    ("/static/pow-worker.js", "text/javascript; charset=utf-8"),
    (
        "/static/service-worker.js",
        "text/javascript; charset=utf-8",
    ),
    ("/static/manifest.json", "application/manifest+json"),
    ("/static/icon-192.png", "image/png"),
    ("/static/icon-512.png", "image/png"),
];

async fn daemon() -> Daemon {
    Daemon::start(DaemonOptions::default()).await
}

#[tokio::test]
async fn pages_and_shell_files_carry_type_and_security_headers() {
    let d = daemon().await;
    for (path, content_type) in SHELL {
        let r = d.http.get(format!("{}{path}", d.url)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let h = r.headers();
        let get = |name: &str| {
            h.get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        assert_eq!(get("content-type"), *content_type, "{path}");
        let csp = get("content-security-policy");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(get("referrer-policy"), "no-referrer", "{path}");
        assert!(!get("etag").is_empty(), "{path}");
        let cache = get("cache-control");
        if path.ends_with(".png") {
            assert!(cache.contains("max-age"), "{path}: {cache}");
        } else {
            assert_eq!(cache, "no-cache", "{path}");
        }
        if *path == "/static/service-worker.js" {
            assert_eq!(
                get("service-worker-allowed"),
                "/",
                "the worker controls the whole app"
            );
        }
    }
}

#[tokio::test]
async fn revalidation_answers_304_with_the_etag() {
    let d = daemon().await;
    let first = d
        .http
        .get(format!("{}/index.html", d.url))
        .send()
        .await
        .unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let again = d
        .http
        .get(format!("{}/index.html", d.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_manifest_is_a_valid_web_app_manifest_with_real_icons() {
    let d = daemon().await;
    let text = d
        .http
        .get(format!("{}/static/manifest.json", d.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m: Value = serde_json::from_str(&text).expect("manifest is JSON");
    assert!(m["name"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        m["short_name"]
            .as_str()
            .is_some_and(|s| !s.is_empty() && s.len() <= 12)
    );
    assert_eq!(m["start_url"], "/");
    assert_eq!(m["scope"], "/");
    assert_eq!(m["display"], "standalone");
    assert!(m["theme_color"].as_str().unwrap().starts_with('#'));
    assert!(m["background_color"].as_str().unwrap().starts_with('#'));
    let icons = m["icons"].as_array().expect("icons");
    for want in [192u32, 512] {
        let icon = icons
            .iter()
            .find(|i| i["sizes"] == format!("{want}x{want}"))
            .unwrap_or_else(|| panic!("no {want}px icon"));
        assert_eq!(icon["type"], "image/png");
        let png = d
            .http
            .get(format!("{}{}", d.url, icon["src"].as_str().unwrap()))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&png[12..16], b"IHDR");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((width, height), (want, want));
    }
}

#[tokio::test]
async fn unknown_or_escaping_paths_are_json_404s() {
    let d = daemon().await;
    for path in [
        "/static/nope.js",
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static//index.html",
        "/nope.html",
        "/static/index.html",
    ] {
        let r = d.http.get(format!("{}{path}", d.url)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn pages_link_only_same_origin_files_and_no_inline_script() {
    let d = daemon().await;
    for page in ["/index.html", "/admin.html", "/psbt.html", "/faucet.html"] {
        let html = d
            .http
            .get(format!("{}{page}", d.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("rel=\"manifest\""), "{page}");
        assert!(html.contains("name=\"viewport\""), "{page}");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{page}: no external URL"
        );
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            assert!(
                tag.contains("src=\"/static/"),
                "{page}: inline script {tag}"
            );
        }
        // Every input has a label.
        for (i, _) in html.match_indices("<input") {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            let id = tag
                .split("id=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_else(|| panic!("{page}: input without id: {tag}"));
            assert!(
                html.contains(&format!("for=\"{id}\"")),
                "{page}: no label for #{id}"
            );
        }
    }
}
