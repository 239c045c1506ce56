//! C10 audit: admins list every room, and the messages of any room with their metadata.
//! Content is shown only where the server can read it: plaintext messages. Encrypted
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

fn audit_view(m: &MessageRecord) -> AuditMessage {
    AuditMessage {
        id: m.id.clone(),
        room_id: m.room_id.clone(),
        seq: m.seq,
        version_seq: m.version_seq,
        sender_id: m.sender_id.clone(),
        text: m.text.clone(),
        encrypted: m.ciphertext.is_some(),
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
        if self.room_store.room_by_id(room_id).await?.is_none() {
            return Err(ServiceError::NotFound("room"));
        }
        let (page, has_more) = self.rooms.page(room_id, &q).await?;
        tracing::info!(admin = who(actor), room_id, "audit: room messages read");
        Ok(AuditMessagePage {
            messages: page
                .iter()
                .map(|m| {
                    let mut v = audit_view(m);
                    // Never ciphertext; and no plaintext field for an encrypted message.
                    if v.encrypted {
                        v.text = None;
                    }
                    v
                })
                .collect(),
            has_more,
        })
    }
}
