//! SQL of the payouts module: `withdrawals`, `payout_batches`, `psbts`,
//! `settings`, and the ledger movements that go with their transitions.
//! Every function that changes state posts its ledger transfers in the same
//! transaction, so state and money never disagree.

use pooldesk_proto::model::{BatchRow, WithdrawalCounts, WithdrawalRow};
use rusqlite::{Connection, OptionalExtension, params};

use super::PayoutError;
use crate::ledger::{self, PAYOUTS_SENT, TransferKind, TransferRequest, WITHDRAWALS_HELD};
use crate::store::WriteCtx;
use crate::wallet::Output;

pub const HELD_STATES: &[&str] = &["requested", "approved", "batched", "needs_attention"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub id: i64,
    pub miner_id: String,
    pub address: String,
    pub amount_sat: i64,
    pub state: String,
    pub source: String,
    pub request_key: String,
    pub payable_at: i64,
    pub batch_id: Option<i64>,
    pub txid: Option<String>,
    pub paid: bool,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Withdrawal {
    pub fn row(&self) -> WithdrawalRow {
        WithdrawalRow {
            id: self.id,
            miner_id: self.miner_id.clone(),
            address: self.address.clone(),
            amount_sat: self.amount_sat,
            state: self.state.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            batch_id: self.batch_id,
            txid: self.txid.clone(),
            note: self.note.clone(),
            decided_by: self.decided_by.clone(),
        }
    }
}

const W_COLUMNS: &str = "id, miner_id, address, amount_sat, state, source, request_key, payable_at, batch_id, txid, paid, decided_by, decided_at, note, created_at, updated_at";

fn w_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Withdrawal> {
    Ok(Withdrawal {
        id: r.get(0)?,
        miner_id: r.get(1)?,
        address: r.get(2)?,
        amount_sat: r.get(3)?,
        state: r.get(4)?,
        source: r.get(5)?,
        request_key: r.get(6)?,
        payable_at: r.get(7)?,
        batch_id: r.get(8)?,
        txid: r.get(9)?,
        paid: r.get(10)?,
        decided_by: r.get(11)?,
        decided_at: r.get(12)?,
        note: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: i64,
    pub mode: String,
    pub state: String,
    pub tag: String,
    pub outputs: Vec<Output>,
    pub total_sat: i64,
    pub fee_rate_sat_vb: u64,
    pub fee_sat: Option<i64>,
    pub txid: Option<String>,
    pub confirmations: Option<i64>,
    pub note: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The signed transaction, committed before it is broadcast (hot
    /// batches built txid-first).
    pub tx_hex: Option<String>,
    /// Outpoints (`txid:vout`) the transaction spends, locked in the wallet.
    pub inputs: Vec<String>,
    /// Built by the txid-first flow: without a txid, nothing was broadcast.
    pub prebuilt: bool,
}

const B_COLUMNS: &str = "id, mode, state, tag, outputs_json, total_sat, fee_rate_sat_vb, fee_sat, txid, confirmations, note, created_at, updated_at, tx_hex, inputs_json, prebuilt";

fn b_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Batch> {
    let outputs_json: String = r.get(4)?;
    Ok(Batch {
        id: r.get(0)?,
        mode: r.get(1)?,
        state: r.get(2)?,
        tag: r.get(3)?,
        outputs: serde_json::from_str(&outputs_json).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
        })?,
        total_sat: r.get(5)?,
        fee_rate_sat_vb: r.get::<_, i64>(6)? as u64,
        fee_sat: r.get(7)?,
        txid: r.get(8)?,
        confirmations: r.get(9)?,
        note: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        tx_hex: r.get(13)?,
        inputs: r
            .get::<_, Option<String>>(14)?
            .map(|json| serde_json::from_str(&json).unwrap_or_default())
            .unwrap_or_default(),
        prebuilt: r.get(15)?,
    })
}

pub fn batch_row(conn: &Connection, batch: &Batch) -> rusqlite::Result<BatchRow> {
    let ids = withdrawals_of_batch(conn, batch.id)?
        .into_iter()
        .map(|w| w.id)
        .collect();
    let psbt_id = conn
        .prepare_cached("SELECT id FROM psbts WHERE batch_id = ?1")?
        .query_row([batch.id], |r| r.get(0))
        .optional()?;
    Ok(BatchRow {
        id: batch.id,
        mode: batch.mode.clone(),
        state: batch.state.clone(),
        withdrawal_ids: ids,
        total_sat: batch.total_sat,
        fee_sat: batch.fee_sat,
        txid: batch.txid.clone(),
        confirmations: batch.confirmations,
        psbt_id,
        note: batch.note.clone(),
        created_at: batch.created_at,
        updated_at: batch.updated_at,
    })
}

// ---- withdrawals -------------------------------------------------------------

pub struct NewWithdrawal<'a> {
    pub miner_id: &'a str,
    pub address: &'a str,
    pub amount_sat: i64,
    pub source: &'a str,
    /// The request's idempotency key, in parts: on whose behalf (the miner,
    /// or the admin's request id) and its reference (the miner's event id,
    /// the payment's index). With `source`, a composite key.
    pub request_owner: &'a str,
    pub request_ref: &'a str,
    pub payable_at: i64,
    pub approved_by: Option<&'a str>,
}

/// Creates a withdrawal and holds its amount. Idempotent on
/// `(source, request_owner, request_ref)`: the same request answers the
/// original; a different one under the same key is refused.
pub fn insert_withdrawal(
    ctx: &mut WriteCtx<'_>,
    new: &NewWithdrawal<'_>,
) -> Result<(Withdrawal, bool), PayoutError> {
    if let Some(existing) =
        withdrawal_by_request(ctx.conn, new.source, new.request_owner, new.request_ref)?
    {
        if existing.miner_id == new.miner_id
            && existing.amount_sat == new.amount_sat
            && existing.address == new.address
        {
            return Ok((existing, false));
        }
        return Err(PayoutError::Conflict(
            "this request id was already used for a different withdrawal".into(),
        ));
    }
    let state = if new.approved_by.is_some() {
        "approved"
    } else {
        "requested"
    };
    ctx.conn
        .prepare_cached(
            "INSERT INTO withdrawals (miner_id, address, amount_sat, state, source, request_key, payable_at, decided_by, decided_at, created_at, updated_at, request_owner, request_ref)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, CASE WHEN ?8 IS NULL THEN NULL ELSE ?9 END, ?9, ?9, ?10, ?11)",
        )?
        .execute(params![
            new.miner_id,
            new.address,
            new.amount_sat,
            state,
            new.source,
            // Kept for readers of the old column: the parts as a JSON
            // array, which (unlike a joined string) cannot collide.
            serde_json::json!([new.source, new.request_owner, new.request_ref]).to_string(),
            new.payable_at,
            new.approved_by,
            ctx.now_s,
            new.request_owner,
            new.request_ref
        ])?;
    let id = ctx.conn.last_insert_rowid();
    ledger::post(
        ctx,
        &TransferRequest {
            idempotency_key: format!("withdrawal:{id}:hold"),
            debit: ledger::miner_account(new.miner_id),
            credit: WITHDRAWALS_HELD.into(),
            amount_msat: new.amount_sat * 1000,
            kind: TransferKind::WithdrawalHold,
            reference: Some(format!("withdrawal:{id}")),
        },
    )
    .map_err(PayoutError::from_ledger)?;
    Ok((
        get_withdrawal(ctx.conn, id)?.ok_or(PayoutError::NotFound("withdrawal"))?,
        true,
    ))
}

pub fn get_withdrawal(conn: &Connection, id: i64) -> rusqlite::Result<Option<Withdrawal>> {
    conn.prepare_cached(&format!(
        "SELECT {W_COLUMNS} FROM withdrawals WHERE id = ?1"
    ))?
    .query_row([id], w_row)
    .optional()
}

pub fn withdrawal_by_request(
    conn: &Connection,
    source: &str,
    owner: &str,
    reference: &str,
) -> rusqlite::Result<Option<Withdrawal>> {
    conn.prepare_cached(&format!(
        "SELECT {W_COLUMNS} FROM withdrawals WHERE source = ?1 AND request_owner = ?2 AND request_ref = ?3"
    ))?
    .query_row(params![source, owner, reference], w_row)
    .optional()
}

pub fn list_withdrawals(
    conn: &Connection,
    state: Option<&str>,
    offset: u32,
    limit: u32,
) -> rusqlite::Result<(u64, Vec<Withdrawal>)> {
    let total: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM withdrawals WHERE ?1 IS NULL OR state = ?1")?
        .query_row([state], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {W_COLUMNS} FROM withdrawals WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = stmt
        .query_map(params![state, limit, offset], w_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((total as u64, rows))
}

pub fn withdrawals_in_state(
    conn: &Connection,
    state: &str,
    limit: u32,
) -> rusqlite::Result<Vec<Withdrawal>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {W_COLUMNS} FROM withdrawals WHERE state = ?1 ORDER BY id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![state, limit], w_row)?;
    rows.collect()
}

pub fn withdrawals_of_miner(
    conn: &Connection,
    miner_id: &str,
    limit: u32,
) -> rusqlite::Result<Vec<Withdrawal>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {W_COLUMNS} FROM withdrawals WHERE miner_id = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![miner_id, limit], w_row)?;
    rows.collect()
}

