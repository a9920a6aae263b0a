//! Many nodes: several real `tessera serve` processes sharing one PostgreSQL schema
//! (and Redis, under a key prefix of the test's own, where the test says so)
//! (DESIGN.md, "Many nodes"), driven over HTTP. Each test makes a schema of its own
//! in the database `TESSERA_TEST_POSTGRES` names (dropped at the end) and says
//! SKIPPED on stderr without that variable.
//!
//! The harness is in `nodes/`: [`cluster`] (the schema, the nodes as processes, a
//! TCP proxy that can cut a node off from its database) and [`api`] (an HTTP
//! client for the `/auth` routes). No assertion is on time, except the one the
//! design makes: a revocation is seen by every node within one second.

#[path = "nodes/api.rs"]
mod api;
#[path = "nodes/cluster.rs"]
mod cluster;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Row as _;
use tokio::task::JoinSet;

use api::{Api, Reply, Tokens, claim, header_kid};
use cluster::{Cluster, Node, Proxy, tails};

/// How soon every node must refuse a revoked access token.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(1);
/// How often a revoked access token is tried while waiting for that.
const REVOCATION_POLL: Duration = Duration::from_millis(50);
/// Switches the failure limits off where a test sends many refreshes from one
/// address on purpose.
const NO_RATE_LIMITS: (&str, &str) = ("TESSERA_RATE_LIMITS", "off");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_started_at_once_publish_one_jwks() {
    let Some(cluster) = Cluster::with_redis("three_nodes_started_at_once_publish_one_jwks").await
    else {
        return;
    };
    // An empty schema and three nodes at the same instant: they race to migrate and
    // to make the first signing keys.
    let nodes = start_at_once(&cluster, 3, &[]);
    let all = refs(&nodes);
    let api = Api::new();

    let mut sets = Vec::new();
    for node in &nodes {
        let jwks = api.jwks(node).await;
        let keys = jwks["keys"].clone();
        assert!(
            keys.as_array().is_some_and(|k| !k.is_empty()),
            "{}: no keys in {jwks}{}",
            node.name(),
            tails(&all)
        );
        sets.push(keys);
    }
    for (node, keys) in nodes.iter().zip(&sets).skip(1) {
        assert_eq!(
            keys,
            &sets[0],
            "{} publishes other keys than {}{}",
            node.name(),
            nodes[0].name(),
            tails(&all)
        );
    }

    // A node that joins later finds the same keys.
    let late = Node::start(&cluster, &[]);
    assert_eq!(
        api.jwks(&late).await["keys"],
        sets[0],
        "a node started later publishes other keys{}",
        tails(&[&late])
    );

    // A token signed on any node verifies on every node.
    let everyone: Vec<&Node> = nodes.iter().chain([&late]).collect();
    api.register(&nodes[0], "ada").await;
    for signer in &everyone {
        let tokens = api.login(signer, "ada").await;
        for verifier in &everyone {
            let status = api.me(verifier, &tokens.access).await;
            assert_eq!(
                status,
                200,
                "a token signed on {} is refused on {}{}",
                signer.name(),
                verifier.name(),
                tails(&everyone)
            );
        }
    }
}

/// Login on node 1, refresh on node 2, logout (and logout-all) on node 3: the access
/// tokens are refused on every node within one second. With Redis, revocations
/// cross at once by its broadcast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refresh_logout_across_nodes_sharing_redis() {
    let Some(cluster) =
        Cluster::with_redis("login_refresh_logout_across_nodes_sharing_redis").await
    else {
        return;
    };
    login_refresh_logout_across_nodes(cluster).await;
}

/// Without Redis: revocations cross by each node's catch-up from the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refresh_logout_across_nodes_on_the_database_alone() {
    let Some(cluster) =
        Cluster::new("login_refresh_logout_across_nodes_on_the_database_alone").await
    else {
        return;
    };
    login_refresh_logout_across_nodes(cluster).await;
}

