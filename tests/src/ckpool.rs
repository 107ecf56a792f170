//! ckpool share logs for tests and benchmarks: a writer that produces lines
//! byte for byte as ckpool 0.9.9 does (jansson, `%.17g` reals, keys in
//! insertion order; checked against the real files in
//! `../shared/ckpool/`), a generator of volume, and a handle on a running
//! `pooldeskd bridge ckpool` process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::Deserialize;

use crate::daemon::{Daemon, bin, workspace_root};

/// `../shared/ckpool` beside the repository (CI clones shared/ next to it).
pub fn shared_dir() -> PathBuf {
    workspace_root().join("../shared/ckpool")
}

/// One sharelog record, every field ckpool writes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Record {
    pub workinfoid: u64,
    pub clientid: u64,
    pub enonce1: String,
    pub nonce2: String,
    pub nonce: String,
    pub ntime: String,
    #[serde(deserialize_with = "exact_f64")]
    pub diff: f64,
    #[serde(deserialize_with = "exact_f64")]
    pub sdiff: f64,
    pub hash: String,
    pub result: bool,
    #[serde(rename = "reject-reason", default)]
    pub reject_reason: Option<String>,
    pub errn: i64,
    pub createdate: String,
    pub createby: String,
    pub createcode: String,
    pub createinet: String,
    pub workername: String,
    pub username: String,
    pub address: String,
    pub agent: String,
}

/// serde_json's default float parser may be one ulp off; Rust's `parse`
/// is correctly rounded, so `%.17g` of the result gives the text back.
fn exact_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let raw: &serde_json::value::RawValue = Deserialize::deserialize(d)?;
    raw.get().parse().map_err(serde::de::Error::custom)
}