pub fn withdrawals_of_batch(conn: &Connection, batch_id: i64) -> rusqlite::Result<Vec<Withdrawal>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {W_COLUMNS} FROM withdrawals WHERE batch_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([batch_id], w_row)?;
    rows.collect()
}

/// Whether a miner has a withdrawal that is not finished yet.
pub fn has_open_withdrawal(conn: &Connection, miner_id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM withdrawals WHERE miner_id = ?1 AND state IN ('requested','approved','batched','needs_attention'))",
    )?
    .query_row([miner_id], |r| r.get(0))
}

/// Moves a withdrawal between states; refuses if it is not in one of
/// `from` (someone else acted first).
pub fn transition(
    ctx: &WriteCtx<'_>,
    id: i64,
    from: &[&str],
    to: &str,
    decided_by: Option<&str>,
    note: Option<&str>,
) -> Result<Withdrawal, PayoutError> {
    let current = get_withdrawal(ctx.conn, id)?.ok_or(PayoutError::NotFound("withdrawal"))?;
    if !from.contains(&current.state.as_str()) {
        return Err(PayoutError::WrongState {
            what: format!("withdrawal {id}"),
            state: current.state,
        });
    }
    ctx.conn
        .prepare_cached(
            "UPDATE withdrawals SET state = ?2, updated_at = ?3,
                 decided_by = COALESCE(?4, decided_by), decided_at = CASE WHEN ?4 IS NULL THEN decided_at ELSE ?3 END,
                 note = COALESCE(?5, note)
             WHERE id = ?1",
        )?
        .execute(params![id, to, ctx.now_s, decided_by, note])?;
    Ok(get_withdrawal(ctx.conn, id)?.expect("just updated"))
}

