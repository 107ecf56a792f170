//! The faucet against a real daemon: cooldowns by address and by client,
//! challenge rules, the daily budget under concurrency, X-Forwarded-For
//! only from trusted proxies. (Batched payment runs against a real node in
//! `faucet_real`.)
//! `pooldeskd verify` passes after every scenario.

use std::time::{Duration, Instant};

use pooldesk_e2e::daemon::{Daemon, DaemonOptions, regtest_address};
use serde_json::{Value, json};

/// These scenarios test the faucet's own rules (cooldowns, budget) with
/// many claims from one client, so the per-IP faucet rate limit
/// (`http.faucet_per_ip_per_minute`, tested in `hostile_http`) is raised.
async fn start(config: &str) -> Daemon {
    const RAISE: &str = "faucet_per_ip_per_minute = 100000\n";
    let config = if config.contains("[http]\n") {
        config.replacen("[http]\n", &format!("[http]\n{RAISE}"), 1)
    } else {
        format!("{config}\n[http]\n{RAISE}")
    };
    Daemon::start(DaemonOptions {
        config,
        ..DaemonOptions::default()
    })
    .await
}

async fn challenge(d: &Daemon) -> (String, u32) {
    let (status, body) = d.get("/api/faucet/challenge").await;
    assert_eq!(status, 200, "challenge: {body}");
    let challenge = body["challenge"].as_str().expect("challenge").to_string();
    assert!(challenge.len() >= 32, "at least 128 bits: {challenge}");
    assert!(challenge.bytes().all(|b| b.is_ascii_hexdigit()));
    (
        challenge,
        body["difficulty_bits"].as_u64().expect("bits") as u32,
    )
}

/// Posts a faucet request, optionally with an X-Forwarded-For header.
/// Returns (status, body, Retry-After).
async fn post(
    d: &Daemon,
    address: &str,
    challenge: &str,
    nonce: &str,
    xff: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut request = d
        .http
        .post(format!("{}/api/faucet", d.url))
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(
                &json!({"address": address, "challenge": challenge, "nonce": nonce}),
            )
            .expect("json"),
        );
    if let Some(xff) = xff {
        request = request.header("x-forwarded-for", xff);
    }
    let response = request.send().await.expect("post faucet");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body, retry_after)
}

/// Fetches a challenge, solves it for `address` and posts it.
async fn claim(d: &Daemon, address: &str, xff: Option<&str>) -> (u16, Value, Option<String>) {
    let (challenge, bits) = challenge(d).await;
    let nonce = pooldesk_proto::pow::solve_pow(&challenge, address, bits);
    post(d, address, &challenge, &nonce, xff).await
}

const FAST: &str = "[faucet]\ndifficulty_bits = 8\nbatch_interval_s = 3600\n";

#[tokio::test]
async fn a_second_request_within_the_cooldown_is_refused_by_address_and_by_ip() {
    // 127.0.0.1 is our trusted proxy, so X-Forwarded-For names the client.
    let d = start(&format!(
        "{FAST}[http]\ntrusted_proxies = [\"127.0.0.1\"]\n"
    ))
    .await;
    let a = regtest_address();
    let b = regtest_address();

    let (status, body, _) = claim(&d, &a, Some("198.51.100.1")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "queued");
    assert_eq!(body["amount_sat"], 10_000);
    assert_eq!(body["amount_btc"], "0.00010000");
    assert!(body["request_id"].as_i64().is_some());

    // Same address, another client: refused by address.
    let (status, body, retry) = claim(&d, &a, Some("198.51.100.2")).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "too_soon");
    assert_eq!(body["by"], "address");
    let left = body["seconds_left"].as_u64().expect("seconds_left");
    assert!(left > 3500 && left <= 3600, "{left}");
    assert_eq!(retry.as_deref(), Some(left.to_string().as_str()));

    // Same client, another address: refused by IP.
    let (status, body, _) = claim(&d, &b, Some("198.51.100.1")).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "too_soon");
    assert_eq!(body["by"], "ip");
    assert!(body["seconds_left"].as_u64().unwrap() > 0);

    // IPv6 clients are counted per /64.
    let (status, body, _) = claim(&d, &b, Some("2001:db8:5:6::1")).await;
    assert_eq!(status, 202, "{body}");
    let (status, body, _) = claim(&d, &regtest_address(), Some("2001:db8:5:6:ffff::2")).await;
    assert_eq!(status, 429, "same /64: {body}");
    assert_eq!(body["by"], "ip");

    // Nothing refused was recorded or held: two requests, and verify
    // reconciles the hold with them. (Not the held balance itself: the
    // faucet worker's first tick at start-up, late on a loaded machine,
    // may already have paid the first request out of it.)
    assert_eq!(d.sql_i64("SELECT COUNT(*) FROM faucet_requests"), 2);
    assert_eq!(
        d.sql_i64("SELECT SUM(amount_sat) FROM faucet_requests"),
        2 * 10_000
    );
    d.assert_verified();
}

