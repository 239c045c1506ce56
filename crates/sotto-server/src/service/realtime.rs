//! What one realtime connection delivers, room by room, in strictly increasing seq.
//!
//! A [`Feed`] keeps the user's rooms (loaded once, then updated from the user's own
//! membership events, so live delivery needs no query per event) and the last seq sent
//! per room. Events are published after their commit, so they may arrive swapped or,
//! after a lag, not at all; a room's seqs commit in order, though, so on a gap the store
//! has everything up to the event that revealed it, and the feed reads it from there.
//!
//! The rules on who sees what: a member gets every change of the room; someone removed
//! gets their own `member_removed` and then nothing more from that room.

use super::ServiceError;
use crate::bus::{Event, EventKind};
use crate::store::RoomStore;
use std::collections::HashMap;
use std::sync::Arc;

/// Changes read from the store per query while catching up.
pub const CATCH_UP_PAGE: u32 = 200;

/// One connection's view of the user's rooms.
pub struct Feed {
    store: Arc<dyn RoomStore>,
    user_id: String,
    /// The user's rooms → the last seq this connection has accounted for there.
    last: HashMap<String, i64>,
    pending: Option<CatchUp>,
}

/// What to do with a live event.
#[derive(Debug)]
pub enum Step {
    /// Nothing: not the user's room, or already sent.
    Skip,
    /// Send the event itself.
    Send,
    /// Send this page read from the store instead (a gap was filled).
    Pages(Vec<Event>),
}

/// A catch-up in progress in one room.
struct CatchUp {
    room_id: String,
    /// Where the client's knowledge starts: a message created after it is new to them.
    origin: i64,
    /// The last seq read from the store.
    cursor: i64,
    /// The live event that revealed the gap, if it may still need handling afterwards.
    then: Option<Event>,
}

impl Feed {
    /// The feed of `user_id`, starting after each room's current seq.
    pub async fn open(store: Arc<dyn RoomStore>, user_id: &str) -> Result<Self, ServiceError> {
        let last = store
            .rooms_of_user(user_id)
            .await?
            .into_iter()
            .map(|r| (r.id, r.seq))
            .collect();
        Ok(Self {
            store,
            user_id: user_id.to_owned(),
            last,
            pending: None,
        })
    }

    /// Whether the feed counts `room_id` among the user's rooms.
    pub fn has_room(&self, room_id: &str) -> bool {
        self.last.contains_key(room_id)
    }

    fn own_join(&self, e: &Event) -> bool {
        match &e.kind {
            EventKind::MemberAdded { member } => member.user_id == self.user_id,
            EventKind::RoomCreated { member_ids, .. } => member_ids.contains(&self.user_id),
            _ => false,
        }
    }

    fn own_removal(&self, e: &Event) -> bool {
        matches!(&e.kind, EventKind::MemberRemoved { user_id, .. } if *user_id == self.user_id)
    }

    /// Accounts for `e` in a room of the user: advances the room, forgets it on removal.
    fn advance(&mut self, e: &Event) {
        if self.own_removal(e) {
            self.last.remove(&e.room_id);
        } else {
            self.last.insert(e.room_id.clone(), e.seq);
        }
    }

    /// Sends `e` in a room of the user.
    fn accept(&mut self, e: Event, out: &mut Vec<Event>) {
        self.advance(&e);
        out.push(e);
    }

    /// The user joined: after the join, send whatever the room saw since (a later event
    /// that overtook the join was dropped, as the room was not the user's yet).
    fn start_join(&mut self, e: &Event) {
        self.pending = Some(CatchUp {
            room_id: e.room_id.clone(),
            origin: e.seq,
            cursor: e.seq,
            then: None,
        });
    }

    /// The user joined: send the join, then the catch-up.
    fn join(&mut self, e: Event, out: &mut Vec<Event>) {
        self.start_join(&e);
        self.accept(e, out);
    }

    /// A live event from the bus: what to send now. Call [`Feed::more`] until it answers
    /// `None` before the next call.
    pub async fn live(&mut self, e: Event) -> Result<Vec<Event>, ServiceError> {
        Ok(match self.step(&e).await? {
            Step::Skip => Vec::new(),
            Step::Send => vec![e],
            Step::Pages(page) => page,
        })
    }

