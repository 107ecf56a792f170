//! `pooldeskd verify --wallet` against a REAL regtest Bitcoin Core: clean
//! when the ledger and the node wallet agree; exit 1 naming the difference
//! for a pooldesk-tagged send the ledger does not know, a ledger txid the
//! wallet does not know, and an amount that differs.
//!
//! Without `BITCOIND_EXE` the suite says why on stderr; with `CI=true` it
//! fails.

use std::time::Duration;

use pooldesk_e2e::bitcoind::{Bitcoind, exe_or_skip};
use pooldesk_e2e::payouts::Setup;
use serde_json::json;

const SUITE: &str = "payouts_wallet_audit_real";

const LONG: Duration = Duration::from_secs(90);

/// A node with a funded `pool` wallet, and a hot daemon on it that has paid
/// one confirmed batch of 0.0005 BTC; `None` when the suite is skipped.
async fn paid_once() -> Option<(Bitcoind, String, Setup, String)> {
    let exe = exe_or_skip(SUITE)?;
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("recv").await;
    let mine_to = node.new_address("pool").await;
    node.mine(101, &mine_to).await;
    let address = node.new_address("recv").await;
    let s = Setup::with_node(&node.node("pool"), "hot", "", "", address).await;
    let id = s.request("0.0005").await;
    s.approve(id).await;
    let (status, answer) = s.send_batch().await;
    assert_eq!(status, 200, "{answer}");
    node.mine(1, &mine_to).await;
    let w = s.wait_withdrawal(id, &["confirmed"], LONG).await;
    let txid = w["txid"].as_str().expect("txid").to_string();
    Some((node, mine_to, s, txid))
}

/// `verify --wallet` fails, and its output names `what`.
fn assert_wallet_difference(s: &Setup, what: &[&str]) {
    let (ok, text) = s.daemon.verify_with(&["--wallet"]);
    assert!(!ok, "verify --wallet passed:\n{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("WALLET DIFFERENCE:") && what.iter().all(|w| l.contains(w)))
        .unwrap_or_else(|| panic!("no difference naming {what:?}:\n{text}"));
    println!("{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tagged_payout_sent_behind_the_daemons_back_is_named() {
    let Some((node, mine_to, s, _txid)) = paid_once().await else {
        return;
    };
    s.daemon.assert_verified();
    s.daemon.assert_wallet_verified();

    // Someone pays from the pool wallet with pooldesk's comment (a second
    // install, a restored ledger, a hand-typed sendmany).
    let stray_to = node.new_address("recv").await;
    let stray = node
        .call(
            Some("pool"),
            "sendmany",
            &json!(["", {stray_to.clone(): 0.0001}, 1, "pooldesk batch 999"]).to_string(),
        )
        .await;
    let stray = stray.as_str().expect("txid").to_string();
    assert_wallet_difference(&s, &[&stray, "not in the ledger", "10000 sat", &stray_to]);
    // Mined, it is still a difference.
    node.mine(1, &mine_to).await;
    assert_wallet_difference(&s, &[&stray, "not in the ledger"]);
    // The ledger's own checks know nothing of the wallet: still clean.
    s.daemon.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_txid_unknown_to_the_wallet_and_a_wrong_amount_are_named() {
    let Some((_node, _mine_to, mut s, txid)) = paid_once().await else {
        return;
    };
    s.daemon.assert_wallet_verified();
    // Tamper with the ledger while the daemon is stopped, then put it back.
    s.daemon.terminate(LONG).expect("daemon stopped");
    let ledger = s.daemon.data_dir.join("ledger.sqlite");
    let sql = |statement: &str| {
        let conn = rusqlite::Connection::open(&ledger).expect("open the ledger");
        let changed = conn.execute(statement, []).expect(statement);
        assert_eq!(changed, 1, "{statement}");
    };
    let unknown = "ab".repeat(32);
    sql(&format!(
        "UPDATE payout_batches SET txid = '{unknown}' WHERE txid = '{txid}'"
    ));
    assert_wallet_difference(&s, &[&unknown, "unknown to the wallet"]);
    sql(&format!(
        "UPDATE payout_batches SET txid = '{txid}' WHERE txid = '{unknown}'"
    ));
    s.daemon.assert_wallet_verified();

    let outputs = s.daemon.sql_text(&format!(
        "SELECT outputs_json FROM payout_batches WHERE txid = '{txid}'"
    ));
    assert!(outputs.contains("50000"), "{outputs}");
    let tampered = outputs.replace("50000", "50001");
    sql(&format!(
        "UPDATE payout_batches SET outputs_json = '{tampered}' WHERE txid = '{txid}'"
    ));
    assert_wallet_difference(
        &s,
        &[&txid, "ledger 50001 sat, wallet 50000 sat", &s.address],
    );
    sql(&format!(
        "UPDATE payout_batches SET outputs_json = '{outputs}' WHERE txid = '{txid}'"
    ));
    s.daemon.assert_wallet_verified();
    s.daemon.assert_verified();
}
