//! Property tests for canonical JSON and amounts.

use pooldesk_proto::amount::{
    MAX_MONEY_MSAT, MAX_MONEY_SAT, MSAT_PER_SAT, format_btc, format_msat_btc, parse_btc_msat,
    parse_btc_sat,
};
use pooldesk_proto::canonical::{CanonicalError, canonicalize, python_float_repr};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// `cases` per property; failures are saved (relative to the crate root,
/// where `cargo test` runs) in `proptest-regressions/proptests.txt`, because
/// proptest's default location needs a `lib.rs` next to the test file.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/proptests.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// Decimal point position of Python's repr: value = 0.d1d2… × 10^decpt,
/// read back from the text the canonicalizer wrote. Also checks the layout
/// rules of each notation on the way.
fn decpt_of_repr(text: &str) -> i32 {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    if let Some((mantissa, exponent)) = unsigned.split_once('e') {
        // d[.ddd]e±XX: explicit sign, at least two exponent digits, and no
        // `.0` padding (shortest digits never end in 0).
        let sign = exponent.as_bytes()[0];
        assert!(sign == b'+' || sign == b'-', "{text}: exponent sign");
        assert!(exponent.len() >= 3, "{text}: two exponent digits");
        let (lead, rest) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        assert_eq!(lead.len(), 1, "{text}: one digit before the point");
        assert!(lead != "0", "{text}: no leading zero");
        assert!(!rest.ends_with('0'), "{text}: no trailing zero");
        let exponent: i32 = exponent.parse().expect("exponent digits");
        return exponent + 1;
    }
    let (int_part, frac_part) = unsigned
        .split_once('.')
        .expect("fixed notation has a point");
    assert!(!frac_part.is_empty(), "{text}: digits after the point");
    if int_part != "0" {
        assert!(!int_part.starts_with('0'), "{text}");
        return int_part.len() as i32;
    }
    if frac_part == "0" {
        // Zero: Python's repr computes decpt = 1 for 0.0.
        return 1;
    }
    let zeros = frac_part.bytes().take_while(|&b| b == b'0').count();
    -(zeros as i32)
}

fn significant_digits(text: &str) -> String {
    let mantissa = text.split('e').next().unwrap_or(text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let trimmed = digits.trim_start_matches('0');
    // Fixed notation pads with zeros on the right up to the point (and
    // writes ".0"); they are not significant.
    let trimmed = trimmed.trim_end_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

/// The `count` significant digits closest to the exact value of `x`
/// (finite), ties to even, found from its full decimal expansion (at most
/// 767 significant digits, so 800 places are exact): an oracle independent
/// of the shortest-digits code. `None` when that decimal does not read back
/// as `x` (then any shortest digits are acceptable).
fn closest_digits(x: f64, count: usize) -> Option<String> {
    let x = x.abs();
    if x == 0.0 {
        return None;
    }
    let exact = format!("{x:.800e}");
    let (mantissa, exponent) = exact.split_once('e')?;
    let exponent: i32 = exponent.parse().ok()?;
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let (kept, dropped) = digits.split_at(count);
    let mut value: u64 = std::str::from_utf8(kept).ok()?.parse().ok()?;
    let first_dropped = dropped[0];
    let rest_zero = dropped[1..].iter().all(|&d| d == b'0');
    let round_up =
        first_dropped > b'5' || (first_dropped == b'5' && (!rest_zero || value % 2 == 1));
    if round_up {
        value += 1;
    }
    // value × 10^(exponent - count + 1) must read back as x.
    let scale = exponent - count as i32 + 1;
    if format!("{value}e{scale}").parse::<f64>().ok()? != x {
        return None;
    }
    let text = value.to_string();
    Some(text.trim_end_matches('0').to_string())
}

fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        any::<f64>(),
        (-330i32..330, 1u64..10_000_000_000_000_000).prop_map(|(e, m)| m as f64 * 10f64.powi(e)),
        // Few binary fraction digits and ~17 decimal digits: where exact
        // halfway cases of the shortest digits live.
        (1u64..(1 << 53), 1i32..12).prop_map(|(m, k)| m as f64 / f64::from(1u32 << k)),
    ]
    .prop_filter("finite", |x| x.is_finite())
}

