//! Canonical JSON exactly as Python writes it.
//!
//! The COINjecture reporters sign
//! `json.dumps(payload, sort_keys=True, separators=(',', ':'))` (with the
//! defaults `ensure_ascii=True`, `allow_nan=True`), i.e. the text Python
//! produces after `json.loads` of the body it sends. The server only sees the
//! raw body, so it must rebuild that text byte for byte, including Python's
//! number semantics (ints of any length, floats through `float` and back out
//! through `repr`) and its string escaping. `serde_json` cannot do that (it
//! has no lone surrogates, different float text and silently merges duplicate
//! keys), hence this small strict parser that writes the canonical text in the
//! same pass as it reads.
//!
//! Deliberate differences from Python's `json.loads`, all of them refusals:
//! duplicate keys (Python keeps the last one), nesting deeper than
//! [`MAX_DEPTH`], a UTF-8 byte order mark and non-UTF-8 encodings (Python
//! sniffs UTF-16/32 and skips a BOM; no reporter sends either), and UTF-8
//! encoded surrogates (Python's `surrogatepass`). Escaped lone surrogates
//! (`"\ud800"`) are accepted and re-emitted, as Python does.

use std::fmt::Write as _;
use std::ops::Range;

/// Deepest nesting of arrays/objects accepted. Real payloads are 2-3 levels;
/// the bound keeps recursion (and work per byte) small on hostile input.
pub const MAX_DEPTH: usize = 64;

/// Longest integer (in digits) accepted. Python 3.11+ refuses to convert
/// longer decimal strings to `int` (`sys.int_info.default_max_str_digits`),
/// so a signer could never have produced a signature over such a body.
pub const MAX_INT_DIGITS: usize = 4300;

/// Why a body has no canonical form. Offsets are byte offsets into the body.
/// Messages never quote the body, so they are safe to return to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("body is not valid UTF-8 (at byte {offset})")]
    InvalidUtf8 { offset: usize },
    #[error("invalid JSON at byte {offset}: {reason}")]
    Syntax { offset: usize, reason: &'static str },
    #[error("unexpected data after the JSON value at byte {offset}")]
    TrailingData { offset: usize },
    /// Refused because Python would keep only the last value while another
    /// JSON reader might keep the first: the server must never act on a value
    /// other than the one the signature covered.
    #[error("duplicate key in object at byte {offset}")]
    DuplicateKey { offset: usize },
    #[error("JSON nested deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep { offset: usize },
    #[error("integer longer than {MAX_INT_DIGITS} digits at byte {offset}")]
    IntegerTooLong { offset: usize },
}

/// Rebuilds the text Python signs for `body`:
/// `json.dumps(json.loads(body), sort_keys=True, separators=(',', ':'))`.
///
/// The output is pure ASCII. Whitespace around the value is allowed (as
/// Python allows it); anything else after it is refused.
pub fn canonicalize(body: &[u8]) -> Result<String, CanonicalError> {
    let text = std::str::from_utf8(body).map_err(|e| CanonicalError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut parser = Parser::new(text);
    // The canonical text is never much longer than the body (escapes of
    // non-ASCII can grow it), so one allocation usually suffices.
    let mut out = String::with_capacity(body.len());
    parser.skip_whitespace();
    parser.value(&mut out, 0)?;
    parser.skip_whitespace();
    if parser.pos != parser.bytes.len() {
        return Err(CanonicalError::TrailingData { offset: parser.pos });
    }
    Ok(out)
}

/// Python's `repr(float)` as `json.dumps` writes it (`Infinity`, `-Infinity`
/// and `NaN` for the non-finite values).
///
/// Shortest round-trip digits, exact halfway ties broken to even as Python's
/// `dtoa` does, then: scientific notation (`1e+16`, `1e-05`) when the decimal
/// point position `decpt` (value = 0.d1d2… × 10^decpt) is `<= -4` or `> 16`,
/// otherwise fixed notation with `.0` added when there is no fractional part.
pub fn python_float_repr(value: f64) -> String {
    let mut out = String::new();
    write_float(&mut out, value);
    out
}

fn write_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
        return;
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if value.is_sign_negative() {
        out.push('-');
    }
    let (digits, exponent) = python_shortest_digits(value.abs());
    let decpt = exponent + 1;
    if decpt <= -4 || decpt > 16 {
        write_scientific(out, &digits, exponent);
    } else {
        write_fixed(out, &digits, decpt);
    }
}

