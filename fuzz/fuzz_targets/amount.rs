//! BTC amount parsing (exact decimals, never floats) on arbitrary text.
//!
//! Properties: never panics; a parsed amount is within 0..=21e6 BTC; the
//! 8-decimal text of a parsed amount parses back to the same amount; an
//! amount valid in sat is valid in msat with 1000 times the value; the
//! formatter round-trips any in-range integer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pooldesk_proto::amount::{
    MAX_MONEY_MSAT, MAX_MONEY_SAT, MSAT_PER_SAT, format_btc, format_msat_btc, parse_btc_msat,
    parse_btc_sat,
};

fuzz_target!(|data: &[u8]| {
    // Integers straight from the bytes: the formatters round-trip.
    if data.len() >= 8 {
        let raw = i64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        let sat = raw.rem_euclid(MAX_MONEY_SAT + 1);
        assert_eq!(parse_btc_sat(&format_btc(sat)), Ok(sat));
        let msat = raw.rem_euclid(MAX_MONEY_MSAT + 1);
        assert_eq!(parse_btc_msat(&format_msat_btc(msat)), Ok(msat));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sat = parse_btc_sat(text);
    let msat = parse_btc_msat(text);
    if let Ok(sat) = sat {
        assert!((0..=MAX_MONEY_SAT).contains(&sat), "{text:?} → {sat}");
        assert_eq!(parse_btc_sat(&format_btc(sat)), Ok(sat), "{text:?}");
        assert_eq!(msat, Ok(sat * MSAT_PER_SAT), "{text:?}");
    }
    if let Ok(msat) = msat {
        assert!((0..=MAX_MONEY_MSAT).contains(&msat), "{text:?} → {msat}");
        assert_eq!(parse_btc_msat(&format_msat_btc(msat)), Ok(msat), "{text:?}");
        // Whole satoshis in msat are whole satoshis in sat.
        if msat % MSAT_PER_SAT == 0 {
            assert_eq!(parse_btc_sat(text), Ok(msat / MSAT_PER_SAT), "{text:?}");
        } else {
            assert!(parse_btc_sat(text).is_err(), "{text:?}");
        }
    }
});
