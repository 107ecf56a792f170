//! Money as integers.
//!
//! The ledger counts millisatoshi (msat) so that per-share rates below one
//! satoshi accrue exactly; the chain counts satoshi (sat). BTC only exists as
//! decimal text at the edges, and is parsed from that text as an exact
//! decimal: a float never touches money (`0.1 + 0.2` is not `0.3`, and
//! `0.30000000000000004` BTC is refused, not rounded).

/// Millisatoshi per satoshi.
pub const MSAT_PER_SAT: i64 = 1000;
/// Satoshi per bitcoin.
pub const SAT_PER_BTC: i64 = 100_000_000;
/// Millisatoshi per bitcoin.
pub const MSAT_PER_BTC: i64 = SAT_PER_BTC * MSAT_PER_SAT;
/// No amount can exceed the 21 million BTC supply; anything above is a bug
/// or an attack, never a real amount.
pub const MAX_MONEY_SAT: i64 = 21_000_000 * SAT_PER_BTC;
/// [`MAX_MONEY_SAT`] in millisatoshi (2.1e18, still well inside `i64`).
pub const MAX_MONEY_MSAT: i64 = MAX_MONEY_SAT * MSAT_PER_SAT;

/// Decimal places of a BTC amount in satoshi.
const SAT_DECIMALS: u32 = 8;
/// Decimal places of a BTC amount in millisatoshi.
const MSAT_DECIMALS: u32 = 11;

/// Why a BTC amount was refused. The messages are meant for a JSON error
/// body (HTTP 422) and never quote the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount has more than {max_decimals} decimal places")]
    TooManyDecimals { max_decimals: u32 },
    #[error("amount must not be negative")]
    Negative,
    #[error("amount exceeds 21000000 BTC")]
    TooLarge,
    #[error("amount is not a decimal number: {reason}")]
    Malformed { reason: &'static str },
}

/// Parses decimal BTC text (`"0.0001"`, `1e-4`, `2.1e7`) into whole satoshi.
///
/// Accepts the literal text of a JSON number, or the content of a JSON string
/// holding one: RFC 8259 number grammar without a sign. Refuses more than 8
/// significant decimal places (trailing zeros beyond them are fine), any
/// negative input (`-0` included, to keep the rule simple), `NaN`,
/// `Infinity`, hex, `+`, whitespace and anything over 21e6 BTC. Work is
/// proportional to the text length, never to the exponent's value.
pub fn parse_btc_sat(text: &str) -> Result<i64, AmountError> {
    parse_scaled(text, SAT_DECIMALS, MAX_MONEY_SAT)
}

/// Like [`parse_btc_sat`] but into millisatoshi, allowing 11 decimal places:
/// per-share rates below one satoshi (`0.000000001` BTC = 100 msat).
pub fn parse_btc_msat(text: &str) -> Result<i64, AmountError> {
    parse_scaled(text, MSAT_DECIMALS, MAX_MONEY_MSAT)
}

/// `sat` as BTC with exactly 8 decimal places: `10000` → `"0.00010000"`.
pub fn format_btc(sat: i64) -> String {
    format_scaled(sat, SAT_DECIMALS)
}

/// `msat` as BTC with exactly 11 decimal places: `100` → `"0.00000000100"`.
pub fn format_msat_btc(msat: i64) -> String {
    format_scaled(msat, MSAT_DECIMALS)
}

fn format_scaled(units: i64, decimals: u32) -> String {
    let per_btc = 10u64.pow(decimals);
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    let whole = magnitude / per_btc;
    let fraction = magnitude % per_btc;
    let width = decimals as usize;
    format!("{sign}{whole}.{fraction:0width$}")
}

/// The pieces of a decimal number literal `int[.frac][e±exp]`.
struct Decimal<'a> {
    int_digits: &'a [u8],
    frac_digits: &'a [u8],
    /// Saturated to ±[`EXPONENT_CAP`]; beyond that every outcome is decided.
    exponent: i64,
}

/// Exponents larger than this in magnitude are clamped while reading: with at
/// most 2.1e18 units the answer is already "zero", "too large" or "too many
/// decimals" long before, and clamping keeps the arithmetic in range.
const EXPONENT_CAP: i64 = 1_000_000_000;

fn parse_scaled(text: &str, decimals: u32, max_units: i64) -> Result<i64, AmountError> {
    if text.is_empty() {
        return Err(malformed("empty"));
    }
    if let Some(rest) = text.strip_prefix('-') {
        // Only call it negative when the rest is a number; "-abc" is garbage.
        split_decimal(rest.as_bytes())?;
        return Err(AmountError::Negative);
    }
    let decimal = split_decimal(text.as_bytes())?;
    let units = decimal_to_units(&decimal, decimals)?;
    if units > max_units {
        return Err(AmountError::TooLarge);
    }
    Ok(units)
}

