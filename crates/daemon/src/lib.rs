//! pooldeskd: the daemon that owns a mining pool's money.
//!
//! See ARCHITECTURE.md at the repository root for the map of this crate.

pub mod clock;
pub mod config;
pub mod events;
pub mod hashrate;
pub mod ledger;
pub mod metrics;
pub mod secrets;
pub mod store;
