//! `POST /api/v2/shares`: idempotent per (origin, seq) across duplicate and
//! overlapping batches; one malformed share refuses the whole batch and
//! changes nothing; oversize batches (shares and bytes) get 413; bad or
//! missing signatures and stale timestamps get 401; `pooldeskd verify`
//! reconciles the new tables with the ledger and fires on a tampered copy.

use std::process::Command;

use pooldesk_e2e::ckpool::{post_batch, post_batch_raw};
use pooldesk_e2e::daemon::{Daemon, DaemonOptions, bin, now_s};
use serde_json::{Value, json};

fn share(seq: i64, miner: &str, diff: u64, accepted: bool) -> Value {
    let mut s = json!({
        "seq": seq, "miner": miner, "worker": "rig1", "diff": diff, "sdiff": diff as f64 * 1.7,
        "accepted": accepted, "time_s": now_s() - 5,
        "hash": format!("{:064x}", seq),
    });
    if !accepted {
        s["reason"] = "Above target".into();
    }
    s
}

fn batch(origin: &str, shares: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"origin": origin, "ts": now_s(), "shares": shares})).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_are_idempotent_all_or_nothing_bounded_and_signed() {
    let daemon = Daemon::start(DaemonOptions {
        config: "[shares]\nmax_shares_per_batch = 50\nmax_body_bytes = 65536\n".into(),
        ..DaemonOptions::default()
    })
    .await;

    // seqs 1..5: four accepted (diff 1, 2, 3, 4 → 1000 msat per diff), one
    // rejected, seq 4 a block solve.
    let mut first: Vec<Value> = (1..=5)
        .map(|i| share(i, "alice", i as u64, i != 3))
        .collect();
    first[3]["block"] = true.into();
    first[3]["height"] = 840_000.into();
    let body = batch("pool-a", first.clone());
    let (status, answer) = post_batch(&daemon, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["new"], 5);
    assert_eq!(answer["new_seqs"], json!([[1, 5]]));
    assert_eq!(answer["credited_msat"], 1000 + 2000 + 4000 + 5000);
    assert_eq!(answer["blocks"], 1);
    assert_eq!(daemon.balance_msat("alice").await, 12_000);

    // The same batch again (a resend after a lost answer): nothing new.
    let (status, answer) = post_batch(&daemon, &batch("pool-a", first.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["new"].clone(), answer["duplicates"].clone()),
        (json!(0), json!(5))
    );
    assert_eq!(daemon.balance_msat("alice").await, 12_000);

    // Overlapping: 4..8 → only 6..8 are new.
    let overlap: Vec<Value> = (4..=8).map(|i| share(i, "alice", 1, true)).collect();
    let (status, answer) = post_batch(&daemon, &batch("pool-a", overlap)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["new_seqs"], json!([[6, 8]]));
    assert_eq!(answer["duplicates"], 2);
    assert_eq!(daemon.balance_msat("alice").await, 15_000);

    // The same seqs from another origin are other shares.
    let (status, answer) =
        post_batch(&daemon, &batch("pool-b", vec![share(1, "bob", 7, true)])).await;
    assert_eq!((status, answer["new"].clone()), (200, json!(1)));
    assert_eq!(daemon.balance_msat("bob").await, 7000);

    // One malformed share refuses the batch, naming its index; nothing of
    // the batch is recorded.
    let rows_before = daemon.sql_i64("SELECT COUNT(*) FROM pool_shares");
    let mut bad: Vec<Value> = (9..=11).map(|i| share(i, "carol", 1, true)).collect();
    bad[1]["diff"] = json!(-2);
    let (status, answer) = post_batch(&daemon, &batch("pool-a", bad.clone())).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"], "invalid_share");
    assert_eq!(answer["index"], 1);
    assert!(
        answer["message"].as_str().unwrap().contains("shares[1]"),
        "{answer}"
    );
    assert_eq!(
        daemon.sql_i64("SELECT COUNT(*) FROM pool_shares"),
        rows_before
    );
    assert_eq!(daemon.balance_msat_if_known("carol").await, None);
    // A rejected share without a reason, an unknown field: refused too.
    let mut no_reason = bad.clone();
    no_reason[1] = share(10, "carol", 1, false);
    no_reason[1].as_object_mut().unwrap().remove("reason");
    let (status, answer) = post_batch(&daemon, &batch("pool-a", no_reason)).await;
    assert_eq!(
        (status, answer["index"].clone()),
        (422, json!(1)),
        "{answer}"
    );
    // Fixed, the same seqs are all new.
    bad[1]["diff"] = json!(1);
    let (status, answer) = post_batch(&daemon, &batch("pool-a", bad)).await;
    assert_eq!((status, answer["new"].clone()), (200, json!(3)), "{answer}");

    // Oversize: more shares than shares.max_shares_per_batch, and more
    // bytes than shares.max_body_bytes.
    let many: Vec<Value> = (100..151).map(|i| share(i, "dave", 1, true)).collect();
    let (status, answer) = post_batch(&daemon, &batch("pool-a", many)).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (413, json!("too_many_shares")),
        "{answer}"
    );
    let mut fat = share(200, "dave", 1, true);
    fat["worker"] = "w".into();
    let mut big = serde_json::to_vec(
        &json!({"origin": "pool-a", "ts": now_s(), "shares": [fat], "pad": "x".repeat(70_000)}),
    )
    .unwrap();
    let (status, answer) = post_batch(&daemon, &big).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (413, json!("payload_too_large")),
        "{answer}"
    );
    big.truncate(10);
    assert_eq!(daemon.balance_msat_if_known("dave").await, None);

    // Signatures and timestamps.
    let body = batch("pool-a", vec![share(300, "erin", 1, true)]);
    let (status, answer) = post_batch_raw(&daemon, &body, Some(&"0".repeat(64))).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (401, json!("bad_signature"))
    );
    let (status, answer) = post_batch_raw(&daemon, &body, None).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (401, json!("missing_signature"))
    );
    let stale = serde_json::to_vec(
        &json!({"origin": "pool-a", "ts": now_s() - 3600, "shares": [share(300, "erin", 1, true)]}),
    )
    .unwrap();
    let (status, answer) = post_batch(&daemon, &stale).await;
    assert_eq!(
        (status, answer["error"].clone()),
        (401, json!("stale_timestamp"))
    );
    let future = serde_json::to_vec(
        &json!({"origin": "pool-a", "ts": now_s() + 3600, "shares": [share(300, "erin", 1, true)]}),
    )
    .unwrap();
    let (status, _) = post_batch(&daemon, &future).await;
    assert_eq!(status, 401);
    assert_eq!(daemon.balance_msat_if_known("erin").await, None);

    // Rejects counted, block recorded without money; the per-report
    // contract still works beside it.
    assert_eq!(
        daemon.sql_i64(
            "SELECT count FROM share_rejects WHERE miner_id = 'alice' AND reason = 'Above target'"
        ),
        1
    );
    assert_eq!(
        daemon.sql_i64("SELECT height FROM block_solves WHERE miner_id = 'alice'"),
        840_000
    );
    let (status, _) = daemon.post_report("frank", "w1", 3).await;
    assert_eq!(status, 200);
    daemon.assert_verified();

    // verify fires on a tampered copy: one share's credit, then an
    // origin's lifetime total.
    let mut daemon = daemon;
    daemon.terminate(std::time::Duration::from_secs(20));
    for (tamper, expect) in [
        (
            "UPDATE pool_shares SET credited_msat = credited_msat + 1 WHERE seq = 2 AND miner_id = 'alice'",
            "pool_share_credit",
        ),
        (
            "UPDATE share_origins SET credited_msat_total = credited_msat_total + 5 WHERE name = 'pool-b'",
            "share origins credited",
        ),
        (
            "UPDATE block_solves SET hash = 'ff' || substr(hash, 3)",
            "block solves",
        ),
    ] {
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(
            daemon.data_dir.join("ledger.sqlite"),
            copy.path().join("ledger.sqlite"),
        )
        .unwrap();
        let conn = rusqlite::Connection::open(copy.path().join("ledger.sqlite")).unwrap();
        conn.execute_batch(tamper).unwrap();
        drop(conn);
        let out = Command::new(bin("pooldeskd"))
            .args(["verify", "--data-dir"])
            .arg(copy.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            !out.status.success(),
            "verify passed a tampered copy: {text}"
        );
        assert!(text.contains(expect), "{tamper}: {text}");
    }
}

