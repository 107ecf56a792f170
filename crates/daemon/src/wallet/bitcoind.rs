//! Bitcoin Core over JSON-RPC: a thin async client.
//!
//! Why not `corepc-types` for the answers: its amount fields are `f64`, and
//! money must never pass through binary floating point here. Answers are
//! decoded into our own small structs whose amounts are read from the JSON
//! number's literal text (`50.00000000` → 5_000_000_000 sat exactly).
//! Requests write amounts as exact 8-decimal literals and always pass
//! `fee_rate` (sat/vB) explicitly, never relying on the node's default.
//!
//! Authentication: cookie (re-read when the node answers 401, which is what
//! a node restart looks like) or user + password file. Wallet calls go to
//! `/wallet/<name>`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{
    Coinbase, FundedPsbt, MempoolAccept, NodeStatus, Output, SignedTx, WalletBackend, WalletError,
    WalletTx,
};
use crate::config::{BitcoindConfig, Network};

#[derive(Debug, Clone)]
enum Credentials {
    Cookie(PathBuf),
    UserPassword {
        user: String,
        password_file: PathBuf,
    },
}

pub struct BitcoindWallet {
    /// Reads, over kept-alive connections.
    client: reqwest::Client,
    /// Calls that change the wallet, each on a fresh connection: a kept-alive
    /// one the node has closed would turn a spend that never left into an
    /// ambiguous one.
    fresh_client: reqwest::Client,
    base_url: String,
    wallet: String,
    credentials: Credentials,
    /// `user:password` as last read (cookie or file).
    cached_auth: Mutex<Option<(String, String)>>,
    next_id: AtomicU64,
}

/// The default cookie path of a node on `network` run by this user.
fn default_cookie(network: Network) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    let base = home.join(".bitcoin");
    match network {
        Network::Mainnet => base.join(".cookie"),
        Network::Testnet => base.join("testnet3/.cookie"),
        Network::Testnet4 => base.join("testnet4/.cookie"),
        Network::Signet => base.join("signet/.cookie"),
        Network::Regtest => base.join("regtest/.cookie"),
    }
}

impl BitcoindWallet {
    pub fn new(
        config: &BitcoindConfig,
        network: Network,
        timeout: Duration,
    ) -> anyhow::Result<BitcoindWallet> {
        let credentials = if !config.user.is_empty() {
            Credentials::UserPassword {
                user: config.user.clone(),
                password_file: PathBuf::from(&config.password_file),
            }
        } else if !config.cookie_file.is_empty() {
            Credentials::Cookie(PathBuf::from(&config.cookie_file))
        } else {
            Credentials::Cookie(default_cookie(network))
        };
        // Both clients time out alike; they differ only in keeping
        // connections.
        let builder = || {
            reqwest::Client::builder()
                // Straight to the node, whatever HTTP(S)_PROXY / ALL_PROXY
                // say: a proxy's 502/504 after it forwarded a spend would
                // read as "the node refused".
                .no_proxy()
                .connect_timeout(Duration::from_secs(5))
                .timeout(timeout)
        };
        let client = builder()
            // Few connections reused; the node's RPC work queue is small.
            .pool_max_idle_per_host(2)
            // Core drops idle connections after -rpcservertimeout (30 s by
            // default): let them go first rather than write into a closed one.
            .pool_idle_timeout(Duration::from_secs(15))
            .build()?;
        let fresh_client = builder().pool_max_idle_per_host(0).build()?;
        Ok(BitcoindWallet {
            client,
            fresh_client,
            base_url: config.url.trim_end_matches('/').to_string(),
            wallet: config.wallet.clone(),
            credentials,
            cached_auth: Mutex::new(None),
            next_id: AtomicU64::new(1),
        })
    }

