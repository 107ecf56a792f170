//! SSE fan-out benchmark: starts `pooldeskd` (release build by default),
//! opens many concurrent `/api/stream` subscribers, keeps a report load
//! flowing, and prints the daemon's memory per subscriber and how late the
//! `pool` event reaches the subscribers (the event's server `at_ms` against
//! its arrival).
//!
//! ```text
//! cargo build --release -p pooldesk-daemon
//! cargo run --release -p pooldesk-e2e --bin sse-bench -- --subscribers 10000
//! ```
//!
//! Targets: ≤ 16 KiB of daemon RSS per idle subscriber; p99 delivery of a
//! `pool` event ≤ 1 s. Both processes share the machine, so the delay
//! includes this program's own reading of every stream.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(about = "SSE fan-out benchmark of pooldeskd")]
struct Args {
    /// Concurrent SSE subscribers.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// The daemon binary (default: target/release/pooldeskd).
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// Share reports per second during the measurement.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds of measurement under load.
    #[arg(long, default_value_t = 20)]
    duration_s: u64,
    /// Percent of subscribers without `?miner=` (they receive every credit).
    #[arg(long, default_value_t = 1)]
    unfiltered_percent: usize,
    /// Miners the report load is spread over (subscribers follow them).
    #[arg(long, default_value_t = 100)]
    miners: usize,
}

fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit with a properly initialised struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_cur
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Delay histogram: 1 ms buckets up to a minute.
const HISTOGRAM_MS: usize = 60_000;

struct Shared {
    measuring: AtomicBool,
    histogram: Vec<AtomicU64>,
    pool_events: AtomicU64,
    lagged: AtomicU64,
    connected: AtomicU64,
    ended: AtomicU64,
}

