//! The daemon's withdrawal body deserializer (`POST /api/withdraw`, the
//! handler's own) on arbitrary bytes.
//!
//! Properties: never panics; a refusal is 400 (not JSON) or 422 (wrong
//! shape), never anything else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pooldeskd::http::payouts::parse_withdraw_body;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = parse_withdraw_body(data) {
        assert!(matches!(e.status.as_u16(), 400 | 422), "{e:?}");
    }
});
