//! The Double Ratchet: an X25519 ratchet feeding an HKDF root chain, HMAC sending and
//! receiving chains, and one AES-256-GCM key and nonce per message key.

use super::frame::{Header, header_bytes};
use super::handshake::{dh, hmac, public};
use super::{OtrError, label};
use crate::VERSION;
use crate::encoding::Writer;
use crate::ids::OtrSessionId;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use std::collections::VecDeque;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

/// Most skipped message keys kept in total; the oldest is dropped beyond this.
pub const MAX_SKIPPED_KEYS: usize = 1000;
/// Most message keys one received message may cause to be skipped in one chain.
pub const MAX_SKIP_PER_STEP: u32 = 1000;

/// Chain step inputs: the message key and the next chain key use distinct constants.
const MESSAGE_KEY_CONSTANT: &[u8] = &[0x01];
const CHAIN_KEY_CONSTANT: &[u8] = &[0x02];

type Key = Zeroizing<[u8; 32]>;

fn key(bytes: &[u8]) -> Key {
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(bytes);
    k
}

/// Root chain step: HKDF(salt = root key, ikm = DH output, info = root label) gives
/// the next root key and a fresh chain key.
pub(crate) fn kdf_root(root: &[u8; 32], dh_out: &[u8; 32]) -> (Key, Key) {
    let mut okm = Zeroizing::new([0u8; 64]);
    // 64 bytes is within HKDF-SHA-256's output limit, so expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(root), dh_out).expand(label::ROOT, okm.as_mut());
    (key(&okm[..32]), key(&okm[32..]))
}

/// Symmetric chain step: the message key and the next chain key.
fn kdf_chain(chain: &[u8; 32]) -> (Key, Key) {
    (
        Zeroizing::new(hmac(chain, &[MESSAGE_KEY_CONSTANT])),
        Zeroizing::new(hmac(chain, &[CHAIN_KEY_CONSTANT])),
    )
}

/// The AES key and nonce of one message key. Each message key seals one message,
/// so the pair is never reused.
fn message_cipher(mk: &[u8; 32]) -> (Aes256Gcm, [u8; 12]) {
    let mut okm = Zeroizing::new([0u8; 44]);
    let _ = Hkdf::<Sha256>::new(None, mk).expand(label::MESSAGE, okm.as_mut());
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..]);
    let cipher = Aes256Gcm::new((&*key(&okm[..32])).into());
    (cipher, nonce)
}

/// The associated data of a data frame: label, version, session id, header.
pub(crate) fn associated_data(session: &OtrSessionId, header: &Header) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes8(label::DATA)
        .u8(VERSION)
        .raw(session.as_bytes())
        .raw(&header_bytes(header));
    w.finish()
}

#[derive(Clone)]
struct SkippedKey {
    ratchet_key: [u8; 32],
    number: u32,
    key: Key,
}

/// One side's ratchet state. Every secret zeroizes on drop.
#[derive(Clone)]
pub(crate) struct Ratchet {
    session: OtrSessionId,
    root: Key,
    own: StaticSecret,
    own_public: [u8; 32],
    peer: Option<[u8; 32]>,
    sending: Option<Key>,
    receiving: Option<Key>,
    sent: u32,
    received: u32,
    previous_sent: u32,
    skipped: VecDeque<SkippedKey>,
    /// Peer ratchet keys already stepped past, so a replay from an old chain is
    /// told apart from a new ratchet key (bounded like the skipped store).
    old_peers: VecDeque<[u8; 32]>,
}

impl Ratchet {
    /// The initiator's ratchet after the handshake: it knows the responder's
    /// ephemeral key, so it takes a DH step with its fresh first ratchet key at once.
    pub(crate) fn initiator(
        session: OtrSessionId,
        root: &[u8; 32],
        own: StaticSecret,
        responder_ephemeral: [u8; 32],
    ) -> Result<Self, OtrError> {
        let shared = dh(&own, &responder_ephemeral)?;
        let (root, sending) = kdf_root(root, &shared);
        Ok(Self {
            session,
            root,
            own_public: public(&own),
            own,
            peer: Some(responder_ephemeral),
            sending: Some(sending),
            receiving: None,
            sent: 0,
            received: 0,
            previous_sent: 0,
            skipped: VecDeque::new(),
            old_peers: VecDeque::new(),
        })
    }

