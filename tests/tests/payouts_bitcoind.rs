//! The payout flows against a real Bitcoin Core regtest node (`BITCOIND_EXE`,
//! which `contrib/test.sh` obtains with `contrib/ci/bitcoind.sh`): fresh
//! datadir, random ports, descriptor wallets, 101 blocks mined. Without a
//! node the suite says why on stderr and records the skip; with `CI=true`
//! it fails.

use std::time::Duration;

use pooldesk_e2e::bitcoind::{Bitcoind, exe_or_skip};
use pooldesk_e2e::payouts::Setup;
use serde_json::json;

const SUITE: &str = "payouts_bitcoind";

/// A node with a funded `pool` wallet (101 blocks: one spendable coinbase)
/// and an empty `recv` wallet; `None` when the suite is skipped.
async fn funded_node() -> Option<(Bitcoind, String)> {
    let exe = exe_or_skip(SUITE)?;
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("recv").await;
    let mine_to = node.new_address("pool").await;
    node.mine(101, &mine_to).await;
    Some((node, mine_to))
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_and_cold_payouts_against_a_real_regtest_node() {
    let Some((node, mine_to)) = funded_node().await else {
        return;
    };
    let address = node.new_address("recv").await;
    let node_config = node.node("pool");

    // Hot: request, approve, sendmany, confirmation.
    let s = Setup::with_node(&node_config, "hot", "", "", address.clone()).await;
    let id = s.request("0.0005").await;
    s.approve(id).await;
    let (status, batch) = s.send_batch().await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(node.received_sat("recv", &address, 0).await, 50_000);
    node.mine(1, &mine_to).await;
    s.wait_withdrawal(id, &["confirmed"], Duration::from_secs(30))
        .await;
    s.daemon.assert_verified();

    // Cold: PSBT, signed by Core as the offline signer, finalized.
    let address2 = node.new_address("recv").await;
    let c = Setup::with_node(&node_config, "cold", "", "", address2.clone()).await;
    let id = c.request("0.0004").await;
    c.approve(id).await;
    let (status, answer) = c
        .daemon
        .admin("POST", "/api/admin/create_psbt", Some(&json!({})))
        .await;
    assert_eq!(status, 200, "{answer}");
    let psbt = answer["psbt"].as_str().unwrap();
    let signed = node
        .call(
            Some("pool"),
            "walletprocesspsbt",
            &json!([psbt]).to_string(),
        )
        .await;
    let signed = signed
        .get("psbt")
        .and_then(|p| p.as_str())
        .unwrap()
        .to_string();
    let (status, answer) = c
        .daemon
        .admin(
            "POST",
            "/api/admin/finalize_psbt",
            Some(&json!({"psbt_id": answer["psbt_id"], "psbt": signed})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(node.received_sat("recv", &address2, 0).await, 40_000);
    c.daemon.assert_verified();
}
