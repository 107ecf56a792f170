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

/// The daemon talks to the node directly whatever the proxy variables say:
/// a proxy's 502/504 after forwarding a spend would read as a refusal.
#[tokio::test(flavor = "multi_thread")]
async fn the_node_is_reached_directly_whatever_the_proxy_variables_say() {
    let Some((node, mine_to)) = funded_node().await else {
        return;
    };
    // A "proxy" that answers 502 to everything and counts who came.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let visits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = visits.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = proxy.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let env = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .into_iter()
    .map(|k| (k.to_string(), proxy_url.clone()))
    .chain([
        ("NO_PROXY".to_string(), String::new()),
        ("no_proxy".to_string(), String::new()),
    ])
    .collect();
    let address = node.new_address("recv").await;
    let s = Setup::with_node_env(&node.node("pool"), "hot", "", "", address.clone(), env).await;
    let id = s.request("0.0003").await;
    s.approve(id).await;
    let (status, batch) = s.send_batch().await;
    assert_eq!(status, 200, "{batch}\n{}", s.daemon.log_tail());
    assert_eq!(node.received_sat("recv", &address, 0).await, 30_000);
    node.mine(1, &mine_to).await;
    s.wait_withdrawal(id, &["confirmed"], Duration::from_secs(30))
        .await;
    assert_eq!(
        visits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the daemon went through the proxy"
    );
    s.daemon.assert_verified();
}

/// `sendmany` ignores its minconf: a batch waits for its change to confirm
/// rather than chain on it, then pays from confirmed coins only.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_waits_for_change_to_confirm_instead_of_chaining_on_it() {
    let Some((node, mine_to)) = funded_node().await else {
        return;
    };
    let address = node.new_address("recv").await;
    let s = Setup::with_node(&node.node("pool"), "hot", "", "", address.clone()).await;
    // The only mature coin (the first coinbase) pays the first batch; its
    // change is unconfirmed.
    let first = s.request("0.0002").await;
    s.approve(first).await;
    let (status, batch) = s.send_batch().await;
    assert_eq!(status, 200, "{batch}");
    let second = s.request("0.0003").await;
    s.approve(second).await;
    let (status, answer) = s.send_batch().await;
    assert_eq!(status, 409, "the second batch must wait: {answer}");
    assert!(
        answer.to_string().contains("waiting for change to confirm"),
        "{answer}"
    );
    assert_eq!(s.withdrawal(second).await["state"], "approved");
    assert_eq!(node.received_sat("recv", &address, 0).await, 20_000);

    // Confirmed: the second batch goes, with no unconfirmed parent.
    node.mine(1, &mine_to).await;
    let (status, batch) = s.send_batch().await;
    assert_eq!(status, 200, "{batch}");
    let txid = s.withdrawal(second).await["txid"]
        .as_str()
        .expect("txid")
        .to_string();
    let entry = node
        .call(None, "getmempoolentry", &json!([txid]).to_string())
        .await;
    assert_eq!(
        entry
            .get("depends")
            .and_then(|d| d.as_arr())
            .map(|d| d.len()),
        Some(0),
        "the batch spends unconfirmed outputs: {}",
        entry.to_text()
    );
    assert_eq!(node.received_sat("recv", &address, 0).await, 50_000);
    node.mine(1, &mine_to).await;
    s.wait_withdrawal(second, &["confirmed"], Duration::from_secs(30))
        .await;
    s.daemon.assert_verified();
}

/// A definite refusal from Core (`-6`: CreateTransaction failed, here
/// because the fee is above the node's `-maxtxfee`) returns the withdrawal
/// to the queue. A wallet without private keys funds the transaction but
/// cannot sign it: hot batches are built and signed before anything is
/// broadcast (the only spending call, `sendrawtransaction`, comes after the
/// txid is committed), so that failure too provably sent nothing — the
/// withdrawal waits again and the batch says why.
#[tokio::test(flavor = "multi_thread")]
async fn only_documented_error_codes_count_as_nothing_sent() {
    let Some(exe) = exe_or_skip(SUITE) else {
        return;
    };
    // 1,000 sat at most per transaction; the daemon pays 20 sat/vB.
    let node = Bitcoind::start_with(&exe, &["-maxtxfee=0.00001"]).await;
    node.create_wallet("pool").await;
    node.create_wallet("recv").await;
    let mine_to = node.new_address("pool").await;
    node.mine(101, &mine_to).await;
    let address = node.new_address("recv").await;
    let s = Setup::with_node(
        &node.node("pool"),
        "hot",
        "fallback_fee_rate_sat_vb = 20\nmax_fee_rate_sat_vb = 50",
        "",
        address.clone(),
    )
    .await;
    let id = s.request("0.0002").await;
    s.approve(id).await;
    let (status, answer) = s.send_batch().await;
    assert_eq!(status, 502, "{answer}");
    // walletcreatefundedpsbt reports FundTransaction failures as -4
    // (RPC_WALLET_ERROR); funding broadcasts nothing, so whatever the code
    // the batch provably paid nothing.
    assert!(
        answer.to_string().contains("Fee exceeds maximum"),
        "{answer}"
    );
    let w = s.withdrawal(id).await;
    assert_eq!(w["state"], "approved", "{w}");
    assert_eq!(node.received_sat("recv", &address, 0).await, 0);
    s.daemon.assert_verified();

    // -4: a watch-only copy of the pool wallet has the coins but no keys.
    node.call(
        None,
        "createwallet",
        &json!(["watch", true, true, "", false, true]).to_string(),
    )
    .await;
    let descriptors = node.call(Some("pool"), "listdescriptors", "[]").await;
    let imports: Vec<serde_json::Value> = descriptors
        .get("descriptors")
        .and_then(|d| d.as_arr())
        .expect("descriptors")
        .iter()
        .map(|d| {
            let d = d.to_serde();
            let mut import = json!({"desc": d["desc"], "timestamp": 0, "active": d["active"], "internal": d["internal"]});
            if let Some(range) = d.get("range") {
                import["range"] = range.clone();
            }
            import
        })
        .collect();
    let imported = node
        .call(
            Some("watch"),
            "importdescriptors",
            &json!([imports]).to_string(),
        )
        .await;
    assert!(
        !imported.to_text().contains("false"),
        "{}",
        imported.to_text()
    );
    let address2 = node.new_address("recv").await;
    let w = Setup::with_node(&node.node("watch"), "hot", "", "", address2.clone()).await;
    let id = w.request("0.0002").await;
    w.approve(id).await;
    let (status, answer) = w.send_batch().await;
    assert_eq!(status, 502, "{answer}");
    assert!(answer.to_string().contains("could not sign"), "{answer}");
    let row = w.withdrawal(id).await;
    assert_eq!(row["state"], "approved", "{row}");
    let batch = w.batch(1).await;
    assert_eq!(batch["state"], "failed", "{batch}");
    assert!(batch["txid"].is_null(), "{batch}");
    assert_eq!(node.received_sat("recv", &address2, 0).await, 0);
    w.daemon.assert_verified();
}