#[tokio::test]
async fn forged_reused_expired_and_unsolved_challenges_are_refused() {
    // The default TTL (600 s): nothing here depends on a challenge
    // surviving a short time on a loaded machine (expiry is its own test).
    let d = start(&format!(
        "{FAST}[http]\ntrusted_proxies = [\"127.0.0.1\"]\n"
    ))
    .await;

    // Forged: the right shape, not ours.
    let forged: String = (0..80)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect();
    let a = regtest_address();
    let nonce = pooldesk_proto::pow::solve_pow(&forged, &a, 8);
    let (status, body, _) = post(&d, &a, &forged, &nonce, Some("203.0.113.1")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("bad_pow")),
        "{body}"
    );

    // A nonce that does not solve it.
    let (c, bits) = challenge(&d).await;
    let mut bad = 0u64;
    while pooldesk_proto::pow::check_pow(&c, &a, &bad.to_string(), bits) {
        bad += 1;
    }
    let (status, body, _) = post(&d, &a, &c, &bad.to_string(), Some("203.0.113.1")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("bad_pow")),
        "{body}"
    );

    // Not an address of this network / not an address.
    let (status, body, _) = post(
        &d,
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        &c,
        "1",
        Some("203.0.113.1"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("bad_address")),
        "{body}"
    );
    let (status, body, _) = post(&d, "hello", &c, "1", Some("203.0.113.1")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("bad_address")),
        "{body}"
    );

    // Used once, then reused (another address, another client).
    let nonce = pooldesk_proto::pow::solve_pow(&c, &a, bits);
    let (status, body, _) = post(&d, &a, &c, &nonce, Some("203.0.113.1")).await;
    assert_eq!(status, 202, "{body}");
    let b = regtest_address();
    let nonce_b = pooldesk_proto::pow::solve_pow(&c, &b, bits);
    let (status, body, _) = post(&d, &b, &c, &nonce_b, Some("203.0.113.2")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("bad_pow")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("already used"),
        "{body}"
    );

    // Malformed bodies are JSON errors too.
    let response = d
        .http
        .post(format!("{}/api/faucet", d.url))
        .header("content-type", "application/json")
        .body("{\"address\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);

    assert_eq!(
        d.sql_i64("SELECT COUNT(*) FROM faucet_requests"),
        1,
        "only the one valid request was recorded"
    );
    d.assert_verified();
}