    fn read_credentials(&self) -> Result<(String, String), WalletError> {
        match &self.credentials {
            Credentials::Cookie(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    WalletError::Unreachable(format!("cannot read cookie {}: {e}", path.display()))
                })?;
                let (user, password) = text.trim().split_once(':').ok_or_else(|| {
                    WalletError::Unreachable(format!("cookie {} is malformed", path.display()))
                })?;
                Ok((user.to_string(), password.to_string()))
            }
            Credentials::UserPassword {
                user,
                password_file,
            } => {
                let password = std::fs::read_to_string(password_file).map_err(|e| {
                    WalletError::Unreachable(format!(
                        "cannot read {}: {e}",
                        password_file.display()
                    ))
                })?;
                Ok((
                    user.clone(),
                    password.trim_end_matches(['\n', '\r']).to_string(),
                ))
            }
        }
    }

    fn credentials(&self, refresh: bool) -> Result<(String, String), WalletError> {
        let mut cached = self.cached_auth.lock().expect("auth lock");
        if refresh || cached.is_none() {
            *cached = Some(self.read_credentials()?);
        }
        Ok(cached.clone().expect("just set"))
    }

    /// One JSON-RPC call; `wallet` selects `/wallet/<name>`.
    async fn call_raw(
        &self,
        wallet: bool,
        method: &str,
        params: Vec<Box<RawValue>>,
    ) -> Result<Box<RawValue>, WalletError> {
        let url = if wallet {
            format!("{}/wallet/{}", self.base_url, self.wallet)
        } else {
            format!("{}/", self.base_url)
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        #[derive(serde::Serialize)]
        struct Request<'a> {
            jsonrpc: &'static str,
            id: u64,
            method: &'a str,
            params: &'a [Box<RawValue>],
        }
        let body = serde_json::to_vec(&Request {
            jsonrpc: "1.0",
            id,
            method,
            params: &params,
        })
        .map_err(|e| WalletError::Protocol(e.to_string()))?;
        let mut refreshed = false;
        let read_only = is_read_only(method);
        let http = if read_only {
            &self.client
        } else {
            &self.fresh_client
        };
        let mut resends = 0;
        loop {
            let (user, password) = self.credentials(false)?;
            let sent = http
                .post(&url)
                .basic_auth(user, Some(password))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(e) if e.is_connect() => return Err(WalletError::Unreachable(e.to_string())),
                Err(e) if e.is_builder() => return Err(WalletError::Unreachable(e.to_string())),
                // A kept-alive connection the node closed (it restarted)
                // fails the next request. A call that changes nothing is
                // sent again (each pooled connection may be stale); a
                // spending call went out on a fresh connection, so its
                // failure is ambiguous and goes to reconciliation.
                Err(e) if !e.is_timeout() && resends < 2 && read_only => {
                    resends += 1;
                    tracing::debug!(method, "node connection lost; sending the read once more");
                    continue;
                }
                // Timed out or lost after the request went out: the node may
                // have executed it.
                Err(e) => return Err(WalletError::Ambiguous(format!("{method}: {e}"))),
            };
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::FORBIDDEN
            {
                // A restarted node writes a new cookie: read it once more.
                if !refreshed {
                    refreshed = true;
                    self.credentials(true)?;
                    continue;
                }
                return Err(WalletError::Unreachable(format!(
                    "node refused the credentials (HTTP {status})"
                )));
            }
            let text = match response.text().await {
                Ok(text) => text,
                Err(e) => {
                    return Err(WalletError::Ambiguous(format!(
                        "{method}: reading the answer: {e}"
                    )));
                }
            };
            #[derive(Deserialize)]
            struct RpcError {
                code: i64,
                message: String,
            }
            #[derive(Deserialize)]
            struct Envelope {
                result: Option<Box<RawValue>>,
                error: Option<RpcError>,
            }
            let envelope: Envelope = match serde_json::from_str(&text) {
                Ok(envelope) => envelope,
                // Core answers 503 without a JSON body when its work queue
                // is full: the request was not executed.
                Err(_) if status == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    return Err(WalletError::Unreachable(format!(
                        "{method}: node busy (HTTP 503)"
                    )));
                }
                Err(_) if !status.is_success() && read_only => {
                    return Err(WalletError::Unreachable(format!(
                        "{method}: HTTP {status} without a JSON-RPC answer"
                    )));
                }
                // Core itself answers errors in JSON: whoever answered this
                // may have passed the spend on first.
                Err(_) if !status.is_success() => {
                    return Err(WalletError::Ambiguous(format!(
                        "{method}: HTTP {status} without a JSON-RPC answer"
                    )));
                }
                Err(e) => return Err(WalletError::Protocol(format!("{method}: {e}"))),
            };
            if let Some(error) = envelope.error {
                return Err(WalletError::Rpc {
                    code: error.code,
                    message: error.message,
                });
            }
            return envelope.result.ok_or_else(|| {
                WalletError::Protocol(format!("{method}: answer has neither result nor error"))
            });
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        wallet: bool,
        method: &str,
        params: Vec<Box<RawValue>>,
    ) -> Result<T, WalletError> {
        let raw = self.call_raw(wallet, method, params).await?;
        serde_json::from_str(raw.get()).map_err(|e| WalletError::Protocol(format!("{method}: {e}")))
    }

    /// `{address: amount}` with amounts as exact 8-decimal JSON numbers.
    fn amounts_object(outputs: &[Output]) -> Result<Box<RawValue>, WalletError> {
        let mut text = String::from("{");
        for (i, output) in outputs.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(
                &serde_json::to_string(&output.address)
                    .map_err(|e| WalletError::Protocol(e.to_string()))?,
            );
            text.push(':');
            text.push_str(btc_number(output.amount_sat)?.get());
        }
        text.push('}');
        RawValue::from_string(text).map_err(|e| WalletError::Protocol(e.to_string()))
    }

    /// `walletcreatefundedpsbt` paying `outputs` in order, from confirmed
    /// coins, at an explicit fee rate.
    async fn fund_psbt(
        &self,
        outputs: &[Output],
        fee_rate_sat_vb: u64,
        lock_unspents: bool,
    ) -> Result<Funded, WalletError> {
        // Outputs as an array of one-key objects keeps their order.
        let mut outs = String::from("[");
        for (i, output) in outputs.iter().enumerate() {
            if i > 0 {
                outs.push(',');
            }
            outs.push_str(Self::amounts_object(std::slice::from_ref(output))?.get());
        }
        outs.push(']');
        let outs = RawValue::from_string(outs).map_err(|e| WalletError::Protocol(e.to_string()))?;
        // minconf 1: a batch never spends unconfirmed change
        // (walletcreatefundedpsbt honours it; sendmany ignores its own).
        let options = json!({
            "fee_rate": fee_rate_sat_vb,
            "lockUnspents": lock_unspents,
            "replaceable": true,
            "minconf": 1,
            "include_unsafe": false,
        });
        self.call(
            true,
            "walletcreatefundedpsbt",
            vec![p(&Vec::<Value>::new()), outs, p(&0), p(&options), p(&true)],
        )
        .await
    }

    /// A wallet call that changes nothing (the read-only list below), for
    /// audits outside the payout state machine (`pooldeskd verify --wallet`).
    /// Any other method is refused without being sent.
    pub async fn read_only_call(
        &self,
        method: &str,
        params: Vec<Box<RawValue>>,
    ) -> Result<Box<RawValue>, WalletError> {
        if !is_read_only(method) {
            return Err(WalletError::Protocol(format!(
                "{method} is not a read-only call"
            )));
        }
        self.call_raw(true, method, params).await
    }

    async fn in_mempool(&self, txid: &str) -> Result<bool, WalletError> {
        match self.call_raw(false, "getmempoolentry", vec![p(txid)]).await {
            Ok(_) => Ok(true),
            Err(WalletError::Rpc { code: -5, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Calls that neither spend, lock coins nor write to the wallet: safe to send
/// again when the first attempt's fate is unknown.
fn is_read_only(method: &str) -> bool {
    matches!(
        method,
        "getblockchaininfo"
            | "getbalances"
            | "estimatesmartfee"
            | "getaddressinfo"
            | "listtransactions"
            | "gettransaction"
            | "getmempoolentry"
            | "listunspent"
            | "finalizepsbt"
            | "testmempoolaccept"
    )
}

/// A satoshi amount as an exact JSON number literal in BTC (`0.00010000`),
/// written as text: never through an `f64`.
fn btc_number(sat: i64) -> Result<Box<RawValue>, WalletError> {
    RawValue::from_string(pooldesk_proto::amount::format_btc(sat))
        .map_err(|e| WalletError::Protocol(e.to_string()))
}

/// Any serializable parameter as raw JSON.
fn p<T: serde::Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("parameters serialize")
}

/// Reads a signed BTC amount (Core writes `-0.00300000`) exactly, to sat.
fn signed_sat<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let raw: Box<RawValue> = Deserialize::deserialize(d)?;
    parse_signed_sat(raw.get()).map_err(serde::de::Error::custom)
}

fn opt_signed_sat<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let raw: Option<Box<RawValue>> = Deserialize::deserialize(d)?;
    raw.map(|r| parse_signed_sat(r.get()).map_err(serde::de::Error::custom))
        .transpose()
}

pub fn parse_signed_sat(text: &str) -> Result<i64, String> {
    let text = text.trim().trim_matches('"');
    match text.strip_prefix('-') {
        Some(rest) => pooldesk_proto::amount::parse_btc_sat(rest)
            .map(|v| -v)
            .map_err(|e| e.to_string()),
        None => pooldesk_proto::amount::parse_btc_sat(text).map_err(|e| e.to_string()),
    }
}

#[derive(Deserialize)]
struct BlockchainInfo {
    chain: String,
    blocks: u64,
    #[serde(default)]
    difficulty: f64,
}

#[derive(Deserialize)]
struct SinceBlock {
    transactions: Vec<SinceBlockEntry>,
}

#[derive(Deserialize)]
struct SinceBlockEntry {
    category: String,
    txid: String,
    #[serde(deserialize_with = "signed_sat")]
    amount: i64,
    #[serde(default)]
    confirmations: i64,
    #[serde(default)]
    blockhash: Option<String>,
    #[serde(default)]
    blockheight: Option<i64>,
}

#[derive(Deserialize)]
struct Balances {
    mine: MineBalances,
}

#[derive(Deserialize)]
struct MineBalances {
    #[serde(deserialize_with = "signed_sat")]
    trusted: i64,
    #[serde(deserialize_with = "signed_sat")]
    untrusted_pending: i64,
}

#[derive(Deserialize)]
struct FeeEstimate {
    #[serde(default, deserialize_with = "opt_signed_sat")]
    feerate: Option<i64>,
}

#[derive(Deserialize)]
struct Unspent {
    #[serde(deserialize_with = "signed_sat")]
    amount: i64,
    #[serde(default)]
    safe: bool,
}

#[derive(Deserialize)]
struct AddressInfo {
    #[serde(default)]
    ismine: bool,
}

#[derive(Deserialize)]
struct ListEntry {
    #[serde(default)]
    txid: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(default)]
    address: Option<String>,
    category: String,
    #[serde(deserialize_with = "signed_sat")]
    amount: i64,
    #[serde(default)]
    abandoned: bool,
}

