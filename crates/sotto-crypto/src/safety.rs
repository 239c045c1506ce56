//! Safety numbers: 60 digits two users compare (aloud, or side by side) to check that
//! each holds the other's real identity key.
//!
//! Each user's half is 30 digits from an iterated SHA-512 over their identity key and
//! user id; the iteration makes finding a second key with the same digits costly. The
//! two halves are put in a fixed order, so both users see the same number.

use crate::encoding::{Writer, signing_input};
use crate::identity::IdentityPublicKey;
use crate::ids::UserId;
use sha2::{Digest, Sha512};
use std::fmt;

/// How many times the fingerprint hash is applied.
pub const ITERATIONS: usize = 5200;
/// Digits in one user's half.
pub const HALF_DIGITS: usize = 30;

const SAFETY_LABEL: &[u8] = b"sotto/v1/safety-number";

/// One user's 30-digit half of a safety number.
pub fn fingerprint_digits(user: &UserId, key: &IdentityPublicKey) -> String {
    let key = key.to_bytes();
    let mut w = Writer::new();
    w.raw(&key);
    user.encode(&mut w);
    let mut digest = Sha512::digest(signing_input(SAFETY_LABEL, &[&w.finish()]));
    for _ in 1..ITERATIONS {
        let mut h = Sha512::new();
        h.update(digest);
        h.update(key);
        digest = h.finalize();
    }
    let mut out = String::with_capacity(HALF_DIGITS);
    for chunk in digest.chunks_exact(5).take(HALF_DIGITS / 5) {
        let n = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        out.push_str(&format!("{:05}", n % 100_000));
    }
    out
}

/// The safety number of a pair of users: the same 60 digits whichever side computes it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SafetyNumber(String);

impl SafetyNumber {
    /// The number for two (user id, identity key) pairs, in either order.
    pub fn compute(a: (&UserId, &IdentityPublicKey), b: (&UserId, &IdentityPublicKey)) -> Self {
        let (x, y) = (fingerprint_digits(a.0, a.1), fingerprint_digits(b.0, b.1));
        let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
        Self(lo + &hi)
    }

    /// The 60 digits, without spaces.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The 12 groups of 5 digits, as shown to users.
    pub fn groups(&self) -> Vec<&str> {
        (0..12)
            .filter_map(|i| self.0.get(5 * i..5 * i + 5))
            .collect()
    }

    /// Whether `text` (as the other user read it out or typed it) is this number,
    /// ignoring spaces.
    pub fn matches_text(&self, text: &str) -> bool {
        let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        digits == self.0
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.groups().join(" "))
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKeys;
    use crate::test_rng;

    fn key(seed: u64) -> IdentityPublicKey {
        IdentityKeys::generate(&mut test_rng(seed)).identity_public()
    }

    #[test]
    fn both_sides_see_the_same_sixty_digits() {
        let (alice, bob) = (
            UserId::new("u.alice").unwrap(),
            UserId::new("u.bob").unwrap(),
        );
        let (ka, kb) = (key(1), key(2));
        let ab = SafetyNumber::compute((&alice, &ka), (&bob, &kb));
        let ba = SafetyNumber::compute((&bob, &kb), (&alice, &ka));
        assert_eq!(ab, ba);
        assert_eq!(ab.digits().len(), 60);
        assert!(ab.digits().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(ab.groups().len(), 12);
        assert_eq!(ab.to_string().len(), 71);
        assert!(ab.matches_text(&ab.to_string()));
        assert!(!ab.matches_text(&ab.digits()[1..]));
        let halves = [
            fingerprint_digits(&alice, &ka),
            fingerprint_digits(&bob, &kb),
        ];
        assert!(
            ab.digits() == halves.concat()
                || ab.digits() == [halves[1].as_str(), halves[0].as_str()].concat()
        );
    }

    #[test]
    fn changes_when_either_key_or_id_changes() {
        let (alice, bob) = (
            UserId::new("u.alice").unwrap(),
            UserId::new("u.bob").unwrap(),
        );
        let base = SafetyNumber::compute((&alice, &key(1)), (&bob, &key(2)));
        assert_ne!(
            base,
            SafetyNumber::compute((&alice, &key(3)), (&bob, &key(2)))
        );
        assert_ne!(
            base,
            SafetyNumber::compute((&alice, &key(1)), (&bob, &key(3)))
        );
        let carol = UserId::new("u.carol").unwrap();
        assert_ne!(
            base,
            SafetyNumber::compute((&alice, &key(1)), (&carol, &key(2)))
        );
        // One key, two ids: the halves differ, so a key cannot be passed off as another user's.
        assert_ne!(
            fingerprint_digits(&alice, &key(1)),
            fingerprint_digits(&bob, &key(1))
        );
    }

    #[test]
    fn stable() {
        // Seed 07…07; the expected half was computed independently from the spec text.
        let alice = UserId::new("u.alice").unwrap();
        let keys = IdentityKeys::from_bytes(&[[1u8].as_slice(), &[7u8; 64]].concat()).unwrap();
        let ipk = keys.identity_public();
        assert_eq!(
            ipk.to_bytes().as_slice(),
            hex::decode("ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c")
                .unwrap()
        );
        assert_eq!(
            fingerprint_digits(&alice, &ipk),
            "778351508408822664046875803084"
        );
    }
}
