//! The HTTP side: Basic auth, `/` and `/wallet/<name>` routing, envelopes,
//! batches, and the transport faults (hang, reset, status, delay).
//!
//! Built directly on hyper's HTTP/1 connection API rather than a router so
//! every byte Core would send (an empty 401, a 404 with a JSON body, a reset
//! socket) can be reproduced exactly.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::faults::{Fault, Faults};
use super::json::J;
use super::rpc::{self, Call, RpcError, RpcResult};
use super::state::State;

/// Largest request body accepted (Core's limit is 32 MB too).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// One request as a test sees it afterwards.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub method: String,
    /// Positional params as JSON (named params are converted).
    pub params: serde_json::Value,
    /// The `<name>` of `/wallet/<name>`, if the call used that path.
    pub wallet: Option<String>,
    /// When the request arrived.
    pub time: SystemTime,
}

/// Everything the server tasks and the [`super::StandIn`] handle share.
pub struct Shared {
    pub state: Mutex<State>,
    pub faults: Faults,
    pub calls: Mutex<Vec<RecordedCall>>,
    /// The `user:password` currently accepted.
    pub credentials: Mutex<String>,
    pub cookie_path: Option<PathBuf>,
    pub unresponsive: AtomicBool,
    /// Bumped on `restart()`: open connections close, as on a real restart.
    pub restart: watch::Sender<u64>,
    pub shutdown: watch::Sender<bool>,
}

/// Bounded so a long soak run cannot grow memory without limit.
const MAX_RECORDED_CALLS: usize = 100_000;

impl Shared {
    fn record(&self, call: &Call) {
        let mut calls = self.calls.lock().expect("calls lock");
        if calls.len() >= MAX_RECORDED_CALLS {
            calls.remove(0);
        }
        calls.push(RecordedCall {
            method: call.method.clone(),
            params: J::Arr(call.params.0.clone()).to_serde(),
            wallet: call.wallet.clone(),
            time: SystemTime::now(),
        });
    }

    fn run(&self, call: &Call) -> RpcResult {
        match call.method.as_str() {
            "standin_fault" => {
                let f = call
                    .params
                    .get(0)
                    .ok_or_else(|| RpcError::new(-8, "standin_fault {kind, method, …}"))?;
                self.faults
                    .push(Fault::from_json(f).map_err(|e| RpcError::new(-8, e))?);
                Ok(J::Null)
            }
            "standin_unresponsive" => {
                let on = call.params.bool(0)?.unwrap_or(true);
                self.unresponsive.store(on, Ordering::SeqCst);
                Ok(J::Null)
            }
            _ => {
                let mut st = self.state.lock().expect("state lock");
                rpc::dispatch(&mut st, call)
            }
        }
    }
}

/// Accepts connections until shutdown.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, shared.clone()));
                }
                // Out of descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let svc_shared = shared.clone();
    let svc = service_fn(move |req| handle(svc_shared.clone(), req));
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let mut restart = shared.restart.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    let mut restart_live = true;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            r = restart.changed(), if restart_live => {
                // A restarted node drops its connections; in-flight requests
                // finish first (hyper's graceful shutdown).
                if r.is_ok() { conn.as_mut().graceful_shutdown(); } else { restart_live = false; }
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// Why a handler gives up on the connection without answering.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected fault: connection dropped after the call")
    }
}

impl std::error::Error for DropConnection {}

type Resp = Response<Full<Bytes>>;

