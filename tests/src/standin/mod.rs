//! A regtest-faithful Bitcoin Core JSON-RPC stand-in for payout tests.
//!
//! Bitcoin Core cannot be installed where pooldesk's tests run, yet payouts
//! must be tested through the same JSON-RPC a daemon uses in production. This
//! module serves that RPC on `127.0.0.1` from an in-memory regtest chain with
//! real keys, real transactions, real PSBTs and real signature checks (the
//! `bitcoin` crate), answering with the envelopes, HTTP statuses, error codes
//! and messages recorded from Core in `tests/data/exchanges.json`.
//!
//! Tests drive it through [`StandIn`]: mine, make external addresses, check
//! what an address received ("paid exactly once"), inject faults (an error, a
//! spend whose answer never arrives, a reset connection, an HTTP status, a
//! slow or dead node) and simulate restarts, evictions and replacements made
//! behind the daemon's back. The `bitcoind-standin` binary serves the same
//! thing out of process, with `standin_*` RPCs for the controls.
//!
//! Layout: [`http`] (transport, auth, faults applied), [`rpc`] (envelopes,
//! params, method table), [`chain_rpc`], [`wallet_rpc`], [`wallet_send`] and
//! [`psbt`] (method bodies), [`node`] (chain, UTXO set, mempool), [`wallet`] (keys, history,
//! coin selection, signing), [`verify`] (script checks), [`amount`] and
//! [`json`] (exact money text), [`faults`], [`control`].
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use pooldesk_e2e::standin::{AddrKind, Fault, StandIn, StandInOptions};
//! let node = StandIn::start(StandInOptions::default()).await?; // 101 blocks, 50 BTC spendable
//! let miner = node.new_external_address(AddrKind::P2tr);
//! // Point the daemon at node.url() with the cookie at node.cookie_path(),
//! // wallet path /wallet/pool. Make its next sendmany spend but never answer:
//! node.inject(Fault::TimeoutAfterSpend { method: "sendmany".into() });
//! // … run the payout; then assert it paid exactly once after reconciling:
//! assert_eq!(node.received_by(&miner), 100_000);
//! node.mine(1);
//! node.stop().await;
//! # Ok(()) }
//! ```
//!
//! Architecture invariant: test support only. Nothing in the shipped daemon
//! depends on this module.

pub mod amount;
pub mod chain_rpc;
pub mod client;
pub mod control;
pub mod describe;
pub mod faults;
pub mod http;
pub mod json;
pub mod node;
pub mod psbt;
pub mod rpc;
pub mod state;
pub mod verify;
pub mod wallet;
pub mod wallet_rpc;
pub mod wallet_send;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::Fault;
pub use http::RecordedCall;

use http::Shared;
use state::{State, now};
use wallet::KeyKind;

/// How clients authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Core's cookie file `<dir>/.cookie` with `__cookie__:<64 hex>`;
    /// `None` puts it in a temporary directory owned by the [`StandIn`].
    Cookie { dir: Option<PathBuf> },
    /// Fixed `-rpcuser`/`-rpcpassword`.
    UserPass { user: String, password: String },
}

/// Options of [`StandIn::start`].
#[derive(Debug, Clone)]
pub struct StandInOptions {
    pub auth: Auth,
    /// Wallets loaded at start; the first is the pool's. Default `["pool"]`.
    pub wallets: Vec<String>,
    /// Blocks mined to the first wallet at start. The default 101 leaves
    /// 50 BTC spendable and 5000 BTC immature, as in exchanges.json.
    pub initial_blocks: u32,
    /// TCP port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

impl Default for StandInOptions {
    fn default() -> Self {
        StandInOptions {
            auth: Auth::Cookie { dir: None },
            wallets: vec!["pool".to_string()],
            initial_blocks: 101,
            port: 0,
        }
    }
}

/// Address types for [`StandIn::new_external_address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrKind {
    P2wpkh,
    P2tr,
}

/// A running stand-in. Dropping it stops the server too.
pub struct StandIn {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<JoinHandle<()>>,
    _tempdir: Option<tempfile::TempDir>,
}

