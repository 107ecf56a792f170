//! The daemon's shared state behind one cheap `Clone` handle. Handlers and
//! background tasks get an `App` and call its services; nothing else is
//! global.

use std::ops::Deref;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::events::EventBus;
use crate::hashrate::HashrateTracker;
use crate::ingest::{CreditFeed, Ingest};
use crate::metrics::Metrics;
use crate::miners::ActivityCache;
use crate::miners::service::MinerService;
use crate::payouts::Payouts;
use crate::secrets::Secrets;
use crate::snapshot::SnapshotService;
use crate::store::{Store, StoreOptions};
use crate::wallet::Wallet;

#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    pub config: Config,
    pub secrets: Arc<Secrets>,
    pub store: Store,
    pub bus: EventBus,
    pub metrics: Metrics,
    pub tracker: HashrateTracker,
    pub auth: Arc<Authenticator>,
    pub ingest: Ingest,
    /// Batched shares from pool software (`POST /api/v2/shares`).
    pub shares: crate::shares::Shares,
    pub miners: MinerService,
    pub snapshot: SnapshotService,
    /// The payout wallet (Bitcoin Core, or the simulated wallet in demo).
    pub wallet: Wallet,
    pub payouts: Payouts,
    pub faucet: crate::faucet::Faucet,
    /// Cancelled when the daemon starts shutting down: streams end,
    /// background loops stop, listeners stop accepting.
    pub shutdown: CancellationToken,
    pub started_at: i64,
}

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// Opens the ledger and builds every service. Must run inside the
    /// tokio runtime (the credit feed spawns its task).
    pub fn build(config: Config, secrets: Secrets) -> anyhow::Result<App> {
        let metrics = Metrics::new();
        let store = Store::open(
            &config.ledger_path(),
            StoreOptions {
                read_connections: config.store.read_connections,
                write_queue: config.store.write_queue,
                max_batch: config.store.max_batch,
                durability: config.store.durability,
            },
            metrics.store.clone(),
        )?;
        let now = crate::clock::now_s();
        let (tracker, activity) = store.read_blocking(|conn| {
            Ok((
                HashrateTracker::load(conn, now)?,
                ActivityCache::load(conn)?,
            ))
        })?;
        // Sequence numbers start from the clock so ids from before a restart
        // are always older than new ones (a resuming client then gets a
        // clean "too old" instead of silently missing events).
        let bus = EventBus::new(
            config.http.sse_replay_events.max(1024),
            config.http.sse_replay_events,
            (crate::clock::now_ms() as u64) * 1000,
        );
        let secrets = Arc::new(secrets);
        let auth = Arc::new(Authenticator::new(&config, store.clone(), secrets.clone()));
        let feed = CreditFeed::start(bus.clone(), 65536, metrics.events_lagged.clone());
        let shares = crate::shares::Shares::new(
            &config,
            store.clone(),
            secrets.clone(),
            tracker.clone(),
            activity.clone(),
            feed.clone(),
            metrics.clone(),
        );
        let ingest = Ingest::new(
            &config,
            store.clone(),
            secrets.clone(),
            auth.clone(),
            tracker.clone(),
            activity.clone(),
            feed,
            metrics.clone(),
        );
        let miners = MinerService::new(
            &config,
            store.clone(),
            secrets.clone(),
            tracker.clone(),
            activity,
            bus.clone(),
        );
        let snapshot = SnapshotService::new(&config);
        let wallet = open_wallet(&config)?;
        let payouts = Payouts::new(&config, store.clone(), wallet.clone(), bus.clone());
        let faucet = crate::faucet::Faucet::new(
            &config,
            &secrets,
            store.clone(),
            wallet.clone(),
            bus.clone(),
            metrics.clone(),
        );
        Ok(App(Arc::new(AppInner {
            config,
            secrets,
            store,
            bus,
            metrics,
            tracker,
            auth,
            ingest,
            shares,
            miners,
            snapshot,
            wallet,
            payouts,
            faucet,
            shutdown: CancellationToken::new(),
            started_at: now,
        })))
    }

    pub fn simulated(&self) -> bool {
        self.config.demo.enabled
    }
}

/// The configured wallet backend. The simulated one is refused on mainnet
/// by config validation.
fn open_wallet(config: &Config) -> anyhow::Result<Wallet> {
    use crate::config::WalletBackendKind;
    let network = crate::wallet::to_bitcoin_network(config.network);
    Ok(match config.wallet_backend {
        WalletBackendKind::Simulated => {
            tracing::warn!("using the SIMULATED wallet: payouts move fake coins only");
            std::sync::Arc::new(crate::wallet::simulated::SimulatedWallet::open(
                &config.data_dir,
                network,
            )?)
        }
        WalletBackendKind::Bitcoind => {
            std::sync::Arc::new(crate::wallet::bitcoind::BitcoindWallet::new(
                &config.bitcoind,
                config.network,
                std::time::Duration::from_secs(config.payouts.rpc_timeout_s),
            )?)
        }
    })
}
