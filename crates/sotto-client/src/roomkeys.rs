//! Room keys (E13, B3; docs/protocol.md §6): opening the boxes sealed to this user
//! against the verified chain, declaring new epochs when rotation is due, and sealing
//! epoch keys to the members the chain authorizes, never to anyone else.
//!
//! Opened epoch keys stay in memory only; every session reads its own copies (boxes
//! sealed to itself) from the server after unlocking.

use crate::api::seg;
use crate::client::{Client, base64, unbase64};
use crate::error::{Error, Result};
use crate::events::ClientEvent;
use reqwest::Method;
use sotto_api::e2ee::{RoomKeyState, RoomKeyUpload, RoomKeyUploaded};
use sotto_api::rooms::MemberList;
use sotto_crypto::chain::{Action, RoomChain};
use sotto_crypto::roomkey::{RoomKeyBox, RoomKeyError};
use sotto_crypto::{EpochId, EpochKey, PublicBundle, RoomId, UserId, os_rng};
use std::collections::BTreeSet;

/// A room's key state as this client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomKeys {
    /// The epoch new messages use, if one is declared.
    pub current_epoch: Option<EpochId>,
    /// A new epoch must be declared before the next message (by the chain, or because
    /// the server marked a member's key reset).
    pub rotation_due: bool,
    /// This user has no key of the current epoch yet: show "waiting for the room key".
    pub waiting: bool,
    /// Members the chain allows who have published keys but no key of the current epoch.
    pub lacking: Vec<UserId>,
    /// The epochs whose key is open here.
    pub held: Vec<EpochId>,
}

impl Client {
    /// Fetches this user's room-key boxes of `room`, opens the new ones against the
    /// verified chain (a box that fails a check is left unused) and reports the room's
    /// key state.
    pub async fn room_keys(&self, room: &RoomId) -> Result<RoomKeys> {
        let chain = self.required_chain(room).await?;
        let answer = self.load_room_keys(room, &chain).await?;
        Ok(self.key_view(room, &chain, &answer))
    }

    /// Declares a new epoch (a signed `NewEpoch` statement) and seals its key to every
    /// member the chain authorizes whose published key matches the pin, and to this user
    /// (the self-copy). Returns the new epoch.
    pub async fn rotate_key(&self, room: &RoomId) -> Result<EpochId> {
        let key = EpochKey::generate(&mut os_rng());
        let epoch = key.epoch();
        let chain = self
            .add_statement(room, |_| Ok(Action::NewEpoch(epoch)))
            .await?;
        self.remember_key(room, key.clone());
        let others: BTreeSet<UserId> = chain
            .state()
            .members()
            .iter()
            .filter(|u| *u != self.user_id())
            .cloned()
            .collect();
        self.seal_and_upload(room, &chain, &[key], &others, true)
            .await?;
        Ok(epoch)
    }

    /// Seals the keys this client holds to the members the server says lack the current
    /// epoch, if the chain authorizes them and their key matches the pin (members not
    /// verified by the room get nothing). Every held epoch a member may hold is sealed, so
    /// a late joiner, or a member whose keys were reset, can read the room's history.
    /// Returns how many boxes the server stored.
    pub async fn distribute_room_keys(&self, room: &RoomId) -> Result<u32> {
        let chain = self.required_chain(room).await?;
        let answer = self.load_room_keys(room, &chain).await?;
        let lacking: BTreeSet<UserId> = answer
            .lacking
            .iter()
            .filter_map(|u| UserId::new(u.as_str()).ok())
            .filter(|u| u != self.user_id())
            .collect();
        self.give_held_keys(room, &chain, &lacking).await
    }