/// Shortest digits that round-trip to `magnitude` (finite, not negative),
/// as Python chooses them: value = d.ddd × 10^exponent, returned as
/// (`"dddd"`, exponent). `"0"` for zero.
fn python_shortest_digits(magnitude: f64) -> (String, i32) {
    // Rust's `{:e}` gives the shortest round-trip digits ("1.2345e-7",
    // "0e0"); only exact halfway cases can differ from Python.
    let (digits, exponent) = split_scientific(&format!("{magnitude:e}"));
    match tie_to_even(magnitude, digits.len(), exponent) {
        Some(even) => even,
        None => (digits, exponent),
    }
}

/// Splits Rust's `d.ddde±x` into its digits and exponent.
fn split_scientific(text: &str) -> (String, i32) {
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent.parse().unwrap_or(0))
}

/// Rust's shortest digits round an exact halfway case up
/// (`194383705278085.125` → `…85.13`), Python's dtoa (mode 0) rounds it to
/// the even digit (`…85.12`). Returns Python's digits when `magnitude` is
/// exactly such a tie between two `digit_count`-digit candidates (Rust's
/// shortest, with scientific `exponent`).
fn tie_to_even(magnitude: f64, digit_count: usize, exponent: i32) -> Option<(String, i32)> {
    // With fewer than 15 digits every decimal reads back as its own double
    // (DBL_DIG), so two candidates cannot both round-trip.
    let digit_count_i32 = i32::try_from(digit_count).ok()?;
    if magnitude == 0.0 || digit_count < 15 {
        return None;
    }
    // A tie needs the exact value to be a decimal with one more digit, i.e.
    // magnitude × 10^places an integer: cheap to rule out from the binary
    // exponent, which skips the formatting below for almost every float.
    // (places <= 0 cannot tie either: the value would need fewer trailing
    // binary zeros than its own ulp implies.)
    let places = digit_count_i32 - exponent;
    let (_, binary_exponent) = binary_parts(magnitude);
    if places <= 0 || binary_exponent + places < 0 {
        return None;
    }
    // At most 17 + 1 digits here, so they fit a u64.
    let (long_digits, long_exponent) = split_scientific(&format!("{magnitude:.digit_count$e}"));
    if !long_digits.ends_with('5') {
        return None;
    }
    let exact: u64 = long_digits.parse().ok()?;
    // value == exact × 10^scale, if it is exact at all.
    let scale = long_exponent - digit_count_i32;
    if scale >= 0 || !equals_decimal(magnitude, exact, scale.unsigned_abs()) {
        return None;
    }
    let low = exact / 10;
    let high = low + 1;
    let (even, odd) = if low & 1 == 0 {
        (low, high)
    } else {
        (high, low)
    };
    [even, odd]
        .into_iter()
        .find(|&candidate| format!("{candidate}e{}", scale + 1).parse() == Ok(magnitude))
        .map(|candidate| {
            let text = candidate.to_string();
            let exponent = scale + text.len() as i32;
            (text.trim_end_matches('0').to_string(), exponent)
        })
}

/// `magnitude` (finite, > 0) as odd mantissa × 2^exponent.
fn binary_parts(magnitude: f64) -> (u64, i32) {
    let bits = magnitude.to_bits();
    let biased_exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, exponent) = if biased_exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased_exponent - 1075)
    };
    let zeros = mantissa.trailing_zeros();
    (mantissa >> zeros, exponent + zeros as i32)
}

/// Whether `magnitude` (finite, > 0) is exactly `decimal` / 10^`places`.
fn equals_decimal(magnitude: f64, decimal: u64, places: u32) -> bool {
    let (mantissa, exponent) = binary_parts(magnitude);
    // magnitude × 10^places = mantissa × 5^places × 2^(exponent + places),
    // an integer only if the power of two is not negative (mantissa is odd).
    let Ok(shift) = u32::try_from(exponent + places as i32) else {
        return false;
    };
    let scaled = 5u128
        .checked_pow(places)
        .and_then(|p| p.checked_mul(u128::from(mantissa)))
        .and_then(|v| 2u128.checked_pow(shift).and_then(|p| v.checked_mul(p)));
    scaled == Some(u128::from(decimal))
}

