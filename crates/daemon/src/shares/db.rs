//! SQL of the batched share service: `share_origins`, `pool_shares`,
//! `share_rejects`, `block_solves`.

use std::collections::HashMap;

use pooldesk_proto::model::OriginStatus;
use rusqlite::{Connection, OptionalExtension, params};

use super::SharesError;
use super::parse::Batch;
use crate::ledger::{self, POOL_REWARDS, TransferKind, Violation};
use crate::miners;
use crate::store::WriteCtx;

/// What one batch changed, computed inside the writer.
#[derive(Debug, Default)]
pub struct Written {
    /// Seqs recorded now, as inclusive ranges in batch order.
    pub new_ranges: Vec<(i64, i64)>,
    pub new_count: usize,
    pub duplicate_count: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub blocks: usize,
    pub credited_msat: i64,
    /// Per miner: (ledger account id, credited msat) for the credit feed.
    pub credits: HashMap<String, (i64, i64)>,
    /// (miner, worker, minute) → work, for the in-memory hashrate.
    pub work: HashMap<(String, String, i64), u128>,
    /// (miner, worker, minute) → (accepted, rejected) shares, new ones only.
    pub counts: HashMap<(String, String, i64), (u64, u64)>,
    pub received_at: i64,
}

/// Refuses, before anything is written, a batch whose credits could pass
/// the ledger's balance bound (per miner, and for the pool's reward source
/// as a whole). Counts every accepted share, resends included: at worst a
/// resend near the 21,000,000 BTC bound is refused although it would
/// credit nothing, never a credit that fails the group commit.
pub(super) fn check_bounds(
    ctx: &mut WriteCtx<'_>,
    batch: &Batch,
    uncredited: &dyn Fn(&str) -> bool,
) -> Result<(), SharesError> {
    let mut per_miner: HashMap<&str, i128> = HashMap::new();
    let mut total: i128 = 0;
    for share in batch
        .shares
        .iter()
        .filter(|s| s.accepted && !uncredited(&s.miner))
    {
        *per_miner.entry(share.miner.as_str()).or_default() += i128::from(share.credit_msat);
        total += i128::from(share.credit_msat);
    }
    let bound = |what: String| SharesError::BalanceBound(what);
    let as_amount = |v: i128| {
        i64::try_from(v)
            .ok()
            .filter(|v| *v <= ledger::MAX_TRANSFER_MSAT)
    };
    for (miner, amount) in &per_miner {
        let account = ledger::miner_account(miner);
        let amount = as_amount(*amount).ok_or_else(|| {
            bound(format!(
                "miner {miner} would be credited beyond the 21,000,000 BTC bound"
            ))
        })?;
        if amount == 0 {
            continue;
        }
        ledger::check_accrue(ctx, POOL_REWARDS, &account, amount).map_err(|e| match e {
            ledger::LedgerError::Db(e) => SharesError::Db(e),
            other => bound(format!("miner {miner}: {other}")),
        })?;
    }
    if total > 0 {
        let total = as_amount(total)
            .ok_or_else(|| bound("the batch credits more than 21,000,000 BTC".into()))?;
        // The source side for the whole batch at once (the per-miner checks
        // above each saw only their own part).
        ledger::check_source(ctx, POOL_REWARDS, total).map_err(|e| match e {
            ledger::LedgerError::Db(e) => SharesError::Db(e),
            other => bound(format!("{other}")),
        })?;
    }
    Ok(())
}

