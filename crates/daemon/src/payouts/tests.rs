//! The rules of payouts that move money, against a real ledger file and a
//! stub wallet that answers only what the rules ask (balance, fee
//! estimate, confirmed coins): holding a request's amount, the minimum and
//! auto-approval thresholds, idempotent requests, the withdrawal state
//! machine, what a batch may take (cap on outputs, daily cap, address
//! delay, solvency, pause, unresolved batches, fee ceiling), and the
//! ledger movements of payment, reversal and fees. Spending paths (send,
//! reconcile, PSBT import) run against real nodes in `tests/`.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use super::batch::Plan;
use super::db::{self, Withdrawal};
use super::*;
use crate::config::BtcSat;
use crate::ledger::{FEES_NETWORK, POOL_ADJUSTMENTS, POOL_FEES, TransferKind, TransferRequest};
use crate::ledger::{PAYOUTS_SENT, WITHDRAWALS_HELD};
use crate::metrics::StoreMetrics;
use crate::store::StoreOptions;
use crate::wallet::{FundedPsbt, MempoolAccept, NodeStatus, Output, WalletBackend, WalletTx};

/// Answers the questions `plan` asks; anything that could spend is an
/// error (these tests never reach it).
struct StubWallet {
    spendable_sat: Mutex<i64>,
    fee_rate: Mutex<Option<u64>>,
    confirmed: Mutex<Option<Vec<i64>>>,
}

fn not_here() -> WalletError {
    WalletError::Unreachable("not part of these tests".into())
}

impl WalletBackend for StubWallet {
    fn kind(&self) -> &'static str {
        "stub"
    }
    fn status(&self) -> BoxFuture<'_, Result<NodeStatus, WalletError>> {
        let spendable_sat = *self.spendable_sat.lock().unwrap();
        Box::pin(async move {
            Ok(NodeStatus {
                chain: "regtest".into(),
                blocks: 200,
                spendable_sat,
                pending_sat: 0,
            })
        })
    }
    fn estimate_fee_rate(&self) -> BoxFuture<'_, Result<Option<u64>, WalletError>> {
        let rate = *self.fee_rate.lock().unwrap();
        Box::pin(async move { Ok(rate) })
    }
    fn confirmed_coins(&self) -> BoxFuture<'_, Result<Option<Vec<i64>>, WalletError>> {
        let coins = self.confirmed.lock().unwrap().clone();
        Box::pin(async move { Ok(coins) })
    }
    fn new_address(&self) -> BoxFuture<'_, Result<String, WalletError>> {
        Box::pin(async { Err(not_here()) })
    }
    fn is_mine<'a>(&'a self, _address: &'a str) -> BoxFuture<'a, Result<bool, WalletError>> {
        Box::pin(async { Ok(false) })
    }
    fn send_many<'a>(
        &'a self,
        _outputs: &'a [Output],
        _tag: &'a str,
        _fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<String, WalletError>> {
        Box::pin(async { Err(not_here()) })
    }
    fn find_by_tag<'a>(
        &'a self,
        _tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<WalletTx>, WalletError>> {
        Box::pin(async { Err(not_here()) })
    }
    fn transaction<'a>(
        &'a self,
        _txid: &'a str,
    ) -> BoxFuture<'a, Result<Option<WalletTx>, WalletError>> {
        Box::pin(async { Err(not_here()) })
    }
    fn create_psbt<'a>(
        &'a self,
        _outputs: &'a [Output],
        _fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<FundedPsbt, WalletError>> {
        Box::pin(async { Err(not_here()) })
    }
    fn unlock<'a>(&'a self, _outpoints: &'a [String]) -> BoxFuture<'a, Result<(), WalletError>> {
        Box::pin(async { Err(not_here()) })
    }
    fn finalize_psbt<'a>(
        &'a self,
        _psbt_base64: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, WalletError>> {
        Box::pin(async { Err(not_here()) })
    }
    fn test_mempool_accept<'a>(
        &'a self,
        _tx_hex: &'a str,
    ) -> BoxFuture<'a, Result<MempoolAccept, WalletError>> {
        Box::pin(async { Err(not_here()) })
    }
    fn broadcast<'a>(&'a self, _tx_hex: &'a str) -> BoxFuture<'a, Result<String, WalletError>> {
        Box::pin(async { Err(not_here()) })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    wallet: Arc<StubWallet>,
    payouts: Payouts,
}

/// A regtest P2WPKH address of its own for each `n`.
fn address(n: u8) -> String {
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    let secret = SecretKey::from_slice(&[n.max(1); 32]).unwrap();
    let public = bitcoin::CompressedPublicKey::from_private_key(
        &Secp256k1::new(),
        &bitcoin::PrivateKey::new(secret, bitcoin::Network::Regtest),
    )
    .unwrap();
    bitcoin::Address::p2wpkh(&public, bitcoin::Network::Regtest).to_string()
}

