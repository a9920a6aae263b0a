//! The hot, shared state of a node, beside the store: brute-force counters and the
//! revocation broadcast. One trait, [`HotState`], two implementations: [`MemoryHot`]
//! (one node: in this process) and [`RedisHot`] (many nodes sharing Redis, which also
//! keeps the stateful-mode sessions as a [`crate::store::SessionStore`]). Every
//! implementation passes one contract suite (`tests/hot.rs`).
//!
//! Nothing here is the record: revocations are written to the store first (which
//! gives each its cursor) and broadcast after, so a node that missed a broadcast
//! (Redis restarted, a reconnect, a restart of its own) catches up from the store;
//! counters lost with Redis only forget recent failures.

pub mod memory;
pub mod redis;

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::ratelimit::LimitKey;
use crate::store::{DenyEntry, DenyKind, Revoked, StoreResult};

pub use memory::MemoryHot;
pub use redis::RedisHot;

/// One failure counted on one key: the key and the start of the window it was
/// counted in (a refund after that window ends gives nothing back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The counter's key.
    pub key: String,
    /// Its window's start.
    pub start: i64,
}

/// A batch of revocations as the broadcast delivers it; a receiver whose channel
/// closes has lost its subscription (and must catch up from the store).
pub type Subscription = mpsc::Receiver<Vec<Revoked>>;

/// How many batches a subscriber may fall behind before it is dropped (and then
/// catches up from the store).
pub const SUBSCRIBER_BACKLOG: usize = 1024;

/// The hot state shared by the nodes (or held by the only one).
#[async_trait]
pub trait HotState: Send + Sync + std::fmt::Debug + 'static {
    /// Whether it answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Counts one failure on every key, or none: `Ok(Err(seconds to wait))` when a
    /// key already holds its limit in its current window (of `window` seconds,
    /// starting at the first failure). The check and the count are one atomic step,
    /// whatever other requests (on any node) do at the same time.
    async fn reserve(
        &self,
        keys: &[LimitKey],
        now: i64,
        window: i64,
    ) -> StoreResult<Result<Vec<Held>, i64>>;

    /// Gives reserved failures back (each only within the window it was counted
    /// in); the counter named `clear`, if any, is forgotten entirely.
    async fn settle(&self, held: &[Held], clear: Option<&str>) -> StoreResult<()>;

    /// Sends revocations to every subscriber (on every node, this one included).
    async fn publish(&self, revoked: &[Revoked]) -> StoreResult<()>;

    /// Subscribes to the broadcast. Delivery is at most once: the channel closes when
    /// the subscription is lost, and the subscriber catches up from the store.
    async fn subscribe(&self) -> StoreResult<Subscription>;
}

/// Whether a shared dependency (Redis) answers, as the node last saw it. Changes are
/// logged once, when they happen, not once per request.
#[derive(Debug)]
pub struct Health {
    name: &'static str,
    up: AtomicBool,
}

impl Health {
    /// A dependency believed up.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            up: AtomicBool::new(true),
        }
    }

    /// Whether it answered last time.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// It failed: logged if it was up.
    pub fn down(&self, error: &dyn std::fmt::Display) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(dependency = self.name, error = %error, "{} is unavailable: working on local state until it returns", self.name);
        }
    }

    /// It answered: logged if it was down.
    pub fn up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!(dependency = self.name, "{} is back", self.name);
        }
    }
}

/// A revocation on the wire (the broadcast and the revocation feed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireRevoked {
    /// The cursor.
    pub seq: i64,
    /// `jti`, `sid` or `user`.
    pub kind: String,
    /// What is revoked.
    pub value: String,
    /// For `user`: tokens issued before this are revoked.
    #[serde(default)]
    pub cutoff: i64,
    /// When the entry stops mattering.
    pub expires_at: i64,
}

impl From<&Revoked> for WireRevoked {
    fn from(r: &Revoked) -> Self {
        Self {
            seq: r.seq,
            kind: r.entry.kind.as_str().to_string(),
            value: r.entry.value.clone(),
            cutoff: r.entry.cutoff,
            expires_at: r.entry.expires_at,
        }
    }
}

impl WireRevoked {
    /// The revocation, if its kind is one this version knows.
    pub fn revoked(self) -> Option<Revoked> {
        Some(Revoked {
            seq: self.seq,
            entry: DenyEntry {
                kind: DenyKind::parse(&self.kind)?,
                value: self.value,
                cutoff: self.cutoff,
                expires_at: self.expires_at,
            },
        })
    }
}

/// Encodes a batch for the broadcast.
pub fn encode_batch(revoked: &[Revoked]) -> String {
    let wire: Vec<WireRevoked> = revoked.iter().map(WireRevoked::from).collect();
    // A Vec of plain structs of strings and integers always serializes.
    serde_json::to_string(&wire).unwrap_or_else(|_| "[]".into())
}

/// Decodes a broadcast batch; entries of unknown kinds are skipped.
pub fn decode_batch(text: &str) -> Option<Vec<Revoked>> {
    let wire: Vec<WireRevoked> = serde_json::from_str(text).ok()?;
    Some(wire.into_iter().filter_map(WireRevoked::revoked).collect())
}
