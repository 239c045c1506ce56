//! One signed statement of a room's state chain and its canonical encoding.

use crate::VERSION;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::identity::{IdentityKeys, IdentityPublicKey, SIGNATURE_LEN, SignatureError};
use crate::ids::{EpochId, RoomId, UserId};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// The label of a statement signature.
pub const STATEMENT_LABEL: &[u8] = b"sotto/v1/room-state";

/// The `prev` field of the creation statement: no statement comes before it.
pub const GENESIS_PREV: [u8; 32] = [0u8; 32];

/// The kind of an encryptable room; it fixes who may change what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomKind {
    /// A one-to-one direct message: exactly two people, forever.
    DirectMessage,
    /// A direct message between more than two people.
    GroupDirectMessage,
    /// A private channel.
    PrivateChannel,
    /// A private team.
    PrivateTeam,
    /// A discussion started from a channel; encrypted discussions are members-only.
    Discussion,
}

impl RoomKind {
    fn code(self) -> u8 {
        match self {
            Self::DirectMessage => 1,
            Self::GroupDirectMessage => 2,
            Self::PrivateChannel => 3,
            Self::PrivateTeam => 4,
            Self::Discussion => 5,
        }
    }

    fn from_code(c: u8) -> Result<Self, DecodeError> {
        Ok(match c {
            1 => Self::DirectMessage,
            2 => Self::GroupDirectMessage,
            3 => Self::PrivateChannel,
            4 => Self::PrivateTeam,
            5 => Self::Discussion,
            _ => return Err(DecodeError::InvalidField("room kind")),
        })
    }

    /// Whether this is a direct message of either size, where every member may toggle
    /// encryption.
    pub fn is_direct(self) -> bool {
        matches!(self, Self::DirectMessage | Self::GroupDirectMessage)
    }
}

/// The content of a room's creation statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    /// What kind of room this is.
    pub kind: RoomKind,
    /// The first members, the creator among them.
    pub members: BTreeSet<UserId>,
    /// Whether messages are encrypted from the start.
    pub encrypted: bool,
    /// Whether members receive the keys of epochs from before they joined.
    pub history_shared: bool,
}

/// What a statement changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Creates the room (only at sequence number 0).
    Create(Create),
    /// Adds a member.
    Invite(UserId),
    /// Removes a member other than the actor.
    Remove(UserId),
    /// The actor leaves.
    Leave,
    /// Makes a member an owner.
    AddOwner(UserId),
    /// Takes owner rights from an owner.
    RemoveOwner(UserId),
    /// Turns message encryption on or off.
    SetEncryption(bool),
    /// Declares a new room key epoch.
    NewEpoch(EpochId),
    /// Declares that the actor's statements before this one were signed under
    /// `former` (its identity key before a reset); this one is signed under the new key.
    KeyChange(IdentityPublicKey),
}

/// Most members a creation statement may list (its count is a `u16`).
pub const MAX_CREATE_MEMBERS: usize = u16::MAX as usize;

fn flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidField(what)),
    }
}

impl Action {
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Create(c) => {
                w.u8(1)
                    .u8(c.kind.code())
                    .u8(u8::from(c.encrypted))
                    .u8(u8::from(c.history_shared));
                // The count fits: signing refuses larger sets and decoding
                // cannot produce one.
                w.u16(u16::try_from(c.members.len()).unwrap_or(u16::MAX));
                for m in c.members.iter().take(MAX_CREATE_MEMBERS) {
                    m.encode(w);
                }
            }
            Self::Invite(u) => {
                w.u8(2);
                u.encode(w);
            }
            Self::Remove(u) => {
                w.u8(3);
                u.encode(w);
            }
            Self::Leave => {
                w.u8(4);
            }
            Self::AddOwner(u) => {
                w.u8(5);
                u.encode(w);
            }
            Self::RemoveOwner(u) => {
                w.u8(6);
                u.encode(w);
            }
            Self::SetEncryption(on) => {
                w.u8(7).u8(u8::from(*on));
            }
            Self::NewEpoch(e) => {
                w.u8(8).raw(e.as_bytes());
            }
            Self::KeyChange(former) => {
                w.u8(9).raw(&former.to_bytes());
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            1 => {
                let kind = RoomKind::from_code(r.u8()?)?;
                let encrypted = flag(r, "encrypted flag")?;
                let history_shared = flag(r, "history flag")?;
                let count = r.u16()?;
                let mut members = BTreeSet::new();
                let mut last: Option<UserId> = None;
                for _ in 0..count {
                    let m = UserId::decode(r)?;
                    // Strictly ascending: one encoding per set, no duplicates.
                    if last.as_ref().is_some_and(|l| *l >= m) {
                        return Err(DecodeError::InvalidField("member order"));
                    }
                    last = Some(m.clone());
                    members.insert(m);
                }
                Self::Create(Create {
                    kind,
                    members,
                    encrypted,
                    history_shared,
                })
            }
            2 => Self::Invite(UserId::decode(r)?),
            3 => Self::Remove(UserId::decode(r)?),
            4 => Self::Leave,
            5 => Self::AddOwner(UserId::decode(r)?),
            6 => Self::RemoveOwner(UserId::decode(r)?),
            7 => Self::SetEncryption(flag(r, "encryption flag")?),
            8 => Self::NewEpoch(EpochId(r.array()?)),
            9 => Self::KeyChange(
                IdentityPublicKey::from_bytes(&r.array()?)
                    .map_err(|_| DecodeError::InvalidField("former identity key"))?,
            ),
            _ => return Err(DecodeError::InvalidField("action")),
        })
    }
}

