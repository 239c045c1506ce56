//! In-memory copies of what nearly every request reads: the session behind a bearer
//! token, its user, and a user's access to a room. With them a send asks the database
//! only to store the message.
//!
//! Each store keeps its copies exact: the method that changes a session, a user or a
//! membership in the database drops the affected entries once the change is committed,
//! before it returns, so the change holds for the next request. A read that raced such a
//! change must not put back what it read before the change: every cache has a
//! generation, bumped on each drop, and a read is kept only if the generation did not
//! move while the database was asked. Only found records are kept (an unknown token or
//! room goes to the database each time), so inserts drop nothing.
//!
//! This holds for changes made through this process's stores. The only other writer of
//! the same tables is `sotto admin create-user`, which only adds a user. Several server
//! nodes on one database will need the same drops sent between them.

use super::rooms::RoomAccess;
use super::{SessionRecord, UserRecord};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Most entries per cache; a full cache is emptied and refills from use.
const CAPACITY: usize = 100_000;

/// Every cache of one store.
#[derive(Default)]
pub(super) struct Caches {
    /// Sessions by token hash.
    pub(super) sessions: Cache<String, SessionRecord>,
    /// Users by id.
    pub(super) users: Cache<String, UserRecord>,
    /// Room access by (room id, user id).
    pub(super) access: Cache<(String, String), RoomAccess>,
}

/// A map whose entries are dropped on change; see the module's comment.
pub(super) struct Cache<K, V> {
    inner: Mutex<Entries<K, V>>,
}

struct Entries<K, V> {
    map: HashMap<K, V>,
    generation: u64,
}

/// What a caller must hand back to [`Cache::keep`]: the generation before its read.
#[derive(Clone, Copy)]
pub(super) struct Ticket(u64);

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Entries {
                map: HashMap::new(),
                generation: 0,
            }),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    fn lock(&self) -> MutexGuard<'_, Entries<K, V>> {
        // Every change under the lock leaves the map whole, so a panic elsewhere
        // while it was held does not make it wrong.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry if cached, or a ticket to keep what the database answers.
    pub(super) fn get<Q>(&self, key: &Q) -> Result<V, Ticket>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.lock();
        entries
            .map
            .get(key)
            .cloned()
            .ok_or(Ticket(entries.generation))
    }

    /// Keeps a value read from the database, unless something was dropped since `ticket`.
    pub(super) fn keep(&self, ticket: Ticket, key: K, value: V) {
        let mut entries = self.lock();
        if entries.generation != ticket.0 {
            return;
        }
        if entries.map.len() >= CAPACITY {
            entries.map.clear();
        }
        entries.map.insert(key, value);
    }

    /// Drops every entry `matches` picks (called after the change is committed).
    pub(super) fn drop_where(&self, mut matches: impl FnMut(&K, &V) -> bool) {
        let mut entries = self.lock();
        entries.generation += 1;
        entries.map.retain(|k, v| !matches(k, v));
    }

    /// Changes the entry for `key` in place, if cached; for changes no reader could
    /// have raced into a wrong answer (a newer last-use time).
    pub(super) fn update<Q>(&self, key: &Q, change: impl FnOnce(&mut V))
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if let Some(v) = self.lock().map.get_mut(key) {
            change(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_a_drop_is_not_kept() {
        let cache: Cache<String, u32> = Cache::default();
        let Err(ticket) = cache.get("a") else {
            panic!("empty cache answered")
        };
        // The value changes in the database and the cache is told, while "a" is read.
        cache.drop_where(|k, _| k == "a");
        cache.keep(ticket, "a".into(), 1);
        assert!(cache.get("a").is_err(), "a stale read was kept");
        let Err(ticket) = cache.get("a") else {
            panic!("dropped entry answered")
        };
        cache.keep(ticket, "a".into(), 2);
        assert_eq!(cache.get("a").ok(), Some(2));
    }

    #[test]
    fn drops_and_updates_reach_only_what_they_pick() {
        let cache: Cache<String, u32> = Cache::default();
        for (k, v) in [("a", 1), ("b", 2)] {
            let ticket = cache.get(k).unwrap_err();
            cache.keep(ticket, k.into(), v);
        }
        cache.update("b", |v| *v = 3);
        cache.update("c", |v| *v = 4);
        assert!(cache.get("c").is_err(), "an update added an entry");
        cache.drop_where(|_, v| *v == 1);
        assert!(cache.get("a").is_err());
        assert_eq!(cache.get("b").ok(), Some(3));
    }
}
