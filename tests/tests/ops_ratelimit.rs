//! Rate limits against the real daemon: the per-client-IP limit in front
//! of every endpoint (`http.per_ip_per_minute`), which a forged
//! X-Forwarded-For cannot escape and which a trusted proxy splits per real
//! client; and the per-user and per-IP registration limits of the signed
//! contract, which answer the same 429 JSON with Retry-After. Every 429 is
//! counted in `pooldesk_http_rate_limited_total{limit}`.

use pooldesk_e2e::daemon::{Daemon, DaemonOptions, now_s};
use serde_json::{Value, json};

async fn daemon(config: &str) -> Daemon {
    Daemon::start(DaemonOptions {
        config: config.to_string(),
        ..Default::default()
    })
    .await
}

/// (status, Retry-After seconds, JSON body) of a GET with optional
/// X-Forwarded-For.
async fn get(d: &Daemon, path: &str, xff: Option<&str>) -> (u16, Option<u64>, Value) {
    let mut request = d.http.get(format!("{}{path}", d.url));
    if let Some(xff) = xff {
        request = request.header("x-forwarded-for", xff);
    }
    split(request.send().await.expect("request")).await
}

async fn split(r: reqwest::Response) -> (u16, Option<u64>, Value) {
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = r.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

/// The value of one sample line of `/metrics` (panics when the series is absent, so 0 is a real 0).
async fn metric(d: &Daemon, sample: &str) -> f64 {
    let text = d.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in /metrics"))
}

/// A 429 in the JSON error contract whose Retry-After is 1..=`max_s`.
fn assert_limited_within(status: u16, retry: Option<u64>, body: &Value, max_s: u64) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(body["message"].is_string(), "{body}");
    let retry = retry.expect("a Retry-After header");
    assert!(
        (1..=max_s).contains(&retry),
        "Retry-After {retry} outside 1..={max_s}"
    );
}

