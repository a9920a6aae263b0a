//! The node's background work that keeps its denylist in step with the other
//! nodes, without a round trip on any request:
//!
//! - **catch-up**: every [`CATCH_UP_EVERY`], what the store's denylist holds past
//!   the node's cursor (an index range, usually empty). This alone bounds how long
//!   a revocation on another node takes to reach this one, with or without Redis,
//!   and it is how a node that missed broadcasts (a reconnect, a restart, Redis
//!   restarted) resynchronizes: nothing is lost, the store is the record.
//! - **broadcast** (with Redis): revocations of other nodes as they happen; after
//!   every (re)subscription, a catch-up for what came in between.
//! - **health** (with Redis): a ping every [`PING_EVERY`], so that requests route
//!   around a Redis that does not answer and find it again when it does.
//! - **pruning**: dead families, expired denylist entries and sessions, deleted in
//!   small batches that take at most [`PRUNE_SHARE`] of the database's time.
//!
//! Failures are logged once when they start and once when they end.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::cache::Health;
use crate::http::AppState;

/// How often a node reads the revocations other nodes stored.
pub const CATCH_UP_EVERY: Duration = Duration::from_millis(250);
/// How often a node pings Redis.
pub const PING_EVERY: Duration = Duration::from_secs(1);

/// Rows of each kind one pruning batch deletes at most: a write of a few
/// milliseconds, so a request never waits long behind one (SQLite has one writer).
pub const PRUNE_BATCH: u32 = 50;
/// The most of the database's time pruning takes while there is a backlog: after a
/// batch that took `d`, it waits `d × (1 / share − 1)` (at least 20 ms). A batch of
/// 50 families takes a few milliseconds, so a backlog drains at hundreds of families
/// a second per kind, with requests keeping the rest of the writer.
pub const PRUNE_SHARE: f64 = 0.05;

/// Starts the tasks; they run until aborted.
pub fn spawn(state: &AppState) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(catch_up(state.clone()))];
    if state.core.redis.is_some() {
        tasks.push(tokio::spawn(broadcast(state.clone())));
        tasks.push(tokio::spawn(ping(state.clone())));
    }
    tasks
}

async fn catch_up(state: AppState) {
    let database = Health::new("the database");
    let mut tick = tokio::time::interval(CATCH_UP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.core.catch_up().await {
            Ok(_) => database.up(),
            Err(e) => database.down(&e),
        }
    }
}

async fn broadcast(state: AppState) {
    let core = &state.core;
    let Some(health) = core.redis.clone() else {
        return;
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match core.hot.subscribe().await {
            Ok(mut batches) => {
                health.up();
                backoff = Duration::from_millis(100);
                // What was broadcast while this node was not subscribed is in the store.
                if let Err(e) = core.catch_up().await {
                    tracing::debug!(error = %e, "catch-up after subscribing failed; the next tick retries");
                }
                while let Some(batch) = batches.recv().await {
                    core.denylist.apply(&batch);
                }
                health.down(&"the revocation broadcast subscription was lost");
            }
            Err(e) => health.down(&e),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn ping(state: AppState) {
    let core = &state.core;
    let Some(health) = core.redis.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match core.hot.ping().await {
            Ok(()) => health.up(),
            Err(e) => health.down(&e),
        }
    }
}

/// Prunes while there is dead data, in batches of [`PRUNE_BATCH`] paced to
/// [`PRUNE_SHARE`]; then looks again every `idle`.
pub async fn prune(state: AppState, idle: Duration) {
    let core = &state.core;
    loop {
        let start = std::time::Instant::now();
        let pause = match core.prune(PRUNE_BATCH).await {
            Ok(p) => {
                if p.families + p.denylist + p.sessions > 0 {
                    tracing::debug!(
                        families = p.families,
                        denylist = p.denylist,
                        sessions = p.sessions,
                        "pruned dead data"
                    );
                }
                if p.full {
                    start
                        .elapsed()
                        .mul_f64(1.0 / PRUNE_SHARE - 1.0)
                        .max(Duration::from_millis(20))
                } else {
                    idle
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "pruning dead data failed; retrying later");
                idle
            }
        };
        tokio::time::sleep(pause).await;
    }
}
