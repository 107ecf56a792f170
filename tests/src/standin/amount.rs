//! Exact money text: satoshis to `50.00000000` and request literals to satoshis.
//!
//! Core writes amounts with `ValueFromAmount` (always 8 decimals) and reads them
//! with `ParseFixedPoint`. Both are reproduced here on integers, so a float is
//! never involved in anything that moves money.

use super::json::J;
use super::rpc::RpcError;

/// Satoshis in one bitcoin.
pub const COIN: u64 = 100_000_000;
/// 21 million BTC, Core's `MAX_MONEY`.
pub const MAX_MONEY: i64 = 21_000_000 * COIN as i64;

/// `sat` as a JSON number with exactly 8 decimals, e.g. `-0.00300000`.
pub fn btc(sat: i64) -> J {
    J::Num(btc_text(sat))
}

/// The text of [`btc`].
pub fn btc_text(sat: i64) -> String {
    let sign = if sat < 0 { "-" } else { "" };
    let a = sat.unsigned_abs();
    format!("{sign}{}.{:08}", a / COIN, a % COIN)
}

/// A fee rate in sat/kvB as Core writes it: BTC per kvB with 8 decimals.
pub fn btc_per_kvb(sat_per_kvb: u64) -> J {
    btc(sat_per_kvb as i64)
}

/// Parses a decimal literal (`0.001`, `1e-09`, `"0.5"`) into an integer
/// scaled by `10^decimals`, as Core's `ParseFixedPoint`: `None` when it has
/// more significant decimals than `decimals` or is not a number.
pub fn parse_fixed_point(text: &str, decimals: u32) -> Option<i64> {
    let s = text.as_bytes();
    let mut i = 0;
    let neg = s.first() == Some(&b'-');
    if neg {
        i += 1;
    }
    // Collect the mantissa digits and where the decimal point sits.
    let mut digits: Vec<u8> = Vec::new();
    let mut frac_len: i64 = 0;
    let int_start = i;
    while i < s.len() && s[i].is_ascii_digit() {
        digits.push(s[i] - b'0');
        i += 1;
    }
    if i == int_start {
        return None;
    }
    // Core rejects leading zeros like "01".
    if i - int_start > 1 && s[int_start] == b'0' {
        return None;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        let fs = i;
        while i < s.len() && s[i].is_ascii_digit() {
            digits.push(s[i] - b'0');
            i += 1;
        }
        if i == fs {
            return None;
        }
        frac_len = (i - fs) as i64;
    }
    let mut exp: i64 = 0;
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        let eneg = match s.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let es = i;
        while i < s.len() && s[i].is_ascii_digit() {
            exp = exp.checked_mul(10)?.checked_add((s[i] - b'0') as i64)?;
            if exp > 10_000 {
                return None;
            }
            i += 1;
        }
        if i == es {
            return None;
        }
        if eneg {
            exp = -exp;
        }
    }
    if i != s.len() {
        return None;
    }
    // value = digits * 10^(exp - frac_len); drop trailing zeros first so
    // `0.0010000000` is as good as `0.001`.
    let mut scale = exp - frac_len + decimals as i64;
    while scale < 0 && digits.len() > 1 && *digits.last()? == 0 {
        digits.pop();
        scale += 1;
    }
    if scale < 0 {
        if digits.iter().all(|d| *d == 0) {
            return Some(0);
        }
        return None;
    }
    let mut v: i64 = 0;
    for d in digits {
        v = v.checked_mul(10)?.checked_add(d as i64)?;
    }
    for _ in 0..scale {
        v = v.checked_mul(10)?;
    }
    // Core caps at 10^18 - 1 before scaling checks; MoneyRange does the rest.
    if v >= 1_000_000_000_000_000_000 {
        return None;
    }
    Some(if neg { -v } else { v })
}

/// Core's `AmountFromValue`: a number or string, 8 decimals, in money range.
pub fn amount_from_value(v: &J) -> Result<i64, RpcError> {
    let text = match v {
        J::Num(n) => n.as_str(),
        J::Str(s) => s.as_str(),
        _ => return Err(RpcError::new(-3, "Amount is not a number or string")),
    };
    let sat = parse_fixed_point(text, 8).ok_or_else(|| RpcError::new(-3, "Invalid amount"))?;
    if !(0..=MAX_MONEY).contains(&sat) {
        return Err(RpcError::new(-3, "Amount out of range"));
    }
    Ok(sat)
}

/// An amount to send: as [`amount_from_value`], and strictly positive.
pub fn send_amount(v: &J) -> Result<u64, RpcError> {
    let sat = amount_from_value(v)?;
    if sat <= 0 {
        return Err(RpcError::new(-3, "Invalid amount for send"));
    }
    Ok(sat as u64)
}

/// A `fee_rate` in sat/vB (3 decimals allowed, as Core), returned in sat/kvB.
pub fn fee_rate_sat_vb(v: &J) -> Result<u64, RpcError> {
    let text = match v {
        J::Num(n) => n.as_str(),
        J::Str(s) => s.as_str(),
        _ => return Err(RpcError::new(-3, "Amount is not a number or string")),
    };
    let per_kvb = parse_fixed_point(text, 3).ok_or_else(|| RpcError::new(-3, "Invalid amount"))?;
    if !(0..=MAX_MONEY).contains(&per_kvb) {
        return Err(RpcError::new(-3, "Amount out of range"));
    }
    Ok(per_kvb as u64)
}

/// `ceil(rate × vsize)`: Core's `CFeeRate::GetFee` rounds up.
pub fn fee_for(sat_per_kvb: u64, vsize: u64) -> u64 {
    (sat_per_kvb * vsize).div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_eight_decimals() {
        assert_eq!(btc_text(50 * COIN as i64), "50.00000000");
        assert_eq!(btc_text(-300_000), "-0.00300000");
        assert_eq!(btc_text(0), "0.00000000");
        assert_eq!(btc_text(-1), "-0.00000001");
    }

    #[test]
    fn parses_like_core() {
        assert_eq!(parse_fixed_point("0.001", 8), Some(100_000));
        assert_eq!(parse_fixed_point("1e-08", 8), Some(1));
        assert_eq!(parse_fixed_point("1e-09", 8), None);
        assert_eq!(parse_fixed_point("0.000000010", 8), Some(1));
        assert_eq!(parse_fixed_point("100000", 8), Some(100_000 * COIN as i64));
        assert_eq!(parse_fixed_point("-0.5", 8), Some(-50_000_000));
        assert_eq!(parse_fixed_point("2", 3), Some(2000));
        assert_eq!(parse_fixed_point("1.5e2", 0), Some(150));
        assert_eq!(parse_fixed_point("abc", 8), None);
        assert_eq!(parse_fixed_point("01", 8), None);
    }
}
