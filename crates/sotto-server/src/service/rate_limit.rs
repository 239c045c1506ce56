//! In-memory token buckets for login attempts, bounded in memory: at most `max_keys`
//! buckets; when full, buckets that have refilled carry no information and go first,
//! then the least recently touched one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token buckets keyed by text (an account or an address).
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    burst: f64,
    refill_every: Duration,
    max_keys: usize,
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
            buckets: Mutex::new(HashMap::new()),
            burst: f64::from(burst),
            refill_every,
            max_keys: max_keys.max(1),
        }
    }

    /// `Ok` if `key` has an attempt left; otherwise how long until it has one.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let buckets = self.lock();
        match buckets.get(key) {
            Some(b) => self.wait_for(self.refilled(*b, now)),
            None => Ok(()),
        }
    }

    /// Uses one attempt of `key`.
    pub fn consume(&self, key: &str, now: Instant) {
        let mut buckets = self.lock();
        if !buckets.contains_key(key) && buckets.len() >= self.max_keys {
            self.make_room(&mut buckets, now);
        }
        let fresh = Bucket {
            tokens: self.burst,
            updated: now,
        };
        let b = buckets.get(key).map_or(fresh, |b| self.refilled(*b, now));
        buckets.insert(
            key.to_owned(),
            Bucket {
                tokens: (b.tokens - 1.0).max(0.0),
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bucket>> {
        // A poisoned map only holds counters; keep using it.
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

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

    fn make_room(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        buckets.retain(|_, b| self.refilled(*b, now).tokens < self.burst);
        if buckets.len() >= self.max_keys
            && let Some(oldest) = buckets
                .iter()
                .min_by_key(|(_, b)| b.updated)
                .map(|(k, _)| k.clone())
        {
            buckets.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
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
}
