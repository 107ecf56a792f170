//! Reporter endpoints: the seed's pool report and the COINjecture
//! personal-key contract.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pooldesk_proto::amount::{format_btc, format_msat_btc};
use serde::Deserialize;
use serde_json::json;

use super::body::{RawBody, parse_json};
use super::client_ip::ClientIp;
use super::error::ApiError;
use crate::app::App;
use crate::auth::{AuthError, Binding, Bucket};
use crate::ingest::{Accepted, IngestError};
use crate::miners::service::MinerServiceError;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/report_share", post(report_share))
        .route("/v1/user/register", post(register))
        .route("/v1/ingest/block", post(ingest_block))
        .route("/v1/user/profile/{id}", get(profile))
        .route("/v1/user/update-tier", post(update_tier))
        .route("/v1/user/auth-test", post(auth_test))
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        match e {
            AuthError::Missing(_) => ApiError::unauthorized("missing_auth", message),
            AuthError::BadTimestamp(_) => ApiError::unauthorized("stale_timestamp", message),
            AuthError::UnknownUser(_) => ApiError::unauthorized("unknown_user", message),
            AuthError::BadSignature => ApiError::unauthorized("bad_signature", message),
            AuthError::Inactive => ApiError::forbidden("inactive", message),
            AuthError::Malformed(_) => ApiError::unprocessable("invalid", message),
            AuthError::RateLimited { retry_after_s, .. } => {
                ApiError::too_many(message, retry_after_s)
            }
            AuthError::Store(e) => e.into(),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let message = e.to_string();
        match e {
            IngestError::MissingSignature => ApiError::unauthorized("missing_signature", message),
            IngestError::BadSignature => ApiError::unauthorized("bad_signature", message),
            IngestError::Unprotected => ApiError::unauthorized("unprotected_report", message),
            IngestError::StaleTimestamp(_) => ApiError::unauthorized("stale_timestamp", message),
            IngestError::Duplicate { credited_msat, .. } => {
                ApiError::conflict("duplicate_event", message).with("credited_msat", credited_msat)
            }
            IngestError::EventConflict(_) => ApiError::conflict("event_id_conflict", message),
            IngestError::DuplicateBlock(_) => ApiError::conflict("duplicate_block", message),
            IngestError::Malformed(_) => ApiError::bad_request(message),
            IngestError::Invalid(_) => ApiError::unprocessable("invalid", message),
            IngestError::Inactive(_) => ApiError::forbidden("inactive", message),
            IngestError::MinerMismatch => ApiError::forbidden("miner_mismatch", message),
            IngestError::ReservedId(_) => ApiError::unprocessable("reserved_id", message),
            IngestError::CreditLimit(_) => ApiError::unprocessable("credit_limit", message),
            IngestError::BalanceBound(_) => ApiError::unprocessable("balance_bound", message),
            IngestError::Auth(e) => e.into(),
            IngestError::Store(e) => e.into(),
            IngestError::Db(_) | IngestError::Ledger(_) => {
                tracing::error!(error = %message, "ingest fault");
                ApiError::unavailable(
                    "the ledger cannot commit right now; nothing was recorded, retry later",
                )
            }
        }
    }
}

impl From<MinerServiceError> for ApiError {
    fn from(e: MinerServiceError) -> Self {
        let message = e.to_string();
        match e {
            MinerServiceError::Exists(_) => ApiError::conflict("user_exists", message),
            MinerServiceError::NotFound(_) => ApiError::not_found(message),
            MinerServiceError::Invalid(_) => ApiError::unprocessable("invalid", message),
            MinerServiceError::Forbidden(_) => ApiError::forbidden("forbidden", message),
            MinerServiceError::Namespace(_) => {
                ApiError::unprocessable("reserved_namespace", message)
            }
            MinerServiceError::RateLimited(seconds) => ApiError::too_many(message, seconds),
            MinerServiceError::Store(e) => e.into(),
        }
    }
}

fn accepted_body(status: &str, accepted: &Accepted) -> serde_json::Value {
    json!({
        "status": status,
        "miner_id": accepted.miner_id,
        "user_id": accepted.miner_id,
        "event_id": accepted.event_id,
        "credited_msat": accepted.credited_msat,
        "credited_btc": format_msat_btc(accepted.credited_msat),
        "balance_msat": accepted.balance_msat,
        "balance_sat": accepted.balance_msat / 1000,
        "balance_btc": format_btc(accepted.balance_msat / 1000),
    })
}

/// `POST /api/report_share` — 200 only after the credit is durable.
async fn report_share(
    State(app): State<App>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let signature = headers.get("x-report-sig").and_then(|v| v.to_str().ok());
    let accepted = app.ingest.report_share(signature, &body).await?;
    Ok((StatusCode::OK, axum::Json(accepted_body("ok", &accepted))).into_response())
}

