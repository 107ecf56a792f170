//! History for the charts and the miner's statement page: a miner's (or the
//! pool's) hashrate over the last 24 h, balance and earnings over time,
//! payouts as marks, and progress towards the payout threshold.
//!
//! Read-only and built from the tables other modules own (through their
//! query functions): `work_minutes` (hashrate), `transfers` (balance and
//! earnings: the ledger itself, so every figure adds up to the balance),
//! `withdrawals` (payout marks), `block_solves` (blocks on the pool chart).
//!
//! Resolution: one point per minute for the last hour, one per
//! [`COARSE_STEP_S`] before that, back [`SPAN_S`]. Earnings are summed per
//! hour. Money stays integer msat; only hashrates are floats.

use std::collections::BTreeMap;

use rusqlite::Connection;

use crate::hashrate::{pool_work_minutes, rate_of, work_minutes_of};
use crate::ledger;

/// How far back the charts go.
pub const SPAN_S: i64 = 24 * 3600;
/// Point width before the last hour.
pub const COARSE_STEP_S: i64 = 600;
const FINE_SPAN_S: i64 = 3600;
const HOUR_S: i64 = 3600;

/// One hashrate point: the bucket `[t_s, t_s + span_s)`.
#[derive(Debug, Clone, PartialEq)]
pub struct RatePoint {
    pub t_s: i64,
    pub span_s: i64,
    pub rate_hps: f64,
}

/// Earnings of one hour `[t_s, t_s + 3600)`: every ledger credit to the
/// miner (share credits, block credits, reversals as negatives); `credits`
/// counts the reports and shares behind them (a ledger transfer rolls up
/// every credit of one group commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourEarnings {
    pub t_s: i64,
    pub amount_msat: i64,
    pub credits: u32,
}