/// Minimum payout 10,000 sat, no address delay, nothing auto-approved, a
/// wallet with 1 BTC at 2 sat/vB; `edit` changes what a test is about.
fn fixture(edit: impl FnOnce(&mut crate::config::PayoutsConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("ledger.sqlite"),
        StoreOptions::default(),
        StoreMetrics::new(),
    )
    .unwrap();
    let mut config = Config::default();
    config.payouts.min_payout_btc = BtcSat(10_000);
    config.payouts.new_address_delay_s = 0;
    config.payouts.auto_approve_below_btc = BtcSat(0);
    edit(&mut config.payouts);
    let wallet = Arc::new(StubWallet {
        spendable_sat: Mutex::new(100_000_000),
        fee_rate: Mutex::new(Some(2)),
        confirmed: Mutex::new(None),
    });
    let payouts = Payouts::new(
        &config,
        store.clone(),
        wallet.clone(),
        EventBus::new(1024, 64, 1),
    );
    Fixture {
        _dir: dir,
        store,
        wallet,
        payouts,
    }
}

impl Fixture {
    /// A miner with a payout address and `balance_sat` on the ledger.
    async fn miner(&self, id: &str, address: &str, balance_sat: i64) -> MinerRecord {
        let (id, address) = (id.to_string(), address.to_string());
        self.store
            .write(move |ctx| {
                miners::ensure_exists(ctx, &id, "admin")?;
                let record = miners::set_payout_address(ctx, &id, &address, None)
                    .map_err(|e| PayoutError::Invalid(e.to_string()))?;
                crate::ledger::post(
                    ctx,
                    &TransferRequest {
                        idempotency_key: format!("fund:{id}"),
                        debit: POOL_ADJUSTMENTS.into(),
                        credit: crate::ledger::miner_account(&id),
                        amount_msat: balance_sat * 1000,
                        kind: TransferKind::Adjustment,
                        reference: None,
                    },
                )
                .map_err(PayoutError::from_ledger)?;
                Ok::<_, PayoutError>(record)
            })
            .await
            .unwrap()
    }

    /// A withdrawal straight through `db` (approved or not, payable at
    /// `payable_at`), holding its amount like any other.
    async fn withdrawal(
        &self,
        miner: &str,
        address: &str,
        amount_sat: i64,
        approved: bool,
        payable_at: i64,
    ) -> Withdrawal {
        let (miner, address) = (miner.to_string(), address.to_string());
        self.store
            .write(move |ctx| {
                let reference = format!("ref-{}", rand::random::<u64>());
                db::insert_withdrawal(
                    ctx,
                    &db::NewWithdrawal {
                        miner_id: &miner,
                        address: &address,
                        amount_sat,
                        source: "admin",
                        request_owner: "test",
                        request_ref: &reference,
                        payable_at,
                        approved_by: approved.then_some("admin"),
                    },
                )
                .map(|(w, _)| w)
            })
            .await
            .unwrap()
    }

    async fn balance(&self, account: &str) -> i64 {
        let account = account.to_string();
        self.store
            .read(move |c| crate::ledger::balance(c, &account))
            .await
            .unwrap()
    }

    async fn get(&self, id: i64) -> Withdrawal {
        self.payouts.withdrawal(id).await.unwrap()
    }

    /// The ledger's and the payouts' invariants both hold.
    async fn assert_consistent(&self) {
        let violations = self
            .store
            .read(|c| {
                let mut v = crate::ledger::verify(c)?;
                v.extend(db::verify(c)?);
                Ok(v)
            })
            .await
            .unwrap();
        assert!(violations.is_empty(), "{violations:?}");
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::store::WriteCtx<'_>) -> Result<T, PayoutError> + Send + 'static,
    ) -> Result<T, PayoutError> {
        self.store.write(f).await.map_err(PayoutError::from)
    }
}

fn admin() -> Actor {
    Actor::Uid(1000)
}

// ---- requests ------------------------------------------------------------------

#[tokio::test]
async fn a_request_moves_its_amount_from_the_miner_to_held() {
    let f = fixture(|_| {});
    let alice = f.miner("alice", &address(1), 200_000).await;
    let w = f.payouts.request(&alice, 150_000, "e-1").await.unwrap();
    assert_eq!(
        (w.state.as_str(), w.amount_sat, w.address.as_str()),
        ("requested", 150_000, address(1).as_str())
    );
    assert_eq!(f.balance("miner:alice").await, 50_000_000);
    assert_eq!(f.balance(WITHDRAWALS_HELD).await, 150_000_000);
    f.assert_consistent().await;
}

