//! E13 / B3: room keys of encrypted rooms (docs/protocol.md §6). The server stores each
//! member's sealed copy of each epoch key, readable by that member only, after key-free
//! checks of the box against the room's chain; it never sees a key.

use super::{RoomService, user_of};
use crate::service::{Actor, ServiceError, now_ms};
use crate::store::RoomKeyRecord;
use base64::Engine;
use sotto_api::{RoomKeyItem, RoomKeyState, RoomKeyUpload, RoomKeyUploaded};
use sotto_crypto::chain::RoomChain;
use sotto_crypto::roomkey::RoomKeyBox;
use sotto_crypto::{EpochId, UserId};
use std::collections::BTreeSet;

/// Most boxes in one upload: a new epoch for a room of a thousand members is one request,
/// so it reaches everyone at once rather than in parts, each part asking the members who
/// hold the key to hand it on to those the next parts are about to reach.
pub(crate) const BOXES_MAX: usize = sotto_api::ROOM_KEY_BOXES_MAX;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn user_id(id: &str) -> Result<UserId, ServiceError> {
    UserId::new(id).map_err(|e| ServiceError::Internal(format!("user id {id}: {e}")))
}

impl RoomService {
    async fn chain_of(&self, room_id: &str) -> Result<RoomChain, ServiceError> {
        self.load_chain(room_id)
            .await?
            .ok_or_else(|| ServiceError::Conflict("this room has no state chain yet".into()))
    }