impl StandIn {
    /// Starts serving on `127.0.0.1`, with the initial chain mined.
    pub async fn start(opts: StandInOptions) -> anyhow::Result<StandIn> {
        let mut st = State::new(&opts.wallets);
        if opts.initial_blocks > 0 {
            let primary = st.primary.clone();
            let w = st.wallets.get_mut(&primary).expect("primary wallet");
            let a = w.new_address(KeyKind::Wpkh, "", now());
            st.mine(opts.initial_blocks, &a.script_pubkey());
        }
        let mut tempdir = None;
        let (credentials, cookie_path) = match &opts.auth {
            Auth::UserPass { user, password } => (format!("{user}:{password}"), None),
            Auth::Cookie { dir } => {
                let dir = match dir {
                    Some(d) => d.clone(),
                    None => {
                        let t = tempfile::tempdir().context("temp dir for the cookie")?;
                        let p = t.path().to_path_buf();
                        tempdir = Some(t);
                        p
                    }
                };
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join(".cookie");
                (write_cookie(&path)?, Some(path))
            }
        };
        let listener = TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .context("binding the stand-in's port")?;
        let addr = listener.local_addr()?;
        let (restart, _) = watch::channel(0u64);
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            faults: Default::default(),
            calls: Mutex::new(Vec::new()),
            credentials: Mutex::new(credentials),
            cookie_path,
            unresponsive: AtomicBool::new(false),
            restart,
            shutdown,
        });
        let server = tokio::spawn(http::serve(listener, shared.clone()));
        Ok(StandIn {
            shared,
            addr,
            server: Some(server),
            _tempdir: tempdir,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The cookie file, in cookie mode.
    pub fn cookie_path(&self) -> Option<PathBuf> {
        self.shared.cookie_path.clone()
    }

    /// The `user:password` currently accepted (the cookie's content in
    /// cookie mode).
    pub fn credentials(&self) -> String {
        self.shared
            .credentials
            .lock()
            .expect("credentials lock")
            .clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().expect("state lock")
    }

    /// Mines `n` blocks to an external address (the mempool goes into the
    /// first); returns the block hashes.
    pub fn mine(&self, n: u32) -> Vec<String> {
        control::mine(&mut self.state(), n)
    }

    /// A fresh address of a wallet the daemon does not own.
    pub fn new_external_address(&self, kind: AddrKind) -> String {
        let k = match kind {
            AddrKind::P2wpkh => KeyKind::Wpkh,
            AddrKind::P2tr => KeyKind::Tr,
        };
        self.state().external_script(k)
    }

    /// Satoshis paid to `address` by confirmed and mempool transactions
    /// (replaced or evicted ones no longer count).
    pub fn received_by(&self, address: &str) -> u64 {
        match chain_rpc::parse_address(address) {
            Some(a) => self.state().received_by(&a.script_pubkey()),
            None => 0,
        }
    }

    /// Every request received so far, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.calls.lock().expect("calls lock").clone()
    }

    /// How many requests called `method`.
    pub fn count_calls(&self, method: &str) -> usize {
        self.shared
            .calls
            .lock()
            .expect("calls lock")
            .iter()
            .filter(|c| c.method == method)
            .count()
    }

    /// What `estimatesmartfee` (and wallet sends without `fee_rate`) use;
    /// `None` is a fresh regtest node: no estimate.
    pub fn set_fee_estimate(&self, sat_vb: Option<u64>) {
        self.state().fee_estimate_sat_kvb = sat_vb.map(|r| r * 1000);
    }

    /// Queues a fault for the next call of its method.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.push(fault);
    }

    /// Faults queued and not yet triggered.
    pub fn pending_faults(&self) -> usize {
        self.shared.faults.len()
    }

    /// While on, every non-control request is accepted and then never
    /// answered nor executed (a dead node). Requests caught by it stay hung.
    pub fn set_unresponsive(&self, on: bool) {
        self.shared.unresponsive.store(on, Ordering::SeqCst);
    }

    /// Simulates a node restart: a new cookie (old credentials get 401),
    /// open connections closed, `uptime` reset; chain, mempool and wallets
    /// kept (Core persists the mempool).
    pub async fn restart(&self) {
        if let Some(path) = &self.shared.cookie_path {
            let c = write_cookie(path).expect("rewriting the cookie file");
            *self.shared.credentials.lock().expect("credentials lock") = c;
        }
        self.state().started = now();
        self.shared.restart.send_modify(|g| *g += 1);
        tokio::task::yield_now().await;
    }

    /// Evicts `txid` (and descendants) from the mempool: `gettransaction`
    /// shows confirmations 0 and not trusted; its inputs are spendable again.
    pub fn drop_from_mempool(&self, txid: &str) {
        control::drop_from_mempool(&mut self.state(), txid).expect("drop_from_mempool");
    }

    /// Runs `bumpfee` on the pool wallet behind the daemon's back; returns
    /// the replacement's txid.
    pub fn replace_with_bump(&self, txid: &str, fee_rate_sat_vb: u64) -> String {
        control::replace_with_bump(&mut self.state(), txid, fee_rate_sat_vb)
            .expect("replace_with_bump")
    }

    /// Sum of the pool wallet's unspent outputs (any state).
    pub fn wallet_utxo_total(&self) -> u64 {
        control::wallet_utxo_total(&self.state())
    }

    /// Spends every spendable coin of the pool wallet to an external
    /// address (in the mempool; `mine` to confirm).
    pub fn drain_wallet(&self) {
        control::drain_wallet(&mut self.state()).expect("drain_wallet");
    }

    /// Runs a closure on the state, for assertions no RPC exposes.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state())
    }

    /// Stops serving and waits for the accept loop to end; open connections
    /// are closed.
    pub async fn stop(mut self) {
        let _ = self.shared.shutdown.send(true);
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.shared.shutdown.send(true);
    }
}

/// Writes a fresh Core-format cookie and returns its content.
fn write_cookie(path: &Path) -> anyhow::Result<String> {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let content = format!("__cookie__:{}", hex::encode(secret));
    // Write then rename, so a reader never sees a half-written cookie.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(content)
}
