//! PSBT RPCs: the cold-wallet path (`walletcreatefundedpsbt` →
//! `walletprocesspsbt` → `finalizepsbt`) plus `decodepsbt`/`analyzepsbt`.
//!
//! PSBTs are real BIP174 PSBTs (the `bitcoin` crate's `Psbt`), so a daemon
//! can hand them to any offline signer and back.

use std::collections::{BTreeMap, HashSet};

use base64::Engine as _;
use bitcoin::hashes::Hash;
use bitcoin::psbt::{Input, Psbt};
use bitcoin::secp256k1::{Message, Secp256k1};
use bitcoin::sighash::SighashCache;
use bitcoin::{
    Amount, OutPoint, PublicKey, ScriptBuf, Sequence, Transaction, TxOut, Witness, XOnlyPublicKey,
    absolute::LockTime,
};

use super::amount::{btc, btc_per_kvb, send_amount};
use super::chain_rpc::{parse_address, parse_txid};
use super::describe::{tx_hex, tx_json, txout_json};
use super::json::J;
use super::node::Node;
use super::rpc::{Call, RpcError, RpcResult};
use super::state::{State, now};
use super::wallet::{FundRequest, KeyKind, Wallet, estimate_vsize, path_text};
use super::wallet_send::{fee_mode, resolve_fee_rate};

/// Node-level PSBT methods (no wallet needed).
pub fn dispatch_node(st: &mut State, call: &Call) -> RpcResult {
    let p = &call.params;
    let m = call.method.as_str();
    let psbt = decode(p.req_str(0, m)?)?;
    match m {
        "decodepsbt" => Ok(decode_json(&psbt)),
        "analyzepsbt" => Ok(analyze(&psbt)),
        "finalizepsbt" => {
            let extract = p.bool(1)?.unwrap_or(true);
            Ok(finalize_rpc(&st.node, psbt, extract))
        }
        _ => Err(RpcError::new(-32601, "Method not found")),
    }
}

/// Wallet PSBT methods.
pub fn dispatch_wallet(st: &mut State, name: &str, call: &Call) -> RpcResult {
    match call.method.as_str() {
        "walletcreatefundedpsbt" => create_funded(st, name, call),
        "walletprocesspsbt" => process(st, name, call),
        _ => Err(RpcError::new(-32601, "Method not found")),
    }
}

/// Base64 PSBT → `Psbt`, with Core's `-22 TX decode failed …` messages.
pub fn decode(b64: &str) -> Result<Psbt, RpcError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| RpcError::new(-22, "TX decode failed invalid base64"))?;
    Psbt::deserialize(&bytes).map_err(|e| {
        use bitcoin::psbt::Error as E;
        let msg = match &e {
            E::InvalidMagic => "Invalid PSBT magic bytes".to_string(),
            E::Io(_) | E::ConsensusEncoding(_) => {
                "CDataStream::read(): end of data: iostream error".to_string()
            }
            E::MustHaveUnsignedTx => "No unsigned transcation was provided".to_string(),
            other => other.to_string(),
        };
        RpcError::new(-22, format!("TX decode failed {msg}"))
    })
}

/// `Psbt` → base64.
pub fn encode(psbt: &Psbt) -> String {
    base64::engine::general_purpose::STANDARD.encode(psbt.serialize())
}

/// The output an input spends, from the PSBT itself.
fn input_utxo(psbt: &Psbt, i: usize) -> Option<TxOut> {
    let inp = &psbt.inputs[i];
    if let Some(o) = &inp.witness_utxo {
        return Some(o.clone());
    }
    let vout = psbt.unsigned_tx.input[i].previous_output.vout as usize;
    inp.non_witness_utxo
        .as_ref()
        .and_then(|t| t.output.get(vout).cloned())
}

fn is_final(inp: &Input) -> bool {
    inp.final_script_sig.is_some() || inp.final_script_witness.is_some()
}

fn fee_of(psbt: &Psbt) -> Option<u64> {
    let ins: Option<Vec<TxOut>> = (0..psbt.inputs.len())
        .map(|i| input_utxo(psbt, i))
        .collect();
    let total_in: u64 = ins?.iter().map(|o| o.value.to_sat()).sum();
    let total_out: u64 = psbt
        .unsigned_tx
        .output
        .iter()
        .map(|o| o.value.to_sat())
        .sum();
    total_in.checked_sub(total_out)
}

