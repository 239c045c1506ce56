//! The Sotto protocol: user keys and their password-protected backup, safety numbers,
//! the signed room state chain, room keys and their delivery, message envelopes,
//! encrypted file streams, and off-the-record sessions.
//!
//! The crate does no I/O. Functions that need randomness take a
//! [`rand_core::CryptoRng`]; [`os_rng`] gives the operating system's. Every structure
//! has one canonical byte encoding, specified in `docs/protocol.md`, and decoding
//! hostile bytes returns a typed error, never panics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backup;
pub mod body;
pub mod chain;
pub mod encoding;
pub mod envelope;
pub mod epoch;
pub mod file;
pub mod identity;
pub mod ids;
pub mod otr;
pub mod padding;
pub mod password;
pub mod pins;
pub mod replay;
pub mod roomkey;
pub mod safety;

pub use backup::{BackupError, KdfParams, KeyBackup};
pub use body::{Attachment, MessageBody};
pub use encoding::DecodeError;
pub use envelope::{EnvelopeError, EnvelopeHeader, SealError};
pub use epoch::EpochKey;
pub use file::{DecryptWriter, EncryptWriter, FileError, FileKey};
pub use identity::{BundleError, IdentityKeys, IdentityPublicKey, PublicBundle, SignatureError};
pub use ids::{EpochId, MessageId, OtrSessionId, RoomId, UserId};
pub use otr::{OtrError, OtrSession};
pub use password::{EncryptionPassword, PasswordError};
pub use pins::{Observation, Pin, PinError, PinState, PinStore};
pub use replay::{Replayed, SeenMessages};
pub use safety::SafetyNumber;

/// The version byte of the one protocol suite (`v = 1`).
pub const VERSION: u8 = 1;

/// The operating system's random number generator.
///
/// A failure of the OS generator aborts through a panic inside `UnwrapErr`: there is no
/// safe way to continue without randomness.
pub fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// A deterministic generator for tests and vectors.
#[cfg(test)]
pub(crate) fn test_rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    use rand_core::SeedableRng;
    rand_chacha::ChaCha20Rng::seed_from_u64(seed)
}
