//! The store contract: every case is written once, against `&dyn Store`, and runs
//! on SQLite (`sqlite::*`, a temporary file) and on PostgreSQL (`postgres::*`, a
//! schema of its own in the database `TESSERA_TEST_POSTGRES` names; SKIPPED on
//! stderr when it is unset). Both implementations must answer alike.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{Backend, TestDb};
use tessera_server::config::Database;
use tessera_server::store::{
    self, AuthCode, Client, Consent, DenyEntry, DenyKind, Family, FamilyPolicy, KeyPurpose,
    KeyState, NewRefresh, Revoked, RotateRequest, Rotation, SessionLimit, Store, StoreError,
    StoredKey, User,
};

/// One case's database and a store open on it.
struct Ctx {
    backend: Backend,
    store: Arc<dyn Store>,
    db: TestDb,
}

impl Ctx {
    async fn new(backend: Backend, test: &str) -> Option<Self> {
        let db = TestDb::new(backend, test).await?;
        let store = open(&db).await;
        Some(Self { backend, store, db })
    }

    /// Another store on the same database: another node, or the CLI beside a server.
    async fn another(&self) -> Arc<dyn Store> {
        open(&self.db).await
    }

    /// A database of its own, nothing opened on it yet.
    async fn fresh_db(&self) -> TestDb {
        TestDb::new(self.backend, "fresh").await.unwrap()
    }
}

async fn open(db: &TestDb) -> Arc<dyn Store> {
    let database: Database = db.url.parse().unwrap();
    store::open(&database).await.unwrap()
}

/// Runs each case on both backends: `sqlite::NAME` and `postgres::NAME`.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let ctx = super::Ctx::new(super::Backend::Sqlite, stringify!($case))
                        .await
                        .unwrap();
                    super::$case(&ctx).await;
                    ctx.store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(ctx) = super::Ctx::new(
                        super::Backend::Postgres,
                        concat!("store::postgres::", stringify!($case)),
                    )
                    .await
                    else {
                        return;
                    };
                    super::$case(&ctx).await;
                    ctx.store.close().await;
                }
            )*
        }
    };
}

contract! {
    ping_answers,
    users_are_unique_by_username,
    session_limit_refuses,
    session_limit_evicts_the_oldest,
    session_limit_holds_under_concurrent_logins,
    rotation_replay_and_reuse,
    rotation_of_unknown_dead_and_expired_tokens,
    fifty_concurrent_rotations_yield_one_successor,
    families_are_listed_and_revoked,
    denylist_keeps_the_longest_and_forgets_the_expired,
    nodes_started_at_once_agree_on_one_set_of_keys,
    keys_rotate_and_retire,
    concurrent_key_rotations_keep_one_current_and_one_next,
    a_reader_following_the_cursor_misses_no_concurrent_revocation,
    clients_are_created_read_listed_and_removed,
    a_clients_families_are_its_and_go_with_it,
    an_unspent_refresh_token_is_told_from_a_spent_one,
    id_token_keys_are_a_set_of_their_own,
    nodes_started_at_once_agree_on_one_set_of_id_token_keys,
    a_code_is_redeemed_once_and_tells_a_replay_what_it_issued,
    fifty_concurrent_redemptions_of_a_code_have_one_winner,
    consents_are_granted_extended_listed_and_withdrawn,
    a_grants_family_keeps_its_scope_and_rotates_only_for_its_client,
    logout_of_a_provider_session_ends_its_grants,
}

const T0: i64 = 1_700_000_000;
const POLICY: FamilyPolicy = FamilyPolicy {
    idle: 1_000,
    absolute: 5_000,
};
const REUSE: i64 = 10;

fn user(name: &str) -> User {
    User {
        id: format!("id-{name}"),
        username: name.into(),
        password_hash: "$argon2id$v=19$m=256,t=1,p=1$c2FsdA$aGFzaA".into(),
        roles: vec!["admin".into(), "ops".into()],
        created_at: T0,
    }
}

fn family(user: &User, id: &str, at: i64) -> Family {
    Family {
        id: id.into(),
        user_id: user.id.clone(),
        created_at: at,
        last_used_at: at,
        user_agent: Some(format!("agent {id}")),
        ip: Some("192.0.2.7".into()),
        ..Family::default()
    }
}

fn token(name: &str) -> NewRefresh {
    NewRefresh { hash: hash(name) }
}

/// Stands for the SHA-256 of a token: the store only compares bytes.
fn hash(name: &str) -> Vec<u8> {
    let mut h = b"hash:".to_vec();
    h.extend_from_slice(name.as_bytes());
    h
}

fn rotate(presented: &str, successor: &str, now: i64) -> RotateRequest {
    RotateRequest {
        presented: hash(presented),
        successor: token(successor),
        successor_sealed: format!("sealed {successor}").into_bytes(),
        now,
        reuse_interval: REUSE,
        policy: POLICY,
        client_id: None,
    }
}

/// A user with one family `fam` whose first refresh token is `first`, at `at`.
async fn logged_in(store: &dyn Store, name: &str, fam: &str, first: &str, at: i64) -> User {
    let u = user(name);
    if store.user_by_id(&u.id).await.unwrap().is_none() {
        store.create_user(&u).await.unwrap();
    }
    store
        .create_family(&family(&u, fam, at), &token(first), POLICY, None)
        .await
        .unwrap();
    u
}

fn ids(families: &[Family]) -> Vec<&str> {
    families.iter().map(|f| f.id.as_str()).collect()
}

fn key(kid: &str, state: KeyState, at: i64) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        purpose: KeyPurpose::Access,
        alg: "ES256".into(),
        state,
        public_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        private_sealed: format!("sealed {kid}").into_bytes(),
        created_at: at,
        publish_until: None,
    }
}

/// (kid, state, publish_until) of every key, in the store's order.
async fn key_states(store: &dyn Store) -> Vec<(String, KeyState, Option<i64>)> {
    store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.state, k.publish_until))
        .collect()
}

fn ks(kid: &str, state: KeyState, until: Option<i64>) -> (String, KeyState, Option<i64>) {
    (kid.into(), state, until)
}

// ----- the cases -----------------------------------------------------------------------

async fn ping_answers(ctx: &Ctx) {
    ctx.store.ping().await.unwrap();
}

