//! The automatic batch worker against a real Bitcoin Core regtest node
//! (`BITCOIND_EXE`), with `payouts.batch_interval_s = 1` and
//! `payouts.auto_withdraw = true` (every other payout suite pins one hour):
//! miners whose balance reached the threshold get a withdrawal and are paid
//! with nobody asking, those below it or without an address are not;
//! `auto_approve_below_btc` approves small withdrawals by itself and leaves
//! larger ones to an admin; `max_outputs_per_batch` caps a batch and the
//! rest go in the next; pausing payouts (admin HTTP or control socket)
//! stops new batches, resuming starts them again. The worker is waited on
//! by polling state with generous deadlines, never by sleeping for it.
//! Each scenario ends with ledger = wallet and `verify` / `verify --wallet`
//! clean.

use std::time::{Duration, Instant};

use pooldesk_e2e::bitcoind::{Bitcoind, exe_or_skip};
use pooldesk_e2e::daemon::{Daemon, DaemonOptions};
use pooldesk_e2e::payouts::{Setup, config};
use pooldesk_e2e::standin::client::amount_sat;
use pooldesk_proto::control::{Outcome, Request, Response};
use serde_json::{Value, json};

const SUITE: &str = "payouts_auto_real";
/// Generous for a loaded 2-core machine; every wait polls for its event.
const DEADLINE: Duration = Duration::from_secs(180);

/// A node whose `pool` wallet has `mature` spendable coinbases and a
/// `recv` wallet, and a hot-mode daemon on it with the automatic worker
/// ticking every second (`payouts` lines added to `[payouts]`). `None`
/// when the suite is skipped.
async fn start(payouts: &str, mature: u32) -> Option<(Bitcoind, String, Setup)> {
    let exe = exe_or_skip(SUITE)?;
    let node = Bitcoind::start(&exe).await;
    node.create_wallet("pool").await;
    node.create_wallet("recv").await;
    let mine_to = node.new_address("pool").await;
    node.mine(100 + mature, &mine_to).await;
    let payouts = format!("batch_interval_s = 1\nauto_withdraw = true\n{payouts}");
    let daemon = Daemon::start(DaemonOptions {
        config: config(&node.node("pool"), "hot", &payouts, ""),
        ..Default::default()
    })
    .await;
    // `Setup` for its helpers; its own miner is not used.
    let setup = Setup {
        standin: None,
        daemon,
        miner: String::new(),
        key: String::new(),
        address: String::new(),
    };
    Some((node, mine_to, setup))
}

/// A miner with a key, `sat` credited by a pool report, and (when
/// `address` is set) a payout address in the `recv` wallet. Funded first,
/// so the worker sees the whole balance once the address makes it payable.
async fn miner(s: &Setup, node: &Bitcoind, id: &str, sat: u64, address: bool) -> Option<String> {
    let key = s.daemon.issue_key(id).await;
    s.fund(id, sat).await;
    if !address {
        return None;
    }
    let to = node.new_address("recv").await;
    let (status, answer) = s.set_address(id, &key, &to).await;
    assert_eq!(status, 200, "payout address of {id}: {answer}");
    Some(to)
}

async fn withdrawals(s: &Setup) -> Vec<Value> {
    let (status, answer) = s.daemon.admin("GET", "/api/admin/withdrawals", None).await;
    assert_eq!(status, 200, "{answer}");
    answer["withdrawals"].as_array().expect("list").clone()
}

async fn withdrawals_of(s: &Setup, miner: &str) -> Vec<Value> {
    withdrawals(s)
        .await
        .into_iter()
        .filter(|w| w["miner_id"] == miner)
        .collect()
}

/// Batches, oldest first.
async fn batches(s: &Setup) -> Vec<Value> {
    let (status, answer) = s.daemon.admin("GET", "/api/admin/batches", None).await;
    assert_eq!(status, 200, "{answer}");
    let mut list = answer["batches"].as_array().expect("batches").clone();
    list.sort_by_key(|b| b["id"].as_i64());
    list
}

