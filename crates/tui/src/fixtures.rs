//! Fixed data and a fake daemon, for the snapshot tests, the key-handling
//! tests and the render benchmark. Not used by the binary.
//!
//! [`FakeDaemon::answer`] answers requests from fixed data the way
//! `pooldeskd` does (paging, sorting, filtering), and [`pump`] feeds its
//! answers back through [`App::handle_client`], so fixtures reach their
//! state through the same code paths as a live session.

use pooldesk_proto::control::{ErrorBody, Outcome, Request, Response, ResponseFrame, Welcome};
use pooldesk_proto::model::*;

use crate::app::App;
use crate::client::ClientEvent;
use crate::ui::miners::compare;

/// 2024-05-01 12:00:01 UTC.
pub const NOW: i64 = 1_714_564_801;

pub const ADDR_1: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
pub const ADDR_2: &str = "bcrt1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqp3mvzv";
pub const ADDR_3: &str = "bcrt1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qzf2c7x";
pub const ADDR_ATTACKER: &str = "bcrt1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l";

pub fn welcome() -> Welcome {
    Welcome {
        version: 1,
        server: "pooldeskd 0.1.0".into(),
        peer_uid: 1000,
        simulated: true,
    }
}

/// A small deterministic generator (no `rand` in the TUI).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

pub fn snapshot() -> Snapshot {
    let history = (0..60)
        .map(|i| {
            let wave = ((i as f64) / 6.0).sin() * 0.15 + 1.0;
            let ramp = if i < 10 { i as f64 / 10.0 } else { 1.0 };
            (NOW - (59 - i) * 60 - 1, 4.2e13 * wave * ramp)
        })
        .collect();
    Snapshot {
        at: NOW,
        server: "pooldeskd 0.1.0".into(),
        simulated: true,
        network: "regtest".into(),
        payout_mode: "cold".into(),
        hashrate: Hashrate {
            h1m: 45.1e12,
            h10m: 43.87e12,
            h1h: 41.2e12,
            // The daemon started 40 min ago: the hour is partial.
            h1m_s: 60,
            h10m_s: 600,
            h1h_s: 2400,
            h1h_partial: true,
            ..Default::default()
        },
        shares_per_s: 10_503.25,
        miners_total: 6,
        miners_active: 5,
        workers_active: 14,
        ledger: LedgerTotals {
            owed_msat: 123_456_789_012,
            held_msat: 4_500_000_000,
            paid_msat: 98_765_432_000,
            fees_msat: 12_345_000,
            credited_msat: 226_734_566_012,
            faucet_held_msat: 20_000_000,
            faucet_sent_msat: 2_340_000_000,
            transfers: 1_234_567,
        },
        withdrawals: WithdrawalCounts {
            requested: 3,
            approved: 2,
            batched: 0,
            broadcast: 0,
            confirmed: 1,
            rejected: 1,
            failed: 0,
            needs_attention: 1,
        },
        wallet: WalletHealth {
            backend: "simulated".into(),
            connected: true,
            chain: Some("regtest".into()),
            block_height: Some(1_234),
            spendable_sat: Some(150_000_000),
            fee_estimate_sat_vb: Some(3),
            last_error: None,
            checked_at: Some(NOW - 4),
            payouts_paused: false,
        },
        hashrate_history: history,
        warnings: vec![
            Warning {
                code: "simulated".into(),
                message: "demo mode: simulated wallet and workers, no real money".into(),
            },
            Warning {
                code: "unprotected_reports".into(),
                message:
                    "reports without event_id/ts are accepted (ingest.allow_unprotected_reports)"
                        .into(),
            },
            Warning {
                code: "batch_needs_attention".into(),
                message: "batch #7 needs attention: the daemon cannot prove whether it paid".into(),
            },
        ],
        origins: vec![
            OriginStatus {
                name: "ckpool-eu1".into(),
                max_seq: 184_220,
                accepted: 183_990,
                rejected: 230,
                blocks: 2,
                credited_msat: 1_839_900_000,
                last_share_at: Some(NOW - 2),
                last_batch_at: Some(NOW - 1),
                backlog_bytes: Some(0),
                quarantined_lines: Some(0),
            },
            OriginStatus {
                name: "ckpool-us2".into(),
                max_seq: 9_120,
                accepted: 9_001,
                rejected: 119,
                blocks: 0,
                credited_msat: 90_010_000,
                last_share_at: Some(NOW - 1_900),
                last_batch_at: Some(NOW - 1_800),
                backlog_bytes: Some(4_096),
                quarantined_lines: Some(3),
            },
        ],
    }
}

