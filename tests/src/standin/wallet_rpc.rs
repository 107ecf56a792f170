//! Wallet RPCs (`/wallet/<name>`): balances, addresses, sends, history,
//! bumpfee. Shapes and key order follow Core v23's answers in exchanges.json.

use std::collections::HashSet;

use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxOut, Txid, absolute::LockTime};

use super::amount::{amount_from_value, btc, fee_rate_sat_vb, send_amount};
use super::chain_rpc::{parse_address, parse_txid};
use super::describe::tx_hex;
use super::json::{J, ObjBuilder};
use super::node::{MIN_RELAY_SAT_KVB, Node, Reject, signals_rbf};
use super::psbt;
use super::rpc::{Call, RpcError, RpcResult};
use super::state::{State, now};
use super::wallet::{FundRequest, KeyKind, TxState, Wallet, estimate_vsize, path_text};

pub fn dispatch(st: &mut State, name: &str, call: &Call) -> RpcResult {
    let p = &call.params;
    let m = call.method.as_str();
    match m {
        "getwalletinfo" => {
            let w = &st.wallets[name];
            let (trusted, pending, immature) = w.balances(&st.node);
            Ok(J::obj()
                .put("walletname", name)
                .put("walletversion", J::int(169900))
                .put("format", "sqlite")
                .put("balance", btc(trusted as i64))
                .put("unconfirmed_balance", btc(pending as i64))
                .put("immature_balance", btc(immature as i64))
                .put("txcount", J::int(w.txs.len() as u64))
                .put("keypoolsize", J::int(4000))
                .put("keypoolsize_hd_internal", J::int(4000))
                .put("paytxfee", btc(0))
                .put("private_keys_enabled", w.private_keys_enabled)
                .put("avoid_reuse", false)
                .put("scanning", false)
                .put("descriptors", true)
                .put("external_signer", false)
                .build())
        }
        "getbalances" => {
            let (trusted, pending, immature) = st.wallets[name].balances(&st.node);
            Ok(J::obj()
                .put(
                    "mine",
                    J::obj()
                        .put("trusted", btc(trusted as i64))
                        .put("untrusted_pending", btc(pending as i64))
                        .put("immature", btc(immature as i64)),
                )
                .build())
        }
        "getbalance" => {
            if let Some(d) = p.get(0)
                && d.as_str() != Some("*")
            {
                return Err(RpcError::new(
                    -32,
                    "dummy first argument must be excluded or set to \"*\".",
                ));
            }
            let minconf = p.int(1)?.unwrap_or(0);
            let w = &st.wallets[name];
            let total: u64 = w
                .unspent(&st.node)
                .iter()
                .filter(|c| c.safe && c.depth >= minconf)
                .filter(|c| w.blocks_to_maturity(&c.outpoint.txid, &st.node) == 0)
                .map(|c| c.txout.value.to_sat())
                .sum();
            Ok(btc(total as i64))
        }
        "getnewaddress" => {
            let label = p.str(0)?.unwrap_or("").to_string();
            if label == "*" {
                return Err(RpcError::new(-11, "Invalid label name"));
            }
            let kind = address_kind(p.str(1)?.unwrap_or("bech32"))?;
            let a = st
                .wallets
                .get_mut(name)
                .expect("loaded")
                .new_address(kind, &label, now());
            Ok(J::str(a.to_string()))
        }
        "getrawchangeaddress" => {
            let kind = address_kind(p.str(0)?.unwrap_or("bech32"))?;
            let w = st.wallets.get_mut(name).expect("loaded");
            let s = w.new_key(kind, true, now());
            Ok(J::str(
                super::describe::address(&s).expect("standard").to_string(),
            ))
        }
        "getaddressinfo" => {
            let a = parse_address(p.req_str(0, m)?)
                .ok_or_else(|| RpcError::new(-5, "Invalid address"))?;
            Ok(address_info(&st.wallets[name], &a))
        }
        "listunspent" => list_unspent(st, name, call),
        "lockunspent" => lock_unspent(st, name, call),
        "listlockunspent" => Ok(J::Arr(
            st.wallets[name]
                .locked
                .iter()
                .map(|op| {
                    J::obj()
                        .put("txid", op.txid.to_string())
                        .put("vout", J::int(op.vout))
                        .build()
                })
                .collect(),
        )),
        "sendmany" => send_many(st, name, call),
        "sendtoaddress" => send_to_address(st, name, call),
        "gettransaction" => {
            let txid = parse_txid(p.req_str(0, m)?, "txid")?;
            let verbose = p.bool(2)?.unwrap_or(false);
            get_transaction(&st.wallets[name], &st.node, &txid, verbose)
        }
        "listtransactions" => list_transactions(st, name, call),
        "listsinceblock" => list_since_block(st, name, call),
        "bumpfee" => {
            let txid = parse_txid(p.req_str(0, m)?, "txid")?;
            let rate = match p.obj(1)? {
                Some(o) => {
                    let o = J::Obj(o.to_vec());
                    if o.get("conf_target").is_some_and(|v| !v.is_null())
                        && o.get("fee_rate").is_some_and(|v| !v.is_null())
                    {
                        return Err(RpcError::new(
                            -8,
                            "Cannot specify both conf_target and fee_rate. Please provide either a confirmation target in blocks for automatic fee estimation, or an explicit fee rate.",
                        ));
                    }
                    match o.get("fee_rate") {
                        Some(v) if !v.is_null() => Some(fee_rate_sat_vb(v)?),
                        _ => None,
                    }
                }
                None => None,
            };
            bump_fee(st, name, &txid, rate)
        }
        "abandontransaction" => {
            let txid = parse_txid(p.req_str(0, m)?, "txid")?;
            let node = &st.node;
            let w = st.wallets.get_mut(name).expect("loaded");
            if !w.txs.contains_key(&txid) {
                return Err(RpcError::new(-5, "Invalid or non-wallet transaction id"));
            }
            if w.depth(&txid, node) != 0 || node.mempool.contains_key(&txid) {
                return Err(RpcError::new(
                    -5,
                    "Transaction not eligible for abandonment",
                ));
            }
            w.txs.get_mut(&txid).expect("present").abandoned = true;
            Ok(J::Null)
        }
        "walletcreatefundedpsbt" | "walletprocesspsbt" => psbt::dispatch_wallet(st, name, call),
        _ => Err(RpcError::new(-32601, "Method not found")),
    }
}

