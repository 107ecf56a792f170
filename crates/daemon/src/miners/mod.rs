//! Miners: identities, tiers, activity, personal keys and payout addresses.
//! Owns the `miners` table.
//!
//! Personal API keys are never stored. A miner's key is
//! `hex(HMAC-SHA256(master key, "pooldesk/api-key/v1" ‖ 0 ‖ id ‖ 0 ‖ version))`,
//! so a copy of the database alone holds no usable key, and rotating a key
//! is bumping `key_version`.

pub mod service;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::secrets::Secret;
use crate::store::{StorageFault, WriteCtx};

/// Tiers of the COINjecture contract; operators may add their own in
/// `[limits] tiers`.
pub const KNOWN_TIERS: &[&str] = &[
    "TIER_1_MOBILE",
    "TIER_2_DESKTOP",
    "TIER_3_WORKSTATION",
    "TIER_4_SERVER",
    "TIER_5_CLUSTER",
];

pub const AUTH_PERSONAL: &str = "hmac_personal";
pub const AUTH_SHARED: &str = "hmac_shared";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MinerRecord {
    pub id: String,
    pub created_at: i64,
    pub source: String,
    pub active: bool,
    pub tier: Option<String>,
    pub auth_method: Option<String>,
    pub key_version: Option<u32>,
    pub key_issued_at: Option<i64>,
    pub payout_address: Option<String>,
    pub payout_address_set_at: Option<i64>,
    pub payout_threshold_sat: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum MinerError {
    #[error("miner {0} already exists")]
    Exists(String),
    #[error("no miner {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("miner storage error: {0}")]
    Db(#[from] rusqlite::Error),
}

impl StorageFault for MinerError {
    fn storage_fault(&self) -> Option<String> {
        match self {
            MinerError::Db(e) => Some(e.to_string()),
            _ => None,
        }
    }
}

/// Punctuation allowed in ids besides letters and digits.
pub const ID_PUNCTUATION: &str = "._-@+:";

/// Ids are shown to admins and miners side by side, so two different ids
/// must never look alike. An id is 1–64 characters of: ASCII letters and
/// digits, the punctuation in [`ID_PUNCTUATION`], and non-ASCII letters
/// (the seed vectors use `müller`) that UTS 39 allows in identifiers —
/// only in NFC form and from a single script, so no invisible characters
/// (`demo-miner-1\u{200b}`), no spaces, no `/`, and no Latin/Cyrillic
/// look-alike mixes (`pаypal`). Bitcoin addresses, the ids pools commonly
/// use, are all ASCII letters and digits.
pub fn validate_id(kind: &str, id: &str) -> Result<(), String> {
    use unicode_normalization::is_nfc;
    use unicode_security::{GeneralSecurityProfile, MixedScript};
    let chars = id.chars().count();
    if chars == 0 || chars > 64 {
        return Err(format!("{kind} must be 1 to 64 characters"));
    }
    for c in id.chars() {
        let allowed = if c.is_ascii() {
            c.is_ascii_alphanumeric() || ID_PUNCTUATION.contains(c)
        } else {
            c.is_alphabetic() && GeneralSecurityProfile::identifier_allowed(c)
        };
        if !allowed {
            return Err(format!(
                "{kind} may contain only letters, digits and {ID_PUNCTUATION} (found U+{:04X})",
                c as u32
            ));
        }
    }
    if !id.is_ascii() {
        if !is_nfc(id) {
            return Err(format!(
                "{kind} must be in Unicode normal form C (precomposed letters)"
            ));
        }
        if !id.is_single_script() {
            return Err(format!(
                "{kind} mixes letters of different scripts, which can look like another id"
            ));
        }
    }
    Ok(())
}

pub fn validate_tier(
    tier: &str,
    configured: &std::collections::BTreeMap<String, u32>,
) -> Result<(), String> {
    if KNOWN_TIERS.contains(&tier) || configured.contains_key(tier) {
        Ok(())
    } else {
        Err(format!(
            "unknown tier {tier:?}; known tiers: {}",
            KNOWN_TIERS.join(", ")
        ))
    }
}

/// The personal API key of `miner_id` at `version`.
pub fn derive_api_key(master_key: &[u8], miner_id: &str, version: u32) -> String {
    let mut message = Vec::with_capacity(miner_id.len() + 32);
    message.extend_from_slice(b"pooldesk/api-key/v1\0");
    message.extend_from_slice(miner_id.as_bytes());
    message.push(0);
    message.extend_from_slice(version.to_string().as_bytes());
    pooldesk_proto::sig::hmac_sha256_hex(master_key, &message)
}

const COLUMNS: &str = "id, created_at, source, active, tier, auth_method, key_version, key_issued_at, payout_address, payout_address_set_at, payout_threshold_sat";

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<MinerRecord> {
    Ok(MinerRecord {
        id: r.get(0)?,
        created_at: r.get(1)?,
        source: r.get(2)?,
        active: r.get(3)?,
        tier: r.get(4)?,
        auth_method: r.get(5)?,
        key_version: r.get(6)?,
        key_issued_at: r.get(7)?,
        payout_address: r.get(8)?,
        payout_address_set_at: r.get(9)?,
        payout_threshold_sat: r.get(10)?,
    })
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<MinerRecord>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM miners WHERE id = ?1"))?
        .query_row([id], row_to_record)
        .optional()
}

pub fn all(conn: &Connection) -> rusqlite::Result<Vec<MinerRecord>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM miners"))?;
    let rows = stmt.query_map([], row_to_record)?;
    rows.collect()
}

pub fn count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT COUNT(*) FROM miners")?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

pub fn inactive_ids(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM miners WHERE active = 0")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Creates the miner if unknown (first report). Returns whether it was new.
pub fn ensure_exists(ctx: &WriteCtx<'_>, id: &str, source: &str) -> rusqlite::Result<bool> {
    let changed = ctx
        .conn
        .prepare_cached(
            "INSERT INTO miners (id, created_at, source, active) VALUES (?1, ?2, ?3, 1) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![id, ctx.now_s, source])?;
    Ok(changed == 1)
}

/// Registers a new miner with a personal key (version 1). An id that
/// exists in any form (even one created by pool reports) is refused: keys
/// for existing miners are issued by an admin.
pub fn register(
    ctx: &WriteCtx<'_>,
    id: &str,
    tier: &str,
    auth_method: &str,
) -> Result<u32, MinerError> {
    let changed = ctx
        .conn
        .prepare_cached(
            "INSERT INTO miners (id, created_at, source, active, tier, auth_method, key_version, key_issued_at)
             VALUES (?1, ?2, 'register', 1, ?3, ?4, 1, ?2) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![id, ctx.now_s, tier, auth_method])?;
    if changed == 0 {
        return Err(MinerError::Exists(id.to_string()));
    }
    Ok(1)
}

/// Issues a personal key to an existing miner, or rotates its key (the
/// old key stops working at once). Returns the new version.
pub fn issue_key(ctx: &WriteCtx<'_>, id: &str, create_if_missing: bool) -> Result<u32, MinerError> {
    if create_if_missing {
        ensure_exists(ctx, id, "admin")?;
    }
    let version: Option<u32> = ctx
        .conn
        .prepare_cached(
            "UPDATE miners SET key_version = COALESCE(key_version, 0) + 1, key_issued_at = ?2,
                 auth_method = CASE WHEN auth_method IS NULL OR auth_method = 'hmac_shared' THEN 'hmac_personal' ELSE auth_method END
             WHERE id = ?1 RETURNING key_version",
        )?
        .query_row(params![id, ctx.now_s], |r| r.get(0))
        .optional()?;
    version.ok_or_else(|| MinerError::NotFound(id.to_string()))
}

pub fn set_active(ctx: &WriteCtx<'_>, id: &str, active: bool) -> Result<(), MinerError> {
    let changed = ctx
        .conn
        .prepare_cached("UPDATE miners SET active = ?2 WHERE id = ?1")?
        .execute(params![id, active])?;
    if changed == 0 {
        return Err(MinerError::NotFound(id.to_string()));
    }
    Ok(())
}

pub fn set_tier(ctx: &WriteCtx<'_>, id: &str, tier: &str) -> Result<(), MinerError> {
    let changed = ctx
        .conn
        .prepare_cached("UPDATE miners SET tier = ?2 WHERE id = ?1")?
        .execute(params![id, tier])?;
    if changed == 0 {
        return Err(MinerError::NotFound(id.to_string()));
    }
    Ok(())
}

/// Sets the payout address. Setting the same address again keeps its
/// original time, so re-submitting does not restart the safety delay.
pub fn set_payout_address(
    ctx: &WriteCtx<'_>,
    id: &str,
    address: &str,
    threshold_sat: Option<i64>,
) -> Result<MinerRecord, MinerError> {
    let changed = ctx
        .conn
        .prepare_cached(
            "UPDATE miners SET
                 payout_address_set_at = CASE WHEN payout_address IS ?2 THEN payout_address_set_at ELSE ?3 END,
                 payout_address = ?2,
                 payout_threshold_sat = COALESCE(?4, payout_threshold_sat)
             WHERE id = ?1",
        )?
        .execute(params![id, address, ctx.now_s, threshold_sat])?;
    if changed == 0 {
        return Err(MinerError::NotFound(id.to_string()));
    }
    get(ctx.conn, id)?.ok_or_else(|| MinerError::NotFound(id.to_string()))
}

/// In-memory set of deactivated miners, checked on the hot ingest path
/// without a database read. Updated after each committed change.
#[derive(Clone, Default)]
pub struct ActivityCache {
    inactive: Arc<RwLock<HashSet<String>>>,
}

impl ActivityCache {
    pub fn load(conn: &Connection) -> rusqlite::Result<ActivityCache> {
        let cache = ActivityCache::default();
        cache
            .inactive
            .write()
            .expect("activity lock")
            .extend(inactive_ids(conn)?);
        Ok(cache)
    }

    pub fn is_inactive(&self, id: &str) -> bool {
        self.inactive.read().expect("activity lock").contains(id)
    }

    pub fn set(&self, id: &str, active: bool) {
        let mut inactive = self.inactive.write().expect("activity lock");
        if active {
            inactive.remove(id);
        } else {
            inactive.insert(id.to_string());
        }
    }
}

/// The key a signed request from this miner must be verified with, or
/// `None` when it has none (or uses shared auth that is switched off).
pub fn signing_key(
    record: &MinerRecord,
    master_key: &Secret,
    shared_secret: &Secret,
    allow_shared: bool,
) -> Option<Vec<u8>> {
    match (record.auth_method.as_deref(), record.key_version) {
        (Some(AUTH_SHARED), _) if allow_shared => Some(shared_secret.expose().to_vec()),
        (Some(AUTH_PERSONAL), Some(version)) => {
            Some(derive_api_key(master_key.expose(), &record.id, version).into_bytes())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("miner_id", "miner123").is_ok());
        assert!(validate_id("miner_id", "müller").is_ok());
        assert!(validate_id("miner_id", "").is_err());
        assert!(validate_id("miner_id", "a/b").is_err());
        assert!(validate_id("miner_id", " a").is_err());
        assert!(validate_id("miner_id", "a\nb").is_err());
        assert!(validate_id("miner_id", &"x".repeat(65)).is_err());
        // The documented punctuation and addresses pass.
        assert!(validate_id("miner_id", "a.b_c-d@e+f:g").is_ok());
        assert!(validate_id("miner_id", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080").is_ok());
        assert!(validate_id("worker_name", "rig-é").is_ok());
        // Invisible, look-alike and decomposed ids are refused.
        assert!(validate_id("miner_id", "demo-miner-1\u{200b}").is_err());
        assert!(validate_id("miner_id", "demo\u{2060}miner").is_err());
        assert!(
            validate_id("miner_id", "p\u{0430}ypal").is_err(),
            "Latin + Cyrillic"
        );
        assert!(
            validate_id("miner_id", "mu\u{0308}ller").is_err(),
            "not NFC"
        );
        assert!(validate_id("miner_id", "a b").is_err());
        assert!(validate_id("miner_id", "a\u{00a0}b").is_err());
        assert!(validate_id("miner_id", "a%b").is_err());
        assert!(validate_id("miner_id", "имя").is_ok(), "one script");
    }

    #[test]
    fn keys_depend_on_master_id_and_version() {
        let a = derive_api_key(b"master", "m1", 1);
        assert_eq!(a.len(), 64);
        assert_ne!(a, derive_api_key(b"master", "m1", 2));
        assert_ne!(a, derive_api_key(b"master", "m2", 1));
        assert_ne!(a, derive_api_key(b"other", "m1", 1));
        assert_eq!(a, derive_api_key(b"master", "m1", 1));
    }
}
