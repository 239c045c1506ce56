//! Fan-out: the one subscriber of the bus on this node, handing each event only to the
//! realtime connections that need it, already serialised.
//!
//! Each connection registers an [`Inbox`]: a bounded queue, plus its place in two indexes
//! (room → connections, user → connections). A room event goes to the connections
//! watching its room; a notice to the connections of its users. Its JSON is made once
//! and shared. A connection whose queue is full is told it lagged and dropped from the
//! indexes, so one slow client never holds up the others.
//!
//! Why nothing is lost between loading a connection's rooms and indexing them:
//! - A new inbox is *pending*: it receives every room event until [`Inbox::install`]
//!   indexes the rooms its feed loaded. It is registered before the load, so an event
//!   committed after the load's read is dispatched after the registration and reaches
//!   it, pending or indexed; anything committed before is in the load.
//! - Joins and removals update the index here, in the order events are routed: a
//!   user's own join indexes the room for all their connections before the join is
//!   routed, so every event of the room routed later reaches them; one routed earlier
//!   had been committed and published before that, so the feed's catch-up after the join
//!   reads it from the store.
//! - Events of a room that arrive ahead of their predecessors are held back briefly
//!   ([`HOLD`]) and routed in seq order. This only changes when an event is routed, not
//!   what the feeds do with it, so the argument above still holds.
//! - [`Inbox::watch`] (a resume of a room the feed did not know) indexes before the
//!   resume reads the store, for the same reason.
//!
//! The index may hold more than a feed needs (a late or stale membership event); the
//! feed drops what is not the user's. It never holds less.

use super::{Bus, BusEvent, Event, EventKind, Subscription};
use axum::extract::ws::Utf8Bytes;
use sotto_api::Notice;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

/// Deliveries a connection may have queued before it counts as too slow.
pub const INBOX_CAPACITY: usize = 1024;

/// What a connection receives, JSON included.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// A room event and its JSON text.
    Room(Arc<Event>, Utf8Bytes),
    /// A notice's JSON text.
    Notice(Utf8Bytes),
    /// A `keys_changed` notice's JSON text, and whose keys changed (the connection's OTR
    /// relay checks that person's rooms again).
    KeysChanged(Arc<str>, Utf8Bytes),
}

/// Why an inbox ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The queue was full: the client should reconnect and resume.
    Lagged,
    /// The bus closed: the server is shutting down.
    Closed,
}

const OPEN: u8 = 0;
const LAGGED: u8 = 1;
const CLOSED: u8 = 2;

type ConnId = u64;

/// The routing of this node's connections.
pub struct Fanout {
    bus: Arc<dyn Bus>,
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    /// Whether the dispatcher runs; it starts with the first connection.
    started: bool,
    /// The bus has closed: new inboxes end at once.
    closed: bool,
    next_id: ConnId,
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<String, HashSet<ConnId>>,
    users: HashMap<String, HashSet<ConnId>>,
    /// Connections whose rooms are not indexed yet.
    pending: HashSet<ConnId>,
    order: Reorder,
}

/// How long an event that arrived ahead of its room's next seq waits for the ones
/// before it. Writers to one room publish after their commits, so neighbours often
/// arrive swapped; putting them back in order here spares every connection in the room
/// a store read to fill the gap.
pub const HOLD: Duration = Duration::from_millis(20);

/// Events held back per room at most; beyond, the room's held events go out at once.
const HOLD_MAX: usize = 256;

/// Per room: the last seq routed in order, and events that arrived ahead of it.
#[derive(Default)]
struct Reorder {
    rooms: HashMap<String, RoomOrder>,
    /// The rooms holding events back.
    holding: HashSet<String>,
}

struct RoomOrder {
    last: i64,
    held: BTreeMap<i64, Event>,
    /// When the oldest held event arrived.
    since: Option<Instant>,
}

