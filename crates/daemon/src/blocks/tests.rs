//! The life of a block against a real ledger file, with the wallet's
//! answers given by hand: found → immature (pending) → matured (credited
//! once) → orphaned (reversed) → back (credited once more), and verify's
//! block checks.

use pooldesk_proto::model::{BlockState, PayoutScheme};

use super::db;
use super::scheme::Scheme;
use crate::ledger;
use crate::metrics::StoreMetrics;
use crate::store::{Store, StoreOptions};
use crate::wallet::Coinbase;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("ledger.sqlite"),
        StoreOptions::default(),
        StoreMetrics::new(),
    )
    .unwrap();
    (dir, store)
}

fn pplns(min_window: u64, fee_bps: u32) -> Scheme {
    Scheme {
        kind: PayoutScheme::Pplns,
        pplns_factor: 1,
        pplns_min_window_work: min_window,
        pool_fee_bps: fee_bps,
    }
}

/// Pool reports without credit (PPLNS), oldest first, each in the PPLNS
/// log as ingest writes it: (miner, shares, difficulty).
fn reports(store: &Store, rows: &[(&str, i64, i64)]) {
    let rows: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|(m, s, d)| (m.to_string(), *s, *d))
        .collect();
    store
        .write_blocking(move |ctx| {
            for (i, (miner, shares, difficulty)) in rows.iter().enumerate() {
                ctx.conn.execute(
                    "INSERT INTO share_reports (event_id, body_sha256, miner_id, worker_name, shares, difficulty, credited_msat, received_at, rollup_group)
                     VALUES (?1, x'00', ?2, 'w', ?3, ?4, 0, ?5, NULL)",
                    rusqlite::params![format!("e{i}-{miner}"), miner, shares, difficulty, ctx.now_s],
                )?;
                let source = format!("report:{}", ctx.conn.last_insert_rowid());
                let work = (shares * difficulty) as u64;
                super::window::record(ctx.conn, miner, work, &source, ctx.now_s)?;
            }
            Ok::<_, rusqlite::Error>(())
        })
        .unwrap();
}

fn coinbase(confirmations: i64, orphan: bool) -> Coinbase {
    Coinbase {
        txid: "cb01".into(),
        block_hash: Some("00aa".into()),
        height: Some(101),
        confirmations,
        orphan,
        amount_sat: 50 * 100_000_000,
    }
}

fn apply(store: &Store, scheme: &Scheme, seen: Coinbase) -> Vec<BlockState> {
    let scheme = scheme.clone();
    store
        .write_blocking(move |ctx| db::apply(ctx, &scheme, 0.0, &[seen]))
        .unwrap()
        .changed
        .into_iter()
        .map(|b| b.state)
        .collect()
}

fn balance(store: &Store, miner: &str) -> i64 {
    let account = ledger::miner_account(miner);
    store
        .read_blocking(move |c| ledger::balance(c, &account))
        .unwrap()
}

fn violations(store: &Store) -> Vec<String> {
    store
        .read_blocking(|c| {
            let mut v = ledger::verify(c)?;
            v.extend(db::verify(c)?);
            Ok::<_, rusqlite::Error>(v)
        })
        .unwrap()
        .into_iter()
        .map(|v| v.0)
        .collect()
}

#[test]
fn a_block_pays_once_at_maturity_and_orphans_take_it_back() {
    let (_dir, store) = open();
    // Window 100: bob 30 (newest), alice 50, carol 20 of her 40.
    reports(
        &store,
        &[
            ("x", 9, 1),
            ("carol", 4, 10),
            ("alice", 5, 10),
            ("bob", 3, 10),
        ],
    );
    let scheme = pplns(100, 100); // 1 % fee
    assert_eq!(
        apply(&store, &scheme, coinbase(1, false)),
        vec![BlockState::Immature]
    );
    let statement = store
        .read_blocking(|c| db::statement(c, "00aa", true))
        .unwrap()
        .unwrap();
    let reward = 5_000_000_000_000i64;
    let fee = reward / 100;
    assert_eq!(statement.pool_fee_msat, fee);
    assert_eq!(statement.total_work, 100);
    let parts: Vec<(String, u64, i64)> = statement
        .parts
        .iter()
        .map(|p| (p.miner_id.clone(), p.work, p.amount_msat))
        .collect();
    let d = reward - fee; // 4_950_000_000_000
    assert_eq!(
        parts,
        vec![
            ("alice".into(), 50, d / 2),
            ("bob".into(), 30, d * 3 / 10),
            ("carol".into(), 20, d / 5),
        ]
    );
    // Pending, not credited.
    assert_eq!(
        store
            .read_blocking(|c| db::pending_msat(c, Some("alice")))
            .unwrap(),
        d / 2
    );
    assert_eq!(balance(&store, "alice"), 0);
    assert!(violations(&store).is_empty(), "{:?}", violations(&store));

    // Same sighting again: nothing changes.
    assert!(apply(&store, &scheme, coinbase(1, false)).is_empty());
    // Matured: credited exactly once, even when seen again.
    assert_eq!(
        apply(&store, &scheme, coinbase(100, false)),
        vec![BlockState::Matured]
    );
    apply(&store, &scheme, coinbase(101, false));
    assert_eq!(balance(&store, "alice"), d / 2);
    assert_eq!(balance(&store, "carol"), d / 5);
    assert_eq!(
        store.read_blocking(|c| db::pending_msat(c, None)).unwrap(),
        0
    );
    assert!(violations(&store).is_empty(), "{:?}", violations(&store));

    // Orphaned after maturity: reversed by transfer.
    assert_eq!(
        apply(&store, &scheme, coinbase(0, true)),
        vec![BlockState::Orphaned]
    );
    assert_eq!(balance(&store, "alice"), 0);
    assert!(violations(&store).is_empty(), "{:?}", violations(&store));
    // Back on the chain and matured: credited once more, not twice.
    apply(&store, &scheme, coinbase(100, false));
    apply(&store, &scheme, coinbase(102, false));
    assert_eq!(balance(&store, "alice"), d / 2);
    assert!(violations(&store).is_empty(), "{:?}", violations(&store));
}

