//! The pure part of paying a block: choosing the window, splitting the
//! reward exactly, and the hash that commits a statement to its shares.
//! No I/O here, so `pooldeskd statement verify` recomputes exactly what
//! the daemon computed.
//!
//! Rules (also in ARCHITECTURE.md, "Blocks"):
//! - **Window** (PPLNS): walk share records from the newest at discovery
//!   backwards, adding `shares × difficulty`, until the window is full. The
//!   record that crosses the boundary counts only the part that fits
//!   (`window − work of the newer records`); older records are out.
//! - **Split**: `distributable = reward − fee`; miner `i` with work `w_i`
//!   of total `W` gets `floor(distributable × w_i / W)` (i128), then the
//!   msat left over (fewer than the number of miners) go one each to the
//!   largest remainders `distributable × w_i mod W`, ties broken by miner
//!   id (byte order, ascending). The parts sum to `distributable` exactly.
//! - **Fee**: `floor(reward × fee_bps / 10000)`. With no work in the
//!   window (or under PPS, where shares were already paid) the pool keeps
//!   the whole reward: fee = reward.

use std::collections::BTreeMap;

use pooldesk_proto::model::{StatementPart, StatementShare};
use sha2::{Digest, Sha256};

/// One share record as the window sees it (newest first when choosing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: i64,
    pub miner_id: String,
    pub work: u64,
}

/// Chooses the window from records ordered **newest first**; returns it
/// oldest first. The oldest record counts partially when the boundary
/// falls inside it.
pub fn window(
    newest_first: impl IntoIterator<Item = Record>,
    window_work: u64,
) -> Vec<StatementShare> {
    let mut chosen = Vec::new();
    let mut total: u64 = 0;
    for record in newest_first {
        if total >= window_work {
            break;
        }
        let counted = record.work.min(window_work - total);
        if counted == 0 {
            continue;
        }
        total += counted;
        chosen.push(StatementShare {
            id: record.id,
            miner_id: record.miner_id,
            work: counted,
        });
    }
    chosen.reverse();
    chosen
}

/// `floor(reward × bps / 10000)`.
pub fn pool_fee_msat(reward_msat: i64, fee_bps: u32) -> i64 {
    let fee = i128::from(reward_msat) * i128::from(fee_bps.min(10_000)) / 10_000;
    fee as i64
}

/// Work per miner, ordered by miner id.
pub fn work_by_miner(shares: &[StatementShare]) -> BTreeMap<String, u64> {
    let mut by_miner: BTreeMap<String, u64> = BTreeMap::new();
    for share in shares {
        *by_miner.entry(share.miner_id.clone()).or_default() += share.work;
    }
    by_miner
}

/// Splits `distributable_msat` by work, largest remainders, ties by
/// miner id. Miners with zero work get nothing and are left out. Returns
/// parts ordered by miner id; empty when there is no work.
pub fn split(distributable_msat: i64, work: &BTreeMap<String, u64>) -> Vec<StatementPart> {
    let total: i128 = work.values().map(|w| i128::from(*w)).sum();
    if total == 0 || distributable_msat <= 0 {
        return Vec::new();
    }
    let d = i128::from(distributable_msat);
    // (miner, work, floor, remainder)
    let mut rows: Vec<(&String, u64, i128, i128)> = work
        .iter()
        .filter(|(_, w)| **w > 0)
        .map(|(miner, w)| {
            let product = d * i128::from(*w);
            (miner, *w, product / total, product % total)
        })
        .collect();
    let floors: i128 = rows.iter().map(|r| r.2).sum();
    let mut left = d - floors;
    debug_assert!(left >= 0 && left < rows.len() as i128);
    // Largest remainder first, then miner id ascending.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|a, b| rows[*b].3.cmp(&rows[*a].3).then(rows[*a].0.cmp(rows[*b].0)));
    for i in order {
        if left == 0 {
            break;
        }
        rows[i].2 += 1;
        left -= 1;
    }
    rows.into_iter()
        .map(|(miner, w, amount, _)| StatementPart {
            miner_id: miner.clone(),
            work: w,
            amount_msat: amount as i64,
        })
        .collect()
}

