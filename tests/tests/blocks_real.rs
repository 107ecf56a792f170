//! The life of a block against a real Bitcoin Core regtest node
//! (`BITCOIND_EXE`), with the daemon configured for PPLNS: a known
//! sequence of pool reports, a block mined to the pool's wallet
//! (`generatetoaddress`), the split checked against a table computed by
//! hand, nothing credited before maturity, exactly the parts credited at
//! 100 confirmations, the statement verified by `pooldeskd statement
//! verify` (and refused once altered); an orphan (`invalidateblock` and a
//! competing chain) pays nothing and comes back once on `reconsiderblock`;
//! a pool's block-solve report without a coinbase creates no money; the
//! same split when the work comes as ckpool-style batches mixed with a
//! report, with the window ending at the solving share.

use std::process::Command;
use std::time::{Duration, Instant};

use pooldesk_e2e::bitcoind::{Bitcoind, exe_or_skip};
use pooldesk_e2e::ckpool::post_batch;
use pooldesk_e2e::daemon::{Daemon, DaemonOptions, bin, now_s};
use pooldesk_e2e::payouts::config;
use pooldesk_proto::control::{Request, Response};
use pooldesk_proto::model::BlockState;
use pooldesk_tui::client::one_shot;
use serde_json::{Value, json};

const SUITE: &str = "blocks_real";
const DEADLINE: Duration = Duration::from_secs(120);

/// Window 99 share work (regtest difficulty is tiny, so the minimum
/// rules), fee 2 %.
const ACCOUNTING: &str = r#"
[accounting]
scheme = "pplns"
pplns_factor = 1
pplns_min_window_work = 99
pool_fee_bps = 200
blocks_poll_s = 1
"#;

struct World {
    node: Bitcoind,
    daemon: Daemon,
    /// The pool wallet's address (blocks mined to it are the pool's).
    pool: String,
    /// Someone else's address (blocks mined to it are not).
    other: String,
}

async fn world() -> Option<World> {
    world_with(ACCOUNTING).await
}

async fn world_with(accounting: &str) -> Option<World> {
    let exe = exe_or_skip(SUITE)?;
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("other").await;
    let pool = node.new_address("pool").await;
    let other = node.new_address("other").await;
    let daemon = Daemon::start(DaemonOptions {
        config: config(&node.node("pool"), "hot", "", accounting),
        ..Default::default()
    })
    .await;
    Some(World {
        node,
        daemon,
        pool,
        other,
    })
}

/// Reports oldest first: x 9×1, carol 4×10, alice 5×10, bob 3×10. The
/// window of 99 takes bob 30, alice 50 and 19 of carol's 40 (the boundary
/// falls inside her report); x is out.
async fn report_known_sequence(daemon: &Daemon) {
    for (miner, shares, difficulty) in [
        ("x", 9, 1),
        ("carol", 4, 10),
        ("alice", 5, 10),
        ("bob", 3, 10),
    ] {
        let body = serde_json::to_vec(&json!({
            "miner_id": miner, "worker_name": "rig", "shares": shares, "difficulty": difficulty,
            "event_id": format!("seq-{miner}"), "ts": now_s(),
        }))
        .unwrap();
        let (status, answer) = daemon.post_signed_report(&body).await;
        assert_eq!(status, 200, "{answer}");
        // PPLNS: nothing per share.
        assert_eq!(answer["credited_msat"], 0, "{answer}");
    }
}

/// Reward 50 BTC = 5,000,000,000,000 msat; fee 2 % = 100,000,000,000;
/// 4,900,000,000,000 split over work 99:
///   alice 50: 2,474,747,474,747 rem 47
///   bob   30: 1,484,848,484,848 rem 48  (+1: largest remainder)
///   carol 19:   940,404,040,404 rem 4
const TABLE: [(&str, u64, i64); 3] = [
    ("alice", 50, 2_474_747_474_747),
    ("bob", 30, 1_484_848_484_849),
    ("carol", 19, 940_404_040_404),
];

