//! Faucet challenges: minted without a write, checked without a read.
//!
//! A challenge is `hex(nonce ‖ expires_at ‖ tag)`: 16 random bytes (128
//! bits), the expiry as 8 big-endian bytes, and the first 16 bytes of
//! HMAC-SHA256(key, nonce ‖ expires_at). The key is derived from the
//! daemon's master key, so challenges survive a restart and nobody else can
//! make one. Handing out challenges therefore costs no ledger write (a
//! flood of `GET /api/faucet/challenge` cannot grow a table or load the
//! writer); only a *spent* challenge is stored, until it expires, which is
//! all that single use needs.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const NONCE_LEN: usize = 16;
const EXPIRY_LEN: usize = 8;
const TAG_LEN: usize = 16;
/// Length of a challenge in hex characters.
pub const CHALLENGE_HEX_LEN: usize = 2 * (NONCE_LEN + EXPIRY_LEN + TAG_LEN);

/// Why a presented challenge is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    /// Not one of ours (wrong shape or wrong tag): forged or garbled.
    Unknown,
    /// Ours, but past its expiry.
    Expired,
}

/// Mints and checks challenges with one key.
pub struct ChallengeKey([u8; 32]);

impl ChallengeKey {
    /// Derives the challenge key from the master key, with a label so the
    /// same master key never produces a personal API key and a challenge
    /// tag from the same input.
    pub fn derive(master_key: &[u8]) -> ChallengeKey {
        let mut mac = HmacSha256::new_from_slice(master_key).expect("HMAC takes any key length");
        mac.update(b"pooldesk faucet challenge key v1");
        ChallengeKey(mac.finalize().into_bytes().into())
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// A fresh challenge that expires at `expires_at` (Unix seconds).
    pub fn mint(&self, expires_at: i64) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        self.mint_with(nonce, expires_at)
    }

    fn mint_with(&self, nonce: [u8; NONCE_LEN], expires_at: i64) -> String {
        let mut bytes = Vec::with_capacity(NONCE_LEN + EXPIRY_LEN + TAG_LEN);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&expires_at.to_be_bytes());
        let tag = self.tag(&bytes);
        bytes.extend_from_slice(&tag);
        hex::encode(bytes)
    }

    /// Checks a presented challenge; returns its expiry when it is ours and
    /// still valid at `now_s`. Expired at `now_s >= expires_at`.
    pub fn check(&self, challenge: &str, now_s: i64) -> Result<i64, ChallengeError> {
        if challenge.len() != CHALLENGE_HEX_LEN {
            return Err(ChallengeError::Unknown);
        }
        // Lower-case hex only: one challenge has exactly one spelling, so
        // the spent-challenge table cannot be dodged by changing case.
        if !challenge
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ChallengeError::Unknown);
        }
        let bytes = hex::decode(challenge).map_err(|_| ChallengeError::Unknown)?;
        let (body, tag) = bytes.split_at(NONCE_LEN + EXPIRY_LEN);
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(body);
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(tag)
            .map_err(|_| ChallengeError::Unknown)?;
        let mut expiry = [0u8; EXPIRY_LEN];
        expiry.copy_from_slice(&body[NONCE_LEN..]);
        let expires_at = i64::from_be_bytes(expiry);
        if now_s >= expires_at {
            return Err(ChallengeError::Expired);
        }
        Ok(expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_challenge_checks_until_it_expires() {
        let key = ChallengeKey::derive(b"master");
        let challenge = key.mint(1_000);
        assert_eq!(challenge.len(), CHALLENGE_HEX_LEN);
        assert_eq!(key.check(&challenge, 999), Ok(1_000));
        assert_eq!(key.check(&challenge, 1_000), Err(ChallengeError::Expired));
    }

    #[test]
    fn challenges_are_random() {
        let key = ChallengeKey::derive(b"master");
        assert_ne!(key.mint(1_000), key.mint(1_000));
    }

    #[test]
    fn forged_or_altered_challenges_are_unknown() {
        let key = ChallengeKey::derive(b"master");
        let other = ChallengeKey::derive(b"another master");
        let challenge = key.mint(1_000);
        assert_eq!(other.check(&challenge, 0), Err(ChallengeError::Unknown));
        // Moving the expiry forward breaks the tag.
        let forged = key.mint_with([7; 16], 1_000);
        let mut bytes = hex::decode(&forged).unwrap();
        bytes[NONCE_LEN + EXPIRY_LEN - 1] ^= 0x10;
        assert_eq!(
            key.check(&hex::encode(&bytes), 0),
            Err(ChallengeError::Unknown)
        );
        assert_eq!(key.check("00", 0), Err(ChallengeError::Unknown));
        assert_eq!(
            key.check(&"0".repeat(CHALLENGE_HEX_LEN), 0),
            Err(ChallengeError::Unknown)
        );
        assert_eq!(
            key.check(&challenge.to_uppercase(), 0),
            Err(ChallengeError::Unknown)
        );
    }
}
