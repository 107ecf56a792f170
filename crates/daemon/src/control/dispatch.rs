//! Control requests → services. Every action runs as `Actor::Uid(peer)`.

use pooldesk_proto::control::{ErrorBody, Outcome, Request, Response};
use pooldesk_proto::model::Done;

use crate::app::App;
use crate::audit::Actor;
use crate::miners::service::MinerServiceError;

pub async fn handle(app: &App, uid: u32, request: Request) -> Outcome {
    match run(app, Actor::Uid(uid), request).await {
        Ok(response) => Outcome::Ok(response),
        Err(error) => Outcome::Err(error),
    }
}

fn miner_error(e: MinerServiceError) -> ErrorBody {
    let code = match &e {
        MinerServiceError::Exists(_) => "exists",
        MinerServiceError::NotFound(_) => "not_found",
        MinerServiceError::Invalid(_) => "invalid",
        MinerServiceError::Forbidden(_) => "forbidden",
        MinerServiceError::Namespace(_) => "reserved_namespace",
        MinerServiceError::RateLimited(_) => "rate_limited",
        MinerServiceError::Store(_) => "unavailable",
    };
    ErrorBody::new(code, e.to_string())
}

fn store_error(e: crate::store::StoreError) -> ErrorBody {
    ErrorBody::new("unavailable", e.to_string())
}

async fn run(app: &App, actor: Actor, request: Request) -> Result<Response, ErrorBody> {
    match request {
        Request::Snapshot => Ok(Response::Snapshot(Box::new(
            (*app.snapshot.latest()).clone(),
        ))),
        Request::Subscribe => Ok(Response::Subscribed),
        Request::ListMiners(query) => app
            .miners
            .list(query)
            .await
            .map(Response::Miners)
            .map_err(miner_error),
        Request::MinerDetail { miner_id } => crate::views::miner_detail(app, miner_id)
            .await
            .map(|d| Response::MinerDetail(Box::new(d)))
            .map_err(miner_error),
        Request::SetMinerActive { miner_id, active } => {
            app.miners
                .set_active(actor, miner_id.clone(), active)
                .await
                .map_err(miner_error)?;
            Ok(Response::Done(Done {
                message: format!(
                    "miner {miner_id} {}",
                    if active { "reactivated" } else { "deactivated" }
                ),
            }))
        }
        Request::IssueKey { miner_id } => app
            .miners
            .issue_key(actor, miner_id, false)
            .await
            .map(Response::ApiKey)
            .map_err(miner_error),
        Request::AuditPage { before_id, limit } => app
            .store
            .read(move |conn| crate::audit::page(conn, before_id, limit.unwrap_or(100)))
            .await
            .map(Response::Audit)
            .map_err(store_error),
        Request::ResolveFaucetBatch {
            batch_id,
            resolution,
        } => app
            .faucet
            .resolve(actor, batch_id, resolution)
            .await
            .map(|message| Response::Done(Done { message }))
            .map_err(|e| ErrorBody::new(e.code(), e.to_string())),
        Request::FaucetStatus => app
            .faucet
            .status()
            .await
            .map(|s| Response::Faucet(Box::new(s)))
            .map_err(|e| ErrorBody::new(e.code(), e.to_string())),
        other => crate::payouts::control::handle(app, actor, other).await,
    }
}
