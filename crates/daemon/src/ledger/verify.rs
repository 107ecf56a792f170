//! Ledger invariants, checked by `pooldeskd verify` and by tests after
//! every scenario.

use rusqlite::Connection;

/// One broken invariant, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks: the sum of all balances is 0; every balance equals the sum of
/// its transfers; no balance is beyond the supply bound; no account that
/// may not go negative is negative; every
/// amount is a positive integer; rolled-up transfers say how many items
/// they carry.
pub fn verify(conn: &Connection) -> rusqlite::Result<Vec<Violation>> {
    let mut violations = Vec::new();

    let (sum, non_integer): (i64, i64) = conn.query_row(
        // A non-integer balance is counted, not summed: a REAL in the sum
        // would make the whole sum unreadable and hide every other check.
        "SELECT COALESCE(SUM(CASE WHEN typeof(balance_msat) = 'integer' THEN balance_msat END), 0),
                COALESCE(SUM(typeof(balance_msat) <> 'integer'), 0)
         FROM accounts",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if sum != 0 {
        violations.push(Violation(format!(
            "sum of all balances is {sum} msat, not 0"
        )));
    }
    if non_integer != 0 {
        violations.push(Violation(format!(
            "{non_integer} account balances are not integers"
        )));
    }

    let mut stmt = conn.prepare(
        "WITH moved AS (
             SELECT credit_account_id AS account, amount_msat AS delta FROM transfers
             UNION ALL
             SELECT debit_account_id, -amount_msat FROM transfers
         ),
         per_account AS (SELECT account, SUM(delta) AS total FROM moved GROUP BY account)
         SELECT a.name, a.balance_msat, COALESCE(p.total, 0)
         FROM accounts a LEFT JOIN per_account p ON p.account = a.id
         WHERE typeof(a.balance_msat) = 'integer' AND a.balance_msat <> COALESCE(p.total, 0)
         ORDER BY a.name LIMIT 100",
    )?;
    let mismatches = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in mismatches {
        let (name, balance, total) = row?;
        violations.push(Violation(format!(
            "account {name}: balance {balance} msat but its transfers sum to {total} msat"
        )));
    }

    let mut stmt = conn.prepare(
        "SELECT name, balance_msat FROM accounts
         WHERE typeof(balance_msat) = 'integer' AND (balance_msat > ?1 OR balance_msat < -?1)
         ORDER BY name LIMIT 100",
    )?;
    let unbounded = stmt.query_map([super::MAX_BALANCE_MSAT], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in unbounded {
        let (name, balance) = row?;
        violations.push(Violation(format!(
            "account {name} holds {balance} msat, beyond the 21,000,000 BTC bound"
        )));
    }

    let mut stmt = conn.prepare(
        "SELECT name, balance_msat FROM accounts
         WHERE typeof(balance_msat) = 'integer' AND allow_negative = 0 AND balance_msat < 0
         ORDER BY name LIMIT 100",
    )?;
    let negatives = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in negatives {
        let (name, balance) = row?;
        violations.push(Violation(format!(
            "account {name} is negative: {balance} msat"
        )));
    }

    let bad_amounts: i64 = conn.query_row(
        "SELECT COUNT(*) FROM transfers WHERE typeof(amount_msat) <> 'integer' OR amount_msat <= 0
             OR debit_account_id = credit_account_id OR item_count < 1",
        [],
        |r| r.get(0),
    )?;
    if bad_amounts != 0 {
        violations.push(Violation(format!(
            "{bad_amounts} transfers have a non-positive or non-integer amount, the same account on both sides, or no items"
        )));
    }

    let mut stmt = conn.prepare(
        "SELECT a.name FROM accounts a
         WHERE NOT (a.name IN ('pool:rewards','pool:fees','pool:adjustments','faucet:funding','pool:blocks') AND a.allow_negative = 1)
           AND NOT (a.name IN ('withdrawals:held','payouts:sent','fees:network','faucet:held','faucet:sent') AND a.allow_negative = 0)
           AND NOT (a.name LIKE 'miner:_%' AND a.allow_negative = 0)
         LIMIT 100",
    )?;
    let odd = stmt.query_map([], |r| r.get::<_, String>(0))?;
    for name in odd {
        violations.push(Violation(format!(
            "account {} has an unknown name or the wrong sign policy",
            name?
        )));
    }
    Ok(violations)
}
