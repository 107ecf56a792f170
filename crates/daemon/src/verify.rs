//! `pooldeskd verify`: every invariant of every module, on a live or
//! stopped ledger (read-only).

use rusqlite::Connection;

use crate::ledger::Violation;

/// Runs all checks. Returns the violations (empty: all good).
pub fn run(conn: &Connection, retention_days: u32) -> anyhow::Result<Vec<Violation>> {
    let quick: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    let mut violations = Vec::new();
    if quick != "ok" {
        violations.push(Violation(format!("SQLite quick_check: {quick}")));
    }
    // Read everything in one snapshot, so a live daemon committing in
    // between cannot make the checks disagree with each other.
    conn.execute_batch("BEGIN")?;
    let result = (|| -> anyhow::Result<()> {
        violations.extend(crate::ledger::verify(conn)?);
        let cutoff = crate::clock::now_s() - i64::from(retention_days) * 86_400;
        violations.extend(crate::ingest::verify(conn, cutoff)?);
        violations.extend(crate::shares::verify(conn, cutoff)?);
        violations.extend(crate::payouts::verify(conn)?);
        violations.extend(crate::faucet::verify(conn)?);
        violations.extend(crate::blocks::db::verify(conn)?);
        Ok(())
    })();
    conn.execute_batch("COMMIT")?;
    result?;
    Ok(violations)
}

/// A one-line summary of what was checked.
pub fn summary(conn: &Connection) -> anyhow::Result<String> {
    let (accounts, transfers): (i64, i64) = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM accounts), (SELECT COALESCE(MAX(id), 0) FROM transfers)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let miners: i64 = conn.query_row("SELECT COUNT(*) FROM miners", [], |r| r.get(0))?;
    Ok(format!(
        "{accounts} accounts, {transfers} transfers, {miners} miners"
    ))
}
