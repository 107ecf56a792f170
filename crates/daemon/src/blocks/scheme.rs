//! The payout scheme behind one small interface (DESIGN.md §6). Ingest
//! and batched shares ask it what a share is worth now; the block follower
//! asks it which work a block pays and how much the pool keeps.

use pooldesk_proto::model::{PayoutScheme, StatementShare};

use super::split::{self, Record};
use crate::config::AccountingConfig;

/// The scheme in force, from `[accounting]`.
#[derive(Debug, Clone)]
pub struct Scheme {
    pub kind: PayoutScheme,
    pub pplns_factor: u64,
    pub pplns_min_window_work: u64,
    pub pool_fee_bps: u32,
}

impl Scheme {
    pub fn from_config(config: &AccountingConfig) -> Scheme {
        Scheme {
            kind: config.scheme,
            pplns_factor: config.pplns_factor,
            pplns_min_window_work: config.pplns_min_window_work,
            pool_fee_bps: config.pool_fee_bps,
        }
    }

    /// msat credited per difficulty-1 share as it arrives: the configured
    /// rate under PPS, nothing under PPLNS and SOLO (they pay from blocks).
    pub fn per_share_rate_msat(&self, configured_msat: i64) -> i64 {
        match self.kind {
            PayoutScheme::Pps => configured_msat,
            PayoutScheme::Pplns | PayoutScheme::Solo => 0,
        }
    }

    /// The PPLNS window in share work: `factor × network difficulty`
    /// (rounded up), never below the configured minimum. Difficulty is a
    /// float in Bitcoin Core's answer; it sizes the window, it is not money.
    pub fn pplns_window_work(&self, network_difficulty: f64) -> u64 {
        let scaled = (network_difficulty.max(0.0) * self.pplns_factor as f64).ceil();
        let from_network = if scaled >= u64::MAX as f64 {
            u64::MAX
        } else {
            scaled as u64
        };
        from_network.max(self.pplns_min_window_work).max(1)
    }

    /// The shares a block pays and the window size asked for. PPS: none
    /// (shares were paid as they came). PPLNS: the window. SOLO: the
    /// finder alone (one share of work 1), or none when no finder is known.
    pub fn window(
        &self,
        network_difficulty: f64,
        finder: Option<&str>,
        newest_first: impl IntoIterator<Item = Record>,
    ) -> (u64, Vec<StatementShare>) {
        match self.kind {
            PayoutScheme::Pps => (0, Vec::new()),
            PayoutScheme::Pplns => {
                let size = self.pplns_window_work(network_difficulty);
                (size, split::window(newest_first, size))
            }
            PayoutScheme::Solo => match finder {
                Some(miner) => (
                    1,
                    vec![StatementShare {
                        id: 0,
                        miner_id: miner.to_string(),
                        work: 1,
                        source: None,
                    }],
                ),
                None => (1, Vec::new()),
            },
        }
    }

    /// The pool's fee on a block: the configured basis points, or the
    /// whole reward when nobody is paid from it (PPS, or an empty window).
    pub fn fee_msat(&self, reward_msat: i64, window_is_empty: bool) -> i64 {
        if window_is_empty {
            reward_msat
        } else {
            split::pool_fee_msat(reward_msat, self.pool_fee_bps)
        }
    }
}
