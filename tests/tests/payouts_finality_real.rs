//! Finality against a real Bitcoin Core regtest node (`BITCOIND_EXE`):
//! a reorg that takes a payout's confirming block away moves the batch back
//! (shown in its note and the audit log) and forward again without sending
//! anything new; a conflicting spend of a payout's input that gets mined
//! puts the batch in `needs_attention` naming the conflict, and the admin's
//! Failed is refused until the conflict is `payouts.confirmations` deep,
//! then returns the money and the recorded fee. Each ends with ledger =
//! wallet and `pooldeskd verify` / `verify --wallet` clean.

use std::time::{Duration, Instant};

use pooldesk_e2e::bitcoind::{Bitcoind, exe_or_skip};
use pooldesk_e2e::payouts::Setup;
use pooldesk_e2e::standin::client::amount_sat;
use serde_json::{Value, json};

const SUITE: &str = "payouts_finality_real";
/// Generous for a loaded 2-core machine; every wait polls for its event.
const DEADLINE: Duration = Duration::from_secs(120);

/// A node whose `pool` wallet has spendable coinbases, and a `recv`
/// wallet; `None` when the suite is skipped.
async fn node_with_coins() -> Option<(Bitcoind, String)> {
    let exe = exe_or_skip(SUITE)?;
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("recv").await;
    let mine_to = node.new_address("pool").await;
    node.mine(103, &mine_to).await;
    Some((node, mine_to))
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

/// Polls batch `id` until `pred` holds (up to [`DEADLINE`]).
async fn wait_batch(s: &Setup, id: i64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let batch = s.batch(id).await;
        if pred(&batch) {
            return batch;
        }
        assert!(
            Instant::now() < deadline,
            "batch {id} never {what}: {batch}\n{}",
            s.daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The wallet's transactions sending to `address` (any state).
async fn sends_to(node: &Bitcoind, address: &str) -> Vec<String> {
    let list = node
        .call(
            Some("pool"),
            "listtransactions",
            &json!(["*", 1000, 0, true]).to_string(),
        )
        .await
        .to_serde();
    let mut txids: Vec<String> = list
        .as_array()
        .expect("list")
        .iter()
        .filter(|t| t["category"] == "send" && t["address"] == address)
        .map(|t| t["txid"].as_str().expect("txid").to_string())
        .collect();
    txids.dedup();
    txids
}

fn fees_sat(s: &Setup) -> i64 {
    s.daemon.sql_i64(
        "SELECT COALESCE(SUM(balance_msat), 0) / 1000 FROM accounts WHERE name = 'fees:network'",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reorg_moves_a_payout_back_and_forward_and_nothing_is_resent() {
    let Some((node, mine_to)) = node_with_coins().await else {
        return;
    };
    let address = node.new_address("recv").await;
    // Final at 3 confirmations: followed through a reorg until then.
    let s = Setup::with_node(
        &node.node("pool"),
        "hot",
        "confirmations = 3",
        "",
        address.clone(),
    )
    .await;
    let id = s.request("0.0001").await;
    s.approve(id).await;
    let (status, answer) = s.send_batch().await;
    assert_eq!(status, 200, "{answer}");
    let batch_id = answer["id"].as_i64().expect("batch id");
    let txid = answer["txid"].as_str().expect("txid").to_string();
    assert_eq!(mempool(&node).await, vec![txid.clone()]);

    node.mine(1, &mine_to).await;
    let confirming = node.call(None, "getbestblockhash", "[]").await;
    let confirming = confirming.as_str().expect("hash").to_string();
    let batch = wait_batch(&s, batch_id, "saw its confirmation", |b| {
        b["confirmations"] == 1
    })
    .await;
    assert_eq!(batch["state"], "broadcast", "1 of 3: not final: {batch}");

    // The confirming block goes away: the payout is back in the mempool.
    node.call(None, "invalidateblock", &json!([confirming]).to_string())
        .await;
    assert_eq!(mempool(&node).await, vec![txid.clone()]);
    let batch = wait_batch(&s, batch_id, "went back", |b| b["confirmations"] == 0).await;
    assert_eq!(batch["state"], "broadcast", "{batch}");
    let note = batch["note"].as_str().unwrap_or_default();
    assert!(note.contains("reorg"), "the reorg is shown: {batch}");
    assert_eq!(batch["txid"], txid.as_str());
    assert_eq!(
        s.daemon.sql_i64(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'reorg' AND subject = 'batch:{batch_id}'"
        )),
        1,
        "one audit entry for the reorg"
    );
    assert_eq!(s.withdrawal(id).await["state"], "broadcast");

    // Forward again on the new chain: the same transaction, nothing new.
    // (To another address: the same coinbase at the same second would
    // rebuild the invalidated block itself.)
    let fork_to = node.new_address("pool").await;
    node.mine(3, &fork_to).await;
    let batch = wait_batch(&s, batch_id, "confirmed", |b| b["state"] == "confirmed").await;
    assert_eq!(batch["txid"], txid.as_str(), "{batch}");
    assert_eq!(s.withdrawal(id).await["state"], "confirmed");
    assert_eq!(sends_to(&node, &address).await, vec![txid.clone()]);
    node.mine(3, &mine_to).await;
    assert_eq!(node.received_sat("recv", &address, 0).await, 10_000);
    assert_eq!(s.ledger_paid_sat(), 10_000);
    let wallet_tx = node
        .call(Some("pool"), "gettransaction", &json!([txid]).to_string())
        .await;
    let wallet_fee = -amount_sat(wallet_tx.get("fee").expect("fee"));
    assert_eq!(batch["fee_sat"], wallet_fee);
    assert_eq!(fees_sat(&s), wallet_fee, "ledger fees = wallet fees");
    s.daemon.assert_verified();
    s.daemon.assert_wallet_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mined_conflict_is_named_and_failed_returns_funds_only_when_it_is_deep() {
    let Some((node, mine_to)) = node_with_coins().await else {
        return;
    };
    let address = node.new_address("recv").await;
    let s = Setup::with_node(
        &node.node("pool"),
        "hot",
        "confirmations = 2",
        "",
        address.clone(),
    )
    .await;
    let balance_before = s.daemon.balance_msat(&s.miner).await;
    let id = s.request("0.0002").await;
    s.approve(id).await;
    let (status, answer) = s.send_batch().await;
    assert_eq!(status, 200, "{answer}");
    let batch_id = answer["id"].as_i64().expect("batch id");
    let txid = answer["txid"].as_str().expect("txid").to_string();
    assert!(fees_sat(&s) > 0, "the fee is recorded at broadcast");

    // Someone with the wallet's keys spends the payout's first input
    // elsewhere, at a higher fee: the payout leaves the mempool.
    let elsewhere = node.new_address("recv").await;
    let conflict = node
        .spend_first_input_elsewhere("pool", &txid, &elsewhere)
        .await;
    assert_eq!(mempool(&node).await, vec![conflict.clone()]);
    node.mine(1, &mine_to).await;

    // The batch names the conflict.
    let batch = wait_batch(&s, batch_id, "named the conflict", |b| {
        b["state"] == "needs_attention"
    })
    .await;
    let note = batch["note"].as_str().unwrap_or_default();
    assert!(note.contains(&conflict), "the conflict is named: {batch}");
    assert!(note.contains(&txid), "{batch}");
    // One confirmation of 2: Failed and Retry are refused, with the reason.
    for outcome in ["failed", "retry"] {
        let (status, refused) = s
            .daemon
            .admin(
                "POST",
                &format!("/api/admin/batches/{batch_id}/resolve"),
                Some(&json!({"outcome": outcome})),
            )
            .await;
        assert_eq!(status, 409, "{outcome}: {refused}");
        assert!(
            refused.to_string().contains("only 1 deep"),
            "{outcome}: {refused}"
        );
    }
    assert_eq!(s.ledger_paid_sat(), 20_000, "nothing returned yet");

    // Deep enough: Failed returns the money and the fee.
    node.mine(1, &mine_to).await;
    let (status, resolved) = s
        .daemon
        .admin(
            "POST",
            &format!("/api/admin/batches/{batch_id}/resolve"),
            Some(&json!({"outcome": "failed"})),
        )
        .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(s.withdrawal(id).await["state"], "failed");
    assert_eq!(s.daemon.balance_msat(&s.miner).await, balance_before);
    assert_eq!(s.ledger_paid_sat(), 0);
    assert_eq!(fees_sat(&s), 0, "the dead transaction's fee is reversed");
    assert_eq!(node.received_sat("recv", &address, 0).await, 0);
    let locks = node.call(Some("pool"), "listlockunspent", "[]").await;
    assert_eq!(
        locks.as_arr().map(|l| l.len()),
        Some(0),
        "{}",
        locks.to_text()
    );
    s.daemon.assert_verified();
    s.daemon.assert_wallet_verified();
}

/// The wallet's owner bumps the payout's fee (`bumpfee`): the replacement
/// pays the same outputs, so the batch follows it (`replaced_by_txid`), its
/// fee is the replacement's, and the receiver is paid once.
#[tokio::test(flavor = "multi_thread")]
async fn a_fee_bump_is_followed_and_its_fee_recorded() {
    let Some((node, mine_to)) = node_with_coins().await else {
        return;
    };
    let address = node.new_address("recv").await;
    let s = Setup::with_node(&node.node("pool"), "hot", "", "", address.clone()).await;
    let id = s.request("0.0003").await;
    s.approve(id).await;
    let (status, answer) = s.send_batch().await;
    assert_eq!(status, 200, "{answer}");
    let batch_id = answer["id"].as_i64().expect("batch id");
    let txid = answer["txid"].as_str().expect("txid").to_string();
    let bumped = node
        .call(Some("pool"), "bumpfee", &json!([txid]).to_string())
        .await
        .to_serde();
    let new_txid = bumped["txid"].as_str().expect("replacement").to_string();
    assert_ne!(new_txid, txid);
    let batch = wait_batch(&s, batch_id, "followed the replacement", |b| {
        b["txid"] == new_txid.as_str()
    })
    .await;
    assert!(
        batch["note"]
            .as_str()
            .unwrap_or_default()
            .contains("replaced"),
        "{batch}"
    );
    node.mine(1, &mine_to).await;
    wait_batch(&s, batch_id, "confirmed", |b| b["state"] == "confirmed").await;
    assert_eq!(s.withdrawal(id).await["txid"], new_txid.as_str());
    node.mine(2, &mine_to).await;
    assert_eq!(node.received_sat("recv", &address, 1).await, 30_000);
    assert_eq!(s.ledger_paid_sat(), 30_000);
    let wallet_tx = node
        .call(
            Some("pool"),
            "gettransaction",
            &json!([new_txid]).to_string(),
        )
        .await;
    let wallet_fee = -amount_sat(wallet_tx.get("fee").expect("fee"));
    assert_eq!(
        fees_sat(&s),
        wallet_fee,
        "ledger fee = the replacement's fee"
    );
    let locks = node.call(Some("pool"), "listlockunspent", "[]").await;
    assert_eq!(
        locks.as_arr().map(|l| l.len()),
        Some(0),
        "{}",
        locks.to_text()
    );
    s.daemon.assert_verified();
    s.daemon.assert_wallet_verified();
}