fn write_scientific(out: &mut String, digits: &str, exponent: i32) {
    let (lead, rest) = digits.split_at(1.min(digits.len()));
    out.push_str(lead);
    if !rest.is_empty() {
        out.push('.');
        out.push_str(rest);
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
}

/// value = 0.digits × 10^decpt with -4 < decpt <= 16.
fn write_fixed(out: &mut String, digits: &str, decpt: i32) {
    if decpt <= 0 {
        out.push_str("0.");
        (0..decpt.unsigned_abs()).for_each(|_| out.push('0'));
        out.push_str(digits);
        return;
    }
    let point = decpt.unsigned_abs() as usize;
    if point >= digits.len() {
        out.push_str(digits);
        (digits.len()..point).for_each(|_| out.push('0'));
        out.push_str(".0");
    } else {
        out.push_str(&digits[..point]);
        out.push('.');
        out.push_str(&digits[point..]);
    }
}

/// The members of one object while it is being read: they are written in
/// sorted order only once the closing `}` is seen. One text buffer and one
/// key buffer per object (not per member) keep allocations few.
#[derive(Default)]
struct Members {
    /// `"key":value` of every member, already canonical, back to back.
    text: String,
    /// Every key as Python's `str`: code points (lone surrogates included),
    /// whose lexicographic order is Python's `sorted` order.
    keys: Vec<u32>,
    spans: Vec<Member>,
}

/// Where one member lives in [`Members`].
struct Member {
    key: Range<usize>,
    text: Range<usize>,
    key_offset: usize,
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    fn syntax(&self, reason: &'static str) -> CanonicalError {
        CanonicalError::Syntax {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// JSON (and Python) whitespace only: space, tab, LF, CR.
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// `depth` is the number of arrays/objects enclosing this value.
    fn value(&mut self, out: &mut String, depth: usize) -> Result<(), CanonicalError> {
        match self.peek() {
            Some(b'{') => self.object(out, depth),
            Some(b'[') => self.array(out, depth),
            Some(b'"') => self.string(out, None),
            Some(b't') => self.literal(out, "true"),
            Some(b'f') => self.literal(out, "false"),
            Some(b'n') => self.literal(out, "null"),
            // Python accepts (and writes back) these non-standard literals.
            Some(b'N') => self.literal(out, "NaN"),
            Some(b'I') => self.literal(out, "Infinity"),
            Some(b'-') if self.bytes[self.pos..].starts_with(b"-Infinity") => {
                self.literal(out, "-Infinity")
            }
            Some(b'-' | b'0'..=b'9') => self.number(out),
            _ => Err(self.syntax("expecting value")),
        }
    }

    fn literal(&mut self, out: &mut String, word: &'static str) -> Result<(), CanonicalError> {
        if !self.bytes[self.pos..].starts_with(word.as_bytes()) {
            return Err(self.syntax("expecting value"));
        }
        self.pos += word.len();
        out.push_str(word);
        Ok(())
    }

    fn enter(&self, depth: usize) -> Result<(), CanonicalError> {
        if depth >= MAX_DEPTH {
            return Err(CanonicalError::TooDeep { offset: self.pos });
        }
        Ok(())
    }

    fn array(&mut self, out: &mut String, depth: usize) -> Result<(), CanonicalError> {
        self.enter(depth)?;
        self.pos += 1;
        out.push('[');
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            out.push(']');
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            self.value(out, depth + 1)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    out.push(',');
                }
                Some(b']') => {
                    self.pos += 1;
                    out.push(']');
                    return Ok(());
                }
                _ => return Err(self.syntax("expecting ',' or ']'")),
            }
        }
    }

    fn object(&mut self, out: &mut String, depth: usize) -> Result<(), CanonicalError> {
        self.enter(depth)?;
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            out.push_str("{}");
            return Ok(());
        }
        let mut members = Members::default();
        loop {
            self.skip_whitespace();
            self.member(&mut members, depth)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.syntax("expecting ',' or '}'")),
            }
        }
        write_sorted_members(out, members)
    }

    fn member(&mut self, members: &mut Members, depth: usize) -> Result<(), CanonicalError> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax("expecting property name enclosed in double quotes"));
        }
        let key_offset = self.pos;
        let key_start = members.keys.len();
        let text_start = members.text.len();
        self.string(&mut members.text, Some(&mut members.keys))?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.syntax("expecting ':' delimiter"));
        }
        self.pos += 1;
        members.text.push(':');
        self.skip_whitespace();
        self.value(&mut members.text, depth + 1)?;
        members.spans.push(Member {
            key: key_start..members.keys.len(),
            text: text_start..members.text.len(),
            key_offset,
        });
        Ok(())
    }

    /// Reads a string starting at its opening quote, writes it re-escaped the
    /// way Python's `ensure_ascii=True` does, and when `sort_key` is given
    /// also collects its code points.
    fn string(
        &mut self,
        out: &mut String,
        mut sort_key: Option<&mut Vec<u32>>,
    ) -> Result<(), CanonicalError> {
        self.pos += 1;
        out.push('"');
        loop {
            // Fast path: a run of printable ASCII that needs no escaping.
            let run_start = self.pos;
            while let Some(b' '..=b'~') = self.peek() {
                let b = self.bytes[self.pos];
                if b == b'"' || b == b'\\' {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            if let Some(key) = sort_key.as_deref_mut() {
                key.extend(
                    self.bytes[run_start..self.pos]
                        .iter()
                        .map(|&b| u32::from(b)),
                );
            }
            let code_point = match self.peek() {
                None => return Err(self.syntax("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    out.push('"');
                    return Ok(());
                }
                Some(b'\\') => self.escape()?,
                Some(0x00..=0x1f) => return Err(self.syntax("invalid control character in string")),
                Some(_) => self.raw_char(),
            };
            push_escaped(out, code_point);
            if let Some(key) = sort_key.as_deref_mut() {
                key.push(code_point);
            }
        }
    }

    /// A raw (unescaped) character: 0x7f or any non-ASCII scalar value.
    fn raw_char(&mut self) -> u32 {
        // `text` is valid UTF-8 and `pos` is on a character boundary here, so
        // there is always a next char; 0xFFFD is never reached.
        let ch = self.text[self.pos..].chars().next().unwrap_or('\u{fffd}');
        self.pos += ch.len_utf8();
        u32::from(ch)
    }

    /// Decodes one escape starting at the backslash into a code point, with
    /// Python's surrogate handling: a high surrogate directly followed by an
    /// escaped low surrogate joins it; any other surrogate stays alone.
    fn escape(&mut self) -> Result<u32, CanonicalError> {
        let code_point = match self.bytes.get(self.pos + 1) {
            Some(b'"') => 0x22,
            Some(b'\\') => 0x5c,
            Some(b'/') => 0x2f,
            Some(b'b') => 0x08,
            Some(b'f') => 0x0c,
            Some(b'n') => 0x0a,
            Some(b'r') => 0x0d,
            Some(b't') => 0x09,
            Some(b'u') => return self.unicode_escape(),
            _ => return Err(self.syntax("invalid \\escape")),
        };
        self.pos += 2;
        Ok(code_point)
    }

    fn unicode_escape(&mut self) -> Result<u32, CanonicalError> {
        let first = self.hex4(self.pos + 2)?;
        self.pos += 6;
        if !(0xd800..0xdc00).contains(&first) || !self.bytes[self.pos..].starts_with(b"\\u") {
            return Ok(first);
        }
        let second = self.hex4(self.pos + 2)?;
        if !(0xdc00..0xe000).contains(&second) {
            // Not a pair: the next escape is read again on its own.
            return Ok(first);
        }
        self.pos += 6;
        Ok(0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00))
    }

    fn hex4(&self, at: usize) -> Result<u32, CanonicalError> {
        let invalid = CanonicalError::Syntax {
            offset: at,
            reason: "invalid \\uXXXX escape",
        };
        let digits = self.bytes.get(at..at + 4).ok_or(invalid.clone())?;
        digits.iter().try_fold(0u32, |acc, &b| {
            let nibble = char::from(b).to_digit(16).ok_or(invalid.clone())?;
            Ok(acc << 4 | nibble)
        })
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?` as Python's scanner
    /// reads it: an incomplete fraction or exponent is not consumed (and then
    /// fails as unexpected data, as in Python).
    fn number(&mut self, out: &mut String) -> Result<(), CanonicalError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => {
                self.pos = start;
                return Err(self.syntax("expecting value"));
            }
        }
        let int_end = self.pos;
        let mut is_float = false;
        if self.peek() == Some(b'.') && self.digit_at(self.pos + 1) {
            self.pos += 1;
            self.skip_digits();
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            let mut after = self.pos + 1;
            if let Some(b'+' | b'-') = self.bytes.get(after) {
                after += 1;
            }
            if self.digit_at(after) {
                self.pos = after;
                self.skip_digits();
                is_float = true;
            }
        }
        let literal = &self.text[start..self.pos];
        if is_float {
            self.float(out, literal, start)
        } else {
            integer(out, literal, start, int_end)
        }
    }

    fn float(
        &mut self,
        out: &mut String,
        literal: &str,
        start: usize,
    ) -> Result<(), CanonicalError> {
        // Correctly rounded, like Python's float(); overflow gives ±inf,
        // which Python then writes as ±Infinity.
        let value: f64 = literal.parse().map_err(|_| CanonicalError::Syntax {
            offset: start,
            reason: "invalid number",
        })?;
        write_float(out, value);
        Ok(())
    }

    fn digit_at(&self, at: usize) -> bool {
        matches!(self.bytes.get(at), Some(b'0'..=b'9'))
    }

    fn skip_digits(&mut self) {
        while self.digit_at(self.pos) {
            self.pos += 1;
        }
    }
}

/// Python ints are written back digit for digit; only `-0` changes (to `0`).
fn integer(
    out: &mut String,
    literal: &str,
    start: usize,
    int_end: usize,
) -> Result<(), CanonicalError> {
    let negative = literal.starts_with('-');
    let digit_count = int_end - start - usize::from(negative);
    if digit_count > MAX_INT_DIGITS {
        return Err(CanonicalError::IntegerTooLong { offset: start });
    }
    out.push_str(if literal == "-0" { "0" } else { literal });
    Ok(())
}

fn write_sorted_members(out: &mut String, members: Members) -> Result<(), CanonicalError> {
    let Members {
        text,
        keys,
        mut spans,
    } = members;
    let key_of = |member: &Member| &keys[member.key.clone()];
    spans.sort_unstable_by(|a, b| key_of(a).cmp(key_of(b)));
    if let Some(pair) = spans.windows(2).find(|w| key_of(&w[0]) == key_of(&w[1])) {
        return Err(CanonicalError::DuplicateKey {
            offset: pair[0].key_offset.max(pair[1].key_offset),
        });
    }
    out.push('{');
    for (i, member) in spans.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&text[member.text.clone()]);
    }
    out.push('}');
    Ok(())
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Writes one code point as Python's `ensure_ascii=True` encoder does
/// (CPython `ascii_escape_unichar`): short escapes for `"` `\` and five
/// controls, printable ASCII 0x20..=0x7e raw, everything else (0x7f
/// included) as lowercase `\uXXXX`, astral code points as surrogate pairs.
fn push_escaped(out: &mut String, code_point: u32) {
    match code_point {
        0x22 => out.push_str("\\\""),
        0x5c => out.push_str("\\\\"),
        0x0a => out.push_str("\\n"),
        0x0d => out.push_str("\\r"),
        0x09 => out.push_str("\\t"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        0x20..=0x7e => out.push(char::from(code_point as u8)),
        0x10000.. => {
            let v = code_point - 0x10000;
            push_u_escape(out, 0xd800 | (v >> 10));
            push_u_escape(out, 0xdc00 | (v & 0x3ff));
        }
        _ => push_u_escape(out, code_point),
    }
}

fn push_u_escape(out: &mut String, unit: u32) {
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX_LOWER[((unit >> shift) & 0xf) as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        match canonicalize(s.as_bytes()) {
            Ok(text) => text,
            Err(e) => panic!("canonicalize({s:?}) failed: {e}"),
        }
    }

    #[test]
    fn float_repr_table_matches_python() {
        let table = [
            ("1.0", "1.0"),
            ("1e16", "1e+16"),
            ("1e15", "1000000000000000.0"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("1e-7", "1e-07"),
            ("12.5", "12.5"),
            ("1763800000.123456", "1763800000.123456"),
            ("-0.0", "-0.0"),
            ("1.5e300", "1.5e+300"),
            ("123456789012345678.0", "1.2345678901234568e+17"),
            ("1E400", "Infinity"),
            ("-1e400", "-Infinity"),
            ("0e0", "0.0"),
            ("-0.0e-0", "-0.0"),
            ("1.5E+3", "1500.0"),
            ("5e-324", "5e-324"),
            ("1e-400", "0.0"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("0.1", "0.1"),
            ("9999999999999998.0", "9999999999999998.0"),
            ("12345678901234567.0", "1.2345678901234568e+16"),
            ("0.000123", "0.000123"),
            ("1e22", "1e+22"),
            ("1e100", "1e+100"),
            ("2.5e-5", "2.5e-05"),
            // Exact halfway cases: Python rounds the last digit to even.
            ("194383705278085.125", "194383705278085.12"),
            ("194383705278085.375", "194383705278085.38"),
            ("913575179138088.25", "913575179138088.2"),
            ("913575179138088.75", "913575179138088.8"),
            ("997305692973726.25", "997305692973726.2"),
        ];
        for (input, expected) in table {
            assert_eq!(canon(input), expected, "input {input}");
        }
    }

    #[test]
    fn absurd_float_exponents_are_cheap_and_saturate() {
        assert_eq!(canon("1e999999999999999999999"), "Infinity");
        assert_eq!(canon("-1e999999999999999999999"), "-Infinity");
        assert_eq!(canon("1e-999999999999999999999"), "0.0");
    }

    #[test]
    fn non_finite_literals_are_kept() {
        assert_eq!(
            canon("[NaN,Infinity,-Infinity]"),
            "[NaN,Infinity,-Infinity]"
        );
        for bad in ["-NaN", "nan", "infinity", "+Infinity", "Inf"] {
            assert!(canonicalize(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn integers_are_written_back_exactly() {
        assert_eq!(canon("-0"), "0");
        assert_eq!(canon("0"), "0");
        assert_eq!(canon("-17"), "-17");
        let big = "123456789012345678901234567890123456789012345678901234567890";
        assert_eq!(canon(big), big);
        assert_eq!(canon(&format!("-{big}")), format!("-{big}"));
        let limit = "9".repeat(MAX_INT_DIGITS);
        assert_eq!(canon(&limit), limit);
        assert_eq!(canon(&format!("-{limit}")), format!("-{limit}"));
        let over = "9".repeat(MAX_INT_DIGITS + 1);
        assert_eq!(
            canonicalize(over.as_bytes()),
            Err(CanonicalError::IntegerTooLong { offset: 0 })
        );
    }

    #[test]
    fn keys_are_sorted_by_code_point_recursively() {
        assert_eq!(
            canon(r#"{"b": 1, "a": {"d": [3, {"z": 0, "y": 1}], "c": 2}}"#),
            r#"{"a":{"c":2,"d":[3,{"y":1,"z":0}]},"b":1}"#
        );
        // U+FFFF sorts before U+1F600 by code point, although in UTF-16 the
        // surrogate 0xD83D would sort first.
        assert_eq!(
            canon("{\"b\":1,\"\u{1F600}\":2,\"\u{ffff}\":3,\"B\":4}"),
            r#"{"B":4,"b":1,"\uffff":3,"\ud83d\ude00":2}"#
        );
        // A lone surrogate key sorts by its own code point.
        assert_eq!(
            canon(r#"{"\ue000":1,"\ud800":2,"\ud800\udc00":3}"#),
            r#"{"\ud800":2,"\ue000":1,"\ud800\udc00":3}"#
        );
    }

    #[test]
    fn strings_are_escaped_like_ensure_ascii() {
        assert_eq!(
            canon(r#""q\" b\\ n\n r\r t\t b\b f\f \/ \u0001 \u001F""#),
            r#""q\" b\\ n\n r\r t\t b\b f\f / \u0001 \u001f""#
        );
        assert_eq!(canon("\"\u{7f}\""), r#""\u007f""#);
        assert_eq!(canon("\"é ü \u{2028}\""), r#""\u00e9 \u00fc \u2028""#);
        assert_eq!(canon(r#""\u00E9""#), r#""\u00e9""#);
        assert_eq!(canon("\"\u{1F600}\""), r#""\ud83d\ude00""#);
        assert_eq!(canon(r#""\uD83D\uDE00""#), r#""\ud83d\ude00""#);
    }

    #[test]
    fn lone_surrogates_are_kept_as_python_does() {
        assert_eq!(canon(r#""\ud800""#), r#""\ud800""#);
        assert_eq!(canon(r#""\udc00\ud800""#), r#""\udc00\ud800""#);
        assert_eq!(canon(r#""\ud800\u0041""#), r#""\ud800A""#);
        assert_eq!(canon(r#""\ud800\ud800\udc00""#), r#""\ud800\ud800\udc00""#);
        assert!(canonicalize(br#""\ud800\uzzzz""#).is_err());
    }

    #[test]
    fn raw_control_characters_and_bad_escapes_are_refused() {
        for bad in [
            "\"\t\"",
            "\"\n\"",
            "\"\\x\"",
            "\"\\U0041\"",
            "\"\\u12G4\"",
            "\"\\u12\"",
            "\"abc",
        ] {
            assert!(
                matches!(
                    canonicalize(bad.as_bytes()),
                    Err(CanonicalError::Syntax { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert_eq!(
            canonicalize(br#"{"a":1,"b":2,"a":3}"#),
            Err(CanonicalError::DuplicateKey { offset: 13 })
        );
        // Equal after unescaping is still a duplicate.
        assert!(matches!(
            canonicalize(br#"{"x":{"\u00e9":1,"\u00E9":2}}"#),
            Err(CanonicalError::DuplicateKey { .. })
        ));
        assert!(matches!(
            canonicalize("{\"é\":1,\"\\u00e9\":2}".as_bytes()),
            Err(CanonicalError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(canon(&ok), ok);
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            canonicalize(deep.as_bytes()),
            Err(CanonicalError::TooDeep { offset: MAX_DEPTH })
        );
        let objects = format!(
            "{}1{}",
            "{\"a\":".repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert!(matches!(
            canonicalize(objects.as_bytes()),
            Err(CanonicalError::TooDeep { .. })
        ));
        // A huge depth is refused without recursing into it.
        let huge = "[".repeat(1_000_000);
        assert!(matches!(
            canonicalize(huge.as_bytes()),
            Err(CanonicalError::TooDeep { .. })
        ));
    }

    #[test]
    fn whitespace_around_the_value_is_fine_but_trailing_data_is_not() {
        assert_eq!(canon(" \t\r\n{\"a\" : [ 1 , 2 ] } \n"), r#"{"a":[1,2]}"#);
        assert_eq!(
            canonicalize(b"{} x"),
            Err(CanonicalError::TrailingData { offset: 3 })
        );
        assert_eq!(
            canonicalize(b"1 2"),
            Err(CanonicalError::TrailingData { offset: 2 })
        );
        // Python treats these as a number followed by garbage.
        for bad in ["1.", "01", "1e", "1e+", "-01", "1_0"] {
            assert!(
                matches!(
                    canonicalize(bad.as_bytes()),
                    Err(CanonicalError::TrailingData { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn invalid_json_is_refused() {
        for bad in [
            "",
            " ",
            "-",
            ".5",
            "+1",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\" 1}",
            "[1 2]",
            "tru",
            "nul",
            "'a'",
            "\u{a0}1",
            "{\"a\":}",
            "[",
            "{",
        ] {
            assert!(
                matches!(
                    canonicalize(bad.as_bytes()),
                    Err(CanonicalError::Syntax { .. })
                ),
                "{bad:?} gave {:?}",
                canonicalize(bad.as_bytes())
            );
        }
    }

    #[test]
    fn invalid_utf8_and_bom_are_refused() {
        assert_eq!(
            canonicalize(b"\"ab\xff\""),
            Err(CanonicalError::InvalidUtf8 { offset: 3 })
        );
        // UTF-8 encoded surrogate (Python's surrogatepass would take it).
        assert!(matches!(
            canonicalize(b"\"\xed\xa0\x80\""),
            Err(CanonicalError::InvalidUtf8 { .. })
        ));
        assert!(canonicalize(b"\xef\xbb\xbf{}").is_err());
    }

    #[test]
    fn scalars_and_empty_containers() {
        assert_eq!(canon("true"), "true");
        assert_eq!(canon("[false,null]"), "[false,null]");
        assert_eq!(canon("{ }"), "{}");
        assert_eq!(canon("[ ]"), "[]");
        assert_eq!(canon("\"\""), "\"\"");
    }
}
