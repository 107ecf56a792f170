//! The faucet's tables (`faucet_requests`, `faucet_batches`,
//! `faucet_challenges`): every statement that touches them lives here.

use pooldesk_proto::model::FaucetRow;
use rusqlite::{Connection, OptionalExtension, params};

use super::FaucetError;
use super::rules;
use crate::ledger::{self, TransferKind, TransferRequest, Violation};
use crate::store::WriteCtx;

/// What `admit` needs: everything already checked outside the ledger.
#[derive(Debug, Clone)]
pub struct Admission {
    pub address: String,
    pub client_key: String,
    pub amount_sat: i64,
    pub challenge: String,
    pub challenge_expires_at: i64,
    pub cooldown_s: u64,
    pub daily_budget_sat: i64,
}

/// Admits one request, or refuses it having changed nothing (the job runs
/// in its own savepoint). Spending the challenge, the cooldown and budget
/// checks and the ledger hold are one step in one writer job: the writer
/// runs jobs one at a time, so concurrent requests can neither overspend
/// the budget nor spend one challenge twice.
pub fn admit(ctx: &mut WriteCtx<'_>, a: &Admission) -> Result<FaucetRow, FaucetError> {
    let conn = ctx.conn;
    let now = ctx.now_s;
    let used: bool = conn
        .prepare_cached("SELECT 1 FROM faucet_challenges WHERE challenge = ?1")?
        .query_row([&a.challenge], |_| Ok(()))
        .optional()?
        .is_some();
    if used {
        return Err(FaucetError::BadPow("challenge already used"));
    }
    let since = now.saturating_sub(a.cooldown_s as i64);
    let last_by_address: Option<i64> = conn
        .prepare_cached(
            "SELECT MAX(created_at) FROM faucet_requests WHERE address = ?1 AND created_at > ?2",
        )?
        .query_row(params![a.address, since], |r| r.get(0))?;
    if let Some(seconds_left) = rules::cooldown_left(last_by_address, now, a.cooldown_s) {
        return Err(FaucetError::TooSoon {
            seconds_left,
            by: "address",
        });
    }
    let last_by_client: Option<i64> = conn
        .prepare_cached(
            "SELECT MAX(created_at) FROM faucet_requests WHERE client_key = ?1 AND created_at > ?2",
        )?
        .query_row(params![a.client_key, since], |r| r.get(0))?;
    if let Some(seconds_left) = rules::cooldown_left(last_by_client, now, a.cooldown_s) {
        return Err(FaucetError::TooSoon {
            seconds_left,
            by: "ip",
        });
    }
    let spent = spent_since(conn, rules::utc_day_start(now))?;
    if !rules::budget_allows(spent, a.amount_sat, a.daily_budget_sat) {
        return Err(FaucetError::BudgetExhausted {
            seconds_left: (rules::utc_day_start(now) + rules::SECONDS_PER_DAY - now) as u64,
        });
    }
    conn.prepare_cached(
        "INSERT INTO faucet_requests (address, client_key, amount_sat, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'queued', ?4, ?4)",
    )?
    .execute(params![a.address, a.client_key, a.amount_sat, now])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO faucet_challenges (challenge, expires_at, used_at, request_id) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![a.challenge, a.challenge_expires_at, now, id])?;
    ledger::post(
        ctx,
        &TransferRequest {
            idempotency_key: format!("faucet:{id}:hold"),
            debit: ledger::FAUCET_FUNDING.into(),
            credit: ledger::FAUCET_HELD.into(),
            amount_msat: a.amount_sat * 1000,
            kind: TransferKind::FaucetHold,
            reference: Some(format!("faucet_request:{id}")),
        },
    )?;
    Ok(FaucetRow {
        id,
        address: a.address.clone(),
        amount_sat: a.amount_sat,
        state: "queued".into(),
        created_at: now,
        txid: None,
    })
}

/// Satoshis requested since `since` (every state counts: a queued request
/// will be paid).
pub fn spent_since(conn: &Connection, since: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(amount_sat), 0) FROM faucet_requests WHERE created_at >= ?1",
    )?
    .query_row([since], |r| r.get(0))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FaucetRow> {
    Ok(FaucetRow {
        id: r.get(0)?,
        address: r.get(1)?,
        amount_sat: r.get(2)?,
        state: r.get(3)?,
        created_at: r.get(4)?,
        txid: r.get(5)?,
    })
}

