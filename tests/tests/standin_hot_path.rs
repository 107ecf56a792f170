//! Hot wallet path through the stand-in: `sendmany` with a batch comment and
//! an explicit fee rate, `gettransaction`, confirmation, `bumpfee`, and the
//! test controls that change things behind the daemon's back.

use bitcoin::consensus::encode::deserialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1};
use bitcoin::sighash::SighashCache;
use bitcoin::{PublicKey, Transaction, ecdsa};
use pooldesk_e2e::standin::client::{CallError, RpcClient, amount_sat, is_btc_literal};
use pooldesk_e2e::standin::json::J;
use pooldesk_e2e::standin::{AddrKind, StandIn, StandInOptions};

struct Fixture {
    standin: StandIn,
    rpc: RpcClient,
    a1: String,
    a2: String,
}

async fn fixture() -> Fixture {
    let standin = StandIn::start(StandInOptions::default()).await.unwrap();
    let rpc = RpcClient::for_standin(&standin);
    let a1 = standin.new_external_address(AddrKind::P2wpkh);
    let a2 = standin.new_external_address(AddrKind::P2tr);
    Fixture {
        standin,
        rpc,
        a1,
        a2,
    }
}

impl Fixture {
    /// The recorded pooldesk call: comment, replaceable, fee_rate in sat/vB.
    async fn pay_batch(&self, comment: &str, fee_rate: &str) -> Result<String, CallError> {
        let params = format!(
            r#"["",{{"{}":0.001,"{}":0.002}},0,"{comment}",[],true,null,"unset",{fee_rate}]"#,
            self.a1, self.a2
        );
        let r = self.rpc.pool("sendmany", &params).await?;
        Ok(r.as_str().unwrap().to_string())
    }

