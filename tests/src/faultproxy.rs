//! A fault-injecting TCP proxy for HTTP JSON-RPC, placed between the daemon
//! and a real Bitcoin Core node: the transport faults of issue 11 (the node
//! accepted a spend but the answer never arrived, a connection reset in the
//! middle of the answer, a gateway's 502/504 before or after forwarding, a
//! slow answer) come from here, not from a simulated wallet.
//!
//! Faults are scripted per request, matched on the JSON-RPC `method` in the
//! HTTP body. A rule names a *list* of methods, so a test that means "the
//! spending call" (`["sendmany", "sendrawtransaction"]`) keeps working when
//! the daemon changes how it spends. Requests no rule matches pass through.
//! Every request is recorded with what was done to it, so a test can wait
//! for the fault to have fired instead of sleeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward and answer unchanged.
    Pass,
    /// Forward, read the node's whole answer, then close the client's
    /// connection without a byte: the node did the work, the caller never
    /// hears of it.
    DropAnswer,
    /// Forward, then send half of the node's answer and reset the
    /// connection (RST).
    ResetMidAnswer,
    /// Forward, then hold the answer this long before passing it on.
    Delay(Duration),
    /// Answer this HTTP status (502 or 504) without forwarding: the node
    /// never saw the request.
    StatusBefore(u16),
    /// Forward, read the node's answer, and answer this HTTP status instead:
    /// what a gateway does when the node was slow or the link broke after
    /// the request went through.
    StatusAfter(u16),
}

/// One scripted fault: `fault` for the next `times` requests whose method is
/// in `methods`.
#[derive(Debug, Clone)]
struct Rule {
    methods: Vec<String>,
    fault: Fault,
    times: usize,
}

/// One request the proxy handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub fault: Fault,
    /// Whether the request reached the node.
    pub forwarded: bool,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

