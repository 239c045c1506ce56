//! Room-key boxes: one epoch's key, HPKE-sealed to one member's X25519 key and signed
//! by the member who hands it on (the distributor).
//!
//! A member keeps their own copies on the server as boxes sealed to themselves
//! (distributor = recipient), so every session of theirs can read the room's history.

use crate::VERSION;
use crate::chain::RoomState;
use crate::encoding::{DecodeError, Reader, Writer, signing_input};
use crate::epoch::{EPOCH_KEY_LEN, EpochKey};
use crate::identity::{IdentityKeys, IdentityPublicKey, PublicBundle, SIGNATURE_LEN};
use crate::ids::{EpochId, RoomId, UserId};
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use thiserror::Error;
use zeroize::Zeroizing;

/// The label of the distributor's signature over a box.
pub const ROOM_KEY_LABEL: &[u8] = b"sotto/v1/room-key";
/// The label that starts the HPKE `info` of a box.
pub const ROOM_KEY_INFO_LABEL: &[u8] = b"sotto/v1/room-key-info";
/// Length of the HPKE encapsulated key (`enc`).
pub const ENC_LEN: usize = 32;
/// Length of the sealed epoch key: the key and the 16-byte AES-GCM tag.
pub const SEALED_KEY_LEN: usize = EPOCH_KEY_LEN + 16;

type Kem = X25519HkdfSha256;

/// Why a room-key box could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RoomKeyError {
    /// The box's bytes are malformed.
    #[error("malformed room-key box: {0}")]
    Decode(#[from] DecodeError),
    /// The recipient's X25519 key is unusable (HPKE encapsulation failed).
    #[error("the recipient's agreement key is unusable")]
    InvalidRecipientKey,
    /// The box is addressed to someone else.
    #[error("the box is for another user")]
    NotForMe,
    /// The box is for another room.
    #[error("the box is for another room")]
    WrongRoom,
    /// The room's chain never declared the box's epoch.
    #[error("the room's chain does not declare this epoch")]
    UnknownEpoch,
    /// The distributor may not hold this epoch's key according to the chain.
    #[error("the distributor is not authorized for this epoch")]
    DistributorNotAuthorized,
    /// The recipient may not hold this epoch's key according to the chain.
    #[error("the recipient is not authorized for this epoch")]
    RecipientNotAuthorized,
    /// No identity key is known (pinned) for the distributor.
    #[error("no identity key known for the distributor")]
    UnknownDistributor,
    /// The distributor's signature does not verify.
    #[error("room-key box signature is not valid")]
    BadSignature,
    /// HPKE decryption failed: the box was not sealed to this user's key.
    #[error("room-key box does not decrypt")]
    DecryptFailed,
}

/// One epoch key sealed to one recipient, signed by its distributor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomKeyBox {
    room: RoomId,
    epoch: EpochId,
    recipient: UserId,
    distributor: UserId,
    enc: [u8; ENC_LEN],
    sealed: [u8; SEALED_KEY_LEN],
    signature: [u8; SIGNATURE_LEN],
}

/// The box header: what the HPKE `info` and the signature bind.
fn header(room: &RoomId, epoch: &EpochId, recipient: &UserId, distributor: &UserId) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(VERSION);
    room.encode(&mut w);
    w.raw(epoch.as_bytes());
    recipient.encode(&mut w);
    distributor.encode(&mut w);
    w.finish()
}

/// The HPKE `info`: `bytes8("sotto/v1/room-key-info") ‖ header`.
pub fn hpke_info(
    room: &RoomId,
    epoch: &EpochId,
    recipient: &UserId,
    distributor: &UserId,
) -> Vec<u8> {
    signing_input(
        ROOM_KEY_INFO_LABEL,
        &[&header(room, epoch, recipient, distributor)],
    )
}

