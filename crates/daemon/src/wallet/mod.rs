//! The payout wallet: one interface, two implementations.
//!
//! - [`bitcoind::BitcoindWallet`]: Bitcoin Core over JSON-RPC (cookie or
//!   user/password, `/wallet/<name>`), for real money.
//! - [`simulated::SimulatedWallet`]: an in-process stand-in with fake coins,
//!   used by demo mode and nothing else. Its name says so everywhere it
//!   appears (logs, snapshot, TUI).
//!
//! Errors are classified for the payout state machine: a **definite**
//! failure proves the call did nothing (connection refused, or one of the
//! JSON-RPC codes in [`DEFINITE_RPC_CODES`]); anything else is
//! **ambiguous** (timeout after sending, connection lost while waiting, any
//! other error answer): the call may or may not have spent, and the caller
//! must reconcile before anything is retried.

pub mod bitcoind;
pub mod psbt;
pub mod simulated;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// One payment output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    pub address: String,
    pub amount_sat: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// The node answered with an error; whether the call happened depends
    /// on the code ([`WalletError::is_definite`]).
    #[error("node refused: {message} (code {code})")]
    Rpc { code: i64, message: String },
    /// The request never reached the node (connection refused, DNS, bad
    /// credentials): the call did not happen.
    #[error("node unreachable: {0}")]
    Unreachable(String),
    /// The request may have been executed (timeout or connection lost after
    /// sending): reconcile before retrying anything that spends.
    #[error("no answer from the node after sending the request: {0}")]
    Ambiguous(String),
    /// The answer could not be understood.
    #[error("unexpected answer from the node: {0}")]
    Protocol(String),
}

/// The JSON-RPC error codes that prove a spending call (`sendmany`,
/// `walletcreatefundedpsbt`, `sendrawtransaction`) did nothing, read against
/// Bitcoin Core's wallet and RPC code: each is raised before the wallet
/// commits a transaction or the mempool accepts one. Every other code is
/// ambiguous: `-1` (`RPC_MISC_ERROR`) is what Core answers when
/// `CommitTransaction` fails after the transaction was written to the
/// wallet ("Wallet db error, transaction commit failed"), and a transaction
/// in the wallet can still be broadcast; `-4` (`RPC_WALLET_ERROR`) and
/// `-20` (`RPC_DATABASE_ERROR`) cover wallet failures at any point.
pub const DEFINITE_RPC_CODES: &[(i64, &str)] = &[
    (-32700, "parse error: the request was not read"),
    (-32600, "invalid request"),
    (-32601, "method not found"),
    (-32602, "invalid parameters"),
    (
        -3,
        "RPC_TYPE_ERROR: a parameter of the wrong type or an invalid amount",
    ),
    (-5, "RPC_INVALID_ADDRESS_OR_KEY: an invalid address"),
    (
        -6,
        "RPC_WALLET_INSUFFICIENT_FUNDS: CreateTransaction failed (every reason since v24), nothing committed",
    ),
    (
        -8,
        "RPC_INVALID_PARAMETER: parameters rejected before anything ran",
    ),
    (-13, "RPC_WALLET_UNLOCK_NEEDED: the wallet is locked"),
    (-18, "RPC_WALLET_NOT_FOUND: the wallet is not loaded"),
    (-19, "RPC_WALLET_NOT_SPECIFIED"),
    (
        -22,
        "RPC_DESERIALIZATION_ERROR: the transaction or PSBT did not decode",
    ),
    (
        -25,
        "RPC_VERIFY_ERROR: sendrawtransaction, not accepted (inputs missing or spent)",
    ),
    (
        -26,
        "RPC_VERIFY_REJECTED: sendrawtransaction, rejected by mempool policy",
    ),
    (
        -28,
        "RPC_IN_WARMUP: the node is still starting and ran nothing",
    ),
];

/// Whether a JSON-RPC error code from a spending call proves nothing happened.
pub fn is_definite_rpc_code(code: i64) -> bool {
    DEFINITE_RPC_CODES.iter().any(|(c, _)| *c == code)
}

impl WalletError {
    /// True when the failed spending call provably changed nothing: the node
    /// was never reached, or it answered one of [`DEFINITE_RPC_CODES`].
    pub fn is_definite(&self) -> bool {
        match self {
            WalletError::Rpc { code, .. } => is_definite_rpc_code(*code),
            WalletError::Unreachable(_) => true,
            WalletError::Ambiguous(_) | WalletError::Protocol(_) => false,
        }
    }

    /// Bitcoin Core's "Insufficient funds".
    pub fn is_insufficient_funds(&self) -> bool {
        matches!(self, WalletError::Rpc { code: -6, .. })
    }
}