fn derivs_json(map: &BTreeMap<bitcoin::secp256k1::PublicKey, bitcoin::bip32::KeySource>) -> J {
    J::Arr(
        map.iter()
            .map(|(pk, (fp, path))| {
                J::obj()
                    .put("pubkey", pk.to_string())
                    .put("master_fingerprint", fp.to_string())
                    .put("path", format!("m/{}", path_text(path)))
                    .build()
            })
            .collect(),
    )
}

fn tap_derivs_json(
    map: &BTreeMap<XOnlyPublicKey, (Vec<bitcoin::TapLeafHash>, bitcoin::bip32::KeySource)>,
) -> J {
    J::Arr(
        map.iter()
            .map(|(pk, (leaves, (fp, path)))| {
                J::obj()
                    .put("pubkey", pk.to_string())
                    .put("master_fingerprint", fp.to_string())
                    .put("path", format!("m/{}", path_text(path)))
                    .put(
                        "leaf_hashes",
                        J::Arr(leaves.iter().map(|l| J::str(l.to_string())).collect()),
                    )
                    .build()
            })
            .collect(),
    )
}

/// `decodepsbt`, in Core's key order.
pub fn decode_json(psbt: &Psbt) -> J {
    let inputs: Vec<J> = psbt
        .inputs
        .iter()
        .map(|inp| {
            let mut o = J::obj();
            if let Some(w) = &inp.witness_utxo {
                o.push("witness_utxo", txout_json(w));
            }
            if let Some(t) = &inp.non_witness_utxo {
                o.push("non_witness_utxo", tx_json(t));
            }
            if !inp.partial_sigs.is_empty() {
                o.push(
                    "partial_signatures",
                    J::Obj(
                        inp.partial_sigs
                            .iter()
                            .map(|(pk, s)| (pk.to_string(), J::str(hex::encode(s.to_vec()))))
                            .collect(),
                    ),
                );
            }
            if let Some(s) = inp.sighash_type {
                o.push("sighash", s.to_string());
            }
            if !inp.bip32_derivation.is_empty() {
                o.push("bip32_derivs", derivs_json(&inp.bip32_derivation));
            }
            if let Some(s) = &inp.final_script_sig {
                o.push(
                    "final_scriptSig",
                    J::obj()
                        .put("asm", super::describe::asm(s))
                        .put("hex", hex::encode(s.as_bytes())),
                );
            }
            if let Some(w) = &inp.final_script_witness {
                o.push(
                    "final_scriptwitness",
                    J::Arr(w.iter().map(|x| J::str(hex::encode(x))).collect()),
                );
            }
            if let Some(s) = &inp.tap_key_sig {
                o.push("taproot_key_path_sig", hex::encode(s.to_vec()));
            }
            if !inp.tap_key_origins.is_empty() {
                o.push(
                    "taproot_bip32_derivs",
                    tap_derivs_json(&inp.tap_key_origins),
                );
            }
            if let Some(k) = &inp.tap_internal_key {
                o.push("taproot_internal_key", k.to_string());
            }
            o.build()
        })
        .collect();
    let outputs: Vec<J> = psbt
        .outputs
        .iter()
        .map(|out| {
            let mut o = J::obj();
            if !out.bip32_derivation.is_empty() {
                o.push("bip32_derivs", derivs_json(&out.bip32_derivation));
            }
            if let Some(k) = &out.tap_internal_key {
                o.push("taproot_internal_key", k.to_string());
            }
            if !out.tap_key_origins.is_empty() {
                o.push(
                    "taproot_bip32_derivs",
                    tap_derivs_json(&out.tap_key_origins),
                );
            }
            o.build()
        })
        .collect();
    let mut o = J::obj()
        .put("tx", tx_json(&psbt.unsigned_tx))
        .put("global_xpubs", J::Arr(vec![]))
        .put("psbt_version", J::int(psbt.version))
        .put("proprietary", J::Arr(vec![]))
        .put("unknown", J::Obj(vec![]))
        .put("inputs", J::Arr(inputs))
        .put("outputs", J::Arr(outputs));
    if let Some(f) = fee_of(psbt) {
        o.push("fee", btc(f as i64));
    }
    o.build()
}