    /// Answers a `room_key_request` notice: seals the requested epoch's key to the
    /// listed members, with the checks of [`Client::distribute_room_keys`]. The server
    /// asks once per epoch a member lacks, so a member whose keys were reset regains
    /// every epoch, not only the current one. Returns how many boxes the server stored
    /// (0 when this client does not hold the epoch).
    pub async fn handle_key_request(
        &self,
        room_id: &str,
        epoch_id: &str,
        user_ids: &[String],
    ) -> Result<u32> {
        let room = parse_room(room_id)?;
        let epoch = EpochId::from_hex(epoch_id)
            .map_err(|_| Error::protocol("a key request named an invalid epoch"))?;
        let chain = self.required_chain(&room).await?;
        if self.epoch_key(&room, &epoch).is_none() {
            self.load_room_keys(&room, &chain).await?;
            if self.epoch_key(&room, &epoch).is_none() {
                return Ok(0);
            }
        }
        let Some(key) = self.epoch_key(&room, &epoch) else {
            return Ok(0);
        };
        let users: BTreeSet<UserId> = user_ids
            .iter()
            .filter_map(|u| UserId::new(u.as_str()).ok())
            .filter(|u| u != self.user_id())
            .collect();
        if users.is_empty() {
            return Ok(0);
        }
        self.seal_and_upload(&room, &chain, &[key], &users, false)
            .await
    }

    /// What every client holding keys does with the realtime key notices (E13): answers
    /// a `room_key_request` by sealing held keys to the members listed, and opens a
    /// `room_key` just stored for this user. Other events are ignored. A front end calls
    /// this for each event it receives; failures concern one room and are returned.
    pub async fn keep_keys(&self, event: &ClientEvent) -> Result<()> {
        match event {
            ClientEvent::RoomKeyRequest {
                room_id,
                epoch_id,
                user_ids,
            } => self
                .handle_key_request(room_id, epoch_id, user_ids)
                .await
                .map(drop),
            ClientEvent::RoomKey {
                room_id, sealed, ..
            } => self.accept_room_key(room_id, sealed).await.map(drop),
            _ => Ok(()),
        }
    }

    /// Takes a box from a `room_key` notice: opens it against the verified chain and
    /// keeps the key. Returns its epoch; a box that fails a check is
    /// [`Error::RoomKey`] with the reason, and nothing is kept.
    pub async fn accept_room_key(&self, room_id: &str, sealed: &[u8]) -> Result<EpochId> {
        let room = parse_room(room_id)?;
        let sealed =
            RoomKeyBox::decode(sealed).map_err(|e| Error::RoomKey(RoomKeyError::Decode(e)))?;
        let chain = match self.cached_chain(&room) {
            Some(c) if c.state().members_at_epoch(&sealed.epoch()).is_some() => c,
            _ => self.required_chain(&room).await?,
        };
        self.ensure_pinned(std::iter::once(sealed.distributor().clone()))
            .await?;
        let key = self.open_box(&chain, &sealed).map_err(Error::RoomKey)?;
        let epoch = key.epoch();
        self.remember_key(&room, key);
        Ok(epoch)
    }

    /// The key of `epoch` in `room`, if open here.
    pub(crate) fn epoch_key(&self, room: &RoomId, epoch: &EpochId) -> Option<EpochKey> {
        self.state()
            .epoch_keys
            .get(room)
            .and_then(|m| m.get(epoch))
            .cloned()
    }

    /// The key to send with now: declares a new epoch first when one is due (by the
    /// chain or by the server's key state). `None` while waiting for the current key.
    pub(crate) async fn sending_key(
        &self,
        room: &RoomId,
        force_rotation: bool,
    ) -> Result<EpochKey> {
        let chain = self.required_chain(room).await?;
        let answer = self.load_room_keys(room, &chain).await?;
        let due = force_rotation || chain.state().rotation_due() || answer.rotation_due;
        let epoch = if due {
            self.rotate_key(room).await?
        } else {
            chain
                .state()
                .current_epoch()
                .ok_or_else(|| Error::Invalid("the room has no key epoch yet".into()))?
        };
        self.epoch_key(room, &epoch).ok_or_else(|| {
            Error::Invalid(
                "waiting for the room key: a member who holds it hands it on when online".into(),
            )
        })
    }

