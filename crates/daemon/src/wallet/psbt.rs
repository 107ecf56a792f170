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

/// Real PSBTs recorded from Bitcoin Core v23.99 on regtest (the project's
/// `bitcoind-rpc/exchanges.json`, the cold path: `walletcreatefundedpsbt`
/// paying 0.0005 BTC to a P2WPKH and 0.0007 BTC to a P2TR address with
/// change, `walletprocesspsbt`, `finalizepsbt`), for the tests of this
/// module and of cold payouts.
///
/// That development build wrote an *empty* `PSBT_OUT_TAP_TREE` (key 0x06,
/// no leaves) for the taproot change output, which BIP 371 does not allow
/// and released Core (24.0 on) never writes; the `bitcoin` crate refuses
/// it. [`UNSIGNED`] and [`SIGNED`] are Core's PSBTs with that one empty
/// record removed, every other byte as recorded; [`CORE_UNSIGNED_RAW`] is
/// the recording itself.
#[cfg(test)]
pub(crate) mod core_psbts {
    /// `walletcreatefundedpsbt` (fee 0.00000588, changepos 2).
    pub(crate) const UNSIGNED: &str = "cHNidP8BAKgCAAAAAUxatUT8/HAMLS7tdwZivItFcS+jDxaZ/l1Zieo4ldWRAAAAAAD9////A1DDAAAAAAAAFgAUxDtAvZFM7XfganfTINhjt84CcIdwEQEAAAAAACJRIAyyEmuNkhnuBsqSZGzW2FijVkeHJdZl2AiCEqX5/Tur9BoEKgEAAAAiUSApG57PnBUPqtpE+HGZgQbtncSROz6KFe35WytGJ/NFogAAAAAAAQCDAgAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP////8CUgD/////AgDyBSoBAAAAFgAU5xo0I5lNl5LMF9v5mO777j2vIXAAAAAAAAAAACZqJKohqe3i9hw/cdHe/T+pmd+jaVN1XGkGiXmZYrSL69g2l06M+QAAAAABAR8A8gUqAQAAABYAFOcaNCOZTZeSzBfb+Zju++49ryFwIgYC6M3rAMyGzUmRrCMZ/2TlFvokRr6GmK+Xs49K+SB0MwAYnzLzqFQAAIABAACAAAAAgAAAAAAAAAAAAAAAAQUgNen6+7+vEDsP0i1ZQQEUByb3QUzQd8H65q/wgaFbae4hBzXp+vu/rxA7D9ItWUEBFAcm90FM0HfB+uav8IGhW2nuGQCfMvOoVgAAgAEAAIAAAACAAQAAAAMAAAAA";
    /// `walletcreatefundedpsbt` exactly as recorded (empty tap tree).
    pub(crate) const CORE_UNSIGNED_RAW: &str = "cHNidP8BAKgCAAAAAUxatUT8/HAMLS7tdwZivItFcS+jDxaZ/l1Zieo4ldWRAAAAAAD9////A1DDAAAAAAAAFgAUxDtAvZFM7XfganfTINhjt84CcIdwEQEAAAAAACJRIAyyEmuNkhnuBsqSZGzW2FijVkeHJdZl2AiCEqX5/Tur9BoEKgEAAAAiUSApG57PnBUPqtpE+HGZgQbtncSROz6KFe35WytGJ/NFogAAAAAAAQCDAgAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP////8CUgD/////AgDyBSoBAAAAFgAU5xo0I5lNl5LMF9v5mO777j2vIXAAAAAAAAAAACZqJKohqe3i9hw/cdHe/T+pmd+jaVN1XGkGiXmZYrSL69g2l06M+QAAAAABAR8A8gUqAQAAABYAFOcaNCOZTZeSzBfb+Zju++49ryFwIgYC6M3rAMyGzUmRrCMZ/2TlFvokRr6GmK+Xs49K+SB0MwAYnzLzqFQAAIABAACAAAAAgAAAAAAAAAAAAAAAAQUgNen6+7+vEDsP0i1ZQQEUByb3QUzQd8H65q/wgaFbae4BBgAhBzXp+vu/rxA7D9ItWUEBFAcm90FM0HfB+uav8IGhW2nuGQCfMvOoVgAAgAEAAIAAAACAAQAAAAMAAAAA";
    /// `walletprocesspsbt` of [`UNSIGNED`] (complete: final witness set).
    pub(crate) const SIGNED: &str = "cHNidP8BAKgCAAAAAUxatUT8/HAMLS7tdwZivItFcS+jDxaZ/l1Zieo4ldWRAAAAAAD9////A1DDAAAAAAAAFgAUxDtAvZFM7XfganfTINhjt84CcIdwEQEAAAAAACJRIAyyEmuNkhnuBsqSZGzW2FijVkeHJdZl2AiCEqX5/Tur9BoEKgEAAAAiUSApG57PnBUPqtpE+HGZgQbtncSROz6KFe35WytGJ/NFogAAAAAAAQCDAgAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP////8CUgD/////AgDyBSoBAAAAFgAU5xo0I5lNl5LMF9v5mO777j2vIXAAAAAAAAAAACZqJKohqe3i9hw/cdHe/T+pmd+jaVN1XGkGiXmZYrSL69g2l06M+QAAAAABAR8A8gUqAQAAABYAFOcaNCOZTZeSzBfb+Zju++49ryFwAQhrAkcwRAIgENdxCEY1eiW1VfrBRZHgmmhmEEtqEF54Q/HaTLAwErgCIChE5ypHNFJk+wTxbFR3YdutbqxWsJ+IOrO9vlnH1KrCASEC6M3rAMyGzUmRrCMZ/2TlFvokRr6GmK+Xs49K+SB0MwAAAAABBSA16fr7v68QOw/SLVlBARQHJvdBTNB3wfrmr/CBoVtp7iEHNen6+7+vEDsP0i1ZQQEUByb3QUzQd8H65q/wgaFbae4ZAJ8y86hWAACAAQAAgAAAAIABAAAAAwAAAAA=";
    /// `finalizepsbt` of [`SIGNED`]: the transaction Core broadcast.
    pub(crate) const FINAL_HEX: &str = "020000000001014c5ab544fcfc700c2d2eed770662bc8b45712fa30f1699fe5d5989ea3895d5910000000000fdffffff0350c3000000000000160014c43b40bd914ced77e06a77d320d863b7ce02708770110100000000002251200cb2126b8d9219ee06ca92646cd6d858a356478725d665d8088212a5f9fd3babf41a042a01000000225120291b9ecf9c150faada44f871998106ed9dc4913b3e8a15edf95b2b4627f345a202473044022010d7710846357a25b555fac14591e09a6866104b6a105e7843f1da4cb03012b802202844e72a47345264fb04f16c547761dbad6eac56b09f883ab3bdbe59c7d4aac2012102e8cdeb00cc86cd4991ac2319ff64e516fa2446be8698af97b38f4af92074330000000000";
    pub(crate) const TXID: &str =
        "183f5bb92e08befabb21b7754b769614950a97bd417a4b1b9487fd8cc62e3af1";
    pub(crate) const PREV_TXID: &str =
        "91d59538ea89595dfe99160fa32f71458bbc620677ed2e2d0c70fcfc44b55a4c";
    pub(crate) const P2WPKH: &str = "bcrt1qcsa5p0v3fnkh0cr2wlfjpkrrkl8qyuy8kvd9xw";
    pub(crate) const P2TR: &str =
        "bcrt1ppjepy6udjgv7upk2jfjxe4kctz34v3u8yhtxtkqgsgf2t70a8w4s5sau8m";
    pub(crate) const CHANGE: &str =
        "bcrt1p9ydeanuuz5864kjylpcenqgxakwufyfm869ptm0etv45vflngk3qz28c4f";
}

