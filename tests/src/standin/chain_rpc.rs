//! Node-level RPCs: chain, mempool, raw transactions, wallet loading.

use std::str::FromStr;

use bitcoin::consensus::encode::deserialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::{Address, BlockHash, Network, Transaction, Txid};

use super::amount::{amount_from_value, btc, btc_per_kvb};
use super::describe::{tx_hex, tx_json};
use super::json::J;
use super::node::{DEFAULT_MAX_FEE_RATE_SAT_KVB, Reject, signals_rbf};
use super::rpc::{Call, RpcError, RpcResult};
use super::state::{State, now};
use super::wallet::Wallet;

/// Parses an address valid on regtest.
pub fn parse_address(s: &str) -> Option<Address> {
    Address::from_str(s)
        .ok()?
        .require_network(Network::Regtest)
        .ok()
}

/// Parses a txid parameter as Core's `ParseHashV`.
pub fn parse_txid(s: &str, name: &str) -> Result<Txid, RpcError> {
    if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(RpcError::new(
            -8,
            format!("{name} must be of length 64 (not {}, for '{s}')", s.len()),
        ));
    }
    Txid::from_str(s)
        .map_err(|_| RpcError::new(-8, format!("{name} must be hexadecimal string (not '{s}')")))
}

/// Decodes a raw transaction parameter.
pub fn decode_tx(hex: &str) -> Result<Transaction, RpcError> {
    deserialize_hex::<Transaction>(hex).map_err(|_| {
        RpcError::new(
            -22,
            "TX decode failed. Make sure the tx has at least one input.",
        )
    })
}

/// Optional `maxfeerate` parameter (BTC/kvB) in sat/kvB.
fn max_fee_rate(call: &Call, i: usize) -> Result<u64, RpcError> {
    match call.params.get(i) {
        None => Ok(DEFAULT_MAX_FEE_RATE_SAT_KVB),
        Some(v) => Ok(amount_from_value(v)? as u64),
    }
}

