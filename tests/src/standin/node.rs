//! The simulated regtest node: blocks, the UTXO set and the mempool.
//!
//! Everything here is real consensus data built with the `bitcoin` crate:
//! blocks have valid regtest proof of work, merkle roots and BIP141 witness
//! commitments; transactions enter the mempool only when their inputs exist,
//! their signatures verify and they pay at least the minimum relay fee.
//! Nothing is ever reorganised: the stand-in has a single chain.

use std::collections::{HashMap, HashSet};

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::pow::CompactTarget;
use bitcoin::script::Builder;
use bitcoin::secp256k1::{Secp256k1, VerifyOnly};
use bitcoin::{
    Amount, Block, BlockHash, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Txid, Witness, absolute::LockTime, transaction,
};

use super::verify;

/// Core's `COINBASE_MATURITY`.
pub const COINBASE_MATURITY: u32 = 100;
/// Regtest halves the subsidy every 150 blocks.
const HALVING_INTERVAL: u32 = 150;
/// Core's default `-minrelaytxfee` and `-incrementalrelayfee`, sat/kvB.
pub const MIN_RELAY_SAT_KVB: u64 = 1000;
/// Core's default `maxfeerate` of `sendrawtransaction`/`testmempoolaccept`:
/// 0.10 BTC/kvB.
pub const DEFAULT_MAX_FEE_RATE_SAT_KVB: u64 = 10_000_000;

/// A confirmed, unspent output.
#[derive(Debug, Clone)]
pub struct Coin {
    pub txout: TxOut,
    pub height: u32,
    pub coinbase: bool,
}

/// A block of the active chain.
#[derive(Debug, Clone)]
pub struct BlockInfo {
    pub block: Block,
    pub hash: BlockHash,
    pub height: u32,
    /// Serialized size, kept so `getblockchaininfo` stays O(1) per block.
    pub size: usize,
}

/// A transaction waiting in the mempool.
#[derive(Debug, Clone)]
pub struct MempoolEntry {
    pub tx: Transaction,
    pub fee: u64,
    pub vsize: u64,
    pub weight: u64,
    pub time: u64,
    pub height: u32,
}

/// Why a transaction was refused, with the RPC error Core maps it to.
#[derive(Debug, Clone, PartialEq)]
pub enum Reject {
    /// Already in the mempool (`sendrawtransaction` answers the txid).
    AlreadyInMempool,
    /// Its outputs are already in the UTXO set.
    AlreadyInChain,
    /// An input does not exist or is already spent in the chain.
    MissingInputs,
    /// Fee rate above `maxfeerate`.
    MaxFeeExceeded,
    /// Any policy/consensus failure; the string is Core's reject reason.
    Invalid(String),
}

impl Reject {
    /// The `reject-reason` of `testmempoolaccept`.
    pub fn reason(&self) -> String {
        match self {
            Reject::AlreadyInMempool => "txn-already-in-mempool".into(),
            Reject::AlreadyInChain => "txn-already-known".into(),
            Reject::MissingInputs => "missing-inputs".into(),
            Reject::MaxFeeExceeded => "max-fee-exceeded".into(),
            Reject::Invalid(r) => r.clone(),
        }
    }
}

/// What the mempool accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub txid: Txid,
    pub fee: u64,
    pub vsize: u64,
    /// Mempool transactions evicted by this replacement (BIP125).
    pub replaced: Vec<Txid>,
}

/// The chain state and mempool.
pub struct Node {
    pub blocks: Vec<BlockInfo>,
    pub utxos: HashMap<OutPoint, Coin>,
    /// Every transaction ever seen (like `-txindex=1` plus the mempool).
    pub txindex: HashMap<Txid, Transaction>,
    /// Confirmed txid → (height, index in block).
    pub confirmed: HashMap<Txid, (u32, usize)>,
    /// Outpoint → the confirmed transaction that spent it.
    pub spent_in_chain: HashMap<OutPoint, Txid>,
    /// Mempool in acceptance order, which is also a valid topological order.
    pub mempool_order: Vec<Txid>,
    pub mempool: HashMap<Txid, MempoolEntry>,
    pub mempool_spends: HashMap<OutPoint, Txid>,
    secp: Secp256k1<VerifyOnly>,
}

impl Default for Node {
    fn default() -> Self {
        Self::new()
    }
}

impl Node {
    /// A chain holding only the regtest genesis block.
    pub fn new() -> Node {
        let genesis = bitcoin::blockdata::constants::genesis_block(Network::Regtest);
        let hash = genesis.block_hash();
        let size = bitcoin::consensus::encode::serialize(&genesis).len();
        Node {
            blocks: vec![BlockInfo {
                block: genesis,
                hash,
                height: 0,
                size,
            }],
            utxos: HashMap::new(),
            txindex: HashMap::new(),
            confirmed: HashMap::new(),
            spent_in_chain: HashMap::new(),
            mempool_order: Vec::new(),
            mempool: HashMap::new(),
            mempool_spends: HashMap::new(),
            secp: Secp256k1::verification_only(),
        }
    }

