//! The control socket wire format, shared by `pooldeskd` and `pooldesk`.
//!
//! Transport: a Unix stream socket at a filesystem path. Each frame is one
//! compact JSON document followed by `\n` (JSON never contains a raw newline),
//! at most [`MAX_FRAME_BYTES`] long including the newline. Newline framing was
//! chosen over a binary length prefix so an admin can still talk to the daemon
//! with `socat - UNIX-CONNECT:…` when the TUI is not at hand.
//!
//! Conversation: the client sends [`ClientFrame::Hello`] first; the server
//! answers [`ServerFrame::Welcome`] or [`ServerFrame::Error`] (then closes).
//! After that the client sends [`ClientFrame::Request`]s with ids of its own
//! choosing; each gets exactly one [`ServerFrame::Response`] with the same id.
//! After a `subscribe` request the server also pushes [`ServerFrame::Event`]s.
//! Responses may arrive out of request order.
//!
//! Compatibility: the protocol number changes only on incompatible changes.
//! New request methods and new optional fields are added without a bump;
//! a server answers an unknown method with the error `unknown_method` and
//! keeps the connection.

use serde::{Deserialize, Serialize};

use crate::model::*;

/// Version spoken by this build. The server refuses any other.
pub const PROTOCOL_VERSION: u32 = 1;

/// Upper bound for one frame, newline included. A larger frame closes the
/// connection that sent it (and only that one).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Frames sent by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Hello(Hello),
    Request(RequestFrame),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    /// Free text naming the client, e.g. `pooldesk 0.1.0`; recorded in logs.
    pub client: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestFrame {
    pub id: u64,
    pub body: Request,
}

/// Frames sent by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome(Welcome),
    Response(ResponseFrame),
    Event(EventFrame),
    /// A connection-level error (bad hello, frame too large, not allowed).
    /// The server closes the connection after sending it.
    Error(ErrorBody),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub version: u32,
    /// e.g. `pooldeskd 0.1.0`
    pub server: String,
    /// The uid the server saw for this connection (SO_PEERCRED); every
    /// action taken over this connection is audited under it.
    pub peer_uid: u32,
    /// True when the daemon runs in demo mode (simulated wallet and workers).
    pub simulated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFrame {
    pub id: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok(Response),
    Err(ErrorBody),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `unsupported_version`, `not_found`.
    pub code: String,
    /// One human sentence. Never contains a secret.
    pub message: String,
    /// Structured detail where useful: for `psbt_mismatch`,
    /// `{"differences": [String]}` (each difference of a tampered PSBT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            code: code.into(),
            message: message.into(),
            details: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFrame {
    /// Daemon-wide event sequence number (strictly increasing).
    pub seq: u64,
    pub event: Event,
}

/// Requests. Serialized as `{"method": "...", "params": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum Request {
    /// Pool totals, ledger totals, wallet health, warnings.
    Snapshot,
    /// Start pushing events on this connection.
    Subscribe,
    ListMiners(ListMiners),
    MinerDetail {
        miner_id: String,
    },
    SetMinerActive {
        miner_id: String,
        active: bool,
    },
    /// Issue a personal key for a miner, or rotate the current one.
    IssueKey {
        miner_id: String,
    },
    ListWithdrawals(ListWithdrawals),
    ApproveWithdrawals {
        ids: Vec<i64>,
    },
    RejectWithdrawal {
        id: i64,
        reason: String,
    },
    /// Hot mode: send approved withdrawals in one `sendmany` batch.
    /// Cold mode: build a PSBT for them. Both answer `Response::Batch`
    /// (cold: with the PSBT and `batch.psbt_id` for `psbt_review`).
    SendBatch {
        #[serde(default)]
        withdrawal_ids: Vec<i64>,
    },
    ListBatches {
        #[serde(default)]
        limit: Option<u32>,
    },
    PsbtReview {
        psbt_id: i64,
    },
    /// Import a signed PSBT (base64) for review; refused with the differences
    /// if it does not pay exactly the reviewed outputs.
    ImportPsbt {
        psbt_id: i64,
        psbt: String,
    },
    /// Finalize the imported signed PSBT and broadcast it.
    FinalizePsbt {
        psbt_id: i64,
    },
    /// Admin decision on a batch in `needs_attention`.
    ResolveBatch {
        batch_id: i64,
        resolution: BatchResolution,
    },
    SetPayoutsPaused {
        paused: bool,
    },
    FaucetStatus,
    /// Admin decision on a faucet batch in `needs_attention`.
    ResolveFaucetBatch {
        batch_id: i64,
        resolution: BatchResolution,
    },
    AuditPage {
        #[serde(default)]
        before_id: Option<i64>,
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Blocks found by the pool's wallet, newest first.
    ListBlocks {
        #[serde(default)]
        limit: Option<u32>,
    },
    /// The statement of one block (without its share list).
    BlockStatement {
        hash: String,
    },
}

/// Responses. Serialized as `{"kind": "...", "data": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Response {
    Snapshot(Box<Snapshot>),
    Subscribed,
    Miners(MinerPage),
    MinerDetail(Box<MinerDetail>),
    Done(Done),
    ApiKey(IssuedKey),
    Withdrawals(WithdrawalPage),
    Approvals(Vec<ApprovalResult>),
    Batch(BatchResult),
    Batches(Vec<BatchRow>),
    PsbtReview(Box<PsbtReview>),
    Broadcast(BroadcastResult),
    Faucet(Box<FaucetStatus>),
    Audit(AuditPage),
    Blocks(Vec<BlockRow>),
    BlockStatement(Box<BlockStatement>),
}