pub fn dispatch(st: &mut State, call: &Call) -> RpcResult {
    let p = &call.params;
    let m = call.method.as_str();
    match m {
        "getblockchaininfo" => Ok(blockchain_info(st)),
        "getnetworkinfo" => Ok(network_info()),
        "getblockcount" => Ok(J::int(st.node.height())),
        "getbestblockhash" => Ok(J::str(st.node.tip().hash.to_string())),
        "getblockhash" => {
            let h = p
                .int(0)?
                .ok_or_else(|| RpcError::new(-1, "getblockhash height"))?;
            st.node
                .blocks
                .get(usize::try_from(h).unwrap_or(usize::MAX))
                .map(|b| J::str(b.hash.to_string()))
                .ok_or_else(|| RpcError::new(-8, "Block height out of range"))
        }
        "getblock" => get_block(st, call),
        "uptime" => Ok(J::int(now().saturating_sub(st.started))),
        "estimatesmartfee" => {
            p.required(0, m)?;
            let target = p.int(0)?.unwrap_or(6);
            if !(1..=1008).contains(&target) {
                return Err(RpcError::new(
                    -8,
                    format!("Invalid conf_target, must be between 1 and 1008 - {target}"),
                ));
            }
            Ok(match st.fee_estimate_sat_kvb {
                None => J::obj()
                    .put(
                        "errors",
                        J::Arr(vec![J::str("Insufficient data or no feerate found")]),
                    )
                    .put("blocks", J::int(0))
                    .build(),
                Some(r) => J::obj()
                    .put("feerate", btc_per_kvb(r))
                    .put("blocks", J::int(target.max(2)))
                    .build(),
            })
        }
        "getmempoolinfo" => {
            let bytes: u64 = st.node.mempool.values().map(|e| e.vsize).sum();
            let fees: u64 = st.node.mempool.values().map(|e| e.fee).sum();
            Ok(J::obj()
                .put("loaded", true)
                .put("size", J::int(st.node.mempool.len() as u64))
                .put("bytes", J::int(bytes))
                .put("usage", J::int(bytes * 4))
                .put("total_fee", btc(fees as i64))
                .put("maxmempool", J::int(300_000_000u64))
                .put("mempoolminfee", btc(1000))
                .put("minrelaytxfee", btc(1000))
                .put("unbroadcastcount", J::int(0))
                .build())
        }
        "getrawmempool" => Ok(J::Arr(
            st.node
                .mempool_order
                .iter()
                .map(|t| J::str(t.to_string()))
                .collect(),
        )),
        "getmempoolentry" => {
            let txid = parse_txid(p.req_str(0, m)?, "parameter 1")?;
            mempool_entry(st, &txid)
        }
        "getrawtransaction" => get_raw_transaction(st, call),
        "decoderawtransaction" => Ok(tx_json(&decode_tx(p.req_str(0, m)?)?)),
        "validateaddress" => Ok(validate_address(p.req_str(0, m)?)),
        "testmempoolaccept" => test_mempool_accept(st, call),
        "sendrawtransaction" => {
            let tx = decode_tx(p.req_str(0, m)?)?;
            let max = max_fee_rate(call, 1)?;
            let txid = tx.compute_txid();
            match st.submit(&tx, max) {
                Ok(_) | Err(Reject::AlreadyInMempool) => Ok(J::str(txid.to_string())),
                Err(Reject::MissingInputs) => {
                    Err(RpcError::new(-25, "bad-txns-inputs-missingorspent"))
                }
                Err(Reject::AlreadyInChain) => {
                    Err(RpcError::new(-27, "Transaction already in block chain"))
                }
                Err(Reject::MaxFeeExceeded) => Err(RpcError::new(
                    -25,
                    "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
                )),
                Err(Reject::Invalid(r)) => Err(RpcError::new(-26, r)),
            }
        }
        "generatetoaddress" => {
            let n = p
                .int(0)?
                .ok_or_else(|| RpcError::new(-1, "generatetoaddress nblocks address"))?;
            let a = parse_address(p.req_str(1, m)?)
                .ok_or_else(|| RpcError::new(-5, "Error: Invalid address"))?;
            let hashes = st.mine(n.clamp(0, 10_000) as u32, &a.script_pubkey());
            Ok(J::Arr(
                hashes.iter().map(|h| J::str(h.to_string())).collect(),
            ))
        }
        "listwallets" => Ok(J::Arr(
            st.loaded.iter().map(|n| J::str(n.clone())).collect(),
        )),
        "createwallet" => {
            let name = p.req_str(0, m)?.to_string();
            if st.wallets.contains_key(&name) || name == st.external {
                return Err(RpcError::new(
                    -4,
                    format!(
                        "Wallet file verification failed. Failed to create database path '{name}'. Database already exists."
                    ),
                ));
            }
            let no_keys = p.bool(1)?.unwrap_or(false);
            st.wallets
                .insert(name.clone(), Wallet::new(&name, !no_keys));
            st.loaded.insert(name.clone());
            Ok(J::obj().put("name", name).put("warning", "").build())
        }
        "loadwallet" => {
            let name = p.req_str(0, m)?.to_string();
            if st.loaded.contains(&name) {
                return Err(RpcError::new(
                    -35,
                    format!("Wallet \"{name}\" is already loaded."),
                ));
            }
            if !st.wallets.contains_key(&name) || name == st.external {
                return Err(RpcError::new(
                    -18,
                    format!(
                        "Wallet file verification failed. Failed to load database path '{name}'. Path does not exist."
                    ),
                ));
            }
            st.loaded.insert(name.clone());
            Ok(J::obj().put("name", name).put("warning", "").build())
        }
        "unloadwallet" => {
            let name = match (p.str(0)?, &call.wallet) {
                (Some(n), _) => n.to_string(),
                (None, Some(w)) => w.clone(),
                (None, None) => {
                    return Err(RpcError::new(
                        -8,
                        "Either the RPC endpoint wallet or the wallet name parameter must be provided",
                    ));
                }
            };
            if !st.loaded.remove(&name) {
                return Err(RpcError::new(
                    -18,
                    "Requested wallet does not exist or is not loaded",
                ));
            }
            Ok(J::obj().put("warning", "").build())
        }
        _ => Err(RpcError::new(-32601, "Method not found")),
    }
}

fn blockchain_info(st: &State) -> J {
    let tip = st.node.tip();
    // Regtest work per block is 2: chainwork = 2 × (height + 1).
    let chainwork = format!("{:064x}", 2 * (tip.height as u128 + 1));
    let size_on_disk: usize = st.node.blocks.iter().map(|b| b.size + 8).sum();
    J::obj()
        .put("chain", "regtest")
        .put("blocks", J::int(tip.height))
        .put("headers", J::int(tip.height))
        .put("bestblockhash", tip.hash.to_string())
        .put("difficulty", J::Num("4.656542373906925e-10".into()))
        .put("time", J::int(tip.block.header.time))
        .put("mediantime", J::int(st.node.median_time()))
        .put("verificationprogress", J::int(1))
        .put("initialblockdownload", false)
        .put("chainwork", chainwork)
        .put("size_on_disk", J::int(size_on_disk as u64))
        .put("pruned", false)
        .put("warnings", "")
        .build()
}

