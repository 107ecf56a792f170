use super::*;
use crate::metrics::StoreMetrics;
use crate::store::{Store, StoreOptions, WriteError};

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

fn req(key: &str, debit: &str, credit: &str, amount_msat: i64) -> TransferRequest {
    TransferRequest {
        idempotency_key: key.into(),
        debit: debit.into(),
        credit: credit.into(),
        amount_msat,
        kind: TransferKind::Adjustment,
        reference: None,
    }
}

fn post_blocking(store: &Store, r: TransferRequest) -> Result<Posted, WriteError<LedgerError>> {
    store.write_blocking(move |ctx| post(ctx, &r))
}

/// Everything a refusal must leave alone: every account with its balance
/// and every transfer, as rows.
type LedgerState = (Vec<(String, i64)>, Vec<(String, i64, i64, i64, String)>);

fn state(store: &Store) -> LedgerState {
    store
        .read_blocking(|c| {
            let accounts = c
                .prepare("SELECT name, balance_msat FROM accounts ORDER BY name")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let transfers = c
                .prepare(
                    "SELECT idempotency_key, debit_account_id, credit_account_id, amount_msat, kind
                     FROM transfers ORDER BY id",
                )?
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, rusqlite::Error>((accounts, transfers))
        })
        .unwrap()
}

