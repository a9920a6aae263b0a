//! The contract of where stateful-mode sessions live ([`SessionStore`]), written
//! once and run on every implementation: SQLite and PostgreSQL (a single node, or
//! nodes without Redis) and Redis (nodes that share one). PostgreSQL and Redis cases
//! say SKIPPED on stderr when `TESSERA_TEST_POSTGRES` / `TESSERA_TEST_REDIS` is unset.

mod common;

use std::sync::Arc;

use common::{Backend, TestDb};
use tessera_server::cache::RedisHot;
use tessera_server::config::Database;
use tessera_server::store::{self, ServerSession, SessionStore, Store, User};

const T0: i64 = 1_700_000_000;

/// A session store, and the user its sessions belong to (created in the database
/// where there is one: SQL sessions reference their user).
struct Ctx {
    sessions: Arc<dyn SessionStore>,
    user_id: String,
    _db: Option<(TestDb, Arc<dyn Store>)>,
}

impl Ctx {
    async fn sql(backend: Backend, test: &str) -> Option<Self> {
        let db = TestDb::new(backend, test).await?;
        let database: Database = db.url.parse().unwrap();
        let store = store::open(&database).await.unwrap();
        let user = User {
            id: "u-ada".into(),
            username: "ada".into(),
            password_hash: "$argon2id$x".into(),
            roles: vec![],
            created_at: T0,
        };
        store.create_user(&user).await.unwrap();
        Some(Self {
            sessions: store.clone(),
            user_id: user.id,
            _db: Some((db, store)),
        })
    }

    async fn redis(test: &str) -> Option<Self> {
        let url = common::redis_url(test)?;
        let redis = RedisHot::new(&url, &common::redis_prefix()).unwrap();
        Some(Self {
            sessions: Arc::new(redis),
            user_id: "u-ada".into(),
            _db: None,
        })
    }
}

/// Runs each case on every implementation: `sqlite::NAME`, `postgres::NAME`,
/// `redis::NAME`.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test]
            async fn $case() {
                let ctx = super::Ctx::sql(super::Backend::Sqlite, stringify!($case)).await.unwrap();
                super::$case(&ctx).await;
            }
        )* }
        mod postgres { $(
            #[tokio::test]
            async fn $case() {
                let Some(ctx) = super::Ctx::sql(super::Backend::Postgres, concat!("sessions::", stringify!($case))).await else { return };
                super::$case(&ctx).await;
            }
        )* }
        mod redis { $(
            #[tokio::test]
            async fn $case() {
                let Some(ctx) = super::Ctx::redis(concat!("sessions::", stringify!($case))).await else { return };
                super::$case(&ctx).await;
            }
        )* }
    };
}

contract! {
    sessions_live_extend_and_end,
    sessions_are_independent,
}

fn hash(name: &str) -> Vec<u8> {
    tessera_server::crypto::hash_secret(name)
}

async fn sessions_live_extend_and_end(ctx: &Ctx) {
    let store = ctx.sessions.as_ref();
    let ttl = 3_600;
    let s = ServerSession {
        id_hash: hash("sid"),
        user_id: ctx.user_id.clone(),
        csrf_hash: hash("csrf"),
        created_at: T0,
        last_used_at: T0,
        expires_at: T0 + ttl,
    };
    store.create_server_session(&s).await.unwrap();
    let got = store
        .touch_server_session(&hash("sid"), T0 + 30, ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.id_hash, got.user_id, got.csrf_hash, got.created_at),
        (hash("sid"), ctx.user_id.clone(), hash("csrf"), T0)
    );
    assert_eq!((got.last_used_at, got.expires_at), (T0, T0 + ttl));
    // Used within a minute: not extended.
    let got = store
        .touch_server_session(&hash("sid"), T0 + 59, ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.expires_at, T0 + ttl);
    // Used a minute or more later: extended by the ttl from then, and answered so.
    let at = T0 + 60;
    let got = store
        .touch_server_session(&hash("sid"), at, ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.last_used_at, got.expires_at), (at, at + ttl));
    let got = store
        .touch_server_session(&hash("sid"), at + 1, ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.last_used_at, got.expires_at), (at, at + ttl));
    // Live until its end, then gone.
    assert!(
        store
            .touch_server_session(&hash("sid"), T0 + ttl + 1, ttl)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .touch_server_session(&hash("sid"), at + 2 * ttl, ttl)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .touch_server_session(&hash("other"), T0, ttl)
            .await
            .unwrap()
            .is_none()
    );
    // Ended: once.
    let s2 = ServerSession {
        id_hash: hash("sid2"),
        ..s
    };
    store.create_server_session(&s2).await.unwrap();
    assert!(store.delete_server_session(&hash("sid2")).await.unwrap());
    assert!(!store.delete_server_session(&hash("sid2")).await.unwrap());
    assert!(
        store
            .touch_server_session(&hash("sid2"), T0 + 1, ttl)
            .await
            .unwrap()
            .is_none()
    );
}

async fn sessions_are_independent(ctx: &Ctx) {
    let store = ctx.sessions.as_ref();
    let ttl = 600;
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let i = i64::try_from(i).unwrap();
        store
            .create_server_session(&ServerSession {
                id_hash: hash(name),
                user_id: ctx.user_id.clone(),
                csrf_hash: hash(&format!("csrf-{name}")),
                created_at: T0 + i,
                last_used_at: T0 + i,
                expires_at: T0 + i + ttl,
            })
            .await
            .unwrap();
    }
    assert!(store.delete_server_session(&hash("b")).await.unwrap());
    let a = store
        .touch_server_session(&hash("a"), T0 + 100, ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.csrf_hash, hash("csrf-a"));
    assert!(
        store
            .touch_server_session(&hash("b"), T0 + 100, ttl)
            .await
            .unwrap()
            .is_none()
    );
    let c = store
        .touch_server_session(&hash("c"), T0 + 100, ttl)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.created_at, c.csrf_hash), (T0 + 2, hash("csrf-c")));
}
