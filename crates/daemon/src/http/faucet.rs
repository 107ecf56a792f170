//! Faucet endpoints: parse, call [`crate::faucet::Faucet`], map errors.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pooldesk_proto::amount::format_btc;
use pooldesk_proto::model::FaucetRow;
use serde::Deserialize;
use serde_json::json;

use super::body::{RawBody, parse_json};
use super::client_ip::ClientIp;
use super::error::ApiError;
use crate::app::App;
use crate::faucet::FaucetError;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/faucet", get(status).post(request))
        .route("/api/faucet/challenge", get(challenge))
        .route("/api/faucet/requests/{id}", get(lookup))
        .route(
            "/api/admin/faucet/batches/{id}/resolve",
            axum::routing::post(resolve),
        )
}

/// `POST /api/admin/faucet/batches/{id}/resolve` — `{"outcome":"paid","txid":…}`
/// | `{"outcome":"retry"}` | `{"outcome":"failed"}` for a batch in
/// `needs_attention`.
async fn resolve(
    State(app): State<App>,
    admin: super::Admin,
    Path(id): Path<i64>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let resolution: pooldesk_proto::model::BatchResolution = parse_json(&body)?;
    let message = app.faucet.resolve(admin.actor, id, resolution).await?;
    Ok(axum::Json(json!({"status": "ok", "message": message})).into_response())
}

impl From<FaucetError> for ApiError {
    fn from(e: FaucetError) -> Self {
        let message = e.to_string();
        match e {
            FaucetError::Disabled(_) => ApiError::forbidden("faucet_disabled", message),
            FaucetError::BadAddress(_) => ApiError::unprocessable("bad_address", message),
            FaucetError::BadPow(_) => ApiError::unprocessable("bad_pow", message),
            FaucetError::ChallengeExpired => ApiError::unprocessable("challenge_expired", message),
            FaucetError::TooSoon { seconds_left, by } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_soon", message)
                    .with("seconds_left", seconds_left)
                    .with("by", by)
                    .retry_after(seconds_left)
            }
            FaucetError::BudgetExhausted { seconds_left } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "budget_exhausted", message)
                    .with("seconds_left", seconds_left)
                    .retry_after(seconds_left)
            }
            FaucetError::WalletUnavailable(_) => ApiError::unavailable(message),
            FaucetError::NotFound => ApiError::not_found(message),
            FaucetError::WrongState(_) => ApiError::conflict("wrong_state", message),
            FaucetError::Invalid(_) => ApiError::unprocessable("invalid", message),
            FaucetError::Store(e) => e.into(),
            FaucetError::Ledger(_) | FaucetError::Db(_) => {
                tracing::error!(error = %e, "faucet request failed");
                ApiError::internal("the faucet could not record the request; nothing was held")
            }
        }
    }
}

fn row_json(row: &FaucetRow) -> serde_json::Value {
    json!({
        "request_id": row.id,
        "state": row.state,
        "amount_sat": row.amount_sat,
        "amount_btc": format_btc(row.amount_sat),
        "created_at": row.created_at,
        "txid": row.txid,
    })
}

/// `GET /api/faucet/challenge`
async fn challenge(State(app): State<App>) -> Result<Response, ApiError> {
    let c = app.faucet.challenge(crate::clock::now_s())?;
    let mut response = axum::Json(json!({
        "challenge": c.challenge,
        "difficulty_bits": c.difficulty_bits,
        "expires_at": c.expires_at,
        "amount_sat": c.amount_sat,
        "amount_btc": format_btc(c.amount_sat),
    }))
    .into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaucetBody {
    address: String,
    challenge: String,
    /// A string (any solver's counter, as text); a JSON integer is accepted
    /// too and used as its decimal text.
    nonce: Nonce,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Nonce {
    Text(String),
    Number(u64),
}

/// A parsed faucet claim, the nonce as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaucetClaim {
    pub address: String,
    pub challenge: String,
    pub nonce: String,
}

/// Parses a `POST /api/faucet` body exactly as the handler does (public
/// for the fuzz target).
pub fn parse_faucet_body(body: &[u8]) -> Result<FaucetClaim, ApiError> {
    let body: FaucetBody = parse_json(body)?;
    let nonce = match body.nonce {
        Nonce::Text(text) => text,
        Nonce::Number(n) => n.to_string(),
    };
    Ok(FaucetClaim {
        address: body.address,
        challenge: body.challenge,
        nonce,
    })
}

/// `POST /api/faucet` `{address, challenge, nonce}` → 202.
async fn request(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let body = parse_faucet_body(&body)?;
    let row = app
        .faucet
        .request(ip, &body.address, &body.challenge, &body.nonce)
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(row_json(&row))).into_response())
}

/// `GET /api/faucet/requests/{id}`: state and, once paid, the txid. The
/// address is not shown (ids are sequential).
async fn lookup(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found("no such faucet request"))?;
    let row = app.faucet.lookup(id).await?;
    Ok(axum::Json(row_json(&row)).into_response())
}

/// `GET /api/faucet`: what the faucet page shows before a request.
async fn status(State(app): State<App>) -> Result<Response, ApiError> {
    let s = app.faucet.public_status().await?;
    let remaining = (s.daily_budget_sat - s.spent_today_sat).max(0);
    Ok(axum::Json(json!({
        "enabled": s.enabled,
        "disabled_reason": s.disabled_reason,
        "network": s.network,
        "amount_sat": s.amount_sat,
        "amount_btc": format_btc(s.amount_sat),
        "cooldown_s": s.cooldown_s,
        "difficulty_bits": s.difficulty_bits,
        "daily_budget_sat": s.daily_budget_sat,
        "daily_budget_btc": format_btc(s.daily_budget_sat),
        "spent_today_sat": s.spent_today_sat,
        "remaining_today_sat": remaining,
        "remaining_today_btc": format_btc(remaining),
        "queued": s.queued,
        "payouts_failing": s.last_error.is_some(),
    }))
    .into_response())
}