async fn users_are_unique_by_username(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let ada = user("ada");
    store.create_user(&ada).await.unwrap();
    assert_eq!(
        store.user_by_username("ada").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(store.user_by_id(&ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(store.user_by_username("grace").await.unwrap(), None);
    assert_eq!(store.user_by_id("id-nobody").await.unwrap(), None);

    let same_name = User {
        id: "id-other".into(),
        ..ada.clone()
    };
    assert!(matches!(
        store.create_user(&same_name).await,
        Err(StoreError::Conflict)
    ));
    let same_id = User {
        username: "other".into(),
        ..ada.clone()
    };
    assert!(matches!(
        store.create_user(&same_id).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.user_by_id("id-other").await.unwrap(), None);
    // A user with no roles reads back with none.
    let grace = User {
        roles: vec![],
        ..user("grace")
    };
    store.create_user(&grace).await.unwrap();
    assert_eq!(store.user_by_username("grace").await.unwrap(), Some(grace));
    // Another connection sees them at once.
    let other = ctx.another().await;
    assert_eq!(other.user_by_username("ada").await.unwrap(), Some(ada));
    other.close().await;
}

async fn session_limit_refuses(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let ada = user("ada");
    store.create_user(&ada).await.unwrap();
    let limit = Some(SessionLimit {
        max: 2,
        evict_oldest: false,
    });
    for (i, f) in ["f1", "f2"].into_iter().enumerate() {
        let evicted = store
            .create_family(&family(&ada, f, T0 + i as i64), &token(f), POLICY, limit)
            .await
            .unwrap();
        assert!(evicted.is_empty());
    }
    assert!(matches!(
        store
            .create_family(&family(&ada, "f3", T0 + 2), &token("f3"), POLICY, limit)
            .await,
        Err(StoreError::SessionLimit)
    ));
    // Nothing of the refused login was stored.
    assert_eq!(
        ids(&store.live_families(&ada.id, T0 + 2, POLICY).await.unwrap()),
        ["f1", "f2"]
    );
    assert!(matches!(
        store
            .rotate_refresh(&rotate("f3", "x", T0 + 3))
            .await
            .unwrap(),
        Rotation::Unknown
    ));
    // A revoked family makes room; so does an expired one.
    assert!(
        store
            .revoke_family("f1", None, T0 + 3, "logout")
            .await
            .unwrap()
    );
    store
        .create_family(&family(&ada, "f3", T0 + 3), &token("f3"), POLICY, limit)
        .await
        .unwrap();
    let later = T0 + 2 + POLICY.idle;
    // f2 (last used at T0 + 1) is idle-expired; f3 (T0 + 3) is still live.
    assert_eq!(
        ids(&store.live_families(&ada.id, later, POLICY).await.unwrap()),
        ["f3"]
    );
    store
        .create_family(&family(&ada, "f4", later), &token("f4"), POLICY, limit)
        .await
        .unwrap();
    // No limit: any number.
    for i in 0..3 {
        let id = format!("n{i}");
        store
            .create_family(&family(&ada, &id, later), &token(&id), POLICY, None)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .live_families(&ada.id, later, POLICY)
            .await
            .unwrap()
            .len(),
        5
    );
}

async fn session_limit_evicts_the_oldest(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let ada = user("ada");
    store.create_user(&ada).await.unwrap();
    let grace = user("grace");
    store.create_user(&grace).await.unwrap();
    let limit = Some(SessionLimit {
        max: 2,
        evict_oldest: true,
    });
    // Two logins in the same second: the order of creation decides which is older.
    for f in ["a1", "a2"] {
        let evicted = store
            .create_family(&family(&ada, f, T0), &token(f), POLICY, limit)
            .await
            .unwrap();
        assert!(evicted.is_empty());
    }
    store
        .create_family(&family(&grace, "g1", T0), &token("g1"), POLICY, limit)
        .await
        .unwrap();
    let evicted = store
        .create_family(&family(&ada, "a3", T0), &token("a3"), POLICY, limit)
        .await
        .unwrap();
    assert_eq!(evicted, ["a1"]);
    assert_eq!(
        ids(&store.live_families(&ada.id, T0, POLICY).await.unwrap()),
        ["a2", "a3"]
    );
    // The evicted family's token is dead; the other user is untouched.
    assert!(matches!(
        store
            .rotate_refresh(&rotate("a1", "a1'", T0 + 1))
            .await
            .unwrap(),
        Rotation::Dead
    ));
    assert_eq!(
        ids(&store.live_families(&grace.id, T0, POLICY).await.unwrap()),
        ["g1"]
    );
    // A limit lowered below the live count evicts as many as needed.
    let one = Some(SessionLimit {
        max: 1,
        evict_oldest: true,
    });
    let evicted = store
        .create_family(&family(&ada, "a4", T0 + 5), &token("a4"), POLICY, one)
        .await
        .unwrap();
    assert_eq!(evicted, ["a2", "a3"]);
    assert_eq!(
        ids(&store.live_families(&ada.id, T0 + 5, POLICY).await.unwrap()),
        ["a4"]
    );
}

async fn session_limit_holds_under_concurrent_logins(ctx: &Ctx) {
    let ada = user("ada");
    ctx.store.create_user(&ada).await.unwrap();
    // Twenty logins at once, through two stores (two nodes), limit 3.
    let stores = [Arc::clone(&ctx.store), ctx.another().await];
    for evict_oldest in [false, true] {
        let limit = Some(SessionLimit {
            max: 3,
            evict_oldest,
        });
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = Arc::clone(&stores[i % 2]);
                let ada = ada.clone();
                tokio::spawn(async move {
                    let id = format!("{evict_oldest}-{i}");
                    store
                        .create_family(&family(&ada, &id, T0), &token(&id), POLICY, limit)
                        .await
                })
            })
            .collect();
        let mut ok = 0;
        let mut evicted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(e) => {
                    ok += 1;
                    evicted += e.len();
                }
                Err(StoreError::SessionLimit) => assert!(!evict_oldest),
                Err(e) => panic!("{e}"),
            }
        }
        let live = ctx.store.live_families(&ada.id, T0, POLICY).await.unwrap();
        assert_eq!(
            live.len(),
            3,
            "evict_oldest {evict_oldest}: {:?}",
            ids(&live)
        );
        if evict_oldest {
            assert_eq!(ok, 20);
            // The three of the first round plus seventeen of this one were evicted.
            assert_eq!(evicted, 20);
        } else {
            assert_eq!(ok, 3);
        }
    }
    stores[1].close().await;
}

