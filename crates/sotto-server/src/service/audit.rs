//! C10 audit: admins list every room, and the messages of any room with their metadata.
//! Content is shown only for plaintext messages of rooms that are not encrypted; other
//! messages show as encrypted, never with their ciphertext. Every audit read is logged
//! with the admin who made it (never with message content).

use super::rooms::RoomService;
use super::{Actor, ServiceError};
use crate::store::{AuditStore, MessageRecord, RoomStore};
use sotto_api::{AuditMessage, AuditMessagePage, AuditRoom, AuditRoomList, HistoryQuery};
use std::sync::Arc;

/// The admin audit.
pub struct AuditService {
    rooms: Arc<RoomService>,
    room_store: Arc<dyn RoomStore>,
    audit: Arc<dyn AuditStore>,
}

fn who(actor: &Actor) -> &str {
    match actor {
        Actor::User(p) => &p.user.id,
        Actor::Operator => "operator",
    }
}

/// The audit's view of a message in a room that is (`room_encrypted`) or is not encrypted.
fn audit_view(m: &MessageRecord, room_encrypted: bool) -> AuditMessage {
    let encrypted = room_encrypted || m.ciphertext.is_some();
    AuditMessage {
        id: m.id.clone(),
        room_id: m.room_id.clone(),
        seq: m.seq,
        version_seq: m.version_seq,
        sender_id: m.sender_id.clone(),
        text: if encrypted { None } else { m.text.clone() },
        encrypted,
        mentions: m.mentions.clone(),
        created_at: m.created_at,
        edited_at: m.edited_at,
        deleted: m.deleted,
    }
}

impl AuditService {
    /// Over the room service (for history paging) and the stores.
    pub fn new(
        rooms: Arc<RoomService>,
        room_store: Arc<dyn RoomStore>,
        audit: Arc<dyn AuditStore>,
    ) -> Self {
        Self {
            rooms,
            room_store,
            audit,
        }
    }

    /// Every room with its metadata (admins only).
    pub async fn rooms(&self, actor: &Actor) -> Result<AuditRoomList, ServiceError> {
        actor.require_admin()?;
        let rooms = self.audit.all_rooms().await?;
        tracing::info!(admin = who(actor), "audit: rooms listed");
        Ok(AuditRoomList {
            rooms: rooms
                .into_iter()
                .map(|(r, member_count)| AuditRoom {
                    id: r.id,
                    kind: r.kind,
                    private: r.private,
                    name: r.name,
                    topic: r.topic,
                    parent_id: r.parent_id,
                    encrypted: r.encrypted,
                    created_by: r.created_by,
                    created_at: r.created_at,
                    seq: r.seq,
                    member_count,
                })
                .collect(),
        })
    }

    /// A page of any room's messages, paged as history (admins only).
    pub async fn messages(
        &self,
        actor: &Actor,
        room_id: &str,
        q: HistoryQuery,
    ) -> Result<AuditMessagePage, ServiceError> {
        actor.require_admin()?;
        let room = self
            .room_store
            .room_by_id(room_id)
            .await?
            .ok_or(ServiceError::NotFound("room"))?;
        let (page, has_more) = self.rooms.page(room_id, &q).await?;
        tracing::info!(admin = who(actor), room_id, "audit: room messages read");
        Ok(AuditMessagePage {
            messages: page.iter().map(|m| audit_view(m, room.encrypted)).collect(),
            has_more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_only_for_plaintext_in_plaintext_rooms() {
        let m = MessageRecord {
            room_id: "r".into(),
            id: "m".into(),
            seq: 1,
            version_seq: 1,
            sender_id: "u".into(),
            text: Some("hello".into()),
            ciphertext: None,
            mentions: Vec::new(),
            content_hash: "h".into(),
            created_at: 1,
            edited_at: None,
            deleted: false,
        };
        let plain = audit_view(&m, false);
        assert_eq!(
            (plain.text.as_deref(), plain.encrypted),
            (Some("hello"), false)
        );
        // A plaintext message from before the room was encrypted shows no content either.
        let old = audit_view(&m, true);
        assert_eq!((old.text, old.encrypted), (None, true));
        let sealed = MessageRecord {
            text: None,
            ciphertext: Some("AAAA".into()),
            ..m
        };
        let v = audit_view(&sealed, false);
        assert_eq!((v.text, v.encrypted), (None, true));
    }
}
