//! Hashrate: per miner, per worker and for the pool over 1 min, 10 min and
//! 1 h, from per-minute work buckets.
//!
//! `work` is difficulty-weighted shares (`shares × difficulty`); hashrate is
//! `work × 2^32 / seconds`. Two copies of the per-minute roll-up exist: the
//! `work_minutes` table (written in the same group commit as the credits, so
//! it survives restarts) and an in-memory [`HashrateTracker`] holding the
//! last hour, which answers every query without touching SQLite.
//!
//! A window of W seconds covers the whole previous W/60 minutes plus the
//! current partial minute, divided by the seconds actually covered: the
//! estimate never divides by a near-zero duration at the top of a minute.
//! Nor by time before the history began: a miner, worker or pool whose
//! first share is younger than the window is averaged over its history and
//! the figure is marked partial (40 s after a first share, every window
//! shows the same 40-second average, not a tenth or a ninetieth of it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pooldesk_proto::model::{Hashrate, WorkerRow};
use rusqlite::{Connection, params};

/// Minutes kept in memory: one hour plus the current one.
const MINUTES: usize = 61;
const TWO_POW_32: f64 = 4_294_967_296.0;

/// Work accrued during one group commit, written once per batch.
#[derive(Default)]
pub struct WorkRollup {
    pending: HashMap<(String, String, i64), (u128, u64)>,
}

impl WorkRollup {
    pub fn add(&mut self, miner_id: &str, worker_name: &str, minute: i64, work: u128) {
        let entry = self
            .pending
            .entry((miner_id.to_string(), worker_name.to_string(), minute))
            .or_default();
        entry.0 = entry.0.saturating_add(work);
        entry.1 += 1;
    }

    pub(crate) fn flush(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut upsert = conn.prepare_cached(
            "INSERT INTO work_minutes (miner_id, worker_name, minute, work, reports) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (miner_id, worker_name, minute) DO UPDATE SET
                 work = MIN(work + excluded.work, 9223372036854775807), reports = reports + excluded.reports",
        )?;
        for ((miner, worker, minute), (work, reports)) in self.pending.drain() {
            let work = i64::try_from(work).unwrap_or(i64::MAX);
            upsert.execute(params![miner, worker, minute, work, reports as i64])?;
        }
        Ok(())
    }

    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }
}

/// Work per minute for the last hour.
#[derive(Clone, Default)]
struct Buckets {
    /// `(minute start, work)`, indexed by `(minute / 60) % MINUTES`.
    slots: Vec<(i64, u128)>,
    /// When the history began: the earliest share seen (since start-up or
    /// since this entry was last pruned for silence).
    first_at_s: Option<i64>,
}

impl Buckets {
    /// Notes that the history goes back to at least `at_s`.
    fn seen(&mut self, at_s: i64) {
        self.first_at_s = Some(self.first_at_s.map_or(at_s, |first| first.min(at_s)));
    }

    fn add(&mut self, minute: i64, work: u128) {
        if self.slots.is_empty() {
            self.slots = vec![(i64::MIN, 0); MINUTES];
        }
        let slot = &mut self.slots[((minute / 60).rem_euclid(MINUTES as i64)) as usize];
        if slot.0 != minute {
            if slot.0 > minute {
                return; // older than what this slot now holds: outside the hour
            }
            *slot = (minute, 0);
        }
        slot.1 = slot.1.saturating_add(work);
    }

    fn work_since(&self, from_minute: i64) -> u128 {
        self.slots
            .iter()
            .filter(|(m, _)| *m >= from_minute)
            .map(|(_, w)| *w)
            .sum()
    }

    /// `(hashes/s, seconds covered, partial)` over the last `window_s`.
    fn window(&self, now_s: i64, window_s: i64) -> (f64, i64, bool) {
        let current = now_s - now_s.rem_euclid(60);
        let elapsed = now_s - current;
        let from = current - window_s;
        let work = self.work_since(from);
        let whole_s = window_s + elapsed;
        let history_s = self.first_at_s.map_or(whole_s, |first| now_s - first);
        let covered_s = history_s.clamp(1, whole_s);
        let partial = history_s < window_s;
        (rate_of(work, covered_s), covered_s, partial)
    }

    fn rate(&self, now_s: i64, window_s: i64) -> f64 {
        self.window(now_s, window_s).0
    }

    fn hashrate(&self, now_s: i64) -> Hashrate {
        let (h1m, h1m_s, h1m_partial) = self.window(now_s, 60);
        let (h10m, h10m_s, h10m_partial) = self.window(now_s, 600);
        let (h1h, h1h_s, h1h_partial) = self.window(now_s, 3600);
        Hashrate {
            h1m,
            h10m,
            h1h,
            h1m_s,
            h10m_s,
            h1h_s,
            h1m_partial,
            h10m_partial,
            h1h_partial,
        }
    }

