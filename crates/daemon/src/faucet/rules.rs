//! The faucet's rules as plain functions (no I/O), so each is unit-tested
//! on its own and the service only wires them to the store.

use std::net::IpAddr;

pub const SECONDS_PER_DAY: i64 = 86_400;

/// Start of the UTC day containing `now_s`. The daily budget resets here.
pub fn utc_day_start(now_s: i64) -> i64 {
    now_s - now_s.rem_euclid(SECONDS_PER_DAY)
}

/// Seconds until a client whose last request was at `last_at` may ask
/// again, or `None` when it may ask now.
pub fn cooldown_left(last_at: Option<i64>, now_s: i64, cooldown_s: u64) -> Option<u64> {
    let last_at = last_at?;
    let free_at = last_at.saturating_add(cooldown_s as i64);
    (free_at > now_s).then(|| (free_at - now_s) as u64)
}

/// Whether one more request of `amount_sat` fits today's budget.
pub fn budget_allows(spent_today_sat: i64, amount_sat: i64, budget_sat: i64) -> bool {
    spent_today_sat
        .checked_add(amount_sat)
        .is_some_and(|total| total <= budget_sat)
}

/// The cooldown key of a client address. IPv6 users usually get a whole
/// /64, so counting single IPv6 addresses would let one user claim from
/// 2^64 of them; the /64 is the unit. IPv4-mapped IPv6 counts as IPv4.
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Fee rate for a faucet batch: the node's estimate, or the configured
/// fallback when it has none (regtest), never above the configured cap.
pub fn fee_rate(estimate: Option<u64>, fallback_sat_vb: u64, max_sat_vb: u64) -> u64 {
    estimate
        .unwrap_or(fallback_sat_vb)
        .clamp(1, max_sat_vb.max(1))
}

/// The wallet comment that tags a batch's transaction.
pub fn batch_tag(install_id: &str, batch_id: i64) -> String {
    if install_id.is_empty() {
        format!("pooldesk faucet batch {batch_id}")
    } else {
        format!("pooldesk {install_id} faucet batch {batch_id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_starts_at_utc_midnight() {
        assert_eq!(utc_day_start(0), 0);
        assert_eq!(utc_day_start(86_399), 0);
        assert_eq!(utc_day_start(86_400), 86_400);
        assert_eq!(utc_day_start(1_700_000_000), 1_699_920_000);
    }

    #[test]
    fn cooldown_counts_down_to_zero() {
        assert_eq!(cooldown_left(None, 100, 3600), None);
        assert_eq!(cooldown_left(Some(100), 100, 3600), Some(3600));
        assert_eq!(cooldown_left(Some(100), 3699, 3600), Some(1));
        assert_eq!(cooldown_left(Some(100), 3700, 3600), None);
        assert_eq!(cooldown_left(Some(100), 100, 0), None);
    }

    #[test]
    fn budget_is_inclusive_and_overflow_safe() {
        assert!(budget_allows(0, 10, 10));
        assert!(budget_allows(60, 10, 70));
        assert!(!budget_allows(61, 10, 70));
        assert!(!budget_allows(i64::MAX, 1, i64::MAX));
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        assert_eq!(client_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(client_key("192.0.2.7".parse().unwrap()), "192.0.2.7");
    }

    #[test]
    fn fee_rate_uses_the_estimate_then_the_fallback_and_is_capped() {
        assert_eq!(fee_rate(Some(5), 2, 50), 5);
        assert_eq!(fee_rate(None, 2, 50), 2);
        assert_eq!(fee_rate(Some(500), 2, 50), 50);
        assert_eq!(fee_rate(Some(0), 2, 50), 1);
    }
}