#[derive(Deserialize)]
struct Transaction {
    txid: String,
    #[serde(default, deserialize_with = "opt_signed_sat")]
    fee: Option<i64>,
    confirmations: i64,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    replaced_by_txid: Option<String>,
    #[serde(default)]
    replaces_txid: Option<String>,
    #[serde(default)]
    walletconflicts: Vec<String>,
    #[serde(default)]
    details: Vec<Detail>,
    #[serde(default)]
    hex: Option<String>,
}

#[derive(Deserialize)]
struct Funded {
    psbt: String,
    #[serde(deserialize_with = "signed_sat")]
    fee: i64,
    changepos: i64,
}

#[derive(Deserialize)]
struct Processed {
    psbt: String,
    complete: bool,
    #[serde(default)]
    hex: Option<String>,
}

/// `txid:vout` strings as `lockunspent`'s `[{txid, vout}]`.
fn outpoint_list(outpoints: &[String]) -> Vec<Value> {
    outpoints
        .iter()
        .filter_map(|o| {
            let (txid, vout) = o.split_once(':')?;
            Some(json!({"txid": txid, "vout": vout.parse::<u32>().ok()?}))
        })
        .collect()
}

#[derive(Deserialize)]
struct Finalized {
    #[serde(default)]
    hex: Option<String>,
    complete: bool,
}

