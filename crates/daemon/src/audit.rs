//! The audit log: who did what to whom, append-only, written in the same
//! transaction as the change it records (so a change without its audit
//! entry cannot exist). Owns the `audit_log` table.

use pooldesk_proto::model::{AuditEntry, AuditPage};
use rusqlite::{Connection, params};

use crate::store::WriteCtx;

/// Who acted: a control-socket peer, an HTTP admin, a miner, or the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Control socket peer uid (SO_PEERCRED).
    Uid(u32),
    /// Admin HTTP API (`X-API-KEY`), with the client address.
    HttpAdmin(String),
    Miner(String),
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Uid(uid) => write!(f, "uid:{uid}"),
            Actor::HttpAdmin(ip) => write!(f, "http-admin@{ip}"),
            Actor::Miner(id) => write!(f, "miner:{id}"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// Appends an entry inside the caller's transaction; returns it.
pub fn record(
    ctx: &WriteCtx<'_>,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: &str,
) -> rusqlite::Result<AuditEntry> {
    let actor = actor.to_string();
    ctx.conn
        .prepare_cached("INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![ctx.now_s, actor, action, subject, detail])?;
    Ok(AuditEntry {
        id: ctx.conn.last_insert_rowid(),
        at: ctx.now_s,
        actor,
        action: action.to_string(),
        subject: subject.to_string(),
        detail: detail.to_string(),
    })
}

/// A page of entries, newest first, older than `before_id`.
pub fn page(conn: &Connection, before_id: Option<i64>, limit: u32) -> rusqlite::Result<AuditPage> {
    let limit = limit.clamp(1, 500);
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor, action, subject, detail FROM audit_log WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let entries: Vec<AuditEntry> = stmt
        .query_map(params![before_id.unwrap_or(i64::MAX), limit], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                subject: r.get(4)?,
                detail: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let next_before_id = if entries.len() == limit as usize {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(AuditPage {
        entries,
        next_before_id,
    })
}