/// One subscriber: a raw HTTP/1.1 request and a small reader that only
/// looks for `pool` events and their `at_ms`.
async fn subscribe(addr: std::net::SocketAddr, path: String, shared: Arc<Shared>) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        shared.ended.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        shared.ended.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut buf = vec![0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    let mut headers_done = false;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let arrived = now_ms();
        pending.extend_from_slice(&buf[..n]);
        if !headers_done {
            let Some(end) = find(&pending, b"\r\n\r\n") else {
                continue;
            };
            if !pending.starts_with(b"HTTP/1.1 200") {
                break;
            }
            headers_done = true;
            shared.connected.fetch_add(1, Ordering::Relaxed);
            pending.drain(..end + 4);
        }
        // Only the newest bytes are searched (events are small and come
        // whole; a sample split across reads is just not counted), with
        // `str::find`, so this reader costs little next to the daemon.
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
        if let Some(at) = text.find("event: pool") {
            let rest = &text[at..];
            if let Some(p) = rest.find("\"at_ms\":") {
                let digits: &str = rest[p + 8..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap_or("");
                if let Ok(at_ms) = digits.parse::<i64>()
                    && shared.measuring.load(Ordering::Relaxed)
                {
                    shared.pool_events.fetch_add(1, Ordering::Relaxed);
                    let delay = (arrived - at_ms).clamp(0, HISTOGRAM_MS as i64 - 1) as usize;
                    shared.histogram[delay].fetch_add(1, Ordering::Relaxed);
                }
            }
        } else if text.contains("event: lagged") {
            shared.lagged.fetch_add(1, Ordering::Relaxed);
        }
        pending.clear();
    }
    shared.ended.fetch_add(1, Ordering::Relaxed);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nofile = raise_nofile();
    let root = pooldesk_e2e::daemon::workspace_root();
    let daemon_bin = args.daemon.clone().unwrap_or_else(|| {
        pooldesk_e2e::daemon::target_dir()
            .join("release")
            .join("pooldeskd")
    });
    anyhow::ensure!(
        daemon_bin.exists(),
        "{} not found: run `cargo build --release -p pooldesk-daemon` first",
        daemon_bin.display()
    );
    let dir = tempfile::tempdir()?;
    let port = pooldesk_e2e::daemon::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nmax_sse_streams = {}\nmax_sse_streams_per_ip = {}\nmax_connections_per_ip = {}\n\
             stream_per_ip_per_minute = {}\nper_ip_per_minute = 100000000\n\
             [faucet]\nenabled = false\n[log]\nfilter = \"warn\"\n",
            args.subscribers + 1000,
            args.subscribers + 1000,
            args.subscribers + 1000,
            args.subscribers + 1000,
        ),
    )?;
    let secret = "bench-report-secret";
    // The daemon inherits the raised descriptor limit.
    let mut child: Child = Command::new(&daemon_bin)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--http")
        .arg(addr.to_string())
        .arg("--socket")
        .arg(dir.path().join("control.sock"))
        .env("REPORT_SHARED_SECRET", secret)
        .env("MINING_SERVER_API_KEY", "bench-admin-key")
        .env("POOLDESK_MASTER_KEY", "bench-master-key-0123456789abcdef")
        .env("POOLDESK_WALLET_BACKEND", "simulated")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
    {
        anyhow::ensure!(Instant::now() < deadline, "daemon did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Warm up: one report per miner so the stores, caches and tracker hold them.
    post_reports(
        &http,
        addr,
        secret,
        args.miners,
        args.miners as f64 * 10.0,
        args.miners,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = rss_kib(pid);

    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        histogram: (0..HISTOGRAM_MS).map(|_| AtomicU64::new(0)).collect(),
        pool_events: AtomicU64::new(0),
        lagged: AtomicU64::new(0),
        connected: AtomicU64::new(0),
        ended: AtomicU64::new(0),
    });
    let connect_started = Instant::now();
    let unfiltered_every = if args.unfiltered_percent == 0 {
        usize::MAX
    } else {
        100 / args.unfiltered_percent.min(100)
    };
    for i in 0..args.subscribers {
        let path = if i % unfiltered_every == 0 {
            "/api/stream".to_string()
        } else {
            format!("/api/stream?miner=bench-{}", i % args.miners)
        };
        tokio::spawn(subscribe(addr, path, shared.clone()));
        // Stay under the listener's accept backlog.
        if i % 500 == 499 {
            while shared.connected.load(Ordering::Relaxed) + shared.ended.load(Ordering::Relaxed)
                < (i as u64 + 1).saturating_sub(200)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    while shared.connected.load(Ordering::Relaxed) + shared.ended.load(Ordering::Relaxed)
        < args.subscribers as u64
    {
        anyhow::ensure!(
            connect_started.elapsed() < Duration::from_secs(120),
            "only {} subscribers connected",
            shared.connected.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = shared.connected.load(Ordering::Relaxed);
    let connect_time = connect_started.elapsed();
    // Idle (only pool events) for a few seconds, then measure memory.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_idle = rss_kib(pid);

    shared.measuring.store(true, Ordering::Relaxed);
    let load_started = Instant::now();
    let reports = (args.rate * args.duration_s as f64) as usize;
    post_reports(&http, addr, secret, reports, args.rate, args.miners).await;
    let remaining = Duration::from_secs(args.duration_s).saturating_sub(load_started.elapsed());
    tokio::time::sleep(remaining).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let rss_load = rss_kib(pid);
    let load_time = load_started.elapsed();

    let mut delays: Vec<u32> = Vec::new();
    for (ms, count) in shared.histogram.iter().enumerate() {
        let count = count.load(Ordering::Relaxed);
        delays.extend(std::iter::repeat_n(ms as u32, count as usize));
    }
    let expected = connected as f64 * load_time.as_secs_f64();

    let stop_started = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let status = child.wait()?;
    let stop_time = stop_started.elapsed();

    let per_sub =
        |kib: u64| (kib.saturating_sub(rss_before)) as f64 * 1024.0 / connected.max(1) as f64;
    println!(
        "pooldeskd SSE benchmark ({} build)",
        if daemon_bin.starts_with(root.join("target").join("release"))
            || daemon_bin.to_string_lossy().contains("/release/")
        {
            "release"
        } else {
            "given"
        }
    );
    println!("  descriptor limit              {nofile}");
    println!(
        "  subscribers connected         {connected} of {} in {:.1} s ({}% unfiltered)",
        args.subscribers,
        connect_time.as_secs_f64(),
        args.unfiltered_percent
    );
    println!("  daemon RSS before             {} KiB", rss_before);
    println!(
        "  daemon RSS idle subscribers   {} KiB  -> {:.0} bytes ({:.1} KiB) per subscriber",
        rss_idle,
        per_sub(rss_idle),
        per_sub(rss_idle) / 1024.0
    );
    println!(
        "  daemon RSS under load         {} KiB  -> {:.1} KiB per subscriber",
        rss_load,
        per_sub(rss_load) / 1024.0
    );
    println!(
        "  report load                   {reports} reports over {:.1} s ({:.0}/s, {} miners)",
        load_time.as_secs_f64(),
        reports as f64 / load_time.as_secs_f64(),
        args.miners
    );
    println!(
        "  pool events delivered         {} (~{:.0} expected), lagged notices {}",
        delays.len(),
        expected,
        shared.lagged.load(Ordering::Relaxed)
    );
    println!(
        "  pool event delay              p50 {} ms, p99 {} ms, max {} ms",
        percentile(&delays, 0.50),
        percentile(&delays, 0.99),
        delays.last().copied().unwrap_or(0)
    );
    println!(
        "  SIGTERM with streams open     exit {:?} in {:.2} s",
        status.code(),
        stop_time.as_secs_f64()
    );
    let ok_mem = per_sub(rss_idle) <= 16.0 * 1024.0;
    let ok_delay = percentile(&delays, 0.99) <= 1000;
    println!(
        "  targets: <= 16 KiB/subscriber {}; p99 <= 1 s {}",
        if ok_mem { "MET" } else { "MISSED" },
        if ok_delay { "MET" } else { "MISSED" }
    );
    Ok(())
}

/// Posts `count` signed reports at about `rate` per second.
async fn post_reports(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    secret: &str,
    count: usize,
    rate: f64,
    miners: usize,
) {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let due = Duration::from_secs_f64(i as f64 / rate.max(1.0));
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        while tasks.len() >= 64 {
            tasks.join_next().await;
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "miner_id": format!("bench-{}", i % miners),
            "worker_name": format!("rig-{}", i % 3),
            "shares": 10,
            "event_id": format!("bench-{i}-{}", rand::random::<u64>()),
            "ts": now_ms() / 1000,
        }))
        .expect("json");
        let sig = pooldesk_proto::sig::hmac_sha256_hex(secret.as_bytes(), &body);
        let request = http
            .post(format!("http://{addr}/api/report_share"))
            .header("content-type", "application/json")
            .header("x-report-sig", sig)
            .body(body);
        tasks.spawn(async move {
            let _ = request.send().await;
        });
    }
    while tasks.join_next().await.is_some() {}
}
