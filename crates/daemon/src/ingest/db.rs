//! SQL of the ingest module: `share_reports` and `block_reports`.

use pooldesk_proto::model::CreditRow;
use rusqlite::{Connection, OptionalExtension, params};

use super::{BlockReport, IngestError, PoolReport};
use crate::ledger::{self, POOL_REWARDS, TransferKind, Violation};
use crate::miners;
use crate::store::WriteCtx;

/// Inserts a pool report and accrues its credit (a fast job: the only
/// refusal, a duplicate `event_id`, happens before any write). Returns the
/// miner's ledger account id and the receive time.
pub(super) fn insert_share_report(
    ctx: &mut WriteCtx<'_>,
    report: &PoolReport,
    work: u128,
    credited_msat: i64,
    body_sha256: [u8; 32],
    miner_known: bool,
    pplns: bool,
) -> Result<(i64, i64), IngestError> {
    let group = ctx.state.ledger_group();
    let account = ledger::miner_account(&report.miner_id);
    // Before any write: a credit beyond the balance bound is this report's
    // refusal alone, never a fault that fails its whole group.
    // Under PPLNS/SOLO the report carries no credit (it counts in the next
    // block's window): no rollup group, nothing accrued.
    let rollup = (credited_msat > 0).then_some(group);
    if credited_msat > 0 {
        check_credit(ctx, &account, credited_msat)?;
    }
    let inserted = ctx
        .conn
        .prepare_cached(
            "INSERT INTO share_reports (event_id, body_sha256, miner_id, worker_name, shares, difficulty, credited_msat, reported_ts, received_at, rollup_group)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (event_id) DO NOTHING",
        )?
        .execute(params![
            report.event_id,
            &body_sha256[..],
            report.miner_id,
            report.worker_name,
            report.shares as i64,
            report.difficulty as i64,
            credited_msat,
            report.ts,
            ctx.now_s,
            rollup
        ])?;
    if inserted == 0 {
        let event_id = report.event_id.clone().unwrap_or_default();
        let (hash, credited): (Vec<u8>, i64) = ctx
            .conn
            .prepare_cached(
                "SELECT body_sha256, credited_msat FROM share_reports WHERE event_id = ?1",
            )?
            .query_row([&event_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        return Err(if hash == body_sha256 {
            IngestError::Duplicate {
                event_id,
                credited_msat: credited,
            }
        } else {
            IngestError::EventConflict(event_id)
        });
    }
    if pplns {
        // Under PPLNS the report's work joins the share log the next
        // block's window is read from (its id read before any other insert).
        let source = format!("report:{}", ctx.conn.last_insert_rowid());
        let work = u64::try_from(work).unwrap_or(u64::MAX);
        crate::blocks::window::record(ctx.conn, &report.miner_id, work, &source, ctx.now_s)?;
    }
    // A miner seen in an acknowledged report exists; only new ones need
    // the insert.
    if !miner_known {
        miners::ensure_exists(ctx, &report.miner_id, "report")?;
    }
    let account_id = if credited_msat > 0 {
        let (account_id, accrued_group) = ledger::accrue(
            ctx,
            POOL_REWARDS,
            &account,
            TransferKind::ShareCredit,
            credited_msat,
        )?;
        debug_assert_eq!(group, accrued_group);
        account_id
    } else {
        // No credit, so possibly no account yet: id 0 is never a rowid,
        // and the caller then reads the balance as 0.
        ledger::account_id(ctx.conn, &account)?.unwrap_or(0)
    };
    let minute = ctx.now_s - ctx.now_s.rem_euclid(60);
    ctx.state
        .work_add(&report.miner_id, &report.worker_name, minute, work);
    Ok((account_id, ctx.now_s))
}

/// Refuses (without writing) a credit the ledger could not take: beyond
/// the balance bound of the miner or of the pool's reward source.
fn check_credit(
    ctx: &mut WriteCtx<'_>,
    account: &str,
    credited_msat: i64,
) -> Result<(), IngestError> {
    ledger::check_accrue(ctx, POOL_REWARDS, account, credited_msat).map_err(|e| match e {
        ledger::LedgerError::Db(e) => IngestError::Db(e),
        other => IngestError::BalanceBound(format!("credit refused: {other}")),
    })
}

/// Inserts a block report and accrues its credit (fast job: every refusal
/// — duplicate, the miner's 24-hour credit bound, the balance bound — is
/// decided before the first write). Duplicates are judged per miner, so
/// one miner's `event_id` or `block_hash` never blocks another's, and a
/// duplicate answers only the miner's own figures.
pub(super) fn insert_block_report(
    ctx: &mut WriteCtx<'_>,
    block: &BlockReport,
    credited_msat: i64,
    daily_limit_msat: i64,
    body_sha256: [u8; 32],
) -> Result<(i64, i64), IngestError> {
    let by_event: Option<i64> = ctx
        .conn
        .prepare_cached(
            "SELECT credited_msat FROM block_reports WHERE miner_id = ?1 AND event_id = ?2",
        )?
        .query_row(params![block.miner_id, block.event_id], |r| r.get(0))
        .optional()?;
    if let Some(credited_msat) = by_event {
        return Err(IngestError::Duplicate {
            event_id: block.event_id.clone(),
            credited_msat,
        });
    }
    let same_block: bool = ctx
        .conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM block_reports WHERE miner_id = ?1 AND block_hash = ?2)",
        )?
        .query_row(params![block.miner_id, block.block_hash], |r| r.get(0))?;
    if same_block {
        return Err(IngestError::DuplicateBlock(block.block_hash.clone()));
    }
    let day_msat: i64 = ctx
        .conn
        .prepare_cached(
            "SELECT COALESCE(SUM(credited_msat), 0) FROM block_reports WHERE miner_id = ?1 AND received_at > ?2",
        )?
        .query_row(params![block.miner_id, ctx.now_s - 86_400], |r| r.get(0))?;
    if i128::from(day_msat) + i128::from(credited_msat) > i128::from(daily_limit_msat) {
        return Err(IngestError::CreditLimit(format!(
            "block reports have credited {} BTC to this miner in the last 24 hours; this one would pass the bound of {} BTC (limits.block_credit_daily_btc for this tier)",
            pooldesk_proto::amount::format_msat_btc(day_msat),
            pooldesk_proto::amount::format_msat_btc(daily_limit_msat),
        )));
    }
    let account = ledger::miner_account(&block.miner_id);
    check_credit(ctx, &account, credited_msat)?;
    let group = ctx.state.ledger_group();
    ctx.conn
        .prepare_cached(
            "INSERT INTO block_reports (event_id, block_hash, body_sha256, miner_id, block_index, cid, capacity, work_score, credited_msat, reported_ts, received_at, rollup_group)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            block.event_id,
            block.block_hash,
            &body_sha256[..],
            block.miner_id,
            block.block_index,
            block.cid,
            block.capacity,
            block.work_score,
            credited_msat,
            block.ts,
            ctx.now_s,
            group
        ])?;
    miners::ensure_exists(ctx, &block.miner_id, "register")?;
    let (account_id, _) = ledger::accrue(
        ctx,
        POOL_REWARDS,
        &account,
        TransferKind::BlockCredit,
        credited_msat,
    )?;
    Ok((account_id, ctx.now_s))
}