    /// Per-minute rate for the last hour of whole minutes, oldest first.
    fn history(&self, now_s: i64) -> Vec<(i64, f64)> {
        let current = now_s - now_s.rem_euclid(60);
        (1..MINUTES as i64)
            .rev()
            .map(|ago| {
                let minute = current - ago * 60;
                let work = self
                    .slots
                    .iter()
                    .find(|(m, _)| *m == minute)
                    .map(|(_, w)| *w)
                    .unwrap_or(0);
                (minute, rate_of(work, 60))
            })
            .collect()
    }
}

#[derive(Default)]
struct MinerStats {
    total: Buckets,
    workers: HashMap<String, (Buckets, i64)>,
    /// Accepted and rejected shares per worker and minute.
    counts: HashMap<String, ShareCounts>,
    last_share_at: i64,
}

/// Accepted and rejected shares of one worker per minute, for the last
/// hour. In memory only: a restart starts the hour again.
#[derive(Clone, Default)]
struct ShareCounts {
    /// `(minute start, accepted, rejected)`, indexed like [`Buckets`].
    slots: Vec<(i64, u64, u64)>,
    /// Whether its pool ever reported a reject (v2 batches do; v1 reports
    /// carry accepted shares only).
    rejects_reported: bool,
}

impl ShareCounts {
    fn add(&mut self, minute: i64, accepted: u64, rejected: u64, rejects_reported: bool) {
        if self.slots.is_empty() {
            self.slots = vec![(i64::MIN, 0, 0); MINUTES];
        }
        self.rejects_reported |= rejects_reported;
        let slot = &mut self.slots[((minute / 60).rem_euclid(MINUTES as i64)) as usize];
        if slot.0 != minute {
            if slot.0 > minute {
                return;
            }
            *slot = (minute, 0, 0);
        }
        slot.1 = slot.1.saturating_add(accepted);
        slot.2 = slot.2.saturating_add(rejected);
    }

    /// `(accepted, rejected)` over the current minute and the 59 before.
    fn last_hour(&self, now_s: i64) -> (u64, u64) {
        let from = now_s - now_s.rem_euclid(60) - 59 * 60;
        self.slots
            .iter()
            .filter(|(m, _, _)| *m >= from)
            .fold((0, 0), |(a, r), (_, sa, sr)| {
                (a.saturating_add(*sa), r.saturating_add(*sr))
            })
    }
}

#[derive(Default)]
struct Inner {
    pool: Buckets,
    miners: HashMap<String, MinerStats>,
}

/// The in-memory hour of work, shared by ingest (writes after commit) and
/// every reader (snapshot, SSE, control socket, HTTP).
#[derive(Clone, Default)]
pub struct HashrateTracker {
    inner: Arc<Mutex<Inner>>,
}

/// One miner's figures.
#[derive(Debug, Clone, Default)]
pub struct MinerHashrate {
    pub hashrate: Hashrate,
    pub workers: Vec<WorkerRow>,
    pub last_share_at: Option<i64>,
}

/// Work per worker and minute of one miner from `from_s` on, oldest first:
/// `(worker, minute start, work)`.
pub fn work_minutes_of(
    conn: &Connection,
    miner_id: &str,
    from_s: i64,
) -> rusqlite::Result<Vec<(String, i64, u128)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT worker_name, minute, work FROM work_minutes WHERE miner_id = ?1 AND minute >= ?2
         ORDER BY minute, worker_name",
    )?;
    let rows = stmt.query_map(params![miner_id, from_s], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?.max(0) as u128,
        ))
    })?;
    rows.collect()
}

/// The pool's work per minute from `from_s` on, with how many miners did
/// it: `(minute start, work, miners)`, oldest first.
pub fn pool_work_minutes(
    conn: &Connection,
    from_s: i64,
) -> rusqlite::Result<Vec<(i64, u128, u32)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT minute, SUM(work), COUNT(DISTINCT miner_id) FROM work_minutes WHERE minute >= ?1
         GROUP BY minute ORDER BY minute",
    )?;
    let rows = stmt.query_map([from_s], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            // SUM of integers that overflows turns REAL: clamp, never fail.
            r.get::<_, f64>(1).map(|w| w.max(0.0) as u128)?,
            r.get::<_, u32>(2)?,
        ))
    })?;
    rows.collect()
}

/// Hashes per second for `work` done over `span_s` seconds.
pub fn rate_of(work: u128, span_s: i64) -> f64 {
    work as f64 * TWO_POW_32 / span_s.max(1) as f64
}