/// Node and wallet health for the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub chain: String,
    pub blocks: u64,
    /// Confirmed (trusted) spendable balance.
    pub spendable_sat: i64,
    /// Unconfirmed balance of our own (change) outputs.
    pub pending_sat: i64,
}

/// A wallet transaction as the payout reconciler needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletTx {
    pub txid: String,
    /// Negative in Core's convention: what the wallet paid (fee included).
    pub fee_sat: Option<i64>,
    /// 0 in the mempool, n when mined, negative when a conflicting
    /// transaction was mined.
    pub confirmations: i64,
    pub comment: Option<String>,
    pub replaced_by_txid: Option<String>,
    pub replaces_txid: Option<String>,
    pub wallet_conflicts: Vec<String>,
    /// Whether the node still has it in the mempool or a block. `false`
    /// for a transaction the wallet knows but the mempool dropped.
    pub in_mempool_or_chain: bool,
    pub abandoned: bool,
    /// Outputs paid to others: `(address, sat)`.
    pub sends: Vec<Output>,
    pub hex: Option<String>,
}

impl WalletTx {
    /// Whether this transaction pays exactly `outputs` to others: the same
    /// `(address, sat)` pairs, none missing and none extra (the wallet's
    /// change is its own and never among `sends`). "Pays at least" would let
    /// an unrelated transaction that happens to include one of our outputs
    /// count as a batch's payment.
    pub fn pays_exactly(&self, outputs: &[Output]) -> bool {
        let key = |o: &Output| (o.address.clone(), o.amount_sat);
        let mut paid: Vec<_> = self.sends.iter().map(key).collect();
        let mut wanted: Vec<_> = outputs.iter().map(key).collect();
        paid.sort();
        wanted.sort();
        paid == wanted
    }
}

/// `Ok` only when `txid` can never confirm: the wallet sees a conflicting
/// transaction with at least `depth` confirmations (Core's negative
/// `confirmations`). Anything else (in the mempool, dropped but still in
/// the wallet, which Core rebroadcasts; unknown to the wallet; node
/// unreachable) is the reason paying again could pay twice.
pub async fn provably_dead(
    wallet: &dyn WalletBackend,
    txid: &str,
    depth: i64,
) -> Result<(), String> {
    let refuse = |why: String| {
        Err(format!(
            "transaction {txid} {why}; Retry/Failed need a conflicting spend of its inputs with {depth} confirmation(s)"
        ))
    };
    match wallet.transaction(txid).await {
        Ok(Some(tx)) if tx.confirmations <= -depth => Ok(()),
        Ok(Some(tx)) if tx.confirmations < 0 => refuse(format!(
            "conflicts with a transaction only {} deep (of {:?})",
            -tx.confirmations, tx.wallet_conflicts
        )),
        Ok(Some(tx)) if tx.confirmations > 0 => {
            refuse(format!("is confirmed ({} confirmations)", tx.confirmations))
        }
        Ok(Some(tx)) if tx.in_mempool_or_chain => refuse("is in the mempool".into()),
        Ok(Some(_)) => refuse(
            "is not in the mempool but the wallet still holds it and can rebroadcast it (the daemon does)".into(),
        ),
        Ok(None) => {
            refuse("is unknown to the wallet, so nothing proves it cannot still be broadcast".into())
        }
        Err(e) => refuse(format!("cannot be checked now ({e})")),
    }
}

/// A coinbase output paying this wallet, as `listsinceblock` reports it
/// (outputs of one coinbase summed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coinbase {
    pub txid: String,
    /// Absent for a coinbase whose block is no longer in the best chain.
    pub block_hash: Option<String>,
    pub height: Option<i64>,
    /// Core's depth: n in the best chain, 0 or negative off it.
    pub confirmations: i64,
    /// `orphan` in Core's categories: not (or no longer) in the best chain.
    pub orphan: bool,
    /// What the coinbase pays this wallet (all its outputs to us).
    pub amount_sat: i64,
}

/// A funded, unsigned PSBT from the wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundedPsbt {
    pub psbt_base64: String,
    pub fee_sat: i64,
    /// Index of the change output, if any.
    pub change_index: Option<u32>,
}

/// A transaction funded and signed by the wallet but not broadcast: what a
/// hot batch commits before anything leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    pub txid: String,
    pub hex: String,
    pub fee_sat: i64,
    /// The outpoints it spends, `txid:vout`.
    pub inputs: Vec<String>,
}

/// The result of `testmempoolaccept` for one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolAccept {
    pub allowed: bool,
    pub reject_reason: Option<String>,
}

/// The payout wallet.
pub trait WalletBackend: Send + Sync {
    /// `bitcoind` or `simulated`.
    fn kind(&self) -> &'static str;

