//! Housekeeping: prunes raw reports past `ingest.retention_days` and work
//! minutes past two days, in small steps so the writer is never held long,
//! and drops idle rate-limiter state.

use std::time::Duration;

use crate::app::App;

/// Rows deleted per step and table.
const STEP_ROWS: i64 = 5_000;
/// Work minutes kept (hashrate queries need one hour; two days give the
/// admin a history).
const WORK_RETENTION_S: i64 = 2 * 86_400;

pub async fn run(app: App) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        app.auth.retain_recent();
        let now = crate::clock::now_s();
        let cutoff = now - i64::from(app.config.ingest.retention_days) * 86_400;
        let work_cutoff = now - WORK_RETENTION_S;
        let replay_cutoff = now - 2 * app.config.ingest.timestamp_tolerance_s;
        let scheme = crate::blocks::scheme::Scheme::from_config(&app.config.accounting);
        let difficulty = crate::blocks::last_difficulty();
        loop {
            let scheme = scheme.clone();
            let deleted = app
                .store
                .write(move |ctx| {
                    // The current PPLNS window is kept whatever its age.
                    let keep_from = crate::blocks::db::window_start(ctx.conn, &scheme, difficulty)?;
                    let window =
                        crate::blocks::window::prune(ctx.conn, cutoff, STEP_ROWS, keep_from)?;
                    Ok::<_, rusqlite::Error>(
                        window
                            + crate::ingest::prune(ctx, cutoff, work_cutoff, STEP_ROWS)?
                            + crate::shares::prune(ctx, cutoff, STEP_ROWS)?
                            + crate::replay::prune(ctx, replay_cutoff, STEP_ROWS)?,
                    )
                })
                .await;
            match deleted {
                Ok(n) if n > 0 => {
                    tracing::debug!(rows = n, "pruned old reports");
                    if app.shutdown.is_cancelled() {
                        return;
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "pruning failed; will retry");
                    break;
                }
            }
        }
    }
}
