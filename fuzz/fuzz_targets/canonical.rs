//! Canonical JSON (the text COINjecture signatures cover) and the personal
//! signature check, on arbitrary bodies.
//!
//! Properties: never panics; the canonical text is ASCII, is itself
//! canonical (canonicalize is idempotent on its own output), and a
//! signature over it verifies while a different one does not; a body with
//! no canonical form is an error from `verify_personal`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pooldesk_proto::canonical::canonicalize;
use pooldesk_proto::sig::{hmac_sha256_hex, verify_personal};

const KEY: &[u8] = b"fuzz-personal-key";

fuzz_target!(|body: &[u8]| {
    let canonical = match canonicalize(body) {
        Ok(text) => text,
        Err(e) => {
            // The same refusal through the signature path, and a message
            // that never quotes the body (it goes back to the client).
            assert!(verify_personal(KEY, body, &"0".repeat(64)).is_err());
            let _ = e.to_string();
            return;
        }
    };
    assert!(canonical.is_ascii(), "canonical text must be ASCII");
    let again = canonicalize(canonical.as_bytes()).expect("canonical text must parse");
    assert_eq!(again, canonical, "canonicalize must be idempotent");
    let sig = hmac_sha256_hex(KEY, canonical.as_bytes());
    assert_eq!(verify_personal(KEY, body, &sig), Ok(true));
    assert_eq!(verify_personal(KEY, body, &sig.to_uppercase()), Ok(true));
    let mut wrong = sig.into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).expect("hex");
    assert_eq!(verify_personal(KEY, body, &wrong), Ok(false));
    // Arbitrary signature text (wrong length, non-hex, non-ASCII) is a
    // plain `false`.
    let text = String::from_utf8_lossy(&body[..body.len().min(80)]);
    let _ = verify_personal(KEY, body, &text);
});
