//! Latency histograms and the figures printed from them.

use hdrhistogram::Histogram;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Highest latency recorded exactly: anything slower is recorded as this (and still
/// counted), so one pathological stall cannot make recording fail.
const MAX_MICROS: u64 = 120_000_000;

/// Latencies in microseconds, 3 significant digits.
#[derive(Clone)]
pub(crate) struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"))
    }
}

impl Latencies {
    pub(crate) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at `quantile` (0..=1); zero when empty.
    pub(crate) fn quantile(&self, quantile: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.0.value_at_quantile(quantile))
    }

    pub(crate) fn max(&self) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.0.max())
    }

    pub(crate) fn summary(&self) -> Summary {
        Summary {
            count: self.count(),
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max(),
        }
    }
}

/// A histogram shared by many tasks; recording is a short uncontended lock.
#[derive(Default)]
pub(crate) struct SharedLatencies(Mutex<Latencies>);

impl SharedLatencies {
    pub(crate) fn record(&self, latency: Duration) {
        self.lock().record(latency);
    }

    /// The histogram so far, leaving this one empty.
    pub(crate) fn take(&self) -> Latencies {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Latencies> {
        // A poisoned histogram only holds counts; keep using it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The printed figures of one histogram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Summary {
    pub(crate) count: u64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) p999: Duration,
    pub(crate) max: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} p50={} p99={} p99.9={} max={}",
            self.count,
            ms(self.p50),
            ms(self.p99),
            ms(self.p999),
            ms(self.max)
        )
    }
}

/// Milliseconds with three decimals (the histogram's resolution is the microsecond).
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Events per second over `elapsed`; zero for an empty interval.
pub(crate) fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(values_ms: impl IntoIterator<Item = u64>) -> Latencies {
        let mut h = Latencies::default();
        for v in values_ms {
            h.record(Duration::from_millis(v));
        }
        h
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        // 1..=1000 ms: the p-th percentile is p*10 ms, within the histogram's 0.1 %.
        let s = filled(1..=1000).summary();
        assert_eq!(s.count, 1000);
        let close = |d: Duration, want_ms: f64| {
            let got = d.as_secs_f64() * 1000.0;
            assert!(
                (got - want_ms).abs() <= want_ms * 0.001 + 0.001,
                "{got} vs {want_ms}"
            );
        };
        close(s.p50, 500.0);
        close(s.p99, 990.0);
        close(s.p999, 999.0);
        close(s.max, 1000.0);
    }

    #[test]
    fn one_stall_shows_in_the_tail_not_the_median() {
        // Two stalls in 1,000: beyond p99, inside p99.9.
        let mut values: Vec<u64> = vec![2; 998];
        values.extend([5_000, 5_000]);
        let s = filled(values).summary();
        assert_eq!(s.p50, Duration::from_millis(2));
        assert_eq!(s.p99, Duration::from_millis(2));
        assert!(s.max >= Duration::from_millis(4_995), "{:?}", s.max);
        assert!(s.p999 >= Duration::from_millis(4_995), "{:?}", s.p999);
    }

    #[test]
    fn extremes_are_kept_not_dropped() {
        let mut h = Latencies::default();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(3600));
        assert_eq!(h.count(), 2);
        assert!(h.max() >= Duration::from_secs(119));
    }

    #[test]
    fn empty_and_merged_histograms() {
        let empty = Latencies::default().summary();
        assert_eq!(empty.count, 0);
        assert_eq!(empty.max, Duration::ZERO);

        let shared = SharedLatencies::default();
        shared.record(Duration::from_millis(1));
        shared.record(Duration::from_millis(3));
        shared.record(Duration::from_millis(7));
        let total = shared.take();
        assert_eq!(shared.take().count(), 0, "take leaves it empty");
        assert_eq!(total.count(), 3);
        let max = total.max().as_secs_f64() * 1000.0;
        assert!((7.0..=7.01).contains(&max), "{max}");
    }

    #[test]
    fn printed_figures() {
        let s = filled([1, 1, 1, 20]).summary();
        let text = s.to_string();
        assert!(text.starts_with("n=4 p50=1.000 ms p99=20."), "{text}");
        assert_eq!(per_second(50, Duration::from_secs(2)), 25.0);
        assert_eq!(per_second(50, Duration::ZERO), 0.0);
    }
}
