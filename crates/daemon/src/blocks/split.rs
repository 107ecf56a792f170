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
    pub source: Option<String>,
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
            source: record.source,
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

/// Recomputes a published statement from its own data (`pooldeskd
/// statement verify`): the share hash, the window's ends and total, the
/// fee, each miner's work and the split. Returns what disagrees (empty:
/// the statement is consistent).
pub fn check_statement(s: &pooldesk_proto::model::BlockStatement) -> Vec<String> {
    let mut problems = Vec::new();
    let hash = shares_sha256(&s.shares);
    if hash != s.shares_sha256 {
        problems.push(format!(
            "shares_sha256 is {} but the shares hash to {hash}",
            s.shares_sha256
        ));
    }
    if s.first_share_id != s.shares.first().map(|x| x.id)
        || s.last_share_id != s.shares.last().map(|x| x.id)
    {
        problems.push("first_share_id/last_share_id do not match the share list".into());
    }
    let total: u128 = s.shares.iter().map(|x| u128::from(x.work)).sum();
    if total != u128::from(s.total_work) {
        problems.push(format!(
            "total_work is {} but the shares add up to {total}",
            s.total_work
        ));
    }
    if total > u128::from(s.window_work) {
        problems.push(format!(
            "the shares add up to {total}, more than the window of {}",
            s.window_work
        ));
    }
    if s.block.reward_msat != s.reward_msat || s.block.pool_fee_msat != s.pool_fee_msat {
        problems.push("the block row and the statement disagree on reward or fee".into());
    }
    let expected_fee = if s.shares.is_empty() {
        s.reward_msat
    } else {
        pool_fee_msat(s.reward_msat, s.pool_fee_bps)
    };
    if s.pool_fee_msat != expected_fee {
        problems.push(format!(
            "pool_fee_msat is {} but {} bps of {} is {expected_fee}",
            s.pool_fee_msat, s.pool_fee_bps, s.reward_msat
        ));
    }
    let distributable = s.reward_msat - s.pool_fee_msat;
    if s.distributed_msat != distributable {
        problems.push(format!(
            "distributed_msat is {} but reward less fee is {distributable}",
            s.distributed_msat
        ));
    }
    let expected = split(distributable, &work_by_miner(&s.shares));
    let mut published: Vec<&StatementPart> = s.parts.iter().collect();
    published.sort_by(|a, b| a.miner_id.cmp(&b.miner_id));
    for part in &expected {
        match published.iter().find(|p| p.miner_id == part.miner_id) {
            None => problems.push(format!(
                "miner {} is missing from the parts (work {}, {} msat)",
                part.miner_id, part.work, part.amount_msat
            )),
            Some(p) if p.work != part.work || p.amount_msat != part.amount_msat => {
                problems.push(format!(
                    "miner {}: published work {} amount {} msat, recomputed work {} amount {} msat",
                    p.miner_id, p.work, p.amount_msat, part.work, part.amount_msat
                ))
            }
            Some(_) => {}
        }
    }
    for p in &published {
        if !expected.iter().any(|e| e.miner_id == p.miner_id) {
            problems.push(format!(
                "miner {} is paid {} msat but has no work in the window",
                p.miner_id, p.amount_msat
            ));
        }
    }
    problems
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
            source: None,
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
                    work: 20,
                    source: None,
                },
                StatementShare {
                    id: 4,
                    miner_id: "alice".into(),
                    work: 50,
                    source: None,
                },
                StatementShare {
                    id: 5,
                    miner_id: "bob".into(),
                    work: 30,
                    source: None,
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
            source: None,
        }];
        // printf '7 m1 42\n' | sha256sum
        assert_eq!(
            shares_sha256(&shares),
            hex::encode(Sha256::digest(b"7 m1 42\n"))
        );
    }

    fn published() -> pooldesk_proto::model::BlockStatement {
        let shares = window(
            vec![rec(5, "bob", 30), rec(4, "alice", 50), rec(3, "carol", 40)],
            100,
        );
        let reward = 5_000_000_001_000;
        let fee = pool_fee_msat(reward, 150);
        let parts = split(reward - fee, &work_by_miner(&shares));
        pooldesk_proto::model::BlockStatement {
            block: pooldesk_proto::model::BlockRow {
                hash: "00aa".into(),
                reward_msat: reward,
                pool_fee_msat: fee,
                ..Default::default()
            },
            window_work: 100,
            total_work: 100,
            first_share_id: Some(3),
            last_share_id: Some(5),
            reward_msat: reward,
            pool_fee_bps: 150,
            pool_fee_msat: fee,
            distributed_msat: reward - fee,
            parts,
            shares_sha256: shares_sha256(&shares),
            shares,
            ..Default::default()
        }
    }

    #[test]
    fn statement_check_accepts_the_published_and_names_each_alteration() {
        assert_eq!(check_statement(&published()), Vec::<String>::new());
        let mut share = published();
        share.shares[1].work += 1;
        assert!(
            check_statement(&share)
                .iter()
                .any(|p| p.contains("shares_sha256"))
        );
        let mut amount = published();
        amount.parts[0].amount_msat -= 1;
        amount.parts[1].amount_msat += 1;
        assert!(
            check_statement(&amount)
                .iter()
                .any(|p| p.contains("miner alice")),
            "{:?}",
            check_statement(&amount)
        );
        let mut miner = published();
        miner.parts[2].miner_id = "mallory".into();
        let problems = check_statement(&miner);
        assert!(
            problems.iter().any(|p| p.contains("mallory")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.contains("carol")), "{problems:?}");
        let mut share_miner = published();
        share_miner.shares[0].miner_id = "alice".into();
        assert!(!check_statement(&share_miner).is_empty());
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