    fn status(&self) -> BoxFuture<'_, Result<NodeStatus, WalletError>>;

    /// Fee estimate in sat/vB for confirmation within a few blocks; `None`
    /// when the node has none (regtest).
    fn estimate_fee_rate(&self) -> BoxFuture<'_, Result<Option<u64>, WalletError>>;

    fn new_address(&self) -> BoxFuture<'_, Result<String, WalletError>>;

    /// Whether the wallet owns the address (change, the faucet's own).
    fn is_mine<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<bool, WalletError>>;

    /// The amounts (sat) of the wallet's confirmed coins that a new
    /// transaction may spend (safe, not locked), or `None` for a backend
    /// that never spends unconfirmed outputs. Payouts wait rather than
    /// chain a batch on unconfirmed change.
    fn confirmed_coins(&self) -> BoxFuture<'_, Result<Option<Vec<i64>>, WalletError>> {
        Box::pin(async { Ok(None) })
    }

    /// Pays all outputs in one transaction (`sendmany`), with `tag` stored
    /// as the wallet comment so the transaction can be found again, at an
    /// explicit fee rate. Never call twice for one batch without
    /// reconciling first.
    fn send_many<'a>(
        &'a self,
        outputs: &'a [Output],
        tag: &'a str,
        fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<String, WalletError>>;

    /// Funds and signs a transaction paying `outputs` at an explicit fee
    /// rate from confirmed coins, without broadcasting it
    /// (`walletcreatefundedpsbt` → `walletprocesspsbt` → `finalizepsbt`).
    /// Nothing leaves the node and no coin stays locked: the caller commits
    /// the transaction, then locks its inputs ([`WalletBackend::lock`]) and
    /// broadcasts. `Ok(None)` for a backend that cannot (the simulated
    /// wallet pays with [`WalletBackend::send_many`]).
    fn fund_and_sign<'a>(
        &'a self,
        _outputs: &'a [Output],
        _fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<Option<SignedTx>, WalletError>> {
        Box::pin(async { Ok(None) })
    }

    /// Locks outpoints (`txid:vout`) in the wallet database, so they
    /// stay reserved across node restarts (`lockunspent false … true`).
    fn lock<'a>(&'a self, _outpoints: &'a [String]) -> BoxFuture<'a, Result<(), WalletError>> {
        Box::pin(async { Ok(()) })
    }

    /// Every coinbase paying this wallet (categories `generate`,
    /// `immature`, `orphan`), or `None` for a backend without blocks.
    fn coinbases(&self) -> BoxFuture<'_, Result<Option<Vec<Coinbase>>, WalletError>> {
        Box::pin(async { Ok(None) })
    }

    /// The node's current network difficulty (sizes the PPLNS window; not
    /// money), or `None` for a backend without a chain.
    fn network_difficulty(&self) -> BoxFuture<'_, Result<Option<f64>, WalletError>> {
        Box::pin(async { Ok(None) })
    }

    /// Wallet transactions whose comment is exactly `tag`.
    fn find_by_tag<'a>(&'a self, tag: &'a str)
    -> BoxFuture<'a, Result<Vec<WalletTx>, WalletError>>;

    /// A wallet transaction by id; `None` when the wallet does not know it.
    fn transaction<'a>(
        &'a self,
        txid: &'a str,
    ) -> BoxFuture<'a, Result<Option<WalletTx>, WalletError>>;

    /// Builds an unsigned PSBT paying the outputs, funded by the wallet
    /// (`walletcreatefundedpsbt`); the caller locks its inputs once the
    /// PSBT is recorded ([`WalletBackend::lock`]).
    fn create_psbt<'a>(
        &'a self,
        outputs: &'a [Output],
        fee_rate_sat_vb: u64,
    ) -> BoxFuture<'a, Result<FundedPsbt, WalletError>>;

    /// Releases inputs locked for a PSBT that will not be used.
    fn unlock<'a>(&'a self, outpoints: &'a [String]) -> BoxFuture<'a, Result<(), WalletError>>;

    /// Finalizes a signed PSBT into a raw transaction (`finalizepsbt`):
    /// `Ok(None)` when it is not completely signed.
    fn finalize_psbt<'a>(
        &'a self,
        psbt_base64: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, WalletError>>;

    fn test_mempool_accept<'a>(
        &'a self,
        tx_hex: &'a str,
    ) -> BoxFuture<'a, Result<MempoolAccept, WalletError>>;

    /// Broadcasts a raw transaction; broadcasting the same one again answers
    /// the same txid.
    fn broadcast<'a>(&'a self, tx_hex: &'a str) -> BoxFuture<'a, Result<String, WalletError>>;
}

pub type Wallet = Arc<dyn WalletBackend>;

