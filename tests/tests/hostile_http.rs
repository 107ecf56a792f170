//! Hostile HTTP clients against a real daemon: none of them can starve the
//! others or make a visitor's browser act for them (issue 10, transport).
//!
//! Each attack gets its exact refusal (status and JSON `error`), no miner
//! balance moves that should not, and `pooldeskd verify` passes. Client
//! addresses are loopback aliases (127.0.0.x are all local on Linux), so
//! "another client" is a different source address. No wall-clock
//! assertions: every wait is for an event, with a generous deadline.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pooldesk_e2e::browser::EventStream;
use pooldesk_e2e::daemon::{Daemon, DaemonOptions, regtest_address};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// The longest any awaited event may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

async fn start(config: &str) -> Daemon {
    Daemon::start(DaemonOptions {
        config: config.to_string(),
        ..Default::default()
    })
    .await
}

/// A TCP connection to the daemon from the local address `from`.
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    let local: IpAddr = from.parse().expect("address");
    socket
        .bind(SocketAddr::new(local, 0))
        .expect("bind a loopback alias");
    socket.connect(server).await.expect("connect")
}

/// An HTTP client whose requests come from `from`.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().expect("address"))
        .timeout(DEADLINE)
        .build()
        .expect("client")
}

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses what the server sent, once the head and `Content-Length` bytes
/// of body are there.
fn parse_response(buf: &[u8]) -> Option<RawResponse> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).expect("ascii head");
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body = &buf[end + 4..];
    if body.len() < length {
        return None;
    }
    Some(RawResponse {
        status,
        headers,
        body: serde_json::from_slice(&body[..length]).unwrap_or(Value::Null),
    })
}

/// Reads one response from `stream` (until `deadline`).
async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let deadline = Instant::now() + DEADLINE;
    let mut buf = Vec::new();
    loop {
        if let Some(response) = parse_response(&buf) {
            return response;
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => panic!(
                "connection ended before a full response: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no response within {DEADLINE:?}"),
        }
    }
}