    /// Like [`Feed::live`], without taking the event: whether to send it as it is
    /// (already serialised once for every connection), or a page read from the store.
    pub async fn step(&mut self, e: &Event) -> Result<Step, ServiceError> {
        match self.last.get(&e.room_id).copied() {
            Some(last) if e.seq <= last => Ok(Step::Skip),
            Some(last) if e.seq == last + 1 => {
                self.advance(e);
                Ok(Step::Send)
            }
            Some(last) => {
                self.pending = Some(CatchUp {
                    room_id: e.room_id.clone(),
                    origin: last,
                    cursor: last,
                    then: Some(e.clone()),
                });
                Ok(Step::Pages(self.more().await?.unwrap_or_default()))
            }
            None if self.own_join(e) => {
                self.start_join(e);
                self.advance(e);
                Ok(Step::Send)
            }
            None => Ok(Step::Skip),
        }
    }

    /// The user's rooms and the seq accounted for in each.
    pub fn rooms(&self) -> impl Iterator<Item = (&str, i64)> {
        self.last.iter().map(|(r, &s)| (r.as_str(), s))
    }

    /// Whether the store counts the user a member of `room_id` now.
    pub async fn is_member(&self, room_id: &str) -> Result<bool, ServiceError> {
        Ok(self.store.member(room_id, &self.user_id).await?.is_some())
    }

    /// The ids of the user's rooms.
    pub fn room_ids(&self) -> Arc<[String]> {
        self.last.keys().cloned().collect()
    }

    /// The client's `resume` for one room, after `after`: a member gets every change since
    /// (events already sent on this connection may come again); someone removed since
    /// gets their removal only; anyone else nothing, whether the room exists or not.
    pub async fn resume(&mut self, room_id: &str, after: i64) -> Result<Vec<Event>, ServiceError> {
        let member =
            self.has_room(room_id) || self.store.member(room_id, &self.user_id).await?.is_some();
        if member {
            self.last.insert(room_id.to_owned(), after);
            self.pending = Some(CatchUp {
                room_id: room_id.to_owned(),
                origin: after,
                cursor: after,
                then: None,
            });
            return Ok(self.more().await?.unwrap_or_default());
        }
        Ok(self
            .store
            .last_removal(room_id, &self.user_id, after)
            .await?
            .into_iter()
            .collect())
    }

    /// The next page of a catch-up in progress, or `None` once there is none.
    pub async fn more(&mut self) -> Result<Option<Vec<Event>>, ServiceError> {
        let Some(mut c) = self.pending.take() else {
            return Ok(None);
        };
        let page = self
            .store
            .changes_since(&c.room_id, c.cursor, CATCH_UP_PAGE)
            .await?;
        let full = page.len() == CATCH_UP_PAGE as usize;
        let mut out = Vec::with_capacity(page.len());
        for mut e in page {
            if !self.has_room(&c.room_id) {
                break;
            }
            c.cursor = e.seq;
            // Pages after the first read from a later point; the client's is `origin`.
            if let EventKind::MessageEdited { message } = &e.kind
                && message.seq > c.origin
            {
                e.kind = EventKind::MessageCreated {
                    message: message.clone(),
                };
            }
            self.accept(e, &mut out);
        }
        if self.has_room(&c.room_id) {
            if full {
                self.pending = Some(c);
            }
        } else if let Some(then) = c.then.take()
            && then.seq > c.cursor
            && self.own_join(&then)
        {
            // Removed within the gap, and the event that revealed it is a later rejoin.
            self.join(then, &mut out);
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemberRecord, MessageRecord, RoomRecord, Stores, UserRecord};
    use crate::test_support::sqlite_stores;
    use sotto_api::RoomKind;

    async fn user(s: &Stores, id: &str) {
        s.users
            .insert_user(&UserRecord {
                id: id.into(),
                username: id.into(),
                display_name: id.into(),
                password_hash: "x".into(),
                admin: false,
                deactivated: false,
                created_at: 1,
            })
            .await
            .unwrap();
    }

    fn member(id: &str) -> MemberRecord {
        MemberRecord {
            user_id: id.into(),
            username: String::new(),
            owner: false,
            joined_at: 1,
        }
    }

    async fn say(s: &Stores, id: &str) -> Event {
        let m = MessageRecord {
            room_id: "r".into(),
            id: id.into(),
            seq: 0,
            version_seq: 0,
            sender_id: "a".into(),
            text: Some(id.into()),
            ciphertext: None,
            mentions: vec![],
            content_hash: id.into(),
            created_at: 1,
            edited_at: None,
            deleted: false,
        };
        let crate::store::Inserted::New(m) = s.messages.insert_message(&m).await.unwrap() else {
            panic!("not new")
        };
        Event {
            room_id: "r".into(),
            seq: m.seq,
            kind: EventKind::MessageCreated {
                message: crate::store::message_view(&m),
            },
        }
    }

    async fn drain(feed: &mut Feed, mut out: Vec<Event>) -> Vec<i64> {
        while let Some(page) = feed.more().await.unwrap() {
            out.extend(page);
        }
        out.iter().map(|e| e.seq).collect()
    }

    fn channel() -> RoomRecord {
        RoomRecord {
            id: "r".into(),
            kind: RoomKind::Channel,
            private: false,
            name: Some("r".into()),
            topic: String::new(),
            parent_id: None,
            encrypted: false,
            created_by: "a".into(),
            created_at: 1,
            seq: 1,
            dm_key: None,
        }
    }

    /// A long catch-up comes in pages, each change once and in order, and a message
    /// edited after the first page is still new to the client.
    #[tokio::test]
    async fn resume_pages_through_a_long_gap() {
        let (_dir, s) = sqlite_stores().await;
        user(&s, "a").await;
        s.rooms
            .insert_room(&channel(), &[member("a")])
            .await
            .unwrap();
        for i in 0..450 {
            say(&s, &format!("m{i}")).await;
        }
        // m0 (seq 2) is edited last, so it comes on the last page.
        s.messages
            .edit_message("r", "m0", Some("new"), None, &[], 2)
            .await
            .unwrap()
            .unwrap();
        let mut a = Feed::open(s.rooms.clone(), "a").await.unwrap();
        let first = a.resume("r", 1).await.unwrap();
        assert_eq!(first.len(), CATCH_UP_PAGE as usize);
        let mut all = first;
        while let Some(page) = a.more().await.unwrap() {
            all.extend(page);
        }
        let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (3..=452).collect::<Vec<_>>());
        let last = all.last().unwrap();
        let EventKind::MessageCreated { message } = &last.kind else {
            panic!("{last:?}")
        };
        assert_eq!(
            (message.id.as_str(), message.text.as_deref()),
            ("m0", Some("new"))
        );
        assert!(
            all.iter()
                .all(|e| matches!(e.kind, EventKind::MessageCreated { .. }))
        );
        // Caught up: the next live event continues the room.
        let next = say(&s, "next").await;
        assert_eq!(a.live(next).await.unwrap().len(), 1);
    }