/// Records a batch: every share not seen before is inserted, accepted
/// ones are accrued to their miner (rolled up per group commit, kind
/// `pool_share_credit`), rejected ones counted per miner and reason, block
/// solves recorded. A fast job: it refuses nothing (duplicates are part of
/// the answer), so any error here is a storage fault.
pub(super) fn insert_batch(
    ctx: &mut WriteCtx<'_>,
    batch: &Batch,
    inactive: &dyn Fn(&str) -> bool,
    pplns: bool,
) -> Result<Written, SharesError> {
    let now_s = ctx.now_s;
    let group = ctx.state.ledger_group();
    let conn = ctx.conn;
    conn.prepare_cached(
        "INSERT INTO share_origins (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )?
    .execute(params![batch.origin, now_s])?;
    let (origin_id, pruned_through): (i64, i64) = conn
        .prepare_cached("SELECT id, pruned_through_seq FROM share_origins WHERE name = ?1")?
        .query_row([&batch.origin], |r| Ok((r.get(0)?, r.get(1)?)))?;

    let mut written = Written {
        received_at: now_s,
        ..Written::default()
    };
    let mut rejects: HashMap<(&str, &str), i64> = HashMap::new();
    // Borrowed keys while looping (no allocation per share), owned after.
    let mut credits: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut work: HashMap<(&str, &str, i64), u128> = HashMap::new();
    let mut counts: HashMap<(&str, &str, i64), (u64, u64)> = HashMap::new();
    let mut accounts: HashMap<&str, String> = HashMap::new();
    let mut max_seq = 0i64;
    let mut last_share_ms = i64::MIN;
    // Under PPLNS: each miner's accepted work in this batch (one log row
    // each), and which part holds each block-solving share.
    let mut window = crate::blocks::window::BatchWork::default();
    let mut solves_in_window: Vec<(i64, usize)> = Vec::new();
    {
        let mut insert = conn.prepare_cached(
            "INSERT INTO pool_shares (origin_id, seq, miner_id, worker_name, diff, sdiff, accepted, reject_reason, share_ms, hash, height, credited_msat, received_at, rollup_group)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT DO NOTHING",
        )?;
        let mut new_range: Option<(i64, i64)> = None;
        for share in &batch.shares {
            let fresh = share.seq > pruned_through && {
                // A deactivated miner's shares are recorded, not credited.
                let credit = if share.accepted && !inactive(&share.miner) {
                    share.credit_msat
                } else {
                    0
                };
                let hash = share.hash.as_deref().and_then(|h| hex::decode(h).ok());
                let inserted = insert.execute(params![
                    origin_id,
                    share.seq,
                    share.miner,
                    share.worker,
                    share.diff_text,
                    share.sdiff,
                    share.accepted,
                    share.reason,
                    share.share_ms,
                    hash,
                    share.height,
                    credit,
                    now_s,
                    if credit > 0 { Some(group) } else { None }
                ])?;
                if inserted == 1 && credit > 0 {
                    let account = accounts
                        .entry(share.miner.as_str())
                        .or_insert_with(|| ledger::miner_account(&share.miner));
                    let (account_id, accrued_group) = ledger::accrue(
                        ctx,
                        POOL_REWARDS,
                        account,
                        TransferKind::PoolShareCredit,
                        credit,
                    )?;
                    debug_assert_eq!(accrued_group, group);
                    let entry = credits
                        .entry(share.miner.as_str())
                        .or_insert((account_id, 0));
                    entry.1 = entry
                        .1
                        .checked_add(credit)
                        .ok_or(ledger::LedgerError::AmountOutOfRange)?;
                    written.credited_msat = written
                        .credited_msat
                        .checked_add(credit)
                        .ok_or(ledger::LedgerError::AmountOutOfRange)?;
                }
                inserted == 1
            };
            if !fresh {
                written.duplicate_count += 1;
                if let Some(range) = new_range.take() {
                    written.new_ranges.push(range);
                }
                continue;
            }
            written.new_count += 1;
            new_range = match new_range {
                Some((first, last)) if last.checked_add(1) == Some(share.seq) => {
                    Some((first, share.seq))
                }
                Some(range) => {
                    written.new_ranges.push(range);
                    Some((share.seq, share.seq))
                }
                None => Some((share.seq, share.seq)),
            };
            max_seq = max_seq.max(share.seq);
            last_share_ms = last_share_ms.max(share.share_ms);
            {
                let at_s = (share.share_ms / 1000).min(now_s);
                let count = counts
                    .entry((
                        share.miner.as_str(),
                        share.worker.as_str(),
                        at_s - at_s.rem_euclid(60),
                    ))
                    .or_default();
                if share.accepted {
                    count.0 += 1;
                } else {
                    count.1 += 1;
                }
            }
            if share.accepted {
                written.accepted += 1;
                // Work, like credit, only for miners who may be paid.
                if pplns && !inactive(&share.miner) {
                    let work = u64::try_from(share.work).unwrap_or(u64::MAX);
                    let part = window.add(&share.miner, work, share.seq);
                    if share.block {
                        solves_in_window.push((share.seq, part));
                    }
                }
                if share.work > 0 {
                    // Hashrate counts work in the minute the share was
                    // found (never in the future).
                    let at_s = (share.share_ms / 1000).min(now_s);
                    let minute = at_s - at_s.rem_euclid(60);
                    let slot = work
                        .entry((share.miner.as_str(), share.worker.as_str(), minute))
                        .or_default();
                    *slot = slot.saturating_add(share.work);
                }
            } else {
                written.rejected += 1;
                *rejects
                    .entry((share.miner.as_str(), share.reason.as_deref().unwrap_or("")))
                    .or_default() += 1;
            }
            if share.block {
                written.blocks += 1;
                conn.prepare_cached(
                    "INSERT INTO block_solves (origin_id, seq, height, hash, miner_id, worker_name, share_ms, received_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    origin_id,
                    share.seq,
                    share.height,
                    share.hash,
                    share.miner,
                    share.worker,
                    share.share_ms,
                    now_s
                ])?;
            }
        }
        if let Some(range) = new_range {
            written.new_ranges.push(range);
        }
    }
    if pplns {
        let ids = window.record(conn, &batch.origin, now_s)?;
        for (seq, part) in solves_in_window {
            conn.prepare_cached(
                "UPDATE block_solves SET window_id = ?3 WHERE origin_id = ?1 AND seq = ?2",
            )?
            .execute(params![origin_id, seq, ids[part]])?;
        }
    }
    written.credits = credits
        .into_iter()
        .map(|(miner, v)| (miner.to_string(), v))
        .collect();
    written.work = work
        .into_iter()
        .map(|((m, w, minute), v)| ((m.to_string(), w.to_string(), minute), v))
        .collect();
    written.counts = counts
        .into_iter()
        .map(|((m, w, minute), v)| ((m.to_string(), w.to_string(), minute), v))
        .collect();
    if written.new_count == 0 {
        // Still say the origin is alive.
        conn.prepare_cached(
            "UPDATE share_origins SET last_batch_at = ?2, backlog_bytes = COALESCE(?3, backlog_bytes),
                 quarantined_lines = COALESCE(?4, quarantined_lines) WHERE id = ?1",
        )?
        .execute(params![
            origin_id,
            now_s,
            batch.backlog_bytes,
            batch.quarantined_lines
        ])?;
        return Ok(written);
    }
    // Every miner with a recorded share exists (the admin sees it).
    let mut seen_miners: Vec<&str> = batch.shares.iter().map(|s| s.miner.as_str()).collect();
    seen_miners.sort_unstable();
    seen_miners.dedup();
    for miner in seen_miners {
        miners::ensure_exists(ctx, miner, "report")?;
    }
    {
        let mut upsert = conn.prepare_cached(
            "INSERT INTO share_rejects (miner_id, reason, count, last_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (miner_id, reason) DO UPDATE SET count = count + excluded.count, last_at = excluded.last_at",
        )?;
        for ((miner, reason), count) in &rejects {
            upsert.execute(params![miner, reason, count, now_s])?;
        }
    }
    for ((miner, worker, minute), work) in &written.work {
        ctx.state.work_add(miner, worker, *minute, *work);
    }
    conn.prepare_cached(
        "UPDATE share_origins SET
             max_seq = MAX(max_seq, ?2),
             accepted_total = accepted_total + ?3,
             rejected_total = rejected_total + ?4,
             blocks_total = blocks_total + ?5,
             credited_msat_total = credited_msat_total + ?6,
             last_share_ms = MAX(COALESCE(last_share_ms, ?7), ?7),
             last_batch_at = ?8,
             backlog_bytes = COALESCE(?9, backlog_bytes),
             quarantined_lines = COALESCE(?10, quarantined_lines)
         WHERE id = ?1",
    )?
    .execute(params![
        origin_id,
        max_seq,
        written.accepted as i64,
        written.rejected as i64,
        written.blocks as i64,
        written.credited_msat,
        last_share_ms,
        now_s,
        batch.backlog_bytes,
        batch.quarantined_lines
    ])?;
    Ok(written)
}

