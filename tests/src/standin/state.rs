//! Node plus wallets: the whole simulated `bitcoind`, behind one lock.
//!
//! Every RPC and every test control call takes the lock once, does its work
//! synchronously and lets go. Nothing inside awaits, so a std `Mutex` is the
//! right tool and there is no lock order to get wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::{BlockHash, ScriptBuf, Transaction};

use super::node::{Accepted, Node, Reject};
use super::wallet::Wallet;

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct State {
    pub node: Node,
    /// All wallets, loaded or not (an unloaded wallet can be loaded again).
    pub wallets: BTreeMap<String, Wallet>,
    /// Names of the wallets loaded, as `listwallets` shows.
    pub loaded: BTreeSet<String>,
    /// The wallet that holds "external" addresses for tests; hidden from
    /// RPC unless it was asked for as a regular wallet.
    pub external: String,
    /// The pool's wallet (the first configured one): initial coins and the
    /// test controls that act "as the daemon's wallet" use it.
    pub primary: String,
    /// `estimatesmartfee` answer in sat/kvB; `None` as on a fresh regtest.
    pub fee_estimate_sat_kvb: Option<u64>,
    /// When the node (re)started, for `uptime`.
    pub started: u64,
}

impl State {
    pub fn new(wallet_names: &[String]) -> State {
        let mut wallets = BTreeMap::new();
        let mut loaded = BTreeSet::new();
        for n in wallet_names {
            wallets.insert(n.clone(), Wallet::new(n, true));
            loaded.insert(n.clone());
        }
        let external = if wallet_names.iter().any(|n| n == "recv") {
            "recv".to_string()
        } else {
            let name = "standin-external".to_string();
            wallets.insert(name.clone(), Wallet::new(&name, true));
            name
        };
        let primary = wallet_names
            .first()
            .cloned()
            .unwrap_or_else(|| external.clone());
        State {
            node: Node::new(),
            wallets,
            loaded,
            external,
            primary,
            fee_estimate_sat_kvb: None,
            started: now(),
        }
    }

    /// Puts a transaction through mempool acceptance and, if accepted, lets
    /// every wallet see it.
    pub fn submit(
        &mut self,
        tx: &Transaction,
        max_fee_rate_sat_kvb: u64,
    ) -> Result<Accepted, Reject> {
        let t = now();
        let acc = self.node.accept(tx, false, max_fee_rate_sat_kvb, t)?;
        for w in self.wallets.values_mut() {
            w.observe(tx, &self.node, t);
            // A spent coin no longer needs its lock (Core forgets it too).
            for i in &tx.input {
                w.locked.remove(&i.previous_output);
            }
        }
        Ok(acc)
    }

    /// Mines `n` blocks to `script`; the mempool goes into the first.
    pub fn mine(&mut self, n: u32, script: &ScriptBuf) -> Vec<BlockHash> {
        let mut hashes = Vec::new();
        for _ in 0..n {
            let t = now();
            let h = self.node.mine_block(script, t);
            let block = self.node.tip().block.clone();
            for tx in &block.txdata {
                for w in self.wallets.values_mut() {
                    w.observe(tx, &self.node, t);
                }
            }
            hashes.push(h);
        }
        hashes
    }

    /// A fresh receive address of the external wallet (the script).
    pub fn external_script(&mut self, kind: super::wallet::KeyKind) -> String {
        let w = self
            .wallets
            .get_mut(&self.external)
            .expect("external wallet exists");
        w.new_address(kind, "", now()).to_string()
    }

    /// Satoshis paid to `script` by confirmed and mempool transactions.
    pub fn received_by(&self, script: &ScriptBuf) -> u64 {
        let sum = |tx: &Transaction| -> u64 {
            tx.output
                .iter()
                .filter(|o| &o.script_pubkey == script)
                .map(|o| o.value.to_sat())
                .sum()
        };
        let confirmed: u64 = self
            .node
            .blocks
            .iter()
            .flat_map(|b| b.block.txdata.iter())
            .map(sum)
            .sum();
        let pending: u64 = self.node.mempool.values().map(|e| sum(&e.tx)).sum();
        confirmed + pending
    }
}