async fn rotation_replay_and_reuse(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let ada = logged_in(store, "ada", "fam", "A", T0).await;

    let Rotation::Rotated { family, user } = store
        .rotate_refresh(&rotate("A", "B", T0 + 100))
        .await
        .unwrap()
    else {
        panic!("a fresh token rotates");
    };
    assert_eq!(family.id, "fam");
    assert_eq!(family.created_at, T0);
    assert_eq!(family.last_used_at, T0 + 100, "the family after the update");
    assert_eq!(family.user_agent.as_deref(), Some("agent fam"));
    assert_eq!(user, ada);
    assert_eq!(
        store
            .family_of_refresh(&hash("B"), T0 + 100, POLICY)
            .await
            .unwrap()
            .map(|f| f.id),
        Some("fam".into())
    );

    // Within the reuse interval the spent token answers the same successor, whatever
    // successor the replay brings; at its end too.
    for (at, other) in [(T0 + 101, "B2"), (T0 + 100 + REUSE, "B3")] {
        let Rotation::Replayed {
            family,
            user,
            successor_sealed,
        } = store.rotate_refresh(&rotate("A", other, at)).await.unwrap()
        else {
            panic!("a replay within the interval");
        };
        assert_eq!(successor_sealed, b"sealed B");
        assert_eq!(family.id, "fam");
        assert_eq!(user, ada);
        // The replay's own successor was not stored.
        assert!(matches!(
            store.rotate_refresh(&rotate(other, "x", at)).await.unwrap(),
            Rotation::Unknown
        ));
    }

    // The successor rotates as usual, and its successor too.
    assert!(matches!(
        store
            .rotate_refresh(&rotate("B", "C", T0 + 105))
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));

    // After the interval, the spent token is theft: the family is revoked.
    let Rotation::ReuseDetected { family_id, user_id } = store
        .rotate_refresh(&rotate("A", "B4", T0 + 101 + REUSE))
        .await
        .unwrap()
    else {
        panic!("reuse after the interval");
    };
    assert_eq!(
        (family_id.as_str(), user_id.as_str()),
        ("fam", ada.id.as_str())
    );
    let now = T0 + 101 + REUSE;
    assert!(
        store
            .live_families(&ada.id, now, POLICY)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .family_of_refresh(&hash("C"), now, POLICY)
            .await
            .unwrap(),
        None
    );
    // Every token of the family is dead now, spent or not.
    for t in ["A", "B", "C"] {
        assert!(
            matches!(
                store
                    .rotate_refresh(&rotate(t, "y", now + 1))
                    .await
                    .unwrap(),
                Rotation::Dead
            ),
            "{t}"
        );
    }
    assert!(
        !store
            .revoke_family("fam", None, now, "logout")
            .await
            .unwrap()
    );
}

