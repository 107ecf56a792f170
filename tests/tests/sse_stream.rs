//! `GET /api/stream` against a real daemon: order, `?miner=` filtering,
//! `Last-Event-ID` resume without gaps or duplicates, `reset` for ids older
//! than the replay window, the stream limit, clients that never read, and
//! SIGTERM with streams open.

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use pooldesk_e2e::browser::{EventStream, SseEvent};
use pooldesk_e2e::daemon::{Daemon, DaemonOptions};

const WAIT: Duration = Duration::from_secs(60);

async fn start(config: &str) -> Daemon {
    Daemon::start(DaemonOptions {
        config: config.to_string(),
        ..DaemonOptions::default()
    })
    .await
}

async fn report(d: &Daemon, miner: &str, worker: &str, shares: u64) -> String {
    let (status, body) = d.post_report(miner, worker, shares).await;
    assert_eq!(status, 200, "report: {body}");
    body.to_string()
}

/// Credits until `n` have arrived.
async fn credits(stream: &mut EventStream, n: usize) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let event = stream
            .next_of(&["credit"], WAIT)
            .await
            .unwrap_or_else(|| panic!("only {} of {n} credits arrived", out.len()));
        out.push(event);
    }
    out
}

#[tokio::test]
async fn credits_arrive_in_order_with_increasing_ids() {
    let d = start("").await;
    let mut stream = EventStream::open(&format!("{}/api/stream", d.url), None).await;
    assert_eq!(stream.status, 200);
    assert!(
        stream
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    // The pool snapshot arrives every second, with money as integers and strings.
    let pool = stream.next_of(&["pool"], WAIT).await.expect("pool event");
    let p = pool.json();
    assert!(pool.id_u64().is_some());
    assert!(p["at_ms"].as_i64().is_some(), "{p}");
    assert!(p["ledger"]["owed_msat"].is_i64(), "{p}");
    assert!(p["ledger"]["owed_btc"].is_string(), "{p}");
    assert!(p["hashrate"]["h1m"].is_number());
    assert_eq!(p["simulated"], false);

    let mut expected = Vec::new();
    for i in 0..20 {
        let miner = if i % 2 == 0 { "m-even" } else { "m-odd" };
        report(&d, miner, "w1", 10 + i).await;
        expected.push((miner.to_string(), (10 + i) * 1000));
    }
    let got = credits(&mut stream, 20).await;
    let ids: Vec<u64> = got.iter().map(|e| e.id_u64().expect("credit id")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let seen: Vec<(String, u64)> = got
        .iter()
        .map(|e| {
            let j = e.json();
            (
                j["miner_id"].as_str().unwrap().to_string(),
                j["amount_msat"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, expected, "in the order they were committed");
    d.assert_verified();
}

#[tokio::test]
async fn a_miner_stream_gets_only_that_miners_credits_balance_and_hashrate() {
    let d = start("").await;
    let mut stream = EventStream::open(&format!("{}/api/stream?miner=alice", d.url), None).await;
    assert_eq!(stream.status, 200);
    for i in 0..6 {
        report(&d, "alice", "rig1", 100).await;
        report(&d, "bob", "rig1", 100 + i).await;
    }
    let mut alice_credits = 0;
    let mut balances = Vec::new();
    let mut hashrate = None;
    let deadline = Instant::now() + WAIT;
    while (alice_credits < 6 || hashrate.is_none()) && Instant::now() < deadline {
        let Some(event) = stream.next(Duration::from_secs(5)).await else {
            break;
        };
        let j = event.json();
        match event.event.as_str() {
            "credit" => {
                assert_eq!(j["miner_id"], "alice", "{j}");
                alice_credits += 1;
            }
            "balance" => {
                assert_eq!(j["miner_id"], "alice");
                assert!(event.id.is_none(), "derived events carry no id");
                balances.push(j["balance_msat"].as_i64().unwrap());
            }
            "hashrate" => {
                assert!(event.id.is_none(), "derived events carry no id");
                assert_eq!(j["miner_id"], "alice");
                // A pool tick computed before alice's first report says 0
                // (it may be delivered after a credit); the one that counts
                // shows her work and her worker.
                if j["hashrate"]["h1m"].as_f64().unwrap() > 0.0 {
                    assert_eq!(j["workers"][0]["worker_name"], "rig1", "{j}");
                    hashrate = Some(j);
                }
            }
            "withdrawal" => assert_eq!(j["miner_id"], "alice"),
            "pool" => {}
            other => panic!("unexpected event {other}: {j}"),
        }
    }
    assert_eq!(alice_credits, 6);
    assert!(hashrate.is_some(), "a hashrate event at a pool tick");
    // Each credit is followed by the balance after it.
    assert_eq!(balances.len(), 6);
    assert!(balances.windows(2).all(|w| w[0] < w[1]), "{balances:?}");
    assert_eq!(*balances.last().unwrap(), d.balance_msat("alice").await);
    d.assert_verified();
}

#[tokio::test]
async fn last_event_id_resumes_without_gaps_or_duplicates() {
    let d = start("").await;
    let url = format!("{}/api/stream", d.url);
    let mut first = EventStream::open(&url, None).await;
    for _ in 0..10 {
        report(&d, "carol", "w", 1).await;
    }
    let before = credits(&mut first, 10).await;
    // Read only part of what follows, then disconnect.
    for _ in 0..10 {
        report(&d, "carol", "w", 2).await;
    }
    let partial = credits(&mut first, 4).await;
    let last_id = partial.last().unwrap().id.clone().unwrap();
    drop(first);
    // More while disconnected.
    for _ in 0..10 {
        report(&d, "carol", "w", 3).await;
    }
    let mut resumed = EventStream::open(&url, Some(&last_id)).await;
    let rest = credits(&mut resumed, 16).await;
    let all: Vec<String> = before
        .iter()
        .chain(&partial)
        .chain(&rest)
        .map(|e| e.json()["event_id"].as_str().unwrap().to_string())
        .collect();
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 30, "no duplicates");
    assert_eq!(all.len(), 30, "no gaps");
    let ids: Vec<u64> = partial
        .iter()
        .chain(&rest)
        .map(|e| e.id_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // `?last_event_id=` for clients that cannot set headers; a miner
    // stream resumes with the same ids.
    let mut by_query =
        EventStream::open(&format!("{url}?miner=carol&last_event_id={last_id}"), None).await;
    let again = credits(&mut by_query, 16).await;
    assert_eq!(
        again.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        rest.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    );
    // The header wins over a stale query value (EventSource reconnects so).
    let newest = rest.last().unwrap().id.clone().unwrap();
    let mut both =
        EventStream::open(&format!("{url}?last_event_id={last_id}"), Some(&newest)).await;
    // Nothing more after the 30 on either stream: the next credit each
    // sees is a sentinel sent now (an event to wait for, not a quiet time).
    let sentinel: serde_json::Value =
        serde_json::from_str(&report(&d, "carol", "w", 9).await).unwrap();
    assert!(sentinel["event_id"].is_string(), "{sentinel}");
    for (name, stream) in [("resumed", &mut resumed), ("header-wins", &mut both)] {
        let next = stream
            .next_of(&["credit"], WAIT)
            .await
            .expect("the sentinel credit");
        assert_eq!(
            next.json()["event_id"],
            sentinel["event_id"],
            "{name}: an old credit came again before the sentinel: {next:?}"
        );
    }
    d.assert_verified();
}

#[tokio::test]
async fn an_id_older_than_the_window_gets_reset_then_live_events() {
    let d = start("[http]\nsse_replay_events = 16\n").await;
    let url = format!("{}/api/stream", d.url);
    let mut stream = EventStream::open(&url, Some("1")).await;
    let first = stream.next(WAIT).await.expect("an event");
    assert_eq!(first.event, "reset", "{first:?}");
    assert!(first.id.is_none());
    assert_eq!(first.json()["reason"], "too_old");
    report(&d, "dave", "w", 5).await;
    let credit = stream
        .next_of(&["credit"], WAIT)
        .await
        .expect("live after reset");
    assert_eq!(credit.json()["miner_id"], "dave");
    // An id that was never ours.
    let mut junk = EventStream::open(&url, Some("not-a-number")).await;
    assert_eq!(junk.next(WAIT).await.unwrap().event, "reset");
    // An id ahead of every id given (a clock stepped back since, or made
    // up): reset, then live — not a stream that silently drops everything
    // up to that id.
    let ahead = (u64::MAX / 2).to_string();
    let mut ahead_stream = EventStream::open(&url, Some(&ahead)).await;
    let first = ahead_stream.next(WAIT).await.expect("an event");
    assert_eq!(first.event, "reset", "{first:?}");
    assert_eq!(first.json()["reason"], "unknown_id");
    report(&d, "erin", "w", 5).await;
    let credit = ahead_stream
        .next_of(&["credit"], WAIT)
        .await
        .expect("live after reset");
    assert_eq!(credit.json()["miner_id"], "erin");
    d.assert_verified();
}

#[tokio::test]
async fn streams_past_the_limit_get_503_and_the_gauge_follows() {
    let d = start("[http]\nmax_sse_streams = 3\n").await;
    let url = format!("{}/api/stream", d.url);
    let mut open = Vec::new();
    for _ in 0..3 {
        let s = EventStream::open(&url, None).await;
        assert_eq!(s.status, 200);
        open.push(s);
    }
    let refused = d.http.get(&url).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().get("retry-after").is_some());
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unavailable");
    let gauge = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("pooldesk_sse_clients "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<i64>().ok())
    };
    let metrics = d.metrics_text().await;
    assert_eq!(gauge(&metrics), Some(3), "{metrics}");
    open.pop();
    // The server notices the closed connection at its next write (≤ 1 s: pool events).
    let deadline = Instant::now() + WAIT;
    loop {
        let again = EventStream::open(&url, None).await;
        if again.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.assert_verified();
}

/// Opens a connection that sends the stream request and never reads, with
/// a tiny receive buffer so it backs up quickly.
fn stalled_client(addr: std::net::SocketAddr) -> TcpStream {
    let socket = TcpStream::connect(addr).expect("connect");
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt on a socket we own, with a correctly sized value.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let mut writer = &socket;
    writer
        .write_all(b"GET /api/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .expect("send request");
    socket
}

/// Delivery delay of `n` reports to a reading client: post → credit seen.
async fn delivery_delays(d: &Daemon, stream: &mut EventStream, n: usize) -> Vec<Duration> {
    let mut delays = Vec::new();
    for i in 0..n {
        let miner = format!("probe-{i}");
        let sent = Instant::now();
        report(d, &miner, "w", 1).await;
        loop {
            let event = stream
                .next_of(&["credit"], WAIT)
                .await
                .expect("credit delivered");
            if event.json()["miner_id"] == miner.as_str() {
                delays.push(sent.elapsed());
                break;
            }
        }
    }
    delays.sort();
    delays
}

#[tokio::test]
async fn clients_that_never_read_do_not_delay_the_others() {
    // 200 stalled streams from one address: past the per-client defaults.
    let d = start(
        "[http]\nmax_connections_per_ip = 1000\nmax_sse_streams_per_ip = 1000\n\
         stream_per_ip_per_minute = 100000\n",
    )
    .await;
    let url = format!("{}/api/stream", d.url);
    let mut reader = EventStream::open(&url, None).await;
    let baseline = delivery_delays(&d, &mut reader, 20).await;

    let stalled: Vec<TcpStream> = (0..200).map(|_| stalled_client(d.http_addr)).collect();
    // Flood: every stalled client is sent every credit (unfiltered streams)
    // until its socket and the daemon's write buffer are full.
    flood(&d, 1000, 25).await;
    // What the reader got during the flood is skipped by delivery_delays,
    // which waits for each probe's own credit (lag may produce a `lagged`
    // event, never a block).
    let loaded = delivery_delays(&d, &mut reader, 20).await;
    let p50 = |v: &Vec<Duration>| v[v.len() / 2];
    let max = |v: &Vec<Duration>| *v.last().unwrap();
    println!(
        "delivery to a reading client: baseline p50 {:?} max {:?}; with 200 stalled clients p50 {:?} max {:?}",
        p50(&baseline),
        max(&baseline),
        p50(&loaded),
        max(&loaded)
    );
    // "Not blocked" is the outcome asserted: every probe's credit reached
    // the reader (within WAIT, a deadline for a loaded machine, not a
    // speed claim); the delays above are a measurement only.
    assert_eq!(loaded.len(), 20);
    drop(stalled);
    d.assert_verified();
}

/// Posts `n` signed reports, `parallel` at a time.
async fn flood(d: &Daemon, n: usize, parallel: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        if tasks.len() >= parallel {
            tasks.join_next().await.unwrap().unwrap();
        }
        let client = d.http.clone();
        let url = format!("{}/api/report_share", d.url);
        let secret = d.report_secret.clone();
        tasks.spawn(async move {
            let body = serde_json::to_vec(&serde_json::json!({
                "miner_id": format!("flood-{}", i % 50),
                "worker_name": "w",
                "shares": 1,
                "event_id": format!("flood-{i}-{}", rand::random::<u64>()),
                "ts": pooldesk_e2e::daemon::now_s(),
            }))
            .unwrap();
            let sig = pooldesk_proto::sig::hmac_sha256_hex(secret.as_bytes(), &body);
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .header("x-report-sig", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test]
async fn sigterm_with_open_streams_shuts_down_promptly() {
    // 50 streams from one address: past the per-client defaults.
    let mut d =
        start("[http]\nmax_sse_streams_per_ip = 100\nstream_per_ip_per_minute = 1000\n").await;
    let url = format!("{}/api/stream?miner=erin", d.url);
    let mut readers = Vec::new();
    for _ in 0..30 {
        readers.push(EventStream::open(&url, None).await);
    }
    let _stalled: Vec<TcpStream> = (0..20).map(|_| stalled_client(d.http_addr)).collect();
    // Make sure the streams are live.
    report(&d, "erin", "w", 1).await;
    for r in &mut readers {
        r.next_of(&["credit"], WAIT).await.expect("credit");
    }
    let started = Instant::now();
    // Open streams must not hold the shutdown: the daemon exits by itself
    // (a generous deadline for a loaded machine; the time is printed, not
    // asserted) and every stream is ended by the server.
    let status = d
        .terminate(Duration::from_secs(120))
        .expect("the daemon exited on SIGTERM with streams open");
    let took = started.elapsed();
    assert!(status.success(), "clean exit: {status:?}");
    println!("SIGTERM with 50 open streams: exited in {took:?}");
    for r in &mut readers {
        assert!(r.ended(WAIT).await, "stream ended cleanly");
    }
    d.start_again().await;
    d.assert_verified();
}
