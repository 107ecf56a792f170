//! Core's JSON descriptions of scripts and transactions (`scriptPubKey`
//! objects, `decoderawtransaction` shape) and output descriptor checksums.

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::script::Instruction;
use bitcoin::{Address, Network, Script, Transaction, TxOut};

use super::amount::btc;
use super::json::J;

/// Core's `DescriptorChecksum` (BIP380).
pub fn descriptor_checksum(desc: &str) -> String {
    const INPUT: &str = "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ ";
    const CHECKSUM: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    fn poly_mod(c: u64, val: u64) -> u64 {
        let c0 = c >> 35;
        let mut c = ((c & 0x7_ffff_ffff) << 5) ^ val;
        if c0 & 1 != 0 {
            c ^= 0xf5_dee5_1989;
        }
        if c0 & 2 != 0 {
            c ^= 0xa9_fdca_3312;
        }
        if c0 & 4 != 0 {
            c ^= 0x1b_ab10_e32d;
        }
        if c0 & 8 != 0 {
            c ^= 0x37_06b1_677a;
        }
        if c0 & 16 != 0 {
            c ^= 0x64_4d62_6ffd;
        }
        c
    }
    let mut c = 1u64;
    let mut cls = 0u64;
    let mut clscount = 0;
    for ch in desc.chars() {
        let Some(pos) = INPUT.find(ch) else {
            return String::new();
        };
        let pos = pos as u64;
        c = poly_mod(c, pos & 31);
        cls = cls * 3 + (pos >> 5);
        clscount += 1;
        if clscount == 3 {
            c = poly_mod(c, cls);
            cls = 0;
            clscount = 0;
        }
    }
    if clscount > 0 {
        c = poly_mod(c, cls);
    }
    for _ in 0..8 {
        c = poly_mod(c, 0);
    }
    c ^= 1;
    (0..8)
        .map(|j| CHECKSUM[((c >> (5 * (7 - j))) & 31) as usize] as char)
        .collect()
}

/// `desc#checksum`.
pub fn with_checksum(desc: &str) -> String {
    format!("{desc}#{}", descriptor_checksum(desc))
}

/// Core's script type names.
pub fn script_type(s: &Script) -> &'static str {
    if s.is_p2wpkh() {
        "witness_v0_keyhash"
    } else if s.is_p2wsh() {
        "witness_v0_scripthash"
    } else if s.is_p2tr() {
        "witness_v1_taproot"
    } else if s.is_p2pkh() {
        "pubkeyhash"
    } else if s.is_p2sh() {
        "scripthash"
    } else if s.is_op_return() {
        "nulldata"
    } else if s.is_p2pk() {
        "pubkey"
    } else if s.is_multisig() {
        "multisig"
    } else if s.is_witness_program() {
        "witness_unknown"
    } else {
        "nonstandard"
    }
}

/// Core's `ScriptToAsmStr`: small pushes as numbers, data as hex.
pub fn asm(s: &Script) -> String {
    let mut parts = Vec::new();
    for ins in s.instructions() {
        match ins {
            Ok(Instruction::PushBytes(b)) => {
                let b = b.as_bytes();
                if b.is_empty() {
                    parts.push("0".to_string());
                } else if b.len() <= 4 {
                    parts.push(script_num(b).to_string());
                } else {
                    parts.push(hex::encode(b));
                }
            }
            Ok(Instruction::Op(op)) => {
                let code = op.to_u8();
                if (0x51..=0x60).contains(&code) {
                    parts.push((code - 0x50).to_string());
                } else if code == 0x4f {
                    parts.push("-1".into());
                } else {
                    parts.push(op.to_string());
                }
            }
            Err(_) => {
                parts.push("[error]".into());
                break;
            }
        }
    }
    parts.join(" ")
}