/// Polls until `miner` has exactly one withdrawal and it is `confirmed`,
/// mining a block whenever it is broadcast; nobody approves or sends
/// anything. Returns the withdrawal.
async fn wait_paid(s: &Setup, node: &Bitcoind, mine_to: &str, miner: &str) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let list = withdrawals_of(s, miner).await;
        assert!(list.len() <= 1, "one withdrawal per miner: {list:?}");
        match list.first().map(|w| w["state"].as_str()) {
            Some(Some("confirmed")) => return list[0].clone(),
            Some(Some("broadcast")) => node.mine(1, mine_to).await,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "{miner} was never paid automatically: {list:?}\n{}",
            s.daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls until `pred` holds for the withdrawal list (up to [`DEADLINE`]).
async fn wait_withdrawals(s: &Setup, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let list = withdrawals(s).await;
        if pred(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "never {what}: {list:?}\n{}",
            s.daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Ledger = wallet: each `(address, sat)` received exactly that, the ledger
/// paid their sum, every confirmed batch's fee is the wallet's fee for its
/// txid and the fee account holds their sum, and `verify` plus
/// `verify --wallet` are clean.
async fn assert_ledger_is_wallet(s: &Setup, node: &Bitcoind, paid: &[(&str, i64)]) {
    for (address, sat) in paid {
        assert_eq!(
            node.received_sat("recv", address, 0).await,
            *sat,
            "{address} must be paid exactly once"
        );
    }
    assert_eq!(
        s.ledger_paid_sat(),
        paid.iter().map(|(_, sat)| sat).sum::<i64>()
    );
    let mut fees_sat = 0;
    for batch in batches(s).await {
        if batch["state"] != "confirmed" {
            continue;
        }
        let txid = batch["txid"].as_str().expect("txid");
        let tx = node
            .call(Some("pool"), "gettransaction", &json!([txid]).to_string())
            .await;
        let wallet_fee_sat = -amount_sat(tx.get("fee").expect("fee"));
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
    s.daemon.assert_wallet_verified();
}

/// The worker's standing warnings, from the control socket's snapshot.
async fn warnings(s: &Setup) -> Vec<(String, String)> {
    let mut control = s.daemon.control().await;
    match control.request(Request::Snapshot).await.expect("snapshot") {
        Outcome::Ok(Response::Snapshot(snapshot)) => snapshot
            .warnings
            .iter()
            .map(|w| (w.code.clone(), w.message.clone()))
            .collect(),
        other => panic!("snapshot: {other:?}"),
    }
}

async fn pause_by_control(s: &Setup, paused: bool) {
    let mut control = s.daemon.control().await;
    let outcome = control
        .request(Request::SetPayoutsPaused { paused })
        .await
        .expect("control request");
    assert!(matches!(outcome, Outcome::Ok(_)), "{outcome:?}");
}

async fn pause_by_http(s: &Setup, paused: bool) {
    let (status, answer) = s
        .daemon
        .admin(
            "POST",
            "/api/admin/payouts/pause",
            Some(&json!({ "paused": paused })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn miners_above_the_threshold_are_paid_without_anyone_asking() {
    // Threshold 50,000 sat; everything is approved automatically.
    let Some((node, mine_to, s)) = start(
        "min_payout_btc = \"0.0005\"\nauto_approve_below_btc = \"1\"",
        2,
    )
    .await
    else {
        return;
    };
    // Below the threshold and without an address first: the tick that
    // pays `rich` has seen them too.
    miner(&s, &node, "poor", 20_000, true).await;
    miner(&s, &node, "nowhere", 80_000, false).await;
    let rich = miner(&s, &node, "rich", 70_000, true).await.unwrap();

    let w = wait_paid(&s, &node, &mine_to, "rich").await;
    assert_eq!(w["amount_sat"], 70_000, "{w}");
    assert_eq!(w["decided_by"], "auto", "{w}");
    assert_eq!(s.daemon.balance_msat("rich").await, 0);
    // Neither the miner below the threshold nor the one without an
    // address got a withdrawal; their balances are untouched.
    assert_eq!(withdrawals_of(&s, "poor").await, Vec::<Value>::new());
    assert_eq!(withdrawals_of(&s, "nowhere").await, Vec::<Value>::new());
    assert_eq!(s.daemon.balance_msat("poor").await, 20_000_000);
    assert_eq!(s.daemon.balance_msat("nowhere").await, 80_000_000);
    let batches = batches(&s).await;
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(batches[0]["withdrawal_ids"], json!([w["id"]]));
    assert_ledger_is_wallet(&s, &node, &[(&rich, 70_000)]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn below_auto_approve_pays_itself_above_it_waits_for_an_admin() {
    // Payable from 10,000 sat; approved by itself below 50,000 sat.
    let Some((node, mine_to, s)) = start(
        "min_payout_btc = \"0.0001\"\nauto_approve_below_btc = \"0.0005\"",
        3,
    )
    .await
    else {
        return;
    };
    // `large` becomes payable first, so when `small` is paid the worker
    // has already seen it.
    let large = miner(&s, &node, "large", 60_000, true).await.unwrap();
    let small = miner(&s, &node, "small", 30_000, true).await.unwrap();

    let w = wait_paid(&s, &node, &mine_to, "small").await;
    assert_eq!(w["decided_by"], "auto", "{w}");
    // The large one was created and waits for an admin, in no batch.
    let waiting = withdrawals_of(&s, "large").await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["state"], "requested", "{waiting:?}");
    assert_eq!(waiting[0]["amount_sat"], 60_000);
    assert!(waiting[0]["batch_id"].is_null(), "{waiting:?}");
    assert!(waiting[0]["decided_by"].is_null(), "{waiting:?}");
    let all = batches(&s).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["withdrawal_ids"], json!([w["id"]]));

    // The admin approves; the worker pays it on its own.
    let id = waiting[0]["id"].as_i64().unwrap();
    let (status, answer) = s
        .daemon
        .admin(
            "POST",
            &format!("/api/admin/withdrawals/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let w = wait_paid(&s, &node, &mine_to, "large").await;
    assert_ne!(w["decided_by"], "auto", "{w}");
    assert_ledger_is_wallet(&s, &node, &[(&small, 30_000), (&large, 60_000)]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn more_payable_miners_than_the_cap_go_in_the_next_batch() {
    let Some((node, mine_to, s)) = start(
        "min_payout_btc = \"0.0001\"\nauto_approve_below_btc = \"1\"\nmax_outputs_per_batch = 2",
        4,
    )
    .await
    else {
        return;
    };
    // Paused while the three become payable, so one batch sees all three.
    pause_by_http(&s, true).await;
    let mut paid = Vec::new();
    for (i, id) in ["m1", "m2", "m3"].iter().enumerate() {
        let sat = 20_000 + 1_000 * i as i64;
        let to = miner(&s, &node, id, sat as u64, true).await.unwrap();
        paid.push((to, sat));
    }
    // The worker creates and approves withdrawals while paused.
    wait_withdrawals(&s, "three approved withdrawals", |list| {
        list.len() == 3 && list.iter().all(|w| w["state"] == "approved")
    })
    .await;
    assert_eq!(batches(&s).await, Vec::<Value>::new());
    pause_by_control(&s, false).await;
    for id in ["m1", "m2", "m3"] {
        wait_paid(&s, &node, &mine_to, id).await;
    }
    let all = batches(&s).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let sizes: Vec<usize> = all
        .iter()
        .map(|b| b["withdrawal_ids"].as_array().expect("ids").len())
        .collect();
    assert_eq!(sizes, vec![2, 1], "exactly the cap, then the rest: {all:?}");
    let paid: Vec<(&str, i64)> = paid.iter().map(|(a, sat)| (a.as_str(), *sat)).collect();
    assert_ledger_is_wallet(&s, &node, &paid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pausing_stops_new_batches_and_resuming_starts_them_again() {
    let Some((node, mine_to, s)) = start(
        "min_payout_btc = \"0.0001\"\nauto_approve_below_btc = \"1\"",
        3,
    )
    .await
    else {
        return;
    };
    pause_by_control(&s, true).await;
    let first = miner(&s, &node, "first", 40_000, true).await.unwrap();
    // The worker runs while paused: it approves, then says it waits
    // because of the pause (a tick that would have batched), and no batch
    // appears. Checked on every poll, so a batch while paused fails at once.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let all = batches(&s).await;
        assert_eq!(all, Vec::<Value>::new(), "a batch while paused");
        let list = withdrawals_of(&s, "first").await;
        let approved = list.len() == 1 && list[0]["state"] == "approved";
        let waiting = warnings(&s)
            .await
            .iter()
            .any(|(code, message)| code == "payouts_waiting" && message.contains("paused"));
        if approved && waiting {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never reported the pause: {list:?}\n{}",
            s.daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        warnings(&s)
            .await
            .iter()
            .any(|(code, _)| code == "payouts_paused")
    );
    // A manual batch is refused too while paused.
    let (status, answer) = s.send_batch().await;
    assert_ne!(status, 200, "{answer}");
    assert!(answer.to_string().contains("paused"), "{answer}");
    assert_eq!(batches(&s).await, Vec::<Value>::new());

    // Resumed over HTTP: the worker pays it with nobody asking.
    pause_by_http(&s, false).await;
    wait_paid(&s, &node, &mine_to, "first").await;
    assert_eq!(batches(&s).await.len(), 1);

    // Paused again after a payout, over HTTP this time: a new payable
    // miner waits, then is paid once resumed over the control socket.
    pause_by_http(&s, true).await;
    let second = miner(&s, &node, "second", 30_000, true).await.unwrap();
    wait_withdrawals(&s, "the second withdrawal approved", |list| {
        list.iter()
            .any(|w| w["miner_id"] == "second" && w["state"] == "approved")
    })
    .await;
    let deadline = Instant::now() + DEADLINE;
    while !warnings(&s)
        .await
        .iter()
        .any(|(code, message)| code == "payouts_waiting" && message.contains("paused"))
    {
        assert_eq!(batches(&s).await.len(), 1, "a batch while paused");
        assert!(Instant::now() < deadline, "{}", s.daemon.log_tail());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(batches(&s).await.len(), 1, "a batch while paused");
    pause_by_control(&s, false).await;
    wait_paid(&s, &node, &mine_to, "second").await;
    assert_eq!(batches(&s).await.len(), 2);
    assert_ledger_is_wallet(&s, &node, &[(&first, 40_000), (&second, 30_000)]).await;
}