/// Sends the head of a POST announcing `length` body bytes, then trickles
/// one body byte every `every` until the server answers; returns the
/// answer. The attack of the issue: a body that never completes.
async fn trickle_until_answered(
    mut stream: TcpStream,
    path: &str,
    length: usize,
    every: Duration,
) -> RawResponse {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: pooldesk\r\nContent-Type: application/json\r\n\
         X-REPORT-SIG: 00\r\nContent-Length: {length}\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    let deadline = Instant::now() + DEADLINE;
    let mut buf = Vec::new();
    let mut sent = 1;
    loop {
        if let Some(response) = parse_response(&buf) {
            return response;
        }
        let mut chunk = [0u8; 4096];
        tokio::select! {
            read = stream.read(&mut chunk) => match read {
                Ok(0) | Err(_) => panic!("closed without an answer: {:?}", String::from_utf8_lossy(&buf)),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
            // Pacing of the attack, not synchronisation.
            _ = tokio::time::sleep(every), if sent + 1 < length => {
                // The server may already have answered and closed.
                let _ = stream.write_all(b" ").await;
                sent += 1;
            }
            _ = tokio::time::sleep_until(deadline) => panic!("no answer to a trickled body within {DEADLINE:?}"),
        }
    }
}

/// One sample of `/metrics` (panics when the series is absent, so 0 is a real 0).
async fn metric(d: &Daemon, sample: &str) -> f64 {
    d.metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in /metrics"))
}

/// Sum of every miner balance, straight from the ledger.
fn miner_balances(d: &Daemon) -> i64 {
    d.sql_i64("SELECT COALESCE(SUM(balance_msat), 0) FROM accounts WHERE name LIKE 'miner:%'")
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"], want_code, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

// ---- slow bodies ---------------------------------------------------------------

/// Eight (here twelve) connections trickling a report body one byte at a
/// time used to hold ingest; now each gets 408 `request_timeout` with
/// `Connection: close` at `http.body_timeout_s`, and an honest pool
/// reporting throughout has every report accepted.
///
/// Made to fail once: with the deadline branch in `body.rs`
/// (`TrackEnd::poll_frame`) removed, no trickler is ever answered and the
/// test fails at its deadline.
#[tokio::test(flavor = "multi_thread")]
async fn slow_bodies_get_408_while_an_honest_pool_keeps_reporting() {
    let d = start("[http]\nbody_timeout_s = 3\n").await;
    let mut attackers = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let stream = connect_from("127.0.0.2", d.http_addr).await;
        attackers.spawn(trickle_until_answered(
            stream,
            "/api/report_share",
            1000,
            Duration::from_millis(500),
        ));
    }
    // The honest pool reports for as long as the attack lasts.
    let mut accepted = 0u64;
    let mut answers = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while !attackers.is_empty() || accepted < 3 {
        assert!(
            Instant::now() < deadline,
            "the attack outlasted {DEADLINE:?}"
        );
        let (status, body) = d.post_report("honest-1", "rig", 1).await;
        assert_eq!(status, 200, "an honest report during the attack: {body}");
        accepted += 1;
        // An honest pool's pace (not synchronisation).
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Some(done) = attackers.try_join_next() {
            answers.push(done.expect("attacker task"));
        }
    }
    assert_eq!(answers.len(), 12);
    for answer in &answers {
        assert_error(answer.status, &answer.body, 408, "request_timeout");
        assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    }
    // Every honest report was credited, nothing else was.
    assert_eq!(d.balance_msat("honest-1").await, accepted as i64 * 1000);
    assert_eq!(miner_balances(&d), accepted as i64 * 1000);
    assert!(metric(&d, "pooldesk_http_refused_total{state=\"body_timeout\"}").await >= 12.0);
    d.assert_verified();
}

// ---- connections per client ------------------------------------------------------

/// One address holding `http.max_connections_per_ip` connections gets 429
/// `too_many_connections` on the next, while another address connects as
/// usual; closing one frees its place.
///
/// Made to fail once: with `Connections::open` never returning `None`, the
/// fifth connection was served (200) instead of refused.
#[tokio::test(flavor = "multi_thread")]
async fn connections_past_the_per_ip_cap_are_refused_while_another_ip_connects() {
    let d = start("[http]\nmax_connections_per_ip = 4\n").await;
    let before = miner_balances(&d);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.3", d.http_addr).await);
    }
    // Accepts are in connection order: the four above are counted first.
    let mut fifth = connect_from("127.0.0.3", d.http_addr).await;
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: pooldesk\r\n\r\n")
        .await
        .expect("send");
    let refused = read_response(&mut fifth).await;
    assert_error(refused.status, &refused.body, 429, "too_many_connections");
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(refused.body["limit"], 4);

    // Another client is not affected.
    let (status, body) = response(client_from("127.0.0.4").get(format!("{}/healthz", d.url))).await;
    assert_eq!(status, 200, "{body}");

    // A held connection still works; closing one frees a place.
    let mut first = held.remove(0);
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: pooldesk\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    assert_eq!(read_response(&mut first).await.status, 200);
    drop(first);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) =
            response(client_from("127.0.0.3").get(format!("{}/healthz", d.url))).await;
        if status == 200 {
            break;
        }
        assert_error(status, &body, 429, "too_many_connections");
        assert!(
            Instant::now() < deadline,
            "the closed connection's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metric(
            &d,
            "pooldesk_http_refused_total{state=\"connections_per_ip\"}"
        )
        .await
            >= 1.0
    );
    assert_eq!(miner_balances(&d), before);
    d.assert_verified();
}