#[test]
fn an_orphan_before_maturity_never_pays() {
    let (_dir, store) = open();
    reports(&store, &[("alice", 1, 10)]);
    let scheme = pplns(10, 0);
    apply(&store, &scheme, coinbase(5, false));
    assert_eq!(
        apply(&store, &scheme, coinbase(0, true)),
        vec![BlockState::Orphaned]
    );
    assert_eq!(
        store.read_blocking(|c| db::pending_msat(c, None)).unwrap(),
        0
    );
    assert_eq!(balance(&store, "alice"), 0);
    assert!(violations(&store).is_empty(), "{:?}", violations(&store));
}

#[test]
fn verify_names_a_block_credited_before_maturity() {
    let (_dir, store) = open();
    reports(&store, &[("alice", 1, 10)]);
    apply(&store, &pplns(10, 0), coinbase(5, false));
    store
        .write_blocking(|ctx| {
            ledger::post(
                ctx,
                &ledger::TransferRequest {
                    idempotency_key: "sneaky".into(),
                    debit: ledger::POOL_BLOCKS.into(),
                    credit: ledger::miner_account("alice"),
                    amount_msat: 1,
                    kind: ledger::TransferKind::PoolBlockCredit,
                    reference: Some("00aa".into()),
                },
            )
        })
        .unwrap();
    let found = violations(&store);
    assert!(
        found.iter().any(|v| v.contains("block 00aa (immature)")),
        "{found:?}"
    );
}

/// The window a block pays, as (miner, work) oldest first.
fn window_of(store: &Store, hash: &str) -> Vec<(String, u64)> {
    let hash = hash.to_string();
    store
        .read_blocking(move |c| db::window_shares(c, &hash, None))
        .unwrap()
        .into_iter()
        .map(|s| (s.miner_id, s.work))
        .collect()
}

#[test]
fn the_window_ends_at_the_solving_share_and_never_counts_pps_credited_work() {
    let (_dir, store) = open();
    reports(&store, &[("alice", 4, 10), ("bob", 2, 10)]);
    // A report credited per share (PPS before the switch) is not in the
    // log: a block must not pay it again.
    store
        .write_blocking(|ctx| {
            ctx.conn.execute(
                "INSERT INTO share_reports (event_id, body_sha256, miner_id, worker_name, shares, difficulty, credited_msat, received_at, rollup_group)
                 VALUES ('pps-1', x'00', 'dave', 'w', 5, 10, 50000, ?1, 1)",
                [ctx.now_s],
            )?;
            Ok::<_, rusqlite::Error>(())
        })
        .unwrap();
    // The pool reports bob's share as the solve (in the log row of his
    // report); carol's work arrives before the wallet sees the coinbase.
    store
        .write_blocking(|ctx| {
            let bob: i64 = ctx.conn.query_row(
                "SELECT id FROM pplns_work WHERE miner_id = 'bob'",
                [],
                |r| r.get(0),
            )?;
            ctx.conn.execute(
                "INSERT INTO block_solves (origin_id, seq, height, hash, miner_id, worker_name, share_ms, received_at, window_id)
                 VALUES (1, 9, 101, '00AA', 'bob', 'w', 0, ?1, ?2)",
                rusqlite::params![ctx.now_s, bob],
            )?;
            Ok::<_, rusqlite::Error>(())
        })
        .unwrap();
    reports(&store, &[("carol", 3, 10)]);
    apply(&store, &pplns(1000, 0), coinbase(1, false));
    assert_eq!(
        window_of(&store, "00aa"),
        vec![("alice".to_string(), 40), ("bob".to_string(), 20)]
    );
    // Without a solve report the window ends at what was recorded.
    let mut other = coinbase(1, false);
    other.txid = "cb02".into();
    other.block_hash = Some("00bb".into());
    apply(&store, &pplns(1000, 0), other);
    assert_eq!(
        window_of(&store, "00bb"),
        vec![
            ("alice".to_string(), 40),
            ("bob".to_string(), 20),
            ("carol".to_string(), 30)
        ]
    );
}

#[test]
fn a_batch_logs_one_row_per_miner_in_order_of_first_share() {
    let (_dir, store) = open();
    store
        .write_blocking(|ctx| {
            let mut batch = super::window::BatchWork::default();
            assert_eq!(batch.add("bob", 3, 7), 0);
            assert_eq!(batch.add("alice", 5, 8), 1);
            assert_eq!(batch.add("bob", 4, 9), 0);
            assert_eq!(batch.add("carol", 0, 10), 2);
            let ids = batch.record(ctx.conn, "pool-a", ctx.now_s)?;
            assert!(ids[0].unwrap() < ids[1].unwrap(), "{ids:?}");
            assert_eq!(ids[2], None, "no work, no row");
            Ok::<_, rusqlite::Error>(())
        })
        .unwrap();
    let rows: Vec<(String, i64, String)> = store
        .read_blocking(|c| {
            c.prepare("SELECT miner_id, work, source FROM pplns_work ORDER BY id")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .unwrap();
    assert_eq!(
        rows,
        vec![
            ("bob".to_string(), 7, "batch:pool-a:7-9".to_string()),
            ("alice".to_string(), 5, "batch:pool-a:8-8".to_string()),
        ]
    );
}
