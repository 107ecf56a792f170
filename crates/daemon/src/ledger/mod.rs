//! The double-entry ledger: accounts, transfers, balances, in msat.
//!
//! Every movement of money is one transfer from a debit account to a credit
//! account, with an idempotency key: posting the same key with the same
//! content answers the original transfer; the same key with different
//! content is a typed conflict (TigerBeetle's `exists_with_different_*`).
//! Balances live on the account rows and are updated in the same
//! transaction as the transfer, so `balance == Σ transfers` always holds.
//!
//! Share credits are the one high-volume movement. They are **rolled up**:
//! within one group commit, all credits to one miner become one transfer
//! (`kind = share_credit`, `item_count` = number of reports), and each raw
//! report records the rollup group it went into. A transfer per report
//! would add two index insertions and two balance updates per report and
//! grow the money table by every report forever (they are kept); raw
//! reports are pruned after the retention window instead. See
//! ARCHITECTURE.md for the measurement.

mod verify;

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::store::{StorageFault, WriteCtx};
pub use verify::{Violation, verify};

/// The pool's reward source: negative by what it has credited.
pub const POOL_REWARDS: &str = "pool:rewards";
/// The pool's own funds paying network fees: negative by fees paid.
pub const POOL_FEES: &str = "pool:fees";
/// Manual adjustments by an admin (either sign).
pub const POOL_ADJUSTMENTS: &str = "pool:adjustments";
/// The source of block rewards under PPLNS and SOLO (src/blocks):
/// negative by what matured blocks have credited to miners.
pub const POOL_BLOCKS: &str = "pool:blocks";
/// Money reserved for requested, approved or in-flight withdrawals.
pub const WITHDRAWALS_HELD: &str = "withdrawals:held";
/// Paid on chain to miners.
pub const PAYOUTS_SENT: &str = "payouts:sent";
/// Network fees paid for payouts and faucet batches.
pub const FEES_NETWORK: &str = "fees:network";
/// The faucet's budget source: negative by what it has given.
pub const FAUCET_FUNDING: &str = "faucet:funding";
/// Reserved for queued faucet requests.
pub const FAUCET_HELD: &str = "faucet:held";
/// Paid on chain by the faucet.
pub const FAUCET_SENT: &str = "faucet:sent";

/// Largest single transfer: all the bitcoin there will ever be, in msat.
pub const MAX_TRANSFER_MSAT: i64 = 21_000_000 * 100_000_000 * 1000;

/// Largest magnitude of any balance: the same supply bound. No account can
/// hold (or, for a source, have handed out) more bitcoin than will ever
/// exist; it also keeps every sum of two balances far from `i64::MAX`, so
/// no arithmetic in the ledger can wrap.
pub const MAX_BALANCE_MSAT: i64 = MAX_TRANSFER_MSAT;

/// `miner:<id>`
pub fn miner_account(miner_id: &str) -> String {
    format!("miner:{miner_id}")
}

/// Whether an account may go below zero; `None` for names that are not
/// accounts of this ledger (refused, so a typo cannot create one).
pub fn allows_negative(name: &str) -> Option<bool> {
    match name {
        POOL_REWARDS | POOL_FEES | POOL_ADJUSTMENTS | FAUCET_FUNDING | POOL_BLOCKS => Some(true),
        WITHDRAWALS_HELD | PAYOUTS_SENT | FEES_NETWORK | FAUCET_HELD | FAUCET_SENT => Some(false),
        _ if name.starts_with("miner:") && name.len() > "miner:".len() => Some(false),
        _ => None,
    }
}

/// What a transfer is for. Stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    ShareCredit,
    BlockCredit,
    /// Rolled-up credits of `POST /api/v2/shares` (src/shares).
    PoolShareCredit,
    /// A miner's part of a matured block (src/blocks), one per (block, miner).
    PoolBlockCredit,
    /// That part taken back when a matured block left the best chain.
    PoolBlockReversal,
    WithdrawalHold,
    WithdrawalRelease,
    Payout,
    PayoutFee,
    FaucetHold,
    FaucetRelease,
    FaucetPayout,
    Adjustment,
}

