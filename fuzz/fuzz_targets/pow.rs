//! The faucet's proof-of-work check on arbitrary challenge, address, nonce
//! and difficulty (all attacker-chosen but the challenge).
//!
//! Properties: never panics; the answer is exactly "nonce length in
//! 1..=64 and enough leading zero bits"; a proof valid at some difficulty
//! is valid at every lower one; difficulties above 256 are never met.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pooldesk_proto::pow::{MAX_NONCE_LEN, check_pow, leading_zero_bits, pow_hash};

fuzz_target!(|data: &[u8]| {
    let Some((&difficulty, rest)) = data.split_first() else {
        return;
    };
    // Difficulty 0..=255 from the byte, plus the out-of-range tail.
    let difficulty = u32::from(difficulty);
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(3, '\u{0}');
    let challenge = parts.next().unwrap_or("");
    let address = parts.next().unwrap_or("");
    let nonce = parts.next().unwrap_or("");

    let valid_len = (1..=MAX_NONCE_LEN).contains(&nonce.len());
    let zeros = leading_zero_bits(&pow_hash(challenge, address, nonce));
    assert!(zeros <= 256);
    let ok = check_pow(challenge, address, nonce, difficulty);
    assert_eq!(ok, valid_len && zeros >= difficulty);
    if ok && difficulty > 0 {
        assert!(check_pow(challenge, address, nonce, difficulty - 1));
    }
    assert_eq!(check_pow(challenge, address, nonce, 0), valid_len);
    assert!(!check_pow(challenge, address, nonce, 257 + difficulty));
    assert_eq!(
        check_pow(challenge, address, nonce, zeros),
        valid_len,
        "exactly the measured difficulty passes"
    );
});
