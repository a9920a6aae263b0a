//! Brute-force limits: failures (not requests) counted per key in fixed windows.

use std::collections::HashMap;
use std::sync::Mutex;

/// Failure counters.
#[derive(Debug)]
pub struct Limiter {
    enabled: bool,
    window: i64,
    counters: Mutex<HashMap<String, (i64, u32)>>,
}

impl Limiter {
    /// A limiter with this window in seconds; `enabled: false` never limits.
    pub fn new(enabled: bool, window: i64) -> Self {
        Self {
            enabled,
            window,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when `key` has `max` failures in the current window.
    pub fn check(&self, key: &str, max: u32, now: i64) -> Result<(), i64> {
        if !self.enabled || max == 0 {
            return Ok(());
        }
        let m = self.lock();
        match m.get(key) {
            Some(&(start, n)) if start + self.window > now && n >= max => {
                Err(start + self.window - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure of `key`.
    pub fn fail(&self, key: &str, now: i64) {
        if !self.enabled {
            return;
        }
        let mut m = self.lock();
        if m.len() > 100_000 {
            let window = self.window;
            m.retain(|_, (start, _)| *start + window > now);
        }
        let e = m.entry(key.to_string()).or_insert((now, 0));
        if e.0 + self.window <= now {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
    }

    /// Forgets the failures of `key` (a successful login clears its account).
    pub fn clear(&self, key: &str) {
        if self.enabled {
            self.lock().remove(key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, u32)>> {
        match self.counters.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_until_window_ends() {
        let l = Limiter::new(true, 60);
        for _ in 0..3 {
            assert_eq!(l.check("a", 3, 10), Ok(()));
            l.fail("a", 10);
        }
        assert_eq!(l.check("a", 3, 10), Err(60));
        assert_eq!(l.check("a", 3, 69), Err(1));
        assert_eq!(l.check("a", 3, 70), Ok(()));
        assert_eq!(l.check("b", 3, 10), Ok(()));
        l.clear("a");
        assert_eq!(l.check("a", 3, 10), Ok(()));
        let off = Limiter::new(false, 60);
        for _ in 0..10 {
            off.fail("a", 0);
        }
        assert_eq!(off.check("a", 3, 0), Ok(()));
    }
}
