//! View types the daemon sends to its clients (control socket, and the same
//! shapes in the admin HTTP API). Money is always integer: `*_msat` in the
//! ledger unit, `*_sat` on chain. Hashrate is not money and is an `f64` in
//! hashes per second. Times are Unix seconds (`*_at`, UTC).

use serde::{Deserialize, Serialize};

/// Everything the Overview screen needs, pushed every second as
/// [`Event::Pool`] and answered to `snapshot`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub at: i64,
    /// e.g. `pooldeskd 0.1.0`
    pub server: String,
    /// Demo mode: simulated wallet and workers. Shown on every screen.
    pub simulated: bool,
    pub network: String,
    /// `hot` (sendmany) or `cold` (PSBT).
    pub payout_mode: String,
    pub hashrate: Hashrate,
    /// Shares (difficulty-weighted, i.e. difficulty-1 equivalents) per
    /// second over the last minute.
    pub shares_per_s: f64,
    pub miners_total: u64,
    /// Miners with a share in the last 10 minutes.
    pub miners_active: u64,
    /// Workers with a share in the last 10 minutes.
    pub workers_active: u64,
    pub ledger: LedgerTotals,
    pub withdrawals: WithdrawalCounts,
    pub wallet: WalletHealth,
    /// Pool hashrate per minute for the last hour, oldest first:
    /// `(minute start, hashes per second)`.
    pub hashrate_history: Vec<(i64, f64)>,
    /// Standing warnings (unprotected reports allowed, payouts paused,
    /// batches needing attention, wallet shortfall, …).
    pub warnings: Vec<Warning>,
    /// Share sources of `POST /api/v2/shares` (pool software, bridges).
    #[serde(default)]
    pub origins: Vec<OriginStatus>,
}

/// One sender of batched shares, as the Overview shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginStatus {
    pub name: String,
    pub max_seq: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub blocks: u64,
    pub credited_msat: i64,
    /// Time of the newest share (the pool's clock) and of the last batch
    /// (the daemon's clock), Unix seconds.
    pub last_share_at: Option<i64>,
    pub last_batch_at: Option<i64>,
    /// What the sender said in its last batch: bytes of log not yet sent,
    /// lines it could not parse (quarantined).
    pub backlog_bytes: Option<u64>,
    pub quarantined_lines: Option<u64>,
}

impl OriginStatus {
    /// Seconds the newest share was behind the daemon's clock when its
    /// batch arrived (how far the sender lags the pool).
    pub fn lag_s(&self) -> Option<i64> {
        Some((self.last_batch_at? - self.last_share_at?).max(0))
    }
}

/// Hashrate over 1 min, 10 min and 1 h. A window longer than the history
/// behind it (a miner, worker or pool that started less than the window
/// ago) is averaged over that history instead: `*_s` says how many seconds
/// each figure covers and `*_partial` that it is shorter than the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Hashrate {
    pub h1m: f64,
    pub h10m: f64,
    pub h1h: f64,
    #[serde(default)]
    pub h1m_s: i64,
    #[serde(default)]
    pub h10m_s: i64,
    #[serde(default)]
    pub h1h_s: i64,
    #[serde(default)]
    pub h1m_partial: bool,
    #[serde(default)]
    pub h10m_partial: bool,
    #[serde(default)]
    pub h1h_partial: bool,
}

impl Hashrate {
    /// `" (partial, 40 s)"` for a figure shorter than its window, `""`
    /// for a whole one. Index 0, 1, 2: the 1 min, 10 min and 1 h figure.
    pub fn partial_suffix(&self, index: usize) -> String {
        let (partial, covered_s) = match index {
            0 => (self.h1m_partial, self.h1m_s),
            1 => (self.h10m_partial, self.h10m_s),
            _ => (self.h1h_partial, self.h1h_s),
        };
        if partial {
            format!(" (partial, {})", format_span_s(covered_s))
        } else {
            String::new()
        }
    }
}