/// A 429 of a per-minute limit.
fn assert_rate_limited(status: u16, retry: Option<u64>, body: &Value) {
    assert_limited_within(status, retry, body, 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_after_the_per_ip_allowance_is_429_with_retry_after() {
    let d = daemon("[http]\nper_ip_per_minute = 5\n").await;
    // Five requests of any kind (a 404 counts too) use the allowance…
    for path in ["/api/miners/a", "/api/miners/b", "/", "/api/miners/c", "/x"] {
        let (status, _, body) = get(&d, path, None).await;
        assert_ne!(status, 429, "{path}: {body}");
    }
    // …the sixth is refused, whatever the endpoint…
    let (status, retry, body) = get(&d, "/api/miners/a", None).await;
    assert_rate_limited(status, retry, &body);
    assert_eq!(body["limit_per_minute"], 5);
    // …but signed pool ingest, which is limited by its key and never by
    // IP: an honest pool behind this address is still served.
    let (status, body) = d.post_report("m", "w", 1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(d.sql_i64("SELECT COUNT(*) FROM share_reports"), 1);
    // Local health checks and scrapes stay exempt.
    for _ in 0..10 {
        assert_eq!(get(&d, "/healthz", None).await.0, 200);
    }
    assert!(metric(&d, "pooldesk_http_rate_limited_total{limit=\"ip\"}").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_forwarded_for_from_an_untrusted_peer_does_not_escape_the_limit() {
    let d = daemon("[http]\nper_ip_per_minute = 5\n").await;
    for i in 0..5 {
        let xff = format!("198.51.100.{i}");
        let (status, _, body) = get(&d, "/api/miners/a", Some(xff.as_str())).await;
        assert_ne!(status, 429, "{body}");
    }
    // A fresh forged address each time: still the same (real) client.
    let (status, retry, body) = get(&d, "/api/miners/a", Some("203.0.113.99")).await;
    assert_rate_limited(status, retry, &body);
    // A forged loopback address does not buy the health-check exemption
    // either — but the real peer here is loopback, so /healthz stays open.
    assert_eq!(get(&d, "/healthz", Some("203.0.113.1")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    let d = daemon("[http]\nper_ip_per_minute = 3\ntrusted_proxies = [\"127.0.0.1\"]\n").await;
    let a = "198.51.100.1";
    let b = "198.51.100.2";
    for _ in 0..3 {
        assert_ne!(get(&d, "/api/miners/x", Some(a)).await.0, 429);
    }
    let (status, retry, body) = get(&d, "/api/miners/x", Some(a)).await;
    assert_rate_limited(status, retry, &body);
    // Another client of the same proxy is unaffected.
    assert_ne!(get(&d, "/api/miners/x", Some(b)).await.0, 429);
    // Client A writing a fake first hop: the proxy appends A's real
    // address, the right-most untrusted one, so A is still A.
    let (status, _, _) = get(
        &d,
        "/api/miners/x",
        Some(format!("203.0.113.50, {a}").as_str()),
    )
    .await;
    assert_eq!(status, 429);
    // A remote client's /healthz through the proxy is not exempt.
    let (status, _, _) = get(&d, "/healthz", Some(a)).await;
    assert_eq!(status, 429);
    // IPv6 clients are limited per /64: rotating the host part is useless.
    for i in 0..3 {
        let xff = format!("2001:db8:5:6::{i:x}");
        assert_ne!(get(&d, "/api/miners/x", Some(xff.as_str())).await.0, 429);
    }
    let (status, _, _) = get(&d, "/api/miners/x", Some("2001:db8:5:6:ffff::1")).await;
    assert_eq!(status, 429);
    assert_ne!(
        get(&d, "/api/miners/x", Some("2001:db8:5:7::1")).await.0,
        429
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn per_user_and_registration_limits_answer_429_with_retry_after() {
    let d = daemon(
        "[limits]\nblocks_per_minute = 2\n[auth]\nregistration = \"open\"\nself_registration_prefix = \"rl_\"\nregistrations_per_ip_per_hour = 2\n",
    )
    .await;
    let register = |user: &str| {
        d.http
            .post(format!("{}/v1/user/register", d.url))
            .json(
                &json!({"user_id": user, "auth_method": "hmac_personal", "tier": "TIER_2_DESKTOP"}),
            )
            .send()
    };
    let first = register("rl_one").await.unwrap();
    assert_eq!(first.status().as_u16(), 201);
    let first: Value = first.json().await.unwrap();
    let key = first["api_key"].as_str().unwrap().to_string();
    assert_eq!(register("rl_two").await.unwrap().status().as_u16(), 201);
    // Two an hour: the next slot is half an hour away.
    let (status, retry, body) = split(register("rl_three").await.unwrap()).await;
    assert_limited_within(status, retry, &body, 3600);

    let mut last = None;
    for i in 0..3 {
        let bytes = serde_json::to_vec(&json!({
            "event_id": format!("rl-{i}"), "block_index": i, "block_hash": format!("rlh{i}"),
            "cid": "bafy", "miner_id": "rl_one", "capacity": "TIER_2_DESKTOP",
            "work_score": 1, "ts": now_s(), "signature": "x"
        }))
        .unwrap();
        let canonical = pooldesk_proto::canonical::canonicalize(&bytes).unwrap();
        let sig = pooldesk_proto::sig::hmac_sha256_hex(key.as_bytes(), canonical.as_bytes());
        let r = d
            .http
            .post(format!("{}/v1/ingest/block", d.url))
            .header("content-type", "application/json")
            .header("x-user-id", "rl_one")
            .header("x-signature", sig)
            .header("x-timestamp", now_s().to_string())
            .body(bytes)
            .send()
            .await
            .unwrap();
        last = Some(split(r).await);
        if i < 2 {
            let (status, _, body) = last.as_ref().unwrap();
            assert_eq!(*status, 202, "{body}");
        }
    }
    let (status, retry, body) = last.unwrap();
    assert_rate_limited(status, retry, &body);
    assert_eq!(
        metric(&d, "pooldesk_http_rate_limited_total{limit=\"user\"}").await,
        1.0
    );
    assert_eq!(
        metric(
            &d,
            "pooldesk_http_rate_limited_total{limit=\"registration\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(&d, "pooldesk_http_rate_limited_total{limit=\"ip\"}").await,
        0.0
    );
    d.assert_verified();
}