/// A payout on the time axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutMark {
    pub at_s: i64,
    pub withdrawal_id: i64,
    pub amount_sat: i64,
    pub state: String,
    pub txid: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MinerHistory {
    pub now_s: i64,
    pub from_s: i64,
    pub total: Vec<RatePoint>,
    /// Per worker, the same buckets as `total` (zero where it did nothing).
    pub workers: BTreeMap<String, Vec<RatePoint>>,
    /// Balance at the end of each hour bucket and now, oldest first.
    pub balance: Vec<(i64, i64)>,
    pub earnings: Vec<HourEarnings>,
    /// Sum of `earnings` (every credit in the last 24 h).
    pub earned_24h_msat: i64,
    pub payouts: Vec<PayoutMark>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolHistory {
    pub now_s: i64,
    pub from_s: i64,
    pub total: Vec<RatePoint>,
    /// Miners with work in each bucket, same buckets as `total`.
    pub miners: Vec<u32>,
    /// Blocks the pool reported solved.
    pub blocks: Vec<crate::shares::BlockSolve>,
}

/// The bucket starts, oldest first: coarse steps from `from_s` to the last
/// hour, then minutes up to and including the current one.
pub fn buckets(now_s: i64) -> (i64, Vec<(i64, i64)>) {
    let minute = now_s - now_s.rem_euclid(60);
    let fine_from = minute - FINE_SPAN_S + 60;
    // From a full day before `now` (not before the current minute), rounded
    // down to a coarse step: the series always covers at least `SPAN_S`.
    let day_ago = now_s - SPAN_S;
    let coarse_from = day_ago - day_ago.rem_euclid(COARSE_STEP_S);
    let mut out = Vec::new();
    let mut t = coarse_from;
    while t < fine_from {
        let span = COARSE_STEP_S.min(fine_from - t);
        out.push((t, span));
        t += span;
    }
    let mut t = fine_from;
    while t <= minute {
        out.push((t, 60));
        t += 60;
    }
    (coarse_from, out)
}

/// Which bucket a minute falls in (buckets sorted, contiguous).
fn bucket_index(buckets: &[(i64, i64)], minute: i64) -> Option<usize> {
    let i = buckets.partition_point(|(t, _)| *t <= minute);
    (i > 0 && minute < buckets[i - 1].0 + buckets[i - 1].1).then(|| i - 1)
}

/// Seconds a bucket covers so far (the current minute only up to now).
fn covered_s(bucket: (i64, i64), now_s: i64) -> i64 {
    (now_s - bucket.0 + 1).clamp(1, bucket.1)
}

/// One rate point per bucket from the work done in it.
fn rate_points(buckets: &[(i64, i64)], work: &[u128], now_s: i64) -> Vec<RatePoint> {
    buckets
        .iter()
        .zip(work)
        .map(|(b, w)| RatePoint {
            t_s: b.0,
            span_s: b.1,
            rate_hps: rate_of(*w, covered_s(*b, now_s)),
        })
        .collect()
}

pub fn miner_history(
    conn: &Connection,
    miner_id: &str,
    now_s: i64,
) -> rusqlite::Result<MinerHistory> {
    let (from_s, buckets) = buckets(now_s);
    let mut total_work = vec![0u128; buckets.len()];
    let mut worker_work: BTreeMap<String, Vec<u128>> = BTreeMap::new();
    for (worker, minute, work) in work_minutes_of(conn, miner_id, from_s)? {
        let Some(i) = bucket_index(&buckets, minute) else {
            continue;
        };
        total_work[i] = total_work[i].saturating_add(work);
        let w = worker_work
            .entry(worker)
            .or_insert_with(|| vec![0; buckets.len()]);
        w[i] = w[i].saturating_add(work);
    }
    let total = rate_points(&buckets, &total_work, now_s);
    let workers = worker_work
        .iter()
        .map(|(name, work)| (name.clone(), rate_points(&buckets, work, now_s)))
        .collect();

    // Balance and earnings from the ledger: walk the movements since the
    // first hour, backwards from today's balance.
    let account = ledger::miner_account(miner_id);
    let balance_now = ledger::balance(conn, &account)?;
    let hour_from = from_s - from_s.rem_euclid(HOUR_S);
    let movements = ledger::movements_since(conn, &account, hour_from)?;
    let hours: Vec<i64> = (0..)
        .map(|h| hour_from + h * HOUR_S)
        .take_while(|t| *t <= now_s)
        .collect();
    let mut earnings: Vec<HourEarnings> = hours
        .iter()
        .map(|t| HourEarnings {
            t_s: *t,
            amount_msat: 0,
            credits: 0,
        })
        .collect();
    // Balance at the end of each hour = now − everything after that end.
    let mut after_msat = vec![0i64; hours.len()];
    for m in &movements {
        let h = ((m.at_s - hour_from) / HOUR_S).clamp(0, hours.len() as i64 - 1) as usize;
        if is_earning(&m.kind) {
            earnings[h].amount_msat += m.delta_msat;
            earnings[h].credits = earnings[h]
                .credits
                .saturating_add(u32::try_from(m.items).unwrap_or(u32::MAX));
        }
        // Every hour ending at or before this movement has it "after".
        for after in after_msat.iter_mut().take(h) {
            *after += m.delta_msat;
        }
    }
    let mut balance: Vec<(i64, i64)> = hours
        .iter()
        .zip(&after_msat)
        .filter(|(t, _)| **t + HOUR_S <= now_s)
        .map(|(t, after)| (t + HOUR_S, balance_now - after))
        .collect();
    balance.push((now_s, balance_now));
    let day_ago = now_s - SPAN_S;
    let earned_24h_msat = movements
        .iter()
        .filter(|m| m.at_s > day_ago && is_earning(&m.kind))
        .map(|m| m.delta_msat)
        .sum();
    earnings.retain(|e| e.credits > 0);

    let payouts = crate::payouts::db::withdrawals_of_miner(conn, miner_id, 200)?
        .into_iter()
        .filter(|w| w.txid.is_some() && w.updated_at >= from_s)
        .map(|w| PayoutMark {
            at_s: w.updated_at,
            withdrawal_id: w.id,
            amount_sat: w.amount_sat,
            state: w.state,
            txid: w.txid,
        })
        .collect();
    Ok(MinerHistory {
        now_s,
        from_s,
        total,
        workers,
        balance,
        earnings,
        earned_24h_msat,
        payouts,
    })
}

/// Transfer kinds that are earnings (credits for work and their
/// corrections), as opposed to withdrawals and their reversals.
fn is_earning(kind: &str) -> bool {
    use ledger::TransferKind as K;
    [
        K::ShareCredit,
        K::BlockCredit,
        K::PoolShareCredit,
        K::PoolBlockCredit,
        K::PoolBlockReversal,
        K::Adjustment,
    ]
    .iter()
    .any(|k| k.as_str() == kind)
}

pub fn pool_history(conn: &Connection, now_s: i64) -> rusqlite::Result<PoolHistory> {
    let (from_s, buckets) = buckets(now_s);
    let mut work = vec![0u128; buckets.len()];
    let mut miners = vec![0u32; buckets.len()];
    for (minute, w, n) in pool_work_minutes(conn, from_s)? {
        if let Some(i) = bucket_index(&buckets, minute) {
            work[i] = work[i].saturating_add(w);
            // Distinct miners per minute; a coarse bucket shows its busiest minute.
            miners[i] = miners[i].max(n);
        }
    }
    let total = rate_points(&buckets, &work, now_s);
    let blocks = crate::shares::blocks_since(conn, from_s)?;
    Ok(PoolHistory {
        now_s,
        from_s,
        total,
        miners,
        blocks,
    })
}

/// Progress towards the payout threshold and what the miner earns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub threshold_msat: i64,
    pub balance_msat: i64,
    /// `threshold − balance`, never negative.
    pub to_go_msat: i64,
    /// Per mille of the threshold reached (0..=1000).
    pub permille: i64,
    /// Earnings per day at the pace of the covered span (exact for PPS:
    /// the credits actually received, scaled to 24 h when the history is
    /// shorter), and the seconds of history it is based on.
    pub per_day_msat: i64,
    pub basis_s: i64,
    /// Seconds until the threshold at that pace; `None` when nothing is
    /// being earned, `Some(0)` when already reached.
    pub eta_s: Option<i64>,
}