proptest! {
    #![proptest_config(config(4000))]

    /// (a) Any finite float, written by Rust in either notation, comes back
    /// as the same bits and in Python's repr layout.
    #[test]
    fn float_repr_round_trips_and_follows_python_layout(x in finite_f64(), debug_form in any::<bool>()) {
        let input = if debug_form { format!("{x:?}") } else { format!("{x:e}") };
        let out = canonicalize(input.as_bytes()).expect("a float literal is valid JSON");
        prop_assert_eq!(&out, &python_float_repr(x));
        let back: f64 = out.parse().expect("repr parses as f64");
        prop_assert_eq!(back.to_bits(), x.to_bits(), "{} -> {}", input, out);
        let decpt = decpt_of_repr(&out);
        let scientific = out.contains('e');
        prop_assert_eq!(scientific, decpt <= -4 || decpt > 16, "{} decpt {}", out, decpt);
        // Shortest round-trip digits: as many as Rust's `{:e}` finds, and
        // the closest such digits to the exact value, ties to even.
        let rust = significant_digits(&format!("{x:e}"));
        let ours = significant_digits(&out);
        prop_assert_eq!(ours.len(), rust.len(), "{}", out);
        if let Some(closest) = closest_digits(x, rust.len()) {
            prop_assert_eq!(ours, closest, "{} from {}", out, input);
        }
    }
}

/// A JSON value, kept as the parts needed to write it in many equivalent ways.
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    /// Integer digits, without sign.
    Int(bool, String),
    Float(f64, bool),
    NonFinite(&'static str),
    Str(Vec<Piece>),
    Array(Vec<Json>),
    Object(Vec<(Vec<Piece>, Json)>),
}

/// One decoded unit of a string and how to write it.
#[derive(Debug, Clone)]
enum Piece {
    Char(char, bool),
    /// A lone surrogate, always written as an escape.
    Surrogate(u16),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        (proptest::char::range(' ', '~'), any::<bool>()).prop_map(|(c, e)| Piece::Char(c, e)),
        (proptest::char::range('\0', '\u{1f}'), Just(true)).prop_map(|(c, e)| Piece::Char(c, e)),
        (any::<char>(), any::<bool>()).prop_map(|(c, e)| Piece::Char(c, e)),
        (0xd800u16..0xe000).prop_map(Piece::Surrogate),
    ]
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        (any::<bool>(), "[1-9][0-9]{0,40}|0").prop_map(|(neg, d)| Json::Int(neg, d)),
        (finite_f64(), any::<bool>()).prop_map(|(x, e)| Json::Float(x, e)),
        prop_oneof![Just("NaN"), Just("Infinity"), Just("-Infinity")].prop_map(Json::NonFinite),
        proptest::collection::vec(piece(), 0..8).prop_map(Json::Str),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            proptest::collection::vec((proptest::collection::vec(piece(), 0..4), inner), 0..6)
                .prop_map(Json::Object),
        ]
    })
}

fn write_piece(out: &mut String, piece: &Piece) {
    match *piece {
        Piece::Surrogate(unit) => out.push_str(&format!("\\u{unit:04X}")),
        Piece::Char(c, escape) => {
            let must_escape = c == '"' || c == '\\' || c < ' ';
            if escape || must_escape {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            } else {
                out.push(c);
            }
        }
    }
}