fn malformed(reason: &'static str) -> AmountError {
    AmountError::Malformed { reason }
}

/// Checks the unsigned JSON number grammar and splits it into parts.
fn split_decimal(bytes: &[u8]) -> Result<Decimal<'_>, AmountError> {
    let int_len = digit_run(bytes);
    if int_len == 0 {
        return Err(malformed("expected a digit"));
    }
    let int_digits = &bytes[..int_len];
    if int_len > 1 && int_digits[0] == b'0' {
        return Err(malformed("leading zeros"));
    }
    let mut rest = &bytes[int_len..];
    let mut frac_digits: &[u8] = &[];
    if let Some(after_point) = rest.strip_prefix(b".") {
        let frac_len = digit_run(after_point);
        if frac_len == 0 {
            return Err(malformed("expected a digit after the decimal point"));
        }
        frac_digits = &after_point[..frac_len];
        rest = &after_point[frac_len..];
    }
    let mut exponent = 0;
    if let Some(after_e) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let (value, used) = parse_exponent(after_e)?;
        exponent = value;
        rest = &after_e[used..];
    }
    if !rest.is_empty() {
        return Err(malformed("unexpected character"));
    }
    Ok(Decimal {
        int_digits,
        frac_digits,
        exponent,
    })
}

fn digit_run(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// Reads `[+-]?digits` after an `e`, clamped to ±[`EXPONENT_CAP`]. Returns the
/// value and the number of bytes used.
fn parse_exponent(bytes: &[u8]) -> Result<(i64, usize), AmountError> {
    let (negative, sign_len) = match bytes.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let digits_len = digit_run(&bytes[sign_len..]);
    if digits_len == 0 {
        return Err(malformed("expected a digit in the exponent"));
    }
    let magnitude = bytes[sign_len..sign_len + digits_len]
        .iter()
        .fold(0i64, |acc, &b| {
            (acc * 10 + i64::from(b - b'0')).min(EXPONENT_CAP)
        });
    let value = if negative { -magnitude } else { magnitude };
    Ok((value, sign_len + digits_len))
}

/// Exact value of `decimal` × 10^`decimals` as an integer, or why not.
fn decimal_to_units(decimal: &Decimal<'_>, decimals: u32) -> Result<i64, AmountError> {
    // All digits as one integer D; value = D × 10^shift in units.
    let frac_len = i64::try_from(decimal.frac_digits.len()).unwrap_or(i64::MAX);
    let shift = decimal
        .exponent
        .saturating_sub(frac_len)
        .saturating_add(i64::from(decimals));
    let all_digits = decimal.int_digits.iter().chain(decimal.frac_digits);
    // Leading zeros never matter; without them D == 0 means "no digits".
    let significant: Vec<u8> = all_digits.copied().skip_while(|&b| b == b'0').collect();
    if significant.is_empty() {
        return Ok(0);
    }
    let kept = if shift >= 0 {
        significant.as_slice()
    } else {
        drop_zero_fraction(&significant, shift.unsigned_abs(), decimals)?
    };
    let zeros_to_append = u64::try_from(shift.max(0)).unwrap_or(u64::MAX);
    digits_to_units(kept, zeros_to_append)
}

/// Removes the `count` last digits, which must all be zeros (they are
/// below the smallest unit).
fn drop_zero_fraction(digits: &[u8], count: u64, decimals: u32) -> Result<&[u8], AmountError> {
    let too_many = AmountError::TooManyDecimals {
        max_decimals: decimals,
    };
    // `digits` starts with a non-zero digit, so dropping all of it loses it.
    let count = usize::try_from(count).map_err(|_| too_many.clone())?;
    if count >= digits.len() {
        return Err(too_many);
    }
    let (kept, dropped) = digits.split_at(digits.len() - count);
    if dropped.iter().any(|&b| b != b'0') {
        return Err(too_many);
    }
    Ok(kept)
}

/// `digits` (first one non-zero) followed by `zeros` zeros, as an i64, or
/// `TooLarge`. At most 19 digits fit, which bounds the work.
fn digits_to_units(digits: &[u8], zeros: u64) -> Result<i64, AmountError> {
    const MAX_DIGITS: u64 = 19;
    let total = (digits.len() as u64).saturating_add(zeros);
    if total > MAX_DIGITS {
        return Err(AmountError::TooLarge);
    }
    let mut value: i64 = 0;
    let zero_digits = std::iter::repeat_n(&b'0', zeros as usize);
    for &b in digits.iter().chain(zero_digits) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(AmountError::TooLarge)?;
    }
    Ok(value)
}