const TIERS: [Option<&str>; 4] = [
    Some("TIER_1_CPU"),
    Some("TIER_2_GPU"),
    Some("TIER_3_WORKSTATION"),
    None,
];

/// `n` miners with varied, deterministic values.
pub fn miners(n: usize) -> Vec<MinerRow> {
    let mut rng = Lcg(42);
    (0..n)
        .map(|i| {
            let id = match i % 5 {
                0 => format!("alice-rig-{i:05}"),
                1 => format!("bob-{i:05}"),
                2 => format!("club-member-{i:05}"),
                3 => format!("demo-miner-{i:05}"),
                _ => format!("Zed-Farm-{i:05}"),
            };
            let idle = rng.next().is_multiple_of(9);
            MinerRow {
                miner_id: id,
                tier: TIERS[i % 4].map(str::to_string),
                active: i % 17 != 5,
                hashrate_10m: if idle {
                    0.0
                } else {
                    (rng.next() % 100_000) as f64 * 1e9
                },
                workers: if idle {
                    0
                } else {
                    (rng.next() % 12) as u32 + 1
                },
                balance_msat: (rng.next() % 50_000_000_000) as i64,
                last_share_at: if i % 23 == 0 {
                    None
                } else {
                    Some(NOW - (rng.next() % 7200) as i64)
                },
                has_key: i % 3 != 0,
            }
        })
        .collect()
}

pub fn miner_detail(row: &MinerRow) -> MinerDetail {
    let workers = (0..row.workers.min(4))
        .map(|w| WorkerRow {
            worker_name: format!("rig{w}"),
            // rig1 started 40 s ago: its 10 min and 1 h figures are partial.
            hashrate: if w == 1 {
                Hashrate {
                    h1m: row.hashrate_10m / 4.0,
                    h10m: row.hashrate_10m / 4.0,
                    h1h: row.hashrate_10m / 4.0,
                    h1m_s: 40,
                    h10m_s: 40,
                    h1h_s: 40,
                    h1m_partial: true,
                    h10m_partial: true,
                    h1h_partial: true,
                }
            } else {
                Hashrate {
                    h1m: row.hashrate_10m / 4.0 * 1.02,
                    h10m: row.hashrate_10m / 4.0,
                    h1h: row.hashrate_10m / 4.0 * 0.97,
                    h1m_s: 60,
                    h10m_s: 600,
                    h1h_s: 3600,
                    ..Default::default()
                }
            },
            last_share_at: Some(NOW - 3 - w as i64),
            accepted_1h: 1200 + 100 * w as u64,
            rejected_1h: w as u64,
            rejects_reported: true,
        })
        .collect();
    let recent_credits = (0..5)
        .map(|c| CreditRow {
            at: NOW - 10 * c,
            event_id: format!("ev-{c}"),
            worker_name: format!("rig{}", c % 2),
            work: format!("{}", 65_536 * (c + 1)),
            amount_msat: 655_360 * (c + 1),
        })
        .collect();
    MinerDetail {
        row: row.clone(),
        created_at: NOW - 86_400 * 12,
        payout_address: Some(ADDR_1.into()),
        payout_address_payable_at: Some(NOW + 3600 * 5),
        key_version: row.has_key.then_some(2),
        hashrate: Hashrate {
            h1m: row.hashrate_10m * 1.02,
            h10m: row.hashrate_10m,
            h1h: row.hashrate_10m * 0.97,
            ..Default::default()
        },
        workers,
        recent_credits,
        withdrawals: vec![withdrawals()[0].clone()],
    }
}

fn wd(
    id: i64,
    miner: &str,
    address: &str,
    amount_sat: i64,
    state: &str,
    age_s: i64,
) -> WithdrawalRow {
    WithdrawalRow {
        id,
        miner_id: miner.into(),
        address: address.into(),
        amount_sat,
        state: state.into(),
        created_at: NOW - age_s,
        updated_at: NOW - age_s / 2,
        batch_id: None,
        txid: None,
        note: None,
        decided_by: None,
    }
}

