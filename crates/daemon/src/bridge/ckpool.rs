//! ckpool's on-disk formats, as an unmodified ckpool 0.9.9 writes them
//! with `-L` (see `shared/ckpool/regtest-run/README.md`):
//!
//! - `logdir/<height %08x>/<workinfoid %016lx>.sharelog`: one JSON object
//!   per share, jansson's non-compact separators, appended and closed per
//!   share; a share goes to its job's file, so stale shares land in an
//!   older height's directory after a newer one exists.
//! - `logdir/ckpool.log`: "Network diff set to X" when a workbase arrives,
//!   "Solved and confirmed block H by W" when a block is accepted.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::shares::parse::{MAX_REASON_LEN, credit_of};

/// One sharelog line, reduced to what pooldesk needs.
#[derive(Debug, Clone, PartialEq)]
pub struct LogShare {
    pub miner: String,
    pub worker: String,
    /// `diff` exactly as ckpool wrote it (the credited difficulty).
    pub diff_text: String,
    pub sdiff: f64,
    pub accepted: bool,
    pub reason: Option<String>,
    /// `createdate` as decimal seconds text (`sec.nnnnnnnnn`).
    pub time_text: String,
    pub time_s: i64,
    pub hash: Option<String>,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    diff: &'a RawValue,
    sdiff: f64,
    #[serde(default)]
    hash: Option<String>,
    result: bool,
    #[serde(rename = "reject-reason", default)]
    reject_reason: Option<String>,
    createdate: String,
    workername: String,
    username: String,
}

/// Operator renames: ckpool username → pooldesk miner id.
pub type Mapping = std::collections::HashMap<String, String>;

/// Parses one line (without its newline). `Err` says why it goes to
/// quarantine.
pub fn parse_line(line: &[u8], mapping: &Mapping) -> Result<LogShare, String> {
    let parsed: Line<'_> =
        serde_json::from_slice(line).map_err(|e| format!("not a sharelog record: {e}"))?;
    let diff_text = parsed.diff.get().to_string();
    // The same rules the daemon applies, so a batch is never refused for a
    // line the bridge could have quarantined.
    credit_of(&diff_text, 1)?;
    if !parsed.sdiff.is_finite() {
        return Err("sdiff is not finite".into());
    }
    let (sec, nsec) = parsed
        .createdate
        .split_once(',')
        .ok_or("createdate is not \"sec,nsec\"")?;
    let sec: i64 = sec.parse().map_err(|_| "createdate seconds")?;
    let nsec: u32 = nsec.parse().map_err(|_| "createdate nanoseconds")?;
    if sec <= 0 || nsec >= 1_000_000_000 {
        return Err("createdate out of range".into());
    }
    // ckpool does not zero-pad nsec: "1796162944,6740416" is .006740416.
    let time_text = format!("{sec}.{nsec:09}");
    // The worker is the rest of the workername after the username and its
    // separator ('.' or '_').
    let worker = match parsed.workername.strip_prefix(&parsed.username) {
        Some(rest) => rest
            .strip_prefix('.')
            .or_else(|| rest.strip_prefix('_'))
            .unwrap_or(rest)
            .to_string(),
        None => parsed.workername.clone(),
    };
    let miner = mapping
        .get(&parsed.username)
        .cloned()
        .unwrap_or(parsed.username);
    crate::miners::validate_id("miner (username)", &miner)?;
    if !worker.is_empty() {
        crate::miners::validate_id("worker", &worker)?;
    }
    let reason = if parsed.result {
        None
    } else {
        let mut reason = parsed
            .reject_reason
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "rejected".into());
        if reason.len() > MAX_REASON_LEN || reason.chars().any(char::is_control) {
            reason = reason
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_REASON_LEN / 4)
                .collect();
        }
        Some(reason)
    };
    let hash = parsed
        .hash
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    Ok(LogShare {
        miner,
        worker,
        diff_text,
        sdiff: parsed.sdiff,
        accepted: parsed.result,
        reason,
        time_text,
        time_s: sec,
        hash,
    })
}

