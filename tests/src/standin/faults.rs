//! Injected faults: how a real node fails a daemon.
//!
//! Each queued fault applies once, to the next call of its method, so a test
//! can say "the next sendmany spends and then times out" and everything else
//! stays normal. Faults sit at the HTTP layer because that is where a client
//! sees them: a status, a hang, a reset connection.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::json::J;

/// A fault for the next call of `method`.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer this RPC error and change nothing.
    ErrorBeforeSpend {
        method: String,
        code: i64,
        message: String,
    },
    /// Do the call (a `sendmany` really spends), then never answer: the
    /// connection stays open until the client gives up.
    TimeoutAfterSpend { method: String },
    /// Do the call, then close the socket without a response.
    DropConnectionAfterSpend { method: String },
    /// Answer this HTTP status with an empty body and change nothing.
    HttpStatus { method: String, status: u16 },
    /// Answer normally after `ms` milliseconds.
    Delay { method: String, ms: u64 },
}

impl Fault {
    pub fn method(&self) -> &str {
        match self {
            Fault::ErrorBeforeSpend { method, .. }
            | Fault::TimeoutAfterSpend { method }
            | Fault::DropConnectionAfterSpend { method }
            | Fault::HttpStatus { method, .. }
            | Fault::Delay { method, .. } => method,
        }
    }

    /// Parses the `standin_fault` RPC form:
    /// `{"kind":"timeout_after_spend","method":"sendmany"}`, with `code` and
    /// `message`, `status` or `ms` as the kind needs.
    pub fn from_json(v: &J) -> Result<Fault, String> {
        let s = |k: &str| v.get(k).and_then(J::as_str).map(str::to_string);
        let n = |k: &str| v.get(k).and_then(J::as_i64);
        let method = s("method").ok_or("fault needs a method")?;
        let kind = s("kind").ok_or("fault needs a kind")?;
        Ok(match kind.as_str() {
            "error_before_spend" => Fault::ErrorBeforeSpend {
                method,
                code: n("code").ok_or("error_before_spend needs code")?,
                message: s("message").unwrap_or_default(),
            },
            "timeout_after_spend" => Fault::TimeoutAfterSpend { method },
            "drop_connection_after_spend" => Fault::DropConnectionAfterSpend { method },
            "http_status" => Fault::HttpStatus {
                method,
                status: n("status")
                    .and_then(|x| u16::try_from(x).ok())
                    .ok_or("http_status needs status")?,
            },
            "delay" => Fault::Delay {
                method,
                ms: n("ms")
                    .and_then(|x| u64::try_from(x).ok())
                    .ok_or("delay needs ms")?,
            },
            other => return Err(format!("unknown fault kind {other}")),
        })
    }
}

/// The queue of pending faults; bounded so a runaway script cannot grow it
/// without limit.
#[derive(Default)]
pub struct Faults(Mutex<VecDeque<Fault>>);

const MAX_QUEUED: usize = 1024;

impl Faults {
    pub fn push(&self, f: Fault) {
        let mut q = self.0.lock().expect("faults lock");
        if q.len() < MAX_QUEUED {
            q.push_back(f);
        }
    }

    /// Removes and returns the first fault for `method`.
    pub fn take(&self, method: &str) -> Option<Fault> {
        let mut q = self.0.lock().expect("faults lock");
        let i = q.iter().position(|f| f.method() == method)?;
        q.remove(i)
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("faults lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
