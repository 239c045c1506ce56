//! A user's keys: an Ed25519 identity key that signs, an X25519 key for key agreement,
//! and the signed public bundle that the server publishes.

use crate::VERSION;
use crate::encoding::{DecodeError, Reader, Writer, signing_input};
use crate::ids::UserId;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::fmt;
use thiserror::Error;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of the encoded private keys (version, Ed25519 seed, X25519 secret).
pub const PRIVATE_KEYS_LEN: usize = 65;

const BUNDLE_LABEL: &[u8] = b"sotto/v1/bundle";

/// A signature did not verify, or the key that should check it is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("signature is not valid")]
pub struct SignatureError;

/// Why a public bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BundleError {
    /// The bytes are not a well-formed bundle.
    #[error("malformed key bundle: {0}")]
    Decode(#[from] DecodeError),
    /// The identity key is not a valid, non-weak Ed25519 point.
    #[error("key bundle holds an invalid identity key")]
    InvalidIdentityKey,
    /// The bundle's self-signature does not verify.
    #[error("key bundle signature is not valid")]
    BadSignature,
}

/// An Ed25519 identity public key, the one a safety number is computed from.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityPublicKey(VerifyingKey);

impl IdentityPublicKey {
    /// Parses 32 bytes, refusing non-canonical and small-order (weak) points.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, SignatureError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| SignatureError)?;
        // Decompression reduces y modulo p and accepts a "negative zero" x, so a point
        // has several encodings; only the one that re-encodes to the same bytes is
        // canonical.
        if key.is_weak() || key.to_edwards().compress().to_bytes() != *bytes {
            return Err(SignatureError);
        }
        Ok(Self(key))
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Verifies `signature` over `signing_input(label, parts)` with strict RFC 8032
    /// rules (canonical encodings, no small-order components).
    pub fn verify(
        &self,
        label: &[u8],
        parts: &[&[u8]],
        signature: &[u8; SIGNATURE_LEN],
    ) -> Result<(), SignatureError> {
        let sig = Signature::from_bytes(signature);
        self.0
            .verify_strict(&signing_input(label, parts), &sig)
            .map_err(|_| SignatureError)
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_bytes();
        write!(
            f,
            "IdentityPublicKey({:02x}{:02x}{:02x}{:02x}…)",
            b[0], b[1], b[2], b[3]
        )
    }
}

/// A user's private keys. Zeroized on drop; `Debug` shows only the public half.
pub struct IdentityKeys {
    signing: SigningKey,
    agreement: StaticSecret,
}

impl IdentityKeys {
    /// Fresh keys from `rng`.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        let signing = SigningKey::from_bytes(&seed);
        let agreement = StaticSecret::random_from_rng(rng);
        Self { signing, agreement }
    }

    /// Encodes the private keys: version byte, Ed25519 seed, X25519 secret.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(PRIVATE_KEYS_LEN));
        out.push(VERSION);
        out.extend_from_slice(self.signing.as_bytes());
        out.extend_from_slice(self.agreement.as_bytes());
        out
    }

    /// Decodes keys encoded by [`IdentityKeys::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version(VERSION)?;
        let seed = Zeroizing::new(r.array::<32>()?);
        let secret = Zeroizing::new(r.array::<32>()?);
        r.finish()?;
        Ok(Self {
            signing: SigningKey::from_bytes(&seed),
            agreement: StaticSecret::from(*secret),
        })
    }

    /// The identity public key.
    pub fn identity_public(&self) -> IdentityPublicKey {
        IdentityPublicKey(self.signing.verifying_key())
    }

    /// The X25519 public key.
    pub fn agreement_public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.agreement).to_bytes()
    }

    pub(crate) fn agreement_secret(&self) -> &StaticSecret {
        &self.agreement
    }

    /// Signs `signing_input(label, parts)`.
    pub fn sign(&self, label: &[u8], parts: &[&[u8]]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(&signing_input(label, parts)).to_bytes()
    }

    /// The signed public bundle for `user`.
    pub fn bundle(&self, user: &UserId) -> PublicBundle {
        let identity = self.identity_public();
        let agreement = self.agreement_public();
        let body = bundle_body(user, &identity, &agreement);
        let signature = self.sign(BUNDLE_LABEL, &[&body]);
        PublicBundle {
            user: user.clone(),
            identity,
            agreement,
            signature,
        }
    }

    /// Whether these private keys are the ones behind `bundle`.
    pub fn matches(&self, bundle: &PublicBundle) -> bool {
        self.identity_public() == bundle.identity && self.agreement_public() == bundle.agreement
    }
}

impl fmt::Debug for IdentityKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeys")
            .field("identity", &self.identity_public())
            .finish_non_exhaustive()
    }
}

fn bundle_body(user: &UserId, identity: &IdentityPublicKey, agreement: &[u8; 32]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(VERSION);
    user.encode(&mut w);
    w.raw(&identity.to_bytes()).raw(agreement);
    w.finish()
}