fn address_kind(t: &str) -> Result<KeyKind, RpcError> {
    match t {
        "bech32" => Ok(KeyKind::Wpkh),
        "bech32m" => Ok(KeyKind::Tr),
        "legacy" | "p2sh-segwit" => Err(RpcError::new(
            -8,
            format!("stand-in: address_type '{t}' is not supported (bech32, bech32m only)"),
        )),
        _ => Err(RpcError::new(-5, format!("Unknown address type '{t}'"))),
    }
}

fn address_info(w: &Wallet, a: &bitcoin::Address) -> J {
    let spk = a.script_pubkey();
    let mine = w.is_mine(&spk);
    let mut o = J::obj()
        .put("address", a.to_string())
        .put("scriptPubKey", hex::encode(spk.as_bytes()))
        .put("ismine", mine)
        .put("solvable", mine);
    if mine {
        o.push("desc", w.desc(&spk).unwrap_or_default());
        o.push("parent_desc", w.parent_desc(&spk).unwrap_or_default());
    }
    o.push("iswatchonly", false);
    o.push("isscript", spk.is_p2sh());
    o.push("iswitness", spk.is_witness_program());
    if let Some(v) = spk.witness_version() {
        o.push("witness_version", J::int(v.to_num()));
        o.push("witness_program", hex::encode(&spk.as_bytes()[2..]));
    }
    let key = w.keys.get(&spk);
    if let Some(k) = key
        && spk.is_p2wpkh()
    {
        o.push("pubkey", k.pubkey.to_string());
    }
    o.push("ischange", w.is_change(&spk));
    if let Some(k) = key {
        o.push("timestamp", J::int(k.timestamp));
        o.push(
            "hdkeypath",
            format!("m/{}", path_text(&Wallet::key_path(k))),
        );
        o.push("hdseedid", "0000000000000000000000000000000000000000");
        o.push("hdmasterfingerprint", w.fingerprint.to_string());
    }
    let labels = match w.labels.get(&spk) {
        Some(l) => vec![J::str(l.clone())],
        None => vec![],
    };
    o.put("labels", J::Arr(labels)).build()
}