impl HashrateTracker {
    /// Loads the last hour from `work_minutes`. One minute more is read
    /// than the windows need, so a miner who was already mining an hour ago
    /// starts with a full history, not a partial one.
    pub fn load(conn: &Connection, now_s: i64) -> rusqlite::Result<HashrateTracker> {
        let tracker = HashrateTracker::default();
        let from = now_s - now_s.rem_euclid(60) - 3660;
        let mut stmt = conn.prepare(
            "SELECT miner_id, worker_name, minute, work FROM work_minutes WHERE minute >= ?1",
        )?;
        let rows = stmt.query_map([from], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (miner, worker, minute, work) = row?;
            tracker.record(&miner, &worker, minute, work.max(0) as u128, minute);
        }
        Ok(tracker)
    }

    /// Records work after it has been committed.
    pub fn record(&self, miner_id: &str, worker_name: &str, minute: i64, work: u128, at_s: i64) {
        // Work is filed under the minute it was done in, which can be long
        // before it arrived (a bridge catching up): the history began no
        // later than that minute's end. Minutes loaded at start-up pass
        // their start as `at_s` (never a history too short).
        let first_at_s = at_s.min(minute + 59);
        let mut inner = self.inner.lock().expect("hashrate lock");
        inner.pool.add(minute, work);
        inner.pool.seen(first_at_s);
        let miner = inner.miners.entry(miner_id.to_string()).or_default();
        miner.total.add(minute, work);
        miner.total.seen(first_at_s);
        miner.last_share_at = miner.last_share_at.max(at_s);
        let worker = miner.workers.entry(worker_name.to_string()).or_default();
        worker.0.add(minute, work);
        worker.0.seen(first_at_s);
        worker.1 = worker.1.max(at_s);
    }

    /// Records accepted and rejected shares of a worker after they have
    /// been committed; `rejects_reported`: the source reports rejects.
    pub fn record_counts(
        &self,
        miner_id: &str,
        worker_name: &str,
        minute: i64,
        accepted: u64,
        rejected: u64,
        rejects_reported: bool,
    ) {
        let mut inner = self.inner.lock().expect("hashrate lock");
        let miner = inner.miners.entry(miner_id.to_string()).or_default();
        miner
            .counts
            .entry(worker_name.to_string())
            .or_default()
            .add(minute, accepted, rejected, rejects_reported);
    }

    pub fn pool(&self, now_s: i64) -> Hashrate {
        self.inner
            .lock()
            .expect("hashrate lock")
            .pool
            .hashrate(now_s)
    }

    pub fn pool_history(&self, now_s: i64) -> Vec<(i64, f64)> {
        self.inner
            .lock()
            .expect("hashrate lock")
            .pool
            .history(now_s)
    }

    /// Difficulty-1 shares per second over the last minute.
    pub fn shares_per_s(&self, now_s: i64) -> f64 {
        self.pool(now_s).h1m / TWO_POW_32
    }

    pub fn miner(&self, miner_id: &str, now_s: i64) -> MinerHashrate {
        let inner = self.inner.lock().expect("hashrate lock");
        let Some(stats) = inner.miners.get(miner_id) else {
            return MinerHashrate::default();
        };
        let mut workers: Vec<WorkerRow> = stats
            .workers
            .iter()
            .map(|(name, (buckets, last))| {
                let counts = stats.counts.get(name);
                let (accepted_1h, rejected_1h) = counts.map_or((0, 0), |c| c.last_hour(now_s));
                WorkerRow {
                    worker_name: name.clone(),
                    hashrate: buckets.hashrate(now_s),
                    last_share_at: Some(*last),
                    accepted_1h,
                    rejected_1h,
                    rejects_reported: counts.is_some_and(|c| c.rejects_reported),
                }
            })
            .collect();
        workers.sort_by(|a, b| a.worker_name.cmp(&b.worker_name));
        MinerHashrate {
            hashrate: stats.total.hashrate(now_s),
            workers,
            last_share_at: Some(stats.last_share_at),
        }
    }

    /// `(10-minute hashrate, workers active in 10 min, last share)` for every
    /// miner seen in the last hour, for tables of thousands of miners.
    pub fn summaries(&self, now_s: i64) -> HashMap<String, (f64, u32, i64)> {
        let inner = self.inner.lock().expect("hashrate lock");
        let since = now_s - 600;
        inner
            .miners
            .iter()
            .map(|(id, stats)| {
                let workers = stats
                    .workers
                    .values()
                    .filter(|(_, last)| *last >= since)
                    .count();
                (
                    id.clone(),
                    (
                        stats.total.rate(now_s, 600),
                        workers as u32,
                        stats.last_share_at,
                    ),
                )
            })
            .collect()
    }