fn network_info() -> J {
    let net = |name: &str, limited: bool| {
        J::obj()
            .put("name", name)
            .put("limited", limited)
            .put("reachable", !limited)
            .put("proxy", "")
            .put("proxy_randomize_credentials", false)
            .build()
    };
    J::obj()
        .put("version", J::int(230000))
        .put("subversion", "/Satoshi:23.0.0/")
        .put("protocolversion", J::int(70016))
        .put("localservices", "0000000000000409")
        .put(
            "localservicesnames",
            J::Arr(vec![
                J::str("NETWORK"),
                J::str("WITNESS"),
                J::str("NETWORK_LIMITED"),
            ]),
        )
        .put("localrelay", true)
        .put("timeoffset", J::int(0))
        .put("networkactive", true)
        .put("connections", J::int(0))
        .put("connections_in", J::int(0))
        .put("connections_out", J::int(0))
        .put(
            "networks",
            J::Arr(vec![
                net("ipv4", false),
                net("ipv6", false),
                net("onion", true),
                net("i2p", true),
                net("cjdns", true),
            ]),
        )
        .put("relayfee", btc(1000))
        .put("incrementalfee", btc(1000))
        .put("localaddresses", J::Arr(vec![]))
        .put("warnings", "")
        .build()
}

fn get_block(st: &State, call: &Call) -> RpcResult {
    let s = call.params.req_str(0, "getblock")?;
    let hash = BlockHash::from_str(s)
        .map_err(|_| RpcError::new(-8, "blockhash must be hexadecimal string"))?;
    let b = st
        .node
        .block_by_hash(&hash)
        .ok_or_else(|| RpcError::new(-5, "Block not found"))?;
    let verbosity = call.params.int(1)?.unwrap_or(1);
    if verbosity == 0 {
        return Ok(J::str(hex::encode(bitcoin::consensus::encode::serialize(
            &b.block,
        ))));
    }
    let txs: Vec<J> = b
        .block
        .txdata
        .iter()
        .map(|t| {
            if verbosity >= 2 {
                tx_json(t)
            } else {
                J::str(t.compute_txid().to_string())
            }
        })
        .collect();
    let mut o = J::obj()
        .put("hash", b.hash.to_string())
        .put("confirmations", J::int(st.node.depth_of(b.height)))
        .put("height", J::int(b.height))
        .put("version", J::int(b.block.header.version.to_consensus()))
        .put("merkleroot", b.block.header.merkle_root.to_string())
        .put("time", J::int(b.block.header.time))
        .put("nonce", J::int(b.block.header.nonce))
        .put(
            "bits",
            format!("{:08x}", b.block.header.bits.to_consensus()),
        )
        .put("nTx", J::int(b.block.txdata.len() as u64));
    if b.height > 0 {
        o.push(
            "previousblockhash",
            b.block.header.prev_blockhash.to_string(),
        );
    }
    if let Some(next) = st.node.blocks.get(b.height as usize + 1) {
        o.push("nextblockhash", next.hash.to_string());
    }
    Ok(o.put("tx", J::Arr(txs)).build())
}

/// Ancestors (or descendants) of a mempool tx, itself included.
fn family(st: &State, txid: &Txid, up: bool) -> Vec<Txid> {
    let node = &st.node;
    if !up {
        return node.with_descendants(&[*txid]);
    }
    let mut out = vec![*txid];
    let mut i = 0;
    while i < out.len() {
        let t = out[i];
        for inp in &node.mempool[&t].tx.input {
            let p = inp.previous_output.txid;
            if node.mempool.contains_key(&p) && !out.contains(&p) {
                out.push(p);
            }
        }
        i += 1;
    }
    out
}

