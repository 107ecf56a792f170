//! Volume and crashes: a generator writes ckpool share logs (the writer is
//! checked byte for byte against real ckpool output in
//! `bridge_ckpool_real.rs`) — 200,000 shares across many height
//! directories, stale shares landing in older files, lines written in two
//! parts, garbage lines, a file truncated and one removed after they were
//! sent — while `pooldeskd bridge ckpool` and `pooldeskd` are each
//! `kill -9`ed at random moments (at least 20 kills). Afterwards every
//! share is credited exactly once, rejects are counted by reason, every
//! garbage line is quarantined, and `pooldeskd verify` passes.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pooldesk_e2e::ckpool::{BridgeProcess, Expected, Generator, append, sharelog_path};
use pooldesk_e2e::daemon::{Daemon, DaemonOptions};
use rand::{Rng, SeedableRng};

const RATE_MSAT: i64 = 1000;

fn total_shares() -> usize {
    std::env::var("POOLDESK_CRASH_SHARES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

#[derive(Default)]
struct Truth {
    shares: Vec<Expected>,
    garbage: usize,
}

impl Truth {
    fn add(
        &mut self,
        logdir: &Path,
        height: u32,
        id: u64,
        generator: &mut Generator,
        stale: bool,
        split: bool,
    ) {
        let (record, expected) = generator.record(id, stale);
        let line = record.line();
        let path = sharelog_path(logdir, height, id);
        if split {
            // A partial last line: the bridge must wait for its newline.
            let (a, b) = line.as_bytes().split_at(line.len() / 2);
            append(&path, a);
            std::thread::sleep(Duration::from_millis(3));
            append(&path, b);
        } else {
            append(&path, line.as_bytes());
        }
        self.shares.push(expected);
    }
}

/// Writes `n` shares: 2 workbases per height, stale rejects into the
/// previous height's file after a new height starts, late accepted shares
/// into the earlier workbase of the same height, ~1% split lines, garbage.
fn generate(logdir: &Path, n: usize, truth: &mut Truth, stop: &AtomicBool) {
    let mut generator = Generator::new(0x5eed, 64);
    let base = generator.start_id + 0x100;
    let per_height = (n / 150).max(10);
    let mut height = 0x0100u32;
    let mut written = 0;
    let mut prev: Option<(u32, u64)> = None;
    while written < n && !stop.load(Ordering::Relaxed) {
        let ids = [
            base + u64::from(height) * 2,
            base + u64::from(height) * 2 + 1,
        ];
        for i in 0..per_height.min(n - written) {
            let id = ids[usize::from(i >= per_height / 2)];
            let late_same_height = i > per_height / 2 && generator.chance(2);
            let id = if late_same_height { ids[0] } else { id };
            let split = generator.chance(1);
            truth.add(logdir, height, id, &mut generator, false, split);
            written += 1;
            // Stale shares for the previous block, after this height's
            // directory exists.
            if let Some((h, pid)) = prev
                && i < 20
                && generator.chance(30)
                && written < n
            {
                truth.add(logdir, h, pid, &mut generator, true, false);
                written += 1;
            }
            if generator.chance(0) || (written % 4999 == 0) {
                let garbage: &[u8] = if written % 2 == 0 {
                    b"not json at all\n"
                } else {
                    b"{\"workinfoid\": 1, \"diff\": 1.0, \"trunc\n"
                };
                append(&sharelog_path(logdir, height, id), garbage);
                truth.garbage += 1;
            }
        }
        prev = Some((height, ids[1]));
        height += 1;
    }
}

async fn wait_rows(daemon: &Daemon, want: i64, bridge: &mut BridgeProcess, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        bridge.assert_running();
        let got = daemon.sql_i64("SELECT COUNT(*) FROM pool_shares");
        if got >= want {
            assert_eq!(got, want, "more shares recorded than written");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {got} of {want} shares recorded:\n{}",
            bridge.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn victim(
    logdir: &Path,
    name: &str,
    height: u32,
    id: u64,
    lines: usize,
) -> (PathBuf, Vec<Expected>) {
    let mut generator = Generator::new(id, 1);
    let path = sharelog_path(logdir, height, id);
    let mut out = Vec::new();
    let mut file = std::fs::File::create(&path).unwrap_or_else(|_| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path).unwrap()
    });
    for _ in 0..lines {
        let (mut record, mut expected) = generator.record(id, false);
        record.username = name.into();
        record.workername = format!("{name}.w");
        record.result = true;
        record.reject_reason = None;
        expected.miner = name.into();
        expected.accepted = true;
        expected.reason = None;
        file.write_all(record.line().as_bytes()).unwrap();
        out.push(expected);
    }
    (path, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_share_credited_once_across_kill_9_of_bridge_and_daemon() {
    let started = Instant::now();
    let mut daemon = Daemon::start(DaemonOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("logs");
    std::fs::create_dir_all(&logdir).unwrap();
    std::fs::write(
        logdir.join("ckpool.log"),
        "[2026-12-01 22:13:51.379] Network diff set to 1000000000.0\n",
    )
    .unwrap();

    // Phase 1: two files that are sent, then truncated and removed.
    let (truncated, mut victims) = victim(&logdir, "victimtrunc", 0x00f0, 0xf0, 300);
    let (removed, more) = victim(&logdir, "victimgone", 0x00f1, 0xf1, 200);
    victims.extend(more);
    let mut bridge = BridgeProcess::start(
        &daemon,
        &logdir,
        "ckpool-gen",
        &dir.path().join("state"),
        &[],
    );
    wait_rows(&daemon, 500, &mut bridge, Duration::from_secs(60)).await;
    // Wait until the bridge's durable cursor is past both files (it moves
    // after the daemon's answer): the event, not a guessed second.
    let cursor_path = dir.path().join("state/cursor.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let cursor: Option<serde_json::Value> = std::fs::read(&cursor_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let past = |path: &std::path::Path, c: &serde_json::Value| {
            let rel = path
                .strip_prefix(&logdir)
                .unwrap()
                .to_string_lossy()
                .to_string();
            c["files"][&rel]["offset"].as_u64() == Some(std::fs::metadata(path).unwrap().len())
        };
        if let Some(c) = &cursor
            && c["pending"].is_null()
            && past(&truncated, c)
            && past(&removed, c)
        {
            break;
        }
        bridge.assert_running();
        assert!(
            Instant::now() < deadline,
            "the bridge's cursor never passed both files: {cursor:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    std::fs::remove_file(&removed).unwrap();

    // Phase 2: volume while both sides are killed.
    let n = total_shares();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let logdir = logdir.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut truth = Truth::default();
            generate(&logdir, n, &mut truth, &stop);
            truth
        })
    };
    let mut kills = (0, 0);
    let mut rng = rand::rngs::StdRng::from_entropy();
    while kills.0 + kills.1 < 24 {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..900))).await;
        if rng.gen_bool(0.5) {
            bridge.kill9();
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..200))).await;
            bridge.spawn();
            kills.0 += 1;
        } else {
            daemon.restart().await;
            kills.1 += 1;
        }
    }
    let truth = writer.join().unwrap();
    eprintln!(
        "{} shares + {} garbage lines written, {} bridge and {} daemon kills, after {:?}",
        truth.shares.len(),
        truth.garbage,
        kills.0,
        kills.1,
        started.elapsed()
    );
    assert!(kills.0 >= 5 && kills.1 >= 5, "{kills:?}");
    let all: Vec<&Expected> = victims.iter().chain(truth.shares.iter()).collect();
    wait_rows(
        &daemon,
        all.len() as i64,
        &mut bridge,
        Duration::from_secs(600),
    )
    .await;
    eprintln!("caught up after {:?}", started.elapsed());

    // Exactly once: one row per line (every hash distinct), balances equal
    // the sum of accepted diffs, rejects counted by reason.
    assert_eq!(
        daemon.sql_i64("SELECT COUNT(DISTINCT hash) FROM pool_shares"),
        all.len() as i64
    );
    let mut balance: HashMap<&str, i64> = HashMap::new();
    let mut rejects: HashMap<(&str, &str), i64> = HashMap::new();
    for e in &all {
        if e.accepted {
            *balance.entry(&e.miner).or_default() += e.diff as i64 * RATE_MSAT;
        } else {
            *rejects
                .entry((&e.miner, e.reason.as_deref().unwrap()))
                .or_default() += 1;
        }
    }
    let ledger: HashMap<String, i64> = {
        let conn = rusqlite::Connection::open_with_flags(
            daemon.data_dir.join("ledger.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut stmt = conn
            .prepare("SELECT substr(name, 7), balance_msat FROM accounts WHERE name LIKE 'miner:%'")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for (miner, want) in &balance {
        assert_eq!(ledger.get(*miner).copied().unwrap_or(0), *want, "{miner}");
    }
    assert_eq!(ledger.values().sum::<i64>(), balance.values().sum::<i64>());
    for ((miner, reason), want) in &rejects {
        assert_eq!(
            daemon.sql_i64(&format!(
                "SELECT count FROM share_rejects WHERE miner_id = '{miner}' AND reason = '{reason}'"
            )),
            *want,
            "{miner} {reason}"
        );
    }
    let stale = rejects
        .iter()
        .filter(|((_, r), _)| *r == "Stale")
        .map(|(_, n)| n)
        .sum::<i64>();
    assert!(stale > 10, "stale shares were generated: {stale}");
    // Garbage is quarantined, each line once in the count.
    let cursor: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/cursor.json")).unwrap())
            .unwrap();
    assert_eq!(
        cursor["quarantined_total"], truth.garbage as u64,
        "{cursor}"
    );
    assert!(
        cursor["files"].to_string().contains("shrank"),
        "the truncated file was abandoned"
    );
    assert!(
        cursor["files"].to_string().contains("vanished"),
        "the removed file was abandoned"
    );
    daemon.assert_verified();
}
