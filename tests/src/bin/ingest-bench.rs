//! Ingest throughput: durable signed reports over HTTP/1.1 keep-alive from
//! many connections, against the real (release) daemon, and in the same run
//! the same load against a no-op axum endpoint in its own process, as the
//! baseline.
//!
//!     cargo run --release -p pooldesk-e2e --bin ingest-bench [-- --seconds 10 --connections 64]
//!
//! Every report has a unique `event_id` and a fresh `ts`; a 200 means the
//! credit was committed with `synchronous=FULL`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use pooldesk_e2e::daemon::{free_port, workspace_root};

struct Options {
    seconds: u64,
    connections: usize,
}

fn options() -> Options {
    let mut opts = Options {
        seconds: 10,
        connections: 64,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--seconds" => opts.seconds = args[i + 1].parse().expect("seconds"),
            "--connections" => opts.connections = args[i + 1].parse().expect("connections"),
            _ => {}
        }
        i += 2;
    }
    opts
}

fn main() {
    if let Some(pos) = std::env::args().position(|a| a == "--noop-server") {
        let port: u16 = std::env::args()
            .nth(pos + 1)
            .expect("port")
            .parse()
            .expect("port");
        return noop_server(port);
    }
    let opts = options();
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
    let daemon_bin = target.join("release").join("pooldeskd");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // The no-op baseline, in its own process like the daemon.
    let noop_port = free_port();
    let mut noop = Command::new(std::env::current_exe().expect("exe"))
        .args(["--noop-server", &noop_port.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("no-op server");
    let noop_addr: SocketAddr = format!("127.0.0.1:{noop_port}").parse().unwrap();

    let dir = tempfile::tempdir_in(target).expect("bench dir");
    let port = free_port();
    let secret = "bench-secret".to_string();
    let mut daemon = Command::new(&daemon_bin)
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
    let daemon_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    runtime.block_on(wait_up(daemon_addr));
    runtime.block_on(wait_up(noop_addr));

    println!(
        "ingest-bench: {} connections, {} s per target, {} cores (load generator on the same machine)",
        opts.connections,
        opts.seconds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let baseline = runtime.block_on(drive(noop_addr, "/noop", &secret, &opts, "noop"));
    let reports = runtime.block_on(drive(
        daemon_addr,
        "/api/report_share",
        &secret,
        &opts,
        "daemon",
    ));
    print("no-op axum endpoint", &baseline);
    print("signed durable reports", &reports);
    println!(
        "  ratio reports/no-op: {:.2} (target ≥ 0.5); reports/s target ≥ 25000; p99 target ≤ 20 ms",
        reports.rate / baseline.rate
    );
    println!(
        "  errors: no-op {}, daemon {}",
        baseline.errors, reports.errors
    );
    if let Ok(text) = runtime.block_on(async {
        reqwest::get(format!("http://{daemon_addr}/metrics"))
            .await?
            .text()
            .await
    }) {
        let value = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let commits = value("pooldesk_commit_seconds_count");
        println!(
            "  group commits: {commits:.0}, mean batch {:.1} jobs, mean commit {:.2} ms",
            value("pooldesk_commit_batch_size_sum") / commits.max(1.0),
            value("pooldesk_commit_seconds_sum") * 1000.0 / commits.max(1.0)
        );
    }

    stop(&mut daemon);
    stop(&mut noop);
    let verify = Command::new(&daemon_bin)
        .args(["verify", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("verify");
    println!(
        "  pooldeskd verify: {}",
        String::from_utf8_lossy(&verify.stdout).trim()
    );
}

fn stop(child: &mut Child) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}

async fn wait_up(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

struct Result {
    rate: f64,
    p50: Duration,
    p99: Duration,
    count: usize,
    errors: usize,
}

fn print(name: &str, r: &Result) {
    println!(
        "  {name:<24} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} requests)",
        r.rate,
        r.p50.as_secs_f64() * 1000.0,
        r.p99.as_secs_f64() * 1000.0,
        r.count
    );
}

async fn drive(
    addr: SocketAddr,
    path: &'static str,
    secret: &str,
    opts: &Options,
    tag: &'static str,
) -> Result {
    let stop = Arc::new(AtomicBool::new(false));
    let secret = Arc::new(secret.to_string());
    let mut tasks = Vec::new();
    for conn in 0..opts.connections {
        let stop = stop.clone();
        let secret = secret.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).ok();
            let io = hyper_util::rt::TokioIo::new(stream);
            let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io).await.expect("handshake");
            tokio::spawn(connection);
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0usize;
            let mut n = 0u64;
            let now_s = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = format!(
                    r#"{{"miner_id":"bench-m{}","worker_name":"w{}","shares":{},"event_id":"{tag}-{conn}-{n}","ts":{}}}"#,
                    (conn + n as usize) % 500,
                    conn % 8,
                    1 + n % 16,
                    now_s()
                );
                let sig = pooldesk_proto::sig::hmac_sha256_hex(secret.as_bytes(), body.as_bytes());
                let request = hyper::Request::post(path)
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .header("x-report-sig", sig)
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                let started = Instant::now();
                match sender.send_request(request).await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        let _ = response.into_body().collect().await;
                        if ok {
                            latencies.push(started.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(opts.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.expect("connection task");
        all.extend(latencies);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Result {
        rate: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
        count: all.len(),
        errors,
    }
}

/// The baseline: axum, a POST route that reads the body and answers a
/// small JSON, nothing else.
fn noop_server(port: u16) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let app = axum::Router::new().route(
            "/noop",
            axum::routing::post(|body: Bytes| async move {
                let _ = body.len();
                axum::Json(serde_json::json!({"status": "ok"}))
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        axum::serve(listener, app).await.expect("serve");
    });
}