#[tokio::test]
async fn a_challenge_solved_but_posted_after_its_expiry_is_refused() {
    // A 1 s TTL; the test waits for the event "the clock passed the
    // challenge's expires_at" (the daemon's own stamp), not a guessed time.
    let d = start(
        "[faucet]\ndifficulty_bits = 8\nbatch_interval_s = 3600\nchallenge_ttl_s = 1\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    )
    .await;
    let (status, body) = d.get("/api/faucet/challenge").await;
    assert_eq!(status, 200, "{body}");
    let c = body["challenge"].as_str().expect("challenge").to_string();
    let bits = body["difficulty_bits"].as_u64().expect("bits") as u32;
    let expires_at = body["expires_at"].as_i64().expect("expires_at");
    let b = regtest_address();
    let nonce = pooldesk_proto::pow::solve_pow(&c, &b, bits);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pooldesk_e2e::daemon::now_s() < expires_at {
        assert!(
            Instant::now() < deadline,
            "the clock never reached {expires_at}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body, _) = post(&d, &b, &c, &nonce, Some("203.0.113.3")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("challenge_expired")),
        "{body}"
    );
    assert_eq!(d.sql_i64("SELECT COUNT(*) FROM faucet_requests"), 0);
    d.assert_verified();
}

#[tokio::test]
async fn the_daily_budget_holds_under_50_concurrent_requests() {
    // Budget for exactly 7 requests of 0.0001.
    let d = start(&format!(
        "{FAST}daily_budget_btc = \"0.0007\"\ncooldown_s = 3600\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n"
    ))
    .await;
    // Solve everything first so the posts really race.
    let mut prepared = Vec::new();
    for i in 0..50 {
        let a = regtest_address();
        let (c, bits) = challenge(&d).await;
        let nonce = pooldesk_proto::pow::solve_pow(&c, &a, bits);
        prepared.push((a, c, nonce, format!("198.51.100.{}", i + 1)));
    }
    let d = std::sync::Arc::new(d);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(prepared.len()));
    let mut tasks = Vec::new();
    for (a, c, nonce, ip) in prepared {
        let d = d.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            post(&d, &a, &c, &nonce, Some(&ip)).await
        }));
    }
    let mut accepted = 0;
    let mut exhausted = 0;
    for task in tasks {
        let (status, body, _) = task.await.unwrap();
        match status {
            202 => accepted += 1,
            429 if body["error"] == "budget_exhausted" => exhausted += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((accepted, exhausted), (7, 43));
    assert_eq!(
        d.sql_i64("SELECT balance_msat FROM accounts WHERE name = 'faucet:held'"),
        7 * 10_000 * 1000
    );
    assert_eq!(d.sql_i64("SELECT COUNT(*) FROM faucet_requests"), 7);
    let (status, body) = d.get("/api/faucet").await;
    assert_eq!(status, 200);
    assert_eq!(body["spent_today_sat"], 70_000);
    assert_eq!(body["remaining_today_sat"], 0);
    d.assert_verified();
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    // No trusted proxies: the header is anyone's word and is ignored.
    let d = start(FAST).await;
    let (status, body, _) = claim(&d, &regtest_address(), Some("203.0.113.50")).await;
    assert_eq!(status, 202, "{body}");
    let (status, body, _) = claim(&d, &regtest_address(), Some("203.0.113.51")).await;
    assert_eq!(
        status, 429,
        "spoofed header must not dodge the IP cooldown: {body}"
    );
    assert_eq!(body["by"], "ip");
    d.assert_verified();

    // 127.0.0.1 trusted: the header names the client.
    let d = start(&format!(
        "{FAST}[http]\ntrusted_proxies = [\"127.0.0.1\"]\n"
    ))
    .await;
    let (status, body, _) = claim(&d, &regtest_address(), Some("203.0.113.50")).await;
    assert_eq!(status, 202, "{body}");
    let (status, body, _) = claim(&d, &regtest_address(), Some("203.0.113.51")).await;
    assert_eq!(status, 202, "another client behind the proxy: {body}");
    let (status, body, _) = claim(&d, &regtest_address(), Some("203.0.113.50")).await;
    assert_eq!(status, 429, "{body}");
    d.assert_verified();
}

#[tokio::test]
async fn a_disabled_faucet_refuses_with_403() {
    let d = start("[faucet]\nenabled = false\n").await;
    let (status, body) = d.get("/api/faucet/challenge").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("faucet_disabled")),
        "{body}"
    );
    let (status, body, _) = post(&d, &regtest_address(), &"0".repeat(80), "1", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("faucet_disabled")),
        "{body}"
    );
    let (status, body) = d.get("/api/faucet").await;
    assert_eq!(status, 200);
    assert_eq!(body["enabled"], false);
    d.assert_verified();
}
