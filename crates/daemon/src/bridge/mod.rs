//! `pooldeskd bridge ckpool`: follows ckpool's share logs and sends every
//! share to `POST /api/v2/shares` exactly once, across crashes of either
//! side (the rule is in [`state`]).
//!
//! One loop: load the cursor; resend the pending batch if there is one;
//! then repeatedly scan the log directory, build the next batch from the
//! complete lines past each file's offset (a partial last line waits for
//! its newline), make it durable as `pending`, send it, and on the
//! daemon's 200 move the offsets past it. Lines that do not parse go to
//! `quarantine.log` in the state directory and are counted; a file that
//! shrank, vanished or was replaced is reported and never read again.

pub mod ckpool;
pub mod state;

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use ckpool::{LogEvent, LogShare, Mapping};
use state::{FileCursor, Pending, Segment, State};

/// `[bridge]` in the configuration file (the daemon ignores it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// ckpool's `logdir` (holds the height directories and ckpool.log).
    pub logdir: Option<PathBuf>,
    /// The daemon's base URL, e.g. `http://127.0.0.1:8080`.
    pub url: Option<String>,
    /// File holding the report secret.
    pub secret_file: Option<PathBuf>,
    /// This bridge's origin name (one per ckpool instance).
    pub origin: Option<String>,
    /// Cursor and quarantine; default `<data_dir>/bridge-<origin>`.
    pub state_dir: Option<PathBuf>,
    /// TOML table `username = "miner id"` renaming ckpool users.
    pub mapping_file: Option<PathBuf>,
    /// ckpool's main log (network difficulty, solved blocks); default
    /// `<logdir>/ckpool.log`.
    pub ckpool_log: Option<PathBuf>,
    /// Shares per request (at most the daemon's `shares.max_shares_per_batch`).
    pub batch_shares: usize,
    /// How often the log directory is scanned when idle.
    pub poll_ms: u64,
    /// Prometheus metrics listener (e.g. `127.0.0.1:9731`); none if unset.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            logdir: None,
            url: None,
            secret_file: None,
            origin: None,
            state_dir: None,
            mapping_file: None,
            ckpool_log: None,
            batch_shares: 1000,
            poll_ms: 200,
            metrics_listen: None,
        }
    }
}

/// Counters behind the bridge's `/metrics`.
#[derive(Default)]
pub struct BridgeMetrics {
    pub shares_sent: AtomicU64,
    pub shares_duplicate: AtomicU64,
    pub batches: AtomicU64,
    pub retries: AtomicU64,
    pub quarantined: AtomicU64,
    pub blocks: AtomicU64,
    pub blocks_logged: AtomicU64,
    pub files_followed: AtomicU64,
    pub files_abandoned: AtomicU64,
    pub lag_bytes: AtomicU64,
    pub lag_seconds: AtomicI64,
    pub last_ack_s: AtomicI64,
}

impl BridgeMetrics {
    pub fn encode(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        metric(
            "pooldesk_bridge_shares_sent_total",
            "counter",
            "Shares the daemon acknowledged as new.",
            g(&self.shares_sent).to_string(),
        );
        metric(
            "pooldesk_bridge_shares_duplicate_total",
            "counter",
            "Shares the daemon already had (resent after a crash or timeout).",
            g(&self.shares_duplicate).to_string(),
        );
        metric(
            "pooldesk_bridge_batches_total",
            "counter",
            "Batches acknowledged.",
            g(&self.batches).to_string(),
        );
        metric(
            "pooldesk_bridge_retries_total",
            "counter",
            "Failed sends that were retried.",
            g(&self.retries).to_string(),
        );
        metric(
            "pooldesk_bridge_quarantined_lines_total",
            "counter",
            "Sharelog lines that could not be parsed (see quarantine.log).",
            g(&self.quarantined).to_string(),
        );
        metric(
            "pooldesk_bridge_blocks_total",
            "counter",
            "Block-solving shares passed on.",
            g(&self.blocks).to_string(),
        );
        metric(
            "pooldesk_bridge_blocks_logged_total",
            "counter",
            "'Solved and confirmed block' lines seen in ckpool.log.",
            g(&self.blocks_logged).to_string(),
        );
        metric(
            "pooldesk_bridge_files_followed",
            "gauge",
            "Sharelog files followed.",
            g(&self.files_followed).to_string(),
        );
        metric(
            "pooldesk_bridge_files_abandoned_total",
            "counter",
            "Files that shrank, vanished or were replaced (no longer followed).",
            g(&self.files_abandoned).to_string(),
        );
        metric(
            "pooldesk_bridge_lag_bytes",
            "gauge",
            "Bytes of sharelog not yet acknowledged.",
            g(&self.lag_bytes).to_string(),
        );
        metric(
            "pooldesk_bridge_lag_seconds",
            "gauge",
            "Seconds between the newest unsent line's file time and the newest acknowledged share.",
            self.lag_seconds.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "pooldesk_bridge_last_ack_timestamp_seconds",
            "gauge",
            "When the daemon last acknowledged a batch.",
            self.last_ack_s.load(Ordering::Relaxed).to_string(),
        );
        out
    }
}

