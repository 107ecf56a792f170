//! Every check of `pooldeskd verify` fires: one real ledger is built through
//! the daemon (v1 reports, a v2 batch with a block solve, paid, rejected
//! and open withdrawals, a paid faucet request), then each test breaks a
//! copy of it in exactly one way through SQL and asserts that `verify`
//! exits 1 naming that violation. The untouched copy verifies clean, so
//! each violation is the tamper's doing.
//!
//! If any single check in `ledger/verify.rs`, `ingest/db.rs`,
//! `shares/db.rs`, `payouts/db.rs` or `faucet/db.rs` returned nothing, the
//! test for it here would fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pooldesk_e2e::ckpool::post_batch;
use pooldesk_e2e::daemon::{Daemon, DaemonOptions, bin, now_s, regtest_address};
use serde_json::{Value, json};

/// The fixture ledger's data dir (a stopped daemon's, checkpointed).
fn fixture() -> &'static Path {
    static FIXTURE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &FIXTURE
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let dir = tempfile::tempdir().expect("fixture dir");
            let path = dir.path().to_path_buf();
            runtime.block_on(build_fixture(&path));
            (dir, path)
        })
        .1
}

async fn wait_for(what: &str, d: &Daemon, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "fixture: {what} never happened\n{}",
            d.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn withdrawal_state(d: &Daemon, id: i64) -> String {
    let (status, answer) = d.admin("GET", "/api/admin/withdrawals", None).await;
    assert_eq!(status, 200, "{answer}");
    answer["withdrawals"]
        .as_array()
        .expect("withdrawals")
        .iter()
        .find(|w| w["id"] == id)
        .map(|w| w["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

async fn withdraw(d: &Daemon, miner: &str, key: &str, amount_btc: &str) -> i64 {
    let (status, answer) = d
        .signed(
            "POST",
            "/api/withdraw",
            miner,
            key,
            &json!({"miner_id": miner, "amount": amount_btc,
                "event_id": format!("w-{}", rand::random::<u64>()), "ts": now_s()}),
        )
        .await;
    assert_eq!(status, 202, "withdraw: {answer}");
    answer["withdrawal_id"].as_i64().expect("withdrawal_id")
}

async fn build_fixture(copy_to: &Path) {
    let started = Instant::now();
    let mut d = Daemon::start(DaemonOptions {
        config: "[payouts]\nmode = \"hot\"\nnew_address_delay_s = 0\nbatch_interval_s = 3600\n\
                 [faucet]\ndifficulty_bits = 8\nbatch_interval_s = 1\n"
            .into(),
        ..DaemonOptions::default()
    })
    .await;

    // Ingest: v1 share reports for two miners.
    for (miner, shares) in [("alice", 40), ("bob", 30)] {
        let (status, answer) = d.post_report(miner, "rig", shares).await;
        assert_eq!(status, 200, "report: {answer}");
    }
    // Shares: a v2 batch with a block solve.
    let shares: Vec<Value> = (1..=4)
        .map(|seq| {
            let mut s = json!({"seq": seq, "miner": "carol", "worker": "rig1", "diff": seq * 10,
                "sdiff": 100.0, "accepted": true, "time_s": now_s() - 5,
                "hash": format!("{seq:064x}")});
            if seq == 3 {
                s["block"] = true.into();
                s["height"] = 840_000.into();
            }
            s
        })
        .collect();
    let body = serde_json::to_vec(&json!({"origin": "pool-a", "ts": now_s(), "shares": shares}))
        .expect("json");
    let (status, answer) = post_batch(&d, &body).await;
    assert_eq!(status, 200, "v2 batch: {answer}");
    assert_eq!(answer["blocks"], 1, "{answer}");

    // Payouts: one paid, one rejected, one left open.
    let key = d.issue_key("payee").await;
    // 100 shares at difficulty 1000 → 100,000 sat.
    let body = serde_json::to_vec(
        &json!({"miner_id": "payee", "worker_name": "rig", "shares": 100,
        "difficulty": 1000, "event_id": "fund-payee", "ts": now_s()}),
    )
    .expect("json");
    let (status, answer) = d.post_signed_report(&body).await;
    assert_eq!(status, 200, "funding: {answer}");
    let (status, answer) = d
        .signed(
            "POST",
            "/api/miner/payout_address",
            "payee",
            &key,
            &json!({"miner_id": "payee", "address": regtest_address(), "ts": now_s(),
                "event_id": format!("address-{}", rand::random::<u64>())}),
        )
        .await;
    assert_eq!(status, 200, "payout address: {answer}");
    let paid = withdraw(&d, "payee", &key, "0.0002").await;
    let (status, answer) = d
        .admin(
            "POST",
            &format!("/api/admin/withdrawals/{paid}/approve"),
            None,
        )
        .await;
    assert_eq!(status, 200, "approve: {answer}");
    let (status, answer) = d
        .admin("POST", "/api/admin/send_batch", Some(&json!({})))
        .await;
    assert_eq!(status, 200, "send_batch: {answer}");
    wait_for("the payout is paid", &d, async || {
        ["broadcast", "confirmed"].contains(&withdrawal_state(&d, paid).await.as_str())
    })
    .await;
    let rejected = withdraw(&d, "payee", &key, "0.0002").await;
    let (status, answer) = d
        .admin(
            "POST",
            &format!("/api/admin/withdrawals/{rejected}/reject"),
            Some(&json!({"reason": "fixture"})),
        )
        .await;
    assert_eq!(status, 200, "reject: {answer}");
    withdraw(&d, "payee", &key, "0.0002").await;

    // Faucet: one request, paid by the simulated wallet.
    let (status, challenge) = d.get("/api/faucet/challenge").await;
    assert_eq!(status, 200, "{challenge}");
    let address = regtest_address();
    let nonce = pooldesk_proto::pow::solve_pow(
        challenge["challenge"].as_str().expect("challenge"),
        &address,
        challenge["difficulty_bits"].as_u64().expect("bits") as u32,
    );
    let response = d
        .http
        .post(format!("{}/api/faucet", d.url))
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&json!({"address": address,
                "challenge": challenge["challenge"], "nonce": nonce}))
            .expect("json"),
        )
        .send()
        .await
        .expect("faucet");
    assert_eq!(response.status().as_u16(), 202);
    let request: Value = response.json().await.expect("faucet json");
    let request_id = request["request_id"].as_i64().expect("request_id");
    wait_for("the faucet request is paid", &d, async || {
        let (_, body) = d.get(&format!("/api/faucet/requests/{request_id}")).await;
        body["state"] == "paid"
    })
    .await;

    eprintln!("fixture built in {:?}", started.elapsed());
    d.assert_verified();
    let status = d.terminate(Duration::from_secs(30)).expect("daemon stops");
    assert!(status.success(), "daemon exit: {status:?}");
    for entry in std::fs::read_dir(&d.data_dir).expect("data dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), copy_to.join(entry.file_name())).expect("copy");
        }
    }
}

fn copy_fixture() -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("copy dir");
    for entry in std::fs::read_dir(fixture()).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).expect("copy");
    }
    copy
}