    pub fn height(&self) -> u32 {
        self.blocks.len() as u32 - 1
    }

    pub fn tip(&self) -> &BlockInfo {
        self.blocks.last().expect("genesis always present")
    }

    /// Confirmations of a block at `height` (1 for the tip).
    pub fn depth_of(&self, height: u32) -> i64 {
        self.height() as i64 - height as i64 + 1
    }

    pub fn block_by_hash(&self, hash: &BlockHash) -> Option<&BlockInfo> {
        self.blocks.iter().find(|b| &b.hash == hash)
    }

    /// Median of the last 11 block times (BIP113).
    pub fn median_time(&self) -> u32 {
        let mut t: Vec<u32> = self
            .blocks
            .iter()
            .rev()
            .take(11)
            .map(|b| b.block.header.time)
            .collect();
        t.sort_unstable();
        t[t.len() / 2]
    }

    /// Whether an outpoint is spent by the chain or by a mempool transaction.
    pub fn is_spent(&self, op: &OutPoint) -> bool {
        self.spent_in_chain.contains_key(op) || self.mempool_spends.contains_key(op)
    }

    /// The output an outpoint refers to, if its transaction is known.
    pub fn prevout(&self, op: &OutPoint) -> Option<TxOut> {
        self.txindex
            .get(&op.txid)
            .and_then(|t| t.output.get(op.vout as usize).cloned())
    }

    /// The output if it can be spent now: unspent in the chain and mempool.
    fn spendable_prevout(&self, op: &OutPoint) -> Option<(TxOut, Option<&Coin>)> {
        if let Some(c) = self.utxos.get(op) {
            return Some((c.txout.clone(), Some(c)));
        }
        let e = self.mempool.get(&op.txid)?;
        e.tx.output.get(op.vout as usize).map(|o| (o.clone(), None))
    }

