//! The control-socket task: all socket I/O lives here, in its own tokio task,
//! so the render loop never waits on the daemon.
//!
//! The UI sends [`RequestFrame`]s (ids chosen by the UI) through a bounded
//! channel and receives [`ClientEvent`]s through another. The task connects,
//! says hello, forwards frames both ways, and when the connection drops it
//! reconnects by itself with exponential backoff ([`Backoff`]: 0.25 s doubling
//! to a 5 s cap), telling the UI each attempt so the screen can say so.
//!
//! Every request gets exactly one answer on the event channel: the daemon's
//! response, or a local error (`not_connected`, `disconnected`, `busy`,
//! `undecodable`). The UI never waits forever on a request the connection
//! took with it — which matters for money: an approval sent just before the
//! daemon restarted is reported as "outcome unknown", not silently lost.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pooldesk_proto::control::{
    ClientFrame, ErrorBody, EventFrame, FrameError, Hello, MAX_FRAME_BYTES, Outcome,
    PROTOCOL_VERSION, Request, RequestFrame, Response, ResponseFrame, ServerFrame, Welcome,
    decode_server_frame, encode_frame, split_frame,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};

/// Requests queued from the UI to the socket task.
pub const REQUEST_QUEUE: usize = 64;
/// Messages queued from the socket task to the UI. When the UI falls behind,
/// the task stops reading the socket and the daemon drops events for us
/// (and later says `Lagged`), so memory stays bounded on both sides.
pub const EVENT_QUEUE: usize = 1024;
/// Requests awaiting an answer at once; more are refused with `busy`.
const MAX_IN_FLIGHT: usize = 256;
/// Connecting and the hello exchange must finish within these.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const WELCOME_TIMEOUT: Duration = Duration::from_secs(5);
/// A write that cannot complete this fast means the daemon is wedged.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the socket task tells the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// Trying to connect (attempt 0 is the first try).
    Connecting { attempt: u32 },
    /// Hello accepted. Everything shown before this is stale until refreshed.
    Connected(Welcome),
    /// Not connected; the next attempt starts after `retry_in`.
    Reconnecting {
        attempt: u32,
        retry_in: Duration,
        reason: String,
    },
    /// The answer to a request (from the daemon, or a local error).
    Response(ResponseFrame),
    /// A pushed event.
    Event(EventFrame),
}

/// Exponential backoff with a cap, so a daemon restart is noticed within
/// seconds but a daemon that stays down costs one connect every 5 s.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// Delay before attempt `attempt` (1-based): initial × 2^(attempt-1), capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(16);
        self.initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// Starts the socket task. Returns the request sender; the task ends when
/// that sender (all clones) is dropped or the event receiver is dropped.
pub fn spawn(
    path: PathBuf,
    backoff: Backoff,
    events: mpsc::Sender<ClientEvent>,
) -> mpsc::Sender<RequestFrame> {
    let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
    tokio::spawn(run(path, backoff, rx, events));
    tx
}

fn local_error(id: u64, code: &str, message: impl Into<String>) -> ClientEvent {
    ClientEvent::Response(ResponseFrame {
        id,
        outcome: Outcome::Err(ErrorBody::new(code, message)),
    })
}

/// Why a session ended.
enum End {
    /// The UI is gone: stop.
    UiGone,
    /// The connection is gone: reconnect.
    Lost(String),
}