/// Serde helpers that read BTC amounts in request bodies exactly.
///
/// Use with `#[serde(deserialize_with = "serde_btc::deserialize_sat")]`. A
/// JSON number is read from its literal text (through
/// [`serde_json::value::RawValue`]), never through `f64`; a JSON string is
/// parsed from its content. This only works with `serde_json`'s own
/// deserializer reading text (`from_str`, `from_slice`, `from_reader`), not
/// with `from_value`, inside `#[serde(flatten)]` or untagged/internally
/// tagged enums (serde buffers those values first), or with formats such as
/// TOML, which have no literal text; there, read a `String` and call
/// [`parse_btc_sat`].
/// For the `Option` variants add `#[serde(default)]` so that an absent field
/// is `None`; `null` is `None` too.
pub mod serde_btc {
    use serde::de::{Deserialize, Deserializer, Error};
    use serde_json::value::RawValue;

    use super::AmountError;

    /// A BTC amount (number or string) into satoshi.
    pub fn deserialize_sat<'de, D>(deserializer: D) -> Result<i64, D::Error>
    where
        D: Deserializer<'de>,
    {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        raw_to_units(&raw, super::parse_btc_sat)
    }

    /// An optional BTC amount (number, string or null) into satoshi.
    pub fn deserialize_opt_sat<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
    where
        D: Deserializer<'de>,
    {
        let raw = Option::<Box<RawValue>>::deserialize(deserializer)?;
        raw.map(|raw| raw_to_units(&raw, super::parse_btc_sat))
            .transpose()
    }

    /// A BTC amount (number or string, up to 11 decimals) into millisatoshi.
    pub fn deserialize_msat<'de, D>(deserializer: D) -> Result<i64, D::Error>
    where
        D: Deserializer<'de>,
    {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        raw_to_units(&raw, super::parse_btc_msat)
    }

    /// An optional BTC amount (number, string or null) into millisatoshi.
    pub fn deserialize_opt_msat<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
    where
        D: Deserializer<'de>,
    {
        let raw = Option::<Box<RawValue>>::deserialize(deserializer)?;
        raw.map(|raw| raw_to_units(&raw, super::parse_btc_msat))
            .transpose()
    }