/// Every origin, for the snapshot and the TUI.
pub fn origins(conn: &Connection) -> rusqlite::Result<Vec<OriginStatus>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, max_seq, accepted_total, rejected_total, blocks_total, credited_msat_total,
                last_share_ms, last_batch_at, backlog_bytes, quarantined_lines
         FROM share_origins ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(OriginStatus {
            name: r.get(0)?,
            max_seq: r.get::<_, i64>(1)? as u64,
            accepted: r.get::<_, i64>(2)? as u64,
            rejected: r.get::<_, i64>(3)? as u64,
            blocks: r.get::<_, i64>(4)? as u64,
            credited_msat: r.get(5)?,
            last_share_at: r.get::<_, Option<i64>>(6)?.map(|ms| ms.div_euclid(1000)),
            last_batch_at: r.get(7)?,
            backlog_bytes: r.get::<_, Option<i64>>(8)?.map(|v| v.max(0) as u64),
            quarantined_lines: r.get::<_, Option<i64>>(9)?.map(|v| v.max(0) as u64),
        })
    })?;
    rows.collect()
}

/// Rejected shares per miner and reason: `(miner, reason, count)`.
/// A block solve as the pool reported it (no money: rewards come from
/// the wallet's coinbase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSolve {
    pub received_at: i64,
    pub height: Option<i64>,
    pub hash: String,
    pub miner_id: String,
}

