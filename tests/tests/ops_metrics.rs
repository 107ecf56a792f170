//! `/metrics` and the log under traffic, against the real daemon: every
//! metric family is exported and moves with the traffic that should move
//! it (reports by contract and outcome, commit latency and batch size,
//! ledger totals, withdrawals by state, wallet vs held, SSE and control
//! clients, faucet requests, hashrate, miners, rate limits); and no secret
//! — nor a signature the daemon computed to compare with a bad one — ever
//! reaches the log, even at debug level.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pooldesk_e2e::daemon::{Daemon, DaemonOptions, now_s, regtest_address};
use serde_json::{Value, json};

type Samples = HashMap<String, f64>;

/// Every family the daemon must export, with its type.
const FAMILIES: &[(&str, &str)] = &[
    ("pooldesk_reports", "counter"),
    ("pooldesk_commit_seconds", "histogram"),
    ("pooldesk_commit_batch_size", "histogram"),
    ("pooldesk_commits_failed", "counter"),
    ("pooldesk_ledger_msat", "gauge"),
    ("pooldesk_withdrawals", "gauge"),
    ("pooldesk_wallet_spendable_sat", "gauge"),
    ("pooldesk_wallet_connected", "gauge"),
    ("pooldesk_sse_clients", "gauge"),
    ("pooldesk_control_clients", "gauge"),
    ("pooldesk_faucet_requests", "counter"),
    ("pooldesk_pool_hashrate_hps", "gauge"),
    ("pooldesk_miners", "gauge"),
    ("pooldesk_events_lagged", "counter"),
    ("pooldesk_http_refused", "counter"),
    ("pooldesk_http_rate_limited", "counter"),
    ("pooldesk_http_rate_limit_keys", "gauge"),
    ("pooldesk_sqlite_heap_bytes", "gauge"),
    ("pooldesk_heap_allocated_bytes", "gauge"),
    ("pooldesk_heap_retained_bytes", "gauge"),
];

async fn scrape_text(d: &Daemon) -> String {
    let response = d
        .http
        .get(format!("{}/metrics", d.url))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        content_type.contains("openmetrics-text") || content_type.contains("text/plain"),
        "{content_type}"
    );
    response.text().await.expect("body")
}