impl TransferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferKind::ShareCredit => "share_credit",
            TransferKind::BlockCredit => "block_credit",
            TransferKind::PoolShareCredit => "pool_share_credit",
            TransferKind::PoolBlockCredit => "pool_block_credit",
            TransferKind::PoolBlockReversal => "pool_block_reversal",
            TransferKind::WithdrawalHold => "withdrawal_hold",
            TransferKind::WithdrawalRelease => "withdrawal_release",
            TransferKind::Payout => "payout",
            TransferKind::PayoutFee => "payout_fee",
            TransferKind::FaucetHold => "faucet_hold",
            TransferKind::FaucetRelease => "faucet_release",
            TransferKind::FaucetPayout => "faucet_payout",
            TransferKind::Adjustment => "adjustment",
        }
    }
}

/// A transfer to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRequest {
    pub idempotency_key: String,
    pub debit: String,
    pub credit: String,
    pub amount_msat: i64,
    pub kind: TransferKind,
    pub reference: Option<String>,
}

/// A posted transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    pub id: i64,
    pub idempotency_key: String,
    pub debit: String,
    pub credit: String,
    pub amount_msat: i64,
    pub kind: String,
    pub reference: Option<String>,
    pub item_count: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    Created(Transfer),
    /// The key was already used for exactly this transfer: nothing moved.
    AlreadyExists(Transfer),
}

impl Posted {
    pub fn transfer(&self) -> &Transfer {
        match self {
            Posted::Created(t) | Posted::AlreadyExists(t) => t,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("idempotency key already used with a different debit account")]
    ExistsWithDifferentDebitAccount,
    #[error("idempotency key already used with a different credit account")]
    ExistsWithDifferentCreditAccount,
    #[error("idempotency key already used with a different amount")]
    ExistsWithDifferentAmount,
    #[error("idempotency key already used with a different kind")]
    ExistsWithDifferentKind,
    #[error("idempotency key already used with a different reference")]
    ExistsWithDifferentReference,
    #[error("amount must be greater than zero and at most 21e6 BTC")]
    AmountOutOfRange,
    #[error(
        "{account} would hold {would_be_msat} msat, beyond the 21,000,000 BTC bound on any balance"
    )]
    BalanceBound {
        account: String,
        would_be_msat: i128,
    },
    #[error("debit and credit account must differ")]
    SameAccount,
    #[error("idempotency key must be 1 to 200 bytes")]
    BadKey,
    #[error("no such account kind: {0}")]
    UnknownAccount(String),
    #[error(
        "insufficient funds in {account}: balance {balance_msat} msat, needs {amount_msat} msat"
    )]
    InsufficientFunds {
        account: String,
        balance_msat: i64,
        amount_msat: i64,
    },
    #[error("ledger storage error: {0}")]
    Db(#[from] rusqlite::Error),
}

