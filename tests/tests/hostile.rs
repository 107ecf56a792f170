//! Hostile clients against a real daemon (issue 10): each test is one
//! attack that used to work. Each asserts the exact refusal (status and
//! JSON `error` code), that no balance of any miner changed, and that
//! `pooldeskd verify` passes; the exhaustion attacks also show an honest
//! pool reporting through the attack has every report accepted.
//!
//! Transport attacks (slow bodies, connection and stream caps, cross-site
//! requests) are in `hostile_http.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use pooldesk_e2e::daemon::{Daemon, DaemonOptions, now_s, regtest_address};
use pooldesk_e2e::payouts::Setup;
use serde_json::{Value, json};

async fn daemon(config: &str) -> Daemon {
    Daemon::start(DaemonOptions {
        config: config.to_string(),
        ..Default::default()
    })
    .await
}

/// Open registration, as an operator who chose it would configure it.
const OPEN: &str = "[auth]\nregistration = \"open\"\n";

fn code(answer: &Value) -> Option<&str> {
    answer["error"].as_str()
}

/// Balances of every miner account (the `miner:` ones).
fn miner_balances(d: &Daemon) -> BTreeMap<String, i64> {
    d.balances()
        .into_iter()
        .filter(|(name, _)| name.starts_with("miner:"))
        .collect()
}

async fn self_register(d: &Daemon, user: &str) -> (u16, Value) {
    let r = d
        .http
        .post(format!("{}/v1/user/register", d.url))
        .json(&json!({"user_id": user, "auth_method": "hmac_personal", "tier": "TIER_2_DESKTOP"}))
        .send()
        .await
        .expect("register");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn block(user: &str, event: &str, hash: &str, work: Value) -> Value {
    json!({
        "event_id": event, "block_index": 1, "block_hash": hash, "cid": "bafy",
        "miner_id": user, "capacity": "TIER_2_DESKTOP", "work_score": work,
        "ts": now_s(), "signature": "placeholder"
    })
}

/// An honest pool's signed report for `miner`.
fn honest_report(n: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "miner_id": format!("honest-{}", n % 4), "worker_name": "rig", "shares": 3, "difficulty": 2,
        "event_id": format!("honest-{n}-{}", rand::random::<u64>()), "ts": now_s()
    }))
    .unwrap()
}

// ---- money has a source and a bound ---------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn registration_is_by_admin_unless_opened() {
    let d = daemon("").await;
    let (status, answer) = self_register(&d, "self.anyone").await;
    assert_eq!(
        (status, code(&answer)),
        (403, Some("forbidden")),
        "{answer}"
    );
    assert!(answer.get("api_key").is_none());
    assert_eq!(d.get("/v1/user/profile/self.anyone").await.0, 404);
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn minting_with_a_huge_work_score_is_refused() {
    let d = daemon(OPEN).await;
    let (status, answer) = self_register(&d, "self.minter").await;
    assert_eq!(status, 201, "{answer}");
    let key = answer["api_key"].as_str().unwrap().to_string();
    let before = d.balances();
    // 21,000,000 BTC worth of work in one report.
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "self.minter",
            &key,
            &block("self.minter", "blk-1", "h1", json!(21_000_000_000_000u64)),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (422, Some("credit_limit")),
        "{answer}"
    );
    assert!(answer.get("credited_msat").is_none());
    assert_eq!(d.balances(), before, "a refused report moves nothing");
    // Within the bound it is credited (default 0.0001 BTC per report =
    // work 100 at 0.000001 BTC per work unit).
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "self.minter",
            &key,
            &block("self.minter", "blk-2", "h2", json!(100)),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["credited_msat"], 10_000_000);
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn block_credits_stop_at_the_daily_bound_while_the_pool_reports_on() {
    // Daily bound 0.0003 BTC: three maximal reports; the rest refused.
    let d = daemon(&format!(
        "{OPEN}[limits]\nblocks_per_minute = 1000\nblock_credit_daily_btc = \"0.0003\"\n"
    ))
    .await;
    let (_, answer) = self_register(&d, "self.farmer").await;
    let key = answer["api_key"].as_str().unwrap().to_string();
    let mut outcomes = Vec::new();
    let mut honest = Vec::new();
    for i in 0..8u64 {
        let (status, answer) = d
            .signed(
                "POST",
                "/v1/ingest/block",
                "self.farmer",
                &key,
                &block(
                    "self.farmer",
                    &format!("b{i}"),
                    &format!("h{i}"),
                    json!(100),
                ),
            )
            .await;
        outcomes.push((status, code(&answer).map(str::to_string)));
        honest.push(d.post_signed_report(&honest_report(i)).await.0);
    }
    assert_eq!(
        outcomes.iter().filter(|(s, _)| *s == 202).count(),
        3,
        "{outcomes:?}"
    );
    assert!(
        outcomes[3..]
            .iter()
            .all(|o| *o == (422, Some("credit_limit".to_string()))),
        "{outcomes:?}"
    );
    assert!(honest.iter().all(|s| *s == 200), "{honest:?}");
    assert_eq!(d.balance_msat("self.farmer").await, 30_000_000);
    d.assert_verified();
}

