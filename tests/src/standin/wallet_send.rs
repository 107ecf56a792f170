//! Wallet RPCs that spend: `sendmany`, `sendtoaddress`, `bumpfee`, and
//! the fee-rate rules they share (Core's `SetFeeEstimateMode`,
//! `ParseRecipients`, `SendMoney`). Kept apart from the read-only wallet
//! RPCs because this is the code that moves money.

use std::collections::HashSet;

use bitcoin::{Amount, ScriptBuf, Transaction, TxOut, Txid, absolute::LockTime};

use super::amount::{btc, fee_rate_sat_vb, send_amount};
use super::chain_rpc::parse_address;
use super::json::J;
use super::node::{MIN_RELAY_SAT_KVB, Reject, signals_rbf};
use super::rpc::{Call, RpcError, RpcResult};
use super::state::{State, now};
use super::wallet::{FundRequest, estimate_vsize};

/// Core's `SetFeeEstimateMode`: returns the explicit fee rate (sat/kvB)
/// if one was given.
pub fn fee_mode(
    conf_target: Option<&J>,
    estimate_mode: Option<&J>,
    fee_rate: Option<&J>,
) -> Result<Option<u64>, RpcError> {
    if let Some(fr) = fee_rate {
        if conf_target.is_some() {
            return Err(RpcError::new(
                -8,
                "Cannot specify both conf_target and fee_rate. Please provide either a confirmation target in blocks for automatic fee estimation, or an explicit fee rate.",
            ));
        }
        if let Some(m) = estimate_mode
            && m.as_str() != Some("unset")
        {
            return Err(RpcError::new(
                -8,
                "Cannot specify both estimate_mode and fee_rate",
            ));
        }
        return Ok(Some(fee_rate_sat_vb(fr)?));
    }
    if let Some(m) = estimate_mode {
        let s = m.as_str().unwrap_or("").to_ascii_lowercase();
        if !matches!(s.as_str(), "unset" | "economical" | "conservative") {
            return Err(RpcError::new(
                -8,
                "Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\"",
            ));
        }
    }
    if let Some(t) = conf_target {
        let t = t.as_i64().unwrap_or(0);
        if !(1..=1008).contains(&t) {
            return Err(RpcError::new(
                -8,
                format!("Invalid conf_target, must be between 1 and 1008 - {t}"),
            ));
        }
    }
    Ok(None)
}

/// The fee rate to build with: explicit, else the test's estimate, else
/// Core's regtest failure (fallbackfee is 0 by default). Errors are the
/// `CreateTransaction` message.
pub fn resolve_fee_rate(st: &State, explicit: Option<u64>) -> Result<u64, String> {
    let rate = match explicit.or(st.fee_estimate_sat_kvb) {
        Some(r) => r,
        None => {
            return Err("Fee estimation failed. Fallbackfee is disabled. Wait a few blocks or enable -fallbackfee.".into());
        }
    };
    if rate < MIN_RELAY_SAT_KVB {
        return Err(format!(
            "Fee rate ({}.{:03} sat/vB) is lower than the minimum fee rate setting (1.000 sat/vB)",
            rate / 1000,
            rate % 1000
        ));
    }
    Ok(rate)
}

/// Core's `ParseRecipients`.
fn parse_recipients(
    amounts: &[(String, J)],
    subtract: &[String],
) -> Result<(Vec<TxOut>, Vec<usize>), RpcError> {
    let mut seen = HashSet::new();
    let mut outs = Vec::new();
    let mut sffo = Vec::new();
    for (addr, v) in amounts {
        let a = parse_address(addr)
            .ok_or_else(|| RpcError::new(-5, format!("Invalid Bitcoin address: {addr}")))?;
        let spk = a.script_pubkey();
        if !seen.insert(spk.clone()) {
            return Err(RpcError::new(
                -8,
                format!("Invalid parameter, duplicated address: {addr}"),
            ));
        }
        let sat = send_amount(v)?;
        if subtract.iter().any(|s| s == addr) {
            sffo.push(outs.len());
        }
        outs.push(TxOut {
            value: Amount::from_sat(sat),
            script_pubkey: spk,
        });
    }
    Ok((outs, sffo))
}

/// Metadata Core keeps with a sent transaction.
#[derive(Default)]
struct SendMeta {
    comment: Option<String>,
    comment_to: Option<String>,
}