    /// Events that overtake each other, or never arrive, still reach the member once each
    /// and in order; a join overtaken by the room's next event loses nothing.
    #[tokio::test]
    async fn swapped_and_missing_events_are_delivered_in_order() {
        let (_dir, s) = sqlite_stores().await;
        user(&s, "a").await;
        user(&s, "b").await;
        s.rooms
            .insert_room(&channel(), &[member("a")])
            .await
            .unwrap();
        let mut b = Feed::open(s.rooms.clone(), "b").await.unwrap();
        let mut a = Feed::open(s.rooms.clone(), "a").await.unwrap();

        // b joins (2) and a message follows (3); the message is published first.
        let join = s
            .rooms
            .add_member("r", &member("b"))
            .await
            .unwrap()
            .unwrap();
        let m3 = say(&s, "m3").await;
        let out = b.live(m3.clone()).await.unwrap();
        assert!(out.is_empty(), "not b's room yet");
        let out = b.live(join.clone()).await.unwrap();
        assert_eq!(drain(&mut b, out).await, [2, 3]);

        // Swapped: 5 before 4, and 6 never published.
        let m4 = say(&s, "m4").await;
        let m5 = say(&s, "m5").await;
        let _m6 = say(&s, "m6").await;
        let m7 = say(&s, "m7").await;
        let mut seen = Vec::new();
        for e in [m5, m4, m7] {
            let out = b.live(e).await.unwrap();
            seen.extend(drain(&mut b, out).await);
        }
        assert_eq!(seen, [4, 5, 6, 7]);

        // a saw the join and message 3 live, in order: no store reads needed.
        let mut seen = Vec::new();
        for e in [join, m3] {
            let out = a.live(e).await.unwrap();
            seen.extend(drain(&mut a, out).await);
        }
        assert_eq!(seen, [2, 3]);

        // Removed: told once, then nothing; resume gives only the removal.
        let removed = s.rooms.remove_member("r", "b").await.unwrap().unwrap();
        let m9 = say(&s, "m9").await;
        let out = b.live(m9).await.unwrap();
        assert_eq!(
            drain(&mut b, out).await,
            [8],
            "the removal, not the message after"
        );
        assert!(!b.has_room("r"));
        assert!(b.live(removed.clone()).await.unwrap().is_empty());
        let again = b.resume("r", 3).await.unwrap();
        assert_eq!(again, [removed]);
        assert!(b.resume("r", 8).await.unwrap().is_empty());
        assert!(b.resume("nope", 0).await.unwrap().is_empty());
    }
}