/// jansson's real format: `%.17g`, with `.0` added when the text would
/// read as an integer, and the exponent without '+' or leading zeros.
pub fn jansson_real(x: f64) -> String {
    if x == 0.0 {
        return "0.0".into();
    }
    let sci = format!("{:.16e}", x);
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent");
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    let text = if !(-4..17).contains(&exp) {
        // jansson drops the '+' and the leading zeros printf puts in the
        // exponent: 2.3047862535879248e-9, not e-09.
        format!("{}e{exp}", strip(mantissa))
    } else {
        strip(&format!("{:.*}", (16 - exp) as usize, x))
    };
    if text.contains(['.', 'e']) {
        text
    } else {
        format!("{text}.0")
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

impl Record {
    /// The line exactly as ckpool writes it, newline included.
    pub fn line(&self) -> String {
        let mut out = format!(
            "{{\"workinfoid\": {}, \"clientid\": {}, \"enonce1\": {}, \"nonce2\": {}, \"nonce\": {}, \"ntime\": {}, \"diff\": {}, \"sdiff\": {}, \"hash\": {}, \"result\": {}, ",
            self.workinfoid,
            self.clientid,
            json_str(&self.enonce1),
            json_str(&self.nonce2),
            json_str(&self.nonce),
            json_str(&self.ntime),
            jansson_real(self.diff),
            jansson_real(self.sdiff),
            json_str(&self.hash),
            self.result,
        );
        if let Some(reason) = &self.reject_reason {
            out.push_str(&format!("\"reject-reason\": {}, ", json_str(reason)));
        }
        out.push_str(&format!(
            "\"errn\": {}, \"createdate\": {}, \"createby\": {}, \"createcode\": {}, \"createinet\": {}, \"workername\": {}, \"username\": {}, \"address\": {}, \"agent\": {}}}\n",
            self.errn,
            json_str(&self.createdate),
            json_str(&self.createby),
            json_str(&self.createcode),
            json_str(&self.createinet),
            json_str(&self.workername),
            json_str(&self.username),
            json_str(&self.address),
            json_str(&self.agent),
        ));
        out
    }
}

/// Appends like ckpool: open, append, close, per share.
pub fn append(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("height dir");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open sharelog");
    file.write_all(bytes).expect("append");
}

/// `logdir/<height %08x>/<workinfoid %016lx>.sharelog`
pub fn sharelog_path(logdir: &Path, height: u32, workinfoid: u64) -> PathBuf {
    logdir
        .join(format!("{height:08x}"))
        .join(format!("{workinfoid:016x}.sharelog"))
}

/// What a generated share should produce in the ledger.
#[derive(Debug, Clone)]
pub struct Expected {
    pub miner: String,
    pub accepted: bool,
    pub reason: Option<String>,
    /// Integer difficulty (credited `diff × rate`).
    pub diff: u64,
    pub hash: String,
}

/// A deterministic stream of ckpool records.
pub struct Generator {
    rng: u64,
    pub start_id: u64,
    pub miners: usize,
    pub time_s: i64,
    n: u64,
}

const REASONS: [&str; 4] = [
    "Above target",
    "Invalid JobID",
    "Ntime out of range",
    "Stale",
];

impl Generator {
    pub fn new(seed: u64, miners: usize) -> Generator {
        Generator {
            rng: seed | 1,
            start_id: 0x6b0f_4521_0000_0000,
            miners,
            time_s: 1_796_162_942,
            n: 0,
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, no dependency.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// One record for workbase `workinfoid`; `stale` makes it a "Stale"
    /// reject.
    pub fn record(&mut self, workinfoid: u64, stale: bool) -> (Record, Expected) {
        self.n += 1;
        let r = self.next();
        let miner_index = (r % self.miners as u64) as usize;
        let username = format!("bc1qgen{miner_index:04}");
        let worker = format!("rig{}", (r >> 8) % 3);
        let sep = if miner_index.is_multiple_of(2) {
            '.'
        } else {
            '_'
        };
        let reason = if stale {
            Some("Stale")
        } else if (r >> 16) % 100 < 3 {
            Some(REASONS[((r >> 24) % 3) as usize])
        } else {
            None
        };
        let diff = 1u64 << ((r >> 32) % 6);
        let salt = self.next();
        let hash = format!("{:016x}{:016x}{salt:016x}{workinfoid:016x}", self.n, r);
        self.time_s += ((r >> 40) % 2) as i64;
        let nsec = (r >> 20) % 1_000_000_000;
        let record = Record {
            workinfoid,
            clientid: miner_index as u64 + 1,
            enonce1: format!("{:08x}", miner_index),
            nonce2: format!("{:016x}", self.n),
            nonce: format!("{:08x}", r as u32),
            ntime: format!("{:08x}", self.time_s),
            diff: diff as f64,
            sdiff: if reason.is_some() {
                1.0 / ((r % 1000) as f64 + 3.0)
            } else {
                diff as f64 * 1.5 + (r % 97) as f64 / 7.0
            },
            hash: hash.clone(),
            result: reason.is_none(),
            reject_reason: reason.map(str::to_string),
            errn: if reason.is_some() { 5 } else { 0 },
            createdate: format!("{},{}", self.time_s, nsec),
            createby: "code".into(),
            createcode: "parse_submit".into(),
            createinet: "127.0.0.1:3334".into(),
            workername: format!("{username}{sep}{worker}"),
            username: username.clone(),
            address: "127.0.0.1".into(),
            agent: "cpuminer/2.5.1".into(),
        };
        let expected = Expected {
            miner: username,
            accepted: reason.is_none(),
            reason: reason.map(str::to_string),
            diff,
            hash,
        };
        (record, expected)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A running `pooldeskd bridge ckpool`. Killed on drop.
pub struct BridgeProcess {
    pub args: Vec<String>,
    pub log: PathBuf,
    child: Option<Child>,
}

impl BridgeProcess {
    /// Starts a bridge for `daemon` on `logdir` with its own state dir.
    pub fn start(
        daemon: &Daemon,
        logdir: &Path,
        origin: &str,
        state_dir: &Path,
        extra: &[&str],
    ) -> BridgeProcess {
        std::fs::create_dir_all(state_dir).expect("state dir");
        let secret_file = state_dir.join("report_secret");
        std::fs::write(&secret_file, &daemon.report_secret).expect("secret file");
        let mut args: Vec<String> = vec![
            "bridge".into(),
            "ckpool".into(),
            "--logdir".into(),
            logdir.display().to_string(),
            "--url".into(),
            daemon.url.clone(),
            "--secret-file".into(),
            secret_file.display().to_string(),
            "--origin".into(),
            origin.into(),
            "--state-dir".into(),
            state_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut bridge = BridgeProcess {
            args,
            log: state_dir.join("bridge.log"),
            child: None,
        };
        bridge.spawn();
        bridge
    }

    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "bridge still running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("bridge log");
        let child = Command::new(bin("pooldeskd"))
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the bridge");
        self.child = Some(child);
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Panics if the bridge exited on its own (it should run until killed).
    pub fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("the bridge exited ({status}):\n{}", self.log_tail());
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Signs and posts a `/api/v2/shares` body.
pub async fn post_batch(daemon: &Daemon, body: &[u8]) -> (u16, serde_json::Value) {
    let sig = pooldesk_proto::sig::hmac_sha256_hex(daemon.report_secret.as_bytes(), body);
    post_batch_raw(daemon, body, Some(&sig)).await
}

pub async fn post_batch_raw(
    daemon: &Daemon,
    body: &[u8],
    signature: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = daemon
        .http
        .post(format!("{}/api/v2/shares", daemon.url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-report-sig", signature);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            )
        }
        Err(e) => (0, serde_json::Value::String(e.to_string())),
    }
}