/// Under PPLNS, batched shares earn nothing per share: each miner's
/// accepted work in a batch joins the one ordered PPLNS share log, between
/// the pool reports received before and after it, so the next block's
/// window counts it. Rejected shares and a resend add nothing.
#[tokio::test(flavor = "multi_thread")]
async fn batched_shares_join_the_pplns_window_in_arrival_order() {
    let daemon = Daemon::start(DaemonOptions {
        config: "[accounting]\nscheme = \"pplns\"\npplns_min_window_work = 1000\n".into(),
        ..DaemonOptions::default()
    })
    .await;
    let (status, answer) = daemon.post_report("carol", "r1", 7).await;
    assert_eq!(status, 200, "{answer}");
    // alice 5 + 2, bob 3, and a rejected share of bob's.
    let shares = vec![
        share(1, "alice", 5, true),
        share(2, "bob", 3, true),
        share(3, "bob", 9, false),
        share(4, "alice", 2, true),
    ];
    let body = batch("pool-a", shares.clone());
    let (status, answer) = post_batch(&daemon, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["new"], 4, "{answer}");
    assert_eq!(answer["credited_msat"], 0, "{answer}");
    // A resend after a lost answer adds nothing to the window either.
    let (status, answer) = post_batch(&daemon, &batch("pool-a", shares)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicates"], 4, "{answer}");
    let (status, answer) = daemon.post_report("carol", "r1", 4).await;
    assert_eq!(status, 200, "{answer}");

    let log = daemon.sql_text(
        "SELECT group_concat(miner_id || ' ' || work || ' ' || substr(source, 1, instr(source, ':')), ', ')
         FROM (SELECT * FROM pplns_work ORDER BY id)",
    );
    assert_eq!(
        log,
        "carol 7 report:, alice 7 batch:, bob 3 batch:, carol 4 report:"
    );
    assert_eq!(
        daemon.sql_text("SELECT source FROM pplns_work WHERE miner_id = 'alice'"),
        "batch:pool-a:1-4"
    );
    // The miner page shows the window as it stands: 7 of 21.
    let (status, alice) = daemon.get("/api/miners/alice").await;
    assert_eq!(status, 200, "{alice}");
    assert_eq!(alice["window_work"], 7, "{alice}");
    assert_eq!(alice["window_total_work"], 21, "{alice}");
    assert_eq!(daemon.balance_msat_if_known("alice").await.unwrap_or(0), 0);
    daemon.assert_verified();
}
