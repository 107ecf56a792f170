//! Soak: everything a pool does to pooldeskd, at once, for a while, then
//! the invariants and the resource curves.
//!
//! Runs a real `pooldeskd` (simulated wallet) and, together, for
//! `--duration` seconds:
//! - pools: signed share reports from several keep-alive connections;
//! - miners: personal-key block reports, a payout address, withdrawals;
//! - SSE clients: `/api/stream` readers (some filtered to one miner) that
//!   reconnect when dropped;
//! - faucet users: challenge, proof of work (low difficulty), claim, each
//!   from its own forwarded client address;
//! - payouts: an admin approving requested withdrawals and sending batches.
//!
//! Then: `pooldeskd verify` must be clean, no request may have failed
//! (5xx, transport error, or a status the endpoint should not give), the
//! daemon's RSS after the warm-up — less SQLite's own heap, whose page
//! caches grow with the ledger up to their `cache_size` by design, read
//! from `/metrics` — must stay within `--rss-margin` of where it started,
//! and the WAL must stay bounded. Prints a summary either way;
//! exits 1 on any failure.
//!
//!   cargo build --workspace --bins && target/debug/soak --duration 60

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use pooldesk_e2e::daemon::{Daemon, DaemonOptions, now_s, regtest_address};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Soak pooldeskd with pools, miners, SSE, faucet and payouts together")]
struct Args {
    /// Seconds of traffic.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seconds before the memory baseline is taken (caches fill, the
    /// replay buffer fills). Default: a quarter of the run, at least 15.
    #[arg(long)]
    warmup: Option<u64>,
    /// Allowed RSS growth after the warm-up, as a fraction (0.2 = 20%).
    #[arg(long, default_value_t = 0.20)]
    rss_margin: f64,
    /// Seconds between RSS samples.
    #[arg(long, default_value_t = 3)]
    sample_every: u64,
    #[arg(long, default_value_t = 4)]
    pools: usize,
    #[arg(long, default_value_t = 5)]
    miners: usize,
    #[arg(long, default_value_t = 20)]
    sse: usize,
    #[arg(long, default_value_t = 2)]
    faucet_users: usize,
}

/// The WAL may legitimately reach its 16 MiB bound plus what arrives
/// between two checks; three times the bound means it is not bounded.
const MAX_WAL_BYTES: u64 = 48 * 1024 * 1024;

const CONFIG: &str = r#"
[http]
trusted_proxies = ["127.0.0.1"]
# Many simulated clients share one address here.
max_sse_streams_per_ip = 1000
stream_per_ip_per_minute = 100000
profile_per_ip_per_minute = 100000
faucet_per_ip_per_minute = 100000
per_ip_per_minute = 1000000
[limits]
blocks_per_minute = 1000
signed_per_minute = 1000
# The soak's miners submit blocks all the time: lift the 24-hour bound on
# what their own reports credit (the bound has its own tests).
block_credit_daily_btc = "1000"
[payouts]
new_address_delay_s = 0
batch_interval_s = 5
[faucet]
difficulty_bits = 8
daily_budget_btc = "10"
batch_interval_s = 3
"#;

/// Answers by kind and status, and the failures worth showing.
#[derive(Default)]
struct Stats {
    by_kind: Mutex<BTreeMap<&'static str, BTreeMap<u16, u64>>>,
    failures: Mutex<Vec<String>>,
    failure_count: AtomicU64,
    sse_events: AtomicU64,
    sse_bytes: AtomicU64,
}

impl Stats {
    /// Records an answer; `ok` lists the statuses this endpoint may give
    /// under soak (anything else, and 0 = transport error, is a failure).
    fn record(&self, kind: &'static str, status: u16, ok: &[u16], body: &Value) {
        *self
            .by_kind
            .lock()
            .unwrap()
            .entry(kind)
            .or_default()
            .entry(status)
            .or_default() += 1;
        if !ok.contains(&status) {
            self.failure_count.fetch_add(1, Ordering::Relaxed);
            let mut failures = self.failures.lock().unwrap();
            if failures.len() < 20 {
                failures.push(format!("{kind}: {status} {body}"));
            }
        }
    }
}

