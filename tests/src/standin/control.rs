//! Test controls on the state: mining, external addresses, evictions,
//! replacements behind the daemon's back, draining. Used by the in-process
//! [`super::StandIn`] API and, as `standin_*` RPCs, by out-of-process users.

use std::str::FromStr;

use bitcoin::{Amount, ScriptBuf, TxOut, Txid, absolute::LockTime};

use super::chain_rpc::parse_address;
use super::json::J;
use super::node::MIN_RELAY_SAT_KVB;
use super::rpc::{Call, RpcError, RpcResult};
use super::state::{State, now};
use super::wallet::{FundRequest, KeyKind};
use super::wallet_send::bump_fee;

/// Mines `n` blocks to a fresh address of the external wallet, so mining
/// never changes the pool wallet's balance.
pub fn mine(st: &mut State, n: u32) -> Vec<String> {
    let script = external_script(st, KeyKind::Wpkh);
    st.mine(n, &script).iter().map(|h| h.to_string()).collect()
}

fn external_script(st: &mut State, kind: KeyKind) -> ScriptBuf {
    let a = st.external_script(kind);
    parse_address(&a).expect("own address").script_pubkey()
}

/// Evicts a transaction (and its descendants) from the mempool.
pub fn drop_from_mempool(st: &mut State, txid: &str) -> Result<Vec<Txid>, String> {
    let txid = Txid::from_str(txid).map_err(|e| e.to_string())?;
    if !st.node.mempool.contains_key(&txid) {
        return Err(format!("{txid} is not in the mempool"));
    }
    Ok(st.node.evict(&txid))
}

/// Runs `bumpfee` on the primary wallet as another client would.
pub fn replace_with_bump(
    st: &mut State,
    txid: &str,
    fee_rate_sat_vb: u64,
) -> Result<String, String> {
    let txid = Txid::from_str(txid).map_err(|e| e.to_string())?;
    let name = st.primary.clone();
    let r = bump_fee(st, &name, &txid, Some(fee_rate_sat_vb * 1000)).map_err(|e| e.message)?;
    Ok(r.get("txid")
        .and_then(J::as_str)
        .expect("bumpfee answers a txid")
        .to_string())
}

/// Sum of the primary wallet's unspent outputs, in any state.
pub fn wallet_utxo_total(st: &State) -> u64 {
    st.wallets[&st.primary]
        .unspent(&st.node)
        .iter()
        .map(|c| c.txout.value.to_sat())
        .sum()
}

/// Spends every spendable coin of the primary wallet to an external address
/// at 1 sat/vB. Returns the txid, or `None` when nothing was spendable.
pub fn drain_wallet(st: &mut State) -> Result<Option<Txid>, String> {
    let name = st.primary.clone();
    let coins = st.wallets[&name].spendable(&st.node);
    if coins.is_empty() {
        return Ok(None);
    }
    let total: u64 = coins.iter().map(|c| c.txout.value.to_sat()).sum();
    let to = external_script(st, KeyKind::Wpkh);
    let req = FundRequest {
        outputs: vec![TxOut {
            value: Amount::from_sat(total),
            script_pubkey: to,
        }],
        preset_inputs: coins.iter().map(|c| c.outpoint).collect(),
        add_inputs: false,
        fee_rate_sat_kvb: MIN_RELAY_SAT_KVB,
        subtract_fee_from: vec![0],
        replaceable: true,
        locktime: LockTime::ZERO,
        change_position: None,
        change_script: None,
        exclude_txids: vec![],
    };
    let w = st.wallets.get_mut(&name).expect("primary wallet");
    let funded = w.fund(&st.node, &req, now()).map_err(|e| e.0)?;
    let mut tx = funded.tx;
    w.sign(&mut tx, &funded.prevouts);
    st.submit(&tx, 0).map_err(|e| e.reason())?;
    Ok(Some(tx.compute_txid()))
}

/// The state-level `standin_*` RPCs. (`standin_fault`, `standin_unresponsive`
/// and `standin_restart` touch the server and are answered in `http.rs`.)
pub fn dispatch(st: &mut State, call: &Call) -> RpcResult {
    let p = &call.params;
    let err = |e: String| RpcError::new(-8, e);
    match call.method.as_str() {
        "standin_mine" => {
            let n = p.int(0)?.unwrap_or(1).clamp(0, 10_000) as u32;
            Ok(J::Arr(mine(st, n).into_iter().map(J::Str).collect()))
        }
        "standin_new_external_address" => {
            let kind = match p.str(0)?.unwrap_or("bech32") {
                "bech32" | "p2wpkh" => KeyKind::Wpkh,
                "bech32m" | "p2tr" => KeyKind::Tr,
                other => return Err(err(format!("unknown address kind {other}"))),
            };
            Ok(J::Str(st.external_script(kind)))
        }
        "standin_received_by" => {
            let a = p.req_str(0, "standin_received_by")?;
            let addr = parse_address(a).ok_or_else(|| RpcError::new(-5, "Invalid address"))?;
            Ok(J::int(st.received_by(&addr.script_pubkey())))
        }
        "standin_set_fee_estimate" => {
            st.fee_estimate_sat_kvb = p.int(0)?.map(|v| v.max(0) as u64 * 1000);
            Ok(J::Null)
        }
        "standin_drop_from_mempool" => {
            let gone =
                drop_from_mempool(st, p.req_str(0, "standin_drop_from_mempool")?).map_err(err)?;
            Ok(J::Arr(gone.iter().map(|t| J::str(t.to_string())).collect()))
        }
        "standin_replace_with_bump" => {
            let txid = p.req_str(0, "standin_replace_with_bump")?.to_string();
            let rate = p.int(1)?.unwrap_or(10).max(1) as u64;
            Ok(J::Str(replace_with_bump(st, &txid, rate).map_err(err)?))
        }
        "standin_drain_wallet" => Ok(match drain_wallet(st).map_err(err)? {
            Some(t) => J::str(t.to_string()),
            None => J::Null,
        }),
        "standin_wallet_utxo_total" => Ok(J::int(wallet_utxo_total(st))),
        _ => Err(RpcError::new(-32601, "Method not found")),
    }
}