async fn run(
    path: PathBuf,
    backoff: Backoff,
    mut requests: mpsc::Receiver<RequestFrame>,
    events: mpsc::Sender<ClientEvent>,
) {
    let mut attempt: u32 = 0;
    loop {
        if events
            .send(ClientEvent::Connecting { attempt })
            .await
            .is_err()
        {
            return;
        }
        let reason = match connect(&path).await {
            Ok((stream, welcome, leftover)) => {
                attempt = 0;
                if events.send(ClientEvent::Connected(welcome)).await.is_err() {
                    return;
                }
                match session(stream, leftover, &mut requests, &events).await {
                    End::UiGone => return,
                    End::Lost(reason) => reason,
                }
            }
            Err(reason) => reason,
        };
        attempt = attempt.saturating_add(1);
        let retry_in = backoff.delay(attempt);
        if events
            .send(ClientEvent::Reconnecting {
                attempt,
                retry_in,
                reason,
            })
            .await
            .is_err()
        {
            return;
        }
        // While waiting, every request is answered at once: the UI must not
        // believe an action is on its way when there is no connection.
        let deadline = Instant::now() + retry_in;
        loop {
            tokio::select! {
                () = sleep_until(deadline) => break,
                request = requests.recv() => match request {
                    None => return,
                    Some(request) => {
                        let answer = local_error(
                            request.id,
                            "not_connected",
                            "not connected to pooldeskd; nothing was sent",
                        );
                        if events.send(answer).await.is_err() {
                            return;
                        }
                    }
                },
            }
        }
    }
}

/// Connects and exchanges hello/welcome. Returns the stream, the welcome,
/// and any bytes read past the welcome frame.
async fn connect(path: &Path) -> Result<(UnixStream, Welcome, Vec<u8>), String> {
    let mut stream = match timeout(CONNECT_TIMEOUT, UnixStream::connect(path)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(format!("cannot connect to {}: {e}", path.display())),
        Err(_) => return Err(format!("connecting to {} timed out", path.display())),
    };
    let hello = ClientFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        client: format!("pooldesk {}", env!("CARGO_PKG_VERSION")),
    });
    let bytes = encode_frame(&hello).map_err(|e| e.to_string())?;
    match timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("sending hello failed: {e}")),
        Err(_) => return Err("sending hello timed out".into()),
    }
    let mut reader = FrameReader::default();
    let frame = match timeout(WELCOME_TIMEOUT, reader.next(&mut stream)).await {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return Err("the daemon closed the connection during hello".into()),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err("no welcome from the daemon within 5 s".into()),
    };
    match decode_server_frame(&frame) {
        Ok(ServerFrame::Welcome(welcome)) => Ok((stream, welcome, reader.buf)),
        Ok(ServerFrame::Error(error)) => Err(format!(
            "the daemon refused this client: {} ({})",
            error.message, error.code
        )),
        Ok(_) => Err("the daemon did not start with a welcome".into()),
        Err(e) => Err(format!("unreadable welcome: {e}")),
    }
}

