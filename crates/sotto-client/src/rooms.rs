//! Rooms and membership (C3, E4–E6, B11): listing and creating rooms, and changing
//! members and encryption. In a room with a state chain every change is a signed
//! statement; without one, the plain endpoints.

use crate::api::seg;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::roomkeys::parse_room;
use reqwest::Method;
use sotto_api::rooms::{
    CreateRoomRequest, InviteRequest, MarkReadRequest, MemberList, ReadMarker, Room,
    RoomKind as ApiKind, RoomList, SetEncryptionRequest,
};
use sotto_crypto::chain::{Action, Create, RoomKind, Statement};
use sotto_crypto::{RoomId, UserId};
use std::collections::BTreeSet;

/// What kind of named room to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewRoomKind {
    /// A channel.
    Channel,
    /// A team.
    Team,
}

/// A named room to create with [`Client::create_room`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    /// Channel or team.
    pub kind: NewRoomKind,
    /// Its name.
    pub name: String,
    /// Members only (encrypted rooms always are).
    pub private: bool,
    /// End-to-end encrypted.
    pub encrypted: bool,
    /// The first members besides the creator.
    pub members: Vec<UserId>,
}

/// One member of a room as this client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// The member.
    pub user_id: String,
    /// Their name, when the server lists them.
    pub username: Option<String>,
    /// Whether the server's list says owner (the chain's owners are
    /// [`RoomView::chain_owners`]).
    pub owner: bool,
    /// Whether the room's verified chain authorizes this member (always true in a room
    /// without a chain). Members that are not get no room key.
    pub verified_by_room: bool,
    /// Whether the server lists this member; `false` for a member the chain has but the
    /// server does not show.
    pub listed_by_server: bool,
    /// The administrator the server says added this member without the room's say.
    pub forced_by: Option<String>,
}

/// Why a member's place in a room is not simply vouched for by the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberNote {
    /// An administrator added them without a signed statement: the room's chain does not
    /// vouch for them, so they get no room key.
    AddedByAdministrator,
    /// The server lists them but the chain does not vouch for them, and the server gives
    /// no reason: no room key.
    NotVerifiedByRoom,
    /// The chain still lists them but the server does not: an administrator removed them
    /// (on an honest server nothing else removes a member without a signed statement).
    /// Until an owner signs their removal they remain in the room's signed state.
    RemovedByAdministrator,
}

impl MemberNote {
    /// The words a client shows.
    pub fn label(self) -> &'static str {
        match self {
            Self::AddedByAdministrator => "Added by an administrator — not verified by the room",
            Self::NotVerifiedByRoom => "Not verified by the room",
            Self::RemovedByAdministrator => {
                "Removed by an administrator — still in the room's signed state"
            }
        }
    }
}

impl MemberView {
    /// Why this member is not simply vouched for by the room; `None` when they are.
    pub fn note(&self) -> Option<MemberNote> {
        if !self.listed_by_server {
            Some(MemberNote::RemovedByAdministrator)
        } else if self.verified_by_room {
            None
        } else if self.forced_by.is_some() {
            Some(MemberNote::AddedByAdministrator)
        } else {
            Some(MemberNote::NotVerifiedByRoom)
        }
    }
}

/// A room with its members checked against its state chain.
#[derive(Debug, Clone)]
pub struct RoomView {
    /// The server's record of the room.
    pub room: Room,
    /// Whether messages are encrypted: the chain's flag when there is a chain, whatever
    /// the server's record says.
    pub encrypted: bool,
    /// Whether the room has a verified state chain.
    pub has_chain: bool,
    /// The chain's owners (empty without a chain).
    pub chain_owners: Vec<UserId>,
    /// The server's members, then members only the chain has.
    pub members: Vec<MemberView>,
}

impl RoomView {
    /// Members the server lists but the chain does not authorize.
    pub fn not_verified_by_room(&self) -> impl Iterator<Item = &MemberView> {
        self.members.iter().filter(|m| !m.verified_by_room)
    }
}

impl Client {
    /// The rooms this user is in, as the server lists them.
    pub async fn rooms(&self) -> Result<Vec<Room>> {
        let list: RoomList = self.api().get("/api/v1/rooms").await?;
        Ok(list.rooms)
    }

    /// Moves this user's read marker in `room` forward to `seq` (it never moves back; a
    /// seq beyond the room's latest is taken as the latest); the marker after.
    pub async fn mark_read(&self, room: &RoomId, seq: i64) -> Result<i64> {
        let marker: ReadMarker = self
            .api()
            .send(
                Method::POST,
                &format!("/api/v1/rooms/{}/read", seg(room.as_str())),
                &MarkReadRequest { seq },
            )
            .await?;
        Ok(marker.last_read_seq)
    }

