//! The password-protected backup of a user's private keys, stored on the server.
//!
//! Argon2id turns the encryption password and a random salt into a key-encryption key
//! (KEK); AES-256-GCM under the KEK seals the 65-byte private keys. The associated data
//! binds the user id, the format version, the KDF parameters and the salt, so none of
//! them can be changed or the backup moved to another user without the open failing.
//! The parameters travel beside the ciphertext so they can be raised later, and a client
//! checks them against a fixed floor and ceiling before deriving anything.

use crate::VERSION;
use crate::encoding::{DecodeError, Reader, Writer, signing_input};
use crate::identity::{
    IdentityKeys, PRIVATE_KEYS_LEN, PublicBundle, SIGNATURE_LEN, SignatureError,
};
use crate::ids::UserId;
use crate::password::EncryptionPassword;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

/// Length of the Argon2id salt.
pub const SALT_LEN: usize = 16;
/// Length of the AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the key-encryption key.
pub const KEK_LEN: usize = 32;
/// Length of the sealed private keys: the 65-byte plaintext and the 16-byte tag.
pub const CIPHERTEXT_LEN: usize = PRIVATE_KEYS_LEN + 16;
/// Length of an encoded backup.
pub const BACKUP_LEN: usize = 1 + 12 + SALT_LEN + NONCE_LEN + CIPHERTEXT_LEN;

const BACKUP_LABEL: &[u8] = b"sotto/v1/backup";
const REPLACE_LABEL: &[u8] = b"sotto/v1/backup-replace";

/// Why a backup could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BackupError {
    /// The bytes are not a well-formed backup.
    #[error("malformed key backup: {0}")]
    Decode(#[from] DecodeError),
    /// The KDF parameters are weaker than the protocol's floor.
    #[error("key backup parameters are below the minimum")]
    ParamsBelowFloor,
    /// The KDF parameters exceed what a client agrees to spend.
    #[error("key backup parameters are above the maximum")]
    ParamsAboveCeiling,
    /// The KDF parameters are weaker than ones this client already accepted.
    #[error("key backup parameters are weaker than those accepted before")]
    WeakerParams,
    /// The KDF could not run (for instance, memory could not be allocated).
    #[error("the password key derivation failed")]
    Kdf,
    /// Decryption failed: the password is wrong, or the backup was altered or made for
    /// another user.
    #[error("wrong encryption password")]
    WrongPassword,
    /// The backup decrypted, but its content is not valid private keys.
    #[error("key backup holds malformed private keys")]
    InvalidPrivateKeys,
    /// The expected bundle belongs to another user than the one opening the backup.
    #[error("the expected key bundle is for another user")]
    BundleForOtherUser,
    /// The private keys are not the ones behind the user's published (pinned) bundle.
    #[error("the backed-up keys do not match the user's published keys")]
    KeysDoNotMatchBundle,
}

/// Argon2id (version 0x13, 32-byte output) parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Number of passes.
    pub t: u32,
    /// Degree of parallelism (lanes).
    pub p: u32,
}

impl KdfParams {
    /// What new backups use: 64 MiB, 3 passes, 1 lane.
    pub const DEFAULT: Self = Self {
        m_kib: 65_536,
        t: 3,
        p: 1,
    };
    /// The weakest parameters a client accepts: 19 MiB, 2 passes, 1 lane.
    pub const FLOOR: Self = Self {
        m_kib: 19_456,
        t: 2,
        p: 1,
    };
    /// The most a client agrees to spend, so a hostile server cannot make it allocate
    /// without bound: 1 GiB, 10 passes, 4 lanes.
    pub const CEILING: Self = Self {
        m_kib: 1_048_576,
        t: 10,
        p: 4,
    };

    /// Checks the parameters against [`Self::FLOOR`] and [`Self::CEILING`]; every
    /// field must lie within both.
    pub fn check(&self) -> Result<(), BackupError> {
        let (lo, hi) = (Self::FLOOR, Self::CEILING);
        if self.m_kib < lo.m_kib || self.t < lo.t || self.p < lo.p {
            return Err(BackupError::ParamsBelowFloor);
        }
        if self.m_kib > hi.m_kib || self.t > hi.t || self.p > hi.p {
            return Err(BackupError::ParamsAboveCeiling);
        }
        Ok(())
    }

    /// Whether these parameters cost at least as much per guess as `accepted`: memory
    /// and passes no lower. Lanes only split the same work, so they are not compared.
    pub fn at_least(&self, accepted: &KdfParams) -> bool {
        self.m_kib >= accepted.m_kib && self.t >= accepted.t
    }

