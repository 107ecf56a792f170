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

/// Rate points as `[t, span_s, hashes/s]` triples (the charts' wire shape).
fn points_json(points: &[crate::history::RatePoint]) -> Vec<Value> {
    points
        .iter()
        .map(|p| json!([p.t_s, p.span_s, p.rate_hps]))
        .collect()
}

/// The shortest history a daily earnings estimate is made from.
pub const MIN_ESTIMATE_BASIS_S: i64 = 600;

/// A miner's charts and progress towards payout (`GET
/// /api/miners/{id}/history`): hashrate over 24 h (total and per worker),
/// balance and hourly earnings, payouts as marks with explorer links, and
/// the distance to the payout threshold with the pace it is reached at.
pub async fn miner_history(app: &App, miner_id: String) -> Result<Value, MinerServiceError> {
    let record = app
        .miners
        .get(miner_id.clone())
        .await?
        .ok_or_else(|| MinerServiceError::NotFound(miner_id.clone()))?;
    let now = crate::clock::now_s();
    let id = miner_id.clone();
    let history = app
        .store
        .read(move |conn| crate::history::miner_history(conn, &id, now))
        .await?;
    let threshold_sat = record
        .payout_threshold_sat
        .unwrap_or(0)
        .max(app.config.payouts.min_payout_btc.sat());
    let balance_msat = history.balance.last().map_or(0, |b| b.1);
    // The pace: what the last 24 h paid, or what the miner's shorter life
    // paid, scaled to a day.
    let basis_s = (now - record.created_at).clamp(1, crate::history::SPAN_S);
    let progress = crate::history::progress(
        balance_msat,
        threshold_sat.saturating_mul(1000),
        history.earned_24h_msat,
        basis_s,
    );
    let estimable = progress.basis_s >= MIN_ESTIMATE_BASIS_S;
    let explorer = app.config.http.explorer_tx_url(app.config.network);
    let scheme = app.config.accounting.scheme;
    let link = |txid: &str| explorer.as_ref().map(|t| t.replace("{txid}", txid));
    let workers: serde_json::Map<String, Value> = history
        .workers
        .iter()
        .map(|(name, p)| (name.clone(), Value::from(points_json(p))))
        .collect();
    Ok(json!({
        "miner_id": miner_id,
        "now": history.now_s,
        "from": history.from_s,
        "hashrate": { "total": points_json(&history.total), "workers": workers },
        "balance": history.balance.iter().map(|(t, b)| json!([t, b])).collect::<Vec<_>>(),
        "earnings": history.earnings.iter().map(|e| json!({
            "t": e.t_s, "amount_msat": e.amount_msat, "amount_btc": format_btc(e.amount_msat.div_euclid(1000)),
            "credits": e.credits,
        })).collect::<Vec<_>>(),
        "payouts": history.payouts.iter().map(|p| json!({
            "at": p.at_s, "withdrawal_id": p.withdrawal_id, "amount_sat": p.amount_sat,
            "amount_btc": format_btc(p.amount_sat), "state": p.state,
            "txid": p.txid, "explorer_url": p.txid.as_deref().and_then(link),
        })).collect::<Vec<_>>(),
        "progress": {
            "scheme": scheme.as_str(),
            "threshold_msat": progress.threshold_msat,
            "threshold_btc": format_btc(threshold_sat),
            "balance_msat": progress.balance_msat,
            "to_go_msat": progress.to_go_msat,
            "to_go_btc": format_btc(progress.to_go_msat.div_euclid(1000)),
            "permille": progress.permille,
            // Under MIN_ESTIMATE_BASIS_S of history a day's pace is a guess:
            // no estimate rather than a wild one.
            "per_day_msat": estimable.then_some(progress.per_day_msat),
            "per_day_btc": estimable.then(|| format_btc(progress.per_day_msat.div_euclid(1000))),
            "basis_s": progress.basis_s,
            "eta_s": if estimable || progress.to_go_msat == 0 { progress.eta_s } else { None },
            "assumptions": if estimable {
                let span = pooldesk_proto::model::format_span_s(progress.basis_s);
                match scheme {
                    pooldesk_proto::model::PayoutScheme::Pps => format!(
                        "pay per share: exactly what the last {span} paid, at the same pace"
                    ),
                    // Blocks are random: an estimate, and it says so.
                    pooldesk_proto::model::PayoutScheme::Pplns
                    | pooldesk_proto::model::PayoutScheme::Solo => format!(
                        "{}: an estimate — what matured blocks credited you in the last {span}, at the same pace; blocks come at random (a day without one pays nothing), pending (immature) parts count only once they mature",
                        scheme.as_str().to_uppercase()
                    ),
                }
            } else {
                format!(
                    "too early to estimate: {} of history, at least {} needed",
                    pooldesk_proto::model::format_span_s(progress.basis_s),
                    pooldesk_proto::model::format_span_s(MIN_ESTIMATE_BASIS_S)
                )
            },
        },
    }))
}

/// The pool's charts (`GET /api/pool/history`): hashrate and active miners
/// over 24 h, and blocks found.
pub async fn pool_history(app: &App) -> Result<Value, crate::store::StoreError> {
    let now = crate::clock::now_s();
    let history = app
        .store
        .read(move |conn| crate::history::pool_history(conn, now))
        .await?;
    Ok(json!({
        "now": history.now_s,
        "from": history.from_s,
        "hashrate": points_json(&history.total),
        "miners": history.miners,
        "blocks": history.blocks.iter().map(|b| json!({
            "at": b.received_at, "height": b.height, "hash": b.hash, "miner_id": b.miner_id,
        })).collect::<Vec<_>>(),
    }))
}