/// `analyzepsbt`.
pub fn analyze(psbt: &Psbt) -> J {
    // Roles in BIP174 order; the PSBT's next role is the earliest needed.
    const ROLES: [&str; 4] = ["updater", "signer", "finalizer", "extractor"];
    let mut overall = 3;
    let mut inputs = Vec::new();
    let mut scripts = Vec::new();
    for (i, inp) in psbt.inputs.iter().enumerate() {
        let utxo = input_utxo(psbt, i);
        let fin = is_final(inp);
        let mut o = J::obj()
            .put("has_utxo", utxo.is_some())
            .put("is_final", fin);
        let role = match &utxo {
            None => 0,
            Some(_) if fin => 3,
            Some(u) => {
                let signed = (u.script_pubkey.is_p2wpkh() && !inp.partial_sigs.is_empty())
                    || (u.script_pubkey.is_p2tr() && inp.tap_key_sig.is_some());
                if signed { 2 } else { 1 }
            }
        };
        o.push("next", ROLES[role]);
        if role == 1
            && let Some(u) = &utxo
            && u.script_pubkey.is_p2wpkh()
        {
            o.push(
                "missing",
                J::obj().put(
                    "signatures",
                    J::Arr(vec![J::str(hex::encode(&u.script_pubkey.as_bytes()[2..]))]),
                ),
            );
        }
        if let Some(u) = utxo {
            scripts.push(u.script_pubkey);
        }
        overall = overall.min(role);
        inputs.push(o.build());
    }
    let mut o = J::obj().put("inputs", J::Arr(inputs));
    if scripts.len() == psbt.inputs.len()
        && let Some(fee) = fee_of(psbt)
    {
        let vsize = if psbt.inputs.iter().all(is_final) {
            extract(psbt).vsize() as u64
        } else {
            let refs: Vec<&ScriptBuf> = scripts.iter().collect();
            estimate_vsize(&refs, &psbt.unsigned_tx.output)
        };
        o.push("estimated_vsize", J::int(vsize));
        o.push("estimated_feerate", btc_per_kvb(fee * 1000 / vsize.max(1)));
        o.push("fee", btc(fee as i64));
    }
    o.put("next", ROLES[overall]).build()
}

/// The network transaction of a fully finalized PSBT.
fn extract(psbt: &Psbt) -> Transaction {
    let mut tx = psbt.unsigned_tx.clone();
    for (i, inp) in psbt.inputs.iter().enumerate() {
        if let Some(s) = &inp.final_script_sig {
            tx.input[i].script_sig = s.clone();
        }
        if let Some(w) = &inp.final_script_witness {
            tx.input[i].witness = w.clone();
        }
    }
    tx
}

/// Finalizes what can be finalized (P2WPKH with a valid partial signature,
/// P2TR with a key-path signature). Returns whether all inputs are final.
fn finalize_inputs(psbt: &mut Psbt) -> bool {
    let secp = Secp256k1::verification_only();
    let tx = psbt.unsigned_tx.clone();
    for i in 0..psbt.inputs.len() {
        if is_final(&psbt.inputs[i]) {
            continue;
        }
        let Some(utxo) = input_utxo(psbt, i) else {
            continue;
        };
        let inp = &mut psbt.inputs[i];
        let spk = &utxo.script_pubkey;
        if spk.is_p2wpkh() {
            let program = &spk.as_bytes()[2..];
            let found = inp.partial_sigs.iter().find(|(pk, sig)| {
                pk.wpubkey_hash()
                    .is_ok_and(|h| h.as_byte_array()[..] == program[..])
                    && {
                        // Core's finalizer re-verifies what it assembles.
                        let mut cache = SighashCache::new(&tx);
                        cache
                            .p2wpkh_signature_hash(i, spk, utxo.value, sig.sighash_type)
                            .ok()
                            .is_some_and(|h| {
                                secp.verify_ecdsa(
                                    &Message::from_digest(h.to_byte_array()),
                                    &sig.signature,
                                    &pk.inner,
                                )
                                .is_ok()
                            })
                    }
            });
            if let Some((pk, sig)) = found {
                let w = Witness::p2wpkh(sig, &pk.inner);
                clear_for_final(inp);
                inp.final_script_witness = Some(w);
            }
        } else if spk.is_p2tr()
            && let Some(sig) = inp.tap_key_sig
        {
            clear_for_final(inp);
            inp.final_script_witness = Some(Witness::p2tr_key_spend(&sig));
        }
    }
    psbt.inputs.iter().all(is_final)
}

