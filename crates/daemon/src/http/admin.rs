//! The admin HTTP API (`X-API-KEY` header only).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pooldesk_proto::amount::{format_btc, format_msat_btc};
use pooldesk_proto::model::{ListMiners, MinerSort};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Admin;
use super::body::{RawBody, parse_json};
use super::error::ApiError;
use crate::app::App;
use crate::ledger::TransferKind;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/admin/miners", get(miners))
        .route("/api/admin/credits", get(credits))
        .route("/api/admin/miners/{id}/key", post(issue_key))
        .route("/api/admin/miners/{id}/active", post(set_active))
}

#[derive(Deserialize, Default)]
struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    sort: Option<MinerSort>,
    #[serde(default)]
    desc: bool,
    filter: Option<String>,
}

fn page_query(
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<PageQuery, ApiError> {
    query.map(|Query(q)| q).map_err(|e| {
        ApiError::unprocessable("invalid", format!("bad query string: {}", e.body_text()))
    })
}

/// `GET /api/admin/miners?limit=&cursor=&sort=&desc=&filter=` — the cursor
/// is the offset of the next page.
async fn miners(
    State(app): State<App>,
    _admin: Admin,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = page_query(query)?;
    let offset = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c
            .parse::<u32>()
            .map_err(|_| ApiError::unprocessable("invalid", "cursor must come from next_cursor"))?,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let page = app
        .miners
        .list(ListMiners {
            sort: q.sort.unwrap_or_default(),
            descending: q.desc,
            filter: q.filter,
            offset,
            limit: Some(limit),
        })
        .await?;
    let next = offset as u64 + page.rows.len() as u64;
    let rows: Vec<Value> = page
        .rows
        .iter()
        .map(|r| {
            json!({
                "miner_id": r.miner_id, "tier": r.tier, "active": r.active,
                "hashrate_10m": r.hashrate_10m, "workers": r.workers,
                "balance_msat": r.balance_msat, "balance_sat": r.balance_msat / 1000,
                "balance_btc": format_btc(r.balance_msat / 1000),
                "last_share_at": r.last_share_at, "has_key": r.has_key,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "total": page.total,
        "miners": rows,
        "next_cursor": if next < page.total { Some(next.to_string()) } else { None },
    }))
    .into_response())
}

/// `GET /api/admin/credits?limit=&cursor=` — credit transfers newest
/// first (each a roll-up of the reports committed together).
async fn credits(
    State(app): State<App>,
    _admin: Admin,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = page_query(query)?;
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiError::unprocessable("invalid", "cursor must come from next_cursor")
        })?),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let transfers = app
        .store
        .read(move |conn| {
            crate::ledger::transfers_of_kinds(
                conn,
                &[
                    TransferKind::ShareCredit,
                    TransferKind::PoolShareCredit,
                    TransferKind::BlockCredit,
                    TransferKind::PoolBlockCredit,
                ],
                before,
                limit,
            )
        })
        .await?;
    let next = (transfers.len() == limit as usize)
        .then(|| transfers.last().map(|t| t.id.to_string()))
        .flatten();
    let rows: Vec<Value> = transfers
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "miner_id": t.credit.strip_prefix("miner:").unwrap_or(&t.credit),
                "kind": t.kind,
                "amount_msat": t.amount_msat,
                "amount_btc": format_msat_btc(t.amount_msat),
                "reports": t.item_count,
                "created_at": t.created_at,
            })
        })
        .collect();
    Ok(axum::Json(json!({"credits": rows, "next_cursor": next})).into_response())
}

#[derive(Deserialize, Default)]
struct KeyBody {
    /// Create the miner if it does not exist yet.
    #[serde(default)]
    create: bool,
}

/// `POST /api/admin/miners/{id}/key` — issue or rotate; the key is shown once.
async fn issue_key(
    State(app): State<App>,
    admin: Admin,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: KeyBody = if body.iter().all(u8::is_ascii_whitespace) {
        KeyBody::default()
    } else {
        parse_json(&body)?
    };
    let issued = app
        .miners
        .issue_key(admin.actor, id, request.create)
        .await?;
    Ok(axum::Json(json!({
        "miner_id": issued.miner_id,
        "api_key": issued.api_key,
        "key_version": issued.key_version,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct ActiveBody {
    active: bool,
}

/// `POST /api/admin/miners/{id}/active` `{"active": false}`.
async fn set_active(
    State(app): State<App>,
    admin: Admin,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: ActiveBody = parse_json(&body)?;
    app.miners
        .set_active(admin.actor, id.clone(), request.active)
        .await?;
    Ok(axum::Json(json!({"miner_id": id, "active": request.active})).into_response())
}
