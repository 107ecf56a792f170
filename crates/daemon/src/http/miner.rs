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
    Router::new()
        .route("/api/miners/{id}", get(miner))
        .route("/api/miners/{id}/history", get(history))
        .route("/api/pool/history", get(pool_history))
}

/// One worker for the API and the SSE stream: hashrate, last share, and
/// its accepted and rejected shares in the last hour (`rejected_1h` null
/// where its pool does not report rejects).
pub fn worker_json(w: &pooldesk_proto::model::WorkerRow) -> Value {
    json!({
        "worker_name": w.worker_name,
        "hashrate": hashrate_json(&w.hashrate),
        "last_share_at": w.last_share_at,
        "accepted_1h": w.accepted_1h,
        "rejected_1h": w.rejects_reported.then_some(w.rejected_1h),
    })
}

/// `GET /api/miners/{id}/history`: the dashboard's charts and progress.
async fn history(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(crate::views::miner_history(&app, id).await?).into_response())
}

/// `GET /api/pool/history`: the pool page's charts.
async fn pool_history(State(app): State<App>) -> Result<Response, ApiError> {
    Ok(axum::Json(crate::views::pool_history(&app).await?).into_response())
}

/// A hashrate for the API and the PWA: each figure, the seconds it covers,
/// whether that is less than its window, and a text saying so.
pub fn hashrate_json(h: &Hashrate) -> Value {
    json!({
        "h1m": h.h1m, "h10m": h.h10m, "h1h": h.h1h,
        "h1m_s": h.h1m_s, "h10m_s": h.h10m_s, "h1h_s": h.h1h_s,
        "h1m_partial": h.h1m_partial, "h10m_partial": h.h10m_partial, "h1h_partial": h.h1h_partial,
        "h1m_text": format!("{}{}", format_hashrate(h.h1m), h.partial_suffix(0)),
        "h10m_text": format!("{}{}", format_hashrate(h.h10m), h.partial_suffix(1)),
        "h1h_text": format!("{}{}", format_hashrate(h.h1h), h.partial_suffix(2)),
    })
}

/// `GET /api/miners/{id}`: hashrate per worker, balance, recent credits and
/// withdrawals. Public, like the seed's dashboard: it shows no secret.
async fn miner(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let detail = crate::views::miner_detail(&app, id.clone()).await?;
    let blocks = crate::blocks::miner_blocks(&app, id).await?;
    let row = &detail.row;
    let workers: Vec<Value> = detail.workers.iter().map(worker_json).collect();
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
        // Parts of immature blocks (PPLNS/SOLO), credited at maturity.
        "pending_msat": blocks.pending_msat,
        "pending_btc": format_btc(blocks.pending_msat / 1000),
        "window_work": blocks.window_work,
        "window_total_work": blocks.window_total_work,
        "recent_blocks": blocks.recent_blocks,
        "hashrate": hashrate_json(&detail.hashrate),
        "workers": workers,
        "last_share_at": row.last_share_at,
        "recent_credits": credits,
        "withdrawals": withdrawals,
        // `{txid}` in it is replaced by a payout's txid; null: no explorer.
        "explorer_tx_url": app.config.http.explorer_tx_url(app.config.network),
    }))
    .into_response())
}
