//! Public block views: the list, each block's statement and its shares
//! (issue 14). Handlers parse, ask `crate::blocks`, map errors.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use crate::app::App;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/blocks", get(list))
        .route("/api/blocks/{hash}/statement", get(statement))
        .route("/api/blocks/{hash}/shares", get(shares))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
}

/// `GET /api/blocks?limit=N`: highest first.
async fn list(State(app): State<App>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let blocks = crate::blocks::list(&app, q.limit.unwrap_or(100)).await?;
    Ok(axum::Json(json!({ "blocks": blocks })).into_response())
}

/// `GET /api/blocks/{hash}/statement`: with the ordered share list, so
/// `pooldeskd statement verify` can recompute it.
async fn statement(State(app): State<App>, Path(hash): Path<String>) -> Result<Response, ApiError> {
    match crate::blocks::statement(&app, hash.clone(), true).await? {
        Some(statement) => Ok(axum::Json(statement).into_response()),
        None => Err(ApiError::not_found(format!("no block {hash}"))),
    }
}

#[derive(Deserialize)]
struct SharesQuery {
    miner: Option<String>,
}

/// `GET /api/blocks/{hash}/shares?miner=ID`.
async fn shares(
    State(app): State<App>,
    Path(hash): Path<String>,
    Query(q): Query<SharesQuery>,
) -> Result<Response, ApiError> {
    match crate::blocks::shares(&app, hash.clone(), q.miner.clone()).await? {
        Some(shares) => Ok(axum::Json(json!({
            "block_hash": hash,
            "miner_id": q.miner,
            "shares": shares,
        }))
        .into_response()),
        None => Err(ApiError::not_found(format!("no block {hash}"))),
    }
}
