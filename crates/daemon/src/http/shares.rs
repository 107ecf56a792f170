//! `POST /api/v2/shares`: batched shares from pool software (src/shares).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::error::ApiError;
use crate::app::App;
use crate::shares::SharesError;

pub fn routes() -> Router<App> {
    Router::new().route("/api/v2/shares", post(submit))
}

impl From<SharesError> for ApiError {
    fn from(e: SharesError) -> Self {
        let message = e.to_string();
        match e {
            SharesError::MissingSignature => ApiError::unauthorized("missing_signature", message),
            SharesError::BadSignature => ApiError::unauthorized("bad_signature", message),
            SharesError::StaleTimestamp(_) => ApiError::unauthorized("stale_timestamp", message),
            SharesError::Malformed(_) => ApiError::bad_request(message),
            SharesError::Invalid(_) => ApiError::unprocessable("invalid", message),
            SharesError::BadShare { index, .. } => {
                ApiError::unprocessable("invalid_share", message).with("index", index)
            }
            SharesError::TooMany { max, .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_shares", message)
                    .with("max_shares", max)
            }
            SharesError::BalanceBound(_) => ApiError::unprocessable("balance_bound", message),
            SharesError::Store(e) => e.into(),
            SharesError::Db(_) | SharesError::Ledger(_) => {
                tracing::error!(error = %message, "share batch fault");
                ApiError::unavailable(
                    "the ledger cannot commit right now; nothing was recorded, retry later",
                )
            }
        }
    }
}

/// The body, bounded by `shares.max_body_bytes` (batches are larger than
/// the `http.max_body_bytes` every other endpoint keeps).
async fn bounded_body(app: &App, request: Request) -> Result<Bytes, ApiError> {
    let limit = app.config.shares.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    };
    if let Some(length) = request.headers().get(header::CONTENT_LENGTH)
        && let Some(length) = length.to_str().ok().and_then(|v| v.parse::<u64>().ok())
        && length > limit as u64
    {
        return Err(too_large());
    }
    match axum::body::to_bytes(request.into_body(), limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                source = err.source();
            }
            Err(ApiError::bad_request("could not read the request body"))
        }
    }
}

/// 200 only after every new share of the batch is durable.
async fn submit(State(app): State<App>, request: Request) -> Result<Response, ApiError> {
    let signature = request
        .headers()
        .get("x-report-sig")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = bounded_body(&app, request).await?;
    let outcome = app.shares.submit(signature.as_deref(), &body).await?;
    let mut json = serde_json::to_value(&outcome).map_err(|e| ApiError::internal(e.to_string()))?;
    json["status"] = "ok".into();
    Ok((StatusCode::OK, axum::Json(json)).into_response())
}
