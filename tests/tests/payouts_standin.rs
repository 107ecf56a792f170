//! Payouts end to end against the regtest-faithful stand-in: hot and cold,
//! approval over HTTP and the control socket, policies, tampered PSBTs,
//! replacements and drops, and the never-pay-twice crash-point sweep.
//!
//! Issue 11 retires the stand-in wherever a real node can produce the
//! behaviour. Already on the real node, and deleted here: node restart with
//! a new cookie and the lost answer to a spend (dropped, reset mid-answer,
//! a gateway's 502, a timeout) and RPC faults around the spend in
//! `payouts_faults_real.rs`; hot and cold round trips, proxy variables,
//! change chaining and error classes in `payouts_bitcoind.rs`; kills at
//! every step of a hot and a cold batch and a payout dropped from the
//! mempool in `payouts_txid.rs`; fee bumps, reorgs and mined conflicts in
//! `payouts_finality_real.rs`. What stays: a node that spends and then
//! stops answering altogether while ingest goes on (`TimeoutAfterSpend` +
//! `set_unresponsive`: stand-in only), a cold broadcast whose answer
//! times out after spending (not yet ported to `faultproxy`), and admin and
//! policy flows (approval, rejection, merging, the seed body, policies,
//! tampered PSBTs) that use the wallet only as a counterparty, not yet
//! ported.

use std::time::{Duration, Instant};

use pooldesk_e2e::payouts::Setup;
use pooldesk_e2e::standin::Fault;
use pooldesk_e2e::standin::client::RpcClient;
use pooldesk_proto::control::{Outcome, Request, Response};
use serde_json::{Value, json};

const AMOUNT_SAT: u64 = 50_000;
const AMOUNT_BTC: &str = "0.0005";
const LONG: Duration = Duration::from_secs(30);