/// A signed change to a room's state: the `seq`-th link of the room's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    room: RoomId,
    seq: u64,
    prev: [u8; 32],
    action: Action,
    actor: UserId,
    signature: [u8; SIGNATURE_LEN],
}

fn body(room: &RoomId, seq: u64, prev: &[u8; 32], action: &Action, actor: &UserId) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(VERSION);
    room.encode(&mut w);
    w.u64(seq).raw(prev);
    action.encode(&mut w);
    actor.encode(&mut w);
    w.finish()
}

/// Why a statement could not be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a creation statement lists more than 65,535 members")]
pub struct TooManyMembers;

impl Statement {
    /// Signs a statement as `actor` with `keys` (the actor's own keys).
    pub fn sign(
        room: &RoomId,
        seq: u64,
        prev: [u8; 32],
        action: Action,
        actor: &UserId,
        keys: &IdentityKeys,
    ) -> Result<Self, TooManyMembers> {
        if let Action::Create(c) = &action
            && c.members.len() > MAX_CREATE_MEMBERS
        {
            return Err(TooManyMembers);
        }
        let signature = keys.sign(STATEMENT_LABEL, &[&body(room, seq, &prev, &action, actor)]);
        Ok(Self {
            room: room.clone(),
            seq,
            prev,
            action,
            actor: actor.clone(),
            signature,
        })
    }

    /// The creation statement of a new room (sequence number 0).
    pub fn create(
        room: &RoomId,
        create: Create,
        actor: &UserId,
        keys: &IdentityKeys,
    ) -> Result<Self, TooManyMembers> {
        Self::sign(room, 0, GENESIS_PREV, Action::Create(create), actor, keys)
    }

    /// The statement that follows `head` in the same room.
    pub fn next(
        head: &Statement,
        action: Action,
        actor: &UserId,
        keys: &IdentityKeys,
    ) -> Result<Self, TooManyMembers> {
        let seq = head.seq.saturating_add(1);
        Self::sign(&head.room, seq, head.hash(), action, actor, keys)
    }

    /// Canonical encoding: body, then the 64-byte signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses a statement. Checks only the encoding, not the signature or the chain.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version(VERSION)?;
        let room = RoomId::decode(&mut r)?;
        let seq = r.u64()?;
        let prev = r.array()?;
        let action = Action::decode(&mut r)?;
        let actor = UserId::decode(&mut r)?;
        let signature = r.array()?;
        r.finish()?;
        Ok(Self {
            room,
            seq,
            prev,
            action,
            actor,
            signature,
        })
    }

    /// The bytes the signature covers (after its label).
    pub fn body(&self) -> Vec<u8> {
        body(&self.room, self.seq, &self.prev, &self.action, &self.actor)
    }

    /// SHA-256 of the full encoding, signature included: the next statement's `prev`.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }

    /// Checks the signature under the actor's identity key.
    pub fn verify_signature(&self, actor_key: &IdentityPublicKey) -> Result<(), SignatureError> {
        actor_key.verify(STATEMENT_LABEL, &[&self.body()], &self.signature)
    }

    /// The room the statement belongs to.
    pub fn room(&self) -> &RoomId {
        &self.room
    }

    /// Its position in the chain; 0 for the creation.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The hash of the statement before it (zeros for the creation).
    pub fn prev(&self) -> &[u8; 32] {
        &self.prev
    }

    /// What it changes.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// Who made and signed it.
    pub fn actor(&self) -> &UserId {
        &self.actor
    }

    /// The actor's signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }
}