/// `earned_msat` over the last `basis_s` seconds (at most a day).
pub fn progress(
    balance_msat: i64,
    threshold_msat: i64,
    earned_msat: i64,
    basis_s: i64,
) -> Progress {
    let basis_s = basis_s.clamp(1, SPAN_S);
    let to_go_msat = (threshold_msat - balance_msat).max(0);
    let permille = if threshold_msat <= 0 {
        1000
    } else {
        (i128::from(balance_msat.max(0)) * 1000 / i128::from(threshold_msat)).min(1000) as i64
    };
    let per_day_msat =
        (i128::from(earned_msat.max(0)) * i128::from(SPAN_S) / i128::from(basis_s)) as i64;
    let eta_s = if to_go_msat == 0 {
        Some(0)
    } else if earned_msat <= 0 {
        None
    } else {
        // ceil(to_go × basis / earned)
        let n = i128::from(to_go_msat) * i128::from(basis_s);
        let d = i128::from(earned_msat);
        Some(((n + d - 1) / d).min(i128::from(i64::MAX)) as i64)
    };
    Progress {
        threshold_msat,
        balance_msat,
        to_go_msat,
        permille,
        per_day_msat,
        basis_s,
        eta_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_coarse_then_minutes_and_cover_a_day() {
        // Every second of a coarse step: the day must be covered whatever
        // the alignment (it fell 60 s short when the day-ago minute was on
        // a coarse boundary).
        for offset in 0..COARSE_STEP_S * 2 {
            buckets_cover_a_day_at(1_700_000_000 + offset);
        }
    }

    fn buckets_cover_a_day_at(now: i64) {
        let (from, b) = buckets(now);
        assert_eq!(from, b[0].0);
        assert!(now - from >= SPAN_S, "{}", now - from);
        for w in b.windows(2) {
            assert_eq!(w[0].0 + w[0].1, w[1].0, "{w:?}");
        }
        let minute = now - now.rem_euclid(60);
        assert_eq!(*b.last().unwrap(), (minute, 60));
        // The last hour is sixty minutes (a coarse step before it may be
        // a minute wide too, where the day's start leaves one).
        let fine = &b[b.len() - 60..];
        assert!(fine.iter().all(|x| x.1 == 60), "{fine:?}");
        assert_eq!(fine[0].0, minute - 3540);
        assert!(b[..b.len() - 60].iter().all(|x| x.0 < minute - 3540));
        assert_eq!(bucket_index(&b, minute), Some(b.len() - 1));
        assert_eq!(bucket_index(&b, from - 60), None);
        assert_eq!(bucket_index(&b, from), Some(0));
    }

    #[test]
    fn progress_is_exact_integer_arithmetic() {
        // 2.5 µBTC of a 10 µBTC threshold earned in 6 h: 10 µBTC a day,
        // 7.5 to go at 2.5 per 6 h → 18 h.
        let p = progress(2_500_000, 10_000_000, 2_500_000, 6 * 3600);
        assert_eq!(p.to_go_msat, 7_500_000);
        assert_eq!(p.permille, 250);
        assert_eq!(p.per_day_msat, 10_000_000);
        assert_eq!(p.eta_s, Some(18 * 3600));
        // Reached; nothing earned; a negative balance never shows progress.
        assert_eq!(progress(11, 10, 0, 60).eta_s, Some(0));
        assert_eq!(progress(11, 10, 0, 60).permille, 1000);
        assert_eq!(progress(1, 10, 0, 60).eta_s, None);
        assert_eq!(progress(-5, 10, 1, 60).permille, 0);
        // The ETA rounds up: 1 msat to go at 3 msat per 2 s is 1 s.
        assert_eq!(progress(9, 10, 3, 2).eta_s, Some(1));
    }
}