fn list_unspent(st: &State, name: &str, call: &Call) -> RpcResult {
    let p = &call.params;
    let minconf = p.int(0)?.unwrap_or(1);
    let maxconf = p.int(1)?.unwrap_or(9_999_999);
    let filter: Option<HashSet<ScriptBuf>> = match p.arr(2)? {
        None => None,
        Some(a) => {
            let mut s = HashSet::new();
            for v in a {
                let t = v.as_str().unwrap_or("");
                let addr = parse_address(t)
                    .ok_or_else(|| RpcError::new(-5, format!("Invalid Bitcoin address: {t}")))?;
                s.insert(addr.script_pubkey());
            }
            Some(s)
        }
    };
    let include_unsafe = p.bool(3)?.unwrap_or(true);
    let w = &st.wallets[name];
    let mut out = Vec::new();
    for c in w.unspent(&st.node) {
        if c.depth < minconf || c.depth > maxconf {
            continue;
        }
        if w.locked.contains(&c.outpoint) || w.blocks_to_maturity(&c.outpoint.txid, &st.node) > 0 {
            continue;
        }
        if !c.safe && !include_unsafe {
            continue;
        }
        if let Some(f) = &filter
            && !f.contains(&c.txout.script_pubkey)
        {
            continue;
        }
        let spk = &c.txout.script_pubkey;
        let mut o = J::obj()
            .put("txid", c.outpoint.txid.to_string())
            .put("vout", J::int(c.outpoint.vout));
        if let Some(a) = super::describe::address(spk) {
            o.push("address", a.to_string());
        }
        if let Some(l) = w.labels.get(spk) {
            o.push("label", l.clone());
        }
        o.push("scriptPubKey", hex::encode(spk.as_bytes()));
        o.push("amount", btc(c.txout.value.to_sat() as i64));
        o.push("confirmations", J::int(c.depth));
        o.push("spendable", true);
        o.push("solvable", true);
        o.push("desc", w.desc(spk).unwrap_or_default());
        o.push(
            "parent_descs",
            J::Arr(w.parent_desc(spk).into_iter().map(J::Str).collect()),
        );
        o.push("safe", c.safe);
        out.push(o.build());
    }
    Ok(J::Arr(out))
}