fn script_num(b: &[u8]) -> i64 {
    let mut v: i64 = 0;
    for (i, byte) in b.iter().enumerate() {
        v |= (*byte as i64) << (8 * i);
    }
    let last = *b.last().unwrap_or(&0);
    if last & 0x80 != 0 {
        -(v & !(0x80i64 << (8 * (b.len() - 1))))
    } else {
        v
    }
}

/// The address of a script on regtest, if it has one.
pub fn address(s: &Script) -> Option<Address> {
    Address::from_script(s, Network::Regtest).ok()
}

/// Core's inferred descriptor for a bare script: `addr(...)`, `rawtr(...)`
/// for taproot outputs without key info, `raw(...)` otherwise.
pub fn infer_desc(s: &Script) -> String {
    let d = if s.is_p2tr() {
        format!("rawtr({})", hex::encode(&s.as_bytes()[2..]))
    } else if let Some(a) = address(s) {
        format!("addr({a})")
    } else {
        format!("raw({})", hex::encode(s.as_bytes()))
    };
    with_checksum(&d)
}

/// A `scriptPubKey` object as in `decoderawtransaction`.
pub fn script_pubkey_json(s: &Script) -> J {
    let mut o = J::obj()
        .put("asm", asm(s))
        .put("desc", infer_desc(s))
        .put("hex", hex::encode(s.as_bytes()));
    if let Some(a) = address(s) {
        o.push("address", a.to_string());
    }
    o.put("type", script_type(s)).build()
}

/// A `TxOut` as in `witness_utxo` of `decodepsbt`.
pub fn txout_json(o: &TxOut) -> J {
    J::obj()
        .put("amount", btc(o.value.to_sat() as i64))
        .put("scriptPubKey", script_pubkey_json(&o.script_pubkey))
        .build()
}

/// `decoderawtransaction`'s object.
pub fn tx_json(tx: &Transaction) -> J {
    let vin = tx
        .input
        .iter()
        .map(|i| {
            let mut o = J::obj();
            if tx.is_coinbase() {
                o.push("coinbase", hex::encode(i.script_sig.as_bytes()));
            } else {
                o.push("txid", i.previous_output.txid.to_string());
                o.push("vout", J::int(i.previous_output.vout));
                o.push(
                    "scriptSig",
                    J::obj()
                        .put("asm", asm(&i.script_sig))
                        .put("hex", hex::encode(i.script_sig.as_bytes())),
                );
            }
            if !i.witness.is_empty() {
                o.push(
                    "txinwitness",
                    J::Arr(i.witness.iter().map(|w| J::str(hex::encode(w))).collect()),
                );
            }
            o.push("sequence", J::int(i.sequence.0));
            o.build()
        })
        .collect();
    let vout = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, o)| {
            J::obj()
                .put("value", btc(o.value.to_sat() as i64))
                .put("n", J::int(n as u32))
                .put("scriptPubKey", script_pubkey_json(&o.script_pubkey))
                .build()
        })
        .collect();
    J::obj()
        .put("txid", tx.compute_txid().to_string())
        .put("hash", tx.compute_wtxid().to_string())
        .put("version", J::int(tx.version.0))
        .put("size", J::int(tx.total_size() as u64))
        .put("vsize", J::int(tx.vsize() as u64))
        .put("weight", J::int(tx.weight().to_wu()))
        .put("locktime", J::int(tx.lock_time.to_consensus_u32()))
        .put("vin", J::Arr(vin))
        .put("vout", J::Arr(vout))
        .build()
}

/// Raw transaction hex.
pub fn tx_hex(tx: &Transaction) -> String {
    serialize_hex(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_core() {
        // From the recorded decodepsbt answer.
        assert_eq!(
            descriptor_checksum("addr(bcrt1qcsa5p0v3fnkh0cr2wlfjpkrrkl8qyuy8kvd9xw)"),
            "5ru3ypyy"
        );
        assert_eq!(
            descriptor_checksum(
                "rawtr(0cb2126b8d9219ee06ca92646cd6d858a356478725d665d8088212a5f9fd3bab)"
            ),
            "6lddj2zl"
        );
    }
}
