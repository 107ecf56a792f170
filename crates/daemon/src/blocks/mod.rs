//! Blocks found by the pool's wallet and how they pay (issue 14). Owns
//! `blocks`, `block_parts`, `block_window` (migration 0010).
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
    let scheme = scheme::Scheme::from_config(&app.config.accounting);
    let applied = app
        .store
        .write(move |ctx| db::apply(ctx, &scheme, difficulty, &coinbases))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let changed = applied.changed.len();
    for entry in applied.audits {
        app.bus.publish(BusEvent::Audit(entry));
    }
    for row in applied.changed {
        app.bus.publish(BusEvent::Block(row));
    }
    Ok(changed)
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

#[cfg(test)]
mod tests;
