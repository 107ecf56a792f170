//! SQL of the blocks module (tables of migration 0010). Reads take a
//! `Connection`; writes run inside the writer's job.

use pooldesk_proto::amount::format_btc;
use pooldesk_proto::model::{
    BlockRow, BlockState, BlockStatement, PayoutScheme, StatementPart, StatementShare,
};
use rusqlite::{Connection, OptionalExtension, params};

/// Coinbase maturity (consensus): a coinbase is spendable once it has this
/// many confirmations.
pub const COINBASE_MATURITY: i64 = 100;

pub fn parse_state(text: &str) -> BlockState {
    match text {
        "matured" => BlockState::Matured,
        "orphaned" => BlockState::Orphaned,
        _ => BlockState::Immature,
    }
}

pub fn parse_scheme(text: &str) -> PayoutScheme {
    match text {
        "pplns" => PayoutScheme::Pplns,
        "solo" => PayoutScheme::Solo,
        _ => PayoutScheme::Pps,
    }
}

const ROW_COLUMNS: &str = "hash, height, coinbase_txid, state, confirmations, reward_msat,
     pool_fee_msat, scheme, found_at, finder_miner_id, credited_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BlockRow> {
    let state = parse_state(&r.get::<_, String>(3)?);
    let confirmations: i64 = r.get(4)?;
    let reward_msat: i64 = r.get(5)?;
    Ok(BlockRow {
        hash: r.get(0)?,
        height: r.get(1)?,
        coinbase_txid: r.get(2)?,
        state,
        confirmations,
        confirmations_to_maturity: match state {
            BlockState::Matured => 0,
            _ => (COINBASE_MATURITY - confirmations.max(0)).max(0),
        },
        reward_msat,
        reward_btc: format_btc(reward_msat / 1000),
        pool_fee_msat: r.get(6)?,
        scheme: parse_scheme(&r.get::<_, String>(7)?),
        found_at: r.get(8)?,
        finder_miner_id: r.get(9)?,
        credited_at: r.get(10)?,
    })
}

/// Blocks, highest first.
pub fn list(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<BlockRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM blocks ORDER BY height DESC, hash LIMIT ?1"
    ))?;
    stmt.query_map([limit.clamp(1, 1000)], row)?.collect()
}

pub fn get(conn: &Connection, hash: &str) -> rusqlite::Result<Option<BlockRow>> {
    conn.prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM blocks WHERE hash = ?1"))?
        .query_row([hash], row)
        .optional()
}