    /// `GET /rooms/{id}/keys`, opening the boxes not opened yet.
    pub(crate) async fn load_room_keys(
        &self,
        room: &RoomId,
        chain: &RoomChain,
    ) -> Result<RoomKeyState> {
        let answer: RoomKeyState = self
            .api()
            .get(&format!("/api/v1/rooms/{}/keys", seg(room.as_str())))
            .await?;
        let mut boxes = Vec::new();
        for item in &answer.keys {
            let Ok(bytes) = unbase64("box", &item.sealed) else {
                continue;
            };
            let Ok(sealed) = RoomKeyBox::decode(&bytes) else {
                continue;
            };
            if self.epoch_key(room, &sealed.epoch()).is_none() {
                boxes.push(sealed);
            }
        }
        if boxes.is_empty() {
            return Ok(answer);
        }
        self.ensure_pinned(boxes.iter().map(|b| b.distributor().clone()))
            .await?;
        let mut handed_on = Vec::new();
        for sealed in &boxes {
            // A refused box is never used; the client keeps waiting for a valid one.
            if let Ok(key) = self.open_box(chain, sealed) {
                if sealed.distributor() != self.user_id() {
                    handed_on.push(key.clone());
                }
                self.remember_key(room, key);
            }
        }
        if !handed_on.is_empty() {
            // Keep an own copy of keys another member handed on: it replaces theirs on
            // the server, so later sessions can open it even after that member leaves.
            // A failure only means the next load tries again.
            let _ = self
                .seal_and_upload(room, chain, &handed_on, &BTreeSet::new(), true)
                .await;
        }
        Ok(answer)
    }

    fn key_view(&self, room: &RoomId, chain: &RoomChain, answer: &RoomKeyState) -> RoomKeys {
        let held = chain
            .state()
            .epochs()
            .iter()
            .filter(|e| self.epoch_key(room, e).is_some())
            .copied()
            .collect();
        let current_epoch = chain.state().current_epoch();
        RoomKeys {
            current_epoch,
            rotation_due: chain.state().rotation_due() || answer.rotation_due,
            waiting: current_epoch.is_some_and(|e| self.epoch_key(room, &e).is_none()),
            lacking: answer
                .lacking
                .iter()
                .filter_map(|u| UserId::new(u.as_str()).ok())
                .collect(),
            held,
        }
    }

    /// Opens one box with the own keys, the chain's state and the pinned keys.
    fn open_box(
        &self,
        chain: &RoomChain,
        sealed: &RoomKeyBox,
    ) -> std::result::Result<EpochKey, sotto_crypto::roomkey::RoomKeyError> {
        let keys = self
            .keys()
            .map_err(|_| sotto_crypto::roomkey::RoomKeyError::DecryptFailed)?;
        let opened = sealed.open(self.user_id(), &keys, chain.state(), |u| self.pinned_key(u));
        if !matches!(
            opened,
            Err(sotto_crypto::roomkey::RoomKeyError::BadSignature)
        ) {
            return opened;
        }
        // Handed on before the distributor's key change, under the key the chain declares
        // for that time, or the one this profile pinned then.
        for key in self.former_keys_for(chain, sealed.distributor(), &sealed.epoch()) {
            let again = sealed.open(self.user_id(), &keys, chain.state(), |_| Some(key));
            if again.is_ok() {
                return again;
            }
        }
        opened
    }

    fn remember_key(&self, room: &RoomId, key: EpochKey) {
        self.state()
            .epoch_keys
            .entry(room.clone())
            .or_default()
            .insert(key.epoch(), key);
    }

    /// Pins the keys of users not pinned yet (fetching their bundles).
    async fn ensure_pinned(&self, users: impl Iterator<Item = UserId>) -> Result<()> {
        let unknown: BTreeSet<UserId> = users.filter(|u| self.pinned_key(u).is_none()).collect();
        if !unknown.is_empty() {
            self.observe_keys(&unknown).await?;
        }
        Ok(())
    }

