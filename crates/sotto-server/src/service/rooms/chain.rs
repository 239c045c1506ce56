//! B11: the room state chain of encrypted rooms (docs/protocol.md §5).
//!
//! The server stores what members sign and writes nothing itself. A statement is checked
//! with `check_extends` against the stored head and the actor's published identity key,
//! then stored together with the change it signs in one transaction; the primary key on
//! (room, statement seq) is the compare-and-set, so of two statements extending the same
//! head only one is stored. Once a room has a chain, its membership, owners, encryption
//! and epochs change only through statements.

use super::{RoomService, encryptable, user_of};
use crate::service::{Actor, ServiceError, now_ms};
use crate::store::{NewStatement, RoomRecord, SignedChange, StoreError};
use base64::Engine;
use sotto_api::{Room, RoomKind, StatementList};
use sotto_crypto::chain::{Action, ChainError, RoomChain, RoomKind as ChainKind, Statement};
use sotto_crypto::{EnvelopeHeader, IdentityPublicKey, PublicBundle, RoomId};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The chain's kind for a server room with `members` people; `None` if it cannot be
/// encrypted.
fn chain_kind(room: &RoomRecord, members: usize) -> Option<ChainKind> {
    Some(match room.kind {
        RoomKind::Direct if members == 2 => ChainKind::DirectMessage,
        RoomKind::Direct => ChainKind::GroupDirectMessage,
        RoomKind::Channel if room.private => ChainKind::PrivateChannel,
        RoomKind::Team if room.private => ChainKind::PrivateTeam,
        RoomKind::Discussion if room.private => ChainKind::Discussion,
        _ => return None,
    })
}

fn refused(e: ChainError) -> ServiceError {
    match e {
        ChainError::BadSequence { .. } | ChainError::BadPrevHash | ChainError::CreateNotFirst => {
            ServiceError::Conflict(format!(
                "statement: the room's state chain has moved on ({e}); fetch it and retry"
            ))
        }
        e => ServiceError::InvalidInput(format!("statement: {e}")),
    }
}

impl RoomService {
    /// The room's stored chain, rebuilt without signatures (they were checked on arrival);
    /// `None` if it has none.
    pub(crate) async fn load_chain(
        &self,
        room_id: &str,
    ) -> Result<Option<RoomChain>, ServiceError> {
        let stored = self.e2ee.statements(room_id).await?;
        if stored.is_empty() {
            return Ok(None);
        }
        let corrupt = |e: String| ServiceError::Internal(format!("stored chain of {room_id}: {e}"));
        let room = RoomId::new(room_id).map_err(|e| corrupt(e.to_string()))?;
        let statements = stored
            .iter()
            .map(|b| Statement::decode(b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        RoomChain::from_stored(&room, statements)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// The user's published identity key, if they published keys.
    pub(crate) async fn identity_of(
        &self,
        user_id: &str,
    ) -> Result<Option<IdentityPublicKey>, ServiceError> {
        let Some(rec) = self.keys.bundle(user_id).await? else {
            return Ok(None);
        };
        let bundle = PublicBundle::decode(&rec.bytes)
            .map_err(|e| ServiceError::Internal(format!("stored bundle of {user_id}: {e}")))?;
        Ok(Some(*bundle.identity()))
    }

    /// Refuses a change made without a statement in a room that has a chain.
    pub(super) async fn unsigned_allowed(&self, room_id: &str) -> Result<(), ServiceError> {
        if self.e2ee.statements(room_id).await?.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::InvalidInput(
                "this encrypted room changes members, owners and encryption only with a \
                 signed statement: POST /api/v1/rooms/{id}/statements"
                    .into(),
            ))
        }
    }

    /// The room's chain (members only).
    pub async fn statements(
        &self,
        actor: &Actor,
        room_id: &str,
    ) -> Result<StatementList, ServiceError> {
        self.check_member(user_of(actor)?, room_id).await?;
        let stored = self.e2ee.statements(room_id).await?;
        Ok(StatementList {
            statements: stored.iter().map(|s| b64(s)).collect(),
        })
    }

    /// Checks and stores one statement signed by the caller, with the change it signs.
    pub async fn add_statement(
        &self,
        actor: &Actor,
        room_id: &str,
        statement: &str,
    ) -> Result<Room, ServiceError> {
        let me = user_of(actor)?;
        let (room, mine) = self.as_member(me, room_id).await?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(statement.as_bytes())
            .map_err(|_| ServiceError::InvalidInput("statement: standard base64".into()))?;
        let parsed = Statement::decode(&bytes)
            .map_err(|e| ServiceError::InvalidInput(format!("statement: {e}")))?;
        if parsed.actor().as_str() != me {
            return Err(ServiceError::InvalidInput(
                "statement: its actor must be you".into(),
            ));
        }
        if !encryptable(room.kind, room.private) {
            return Err(ServiceError::InvalidInput(
                "public channels, teams and discussions cannot be encrypted".into(),
            ));
        }
        let key = self.identity_of(me).await?.ok_or_else(|| {
            ServiceError::InvalidInput("statement: publish your keys first".into())
        })?;
        let chain = self.load_chain(room_id).await?;
        let rid = RoomId::new(room_id)
            .map_err(|e| ServiceError::Internal(format!("room id {room_id}: {e}")))?;
        let stmt = sotto_crypto::chain::check_extends(&rid, chain.as_ref(), &bytes, |u| {
            (u.as_str() == me).then_some(key)
        })
        .map_err(refused)?;
        let (change, new_epoch) = self.signed_change(&room, mine.owner, &stmt).await?;
        let events = self
            .e2ee
            .append_statement(
                room_id,
                NewStatement {
                    seq: stmt.seq(),
                    actor: me,
                    bytes: &bytes,
                    new_epoch,
                    at: now_ms(),
                },
                &change,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict => refused(ChainError::BadPrevHash),
                e => e.into(),
            })?;
        tracing::info!(room_id, seq = stmt.seq(), "room statement stored");
        for event in events {
            self.publish_event(event);
        }
        // A new member or a new epoch: someone may now lack the current key.
        if matches!(stmt.action(), Action::Invite(_) | Action::NewEpoch(_))
            && let Err(e) = self.request_missing_keys(room_id).await
        {
            tracing::warn!(room_id, error = %e, "asking for room keys failed");
        }
        self.get(actor, room_id).await
    }

