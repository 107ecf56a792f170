//! Numbered schema migrations, applied in order at start-up inside one
//! transaction each. The applied number is SQLite's `user_version`.
//! Never edit a released migration: add the next number.

use rusqlite::Connection;

/// `(number, name, sql)`; numbers are consecutive from 1.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "ledger",
        include_str!("../../migrations/0001_ledger.sql"),
    ),
    (
        2,
        "miners_ingest",
        include_str!("../../migrations/0002_miners_ingest.sql"),
    ),
    (3, "audit", include_str!("../../migrations/0003_audit.sql")),
    (
        4,
        "payouts",
        include_str!("../../migrations/0004_payouts.sql"),
    ),
    (
        5,
        "faucet",
        include_str!("../../migrations/0005_faucet.sql"),
    ),
    (
        6,
        "hostile_clients",
        include_str!("../../migrations/0006_hostile_clients.sql"),
    ),
    (
        7,
        "shares_v2",
        include_str!("../../migrations/0007_shares_v2.sql"),
    ),
    (
        8,
        "payout_txid_first",
        include_str!("../../migrations/0008_payout_txid_first.sql"),
    ),
    (
        9,
        "faucet_txid_first",
        include_str!("../../migrations/0009_faucet_txid_first.sql"),
    ),
    (
        10,
        "faucet_finality",
        include_str!("../../migrations/0010_faucet_finality.sql"),
    ),
    (
        11,
        "blocks",
        include_str!("../../migrations/0011_blocks.sql"),
    ),
    (
        12,
        "pplns_work",
        include_str!("../../migrations/0012_pplns_work.sql"),
    ),
];

pub(crate) fn apply(conn: &Connection) -> anyhow::Result<()> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    anyhow::ensure!(
        current <= latest,
        "ledger schema version {current} is newer than this pooldeskd ({latest}); refusing to touch it"
    );
    for (number, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)
            .map_err(|e| anyhow::anyhow!("migration {number} ({name}) failed: {e}"))?;
        tx.pragma_update(None, "user_version", number)?;
        tx.commit()?;
        tracing::info!(number, name, "applied ledger migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_consecutively_and_apply_twice_safely() {
        for (i, (number, _, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*number as usize, i + 1);
        }
        let conn = Connection::open_in_memory().unwrap();
        apply(&conn).unwrap();
        apply(&conn).unwrap();
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as u32);
    }
}
