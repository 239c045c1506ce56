//! The deniable handshake: triple Diffie-Hellman between both users' agreement keys
//! and fresh ephemeral keys, a transcript hash as HKDF salt, and confirmation MACs.

use super::{OtrError, label};
use crate::VERSION;
use crate::encoding::Writer;
use crate::ids::{OtrSessionId, RoomId, UserId};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Everything the transcript hash binds, in its fixed order.
pub(crate) struct Transcript<'a> {
    pub(crate) session: OtrSessionId,
    pub(crate) room: &'a RoomId,
    pub(crate) initiator: &'a UserId,
    pub(crate) responder: &'a UserId,
    pub(crate) initiator_identity: [u8; 32],
    pub(crate) responder_identity: [u8; 32],
    pub(crate) initiator_ephemeral: [u8; 32],
    pub(crate) responder_ephemeral: [u8; 32],
}

impl Transcript<'_> {
    /// SHA-256 over the label and every public input of the handshake.
    pub(crate) fn hash(&self) -> [u8; 32] {
        let mut w = Writer::new();
        w.bytes8(label::TRANSCRIPT)
            .u8(VERSION)
            .raw(self.session.as_bytes());
        self.room.encode(&mut w);
        self.initiator.encode(&mut w);
        self.responder.encode(&mut w);
        w.raw(&self.initiator_identity)
            .raw(&self.responder_identity)
            .raw(&self.initiator_ephemeral)
            .raw(&self.responder_ephemeral);
        Sha256::digest(w.finish()).into()
    }
}

/// What a completed triple Diffie-Hellman yields.
pub(crate) struct HandshakeKeys {
    pub(crate) transcript: [u8; 32],
    pub(crate) root: Zeroizing<[u8; 32]>,
    accept_key: Zeroizing<[u8; 32]>,
    confirm_key: Zeroizing<[u8; 32]>,
}