/// Everything resolved from the configuration.
pub struct Bridge {
    logdir: PathBuf,
    endpoint: String,
    secret: Vec<u8>,
    origin: String,
    state_path: PathBuf,
    quarantine_path: PathBuf,
    mapping: Mapping,
    ckpool_log: PathBuf,
    batch_shares: usize,
    poll: Duration,
    pub metrics: Arc<BridgeMetrics>,
    http: reqwest::Client,
    network_diff: Option<f64>,
    ckpool_log_offset: u64,
}

/// One built batch: the segments (for the cursor) and the body's shares.
struct Built {
    pending: Pending,
    shares: Vec<serde_json::Value>,
    quarantine: Vec<String>,
    newest_share_s: i64,
}

impl Bridge {
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<Bridge> {
        let b = &config.bridge;
        let need = |v: Option<&PathBuf>, key: &str| {
            v.cloned().ok_or_else(|| {
                anyhow::anyhow!("bridge: {key} is required (--{key} or bridge.{key})")
            })
        };
        let logdir = need(b.logdir.as_ref(), "logdir")?;
        let url = b
            .url
            .clone()
            .ok_or_else(|| anyhow::anyhow!("bridge: url is required (--url or bridge.url)"))?;
        let origin = b.origin.clone().ok_or_else(|| {
            anyhow::anyhow!("bridge: origin is required (--origin or bridge.origin)")
        })?;
        let secret_file = need(b.secret_file.as_ref(), "secret-file")?;
        let secret = std::fs::read_to_string(&secret_file)
            .map_err(|e| anyhow::anyhow!("bridge: read {}: {e}", secret_file.display()))?
            .trim()
            .as_bytes()
            .to_vec();
        anyhow::ensure!(
            !secret.is_empty(),
            "bridge: {} is empty",
            secret_file.display()
        );
        let mapping = match &b.mapping_file {
            None => Mapping::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("bridge: read {}: {e}", path.display()))?;
                toml::from_str::<Mapping>(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "bridge: {} must be a TOML table of username = \"miner id\": {e}",
                        path.display()
                    )
                })?
            }
        };
        let state_dir = b
            .state_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join(format!("bridge-{origin}")));
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| anyhow::anyhow!("bridge: create {}: {e}", state_dir.display()))?;
        anyhow::ensure!(
            (1..=100_000).contains(&b.batch_shares),
            "bridge.batch_shares must be between 1 and 100000"
        );
        let endpoint = if url.ends_with("/api/v2/shares") {
            url
        } else {
            format!("{}/api/v2/shares", url.trim_end_matches('/'))
        };
        Ok(Bridge {
            ckpool_log: b
                .ckpool_log
                .clone()
                .unwrap_or_else(|| logdir.join("ckpool.log")),
            logdir,
            endpoint,
            secret,
            origin,
            state_path: state_dir.join("cursor.json"),
            quarantine_path: state_dir.join("quarantine.log"),
            mapping,
            batch_shares: b.batch_shares,
            poll: Duration::from_millis(b.poll_ms.max(10)),
            metrics: Arc::new(BridgeMetrics::default()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            network_diff: None,
            ckpool_log_offset: 0,
        })
    }

    /// Runs until `stop` resolves (or forever).
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let mut state = State::load(&self.state_path, &self.origin)?;
        self.metrics
            .quarantined
            .store(state.quarantined_total, Ordering::Relaxed);
        tracing::info!(
            origin = %self.origin,
            logdir = %self.logdir.display(),
            endpoint = %self.endpoint,
            next_seq = state.next_seq,
            "bridge starting"
        );
        tokio::pin!(stop);
        loop {
            self.follow_ckpool_log();
            let built = match state.pending.clone() {
                // A batch made durable before a crash: the same seqs again.
                Some(pending) => self.rebuild(&mut state, pending)?,
                None => {
                    self.scan(&mut state);
                    let built = self.build(&state)?;
                    if let Some(built) = &built {
                        state.pending = Some(built.pending.clone());
                        state.save(&self.state_path)?;
                    }
                    built
                }
            };
            match built {
                Some(built) => {
                    tokio::select! {
                        _ = &mut stop => return Ok(()),
                        sent = self.send_until_acked(&built) => sent?,
                    }
                    self.acknowledged(&mut state, built)?;
                }
                None => {
                    self.update_lag(&state);
                    tokio::select! {
                        _ = &mut stop => return Ok(()),
                        _ = tokio::time::sleep(self.poll) => {}
                    }
                }
            }
        }
    }

    /// Reads new lines of ckpool.log: the current network difficulty marks
    /// block solves; "Solved and confirmed" lines are counted and logged.
    fn follow_ckpool_log(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.ckpool_log) else {
            return;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.ckpool_log_offset {
            self.ckpool_log_offset = 0; // rotated by the operator
        }
        if file.seek(SeekFrom::Start(self.ckpool_log_offset)).is_err() {
            return;
        }
        let mut text = Vec::new();
        if file.read_to_end(&mut text).is_err() {
            return;
        }
        let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in text[..complete].split(|b| *b == b'\n') {
            match ckpool::parse_log_line(&String::from_utf8_lossy(line)) {
                Some(LogEvent::NetworkDiff(diff)) => self.network_diff = Some(diff),
                Some(LogEvent::Solved { height, worker }) => {
                    self.metrics.blocks_logged.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(height, worker = %worker, "ckpool solved a block");
                }
                None => {}
            }
        }
        self.ckpool_log_offset += complete as u64;
    }

    /// Finds new sharelog files and notices shrunk, vanished or replaced
    /// ones (reported, then never read again).
    fn scan(&self, state: &mut State) {
        use std::os::unix::fs::MetadataExt;
        let mut seen = std::collections::HashSet::new();
        if let Ok(dirs) = std::fs::read_dir(&self.logdir) {
            for dir in dirs.flatten() {
                let name = dir.file_name().to_string_lossy().into_owned();
                if ckpool::height_of_dir(&name).is_none() {
                    continue;
                }
                let Ok(files) = std::fs::read_dir(dir.path()) else {
                    continue;
                };
                for file in files.flatten() {
                    let fname = file.file_name().to_string_lossy().into_owned();
                    if !fname.ends_with(".sharelog") {
                        continue;
                    }
                    let rel = format!("{name}/{fname}");
                    let Ok(meta) = file.metadata() else { continue };
                    seen.insert(rel.clone());
                    let cursor = state
                        .files
                        .entry(rel.clone())
                        .or_insert_with(|| FileCursor {
                            offset: 0,
                            ino: meta.ino(),
                            abandoned: None,
                        });
                    if cursor.abandoned.is_some() {
                        continue;
                    }
                    let why = if meta.ino() != cursor.ino {
                        Some("replaced by another file")
                    } else if meta.len() < cursor.offset {
                        Some("shrank below what was already sent")
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        self.abandon(cursor, &rel, why);
                    }
                }
            }
        }
        for (rel, cursor) in state.files.iter_mut() {
            if cursor.abandoned.is_none() && !seen.contains(rel) {
                self.abandon(cursor, rel, "vanished");
            }
        }
        let followed = state
            .files
            .values()
            .filter(|c| c.abandoned.is_none())
            .count();
        self.metrics
            .files_followed
            .store(followed as u64, Ordering::Relaxed);
    }

    fn abandon(&self, cursor: &mut FileCursor, rel: &str, why: &str) {
        tracing::error!(file = %rel, offset = cursor.offset, "sharelog {why}: no longer followed; shares before the offset were sent, nothing after it will be");
        cursor.abandoned = Some(why.to_string());
        self.metrics.files_abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// The next batch from the files' offsets, or `None` if nothing new.
    fn build(&self, state: &State) -> anyhow::Result<Option<Built>> {
        let mut built = Built {
            pending: Pending {
                segments: Vec::new(),
                network_diff: self.network_diff,
            },
            shares: Vec::new(),
            quarantine: Vec::new(),
            newest_share_s: 0,
        };
        let mut seq = state.next_seq;
        for (rel, cursor) in &state.files {
            if cursor.abandoned.is_some() {
                continue;
            }
            let room = self.batch_shares - built.shares.len();
            if room == 0 {
                break;
            }
            let Some(bytes) = read_from(&self.logdir.join(rel), cursor.offset, room)? else {
                continue;
            };
            let end = self.parse_segment(rel, cursor.offset, &bytes, seq, room, &mut built);
            if end == cursor.offset {
                continue;
            }
            let count = (built.shares.len() as i64 + state.next_seq) - seq;
            built.pending.segments.push(Segment {
                file: rel.clone(),
                start: cursor.offset,
                end,
                first_seq: seq,
                shares: count as u64,
            });
            seq += count;
        }
        Ok((!built.pending.segments.is_empty()).then_some(built))
    }

    /// Parses complete lines of `bytes` (read at `start`), at most `room`
    /// shares; returns the offset after the last consumed line.
    fn parse_segment(
        &self,
        rel: &str,
        start: u64,
        bytes: &[u8],
        first_seq: i64,
        room: usize,
        built: &mut Built,
    ) -> u64 {
        let height = rel.split('/').next().and_then(ckpool::height_of_dir);
        let mut offset = start;
        let mut seq = first_seq;
        let mut taken = 0;
        let mut rest = bytes;
        while taken < room {
            // A partial last line waits for its newline.
            let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
                break;
            };
            let line = &rest[..nl];
            match ckpool::parse_line(line, &self.mapping) {
                Ok(share) => {
                    built.newest_share_s = built.newest_share_s.max(share.time_s);
                    built
                        .shares
                        .push(share_json(seq, &share, height, built.pending.network_diff));
                    seq += 1;
                    taken += 1;
                }
                Err(why) => built.quarantine.push(format!(
                    "{rel}:{offset}: {why}: {}",
                    String::from_utf8_lossy(&line[..line.len().min(4096)])
                )),
            }
            offset += nl as u64 + 1;
            rest = &rest[nl + 1..];
        }
        offset
    }

    /// Rebuilds the pending batch from its byte ranges. A segment whose
    /// file can no longer give the same bytes is dropped with its seqs
    /// (never reused) and the file abandoned.
    fn rebuild(&self, state: &mut State, pending: Pending) -> anyhow::Result<Option<Built>> {
        let mut built = Built {
            pending: Pending {
                segments: Vec::new(),
                network_diff: pending.network_diff,
            },
            shares: Vec::new(),
            quarantine: Vec::new(),
            newest_share_s: 0,
        };
        for segment in pending.segments {
            let len = segment.end - segment.start;
            let bytes = read_range(&self.logdir.join(&segment.file), segment.start, len)?;
            let before = built.shares.len();
            let end = match &bytes {
                Some(bytes) => self.parse_segment(
                    &segment.file,
                    segment.start,
                    bytes,
                    segment.first_seq,
                    usize::MAX,
                    &mut built,
                ),
                None => segment.start,
            };
            if end != segment.end || (built.shares.len() - before) as u64 != segment.shares {
                built.shares.truncate(before);
                if let Some(cursor) = state.files.get_mut(&segment.file) {
                    self.abandon(cursor, &segment.file, "changed under a batch in flight");
                }
                continue;
            }
            built.pending.segments.push(segment);
        }
        tracing::info!(
            shares = built.shares.len(),
            "resending the batch that was in flight"
        );
        // Seqs of dropped segments stay used: advance past the original.
        Ok(Some(built))
    }

    async fn send_until_acked(&self, built: &Built) -> anyhow::Result<()> {
        if built.shares.is_empty() {
            return Ok(());
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.send(built).await {
                Ok(answer) => {
                    let new = answer["new"].as_u64().unwrap_or(0);
                    let duplicates = answer["duplicates"].as_u64().unwrap_or(0);
                    let blocks = answer["blocks"].as_u64().unwrap_or(0);
                    self.metrics.shares_sent.fetch_add(new, Ordering::Relaxed);
                    self.metrics
                        .shares_duplicate
                        .fetch_add(duplicates, Ordering::Relaxed);
                    self.metrics.blocks.fetch_add(blocks, Ordering::Relaxed);
                    self.metrics.batches.fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .last_ack_s
                        .store(crate::clock::now_s(), Ordering::Relaxed);
                    return Ok(());
                }
                Err(SendError::Fatal(e)) => return Err(e),
                Err(SendError::Retry(e)) => {
                    self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "send failed; retrying the same batch");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn send(&self, built: &Built) -> Result<serde_json::Value, SendError> {
        let lag_bytes = self.metrics.lag_bytes.load(Ordering::Relaxed);
        let body = serde_json::to_vec(&serde_json::json!({
            "origin": self.origin,
            "ts": crate::clock::now_ms() as f64 / 1000.0,
            "shares": built.shares,
            "backlog_bytes": lag_bytes,
            "quarantined_lines": self.metrics.quarantined.load(Ordering::Relaxed)
                + built.quarantine.len() as u64,
        }))
        .map_err(|e| SendError::Fatal(e.into()))?;
        let signature = pooldesk_proto::sig::hmac_sha256_hex(&self.secret, &body);
        let response = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .header("x-report-sig", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Retry(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| SendError::Retry(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| SendError::Retry(e.to_string()));
        }
        let code = status.as_u16();
        // 401 stale_timestamp (clock step), 429, 5xx: try again. Anything
        // else is a disagreement a retry cannot fix: stop loudly rather than
        // skip shares.
        if code == 429 || code >= 500 || (code == 401 && text.contains("stale_timestamp")) {
            Err(SendError::Retry(format!("HTTP {code}: {text}")))
        } else {
            Err(SendError::Fatal(anyhow::anyhow!(
                "the daemon refused a batch (HTTP {code}): {text}; the bridge stops so no share is skipped"
            )))
        }
    }

    /// The daemon has the batch: quarantine what did not parse, move the
    /// offsets past it and forget it — durably.
    fn acknowledged(&self, state: &mut State, built: Built) -> anyhow::Result<()> {
        if !built.quarantine.is_empty() {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.quarantine_path)?;
            for line in &built.quarantine {
                tracing::warn!(line = %line, "quarantined a sharelog line");
                writeln!(file, "{line}")?;
            }
            file.sync_data()?;
            state.quarantined_total += built.quarantine.len() as u64;
            self.metrics
                .quarantined
                .store(state.quarantined_total, Ordering::Relaxed);
        }
        let original = state.pending.take();
        for segment in &built.pending.segments {
            if let Some(cursor) = state.files.get_mut(&segment.file) {
                cursor.offset = cursor.offset.max(segment.end);
            }
        }
        // Every seq handed out by the original batch stays used.
        let last_seq = original
            .iter()
            .flat_map(|p| p.segments.iter())
            .chain(built.pending.segments.iter())
            .map(|s| s.first_seq + s.shares as i64)
            .max()
            .unwrap_or(state.next_seq);
        state.next_seq = state.next_seq.max(last_seq);
        state.last_acked_share_s = state.last_acked_share_s.max(built.newest_share_s);
        state.save(&self.state_path)?;
        self.update_lag(state);
        Ok(())
    }

    fn update_lag(&self, state: &State) {
        let mut bytes = 0u64;
        let mut newest_unsent = 0i64;
        for (rel, cursor) in &state.files {
            if cursor.abandoned.is_some() {
                continue;
            }
            if let Ok(meta) = std::fs::metadata(self.logdir.join(rel))
                && meta.len() > cursor.offset
            {
                bytes += meta.len() - cursor.offset;
                use std::os::unix::fs::MetadataExt;
                newest_unsent = newest_unsent.max(meta.mtime());
            }
        }
        self.metrics.lag_bytes.store(bytes, Ordering::Relaxed);
        let lag = if bytes == 0 {
            0
        } else {
            (newest_unsent - state.last_acked_share_s).max(0)
        };
        self.metrics.lag_seconds.store(lag, Ordering::Relaxed);
    }
}

enum SendError {
    Retry(String),
    Fatal(anyhow::Error),
}

/// The share as the batch contract carries it.
fn share_json(
    seq: i64,
    share: &LogShare,
    height: Option<u32>,
    network_diff: Option<f64>,
) -> serde_json::Value {
    let raw = |text: &str| {
        serde_json::Value::Number(
            text.parse::<serde_json::Number>()
                .unwrap_or_else(|_| serde_json::Number::from(0)),
        )
    };
    let mut value = serde_json::json!({
        "seq": seq,
        "miner": share.miner,
        "worker": share.worker,
        "diff": raw(&share.diff_text),
        "sdiff": share.sdiff,
        "accepted": share.accepted,
        "time_s": raw(&share.time_text),
    });
    if let Some(reason) = &share.reason {
        value["reason"] = reason.clone().into();
    }
    if let Some(hash) = &share.hash {
        value["hash"] = hash.clone().into();
    }
    // A block solve: an accepted share at or above the network difficulty
    // of the moment (from ckpool.log).
    if share.accepted && share.hash.is_some() && network_diff.is_some_and(|n| share.sdiff >= n) {
        value["block"] = true.into();
        if let Some(height) = height {
            value["height"] = height.into();
        }
    }
    value
}

/// Up to `room` lines' worth of bytes from `offset` (bounded read), or
/// `None` if the file is gone.
fn read_from(path: &Path, offset: u64, room: usize) -> anyhow::Result<Option<Vec<u8>>> {
    // ckpool lines are ~600 bytes; read generously, parse stops at `room`.
    let want = (room as u64)
        .saturating_mul(1024)
        .clamp(64 * 1024, 16 * 1024 * 1024);
    read_range(path, offset, want).map(|b| b.filter(|b| !b.is_empty()))
}

fn read_range(path: &Path, offset: u64, len: u64) -> anyhow::Result<Option<Vec<u8>>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("open {}: {e}", path.display())),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.take(len).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Serves the bridge metrics on `addr` (Prometheus text at `/metrics`).
pub async fn serve_metrics(addr: SocketAddr, metrics: Arc<BridgeMetrics>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    metrics.encode(),
                )
            }
        }),
    );
    axum::serve(listener, app).await?;
    Ok(())
}

