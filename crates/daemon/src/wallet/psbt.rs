//! PSBT handling with the `bitcoin` crate: decoding, the facts a review
//! needs (inputs and their amounts, outputs, fee, size, signatures), and
//! the comparison of a signed PSBT with the one that was reviewed.

use std::str::FromStr;

use bitcoin::psbt::Psbt;
use bitcoin::{
    Address, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    Witness,
};

use super::Output;

pub fn decode(base64: &str) -> Result<Psbt, String> {
    Psbt::from_str(base64.trim()).map_err(|e| format!("not a valid PSBT: {e}"))
}

pub fn encode(psbt: &Psbt) -> String {
    psbt.to_string()
}

/// One input as the review shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFacts {
    pub outpoint: String,
    pub amount_sat: Option<i64>,
    /// The amount is proven by the full previous transaction
    /// (non-witness UTXO whose txid matches), or the input is taproot
    /// (whose signature commits to every input amount).
    pub verified: bool,
    pub signed: bool,
}

/// One output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFacts {
    pub index: u32,
    pub address: String,
    pub script_hex: String,
    pub amount_sat: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub txid: String,
    pub inputs: Vec<InputFacts>,
    pub outputs: Vec<OutputFacts>,
    pub total_in_sat: Option<i64>,
    pub total_out_sat: i64,
    pub fee_sat: Option<i64>,
    /// Estimated size once signed (exact when every input is final).
    pub vsize: u64,
    pub inputs_signed: u32,
}

/// Extracts the review facts from a PSBT.
pub fn facts(psbt: &Psbt, network: Network) -> Facts {
    let tx = &psbt.unsigned_tx;
    let mut inputs = Vec::with_capacity(tx.input.len());
    let mut total_in: Option<i64> = Some(0);
    let mut witness_weight: u64 = 0;
    for (txin, input) in tx.input.iter().zip(psbt.inputs.iter()) {
        let prevout = txin.previous_output;
        let from_full = input.non_witness_utxo.as_ref().and_then(|prev| {
            (prev.compute_txid() == prevout.txid)
                .then(|| prev.output.get(prevout.vout as usize).cloned())
                .flatten()
        });
        let utxo: Option<TxOut> = from_full.clone().or_else(|| input.witness_utxo.clone());
        let is_taproot = utxo.as_ref().is_some_and(|u| u.script_pubkey.is_p2tr());
        let amount = utxo.as_ref().map(|u| u.value.to_sat() as i64);
        total_in = match (total_in, amount) {
            (Some(sum), Some(a)) => Some(sum + a),
            _ => None,
        };
        let signed = input.final_script_witness.is_some()
            || input.final_script_sig.is_some()
            || !input.partial_sigs.is_empty()
            || input.tap_key_sig.is_some();
        witness_weight += match (&input.final_script_witness, is_taproot) {
            (Some(witness), _) => witness.size() as u64,
            (None, true) => 66,
            // P2WPKH: signature (≤72) + pubkey (33) + lengths.
            (None, false) => 108,
        };
        inputs.push(InputFacts {
            outpoint: prevout.to_string(),
            amount_sat: amount,
            verified: from_full.is_some() || (is_taproot && amount.is_some()),
            signed,
        });
    }
    let outputs: Vec<OutputFacts> = tx
        .output
        .iter()
        .enumerate()
        .map(|(index, out)| OutputFacts {
            index: index as u32,
            address: Address::from_script(&out.script_pubkey, network)
                .map(|a| a.to_string())
                .unwrap_or_else(|_| format!("script:{}", out.script_pubkey.to_hex_string())),
            script_hex: out.script_pubkey.to_hex_string(),
            amount_sat: out.value.to_sat() as i64,
        })
        .collect();
    let total_out: i64 = outputs.iter().map(|o| o.amount_sat).sum();
    // Weight of the unsigned transaction (no witness) plus marker, flag
    // and the witnesses it will carry.
    let base_weight = tx.weight().to_wu();
    let weight = base_weight + 2 + witness_weight;
    let inputs_signed = inputs.iter().filter(|i| i.signed).count() as u32;
    Facts {
        txid: tx.compute_txid().to_string(),
        total_in_sat: total_in,
        fee_sat: total_in.map(|i| i - total_out),
        total_out_sat: total_out,
        vsize: weight.div_ceil(4),
        inputs,
        outputs,
        inputs_signed,
    }
}

