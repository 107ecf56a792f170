//! Hot batches know their txid before anything leaves, against a real
//! Bitcoin Core regtest node (`BITCOIND_EXE`): the daemon is killed at every
//! step of a hot and of a cold batch through its test-only crash hook
//! (`POOLDESK_TEST_CRASH_AT`), restarted, and each batch resolves paying
//! its receiver exactly once; a payout missing from the mempool while the
//! wallet still holds it is rebroadcast (same bytes) and the admin cannot
//! pay it again; a cold transaction broadcast by the signer is recognised by
//! its txid. Every scenario ends with ledger = wallet (paid amount and fee)
//! and `pooldeskd verify` clean.

use std::time::{Duration, Instant};

use pooldesk_e2e::bitcoind::{Bitcoind, exe_or_skip};
use pooldesk_e2e::daemon::Daemon;
use pooldesk_e2e::payouts::Setup;
use pooldesk_e2e::standin::client::amount_sat;
use serde_json::json;

const SUITE: &str = "payouts_txid";
const CRASH: &str = "POOLDESK_TEST_CRASH_AT";
/// Generous for a loaded 2-core machine; every wait polls for its event.
const DEADLINE: Duration = Duration::from_secs(120);

/// A node whose `pool` wallet has `mature` spendable coinbases, and a
/// `recv` wallet; `None` when the suite is skipped.
async fn node_with_coins(mature: u32) -> Option<(Bitcoind, String)> {
    let exe = exe_or_skip(SUITE)?;
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("recv").await;
    let mine_to = node.new_address("pool").await;
    node.mine(100 + mature, &mine_to).await;
    Some((node, mine_to))
}