/// Returns a held withdrawal's money to the miner (rejected or failed).
pub fn release(
    ctx: &mut WriteCtx<'_>,
    w: &Withdrawal,
    to_state: &str,
    by: Option<&str>,
    reason: &str,
) -> Result<Withdrawal, PayoutError> {
    if w.paid {
        return Err(PayoutError::WrongState {
            what: format!("withdrawal {} (already paid)", w.id),
            state: w.state.clone(),
        });
    }
    let updated = transition(ctx, w.id, HELD_STATES, to_state, by, Some(reason))?;
    ctx.conn
        .prepare_cached("UPDATE withdrawals SET batch_id = NULL WHERE id = ?1")?
        .execute([w.id])?;
    ledger::post(
        ctx,
        &TransferRequest {
            idempotency_key: format!("withdrawal:{}:release", w.id),
            debit: WITHDRAWALS_HELD.into(),
            credit: ledger::miner_account(&w.miner_id),
            amount_msat: w.amount_sat * 1000,
            kind: TransferKind::WithdrawalRelease,
            reference: Some(format!("withdrawal:{}", w.id)),
        },
    )
    .map_err(PayoutError::from_ledger)?;
    Ok(updated)
}

/// Marks a withdrawal paid by `txid`: held → payouts:sent.
pub fn mark_paid(ctx: &mut WriteCtx<'_>, w: &Withdrawal, txid: &str) -> Result<(), PayoutError> {
    if w.paid {
        // Already paid (a replacement of the same batch): only the txid moves.
        ctx.conn
            .prepare_cached("UPDATE withdrawals SET txid = ?2, updated_at = ?3 WHERE id = ?1")?
            .execute(params![w.id, txid, ctx.now_s])?;
        return Ok(());
    }
    ctx.conn
        .prepare_cached("UPDATE withdrawals SET state = 'broadcast', paid = 1, txid = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![w.id, txid, ctx.now_s])?;
    let attempt = reversals(ctx.conn, w.id)?;
    ledger::post(
        ctx,
        &TransferRequest {
            idempotency_key: format!("withdrawal:{}:paid:{attempt}", w.id),
            debit: WITHDRAWALS_HELD.into(),
            credit: PAYOUTS_SENT.into(),
            amount_msat: w.amount_sat * 1000,
            kind: TransferKind::Payout,
            reference: Some(format!("withdrawal:{} tx:{txid}", w.id)),
        },
    )
    .map_err(PayoutError::from_ledger)?;
    Ok(())
}

/// How many times a payment of this withdrawal was reversed: payment and
/// reversal keys carry this number, so a withdrawal paid, found unpaid and
/// paid again gets distinct, deterministic keys.
fn reversals(conn: &Connection, id: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT COUNT(*) FROM transfers WHERE idempotency_key LIKE ?1")?
        .query_row([format!("withdrawal:{id}:unpaid:%")], |r| r.get(0))
}

/// Reverses a payment that did not happen after all (dropped or
/// conflicted transaction, decided by an admin): payouts:sent → held.
pub fn unmark_paid(ctx: &mut WriteCtx<'_>, w: &Withdrawal) -> Result<(), PayoutError> {
    if !w.paid {
        return Ok(());
    }
    let attempt = reversals(ctx.conn, w.id)?;
    ctx.conn
        .prepare_cached(
            "UPDATE withdrawals SET paid = 0, txid = NULL, updated_at = ?2 WHERE id = ?1",
        )?
        .execute(params![w.id, ctx.now_s])?;
    ledger::post(
        ctx,
        &TransferRequest {
            idempotency_key: format!("withdrawal:{}:unpaid:{attempt}", w.id),
            debit: PAYOUTS_SENT.into(),
            credit: WITHDRAWALS_HELD.into(),
            amount_msat: w.amount_sat * 1000,
            kind: TransferKind::Adjustment,
            reference: Some(format!("withdrawal:{} unpaid", w.id)),
        },
    )
    .map_err(PayoutError::from_ledger)?;
    Ok(())
}

pub fn counts(conn: &Connection) -> rusqlite::Result<WithdrawalCounts> {
    let mut counts = WithdrawalCounts::default();
    let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM withdrawals GROUP BY state")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    for row in rows {
        let (state, n) = row?;
        match state.as_str() {
            "requested" => counts.requested = n,
            "approved" => counts.approved = n,
            "batched" => counts.batched = n,
            "broadcast" => counts.broadcast = n,
            "confirmed" => counts.confirmed = n,
            "rejected" => counts.rejected = n,
            "failed" => counts.failed = n,
            "needs_attention" => counts.needs_attention = n,
            _ => {}
        }
    }
    Ok(counts)
}