pub fn withdrawals() -> Vec<WithdrawalRow> {
    let mut rows = vec![
        wd(101, "demo-miner-1", ADDR_1, 100_000, "requested", 3_700),
        wd(102, "demo-miner-2", ADDR_2, 2_500_000, "requested", 1_200),
        wd(103, "club-member-7", ADDR_3, 54_321, "requested", 45),
        wd(98, "demo-miner-3", ADDR_1, 1_000_000, "approved", 7_300),
        wd(99, "bob-00011", ADDR_2, 250_000, "approved", 7_200),
        wd(
            90,
            "alice-rig-00000",
            ADDR_3,
            1_500_000,
            "needs_attention",
            90_000,
        ),
        wd(80, "demo-miner-1", ADDR_1, 777_777, "confirmed", 200_000),
        wd(85, "Zed-Farm-00004", ADDR_2, 30_000, "rejected", 150_000),
    ];
    rows[3].decided_by = Some("uid:1000".into());
    rows[4].decided_by = Some("http-admin".into());
    rows[5].batch_id = Some(7);
    rows[5].note = Some("sendmany timed out; reconcile found no wallet tx".into());
    rows[6].batch_id = Some(6);
    rows[6].txid = Some("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".into());
    rows[6].decided_by = Some("uid:1000".into());
    rows[7].note = Some("address reused by another pool account".into());
    rows[7].decided_by = Some("uid:1000".into());
    rows
}

pub fn batches() -> Vec<BatchRow> {
    vec![
        BatchRow {
            id: 8,
            mode: "cold".into(),
            state: "psbt_created".into(),
            withdrawal_ids: vec![98, 99],
            total_sat: 1_250_000,
            fee_sat: Some(1_410),
            txid: None,
            confirmations: None,
            psbt_id: Some(5),
            note: None,
            created_at: NOW - 600,
            updated_at: NOW - 600,
        },
        BatchRow {
            id: 7,
            mode: "hot".into(),
            state: "needs_attention".into(),
            withdrawal_ids: vec![90],
            total_sat: 1_500_000,
            fee_sat: None,
            txid: None,
            confirmations: None,
            psbt_id: None,
            note: Some("sendmany timed out".into()),
            created_at: NOW - 90_000,
            updated_at: NOW - 89_000,
        },
        BatchRow {
            id: 6,
            mode: "hot".into(),
            state: "confirmed".into(),
            withdrawal_ids: vec![80],
            total_sat: 777_777,
            fee_sat: Some(705),
            txid: Some("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".into()),
            confirmations: Some(12),
            psbt_id: None,
            note: None,
            created_at: NOW - 200_000,
            updated_at: NOW - 100_000,
        },
    ]
}

pub fn psbt_review() -> PsbtReview {
    PsbtReview {
        psbt_id: 5,
        batch_id: 8,
        state: "unsigned".into(),
        inputs: vec![
            PsbtInput {
                outpoint: "9f2c45b1a7e3d0c4f8b6a5e2d1c0b9a8f7e6d5c4b3a2918f7e6d5c4b3a291807:0"
                    .into(),
                amount_sat: Some(1_000_000),
                verified: true,
                signed: false,
            },
            PsbtInput {
                outpoint: "3b1f8e2d7c6a5b4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a09:1"
                    .into(),
                amount_sat: Some(500_000),
                verified: false,
                signed: false,
            },
        ],
        outputs: vec![
            PsbtOutput {
                index: 0,
                address: ADDR_1.into(),
                amount_sat: 1_000_000,
                role: "withdrawal".into(),
                withdrawal_ids: vec![98],
            },
            PsbtOutput {
                index: 1,
                address: ADDR_2.into(),
                amount_sat: 250_000,
                role: "withdrawal".into(),
                withdrawal_ids: vec![99],
            },
            PsbtOutput {
                index: 2,
                address: ADDR_3.into(),
                amount_sat: 248_590,
                role: "change".into(),
                withdrawal_ids: vec![],
            },
        ],
        total_in_sat: Some(1_500_000),
        total_out_sat: 1_498_590,
        paid_to_miners_sat: 1_250_000,
        change_sat: 248_590,
        fee_sat: Some(1_410),
        vsize: Some(282),
        fee_rate_milli_sat_vb: Some(5_000),
        signatures: SignatureStatus {
            inputs_total: 2,
            inputs_signed: 0,
            complete: false,
        },
        warnings: vec![
            "input 1 amount is declared (witness UTXO) but not proven by its previous transaction"
                .into(),
            "fee rate 5.000 sat/vB is above the current estimate (3 sat/vB)".into(),
        ],
        differences: vec![],
        psbt: "cHNidP8BAHECAAAAAQ==".repeat(20),
        txid: None,
    }
}