#[tokio::test]
async fn a_request_below_the_minimum_or_beyond_the_balance_moves_nothing() {
    let f = fixture(|c| c.min_payout_btc = BtcSat(10_000));
    let alice = f.miner("alice", &address(1), 20_000).await;
    match f.payouts.request(&alice, 9_999, "e-1").await {
        Err(PayoutError::BelowMinimum { min_sat: 10_000 }) => {}
        other => panic!("{other:?}"),
    }
    match f.payouts.request(&alice, 20_001, "e-2").await {
        Err(PayoutError::InsufficientFunds {
            balance_msat: 20_000_000,
            amount_msat: 20_001_000,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(f.balance("miner:alice").await, 20_000_000);
    assert_eq!(f.balance(WITHDRAWALS_HELD).await, 0);
    assert_eq!(f.payouts.list(None, 0, None).await.unwrap().total, 0);
    // Exactly the minimum, and exactly the whole balance, are fine.
    f.payouts.request(&alice, 10_000, "e-3").await.unwrap();
    f.payouts.request(&alice, 10_000, "e-4").await.unwrap();
    assert_eq!(f.balance("miner:alice").await, 0);
    f.assert_consistent().await;
}

#[tokio::test]
async fn only_requests_strictly_below_auto_approve_are_approved_at_once() {
    let f = fixture(|c| c.auto_approve_below_btc = BtcSat(100_000));
    let alice = f.miner("alice", &address(1), 1_000_000).await;
    let small = f.payouts.request(&alice, 99_999, "e-1").await.unwrap();
    assert_eq!(small.state, "approved");
    assert_eq!(small.decided_by.as_deref(), Some("auto"));
    let at_limit = f.payouts.request(&alice, 100_000, "e-2").await.unwrap();
    assert_eq!(at_limit.state, "requested");
    assert_eq!(at_limit.decided_by, None);
}

#[tokio::test]
async fn a_request_waits_for_the_new_address_delay() {
    let f = fixture(|c| c.new_address_delay_s = 86_400);
    let alice = f.miner("alice", &address(1), 1_000_000).await;
    let w = f.payouts.request(&alice, 50_000, "e-1").await.unwrap();
    assert_eq!(w.payable_at, alice.payout_address_set_at.unwrap() + 86_400);
}

#[tokio::test]
async fn a_retried_request_answers_the_original_and_a_different_one_is_refused() {
    let f = fixture(|_| {});
    let alice = f.miner("alice", &address(1), 1_000_000).await;
    let first = f.payouts.request(&alice, 50_000, "e-1").await.unwrap();
    let again = f.payouts.request(&alice, 50_000, "e-1").await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(f.balance(WITHDRAWALS_HELD).await, 50_000_000);
    match f.payouts.request(&alice, 60_000, "e-1").await {
        Err(PayoutError::Conflict(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(f.balance(WITHDRAWALS_HELD).await, 50_000_000);
    assert_eq!(f.payouts.list(None, 0, None).await.unwrap().total, 1);
    f.assert_consistent().await;
}

// ---- the state machine ------------------------------------------------------------

#[tokio::test]
async fn approve_and_reject_follow_the_state_machine() {
    let f = fixture(|_| {});
    let alice = f.miner("alice", &address(1), 1_000_000).await;
    let w = f.payouts.request(&alice, 50_000, "e-1").await.unwrap();
    let results = f.payouts.approve(admin(), vec![w.id, 999]).await.unwrap();
    assert!(results[0].ok);
    assert_eq!(results[0].state.as_deref(), Some("approved"));
    assert!(!results[1].ok);
    assert_eq!(results[1].error.as_deref(), Some("no such withdrawal"));
    // Approving twice is refused: someone else acted first.
    let again = f.payouts.approve(admin(), vec![w.id]).await.unwrap();
    assert!(!again[0].ok);
    assert_eq!(
        again[0].error,
        Some(format!("withdrawal {} is approved", w.id))
    );
    // A reason is required; then the money goes back to the miner.
    assert!(matches!(
        f.payouts.reject(admin(), w.id, "  ".into()).await,
        Err(PayoutError::Invalid(_))
    ));
    let rejected = f
        .payouts
        .reject(admin(), w.id, "address looks wrong".into())
        .await
        .unwrap();
    assert_eq!(rejected.state, "rejected");
    assert_eq!(f.balance("miner:alice").await, 1_000_000_000);
    assert_eq!(f.balance(WITHDRAWALS_HELD).await, 0);
    // Nothing moves a rejected withdrawal again, and it is returned once.
    assert!(matches!(
        f.payouts.reject(admin(), w.id, "twice".into()).await,
        Err(PayoutError::WrongState { .. })
    ));
    assert!(!f.payouts.approve(admin(), vec![w.id]).await.unwrap()[0].ok);
    assert_eq!(f.balance("miner:alice").await, 1_000_000_000);
    f.assert_consistent().await;
}

#[tokio::test]
async fn a_batched_withdrawal_can_no_longer_be_rejected() {
    let f = fixture(|_| {});
    f.miner("alice", &address(1), 1_000_000).await;
    let w = f.withdrawal("alice", &address(1), 50_000, true, 0).await;
    let outputs = vec![Output {
        address: address(1),
        amount_sat: 50_000,
    }];
    let id = w.id;
    f.write(move |ctx| {
        let batch = db::insert_batch(ctx, "hot", "sending", &outputs, 2, true)?;
        db::assign_to_batch(ctx, batch.id, &[id])
    })
    .await
    .unwrap();
    assert_eq!(f.get(w.id).await.state, "batched");
    assert!(matches!(
        f.payouts.reject(admin(), w.id, "too late".into()).await,
        Err(PayoutError::WrongState { .. })
    ));
    // A withdrawal is put in a batch only once.
    let outputs = vec![Output {
        address: address(1),
        amount_sat: 50_000,
    }];
    let second = f
        .write(move |ctx| {
            let batch = db::insert_batch(ctx, "hot", "sending", &outputs, 2, true)?;
            db::assign_to_batch(ctx, batch.id, &[id])
        })
        .await;
    assert!(matches!(second, Err(PayoutError::WrongState { .. })));
    assert_eq!(f.get(w.id).await.batch_id, Some(1));
    f.assert_consistent().await;
}

#[tokio::test]
async fn a_paid_withdrawal_is_never_released_and_a_payment_found_void_is_paid_once_more() {
    let f = fixture(|_| {});
    f.miner("alice", &address(1), 1_000_000).await;
    let w = f.withdrawal("alice", &address(1), 50_000, true, 0).await;
    let id = w.id;
    let outputs = vec![Output {
        address: address(1),
        amount_sat: 50_000,
    }];
    f.write(move |ctx| {
        let batch = db::insert_batch(ctx, "hot", "sending", &outputs, 2, true)?;
        db::assign_to_batch(ctx, batch.id, &[id])?;
        db::set_batch(ctx, batch.id, "broadcast", Some("aa"), None, None)?;
        let w = db::get_withdrawal(ctx.conn, id)?.unwrap();
        db::mark_paid(ctx, &w, "aa")
    })
    .await
    .unwrap();
    assert_eq!(f.balance(WITHDRAWALS_HELD).await, 0);
    assert_eq!(f.balance(PAYOUTS_SENT).await, 50_000_000);
    f.assert_consistent().await;
    // Marking it paid again (a replacement) moves no money.
    f.write(move |ctx| {
        let w = db::get_withdrawal(ctx.conn, id)?.unwrap();
        db::mark_paid(ctx, &w, "aa")
    })
    .await
    .unwrap();
    assert_eq!(f.balance(PAYOUTS_SENT).await, 50_000_000);
    // Money that left is never given back to the miner, also when its
    // batch waits for an admin (paid withdrawals go to needs_attention
    // with it, a state money can be released from).
    for state in ["broadcast", "needs_attention"] {
        let release = f
            .write(move |ctx| {
                ctx.conn.execute(
                    "UPDATE withdrawals SET state = ?2 WHERE id = ?1",
                    rusqlite::params![id, state],
                )?;
                let w = db::get_withdrawal(ctx.conn, id)?.unwrap();
                db::release(ctx, &w, "failed", Some("admin"), "oops")
            })
            .await;
        assert!(
            matches!(release, Err(PayoutError::WrongState { .. })),
            "{state}: {release:?}"
        );
    }
    assert_eq!(f.balance("miner:alice").await, 950_000_000);
    // The transaction turns out void: the payment is reversed, then a new
    // transaction pays it again, under keys of its own.
    f.write(move |ctx| {
        let w = db::get_withdrawal(ctx.conn, id)?.unwrap();
        db::unmark_paid(ctx, &w)?;
        db::set_batch(ctx, 1, "broadcast", Some("bb"), None, None)?;
        let w = db::get_withdrawal(ctx.conn, id)?.unwrap();
        db::mark_paid(ctx, &w, "bb")
    })
    .await
    .unwrap();
    assert_eq!(f.balance(PAYOUTS_SENT).await, 50_000_000);
    assert_eq!(f.balance(WITHDRAWALS_HELD).await, 0);
    let keys: Vec<String> = f
        .store
        .read(move |c| {
            c.prepare("SELECT idempotency_key FROM transfers WHERE reference LIKE 'withdrawal:' || ?1 || '%' ORDER BY id")?
                .query_map([id], |r| r.get(0))?
                .collect()
        })
        .await
        .unwrap();
    assert_eq!(
        keys,
        [
            format!("withdrawal:{id}:hold"),
            format!("withdrawal:{id}:paid:0"),
            format!("withdrawal:{id}:unpaid:0"),
            format!("withdrawal:{id}:paid:1"),
        ]
    );
    assert_eq!(f.get(id).await.txid.as_deref(), Some("bb"));
    f.assert_consistent().await;
}

#[tokio::test]
async fn a_transaction_is_committed_to_a_batch_once_and_only_while_sending() {
    let f = fixture(|_| {});
    let outputs = vec![Output {
        address: address(1),
        amount_sat: 50_000,
    }];
    let batch = f
        .write(move |ctx| db::insert_batch(ctx, "hot", "sending", &outputs, 2, true))
        .await
        .unwrap();
    assert_eq!(
        batch.tag,
        db::batch_tag(&f.store.read(db::install_id).await.unwrap(), batch.id)
    );
    let id = batch.id;
    let set = |txid: &'static str| {
        f.write(move |ctx| db::set_batch_tx(ctx, id, txid, "00", &["cc:0".into()], 300))
    };
    set("aa").await.unwrap();
    assert!(matches!(set("bb").await, Err(PayoutError::Conflict(_))));
    let stored = f
        .store
        .read(move |c| db::get_batch(c, id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            stored.state.as_str(),
            stored.txid.as_deref(),
            stored.fee_sat
        ),
        ("broadcasting", Some("aa"), Some(300))
    );
    assert_eq!(stored.inputs, ["cc:0"]);
}

#[tokio::test]
async fn network_fees_are_recorded_by_difference_and_reversed_once() {
    let f = fixture(|_| {});
    let fee = |sat: i64, txid: &'static str| f.write(move |ctx| db::record_fee(ctx, 7, txid, sat));
    fee(300, "aa").await.unwrap();
    assert_eq!(f.balance(FEES_NETWORK).await, 300_000);
    // The same fee again, or a lower one, records nothing more.
    fee(300, "aa").await.unwrap();
    fee(200, "aa").await.unwrap();
    assert_eq!(f.balance(FEES_NETWORK).await, 300_000);
    // A replacement paying more records the difference.
    fee(450, "bb").await.unwrap();
    assert_eq!(f.balance(FEES_NETWORK).await, 450_000);
    assert_eq!(f.balance(POOL_FEES).await, -450_000);
    for _ in 0..2 {
        f.write(|ctx| db::reverse_fee(ctx, 7)).await.unwrap();
        assert_eq!(f.balance(FEES_NETWORK).await, 0);
        assert_eq!(f.balance(POOL_FEES).await, 0);
    }
}

// ---- what a batch takes ---------------------------------------------------------------

#[tokio::test]
async fn a_batch_takes_at_most_max_outputs_addresses_and_merges_one_address() {
    let f = fixture(|c| c.max_outputs_per_batch = 2);
    f.miner("alice", &address(1), 1_000_000).await;
    f.miner("bob", &address(2), 1_000_000).await;
    f.miner("carol", &address(3), 1_000_000).await;
    let a = f.withdrawal("alice", &address(1), 10_000, true, 0).await;
    let b = f.withdrawal("bob", &address(2), 20_000, true, 0).await;
    let a2 = f.withdrawal("alice", &address(1), 30_000, true, 0).await;
    let c = f.withdrawal("carol", &address(3), 40_000, true, 0).await;
    let (plan, fee_rate) = f.payouts.plan(&[]).await.unwrap();
    assert_eq!(fee_rate, 2);
    assert_eq!(plan.ids, [a.id, b.id, a2.id]);
    assert!(!plan.ids.contains(&c.id));
    let mut expected = vec![
        Output {
            address: address(1),
            amount_sat: 40_000,
        },
        Output {
            address: address(2),
            amount_sat: 20_000,
        },
    ];
    expected.sort_by(|x, y| x.address.cmp(&y.address));
    assert_eq!(plan.outputs, expected);
}

#[tokio::test]
async fn the_daily_cap_holds_back_what_would_pass_it() {
    let f = fixture(|c| c.daily_cap_btc = BtcSat(100_000));
    f.miner("alice", &address(1), 1_000_000).await;
    // Already sent today: 30,000 sat; a failed batch sent nothing.
    f.write(|ctx| {
        let sent = [Output {
            address: address(9),
            amount_sat: 30_000,
        }];
        let failed = [Output {
            address: address(9),
            amount_sat: 50_000,
        }];
        db::insert_batch(ctx, "hot", "confirmed", &sent, 2, true)?;
        db::insert_batch(ctx, "hot", "failed", &failed, 2, true)?;
        Ok(())
    })
    .await
    .unwrap();
    let big = f.withdrawal("alice", &address(1), 50_000, true, 0).await;
    let over = f.withdrawal("alice", &address(1), 30_000, true, 0).await;
    let exact = f.withdrawal("alice", &address(1), 20_000, true, 0).await;
    let (plan, _) = f.payouts.plan(&[]).await.unwrap();
    // 70,000 left: 50,000 fits, 30,000 would pass the cap, 20,000 fills it.
    assert_eq!(plan.ids, [big.id, exact.id]);
    assert!(!plan.ids.contains(&over.id));
    assert_eq!(plan.outputs[0].amount_sat, 70_000);
    // A withdrawal larger than the whole cap waits, and the answer says why.
    let f2 = fixture(|c| c.daily_cap_btc = BtcSat(10_000));
    f2.miner("alice", &address(1), 1_000_000).await;
    f2.withdrawal("alice", &address(1), 10_001, true, 0).await;
    match f2.payouts.plan(&[]).await {
        Err(PayoutError::Nothing(why)) => assert!(why.contains("daily cap"), "{why}"),
        Ok(_) => panic!("a withdrawal over the daily cap was planned"),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn withdrawals_wait_for_their_payable_time() {
    let f = fixture(|_| {});
    f.miner("alice", &address(1), 1_000_000).await;
    let later = crate::clock::now_s() + 3_600;
    f.withdrawal("alice", &address(1), 50_000, true, later)
        .await;
    match f.payouts.plan(&[]).await {
        Err(PayoutError::Nothing(why)) => {
            assert!(why.contains("1 wait for the new-address delay"), "{why}")
        }
        Ok(_) => panic!("a withdrawal before its payable time was planned"),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn only_approved_withdrawals_go_out() {
    let f = fixture(|_| {});
    f.miner("alice", &address(1), 1_000_000).await;
    let requested = f.withdrawal("alice", &address(1), 50_000, false, 0).await;
    let approved = f.withdrawal("alice", &address(1), 60_000, true, 0).await;
    let (plan, _) = f.payouts.plan(&[]).await.unwrap();
    assert_eq!(plan.ids, [approved.id]);
    match f.payouts.plan(&[approved.id, requested.id]).await {
        Err(PayoutError::Invalid(m)) => {
            assert_eq!(m, format!("withdrawal {} is not approved", requested.id))
        }
        other => panic!("{:?}", other.map(|(p, _)| p.ids)),
    }
}

#[tokio::test]
async fn nothing_leaves_while_paused_unresolved_too_expensive_or_short() {
    let f = fixture(|c| c.max_fee_rate_sat_vb = 50);
    f.miner("alice", &address(1), 1_000_000).await;
    let w = f.withdrawal("alice", &address(1), 50_000, true, 0).await;
    let waiting = |r: Result<(Plan, u64), PayoutError>| match r {
        Err(PayoutError::Waiting(why)) => why,
        Err(e) => panic!("{e}"),
        Ok((plan, _)) => panic!("planned {:?}", plan.ids),
    };
    // Fee ceiling: at it is fine, above it waits.
    *f.wallet.fee_rate.lock().unwrap() = Some(50);
    assert_eq!(f.payouts.plan(&[]).await.unwrap().1, 50);
    *f.wallet.fee_rate.lock().unwrap() = Some(51);
    assert!(waiting(f.payouts.plan(&[]).await).contains("above payouts.max_fee_rate_sat_vb"));
    // No estimate (regtest): the fallback rate.
    *f.wallet.fee_rate.lock().unwrap() = None;
    assert_eq!(f.payouts.plan(&[]).await.unwrap().1, 2);
    // Solvency: the wallet must hold every approved withdrawal.
    *f.wallet.spendable_sat.lock().unwrap() = 49_999;
    assert!(waiting(f.payouts.plan(&[]).await).contains("wallet shortfall"));
    *f.wallet.spendable_sat.lock().unwrap() = 50_000;
    f.payouts.plan(&[]).await.unwrap();
    // Confirmed coins must pay the batch and its fee (no unconfirmed change).
    *f.wallet.confirmed.lock().unwrap() = Some(vec![50_000]);
    assert!(waiting(f.payouts.plan(&[]).await).contains("waiting for change to confirm"));
    *f.wallet.confirmed.lock().unwrap() = Some(vec![60_000]);
    f.payouts.plan(&[]).await.unwrap();
    // Paused.
    f.payouts.set_paused(admin(), true).await.unwrap();
    assert!(waiting(f.payouts.plan(&[]).await).contains("paused"));
    f.payouts.set_paused(admin(), false).await.unwrap();
    f.payouts.plan(&[]).await.unwrap();
    // An earlier batch whose fate is unknown blocks the next.
    let id = w.id;
    let outputs = vec![Output {
        address: address(1),
        amount_sat: 50_000,
    }];
    f.write(move |ctx| {
        let batch = db::insert_batch(ctx, "hot", "sending", &outputs, 2, true)?;
        db::assign_to_batch(ctx, batch.id, &[id])
    })
    .await
    .unwrap();
    f.withdrawal("alice", &address(1), 10_000, true, 0).await;
    assert!(waiting(f.payouts.plan(&[]).await).contains("must be resolved first"));
}

#[tokio::test]
async fn requests_no_admin_approved_do_not_count_against_the_wallet() {
    let f = fixture(|_| {});
    f.miner("alice", &address(1), 10_000_000).await;
    f.withdrawal("alice", &address(1), 9_000_000, false, 0)
        .await;
    let small = f.withdrawal("alice", &address(1), 50_000, true, 0).await;
    *f.wallet.spendable_sat.lock().unwrap() = 60_000;
    assert_eq!(f.store.read(db::committed_sat).await.unwrap(), 50_000);
    let (plan, _) = f.payouts.plan(&[]).await.unwrap();
    assert_eq!(plan.ids, [small.id]);
}

// ---- the admin's batch_payout -------------------------------------------------------------

#[tokio::test]
async fn batch_payout_checks_every_payment_and_holds_all_or_nothing() {
    let f = fixture(|c| c.max_outputs_per_batch = 2);
    f.miner("alice", &address(1), 100_000).await;
    f.miner("bob", &address(2), 5_000).await;
    let pay = |miner: &str, n: u8, amount_sat: i64| Payment {
        miner_id: miner.into(),
        to_address: address(n),
        amount_sat,
    };
    let invalid = |r: Result<BatchOutcome, PayoutError>| match r {
        Err(PayoutError::Invalid(m)) => m,
        Err(e) => panic!("{e}"),
        Ok(o) => panic!("paid {:?}", o.batch),
    };
    let m = invalid(
        f.payouts
            .batch_payout(
                admin(),
                vec![
                    pay("alice", 1, 20_000),
                    pay("alice", 1, 20_000),
                    pay("alice", 1, 20_000),
                ],
                None,
            )
            .await,
    );
    assert!(m.contains("at most 2 payments"), "{m}");
    let m = invalid(
        f.payouts
            .batch_payout(admin(), vec![pay("alice", 1, 9_999)], None)
            .await,
    );
    assert!(
        m.starts_with("payments[0]: amount is below the minimum"),
        "{m}"
    );
    let m = invalid(f.payouts.batch_payout(admin(), vec![], None).await);
    assert!(m.contains("must not be empty"), "{m}");
    // Bob cannot cover his payment: Alice's, checked first, is not held
    // either.
    let m = invalid(
        f.payouts
            .batch_payout(
                admin(),
                vec![pay("alice", 1, 20_000), pay("bob", 2, 10_000)],
                Some("req-1".into()),
            )
            .await,
    );
    assert!(
        m.starts_with("payments[1]: miner bob has 5000000 msat"),
        "{m}"
    );
    assert_eq!(f.payouts.list(None, 0, None).await.unwrap().total, 0);
    assert_eq!(f.balance("miner:alice").await, 100_000_000);
    assert_eq!(f.balance(WITHDRAWALS_HELD).await, 0);
    f.assert_consistent().await;
}

// ---- control errors and crash points ---------------------------------------------------------

#[test]
fn every_payout_error_keeps_its_control_code() {
    use control::error_body;
    let cases = [
        (PayoutError::NotFound("batch"), "not_found"),
        (
            PayoutError::WrongState {
                what: "w".into(),
                state: "s".into(),
            },
            "wrong_state",
        ),
        (PayoutError::Invalid("x".into()), "invalid"),
        (PayoutError::BelowMinimum { min_sat: 1 }, "below_minimum"),
        (
            PayoutError::InsufficientFunds {
                balance_msat: 1,
                amount_msat: 2,
            },
            "insufficient_funds",
        ),
        (PayoutError::NoPayoutAddress, "no_payout_address"),
        (PayoutError::Conflict("x".into()), "conflict"),
        (PayoutError::DuplicateEvent("e".into()), "duplicate_event"),
        (PayoutError::Waiting("x".into()), "payouts_waiting"),
        (PayoutError::Nothing("x".into()), "nothing_to_pay"),
        (PayoutError::Node("x".into()), "node_error"),
        (PayoutError::Wallet(not_here()), "node_error"),
        (
            PayoutError::Store(crate::store::StoreError::Closed),
            "unavailable",
        ),
        (
            PayoutError::Db(rusqlite::Error::QueryReturnedNoRows),
            "unavailable",
        ),
    ];
    for (error, code) in cases {
        let message = error.to_string();
        let body = error_body(error);
        assert_eq!((body.code.as_str(), body.message), (code, message));
        assert!(body.details.is_none());
    }
    let body = error_body(PayoutError::PsbtMismatch(vec!["output 0 changed".into()]));
    assert_eq!(body.code, "psbt_mismatch");
    assert_eq!(
        body.details,
        Some(serde_json::json!({ "differences": ["output 0 changed"] }))
    );
}

#[test]
fn every_crash_point_in_the_code_is_a_known_step_and_every_step_is_reachable() {
    let sources = [
        include_str!("batch.rs"),
        include_str!("cold.rs"),
        include_str!("../faucet/worker.rs"),
    ];
    let mut named: Vec<&str> = Vec::new();
    for source in sources {
        for part in source.split("crash::point(\"").skip(1) {
            named.push(&part[..part.find('"').unwrap()]);
        }
    }
    for step in &named {
        assert!(crash::STEPS.contains(step), "unknown crash step {step}");
    }
    for step in crash::STEPS {
        assert!(named.contains(step), "step {step} is never reached");
    }
}

// ---- cold: review and import of a real PSBT -------------------------------------------------

mod cold_psbt {
    use super::*;
    use crate::wallet::psbt::{self, core_psbts::*};

    /// A cold batch paying what Core's recorded PSBT pays (50,000 sat to
    /// its P2WPKH, 70,000 to its P2TR address), with that PSBT recorded as
    /// the batch's, change at index 2. Returns the PSBT id and the two
    /// withdrawal ids.
    async fn cold_batch(
        f: &Fixture,
        batch_outputs: Vec<Output>,
        change_is_ours: bool,
    ) -> (i64, i64, i64) {
        f.miner("alice", P2WPKH, 1_000_000).await;
        f.miner("bob", P2TR, 1_000_000).await;
        let a = f.withdrawal("alice", P2WPKH, 50_000, true, 0).await.id;
        let b = f.withdrawal("bob", P2TR, 70_000, true, 0).await.id;
        let psbt_id = f
            .write(move |ctx| {
                let batch =
                    db::insert_batch(ctx, "cold", "psbt_pending", &batch_outputs, 3, false)?;
                db::assign_to_batch(ctx, batch.id, &[a, b])?;
                let locked = [format!("{PREV_TXID}:0")];
                let id = db::insert_psbt(
                    ctx,
                    batch.id,
                    UNSIGNED,
                    588,
                    Some(2),
                    change_is_ours,
                    &locked,
                )?;
                db::set_batch(ctx, batch.id, "psbt_created", Some(TXID), Some(588), None)?;
                Ok(id)
            })
            .await
            .unwrap();
        (psbt_id, a, b)
    }

    fn core_outputs() -> Vec<Output> {
        vec![
            Output {
                address: P2WPKH.into(),
                amount_sat: 50_000,
            },
            Output {
                address: P2TR.into(),
                amount_sat: 70_000,
            },
        ]
    }

    #[tokio::test]
    async fn a_review_maps_every_output_of_the_psbt_to_the_batch() {
        let f = fixture(|_| {});
        let (psbt_id, a, b) = cold_batch(&f, core_outputs(), true).await;
        let review = f.payouts.psbt_review(psbt_id).await.unwrap();
        assert_eq!(review.warnings, Vec::<String>::new());
        let roles: Vec<(&str, i64, Vec<i64>)> = review
            .outputs
            .iter()
            .map(|o| (o.role.as_str(), o.amount_sat, o.withdrawal_ids.clone()))
            .collect();
        assert_eq!(
            roles,
            [
                ("withdrawal", 50_000, vec![a]),
                ("withdrawal", 70_000, vec![b]),
                ("change", 4_999_879_412, vec![])
            ]
        );
        assert_eq!(review.paid_to_miners_sat, 120_000);
        assert_eq!(review.change_sat, 4_999_879_412);
        assert_eq!(review.total_in_sat, Some(5_000_000_000));
        assert_eq!(review.fee_sat, Some(588));
        // analyzepsbt: estimated_vsize 196, estimated_feerate 3 sat/vB.
        assert_eq!(review.vsize, Some(196));
        assert_eq!(review.fee_rate_milli_sat_vb, Some(3_000));
        assert_eq!(review.state, "unsigned");
        assert!(!review.signatures.complete);
        assert_eq!(review.txid.as_deref(), Some(TXID));
    }

    #[tokio::test]
    async fn a_review_warns_of_every_output_that_is_not_the_batchs() {
        let f = fixture(|_| {});
        // The batch pays Bob 70,001 sat; the PSBT pays him 70,000. And the
        // wallet did not recognise the change.
        let mut outputs = core_outputs();
        outputs[1].amount_sat = 70_001;
        let (psbt_id, _, _) = cold_batch(&f, outputs, false).await;
        let review = f.payouts.psbt_review(psbt_id).await.unwrap();
        assert_eq!(
            review.warnings,
            [
                format!(
                    "output 1 pays 70000 sat to {P2TR}, which matches no withdrawal of this batch"
                ),
                format!(
                    "output 2 is marked as change but the wallet does not recognise {CHANGE} as its own"
                ),
                format!("the batch pays 70001 sat to {P2TR} but no output of the PSBT does"),
            ]
        );
        assert_eq!(review.paid_to_miners_sat, 50_000);
        assert_eq!(review.change_sat, 0);
    }

    #[tokio::test]
    async fn a_review_warns_when_the_fee_is_too_large_a_share_or_rate() {
        let f = fixture(|c| {
            c.max_fee_percent = 0;
            c.max_fee_rate_sat_vb = 2;
        });
        let (psbt_id, _, _) = cold_batch(&f, core_outputs(), true).await;
        let review = f.payouts.psbt_review(psbt_id).await.unwrap();
        assert_eq!(
            review.warnings,
            [
                "the fee (588 sat) is 0% or more of the amount sent (120000 sat)".to_string(),
                "the fee rate (3.000 sat/vB) is above payouts.max_fee_rate_sat_vb (2)".to_string(),
            ]
        );
    }

    /// The signed PSBT with one edit to its transaction.
    fn signed_with(edit: impl FnOnce(&mut bitcoin::Transaction)) -> String {
        let mut p = psbt::decode(SIGNED).unwrap();
        edit(&mut p.unsigned_tx);
        psbt::encode(&p)
    }

    #[tokio::test]
    async fn an_imported_psbt_must_pay_exactly_what_was_reviewed() {
        let f = fixture(|c| c.max_fee_percent = 10);
        let (psbt_id, _, _) = cold_batch(&f, core_outputs(), true).await;
        let refused = [
            (
                signed_with(|tx| tx.output[1].value = bitcoin::Amount::from_sat(69_000)),
                vec!["output 1: amount changed from 70000 to 69000 sat".to_string()],
            ),
            (
                // Less change: the difference would go to the miners of
                // the block as fee.
                signed_with(|tx| tx.output[2].value = bitcoin::Amount::from_sat(4_999_000_000)),
                vec![
                    "output 2: amount changed from 4999879412 to 4999000000 sat".to_string(),
                    "fee 880000 sat is above the limit of 10% of the 120000 sat sent".to_string(),
                    "fee rate 4489 sat/vB is above payouts.max_fee_rate_sat_vb = 50".to_string(),
                ],
            ),
            (
                // More out than in.
                signed_with(|tx| tx.output[2].value = bitcoin::Amount::from_sat(5_000_000_000)),
                vec![
                    "output 2: amount changed from 4999879412 to 5000000000 sat".to_string(),
                    "outputs exceed inputs by 120000 sat".to_string(),
                ],
            ),
        ];
        for (signed, expected) in refused {
            match f.payouts.import_psbt(admin(), psbt_id, signed).await {
                Err(PayoutError::PsbtMismatch(diffs)) => assert_eq!(diffs, expected),
                other => panic!("{other:?}"),
            }
        }
        match f
            .payouts
            .import_psbt(admin(), psbt_id, SIGNED[..SIGNED.len() - 20].to_string())
            .await
        {
            Err(PayoutError::Invalid(m)) => assert!(m.starts_with("psbt: not a valid PSBT"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Nothing of the refusals was stored; each was audited.
        let (record, refusals) = f
            .store
            .read(move |c| {
                let record = db::get_psbt(c, psbt_id)?.unwrap();
                let refusals: i64 = c.query_row(
                    "SELECT COUNT(*) FROM audit_log WHERE action = 'refuse_psbt'",
                    [],
                    |r| r.get(0),
                )?;
                Ok((record, refusals))
            })
            .await
            .unwrap();
        assert_eq!(
            (record.state.as_str(), record.signed_psbt),
            ("unsigned", None)
        );
        assert_eq!(refusals, 4);
        // Core's own signature of the reviewed PSBT is accepted.
        let review = f
            .payouts
            .import_psbt(admin(), psbt_id, SIGNED.to_string())
            .await
            .unwrap();
        assert_eq!(review.state, "signed");
        assert!(review.signatures.complete);
        assert!(review.warnings.is_empty(), "{:?}", review.warnings);
    }

    #[tokio::test]
    async fn a_psbt_is_imported_only_while_its_batch_waits_for_it() {
        let f = fixture(|_| {});
        let (psbt_id, _, _) = cold_batch(&f, core_outputs(), true).await;
        f.write(|ctx| Ok(db::set_batch(ctx, 1, "broadcast", None, None, None)?))
            .await
            .unwrap();
        assert!(matches!(
            f.payouts
                .import_psbt(admin(), psbt_id, SIGNED.to_string())
                .await,
            Err(PayoutError::WrongState { .. })
        ));
    }
}