/// Copies the fixture, applies `sql` to the copy and runs `verify` on it.
fn verify_tampered(sql: &str) -> (Option<i32>, String) {
    let copy = copy_fixture();
    if !sql.is_empty() {
        let conn = rusqlite::Connection::open(copy.path().join("ledger.sqlite")).expect("open");
        // Some tampers are exactly what the schema's CHECKs forbid; verify
        // must still see them (a ledger can be edited by hand).
        conn.execute_batch("PRAGMA ignore_check_constraints = ON;")
            .expect("pragma");
        let changed_before = conn.total_changes();
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("tamper {sql}: {e}"));
        assert!(
            conn.total_changes() > changed_before,
            "the tamper changed no row, so it tests nothing: {sql}"
        );
    }
    run_verify(copy.path())
}

fn run_verify(data_dir: &Path) -> (Option<i32>, String) {
    let out = Command::new(bin("pooldeskd"))
        .arg("verify")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run verify");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[track_caller]
fn assert_fires(sql: &str, names: &str) {
    let (code, text) = verify_tampered(sql);
    assert_eq!(code, Some(1), "verify must exit 1 after: {sql}\n{text}");
    assert!(
        text.contains(names),
        "verify did not name the violation {names:?} after: {sql}\n{text}"
    );
}

#[test]
fn the_untouched_fixture_verifies_clean() {
    let (code, text) = verify_tampered("");
    assert_eq!(code, Some(0), "{text}");
}

// ---- ledger -------------------------------------------------------------------

#[test]
fn ledger_sum_of_balances_not_zero() {
    assert_fires(
        "UPDATE accounts SET balance_msat = balance_msat + 7 WHERE name = 'miner:alice'",
        "sum of all balances is 7 msat, not 0",
    );
}

#[test]
fn ledger_balance_not_an_integer() {
    assert_fires(
        "UPDATE accounts SET balance_msat = balance_msat + 0.5 WHERE name = 'pool:rewards'",
        "account balances are not integers",
    );
}

#[test]
fn ledger_balance_differs_from_its_transfers() {
    // Sum stays 0: only the per-account check can see it.
    assert_fires(
        "UPDATE accounts SET balance_msat = balance_msat + 1000 WHERE name = 'miner:alice';
         UPDATE accounts SET balance_msat = balance_msat - 1000 WHERE name = 'miner:bob';",
        "account miner:alice: balance",
    );
}

#[test]
fn ledger_balance_beyond_the_supply_bound() {
    assert_fires(
        "UPDATE accounts SET balance_msat = 2100000000000000001 WHERE name = 'miner:alice';
         UPDATE accounts SET balance_msat = balance_msat - 2100000000000000001 WHERE name = 'pool:adjustments';",
        "account miner:alice holds 2100000000000000001 msat, beyond the 21,000,000 BTC bound",
    );
}

#[test]
fn ledger_negative_miner_balance() {
    assert_fires(
        "UPDATE accounts SET balance_msat = -5 WHERE name = 'miner:bob';",
        "account miner:bob is negative: -5 msat",
    );
}

#[test]
fn ledger_transfer_without_items() {
    assert_fires(
        "UPDATE transfers SET item_count = 0 WHERE id = (SELECT MIN(id) FROM transfers)",
        "transfers have a non-positive or non-integer amount",
    );
}

#[test]
fn ledger_transfer_to_itself() {
    assert_fires(
        "UPDATE transfers SET debit_account_id = credit_account_id WHERE id = (SELECT MAX(id) FROM transfers)",
        "transfers have a non-positive or non-integer amount, the same account on both sides",
    );
}

#[test]
fn ledger_account_with_an_unknown_name() {
    assert_fires(
        "INSERT INTO accounts (name, allow_negative, balance_msat, created_at) VALUES ('mystery', 0, 0, 0)",
        "account mystery has an unknown name or the wrong sign policy",
    );
}

#[test]
fn ledger_miner_allowed_to_go_negative() {
    assert_fires(
        "UPDATE accounts SET allow_negative = 1 WHERE name = 'miner:bob'",
        "account miner:bob has an unknown name or the wrong sign policy",
    );
}

// ---- ingest (v1 reports) -----------------------------------------------------

#[test]
fn ingest_reports_without_their_transfer() {
    assert_fires(
        "UPDATE transfers SET kind = 'adjustment' WHERE kind = 'share_credit'
           AND credit_account_id = (SELECT id FROM accounts WHERE name = 'miner:alice')",
        "share_credit reports of miner alice in rollup group",
    );
}

#[test]
fn ingest_rollup_differs_from_its_reports() {
    assert_fires(
        "UPDATE share_reports SET credited_msat = credited_msat + 1 WHERE miner_id = 'bob'",
        "of miner bob (share_credit): transfer",
    );
}

#[test]
fn ingest_credit_transfer_without_reports() {
    assert_fires(
        "INSERT INTO transfers (idempotency_key, debit_account_id, credit_account_id, amount_msat, kind, rollup_group, created_at)
           SELECT 'forged', (SELECT id FROM accounts WHERE name = 'pool:rewards'),
                  (SELECT id FROM accounts WHERE name = 'miner:alice'), 5, 'share_credit', 987654321, CAST(strftime('%s','now') AS INTEGER);
         UPDATE accounts SET balance_msat = balance_msat + 5 WHERE name = 'miner:alice';
         UPDATE accounts SET balance_msat = balance_msat - 5 WHERE name = 'pool:rewards';",
        "1 credit transfers inside the retention window have no reports",
    );
}

// ---- shares (v2 batches) -----------------------------------------------------

#[test]
fn shares_without_their_transfer() {
    assert_fires(
        "UPDATE transfers SET kind = 'adjustment' WHERE kind = 'pool_share_credit'",
        "batched shares of miner carol in rollup group",
    );
}

#[test]
fn shares_rollup_differs_from_its_shares() {
    assert_fires(
        "UPDATE pool_shares SET credited_msat = credited_msat + 1 WHERE seq = 1",
        "of miner carol (pool_share_credit): transfer",
    );
}

#[test]
fn shares_credit_transfer_without_shares() {
    assert_fires(
        "UPDATE transfers SET rollup_group = 987654321 WHERE kind = 'pool_share_credit'",
        "batched-share credit transfers inside the retention window have no shares",
    );
}

#[test]
fn shares_origin_totals_differ_from_the_ledger() {
    assert_fires(
        "UPDATE share_origins SET credited_msat_total = credited_msat_total + 1",
        "share origins credited",
    );
}

#[test]
fn shares_block_solve_without_its_share() {
    assert_fires(
        "UPDATE block_solves SET hash = '00000000000000000000000000000000000000000000000000000000000000ff'",
        "1 block solves do not match an accepted share with the same hash",
    );
}

// ---- payouts ------------------------------------------------------------------

#[test]
fn payouts_held_differs_from_open_withdrawals() {
    assert_fires(
        "UPDATE withdrawals SET amount_sat = amount_sat + 1 WHERE state = 'requested'",
        "withdrawals:held is",
    );
}

#[test]
fn payouts_sent_differs_from_paid_withdrawals() {
    assert_fires(
        "UPDATE withdrawals SET amount_sat = amount_sat + 1 WHERE paid = 1",
        "payouts:sent is",
    );
}

#[test]
fn payouts_paid_withdrawal_without_txid() {
    assert_fires(
        "UPDATE withdrawals SET txid = NULL WHERE paid = 1",
        "1 paid withdrawals lack a txid or batch, or are in an unpaid state",
    );
}

#[test]
fn payouts_paid_withdrawal_with_another_txid() {
    assert_fires(
        "UPDATE withdrawals SET txid = 'ab' || substr(txid, 3) WHERE paid = 1",
        "1 paid withdrawals carry a txid other than their batch's",
    );
}

#[test]
fn payouts_rejected_withdrawal_never_returned() {
    assert_fires(
        "UPDATE transfers SET idempotency_key = idempotency_key || ':moved'
           WHERE idempotency_key LIKE 'withdrawal:%:release'",
        "1 rejected/failed withdrawals were never returned to their miner",
    );
}

// ---- faucet -------------------------------------------------------------------

#[test]
fn faucet_held_differs_from_unpaid_requests() {
    assert_fires(
        "UPDATE accounts SET balance_msat = balance_msat + 1000 WHERE name = 'faucet:held';
         UPDATE accounts SET balance_msat = balance_msat - 1000 WHERE name = 'faucet:funding';",
        "faucet:held is 1000 msat but unpaid faucet requests add up to 0 msat",
    );
}

#[test]
fn faucet_sent_differs_from_paid_requests() {
    assert_fires(
        "UPDATE faucet_requests SET amount_sat = amount_sat + 1 WHERE state = 'paid'",
        "faucet:sent is",
    );
}

#[test]
fn faucet_request_disagrees_with_its_batch() {
    assert_fires(
        "UPDATE faucet_requests SET txid = 'ab' || substr(txid, 3) WHERE state = 'paid'",
        "1 faucet requests disagree with the state of their batch",
    );
}

// ---- storage ------------------------------------------------------------------

#[test]
fn storage_damage_is_reported_by_quick_check() {
    // A b-tree page with an invalid page type: SQLite's own structural
    // check finds it, and verify reports it rather than passing. The page
    // is an index verify's other queries do not read, so the damage shows
    // as a violation and not as a failed query.
    let copy = copy_fixture();
    let ledger = copy.path().join("ledger.sqlite");
    let (page_size, root_page): (u64, u64) = {
        let conn = rusqlite::Connection::open(&ledger).expect("open");
        conn.query_row(
            "SELECT (SELECT page_size FROM pragma_page_size),
                    (SELECT rootpage FROM sqlite_master WHERE name = 'withdrawals_miner')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("page of withdrawals_miner")
    };
    assert!(root_page > 1);
    let mut bytes = std::fs::read(&ledger).expect("read ledger");
    let header = usize::try_from((root_page - 1) * page_size).expect("offset");
    assert!([2u8, 10].contains(&bytes[header]), "an index b-tree page");
    bytes[header] = 0x07; // not a b-tree page type
    std::fs::write(&ledger, bytes).expect("write ledger");
    let (code, text) = run_verify(copy.path());
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("SQLite quick_check"), "{text}");
}