    /// Stores boxes sealed and signed by the caller (§6.2): each must be for this room,
    /// an epoch the chain declares, from a caller the chain counts as a member who may
    /// hold that epoch, to a recipient who may hold it and is still a member (or to
    /// the caller itself), and carry a valid signature under the caller's published
    /// key. One bad box refuses the whole upload. New boxes are pushed to their
    /// recipients' sockets, and holders are asked for whoever still lacks the epoch.
    pub async fn put_room_keys(
        &self,
        actor: &Actor,
        room_id: &str,
        req: RoomKeyUpload,
    ) -> Result<RoomKeyUploaded, ServiceError> {
        let me = user_of(actor)?;
        self.check_member(me, room_id).await?;
        if req.boxes.is_empty() || req.boxes.len() > BOXES_MAX {
            return Err(ServiceError::InvalidInput(format!(
                "boxes: 1 to {BOXES_MAX}"
            )));
        }
        let chain = self.chain_of(room_id).await?;
        let state = chain.state();
        let my_id = user_id(me)?;
        if !state.is_member(&my_id) {
            return Err(ServiceError::Forbidden(
                "the room's state chain does not count you as a member",
            ));
        }
        let key = self
            .identity_of(me)
            .await?
            .ok_or_else(|| ServiceError::InvalidInput("boxes: publish your keys first".into()))?;
        let members: BTreeSet<String> = self
            .rooms
            .members(room_id)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        let now = now_ms();
        let mut records = Vec::with_capacity(req.boxes.len());
        for (i, b) in req.boxes.iter().enumerate() {
            let bad = |why: &str| ServiceError::InvalidInput(format!("boxes[{i}]: {why}"));
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|_| bad("standard base64"))?;
            let parsed = RoomKeyBox::decode(&bytes).map_err(|e| bad(&e.to_string()))?;
            if parsed.room().as_str() != room_id {
                return Err(bad("for another room"));
            }
            if parsed.distributor() != &my_id {
                return Err(bad("its distributor must be you"));
            }
            let epoch = parsed.epoch();
            if !state.epochs().contains(&epoch) {
                return Err(bad("an epoch the room's chain does not declare"));
            }
            if !state.may_hold_epoch(&epoch, &my_id) {
                return Err(ServiceError::Forbidden(
                    "the room's state chain does not let you hold this epoch",
                ));
            }
            let to = parsed.recipient();
            let allowed = parsed.is_self_copy()
                || (members.contains(to.as_str()) && state.may_hold_epoch(&epoch, to));
            if !allowed {
                return Err(bad("its recipient may not hold this epoch"));
            }
            parsed
                .verify_signature(&key)
                .map_err(|_| bad("the signature is not valid under your published key"))?;
            records.push(RoomKeyRecord {
                room_id: room_id.to_owned(),
                epoch_id: epoch.to_hex(),
                recipient_id: to.as_str().to_owned(),
                distributor_id: me.to_owned(),
                sealed: bytes,
                created_at: now,
            });
        }
        let epochs: BTreeSet<String> = records.iter().map(|r| r.epoch_id.clone()).collect();
        let stored = self.e2ee.put_room_keys(&records).await?;
        let fresh: Vec<RoomKeyRecord> = records
            .into_iter()
            .zip(stored)
            .filter_map(|(r, new)| new.then_some(r))
            .collect();
        tracing::info!(room_id, stored = fresh.len(), "room keys stored");
        self.push_keys(&fresh);
        // Whoever the upload left without these epochs: ask the other holders.
        self.request_keys(room_id, &chain, |e| epochs.contains(&e.to_hex()))
            .await?;
        let stored = u32::try_from(fresh.len()).unwrap_or(u32::MAX);
        Ok(RoomKeyUploaded { stored })
    }

    /// The caller's boxes in the room and the room's key state (members only).
    pub async fn room_keys(
        &self,
        actor: &Actor,
        room_id: &str,
    ) -> Result<RoomKeyState, ServiceError> {
        let me = user_of(actor)?;
        let (room, _) = self.as_member(me, room_id).await?;
        let keys = self
            .e2ee
            .room_keys(room_id, me)
            .await?
            .into_iter()
            .map(|k| RoomKeyItem {
                epoch_id: k.epoch_id,
                distributor_id: k.distributor_id,
                sealed: b64(&k.sealed),
            })
            .collect::<Vec<_>>();
        let Some(chain) = self.load_chain(room_id).await? else {
            return Ok(RoomKeyState {
                current_epoch: None,
                rotation_due: room.encrypted,
                waiting: false,
                lacking: Vec::new(),
                keys,
            });
        };
        let state = chain.state();
        let current = state.current_epoch();
        let rotation_due = state.rotation_due() || self.e2ee.rotation_marked(room_id).await?;
        let (waiting, lacking) = match current {
            None => (false, Vec::new()),
            Some(epoch) => {
                let lacking = self.lacking(room_id, &chain, &epoch.to_hex()).await?;
                (lacking.iter().any(|u| u == me), lacking)
            }
        };
        let held: BTreeSet<&str> = keys.iter().map(|k| k.epoch_id.as_str()).collect();
        let my_id = user_id(me)?;
        let missing: BTreeSet<EpochId> = state
            .epochs()
            .iter()
            .filter(|e| state.may_hold_epoch(e, &my_id) && !held.contains(e.to_hex().as_str()))
            .copied()
            .collect();
        if !missing.is_empty() {
            // Ask again for every epoch the caller may hold and has no box of (after a key
            // reset, all of them): holders may have come online since.
            self.request_keys(room_id, &chain, |e| missing.contains(e))
                .await?;
        }
        Ok(RoomKeyState {
            current_epoch: current.map(|e| e.to_hex()),
            rotation_due,
            waiting,
            lacking,
            keys,
        })
    }

    /// Members of the room (on the server and in the chain) allowed to hold the current
    /// epoch `epoch_hex`, with published keys, who have no box of it.
    pub(super) async fn lacking(
        &self,
        room_id: &str,
        chain: &RoomChain,
        epoch_hex: &str,
    ) -> Result<Vec<String>, ServiceError> {
        let state = chain.state();
        let Some(epoch) = state.current_epoch() else {
            return Ok(Vec::new());
        };
        let holders: BTreeSet<String> = self
            .e2ee
            .epoch_holders(room_id, epoch_hex)
            .await?
            .into_iter()
            .collect();
        let candidates: Vec<String> = self
            .rooms
            .members(room_id)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .filter(|u| !holders.contains(u))
            .filter(|u| UserId::new(u.as_str()).is_ok_and(|id| state.may_hold_epoch(&epoch, &id)))
            .collect();
        let with_keys: BTreeSet<String> = self
            .keys
            .bundles(&candidates)
            .await?
            .into_iter()
            .map(|k| k.user_id)
            .collect();
        Ok(candidates
            .into_iter()
            .filter(|u| with_keys.contains(u))
            .collect())
    }

    /// After a user publishes keys (first setup, or new keys after a reset): asks the
    /// online holders of every epoch of their encrypted rooms to hand it on.
    pub async fn keys_published(&self, user_id: &str) -> Result<(), ServiceError> {
        for room in self.rooms.rooms_of_user(user_id).await? {
            if room.encrypted {
                self.request_missing_keys(&room.id).await?;
            }
        }
        Ok(())
    }

    /// The room side of a user's key reset (E10, E11, B3): deletes every room key sealed
    /// to the user, and marks each encrypted room they are in as due a new epoch, so that
    /// the next member's client declares one; once the user publishes new keys they are
    /// among the members lacking the current epoch again. Returns those rooms.
    pub async fn reset_user_room_keys(&self, user_id: &str) -> Result<Vec<String>, ServiceError> {
        self.e2ee.drop_room_keys(user_id).await?;
        let mut rooms = Vec::new();
        for room in self.rooms.rooms_of_user(user_id).await? {
            if room.encrypted {
                self.e2ee.mark_rotation(&room.id).await?;
                rooms.push(room.id);
            }
        }
        tracing::info!(rooms = rooms.len(), "room keys reset for a user");
        Ok(rooms)
    }
}