/// Canonical encoding of a window (ARCHITECTURE.md, "Block statements"):
/// for each share, oldest first, the UTF-8 line
/// `<id> SP <miner_id> SP <work> LF` (decimal integers, miner ids never
/// contain spaces or line breaks); the hash is sha256 of the
/// concatenation, in lowercase hex. An empty window hashes the empty string.
pub fn shares_sha256(shares: &[StatementShare]) -> String {
    let mut hasher = Sha256::new();
    for share in shares {
        hasher.update(format!("{} {} {}\n", share.id, share.miner_id, share.work).as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(id: i64, miner: &str, work: u64) -> Record {
        Record {
            id,
            miner_id: miner.into(),
            work,
        }
    }

    #[test]
    fn boundary_inside_a_record_counts_part_of_it() {
        // newest first: 5 (bob 30), 4 (alice 50), 3 (carol 40)
        let w = window(
            vec![
                rec(5, "bob", 30),
                rec(4, "alice", 50),
                rec(3, "carol", 40),
                rec(2, "x", 9),
            ],
            100,
        );
        assert_eq!(
            w,
            vec![
                StatementShare {
                    id: 3,
                    miner_id: "carol".into(),
                    work: 20
                },
                StatementShare {
                    id: 4,
                    miner_id: "alice".into(),
                    work: 50
                },
                StatementShare {
                    id: 5,
                    miner_id: "bob".into(),
                    work: 30
                },
            ]
        );
    }

    #[test]
    fn largest_remainder_ties_go_to_the_smaller_id() {
        let work: BTreeMap<String, u64> = [
            ("b".to_string(), 1),
            ("a".to_string(), 1),
            ("c".to_string(), 1),
        ]
        .into();
        let parts = split(10, &work);
        let amounts: Vec<(String, i64)> = parts
            .into_iter()
            .map(|p| (p.miner_id, p.amount_msat))
            .collect();
        assert_eq!(
            amounts,
            vec![("a".into(), 4), ("b".into(), 3), ("c".into(), 3)]
        );
    }

    #[test]
    fn fee_is_floored() {
        assert_eq!(pool_fee_msat(312_500_000_000, 150), 4_687_500_000);
        assert_eq!(pool_fee_msat(999, 1), 0);
        assert_eq!(pool_fee_msat(999, 10_000), 999);
    }

    #[test]
    fn hash_is_of_the_canonical_lines() {
        let shares = vec![StatementShare {
            id: 7,
            miner_id: "m1".into(),
            work: 42,
        }];
        // printf '7 m1 42\n' | sha256sum
        assert_eq!(
            shares_sha256(&shares),
            hex::encode(Sha256::digest(b"7 m1 42\n"))
        );
    }

    proptest! {
        #[test]
        fn parts_are_exact_and_fair(
            distributable in 0i64..=2_100_000_000_000_000_000i64,
            works in proptest::collection::vec(0u64..=u64::MAX / 4096, 1..40),
        ) {
            let work: BTreeMap<String, u64> = works
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("m{i:03}"), *w))
                .collect();
            let total: i128 = work.values().map(|w| i128::from(*w)).sum();
            let parts = split(distributable, &work);
            if total == 0 || distributable == 0 {
                prop_assert!(parts.is_empty());
            } else {
                let sum: i128 = parts.iter().map(|p| i128::from(p.amount_msat)).sum();
                prop_assert_eq!(sum, i128::from(distributable));
                for part in &parts {
                    prop_assert!(part.amount_msat >= 0);
                    // |amount - exact| < 1 msat: amount*W - d*w in (-W, W).
                    let exact_num = i128::from(distributable) * i128::from(part.work);
                    let diff = i128::from(part.amount_msat) * total - exact_num;
                    prop_assert!(diff > -total && diff < total, "{part:?} off by {diff}/{total}");
                }
            }
        }
    }
}
