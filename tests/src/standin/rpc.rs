//! JSON-RPC envelopes, parameters and the method table.
//!
//! Kept apart from HTTP (see `http.rs`) so the same dispatcher answers single
//! calls, batches and the in-process control API, and apart from the method
//! bodies (`chain_rpc.rs`, `wallet_rpc.rs`, `psbt.rs`, `control.rs`).

use super::json::J;
use super::state::State;
use super::{chain_rpc, control, psbt, wallet_rpc};

/// An RPC error as Core reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status Core uses for this error on a single request.
    pub fn http_status(&self) -> u16 {
        match self.code {
            -32601 => 404,
            -32600 => 400,
            _ => 500,
        }
    }
}

pub type RpcResult = Result<J, RpcError>;

/// One parsed call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub params: Params,
    /// The `<name>` of a `/wallet/<name>` path.
    pub wallet: Option<String>,
}

/// Positional parameters; JSON `null` counts as absent, as in Core.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<J>);

impl Params {
    /// Parameter `i`, `None` when missing or null.
    pub fn get(&self, i: usize) -> Option<&J> {
        self.0.get(i).filter(|v| !v.is_null())
    }

    pub fn required(&self, i: usize, method: &str) -> Result<&J, RpcError> {
        self.get(i).ok_or_else(|| {
            RpcError::new(
                -1,
                format!("{method}: missing required parameter {}", i + 1),
            )
        })
    }

    pub fn str(&self, i: usize) -> Result<Option<&str>, RpcError> {
        match self.get(i) {
            None => Ok(None),
            Some(J::Str(s)) => Ok(Some(s)),
            Some(_) => Err(RpcError::new(-3, "JSON value is not a string as expected")),
        }
    }

    pub fn req_str(&self, i: usize, method: &str) -> Result<&str, RpcError> {
        self.required(i, method)?;
        Ok(self.str(i)?.expect("checked"))
    }

    pub fn bool(&self, i: usize) -> Result<Option<bool>, RpcError> {
        match self.get(i) {
            None => Ok(None),
            Some(J::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(RpcError::new(-3, "JSON value is not a boolean as expected")),
        }
    }

    pub fn int(&self, i: usize) -> Result<Option<i64>, RpcError> {
        match self.get(i) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| RpcError::new(-3, "JSON value is not an integer as expected")),
        }
    }

    pub fn arr(&self, i: usize) -> Result<Option<&[J]>, RpcError> {
        match self.get(i) {
            None => Ok(None),
            Some(J::Arr(a)) => Ok(Some(a)),
            Some(_) => Err(RpcError::new(-3, "JSON value is not an array as expected")),
        }
    }

    pub fn obj(&self, i: usize) -> Result<Option<&[(String, J)]>, RpcError> {
        match self.get(i) {
            None => Ok(None),
            Some(J::Obj(o)) => Ok(Some(o)),
            Some(_) => Err(RpcError::new(-3, "JSON value is not an object as expected")),
        }
    }
}

/// Whether a method exists, which needs a wallet, and its parameter names
/// (for named-parameter calls).
fn method_info(method: &str) -> Option<(bool, &'static [&'static str])> {
    Some(match method {
        // node
        "getblockchaininfo" | "getnetworkinfo" | "getblockcount" | "getbestblockhash"
        | "uptime" | "listwallets" | "getmempoolinfo" | "getrawmempool" => (false, &[]),
        "getblockhash" => (false, &["height"]),
        "getblock" => (false, &["blockhash", "verbosity"]),
        "estimatesmartfee" => (false, &["conf_target", "estimate_mode"]),
        "getmempoolentry" => (false, &["txid"]),
        "getrawtransaction" => (false, &["txid", "verbose", "blockhash"]),
        "decoderawtransaction" => (false, &["hexstring", "iswitness"]),
        "validateaddress" => (false, &["address"]),
        "testmempoolaccept" => (false, &["rawtxs", "maxfeerate"]),
        "sendrawtransaction" => (false, &["hexstring", "maxfeerate"]),
        "decodepsbt" | "analyzepsbt" => (false, &["psbt"]),
        "finalizepsbt" => (false, &["psbt", "extract"]),
        "generatetoaddress" => (false, &["nblocks", "address", "maxtries"]),
        "createwallet" => (
            false,
            &[
                "wallet_name",
                "disable_private_keys",
                "blank",
                "passphrase",
                "avoid_reuse",
                "descriptors",
                "load_on_startup",
                "external_signer",
            ],
        ),
        "loadwallet" => (false, &["filename", "load_on_startup"]),
        "unloadwallet" => (false, &["wallet_name", "load_on_startup"]),
        // wallet
        "getwalletinfo" | "getbalances" | "listlockunspent" => (true, &[]),
        "getbalance" => (
            true,
            &["dummy", "minconf", "include_watchonly", "avoid_reuse"],
        ),
        "getnewaddress" => (true, &["label", "address_type"]),
        "getrawchangeaddress" => (true, &["address_type"]),
        "getaddressinfo" => (true, &["address"]),
        "listunspent" => (
            true,
            &[
                "minconf",
                "maxconf",
                "addresses",
                "include_unsafe",
                "query_options",
            ],
        ),
        "lockunspent" => (true, &["unlock", "transactions", "persistent"]),
        "sendmany" => (
            true,
            &[
                "dummy",
                "amounts",
                "minconf",
                "comment",
                "subtractfeefrom",
                "replaceable",
                "conf_target",
                "estimate_mode",
                "fee_rate",
                "verbose",
            ],
        ),
        "sendtoaddress" => (
            true,
            &[
                "address",
                "amount",
                "comment",
                "comment_to",
                "subtractfeefromamount",
                "replaceable",
                "conf_target",
                "estimate_mode",
                "avoid_reuse",
                "fee_rate",
                "verbose",
            ],
        ),
        "gettransaction" => (true, &["txid", "include_watchonly", "verbose"]),
        "listtransactions" => (true, &["label", "count", "skip", "include_watchonly"]),
        "listsinceblock" => (
            true,
            &[
                "blockhash",
                "target_confirmations",
                "include_watchonly",
                "include_removed",
            ],
        ),
        "bumpfee" => (true, &["txid", "options"]),
        "abandontransaction" => (true, &["txid"]),
        "walletcreatefundedpsbt" => (
            true,
            &["inputs", "outputs", "locktime", "options", "bip32derivs"],
        ),
        "walletprocesspsbt" => (
            true,
            &["psbt", "sign", "sighashtype", "bip32derivs", "finalize"],
        ),
        m if m.starts_with("standin_") => (false, &[]),
        _ => return None,
    })
}