async fn rotation_of_unknown_dead_and_expired_tokens(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    assert!(matches!(
        store
            .rotate_refresh(&rotate("nothing", "x", T0))
            .await
            .unwrap(),
        Rotation::Unknown
    ));

    // Idle expiry: live until `idle` seconds without use, dead at that second.
    let ada = logged_in(store, "ada", "idle", "I", T0).await;
    assert!(matches!(
        store
            .rotate_refresh(&rotate("I", "I2", T0 + POLICY.idle - 1))
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    let used = T0 + POLICY.idle - 1;
    assert!(matches!(
        store
            .rotate_refresh(&rotate("I2", "I3", used + POLICY.idle))
            .await
            .unwrap(),
        Rotation::Dead
    ));
    assert_eq!(
        store
            .family_of_refresh(&hash("I2"), used + POLICY.idle, POLICY)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .family_of_refresh(&hash("I2"), used + POLICY.idle - 1, POLICY)
            .await
            .unwrap()
            .is_some()
    );
    // A dead family's spent token is dead too, not reuse (nothing left to revoke).
    assert!(matches!(
        store
            .rotate_refresh(&rotate("I", "I4", used + POLICY.idle))
            .await
            .unwrap(),
        Rotation::Dead
    ));

    // Absolute expiry: used often, it still ends `absolute` seconds after login.
    logged_in(store, "ada", "abs", "X0", T0).await;
    let mut at = T0;
    let mut n = 0;
    while at + 900 < T0 + POLICY.absolute {
        at += 900;
        let r = store
            .rotate_refresh(&rotate(&format!("X{n}"), &format!("X{}", n + 1), at))
            .await
            .unwrap();
        assert!(matches!(r, Rotation::Rotated { .. }), "at {}", at - T0);
        n += 1;
    }
    assert!(matches!(
        store
            .rotate_refresh(&rotate(&format!("X{n}"), "late", T0 + POLICY.absolute))
            .await
            .unwrap(),
        Rotation::Dead
    ));

    // A revoked family: dead, and its tokens are not spent by trying.
    logged_in(store, "ada", "gone", "G", T0).await;
    assert!(
        store
            .revoke_family("gone", Some(&ada.id), T0 + 1, "logout")
            .await
            .unwrap()
    );
    assert!(matches!(
        store
            .rotate_refresh(&rotate("G", "G2", T0 + 2))
            .await
            .unwrap(),
        Rotation::Dead
    ));
    assert!(matches!(
        store
            .rotate_refresh(&rotate("G2", "G3", T0 + 2))
            .await
            .unwrap(),
        Rotation::Unknown
    ));
}

async fn fifty_concurrent_rotations_yield_one_successor(ctx: &Ctx) {
    logged_in(ctx.store.as_ref(), "ada", "fam", "A", T0).await;
    // Fifty refreshes of one token at once, each with its own successor, through two
    // stores (two nodes).
    let stores = [Arc::clone(&ctx.store), ctx.another().await];
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = Arc::clone(&stores[i % 2]);
            tokio::spawn(async move {
                let r = store
                    .rotate_refresh(&rotate("A", &format!("S{i}"), T0 + 1))
                    .await
                    .unwrap();
                (i, r)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut replayed = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (i, Rotation::Rotated { family, .. }) => {
                assert_eq!(family.id, "fam");
                winners.push(i);
            }
            (
                _,
                Rotation::Replayed {
                    successor_sealed, ..
                },
            ) => replayed.push(successor_sealed),
            (i, other) => panic!("task {i}: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one successor: {winners:?}");
    let winner = format!("S{}", winners[0]);
    assert_eq!(replayed.len(), 49);
    let sealed = format!("sealed {winner}").into_bytes();
    assert!(replayed.iter().all(|s| *s == sealed), "the same successor");
    // Only the winner's successor was stored, and it works.
    for i in 0..50 {
        let f = ctx
            .store
            .family_of_refresh(&hash(&format!("S{i}")), T0 + 2, POLICY)
            .await
            .unwrap();
        assert_eq!(f.is_some(), format!("S{i}") == winner, "S{i}");
    }
    assert!(matches!(
        ctx.store
            .rotate_refresh(&rotate(&winner, "next", T0 + 2))
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    stores[1].close().await;
}

async fn families_are_listed_and_revoked(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let ada = logged_in(store, "ada", "f1", "t1", T0).await;
    logged_in(store, "ada", "f2", "t2", T0 + 10).await;
    logged_in(store, "ada", "f3", "t3", T0 + 20).await;
    let grace = logged_in(store, "grace", "g1", "u1", T0).await;

    let live = store.live_families(&ada.id, T0 + 30, POLICY).await.unwrap();
    assert_eq!(ids(&live), ["f1", "f2", "f3"], "oldest first");
    assert_eq!(live[1], family(&ada, "f2", T0 + 10));
    assert_eq!(
        store
            .family_of_refresh(&hash("t2"), T0 + 30, POLICY)
            .await
            .unwrap(),
        Some(family(&ada, "f2", T0 + 10))
    );
    // Looking a family up does not spend its token.
    assert!(matches!(
        store
            .rotate_refresh(&rotate("t2", "t2'", T0 + 31))
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    // A rotation moves last_used_at; the order stays by login.
    let live = store.live_families(&ada.id, T0 + 31, POLICY).await.unwrap();
    assert_eq!(ids(&live), ["f1", "f2", "f3"]);
    assert_eq!(live[1].last_used_at, T0 + 31);

    // Revoking one: only its own user's, only once.
    assert!(
        !store
            .revoke_family("f1", Some(&grace.id), T0 + 40, "x")
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_family("f1", Some(&ada.id), T0 + 40, "x")
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_family("f1", Some(&ada.id), T0 + 40, "x")
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_family("nope", None, T0 + 40, "x")
            .await
            .unwrap()
    );
    assert_eq!(
        ids(&store.live_families(&ada.id, T0 + 40, POLICY).await.unwrap()),
        ["f2", "f3"]
    );
    assert_eq!(
        store
            .family_of_refresh(&hash("t1"), T0 + 40, POLICY)
            .await
            .unwrap(),
        None
    );

    // Every family of a user: the ids of those that were live, nobody else's.
    let mut ended = store
        .revoke_user_families(&ada.id, T0 + 50, "logout_all")
        .await
        .unwrap();
    ended.sort();
    assert_eq!(ended, ["f2", "f3"]);
    assert!(
        store
            .live_families(&ada.id, T0 + 50, POLICY)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .revoke_user_families(&ada.id, T0 + 51, "x")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(&store
            .live_families(&grace.id, T0 + 50, POLICY)
            .await
            .unwrap()),
        ["g1"]
    );
    assert!(store.revoke_family("g1", None, T0 + 60, "x").await.unwrap());
    assert!(
        store
            .live_families(&grace.id, T0 + 60, POLICY)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .live_families("id-nobody", T0, POLICY)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn denylist_keeps_the_longest_and_forgets_the_expired(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let entry = |kind, value: &str, cutoff, expires_at| DenyEntry {
        kind,
        value: value.into(),
        cutoff,
        expires_at,
    };
    let entries = |v: Vec<Revoked>| v.into_iter().map(|r| r.entry).collect::<Vec<_>>();
    let first = store
        .deny(&[
            entry(DenyKind::Jti, "j1", 0, T0 + 100),
            entry(DenyKind::Sid, "s1", 0, T0 + 200),
            entry(DenyKind::User, "id with space", T0 - 5, T0 + 300),
            entry(DenyKind::Jti, "short", 0, T0 + 10),
        ])
        .await
        .unwrap();
    // Every entry written, each under its own, growing cursor.
    assert_eq!(first.len(), 4);
    assert!(first.windows(2).all(|w| w[0].seq < w[1].seq), "{first:?}");
    // The same entry again: the later expiry wins (written again, under a later
    // cursor); an earlier one changes nothing (and is not returned).
    let again = store
        .deny(&[
            entry(DenyKind::Jti, "j1", 0, T0 + 150),
            entry(DenyKind::Sid, "s1", 0, T0 + 50),
        ])
        .await
        .unwrap();
    assert_eq!(
        entries(again.clone()),
        vec![entry(DenyKind::Jti, "j1", 0, T0 + 150)]
    );
    assert!(again[0].seq > first[3].seq);
    assert!(store.deny(&[]).await.unwrap().is_empty());
    // In force at T0, in cursor order.
    assert_eq!(
        entries(store.revocations_since(0, T0, 100).await.unwrap()),
        vec![
            entry(DenyKind::Sid, "s1", 0, T0 + 200),
            entry(DenyKind::User, "id with space", T0 - 5, T0 + 300),
            entry(DenyKind::Jti, "short", 0, T0 + 10),
            entry(DenyKind::Jti, "j1", 0, T0 + 150),
        ]
    );
    // Past a cursor, and a page at a time.
    assert_eq!(
        store
            .revocations_since(first[2].seq, T0, 100)
            .await
            .unwrap(),
        vec![first[3].clone(), again[0].clone()]
    );
    let page = store.revocations_since(0, T0, 2).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(
        entries(store.revocations_since(page[1].seq, T0, 2).await.unwrap()),
        vec![
            entry(DenyKind::Jti, "short", 0, T0 + 10),
            entry(DenyKind::Jti, "j1", 0, T0 + 150),
        ]
    );
    // An entry ends at its expiry; the same value as another kind is another entry.
    store
        .deny(&[entry(DenyKind::Sid, "j1", 0, T0 + 400)])
        .await
        .unwrap();
    let mut live = entries(store.revocations_since(0, T0 + 150, 100).await.unwrap());
    live.sort_by(|a, b| a.value.cmp(&b.value));
    assert_eq!(
        live,
        vec![
            entry(DenyKind::User, "id with space", T0 - 5, T0 + 300),
            entry(DenyKind::Sid, "j1", 0, T0 + 400),
            entry(DenyKind::Sid, "s1", 0, T0 + 200),
        ]
    );
    // Another node sees the same list, and its cursor continues the same order.
    let other = ctx.another().await;
    assert_eq!(
        entries(other.revocations_since(0, T0 + 300, 100).await.unwrap()),
        vec![entry(DenyKind::Sid, "j1", 0, T0 + 400)]
    );
    let later = other
        .deny(&[entry(DenyKind::Jti, "j9", 0, T0 + 500)])
        .await
        .unwrap();
    assert!(later[0].seq > again[0].seq);
    other.close().await;
}

/// Entries written by many nodes at once: every one is read back exactly once by a
/// reader that follows the cursor while they are written, so a node that catches
/// up from its cursor can never skip one.
async fn a_reader_following_the_cursor_misses_no_concurrent_revocation(ctx: &Ctx) {
    let writers: Vec<Arc<dyn Store>> = vec![ctx.another().await, ctx.another().await];
    let mut tasks = Vec::new();
    for (w, store) in writers.iter().enumerate() {
        for t in 0..4 {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .deny(&[DenyEntry {
                            kind: DenyKind::Jti,
                            value: format!("w{w}-t{t}-{i}"),
                            cutoff: 0,
                            expires_at: T0 + 1000,
                        }])
                        .await
                        .unwrap();
                }
            }));
        }
    }
    let reader = ctx.store.clone();
    let follow = tokio::spawn(async move {
        let mut cursor = 0;
        let mut seen = Vec::new();
        while seen.len() < 200 {
            let page = reader.revocations_since(cursor, T0, 7).await.unwrap();
            if let Some(last) = page.last() {
                cursor = last.seq;
            } else {
                tokio::task::yield_now().await;
            }
            seen.extend(page.into_iter().map(|r| r.entry.value));
        }
        seen
    });
    for t in tasks {
        t.await.unwrap();
    }
    let seen = tokio::time::timeout(std::time::Duration::from_secs(60), follow)
        .await
        .expect("the reader saw fewer than 200 entries: one was skipped")
        .unwrap();
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (200, 200));
    for w in writers {
        w.close().await;
    }
}

async fn nodes_started_at_once_agree_on_one_set_of_keys(ctx: &Ctx) {
    // Five nodes start at once on an empty database: each migrates it and, finding
    // no keys, offers its own pair.
    let db = Arc::new(ctx.fresh_db().await);
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let db = Arc::clone(&db);
            tokio::spawn(async move {
                let store = open(&db).await;
                let stored = store
                    .init_keys(&[
                        key(&format!("cur{i}"), KeyState::Current, T0),
                        key(&format!("next{i}"), KeyState::Next, T0),
                    ])
                    .await
                    .unwrap();
                (i, stored, store)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut stores = Vec::new();
    for t in tasks {
        let (i, stored, store) = t.await.unwrap();
        if stored {
            winners.push(i);
        }
        stores.push(store);
    }
    assert_eq!(winners.len(), 1, "one set of keys: {winners:?}");
    let w = winners[0];
    let expected = vec![
        ks(&format!("cur{w}"), KeyState::Current, None),
        ks(&format!("next{w}"), KeyState::Next, None),
    ];
    for store in &stores {
        assert_eq!(key_states(store.as_ref()).await, expected);
    }
    let k = &stores[0].signing_keys().await.unwrap()[0];
    assert_eq!(k.alg, "ES256");
    assert_eq!(k.public_jwk, format!("{{\"kid\":\"cur{w}\"}}"));
    assert_eq!(k.private_sealed, format!("sealed cur{w}").into_bytes());
    assert_eq!(k.created_at, T0);
    // Later nodes find the keys and store nothing.
    assert!(
        !stores[1]
            .init_keys(&[key("late", KeyState::Current, T0)])
            .await
            .unwrap()
    );
    for store in stores {
        store.close().await;
    }
}

async fn keys_rotate_and_retire(ctx: &Ctx) {
    use KeyState::{Current, Next, Previous, Retired};
    let store = ctx.store.as_ref();
    assert!(store.signing_keys().await.unwrap().is_empty());
    assert!(
        store
            .init_keys(&[key("k1", Current, T0), key("k2", Next, T0)])
            .await
            .unwrap()
    );
    store
        .rotate_keys(&key("k3", Next, T0 + 10), T0 + 10, T0 + 100)
        .await
        .unwrap();
    assert_eq!(
        key_states(store).await,
        [
            ks("k1", Previous, Some(T0 + 100)),
            ks("k2", Current, None),
            ks("k3", Next, None)
        ]
    );
    // A second rotation before k1's time is up: k1 stays published until its own time.
    store
        .rotate_keys(&key("k4", Next, T0 + 20), T0 + 20, T0 + 110)
        .await
        .unwrap();
    assert_eq!(
        key_states(store).await,
        [
            ks("k1", Previous, Some(T0 + 100)),
            ks("k2", Previous, Some(T0 + 110)),
            ks("k3", Current, None),
            ks("k4", Next, None)
        ]
    );
    // Retiring: only previous keys whose time is up at `now`.
    store.retire_keys(T0 + 99).await.unwrap();
    assert_eq!(
        key_states(store).await[0],
        ks("k1", Previous, Some(T0 + 100))
    );
    store.retire_keys(T0 + 100).await.unwrap();
    assert_eq!(
        key_states(store).await,
        [
            ks("k1", Retired, Some(T0 + 100)),
            ks("k2", Previous, Some(T0 + 110)),
            ks("k3", Current, None),
            ks("k4", Next, None)
        ]
    );
    // A rotation retires the previous keys whose time is up at its `now`.
    store
        .rotate_keys(&key("k5", Next, T0 + 200), T0 + 200, T0 + 300)
        .await
        .unwrap();
    assert_eq!(
        key_states(store).await,
        [
            ks("k1", Retired, Some(T0 + 100)),
            ks("k2", Retired, Some(T0 + 110)),
            ks("k3", Previous, Some(T0 + 300)),
            ks("k4", Current, None),
            ks("k5", Next, None)
        ]
    );
    // Keys exist: init stores nothing.
    assert!(!store.init_keys(&[key("k9", Current, T0)]).await.unwrap());
    assert_eq!(store.signing_keys().await.unwrap().len(), 5);
}

async fn concurrent_key_rotations_keep_one_current_and_one_next(ctx: &Ctx) {
    ctx.store
        .init_keys(&[
            key("k1", KeyState::Current, T0),
            key("k2", KeyState::Next, T0),
        ])
        .await
        .unwrap();
    // `tessera key rotate` run on four machines at once: four whole rotations, one
    // after the other, never a half-done one.
    let mut stores = vec![Arc::clone(&ctx.store)];
    for _ in 0..3 {
        stores.push(ctx.another().await);
    }
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                store
                    .rotate_keys(
                        &key(&format!("r{i}"), KeyState::Next, T0 + 1),
                        T0 + 1,
                        T0 + 500,
                    )
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let keys = key_states(ctx.store.as_ref()).await;
    let count = |s| keys.iter().filter(|k| k.1 == s).count();
    assert_eq!(count(KeyState::Current), 1, "{keys:?}");
    assert_eq!(count(KeyState::Next), 1, "{keys:?}");
    assert_eq!(count(KeyState::Previous), 4, "{keys:?}");
    let kids: BTreeSet<_> = keys.iter().map(|k| k.0.as_str()).collect();
    assert_eq!(kids.len(), 6);
    for store in &stores[1..] {
        store.close().await;
    }
}

/// No server on the port: opening answers Unavailable (worth retrying; no panic,
/// no hang); a URL that cannot be parsed is a Backend error.
#[tokio::test]
async fn an_unreachable_or_garbled_postgres_url_is_an_error() {
    for (url, unavailable) in [
        ("postgres://tessera@127.0.0.1:1/tessera", true),
        ("postgres://tessera@127.0.0.1:notaport/tessera", false),
    ] {
        let database: Database = url.parse().unwrap();
        match store::open(&database).await {
            Err(StoreError::Unavailable(_)) if unavailable => {}
            Err(StoreError::Backend(_)) if !unavailable => {}
            Err(e) => panic!("{url}: {e}"),
            Ok(_) => panic!("{url}: opened"),
        }
    }
}

fn client(id: &str, secret: Option<&str>) -> Client {
    Client {
        id: id.into(),
        secret_hash: secret.map(hash),
        redirect_uris: vec![
            format!("https://{id}.example/cb"),
            "com.example.app:/cb".into(),
        ],
        post_logout_redirect_uris: vec![format!("https://{id}.example/bye")],
        grants: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: vec!["openid".into(), "orders:read".into()],
        created_at: T0,
    }
}

async fn clients_are_created_read_listed_and_removed(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let confidential = client("web", Some("secret"));
    let public = client("Native-App", None);
    store.create_client(&confidential).await.unwrap();
    store.create_client(&public).await.unwrap();
    // Another node, or the CLI beside a server, sees them at once.
    let other = ctx.another().await;
    assert_eq!(
        other.client_by_id("web").await.unwrap(),
        Some(confidential.clone())
    );
    assert_eq!(
        other.client_by_id("Native-App").await.unwrap(),
        Some(public.clone())
    );
    assert_eq!(other.client_by_id("nobody").await.unwrap(), None);
    assert_eq!(
        other.client_by_id("WEB").await.unwrap(),
        None,
        "ids are exact"
    );
    other.close().await;

    // The id is unique, whatever else differs.
    assert!(matches!(
        store.create_client(&client("web", None)).await,
        Err(StoreError::Conflict)
    ));
    // Listed in bytewise order of id, on both databases.
    store.create_client(&client("a-app", None)).await.unwrap();
    let ids: Vec<String> = store
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["Native-App", "a-app", "web"]);

    assert!(store.delete_client("web").await.unwrap());
    assert!(!store.delete_client("web").await.unwrap());
    assert_eq!(store.client_by_id("web").await.unwrap(), None);
    assert_eq!(store.clients().await.unwrap().len(), 2);
    // A secret never prints.
    assert!(!format!("{confidential:?}").contains("hash:secret"));
}

async fn a_clients_families_are_its_and_go_with_it(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    store
        .create_client(&client("web", Some("s")))
        .await
        .unwrap();
    let ada = logged_in(store, "ada", "login", "L", T0).await;
    let mut granted = family(&ada, "grant", T0);
    granted.client_id = Some("web".into());
    store
        .create_family(&granted, &token("G"), POLICY, None)
        .await
        .unwrap();
    let of = |t: &'static str| async move {
        store
            .family_of_refresh(&hash(t), T0 + 1, POLICY)
            .await
            .unwrap()
    };
    assert_eq!(of("G").await.unwrap().client_id.as_deref(), Some("web"));
    assert_eq!(of("L").await.unwrap().client_id, None);
    // The client id survives rotation (the family read back after the update).
    let Rotation::Rotated { family, .. } = store
        .rotate_refresh(&RotateRequest {
            client_id: Some("web".into()),
            ..rotate("G", "G2", T0 + 10)
        })
        .await
        .unwrap()
    else {
        panic!("a fresh token rotates");
    };
    assert_eq!(family.client_id.as_deref(), Some("web"));
    let live = store.live_families(&ada.id, T0 + 10, POLICY).await.unwrap();
    assert_eq!(
        live.iter()
            .map(|f| (f.id.as_str(), f.client_id.as_deref()))
            .collect::<Vec<_>>(),
        [("login", None), ("grant", Some("web"))]
    );
    // Removing the client ends its families (and their tokens); the login stays.
    assert!(store.delete_client("web").await.unwrap());
    assert!(of("G2").await.is_none());
    assert!(matches!(
        store
            .rotate_refresh(&rotate("G2", "G3", T0 + 20))
            .await
            .unwrap(),
        Rotation::Unknown
    ));
    assert!(of("L").await.is_some());
}

async fn an_unspent_refresh_token_is_told_from_a_spent_one(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let ada = logged_in(store, "ada", "fam", "A", T0).await;
    let unspent = |t: &'static str, at: i64| async move {
        store
            .unspent_refresh_family(&hash(t), at, POLICY)
            .await
            .unwrap()
            .map(|f| f.id)
    };
    assert_eq!(unspent("A", T0 + 1).await.as_deref(), Some("fam"));
    assert!(matches!(
        store
            .rotate_refresh(&rotate("A", "B", T0 + 2))
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    assert_eq!(unspent("A", T0 + 3).await, None, "spent");
    assert_eq!(unspent("B", T0 + 3).await.as_deref(), Some("fam"));
    // family_of_refresh still finds the family of the spent one (logout uses it).
    assert!(
        store
            .family_of_refresh(&hash("A"), T0 + 3, POLICY)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(unspent("nothing", T0 + 3).await, None);
    // Idle past the policy, or revoked: no longer.
    assert_eq!(unspent("B", T0 + 2 + POLICY.idle).await, None);
    assert!(
        store
            .revoke_family("fam", Some(&ada.id), T0 + 4, "test")
            .await
            .unwrap()
    );
    assert_eq!(unspent("B", T0 + 5).await, None);
}

fn id_key(kid: &str, state: KeyState, at: i64) -> StoredKey {
    StoredKey {
        purpose: KeyPurpose::IdToken,
        alg: "RS256".into(),
        ..key(kid, state, at)
    }
}

async fn id_token_keys_are_a_set_of_their_own(ctx: &Ctx) {
    use KeyState::{Current, Next, Previous};
    let store = ctx.store.as_ref();
    assert!(
        store
            .init_keys(&[key("a1", Current, T0), key("a2", Next, T0)])
            .await
            .unwrap()
    );
    // Access keys exist; the ID-token set is still empty, so it is stored.
    assert!(
        store
            .init_keys(&[id_key("i1", Current, T0), id_key("i2", Next, T0)])
            .await
            .unwrap()
    );
    assert!(
        !store
            .init_keys(&[id_key("late", Current, T0)])
            .await
            .unwrap(),
        "one ID-token set"
    );
    // Rotating one purpose leaves the other alone.
    store
        .rotate_keys(&id_key("i3", Next, T0 + 1), T0 + 1, T0 + 100)
        .await
        .unwrap();
    let states: Vec<(String, KeyPurpose, KeyState)> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.purpose, k.state))
        .collect();
    let want = |kid: &str, p, st| (kid.to_string(), p, st);
    for w in [
        want("a1", KeyPurpose::Access, Current),
        want("a2", KeyPurpose::Access, Next),
        want("i1", KeyPurpose::IdToken, Previous),
        want("i2", KeyPurpose::IdToken, Current),
        want("i3", KeyPurpose::IdToken, Next),
    ] {
        assert!(states.contains(&w), "{w:?} in {states:?}");
    }
    assert_eq!(states.len(), 5);
}

// ----- the authorization code flow ---------------------------------------------------

fn code(name: &str, client: &str, user: &User, at: i64) -> AuthCode {
    AuthCode {
        hash: hash(name),
        client_id: client.into(),
        user_id: user.id.clone(),
        redirect_uri: format!("https://{client}.example/cb"),
        scope: "openid offline_access".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: at - 5,
        op_sid: "op-1".into(),
        created_at: at,
        expires_at: at + 60,
    }
}

/// A user and a client of the store, for the OAuth cases.
async fn user_and_client(store: &dyn Store, name: &str, client_id: &str) -> User {
    let u = user(name);
    store.create_user(&u).await.unwrap();
    store.create_client(&client(client_id, None)).await.unwrap();
    u
}

async fn a_code_is_redeemed_once_and_tells_a_replay_what_it_issued(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let ada = user_and_client(store, "ada", "web").await;
    let c = code("c1", "web", &ada, T0);
    store.create_code(&c).await.unwrap();
    let found = store.code(&hash("c1")).await.unwrap().unwrap();
    assert_eq!(found.code, c);
    assert_eq!(
        (found.redeemed_at, found.family_id, found.access_jti),
        (None, None, None)
    );
    assert!(store.code(&hash("nope")).await.unwrap().is_none());
    // Another node redeems it: once.
    let other = ctx.another().await;
    assert!(
        other
            .redeem_code(&hash("c1"), T0 + 10, "fam-1", "jti-1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .redeem_code(&hash("c1"), T0 + 11, "fam-2", "jti-2")
            .await
            .unwrap()
    );
    let spent = store.code(&hash("c1")).await.unwrap().unwrap();
    assert_eq!(spent.redeemed_at, Some(T0 + 10));
    assert_eq!(spent.family_id.as_deref(), Some("fam-1"));
    assert_eq!(spent.access_jti.as_deref(), Some("jti-1"));
    // An expired code is not redeemed; an unknown one neither.
    store
        .create_code(&code("c2", "web", &ada, T0))
        .await
        .unwrap();
    assert!(
        !store
            .redeem_code(&hash("c2"), T0 + 60, "f", "j")
            .await
            .unwrap()
    );
    assert!(
        store
            .redeem_code(&hash("c2"), T0 + 59, "f", "j")
            .await
            .unwrap()
    );
    assert!(!store.redeem_code(&hash("c3"), T0, "f", "j").await.unwrap());
    // Pruned an hour past expiry, not before.
    let p = store.prune(T0 + 60 + 3599, POLICY, 100).await.unwrap();
    assert_eq!(p.codes, 0);
    let p = store.prune(T0 + 60 + 3600, POLICY, 100).await.unwrap();
    assert_eq!(p.codes, 2);
    assert!(store.code(&hash("c1")).await.unwrap().is_none());
    // A client's codes go with it.
    store
        .create_code(&code("c4", "web", &ada, T0))
        .await
        .unwrap();
    assert!(store.delete_client("web").await.unwrap());
    assert!(store.code(&hash("c4")).await.unwrap().is_none());
    other.close().await;
}

async fn fifty_concurrent_redemptions_of_a_code_have_one_winner(ctx: &Ctx) {
    let store = ctx.store.clone();
    let ada = user_and_client(store.as_ref(), "ada", "web").await;
    store
        .create_code(&code("c", "web", &ada, T0))
        .await
        .unwrap();
    let other = ctx.another().await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                s.redeem_code(&hash("c"), T0 + 1, &format!("f{i}"), &format!("j{i}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    other.close().await;
}

async fn consents_are_granted_extended_listed_and_withdrawn(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let ada = user_and_client(store, "ada", "web").await;
    store.create_client(&client("app", None)).await.unwrap();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(
        store
            .consented_scopes(&ada.id, "web")
            .await
            .unwrap()
            .is_empty()
    );
    store
        .grant_consent(&ada.id, "web", &strings(&["profile", "openid"]), T0)
        .await
        .unwrap();
    store
        .grant_consent(
            &ada.id,
            "web",
            &strings(&["openid", "offline_access"]),
            T0 + 5,
        )
        .await
        .unwrap();
    store
        .grant_consent(&ada.id, "app", &strings(&["openid"]), T0 + 9)
        .await
        .unwrap();
    assert_eq!(
        store.consented_scopes(&ada.id, "web").await.unwrap(),
        strings(&["offline_access", "openid", "profile"])
    );
    assert_eq!(
        store.consents(&ada.id).await.unwrap(),
        vec![
            Consent {
                client_id: "app".into(),
                scopes: strings(&["openid"]),
                granted_at: T0 + 9
            },
            Consent {
                client_id: "web".into(),
                scopes: strings(&["offline_access", "openid", "profile"]),
                granted_at: T0
            },
        ]
    );
    // Withdrawing ends the user's grants to that client, and only those.
    let grant = |id: &str, client: &str| Family {
        client_id: Some(client.into()),
        scope: Some("openid".into()),
        ..family(&ada, id, T0)
    };
    for (id, client) in [("g-web", "web"), ("g-app", "app")] {
        store
            .create_family(&grant(id, client), &token(id), POLICY, None)
            .await
            .unwrap();
    }
    store
        .create_family(&family(&ada, "login", T0), &token("login"), POLICY, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .withdraw_consent(&ada.id, "web", T0 + 20)
            .await
            .unwrap(),
        Some(vec!["g-web".to_string()])
    );
    assert_eq!(
        store
            .withdraw_consent(&ada.id, "web", T0 + 21)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .consented_scopes(&ada.id, "web")
            .await
            .unwrap()
            .is_empty()
    );
    let live = store.live_families(&ada.id, T0 + 22, POLICY).await.unwrap();
    assert_eq!(ids(&live), ["g-app", "login"]);
}

async fn a_grants_family_keeps_its_scope_and_rotates_only_for_its_client(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let ada = user_and_client(store, "ada", "web").await;
    store.create_client(&client("app", None)).await.unwrap();
    let grant = Family {
        client_id: Some("web".into()),
        scope: Some("openid offline_access".into()),
        auth_time: Some(T0 - 30),
        op_sid: Some("op-1".into()),
        ..family(&ada, "g1", T0)
    };
    store
        .create_family(&grant, &token("r1"), POLICY, None)
        .await
        .unwrap();
    // At /auth (no client) and by another client it is unknown: not spent, no reuse.
    for client in [None, Some("app".to_string())] {
        let r = store
            .rotate_refresh(&RotateRequest {
                client_id: client,
                ..rotate("r1", "x", T0 + 1)
            })
            .await
            .unwrap();
        assert!(matches!(r, Rotation::Unknown), "{r:?}");
    }
    let r = store
        .rotate_refresh(&RotateRequest {
            client_id: Some("web".into()),
            ..rotate("r1", "r2", T0 + 2)
        })
        .await
        .unwrap();
    let Rotation::Rotated { family, .. } = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        family,
        Family {
            last_used_at: T0 + 2,
            ..grant.clone()
        }
    );
    // And an /auth token is unknown to a client.
    logged_in(store, "ada", "login", "l1", T0).await;
    let r = store
        .rotate_refresh(&RotateRequest {
            client_id: Some("web".into()),
            ..rotate("l1", "y", T0 + 3)
        })
        .await
        .unwrap();
    assert!(matches!(r, Rotation::Unknown), "{r:?}");
    assert!(matches!(
        store
            .rotate_refresh(&rotate("l1", "l2", T0 + 4))
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
}

async fn logout_of_a_provider_session_ends_its_grants(ctx: &Ctx) {
    let store = ctx.store.as_ref();
    let ada = user_and_client(store, "ada", "web").await;
    for (id, op) in [("g1", "op-1"), ("g2", "op-1"), ("g3", "op-2")] {
        let f = Family {
            client_id: Some("web".into()),
            op_sid: Some(op.into()),
            ..family(&ada, id, T0)
        };
        store
            .create_family(&f, &token(id), POLICY, None)
            .await
            .unwrap();
    }
    let mut ended = store
        .revoke_op_session_families("op-1", T0 + 1, "rp_logout")
        .await
        .unwrap();
    ended.sort();
    assert_eq!(ended, ["g1", "g2"]);
    assert!(
        store
            .revoke_op_session_families("op-1", T0 + 2, "rp_logout")
            .await
            .unwrap()
            .is_empty()
    );
    let live = store.live_families(&ada.id, T0 + 3, POLICY).await.unwrap();
    assert_eq!(ids(&live), ["g3"]);
}

async fn nodes_started_at_once_agree_on_one_set_of_id_token_keys(ctx: &Ctx) {
    // The access keys exist (an upgraded deployment); five nodes start at once and
    // each offers its own ID-token pair.
    ctx.store
        .init_keys(&[
            key("a1", KeyState::Current, T0),
            key("a2", KeyState::Next, T0),
        ])
        .await
        .unwrap();
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let store = ctx.store.clone();
            tokio::spawn(async move {
                store
                    .init_keys(&[
                        id_key(&format!("cur{i}"), KeyState::Current, T0),
                        id_key(&format!("next{i}"), KeyState::Next, T0),
                    ])
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        stored += usize::from(t.await.unwrap());
    }
    assert_eq!(stored, 1, "one set of ID-token keys");
    let keys = ctx.store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!(
        keys.iter()
            .filter(|k| k.purpose == KeyPurpose::IdToken)
            .count(),
        2
    );
}