pub fn request(conn: &Connection, id: i64) -> rusqlite::Result<Option<FaucetRow>> {
    conn.prepare_cached(
        "SELECT id, address, amount_sat, state, created_at, txid FROM faucet_requests WHERE id = ?1",
    )?
    .query_row([id], row)
    .optional()
}

/// Queued requests, oldest first.
pub fn queued(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<FaucetRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, address, amount_sat, state, created_at, txid FROM faucet_requests
         WHERE state = 'queued' ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], row)?;
    rows.collect()
}

pub fn queued_count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT COUNT(*) FROM faucet_requests WHERE state = 'queued'")?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// Requests no longer queued, newest first.
pub fn recent(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<FaucetRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, address, amount_sat, state, created_at, txid FROM faucet_requests
         WHERE state <> 'queued' ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], row)?;
    rows.collect()
}

/// A batch whose outcome the worker must find out or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: i64,
    pub tag: String,
    pub state: String,
    pub fee_sat: Option<i64>,
    pub txid: Option<String>,
    pub request_ids: Vec<i64>,
    /// Built txid-first: funded and signed, then `txid`, `tx_hex` and
    /// `inputs` committed, then broadcast.
    pub prebuilt: bool,
    pub tx_hex: Option<String>,
    /// Outpoints (`txid:vout`) the transaction spends.
    pub inputs: Vec<String>,
    /// Confirmations as last seen (paid batches are followed until final).
    pub confirmations: Option<i64>,
}