/// Parses one request object into a [`Call`]; the `id` is returned apart so
/// that even a failed parse can echo it.
pub fn parse_call(req: &J, wallet: Option<String>) -> (J, Result<Call, RpcError>) {
    let id = req.get("id").cloned().unwrap_or(J::Null);
    let Some(_) = req.as_obj() else {
        return (
            J::Null,
            Err(RpcError::new(-32600, "Invalid Request object")),
        );
    };
    let method = match req.get("method") {
        Some(J::Str(m)) => m.clone(),
        None => return (id, Err(RpcError::new(-32600, "Missing method"))),
        Some(_) => return (id, Err(RpcError::new(-32600, "Method must be a string"))),
    };
    let params = match req.get("params") {
        None | Some(J::Null) => Params::default(),
        Some(J::Arr(a)) => Params(a.clone()),
        Some(J::Obj(o)) => match named_to_positional(&method, o) {
            Ok(p) => p,
            Err(e) => return (id, Err(e)),
        },
        Some(_) => {
            return (
                id,
                Err(RpcError::new(-32600, "Params must be an array or object")),
            );
        }
    };
    (
        id,
        Ok(Call {
            method,
            params,
            wallet,
        }),
    )
}

fn named_to_positional(method: &str, o: &[(String, J)]) -> Result<Params, RpcError> {
    let names = method_info(method).map(|(_, n)| n).unwrap_or(&[]);
    let mut out: Vec<J> = Vec::new();
    for (k, v) in o {
        let Some(pos) = names.iter().position(|n| n == k) else {
            return Err(RpcError::new(-8, format!("Unknown named parameter {k}")));
        };
        if out.len() <= pos {
            out.resize(pos + 1, J::Null);
        }
        out[pos] = v.clone();
    }
    Ok(Params(out))
}

/// Runs one call against the state.
pub fn dispatch(st: &mut State, call: &Call) -> RpcResult {
    let Some((needs_wallet, _)) = method_info(&call.method) else {
        return Err(RpcError::new(-32601, "Method not found"));
    };
    if call.method.starts_with("standin_") {
        return control::dispatch(st, call);
    }
    if needs_wallet {
        let name = wallet_for(st, call.wallet.as_deref())?;
        return wallet_rpc::dispatch(st, &name, call);
    }
    match call.method.as_str() {
        "decodepsbt" | "analyzepsbt" | "finalizepsbt" => psbt::dispatch_node(st, call),
        _ => chain_rpc::dispatch(st, call),
    }
}

/// Core's `GetWalletForJSONRPCRequest`.
fn wallet_for(st: &State, uri_wallet: Option<&str>) -> Result<String, RpcError> {
    if let Some(n) = uri_wallet {
        if st.loaded.contains(n) {
            return Ok(n.to_string());
        }
        return Err(RpcError::new(
            -18,
            "Requested wallet does not exist or is not loaded",
        ));
    }
    match st.loaded.len() {
        1 => Ok(st.loaded.iter().next().expect("one").clone()),
        0 => Err(RpcError::new(
            -18,
            "No wallet is loaded. Load a wallet using loadwallet or create a new one with createwallet. (Note: A default wallet is no longer automatically created)",
        )),
        _ => Err(RpcError::new(
            -19,
            "Wallet file not specified (must request wallet RPC through /wallet/<filename> uri-path).",
        )),
    }
}

/// `{"result":…,"error":null,"id":…}` — Core answers 1.0-style envelopes
/// to 2.0 requests too (v23).
pub fn reply(id: J, res: &RpcResult) -> J {
    match res {
        Ok(v) => J::obj()
            .put("result", v.clone())
            .put("error", J::Null)
            .put("id", id)
            .build(),
        Err(e) => J::obj()
            .put("result", J::Null)
            .put(
                "error",
                J::obj()
                    .put("code", J::int(e.code))
                    .put("message", e.message.clone()),
            )
            .put("id", id)
            .build(),
    }
}