/// Funds, signs and broadcasts; errors are -6 as in Core's `SendMoney`.
fn send(
    st: &mut State,
    name: &str,
    outputs: Vec<TxOut>,
    sffo: Vec<usize>,
    replaceable: bool,
    explicit_rate: Option<u64>,
    meta: SendMeta,
) -> Result<Txid, RpcError> {
    if !st.wallets[name].private_keys_enabled {
        return Err(RpcError::new(
            -4,
            "Error: Private keys are disabled for this wallet",
        ));
    }
    let rate = resolve_fee_rate(st, explicit_rate).map_err(|e| RpcError::new(-6, e))?;
    // Anti-fee-sniping: lock time at the tip, as Core's wallet does.
    let locktime = LockTime::from_height(st.node.height()).unwrap_or(LockTime::ZERO);
    let req = FundRequest {
        outputs,
        preset_inputs: vec![],
        add_inputs: true,
        fee_rate_sat_kvb: rate,
        subtract_fee_from: sffo,
        replaceable,
        locktime,
        change_position: None,
        change_script: None,
        exclude_txids: vec![],
    };
    let t = now();
    let w = st.wallets.get_mut(name).expect("loaded");
    let funded = w
        .fund(&st.node, &req, t)
        .map_err(|e| RpcError::new(-6, e.0))?;
    let mut tx = funded.tx;
    w.sign(&mut tx, &funded.prevouts);
    commit(st, name, &tx, |wtx| {
        wtx.comment = meta.comment;
        wtx.comment_to = meta.comment_to;
    })
}

/// Broadcasts a wallet-built transaction and stores its metadata.
fn commit(
    st: &mut State,
    name: &str,
    tx: &Transaction,
    meta: impl FnOnce(&mut super::wallet::WalletTx),
) -> Result<Txid, RpcError> {
    let txid = tx.compute_txid();
    match st.submit(tx, 0) {
        Ok(_) | Err(Reject::AlreadyInMempool) => {}
        Err(e) => {
            return Err(RpcError::new(
                -4,
                format!("Transaction rejected by the mempool: {}", e.reason()),
            ));
        }
    }
    let w = st.wallets.get_mut(name).expect("loaded");
    if let Some(wtx) = w.txs.get_mut(&txid) {
        meta(wtx);
    }
    Ok(txid)
}

pub fn send_many(st: &mut State, name: &str, call: &Call) -> RpcResult {
    let p = &call.params;
    if let Some(d) = p.get(0)
        && d.as_str() != Some("")
    {
        return Err(RpcError::new(-8, "Dummy value must be set to \"\""));
    }
    let amounts = p
        .obj(1)?
        .ok_or_else(|| RpcError::new(-1, "sendmany \"\" {\"address\":amount,...}"))?
        .to_vec();
    let comment = p.str(3)?.filter(|c| !c.is_empty()).map(str::to_string);
    let subtract: Vec<String> = p
        .arr(4)?
        .unwrap_or(&[])
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let replaceable = p.bool(5)?;
    let explicit = fee_mode(p.get(6), p.get(7), p.get(8))?;
    let (outputs, sffo) = parse_recipients(&amounts, &subtract)?;
    if outputs.is_empty() {
        return Err(RpcError::new(
            -6,
            "Transaction must have at least one recipient",
        ));
    }
    // An explicit fee rate defaults to replaceable, as Core; otherwise the
    // v24+ wallet default (-walletrbf=1).
    let replaceable = replaceable.unwrap_or(true);
    let txid = send(
        st,
        name,
        outputs,
        sffo,
        replaceable,
        explicit,
        SendMeta {
            comment,
            comment_to: None,
        },
    )?;
    if p.bool(9)?.unwrap_or(false) {
        return Ok(verbose_send(&txid, explicit.is_some()));
    }
    Ok(J::str(txid.to_string()))
}

fn verbose_send(txid: &Txid, explicit: bool) -> J {
    J::obj()
        .put("txid", txid.to_string())
        .put(
            "fee_reason",
            if explicit {
                "PayTxFee set"
            } else {
                "Conservative Double Target"
            },
        )
        .build()
}

pub fn send_to_address(st: &mut State, name: &str, call: &Call) -> RpcResult {
    let p = &call.params;
    let addr = p.req_str(0, "sendtoaddress")?.to_string();
    let amount = p.required(1, "sendtoaddress")?.clone();
    let comment = p.str(2)?.filter(|c| !c.is_empty()).map(str::to_string);
    let comment_to = p.str(3)?.filter(|c| !c.is_empty()).map(str::to_string);
    let sffo = p.bool(4)?.unwrap_or(false);
    let replaceable = p.bool(5)?;
    let explicit = fee_mode(p.get(6), p.get(7), p.get(9))?;
    let subtract = if sffo { vec![addr.clone()] } else { vec![] };
    let (outputs, sffo) = parse_recipients(&[(addr, amount)], &subtract)?;
    let txid = send(
        st,
        name,
        outputs,
        sffo,
        replaceable.unwrap_or(true),
        explicit,
        SendMeta {
            comment,
            comment_to,
        },
    )?;
    if p.bool(10)?.unwrap_or(false) {
        return Ok(verbose_send(&txid, explicit.is_some()));
    }
    Ok(J::str(txid.to_string()))
}