/// `POST /v1/ingest/block` — 202 only after the credit is durable.
async fn ingest_block(
    State(app): State<App>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let accepted = app.ingest.ingest_block(&headers, &body).await?;
    let mut body = accepted_body("accepted", &accepted);
    body["tier"] = json!(accepted.tier);
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

#[derive(Deserialize)]
struct RegisterBody {
    user_id: String,
    #[serde(default = "default_auth_method")]
    auth_method: String,
    #[serde(default = "default_tier")]
    tier: String,
}

fn default_auth_method() -> String {
    crate::miners::AUTH_PERSONAL.into()
}

fn default_tier() -> String {
    "TIER_2_DESKTOP".into()
}

/// `POST /v1/user/register` — the seed's response shape, key shown once.
async fn register(
    State(app): State<App>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let admin = match headers.get("x-api-key") {
        None => false,
        Some(value) => {
            let presented = value.to_str().unwrap_or("");
            if !crate::auth::admin_key_matches(&app.secrets, presented) {
                return Err(ApiError::unauthorized(
                    "unauthorized",
                    "X-API-KEY is not the admin key",
                ));
            }
            true
        }
    };
    let request: RegisterBody = parse_json(&body)?;
    let registered = app
        .miners
        .register(
            request.user_id,
            request.auth_method,
            request.tier,
            admin,
            ip,
        )
        .await?;
    let instructions = if registered.api_key.is_some() {
        json!({
            "authentication": "Include X-User-ID and X-Signature headers",
            "signature": "HMAC-SHA256 of canonical JSON body using your API key",
            "timestamp": "Include X-Timestamp header with current Unix timestamp",
            "note": "This key is shown once. pooldesk keeps no copy; ask the pool admin to rotate it if lost.",
        })
    } else {
        json!({
            "authentication": "Include X-User-ID and X-Signature headers",
            "signature": "HMAC-SHA256 of canonical JSON body using the shared development secret from the pool operator",
            "timestamp": "Include X-Timestamp header with current Unix timestamp",
        })
    };
    let body = json!({
        "status": "success",
        "user_id": registered.user_id,
        "api_key": registered.api_key,
        "auth_method": registered.auth_method,
        "tier": registered.tier,
        "instructions": instructions,
    });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// `GET /v1/user/profile/{id}` — public.
async fn profile(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let detail = app.miners.detail(id).await?;
    let record = &detail.row;
    let body = json!({
        "status": "success",
        "user_id": record.miner_id,
        "tier": record.tier,
        "active": record.active,
        "has_key": record.has_key,
        "key_version": detail.key_version,
        "created_at": detail.created_at,
        "hashrate": super::miner::hashrate_json(&detail.hashrate),
        "workers": detail.workers.len(),
        "last_share_at": record.last_share_at,
        "balance_msat": record.balance_msat,
        "balance_sat": record.balance_msat / 1000,
        "balance_btc": format_btc(record.balance_msat / 1000),
    });
    Ok(axum::Json(body).into_response())
}

/// `POST /v1/user/update-tier` — admin only (`X-API-KEY`), body
/// `{user_id, tier}`. A miner's tier sets its rate and credit limits, so a
/// miner may not raise its own: a personal-key signature is refused.
async fn update_tier(
    State(app): State<App>,
    admin: Option<super::Admin>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let Some(admin) = admin else {
        return Err(ApiError::forbidden(
            "admin_only",
            "tier changes are made by the pool admin (X-API-KEY); a miner cannot change its own tier",
        ));
    };
    #[derive(Deserialize)]
    struct TierBody {
        user_id: String,
        tier: String,
    }
    let request: TierBody = parse_json(&body)?;
    app.miners
        .update_tier(admin.actor, request.user_id.clone(), request.tier.clone())
        .await?;
    Ok(
        axum::Json(json!({"status": "success", "user_id": request.user_id, "tier": request.tier}))
            .into_response(),
    )
}

/// `POST /v1/user/auth-test` — signed; says whether the signature is right.
async fn auth_test(
    State(app): State<App>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let signed = app
        .auth
        .verify(
            &headers,
            &body,
            Bucket::Signed,
            Binding::Either {
                method: "POST",
                path: "/v1/user/auth-test",
            },
        )
        .await?;
    Ok(axum::Json(json!({
        "status": "success",
        "authenticated": true,
        "user_id": signed.miner.id,
        "tier": signed.miner.tier,
        "auth_method": signed.miner.auth_method,
    }))
    .into_response())
}
