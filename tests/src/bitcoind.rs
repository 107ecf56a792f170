//! A real Bitcoin Core regtest node for end-to-end tests: fresh datadir,
//! random ports, cookie auth, descriptor wallets.
//!
//! The binary comes from `BITCOIND_EXE`, which `contrib/test.sh` sets from
//! `contrib/ci/bitcoind.sh` (found on the machine, or built once from the
//! `py-bitcoinkernel` source distribution and cached). Without it a suite
//! cannot run: [`exe_or_skip`] says why on stderr, records the skip in
//! `$POOLDESK_SKIP_LOG`, and with `CI=true` fails the test instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::daemon::free_port;
use crate::payouts::Node;
use crate::standin::client::{CallError, Creds, RpcClient, amount_sat};
use crate::standin::json::J;

/// The `bitcoind` to test against, or `None` (after saying why) when the
/// suite must be skipped. Panics under `CI=true`: there a suite that cannot
/// run fails the run.
pub fn exe_or_skip(suite: &str) -> Option<PathBuf> {
    let why = match std::env::var_os("BITCOIND_EXE").map(PathBuf::from) {
        Some(exe) if exe.is_file() => return Some(exe),
        Some(exe) => format!("BITCOIND_EXE={} is not a file", exe.display()),
        None => "BITCOIND_EXE is not set, so the tests against a real Bitcoin Core \
                 regtest node did not run (contrib/test.sh sets it from contrib/ci/bitcoind.sh, \
                 which finds or builds one)"
            .to_string(),
    };
    crate::skip::skip_or_fail(suite, &why);
    None
}

fn spawn(exe: &Path, datadir: &Path, rpc_port: u16, p2p_port: u16, extra: &[String]) -> Child {
    Command::new(exe)
        .arg("-regtest")
        .arg(format!("-datadir={}", datadir.display()))
        .arg(format!("-rpcport={rpc_port}"))
        .arg(format!("-port={p2p_port}"))
        .args([
            "-listen=0",
            "-server=1",
            "-fallbackfee=0.0002",
            "-printtoconsole=0",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            // No DNS seeds, no outbound peers, no UPnP/NAT-PMP: a node
            // on its own.
            "-dnsseed=0",
            "-fixedseeds=0",
            "-natpmp=0",
            "-discover=0",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()))
}

/// A running regtest node; killed (and its datadir removed) on drop.
pub struct Bitcoind {
    child: Child,
    dir: tempfile::TempDir,
    /// How it was started, for [`Bitcoind::restart`].
    exe: PathBuf,
    rpc_port: u16,
    p2p_port: u16,
    extra: Vec<String>,
    pub cookie: PathBuf,
    pub url: String,
    pub rpc: RpcClient,
}

impl Drop for Bitcoind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bitcoind {
    /// Starts a node and waits until it answers RPC.
    pub async fn start(exe: &Path) -> Bitcoind {
        Bitcoind::start_with(exe, &[]).await
    }

    /// [`Bitcoind::start`] with extra command-line options.
    pub async fn start_with(exe: &Path, extra: &[&str]) -> Bitcoind {
        let dir = tempfile::tempdir().expect("datadir");
        let rpc_port = free_port();
        let p2p_port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn(exe, dir.path(), rpc_port, p2p_port, &extra);
        let cookie = dir.path().join("regtest").join(".cookie");
        let url = format!("http://127.0.0.1:{rpc_port}");
        let rpc = RpcClient::new(&url, Creds::Cookie(cookie.clone()), Duration::from_secs(60));
        let mut node = Bitcoind {
            child,
            dir,
            exe: exe.to_path_buf(),
            rpc_port,
            p2p_port,
            extra,
            cookie,
            url,
            rpc,
        };
        node.wait_ready().await;
        node
    }