/// Sum of withdrawals not yet paid and not released (what must stay in
/// the wallet), in sat.
/// Sat the pool has committed to pay and not yet paid: approved, batched or
/// unresolved withdrawals. Requests no admin has approved are held from
/// their miner's balance but are not commitments of the pool, so they
/// never count against the wallet (one miner's huge request must not block
/// every other miner's payout).
pub fn committed_sat(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(amount_sat), 0) FROM withdrawals WHERE paid = 0 AND state IN ('approved','batched','needs_attention')",
    )?
    .query_row([], |r| r.get(0))
}

/// Sat put into batches (not failed) since `since_s` — for the daily cap.
pub fn batched_since(conn: &Connection, since_s: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(total_sat), 0) FROM payout_batches WHERE created_at >= ?1 AND state <> 'failed'",
    )?
    .query_row([since_s], |r| r.get(0))
}

// ---- batches -----------------------------------------------------------------

pub fn insert_batch(
    ctx: &WriteCtx<'_>,
    mode: &str,
    state: &str,
    outputs: &[Output],
    fee_rate_sat_vb: u64,
    prebuilt: bool,
) -> Result<Batch, PayoutError> {
    let total: i64 = outputs.iter().map(|o| o.amount_sat).sum();
    let outputs_json =
        serde_json::to_string(outputs).map_err(|e| PayoutError::Invalid(e.to_string()))?;
    // The tag needs the id: insert with a placeholder unique to this
    // transaction, then set it.
    ctx.conn
        .prepare_cached(
            "INSERT INTO payout_batches (mode, state, tag, outputs_json, total_sat, fee_rate_sat_vb, created_at, updated_at)
             VALUES (?1, ?2, 'pending:' || ?5 || ':' || random(), ?3, ?4, ?6, ?5, ?5)",
        )?
        .execute(params![mode, state, outputs_json, total, ctx.now_s, fee_rate_sat_vb as i64])?;
    let id = ctx.conn.last_insert_rowid();
    let install = install_id(ctx.conn)?;
    ctx.conn
        .prepare_cached("UPDATE payout_batches SET tag = ?2, prebuilt = ?3 WHERE id = ?1")?
        .execute(params![id, batch_tag(&install, id), prebuilt])?;
    Ok(get_batch(ctx.conn, id)?.expect("just inserted"))
}