    /// Seals every held epoch key to those of `users` who may hold it.
    async fn give_held_keys(
        &self,
        room: &RoomId,
        chain: &RoomChain,
        users: &BTreeSet<UserId>,
    ) -> Result<u32> {
        if users.is_empty() {
            return Ok(0);
        }
        let held: Vec<EpochKey> = chain
            .state()
            .epochs()
            .iter()
            .filter_map(|e| self.epoch_key(room, e))
            .collect();
        self.seal_and_upload(room, chain, &held, users, false).await
    }

    /// Seals each of `keys` to each of `users` the chain lets hold it who is also on
    /// the server's member list and whose bundle matches the pin (and to this user when
    /// `self_copy`), then uploads the boxes. Returns how many the server stored.
    async fn seal_and_upload(
        &self,
        room: &RoomId,
        chain: &RoomChain,
        keys: &[EpochKey],
        users: &BTreeSet<UserId>,
        self_copy: bool,
    ) -> Result<u32> {
        let my_keys = self.keys()?;
        let me = self.user_id().clone();
        let listed = self.member_ids(room).await?;
        let candidates: BTreeSet<UserId> = users
            .iter()
            .filter(|u| **u != me && chain.state().is_member(u) && listed.contains(*u))
            .cloned()
            .collect();
        let contacts = if candidates.is_empty() {
            Default::default()
        } else {
            self.observe_keys(&candidates).await?
        };
        let own = my_keys.bundle(&me);
        let mut boxes = Vec::new();
        let mut rng = os_rng();
        for key in keys {
            let epoch = key.epoch();
            let mut to: Vec<&PublicBundle> = contacts
                .values()
                .map(|c| &c.bundle)
                .filter(|b| chain.state().may_hold_epoch(&epoch, b.user()))
                .collect();
            if self_copy {
                to.push(&own);
            }
            if to.is_empty() {
                continue;
            }
            let sealed =
                RoomKeyBox::seal_for_members(key, chain.state(), &my_keys, &me, to, &mut rng)
                    .map_err(|e| Error::Invalid(format!("cannot hand on the room key: {e}")))?;
            boxes.extend(sealed.iter().map(|b| base64(&b.encode())));
        }
        let mut stored = 0;
        for chunk in boxes.chunks(sotto_api::ROOM_KEY_BOXES_MAX) {
            let req = RoomKeyUpload {
                boxes: chunk.to_vec(),
            };
            let answer: RoomKeyUploaded = self
                .api()
                .send(
                    Method::POST,
                    &format!("/api/v1/rooms/{}/keys", seg(room.as_str())),
                    &req,
                )
                .await?;
            stored += answer.stored;
        }
        Ok(stored)
    }

    /// The ids on the server's member list of `room`, remembering their names.
    pub(crate) async fn member_ids(&self, room: &RoomId) -> Result<BTreeSet<UserId>> {
        let list = self.member_list(room).await?;
        Ok(list
            .members
            .iter()
            .filter_map(|m| UserId::new(m.user_id.as_str()).ok())
            .collect())
    }

    /// `GET /rooms/{id}/members`, remembering the names.
    pub(crate) async fn member_list(&self, room: &RoomId) -> Result<MemberList> {
        let list: MemberList = self
            .api()
            .get(&format!("/api/v1/rooms/{}/members", seg(room.as_str())))
            .await?;
        let mut state = self.state();
        for m in &list.members {
            state.names.insert(m.user_id.clone(), m.username.clone());
        }
        Ok(list)
    }
}

/// A room id from the server or the user.
pub(crate) fn parse_room(id: &str) -> Result<RoomId> {
    RoomId::new(id).map_err(|_| Error::Invalid(format!("not a room id: {id}")))
}
