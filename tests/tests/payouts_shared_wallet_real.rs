//! Identity against a real Bitcoin Core regtest node (`BITCOIND_EXE`): two
//! installs pay from one wallet with the same batch numbers, and one of them
//! then moves to a copy of the wallet restored from its descriptors (no
//! comments, no locks). Batches are matched by the txid each install
//! committed, never by a comment or a batch number: no install takes the
//! other's transaction for its own, every receiver is paid exactly once,
//! and `verify` and `verify --wallet` stay clean for both.

use std::time::{Duration, Instant};

use pooldesk_e2e::bitcoind::{Bitcoind, exe_or_skip};
use pooldesk_e2e::payouts::Setup;
use serde_json::json;

const SUITE: &str = "payouts_shared_wallet_real";
/// Generous for a loaded 2-core machine; every wait polls for its event.
const DEADLINE: Duration = Duration::from_secs(120);

/// Requests, approves and sends one withdrawal: (withdrawal id, batch id,
/// txid).
async fn pay(s: &Setup, amount_btc: &str) -> (i64, i64, String) {
    let id = s.request(amount_btc).await;
    s.approve(id).await;
    let (status, answer) = s.send_batch().await;
    assert_eq!(status, 200, "{answer}");
    let batch = answer["id"].as_i64().expect("batch id");
    let txid = answer["txid"].as_str().expect("txid").to_string();
    (id, batch, txid)
}

async fn wait_confirmed(s: &Setup, id: i64) {
    s.wait_withdrawal(id, &["confirmed"], DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_installs_and_a_restored_wallet_never_take_each_others_payments() {
    let Some(exe) = exe_or_skip(SUITE) else {
        return;
    };
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("recv").await;
    let mine_to = node.new_address("pool").await;
    node.mine(104, &mine_to).await;

    // Two installs, one wallet: both number their first batch 1.
    let a_address = node.new_address("recv").await;
    let b_address = node.new_address("recv").await;
    let mut a = Setup::with_node(&node.node("pool"), "hot", "", "", a_address.clone()).await;
    let b = Setup::with_node(&node.node("pool"), "hot", "", "", b_address.clone()).await;
    let (a_w1, a_batch, a_tx1) = pay(&a, "0.0001").await;
    let (b_w1, b_batch, b_tx1) = pay(&b, "0.0002").await;
    assert_eq!((a_batch, b_batch), (1, 1), "same batch numbers");
    assert_ne!(a_tx1, b_tx1);
    node.mine(1, &mine_to).await;
    wait_confirmed(&a, a_w1).await;
    wait_confirmed(&b, b_w1).await;
    assert_eq!(a.batch(1).await["txid"], a_tx1.as_str());
    assert_eq!(b.batch(1).await["txid"], b_tx1.as_str());

    // The wallet restored from its descriptors: same keys, no comments,
    // no locks. Install A moves to it.
    let descriptors = node
        .call(Some("pool"), "listdescriptors", "[true]")
        .await
        .to_serde();
    node.call(
        None,
        "createwallet",
        &json!(["restored", false, true, "", false, true]).to_string(),
    )
    .await;
    let imports: Vec<serde_json::Value> = descriptors["descriptors"]
        .as_array()
        .expect("descriptors")
        .iter()
        .map(|d| {
            let mut import = json!({"desc": d["desc"], "timestamp": 0, "active": d["active"],
                "internal": d["internal"].as_bool().unwrap_or(false)});
            if let Some(range) = d.get("range") {
                import["range"] = range.clone();
                let next = d.get("next_index").or_else(|| d.get("next"));
                import["next_index"] = next.cloned().unwrap_or(json!(0));
            }
            import
        })
        .collect();
    let imported = node
        .call(
            Some("restored"),
            "importdescriptors",
            &json!([imports]).to_string(),
        )
        .await
        .to_serde();
    assert!(
        imported
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["success"] == true),
        "{imported}"
    );
    let restored_tx = node
        .call(
            Some("restored"),
            "gettransaction",
            &json!([a_tx1]).to_string(),
        )
        .await
        .to_serde();
    assert!(restored_tx.get("comment").is_none(), "{restored_tx}");
    let config = std::fs::read_to_string(&a.daemon.config_path).expect("config");
    assert!(config.contains("wallet = \"pool\""), "{config}");
    std::fs::write(
        &a.daemon.config_path,
        config.replace("wallet = \"pool\"", "wallet = \"restored\""),
    )
    .expect("config");
    a.daemon.restart().await;

    // Both pay again (batch 2 each), A through the restored wallet.
    let (a_w2, a_batch2, a_tx2) = pay(&a, "0.0001").await;
    let (b_w2, b_batch2, b_tx2) = pay(&b, "0.0002").await;
    assert_eq!((a_batch2, b_batch2), (2, 2));
    assert_ne!(a_tx2, b_tx2);
    let deadline = Instant::now() + DEADLINE;
    while node
        .call(None, "getrawmempool", "[]")
        .await
        .as_arr()
        .map(|m| m.len())
        != Some(0)
    {
        node.mine(1, &mine_to).await;
        assert!(Instant::now() < deadline, "the mempool never emptied");
    }
    wait_confirmed(&a, a_w2).await;
    wait_confirmed(&b, b_w2).await;
    assert_eq!(a.batch(2).await["txid"], a_tx2.as_str());
    assert_eq!(b.batch(2).await["txid"], b_tx2.as_str());
    // Every chance for anything else to confirm, then look.
    node.mine(2, &mine_to).await;
    assert_eq!(node.received_sat("recv", &a_address, 1).await, 20_000);
    assert_eq!(node.received_sat("recv", &b_address, 1).await, 40_000);
    assert_eq!(a.ledger_paid_sat(), 20_000);
    assert_eq!(b.ledger_paid_sat(), 40_000);
    a.daemon.assert_verified();
    b.daemon.assert_verified();
    a.daemon.assert_wallet_verified();
    b.daemon.assert_wallet_verified();
}