/// Block solves received at or after `from_s`, oldest first. Blocks are
/// rare: a scan is fine.
pub fn blocks_since(conn: &Connection, from_s: i64) -> rusqlite::Result<Vec<BlockSolve>> {
    let mut stmt = conn.prepare_cached(
        "SELECT received_at, height, hash, miner_id FROM block_solves WHERE received_at >= ?1
         ORDER BY received_at, origin_id, seq",
    )?;
    let rows = stmt.query_map([from_s], |r| {
        Ok(BlockSolve {
            received_at: r.get(0)?,
            height: r.get(1)?,
            hash: r.get(2)?,
            miner_id: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// The miner whose share solved block `hash`, if the pool reported it.
pub fn solve_of(conn: &Connection, hash: &str) -> rusqlite::Result<Option<Solve>> {
    conn.prepare_cached(
        "SELECT miner_id, window_id FROM block_solves WHERE lower(hash) = lower(?1)
         ORDER BY received_at, origin_id, seq LIMIT 1",
    )?
    .query_row([hash], |r| {
        Ok(Solve {
            miner_id: r.get(0)?,
            window_id: r.get(1)?,
        })
    })
    .optional()
}

/// The pool's report of who solved a block.
#[derive(Debug, Clone)]
pub struct Solve {
    pub miner_id: String,
    /// The PPLNS log row holding the solving share (recorded under PPLNS).
    pub window_id: Option<i64>,
}

pub fn rejects(conn: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT miner_id, reason, count FROM share_rejects ORDER BY 1, 2")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// Deletes raw shares received before `cutoff_s`, walking each origin in
/// seq order, at most `limit` rows per call (the caller repeats). The
/// origin's `pruned_through_seq` moves up to the highest seq deleted so a
/// resend of a pruned share is never credited again.
pub fn prune(ctx: &WriteCtx<'_>, cutoff_s: i64, limit: i64) -> rusqlite::Result<usize> {
    let origins: Vec<(i64, i64)> = ctx
        .conn
        .prepare_cached("SELECT id, pruned_through_seq FROM share_origins")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut deleted = 0;
    for (origin_id, through) in origins {
        // The oldest `limit` rows of the origin; stop at the first young one
        // so the floor never passes a share still retained.
        let rows: Vec<(i64, i64)> = ctx
            .conn
            .prepare_cached(
                "SELECT seq, received_at FROM pool_shares WHERE origin_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?
            .query_map(params![origin_id, through, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let last_old = rows
            .iter()
            .take_while(|(_, received_at)| *received_at < cutoff_s)
            .last()
            .map(|(seq, _)| *seq);
        let Some(last_old) = last_old else { continue };
        deleted += ctx.conn.execute(
            "DELETE FROM pool_shares WHERE origin_id = ?1 AND seq > ?2 AND seq <= ?3",
            params![origin_id, through, last_old],
        )?;
        ctx.conn.execute(
            "UPDATE share_origins SET pruned_through_seq = ?2 WHERE id = ?1",
            params![origin_id, last_old],
        )?;
    }
    Ok(deleted)
}

/// Reconciliation of the batched shares with the ledger:
/// - each `pool_share_credit` rollup transfer equals the credited shares
///   that carry its group (sum and count), while those are retained;
/// - no such transfer inside the retention window lacks its shares;
/// - the origins' lifetime credited totals sum to all `pool_share_credit`
///   transfers (holds forever: pruning does not touch either side);
/// - every block solve whose share is retained matches an accepted share
///   with the same hash.
pub fn verify(conn: &Connection, retention_cutoff_s: i64) -> rusqlite::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    let mut stmt = conn.prepare(
        "WITH shares AS (
             SELECT rollup_group, miner_id, SUM(credited_msat) AS total, COUNT(*) AS n
             FROM pool_shares WHERE rollup_group IS NOT NULL GROUP BY rollup_group, miner_id
         ),
         credits AS MATERIALIZED (
             SELECT id, rollup_group, credit_account_id, amount_msat, item_count, created_at
             FROM transfers WHERE kind = 'pool_share_credit'
         )
         SELECT s.rollup_group, s.miner_id, s.total, s.n, t.amount_msat, t.item_count, t.created_at
         FROM shares s
         LEFT JOIN accounts a ON a.name = 'miner:' || s.miner_id
         LEFT JOIN credits t ON t.rollup_group = s.rollup_group AND t.credit_account_id = a.id
         WHERE t.id IS NULL OR t.amount_msat <> s.total OR t.item_count <> s.n
         LIMIT 100",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, Option<i64>>(6)?,
        ))
    })?;
    for row in rows {
        let (group, miner, total, n, amount, items, created_at) = row?;
        match (amount, items) {
            (None, _) => violations.push(Violation(format!(
                "{n} batched shares of miner {miner} in rollup group {group} ({total} msat) have no ledger transfer"
            ))),
            (Some(amount), Some(items))
                if created_at.unwrap_or(0) >= retention_cutoff_s || n > items || total > amount =>
            {
                violations.push(Violation(format!(
                    "rollup group {group} of miner {miner} (pool_share_credit): transfer {amount} msat for {items} shares, but the shares sum to {total} msat over {n}"
                )))
            }
            _ => {}
        }
    }
    let orphans: i64 = conn.query_row(
        "SELECT COUNT(*) FROM transfers t
         WHERE t.kind = 'pool_share_credit' AND t.created_at >= ?1
           -- IN (subquery) is built once as an index; a correlated
           -- NOT EXISTS would scan every share per transfer.
           AND t.rollup_group NOT IN (SELECT rollup_group FROM pool_shares WHERE rollup_group IS NOT NULL)",
        [retention_cutoff_s],
        |r| r.get(0),
    )?;
    if orphans > 0 {
        violations.push(Violation(format!(
            "{orphans} batched-share credit transfers inside the retention window have no shares"
        )));
    }
    let (origins_total, transfers_total): (i64, i64) = conn.query_row(
        "SELECT (SELECT COALESCE(SUM(credited_msat_total), 0) FROM share_origins),
                (SELECT COALESCE(SUM(amount_msat), 0) FROM transfers WHERE kind = 'pool_share_credit')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if origins_total != transfers_total {
        violations.push(Violation(format!(
            "share origins credited {origins_total} msat in total, but pool_share_credit transfers sum to {transfers_total} msat"
        )));
    }
    let bad_blocks: i64 = conn.query_row(
        "SELECT COUNT(*) FROM block_solves b JOIN pool_shares s ON s.origin_id = b.origin_id AND s.seq = b.seq
         WHERE s.accepted = 0 OR s.hash IS NULL OR lower(hex(s.hash)) <> lower(b.hash)",
        [],
        |r| r.get(0),
    )?;
    if bad_blocks > 0 {
        violations.push(Violation(format!(
            "{bad_blocks} block solves do not match an accepted share with the same hash"
        )));
    }
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::StoreMetrics;
    use crate::shares::parse::parse_batch;
    use crate::store::{Store, StoreOptions};

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("ledger.sqlite"),
            StoreOptions::default(),
            StoreMetrics::new(),
        )
        .unwrap();
        (dir, store)
    }

    fn batch(seqs: std::ops::RangeInclusive<i64>) -> Batch {
        let shares: Vec<String> = seqs
            .map(|seq| {
                format!(
                    r#"{{"seq":{seq},"miner":"m{}","worker":"w","diff":2,"sdiff":3.5,"accepted":true,"time_s":1796163316.5}}"#,
                    seq % 3
                )
            })
            .collect();
        let body = format!(r#"{{"origin":"o","ts":1,"shares":[{}]}}"#, shares.join(","));
        parse_batch(body.as_bytes(), 1000, 10_000).unwrap()
    }

    fn write(store: &Store, b: Batch) -> Written {
        store
            .write_blocking(move |ctx| insert_batch(ctx, &b, &|_| false, false))
            .unwrap()
    }

    fn clean(store: &Store) {
        let violations = store
            .read_blocking(|conn| {
                let mut v = crate::ledger::verify(conn)?;
                v.extend(verify(conn, 0)?);
                Ok(v)
            })
            .unwrap();
        assert!(violations.is_empty(), "{violations:?}");
    }

    #[test]
    fn resends_and_pruned_seqs_are_never_credited_again() {
        let (_dir, store) = open();
        let w = write(&store, batch(1..=10));
        assert_eq!((w.new_count, w.credited_msat), (10, 20_000));
        let w = write(&store, batch(5..=12));
        assert_eq!((w.new_count, w.duplicate_count), (2, 6));
        assert_eq!(w.new_ranges, vec![(11, 12)]);
        clean(&store);
        // Everything received before "now + 1" is old: all 12 pruned.
        let cutoff = crate::clock::now_s() + 1;
        let pruned = store
            .write_blocking(move |ctx| prune(ctx, cutoff, 5))
            .unwrap();
        assert_eq!(pruned, 5);
        let pruned = store
            .write_blocking(move |ctx| prune(ctx, cutoff, 100))
            .unwrap();
        assert_eq!(pruned, 7);
        // A resend of pruned seqs is a duplicate, not a new credit.
        let w = write(&store, batch(1..=13));
        assert_eq!((w.new_count, w.duplicate_count), (1, 12));
        let owed: i64 = store
            .read_blocking(|conn| {
                conn.query_row(
                    "SELECT SUM(amount_msat) FROM transfers WHERE kind = 'pool_share_credit'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(owed, 13 * 2000);
        let violations = store.read_blocking(|conn| verify(conn, i64::MAX)).unwrap();
        assert!(violations.is_empty(), "{violations:?}");
    }
}
