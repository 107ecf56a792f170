//! Public miner views (what the dashboard shows).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pooldesk_proto::amount::format_btc;
use pooldesk_proto::model::Hashrate;
use serde_json::{Value, json};

use super::error::ApiError;
use crate::app::App;
use crate::hashrate::format_hashrate;

pub fn routes() -> Router<App> {
    Router::new().route("/api/miners/{id}", get(miner))
}

pub fn hashrate_json(h: &Hashrate) -> Value {
    json!({
        "h1m": h.h1m, "h10m": h.h10m, "h1h": h.h1h,
        "h1m_text": format_hashrate(h.h1m),
        "h10m_text": format_hashrate(h.h10m),
        "h1h_text": format_hashrate(h.h1h),
    })
}

/// `GET /api/miners/{id}`: hashrate per worker, balance, recent credits and
/// withdrawals. Public, like the seed's dashboard: it shows no secret.
async fn miner(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let detail = crate::views::miner_detail(&app, id).await?;
    let row = &detail.row;
    let workers: Vec<Value> = detail
        .workers
        .iter()
        .map(|w| {
            json!({
                "worker_name": w.worker_name,
                "hashrate": hashrate_json(&w.hashrate),
                "last_share_at": w.last_share_at,
            })
        })
        .collect();
    let credits: Vec<Value> = detail
        .recent_credits
        .iter()
        .map(|c| {
            json!({
                "at": c.at, "event_id": c.event_id, "worker_name": c.worker_name,
                "work": c.work, "amount_msat": c.amount_msat,
            })
        })
        .collect();
    let withdrawals: Vec<Value> = detail
        .withdrawals
        .iter()
        .map(crate::views::withdrawal_json)
        .collect();
    Ok(axum::Json(json!({
        "miner_id": row.miner_id,
        "tier": row.tier,
        "active": row.active,
        "created_at": detail.created_at,
        "has_key": row.has_key,
        "payout_address": detail.payout_address,
        "payout_address_payable_at": detail.payout_address_payable_at,
        "balance_msat": row.balance_msat,
        "balance_sat": row.balance_msat / 1000,
        "balance_btc": format_btc(row.balance_msat / 1000),
        "hashrate": hashrate_json(&detail.hashrate),
        "workers": workers,
        "last_share_at": row.last_share_at,
        "recent_credits": credits,
        "withdrawals": withdrawals,
    }))
    .into_response())
}
