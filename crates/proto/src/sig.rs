//! HMAC-SHA256 request signatures, verified in constant time.
//!
//! Two reporter contracts use them: pool reports sign the raw body bytes
//! (`X-REPORT-SIG`), personal-key (COINjecture) requests sign the canonical
//! JSON of the body (`X-Signature`, see [`crate::canonical`]). Verification
//! never returns or logs the expected signature, and its timing does not
//! depend on how much of a guessed signature is right.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::canonical::{CanonicalError, canonicalize};

/// Length of a hex-encoded HMAC-SHA256 tag.
pub const SIG_HEX_LEN: usize = 64;

/// HMAC-SHA256 of `msg` under `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length (long keys are hashed), so this never fails.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 of `msg` under `key` as lowercase hex, the form reporters
/// send (Python's `hexdigest()`).
pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    hex::encode(hmac_sha256(key, msg))
}

/// True when `sig_hex` (64 hex digits, either case) is the HMAC-SHA256 of
/// `msg` under `key`.
///
/// The hex is decoded without branching on its content and compared with
/// `subtle`, so neither a wrong length, a bad character nor a partly right
/// tag makes it return sooner in a way that depends on the secret.
pub fn verify_hmac_sha256_hex(key: &[u8], msg: &[u8], sig_hex: &str) -> bool {
    // The length is public (the attacker chose it); failing fast on it
    // reveals nothing about the key.
    let Ok(sig_hex) = <&[u8; SIG_HEX_LEN]>::try_from(sig_hex.as_bytes()) else {
        return false;
    };
    let (provided, hex_ok) = decode_hex_32(sig_hex);
    let expected = hmac_sha256(key, msg);
    bool::from(expected.ct_eq(&provided) & hex_ok)
}

/// Verifies a personal-key (COINjecture) signature: HMAC-SHA256 under the
/// user's api key of the canonical JSON of `body`. A body that has no
/// canonical form is an error rather than `false` so the caller can answer
/// 422 (bad data) instead of 401.
pub fn verify_personal(api_key: &[u8], body: &[u8], sig_hex: &str) -> Result<bool, CanonicalError> {
    let canonical = canonicalize(body)?;
    Ok(verify_hmac_sha256_hex(
        api_key,
        canonical.as_bytes(),
        sig_hex,
    ))
}

/// The message a personal key signs for a request bound to its method and
/// path: `METHOD SP PATH LF canonical-JSON-of-body`. Every personal-key
/// endpoint except the seed's `/v1/ingest/block` (kept byte-compatible:
/// its signature covers the canonical body alone) takes this form, so a
/// signature made for one endpoint cannot be replayed against another.
/// `PATH` is the request path without the query string, as sent.
pub fn bound_message(method: &str, path: &str, canonical_body: &str) -> String {
    let mut message = String::with_capacity(method.len() + path.len() + canonical_body.len() + 2);
    message.push_str(method);
    message.push(' ');
    message.push_str(path);
    message.push('\n');
    message.push_str(canonical_body);
    message
}

/// The only endpoint whose personal-key signature covers the body alone
/// (the seed's contract, kept byte-compatible).
pub const BODY_SIGNED_PATH: &str = "/v1/ingest/block";

/// Signs a personal-key request as pooldeskd verifies it: the canonical
/// body alone for [`BODY_SIGNED_PATH`], else [`bound_message`].
pub fn sign_personal_request(
    api_key: &[u8],
    method: &str,
    path: &str,
    canonical_body: &str,
) -> String {
    if path == BODY_SIGNED_PATH {
        hmac_sha256_hex(api_key, canonical_body.as_bytes())
    } else {
        hmac_sha256_hex(
            api_key,
            bound_message(method, path, canonical_body).as_bytes(),
        )
    }
}

/// Decodes 64 hex digits into 32 bytes without data-dependent branches;
/// the `Choice` is 1 only if every digit was valid.
fn decode_hex_32(hex: &[u8; SIG_HEX_LEN]) -> ([u8; 32], Choice) {
    let mut out = [0u8; 32];
    let mut all_valid = 1u8;
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let (high, high_ok) = hex_nibble(pair[0]);
        let (low, low_ok) = hex_nibble(pair[1]);
        out[i] = (high << 4) | low;
        all_valid &= high_ok & low_ok;
    }
    (out, Choice::from(all_valid))
}

/// One hex digit to its value with masks instead of branches. Returns the
/// value (0 when invalid) and 1 if valid, else 0.
fn hex_nibble(c: u8) -> (u8, u8) {
    // mask_in(c, lo, hi) is 0xff when lo <= c <= hi, else 0.
    fn mask_in(c: u8, lo: u8, hi: u8) -> u8 {
        let c = i16::from(c);
        let above = ((i16::from(lo) - 1 - c) >> 8) as u8; // 0xff if c >= lo
        let below = ((c - i16::from(hi) - 1) >> 8) as u8; // 0xff if c <= hi
        above & below
    }
    let digit = mask_in(c, b'0', b'9');
    let lower = mask_in(c, b'a', b'f');
    let upper = mask_in(c, b'A', b'F');
    let value = (digit & c.wrapping_sub(b'0'))
        | (lower & c.wrapping_sub(b'a' - 10))
        | (upper & c.wrapping_sub(b'A' - 10));
    (value, (digit | lower | upper) & 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2.
    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hex_nibbles_decode_every_byte_correctly() {
        for c in 0..=255u8 {
            let (value, ok) = hex_nibble(c);
            match char::from(c).to_digit(16) {
                Some(v) => assert_eq!((value, ok), (v as u8, 1), "{c}"),
                None => assert_eq!(ok, 0, "{c}"),
            }
        }
    }

    #[test]
    fn verify_accepts_either_case_and_refuses_bad_hex() {
        let key = b"k";
        let sig = hmac_sha256_hex(key, b"m");
        assert!(verify_hmac_sha256_hex(key, b"m", &sig));
        assert!(verify_hmac_sha256_hex(key, b"m", &sig.to_uppercase()));
        assert!(!verify_hmac_sha256_hex(key, b"m", &sig[..63]));
        assert!(!verify_hmac_sha256_hex(key, b"m", &format!("{sig}0")));
        assert!(!verify_hmac_sha256_hex(key, b"m", ""));
        let mut bad = sig.clone().into_bytes();
        bad[10] = b'g';
        assert!(!verify_hmac_sha256_hex(
            key,
            b"m",
            &String::from_utf8_lossy(&bad)
        ));
        // Non-ASCII with the right byte length is refused too.
        let mut wide = "é".to_string();
        wide.push_str(&sig[2..]);
        assert_eq!(wide.len(), SIG_HEX_LEN);
        assert!(!verify_hmac_sha256_hex(key, b"m", &wide));
    }

    #[test]
    fn verify_personal_reports_bodies_without_canonical_form() {
        assert!(matches!(
            verify_personal(b"k", br#"{"a":1,"a":2}"#, &"0".repeat(64)),
            Err(CanonicalError::DuplicateKey { .. })
        ));
        let sig = hmac_sha256_hex(b"k", br#"{"a":1,"b":2}"#);
        assert_eq!(
            verify_personal(b"k", br#"{"b": 2, "a": 1}"#, &sig),
            Ok(true)
        );
        assert_eq!(
            verify_personal(b"k", br#"{"b": 3, "a": 1}"#, &sig),
            Ok(false)
        );
    }
}
