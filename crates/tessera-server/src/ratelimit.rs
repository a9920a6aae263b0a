//! Brute-force limits: failures (not requests) counted per key in fixed windows.
//!
//! A request that may fail (a password check, a refresh) first **reserves** a
//! failure on each of its keys (the client address, the account), atomically and
//! before any work is done; on success it gives the reservation back. So no more
//! than the limit can ever be in flight *or* done for one key, however many
//! requests arrive at once: the check and the count are one step. A reservation
//! that is neither refunded nor kept (its request was dropped mid-hash) stays a
//! failure, which errs on the side of the account.
//!
//! The table is bounded: entries leave in the order their windows end (a queue,
//! so expiry costs O(1) amortized per request, never a scan), and past
//! [`MAX_ENTRIES`] the oldest window is dropped first.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

/// The most keys remembered at once. Each failure needs a request that got past
/// the limit, so the table grows at most at the failure rate times the window.
pub const MAX_ENTRIES: usize = 200_000;

/// One key to reserve on, with its limit (0: not limited).
#[derive(Debug, Clone)]
pub struct LimitKey {
    key: String,
    max: u32,
}

impl LimitKey {
    /// The counter of a client address. IPv6 addresses count per /64, the block
    /// that one subscriber is usually given (otherwise one host has 2⁶⁴ keys).
    pub fn address(ip: &str, max: u32) -> Self {
        let key = match ip.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            Ok(IpAddr::V6(v6)) => format!("addr:{}", v6.to_ipv4_mapped().unwrap_or([0; 4].into())),
            _ => format!("addr:{ip}"),
        };
        Self { key, max }
    }

    /// The counter of an account, by its normalized username (empty for a name
    /// that does not normalize: all such guesses share one counter).
    pub fn account(normalized_username: &str, max: u32) -> Self {
        Self {
            key: format!("acct:{normalized_username}"),
            max,
        }
    }
}

/// Failures reserved by one request; see the module docs.
#[derive(Debug)]
#[must_use = "a reservation is a counted failure until refunded"]
pub struct Reservation {
    /// (key, window start) of every counter this reservation incremented.
    held: Vec<(String, i64)>,
}

/// Failure counters.
#[derive(Debug)]
pub struct Limiter {
    enabled: bool,
    window: i64,
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    /// key → (window start, failures in that window, reserved ones included).
    counters: HashMap<String, (i64, u32)>,
    /// (window start, key), in the order windows started.
    order: VecDeque<(i64, String)>,
}

impl Limiter {
    /// A limiter with this window in seconds; `enabled: false` never limits.
    pub fn new(enabled: bool, window: i64) -> Self {
        Self {
            enabled,
            window,
            inner: Mutex::new(Table::default()),
        }
    }

    /// Reserves one failure on every key, or none: `Err(seconds to wait)` when any
    /// key already holds its limit in the current window.
    pub fn reserve(&self, keys: &[LimitKey], now: i64) -> Result<Reservation, i64> {
        if !self.enabled {
            return Ok(Reservation { held: Vec::new() });
        }
        let mut t = self.lock();
        t.expire(now, self.window);
        let mut wait = None;
        for k in keys.iter().filter(|k| k.max > 0) {
            if let Some(&(start, n)) = t.counters.get(&k.key)
                && start + self.window > now
                && n >= k.max
            {
                wait = Some(wait.unwrap_or(0).max(start + self.window - now));
            }
        }
        if let Some(w) = wait {
            return Err(w);
        }
        let mut held = Vec::with_capacity(keys.len());
        for k in keys.iter().filter(|k| k.max > 0) {
            let start = t.count(&k.key, now, self.window);
            held.push((k.key.clone(), start));
        }
        Ok(Reservation { held })
    }

    /// The request succeeded: its reserved failures are given back.
    pub fn refund(&self, r: Reservation) {
        self.settle(r, None);
    }

    /// The request succeeded and proved the account: its reservation is given
    /// back, and the account's earlier failures are forgotten too.
    pub fn refund_and_clear(&self, r: Reservation, account: &LimitKey) {
        self.settle(r, Some(&account.key));
    }