    async fn gettx(&self, txid: &str) -> J {
        self.rpc
            .pool("gettransaction", &format!(r#"["{txid}"]"#))
            .await
            .unwrap()
    }
}

fn s(v: &J, k: &str) -> String {
    v.get(k)
        .and_then(J::as_str)
        .unwrap_or_else(|| panic!("{k} missing in {}", v.to_text()))
        .to_string()
}

fn int(v: &J, k: &str) -> i64 {
    v.get(k)
        .and_then(J::as_i64)
        .unwrap_or_else(|| panic!("{k} missing in {}", v.to_text()))
}

/// Verifies every input's ECDSA signature against its BIP143 sighash, with
/// prevouts fetched from the node like any verifier would.
async fn assert_signatures_valid(rpc: &RpcClient, tx: &Transaction) {
    let secp = Secp256k1::verification_only();
    let mut cache = SighashCache::new(tx);
    for (i, input) in tx.input.iter().enumerate() {
        let prev_hex = rpc
            .call(
                None,
                "getrawtransaction",
                &format!(r#"["{}"]"#, input.previous_output.txid),
            )
            .await
            .unwrap();
        let prev: Transaction = deserialize_hex(prev_hex.as_str().unwrap()).unwrap();
        let prevout = &prev.output[input.previous_output.vout as usize];
        assert!(
            prevout.script_pubkey.is_p2wpkh(),
            "pool wallet spends P2WPKH"
        );
        let w: Vec<&[u8]> = input.witness.iter().collect();
        assert_eq!(w.len(), 2, "P2WPKH witness is [sig, pubkey]");
        let sig = ecdsa::Signature::from_slice(w[0]).unwrap();
        let pk = PublicKey::from_slice(w[1]).unwrap();
        assert_eq!(
            pk.wpubkey_hash().unwrap().as_byte_array()[..],
            prevout.script_pubkey.as_bytes()[2..],
            "pubkey matches the spent program"
        );
        let h = cache
            .p2wpkh_signature_hash(i, &prevout.script_pubkey, prevout.value, sig.sighash_type)
            .unwrap();
        secp.verify_ecdsa(
            &Message::from_digest(h.to_byte_array()),
            &sig.signature,
            &pk.inner,
        )
        .expect("valid signature");
    }
}

#[tokio::test]
async fn sendmany_batch_carries_comment_exact_fee_and_valid_signatures() {
    let f = fixture().await;
    let txid = f.pay_batch("pooldesk batch 7", "2").await.unwrap();

    // The raw body shows amounts as Core writes them.
    let raw = f
        .rpc
        .call_raw(Some("pool"), "gettransaction", &format!(r#"["{txid}"]"#))
        .await
        .unwrap();
    assert_eq!(raw.status, 200);
    assert!(raw.body.contains(r#""amount":-0.00300000"#), "{}", raw.body);
    let t = raw.result().unwrap();
    assert_eq!(s(&t, "comment"), "pooldesk batch 7");
    assert_eq!(int(&t, "confirmations"), 0);
    assert_eq!(t.get("trusted"), Some(&J::Bool(true)));
    assert_eq!(s(&t, "bip125-replaceable"), "yes");
    assert_eq!(amount_sat(t.get("amount").unwrap()), -300_000);
    assert!(is_btc_literal(t.get("fee").unwrap()));
    let fee = -amount_sat(t.get("fee").unwrap());

    let details = t.get("details").and_then(J::as_arr).unwrap();
    assert_eq!(
        details.len(),
        2,
        "one send entry per recipient, change hidden"
    );
    let mut paid: Vec<(String, i64)> = details
        .iter()
        .map(|d| {
            assert_eq!(s(d, "category"), "send");
            assert_eq!(amount_sat(d.get("fee").unwrap()), -fee);
            (s(d, "address"), amount_sat(d.get("amount").unwrap()))
        })
        .collect();
    paid.sort();
    let mut want = vec![(f.a1.clone(), -100_000), (f.a2.clone(), -200_000)];
    want.sort();
    assert_eq!(paid, want);

    // fee = ceil(2 sat/vB × vsize) of the real signed transaction (the
    // estimate assumes 72-byte signatures, so it may be 1 vB above).
    let tx: Transaction = deserialize_hex(&s(&t, "hex")).unwrap();
    assert_eq!(tx.compute_txid().to_string(), txid);
    let vsize = tx.vsize() as i64;
    assert!(
        fee >= 2 * vsize && fee <= 2 * (vsize + 1),
        "fee {fee} for vsize {vsize}"
    );
    assert_signatures_valid(&f.rpc, &tx).await;

    // The mempool agrees on the fee.
    let entry = f
        .rpc
        .call(None, "getmempoolentry", &format!(r#"["{txid}"]"#))
        .await
        .unwrap();
    assert_eq!(
        amount_sat(entry.get("fees").unwrap().get("base").unwrap()),
        fee
    );
    assert_eq!(int(&entry, "vsize"), vsize);

    assert_eq!(f.standin.received_by(&f.a1), 100_000);
    assert_eq!(f.standin.received_by(&f.a2), 200_000);

    f.standin.mine(1);
    let t = f.gettx(&txid).await;
    assert_eq!(int(&t, "confirmations"), 1);
    assert!(t.get("blockhash").is_some() && t.get("trusted").is_none());
    assert_eq!(f.standin.received_by(&f.a1), 100_000, "paid exactly once");

    // 50 BTC spendable before; now the change (50 − 0.003 − fee) plus the
    // coinbase of block 2, which the new block made mature.
    let b = f.rpc.pool("getbalances", "[]").await.unwrap();
    let mine = b.get("mine").unwrap();
    assert_eq!(
        amount_sat(mine.get("trusted").unwrap()),
        2 * 50 * 100_000_000 - 300_000 - fee
    );
    // listtransactions carries the comment on each send entry.
    let list = f
        .rpc
        .pool("listtransactions", r#"["*",2,0]"#)
        .await
        .unwrap();
    for e in list.as_arr().unwrap() {
        assert_eq!(s(e, "comment"), "pooldesk batch 7");
        assert_eq!(s(e, "txid"), txid);
        assert_eq!(int(e, "confirmations"), 1);
    }
    f.standin.stop().await;
}

#[tokio::test]
async fn bumpfee_replaces_with_the_same_comment_and_conflicts_after_mining() {
    let f = fixture().await;
    let old = f.pay_batch("pooldesk batch 8", "2").await.unwrap();
    let r = f
        .rpc
        .pool("bumpfee", &format!(r#"["{old}",{{"fee_rate":20}}]"#))
        .await
        .unwrap();
    let new = s(&r, "txid");
    assert_ne!(new, old);
    assert_eq!(r.get("errors"), Some(&J::Arr(vec![])));
    let origfee = amount_sat(r.get("origfee").unwrap());
    let newfee = amount_sat(r.get("fee").unwrap());
    assert!(newfee > origfee);

    let o = f.gettx(&old).await;
    assert_eq!(s(&o, "replaced_by_txid"), new);
    assert_eq!(
        o.get("walletconflicts"),
        Some(&J::Arr(vec![J::str(new.clone())]))
    );
    assert_eq!(o.get("trusted"), Some(&J::Bool(false)));
    let n = f.gettx(&new).await;
    assert_eq!(s(&n, "replaces_txid"), old);
    assert_eq!(s(&n, "comment"), "pooldesk batch 8");
    assert_eq!(
        n.get("walletconflicts"),
        Some(&J::Arr(vec![J::str(old.clone())]))
    );
    let tx: Transaction = deserialize_hex(&s(&n, "hex")).unwrap();
    assert!(newfee >= 20 * tx.vsize() as i64);
    assert_signatures_valid(&f.rpc, &tx).await;
    // Same recipients, still paid once.
    assert_eq!(f.standin.received_by(&f.a1), 100_000);
    assert_eq!(f.standin.received_by(&f.a2), 200_000);
    let gone = f
        .rpc
        .call(None, "getmempoolentry", &format!(r#"["{old}"]"#))
        .await
        .unwrap_err();
    assert!(matches!(gone, CallError::Rpc { code: -5, .. }), "{gone}");
    // Bumping the replaced one again is refused as Core does.
    let again = f
        .rpc
        .pool("bumpfee", &format!(r#"["{old}",{{"fee_rate":30}}]"#))
        .await
        .unwrap_err();
    assert!(matches!(again, CallError::Rpc { code: -8, .. }), "{again}");

    f.standin.mine(1);
    assert_eq!(int(&f.gettx(&new).await, "confirmations"), 1);
    let o = f.gettx(&old).await;
    assert_eq!(int(&o, "confirmations"), -1);
    assert_eq!(s(&o, "comment"), "pooldesk batch 8");
    f.standin.mine(2);
    assert_eq!(int(&f.gettx(&old).await, "confirmations"), -3);
    f.standin.stop().await;
}

#[tokio::test]
async fn replace_with_bump_behind_our_back_is_visible_in_the_wallet() {
    let f = fixture().await;
    let old = f.pay_batch("pooldesk batch 9", "2").await.unwrap();
    let new = f.standin.replace_with_bump(&old, 10);
    let o = f.gettx(&old).await;
    assert_eq!(s(&o, "replaced_by_txid"), new);
    let n = f.gettx(&new).await;
    assert_eq!(s(&n, "comment"), "pooldesk batch 9");
    assert_eq!(f.standin.received_by(&f.a1), 100_000);
    f.standin.stop().await;
}

#[tokio::test]
async fn evicted_payout_shows_unconfirmed_and_frees_its_inputs() {
    let f = fixture().await;
    let txid = f.pay_batch("pooldesk batch 10", "2").await.unwrap();
    f.standin.drop_from_mempool(&txid);
    let t = f.gettx(&txid).await;
    assert_eq!(int(&t, "confirmations"), 0);
    assert_eq!(t.get("trusted"), Some(&J::Bool(false)));
    assert_eq!(s(&t, "comment"), "pooldesk batch 10");
    let e = f
        .rpc
        .call(None, "getmempoolentry", &format!(r#"["{txid}"]"#))
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::Rpc { code: -5, .. }));
    assert_eq!(f.standin.received_by(&f.a1), 0, "evicted: nothing paid");
    // The 50 BTC coin is spendable again.
    let b = f.rpc.pool("getbalance", "[]").await.unwrap();
    assert_eq!(amount_sat(&b), 50 * 100_000_000);
    // Not in the mempool and not mined: it may be abandoned, as in Core.
    let r = f
        .rpc
        .pool("abandontransaction", &format!(r#"["{txid}"]"#))
        .await
        .unwrap();
    assert_eq!(r, J::Null);
    let t = f.gettx(&txid).await;
    let details = t.get("details").and_then(J::as_arr).unwrap();
    assert!(
        details
            .iter()
            .all(|d| d.get("abandoned") == Some(&J::Bool(true)))
    );
    let again = f.pay_batch("pooldesk batch 10 retry", "2").await.unwrap();
    f.standin.mine(1);
    assert_eq!(int(&f.gettx(&again).await, "confirmations"), 1);
    assert_eq!(int(&f.gettx(&txid).await, "confirmations"), -1);
    assert_eq!(f.standin.received_by(&f.a1), 100_000);
    f.standin.stop().await;
}

#[tokio::test]
async fn drained_wallet_answers_insufficient_funds() {
    let f = fixture().await;
    f.standin.drain_wallet();
    let e = f.pay_batch("pooldesk batch 11", "2").await.unwrap_err();
    match e {
        CallError::Rpc {
            status,
            code,
            message,
        } => {
            assert_eq!(
                (status, code, message.as_str()),
                (500, -6, "Insufficient funds")
            );
        }
        other => panic!("{other}"),
    }
    let b = f.rpc.pool("getbalances", "[]").await.unwrap();
    assert_eq!(
        amount_sat(b.get("mine").unwrap().get("trusted").unwrap()),
        0
    );
    // Only the immature coinbases are left.
    assert_eq!(f.standin.wallet_utxo_total(), 100 * 50 * 100_000_000);
    f.standin.stop().await;
}

#[tokio::test]
async fn fee_rate_is_required_on_a_fresh_regtest_node_unless_estimated() {
    let f = fixture().await;
    let params = format!(r#"["",{{"{}":0.001}},0,"x"]"#, f.a1);
    let e = f.rpc.pool("sendmany", &params).await.unwrap_err();
    assert!(
        matches!(&e, CallError::Rpc { code: -6, message, .. } if message.starts_with("Fee estimation failed")),
        "{e}"
    );
    let est = f.rpc.call(None, "estimatesmartfee", "[2]").await.unwrap();
    assert!(est.get("errors").is_some() && est.get("feerate").is_none());
    f.standin.set_fee_estimate(Some(5));
    let est = f.rpc.call(None, "estimatesmartfee", "[2]").await.unwrap();
    assert_eq!(amount_sat(est.get("feerate").unwrap()), 5000, "BTC/kvB");
    let txid = f.rpc.pool("sendmany", &params).await.unwrap();
    let t = f.gettx(txid.as_str().unwrap()).await;
    let tx: Transaction = deserialize_hex(&s(&t, "hex")).unwrap();
    assert!(-amount_sat(t.get("fee").unwrap()) >= 5 * tx.vsize() as i64);
    f.standin.stop().await;
}

#[tokio::test]
async fn sendtoaddress_keeps_comment_and_to_and_listsinceblock_sees_it() {
    let f = fixture().await;
    let tip = f.rpc.call(None, "getbestblockhash", "[]").await.unwrap();
    let txid = f
        .rpc
        .pool(
            "sendtoaddress",
            &format!(
                r#"["{}",0.01,"pooldesk withdrawal 3","miner-42",false,true,null,"unset",false,3]"#,
                f.a1
            ),
        )
        .await
        .unwrap();
    let txid = txid.as_str().unwrap().to_string();
    let t = f.gettx(&txid).await;
    assert_eq!(s(&t, "comment"), "pooldesk withdrawal 3");
    assert_eq!(s(&t, "to"), "miner-42");
    assert_eq!(amount_sat(t.get("amount").unwrap()), -1_000_000);
    f.standin.mine(1);
    let since = f
        .rpc
        .pool(
            "listsinceblock",
            &format!(r#"["{}"]"#, tip.as_str().unwrap()),
        )
        .await
        .unwrap();
    let txs = since.get("transactions").and_then(J::as_arr).unwrap();
    assert!(
        txs.iter()
            .any(|e| e.get("txid").and_then(J::as_str) == Some(txid.as_str())
                && s(e, "category") == "send")
    );
    let best = f.rpc.call(None, "getbestblockhash", "[]").await.unwrap();
    assert_eq!(since.get("lastblock"), Some(&best));
    f.standin.stop().await;
}
