//! Input script verification for the spend types the stand-in meets.
//!
//! The `bitcoin` crate has no script interpreter without the C++
//! `bitcoinconsensus` library, so this checks the standard templates by hand:
//! P2WPKH (BIP143 ECDSA), P2TR key path (BIP341 Schnorr) and P2PKH (legacy
//! ECDSA). That covers every output the stand-in's wallets can own. Anything
//! else is refused as non-standard instead of being waved through, so a test can
//! never pass because verification was skipped.
//!
//! Reject reasons are Core's: a wrong signature under Core's policy flags
//! fails, and re-checked under the consensus-only flags still fails, hence
//! `mandatory-script-verify-flag-failed (...)`.

use bitcoin::hashes::Hash;
use bitcoin::key::TapTweak;
use bitcoin::secp256k1::{Message, Secp256k1, VerifyOnly};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::{PublicKey, Script, Transaction, TxOut, XOnlyPublicKey, ecdsa, taproot};

/// Why Core would refuse an input whose signature does not check out.
pub const BAD_SIG: &str = "mandatory-script-verify-flag-failed (Script evaluated without error but finished with a false/empty top stack element)";

/// Checks every input of `tx` against `prevouts` (same order as the inputs).
pub fn verify_tx(
    secp: &Secp256k1<VerifyOnly>,
    tx: &Transaction,
    prevouts: &[TxOut],
) -> Result<(), String> {
    let mut cache = SighashCache::new(tx);
    for (i, prev) in prevouts.iter().enumerate() {
        verify_input(secp, &mut cache, tx, i, prev, prevouts)?;
    }
    Ok(())
}

fn verify_input(
    secp: &Secp256k1<VerifyOnly>,
    cache: &mut SighashCache<&Transaction>,
    tx: &Transaction,
    i: usize,
    prev: &TxOut,
    prevouts: &[TxOut],
) -> Result<(), String> {
    let input = &tx.input[i];
    let spk = &prev.script_pubkey;
    if spk.is_p2wpkh() {
        if !input.script_sig.is_empty() {
            return Err(
                "mandatory-script-verify-flag-failed (Witness requires empty scriptSig)".into(),
            );
        }
        let w: Vec<&[u8]> = input.witness.iter().collect();
        if w.len() != 2 {
            return Err(
                "mandatory-script-verify-flag-failed (Witness program hash mismatch)".into(),
            );
        }
        let pk = PublicKey::from_slice(w[1]).map_err(|_| BAD_SIG.to_string())?;
        if pk.wpubkey_hash().ok().map(|h| h.to_byte_array().to_vec())
            != Some(spk.as_bytes()[2..].to_vec())
        {
            return Err(
                "mandatory-script-verify-flag-failed (Witness program hash mismatch)".into(),
            );
        }
        let sig = ecdsa::Signature::from_slice(w[0]).map_err(|_| {
            "mandatory-script-verify-flag-failed (Non-canonical DER signature)".to_string()
        })?;
        let h = cache
            .p2wpkh_signature_hash(i, spk, prev.value, sig.sighash_type)
            .map_err(|e| e.to_string())?;
        check_ecdsa(secp, &h.to_byte_array(), &sig, &pk)
    } else if spk.is_p2tr() {
        if !input.script_sig.is_empty() {
            return Err(
                "mandatory-script-verify-flag-failed (Witness requires empty scriptSig)".into(),
            );
        }
        let w: Vec<&[u8]> = input.witness.iter().collect();
        if w.len() != 1 {
            // Script-path spends would need a tapscript interpreter.
            return Err(
                "non-mandatory-script-verify-flag (stand-in verifies taproot key-path spends only)"
                    .into(),
            );
        }
        let sig = taproot::Signature::from_slice(w[0]).map_err(|_| {
            "mandatory-script-verify-flag-failed (Invalid Schnorr signature size)".to_string()
        })?;
        let key = XOnlyPublicKey::from_slice(&spk.as_bytes()[2..]).map_err(|_| BAD_SIG)?;
        let h = cache
            .taproot_key_spend_signature_hash(i, &Prevouts::All(prevouts), sig.sighash_type)
            .map_err(|e| e.to_string())?;
        let msg = Message::from_digest(h.to_byte_array());
        secp.verify_schnorr(&sig.signature, &msg, &key)
            .map_err(|_| {
                "mandatory-script-verify-flag-failed (Invalid Schnorr signature)".to_string()
            })
    } else if spk.is_p2pkh() {
        let pushes: Vec<Vec<u8>> = script_pushes(&input.script_sig).ok_or(BAD_SIG)?;
        if pushes.len() != 2 || !input.witness.is_empty() {
            return Err(BAD_SIG.into());
        }
        let pk = PublicKey::from_slice(&pushes[1]).map_err(|_| BAD_SIG.to_string())?;
        if pk.pubkey_hash().as_byte_array()[..] != spk.as_bytes()[3..23] {
            return Err(
                "mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)"
                    .into(),
            );
        }
        let sig = ecdsa::Signature::from_slice(&pushes[0]).map_err(|_| {
            "mandatory-script-verify-flag-failed (Non-canonical DER signature)".to_string()
        })?;
        let h = cache
            .legacy_signature_hash(i, spk, sig.sighash_type.to_u32())
            .map_err(|e| e.to_string())?;
        check_ecdsa(secp, &h.to_byte_array(), &sig, &pk)
    } else {
        Err("non-mandatory-script-verify-flag (stand-in cannot verify this script type)".into())
    }
}