/// This install's random id (migration 0008 generates it once).
pub fn install_id(conn: &Connection) -> rusqlite::Result<String> {
    Ok(setting(conn, INSTALL_ID_KEY)?.unwrap_or_default())
}

pub const INSTALL_ID_KEY: &str = "install_id";

/// The wallet comment of a batch: how its transaction is found again. The
/// install id keeps batch numbers of another install (or of a restored
/// ledger) on the same wallet from matching.
pub fn batch_tag(install_id: &str, id: i64) -> String {
    if install_id.is_empty() {
        format!("pooldesk batch {id}")
    } else {
        format!("pooldesk {install_id} batch {id}")
    }
}

/// Records the outpoints a batch's transaction spends (locked in the wallet
/// until its outcome is final).
pub fn set_batch_inputs(ctx: &WriteCtx<'_>, id: i64, inputs: &[String]) -> Result<(), PayoutError> {
    let inputs_json =
        serde_json::to_string(inputs).map_err(|e| PayoutError::Invalid(e.to_string()))?;
    ctx.conn
        .prepare_cached("UPDATE payout_batches SET inputs_json = ?2 WHERE id = ?1")?
        .execute(params![id, inputs_json])?;
    Ok(())
}

/// Commits a hot batch's signed transaction before it is broadcast:
/// `sending` → `broadcasting` with txid, bytes, inputs and fee.
pub fn set_batch_tx(
    ctx: &WriteCtx<'_>,
    id: i64,
    txid: &str,
    tx_hex: &str,
    inputs: &[String],
    fee_sat: i64,
) -> Result<(), PayoutError> {
    let inputs_json =
        serde_json::to_string(inputs).map_err(|e| PayoutError::Invalid(e.to_string()))?;
    let changed = ctx
        .conn
        .prepare_cached(
            "UPDATE payout_batches SET state = 'broadcasting', txid = ?2, tx_hex = ?3, inputs_json = ?4,
                 fee_sat = ?5, note = 'signed; broadcasting', updated_at = ?6
             WHERE id = ?1 AND state = 'sending' AND txid IS NULL",
        )?
        .execute(params![id, txid, tx_hex, inputs_json, fee_sat, ctx.now_s])?;
    if changed != 1 {
        return Err(PayoutError::Conflict(format!(
            "batch {id} is no longer waiting for its transaction"
        )));
    }
    Ok(())
}

