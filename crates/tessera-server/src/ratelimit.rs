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
//! The counters live in the node's [`HotState`]: in memory on one node, in Redis
//! when nodes share it, so that the limits hold across nodes. While Redis does not
//! answer, each node counts in its own memory (the limits then hold per node) and
//! says so once in the log.

use std::net::IpAddr;
use std::sync::Arc;

use crate::cache::{Health, Held, HotState, MemoryHot};

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

    /// The counter of an OAuth client's authentications, by its client id (empty for
    /// an id that does not parse: all such guesses share one counter).
    pub fn client(client_id: &str, max: u32) -> Self {
        Self {
            key: format!("client:{client_id}"),
            max,
        }
    }

    /// The counter's key.
    pub fn name(&self) -> &str {
        &self.key
    }

    /// Its limit (0: not limited).
    pub fn max(&self) -> u32 {
        self.max
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
    held: Vec<Held>,
    /// Whether it was counted in the shared state (else in this node's memory).
    shared: bool,
}

/// Failure counters.
#[derive(Debug)]
pub struct Limiter {
    enabled: bool,
    window: i64,
    local: MemoryHot,
    shared: Option<(Arc<dyn HotState>, Arc<Health>)>,
}

impl Limiter {
    /// A limiter counting in this node's memory, with this window in seconds;
    /// `enabled: false` never limits.
    pub fn new(enabled: bool, window: i64) -> Self {
        Self {
            enabled,
            window,
            local: MemoryHot::new(),
            shared: None,
        }
    }

    /// Counts in `hot` (shared by the nodes) while `health` says it answers.
    pub fn shared(mut self, hot: Arc<dyn HotState>, health: Arc<Health>) -> Self {
        self.shared = Some((hot, health));
        self
    }

    /// Reserves one failure on every key, or none: `Err(seconds to wait)` when any
    /// key already holds its limit in the current window.
    pub async fn reserve(&self, keys: &[LimitKey], now: i64) -> Result<Reservation, i64> {
        if !self.enabled {
            return Ok(Reservation {
                held: Vec::new(),
                shared: false,
            });
        }
        if let Some((hot, health)) = &self.shared
            && health.is_up()
        {
            match hot.reserve(keys, now, self.window).await {
                Ok(r) => return r.map(|held| Reservation { held, shared: true }),
                Err(e) => health.down(&e),
            }
        }
        self.local
            .reserve_now(keys, now, self.window)
            .map(|held| Reservation {
                held,
                shared: false,
            })
    }

    /// The request succeeded: its reserved failures are given back.
    pub async fn refund(&self, r: Reservation) {
        self.settle(r, None).await;
    }

    /// The request succeeded and proved the account: its reservation is given
    /// back, and the account's earlier failures are forgotten too.
    pub async fn refund_and_clear(&self, r: Reservation, account: &LimitKey) {
        self.settle(r, Some(account.name())).await;
    }

    /// The number of keys this node's memory remembers (for tests and metrics).
    pub fn local_len(&self) -> usize {
        self.local.len()
    }

    async fn settle(&self, r: Reservation, clear: Option<&str>) {
        if r.held.is_empty() {
            return;
        }
        if r.shared
            && let Some((hot, health)) = &self.shared
        {
            // A refund that does not reach Redis leaves a failure counted there: it
            // errs on the side of the account, and the window ends it.
            if let Err(e) = hot.settle(&r.held, clear).await {
                health.down(&e);
            }
            return;
        }
        self.local.settle_now(&r.held, clear);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn disabled_limits_count_nothing() {
        let off = Limiter::new(false, 60);
        for _ in 0..10 {
            let _kept = off.reserve(&[LimitKey::account("a", 3)], 0).await.unwrap();
        }
        assert_eq!(off.local_len(), 0);
    }

    #[tokio::test]
    async fn a_shared_state_that_fails_falls_back_to_memory() {
        #[derive(Debug)]
        struct Down;
        #[async_trait::async_trait]
        impl HotState for Down {
            async fn ping(&self) -> crate::store::StoreResult<()> {
                Err(crate::store::StoreError::Unavailable("down".into()))
            }
            async fn reserve(
                &self,
                _: &[LimitKey],
                _: i64,
                _: i64,
            ) -> crate::store::StoreResult<Result<Vec<Held>, i64>> {
                Err(crate::store::StoreError::Unavailable("down".into()))
            }
            async fn settle(&self, _: &[Held], _: Option<&str>) -> crate::store::StoreResult<()> {
                Err(crate::store::StoreError::Unavailable("down".into()))
            }
            async fn publish(&self, _: &[crate::store::Revoked]) -> crate::store::StoreResult<()> {
                Err(crate::store::StoreError::Unavailable("down".into()))
            }
            async fn subscribe(&self) -> crate::store::StoreResult<crate::cache::Subscription> {
                Err(crate::store::StoreError::Unavailable("down".into()))
            }
        }
        let health = Arc::new(Health::new("redis"));
        let l = Limiter::new(true, 60).shared(Arc::new(Down), Arc::clone(&health));
        let acct = LimitKey::account("a", 2);
        for _ in 0..2 {
            let _kept = l.reserve(std::slice::from_ref(&acct), 0).await.unwrap();
        }
        assert!(!health.is_up(), "the failure marks the shared state down");
        assert_eq!(l.reserve(&[acct], 0).await.unwrap_err(), 60);
        assert_eq!(l.local_len(), 1);
    }
}
