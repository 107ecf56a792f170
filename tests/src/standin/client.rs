//! A plain JSON-RPC client for tests: HTTP Basic auth over reqwest, exactly
//! what a daemon sends, with the raw status and body kept for assertions on
//! the wire format (8-decimal amounts, empty 401 bodies, 404s).

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;

use super::json::J;

/// Where the credentials come from.
#[derive(Debug, Clone)]
pub enum Creds {
    /// Re-read the cookie file before each request, as a daemon must after
    /// a node restart.
    Cookie(PathBuf),
    Fixed(String),
}

/// One HTTP exchange.
#[derive(Debug, Clone)]
pub struct RawReply {
    pub status: u16,
    pub body: String,
}

impl RawReply {
    /// The body parsed with literal numbers kept.
    pub fn json(&self) -> Option<J> {
        J::parse(self.body.trim_end()).ok()
    }

    /// `result` of the envelope (literal numbers kept).
    pub fn result(&self) -> Option<J> {
        self.json()?.get("result").cloned()
    }

    /// `(code, message)` of the envelope's error, if any.
    pub fn error(&self) -> Option<(i64, String)> {
        let e = self.json()?.get("error")?.clone();
        Some((
            e.get("code")?.as_i64()?,
            e.get("message")?.as_str()?.to_string(),
        ))
    }
}

/// A JSON-RPC error or a transport failure.
#[derive(Debug)]
pub enum CallError {
    Rpc {
        status: u16,
        code: i64,
        message: String,
    },
    Http {
        status: u16,
        body: String,
    },
    Transport(reqwest::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Rpc {
                status,
                code,
                message,
            } => {
                write!(f, "RPC error {code} ({status}): {message}")
            }
            CallError::Http { status, body } => write!(f, "HTTP {status}: {body}"),
            CallError::Transport(e) => write!(f, "transport: {e}"),
        }
    }
}

impl std::error::Error for CallError {}

#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    url: String,
    creds: Creds,
}

impl RpcClient {
    /// A client with a request timeout (a daemon always has one).
    pub fn new(url: &str, creds: Creds, timeout: Duration) -> RpcClient {
        RpcClient {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("reqwest client"),
            url: url.trim_end_matches('/').to_string(),
            creds,
        }
    }

    /// A client for a stand-in, authenticating as a daemon would.
    pub fn for_standin(s: &super::StandIn) -> RpcClient {
        let creds = match s.cookie_path() {
            Some(p) => Creds::Cookie(p),
            None => Creds::Fixed(s.credentials()),
        };
        RpcClient::new(&s.url(), creds, Duration::from_secs(30))
    }

    /// The same client with other credentials or timeout.
    pub fn with_creds(&self, creds: Creds) -> RpcClient {
        RpcClient {
            creds,
            ..self.clone()
        }
    }

    pub fn with_timeout(&self, timeout: Duration) -> RpcClient {
        RpcClient::new(&self.url, self.creds.clone(), timeout)
    }

    fn auth_header(&self) -> String {
        let userpass = match &self.creds {
            Creds::Fixed(s) => s.clone(),
            Creds::Cookie(p) => std::fs::read_to_string(p).unwrap_or_default(),
        };
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(userpass.trim())
        )
    }

    /// POSTs `body` to `path` (`/` or `/wallet/<name>`).
    pub async fn raw(&self, path: &str, body: &str) -> Result<RawReply, reqwest::Error> {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("Authorization", self.auth_header())
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = r.status().as_u16();
        let body = r.text().await?;
        Ok(RawReply { status, body })
    }

    /// A JSON-RPC 1.0 call; `params` is a JSON array or object text.
    pub async fn call_raw(
        &self,
        wallet: Option<&str>,
        method: &str,
        params: &str,
    ) -> Result<RawReply, CallError> {
        let path = match wallet {
            Some(w) => format!("/wallet/{w}"),
            None => "/".to_string(),
        };
        let body = format!(r#"{{"jsonrpc":"1.0","id":"t","method":"{method}","params":{params}}}"#);
        self.raw(&path, &body).await.map_err(CallError::Transport)
    }

    /// A call whose result is returned, errors mapped to [`CallError`].
    pub async fn call(
        &self,
        wallet: Option<&str>,
        method: &str,
        params: &str,
    ) -> Result<J, CallError> {
        let r = self.call_raw(wallet, method, params).await?;
        if let Some((code, message)) = r.error() {
            return Err(CallError::Rpc {
                status: r.status,
                code,
                message,
            });
        }
        match (r.status, r.result()) {
            (200, Some(v)) => Ok(v),
            (status, _) => Err(CallError::Http {
                status,
                body: r.body,
            }),
        }
    }

    /// A call on the `pool` wallet.
    pub async fn pool(&self, method: &str, params: &str) -> Result<J, CallError> {
        self.call(Some("pool"), method, params).await
    }
}

/// Satoshis of an amount literal (`-0.00300000`), never through a float.
pub fn amount_sat(v: &J) -> i64 {
    match v {
        J::Num(n) => super::amount::parse_fixed_point(n, 8)
            .unwrap_or_else(|| panic!("not an 8-decimal amount: {n}")),
        other => panic!("not a number: {}", other.to_text()),
    }
}

/// Whether a number literal has exactly 8 decimals, as Core writes amounts.
pub fn is_btc_literal(v: &J) -> bool {
    match v {
        J::Num(n) => n
            .trim_start_matches('-')
            .split_once('.')
            .is_some_and(|(i, f)| !i.is_empty() && f.len() == 8),
        _ => false,
    }
}
