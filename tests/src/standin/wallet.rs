//! A descriptor wallet: BIP84/BIP86 keys, transaction history, balances,
//! coin selection and signing.
//!
//! The wallet never stores balances: everything is derived from its
//! transactions and the node's view (confirmed, in mempool, conflicted), as
//! Core's wallet does, so a replacement, an eviction or a block changes what
//! every RPC reports without any bookkeeping that could drift.

use std::collections::{BTreeSet, HashMap};

use bitcoin::bip32::{ChildNumber, DerivationPath, Fingerprint, KeySource, Xpriv, Xpub};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{All, Keypair, Message, PublicKey, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    Address, CompressedPublicKey, KnownHrp, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Txid, Witness, XOnlyPublicKey, absolute::LockTime, transaction,
};
use rand::RngCore;

use super::amount::fee_for;
use super::describe::with_checksum;
use super::node::{COINBASE_MATURITY, Node, dust_threshold};
use super::verify::sign_taproot_key_spend;

/// Which descriptor a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `wpkh(...)`, BIP84, `bech32`.
    Wpkh,
    /// `tr(...)`, BIP86, `bech32m`.
    Tr,
}

/// A derived key the wallet owns.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub secret: SecretKey,
    pub pubkey: PublicKey,
    pub kind: KeyKind,
    pub internal: bool,
    pub index: u32,
    pub timestamp: u64,
}

/// A transaction the wallet knows, with the metadata Core keeps in `mapValue`.
#[derive(Debug, Clone)]
pub struct WalletTx {
    pub tx: Transaction,
    pub time: u64,
    pub comment: Option<String>,
    pub comment_to: Option<String>,
    pub replaced_by: Option<Txid>,
    pub replaces: Option<Txid>,
    pub abandoned: bool,
}

/// Where a wallet transaction stands, from the node's point of view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TxState {
    Confirmed {
        height: u32,
        index: usize,
    },
    InMempool,
    /// A conflicting transaction is confirmed; `depth` is negative.
    Conflicted {
        depth: i64,
    },
    /// Neither confirmed nor in the mempool (evicted, replaced, abandoned).
    Inactive,
}

/// An output the wallet owns.
#[derive(Debug, Clone)]
pub struct WalletCoin {
    pub outpoint: OutPoint,
    pub txout: TxOut,
    pub depth: i64,
    pub coinbase: bool,
    /// Confirmed, or our own unconfirmed change (Core's "trusted").
    pub safe: bool,
}

/// What to fund: the inputs of `fund`.
#[derive(Debug, Clone)]
pub struct FundRequest {
    pub outputs: Vec<TxOut>,
    pub preset_inputs: Vec<OutPoint>,
    pub add_inputs: bool,
    pub fee_rate_sat_kvb: u64,
    pub subtract_fee_from: Vec<usize>,
    pub replaceable: bool,
    pub locktime: LockTime,
    pub change_position: Option<usize>,
    pub change_script: Option<ScriptBuf>,
    /// Transactions whose outputs must not be used (the one being replaced).
    pub exclude_txids: Vec<Txid>,
}

/// A funded, unsigned transaction.
#[derive(Debug, Clone)]
pub struct Funded {
    pub tx: Transaction,
    pub prevouts: Vec<TxOut>,
    pub fee: u64,
    pub change_pos: Option<usize>,
}

/// A funding failure, with the message Core uses.
#[derive(Debug, Clone)]
pub struct FundError(pub String);

/// Core's hard cap `-maxtxfee` (0.10 BTC).
const MAX_TX_FEE_SAT: u64 = 10_000_000;

pub struct Wallet {
    pub name: String,
    master: Xpriv,
    pub fingerprint: Fingerprint,
    next_index: HashMap<(KeyKind, bool), u32>,
    pub keys: HashMap<ScriptBuf, KeyInfo>,
    /// Address book: receive addresses handed out with a label. Outputs to
    /// our scripts that are not in it are change, as in Core.
    pub labels: HashMap<ScriptBuf, String>,
    pub txs: HashMap<Txid, WalletTx>,
    /// Transactions in the order the wallet first saw them.
    pub order: Vec<Txid>,
    pub locked: BTreeSet<OutPoint>,
    pub private_keys_enabled: bool,
    secp: Secp256k1<All>,
}

