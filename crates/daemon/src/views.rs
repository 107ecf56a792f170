//! Views that combine several services, shared by the HTTP API and the
//! control socket so both show the same thing.

use pooldesk_proto::amount::format_btc;
use pooldesk_proto::model::{MinerDetail, WithdrawalRow};
use serde_json::{Value, json};

use crate::app::App;
use crate::miners::service::MinerServiceError;

/// A miner with balance, hashrate, workers, recent credits and withdrawals.
pub async fn miner_detail(app: &App, miner_id: String) -> Result<MinerDetail, MinerServiceError> {
    let mut detail = app.miners.detail(miner_id.clone()).await?;
    detail.withdrawals = app
        .payouts
        .withdrawals_of_miner(miner_id)
        .await
        .map_err(|e| MinerServiceError::Invalid(e.to_string()))?;
    if detail.payout_address.is_some() {
        let delay = app.config.payouts.new_address_delay_s as i64;
        let set_at = app
            .miners
            .get(detail.row.miner_id.clone())
            .await?
            .and_then(|m| m.payout_address_set_at);
        detail.payout_address_payable_at = set_at.map(|t| t + delay);
    }
    Ok(detail)
}

/// The JSON shape of a withdrawal in HTTP answers: integer sat plus the
/// BTC string.
pub fn withdrawal_json(w: &WithdrawalRow) -> Value {
    json!({
        "id": w.id,
        "miner_id": w.miner_id,
        "address": w.address,
        "amount_sat": w.amount_sat,
        "amount_btc": format_btc(w.amount_sat),
        "state": w.state,
        "created_at": w.created_at,
        "updated_at": w.updated_at,
        "batch_id": w.batch_id,
        "txid": w.txid,
        "note": w.note,
        "decided_by": w.decided_by,
    })
}