impl StorageFault for LedgerError {
    fn storage_fault(&self) -> Option<String> {
        match self {
            LedgerError::Db(e) => Some(e.to_string()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Account {
    id: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    amount_msat: i64,
    items: i64,
}

#[derive(Debug, Clone, Copy)]
struct Headroom {
    base_msat: i64,
    accrued_msat: i128,
}

/// The writer thread's ledger state: an account-id cache, and credits
/// accrued in the current batch and not yet applied.
pub struct LedgerState {
    accounts: HashMap<String, Account>,
    /// Accounts created by the running job / the running batch, so a
    /// rolled-back savepoint or batch also forgets them here.
    created_in_job: Vec<String>,
    created_in_batch: Vec<String>,
    /// `(debit id, credit id, kind)` → accrued, for the current group.
    pending: HashMap<(i64, i64, TransferKind), Pending>,
    /// Per account touched by accruals of the current group: its balance
    /// when first touched (read once per group) and the accrued change, so
    /// every accrual is checked against the balance bound on its own,
    /// before its job writes anything (one bad report never fails the
    /// others of its group).
    headroom: HashMap<i64, Headroom>,
    group: i64,
    balances_after: HashMap<i64, i64>,
}

impl LedgerState {
    pub(crate) fn load(conn: &Connection) -> rusqlite::Result<LedgerState> {
        let last_group: i64 = conn.query_row(
            "SELECT COALESCE(MAX(rollup_group), 0) FROM transfers",
            [],
            |r| r.get(0),
        )?;
        Ok(LedgerState {
            accounts: HashMap::new(),
            created_in_job: Vec::new(),
            created_in_batch: Vec::new(),
            pending: HashMap::new(),
            headroom: HashMap::new(),
            group: last_group + 1,
            balances_after: HashMap::new(),
        })
    }

    fn account(
        &mut self,
        conn: &Connection,
        name: &str,
        now_s: i64,
    ) -> Result<Account, LedgerError> {
        if let Some(account) = self.accounts.get(name) {
            return Ok(*account);
        }
        let allow_negative =
            allows_negative(name).ok_or_else(|| LedgerError::UnknownAccount(name.to_string()))?;
        let existing: Option<i64> = conn
            .prepare_cached("SELECT id FROM accounts WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        let id = match existing {
            Some(id) => id,
            None => {
                conn.prepare_cached(
                    "INSERT INTO accounts (name, allow_negative, balance_msat, created_at) VALUES (?1, ?2, 0, ?3)",
                )?
                .execute(params![name, allow_negative, now_s])?;
                self.created_in_job.push(name.to_string());
                conn.last_insert_rowid()
            }
        };
        let account = Account { id };
        self.accounts.insert(name.to_string(), account);
        Ok(account)
    }

    /// An account's balance at the start of the current group and what the
    /// group accrued to it so far. Read from the table once per account and
    /// group (an account not created yet has balance 0).
    fn headroom_of(&mut self, conn: &Connection, name: &str) -> Result<(i64, i128), LedgerError> {
        let id = match self.accounts.get(name) {
            Some(account) => Some(account.id),
            None => account_id(conn, name)?,
        };
        let Some(id) = id else {
            return Ok((0, 0));
        };
        if let Some(headroom) = self.headroom.get(&id) {
            return Ok((headroom.base_msat, headroom.accrued_msat));
        }
        let base_msat = balance_by_id(conn, id)?;
        // `accrue` checks (and so caches) both accounts before it adds to
        // `pending`, and `flush` empties both maps together: an account
        // first seen here has nothing accrued in this group yet.
        let accrued_msat = 0;
        self.headroom.insert(
            id,
            Headroom {
                base_msat,
                accrued_msat,
            },
        );
        Ok((base_msat, accrued_msat))
    }

    /// Applies accrued credits: one transfer per (debit, credit, kind) and
    /// one balance update per account touched.
    pub(crate) fn flush(&mut self, conn: &Connection, now_s: i64) -> rusqlite::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let group = self.group;
        self.group += 1;
        self.headroom.clear();
        let mut deltas: HashMap<i64, i128> = HashMap::new();
        let mut insert = conn.prepare_cached(
            "INSERT INTO transfers (idempotency_key, debit_account_id, credit_account_id, amount_msat, kind, rollup_group, item_count, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for ((debit, credit, kind), pending) in self.pending.drain() {
            let key = format!("rollup:{group}:{}:{debit}:{credit}", kind.as_str());
            insert.execute(params![
                key,
                debit,
                credit,
                pending.amount_msat,
                kind.as_str(),
                group,
                pending.items,
                now_s
            ])?;
            // i128: no sum of i64 amounts can wrap; every accrual was
            // checked against the balance bound, so the result fits.
            *deltas.entry(debit).or_default() -= i128::from(pending.amount_msat);
            *deltas.entry(credit).or_default() += i128::from(pending.amount_msat);
        }
        let mut update = conn.prepare_cached(
            "UPDATE accounts SET balance_msat = balance_msat + ?1 WHERE id = ?2 RETURNING balance_msat",
        )?;
        for (account, delta) in deltas {
            // Rolled-up movements only credit no-negative accounts and
            // debit sources that may go negative, and each accrual was
            // bounded (see `accrue`), so this cannot refuse; the CHECK
            // constraints are the backstop.
            let delta = i64::try_from(delta).map_err(|_| {
                rusqlite::Error::ToSqlConversionFailure(
                    format!("rolled-up change {delta} msat of account {account} is out of range")
                        .into(),
                )
            })?;
            let balance: i64 = update.query_row(params![delta, account], |r| r.get(0))?;
            self.balances_after.insert(account, balance);
        }
        Ok(())
    }

    pub(crate) fn group(&self) -> i64 {
        self.group
    }

    pub(crate) fn job_started(&mut self) {
        self.created_in_job.clear();
    }

    pub(crate) fn job_finished(&mut self) {
        self.created_in_batch.append(&mut self.created_in_job);
    }

    pub(crate) fn job_rolled_back(&mut self) {
        for name in self.created_in_job.drain(..) {
            self.accounts.remove(&name);
        }
    }

    pub(crate) fn rollback(&mut self) {
        self.job_rolled_back();
        for name in self.created_in_batch.drain(..) {
            self.accounts.remove(&name);
        }
        self.pending.clear();
        self.headroom.clear();
        self.balances_after.clear();
    }

    pub(crate) fn committed(&mut self) -> HashMap<i64, i64> {
        self.created_in_batch.clear();
        self.created_in_job.clear();
        std::mem::take(&mut self.balances_after)
    }
}

/// Posts a transfer (call from a savepoint job: refusals after account
/// creation rely on the savepoint to undo it).
pub fn post(ctx: &mut WriteCtx<'_>, req: &TransferRequest) -> Result<Posted, LedgerError> {
    if req.idempotency_key.is_empty() || req.idempotency_key.len() > 200 {
        return Err(LedgerError::BadKey);
    }
    if req.amount_msat <= 0 || req.amount_msat > MAX_TRANSFER_MSAT {
        return Err(LedgerError::AmountOutOfRange);
    }
    if req.debit == req.credit {
        return Err(LedgerError::SameAccount);
    }
    for name in [&req.debit, &req.credit] {
        if allows_negative(name).is_none() {
            return Err(LedgerError::UnknownAccount(name.clone()));
        }
    }
    let conn = ctx.conn;
    ctx.state.ledger.flush(conn, ctx.now_s)?;
    if let Some(existing) = find_by_key(conn, &req.idempotency_key)? {
        return compare_existing(existing, req).map(Posted::AlreadyExists);
    }
    // Both sides are checked against the supply bound before anything is
    // written, so a refusal needs no rollback and SQLite never sees an
    // integer overflow (which it would turn into a REAL).
    for (name, sign) in [(&req.debit, -1i128), (&req.credit, 1i128)] {
        let current = balance(conn, name)?;
        let would_be = i128::from(current) + sign * i128::from(req.amount_msat);
        if would_be.abs() > i128::from(MAX_BALANCE_MSAT) {
            return Err(LedgerError::BalanceBound {
                account: name.clone(),
                would_be_msat: would_be,
            });
        }
    }
    let debit = ctx.state.ledger.account(conn, &req.debit, ctx.now_s)?;
    let credit = ctx.state.ledger.account(conn, &req.credit, ctx.now_s)?;
    let debited: Option<i64> = conn
        .prepare_cached(
            "UPDATE accounts SET balance_msat = balance_msat - ?1
             WHERE id = ?2 AND (allow_negative = 1 OR balance_msat >= ?1) RETURNING balance_msat",
        )?
        .query_row(params![req.amount_msat, debit.id], |r| r.get(0))
        .optional()?;
    if debited.is_none() {
        let balance_msat: i64 = conn
            .prepare_cached("SELECT balance_msat FROM accounts WHERE id = ?1")?
            .query_row([debit.id], |r| r.get(0))?;
        return Err(LedgerError::InsufficientFunds {
            account: req.debit.clone(),
            balance_msat,
            amount_msat: req.amount_msat,
        });
    }
    conn.prepare_cached("UPDATE accounts SET balance_msat = balance_msat + ?1 WHERE id = ?2")?
        .execute(params![req.amount_msat, credit.id])?;
    conn.prepare_cached(
        "INSERT INTO transfers (idempotency_key, debit_account_id, credit_account_id, amount_msat, kind, reference, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        req.idempotency_key,
        debit.id,
        credit.id,
        req.amount_msat,
        req.kind.as_str(),
        req.reference,
        ctx.now_s
    ])?;
    Ok(Posted::Created(Transfer {
        id: conn.last_insert_rowid(),
        idempotency_key: req.idempotency_key.clone(),
        debit: req.debit.clone(),
        credit: req.credit.clone(),
        amount_msat: req.amount_msat,
        kind: req.kind.as_str().to_string(),
        reference: req.reference.clone(),
        item_count: 1,
        created_at: ctx.now_s,
    }))
}

/// Checks, without writing anything, that `amount_msat` can be accrued
/// from `debit` to `credit` in the current group: a positive amount within
/// the transfer bound, a source that may go negative, and neither balance
/// (with what this group already accrued) beyond [`MAX_BALANCE_MSAT`].
/// Jobs call it before their first write, so a refusal is a refusal of
/// that job alone (the writer rolls a whole group back only on faults).
pub fn check_accrue(
    ctx: &mut WriteCtx<'_>,
    debit: &str,
    credit: &str,
    amount_msat: i64,
) -> Result<(), LedgerError> {
    if amount_msat <= 0 || amount_msat > MAX_TRANSFER_MSAT {
        return Err(LedgerError::AmountOutOfRange);
    }
    if allows_negative(debit) != Some(true) {
        return Err(LedgerError::UnknownAccount(debit.to_string()));
    }
    if allows_negative(credit).is_none() || debit == credit {
        return Err(LedgerError::UnknownAccount(credit.to_string()));
    }
    check_headroom(ctx, debit, -i128::from(amount_msat))?;
    check_headroom(ctx, credit, i128::from(amount_msat))
}

/// Whether `account`, with what the group already accrued to it, stays
/// within [`MAX_BALANCE_MSAT`] after `delta_msat`.
fn check_headroom(
    ctx: &mut WriteCtx<'_>,
    account: &str,
    delta_msat: i128,
) -> Result<(), LedgerError> {
    let (current, accrued) = ctx.state.ledger.headroom_of(ctx.conn, account)?;
    let would_be = i128::from(current) + accrued + delta_msat;
    if would_be.abs() > i128::from(MAX_BALANCE_MSAT) {
        return Err(LedgerError::BalanceBound {
            account: account.to_string(),
            would_be_msat: would_be,
        });
    }
    Ok(())
}

/// Checks, without writing, that a source that may go negative can still
/// hand out `amount_msat` in the current group (its balance bound).
pub fn check_source(
    ctx: &mut WriteCtx<'_>,
    debit: &str,
    amount_msat: i64,
) -> Result<(), LedgerError> {
    if allows_negative(debit) != Some(true) {
        return Err(LedgerError::UnknownAccount(debit.to_string()));
    }
    check_headroom(ctx, debit, -i128::from(amount_msat))
}

/// Accrues a credit to be rolled up into one transfer per account at the
/// end of the batch. Returns `(credit account id, rollup group)`: the item
/// records the group so every credit is traceable to its transfer.
/// Only for sources that may go negative and accounts that only grow here.
/// Callers run [`check_accrue`] first, before their job writes anything;
/// this repeats the checks (a refusal here, after writes, is a fault).
pub fn accrue(
    ctx: &mut WriteCtx<'_>,
    debit: &str,
    credit: &str,
    kind: TransferKind,
    amount_msat: i64,
) -> Result<(i64, i64), LedgerError> {
    check_accrue(ctx, debit, credit, amount_msat)?;
    let conn = ctx.conn;
    let debit_id = ctx.state.ledger.account(conn, debit, ctx.now_s)?.id;
    let credit_id = ctx.state.ledger.account(conn, credit, ctx.now_s)?.id;
    let ledger = &mut ctx.state.ledger;
    let entry = ledger
        .pending
        .entry((debit_id, credit_id, kind))
        .or_default();
    let total = entry
        .amount_msat
        .checked_add(amount_msat)
        .filter(|t| *t <= MAX_TRANSFER_MSAT)
        .ok_or(LedgerError::AmountOutOfRange)?;
    entry.amount_msat = total;
    entry.items += 1;
    for (id, sign) in [(debit_id, -1i128), (credit_id, 1i128)] {
        // An account created just now had no row (and so no entry) when it
        // was checked: its base is its balance now, 0.
        let headroom = match ledger.headroom.entry(id) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(Headroom {
                base_msat: balance_by_id(conn, id)?,
                accrued_msat: 0,
            }),
        };
        headroom.accrued_msat += sign * i128::from(amount_msat);
    }
    Ok((credit_id, ledger.group))
}

/// One change of an account's balance: when, by how much (credits
/// positive, debits negative) and of what kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub at_s: i64,
    pub delta_msat: i64,
    pub kind: String,
    /// Credits rolled up into this transfer.
    pub items: i64,
}