/// Splits one frame off a buffer: the bytes before the first `\n`.
/// Returns `Err(FrameError::TooLarge)` when no newline appears within
/// [`MAX_FRAME_BYTES`], so a reader never buffers more than that.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    match buf.iter().position(|b| *b == b'\n') {
        Some(pos) if pos < MAX_FRAME_BYTES => Ok(Some((&buf[..pos], pos + 1))),
        Some(_) => Err(FrameError::TooLarge),
        None if buf.len() >= MAX_FRAME_BYTES => Err(FrameError::TooLarge),
        None => Ok(None),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame larger than {MAX_FRAME_BYTES} bytes")]
    TooLarge,
    #[error("frame is not valid JSON for this protocol: {0}")]
    Malformed(String),
}

/// Decodes one client frame (without its newline).
pub fn decode_client_frame(line: &[u8]) -> Result<ClientFrame, FrameError> {
    if line.len() >= MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge);
    }
    serde_json::from_slice(line).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Decodes one server frame (without its newline).
pub fn decode_server_frame(line: &[u8]) -> Result<ServerFrame, FrameError> {
    if line.len() >= MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge);
    }
    serde_json::from_slice(line).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Best effort: the `id` of a request frame that failed to decode, so the
/// server can answer that request with an error instead of dropping it.
pub fn salvage_request_id(line: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    if value.get("type")?.as_str()? != "request" {
        return None;
    }
    value.get("id")?.as_u64()
}

/// Encodes a frame as one line, newline included.
pub fn encode_frame<T: Serialize>(frame: &T) -> Result<Vec<u8>, FrameError> {
    let mut bytes = serde_json::to_vec(frame).map_err(|e| FrameError::Malformed(e.to_string()))?;
    bytes.push(b'\n');
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_wire_shape_is_stable() {
        let frame = ClientFrame::Hello(Hello {
            version: 1,
            client: "pooldesk 0.1.0".into(),
        });
        let text = String::from_utf8(encode_frame(&frame).unwrap()).unwrap();
        assert_eq!(
            text,
            "{\"type\":\"hello\",\"version\":1,\"client\":\"pooldesk 0.1.0\"}\n"
        );
    }

    #[test]
    fn request_wire_shape_is_stable() {
        let frame = ClientFrame::Request(RequestFrame {
            id: 7,
            body: Request::RejectWithdrawal {
                id: 3,
                reason: "wrong address".into(),
            },
        });
        let text = String::from_utf8(encode_frame(&frame).unwrap()).unwrap();
        assert_eq!(
            text,
            "{\"type\":\"request\",\"id\":7,\"body\":{\"method\":\"reject_withdrawal\",\"params\":{\"id\":3,\"reason\":\"wrong address\"}}}\n"
        );
        let unit = ClientFrame::Request(RequestFrame {
            id: 1,
            body: Request::Snapshot,
        });
        let text = String::from_utf8(encode_frame(&unit).unwrap()).unwrap();
        assert_eq!(
            text,
            "{\"type\":\"request\",\"id\":1,\"body\":{\"method\":\"snapshot\"}}\n"
        );
        assert_eq!(
            decode_client_frame(text.trim_end().as_bytes()).unwrap(),
            unit
        );
    }

    #[test]
    fn response_round_trips() {
        let frame = ServerFrame::Response(ResponseFrame {
            id: 9,
            outcome: Outcome::Err(ErrorBody::new("not_found", "no such withdrawal")),
        });
        let bytes = encode_frame(&frame).unwrap();
        let back = decode_server_frame(&bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn split_frame_bounds_buffering() {
        assert_eq!(split_frame(b"abc").unwrap(), None);
        assert_eq!(split_frame(b"abc\ndef").unwrap(), Some((&b"abc"[..], 4)));
        let big = vec![b'x'; MAX_FRAME_BYTES];
        assert_eq!(split_frame(&big), Err(FrameError::TooLarge));
    }

    #[test]
    fn unknown_method_keeps_id() {
        let line = br#"{"type":"request","id":42,"body":{"method":"launch_rockets"}}"#;
        assert!(decode_client_frame(line).is_err());
        assert_eq!(salvage_request_id(line), Some(42));
    }
}
