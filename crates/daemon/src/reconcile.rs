//! `pooldeskd verify --wallet`: the ledger's payments against the node
//! wallet's own record of them.
//!
//! Read-only on both sides. For every payout batch and faucet batch the
//! ledger holds a txid for, the wallet must know the transaction
//! (`gettransaction`), it must pay exactly the batch's outputs, and where the
//! ledger counts it as paid, the money and fee the ledger moved must equal
//! what the wallet paid. A batch the ledger gave up on (`failed`) must not be
//! live in the wallet. Then every wallet send whose comment or label says it
//! is pooldesk's (`pooldesk …`) must be one the ledger knows
//! (`listtransactions`, every page: an audit that could not read the whole
//! wallet is an error, never "nothing found").

use std::collections::{BTreeMap, HashSet};

use rusqlite::Connection;
use serde::Deserialize;

use crate::ledger;
use crate::wallet::bitcoind::BitcoindWallet;
use crate::wallet::{Output, WalletBackend, WalletError, WalletTx};

/// What the ledger says one batch paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPayment {
    /// `payout batch 3`, `faucet batch 2`: how differences name it.
    pub name: String,
    pub state: String,
    pub txid: Option<String>,
    /// Outputs as the ledger records them (per address, summed).
    pub outputs: BTreeMap<String, i64>,
    /// The ledger holds the money as sent (`payouts:sent` / `faucet:sent`).
    pub counts_as_paid: bool,
    /// The ledger gave up on it: it must not pay.
    pub failed: bool,
    /// Money the ledger moved to "sent" for this transaction, msat.
    pub sent_msat: i64,
    /// The fee the ledger recorded, sat (`None`: none recorded).
    pub fee_sat: Option<i64>,
    /// The wallet may legitimately not know the txid yet (a cold batch
    /// finalized but not yet broadcast).
    pub may_be_unbroadcast: bool,
}