impl Reorder {
    /// What to route now that `e` arrived, in order.
    fn arrive(&mut self, e: Event, now: Instant) -> Vec<Event> {
        let Some(room) = self.rooms.get_mut(&e.room_id) else {
            self.rooms.insert(
                e.room_id.clone(),
                RoomOrder {
                    last: e.seq,
                    held: BTreeMap::new(),
                    since: None,
                },
            );
            return vec![e];
        };
        if e.seq <= room.last {
            // Late, or a repeat: the feeds know what to do with it.
            return vec![e];
        }
        if e.seq > room.last + 1 {
            let room_id = e.room_id.clone();
            room.held.insert(e.seq, e);
            room.since.get_or_insert(now);
            if room.held.len() > HOLD_MAX {
                self.holding.remove(&room_id);
                return room.release_all();
            }
            self.holding.insert(room_id);
            return Vec::new();
        }
        room.last = e.seq;
        let mut out = vec![e];
        while let Some(next) = room.held.remove(&(room.last + 1)) {
            room.last = next.seq;
            out.push(next);
        }
        // What is still held waits from when the oldest of it came, at the latest.
        if room.held.is_empty() {
            room.since = None;
            self.holding.remove(&out[0].room_id);
        }
        out
    }

    /// When the oldest held event is due, if any is held.
    fn due(&self) -> Option<Instant> {
        self.holding
            .iter()
            .filter_map(|r| self.rooms.get(r)?.since)
            .min()
            .map(|t| t + HOLD)
    }

    fn overdue(&mut self, now: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        let rooms = &mut self.rooms;
        self.holding.retain(|r| match rooms.get_mut(r) {
            Some(room) if room.since.is_some_and(|t| t + HOLD <= now) => {
                out.extend(room.release_all());
                false
            }
            Some(_) => true,
            None => false,
        });
        out
    }
}

impl RoomOrder {
    fn release_all(&mut self) -> Vec<Event> {
        self.since = None;
        let held = std::mem::take(&mut self.held);
        if let Some(&last) = held.keys().next_back() {
            self.last = last;
        }
        held.into_values().collect()
    }
}

struct Conn {
    user_id: String,
    tx: mpsc::Sender<Delivery>,
    end: Arc<AtomicU8>,
    /// Indexed rooms → the seq of the membership fact that put them there. A removal
    /// at or below it is older than that fact and leaves the room indexed.
    rooms: HashMap<String, i64>,
}

/// A connection's end: its queue, until dropped.
pub struct Inbox {
    fanout: Arc<Fanout>,
    id: ConnId,
    rx: mpsc::Receiver<Delivery>,
    end: Arc<AtomicU8>,
}

