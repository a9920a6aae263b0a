//! The hot state of a single node, in this process: failure counters in a bounded
//! table, and the broadcast to the node's own subscribers.
//!
//! The table is bounded: entries leave in the order their windows end (a queue, so
//! expiry costs O(1) amortized per request, never a scan), and past [`MAX_ENTRIES`]
//! the oldest window is dropped first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Held, HotState, SUBSCRIBER_BACKLOG, Subscription};
use crate::ratelimit::LimitKey;
use crate::store::{Revoked, StoreResult};

/// The most keys remembered at once. Each failure needs a request that got past
/// the limit, so the table grows at most at the failure rate times the window.
pub const MAX_ENTRIES: usize = 200_000;

/// See the module docs.
#[derive(Debug, Default)]
pub struct MemoryHot {
    table: Mutex<Table>,
    subscribers: Mutex<Vec<mpsc::Sender<Vec<Revoked>>>>,
}

#[derive(Debug, Default)]
struct Table {
    /// key → (window start, failures in that window, reserved ones included).
    counters: HashMap<String, (i64, u32)>,
    /// (window start, key), in the order windows started.
    order: VecDeque<(i64, String)>,
}

impl MemoryHot {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`HotState::reserve`], without the await.
    pub fn reserve_now(&self, keys: &[LimitKey], now: i64, window: i64) -> Result<Vec<Held>, i64> {
        let mut t = lock(&self.table);
        t.expire(now, window);
        let mut wait = None;
        for k in keys.iter().filter(|k| k.max() > 0) {
            if let Some(&(start, n)) = t.counters.get(k.name())
                && start + window > now
                && n >= k.max()
            {
                wait = Some(wait.unwrap_or(0).max(start + window - now));
            }
        }
        if let Some(w) = wait {
            return Err(w);
        }
        Ok(keys
            .iter()
            .filter(|k| k.max() > 0)
            .map(|k| Held {
                key: k.name().to_string(),
                start: t.count(k.name(), now, window),
            })
            .collect())
    }

    /// [`HotState::settle`], without the await.
    pub fn settle_now(&self, held: &[Held], clear: Option<&str>) {
        if held.is_empty() {
            return;
        }
        let mut t = lock(&self.table);
        for h in held {
            if clear == Some(h.key.as_str()) {
                // Its queue entry stays behind and is skipped when it comes up.
                t.counters.remove(&h.key);
            } else if let Some(e) = t.counters.get_mut(&h.key)
                && e.0 == h.start
            {
                // Only within the window it was reserved in: a new window starts
                // from zero and owes this reservation nothing.
                e.1 = e.1.saturating_sub(1);
            }
        }
    }

    /// The number of keys remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        lock(&self.table).counters.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl HotState for MemoryHot {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn reserve(
        &self,
        keys: &[LimitKey],
        now: i64,
        window: i64,
    ) -> StoreResult<Result<Vec<Held>, i64>> {
        Ok(self.reserve_now(keys, now, window))
    }

    async fn settle(&self, held: &[Held], clear: Option<&str>) -> StoreResult<()> {
        self.settle_now(held, clear);
        Ok(())
    }

    async fn publish(&self, revoked: &[Revoked]) -> StoreResult<()> {
        if revoked.is_empty() {
            return Ok(());
        }
        // A subscriber that is gone, or too far behind, is dropped: its channel
        // closes and it catches up from the store.
        lock(&self.subscribers).retain(|tx| tx.try_send(revoked.to_vec()).is_ok());
        Ok(())
    }

    async fn subscribe(&self) -> StoreResult<Subscription> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BACKLOG);
        lock(&self.subscribers).push(tx);
        Ok(rx)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a holder panicked between whole updates.
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
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

    #[test]
    fn expiry_is_in_window_order_and_the_table_is_bounded() {
        let m = MemoryHot::new();
        for i in 0..1000 {
            let _kept = m.reserve_now(
                &[LimitKey::address(
                    &format!("10.0.{}.{}", i / 256, i % 256),
                    5,
                )],
                i / 100,
                10,
            );
        }
        // At t = 15 the windows that started at 0..=5 have ended.
        let _kept = m.reserve_now(&[LimitKey::address("192.0.2.9", 5)], 15, 10);
        assert_eq!(m.len(), 400 + 1);
        let m = MemoryHot::new();
        for i in 0..(MAX_ENTRIES + 10) {
            let _kept = m.reserve_now(&[LimitKey::account(&i.to_string(), 5)], 0, 1_000_000);
        }
        assert!(m.len() <= MAX_ENTRIES);
    }
}