pub fn get_batch(conn: &Connection, id: i64) -> rusqlite::Result<Option<Batch>> {
    conn.prepare_cached(&format!(
        "SELECT {B_COLUMNS} FROM payout_batches WHERE id = ?1"
    ))?
    .query_row([id], b_row)
    .optional()
}

pub fn batches_in(conn: &Connection, states: &[&str]) -> rusqlite::Result<Vec<Batch>> {
    let placeholders = states.iter().map(|_| "?").collect::<Vec<_>>().join(",");
    let mut stmt = conn.prepare(&format!(
        "SELECT {B_COLUMNS} FROM payout_batches WHERE state IN ({placeholders}) ORDER BY id"
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(states.iter()), b_row)?;
    rows.collect()
}

pub fn recent_batches(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<Batch>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {B_COLUMNS} FROM payout_batches ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit], b_row)?;
    rows.collect()
}

pub fn set_batch(
    ctx: &WriteCtx<'_>,
    id: i64,
    state: &str,
    txid: Option<&str>,
    fee_sat: Option<i64>,
    note: Option<&str>,
) -> rusqlite::Result<()> {
    ctx.conn
        .prepare_cached(
            "UPDATE payout_batches SET state = ?2, txid = COALESCE(?3, txid), fee_sat = COALESCE(?4, fee_sat),
                 note = COALESCE(?5, note), updated_at = ?6 WHERE id = ?1",
        )?
        .execute(params![id, state, txid, fee_sat, note, ctx.now_s])?;
    Ok(())
}

pub fn set_confirmations(ctx: &WriteCtx<'_>, id: i64, confirmations: i64) -> rusqlite::Result<()> {
    ctx.conn
        .prepare_cached(
            "UPDATE payout_batches SET confirmations = ?2, updated_at = ?3 WHERE id = ?1",
        )?
        .execute(params![id, confirmations, ctx.now_s])?;
    Ok(())
}

/// Assigns withdrawals to a batch (approved → batched).
pub fn assign_to_batch(ctx: &WriteCtx<'_>, batch_id: i64, ids: &[i64]) -> Result<(), PayoutError> {
    for id in ids {
        transition(ctx, *id, &["approved"], "batched", None, None)?;
        ctx.conn
            .prepare_cached("UPDATE withdrawals SET batch_id = ?2 WHERE id = ?1")?
            .execute(params![id, batch_id])?;
    }
    Ok(())
}

/// A batch that provably paid nothing: its withdrawals wait again.
pub fn unbatch(ctx: &WriteCtx<'_>, batch_id: i64, note: &str) -> Result<(), PayoutError> {
    ctx.conn
        .prepare_cached(
            "UPDATE withdrawals SET state = 'approved', batch_id = NULL, note = ?2, updated_at = ?3
             WHERE batch_id = ?1 AND paid = 0 AND state IN ('batched', 'needs_attention')",
        )?
        .execute(params![batch_id, note, ctx.now_s])?;
    Ok(())
}

/// Records the network fee a batch paid (pool:fees → fees:network); a
/// replacement with a higher fee records the difference.
pub fn record_fee(
    ctx: &mut WriteCtx<'_>,
    batch_id: i64,
    txid: &str,
    fee_sat: i64,
) -> Result<(), PayoutError> {
    let already: i64 = ctx
        .conn
        .prepare_cached(
            "SELECT COALESCE(SUM(amount_msat), 0) FROM transfers WHERE kind = 'payout_fee' AND reference = ?1",
        )?
        .query_row([format!("batch:{batch_id}")], |r| r.get(0))?;
    let delta = fee_sat * 1000 - already;
    if delta > 0 {
        ledger::post(
            ctx,
            &TransferRequest {
                idempotency_key: format!("batch:{batch_id}:fee:{txid}"),
                debit: ledger::POOL_FEES.into(),
                credit: ledger::FEES_NETWORK.into(),
                amount_msat: delta,
                kind: TransferKind::PayoutFee,
                reference: Some(format!("batch:{batch_id}")),
            },
        )
        .map_err(PayoutError::from_ledger)?;
    }
    ctx.conn
        .prepare_cached("UPDATE payout_batches SET fee_sat = ?2 WHERE id = ?1")?
        .execute(params![batch_id, fee_sat])?;
    Ok(())
}

