//! The contract of the hot state ([`HotState`]): failure counters and the
//! revocation broadcast, written once and run on every implementation: this node's
//! memory (`memory::*`) and Redis (`redis::*`, a key prefix of each test's own in
//! the Redis `TESSERA_TEST_REDIS` names; SKIPPED on stderr when it is unset).
//! "Another node" is a second client of the same state.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tessera_server::cache::{HotState, MemoryHot, RedisHot};
use tessera_server::ratelimit::LimitKey;
use tessera_server::store::{DenyEntry, DenyKind, Revoked};

struct Ctx {
    hot: Arc<dyn HotState>,
    another: Arc<dyn HotState>,
}

impl Ctx {
    fn memory() -> Self {
        let hot: Arc<dyn HotState> = Arc::new(MemoryHot::new());
        Self {
            another: Arc::clone(&hot),
            hot,
        }
    }

    fn redis(test: &str) -> Option<Self> {
        let url = common::redis_url(test)?;
        let prefix = common::redis_prefix();
        Some(Self {
            hot: Arc::new(RedisHot::new(&url, &prefix).unwrap()),
            another: Arc::new(RedisHot::new(&url, &prefix).unwrap()),
        })
    }
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                super::$case(&super::Ctx::memory()).await;
            }
        )* }
        mod redis { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(ctx) = super::Ctx::redis(concat!("hot::", stringify!($case))) else { return };
                super::$case(&ctx).await;
            }
        )* }
    };
}

contract! {
    blocks_after_max_until_the_window_ends,
    reservations_in_flight_count_and_refunds_give_them_back,
    all_or_nothing_over_keys,
    clear_forgets_the_account,
    a_refund_after_its_window_changes_nothing,
    concurrent_reservations_on_two_nodes_never_pass_the_limit,
    a_broadcast_reaches_every_subscriber_on_every_node,
}

const W: i64 = 60;

fn acct(name: &str, max: u32) -> LimitKey {
    LimitKey::account(name, max)
}

async fn blocks_after_max_until_the_window_ends(ctx: &Ctx) {
    let hot = ctx.hot.as_ref();
    let a = acct("a", 3);
    for _ in 0..3 {
        hot.reserve(std::slice::from_ref(&a), 10, W)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        hot.reserve(std::slice::from_ref(&a), 10, W).await.unwrap(),
        Err(60)
    );
    assert_eq!(
        hot.reserve(std::slice::from_ref(&a), 69, W).await.unwrap(),
        Err(1)
    );
    assert!(
        hot.reserve(std::slice::from_ref(&a), 70, W)
            .await
            .unwrap()
            .is_ok()
    );
    assert!(hot.reserve(&[acct("b", 3)], 10, W).await.unwrap().is_ok());
    // A key without a limit is not counted.
    for _ in 0..5 {
        assert_eq!(
            hot.reserve(&[acct("c", 0)], 10, W).await.unwrap(),
            Ok(vec![])
        );
    }
}

async fn reservations_in_flight_count_and_refunds_give_them_back(ctx: &Ctx) {
    let hot = ctx.hot.as_ref();
    let a = acct("a", 3);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            hot.reserve(std::slice::from_ref(&a), 0, W)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert!(
        hot.reserve(std::slice::from_ref(&a), 0, W)
            .await
            .unwrap()
            .is_err(),
        "three in flight fill the limit"
    );
    for h in held {
        ctx.another.settle(&h, None).await.unwrap();
    }
    assert!(hot.reserve(&[a], 0, W).await.unwrap().is_ok());
}

async fn all_or_nothing_over_keys(ctx: &Ctx) {
    let hot = ctx.hot.as_ref();
    let addr = LimitKey::address("192.0.2.1", 1);
    hot.reserve(std::slice::from_ref(&addr), 0, W)
        .await
        .unwrap()
        .unwrap();
    assert!(
        hot.reserve(&[acct("a", 5), addr], 0, W)
            .await
            .unwrap()
            .is_err()
    );
    // The refused attempt counted nothing on the account.
    for _ in 0..5 {
        hot.reserve(&[acct("a", 5)], 0, W).await.unwrap().unwrap();
    }
    assert!(hot.reserve(&[acct("a", 5)], 0, W).await.unwrap().is_err());
}

async fn clear_forgets_the_account(ctx: &Ctx) {
    let hot = ctx.hot.as_ref();
    let a = acct("a", 3);
    for _ in 0..2 {
        hot.reserve(std::slice::from_ref(&a), 0, W)
            .await
            .unwrap()
            .unwrap();
    }
    let addr = LimitKey::address("192.0.2.7", 10);
    let h = hot
        .reserve(&[addr.clone(), a.clone()], 0, W)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.len(), 2);
    hot.settle(&h, Some(a.name())).await.unwrap();
    for _ in 0..3 {
        hot.reserve(std::slice::from_ref(&a), 0, W)
            .await
            .unwrap()
            .unwrap();
    }
    // The address's reservation was given back (its limit is whole again), the
    // account's counter forgotten.
    for _ in 0..10 {
        hot.reserve(std::slice::from_ref(&addr), 0, W)
            .await
            .unwrap()
            .unwrap();
    }
    assert!(hot.reserve(&[addr], 0, W).await.unwrap().is_err());
}

async fn a_refund_after_its_window_changes_nothing(ctx: &Ctx) {
    let hot = ctx.hot.as_ref();
    let a = acct("a", 1);
    let old = hot
        .reserve(std::slice::from_ref(&a), 0, W)
        .await
        .unwrap()
        .unwrap();
    hot.reserve(std::slice::from_ref(&a), 60, W)
        .await
        .unwrap()
        .unwrap();
    hot.settle(&old, None).await.unwrap();
    assert!(hot.reserve(&[a], 61, W).await.unwrap().is_err());
}

async fn concurrent_reservations_on_two_nodes_never_pass_the_limit(ctx: &Ctx) {
    let mut tasks = Vec::new();
    for i in 0..50 {
        let hot = if i % 2 == 0 {
            Arc::clone(&ctx.hot)
        } else {
            Arc::clone(&ctx.another)
        };
        tasks.push(tokio::spawn(async move {
            hot.reserve(
                &[acct("target", 7), LimitKey::address("192.0.2.50", 100)],
                5,
                W,
            )
            .await
            .unwrap()
            .is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 7);
}

async fn a_broadcast_reaches_every_subscriber_on_every_node(ctx: &Ctx) {
    let mut here = ctx.hot.subscribe().await.unwrap();
    let mut there = ctx.another.subscribe().await.unwrap();
    let batch = vec![
        Revoked {
            seq: 41,
            entry: DenyEntry {
                kind: DenyKind::Jti,
                value: "j1".into(),
                cutoff: 0,
                expires_at: 2_000_000_000,
            },
        },
        Revoked {
            seq: 42,
            entry: DenyEntry {
                kind: DenyKind::User,
                value: "u1".into(),
                cutoff: 1_700_000_000,
                expires_at: 2_000_000_000,
            },
        },
    ];
    ctx.another.publish(&batch).await.unwrap();
    ctx.hot.publish(&[]).await.unwrap();
    for rx in [&mut here, &mut there] {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("no broadcast within 5 s")
            .expect("the subscription closed");
        assert_eq!(got, batch);
    }
}
