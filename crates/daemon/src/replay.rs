//! Replay protection for signed state changes that have no idempotency
//! record of their own (a payout address change). Owns `signed_events`.
//!
//! A personal-key signature covers the method, path and body, and the body
//! carries `ts` (checked against `ingest.timestamp_tolerance_s`) and a
//! unique `event_id`. Inside the window the `(miner, event_id)` pair is
//! remembered here, in the same transaction as the change it authorised,
//! so a captured request cannot be sent again (for instance to switch an
//! address back). Rows older than twice the window are pruned: by then the
//! timestamp alone refuses the request.

use rusqlite::params;

use crate::store::WriteCtx;

/// Longest `event_id` accepted on signed requests.
pub const MAX_EVENT_ID_LEN: usize = 128;

/// Checks an `event_id` from a signed body.
pub fn validate_event_id(event_id: &str) -> Result<(), String> {
    if event_id.is_empty()
        || event_id.len() > MAX_EVENT_ID_LEN
        || event_id.chars().any(char::is_control)
    {
        return Err(format!(
            "event_id must be 1 to {MAX_EVENT_ID_LEN} bytes without control characters"
        ));
    }
    Ok(())
}

/// Records `(miner, event_id)`; `false` when it was already used (a replay
/// or a client reusing ids), in which case nothing was written.
pub fn remember(
    ctx: &WriteCtx<'_>,
    miner_id: &str,
    event_id: &str,
    endpoint: &str,
) -> rusqlite::Result<bool> {
    let inserted = ctx
        .conn
        .prepare_cached(
            "INSERT INTO signed_events (miner_id, event_id, endpoint, seen_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (miner_id, event_id) DO NOTHING",
        )?
        .execute(params![miner_id, event_id, endpoint, ctx.now_s])?;
    Ok(inserted == 1)
}

/// Forgets events seen before `cutoff_s`, at most `limit` per call.
pub fn prune(ctx: &WriteCtx<'_>, cutoff_s: i64, limit: i64) -> rusqlite::Result<usize> {
    ctx.conn.execute(
        "DELETE FROM signed_events WHERE (miner_id, event_id) IN (
             SELECT miner_id, event_id FROM signed_events WHERE seen_at < ?1 LIMIT ?2)",
        params![cutoff_s, limit],
    )
}
