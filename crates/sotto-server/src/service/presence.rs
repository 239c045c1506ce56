//! C7 presence: a user is online while any of their sessions has a realtime socket open.
//!
//! The registry of live sockets is in-process. With several nodes behind one database,
//! each node would publish its own counts over the bus and the union would decide; the
//! bus already carries the changes, the counting would move there.

use super::{Actor, ServiceError};
use crate::bus::{Bus, BusEvent, PresenceChange};
use crate::store::RoomStore;
use sotto_api::PresenceList;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Who is online, and publishing the changes to the people who share a room with them.
pub struct PresenceService {
    rooms: Arc<dyn RoomStore>,
    bus: Arc<dyn Bus>,
    /// Open sockets per user. A change is published while this lock is held, so a quick
    /// connect and disconnect can not be seen in the wrong order; publishing never
    /// blocks and needs no query: the audience is the members of the user's rooms as
    /// their connection's feed knows them.
    sockets: Mutex<HashMap<String, usize>>,
}

/// Keeps its user online until dropped.
pub struct Online {
    service: Arc<PresenceService>,
    user_id: String,
    rooms: Arc<[String]>,
}

impl Online {
    /// The user's rooms now, whose members are told when the user goes offline.
    pub fn set_rooms(&mut self, rooms: Arc<[String]>) {
        self.rooms = rooms;
    }
}

impl Drop for Online {
    fn drop(&mut self) {
        let mut sockets = self.service.lock();
        match sockets.get_mut(&self.user_id) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                sockets.remove(&self.user_id);
                self.service
                    .publish(self.user_id.clone(), false, self.rooms.clone());
            }
        }
    }
}

impl PresenceService {
    /// Over the room store (for the list of online peers) and the bus.
    pub fn new(rooms: Arc<dyn RoomStore>, bus: Arc<dyn Bus>) -> Self {
        Self {
            rooms,
            bus,
            sockets: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // The map stays consistent even if a holder panicked: every change is one step.
        self.sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers an open socket of `user_id`, a member of `rooms`; the first one makes
    /// the user online.
    pub fn connect(self: &Arc<Self>, user_id: &str, rooms: Arc<[String]>) -> Online {
        let mut sockets = self.lock();
        let n = sockets.entry(user_id.to_owned()).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.publish(user_id.to_owned(), true, rooms.clone());
        }
        Online {
            service: self.clone(),
            user_id: user_id.to_owned(),
            rooms,
        }
    }

    /// Whether `user_id` has an open socket on this node.
    pub fn is_online(&self, user_id: &str) -> bool {
        self.lock().contains_key(user_id)
    }

    fn publish(&self, user_id: String, online: bool, rooms: Arc<[String]>) {
        self.bus.publish(BusEvent::Presence(PresenceChange {
            user_id,
            online,
            rooms,
        }));
    }

    /// The users who share a room with `user_id` and are online now.
    pub async fn online_peers_of(&self, user_id: &str) -> Result<Vec<String>, ServiceError> {
        let peers = self.rooms.room_peers(user_id).await?;
        let sockets = self.lock();
        Ok(peers
            .into_iter()
            .filter(|p| sockets.contains_key(p))
            .collect())
    }

    /// `GET /api/v1/presence`: who among the people the caller shares a room with is
    /// online.
    pub async fn online_peers(&self, actor: &Actor) -> Result<PresenceList, ServiceError> {
        let Actor::User(p) = actor else {
            return Err(ServiceError::Forbidden("presence is for users"));
        };
        Ok(PresenceList {
            online: self.online_peers_of(&p.user.id).await?,
        })
    }
}