/// The daemon's refusal of a tampered signed PSBT.
pub fn tampered_import_error() -> ErrorBody {
    ErrorBody {
        code: "psbt_mismatch".into(),
        message: "the signed PSBT does not pay the reviewed outputs".into(),
        details: Some(serde_json::json!({
            "differences": [
                format!("output 1 pays {ADDR_ATTACKER}, reviewed {ADDR_2}"),
                "output 2 (change) amount 48590 sat, reviewed 248590 sat",
                "fee 201410 sat exceeds the limit (max_fee_rate_sat_vb 50)",
            ]
        })),
    }
}

pub fn faucet() -> FaucetStatus {
    let row = |id: i64, address: &str, state: &str, age: i64, txid: Option<&str>| FaucetRow {
        id,
        address: address.into(),
        amount_sat: 10_000,
        state: state.into(),
        created_at: NOW - age,
        txid: txid.map(str::to_string),
    };
    FaucetStatus {
        enabled: true,
        disabled_reason: None,
        amount_sat: 10_000,
        cooldown_s: 3600,
        daily_budget_sat: 10_000_000,
        spent_today_sat: 2_340_000,
        queued: vec![
            row(412, ADDR_1, "queued", 12, None),
            row(413, ADDR_3, "queued", 4, None),
        ],
        recent: vec![
            row(
                411,
                ADDR_2,
                "sent",
                400,
                Some("b6f6991d03df0e2e04dafffcd6bc418aac66049e2cd74b80f14ac86db1e3f0da"),
            ),
            row(
                410,
                ADDR_1,
                "sent",
                2_000,
                Some("0e3e2357e806b6cdb1f70b54c3a3a17b6714ee1f0e68bebb44a74b1efd512098"),
            ),
            row(
                409,
                ADDR_3,
                "sent",
                5_000,
                Some("9b0fc92260312ce44e74ef369f5c66bbb85848f2eddd5a7a1cde251e54ccfdd5"),
            ),
        ],
    }
}

/// Blocks found by the pool's wallet, newest first: one immature (PPLNS,
/// reported by its finder), one matured and credited, one orphaned.
pub fn blocks() -> Vec<BlockRow> {
    let row = |height: i64, hash: &str, state: BlockState, confirmations: i64, age: i64| BlockRow {
        hash: hash.into(),
        height,
        coinbase_txid: format!("{:0>64}", height),
        state,
        confirmations,
        confirmations_to_maturity: if state == BlockState::Immature {
            100 - confirmations
        } else {
            0
        },
        reward_msat: 312_512_345_000,
        reward_btc: "3.12512345".into(),
        pool_fee_msat: 3_125_123_450,
        scheme: PayoutScheme::Pplns,
        found_at: NOW - age,
        finder_miner_id: None,
        credited_at: None,
    };
    let mut immature = row(
        842_117,
        "00000000000000000001a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7",
        BlockState::Immature,
        37,
        37 * 600,
    );
    immature.finder_miner_id = Some("alice".into());
    let mut matured = row(
        841_950,
        "0000000000000000000298f1e2d3c4b5a69788796a5b4c3d2e1f00112233aabb",
        BlockState::Matured,
        204,
        204 * 600,
    );
    matured.credited_at = Some(NOW - 104 * 600);
    let orphaned = row(
        841_949,
        "00000000000000000003ffeeddccbbaa99887766554433221100ffeeddccbbaa",
        BlockState::Orphaned,
        0,
        205 * 600,
    );
    vec![immature, matured, orphaned]
}

/// The statement of `block`: three miners, uneven work, exact parts.
pub fn block_statement(block: &BlockRow) -> BlockStatement {
    let distributed = block.reward_msat - block.pool_fee_msat;
    let works = [("alice", 500_000u64), ("bob", 300_000), ("carol", 200_000)];
    let total: u64 = works.iter().map(|(_, w)| w).sum();
    let mut parts: Vec<StatementPart> = works
        .iter()
        .map(|(m, w)| StatementPart {
            miner_id: (*m).into(),
            work: *w,
            amount_msat: (i128::from(distributed) * i128::from(*w) / i128::from(total)) as i64,
        })
        .collect();
    let rest = distributed - parts.iter().map(|p| p.amount_msat).sum::<i64>();
    parts[0].amount_msat += rest;
    BlockStatement {
        block: block.clone(),
        scheme: block.scheme,
        window_work: 1_000_000,
        total_work: total,
        first_share_id: Some(90_001),
        last_share_id: Some(91_532),
        reward_msat: block.reward_msat,
        pool_fee_msat: block.pool_fee_msat,
        pool_fee_bps: 100,
        distributed_msat: distributed,
        parts,
        shares_sha256: "5f0c6e2b9a8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29180716f5e4d3c2b1a098".into(),
        shares: Vec::new(),
    }
}