    /// The number of keys remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().counters.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn settle(&self, r: Reservation, clear: Option<&str>) {
        if r.held.is_empty() {
            return;
        }
        let mut t = self.lock();
        for (key, start) in r.held {
            if clear == Some(key.as_str()) {
                // Its queue entry stays behind and is skipped when it comes up.
                t.counters.remove(&key);
            } else if let Some(e) = t.counters.get_mut(&key)
                && e.0 == start
            {
                // Only within the window it was reserved in: a new window starts
                // from zero and owes this reservation nothing.
                e.1 = e.1.saturating_sub(1);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A poisoned lock only means a holder panicked between whole updates.
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl Table {
    /// Drops the counters whose window has ended, oldest first, and the oldest
    /// ones beyond [`MAX_ENTRIES`].
    fn expire(&mut self, now: i64, window: i64) {
        while let Some((start, _)) = self.order.front() {
            let over = self.counters.len() >= MAX_ENTRIES || self.order.len() > 2 * MAX_ENTRIES;
            if *start + window > now && !over {
                break;
            }
            let Some((start, key)) = self.order.pop_front() else {
                break;
            };
            // Only if the counter is still the one this entry queued (a cleared or
            // restarted counter has a newer entry, or none).
            if self.counters.get(&key).is_some_and(|e| e.0 == start) {
                self.counters.remove(&key);
            }
        }
    }

    /// Adds one failure to `key` in the window at `now`; returns the window start.
    fn count(&mut self, key: &str, now: i64, window: i64) -> i64 {
        match self.counters.get_mut(key) {
            Some(e) if e.0 + window > now => {
                e.1 = e.1.saturating_add(1);
                e.0
            }
            _ => {
                self.counters.insert(key.to_string(), (now, 1));
                self.order.push_back((now, key.to_string()));
                now
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(max: u32) -> LimitKey {
        LimitKey::account("a", max)
    }

    #[test]
    fn blocks_after_max_until_window_ends() {
        let l = Limiter::new(true, 60);
        for _ in 0..3 {
            let _kept = l.reserve(&[acct(3)], 10).unwrap();
        }
        assert_eq!(l.reserve(&[acct(3)], 10).unwrap_err(), 60);
        assert_eq!(l.reserve(&[acct(3)], 69).unwrap_err(), 1);
        assert!(l.reserve(&[acct(3)], 70).is_ok());
        assert!(l.reserve(&[LimitKey::account("b", 3)], 10).is_ok());
        let off = Limiter::new(false, 60);
        for _ in 0..10 {
            let _kept = off.reserve(&[acct(3)], 0).unwrap();
        }
        assert!(off.is_empty());
    }

    #[test]
    fn reservations_in_flight_count_and_refunds_give_back() {
        let l = Limiter::new(true, 60);
        let held: Vec<_> = (0..3).map(|_| l.reserve(&[acct(3)], 0).unwrap()).collect();
        assert!(
            l.reserve(&[acct(3)], 0).is_err(),
            "three in flight fill the limit"
        );
        for r in held {
            l.refund(r);
        }
        assert!(l.reserve(&[acct(3)], 0).is_ok());
    }

    #[test]
    fn all_or_nothing_over_keys() {
        let l = Limiter::new(true, 60);
        let addr = LimitKey::address("192.0.2.1", 1);
        let _kept = l.reserve(std::slice::from_ref(&addr), 0).unwrap();
        assert!(l.reserve(&[acct(5), addr], 0).is_err());
        // The refused attempt counted nothing on the account.
        let held: Vec<_> = (0..5).map(|_| l.reserve(&[acct(5)], 0).unwrap()).collect();
        assert_eq!(held.len(), 5);
    }

    #[test]
    fn clear_forgets_the_account() {
        let l = Limiter::new(true, 60);
        for _ in 0..2 {
            let _kept = l.reserve(&[acct(3)], 0).unwrap();
        }
        let r = l.reserve(&[acct(3)], 0).unwrap();
        l.refund_and_clear(r, &acct(3));
        for _ in 0..3 {
            let _kept = l.reserve(&[acct(3)], 0).unwrap();
        }
    }

    #[test]
    fn a_refund_after_its_window_changes_nothing() {
        let l = Limiter::new(true, 60);
        let r = l.reserve(&[acct(1)], 0).unwrap();
        let _kept = l.reserve(&[acct(1)], 60).unwrap();
        l.refund(r);
        assert!(l.reserve(&[acct(1)], 61).is_err());
    }

    #[test]
    fn ipv6_counts_per_64() {
        assert_eq!(
            LimitKey::address("2001:db8:1:2:aaaa::1", 1).key,
            LimitKey::address("2001:db8:1:2:bbbb::9", 1).key
        );
        assert_ne!(
            LimitKey::address("2001:db8:1:2::1", 1).key,
            LimitKey::address("2001:db8:1:3::1", 1).key
        );
        assert_eq!(
            LimitKey::address("::ffff:192.0.2.1", 1).key,
            "addr:192.0.2.1"
        );
    }

    #[test]
    fn expiry_is_in_window_order_and_the_table_is_bounded() {
        let l = Limiter::new(true, 10);
        for i in 0..1000 {
            let _kept = l.reserve(
                &[LimitKey::address(
                    &format!("10.0.{}.{}", i / 256, i % 256),
                    5,
                )],
                i / 100,
            );
        }
        // At t = 15 the windows that started at 0..=5 have ended.
        let _kept = l.reserve(&[LimitKey::address("192.0.2.9", 5)], 15);
        assert_eq!(l.len(), 400 + 1);
        let l = Limiter::new(true, 1_000_000);
        for i in 0..(MAX_ENTRIES + 10) {
            let _kept = l.reserve(&[LimitKey::account(&i.to_string(), 5)], 0);
        }
        assert!(l.len() <= MAX_ENTRIES);
    }
}