impl RoomService {
    fn notify(&self, to: BTreeSet<String>, notice: sotto_api::Notice) {
        if !to.is_empty() {
            self.bus
                .publish(crate::bus::BusEvent::Notice(crate::bus::UserNotice {
                    to: std::sync::Arc::new(to),
                    notice,
                }));
        }
    }

    /// Pushes freshly stored boxes to their recipients' open sockets (not to the
    /// distributor's own copies).
    pub(super) fn push_keys(&self, fresh: &[RoomKeyRecord]) {
        for k in fresh.iter().filter(|k| k.recipient_id != k.distributor_id) {
            self.notify(
                BTreeSet::from([k.recipient_id.clone()]),
                sotto_api::Notice::RoomKey {
                    room_id: k.room_id.clone(),
                    epoch_id: k.epoch_id.clone(),
                    distributor_id: k.distributor_id.clone(),
                    sealed: b64(&k.sealed),
                },
            );
        }
    }

    /// Asks, for every epoch of the room, the members who hold it to hand it to the
    /// members who may hold it, have published keys and have no box of it: one request
    /// per epoch (docs/protocol.md §6.2). Only open sockets get the notice, so only online
    /// holders are asked; a waiting member's client asks again by reading its keys.
    pub(crate) async fn request_missing_keys(&self, room_id: &str) -> Result<(), ServiceError> {
        let Some(chain) = self.load_chain(room_id).await? else {
            return Ok(());
        };
        self.request_keys(room_id, &chain, |_| true).await
    }

    /// [`RoomService::request_missing_keys`] for the epochs `which` picks.
    async fn request_keys(
        &self,
        room_id: &str,
        chain: &RoomChain,
        which: impl Fn(&EpochId) -> bool,
    ) -> Result<(), ServiceError> {
        let state = chain.state();
        let epochs: Vec<EpochId> = state
            .epochs()
            .iter()
            .filter(|e| which(e))
            .copied()
            .collect();
        if epochs.is_empty() {
            return Ok(());
        }
        // Members on the server's list and in the chain: the only possible recipients
        // and the only members who may hand a key on (§6.3 step 5).
        let members: BTreeSet<String> = self
            .rooms
            .members(room_id)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .filter(|u| UserId::new(u.as_str()).is_ok_and(|id| state.is_member(&id)))
            .collect();
        let listed: Vec<String> = members.iter().cloned().collect();
        let with_keys: BTreeSet<String> = self
            .keys
            .bundles(&listed)
            .await?
            .into_iter()
            .map(|k| k.user_id)
            .collect();
        for epoch in epochs {
            let hex = epoch.to_hex();
            let holders: BTreeSet<String> = self
                .e2ee
                .epoch_holders(room_id, &hex)
                .await?
                .into_iter()
                .collect();
            let lacking: Vec<String> = with_keys
                .iter()
                .filter(|u| !holders.contains(*u))
                .filter(|u| {
                    UserId::new(u.as_str()).is_ok_and(|id| state.may_hold_epoch(&epoch, &id))
                })
                .cloned()
                .collect();
            let askable: BTreeSet<String> = holders.intersection(&members).cloned().collect();
            if lacking.is_empty() || askable.is_empty() {
                continue;
            }
            self.notify(
                askable,
                sotto_api::Notice::RoomKeyRequest {
                    room_id: room_id.to_owned(),
                    epoch_id: hex,
                    user_ids: lacking,
                },
            );
        }
        Ok(())
    }
}
