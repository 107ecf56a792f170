//! Text for numbers the admin reads: money, hashrate, fee rates and times.
//!
//! Money is formatted from integers only (via `pooldesk_proto::amount`),
//! never through `f64`: a payout screen that rounds is a payout screen
//! that lies. Hashrate is not money and is an `f64` on the wire.
//! Times are shown in UTC so two admins on different machines read the same
//! clock as the daemon's audit log.

use pooldesk_proto::amount::{MSAT_PER_SAT, format_btc, format_msat_btc};

/// `100_000` sat → `"0.00100000"`.
pub fn btc(sat: i64) -> String {
    format_btc(sat)
}

/// A ledger amount in msat shown with 8 decimals (whole satoshi; the
/// sub-satoshi part is dropped towards zero). Used in tables where every
/// column must line up; exact views use [`btc_msat_exact`].
pub fn btc_msat(msat: i64) -> String {
    format_btc(msat / MSAT_PER_SAT)
}

/// A ledger amount in msat with all 11 decimals: nothing hidden.
pub fn btc_msat_exact(msat: i64) -> String {
    format_msat_btc(msat)
}

/// Integer with `,` every three digits: `1234567` → `"1,234,567"`.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `"0.00100000 BTC (100,000 sat)"`: what every confirmation shows, so the
/// admin can check the amount in either unit.
pub fn amount(sat: i64) -> String {
    format!("{} BTC ({} sat)", btc(sat), grouped(sat))
}

/// Hashes per second with an SI prefix: `"12.34 TH/s"`.
pub fn hashrate(hps: f64) -> String {
    const UNITS: [&str; 7] = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];
    if !hps.is_finite() || hps <= 0.0 {
        return "0 H/s".to_string();
    }
    let mut value = hps;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[0])
    } else if value >= 100.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// Fee rate from the wire's sat/vB × 1000 integer: `2500` → `"2.500 sat/vB"`.
pub fn fee_rate_milli(milli_sat_vb: u64) -> String {
    format!("{}.{:03} sat/vB", milli_sat_vb / 1000, milli_sat_vb % 1000)
}

/// Age of `at` relative to `now`, compact: `"42s"`, `"5m"`, `"3h"`, `"2d"`.
/// Future times (clock skew) read as `"now"` rather than a negative age.
pub fn age(now_s: i64, at_s: i64) -> String {
    let d = now_s.saturating_sub(at_s);
    if d < 1 {
        "now".to_string()
    } else if d < 60 {
        format!("{d}s")
    } else if d < 3600 {
        format!("{}m", d / 60)
    } else if d < 86_400 {
        format!("{}h", d / 3600)
    } else {
        format!("{}d", d / 86_400)
    }
}

/// Optional age: `"-"` when there never was one.
pub fn age_opt(now_s: i64, at_s: Option<i64>) -> String {
    at_s.map_or_else(|| "-".to_string(), |at| age(now_s, at))
}

/// `"2024-05-01 12:00:01"` (UTC) from Unix seconds.
pub fn utc(at_s: i64) -> String {
    let (y, m, d) = civil_from_days(at_s.div_euclid(86_400));
    let secs = at_s.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// `"12:00:01"` (UTC) from Unix seconds.
pub fn utc_time(at_s: i64) -> String {
    let secs = at_s.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm), so no date crate is needed for a label.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Cuts `text` to at most `width` characters, marking the cut with `…`.
/// Never used for addresses in confirmations, which are always shown whole.
pub fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// Withdrawal/batch state as a bracketed upper-case label, e.g.
/// `[REQUESTED]`: readable without colour.
pub fn state_label(state: &str) -> String {
    format!("[{}]", state.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact() {
        assert_eq!(btc(100_000), "0.00100000");
        assert_eq!(btc(2_100_000_000_000_000), "21000000.00000000");
        assert_eq!(btc_msat(123_456_789), "0.00123456");
        assert_eq!(btc_msat_exact(123_456_789), "0.00123456789");
        assert_eq!(amount(100_000), "0.00100000 BTC (100,000 sat)");
        assert_eq!(amount(-5), "-0.00000005 BTC (-5 sat)");
    }

    #[test]
    fn grouping() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(-1_234), "-1,234");
    }

    #[test]
    fn hashrate_uses_si_units() {
        assert_eq!(hashrate(0.0), "0 H/s");
        assert_eq!(hashrate(f64::NAN), "0 H/s");
        assert_eq!(hashrate(999.0), "999 H/s");
        assert_eq!(hashrate(1500.0), "1.50 kH/s");
        assert_eq!(hashrate(12.345e12), "12.35 TH/s");
        assert_eq!(hashrate(250e15), "250.0 PH/s");
        assert_eq!(hashrate(3e18), "3.00 EH/s");
        assert_eq!(hashrate(3e21), "3000.0 EH/s");
    }

    #[test]
    fn fee_rate_is_integer_text() {
        assert_eq!(fee_rate_milli(2500), "2.500 sat/vB");
        assert_eq!(fee_rate_milli(1), "0.001 sat/vB");
        assert_eq!(fee_rate_milli(12_000), "12.000 sat/vB");
    }

    #[test]
    fn times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_714_564_801), "2024-05-01 12:00:01");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc_time(1_714_564_801), "12:00:01");
        assert_eq!(age(100, 58), "42s");
        assert_eq!(age(100, 200), "now");
        assert_eq!(age(10_000, 0), "2h");
        assert_eq!(age_opt(5, None), "-");
    }

    #[test]
    fn clipping() {
        assert_eq!(clip("abcdef", 10), "abcdef");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abcdef", 0), "");
    }
}