impl RoomKeyBox {
    /// Seals `epoch_key` of `room` to the owner of `recipient` and signs the box as
    /// `distributor` with `distributor_keys`. The caller has checked the bundle's user
    /// against the chain and its identity key against the pinned one.
    pub fn seal(
        epoch_key: &EpochKey,
        room: &RoomId,
        distributor_keys: &IdentityKeys,
        distributor: &UserId,
        recipient: &PublicBundle,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Self, RoomKeyError> {
        let epoch = epoch_key.epoch();
        let info = hpke_info(room, &epoch, recipient.user(), distributor);
        let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient.agreement())
            .map_err(|_| RoomKeyError::InvalidRecipientKey)?;
        let (enc, ct) = hpke::single_shot_seal_with_rng::<AesGcm256, HkdfSha256, Kem>(
            &OpModeS::Base,
            &pk,
            &info,
            epoch_key.key_bytes(),
            b"",
            rng,
        )
        .map_err(|_| RoomKeyError::InvalidRecipientKey)?;
        let enc: [u8; ENC_LEN] = enc.to_bytes().into();
        let sealed: [u8; SEALED_KEY_LEN] = ct
            .as_slice()
            .try_into()
            .map_err(|_| RoomKeyError::InvalidRecipientKey)?;
        let mut b = Self {
            room: room.clone(),
            epoch,
            recipient: recipient.user().clone(),
            distributor: distributor.clone(),
            enc,
            sealed,
            signature: [0; SIGNATURE_LEN],
        };
        b.signature = distributor_keys.sign(ROOM_KEY_LABEL, &[&b.body()]);
        Ok(b)
    }

