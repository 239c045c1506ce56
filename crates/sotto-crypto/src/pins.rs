//! The identity keys a client has pinned for its contacts (trust on first use).
//!
//! The first key seen for a user is pinned. A different key later is never taken
//! silently: it is kept as a pending change that the user must be shown and accept.
//! A pinned key becomes verified when the users compare their safety number. Clients
//! save the store with [`PinStore::encode`] and load it with [`PinStore::decode`].

use crate::VERSION;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::identity::IdentityPublicKey;
use crate::ids::UserId;
use std::collections::BTreeMap;
use thiserror::Error;

/// Why a pin operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PinError {
    /// No key is pinned for the user.
    #[error("no key is pinned for this user")]
    UnknownUser,
    /// The key is not the one pinned for the user.
    #[error("the key is not the pinned key")]
    NotPinnedKey,
    /// There is no changed key waiting to be accepted.
    #[error("no key change is pending")]
    NoPendingChange,
    /// The key the user accepted is not the pending key (it was replaced since it
    /// was shown).
    #[error("the key is not the pending key")]
    NotPendingKey,
}

/// How far a pinned key is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinState {
    /// Pinned on first use, or after an accepted change; not yet compared.
    Unverified,
    /// The users compared their safety number.
    Verified,
}

/// What the client learned from seeing a user's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// No key was pinned for the user; this one now is, unverified.
    FirstUse,
    /// The key is the pinned one.
    Known {
        /// Whether the pinned key was verified.
        verified: bool,
    },
    /// The key differs from the pinned one. The pin is unchanged; the new key is held
    /// as [`Pin::pending`] until [`PinStore::accept_change`].
    Changed {
        /// Whether the pinned key had been verified (the warning should say so).
        was_verified: bool,
    },
}

/// One contact's pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The pinned identity key.
    pub key: IdentityPublicKey,
    /// How far it is trusted.
    pub state: PinState,
    /// A different key seen since, waiting to be shown and accepted.
    pub pending: Option<IdentityPublicKey>,
}

/// Every pinned contact of one client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinStore {
    pins: BTreeMap<UserId, Pin>,
}

impl PinStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `key` was presented as `user`'s identity key.
    pub fn observe(&mut self, user: &UserId, key: &IdentityPublicKey) -> Observation {
        match self.pins.get_mut(user) {
            None => {
                self.pins.insert(
                    user.clone(),
                    Pin {
                        key: *key,
                        state: PinState::Unverified,
                        pending: None,
                    },
                );
                Observation::FirstUse
            }
            Some(pin) if pin.key == *key => Observation::Known {
                verified: pin.state == PinState::Verified,
            },
            Some(pin) => {
                pin.pending = Some(*key);
                Observation::Changed {
                    was_verified: pin.state == PinState::Verified,
                }
            }
        }
    }

    /// The user accepted the changed key `key`, the one they were shown: it becomes
    /// the pin, unverified. If another key has become pending since, nothing changes
    /// ([`PinError::NotPendingKey`]), so a key the user never saw is never pinned.
    pub fn accept_change(
        &mut self,
        user: &UserId,
        key: &IdentityPublicKey,
    ) -> Result<IdentityPublicKey, PinError> {
        let pin = self.pins.get_mut(user).ok_or(PinError::UnknownUser)?;
        let new = pin.pending.ok_or(PinError::NoPendingChange)?;
        if new != *key {
            return Err(PinError::NotPendingKey);
        }
        pin.pending = None;
        pin.key = new;
        pin.state = PinState::Unverified;
        Ok(new)
    }

    /// The users compared their safety number over `key`; only the pinned key can be
    /// marked verified.
    pub fn mark_verified(
        &mut self,
        user: &UserId,
        key: &IdentityPublicKey,
    ) -> Result<(), PinError> {
        let pin = self.pins.get_mut(user).ok_or(PinError::UnknownUser)?;
        if pin.key != *key {
            return Err(PinError::NotPinnedKey);
        }
        pin.state = PinState::Verified;
        Ok(())
    }

    /// Whether `key` is the key pinned for `user` (verified or not). A pending,
    /// unaccepted key is not trusted.
    pub fn trusted(&self, user: &UserId, key: &IdentityPublicKey) -> bool {
        self.pins.get(user).is_some_and(|pin| pin.key == *key)
    }

    /// The pin for `user`, if any.
    pub fn get(&self, user: &UserId) -> Option<&Pin> {
        self.pins.get(user)
    }

    /// Every pinned user with their pin, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&UserId, &Pin)> {
        self.pins.iter()
    }

    /// Number of pinned users.
    pub fn len(&self) -> usize {
        self.pins.len()
    }

    /// Whether no user is pinned.
    pub fn is_empty(&self) -> bool {
        self.pins.is_empty()
    }

    /// Canonical encoding: version, count, then the pins in ascending user id order.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION);
        w.u32(u32::try_from(self.pins.len()).unwrap_or(u32::MAX));
        for (user, pin) in &self.pins {
            user.encode(&mut w);
            w.raw(&pin.key.to_bytes());
            w.u8(match pin.state {
                PinState::Unverified => 0,
                PinState::Verified => 1,
            });
            match &pin.pending {
                None => w.u8(0),
                Some(k) => w.u8(1).raw(&k.to_bytes()),
            };
        }
        w.finish()
    }

    /// Parses a saved store, refusing anything that is not a canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version(VERSION)?;
        let count = r.u32()?;
        let mut pins = BTreeMap::new();
        let mut last: Option<UserId> = None;
        for _ in 0..count {
            let user = UserId::decode(&mut r)?;
            if last.as_ref().is_some_and(|prev| prev >= &user) {
                return Err(DecodeError::InvalidField("pin order"));
            }
            let key = identity_key(&mut r)?;
            let state = match r.u8()? {
                0 => PinState::Unverified,
                1 => PinState::Verified,
                _ => return Err(DecodeError::InvalidField("pin state")),
            };
            let pending = match r.u8()? {
                0 => None,
                1 => Some(identity_key(&mut r)?),
                _ => return Err(DecodeError::InvalidField("pending flag")),
            };
            if pending == Some(key) {
                return Err(DecodeError::InvalidField("pending key"));
            }
            last = Some(user.clone());
            pins.insert(
                user,
                Pin {
                    key,
                    state,
                    pending,
                },
            );
        }
        r.finish()?;
        Ok(Self { pins })
    }
}