async fn answer(result: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    match result {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Pool gateways: signed reports, a few hundred a second in all.
async fn pool(
    url: String,
    secret: String,
    conn: usize,
    miners: Vec<String>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    let http = client();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let miner = &miners[(n as usize + conn) % miners.len()];
        let body = serde_json::to_vec(&json!({
            "miner_id": miner, "worker_name": format!("rig{}", n % 3), "shares": 1 + n % 50,
            "difficulty": 1000, "event_id": format!("soak-p{conn}-{n}"), "ts": now_s()
        }))
        .unwrap();
        let sig = pooldesk_proto::sig::hmac_sha256_hex(secret.as_bytes(), &body);
        let (status, body) = answer(
            http.post(format!("{url}/api/report_share"))
                .header("content-type", "application/json")
                .header("x-report-sig", sig)
                .body(body)
                .send()
                .await,
        )
        .await;
        stats.record("pool report", status, &[200], &body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn signed(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    user: &str,
    key: &str,
    body: &Value,
) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let canonical = pooldesk_proto::canonical::canonicalize(&bytes).unwrap();
    let sig = pooldesk_proto::sig::sign_personal_request(key.as_bytes(), "POST", path, &canonical);
    answer(
        http.post(format!("{url}{path}"))
            .header("content-type", "application/json")
            .header("x-user-id", user)
            .header("x-signature", sig)
            .header("x-timestamp", now_s().to_string())
            .body(bytes)
            .send()
            .await,
    )
    .await
}

/// A personal-key miner: blocks, and now and then a withdrawal.
async fn miner(url: String, user: String, key: String, stats: Arc<Stats>, stop: Arc<AtomicBool>) {
    let http = client();
    let (status, body) = signed(
        &http,
        &url,
        "/api/miner/payout_address",
        &user,
        &key,
        &json!({"miner_id": user, "address": regtest_address(), "ts": now_s(),
            "event_id": format!("soak-address-{}", rand::random::<u64>())}),
    )
    .await;
    stats.record("payout address", status, &[200], &body);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let block = json!({
            "event_id": format!("soak-b-{user}-{n}"), "block_index": n,
            "block_hash": format!("{user}-{n}-{}", rand::random::<u32>()), "cid": "bafy",
            "miner_id": user, "capacity": "TIER_2_DESKTOP", "work_score": 5,
            "ts": now_s(), "signature": "x"
        });
        let (status, body) = signed(&http, &url, "/v1/ingest/block", &user, &key, &block).await;
        stats.record("miner block", status, &[202], &body);
        if n.is_multiple_of(20) {
            let (status, body) = signed(
                &http,
                &url,
                "/api/withdraw",
                &user,
                &key,
                &json!({"miner_id": user, "amount": "0.0001", "event_id": format!("soak-w-{user}-{n}"), "ts": now_s()}),
            )
            .await;
            // 422: the balance is (momentarily) short; fine under soak.
            stats.record("withdrawal", status, &[202, 422], &body);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An SSE reader; reconnects when the stream ends.
async fn sse(url: String, filter: Option<String>, stats: Arc<Stats>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let path = match &filter {
        Some(miner) => format!("{url}/api/stream?miner={miner}"),
        None => format!("{url}/api/stream"),
    };
    while !stop.load(Ordering::Relaxed) {
        let mut response = match http.get(&path).send().await {
            Ok(r) => r,
            Err(e) => {
                stats.record("sse connect", 0, &[200], &Value::String(e.to_string()));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        stats.record(
            "sse connect",
            response.status().as_u16(),
            &[200],
            &Value::Null,
        );
        // Read until the stream ends, or until a random point so streams
        // also come and go (subscriber churn).
        let until = Instant::now() + Duration::from_secs(5 + rand::random::<u64>() % 20);
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            match tokio::time::timeout(Duration::from_secs(1), response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    stats
                        .sse_bytes
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    let events = chunk.windows(6).filter(|w| w == b"event:").count();
                    stats.sse_events.fetch_add(events as u64, Ordering::Relaxed);
                }
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_) => {}
            }
        }
    }
}

/// A faucet user: challenge, work, claim, from a forwarded address of its
/// own each time (our trusted proxy is 127.0.0.1).
async fn faucet(url: String, user: usize, stats: Arc<Stats>, stop: Arc<AtomicBool>) {
    let http = client();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let (status, body) =
            answer(http.get(format!("{url}/api/faucet/challenge")).send().await).await;
        stats.record("faucet challenge", status, &[200], &body);
        if status != 200 {
            continue;
        }
        let challenge = body["challenge"].as_str().unwrap_or("").to_string();
        let bits = body["difficulty_bits"].as_u64().unwrap_or(8) as u32;
        let to = regtest_address();
        let nonce = pooldesk_proto::pow::solve_pow(&challenge, &to, bits);
        // TEST-NET-2 addresses: only a header, no traffic goes there.
        let client_ip = format!(
            "198.51.{}.{}",
            user * 50 + (n as usize / 250) % 50,
            n % 250 + 1
        );
        let (status, body) = answer(
            http.post(format!("{url}/api/faucet"))
                .header("x-forwarded-for", client_ip)
                .json(&json!({"address": to, "challenge": challenge, "nonce": nonce}))
                .send()
                .await,
        )
        .await;
        stats.record("faucet claim", status, &[202], &body);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The admin: approves what is requested, sends batches.
async fn payouts(d_url: String, admin_key: String, stats: Arc<Stats>, stop: Arc<AtomicBool>) {
    let http = client();
    while !stop.load(Ordering::Relaxed) {
        let (status, body) = answer(
            http.get(format!("{d_url}/api/admin/withdrawals?state=requested"))
                .header("x-api-key", &admin_key)
                .send()
                .await,
        )
        .await;
        stats.record("admin list", status, &[200], &body);
        let ids: Vec<i64> = body["withdrawals"]
            .as_array()
            .map(|a| a.iter().filter_map(|w| w["id"].as_i64()).collect())
            .unwrap_or_default();
        for id in ids {
            let (status, body) = answer(
                http.post(format!("{d_url}/api/admin/withdrawals/{id}/approve"))
                    .header("x-api-key", &admin_key)
                    .send()
                    .await,
            )
            .await;
            stats.record("admin approve", status, &[200], &body);
        }
        let (status, body) = answer(
            http.post(format!("{d_url}/api/admin/send_batch"))
                .header("x-api-key", &admin_key)
                .json(&json!({}))
                .send()
                .await,
        )
        .await;
        // 409/422: nothing payable right now (the automatic batch took it).
        stats.record("admin send_batch", status, &[200, 409, 422], &body);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The daemon's heap gauges from `/metrics`, in KiB (0 when missing):
/// SQLite's heap, live allocations, and what the allocator holds.
async fn heap_kib(d: &Daemon) -> (u64, u64, u64) {
    let Ok(r) = d.http.get(format!("{}/metrics", d.url)).send().await else {
        return (0, 0, 0);
    };
    let text = r.text().await.unwrap_or_default();
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|bytes| bytes as u64 / 1024)
            .unwrap_or(0)
    };
    (
        gauge("pooldesk_sqlite_heap_bytes"),
        gauge("pooldesk_heap_allocated_bytes"),
        gauge("pooldesk_heap_retained_bytes"),
    )
}

fn median(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

struct Sample {
    at_s: u64,
    rss_kib: u64,
    /// SQLite's heap (its page caches grow with the ledger up to their
    /// cache_size), from /metrics.
    sqlite_kib: u64,
    /// Live heap allocations of the whole process (SQLite's included).
    allocated_kib: u64,
    /// What the allocator holds from the OS, in use or free.
    retained_kib: u64,
    fds: usize,
    wal_bytes: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let warmup = args.warmup.unwrap_or((args.duration / 4).max(15));
    assert!(
        warmup + 3 * args.sample_every < args.duration,
        "--duration must leave room after the warm-up for a baseline and final samples"
    );
    println!(
        "soak: starting pooldeskd (simulated wallet) for {} s, warm-up {warmup} s",
        args.duration
    );
    let d = Daemon::start(DaemonOptions {
        config: CONFIG.into(),
        ..Default::default()
    })
    .await;
    let pid = d.pid().expect("daemon pid");
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));

    let mut keyed = Vec::new();
    for i in 0..args.miners {
        let user = format!("soak-miner-{i}");
        let key = d.issue_key(&user).await;
        keyed.push((user, key));
    }
    let mut pool_miners: Vec<String> = (0..20).map(|i| format!("soak-pool-{i}")).collect();
    // The pools also credit the keyed miners, so they can withdraw.
    pool_miners.extend(keyed.iter().map(|(u, _)| u.clone()));

    let mut tasks = Vec::new();
    for conn in 0..args.pools {
        tasks.push(tokio::spawn(pool(
            d.url.clone(),
            d.report_secret.clone(),
            conn,
            pool_miners.clone(),
            stats.clone(),
            stop.clone(),
        )));
    }
    for (user, key) in &keyed {
        tasks.push(tokio::spawn(miner(
            d.url.clone(),
            user.clone(),
            key.clone(),
            stats.clone(),
            stop.clone(),
        )));
    }
    for i in 0..args.sse {
        let filter = (i % 2 == 1).then(|| pool_miners[i % pool_miners.len()].clone());
        tasks.push(tokio::spawn(sse(
            d.url.clone(),
            filter,
            stats.clone(),
            stop.clone(),
        )));
    }
    for user in 0..args.faucet_users {
        tasks.push(tokio::spawn(faucet(
            d.url.clone(),
            user,
            stats.clone(),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(payouts(
        d.url.clone(),
        d.admin_key.clone(),
        stats.clone(),
        stop.clone(),
    )));

    let started = Instant::now();
    let wal = d.data_dir.join("ledger.sqlite-wal");
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(args.duration) {
        tokio::time::sleep(Duration::from_secs(args.sample_every)).await;
        let Some(rss) = rss_kib(pid) else {
            eprintln!("soak: the daemon is gone:\n{}", d.log_tail());
            return std::process::ExitCode::FAILURE;
        };
        let (sqlite_kib, allocated_kib, retained_kib) = heap_kib(&d).await;
        let sample = Sample {
            at_s: started.elapsed().as_secs(),
            rss_kib: rss,
            sqlite_kib,
            allocated_kib,
            retained_kib,
            fds: fd_count(pid),
            wal_bytes: std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
        };
        println!(
            "soak: t={:>4}s rss={:>7} KiB sqlite={:>6} KiB allocated={:>6} KiB retained={:>6} KiB fds={:>4} wal={:>6} KiB requests={}",
            sample.at_s,
            sample.rss_kib,
            sample.sqlite_kib,
            sample.allocated_kib,
            sample.retained_kib,
            sample.fds,
            sample.wal_bytes / 1024,
            stats
                .by_kind
                .lock()
                .unwrap()
                .values()
                .flat_map(|m| m.values())
                .sum::<u64>()
        );
        samples.push(sample);
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), task).await;
    }

    let mut problems = Vec::new();
    let (verified, verify_text) = d.verify();
    if !verified {
        problems.push(format!("pooldeskd verify failed:\n{verify_text}"));
    }
    let failures = stats.failure_count.load(Ordering::Relaxed);
    if failures > 0 {
        problems.push(format!(
            "{failures} failed requests, first ones:\n  {}",
            stats.failures.lock().unwrap().join("\n  ")
        ));
    }
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at_s >= warmup).collect();
    // Memory the daemon holds besides SQLite's page caches: those grow
    // with the ledger by design (bounded by cache_size), everything else
    // must stay flat once warm.
    let own = |s: &Sample| s.rss_kib.saturating_sub(s.sqlite_kib);
    let (baseline, last) = if after.len() >= 6 {
        let first: Vec<u64> = after[..3].iter().map(|s| own(s)).collect();
        let last: Vec<u64> = after[after.len() - 3..].iter().map(|s| own(s)).collect();
        (median(&first), median(&last))
    } else {
        problems.push(format!(
            "only {} samples after the warm-up; run longer",
            after.len()
        ));
        (0, 0)
    };
    let limit = (baseline as f64 * (1.0 + args.rss_margin)) as u64;
    if baseline > 0 && last > limit {
        problems.push(format!(
            "RSS outside SQLite's caches grew from {baseline} KiB to {last} KiB after the warm-up (limit {limit} KiB, +{:.0}%)",
            args.rss_margin * 100.0
        ));
    }
    let max_wal = samples.iter().map(|s| s.wal_bytes).max().unwrap_or(0);
    if max_wal > MAX_WAL_BYTES {
        problems.push(format!(
            "the WAL reached {max_wal} bytes (bound {MAX_WAL_BYTES})"
        ));
    }

    println!("\nsoak summary ({} s of traffic)", args.duration);
    println!("  {:<18} {:>8}  by status", "kind", "total");
    for (kind, statuses) in stats.by_kind.lock().unwrap().iter() {
        let total: u64 = statuses.values().sum();
        let detail: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
        println!("  {kind:<18} {total:>8}  {}", detail.join(" "));
    }
    println!(
        "  sse: {} events, {} KiB read",
        stats.sse_events.load(Ordering::Relaxed),
        stats.sse_bytes.load(Ordering::Relaxed) / 1024
    );
    println!("  failed requests: {failures}");
    println!(
        "  RSS KiB: {}",
        samples
            .iter()
            .map(|s| s.rss_kib.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "  SQLite heap KiB: {}",
        samples
            .iter()
            .map(|s| s.sqlite_kib.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "  RSS less SQLite heap, after warm-up: baseline {baseline} KiB, end {last} KiB ({:+.1}%), limit +{:.0}%",
        if baseline > 0 {
            (last as f64 / baseline as f64 - 1.0) * 100.0
        } else {
            0.0
        },
        args.rss_margin * 100.0
    );
    println!(
        "  fds: {}",
        samples
            .iter()
            .map(|s| s.fds.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "  WAL max: {} KiB (bound {} KiB)",
        max_wal / 1024,
        MAX_WAL_BYTES / 1024
    );
    println!(
        "  ledger: withdrawals {} ({} sent), faucet requests {} ({} paid), share reports {}",
        d.sql_i64("SELECT COUNT(*) FROM withdrawals"),
        d.sql_i64("SELECT COUNT(*) FROM withdrawals WHERE state IN ('broadcast', 'confirmed')"),
        d.sql_i64("SELECT COUNT(*) FROM faucet_requests"),
        d.sql_i64("SELECT COUNT(*) FROM faucet_requests WHERE state = 'paid'"),
        d.sql_i64("SELECT COUNT(*) FROM share_reports"),
    );
    println!(
        "  pooldeskd verify: {}",
        if verified { "clean" } else { "FAILED" }
    );
    if problems.is_empty() {
        println!("soak: PASSED");
        std::process::ExitCode::SUCCESS
    } else {
        for p in &problems {
            println!("soak: FAILED: {p}");
        }
        println!("daemon log tail:\n{}", d.log_tail());
        std::process::ExitCode::FAILURE
    }
}
