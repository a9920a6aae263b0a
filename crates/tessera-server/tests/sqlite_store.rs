//! The SQLite store's cost does not grow with its data: every statement of a request
//! path is an index lookup (SQLite's own plan says so), and dead data is pruned in
//! bounded batches.

use tessera_server::store::{
    DenyEntry, DenyKind, Family, FamilyPolicy, NewRefresh, REVOKED_RETENTION, RotateRequest,
    Rotation, ServerSession, SessionStore, SqliteStore, Store, User,
};

const POLICY: FamilyPolicy = FamilyPolicy {
    idle: 1_000,
    absolute: 10_000,
};

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn every_request_path_statement_is_an_index_lookup() {
    let (_dir, store) = store().await;
    let plans = store.query_plans().await.unwrap();
    assert!(plans.len() >= 20, "{plans:?}");
    for (name, plan) in plans {
        eprintln!("{name}: {plan:?}");
        if name == "deny" {
            // An INSERT by primary key: SQLite shows no plan for it.
            assert!(plan.is_empty(), "{name}: {plan:?}");
            continue;
        }
        // Pruning lists one batch (its subquery has a LIMIT) to delete.
        let bounded_list = name.starts_with("prune_");
        for step in &plan {
            // A SCAN reads a whole table or index; a LIST SUBQUERY builds a list of
            // all the rows a subquery matches. Either makes the cost grow with the data.
            assert!(
                !step.starts_with("SCAN") && (bounded_list || !step.contains("LIST SUBQUERY")),
                "{name}: {step} in {plan:?}"
            );
        }
        assert!(
            plan.iter()
                .any(|s| s.starts_with("SEARCH")
                    && (s.contains("INDEX") || s.contains("PRIMARY KEY"))),
            "{name}: no index lookup in {plan:?}"
        );
    }
}

fn family(id: &str, created_at: i64, last_used_at: i64) -> Family {
    Family {
        id: id.into(),
        user_id: "u1".into(),
        created_at,
        last_used_at,
        user_agent: None,
        ip: None,
        ..Family::default()
    }
}

fn token(family: &str) -> Vec<u8> {
    format!("token of {family}").into_bytes()
}

async fn rotate(store: &SqliteStore, family: &str, now: i64) -> Rotation {
    store
        .rotate_refresh(&RotateRequest {
            presented: token(family),
            successor: NewRefresh {
                hash: format!("successor of {family} at {now}").into_bytes(),
            },
            successor_sealed: b"sealed".to_vec(),
            now,
            reuse_interval: 10,
            policy: POLICY,
            client_id: None,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn pruning_deletes_only_dead_data_in_bounded_batches() {
    let (_dir, store) = store().await;
    let now = 100_000;
    store
        .create_user(&User {
            id: "u1".into(),
            username: "ada".into(),
            password_hash: "x".into(),
            roles: vec![],
            created_at: 0,
        })
        .await
        .unwrap();
    // Three of each kind of dead family, and three live ones.
    let mut dead = Vec::new();
    let mut live = Vec::new();
    for i in 0..3 {
        let kinds = [
            (format!("idle{i}"), now - 5_000, now - POLICY.idle),
            (format!("old{i}"), now - POLICY.absolute, now - 1),
            (format!("revoked{i}"), now - 5_000, now - 1),
            (format!("recently-revoked{i}"), now - 5_000, now - 1),
            (format!("live{i}"), now - 5_000, now - 1),
        ];
        for (id, created, used) in kinds {
            let f = family(&id, created, used);
            store
                .create_family(&f, &NewRefresh { hash: token(&id) }, POLICY, None)
                .await
                .unwrap();
            if id.starts_with("revoked") {
                store
                    .revoke_family(&id, None, now - REVOKED_RETENTION, "logout")
                    .await
                    .unwrap();
                dead.push(id);
            } else if id.starts_with("recently") {
                store
                    .revoke_family(&id, None, now - 1, "logout")
                    .await
                    .unwrap();
                live.push(id);
            } else if id.starts_with("live") {
                live.push(id);
            } else {
                dead.push(id);
            }
        }
    }
    // A live family with a spent token: the spent token must stay, or its reuse
    // would go unnoticed.
    assert!(matches!(
        rotate(&store, "live0", now - 100).await,
        Rotation::Rotated { .. }
    ));
    store
        .deny(&[
            DenyEntry {
                kind: DenyKind::Jti,
                value: "expired".into(),
                cutoff: 0,
                expires_at: now,
            },
            DenyEntry {
                kind: DenyKind::Jti,
                value: "kept".into(),
                cutoff: 0,
                expires_at: now + 1,
            },
        ])
        .await
        .unwrap();
    for (id, expires_at) in [(b"gone".to_vec(), now), (b"kept".to_vec(), now + 1)] {
        store
            .create_server_session(&ServerSession {
                id_hash: id,
                user_id: "u1".into(),
                csrf_hash: vec![0],
                created_at: now - 10,
                last_used_at: now - 10,
                expires_at,
            })
            .await
            .unwrap();
    }

    // Batches of 2: each call deletes at most 2 of each kind, and says when it was full.
    let first = store.prune(now, POLICY, 2).await.unwrap();
    assert_eq!(first.families, 6, "{first:?}");
    assert!(first.full);
    let mut families = first.families;
    let mut denylist = first.denylist;
    let mut sessions = first.sessions;
    let mut calls = 1;
    loop {
        let p = store.prune(now, POLICY, 2).await.unwrap();
        calls += 1;
        assert!(p.families <= 6);
        families += p.families;
        denylist += p.denylist;
        sessions += p.sessions;
        if !p.full {
            break;
        }
        assert!(calls < 10, "pruning does not finish");
    }
    assert_eq!((families, denylist, sessions), (9, 1, 1));
    assert_eq!(store.prune(now, POLICY, 2).await.unwrap().families, 0);

    for id in &dead {
        assert!(
            matches!(rotate(&store, id, now).await, Rotation::Unknown),
            "{id} was not pruned"
        );
    }
    // What lives is untouched: live families, their spent tokens, the recent
    // revocations, the live denylist entry and session.
    let listed: Vec<String> = store
        .live_families("u1", now, POLICY)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(listed, ["live0", "live1", "live2"]);
    assert!(matches!(
        rotate(&store, "live0", now).await,
        Rotation::ReuseDetected { .. }
    ));
    for id in [
        "recently-revoked0",
        "recently-revoked1",
        "recently-revoked2",
    ] {
        assert!(
            matches!(rotate(&store, id, now).await, Rotation::Dead),
            "{id}"
        );
    }
    let deny: Vec<String> = store
        .revocations_since(0, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.entry.value)
        .collect();
    assert_eq!(deny, ["kept"]);
    assert!(
        store
            .touch_server_session(b"kept", now, 60)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.delete_server_session(b"kept").await.unwrap());
    assert!(!store.delete_server_session(b"gone").await.unwrap());
}