/// The statement of a block; `with_shares` adds the window.
pub fn statement(
    conn: &Connection,
    hash: &str,
    with_shares: bool,
) -> rusqlite::Result<Option<BlockStatement>> {
    let Some(block) = get(conn, hash)? else {
        return Ok(None);
    };
    #[allow(clippy::type_complexity)]
    let (window_work, total_work, first_share_id, last_share_id, shares_sha256, pool_fee_bps): (
        i64,
        i64,
        Option<i64>,
        Option<i64>,
        String,
        u32,
    ) = conn.query_row(
        "SELECT window_work, total_work, first_share_id, last_share_id, shares_sha256, pool_fee_bps
         FROM blocks WHERE hash = ?1",
        [hash],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
    )?;
    let parts: Vec<StatementPart> = conn
        .prepare_cached(
            "SELECT miner_id, work, amount_msat FROM block_parts WHERE block_hash = ?1 ORDER BY miner_id",
        )?
        .query_map([hash], |r| {
            Ok(StatementPart {
                miner_id: r.get(0)?,
                work: r.get::<_, i64>(1)? as u64,
                amount_msat: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let shares = if with_shares {
        window_shares(conn, hash, None)?
    } else {
        Vec::new()
    };
    Ok(Some(BlockStatement {
        scheme: block.scheme,
        window_work: window_work as u64,
        total_work: total_work as u64,
        first_share_id,
        last_share_id,
        reward_msat: block.reward_msat,
        pool_fee_bps,
        pool_fee_msat: block.pool_fee_msat,
        distributed_msat: parts.iter().map(|p| p.amount_msat).sum(),
        parts,
        shares_sha256,
        shares,
        block,
    }))
}

/// The window of a block, oldest first, optionally one miner's shares.
pub fn window_shares(
    conn: &Connection,
    hash: &str,
    miner: Option<&str>,
) -> rusqlite::Result<Vec<StatementShare>> {
    let mut stmt = conn.prepare_cached(
        "SELECT share_id, miner_id, work, source FROM block_window
         WHERE block_hash = ?1 AND (?2 IS NULL OR miner_id = ?2) ORDER BY pos",
    )?;
    stmt.query_map(params![hash, miner], |r| {
        Ok(StatementShare {
            id: r.get(0)?,
            miner_id: r.get(1)?,
            work: r.get::<_, i64>(2)? as u64,
            source: r.get(3)?,
        })
    })?
    .collect()
}

/// What one look at the wallet changed: blocks to announce and audit
/// entries written with them.
#[derive(Debug, Default)]
pub struct Applied {
    pub changed: Vec<BlockRow>,
    pub audits: Vec<pooldesk_proto::model::AuditEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
}

impl crate::store::StorageFault for ApplyError {
    fn storage_fault(&self) -> Option<String> {
        match self {
            ApplyError::Db(e) => Some(e.to_string()),
            ApplyError::Ledger(e) => e.storage_fault(),
        }
    }
}

/// The state a coinbase sighting puts its block in.
pub fn state_of(coinbase: &crate::wallet::Coinbase) -> BlockState {
    if coinbase.orphan || coinbase.confirmations < 1 {
        BlockState::Orphaned
    } else if coinbase.confirmations >= COINBASE_MATURITY {
        BlockState::Matured
    } else {
        BlockState::Immature
    }
}

/// Applies one look at the wallet's coinbases, in one write job: new
/// blocks are recorded with the scheme in force, their window and split;
/// known ones move between states. Crediting at maturity and reversing a
/// credited block that left the chain happen here, in the same
/// transaction as the state change.
pub fn apply(
    ctx: &mut crate::store::WriteCtx<'_>,
    scheme: &super::scheme::Scheme,
    network_difficulty: f64,
    coinbases: &[crate::wallet::Coinbase],
) -> Result<Applied, ApplyError> {
    let mut applied = Applied::default();
    for coinbase in coinbases {
        let known: Option<(String, String, i64)> = ctx
            .conn
            .prepare_cached(
                "SELECT hash, state, confirmations FROM blocks WHERE coinbase_txid = ?1",
            )?
            .query_row([&coinbase.txid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let new_state = state_of(coinbase);
        let hash = match known {
            Some((hash, state, confirmations)) => {
                let old_state = parse_state(&state);
                let confirmations_now = if new_state == BlockState::Orphaned {
                    0
                } else {
                    coinbase.confirmations
                };
                if old_state == new_state && confirmations == confirmations_now {
                    continue;
                }
                ctx.conn
                    .prepare_cached(
                        "UPDATE blocks SET state = ?2, confirmations = ?3, updated_at = ?4 WHERE hash = ?1",
                    )?
                    .execute(params![hash, new_state.as_str(), confirmations_now, ctx.now_s])?;
                if old_state != new_state {
                    applied.audits.push(crate::audit::record(
                        ctx,
                        &crate::audit::Actor::System,
                        "block_state",
                        &hash,
                        &format!("{} -> {}", old_state.as_str(), new_state.as_str()),
                    )?);
                }
                hash
            }
            None => {
                // A coinbase never seen in the best chain has no block to
                // attribute; it is recorded when (if) it is.
                let Some(hash) = coinbase.block_hash.clone() else {
                    continue;
                };
                if new_state == BlockState::Orphaned {
                    continue;
                }
                let entry =
                    insert_block(ctx, scheme, network_difficulty, coinbase, &hash, new_state)?;
                applied.audits.push(entry);
                hash
            }
        };
        settle(ctx, &hash, new_state)?;
        if let Some(row) = get(ctx.conn, &hash)? {
            applied.changed.push(row);
        }
    }
    Ok(applied)
}

fn insert_block(
    ctx: &mut crate::store::WriteCtx<'_>,
    scheme: &super::scheme::Scheme,
    network_difficulty: f64,
    coinbase: &crate::wallet::Coinbase,
    hash: &str,
    state: BlockState,
) -> Result<pooldesk_proto::model::AuditEntry, ApplyError> {
    use super::split;
    let reward_msat = coinbase.amount_sat.max(0).saturating_mul(1000);
    // The pool's solve report names the finder and, when it came in a
    // batch under PPLNS, the log row holding the solving share: the window
    // ends there. Without one it ends at what was recorded before now.
    let solve = crate::shares::solve_of(ctx.conn, hash)?;
    let finder = solve.as_ref().map(|s| s.miner_id.clone());
    let window_size = match scheme.kind {
        PayoutScheme::Pplns => scheme.pplns_window_work(network_difficulty),
        _ => 0,
    };
    let records = if scheme.kind == PayoutScheme::Pplns {
        super::window::newest_first(
            ctx.conn,
            solve.as_ref().and_then(|s| s.window_id),
            window_size,
        )?
    } else {
        Vec::new()
    };
    let (window_work, shares) = scheme.window(network_difficulty, finder.as_deref(), records);
    let work = split::work_by_miner(&shares);
    let fee_msat = scheme.fee_msat(reward_msat, shares.is_empty());
    let parts = split::split(reward_msat - fee_msat, &work);
    let total_work: u64 = shares.iter().map(|s| s.work).sum();
    let previous_scheme: Option<String> = ctx
        .conn
        .query_row(
            "SELECT scheme FROM blocks ORDER BY found_at DESC, height DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    ctx.conn
        .prepare_cached(
            "INSERT INTO blocks (hash, coinbase_txid, height, state, confirmations, reward_msat,
                 pool_fee_bps, pool_fee_msat, scheme, window_work, total_work, first_share_id,
                 last_share_id, shares_sha256, finder_miner_id, found_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
        )?
        .execute(params![
            hash,
            coinbase.txid,
            coinbase.height.unwrap_or(0),
            state.as_str(),
            coinbase.confirmations,
            reward_msat,
            scheme.pool_fee_bps,
            fee_msat,
            scheme.kind.as_str(),
            window_work as i64,
            total_work as i64,
            shares.first().map(|s| s.id),
            shares.last().map(|s| s.id),
            split::shares_sha256(&shares),
            finder,
            ctx.now_s,
        ])?;
    {
        let mut insert = ctx.conn.prepare_cached(
            "INSERT INTO block_window (block_hash, pos, share_id, miner_id, work, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (pos, share) in shares.iter().enumerate() {
            insert.execute(params![
                hash,
                pos as i64,
                share.id,
                share.miner_id,
                share.work as i64,
                share.source
            ])?;
        }
        let mut insert = ctx.conn.prepare_cached(
            "INSERT INTO block_parts (block_hash, miner_id, work, amount_msat) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for part in &parts {
            insert.execute(params![
                hash,
                part.miner_id,
                part.work as i64,
                part.amount_msat
            ])?;
        }
    }
    let change = match previous_scheme.as_deref() {
        Some(previous) if previous != scheme.kind.as_str() => {
            format!(" (scheme changed from {previous})")
        }
        _ => String::new(),
    };
    Ok(crate::audit::record(
        ctx,
        &crate::audit::Actor::System,
        "block_found",
        hash,
        &format!(
            "height {} reward {} msat, scheme {}{change}, fee {} msat, {} miners, window {} of {} work",
            coinbase.height.unwrap_or(0),
            reward_msat,
            scheme.kind.as_str(),
            fee_msat,
            parts.len(),
            total_work,
            window_work
        ),
    )?)
}

/// Credits a matured block's parts once, or takes them back when a
/// credited block is no longer matured. Idempotency keys are per (block,
/// credit round, miner): `block:<hash>:<round>:<miner>` and
/// `block-reversal:<hash>:<round>:<miner>`, the round being the number of
/// earlier reversals, so a block that comes back is credited again once.
fn settle(
    ctx: &mut crate::store::WriteCtx<'_>,
    hash: &str,
    state: BlockState,
) -> Result<(), ApplyError> {
    use crate::ledger::{self, POOL_BLOCKS, TransferKind, TransferRequest};
    let (credited_at, round): (Option<i64>, i64) = ctx.conn.query_row(
        "SELECT credited_at, reversals FROM blocks WHERE hash = ?1",
        [hash],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let parts: Vec<(String, i64)> = ctx
        .conn
        .prepare_cached(
            "SELECT miner_id, amount_msat FROM block_parts WHERE block_hash = ?1 AND amount_msat > 0 ORDER BY miner_id",
        )?
        .query_map([hash], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    match (state, credited_at) {
        (BlockState::Matured, None) => {
            for (miner, amount_msat) in &parts {
                crate::miners::ensure_exists(ctx, miner, "block")?;
                ledger::post(
                    ctx,
                    &TransferRequest {
                        idempotency_key: format!("block:{hash}:{round}:{miner}"),
                        debit: POOL_BLOCKS.into(),
                        credit: ledger::miner_account(miner),
                        amount_msat: *amount_msat,
                        kind: TransferKind::PoolBlockCredit,
                        reference: Some(hash.to_string()),
                    },
                )?;
            }
            ctx.conn.execute(
                "UPDATE blocks SET credited_at = ?2 WHERE hash = ?1",
                params![hash, ctx.now_s],
            )?;
        }
        (BlockState::Orphaned, Some(_)) => {
            for (miner, amount_msat) in &parts {
                // What the miner still holds: a part already withdrawn
                // cannot be taken back from the balance; the shortfall is
                // audited for the operator.
                let balance = ledger::balance(ctx.conn, &ledger::miner_account(miner))?;
                let take = (*amount_msat).min(balance);
                if take > 0 {
                    ledger::post(
                        ctx,
                        &TransferRequest {
                            idempotency_key: format!("block-reversal:{hash}:{round}:{miner}"),
                            debit: ledger::miner_account(miner),
                            credit: POOL_BLOCKS.into(),
                            amount_msat: take,
                            kind: TransferKind::PoolBlockReversal,
                            reference: Some(hash.to_string()),
                        },
                    )?;
                }
                if take < *amount_msat {
                    crate::audit::record(
                        ctx,
                        &crate::audit::Actor::System,
                        "block_reversal_short",
                        hash,
                        &format!(
                            "miner {miner}: {} of {amount_msat} msat could not be taken back",
                            amount_msat - take
                        ),
                    )?;
                }
            }
            ctx.conn.execute(
                "UPDATE blocks SET credited_at = NULL, reversals = reversals + 1 WHERE hash = ?1",
                [hash],
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// Pending (immature) parts per miner and in total: what the pool owes
/// once its immature blocks mature.
pub fn pending_msat(conn: &Connection, miner: Option<&str>) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(p.amount_msat), 0) FROM block_parts p JOIN blocks b ON b.hash = p.block_hash
         WHERE b.state = 'immature' AND (?1 IS NULL OR p.miner_id = ?1)",
    )?
    .query_row(params![miner], |r| r.get(0))
}

/// Blocks by state, for metrics.
pub fn counts_by_state(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    conn.prepare_cached("SELECT state, COUNT(*) FROM blocks GROUP BY state")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Block invariants for `pooldeskd verify`: a credited (matured) block's
/// net block credits equal its reward less the fee, its parts sum to that
/// too, and a block that is not credited has net block credits of 0.
pub fn verify(conn: &Connection) -> rusqlite::Result<Vec<crate::ledger::Violation>> {
    use crate::ledger::Violation;
    let mut violations = Vec::new();
    let mut stmt = conn.prepare(
        "WITH net AS (
             SELECT reference AS hash,
                    SUM(CASE kind WHEN 'pool_block_credit' THEN amount_msat ELSE -amount_msat END) AS msat
             FROM transfers WHERE kind IN ('pool_block_credit', 'pool_block_reversal')
             GROUP BY reference
         ),
         parts AS (SELECT block_hash AS hash, SUM(amount_msat) AS msat FROM block_parts GROUP BY block_hash)
         SELECT b.hash, b.state, b.credited_at IS NOT NULL, b.reward_msat - b.pool_fee_msat,
                COALESCE(n.msat, 0), COALESCE(p.msat, 0)
         FROM blocks b LEFT JOIN net n ON n.hash = b.hash LEFT JOIN parts p ON p.hash = b.hash
         ORDER BY b.height",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    for row in rows {
        let (hash, state, credited, distributable, net, parts) = row?;
        if parts != distributable {
            violations.push(Violation(format!(
                "block {hash}: parts sum to {parts} msat, reward less fee is {distributable} msat"
            )));
        }
        let matured = state == "matured";
        if matured != credited {
            violations.push(Violation(format!(
                "block {hash} is {state} but is {}credited",
                if credited { "" } else { "not " }
            )));
        }
        let expected = if credited { distributable } else { 0 };
        if net != expected {
            violations.push(Violation(format!(
                "block {hash} ({state}): block credits to miners net {net} msat, expected {expected} msat"
            )));
        }
    }
    // Block credits naming no known block.
    let stray: i64 = conn.query_row(
        "SELECT COUNT(*) FROM transfers WHERE kind IN ('pool_block_credit', 'pool_block_reversal')
           AND (reference IS NULL OR reference NOT IN (SELECT hash FROM blocks))",
        [],
        |r| r.get(0),
    )?;
    if stray > 0 {
        violations.push(Violation(format!(
            "{stray} block credit transfers name no known block"
        )));
    }
    Ok(violations)
}

/// The last blocks paying `miner` (newest first): hash, height, state and
/// their part.
pub fn blocks_of_miner(
    conn: &Connection,
    miner: &str,
    limit: u32,
) -> rusqlite::Result<Vec<(String, i64, BlockState, i64)>> {
    conn.prepare_cached(
        "SELECT b.hash, b.height, b.state, p.amount_msat FROM block_parts p JOIN blocks b ON b.hash = p.block_hash
         WHERE p.miner_id = ?1 ORDER BY b.height DESC LIMIT ?2",
    )?
    .query_map(params![miner, limit], |r| {
        Ok((r.get(0)?, r.get(1)?, parse_state(&r.get::<_, String>(2)?), r.get(3)?))
    })?
    .collect()
}

/// The oldest row of the PPLNS log in the current window (`None` under PPS
/// and SOLO): pruning keeps it and everything newer.
pub fn window_start(
    conn: &Connection,
    scheme: &super::scheme::Scheme,
    network_difficulty: f64,
) -> rusqlite::Result<Option<i64>> {
    if scheme.kind != PayoutScheme::Pplns {
        return Ok(None);
    }
    let size = scheme.pplns_window_work(network_difficulty);
    Ok(super::window::newest_first(conn, None, size)?
        .last()
        .map(|r| r.id))
}
