//! Message envelopes: a message body, padded and sealed under the room's epoch key,
//! behind a cleartext header the server routes by, signed by the sender.
//!
//! ```text
//! header    = 0x01 ‖ bytes8(room_id) ‖ fixed(16) epoch_id ‖ bytes8(sender_id) ‖ fixed(16) message_id
//! envelope  = header ‖ fixed(12) nonce ‖ ciphertext ‖ fixed(64) signature
//! ciphertext = AES-256-GCM(epoch_key, nonce, aad = header, pad(body))
//! signature = Ed25519(sender isk, bytes8("sotto/v1/message") ‖ header ‖ nonce ‖ ciphertext)
//! ```

use crate::VERSION;
use crate::body::MessageBody;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::epoch::EpochKey;
use crate::identity::{IdentityKeys, IdentityPublicKey, SIGNATURE_LEN};
use crate::ids::{EpochId, MessageId, RoomId, UserId};
use crate::padding::{self, MAX_DATA_LEN};
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use std::collections::BTreeSet;
use thiserror::Error;
use zeroize::Zeroizing;

/// The label the sender's signature is made under.
pub const MESSAGE_LABEL: &[u8] = b"sotto/v1/message";
/// Length of the AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// How many messages may be sealed under one epoch key. Nonces are random, so this
/// keeps the chance of any nonce repeating below 2^-32 (NIST SP 800-38D, §8.3).
pub const MAX_MESSAGES_PER_EPOCH: u64 = 1 << 32;

/// The cleartext header: what the server needs to route and check an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// The room the message belongs to.
    pub room: RoomId,
    /// The epoch whose key sealed it.
    pub epoch: EpochId,
    /// The sending user.
    pub sender: UserId,
    /// The message's random id.
    pub message: MessageId,
}

impl EnvelopeHeader {
    /// A header for a new message with a fresh random id.
    pub fn new(
        room: RoomId,
        epoch: EpochId,
        sender: UserId,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Self {
        Self {
            room,
            epoch,
            sender,
            message: MessageId::random(rng),
        }
    }

    /// The header's canonical bytes (also the AEAD associated data).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION);
        self.room.encode(&mut w);
        w.raw(self.epoch.as_bytes());
        self.sender.encode(&mut w);
        w.raw(self.message.as_bytes());
        w.finish()
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(VERSION)?;
        let room = RoomId::decode(r)?;
        let epoch = EpochId(r.array()?);
        let sender = UserId::decode(r)?;
        let message = MessageId(r.array()?);
        Ok(Self {
            room,
            epoch,
            sender,
            message,
        })
    }

    /// Checks the structure of a whole envelope without any key and returns its
    /// header, so a server can check the sender and route by room.
    pub fn peek(envelope: &[u8]) -> Result<Self, DecodeError> {
        Ok(Parsed::decode(envelope)?.header)
    }
}

/// Why a message could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    /// The header names another epoch than the key's.
    #[error("header epoch is not the key's epoch")]
    WrongEpoch,
    /// The body's room or sender differs from the header's.
    #[error("body room or sender differs from the header")]
    InnerMismatch,
    /// A body field is outside its limits.
    #[error("invalid message body: {0}")]
    InvalidBody(DecodeError),
    /// The encoded body is longer than the padding allows.
    #[error("message body too large")]
    TooLarge,
}

/// Why an envelope was refused, in the order the checks run. Nothing of it goes back
/// to the server: the client shows the kind to the user and drops the message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvelopeError {
    /// The bytes are not a well-formed envelope.
    #[error("malformed envelope: {0}")]
    Decode(DecodeError),
    /// The envelope names another room than the one it was delivered in.
    #[error("message belongs to another room")]
    WrongRoom,
    /// The envelope names another epoch than the key given.
    #[error("message is for another key epoch")]
    WrongEpoch,
    /// The sender is not an authorized member for this epoch.
    #[error("sender is not an authorized member")]
    SenderNotAuthorized,
    /// The sender's signature does not verify.
    #[error("message signature is not valid")]
    BadSignature,
    /// The ciphertext does not open under the epoch key.
    #[error("message does not decrypt")]
    DecryptFailed,
    /// The decrypted padding is malformed.
    #[error("message padding is malformed")]
    BadPadding,
    /// The decrypted body is malformed.
    #[error("malformed message body: {0}")]
    BadBody(DecodeError),
    /// The body's room or sender differs from the header's.
    #[error("message body does not match its header")]
    InnerMismatch,
}