    /// [`Self::at_least`] as a check, for a client that remembers the parameters it
    /// last accepted and must never go below them.
    pub fn ensure_at_least(&self, accepted: &KdfParams) -> Result<(), BackupError> {
        if self.at_least(accepted) {
            Ok(())
        } else {
            Err(BackupError::WeakerParams)
        }
    }

    fn encode(&self, w: &mut Writer) {
        w.u32(self.m_kib).u32(self.t).u32(self.p);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            m_kib: r.u32()?,
            t: r.u32()?,
            p: r.u32()?,
        })
    }

    /// The key-encryption key for `password` and `salt`. Checks the parameters first.
    pub fn derive_kek(
        &self,
        password: &EncryptionPassword,
        salt: &[u8; SALT_LEN],
    ) -> Result<Zeroizing<[u8; KEK_LEN]>, BackupError> {
        self.check()?;
        let params =
            Params::new(self.m_kib, self.t, self.p, Some(KEK_LEN)).map_err(|_| BackupError::Kdf)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut kek = Zeroizing::new([0u8; KEK_LEN]);
        argon
            .hash_password_into(password.kdf_input(), salt, kek.as_mut())
            .map_err(|_| BackupError::Kdf)?;
        Ok(kek)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An encrypted backup of a user's private keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBackup {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: [u8; CIPHERTEXT_LEN],
}

impl KeyBackup {
    /// Seals `keys` for `user` under `password`. Draws the salt, then the nonce, from
    /// `rng`.
    pub fn create(
        keys: &IdentityKeys,
        user: &UserId,
        password: &EncryptionPassword,
        params: KdfParams,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Self, BackupError> {
        params.check()?;
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let kek = params.derive_kek(password, &salt)?;
        let ad = associated_data(user, &params, &salt);
        // AES-GCM only fails on inputs far longer than these 65 bytes, and the result is
        // always 81 bytes; the two error mappings below cannot trigger.
        let sealed = cipher(&kek)
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: &keys.to_bytes(),
                    aad: &ad,
                },
            )
            .map_err(|_| BackupError::Kdf)?;
        let ciphertext = sealed
            .as_slice()
            .try_into()
            .map_err(|_| BackupError::InvalidPrivateKeys)?;
        Ok(Self {
            params,
            salt,
            nonce,
            ciphertext,
        })
    }

    /// A new backup of the unlocked `keys` under `new_password` (a password change), with
    /// a fresh salt and nonce. Refuses parameters weaker than this backup's.
    pub fn rewrap(
        &self,
        keys: &IdentityKeys,
        user: &UserId,
        new_password: &EncryptionPassword,
        params: KdfParams,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Self, BackupError> {
        params.ensure_at_least(&self.params)?;
        Self::create(keys, user, new_password, params, rng)
    }

    /// Opens the backup with `password` and checks the keys against `expected`, the
    /// user's published bundle as this client pinned it.
    ///
    /// Checks, in order: the parameters (before any derivation), that `expected` is
    /// `user`'s, the decryption, the private keys' encoding, and that they match
    /// `expected`.
    pub fn open(
        &self,
        password: &EncryptionPassword,
        user: &UserId,
        expected: &PublicBundle,
    ) -> Result<IdentityKeys, BackupError> {
        self.params.check()?;
        if expected.user() != user {
            return Err(BackupError::BundleForOtherUser);
        }
        let kek = self.params.derive_kek(password, &self.salt)?;
        let ad = associated_data(user, &self.params, &self.salt);
        let plain = Zeroizing::new(
            cipher(&kek)
                .decrypt(
                    (&self.nonce).into(),
                    Payload {
                        msg: &self.ciphertext,
                        aad: &ad,
                    },
                )
                .map_err(|_| BackupError::WrongPassword)?,
        );
        let keys = IdentityKeys::from_bytes(&plain).map_err(|_| BackupError::InvalidPrivateKeys)?;
        if !keys.matches(expected) {
            return Err(BackupError::KeysDoNotMatchBundle);
        }
        Ok(keys)
    }

    /// The KDF parameters this backup was made with.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// The Argon2id salt.
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// The AES-GCM nonce.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// The sealed private keys, tag last.
    pub fn ciphertext(&self) -> &[u8; CIPHERTEXT_LEN] {
        &self.ciphertext
    }

    /// The associated data this backup is sealed with, for `user`.
    pub fn associated_data(&self, user: &UserId) -> Vec<u8> {
        associated_data(user, &self.params, &self.salt)
    }

    /// Canonical encoding: version, parameters, salt, nonce, ciphertext (122 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION);
        self.params.encode(&mut w);
        w.raw(&self.salt).raw(&self.nonce).raw(&self.ciphertext);
        w.finish()
    }

    /// What the identity key signs to let this backup replace `current` (the stored
    /// backup's bytes exactly as the server serves them) for `user` (protocol §3.5):
    /// `0x01 ‖ bytes8(user_id) ‖ SHA-256(current) ‖ this backup's encoding`, after the
    /// label. Binding the replaced backup makes the replacement a compare-and-set, so a
    /// signature cannot be replayed once the backup has changed.
    pub fn replacement_input(&self, user: &UserId, current: &[u8]) -> Vec<u8> {
        signing_input(REPLACE_LABEL, &[&replacement_body(self, user, current)])
    }

    /// The identity key's signature letting this backup replace `current` for `user`.
    pub fn sign_replacement(
        &self,
        keys: &IdentityKeys,
        user: &UserId,
        current: &[u8],
    ) -> [u8; SIGNATURE_LEN] {
        keys.sign(REPLACE_LABEL, &[&replacement_body(self, user, current)])
    }

    /// Checks `signature` over this backup replacing `current`, with the identity key of
    /// `bundle` (the published bundle, which names the user).
    pub fn verify_replacement(
        &self,
        bundle: &PublicBundle,
        current: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> Result<(), SignatureError> {
        let body = replacement_body(self, bundle.user(), current);
        bundle.identity().verify(REPLACE_LABEL, &[&body], signature)
    }

    /// Parses a backup. The parameters are checked by [`Self::open`], not here, so a
    /// client can still read and report them.
    pub fn decode(bytes: &[u8]) -> Result<Self, BackupError> {
        let mut r = Reader::new(bytes);
        r.version(VERSION)?;
        let params = KdfParams::decode(&mut r)?;
        let salt = r.array()?;
        let nonce = r.array()?;
        let ciphertext = r.array()?;
        r.finish()?;
        Ok(Self {
            params,
            salt,
            nonce,
            ciphertext,
        })
    }
}

