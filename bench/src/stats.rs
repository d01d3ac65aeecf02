//! Summaries of timing samples.

use serde::{Deserialize, Serialize};

/// Median, 99th percentile and friends of a set of durations, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Median (mean of the two middle samples for an even count).
    pub median_us: f64,
    /// 90th percentile, nearest rank.
    #[serde(default)]
    pub p90_us: f64,
    /// 99th percentile, nearest rank.
    pub p99_us: f64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Smallest sample.
    pub min_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Summary {
    /// Summarizes durations given in nanoseconds; all zero for no samples.
    pub fn of_ns(samples: &[u64]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let us = |ns: u64| ns as f64 / 1000.0;
        let n = sorted.len();
        let median = if n % 2 == 1 {
            us(sorted[n / 2])
        } else {
            f64::midpoint(us(sorted[n / 2 - 1]), us(sorted[n / 2]))
        };
        // Nearest rank: the smallest sample with at least pct% at or below it.
        let rank = |pct: usize| us(sorted[(n * pct).div_ceil(100).max(1) - 1]);
        Summary {
            count: n,
            median_us: median,
            p90_us: rank(90),
            p99_us: rank(99),
            mean_us: sorted.iter().map(|&s| us(s)).sum::<f64>() / n as f64,
            min_us: us(sorted[0]),
            max_us: us(sorted[n - 1]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p99_of_a_hundred() {
        let samples: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        let s = Summary::of_ns(&samples);
        assert_eq!(s.count, 100);
        assert!((s.median_us - 50.5).abs() < 1e-9);
        assert!((s.p99_us - 99.0).abs() < 1e-9);
        assert!((s.min_us - 1.0).abs() < 1e-9 && (s.max_us - 100.0).abs() < 1e-9);
    }

    #[test]
    fn small_sets_take_their_largest_as_p99() {
        let s = Summary::of_ns(&[3000, 1000, 2000]);
        assert!((s.median_us - 2.0).abs() < 1e-9);
        assert!((s.p99_us - 3.0).abs() < 1e-9);
        assert_eq!(Summary::of_ns(&[]), Summary::default());
    }
}
