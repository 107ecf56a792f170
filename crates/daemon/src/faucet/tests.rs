//! The faucet service and payer against a real ledger store and a scripted
//! wallet: admission rules, and the never-pay-twice state machine
//! (definite error, ambiguous error found or not found, crash recovery).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use super::*;
use crate::config::Config;
use crate::secrets::Secret;
use crate::store::{Store, StoreOptions};
use crate::wallet::{
    FundedPsbt, MempoolAccept, NodeStatus, Output, WalletBackend, WalletError, WalletTx,
};

/// A wallet whose `send_many` answers are scripted.
#[derive(Default)]
struct ScriptedWallet {
    /// Answers for successive `send_many` calls: `(result, lands in the
    /// wallet under its tag)`.
    script: Mutex<Vec<(Result<String, WalletError>, bool)>>,
    sends: Mutex<Vec<(String, Vec<Output>)>>,
    /// Transactions in the wallet by tag: txid and the outputs they pay.
    by_tag: Mutex<HashMap<String, (String, Vec<Output>)>>,
    mine: Mutex<Vec<String>>,
}

impl ScriptedWallet {
    fn push(&self, result: Result<&str, WalletError>, lands: bool) {
        self.script
            .lock()
            .unwrap()
            .push((result.map(str::to_string), lands));
    }
    /// The transaction sent with `tag` shows up in the wallet as `txid`,
    /// paying what was sent with that tag.
    fn land(&self, tag: &str, txid: &str) {
        let outputs = self
            .sends
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(t, _)| t == tag)
            .map(|(_, o)| o.clone())
            .unwrap_or_default();
        self.land_paying(tag, txid, &outputs);
    }
    fn land_paying(&self, tag: &str, txid: &str, outputs: &[Output]) {
        self.by_tag
            .lock()
            .unwrap()
            .insert(tag.to_string(), (txid.to_string(), outputs.to_vec()));
    }
    fn sends(&self) -> usize {
        self.sends.lock().unwrap().len()
    }
}

fn unreachable() -> WalletError {
    WalletError::Unreachable("not scripted".into())
}

impl WalletBackend for ScriptedWallet {
    fn kind(&self) -> &'static str {
        "scripted"
    }
    fn status(&self) -> BoxFuture<'_, Result<NodeStatus, WalletError>> {
        Box::pin(async { Err(unreachable()) })
    }
    fn estimate_fee_rate(&self) -> BoxFuture<'_, Result<Option<u64>, WalletError>> {
        Box::pin(async { Ok(None) })
    }
    fn new_address(&self) -> BoxFuture<'_, Result<String, WalletError>> {
        Box::pin(async { Err(unreachable()) })
    }
    fn is_mine<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<bool, WalletError>> {
        Box::pin(async move { Ok(self.mine.lock().unwrap().iter().any(|a| a == address)) })
    }
    fn send_many<'a>(
        &'a self,
        outputs: &'a [Output],
        tag: &'a str,
        _fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<String, WalletError>> {
        Box::pin(async move {
            self.sends
                .lock()
                .unwrap()
                .push((tag.to_string(), outputs.to_vec()));
            let (result, lands) = self.script.lock().unwrap().remove(0);
            if lands {
                let txid = result.clone().unwrap_or_else(|_| "ab".repeat(32));
                self.land(tag, &txid);
            }
            result
        })
    }
    fn find_by_tag<'a>(
        &'a self,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<Vec<WalletTx>, WalletError>> {
        Box::pin(async move {
            Ok(self
                .by_tag
                .lock()
                .unwrap()
                .get(tag)
                .map(|(txid, outputs)| {
                    vec![WalletTx {
                        txid: txid.clone(),
                        fee_sat: Some(-141),
                        comment: Some(tag.to_string()),
                        in_mempool_or_chain: true,
                        sends: outputs.clone(),
                        ..WalletTx::default()
                    }]
                })
                .unwrap_or_default())
        })
    }
    fn transaction<'a>(
        &'a self,
        txid: &'a str,
    ) -> BoxFuture<'a, Result<Option<WalletTx>, WalletError>> {
        Box::pin(async move {
            Ok(Some(WalletTx {
                txid: txid.to_string(),
                fee_sat: Some(-141),
                ..WalletTx::default()
            }))
        })
    }
    fn create_psbt<'a>(
        &'a self,
        _outputs: &'a [Output],
        _fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<FundedPsbt, WalletError>> {
        Box::pin(async { Err(unreachable()) })
    }
    fn unlock<'a>(&'a self, _outpoints: &'a [String]) -> BoxFuture<'a, Result<(), WalletError>> {
        Box::pin(async { Err(unreachable()) })
    }
    fn finalize_psbt<'a>(
        &'a self,
        _psbt_base64: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, WalletError>> {
        Box::pin(async { Err(unreachable()) })
    }
    fn test_mempool_accept<'a>(
        &'a self,
        _tx_hex: &'a str,
    ) -> BoxFuture<'a, Result<MempoolAccept, WalletError>> {
        Box::pin(async { Err(unreachable()) })
    }
    fn broadcast<'a>(&'a self, _tx_hex: &'a str) -> BoxFuture<'a, Result<String, WalletError>> {
        Box::pin(async { Err(unreachable()) })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    wallet: Arc<ScriptedWallet>,
    faucet: Faucet,
}