/// Batches in `state`, oldest first, with their request ids.
pub fn batches_in(conn: &Connection, state: &str) -> rusqlite::Result<Vec<Batch>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, tag, state, fee_sat, txid, prebuilt, tx_hex, inputs_json, confirmations FROM faucet_batches WHERE state = ?1 ORDER BY id LIMIT 1000",
    )?;
    let mut batches: Vec<Batch> = stmt
        .query_map([state], |r| {
            let inputs: Option<String> = r.get(7)?;
            Ok(Batch {
                id: r.get(0)?,
                tag: r.get(1)?,
                state: r.get(2)?,
                fee_sat: r.get(3)?,
                txid: r.get(4)?,
                request_ids: Vec::new(),
                prebuilt: r.get(5)?,
                tx_hex: r.get(6)?,
                inputs: inputs
                    .and_then(|j| serde_json::from_str(&j).ok())
                    .unwrap_or_default(),
                confirmations: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    for batch in &mut batches {
        batch.request_ids = batch_requests(conn, batch.id)?;
    }
    Ok(batches)
}

/// Paid batches not yet final: followed every round (confirmations,
/// replacement, conflict, drop) until `payouts.confirmations` deep.
pub fn paid_unfinal(conn: &Connection) -> rusqlite::Result<Vec<Batch>> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM faucet_batches WHERE state = 'paid' AND final_at IS NULL AND txid IS NOT NULL ORDER BY id LIMIT 1000",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(batches_in(conn, "paid")?
        .into_iter()
        .filter(|b| ids.contains(&b.id))
        .collect())
}

/// Records the confirmations of a paid batch's transaction; `final_`
/// stops following it. A note (a reorg) replaces the batch's note.
pub fn set_confirmations(
    ctx: &mut WriteCtx<'_>,
    batch_id: i64,
    confirmations: i64,
    final_: bool,
    note: Option<&str>,
) -> Result<(), FaucetError> {
    ctx.conn
        .prepare_cached(
            "UPDATE faucet_batches SET confirmations = ?2, final_at = CASE WHEN ?3 THEN ?4 END,
                 note = COALESCE(?5, note), updated_at = ?4
             WHERE id = ?1 AND state = 'paid'",
        )?
        .execute(params![batch_id, confirmations, final_, ctx.now_s, note])?;
    Ok(())
}

/// A paid batch's transaction was replaced by one paying exactly the same
/// outputs (a fee bump): the batch and its requests follow the new txid,
/// its bytes are what a rebroadcast sends, and the fee moves to the new one.
pub fn record_replacement(
    ctx: &mut WriteCtx<'_>,
    batch_id: i64,
    txid: &str,
    hex: Option<&str>,
    fee_sat: Option<i64>,
) -> Result<(), FaucetError> {
    let old: Option<String> = ctx
        .conn
        .prepare_cached("SELECT txid FROM faucet_batches WHERE id = ?1")?
        .query_row([batch_id], |r| r.get(0))?;
    let note = format!(
        "replaced: {} → {txid} (fee bump)",
        old.as_deref().unwrap_or("?")
    );
    ctx.conn
        .prepare_cached(
            "UPDATE faucet_batches SET txid = ?2, tx_hex = COALESCE(?3, tx_hex), note = ?4,
                 confirmations = NULL, updated_at = ?5 WHERE id = ?1",
        )?
        .execute(params![batch_id, txid, hex, note, ctx.now_s])?;
    ctx.conn
        .prepare_cached(
            "UPDATE faucet_requests SET txid = ?2, updated_at = ?3 WHERE batch_id = ?1 AND state = 'paid'",
        )?
        .execute(params![batch_id, txid, ctx.now_s])?;
    if let Some(fee_sat) = fee_sat {
        move_fee(ctx, batch_id, txid, fee_sat)?;
    }
    Ok(())
}

/// Sets a batch's recorded fee to `fee_sat`, posting the difference
/// (keyed by the transaction it belongs to).
fn move_fee(
    ctx: &mut WriteCtx<'_>,
    batch_id: i64,
    txid: &str,
    fee_sat: i64,
) -> Result<(), FaucetError> {
    let recorded: Option<i64> = ctx
        .conn
        .prepare_cached("SELECT fee_sat FROM faucet_batches WHERE id = ?1")?
        .query_row([batch_id], |r| r.get(0))?;
    let Some(recorded) = recorded else {
        return record_fee(ctx, batch_id, fee_sat);
    };
    let delta = fee_sat.max(0) - recorded;
    if delta != 0 {
        let (debit, credit) = if delta > 0 {
            (ledger::POOL_FEES, ledger::FEES_NETWORK)
        } else {
            (ledger::FEES_NETWORK, ledger::POOL_FEES)
        };
        ledger::post(
            ctx,
            &TransferRequest {
                idempotency_key: format!("faucet_batch:{batch_id}:fee:{txid}"),
                debit: debit.into(),
                credit: credit.into(),
                amount_msat: delta.abs() * 1000,
                kind: TransferKind::PayoutFee,
                reference: Some(format!("faucet_batch:{batch_id}")),
            },
        )?;
    }
    ctx.conn
        .prepare_cached("UPDATE faucet_batches SET fee_sat = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![batch_id, fee_sat.max(0), ctx.now_s])?;
    Ok(())
}

/// A paid batch whose transaction may not pay after all (a mined
/// conflict, a replacement paying other outputs, forgotten by the wallet)
/// goes back to `needs_attention`. Its requests stay `paid` and the money
/// stays in `faucet:sent` until an admin decides: the transaction may
/// still confirm (a reorg), so nothing is returned before it provably
/// cannot.
pub fn reopen(ctx: &mut WriteCtx<'_>, batch_id: i64, note: &str) -> Result<(), FaucetError> {
    ctx.conn
        .prepare_cached(
            "UPDATE faucet_batches SET state = 'needs_attention', note = ?2, final_at = NULL, updated_at = ?3
             WHERE id = ?1 AND state = 'paid'",
        )?
        .execute(params![batch_id, note, ctx.now_s])?;
    Ok(())
}

/// Reverses the payment of a reopened batch whose transaction provably
/// cannot confirm: each request's amount goes back from `faucet:sent` to
/// `faucet:held` (then `requeue` or `cancel` decides), and the recorded fee
/// goes back to the pool. Keys name the batch, so a request paid again in
/// a later batch never meets them.
pub fn unpay(ctx: &mut WriteCtx<'_>, batch_id: i64) -> Result<(), FaucetError> {
    let requests: Vec<(i64, i64)> = {
        let mut stmt = ctx.conn.prepare_cached(
            "SELECT id, amount_sat FROM faucet_requests WHERE batch_id = ?1 AND state = 'paid' ORDER BY id",
        )?;
        let rows = stmt.query_map([batch_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, amount_sat) in &requests {
        ledger::post(
            ctx,
            &TransferRequest {
                idempotency_key: format!("faucet:{id}:unpaid:{batch_id}"),
                debit: ledger::FAUCET_SENT.into(),
                credit: ledger::FAUCET_HELD.into(),
                amount_msat: amount_sat * 1000,
                kind: TransferKind::Adjustment,
                reference: Some(format!("faucet_batch:{batch_id} unpaid")),
            },
        )?;
        ctx.conn
            .prepare_cached(
                "UPDATE faucet_requests SET state = 'needs_attention', txid = NULL, updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, ctx.now_s])?;
    }
    let fee: Option<i64> = ctx
        .conn
        .prepare_cached("SELECT fee_sat FROM faucet_batches WHERE id = ?1")?
        .query_row([batch_id], |r| r.get(0))?;
    if let Some(fee) = fee.filter(|f| *f > 0) {
        ledger::post(
            ctx,
            &TransferRequest {
                idempotency_key: format!("faucet_batch:{batch_id}:fee:reversed"),
                debit: ledger::FEES_NETWORK.into(),
                credit: ledger::POOL_FEES.into(),
                amount_msat: fee * 1000,
                kind: TransferKind::PayoutFee,
                reference: Some(format!("faucet_batch:{batch_id} fee reversed")),
            },
        )?;
    }
    ctx.conn
        .prepare_cached("UPDATE faucet_batches SET fee_sat = NULL, updated_at = ?2 WHERE id = ?1")?
        .execute(params![batch_id, ctx.now_s])?;
    Ok(())
}

/// Paid batches whose fee is not recorded yet (the wallet did not say it
/// when the batch was paid).
pub fn paid_without_fee(conn: &Connection) -> rusqlite::Result<Vec<Batch>> {
    Ok(batches_in(conn, "paid")?
        .into_iter()
        .filter(|b| b.fee_sat.is_none())
        .collect())
}

fn batch_requests(conn: &Connection, batch_id: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM faucet_requests WHERE batch_id = ?1 ORDER BY id")?;
    let ids = stmt.query_map([batch_id], |r| r.get(0))?;
    ids.collect()
}

/// One output per address: two requests to one address in one batch (a
/// short cooldown, or requests kept queued across failed rounds) are paid
/// as one output, because `sendmany` refuses a duplicated address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub batch: Batch,
    pub outputs: Vec<crate::wallet::Output>,
}

/// Commits the intent to pay `request_ids` (those still queued) in one
/// batch, before any wallet call: after a crash the batch and its tag are
/// known, so it is reconciled rather than paid again.
pub fn open_batch(
    ctx: &mut WriteCtx<'_>,
    request_ids: &[i64],
    fee_rate_sat_vb: u64,
    prebuilt: bool,
) -> Result<Option<Intent>, FaucetError> {
    let conn = ctx.conn;
    let now = ctx.now_s;
    let mut outputs: Vec<crate::wallet::Output> = Vec::new();
    let mut ids = Vec::new();
    for id in request_ids {
        let found: Option<(String, i64)> = conn
            .prepare_cached(
                "SELECT address, amount_sat FROM faucet_requests WHERE id = ?1 AND state = 'queued'",
            )?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((address, amount_sat)) = found else {
            continue;
        };
        ids.push(*id);
        match outputs.iter_mut().find(|o| o.address == address) {
            Some(output) => output.amount_sat += amount_sat,
            None => outputs.push(crate::wallet::Output {
                address,
                amount_sat,
            }),
        }
    }
    if ids.is_empty() {
        return Ok(None);
    }
    let total: i64 = outputs.iter().map(|o| o.amount_sat).sum();
    // The tag names the batch id, which exists only after the insert: a
    // unique placeholder first, then the real tag, in the same job.
    conn.prepare_cached(
        "INSERT INTO faucet_batches (tag, state, total_sat, outputs, fee_rate_sat_vb, created_at, updated_at, prebuilt)
         VALUES ('pending:' || hex(randomblob(16)), 'sending', ?1, ?2, ?3, ?4, ?4, ?5)",
    )?
    .execute(params![total, outputs.len() as i64, fee_rate_sat_vb as i64, now, prebuilt])?;
    let batch_id = conn.last_insert_rowid();
    let install = crate::payouts::db::install_id(conn)?;
    let tag = rules::batch_tag(&install, batch_id);
    conn.prepare_cached("UPDATE faucet_batches SET tag = ?1 WHERE id = ?2")?
        .execute(params![tag, batch_id])?;
    let mut update = conn.prepare_cached(
        "UPDATE faucet_requests SET state = 'sending', batch_id = ?1, updated_at = ?2 WHERE id = ?3",
    )?;
    for id in &ids {
        update.execute(params![batch_id, now, id])?;
    }
    Ok(Some(Intent {
        batch: Batch {
            id: batch_id,
            tag,
            state: "sending".into(),
            fee_sat: None,
            txid: None,
            request_ids: ids,
            prebuilt,
            tx_hex: None,
            inputs: Vec::new(),
            confirmations: None,
        },
        outputs,
    }))
}

/// Records that the batch is in the wallet as `txid`: each request moves
/// from `faucet:held` to `faucet:sent`, and the fee (when known) from the
/// pool's own funds to `fees:network`. Idempotent (keys per request and
/// batch). Returns the ids of the requests it marked paid.
pub fn mark_paid(
    ctx: &mut WriteCtx<'_>,
    batch_id: i64,
    txid: &str,
    fee_sat: Option<i64>,
) -> Result<Vec<i64>, FaucetError> {
    let conn = ctx.conn;
    let now = ctx.now_s;
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM faucet_batches WHERE id = ?1")?
        .query_row([batch_id], |r| r.get(0))
        .optional()?;
    match state.as_deref() {
        Some("sending") | Some("needs_attention") => {}
        // Already recorded (or refused by the wallet): nothing to do.
        _ => return Ok(Vec::new()),
    }
    let requests: Vec<(i64, i64)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, amount_sat FROM faucet_requests WHERE batch_id = ?1 AND state IN ('sending', 'needs_attention') ORDER BY id",
        )?;
        let rows = stmt.query_map([batch_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (id, amount_sat) in &requests {
        ledger::post(
            ctx,
            &TransferRequest {
                idempotency_key: format!("faucet:{id}:paid:{batch_id}"),
                debit: ledger::FAUCET_HELD.into(),
                credit: ledger::FAUCET_SENT.into(),
                amount_msat: amount_sat * 1000,
                kind: TransferKind::FaucetPayout,
                reference: Some(format!("faucet_batch:{batch_id}")),
            },
        )?;
        ctx.conn
            .prepare_cached(
                "UPDATE faucet_requests SET state = 'paid', txid = ?1, updated_at = ?2 WHERE id = ?3",
            )?
            .execute(params![txid, now, id])?;
    }
    // A reopened batch's requests are paid already: they follow the txid.
    ctx.conn
        .prepare_cached(
            "UPDATE faucet_requests SET txid = ?1, updated_at = ?2 WHERE batch_id = ?3 AND state = 'paid'",
        )?
        .execute(params![txid, now, batch_id])?;
    ctx.conn
        .prepare_cached(
            "UPDATE faucet_batches SET state = 'paid', txid = ?1, updated_at = ?2, note = NULL,
                 confirmations = NULL, final_at = NULL WHERE id = ?3",
        )?
        .execute(params![txid, now, batch_id])?;
    if let Some(fee_sat) = fee_sat {
        // A reopened batch paid again may carry its fee already.
        move_fee(ctx, batch_id, txid, fee_sat)?;
    }
    Ok(requests.into_iter().map(|(id, _)| id).collect())
}

/// Books a paid batch's network fee (once).
pub fn record_fee(ctx: &mut WriteCtx<'_>, batch_id: i64, fee_sat: i64) -> Result<(), FaucetError> {
    if fee_sat > 0 {
        ledger::post(
            ctx,
            &TransferRequest {
                idempotency_key: format!("faucet_batch:{batch_id}:fee"),
                debit: ledger::POOL_FEES.into(),
                credit: ledger::FEES_NETWORK.into(),
                amount_msat: fee_sat * 1000,
                kind: TransferKind::PayoutFee,
                reference: Some(format!("faucet_batch:{batch_id}")),
            },
        )?;
    }
    ctx.conn
        .prepare_cached("UPDATE faucet_batches SET fee_sat = ?1, updated_at = ?2 WHERE id = ?3 AND fee_sat IS NULL")?
        .execute(params![fee_sat.max(0), ctx.now_s, batch_id])?;
    Ok(())
}

/// Commits a txid-first batch's signed transaction before it is
/// broadcast: from here on only these bytes may pay the batch.
pub fn set_tx(
    ctx: &mut WriteCtx<'_>,
    batch_id: i64,
    txid: &str,
    hex: &str,
    inputs: &[String],
) -> Result<(), FaucetError> {
    let inputs = serde_json::to_string(inputs).expect("outpoints serialize");
    ctx.conn
        .prepare_cached(
            "UPDATE faucet_batches SET txid = ?2, tx_hex = ?3, inputs_json = ?4, updated_at = ?5
             WHERE id = ?1 AND state = 'sending' AND txid IS NULL",
        )?
        .execute(params![batch_id, txid, hex, inputs, ctx.now_s])?;
    Ok(())
}

/// The wallet refused the batch (a definite error: nothing was sent): the
/// batch is closed as `failed` and its requests go back to the queue for
/// the next round, under a new batch and tag.
pub fn mark_failed(ctx: &mut WriteCtx<'_>, batch_id: i64, note: &str) -> Result<(), FaucetError> {
    let conn = ctx.conn;
    let changed = conn
        .prepare_cached(
            "UPDATE faucet_batches SET state = 'failed', note = ?1, updated_at = ?2 WHERE id = ?3 AND state = 'sending'",
        )?
        .execute(params![note, ctx.now_s, batch_id])?;
    if changed == 1 {
        conn.prepare_cached(
            "UPDATE faucet_requests SET state = 'queued', batch_id = NULL, updated_at = ?1 WHERE batch_id = ?2 AND state = 'sending'",
        )?
        .execute(params![ctx.now_s, batch_id])?;
    }
    Ok(())
}

/// The outcome cannot be proven: the batch and its requests wait for an
/// admin (their money stays held). Never resent automatically; the worker
/// keeps looking for the tag and marks the batch paid if it shows up.
pub fn mark_needs_attention(
    ctx: &mut WriteCtx<'_>,
    batch_id: i64,
    note: &str,
) -> Result<Vec<i64>, FaucetError> {
    let conn = ctx.conn;
    conn.prepare_cached(
        "UPDATE faucet_batches SET state = 'needs_attention', note = ?1, updated_at = ?2 WHERE id = ?3 AND state IN ('sending', 'needs_attention')",
    )?
    .execute(params![note, ctx.now_s, batch_id])?;
    let ids = batch_requests(conn, batch_id)?;
    conn.prepare_cached(
        "UPDATE faucet_requests SET state = 'needs_attention', updated_at = ?1 WHERE batch_id = ?2 AND state = 'sending'",
    )?
    .execute(params![ctx.now_s, batch_id])?;
    Ok(ids)
}

/// Admin decision on a `needs_attention` batch: nothing was sent, so its
/// requests go back to the queue (a new batch and tag next round).
pub fn requeue(ctx: &mut WriteCtx<'_>, batch_id: i64, note: &str) -> Result<Vec<i64>, FaucetError> {
    let ids = attention_requests(ctx.conn, batch_id)?;
    ctx.conn
        .prepare_cached(
            "UPDATE faucet_batches SET state = 'failed', note = ?1, updated_at = ?2 WHERE id = ?3",
        )?
        .execute(params![note, ctx.now_s, batch_id])?;
    ctx.conn
        .prepare_cached(
            "UPDATE faucet_requests SET state = 'queued', batch_id = NULL, updated_at = ?1 WHERE batch_id = ?2 AND state = 'needs_attention'",
        )?
        .execute(params![ctx.now_s, batch_id])?;
    Ok(ids)
}

/// Admin decision on a `needs_attention` batch: give up; each request is
/// cancelled and its hold returns to the faucet's budget.
pub fn cancel(ctx: &mut WriteCtx<'_>, batch_id: i64, note: &str) -> Result<Vec<i64>, FaucetError> {
    let ids = attention_requests(ctx.conn, batch_id)?;
    for id in &ids {
        let amount_sat: i64 = ctx
            .conn
            .prepare_cached("SELECT amount_sat FROM faucet_requests WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        ledger::post(
            ctx,
            &TransferRequest {
                idempotency_key: format!("faucet:{id}:release"),
                debit: ledger::FAUCET_HELD.into(),
                credit: ledger::FAUCET_FUNDING.into(),
                amount_msat: amount_sat * 1000,
                kind: TransferKind::FaucetRelease,
                reference: Some(format!("faucet_batch:{batch_id}")),
            },
        )?;
        ctx.conn
            .prepare_cached(
                "UPDATE faucet_requests SET state = 'cancelled', updated_at = ?1 WHERE id = ?2",
            )?
            .execute(params![ctx.now_s, id])?;
    }
    ctx.conn
        .prepare_cached(
            "UPDATE faucet_batches SET state = 'failed', note = ?1, updated_at = ?2 WHERE id = ?3",
        )?
        .execute(params![note, ctx.now_s, batch_id])?;
    Ok(ids)
}

/// Refuses unless the batch is in `needs_attention`.
pub fn attention_requests_check(conn: &Connection, batch_id: i64) -> Result<(), FaucetError> {
    attention_requests(conn, batch_id).map(|_| ())
}

/// The requests of a batch in `needs_attention` (refuses any other state).
fn attention_requests(conn: &Connection, batch_id: i64) -> Result<Vec<i64>, FaucetError> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM faucet_batches WHERE id = ?1")?
        .query_row([batch_id], |r| r.get(0))
        .optional()?;
    match state.as_deref() {
        Some("needs_attention") => Ok(batch_requests(conn, batch_id)?),
        Some(other) => Err(FaucetError::WrongState(format!(
            "faucet batch {batch_id} is {other}"
        ))),
        None => Err(FaucetError::NotFound),
    }
}

/// The outputs a batch pays: one per address, amounts summed.
pub fn batch_outputs(
    conn: &Connection,
    batch_id: i64,
) -> rusqlite::Result<Vec<crate::wallet::Output>> {
    let mut stmt = conn.prepare_cached(
        "SELECT address, SUM(amount_sat) FROM faucet_requests WHERE batch_id = ?1 GROUP BY address ORDER BY address",
    )?;
    let rows = stmt.query_map([batch_id], |r| {
        Ok(crate::wallet::Output {
            address: r.get(0)?,
            amount_sat: r.get(1)?,
        })
    })?;
    rows.collect()
}

/// Batches waiting for an admin decision.
pub fn attention_count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT COUNT(*) FROM faucet_batches WHERE state = 'needs_attention'")?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// Forgets spent challenges that expired before `before` (an expired
/// challenge is refused before the spent table is consulted).
pub fn prune_challenges(
    ctx: &mut WriteCtx<'_>,
    before: i64,
    limit: i64,
) -> rusqlite::Result<usize> {
    ctx.conn
        .prepare_cached(
            "DELETE FROM faucet_challenges WHERE challenge IN
               (SELECT challenge FROM faucet_challenges WHERE expires_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before, limit])
}

/// The faucet's invariants for `pooldeskd verify`: `faucet:held` equals
/// the requests not yet paid (queued, sending, needs_attention),
/// `faucet:sent` equals the paid ones, every paid request and batch has a
/// txid, and every request belongs to a batch in a matching state.
pub fn verify(conn: &Connection) -> rusqlite::Result<Vec<Violation>> {
    let mut violations = Vec::new();
    let tables: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'faucet_requests'",
        [],
        |r| r.get(0),
    )?;
    if tables == 0 {
        return Ok(violations);
    }
    let (unpaid_sat, paid_sat): (i64, i64) = conn.query_row(
        "SELECT COALESCE(SUM(CASE WHEN state IN ('queued', 'sending', 'needs_attention') THEN amount_sat END), 0),
                COALESCE(SUM(CASE WHEN state = 'paid' THEN amount_sat END), 0)
         FROM faucet_requests",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let held = ledger::balance(conn, ledger::FAUCET_HELD)?;
    let sent = ledger::balance(conn, ledger::FAUCET_SENT)?;
    if held != unpaid_sat * 1000 {
        violations.push(Violation(format!(
            "faucet:held is {held} msat but unpaid faucet requests add up to {} msat",
            unpaid_sat * 1000
        )));
    }
    if sent != paid_sat * 1000 {
        violations.push(Violation(format!(
            "faucet:sent is {sent} msat but paid faucet requests add up to {} msat",
            paid_sat * 1000
        )));
    }
    let mismatched: i64 = conn.query_row(
        "SELECT COUNT(*) FROM faucet_requests r LEFT JOIN faucet_batches b ON b.id = r.batch_id
         WHERE (r.state = 'queued' AND r.batch_id IS NOT NULL)
            OR (r.state = 'sending' AND b.state IS NOT 'sending')
            OR (r.state = 'paid' AND NOT ((b.state = 'paid' AND r.txid IS b.txid) OR b.state = 'needs_attention'))
            OR (r.state = 'needs_attention' AND b.state IS NOT 'needs_attention')
            OR (r.state = 'cancelled' AND b.state IS NOT 'failed')",
        [],
        |r| r.get(0),
    )?;
    if mismatched != 0 {
        violations.push(Violation(format!(
            "{mismatched} faucet requests disagree with the state of their batch"
        )));
    }
    Ok(violations)
}