async fn response(request: reqwest::RequestBuilder) -> (u16, Value) {
    let r = request.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

// ---- live streams per client -------------------------------------------------------

/// Opens `/api/stream` from `from`; returns the status and, on 200, the
/// open response (which holds the stream).
async fn open_stream(d: &Daemon, from: &str) -> (u16, Value, Option<reqwest::Response>) {
    let r = client_from(from)
        .get(format!("{}/api/stream", d.url))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("open stream");
    let status = r.status().as_u16();
    if status == 200 {
        (status, Value::Null, Some(r))
    } else {
        (status, r.json().await.unwrap_or(Value::Null), None)
    }
}

/// A client past `http.max_sse_streams_per_ip` live streams gets 429
/// `too_many_streams`; another client still opens one; closing a stream
/// frees its place.
///
/// Made to fail once: with the per-client check in `StreamGuard::try_new`
/// removed, the third stream opened (200).
#[tokio::test(flavor = "multi_thread")]
async fn a_client_past_its_stream_cap_gets_429_while_another_opens() {
    let d = start("[http]\nmax_sse_streams_per_ip = 2\nstream_per_ip_per_minute = 100000\n").await;
    let before = miner_balances(&d);
    let mut held = Vec::new();
    for _ in 0..2 {
        let (status, body, stream) = open_stream(&d, "127.0.0.5").await;
        assert_eq!(status, 200, "{body}");
        held.push(stream.expect("stream"));
    }
    let (status, body, _) = open_stream(&d, "127.0.0.5").await;
    assert_error(status, &body, 429, "too_many_streams");
    assert_eq!(body["limit"], 2);
    let (status, body, other) = open_stream(&d, "127.0.0.6").await;
    assert_eq!(status, 200, "another client: {body}");
    drop(other);
    // Closing one: the server notices at its next write (the pool event
    // each second) and the client may open again.
    drop(held.remove(0));
    let deadline = Instant::now() + DEADLINE;
    let _again = loop {
        let (status, body, stream) = open_stream(&d, "127.0.0.5").await;
        if status == 200 {
            break stream;
        }
        assert_error(status, &body, 429, "too_many_streams");
        assert!(
            Instant::now() < deadline,
            "a closed stream's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        metric(
            &d,
            "pooldesk_http_refused_total{state=\"sse_streams_per_ip\"}"
        )
        .await
            >= 1.0
    );
    assert_eq!(miner_balances(&d), before);
    d.assert_verified();
}

/// A stream ends at `http.sse_max_lifetime_s`; reconnecting with the last
/// id seen (as `EventSource` does) resumes with every credit exactly once,
/// including those committed while the client was away.
///
/// Made to fail once: without the `expires` branches in `Feed::next`, the
/// first stream never ended.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_ends_at_its_lifetime_and_resumes_without_loss() {
    let d = start("[http]\nsse_max_lifetime_s = 2\n").await;
    let url = format!("{}/api/stream?miner=life-1", d.url);
    let mut first = EventStream::open(&url, None).await;
    assert_eq!(first.status, 200);
    let mut posted = BTreeSet::new();
    let mut seen: Vec<u64> = Vec::new();
    let mut last_id: Option<String> = None;
    let mut shares = 0u64;
    let deadline = Instant::now() + DEADLINE;
    // Report while reading, until the server ends the stream.
    loop {
        assert!(
            Instant::now() < deadline,
            "the stream outlived its lifetime"
        );
        shares += 1;
        let (status, body) = d.post_report("life-1", "rig", shares).await;
        assert_eq!(status, 200, "{body}");
        posted.insert(shares * 1000);
        match first.next_or_end(Duration::from_secs(60)).await {
            None => break,
            Some(event) => {
                if event.id.is_some() {
                    last_id = event.id.clone();
                }
                if event.event == "credit" {
                    seen.push(event.json()["amount_msat"].as_u64().expect("amount"));
                }
            }
        }
    }
    // While away, more credits.
    for _ in 0..3 {
        shares += 1;
        let (status, body) = d.post_report("life-1", "rig", shares).await;
        assert_eq!(status, 200, "{body}");
        posted.insert(shares * 1000);
    }
    let last_id = last_id.expect("the first stream delivered an id");
    let mut second = EventStream::open(&url, Some(&last_id)).await;
    assert_eq!(second.status, 200);
    while seen.iter().collect::<BTreeSet<_>>().len() < posted.len() {
        let event = second
            .next_of(&["credit", "reset", "lagged"], DEADLINE)
            .await
            .unwrap_or_else(|| panic!("missing credits after resume: saw {seen:?} of {posted:?}"));
        assert_eq!(event.event, "credit", "resume was not clean: {event:?}");
        seen.push(event.json()["amount_msat"].as_u64().expect("amount"));
    }
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a credit arrived twice: {seen:?}");
    assert_eq!(unique, posted);
    let total: u64 = posted.iter().sum();
    assert_eq!(d.balance_msat("life-1").await, total as i64);
    d.assert_verified();
}