fn config(edit: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    // Any nonce solves difficulty 0: these tests are about the rules.
    config.faucet.difficulty_bits = 0;
    edit(&mut config);
    config
}

fn fixture(config: Config) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let store = Store::open(
        &dir.path().join("ledger.sqlite"),
        StoreOptions::default(),
        metrics.store.clone(),
    )
    .unwrap();
    let wallet = Arc::new(ScriptedWallet::default());
    let secrets = Secrets {
        report_secret: Secret::new(b"r".to_vec()),
        admin_api_key: Secret::new(b"a".to_vec()),
        master_key: Secret::new(b"m".to_vec()),
        shared_secret: Secret::new(b"s".to_vec()),
    };
    let faucet = Faucet::new(
        &config,
        &secrets,
        store.clone(),
        wallet.clone(),
        EventBus::new(1024, 64, 1),
        metrics,
    );
    Fixture {
        _dir: dir,
        store,
        wallet,
        faucet,
    }
}

fn address() -> String {
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    let secp = Secp256k1::new();
    let secret = SecretKey::from_slice(&rand::random::<[u8; 32]>()).unwrap();
    let public = bitcoin::CompressedPublicKey::from_private_key(
        &secp,
        &bitcoin::PrivateKey::new(secret, bitcoin::Network::Regtest),
    )
    .unwrap();
    bitcoin::Address::p2wpkh(&public, bitcoin::Network::Regtest).to_string()
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, n])
}

impl Fixture {
    async fn request(&self, address: &str, client: IpAddr) -> Result<FaucetRow, FaucetError> {
        let c = self.faucet.challenge(crate::clock::now_s()).unwrap();
        self.faucet
            .request(client, address, &c.challenge, "0")
            .await
    }

    async fn balance(&self, account: &'static str) -> i64 {
        self.store
            .read(move |conn| crate::ledger::balance(conn, account))
            .await
            .unwrap()
    }

    async fn state(&self, id: i64) -> String {
        self.faucet.lookup(id).await.unwrap().state
    }

    async fn verified(&self) {
        let (ledger, faucet) = self
            .store
            .read(|conn| Ok((crate::ledger::verify(conn)?, verify(conn)?)))
            .await
            .unwrap();
        assert!(ledger.is_empty(), "{ledger:?}");
        assert!(faucet.is_empty(), "{faucet:?}");
    }
}

#[tokio::test]
async fn an_admitted_request_is_held_and_refusals_change_nothing() {
    let f = fixture(config(|_| {}));
    let a = address();
    let row = f.request(&a, ip(1)).await.unwrap();
    assert_eq!(row.state, "queued");
    assert_eq!(f.balance(crate::ledger::FAUCET_HELD).await, 10_000_000);
    assert!(matches!(
        f.request(&a, ip(2)).await,
        Err(FaucetError::TooSoon { by: "address", .. })
    ));
    assert!(matches!(
        f.request(&address(), ip(1)).await,
        Err(FaucetError::TooSoon { by: "ip", .. })
    ));
    // A challenge is spent once, even by a different client.
    let c = f.faucet.challenge(crate::clock::now_s()).unwrap();
    f.faucet
        .request(ip(3), &address(), &c.challenge, "0")
        .await
        .unwrap();
    assert!(matches!(
        f.faucet.request(ip(4), &address(), &c.challenge, "0").await,
        Err(FaucetError::BadPow("challenge already used"))
    ));
    assert_eq!(f.balance(crate::ledger::FAUCET_HELD).await, 20_000_000);
    f.verified().await;
}

