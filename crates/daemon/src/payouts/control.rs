//! Control-socket requests served by the payouts module.

use pooldesk_proto::control::{ErrorBody, Request, Response};
use pooldesk_proto::model::Done;

use super::PayoutError;
use crate::app::App;
use crate::audit::Actor;

/// Maps a payouts error to the control error body (same codes as HTTP).
pub fn error_body(e: PayoutError) -> ErrorBody {
    let code = match &e {
        PayoutError::NotFound(_) => "not_found",
        PayoutError::WrongState { .. } => "wrong_state",
        PayoutError::Invalid(_) => "invalid",
        PayoutError::BelowMinimum { .. } => "below_minimum",
        PayoutError::InsufficientFunds { .. } => "insufficient_funds",
        PayoutError::NoPayoutAddress => "no_payout_address",
        PayoutError::Conflict(_) => "conflict",
        PayoutError::DuplicateEvent(_) => "duplicate_event",
        PayoutError::PsbtMismatch(_) => "psbt_mismatch",
        PayoutError::Waiting(_) => "payouts_waiting",
        PayoutError::Nothing(_) => "nothing_to_pay",
        PayoutError::Node(_) | PayoutError::Wallet(_) => "node_error",
        PayoutError::Store(_) | PayoutError::Db(_) => "unavailable",
    };
    let details = match &e {
        PayoutError::PsbtMismatch(diffs) => Some(serde_json::json!({ "differences": diffs })),
        _ => None,
    };
    let mut body = ErrorBody::new(code, e.to_string());
    body.details = details;
    body
}

pub async fn handle(app: &App, actor: Actor, request: Request) -> Result<Response, ErrorBody> {
    let payouts = &app.payouts;
    let result = match request {
        Request::ListWithdrawals(query) => payouts
            .list(query.state, query.offset, query.limit)
            .await
            .map(Response::Withdrawals),
        Request::ApproveWithdrawals { ids } => {
            payouts.approve(actor, ids).await.map(Response::Approvals)
        }
        Request::RejectWithdrawal { id, reason } => {
            payouts.reject(actor, id, reason).await.map(|w| {
                Response::Done(Done {
                    message: format!(
                        "withdrawal {} rejected; {} sat returned to {}",
                        w.id, w.amount_sat, w.miner_id
                    ),
                })
            })
        }
        Request::SendBatch { withdrawal_ids } => payouts
            .send_batch(actor, withdrawal_ids)
            .await
            .map(Response::Batch),
        Request::ListBatches { limit } => payouts
            .batches(limit.unwrap_or(50))
            .await
            .map(Response::Batches),
        Request::PsbtReview { psbt_id } => payouts
            .psbt_review(psbt_id)
            .await
            .map(|r| Response::PsbtReview(Box::new(r))),
        Request::ImportPsbt { psbt_id, psbt } => payouts
            .import_psbt(actor, psbt_id, psbt)
            .await
            .map(|r| Response::PsbtReview(Box::new(r))),
        Request::FinalizePsbt { psbt_id } => payouts
            .finalize_psbt(actor, psbt_id, None)
            .await
            .map(Response::Broadcast),
        Request::ResolveBatch {
            batch_id,
            resolution,
        } => payouts.resolve(actor, batch_id, resolution).await.map(|b| {
            Response::Done(Done {
                message: format!("batch {} is now {}", b.id, b.state),
            })
        }),
        Request::SetPayoutsPaused { paused } => payouts.set_paused(actor, paused).await.map(|()| {
            Response::Done(Done {
                message: if paused {
                    "payouts paused".into()
                } else {
                    "payouts resumed".into()
                },
            })
        }),
        _ => {
            return Err(ErrorBody::new(
                "unknown_method",
                "this pooldeskd does not handle that request",
            ));
        }
    };
    result.map_err(error_body)
}
