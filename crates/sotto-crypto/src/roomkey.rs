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

/// Who may hand `recipient` the key of `epoch`: someone who may hold it and is still a
/// member, or a former member only for its own self-copy. A removed member therefore
/// cannot hand newcomers keys, even for epochs it once held.
fn may_distribute(
    state: &RoomState,
    epoch: &EpochId,
    distributor: &UserId,
    recipient: &UserId,
) -> bool {
    state.may_hold_epoch(epoch, distributor)
        && (state.is_member(distributor) || distributor == recipient)
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
        let recipients: Vec<&PublicBundle> = recipients.into_iter().collect();
        if recipients
            .iter()
            .any(|b| !may_distribute(state, &epoch, distributor, b.user()))
        {
            return Err(RoomKeyError::DistributorNotAuthorized);
        }
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
    /// that epoch, the distributor being a current member unless the box is its own
    /// self-copy ([`RoomKeyError::DistributorNotAuthorized`],
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
        if !may_distribute(state, &self.epoch, &self.distributor, &self.recipient) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Action, Create, RoomChain, RoomKind, Statement};
    use crate::test_rng;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    struct World {
        keys: BTreeMap<UserId, IdentityKeys>,
        chain: RoomChain,
        e1: EpochKey,
    }

    fn user(n: &str) -> UserId {
        UserId::new(n).unwrap()
    }

    fn room() -> RoomId {
        RoomId::new("room-1").unwrap()
    }

    /// An encrypted private channel of alice (owner), bob and carol at epoch `e1`;
    /// dave and mallory have keys but are not members.
    fn world(history_shared: bool) -> World {
        let keys: BTreeMap<UserId, IdentityKeys> = ["alice", "bob", "carol", "dave", "mallory"]
            .iter()
            .zip(10u64..)
            .map(|(n, s)| (user(n), IdentityKeys::generate(&mut test_rng(s))))
            .collect();
        let create = Create {
            kind: RoomKind::PrivateChannel,
            members: [user("alice"), user("bob"), user("carol")].into(),
            encrypted: true,
            history_shared,
        };
        let first =
            Statement::create(&room(), create, &user("alice"), &keys[&user("alice")]).unwrap();
        let e1 = EpochKey::generate(&mut test_rng(100));
        let second = Statement::next(
            &first,
            Action::NewEpoch(e1.epoch()),
            &user("alice"),
            &keys[&user("alice")],
        )
        .unwrap();
        let chain = {
            let resolve = |u: &UserId| keys.get(u).map(IdentityKeys::identity_public);
            RoomChain::verify(&room(), [first, second], resolve).unwrap()
        };
        World { keys, chain, e1 }
    }

    impl World {
        fn k(&self, n: &str) -> &IdentityKeys {
            &self.keys[&user(n)]
        }

        fn bundle(&self, n: &str) -> PublicBundle {
            self.k(n).bundle(&user(n))
        }

        fn resolve(&self) -> impl Fn(&UserId) -> Option<IdentityPublicKey> + '_ {
            |u| self.keys.get(u).map(IdentityKeys::identity_public)
        }

        fn seal(&self, key: &EpochKey, from: &str, to: &str) -> RoomKeyBox {
            RoomKeyBox::seal(
                key,
                &room(),
                self.k(from),
                &user(from),
                &self.bundle(to),
                &mut test_rng(7),
            )
            .unwrap()
        }

        fn open(&self, b: &RoomKeyBox, me: &str) -> Result<EpochKey, RoomKeyError> {
            b.open(&user(me), self.k(me), self.chain.state(), self.resolve())
        }

        fn step(&mut self, actor: &str, action: Action) {
            let stmt = Statement::next(
                self.chain.head(),
                action,
                &user(actor),
                &self.keys[&user(actor)],
            )
            .unwrap();
            let keys = &self.keys;
            self.chain
                .append(stmt, |u| keys.get(u).map(IdentityKeys::identity_public))
                .unwrap();
        }
    }

    #[test]
    fn a_member_opens_the_key_sealed_to_them() {
        let w = world(true);
        let b = w.seal(&w.e1, "alice", "bob");
        let got = w
            .open(&RoomKeyBox::decode(&b.encode()).unwrap(), "bob")
            .unwrap();
        assert_eq!(got.epoch(), w.e1.epoch());
        assert_eq!(got.key_bytes(), w.e1.key_bytes());
        assert!(!b.is_self_copy());
        assert_eq!(
            (b.room(), b.epoch(), b.recipient(), b.distributor()),
            (&room(), w.e1.epoch(), &user("bob"), &user("alice"))
        );
        assert!(b.verify_signature(&w.k("alice").identity_public()).is_ok());
        assert_eq!(
            b.verify_signature(&w.k("bob").identity_public()),
            Err(RoomKeyError::BadSignature)
        );
    }

    #[test]
    fn a_self_sealed_copy_opens_for_its_owner() {
        let w = world(true);
        let b = w.seal(&w.e1, "carol", "carol");
        assert!(b.is_self_copy());
        assert_eq!(w.open(&b, "carol").unwrap().key_bytes(), w.e1.key_bytes());
    }

    #[test]
    fn a_batch_reaches_every_member() {
        let w = world(true);
        let bundles: Vec<PublicBundle> = ["alice", "bob", "carol"]
            .iter()
            .map(|n| w.bundle(n))
            .collect();
        let boxes = RoomKeyBox::seal_for_members(
            &w.e1,
            w.chain.state(),
            w.k("bob"),
            &user("bob"),
            &bundles,
            &mut test_rng(3),
        )
        .unwrap();
        assert_eq!(boxes.len(), 3);
        for b in &boxes {
            let me = b.recipient().as_str();
            assert_eq!(w.open(b, me).unwrap().key_bytes(), w.e1.key_bytes());
        }
        let with_stranger: Vec<PublicBundle> =
            ["alice", "mallory"].iter().map(|n| w.bundle(n)).collect();
        assert_eq!(
            RoomKeyBox::seal_for_members(
                &w.e1,
                w.chain.state(),
                w.k("bob"),
                &user("bob"),
                &with_stranger,
                &mut test_rng(3)
            ),
            Err(RoomKeyError::RecipientNotAuthorized)
        );
        assert_eq!(
            RoomKeyBox::seal_for_members(
                &w.e1,
                w.chain.state(),
                w.k("dave"),
                &user("dave"),
                &bundles,
                &mut test_rng(3)
            ),
            Err(RoomKeyError::DistributorNotAuthorized)
        );
        let undeclared = EpochKey::generate(&mut test_rng(5));
        assert_eq!(
            RoomKeyBox::seal_for_members(
                &undeclared,
                w.chain.state(),
                w.k("bob"),
                &user("bob"),
                &bundles,
                &mut test_rng(3)
            ),
            Err(RoomKeyError::UnknownEpoch)
        );
    }

    #[test]
    fn a_member_the_server_adds_gets_no_key() {
        let w = world(true);
        // The server lists mallory; the chain does not.
        let cmp = w
            .chain
            .state()
            .compare_members(&[user("alice"), user("mallory")]);
        assert!(cmp.not_verified_by_room.contains(&user("mallory")));
        let b = w.seal(&w.e1, "alice", "mallory");
        assert_eq!(
            (w.open(&b, "mallory")).err(),
            Some(RoomKeyError::RecipientNotAuthorized)
        );
        // Nor can mallory hand keys out.
        let b = w.seal(&w.e1, "mallory", "bob");
        assert_eq!(
            (w.open(&b, "bob")).err(),
            Some(RoomKeyError::DistributorNotAuthorized)
        );
    }

    #[test]
    fn contexts_cannot_be_swapped() {
        let w = world(true);
        let b = w.seal(&w.e1, "alice", "bob");
        assert_eq!((w.open(&b, "carol")).err(), Some(RoomKeyError::NotForMe));
        // The same members in another room, with the same epoch declared.
        let other = RoomId::new("room-2").unwrap();
        let c = Create {
            kind: RoomKind::PrivateChannel,
            members: [user("alice"), user("bob")].into(),
            encrypted: true,
            history_shared: true,
        };
        let first = Statement::create(&other, c, &user("alice"), w.k("alice")).unwrap();
        let second = Statement::next(
            &first,
            Action::NewEpoch(w.e1.epoch()),
            &user("alice"),
            w.k("alice"),
        )
        .unwrap();
        let other_chain = RoomChain::verify(&other, [first, second], w.resolve()).unwrap();
        assert_eq!(
            (b.open(&user("bob"), w.k("bob"), other_chain.state(), w.resolve())).err(),
            Some(RoomKeyError::WrongRoom)
        );
        // An epoch the chain never declared.
        let stray = EpochKey::generate(&mut test_rng(6));
        assert_eq!(
            (w.open(&w.seal(&stray, "alice", "bob"), "bob")).err(),
            Some(RoomKeyError::UnknownEpoch)
        );
        // A distributor whose pinned key is unknown, or another key answers for them.
        assert_eq!(
            (b.open(&user("bob"), w.k("bob"), w.chain.state(), |_| None)).err(),
            Some(RoomKeyError::UnknownDistributor)
        );
        let carol_key = w.k("carol").identity_public();
        assert_eq!(
            (b.open(&user("bob"), w.k("bob"), w.chain.state(), |_| Some(
                carol_key
            )))
            .err(),
            Some(RoomKeyError::BadSignature)
        );
        // Opened with the wrong private keys under the right name.
        assert_eq!(
            (b.open(&user("bob"), w.k("carol"), w.chain.state(), w.resolve())).err(),
            Some(RoomKeyError::DecryptFailed)
        );
        // A bundle naming carol but carrying bob's X25519 key: sealed and signed in
        // carol's name, only bob's key would open it.
        let mislabeled = w.k("bob").bundle(&user("carol"));
        let b = RoomKeyBox::seal(
            &w.e1,
            &room(),
            w.k("alice"),
            &user("alice"),
            &mislabeled,
            &mut test_rng(8),
        )
        .unwrap();
        assert_eq!(
            (w.open(&b, "carol")).err(),
            Some(RoomKeyError::DecryptFailed)
        );
    }

    #[test]
    fn every_region_of_a_box_fails_with_its_own_error() {
        let w = world(true);
        let good = w.seal(&w.e1, "alice", "bob").encode();
        let open = |bytes: &[u8]| -> Result<EpochKey, RoomKeyError> {
            w.open(&RoomKeyBox::decode(bytes)?, "bob")
        };
        // 0x01 ‖ bytes8("room-1") ‖ epoch(16) ‖ bytes8("bob") ‖ bytes8("alice") ‖ enc ‖ sealed ‖ sig
        let epoch_at = 8;
        let recipient_at = epoch_at + 16;
        let distributor_at = recipient_at + 4;
        let enc_at = distributor_at + 6;
        let sealed_at = enc_at + ENC_LEN;
        let sig_at = sealed_at + SEALED_KEY_LEN;
        assert_eq!(good.len(), sig_at + SIGNATURE_LEN);
        let regions = [
            (
                0,
                Err(RoomKeyError::Decode(DecodeError::UnsupportedVersion(0))),
            ),
            (2, Err(RoomKeyError::WrongRoom)),
            (epoch_at, Err(RoomKeyError::UnknownEpoch)),
            (recipient_at + 1, Err(RoomKeyError::NotForMe)),
            (
                distributor_at + 1,
                Err(RoomKeyError::DistributorNotAuthorized),
            ),
            (enc_at, Err(RoomKeyError::BadSignature)),
            (sealed_at + 5, Err(RoomKeyError::BadSignature)),
            (sig_at + 63, Err(RoomKeyError::BadSignature)),
        ];
        for (at, want) in regions {
            let mut bad = good.clone();
            // Flip the case bit of an id letter (keeps the id valid), one bit elsewhere.
            bad[at] ^= if bad[at].is_ascii_alphabetic() {
                0x20
            } else {
                0x01
            };
            assert_eq!(open(&bad).map(|k| k.epoch()), want, "byte {at}");
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad).is_err(), "byte {i} accepted");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(RoomKeyBox::decode(&longer), Err(DecodeError::TrailingBytes));
        assert_eq!(
            RoomKeyBox::decode(&good[..good.len() - 1]),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn a_removed_member_gets_no_key_of_a_new_epoch() {
        let mut w = world(true);
        let old = w.seal(&w.e1, "alice", "bob");
        w.step("alice", Action::Remove(user("bob")));
        assert!(w.chain.state().rotation_due());
        let e2 = EpochKey::generate(&mut test_rng(101));
        w.step("carol", Action::NewEpoch(e2.epoch()));
        assert_eq!(
            (w.open(&w.seal(&e2, "alice", "bob"), "bob")).err(),
            Some(RoomKeyError::RecipientNotAuthorized)
        );
        assert_eq!(
            (w.open(&w.seal(&e2, "bob", "carol"), "carol")).err(),
            Some(RoomKeyError::DistributorNotAuthorized)
        );
        // The epoch bob legitimately held stays readable from his copy, and his own
        // self-copy of it too…
        assert_eq!(w.open(&old, "bob").unwrap().key_bytes(), w.e1.key_bytes());
        let own = w.seal(&w.e1, "bob", "bob");
        assert_eq!(w.open(&own, "bob").unwrap().key_bytes(), w.e1.key_bytes());
        // …but he can no longer hand that old epoch to anyone else, even to a member
        // who may hold it.
        assert_eq!(
            (w.open(&w.seal(&w.e1, "bob", "carol"), "carol")).err(),
            Some(RoomKeyError::DistributorNotAuthorized)
        );
        assert_eq!(
            w.open(&w.seal(&e2, "carol", "alice"), "alice")
                .unwrap()
                .key_bytes(),
            e2.key_bytes()
        );
    }

    #[test]
    fn newcomers_receive_old_epochs_only_if_history_is_shared() {
        for shared in [true, false] {
            let mut w = world(shared);
            w.step("alice", Action::Invite(user("dave")));
            let old = w.seal(&w.e1, "bob", "dave");
            let got = w.open(&old, "dave");
            if shared {
                assert_eq!(got.unwrap().key_bytes(), w.e1.key_bytes());
            } else {
                // Dave joined during e1 but must not read what was sent before.
                assert_eq!(got.err(), Some(RoomKeyError::RecipientNotAuthorized));
            }
            assert_eq!(w.chain.state().rotation_due(), !shared);
            let e2 = EpochKey::generate(&mut test_rng(102));
            w.step("alice", Action::NewEpoch(e2.epoch()));
            w.step("alice", Action::Invite(user("mallory")));
            let got = w.open(&w.seal(&w.e1, "bob", "mallory"), "mallory");
            if shared {
                assert!(got.is_ok());
            } else {
                assert_eq!(got.err(), Some(RoomKeyError::RecipientNotAuthorized));
            }
            let got = w.open(&w.seal(&e2, "dave", "mallory"), "mallory");
            if shared {
                assert!(got.is_ok());
            } else {
                assert_eq!(got.err(), Some(RoomKeyError::RecipientNotAuthorized));
                let e3 = EpochKey::generate(&mut test_rng(103));
                w.step("mallory", Action::NewEpoch(e3.epoch()));
                assert!(w.open(&w.seal(&e3, "dave", "mallory"), "mallory").is_ok());
            }
        }
    }

    #[test]
    fn info_is_byte_exact() {
        let info = hpke_info(&room(), &EpochId([7; 16]), &user("bob"), &user("alice"));
        let mut want = vec![22u8];
        want.extend_from_slice(b"sotto/v1/room-key-info");
        want.extend_from_slice(&[1, 6]);
        want.extend_from_slice(b"room-1");
        want.extend_from_slice(&[7; 16]);
        want.extend_from_slice(b"\x03bob\x05alice");
        assert_eq!(info, want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn boxes_round_trip(r in "[a-z0-9]{1,64}", to in "[a-z0-9]{1,64}", from in "[a-z0-9]{1,64}",
                            epoch: [u8; 16], enc: [u8; 32], sealed in any::<[u8; 32]>(), tag: [u8; 16], sig in any::<[[u8; 32]; 2]>()) {
            let mut s = [0u8; SEALED_KEY_LEN];
            s[..32].copy_from_slice(&sealed);
            s[32..].copy_from_slice(&tag);
            let mut signature = [0u8; SIGNATURE_LEN];
            signature[..32].copy_from_slice(&sig[0]);
            signature[32..].copy_from_slice(&sig[1]);
            let b = RoomKeyBox {
                room: RoomId::new(r).unwrap(),
                epoch: EpochId(epoch),
                recipient: user(&to),
                distributor: user(&from),
                enc,
                sealed: s,
                signature,
            };
            prop_assert_eq!(RoomKeyBox::decode(&b.encode()).unwrap(), b);
        }

        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = RoomKeyBox::decode(&bytes);
        }
    }
}
