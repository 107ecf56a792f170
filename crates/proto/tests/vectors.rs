//! The signature vectors every reporter contract must verify.
//!
//! `data/signatures.json` is a byte-identical copy of the project's shared
//! `vectors/signatures.json`, produced by the seeds' own Python code. It is
//! copied into the repository so that tests never read outside it; if the
//! shared file changes, copy it again.

use pooldesk_proto::canonical::canonicalize;
use pooldesk_proto::sig::{hmac_sha256_hex, verify_hmac_sha256_hex, verify_personal};
use serde::Deserialize;

const VECTORS_JSON: &str = include_str!("data/signatures.json");

#[derive(Deserialize)]
struct Vectors {
    report_share: Vec<ReportShare>,
    personal: Vec<Personal>,
}

#[derive(Deserialize)]
struct ReportShare {
    secret: String,
    body: String,
    x_report_sig: String,
}

#[derive(Deserialize)]
struct Personal {
    api_key: String,
    payload_json_as_sent: String,
    canonical: String,
    x_signature: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(VECTORS_JSON).expect("tests/data/signatures.json is valid")
}

/// Every single-bit flip (XOR 0x01) of every byte of `bytes`.
fn flips(bytes: &[u8]) -> impl Iterator<Item = (usize, Vec<u8>)> + '_ {
    (0..bytes.len()).map(move |i| {
        let mut flipped = bytes.to_vec();
        flipped[i] ^= 0x01;
        (i, flipped)
    })
}

/// Signature strings with one character changed to another character (the
/// flip keeps it ASCII; some flips give non-hex characters, which must fail
/// as well).
fn sig_flips(sig: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    flips(sig.as_bytes())
        .map(|(i, bytes)| (i, String::from_utf8(bytes).expect("ASCII stays ASCII")))
}

#[test]
fn vector_file_is_complete() {
    let v = vectors();
    assert_eq!(v.report_share.len(), 5);
    assert_eq!(v.personal.len(), 5);
}

#[test]
fn report_share_vectors_verify_over_raw_body_bytes() {
    for (n, v) in vectors().report_share.iter().enumerate() {
        let (key, body) = (v.secret.as_bytes(), v.body.as_bytes());
        assert_eq!(hmac_sha256_hex(key, body), v.x_report_sig, "vector {n}");
        assert!(
            verify_hmac_sha256_hex(key, body, &v.x_report_sig),
            "vector {n}"
        );
        assert!(
            verify_hmac_sha256_hex(key, body, &v.x_report_sig.to_uppercase()),
            "vector {n} upper-case"
        );
    }
}

#[test]
fn report_share_vectors_fail_after_any_one_byte_change() {
    for (n, v) in vectors().report_share.iter().enumerate() {
        let (key, body, sig) = (v.secret.as_bytes(), v.body.as_bytes(), &v.x_report_sig);
        for (i, flipped) in flips(body) {
            assert!(
                !verify_hmac_sha256_hex(key, &flipped, sig),
                "vector {n} body byte {i}"
            );
        }
        for (i, flipped) in flips(key) {
            assert!(
                !verify_hmac_sha256_hex(&flipped, body, sig),
                "vector {n} key byte {i}"
            );
        }
        for (i, flipped) in sig_flips(sig) {
            assert!(
                !verify_hmac_sha256_hex(key, body, &flipped),
                "vector {n} sig char {i}"
            );
        }
    }
}

#[test]
fn personal_vectors_canonicalize_exactly() {
    for (n, v) in vectors().personal.iter().enumerate() {
        let canonical = canonicalize(v.payload_json_as_sent.as_bytes())
            .unwrap_or_else(|e| panic!("vector {n}: {e}"));
        assert_eq!(canonical, v.canonical, "vector {n}");
        // The expected canonical text is itself canonical.
        assert_eq!(
            canonicalize(v.canonical.as_bytes()).as_deref(),
            Ok(v.canonical.as_str()),
            "vector {n}"
        );
    }
}

#[test]
fn personal_vectors_verify() {
    for (n, v) in vectors().personal.iter().enumerate() {
        let (key, body) = (v.api_key.as_bytes(), v.payload_json_as_sent.as_bytes());
        assert_eq!(
            hmac_sha256_hex(key, v.canonical.as_bytes()),
            v.x_signature,
            "vector {n}"
        );
        assert_eq!(
            verify_personal(key, body, &v.x_signature),
            Ok(true),
            "vector {n}"
        );
        assert_eq!(
            verify_personal(key, body, &v.x_signature.to_uppercase()),
            Ok(true),
            "vector {n} upper-case"
        );
    }
}

#[test]
fn personal_vectors_fail_after_any_one_byte_change() {
    for (n, v) in vectors().personal.iter().enumerate() {
        let (key, body, sig) = (
            v.api_key.as_bytes(),
            v.payload_json_as_sent.as_bytes(),
            &v.x_signature,
        );
        for (i, flipped) in flips(body) {
            // A flipped body is either no longer JSON (an error) or a
            // different document (a signature mismatch); never accepted.
            let outcome = verify_personal(key, &flipped, sig);
            assert!(outcome != Ok(true), "vector {n} body byte {i}");
        }
        for (i, flipped) in flips(key) {
            assert_eq!(
                verify_personal(&flipped, body, sig),
                Ok(false),
                "vector {n} key byte {i}"
            );
        }
        for (i, flipped) in sig_flips(sig) {
            assert_eq!(
                verify_personal(key, body, &flipped),
                Ok(false),
                "vector {n} sig char {i}"
            );
        }
    }
}