    /// One room, its members compared with its verified state chain (B11): members the
    /// server lists but the chain does not are not verified by the room; members the
    /// chain has that the server does not list are reported too.
    pub async fn room(&self, id: &RoomId) -> Result<RoomView> {
        let room: Room = self
            .api()
            .get(&format!("/api/v1/rooms/{}", seg(id.as_str())))
            .await?;
        let chain = self.room_chain(id).await?;
        let list = self.member_list(id).await?;
        let mut members: Vec<MemberView> = list
            .members
            .iter()
            .map(|m| MemberView {
                user_id: m.user_id.clone(),
                username: Some(m.username.clone()),
                owner: m.owner,
                verified_by_room: match &chain {
                    None => true,
                    Some(c) => {
                        UserId::new(m.user_id.as_str()).is_ok_and(|u| c.state().is_member(&u))
                    }
                },
                listed_by_server: true,
                forced_by: m.forced_by.clone(),
            })
            .collect();
        if let Some(c) = &chain {
            let listed: BTreeSet<&str> = list.members.iter().map(|m| m.user_id.as_str()).collect();
            for u in c.state().members() {
                if !listed.contains(u.as_str()) {
                    members.push(MemberView {
                        user_id: u.to_string(),
                        username: self.state().names.get(u.as_str()).cloned(),
                        owner: c.state().is_owner(u),
                        verified_by_room: true,
                        listed_by_server: false,
                        forced_by: None,
                    });
                }
            }
        }
        Ok(RoomView {
            encrypted: chain
                .as_ref()
                .map_or(room.encrypted, |c| c.state().encrypted()),
            has_chain: chain.is_some(),
            chain_owners: chain
                .as_ref()
                .map(|c| c.state().owners().iter().cloned().collect())
                .unwrap_or_default(),
            room,
            members,
        })
    }

    /// Creates a channel or team. An encrypted one gets its creation statement and its
    /// first epoch right away, its key sealed to every member with published keys.
    pub async fn create_room(&self, new: NewRoom) -> Result<Room> {
        if new.encrypted {
            self.keys()?;
        }
        let req = CreateRoomRequest {
            kind: match new.kind {
                NewRoomKind::Channel => ApiKind::Channel,
                NewRoomKind::Team => ApiKind::Team,
            },
            name: Some(new.name),
            topic: None,
            private: Some(new.private || new.encrypted),
            parent_id: None,
            members: new.members.iter().map(|u| u.to_string()).collect(),
            encrypted: Some(new.encrypted),
        };
        self.create(req).await
    }

    /// Starts a discussion in the channel or team `parent` (its first member is the
    /// creator). An encrypted discussion is members-only.
    pub async fn create_discussion(
        &self,
        parent: &RoomId,
        name: &str,
        encrypted: bool,
    ) -> Result<Room> {
        if encrypted {
            self.keys()?;
        }
        let req = CreateRoomRequest {
            kind: ApiKind::Discussion,
            name: Some(name.to_owned()),
            topic: None,
            private: encrypted.then_some(true),
            parent_id: Some(parent.to_string()),
            members: Vec::new(),
            encrypted: Some(encrypted),
        };
        self.create(req).await
    }

    /// Opens the direct message with `people` (this user added), creating it if needed.
    /// An existing one is returned as it is, encrypted or not.
    pub async fn open_dm(&self, people: &[UserId], encrypted: bool) -> Result<Room> {
        if encrypted {
            self.keys()?;
        }
        let req = CreateRoomRequest {
            kind: ApiKind::Direct,
            name: None,
            topic: None,
            private: None,
            parent_id: None,
            members: people.iter().map(|u| u.to_string()).collect(),
            encrypted: Some(encrypted),
        };
        self.create(req).await
    }