/// An envelope split into its parts, structure checked.
struct Parsed<'a> {
    header: EnvelopeHeader,
    header_bytes: &'a [u8],
    signed: &'a [u8],
    nonce: [u8; NONCE_LEN],
    ciphertext: &'a [u8],
    signature: [u8; SIGNATURE_LEN],
}

impl<'a> Parsed<'a> {
    fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = EnvelopeHeader::decode(&mut r)?;
        let header_len = bytes.len() - r.remaining().len();
        let nonce = r.array()?;
        let rest = r.remaining();
        let ct_len = rest
            .len()
            .checked_sub(SIGNATURE_LEN)
            .ok_or(DecodeError::Truncated)?;
        // Ciphertext is a padded body plus the tag, so its length is a bucket + 16.
        let padded_len = ct_len.checked_sub(TAG_LEN).ok_or(DecodeError::Truncated)?;
        if !padding::is_bucket(padded_len) {
            return Err(DecodeError::InvalidField("ciphertext length"));
        }
        let ciphertext = r.take(ct_len)?;
        let signature = r.array()?;
        r.finish()?;
        let (header_bytes, _) = bytes.split_at(header_len);
        let (signed, _) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        Ok(Self {
            header,
            header_bytes,
            signed,
            nonce,
            ciphertext,
            signature,
        })
    }
}

/// Encrypts and signs `body` as message `header` under `epoch_key`.
///
/// The body must repeat the header's room and sender, and the header's epoch must be
/// the key's. The nonce is the only randomness drawn from `rng`.
pub fn seal(
    body: &MessageBody,
    header: &EnvelopeHeader,
    epoch_key: &EpochKey,
    sender_keys: &IdentityKeys,
    rng: &mut impl rand_core::CryptoRng,
) -> Result<Vec<u8>, SealError> {
    if body.room != header.room || body.sender != header.sender {
        return Err(SealError::InnerMismatch);
    }
    seal_unchecked(body, header, epoch_key, sender_keys, rng)
}

fn seal_unchecked(
    body: &MessageBody,
    header: &EnvelopeHeader,
    epoch_key: &EpochKey,
    sender_keys: &IdentityKeys,
    rng: &mut impl rand_core::CryptoRng,
) -> Result<Vec<u8>, SealError> {
    if header.epoch != epoch_key.epoch() {
        return Err(SealError::WrongEpoch);
    }
    let mut plaintext = Zeroizing::new(body.encode().map_err(SealError::InvalidBody)?);
    if plaintext.len() > MAX_DATA_LEN {
        return Err(SealError::TooLarge);
    }
    padding::pad(&mut plaintext).map_err(|_| SealError::TooLarge)?;
    let header_bytes = header.encode();
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new(epoch_key.key_bytes().into());
    let ciphertext = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: &plaintext,
                aad: &header_bytes,
            },
        )
        .map_err(|_| SealError::TooLarge)?;
    let mut out = header_bytes;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    let signature = sender_keys.sign(MESSAGE_LABEL, &[&out]);
    out.extend_from_slice(&signature);
    Ok(out)
}

