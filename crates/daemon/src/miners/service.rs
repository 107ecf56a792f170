//! Miner operations used by HTTP handlers and the control socket.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pooldesk_proto::model::{IssuedKey, ListMiners, MinerDetail, MinerPage, MinerRow, MinerSort};
use rusqlite::Connection;

use super::{AUTH_PERSONAL, AUTH_SHARED, ActivityCache, MinerError, MinerRecord};
use crate::audit::{self, Actor};
use crate::config::{Config, Registration};
use crate::events::{BusEvent, EventBus};
use crate::hashrate::HashrateTracker;
use crate::ledger;
use crate::secrets::Secrets;
use crate::store::{Store, StoreError, WriteError};

#[derive(Debug, thiserror::Error)]
pub enum MinerServiceError {
    #[error("user {0:?} already exists; an admin can issue a key for an existing miner")]
    Exists(String),
    #[error("no miner {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Namespace(String),
    #[error("too many registrations from this address; try again in {0} s")]
    RateLimited(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WriteError<MinerError>> for MinerServiceError {
    fn from(e: WriteError<MinerError>) -> Self {
        match e {
            WriteError::Rejected(MinerError::Exists(id)) => MinerServiceError::Exists(id),
            WriteError::Rejected(MinerError::NotFound(id)) => MinerServiceError::NotFound(id),
            WriteError::Rejected(MinerError::Invalid(why)) => MinerServiceError::Invalid(why),
            WriteError::Rejected(MinerError::Db(e)) => MinerServiceError::Store(e.into()),
            WriteError::Store(e) => MinerServiceError::Store(e),
        }
    }
}

/// What registration answers (the seed's response shape is built from it).
#[derive(Debug, Clone)]
pub struct Registered {
    pub user_id: String,
    /// `None` for `hmac_shared`: the shared secret is never sent out.
    pub api_key: Option<String>,
    pub auth_method: String,
    pub tier: String,
}

#[derive(Clone)]
pub struct MinerService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    secrets: Arc<Secrets>,
    tracker: HashrateTracker,
    activity: ActivityCache,
    bus: EventBus,
    registration: Registration,
    self_prefix: String,
    allow_shared: bool,
    tiers: std::collections::BTreeMap<String, u32>,
    register_limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl MinerService {
    pub fn new(
        config: &Config,
        store: Store,
        secrets: Arc<Secrets>,
        tracker: HashrateTracker,
        activity: ActivityCache,
        bus: EventBus,
    ) -> MinerService {
        let per_hour =
            NonZeroU32::new(config.auth.registrations_per_ip_per_hour.max(1)).expect("at least 1");
        MinerService {
            inner: Arc::new(Inner {
                store,
                secrets,
                tracker,
                activity,
                bus,
                registration: config.auth.registration,
                self_prefix: config.auth.self_registration_prefix.clone(),
                allow_shared: config.auth.allow_shared,
                tiers: config.limits.tiers.clone(),
                register_limiter: RateLimiter::keyed(Quota::per_hour(per_hour)),
            }),
        }
    }

    pub fn activity(&self) -> &ActivityCache {
        &self.inner.activity
    }

    /// `POST /v1/user/register`. `admin` is true when the caller presented
    /// the admin key (required when `auth.registration = "admin"`).
    pub async fn register(
        &self,
        user_id: String,
        auth_method: String,
        tier: String,
        admin: bool,
        client_ip: IpAddr,
    ) -> Result<Registered, MinerServiceError> {
        let inner = &self.inner;
        super::validate_id("user_id", &user_id).map_err(MinerServiceError::Invalid)?;
        super::validate_tier(&tier, &inner.tiers).map_err(MinerServiceError::Invalid)?;
        match auth_method.as_str() {
            AUTH_PERSONAL => {}
            AUTH_SHARED if inner.allow_shared => {}
            AUTH_SHARED => {
                return Err(MinerServiceError::Forbidden(
                    "hmac_shared registration is disabled (auth.allow_shared = false); use hmac_personal".into(),
                ));
            }
            _ => {
                return Err(MinerServiceError::Invalid(
                    "auth_method must be hmac_personal or hmac_shared".into(),
                ));
            }
        }
        if inner.registration == Registration::Admin && !admin {
            return Err(MinerServiceError::Forbidden(
                "registration is by admin only on this pool (auth.registration = \"admin\")".into(),
            ));
        }
        if !admin && !user_id.starts_with(&inner.self_prefix) {
            return Err(MinerServiceError::Namespace(format!(
                "self-registered ids must start with {:?} (ids without it belong to the pool's reports; ask the pool admin for a key)",
                inner.self_prefix
            )));
        }
        // IPv6 clients by /64, like every other per-IP limit: one host
        // usually holds a whole /64.
        let limiter_key = crate::http::ratelimit::key(client_ip);
        if !admin && let Err(not_until) = inner.register_limiter.check_key(&limiter_key) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return Err(MinerServiceError::RateLimited(wait.as_secs() + 1));
        }
        let actor = if admin {
            Actor::HttpAdmin(client_ip.to_string())
        } else {
            Actor::Miner(user_id.clone())
        };
        let (id, method, t) = (user_id.clone(), auth_method.clone(), tier.clone());
        let (version, entry) = inner
            .store
            .write(move |ctx| {
                let version = super::register(ctx, &id, &t, &method)?;
                let entry =
                    audit::record(ctx, &actor, "register", &id, &format!("tier {t}, {method}"))?;
                Ok::<_, MinerError>((version, entry))
            })
            .await?;
        inner.bus.publish(BusEvent::Audit(entry));
        let api_key = (auth_method == AUTH_PERSONAL)
            .then(|| super::derive_api_key(inner.secrets.master_key.expose(), &user_id, version));
        Ok(Registered {
            user_id,
            api_key,
            auth_method,
            tier,
        })
    }

    /// Issues a personal key for a miner (creating the miner if asked), or
    /// rotates it. The key is shown once, here.
    pub async fn issue_key(
        &self,
        actor: Actor,
        miner_id: String,
        create_if_missing: bool,
    ) -> Result<IssuedKey, MinerServiceError> {
        super::validate_id("miner_id", &miner_id).map_err(MinerServiceError::Invalid)?;
        let id = miner_id.clone();
        let (version, entry) = self
            .inner
            .store
            .write(move |ctx| {
                let version = super::issue_key(ctx, &id, create_if_missing)?;
                let action = if version == 1 {
                    "issue_key"
                } else {
                    "rotate_key"
                };
                let entry =
                    audit::record(ctx, &actor, action, &id, &format!("key version {version}"))?;
                Ok::<_, MinerError>((version, entry))
            })
            .await?;
        self.inner.bus.publish(BusEvent::Audit(entry));
        Ok(IssuedKey {
            api_key: super::derive_api_key(
                self.inner.secrets.master_key.expose(),
                &miner_id,
                version,
            ),
            miner_id,
            key_version: version,
        })
    }

    pub async fn set_active(
        &self,
        actor: Actor,
        miner_id: String,
        active: bool,
    ) -> Result<(), MinerServiceError> {
        let id = miner_id.clone();
        let entry = self
            .inner
            .store
            .write(move |ctx| {
                super::set_active(ctx, &id, active)?;
                let action = if active { "reactivate" } else { "deactivate" };
                Ok::<_, MinerError>(audit::record(ctx, &actor, action, &id, "")?)
            })
            .await?;
        self.inner.activity.set(&miner_id, active);
        self.inner.bus.publish(BusEvent::Audit(entry));
        Ok(())
    }

    /// Sets a miner's tier (admin only: the tier sets the miner's rate and
    /// credit limits).
    pub async fn update_tier(
        &self,
        actor: Actor,
        miner_id: String,
        tier: String,
    ) -> Result<(), MinerServiceError> {
        super::validate_tier(&tier, &self.inner.tiers).map_err(MinerServiceError::Invalid)?;
        let id = miner_id.clone();
        let entry = self
            .inner
            .store
            .write(move |ctx| {
                if super::get(ctx.conn, &id)?.is_none() {
                    return Err(MinerError::NotFound(id.clone()));
                }
                super::set_tier(ctx, &id, &tier)?;
                Ok::<_, MinerError>(audit::record(ctx, &actor, "update_tier", &id, &tier)?)
            })
            .await?;
        self.inner.bus.publish(BusEvent::Audit(entry));
        Ok(())
    }

    pub async fn get(&self, miner_id: String) -> Result<Option<MinerRecord>, MinerServiceError> {
        Ok(self
            .inner
            .store
            .read(move |conn| super::get(conn, &miner_id))
            .await?)
    }

    /// A miner with its balance, hashrate, workers and recent credits.
    pub async fn detail(&self, miner_id: String) -> Result<MinerDetail, MinerServiceError> {
        let id = miner_id.clone();
        let (record, balance_msat, mut credits) = self
            .inner
            .store
            .read(move |conn| {
                let Some(record) = super::get(conn, &id)? else {
                    return Ok(None);
                };
                let balance = ledger::balance(conn, &ledger::miner_account(&id))?;
                let mut credits = crate::ingest::share_credits_of(conn, &id, 20)?;
                credits.extend(crate::ingest::block_credits_of(conn, &id, 20)?);
                Ok(Some((record, balance, credits)))
            })
            .await?
            .ok_or_else(|| MinerServiceError::NotFound(miner_id.clone()))?;
        credits.sort_by_key(|c| std::cmp::Reverse(c.at));
        credits.truncate(20);
        let now = crate::clock::now_s();
        let stats = self.inner.tracker.miner(&miner_id, now);
        let workers_active = stats
            .workers
            .iter()
            .filter(|w| w.last_share_at.unwrap_or(0) >= now - 600)
            .count() as u32;
        Ok(MinerDetail {
            row: MinerRow {
                miner_id: record.id.clone(),
                tier: record.tier.clone(),
                active: record.active,
                hashrate_10m: stats.hashrate.h10m,
                workers: workers_active,
                balance_msat,
                last_share_at: stats.last_share_at,
                has_key: record.key_version.is_some(),
            },
            created_at: record.created_at,
            payout_address: record.payout_address.clone(),
            payout_address_payable_at: None,
            key_version: record.key_version,
            hashrate: stats.hashrate,
            workers: stats.workers,
            recent_credits: credits,
            withdrawals: Vec::new(),
        })
    }

    /// Every miner, filtered, sorted and paged. Built from one query plus
    /// the in-memory hashrate, so it stays fast at tens of thousands.
    pub async fn list(&self, query: ListMiners) -> Result<MinerPage, MinerServiceError> {
        let rows = self.inner.store.read(all_rows).await?;
        Ok(page(
            rows,
            &self.inner.tracker,
            &query,
            crate::clock::now_s(),
        ))
    }

    pub async fn count(&self) -> Result<u64, MinerServiceError> {
        Ok(self.inner.store.read(super::count).await?)
    }

    pub fn tracker(&self) -> &HashrateTracker {
        &self.inner.tracker
    }
}

fn all_rows(conn: &Connection) -> rusqlite::Result<Vec<MinerRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.id, m.tier, m.active, m.key_version IS NOT NULL, COALESCE(a.balance_msat, 0)
         FROM miners m LEFT JOIN accounts a ON a.name = 'miner:' || m.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(MinerRow {
            miner_id: r.get(0)?,
            tier: r.get(1)?,
            active: r.get(2)?,
            hashrate_10m: 0.0,
            workers: 0,
            balance_msat: r.get(4)?,
            last_share_at: None,
            has_key: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Filter, sort and page (pure, so it can be tested on 10,000 rows).
pub fn page(
    mut rows: Vec<MinerRow>,
    tracker: &HashrateTracker,
    query: &ListMiners,
    now_s: i64,
) -> MinerPage {
    let summaries = tracker.summaries(now_s);
    for row in &mut rows {
        if let Some((rate, workers, last)) = summaries.get(&row.miner_id) {
            row.hashrate_10m = *rate;
            row.workers = *workers;
            row.last_share_at = Some(*last);
        }
    }
    if let Some(filter) = query.filter.as_deref().filter(|f| !f.is_empty()) {
        let needle = filter.to_lowercase();
        rows.retain(|r| r.miner_id.to_lowercase().contains(&needle));
    }
    sort_rows(&mut rows, query.sort, query.descending);
    let total = rows.len() as u64;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let offset = query.offset as usize;
    let rows = rows.into_iter().skip(offset).take(limit).collect();
    MinerPage {
        total,
        offset: query.offset,
        rows,
    }
}

pub fn sort_rows(rows: &mut [MinerRow], sort: MinerSort, descending: bool) {
    use std::cmp::Ordering;
    let key = |a: &MinerRow, b: &MinerRow| -> Ordering {
        let primary = match sort {
            MinerSort::Id => Ordering::Equal,
            MinerSort::Tier => a.tier.cmp(&b.tier),
            MinerSort::Hashrate => a.hashrate_10m.total_cmp(&b.hashrate_10m),
            MinerSort::Workers => a.workers.cmp(&b.workers),
            MinerSort::Balance => a.balance_msat.cmp(&b.balance_msat),
            MinerSort::LastShare => a.last_share_at.cmp(&b.last_share_at),
            MinerSort::Status => a.active.cmp(&b.active),
        };
        // Ties broken by id so paging is stable.
        primary.then_with(|| a.miner_id.cmp(&b.miner_id))
    };
    if descending {
        rows.sort_by(|a, b| key(b, a));
    } else {
        rows.sort_by(key);
    }
}