    /// Adds `user` to `room`: an `Invite` statement in a room with a chain (the new
    /// member then receives the keys from whoever holds them), else the plain endpoint.
    pub async fn invite(&self, room: &RoomId, user: &UserId) -> Result<()> {
        if self.room_chain(room).await?.is_some() {
            self.add_statement(room, |_| Ok(Action::Invite(user.clone())))
                .await?;
            // Hand the keys on now rather than wait for the server's request.
            match self.distribute_room_keys(room).await {
                Ok(_) | Err(Error::Api { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        } else {
            let req = InviteRequest {
                user_id: user.to_string(),
            };
            self.api()
                .send_empty(
                    Method::POST,
                    &format!("/api/v1/rooms/{}/members", seg(room.as_str())),
                    Some(&req),
                )
                .await
        }
    }

    /// Removes `user` from `room`. In a room with a chain this is a `Remove` statement,
    /// and the next message declares a new epoch that the removed member never gets.
    pub async fn remove(&self, room: &RoomId, user: &UserId) -> Result<()> {
        if self.room_chain(room).await?.is_some() {
            self.add_statement(room, |_| Ok(Action::Remove(user.clone())))
                .await
                .map(drop)
        } else {
            self.api()
                .send_empty::<()>(
                    Method::DELETE,
                    &format!(
                        "/api/v1/rooms/{}/members/{}",
                        seg(room.as_str()),
                        seg(user.as_str())
                    ),
                    None,
                )
                .await
        }
    }

    /// Leaves `room` (a `Leave` statement in a room with a chain); the room's keys
    /// rotate at the next message.
    pub async fn leave(&self, room: &RoomId) -> Result<()> {
        if self.room_chain(room).await?.is_some() {
            match self.add_statement(room, |_| Ok(Action::Leave)).await {
                Ok(_) => {}
                // The server answers a stored `Leave` with the room as the caller now
                // sees it: a private room it left is `not_found`. Check that it is gone.
                Err(e) if e.code() == Some("not_found") => {
                    if self.rooms().await?.iter().any(|r| r.id == room.as_str()) {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        } else {
            self.api()
                .send_empty::<()>(
                    Method::POST,
                    &format!("/api/v1/rooms/{}/leave", seg(room.as_str())),
                    None,
                )
                .await?;
        }
        self.state().chains.remove(room);
        self.state().epoch_keys.remove(room);
        Ok(())
    }

    /// As an admin, adds `user` to any room but a DM without the room's say; in an
    /// encrypted room the signed chain is left as it is, so members' clients show them
    /// as added by an administrator and seal them no key. The members after.
    pub async fn admin_add_member(&self, room: &RoomId, user: &UserId) -> Result<MemberList> {
        self.api()
            .send(
                Method::POST,
                &format!("/api/v1/admin/rooms/{}/members", seg(room.as_str())),
                &InviteRequest {
                    user_id: user.to_string(),
                },
            )
            .await
    }

    /// As an admin, removes `user` from any room but a DM without the room's say; an
    /// encrypted room's chain still lists them until an owner signs their removal.
    pub async fn admin_remove_member(&self, room: &RoomId, user: &UserId) -> Result<()> {
        self.api()
            .send_empty::<()>(
                Method::DELETE,
                &format!(
                    "/api/v1/admin/rooms/{}/members/{}",
                    seg(room.as_str()),
                    seg(user.as_str())
                ),
                None,
            )
            .await
    }

    /// Turns end-to-end encryption on or off. In a room with a chain this is a
    /// `SetEncryption` statement; a room without one that is turned on gets its creation
    /// statement and first epoch.
    pub async fn set_encryption(&self, room: &RoomId, on: bool) -> Result<()> {
        if self.room_chain(room).await?.is_some() {
            self.add_statement(room, |_| Ok(Action::SetEncryption(on)))
                .await?;
            return Ok(());
        }
        if on {
            self.keys()?;
        }
        let req = SetEncryptionRequest {
            on,
            statement: None,
        };
        self.api()
            .send_empty(
                Method::PUT,
                &format!("/api/v1/rooms/{}/encryption", seg(room.as_str())),
                Some(&req),
            )
            .await?;
        if on {
            let record: Room = self
                .api()
                .get(&format!("/api/v1/rooms/{}", seg(room.as_str())))
                .await?;
            self.start_chain(&record).await?;
        }
        Ok(())
    }

    /// `POST /rooms`, then the chain of a new encrypted room.
    async fn create(&self, req: CreateRoomRequest) -> Result<Room> {
        let room: Room = self.api().send(Method::POST, "/api/v1/rooms", &req).await?;
        if room.encrypted {
            self.start_chain(&room).await?;
        }
        Ok(room)
    }

    /// Signs and stores the creation statement of an encrypted room that has no chain
    /// yet (listing the server's members), then declares the first epoch.
    async fn start_chain(&self, room: &Room) -> Result<()> {
        let id = parse_room(&room.id)?;
        if self.room_chain(&id).await?.is_some() {
            return Ok(());
        }
        let keys = self.keys()?;
        let members = self.member_ids(&id).await?;
        let kind = match room.kind {
            ApiKind::Direct if members.len() == 2 => RoomKind::DirectMessage,
            ApiKind::Direct => RoomKind::GroupDirectMessage,
            ApiKind::Channel => RoomKind::PrivateChannel,
            ApiKind::Team => RoomKind::PrivateTeam,
            ApiKind::Discussion => RoomKind::Discussion,
        };
        let create = Create {
            kind,
            members,
            encrypted: true,
            history_shared: true,
        };
        let stmt = Statement::create(&id, create, self.user_id(), &keys)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        match self.post_statement(&id, &stmt).await {
            Ok(()) => {}
            // Someone else (the other person of a DM) started it first: use theirs.
            Err(e) if e.code() == Some("conflict") => {}
            Err(e) => return Err(e),
        }
        let chain = self.required_chain(&id).await?;
        if chain.state().rotation_due() {
            self.rotate_key(&id).await?;
        }
        Ok(())
    }
}
