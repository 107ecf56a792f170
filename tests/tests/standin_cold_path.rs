//! Cold wallet path: funded PSBT with locked inputs → decode/analyze →
//! signed by the wallet (as the offline signer would) → finalized →
//! accepted → broadcast, and the ways it must fail (tampered, unsigned,
//! double spend).

use base64::Engine as _;
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::psbt::Psbt;
use bitcoin::{Amount, OutPoint, Transaction};
use pooldesk_e2e::standin::client::{CallError, RpcClient, amount_sat};
use pooldesk_e2e::standin::json::J;
use pooldesk_e2e::standin::{AddrKind, StandIn, StandInOptions};

fn s(v: &J, k: &str) -> String {
    v.get(k)
        .and_then(J::as_str)
        .unwrap_or_else(|| panic!("{k} missing in {}", v.to_text()))
        .to_string()
}

fn psbt_of(b64: &str) -> Psbt {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Psbt::deserialize(&bytes).unwrap()
}

fn b64(p: &Psbt) -> String {
    base64::engine::general_purpose::STANDARD.encode(p.serialize())
}

async fn node(rpc: &RpcClient, method: &str, params: &str) -> Result<J, CallError> {
    rpc.call(None, method, params).await
}

#[tokio::test]
async fn psbt_round_trip_from_funding_to_broadcast() {
    let standin = StandIn::start(StandInOptions::default()).await.unwrap();
    let rpc = RpcClient::for_standin(&standin);
    let a1 = standin.new_external_address(AddrKind::P2wpkh);
    let a2 = standin.new_external_address(AddrKind::P2tr);

    let funded = rpc
        .pool(
            "walletcreatefundedpsbt",
            &format!(
                r#"[[],[{{"{a1}":0.0005}},{{"{a2}":0.0007}}],0,{{"fee_rate":3,"lockUnspents":true,"replaceable":true}},true]"#
            ),
        )
        .await
        .unwrap();
    let unsigned_b64 = s(&funded, "psbt");
    let fee = amount_sat(funded.get("fee").unwrap());
    let changepos = funded.get("changepos").and_then(J::as_i64).unwrap();
    assert_eq!(changepos, 2, "change appended after the recipients");
    let unsigned = psbt_of(&unsigned_b64);
    let tx = &unsigned.unsigned_tx;
    assert_eq!(tx.output[0].value, Amount::from_sat(50_000));
    assert_eq!(tx.output[1].value, Amount::from_sat(70_000));
    assert!(tx.input.iter().all(|i| i.sequence.is_rbf()));
    // PSBT inputs carry both UTXO forms and our key origin, like Core's.
    for inp in &unsigned.inputs {
        assert!(inp.witness_utxo.is_some() && inp.non_witness_utxo.is_some());
        assert_eq!(inp.bip32_derivation.len(), 1);
    }
    assert_eq!(
        unsigned.outputs[2].bip32_derivation.len(),
        1,
        "change derivation"
    );
    assert_eq!(unsigned.fee().unwrap().to_sat() as i64, fee);

    // Inputs are locked and no longer listed as spendable.
    let locked = rpc.pool("listlockunspent", "[]").await.unwrap();
    let locked: Vec<OutPoint> = locked
        .as_arr()
        .unwrap()
        .iter()
        .map(|l| {
            OutPoint::new(
                s(l, "txid").parse().unwrap(),
                l.get("vout").unwrap().as_i64().unwrap() as u32,
            )
        })
        .collect();
    let inputs: Vec<OutPoint> = tx.input.iter().map(|i| i.previous_output).collect();
    assert_eq!(locked, inputs);
    let unspent = rpc.pool("listunspent", "[]").await.unwrap();
    assert!(unspent.as_arr().unwrap().iter().all(|u| {
        let op = OutPoint::new(
            s(u, "txid").parse().unwrap(),
            u.get("vout").unwrap().as_i64().unwrap() as u32,
        );
        !inputs.contains(&op)
    }));

    let decoded = node(&rpc, "decodepsbt", &format!(r#"["{unsigned_b64}"]"#))
        .await
        .unwrap();
    assert_eq!(amount_sat(decoded.get("fee").unwrap()), fee);
    assert_eq!(
        s(decoded.get("tx").unwrap(), "txid"),
        tx.compute_txid().to_string()
    );
    let analyzed = node(&rpc, "analyzepsbt", &format!(r#"["{unsigned_b64}"]"#))
        .await
        .unwrap();
    assert_eq!(s(&analyzed, "next"), "signer");
    let vsize = analyzed.get("estimated_vsize").and_then(J::as_i64).unwrap();
    assert_eq!(fee, 3 * vsize, "fee = ceil(3 sat/vB × estimated vsize)");

    // Finalizing before signing is not complete.
    let not_yet = node(&rpc, "finalizepsbt", &format!(r#"["{unsigned_b64}"]"#))
        .await
        .unwrap();
    assert_eq!(not_yet.get("complete"), Some(&J::Bool(false)));
    assert!(not_yet.get("psbt").is_some() && not_yet.get("hex").is_none());

    let signed = rpc
        .pool("walletprocesspsbt", &format!(r#"["{unsigned_b64}"]"#))
        .await
        .unwrap();
    assert_eq!(signed.get("complete"), Some(&J::Bool(true)));
    let signed_b64 = s(&signed, "psbt");
    let analyzed = node(&rpc, "analyzepsbt", &format!(r#"["{signed_b64}"]"#))
        .await
        .unwrap();
    assert_eq!(s(&analyzed, "next"), "extractor");

    let fin = node(&rpc, "finalizepsbt", &format!(r#"["{signed_b64}"]"#))
        .await
        .unwrap();
    assert_eq!(fin.get("complete"), Some(&J::Bool(true)));
    let hex = s(&fin, "hex");
    let final_tx: Transaction = deserialize_hex(&hex).unwrap();
    assert_eq!(final_tx.compute_txid(), tx.compute_txid());
    assert!(
        fee >= 3 * final_tx.vsize() as i64,
        "real fee rate not below the request"
    );

    let accept = node(&rpc, "testmempoolaccept", &format!(r#"[["{hex}"]]"#))
        .await
        .unwrap();
    let a = &accept.as_arr().unwrap()[0];
    assert_eq!(
        a.get("allowed"),
        Some(&J::Bool(true)),
        "{}",
        accept.to_text()
    );
    assert_eq!(amount_sat(a.get("fees").unwrap().get("base").unwrap()), fee);

    // Tampered after signing: an output amount changed under a final witness.
    let mut tampered = psbt_of(&signed_b64);
    tampered.unsigned_tx.output[0].value = Amount::from_sat(49_000);
    let tb = b64(&tampered);
    let tfin = node(&rpc, "finalizepsbt", &format!(r#"["{tb}"]"#))
        .await
        .unwrap();
    let thex = s(&tfin, "hex");
    let taccept = node(&rpc, "testmempoolaccept", &format!(r#"[["{thex}"]]"#))
        .await
        .unwrap();
    let t = &taccept.as_arr().unwrap()[0];
    assert_eq!(t.get("allowed"), Some(&J::Bool(false)));
    assert!(s(t, "reject-reason").starts_with("mandatory-script-verify-flag-failed"));
    let e = node(&rpc, "sendrawtransaction", &format!(r#"["{thex}"]"#))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CallError::Rpc { status: 500, code: -26, message } if message.starts_with("mandatory-script-verify-flag-failed")),
        "{e}"
    );

    // Broadcast twice: the same txid both times.
    let txid = node(&rpc, "sendrawtransaction", &format!(r#"["{hex}"]"#))
        .await
        .unwrap();
    assert_eq!(txid.as_str().unwrap(), tx.compute_txid().to_string());
    let again = node(&rpc, "sendrawtransaction", &format!(r#"["{hex}"]"#))
        .await
        .unwrap();
    assert_eq!(again, txid);
    let dup = node(&rpc, "testmempoolaccept", &format!(r#"[["{hex}"]]"#))
        .await
        .unwrap();
    assert_eq!(
        s(&dup.as_arr().unwrap()[0], "reject-reason"),
        "txn-already-in-mempool"
    );
    assert_eq!(
        rpc.pool("listlockunspent", "[]").await.unwrap(),
        J::Arr(vec![]),
        "spent coins unlocked"
    );

    standin.mine(1);
    assert_eq!(standin.received_by(&a1), 50_000);
    assert_eq!(standin.received_by(&a2), 70_000);
    // The tampered transaction now spends a spent input.
    let e = node(&rpc, "sendrawtransaction", &format!(r#"["{thex}"]"#))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CallError::Rpc { code: -25, message, .. } if message == "bad-txns-inputs-missingorspent"),
        "{e}"
    );
    let t = node(&rpc, "testmempoolaccept", &format!(r#"[["{thex}"]]"#))
        .await
        .unwrap();
    assert_eq!(
        s(&t.as_arr().unwrap()[0], "reject-reason"),
        "missing-inputs"
    );
    // And the mined one is known to the chain.
    let e = node(&rpc, "sendrawtransaction", &format!(r#"["{hex}"]"#))
        .await
        .unwrap_err();
    assert!(matches!(&e, CallError::Rpc { code: -27, .. }), "{e}");
    standin.stop().await;
}

#[tokio::test]
async fn mempool_double_spend_needs_a_real_replacement() {
    let standin = StandIn::start(StandInOptions::default()).await.unwrap();
    let rpc = RpcClient::for_standin(&standin);
    let a1 = standin.new_external_address(AddrKind::P2wpkh);
    let fund = |rate: u32| format!(r#"[[],[{{"{a1}":0.001}}],0,{{"fee_rate":{rate}}}]"#);
    // Two PSBTs over the same (only) coin: no lockUnspents.
    let p1 = rpc.pool("walletcreatefundedpsbt", &fund(2)).await.unwrap();
    let p2 = rpc.pool("walletcreatefundedpsbt", &fund(2)).await.unwrap();
    let p3 = rpc.pool("walletcreatefundedpsbt", &fund(9)).await.unwrap();
    let mut hexes = Vec::new();
    for p in [&p1, &p2, &p3] {
        let signed = rpc
            .pool("walletprocesspsbt", &format!(r#"["{}"]"#, s(p, "psbt")))
            .await
            .unwrap();
        let fin = node(
            &rpc,
            "finalizepsbt",
            &format!(r#"["{}"]"#, s(&signed, "psbt")),
        )
        .await
        .unwrap();
        hexes.push(s(&fin, "hex"));
    }
    let t1 = node(&rpc, "sendrawtransaction", &format!(r#"["{}"]"#, hexes[0]))
        .await
        .unwrap();
    // Same fee rate, different change address: not a valid replacement.
    let e = node(&rpc, "sendrawtransaction", &format!(r#"["{}"]"#, hexes[1]))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CallError::Rpc { code: -26, message, .. } if message.starts_with("insufficient fee")),
        "{e}"
    );
    // A higher fee rate replaces it (BIP125), paying a1 once.
    let t3 = node(&rpc, "sendrawtransaction", &format!(r#"["{}"]"#, hexes[2]))
        .await
        .unwrap();
    assert_ne!(t1, t3);
    assert_eq!(standin.received_by(&a1), 100_000);
    let pool = node(&rpc, "getrawmempool", "[]").await.unwrap();
    assert_eq!(pool, J::Arr(vec![t3.clone()]));
    standin.stop().await;
}

#[tokio::test]
async fn malformed_and_foreign_psbts_are_refused_like_core() {
    let standin = StandIn::start(StandInOptions::default()).await.unwrap();
    let rpc = RpcClient::for_standin(&standin);
    let e = node(&rpc, "decodepsbt", r#"["cHNidP8BAHECAAAAAQ=="]"#)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CallError::Rpc { status: 500, code: -22, message } if message == "TX decode failed CDataStream::read(): end of data: iostream error"),
        "{e}"
    );
    let e = node(&rpc, "decodepsbt", r#"["not base64!"]"#)
        .await
        .unwrap_err();
    assert!(matches!(&e, CallError::Rpc { code: -22, .. }), "{e}");
    // A PSBT spending somebody else's coin: the pool wallet cannot sign it.
    let foreign = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn {
            previous_output: OutPoint::new("11".repeat(32).parse().unwrap(), 0),
            ..Default::default()
        }],
        output: vec![bitcoin::TxOut {
            value: Amount::from_sat(10_000),
            script_pubkey: bitcoin::ScriptBuf::new_op_return([1u8; 4]),
        }],
    };
    let p = b64(&Psbt::from_unsigned_tx(foreign.clone()).unwrap());
    let r = rpc
        .pool("walletprocesspsbt", &format!(r#"["{p}"]"#))
        .await
        .unwrap();
    assert_eq!(r.get("complete"), Some(&J::Bool(false)));
    let a = node(&rpc, "analyzepsbt", &format!(r#"["{p}"]"#))
        .await
        .unwrap();
    assert_eq!(s(&a, "next"), "updater");
    let e = node(
        &rpc,
        "sendrawtransaction",
        &format!(r#"["{}"]"#, serialize_hex(&foreign)),
    )
    .await
    .unwrap_err();
    assert!(matches!(&e, CallError::Rpc { code: -25, .. }), "{e}");
    standin.stop().await;
}

/// The pool wallet can also spend its own taproot (BIP86) coins: the node
/// checks the Schnorr signatures, through `sendmany` and through a PSBT.
#[tokio::test]
async fn own_taproot_coins_are_spent_with_valid_schnorr_signatures() {
    let standin = StandIn::start(StandInOptions::default()).await.unwrap();
    let rpc = RpcClient::for_standin(&standin);
    let ext = standin.new_external_address(AddrKind::P2wpkh);
    let mut tr = Vec::new();
    for _ in 0..2 {
        let a = rpc
            .pool("getnewaddress", r#"["","bech32m"]"#)
            .await
            .unwrap();
        tr.push(a.as_str().unwrap().to_string());
    }
    assert!(tr.iter().all(|a| a.starts_with("bcrt1p")));
    rpc.pool(
        "sendmany",
        &format!(
            r#"["",{{"{}":1,"{}":1}},0,"",[],true,null,"unset",2]"#,
            tr[0], tr[1]
        ),
    )
    .await
    .unwrap();
    standin.mine(1);
    // Lock everything but the taproot coins, so selection must use them.
    let coins = rpc.pool("listunspent", "[]").await.unwrap();
    let others: Vec<String> = coins
        .as_arr()
        .unwrap()
        .iter()
        .filter(|c| !tr.contains(&s(c, "address")))
        .map(|c| {
            format!(
                r#"{{"txid":"{}","vout":{}}}"#,
                s(c, "txid"),
                c.get("vout").unwrap().to_text()
            )
        })
        .collect();
    rpc.pool("lockunspent", &format!("[false,[{}]]", others.join(",")))
        .await
        .unwrap();
    let txid = rpc
        .pool(
            "sendmany",
            &format!(r#"["",{{"{ext}":0.5}},0,"",[],true,null,"unset",2]"#),
        )
        .await
        .unwrap();
    let t = rpc
        .pool(
            "gettransaction",
            &format!(r#"["{}"]"#, txid.as_str().unwrap()),
        )
        .await
        .unwrap();
    let tx: Transaction = deserialize_hex(&s(&t, "hex")).unwrap();
    assert_eq!(tx.input.len(), 1);
    assert_eq!(
        tx.input[0].witness.len(),
        1,
        "key-path spend: one Schnorr signature"
    );
    assert!(-amount_sat(t.get("fee").unwrap()) >= 2 * tx.vsize() as i64);
    // The other taproot coin through the cold path.
    let left: Vec<J> = rpc
        .pool("listunspent", "[0]")
        .await
        .unwrap()
        .as_arr()
        .unwrap()
        .to_vec();
    let coin = left
        .iter()
        .find(|c| s(c, "address") == tr[1])
        .expect("second taproot coin");
    let funded = rpc
        .pool(
            "walletcreatefundedpsbt",
            &format!(
                r#"[[{{"txid":"{}","vout":{}}}],[{{"{ext}":0.25}}],0,{{"fee_rate":2}}]"#,
                s(coin, "txid"),
                coin.get("vout").unwrap().to_text()
            ),
        )
        .await
        .unwrap();
    let p = psbt_of(&s(&funded, "psbt"));
    assert!(p.inputs[0].tap_internal_key.is_some() && p.inputs[0].non_witness_utxo.is_none());
    let signed = rpc
        .pool(
            "walletprocesspsbt",
            &format!(r#"["{}"]"#, s(&funded, "psbt")),
        )
        .await
        .unwrap();
    assert_eq!(signed.get("complete"), Some(&J::Bool(true)));
    let fin = node(
        &rpc,
        "finalizepsbt",
        &format!(r#"["{}"]"#, s(&signed, "psbt")),
    )
    .await
    .unwrap();
    node(
        &rpc,
        "sendrawtransaction",
        &format!(r#"["{}"]"#, s(&fin, "hex")),
    )
    .await
    .unwrap();
    assert_eq!(standin.received_by(&ext), 75_000_000);
    standin.stop().await;
}