fn identity_key(r: &mut Reader<'_>) -> Result<IdentityPublicKey, DecodeError> {
    IdentityPublicKey::from_bytes(&r.array::<32>()?)
        .map_err(|_| DecodeError::InvalidField("identity key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKeys;
    use crate::test_rng;
    use proptest::prelude::*;

    fn key(seed: u64) -> IdentityPublicKey {
        IdentityKeys::generate(&mut test_rng(seed)).identity_public()
    }

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    #[test]
    fn first_use_then_known_then_verified() {
        let mut store = PinStore::new();
        let bob = user("u.bob");
        assert!(!store.trusted(&bob, &key(1)));
        assert_eq!(store.observe(&bob, &key(1)), Observation::FirstUse);
        assert!(store.trusted(&bob, &key(1)));
        assert_eq!(
            store.observe(&bob, &key(1)),
            Observation::Known { verified: false }
        );
        assert_eq!(
            store.mark_verified(&bob, &key(2)),
            Err(PinError::NotPinnedKey)
        );
        store.mark_verified(&bob, &key(1)).unwrap();
        assert_eq!(
            store.observe(&bob, &key(1)),
            Observation::Known { verified: true }
        );
        assert_eq!(
            store.mark_verified(&user("u.eve"), &key(1)),
            Err(PinError::UnknownUser)
        );
    }

    #[test]
    fn a_changed_key_is_never_taken_silently() {
        let mut store = PinStore::new();
        let bob = user("u.bob");
        store.observe(&bob, &key(1));
        store.mark_verified(&bob, &key(1)).unwrap();
        assert_eq!(
            store.observe(&bob, &key(2)),
            Observation::Changed { was_verified: true }
        );
        // The old pin stands and the new key is not trusted.
        assert!(store.trusted(&bob, &key(1)));
        assert!(!store.trusted(&bob, &key(2)));
        assert_eq!(
            store.mark_verified(&bob, &key(2)),
            Err(PinError::NotPinnedKey)
        );
        assert_eq!(store.get(&bob).unwrap().pending, Some(key(2)));
        // A key replaced after it was shown cannot be accepted in its place.
        assert_eq!(
            store.observe(&bob, &key(3)),
            Observation::Changed { was_verified: true }
        );
        assert_eq!(
            store.accept_change(&bob, &key(2)),
            Err(PinError::NotPendingKey)
        );
        assert!(store.trusted(&bob, &key(1)));
        assert_eq!(store.get(&bob).unwrap().pending, Some(key(3)));
        store.observe(&bob, &key(2));
        // Accepting moves to the new key, unverified.
        assert_eq!(store.accept_change(&bob, &key(2)), Ok(key(2)));
        assert!(store.trusted(&bob, &key(2)));
        assert!(!store.trusted(&bob, &key(1)));
        assert_eq!(
            store.observe(&bob, &key(2)),
            Observation::Known { verified: false }
        );
        assert_eq!(
            store.accept_change(&bob, &key(2)),
            Err(PinError::NoPendingChange)
        );
        assert_eq!(
            store.accept_change(&user("u.eve"), &key(2)),
            Err(PinError::UnknownUser)
        );
    }

    #[test]
    fn pins_are_per_user() {
        let mut store = PinStore::new();
        store.observe(&user("u.bob"), &key(1));
        assert_eq!(
            store.observe(&user("u.carol"), &key(1)),
            Observation::FirstUse
        );
        assert!(!store.trusted(&user("u.dave"), &key(1)));
        assert_eq!(store.len(), 2);
    }

    fn sample() -> PinStore {
        let mut store = PinStore::new();
        store.observe(&user("u.bob"), &key(1));
        store.observe(&user("u.ann"), &key(2));
        store.mark_verified(&user("u.ann"), &key(2)).unwrap();
        store.observe(&user("u.ann"), &key(3));
        store
    }

    #[test]
    fn encoding_is_as_specified() {
        let bytes = sample().encode();
        let mut want = vec![1, 0, 0, 0, 2, 5];
        want.extend_from_slice(b"u.ann");
        want.extend_from_slice(&key(2).to_bytes());
        want.extend_from_slice(&[1, 1]);
        want.extend_from_slice(&key(3).to_bytes());
        want.push(5);
        want.extend_from_slice(b"u.bob");
        want.extend_from_slice(&key(1).to_bytes());
        want.extend_from_slice(&[0, 0]);
        assert_eq!(bytes, want);
        assert_eq!(PinStore::decode(&bytes).unwrap(), sample());
        assert_eq!(
            PinStore::decode(&PinStore::new().encode()).unwrap(),
            PinStore::new()
        );
    }

    #[test]
    fn hostile_bytes_give_the_precise_error() {
        let good = sample().encode();
        let ann = 6 + 5; // offset of ann's key
        let bob = ann + 32 + 2 + 32 + 1 + 5; // offset of bob's key
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            PinStore::decode(&b)
        };
        assert_eq!(with(0, 2), Err(DecodeError::UnsupportedVersion(2)));
        assert_eq!(with(4, 3), Err(DecodeError::Truncated));
        assert_eq!(with(4, 1), Err(DecodeError::TrailingBytes));
        assert_eq!(with(5, 0), Err(DecodeError::InvalidField("user id")));
        assert_eq!(with(7, b' '), Err(DecodeError::InvalidField("user id")));
        // "u.ann" → "u.cnn" sorts after "u.bob".
        assert_eq!(with(8, b'c'), Err(DecodeError::InvalidField("pin order")));
        assert_eq!(
            with(ann + 32, 2),
            Err(DecodeError::InvalidField("pin state"))
        );
        assert_eq!(
            with(ann + 33, 2),
            Err(DecodeError::InvalidField("pending flag"))
        );
        assert_eq!(with(bob + 33, 1), Err(DecodeError::Truncated));
        // A small-order point (the identity, 01 00…00) is refused as a key.
        let mut b = good.clone();
        b[ann..ann + 32].copy_from_slice(&[[1u8].as_slice(), &[0u8; 31]].concat());
        assert_eq!(
            PinStore::decode(&b),
            Err(DecodeError::InvalidField("identity key"))
        );
        // Pending equal to the pin is not canonical.
        let mut b = good.clone();
        b.copy_within(ann..ann + 32, ann + 34);
        assert_eq!(
            PinStore::decode(&b),
            Err(DecodeError::InvalidField("pending key"))
        );
        // The same user twice.
        let mut b = good.clone();
        b[bob - 3..bob].copy_from_slice(b"ann");
        assert_eq!(
            PinStore::decode(&b),
            Err(DecodeError::InvalidField("pin order"))
        );
        assert_eq!(
            PinStore::decode(&good[..good.len() - 1]),
            Err(DecodeError::Truncated)
        );
        // A huge count with no entries fails fast without allocating.
        assert_eq!(
            PinStore::decode(&[1, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn round_trip(ops in proptest::collection::vec((0u8..6, 0u64..4, 0u8..3), 0..30)) {
            let keys: Vec<IdentityPublicKey> = (0..4).map(key).collect();
            let mut store = PinStore::new();
            for (u, k, op) in ops {
                let u = user(&format!("u.{u}"));
                let k = &keys[usize::try_from(k).unwrap()];
                match op {
                    0 => { store.observe(&u, k); }
                    1 => { let _ = store.accept_change(&u, k); }
                    _ => { let _ = store.mark_verified(&u, k); }
                }
            }
            prop_assert_eq!(PinStore::decode(&store.encode()).unwrap(), store);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = PinStore::decode(&input);
        }
    }
}