/// `n` audit entries, newest (highest id) first.
pub fn audit(n: i64) -> Vec<AuditEntry> {
    let actions = [
        ("approve", "withdrawal:", "amount 100000 sat"),
        ("reject", "withdrawal:", "reason: address reused"),
        ("issue_key", "miner:demo-miner-", "key version 2"),
        ("deactivate", "miner:bob-", ""),
        ("register", "miner:club-member-", "tier TIER_1_CPU, hmac"),
        ("send_batch", "batch:", "cold, 2 withdrawals"),
    ];
    let actors = ["uid:1000", "uid:1000", "http-admin@127.0.0.1", "system"];
    (1..=n)
        .rev()
        .map(|id| {
            let (action, subject, detail) = actions[id as usize % actions.len()];
            AuditEntry {
                id,
                at: NOW - (n - id) * 97,
                actor: actors[id as usize % actors.len()].into(),
                action: action.into(),
                subject: format!("{subject}{}", id % 9 + 1),
                detail: detail.into(),
            }
        })
        .collect()
}

/// A daemon answering from fixed data. Requests it saw are kept in `log`.
#[derive(Debug, Clone)]
pub struct FakeDaemon {
    pub snapshot: Snapshot,
    pub miners: Vec<MinerRow>,
    pub withdrawals: Vec<WithdrawalRow>,
    pub batches: Vec<BatchRow>,
    pub review: PsbtReview,
    pub faucet: FaucetStatus,
    pub audit: Vec<AuditEntry>,
    pub blocks: Vec<BlockRow>,
    /// Answer withdrawal/batch/PSBT/faucet requests with `unknown_method`,
    /// as today's daemon does.
    pub old_daemon: bool,
    pub log: Vec<Request>,
}

impl FakeDaemon {
    pub fn new(miner_count: usize) -> FakeDaemon {
        FakeDaemon {
            snapshot: snapshot(),
            miners: miners(miner_count),
            withdrawals: withdrawals(),
            batches: batches(),
            review: psbt_review(),
            faucet: faucet(),
            audit: audit(250),
            blocks: blocks(),
            old_daemon: false,
            log: Vec::new(),
        }
    }