#[cfg(test)]
mod tests {
    //! Against real PSBTs recorded from Bitcoin Core v23.99 on regtest
    //! (the project's `bitcoind-rpc/exchanges.json`, the cold path:
    //! `walletcreatefundedpsbt` paying 0.0005 BTC to a P2WPKH and 0.0007 BTC
    //! to a P2TR address with change, then `walletprocesspsbt`, then
    //! `finalizepsbt`). Core's own `decodepsbt`/`analyzepsbt` answers for
    //! them are the expected values below.

    use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};

    use super::core_psbts::*;
    use super::*;

    const REGTEST: Network = Network::Regtest;

    fn output(index: u32, address: &str, script_hex: &str, amount_sat: i64) -> OutputFacts {
        OutputFacts {
            index,
            address: address.into(),
            script_hex: script_hex.into(),
            amount_sat,
        }
    }

    fn core_outputs() -> Vec<OutputFacts> {
        vec![
            output(
                0,
                P2WPKH,
                "0014c43b40bd914ced77e06a77d320d863b7ce027087",
                50_000,
            ),
            output(
                1,
                P2TR,
                "51200cb2126b8d9219ee06ca92646cd6d858a356478725d665d8088212a5f9fd3bab",
                70_000,
            ),
            output(
                2,
                CHANGE,
                "5120291b9ecf9c150faada44f871998106ed9dc4913b3e8a15edf95b2b4627f345a2",
                4_999_879_412,
            ),
        ]
    }

    #[test]
    fn a_real_unsigned_psbt_is_read_exactly_as_core_decodes_it() {
        let facts = facts(&decode(UNSIGNED).unwrap(), REGTEST);
        assert_eq!(facts.txid, TXID);
        assert_eq!(
            facts.inputs,
            [InputFacts {
                outpoint: format!("{PREV_TXID}:0"),
                amount_sat: Some(5_000_000_000),
                // The full previous transaction is in the PSBT and hashes
                // to the outpoint's txid.
                verified: true,
                signed: false,
            }]
        );
        assert_eq!(facts.outputs, core_outputs());
        assert_eq!(facts.total_in_sat, Some(5_000_000_000));
        assert_eq!(facts.total_out_sat, 4_999_999_412);
        // decodepsbt: "fee": 0.00000588; analyzepsbt: estimated_vsize 196.
        assert_eq!(facts.fee_sat, Some(588));
        assert_eq!(facts.vsize, 196);
        assert_eq!(facts.inputs_signed, 0);
    }

    #[test]
    fn a_real_signed_psbt_counts_its_signature_and_its_exact_size() {
        let facts = facts(&decode(SIGNED).unwrap(), REGTEST);
        assert_eq!(facts.txid, TXID);
        assert_eq!(facts.inputs_signed, 1);
        assert!(facts.inputs[0].signed);
        assert_eq!(facts.outputs, core_outputs());
        assert_eq!(facts.fee_sat, Some(588));
        // Every input final: the size is the broadcast transaction's.
        let tx: Transaction = deserialize_hex(FINAL_HEX).unwrap();
        assert_eq!(facts.vsize, tx.vsize() as u64);
    }

    #[test]
    fn the_signed_psbt_finalizes_to_the_transaction_core_broadcast() {
        let tx = finalize_p2wpkh(decode(SIGNED).unwrap()).expect("complete");
        assert_eq!(serialize_hex(&tx), FINAL_HEX);
        // The same signature given as a partial signature (as an offline
        // signer hands it back) finalizes to the same bytes.
        let mut partial = decode(SIGNED).unwrap();
        let witness = partial.inputs[0].final_script_witness.take().unwrap();
        let signature = bitcoin::ecdsa::Signature::from_slice(&witness[0]).unwrap();
        let public = bitcoin::PublicKey::from_slice(&witness[1]).unwrap();
        partial.inputs[0].partial_sigs.insert(public, signature);
        let tx = finalize_p2wpkh(partial).expect("complete");
        assert_eq!(serialize_hex(&tx), FINAL_HEX);
        // Nothing to finalize without a signature.
        assert!(finalize_p2wpkh(decode(UNSIGNED).unwrap()).is_none());
    }

    #[test]
    fn corrupted_or_truncated_psbts_are_refused_with_a_clear_error() {
        let truncated = &UNSIGNED[..UNSIGNED.len() - 12];
        let mut flipped_magic = UNSIGNED.to_string();
        flipped_magic.replace_range(0..1, "d");
        let cases = [
            // Core's own malformed example (decodepsbt: -22 "TX decode failed").
            "cHNidP8BAHECAAAAAQ==",
            truncated,
            &flipped_magic,
            "not base64 at all!",
            "",
            // An empty taproot tree (BIP 371 wants at least one leaf), as a
            // Core development build wrote it.
            CORE_UNSIGNED_RAW,
        ];
        for case in cases {
            let err = decode(case).unwrap_err();
            assert!(err.starts_with("not a valid PSBT: "), "{case:?}: {err}");
        }
        // Surrounding whitespace (a pasted PSBT) is not corruption.
        assert!(decode(&format!("  {UNSIGNED}\n")).is_ok());
        assert_eq!(encode(&decode(UNSIGNED).unwrap()), UNSIGNED);
    }

    #[test]
    fn signing_changes_nothing_that_is_paid() {
        let reviewed = decode(UNSIGNED).unwrap();
        assert!(differences(&reviewed, &decode(SIGNED).unwrap(), REGTEST).is_empty());
        assert!(differences(&reviewed, &reviewed, REGTEST).is_empty());
    }

    #[test]
    fn every_change_to_what_is_paid_is_named() {
        let reviewed = decode(UNSIGNED).unwrap();
        let tampered = |edit: &dyn Fn(&mut Transaction)| {
            let mut psbt = decode(SIGNED).unwrap();
            edit(&mut psbt.unsigned_tx);
            differences(&reviewed, &psbt, REGTEST)
        };
        let other = Address::from_str(P2WPKH)
            .unwrap()
            .assume_checked()
            .script_pubkey();
        assert_eq!(
            tampered(&|tx| tx.output[1].value = Amount::from_sat(70_001)),
            ["output 1: amount changed from 70000 to 70001 sat"]
        );
        assert_eq!(
            tampered(&|tx| tx.output[1].script_pubkey = other.clone()),
            [format!("output 1: address changed from {P2TR} to {P2WPKH}")]
        );
        assert_eq!(
            tampered(&|tx| tx.output.push(tx.output[0].clone())),
            [format!("extra output 3: 50000 sat to {P2WPKH}")]
        );
        assert_eq!(
            tampered(&|tx| {
                tx.output.pop();
            }),
            [format!("output 2 removed: 4999879412 sat to {CHANGE}")]
        );
        assert_eq!(
            tampered(&|tx| tx.input[0].previous_output.vout = 1),
            [
                format!("extra input {PREV_TXID}:1"),
                format!("missing input {PREV_TXID}:0")
            ]
        );
        assert_eq!(
            tampered(&|tx| tx.lock_time = bitcoin::absolute::LockTime::from_consensus(500)),
            ["locktime changed from 0 to 500"]
        );
        assert_eq!(
            tampered(&|tx| tx.version = bitcoin::transaction::Version::ONE),
            ["version changed from 2 to 1"]
        );
        // Swapping two outputs is a change of both.
        assert_eq!(tampered(&|tx| tx.output.swap(0, 1)).len(), 4);
    }

    #[test]
    fn input_amounts_are_verified_only_by_the_previous_transaction_or_taproot() {
        // Without the full previous transaction, a P2WPKH amount is the
        // signer's word only.
        let mut witness_only = decode(UNSIGNED).unwrap();
        witness_only.inputs[0].non_witness_utxo = None;
        let f = facts(&witness_only, REGTEST);
        assert_eq!(f.inputs[0].amount_sat, Some(5_000_000_000));
        assert!(!f.inputs[0].verified);
        assert_eq!(f.fee_sat, Some(588));
        // A previous transaction that is not the one spent proves nothing;
        // the witness UTXO's amount is shown, unverified.
        let mut wrong_prev = decode(UNSIGNED).unwrap();
        let prev = wrong_prev.inputs[0].non_witness_utxo.as_mut().unwrap();
        prev.output[0].value = Amount::from_sat(6_000_000_000);
        let f = facts(&wrong_prev, REGTEST);
        assert_eq!(f.inputs[0].amount_sat, Some(5_000_000_000));
        assert!(!f.inputs[0].verified);
        // No UTXO at all: no amount, no total, no fee.
        let mut bare = decode(UNSIGNED).unwrap();
        bare.inputs[0].non_witness_utxo = None;
        bare.inputs[0].witness_utxo = None;
        let f = facts(&bare, REGTEST);
        assert_eq!(f.inputs[0].amount_sat, None);
        assert_eq!((f.total_in_sat, f.fee_sat), (None, None));
        assert_eq!(f.total_out_sat, 4_999_999_412);
        // A taproot coin's amount is committed to by its signature.
        let mut taproot = decode(UNSIGNED).unwrap();
        taproot.inputs[0].non_witness_utxo = None;
        taproot.inputs[0].witness_utxo = Some(TxOut {
            value: Amount::from_sat(5_000_000_000),
            script_pubkey: Address::from_str(P2TR)
                .unwrap()
                .assume_checked()
                .script_pubkey(),
        });
        assert!(facts(&taproot, REGTEST).inputs[0].verified);
    }

    #[test]
    fn a_built_psbt_pays_exactly_its_outputs_and_change() {
        let funding = Address::from_str(P2WPKH).unwrap().assume_checked();
        let change = Address::from_str(CHANGE).unwrap().assume_checked();
        let outputs = [
            Output {
                address: P2TR.into(),
                amount_sat: 70_000,
            },
            Output {
                address: P2WPKH.into(),
                amount_sat: 50_000,
            },
        ];
        let built = build_unsigned(
            PREV_TXID, 1_000_000, &funding, &outputs, &change, 879_000, REGTEST,
        )
        .unwrap();
        let f = facts(&decode(&built).unwrap(), REGTEST);
        let paid: Vec<(String, i64)> = f
            .outputs
            .iter()
            .map(|o| (o.address.clone(), o.amount_sat))
            .collect();
        assert_eq!(
            paid,
            [
                (P2TR.to_string(), 70_000),
                (P2WPKH.to_string(), 50_000),
                (CHANGE.to_string(), 879_000)
            ]
        );
        assert_eq!(f.inputs[0].outpoint, format!("{PREV_TXID}:0"));
        assert_eq!(f.fee_sat, Some(1_000));
        // No change output when there is no change.
        let built =
            build_unsigned(PREV_TXID, 121_000, &funding, &outputs, &change, 0, REGTEST).unwrap();
        assert_eq!(facts(&decode(&built).unwrap(), REGTEST).outputs.len(), 2);
        // An address of another network is refused, not paid.
        let mainnet = [Output {
            address: "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq".into(),
            amount_sat: 50_000,
        }];
        assert!(
            build_unsigned(
                PREV_TXID, 1_000_000, &funding, &mainnet, &change, 0, REGTEST
            )
            .is_err()
        );
    }
}