#[tokio::test]
async fn the_faucets_own_address_is_refused() {
    let f = fixture(config(|_| {}));
    let own = address();
    f.wallet.mine.lock().unwrap().push(own.clone());
    match f.request(&own, ip(1)).await {
        Err(FaucetError::BadAddress(message)) => assert!(message.contains("own address")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mainnet_always_disables_the_faucet() {
    let settings = Settings::from_config(&config(|c| c.network = Network::Mainnet));
    assert!(!settings.enabled);
    assert!(settings.disabled_reason.unwrap().contains("mainnet"));
    let settings = Settings::from_config(&config(|c| c.faucet.enabled = false));
    assert!(!settings.enabled);
    assert!(Settings::from_config(&config(|_| {})).enabled);
}

#[tokio::test]
async fn concurrent_requests_never_overspend_the_budget() {
    let f = Arc::new(fixture(config(|c| {
        c.faucet.daily_budget_btc = crate::config::BtcSat::parse("0.0003").unwrap();
    })));
    let mut tasks = Vec::new();
    for n in 0..20u8 {
        let f = f.clone();
        let a = address();
        tasks.push(tokio::spawn(async move { f.request(&a, ip(n + 1)).await }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(FaucetError::BudgetExhausted { .. }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(accepted, 3);
    assert_eq!(f.balance(crate::ledger::FAUCET_HELD).await, 30_000_000);
    f.verified().await;
}

#[tokio::test]
async fn a_paid_batch_moves_held_to_sent_and_books_the_fee() {
    let f = fixture(config(|_| {}));
    let a = f.request(&address(), ip(1)).await.unwrap();
    let b = f.request(&address(), ip(2)).await.unwrap();
    f.wallet.push(Ok(&"11".repeat(32)), true);
    let round = f.faucet.round().await;
    assert_eq!(round.paid_batches.len(), 1);
    assert_eq!(f.wallet.sends(), 1);
    assert_eq!(
        f.wallet.sends.lock().unwrap()[0].1.len(),
        2,
        "one output each"
    );
    assert_eq!(f.state(a.id).await, "paid");
    assert_eq!(f.state(b.id).await, "paid");
    assert_eq!(f.balance(crate::ledger::FAUCET_HELD).await, 0);
    assert_eq!(f.balance(crate::ledger::FAUCET_SENT).await, 20_000_000);
    assert_eq!(f.balance(crate::ledger::FEES_NETWORK).await, 141_000);
    // Nothing left: the next round sends nothing.
    assert_eq!(f.faucet.round().await, worker::Round::default());
    assert_eq!(f.wallet.sends(), 1);
    f.verified().await;
}

#[tokio::test]
async fn a_definite_refusal_keeps_requests_queued_for_the_next_round() {
    let f = fixture(config(|_| {}));
    let a = f.request(&address(), ip(1)).await.unwrap();
    f.wallet.push(
        Err(WalletError::Rpc {
            code: -6,
            message: "Insufficient funds".into(),
        }),
        false,
    );
    let round = f.faucet.round().await;
    assert_eq!(round.failed.len(), 1);
    assert_eq!(f.state(a.id).await, "queued");
    assert!(
        f.faucet
            .last_error()
            .unwrap()
            .contains("Insufficient funds")
    );
    f.verified().await;

    f.wallet.push(Ok(&"22".repeat(32)), true);
    let round = f.faucet.round().await;
    assert_eq!(round.paid_batches.len(), 1);
    let sends = f.wallet.sends.lock().unwrap().clone();
    assert_eq!(sends.len(), 2);
    assert_ne!(
        sends[0].0, sends[1].0,
        "a retry is a new batch with a new tag"
    );
    assert_eq!(f.state(a.id).await, "paid");
    assert!(f.faucet.last_error().is_none());
    f.verified().await;
}

#[tokio::test]
async fn an_ambiguous_send_found_by_its_tag_is_paid_once() {
    let f = fixture(config(|_| {}));
    let a = f.request(&address(), ip(1)).await.unwrap();
    // The node executed it but the answer was lost.
    f.wallet
        .push(Err(WalletError::Ambiguous("timeout".into())), true);
    let round = f.faucet.round().await;
    assert_eq!(round.reconciled.len(), 1);
    assert_eq!(f.state(a.id).await, "paid");
    f.faucet.round().await;
    assert_eq!(f.wallet.sends(), 1, "never sent twice");
    assert_eq!(f.balance(crate::ledger::FAUCET_SENT).await, 10_000_000);
    f.verified().await;
}

#[tokio::test]
async fn an_ambiguous_send_not_found_waits_for_attention_and_is_never_resent() {
    let f = fixture(config(|_| {}));
    let a = f.request(&address(), ip(1)).await.unwrap();
    f.wallet.push(
        Err(WalletError::Ambiguous("connection reset".into())),
        false,
    );
    let round = f.faucet.round().await;
    assert_eq!(round.needs_attention.len(), 1);
    assert_eq!(f.state(a.id).await, "needs_attention");
    for _ in 0..3 {
        f.faucet.round().await;
    }
    assert_eq!(f.wallet.sends(), 1, "no automatic resend");
    assert_eq!(f.balance(crate::ledger::FAUCET_HELD).await, 10_000_000);
    f.verified().await;
    // The transaction shows up late: recorded paid, still sent once.
    let tag = f.wallet.sends.lock().unwrap()[0].0.clone();
    f.wallet.land(&tag, &"33".repeat(32));
    let round = f.faucet.round().await;
    assert_eq!(round.reconciled.len(), 1);
    assert_eq!(f.state(a.id).await, "paid");
    assert_eq!(f.wallet.sends(), 1);
    f.verified().await;
}

#[tokio::test]
async fn a_batch_left_sending_by_a_crash_is_reconciled_not_resent() {
    let f = fixture(config(|_| {}));
    let a = f.request(&address(), ip(1)).await.unwrap();
    let b = f.request(&address(), ip(2)).await.unwrap();
    // Intent committed, then the process died before the wallet answered.
    let ids = vec![a.id];
    let intent = f
        .store
        .write(move |ctx| db::open_batch(ctx, &ids, 2, false))
        .await
        .unwrap()
        .unwrap();
    f.wallet
        .land_paying(&intent.batch.tag, &"44".repeat(32), &intent.outputs);
    let ids = vec![b.id];
    f.store
        .write(move |ctx| db::open_batch(ctx, &ids, 2, false))
        .await
        .unwrap()
        .unwrap();
    f.verified().await;
    let round = f.faucet.round().await;
    assert_eq!(
        round.reconciled,
        vec![intent.batch.id],
        "found by tag: paid"
    );
    assert_eq!(
        round.needs_attention.len(),
        1,
        "not found: cannot prove it was never sent"
    );
    assert_eq!(f.state(a.id).await, "paid");
    assert_eq!(f.state(b.id).await, "needs_attention");
    assert_eq!(f.wallet.sends(), 0, "nothing was sent again");
    f.verified().await;
}

#[tokio::test]
async fn two_requests_to_one_address_share_one_output() {
    let f = fixture(config(|c| c.faucet.cooldown_s = 0));
    let a = address();
    f.request(&a, ip(1)).await.unwrap();
    f.request(&a, ip(2)).await.unwrap();
    f.wallet.push(Ok(&"55".repeat(32)), true);
    f.faucet.round().await;
    let sends = f.wallet.sends.lock().unwrap().clone();
    assert_eq!(
        sends[0].1,
        vec![Output {
            address: a,
            amount_sat: 20_000
        }]
    );
    f.verified().await;
}

#[tokio::test]
async fn an_admin_resolves_a_batch_in_attention_by_retry_or_cancel() {
    use pooldesk_proto::model::BatchResolution;
    let f = fixture(config(|_| {}));
    let attention_batch = |f: &Fixture| {
        let store = f.store.clone();
        async move {
            store
                .read(|c| {
                    c.query_row(
                        "SELECT id FROM faucet_batches WHERE state = 'needs_attention'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .await
                .unwrap()
        }
    };
    // Retry: nothing was sent, the request goes back to the queue.
    let a = f.request(&address(), ip(1)).await.unwrap();
    f.wallet
        .push(Err(WalletError::Ambiguous("reset".into())), false);
    f.faucet.round().await;
    let batch = attention_batch(&f).await;
    let message = f
        .faucet
        .resolve(
            crate::audit::Actor::Uid(1000),
            batch,
            BatchResolution::Retry,
        )
        .await
        .unwrap();
    assert!(message.contains("queue"), "{message}");
    assert_eq!(f.state(a.id).await, "queued");
    f.verified().await;
    // A resolved batch cannot be resolved again.
    assert!(matches!(
        f.faucet
            .resolve(
                crate::audit::Actor::Uid(1000),
                batch,
                BatchResolution::Failed
            )
            .await,
        Err(FaucetError::WrongState(_))
    ));
    // Failed: the request is cancelled and its hold returns to the budget.
    f.wallet
        .push(Err(WalletError::Ambiguous("reset".into())), false);
    f.faucet.round().await;
    let batch = attention_batch(&f).await;
    f.faucet
        .resolve(
            crate::audit::Actor::Uid(1000),
            batch,
            BatchResolution::Failed,
        )
        .await
        .unwrap();
    assert_eq!(f.state(a.id).await, "cancelled");
    assert_eq!(f.balance(crate::ledger::FAUCET_HELD).await, 0);
    assert_eq!(f.balance(crate::ledger::FAUCET_FUNDING).await, 0);
    assert_eq!(
        f.wallet.sends(),
        2,
        "each round sent once; nothing resent by itself"
    );
    f.verified().await;
}

#[tokio::test]
async fn retry_is_refused_while_the_wallet_shows_the_batch() {
    use pooldesk_proto::model::BatchResolution;
    let f = fixture(config(|_| {}));
    let a = f.request(&address(), ip(1)).await.unwrap();
    f.wallet
        .push(Err(WalletError::Ambiguous("reset".into())), false);
    f.faucet.round().await;
    let batch: i64 = f
        .store
        .read(|c| {
            c.query_row(
                "SELECT id FROM faucet_batches WHERE state = 'needs_attention'",
                [],
                |r| r.get(0),
            )
        })
        .await
        .unwrap();
    // The transaction appears in the wallet before the admin decides.
    let tag = f.wallet.sends.lock().unwrap()[0].0.clone();
    f.wallet.land(&tag, &"44".repeat(32));
    assert!(matches!(
        f.faucet
            .resolve(
                crate::audit::Actor::Uid(1000),
                batch,
                BatchResolution::Retry
            )
            .await,
        Err(FaucetError::WrongState(_))
    ));
    assert_eq!(f.state(a.id).await, "needs_attention");
}

/// A tag is not proof: a wallet transaction carrying the batch's tag but
/// paying other outputs (a second install on the same wallet, a restored
/// ledger reusing batch ids) never makes the batch paid.
#[tokio::test]
async fn a_tag_paying_other_outputs_is_not_the_batch_payment() {
    let f = fixture(config(|_| {}));
    let a = f.request(&address(), ip(1)).await.unwrap();
    f.wallet
        .push(Err(WalletError::Ambiguous("timeout".into())), false);
    let round = f.faucet.round().await;
    assert_eq!(round.needs_attention.len(), 1);
    let (tag, outputs) = f.wallet.sends.lock().unwrap()[0].clone();
    let mut other = outputs.clone();
    other[0].amount_sat += 1;
    f.wallet.land_paying(&tag, &"55".repeat(32), &other);
    let round = f.faucet.round().await;
    assert!(round.reconciled.is_empty(), "{round:?}");
    assert_eq!(f.state(a.id).await, "needs_attention");
    // One extra output is not "the same payment" either.
    let mut extra = outputs.clone();
    extra.push(Output {
        address: address(),
        amount_sat: 1,
    });
    f.wallet.land_paying(&tag, &"56".repeat(32), &extra);
    assert!(f.faucet.round().await.reconciled.is_empty());
    assert_eq!(f.state(a.id).await, "needs_attention");
    f.wallet.land_paying(&tag, &"57".repeat(32), &outputs);
    assert_eq!(f.faucet.round().await.reconciled.len(), 1);
    assert_eq!(f.state(a.id).await, "paid");
    f.verified().await;
}