/// X25519, refusing an all-zero (non-contributory) result.
pub(crate) fn dh(
    secret: &StaticSecret,
    public: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, OtrError> {
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    if !shared.was_contributory() {
        return Err(OtrError::WeakKey);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// HMAC-SHA-256 of the concatenated parts.
pub(crate) fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = new_mac(key);
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn new_mac(key: &[u8; 32]) -> HmacSha256 {
    // HMAC zero-pads a short key to the 64-byte block (RFC 2104), so passing the
    // padded block is the same MAC and needs no fallible length check.
    let mut block = Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(key);
    <HmacSha256 as KeyInit>::new(&(*block).into())
}

/// The public key of a secret.
pub(crate) fn public(secret: &StaticSecret) -> [u8; 32] {
    PublicKey::from(secret).to_bytes()
}

/// The side of the handshake this party plays.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    Initiator,
    Responder,
}

impl HandshakeKeys {
    /// Runs the triple Diffie-Hellman from one side. `own_identity` and
    /// `own_ephemeral` are this party's secrets; the transcript holds the public keys.
    pub(crate) fn derive(
        role: Role,
        own_identity: &StaticSecret,
        own_ephemeral: &StaticSecret,
        t: &Transcript<'_>,
    ) -> Result<Self, OtrError> {
        // DH1 = DH(IK_initiator, EK_responder), DH2 = DH(EK_initiator, IK_responder),
        // DH3 = DH(EK_initiator, EK_responder): each side computes the same three.
        let (dh1, dh2) = match role {
            Role::Initiator => (
                dh(own_identity, &t.responder_ephemeral)?,
                dh(own_ephemeral, &t.responder_identity)?,
            ),
            Role::Responder => (
                dh(own_ephemeral, &t.initiator_identity)?,
                dh(own_identity, &t.initiator_ephemeral)?,
            ),
        };
        let peer_ephemeral = match role {
            Role::Initiator => &t.responder_ephemeral,
            Role::Responder => &t.initiator_ephemeral,
        };
        let dh3 = dh(own_ephemeral, peer_ephemeral)?;
        let mut ikm = Zeroizing::new([0u8; 96]);
        ikm[..32].copy_from_slice(dh1.as_ref());
        ikm[32..64].copy_from_slice(dh2.as_ref());
        ikm[64..].copy_from_slice(dh3.as_ref());
        let transcript = t.hash();
        let mut okm = Zeroizing::new([0u8; 96]);
        Hkdf::<Sha256>::new(Some(&transcript), ikm.as_ref())
            .expand(label::HANDSHAKE, okm.as_mut())
            .map_err(|_| OtrError::BadConfirmation)?;
        let split = |range: std::ops::Range<usize>| {
            let mut k = Zeroizing::new([0u8; 32]);
            k.copy_from_slice(&okm[range]);
            k
        };
        Ok(Self {
            transcript,
            root: split(0..32),
            accept_key: split(32..64),
            confirm_key: split(64..96),
        })
    }

    /// The responder's MAC: over the accept label and the transcript hash.
    pub(crate) fn accept_mac(&self) -> [u8; 32] {
        hmac(
            &self.accept_key,
            &[&label_bytes(label::ACCEPT), &self.transcript],
        )
    }

    /// The initiator's MAC: over the confirm label, the transcript hash and the
    /// initiator's first ratchet key.
    pub(crate) fn confirm_mac(&self, ratchet_key: &[u8; 32]) -> [u8; 32] {
        hmac(
            &self.confirm_key,
            &[&label_bytes(label::CONFIRM), &self.transcript, ratchet_key],
        )
    }

    /// Checks the responder's MAC in constant time.
    pub(crate) fn verify_accept(&self, mac: &[u8; 32]) -> Result<(), OtrError> {
        let mut m = new_mac(&self.accept_key);
        m.update(&label_bytes(label::ACCEPT));
        m.update(&self.transcript);
        m.verify_slice(mac).map_err(|_| OtrError::BadConfirmation)
    }

    /// Checks the initiator's MAC in constant time.
    pub(crate) fn verify_confirm(
        &self,
        ratchet_key: &[u8; 32],
        mac: &[u8; 32],
    ) -> Result<(), OtrError> {
        let mut m = new_mac(&self.confirm_key);
        m.update(&label_bytes(label::CONFIRM));
        m.update(&self.transcript);
        m.update(ratchet_key);
        m.verify_slice(mac).map_err(|_| OtrError::BadConfirmation)
    }
}

/// `bytes8(label)`.
fn label_bytes(label: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes8(label);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng;

    fn setup() -> (
        StaticSecret,
        StaticSecret,
        StaticSecret,
        StaticSecret,
        RoomId,
        UserId,
        UserId,
    ) {
        let mut rng = test_rng(11);
        let ika = StaticSecret::random_from_rng(&mut rng);
        let eka = StaticSecret::random_from_rng(&mut rng);
        let ikb = StaticSecret::random_from_rng(&mut rng);
        let ekb = StaticSecret::random_from_rng(&mut rng);
        (
            ika,
            eka,
            ikb,
            ekb,
            RoomId::new("dm1").unwrap(),
            UserId::new("a").unwrap(),
            UserId::new("b").unwrap(),
        )
    }

    #[test]
    fn both_sides_derive_the_same_keys_and_macs() {
        let (ika, eka, ikb, ekb, room, a, b) = setup();
        let t = Transcript {
            session: OtrSessionId([3; 16]),
            room: &room,
            initiator: &a,
            responder: &b,
            initiator_identity: public(&ika),
            responder_identity: public(&ikb),
            initiator_ephemeral: public(&eka),
            responder_ephemeral: public(&ekb),
        };
        let ki = HandshakeKeys::derive(Role::Initiator, &ika, &eka, &t).unwrap();
        let kr = HandshakeKeys::derive(Role::Responder, &ikb, &ekb, &t).unwrap();
        assert_eq!(*ki.root, *kr.root);
        ki.verify_accept(&kr.accept_mac()).unwrap();
        kr.verify_confirm(&[5; 32], &ki.confirm_mac(&[5; 32]))
            .unwrap();
        assert_eq!(
            kr.verify_confirm(&[6; 32], &ki.confirm_mac(&[5; 32])),
            Err(OtrError::BadConfirmation)
        );
        // The two MAC keys differ, so one side's MAC never passes for the other's.
        assert_eq!(
            ki.verify_accept(&ki.confirm_mac(&[0; 32])),
            Err(OtrError::BadConfirmation)
        );
    }

    #[test]
    fn every_transcript_field_changes_the_hash() {
        let (ika, eka, ikb, ekb, room, a, b) = setup();
        let other_room = RoomId::new("dm2").unwrap();
        let c = UserId::new("c").unwrap();
        let base = || Transcript {
            session: OtrSessionId([3; 16]),
            room: &room,
            initiator: &a,
            responder: &b,
            initiator_identity: public(&ika),
            responder_identity: public(&ikb),
            initiator_ephemeral: public(&eka),
            responder_ephemeral: public(&ekb),
        };
        let h = base().hash();
        let variants = [
            Transcript {
                session: OtrSessionId([4; 16]),
                ..base()
            },
            Transcript {
                room: &other_room,
                ..base()
            },
            Transcript {
                initiator: &c,
                ..base()
            },
            Transcript {
                responder: &c,
                ..base()
            },
            Transcript {
                initiator_identity: [1; 32],
                ..base()
            },
            Transcript {
                responder_identity: [1; 32],
                ..base()
            },
            Transcript {
                initiator_ephemeral: [1; 32],
                ..base()
            },
            Transcript {
                responder_ephemeral: [1; 32],
                ..base()
            },
        ];
        for v in variants {
            assert_ne!(v.hash(), h);
        }
    }

    #[test]
    fn low_order_keys_are_refused() {
        let (ika, ..) = setup();
        assert_eq!(dh(&ika, &[0; 32]).unwrap_err(), OtrError::WeakKey);
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(dh(&ika, &one).unwrap_err(), OtrError::WeakKey);
    }
}
