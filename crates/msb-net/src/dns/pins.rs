//! Which names this sandbox's DNS answered with which address: the policy's domain rules
//! match a flow's address through these.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most (address, name) pairs kept: the guest decides how many names it resolves, so the
/// table is bounded and the soonest-expiring pair makes room for a new one.
pub const MAX_PINS: usize = 16384;
/// Shortest time a pin lasts whatever the TTL, so a TTL-0 answer still covers the
/// connection the guest opens right after it.
pub const MIN_PIN: Duration = Duration::from_secs(60);
/// Longest time a pin lasts, whatever the TTL says.
const MAX_PIN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where pins read the time; tests substitute a clock they move themselves.
type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Which names this sandbox's DNS answered with which address, each kept at least a minute.
pub struct Pins {
    table: Mutex<Table>,
    clock: Clock,
}

/// The pins by address, and the same pairs ordered by expiry for cleanup and eviction.
#[derive(Default)]
struct Table {
    by_ip: HashMap<IpAddr, HashMap<String, Instant>>,
    by_expiry: BTreeSet<(Instant, IpAddr, String)>,
}

impl Default for Pins {
    fn default() -> Self {
        Pins::with_clock(Arc::new(Instant::now))
    }
}

impl fmt::Debug for Pins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pins")
            .field("len", &self.lock().by_expiry.len())
            .finish()
    }
}

impl Pins {
    /// Pins reading the time from `clock`.
    pub(crate) fn with_clock(clock: Clock) -> Pins {
        Pins {
            table: Mutex::new(Table::default()),
            clock,
        }
    }

    /// Names pinned to `ip` now (lower case, no trailing dot).
    pub fn names(&self, ip: IpAddr) -> Vec<String> {
        let now = (self.clock)();
        let table = self.lock();
        let mut names: Vec<String> = table
            .by_ip
            .get(&ip)
            .into_iter()
            .flatten()
            .filter(|(_, until)| **until > now)
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Pins `ip` to each of `names` for `ttl` seconds, at least [`MIN_PIN`]; a pin already
    /// there keeps the later of its two expiries.
    pub(crate) fn pin(&self, ip: IpAddr, names: &[String], ttl: u32) {
        let now = (self.clock)();
        let life = Duration::from_secs(ttl.into()).clamp(MIN_PIN, MAX_PIN);
        let until = now + life;
        let mut table = self.lock();
        table.expire(now);
        for name in names {
            table.insert(ip, name, until);
        }
    }

    /// The table, even if a thread panicked holding it: every update leaves it consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    /// Drops every pair expired by `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(first) = self.by_expiry.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, ip, name)) = self.by_expiry.pop_first() {
                self.forget(ip, &name);
            }
        }
    }

    /// Pins `ip` to `name` until `until`, evicting the soonest-expiring pair when full.
    fn insert(&mut self, ip: IpAddr, name: &str, until: Instant) {
        let current = self.by_ip.get(&ip).and_then(|names| names.get(name)).copied();
        match current {
            Some(old) if old >= until => return,
            Some(old) => {
                self.by_expiry.remove(&(old, ip, name.to_string()));
            }
            None if self.by_expiry.len() >= MAX_PINS => {
                if let Some((_, evicted_ip, evicted)) = self.by_expiry.pop_first() {
                    self.forget(evicted_ip, &evicted);
                }
            }
            None => {}
        }
        self.by_ip.entry(ip).or_default().insert(name.to_string(), until);
        self.by_expiry.insert((until, ip, name.to_string()));
    }

    /// Removes `ip` → `name` from the by-address side.
    fn forget(&mut self, ip: IpAddr, name: &str) {
        if let Some(names) = self.by_ip.get_mut(&ip) {
            names.remove(name);
            if names.is_empty() {
                self.by_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Pins on a clock the test moves by hand, in seconds from a fixed start.
    fn manual() -> (Pins, Arc<AtomicU64>) {
        let start = Instant::now();
        let secs = Arc::new(AtomicU64::new(0));
        let read = secs.clone();
        let pins = Pins::with_clock(Arc::new(move || {
            start + Duration::from_secs(read.load(Ordering::SeqCst))
        }));
        (pins, secs)
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn short_ttls_last_a_minute_and_long_ones_their_ttl() {
        let (pins, secs) = manual();
        pins.pin(ip(1), &["a.example".into(), "b.example".into()], 0);
        pins.pin(ip(2), &["c.example".into()], 300);
        secs.store(59, Ordering::SeqCst);
        assert_eq!(pins.names(ip(1)), ["a.example", "b.example"]);
        secs.store(60, Ordering::SeqCst);
        assert!(pins.names(ip(1)).is_empty());
        assert_eq!(pins.names(ip(2)), ["c.example"]);
        secs.store(300, Ordering::SeqCst);
        assert!(pins.names(ip(2)).is_empty());
    }

    #[test]
    fn a_repin_keeps_the_later_expiry() {
        let (pins, secs) = manual();
        pins.pin(ip(1), &["a".into()], 600);
        pins.pin(ip(1), &["a".into()], 0);
        secs.store(500, Ordering::SeqCst);
        assert_eq!(pins.names(ip(1)), ["a"]);
        pins.pin(ip(1), &["a".into()], 600);
        secs.store(1000, Ordering::SeqCst);
        assert_eq!(pins.names(ip(1)), ["a"]);
    }

    #[test]
    fn the_table_stays_bounded_and_evicts_the_soonest_expiry() {
        let (pins, _) = manual();
        pins.pin(ip(0), &["long.example".into()], 86400);
        for n in 1..(MAX_PINS as u32 + 500) {
            pins.pin(ip(n), &[format!("n{n}.example")], 60 + n);
        }
        let table = pins.lock();
        assert_eq!(table.by_expiry.len(), MAX_PINS);
        assert_eq!(table.by_ip.values().map(HashMap::len).sum::<usize>(), MAX_PINS);
        drop(table);
        assert_eq!(pins.names(ip(0)), ["long.example"]);
        assert!(pins.names(ip(1)).is_empty());
        assert_eq!(pins.names(ip(MAX_PINS as u32 + 499)).len(), 1);
    }

    #[test]
    fn expired_pairs_are_cleaned_on_the_next_pin() {
        let (pins, secs) = manual();
        for n in 0..100 {
            pins.pin(ip(n), &["x".into()], 0);
        }
        secs.store(61, Ordering::SeqCst);
        pins.pin(ip(1000), &["y".into()], 0);
        assert_eq!(pins.lock().by_expiry.len(), 1);
        assert_eq!(pins.lock().by_ip.len(), 1);
    }
}