impl Wallet {
    /// A fresh wallet with a random seed.
    pub fn new(name: &str, private_keys_enabled: bool) -> Wallet {
        let mut seed = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut seed);
        let secp = Secp256k1::new();
        let master = Xpriv::new_master(Network::Regtest, &seed).expect("32-byte seed");
        let fingerprint = master.fingerprint(&secp);
        Wallet {
            name: name.to_string(),
            master,
            fingerprint,
            next_index: HashMap::new(),
            keys: HashMap::new(),
            labels: HashMap::new(),
            txs: HashMap::new(),
            order: Vec::new(),
            locked: BTreeSet::new(),
            private_keys_enabled,
            secp,
        }
    }

    fn account_path(kind: KeyKind) -> DerivationPath {
        let purpose = match kind {
            KeyKind::Wpkh => 84,
            KeyKind::Tr => 86,
        };
        [purpose, 1, 0]
            .iter()
            .map(|i| ChildNumber::from_hardened_idx(*i).expect("small index"))
            .collect::<Vec<_>>()
            .into()
    }

    /// `m/84'/1'/0'/0/7` style path of a key.
    pub fn key_path(k: &KeyInfo) -> DerivationPath {
        Self::account_path(k.kind).extend([
            ChildNumber::from_normal_idx(k.internal as u32).expect("0/1"),
            ChildNumber::from_normal_idx(k.index).expect("index"),
        ])
    }

    fn account_xpub(&self, kind: KeyKind) -> Xpub {
        let acc = self
            .master
            .derive_priv(&self.secp, &Self::account_path(kind))
            .expect("derivable");
        Xpub::from_priv(&self.secp, &acc)
    }

    /// Derives the next key of a descriptor and returns its script.
    pub fn new_key(&mut self, kind: KeyKind, internal: bool, now: u64) -> ScriptBuf {
        let idx = self.next_index.entry((kind, internal)).or_insert(0);
        let index = *idx;
        *idx += 1;
        let path = Self::account_path(kind).extend([
            ChildNumber::from_normal_idx(internal as u32).expect("0/1"),
            ChildNumber::from_normal_idx(index).expect("index"),
        ]);
        let xpriv = self
            .master
            .derive_priv(&self.secp, &path)
            .expect("derivable");
        let k = KeyInfo {
            secret: xpriv.private_key,
            pubkey: xpriv.private_key.public_key(&self.secp),
            kind,
            internal,
            index,
            timestamp: now,
        };
        let script = self.script_for(&k);
        self.keys.insert(script.clone(), k);
        script
    }

    fn script_for(&self, k: &KeyInfo) -> ScriptBuf {
        match k.kind {
            KeyKind::Wpkh => {
                Address::p2wpkh(&CompressedPublicKey(k.pubkey), KnownHrp::Regtest).script_pubkey()
            }
            KeyKind::Tr => Address::p2tr(
                &self.secp,
                XOnlyPublicKey::from(k.pubkey),
                None,
                KnownHrp::Regtest,
            )
            .script_pubkey(),
        }
    }

    /// `getnewaddress`: a receive address, recorded in the address book.
    pub fn new_address(&mut self, kind: KeyKind, label: &str, now: u64) -> Address {
        let s = self.new_key(kind, false, now);
        self.labels.insert(s.clone(), label.to_string());
        Address::from_script(&s, Network::Regtest).expect("standard script")
    }

    /// `getrawchangeaddress` / change outputs: internal keys, no label.
    pub fn new_change_script(&mut self, now: u64) -> ScriptBuf {
        self.new_key(KeyKind::Wpkh, true, now)
    }

    pub fn is_mine(&self, s: &ScriptBuf) -> bool {
        self.keys.contains_key(s)
    }

    /// Core's `OutputIsChange`: ours and not in the address book.
    pub fn is_change(&self, s: &ScriptBuf) -> bool {
        self.is_mine(s) && !self.labels.contains_key(s)
    }

    /// The key origin `(fingerprint, path)` of one of our scripts.
    pub fn key_source(&self, s: &ScriptBuf) -> Option<(PublicKey, KeySource)> {
        let k = self.keys.get(s)?;
        Some((k.pubkey, (self.fingerprint, Self::key_path(k))))
    }

    /// `wpkh([fp/84'/1'/0'/0/1]02…)#checksum`.
    pub fn desc(&self, s: &ScriptBuf) -> Option<String> {
        let k = self.keys.get(s)?;
        let origin = format!("[{}/{}]", self.fingerprint, path_text(&Self::key_path(k)));
        let d = match k.kind {
            KeyKind::Wpkh => format!("wpkh({origin}{})", k.pubkey),
            KeyKind::Tr => format!("tr({origin}{})", XOnlyPublicKey::from(k.pubkey)),
        };
        Some(with_checksum(&d))
    }

    /// `wpkh([fp/84'/1'/0']tpub…/0/*)#checksum`.
    pub fn parent_desc(&self, s: &ScriptBuf) -> Option<String> {
        let k = self.keys.get(s)?;
        let origin = format!(
            "[{}/{}]{}/{}/*",
            self.fingerprint,
            path_text(&Self::account_path(k.kind)),
            self.account_xpub(k.kind),
            k.internal as u32
        );
        let d = match k.kind {
            KeyKind::Wpkh => format!("wpkh({origin})"),
            KeyKind::Tr => format!("tr({origin})"),
        };
        Some(with_checksum(&d))
    }

    /// Records a transaction if it pays us or spends our coins. Returns
    /// whether it is (now) a wallet transaction.
    pub fn observe(&mut self, tx: &Transaction, node: &Node, now: u64) -> bool {
        let txid = tx.compute_txid();
        if self.txs.contains_key(&txid) {
            return true;
        }
        let pays_us = tx.output.iter().any(|o| self.is_mine(&o.script_pubkey));
        let spends_ours = !tx.is_coinbase()
            && tx.input.iter().any(|i| {
                node.prevout(&i.previous_output)
                    .is_some_and(|o| self.is_mine(&o.script_pubkey))
            });
        if !pays_us && !spends_ours {
            return false;
        }
        self.txs.insert(
            txid,
            WalletTx {
                tx: tx.clone(),
                time: now,
                comment: None,
                comment_to: None,
                replaced_by: None,
                replaces: None,
                abandoned: false,
            },
        );
        self.order.push(txid);
        true
    }

    /// Where a wallet transaction stands. Conflicts propagate to descendants
    /// (bounded depth), as Core's `MarkConflicted` does.
    pub fn state(&self, txid: &Txid, node: &Node) -> TxState {
        self.state_rec(txid, node, 0)
    }

    fn state_rec(&self, txid: &Txid, node: &Node, level: usize) -> TxState {
        if let Some((height, index)) = node.confirmed.get(txid) {
            return TxState::Confirmed {
                height: *height,
                index: *index,
            };
        }
        if node.mempool.contains_key(txid) {
            return TxState::InMempool;
        }
        let Some(wtx) = self.txs.get(txid) else {
            return TxState::Inactive;
        };
        let mut worst: Option<i64> = None;
        for i in &wtx.tx.input {
            if let Some(spender) = node.spent_in_chain.get(&i.previous_output)
                && spender != txid
                && let Some((h, _)) = node.confirmed.get(spender)
            {
                let d = -node.depth_of(*h);
                worst = Some(worst.map_or(d, |w: i64| w.min(d)));
            }
            if level < 32
                && self.txs.contains_key(&i.previous_output.txid)
                && let TxState::Conflicted { depth } =
                    self.state_rec(&i.previous_output.txid, node, level + 1)
            {
                worst = Some(worst.map_or(depth, |w| w.min(depth)));
            }
        }
        match worst {
            Some(depth) => TxState::Conflicted { depth },
            None => TxState::Inactive,
        }
    }

    /// Confirmations: n when mined, 0 unconfirmed, negative when conflicted.
    pub fn depth(&self, txid: &Txid, node: &Node) -> i64 {
        match self.state(txid, node) {
            TxState::Confirmed { height, .. } => node.depth_of(height),
            TxState::Conflicted { depth } => depth,
            TxState::InMempool | TxState::Inactive => 0,
        }
    }

    /// Core's `CachedTxIsTrusted`.
    pub fn is_trusted(&self, txid: &Txid, node: &Node) -> bool {
        self.trusted_rec(txid, node, 0)
    }

    fn trusted_rec(&self, txid: &Txid, node: &Node, level: usize) -> bool {
        let depth = self.depth(txid, node);
        if depth >= 1 {
            return true;
        }
        if depth < 0 || !node.mempool.contains_key(txid) || level > 32 {
            return false;
        }
        let Some(wtx) = self.txs.get(txid) else {
            return false;
        };
        wtx.tx.input.iter().all(|i| {
            self.txs.get(&i.previous_output.txid).is_some_and(|p| {
                p.tx.output
                    .get(i.previous_output.vout as usize)
                    .is_some_and(|o| self.is_mine(&o.script_pubkey))
                    && self.trusted_rec(&i.previous_output.txid, node, level + 1)
            })
        })
    }

    /// Sum of our prevouts spent by `tx` (Core's debit).
    pub fn debit(&self, tx: &Transaction, node: &Node) -> u64 {
        if tx.is_coinbase() {
            return 0;
        }
        tx.input
            .iter()
            .filter_map(|i| node.prevout(&i.previous_output))
            .filter(|o| self.is_mine(&o.script_pubkey))
            .map(|o| o.value.to_sat())
            .sum()
    }

    /// Sum of outputs paying us.
    pub fn credit(&self, tx: &Transaction) -> u64 {
        tx.output
            .iter()
            .filter(|o| self.is_mine(&o.script_pubkey))
            .map(|o| o.value.to_sat())
            .sum()
    }

    /// Blocks until a coinbase output can be spent by the wallet (Core: 0
    /// once 101 deep).
    pub fn blocks_to_maturity(&self, txid: &Txid, node: &Node) -> i64 {
        let Some(w) = self.txs.get(txid) else {
            return 0;
        };
        if !w.tx.is_coinbase() {
            return 0;
        }
        let d = self.depth(txid, node);
        if d <= 0 {
            return 0;
        }
        (COINBASE_MATURITY as i64 + 1 - d).max(0)
    }

    /// Every unspent output of ours, whatever its state (for balances and
    /// `listunspent`). Outputs of conflicted or inactive transactions are
    /// left out: they do not exist from the node's point of view.
    pub fn unspent(&self, node: &Node) -> Vec<WalletCoin> {
        let mut out = Vec::new();
        for txid in &self.order {
            let w = &self.txs[txid];
            let depth = self.depth(txid, node);
            let in_mempool = node.mempool.contains_key(txid);
            if depth < 0 || (depth == 0 && !in_mempool) || w.abandoned {
                continue;
            }
            let safe = depth >= 1 || self.is_trusted(txid, node);
            for (v, o) in w.tx.output.iter().enumerate() {
                let op = OutPoint::new(*txid, v as u32);
                if !self.is_mine(&o.script_pubkey) || node.is_spent(&op) {
                    continue;
                }
                out.push(WalletCoin {
                    outpoint: op,
                    txout: o.clone(),
                    depth,
                    coinbase: w.tx.is_coinbase(),
                    safe,
                });
            }
        }
        out
    }

    /// Coins coin selection may use: safe, mature, not locked.
    pub fn spendable(&self, node: &Node) -> Vec<WalletCoin> {
        self.unspent(node)
            .into_iter()
            .filter(|c| {
                c.safe
                    && !self.locked.contains(&c.outpoint)
                    && self.blocks_to_maturity(&c.outpoint.txid, node) == 0
            })
            .collect()
    }

    /// `(trusted, untrusted_pending, immature)` in sat, as `getbalances`.
    pub fn balances(&self, node: &Node) -> (u64, u64, u64) {
        let (mut trusted, mut pending, mut immature) = (0, 0, 0);
        for c in self.unspent(node) {
            let v = c.txout.value.to_sat();
            if c.coinbase && self.blocks_to_maturity(&c.outpoint.txid, node) > 0 {
                immature += v;
            } else if c.safe {
                trusted += v;
            } else {
                pending += v;
            }
        }
        (trusted, pending, immature)
    }

    /// Picks inputs and change for `req` at the requested fee rate.
    ///
    /// Strategy: preset inputs first, then largest coins first (ties by
    /// outpoint), until outputs plus the fee of the transaction as it would be
    /// once signed are covered. The fee is `ceil(rate × vsize)` with vsize
    /// estimated from 72-byte signatures, as Core's dummy signer, so the real
    /// fee rate is never below the requested one. Change above dust goes to a
    /// fresh internal address; smaller change is left to the fee.
    pub fn fund(&mut self, node: &Node, req: &FundRequest, now: u64) -> Result<Funded, FundError> {
        for o in &req.outputs {
            if o.value.to_sat() < dust_threshold(&o.script_pubkey) {
                return Err(FundError("Transaction amount too small".into()));
            }
        }
        let spendable = self.spendable(node);
        let mut selected: Vec<(OutPoint, TxOut)> = Vec::new();
        for op in &req.preset_inputs {
            let o = self
                .unspent(node)
                .into_iter()
                .find(|c| &c.outpoint == op)
                .map(|c| c.txout)
                .or_else(|| {
                    // A preset input may be one of ours spent by the tx we
                    // are replacing (bumpfee): it is in the chain or mempool.
                    node.prevout(op).filter(|o| self.is_mine(&o.script_pubkey))
                })
                .ok_or_else(|| FundError(format!("Not found pre-selected input {op}")))?;
            selected.push((*op, o));
        }
        let mut candidates: Vec<WalletCoin> = spendable
            .into_iter()
            .filter(|c| !req.preset_inputs.contains(&c.outpoint))
            .filter(|c| !req.exclude_txids.contains(&c.outpoint.txid))
            .collect();
        candidates.sort_by(|a, b| {
            b.txout
                .value
                .cmp(&a.txout.value)
                .then(a.outpoint.cmp(&b.outpoint))
        });
        let mut candidates = candidates.into_iter();
        let change_script = req
            .change_script
            .clone()
            .unwrap_or_else(|| ScriptBuf::from_bytes(vec![0; 22]));
        let change_out = TxOut {
            value: bitcoin::Amount::ZERO,
            script_pubkey: change_script.clone(),
        };
        let recipients: u64 = req.outputs.iter().map(|o| o.value.to_sat()).sum();
        let sffo = !req.subtract_fee_from.is_empty();
        loop {
            let inputs_kinds: Vec<&ScriptBuf> =
                selected.iter().map(|(_, o)| &o.script_pubkey).collect();
            let sum_in: u64 = selected.iter().map(|(_, o)| o.value.to_sat()).sum();
            let mut outs = req.outputs.clone();
            let fee_without = fee_for(req.fee_rate_sat_kvb, estimate_vsize(&inputs_kinds, &outs));
            outs.push(change_out.clone());
            let fee_with = fee_for(req.fee_rate_sat_kvb, estimate_vsize(&inputs_kinds, &outs));
            let enough = if sffo {
                !selected.is_empty() && sum_in >= recipients
            } else {
                !selected.is_empty() && sum_in >= recipients + fee_without
            };
            if enough {
                let (change, fee) = if sffo {
                    let excess = sum_in - recipients;
                    if excess >= dust_threshold(&change_script) {
                        (Some(excess), fee_with)
                    } else {
                        (None, fee_without.saturating_sub(excess))
                    }
                } else {
                    match (sum_in - recipients).checked_sub(fee_with) {
                        Some(c) if c >= dust_threshold(&change_script) => (Some(c), fee_with),
                        _ => (None, sum_in - recipients),
                    }
                };
                // With subtract-fee-from-outputs, `fee` is what the listed
                // recipients pay; otherwise it is the whole fee.
                let mut outputs = req.outputs.clone();
                if sffo {
                    let n = req.subtract_fee_from.len() as u64;
                    for (k, idx) in req.subtract_fee_from.iter().enumerate() {
                        let share = fee / n + if k == 0 { fee % n } else { 0 };
                        let o = &mut outputs[*idx];
                        let v = o.value.to_sat();
                        if v < share || v - share < dust_threshold(&o.script_pubkey) {
                            return Err(FundError(
                                "The transaction amount is too small to pay the fee".into(),
                            ));
                        }
                        o.value = bitcoin::Amount::from_sat(v - share);
                    }
                }
                let mut change_pos = None;
                if let Some(c) = change {
                    let script = match &req.change_script {
                        Some(s) => s.clone(),
                        None => self.new_change_script(now),
                    };
                    let pos = req
                        .change_position
                        .unwrap_or(outputs.len())
                        .min(outputs.len());
                    outputs.insert(
                        pos,
                        TxOut {
                            value: bitcoin::Amount::from_sat(c),
                            script_pubkey: script,
                        },
                    );
                    change_pos = Some(pos);
                }
                let sequence = if req.replaceable {
                    Sequence::ENABLE_RBF_NO_LOCKTIME
                } else {
                    Sequence::ENABLE_LOCKTIME_NO_RBF
                };
                let tx = Transaction {
                    version: transaction::Version::TWO,
                    lock_time: req.locktime,
                    input: selected
                        .iter()
                        .map(|(op, _)| TxIn {
                            previous_output: *op,
                            script_sig: ScriptBuf::new(),
                            sequence,
                            witness: Witness::new(),
                        })
                        .collect(),
                    output: outputs,
                };
                let value_out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
                let real_fee = sum_in - value_out;
                if real_fee > MAX_TX_FEE_SAT {
                    return Err(FundError(
                        "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)"
                            .into(),
                    ));
                }
                return Ok(Funded {
                    prevouts: selected.iter().map(|(_, o)| o.clone()).collect(),
                    tx,
                    fee: real_fee,
                    change_pos,
                });
            }
            if !req.add_inputs && !selected.is_empty() {
                return Err(FundError("Insufficient funds".into()));
            }
            match candidates.next() {
                Some(c) => selected.push((c.outpoint, c.txout)),
                None => return Err(FundError("Insufficient funds".into())),
            }
        }
    }

    /// Signs every input we have the key for. Returns whether all inputs
    /// are signed.
    pub fn sign(&self, tx: &mut Transaction, prevouts: &[TxOut]) -> bool {
        let mut complete = true;
        for i in 0..tx.input.len() {
            match self.sign_input(tx, i, prevouts) {
                Some(w) => tx.input[i].witness = w,
                None => complete = false,
            }
        }
        complete
    }

    /// The witness for input `i` if it spends one of our keys.
    pub fn sign_input(&self, tx: &Transaction, i: usize, prevouts: &[TxOut]) -> Option<Witness> {
        if !self.private_keys_enabled {
            return None;
        }
        let prev = prevouts.get(i)?;
        let k = self.keys.get(&prev.script_pubkey)?;
        match k.kind {
            KeyKind::Wpkh => {
                let sig = self.ecdsa_sig(tx, i, prev)?;
                Some(Witness::p2wpkh(&sig, &k.pubkey))
            }
            KeyKind::Tr => {
                let kp = Keypair::from_secret_key(&self.secp, &k.secret);
                let sig = sign_taproot_key_spend(&self.secp, tx, i, prevouts, &kp).ok()?;
                Some(Witness::p2tr_key_spend(&sig))
            }
        }
    }

    /// A low-R SIGHASH_ALL signature for a P2WPKH input of ours.
    pub fn ecdsa_sig(
        &self,
        tx: &Transaction,
        i: usize,
        prev: &TxOut,
    ) -> Option<bitcoin::ecdsa::Signature> {
        let k = self.keys.get(&prev.script_pubkey)?;
        let mut cache = SighashCache::new(tx);
        let h = cache
            .p2wpkh_signature_hash(i, &prev.script_pubkey, prev.value, EcdsaSighashType::All)
            .ok()?;
        let msg = Message::from_digest(h.to_byte_array());
        Some(bitcoin::ecdsa::Signature::sighash_all(
            self.secp.sign_ecdsa_low_r(&msg, &k.secret),
        ))
    }
}