async fn wait_block(daemon: &Daemon, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, answer) = daemon.get("/api/blocks").await;
        assert_eq!(status, 200, "{answer}");
        if let Some(block) = answer["blocks"]
            .as_array()
            .and_then(|b| b.iter().find(|b| check(b)))
        {
            return block.clone();
        }
        assert!(
            Instant::now() < deadline,
            "never saw {what}: {answer}\n{}",
            daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn balances(daemon: &Daemon) -> Vec<i64> {
    let mut out = Vec::new();
    for (miner, _, _) in TABLE {
        out.push(daemon.balance_msat_if_known(miner).await.unwrap_or(0));
    }
    out
}

fn statement_verify(path: &std::path::Path) -> (bool, String) {
    let output = Command::new(bin("pooldeskd"))
        .args(["statement", "verify"])
        .arg(path)
        .output()
        .expect("run pooldeskd statement verify");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn pplns_split_matches_the_table_and_pays_exactly_at_maturity() {
    let Some(w) = world().await else { return };
    report_known_sequence(&w.daemon).await;
    w.node.mine(1, &w.pool).await;
    let block = wait_block(&w.daemon, "the pool's block", |b| b["state"] == "immature").await;
    let hash = block["hash"].as_str().unwrap().to_string();
    assert_eq!(block["height"], 1);
    assert_eq!(block["reward_msat"], 5_000_000_000_000i64);
    assert_eq!(block["reward_btc"], "50.00000000");
    assert_eq!(block["pool_fee_msat"], 100_000_000_000i64);
    assert_eq!(block["scheme"], "pplns");

    let (status, statement) = w.daemon.get(&format!("/api/blocks/{hash}/statement")).await;
    assert_eq!(status, 200, "{statement}");
    let parts: Vec<(String, u64, i64)> = statement["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["miner_id"].as_str().unwrap().to_string(),
                p["work"].as_u64().unwrap(),
                p["amount_msat"].as_i64().unwrap(),
            )
        })
        .collect();
    let table: Vec<(String, u64, i64)> = TABLE
        .iter()
        .map(|(m, w, a)| (m.to_string(), *w, *a))
        .collect();
    assert_eq!(parts, table);
    assert_eq!(statement["total_work"], 99);
    assert_eq!(statement["shares"].as_array().unwrap().len(), 3);
    assert_eq!(statement["shares"][0]["miner_id"], "carol");
    assert_eq!(statement["shares"][0]["work"], 19);
    let (status, carol) = w
        .daemon
        .get(&format!("/api/blocks/{hash}/shares?miner=carol"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(carol["shares"].as_array().unwrap().len(), 1);

    // Pending, nothing credited.
    let (_, alice) = w.daemon.get("/api/miners/alice").await;
    assert_eq!(alice["pending_msat"], TABLE[0].2, "{alice}");
    assert_eq!(balances(&w.daemon).await, vec![0, 0, 0]);

    // The published statement verifies; any alteration is named.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("statement.json");
    std::fs::write(&file, serde_json::to_vec(&statement).unwrap()).unwrap();
    let (ok, text) = statement_verify(&file);
    assert!(ok, "{text}");
    for (what, edit) in [
        (
            "share",
            Box::new(|s: &mut Value| s["shares"][1]["work"] = 49.into()) as Box<dyn Fn(&mut Value)>,
        ),
        (
            "amount",
            Box::new(|s: &mut Value| {
                s["parts"][0]["amount_msat"] = 2_474_747_474_748i64.into();
                s["parts"][1]["amount_msat"] = 1_484_848_484_848i64.into();
            }),
        ),
        (
            "miner",
            Box::new(|s: &mut Value| s["parts"][2]["miner_id"] = "mallory".into()),
        ),
    ] {
        let mut altered = statement.clone();
        edit(&mut altered);
        std::fs::write(&file, serde_json::to_vec(&altered).unwrap()).unwrap();
        let (ok, text) = statement_verify(&file);
        assert!(!ok, "altered {what} accepted: {text}");
        assert!(!text.trim().is_empty(), "altered {what}: no reason given");
    }

    // 99 confirmations: still immature, still nothing credited.
    w.node.mine(98, &w.other).await;
    wait_block(&w.daemon, "99 confirmations", |b| b["confirmations"] == 99).await;
    assert_eq!(balances(&w.daemon).await, vec![0, 0, 0]);
    w.daemon.assert_verified();

    // 100: matured, each balance rose by exactly its part, once.
    w.node.mine(1, &w.other).await;
    wait_block(&w.daemon, "maturity", |b| b["state"] == "matured").await;
    let expected: Vec<i64> = TABLE.iter().map(|t| t.2).collect();
    assert_eq!(balances(&w.daemon).await, expected);
    w.node.mine(3, &w.other).await;
    wait_block(&w.daemon, "103 confirmations", |b| {
        b["confirmations"] == 103
    })
    .await;
    assert_eq!(balances(&w.daemon).await, expected);
    assert_eq!(w.daemon.balance_msat_if_known("x").await.unwrap_or(0), 0);
    let (_, alice) = w.daemon.get("/api/miners/alice").await;
    assert_eq!(alice["pending_msat"], 0, "{alice}");
    assert_eq!(
        alice["recent_blocks"][0]["amount_msat"], TABLE[0].2,
        "{alice}"
    );
    let metrics = w.daemon.metrics_text().await;
    assert!(
        metrics.contains("pooldesk_blocks{state=\"matured\"} 1"),
        "{metrics}"
    );
    w.daemon.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_orphan_pays_nothing_and_comes_back_once() {
    let Some(w) = world().await else { return };
    report_known_sequence(&w.daemon).await;
    w.node.mine(1, &w.pool).await;
    let block = wait_block(&w.daemon, "the pool's block", |b| b["state"] == "immature").await;
    let hash = block["hash"].as_str().unwrap().to_string();
    w.node.mine(5, &w.other).await;
    wait_block(&w.daemon, "6 confirmations", |b| b["confirmations"] == 6).await;

    // Leave the best chain before maturity; a longer competing chain.
    w.node
        .call(None, "invalidateblock", &json!([hash]).to_string())
        .await;
    w.node.mine(7, &w.other).await;
    let competing = w
        .node
        .call(None, "getblockhash", "[1]")
        .await
        .as_str()
        .unwrap()
        .to_string();
    wait_block(&w.daemon, "the orphan", |b| b["state"] == "orphaned").await;
    let (_, alice) = w.daemon.get("/api/miners/alice").await;
    assert_eq!(alice["pending_msat"], 0, "{alice}");
    assert_eq!(balances(&w.daemon).await, vec![0, 0, 0]);
    w.daemon.assert_verified();

    // Back: its chain becomes the best again (the competitor invalidated).
    w.node
        .call(None, "reconsiderblock", &json!([hash]).to_string())
        .await;
    w.node
        .call(None, "invalidateblock", &json!([competing]).to_string())
        .await;
    wait_block(&w.daemon, "the block back", |b| b["state"] == "immature").await;
    w.node.mine(94, &w.other).await;
    wait_block(&w.daemon, "maturity", |b| b["state"] == "matured").await;
    let expected: Vec<i64> = TABLE.iter().map(|t| t.2).collect();
    assert_eq!(balances(&w.daemon).await, expected);
    // One block, credited once: one transfer per miner.
    assert_eq!(w.daemon.sql_i64("SELECT COUNT(*) FROM blocks"), 1);
    assert_eq!(
        w.daemon
            .sql_i64("SELECT COUNT(*) FROM transfers WHERE kind = 'pool_block_credit'"),
        3
    );
    w.daemon.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_report_without_a_coinbase_creates_no_money() {
    let Some(w) = world().await else { return };
    report_known_sequence(&w.daemon).await;
    // The pool says alice solved a block; the wallet has no such coinbase.
    let share = json!({
        "seq": 1, "miner": "alice", "worker": "rig", "diff": 10, "sdiff": 12.0,
        "accepted": true, "time_s": now_s() - 1, "hash": format!("{:064x}", 7),
        "block": true, "height": 1,
    });
    let body =
        serde_json::to_vec(&json!({"origin": "pool-a", "ts": now_s(), "shares": [share]})).unwrap();
    let (status, answer) = post_batch(&w.daemon, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["credited_msat"], 0, "{answer}");
    // Blocks mined to someone else, then one to the pool as a sentinel:
    // once the follower has seen the sentinel it has looked past the
    // others, and the reported hash is still no block of ours.
    w.node.mine(2, &w.other).await;
    w.node.mine(1, &w.pool).await;
    let sentinel = wait_block(&w.daemon, "the sentinel block", |b| b["height"] == 3).await;
    assert_eq!(sentinel["state"], "immature", "{sentinel}");
    let (_, blocks) = w.daemon.get("/api/blocks").await;
    assert_eq!(blocks["blocks"].as_array().unwrap().len(), 1, "{blocks}");
    assert_ne!(sentinel["hash"], json!(format!("{:064x}", 7)));
    assert_eq!(balances(&w.daemon).await, vec![0, 0, 0]);
    assert_eq!(
        w.daemon
            .sql_i64("SELECT COUNT(*) FROM transfers WHERE kind LIKE '%credit%'"),
        0
    );
    w.daemon.assert_verified();
}

/// One batch of `shares` accepted shares of `miner` at `diff`, seqs from
/// `first_seq`; the last one solves `solves` when given.
fn batch_of(first_seq: i64, miner: &str, shares: i64, diff: u64, solves: Option<&str>) -> Vec<u8> {
    let list: Vec<Value> = (0..shares)
        .map(|i| {
            let mut share = json!({
                "seq": first_seq + i, "miner": miner, "worker": "rig", "diff": diff,
                "sdiff": diff as f64 * 1.5, "accepted": true, "time_s": now_s() - 1,
                "hash": format!("{:064x}", first_seq + i),
            });
            if let (true, Some(hash)) = (i == shares - 1, solves) {
                share["hash"] = hash.into();
                share["block"] = true.into();
                share["height"] = 1.into();
            }
            share
        })
        .collect();
    serde_json::to_vec(&json!({"origin": "ckpool-a", "ts": now_s(), "shares": list})).unwrap()
}

/// The ckpool bridge's contract under PPLNS: batched shares and a pool
/// report in one window, in arrival order, and the window ends at the
/// solving share — work that arrives after the solve but before the wallet
/// sees the coinbase belongs to the next block. The block is built without
/// submitting it (`generateblock … false`) so the solve is reported first,
/// as a pool does.
#[tokio::test(flavor = "multi_thread")]
async fn batched_shares_fill_the_window_up_to_the_solving_share() {
    let Some(w) = world().await else { return };
    let built = w
        .node
        .call(
            None,
            "generateblock",
            &json!([w.pool, [], false]).to_string(),
        )
        .await;
    let hash = built
        .get("hash")
        .and_then(|h| h.as_str())
        .unwrap()
        .to_string();
    let hex = built
        .get("hex")
        .and_then(|h| h.as_str())
        .unwrap()
        .to_string();
    // x 9×1, carol 4×10 (batches), alice 5×10 (a report), bob 3×10 with
    // the solve in his last share, then dave 10×10 after the solve.
    for body in [
        batch_of(1, "x", 9, 1, None),
        batch_of(10, "carol", 4, 10, None),
    ] {
        let (status, answer) = post_batch(&w.daemon, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["credited_msat"], 0, "{answer}");
    }
    let report = serde_json::to_vec(&json!({
        "miner_id": "alice", "worker_name": "rig", "shares": 5, "difficulty": 10,
        "event_id": "alice-1", "ts": now_s(),
    }))
    .unwrap();
    let (status, answer) = w.daemon.post_signed_report(&report).await;
    assert_eq!(status, 200, "{answer}");
    for body in [
        batch_of(14, "bob", 3, 10, Some(&hash)),
        batch_of(17, "dave", 10, 10, None),
    ] {
        let (status, answer) = post_batch(&w.daemon, &body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let submitted = w
        .node
        .call(None, "submitblock", &json!([hex]).to_string())
        .await;
    assert!(submitted.is_null(), "submitblock: {submitted:?}");

    let block = wait_block(&w.daemon, "the pool's block", |b| {
        b["hash"] == hash.as_str()
    })
    .await;
    assert_eq!(block["state"], "immature", "{block}");
    let (status, statement) = w.daemon.get(&format!("/api/blocks/{hash}/statement")).await;
    assert_eq!(status, 200, "{statement}");
    let parts: Vec<(String, u64, i64)> = statement["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["miner_id"].as_str().unwrap().to_string(),
                p["work"].as_u64().unwrap(),
                p["amount_msat"].as_i64().unwrap(),
            )
        })
        .collect();
    let table: Vec<(String, u64, i64)> = TABLE
        .iter()
        .map(|(m, w, a)| (m.to_string(), *w, *a))
        .collect();
    assert_eq!(parts, table, "{statement}");
    let order: Vec<&str> = statement["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["miner_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["carol", "alice", "bob"], "{statement}");
    // Each window row says where its work came from.
    let (status, bob) = w
        .daemon
        .get(&format!("/api/blocks/{hash}/shares?miner=bob"))
        .await;
    assert_eq!(status, 200, "{bob}");
    assert_eq!(bob["shares"][0]["source"], "batch:ckpool-a:14-16", "{bob}");
    assert_eq!(
        statement["shares"][1]["source"]
            .as_str()
            .map(|s| s.starts_with("report:")),
        Some(true),
        "{statement}"
    );
    assert_eq!(statement["block"]["finder_miner_id"], "bob", "{statement}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("statement.json");
    std::fs::write(&file, serde_json::to_vec(&statement).unwrap()).unwrap();
    let (ok, text) = statement_verify(&file);
    assert!(ok, "{text}");
    // What the TUI's Blocks tab asks, through its own client: the same
    // block and the same split as the HTTP statement.
    let listed = one_shot(
        &w.daemon.socket,
        Request::ListBlocks { limit: None },
        DEADLINE,
    )
    .await
    .expect("ListBlocks through the TUI client")
    .1;
    let Response::Blocks(rows) = listed else {
        panic!("ListBlocks answered {listed:?}")
    };
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].hash, hash);
    assert_eq!(rows[0].state, BlockState::Immature);
    let answered = one_shot(
        &w.daemon.socket,
        Request::BlockStatement { hash: hash.clone() },
        DEADLINE,
    )
    .await
    .expect("BlockStatement through the TUI client")
    .1;
    let Response::BlockStatement(tui_statement) = answered else {
        panic!("BlockStatement answered {answered:?}")
    };
    let tui_parts: Vec<(String, u64, i64)> = tui_statement
        .parts
        .iter()
        .map(|p| (p.miner_id.clone(), p.work, p.amount_msat))
        .collect();
    assert_eq!(tui_parts, parts);
    assert_eq!(
        tui_statement.shares_sha256,
        statement["shares_sha256"].as_str().unwrap()
    );
    // dave's work waits for the next block: the current window has it.
    let (_, dave) = w.daemon.get("/api/miners/dave").await;
    assert_eq!(dave["window_work"], 99, "{dave}");

    w.node.mine(99, &w.other).await;
    wait_block(&w.daemon, "maturity", |b| b["state"] == "matured").await;
    let expected: Vec<i64> = TABLE.iter().map(|t| t.2).collect();
    assert_eq!(balances(&w.daemon).await, expected);
    assert_eq!(w.daemon.balance_msat_if_known("dave").await.unwrap_or(0), 0);
    assert_eq!(w.daemon.balance_msat_if_known("x").await.unwrap_or(0), 0);
    w.daemon.assert_verified();
}

/// SOLO: the finder the pool names takes the block less the fee, at
/// maturity; the others' shares earn nothing.
#[tokio::test(flavor = "multi_thread")]
async fn solo_pays_the_finder_the_pool_names() {
    let Some(w) = world_with(&ACCOUNTING.replace("\"pplns\"", "\"solo\"")).await else {
        return;
    };
    let built = w
        .node
        .call(
            None,
            "generateblock",
            &json!([w.pool, [], false]).to_string(),
        )
        .await;
    let hash = built
        .get("hash")
        .and_then(|h| h.as_str())
        .unwrap()
        .to_string();
    let hex = built
        .get("hex")
        .and_then(|h| h.as_str())
        .unwrap()
        .to_string();
    for body in [
        batch_of(1, "alice", 5, 10, None),
        batch_of(6, "bob", 2, 10, Some(&hash)),
    ] {
        let (status, answer) = post_batch(&w.daemon, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["credited_msat"], 0, "{answer}");
    }
    let submitted = w
        .node
        .call(None, "submitblock", &json!([hex]).to_string())
        .await;
    assert!(submitted.is_null(), "submitblock: {submitted:?}");
    let block = wait_block(&w.daemon, "the pool's block", |b| {
        b["hash"] == hash.as_str()
    })
    .await;
    assert_eq!(block["scheme"], "solo", "{block}");
    let (_, bob) = w.daemon.get("/api/miners/bob").await;
    assert_eq!(bob["pending_msat"], 4_900_000_000_000i64, "{bob}");
    w.node.mine(99, &w.other).await;
    wait_block(&w.daemon, "maturity", |b| b["state"] == "matured").await;
    assert_eq!(
        w.daemon.balance_msat_if_known("bob").await,
        Some(4_900_000_000_000)
    );
    assert_eq!(
        w.daemon.balance_msat_if_known("alice").await.unwrap_or(0),
        0
    );
    w.daemon.assert_verified();
}