    /// The responder's ratchet: its ephemeral key is its first ratchet key, and the
    /// initiator's first ratchet key (from the confirmation) starts a DH step.
    pub(crate) fn responder(
        session: OtrSessionId,
        root: &[u8; 32],
        own_ephemeral: StaticSecret,
        initiator_ratchet_key: [u8; 32],
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Self, OtrError> {
        let mut r = Self {
            session,
            root: key(root),
            own_public: public(&own_ephemeral),
            own: own_ephemeral,
            peer: None,
            sending: None,
            receiving: None,
            sent: 0,
            received: 0,
            previous_sent: 0,
            skipped: VecDeque::new(),
            old_peers: VecDeque::new(),
        };
        r.dh_step(initiator_ratchet_key, rng)?;
        Ok(r)
    }

    /// Seals one padded body; returns the header and ciphertext.
    pub(crate) fn encrypt(&mut self, padded: &[u8]) -> Result<(Header, Vec<u8>), OtrError> {
        let chain = self.sending.as_ref().ok_or(OtrError::NotEstablished)?;
        let next_number = self.sent.checked_add(1).ok_or(OtrError::ChainExhausted)?;
        let (mk, next) = kdf_chain(chain);
        let header = Header {
            ratchet_key: self.own_public,
            previous_chain_len: self.previous_sent,
            number: self.sent,
        };
        let (cipher, nonce) = message_cipher(&mk);
        let aad = associated_data(&self.session, &header);
        let ct = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: padded,
                    aad: &aad,
                },
            )
            .map_err(|_| OtrError::BodyTooLarge)?;
        self.sending = Some(next);
        self.sent = next_number;
        Ok((header, ct))
    }

    /// Opens one message. State changes only if the message authenticates, so a
    /// forged or tampered frame leaves the ratchet exactly as it was.
    pub(crate) fn decrypt(
        &mut self,
        header: &Header,
        ciphertext: &[u8],
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Zeroizing<Vec<u8>>, OtrError> {
        let aad = associated_data(&self.session, header);
        if let Some(i) = self
            .skipped
            .iter()
            .position(|s| s.ratchet_key == header.ratchet_key && s.number == header.number)
        {
            let plain = open(&self.skipped[i].key, ciphertext, &aad)?;
            // Used once, then gone.
            self.skipped.remove(i);
            return Ok(plain);
        }
        if self.old_peers.contains(&header.ratchet_key) {
            return Err(OtrError::KeyUnavailable);
        }
        let mut next = self.clone();
        if next.peer != Some(header.ratchet_key) {
            next.skip_to(header.previous_chain_len)?;
            next.dh_step(header.ratchet_key, rng)?;
        }
        if header.number < next.received {
            return Err(OtrError::KeyUnavailable);
        }
        next.skip_to(header.number)?;
        let chain = next.receiving.as_ref().ok_or(OtrError::UnexpectedFrame)?;
        let (mk, chain_next) = kdf_chain(chain);
        let plain = open(&mk, ciphertext, &aad)?;
        next.receiving = Some(chain_next);
        next.received = next
            .received
            .checked_add(1)
            .ok_or(OtrError::TooManySkipped)?;
        *self = next;
        Ok(plain)
    }

    /// Stores the keys of messages `received..until` of the receiving chain.
    fn skip_to(&mut self, until: u32) -> Result<(), OtrError> {
        let Some(chain) = self.receiving.as_mut() else {
            return Ok(());
        };
        let Some(peer) = self.peer else { return Ok(()) };
        if until <= self.received {
            return Ok(());
        }
        if until - self.received > MAX_SKIP_PER_STEP {
            return Err(OtrError::TooManySkipped);
        }
        while self.received < until {
            let (mk, next) = kdf_chain(chain);
            *chain = next;
            if self.skipped.len() >= MAX_SKIPPED_KEYS {
                self.skipped.pop_front();
            }
            self.skipped.push_back(SkippedKey {
                ratchet_key: peer,
                number: self.received,
                key: mk,
            });
            self.received += 1;
        }
        Ok(())
    }

    /// A DH ratchet step on meeting a new peer ratchet key: a new receiving chain,
    /// then a fresh own key and a new sending chain.
    fn dh_step(
        &mut self,
        peer: [u8; 32],
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<(), OtrError> {
        let shared = dh(&self.own, &peer)?;
        let (root, receiving) = kdf_root(&self.root, &shared);
        let own = StaticSecret::random_from_rng(rng);
        let shared = dh(&own, &peer)?;
        let (root, sending) = kdf_root(&root, &shared);
        if let Some(old) = self.peer {
            if self.old_peers.len() >= MAX_SKIPPED_KEYS {
                self.old_peers.pop_front();
            }
            self.old_peers.push_back(old);
        }
        self.previous_sent = self.sent;
        self.sent = 0;
        self.received = 0;
        self.peer = Some(peer);
        self.receiving = Some(receiving);
        self.sending = Some(sending);
        self.own_public = public(&own);
        self.own = own;
        self.root = root;
        Ok(())
    }

    /// How many skipped message keys are stored.
    #[cfg(test)]
    pub(crate) fn skipped_len(&self) -> usize {
        self.skipped.len()
    }
}

fn open(mk: &[u8; 32], ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, OtrError> {
    let (cipher, nonce) = message_cipher(mk);
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OtrError::DecryptFailed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng;

    fn pair() -> (Ratchet, Ratchet, rand_chacha::ChaCha20Rng) {
        let mut rng = test_rng(21);
        let session = OtrSessionId([9; 16]);
        let root = [4u8; 32];
        let ek_b = StaticSecret::random_from_rng(&mut rng);
        let r_a = StaticSecret::random_from_rng(&mut rng);
        let r_a_pub = public(&r_a);
        let a = Ratchet::initiator(session, &root, r_a, public(&ek_b)).unwrap();
        let b = Ratchet::responder(session, &root, ek_b, r_a_pub, &mut rng).unwrap();
        (a, b, rng)
    }

    #[test]
    fn messages_flow_both_ways_and_out_of_order() {
        let (mut a, mut b, mut rng) = pair();
        let m: Vec<_> = (0..4u8).map(|i| a.encrypt(&[i; 256]).unwrap()).collect();
        assert_eq!(
            *b.decrypt(&m[2].0, &m[2].1, &mut rng).unwrap(),
            vec![2; 256]
        );
        assert_eq!(b.skipped_len(), 2);
        assert_eq!(
            *b.decrypt(&m[0].0, &m[0].1, &mut rng).unwrap(),
            vec![0; 256]
        );
        let r = b.encrypt(&[9; 256]).unwrap();
        assert_eq!(*a.decrypt(&r.0, &r.1, &mut rng).unwrap(), vec![9; 256]);
        // A's new chain; B still gets the older chain's message 1 and 3.
        let n = a.encrypt(&[7; 256]).unwrap();
        assert_eq!(n.0.previous_chain_len, 4);
        assert_eq!(*b.decrypt(&n.0, &n.1, &mut rng).unwrap(), vec![7; 256]);
        assert_eq!(
            *b.decrypt(&m[3].0, &m[3].1, &mut rng).unwrap(),
            vec![3; 256]
        );
        assert_eq!(
            *b.decrypt(&m[1].0, &m[1].1, &mut rng).unwrap(),
            vec![1; 256]
        );
        assert_eq!(b.skipped_len(), 0);
        assert_eq!(
            b.decrypt(&m[1].0, &m[1].1, &mut rng).unwrap_err(),
            OtrError::KeyUnavailable
        );
    }

    #[test]
    fn a_forged_message_leaves_the_state_unchanged() {
        let (mut a, mut b, mut rng) = pair();
        let (h, mut ct) = a.encrypt(&[1; 256]).unwrap();
        ct[0] ^= 1;
        let forged = Header {
            ratchet_key: public(&StaticSecret::random_from_rng(&mut rng)),
            ..h
        };
        assert_eq!(
            b.decrypt(&forged, &ct, &mut rng).unwrap_err(),
            OtrError::DecryptFailed
        );
        assert_eq!(
            b.decrypt(&h, &ct, &mut rng).unwrap_err(),
            OtrError::DecryptFailed
        );
        ct[0] ^= 1;
        assert_eq!(*b.decrypt(&h, &ct, &mut rng).unwrap(), vec![1; 256]);
    }

    #[test]
    fn skip_limits_hold() {
        let (mut a, mut b, mut rng) = pair();
        let far = Header {
            number: MAX_SKIP_PER_STEP + 1,
            ..a.encrypt(&[0; 256]).unwrap().0
        };
        assert_eq!(
            b.decrypt(&far, &[0; 272], &mut rng).unwrap_err(),
            OtrError::TooManySkipped
        );
        let weak = Header {
            ratchet_key: [0; 32],
            ..far
        };
        assert_eq!(
            b.decrypt(&weak, &[0; 272], &mut rng).unwrap_err(),
            OtrError::WeakKey
        );
    }
}
