//! Blocks found by the pool's wallet and how they pay (issue 14). Owns
//! `blocks`, `block_parts`, `block_window` (migration 0011) and the PPLNS
//! share log `pplns_work` (migration 0012, [`window`]).
//!
//! Money comes only from the wallet: every coinbase paying the pool's
//! wallet (`listsinceblock`, categories generate/immature/orphan) is a
//! block, keyed by its hash and its coinbase txid. A pool's block-solve
//! report (`block_solves`, src/shares) only names the finder. A block is
//! `immature` until 100 confirmations, then `matured` and its split is
//! credited (`pool:blocks → miner:<id>`, one transfer per miner); while its
//! coinbase is off the best chain it is `orphaned` (nothing credited, or a
//! credited split reversed). The scheme in force when the block is first
//! seen pays it (`blocks.scheme`, audited with `block_found`).

pub mod db;
pub mod scheme;
pub mod split;
pub mod window;

use std::time::Duration;

use crate::app::App;
use crate::events::BusEvent;

/// One look at the wallet: applies every coinbase it reports. Returns how
/// many blocks changed. Errors are logged by the caller and retried at the
/// next tick (nothing is half-applied: one write job).
pub async fn poll_once(app: &App) -> anyhow::Result<usize> {
    let Some(coinbases) = app.wallet.coinbases().await? else {
        return Ok(0);
    };
    if coinbases.is_empty() {
        return Ok(0);
    }
    let difficulty = app.wallet.network_difficulty().await?.unwrap_or(0.0);
    remember_difficulty(difficulty);
    let scheme = scheme::Scheme::from_config(&app.config.accounting);
    let applied = app
        .store
        .write(move |ctx| db::apply(ctx, &scheme, difficulty, &coinbases))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let changed = applied.changed.len();
    refresh_metrics(app).await;
    for entry in applied.audits {
        app.bus.publish(BusEvent::Audit(entry));
    }
    for row in applied.changed {
        app.bus.publish(BusEvent::Block(row));
    }
    Ok(changed)
}

/// Blocks by state and the pending liability, for `/metrics`.
async fn refresh_metrics(app: &App) {
    let read = app
        .store
        .read(|conn| Ok((db::counts_by_state(conn)?, db::pending_msat(conn, None)?)))
        .await;
    if let Ok((counts, pending)) = read {
        for state in ["immature", "matured", "orphaned"] {
            let n = counts
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            app.metrics
                .blocks
                .get_or_create(&crate::metrics::StateLabel { state })
                .set(n);
        }
        app.metrics.blocks_pending_msat.set(pending);
    }
}

/// The follower loop: every `accounting.blocks_poll_s`.
pub async fn run(app: App) {
    let mut tick = tokio::time::interval(Duration::from_secs(app.config.accounting.blocks_poll_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = poll_once(&app).await {
            tracing::warn!(error = %e, "following the wallet's coinbases failed");
        }
    }
}

/// The network difficulty the follower last read (f64 bits; 0 before the
/// first look). Sizes the current window on miner pages without an RPC
/// per page view.
static LAST_DIFFICULTY_BITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn remember_difficulty(difficulty: f64) {
    LAST_DIFFICULTY_BITS.store(difficulty.to_bits(), std::sync::atomic::Ordering::Relaxed);
}

pub fn last_difficulty() -> f64 {
    f64::from_bits(LAST_DIFFICULTY_BITS.load(std::sync::atomic::Ordering::Relaxed))
}

/// What a miner's page shows about blocks.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MinerBlocks {
    /// Their parts of immature blocks.
    pub pending_msat: i64,
    /// Their work in the current PPLNS window, and the window's total
    /// (both 0 under PPS and SOLO).
    pub window_work: u64,
    pub window_total_work: u64,
    /// The last blocks and what each paid (or will pay) them.
    pub recent_blocks: Vec<MinerBlock>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MinerBlock {
    pub hash: String,
    pub height: i64,
    pub state: pooldesk_proto::model::BlockState,
    pub amount_msat: i64,
    pub amount_btc: String,
}

pub async fn miner_blocks(
    app: &App,
    miner: String,
) -> Result<MinerBlocks, crate::store::StoreError> {
    let scheme = scheme::Scheme::from_config(&app.config.accounting);
    let difficulty = last_difficulty();
    app.store
        .read(move |conn| {
            let pending_msat = db::pending_msat(conn, Some(&miner))?;
            let (window_work, window_total_work) =
                if scheme.kind == pooldesk_proto::model::PayoutScheme::Pplns {
                    let size = scheme.pplns_window_work(difficulty);
                    let shares = split::window(window::newest_first(conn, None, size)?, size);
                    let total: u64 = shares.iter().map(|s| s.work).sum();
                    let mine: u64 = shares
                        .iter()
                        .filter(|s| s.miner_id == miner)
                        .map(|s| s.work)
                        .sum();
                    (mine, total)
                } else {
                    (0, 0)
                };
            let recent_blocks = db::blocks_of_miner(conn, &miner, 10)?
                .into_iter()
                .map(|(hash, height, state, amount_msat)| MinerBlock {
                    hash,
                    height,
                    state,
                    amount_msat,
                    amount_btc: pooldesk_proto::amount::format_btc(amount_msat / 1000),
                })
                .collect();
            Ok(MinerBlocks {
                pending_msat,
                window_work,
                window_total_work,
                recent_blocks,
            })
        })
        .await
}

pub async fn list(
    app: &App,
    limit: u32,
) -> Result<Vec<pooldesk_proto::model::BlockRow>, crate::store::StoreError> {
    app.store.read(move |conn| db::list(conn, limit)).await
}

pub async fn statement(
    app: &App,
    hash: String,
    with_shares: bool,
) -> Result<Option<pooldesk_proto::model::BlockStatement>, crate::store::StoreError> {
    app.store
        .read(move |conn| db::statement(conn, &hash, with_shares))
        .await
}

/// A block's window, optionally one miner's shares; `None`: no such block.
pub async fn shares(
    app: &App,
    hash: String,
    miner: Option<String>,
) -> Result<Option<Vec<pooldesk_proto::model::StatementShare>>, crate::store::StoreError> {
    app.store
        .read(move |conn| {
            if db::get(conn, &hash)?.is_none() {
                return Ok(None);
            }
            db::window_shares(conn, &hash, miner.as_deref()).map(Some)
        })
        .await
}

#[cfg(test)]
mod tests;