/// `84'/1'/0'/0/1` (Core writes `'` for hardened steps, no leading `m/`).
pub fn path_text(p: &DerivationPath) -> String {
    p.to_string().trim_start_matches("m/").replace('h', "'")
}

/// Serialized size of an output.
fn output_size(o: &TxOut) -> usize {
    8 + bitcoin::VarInt(o.script_pubkey.len() as u64).size() + o.script_pubkey.len()
}

/// The vsize the transaction will have once signed, assuming 72-byte ECDSA
/// signatures (Core's dummy signer) and 64-byte Schnorr signatures.
pub fn estimate_vsize(inputs: &[&ScriptBuf], outputs: &[TxOut]) -> u64 {
    let base = 4
        + bitcoin::VarInt(inputs.len() as u64).size()
        + inputs.len() * 41
        + bitcoin::VarInt(outputs.len() as u64).size()
        + outputs.iter().map(output_size).sum::<usize>()
        + 4;
    let witness: usize = inputs
        .iter()
        .map(|s| {
            if s.is_p2tr() {
                1 + 1 + 64
            } else {
                1 + 1 + 72 + 1 + 33
            }
        })
        .sum();
    let weight = base * 4 + if witness > 0 { 2 + witness } else { 0 };
    weight.div_ceil(4) as u64
}
