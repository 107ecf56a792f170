//! Demo mode (`pooldeskd --demo`): simulated workers report shares for a
//! handful of miners every second through the daemon's own HTTP port and
//! report secret — the same signed path, the same ledger path, as a real
//! pool. Everything it does is labelled simulated.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::tools::{Simulation, SimulationStats, simulate};

pub async fn run(app: App) {
    let listen = app.config.http.listen;
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        listen.ip().to_string()
    };
    let url = format!("http://{host}:{}", listen.port());
    let miners = app.config.demo.miners.max(1);
    let workers = app.config.demo.workers_per_miner.max(1);
    tracing::warn!(miners, workers, url = %url, "demo: simulated workers start reporting");
    // Let the listener come up first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sim = Simulation {
        url,
        miners,
        workers_per_miner: workers,
        rate_per_s: f64::from(miners * workers),
        miner_prefix: "demo-miner-".into(),
        duration: None,
        concurrency: 8,
    };
    let stats = Arc::new(SimulationStats::default());
    if let Err(e) = simulate(
        sim,
        app.secrets.report_secret.expose().to_vec(),
        app.shutdown.clone(),
        stats,
    )
    .await
    {
        tracing::error!(error = %e, "demo workers stopped");
    }
}