/// Reads newline-framed frames, never buffering more than one frame's bound.
#[derive(Default)]
struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next frame (without its newline), `None` on a clean close.
    async fn next<R: AsyncReadExt + Unpin>(
        &mut self,
        stream: &mut R,
    ) -> Result<Option<Vec<u8>>, String> {
        loop {
            if let Some(frame) = self.take()? {
                return Ok(Some(frame));
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("reading from the daemon failed: {e}"))?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A complete frame already in the buffer, if any.
    fn take(&mut self) -> Result<Option<Vec<u8>>, String> {
        match split_frame(&self.buf) {
            Ok(Some((line, used))) => {
                let frame = line.to_vec();
                self.buf.drain(..used);
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(FrameError::TooLarge) | Err(FrameError::Malformed(_)) => Err(format!(
                "the daemon sent a frame over {MAX_FRAME_BYTES} bytes; dropping the connection"
            )),
        }
    }
}

/// Forwards frames until the connection or the UI goes away.
async fn session(
    stream: UnixStream,
    leftover: Vec<u8>,
    requests: &mut mpsc::Receiver<RequestFrame>,
    events: &mpsc::Sender<ClientEvent>,
) -> End {
    let (mut read_half, mut write_half) = stream.into_split();
    let mut reader = FrameReader { buf: leftover };
    let mut in_flight: HashSet<u64> = HashSet::new();
    let end = loop {
        // Frames already buffered are delivered before reading more.
        let frame = match reader.take() {
            Ok(Some(frame)) => Some(frame),
            Ok(None) => None,
            Err(reason) => break End::Lost(reason),
        };
        let frame = match frame {
            Some(frame) => frame,
            None => {
                let mut chunk = [0u8; 64 * 1024];
                tokio::select! {
                    read = read_half.read(&mut chunk) => match read {
                        Ok(0) => break End::Lost("the daemon closed the connection".into()),
                        Ok(n) => {
                            reader.buf.extend_from_slice(&chunk[..n]);
                            continue;
                        }
                        Err(e) => break End::Lost(format!("reading from the daemon failed: {e}")),
                    },
                    request = requests.recv() => {
                        let Some(request) = request else { break End::UiGone };
                        if in_flight.len() >= MAX_IN_FLIGHT {
                            if events.send(local_error(request.id, "busy", "too many requests in flight; try again")).await.is_err() {
                                break End::UiGone;
                            }
                            continue;
                        }
                        let bytes = match encode_frame(&ClientFrame::Request(request.clone())) {
                            Ok(bytes) => bytes,
                            Err(e) => {
                                if events.send(local_error(request.id, "too_large", e.to_string())).await.is_err() {
                                    break End::UiGone;
                                }
                                continue;
                            }
                        };
                        in_flight.insert(request.id);
                        match timeout(WRITE_TIMEOUT, write_half.write_all(&bytes)).await {
                            Ok(Ok(())) => continue,
                            Ok(Err(e)) => break End::Lost(format!("writing to the daemon failed: {e}")),
                            Err(_) => break End::Lost("the daemon stopped reading (write timed out)".into()),
                        }
                    }
                }
            }
        };
        let message = match decode_server_frame(&frame) {
            Ok(ServerFrame::Response(response)) => {
                in_flight.remove(&response.id);
                ClientEvent::Response(response)
            }
            Ok(ServerFrame::Event(event)) => ClientEvent::Event(event),
            Ok(ServerFrame::Error(error)) => {
                break End::Lost(format!(
                    "the daemon closed the connection: {} ({})",
                    error.message, error.code
                ));
            }
            Ok(ServerFrame::Welcome(_)) => continue,
            Err(e) => match salvage_response_id(&frame) {
                // A response this build cannot read (a newer daemon's shape):
                // still answer the request so the UI does not wait forever.
                Some(id) => {
                    in_flight.remove(&id);
                    local_error(id, "undecodable", format!("unreadable answer: {e}"))
                }
                // An event kind this build does not know: skip it.
                None => continue,
            },
        };
        if events.send(message).await.is_err() {
            break End::UiGone;
        }
    };
    if let End::Lost(_) = &end {
        for id in in_flight.drain() {
            let answer = local_error(
                id,
                "disconnected",
                "the connection dropped before the daemon answered; the outcome is unknown — check before retrying",
            );
            if events.send(answer).await.is_err() {
                return End::UiGone;
            }
        }
    }
    end
}

fn salvage_response_id(line: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    if value.get("type")?.as_str()? != "response" {
        return None;
    }
    value.get("id")?.as_u64()
}

/// One request on a fresh connection, for `pooldesk --snapshot` and scripts.
pub async fn one_shot(
    path: &Path,
    request: Request,
    wait: Duration,
) -> Result<(Welcome, Response), String> {
    let (mut stream, welcome, leftover) = connect(path).await?;
    let bytes = encode_frame(&ClientFrame::Request(RequestFrame {
        id: 1,
        body: request,
    }))
    .map_err(|e| e.to_string())?;
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("sending the request failed: {e}"))?;
    let mut reader = FrameReader { buf: leftover };
    let answer = async {
        loop {
            let Some(frame) = reader.next(&mut stream).await? else {
                return Err("the daemon closed the connection before answering".to_string());
            };
            if let Ok(ServerFrame::Response(response)) = decode_server_frame(&frame)
                && response.id == 1
            {
                return match response.outcome {
                    Outcome::Ok(response) => Ok(response),
                    Outcome::Err(e) => Err(format!("{} ({})", e.message, e.code)),
                };
            }
        }
    };
    match timeout(wait, answer).await {
        Ok(result) => result.map(|response| (welcome, response)),
        Err(_) => Err(format!("no answer within {} s", wait.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::UnixListener;

    #[test]
    fn backoff_doubles_to_a_cap() {
        let b = Backoff::default();
        let ms: Vec<u128> = (1..=8).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(ms, vec![250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn reader_refuses_oversized_frames() {
        let mut reader = FrameReader {
            buf: vec![b'x'; MAX_FRAME_BYTES],
        };
        assert!(reader.take().is_err());
        let mut reader = FrameReader {
            buf: b"{}\n{\"a\"".to_vec(),
        };
        assert_eq!(reader.take().unwrap(), Some(b"{}".to_vec()));
        assert_eq!(reader.take().unwrap(), None);
    }

    /// A fake daemon that welcomes, answers one request, then drops the
    /// connection with a second request unanswered: the UI must hear
    /// `disconnected` for that one, then a reconnect attempt.
    #[tokio::test]
    async fn lost_connection_answers_in_flight_requests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let _hello = lines.next_line().await.unwrap().unwrap();
            let welcome = ServerFrame::Welcome(Welcome {
                version: PROTOCOL_VERSION,
                server: "fake".into(),
                peer_uid: 7,
                simulated: true,
            });
            write
                .write_all(&encode_frame(&welcome).unwrap())
                .await
                .unwrap();
            let first = lines.next_line().await.unwrap().unwrap();
            assert!(first.contains("\"id\":1"));
            let answer = ServerFrame::Response(ResponseFrame {
                id: 1,
                outcome: Outcome::Ok(Response::Subscribed),
            });
            write
                .write_all(&encode_frame(&answer).unwrap())
                .await
                .unwrap();
            let second = lines.next_line().await.unwrap().unwrap();
            assert!(second.contains("\"id\":2"));
            // Drop both halves: connection lost with request 2 unanswered.
        });
        let (tx, mut rx) = mpsc::channel(16);
        let requests = spawn(path.clone(), Backoff::default(), tx);
        async fn next(rx: &mut mpsc::Receiver<ClientEvent>) -> ClientEvent {
            timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("event in time")
                .expect("channel open")
        }
        assert_eq!(next(&mut rx).await, ClientEvent::Connecting { attempt: 0 });
        match next(&mut rx).await {
            ClientEvent::Connected(w) => assert_eq!(w.peer_uid, 7),
            other => panic!("expected Connected, got {other:?}"),
        }
        requests
            .send(RequestFrame {
                id: 1,
                body: Request::Subscribe,
            })
            .await
            .unwrap();
        match next(&mut rx).await {
            ClientEvent::Response(r) => assert_eq!(r.id, 1),
            other => panic!("expected response 1, got {other:?}"),
        }
        requests
            .send(RequestFrame {
                id: 2,
                body: Request::ApproveWithdrawals { ids: vec![5] },
            })
            .await
            .unwrap();
        server.await.unwrap();
        match next(&mut rx).await {
            ClientEvent::Response(ResponseFrame {
                id: 2,
                outcome: Outcome::Err(e),
            }) => assert_eq!(e.code, "disconnected"),
            other => panic!("expected disconnected for 2, got {other:?}"),
        }
        match next(&mut rx).await {
            ClientEvent::Reconnecting {
                attempt, retry_in, ..
            } => {
                assert_eq!(attempt, 1);
                assert_eq!(retry_in, Duration::from_millis(250));
            }
            other => panic!("expected Reconnecting, got {other:?}"),
        }
        // While waiting to reconnect, a request is refused at once.
        requests
            .send(RequestFrame {
                id: 3,
                body: Request::Snapshot,
            })
            .await
            .unwrap();
        match next(&mut rx).await {
            ClientEvent::Response(ResponseFrame {
                id: 3,
                outcome: Outcome::Err(e),
            }) => assert_eq!(e.code, "not_connected"),
            other => panic!("expected not_connected for 3, got {other:?}"),
        }
    }
}
