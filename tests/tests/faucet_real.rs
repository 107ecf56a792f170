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
    let Some((node, mine_to)) = funded_node().await else {
        return;
    };
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

/// A regtest node whose `pool` wallet has a spendable coinbase, and a
/// `recv` wallet; with the address blocks are mined to. `None` when the
/// suite is skipped.
async fn funded_node() -> Option<(Bitcoind, String)> {
    let exe = exe_or_skip(SUITE)?;
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("recv").await;
    let mine_to = node.new_address("pool").await;
    node.mine(101, &mine_to).await;
    Some((node, mine_to))
}

/// A daemon on `node`'s `pool` wallet with the faucet paying every second;
/// `payouts` goes into the `[payouts]` section.
async fn faucet_daemon(node: &Bitcoind, payouts: &str) -> Daemon {
    Daemon::start(DaemonOptions {
        config: config(
            &node.node("pool"),
            "hot",
            payouts,
            "[faucet]\ndifficulty_bits = 8\nbatch_interval_s = 1\n",
        ),
        ..Default::default()
    })
    .await
}

/// Polls faucet batch `id` until its state is `state`; returns its note.
async fn wait_faucet_batch(d: &Daemon, id: i64, state: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = d.sql_text(&format!(
            "SELECT state || '|' || COALESCE(note, '') FROM faucet_batches WHERE id = {id}"
        ));
        if let Some(note) = now.strip_prefix(&format!("{state}|")) {
            return note.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "faucet batch {id} never {state}: {now}\n{}",
            d.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn account_msat(d: &Daemon, name: &str) -> i64 {
    d.sql_i64(&format!(
        "SELECT COALESCE((SELECT balance_msat FROM accounts WHERE name = '{name}'), 0)"
    ))
}

/// A paid faucet payment whose input a mined conflict spends goes back to
/// `needs_attention` naming the conflict, with its money still counted as
/// sent (the conflict could reorg away). Failed is refused while the
/// conflict is shallower than `payouts.confirmations`; once it is deep,
/// Failed cancels the request, returns its hold to the budget and reverses
/// the fee: ledger = wallet, nothing paid.
#[tokio::test(flavor = "multi_thread")]
async fn a_conflicted_faucet_payment_is_reopened_and_failed_only_when_the_conflict_is_deep() {
    let Some((node, mine_to)) = funded_node().await else {
        return;
    };
    let d = faucet_daemon(&node, "confirmations = 2").await;
    let address = node.new_address("recv").await;
    let id = d.faucet_claim(&address).await;
    let txid = wait_paid(&d, id).await;
    let batch = d.sql_i64(&format!(
        "SELECT batch_id FROM faucet_requests WHERE id = {id}"
    ));
    assert!(account_msat(&d, "fees:network") > 0, "fee booked when paid");

    let elsewhere = node.new_address("pool").await;
    let conflict = node
        .spend_first_input_elsewhere("pool", &txid, &elsewhere)
        .await;
    node.mine(1, &mine_to).await;
    let note = wait_faucet_batch(&d, batch, "needs_attention").await;
    assert!(note.contains(&conflict) && note.contains(&txid), "{note}");
    assert_eq!(
        account_msat(&d, "faucet:sent"),
        AMOUNT_SAT * 1000,
        "not returned yet"
    );
    let resolve = format!("/api/admin/faucet/batches/{batch}/resolve");
    for outcome in ["failed", "retry"] {
        let (status, refused) = d
            .admin("POST", &resolve, Some(&json!({"outcome": outcome})))
            .await;
        assert_eq!(status, 409, "{outcome}: {refused}");
        assert!(
            refused.to_string().contains("only 1 deep"),
            "{outcome}: {refused}"
        );
    }
    d.assert_verified();

    node.mine(1, &mine_to).await;
    let (status, resolved) = d
        .admin("POST", &resolve, Some(&json!({"outcome": "failed"})))
        .await;
    assert_eq!(status, 200, "{resolved}");
    let (_, request) = d.get(&format!("/api/faucet/requests/{id}")).await;
    assert_eq!(request["state"], "cancelled", "{request}");
    assert_eq!(account_msat(&d, "faucet:sent"), 0);
    assert_eq!(account_msat(&d, "faucet:held"), 0);
    assert_eq!(
        account_msat(&d, "fees:network"),
        0,
        "the dead payment's fee is reversed"
    );
    assert_eq!(node.received_sat("recv", &address, 0).await, 0);
    d.assert_verified();
    d.assert_wallet_verified();
}

/// The wallet's owner bumps a faucet payment's fee: the batch follows the
/// replacement (txid, bytes, fee), it is final at the configured depth, and
/// the tester is paid once.
#[tokio::test(flavor = "multi_thread")]
async fn a_bumped_faucet_payment_is_followed_to_final() {
    let Some((node, mine_to)) = funded_node().await else {
        return;
    };
    let d = faucet_daemon(&node, "confirmations = 2").await;
    let address = node.new_address("recv").await;
    let id = d.faucet_claim(&address).await;
    let txid = wait_paid(&d, id).await;
    let batch = d.sql_i64(&format!(
        "SELECT batch_id FROM faucet_requests WHERE id = {id}"
    ));
    let bumped = node
        .call(Some("pool"), "bumpfee", &json!([txid]).to_string())
        .await
        .to_serde();
    let new_txid = bumped["txid"].as_str().expect("replacement").to_string();
    let deadline = Instant::now() + DEADLINE;
    while d.sql_text(&format!(
        "SELECT txid FROM faucet_batches WHERE id = {batch}"
    )) != new_txid
    {
        assert!(
            Instant::now() < deadline,
            "replacement never followed\n{}",
            d.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, request) = d.get(&format!("/api/faucet/requests/{id}")).await;
    assert_eq!(request["txid"], new_txid.as_str(), "{request}");
    node.mine(2, &mine_to).await;
    let deadline = Instant::now() + DEADLINE;
    while d.sql_i64(&format!(
        "SELECT COUNT(*) FROM faucet_batches WHERE id = {batch} AND final_at IS NOT NULL AND confirmations >= 2"
    )) == 0
    {
        assert!(Instant::now() < deadline, "never final\n{}", d.log_tail());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(node.received_sat("recv", &address, 1).await, AMOUNT_SAT);
    let wallet_tx = node
        .call(
            Some("pool"),
            "gettransaction",
            &json!([new_txid]).to_string(),
        )
        .await;
    let wallet_fee = -amount_sat(wallet_tx.get("fee").expect("fee"));
    assert_eq!(
        account_msat(&d, "fees:network"),
        wallet_fee * 1000,
        "ledger fee = the replacement's fee"
    );
    d.assert_verified();
    d.assert_wallet_verified();
}

/// Requests queued together are paid in one transaction by the real
/// wallet: one output per address, the ledger's sent = what the receivers
/// got, the fee = the wallet's, the TUI's faucet status and the metrics
/// agree, and `verify --wallet` is clean. (Ported from `faucet_rules`,
/// where the simulated wallet paid.)
#[tokio::test(flavor = "multi_thread")]
async fn queued_requests_are_paid_in_one_transaction_by_the_real_wallet() {
    let Some((node, mine_to)) = funded_node().await else {
        return;
    };
    // Rounds every 5 s: the three claims below land in one round.
    let d = Daemon::start(DaemonOptions {
        config: config(
            &node.node("pool"),
            "hot",
            "",
            "[faucet]\ndifficulty_bits = 8\nbatch_interval_s = 5\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        ),
        ..Default::default()
    })
    .await;
    let mut claims = Vec::new();
    for i in 0..3 {
        let address = node.new_address("recv").await;
        let id = d
            .faucet_claim_from(&address, Some(&format!("192.0.2.{}", i + 1)))
            .await;
        claims.push((id, address));
    }
    let mut txids = Vec::new();
    for (id, _) in &claims {
        txids.push(wait_paid(&d, *id).await);
    }
    txids.dedup();
    // A round may fall between two claims: at most two transactions.
    assert!(txids.len() <= 2, "{txids:?}");
    node.mine(1, &mine_to).await;
    for (_, address) in &claims {
        assert_eq!(node.received_sat("recv", address, 1).await, AMOUNT_SAT);
    }
    assert_eq!(account_msat(&d, "faucet:sent"), 3 * AMOUNT_SAT * 1000);
    assert_eq!(account_msat(&d, "faucet:held"), 0);
    let mut wallet_fees_sat = 0;
    for txid in &txids {
        let tx = node
            .call(Some("pool"), "gettransaction", &json!([txid]).to_string())
            .await;
        wallet_fees_sat += -amount_sat(tx.get("fee").expect("fee"));
    }
    assert_eq!(account_msat(&d, "fees:network"), wallet_fees_sat * 1000);
    let mut control = d.control().await;
    match control
        .request(pooldesk_proto::control::Request::FaucetStatus)
        .await
        .unwrap()
    {
        pooldesk_proto::control::Outcome::Ok(pooldesk_proto::control::Response::Faucet(s)) => {
            assert!(s.enabled);
            assert_eq!(s.spent_today_sat, 3 * AMOUNT_SAT);
            assert!(s.queued.is_empty());
            assert_eq!(s.recent.len(), 3);
            assert!(s.recent.iter().all(|r| r.state == "paid"));
        }
        other => panic!("faucet status: {other:?}"),
    }
    let metrics = d.metrics_text().await;
    assert!(
        metrics.contains("pooldesk_faucet_requests_total{state=\"queued\"} 3"),
        "{metrics}"
    );
    d.assert_verified();
    d.assert_wallet_verified();
}