/// One text value read straight from a (possibly dead) daemon's ledger.
fn sql_text(daemon: &Daemon, sql: &str) -> Option<String> {
    let conn = rusqlite::Connection::open_with_flags(
        daemon.data_dir.join("ledger.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the ledger read-only");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy");
    conn.query_row(sql, [], |r| r.get::<_, Option<String>>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn mempool(node: &Bitcoind) -> Vec<String> {
    node.call(None, "getrawmempool", "[]")
        .await
        .as_arr()
        .expect("mempool")
        .iter()
        .map(|t| t.as_str().expect("txid").to_string())
        .collect()
}

/// Drives withdrawal `id` to `confirmed`: sends a batch when it is
/// approved again, mines when it is broadcast. Polls, never sleeps for an
/// outcome.
async fn drive_to_confirmed(s: &Setup, node: &Bitcoind, mine_to: &str, id: i64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let w = s.withdrawal(id).await;
        match w["state"].as_str() {
            Some("confirmed") => return,
            Some("approved") => {
                let _ = s.send_batch().await;
            }
            Some("broadcast") => node.mine(1, mine_to).await,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "withdrawal {id} never confirmed: {w}\n{}",
            s.daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Ledger = wallet: the receiver got `amount_sat` exactly once, the ledger
/// paid exactly that, every paying batch's recorded fee is the wallet's fee
/// for its txid, and `verify` is clean.
async fn assert_ledger_is_wallet(s: &Setup, node: &Bitcoind, amount_sat: i64) {
    assert_eq!(
        node.received_sat("recv", &s.address, 0).await,
        amount_sat,
        "the receiver must be paid exactly once"
    );
    assert_eq!(s.ledger_paid_sat(), amount_sat);
    let (status, answer) = s.daemon.admin("GET", "/api/admin/batches", None).await;
    assert_eq!(status, 200, "{answer}");
    let mut fees_sat = 0;
    for batch in answer["batches"].as_array().expect("batches") {
        if batch["state"] != "confirmed" {
            continue;
        }
        let txid = batch["txid"].as_str().expect("txid");
        let tx = node
            .call(Some("pool"), "gettransaction", &json!([txid]).to_string())
            .await;
        let wallet_fee_sat = -amount_sat_of(&tx, "fee");
        assert_eq!(batch["fee_sat"], wallet_fee_sat, "{batch}");
        fees_sat += wallet_fee_sat;
    }
    assert_eq!(
        s.daemon.sql_i64(
            "SELECT COALESCE(SUM(balance_msat), 0) / 1000 FROM accounts WHERE name = 'fees:network'"
        ),
        fees_sat,
        "fees in the ledger = fees in the wallet"
    );
    s.daemon.assert_verified();
}

fn amount_sat_of(tx: &pooldesk_e2e::standin::json::J, key: &str) -> i64 {
    amount_sat(
        tx.get(key)
            .unwrap_or_else(|| panic!("{key} in {}", tx.to_text())),
    )
}

/// Polls until the pool wallet holds no locked coin (a final batch's
/// inputs are unlocked right after it is recorded).
async fn wait_no_locks(node: &Bitcoind, step: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let locks = node.call(Some("pool"), "listlockunspent", "[]").await;
        if locks.as_arr().is_some_and(|l| l.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{step}: coins stay locked: {}",
            locks.to_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Kills the daemon at `step` of a batch started by `start` (the request
/// dies with the process), checks what was durable at that moment against
/// the node with `at_crash`, then restarts it without the hook.
async fn crash_and_restart(s: &mut Setup) {
    s.daemon.kill9(); // reaps the aborted process
    s.daemon.opts.env.retain(|(k, _)| k != CRASH);
    s.daemon.start_again().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_every_step_of_a_hot_batch_pays_exactly_once() {
    let steps = [
        "hot_intent",
        "hot_signed",
        "hot_committed",
        "hot_locked",
        "hot_broadcast",
        "hot_recorded",
    ];
    let Some((node, mine_to)) = node_with_coins(steps.len() as u32 + 2).await else {
        return;
    };
    for step in steps {
        let address = node.new_address("recv").await;
        let env = vec![(CRASH.to_string(), step.to_string())];
        let mut s =
            Setup::with_node_env(&node.node("pool"), "hot", "", "", address.clone(), env).await;
        let id = s.request("0.0001").await;
        s.approve(id).await;
        let (status, answer) = s.send_batch().await;
        assert_eq!(status, 0, "{step}: the daemon must die mid-batch: {answer}");
        // What was durable when it died, against what left the node.
        let txid = sql_text(&s.daemon, "SELECT txid FROM payout_batches WHERE id = 1");
        let hex = sql_text(&s.daemon, "SELECT tx_hex FROM payout_batches WHERE id = 1");
        let pool = mempool(&node).await;
        match step {
            "hot_intent" | "hot_signed" => {
                assert!(txid.is_none(), "{step}: {txid:?}");
                assert!(pool.is_empty(), "{step}: nothing may leave: {pool:?}");
            }
            "hot_committed" | "hot_locked" => {
                let txid = txid.expect("txid committed");
                assert!(hex.is_some(), "{step}: bytes committed with the txid");
                assert!(
                    pool.is_empty(),
                    "{step}: committed, not broadcast: {pool:?}"
                );
                let locks = node.call(Some("pool"), "listlockunspent", "[]").await;
                let locked = locks.as_arr().expect("locks").len();
                assert_eq!(
                    locked > 0,
                    step == "hot_locked",
                    "{step}: {}",
                    locks.to_text()
                );
                let _ = txid;
            }
            _ => {
                let txid = txid.expect("txid committed");
                assert_eq!(pool, vec![txid.clone()], "{step}: the committed txid left");
            }
        }
        crash_and_restart(&mut s).await;
        drive_to_confirmed(&s, &node, &mine_to, id).await;
        assert_ledger_is_wallet(&s, &node, 10_000).await;
        // Resolved batches hold no locks.
        wait_no_locks(&node, step).await;
    }
}

/// A cold batch: PSBT, signed by Core as the offline signer, finalized.
async fn cold_round(s: &Setup, node: &Bitcoind) -> (u16, serde_json::Value) {
    let (status, answer) = s
        .daemon
        .admin("POST", "/api/admin/create_psbt", Some(&json!({})))
        .await;
    if status != 200 {
        return (status, answer);
    }
    let signed = sign(node, answer["psbt"].as_str().expect("psbt")).await;
    s.daemon
        .admin(
            "POST",
            "/api/admin/finalize_psbt",
            Some(&json!({"psbt_id": answer["psbt_id"], "psbt": signed})),
        )
        .await
}

async fn sign(node: &Bitcoind, psbt: &str) -> String {
    let signed = node
        .call(
            Some("pool"),
            "walletprocesspsbt",
            &json!([psbt]).to_string(),
        )
        .await;
    signed
        .get("psbt")
        .and_then(|p| p.as_str())
        .expect("signed psbt")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_every_step_of_a_cold_batch_pays_exactly_once() {
    let steps = [
        "cold_intent",
        "cold_funded",
        "cold_created",
        "cold_final",
        "cold_broadcast",
    ];
    let Some((node, mine_to)) = node_with_coins(steps.len() as u32 + 2).await else {
        return;
    };
    for step in steps {
        let address = node.new_address("recv").await;
        let env = vec![(CRASH.to_string(), step.to_string())];
        let mut s =
            Setup::with_node_env(&node.node("pool"), "cold", "", "", address.clone(), env).await;
        let id = s.request("0.0001").await;
        s.approve(id).await;
        let (status, answer) = cold_round(&s, &node).await;
        assert_eq!(status, 0, "{step}: the daemon must die mid-batch: {answer}");
        crash_and_restart(&mut s).await;
        // Whatever the batch is now, finish it the way an admin would.
        let deadline = Instant::now() + DEADLINE;
        loop {
            let w = s.withdrawal(id).await;
            let batch = s.batch(w["batch_id"].as_i64().unwrap_or(0)).await;
            match (w["state"].as_str(), batch["state"].as_str()) {
                (Some("confirmed"), _) => break,
                (Some("broadcast"), _) => node.mine(1, &mine_to).await,
                (Some("approved"), _) => {
                    let _ = cold_round(&s, &node).await;
                }
                (_, Some("psbt_created")) => {
                    let psbt_id = batch["psbt_id"].as_i64().expect("psbt id");
                    let (status, review) = s
                        .daemon
                        .admin("GET", &format!("/api/admin/psbt/{psbt_id}"), None)
                        .await;
                    assert_eq!(status, 200, "{review}");
                    let unsigned = sql_text(
                        &s.daemon,
                        &format!("SELECT unsigned_psbt FROM psbts WHERE id = {psbt_id}"),
                    )
                    .expect("psbt");
                    let signed = sign(&node, &unsigned).await;
                    let (status, answer) = s
                        .daemon
                        .admin(
                            "POST",
                            "/api/admin/finalize_psbt",
                            Some(&json!({"psbt_id": psbt_id, "psbt": signed})),
                        )
                        .await;
                    assert_eq!(status, 200, "{step}: {answer}");
                }
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "{step}: withdrawal {id} never confirmed: {w} {batch}\n{}",
                s.daemon.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_ledger_is_wallet(&s, &node, 10_000).await;
        // Nothing stays reserved once the batch is final (a failed
        // `cold_intent`/`cold_funded` batch never locked anything).
        wait_no_locks(&node, step).await;
    }
}

/// The node restarts without its mempool and without wallet rebroadcast:
/// the payout is only in the wallet. The daemon rebroadcasts the same
/// bytes; the admin's Retry is refused (it would be an independent second
/// payment); the receiver gets the amount exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_payout_missing_from_the_mempool_is_rebroadcast_never_paid_again() {
    let Some((mut node, mine_to)) = node_with_coins(3).await else {
        return;
    };
    let address = node.new_address("recv").await;
    let mut s = Setup::with_node(&node.node("pool"), "hot", "", "", address.clone()).await;
    let id = s.request("0.0002").await;
    s.approve(id).await;
    let (status, batch) = s.send_batch().await;
    assert_eq!(status, 200, "{batch}");
    let txid = s.withdrawal(id).await["txid"]
        .as_str()
        .expect("txid")
        .to_string();
    s.daemon.kill9();
    node.restart_with(&["-persistmempool=0", "-walletbroadcast=0"])
        .await;
    node.call(None, "loadwallet", "[\"pool\"]").await;
    node.call(None, "loadwallet", "[\"recv\"]").await;
    assert!(mempool(&node).await.is_empty(), "the mempool must be gone");
    let held = node
        .call(Some("pool"), "gettransaction", &json!([txid]).to_string())
        .await;
    assert_eq!(held.get("confirmations").and_then(|c| c.as_i64()), Some(0));

    // Retry or Failed now could pay twice: refused with the reason, whatever
    // state the batch shows.
    s.daemon.start_again().await;
    for outcome in ["retry", "failed"] {
        let (status, answer) = s
            .daemon
            .admin(
                "POST",
                "/api/admin/batches/1/resolve",
                Some(&json!({"outcome": outcome})),
            )
            .await;
        assert_eq!(status, 409, "{outcome}: {answer}");
    }
    // The worker puts the same transaction back.
    let deadline = Instant::now() + DEADLINE;
    while !mempool(&node).await.contains(&txid) {
        assert!(
            Instant::now() < deadline,
            "the payout was never rebroadcast\n{}",
            s.daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(mempool(&node).await, vec![txid.clone()]);
    drive_to_confirmed(&s, &node, &mine_to, id).await;
    // Every chance for a second payment to confirm: more blocks, then look.
    node.mine(3, &mine_to).await;
    assert_ledger_is_wallet(&s, &node, 20_000).await;
}

/// The signer broadcasts the cold transaction with its own tool: the batch
/// is recognised by the txid recorded at PSBT creation, and a later
/// finalize of a copy with the same transaction is not a second payment.
#[tokio::test(flavor = "multi_thread")]
async fn a_cold_transaction_broadcast_by_the_signer_is_recognised_by_txid() {
    let Some((node, mine_to)) = node_with_coins(2).await else {
        return;
    };
    let address = node.new_address("recv").await;
    let s = Setup::with_node(&node.node("pool"), "cold", "", "", address.clone()).await;
    let id = s.request("0.0003").await;
    s.approve(id).await;
    let (status, answer) = s
        .daemon
        .admin("POST", "/api/admin/create_psbt", Some(&json!({})))
        .await;
    assert_eq!(status, 200, "{answer}");
    let recorded = answer["txid"]
        .as_str()
        .expect("txid recorded at PSBT creation")
        .to_string();
    // Persistent locks on the PSBT's inputs.
    let locks = node.call(Some("pool"), "listlockunspent", "[]").await;
    assert!(
        !locks.as_arr().expect("locks").is_empty(),
        "{}",
        locks.to_text()
    );
    let signed = sign(&node, answer["psbt"].as_str().expect("psbt")).await;
    let finalized = node
        .call(None, "finalizepsbt", &json!([signed]).to_string())
        .await;
    let hex = finalized.get("hex").and_then(|h| h.as_str()).expect("hex");
    let sent = node
        .call(None, "sendrawtransaction", &json!([hex]).to_string())
        .await;
    assert_eq!(sent.as_str(), Some(recorded.as_str()));
    // Broadcast: it can no longer be cancelled.
    let batch_id = answer["id"].as_i64().expect("batch id");
    let (status, refused) = s
        .daemon
        .admin(
            "POST",
            &format!("/api/admin/batches/{batch_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    let w = s
        .wait_withdrawal(id, &["broadcast", "confirmed"], DEADLINE)
        .await;
    assert_eq!(w["txid"], recorded.as_str(), "{w}");
    drive_to_confirmed(&s, &node, &mine_to, id).await;
    assert_ledger_is_wallet(&s, &node, 30_000).await;
}

/// An admin cancels a cold batch nobody broadcast: the withdrawal waits
/// again and the PSBT's persistent locks are released.
#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_cold_batch_unlocks_its_inputs() {
    let Some((node, _mine_to)) = node_with_coins(2).await else {
        return;
    };
    let address = node.new_address("recv").await;
    let s = Setup::with_node(&node.node("pool"), "cold", "", "", address.clone()).await;
    let id = s.request("0.0001").await;
    s.approve(id).await;
    let (status, answer) = s
        .daemon
        .admin("POST", "/api/admin/create_psbt", Some(&json!({})))
        .await;
    assert_eq!(status, 200, "{answer}");
    let batch_id = answer["id"].as_i64().expect("batch id");
    let locks = node.call(Some("pool"), "listlockunspent", "[]").await;
    assert_eq!(
        locks.as_arr().map(|l| l.len()),
        Some(1),
        "{}",
        locks.to_text()
    );
    let (status, cancelled) = s
        .daemon
        .admin(
            "POST",
            &format!("/api/admin/batches/{batch_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "failed", "{cancelled}");
    assert_eq!(s.withdrawal(id).await["state"], "approved");
    let locks = node.call(Some("pool"), "listlockunspent", "[]").await;
    assert_eq!(
        locks.as_arr().map(|l| l.len()),
        Some(0),
        "{}",
        locks.to_text()
    );
    // Twice is a state error, not a second release.
    let (status, again) = s
        .daemon
        .admin(
            "POST",
            &format!("/api/admin/batches/{batch_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(node.received_sat("recv", &address, 0).await, 0);
    assert_eq!(s.ledger_paid_sat(), 0);
    s.daemon.assert_verified();
}