/// Parses an address for the configured network with the `bitcoin` crate.
pub fn parse_address(
    address: &str,
    network: crate::config::Network,
) -> Result<bitcoin::Address, String> {
    let unchecked: bitcoin::Address<bitcoin::address::NetworkUnchecked> = address
        .trim()
        .parse()
        .map_err(|_| format!("{address:?} is not a valid Bitcoin address"))?;
    let checked = unchecked
        .require_network(to_bitcoin_network(network))
        .map_err(|_| format!("{address:?} is not an address for {}", network.as_str()))?;
    // Only the types a wallet can spend from and relays without surprise.
    // Future witness versions (`bc1z…`) parse but are anyone-can-spend
    // until a soft fork gives them meaning; pay-to-anchor is anyone-can-
    // spend by design. Paying either would hand the money to whoever
    // takes it first.
    use bitcoin::AddressType;
    match checked.address_type() {
        Some(
            AddressType::P2pkh
            | AddressType::P2sh
            | AddressType::P2wpkh
            | AddressType::P2wsh
            | AddressType::P2tr,
        ) => Ok(checked),
        _ => Err(format!(
            "{address:?} is not a payable address type (pooldesk pays P2PKH, P2SH, P2WPKH, P2WSH and P2TR)"
        )),
    }
}

pub fn to_bitcoin_network(network: crate::config::Network) -> bitcoin::Network {
    use crate::config::Network;
    match network {
        Network::Regtest => bitcoin::Network::Regtest,
        Network::Signet => bitcoin::Network::Signet,
        Network::Testnet => bitcoin::Network::Testnet,
        Network::Testnet4 => bitcoin::Network::Testnet4,
        Network::Mainnet => bitcoin::Network::Bitcoin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Network;

    #[test]
    fn unknown_witness_versions_and_anchors_are_refused() {
        // Witness v2, a 32-byte program (bech32m), valid syntax on regtest.
        let v2 = bitcoin::Address::from_witness_program(
            bitcoin::WitnessProgram::new(bitcoin::WitnessVersion::V2, &[7u8; 32]).unwrap(),
            bitcoin::KnownHrp::Regtest,
        )
        .to_string();
        assert!(v2.starts_with("bcrt1z"), "{v2}");
        let err = parse_address(&v2, Network::Regtest).unwrap_err();
        assert!(err.contains("not a payable address type"), "{err}");
        // Taproot (v1, 32 bytes) is payable.
        let tr = bitcoin::Address::from_witness_program(
            bitcoin::WitnessProgram::new(bitcoin::WitnessVersion::V1, &[7u8; 32]).unwrap(),
            bitcoin::KnownHrp::Regtest,
        )
        .to_string();
        assert!(parse_address(&tr, Network::Regtest).is_ok());
        // Pay-to-anchor (v1, the 2-byte program 4e73) is anyone-can-spend.
        let anchor = bitcoin::Address::from_witness_program(
            bitcoin::WitnessProgram::new(bitcoin::WitnessVersion::V1, &[0x4e, 0x73]).unwrap(),
            bitcoin::KnownHrp::Regtest,
        )
        .to_string();
        assert!(parse_address(&anchor, Network::Regtest).is_err());
    }

    #[test]
    fn only_the_documented_codes_are_definite() {
        let rpc = |code| WalletError::Rpc {
            code,
            message: String::new(),
        };
        for code in [-6, -5, -3, -8, -13, -18, -25, -26, -28, -32601] {
            assert!(rpc(code).is_definite(), "{code}");
        }
        // Core's "Wallet db error, transaction commit failed" is -1: the
        // transaction may be in the wallet. Wallet and database errors, and
        // anything unknown, are ambiguous too.
        for code in [-1, -4, -20, -27, 0, 42] {
            assert!(!rpc(code).is_definite(), "{code}");
        }
        assert!(WalletError::Unreachable("refused".into()).is_definite());
        assert!(!WalletError::Ambiguous("timeout".into()).is_definite());
        assert!(!WalletError::Protocol("garbage".into()).is_definite());
    }

    #[test]
    fn addresses_are_checked_against_the_network() {
        assert!(
            parse_address(
                "bcrt1qcsa5p0v3fnkh0cr2wlfjpkrrkl8qyuy8kvd9xw",
                Network::Regtest
            )
            .is_ok()
        );
        assert!(
            parse_address(
                "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
                Network::Regtest
            )
            .is_err()
        );
        assert!(
            parse_address(
                "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
                Network::Mainnet
            )
            .is_ok()
        );
        assert!(
            parse_address(
                "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",
                Network::Signet
            )
            .is_ok()
        );
        assert!(parse_address("notanaddress", Network::Regtest).is_err());
    }
}
