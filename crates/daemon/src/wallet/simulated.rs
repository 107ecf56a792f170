//! The **simulated wallet**: fake coins for demo mode. It behaves like a
//! small Bitcoin Core wallet — balance, fees from a fee rate and a vsize,
//! txids, confirmations as simulated blocks pass, transactions findable by
//! comment, real PSBTs over fake coins — so every payout path can be shown
//! without a node. It never touches a network.
//!
//! State is kept in `<data_dir>/simulated-wallet.json` (written atomically
//! after each change) so a demo daemon restart reconciles like a real one.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, CompressedPublicKey, Network, PrivateKey};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{FundedPsbt, MempoolAccept, NodeStatus, Output, WalletBackend, WalletError, WalletTx};

/// Seconds between simulated blocks.
const BLOCK_INTERVAL_S: i64 = 30;
/// The demo wallet starts with 50 BTC.
const INITIAL_SAT: i64 = 50 * 100_000_000;
/// Fee rate the simulated node "estimates".
const FEE_ESTIMATE_SAT_VB: u64 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimTx {
    txid: String,
    comment: Option<String>,
    sends: Vec<Output>,
    fee_sat: i64,
    /// Height of the block that mined it.
    mined_height: Option<u64>,
    broadcast_at: i64,
    hex: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimState {
    seed: String,
    started_at: i64,
    spendable_sat: i64,
    /// Reserved by unsigned PSBTs, by fake outpoint.
    locked: Vec<(String, i64)>,
    next_address: u32,
    txs: Vec<SimTx>,
}

pub struct SimulatedWallet {
    path: PathBuf,
    network: Network,
    state: Mutex<SimState>,
}

fn hex_digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

impl SimulatedWallet {
    /// Opens (or creates) the simulated wallet state in `data_dir`.
    pub fn open(data_dir: &std::path::Path, network: Network) -> anyhow::Result<SimulatedWallet> {
        let path = data_dir.join("simulated-wallet.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SimState {
                seed: hex::encode(rand::random::<[u8; 32]>()),
                started_at: crate::clock::now_s(),
                spendable_sat: INITIAL_SAT,
                locked: Vec::new(),
                next_address: 0,
                txs: Vec::new(),
            },
            Err(e) => return Err(e.into()),
        };
        let wallet = SimulatedWallet {
            path,
            network,
            state: Mutex::new(state),
        };
        wallet.save(&wallet.state.lock().expect("sim wallet"))?;
        Ok(wallet)
    }

    fn save(&self, state: &SimState) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &self.path)
    }

    fn height(state: &SimState) -> u64 {
        101 + ((crate::clock::now_s() - state.started_at).max(0) / BLOCK_INTERVAL_S) as u64
    }

    fn key(&self, state: &SimState, index: u32) -> PrivateKey {
        let digest = Sha256::digest(format!("{}:{index}", state.seed).as_bytes());
        let secret = SecretKey::from_slice(&digest)
            .expect("a SHA-256 digest is a valid key with overwhelming probability");
        PrivateKey::new(secret, self.network)
    }

    fn address(&self, state: &SimState, index: u32) -> Address {
        let secp = Secp256k1::new();
        let public = CompressedPublicKey::from_private_key(&secp, &self.key(state, index))
            .expect("compressed key");
        Address::p2wpkh(&public, self.network)
    }

    fn owns(&self, state: &SimState, address: &str) -> bool {
        (0..=state.next_address).any(|i| self.address(state, i).to_string() == address)
    }

    /// Mines pending transactions into the simulated chain as time passes.
    fn advance(state: &mut SimState) {
        let height = Self::height(state);
        for tx in &mut state.txs {
            if tx.mined_height.is_none() {
                let due = 101
                    + ((tx.broadcast_at - state.started_at).max(0) / BLOCK_INTERVAL_S) as u64
                    + 1;
                if due <= height {
                    tx.mined_height = Some(due);
                }
            }
        }
    }

    fn view(state: &SimState, tx: &SimTx) -> WalletTx {
        let height = Self::height(state);
        WalletTx {
            txid: tx.txid.clone(),
            fee_sat: Some(-tx.fee_sat),
            confirmations: tx
                .mined_height
                .map(|h| (height + 1 - h) as i64)
                .unwrap_or(0),
            comment: tx.comment.clone(),
            replaced_by_txid: None,
            replaces_txid: None,
            wallet_conflicts: Vec::new(),
            in_mempool_or_chain: true,
            abandoned: false,
            sends: tx.sends.clone(),
            hex: tx.hex.clone(),
        }
    }

    /// Estimated vsize of a P2WPKH transaction with `outputs` outputs.
    fn vsize(inputs: usize, outputs: usize) -> i64 {
        11 + 68 * inputs as i64 + 31 * outputs as i64
    }

    fn check_outputs(&self, outputs: &[Output]) -> Result<i64, WalletError> {
        let mut total: i64 = 0;
        for output in outputs {
            Address::from_str(&output.address)
                .ok()
                .and_then(|a| a.require_network(self.network).ok())
                .ok_or_else(|| WalletError::Rpc {
                    code: -5,
                    message: format!("Invalid Bitcoin address: {}", output.address),
                })?;
            if output.amount_sat <= 0 {
                return Err(WalletError::Rpc {
                    code: -3,
                    message: "Invalid amount for send".into(),
                });
            }
            total = total
                .checked_add(output.amount_sat)
                .ok_or(WalletError::Rpc {
                    code: -3,
                    message: "Amount out of range".into(),
                })?;
        }
        Ok(total)
    }

    /// Signs every input of a PSBT made by this wallet (demo stand-in for
    /// the offline signer). Returns the signed PSBT, base64.
    pub fn sign_psbt(&self, psbt_base64: &str) -> Result<String, WalletError> {
        let state = self.state.lock().expect("sim wallet");
        let mut psbt = super::psbt::decode(psbt_base64).map_err(|e| WalletError::Rpc {
            code: -22,
            message: e,
        })?;
        let key = self.key(&state, 0);
        let secp = Secp256k1::new();
        let public = bitcoin::PublicKey::from_private_key(&secp, &key);
        let mut cache = bitcoin::sighash::SighashCache::new(psbt.unsigned_tx.clone());
        for (index, input) in psbt.inputs.iter_mut().enumerate() {
            let Some(utxo) = input.witness_utxo.clone() else {
                continue;
            };
            let pubkey_hash = public
                .wpubkey_hash()
                .map_err(|e| WalletError::Protocol(e.to_string()))?;
            let script_code = bitcoin::ScriptBuf::new_p2wpkh(&pubkey_hash);
            let sighash = cache
                .p2wpkh_signature_hash(
                    index,
                    &script_code,
                    utxo.value,
                    bitcoin::EcdsaSighashType::All,
                )
                .map_err(|e| WalletError::Protocol(e.to_string()))?;
            let message = bitcoin::secp256k1::Message::from_digest(sighash.to_byte_array());
            let signature = secp.sign_ecdsa(&message, &key.inner);
            input.partial_sigs.insert(
                public,
                bitcoin::ecdsa::Signature {
                    signature,
                    sighash_type: bitcoin::EcdsaSighashType::All,
                },
            );
        }
        Ok(super::psbt::encode(&psbt))
    }
}