fn lock_unspent(st: &mut State, name: &str, call: &Call) -> RpcResult {
    let p = &call.params;
    let unlock = p
        .bool(0)?
        .ok_or_else(|| RpcError::new(-1, "lockunspent unlock"))?;
    let node = &st.node;
    let w = st.wallets.get_mut(name).expect("loaded");
    let Some(list) = p.arr(1)? else {
        if unlock {
            w.locked.clear();
        }
        return Ok(J::Bool(true));
    };
    // Validate everything first so a bad entry changes nothing (as Core).
    let mut ops = Vec::new();
    for e in list {
        let txid = e
            .get("txid")
            .and_then(J::as_str)
            .ok_or_else(|| RpcError::new(-8, "Invalid parameter, missing txid key"))?;
        let txid = parse_txid(txid, "txid")?;
        let vout = e
            .get("vout")
            .and_then(J::as_i64)
            .ok_or_else(|| RpcError::new(-8, "Invalid parameter, missing vout key"))?;
        if vout < 0 {
            return Err(RpcError::new(
                -8,
                "Invalid parameter, vout cannot be negative",
            ));
        }
        let wtx = w
            .txs
            .get(&txid)
            .ok_or_else(|| RpcError::new(-8, "Invalid parameter, unknown transaction"))?;
        if vout as usize >= wtx.tx.output.len() {
            return Err(RpcError::new(
                -8,
                "Invalid parameter, vout index out of bounds",
            ));
        }
        let op = OutPoint::new(txid, vout as u32);
        if node.is_spent(&op) {
            return Err(RpcError::new(
                -8,
                "Invalid parameter, expected unspent output",
            ));
        }
        let locked = w.locked.contains(&op);
        if unlock && !locked {
            return Err(RpcError::new(
                -8,
                "Invalid parameter, expected locked output",
            ));
        }
        if !unlock && locked {
            return Err(RpcError::new(
                -8,
                "Invalid parameter, output already locked",
            ));
        }
        ops.push(op);
    }
    for op in ops {
        if unlock {
            w.locked.remove(&op);
        } else {
            w.locked.insert(op);
        }
    }
    Ok(J::Bool(true))
}

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

