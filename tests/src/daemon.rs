//! Runs the real `pooldeskd` binary for black-box tests: its own temp data
//! dir, a free port, known secrets, and helpers that talk to it exactly as
//! pools, miners and admins do (signed HTTP, the control socket).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pooldesk_proto::control::{
    ClientFrame, Hello, Outcome, PROTOCOL_VERSION, Request, RequestFrame, ServerFrame,
    decode_server_frame, encode_frame,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Absolute path of a workspace binary, built once per test process so
/// tests never run a stale daemon.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            // The same command as contrib/test.sh, so the binaries it built
            // are reused as they are (same features, no second build).
            .args(["build", "-q", "--workspace", "--bins"])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    target_dir().join("debug").join(name)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    // Below Linux's ephemeral range (32768–60999): a port the kernel picks
    // there can be handed to another process's outgoing connection between
    // this check and the daemon's bind (seen in CI as "Address already in
    // use"). Random, so concurrent tests rarely try the same one.
    for _ in 0..1000 {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// `--demo`
    pub demo: bool,
    /// Extra TOML for the config file (must not set `data_dir`,
    /// `http.listen` or `control.socket`: those are command-line flags).
    pub config: String,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

/// A running `pooldeskd`. Killed on drop.
pub struct Daemon {
    pub opts: DaemonOptions,
    /// Owns the data dir for the daemon's lifetime (and across restarts).
    _dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub http_addr: SocketAddr,
    pub url: String,
    pub socket: PathBuf,
    pub report_secret: String,
    pub admin_key: String,
    pub master_key: String,
    pub http: reqwest::Client,
    child: Option<Child>,
    /// A command the daemon runs under (`strace …`), empty for none.
    wrapper: Vec<String>,
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

impl Daemon {
    /// Starts a daemon with the simulated wallet (unless the config names
    /// another backend) and waits until it serves HTTP and the socket.
    pub async fn start(opts: DaemonOptions) -> Daemon {
        Daemon::start_wrapped(opts, Vec::new()).await
    }

    /// [`Daemon::start`] with the daemon run under `wrapper` (its program
    /// and arguments, e.g. `strace -o FILE --`): `pid()` is then the
    /// wrapper's, and [`Daemon::daemon_pid`] the daemon's.
    pub async fn start_wrapped(opts: DaemonOptions, wrapper: Vec<String>) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let config_path = dir.path().join("pooldesk.toml");
        std::fs::write(&config_path, &opts.config).expect("write config");
        let port = free_port();
        let http_addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let mut daemon = Daemon {
            opts,
            socket: dir.path().join("control.sock"),
            _dir: dir,
            data_dir,
            config_path,
            http_addr,
            url: format!("http://{http_addr}"),
            report_secret: random_hex(16),
            admin_key: random_hex(16),
            master_key: random_hex(32),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
            child: None,
            wrapper,
        };
        daemon.spawn().await;
        daemon
    }

    /// Environment the daemon runs with.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "REPORT_SHARED_SECRET".to_string(),
                self.report_secret.clone(),
            ),
            ("MINING_SERVER_API_KEY".to_string(), self.admin_key.clone()),
            ("POOLDESK_MASTER_KEY".to_string(), self.master_key.clone()),
            ("RUST_LOG".to_string(), "info".to_string()),
        ];
        if !self.opts.config.contains("wallet_backend") && !self.opts.demo {
            env.push(("POOLDESK_WALLET_BACKEND".into(), "simulated".into()));
        }
        env.extend(self.opts.env.iter().cloned());
        env
    }

    /// The command line arguments (data dir, config, ports).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--config".to_string(),
            self.config_path.display().to_string(),
            "--data-dir".to_string(),
            self.data_dir.display().to_string(),
            "--http".to_string(),
            self.http_addr.to_string(),
            "--socket".to_string(),
            self.socket.display().to_string(),
        ];
        if self.opts.demo {
            args.push("--demo".into());
        }
        args
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.parent().expect("dir").join("pooldeskd.log")
    }

    async fn spawn(&mut self) {
        std::fs::create_dir_all(&self.data_dir).expect("data dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bin("pooldeskd"));
                command
            }
            None => Command::new(bin("pooldeskd")),
        };
        let child = command
            .args(self.args())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
            )
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pooldeskd");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "pooldeskd exited during start-up ({status}):\n{}",
                    self.log_tail()
                );
            }
            let healthy = self
                .http
                .get(format!("{}/healthz", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if healthy && self.socket.exists() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pooldeskd did not become ready:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the daemon's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's own pid: the child's, or under a wrapper the wrapper's
    /// only child.
    pub fn daemon_pid(&self) -> Option<u32> {
        let pid = self.pid()?;
        if self.wrapper.is_empty() {
            return Some(pid);
        }
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    /// Waits (at most `timeout`) for the daemon to exit by itself; `None`
    /// if it is still running then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`: no shutdown path runs.
    pub fn kill9(&mut self) {
        if !self.wrapper.is_empty()
            && let Some(pid) = self.daemon_pid()
        {
            // The daemon first: a killed wrapper may leave it running.
            // SAFETY: plain kill(2) on our wrapper's child.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (polling, at most `timeout`) for the daemon to exit on its
    /// own, e.g. at a test crash hook, and reaps it. Panics on timeout
    /// (the blocking [`Daemon::wait_exit`] returns `None` instead).
    pub async fn wait_exited(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("a running daemon");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM and wait for the exit (at most `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the daemon again on the same data dir, port and secrets.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    /// Starts it again after a `kill9`/`terminate` (no kill first).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn().await;
    }

    /// `pooldeskd verify`: (passed, output).
    pub fn verify(&self) -> (bool, String) {
        self.verify_with(&[])
    }

    /// `pooldeskd verify` with extra arguments (`--wallet`): (passed, output).
    pub fn verify_with(&self, extra: &[&str]) -> (bool, String) {
        let output = Command::new(bin("pooldeskd"))
            .arg("verify")
            .args(extra)
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("run pooldeskd verify");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// Panics unless `pooldeskd verify` passes.
    pub fn assert_verified(&self) {
        let (ok, text) = self.verify();
        assert!(ok, "pooldeskd verify failed:\n{text}");
    }

    /// Panics unless `pooldeskd verify --wallet` passes: the ledger's
    /// payments agree with the node wallet.
    pub fn assert_wallet_verified(&self) {
        let (ok, text) = self.verify_with(&["--wallet"]);
        assert!(ok, "pooldeskd verify --wallet failed:\n{text}");
        assert!(text.contains("agrees with the node wallet"), "{text}");
    }

    // ---- HTTP, as clients speak it ---------------------------------------

    /// Sends a raw body to `/api/report_share` with the given signature.
    pub async fn post_report_raw(&self, body: &[u8], signature: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/api/report_share", self.url))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-report-sig", signature);
        }
        response(request.send().await).await
    }

    /// A signed, replay-protected pool report (fresh event id, current ts).
    pub async fn post_report(&self, miner: &str, worker: &str, shares: u64) -> (u16, Value) {
        let body = serde_json::to_vec(&serde_json::json!({
            "miner_id": miner,
            "worker_name": worker,
            "shares": shares,
            "event_id": format!("t-{}", random_hex(12)),
            "ts": now_s(),
        }))
        .expect("json");
        self.post_signed_report(&body).await
    }

    /// Signs `body` with the report secret and posts it.
    pub async fn post_signed_report(&self, body: &[u8]) -> (u16, Value) {
        let sig = pooldesk_proto::sig::hmac_sha256_hex(self.report_secret.as_bytes(), body);
        self.post_report_raw(body, Some(&sig)).await
    }

    /// A personal-key request: canonical JSON signed with `api_key`.
    pub async fn signed(
        &self,
        method: &str,
        path: &str,
        user: &str,
        api_key: &str,
        body: &Value,
    ) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        self.signed_raw(method, path, user, api_key, &bytes, now_s())
            .await
    }

    pub async fn signed_raw(
        &self,
        method: &str,
        path: &str,
        user: &str,
        api_key: &str,
        body: &[u8],
        header_ts: i64,
    ) -> (u16, Value) {
        let canonical = pooldesk_proto::canonical::canonicalize(body).expect("canonical JSON");
        let sig = pooldesk_proto::sig::sign_personal_request(
            api_key.as_bytes(),
            method,
            path.split('?').next().unwrap_or(path),
            &canonical,
        );
        let request = self
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.url),
            )
            .header("content-type", "application/json")
            .header("x-user-id", user)
            .header("x-signature", sig)
            .header("x-timestamp", header_ts.to_string())
            .body(body.to_vec());
        response(request.send().await).await
    }

    /// An admin request with the `X-API-KEY` header.
    pub async fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.url),
            )
            .header("x-api-key", &self.admin_key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(serde_json::to_vec(body).expect("json"));
        }
        response(request.send().await).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        response(self.http.get(format!("{}{path}", self.url)).send().await).await
    }

    /// Fetches a faucet challenge, solves it for `address` and posts the
    /// claim; returns the request id.
    pub async fn faucet_claim(&self, address: &str) -> i64 {
        self.faucet_claim_from(address, None).await
    }

    /// [`Daemon::faucet_claim`] as a client behind a trusted proxy
    /// (`X-Forwarded-For: forwarded_for`), so per-IP limits see it apart.
    pub async fn faucet_claim_from(&self, address: &str, forwarded_for: Option<&str>) -> i64 {
        let (status, body) = self.get("/api/faucet/challenge").await;
        assert_eq!(status, 200, "challenge: {body}");
        let challenge = body["challenge"].as_str().expect("challenge").to_string();
        let bits = body["difficulty_bits"].as_u64().expect("bits") as u32;
        let nonce = pooldesk_proto::pow::solve_pow(&challenge, address, bits);
        let mut request = self
            .http
            .post(format!("{}/api/faucet", self.url))
            .header("content-type", "application/json");
        if let Some(ip) = forwarded_for {
            request = request.header("x-forwarded-for", ip);
        }
        let response = request
            .body(
                serde_json::to_vec(
                    &serde_json::json!({"address": address, "challenge": challenge, "nonce": nonce}),
                )
                .expect("json"),
            )
            .send()
            .await
            .expect("post faucet");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 202, "{body}");
        body["request_id"].as_i64().expect("request_id")
    }

    /// A miner's balance in msat; panics when the daemon does not know the
    /// miner, so "equals 0" can never be a miner that is not there (use
    /// [`Daemon::balance_msat_if_known`] to check for absence).
    pub async fn balance_msat(&self, miner: &str) -> i64 {
        self.balance_msat_if_known(miner)
            .await
            .unwrap_or_else(|| panic!("miner {miner:?} is unknown to the daemon (404)"))
    }

    /// A miner's balance in msat, `None` when the daemon answers 404.
    pub async fn balance_msat_if_known(&self, miner: &str) -> Option<i64> {
        let (status, body) = self.get(&format!("/api/miners/{miner}")).await;
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "GET /api/miners/{miner}: {body}");
        Some(
            body["balance_msat"]
                .as_i64()
                .unwrap_or_else(|| panic!("no balance in {body}")),
        )
    }

    /// Issues (or rotates) a personal key for a miner, creating it.
    pub async fn issue_key(&self, miner: &str) -> String {
        let (status, body) = self
            .admin(
                "POST",
                &format!("/api/admin/miners/{miner}/key"),
                Some(&serde_json::json!({"create": true})),
            )
            .await;
        assert_eq!(status, 200, "issue key: {body}");
        body["api_key"].as_str().expect("api_key").to_string()
    }

    /// A control-socket client (hello done).
    pub async fn control(&self) -> ControlClient {
        ControlClient::connect(&self.socket)
            .await
            .expect("control socket")
    }

    /// Every account's balance (msat), read with SQLite directly: for
    /// "nothing changed" checks across all miners at once.
    pub fn balances(&self) -> std::collections::BTreeMap<String, i64> {
        let conn = rusqlite::Connection::open_with_flags(
            self.data_dir.join("ledger.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the ledger read-only");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        let mut stmt = conn
            .prepare("SELECT name, balance_msat FROM accounts ORDER BY name")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// Reads one integer with SQLite directly (read-only, beside the live
    /// daemon; WAL lets both work).
    pub fn sql_i64(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open_with_flags(
            self.data_dir.join("ledger.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the ledger read-only");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or(0)
    }

    /// Reads one text value with SQLite directly (read-only); panics when
    /// the query finds no row.
    pub fn sql_text(&self, sql: &str) -> String {
        let conn = rusqlite::Connection::open_with_flags(
            self.data_dir.join("ledger.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the ledger read-only");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn.query_row(sql, [], |r| r.get::<_, String>(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A fresh regtest P2WPKH address nobody owns.
pub fn regtest_address() -> String {
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    let secp = Secp256k1::new();
    let secret = SecretKey::from_slice(&rand::random::<[u8; 32]>()).expect("key");
    let public = bitcoin::CompressedPublicKey::from_private_key(
        &secp,
        &bitcoin::PrivateKey::new(secret, bitcoin::Network::Regtest),
    )
    .expect("compressed");
    bitcoin::Address::p2wpkh(&public, bitcoin::Network::Regtest).to_string()
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

async fn response(result: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    match result {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (status, value)
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// A minimal control-socket client for tests.
pub struct ControlClient {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
    next_id: u64,
    pub welcome: pooldesk_proto::control::Welcome,
    /// Events received while waiting for responses.
    pub events: Vec<pooldesk_proto::control::EventFrame>,
}

impl ControlClient {
    pub async fn connect(path: &Path) -> anyhow::Result<ControlClient> {
        let stream = tokio::net::UnixStream::connect(path).await?;
        let (read, write) = stream.into_split();
        let mut client = ControlClient {
            reader: BufReader::new(read),
            writer: write,
            next_id: 1,
            welcome: pooldesk_proto::control::Welcome {
                version: 0,
                server: String::new(),
                peer_uid: 0,
                simulated: false,
            },
            events: Vec::new(),
        };
        client
            .send(&ClientFrame::Hello(Hello {
                version: PROTOCOL_VERSION,
                client: "pooldesk-e2e".into(),
            }))
            .await?;
        match client.next_frame().await? {
            ServerFrame::Welcome(welcome) => client.welcome = welcome,
            other => anyhow::bail!("expected welcome, got {other:?}"),
        }
        Ok(client)
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> anyhow::Result<()> {
        self.writer.write_all(&encode_frame(frame)?).await?;
        Ok(())
    }

    /// Writes bytes as they are (for malformed-frame tests).
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.writer.write_all(bytes).await?;
        Ok(())
    }

    pub async fn next_frame(&mut self) -> anyhow::Result<ServerFrame> {
        let mut line = Vec::new();
        let n = tokio::time::timeout(
            Duration::from_secs(60),
            self.reader.read_until(b'\n', &mut line),
        )
        .await??;
        anyhow::ensure!(n > 0, "control socket closed");
        Ok(decode_server_frame(
            line.strip_suffix(b"\n").unwrap_or(&line),
        )?)
    }

    /// Sends a request and waits for its response (events are kept).
    pub async fn request(&mut self, body: Request) -> anyhow::Result<Outcome> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&ClientFrame::Request(RequestFrame { id, body }))
            .await?;
        loop {
            match self.next_frame().await? {
                ServerFrame::Response(r) if r.id == id => return Ok(r.outcome),
                ServerFrame::Event(e) => self.events.push(e),
                ServerFrame::Error(e) => {
                    anyhow::bail!("connection error: {} {}", e.code, e.message)
                }
                _ => {}
            }
        }
    }
}