#[derive(Deserialize)]
struct Accept {
    allowed: bool,
    #[serde(rename = "reject-reason", default)]
    reject_reason: Option<String>,
}

impl WalletBackend for BitcoindWallet {
    fn coinbases(&self) -> BoxFuture<'_, Result<Option<Vec<Coinbase>>, WalletError>> {
        Box::pin(async move {
            // No block hash: every wallet transaction, including coinbases
            // of blocks that left the best chain (category `orphan`).
            let since: SinceBlock = self.call(true, "listsinceblock", vec![]).await?;
            let mut by_txid: std::collections::BTreeMap<String, Coinbase> = Default::default();
            for entry in since.transactions {
                if !matches!(entry.category.as_str(), "generate" | "immature" | "orphan") {
                    continue;
                }
                let coinbase = by_txid
                    .entry(entry.txid.clone())
                    .or_insert_with(|| Coinbase {
                        txid: entry.txid.clone(),
                        block_hash: entry.blockhash.clone(),
                        height: entry.blockheight,
                        confirmations: entry.confirmations,
                        orphan: entry.category == "orphan",
                        amount_sat: 0,
                    });
                coinbase.amount_sat += entry.amount;
            }
            Ok(Some(by_txid.into_values().collect()))
        })
    }

    fn network_difficulty(&self) -> BoxFuture<'_, Result<Option<f64>, WalletError>> {
        Box::pin(async move {
            let info: BlockchainInfo = self.call(false, "getblockchaininfo", vec![]).await?;
            Ok(Some(info.difficulty))
        })
    }

    fn kind(&self) -> &'static str {
        "bitcoind"
    }

    fn status(&self) -> BoxFuture<'_, Result<NodeStatus, WalletError>> {
        Box::pin(async move {
            let info: BlockchainInfo = self.call(false, "getblockchaininfo", vec![]).await?;
            // getbalances, not getwalletinfo: Core 30 dropped the balance
            // fields from getwalletinfo.
            let balances: Balances = self.call(true, "getbalances", vec![]).await?;
            Ok(NodeStatus {
                chain: info.chain,
                blocks: info.blocks,
                spendable_sat: balances.mine.trusted,
                pending_sat: balances.mine.untrusted_pending,
            })
        })
    }

    fn estimate_fee_rate(&self) -> BoxFuture<'_, Result<Option<u64>, WalletError>> {
        Box::pin(async move {
            let estimate: FeeEstimate = self.call(false, "estimatesmartfee", vec![p(&2)]).await?;
            // BTC per kvB → sat per vB, rounded up.
            Ok(estimate
                .feerate
                .filter(|f| *f > 0)
                .map(|sat_per_kvb| (sat_per_kvb as u64).div_ceil(1000)))
        })
    }

    fn new_address(&self) -> BoxFuture<'_, Result<String, WalletError>> {
        Box::pin(async move {
            self.call(true, "getnewaddress", vec![p(""), p("bech32")])
                .await
        })
    }

    fn is_mine<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<bool, WalletError>> {
        Box::pin(async move {
            match self
                .call::<AddressInfo>(true, "getaddressinfo", vec![p(address)])
                .await
            {
                Ok(info) => Ok(info.ismine),
                Err(WalletError::Rpc { code: -5, .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    fn confirmed_coins(&self) -> BoxFuture<'_, Result<Option<Vec<i64>>, WalletError>> {
        Box::pin(async move {
            // minconf 1, any depth, all addresses, safe coins only; locked
            // coins (a cold batch's inputs) are never listed.
            let coins: Vec<Unspent> = self
                .call(
                    true,
                    "listunspent",
                    vec![p(&1), p(&9_999_999), p(&Vec::<String>::new()), p(&false)],
                )
                .await?;
            Ok(Some(
                coins
                    .into_iter()
                    .filter(|c| c.safe)
                    .map(|c| c.amount)
                    .collect(),
            ))
        })
    }

    fn send_many<'a>(
        &'a self,
        outputs: &'a [Output],
        tag: &'a str,
        fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<String, WalletError>> {
        Box::pin(async move {
            let amounts = Self::amounts_object(outputs)?;
            // dummy, amounts, minconf, comment (the batch tag), subtractfeefrom,
            // replaceable, conf_target (null: we pass fee_rate), estimate_mode, fee_rate
            let params = vec![
                p(""),
                amounts,
                p(&1),
                p(tag),
                p(&Vec::<String>::new()),
                p(&true),
                p(&Value::Null),
                p("unset"),
                p(&fee_rate_sat_vb),
            ];
            self.call(true, "sendmany", params).await
        })
    }

    fn find_by_tag<'a>(
        &'a self,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<WalletTx>, WalletError>> {
        Box::pin(async move {
            const PAGE: u64 = 500;
            const MAX_PAGES: u64 = 40;
            let mut txids: Vec<String> = Vec::new();
            for page in 0..MAX_PAGES {
                let entries: Vec<ListEntry> = self
                    .call(
                        true,
                        "listtransactions",
                        vec![p("*"), p(&PAGE), p(&(page * PAGE)), p(&true)],
                    )
                    .await?;
                for entry in &entries {
                    if entry.comment.as_deref() == Some(tag)
                        && entry.category.as_deref() == Some("send")
                        && let Some(txid) = &entry.txid
                        && !txids.contains(txid)
                    {
                        txids.push(txid.clone());
                    }
                }
                if (entries.len() as u64) < PAGE {
                    break;
                }
            }
            let mut found = Vec::with_capacity(txids.len());
            for txid in txids {
                if let Some(tx) = self.transaction(&txid).await? {
                    found.push(tx);
                }
            }
            Ok(found)
        })
    }

    fn transaction<'a>(
        &'a self,
        txid: &'a str,
    ) -> BoxFuture<'a, Result<Option<WalletTx>, WalletError>> {
        Box::pin(async move {
            let tx: Transaction = match self.call(true, "gettransaction", vec![p(txid)]).await {
                Ok(tx) => tx,
                Err(WalletError::Rpc { code: -5, .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let in_mempool_or_chain = if tx.confirmations > 0 {
                true
            } else if tx.confirmations == 0 {
                self.in_mempool(&tx.txid).await?
            } else {
                false
            };
            let abandoned = tx.details.iter().any(|d| d.abandoned);
            let sends = tx
                .details
                .iter()
                .filter(|d| d.category == "send")
                .map(|d| Output {
                    address: d.address.clone().unwrap_or_default(),
                    amount_sat: -d.amount,
                })
                .collect();
            Ok(Some(WalletTx {
                txid: tx.txid,
                fee_sat: tx.fee,
                confirmations: tx.confirmations,
                comment: tx.comment,
                replaced_by_txid: tx.replaced_by_txid,
                replaces_txid: tx.replaces_txid,
                wallet_conflicts: tx.walletconflicts,
                in_mempool_or_chain,
                abandoned,
                sends,
                hex: tx.hex,
            }))
        })
    }

    fn create_psbt<'a>(
        &'a self,
        outputs: &'a [Output],
        fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<FundedPsbt, WalletError>> {
        Box::pin(async move {
            // No lock here: the caller locks the inputs persistently once
            // the PSBT is recorded (a lock taken now would outlive a crash
            // before that record, with nothing naming it).
            let funded = self.fund_psbt(outputs, fee_rate_sat_vb, false).await?;
            Ok(FundedPsbt {
                psbt_base64: funded.psbt,
                fee_sat: funded.fee,
                change_index: u32::try_from(funded.changepos).ok(),
            })
        })
    }

    fn unlock<'a>(&'a self, outpoints: &'a [String]) -> BoxFuture<'a, Result<(), WalletError>> {
        Box::pin(async move {
            let list = outpoint_list(outpoints);
            if list.is_empty() {
                return Ok(());
            }
            // Unlocking clears persistent and in-memory locks alike; a coin
            // already spent or unlocked is not an error worth stopping for.
            match self
                .call::<bool>(true, "lockunspent", vec![p(&true), p(&list)])
                .await
            {
                Ok(_) | Err(WalletError::Rpc { code: -8, .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn lock<'a>(&'a self, outpoints: &'a [String]) -> BoxFuture<'a, Result<(), WalletError>> {
        Box::pin(async move {
            let list = outpoint_list(outpoints);
            if list.is_empty() {
                return Ok(());
            }
            // persistent: written to the wallet database, so the inputs stay
            // reserved when the node restarts.
            let _: bool = self
                .call(true, "lockunspent", vec![p(&false), p(&list), p(&true)])
                .await?;
            Ok(())
        })
    }

    fn fund_and_sign<'a>(
        &'a self,
        outputs: &'a [Output],
        fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<Option<SignedTx>, WalletError>> {
        Box::pin(async move {
            // lockUnspents false: a lock taken here would outlive a crash
            // before the batch records its inputs, with nothing naming it.
            // The inputs are locked (persistently) right after the commit.
            let funded = self.fund_psbt(outputs, fee_rate_sat_vb, false).await?;
            let processed: Processed = self
                .call(
                    true,
                    "walletprocesspsbt",
                    vec![p(&funded.psbt), p(&true), p("ALL"), p(&true), p(&true)],
                )
                .await?;
            let hex = match (processed.complete, processed.hex) {
                (true, Some(hex)) => hex,
                (true, None) => self
                    .finalize_psbt(&processed.psbt)
                    .await?
                    .ok_or_else(|| WalletError::Protocol("finalizepsbt: not complete".into()))?,
                (false, _) => {
                    return Err(WalletError::Rpc {
                        code: -4,
                        message: "the wallet could not sign every input (no private keys?)".into(),
                    });
                }
            };
            let tx: bitcoin::Transaction = bitcoin::consensus::encode::deserialize_hex(&hex)
                .map_err(|e| WalletError::Protocol(format!("signed transaction: {e}")))?;
            Ok(Some(SignedTx {
                txid: tx.compute_txid().to_string(),
                inputs: tx
                    .input
                    .iter()
                    .map(|i| i.previous_output.to_string())
                    .collect(),
                hex,
                fee_sat: funded.fee,
            }))
        })
    }

    fn finalize_psbt<'a>(
        &'a self,
        psbt_base64: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, WalletError>> {
        Box::pin(async move {
            let finalized: Finalized = self
                .call(false, "finalizepsbt", vec![p(psbt_base64)])
                .await?;
            Ok(if finalized.complete {
                finalized.hex
            } else {
                None
            })
        })
    }

    fn test_mempool_accept<'a>(
        &'a self,
        tx_hex: &'a str,
    ) -> BoxFuture<'a, Result<MempoolAccept, WalletError>> {
        Box::pin(async move {
            let results: Vec<Accept> = self
                .call(false, "testmempoolaccept", vec![p(&[tx_hex])])
                .await?;
            let first = results
                .into_iter()
                .next()
                .ok_or_else(|| WalletError::Protocol("testmempoolaccept: empty answer".into()))?;
            Ok(MempoolAccept {
                allowed: first.allowed,
                reject_reason: first.reject_reason,
            })
        })
    }

    fn broadcast<'a>(&'a self, tx_hex: &'a str) -> BoxFuture<'a, Result<String, WalletError>> {
        Box::pin(async move {
            match self
                .call::<String>(false, "sendrawtransaction", vec![p(tx_hex)])
                .await
            {
                Ok(txid) => Ok(txid),
                // Already there: the broadcast we wanted has happened.
                Err(WalletError::Rpc { code: -27, .. }) => {
                    let tx: bitcoin::Transaction =
                        bitcoin::consensus::encode::deserialize_hex(tx_hex)
                            .map_err(|e| WalletError::Protocol(e.to_string()))?;
                    Ok(tx.compute_txid().to_string())
                }
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_amounts_are_exact() {
        assert_eq!(parse_signed_sat("-0.00300000"), Ok(-300_000));
        assert_eq!(parse_signed_sat("50.00000000"), Ok(5_000_000_000));
        assert_eq!(parse_signed_sat("0.00000392"), Ok(392));
        assert!(parse_signed_sat("0.000000001").is_err());
    }

    #[test]
    fn amounts_are_written_as_exact_literals() {
        assert_eq!(btc_number(10_000).unwrap().get(), "0.00010000");
        assert_eq!(
            btc_number(2_099_999_999_999_999).unwrap().get(),
            "20999999.99999999"
        );
        let outputs = [Output {
            address: "bcrt1qx".into(),
            amount_sat: 1,
        }];
        assert_eq!(
            BitcoindWallet::amounts_object(&outputs).unwrap().get(),
            "{\"bcrt1qx\":0.00000001}"
        );
    }
}