// ---- cross-site requests ---------------------------------------------------------

/// Posts `body` to `path` with extra headers; (status, JSON).
async fn post_with(d: &Daemon, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let mut request = d.http.post(format!("{}{path}", d.url)).body(body.to_vec());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    response(request).await
}

/// What a page on another site can make a visitor's browser send to the
/// faucet — a form post (three content types), a JSON fetch with a foreign
/// `Origin`, anything marked `Sec-Fetch-Site: cross-site` — is refused
/// with the exact status and code, and spends nothing: the same solved
/// challenge is then accepted from the page's own origin.
///
/// Made to fail once: with `origin::check` returning `None` first thing,
/// the form post was accepted (202) and spent the challenge.
#[tokio::test(flavor = "multi_thread")]
async fn cross_site_posts_to_the_faucet_are_refused_and_change_nothing() {
    let d = start("[faucet]\ndifficulty_bits = 8\nbatch_interval_s = 3600\n[http]\nfaucet_per_ip_per_minute = 100\n").await;
    let before = miner_balances(&d);
    let (status, c) = d.get("/api/faucet/challenge").await;
    assert_eq!(status, 200, "{c}");
    let challenge = c["challenge"].as_str().expect("challenge").to_string();
    let bits = c["difficulty_bits"].as_u64().expect("bits") as u32;
    let address = regtest_address();
    let nonce = pooldesk_proto::pow::solve_pow(&challenge, &address, bits);
    let body =
        serde_json::to_vec(&json!({"address": address, "challenge": challenge, "nonce": nonce}))
            .expect("json");
    let own_origin = format!("http://{}", d.http_addr);
    let json_type = ("content-type", "application/json");
    // (request headers, expected status, expected error code)
    type Attack<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let attacks: Vec<Attack> = vec![
        (
            vec![("content-type", "application/x-www-form-urlencoded")],
            415,
            "unsupported_media_type",
        ),
        (
            vec![("content-type", "multipart/form-data; boundary=x")],
            415,
            "unsupported_media_type",
        ),
        (
            vec![("content-type", "text/plain;charset=UTF-8")],
            415,
            "unsupported_media_type",
        ),
        (vec![], 415, "unsupported_media_type"),
        (
            vec![json_type, ("origin", "https://evil.example")],
            403,
            "cross_origin",
        ),
        (vec![json_type, ("origin", "null")], 403, "cross_origin"),
        (
            vec![json_type, ("sec-fetch-site", "cross-site")],
            403,
            "cross_origin",
        ),
        (
            vec![
                ("content-type", "text/plain"),
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
            403,
            "cross_origin",
        ),
    ];
    for (headers, want_status, want_code) in &attacks {
        let (status, answer) = post_with(&d, "/api/faucet", headers, &body).await;
        assert_error(status, &answer, *want_status, want_code);
    }
    // Pool ingest too: a form type is refused there as well.
    let report = serde_json::to_vec(
        &json!({"miner_id": "victim", "worker_name": "w", "shares": 5,
        "event_id": "x-1", "ts": pooldesk_e2e::daemon::now_s()}),
    )
    .expect("json");
    let sig = pooldesk_proto::sig::hmac_sha256_hex(d.report_secret.as_bytes(), &report);
    let (status, answer) = post_with(
        &d,
        "/api/report_share",
        &[("content-type", "text/plain"), ("x-report-sig", &sig)],
        &report,
    )
    .await;
    assert_error(status, &answer, 415, "unsupported_media_type");
    let (status, answer) = post_with(
        &d,
        "/api/report_share",
        &[
            json_type,
            ("x-report-sig", &sig),
            ("origin", "https://evil.example"),
        ],
        &report,
    )
    .await;
    assert_error(status, &answer, 403, "cross_origin");

    // Nothing changed.
    assert_eq!(d.sql_i64("SELECT COUNT(*) FROM faucet_requests"), 0);
    assert_eq!(miner_balances(&d), before);
    assert!(metric(&d, "pooldesk_http_refused_total{state=\"cross_origin\"}").await >= 5.0);
    assert!(
        metric(
            &d,
            "pooldesk_http_refused_total{state=\"unsupported_media_type\"}"
        )
        .await
            >= 5.0
    );

    // The page's own origin (what the faucet page sends) is served, with
    // the very challenge the attacks carried.
    let (status, answer) = post_with(
        &d,
        "/api/faucet",
        &[
            json_type,
            ("origin", own_origin.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(d.sql_i64("SELECT COUNT(*) FROM faucet_requests"), 1);
    // And a pool reporter sending no content type at all is still served.
    let (status, answer) =
        post_with(&d, "/api/report_share", &[("x-report-sig", &sig)], &report).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(miner_balances(&d), before + 5000);
    d.assert_verified();
}

// ---- the global in-flight limit ------------------------------------------------------

/// `http.max_concurrent_requests` is one limit for the whole server: three
/// slow report bodies holding the three slots make every other route wait
/// and then answer 503 `overloaded` (it used to be a limit per route); as
/// soon as one slot is free, other routes are served again.
///
/// Made to fail once: with the limit applied through `Router::layer`
/// again (a `ConcurrencyLimitLayer` per route), `/api/miners/x` was served
/// while `/api/report_share` was full.
#[tokio::test(flavor = "multi_thread")]
async fn the_global_in_flight_limit_holds_across_routes() {
    let d = start("[http]\nmax_concurrent_requests = 3\nbody_timeout_s = 120\n").await;
    let before = miner_balances(&d);
    let mut slow = Vec::new();
    for from in ["127.0.0.7", "127.0.0.8", "127.0.0.9"] {
        let mut stream = connect_from(from, d.http_addr).await;
        stream
            .write_all(
                b"POST /api/report_share HTTP/1.1\r\nHost: pooldesk\r\nContent-Type: application/json\r\n\
                  X-REPORT-SIG: 00\r\nContent-Length: 2\r\n\r\n{",
            )
            .await
            .expect("send head");
        slow.push(stream);
    }
    let other = client_from("127.0.0.10");
    // Wait until the three are in flight: other routes are then refused.
    let deadline = Instant::now() + DEADLINE;
    let refused = loop {
        let (status, body) = response(other.get(format!("{}/no-such-page", d.url))).await;
        if status == 503 {
            break body;
        }
        assert_eq!(status, 404, "{body}");
        assert!(
            Instant::now() < deadline,
            "the slow requests never filled the slots"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_error(503, &refused, 503, "overloaded");
    // Other routes, other methods: the same limit.
    let (status, body) = response(other.get(format!("{}/api/miners/x", d.url))).await;
    assert_error(status, &body, 503, "overloaded");
    let (status, body) = response(
        other
            .post(format!("{}/api/withdraw", d.url))
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_error(status, &body, 503, "overloaded");
    // Finish one slow body (a bad signature: 401) — a slot frees.
    let mut done = slow.remove(0);
    done.write_all(b"}").await.expect("finish body");
    let answer = read_response(&mut done).await;
    assert_error(answer.status, &answer.body, 401, "bad_signature");
    let (status, body) = response(other.get(format!("{}/api/miners/x", d.url))).await;
    assert_error(status, &body, 404, "not_found");
    assert!(metric(&d, "pooldesk_http_refused_total{state=\"overloaded\"}").await >= 2.0);
    let (status, body) = d.post_report("honest-2", "rig", 2).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(miner_balances(&d), before + 2000);
    d.assert_verified();
}

// ---- rate limits by route class ---------------------------------------------------

/// Signed pool ingest is limited by its key, not by IP: an honest pool far
/// past the per-IP allowance keeps being served, while an address sending
/// bad signatures is throttled on ingest (429, limit `ip_ingest_auth`) and
/// a public class (profiles) bites at its own, smaller allowance.
///
/// Made to fail once: with `RouteClass::PoolIngest` classified as
/// `General`, the honest pool's sixth report was 429.
#[tokio::test(flavor = "multi_thread")]
async fn pool_ingest_is_limited_by_key_not_ip_and_public_classes_bite() {
    let d = start(
        "[http]\nper_ip_per_minute = 5\ningest_auth_failures_per_ip_per_minute = 3\n\
         profile_per_ip_per_minute = 2\n",
    )
    .await;
    let before = miner_balances(&d);
    for _ in 0..20 {
        let (status, body) = d.post_report("honest-3", "rig", 1).await;
        assert_eq!(
            status, 200,
            "an honest pool past the per-IP allowance: {body}"
        );
    }
    // Bad signatures from another address: three a minute are allowed
    // (each answered 401); the one past them is still answered, and
    // charged, and from then on the address gets 429.
    let forger = client_from("127.0.0.12");
    let report = serde_json::to_vec(&json!({"miner_id": "honest-3", "worker_name": "w",
        "shares": 1000, "event_id": "forged-1", "ts": pooldesk_e2e::daemon::now_s()}))
    .expect("json");
    for _ in 0..4 {
        let (status, body) = response(
            forger
                .post(format!("{}/api/report_share", d.url))
                .header("content-type", "application/json")
                .header("x-report-sig", "00")
                .body(report.clone()),
        )
        .await;
        assert_error(status, &body, 401, "bad_signature");
    }
    let (status, body) = response(
        forger
            .post(format!("{}/api/report_share", d.url))
            .header("content-type", "application/json")
            .header("x-report-sig", "00")
            .body(report.clone()),
    )
    .await;
    assert_error(status, &body, 429, "rate_limited");
    assert_eq!(body["limit"], "ip_ingest_auth");
    // The honest pool is not affected by the forger's throttle.
    let (status, body) = d.post_report("honest-3", "rig", 1).await;
    assert_eq!(status, 200, "{body}");
    // Profiles: two, then 429 for this address only.
    let viewer = client_from("127.0.0.13");
    for _ in 0..2 {
        let (status, body) = response(viewer.get(format!("{}/api/miners/honest-3", d.url))).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = response(viewer.get(format!("{}/api/miners/honest-3", d.url))).await;
    assert_error(status, &body, 429, "rate_limited");
    assert_eq!(body["limit"], "ip_profile");
    assert!(
        metric(
            &d,
            "pooldesk_http_rate_limited_total{limit=\"ip_ingest_auth\"}"
        )
        .await
            >= 1.0
    );
    assert!(metric(&d, "pooldesk_http_rate_limited_total{limit=\"ip_profile\"}").await >= 1.0);
    assert_eq!(miner_balances(&d), before + 21 * 1000);
    d.assert_verified();
}
