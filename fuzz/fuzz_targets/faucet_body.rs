//! The daemon's faucet claim parser (`POST /api/faucet` bodies, the
//! handler's own) on arbitrary bytes.
//!
//! Properties: never panics; a refusal is 400 or 422; an accepted claim
//! came from a JSON object (or, as serde allows for structs, a 3-element
//! array in field order) whose `address` and `challenge` are the strings
//! returned, and whose numeric nonce is rendered as its decimal text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pooldeskd::http::faucet::parse_faucet_body;

fuzz_target!(|data: &[u8]| {
    match parse_faucet_body(data) {
        Err(e) => assert!(matches!(e.status.as_u16(), 400 | 422), "{e:?}"),
        Ok(claim) => {
            let value: serde_json::Value = serde_json::from_slice(data).expect("parsed as JSON");
            let (address, challenge, nonce) = match &value {
                serde_json::Value::Array(items) => (&items[0], &items[1], &items[2]),
                _ => (&value["address"], &value["challenge"], &value["nonce"]),
            };
            assert_eq!(address, claim.address.as_str());
            assert_eq!(challenge, claim.challenge.as_str());
            match nonce {
                serde_json::Value::String(text) => assert_eq!(text, &claim.nonce),
                serde_json::Value::Number(n) => assert_eq!(n.to_string(), claim.nonce),
                other => panic!("nonce {other:?} accepted"),
            }
        }
    }
});
