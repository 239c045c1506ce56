//! Limits on how often and how many: in-memory token buckets (login attempts, message
//! sends), bounded in memory, and counted slots (open realtime connections).
//!
//! Buckets are bounded: at most `max_keys`; when full, buckets that have refilled carry
//! no information and go first, then the least recently touched one.

use super::ServiceError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Token buckets keyed by text (an account, an address or a user id).
pub struct RateLimiter {
    inner: Mutex<Buckets>,
    max_keys: usize,
}

struct Buckets {
    map: HashMap<String, Bucket>,
    burst: f64,
    refill_every: Duration,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `burst` attempts at once, then one more every `refill_every`.
    pub fn new(burst: u32, refill_every: Duration, max_keys: usize) -> Self {
        Self {
            inner: Mutex::new(Buckets {
                map: HashMap::new(),
                burst: f64::from(burst.max(1)),
                refill_every: refill_every.max(Duration::from_micros(1)),
            }),
            max_keys: max_keys.max(1),
        }
    }

    /// Changes the rate (the server's builder, for tests); buckets start afresh.
    pub fn set_rate(&self, burst: u32, refill_every: Duration) {
        let mut b = self.lock();
        b.map.clear();
        b.burst = f64::from(burst.max(1));
        b.refill_every = refill_every.max(Duration::from_micros(1));
    }

    /// `Ok` if `key` has an attempt left; otherwise how long until it has one.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let b = self.lock();
        match b.map.get(key) {
            Some(bucket) => b.wait_for(b.refilled(*bucket, now)),
            None => Ok(()),
        }
    }

    /// Uses one attempt of `key`.
    pub fn consume(&self, key: &str, now: Instant) {
        let mut b = self.lock();
        if !b.map.contains_key(key) && b.map.len() >= self.max_keys {
            b.make_room(self.max_keys, now);
        }
        let fresh = Bucket {
            tokens: b.burst,
            updated: now,
        };
        let bucket = b.map.get(key).map_or(fresh, |x| b.refilled(*x, now));
        b.map.insert(
            key.to_owned(),
            Bucket {
                tokens: (bucket.tokens - 1.0).max(0.0),
                updated: now,
            },
        );
    }

    /// Checks and, if allowed, consumes in one step.
    pub fn attempt(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.check(key, now)?;
        self.consume(key, now);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Buckets> {
        // A poisoned map only holds counters; keep using it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map.len()
    }
}

impl Buckets {
    fn refilled(&self, b: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        let gained = elapsed / self.refill_every.as_secs_f64();
        Bucket {
            tokens: (b.tokens + gained).min(self.burst),
            updated: now,
        }
    }

    fn wait_for(&self, b: Bucket) -> Result<(), Duration> {
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            Err(self.refill_every.mul_f64(1.0 - b.tokens))
        }
    }

    fn make_room(&mut self, max_keys: usize, now: Instant) {
        let full = |b: &Bucket| self.refilled(*b, now).tokens >= self.burst;
        let stale: Vec<String> = self
            .map
            .iter()
            .filter(|(_, b)| full(b))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.map.remove(&k);
        }
        if self.map.len() >= max_keys
            && let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, b)| b.updated)
                .map(|(k, _)| k.clone())
        {
            self.map.remove(&oldest);
        }
    }
}

/// The service error for a refused attempt: whole seconds to wait, at least one.
pub fn limited(wait: Duration) -> ServiceError {
    ServiceError::RateLimited {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

/// Open things counted per key and in total, each count capped. A [`Slot`] holds one
/// until dropped.
pub struct Slots {
    counts: Mutex<SlotCounts>,
    per_key: usize,
    total: usize,
}

#[derive(Default)]
struct SlotCounts {
    per_key: HashMap<String, usize>,
    total: usize,
}

/// Why a slot was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRefused {
    /// The key holds `per_key` slots already.
    PerKey,
    /// `total` slots are taken.
    Total,
}

/// One taken slot; dropping it gives it back.
pub struct Slot {
    slots: Arc<Slots>,
    key: String,
}

impl Slots {
    /// At most `per_key` slots for one key and `total` for all keys.
    pub fn new(per_key: usize, total: usize) -> Self {
        Self {
            counts: Mutex::new(SlotCounts::default()),
            per_key,
            total,
        }
    }

    /// Takes a slot for `key`, unless a cap is reached.
    pub fn take(self: &Arc<Self>, key: &str) -> Result<Slot, SlotRefused> {
        let mut c = self.lock();
        if c.total >= self.total {
            return Err(SlotRefused::Total);
        }
        let n = c.per_key.entry(key.to_owned()).or_insert(0);
        if *n >= self.per_key {
            return Err(SlotRefused::PerKey);
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            slots: self.clone(),
            key: key.to_owned(),
        })
    }

    /// Slots taken now, for `key` and in total.
    pub fn taken(&self, key: &str) -> (usize, usize) {
        let c = self.lock();
        (c.per_key.get(key).copied().unwrap_or(0), c.total)
    }

    fn lock(&self) -> MutexGuard<'_, SlotCounts> {
        // Every change is one step: a poisoned lock still holds true counts.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refills() {
        let l = RateLimiter::new(3, Duration::from_secs(10), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            l.attempt("a", t0).unwrap();
        }
        let wait = l.attempt("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(l.attempt("b", t0).is_ok(), "keys are independent");
        assert!(l.attempt("a", t0 + Duration::from_secs(5)).is_err());
        assert!(l.attempt("a", t0 + Duration::from_secs(10)).is_ok());
        // Checking alone never uses an attempt.
        let later = t0 + Duration::from_secs(100);
        for _ in 0..10 {
            l.check("a", later).unwrap();
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let l = RateLimiter::new(2, Duration::from_secs(60), 50);
        let t0 = Instant::now();
        for i in 0..1000 {
            l.consume(&format!("k{i}"), t0 + Duration::from_millis(i));
        }
        assert!(l.len() <= 50);
        // The most recent key is still limited.
        l.consume("k999", t0 + Duration::from_millis(999));
        assert!(l.check("k999", t0 + Duration::from_millis(999)).is_err());
    }

    #[test]
    fn a_new_rate_applies_at_once() {
        let l = RateLimiter::new(100, Duration::from_secs(1), 10);
        let t0 = Instant::now();
        l.set_rate(1, Duration::from_secs(60));
        l.attempt("a", t0).unwrap();
        assert_eq!(l.attempt("a", t0).unwrap_err(), Duration::from_secs(60));
    }

    #[test]
    fn slots_are_capped_per_key_and_in_total_and_given_back() {
        let s = Arc::new(Slots::new(2, 3));
        let a1 = s.take("a").unwrap();
        let _a2 = s.take("a").unwrap();
        assert_eq!(s.take("a").err(), Some(SlotRefused::PerKey));
        let _b1 = s.take("b").unwrap();
        assert_eq!(s.take("c").err(), Some(SlotRefused::Total));
        drop(a1);
        assert_eq!(s.taken("a"), (1, 2));
        let _c1 = s.take("c").unwrap();
        assert_eq!(s.taken("c"), (1, 3));
    }
}