/// After every scenario: what the wallet paid equals what the ledger says
/// was paid, and every invariant holds.
fn assert_consistent(s: &Setup) {
    let paid_on_chain = s.standin().received_by(&s.address) as i64;
    assert_eq!(
        s.ledger_paid_sat(),
        paid_on_chain,
        "ledger paid vs wallet paid\n{}",
        s.daemon.log_tail()
    );
    s.daemon.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_payout_end_to_end_over_http() {
    let s = Setup::with_standin("hot", "", "").await;
    let before = s.daemon.balance_msat(&s.miner).await;
    let id = s.request(AMOUNT_BTC).await;
    assert_eq!(s.withdrawal(id).await["state"], "requested");
    assert_eq!(
        s.daemon.balance_msat(&s.miner).await,
        before - AMOUNT_SAT as i64 * 1000,
        "the amount is held at once"
    );
    // Not approved: a batch has nothing to send.
    let (status, answer) = s.send_batch().await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("nothing_to_pay"))
    );
    s.approve(id).await;
    let (status, batch) = s.send_batch().await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["state"], "broadcast");
    let txid = batch["txid"].as_str().unwrap().to_string();
    let w = s.withdrawal(id).await;
    assert_eq!(w["state"], "broadcast");
    assert_eq!(w["txid"], txid);
    assert_eq!(s.standin().received_by(&s.address), AMOUNT_SAT);
    // Txid first: funded at an explicit fee rate from confirmed coins,
    // then one broadcast; never sendmany.
    let calls = s.standin().calls();
    let funded: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "walletcreatefundedpsbt")
        .collect();
    assert_eq!(funded.len(), 1);
    let options = &funded[0].params[3];
    assert!(
        options["fee_rate"].as_u64().unwrap() >= 1,
        "explicit fee_rate in sat/vB: {options}"
    );
    assert_eq!(options["minconf"], 1, "{options}");
    assert_eq!(s.standin().count_calls("sendrawtransaction"), 1);
    assert_eq!(s.standin().count_calls("sendmany"), 0);
    assert_consistent(&s);
    // The fee is recorded.
    let fees = s
        .daemon
        .sql_i64("SELECT balance_msat FROM accounts WHERE name = 'fees:network'");
    assert!(fees > 0);
    // Confirmation tracked.
    s.standin().mine(1);
    let w = s.wait_withdrawal(id, &["confirmed"], LONG).await;
    assert_eq!(w["txid"], txid);
    assert_consistent(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_and_batch_over_the_control_socket_are_audited_with_the_uid() {
    let s = Setup::with_standin("hot", "", "").await;
    let id = s.request(AMOUNT_BTC).await;
    let mut control = s.daemon.control().await;
    match control
        .request(Request::ApproveWithdrawals { ids: vec![id] })
        .await
        .unwrap()
    {
        Outcome::Ok(Response::Approvals(results)) => assert!(results[0].ok, "{results:?}"),
        other => panic!("{other:?}"),
    }
    match control
        .request(Request::SendBatch {
            withdrawal_ids: vec![],
        })
        .await
        .unwrap()
    {
        Outcome::Ok(Response::Batch(result)) => assert_eq!(result.batch.state, "broadcast"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.standin().received_by(&s.address), AMOUNT_SAT);
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    match control
        .request(Request::AuditPage {
            before_id: None,
            limit: Some(50),
        })
        .await
        .unwrap()
    {
        Outcome::Ok(Response::Audit(page)) => {
            let approve = page
                .entries
                .iter()
                .find(|e| e.action == "approve")
                .expect("approve audited");
            assert_eq!(approve.actor, format!("uid:{uid}"));
            assert!(
                page.entries
                    .iter()
                    .any(|e| e.action == "create_batch" && e.actor == format!("uid:{uid}"))
            );
        }
        other => panic!("{other:?}"),
    }
    let w = s.withdrawal(id).await;
    assert_eq!(w["decided_by"], format!("uid:{uid}"));
    assert_consistent(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn reject_returns_the_money_and_needs_a_reason() {
    let s = Setup::with_standin("hot", "", "").await;
    let before = s.daemon.balance_msat(&s.miner).await;
    let id = s.request(AMOUNT_BTC).await;
    let (status, _) = s
        .daemon
        .admin(
            "POST",
            &format!("/api/admin/withdrawals/{id}/reject"),
            Some(&json!({"reason": " "})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, w) = s
        .daemon
        .admin(
            "POST",
            &format!("/api/admin/withdrawals/{id}/reject"),
            Some(&json!({"reason": "address looks wrong"})),
        )
        .await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["state"], "rejected");
    assert_eq!(s.daemon.balance_msat(&s.miner).await, before);
    // A rejected withdrawal cannot be approved.
    let (status, _) = s
        .daemon
        .admin(
            "POST",
            &format!("/api/admin/withdrawals/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(status, 409);
    assert_consistent(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn same_address_outputs_are_merged_into_one() {
    let s = Setup::with_standin("hot", "", "").await;
    let a = s.request("0.0002").await;
    let b = s.request("0.0003").await;
    s.approve(a).await;
    s.approve(b).await;
    let (status, batch) = s.send_batch().await;
    assert_eq!(status, 200, "{batch}");
    let call = s
        .standin()
        .calls()
        .into_iter()
        .find(|c| c.method == "walletcreatefundedpsbt")
        .unwrap();
    // One-key objects, one per output.
    let outputs = call.params[1].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(outputs[0][&s.address].to_string(), "0.0005");
    assert_eq!(s.standin().received_by(&s.address), 50_000);
    assert_consistent(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_batch_payout_body_is_exact_and_all_or_nothing() {
    let s = Setup::with_standin("hot", "", "").await;
    let other = s
        .standin()
        .new_external_address(pooldesk_e2e::standin::AddrKind::P2tr);
    s.daemon.issue_key("second").await;
    s.fund("second", 30_000).await;
    let before = (
        s.daemon.balance_msat(&s.miner).await,
        s.daemon.balance_msat("second").await,
    );
    let refuse = |body: Value| {
        let d = &s.daemon;
        async move {
            d.admin("POST", "/api/admin/batch_payout", Some(&body))
                .await
        }
    };
    for (body, why) in [
        (
            json!({"payments": [{"miner_id": s.miner, "to_address": s.address, "amount": 0.000100001}]}),
            "decimal",
        ),
        (
            json!({"payments": [{"miner_id": s.miner, "to_address": s.address, "amount": 0.0001}, {"miner_id": "second", "to_address": other, "amount": 0.001}]}),
            "second",
        ),
        (
            json!({"payments": [{"miner_id": "nobody", "to_address": s.address, "amount": 0.0001}]}),
            "nobody",
        ),
        (
            json!({"payments": [{"miner_id": s.miner, "to_address": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "amount": 0.0001}]}),
            "regtest",
        ),
        (
            json!({"payments": [{"miner_id": s.miner, "to_address": s.address, "amount": -0.0001}]}),
            "negative",
        ),
        (json!({"payments": []}), "empty"),
    ] {
        let (status, answer) = refuse(body).await;
        assert_eq!(status, 422, "{why}: {answer}");
        assert!(answer["message"].is_string());
    }
    assert_eq!(
        (
            s.daemon.balance_msat(&s.miner).await,
            s.daemon.balance_msat("second").await
        ),
        before,
        "nothing moved"
    );
    assert_eq!(s.standin().count_calls("sendmany"), 0);
    // The seed's body, amount as a JSON number, paid as one batch.
    let (status, answer) = refuse(json!({"payments": [
        {"miner_id": s.miner, "to_address": s.address, "amount": 0.0001},
        {"miner_id": "second", "to_address": other, "amount": "0.00020000"},
    ]}))
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "broadcast");
    assert_eq!(s.standin().received_by(&s.address), 10_000);
    assert_eq!(s.standin().received_by(&other), 20_000);
    assert_eq!(s.standin().count_calls("sendrawtransaction"), 1);
    let paid_on_chain =
        (s.standin().received_by(&s.address) + s.standin().received_by(&other)) as i64;
    assert_eq!(s.ledger_paid_sat(), paid_on_chain);
    s.daemon.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_minimum_address_fee_rate_solvency_daily_cap() {
    let s = Setup::with_standin(
        "hot",
        "daily_cap_btc = \"0.0007\"\nmax_fee_rate_sat_vb = 30",
        "",
    )
    .await;
    // Below the minimum payout (0.0001).
    let (status, answer) = s
        .daemon
        .signed("POST", "/api/withdraw", &s.miner, &s.key, &json!({"miner_id": s.miner, "amount": "0.00005", "event_id": "small", "ts": pooldesk_e2e::daemon::now_s()}))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("below_minimum"))
    );
    // No payout address.
    let key = s.daemon.issue_key("noaddr").await;
    s.fund("noaddr", 20_000).await;
    let (status, answer) = s
        .daemon
        .signed("POST", "/api/withdraw", "noaddr", &key, &json!({"miner_id": "noaddr", "amount": "0.0001", "event_id": "x", "ts": pooldesk_e2e::daemon::now_s()}))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("no_payout_address"))
    );
    // More than the balance.
    let (status, answer) = s
        .daemon
        .signed("POST", "/api/withdraw", &s.miner, &s.key, &json!({"miner_id": s.miner, "amount": "0.002", "event_id": "big", "ts": pooldesk_e2e::daemon::now_s()}))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("insufficient_funds"))
    );

    // Fee estimate above the maximum: payouts wait.
    let id = s.request(AMOUNT_BTC).await;
    s.approve(id).await;
    s.standin().set_fee_estimate(Some(80));
    let (status, answer) = s.send_batch().await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("payouts_waiting")),
        "{answer}"
    );
    assert!(answer["message"].as_str().unwrap().contains("fee"));
    s.standin().set_fee_estimate(Some(5));
    // Daily cap 0.0007: 0.0005 fits, the next 0.0005 waits.
    let (status, batch) = s.send_batch().await;
    assert_eq!(status, 200, "{batch}");
    let id2 = s.request(AMOUNT_BTC).await;
    s.approve(id2).await;
    let (status, answer) = s.send_batch().await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("nothing_to_pay")),
        "{answer}"
    );
    assert!(answer["message"].as_str().unwrap().contains("daily cap"));
    assert_consistent(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn wallet_shortfall_pauses_payouts_with_an_alert() {
    let s = Setup::with_standin("hot", "", "").await;
    let id = s.request(AMOUNT_BTC).await;
    s.approve(id).await;
    s.standin().drain_wallet();
    let (status, answer) = s.send_batch().await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("payouts_waiting")),
        "{answer}"
    );
    assert!(
        answer["message"].as_str().unwrap().contains("shortfall"),
        "{answer}"
    );
    assert_eq!(
        s.standin().count_calls("sendmany"),
        0,
        "nothing was attempted"
    );
    assert_eq!(s.withdrawal(id).await["state"], "approved");
    assert_consistent(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn new_address_waits_for_the_delay() {
    let s = Setup::with_standin("hot", "new_address_delay_s = 3600", "").await;
    let id = s.request(AMOUNT_BTC).await;
    s.approve(id).await;
    let (status, answer) = s.send_batch().await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("nothing_to_pay"))
    );
    assert!(
        answer["message"].as_str().unwrap().contains("delay"),
        "{answer}"
    );
    assert_eq!(s.standin().count_calls("sendmany"), 0);
}

