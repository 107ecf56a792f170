//! Background tasks started with the daemon (besides the snapshot and
//! maintenance loops): payout and faucet workers, and demo workers.

use tokio::task::JoinSet;

use crate::app::App;

pub fn spawn_all(app: &App, tasks: &mut JoinSet<()>) {
    tasks.spawn(crate::payouts::run(app.clone()));
    tasks.spawn(crate::faucet::worker::run(app.clone()));
    tasks.spawn(crate::blocks::run(app.clone()));
    if app.config.demo.enabled {
        tasks.spawn(crate::demo::run(app.clone()));
    }
}
