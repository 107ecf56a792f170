//! Read-mostly wallet RPCs (`/wallet/<name>`): balances, addresses, coins
//! and locks, transaction history. Spending lives in `wallet_send.rs`.
//! Shapes and key order follow Core v23's answers in exchanges.json.

use std::collections::HashSet;

use bitcoin::{OutPoint, ScriptBuf, Txid};

use super::amount::{btc, fee_rate_sat_vb};
use super::chain_rpc::{parse_address, parse_txid};
use super::describe::tx_hex;
use super::json::{J, ObjBuilder};
use super::node::{Node, signals_rbf};
use super::psbt;
use super::rpc::{Call, RpcError, RpcResult};
use super::state::{State, now};
use super::wallet::{KeyKind, TxState, Wallet, path_text};
use super::wallet_send::{bump_fee, send_many, send_to_address};

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
    // As Core: an empty address list filters nothing.
    let filter: Option<HashSet<ScriptBuf>> = match p.arr(2)? {
        None => None,
        Some([]) => None,
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