/// Every transfer into or out of `name` created at or after `from_s`,
/// oldest first (empty for an unknown account). Reads newest first along
/// the account's index and stops at the first older transfer (ids grow
/// with time), so a day of history costs a day of rows, not the account's
/// whole life.
pub fn movements_since(
    conn: &Connection,
    name: &str,
    from_s: i64,
) -> rusqlite::Result<Vec<Movement>> {
    let Some(id) = account_id(conn, name)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (sql, sign) in [
        (
            "SELECT created_at, amount_msat, kind, item_count FROM transfers
             WHERE credit_account_id = ?1 ORDER BY id DESC",
            1,
        ),
        (
            "SELECT created_at, amount_msat, kind, item_count FROM transfers
             WHERE debit_account_id = ?1 ORDER BY id DESC",
            -1,
        ),
    ] {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query([id])?;
        while let Some(r) = rows.next()? {
            let at_s: i64 = r.get(0)?;
            if at_s < from_s {
                break;
            }
            out.push(Movement {
                at_s,
                delta_msat: sign * r.get::<_, i64>(1)?,
                kind: r.get(2)?,
                items: r.get(3)?,
            });
        }
    }
    out.sort_by_key(|m| m.at_s);
    Ok(out)
}

/// Looks up an account id without creating it.
pub fn account_id(conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM accounts WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

fn find_by_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<Transfer>> {
    conn.prepare_cached(
        "SELECT t.id, t.idempotency_key, d.name, c.name, t.amount_msat, t.kind, t.reference, t.item_count, t.created_at
         FROM transfers t JOIN accounts d ON d.id = t.debit_account_id JOIN accounts c ON c.id = t.credit_account_id
         WHERE t.idempotency_key = ?1",
    )?
    .query_row([key], row_to_transfer)
    .optional()
}

fn row_to_transfer(r: &rusqlite::Row<'_>) -> rusqlite::Result<Transfer> {
    Ok(Transfer {
        id: r.get(0)?,
        idempotency_key: r.get(1)?,
        debit: r.get(2)?,
        credit: r.get(3)?,
        amount_msat: r.get(4)?,
        kind: r.get(5)?,
        reference: r.get(6)?,
        item_count: r.get(7)?,
        created_at: r.get(8)?,
    })
}

fn compare_existing(existing: Transfer, req: &TransferRequest) -> Result<Transfer, LedgerError> {
    if existing.debit != req.debit {
        return Err(LedgerError::ExistsWithDifferentDebitAccount);
    }
    if existing.credit != req.credit {
        return Err(LedgerError::ExistsWithDifferentCreditAccount);
    }
    if existing.amount_msat != req.amount_msat {
        return Err(LedgerError::ExistsWithDifferentAmount);
    }
    if existing.kind != req.kind.as_str() {
        return Err(LedgerError::ExistsWithDifferentKind);
    }
    if existing.reference != req.reference {
        return Err(LedgerError::ExistsWithDifferentReference);
    }
    Ok(existing)
}

/// Balance of an account by name (0 for an account never used).
pub fn balance(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    Ok(conn
        .prepare_cached("SELECT balance_msat FROM accounts WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Balances of many accounts by id.
pub fn balance_by_id(conn: &Connection, id: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT balance_msat FROM accounts WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
}

/// Totals for the snapshot.
pub fn totals(conn: &Connection) -> rusqlite::Result<pooldesk_proto::model::LedgerTotals> {
    let owed_msat: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(balance_msat), 0) FROM accounts WHERE name >= 'miner:' AND name < 'miner;'",
        )?
        .query_row([], |r| r.get(0))?;
    let transfers: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM transfers")?
        .query_row([], |r| r.get(0))?;
    Ok(pooldesk_proto::model::LedgerTotals {
        owed_msat,
        held_msat: balance(conn, WITHDRAWALS_HELD)?,
        paid_msat: balance(conn, PAYOUTS_SENT)?,
        fees_msat: balance(conn, FEES_NETWORK)?,
        credited_msat: -balance(conn, POOL_REWARDS)?,
        faucet_held_msat: balance(conn, FAUCET_HELD)?,
        faucet_sent_msat: balance(conn, FAUCET_SENT)?,
        transfers: transfers as u64,
    })
}

/// Transfers touching an account, newest first, before `before_id`.
pub fn transfers_of(
    conn: &Connection,
    name: &str,
    before_id: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<Transfer>> {
    let Some(id) = account_id(conn, name)? else {
        return Ok(Vec::new());
    };
    let before = before_id.unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT * FROM (
            SELECT t.id, t.idempotency_key, d.name, c.name, t.amount_msat, t.kind, t.reference, t.item_count, t.created_at
            FROM transfers t JOIN accounts d ON d.id = t.debit_account_id JOIN accounts c ON c.id = t.credit_account_id
            WHERE t.credit_account_id = ?1 AND t.id < ?2
            UNION ALL
            SELECT t.id, t.idempotency_key, d.name, c.name, t.amount_msat, t.kind, t.reference, t.item_count, t.created_at
            FROM transfers t JOIN accounts d ON d.id = t.debit_account_id JOIN accounts c ON c.id = t.credit_account_id
            WHERE t.debit_account_id = ?1 AND t.id < ?2
         ) ORDER BY 1 DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![id, before, limit], row_to_transfer)?;
    rows.collect()
}

/// Transfers of the given kinds, newest first (admin credit listing).
pub fn transfers_of_kinds(
    conn: &Connection,
    kinds: &[TransferKind],
    before_id: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<Transfer>> {
    let before = before_id.unwrap_or(i64::MAX);
    let kinds_text: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let placeholders = kinds_text.iter().map(|_| "?").collect::<Vec<_>>().join(",");
    let sql = format!(
        "SELECT t.id, t.idempotency_key, d.name, c.name, t.amount_msat, t.kind, t.reference, t.item_count, t.created_at
         FROM transfers t JOIN accounts d ON d.id = t.debit_account_id JOIN accounts c ON c.id = t.credit_account_id
         WHERE t.id < ? AND t.kind IN ({placeholders}) ORDER BY t.id DESC LIMIT ?"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut values: Vec<rusqlite::types::Value> = vec![before.into()];
    values.extend(
        kinds_text
            .iter()
            .map(|k| rusqlite::types::Value::from(k.to_string())),
    );
    values.push(i64::from(limit).into());
    let rows = stmt.query_map(rusqlite::params_from_iter(values), row_to_transfer)?;
    rows.collect()
}

#[cfg(test)]
mod tests;