    /// Core's mempool acceptance, in the order Core checks things.
    /// `test_only` is `testmempoolaccept`: nothing changes.
    pub fn accept(
        &mut self,
        tx: &Transaction,
        test_only: bool,
        max_fee_rate_sat_kvb: u64,
        now: u64,
    ) -> Result<Accepted, Reject> {
        let txid = tx.compute_txid();
        if tx.input.is_empty() {
            return Err(Reject::Invalid("bad-txns-vin-empty".into()));
        }
        if tx.output.is_empty() {
            return Err(Reject::Invalid("bad-txns-vout-empty".into()));
        }
        if tx.is_coinbase() {
            return Err(Reject::Invalid("coinbase".into()));
        }
        let mut seen = HashSet::new();
        if !tx.input.iter().all(|i| seen.insert(i.previous_output)) {
            return Err(Reject::Invalid("bad-txns-inputs-duplicate".into()));
        }
        if self.mempool.contains_key(&txid) {
            return Err(Reject::AlreadyInMempool);
        }
        let dust: Vec<&TxOut> = tx
            .output
            .iter()
            .filter(|o| (o.value.to_sat()) < dust_threshold(&o.script_pubkey))
            .collect();
        if !dust.is_empty() {
            return Err(Reject::Invalid("dust".into()));
        }
        // Collect prevouts and conflicts.
        let mut prevouts = Vec::with_capacity(tx.input.len());
        let mut conflicts: Vec<Txid> = Vec::new();
        for input in &tx.input {
            let op = input.previous_output;
            match self.spendable_prevout(&op) {
                Some((out, coin)) => {
                    if let Some(c) = coin
                        && c.coinbase
                        && self.height() + 1 - c.height < COINBASE_MATURITY
                    {
                        return Err(Reject::Invalid(format!(
                            "bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth {}",
                            self.height() + 1 - c.height
                        )));
                    }
                    if let Some(other) = self.mempool_spends.get(&op)
                        && !conflicts.contains(other)
                    {
                        conflicts.push(*other);
                    }
                    prevouts.push(out);
                }
                None => {
                    // Are inputs missing because we already have the tx?
                    if (0..tx.output.len() as u32)
                        .any(|v| self.utxos.contains_key(&OutPoint::new(txid, v)))
                    {
                        return Err(Reject::AlreadyInChain);
                    }
                    return Err(Reject::MissingInputs);
                }
            }
        }
        let value_in: u64 = prevouts.iter().map(|o| o.value.to_sat()).sum();
        let value_out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        if value_in < value_out {
            return Err(Reject::Invalid(format!(
                "bad-txns-in-belowout, value in ({}) < value out ({})",
                crate::standin::amount::btc_text(value_in as i64),
                crate::standin::amount::btc_text(value_out as i64)
            )));
        }
        let fee = value_in - value_out;
        let vsize = tx.vsize() as u64;
        let weight = tx.weight().to_wu();
        // Replacement rules (BIP125, as Core 23 without full-RBF).
        let replaced = self.with_descendants(&conflicts);
        if tx
            .input
            .iter()
            .any(|i| replaced.contains(&i.previous_output.txid))
        {
            return Err(Reject::Invalid("bad-txns-spends-conflicting-tx".into()));
        }
        if !conflicts.is_empty() {
            for c in &conflicts {
                let ctx = &self.mempool[c].tx;
                if !signals_rbf(ctx) {
                    return Err(Reject::Invalid("txn-mempool-conflict".into()));
                }
            }
            for c in &conflicts {
                let e = &self.mempool[c];
                // new feerate must beat every directly conflicting tx
                if fee * e.vsize <= e.fee * vsize {
                    return Err(Reject::Invalid(format!(
                        "insufficient fee, rejecting replacement {txid}; new feerate {} <= old feerate {}",
                        fee_rate_text(fee, vsize),
                        fee_rate_text(e.fee, e.vsize)
                    )));
                }
            }
            let old_fees: u64 = replaced.iter().map(|t| self.mempool[t].fee).sum();
            if fee < old_fees {
                return Err(Reject::Invalid(format!(
                    "insufficient fee, rejecting replacement {txid}, less fees than conflicting txs; {} < {}",
                    crate::standin::amount::btc_text(fee as i64),
                    crate::standin::amount::btc_text(old_fees as i64)
                )));
            }
            let extra = fee - old_fees;
            let needed = crate::standin::amount::fee_for(MIN_RELAY_SAT_KVB, vsize);
            if extra < needed {
                return Err(Reject::Invalid(format!(
                    "insufficient fee, rejecting replacement {txid}, not enough additional fees to relay; {} < {}",
                    crate::standin::amount::btc_text(extra as i64),
                    crate::standin::amount::btc_text(needed as i64)
                )));
            }
        }
        let min_fee = crate::standin::amount::fee_for(MIN_RELAY_SAT_KVB, vsize);
        if fee < min_fee {
            return Err(Reject::Invalid(format!(
                "min relay fee not met, {fee} < {min_fee}"
            )));
        }
        verify::verify_tx(&self.secp, tx, &prevouts).map_err(Reject::Invalid)?;
        if max_fee_rate_sat_kvb > 0 && fee * 1000 > max_fee_rate_sat_kvb * vsize {
            return Err(Reject::MaxFeeExceeded);
        }
        if !test_only {
            for r in &replaced {
                self.remove_from_mempool(r);
            }
            for input in &tx.input {
                self.mempool_spends.insert(input.previous_output, txid);
            }
            self.mempool.insert(
                txid,
                MempoolEntry {
                    tx: tx.clone(),
                    fee,
                    vsize,
                    weight,
                    time: now,
                    height: self.height(),
                },
            );
            self.mempool_order.push(txid);
            self.txindex.insert(txid, tx.clone());
        }
        Ok(Accepted {
            txid,
            fee,
            vsize,
            replaced,
        })
    }

    /// `roots` and all their mempool descendants, parents first.
    pub fn with_descendants(&self, roots: &[Txid]) -> Vec<Txid> {
        let mut set: HashSet<Txid> = roots.iter().copied().collect();
        // mempool_order is topological, so one pass finds all descendants
        for t in &self.mempool_order {
            if set.contains(t) {
                continue;
            }
            let e = &self.mempool[t];
            if e.tx
                .input
                .iter()
                .any(|i| set.contains(&i.previous_output.txid))
            {
                set.insert(*t);
            }
        }
        self.mempool_order
            .iter()
            .filter(|t| set.contains(*t))
            .copied()
            .collect()
    }

    /// Forgets a mempool transaction (not its descendants: callers use
    /// [`Node::with_descendants`] first).
    pub fn remove_from_mempool(&mut self, txid: &Txid) {
        if let Some(e) = self.mempool.remove(txid) {
            for i in &e.tx.input {
                if self.mempool_spends.get(&i.previous_output) == Some(txid) {
                    self.mempool_spends.remove(&i.previous_output);
                }
            }
            self.mempool_order.retain(|t| t != txid);
        }
    }

    /// Evicts a transaction and its descendants, as a full or restarted
    /// mempool would.
    pub fn evict(&mut self, txid: &Txid) -> Vec<Txid> {
        let gone = self.with_descendants(&[*txid]);
        for t in gone.iter().rev() {
            self.remove_from_mempool(t);
        }
        gone
    }