/// A span of seconds in the largest units that fit: `"40 s"`,
/// `"9 min 20 s"`, `"1 h 5 min"`, `"2 d 3 h"`.
pub fn format_span_s(seconds: i64) -> String {
    let s = seconds.max(0);
    let two = |big: i64, big_name: &str, small: i64, small_name: &str| {
        let rest = (s % big) / small;
        if rest == 0 {
            format!("{} {big_name}", s / big)
        } else {
            format!("{} {big_name} {rest} {small_name}", s / big)
        }
    };
    match s {
        0..60 => format!("{s} s"),
        60..3600 => two(60, "min", 1, "s"),
        3600..86_400 => two(3600, "h", 60, "min"),
        _ => two(86_400, "d", 3600, "h"),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTotals {
    /// Sum of all miner balances: what the pool owes its miners.
    pub owed_msat: i64,
    /// Held for requested/approved/in-flight withdrawals.
    pub held_msat: i64,
    /// Paid to miners on chain (broadcast or confirmed).
    pub paid_msat: i64,
    /// Network fees the pool paid for payouts.
    pub fees_msat: i64,
    /// Total ever credited to miners.
    pub credited_msat: i64,
    /// Faucet: reserved for queued requests and sent.
    pub faucet_held_msat: i64,
    pub faucet_sent_msat: i64,
    pub transfers: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalCounts {
    pub requested: u64,
    pub approved: u64,
    pub batched: u64,
    pub broadcast: u64,
    pub confirmed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub needs_attention: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WalletHealth {
    /// `simulated` or `bitcoind`.
    pub backend: String,
    pub connected: bool,
    pub chain: Option<String>,
    pub block_height: Option<u64>,
    pub spendable_sat: Option<i64>,
    pub fee_estimate_sat_vb: Option<u64>,
    /// Last error talking to the node, if the last attempt failed.
    pub last_error: Option<String>,
    pub checked_at: Option<i64>,
    pub payouts_paused: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub code: String,
    pub message: String,
}

// ---- miners ---------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MinerSort {
    #[default]
    Id,
    Tier,
    Hashrate,
    Workers,
    Balance,
    LastShare,
    Status,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListMiners {
    #[serde(default)]
    pub sort: MinerSort,
    #[serde(default)]
    pub descending: bool,
    /// Case-insensitive substring of the miner id.
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub offset: u32,
    /// At most 1000 per page; the daemon clamps.
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinerRow {
    pub miner_id: String,
    pub tier: Option<String>,
    pub active: bool,
    pub hashrate_10m: f64,
    pub workers: u32,
    pub balance_msat: i64,
    pub last_share_at: Option<i64>,
    pub has_key: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinerPage {
    /// Rows matching the filter, before paging.
    pub total: u64,
    pub offset: u32,
    pub rows: Vec<MinerRow>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerRow {
    pub worker_name: String,
    pub hashrate: Hashrate,
    pub last_share_at: Option<i64>,
    /// Shares accepted and rejected in the last hour (since start-up when
    /// the daemon is younger).
    #[serde(default)]
    pub accepted_1h: u64,
    #[serde(default)]
    pub rejected_1h: u64,
    /// Whether the pool reports this worker's rejects at all (`false`:
    /// `rejected_1h` is unknown, not zero).
    #[serde(default)]
    pub rejects_reported: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditRow {
    pub at: i64,
    pub event_id: String,
    pub worker_name: String,
    /// Difficulty-weighted shares (shares × difficulty), or work score units.
    pub work: String,
    pub amount_msat: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinerDetail {
    pub row: MinerRow,
    pub created_at: i64,
    pub payout_address: Option<String>,
    /// When the current payout address becomes payable (new-address delay).
    pub payout_address_payable_at: Option<i64>,
    pub key_version: Option<u32>,
    pub hashrate: Hashrate,
    pub workers: Vec<WorkerRow>,
    pub recent_credits: Vec<CreditRow>,
    pub withdrawals: Vec<WithdrawalRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedKey {
    pub miner_id: String,
    /// Shown once; the daemon stores no usable copy.
    pub api_key: String,
    pub key_version: u32,
}

// ---- withdrawals and batches ---------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListWithdrawals {
    /// One state (`requested`, `approved`, …) or all when absent.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub offset: u32,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalRow {
    pub id: i64,
    pub miner_id: String,
    pub address: String,
    pub amount_sat: i64,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub batch_id: Option<i64>,
    pub txid: Option<String>,
    /// Why it is rejected / failed / needs attention, or why it waits.
    pub note: Option<String>,
    /// Who approved or rejected it (`uid:1000`, `http-admin`, `auto`).
    pub decided_by: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalPage {
    pub total: u64,
    pub offset: u32,
    pub rows: Vec<WithdrawalRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalResult {
    pub id: i64,
    pub ok: bool,
    pub state: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRow {
    pub id: i64,
    /// `hot` or `cold`.
    pub mode: String,
    /// hot: `sending`, `broadcast`, `confirmed`; cold: `psbt_pending`,
    /// `psbt_created`, `signed`, `broadcasting`, `broadcast`, `confirmed`;
    /// both: `failed`, `needs_attention`.
    pub state: String,
    pub withdrawal_ids: Vec<i64>,
    pub total_sat: i64,
    pub fee_sat: Option<i64>,
    pub txid: Option<String>,
    pub confirmations: Option<i64>,
    pub psbt_id: Option<i64>,
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    pub batch: BatchRow,
    /// Cold mode: the unsigned PSBT (base64) to export for signing.
    pub psbt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BatchResolution {
    /// The admin proved the payment happened: mark paid with this txid.
    Paid { txid: String },
    /// The admin proved nothing was paid: withdrawals go back to `approved`.
    Retry,
    /// Give up: funds return to the miners.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastResult {
    pub batch_id: i64,
    pub txid: String,
}

// ---- PSBT review ------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PsbtReview {
    pub psbt_id: i64,
    pub batch_id: i64,
    /// `unsigned`, `partially_signed`, `signed`, `finalized`, `broadcast`.
    pub state: String,
    pub inputs: Vec<PsbtInput>,
    pub outputs: Vec<PsbtOutput>,
    pub total_in_sat: Option<i64>,
    pub total_out_sat: i64,
    pub paid_to_miners_sat: i64,
    pub change_sat: i64,
    pub fee_sat: Option<i64>,
    pub vsize: Option<u64>,
    /// Fee rate in sat/vB ×1000 (integer; 2500 means 2.5 sat/vB).
    pub fee_rate_milli_sat_vb: Option<u64>,
    pub signatures: SignatureStatus,
    /// Every warning the admin must see (shown in red).
    pub warnings: Vec<String>,
    /// When an imported PSBT differs from what was reviewed: each difference.
    pub differences: Vec<String>,
    pub psbt: String,
    pub txid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsbtInput {
    pub outpoint: String,
    pub amount_sat: Option<i64>,
    /// The amount is proven by the previous transaction (non-witness UTXO)
    /// or at least declared (witness UTXO) and matches the wallet.
    pub verified: bool,
    pub signed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsbtOutput {
    pub index: u32,
    pub address: String,
    pub amount_sat: i64,
    /// `withdrawal`, `change` or `unknown`.
    pub role: String,
    pub withdrawal_ids: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureStatus {
    pub inputs_total: u32,
    pub inputs_signed: u32,
    pub complete: bool,
}

// ---- faucet and audit -------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaucetStatus {
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub amount_sat: i64,
    pub cooldown_s: u64,
    pub daily_budget_sat: i64,
    pub spent_today_sat: i64,
    pub queued: Vec<FaucetRow>,
    pub recent: Vec<FaucetRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaucetRow {
    pub id: i64,
    pub address: String,
    pub amount_sat: i64,
    pub state: String,
    pub created_at: i64,
    pub txid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    /// `uid:1000` (control socket peer), `http-admin`, `system`.
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before_id` for the next (older) page.
    pub next_before_id: Option<i64>,
}

// ---- events -------------------------------------------------------------------

/// Events pushed to subscribers (control socket) — the SSE stream carries
/// the same events in its own JSON shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Event {
    /// Pool snapshot, every second.
    Pool(Box<Snapshot>),
    Credit(CreditEvent),
    Withdrawal(WithdrawalRow),
    Batch(BatchRow),
    Audit(AuditEntry),
    /// A block appeared or changed state (found, matured, orphaned, back).
    Block(BlockRow),
    /// The subscriber fell behind and missed `missed` events; it should
    /// re-request what it shows.
    Lagged {
        missed: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditEvent {
    pub miner_id: String,
    pub worker_name: String,
    pub event_id: String,
    pub amount_msat: i64,
    pub balance_msat: i64,
    pub at: i64,
}

// ---- blocks (issue 14) ----------------------------------------------------------

/// How blocks (or shares) pay miners. `pps` credits every share as it
/// arrives (the default); `pplns` and `solo` pay only from blocks found by
/// the pool's wallet, at maturity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayoutScheme {
    #[default]
    Pps,
    Pplns,
    Solo,
}

impl PayoutScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutScheme::Pps => "pps",
            PayoutScheme::Pplns => "pplns",
            PayoutScheme::Solo => "solo",
        }
    }
}

/// Life of a block found by the pool's wallet: `immature` until the
/// coinbase has 100 confirmations, then `matured` (credited); `orphaned`
/// while it is off the best chain (a reorg may bring it back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockState {
    #[default]
    Immature,
    Matured,
    Orphaned,
}

impl BlockState {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockState::Immature => "immature",
            BlockState::Matured => "matured",
            BlockState::Orphaned => "orphaned",
        }
    }
}

/// One block whose coinbase pays the pool's wallet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRow {
    /// Block hash, hex as Bitcoin Core prints it.
    pub hash: String,
    pub height: i64,
    pub coinbase_txid: String,
    pub state: BlockState,
    /// As the wallet last reported them (0 while orphaned).
    pub confirmations: i64,
    /// Confirmations still needed before the coinbase can be spent
    /// (0 once matured).
    pub confirmations_to_maturity: i64,
    /// What the coinbase actually pays the pool's wallet (subsidy + fees).
    pub reward_msat: i64,
    /// `reward_msat` as 8-decimal BTC text (rounded down to the satoshi;
    /// a coinbase is whole satoshis, so exact).
    pub reward_btc: String,
    /// `accounting.pool_fee_bps` of the reward, floor, in msat.
    pub pool_fee_msat: i64,
    /// The scheme in force when the block was found (it pays this block).
    pub scheme: PayoutScheme,
    /// When the daemon first saw the coinbase (Unix seconds).
    pub found_at: i64,
    /// From the pool's block-solve report, when one names this hash.
    pub finder_miner_id: Option<String>,
    /// When the split was credited to the miners (matured).
    pub credited_at: Option<i64>,
}

/// One miner's line of a block statement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementPart {
    pub miner_id: String,
    /// Share work counted in the window (`shares × difficulty`).
    pub work: u64,
    pub amount_msat: i64,
}

/// One share record of a window, oldest first. `work` is what the window
/// counts of it (less than `shares × difficulty` only for the oldest
/// record when the window boundary falls inside it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementShare {
    /// The record's id in the PPLNS log (`pplns_work.id`): the order.
    pub id: i64,
    pub miner_id: String,
    pub work: u64,
    /// What the record is, so a miner can find their shares in it:
    /// `report:<share report id>` or `batch:<origin>:<first seq>-<last
    /// seq>`. Not part of `shares_sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Everything a miner needs to check what a block paid: the window, the
/// split, and a sha256 committing to the ordered share list (canonical
/// encoding in ARCHITECTURE.md, "Block statements").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStatement {
    pub block: BlockRow,
    pub scheme: PayoutScheme,
    /// The window size asked for (PPLNS: `max(factor × network
    /// difficulty, minimum)`; SOLO: the finder's share; PPS: 0).
    pub window_work: u64,
    /// Work actually in the window (less than `window_work` when the pool
    /// had done less work than the window since it started).
    pub total_work: u64,
    pub first_share_id: Option<i64>,
    pub last_share_id: Option<i64>,
    pub reward_msat: i64,
    /// The fee rate in force when the block was found.
    #[serde(default)]
    pub pool_fee_bps: u32,
    pub pool_fee_msat: i64,
    /// `reward_msat - pool_fee_msat`, split exactly among `parts`.
    pub distributed_msat: i64,
    /// Ordered by miner id.
    pub parts: Vec<StatementPart>,
    /// Hex sha256 of the canonical encoding of `shares`.
    pub shares_sha256: String,
    /// The window, oldest first. The control socket leaves it empty
    /// (frames are bounded); `GET /api/blocks/{hash}/statement` carries it.
    #[serde(default)]
    pub shares: Vec<StatementShare>,
}