    /// Seals `epoch_key` to every bundle in `recipients`, as `distributor`, after checking
    /// against the room's chain that the epoch is declared and that the distributor and
    /// every recipient may hold it. Nothing is sealed if any check fails.
    pub fn seal_for_members<'a>(
        epoch_key: &EpochKey,
        state: &RoomState,
        distributor_keys: &IdentityKeys,
        distributor: &UserId,
        recipients: impl IntoIterator<Item = &'a PublicBundle>,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Vec<Self>, RoomKeyError> {
        let epoch = epoch_key.epoch();
        if state.members_at_epoch(&epoch).is_none() {
            return Err(RoomKeyError::UnknownEpoch);
        }
        if !state.may_hold_epoch(&epoch, distributor) {
            return Err(RoomKeyError::DistributorNotAuthorized);
        }
        let recipients: Vec<&PublicBundle> = recipients.into_iter().collect();
        if recipients
            .iter()
            .any(|b| !state.may_hold_epoch(&epoch, b.user()))
        {
            return Err(RoomKeyError::RecipientNotAuthorized);
        }
        recipients
            .into_iter()
            .map(|b| {
                Self::seal(
                    epoch_key,
                    state.room(),
                    distributor_keys,
                    distributor,
                    b,
                    rng,
                )
            })
            .collect()
    }

    /// Opens a box addressed to `me`, checking in this order: the recipient is `me`
    /// ([`RoomKeyError::NotForMe`]); the room is the chain's room
    /// ([`RoomKeyError::WrongRoom`]); the chain declares the epoch
    /// ([`RoomKeyError::UnknownEpoch`]); the distributor and then the recipient may hold
    /// that epoch ([`RoomKeyError::DistributorNotAuthorized`],
    /// [`RoomKeyError::RecipientNotAuthorized`]); the distributor's pinned key from `keys`
    /// ([`RoomKeyError::UnknownDistributor`]) verifies the signature
    /// ([`RoomKeyError::BadSignature`]); HPKE opens ([`RoomKeyError::DecryptFailed`]).
    pub fn open(
        &self,
        me: &UserId,
        my_keys: &IdentityKeys,
        state: &RoomState,
        keys: impl Fn(&UserId) -> Option<IdentityPublicKey>,
    ) -> Result<EpochKey, RoomKeyError> {
        if &self.recipient != me {
            return Err(RoomKeyError::NotForMe);
        }
        if &self.room != state.room() {
            return Err(RoomKeyError::WrongRoom);
        }
        if state.members_at_epoch(&self.epoch).is_none() {
            return Err(RoomKeyError::UnknownEpoch);
        }
        if !state.may_hold_epoch(&self.epoch, &self.distributor) {
            return Err(RoomKeyError::DistributorNotAuthorized);
        }
        if !state.may_hold_epoch(&self.epoch, &self.recipient) {
            return Err(RoomKeyError::RecipientNotAuthorized);
        }
        let key = keys(&self.distributor).ok_or(RoomKeyError::UnknownDistributor)?;
        key.verify(ROOM_KEY_LABEL, &[&self.body()], &self.signature)
            .map_err(|_| RoomKeyError::BadSignature)?;
        let secret = Zeroizing::new(my_keys.agreement_secret().to_bytes());
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret.as_slice())
            .map_err(|_| RoomKeyError::DecryptFailed)?;
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&self.enc)
            .map_err(|_| RoomKeyError::DecryptFailed)?;
        let plain = Zeroizing::new(
            hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
                &OpModeR::Base,
                &sk,
                &enc,
                &self.info(),
                &self.sealed,
                b"",
            )
            .map_err(|_| RoomKeyError::DecryptFailed)?,
        );
        let mut key = Zeroizing::new([0u8; EPOCH_KEY_LEN]);
        if plain.len() != EPOCH_KEY_LEN {
            return Err(RoomKeyError::DecryptFailed);
        }
        key.copy_from_slice(&plain);
        Ok(EpochKey::from_parts(self.epoch, *key))
    }

    /// The header: version, room, epoch, recipient, distributor.
    pub fn header(&self) -> Vec<u8> {
        header(&self.room, &self.epoch, &self.recipient, &self.distributor)
    }

    /// The HPKE `info` this box was sealed with.
    pub fn info(&self) -> Vec<u8> {
        hpke_info(&self.room, &self.epoch, &self.recipient, &self.distributor)
    }

    /// The signed bytes (after the label): header, `enc`, sealed key.
    pub fn body(&self) -> Vec<u8> {
        let mut out = self.header();
        out.extend_from_slice(&self.enc);
        out.extend_from_slice(&self.sealed);
        out
    }

    /// Canonical encoding: body, then the 64-byte signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses a box without any key: what the server does to route and store it.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version(VERSION)?;
        let room = RoomId::decode(&mut r)?;
        let epoch = EpochId(r.array()?);
        let recipient = UserId::decode(&mut r)?;
        let distributor = UserId::decode(&mut r)?;
        let enc = r.array()?;
        let sealed = r.array()?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            room,
            epoch,
            recipient,
            distributor,
            enc,
            sealed,
            signature,
        })
    }

    /// Checks only the distributor's signature (the server may, with the published key).
    pub fn verify_signature(
        &self,
        distributor_key: &IdentityPublicKey,
    ) -> Result<(), RoomKeyError> {
        distributor_key
            .verify(ROOM_KEY_LABEL, &[&self.body()], &self.signature)
            .map_err(|_| RoomKeyError::BadSignature)
    }

    /// The room.
    pub fn room(&self) -> &RoomId {
        &self.room
    }

    /// The epoch whose key is inside.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// Who can open it.
    pub fn recipient(&self) -> &UserId {
        &self.recipient
    }

    /// Who sealed and signed it.
    pub fn distributor(&self) -> &UserId {
        &self.distributor
    }

    /// Whether this is a member's own copy (sealed by and to the same user).
    pub fn is_self_copy(&self) -> bool {
        self.recipient == self.distributor
    }

    /// The HPKE encapsulated key.
    pub fn enc(&self) -> &[u8; ENC_LEN] {
        &self.enc
    }

    /// The sealed epoch key (HPKE ciphertext).
    pub fn sealed_key(&self) -> &[u8; SEALED_KEY_LEN] {
        &self.sealed
    }

    /// The distributor's signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }
}