    pub fn answer(&mut self, request: &Request) -> Outcome {
        self.log.push(request.clone());
        let unknown = || {
            Outcome::Err(ErrorBody::new(
                "unknown_method",
                "this pooldeskd does not handle that request yet",
            ))
        };
        let ok = |r: Response| Outcome::Ok(r);
        match request {
            Request::Snapshot => ok(Response::Snapshot(Box::new(self.snapshot.clone()))),
            Request::Subscribe => ok(Response::Subscribed),
            Request::ListMiners(q) => {
                let mut rows: Vec<MinerRow> = self.miners.clone();
                if let Some(f) = q.filter.as_deref().filter(|f| !f.is_empty()) {
                    let f = f.to_lowercase();
                    rows.retain(|r| r.miner_id.to_lowercase().contains(&f));
                }
                if q.descending {
                    rows.sort_by(|a, b| compare(b, a, q.sort));
                } else {
                    rows.sort_by(|a, b| compare(a, b, q.sort));
                }
                let total = rows.len() as u64;
                let limit = q.limit.unwrap_or(100).clamp(1, 1000) as usize;
                let rows = rows
                    .into_iter()
                    .skip(q.offset as usize)
                    .take(limit)
                    .collect();
                ok(Response::Miners(MinerPage {
                    total,
                    offset: q.offset,
                    rows,
                }))
            }
            Request::MinerDetail { miner_id } => {
                match self.miners.iter().find(|m| &m.miner_id == miner_id) {
                    Some(row) => ok(Response::MinerDetail(Box::new(miner_detail(row)))),
                    None => Outcome::Err(ErrorBody::new("not_found", "no such miner")),
                }
            }
            Request::SetMinerActive { miner_id, active } => ok(Response::Done(Done {
                message: format!(
                    "miner {miner_id} {}",
                    if *active {
                        "reactivated"
                    } else {
                        "deactivated"
                    }
                ),
            })),
            Request::IssueKey { miner_id } => ok(Response::ApiKey(IssuedKey {
                miner_id: miner_id.clone(),
                api_key: "pk_3f9a1c0e7b5d4a2f8e6c1b0a9d8e7f6a5b4c3d2e1f0a9b8c".into(),
                key_version: 3,
            })),
            Request::AuditPage { before_id, limit } => {
                let limit = limit.unwrap_or(100).clamp(1, 500) as usize;
                let entries: Vec<AuditEntry> = self
                    .audit
                    .iter()
                    .filter(|e| before_id.is_none_or(|b| e.id < b))
                    .take(limit)
                    .cloned()
                    .collect();
                let next_before_id = if entries.len() == limit {
                    entries.last().map(|e| e.id)
                } else {
                    None
                };
                ok(Response::Audit(AuditPage {
                    entries,
                    next_before_id,
                }))
            }
            _ if self.old_daemon => unknown(),
            Request::ListWithdrawals(q) => {
                let rows: Vec<WithdrawalRow> = self
                    .withdrawals
                    .iter()
                    .filter(|w| q.state.as_deref().is_none_or(|s| s == w.state))
                    .cloned()
                    .collect();
                ok(Response::Withdrawals(WithdrawalPage {
                    total: rows.len() as u64,
                    offset: 0,
                    rows,
                }))
            }
            Request::ListBatches { .. } => ok(Response::Batches(self.batches.clone())),
            Request::ApproveWithdrawals { ids } => {
                let mut results = Vec::new();
                for id in ids {
                    let row = self
                        .withdrawals
                        .iter_mut()
                        .find(|w| w.id == *id && w.state == "requested");
                    results.push(match row {
                        Some(row) => {
                            row.state = "approved".into();
                            row.decided_by = Some("uid:1000".into());
                            ApprovalResult {
                                id: *id,
                                ok: true,
                                state: Some("approved".into()),
                                error: None,
                            }
                        }
                        None => ApprovalResult {
                            id: *id,
                            ok: false,
                            state: None,
                            error: Some("not requested".into()),
                        },
                    });
                }
                ok(Response::Approvals(results))
            }
            Request::RejectWithdrawal { id, reason } => {
                if let Some(row) = self.withdrawals.iter_mut().find(|w| w.id == *id) {
                    row.state = "rejected".into();
                    row.note = Some(reason.clone());
                    row.decided_by = Some("uid:1000".into());
                }
                ok(Response::Done(Done {
                    message: format!("withdrawal #{id} rejected"),
                }))
            }
            Request::PsbtReview { .. } => ok(Response::PsbtReview(Box::new(self.review.clone()))),
            Request::ImportPsbt { .. } => Outcome::Err(tampered_import_error()),
            Request::FaucetStatus => ok(Response::Faucet(Box::new(self.faucet.clone()))),
            Request::ListBlocks { .. } => ok(Response::Blocks(self.blocks.clone())),
            Request::BlockStatement { hash } => {
                match self.blocks.iter().find(|b| b.hash == *hash) {
                    Some(block) => ok(Response::BlockStatement(Box::new(block_statement(block)))),
                    None => Outcome::Err(ErrorBody::new("not_found", "no such block")),
                }
            }
            _ => unknown(),
        }
    }
}

/// Answers everything `app` has queued, until it queues nothing more.
/// Bounded: a loop that keeps asking is a bug, not a hang.
pub fn pump(app: &mut App, daemon: &mut FakeDaemon) {
    for _ in 0..1000 {
        let outbox = app.take_outbox();
        if outbox.is_empty() {
            return;
        }
        for frame in outbox {
            let outcome = daemon.answer(&frame.body);
            app.handle_client(ClientEvent::Response(ResponseFrame {
                id: frame.id,
                outcome,
            }));
        }
    }
    panic!("the app kept sending requests");
}

/// An app connected to `daemon`, everything loaded, clock at [`NOW`].
pub fn connected_app(daemon: &mut FakeDaemon, width: u16) -> App {
    let mut app = App::new("/run/pooldeskd/control.sock");
    app.shared.width = width;
    app.tick(NOW, 1_000);
    app.handle_client(ClientEvent::Connected(welcome()));
    pump(&mut app, daemon);
    // The "connected" flash is not part of any screen under test.
    app.flash = None;
    app
}
