//! Withdrawal and payout endpoints: the miner's signed requests and the
//! admin API (approval, batches, PSBT review and finalize).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pooldesk_proto::amount::{format_btc, serde_btc};
use pooldesk_proto::model::{BatchResolution, BatchRow, PsbtReview};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Admin;
use super::body::{RawBody, parse_json};
use super::error::ApiError;
use crate::app::App;
use crate::auth::{Binding, Bucket};
use crate::payouts::{BatchOutcome, Payment, PayoutError};
use crate::views::withdrawal_json;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/miner/payout_address", post(payout_address))
        .route("/api/withdraw", post(withdraw))
        .route("/api/admin/withdrawals", get(list_withdrawals))
        .route("/api/admin/withdrawals/{id}/approve", post(approve))
        .route("/api/admin/withdrawals/{id}/reject", post(reject))
        .route("/api/admin/batch_payout", post(batch_payout))
        .route("/api/admin/send_batch", post(send_batch))
        .route("/api/admin/batches", get(batches))
        .route("/api/admin/batches/{id}/resolve", post(resolve))
        .route("/api/admin/batches/{id}/cancel", post(cancel))
        .route("/api/admin/payouts/pause", post(pause))
        .route("/api/admin/create_psbt", post(create_psbt))
        .route("/api/admin/psbt/{id}", get(psbt_review))
        .route("/api/admin/psbt/{id}/import", post(import_psbt))
        .route("/api/admin/finalize_psbt", post(finalize_psbt))
}

impl From<PayoutError> for ApiError {
    fn from(e: PayoutError) -> Self {
        let message = e.to_string();
        match e {
            PayoutError::NotFound(_) => ApiError::not_found(message),
            PayoutError::WrongState { state, .. } => {
                ApiError::conflict("wrong_state", message).with("state", state)
            }
            PayoutError::Invalid(_) => ApiError::unprocessable("invalid", message),
            PayoutError::BelowMinimum { min_sat } => {
                ApiError::unprocessable("below_minimum", message).with("min_sat", min_sat)
            }
            PayoutError::InsufficientFunds { balance_msat, .. } => {
                ApiError::unprocessable("insufficient_funds", message)
                    .with("balance_msat", balance_msat)
            }
            PayoutError::NoPayoutAddress => ApiError::unprocessable("no_payout_address", message),
            PayoutError::Conflict(_) => ApiError::conflict("conflict", message),
            PayoutError::DuplicateEvent(_) => ApiError::conflict("duplicate_event", message),
            PayoutError::PsbtMismatch(diffs) => {
                ApiError::unprocessable("psbt_mismatch", message).with("differences", diffs)
            }
            PayoutError::Waiting(_) => ApiError::conflict("payouts_waiting", message),
            PayoutError::Nothing(_) => ApiError::conflict("nothing_to_pay", message),
            PayoutError::Node(_) | PayoutError::Wallet(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "node_error", message)
            }
            PayoutError::Store(e) => e.into(),
            PayoutError::Db(_) => {
                tracing::error!(error = %message, "payouts storage fault");
                ApiError::unavailable(
                    "the ledger cannot commit right now; nothing was recorded, retry later",
                )
            }
        }
    }
}

/// A miner's signed state change on `path`: signature bound to `POST path`,
/// a signed body `ts` in the window, and `miner_id` equal to the signer.
async fn verify_miner_change(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
) -> Result<crate::auth::Signed, ApiError> {
    let signed = app
        .auth
        .verify(
            headers,
            body,
            Bucket::Signed,
            Binding::Request {
                method: "POST",
                path,
            },
        )
        .await?;
    app.auth.require_body_ts(&signed.body)?;
    require_same_miner(&signed.miner.id, &signed.body)?;
    Ok(signed)
}

fn require_same_miner(signed_id: &str, body: &Value) -> Result<(), ApiError> {
    match body.get("miner_id").and_then(Value::as_str) {
        Some(id) if id == signed_id => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "miner_mismatch",
            "miner_id in the body must equal X-User-ID",
        )),
        None => Err(ApiError::unprocessable("invalid", "miner_id is required")),
    }
}

#[derive(Deserialize)]
struct PayoutAddressBody {
    address: String,
    event_id: String,
    #[serde(default, deserialize_with = "serde_btc::deserialize_opt_sat")]
    threshold_btc: Option<i64>,
}