impl WalletBackend for SimulatedWallet {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn status(&self) -> BoxFuture<'_, Result<NodeStatus, WalletError>> {
        Box::pin(async move {
            let mut state = self.state.lock().expect("sim wallet");
            Self::advance(&mut state);
            Ok(NodeStatus {
                chain: format!("{} (simulated)", self.network),
                blocks: Self::height(&state),
                spendable_sat: state.spendable_sat,
                pending_sat: 0,
            })
        })
    }

    fn estimate_fee_rate(&self) -> BoxFuture<'_, Result<Option<u64>, WalletError>> {
        Box::pin(async { Ok(Some(FEE_ESTIMATE_SAT_VB)) })
    }

    fn new_address(&self) -> BoxFuture<'_, Result<String, WalletError>> {
        Box::pin(async move {
            let mut state = self.state.lock().expect("sim wallet");
            state.next_address += 1;
            let address = self.address(&state, state.next_address).to_string();
            self.save(&state)
                .map_err(|e| WalletError::Protocol(e.to_string()))?;
            Ok(address)
        })
    }

    fn is_mine<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<bool, WalletError>> {
        Box::pin(async move {
            let state = self.state.lock().expect("sim wallet");
            Ok(self.owns(&state, address))
        })
    }

    fn send_many<'a>(
        &'a self,
        outputs: &'a [Output],
        tag: &'a str,
        fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<String, WalletError>> {
        Box::pin(async move {
            let total = self.check_outputs(outputs)?;
            let mut state = self.state.lock().expect("sim wallet");
            let fee = Self::vsize(1, outputs.len() + 1) * fee_rate_sat_vb as i64;
            if total + fee > state.spendable_sat {
                return Err(WalletError::Rpc {
                    code: -6,
                    message: "Insufficient funds".into(),
                });
            }
            let counter = state.txs.len().to_string();
            let payload =
                serde_json::to_vec(outputs).map_err(|e| WalletError::Protocol(e.to_string()))?;
            let txid = hex_digest(&[
                state.seed.as_bytes(),
                tag.as_bytes(),
                &payload,
                counter.as_bytes(),
            ]);
            state.spendable_sat -= total + fee;
            state.txs.push(SimTx {
                txid: txid.clone(),
                comment: Some(tag.to_string()),
                sends: outputs.to_vec(),
                fee_sat: fee,
                mined_height: None,
                broadcast_at: crate::clock::now_s(),
                hex: None,
            });
            self.save(&state)
                .map_err(|e| WalletError::Protocol(e.to_string()))?;
            Ok(txid)
        })
    }

    fn find_by_tag<'a>(
        &'a self,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<WalletTx>, WalletError>> {
        Box::pin(async move {
            let mut state = self.state.lock().expect("sim wallet");
            Self::advance(&mut state);
            Ok(state
                .txs
                .iter()
                .filter(|t| t.comment.as_deref() == Some(tag))
                .map(|t| Self::view(&state, t))
                .collect())
        })
    }

    fn transaction<'a>(
        &'a self,
        txid: &'a str,
    ) -> BoxFuture<'a, Result<Option<WalletTx>, WalletError>> {
        Box::pin(async move {
            let mut state = self.state.lock().expect("sim wallet");
            Self::advance(&mut state);
            Ok(state
                .txs
                .iter()
                .find(|t| t.txid == txid)
                .map(|t| Self::view(&state, t)))
        })
    }

    fn create_psbt<'a>(
        &'a self,
        outputs: &'a [Output],
        fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<FundedPsbt, WalletError>> {
        Box::pin(async move {
            let total = self.check_outputs(outputs)?;
            let mut state = self.state.lock().expect("sim wallet");
            let fee = Self::vsize(1, outputs.len() + 1) * fee_rate_sat_vb as i64;
            let locked: i64 = state.locked.iter().map(|(_, v)| v).sum();
            if total + fee + 1_000 > state.spendable_sat - locked {
                return Err(WalletError::Rpc {
                    code: -4,
                    message: "Insufficient funds".into(),
                });
            }
            // One fake coin big enough for the payment plus a change output.
            let input_value = total + fee + 100_000;
            let prev = hex_digest(&[
                state.seed.as_bytes(),
                b"coin",
                state.locked.len().to_string().as_bytes(),
                &crate::clock::now_ms().to_le_bytes(),
            ]);
            state.next_address += 1;
            let change = self.address(&state, state.next_address);
            let funding = self.address(&state, 0);
            let built = super::psbt::build_unsigned(
                &prev,
                input_value,
                &funding,
                outputs,
                &change,
                input_value - total - fee,
                self.network,
            )
            .map_err(WalletError::Protocol)?;
            state.locked.push((format!("{prev}:0"), input_value));
            self.save(&state)
                .map_err(|e| WalletError::Protocol(e.to_string()))?;
            Ok(FundedPsbt {
                psbt_base64: built,
                fee_sat: fee,
                change_index: Some(outputs.len() as u32),
            })
        })
    }

    fn unlock<'a>(&'a self, outpoints: &'a [String]) -> BoxFuture<'a, Result<(), WalletError>> {
        Box::pin(async move {
            let mut state = self.state.lock().expect("sim wallet");
            state.locked.retain(|(o, _)| !outpoints.contains(o));
            self.save(&state)
                .map_err(|e| WalletError::Protocol(e.to_string()))?;
            Ok(())
        })
    }

    fn finalize_psbt<'a>(
        &'a self,
        psbt_base64: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, WalletError>> {
        Box::pin(async move {
            let psbt = super::psbt::decode(psbt_base64).map_err(|e| WalletError::Rpc {
                code: -22,
                message: e,
            })?;
            Ok(super::psbt::finalize_p2wpkh(psbt)
                .map(|tx| bitcoin::consensus::encode::serialize_hex(&tx)))
        })
    }

    fn test_mempool_accept<'a>(
        &'a self,
        tx_hex: &'a str,
    ) -> BoxFuture<'a, Result<MempoolAccept, WalletError>> {
        Box::pin(async move {
            let tx: bitcoin::Transaction = bitcoin::consensus::encode::deserialize_hex(tx_hex)
                .map_err(|e| WalletError::Rpc {
                    code: -22,
                    message: format!("TX decode failed {e}"),
                })?;
            let state = self.state.lock().expect("sim wallet");
            let txid = tx.compute_txid().to_string();
            if state.txs.iter().any(|t| t.txid == txid) {
                return Ok(MempoolAccept {
                    allowed: false,
                    reject_reason: Some("txn-already-known".into()),
                });
            }
            let spends_locked = tx.input.iter().all(|i| {
                state
                    .locked
                    .iter()
                    .any(|(o, _)| *o == i.previous_output.to_string())
            });
            Ok(MempoolAccept {
                allowed: spends_locked,
                reject_reason: (!spends_locked)
                    .then(|| "bad-txns-inputs-missingorspent".to_string()),
            })
        })
    }

    fn broadcast<'a>(&'a self, tx_hex: &'a str) -> BoxFuture<'a, Result<String, WalletError>> {
        Box::pin(async move {
            let tx: bitcoin::Transaction = bitcoin::consensus::encode::deserialize_hex(tx_hex)
                .map_err(|e| WalletError::Rpc {
                    code: -22,
                    message: format!("TX decode failed {e}"),
                })?;
            let txid = tx.compute_txid().to_string();
            let mut state = self.state.lock().expect("sim wallet");
            if state.txs.iter().any(|t| t.txid == txid) {
                return Ok(txid);
            }
            let mut input_value = 0;
            for input in &tx.input {
                let outpoint = input.previous_output.to_string();
                let Some(pos) = state.locked.iter().position(|(o, _)| *o == outpoint) else {
                    return Err(WalletError::Rpc {
                        code: -25,
                        message: "bad-txns-inputs-missingorspent".into(),
                    });
                };
                input_value += state.locked.remove(pos).1;
            }
            let mut sends = Vec::new();
            let mut back = 0;
            for out in &tx.output {
                let address = Address::from_script(&out.script_pubkey, self.network)
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                let value = out.value.to_sat() as i64;
                if self.owns(&state, &address) {
                    back += value;
                } else {
                    sends.push(Output {
                        address,
                        amount_sat: value,
                    });
                }
            }
            let paid: i64 = sends.iter().map(|o| o.amount_sat).sum();
            let fee = input_value - paid - back;
            state.spendable_sat -= paid + fee;
            state.txs.push(SimTx {
                txid: txid.clone(),
                comment: None,
                sends,
                fee_sat: fee,
                mined_height: None,
                broadcast_at: crate::clock::now_s(),
                hex: Some(tx_hex.to_string()),
            });
            self.save(&state)
                .map_err(|e| WalletError::Protocol(e.to_string()))?;
            Ok(txid)
        })
    }
}