/// `pooldeskd bridge <source>`.
#[derive(clap::Subcommand)]
pub enum BridgeSource {
    /// Follow ckpool's share logs (`ckpool -L`); flags override `[bridge]`.
    Ckpool(BridgeArgs),
}

#[derive(clap::Args)]
pub struct BridgeArgs {
    /// ckpool's log directory (`bridge.logdir`).
    #[arg(long, value_name = "DIR")]
    pub logdir: Option<PathBuf>,
    /// pooldeskd base URL (`bridge.url`).
    #[arg(long)]
    pub url: Option<String>,
    /// File holding the report secret (`bridge.secret_file`).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Origin name for this ckpool (`bridge.origin`).
    #[arg(long)]
    pub origin: Option<String>,
    /// Cursor and quarantine directory (`bridge.state_dir`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// TOML `username = "miner id"` renames (`bridge.mapping_file`).
    #[arg(long, value_name = "FILE")]
    pub mapping_file: Option<PathBuf>,
    /// ckpool's main log (`bridge.ckpool_log`, default `<logdir>/ckpool.log`).
    #[arg(long, value_name = "FILE")]
    pub ckpool_log: Option<PathBuf>,
    /// Shares per request (`bridge.batch_shares`).
    #[arg(long)]
    pub batch_shares: Option<usize>,
    /// Prometheus listener, e.g. 127.0.0.1:9731 (`bridge.metrics_listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
}

