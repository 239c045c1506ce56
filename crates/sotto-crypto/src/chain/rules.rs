//! The room rules: who may make which change, checked before a statement is applied.

use super::ChainError;
use super::state::{KeyChangeRecord, RoomState};
use super::statement::{Action, Create, RoomKind, Statement};
use crate::ids::UserId;

/// Checks a creation statement's content.
pub(super) fn check_create(actor: &UserId, c: &Create) -> Result<(), ChainError> {
    if !c.members.contains(actor) {
        return Err(ChainError::CreatorNotAMember);
    }
    if c.kind == RoomKind::DirectMessage && c.members.len() != 2 {
        return Err(ChainError::DirectMessageNeedsTwo);
    }
    Ok(())
}

/// Checks that `stmt`'s actor may make its change in `state`. The link (room, sequence
/// number, previous hash) and the signature are checked before this.
pub(super) fn check(state: &RoomState, stmt: &Statement) -> Result<(), ChainError> {
    let actor = stmt.actor();
    if !state.is_member(actor) {
        return Err(ChainError::NotAMember);
    }
    let dm = state.kind == RoomKind::DirectMessage;
    let owner = state.is_owner(actor);
    let need_owner = |ok_for_any_member: bool| {
        if ok_for_any_member || owner {
            Ok(())
        } else {
            Err(ChainError::NotAnOwner)
        }
    };
    match stmt.action() {
        Action::Create(_) => Err(ChainError::CreateNotFirst),
        Action::Invite(u) => {
            if dm {
                return Err(ChainError::NotAllowedInDirectMessage);
            }
            need_owner(state.kind == RoomKind::GroupDirectMessage)?;
            if state.is_member(u) {
                return Err(ChainError::AlreadyMember);
            }
            Ok(())
        }
        Action::Remove(u) => {
            if dm {
                return Err(ChainError::NotAllowedInDirectMessage);
            }
            need_owner(false)?;
            if u == actor {
                return Err(ChainError::RemoveSelf);
            }
            if !state.is_member(u) {
                return Err(ChainError::SubjectNotAMember);
            }
            Ok(())
        }
        Action::Leave => {
            if dm {
                return Err(ChainError::NotAllowedInDirectMessage);
            }
            if owner && state.owners.len() == 1 && state.members.len() > 1 {
                return Err(ChainError::LastOwner);
            }
            Ok(())
        }
        Action::AddOwner(u) => {
            if dm {
                return Err(ChainError::NotAllowedInDirectMessage);
            }
            need_owner(false)?;
            if !state.is_member(u) {
                return Err(ChainError::SubjectNotAMember);
            }
            if state.is_owner(u) {
                return Err(ChainError::AlreadyOwner);
            }
            Ok(())
        }
        Action::RemoveOwner(u) => {
            if dm {
                return Err(ChainError::NotAllowedInDirectMessage);
            }
            need_owner(false)?;
            if !state.is_owner(u) {
                return Err(ChainError::SubjectNotAnOwner);
            }
            if state.owners.len() == 1 {
                return Err(ChainError::LastOwner);
            }
            Ok(())
        }
        Action::SetEncryption(on) => {
            need_owner(state.kind.is_direct())?;
            if *on == state.encrypted {
                return Err(ChainError::Unchanged);
            }
            Ok(())
        }
        Action::NewEpoch(e) => {
            if !state.encrypted {
                return Err(ChainError::EncryptionOff);
            }
            if state.epoch_members.contains_key(e) {
                return Err(ChainError::DuplicateEpoch);
            }
            Ok(())
        }
        // That the declared key is not the one signing is checked with the signature.
        Action::KeyChange(former) => {
            let again = state
                .key_changes
                .iter()
                .any(|k| k.user == *actor && k.former == *former);
            if again {
                return Err(ChainError::DuplicateKeyChange);
            }
            Ok(())
        }
    }
}

/// Applies a statement that passed [`check`].
pub(super) fn apply(state: &mut RoomState, stmt: &Statement, hash: [u8; 32]) {
    match stmt.action() {
        Action::Create(_) => {}
        Action::Invite(u) => {
            state.members.insert(u.clone());
            if !state.history_shared {
                // The newcomer must not read what was sent before it joined: it gets
                // no key of the current epoch, and the next sender starts a new one.
                state.rotation_pending = true;
            } else if let Some(set) = state
                .epochs
                .last()
                .and_then(|e| state.epoch_members.get_mut(e))
            {
                set.insert(u.clone());
            }
        }
        Action::Remove(u) => remove(state, u),
        Action::Leave => remove(state, stmt.actor()),
        Action::AddOwner(u) => {
            state.owners.insert(u.clone());
        }
        Action::RemoveOwner(u) => {
            state.owners.remove(u);
        }
        Action::SetEncryption(on) => state.encrypted = *on,
        Action::NewEpoch(e) => {
            state.epochs.push(*e);
            state.epoch_members.insert(*e, state.members.clone());
            state.epoch_seqs.insert(*e, stmt.seq());
            state.rotation_pending = false;
        }
        Action::KeyChange(former) => state.key_changes.push(KeyChangeRecord {
            seq: stmt.seq(),
            user: stmt.actor().clone(),
            former: *former,
        }),
    }
    state.seq = stmt.seq();
    state.head_hash = hash;
}

fn remove(state: &mut RoomState, u: &UserId) {
    state.members.remove(u);
    state.owners.remove(u);
    state.rotation_pending = true;
}
