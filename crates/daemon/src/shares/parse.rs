//! The `POST /api/v2/shares` body: parsed share by share so a refusal can
//! name the index of the share at fault. Nothing here touches the ledger.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::SharesError;
use crate::ingest::decimal;
use crate::miners;

/// Longest `origin` and reject reason accepted.
pub const MAX_ORIGIN_LEN: usize = 64;
pub const MAX_REASON_LEN: usize = 64;

/// A validated batch.
#[derive(Debug, Clone)]
pub struct Batch {
    pub origin: String,
    pub ts: f64,
    pub shares: Vec<Share>,
    /// What the sender reports about itself (bridge backlog, quarantine).
    pub backlog_bytes: Option<i64>,
    pub quarantined_lines: Option<i64>,
}

/// A validated share. `credit_msat` and `work` are computed from the exact
/// decimal text of `diff`.
#[derive(Debug, Clone)]
pub struct Share {
    pub seq: i64,
    pub miner: String,
    pub worker: String,
    pub diff_text: String,
    pub sdiff: f64,
    pub accepted: bool,
    pub reason: Option<String>,
    pub share_ms: i64,
    pub hash: Option<String>,
    pub height: Option<i64>,
    pub block: bool,
    /// `floor(diff × rate)` for accepted shares, 0 for rejected ones.
    pub credit_msat: i64,
    /// `floor(diff)`: difficulty-1 shares of work, for hashrate.
    pub work: u128,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchWire<'a> {
    origin: String,
    ts: f64,
    #[serde(borrow)]
    shares: Vec<&'a RawValue>,
    #[serde(default)]
    backlog_bytes: Option<u64>,
    #[serde(default)]
    quarantined_lines: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareWire<'a> {
    seq: u64,
    miner: String,
    #[serde(default)]
    worker: String,
    #[serde(borrow)]
    diff: &'a RawValue,
    sdiff: f64,
    accepted: bool,
    #[serde(default)]
    reason: Option<String>,
    time_s: f64,
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    height: Option<u64>,
    #[serde(default)]
    block: bool,
}

/// Parses and validates a whole batch; the first bad share refuses it.
pub fn parse_batch(
    body: &[u8],
    rate_per_share_msat: i64,
    max_shares: usize,
) -> Result<Batch, SharesError> {
    // One pass: syntax errors are 400, shape errors 422 (a separate
    // validity pass over a multi-megabyte body costs a whole extra parse).
    let wire: BatchWire<'_> = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            SharesError::Malformed("body is not valid JSON".into())
        }
        _ => SharesError::Invalid(format!("batch: {e}")),
    })?;
    if wire.shares.len() > max_shares {
        return Err(SharesError::TooMany {
            count: wire.shares.len(),
            max: max_shares,
        });
    }
    if wire.shares.is_empty() {
        return Err(SharesError::Invalid("shares must not be empty".into()));
    }
    let origin = wire.origin;
    if origin.is_empty()
        || origin.len() > MAX_ORIGIN_LEN
        || !origin
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(SharesError::Invalid(format!(
            "origin must be 1 to {MAX_ORIGIN_LEN} characters of A-Z a-z 0-9 - _ . :"
        )));
    }
    let mut shares = Vec::with_capacity(wire.shares.len());
    let mut seen = std::collections::HashSet::with_capacity(wire.shares.len());
    for (index, raw) in wire.shares.iter().enumerate() {
        let share = parse_share(raw.get(), rate_per_share_msat)
            .map_err(|reason| SharesError::BadShare { index, reason })?;
        if !seen.insert(share.seq) {
            return Err(SharesError::BadShare {
                index,
                reason: format!("seq {} appears twice in this batch", share.seq),
            });
        }
        shares.push(share);
    }
    let to_i64 = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    Ok(Batch {
        origin,
        ts: wire.ts,
        shares,
        backlog_bytes: to_i64(wire.backlog_bytes),
        quarantined_lines: to_i64(wire.quarantined_lines),
    })
}

fn parse_share(text: &str, rate_per_share_msat: i64) -> Result<Share, String> {
    let wire: ShareWire<'_> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let seq = i64::try_from(wire.seq)
        .ok()
        .filter(|s| *s > 0)
        .ok_or("seq must be a whole number from 1 to 2^63-1")?;
    miners::validate_id("miner", &wire.miner)?;
    if !wire.worker.is_empty() {
        miners::validate_id("worker", &wire.worker)?;
    }
    let diff_text = wire.diff.get();
    let (credit_msat, work) = credit_of(diff_text, rate_per_share_msat)?;
    if !wire.sdiff.is_finite() {
        return Err("sdiff must be a finite number".into());
    }
    if !wire.time_s.is_finite() || wire.time_s <= 0.0 || wire.time_s > 1e11 {
        return Err("time_s must be Unix seconds".into());
    }
    let reason = match (wire.accepted, wire.reason) {
        (true, Some(_)) => return Err("an accepted share has no reason".into()),
        (true, None) => None,
        (false, None) => return Err("a rejected share needs a reason".into()),
        (false, Some(r)) => {
            if r.is_empty() || r.len() > MAX_REASON_LEN || r.chars().any(char::is_control) {
                return Err(format!(
                    "reason must be 1 to {MAX_REASON_LEN} bytes without control characters"
                ));
            }
            Some(r)
        }
    };
    if let Some(hash) = &wire.hash
        && (hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err("hash must be 64 hex digits".into());
    }
    let height = match wire.height {
        None => None,
        Some(h) if h <= u64::from(u32::MAX) => Some(h as i64),
        Some(_) => return Err("height is too large".into()),
    };
    if wire.block && (!wire.accepted || wire.hash.is_none()) {
        return Err("a block solve must be an accepted share with its hash".into());
    }
    Ok(Share {
        seq,
        miner: wire.miner,
        worker: wire.worker,
        diff_text: diff_text.to_string(),
        sdiff: wire.sdiff,
        accepted: wire.accepted,
        reason,
        share_ms: (wire.time_s * 1000.0).round() as i64,
        hash: wire.hash.map(|h| h.to_ascii_lowercase()),
        height,
        block: wire.block,
        credit_msat: if wire.accepted { credit_msat } else { 0 },
        work: if wire.accepted { work } else { 0 },
    })
}

