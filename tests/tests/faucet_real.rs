//! Faucet payments against a real Bitcoin Core regtest node
//! (`BITCOIND_EXE`) follow the payout rules (issue 11, item 9): the wallet
//! funds and signs the transaction, its txid and bytes are committed, and
//! only then is it broadcast. The daemon is killed at every step through its
//! test-only crash hook (`POOLDESK_TEST_CRASH_AT`) and restarted: the
//! receiver is paid exactly once, by the committed transaction when one was
//! committed, and the ledger equals the wallet (amount and fee) with
//! `verify` and `verify --wallet` clean.

use std::time::{Duration, Instant};

use pooldesk_e2e::bitcoind::{Bitcoind, exe_or_skip};
use pooldesk_e2e::daemon::{Daemon, DaemonOptions};
use pooldesk_e2e::payouts::config;
use pooldesk_e2e::standin::client::amount_sat;
use serde_json::json;

const SUITE: &str = "faucet_real";
const CRASH: &str = "POOLDESK_TEST_CRASH_AT";
/// Generous for a loaded 2-core machine; every wait polls for its event.
const DEADLINE: Duration = Duration::from_secs(120);
/// The faucet's default amount (0.0001 BTC).
const AMOUNT_SAT: i64 = 10_000;

async fn mempool(node: &Bitcoind) -> Vec<String> {
    node.call(None, "getrawmempool", "[]")
        .await
        .as_arr()
        .expect("mempool")
        .iter()
        .map(|t| t.as_str().expect("txid").to_string())
        .collect()
}

async fn wait_paid(d: &Daemon, id: i64) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = d.get(&format!("/api/faucet/requests/{id}")).await;
        assert_eq!(status, 200, "{body}");
        if body["state"] == "paid" {
            return body["txid"].as_str().expect("txid").to_string();
        }
        assert!(
            Instant::now() < deadline,
            "request {id} never paid: {body}\n{}",
            d.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The pool wallet's sends to `address`, by txid.
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

#[tokio::test(flavor = "multi_thread")]
async fn a_faucet_payment_is_committed_before_it_leaves_and_a_kill_at_every_step_pays_once() {
    let Some(exe) = exe_or_skip(SUITE) else {
        return;
    };
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("recv").await;
    let mine_to = node.new_address("pool").await;
    node.mine(101, &mine_to).await;
    for step in ["faucet_signed", "faucet_committed", "faucet_broadcast"] {
        let address = node.new_address("recv").await;
        let mut d = Daemon::start(DaemonOptions {
            config: config(
                &node.node("pool"),
                "hot",
                "",
                "[faucet]\ndifficulty_bits = 8\nbatch_interval_s = 1\n",
            ),
            env: vec![(CRASH.to_string(), step.to_string())],
            ..Default::default()
        })
        .await;
        let id = d.faucet_claim(&address).await;
        // The next faucet round dies at `step`.
        d.wait_exited(DEADLINE).await;
        let committed = d.sql_i64(
            "SELECT COUNT(*) FROM faucet_batches WHERE txid IS NOT NULL AND tx_hex IS NOT NULL AND inputs_json IS NOT NULL",
        );
        let pool = mempool(&node).await;
        match step {
            "faucet_signed" => {
                assert_eq!(committed, 0, "{step}: signed, not committed");
                assert!(pool.is_empty(), "{step}: nothing may leave: {pool:?}");
            }
            "faucet_committed" => {
                assert_eq!(committed, 1, "{step}: txid and bytes committed");
                assert!(
                    pool.is_empty(),
                    "{step}: committed, not broadcast: {pool:?}"
                );
            }
            _ => {
                assert_eq!(committed, 1, "{step}");
                assert_eq!(pool.len(), 1, "{step}: the committed transaction left");
            }
        }
        let recorded = d.sql_i64("SELECT COUNT(*) FROM faucet_requests WHERE state = 'paid'");
        assert_eq!(recorded, 0, "{step}: not recorded paid before the crash");
        d.opts.env.retain(|(k, _)| k != CRASH);
        d.start_again().await;
        let txid = wait_paid(&d, id).await;
        if step != "faucet_signed" {
            // The committed bytes paid: never rebuilt.
            assert_eq!(
                d.sql_i64(&format!(
                    "SELECT COUNT(*) FROM faucet_batches WHERE txid = '{txid}' AND state = 'paid' AND tx_hex IS NOT NULL"
                )),
                1,
                "{step}"
            );
        }
        node.mine(1, &mine_to).await;
        assert!(
            mempool(&node).await.is_empty(),
            "{step}: a second payment waits"
        );
        assert_eq!(
            sends_to(&node, &address).await,
            vec![txid.clone()],
            "{step}"
        );
        assert_eq!(
            node.received_sat("recv", &address, 1).await,
            AMOUNT_SAT,
            "{step}: paid exactly once"
        );
        assert_eq!(
            d.sql_i64("SELECT balance_msat FROM accounts WHERE name = 'faucet:sent'"),
            AMOUNT_SAT * 1000
        );
        let wallet_tx = node
            .call(Some("pool"), "gettransaction", &json!([txid]).to_string())
            .await;
        let wallet_fee = -amount_sat(wallet_tx.get("fee").expect("fee"));
        assert_eq!(
            d.sql_i64("SELECT balance_msat FROM accounts WHERE name = 'fees:network'"),
            wallet_fee * 1000,
            "{step}: ledger fee = wallet fee"
        );
        let locks = node.call(Some("pool"), "listlockunspent", "[]").await;
        assert_eq!(
            locks.as_arr().map(|l| l.len()),
            Some(0),
            "{step}: {}",
            locks.to_text()
        );
        d.assert_verified();
        d.assert_wallet_verified();
    }
}
