//! Test-only crash points. With `POOLDESK_TEST_CRASH_AT=<step>` in its
//! environment the daemon aborts (no shutdown path, like `kill -9`) when a
//! batch reaches that step, so the end-to-end tests can kill it at every
//! step of a payout deterministically instead of with sleeps. Compiled in
//! always (the tests drive the shipped binary); never set it in production.
//!
//! Steps, in the order a batch passes them:
//! - hot: `hot_intent` (batch committed as `sending`), `hot_signed`
//!   (transaction funded and signed, not committed), `hot_committed`
//!   (txid and bytes durable, inputs not yet locked), `hot_locked`
//!   (inputs locked, not broadcast), `hot_broadcast` (the node accepted it,
//!   not recorded), `hot_recorded` (recorded as broadcast).
//! - cold: `cold_intent` (`psbt_pending`), `cold_funded` (the wallet built
//!   the PSBT, not recorded), `cold_created` (`psbt_created` recorded),
//!   `cold_final` (signed transaction committed as `broadcasting`),
//!   `cold_broadcast` (accepted by the node, not recorded).
//! - faucet: `faucet_signed` (funded and signed, not committed),
//!   `faucet_committed` (txid and bytes durable, not broadcast),
//!   `faucet_broadcast` (accepted by the node, not recorded).

/// The environment variable naming the step to abort at.
pub const CRASH_ENV: &str = "POOLDESK_TEST_CRASH_AT";

/// Every step a test may name, so a typo fails loudly instead of never
/// crashing.
pub const STEPS: &[&str] = &[
    "hot_intent",
    "hot_signed",
    "hot_committed",
    "hot_locked",
    "hot_broadcast",
    "hot_recorded",
    "cold_intent",
    "cold_funded",
    "cold_created",
    "cold_final",
    "cold_broadcast",
    "faucet_signed",
    "faucet_committed",
    "faucet_broadcast",
];

/// Aborts the process if the test hook names `step`.
pub(crate) fn point(step: &'static str) {
    debug_assert!(STEPS.contains(&step), "unknown crash step {step}");
    if let Ok(wanted) = std::env::var(CRASH_ENV)
        && wanted == step
    {
        eprintln!("{CRASH_ENV}={step}: aborting here (test hook)");
        std::process::abort();
    }
}
