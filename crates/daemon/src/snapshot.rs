//! The pool snapshot: built once a second, kept as the latest copy for
//! `snapshot` requests, and published on the bus as a `pool` event.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use pooldesk_proto::model::{Snapshot, Warning};

use crate::app::App;
use crate::config::Config;
use crate::events::BusEvent;
use crate::metrics::{NameLabel, StateLabel, WindowLabel};

pub struct SnapshotService {
    latest: RwLock<Arc<Snapshot>>,
}

impl SnapshotService {
    pub fn new(config: &Config) -> SnapshotService {
        SnapshotService {
            latest: RwLock::new(Arc::new(Snapshot {
                server: server_name(),
                simulated: config.demo.enabled,
                network: config.network.as_str().into(),
                ..Snapshot::default()
            })),
        }
    }

    pub fn latest(&self) -> Arc<Snapshot> {
        self.latest.read().expect("snapshot lock").clone()
    }

    fn set(&self, snapshot: Arc<Snapshot>) {
        *self.latest.write().expect("snapshot lock") = snapshot;
    }
}

pub fn server_name() -> String {
    format!("pooldeskd {}", env!("CARGO_PKG_VERSION"))
}

/// Builds a fresh snapshot (one small read of the ledger).
pub async fn build(app: &App) -> anyhow::Result<Snapshot> {
    let now = crate::clock::now_s();
    let (ledger, miners_total) = app
        .store
        .read(|conn| Ok((crate::ledger::totals(conn)?, crate::miners::count(conn)?)))
        .await?;
    let (miners_active, workers_active) = app.tracker.active(now);
    let mut warnings = Vec::new();
    if app.simulated() {
        warnings.push(Warning {
            code: "simulated".into(),
            message: "demo mode: simulated wallet and simulated workers, no real money".into(),
        });
    }
    if app.config.ingest.allow_unprotected_reports {
        warnings.push(Warning {
            code: "unprotected_reports".into(),
            message: "reports without event_id/ts are accepted (ingest.allow_unprotected_reports): replays are possible".into(),
        });
    }
    if app.store.is_faulted() {
        warnings.push(Warning {
            code: "ledger_unavailable".into(),
            message:
                "the last ledger commit failed (disk full or I/O error): reports are being refused"
                    .into(),
        });
    }
    let mut snapshot = Snapshot {
        at: now,
        server: server_name(),
        simulated: app.simulated(),
        network: app.config.network.as_str().into(),
        payout_mode: match app.config.payouts.mode {
            crate::config::PayoutMode::Hot => "hot".into(),
            crate::config::PayoutMode::Cold => "cold".into(),
        },
        hashrate: app.tracker.pool(now),
        shares_per_s: app.tracker.shares_per_s(now),
        miners_total,
        miners_active,
        workers_active,
        ledger,
        hashrate_history: app.tracker.pool_history(now),
        warnings,
        ..Snapshot::default()
    };
    crate::payouts::contribute_to_snapshot(app, &mut snapshot).await;
    crate::shares::contribute_to_snapshot(app, &mut snapshot).await;
    if let Ok(n) = app.store.read(crate::faucet::db::attention_count).await
        && n > 0
    {
        snapshot.warnings.push(Warning {
            code: "faucet_needs_attention".into(),
            message: format!("{n} faucet batch(es) need an admin decision"),
        });
    }
    if let Some(error) = app.faucet.last_error() {
        snapshot.warnings.push(Warning {
            code: "faucet_failing".into(),
            message: format!("faucet payouts are failing: {error}"),
        });
    }
    Ok(snapshot)
}

/// Every second: rebuild, publish, update gauges. Stops on shutdown.
pub async fn run(app: App) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match build(&app).await {
            Ok(snapshot) => {
                record_gauges(&app, &snapshot);
                let snapshot = Arc::new(snapshot);
                app.snapshot.set(snapshot.clone());
                app.bus.publish(BusEvent::Pool(snapshot));
            }
            Err(e) => tracing::warn!(error = %e, "could not build the pool snapshot"),
        }
        app.tracker.prune(crate::clock::now_s());
    }
}

fn record_gauges(app: &App, s: &Snapshot) {
    let m = &app.metrics;
    for (name, value) in [
        ("owed", s.ledger.owed_msat),
        ("held", s.ledger.held_msat),
        ("paid", s.ledger.paid_msat),
        ("fees", s.ledger.fees_msat),
        ("credited", s.ledger.credited_msat),
        ("faucet_held", s.ledger.faucet_held_msat),
        ("faucet_sent", s.ledger.faucet_sent_msat),
    ] {
        m.ledger_msat.get_or_create(&NameLabel { name }).set(value);
    }
    for (window, value) in [
        ("1m", s.hashrate.h1m),
        ("10m", s.hashrate.h10m),
        ("1h", s.hashrate.h1h),
    ] {
        m.hashrate.get_or_create(&WindowLabel { window }).set(value);
    }
    m.miners
        .get_or_create(&StateLabel { state: "total" })
        .set(s.miners_total as i64);
    m.miners
        .get_or_create(&StateLabel { state: "active" })
        .set(s.miners_active as i64);
    let w = &s.withdrawals;
    for (state, value) in [
        ("requested", w.requested),
        ("approved", w.approved),
        ("batched", w.batched),
        ("broadcast", w.broadcast),
        ("confirmed", w.confirmed),
        ("rejected", w.rejected),
        ("failed", w.failed),
        ("needs_attention", w.needs_attention),
    ] {
        m.withdrawals
            .get_or_create(&StateLabel { state })
            .set(value as i64);
    }
    if let Some(spendable) = s.wallet.spendable_sat {
        m.wallet_spendable_sat.set(spendable);
    }
    m.wallet_connected.set(i64::from(s.wallet.connected));
}
