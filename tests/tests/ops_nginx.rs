//! The nginx example (`contrib/nginx/pooldesk.conf`) for real: `nginx -t`
//! accepts it, and a real nginx running it (ports, upstream and certificate
//! paths swapped for test ones) in front of a real daemon does what the
//! comments promise: HTTP→HTTPS redirect, TLS, X-Forwarded-For set to the
//! connecting address (a forged header buys nothing against the per-IP
//! limit, while two real clients are limited separately), SSE delivered
//! without buffering, bodies over 64 KiB refused, `/metrics` closed to
//! non-listed clients.
//!
//! Skipped with a message when nginx or openssl is not installed
//! (`apt-get install nginx openssl`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pooldesk_e2e::daemon::{Daemon, DaemonOptions, free_port, workspace_root};
use pooldesk_e2e::skip::skip_or_fail;
use serde_json::json;

fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn tools_present() -> bool {
    if !have("nginx", "-v") {
        skip_or_fail(
            "ops_nginx",
            "nginx is not installed (apt-get install nginx; contrib/test.sh installs it)",
        );
        return false;
    }
    if !have("openssl", "version") {
        skip_or_fail(
            "ops_nginx",
            "openssl is not installed (apt-get install openssl)",
        );
        return false;
    }
    true
}

/// A self-signed certificate for 127.0.0.1 in `dir`: (cert, key).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("fullchain.pem");
    let key = dir.join("privkey.pem");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

/// The example, with test ports, upstream and paths; plus a main config
/// around it that keeps nginx's files in `dir`. Returns the main config.
fn configure(dir: &Path, upstream_port: u16, http_port: u16, https_port: u16) -> PathBuf {
    let (cert, key) = certificate(dir);
    let site = std::fs::read_to_string(workspace_root().join("contrib/nginx/pooldesk.conf"))
        .expect("read contrib/nginx/pooldesk.conf");
    let replacements = [
        (
            "/etc/letsencrypt/live/pool.example.com/fullchain.pem".to_string(),
            cert.display().to_string(),
        ),
        (
            "/etc/letsencrypt/live/pool.example.com/privkey.pem".to_string(),
            key.display().to_string(),
        ),
        (
            "server 127.0.0.1:8080;".to_string(),
            format!("server 127.0.0.1:{upstream_port};"),
        ),
        (
            "listen 80;".to_string(),
            format!("listen 127.0.0.1:{http_port};"),
        ),
        (
            "listen 443 ssl http2;".to_string(),
            format!("listen 127.0.0.1:{https_port} ssl http2;"),
        ),
        ("listen [::]:80;".to_string(), String::new()),
        ("listen [::]:443 ssl http2;".to_string(), String::new()),
        (
            "/var/www/letsencrypt".to_string(),
            dir.join("www").display().to_string(),
        ),
    ];
    let mut text = site.clone();
    for (from, to) in &replacements {
        assert!(
            text.contains(from.as_str()),
            "the example no longer contains {from:?}; update this test"
        );
        text = text.replace(from.as_str(), to);
    }
    std::fs::write(dir.join("site.conf"), text).unwrap();
    let main = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &main,
        format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
        ),
    )
    .unwrap();
    main
}

#[test]
fn the_example_passes_nginx_t() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let main = configure(dir.path(), 8080, free_port(), free_port());
    let output = Command::new("nginx")
        .arg("-t")
        .arg("-c")
        .arg(&main)
        .output()
        .expect("nginx -t");
    let text = String::from_utf8_lossy(&output.stderr);
    println!("{text}");
    assert!(output.status.success(), "nginx -t failed:\n{text}");
    assert!(
        !text.contains("[warn]"),
        "nginx warns about the example:\n{text}"
    );
}

/// nginx in the foreground; killed on drop.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .local_address(ip.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_nginx_with_the_example_proxies_as_documented() {
    if !tools_present() {
        return;
    }
    // The daemon as the example config sets it behind nginx, with a small
    // per-IP allowance to make the client address visible.
    let d = Daemon::start(DaemonOptions {
        config: "[http]\ntrusted_proxies = [\"127.0.0.1\"]\nper_ip_per_minute = 4\nmetrics_public = false\n"
            .into(),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (http_port, https_port) = (free_port(), free_port());
    let main = configure(dir.path(), d.http_addr.port(), http_port, https_port);
    let log = std::fs::File::create(dir.path().join("nginx.out")).unwrap();
    let _nginx = Nginx(
        Command::new("nginx")
            .arg("-c")
            .arg(&main)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nginx"),
    );
    let base = format!("https://127.0.0.1:{https_port}");
    // Two clients on different loopback addresses (all of 127/8 is ours).
    let a = client_from("127.0.0.5");
    let b = client_from("127.0.0.6");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = a.get(format!("{base}/healthz")).send().await {
            assert_eq!(r.status().as_u16(), 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nginx did not come up:\n{}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Plain HTTP is redirected to HTTPS, path kept.
    let r = a
        .get(format!("http://127.0.0.1:{http_port}/api/miners/x?y=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 301);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("https://") && location.ends_with("/api/miners/x?y=1"),
        "{location}"
    );

    // Client A forges a new X-Forwarded-For each time: nginx replaces it
    // with A's address, so the daemon counts A. Four requests, then 429.
    for i in 0..4 {
        let r = a
            .get(format!("{base}/api/miners/m{i}"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        assert_ne!(r.status().as_u16(), 429, "request {i}");
    }
    let r = a
        .get(format!("{base}/api/miners/m9"))
        .header("x-forwarded-for", "203.0.113.99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    // Client B has its own allowance.
    let r = b.get(format!("{base}/api/miners/m1")).send().await.unwrap();
    assert_ne!(r.status().as_u16(), 429);

    // SSE through the proxy arrives as it happens (no buffering): a
    // credit shows up on the stream within seconds, not at the next 4 KiB.
    let mut stream = b.get(format!("{base}/api/stream")).send().await.unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let (status, body) = d.post_report("through-nginx", "w", 3).await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while !seen.contains("through-nginx") {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no event through nginx within 10 s: {seen:?}"
        );
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, stream.chunk()).await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    drop(stream);

    // Bodies over client_max_body_size stop at nginx.
    let big = json!({"pad": "x".repeat(70 * 1024)});
    let c = client_from("127.0.0.7");
    let r = c
        .post(format!("{base}/api/report_share"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);

    // /metrics: only the listed networks (127.0.0.1) through the proxy.
    let r = c.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403, "nginx must refuse /metrics");
    let local = client_from("127.0.0.1");
    let r = local.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
