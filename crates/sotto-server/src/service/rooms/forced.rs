//! Membership an administrator forces, in any room but a DM, encrypted ones included.
//!
//! It goes around the room's rules (owners, invitations) and, in an encrypted room,
//! around its signed state chain, which stays as its members signed it: a member forced
//! in is not in the chain, so clients seal them no key and show them as added by an
//! administrator; a member forced out is still in the chain until an owner signs their
//! removal. Who forced it is kept on the membership and in the logged event. The admin
//! check is the caller's (`AdminService`).

use super::{RoomService, member_view};
use crate::service::ServiceError;
use sotto_api::{MemberList, RoomKind};
use std::collections::BTreeMap;

impl RoomService {
    /// The room's members, each with who forced them in, if anyone did. No access check.
    pub(crate) async fn member_list(&self, room_id: &str) -> Result<MemberList, ServiceError> {
        let members = self.rooms.members(room_id).await?;
        let forced: BTreeMap<String, String> = self
            .rooms
            .forced_members(room_id)
            .await?
            .into_iter()
            .collect();
        Ok(MemberList {
            members: members
                .iter()
                .map(|m| sotto_api::Member {
                    forced_by: forced.get(&m.user_id).cloned(),
                    ..member_view(m)
                })
                .collect(),
        })
    }

    /// Any room but a DM; `NotFound` if there is no such room.
    async fn forceable(&self, room_id: &str) -> Result<(), ServiceError> {
        let room = self
            .rooms
            .room_by_id(room_id)
            .await?
            .ok_or(ServiceError::NotFound("room"))?;
        if room.kind == RoomKind::Direct {
            return Err(ServiceError::InvalidInput(
                "a direct message has exactly its people; an administrator does not change them"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Adds `user_id` to the room, forced by `by`; adding a member again changes nothing.
    /// The members after.
    pub(crate) async fn force_add(
        &self,
        by: &str,
        room_id: &str,
        user_id: &str,
    ) -> Result<MemberList, ServiceError> {
        self.forceable(room_id).await?;
        let m = self.existing_user(user_id).await?;
        if let Some(event) = self.rooms.force_add_member(room_id, &m, by).await? {
            self.publish_event(event);
        }
        self.member_list(room_id).await
    }

    /// Removes `user_id` from the room, forced by `by`. The room keeps an owner: its last
    /// owner is not removed while others remain (`InvalidInput`).
    pub(crate) async fn force_remove(
        &self,
        by: &str,
        room_id: &str,
        user_id: &str,
    ) -> Result<(), ServiceError> {
        self.forceable(room_id).await?;
        let event = self
            .rooms
            .force_remove_member(room_id, user_id, by)
            .await?
            .ok_or(ServiceError::NotFound("member"))?;
        self.publish_event(event);
        Ok(())
    }
}