/// The old outage: credits that pass the balance bound racing honest pool
/// reports in the same group commits. The operator has lifted the
/// block-credit bounds (they would refuse these first) and the pool has
/// already credited the miner most of the supply, so only the supply bound
/// on balances stands: the first block credit fits, the rest are refused
/// one by one, and every honest report is accepted, during the attack and
/// after a restart.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_credits_never_fail_the_honest_reports_of_their_group() {
    let mut d = daemon(
        "[limits]\nblocks_per_minute = 10000\nblock_credit_max_btc = \"21000000\"\nblock_credit_daily_btc = \"21000000\"\n",
    )
    .await;
    let key = d.issue_key("flood").await;
    // Five maximal pool reports: 5 × 2^48 work × 1000 msat ≈ 1.407e18 msat.
    for i in 0..5 {
        let body = serde_json::to_vec(&json!({
            "miner_id": "flood", "worker_name": "rig", "shares": 1u64 << 38, "difficulty": 1024,
            "event_id": format!("fill-{i}"), "ts": now_s()
        }))
        .unwrap();
        let (status, answer) = d.post_signed_report(&body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let filled = d.balance_msat("flood").await;
    assert_eq!(filled, 5 * (1i64 << 48) * 1000);
    let d_ref = &d;
    let key_ref = &key;
    let attack = async {
        let mut codes = Vec::new();
        for i in 0..20u64 {
            let (status, answer) = d_ref
                .signed(
                    "POST",
                    "/v1/ingest/block",
                    "flood",
                    key_ref,
                    &block(
                        "flood",
                        &format!("f{i}"),
                        &format!("fh{i}"),
                        // 5,000,000 BTC of work: one fits under the bound.
                        json!(5_000_000_000_000u64),
                    ),
                )
                .await;
            codes.push((status, code(&answer).map(str::to_string)));
        }
        codes
    };
    // The honest pool: 200 reports, 16 at a time (a gateway's connection
    // pool; the attacker shares its address here, so stay under the
    // per-address connection cap).
    let honest = {
        use futures::StreamExt;
        futures::stream::iter(0..200u64)
            .map(|n| async move { d_ref.post_signed_report(&honest_report(n)).await.0 })
            .buffer_unordered(16)
            .collect::<Vec<u16>>()
    };
    let (codes, honest) = tokio::join!(attack, honest);
    assert_eq!(codes[0].0, 202, "{codes:?}");
    assert!(
        codes[1..]
            .iter()
            .all(|c| *c == (422, Some("balance_bound".to_string()))),
        "{codes:?}"
    );
    assert!(
        honest.iter().all(|s| *s == 200),
        "honest reports: {honest:?}"
    );
    assert_eq!(
        d.balance_msat("flood").await,
        filled + 500_000_000_000_000_000
    );
    d.restart().await;
    assert_eq!(d.post_signed_report(&honest_report(999)).await.0, 200);
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unapproved_huge_request_does_not_block_other_miners_payouts() {
    let s = Setup::with_standin("hot", "", "").await;
    // A miner the pool credited far more than the wallet holds asks for
    // all of it; nobody approves it.
    let whale_key = s.daemon.issue_key("whale").await;
    s.fund("whale", 1_000_000_000_000).await; // 10,000 BTC
    let (status, answer) = s.set_address("whale", &whale_key, &regtest_address()).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = s
        .daemon
        .signed(
            "POST",
            "/api/withdraw",
            "whale",
            &whale_key,
            &json!({"miner_id": "whale", "amount": "10000", "event_id": "all-of-it", "ts": now_s()}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["state"], "requested");
    // An honest, approved withdrawal is paid.
    let id = s.request("0.0005").await;
    s.approve(id).await;
    let (status, answer) = s.send_batch().await;
    assert_eq!(status, 200, "{answer}");
    let w = s
        .wait_withdrawal(id, &["broadcast", "confirmed"], Duration::from_secs(60))
        .await;
    assert!(w["txid"].is_string(), "{w}");
    s.daemon.assert_verified();
}

// ---- ids belong to someone --------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_future_pool_id_cannot_be_squatted() {
    let d = daemon(OPEN).await;
    // Only ids in the self-registration namespace can be self-registered.
    let (status, answer) = self_register(&d, "bc1-future-miner").await;
    assert_eq!(
        (status, code(&answer)),
        (422, Some("reserved_namespace")),
        "{answer}"
    );
    assert!(answer.get("api_key").is_none());
    // The pool's credits for that id go to the pool's miner, and the id is
    // then taken for self-registration too.
    assert_eq!(d.post_report("bc1-future-miner", "rig", 5).await.0, 200);
    let (status, answer) = self_register(&d, "bc1-future-miner").await;
    assert_eq!(status, 422, "{answer}");
    // Self-registered ids can never receive pool credits.
    let (status, answer) = self_register(&d, "self.squatter").await;
    assert_eq!(status, 201, "{answer}");
    let before = miner_balances(&d);
    let (status, answer) = d.post_report("self.squatter", "rig", 5).await;
    assert_eq!(
        (status, code(&answer)),
        (422, Some("reserved_id")),
        "{answer}"
    );
    assert_eq!(miner_balances(&d), before);
    // The admin links a pool id by issuing its key.
    let key = d.issue_key("bc1-future-miner").await;
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/user/auth-test",
            "bc1-future-miner",
            &key,
            &json!({"ts": now_s()}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn look_alike_and_invisible_ids_are_refused() {
    let d = daemon(OPEN).await;
    d.post_report("demo-miner-1", "rig", 1).await;
    let before = miner_balances(&d);
    for id in [
        "demo-miner-1\u{200b}",
        "demo\u{2060}miner-1",
        "dem\u{043e}-miner-1",
        "demo miner",
        "demo-mine\u{0301}r",
    ] {
        let body = serde_json::to_vec(&json!({
            "miner_id": id, "worker_name": "rig", "shares": 1,
            "event_id": format!("la-{}", rand::random::<u64>()), "ts": now_s()
        }))
        .unwrap();
        let (status, answer) = d.post_signed_report(&body).await;
        assert_eq!(
            (status, code(&answer)),
            (422, Some("invalid")),
            "{id:?}: {answer}"
        );
        let (status, answer) = self_register(&d, &format!("self.{id}")).await;
        assert_eq!(status, 422, "{id:?}: {answer}");
    }
    // Worker names follow the same rule.
    let body = serde_json::to_vec(&json!({
        "miner_id": "demo-miner-1", "worker_name": "rig\u{200b}", "shares": 1,
        "event_id": "la-worker", "ts": now_s()
    }))
    .unwrap();
    assert_eq!(d.post_signed_report(&body).await.0, 422);
    assert_eq!(miner_balances(&d), before);
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn block_ids_are_judged_per_miner_and_a_409_reveals_only_your_own() {
    let d = daemon("").await;
    let victim = d.issue_key("victim").await;
    let griefer = d.issue_key("griefer").await;
    // The griefer submits the victim's next ids first.
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "griefer",
            &griefer,
            &block("griefer", "blk-100", "0000abc", json!(7)),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "victim",
            &victim,
            &block("victim", "blk-100", "0000abc", json!(3)),
        )
        .await;
    assert_eq!(status, 202, "the victim's own ids are its own: {answer}");
    assert_eq!(answer["credited_msat"], 300_000);
    // A true duplicate answers with the miner's own figures only.
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "victim",
            &victim,
            &block("victim", "blk-100", "0000abc", json!(3)),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (409, Some("duplicate_event")),
        "{answer}"
    );
    assert_eq!(answer["credited_msat"], 300_000);
    assert!(!answer.to_string().contains("700000"), "{answer}");
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/ingest/block",
            "victim",
            &victim,
            &block("victim", "blk-101", "0000abc", json!(3)),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (409, Some("duplicate_block")),
        "{answer}"
    );
    assert_eq!(d.balance_msat("victim").await, 300_000);
    assert_eq!(d.balance_msat("griefer").await, 700_000);
    d.assert_verified();
}

#[tokio::test(flavor = "multi_thread")]
async fn miners_cannot_raise_their_own_tier() {
    let d = daemon("").await;
    let key = d.issue_key("climber").await;
    let before = d.get("/v1/user/profile/climber").await.1["tier"].clone();
    let (status, answer) = d
        .signed(
            "POST",
            "/v1/user/update-tier",
            "climber",
            &key,
            &json!({"user_id": "climber", "tier": "TIER_5_CLUSTER", "ts": now_s()}),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (403, Some("admin_only")),
        "{answer}"
    );
    assert_eq!(d.get("/v1/user/profile/climber").await.1["tier"], before);
}

// ---- replay-proof state changes ---------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_captured_payout_address_change_cannot_be_replayed() {
    let d = daemon("").await;
    let key = d.issue_key("owner").await;
    let first = regtest_address();
    let second = regtest_address();
    let change = |address: &str, event: &str| json!({"miner_id": "owner", "address": address, "event_id": event, "ts": now_s()});
    let old_body = serde_json::to_vec(&change(&first, "addr-1")).unwrap();
    let (status, answer) = d
        .signed_raw(
            "POST",
            "/api/miner/payout_address",
            "owner",
            &key,
            &old_body,
            now_s(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = d
        .signed(
            "POST",
            "/api/miner/payout_address",
            "owner",
            &key,
            &change(&second, "addr-2"),
        )
        .await;
    assert_eq!(status, 200);
    // The attacker replays the first request, byte for byte, in the window.
    let (status, answer) = d
        .signed_raw(
            "POST",
            "/api/miner/payout_address",
            "owner",
            &key,
            &old_body,
            now_s(),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (409, Some("duplicate_event")),
        "{answer}"
    );
    assert_eq!(
        d.get("/api/miners/owner").await.1["payout_address"],
        second.as_str()
    );
    // No event id: refused.
    let (status, answer) = d
        .signed(
            "POST",
            "/api/miner/payout_address",
            "owner",
            &key,
            &json!({"miner_id": "owner", "address": first, "ts": now_s()}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signature_made_for_one_endpoint_is_refused_on_another() {
    let d = daemon("").await;
    let key = d.issue_key("signer").await;
    let body = serde_json::to_vec(&json!({
        "miner_id": "signer", "address": regtest_address(), "event_id": "x-1", "ts": now_s()
    }))
    .unwrap();
    let canonical = pooldesk_proto::canonical::canonicalize(&body).unwrap();
    // A body-only signature (the seed's block form) on a bound endpoint,
    // and one bound to another path.
    let body_only = pooldesk_proto::sig::hmac_sha256_hex(key.as_bytes(), canonical.as_bytes());
    let other_path = pooldesk_proto::sig::hmac_sha256_hex(
        key.as_bytes(),
        pooldesk_proto::sig::bound_message("POST", "/v1/user/auth-test", &canonical).as_bytes(),
    );
    for signature in [body_only, other_path] {
        let r = d
            .http
            .post(format!("{}/api/miner/payout_address", d.url))
            .header("content-type", "application/json")
            .header("x-user-id", "signer")
            .header("x-signature", signature)
            .header("x-timestamp", now_s().to_string())
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(
            (status, code(&answer)),
            (401, Some("bad_signature")),
            "{answer}"
        );
    }
    assert!(d.get("/api/miners/signer").await.1["payout_address"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn withdrawal_keys_do_not_collide_across_ids_with_colons() {
    let s = Setup::with_standin("hot", "", "").await;
    let mut keys = Vec::new();
    for miner in ["a:b", "a"] {
        let key = s.daemon.issue_key(miner).await;
        s.fund(miner, 100_000).await;
        let (status, answer) = s.set_address(miner, &key, &regtest_address()).await;
        assert_eq!(status, 200, "{answer}");
        keys.push(key);
    }
    // Joined as `miner:{id}:{event}` both were "miner:a:b:c".
    let mut ids = Vec::new();
    for ((miner, event), key) in [("a:b", "c"), ("a", "b:c")].into_iter().zip(&keys) {
        let (status, answer) = s
            .daemon
            .signed(
                "POST",
                "/api/withdraw",
                miner,
                key,
                &json!({"miner_id": miner, "amount": "0.0005", "event_id": event, "ts": now_s()}),
            )
            .await;
        assert_eq!(status, 202, "{miner}: {answer}");
        ids.push(answer["withdrawal_id"].as_i64().unwrap());
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(s.daemon.balance_msat("a:b").await, 50_000_000);
    assert_eq!(s.daemon.balance_msat("a").await, 50_000_000);
    s.daemon.assert_verified();
}

// ---- addresses ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn unknown_witness_versions_are_not_payout_addresses() {
    let d = daemon("").await;
    let key = d.issue_key("future").await;
    let v2 = bitcoin::Address::from_witness_program(
        bitcoin::WitnessProgram::new(bitcoin::WitnessVersion::V2, &[9u8; 32]).unwrap(),
        bitcoin::KnownHrp::Regtest,
    )
    .to_string();
    assert!(v2.starts_with("bcrt1z"));
    let (status, answer) = d
        .signed(
            "POST",
            "/api/miner/payout_address",
            "future",
            &key,
            &json!({"miner_id": "future", "address": v2, "event_id": "v2", "ts": now_s()}),
        )
        .await;
    assert_eq!((status, code(&answer)), (422, Some("invalid")), "{answer}");
    assert!(d.get("/api/miners/future").await.1["payout_address"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_is_refused_when_the_wallet_cannot_say_it_is_not_ours() {
    // A node that is not there: the own-address check cannot be made.
    let port = pooldesk_e2e::daemon::free_port();
    let d = daemon(&format!(
        "wallet_backend = \"bitcoind\"\n[bitcoind]\nurl = \"http://127.0.0.1:{port}\"\nuser = \"u\"\npassword_file = \"/dev/null\"\n[payouts]\nrpc_timeout_s = 2\n"
    ))
    .await;
    let key = d.issue_key("cautious").await;
    let (status, answer) = d
        .signed(
            "POST",
            "/api/miner/payout_address",
            "cautious",
            &key,
            &json!({"miner_id": "cautious", "address": regtest_address(), "event_id": "a", "ts": now_s()}),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (502, Some("node_error")),
        "{answer}"
    );
    assert!(
        answer["message"].as_str().unwrap().contains("pool's own"),
        "{answer}"
    );
    assert!(d.get("/api/miners/cautious").await.1["payout_address"].is_null());
}

// ---- safe defaults -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_closed_to_other_clients_by_default() {
    let d = daemon("[http]\ntrusted_proxies = [\"127.0.0.1\"]\n").await;
    let r = d
        .http
        .get(format!("{}/metrics", d.url))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        (status, code(&answer)),
        (403, Some("forbidden")),
        "{answer}"
    );
    let r = d
        .http
        .get(format!("{}/metrics", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "loopback still reads them");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shared_development_secret_cannot_sign_pool_reports() {
    let shared = "shared-dev-secret";
    let d = Daemon::start(DaemonOptions {
        config: "[auth]\nallow_shared = true\n".into(),
        env: vec![("POOLDESK_SHARED_SECRET".into(), shared.into())],
        ..Default::default()
    })
    .await;
    let body = serde_json::to_vec(&json!({
        "miner_id": "forger", "worker_name": "rig", "shares": 1000,
        "event_id": "forged-1", "ts": now_s()
    }))
    .unwrap();
    let sig = pooldesk_proto::sig::hmac_sha256_hex(shared.as_bytes(), &body);
    let (status, answer) = d.post_report_raw(&body, Some(&sig)).await;
    assert_eq!(
        (status, code(&answer)),
        (401, Some("bad_signature")),
        "{answer}"
    );
    assert!(miner_balances(&d).is_empty());
    // And the daemon refuses to start with the two secrets equal.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(pooldesk_e2e::daemon::bin("pooldeskd"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--http", "127.0.0.1:0"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("POOLDESK_WALLET_BACKEND", "simulated")
        .env("POOLDESK_AUTH_ALLOW_SHARED", "true")
        .env("REPORT_SHARED_SECRET", "one-secret")
        .env("POOLDESK_SHARED_SECRET", "one-secret")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must differ"), "{stderr}");
    assert!(!stderr.contains("one-secret"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_limit_keys_ipv6_clients_by_their_64() {
    let d = daemon(&format!(
        "{OPEN}registrations_per_ip_per_hour = 2\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n"
    ))
    .await;
    let mut statuses = Vec::new();
    for (i, client) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"]
        .into_iter()
        .enumerate()
    {
        let r = d
            .http
            .post(format!("{}/v1/user/register", d.url))
            .header("x-forwarded-for", client)
            .json(&json!({"user_id": format!("self.v6-{i}"), "auth_method": "hmac_personal", "tier": "TIER_2_DESKTOP"}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap();
        statuses.push((status, code(&answer).map(str::to_string)));
    }
    assert_eq!(statuses[0].0, 201);
    assert_eq!(statuses[1].0, 201);
    assert_eq!(
        statuses[2],
        (429, Some("rate_limited".to_string())),
        "a third address in the same /64 shares its limit: {statuses:?}"
    );
    // Another /64 is not affected.
    let r = d
        .http
        .post(format!("{}/v1/user/register", d.url))
        .header("x-forwarded-for", "2001:db8:1:3::1")
        .json(&json!({"user_id": "self.v6-other", "auth_method": "hmac_personal", "tier": "TIER_2_DESKTOP"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
}

#[test]
fn a_secret_file_readable_by_others_stops_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("report_secret");
    std::fs::write(&secret, "a-report-secret\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(pooldesk_e2e::daemon::bin("pooldeskd"))
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--http", "127.0.0.1:0"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("POOLDESK_WALLET_BACKEND", "simulated")
        .env("REPORT_SHARED_SECRET_FILE", &secret)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&secret.display().to_string()), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains("a-report-secret"), "{stderr}");
}