    /// Stops the node (`stop`, then waits for its exit) and starts it again
    /// on the same datadir and ports with `extra` options instead of the
    /// first start's. Wallets are not reloaded: call `loadwallet`.
    pub async fn restart_with(&mut self, extra: &[&str]) {
        let _ = self.try_call(None, "stop", "[]").await;
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "bitcoind did not stop");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = std::fs::remove_file(&self.cookie);
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        self.child = spawn(
            &self.exe,
            self.dir.path(),
            self.rpc_port,
            self.p2p_port,
            &extra,
        );
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if self.cookie.exists() && self.rpc.call(None, "getblockchaininfo", "[]").await.is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("bitcoind exited ({status}) at start:\n{}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "bitcoind did not start:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the node (`stop`, then waits for the process to exit) and
    /// starts it again on the same datadir and ports, with the wallets that
    /// were loaded loaded again. The node writes a new cookie: clients must
    /// read it again.
    pub async fn restart(&mut self) {
        let wallets = self.call(None, "listwallets", "[]").await.to_serde();
        let old_cookie = std::fs::read_to_string(&self.cookie).unwrap_or_default();
        self.call(None, "stop", "[]").await;
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.child.try_wait().expect("bitcoind status").is_none() {
            assert!(Instant::now() < deadline, "bitcoind did not stop");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.child = spawn(
            &self.exe,
            self.dir.path(),
            self.rpc_port,
            self.p2p_port,
            &self.extra,
        );
        self.wait_ready().await;
        for wallet in wallets.as_array().into_iter().flatten() {
            self.call(None, "loadwallet", &json!([wallet]).to_string())
                .await;
        }
        let new_cookie = std::fs::read_to_string(&self.cookie).unwrap_or_default();
        assert_ne!(old_cookie, new_cookie, "the restarted node kept its cookie");
    }

    /// The end of the node's debug.log, for assertion messages.
    pub fn log_tail(&self) -> String {
        let log = self.dir.path().join("regtest").join("debug.log");
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A call that must succeed.
    pub async fn call(&self, wallet: Option<&str>, method: &str, params: &str) -> J {
        self.rpc
            .call(wallet, method, params)
            .await
            .unwrap_or_else(|e| panic!("{method} {params}: {e}"))
    }

    /// A call that may fail.
    pub async fn try_call(
        &self,
        wallet: Option<&str>,
        method: &str,
        params: &str,
    ) -> Result<J, CallError> {
        self.rpc.call(wallet, method, params).await
    }

    /// A descriptor wallet.
    pub async fn create_wallet(&self, name: &str) {
        self.call(
            None,
            "createwallet",
            &json!([name, false, false, "", false, true]).to_string(),
        )
        .await;
    }

    pub async fn new_address(&self, wallet: &str) -> String {
        self.call(Some(wallet), "getnewaddress", "[]")
            .await
            .as_str()
            .expect("address")
            .to_string()
    }

    /// Mines `blocks` blocks paying `address`.
    pub async fn mine(&self, blocks: u32, address: &str) {
        self.call(
            None,
            "generatetoaddress",
            &json!([blocks, address]).to_string(),
        )
        .await;
    }

    /// What `wallet` has received on `address` with at least `minconf`
    /// confirmations, in sat.
    pub async fn received_sat(&self, wallet: &str, address: &str, minconf: u32) -> i64 {
        amount_sat(
            &self
                .call(
                    Some(wallet),
                    "getreceivedbyaddress",
                    &json!([address, minconf]).to_string(),
                )
                .await,
        )
    }

    /// The txids in the node's mempool.
    pub async fn mempool(&self) -> Vec<String> {
        self.call(None, "getrawmempool", "[]")
            .await
            .as_arr()
            .expect("mempool")
            .iter()
            .map(|t| t.as_str().expect("txid").to_string())
            .collect()
    }

    /// Signs a PSBT with `wallet`'s keys, as an offline signer would
    /// (`walletprocesspsbt`); the signed PSBT, base64.
    pub async fn sign_psbt(&self, wallet: &str, psbt: &str) -> String {
        self.call(
            Some(wallet),
            "walletprocesspsbt",
            &json!([psbt]).to_string(),
        )
        .await
        .get("psbt")
        .and_then(|p| p.as_str())
        .expect("signed psbt")
        .to_string()
    }

    /// Someone holding `wallet`'s keys spends the first input of `txid`
    /// elsewhere (to `to`, 50,000 sat of fee: it outbids the original) and
    /// broadcasts it; returns the conflicting txid. Mining it makes `txid`
    /// a transaction that can never confirm.
    pub async fn spend_first_input_elsewhere(&self, wallet: &str, txid: &str, to: &str) -> String {
        let raw = self
            .call(None, "getrawtransaction", &json!([txid, true]).to_string())
            .await
            .to_serde();
        let input = &raw["vin"][0];
        let (prev, vout) = (
            input["txid"].as_str().expect("prev txid").to_string(),
            input["vout"].as_i64().expect("vout"),
        );
        let coin = self
            .call(None, "gettxout", &json!([prev, vout, false]).to_string())
            .await;
        let pay_sat = amount_sat(coin.get("value").expect("value")) - 50_000;
        let unsigned = self
            .call(
                None,
                "createrawtransaction",
                &format!(
                    r#"[[{{"txid":"{prev}","vout":{vout}}}],[{{"{to}":{}.{:08}}}]]"#,
                    pay_sat / 100_000_000,
                    pay_sat % 100_000_000
                ),
            )
            .await;
        let signed = self
            .call(
                Some(wallet),
                "signrawtransactionwithwallet",
                &json!([unsigned.as_str().expect("hex")]).to_string(),
            )
            .await
            .to_serde();
        assert_eq!(signed["complete"], true, "{signed}");
        self.call(
            None,
            "sendrawtransaction",
            &json!([signed["hex"]]).to_string(),
        )
        .await
        .as_str()
        .expect("conflict txid")
        .to_string()
    }

    /// How the daemon reaches `wallet` on this node.
    pub fn node(&self, wallet: &str) -> Node {
        Node {
            url: self.url.clone(),
            cookie: self.cookie.display().to_string(),
            wallet: wallet.into(),
        }
    }
}