/// `bumpfee`: a real replacement with the same inputs and recipients, the
/// change reduced (or more inputs added), the same comment.
pub fn bump_fee(st: &mut State, name: &str, txid: &Txid, rate: Option<u64>) -> RpcResult {
    let node = &st.node;
    let w = &st.wallets[name];
    let wtx = w
        .txs
        .get(txid)
        .ok_or_else(|| RpcError::new(-5, "Invalid or non-wallet transaction id"))?;
    if !w.private_keys_enabled {
        return Err(RpcError::new(
            -4,
            "bumpfee is not available with wallets that have private keys disabled. Use psbtbumpfee instead.",
        ));
    }
    if let Some(by) = wtx.replaced_by {
        return Err(RpcError::new(
            -8,
            format!("Cannot bump transaction {txid} which was already bumped by transaction {by}"),
        ));
    }
    if w.depth(txid, node) != 0 || !node.mempool.contains_key(txid) {
        return Err(RpcError::new(
            -8,
            "Transaction has been mined, or is conflicted with a mined transaction",
        ));
    }
    if node.with_descendants(&[*txid]).len() > 1 {
        return Err(RpcError::new(
            -8,
            "Transaction has descendants in the wallet",
        ));
    }
    if !signals_rbf(&wtx.tx) {
        return Err(RpcError::new(-8, "Transaction is not BIP 125 replaceable"));
    }
    let old = wtx.tx.clone();
    let old_fee = node.mempool[txid].fee;
    let old_vsize = node.mempool[txid].vsize;
    let prevouts: Vec<TxOut> = old
        .input
        .iter()
        .filter_map(|i| node.prevout(&i.previous_output))
        .collect();
    if prevouts.len() != old.input.len() || !prevouts.iter().all(|o| w.is_mine(&o.script_pubkey)) {
        return Err(RpcError::new(
            -4,
            "Transaction contains inputs that don't belong to this wallet",
        ));
    }
    let recipients: Vec<TxOut> = old
        .output
        .iter()
        .filter(|o| !w.is_change(&o.script_pubkey))
        .cloned()
        .collect();
    // Default: old rate plus the incremental relay fee, as Core's minimum.
    let min_rate = (old_fee * 1000).div_ceil(old_vsize) + MIN_RELAY_SAT_KVB;
    let rate = match rate {
        Some(r) => r,
        None => st.fee_estimate_sat_kvb.unwrap_or(0).max(min_rate),
    };
    let ins: Vec<&ScriptBuf> = prevouts.iter().map(|o| &o.script_pubkey).collect();
    let mut est_outs = recipients.clone();
    est_outs.push(
        old.output
            .iter()
            .find(|o| w.is_change(&o.script_pubkey))
            .cloned()
            .unwrap_or_else(|| recipients[0].clone()),
    );
    let est_vsize = estimate_vsize(&ins, &est_outs);
    let required = old_fee + super::amount::fee_for(MIN_RELAY_SAT_KVB, est_vsize);
    let new_fee_est = super::amount::fee_for(rate, est_vsize);
    if new_fee_est < required {
        return Err(RpcError::new(
            -8,
            format!(
                "Insufficient total fee {}, must be at least {} (oldFee {} + incrementalFee {})",
                super::amount::btc_text(new_fee_est as i64),
                super::amount::btc_text(required as i64),
                super::amount::btc_text(old_fee as i64),
                super::amount::btc_text(super::amount::fee_for(MIN_RELAY_SAT_KVB, est_vsize) as i64)
            ),
        ));
    }
    let change_script = old
        .output
        .iter()
        .find(|o| w.is_change(&o.script_pubkey))
        .map(|o| o.script_pubkey.clone());
    let node_descendants = node.with_descendants(&[*txid]);
    let req = FundRequest {
        outputs: recipients,
        preset_inputs: old.input.iter().map(|i| i.previous_output).collect(),
        add_inputs: true,
        fee_rate_sat_kvb: rate,
        subtract_fee_from: vec![],
        replaceable: true,
        locktime: old.lock_time,
        change_position: None,
        change_script,
        exclude_txids: node_descendants,
    };
    let comment = wtx.comment.clone();
    let comment_to = wtx.comment_to.clone();
    // The old transaction's inputs are spent in the mempool; fund() may
    // reuse them as presets because they are ours.
    let t = now();
    let w = st.wallets.get_mut(name).expect("loaded");
    let funded = w
        .fund(&st.node, &req, t)
        .map_err(|e| RpcError::new(-4, format!("Unable to create transaction. {}", e.0)))?;
    let mut tx = funded.tx;
    w.sign(&mut tx, &funded.prevouts);
    let new_txid = commit(st, name, &tx, |n| {
        n.comment = comment;
        n.comment_to = comment_to;
        n.replaces = Some(*txid);
    })?;
    if let Some(o) = st.wallets.get_mut(name).expect("loaded").txs.get_mut(txid) {
        o.replaced_by = Some(new_txid);
    }
    Ok(J::obj()
        .put("txid", new_txid.to_string())
        .put("origfee", btc(old_fee as i64))
        .put("fee", btc(funded.fee as i64))
        .put("errors", J::Arr(vec![]))
        .build())
}