fn check_ecdsa(
    secp: &Secp256k1<VerifyOnly>,
    digest: &[u8; 32],
    sig: &ecdsa::Signature,
    pk: &PublicKey,
) -> Result<(), String> {
    if sig.sighash_type != EcdsaSighashType::All
        && !matches!(
            sig.sighash_type,
            EcdsaSighashType::None
                | EcdsaSighashType::Single
                | EcdsaSighashType::AllPlusAnyoneCanPay
                | EcdsaSighashType::NonePlusAnyoneCanPay
                | EcdsaSighashType::SinglePlusAnyoneCanPay
        )
    {
        return Err(BAD_SIG.into());
    }
    let msg = Message::from_digest(*digest);
    // Core's policy demands low-S; a high-S signature is malleable, not forged.
    let mut normalized = sig.signature;
    normalized.normalize_s();
    if normalized != sig.signature {
        return Err("non-mandatory-script-verify-flag (Non-canonical signature: S value is unnecessarily high)".into());
    }
    secp.verify_ecdsa(&msg, &sig.signature, &pk.inner)
        .map_err(|_| BAD_SIG.to_string())
}

/// The data pushes of a push-only script, `None` if it has other opcodes.
fn script_pushes(s: &Script) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for ins in s.instructions() {
        match ins.ok()? {
            bitcoin::script::Instruction::PushBytes(b) => out.push(b.as_bytes().to_vec()),
            bitcoin::script::Instruction::Op(_) => return None,
        }
    }
    Some(out)
}

/// Signs a taproot key-path input for an internal key (BIP86, no script tree).
pub fn sign_taproot_key_spend(
    secp: &Secp256k1<bitcoin::secp256k1::All>,
    tx: &Transaction,
    i: usize,
    prevouts: &[TxOut],
    keypair: &bitcoin::secp256k1::Keypair,
) -> Result<taproot::Signature, String> {
    let mut cache = SighashCache::new(tx);
    let h = cache
        .taproot_key_spend_signature_hash(i, &Prevouts::All(prevouts), TapSighashType::Default)
        .map_err(|e| e.to_string())?;
    let tweaked = keypair.tap_tweak(secp, None);
    let msg = Message::from_digest(h.to_byte_array());
    let signature = secp.sign_schnorr_no_aux_rand(&msg, &tweaked.to_keypair());
    Ok(taproot::Signature {
        signature,
        sighash_type: TapSighashType::Default,
    })
}