    /// What the server does besides storing `stmt`, after its own rules (those the
    /// plain endpoints apply). The chain's rules were checked already.
    async fn signed_change(
        &self,
        room: &RoomRecord,
        owner: bool,
        stmt: &Statement,
    ) -> Result<(SignedChange, bool), ServiceError> {
        let direct = room.kind == RoomKind::Direct;
        let fixed = || {
            Err(ServiceError::InvalidInput(
                "a direct message has exactly its people and no owners".into(),
            ))
        };
        let change = match stmt.action() {
            Action::Create(create) => {
                if !direct && !owner {
                    return Err(ServiceError::Forbidden("only room owners may do this"));
                }
                let members = self.rooms.members(&room.id).await?;
                if chain_kind(room, members.len()) != Some(create.kind) {
                    return Err(ServiceError::InvalidInput(
                        "statement: the kind is not this room's".into(),
                    ));
                }
                let listed: Vec<&str> = create.members.iter().map(|u| u.as_str()).collect();
                let mut current: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
                current.sort_unstable();
                if listed != current {
                    return Err(ServiceError::InvalidInput(
                        "statement: the members are not the room's members".into(),
                    ));
                }
                if create.encrypted && !room.encrypted {
                    self.e2e_enabled().await?;
                }
                if create.encrypted == room.encrypted {
                    SignedChange::None
                } else {
                    SignedChange::SetEncrypted(create.encrypted)
                }
            }
            Action::Invite(u) => {
                if direct {
                    return fixed();
                }
                SignedChange::AddMember(self.existing_user(u.as_str()).await?)
            }
            Action::Remove(u) => {
                if direct {
                    return fixed();
                }
                SignedChange::RemoveMember(u.as_str().to_owned())
            }
            Action::Leave => {
                if direct {
                    return fixed();
                }
                SignedChange::RemoveMember(stmt.actor().as_str().to_owned())
            }
            Action::AddOwner(u) | Action::RemoveOwner(u) => {
                if direct {
                    return fixed();
                }
                let on = matches!(stmt.action(), Action::AddOwner(_));
                SignedChange::SetOwner(u.as_str().to_owned(), on)
            }
            Action::SetEncryption(on) => {
                if *on {
                    self.e2e_enabled().await?;
                }
                SignedChange::SetEncrypted(*on)
            }
            Action::NewEpoch(_) => return Ok((SignedChange::None, true)),
            // Only declares which key signed the actor's earlier statements.
            Action::KeyChange(_) => SignedChange::None,
        };
        Ok((change, false))
    }

    /// The epoch checks of an envelope in an encrypted room: the room has a chain, the
    /// envelope is under the current epoch, no rotation is due (a member left or was
    /// removed, or a member's keys were reset, since that epoch), and the chain lets the
    /// sender hold it.
    pub(super) async fn check_epoch(
        &self,
        room_id: &str,
        header: &EnvelopeHeader,
    ) -> Result<(), ServiceError> {
        let chain = self.load_chain(room_id).await?.ok_or_else(|| {
            ServiceError::Conflict(
                "this encrypted room has no state chain yet; its creation statement comes first"
                    .into(),
            )
        })?;
        let state = chain.state();
        if state.current_epoch() != Some(header.epoch) {
            return Err(ServiceError::Conflict(
                "ciphertext: not under the room's current epoch".into(),
            ));
        }
        if state.rotation_due() || self.e2ee.rotation_marked(room_id).await? {
            return Err(ServiceError::Conflict(
                "ciphertext: the room needs a new epoch before new messages".into(),
            ));
        }
        if !state.may_hold_epoch(&header.epoch, &header.sender) {
            return Err(ServiceError::Forbidden(
                "the room's state chain does not let you hold this epoch",
            ));
        }
        Ok(())
    }
}
