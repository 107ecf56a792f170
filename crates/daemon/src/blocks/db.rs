//! SQL of the blocks module (tables of migration 0010). Reads take a
//! `Connection`; writes run inside the writer's job.

use pooldesk_proto::amount::format_msat_btc;
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
        reward_btc: format_msat_btc(reward_msat),
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
    let (window_work, total_work, first_share_id, last_share_id, shares_sha256): (
        i64,
        i64,
        Option<i64>,
        Option<i64>,
        String,
    ) = conn.query_row(
        "SELECT window_work, total_work, first_share_id, last_share_id, shares_sha256
         FROM blocks WHERE hash = ?1",
        [hash],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
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
        "SELECT share_id, miner_id, work FROM block_window
         WHERE block_hash = ?1 AND (?2 IS NULL OR miner_id = ?2) ORDER BY pos",
    )?;
    stmt.query_map(params![hash, miner], |r| {
        Ok(StatementShare {
            id: r.get(0)?,
            miner_id: r.get(1)?,
            work: r.get::<_, i64>(2)? as u64,
        })
    })?
    .collect()
}
