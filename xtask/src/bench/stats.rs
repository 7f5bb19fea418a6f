//! Order statistics over timing samples.

use serde_json::{json, Value};
use std::time::Duration;

/// Median, extremes and p99 of a set of samples, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// 99th percentile, nearest rank (meaningful for many samples only).
    pub p99: f64,
}

impl Summary {
    /// Summarises `samples`; all zero when there are none.
    pub fn of(samples: &[Duration]) -> Summary {
        let secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
        Summary::of_values(&secs)
    }

    /// Summarises plain numbers (rates, or times a guest printed); all zero when there are none.
    pub fn of_values(samples: &[f64]) -> Summary {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n == 0 {
            return Summary {
                n,
                median: 0.0,
                mean: 0.0,
                min: 0.0,
                max: 0.0,
                p99: 0.0,
            };
        }
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        let rank = ((0.99 * n as f64).ceil() as usize).clamp(1, n);
        Summary {
            n,
            median,
            mean: s.iter().sum::<f64>() / n as f64,
            min: s[0],
            max: s[n - 1],
            p99: s[rank - 1],
        }
    }

    /// `1.02 s median (0.98–1.10)`, in seconds.
    pub fn secs(&self) -> String {
        format!("{:.3} s median ({:.3}–{:.3})", self.median, self.min, self.max)
    }

    /// `2.1 ms median (1.8–5.0), p99 4.2 ms`, in milliseconds.
    pub fn millis_p99(&self) -> String {
        let ms = |v: f64| v * 1e3;
        format!(
            "{:.2} ms median ({:.2}–{:.2}), p99 {:.2} ms",
            ms(self.median),
            ms(self.min),
            ms(self.max),
            ms(self.p99)
        )
    }

    /// Seconds, as a JSON object (`p99` only when asked: it means little for 9 samples).
    pub fn json(&self, with_p99: bool) -> Value {
        let mut v = json!({ "n": self.n, "median": self.median, "min": self.min, "max": self.max });
        if with_p99 {
            v["p99"] = json!(self.p99);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn odd_even_and_p99() {
        let odd = Summary::of(&ms(&[30, 10, 20]));
        assert_eq!((odd.median, odd.min, odd.max), (0.02, 0.01, 0.03));
        assert!((Summary::of(&ms(&[10, 20, 30, 40])).median - 0.025).abs() < 1e-12);
        let hundred: Vec<u64> = (1..=100).collect();
        assert!((Summary::of(&ms(&hundred)).p99 - 0.099).abs() < 1e-12);
        assert_eq!(Summary::of(&[]).n, 0);
    }
}