/// `POST /api/miner/payout_address` (signed) `{miner_id, address, ts}`.
async fn payout_address(
    State(app): State<App>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let signed = verify_miner_change(&app, &headers, &body, "/api/miner/payout_address").await?;
    let request: PayoutAddressBody = parse_json(&body)?;
    let (record, payable_at) = app
        .payouts
        .set_payout_address(
            &signed.miner,
            &request.address,
            request.threshold_btc,
            &request.event_id,
        )
        .await?;
    Ok(axum::Json(json!({
        "status": "ok",
        "miner_id": record.id,
        "address": record.payout_address,
        "payable_at": payable_at,
        "threshold_sat": record.payout_threshold_sat,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct WithdrawBody {
    #[serde(deserialize_with = "serde_btc::deserialize_sat")]
    amount: i64,
    event_id: String,
}

/// `POST /api/withdraw` (signed) `{miner_id, amount, event_id, ts}` → 202.
async fn withdraw(
    State(app): State<App>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let signed = verify_miner_change(&app, &headers, &body, "/api/withdraw").await?;
    let request: WithdrawBody = parse_json(&body)?;
    crate::replay::validate_event_id(&request.event_id)
        .map_err(|why| ApiError::unprocessable("invalid", why))?;
    let w = app
        .payouts
        .request(&signed.miner, request.amount, &request.event_id)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "status": "accepted",
            "withdrawal_id": w.id,
            "state": w.state,
            "miner_id": w.miner_id,
            "address": w.address,
            "amount_sat": w.amount_sat,
            "amount_btc": format_btc(w.amount_sat),
            "payable_at": w.payable_at,
        })),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/admin/withdrawals?state=&limit=&cursor=`
async fn list_withdrawals(
    State(app): State<App>,
    _admin: Admin,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::unprocessable("invalid", e.body_text()))?;
    let offset = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c
            .parse()
            .map_err(|_| ApiError::unprocessable("invalid", "cursor must come from next_cursor"))?,
    };
    let page = app.payouts.list(q.state, offset, q.limit).await?;
    let next = offset as u64 + page.rows.len() as u64;
    Ok(axum::Json(json!({
        "total": page.total,
        "withdrawals": page.rows.iter().map(withdrawal_json).collect::<Vec<_>>(),
        "next_cursor": (next < page.total).then(|| next.to_string()),
    }))
    .into_response())
}

/// `POST /api/admin/withdrawals/{id}/approve`
async fn approve(
    State(app): State<App>,
    admin: Admin,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let result = app.payouts.approve(admin.actor, vec![id]).await?;
    let outcome = result
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("no approval result"))?;
    if !outcome.ok {
        let message = outcome.error.unwrap_or_default();
        return Err(if message.starts_with("no such") {
            ApiError::not_found(message)
        } else {
            ApiError::conflict("wrong_state", message)
        });
    }
    let w = app.payouts.withdrawal(id).await?;
    Ok(axum::Json(withdrawal_json(&w.row())).into_response())
}

#[derive(Deserialize)]
struct RejectBody {
    reason: String,
}

/// `POST /api/admin/withdrawals/{id}/reject` `{reason}`
async fn reject(
    State(app): State<App>,
    admin: Admin,
    Path(id): Path<i64>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: RejectBody = parse_json(&body)?;
    let w = app.payouts.reject(admin.actor, id, request.reason).await?;
    Ok(axum::Json(withdrawal_json(&w.row())).into_response())
}

#[derive(Deserialize)]
struct PaymentBody {
    miner_id: String,
    to_address: String,
    #[serde(deserialize_with = "serde_btc::deserialize_sat")]
    amount: i64,
}

#[derive(Deserialize)]
struct BatchPayoutBody {
    payments: Vec<PaymentBody>,
    /// Makes a retried request idempotent.
    #[serde(default)]
    request_id: Option<String>,
}

fn batch_json(batch: &BatchRow) -> Value {
    json!({
        "id": batch.id,
        "batch_id": batch.id,
        "mode": batch.mode,
        "state": batch.state,
        "withdrawal_ids": batch.withdrawal_ids,
        "total_sat": batch.total_sat,
        "total_btc": format_btc(batch.total_sat),
        "fee_sat": batch.fee_sat,
        "txid": batch.txid,
        "confirmations": batch.confirmations,
        "psbt_id": batch.psbt_id,
        "note": batch.note,
        "created_at": batch.created_at,
        "updated_at": batch.updated_at,
    })
}

fn outcome_json(outcome: &BatchOutcome) -> Value {
    let mut body = batch_json(&outcome.batch);
    body["status"] = json!("ok");
    if let Some(psbt) = &outcome.psbt {
        body["psbt"] = json!(psbt);
    }
    body
}

/// `POST /api/admin/batch_payout` — the seed's body; amounts exact.
async fn batch_payout(
    State(app): State<App>,
    admin: Admin,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: BatchPayoutBody = parse_json(&body)?;
    let payments = request
        .payments
        .into_iter()
        .map(|p| Payment {
            miner_id: p.miner_id,
            to_address: p.to_address,
            amount_sat: p.amount,
        })
        .collect();
    let outcome = app
        .payouts
        .batch_payout(admin.actor, payments, request.request_id)
        .await?;
    Ok(axum::Json(outcome_json(&outcome)).into_response())
}

#[derive(Deserialize, Default)]
struct IdsBody {
    #[serde(default)]
    withdrawal_ids: Vec<i64>,
}

fn ids_body(body: &[u8]) -> Result<IdsBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(IdsBody::default())
    } else {
        parse_json(body)
    }
}

/// `POST /api/admin/send_batch` `{withdrawal_ids}` (empty: all payable).
async fn send_batch(
    State(app): State<App>,
    admin: Admin,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request = ids_body(&body)?;
    let outcome = app
        .payouts
        .send_batch(admin.actor, request.withdrawal_ids)
        .await?;
    Ok(axum::Json(outcome_json(&outcome)).into_response())
}

/// `GET /api/admin/batches`
async fn batches(State(app): State<App>, _admin: Admin) -> Result<Response, ApiError> {
    let batches = app.payouts.batches(100).await?;
    Ok(
        axum::Json(json!({"batches": batches.iter().map(batch_json).collect::<Vec<_>>()}))
            .into_response(),
    )
}

/// `POST /api/admin/batches/{id}/resolve` `{"outcome":"paid","txid":…}` |
/// `{"outcome":"retry"}` | `{"outcome":"failed"}`
async fn resolve(
    State(app): State<App>,
    admin: Admin,
    Path(id): Path<i64>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let resolution: BatchResolution = parse_json(&body)?;
    let batch = app.payouts.resolve(admin.actor, id, resolution).await?;
    Ok(axum::Json(batch_json(&batch)).into_response())
}

/// `POST /api/admin/batches/{id}/cancel` — a cold batch not broadcast:
/// withdrawals wait again, inputs unlocked; 409 if its txid is known.
async fn cancel(
    State(app): State<App>,
    admin: Admin,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let batch = app.payouts.cancel_cold(admin.actor, id).await?;
    Ok(axum::Json(batch_json(&batch)).into_response())
}

#[derive(Deserialize)]
struct PauseBody {
    paused: bool,
}

/// `POST /api/admin/payouts/pause` `{paused}`
async fn pause(
    State(app): State<App>,
    admin: Admin,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: PauseBody = parse_json(&body)?;
    app.payouts.set_paused(admin.actor, request.paused).await?;
    Ok(axum::Json(json!({"status": "ok", "paused": request.paused})).into_response())
}

pub fn review_json(review: &PsbtReview) -> Value {
    serde_json::to_value(review).unwrap_or(Value::Null)
}

/// `POST /api/admin/create_psbt` `{withdrawal_ids}` → `{psbt_id, psbt, review}`
async fn create_psbt(
    State(app): State<App>,
    admin: Admin,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request = ids_body(&body)?;
    let (outcome, review) = app
        .payouts
        .create_psbt(admin.actor, request.withdrawal_ids)
        .await?;
    let mut body = outcome_json(&outcome);
    body["psbt_id"] = json!(review.psbt_id);
    body["review"] = review_json(&review);
    Ok(axum::Json(body).into_response())
}

/// `GET /api/admin/psbt/{id}` — the review.
async fn psbt_review(
    State(app): State<App>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let review = app.payouts.psbt_review(id).await?;
    Ok(axum::Json(review_json(&review)).into_response())
}

#[derive(Deserialize)]
struct ImportBody {
    psbt: String,
}

/// `POST /api/admin/psbt/{id}/import` `{psbt}` — review a signed PSBT
/// before finalizing (refused with the differences if tampered).
async fn import_psbt(
    State(app): State<App>,
    admin: Admin,
    Path(id): Path<i64>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: ImportBody = parse_json(&body)?;
    let review = app
        .payouts
        .import_psbt(admin.actor, id, request.psbt)
        .await?;
    Ok(axum::Json(review_json(&review)).into_response())
}

#[derive(Deserialize)]
struct FinalizeBody {
    psbt_id: i64,
    #[serde(default)]
    psbt: Option<String>,
}

/// `POST /api/admin/finalize_psbt` `{psbt_id, psbt}` → `{txid}` or 422
/// with the differences.
async fn finalize_psbt(
    State(app): State<App>,
    admin: Admin,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: FinalizeBody = parse_json(&body)?;
    let result = app
        .payouts
        .finalize_psbt(admin.actor, request.psbt_id, request.psbt)
        .await?;
    Ok(axum::Json(json!({"status": "ok", "txid": result.txid, "batch_id": result.batch_id, "psbt_id": request.psbt_id})).into_response())
}

/// Parses a `POST /api/withdraw` body with the handler's own deserializer
/// (public for the fuzz target; the signature is checked before it).
pub fn parse_withdraw_body(body: &[u8]) -> Result<(), ApiError> {
    parse_json::<WithdrawBody>(body).map(|_| ())
}