    /// `(miners, workers)` with a share in the last 10 minutes.
    pub fn active(&self, now_s: i64) -> (u64, u64) {
        let inner = self.inner.lock().expect("hashrate lock");
        let since = now_s - 600;
        let mut miners = 0;
        let mut workers = 0;
        for stats in inner.miners.values() {
            if stats.last_share_at >= since {
                miners += 1;
            }
            workers += stats
                .workers
                .values()
                .filter(|(_, last)| *last >= since)
                .count() as u64;
        }
        (miners, workers)
    }

    /// Forgets miners and workers silent for over an hour (bounded memory).
    pub fn prune(&self, now_s: i64) {
        let mut inner = self.inner.lock().expect("hashrate lock");
        let cutoff = now_s - 3660;
        inner.miners.retain(|_, stats| {
            stats.workers.retain(|_, (_, last)| *last >= cutoff);
            let workers = &stats.workers;
            stats.counts.retain(|name, _| workers.contains_key(name));
            stats.last_share_at >= cutoff
        });
    }
}

/// Formats a hashrate with SI units (`12.3 TH/s`).
pub fn format_hashrate(hashes_per_s: f64) -> String {
    const UNITS: [&str; 9] = [
        "H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s", "ZH/s", "YH/s",
    ];
    let mut value = hashes_per_s.max(0.0);
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Unix time on a minute boundary (1_800_000_000 is divisible by 60).
    const MINUTE_START: i64 = 1_800_000_000;

    #[test]
    fn one_difficulty_one_share_per_second_is_2_pow_32_hashes_per_second() {
        let tracker = HashrateTracker::default();
        let now = MINUTE_START + 30; // 30 s into a minute
        // 60 shares in the previous minute (mining since its start), 30 in
        // the current half minute.
        tracker.record("m", "w", now - 30 - 60, 60, now - 30 - 60);
        tracker.record("m", "w", now - 30, 30, now);
        let rate = tracker.miner("m", now).hashrate.h1m;
        assert!((rate - TWO_POW_32).abs() < 1.0, "{rate}");
        assert_eq!(tracker.active(now), (1, 1));
        assert!((tracker.shares_per_s(now) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn old_work_leaves_the_windows() {
        let tracker = HashrateTracker::default();
        let now = MINUTE_START;
        tracker.record("m", "w", now - 7200, 1000, now - 7200);
        tracker.record("m", "w", now - 1200, 600, now - 1200);
        let h = tracker.miner("m", now).hashrate;
        assert_eq!(h.h1m, 0.0);
        assert_eq!(h.h10m, 0.0);
        assert!(h.h1h > 0.0);
        tracker.prune(now);
        assert_eq!(tracker.active(now), (0, 0));
    }

    #[test]
    fn a_young_miner_is_averaged_over_its_history_and_marked_partial() {
        let tracker = HashrateTracker::default();
        let first = MINUTE_START + 20;
        // 40 difficulty-1 shares in its first 40 s: 1 share/s.
        tracker.record("m", "w", MINUTE_START, 40, first);
        let now = first + 40;
        let h = tracker.miner("m", now).hashrate;
        for (rate, covered, partial) in [
            (h.h1m, h.h1m_s, h.h1m_partial),
            (h.h10m, h.h10m_s, h.h10m_partial),
            (h.h1h, h.h1h_s, h.h1h_partial),
        ] {
            assert!((rate - TWO_POW_32).abs() < 1.0, "{rate}");
            assert_eq!(covered, 40);
            assert!(partial);
        }
        // The worker and the pool have the same history here.
        assert_eq!(tracker.miner("m", now).workers[0].hashrate, h);
        assert_eq!(tracker.pool(now), h);

        // 2 minutes later the 1-minute window is whole, the others not.
        let later = first + 130;
        let h = tracker.miner("m", later).hashrate;
        assert!(!h.h1m_partial);
        assert_eq!(h.h1m_s, 60 + later.rem_euclid(60));
        assert!(h.h10m_partial);
        assert_eq!(h.h10m_s, 130);
        assert!(h.h1h_partial);
    }

    #[test]
    fn history_loaded_at_start_up_counts_from_its_first_minute() {
        let tracker = HashrateTracker::default();
        let now = MINUTE_START + 3 * 3600;
        // Loaded rows pass the minute start as the time seen.
        let minute = now - now.rem_euclid(60) - 3660;
        tracker.record("m", "w", minute, 60, minute);
        let h = tracker.miner("m", now).hashrate;
        assert!(!h.h1h_partial && !h.h10m_partial && !h.h1m_partial);
        assert_eq!(h.h1h_s, 3600 + now.rem_euclid(60));
    }

    #[test]
    fn si_units() {
        assert_eq!(format_hashrate(0.0), "0.00 H/s");
        assert_eq!(format_hashrate(4_294_967_296.0), "4.29 GH/s");
        assert_eq!(format_hashrate(1.5e15), "1.50 PH/s");
    }
}
