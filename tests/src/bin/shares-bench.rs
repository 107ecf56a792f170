//! Batched share ingest throughput, against the real (release) daemon, in
//! one run:
//!
//! 1. `/api/report_share`: one signed report (one share) per request, many
//!    keep-alive connections — the per-report path;
//! 2. `/api/v2/shares`: batches of `--batch` shares (default 1,000), a few
//!    connections, each its own origin with increasing seqs;
//! 3. the bridge end to end: `--bridge-shares` shares written as ckpool
//!    share logs, then `pooldeskd bridge ckpool` started and timed until
//!    every share is durably recorded.
//!
//!     cargo run --release -p pooldesk-e2e --bin shares-bench [-- --seconds 10]
//!
//! A 200 means every share of the request is durable (fsynced); figures
//! count shares acknowledged, divided by wall time.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pooldesk_e2e::ckpool::{Generator, sharelog_path};
use pooldesk_e2e::daemon::{free_port, workspace_root};

struct Options {
    seconds: u64,
    batch: usize,
    batch_connections: usize,
    report_connections: usize,
    bridge_shares: usize,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 10,
        batch: 1000,
        batch_connections: 4,
        report_connections: 64,
        bridge_shares: 200_000,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < args.len() {
        let v = &args[i + 1];
        match args[i].as_str() {
            "--seconds" => o.seconds = v.parse().expect("seconds"),
            "--batch" => o.batch = v.parse().expect("batch"),
            "--batch-connections" => o.batch_connections = v.parse().expect("n"),
            "--report-connections" => o.report_connections = v.parse().expect("n"),
            "--bridge-shares" => o.bridge_shares = v.parse().expect("n"),
            _ => {}
        }
        i += 2;
    }
    o
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn main() {
    let o = options();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "pooldesk-daemon",
            "--bin",
            "pooldeskd",
        ])
        .current_dir(workspace_root())
        .status()
        .expect("cargo build");
    assert!(status.success());
    let target = pooldesk_e2e::daemon::target_dir();
    let bin = target.join("release").join("pooldeskd");
    let dir = tempfile::tempdir_in(&target).expect("bench dir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let secret = "bench-secret".to_string();
    let mut daemon = Command::new(&bin)
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--http", &format!("127.0.0.1:{port}")])
        .env("REPORT_SHARED_SECRET", &secret)
        .env("POOLDESK_WALLET_BACKEND", "simulated")
        .env("POOLDESK_HTTP_PER_IP_PER_MINUTE", "1000000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pooldeskd");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(wait_up(&url));
    println!(
        "shares-bench: {} s per phase, {} cores (load generator on the same machine)",
        o.seconds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let reports = runtime.block_on(per_report(&url, &secret, &o));
    println!(
        "  /api/report_share        {:>9.0} shares/s  ({} connections, 1 share per request)",
        reports, o.report_connections
    );
    let batched = runtime.block_on(batches(&url, &secret, &o));
    println!(
        "  /api/v2/shares           {:>9.0} shares/s  ({} connections, {} shares per request)",
        batched, o.batch_connections, o.batch
    );
    println!(
        "  ratio batched/per-report {:>9.1}x  (targets: ≥ 250000 shares/s, ≥ 10x)",
        batched / reports.max(1.0)
    );

    // The bridge end to end.
    let logdir = dir.path().join("ckpool");
    let written = Instant::now();
    write_logs(&logdir, o.bridge_shares);
    println!(
        "  wrote {} ckpool share lines in {:.1} s",
        o.bridge_shares,
        written.elapsed().as_secs_f64()
    );
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, &secret).unwrap();
    let before = count_rows(&dir.path().join("data/ledger.sqlite"));
    let started = Instant::now();
    let mut bridge = Command::new(&bin)
        .args(["bridge", "ckpool", "--logdir"])
        .arg(&logdir)
        .args([
            "--url",
            &url,
            "--origin",
            "bench-bridge",
            "--batch-shares",
            "5000",
            "--secret-file",
        ])
        .arg(&secret_file)
        .arg("--state-dir")
        .arg(dir.path().join("bridge"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bridge");
    let want = before + o.bridge_shares as i64;
    loop {
        if count_rows(&dir.path().join("data/ledger.sqlite")) >= want {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "bridge too slow"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  bridge end to end        {:>9.0} shares/s  ({} shares, files → durable credits, {:.2} s)",
        o.bridge_shares as f64 / secs,
        o.bridge_shares,
        secs
    );
    stop(&mut bridge);
    stop(&mut daemon);
    let verify = Command::new(&bin)
        .args(["verify", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("verify");
    println!(
        "  pooldeskd verify: {}",
        String::from_utf8_lossy(&verify.stdout).trim()
    );
}

fn count_rows(path: &Path) -> i64 {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    conn.query_row("SELECT COUNT(*) FROM pool_shares", [], |r| r.get(0))
        .unwrap_or(0)
}

fn write_logs(logdir: &Path, n: usize) {
    use std::io::Write;
    let mut generator = Generator::new(7, 500);
    let per_file = 2000;
    let mut files = std::collections::BTreeMap::<std::path::PathBuf, Vec<u8>>::new();
    for i in 0..n {
        let height = 0x100 + (i / per_file) as u32;
        let id = 0x6b0f_0000_0000_0000 + (i / per_file) as u64;
        let (record, _) = generator.record(id, false);
        files
            .entry(sharelog_path(logdir, height, id))
            .or_default()
            .extend_from_slice(record.line().as_bytes());
    }
    for (path, bytes) in files {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
    }
}

fn stop(child: &mut Child) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

async fn wait_up(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{url}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn per_report(url: &str, secret: &str, o: &Options) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..o.report_connections {
        let (url, secret, done) = (url.to_string(), secret.to_string(), done.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let body = format!(
                    r#"{{"miner_id":"bench-m{}","worker_name":"w{c}","shares":1,"event_id":"r-{c}-{n}","ts":{}}}"#,
                    n % 100,
                    now_s()
                );
                let sig = pooldesk_proto::sig::hmac_sha256_hex(secret.as_bytes(), body.as_bytes());
                let ok = client
                    .post(format!("{url}/api/report_share"))
                    .header("x-report-sig", sig)
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn batches(url: &str, secret: &str, o: &Options) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..o.batch_connections {
        let (url, secret, done) = (url.to_string(), secret.to_string(), done.clone());
        let batch = o.batch;
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seq = 0u64;
            while Instant::now() < deadline {
                let t = now_s();
                let mut body = String::with_capacity(batch * 200);
                body.push_str(&format!(r#"{{"origin":"bench-{c}","ts":{t},"shares":["#));
                for i in 0..batch {
                    seq += 1;
                    if i > 0 {
                        body.push(',');
                    }
                    body.push_str(&format!(
                        r#"{{"seq":{seq},"miner":"bench-m{}","worker":"w{}","diff":{},"sdiff":{}.5,"accepted":true,"time_s":{t:.3}}}"#,
                        seq % 500,
                        seq % 3,
                        1 << (seq % 4),
                        2 << (seq % 4)
                    ));
                }
                body.push_str("]}");
                let sig = pooldesk_proto::sig::hmac_sha256_hex(secret.as_bytes(), body.as_bytes());
                match client
                    .post(format!("{url}/api/v2/shares"))
                    .header("x-report-sig", sig)
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        done.fetch_add(v["new"].as_u64().unwrap_or(0), Ordering::Relaxed);
                    }
                    Ok(r) => eprintln!("batch refused: {}", r.status()),
                    Err(e) => eprintln!("batch failed: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}
