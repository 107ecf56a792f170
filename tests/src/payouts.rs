//! Shared setup for payout tests: a Bitcoin Core stand-in (or a real
//! regtest node), a daemon paying through it, and a funded miner with a key
//! and a payout address.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::{Daemon, DaemonOptions, now_s};
use crate::standin::{AddrKind, StandIn, StandInOptions};

/// Where the daemon's wallet lives.
pub struct Node {
    pub url: String,
    pub cookie: String,
    pub wallet: String,
}

pub struct Setup {
    pub standin: Option<StandIn>,
    pub daemon: Daemon,
    pub miner: String,
    pub key: String,
    pub address: String,
}

/// Config for a daemon paying through `node`. `payouts` lines go into the
/// `[payouts]` table; `extra` is appended (other tables).
pub fn config(node: &Node, mode: &str, payouts: &str, extra: &str) -> String {
    // Test defaults, unless the test sets the key itself.
    let mut payouts = payouts.to_string();
    for (key, value) in [
        ("new_address_delay_s", "0"),
        ("batch_interval_s", "3600"),
        ("rpc_timeout_s", "3"),
    ] {
        if !payouts.contains(key) {
            payouts.push_str(&format!("\n{key} = {value}"));
        }
    }
    format!(
        r#"wallet_backend = "bitcoind"
[bitcoind]
url = "{}"
cookie_file = "{}"
wallet = "{}"
[payouts]
mode = "{mode}"
{payouts}
{extra}
"#,
        node.url, node.cookie, node.wallet
    )
}

impl Setup {
    /// A stand-in node and a daemon in `mode` (`hot` or `cold`).
    pub async fn with_standin(mode: &str, payouts: &str, extra: &str) -> Setup {
        let standin = StandIn::start(StandInOptions::default())
            .await
            .expect("stand-in");
        let node = Node {
            url: standin.url(),
            cookie: standin
                .cookie_path()
                .expect("cookie auth")
                .display()
                .to_string(),
            wallet: "pool".into(),
        };
        let address = standin.new_external_address(AddrKind::P2wpkh);
        let mut setup = Setup::with_node(&node, mode, payouts, extra, address).await;
        setup.standin = Some(standin);
        setup
    }

    /// A daemon paying through any node, with a funded miner paid to
    /// `address`.
    pub async fn with_node(
        node: &Node,
        mode: &str,
        payouts: &str,
        extra: &str,
        address: String,
    ) -> Setup {
        Setup::with_node_env(node, mode, payouts, extra, address, Vec::new()).await
    }

    /// [`Setup::with_node`] with extra environment for the daemon.
    pub async fn with_node_env(
        node: &Node,
        mode: &str,
        payouts: &str,
        extra: &str,
        address: String,
        env: Vec<(String, String)>,
    ) -> Setup {
        let daemon = Daemon::start(DaemonOptions {
            config: config(node, mode, payouts, extra),
            env,
            ..Default::default()
        })
        .await;
        let miner = "payee".to_string();
        let key = daemon.issue_key(&miner).await;
        let setup = Setup {
            standin: None,
            daemon,
            miner,
            key,
            address,
        };
        // 100 shares at difficulty 1000 → 100,000 sat.
        setup.fund(&setup.miner.clone(), 100_000).await;
        let (status, answer) = setup
            .set_address(
                &setup.miner.clone(),
                &setup.key.clone(),
                &setup.address.clone(),
            )
            .await;
        assert_eq!(status, 200, "payout address: {answer}");
        setup
    }

    pub fn standin(&self) -> &StandIn {
        self.standin.as_ref().expect("a stand-in setup")
    }

    /// Credits `sat` to a miner through a signed pool report.
    pub async fn fund(&self, miner: &str, sat: u64) {
        let body = serde_json::to_vec(&json!({
            "miner_id": miner, "worker_name": "rig", "shares": sat / 1000, "difficulty": 1000,
            "event_id": format!("fund-{miner}-{}", rand::random::<u64>()), "ts": now_s()
        }))
        .expect("json");
        let (status, answer) = self.daemon.post_signed_report(&body).await;
        assert_eq!(status, 200, "funding: {answer}");
    }

    pub async fn set_address(&self, miner: &str, key: &str, address: &str) -> (u16, Value) {
        self.daemon
            .signed(
                "POST",
                "/api/miner/payout_address",
                miner,
                key,
                &json!({"miner_id": miner, "address": address, "ts": now_s(),
                    "event_id": format!("address-{}", rand::random::<u64>())}),
            )
            .await
    }

    /// A signed withdrawal request; returns its id.
    pub async fn request(&self, amount_btc: &str) -> i64 {
        let (status, answer) = self
            .daemon
            .signed(
                "POST",
                "/api/withdraw",
                &self.miner,
                &self.key,
                &json!({"miner_id": self.miner, "amount": amount_btc, "event_id": format!("w-{}", rand::random::<u64>()), "ts": now_s()}),
            )
            .await;
        assert_eq!(status, 202, "withdraw: {answer}");
        answer["withdrawal_id"].as_i64().expect("withdrawal_id")
    }

    pub async fn approve(&self, id: i64) {
        let (status, answer) = self
            .daemon
            .admin(
                "POST",
                &format!("/api/admin/withdrawals/{id}/approve"),
                None,
            )
            .await;
        assert_eq!(status, 200, "approve: {answer}");
    }

    pub async fn send_batch(&self) -> (u16, Value) {
        self.daemon
            .admin("POST", "/api/admin/send_batch", Some(&json!({})))
            .await
    }

    pub async fn withdrawal(&self, id: i64) -> Value {
        let (status, answer) = self
            .daemon
            .admin("GET", "/api/admin/withdrawals", None)
            .await;
        assert_eq!(status, 200);
        answer["withdrawals"]
            .as_array()
            .expect("list")
            .iter()
            .find(|w| w["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub async fn batch(&self, id: i64) -> Value {
        let (status, answer) = self.daemon.admin("GET", "/api/admin/batches", None).await;
        assert_eq!(status, 200);
        answer["batches"]
            .as_array()
            .expect("list")
            .iter()
            .find(|b| b["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits (up to `timeout`) until a withdrawal reaches one of `states`.
    pub async fn wait_withdrawal(&self, id: i64, states: &[&str], timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let w = self.withdrawal(id).await;
            if states.iter().any(|s| w["state"] == *s) {
                return w;
            }
            assert!(
                Instant::now() < deadline,
                "withdrawal {id} never reached {states:?}: {w}\n{}",
                self.daemon.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The ledger's paid total (payouts:sent) in sat.
    pub fn ledger_paid_sat(&self) -> i64 {
        self.daemon
            .sql_i64("SELECT COALESCE(SUM(balance_msat), 0) / 1000 FROM accounts WHERE name = 'payouts:sent'")
    }
}
