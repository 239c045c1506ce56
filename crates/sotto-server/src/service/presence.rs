//! C7 presence: a user is online while any of their sessions has a realtime socket open.
//!
//! The registry of live sockets is in-process. With several nodes behind one database,
//! each node would publish its own counts over the bus and the union would decide; the
//! bus already carries the changes, the counting would move there.

use super::{Actor, ServiceError};
use crate::bus::{Bus, BusEvent, PresenceChange};
use crate::store::RoomStore;
use sotto_api::PresenceList;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Who is online, and publishing the changes to the people who share a room with them.
pub struct PresenceService {
    rooms: Arc<dyn RoomStore>,
    bus: Arc<dyn Bus>,
    /// Open sockets per user.
    sockets: Mutex<HashMap<String, usize>>,
    /// The state last published per user. Publishing goes through this lock, one change
    /// at a time, and always publishes the current state, so a quick connect and
    /// disconnect can not be seen in the wrong order.
    published: tokio::sync::Mutex<HashMap<String, bool>>,
}

/// Keeps its user online until dropped.
pub struct Online {
    service: Arc<PresenceService>,
    user_id: String,
}

impl Drop for Online {
    fn drop(&mut self) {
        let last = {
            let mut sockets = self.service.lock();
            match sockets.get_mut(&self.user_id) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => {
                    sockets.remove(&self.user_id);
                    true
                }
            }
        };
        if last {
            self.service.changed(self.user_id.clone());
        }
    }
}

impl PresenceService {
    /// Over the room store (for audiences) and the bus.
    pub fn new(rooms: Arc<dyn RoomStore>, bus: Arc<dyn Bus>) -> Self {
        Self {
            rooms,
            bus,
            sockets: Mutex::new(HashMap::new()),
            published: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // The map stays consistent even if a holder panicked: every change is one step.
        self.sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers an open socket of `user_id`; the first one makes the user online.
    pub fn connect(self: &Arc<Self>, user_id: &str) -> Online {
        let first = {
            let mut sockets = self.lock();
            let n = sockets.entry(user_id.to_owned()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            self.changed(user_id.to_owned());
        }
        Online {
            service: self.clone(),
            user_id: user_id.to_owned(),
        }
    }

    /// Whether `user_id` has an open socket on this node.
    pub fn is_online(&self, user_id: &str) -> bool {
        self.lock().contains_key(user_id)
    }

    /// Publishes the user's current state, in the background, if it differs from the
    /// last one published.
    fn changed(self: &Arc<Self>, user_id: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = self.clone();
        runtime.spawn(async move {
            let mut published = me.published.lock().await;
            let online = me.is_online(&user_id);
            if published.get(&user_id).copied().unwrap_or(false) == online {
                return;
            }
            match me.rooms.room_peers(&user_id).await {
                Ok(peers) => {
                    if online {
                        published.insert(user_id.clone(), true);
                    } else {
                        published.remove(&user_id);
                    }
                    me.bus.publish(BusEvent::Presence(PresenceChange {
                        user_id,
                        online,
                        audience: Arc::new(peers.into_iter().collect::<BTreeSet<_>>()),
                    }));
                }
                Err(e) => tracing::warn!(error = %e, "presence audience query failed"),
            }
        });
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