/// Height of a `%08x` height directory name.
pub fn height_of_dir(name: &str) -> Option<u32> {
    if name.len() == 8 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        u32::from_str_radix(name, 16).ok()
    } else {
        None
    }
}

/// What a line of `ckpool.log` tells the bridge.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    NetworkDiff(f64),
    Solved { height: u64, worker: String },
}

/// `[2026-12-01 22:13:51.379] Network diff set to 1.0`,
/// `[...] Solved and confirmed block 104 by bcrt1q….worker1`.
pub fn parse_log_line(line: &str) -> Option<LogEvent> {
    let text = line.split_once("] ").map(|(_, t)| t).unwrap_or(line);
    if let Some(rest) = text.strip_prefix("Network diff set to ") {
        let diff: f64 = rest.trim().parse().ok()?;
        return (diff.is_finite() && diff > 0.0).then_some(LogEvent::NetworkDiff(diff));
    }
    if let Some(rest) = text.strip_prefix("Solved and confirmed block ") {
        let (height, worker) = rest.split_once(" by ")?;
        return Some(LogEvent::Solved {
            height: height.trim().parse().ok()?,
            worker: worker.trim().to_string(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const REJECT: &str = r#"{"workinfoid": 7714460694745186308, "clientid": 3, "enonce1": "24450f6b", "nonce2": "c756e0e19a6fd9f1", "nonce": "2e5c2c27", "ntime": "6b0f457b", "diff": 1.0, "sdiff": 3.9897182580610367e-10, "hash": "60da4f3c1b0b1c2c8d8f34a4c29a7c35f8bdc7e42d1e9fbd0f8a8f4c5f2e6b1a", "result": false, "reject-reason": "Above target", "errn": 5, "createdate": "1796162944,6740416", "createby": "code", "createcode": "parse_submit", "createinet": "127.0.0.1:3334", "workername": "carol.probe", "username": "carol", "address": "127.0.0.1", "agent": "pooldesk-probe/0.1"}"#;

    #[test]
    fn a_real_reject_line() {
        let s = parse_line(REJECT.as_bytes(), &Mapping::new()).unwrap();
        assert_eq!(s.miner, "carol");
        assert_eq!(s.worker, "probe");
        assert_eq!(s.diff_text, "1.0");
        assert!(!s.accepted);
        assert_eq!(s.reason.as_deref(), Some("Above target"));
        assert_eq!(s.time_text, "1796162944.006740416");
    }

    #[test]
    fn underscore_workers_and_mapping() {
        let line = REJECT
            .replace("carol.probe", "bc1qxyz_rig2")
            .replace("\"carol\"", "\"bc1qxyz\"");
        let mut mapping = Mapping::new();
        mapping.insert("bc1qxyz".into(), "alice".into());
        let s = parse_line(line.as_bytes(), &mapping).unwrap();
        assert_eq!((s.miner.as_str(), s.worker.as_str()), ("alice", "rig2"));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "not json",
            "{\"diff\": 1.0}",
            &REJECT.replace("\"diff\": 1.0", "\"diff\": -1.0"),
            &REJECT.replace("1796162944,6740416", "yesterday"),
            &REJECT[..200],
        ] {
            assert!(
                parse_line(bad.as_bytes(), &Mapping::new()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn log_lines() {
        assert_eq!(
            parse_log_line("[2026-12-01 22:13:51.379] Network diff set to 1.0"),
            Some(LogEvent::NetworkDiff(1.0))
        );
        assert_eq!(
            parse_log_line(
                "[2026-12-01 22:15:16.729] Solved and confirmed block 104 by bcrt1q02.worker1"
            ),
            Some(LogEvent::Solved {
                height: 104,
                worker: "bcrt1q02.worker1".into()
            })
        );
        assert_eq!(parse_log_line("[x] BLOCK ACCEPTED!"), None);
        assert_eq!(height_of_dir("00000068"), Some(104));
        assert_eq!(height_of_dir("pool"), None);
    }
}
