//! pooldeskd: the daemon that owns a mining pool's money.
//!
//! See ARCHITECTURE.md at the repository root for the map of this crate.

pub mod app;
pub mod audit;
pub mod auth;
pub mod background;
pub mod blocks;
pub mod bridge;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod events;
pub mod faucet;
pub mod hashrate;
pub mod healthcheck;
pub mod history;
pub mod http;
pub mod ingest;
pub mod ledger;
pub mod maintenance;
pub mod metrics;
pub mod miners;
pub mod payouts;
pub mod reconcile;
pub mod replay;
pub mod secrets;
pub mod shares;
pub mod snapshot;
pub mod store;
pub mod systemd;
pub mod tools;
pub mod verify;
pub mod views;
pub mod wallet;
