//! The room state a verified chain describes.

use super::statement::{Create, RoomKind};
use crate::identity::IdentityPublicKey;
use crate::ids::{EpochId, RoomId, UserId};
use std::collections::{BTreeMap, BTreeSet};

/// What a verified chain says about its room at one point: who is a member, who owns
/// it, whether it is encrypted, and which epochs exist and who may hold their keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    pub(super) room: RoomId,
    pub(super) kind: RoomKind,
    pub(super) history_shared: bool,
    pub(super) members: BTreeSet<UserId>,
    pub(super) owners: BTreeSet<UserId>,
    pub(super) encrypted: bool,
    pub(super) epochs: Vec<EpochId>,
    pub(super) epoch_members: BTreeMap<EpochId, BTreeSet<UserId>>,
    /// The sequence number of the statement that declared each epoch.
    pub(super) epoch_seqs: BTreeMap<EpochId, u64>,
    pub(super) key_changes: Vec<KeyChangeRecord>,
    pub(super) rotation_pending: bool,
    pub(super) seq: u64,
    pub(super) head_hash: [u8; 32],
}

impl RoomState {
    pub(super) fn genesis(room: &RoomId, creator: &UserId, c: &Create, hash: [u8; 32]) -> Self {
        Self {
            room: room.clone(),
            kind: c.kind,
            history_shared: c.history_shared,
            members: c.members.clone(),
            owners: BTreeSet::from([creator.clone()]),
            encrypted: c.encrypted,
            epochs: Vec::new(),
            epoch_members: BTreeMap::new(),
            epoch_seqs: BTreeMap::new(),
            key_changes: Vec::new(),
            rotation_pending: false,
            seq: 0,
            head_hash: hash,
        }
    }

    /// The room.
    pub fn room(&self) -> &RoomId {
        &self.room
    }

    /// The room's kind.
    pub fn kind(&self) -> RoomKind {
        self.kind
    }

    /// Whether members receive the keys of epochs from before they joined.
    pub fn history_shared(&self) -> bool {
        self.history_shared
    }

    /// The members the chain authorizes.
    pub fn members(&self) -> &BTreeSet<UserId> {
        &self.members
    }

    /// Whether `user` is an authorized member.
    pub fn is_member(&self, user: &UserId) -> bool {
        self.members.contains(user)
    }

    /// The room's owners (always members).
    pub fn owners(&self) -> &BTreeSet<UserId> {
        &self.owners
    }

    /// Whether `user` is an owner.
    pub fn is_owner(&self, user: &UserId) -> bool {
        self.owners.contains(user)
    }

    /// Whether messages must be encrypted.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// The latest declared epoch, the one new messages use.
    pub fn current_epoch(&self) -> Option<EpochId> {
        self.epochs.last().copied()
    }

    /// Every declared epoch, oldest first.
    pub fn epochs(&self) -> &[EpochId] {
        &self.epochs
    }

    /// Whether a new epoch must be declared before the next encrypted message: the room
    /// is encrypted and has no epoch yet, or since the current epoch was declared a
    /// member left or was removed, or (in a room that does not share history) joined.
    pub fn rotation_due(&self) -> bool {
        self.encrypted && (self.epochs.is_empty() || self.rotation_pending)
    }

    /// The holders of `epoch`: the members when it was declared and, in a room that
    /// shares history, everyone invited while it was current. They legitimately hold
    /// its key and may send under it. `None` if the chain
    /// never declared `epoch`.
    pub fn members_at_epoch(&self, epoch: &EpochId) -> Option<&BTreeSet<UserId>> {
        self.epoch_members.get(epoch)
    }

    /// Whether `user` may hold, receive and hand on the key of `epoch`: a member while it
    /// was current, or, in a room that shares history, a current member. `false` for an
    /// undeclared epoch.
    pub fn may_hold_epoch(&self, epoch: &EpochId, user: &UserId) -> bool {
        match self.epoch_members.get(epoch) {
            None => false,
            Some(set) => set.contains(user) || (self.history_shared && self.members.contains(user)),
        }
    }

    /// Every `KeyChange` statement so far, oldest first.
    pub fn key_changes(&self) -> &[KeyChangeRecord] {
        &self.key_changes
    }

    /// The identity keys `user` declared as former by a `KeyChange` made after `epoch`
    /// was declared, oldest first: what `user` may have signed, before that change,
    /// under `epoch` (its messages and the room-key boxes it handed on). Empty for an
    /// undeclared epoch.
    pub fn former_keys_since_epoch(
        &self,
        user: &UserId,
        epoch: &EpochId,
    ) -> Vec<IdentityPublicKey> {
        let Some(declared) = self.epoch_seqs.get(epoch) else {
            return Vec::new();
        };
        self.key_changes
            .iter()
            .filter(|k| k.seq > *declared && k.user == *user)
            .map(|k| k.former)
            .collect()
    }

    /// The sequence number of the last statement applied.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The hash of the last statement applied: the next statement's `prev`.
    pub fn head_hash(&self) -> &[u8; 32] {
        &self.head_hash
    }

    /// Compares the member list the server shows with the chain's authorized set.
    pub fn compare_members<'a>(
        &self,
        server_list: impl IntoIterator<Item = &'a UserId>,
    ) -> MemberComparison {
        let listed: BTreeSet<UserId> = server_list.into_iter().cloned().collect();
        MemberComparison {
            verified: listed.intersection(&self.members).cloned().collect(),
            not_verified_by_room: listed.difference(&self.members).cloned().collect(),
            not_listed_by_server: self.members.difference(&listed).cloned().collect(),
        }
    }
}

/// A `KeyChange` statement: before `seq`, `user` signed under `former`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChangeRecord {
    /// The statement's sequence number.
    pub seq: u64,
    /// Whose key changed.
    pub user: UserId,
    /// The key the user signed under before this statement.
    pub former: IdentityPublicKey,
}

/// How the server's member list for a room differs from the room's own chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberComparison {
    /// Listed by the server and authorized by the chain.
    pub verified: BTreeSet<UserId>,
    /// Listed by the server but not authorized by the chain: shown as "not verified by
    /// the room" and given no key.
    pub not_verified_by_room: BTreeSet<UserId>,
    /// Authorized by the chain but missing from the server's list.
    pub not_listed_by_server: BTreeSet<UserId>,
}