async fn login_refresh_logout_across_nodes(cluster: Cluster) {
    let nodes = start_at_once(&cluster, 3, &[]);
    let all = refs(&nodes);
    let [n1, n2, n3] = [&nodes[0], &nodes[1], &nodes[2]];
    let api = Api::new();
    let mut report = Report::default();

    // Logout: login on node 1, refresh on node 2, logout on node 3.
    api.register(n1, "ada").await;
    let first = api.login(n1, "ada").await;
    let r = api.refresh(n2, &first.refresh).await;
    assert_eq!(r.status, 200, "refresh on node2: {r:?}{}", tails(&all));
    let second = r.tokens();
    assert_ne!(second.refresh, first.refresh, "the refresh token rotates");
    assert_ne!(second.access, first.access);
    for node in &nodes {
        for (what, t) in [("the first", &first), ("the second", &second)] {
            let status = api.me(node, &t.access).await;
            assert_eq!(
                status,
                200,
                "{what} access token on {}{}",
                node.name(),
                tails(&all)
            );
        }
    }
    let r = api.logout(n3, &second.access, Some(&second.refresh)).await;
    assert_eq!(r.status, 204, "logout on node3: {r:?}{}", tails(&all));
    let since = Instant::now();
    let checks = [
        ("the logged-out access token", n1, second.access.as_str()),
        ("the logged-out access token", n2, &second.access),
        ("the logged-out access token", n3, &second.access),
        (
            "the earlier access token of the same session",
            n1,
            &first.access,
        ),
        (
            "the earlier access token of the same session",
            n2,
            &first.access,
        ),
        (
            "the earlier access token of the same session",
            n3,
            &first.access,
        ),
    ];
    report.lines.push("logout on node3:".to_owned());
    refused_within(&api, &checks, since, &mut report).await;
    // The session's refresh tokens are dead everywhere (the family is in the database).
    for (what, rt) in [("spent", &first.refresh), ("logged-out", &second.refresh)] {
        for node in [n1, n2] {
            let r = api.refresh(node, rt).await;
            assert!(
                r.status == 401 && r.error() == Some("invalid_grant"),
                "the {what} refresh token after logout, on {}: {r:?}{}",
                node.name(),
                tails(&all)
            );
        }
    }

    // Logout-all: sessions from logins on nodes 1 and 2, logout-all on node 3.
    api.register(n1, "grace").await;
    let a = api.login(n1, "grace").await;
    let b = api.login(n2, "grace").await;
    for node in &nodes {
        for t in [&a, &b] {
            assert_eq!(
                api.me(node, &t.access).await,
                200,
                "{}{}",
                node.name(),
                tails(&all)
            );
        }
    }
    // One session ended from another (DELETE /auth/sessions/{id}) on node 3.
    let c = api.login(n1, "grace").await;
    let r = api
        .delete_session(n3, &b.access, &claim(&c.access, "sid"))
        .await;
    assert_eq!(
        r.status,
        204,
        "session deletion on node3: {r:?}{}",
        tails(&all)
    );
    let since = Instant::now();
    let checks: Vec<_> = nodes
        .iter()
        .map(|node| {
            (
                "the access token of the deleted session",
                node,
                c.access.as_str(),
            )
        })
        .collect();
    report.lines.push("session deleted on node3:".to_owned());
    refused_within(&api, &checks, since, &mut report).await;

    let r = api.logout_all(n3, &a.access).await;
    assert_eq!(r.status, 204, "logout-all on node3: {r:?}{}", tails(&all));
    let since = Instant::now();
    let mut checks = Vec::new();
    for node in &nodes {
        checks.push((
            "the access token of the session from node1",
            node,
            a.access.as_str(),
        ));
        checks.push((
            "the access token of the session from node2",
            node,
            &b.access,
        ));
    }
    report.lines.push("logout-all on node3:".to_owned());
    refused_within(&api, &checks, since, &mut report).await;
    for t in [&a, &b] {
        for node in [n1, n2] {
            let r = api.refresh(node, &t.refresh).await;
            assert!(
                r.status == 401 && r.error() == Some("invalid_grant"),
                "a refresh token after logout-all, on {}: {r:?}{}",
                node.name(),
                tails(&all)
            );
        }
    }

    let lines = report.lines.join("\n  ");
    eprintln!("revocation across nodes:\n  {lines}");
    assert_eq!(
        report.late,
        0,
        "every node must refuse a revoked access token within {REVOCATION_DEADLINE:?}:\n  {lines}{}",
        tails(&all)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_over_three_nodes_yield_at_most_one_successor() {
    const REQUESTS: usize = 200;
    let Some(cluster) =
        Cluster::with_redis("concurrent_refreshes_over_three_nodes_yield_at_most_one_successor")
            .await
    else {
        return;
    };
    let nodes = Arc::new(start_at_once(&cluster, 3, &[NO_RATE_LIMITS]));
    let all = refs(&nodes);
    let api = Api::new();
    api.register(&nodes[0], "ada").await;
    let login = api.login(&nodes[0], "ada").await;
    let family = claim(&login.access, "sid");

    // The same refresh token, 200 times at once, round-robin over the nodes.
    let barrier = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let mut set = JoinSet::new();
    let started = Instant::now();
    for i in 0..REQUESTS {
        let (api, nodes, barrier) = (api.clone(), Arc::clone(&nodes), Arc::clone(&barrier));
        let rt = login.refresh.clone();
        set.spawn(async move {
            let node = &nodes[i % nodes.len()];
            barrier.wait().await;
            (node.name().to_owned(), api.refresh(node, &rt).await)
        });
    }
    let mut successors = BTreeMap::<String, usize>::new();
    let mut counts = BTreeMap::<(String, u16), usize>::new();
    let mut odd = Vec::new();
    let mut last_ok = None;
    while let Some(done) = set.join_next().await {
        let (node, r) = done.unwrap_or_else(|e| panic!("{e}{}", tails(&all)));
        *counts.entry((node.clone(), r.status)).or_default() += 1;
        match r.status {
            200 => {
                let t = r.tokens();
                *successors.entry(t.refresh.clone()).or_default() += 1;
                last_ok = Some(t);
            }
            401 if r.error() == Some("invalid_grant") => {}
            _ => odd.push(format!("{node}: {r:?}")),
        }
    }
    eprintln!(
        "{REQUESTS} concurrent refreshes in {:?}: {counts:?}",
        started.elapsed()
    );
    assert!(
        odd.is_empty(),
        "answers other than 200 and 401 invalid_grant: {odd:#?}{}",
        tails(&all)
    );
    assert_eq!(
        successors.len(),
        1,
        "every 200 must carry the same successor; seen {} different ones ({counts:?}){}",
        successors.len(),
        tails(&all)
    );
    let successor = last_ok.expect("at least one 200");

    let (unspent, total) = family_tokens(&cluster, &family).await;
    assert!(
        unspent <= 1,
        "family {family} has {unspent} unspent refresh tokens (of {total}){}",
        tails(&all)
    );
    // The one successor goes on working, on any node.
    let r = api.refresh(&nodes[2], &successor.refresh).await;
    assert_eq!(
        r.status,
        200,
        "the successor on node3: {r:?}{}",
        tails(&all)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_storm_leaves_no_family_with_two_live_successors() {
    const USERS: usize = 20;
    const STEPS: usize = 30;
    let Some(cluster) =
        Cluster::with_redis("a_node_killed_mid_storm_leaves_no_family_with_two_live_successors")
            .await
    else {
        return;
    };
    let nodes = Arc::new(start_at_once(&cluster, 3, &[NO_RATE_LIMITS]));
    let all = refs(&nodes);
    let api = Api::new();
    let mut logins = Vec::new();
    for i in 0..USERS {
        let node = &nodes[i % nodes.len()];
        let name = format!("user{i}");
        api.register(node, &name).await;
        logins.push(api.login(node, &name).await);
    }

    // The storm: one chain of refreshes per user, each step on the next node, every
    // fifth step sent to all three nodes at once (a client retrying in parallel).
    let done = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for (i, login) in logins.iter().enumerate() {
        let (api, nodes) = (api.clone(), Arc::clone(&nodes));
        let (done, finished) = (Arc::clone(&done), Arc::clone(&finished));
        let first = login.refresh.clone();
        set.spawn(async move {
            let c = chain(i, first, STEPS, api, nodes, done).await;
            finished.fetch_add(1, Ordering::Relaxed);
            c
        });
    }
    // Node 2 dies, hard, halfway (or when every chain has ended, if they end early).
    let halfway = USERS * STEPS / 2;
    while done.load(Ordering::Relaxed) < halfway && finished.load(Ordering::Relaxed) < USERS {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let at_kill = done.load(Ordering::Relaxed);
    nodes[1].kill_hard();
    let killed_after = started.elapsed();
    let mut chains = Vec::new();
    while let Some(c) = set.join_next().await {
        chains.push(c.unwrap_or_else(|e| panic!("{e}{}", tails(&all))));
    }
    chains.sort_by_key(|c| c.user);
    let steps: usize = chains.iter().map(|c| c.steps).sum();
    let failed: usize = chains.iter().map(|c| c.unanswered).sum();
    let retried: usize = chains.iter().map(|c| c.retried).sum();
    let revoked: Vec<usize> = chains
        .iter()
        .filter(|c| c.revoked)
        .map(|c| c.user)
        .collect();
    eprintln!(
        "storm: {steps} refresh steps in {:?}; node2 killed after {at_kill} steps ({killed_after:?}); \
         {failed} requests unanswered, {retried} steps answered only on a retry; chains that saw their family revoked: {revoked:?}",
        started.elapsed()
    );
    let problems: Vec<String> = chains.iter().flat_map(|c| c.problems.clone()).collect();
    assert!(
        problems.is_empty(),
        "the storm saw wrong answers: {problems:#?}{}",
        tails(&all)
    );

    // In the database: no family with two unspent refresh tokens.
    let mut db = cluster.db().await;
    let twins: Vec<(String, i64)> = sqlx::query(
        "SELECT family_id, count(*) FROM refresh_tokens WHERE used_at IS NULL \
         GROUP BY family_id HAVING count(*) > 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect();
    assert!(
        twins.is_empty(),
        "families with more than one unspent refresh token: {twins:?}{}",
        tails(&all)
    );
    // Every chain's last token goes on, on node 1 (unless the chain saw its family
    // revoked, which a well-behaved client should not).
    for c in chains.iter().filter(|c| !c.revoked) {
        let r = api.refresh(&nodes[0], &c.last).await;
        assert_eq!(
            r.status,
            200,
            "user{}'s last refresh token (after {} steps) on node1: {r:?}{}",
            c.user,
            c.steps,
            tails(&all)
        );
    }
    // A survivor stopped with SIGTERM exits 0.
    let status = nodes[2].stop();
    assert!(
        status.success(),
        "node3 after SIGTERM: {status}{}",
        tails(&all)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_unreachable_and_back() {
    let Some(cluster) = Cluster::new("the_database_unreachable_and_back").await else {
        return;
    };
    let proxy = Proxy::start(cluster.database_addr());
    let node = Node::start_on(&cluster, &cluster.url_via(proxy.addr()), &[]);
    let all = [&node];
    let api = Api::new();
    api.register(&node, "ada").await;
    let earlier = api.login(&node, "ada").await;
    let held = api.login(&node, "ada").await;
    let r = api.readyz(&node).await;
    assert_eq!(
        (r.status, &r.body["status"], &r.body["checks"]["database"]),
        (200, &Value::from("ok"), &Value::from("ok")),
        "{r:?}{}",
        tails(&all)
    );

    proxy.cut();
    // The node notices as soon as a request needs the database (a dead pooled
    // connection, then refused connections and the pool's acquire timeout).
    let (login, noticed) = poll_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            let r = api.login_reply(&node, "ada").await;
            match r.status {
                200 => Err(r),
                _ => Ok(r),
            }
        },
    )
    .await
    .unwrap_or_else(|r| panic!("login still 200 30 s after the cut: {r:?}{}", tails(&all)));
    assert_unavailable("login", &login, &all);
    let t = Instant::now();
    let refresh = api.refresh(&node, &held.refresh).await;
    let refresh_took = t.elapsed();
    assert_unavailable("refresh", &refresh, &all);
    // Access tokens go on being verified without the database.
    assert_eq!(api.me(&node, &earlier.access).await, 200, "{}", tails(&all));
    let t = Instant::now();
    let r = api.readyz(&node).await;
    let readyz_took = t.elapsed();
    assert_eq!(
        r.status,
        200,
        "readyz without the database: {r:?}{}",
        tails(&all)
    );
    assert_eq!(r.body["status"], "degraded", "{r:?}");
    assert_eq!(r.body["checks"]["database"], "unavailable", "{r:?}");
    assert!(r.body["checks"]["redis"].is_string(), "{r:?}");

    proxy.restore();
    let restored = Instant::now();
    let (_, back) = poll_for(
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || {
            let r = api.login_reply(&node, "ada").await;
            match r.status {
                200 => Ok(r),
                503 => Err(r),
                _ => panic!("login while the database comes back: {r:?}{}", tails(&all)),
            }
        },
    )
    .await
    .unwrap_or_else(|r| {
        panic!(
            "login not back 60 s after the restore: {r:?}{}",
            tails(&all)
        )
    });
    // Nothing half-written: the token whose refresh got a 503 is still good, once.
    let r = api.refresh(&node, &held.refresh).await;
    assert_eq!(
        r.status,
        200,
        "the refresh token that got a 503: {r:?}{}",
        tails(&all)
    );
    let next = r.tokens();
    let (unspent, total) = family_tokens(&cluster, &claim(&held.access, "sid")).await;
    assert_eq!(
        (unspent, total),
        (1, 2),
        "the family after the outage: (unspent, all) tokens{}",
        tails(&all)
    );
    let r = api.refresh(&node, &next.refresh).await;
    assert_eq!(r.status, 200, "{r:?}{}", tails(&all));
    let (ready, ready_back) = poll_for(
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            let r = api.readyz(&node).await;
            if r.status == 200 && r.body["status"] == "ok" {
                Ok(r)
            } else {
                Err(r)
            }
        },
    )
    .await
    .unwrap_or_else(|r| panic!("readyz not ok 30 s after the restore: {r:?}{}", tails(&all)));
    assert_eq!(ready.body["checks"]["database"], "ok", "{ready:?}");
    eprintln!(
        "database cut: login 503 after {noticed:?}, then refresh 503 in {refresh_took:?}, \
         readyz degraded in {readyz_took:?}; restored: login 200 after {back:?}, readyz ok \
         {ready_back:?} later ({:?} after the restore)",
        restored.elapsed()
    );
}

// ----- helpers -------------------------------------------------------------------------

/// Starts `n` nodes at the same instant (all spawned, then each waited for).
fn start_at_once(cluster: &Cluster, n: usize, env: &[(&str, &str)]) -> Vec<Node> {
    let starting: Vec<_> = (0..n).map(|_| Node::spawn(cluster, env)).collect();
    starting.into_iter().map(cluster::Starting::ready).collect()
}

fn refs(nodes: &[Node]) -> Vec<&Node> {
    nodes.iter().collect()
}

/// What the revocation checks saw: one line per check, and how many failed.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
    late: usize,
}

/// Polls each `(what, node, access token)` with `GET /auth/me` every
/// [`REVOCATION_POLL`] until the node refuses it (401) or [`REVOCATION_DEADLINE`]
/// has passed since `since`; adds to `report` one line per check, with the latency
/// observed.
async fn refused_within(
    api: &Api,
    checks: &[(&str, &Node, &str)],
    since: Instant,
    report: &mut Report,
) {
    let mut seen: Vec<Option<Duration>> = vec![None; checks.len()];
    let mut last = vec![0; checks.len()];
    loop {
        for (i, (_, node, access)) in checks.iter().enumerate() {
            if seen[i].is_none() {
                last[i] = api.me(node, access).await;
                if last[i] == 401 {
                    seen[i] = Some(since.elapsed());
                }
            }
        }
        if seen.iter().all(Option::is_some) || since.elapsed() >= REVOCATION_DEADLINE {
            break;
        }
        tokio::time::sleep(REVOCATION_POLL).await;
    }
    for ((what, node, _), (seen, last)) in checks.iter().zip(seen.iter().zip(&last)) {
        let line = match seen {
            Some(t) => format!(
                "{}: {what}: refused after {} ms",
                node.name(),
                t.as_millis()
            ),
            None => {
                report.late += 1;
                format!(
                    "{}: {what}: still accepted after {} ms (last answer {last})",
                    node.name(),
                    since.elapsed().as_millis()
                )
            }
        };
        report.lines.push(line);
    }
}

/// Calls `probe` every `every` until it answers `Ok`, for at most `limit`: the
/// value and the time it took, or the last `Err`.
async fn poll_for<T, E>(
    limit: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> Result<(T, Duration), E> {
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(v) => return Ok((v, start.elapsed())),
            Err(e) if start.elapsed() >= limit => return Err(e),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// A 503 `temporarily_unavailable` with a `Retry-After` of whole seconds.
fn assert_unavailable(what: &str, r: &Reply, all: &[&Node]) {
    assert!(
        r.status == 503 && r.error() == Some("temporarily_unavailable"),
        "{what} without the database: {r:?}{}",
        tails(all)
    );
    assert!(
        r.body["error_description"].is_string(),
        "{what}: no error_description: {r:?}"
    );
    assert!(
        r.retry_after
            .as_deref()
            .is_some_and(|s| s.parse::<u32>().is_ok()),
        "{what} without the database: no Retry-After in seconds: {r:?}"
    );
}

/// The refresh tokens of `family` in the database: (unspent, all).
async fn family_tokens(cluster: &Cluster, family: &str) -> (i64, i64) {
    let mut db = cluster.db().await;
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE used_at IS NULL), count(*) FROM refresh_tokens WHERE family_id = $1",
    )
    .bind(family)
    .fetch_one(&mut db)
    .await
    .unwrap();
    (row.get(0), row.get(1))
}

/// What one user's chain of refreshes saw.
struct Chain {
    user: usize,
    /// The last refresh token a 200 handed out.
    last: String,
    /// Refreshes answered 200.
    steps: usize,
    /// Requests that got no answer (the dead node).
    unanswered: usize,
    /// Steps that got their successor only on a retry, after no node answered.
    retried: usize,
    /// A 401: the family was revoked under the chain.
    revoked: bool,
    /// Anything a correct server does not answer.
    problems: Vec<String>,
}

/// Refreshes `first`, then its successor, `steps` times, each step on the next
/// node; every fifth step sends the same token to every node at once. A step that
/// no node answered is retried on the next node, with the same token, as a client
/// would (the reuse interval answers the same successor if it was spent).
async fn chain(
    user: usize,
    first: String,
    steps: usize,
    api: Api,
    nodes: Arc<Vec<Node>>,
    done: Arc<AtomicUsize>,
) -> Chain {
    let mut c = Chain {
        user,
        last: first,
        steps: 0,
        unanswered: 0,
        retried: 0,
        revoked: false,
        problems: Vec::new(),
    };
    let mut turn = user;
    'steps: for step in 0..steps {
        for attempt in 0..2 * nodes.len() {
            let fan = if step % 5 == 4 { nodes.len() } else { 1 };
            let mut set = JoinSet::new();
            for k in 0..fan {
                let (api, nodes, rt) = (api.clone(), Arc::clone(&nodes), c.last.clone());
                let node = (turn + k) % nodes.len();
                set.spawn(async move { (node, api.try_refresh(&nodes[node], &rt).await) });
            }
            turn += 1;
            let mut successor: Option<Tokens> = None;
            let mut refused = false;
            while let Some(joined) = set.join_next().await {
                let (node, result) = joined.expect("a refresh task");
                match result {
                    Err(_) => c.unanswered += 1,
                    Ok(r) if r.status == 200 => {
                        let t = r.tokens();
                        if successor.as_ref().is_some_and(|s| s.refresh != t.refresh) {
                            c.problems.push(format!(
                                "user{user} step {step}: two different successors of one token"
                            ));
                        }
                        successor = Some(t);
                    }
                    Ok(r) if r.status == 401 && r.error() == Some("invalid_grant") => {
                        refused = true;
                    }
                    Ok(r) => c.problems.push(format!(
                        "user{user} step {step} on {}: {r:?}",
                        nodes[node].name()
                    )),
                }
            }
            if let Some(s) = successor {
                if refused {
                    c.problems.push(format!(
                        "user{user} step {step}: a successor from one node, 401 from another"
                    ));
                }
                c.last = s.refresh;
                c.steps += 1;
                c.retried += usize::from(attempt > 0);
                done.fetch_add(1, Ordering::Relaxed);
                continue 'steps;
            }
            if refused {
                c.revoked = true;
                break 'steps;
            }
            // Nobody answered (the dead node): the same token, on the next node.
        }
        c.problems
            .push(format!("user{user} step {step}: no node answered"));
        break;
    }
    c
}

/// A resource server's guard subscribed to the feed of one node refuses a token
/// logged out on another within one second; while the feed is down it keeps
/// refusing what it knows and accepting the rest; when the feed returns it catches
/// up (resuming from its last event id) and refuses what was revoked meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_on_the_revocation_feed_refuses_within_a_second_and_catches_up() {
    use tessera_guard::{Guard, RemoteJwks, RevocationFeed, access_token_validation};

    let Some(cluster) = Cluster::with_redis(
        "a_guard_on_the_revocation_feed_refuses_within_a_second_and_catches_up",
    )
    .await
    else {
        return;
    };
    const FEED_TOKEN: &str = "a-feed-token-for-resource-servers";
    let nodes = start_at_once(
        &cluster,
        3,
        &[("TESSERA_REVOCATION_FEED_TOKENS", FEED_TOKEN)],
    );
    let all = refs(&nodes);
    let [n1, n2, n3] = [&nodes[0], &nodes[1], &nodes[2]];
    let api = Api::new();
    api.register(n1, "ada").await;
    let t1 = api.login(n1, "ada").await;
    let t2 = api.login(n2, "ada").await;
    let t3 = api.login(n3, "ada").await;

    // The guard takes its keys from node 1 and its feed from node 2, through a
    // proxy the test can cut.
    let n2_addr: std::net::SocketAddr = n2.url().trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(n2_addr);
    let feed = RevocationFeed::new(
        &format!("http://{}/auth/revocations", proxy.addr()),
        FEED_TOKEN,
    )
    .unwrap()
    .backoff(Duration::from_millis(50), Duration::from_millis(200));
    let _task = feed.start();
    let jwks = RemoteJwks::new(&format!("{}/.well-known/jwks.json", n1.url())).unwrap();
    let guard = Guard::builder(jwks)
        .validation(access_token_validation(cluster::ISSUER, cluster::ISSUER))
        .with_revocation(Arc::new(feed.clone()))
        .build();
    for t in [&t1, &t2, &t3] {
        assert!(guard.verify(&t.access).await.is_ok());
    }
    let connected = poll_for(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            if feed.is_connected() { Ok(()) } else { Err(()) }
        },
    )
    .await;
    assert!(
        connected.is_ok(),
        "the guard never connected to the feed{}",
        tails(&all)
    );

    // Logout on node 3: the guard refuses within one second.
    let since = Instant::now();
    let r = api.logout(n3, &t1.access, Some(&t1.refresh)).await;
    assert_eq!(r.status, 204, "{r:?}");
    let mut refused = None;
    while since.elapsed() < REVOCATION_DEADLINE {
        if guard.verify(&t1.access).await.is_err() {
            refused = Some(since.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refused.is_some(),
        "the guard still accepted a logged-out token after {} ms{}",
        since.elapsed().as_millis(),
        tails(&all)
    );

    // The feed goes down: what the guard knows still holds, the rest still passes.
    proxy.cut();
    let down = poll_for(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            if feed.is_connected() { Err(()) } else { Ok(()) }
        },
    )
    .await;
    assert!(down.is_ok(), "the guard did not notice the feed went down");
    assert!(guard.verify(&t1.access).await.is_err());
    assert!(guard.verify(&t2.access).await.is_ok());
    let r = api.logout(n1, &t2.access, None).await;
    assert_eq!(r.status, 204, "{r:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        guard.verify(&t2.access).await.is_ok(),
        "the feed is cut: the guard cannot know yet"
    );

    // Back: the guard catches up.
    proxy.restore();
    let caught_up = poll_for(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            if guard.verify(&t2.access).await.is_err() {
                Ok(())
            } else {
                Err(())
            }
        },
    )
    .await;
    assert!(
        caught_up.is_ok(),
        "the guard did not catch up after the feed returned{}",
        tails(&all)
    );
    assert!(guard.verify(&t3.access).await.is_ok());
    assert!(guard.verify(&t1.access).await.is_err());

    // SIGTERM with the feed's connection open: the stream ends, the node exits 0.
    assert!(feed.is_connected());
    let status = n2.stop();
    assert!(status.success(), "node 2 exited {status}{}", n2.tail());
}

/// `tessera key rotate` against the shared database: every node publishes the same
/// new key set within its key reload interval, and signs with the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_reaches_every_node() {
    let Some(cluster) = Cluster::with_redis("a_key_rotation_reaches_every_node").await else {
        return;
    };
    let nodes = start_at_once(&cluster, 3, &[("TESSERA_KEY_RELOAD_INTERVAL", "1")]);
    let all = refs(&nodes);
    let api = Api::new();
    let before = api.jwks(&nodes[0]).await;
    api.register(&nodes[0], "ada").await;
    let old = api.login(&nodes[1], "ada").await;
    let out = cluster.rotate_keys();
    assert!(out.status.success(), "key rotate: {out:?}");
    let mut sets = Vec::new();
    for node in &nodes {
        let changed = poll_for(
            Duration::from_secs(15),
            Duration::from_millis(100),
            async || {
                let now = api.jwks(node).await;
                if now == before { Err(()) } else { Ok(now) }
            },
        )
        .await;
        let Ok((set, _)) = changed else {
            panic!(
                "{} still publishes the old key set{}",
                node.name(),
                tails(&all)
            );
        };
        sets.push(set);
    }
    assert!(sets.windows(2).all(|w| w[0] == w[1]), "{sets:?}");
    // The old token still verifies everywhere (its key stays published); a new one,
    // signed with the new key by any node, verifies on the others.
    let new = api.login(&nodes[2], "ada").await;
    assert_ne!(header_kid(&new.access), header_kid(&old.access));
    for node in &nodes {
        assert_eq!(api.me(node, &old.access).await, 200, "{}", node.name());
        assert_eq!(api.me(node, &new.access).await, 200, "{}", node.name());
    }
}