/// Runs the bridge until SIGINT/SIGTERM.
pub fn run_cli(
    config: &crate::config::Config,
    source: BridgeSource,
) -> anyhow::Result<std::process::ExitCode> {
    let BridgeSource::Ckpool(args) = source;
    let mut config = config.clone();
    let b = &mut config.bridge;
    macro_rules! set {
        ($($field:ident),*) => { $( if let Some(v) = args.$field { b.$field = Some(v); } )* };
    }
    set!(
        logdir,
        url,
        secret_file,
        origin,
        state_dir,
        mapping_file,
        ckpool_log,
        metrics_listen
    );
    if let Some(n) = args.batch_shares {
        b.batch_shares = n;
    }
    {
        use tracing_subscriber::EnvFilter;
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(&config.log.filter));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .try_init();
    }
    let bridge = Bridge::from_config(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if let Some(addr) = config.bridge.metrics_listen {
            let metrics = bridge.metrics.clone();
            let listener = tokio::spawn(serve_metrics(addr, metrics));
            tokio::spawn(async move {
                if let Ok(Err(e)) = listener.await {
                    tracing::error!(error = %e, "bridge metrics listener failed");
                }
            });
        }
        let stop = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        bridge.run(stop).await
    })?;
    Ok(std::process::ExitCode::SUCCESS)
}
