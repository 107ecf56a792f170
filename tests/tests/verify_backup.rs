//! `pooldeskd backup` makes a consistent copy while the daemon writes, and
//! `pooldeskd verify` names what is wrong and exits 1.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pooldesk_e2e::daemon::{Daemon, DaemonOptions, bin};

fn verify_dir(dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(bin("pooldeskd"))
        .arg("verify")
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn online_backup_under_load_is_consistent() {
    let d = Daemon::start(DaemonOptions::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for conn in 0..4 {
        let url = d.url.clone();
        let secret = d.report_secret.clone();
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = serde_json::to_vec(&serde_json::json!({
                    "miner_id": format!("b{}", n % 7), "worker_name": "w", "shares": 1,
                    "event_id": format!("bk-{conn}-{n}"), "ts": pooldesk_e2e::daemon::now_s()
                }))
                .unwrap();
                let sig = pooldesk_proto::sig::hmac_sha256_hex(secret.as_bytes(), &body);
                let _ = client
                    .post(format!("{url}/api/report_share"))
                    .header("x-report-sig", sig)
                    .body(body)
                    .send()
                    .await;
            }
        }));
    }
    // Back up once the load is writing (reports credited), not after a
    // guessed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while d.sql_i64("SELECT COUNT(*) FROM share_reports") < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "the load credited nothing within 120 s:\n{}",
            d.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backup_dir = tempfile::tempdir().unwrap();
    let target = backup_dir.path().join("ledger.sqlite");
    let out = Command::new(bin("pooldeskd"))
        .arg("backup")
        .arg(&target)
        .arg("--data-dir")
        .arg(&d.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backup written"));
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    // The copy is a consistent ledger of its own, and a prefix of the live one.
    let (ok, text) = verify_dir(backup_dir.path());
    assert!(ok, "{text}");
    let copy = rusqlite::Connection::open(&target).unwrap();
    let copied: i64 = copy
        .query_row("SELECT COUNT(*) FROM share_reports", [], |r| r.get(0))
        .unwrap();
    let live = d.sql_i64("SELECT COUNT(*) FROM share_reports");
    assert!(copied > 0 && copied <= live, "copied {copied}, live {live}");
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_the_broken_invariant_and_exits_1() {
    let mut d = Daemon::start(DaemonOptions::default()).await;
    for i in 0..5 {
        assert_eq!(d.post_report(&format!("v{i}"), "w", 3).await.0, 200);
    }
    assert!(d.terminate(Duration::from_secs(20)).is_some());
    d.assert_verified();
    // Tamper with a balance behind the ledger's back.
    let conn = rusqlite::Connection::open(d.data_dir.join("ledger.sqlite")).unwrap();
    conn.execute(
        "UPDATE accounts SET balance_msat = balance_msat + 7 WHERE name = 'miner:v3'",
        [],
    )
    .unwrap();
    drop(conn);
    let (ok, text) = d.verify();
    assert!(!ok, "verify must fail");
    assert!(text.contains("miner:v3"), "{text}");
    assert!(text.contains("sum of all balances is 7 msat"), "{text}");
    // A missing ledger is an error too.
    let empty = tempfile::tempdir().unwrap();
    let (ok, text) = verify_dir(empty.path());
    assert!(!ok);
    assert!(text.contains("no ledger"), "{text}");
}