/// Differences between a signed PSBT and the reviewed one: anything that
/// changes what is paid, to whom, or from which coins.
pub fn differences(reviewed: &Psbt, signed: &Psbt, network: Network) -> Vec<String> {
    let mut diffs = Vec::new();
    let a = &reviewed.unsigned_tx;
    let b = &signed.unsigned_tx;
    if a.version != b.version {
        diffs.push(format!(
            "version changed from {} to {}",
            a.version.0, b.version.0
        ));
    }
    if a.lock_time != b.lock_time {
        diffs.push(format!(
            "locktime changed from {} to {}",
            a.lock_time, b.lock_time
        ));
    }
    let ins_a: Vec<String> = a
        .input
        .iter()
        .map(|i| i.previous_output.to_string())
        .collect();
    let ins_b: Vec<String> = b
        .input
        .iter()
        .map(|i| i.previous_output.to_string())
        .collect();
    for extra in ins_b.iter().filter(|o| !ins_a.contains(o)) {
        diffs.push(format!("extra input {extra}"));
    }
    for missing in ins_a.iter().filter(|o| !ins_b.contains(o)) {
        diffs.push(format!("missing input {missing}"));
    }
    let show = |out: &TxOut| {
        Address::from_script(&out.script_pubkey, network)
            .map(|a| a.to_string())
            .unwrap_or_else(|_| format!("script:{}", out.script_pubkey.to_hex_string()))
    };
    let count = a.output.len().max(b.output.len());
    for index in 0..count {
        match (a.output.get(index), b.output.get(index)) {
            (Some(x), Some(y)) => {
                if x.script_pubkey != y.script_pubkey {
                    diffs.push(format!(
                        "output {index}: address changed from {} to {}",
                        show(x),
                        show(y)
                    ));
                }
                if x.value != y.value {
                    diffs.push(format!(
                        "output {index}: amount changed from {} to {} sat",
                        x.value.to_sat(),
                        y.value.to_sat()
                    ));
                }
            }
            (Some(x), None) => diffs.push(format!(
                "output {index} removed: {} sat to {}",
                x.value.to_sat(),
                show(x)
            )),
            (None, Some(y)) => diffs.push(format!(
                "extra output {index}: {} sat to {}",
                y.value.to_sat(),
                show(y)
            )),
            (None, None) => {}
        }
    }
    diffs
}

/// Builds an unsigned PSBT spending one coin (simulated wallet only).
pub fn build_unsigned(
    prev_txid_hex: &str,
    input_value_sat: i64,
    funding: &Address,
    outputs: &[Output],
    change: &Address,
    change_sat: i64,
    network: Network,
) -> Result<String, String> {
    let txid = Txid::from_str(prev_txid_hex).map_err(|e| e.to_string())?;
    let mut tx_out = Vec::with_capacity(outputs.len() + 1);
    for output in outputs {
        let address = Address::from_str(&output.address)
            .map_err(|e| e.to_string())?
            .require_network(network)
            .map_err(|e| e.to_string())?;
        tx_out.push(TxOut {
            value: Amount::from_sat(output.amount_sat as u64),
            script_pubkey: address.script_pubkey(),
        });
    }
    if change_sat > 0 {
        tx_out.push(TxOut {
            value: Amount::from_sat(change_sat as u64),
            script_pubkey: change.script_pubkey(),
        });
    }
    let tx = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid, vout: 0 },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: tx_out,
    };
    let mut psbt = Psbt::from_unsigned_tx(tx).map_err(|e| e.to_string())?;
    psbt.inputs[0].witness_utxo = Some(TxOut {
        value: Amount::from_sat(input_value_sat as u64),
        script_pubkey: funding.script_pubkey(),
    });
    Ok(encode(&psbt))
}

/// Finalizes P2WPKH inputs from their partial signatures and extracts the
/// transaction; `None` when some input has no signature.
pub fn finalize_p2wpkh(mut psbt: Psbt) -> Option<Transaction> {
    for input in &mut psbt.inputs {
        if input.final_script_witness.is_some() {
            continue;
        }
        let (public, signature) = input.partial_sigs.iter().next()?;
        let mut witness = Witness::new();
        witness.push(signature.to_vec());
        witness.push(public.to_bytes());
        input.final_script_witness = Some(witness);
        input.partial_sigs.clear();
    }
    psbt.extract_tx().ok()
}
