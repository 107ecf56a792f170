//! Support code for the end-to-end tests: see the module docs.
pub mod bitcoind;
pub mod browser;
pub mod ckpool;
pub mod daemon;
pub mod faultproxy;
pub mod payouts;
pub mod skip;
pub mod standin;
