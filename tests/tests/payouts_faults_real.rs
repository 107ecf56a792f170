//! Transport faults between the daemon and a REAL regtest Bitcoin Core:
//! the daemon reaches the node through [`FaultProxy`], which loses, cuts or
//! replaces the answer to the spending call after the node executed it.
//! Every scenario ends with the receiving wallet paid exactly once, the
//! ledger equal to the wallet (amounts and fee), and `verify` clean.
//!
//! Runs with `--test-threads 2`; each test has its own node (a fault test
//! must know every call made to it). Without `BITCOIND_EXE` the suite says
//! why on stderr; with `CI=true` it fails.

use std::time::Duration;

use pooldesk_e2e::bitcoind::{Bitcoind, exe_or_skip};
use pooldesk_e2e::faultproxy::{Fault, FaultProxy};
use pooldesk_e2e::payouts::{Node, Setup};
use pooldesk_e2e::standin::client::amount_sat;
use serde_json::json;

const SUITE: &str = "payouts_faults_real";

/// The calls that can spend a hot batch: `sendmany` today, the raw
/// transaction once batches are signed before broadcast. A rule naming both
/// survives that switch.
const SPEND: &[&str] = &["sendmany", "sendrawtransaction"];

const AMOUNT_BTC: &str = "0.0005";
const AMOUNT_SAT: i64 = 50_000;

/// Generous: a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(90);

struct Real {
    node: Bitcoind,
    proxy: FaultProxy,
    mine_to: String,
}

/// A node with a funded `pool` wallet and an empty `recv` wallet, and a
/// proxy in front of its RPC port; `None` when the suite is skipped.
async fn real() -> Option<Real> {
    let exe = exe_or_skip(SUITE)?;
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("recv").await;
    let mine_to = node.new_address("pool").await;
    node.mine(101, &mine_to).await;
    let proxy = FaultProxy::start(&node.url).await;
    Some(Real {
        node,
        proxy,
        mine_to,
    })
}

impl Real {
    /// A hot daemon that reaches the node only through the proxy, paying a
    /// fresh `recv` address.
    async fn hot(&self) -> Setup {
        let address = self.node.new_address("recv").await;
        let via_proxy = Node {
            url: self.proxy.url(),
            cookie: self.node.cookie.display().to_string(),
            wallet: "pool".into(),
        };
        Setup::with_node(&via_proxy, "hot", "", "", address).await
    }

    /// Spending calls that reached the node.
    fn spends_forwarded(&self) -> usize {
        self.proxy
            .seen()
            .iter()
            .filter(|s| s.forwarded && SPEND.contains(&s.method.as_str()))
            .count()
    }

    /// Sends from the pool wallet to `address`, by the wallet's own record.
    async fn wallet_sends_to(&self, address: &str) -> Vec<(String, i64)> {
        let list = self
            .node
            .call(
                Some("pool"),
                "listtransactions",
                &json!(["*", 1000, 0, true]).to_string(),
            )
            .await;
        list.as_arr()
            .expect("list")
            .iter()
            .filter(|e| {
                e.get("category").and_then(|c| c.as_str()) == Some("send")
                    && e.get("address").and_then(|a| a.as_str()) == Some(address)
            })
            .map(|e| {
                (
                    e.get("txid")
                        .and_then(|t| t.as_str())
                        .expect("txid")
                        .to_string(),
                    -amount_sat(e.get("amount").expect("amount")),
                )
            })
            .collect()
    }

    /// Mines the payout, then checks: the receiver got `paid_sat` exactly
    /// once (one wallet send, nothing left in the mempool to pay it again),
    /// the ledger's paid total and fee equal the wallet's, `verify` clean.
    async fn assert_paid_once(&self, s: &Setup, id: i64, paid_sat: i64) {
        self.node.mine(1, &self.mine_to).await;
        let mempool = self.node.call(None, "getrawmempool", "[]").await.to_serde();
        assert_eq!(mempool, json!([]), "something is still waiting to pay");
        let sends = self.wallet_sends_to(&s.address).await;
        let received = self.node.received_sat("recv", &s.address, 1).await;
        assert_eq!(received, paid_sat, "received; wallet sends: {sends:?}");
        if paid_sat == 0 {
            assert!(sends.is_empty(), "{sends:?}");
            assert_eq!(s.ledger_paid_sat(), 0);
        } else {
            assert_eq!(sends.len(), 1, "paid more than once: {sends:?}");
            let w = s.wait_withdrawal(id, &["confirmed"], LONG).await;
            assert_eq!(w["txid"], sends[0].0.as_str(), "{w}");
            assert_eq!(s.ledger_paid_sat(), received, "ledger paid vs wallet");
            let tx = self
                .node
                .call(
                    Some("pool"),
                    "gettransaction",
                    &json!([sends[0].0]).to_string(),
                )
                .await;
            let fee_sat = -amount_sat(tx.get("fee").expect("fee"));
            assert_eq!(
                s.daemon.sql_i64(
                    "SELECT COALESCE(SUM(balance_msat), 0) / 1000 FROM accounts WHERE name = 'fees:network'"
                ),
                fee_sat,
                "ledger fee vs wallet fee"
            );
        }
        s.daemon.assert_verified();
        s.daemon.assert_wallet_verified();
    }
}