fn empty(status: u16) -> Resp {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

fn json(status: u16, body: &J) -> Resp {
    let mut text = body.to_text();
    text.push('\n');
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .expect("valid response")
}

/// What to do to the transport after running a call.
enum After {
    Answer,
    Hang,
    Drop,
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, DropConnection> {
    if req.method() != Method::POST {
        return Ok(Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .body(Full::new(Bytes::from_static(
                b"JSONRPC server handles only POST requests",
            )))
            .expect("valid response"));
    }
    let path = req.uri().path().to_string();
    let wallet = if path == "/" {
        None
    } else if let Some(name) = path.strip_prefix("/wallet/") {
        Some(percent_decode(name))
    } else {
        return Ok(empty(404));
    };
    if !authorized(&shared, &req) {
        return Ok(Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("WWW-Authenticate", "Basic realm=\"jsonrpc\"")
            .body(Full::new(Bytes::new()))
            .expect("valid response"));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(empty(413)),
    };
    let parsed = std::str::from_utf8(&body)
        .map_err(|_| ())
        .and_then(|t| J::parse(t).map_err(|_| ()));
    let Ok(request) = parsed else {
        let e = Err(RpcError::new(-32700, "Parse error"));
        return Ok(json(500, &rpc::reply(J::Null, &e)));
    };
    match request {
        J::Arr(items) => batch(&shared, items, wallet).await,
        single => {
            let (id, call) = rpc::parse_call(&single, wallet);
            let call = match call {
                Ok(c) => c,
                Err(e) => {
                    let res = Err(e);
                    let status = res.as_ref().err().map_or(200, RpcError::http_status);
                    return Ok(json(status, &rpc::reply(id, &res)));
                }
            };
            match one(&shared, &call).await {
                Outcome::Status(s) => Ok(empty(s)),
                Outcome::Reply(res, after) => {
                    finish(after).await?;
                    let status = match &res {
                        Ok(_) => 200,
                        Err(e) => e.http_status(),
                    };
                    Ok(json(status, &rpc::reply(id, &res)))
                }
            }
        }
    }
}

/// Applies the transport half of a fault after the call ran.
async fn finish(after: After) -> Result<(), DropConnection> {
    match after {
        After::Answer => Ok(()),
        After::Drop => Err(DropConnection),
        After::Hang => {
            std::future::pending::<()>().await;
            Ok(())
        }
    }
}

/// The result of one call, or an injected bare HTTP status.
enum Outcome {
    Reply(RpcResult, After),
    Status(u16),
}

/// Records and runs one call with its fault, if any.
async fn one(shared: &Shared, call: &Call) -> Outcome {
    shared.record(call);
    let control = call.method.starts_with("standin_");
    if !control && shared.unresponsive.load(Ordering::SeqCst) {
        // A dead node: the request is never executed nor answered.
        std::future::pending::<()>().await;
    }
    let fault = if control {
        None
    } else {
        shared.faults.take(&call.method)
    };
    match fault {
        None => Outcome::Reply(shared.run(call), After::Answer),
        Some(Fault::ErrorBeforeSpend { code, message, .. }) => {
            Outcome::Reply(Err(RpcError::new(code, message)), After::Answer)
        }
        Some(Fault::HttpStatus { status, .. }) => Outcome::Status(status),
        Some(Fault::Delay { ms, .. }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Outcome::Reply(shared.run(call), After::Answer)
        }
        Some(Fault::TimeoutAfterSpend { .. }) => Outcome::Reply(shared.run(call), After::Hang),
        Some(Fault::DropConnectionAfterSpend { .. }) => {
            Outcome::Reply(shared.run(call), After::Drop)
        }
    }
}

/// A batch answers HTTP 200 with one reply per element; a transport fault
/// on any element applies to the whole response, after every element ran.
async fn batch(
    shared: &Shared,
    items: Vec<J>,
    wallet: Option<String>,
) -> Result<Resp, DropConnection> {
    let mut out = Vec::with_capacity(items.len());
    let mut transport = VecDeque::new();
    let mut status = None;
    for item in items {
        let (id, call) = rpc::parse_call(&item, wallet.clone());
        let res = match call {
            Err(e) => Err(e),
            Ok(c) => match one(shared, &c).await {
                Outcome::Reply(res, after) => {
                    transport.push_back(after);
                    res
                }
                Outcome::Status(s) => {
                    status = Some(s);
                    continue;
                }
            },
        };
        out.push(rpc::reply(id, &res));
    }
    if let Some(s) = status {
        return Ok(empty(s));
    }
    while let Some(a) = transport.pop_front() {
        finish(a).await?;
    }
    Ok(json(200, &J::Arr(out)))
}

fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let Some(h) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = h.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let expected = shared.credentials.lock().expect("credentials lock");
    // Constant-time compare: cheap, and the habit is worth keeping.
    let a = raw.as_slice();
    let b = expected.as_bytes();
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