/// A user's public keys, self-signed by the identity key and bound to the user id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicBundle {
    user: UserId,
    identity: IdentityPublicKey,
    agreement: [u8; 32],
    signature: [u8; SIGNATURE_LEN],
}

impl PublicBundle {
    /// The user the bundle belongs to.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The identity (signing) key.
    pub fn identity(&self) -> &IdentityPublicKey {
        &self.identity
    }

    /// The X25519 key that room keys are sealed to.
    pub fn agreement(&self) -> &[u8; 32] {
        &self.agreement
    }

    /// Canonical encoding: body, then the 64-byte signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = bundle_body(&self.user, &self.identity, &self.agreement);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses a bundle and checks its self-signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, BundleError> {
        let mut r = Reader::new(bytes);
        r.version(VERSION)?;
        let user = UserId::decode(&mut r)?;
        let identity = r.array::<32>()?;
        let agreement = r.array::<32>()?;
        let signature = r.array::<SIGNATURE_LEN>()?;
        r.finish()?;
        // The encoding first, then the key (§2), so every implementation reports the
        // same error for the same bytes.
        let identity = IdentityPublicKey::from_bytes(&identity)
            .map_err(|_| BundleError::InvalidIdentityKey)?;
        let body = bundle_body(&user, &identity, &agreement);
        identity
            .verify(BUNDLE_LABEL, &[&body], &signature)
            .map_err(|_| BundleError::BadSignature)?;
        Ok(Self {
            user,
            identity,
            agreement,
            signature,
        })
    }
}

impl fmt::Debug for PublicBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicBundle")
            .field("user", &self.user)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng;

    fn alice() -> (IdentityKeys, UserId) {
        (
            IdentityKeys::generate(&mut test_rng(1)),
            UserId::new("alice").unwrap(),
        )
    }

    #[test]
    fn bundle_round_trips_and_matches_its_keys() {
        let (keys, user) = alice();
        let bundle = keys.bundle(&user);
        let decoded = PublicBundle::decode(&bundle.encode()).unwrap();
        assert_eq!(decoded, bundle);
        assert!(keys.matches(&decoded));
        assert!(!IdentityKeys::generate(&mut test_rng(2)).matches(&decoded));
    }

    #[test]
    fn private_keys_round_trip() {
        let (keys, _) = alice();
        let back = IdentityKeys::from_bytes(&keys.to_bytes()).unwrap();
        assert_eq!(back.identity_public(), keys.identity_public());
        assert_eq!(back.agreement_public(), keys.agreement_public());
        assert!(IdentityKeys::from_bytes(&keys.to_bytes()[..64]).is_err());
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let (keys, user) = alice();
        let good = keys.bundle(&user).encode();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(PublicBundle::decode(&bad).is_err(), "byte {i} accepted");
        }
        // The signature region specifically reports a bad signature.
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        assert_eq!(PublicBundle::decode(&bad), Err(BundleError::BadSignature));
    }

    #[test]
    fn a_bundle_cannot_be_reattributed_to_another_user() {
        let (keys, _) = alice();
        let mallory = UserId::new("mallory").unwrap();
        let mut bytes = keys.bundle(&UserId::new("alice").unwrap()).encode();
        // Same length id: splice "mallo" would change length; use an id of equal length.
        let other = UserId::new("bobby").unwrap();
        bytes[2..7].copy_from_slice(other.as_str().as_bytes());
        assert_eq!(PublicBundle::decode(&bytes), Err(BundleError::BadSignature));
        assert_ne!(keys.bundle(&mallory).encode(), keys.bundle(&other).encode());
    }

    #[test]
    fn the_encoding_is_checked_before_the_identity_key() {
        let (keys, user) = alice();
        let mut bytes = keys.bundle(&user).encode();
        // A small-order identity key (y = 0) in an otherwise well-formed bundle.
        let at = 2 + user.as_str().len();
        bytes[at..at + 32].copy_from_slice(&[0; 32]);
        assert_eq!(
            PublicBundle::decode(&bytes),
            Err(BundleError::InvalidIdentityKey)
        );
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            PublicBundle::decode(&long),
            Err(BundleError::Decode(DecodeError::TrailingBytes))
        );
        assert_eq!(
            PublicBundle::decode(&bytes[..bytes.len() - 1]),
            Err(BundleError::Decode(DecodeError::Truncated))
        );
    }

    #[test]
    fn non_canonical_identity_keys_are_refused() {
        // y = 3 + p: a valid point of large order, encoded with y not reduced mod p.
        let mut non_canonical = [0xff; 32];
        non_canonical[0] = 0xf0;
        non_canonical[31] = 0x7f;
        assert!(IdentityPublicKey::from_bytes(&non_canonical).is_err());
        // The same point, canonically encoded (y = 3), is a valid key.
        let mut canonical = [0; 32];
        canonical[0] = 3;
        assert!(IdentityPublicKey::from_bytes(&canonical).is_ok());
    }

    #[test]
    fn debug_prints_no_secret() {
        let (keys, _) = alice();
        let shown = format!("{keys:?}");
        let secret = keys.to_bytes();
        let hex: String = secret[1..9].iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&hex));
    }
}
