//! systemd integration: readiness (`Type=notify`), stopping, and watchdog
//! pings. All are no-ops when not started by systemd (`NOTIFY_SOCKET`
//! unset).

use std::time::Duration;

use crate::app::App;

/// `READY=1`: sent only after the ledger is open, the HTTP listener and
/// the control socket are bound.
pub fn ready() {
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::debug!(error = %e, "sd_notify READY failed");
    }
}

pub fn stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// Pings the watchdog at half its interval from a task on the runtime, and
/// only while the per-second snapshot keeps being rebuilt: a wedged runtime
/// or a ledger that no longer answers reads stops the pings and systemd
/// restarts the daemon.
pub fn spawn_watchdog(app: &App) {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec / 2);
    let app = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = app.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let age = crate::clock::now_s() - app.snapshot.latest().at;
            if age <= (usec / 1_000_000).max(5) as i64 {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            } else {
                tracing::error!(
                    age_s = age,
                    "snapshot is stale; withholding the watchdog ping"
                );
            }
        }
    });
}