    fn raw_to_units<E: Error>(
        raw: &RawValue,
        parse: fn(&str) -> Result<i64, AmountError>,
    ) -> Result<i64, E> {
        let text = raw.get();
        let result = match text.as_bytes().first() {
            Some(b'"') => {
                let content: String = serde_json::from_str(text).map_err(E::custom)?;
                parse(&content)
            }
            Some(b'-' | b'0'..=b'9') => parse(text),
            _ => return Err(E::custom("expected a BTC amount as a number or a string")),
        };
        result.map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_accepted_forms() {
        let cases = [
            ("0.0001", 10_000),
            ("1", SAT_PER_BTC),
            ("1.5", 150_000_000),
            ("1e-4", 10_000),
            ("1E-4", 10_000),
            ("0.00010000", 10_000),
            ("0.000100000000", 10_000),
            ("2.1e7", MAX_MONEY_SAT),
            ("21000000", MAX_MONEY_SAT),
            ("0", 0),
            ("0.0", 0),
            ("0e999999999999999999", 0),
            ("0.00000001", 1),
            ("1e-8", 1),
            ("100e-10", 1),
            ("0.1", 10_000_000),
            ("1E+2", 100 * SAT_PER_BTC),
            ("12345.67891234", 1_234_567_891_234),
        ];
        for (text, sat) in cases {
            assert_eq!(parse_btc_sat(text), Ok(sat), "{text}");
        }
    }

    #[test]
    fn refuses_excess_precision() {
        for text in [
            "0.000000001",
            "1e-9",
            "0.30000000000000004",
            "1e-999999999",
            "0.123456789",
        ] {
            assert_eq!(
                parse_btc_sat(text),
                Err(AmountError::TooManyDecimals { max_decimals: 8 }),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_negatives_including_negative_zero() {
        for text in ["-0.0001", "-0", "-0.0", "-1e-9"] {
            assert_eq!(parse_btc_sat(text), Err(AmountError::Negative), "{text}");
        }
    }

    #[test]
    fn refuses_too_large() {
        for text in [
            "21000000.00000001",
            "2.1e7000",
            "1e999999999",
            "99999999999999999999999",
            "21000001",
        ] {
            assert_eq!(parse_btc_sat(text), Err(AmountError::TooLarge), "{text}");
        }
        assert_eq!(
            parse_btc_msat("21000000.00000000001"),
            Err(AmountError::TooLarge)
        );
    }

    #[test]
    fn refuses_malformed_text() {
        for text in [
            "",
            " 1",
            "1 ",
            "NaN",
            "Infinity",
            "-Infinity",
            "0x10",
            "+1",
            "1.",
            ".5",
            "01",
            "1e",
            "1e+",
            "1,5",
            "１",
            "1_000",
            "abc",
            "-abc",
            "\"1\"",
            "1e1.5",
            "--1",
        ] {
            assert!(
                matches!(parse_btc_sat(text), Err(AmountError::Malformed { .. })),
                "{text:?} gave {:?}",
                parse_btc_sat(text)
            );
        }
    }

    #[test]
    fn msat_allows_eleven_places() {
        assert_eq!(parse_btc_msat("0.000000001"), Ok(100));
        assert_eq!(parse_btc_msat("0.00000000001"), Ok(1));
        assert_eq!(parse_btc_msat("0.00000001"), Ok(1000));
        assert_eq!(parse_btc_msat("2.1e7"), Ok(MAX_MONEY_MSAT));
        assert_eq!(
            parse_btc_msat("0.000000000001"),
            Err(AmountError::TooManyDecimals { max_decimals: 11 })
        );
    }

    #[test]
    fn formats_with_fixed_places() {
        assert_eq!(format_btc(10_000), "0.00010000");
        assert_eq!(format_btc(0), "0.00000000");
        assert_eq!(format_btc(-1), "-0.00000001");
        assert_eq!(format_btc(MAX_MONEY_SAT), "21000000.00000000");
        assert_eq!(format_btc(i64::MIN), "-92233720368.54775808");
        assert_eq!(format_msat_btc(100), "0.00000000100");
        assert_eq!(format_msat_btc(-123_456), "-0.00000123456");
    }

    #[test]
    fn error_messages_read_well() {
        assert_eq!(
            AmountError::TooManyDecimals { max_decimals: 8 }.to_string(),
            "amount has more than 8 decimal places"
        );
        assert_eq!(
            AmountError::Negative.to_string(),
            "amount must not be negative"
        );
    }

    #[derive(Debug, serde::Deserialize)]
    struct Body {
        #[serde(deserialize_with = "serde_btc::deserialize_sat")]
        amount: i64,
        #[serde(default, deserialize_with = "serde_btc::deserialize_opt_sat")]
        fee: Option<i64>,
        #[serde(default, deserialize_with = "serde_btc::deserialize_opt_msat")]
        rate: Option<i64>,
    }

    fn amount_of(json: &str) -> Result<i64, String> {
        serde_json::from_str::<Body>(json)
            .map(|b| b.amount)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn serde_reads_numbers_and_strings_exactly() {
        assert_eq!(amount_of(r#"{"amount": 0.1}"#), Ok(10_000_000));
        assert_eq!(amount_of(r#"{"amount": "0.1"}"#), Ok(10_000_000));
        assert_eq!(amount_of(r#"{"amount": 1e-4}"#), Ok(10_000));
        assert_eq!(amount_of(r#"{"amount": "\u0030.5"}"#), Ok(50_000_000));
        // From bytes too (the HTTP layer has bytes).
        let body: Body = serde_json::from_slice(br#"{"amount":0.00000001}"#).expect("valid body");
        assert_eq!(body.amount, 1);
    }

    #[test]
    fn serde_refuses_float_noise_instead_of_rounding() {
        let err = amount_of(r#"{"amount": 0.30000000000000004}"#).expect_err("must be refused");
        assert!(err.contains("more than 8 decimal places"), "{err}");
        for bad in [
            r#"{"amount": -1}"#,
            r#"{"amount": true}"#,
            r#"{"amount": null}"#,
            r#"{"amount": [1]}"#,
            r#"{"amount": " 1"}"#,
        ] {
            assert!(amount_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_optional_amounts() {
        let body: Body = serde_json::from_str(r#"{"amount": 1}"#).expect("valid");
        assert_eq!((body.fee, body.rate), (None, None));
        let body: Body = serde_json::from_str(r#"{"amount": 1, "fee": null, "rate": 0.000000001}"#)
            .expect("valid");
        assert_eq!((body.fee, body.rate), (None, Some(100)));
        let body: Body =
            serde_json::from_str(r#"{"amount": 1, "fee": "0.00000500"}"#).expect("valid");
        assert_eq!(body.fee, Some(500));
        assert!(serde_json::from_str::<Body>(r#"{"amount": 1, "fee": 1e-9}"#).is_err());
    }
}