/// A running proxy; stops accepting when dropped (connections in flight
/// finish on their own).
pub struct FaultProxy {
    port: u16,
    upstream: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bound on an HTTP head or body: JSON-RPC answers here are small, and a
/// runaway read must fail the test rather than eat the machine.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`host:port` or `http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let port = listener.local_addr().expect("proxy addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let task = {
            let state = state.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let state = state.clone();
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        // A broken connection ends only that connection.
                        let _ = serve(client, &upstream, &state).await;
                    });
                }
            })
        };
        FaultProxy {
            port,
            upstream,
            state,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`: give this to the daemon as the node's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Applies `fault` to the next `times` requests whose JSON-RPC method is
    /// one of `methods`. Rules are tried in the order they were added.
    pub fn fault(&self, methods: &[&str], fault: Fault, times: usize) {
        self.state.lock().expect("proxy state").rules.push(Rule {
            methods: methods.iter().map(|m| m.to_string()).collect(),
            fault,
            times,
        });
    }

    /// Removes every rule not yet used up.
    pub fn clear(&self) {
        self.state.lock().expect("proxy state").rules.clear();
    }

    /// Every request handled so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().expect("proxy state").seen.clone()
    }

    /// How many requests for one of `methods` got `fault`.
    pub fn count(&self, methods: &[&str], fault: Fault) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.fault == fault && methods.contains(&s.method.as_str()))
            .count()
    }

    /// Waits until `n` requests for one of `methods` got `fault` (a scripted
    /// fault has fired), or panics after `timeout`.
    pub async fn wait_count(&self, methods: &[&str], fault: Fault, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count(methods, fault) < n {
            assert!(
                Instant::now() < deadline,
                "the proxy never applied {fault:?} to {n} of {methods:?}; seen: {:?}",
                self.seen()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The fault for `method`, using up one of its rule's `times`.
fn decide(state: &Mutex<State>, method: &str) -> Fault {
    let mut state = state.lock().expect("proxy state");
    let rule = state
        .rules
        .iter_mut()
        .find(|r| r.times > 0 && r.methods.iter().any(|m| m == method));
    match rule {
        Some(rule) => {
            rule.times -= 1;
            rule.fault
        }
        None => Fault::Pass,
    }
}

fn record(state: &Mutex<State>, method: String, fault: Fault, forwarded: bool) {
    state.lock().expect("proxy state").seen.push(Seen {
        method,
        fault,
        forwarded,
    });
}

/// One client connection: request by request (keep-alive), each through its
/// own fault decision. The upstream connection is opened per client
/// connection and reopened when the node closed it.
async fn serve(mut client: TcpStream, upstream: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let mut client_buf = Vec::new();
    let mut node: Option<(TcpStream, Vec<u8>)> = None;
    loop {
        let Some(request) = read_message(&mut client, &mut client_buf, false).await? else {
            return Ok(());
        };
        let method = json_rpc_method(&request.body);
        let fault = decide(state, &method);
        if let Fault::StatusBefore(status) = fault {
            record(state, method, fault, false);
            client.write_all(&gateway_answer(status)).await?;
            return Ok(());
        }
        if node.is_none() {
            node = Some((TcpStream::connect(upstream).await?, Vec::new()));
        }
        let (stream, buf) = node.as_mut().expect("just connected");
        stream.write_all(&request.raw).await?;
        record(state, method, fault, true);
        let Some(answer) = read_message(stream, buf, true).await? else {
            // The node closed without answering: so does the proxy.
            return Ok(());
        };
        if answer.close {
            node = None;
        }
        match fault {
            Fault::Pass => client.write_all(&answer.raw).await?,
            Fault::Delay(delay) => {
                tokio::time::sleep(delay).await;
                client.write_all(&answer.raw).await?;
            }
            Fault::DropAnswer => {
                client.shutdown().await?;
                return Ok(());
            }
            Fault::ResetMidAnswer => {
                client
                    .write_all(&answer.raw[..answer.raw.len() / 2])
                    .await?;
                client.flush().await?;
                // SO_LINGER 0: closing sends RST instead of FIN.
                client.set_zero_linger()?;
                drop(client);
                return Ok(());
            }
            Fault::StatusAfter(status) => {
                client.write_all(&gateway_answer(status)).await?;
                return Ok(());
            }
            Fault::StatusBefore(_) => unreachable!("answered above"),
        }
        if request.close || answer.close {
            return Ok(());
        }
    }
}

/// A gateway's answer without a JSON-RPC body, as nginx or a corporate proxy
/// would give it.
fn gateway_answer(status: u16) -> Vec<u8> {
    let reason = match status {
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let body = format!("<html><body>{status} {reason}</body></html>");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One HTTP/1.1 message, as bytes to pass on unchanged.
struct Message {
    raw: Vec<u8>,
    body: Vec<u8>,
    /// `Connection: close` (or HTTP/1.0 without keep-alive).
    close: bool,
}

/// Reads one message from `stream` (`buf` keeps bytes read past it).
/// `None` on a clean end of stream before any byte of a message. Bodies by
/// `Content-Length` or chunked; an answer with neither runs to end of stream.
async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    is_answer: bool,
) -> std::io::Result<Option<Message>> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if !fill(stream, buf).await? {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(eof("inside an HTTP head"));
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let close = header("connection:").is_some_and(|v| v == "close")
        || (head.starts_with("http/1.0")
            || head.lines().next().is_some_and(|l| l.ends_with("http/1.0")))
            && header("connection:").is_none_or(|v| v != "keep-alive");
    let (body_start, body_end, total) = if let Some(length) = header("content-length:") {
        let length: usize = length
            .parse()
            .map_err(|_| std::io::Error::other("bad Content-Length"))?;
        if length > MAX_MESSAGE_BYTES {
            return Err(std::io::Error::other("message too large"));
        }
        while buf.len() < head_end + length {
            if !fill(stream, buf).await? {
                return Err(eof("inside a body"));
            }
        }
        (head_end, head_end + length, head_end + length)
    } else if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        // Raw bytes pass on as they came; the JSON body is only needed
        // for requests, which Core's clients send with a length.
        loop {
            if let Some(i) = find(&buf[head_end..], b"0\r\n\r\n") {
                let end = head_end + i + 5;
                break (head_end, head_end, end);
            }
            if !fill(stream, buf).await? {
                return Err(eof("inside a chunked body"));
            }
        }
    } else if is_answer {
        while fill(stream, buf).await? {}
        (head_end, buf.len(), buf.len())
    } else {
        (head_end, head_end, head_end)
    };
    let raw: Vec<u8> = buf.drain(..total).collect();
    let body = raw[body_start..body_end].to_vec();
    Ok(Some(Message { raw, body, close }))
}

async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    if buf.len() > MAX_MESSAGE_BYTES {
        return Err(std::io::Error::other("message too large"));
    }
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn eof(where_: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("connection closed {where_}"),
    )
}

/// The JSON-RPC method of a request body (the first one of a batch), or ""
/// when there is none.
fn json_rpc_method(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let one = match &value {
        serde_json::Value::Array(calls) => calls.first().cloned().unwrap_or_default(),
        other => other.clone(),
    };
    one["method"].as_str().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny JSON-RPC "node": answers every request with its method name and
    /// a running count, and records every method it received.
    async fn fake_node() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Ok(Some(request)) = read_message(&mut conn, &mut buf, false).await {
                        let method = json_rpc_method(&request.body);
                        let n = {
                            let mut log = log.lock().unwrap();
                            log.push(method.clone());
                            log.len()
                        };
                        // Long enough that "half an answer" is not a whole one.
                        let body = serde_json::json!({"result": {"method": method, "n": n, "pad": "x".repeat(2000)}, "error": null, "id": 1}).to_string();
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, received)
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    async fn call(
        http: &reqwest::Client,
        url: &str,
        method: &str,
    ) -> Result<(u16, String), reqwest::Error> {
        let response = http
            .post(url)
            .body(
                serde_json::json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": []})
                    .to_string(),
            )
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    #[tokio::test]
    async fn unmatched_requests_pass_through_on_one_kept_alive_connection() {
        let (node, received) = fake_node().await;
        let proxy = FaultProxy::start(&node).await;
        proxy.fault(&["sendmany"], Fault::DropAnswer, 1);
        let http = client();
        for i in 1..=3 {
            let (status, body) = call(&http, &proxy.url(), "getbalances").await.unwrap();
            assert_eq!(status, 200);
            assert!(body.contains(&format!("\"n\":{i}")), "{body}");
        }
        assert_eq!(*received.lock().unwrap(), ["getbalances"; 3]);
        assert_eq!(proxy.count(&["getbalances"], Fault::Pass), 3);
    }

    #[tokio::test]
    async fn a_dropped_answer_was_still_executed_by_the_node() {
        let (node, received) = fake_node().await;
        let proxy = FaultProxy::start(&node).await;
        proxy.fault(&["sendmany", "sendrawtransaction"], Fault::DropAnswer, 1);
        let http = client();
        let lost = call(&http, &proxy.url(), "sendrawtransaction").await;
        assert!(lost.is_err(), "an answer arrived: {lost:?}");
        assert_eq!(*received.lock().unwrap(), ["sendrawtransaction"]);
        // Used up: the next spend passes.
        let (status, _) = call(&http, &proxy.url(), "sendmany").await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            proxy.seen(),
            [
                Seen {
                    method: "sendrawtransaction".into(),
                    fault: Fault::DropAnswer,
                    forwarded: true
                },
                Seen {
                    method: "sendmany".into(),
                    fault: Fault::Pass,
                    forwarded: true
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_reset_cuts_the_answer_in_the_middle() {
        let (node, received) = fake_node().await;
        let proxy = FaultProxy::start(&node).await;
        proxy.fault(&["sendmany"], Fault::ResetMidAnswer, 1);
        // Raw TCP, to see the half answer and the reset themselves.
        let mut conn = TcpStream::connect(proxy.url().trim_start_matches("http://"))
            .await
            .unwrap();
        let body = r#"{"method":"sendmany","params":[]}"#;
        conn.write_all(
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut got = Vec::new();
        let end = loop {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) => break "eof",
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
                    break "reset";
                }
            }
        };
        assert_eq!(end, "reset", "the connection ended without a reset");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            !text.contains("\"n\":1}"),
            "the whole answer arrived: {text}"
        );
        assert_eq!(*received.lock().unwrap(), ["sendmany"]);
    }

    #[tokio::test]
    async fn gateway_errors_before_and_after_forwarding() {
        let (node, received) = fake_node().await;
        let proxy = FaultProxy::start(&node).await;
        proxy.fault(&["sendmany"], Fault::StatusBefore(504), 1);
        proxy.fault(&["sendmany"], Fault::StatusAfter(502), 1);
        let http = client();
        let (status, body) = call(&http, &proxy.url(), "sendmany").await.unwrap();
        assert_eq!(status, 504, "{body}");
        assert!(
            received.lock().unwrap().is_empty(),
            "504-before reached the node"
        );
        let (status, body) = call(&http, &proxy.url(), "sendmany").await.unwrap();
        assert_eq!(status, 502, "{body}");
        assert_eq!(*received.lock().unwrap(), ["sendmany"]);
        let forwarded: Vec<bool> = proxy.seen().iter().map(|s| s.forwarded).collect();
        assert_eq!(forwarded, [false, true]);
    }

    #[tokio::test]
    async fn a_delayed_answer_arrives_whole_after_the_node_ran_it() {
        let (node, received) = fake_node().await;
        let proxy = FaultProxy::start(&node).await;
        proxy.fault(&["getbalances"], Fault::Delay(Duration::from_secs(2)), 1);
        let http = client();
        let call = {
            let url = proxy.url();
            tokio::spawn(async move { call(&http, &url, "getbalances").await })
        };
        // The node ran it while the caller still waits for the answer.
        let deadline = Instant::now() + Duration::from_secs(30);
        while received.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "never forwarded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (status, body) = call.await.unwrap().unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("\"n\":1"), "{body}");
        // A short client timeout sees the delay as no answer at all.
        proxy.fault(&["getbalances"], Fault::Delay(Duration::from_secs(5)), 1);
        let impatient = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let late = super::tests::call(&impatient, &proxy.url(), "getbalances").await;
        assert!(late.is_err_and(|e| e.is_timeout()));
        assert_eq!(received.lock().unwrap().len(), 2);
    }
}
