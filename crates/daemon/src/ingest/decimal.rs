//! Exact credit arithmetic for decimal inputs (`work_score`), without
//! floats: the JSON number's literal text × an integer msat rate, floored
//! to whole msat.

/// `floor(text × rate_msat)`, where `text` is a JSON number literal.
/// Refuses negatives, zero results, more than 30 significant digits, and
/// results above `max_msat`.
pub fn times_rate_msat(text: &str, rate_msat: i64, max_msat: i64) -> Result<i64, String> {
    let (mantissa, exponent) = parse(text)?;
    if mantissa == 0 {
        return Err("must be greater than zero".into());
    }
    let rate = u128::try_from(rate_msat).map_err(|_| "rate must be positive".to_string())?;
    let product = mantissa
        .checked_mul(rate)
        .ok_or_else(|| "is too large".to_string())?;
    let value = if exponent >= 0 {
        let scale = 10u128
            .checked_pow(exponent as u32)
            .ok_or_else(|| "is too large".to_string())?;
        product
            .checked_mul(scale)
            .ok_or_else(|| "is too large".to_string())?
    } else if -exponent > 38 {
        0
    } else {
        product / 10u128.pow((-exponent) as u32)
    };
    if value == 0 {
        return Err("is too small: its credit rounds down to 0 msat".into());
    }
    if value > max_msat as u128 {
        return Err("is too large".into());
    }
    Ok(value as i64)
}

/// `(mantissa, exponent)` with value = mantissa × 10^exponent.
pub(crate) fn parse(text: &str) -> Result<(u128, i64), String> {
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'-') {
        return Err("must not be negative".into());
    }
    let mut i = 0;
    let mut digits: Vec<u8> = Vec::new();
    let mut frac_len: i64 = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        digits.push(bytes[i] - b'0');
        i += 1;
    }
    if digits.is_empty() {
        return Err("must be a number".into());
    }
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            digits.push(bytes[i] - b'0');
            i += 1;
        }
        if i == start {
            return Err("must be a number".into());
        }
        frac_len = (i - start) as i64;
    }
    let mut exponent: i64 = 0;
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        let negative = match bytes.get(i) {
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
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            // Cap while reading: absurd exponents are refused, not looped on.
            exponent = (exponent * 10 + i64::from(bytes[i] - b'0')).min(10_000);
            i += 1;
        }
        if i == start {
            return Err("must be a number".into());
        }
        if negative {
            exponent = -exponent;
        }
    }
    if i != bytes.len() {
        return Err("must be a number".into());
    }
    // Normalise: drop leading zeros, then trailing zeros into the exponent.
    let first = digits.iter().position(|d| *d != 0);
    let Some(first) = first else {
        return Ok((0, 0));
    };
    let mut significant = &digits[first..];
    let mut exp = exponent - frac_len;
    while significant.len() > 1 && significant.last() == Some(&0) {
        significant = &significant[..significant.len() - 1];
        exp += 1;
    }
    if significant.len() > 30 {
        return Err("has more than 30 significant digits".into());
    }
    let mantissa = significant
        .iter()
        .fold(0u128, |acc, d| acc * 10 + u128::from(*d));
    Ok((mantissa, exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: i64 = 21_000_000 * 100_000_000 * 1000;

    #[test]
    fn exact_products() {
        assert_eq!(times_rate_msat("1.0", 100_000, MAX), Ok(100_000));
        assert_eq!(times_rate_msat("12.5", 100_000, MAX), Ok(1_250_000));
        assert_eq!(times_rate_msat("0.1", 100_000, MAX), Ok(10_000));
        assert_eq!(times_rate_msat("1e-3", 100_000, MAX), Ok(100));
        assert_eq!(times_rate_msat("2E2", 3, MAX), Ok(600));
        assert_eq!(times_rate_msat("0.00001", 150_000, MAX), Ok(1));
        // 0.3 is 0.3 here, not 0.29999999999999998.
        assert_eq!(times_rate_msat("0.3", 10, MAX), Ok(3));
        assert_eq!(times_rate_msat("1.999", 1, MAX), Ok(1));
    }

    #[test]
    fn refusals() {
        assert!(times_rate_msat("-1", 100, MAX).is_err());
        assert!(times_rate_msat("0", 100, MAX).is_err());
        assert!(times_rate_msat("0.0", 100, MAX).is_err());
        assert!(times_rate_msat("1e-7", 100_000, MAX).is_err());
        assert!(times_rate_msat("1e+16", 100_000, MAX).is_err());
        assert!(times_rate_msat("1e999999999", 1, MAX).is_err());
        assert!(times_rate_msat("NaN", 1, MAX).is_err());
        assert!(times_rate_msat("1.2.3", 1, MAX).is_err());
        assert!(times_rate_msat("\"1\"", 1, MAX).is_err());
    }
}