fn parse(text: &str) -> Samples {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(d: &Daemon) -> Samples {
    parse(&scrape_text(d).await)
}

fn get(s: &Samples, key: &str) -> f64 {
    s.get(key).copied().unwrap_or(0.0)
}

/// Scrapes until `check` holds (gauges follow the once-a-second snapshot).
async fn wait_for(d: &Daemon, what: &str, check: impl Fn(&Samples) -> bool) -> Samples {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = scrape(d).await;
        if check(&s) {
            return s;
        }
        if Instant::now() > deadline {
            let mut keys: Vec<_> = s.iter().map(|(k, v)| format!("{k} {v}")).collect();
            keys.sort();
            panic!("metrics never showed {what}:\n{}", keys.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const CONFIG: &str = "[http]\nmax_sse_streams = 1\n\
[payouts]\nnew_address_delay_s = 0\nbatch_interval_s = 3600\n\
[faucet]\ndifficulty_bits = 4\nbatch_interval_s = 3600\n";

async fn faucet_claim(d: &Daemon) -> (u16, Value) {
    let (status, body) = d.get("/api/faucet/challenge").await;
    assert_eq!(status, 200, "{body}");
    let challenge = body["challenge"].as_str().unwrap().to_string();
    let bits = body["difficulty_bits"].as_u64().unwrap() as u32;
    let address = regtest_address();
    let nonce = pooldesk_proto::pow::solve_pow(&challenge, &address, bits);
    let r = d
        .http
        .post(format!("{}/api/faucet", d.url))
        .json(&json!({"address": address, "challenge": challenge, "nonce": nonce}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn block(user: &str, n: u32) -> Value {
    json!({
        "event_id": format!("b-{user}-{n}"), "block_index": n, "block_hash": format!("h-{user}-{n}"),
        "cid": "bafy", "miner_id": user, "capacity": "TIER_2_DESKTOP", "work_score": 2,
        "ts": now_s(), "signature": "x"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_family_is_exported_and_moves_with_traffic() {
    let d = Daemon::start(DaemonOptions {
        config: CONFIG.into(),
        ..Default::default()
    })
    .await;
    // The wallet gauge follows the once-a-second snapshot: the first scrape
    // may come before the first snapshot on a loaded machine.
    wait_for(&d, "the wallet gauge", |s| {
        get(s, "pooldesk_wallet_connected") == 1.0
    })
    .await;
    let text = scrape_text(&d).await;
    let before = parse(&text);
    assert_eq!(get(&before, "pooldesk_commits_failed_total"), 0.0);
    assert_eq!(get(&before, "pooldesk_wallet_connected"), 1.0);
    // The ledger is open: SQLite holds some memory, far below its bound.
    let heap = get(&before, "pooldesk_sqlite_heap_bytes");
    assert!(heap > 0.0 && heap < 256.0 * 1024.0 * 1024.0, "{heap}");
    // The process heap holds at least SQLite's, and the allocator holds at
    // least what is live (the CI machine runs glibc).
    let allocated = get(&before, "pooldesk_heap_allocated_bytes");
    let retained = get(&before, "pooldesk_heap_retained_bytes");
    assert!(
        allocated >= heap && retained >= allocated,
        "{heap} {allocated} {retained}"
    );

    // Pool reports: accepted, bad signature, duplicate.
    for i in 0..20 {
        let (status, body) = d.post_report(&format!("mm{}", i % 3), "w", 5).await;
        assert_eq!(status, 200, "{body}");
    }
    for _ in 0..3 {
        let body = serde_json::to_vec(&json!({
            "miner_id": "mm0", "worker_name": "w", "shares": 1,
            "event_id": format!("bad-{}", rand::random::<u64>()), "ts": now_s()
        }))
        .unwrap();
        let (status, _) = d.post_report_raw(&body, Some(&"ab".repeat(32))).await;
        assert_eq!(status, 401);
    }
    let dup = serde_json::to_vec(&json!({
        "miner_id": "mm1", "worker_name": "w", "shares": 1, "event_id": "dup-1", "ts": now_s()
    }))
    .unwrap();
    assert_eq!(d.post_signed_report(&dup).await.0, 200);
    assert_eq!(d.post_signed_report(&dup).await.0, 409);

    // A personal-key miner: a block, a payout address and a withdrawal.
    let key = d.issue_key("payee").await;
    let body = block("payee", 1);
    assert_eq!(
        d.signed("POST", "/v1/ingest/block", "payee", &key, &body)
            .await
            .0,
        202
    );
    let fund = serde_json::to_vec(&json!({
        "miner_id": "payee", "worker_name": "rig", "shares": 100, "difficulty": 1000,
        "event_id": "fund-payee", "ts": now_s()
    }))
    .unwrap();
    assert_eq!(d.post_signed_report(&fund).await.0, 200);

    let s = wait_for(&d, "report outcomes", |s| {
        get(
            s,
            "pooldesk_reports_total{contract=\"pool\",outcome=\"accepted\"}",
        ) == 22.0
            && get(
                s,
                "pooldesk_reports_total{contract=\"pool\",outcome=\"bad_signature\"}",
            ) == 3.0
            && get(
                s,
                "pooldesk_reports_total{contract=\"pool\",outcome=\"duplicate\"}",
            ) == 1.0
            && get(
                s,
                "pooldesk_reports_total{contract=\"personal\",outcome=\"accepted\"}",
            ) == 1.0
    })
    .await;
    // Every accepted report was a durable commit: counts and time move.
    assert!(
        get(&s, "pooldesk_commit_seconds_count")
            >= get(&before, "pooldesk_commit_seconds_count") + 1.0
    );
    assert!(get(&s, "pooldesk_commit_seconds_sum") > 0.0);
    assert!(
        get(&s, "pooldesk_commit_batch_size_sum")
            >= get(&before, "pooldesk_commit_batch_size_sum") + 23.0,
        "every accepted write is in some batch"
    );
    assert!(get(&s, "pooldesk_commit_batch_size_bucket{le=\"+Inf\"}") >= 1.0);
    // Ledger totals, hashrate and miners follow the per-second snapshot.
    // 20×5 + 1 + 100×1000 shares at 1000 msat, plus 2 work × 100000 msat.
    let credited = (20 * 5 + 1 + 100 * 1000) as f64 * 1000.0 + 2.0 * 100_000.0;
    let s = wait_for(&d, "ledger totals and hashrate", |s| {
        get(s, "pooldesk_ledger_msat{name=\"credited\"}") == credited
            && get(s, "pooldesk_ledger_msat{name=\"owed\"}") == credited
            && get(s, "pooldesk_pool_hashrate_hps{window=\"1m\"}") > 0.0
            && get(s, "pooldesk_miners{state=\"total\"}") >= 4.0
            && get(s, "pooldesk_miners{state=\"active\"}") >= 1.0
    })
    .await;
    let spendable_before = get(&s, "pooldesk_wallet_spendable_sat");
    assert!(spendable_before > 0.0, "the simulated wallet starts funded");

    let payout = regtest_address();
    let (status, body) = d
        .signed(
            "POST",
            "/api/miner/payout_address",
            "payee",
            &key,
            &json!({"miner_id": "payee", "address": payout, "ts": now_s(), "event_id": "address-1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = d
        .signed(
            "POST",
            "/api/withdraw",
            "payee",
            &key,
            &json!({"miner_id": "payee", "amount": "0.0005", "event_id": "w-1", "ts": now_s()}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["withdrawal_id"].as_i64().unwrap();
    wait_for(&d, "a requested withdrawal, held", |s| {
        get(s, "pooldesk_withdrawals{state=\"requested\"}") == 1.0
            && get(s, "pooldesk_ledger_msat{name=\"held\"}") == 50_000_000.0
    })
    .await;
    let (status, body) = d
        .admin(
            "POST",
            &format!("/api/admin/withdrawals/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for(&d, "an approved withdrawal", |s| {
        get(s, "pooldesk_withdrawals{state=\"requested\"}") == 0.0
            && get(s, "pooldesk_withdrawals{state=\"approved\"}") == 1.0
    })
    .await;
    let (status, body) = d
        .admin("POST", "/api/admin/send_batch", Some(&json!({})))
        .await;
    assert_eq!(status, 200, "{body}");
    let s = wait_for(&d, "the withdrawal sent and the wallet spent", |s| {
        get(s, "pooldesk_withdrawals{state=\"approved\"}") == 0.0
            && (get(s, "pooldesk_withdrawals{state=\"broadcast\"}")
                + get(s, "pooldesk_withdrawals{state=\"confirmed\"}"))
                == 1.0
            && get(s, "pooldesk_wallet_spendable_sat") < spendable_before
    })
    .await;
    assert!(
        get(&s, "pooldesk_ledger_msat{name=\"paid\"}") > 0.0
            || get(&s, "pooldesk_ledger_msat{name=\"held\"}") > 0.0
    );

    // Live clients: an SSE stream and a control connection.
    let stream = d
        .http
        .get(format!("{}/api/stream", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let control = d.control().await;
    // http.max_sse_streams = 1: a second stream is refused and counted.
    let second = d
        .http
        .get(format!("{}/api/stream", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status().as_u16(), 503);
    drop(second);
    wait_for(&d, "one SSE client and one control client", |s| {
        get(s, "pooldesk_sse_clients") == 1.0
            && get(s, "pooldesk_control_clients") == 1.0
            && get(s, "pooldesk_http_refused_total{state=\"sse_streams\"}") == 1.0
    })
    .await;
    drop(stream);
    drop(control);
    wait_for(&d, "the clients gone", |s| {
        get(s, "pooldesk_sse_clients") == 0.0 && get(s, "pooldesk_control_clients") == 0.0
    })
    .await;

    // Faucet: one queued, one refused by the address/IP cooldown.
    let (status, body) = faucet_claim(&d).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = faucet_claim(&d).await;
    assert_eq!(status, 429, "{body}");
    let s = wait_for(&d, "faucet outcomes", |s| {
        get(s, "pooldesk_faucet_requests_total{state=\"queued\"}") == 1.0
    })
    .await;
    let refused: f64 = s
        .iter()
        .filter(|(k, _)| {
            k.starts_with("pooldesk_faucet_requests_total{") && !k.contains("\"queued\"")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(refused, 1.0, "one refusal by its code");
    assert_eq!(get(&s, "pooldesk_commits_failed_total"), 0.0);
    // Every family is exported (families with labels appear once they
    // have a sample; all of them have one by now).
    let text = scrape_text(&d).await;
    for (family, kind) in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}")),
            "missing `# TYPE {family} {kind}` in:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no help text"
        );
    }
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_or_expected_signature_reaches_the_log_under_bad_signature_traffic() {
    let mut d = Daemon::start(DaemonOptions {
        config: format!("{CONFIG}[auth]\nallow_shared = false\n"),
        env: vec![("RUST_LOG".into(), "debug".into())],
        ..Default::default()
    })
    .await;
    // Values the log must never contain.
    let mut forbidden: Vec<(String, String)> = vec![
        ("report secret".into(), d.report_secret.clone()),
        ("admin key".into(), d.admin_key.clone()),
        ("master key".into(), d.master_key.clone()),
    ];

    // Pool reports signed with a wrong secret: the signature the daemon
    // computes to compare must not be logged (it would sign anything).
    for i in 0..20 {
        let body = serde_json::to_vec(&json!({
            "miner_id": "victim", "worker_name": "w", "shares": 1000,
            "event_id": format!("forged-{i}"), "ts": now_s()
        }))
        .unwrap();
        let wrong = pooldesk_proto::sig::hmac_sha256_hex(b"guess", &body);
        let (status, answer) = d.post_report_raw(&body, Some(&wrong)).await;
        assert_eq!(status, 401, "{answer}");
        let expected = pooldesk_proto::sig::hmac_sha256_hex(d.report_secret.as_bytes(), &body);
        assert!(
            !answer.to_string().contains(&expected),
            "the answer leaks the expected signature"
        );
        forbidden.push((format!("expected signature of forged report {i}"), expected));
    }
    // Good reports too, so the accepting path logs what it logs.
    for _ in 0..5 {
        assert_eq!(d.post_report("victim", "w", 1).await.0, 200);
    }

    // Personal keys: an issued one and a registered one.
    let issued = d.issue_key("keyed").await;
    forbidden.push(("issued personal key".into(), issued.clone()));
    let (status, registered) = d
        .admin(
            "POST",
            "/v1/user/register",
            Some(&json!({"user_id": "newbie", "auth_method": "hmac_personal", "tier": "TIER_2_DESKTOP"})),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    let registered = registered["api_key"].as_str().unwrap().to_string();
    forbidden.push(("registered personal key".into(), registered.clone()));
    for (user, key) in [("keyed", &issued), ("newbie", &registered)] {
        for n in 0..5 {
            let body = block(user, n);
            // Signed with a wrong key: 401, and the right signature is
            // never written down.
            let (status, _) = d
                .signed("POST", "/v1/ingest/block", user, "not-the-key", &body)
                .await;
            assert_eq!(status, 401);
            let canonical =
                pooldesk_proto::canonical::canonicalize(&serde_json::to_vec(&body).unwrap())
                    .unwrap();
            forbidden.push((
                format!("expected personal signature {user}/{n}"),
                pooldesk_proto::sig::hmac_sha256_hex(key.as_bytes(), canonical.as_bytes()),
            ));
        }
        let (status, _) = d
            .signed("POST", "/v1/ingest/block", user, key, &block(user, 99))
            .await;
        assert_eq!(status, 202);
    }

    // Admin: wrong keys (a guess close to the real one), the real one in
    // the query string (refused), and the right header.
    let last = if d.admin_key.ends_with('0') { '1' } else { '0' };
    let near = format!("{}{last}", &d.admin_key[..d.admin_key.len() - 1]);
    for key in [near.as_str(), "admin", ""] {
        let r = d
            .http
            .get(format!("{}/api/admin/miners", d.url))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let r = d
        .http
        .get(format!(
            "{}/api/admin/miners?api_key={}",
            d.url, d.admin_key
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(d.admin("GET", "/api/admin/miners", None).await.0, 200);
    forbidden.push(("near-miss admin key".into(), near));

    // Let the daemon flush and stop, then read everything it wrote.
    let status = d.terminate(Duration::from_secs(60)).expect("clean exit");
    assert!(status.success());
    let log = std::fs::read_to_string(d.log_path()).unwrap();
    assert!(
        log.contains("pooldeskd listening") && log.contains("stopped"),
        "not the whole log:\n{log}"
    );
    for (what, value) in &forbidden {
        assert!(!log.contains(value.as_str()), "the log contains the {what}");
        // Upper-case hex too (some formatters print it so).
        assert!(
            !log.contains(&value.to_uppercase()),
            "the log contains the {what} (upper case)"
        );
    }
}