/// BIP174: a finalizer removes everything but the UTXOs and final fields.
fn clear_for_final(inp: &mut Input) {
    inp.partial_sigs.clear();
    inp.sighash_type = None;
    inp.redeem_script = None;
    inp.witness_script = None;
    inp.bip32_derivation.clear();
    inp.tap_key_sig = None;
    inp.tap_key_origins.clear();
    inp.tap_internal_key = None;
    inp.tap_merkle_root = None;
}

fn finalize_rpc(_node: &Node, mut psbt: Psbt, extract_tx: bool) -> J {
    let complete = finalize_inputs(&mut psbt);
    if complete && extract_tx {
        J::obj()
            .put("hex", tx_hex(&extract(&psbt)))
            .put("complete", true)
            .build()
    } else {
        J::obj()
            .put("psbt", encode(&psbt))
            .put("complete", complete)
            .build()
    }
}

/// Adds what the wallet knows about its own inputs and outputs: UTXOs and
/// key origins (Core's `FillPSBT` without signing).
fn fill(w: &Wallet, node: &Node, psbt: &mut Psbt, bip32derivs: bool) {
    for i in 0..psbt.inputs.len() {
        let op = psbt.unsigned_tx.input[i].previous_output;
        let Some(prev_tx) = node.txindex.get(&op.txid) else {
            continue;
        };
        let Some(out) = prev_tx.output.get(op.vout as usize) else {
            continue;
        };
        if !w.is_mine(&out.script_pubkey) {
            continue;
        }
        let inp = &mut psbt.inputs[i];
        if is_final(inp) {
            continue;
        }
        if inp.witness_utxo.is_none() {
            inp.witness_utxo = Some(out.clone());
        }
        // Core adds the full previous tx for segwit v0 (CVE-2020-14199).
        if out.script_pubkey.is_p2wpkh() && inp.non_witness_utxo.is_none() {
            inp.non_witness_utxo = Some(prev_tx.clone());
        }
        if bip32derivs && let Some((pk, src)) = w.key_source(&out.script_pubkey) {
            if out.script_pubkey.is_p2tr() {
                let x = XOnlyPublicKey::from(pk);
                inp.tap_internal_key = Some(x);
                inp.tap_key_origins.insert(x, (vec![], src));
            } else {
                inp.bip32_derivation.insert(pk, src);
            }
        }
    }
    if bip32derivs {
        for (o, out) in psbt.unsigned_tx.output.iter().zip(psbt.outputs.iter_mut()) {
            if let Some((pk, src)) = w.key_source(&o.script_pubkey) {
                if o.script_pubkey.is_p2tr() {
                    let x = XOnlyPublicKey::from(pk);
                    out.tap_internal_key = Some(x);
                    out.tap_key_origins.insert(x, (vec![], src));
                } else {
                    out.bip32_derivation.insert(pk, src);
                }
            }
        }
    }
}

