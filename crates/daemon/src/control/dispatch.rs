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
        Request::ListBlocks { limit } => app
            .store
            .read(move |conn| crate::blocks::db::list(conn, limit.unwrap_or(100)))
            .await
            .map(Response::Blocks)
            .map_err(store_error),
        Request::BlockStatement { hash } => {
            let wanted = hash.clone();
            app.store
                .read(move |conn| crate::blocks::db::statement(conn, &wanted, false))
                .await
                .map_err(store_error)?
                .map(|s| Response::BlockStatement(Box::new(s)))
                .ok_or_else(|| ErrorBody::new("not_found", format!("no block {hash}")))
        }
        other => crate::payouts::control::handle(app, actor, other).await,
    }
}

#[cfg(test)]
mod tests {
    //! Each request reaches its service as the peer's uid, and each
    //! service error keeps its code on the way out.

    use super::*;
    use crate::config::{Config, WalletBackendKind};
    use crate::secrets::{Secret, Secrets};
    use pooldesk_proto::model::{BatchResolution, ListMiners, ListWithdrawals, MinerSort};

    const UID: u32 = 4242;

    async fn app() -> (tempfile::TempDir, App) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            wallet_backend: WalletBackendKind::Simulated,
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let secret = |b: u8| Secret::new(vec![b; 32]);
        let secrets = Secrets {
            report_secret: secret(1),
            admin_api_key: secret(2),
            master_key: secret(3),
            shared_secret: secret(4),
        };
        let app = App::build(config, secrets).expect("app");
        (dir, app)
    }

    async fn ok(app: &App, request: Request) -> Response {
        match handle(app, UID, request.clone()).await {
            Outcome::Ok(response) => response,
            Outcome::Err(e) => panic!("{request:?}: {} ({})", e.message, e.code),
        }
    }

    async fn code(app: &App, request: Request) -> String {
        match handle(app, UID, request.clone()).await {
            Outcome::Err(e) => e.code,
            Outcome::Ok(response) => panic!("{request:?} succeeded: {response:?}"),
        }
    }

    /// The newest audit entries, newest first, as (actor, action, subject).
    async fn audit(app: &App) -> Vec<(String, String, String)> {
        match ok(
            app,
            Request::AuditPage {
                before_id: None,
                limit: Some(100),
            },
        )
        .await
        {
            Response::Audit(page) => page
                .entries
                .into_iter()
                .map(|e| (e.actor, e.action, e.subject))
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    async fn create(app: &App, miner: &str) {
        app.miners
            .issue_key(Actor::System, miner.into(), true)
            .await
            .expect("create miner");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn block_requests_are_answered() {
        let (_dir, app) = app().await;
        assert_eq!(
            ok(&app, Request::ListBlocks { limit: None }).await,
            Response::Blocks(Vec::new())
        );
        assert_eq!(
            code(
                &app,
                Request::BlockStatement {
                    hash: "00ab".into()
                }
            )
            .await,
            "not_found"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn miner_requests_act_as_the_peer_uid_and_change_the_miner() {
        let (_dir, app) = app().await;
        create(&app, "alice").await;
        let done = ok(
            &app,
            Request::SetMinerActive {
                miner_id: "alice".into(),
                active: false,
            },
        )
        .await;
        assert_eq!(
            done,
            Response::Done(Done {
                message: "miner alice deactivated".into()
            })
        );
        let record = app.miners.get("alice".into()).await.unwrap().unwrap();
        assert!(!record.active, "SetMinerActive did not deactivate");
        match ok(
            &app,
            Request::IssueKey {
                miner_id: "alice".into(),
            },
        )
        .await
        {
            Response::ApiKey(key) => {
                assert_eq!((key.miner_id.as_str(), key.key_version), ("alice", 2));
                assert!(!key.api_key.is_empty());
            }
            other => panic!("{other:?}"),
        }
        // Both changes are audited as this peer, newest first.
        let entries = audit(&app).await;
        let uid = format!("uid:{UID}");
        assert_eq!(
            entries[..2],
            [
                (uid.clone(), "rotate_key".into(), "alice".into()),
                (uid, "deactivate".into(), "alice".into()),
            ]
        );
        match ok(
            &app,
            Request::MinerDetail {
                miner_id: "alice".into(),
            },
        )
        .await
        {
            Response::MinerDetail(d) => {
                assert_eq!((d.row.miner_id.as_str(), d.row.active), ("alice", false));
                assert_eq!(d.key_version, Some(2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unknown_miners_are_not_found_and_nothing_is_audited() {
        let (_dir, app) = app().await;
        let before = audit(&app).await;
        for request in [
            Request::SetMinerActive {
                miner_id: "ghost".into(),
                active: false,
            },
            Request::IssueKey {
                miner_id: "ghost".into(),
            },
            Request::MinerDetail {
                miner_id: "ghost".into(),
            },
        ] {
            assert_eq!(code(&app, request).await, "not_found");
        }
        assert_eq!(
            code(
                &app,
                Request::IssueKey {
                    miner_id: "no spaces allowed".into()
                }
            )
            .await,
            "invalid"
        );
        assert_eq!(audit(&app).await, before);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn list_miners_pages_in_the_requested_order() {
        let (_dir, app) = app().await;
        for miner in ["carol", "alice", "bob", "dave"] {
            create(&app, miner).await;
        }
        let page = |descending, offset| ListMiners {
            sort: MinerSort::Id,
            descending,
            filter: None,
            offset,
            limit: Some(3),
        };
        let ids = |r: Response| match r {
            Response::Miners(p) => (
                p.total,
                p.rows.into_iter().map(|r| r.miner_id).collect::<Vec<_>>(),
            ),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ids(ok(&app, Request::ListMiners(page(true, 0))).await),
            (4, vec!["dave".into(), "carol".into(), "bob".into()])
        );
        assert_eq!(
            ids(ok(&app, Request::ListMiners(page(true, 3))).await),
            (4, vec!["alice".into()])
        );
        assert_eq!(
            ids(ok(&app, Request::ListMiners(page(false, 0))).await),
            (4, vec!["alice".into(), "bob".into(), "carol".into()])
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn payout_requests_reach_the_payouts_module_with_its_error_codes() {
        let (_dir, app) = app().await;
        assert_eq!(
            ok(&app, Request::SetPayoutsPaused { paused: true }).await,
            Response::Done(Done {
                message: "payouts paused".into()
            })
        );
        assert_eq!(
            app.payouts.paused().await.unwrap(),
            Some(format!("paused by uid:{UID}"))
        );
        assert_eq!(
            ok(&app, Request::SetPayoutsPaused { paused: false }).await,
            Response::Done(Done {
                message: "payouts resumed".into()
            })
        );
        assert_eq!(app.payouts.paused().await.unwrap(), None);
        assert_eq!(
            ok(&app, Request::ListBatches { limit: None }).await,
            Response::Batches(Vec::new())
        );
        match ok(&app, Request::ListWithdrawals(ListWithdrawals::default())).await {
            Response::Withdrawals(p) => assert_eq!((p.total, p.rows.len()), (0, 0)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            code(
                &app,
                Request::RejectWithdrawal {
                    id: 999,
                    reason: "no".into()
                }
            )
            .await,
            "not_found"
        );
        assert_eq!(
            code(
                &app,
                Request::ResolveBatch {
                    batch_id: 999,
                    resolution: BatchResolution::Failed
                }
            )
            .await,
            "not_found"
        );
        assert_eq!(
            code(&app, Request::PsbtReview { psbt_id: 999 }).await,
            "not_found"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn snapshot_subscribe_faucet_and_audit_are_answered() {
        let (_dir, app) = app().await;
        assert!(matches!(
            ok(&app, Request::Snapshot).await,
            Response::Snapshot(_)
        ));
        assert_eq!(ok(&app, Request::Subscribe).await, Response::Subscribed);
        assert!(matches!(
            ok(&app, Request::FaucetStatus).await,
            Response::Faucet(_)
        ));
        assert_eq!(
            code(
                &app,
                Request::ResolveFaucetBatch {
                    batch_id: 999,
                    resolution: BatchResolution::Failed
                }
            )
            .await,
            "not_found"
        );
    }
}