    /// Mines one block paying the subsidy and fees to `script`, with every
    /// mempool transaction in it. Returns the block hash.
    pub fn mine_block(&mut self, script: &ScriptBuf, now: u64) -> BlockHash {
        let height = self.height() + 1;
        let txs: Vec<Transaction> = self
            .mempool_order
            .iter()
            .map(|t| self.mempool[t].tx.clone())
            .collect();
        let fees: u64 = self.mempool.values().map(|e| e.fee).sum();
        let subsidy = (50 * crate::standin::amount::COIN)
            .checked_shr(height / HALVING_INTERVAL)
            .unwrap_or(0);
        // BIP34 height push, then an extra-nonce byte as Core's miner does.
        let script_sig = Builder::new()
            .push_int(height as i64)
            .push_opcode(bitcoin::opcodes::OP_0)
            .into_script();
        let mut coinbase = Transaction {
            version: transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig,
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[[0u8; 32]]),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(subsidy + fees),
                script_pubkey: script.clone(),
            }],
        };
        let prev = self.tip();
        let time = (now as u32).max(prev.block.header.time + 1);
        let mut block = Block {
            header: Header {
                version: Version::from_consensus(0x2000_0000),
                prev_blockhash: prev.hash,
                merkle_root: TxMerkleNode::all_zeros(),
                time,
                bits: CompactTarget::from_consensus(0x207f_ffff),
                nonce: 0,
            },
            txdata: std::iter::once(coinbase.clone()).chain(txs).collect(),
        };
        // BIP141 commitment: the coinbase's wtxid counts as zero, so the
        // root can be computed before the commitment output is added.
        let witness_root = block.witness_root().expect("coinbase present");
        let commitment = Block::compute_witness_commitment(&witness_root, &[0u8; 32]);
        let mut data = vec![0xaa, 0x21, 0xa9, 0xed];
        data.extend_from_slice(commitment.as_byte_array());
        let push: &bitcoin::script::PushBytes = data.as_slice().try_into().expect("36 bytes");
        coinbase.output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: Builder::new()
                .push_opcode(bitcoin::opcodes::all::OP_RETURN)
                .push_slice(push)
                .into_script(),
        });
        block.txdata[0] = coinbase;
        block.header.merkle_root = block.compute_merkle_root().expect("non-empty");
        // Regtest's target accepts about half of all hashes.
        while block.header.validate_pow(block.header.target()).is_err() {
            block.header.nonce += 1;
        }
        self.connect(block, height)
    }

    fn connect(&mut self, block: Block, height: u32) -> BlockHash {
        let hash = block.block_hash();
        for (idx, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            if !tx.is_coinbase() {
                for i in &tx.input {
                    self.utxos.remove(&i.previous_output);
                    self.spent_in_chain.insert(i.previous_output, txid);
                }
            }
            for (v, o) in tx.output.iter().enumerate() {
                if o.script_pubkey.is_op_return() {
                    continue;
                }
                self.utxos.insert(
                    OutPoint::new(txid, v as u32),
                    Coin {
                        txout: o.clone(),
                        height,
                        coinbase: tx.is_coinbase(),
                    },
                );
            }
            self.confirmed.insert(txid, (height, idx));
            self.txindex.insert(txid, tx.clone());
            self.remove_from_mempool(&txid);
        }
        // Anything left that conflicts with the block is gone too.
        let conflicted: Vec<Txid> = self
            .mempool_order
            .iter()
            .filter(|t| {
                self.mempool[*t]
                    .tx
                    .input
                    .iter()
                    .any(|i| self.spent_in_chain.contains_key(&i.previous_output))
            })
            .copied()
            .collect();
        for t in conflicted {
            self.evict(&t);
        }
        let size = bitcoin::consensus::encode::serialize(&block).len();
        self.blocks.push(BlockInfo {
            block,
            hash,
            height,
            size,
        });
        hash
    }
}

/// Whether a transaction opts in to replacement (BIP125).
pub fn signals_rbf(tx: &Transaction) -> bool {
    tx.input.iter().any(|i| i.sequence.0 < 0xffff_fffe)
}

/// Core's dust threshold at the default 3 sat/vB dust relay fee.
pub fn dust_threshold(spk: &ScriptBuf) -> u64 {
    if spk.is_op_return() {
        return 0;
    }
    let out_size = 8 + bitcoin::VarInt(spk.len() as u64).size() + spk.len();
    let spend_size = if spk.is_witness_program() {
        32 + 4 + 1 + (107 / 4) + 4
    } else {
        32 + 4 + 1 + 107 + 4
    };
    3 * (out_size + spend_size) as u64
}

/// A fee rate as Core prints it in reject messages: `x.xxxxxxxx BTC/kvB`.
fn fee_rate_text(fee: u64, vsize: u64) -> String {
    let per_kvb = fee * 1000 / vsize.max(1);
    format!(
        "{} BTC/kvB",
        crate::standin::amount::btc_text(per_kvb as i64)
    )
}