/// Checks and opens an envelope delivered in `expected_room`.
///
/// `sender_identity` is the pinned identity key of the header's sender (found by
/// [`EnvelopeHeader::peek`]), and `authorized_members` the members the room's state
/// chain authorizes for the key's epoch. Checks run in the order of
/// [`EnvelopeError`]'s variants; replayed ids are checked afterwards with
/// [`crate::replay::SeenMessages`].
pub fn open(
    bytes: &[u8],
    expected_room: &RoomId,
    epoch_key: &EpochKey,
    sender_identity: &IdentityPublicKey,
    authorized_members: &BTreeSet<UserId>,
) -> Result<MessageBody, EnvelopeError> {
    let env = Parsed::decode(bytes).map_err(EnvelopeError::Decode)?;
    if env.header.room != *expected_room {
        return Err(EnvelopeError::WrongRoom);
    }
    if env.header.epoch != epoch_key.epoch() {
        return Err(EnvelopeError::WrongEpoch);
    }
    if !authorized_members.contains(&env.header.sender) {
        return Err(EnvelopeError::SenderNotAuthorized);
    }
    sender_identity
        .verify(MESSAGE_LABEL, &[env.signed], &env.signature)
        .map_err(|_| EnvelopeError::BadSignature)?;
    let cipher = Aes256Gcm::new(epoch_key.key_bytes().into());
    let padded = Zeroizing::new(
        cipher
            .decrypt(
                &env.nonce.into(),
                Payload {
                    msg: env.ciphertext,
                    aad: env.header_bytes,
                },
            )
            .map_err(|_| EnvelopeError::DecryptFailed)?,
    );
    let plain = padding::unpad(&padded).map_err(|_| EnvelopeError::BadPadding)?;
    let body = MessageBody::decode(plain).map_err(EnvelopeError::BadBody)?;
    if body.room != env.header.room || body.sender != env.header.sender {
        return Err(EnvelopeError::InnerMismatch);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Attachment;
    use crate::file::FileKey;
    use crate::replay::{Replayed, SeenMessages};
    use crate::test_rng;
    use proptest::prelude::*;

    struct World {
        alice: IdentityKeys,
        room: RoomId,
        key: EpochKey,
        members: BTreeSet<UserId>,
        header: EnvelopeHeader,
        body: MessageBody,
    }

    fn world() -> World {
        let mut rng = test_rng(7);
        let alice = IdentityKeys::generate(&mut rng);
        let room = RoomId::new("room-1").unwrap();
        let key = EpochKey::generate(&mut rng);
        let a = UserId::new("alice").unwrap();
        let members = [a.clone(), UserId::new("bob").unwrap()]
            .into_iter()
            .collect();
        let header = EnvelopeHeader::new(room.clone(), key.epoch(), a.clone(), &mut rng);
        let mut body = MessageBody::text(room.clone(), a, "hello, room");
        body.attachments.push(Attachment {
            file_id: "file-9".into(),
            file_key: FileKey::generate(&mut rng),
            name: "plan.pdf".into(),
            media_type: "application/pdf".into(),
            size: 1234,
            blob_sha256: [9; 32],
            chunk_size: 65536,
        });
        World {
            alice,
            room,
            key,
            members,
            header,
            body,
        }
    }

    impl World {
        fn seal(&self) -> Vec<u8> {
            seal(
                &self.body,
                &self.header,
                &self.key,
                &self.alice,
                &mut test_rng(8),
            )
            .unwrap()
        }

        fn open(&self, bytes: &[u8]) -> Result<MessageBody, EnvelopeError> {
            open(
                bytes,
                &self.room,
                &self.key,
                &self.alice.identity_public(),
                &self.members,
            )
        }

        /// Offsets of the regions: header end, nonce end, ciphertext end.
        fn regions(&self, env: &[u8]) -> (usize, usize, usize) {
            let h = self.header.encode().len();
            (h, h + NONCE_LEN, env.len() - SIGNATURE_LEN)
        }
    }

    #[test]
    fn seal_then_open() {
        let w = world();
        let env = w.seal();
        assert_eq!(w.open(&env).unwrap(), w.body);
        assert_eq!(EnvelopeHeader::peek(&env).unwrap(), w.header);
        // 1 KiB bucket for this small body: header + nonce + 256 + tag + signature.
        assert_eq!(env.len(), w.header.encode().len() + 12 + 256 + 16 + 64);
    }

    #[test]
    fn every_flipped_byte_is_refused_by_region() {
        let w = world();
        let env = w.seal();
        let (h, _, _) = w.regions(&env);
        for i in 0..env.len() {
            let mut bad = env.clone();
            bad[i] ^= 0x01;
            let err = w.open(&bad).unwrap_err();
            if i >= h {
                // Nonce, ciphertext and signature: the signature check catches them.
                assert_eq!(err, EnvelopeError::BadSignature, "byte {i}");
            } else {
                // Header bytes change structure, room, epoch, sender, or only the
                // signed message id.
                assert!(
                    matches!(
                        err,
                        EnvelopeError::Decode(_)
                            | EnvelopeError::WrongRoom
                            | EnvelopeError::WrongEpoch
                            | EnvelopeError::SenderNotAuthorized
                            | EnvelopeError::BadSignature
                    ),
                    "byte {i}: {err:?}"
                );
            }
        }
        let mut bad = env.clone();
        bad[0] = 2;
        assert_eq!(
            w.open(&bad),
            Err(EnvelopeError::Decode(DecodeError::UnsupportedVersion(2)))
        );
        // Message id: last 16 header bytes; only the signature notices.
        let mut bad = env.clone();
        bad[h - 1] ^= 0x80;
        assert_eq!(w.open(&bad), Err(EnvelopeError::BadSignature));
        // Epoch id sits right after the room id.
        let mut bad = env.clone();
        bad[1 + 1 + w.room.as_str().len()] ^= 1;
        assert_eq!(w.open(&bad), Err(EnvelopeError::WrongEpoch));
    }

    #[test]
    fn tampering_under_a_valid_signature_reports_decrypt_and_padding() {
        // A sender (or anyone with the signing key) re-signing altered bytes: the
        // AEAD still refuses the nonce and ciphertext.
        let w = world();
        let env = w.seal();
        let (_, n, c) = w.regions(&env);
        let resign = |mut bytes: Vec<u8>| {
            bytes.truncate(bytes.len() - SIGNATURE_LEN);
            let sig = w.alice.sign(MESSAGE_LABEL, &[&bytes]);
            bytes.extend_from_slice(&sig);
            bytes
        };
        for i in (n - NONCE_LEN..c).step_by(7) {
            let mut bad = env.clone();
            bad[i] ^= 0x04;
            assert_eq!(
                w.open(&resign(bad)),
                Err(EnvelopeError::DecryptFailed),
                "byte {i}"
            );
        }
        // The message id is associated data too.
        let mut bad = env.clone();
        bad[n - NONCE_LEN - 1] ^= 1;
        assert_eq!(w.open(&resign(bad)), Err(EnvelopeError::DecryptFailed));
    }

    fn seal_raw(w: &World, padded: &[u8]) -> Vec<u8> {
        // Encrypts arbitrary padded plaintext, as a misbehaving member could.
        let header_bytes = w.header.encode();
        let nonce = [3u8; NONCE_LEN];
        let ct = Aes256Gcm::new(w.key.key_bytes().into())
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: padded,
                    aad: &header_bytes,
                },
            )
            .unwrap();
        let mut out = header_bytes;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        let sig = w.alice.sign(MESSAGE_LABEL, &[&out]);
        out.extend_from_slice(&sig);
        out
    }

    #[test]
    fn bad_padding_and_bad_body_are_reported() {
        let w = world();
        assert_eq!(
            w.open(&seal_raw(&w, &[0u8; 256])),
            Err(EnvelopeError::BadPadding)
        );
        let mut junk = b"not a body".to_vec();
        padding::pad(&mut junk).unwrap();
        assert!(matches!(
            w.open(&seal_raw(&w, &junk)),
            Err(EnvelopeError::BadBody(_))
        ));
    }

    #[test]
    fn contexts_are_bound() {
        let w = world();
        let env = w.seal();
        let a = w.alice.identity_public();
        // Delivered into another room.
        let other_room = RoomId::new("room-2").unwrap();
        assert_eq!(
            open(&env, &other_room, &w.key, &a, &w.members),
            Err(EnvelopeError::WrongRoom)
        );
        // Another epoch's key.
        let other_key = EpochKey::generate(&mut test_rng(20));
        assert_eq!(
            open(&env, &w.room, &other_key, &a, &w.members),
            Err(EnvelopeError::WrongEpoch)
        );
        // Same epoch id, different key bytes (a forged or corrupted key).
        let wrong_bytes = EpochKey::from_parts(w.key.epoch(), [0x55; 32]);
        assert_eq!(
            open(&env, &w.room, &wrong_bytes, &a, &w.members),
            Err(EnvelopeError::DecryptFailed)
        );
        // Checked against another user's identity key.
        let mallory = IdentityKeys::generate(&mut test_rng(21));
        assert_eq!(
            open(
                &env,
                &w.room,
                &w.key,
                &mallory.identity_public(),
                &w.members
            ),
            Err(EnvelopeError::BadSignature)
        );
        // Sender not in the authorized set for the epoch.
        let only_bob = [UserId::new("bob").unwrap()].into_iter().collect();
        assert_eq!(
            open(&env, &w.room, &w.key, &a, &only_bob),
            Err(EnvelopeError::SenderNotAuthorized)
        );
    }

    #[test]
    fn inner_and_outer_ids_must_agree() {
        let w = world();
        let mut moved = w.body.clone();
        moved.room = RoomId::new("elsewhere").unwrap();
        assert_eq!(
            seal(&moved, &w.header, &w.key, &w.alice, &mut test_rng(1)),
            Err(SealError::InnerMismatch)
        );
        let env = seal_unchecked(&moved, &w.header, &w.key, &w.alice, &mut test_rng(1)).unwrap();
        assert_eq!(w.open(&env), Err(EnvelopeError::InnerMismatch));
        let mut reattributed = w.body.clone();
        reattributed.sender = UserId::new("bob").unwrap();
        let env =
            seal_unchecked(&reattributed, &w.header, &w.key, &w.alice, &mut test_rng(1)).unwrap();
        assert_eq!(w.open(&env), Err(EnvelopeError::InnerMismatch));
    }

    #[test]
    fn seal_refuses_wrong_epoch_and_oversize() {
        let w = world();
        let other = EpochKey::generate(&mut test_rng(30));
        assert_eq!(
            seal(&w.body, &w.header, &other, &w.alice, &mut test_rng(1)),
            Err(SealError::WrongEpoch)
        );
        let mut big = w.body.clone();
        big.text = "x".repeat(MAX_DATA_LEN);
        assert_eq!(
            seal(&big, &w.header, &w.key, &w.alice, &mut test_rng(1)),
            Err(SealError::TooLarge)
        );
    }

    #[test]
    fn a_replayed_envelope_is_caught_after_it_opens() {
        let w = world();
        let env = w.seal();
        let mut seen = SeenMessages::new();
        let header = EnvelopeHeader::peek(&env).unwrap();
        w.open(&env).unwrap();
        assert_eq!(seen.check_and_insert(&header.room, header.message), Ok(()));
        // The server sends the same envelope again: it still opens, the id is known.
        w.open(&env).unwrap();
        assert_eq!(
            seen.check_and_insert(&header.room, header.message),
            Err(Replayed)
        );
    }

    #[test]
    fn structure_is_checked_without_keys() {
        let w = world();
        let env = w.seal();
        assert_eq!(
            EnvelopeHeader::peek(&env[..env.len() - 1]),
            Err(DecodeError::InvalidField("ciphertext length"))
        );
        assert_eq!(
            EnvelopeHeader::peek(&env[..40]),
            Err(DecodeError::Truncated)
        );
        let mut longer = env.clone();
        longer.push(0);
        assert_eq!(
            EnvelopeHeader::peek(&longer),
            Err(DecodeError::InvalidField("ciphertext length"))
        );
        assert_eq!(
            w.open(&longer),
            Err(EnvelopeError::Decode(DecodeError::InvalidField(
                "ciphertext length"
            )))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn envelopes_round_trip(body in crate::body::tests::body_strategy(), seed: u64) {
            let mut rng = test_rng(seed);
            let keys = IdentityKeys::generate(&mut rng);
            let key = EpochKey::generate(&mut rng);
            let header = EnvelopeHeader::new(body.room.clone(), key.epoch(), body.sender.clone(), &mut rng);
            let members = [body.sender.clone()].into_iter().collect();
            let env = seal(&body, &header, &key, &keys, &mut rng).unwrap();
            prop_assert_eq!(EnvelopeHeader::peek(&env).unwrap(), header);
            prop_assert_eq!(open(&env, &body.room, &key, &keys.identity_public(), &members).unwrap(), body);
        }

        #[test]
        fn hostile_envelopes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let w = world();
            let _ = EnvelopeHeader::peek(&bytes);
            let _ = w.open(&bytes);
        }
    }
}
