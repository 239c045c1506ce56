//! The open-loop schedule: event `i` is due at `i / rate` seconds after the start, whatever
//! happened to the events before it, and its latency counts from that moment. Message ids
//! carry the due time, so a receiver needs no shared state to compute the latency.

use std::time::Duration;
use tokio::time::Instant;

/// `count` events at a fixed `rate` per second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    pub(crate) rate: f64,
    pub(crate) count: u64,
}

impl Schedule {
    /// As many events as `rate` gives in `duration` (at least one).
    pub(crate) fn for_duration(rate: f64, duration: Duration) -> Self {
        assert!(rate > 0.0 && rate.is_finite(), "rate must be positive");
        let count = (rate * duration.as_secs_f64()).floor().max(1.0) as u64;
        Self { rate, count }
    }

    /// When event `i` is due, after the start.
    pub(crate) fn offset(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// Runs `fire(i, due)` for every event at its due time (immediately, in order, for
    /// those already overdue). `fire` must not block: it spawns the work.
    pub(crate) async fn run(&self, start: Instant, mut fire: impl FnMut(u64, Instant)) {
        for i in 0..self.count {
            let due = start + self.offset(i);
            tokio::time::sleep_until(due).await;
            fire(i, due);
        }
    }
}

/// A message id that says when it was due: `<tag>-<micros after the run's epoch>-<n>`.
pub(crate) fn message_id(tag: &str, due_after_epoch: Duration, n: u64) -> String {
    format!("{tag}-{}-{n}", due_after_epoch.as_micros())
}

/// The due time (after the run's epoch) in a message id made by [`message_id`] with this
/// `tag`; `None` for any other id.
pub(crate) fn due_of(tag: &str, id: &str) -> Option<Duration> {
    let rest = id.strip_prefix(tag)?.strip_prefix('-')?;
    let (micros, n) = rest.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    micros.parse().ok().map(Duration::from_micros)
}

/// Finds a message id of this run in a raw event frame without parsing the JSON: the tag
/// is random, so it appears in a frame only as such an id.
pub(crate) fn find_message_id<'a>(tag: &str, frame: &'a str) -> Option<&'a str> {
    let start = frame.find(&format!("\"{tag}-"))? + 1;
    let len = frame[start..].find('"')?;
    Some(&frame[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_evenly_spaced_from_the_start() {
        let s = Schedule::for_duration(50.0, Duration::from_secs(10));
        assert_eq!(s.count, 500);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(20));
        assert_eq!(s.offset(499), Duration::from_millis(9_980));
        let fractional = Schedule::for_duration(3.0, Duration::from_secs(1));
        assert_eq!(fractional.count, 3);
        assert!(
            fractional
                .offset(1)
                .abs_diff(Duration::from_nanos(333_333_333))
                < Duration::from_nanos(2)
        );
        assert_eq!(Schedule::for_duration(0.1, Duration::from_secs(1)).count, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn events_fire_at_their_due_times() {
        let s = Schedule {
            rate: 10.0,
            count: 5,
        };
        let start = Instant::now();
        let mut seen = Vec::new();
        s.run(start, |i, due| {
            seen.push((i, due - start, Instant::now() - start))
        })
        .await;
        let want: Vec<_> = (0..5)
            .map(|i| {
                (
                    i,
                    Duration::from_millis(100 * i),
                    Duration::from_millis(100 * i),
                )
            })
            .collect();
        assert_eq!(seen, want);
    }

    #[tokio::test(start_paused = true)]
    async fn overdue_events_fire_at_once_with_their_original_due_time() {
        let s = Schedule {
            rate: 100.0,
            count: 4,
        };
        let start = Instant::now();
        tokio::time::advance(Duration::from_millis(25)).await;
        let mut seen = Vec::new();
        s.run(start, |i, due| {
            seen.push((i, due - start, Instant::now() - start))
        })
        .await;
        // Events 0..=2 were due before "now" (25 ms): they fire immediately but keep
        // their due times, so their latency includes the delay.
        assert_eq!(seen[0], (0, Duration::ZERO, Duration::from_millis(25)));
        assert_eq!(
            seen[2],
            (2, Duration::from_millis(20), Duration::from_millis(25))
        );
        assert_eq!(
            seen[3],
            (3, Duration::from_millis(30), Duration::from_millis(30))
        );
    }

    #[test]
    fn ids_carry_their_due_time() {
        let id = message_id("b1f2", Duration::from_micros(1_234_567), 42);
        assert_eq!(id, "b1f2-1234567-42");
        assert_eq!(due_of("b1f2", &id), Some(Duration::from_micros(1_234_567)));
        assert_eq!(due_of("other", &id), None);
        assert_eq!(due_of("b1f2", "b1f2-12"), None);
        assert_eq!(due_of("b1f2", "b1f2-x-1"), None);
        assert_eq!(due_of("b1f2", "b1f2-1-"), None);
    }

    #[test]
    fn ids_are_found_in_raw_frames() {
        let frame = r#"{"room_id":"r1","seq":7,"type":"message_created","message":{"id":"t9-1500-3","room_id":"r1","text":"hi"}}"#;
        assert_eq!(find_message_id("t9", frame), Some("t9-1500-3"));
        assert_eq!(find_message_id("t8", frame), None);
        assert_eq!(find_message_id("t9", r#"{"type":"presence"}"#), None);
    }
}
