//! Configuration: embedded defaults, then one TOML file (`--config`), then
//! the environment (`POOLDESK_<SECTION>_<KEY>` and the seed's variable
//! names), then the command line. Unknown keys and bad values stop start-up
//! with one line naming the key: a typo in a payout policy must never be
//! silently ignored.
//!
//! Secrets are not part of this struct's file form (see [`crate::secrets`]):
//! the file only names `*_file` paths.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use pooldesk_proto::amount;

/// The whole configuration. Field names are the TOML keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub network: Network,
    /// `bitcoind` (real node over JSON-RPC) or `simulated` (demo and tests).
    pub wallet_backend: WalletBackendKind,
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub control: ControlConfig,
    pub store: StoreConfig,
    pub ingest: IngestConfig,
    /// `POST /api/v2/shares` bounds (src/shares).
    pub shares: crate::shares::SharesConfig,
    /// `pooldeskd bridge ckpool` (src/bridge); unused by the daemon.
    pub bridge: crate::bridge::BridgeConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub payouts: PayoutsConfig,
    pub faucet: FaucetConfig,
    pub bitcoind: BitcoindConfig,
    pub secrets: SecretsConfig,
    pub log: LogConfig,
    pub demo: DemoConfig,
    /// How miners are paid: per share, or from blocks (src/blocks).
    pub accounting: AccountingConfig,
}

/// `[accounting]`: the payout scheme (issue 14). The scheme in force when a
/// block is first seen is recorded with it and pays it, so a change takes
/// effect at the next block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountingConfig {
    /// `pps` (every share credited as it arrives; the default), `pplns` or
    /// `solo` (miners are paid from the pool wallet's coinbases at maturity).
    pub scheme: pooldesk_proto::model::PayoutScheme,
    /// PPLNS window = factor × network difficulty, in share work
    /// (`shares × difficulty`). TIDES is 8.
    pub pplns_factor: u64,
    /// Smallest PPLNS window in share work (test networks, where network
    /// difficulty is tiny).
    pub pplns_min_window_work: u64,
    /// The pool's fee on each block, in basis points (0..=10000).
    pub pool_fee_bps: u32,
    /// Seconds between looks at the wallet's coinbases.
    pub blocks_poll_s: u64,
}