fn assert_clean(store: &Store) {
    let violations = store.read_blocking(verify).unwrap();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn same_key_same_content_answers_the_original_and_moves_nothing() {
    let (_dir, store) = open();
    let first = post_blocking(&store, req("k1", POOL_REWARDS, "miner:a", 5_000)).unwrap();
    let again = post_blocking(&store, req("k1", POOL_REWARDS, "miner:a", 5_000)).unwrap();
    assert!(matches!(first, Posted::Created(_)));
    assert!(matches!(again, Posted::AlreadyExists(_)));
    assert_eq!(first.transfer().id, again.transfer().id);
    assert_eq!(
        store.read_blocking(|c| balance(c, "miner:a")).unwrap(),
        5_000
    );
    assert_clean(&store);
}

#[test]
fn same_key_different_content_is_a_typed_conflict() {
    let (_dir, store) = open();
    post_blocking(&store, req("k1", POOL_REWARDS, "miner:a", 5_000)).unwrap();
    let before = state(&store);
    let mut kind = req("k1", POOL_REWARDS, "miner:a", 5_000);
    kind.kind = TransferKind::ShareCredit;
    let mut reference = req("k1", POOL_REWARDS, "miner:a", 5_000);
    reference.reference = Some("another".into());
    let cases = [
        (req("k1", POOL_REWARDS, "miner:a", 6_000), "amount"),
        (req("k1", POOL_REWARDS, "miner:b", 5_000), "credit"),
        (req("k1", POOL_ADJUSTMENTS, "miner:a", 5_000), "debit"),
        (kind, "kind"),
        (reference, "reference"),
    ];
    for (r, what) in cases {
        let outcome = post_blocking(&store, r);
        let exact = matches!(
            (what, &outcome),
            (
                "amount",
                Err(WriteError::Rejected(LedgerError::ExistsWithDifferentAmount))
            ) | (
                "credit",
                Err(WriteError::Rejected(
                    LedgerError::ExistsWithDifferentCreditAccount
                ))
            ) | (
                "debit",
                Err(WriteError::Rejected(
                    LedgerError::ExistsWithDifferentDebitAccount
                ))
            ) | (
                "kind",
                Err(WriteError::Rejected(LedgerError::ExistsWithDifferentKind))
            ) | (
                "reference",
                Err(WriteError::Rejected(
                    LedgerError::ExistsWithDifferentReference
                ))
            )
        );
        assert!(exact, "{what}: expected that conflict, got {outcome:?}");
        // The refusal changed nothing: no account, balance or transfer.
        assert_eq!(
            state(&store),
            before,
            "{what}: a refused post changed the ledger"
        );
    }
    assert_eq!(
        store.read_blocking(|c| balance(c, "miner:a")).unwrap(),
        5_000
    );
    assert_clean(&store);
}

#[test]
fn miner_balance_never_goes_below_zero() {
    let (_dir, store) = open();
    post_blocking(&store, req("c", POOL_REWARDS, "miner:a", 1_000)).unwrap();
    let before = state(&store);
    match post_blocking(&store, req("w", "miner:a", WITHDRAWALS_HELD, 1_001)) {
        Err(WriteError::Rejected(LedgerError::InsufficientFunds {
            account,
            balance_msat,
            amount_msat,
        })) => {
            assert_eq!(
                (account.as_str(), balance_msat, amount_msat),
                ("miner:a", 1_000, 1_001)
            )
        }
        other => panic!("expected insufficient funds, got {other:?}"),
    }
    // Not even withdrawals:held was created by the refused post.
    assert_eq!(state(&store), before, "a refused debit changed the ledger");
    post_blocking(&store, req("w2", "miner:a", WITHDRAWALS_HELD, 1_000)).unwrap();
    assert_eq!(store.read_blocking(|c| balance(c, "miner:a")).unwrap(), 0);
    assert_clean(&store);
}

#[test]
fn refused_transfer_to_a_new_account_leaves_no_account_behind() {
    let (_dir, store) = open();
    // miner:ghost is created inside the job, then the debit is refused:
    // the savepoint must remove the account and the cache must forget it.
    let before = state(&store);
    let refused = post_blocking(&store, req("x", "miner:ghost", WITHDRAWALS_HELD, 1));
    assert!(
        matches!(
            &refused,
            Err(WriteError::Rejected(LedgerError::InsufficientFunds { account, balance_msat: 0, amount_msat: 1 }))
                if account == "miner:ghost"
        ),
        "{refused:?}"
    );
    assert_eq!(state(&store), before, "the refused post left rows behind");
    let count: i64 = store
        .read_blocking(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM accounts WHERE name = 'miner:ghost'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert_eq!(count, 0);
    post_blocking(&store, req("y", POOL_REWARDS, "miner:ghost", 7)).unwrap();
    assert_eq!(
        store.read_blocking(|c| balance(c, "miner:ghost")).unwrap(),
        7
    );
    assert_clean(&store);
}

#[test]
fn bad_requests_are_refused() {
    let (_dir, store) = open();
    post_blocking(&store, req("seed", POOL_REWARDS, "miner:a", 10)).unwrap();
    let before = state(&store);
    let unknown = |name: &str| LedgerError::UnknownAccount(name.into());
    for (r, expect) in [
        (
            req("a", POOL_REWARDS, "miner:a", 0),
            LedgerError::AmountOutOfRange,
        ),
        (
            req("b", POOL_REWARDS, "miner:a", -5),
            LedgerError::AmountOutOfRange,
        ),
        (
            req("c", POOL_REWARDS, "miner:a", MAX_TRANSFER_MSAT + 1),
            LedgerError::AmountOutOfRange,
        ),
        (req("d", "miner:a", "miner:a", 5), LedgerError::SameAccount),
        (
            req("e", "casino:house", "miner:a", 5),
            unknown("casino:house"),
        ),
        (
            req("e2", POOL_REWARDS, "casino:house", 5),
            unknown("casino:house"),
        ),
        (req("", POOL_REWARDS, "miner:a", 5), LedgerError::BadKey),
        (
            req(&"k".repeat(201), POOL_REWARDS, "miner:a", 5),
            LedgerError::BadKey,
        ),
    ] {
        let outcome = post_blocking(&store, r);
        // LedgerError is not PartialEq (it carries rusqlite::Error): the
        // variant and its text together pin the exact refusal.
        match &outcome {
            Err(WriteError::Rejected(e))
                if std::mem::discriminant(e) == std::mem::discriminant(&expect)
                    && e.to_string() == expect.to_string() => {}
            other => panic!("expected {expect:?}, got {other:?}"),
        }
        assert_eq!(state(&store), before, "{expect:?}: the ledger changed");
    }
    assert_clean(&store);
}

#[test]
fn accrued_credits_roll_up_into_one_transfer_per_account() {
    let (_dir, store) = open();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut handles = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                store
                    .write_fast(move |ctx| {
                        let miner = if i % 2 == 0 {
                            "miner:even"
                        } else {
                            "miner:odd"
                        };
                        accrue(ctx, POOL_REWARDS, miner, TransferKind::ShareCredit, 1_000)
                    })
                    .await
            }));
        }
        for h in handles {
            let ((account, _group), info) = h.await.unwrap().unwrap();
            assert!(info.balances.get(&account).copied().unwrap_or(0) >= 1_000);
        }
    });
    assert_eq!(
        store.read_blocking(|c| balance(c, "miner:even")).unwrap(),
        100_000
    );
    assert_eq!(
        store.read_blocking(|c| balance(c, "miner:odd")).unwrap(),
        100_000
    );
    let (transfers, items): (i64, i64) = store
        .read_blocking(|c| {
            c.query_row(
                "SELECT COUNT(*), SUM(item_count) FROM transfers WHERE kind = 'share_credit'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .unwrap();
    assert_eq!(items, 200);
    assert!(
        transfers < 200,
        "credits were rolled up ({transfers} transfers)"
    );
    assert_clean(&store);
}

/// Accrues like the ingest jobs do: every check before the first write.
fn accrue_job(ctx: &mut WriteCtx<'_>, credit: &str, amount_msat: i64) -> Result<(), LedgerError> {
    check_accrue(ctx, POOL_REWARDS, credit, amount_msat)?;
    accrue(
        ctx,
        POOL_REWARDS,
        credit,
        TransferKind::ShareCredit,
        amount_msat,
    )?;
    Ok(())
}

/// Runs `jobs` (credit account, amount) as one group commit: a first job
/// holds the writer until every job is queued behind it.
fn one_group(store: &Store, jobs: &[(String, i64)]) -> Vec<Result<(), WriteError<LedgerError>>> {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let gate = store.queue_fast_blocking(move |_ctx| {
        wait.recv().ok();
        Ok::<_, LedgerError>(())
    });
    let replies: Vec<_> = jobs
        .iter()
        .cloned()
        .map(|(account, amount)| {
            store.queue_fast_blocking(move |ctx| accrue_job(ctx, &account, amount))
        })
        .collect();
    release.send(()).unwrap();
    gate.blocking_recv().unwrap().unwrap();
    replies
        .into_iter()
        .map(|rx| rx.blocking_recv().expect("answered").map(|_| ()))
        .collect()
}

#[test]
fn an_overflowing_credit_is_refused_alone_and_its_group_commits() {
    let (_dir, store) = open();
    // Near the bound already.
    post_blocking(
        &store,
        req(
            "big",
            POOL_ADJUSTMENTS,
            "miner:whale",
            MAX_BALANCE_MSAT - 10,
        ),
    )
    .unwrap();
    let results = one_group(
        &store,
        &[
            ("miner:a".into(), 1_000),
            ("miner:whale".into(), 11), // would pass the bound
            ("miner:b".into(), 2_000),
            ("miner:whale".into(), 10),            // exactly to the bound
            ("miner:whale".into(), 1),             // now beyond it
            ("miner:c".into(), MAX_TRANSFER_MSAT), // fine on its own account
        ],
    );
    assert!(results[0].is_ok());
    assert!(matches!(
        results[1],
        Err(WriteError::Rejected(LedgerError::BalanceBound { .. }))
    ));
    assert!(results[2].is_ok());
    assert!(results[3].is_ok());
    assert!(matches!(
        results[4],
        Err(WriteError::Rejected(LedgerError::BalanceBound { .. }))
    ));
    // pool:rewards would pass -MAX with miner:c's credit on top of the
    // others: refused on the source's bound, alone.
    assert!(matches!(
        results[5],
        Err(WriteError::Rejected(LedgerError::BalanceBound { .. }))
    ));
    let balance_of = |name: &'static str| store.read_blocking(move |c| balance(c, name)).unwrap();
    assert_eq!(balance_of("miner:whale"), MAX_BALANCE_MSAT);
    assert_eq!(balance_of("miner:a"), 1_000);
    assert_eq!(balance_of("miner:b"), 2_000);
    assert_eq!(balance_of("miner:c"), 0);
    assert!(!store.is_faulted());
    assert_clean(&store);
}

#[test]
fn a_direct_transfer_beyond_the_bound_is_refused_and_changes_nothing() {
    let (_dir, store) = open();
    post_blocking(
        &store,
        req("a", POOL_ADJUSTMENTS, "miner:a", MAX_BALANCE_MSAT),
    )
    .unwrap();
    let refused = post_blocking(&store, req("b", POOL_REWARDS, "miner:a", 1));
    assert!(
        matches!(
            refused,
            Err(WriteError::Rejected(LedgerError::BalanceBound { .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(
        store.read_blocking(|c| balance(c, "miner:a")).unwrap(),
        MAX_BALANCE_MSAT
    );
    assert_eq!(
        store.read_blocking(|c| balance(c, POOL_REWARDS)).unwrap(),
        0
    );
    assert_clean(&store);
}

mod bounds {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Amounts that matter: tiny, around the bound, around i64::MAX, and
    /// out of range.
    fn amount() -> impl Strategy<Value = i64> {
        prop_oneof![
            1i64..1_000_000,
            (MAX_TRANSFER_MSAT - 1_000)..=MAX_TRANSFER_MSAT,
            (MAX_TRANSFER_MSAT / 2 - 1_000)..(MAX_TRANSFER_MSAT / 2 + 1_000),
            (i64::MAX - 1_000)..=i64::MAX,
            Just(0i64),
            (i64::MIN..0i64),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

        /// Many credits near the bounds in one group commit: no panic, no
        /// wrap, every refusal is that job's alone, and the ledger holds
        /// exactly the accepted ones.
        #[test]
        fn credits_near_the_bounds_in_one_group_never_wrap(
            start in prop::collection::vec((0u8..3, amount()), 0..3),
            group in prop::collection::vec((0u8..3, amount()), 1..24),
        ) {
            let (_dir, store) = open();
            let mut model: HashMap<String, i128> = HashMap::new();
            let within = |v: i128| v.abs() <= i128::from(MAX_BALANCE_MSAT);
            for (n, (miner, amount_msat)) in start.into_iter().enumerate() {
                let account = format!("miner:{miner}");
                if post_blocking(&store, req(&format!("s{n}"), POOL_ADJUSTMENTS, &account, amount_msat)).is_ok() {
                    *model.entry(account).or_default() += i128::from(amount_msat);
                    *model.entry(POOL_ADJUSTMENTS.into()).or_default() -= i128::from(amount_msat);
                }
            }
            let jobs: Vec<(String, i64)> = group.into_iter().map(|(m, a)| (format!("miner:{m}"), a)).collect();
            let results = one_group(&store, &jobs);
            for ((account, amount_msat), result) in jobs.iter().zip(&results) {
                let amount = i128::from(*amount_msat);
                let in_range = *amount_msat > 0 && *amount_msat <= MAX_TRANSFER_MSAT;
                let credit_after = model.get(account).copied().unwrap_or(0) + amount;
                let source_after = model.get(POOL_REWARDS).copied().unwrap_or(0) - amount;
                let expect_ok = in_range && within(credit_after) && within(source_after);
                match result {
                    Ok(()) => {
                        prop_assert!(expect_ok, "accepted {amount_msat} to {account}");
                        *model.entry(account.clone()).or_default() += amount;
                        *model.entry(POOL_REWARDS.into()).or_default() -= amount;
                    }
                    Err(WriteError::Rejected(LedgerError::AmountOutOfRange)) => prop_assert!(!in_range),
                    Err(WriteError::Rejected(LedgerError::BalanceBound { .. })) => prop_assert!(!expect_ok),
                    Err(other) => prop_assert!(false, "fault {other:?}"),
                }
            }
            prop_assert!(!store.is_faulted());
            for (account, expected) in &model {
                let name = account.clone();
                let actual = store.read_blocking(move |c| balance(c, &name)).unwrap();
                prop_assert_eq!(i128::from(actual), *expected, "{}", account);
            }
            let violations = store.read_blocking(verify).unwrap();
            prop_assert!(violations.is_empty(), "{:?}", violations);
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Credit {
            miner: u8,
            amount_msat: i64,
        },
        Hold {
            miner: u8,
            amount_msat: i64,
        },
        Release {
            miner: u8,
            amount_msat: i64,
        },
        /// Re-post an earlier request exactly.
        Retry {
            index: usize,
        },
        /// Re-post an earlier key with a different amount.
        Conflict {
            index: usize,
            delta: i64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4, 1i64..1_000_000)
                .prop_map(|(miner, amount_msat)| Op::Credit { miner, amount_msat }),
            (0u8..4, 1i64..1_500_000)
                .prop_map(|(miner, amount_msat)| Op::Hold { miner, amount_msat }),
            (0u8..4, 1i64..1_500_000)
                .prop_map(|(miner, amount_msat)| Op::Release { miner, amount_msat }),
            any::<usize>().prop_map(|index| Op::Retry { index }),
            (any::<usize>(), 1i64..1000).prop_map(|(index, delta)| Op::Conflict { index, delta }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

        #[test]
        fn invariants_hold_after_every_step_and_retries_never_move_money_twice(ops in prop::collection::vec(op(), 1..40)) {
            let (_dir, store) = open();
            let mut model: HashMap<String, i64> = HashMap::new();
            let mut posted: Vec<TransferRequest> = Vec::new();
            for (n, op) in ops.into_iter().enumerate() {
                let op_kind = match &op {
                    Op::Credit { .. } => "credit",
                    Op::Hold { .. } => "hold",
                    Op::Release { .. } => "release",
                    Op::Retry { .. } => "retry",
                    Op::Conflict { .. } => "conflict",
                };
                let request = match op {
                    Op::Credit { miner, amount_msat } => req(&format!("k{n}"), POOL_REWARDS, &format!("miner:{miner}"), amount_msat),
                    Op::Hold { miner, amount_msat } => req(&format!("k{n}"), &format!("miner:{miner}"), WITHDRAWALS_HELD, amount_msat),
                    Op::Release { miner, amount_msat } => req(&format!("k{n}"), WITHDRAWALS_HELD, &format!("miner:{miner}"), amount_msat),
                    Op::Retry { index } if !posted.is_empty() => posted[index % posted.len()].clone(),
                    Op::Conflict { index, delta } if !posted.is_empty() => {
                        let mut r = posted[index % posted.len()].clone();
                        r.amount_msat += delta;
                        r
                    }
                    _ => continue,
                };
                let outcome = post_blocking(&store, request.clone());
                match outcome {
                    Ok(Posted::Created(_)) => {
                        *model.entry(request.debit.clone()).or_default() -= request.amount_msat;
                        *model.entry(request.credit.clone()).or_default() += request.amount_msat;
                        posted.push(request);
                    }
                    Ok(Posted::AlreadyExists(t)) => {
                        prop_assert!(posted.iter().any(|p| p.idempotency_key == t.idempotency_key));
                    }
                    // Only the refusals this sequence can earn: a debit
                    // beyond a balance, or a key reused with another amount.
                    Err(WriteError::Rejected(LedgerError::InsufficientFunds { .. })) => {
                        prop_assert!(matches!(op_kind, "hold" | "release"), "insufficient funds on {}", op_kind);
                    }
                    Err(WriteError::Rejected(LedgerError::ExistsWithDifferentAmount)) => {
                        prop_assert_eq!(op_kind, "conflict");
                    }
                    Err(e) => prop_assert!(false, "unexpected outcome {e:?} of {}", op_kind),
                }
                if !matches!(store.read_blocking(verify).map(|v| v.is_empty()), Ok(true)) {
                    prop_assert!(false, "invariants broken after step {n}");
                }
                for (account, expected) in &model {
                    let actual = store.read_blocking(|c| balance(c, account)).unwrap();
                    prop_assert_eq!(actual, *expected, "account {} after step {}", account, n);
                    if account.starts_with("miner:") || account == WITHDRAWALS_HELD {
                        prop_assert!(actual >= 0);
                    }
                }
            }
        }
    }
}