/// Reverses the fee recorded for a batch whose transaction provably never
/// confirmed (fees:network → pool:fees), so the ledger's fees stay the
/// wallet's; the batch shows no fee. Idempotent per batch.
pub fn reverse_fee(ctx: &mut WriteCtx<'_>, batch_id: i64) -> Result<(), PayoutError> {
    let recorded: i64 = ctx
        .conn
        .prepare_cached(
            "SELECT COALESCE(SUM(amount_msat), 0) FROM transfers WHERE kind = 'payout_fee' AND reference = ?1",
        )?
        .query_row([format!("batch:{batch_id}")], |r| r.get(0))?;
    if recorded > 0 {
        ledger::post(
            ctx,
            &TransferRequest {
                idempotency_key: format!("batch:{batch_id}:fee:reversed"),
                debit: ledger::FEES_NETWORK.into(),
                credit: ledger::POOL_FEES.into(),
                amount_msat: recorded,
                kind: TransferKind::Adjustment,
                reference: Some(format!("batch:{batch_id} fee reversed")),
            },
        )
        .map_err(PayoutError::from_ledger)?;
    }
    ctx.conn
        .prepare_cached("UPDATE payout_batches SET fee_sat = NULL WHERE id = ?1")?
        .execute([batch_id])?;
    Ok(())
}

// ---- PSBTs ---------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsbtRecord {
    pub id: i64,
    pub batch_id: i64,
    pub unsigned_psbt: String,
    pub signed_psbt: Option<String>,
    pub final_tx_hex: Option<String>,
    pub state: String,
    pub wallet_fee_sat: i64,
    pub change_index: Option<u32>,
    pub change_is_ours: bool,
    pub locked_outpoints: Vec<String>,
}

const P_COLUMNS: &str = "id, batch_id, unsigned_psbt, signed_psbt, final_tx_hex, state, wallet_fee_sat, change_index, change_is_ours, locked_outpoints";

fn p_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PsbtRecord> {
    let locked: String = r.get(9)?;
    Ok(PsbtRecord {
        id: r.get(0)?,
        batch_id: r.get(1)?,
        unsigned_psbt: r.get(2)?,
        signed_psbt: r.get(3)?,
        final_tx_hex: r.get(4)?,
        state: r.get(5)?,
        wallet_fee_sat: r.get(6)?,
        change_index: r.get::<_, Option<i64>>(7)?.map(|v| v as u32),
        change_is_ours: r.get(8)?,
        locked_outpoints: serde_json::from_str(&locked).unwrap_or_default(),
    })
}

pub fn insert_psbt(
    ctx: &WriteCtx<'_>,
    batch_id: i64,
    unsigned_psbt: &str,
    wallet_fee_sat: i64,
    change_index: Option<u32>,
    change_is_ours: bool,
    locked_outpoints: &[String],
) -> rusqlite::Result<i64> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO psbts (batch_id, unsigned_psbt, state, wallet_fee_sat, change_index, change_is_ours, locked_outpoints, created_at, updated_at)
             VALUES (?1, ?2, 'unsigned', ?3, ?4, ?5, ?6, ?7, ?7)",
        )?
        .execute(params![
            batch_id,
            unsigned_psbt,
            wallet_fee_sat,
            change_index.map(i64::from),
            change_is_ours,
            serde_json::to_string(locked_outpoints).unwrap_or_else(|_| "[]".into()),
            ctx.now_s
        ])?;
    Ok(ctx.conn.last_insert_rowid())
}

pub fn get_psbt(conn: &Connection, id: i64) -> rusqlite::Result<Option<PsbtRecord>> {
    conn.prepare_cached(&format!("SELECT {P_COLUMNS} FROM psbts WHERE id = ?1"))?
        .query_row([id], p_row)
        .optional()
}

