//! The bridge's durable cursor: per sharelog file the byte offset up to
//! which every share is acknowledged by the daemon, the next seq, and the
//! batch in flight.
//!
//! Exactly once rests on one rule: **a seq is sent only after the batch
//! that assigns it is durable here** (`pending`: per file segment, its byte
//! range and first seq). After a crash the pending batch is rebuilt from the
//! same bytes with the same seqs and sent again; the daemon's `(origin,
//! seq)` key makes the repeat harmless. A line never gets two seqs, so no
//! share is credited twice; offsets advance only past acknowledged lines,
//! so none is lost.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub origin: String,
    /// The seq the next new batch starts at.
    pub next_seq: i64,
    /// Relative path (`<height dir>/<file>.sharelog`) → cursor.
    pub files: BTreeMap<String, FileCursor>,
    pub pending: Option<Pending>,
    /// Lines quarantined (could not be parsed), ever.
    pub quarantined_total: u64,
    /// Newest acknowledged share time (Unix seconds).
    pub last_acked_share_s: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileCursor {
    /// Every complete line before this offset is acknowledged (or
    /// quarantined).
    pub offset: u64,
    /// Inode when first seen: a replaced file is not the same file.
    pub ino: u64,
    /// Set when the file shrank, vanished or was replaced: never read again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub segments: Vec<Segment>,
    /// Network difficulty used to mark block solves (so a rebuild marks
    /// the same ones).
    pub network_diff: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Segment {
    pub file: String,
    pub start: u64,
    pub end: u64,
    /// Seq of the first parsed share in this range; the rest follow.
    pub first_seq: i64,
    pub shares: u64,
}

impl State {
    pub fn load(path: &Path, origin: &str) -> anyhow::Result<State> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes).map_err(|e| {
                    anyhow::anyhow!("bridge state {} is unreadable: {e}", path.display())
                })?;
                anyhow::ensure!(
                    state.origin == origin,
                    "bridge state {} belongs to origin {:?}, not {origin:?}: give each origin its own state directory",
                    path.display(),
                    state.origin
                );
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
                version: 1,
                origin: origin.to_string(),
                next_seq: 1,
                ..State::default()
            }),
            Err(e) => Err(anyhow::anyhow!("read {}: {e}", path.display())),
        }
    }

    /// Writes the state durably: temp file, fsync, rename, fsync the dir.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp: PathBuf = path.with_extension("tmp");
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}