fn mempool_entry(st: &State, txid: &Txid) -> RpcResult {
    let node = &st.node;
    let e = node
        .mempool
        .get(txid)
        .ok_or_else(|| RpcError::new(-5, "Transaction not in mempool"))?;
    let anc = family(st, txid, true);
    let desc = family(st, txid, false);
    let sum = |v: &[Txid], f: fn(&super::node::MempoolEntry) -> u64| -> u64 {
        v.iter().map(|t| f(&node.mempool[t])).sum()
    };
    let depends: Vec<J> =
        e.tx.input
            .iter()
            .map(|i| i.previous_output.txid)
            .filter(|t| node.mempool.contains_key(t))
            .map(|t| J::str(t.to_string()))
            .collect();
    let spentby: Vec<J> = node
        .mempool_order
        .iter()
        .filter(|t| {
            node.mempool[*t]
                .tx
                .input
                .iter()
                .any(|i| &i.previous_output.txid == txid)
        })
        .map(|t| J::str(t.to_string()))
        .collect();
    let replaceable = anc.iter().any(|t| signals_rbf(&node.mempool[t].tx));
    Ok(J::obj()
        .put("vsize", J::int(e.vsize))
        .put("weight", J::int(e.weight))
        .put("time", J::int(e.time))
        .put("height", J::int(e.height))
        .put("descendantcount", J::int(desc.len() as u64))
        .put("descendantsize", J::int(sum(&desc, |e| e.vsize)))
        .put("ancestorcount", J::int(anc.len() as u64))
        .put("ancestorsize", J::int(sum(&anc, |e| e.vsize)))
        .put("wtxid", e.tx.compute_wtxid().to_string())
        .put(
            "fees",
            J::obj()
                .put("base", btc(e.fee as i64))
                .put("modified", btc(e.fee as i64))
                .put("ancestor", btc(sum(&anc, |e| e.fee) as i64))
                .put("descendant", btc(sum(&desc, |e| e.fee) as i64)),
        )
        .put("depends", J::Arr(depends))
        .put("spentby", J::Arr(spentby))
        .put("bip125-replaceable", replaceable)
        .put("unbroadcast", false)
        .build())
}

fn get_raw_transaction(st: &State, call: &Call) -> RpcResult {
    let p = &call.params;
    let txid = parse_txid(p.req_str(0, "getrawtransaction")?, "parameter 1")?;
    // `verbose` may be a bool or a number (0/1) as in Core.
    let verbose = match p.get(1) {
        None => false,
        Some(J::Bool(b)) => *b,
        Some(v) => v.as_i64().unwrap_or(0) != 0,
    };
    let tx = st.node.txindex.get(&txid).ok_or_else(|| {
        RpcError::new(
            -5,
            "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
        )
    })?;
    if !verbose {
        return Ok(J::str(tx_hex(tx)));
    }
    let J::Obj(mut o) = tx_json(tx) else {
        unreachable!("tx_json builds an object")
    };
    o.push(("hex".into(), J::str(tx_hex(tx))));
    if let Some((h, _)) = st.node.confirmed.get(&txid) {
        let b = &st.node.blocks[*h as usize];
        o.push(("blockhash".into(), J::str(b.hash.to_string())));
        o.push(("confirmations".into(), J::int(st.node.depth_of(*h))));
        o.push(("time".into(), J::int(b.block.header.time)));
        o.push(("blocktime".into(), J::int(b.block.header.time)));
    }
    Ok(J::Obj(o))
}

/// `validateaddress`, with Core's error text for anything not valid here.
pub fn validate_address(s: &str) -> J {
    match parse_address(s) {
        Some(a) => {
            let spk = a.script_pubkey();
            let mut o = J::obj()
                .put("isvalid", true)
                .put("address", a.to_string())
                .put("scriptPubKey", hex::encode(spk.as_bytes()))
                .put("isscript", spk.is_p2sh())
                .put("iswitness", spk.is_witness_program());
            if let Some(v) = spk.witness_version() {
                o.push("witness_version", J::int(v.to_num()));
                o.push("witness_program", hex::encode(&spk.as_bytes()[2..]));
            }
            o.build()
        }
        None => J::obj()
            .put("isvalid", false)
            .put("error_locations", J::Arr(vec![]))
            .put("error", "Not a valid Bech32 or Base58 encoding")
            .build(),
    }
}

fn test_mempool_accept(st: &mut State, call: &Call) -> RpcResult {
    let raw = call
        .params
        .arr(0)?
        .ok_or_else(|| RpcError::new(-1, "testmempoolaccept rawtxs"))?;
    if raw.is_empty() || raw.len() > 25 {
        return Err(RpcError::new(
            -8,
            "Array must contain between 1 and 25 transactions.",
        ));
    }
    let max = max_fee_rate(call, 1)?;
    let mut out = Vec::new();
    for r in raw {
        let hex = r
            .as_str()
            .ok_or_else(|| RpcError::new(-3, "JSON value is not a string as expected"))?;
        let tx = decode_tx(hex)?;
        let mut o = J::obj()
            .put("txid", tx.compute_txid().to_string())
            .put("wtxid", tx.compute_wtxid().to_string());
        match st.node.accept(&tx, true, max, now()) {
            Ok(a) => {
                o.push("allowed", true);
                o.push("vsize", J::int(a.vsize));
                o.push("fees", J::obj().put("base", btc(a.fee as i64)));
            }
            Err(e) => {
                o.push("allowed", false);
                o.push("reject-reason", e.reason());
            }
        }
        out.push(o.build());
    }
    Ok(J::Arr(out))
}

/// An all-zero txid, handy for tests of unknown ids.
pub fn zero_txid() -> Txid {
    Txid::all_zeros()
}