fn create_funded(st: &mut State, name: &str, call: &Call) -> RpcResult {
    let p = &call.params;
    let inputs = p.arr(0)?.unwrap_or(&[]).to_vec();
    let outputs_param = p
        .get(1)
        .ok_or_else(|| RpcError::new(-1, "walletcreatefundedpsbt inputs outputs"))?
        .clone();
    let locktime = p.int(2)?.unwrap_or(0);
    if !(0..=u32::MAX as i64).contains(&locktime) {
        return Err(RpcError::new(
            -8,
            "Invalid parameter, locktime out of range",
        ));
    }
    let options = p
        .obj(3)?
        .map(|o| J::Obj(o.to_vec()))
        .unwrap_or(J::Obj(vec![]));
    let bip32derivs = p.bool(4)?.unwrap_or(true);

    const KNOWN: &[&str] = &[
        "add_inputs",
        "include_unsafe",
        "changeAddress",
        "changePosition",
        "change_type",
        "includeWatching",
        "lockUnspents",
        "fee_rate",
        "feeRate",
        "subtractFeeFromOutputs",
        "replaceable",
        "conf_target",
        "estimate_mode",
        "solving_data",
        // Core ≥ 25: inputs need at least this many confirmations.
        "minconf",
    ];
    for (k, _) in options.as_obj().unwrap_or(&[]) {
        if !KNOWN.contains(&k.as_str()) {
            return Err(RpcError::new(-3, format!("Unexpected key {k}")));
        }
    }
    let opt = |k: &str| options.get(k).filter(|v| !v.is_null());

    // Preset inputs.
    let mut presets = Vec::new();
    let mut sequences = Vec::new();
    for i in &inputs {
        let txid = parse_txid(
            i.get("txid")
                .and_then(J::as_str)
                .ok_or_else(|| RpcError::new(-8, "Invalid parameter, missing txid key"))?,
            "txid",
        )?;
        let vout = i
            .get("vout")
            .and_then(J::as_i64)
            .ok_or_else(|| RpcError::new(-8, "Invalid parameter, missing vout key"))?;
        if vout < 0 {
            return Err(RpcError::new(
                -8,
                "Invalid parameter, vout cannot be negative",
            ));
        }
        presets.push(OutPoint::new(txid, vout as u32));
        sequences.push(i.get("sequence").and_then(J::as_i64));
    }
    // Outputs: an array of one-key objects, or one object.
    let pairs: Vec<(String, J)> = match &outputs_param {
        J::Arr(a) => a
            .iter()
            .flat_map(|o| o.as_obj().unwrap_or(&[]).to_vec())
            .collect(),
        J::Obj(o) => o.clone(),
        _ => {
            return Err(RpcError::new(
                -8,
                "Invalid parameter, output argument must be non-null",
            ));
        }
    };
    let mut outs = Vec::new();
    let mut seen = HashSet::new();
    for (k, v) in &pairs {
        if k == "data" {
            let data = hex::decode(v.as_str().unwrap_or(""))
                .map_err(|_| RpcError::new(-8, "Data must be hexadecimal string"))?;
            let push: &bitcoin::script::PushBytes = data
                .as_slice()
                .try_into()
                .map_err(|_| RpcError::new(-8, "Data too long"))?;
            outs.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::new_op_return(push),
            });
            continue;
        }
        let a = parse_address(k)
            .ok_or_else(|| RpcError::new(-5, format!("Invalid Bitcoin address: {k}")))?;
        if !seen.insert(a.script_pubkey()) {
            return Err(RpcError::new(
                -8,
                format!("Invalid parameter, duplicated address: {k}"),
            ));
        }
        outs.push(TxOut {
            value: Amount::from_sat(send_amount(v)?),
            script_pubkey: a.script_pubkey(),
        });
    }
    if outs.is_empty() {
        return Err(RpcError::new(
            -4,
            "Transaction must have at least one recipient",
        ));
    }
    // Fee options: fee_rate in sat/vB, or feeRate in BTC/kvB.
    let explicit = match opt("feeRate") {
        Some(v) => {
            if opt("fee_rate").is_some() {
                return Err(RpcError::new(
                    -8,
                    "Cannot specify both fee_rate (sat/vB) and feeRate (BTC/kvB)",
                ));
            }
            Some(super::amount::amount_from_value(v)? as u64)
        }
        None => fee_mode(opt("conf_target"), opt("estimate_mode"), opt("fee_rate"))?,
    };
    let rate = resolve_fee_rate(st, explicit).map_err(|e| RpcError::new(-4, e))?;
    let sffo: Vec<usize> = match opt("subtractFeeFromOutputs") {
        Some(J::Arr(a)) => a
            .iter()
            .map(|v| {
                v.as_i64()
                    .filter(|i| *i >= 0 && (*i as usize) < outs.len())
                    .map(|i| i as usize)
                    .ok_or_else(|| RpcError::new(-8, "Invalid parameter, value out of range"))
            })
            .collect::<Result<_, _>>()?,
        _ => vec![],
    };
    let change_script = match opt("changeAddress") {
        Some(v) => Some(
            parse_address(v.as_str().unwrap_or(""))
                .ok_or_else(|| RpcError::new(-5, "Change address must be a valid bitcoin address"))?
                .script_pubkey(),
        ),
        None => None,
    };
    let change_position = match opt("changePosition").and_then(J::as_i64) {
        Some(c) if c < 0 || c as usize > outs.len() => {
            return Err(RpcError::new(-8, "changePosition out of bounds"));
        }
        Some(c) => Some(c as usize),
        None => None,
    };
    let replaceable = opt("replaceable").and_then(J::as_bool).unwrap_or(true);
    let add_inputs = opt("add_inputs")
        .and_then(J::as_bool)
        .unwrap_or(presets.is_empty());
    let lock = opt("lockUnspents").and_then(J::as_bool).unwrap_or(false);
    let minconf = opt("minconf").and_then(J::as_i64).unwrap_or(0);
    if minconf < 0 {
        return Err(RpcError::new(-8, "Negative minconf"));
    }
    // Every output of a transaction has its depth: excluding shallow ones by
    // txid is exact.
    let shallow: Vec<_> = st.wallets[name]
        .unspent(&st.node)
        .into_iter()
        .filter(|c| c.depth < minconf)
        .map(|c| c.outpoint.txid)
        .collect();

    let req = FundRequest {
        outputs: outs,
        preset_inputs: presets,
        add_inputs,
        fee_rate_sat_kvb: rate,
        subtract_fee_from: sffo,
        replaceable,
        locktime: LockTime::from_consensus(locktime as u32),
        change_position,
        change_script,
        exclude_txids: shallow,
    };
    let t = now();
    let w = st.wallets.get_mut(name).expect("loaded");
    let funded = w
        .fund(&st.node, &req, t)
        .map_err(|e| RpcError::new(-4, e.0))?;
    let mut tx = funded.tx;
    for (i, s) in sequences.iter().enumerate() {
        if let Some(s) = s {
            tx.input[i].sequence = Sequence(*s as u32);
        }
    }
    if lock {
        for i in &tx.input {
            w.locked.insert(i.previous_output);
        }
    }
    let mut psbt = Psbt::from_unsigned_tx(tx).map_err(|e| RpcError::new(-4, e.to_string()))?;
    fill(w, &st.node, &mut psbt, bip32derivs);
    Ok(J::obj()
        .put("psbt", encode(&psbt))
        .put("fee", btc(funded.fee as i64))
        .put(
            "changepos",
            J::int(funded.change_pos.map(|c| c as i64).unwrap_or(-1)),
        )
        .build())
}

