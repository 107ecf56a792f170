//! Prometheus metrics (`GET /metrics`, text exposition format).
//!
//! Every family is listed in README.md. Labels are bounded sets (outcome
//! codes, states), never miner ids or addresses, so cardinality stays flat.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `pool` (X-REPORT-SIG) or `personal` (X-Signature).
    pub contract: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabel {
    pub name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    /// `ip` (http.per_ip_per_minute), `user` (signed requests per miner) or
    /// `registration` (open registrations per IP).
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabel {
    pub window: &'static str,
}

/// Store-side metrics, handed to the writer thread.
#[derive(Clone)]
pub struct StoreMetrics {
    pub commit_seconds: Histogram,
    pub commit_batch_size: Histogram,
    pub commits_failed: Counter,
}

impl StoreMetrics {
    pub fn new() -> Self {
        StoreMetrics {
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            commits_failed: Counter::default(),
        }
    }

    pub fn observe_commit(&self, jobs: usize, took: Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.commit_batch_size.observe(jobs as f64);
    }

    pub fn observe_failed_commit(&self) {
        self.commits_failed.inc();
    }
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// All metrics of the daemon, cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub store: StoreMetrics,
    pub reports: Family<OutcomeLabels, Counter>,
    pub ledger_msat: Family<NameLabel, Gauge>,
    pub withdrawals: Family<StateLabel, Gauge>,
    pub wallet_spendable_sat: Gauge,
    pub wallet_connected: Gauge,
    pub sse_clients: Gauge,
    pub control_clients: Gauge,
    pub faucet_requests: Family<StateLabel, Counter>,
    pub hashrate: Family<WindowLabel, Gauge<f64, AtomicU64>>,
    pub miners: Family<StateLabel, Gauge>,
    /// Blocks found by the wallet by state (src/blocks).
    pub blocks: Family<StateLabel, Gauge>,
    /// Parts of immature blocks owed to miners at maturity.
    pub blocks_pending_msat: Gauge,
    pub events_lagged: Counter,
    pub http_refused: Family<StateLabel, Counter>,
    pub rate_limited: Family<LimitLabel, Counter>,
    pub rate_limit_keys: Gauge,
    /// Read at scrape time (see [`Metrics::encode`]).
    sqlite_heap_bytes: Gauge,
    heap_allocated_bytes: Gauge,
    heap_retained_bytes: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pooldesk");
        let store = StoreMetrics::new();
        registry.register(
            "commit_seconds",
            "Time to run and commit one group commit (fsync included)",
            store.commit_seconds.clone(),
        );
        registry.register(
            "commit_batch_size",
            "Write jobs folded into one group commit",
            store.commit_batch_size.clone(),
        );
        registry.register(
            "commits_failed",
            "Group commits that failed and were rolled back (nothing acknowledged)",
            store.commits_failed.clone(),
        );
        let reports = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "reports",
            "Share and block reports by contract and outcome (accepted or the refusal code)",
            reports.clone(),
        );
        let ledger_msat = Family::<NameLabel, Gauge>::default();
        registry.register(
            "ledger_msat",
            "Ledger totals in msat: owed, held, paid, fees, credited, faucet_held, faucet_sent",
            ledger_msat.clone(),
        );
        let withdrawals = Family::<StateLabel, Gauge>::default();
        registry.register("withdrawals", "Withdrawals by state", withdrawals.clone());
        let wallet_spendable_sat = Gauge::default();
        registry.register(
            "wallet_spendable_sat",
            "Spendable balance of the payout wallet (sat), compare with ledger_msat{name=\"held\"}",
            wallet_spendable_sat.clone(),
        );
        let wallet_connected = Gauge::default();
        registry.register(
            "wallet_connected",
            "1 when the last wallet health check succeeded",
            wallet_connected.clone(),
        );
        let sse_clients = Gauge::default();
        registry.register(
            "sse_clients",
            "Open /api/stream connections",
            sse_clients.clone(),
        );
        let control_clients = Gauge::default();
        registry.register(
            "control_clients",
            "Open control socket connections",
            control_clients.clone(),
        );
        let faucet_requests = Family::<StateLabel, Counter>::default();
        registry.register(
            "faucet_requests",
            "Faucet requests by outcome (queued or the refusal code)",
            faucet_requests.clone(),
        );
        let hashrate = Family::<WindowLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "pool_hashrate_hps",
            "Pool hashrate in hashes per second by window",
            hashrate.clone(),
        );
        let miners = Family::<StateLabel, Gauge>::default();
        registry.register(
            "miners",
            "Miners known (total) and active in 10 min",
            miners.clone(),
        );
        let blocks = Family::<StateLabel, Gauge>::default();
        registry.register(
            "blocks",
            "Blocks whose coinbase pays the pool wallet, by state (immature, matured, orphaned)",
            blocks.clone(),
        );
        for state in ["immature", "matured", "orphaned"] {
            let _ = blocks.get_or_create(&StateLabel { state });
        }
        let blocks_pending_msat = Gauge::default();
        registry.register(
            "blocks_pending_msat",
            "Miners' parts of immature blocks (credited at maturity), msat",
            blocks_pending_msat.clone(),
        );
        let events_lagged = Counter::default();
        registry.register(
            "events_lagged",
            "Events skipped by subscribers that fell behind (SSE and control)",
            events_lagged.clone(),
        );
        let http_refused = Family::<StateLabel, Counter>::default();
        registry.register(
            "http_refused",
            "HTTP requests refused before reaching a service, by reason",
            http_refused.clone(),
        );
        let rate_limited = Family::<LimitLabel, Counter>::default();
        registry.register(
            "http_rate_limited",
            "HTTP requests answered 429 by a rate limit, by limit (ip, ip_profile, ip_stream, ip_faucet, ip_register, ip_ingest_auth, pool_key, user, registration)",
            rate_limited.clone(),
        );
        // Exported at 0 from the start, so rate() and absence alerts work
        // before the first refusal.
        for limit in [
            "ip",
            "user",
            "registration",
            "ip_profile",
            "ip_stream",
            "ip_faucet",
            "ip_register",
            "pool_key",
            "ip_ingest_auth",
        ] {
            let _ = rate_limited.get_or_create(&LimitLabel { limit });
        }
        let rate_limit_keys = Gauge::default();
        registry.register(
            "http_rate_limit_keys",
            "Client addresses tracked by the per-IP limiter after its last sweep",
            rate_limit_keys.clone(),
        );
        let sqlite_heap_bytes = Gauge::default();
        registry.register(
            "sqlite_heap_bytes",
            "Heap held by SQLite in this process (page caches of all ledger connections, bounded by their cache_size)",
            sqlite_heap_bytes.clone(),
        );
        let heap_allocated_bytes = Gauge::default();
        registry.register(
            "heap_allocated_bytes",
            "Bytes in live heap allocations of the whole process, SQLite's included (glibc mallinfo2)",
            heap_allocated_bytes.clone(),
        );
        let heap_retained_bytes = Gauge::default();
        registry.register(
            "heap_retained_bytes",
            "Bytes the allocator holds from the OS, in use or free (glibc mallinfo2); much more than allocated means fragmentation",
            heap_retained_bytes.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            store,
            reports,
            ledger_msat,
            withdrawals,
            wallet_spendable_sat,
            wallet_connected,
            sse_clients,
            control_clients,
            faucet_requests,
            hashrate,
            miners,
            blocks,
            blocks_pending_msat,
            events_lagged,
            http_refused,
            rate_limited,
            rate_limit_keys,
            sqlite_heap_bytes,
            heap_allocated_bytes,
            heap_retained_bytes,
        }
    }

    pub fn report(&self, contract: &'static str, outcome: &'static str) {
        self.reports
            .get_or_create(&OutcomeLabels { contract, outcome })
            .inc();
    }

    /// Text exposition format.
    pub fn encode(&self) -> String {
        // SAFETY: sqlite3_memory_used only reads SQLite's own counter
        // (under its mutex); it takes no pointers and may be called at any
        // time from any thread.
        let sqlite_heap = unsafe { rusqlite::ffi::sqlite3_memory_used() };
        self.sqlite_heap_bytes.set(sqlite_heap);
        if let Some((allocated, retained)) = heap_usage() {
            self.heap_allocated_bytes.set(allocated);
            self.heap_retained_bytes.set(retained);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Live and retained heap bytes, from glibc's allocator statistics: what
/// tells a leak (allocated grows) from fragmentation (only retained does).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_usage() -> Option<(i64, i64)> {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct; it
    // locks each arena in turn and is safe to call from any thread.
    let info = unsafe { libc::mallinfo2() };
    // uordblks: in use from the arenas; hblkhd: in use as mmapped blocks;
    // arena: what the arenas hold from the OS.
    let allocated = info.uordblks.saturating_add(info.hblkhd);
    let retained = info.arena.saturating_add(info.hblkhd);
    Some((
        i64::try_from(allocated).ok()?,
        i64::try_from(retained).ok()?,
    ))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_usage() -> Option<(i64, i64)> {
    None
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