/// The node accepts the spend, then the answer is lost in one of the ways a
/// network loses it; the daemon must find the payment by itself (no admin,
/// no second spend) and record exactly what the wallet did.
async fn answer_lost_after_the_spend(fault: Fault) {
    let Some(r) = real().await else {
        return;
    };
    let s = r.hot().await;
    let id = s.request(AMOUNT_BTC).await;
    s.approve(id).await;
    r.proxy.fault(SPEND, fault, 1);
    let (status, answer) = s.send_batch().await;
    r.proxy.wait_count(SPEND, fault, 1, LONG).await;
    // Reconciled right away from the wallet: the batch is reported sent.
    assert_eq!(status, 200, "{fault:?}: {answer}\n{}", s.daemon.log_tail());
    let w = s.wait_withdrawal(id, &["broadcast"], LONG).await;
    assert!(w["txid"].is_string(), "{w}");
    assert_eq!(r.spends_forwarded(), 1, "{:?}", r.proxy.seen());
    r.assert_paid_once(&s, id, AMOUNT_SAT).await;
    assert_eq!(r.spends_forwarded(), 1, "resent: {:?}", r.proxy.seen());
}

#[tokio::test(flavor = "multi_thread")]
async fn spend_accepted_but_answer_dropped_is_paid_once_and_found() {
    answer_lost_after_the_spend(Fault::DropAnswer).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spend_accepted_but_connection_reset_mid_answer_is_paid_once_and_found() {
    answer_lost_after_the_spend(Fault::ResetMidAnswer).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spend_accepted_but_gateway_answers_502_is_paid_once_and_found() {
    answer_lost_after_the_spend(Fault::StatusAfter(502)).await;
}

/// The answer comes long after the daemon's RPC timeout (3 s in tests).
#[tokio::test(flavor = "multi_thread")]
async fn spend_accepted_but_answer_later_than_the_timeout_is_paid_once_and_found() {
    answer_lost_after_the_spend(Fault::Delay(Duration::from_secs(20))).await;
}

/// A gateway answers 504 before the node saw the broadcast: with the txid
/// and bytes committed first, the daemon sends the same transaction again
/// (never a new one) and the receiver is paid exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_504_before_the_node_resends_the_same_bytes_and_pays_once() {
    let Some(r) = real().await else {
        return;
    };
    let s = r.hot().await;
    let id = s.request(AMOUNT_BTC).await;
    s.approve(id).await;
    r.proxy.fault(SPEND, Fault::StatusBefore(504), 1);
    let (status, answer) = s.send_batch().await;
    r.proxy
        .wait_count(SPEND, Fault::StatusBefore(504), 1, LONG)
        .await;
    // Not accepted yet: the batch keeps its committed transaction.
    assert_eq!(status, 200, "{answer}\n{}", s.daemon.log_tail());
    let committed = answer["txid"].as_str().expect("txid committed").to_string();
    let w = s.wait_withdrawal(id, &["broadcast"], LONG).await;
    assert_eq!(w["txid"], committed.as_str(), "{w}");
    assert!(
        r.proxy.seen().iter().all(|c| c.method != "sendmany"),
        "{:?}",
        r.proxy.seen()
    );
    r.assert_paid_once(&s, id, AMOUNT_SAT).await;
}

/// The node restarts (new cookie, kept-alive connections gone) between
/// approval and payment: the daemon reads the new cookie and pays once.
#[tokio::test(flavor = "multi_thread")]
async fn node_restart_with_a_new_cookie_is_followed() {
    let Some(mut r) = real().await else {
        return;
    };
    let s = r.hot().await;
    let id = s.request(AMOUNT_BTC).await;
    s.approve(id).await;
    r.node.restart().await;
    let (status, answer) = s.send_batch().await;
    assert_eq!(status, 200, "{answer}\n{}", s.daemon.log_tail());
    s.wait_withdrawal(id, &["broadcast"], LONG).await;
    assert_eq!(r.spends_forwarded(), 1, "{:?}", r.proxy.seen());
    r.assert_paid_once(&s, id, AMOUNT_SAT).await;
}