fn write_json(out: &mut String, value: &Json, spaced: bool) {
    let sep = if spaced { " " } else { "" };
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(neg, digits) => {
            if *neg {
                out.push('-');
            }
            out.push_str(digits);
        }
        Json::Float(x, sci) => out.push_str(&if *sci {
            format!("{x:e}")
        } else {
            format!("{x:?}")
        }),
        Json::NonFinite(word) => out.push_str(word),
        Json::Str(pieces) => {
            out.push('"');
            pieces.iter().for_each(|p| write_piece(out, p));
            out.push('"');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    out.push_str(sep);
                }
                write_json(out, item, spaced);
            }
            out.push(']');
        }
        Json::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    out.push_str(sep);
                }
                out.push('"');
                key.iter().for_each(|p| write_piece(out, p));
                out.push('"');
                out.push(':');
                out.push_str(sep);
                write_json(out, item, spaced);
            }
            out.push('}');
        }
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// (b) Canonical text is a fixed point: canonicalizing it again changes
    /// nothing. Duplicate keys (generated by chance) must be refused, never
    /// silently merged.
    #[test]
    fn canonicalize_is_idempotent(value in json(), spaced in any::<bool>()) {
        let mut text = String::new();
        write_json(&mut text, &value, spaced);
        match canonicalize(text.as_bytes()) {
            Ok(once) => {
                prop_assert!(once.is_ascii());
                let twice = canonicalize(once.as_bytes());
                prop_assert_eq!(twice.as_deref(), Ok(once.as_str()), "{}", text);
            }
            Err(CanonicalError::DuplicateKey { .. }) => {}
            Err(e) => prop_assert!(false, "{} failed: {}", text, e),
        }
    }

    /// (c) Every satoshi amount survives format → parse.
    #[test]
    fn sat_format_parse_round_trip(sat in 0..=MAX_MONEY_SAT) {
        prop_assert_eq!(parse_btc_sat(&format_btc(sat)), Ok(sat));
        prop_assert_eq!(parse_btc_msat(&format_btc(sat)), Ok(sat * MSAT_PER_SAT));
    }

    #[test]
    fn msat_format_parse_round_trip(msat in 0..=MAX_MONEY_MSAT) {
        prop_assert_eq!(parse_btc_msat(&format_msat_btc(msat)), Ok(msat));
    }

    /// The same amount written with a shifted exponent and padding zeros
    /// parses to the same satoshi: `sat` = digits × 10^(exp - 8).
    #[test]
    fn exponent_forms_parse_exactly(
        sat in 0..=MAX_MONEY_SAT,
        extra_zeros in 0usize..30,
        upper in any::<bool>(),
    ) {
        let digits = format!("{sat}{}", "0".repeat(extra_zeros));
        let exponent = -(8 + extra_zeros as i64);
        let e = if upper { 'E' } else { 'e' };
        let text = format!("{digits}{e}{exponent}");
        prop_assert_eq!(parse_btc_sat(&text), Ok(sat), "{}", text);
    }

    /// One unit below a satoshi is always refused, never rounded.
    #[test]
    fn sub_satoshi_is_refused(sat in 0..MAX_MONEY_SAT, msat in 1i64..1000) {
        let text = format_msat_btc(sat * MSAT_PER_SAT + msat);
        prop_assert!(parse_btc_sat(&text).is_err(), "{}", text);
        prop_assert_eq!(parse_btc_msat(&text), Ok(sat * MSAT_PER_SAT + msat));
    }
}

fn json_alphabet_bytes() -> impl Strategy<Value = Vec<u8>> {
    const ALPHABET: &[u8] =
        b"{}[]\":,0123456789-+.eE tfnrulsaINiy\\/ubd\t\n\x01\x7f\xc3\xa9\xed\xa0\x80";
    proptest::collection::vec(proptest::sample::select(ALPHABET), 0..64)
}

proptest! {
    #![proptest_config(config(5000))]

    /// (d) Arbitrary bytes never make the canonicalizer panic.
    #[test]
    fn canonicalize_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = canonicalize(&bytes);
    }

    #[test]
    fn canonicalize_never_panics_on_json_like_bytes(bytes in json_alphabet_bytes()) {
        if let Ok(once) = canonicalize(&bytes) {
            let twice = canonicalize(once.as_bytes());
            prop_assert_eq!(twice.as_deref(), Ok(once.as_str()));
        }
    }

    #[test]
    fn amount_parsers_never_panic(text in "[-+0-9.eE]{0,40}|\\PC{0,20}") {
        let _ = parse_btc_sat(&text);
        let _ = parse_btc_msat(&text);
    }
}