fn process(st: &mut State, name: &str, call: &Call) -> RpcResult {
    let p = &call.params;
    let mut psbt = decode(p.req_str(0, "walletprocesspsbt")?)?;
    let sign = p.bool(1)?.unwrap_or(true);
    let sighash = p.str(2)?.unwrap_or("DEFAULT");
    if !matches!(sighash, "DEFAULT" | "ALL") {
        return Err(RpcError::new(
            -8,
            format!("stand-in: sighashtype {sighash} is not supported (ALL/DEFAULT only)"),
        ));
    }
    let bip32derivs = p.bool(3)?.unwrap_or(true);
    let finalize = p.bool(4)?.unwrap_or(true);
    let w = &st.wallets[name];
    fill(w, &st.node, &mut psbt, bip32derivs);
    if sign {
        if !w.private_keys_enabled {
            return Err(RpcError::new(-4, "Signing transaction failed"));
        }
        let prevouts: Option<Vec<TxOut>> = (0..psbt.inputs.len())
            .map(|i| input_utxo(&psbt, i))
            .collect();
        for i in 0..psbt.inputs.len() {
            if is_final(&psbt.inputs[i]) {
                continue;
            }
            let Some(utxo) = input_utxo(&psbt, i) else {
                continue;
            };
            let Some(k) = w.keys.get(&utxo.script_pubkey) else {
                continue;
            };
            match k.kind {
                KeyKind::Wpkh => {
                    if let Some(sig) = w.ecdsa_sig(&psbt.unsigned_tx, i, &utxo) {
                        psbt.inputs[i]
                            .partial_sigs
                            .insert(PublicKey::new(k.pubkey), sig);
                    }
                }
                KeyKind::Tr => {
                    // Key-path signing needs every prevout (BIP341).
                    if let Some(all) = &prevouts
                        && let Some(wit) = w.sign_input(&psbt.unsigned_tx, i, all)
                        && let Some(sig) = wit
                            .nth(0)
                            .and_then(|b| bitcoin::taproot::Signature::from_slice(b).ok())
                    {
                        psbt.inputs[i].tap_key_sig = Some(sig);
                    }
                }
            }
        }
    }
    let complete = if finalize {
        finalize_inputs(&mut psbt)
    } else {
        psbt.inputs.iter().all(is_final)
    };
    Ok(J::obj()
        .put("psbt", encode(&psbt))
        .put("complete", complete)
        .build())
}