impl Fanout {
    /// Routes what is published on `bus`.
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        Self {
            bus,
            index: Mutex::new(Index::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // Every change to the index is complete before anything can panic.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a connection of `user_id`. It is pending (receives every room event)
    /// until [`Inbox::install`].
    pub fn register(self: &Arc<Self>, user_id: &str) -> Inbox {
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let end = Arc::new(AtomicU8::new(OPEN));
        let mut index = self.lock();
        if !index.started {
            // Subscribing here, with no connection yet, misses nothing anyone needs.
            index.started = true;
            let subscription = self.bus.subscribe();
            let me = self.clone();
            tokio::spawn(async move { me.dispatch(subscription).await });
        }
        index.next_id += 1;
        let id = index.next_id;
        if index.closed {
            end.store(CLOSED, Ordering::Release);
            drop(tx);
        } else {
            index
                .users
                .entry(user_id.to_owned())
                .or_default()
                .insert(id);
            index.pending.insert(id);
            index.conns.insert(
                id,
                Conn {
                    user_id: user_id.to_owned(),
                    tx,
                    end: end.clone(),
                    rooms: HashMap::new(),
                },
            );
        }
        Inbox {
            fanout: self.clone(),
            id,
            rx,
            end,
        }
    }

    async fn dispatch(self: Arc<Self>, mut subscription: Subscription) {
        loop {
            let due = self.lock().order.due();
            let next = match due {
                None => subscription.next().await,
                Some(due) => tokio::select! {
                    next = subscription.next() => next,
                    () = sleep_until(due) => {
                        self.lock().release_overdue(Instant::now());
                        continue;
                    }
                },
            };
            match next {
                Ok(Some(event)) => self.route(event),
                Ok(None) => {
                    let mut index = self.lock();
                    index.closed = true;
                    index.end_all(CLOSED);
                    return;
                }
                // Events were lost for everyone: every connection resumes.
                Err(_) => self.lock().end_all(LAGGED),
            }
        }
    }

    fn route(&self, event: BusEvent) {
        let mut index = self.lock();
        match event {
            BusEvent::Room(e) => {
                for e in index.order.arrive(e, Instant::now()) {
                    index.route_room(e);
                }
            }
            BusEvent::Presence(p) => {
                let mut to = HashSet::new();
                for room in p.rooms.iter() {
                    if let Some(conns) = index.rooms.get(room) {
                        to.extend(conns.iter().copied());
                    }
                }
                let to: Vec<ConnId> = to
                    .into_iter()
                    .filter(|id| index.conns.get(id).is_some_and(|c| c.user_id != p.user_id))
                    .collect();
                index.send_notice(
                    &to,
                    &Notice::Presence {
                        user_id: p.user_id,
                        online: p.online,
                    },
                );
            }
            BusEvent::KeysChanged(k) => {
                let to = index.conns_of(k.audience.iter());
                let user_id: Arc<str> = k.user_id.as_str().into();
                if let Some(text) = json(&Notice::KeysChanged { user_id: k.user_id }) {
                    index.send_all(&to, &Delivery::KeysChanged(user_id, text));
                }
            }
            BusEvent::Notice(n) => {
                let to = index.conns_of(n.to.iter());
                index.send_notice(&to, &n.notice);
            }
        }
    }
}

/// A notice's JSON, made once for every connection it goes to.
fn json(notice: &Notice) -> Option<Utf8Bytes> {
    serde_json::to_string(notice)
        .inspect_err(|err| tracing::warn!(error = %err, "notice not serialisable"))
        .ok()
        .map(Utf8Bytes::from)
}

/// The users whose own join `e` is.
fn joined(e: &Event) -> &[String] {
    match &e.kind {
        EventKind::MemberAdded { member } => std::slice::from_ref(&member.user_id),
        EventKind::RoomCreated { member_ids, .. } => member_ids,
        _ => &[],
    }
}

impl Index {
    /// Routes events held back longer than [`HOLD`], in seq order per room; the feeds
    /// read the gaps they leave from the store.
    fn release_overdue(&mut self, now: Instant) {
        for e in self.order.overdue(now) {
            self.route_room(e);
        }
    }

    fn route_room(&mut self, e: Event) {
        let e = Arc::new(e);
        for user in joined(&e) {
            let ids: Vec<ConnId> = self
                .users
                .get(user)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            for id in ids {
                self.index_room(id, &e.room_id, e.seq);
            }
        }
        let mut to: Vec<ConnId> = self
            .rooms
            .get(&e.room_id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        to.extend(self.pending.iter().copied());
        if !to.is_empty() {
            match serde_json::to_string(&*e) {
                Ok(text) => {
                    let delivery = Delivery::Room(e.clone(), text.into());
                    for id in to {
                        self.send(id, &delivery);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "room event not serialisable"),
            }
        }
        // After the removal itself went out, the room is no longer theirs.
        if let EventKind::MemberRemoved { user_id, .. } = &e.kind {
            let ids: Vec<ConnId> = self
                .users
                .get(user_id)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            for id in ids {
                self.unindex_room(id, &e.room_id, e.seq);
            }
        }
    }

    fn index_room(&mut self, id: ConnId, room_id: &str, seq: i64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let at = conn.rooms.entry(room_id.to_owned()).or_insert(seq);
        *at = (*at).max(seq);
        self.rooms.entry(room_id.to_owned()).or_default().insert(id);
    }

    fn unindex_room(&mut self, id: ConnId, room_id: &str, seq: i64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.rooms.get(room_id).is_some_and(|&at| at < seq) {
            conn.rooms.remove(room_id);
            self.unlink_room(id, room_id);
        }
    }

    fn unlink_room(&mut self, id: ConnId, room_id: &str) {
        if let Some(set) = self.rooms.get_mut(room_id) {
            set.remove(&id);
            if set.is_empty() {
                self.rooms.remove(room_id);
            }
        }
    }

    fn conns_of<'a>(&self, users: impl Iterator<Item = &'a String>) -> Vec<ConnId> {
        users
            .filter_map(|u| self.users.get(u))
            .flatten()
            .copied()
            .collect()
    }

    fn send_notice(&mut self, to: &[ConnId], notice: &Notice) {
        if !to.is_empty()
            && let Some(text) = json(notice)
        {
            self.send_all(to, &Delivery::Notice(text));
        }
    }

    fn send_all(&mut self, to: &[ConnId], delivery: &Delivery) {
        for &id in to {
            self.send(id, delivery);
        }
    }

    /// Queues `delivery`; a full queue ends the connection as lagged.
    fn send(&mut self, id: ConnId, delivery: &Delivery) {
        let full = match self.conns.get(&id) {
            Some(c) => c.tx.try_send(delivery.clone()).is_err(),
            None => false,
        };
        if full {
            self.end(id, LAGGED);
        }
    }

    /// Takes the connection out of the indexes; its inbox then reports `how`.
    fn end(&mut self, id: ConnId, how: u8) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        conn.end.store(how, Ordering::Release);
        self.pending.remove(&id);
        if let Some(set) = self.users.get_mut(&conn.user_id) {
            set.remove(&id);
            if set.is_empty() {
                self.users.remove(&conn.user_id);
            }
        }
        for room in conn.rooms.keys() {
            self.unlink_room(id, room);
        }
        // Dropping the sender wakes the receiver.
    }

    fn end_all(&mut self, how: u8) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.end(id, how);
        }
    }
}