// ---- cold mode ---------------------------------------------------------------

async fn signed_psbt(s: &Setup, psbt: &str) -> String {
    let rpc = RpcClient::for_standin(s.standin());
    let result = rpc
        .call(
            Some("pool"),
            "walletprocesspsbt",
            &json!([psbt]).to_string(),
        )
        .await
        .expect("offline signer");
    result
        .get("psbt")
        .and_then(|p| p.as_str())
        .unwrap()
        .to_string()
}

async fn cold_batch(s: &Setup) -> (i64, String, Value) {
    let id = s.request(AMOUNT_BTC).await;
    s.approve(id).await;
    let (status, answer) = s
        .daemon
        .admin(
            "POST",
            "/api/admin/create_psbt",
            Some(&json!({"withdrawal_ids": []})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let psbt_id = answer["psbt_id"].as_i64().unwrap();
    (
        psbt_id,
        answer["psbt"].as_str().unwrap().to_string(),
        answer["review"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn cold_round_trip_review_sign_offline_finalize_broadcast() {
    let s = Setup::with_standin("cold", "", "").await;
    let (psbt_id, psbt, review) = cold_batch(&s).await;
    // The review maps outputs to withdrawals and recognises the change.
    let outputs = review["outputs"].as_array().unwrap();
    let paid: Vec<_> = outputs
        .iter()
        .filter(|o| o["role"] == "withdrawal")
        .collect();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["address"], s.address);
    assert_eq!(paid[0]["amount_sat"], AMOUNT_SAT);
    assert!(outputs.iter().any(|o| o["role"] == "change"), "{review}");
    assert!(review["fee_sat"].as_i64().unwrap() > 0);
    assert!(review["fee_rate_milli_sat_vb"].as_u64().unwrap() >= 1000);
    assert!(
        review["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["verified"] == true),
        "{review}"
    );
    assert_eq!(review["signatures"]["complete"], false);
    assert!(
        review["warnings"].as_array().unwrap().is_empty(),
        "{review}"
    );
    // Inputs are locked in the wallet.
    assert_eq!(s.standin().count_calls("walletcreatefundedpsbt"), 1);
    let (status, again) = s
        .daemon
        .admin("GET", &format!("/api/admin/psbt/{psbt_id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["outputs"], review["outputs"]);
    // Offline signing (Bitcoin Core's walletprocesspsbt as the signer).
    let signed = signed_psbt(&s, &psbt).await;
    let (status, answer) = s
        .daemon
        .admin(
            "POST",
            "/api/admin/finalize_psbt",
            Some(&json!({"psbt_id": psbt_id, "psbt": signed})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["txid"].is_string());
    assert_eq!(s.standin().received_by(&s.address), AMOUNT_SAT);
    assert_eq!(s.standin().count_calls("testmempoolaccept"), 1);
    assert_consistent(&s);
    // Finalizing again changes nothing.
    let (status, _) = s
        .daemon
        .admin(
            "POST",
            "/api/admin/finalize_psbt",
            Some(&json!({"psbt_id": psbt_id})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(s.standin().received_by(&s.address), AMOUNT_SAT);
}

fn tamper(psbt_b64: &str, f: impl FnOnce(&mut bitcoin::psbt::Psbt)) -> String {
    use std::str::FromStr;
    let mut psbt = bitcoin::psbt::Psbt::from_str(psbt_b64).unwrap();
    f(&mut psbt);
    psbt.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_signed_psbts_are_refused_and_nothing_is_broadcast() {
    let s = Setup::with_standin("cold", "", "").await;
    let (psbt_id, psbt, review) = cold_batch(&s).await;
    let pay_index = review["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["role"] == "withdrawal")
        .unwrap()["index"]
        .as_u64()
        .unwrap() as usize;
    let change_index = review["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["role"] == "change")
        .unwrap()["index"]
        .as_u64()
        .unwrap() as usize;
    let attacker = bitcoin::Address::from_str_unchecked(
        &s.standin()
            .new_external_address(pooldesk_e2e::standin::AddrKind::P2tr),
    );
    let cases: Vec<(&str, String)> = vec![
        (
            "altered output",
            tamper(&psbt, |p| {
                p.unsigned_tx.output[pay_index].script_pubkey = attacker.script_pubkey()
            }),
        ),
        (
            "changed amount",
            tamper(&psbt, |p| {
                let v = p.unsigned_tx.output[pay_index].value;
                p.unsigned_tx.output[pay_index].value = v + bitcoin::Amount::from_sat(1000);
                let c = p.unsigned_tx.output[change_index].value;
                p.unsigned_tx.output[change_index].value = c - bitcoin::Amount::from_sat(1000);
            }),
        ),
        (
            "extra output",
            tamper(&psbt, |p| {
                p.unsigned_tx.output.push(bitcoin::TxOut {
                    value: bitcoin::Amount::from_sat(5000),
                    script_pubkey: attacker.script_pubkey(),
                });
                p.outputs.push(Default::default());
                let c = p.unsigned_tx.output[change_index].value;
                p.unsigned_tx.output[change_index].value = c - bitcoin::Amount::from_sat(5000);
            }),
        ),
        (
            "fee above the limit",
            tamper(&psbt, |p| {
                let c = p.unsigned_tx.output[change_index].value;
                p.unsigned_tx.output[change_index].value = c - bitcoin::Amount::from_sat(20_000);
            }),
        ),
    ];
    for (what, tampered) in cases {
        let signed = signed_psbt(&s, &tampered).await;
        let (status, answer) = s
            .daemon
            .admin(
                "POST",
                "/api/admin/finalize_psbt",
                Some(&json!({"psbt_id": psbt_id, "psbt": signed})),
            )
            .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (422, Some("psbt_mismatch")),
            "{what}: {answer}"
        );
        let diffs = answer["differences"].as_array().unwrap();
        assert!(!diffs.is_empty(), "{what}");
        println!("{what}: {diffs:?}");
    }
    assert_eq!(s.standin().count_calls("sendrawtransaction"), 0);
    assert_eq!(s.standin().count_calls("testmempoolaccept"), 0);
    assert_eq!(s.standin().count_calls("finalizepsbt"), 0);
    let (_, review_after) = s
        .daemon
        .admin("GET", &format!("/api/admin/psbt/{psbt_id}"), None)
        .await;
    assert_eq!(
        review_after["state"], "unsigned",
        "a refused import changes nothing"
    );
    // The genuine signature still goes through.
    let signed = signed_psbt(&s, &psbt).await;
    let (status, answer) = s
        .daemon
        .admin(
            "POST",
            "/api/admin/finalize_psbt",
            Some(&json!({"psbt_id": psbt_id, "psbt": signed})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(s.standin().received_by(&s.address), AMOUNT_SAT);
    assert_consistent(&s);
}

trait FromStrUnchecked {
    fn from_str_unchecked(s: &str) -> bitcoin::Address;
}

impl FromStrUnchecked for bitcoin::Address {
    fn from_str_unchecked(s: &str) -> bitcoin::Address {
        use std::str::FromStr;
        bitcoin::Address::from_str(s).unwrap().assume_checked()
    }
}

// ---- dead node ---------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn dead_node_mid_batch_ingest_unaffected_then_resolves_without_double_payment() {
    let s = Setup::with_standin("hot", "", "").await;
    let id = s.request(AMOUNT_BTC).await;
    s.approve(id).await;
    // The node spends, then stops answering altogether.
    s.standin().inject(Fault::TimeoutAfterSpend {
        method: "sendrawtransaction".into(),
    });
    let send = {
        let url = s.daemon.url.clone();
        let key = s.daemon.admin_key.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{url}/api/admin/send_batch"))
                .header("x-api-key", key)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.standin().set_unresponsive(true);
    // Ingest keeps working while the node is dead.
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        let started = Instant::now();
        let (status, _) = s.daemon.post_report("other", "w", 1).await;
        assert_eq!(status, 200);
        worst = worst.max(started.elapsed());
    }
    println!("worst ingest latency with the node dead: {worst:?}");
    let _ = send.await;
    assert_eq!(
        s.withdrawal(id).await["state"],
        "batched",
        "outcome unknown: waiting, not resent"
    );
    s.standin().set_unresponsive(false);
    let w = s.wait_withdrawal(id, &["broadcast"], LONG).await;
    assert!(w["txid"].is_string());
    assert_eq!(s.standin().received_by(&s.address), AMOUNT_SAT);
    assert_consistent(&s);
}

// ---- the crash-point sweep: never pay twice ------------------------------------

/// Cold batch: the broadcast spends, then the node does not answer.
/// Stand-in only until ported to `faultproxy` (its real-node lost-answer
/// tests cover the hot spend); the cold kills are in `payouts_txid`.
#[tokio::test(flavor = "multi_thread")]
async fn cold_broadcast_that_times_out_after_spending_is_paid_once() {
    // The broadcast spends, then the node does not answer.
    {
        let s = Setup::with_standin("cold", "", "").await;
        let (psbt_id, psbt, _) = cold_batch(&s).await;
        let signed = signed_psbt(&s, &psbt).await;
        s.standin().inject(Fault::TimeoutAfterSpend {
            method: "sendrawtransaction".into(),
        });
        let (status, _) = s
            .daemon
            .admin(
                "POST",
                "/api/admin/finalize_psbt",
                Some(&json!({"psbt_id": psbt_id, "psbt": signed})),
            )
            .await;
        assert_eq!(status, 502, "an unknown outcome is reported, not hidden");
        let withdrawal_id = s.daemon.sql_i64("SELECT MIN(id) FROM withdrawals");
        s.wait_withdrawal(withdrawal_id, &["broadcast"], LONG).await;
        assert_eq!(s.standin().received_by(&s.address), AMOUNT_SAT);
        assert_consistent(&s);
    }
}