pub fn psbt_of_batch(conn: &Connection, batch_id: i64) -> rusqlite::Result<Option<PsbtRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {P_COLUMNS} FROM psbts WHERE batch_id = ?1"
    ))?
    .query_row([batch_id], p_row)
    .optional()
}

pub fn set_psbt(
    ctx: &WriteCtx<'_>,
    id: i64,
    state: &str,
    signed_psbt: Option<&str>,
    final_tx_hex: Option<&str>,
) -> rusqlite::Result<()> {
    ctx.conn
        .prepare_cached(
            "UPDATE psbts SET state = ?2, signed_psbt = COALESCE(?3, signed_psbt), final_tx_hex = COALESCE(?4, final_tx_hex), updated_at = ?5 WHERE id = ?1",
        )?
        .execute(params![id, state, signed_psbt, final_tx_hex, ctx.now_s])?;
    Ok(())
}

// ---- settings ------------------------------------------------------------------

pub fn setting(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

pub fn set_setting(ctx: &WriteCtx<'_>, key: &str, value: &str) -> rusqlite::Result<()> {
    ctx.conn
        .prepare_cached("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
        .execute(params![key, value])?;
    Ok(())
}

// ---- invariants -------------------------------------------------------------------

/// Payout invariants: the held account equals the unpaid, unreleased
/// withdrawals; the sent account equals the paid ones; paid withdrawals
/// carry a txid and a batch; a batch's paid withdrawals share its txid.
pub fn verify(conn: &Connection) -> rusqlite::Result<Vec<ledger::Violation>> {
    let mut violations = Vec::new();
    let held_msat = ledger::balance(conn, WITHDRAWALS_HELD)?;
    let held_expected: i64 = conn.query_row(
        "SELECT COALESCE(SUM(amount_sat), 0) * 1000 FROM withdrawals WHERE paid = 0 AND state IN ('requested','approved','batched','needs_attention')",
        [],
        |r| r.get(0),
    )?;
    if held_msat != held_expected {
        violations.push(ledger::Violation(format!(
            "withdrawals:held is {held_msat} msat but unpaid open withdrawals sum to {held_expected} msat"
        )));
    }
    let sent_msat = ledger::balance(conn, PAYOUTS_SENT)?;
    let sent_expected: i64 = conn.query_row(
        "SELECT COALESCE(SUM(amount_sat), 0) * 1000 FROM withdrawals WHERE paid = 1",
        [],
        |r| r.get(0),
    )?;
    if sent_msat != sent_expected {
        violations.push(ledger::Violation(format!(
            "payouts:sent is {sent_msat} msat but paid withdrawals sum to {sent_expected} msat"
        )));
    }
    let bad_paid: i64 = conn.query_row(
        "SELECT COUNT(*) FROM withdrawals WHERE paid = 1 AND (txid IS NULL OR batch_id IS NULL OR state IN ('requested','approved','rejected','failed'))",
        [],
        |r| r.get(0),
    )?;
    if bad_paid > 0 {
        violations.push(ledger::Violation(format!(
            "{bad_paid} paid withdrawals lack a txid or batch, or are in an unpaid state"
        )));
    }
    let mismatched: i64 = conn.query_row(
        "SELECT COUNT(*) FROM withdrawals w JOIN payout_batches b ON b.id = w.batch_id
         WHERE w.paid = 1 AND b.txid IS NOT NULL AND w.txid <> b.txid",
        [],
        |r| r.get(0),
    )?;
    if mismatched > 0 {
        violations.push(ledger::Violation(format!(
            "{mismatched} paid withdrawals carry a txid other than their batch's"
        )));
    }
    let orphan_releases: i64 = conn.query_row(
        "SELECT COUNT(*) FROM withdrawals w WHERE w.state IN ('rejected', 'failed')
           AND NOT EXISTS (SELECT 1 FROM transfers t WHERE t.idempotency_key = 'withdrawal:' || w.id || ':release')",
        [],
        |r| r.get(0),
    )?;
    if orphan_releases > 0 {
        violations.push(ledger::Violation(format!(
            "{orphan_releases} rejected/failed withdrawals were never returned to their miner"
        )));
    }
    Ok(violations)
}
