//! What `GET /api/stream` promises (http/sse.rs, ARCHITECTURE "Event ids
//! start from the clock", "a stream that lags is told how many events it
//! missed and carries on"), against real daemons:
//! - a client resuming with a `Last-Event-ID` from before a daemon restart
//!   is told `reset` (`too_old`) before anything else — never a stream
//!   that silently misses the credits made around the restart — then gets
//!   live events with ids above its old one, and the refetch it is told to
//!   do shows every credit;
//! - a client that falls more than the bus's capacity behind (its socket
//!   full while the daemon publishes) gets `lagged` with the count it
//!   missed, and then carries on with live events.

use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use pooldesk_e2e::browser::{EventStream, SseEvent};
use pooldesk_e2e::daemon::{Daemon, DaemonOptions};
use pooldesk_proto::control::{Outcome, Request};
use tokio::io::AsyncReadExt;

const WAIT: Duration = Duration::from_secs(120);

async fn report(d: &Daemon, miner: &str, shares: u64) -> serde_json::Value {
    let (status, body) = d.post_report(miner, "w", shares).await;
    assert_eq!(status, 200, "report: {body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_last_event_id_from_before_a_restart_gets_reset_never_a_silent_gap() {
    let mut d = Daemon::start(DaemonOptions::default()).await;
    let url = format!("{}/api/stream", d.url);
    let mut stream = EventStream::open(&url, None).await;
    let mut shares = 0;
    for n in 1..=3 {
        report(&d, "ann", n).await;
        shares += n;
    }
    let mut last_id = 0;
    for _ in 0..3 {
        let credit = stream.next_of(&["credit"], WAIT).await.expect("credit");
        last_id = credit.id_u64().expect("a credit has an id");
    }
    drop(stream);
    // Money events the client never saw: before the restart (they are in
    // the dead daemon's replay ring only) and after it.
    for n in [4, 5] {
        report(&d, "ann", n).await;
        shares += n;
    }
    d.restart().await; // kill -9: nothing of the old bus survives
    report(&d, "ann", 6).await;
    shares += 6;

    let old_id = last_id.to_string();
    for (how, path, header) in [
        ("header", String::new(), Some(old_id.as_str())),
        ("query", format!("?last_event_id={last_id}"), None),
        (
            "miner stream",
            "?miner=ann".to_string(),
            Some(old_id.as_str()),
        ),
    ] {
        let mut resumed = EventStream::open(&format!("{url}{path}"), header).await;
        let first = resumed.next(WAIT).await.expect("an event");
        assert_eq!(first.event, "reset", "{how}: reset comes first: {first:?}");
        assert!(first.id.is_none(), "{how}: {first:?}");
        assert_eq!(first.json()["reason"], "too_old", "{how}: {first:?}");
        // Then live: the next credit is one made now, with an id above the
        // one from before the restart.
        let sentinel = report(&d, "ann", 1).await;
        shares += 1;
        let credit = resumed
            .next_of(&["credit"], WAIT)
            .await
            .expect("live after reset");
        assert_eq!(
            credit.json()["event_id"],
            sentinel["event_id"],
            "{how}: no old credit may be replayed after a reset: {credit:?}"
        );
        assert!(credit.id_u64().unwrap() > last_id, "{how}: {credit:?}");
    }
    // The refetch the reset asks for shows every credit, none missing.
    let (status, miner) = d.get("/api/miners/ann").await;
    assert_eq!(status, 200, "{miner}");
    let per_share_msat = {
        let (_, one) = d.post_report("probe", "w", 1).await;
        one["credited_msat"].as_i64().expect("credited_msat")
    };
    assert_eq!(miner["balance_msat"], shares as i64 * per_share_msat);
    d.assert_verified();
}

// ---- lag ---------------------------------------------------------------------

/// A raw SSE client: a socket with a tiny receive buffer and a small MSS
/// (so the daemon's send buffer stays small too), read only when told.
struct RawStream {
    stream: tokio::net::TcpStream,
    raw: Vec<u8>,
    headers_done: bool,
    body: Vec<u8>,
}

impl RawStream {
    fn open(addr: std::net::SocketAddr) -> RawStream {
        let std::net::SocketAddr::V4(v4) = addr else {
            panic!("IPv4 expected: {addr}")
        };
        // SAFETY: plain socket calls on a descriptor we own; every value
        // passed is correctly sized.
        let socket = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0, "socket");
            let set = |level, name, value: libc::c_int| {
                let rc = libc::setsockopt(
                    fd,
                    level,
                    name,
                    &value as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
                assert_eq!(rc, 0, "setsockopt {name}");
            };
            set(libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
            set(libc::IPPROTO_TCP, libc::TCP_MAXSEG, 536);
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            let rc = libc::connect(
                fd,
                &sin as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
            std::net::TcpStream::from_raw_fd(fd)
        };
        let mut writer = &socket;
        std::io::Write::write_all(
            &mut writer,
            b"GET /api/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
        )
        .expect("send the request");
        socket.set_nonblocking(true).expect("nonblocking");
        assert!(socket.as_raw_fd() >= 0);
        RawStream {
            stream: tokio::net::TcpStream::from_std(socket).expect("tokio socket"),
            raw: Vec::new(),
            headers_done: false,
            body: Vec::new(),
        }
    }

    /// The next event (chunked transfer decoded), or `None` after `timeout`.
    async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.decode();
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) => panic!("the stream ended"),
                Ok(Ok(n)) => self.raw.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => panic!("the stream failed: {e}"),
                Err(_) => return None,
            }
        }
    }

    /// Moves complete chunks of the chunked body from `raw` to `body`.
    fn decode(&mut self) {
        if !self.headers_done {
            let Some(end) = find(&self.raw, b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8_lossy(&self.raw[..end]).to_string();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("transfer-encoding: chunked"),
                "{head}"
            );
            self.raw.drain(..end + 4);
            self.headers_done = true;
        }
        while let Some(line_end) = find(&self.raw, b"\r\n") {
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|e| panic!("chunk size {size_text:?}: {e}"));
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            let data = self.raw[line_end + 2..line_end + 2 + size].to_vec();
            self.body.extend_from_slice(&data);
            self.raw.drain(..line_end + 2 + size + 2);
        }
    }

    fn parse_one(&mut self) -> Option<SseEvent> {
        loop {
            let end = find(&self.body, b"\n\n")?;
            let block = String::from_utf8_lossy(&self.body[..end]).to_string();
            self.body.drain(..end + 2);
            let mut event = SseEvent {
                event: "message".into(),
                id: None,
                data: String::new(),
            };
            let mut any = false;
            for line in block.lines() {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value).to_string();
                any = true;
                match field {
                    "event" => event.event = value,
                    "id" => event.id = Some(value),
                    "data" => {
                        if !event.data.is_empty() {
                            event.data.push('\n');
                        }
                        event.data.push_str(&value);
                    }
                    _ => {}
                }
            }
            if any {
                return Some(event);
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `n` signed reports, `parallel` at a time, with long worker names so the
/// credits fill a stalled client's socket quickly.
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
                "miner_id": format!("flood-{}", i % 20),
                "worker_name": format!("rig-{i}-{}", "x".repeat(40)),
                "shares": 1,
                "event_id": format!("flood-{i}-{}-{}", rand::random::<u64>(), "y".repeat(40)),
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

/// Publishes `n` bus events that no stream renders (audit entries of
/// pause/resume over the control socket): they only move the bus on.
async fn publish_audits(d: &Daemon, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    let clients = 4;
    for c in 0..clients {
        let mut control = d.control().await;
        tasks.spawn(async move {
            for i in 0..n / clients {
                let paused = (c + i) % 2 == 0;
                let outcome = control
                    .request(Request::SetPayoutsPaused { paused })
                    .await
                    .expect("control request");
                assert!(matches!(outcome, Outcome::Ok(_)), "{outcome:?}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_falls_behind_gets_lagged_with_the_count_and_carries_on() {
    // A live subscriber may fall max(sse_replay_events, 1024) envelopes
    // behind: 1024 here.
    let d = Daemon::start(DaemonOptions {
        config: "[http]\nsse_replay_events = 16\n".into(),
        ..DaemonOptions::default()
    })
    .await;
    let mut slow = RawStream::open(d.http_addr);
    // Live before it stalls.
    report(&d, "lena", 1).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let event = slow.next(WAIT).await.expect("an event");
        if event.event == "credit" && event.json()["miner_id"] == "lena" {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    // Stall it: credits until its socket, the daemon's send buffer and
    // the server's write queue are full (far more bytes than they hold),
    // then more bus events than the bus keeps for a live subscriber
    // (`max(http.sse_replay_events, 1024)`).
    flood(&d, 1500, 25).await;
    publish_audits(&d, 2400).await;

    // Reading again: what was queued, then `lagged` with the count.
    let deadline = Instant::now() + WAIT;
    let mut last_id_before = 0;
    let lagged = loop {
        let event = slow.next(WAIT).await.expect("an event");
        if event.event == "lagged" {
            break event;
        }
        if let Some(id) = event.id_u64() {
            last_id_before = id;
        }
        assert!(
            Instant::now() < deadline,
            "no lagged event\n{}",
            d.log_tail()
        );
    };
    assert!(lagged.id.is_none(), "{lagged:?}");
    let missed = lagged.json()["missed"].as_u64().expect("missed count");
    assert!(missed > 0, "{lagged:?}");
    // It carries on: a credit made now arrives, with a larger id.
    let sentinel = report(&d, "lena", 2).await;
    let credit = loop {
        let event = slow.next(WAIT).await.expect("live after lagged");
        if event.event == "credit" && event.json()["event_id"] == sentinel["event_id"] {
            break event;
        }
    };
    assert!(credit.id_u64().unwrap() > last_id_before, "{credit:?}");
    // The metric counts what was missed.
    let (status, metrics) = d.get("/metrics").await;
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap_or_default().to_string();
    let counted: u64 = text
        .lines()
        .find(|l| l.starts_with("pooldesk_events_lagged"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no events_lagged metric:\n{text}"));
    assert!(counted >= missed, "{counted} < {missed}");
    d.assert_verified();
}