impl Inbox {
    /// Indexes the rooms the connection's feed loaded (room, seq at load) and ends the
    /// pending state.
    pub fn install<'a>(&self, rooms: impl IntoIterator<Item = (&'a str, i64)>) {
        let mut index = self.fanout.lock();
        if !index.conns.contains_key(&self.id) {
            return;
        }
        for (room, seq) in rooms {
            index.index_room(self.id, room, seq);
        }
        index.pending.remove(&self.id);
    }

    /// Indexes `room_id` for this connection until it ends (a resume of a room the feed
    /// did not know); call before reading the room from the store.
    pub fn watch(&self, room_id: &str) {
        self.fanout.lock().index_room(self.id, room_id, i64::MAX);
    }

    /// The next delivery, or why the inbox ended.
    pub async fn next(&mut self) -> Result<Delivery, Ended> {
        if let Some(end) = self.ended() {
            return Err(end);
        }
        match self.rx.recv().await {
            // A lagged connection stops at once, queued deliveries or not.
            Some(d) => self.ended().map_or(Ok(d), Err),
            None => Err(self.ended().unwrap_or(Ended::Closed)),
        }
    }

    /// The next delivery if one is waiting, or why the inbox ended.
    pub fn try_next(&mut self) -> Option<Result<Delivery, Ended>> {
        if let Some(end) = self.ended() {
            return Some(Err(end));
        }
        match self.rx.try_recv() {
            Ok(d) => Some(self.ended().map_or(Ok(d), Err)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                Some(Err(self.ended().unwrap_or(Ended::Closed)))
            }
        }
    }

    fn ended(&self) -> Option<Ended> {
        match self.end.load(Ordering::Acquire) {
            LAGGED => Some(Ended::Lagged),
            CLOSED => Some(Ended::Closed),
            _ => None,
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.fanout.lock().end(self.id, CLOSED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{LocalBus, PresenceChange};
    use std::time::Duration;

    fn message(room: &str, seq: i64) -> BusEvent {
        BusEvent::Room(Event {
            room_id: room.into(),
            seq,
            kind: EventKind::MemberRemoved {
                user_id: "nobody".into(),
                forced_by: None,
            },
        })
    }

    fn membership(room: &str, seq: i64, user: &str, added: bool) -> BusEvent {
        let kind = if added {
            EventKind::MemberAdded {
                member: sotto_api::Member {
                    user_id: user.into(),
                    username: user.into(),
                    owner: false,
                    joined_at: 1,
                    forced_by: None,
                },
            }
        } else {
            EventKind::MemberRemoved {
                user_id: user.into(),
                forced_by: None,
            }
        };
        BusEvent::Room(Event {
            room_id: room.into(),
            seq,
            kind,
        })
    }

    fn setup() -> (Arc<LocalBus>, Arc<Fanout>) {
        let bus = Arc::new(LocalBus::default());
        let fanout = Arc::new(Fanout::new(bus.clone()));
        (bus, fanout)
    }

    /// The next room delivery as (room, seq); notices are returned as ("notice", 0).
    async fn next(inbox: &mut Inbox) -> Result<(String, i64), Ended> {
        match tokio::time::timeout(Duration::from_secs(5), inbox.next())
            .await
            .expect("a delivery in time")?
        {
            Delivery::Room(e, text) => {
                let json: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                assert_eq!(json["seq"], e.seq);
                Ok((e.room_id.clone(), e.seq))
            }
            Delivery::Notice(text) | Delivery::KeysChanged(_, text) => {
                Ok((text.as_str().to_owned(), 0))
            }
        }
    }

    async fn quiet(inbox: &mut Inbox) {
        let r = tokio::time::timeout(Duration::from_millis(100), inbox.next()).await;
        assert!(r.is_err(), "unexpected delivery");
    }

    #[tokio::test]
    async fn rooms_route_to_their_connections_only() {
        let (bus, fanout) = setup();
        let mut a = fanout.register("a");
        let mut b = fanout.register("b");
        // Pending: every room event.
        bus.publish(message("r2", 1));
        assert_eq!(next(&mut a).await, Ok(("r2".into(), 1)));
        assert_eq!(next(&mut b).await, Ok(("r2".into(), 1)));
        a.install([("r1", 1)]);
        b.install([("r2", 1)]);
        bus.publish(message("r1", 2));
        bus.publish(message("r2", 2));
        assert_eq!(next(&mut a).await, Ok(("r1".into(), 2)));
        assert_eq!(next(&mut b).await, Ok(("r2".into(), 2)));
        quiet(&mut a).await;
        quiet(&mut b).await;
    }

    #[tokio::test]
    async fn joins_and_removals_update_the_index_in_bus_order() {
        let (bus, fanout) = setup();
        let mut b = fanout.register("b");
        let mut b2 = fanout.register("b");
        b.install([]);
        b2.install([]);
        bus.publish(message("r", 3));
        bus.publish(membership("r", 4, "b", true));
        bus.publish(message("r", 5));
        // A stale removal (before the join) leaves the room indexed.
        bus.publish(membership("r", 2, "b", false));
        bus.publish(message("r", 6));
        bus.publish(membership("r", 7, "b", false));
        bus.publish(message("r", 8));
        for inbox in [&mut b, &mut b2] {
            for seq in [4, 5, 2, 6, 7] {
                assert_eq!(next(inbox).await, Ok(("r".into(), seq)));
            }
            quiet(inbox).await;
        }
    }

    #[tokio::test]
    async fn presence_goes_once_to_peers_in_the_rooms_but_not_to_the_user() {
        let (bus, fanout) = setup();
        let mut a = fanout.register("a");
        let mut b = fanout.register("b");
        let mut c = fanout.register("c");
        a.install([("r1", 1), ("r2", 1)]);
        b.install([("r1", 1), ("r2", 1)]);
        c.install([("r3", 1)]);
        bus.publish(BusEvent::Presence(PresenceChange {
            user_id: "a".into(),
            online: true,
            rooms: vec!["r1".to_owned(), "r2".to_owned()].into(),
        }));
        let (text, _) = next(&mut b).await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "presence", "user_id": "a", "online": true})
        );
        quiet(&mut a).await;
        quiet(&mut b).await;
        quiet(&mut c).await;
    }

    #[tokio::test]
    async fn swapped_events_go_out_in_order_and_a_gap_after_a_while() {
        let (bus, fanout) = setup();
        let mut a = fanout.register("a");
        a.install([("r", 0)]);
        for seq in [1, 3, 2, 6, 4, 5] {
            bus.publish(message("r", seq));
        }
        for seq in 1..=6 {
            assert_eq!(next(&mut a).await, Ok(("r".into(), seq)));
        }
        // 7 never comes: 8 waits, then goes anyway.
        let start = Instant::now();
        bus.publish(message("r", 8));
        assert_eq!(next(&mut a).await, Ok(("r".into(), 8)));
        assert!(start.elapsed() >= HOLD);
        bus.publish(message("r", 9));
        assert_eq!(next(&mut a).await, Ok(("r".into(), 9)));
        quiet(&mut a).await;
    }

    #[tokio::test]
    async fn a_full_inbox_lags_without_holding_up_others() {
        let (bus, fanout) = setup();
        let mut slow = fanout.register("slow");
        let mut fast = fanout.register("fast");
        slow.install([("r", 0)]);
        fast.install([("r", 0)]);
        for seq in 1..=(INBOX_CAPACITY as i64 + 1) {
            bus.publish(message("r", seq));
            assert_eq!(next(&mut fast).await, Ok(("r".into(), seq)));
        }
        assert_eq!(next(&mut slow).await, Err(Ended::Lagged));
        // Out of the index: nothing more is queued for it.
        assert!(fanout.lock().rooms["r"].len() == 1);
    }

    #[tokio::test]
    async fn closing_the_bus_ends_every_inbox() {
        let (bus, fanout) = setup();
        let mut a = fanout.register("a");
        a.install([]);
        bus.close();
        assert_eq!(next(&mut a).await, Err(Ended::Closed));
        let mut late = fanout.register("b");
        assert_eq!(next(&mut late).await, Err(Ended::Closed));
        drop(a);
        assert!(fanout.lock().conns.is_empty());
    }
}