/// Every batch of both kinds, in id order.
pub fn ledger_payments(conn: &Connection) -> anyhow::Result<Vec<LedgerPayment>> {
    let mut payments = Vec::new();
    let mut batches =
        conn.prepare("SELECT id, state, txid, outputs_json FROM payout_batches ORDER BY id")?;
    let rows = batches.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    for row in rows {
        let (id, state, txid, outputs_json) = row?;
        let outputs: Vec<Output> = serde_json::from_str(&outputs_json)
            .map_err(|e| anyhow::anyhow!("payout batch {id}: outputs_json: {e}"))?;
        // What the ledger moved to sent for this batch's withdrawals, net
        // of reversals: a payment's transfer names the txid it was made
        // with, which a followed replacement (fee bump) changes.
        let sent_msat = match &txid {
            Some(_) => conn.query_row(
                "SELECT COALESCE(SUM(CASE WHEN t.kind = 'payout' THEN t.amount_msat ELSE -t.amount_msat END), 0)
                 FROM withdrawals w JOIN transfers t
                   ON (t.kind = 'payout' AND t.reference LIKE 'withdrawal:' || w.id || ' tx:%')
                   OR (t.kind = 'adjustment' AND t.reference = 'withdrawal:' || w.id || ' unpaid')
                 WHERE w.batch_id = ?1",
                [id],
                |r| r.get(0),
            )?,
            None => 0,
        };
        let fee_msat: Option<i64> = conn.query_row(
            "SELECT SUM(amount_msat) FROM transfers WHERE kind = 'payout_fee' AND reference = ?1",
            [format!("batch:{id}")],
            |r| r.get(0),
        )?;
        payments.push(LedgerPayment {
            name: format!("payout batch {id}"),
            counts_as_paid: matches!(state.as_str(), "broadcast" | "confirmed"),
            failed: state == "failed",
            may_be_unbroadcast: matches!(
                state.as_str(),
                "psbt_pending" | "psbt_created" | "signed" | "broadcasting"
            ),
            state,
            txid,
            outputs: merged(&outputs),
            sent_msat,
            fee_sat: fee_msat.map(|m| m / 1000),
        });
    }
    let mut batches =
        conn.prepare("SELECT id, state, txid, fee_sat FROM faucet_batches ORDER BY id")?;
    let rows = batches.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<i64>>(3)?,
        ))
    })?;
    for row in rows {
        let (id, state, txid, fee_sat) = row?;
        let mut requests =
            conn.prepare("SELECT address, amount_sat FROM faucet_requests WHERE batch_id = ?1")?;
        let outputs: Vec<Output> = requests
            .query_map([id], |r| {
                Ok(Output {
                    address: r.get(0)?,
                    amount_sat: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let sent_msat: i64 = conn.query_row(
            "SELECT COALESCE(SUM(t.amount_msat), 0) FROM transfers t
             JOIN accounts a ON a.id = t.credit_account_id
             WHERE a.name = ?1 AND t.reference = ?2",
            rusqlite::params![ledger::FAUCET_SENT, format!("faucet_batch:{id}")],
            |r| r.get(0),
        )?;
        payments.push(LedgerPayment {
            name: format!("faucet batch {id}"),
            counts_as_paid: state == "paid",
            failed: state == "failed",
            // A txid-first batch commits its txid before the broadcast.
            may_be_unbroadcast: state == "sending",
            state,
            txid,
            outputs: merged(&outputs),
            sent_msat,
            fee_sat,
        });
    }
    Ok(payments)
}

fn merged(outputs: &[Output]) -> BTreeMap<String, i64> {
    let mut by_address = BTreeMap::new();
    for o in outputs {
        *by_address.entry(o.address.clone()).or_insert(0) += o.amount_sat;
    }
    by_address
}

/// Whether the wallet could still have this transaction pay: not
/// abandoned, not conflicted by a mined transaction, not replaced.
fn live(tx: &WalletTx) -> bool {
    !tx.abandoned && tx.confirmations >= 0 && tx.replaced_by_txid.is_none()
}

/// The differences between one ledger payment and the wallet's record of
/// its transaction (`None`: the wallet does not know the txid).
pub fn compare_one(payment: &LedgerPayment, tx: Option<&WalletTx>) -> Vec<String> {
    let Some(txid) = &payment.txid else {
        return Vec::new();
    };
    let name = &payment.name;
    let Some(tx) = tx else {
        if payment.may_be_unbroadcast {
            return Vec::new();
        }
        return vec![format!(
            "{name} ({}): txid {txid} is unknown to the wallet",
            payment.state
        )];
    };
    let mut differences = Vec::new();
    let paid = merged(&tx.sends);
    if paid != payment.outputs {
        let mut parts = Vec::new();
        for (address, sat) in &payment.outputs {
            match paid.get(address) {
                Some(p) if p == sat => {}
                Some(p) => parts.push(format!("{address}: ledger {sat} sat, wallet {p} sat")),
                None => parts.push(format!("{address}: ledger {sat} sat, wallet pays nothing")),
            }
        }
        for (address, sat) in &paid {
            if !payment.outputs.contains_key(address) {
                parts.push(format!(
                    "{address}: wallet pays {sat} sat, not in the ledger"
                ));
            }
        }
        differences.push(format!(
            "{name}: transaction {txid} pays other outputs than the ledger records ({})",
            parts.join("; ")
        ));
    }
    if payment.counts_as_paid {
        let wallet_sent_msat: i64 = paid.values().sum::<i64>() * 1000;
        if payment.sent_msat != wallet_sent_msat {
            differences.push(format!(
                "{name}: the ledger moved {} msat to sent for {txid}, the wallet paid {wallet_sent_msat} msat",
                payment.sent_msat
            ));
        }
        let wallet_fee_sat = tx.fee_sat.map(i64::abs);
        if payment.fee_sat != wallet_fee_sat {
            differences.push(format!(
                "{name}: fee in the ledger {}, in the wallet {} (transaction {txid})",
                sat_or_none(payment.fee_sat),
                sat_or_none(wallet_fee_sat)
            ));
        }
        if !live(tx) {
            differences.push(format!(
                "{name}: the ledger counts {txid} as paid, but the wallet shows it {}",
                why_dead(tx)
            ));
        }
    }
    if payment.failed && live(tx) {
        differences.push(format!(
            "{name}: the ledger says failed (money returned), but the wallet still holds {txid} ({} confirmations), which can pay",
            tx.confirmations
        ));
    }
    differences
}

fn sat_or_none(sat: Option<i64>) -> String {
    sat.map_or("none".to_string(), |s| format!("{s} sat"))
}

fn why_dead(tx: &WalletTx) -> String {
    if let Some(by) = &tx.replaced_by_txid {
        format!("replaced by {by}")
    } else if tx.abandoned {
        "abandoned".to_string()
    } else {
        format!("conflicted ({} confirmations)", tx.confirmations)
    }
}

/// A wallet send pooldesk wrote (its comment or label starts with
/// `pooldesk `), the ledger has no txid for, and that can still pay.
pub fn unknown_send(tx: &WalletTx, known: &HashSet<String>, tagged_as: &str) -> Option<String> {
    if known.contains(&tx.txid) || !live(tx) {
        return None;
    }
    let pays: Vec<String> = tx
        .sends
        .iter()
        .map(|o| format!("{} sat to {}", o.amount_sat, o.address))
        .collect();
    Some(format!(
        "wallet transaction {} ({tagged_as:?}, {} confirmations) pays {} and is not in the ledger",
        tx.txid,
        tx.confirmations,
        pays.join(", ")
    ))
}

#[derive(Deserialize)]
struct ListEntry {
    #[serde(default)]
    txid: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    label: Option<String>,
}

/// Every difference between the ledger and the wallet; empty when they
/// agree. An RPC failure is an error: the audit did not happen.
pub async fn audit(
    payments: &[LedgerPayment],
    wallet: &BitcoindWallet,
) -> Result<Vec<String>, WalletError> {
    let mut differences = Vec::new();
    let mut known = HashSet::new();
    for payment in payments {
        let Some(txid) = &payment.txid else {
            continue;
        };
        known.insert(txid.clone());
        let tx = wallet.transaction(txid).await?;
        differences.extend(compare_one(payment, tx.as_ref()));
    }
    // Every page: the wallet's whole history, newest first.
    const PAGE: u64 = 1000;
    let mut tagged: Vec<(String, String)> = Vec::new();
    for page in 0.. {
        let raw = wallet
            .read_only_call(
                "listtransactions",
                vec![p("*"), p(&PAGE), p(&(page * PAGE)), p(&true)],
            )
            .await?;
        let entries: Vec<ListEntry> = serde_json::from_str(raw.get())
            .map_err(|e| WalletError::Protocol(format!("listtransactions: {e}")))?;
        for entry in &entries {
            let tag = [&entry.comment, &entry.label]
                .into_iter()
                .flatten()
                .find(|t| t.starts_with("pooldesk "));
            if entry.category.as_deref() == Some("send")
                && let (Some(txid), Some(tag)) = (&entry.txid, tag)
                && !tagged.iter().any(|(t, _)| t == txid)
            {
                tagged.push((txid.clone(), tag.clone()));
            }
        }
        if (entries.len() as u64) < PAGE {
            break;
        }
    }
    for (txid, tag) in tagged {
        if known.contains(&txid) {
            continue;
        }
        // Listed a moment ago: a wallet that no longer knows it changed
        // under the audit, which is itself worth saying.
        match wallet.transaction(&txid).await? {
            Some(tx) => differences.extend(unknown_send(&tx, &known, &tag)),
            None => differences.push(format!(
                "wallet transaction {txid} ({tag:?}) was listed but is no longer known"
            )),
        }
    }
    Ok(differences)
}

fn p<T: serde::Serialize + ?Sized>(value: &T) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(value).expect("parameters serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(state: &str) -> LedgerPayment {
        LedgerPayment {
            name: "payout batch 1".into(),
            state: state.into(),
            txid: Some("aa".into()),
            outputs: [("bcrt1qx".to_string(), 50_000)].into_iter().collect(),
            counts_as_paid: matches!(state, "broadcast" | "confirmed"),
            failed: state == "failed",
            sent_msat: 50_000_000,
            fee_sat: Some(141),
            may_be_unbroadcast: false,
        }
    }

    fn tx() -> WalletTx {
        WalletTx {
            txid: "aa".into(),
            fee_sat: Some(-141),
            confirmations: 1,
            in_mempool_or_chain: true,
            sends: vec![Output {
                address: "bcrt1qx".into(),
                amount_sat: 50_000,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn agreeing_ledger_and_wallet_have_no_difference() {
        assert_eq!(
            compare_one(&payment("confirmed"), Some(&tx())),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_kind_of_difference_is_named() {
        let unknown = compare_one(&payment("broadcast"), None);
        assert!(unknown[0].contains("unknown to the wallet"), "{unknown:?}");

        let mut other = tx();
        other.sends[0].amount_sat = 40_000;
        let d = compare_one(&payment("confirmed"), Some(&other)).join("\n");
        assert!(d.contains("ledger 50000 sat, wallet 40000 sat"), "{d}");
        assert!(d.contains("the wallet paid 40000000 msat"), "{d}");

        let mut fee = tx();
        fee.fee_sat = Some(-200);
        let d = compare_one(&payment("confirmed"), Some(&fee)).join("\n");
        assert!(
            d.contains("fee in the ledger 141 sat, in the wallet 200 sat"),
            "{d}"
        );

        let d = compare_one(&payment("failed"), Some(&tx())).join("\n");
        assert!(d.contains("the ledger says failed"), "{d}");

        let mut replaced = tx();
        replaced.replaced_by_txid = Some("bb".into());
        let d = compare_one(&payment("confirmed"), Some(&replaced)).join("\n");
        assert!(d.contains("replaced by bb"), "{d}");
        assert!(compare_one(&payment("failed"), Some(&replaced)).is_empty());
    }

    #[test]
    fn only_live_unknown_sends_are_reported() {
        let known: HashSet<String> = ["aa".to_string()].into_iter().collect();
        assert_eq!(unknown_send(&tx(), &known, "pooldesk batch 1"), None);
        let mut stray = tx();
        stray.txid = "cc".into();
        let d = unknown_send(&stray, &known, "pooldesk batch 7").expect("reported");
        assert!(
            d.contains("cc") && d.contains("50000 sat to bcrt1qx"),
            "{d}"
        );
        stray.abandoned = true;
        assert_eq!(unknown_send(&stray, &known, "pooldesk batch 7"), None);
    }
}