fn send_many(st: &mut State, name: &str, call: &Call) -> RpcResult {
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

fn send_to_address(st: &mut State, name: &str, call: &Call) -> RpcResult {
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

/// Other wallet transactions spending any of the same inputs.
fn wallet_conflicts(w: &Wallet, txid: &Txid) -> Vec<Txid> {
    let Some(wtx) = w.txs.get(txid) else {
        return vec![];
    };
    if wtx.tx.is_coinbase() {
        return vec![];
    }
    let ins: HashSet<OutPoint> = wtx.tx.input.iter().map(|i| i.previous_output).collect();
    w.order
        .iter()
        .filter(|t| *t != txid)
        .filter(|t| {
            w.txs[*t]
                .tx
                .input
                .iter()
                .any(|i| ins.contains(&i.previous_output))
        })
        .copied()
        .collect()
}

/// Core's `bip125-replaceable` for a wallet transaction.
fn rbf_state(w: &Wallet, node: &Node, txid: &Txid) -> &'static str {
    let depth = w.depth(txid, node);
    if depth > 0 {
        return "no";
    }
    let tx = &w.txs[txid].tx;
    if signals_rbf(tx) {
        return "yes";
    }
    if !node.mempool.contains_key(txid) {
        return "unknown";
    }
    let anc_rbf = tx.input.iter().any(|i| {
        node.mempool
            .get(&i.previous_output.txid)
            .is_some_and(|e| signals_rbf(&e.tx))
    });
    if anc_rbf { "yes" } else { "no" }
}

/// Core's `WalletTxToJSON`: the fields shared by `gettransaction` and the
/// long form of `listtransactions` entries.
fn wallet_tx_fields(w: &Wallet, node: &Node, txid: &Txid, o: &mut ObjBuilder) {
    let wtx = &w.txs[txid];
    let depth = w.depth(txid, node);
    o.push("confirmations", J::int(depth));
    if wtx.tx.is_coinbase() {
        o.push("generated", true);
    }
    if let TxState::Confirmed { height, index } = w.state(txid, node) {
        let b = &node.blocks[height as usize];
        o.push("blockhash", b.hash.to_string());
        o.push("blockheight", J::int(height));
        o.push("blockindex", J::int(index as u64));
        o.push("blocktime", J::int(b.block.header.time));
    } else {
        o.push("trusted", w.is_trusted(txid, node));
    }
    o.push("txid", txid.to_string());
    o.push("wtxid", wtx.tx.compute_wtxid().to_string());
    o.push(
        "walletconflicts",
        J::Arr(
            wallet_conflicts(w, txid)
                .iter()
                .map(|t| J::str(t.to_string()))
                .collect(),
        ),
    );
    o.push("time", J::int(wtx.time));
    o.push("timereceived", J::int(wtx.time));
    o.push("bip125-replaceable", rbf_state(w, node, txid));
    // mapValue entries, in key order as Core's std::map.
    if let Some(c) = &wtx.comment {
        o.push("comment", c.clone());
    }
    if let Some(r) = &wtx.replaced_by {
        o.push("replaced_by_txid", r.to_string());
    }
    if let Some(r) = &wtx.replaces {
        o.push("replaces_txid", r.to_string());
    }
    if let Some(t) = &wtx.comment_to {
        o.push("to", t.clone());
    }
}

/// One `details`/`listtransactions` entry before formatting.
struct Entry {
    send: bool,
    category: &'static str,
    script: ScriptBuf,
    amount: i64,
    vout: u32,
}

/// Core's `CachedTxGetAmounts`: sends (non-change outputs of our spends)
/// and receives (outputs paying us), plus the fee.
fn entries(w: &Wallet, node: &Node, txid: &Txid) -> (Vec<Entry>, u64) {
    let wtx = &w.txs[txid];
    let tx = &wtx.tx;
    let debit = w.debit(tx, node);
    let value_out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    let fee = if debit > 0 {
        debit.saturating_sub(value_out)
    } else {
        0
    };
    let mut sent = Vec::new();
    let mut received = Vec::new();
    for (v, o) in tx.output.iter().enumerate() {
        let mine = w.is_mine(&o.script_pubkey);
        if debit > 0 {
            if w.is_change(&o.script_pubkey) {
                continue;
            }
        } else if !mine {
            continue;
        }
        if debit > 0 {
            sent.push(Entry {
                send: true,
                category: "send",
                script: o.script_pubkey.clone(),
                amount: -(o.value.to_sat() as i64),
                vout: v as u32,
            });
        }
        if mine {
            let category = if tx.is_coinbase() {
                if w.depth(txid, node) < 1 {
                    "orphan"
                } else if w.blocks_to_maturity(txid, node) > 0 {
                    "immature"
                } else {
                    "generate"
                }
            } else {
                "receive"
            };
            received.push(Entry {
                send: false,
                category,
                script: o.script_pubkey.clone(),
                amount: o.value.to_sat() as i64,
                vout: v as u32,
            });
        }
    }
    sent.extend(received);
    (sent, fee)
}

fn entry_json(w: &Wallet, node: &Node, txid: &Txid, e: &Entry, fee: u64, long: bool) -> J {
    let mut o = J::obj();
    if let Some(a) = super::describe::address(&e.script) {
        o.push("address", a.to_string());
    }
    if !e.send {
        o.push(
            "parent_descs",
            J::Arr(w.parent_desc(&e.script).into_iter().map(J::Str).collect()),
        );
    }
    o.push("category", e.category);
    o.push("amount", btc(e.amount));
    if let Some(l) = w.labels.get(&e.script) {
        o.push("label", l.clone());
    }
    o.push("vout", J::int(e.vout));
    if e.send {
        o.push("fee", btc(-(fee as i64)));
    }
    if long {
        wallet_tx_fields(w, node, txid, &mut o);
    }
    if e.send {
        o.push("abandoned", w.txs[txid].abandoned);
    }
    o.build()
}

fn get_transaction(w: &Wallet, node: &Node, txid: &Txid, verbose: bool) -> RpcResult {
    let wtx = w
        .txs
        .get(txid)
        .ok_or_else(|| RpcError::new(-5, "Invalid or non-wallet transaction id"))?;
    let tx = &wtx.tx;
    let debit = w.debit(tx, node) as i64;
    let credit = if w.blocks_to_maturity(txid, node) > 0 {
        0
    } else {
        w.credit(tx) as i64
    };
    let value_out: i64 = tx.output.iter().map(|o| o.value.to_sat() as i64).sum();
    let from_me = debit > 0;
    let n_fee = if from_me { value_out - debit } else { 0 };
    let mut o = J::obj().put("amount", btc(credit - debit - n_fee));
    if from_me {
        o.push("fee", btc(n_fee));
    }
    wallet_tx_fields(w, node, txid, &mut o);
    let (es, fee) = entries(w, node, txid);
    let details: Vec<J> = es
        .iter()
        .map(|e| entry_json(w, node, txid, e, fee, false))
        .collect();
    o.push("details", J::Arr(details));
    o.push("hex", tx_hex(tx));
    if verbose {
        o.push("decoded", super::describe::tx_json(tx));
    }
    Ok(o.build())
}

fn list_transactions(st: &State, name: &str, call: &Call) -> RpcResult {
    let p = &call.params;
    let label = p.str(0)?.unwrap_or("*").to_string();
    let count = p.int(1)?.unwrap_or(10);
    let skip = p.int(2)?.unwrap_or(0);
    if count < 0 {
        return Err(RpcError::new(-8, "Negative count"));
    }
    if skip < 0 {
        return Err(RpcError::new(-8, "Negative from"));
    }
    let (count, skip) = (count as usize, skip as usize);
    let w = &st.wallets[name];
    let node = &st.node;
    // Newest first, each transaction's entries in their own order; then
    // the window is cut and reversed, exactly as Core does.
    let mut ret: Vec<J> = Vec::new();
    for txid in w.order.iter().rev() {
        let (es, fee) = entries(w, node, txid);
        for e in &es {
            if label != "*" && w.labels.get(&e.script).map(String::as_str) != Some(label.as_str()) {
                continue;
            }
            if !e.send && w.depth(txid, node) < 0 {
                // Core lists receives only at depth >= 0.
                continue;
            }
            ret.push(entry_json(w, node, txid, e, fee, true));
        }
        if ret.len() >= count + skip {
            break;
        }
    }
    let end = (skip + count).min(ret.len());
    let start = skip.min(end);
    let mut window: Vec<J> = ret[start..end].to_vec();
    window.reverse();
    Ok(J::Arr(window))
}

fn list_since_block(st: &State, name: &str, call: &Call) -> RpcResult {
    let p = &call.params;
    let node = &st.node;
    let since_height: Option<u32> = match p.str(0)? {
        None | Some("") => None,
        Some(h) => {
            let hash: bitcoin::BlockHash = h
                .parse()
                .map_err(|_| RpcError::new(-8, "blockhash must be hexadecimal string"))?;
            Some(
                node.block_by_hash(&hash)
                    .ok_or_else(|| RpcError::new(-5, "Block not found"))?
                    .height,
            )
        }
    };
    let target = p.int(1)?.unwrap_or(1);
    if target < 1 {
        return Err(RpcError::new(-8, "Invalid parameter"));
    }
    let depth = since_height.map(|h| node.depth_of(h));
    let w = &st.wallets[name];
    let mut txs = Vec::new();
    for txid in &w.order {
        let d = w.depth(txid, node);
        if depth.is_none_or(|lim| d.abs() < lim) {
            let (es, fee) = entries(w, node, txid);
            for e in &es {
                txs.push(entry_json(w, node, txid, e, fee, true));
            }
        }
    }
    let last_h = (node.height() as i64 + 1 - target).max(0) as usize;
    Ok(J::obj()
        .put("transactions", J::Arr(txs))
        .put("removed", J::Arr(vec![]))
        .put("lastblock", node.blocks[last_h].hash.to_string())
        .build())
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

/// Validates an `amount` parameter in BTC (for callers outside this module).
pub fn amount_sat(v: &J) -> Result<i64, RpcError> {
    amount_from_value(v)
}