fn associated_data(user: &UserId, params: &KdfParams, salt: &[u8; SALT_LEN]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(VERSION);
    user.encode(&mut w);
    params.encode(&mut w);
    w.raw(salt);
    signing_input(BACKUP_LABEL, &[&w.finish()])
}

fn replacement_body(new: &KeyBackup, user: &UserId, current: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(VERSION);
    user.encode(&mut w);
    w.raw(&Sha256::digest(current)).raw(&new.encode());
    w.finish()
}

fn cipher(kek: &[u8; KEK_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(<&Key<Aes256Gcm>>::from(kek))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng;
    use proptest::prelude::*;

    struct Fixture {
        keys: IdentityKeys,
        user: UserId,
        bundle: PublicBundle,
        password: EncryptionPassword,
        backup: KeyBackup,
    }

    fn fixture(seed: u64) -> Fixture {
        let mut rng = test_rng(seed);
        let keys = IdentityKeys::generate(&mut rng);
        let user = UserId::new("u.alice").unwrap();
        let bundle = keys.bundle(&user);
        let password = EncryptionPassword::generate(&mut rng);
        let backup =
            KeyBackup::create(&keys, &user, &password, KdfParams::FLOOR, &mut rng).unwrap();
        Fixture {
            keys,
            user,
            bundle,
            password,
            backup,
        }
    }

    fn pw(s: &str) -> EncryptionPassword {
        EncryptionPassword::from_user(s).unwrap()
    }

    #[test]
    fn opens_with_the_password_and_gives_the_same_keys() {
        let f = fixture(1);
        let bytes = f.backup.encode();
        assert_eq!(bytes.len(), BACKUP_LEN);
        let keys = KeyBackup::decode(&bytes)
            .unwrap()
            .open(&f.password, &f.user, &f.bundle)
            .unwrap();
        assert_eq!(keys.to_bytes(), f.keys.to_bytes());
    }

    #[test]
    fn default_params_work() {
        let mut rng = test_rng(2);
        let keys = IdentityKeys::generate(&mut rng);
        let user = UserId::new("u.bob").unwrap();
        let password = pw("correct horse battery staple");
        let backup =
            KeyBackup::create(&keys, &user, &password, KdfParams::default(), &mut rng).unwrap();
        assert_eq!(backup.params(), KdfParams::DEFAULT);
        let back = KeyBackup::decode(&backup.encode()).unwrap();
        let opened = back.open(&password, &user, &keys.bundle(&user)).unwrap();
        assert!(opened.matches(&keys.bundle(&user)));
    }

    #[test]
    fn wrong_password_is_a_clear_error() {
        let f = fixture(3);
        assert_eq!(
            f.backup
                .open(&pw("not it"), &f.user, &f.bundle)
                .unwrap_err(),
            BackupError::WrongPassword
        );
        // One word changed in the generated password.
        let mut words: Vec<&str> = f.password.as_str().split(' ').collect();
        words[5] = if words[5] == "abandon" {
            "ability"
        } else {
            "abandon"
        };
        let near = pw(&words.join(" "));
        assert_eq!(
            f.backup.open(&near, &f.user, &f.bundle).unwrap_err(),
            BackupError::WrongPassword
        );
    }

    #[test]
    fn a_backup_cannot_be_moved_to_another_user() {
        let f = fixture(4);
        // Even a bundle the same keys signed for "u.bobby" does not help: the user id is
        // bound in the associated data.
        let other = UserId::new("u.bobby").unwrap();
        let other_bundle = f.keys.bundle(&other);
        assert_eq!(
            f.backup
                .open(&f.password, &other, &other_bundle)
                .unwrap_err(),
            BackupError::WrongPassword
        );
        assert_eq!(
            f.backup.open(&f.password, &other, &f.bundle).unwrap_err(),
            BackupError::BundleForOtherUser
        );
    }

    #[test]
    fn a_substituted_backup_is_refused() {
        // The server hands Alice a backup of other keys, sealed under her password.
        let f = fixture(5);
        let mut rng = test_rng(50);
        let imposter = IdentityKeys::generate(&mut rng);
        let swapped =
            KeyBackup::create(&imposter, &f.user, &f.password, KdfParams::FLOOR, &mut rng).unwrap();
        assert_eq!(
            swapped.open(&f.password, &f.user, &f.bundle).unwrap_err(),
            BackupError::KeysDoNotMatchBundle
        );
    }

    #[test]
    fn params_outside_floor_and_ceiling_are_refused_before_deriving() {
        let f = fixture(6);
        let cases = [
            (
                KdfParams {
                    m_kib: 19_455,
                    ..KdfParams::FLOOR
                },
                BackupError::ParamsBelowFloor,
            ),
            (
                KdfParams {
                    t: 1,
                    ..KdfParams::FLOOR
                },
                BackupError::ParamsBelowFloor,
            ),
            (
                KdfParams {
                    p: 0,
                    ..KdfParams::FLOOR
                },
                BackupError::ParamsBelowFloor,
            ),
            (
                KdfParams {
                    m_kib: 1_048_577,
                    ..KdfParams::FLOOR
                },
                BackupError::ParamsAboveCeiling,
            ),
            (
                KdfParams {
                    t: 11,
                    ..KdfParams::FLOOR
                },
                BackupError::ParamsAboveCeiling,
            ),
            (
                KdfParams {
                    p: 5,
                    ..KdfParams::FLOOR
                },
                BackupError::ParamsAboveCeiling,
            ),
            // A hostile server asking for 4 TiB: refused at once, nothing allocated.
            (
                KdfParams {
                    m_kib: u32::MAX,
                    t: u32::MAX,
                    p: u32::MAX,
                },
                BackupError::ParamsAboveCeiling,
            ),
        ];
        for (params, want) in cases {
            let mut bytes = f.backup.encode();
            let mut w = Writer::new();
            params.encode(&mut w);
            bytes[1..13].copy_from_slice(&w.finish());
            let bad = KeyBackup::decode(&bytes).unwrap();
            assert_eq!(bad.params(), params);
            assert_eq!(
                bad.open(&f.password, &f.user, &f.bundle).unwrap_err(),
                want,
                "{params:?}"
            );
            let made = KeyBackup::create(&f.keys, &f.user, &f.password, params, &mut test_rng(0));
            assert_eq!(made.unwrap_err(), want);
        }
        assert!(KdfParams::CEILING.check().is_ok());
        assert!(KdfParams::DEFAULT.check().is_ok());
    }

    #[test]
    fn every_flipped_byte_is_refused_with_the_right_error() {
        let f = fixture(7);
        let good = f.backup.encode();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            let got = KeyBackup::decode(&bad).and_then(|b| b.open(&f.password, &f.user, &f.bundle));
            // Parameters: m = 0x00004c00, t = 0x00000002, p = 0x00000001. Flipping the
            // low bit of a high byte leaves the allowed range; a flip that stays inside it
            // is caught by the associated data, like every other byte.
            let want = match i {
                0 => BackupError::Decode(DecodeError::UnsupportedVersion(0)),
                1 | 5..=7 | 9..=11 => BackupError::ParamsAboveCeiling,
                12 => BackupError::ParamsBelowFloor,
                _ => BackupError::WrongPassword,
            };
            assert_eq!(got.unwrap_err(), want, "byte {i}");
        }
    }

    #[test]
    fn length_errors_are_decode_errors() {
        let good = fixture(8).backup.encode();
        assert_eq!(
            KeyBackup::decode(&good[..good.len() - 1]).unwrap_err(),
            BackupError::Decode(DecodeError::Truncated)
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            KeyBackup::decode(&long).unwrap_err(),
            BackupError::Decode(DecodeError::TrailingBytes)
        );
        assert_eq!(
            KeyBackup::decode(&[]).unwrap_err(),
            BackupError::Decode(DecodeError::Truncated)
        );
    }

    #[test]
    fn rewrap_changes_the_password_and_refuses_weaker_params() {
        let f = fixture(9);
        let mut rng = test_rng(90);
        let new = pw("ein neues Passwort");
        let stronger = KdfParams {
            t: 3,
            ..KdfParams::FLOOR
        };
        let re = f
            .backup
            .rewrap(&f.keys, &f.user, &new, stronger, &mut rng)
            .unwrap();
        assert_ne!(re.salt(), f.backup.salt());
        assert_ne!(re.nonce(), f.backup.nonce());
        assert_eq!(
            re.open(&f.password, &f.user, &f.bundle).unwrap_err(),
            BackupError::WrongPassword
        );
        assert!(
            re.open(&new, &f.user, &f.bundle)
                .unwrap()
                .matches(&f.bundle)
        );
        assert_eq!(
            re.rewrap(&f.keys, &f.user, &new, KdfParams::FLOOR, &mut rng)
                .unwrap_err(),
            BackupError::WeakerParams
        );
    }

    #[test]
    fn at_least_compares_memory_and_passes() {
        let d = KdfParams::DEFAULT;
        assert!(d.at_least(&KdfParams::FLOOR));
        assert!(!KdfParams::FLOOR.at_least(&d));
        assert!(!KdfParams { t: 2, ..d }.at_least(&d));
        assert!(!KdfParams { m_kib: 65_535, ..d }.at_least(&d));
        assert!(KdfParams { p: 4, ..d }.at_least(&d));
        assert_eq!(
            KdfParams::FLOOR.ensure_at_least(&d),
            Err(BackupError::WeakerParams)
        );
        assert_eq!(d.ensure_at_least(&d), Ok(()));
    }

    #[test]
    fn passwords_in_any_script_and_form_unlock_alike() {
        // (as stored, as typed on another device)
        let cases = [
            (
                "Cr\u{e8}me br\u{fb}l\u{e9}e \u{e0} l'\u{e9}rable",
                "Cre\u{300}me bru\u{302}le\u{301}e a\u{300} l'e\u{301}rable",
            ),
            (
                "\u{1e9b}\u{323} \u{c5}ngstr\u{f6}m",
                "\u{17f}\u{323}\u{307} A\u{30a}ngstro\u{308}m",
            ),
            (
                "\u{439}\u{43e}\u{436}\u{438}\u{43a} \u{451}\u{43b}\u{43a}\u{430}",
                "\u{438}\u{306}\u{43e}\u{436}\u{438}\u{43a} \u{435}\u{308}\u{43b}\u{43a}\u{430}",
            ),
            (
                "\u{3ac}\u{3bb}\u{3c6}\u{3b1} \u{3c9}\u{3bc}\u{3ad}\u{3b3}\u{3b1}",
                "\u{3b1}\u{301}\u{3bb}\u{3c6}\u{3b1} \u{3c9}\u{3bc}\u{3b5}\u{301}\u{3b3}\u{3b1}",
            ),
            (
                "\u{643}\u{644}\u{645}\u{629} \u{633}\u{631} \u{622}\u{645}\u{646}\u{629}",
                "\u{643}\u{644}\u{645}\u{629} \u{633}\u{631} \u{627}\u{653}\u{645}\u{646}\u{629}",
            ),
            (
                "\u{5bc6}\u{7801} \u{30d1}\u{30b9}\u{30ef}\u{30fc}\u{30c9} \u{ac00}",
                "\u{5bc6}\u{7801} \u{30cf}\u{309a}\u{30b9}\u{30ef}\u{30fc}\u{30c8}\u{3099} \u{1100}\u{1161}",
            ),
            (
                "\u{1f511}\u{1f3f3}\u{fe0f}\u{200d}\u{1f308} caf\u{e9}",
                "\u{1f511}\u{1f3f3}\u{fe0f}\u{200d}\u{1f308} cafe\u{301}",
            ),
        ];
        let mut rng = test_rng(11);
        let keys = IdentityKeys::generate(&mut rng);
        let user = UserId::new("u.carol").unwrap();
        let bundle = keys.bundle(&user);
        for (stored, typed) in cases {
            assert_ne!(stored.as_bytes(), typed.as_bytes());
            let backup =
                KeyBackup::create(&keys, &user, &pw(stored), KdfParams::FLOOR, &mut rng).unwrap();
            let opened = backup.open(&pw(typed), &user, &bundle).unwrap();
            assert!(opened.matches(&bundle), "{stored}");
            // And the other way round.
            let backup =
                KeyBackup::create(&keys, &user, &pw(typed), KdfParams::FLOOR, &mut rng).unwrap();
            assert!(backup.open(&pw(stored), &user, &bundle).is_ok(), "{typed}");
        }
    }

    #[test]
    fn a_replacement_is_signed_over_the_backup_it_replaces() {
        let f = fixture(13);
        let mut rng = test_rng(130);
        let next = f
            .backup
            .rewrap(&f.keys, &f.user, &pw("new"), KdfParams::FLOOR, &mut rng)
            .unwrap();
        let current = f.backup.encode();
        let sig = next.sign_replacement(&f.keys, &f.user, &current);
        assert_eq!(next.verify_replacement(&f.bundle, &current, &sig), Ok(()));

        // The signed bytes, as specified.
        let mut want = vec![23u8];
        want.extend_from_slice(b"sotto/v1/backup-replace");
        want.push(1);
        want.push(7);
        want.extend_from_slice(b"u.alice");
        want.extend_from_slice(&Sha256::digest(&current));
        want.extend_from_slice(&next.encode());
        assert_eq!(next.replacement_input(&f.user, &current), want);

        // Once `next` is stored, the same signature no longer replaces anything: it was
        // made over the backup that is gone.
        let stored = next.encode();
        assert_eq!(
            next.verify_replacement(&f.bundle, &stored, &sig),
            Err(SignatureError)
        );
        // Another key, another backup, another user, or a changed bit: refused.
        let other = IdentityKeys::generate(&mut rng);
        let forged = next.sign_replacement(&other, &f.user, &current);
        assert!(
            next.verify_replacement(&f.bundle, &current, &forged)
                .is_err()
        );
        assert!(
            f.backup
                .verify_replacement(&f.bundle, &current, &sig)
                .is_err()
        );
        let bobby = UserId::new("u.bobby").unwrap();
        let for_bobby = next.sign_replacement(&f.keys, &bobby, &current);
        assert!(
            next.verify_replacement(&f.bundle, &current, &for_bobby)
                .is_err()
        );
        let mut bent = sig;
        bent[10] ^= 1;
        assert!(next.verify_replacement(&f.bundle, &current, &bent).is_err());
    }

    #[test]
    fn associated_data_is_as_specified() {
        let f = fixture(12);
        let mut want = vec![15u8];
        want.extend_from_slice(b"sotto/v1/backup");
        want.push(1);
        want.push(7);
        want.extend_from_slice(b"u.alice");
        want.extend_from_slice(&[0, 0, 0x4c, 0, 0, 0, 0, 2, 0, 0, 0, 1]);
        want.extend_from_slice(f.backup.salt());
        assert_eq!(f.backup.associated_data(&f.user), want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn encoding_round_trips(m_kib: u32, t: u32, p: u32, salt: [u8; 16], nonce: [u8; 12],
                                ct in proptest::collection::vec(any::<u8>(), CIPHERTEXT_LEN)) {
            let backup = KeyBackup {
                params: KdfParams { m_kib, t, p },
                salt,
                nonce,
                ciphertext: ct.as_slice().try_into().unwrap(),
            };
            prop_assert_eq!(KeyBackup::decode(&backup.encode()).unwrap(), backup);
        }

        #[test]
        fn hostile_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = KeyBackup::decode(&input);
        }
    }
}
