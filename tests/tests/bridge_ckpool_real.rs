//! `pooldeskd bridge ckpool` on the share logs a real ckpool 0.9.9 wrote
//! (`../shared/ckpool/regtest-run`): every accepted share credited once
//! with its `diff`, every reject counted by reason, both block solves
//! passed on with finder and hash; a restarted bridge sends nothing again.
//! Also: the test generator's writer reproduces the real lines byte for
//! byte.

use std::path::Path;
use std::time::{Duration, Instant};

use pooldesk_e2e::ckpool::{BridgeProcess, Record, shared_dir};
use pooldesk_e2e::daemon::{Daemon, DaemonOptions};

fn real_sharelogs() -> Vec<std::path::PathBuf> {
    let root = shared_dir().join("regtest-run");
    let mut files = Vec::new();
    for run in ["run1", "run2"] {
        for dir in std::fs::read_dir(root.join(run).join("logs"))
            .expect("shared/ckpool is beside the repository")
        {
            let dir = dir.unwrap().path();
            if dir.is_dir() {
                for file in std::fs::read_dir(&dir).unwrap() {
                    let file = file.unwrap().path();
                    if file.extension().is_some_and(|e| e == "sharelog") {
                        files.push(file);
                    }
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn generator_writes_lines_byte_for_byte_like_ckpool() {
    let files = real_sharelogs();
    assert_eq!(files.len(), 4, "{files:?}");
    let mut lines = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.split_inclusive('\n') {
            let record: Record = serde_json::from_str(line).unwrap();
            assert_eq!(record.line(), line, "{}", file.display());
            lines += 1;
        }
    }
    assert_eq!(lines, 14);
}

async fn wait_for(daemon: &Daemon, sql: &str, want: i64, bridges: &mut [&mut BridgeProcess]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for b in bridges.iter_mut() {
            b.assert_running();
        }
        let got = daemon.sql_i64(sql);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {got}, want {want}\n{}",
            bridges
                .iter()
                .map(|b| b.log_tail())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bridge_credits_the_real_regtest_run_exactly_once() {
    let started = Instant::now();
    let daemon = Daemon::start(DaemonOptions::default()).await;
    eprintln!("daemon up after {:?}", started.elapsed());
    let state = tempfile::tempdir().unwrap();
    let runs = shared_dir().join("regtest-run");
    let mut run1 = BridgeProcess::start(
        &daemon,
        &runs.join("run1/logs"),
        "ckpool-run1",
        &state.path().join("run1"),
        &[],
    );
    let mut run2 = BridgeProcess::start(
        &daemon,
        &runs.join("run2/logs"),
        "ckpool-run2",
        &state.path().join("run2"),
        &[],
    );
    wait_for(
        &daemon,
        "SELECT COUNT(*) FROM pool_shares",
        14,
        &mut [&mut run1, &mut run2],
    )
    .await;

    eprintln!("14 shares recorded after {:?}", started.elapsed());
    // run2: two accepted shares of diff 1.0, each credited 1 × 1000 msat.
    let a = "bcrt1q02enzmv30re8kw24f8crlz88lfkjxw5k0xrq4j";
    let b = "bcrt1qjyevvrl6trlcpt2mjs702mc0wv45j4njf73cr5";
    assert_eq!(daemon.balance_msat(a).await, 1000);
    assert_eq!(daemon.balance_msat(b).await, 1000);
    assert_eq!(
        daemon.sql_i64("SELECT COUNT(*) FROM pool_shares WHERE accepted = 1"),
        2
    );
    // run1: carol's 12 rejects by reason, nothing credited.
    for (reason, count) in [
        ("Above target", 8),
        ("Invalid JobID", 1),
        ("Ntime out of range", 1),
        ("Stale", 2),
    ] {
        assert_eq!(
            daemon.sql_i64(&format!(
                "SELECT count FROM share_rejects WHERE miner_id = 'carol' AND reason = '{reason}'"
            )),
            count,
            "{reason}"
        );
    }
    // Absent or zero are both "no money" here, said explicitly.
    assert_eq!(daemon.balance_msat_if_known("carol").await.unwrap_or(0), 0);
    // Both block solves, with finder, worker, height and hash; no money.
    for (height, miner, worker, hash) in [
        (
            104,
            a,
            "worker1",
            "00000000e145b225ed814e6524dac888451c5d3b0e7f7dd75399b54d58e438de",
        ),
        (
            105,
            b,
            "rig2",
            "00000000c0bf3507a21bb48c50cbd5ae845d6148edb9bea1ab3f16028b0a32f7",
        ),
    ] {
        assert_eq!(
            daemon.sql_i64(&format!(
                "SELECT COUNT(*) FROM block_solves WHERE height = {height} AND miner_id = '{miner}' AND worker_name = '{worker}' AND hash = '{hash}'"
            )),
            1,
            "block {height}"
        );
    }
    assert_eq!(daemon.sql_i64("SELECT COUNT(*) FROM block_solves"), 2);
    assert_eq!(
        daemon.sql_i64("SELECT COALESCE(SUM(amount_msat), 0) FROM transfers"),
        2000
    );

    // A restarted bridge (and a kill -9 of it) sends nothing again.
    run1.kill9();
    run2.kill9();
    run1.spawn();
    run2.spawn();
    tokio::time::sleep(Duration::from_secs(2)).await;
    run1.assert_running();
    run2.assert_running();
    assert_eq!(daemon.sql_i64("SELECT COUNT(*) FROM pool_shares"), 14);
    assert_eq!(daemon.balance_msat(a).await, 1000);
    let (_, origins) = daemon.get("/api/admin/miners").await; // any read: still serving
    let _ = origins;
    daemon.assert_verified();

    // The Overview's origins carry the last share times.
    let mut control = daemon.control().await;
    let outcome = control
        .request(pooldesk_proto::control::Request::Snapshot)
        .await
        .unwrap();
    let text = serde_json::to_string(&outcome).unwrap();
    assert!(
        text.contains("ckpool-run1") && text.contains("ckpool-run2"),
        "{text}"
    );
    assert!(
        text.contains("1796163331"),
        "run2's last share time: {text}"
    );
    assert!(Path::new(&state.path().join("run1/cursor.json")).exists());
}
