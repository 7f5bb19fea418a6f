//! A token bucket, so a guest that provokes errors (ICMP, log lines) cannot turn them into
//! a flood.

use std::time::{Duration, Instant};

/// Allows `burst` events at once and `per_second` on average.
#[derive(Debug)]
pub(crate) struct RateLimit {
    tokens: u32,
    burst: u32,
    per_second: u32,
    refilled: Option<Instant>,
    /// Events refused since the last one allowed (reported with it).
    pub(crate) suppressed: u64,
}

impl RateLimit {
    pub(crate) fn new(burst: u32, per_second: u32) -> RateLimit {
        RateLimit {
            tokens: burst,
            burst,
            per_second: per_second.max(1),
            refilled: None,
            suppressed: 0,
        }
    }

    /// Whether one more event may happen at `now`.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let last = *self.refilled.get_or_insert(now);
        let step = Duration::from_secs(1) / self.per_second;
        let earned = now.saturating_duration_since(last).as_nanos() / step.as_nanos().max(1);
        if earned > 0 {
            self.tokens = self
                .tokens
                .saturating_add(u32::try_from(earned).unwrap_or(u32::MAX))
                .min(self.burst);
            self.refilled = Some(now);
        }
        if self.tokens == 0 {
            self.suppressed += 1;
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// Whether one more event may happen at `now`: `Some(n)` with the `n` refused since the
    /// last one allowed, `None` when it may not (it is counted).
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        self.allow(now).then(|| std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills_with_time() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(3, 10);
        assert_eq!((0..5).filter(|_| limit.allow(t0)).count(), 3);
        assert_eq!(limit.suppressed, 2);
        assert_eq!(limit.admit(t0 + Duration::from_millis(100)), Some(2));
        assert!(!limit.allow(t0 + Duration::from_millis(100)));
        assert_eq!((0..5).filter(|_| limit.allow(t0 + Duration::from_secs(10))).count(), 3);
    }
}