/// Recent pool-report credits of a miner, newest first.
pub fn share_credits_of(
    conn: &Connection,
    miner_id: &str,
    limit: u32,
) -> rusqlite::Result<Vec<CreditRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT received_at, COALESCE(event_id, ''), worker_name, shares, difficulty, credited_msat
         FROM share_reports WHERE miner_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![miner_id, limit], |r| {
        let shares: i64 = r.get(3)?;
        let difficulty: i64 = r.get(4)?;
        Ok(CreditRow {
            at: r.get(0)?,
            event_id: r.get(1)?,
            worker_name: r.get(2)?,
            work: (i128::from(shares) * i128::from(difficulty)).to_string(),
            amount_msat: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Recent block credits of a miner, newest first.
pub fn block_credits_of(
    conn: &Connection,
    miner_id: &str,
    limit: u32,
) -> rusqlite::Result<Vec<CreditRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT received_at, event_id, work_score, credited_msat
         FROM block_reports WHERE miner_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![miner_id, limit], |r| {
        Ok(CreditRow {
            at: r.get(0)?,
            event_id: r.get(1)?,
            worker_name: String::new(),
            work: r.get(2)?,
            amount_msat: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Deletes raw reports older than `cutoff_s` and work minutes older than
/// `work_cutoff_s`, at most `limit` rows per table per call (the caller
/// repeats), so one call never holds the writer for long. Transfers are
/// money records and are never pruned. Raw reports go whatever the scheme:
/// the PPLNS window keeps its own copy of their work (`pplns_work`).
pub fn prune(
    ctx: &WriteCtx<'_>,
    cutoff_s: i64,
    work_cutoff_s: i64,
    limit: i64,
) -> rusqlite::Result<usize> {
    // Ids grow with time, so walking ids from the oldest needs no index on
    // received_at.
    let shares = ctx.conn.execute(
        "DELETE FROM share_reports WHERE id IN (
             SELECT id FROM share_reports ORDER BY id LIMIT ?2
         ) AND received_at < ?1",
        params![cutoff_s, limit],
    )?;
    let blocks = ctx.conn.execute(
        "DELETE FROM block_reports WHERE id IN (
             SELECT id FROM block_reports ORDER BY id LIMIT ?2
         ) AND received_at < ?1",
        params![cutoff_s, limit],
    )?;
    let work = ctx.conn.execute(
        "DELETE FROM work_minutes WHERE (miner_id, worker_name, minute) IN (
             SELECT miner_id, worker_name, minute FROM work_minutes WHERE minute < ?1 ORDER BY minute LIMIT ?2)",
        params![work_cutoff_s, limit],
    )?;
    Ok(shares + blocks + work)
}

/// Ingest invariants: every credit rollup transfer equals the sum of the
/// reports that carry its group (where those reports are still retained),
/// and every retained report points at an existing rollup.
pub fn verify(conn: &Connection, retention_cutoff_s: i64) -> rusqlite::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    let mut stmt = conn.prepare(
        "WITH reports AS (
             SELECT rollup_group, miner_id, SUM(credited_msat) AS total, COUNT(*) AS n, 'share_credit' AS kind
             FROM share_reports WHERE rollup_group IS NOT NULL GROUP BY rollup_group, miner_id
             UNION ALL
             SELECT rollup_group, miner_id, SUM(credited_msat), COUNT(*), 'block_credit'
             FROM block_reports GROUP BY rollup_group, miner_id
         ),
         -- Materialized so SQLite indexes it on (group, account, kind):
         -- joining the transfers table through its account index would
         -- scan a miner's whole history once per group (quadratic).
         credits AS MATERIALIZED (
             SELECT id, rollup_group, credit_account_id, kind, amount_msat, item_count, created_at
             FROM transfers WHERE rollup_group IS NOT NULL
         )
         SELECT r.rollup_group, r.miner_id, r.kind, r.total, r.n, t.amount_msat, t.item_count, t.created_at
         FROM reports r
         LEFT JOIN accounts a ON a.name = 'miner:' || r.miner_id
         LEFT JOIN credits t ON t.rollup_group = r.rollup_group AND t.credit_account_id = a.id AND t.kind = r.kind
         WHERE t.id IS NULL OR t.amount_msat <> r.total OR t.item_count <> r.n
         LIMIT 100",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Option<i64>>(5)?,
            r.get::<_, Option<i64>>(6)?,
            r.get::<_, Option<i64>>(7)?,
        ))
    })?;
    for row in rows {
        let (group, miner, kind, total, n, amount, items, created_at) = row?;
        match (amount, items) {
            (None, _) => violations.push(Violation(format!(
                "{n} {kind} reports of miner {miner} in rollup group {group} ({total} msat) have no ledger transfer"
            ))),
            // Part of a rollup may have been pruned: only a transfer
            // younger than the retention cutoff must match exactly.
            (Some(amount), Some(items)) if created_at.unwrap_or(0) >= retention_cutoff_s || n > items || total > amount => {
                violations.push(Violation(format!(
                    "rollup group {group} of miner {miner} ({kind}): transfer {amount} msat for {items} reports, but the reports sum to {total} msat over {n}"
                )))
            }
            _ => {}
        }
    }
    let orphans: i64 = conn.query_row(
        "SELECT COUNT(*) FROM transfers t
         WHERE t.kind IN ('share_credit', 'block_credit') AND t.created_at >= ?1
           AND t.rollup_group NOT IN (SELECT rollup_group FROM share_reports WHERE rollup_group IS NOT NULL UNION SELECT rollup_group FROM block_reports)",
        [retention_cutoff_s],
        |r| r.get(0),
    )?;
    if orphans > 0 {
        violations.push(Violation(format!(
            "{orphans} credit transfers inside the retention window have no reports"
        )));
    }
    Ok(violations)
}
