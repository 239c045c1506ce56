//! The event bus: services publish what changed in a room and presence changes; on each
//! node one [`fanout::Fanout`] subscribes and routes each event to the realtime
//! connections that need it. [`LocalBus`] is the in-process implementation;
//! a networked one can replace it behind [`Bus`] when several nodes share a database.
//!
//! Every room event carries its room's sequence number, taken in the same transaction as
//! the change, so a subscriber can order events per room and fill gaps from the store.

pub mod fanout;

pub use sotto_api::{Event, EventKind};
use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock};
use tokio::sync::broadcast;

/// What goes over the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusEvent {
    /// A committed room change.
    Room(Event),
    /// A user came online or went offline.
    Presence(PresenceChange),
    /// A user's keys were published or reset.
    KeysChanged(KeysChange),
    /// A notice for some users' sockets only.
    Notice(UserNotice),
}

/// A notice and the users whose sockets get it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserNotice {
    /// The recipients.
    pub to: Arc<BTreeSet<String>>,
    /// The notice.
    pub notice: sotto_api::Notice,
}

/// A presence change and who may see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceChange {
    /// The user.
    pub user_id: String,
    /// Online now.
    pub online: bool,
    /// The user's rooms when the change was published: their members are told.
    pub rooms: Arc<[String]>,
}

/// A change of a user's keys and who is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeysChange {
    /// The user.
    pub user_id: String,
    /// The user and everyone who shares a room with them when the change was published.
    pub audience: Arc<BTreeSet<String>>,
}

/// Publish and subscribe.
pub trait Bus: Send + Sync {
    /// Publishes an event; never blocks. Having no subscriber is not an error.
    fn publish(&self, event: BusEvent);
    /// A new subscription to every event published from now on.
    fn subscribe(&self) -> Subscription;
    /// Shuts the bus: every subscription ends (`Ok(None)`), so realtime sockets close
    /// with "server shutting down"; later publishes are dropped.
    fn close(&self);
}

/// Events as they are published. A subscriber that falls more than the bus capacity
/// behind is told so ([`Lagged`]) instead of the bus growing without bound.
pub struct Subscription {
    rx: broadcast::Receiver<BusEvent>,
}

/// The subscriber fell behind and missed this many events; it should resume from its
/// last seen sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("subscriber lagged by {0} events")]
pub struct Lagged(pub u64);

impl Subscription {
    /// The next event; `Ok(None)` once the bus is gone.
    pub async fn next(&mut self) -> Result<Option<BusEvent>, Lagged> {
        match self.rx.recv().await {
            Ok(e) => Ok(Some(e)),
            Err(broadcast::error::RecvError::Closed) => Ok(None),
            Err(broadcast::error::RecvError::Lagged(n)) => Err(Lagged(n)),
        }
    }

    /// The next event if one is waiting.
    pub fn try_next(&mut self) -> Result<Option<BusEvent>, Lagged> {
        match self.rx.try_recv() {
            Ok(e) => Ok(Some(e)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Err(Lagged(n)),
            Err(_) => Ok(None),
        }
    }
}

/// The in-process bus: a bounded broadcast channel.
pub struct LocalBus {
    /// `None` once closed.
    tx: RwLock<Option<broadcast::Sender<BusEvent>>>,
}

/// Events a subscriber may fall behind by before it is told it lagged.
pub const LOCAL_BUS_CAPACITY: usize = 4096;

impl LocalBus {
    /// A bus holding up to `capacity` events per slow subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: RwLock::new(Some(broadcast::channel(capacity.max(1)).0)),
        }
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(LOCAL_BUS_CAPACITY)
    }
}

impl Bus for LocalBus {
    fn publish(&self, event: BusEvent) {
        if let Some(tx) = self
            .tx
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            // An error only means nobody is subscribed.
            let _ = tx.send(event);
        }
    }

    fn subscribe(&self) -> Subscription {
        let rx = match self
            .tx
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            Some(tx) => tx.subscribe(),
            // Closed: a receiver whose sender is gone ends at once.
            None => broadcast::channel(1).1,
        };
        Subscription { rx }
    }

    fn close(&self) {
        self.tx
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64) -> BusEvent {
        BusEvent::Room(Event {
            room_id: "r".into(),
            seq,
            kind: EventKind::MemberRemoved {
                user_id: "u".into(),
                forced_by: None,
            },
        })
    }

    fn seq(e: Option<BusEvent>) -> i64 {
        match e {
            Some(BusEvent::Room(e)) => e.seq,
            other => panic!("not a room event: {other:?}"),
        }
    }

    #[tokio::test]
    async fn subscribers_get_events_in_order_and_laggards_are_told() {
        let bus = LocalBus::new(2);
        bus.publish(event(0)); // nobody listens: dropped
        let mut a = bus.subscribe();
        bus.publish(event(1));
        bus.publish(event(2));
        assert_eq!(seq(a.next().await.unwrap()), 1);
        assert_eq!(seq(a.try_next().unwrap()), 2);
        assert_eq!(a.try_next().unwrap(), None);
        for s in 3..6 {
            bus.publish(event(s));
        }
        assert_eq!(a.try_next(), Err(Lagged(1)));
        assert_eq!(seq(a.try_next().unwrap()), 4);
        let BusEvent::Room(e) = event(7) else {
            unreachable!()
        };
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(json["type"], "member_removed");
        assert_eq!(json["seq"], 7);
    }
}