/// `(floor(diff × rate) msat, floor(diff))` from the JSON literal of
/// `diff`, in exact integer arithmetic. A positive difficulty whose credit
/// rounds down to 0 msat is valid (credited nothing).
pub fn credit_of(diff_text: &str, rate_msat: i64) -> Result<(i64, u128), String> {
    let (mantissa, exponent) = decimal::parse(diff_text).map_err(|why| format!("diff {why}"))?;
    if mantissa == 0 {
        return Err("diff must be greater than zero".into());
    }
    // At most 30 significant digits (decimal::parse), so exponents beyond
    // ±60 are either absurd or round to nothing.
    if exponent > 30 {
        return Err("diff is too large".into());
    }
    let rate = u128::try_from(rate_msat).map_err(|_| "rate must be positive".to_string())?;
    let scaled = |factor: u128| -> Option<u128> {
        let product = mantissa.checked_mul(factor)?;
        if exponent >= 0 {
            product.checked_mul(10u128.checked_pow(exponent as u32)?)
        } else if -exponent > 38 {
            Some(0)
        } else {
            Some(product / 10u128.pow((-exponent) as u32))
        }
    };
    let credit = scaled(rate).ok_or("diff is too large")?;
    let work = scaled(1).ok_or("diff is too large")?;
    if credit > crate::ledger::MAX_TRANSFER_MSAT as u128 {
        return Err("diff is too large".into());
    }
    Ok((credit as i64, work))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(shares: &str) -> Vec<u8> {
        format!(r#"{{"origin":"o1","ts":1,"shares":[{shares}]}}"#).into_bytes()
    }

    const OK: &str = r#"{"seq":1,"miner":"m","worker":"w","diff":1.0,"sdiff":1.13,"accepted":true,"time_s":1796163316.727}"#;

    #[test]
    fn credit_is_exact_and_floored() {
        assert_eq!(credit_of("1.0", 1000).unwrap(), (1000, 1));
        assert_eq!(credit_of("2428", 1000).unwrap(), (2_428_000, 2428));
        assert_eq!(credit_of("0.0001", 1000).unwrap(), (0, 0));
        assert_eq!(credit_of("1.5e3", 7).unwrap(), (10_500, 1500));
        assert!(credit_of("-1", 1000).is_err());
        assert!(credit_of("0", 1000).is_err());
        assert!(credit_of("1e40", 1000).is_err());
        assert!(credit_of("99999999999999999999", 1000).is_err());
    }

    #[test]
    fn a_good_share_parses() {
        let b = parse_batch(&body(OK), 1000, 10).unwrap();
        assert_eq!(b.shares[0].credit_msat, 1000);
        assert_eq!(b.shares[0].share_ms, 1_796_163_316_727);
    }

    #[test]
    fn the_bad_share_is_named_by_index() {
        for (bad, why) in [
            (OK.replace("\"diff\":1.0", "\"diff\":-1"), "negative"),
            (OK.replace("\"diff\":1.0", "\"diff\":\"1\""), "number"),
            (OK.replace("\"seq\":1", "\"seq\":0"), "seq"),
            (OK.replace("true", "false"), "reason"),
            (OK.replace("\"miner\":\"m\"", "\"miner\":\"\""), "miner"),
            (OK.replace("\"time_s\"", "\"time\""), "unknown field"),
            (
                OK.replace("\"accepted\":true", "\"accepted\":true,\"block\":true"),
                "block",
            ),
        ] {
            let text = format!("{},{}", OK.replace("\"seq\":1", "\"seq\":9"), bad);
            match parse_batch(&body(&text), 1000, 10) {
                Err(SharesError::BadShare { index: 1, reason }) => {
                    assert!(reason.contains(why), "{bad}: {reason}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let twice = format!("{OK},{OK}");
        assert!(matches!(
            parse_batch(&body(&twice), 1000, 10),
            Err(SharesError::BadShare { index: 1, .. })
        ));
        assert!(matches!(
            parse_batch(&body(&twice), 1000, 1),
            Err(SharesError::TooMany { .. })
        ));
    }
}