impl Default for AccountingConfig {
    fn default() -> Self {
        AccountingConfig {
            scheme: pooldesk_proto::model::PayoutScheme::Pps,
            pplns_factor: 2,
            pplns_min_window_work: 0,
            pool_fee_bps: 0,
            blocks_poll_s: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Regtest,
    Signet,
    Testnet,
    Testnet4,
    Mainnet,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Regtest => "regtest",
            Network::Signet => "signet",
            Network::Testnet => "testnet",
            Network::Testnet4 => "testnet4",
            Network::Mainnet => "mainnet",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalletBackendKind {
    Bitcoind,
    Simulated,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` is believed (exact addresses).
    pub trusted_proxies: Vec<IpAddr>,
    pub max_body_bytes: usize,
    /// Requests in flight across all connections; past it new requests
    /// wait (bounded by the kernel's accept queue), never unbounded memory.
    pub max_concurrent_requests: usize,
    /// Concurrent SSE streams; past it `/api/stream` answers 503.
    pub max_sse_streams: usize,
    /// Events kept for `Last-Event-ID` resume.
    pub sse_replay_events: usize,
    /// Requests per minute per client IP on public endpoints.
    pub per_ip_per_minute: u32,
    /// Serve `/metrics` to everyone (`true`) or only to loopback peers.
    pub metrics_public: bool,
    // ---- transport limits (issue 10) ----
    /// Seconds a client has to send a whole request body; past it, 408.
    pub body_timeout_s: u64,
    /// Open connections per TCP peer (IPv6 per /64); trusted proxies exempt.
    pub max_connections_per_ip: usize,
    /// Live `/api/stream` streams per client IP (IPv6 per /64).
    pub max_sse_streams_per_ip: usize,
    /// Seconds a stream lives before the server ends it (the client
    /// reconnects with `Last-Event-ID`).
    pub sse_max_lifetime_s: u64,
    /// Origins (`https://pool.example`) allowed on state-changing requests
    /// besides the request's own `Host`.
    pub allowed_origins: Vec<String>,
    /// Per client IP per minute: `/v1/user/profile/*`, `/api/miners/*`.
    pub profile_per_ip_per_minute: u32,
    /// Per client IP per minute: `/api/stream` opens.
    pub stream_per_ip_per_minute: u32,
    /// Per client IP per minute: faucet challenges and claims.
    pub faucet_per_ip_per_minute: u32,
    /// Per client IP per minute: `/v1/user/register`.
    pub register_per_ip_per_minute: u32,
    /// Pool ingest: requests per minute per pool key (not per IP).
    pub ingest_per_key_per_minute: u32,
    /// Pool ingest: failed authentications per client IP per minute.
    pub ingest_auth_failures_per_ip_per_minute: u32,
    /// Block explorer page of a transaction, `{txid}` replaced; the PWA
    /// links payouts to it. Unset: mempool.space for mainnet, testnet,
    /// testnet4 and signet, none for regtest; `""` turns links off.
    pub explorer_tx_url: Option<String>,
}

impl HttpConfig {
    /// The explorer template in effect for `network` (`None`: plain text).
    pub fn explorer_tx_url(&self, network: Network) -> Option<String> {
        match &self.explorer_tx_url {
            Some(url) if url.is_empty() => None,
            Some(url) => Some(url.clone()),
            None => match network {
                Network::Mainnet => Some("https://mempool.space/tx/{txid}".into()),
                Network::Testnet => Some("https://mempool.space/testnet/tx/{txid}".into()),
                Network::Testnet4 => Some("https://mempool.space/testnet4/tx/{txid}".into()),
                Network::Signet => Some("https://mempool.space/signet/tx/{txid}".into()),
                Network::Regtest => None,
            },
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Socket path; empty means `$RUNTIME_DIRECTORY/control.sock`, else
    /// `<data_dir>/control.sock`.
    pub socket: Option<PathBuf>,
    /// Uids allowed besides root and the daemon's own uid.
    pub allowed_uids: Vec<u32>,
    /// Group whose members may connect; the socket becomes 0660 owned by it.
    pub admin_group: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub read_connections: usize,
    /// Bound on queued writes; past it writers wait (back-pressure).
    pub write_queue: usize,
    /// Most jobs folded into one group commit.
    pub max_batch: usize,
    /// `pipelined` (fsync on a second thread before answering) or `full`
    /// (SQLite's synchronous=FULL). Both acknowledge only durable writes.
    pub durability: crate::store::Durability,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub allow_unprotected_reports: bool,
    pub timestamp_tolerance_s: i64,
    /// BTC per difficulty-1 share (`MINING_PAYOUT_RATE_PER_SHARE`).
    pub rate_per_share_btc: BtcMsat,
    /// BTC per unit of `work_score` (personal-key block reports).
    pub rate_per_work_btc: BtcMsat,
    pub retention_days: u32,
    /// Largest `shares × difficulty` accepted in one report.
    pub max_work_per_report: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Open,
    Admin,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub registration: Registration,
    pub allow_shared: bool,
    /// Open registrations per client IP per hour.
    pub registrations_per_ip_per_hour: u32,
    /// Ids created by open (self) registration must start with this, and
    /// pool reports may not use it: self-registered ids and the ids the
    /// pool reports are separate namespaces, so nobody can register an id
    /// before the pool first reports it and collect its credits.
    pub self_registration_prefix: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Signed block submissions per user per minute (seed: 10).
    pub blocks_per_minute: u32,
    /// Per-tier overrides of `blocks_per_minute`.
    pub tiers: BTreeMap<String, u32>,
    /// Signed requests other than block submissions, per user per minute.
    pub signed_per_minute: u32,
    /// Most one block report (work a miner reports with its own key) may
    /// credit; above it the report is refused (422 `credit_limit`).
    pub block_credit_max_btc: BtcMsat,
    /// Most block reports may credit one miner in any 24 hours.
    pub block_credit_daily_btc: BtcMsat,
    /// Per-tier overrides of `block_credit_max_btc`.
    pub tier_block_credit_max_btc: BTreeMap<String, BtcMsat>,
    /// Per-tier overrides of `block_credit_daily_btc`.
    pub tier_block_credit_daily_btc: BTreeMap<String, BtcMsat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayoutMode {
    Hot,
    Cold,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PayoutsConfig {
    pub mode: PayoutMode,
    pub min_payout_btc: BtcSat,
    pub auto_approve_below_btc: BtcSat,
    pub daily_cap_btc: BtcSat,
    pub max_fee_rate_sat_vb: u64,
    /// Fee rate used when the node has no estimate (regtest).
    pub fallback_fee_rate_sat_vb: u64,
    pub new_address_delay_s: u64,
    pub max_outputs_per_batch: usize,
    pub batch_interval_s: u64,
    /// Create withdrawals automatically for miners over their threshold.
    pub auto_withdraw: bool,
    /// Largest fee accepted on a signed PSBT, as a share of the amount sent
    /// (percent); above it the finalize step refuses.
    pub max_fee_percent: u64,
    /// Depth (confirmations) after which a payout is final: followed
    /// through reorgs until then. Unset: 6 on mainnet, testnet and signet,
    /// 1 on regtest ([`PayoutsConfig::depth`]). Also the depth a
    /// conflicting spend needs before Retry/Failed may pay again.
    pub confirmations: Option<u32>,
    /// How long an RPC may take before it is treated as ambiguous.
    pub rpc_timeout_s: u64,
}

impl PayoutsConfig {
    /// The configured depth, else the network's default: 1 on regtest
    /// (blocks are free), 6 wherever a reorg costs real work.
    pub fn depth(&self, network: Network) -> u32 {
        self.confirmations.unwrap_or(match network {
            Network::Regtest => 1,
            Network::Signet | Network::Testnet | Network::Testnet4 | Network::Mainnet => 6,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaucetConfig {
    pub enabled: bool,
    pub amount_btc: BtcSat,
    pub cooldown_s: u64,
    pub daily_budget_btc: BtcSat,
    pub difficulty_bits: u32,
    pub batch_interval_s: u64,
    pub challenge_ttl_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BitcoindConfig {
    pub url: String,
    /// Cookie file (`.cookie` in the node's datadir); re-read when the node
    /// restarts. Empty with an empty `user` means: look in the default place.
    pub cookie_file: String,
    pub user: String,
    pub password_file: String,
    pub wallet: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// File holding the pool-report HMAC secret (`REPORT_SHARED_SECRET`).
    pub report_secret_file: Option<PathBuf>,
    /// File holding the admin API key (`MINING_SERVER_API_KEY`).
    pub admin_api_key_file: Option<PathBuf>,
    /// File holding the master key personal API keys are derived from.
    pub master_key_file: Option<PathBuf>,
    /// File holding the shared development secret of `auth.allow_shared`
    /// (never the report secret: a shared-key miner must not be able to
    /// sign pool reports).
    pub shared_secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info,pooldeskd=debug`.
    pub filter: String,
    /// `text`, `json`, or `journald`; `auto` picks journald under systemd.
    pub format: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Set by `--demo`: simulated wallet and simulated workers.
    pub enabled: bool,
    pub miners: u32,
    pub workers_per_miner: u32,
}

// ---- defaults (the embedded defaults of DESIGN.md section 11) ------------

impl Default for Config {
    fn default() -> Self {
        Config {
            network: Network::Regtest,
            wallet_backend: WalletBackendKind::Bitcoind,
            data_dir: PathBuf::from("./pooldesk-data"),
            http: HttpConfig::default(),
            control: ControlConfig::default(),
            store: StoreConfig::default(),
            ingest: IngestConfig::default(),
            shares: Default::default(),
            bridge: Default::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            payouts: PayoutsConfig::default(),
            faucet: FaucetConfig::default(),
            bitcoind: BitcoindConfig::default(),
            secrets: SecretsConfig::default(),
            log: LogConfig::default(),
            demo: DemoConfig::default(),
            accounting: AccountingConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".parse().expect("static address"),
            trusted_proxies: Vec::new(),
            max_body_bytes: 65536,
            max_concurrent_requests: 4096,
            max_sse_streams: 20_000,
            sse_replay_events: 4096,
            per_ip_per_minute: 3000,
            metrics_public: false,
            body_timeout_s: 10,
            max_connections_per_ip: 128,
            max_sse_streams_per_ip: 8,
            sse_max_lifetime_s: 3600,
            allowed_origins: Vec::new(),
            profile_per_ip_per_minute: 120,
            stream_per_ip_per_minute: 30,
            faucet_per_ip_per_minute: 10,
            register_per_ip_per_minute: 10,
            ingest_per_key_per_minute: 600_000,
            ingest_auth_failures_per_ip_per_minute: 30,
            explorer_tx_url: None,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            read_connections: 4,
            write_queue: 65536,
            max_batch: 4096,
            durability: crate::store::Durability::Pipelined,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            allow_unprotected_reports: false,
            timestamp_tolerance_s: 300,
            rate_per_share_btc: BtcMsat::parse("0.00000001").expect("static"),
            rate_per_work_btc: BtcMsat::parse("0.00000100").expect("static"),
            retention_days: 30,
            max_work_per_report: 1 << 48,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            registration: Registration::Admin,
            allow_shared: false,
            registrations_per_ip_per_hour: 20,
            self_registration_prefix: "self.".into(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            blocks_per_minute: 10,
            tiers: BTreeMap::new(),
            signed_per_minute: 120,
            block_credit_max_btc: BtcMsat::parse("0.0001").expect("static"),
            block_credit_daily_btc: BtcMsat::parse("0.001").expect("static"),
            tier_block_credit_max_btc: BTreeMap::new(),
            tier_block_credit_daily_btc: BTreeMap::new(),
        }
    }
}

impl Default for PayoutsConfig {
    fn default() -> Self {
        PayoutsConfig {
            mode: PayoutMode::Hot,
            min_payout_btc: BtcSat::parse("0.0001").expect("static"),
            auto_approve_below_btc: BtcSat(0),
            daily_cap_btc: BtcSat::parse("1").expect("static"),
            max_fee_rate_sat_vb: 50,
            fallback_fee_rate_sat_vb: 2,
            new_address_delay_s: 86400,
            max_outputs_per_batch: 200,
            batch_interval_s: 60,
            auto_withdraw: false,
            max_fee_percent: 10,
            confirmations: None,
            rpc_timeout_s: 30,
        }
    }
}

impl Default for FaucetConfig {
    fn default() -> Self {
        FaucetConfig {
            enabled: true,
            amount_btc: BtcSat::parse("0.0001").expect("static"),
            cooldown_s: 3600,
            daily_budget_btc: BtcSat::parse("0.1").expect("static"),
            difficulty_bits: 20,
            batch_interval_s: 30,
            challenge_ttl_s: 600,
        }
    }
}

impl Default for BitcoindConfig {
    fn default() -> Self {
        BitcoindConfig {
            url: "http://127.0.0.1:18443".into(),
            cookie_file: String::new(),
            user: String::new(),
            password_file: String::new(),
            wallet: "pool".into(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "info".into(),
            format: "auto".into(),
        }
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            enabled: false,
            miners: 6,
            workers_per_miner: 3,
        }
    }
}

// ---- exact BTC amounts in the config -------------------------------------

/// A BTC amount in whole satoshis, written in TOML as a string
/// (`"0.0001"`) or an integer number of BTC. TOML floats are refused:
/// they would pass through binary floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtcSat(pub i64);

impl BtcSat {
    pub fn parse(text: &str) -> Result<Self, String> {
        amount::parse_btc_sat(text)
            .map(BtcSat)
            .map_err(|e| e.to_string())
    }
    pub fn sat(self) -> i64 {
        self.0
    }
    pub fn msat(self) -> i64 {
        self.0 * amount::MSAT_PER_SAT
    }
}

/// A BTC amount in millisatoshis (rates below one satoshi), same rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtcMsat(pub i64);

impl BtcMsat {
    pub fn parse(text: &str) -> Result<Self, String> {
        amount::parse_btc_msat(text)
            .map(BtcMsat)
            .map_err(|e| e.to_string())
    }
    pub fn msat(self) -> i64 {
        self.0
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AmountLiteral {
    Text(String),
    Whole(i64),
    Float(#[allow(dead_code)] f64),
}

fn amount_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match AmountLiteral::deserialize(d)? {
        AmountLiteral::Text(text) => Ok(text),
        AmountLiteral::Whole(whole) => Ok(whole.to_string()),
        AmountLiteral::Float(_) => Err(serde::de::Error::custom(
            "write BTC amounts as strings, e.g. \"0.0001\" (a float would be rounded)",
        )),
    }
}

impl<'de> Deserialize<'de> for BtcSat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BtcSat::parse(&amount_text(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for BtcSat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&amount::format_btc(self.0))
    }
}

impl<'de> Deserialize<'de> for BtcMsat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BtcMsat::parse(&amount_text(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for BtcMsat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&amount::format_msat_btc(self.0))
    }
}

// ---- loading -------------------------------------------------------------

/// A configuration problem, always one line naming the key or file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// What the command line contributes (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub http: Option<SocketAddr>,
    pub socket: Option<PathBuf>,
    pub demo: bool,
}

/// Environment names with a meaning of their own (DESIGN.md section 11),
/// mapped to their key. Checked before the generic `POOLDESK_<SECTION>_<KEY>`.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("POOLDESK_DATA_DIR", "data_dir"),
    ("POOLDESK_HTTP", "http.listen"),
    ("POOLDESK_SOCKET", "control.socket"),
    ("POOLDESK_BITCOIND_COOKIE", "bitcoind.cookie_file"),
    ("POOLDESK_NETWORK", "network"),
    ("POOLDESK_WALLET_BACKEND", "wallet_backend"),
    ("POOLDESK_LOG", "log.filter"),
];

/// `POOLDESK_*` variables that are read elsewhere (secrets, test hooks),
/// so they are not configuration keys but not typos either.
const ENV_NOT_CONFIG: &[&str] = &[
    "POOLDESK_MASTER_KEY",
    "POOLDESK_MASTER_KEY_FILE",
    "POOLDESK_SHARED_SECRET",
    "POOLDESK_SHARED_SECRET_FILE",
    "POOLDESK_FAULT_DIR",
    // The payouts' test-only crash hook (payouts/crash.rs).
    "POOLDESK_TEST_CRASH_AT",
    // Set by contrib/test.sh for the tools it runs, not for the daemon.
    "POOLDESK_SKIP_LOG",
    "POOLDESK_CACHE_DIR",
];

const SECTIONS: &[&str] = &[
    "http", "control", "store", "ingest", "shares", "bridge", "auth", "limits", "payouts",
    "faucet", "bitcoind", "secrets", "log", "demo",
];

impl Config {
    /// Loads defaults ← file ← environment ← command line, then validates.
    pub fn load(cli: &CliOverrides, env: &[(String, String)]) -> Result<Config, ConfigError> {
        // Demo mode starts from demo-friendly defaults; the file and the
        // environment still override them.
        let mut table = if cli.demo {
            demo_defaults()
        } else {
            toml::Table::new()
        };
        if let Some(path) = &cli.config_file {
            merge_tables(&mut table, read_file_table(path)?);
        }
        apply_env(&mut table, env)?;
        let mut config = from_table(table, cli.config_file.as_deref())?;
        if let Some(dir) = &cli.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(addr) = cli.http {
            config.http.listen = addr;
        }
        if let Some(socket) = &cli.socket {
            config.control.socket = Some(socket.clone());
        }
        if cli.demo {
            config.demo.enabled = true;
            config.wallet_backend = WalletBackendKind::Simulated;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot say.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("config: {key}: {why}")));
        if self.http.max_body_bytes < 256 || self.http.max_body_bytes > 16 * 1024 * 1024 {
            return bad("http.max_body_bytes", "must be between 256 and 16777216");
        }
        if self.http.max_concurrent_requests == 0 {
            return bad("http.max_concurrent_requests", "must be at least 1");
        }
        if !(1..=3600).contains(&self.http.body_timeout_s) {
            return bad("http.body_timeout_s", "must be between 1 and 3600");
        }
        if self.http.max_connections_per_ip == 0 || self.http.max_sse_streams_per_ip == 0 {
            return bad(
                "http.max_connections_per_ip",
                "max_connections_per_ip and max_sse_streams_per_ip must be at least 1",
            );
        }
        if self.http.sse_max_lifetime_s == 0 {
            return bad("http.sse_max_lifetime_s", "must be at least 1");
        }
        if let Some(origin) =
            self.http.allowed_origins.iter().find(|o| {
                !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/')
            })
        {
            return bad(
                "http.allowed_origins",
                &format!("{origin:?} is not an origin (scheme://host[:port], no path)"),
            );
        }
        if let Some(url) = self
            .http
            .explorer_tx_url
            .as_deref()
            .filter(|u| !u.is_empty())
            && (!(url.starts_with("https://") || url.starts_with("http://"))
                || !url.contains("{txid}")
                || url
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '<'))
        {
            return bad(
                "http.explorer_tx_url",
                "must be an http(s) address containing {txid}, or \"\" for none",
            );
        }
        if self.accounting.pool_fee_bps > 10_000 {
            return bad("accounting.pool_fee_bps", "must be between 0 and 10000");
        }
        if self.accounting.pplns_factor == 0 || self.accounting.pplns_factor > 1_000 {
            return bad("accounting.pplns_factor", "must be between 1 and 1000");
        }
        if !(1..=3600).contains(&self.accounting.blocks_poll_s) {
            return bad("accounting.blocks_poll_s", "must be between 1 and 3600");
        }
        if self.store.read_connections == 0 || self.store.read_connections > 64 {
            return bad("store.read_connections", "must be between 1 and 64");
        }
        if self.store.max_batch == 0 || self.store.write_queue == 0 {
            return bad("store", "max_batch and write_queue must be at least 1");
        }
        if !(1..=3600).contains(&self.ingest.timestamp_tolerance_s) {
            return bad("ingest.timestamp_tolerance_s", "must be between 1 and 3600");
        }
        if self.ingest.rate_per_share_btc.msat() <= 0 {
            return bad("ingest.rate_per_share_btc", "must be greater than zero");
        }
        if self.ingest.rate_per_work_btc.msat() <= 0 {
            return bad("ingest.rate_per_work_btc", "must be greater than zero");
        }
        if self.ingest.retention_days == 0 {
            return bad("ingest.retention_days", "must be at least 1");
        }
        if self.limits.blocks_per_minute == 0 {
            return bad("limits.blocks_per_minute", "must be at least 1");
        }
        if let Some((tier, _)) = self.limits.tiers.iter().find(|(_, n)| **n == 0) {
            return bad(&format!("limits.tiers.{tier}"), "must be at least 1");
        }
        if self.limits.block_credit_max_btc.msat() <= 0
            || self.limits.block_credit_daily_btc.msat() < self.limits.block_credit_max_btc.msat()
        {
            return bad(
                "limits.block_credit_max_btc",
                "must be greater than zero and at most limits.block_credit_daily_btc",
            );
        }
        for (key, map) in [
            (
                "limits.tier_block_credit_max_btc",
                &self.limits.tier_block_credit_max_btc,
            ),
            (
                "limits.tier_block_credit_daily_btc",
                &self.limits.tier_block_credit_daily_btc,
            ),
        ] {
            if let Some((tier, _)) = map.iter().find(|(_, v)| v.msat() <= 0) {
                return bad(&format!("{key}.{tier}"), "must be greater than zero");
            }
        }
        let prefix = &self.auth.self_registration_prefix;
        if self.auth.registration == Registration::Open
            && (prefix.is_empty() || crate::miners::validate_id("prefix", prefix).is_err())
        {
            return bad(
                "auth.self_registration_prefix",
                "open registration needs a non-empty prefix of id characters, so self-registered ids cannot take ids the pool reports",
            );
        }
        if self.payouts.min_payout_btc.sat() < 546 {
            return bad(
                "payouts.min_payout_btc",
                "must be at least 0.00000546 (dust)",
            );
        }
        if self.payouts.max_fee_rate_sat_vb == 0 {
            return bad("payouts.max_fee_rate_sat_vb", "must be at least 1");
        }
        if self.payouts.fallback_fee_rate_sat_vb == 0
            || self.payouts.fallback_fee_rate_sat_vb > self.payouts.max_fee_rate_sat_vb
        {
            return bad(
                "payouts.fallback_fee_rate_sat_vb",
                "must be between 1 and payouts.max_fee_rate_sat_vb",
            );
        }
        if !(1..=2000).contains(&self.payouts.max_outputs_per_batch) {
            return bad(
                "payouts.max_outputs_per_batch",
                "must be between 1 and 2000",
            );
        }
        if self.payouts.batch_interval_s == 0 {
            return bad("payouts.batch_interval_s", "must be at least 1");
        }
        if self.payouts.max_fee_percent == 0 || self.payouts.max_fee_percent > 100 {
            return bad("payouts.max_fee_percent", "must be between 1 and 100");
        }
        if self.payouts.rpc_timeout_s == 0 {
            return bad("payouts.rpc_timeout_s", "must be at least 1");
        }
        if self.faucet.amount_btc.sat() < 546 {
            return bad("faucet.amount_btc", "must be at least 0.00000546 (dust)");
        }
        if self.faucet.difficulty_bits > 40 {
            return bad("faucet.difficulty_bits", "must be at most 40");
        }
        if self.faucet.batch_interval_s == 0 || self.faucet.challenge_ttl_s == 0 {
            return bad(
                "faucet",
                "batch_interval_s and challenge_ttl_s must be at least 1",
            );
        }
        if self.wallet_backend == WalletBackendKind::Bitcoind {
            if !(self.bitcoind.url.starts_with("http://")
                || self.bitcoind.url.starts_with("https://"))
            {
                return bad("bitcoind.url", "must start with http:// or https://");
            }
            if self.bitcoind.url.contains('@') {
                return bad(
                    "bitcoind.url",
                    "must not carry credentials; use bitcoind.cookie_file or user/password_file",
                );
            }
            if !self.bitcoind.user.is_empty() && self.bitcoind.password_file.is_empty() {
                return bad(
                    "bitcoind.password_file",
                    "is required when bitcoind.user is set",
                );
            }
        }
        if matches!(self.payouts.confirmations, Some(0) | Some(1001..)) {
            return bad("payouts.confirmations", "must be between 1 and 1000");
        }
        if self.wallet_backend == WalletBackendKind::Simulated && self.network == Network::Mainnet {
            return bad(
                "wallet_backend",
                "the simulated wallet cannot run on mainnet",
            );
        }
        if self.log.format != "auto"
            && self.log.format != "text"
            && self.log.format != "json"
            && self.log.format != "journald"
        {
            return bad("log.format", "must be auto, text, json or journald");
        }
        Ok(())
    }

    /// The control socket path: configured, else `$RUNTIME_DIRECTORY`,
    /// else the data directory.
    pub fn socket_path(&self) -> PathBuf {
        if let Some(path) = &self.control.socket
            && !path.as_os_str().is_empty()
        {
            return path.clone();
        }
        if let Some(runtime) = std::env::var_os("RUNTIME_DIRECTORY") {
            // systemd may pass several directories separated by ':'.
            let first = runtime
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or("")
                .to_string();
            if !first.is_empty() {
                return Path::new(&first).join("control.sock");
            }
        }
        self.data_dir.join("control.sock")
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir.join("ledger.sqlite")
    }

    /// Signed block submissions per minute allowed for a tier.
    pub fn blocks_per_minute_for(&self, tier: Option<&str>) -> u32 {
        tier.and_then(|t| self.limits.tiers.get(t).copied())
            .unwrap_or(self.limits.blocks_per_minute)
    }
}

/// Defaults for `--demo`: things happen within seconds so a newcomer sees
/// the whole flow (approvals, batches, confirmations, faucet) quickly.
fn demo_defaults() -> toml::Table {
    r#"
[payouts]
new_address_delay_s = 10
batch_interval_s = 30
[faucet]
batch_interval_s = 10
difficulty_bits = 16
cooldown_s = 60
"#
    .parse()
    .expect("static demo defaults")
}

/// Overlays `top` onto `base`, table by table.
fn merge_tables(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(top_inner)) => {
                merge_tables(inner, top_inner)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn read_file_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("config file {}: cannot read: {e}", path.display())))?;
    text.parse::<toml::Table>().map_err(|e| {
        // toml's message spans several lines (with a snippet); keep the
        // first line and the position so the error stays one line.
        let first = e
            .message()
            .lines()
            .next()
            .unwrap_or("syntax error")
            .to_string();
        let position = e
            .span()
            .map(|span| {
                let line = text[..span.start].matches('\n').count() + 1;
                format!(" at line {line}")
            })
            .unwrap_or_default();
        ConfigError(format!(
            "config file {}: invalid TOML{position}: {first}",
            path.display()
        ))
    })
}

fn from_table(table: toml::Table, file: Option<&Path>) -> Result<Config, ConfigError> {
    let origin = match file {
        Some(path) => format!("config file {}", path.display()),
        None => "config".to_string(),
    };
    let value = toml::Value::Table(table);
    serde_path_to_error::deserialize::<_, Config>(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let inner = inner.lines().next().unwrap_or("").to_string();
        // Name the offending key itself for unknown fields.
        if let Some(rest) = inner.strip_prefix("unknown field `")
            && let Some(end) = rest.find('`')
        {
            let key = &rest[..end];
            // serde_path_to_error's path may or may not end with the key.
            let full = if path == "." || path.is_empty() {
                key.to_string()
            } else if path == key || path.ends_with(&format!(".{key}")) {
                path.clone()
            } else {
                format!("{path}.{key}")
            };
            return ConfigError(format!("{origin}: unknown key `{full}`"));
        }
        ConfigError(format!("{origin}: {path}: {inner}"))
    })
}

/// Applies environment overrides to the TOML table. Unknown `POOLDESK_*`
/// names are refused like unknown keys.
fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    // Seed names first so the POOLDESK_ form wins when both are set.
    for (name, value) in env {
        if name == "MINING_PAYOUT_RATE_PER_SHARE" {
            set_key(
                table,
                "ingest.rate_per_share_btc",
                toml::Value::String(value.clone()),
            );
        }
    }
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("POOLDESK_") else {
            continue;
        };
        if ENV_NOT_CONFIG.contains(&name.as_str()) {
            continue;
        }
        let key = if let Some((_, key)) = ENV_ALIASES.iter().find(|(alias, _)| alias == name) {
            key.to_string()
        } else {
            let lower = rest.to_ascii_lowercase();
            let section = SECTIONS
                .iter()
                .find(|s| lower.starts_with(&format!("{s}_")))
                .ok_or_else(|| ConfigError(format!("environment: unknown variable {name}")))?;
            format!("{section}.{}", &lower[section.len() + 1..])
        };
        set_key(table, &key, env_value(value));
    }
    Ok(())
}

/// Environment values are strings; booleans, integers and inline arrays
/// or tables are read as TOML so `POOLDESK_INGEST_ALLOW_UNPROTECTED_REPORTS=true`
/// and `POOLDESK_HTTP_TRUSTED_PROXIES='["10.0.0.1"]'` work. Decimals stay
/// strings (amounts must never pass through a float).
fn env_value(raw: &str) -> toml::Value {
    let trimmed = raw.trim();
    if trimmed == "true" {
        return toml::Value::Boolean(true);
    }
    if trimmed == "false" {
        return toml::Value::Boolean(false);
    }
    if let Ok(n) = trimmed.parse::<i64>() {
        return toml::Value::Integer(n);
    }
    if (trimmed.starts_with('[') || trimmed.starts_with('{'))
        && let Ok(table) = format!("v = {trimmed}").parse::<toml::Table>()
        && let Some(v) = table.get("v")
    {
        return v.clone();
    }
    toml::Value::String(raw.to_string())
}

fn set_key(table: &mut toml::Table, dotted: &str, value: toml::Value) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().expect("non-empty key");
    let mut cursor = table;
    for part in parts {
        let entry = cursor
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        cursor = entry.as_table_mut().expect("just made a table");
    }
    cursor.insert(last.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pooldesk.toml");
        std::fs::write(&path, text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(
            &CliOverrides {
                config_file: Some(path),
                ..Default::default()
            },
            &env,
        )
    }

    #[test]
    fn design_example_config_loads() {
        let text = r#"
network = "regtest"
[http]
listen = "127.0.0.1:8080"
trusted_proxies = []
max_body_bytes = 65536
[ingest]
allow_unprotected_reports = false
timestamp_tolerance_s = 300
rate_per_share_btc = "0.00000001"
rate_per_work_btc = "0.00000100"
[auth]
registration = "open"
allow_shared = false
[limits]
blocks_per_minute = 10
tiers = { TIER_3_WORKSTATION = 30 }
[payouts]
mode = "hot"
min_payout_btc = "0.0001"
auto_approve_below_btc = "0"
daily_cap_btc = "1"
max_fee_rate_sat_vb = 50
new_address_delay_s = 86400
max_outputs_per_batch = 200
batch_interval_s = 60
[faucet]
enabled = true
amount_btc = "0.0001"
cooldown_s = 3600
daily_budget_btc = "0.1"
difficulty_bits = 20
batch_interval_s = 30
[bitcoind]
url = "http://127.0.0.1:18443"
cookie_file = ""
user = ""
password_file = ""
wallet = "pool"
"#;
        let config = load_text(text, &[]).unwrap();
        assert_eq!(config.ingest.rate_per_share_btc.msat(), 1000);
        assert_eq!(config.ingest.rate_per_work_btc.msat(), 100_000);
        assert_eq!(config.payouts.min_payout_btc.sat(), 10_000);
        assert_eq!(config.blocks_per_minute_for(Some("TIER_3_WORKSTATION")), 30);
        assert_eq!(config.blocks_per_minute_for(Some("TIER_1_MOBILE")), 10);
    }

    #[test]
    fn payout_depth_defaults_per_network_and_can_be_set() {
        let depth = |text: &str| {
            let config = load_text(text, &[]).unwrap();
            config.payouts.depth(config.network)
        };
        assert_eq!(depth("network = \"regtest\"\n"), 1);
        assert_eq!(depth("network = \"mainnet\"\n"), 6);
        assert_eq!(depth("network = \"testnet\"\n"), 6);
        assert_eq!(depth("network = \"signet\"\n"), 6);
        assert_eq!(
            depth("network = \"mainnet\"\n[payouts]\nconfirmations = 3\n"),
            3
        );
        assert_eq!(
            depth("network = \"regtest\"\n[payouts]\nconfirmations = 2\n"),
            2
        );
        let err = load_text("[payouts]\nconfirmations = 0\n", &[]).unwrap_err();
        assert!(err.0.contains("payouts.confirmations"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_text("[http]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", &[]).unwrap_err();
        assert!(err.0.contains("unknown key `http.lisen`"), "{err}");
        assert!(!err.0.contains('\n'));
        let err = load_text("netwrk = \"regtest\"\n", &[]).unwrap_err();
        assert!(err.0.contains("unknown key `netwrk`"), "{err}");
    }

    #[test]
    fn malformed_value_is_named() {
        let err = load_text("[payouts]\nmax_fee_rate_sat_vb = \"lots\"\n", &[]).unwrap_err();
        assert!(err.0.contains("payouts.max_fee_rate_sat_vb"), "{err}");
        let err = load_text("[payouts]\nmin_payout_btc = 0.0001\n", &[]).unwrap_err();
        assert!(err.0.contains("payouts.min_payout_btc"), "{err}");
        assert!(err.0.contains("strings"), "{err}");
        let err = load_text("network = \"moonnet\"\n", &[]).unwrap_err();
        assert!(err.0.contains("network"), "{err}");
        let err =
            load_text("[ingest]\nrate_per_share_btc = \"0.1234567891234\"\n", &[]).unwrap_err();
        assert!(err.0.contains("ingest.rate_per_share_btc"), "{err}");
    }

    #[test]
    fn syntax_error_is_one_line_with_position() {
        let err = load_text("[http]\nlisten = \n", &[]).unwrap_err();
        assert!(err.0.contains("line 2"), "{err}");
        assert!(!err.0.contains('\n'));
    }

    #[test]
    fn missing_file_is_named() {
        let err = Config::load(
            &CliOverrides {
                config_file: Some("/nonexistent/pooldesk.toml".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err();
        assert!(err.0.contains("/nonexistent/pooldesk.toml"), "{err}");
    }

    #[test]
    fn environment_overrides_file_and_seed_names_work() {
        let config = load_text(
            "[ingest]\nrate_per_share_btc = \"0.00000002\"\n",
            &[
                ("MINING_PAYOUT_RATE_PER_SHARE", "0.000000005"),
                ("POOLDESK_HTTP", "127.0.0.1:9999"),
                ("POOLDESK_INGEST_ALLOW_UNPROTECTED_REPORTS", "true"),
                ("POOLDESK_PAYOUTS_MIN_PAYOUT_BTC", "0.001"),
                ("POOLDESK_HTTP_TRUSTED_PROXIES", "[\"10.0.0.1\"]"),
                ("POOLDESK_BITCOIND_WALLET", "payouts"),
                ("PATH", "/usr/bin"),
            ],
        )
        .unwrap();
        assert_eq!(config.ingest.rate_per_share_btc.msat(), 500);
        assert_eq!(config.http.listen.port(), 9999);
        assert!(config.ingest.allow_unprotected_reports);
        assert_eq!(config.payouts.min_payout_btc.sat(), 100_000);
        assert_eq!(config.http.trusted_proxies.len(), 1);
        assert_eq!(config.bitcoind.wallet, "payouts");
    }

    #[test]
    fn unknown_environment_variable_is_refused() {
        let err = load_text("", &[("POOLDESK_INGEST_RATE_PER_SHARE", "1")]).unwrap_err();
        assert!(err.0.contains("ingest.rate_per_share"), "{err}");
        let err = load_text("", &[("POOLDESK_FROBNICATE", "1")]).unwrap_err();
        assert!(err.0.contains("POOLDESK_FROBNICATE"), "{err}");
    }

    #[test]
    fn credentials_in_url_are_refused() {
        let err = load_text("[bitcoind]\nurl = \"http://u:p@127.0.0.1:8332\"\n", &[]).unwrap_err();
        assert!(err.0.contains("bitcoind.url"), "{err}");
        assert!(!err.0.contains("u:p"), "never echo credentials: {err}");
    }
}
