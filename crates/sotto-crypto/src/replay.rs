//! The message ids a client has accepted, per room, so a replayed envelope is refused.
//!
//! The set must outlive the process: the client persists [`SeenMessages::encode`]
//! (in its local storage, beside its other state) after accepting messages, and loads
//! it with [`SeenMessages::decode`] on start. An id is inserted only after its
//! envelope opened, so forged envelopes cannot fill the set.
//!
//! ```text
//! seen = 0x01 ‖ u32 room_count ‖ room * room_count        (rooms in increasing byte order)
//! room = bytes8(room_id) ‖ u32 id_count ‖ fixed(16) * id_count   (ids increasing, id_count ≥ 1)
//! ```

use crate::VERSION;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::ids::{MessageId, RoomId};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// The message id was already accepted in this room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("message was already received")]
pub struct Replayed;

/// Accepted message ids per room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenMessages {
    rooms: BTreeMap<RoomId, BTreeSet<MessageId>>,
}

impl SeenMessages {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `id` as accepted in `room`, or reports that it already was.
    pub fn check_and_insert(&mut self, room: &RoomId, id: MessageId) -> Result<(), Replayed> {
        let ids = self.rooms.entry(room.clone()).or_default();
        if ids.insert(id) {
            Ok(())
        } else {
            Err(Replayed)
        }
    }

    /// Whether `id` was accepted in `room`.
    pub fn contains(&self, room: &RoomId, id: &MessageId) -> bool {
        self.rooms.get(room).is_some_and(|ids| ids.contains(id))
    }

    /// Forgets a room (after leaving it for good).
    pub fn forget_room(&mut self, room: &RoomId) {
        self.rooms.remove(room);
    }

    /// The canonical encoding, for the client to persist.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION);
        let rooms: Vec<_> = self
            .rooms
            .iter()
            .filter(|(_, ids)| !ids.is_empty())
            .collect();
        w.u32(rooms.len() as u32);
        for (room, ids) in rooms {
            room.encode(&mut w);
            w.u32(ids.len() as u32);
            for id in ids {
                w.raw(id.as_bytes());
            }
        }
        w.finish()
    }

    /// Decodes what [`SeenMessages::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version(VERSION)?;
        let mut rooms = BTreeMap::new();
        let mut last_room: Option<RoomId> = None;
        for _ in 0..r.u32()? {
            let room = RoomId::decode(&mut r)?;
            if last_room.as_ref().is_some_and(|l| *l >= room) {
                return Err(DecodeError::InvalidField("room order"));
            }
            let count = r.u32()?;
            if count == 0 {
                return Err(DecodeError::InvalidField("message id count"));
            }
            let mut ids = BTreeSet::new();
            for _ in 0..count {
                let id = MessageId(r.array()?);
                if ids.last().is_some_and(|l| *l >= id) {
                    return Err(DecodeError::InvalidField("message id order"));
                }
                ids.insert(id);
            }
            last_room = Some(room.clone());
            rooms.insert(room, ids);
        }
        r.finish()?;
        Ok(Self { rooms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn room(s: &str) -> RoomId {
        RoomId::new(s).unwrap()
    }

    #[test]
    fn replays_are_caught_per_room_and_across_restarts() {
        let mut seen = SeenMessages::new();
        let id = MessageId([1; 16]);
        assert_eq!(seen.check_and_insert(&room("a"), id), Ok(()));
        assert_eq!(seen.check_and_insert(&room("a"), id), Err(Replayed));
        // The same id in another room is another message.
        assert_eq!(seen.check_and_insert(&room("b"), id), Ok(()));
        let mut restarted = SeenMessages::decode(&seen.encode()).unwrap();
        assert!(restarted.contains(&room("a"), &id));
        assert_eq!(restarted.check_and_insert(&room("b"), id), Err(Replayed));
        restarted.forget_room(&room("b"));
        assert_eq!(restarted.check_and_insert(&room("b"), id), Ok(()));
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        let mut seen = SeenMessages::new();
        seen.check_and_insert(&room("a"), MessageId([1; 16]))
            .unwrap();
        seen.check_and_insert(&room("a"), MessageId([2; 16]))
            .unwrap();
        seen.check_and_insert(&room("b"), MessageId([1; 16]))
            .unwrap();
        let good = seen.encode();
        // Swap the two ids of room "a" (after version, count, "a", id count).
        let start = 1 + 4 + 2 + 4;
        let mut bad = good.clone();
        bad[start..start + 16].copy_from_slice(&[2; 16]);
        bad[start + 16..start + 32].copy_from_slice(&[1; 16]);
        assert_eq!(
            SeenMessages::decode(&bad),
            Err(DecodeError::InvalidField("message id order"))
        );
        // Rename room "b" to "a": rooms out of order.
        let mut bad = good.clone();
        let b_at = start + 32 + 1;
        assert_eq!(bad[b_at], b'b');
        bad[b_at] = b'a';
        assert_eq!(
            SeenMessages::decode(&bad),
            Err(DecodeError::InvalidField("room order"))
        );
        let mut bad = good.clone();
        bad.push(0);
        assert_eq!(SeenMessages::decode(&bad), Err(DecodeError::TrailingBytes));
        assert_eq!(
            SeenMessages::decode(&good[..good.len() - 1]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            SeenMessages::decode(&[2, 0, 0, 0, 0]),
            Err(DecodeError::UnsupportedVersion(2))
        );
        assert_eq!(
            SeenMessages::decode(&[1, 0, 0, 0, 1, 1, b'a', 0, 0, 0, 0]),
            Err(DecodeError::InvalidField("message id count"))
        );
    }

    proptest! {
        #[test]
        fn seen_round_trips(entries in proptest::collection::vec(("[a-z0-9]{1,8}", any::<[u8; 16]>()), 0..40)) {
            let mut seen = SeenMessages::new();
            for (r, id) in &entries {
                let _ = seen.check_and_insert(&room(r), MessageId(*id));
            }
            let back = SeenMessages::decode(&seen.encode()).unwrap();
            prop_assert_eq!(&back, &seen);
            for (r, id) in &entries {
                prop_assert!(back.contains(&room(r), &MessageId(*id)));
            }
        }

        #[test]
        fn hostile_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = SeenMessages::decode(&bytes);
        }
    }
}
