//! The PPLNS share log (`pplns_work`, migration 0012): one ordered list of
//! the work recorded while PPLNS is in force, from both share contracts —
//! a pool report (`POST /api/report_share`) is one row, one miner's
//! accepted shares in one batch (`POST /api/v2/shares`) are one row. Ids
//! are the order; a block's window is read from here, newest first.
//!
//! Work recorded under PPS was paid per share and is never here, so a
//! switch from PPS to PPLNS cannot pay the same share twice.

use rusqlite::{Connection, params};

use super::split::Record;

/// Appends work to the log; returns its id (the statement's share id).
pub fn record(
    conn: &Connection,
    miner_id: &str,
    work: u64,
    source: &str,
    now_s: i64,
) -> rusqlite::Result<i64> {
    debug_assert!(work > 0);
    conn.prepare_cached(
        "INSERT INTO pplns_work (miner_id, work, source, received_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        miner_id,
        i64::try_from(work).unwrap_or(i64::MAX),
        source,
        now_s
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The newest rows up to (and including) `through_id` (all when `None`),
/// newest first, until they hold `work` or the log ends.
pub fn newest_first(
    conn: &Connection,
    through_id: Option<i64>,
    work: u64,
) -> rusqlite::Result<Vec<Record>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, miner_id, work, source FROM pplns_work WHERE ?1 IS NULL OR id <= ?1 ORDER BY id DESC",
    )?;
    let mut rows = stmt.query([through_id])?;
    let mut out = Vec::new();
    let mut total: u128 = 0;
    while total < u128::from(work) {
        let Some(row) = rows.next()? else { break };
        let record_work = row.get::<_, i64>(2)?.max(0) as u64;
        total += u128::from(record_work);
        out.push(Record {
            id: row.get(0)?,
            miner_id: row.get(1)?,
            work: record_work,
            source: row.get(3)?,
        });
    }
    Ok(out)
}

/// Deletes rows older than `keep_from_id` (the oldest row of the current
/// window) that were also received before `cutoff_s`, at most `limit`
/// (the caller repeats). Found blocks keep their window in `block_window`.
pub fn prune(
    conn: &Connection,
    cutoff_s: i64,
    limit: i64,
    keep_from_id: Option<i64>,
) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM pplns_work WHERE id IN (
             SELECT id FROM pplns_work ORDER BY id LIMIT ?2
         ) AND received_at < ?1 AND (?3 IS NULL OR id < ?3)",
        params![cutoff_s, limit, keep_from_id],
    )
}

/// Per miner, in order of first appearance: the work of its accepted
/// shares in one batch and the seq range they span.
#[derive(Debug, Default)]
pub struct BatchWork<'a> {
    parts: Vec<(&'a str, u64, i64, i64)>,
    index: std::collections::HashMap<&'a str, usize>,
}

impl<'a> BatchWork<'a> {
    /// Adds one accepted share; returns the index of its miner's part.
    pub fn add(&mut self, miner_id: &'a str, work: u64, seq: i64) -> usize {
        if let Some(&i) = self.index.get(miner_id) {
            let part = &mut self.parts[i];
            part.1 = part.1.saturating_add(work);
            part.2 = part.2.min(seq);
            part.3 = part.3.max(seq);
            i
        } else {
            self.parts.push((miner_id, work, seq, seq));
            self.index.insert(miner_id, self.parts.len() - 1);
            self.parts.len() - 1
        }
    }

    /// Writes one log row per miner with work; returns each part's id
    /// (`None` for a part with no work) by the index [`Self::add`] gave.
    pub fn record(
        &self,
        conn: &Connection,
        origin: &str,
        now_s: i64,
    ) -> rusqlite::Result<Vec<Option<i64>>> {
        let mut ids = Vec::with_capacity(self.parts.len());
        for (miner_id, work, first, last) in &self.parts {
            ids.push(if *work > 0 {
                let source = format!("batch:{origin}:{first}-{last}");
                Some(record(conn, miner_id, *work, &source, now_s)?)
            } else {
                None
            });
        }
        Ok(ids)
    }
}
