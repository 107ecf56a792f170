//! Start-up, the running daemon, and orderly shutdown.
//!
//! Start: data dir → secrets → ledger (migrations) → services → HTTP
//! listener → control socket → background tasks → `READY=1` to systemd.
//! Stop (SIGTERM/SIGINT): stop accepting, let in-flight requests finish,
//! end streams, stop background loops, then close the store — which commits
//! everything already queued before the process exits.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::app::App;
use crate::config::Config;
use crate::secrets::Secrets;

/// How long in-flight HTTP requests get once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

pub async fn run(config: Config, env: Vec<(String, String)>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!("cannot create data dir {}: {e}", config.data_dir.display())
    })?;
    // The ledger and secrets live here: nobody else needs to read them.
    std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))?;
    if config.demo.enabled {
        tracing::warn!("DEMO MODE: simulated wallet and simulated workers — no real money moves");
    }
    let (secrets, origins) = Secrets::load(&config, &env)?;
    for (name, origin) in &origins {
        tracing::info!(secret = name, source = %origin, "secret loaded");
    }
    let http_addr = config.http.listen;
    let socket_path = config.socket_path();
    let app = App::build(config, secrets)?;

    let listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {http_addr}: {e}"))?;
    let policy = crate::control::PeerPolicy::from_config(&app)?;
    let control_listener = crate::control::bind(&socket_path, policy.gid)?;
    tracing::info!(http = %listener.local_addr()?, control = %socket_path.display(), ledger = %app.config.ledger_path().display(), "pooldeskd listening");

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(crate::snapshot::run(app.clone()));
    tasks.spawn(crate::maintenance::run(app.clone()));
    crate::background::spawn_all(&app, &mut tasks);
    let http = tokio::spawn(crate::http::serve(app.clone(), listener, DRAIN_TIMEOUT));
    let control = tokio::spawn(crate::control::serve(
        app.clone(),
        control_listener,
        socket_path,
    ));

    crate::systemd::ready();
    crate::systemd::spawn_watchdog(&app);

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
        _ = app.shutdown.cancelled() => tracing::info!("shutdown requested"),
    }
    crate::systemd::stopping();
    app.shutdown.cancel();
    match http.await {
        Ok(Err(e)) => tracing::error!(error = %e, "HTTP server error"),
        Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
        Ok(Ok(())) => {}
    }
    let _ = control.await;
    // Background loops see the token; give them a moment, then stop them.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    app.store.close().await;
    tracing::info!("pooldeskd stopped; every acknowledged write is committed");
    Ok(())
}
