//! What many nodes need, over HTTP: the revocation feed, and Redis shared by nodes
//! (limits across nodes, stateful sessions in Redis, Redis stopped and restarted).
//! Nodes here are in-process servers sharing one database file; the three-process
//! tests on PostgreSQL are in the `tessera` crate (`tests/nodes.rs`). Redis cases
//! say SKIPPED on stderr without `TESSERA_TEST_REDIS`; the restart case runs a
//! `redis-server` of its own on a Unix socket in a temporary directory, and never
//! touches the machine's Redis.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_server::clock::ManualClock;
use tessera_server::config::Config;
use tessera_server::{Running, spawn};

use common::{Backend, TestDb};

const FEED_TOKEN: &str = "feed-token-0123456789abcdef";

struct Node {
    base: String,
    http: reqwest::Client,
    running: Option<Running>,
}

impl Node {
    async fn start(config: &Config, clock: Arc<ManualClock>) -> Self {
        common::captured_logs();
        let running = spawn(config, clock).await.unwrap();
        Self {
            base: format!("http://{}", running.addr),
            http: reqwest::Client::new(),
            running: Some(running),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn register(&self, name: &str) {
        let r = self
            .post(
                "/auth/register",
                json!({"username": name, "password": "correct horse"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }

    /// Logs in: (access token, refresh token).
    async fn login(&self, name: &str) -> (String, String) {
        let r = self
            .post(
                "/auth/login",
                json!({"username": name, "password": "correct horse"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        (
            v["access_token"].as_str().unwrap().to_string(),
            v["refresh_token"].as_str().unwrap().to_string(),
        )
    }

    async fn me(&self, access: &str) -> StatusCode {
        self.http
            .get(self.url("/auth/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn readyz(&self) -> Value {
        self.http
            .get(self.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
    }
}

fn config(db: &TestDb) -> Config {
    Config {
        addr: "127.0.0.1:0".into(),
        database: db.url.clone(),
        argon2_memory_kib: 256,
        argon2_iterations: 1,
        argon2_parallelism: 1,
        revocation_feed_tokens: vec![FEED_TOKEN.into()],
        // The same on every node (by default it is each node's own address).
        issuer: Some("http://127.0.0.1".into()),
        ..Config::default()
    }
}

fn with_redis(mut c: Config, url: &str, prefix: &str) -> Config {
    c.redis = Some(url.into());
    c.redis_key_prefix = prefix.into();
    c
}

/// Polls `check` every 20 ms until it holds or `within` passes; how long it took.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The captured lines that contain every one of `parts`.
fn log_lines(parts: &[&str]) -> usize {
    let logs = common::captured_logs().0.lock().unwrap();
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .count()
}

// ----- the revocation feed --------------------------------------------------------------

/// An open feed, read event by event.
struct Feed {
    res: reqwest::Response,
    buf: String,
}

#[derive(Debug, Clone, PartialEq)]
struct FeedEvent {
    id: Option<String>,
    data: Value,
}

impl Feed {
    async fn open(node: &Node, last_event_id: Option<&str>) -> Self {
        let mut req = node
            .http
            .get(node.url("/auth/revocations"))
            .bearer_auth(FEED_TOKEN);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            res,
            buf: String::new(),
        }
    }

    /// The next `revoked` event, within 5 s.
    async fn next(&mut self) -> FeedEvent {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(end) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..end + 2).collect();
                    let mut id = None;
                    let mut data = None;
                    let mut event = None;
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id: ") {
                            id = Some(v.to_string());
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            data = Some(serde_json::from_str(v).unwrap());
                        } else if let Some(v) = line.strip_prefix("event: ") {
                            event = Some(v.to_string());
                        }
                    }
                    if let (Some("revoked"), Some(data)) = (event.as_deref(), data) {
                        return FeedEvent { id, data };
                    }
                    continue;
                }
                let chunk = self.res.chunk().await.unwrap().expect("the feed ended");
                self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("no event within 5 s")
    }
}

#[tokio::test]
async fn the_revocation_feed_needs_its_token_and_streams_every_revocation() {
    let db = TestDb::new(Backend::Sqlite, "feed").await.unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    // Not configured: no such route.
    let mut unconfigured = config(&db);
    unconfigured.revocation_feed_tokens.clear();
    let off = Node::start(&unconfigured, clock.clone()).await;
    let r = off
        .http
        .get(off.url("/auth/revocations"))
        .bearer_auth(FEED_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    off.stop().await;

    let node = Node::start(&config(&db), clock.clone()).await;
    for (auth, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("not-the-feed-token-at-all"), StatusCode::UNAUTHORIZED),
    ] {
        let mut req = node.http.get(node.url("/auth/revocations"));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), want);
        assert!(r.headers().contains_key("www-authenticate"));
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    // An access token of a user is no feed token.
    node.register("ada").await;
    let (access, refresh) = node.login("ada").await;
    let r = node
        .http
        .get(node.url("/auth/revocations"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let mut feed = Feed::open(&node, None).await;
    let r = node
        .http
        .post(node.url("/auth/logout"))
        .bearer_auth(&access)
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let claims = jwt_claims(&access);
    let mut got = [feed.next().await, feed.next().await];
    got.sort_by_key(|e| e.data["kind"].as_str().unwrap().to_string());
    assert_eq!(got[0].data["kind"], "jti");
    assert_eq!(got[0].data["value"], claims["jti"]);
    assert_eq!(
        got[0].data["expires_at"],
        claims["exp"].as_i64().unwrap() + 1
    );
    assert_eq!(got[1].data["kind"], "sid");
    assert_eq!(got[1].data["value"], claims["sid"]);
    let ids: Vec<i64> = got
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect();

    // Logout-all: one `user` entry with its cutoff.
    let (access2, _) = node.login("ada").await;
    let r = node
        .http
        .post(node.url("/auth/logout-all"))
        .bearer_auth(&access2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let mut user_event = None;
    for _ in 0..3 {
        let e = feed.next().await;
        if e.data["kind"] == "user" {
            user_event = Some(e);
            break;
        }
    }
    let user_event = user_event.expect("a user entry");
    assert_eq!(user_event.data["value"], claims["sub"]);
    assert!(user_event.data["issued_before"].as_i64().unwrap() >= claims["iat"].as_i64().unwrap());

    // A new connection first gets everything in force; one that resumes gets only
    // what came after its cursor.
    let mut fresh = Feed::open(&node, None).await;
    let first = fresh.next().await;
    assert_eq!(
        first.id.as_deref(),
        Some(ids.iter().min().unwrap().to_string().as_str())
    );
    let max = *ids.iter().max().unwrap();
    let mut resumed = Feed::open(&node, Some(&max.to_string())).await;
    let next = resumed.next().await;
    assert!(next.id.unwrap().parse::<i64>().unwrap() > max);
    assert_ne!(next.data["kind"], "jti");
    node.stop().await;
}

fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

// ----- Redis shared by nodes --------------------------------------------------------------

#[tokio::test]
async fn brute_force_limits_hold_across_nodes_sharing_redis() {
    let Some(redis) =
        common::redis_url("scale::brute_force_limits_hold_across_nodes_sharing_redis")
    else {
        return;
    };
    let prefix = common::redis_prefix();
    let db = TestDb::new(Backend::Sqlite, "limits").await.unwrap();
    let mut c = with_redis(config(&db), &redis, &prefix);
    c.rate_limit_account_failures = 3;
    let clock = Arc::new(ManualClock::starting_now());
    let a = Node::start(&c, clock.clone()).await;
    let b = Node::start(&c, clock.clone()).await;
    a.register("ada").await;
    let wrong = json!({"username": "ada", "password": "wrong password"});
    let mut statuses = Vec::new();
    for node in [&a, &b, &a, &b] {
        statuses.push(node.post("/auth/login", wrong.clone()).await.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // The right password is refused too until the window ends, on either node.
    let right = json!({"username": "ada", "password": "correct horse"});
    assert_eq!(
        b.post("/auth/login", right.clone()).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    clock.advance(15 * 60);
    assert_eq!(b.post("/auth/login", right).await.status(), StatusCode::OK);
    assert_eq!(a.readyz().await["checks"]["redis"], "ok");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn stateful_sessions_live_in_redis_and_work_on_every_node() {
    let Some(redis) =
        common::redis_url("scale::stateful_sessions_live_in_redis_and_work_on_every_node")
    else {
        return;
    };
    let db = TestDb::new(Backend::Sqlite, "sessions").await.unwrap();
    let c = with_redis(config(&db), &redis, &common::redis_prefix());
    let clock = Arc::new(ManualClock::starting_now());
    let a = Node::start(&c, clock.clone()).await;
    let b = Node::start(&c, clock.clone()).await;
    a.register("ada").await;
    let r = a
        .post(
            "/session/login",
            json!({"username": "ada", "password": "correct horse"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("tessera_sid="))
        .unwrap();
    let sid_cookie = cookie.split(';').next().unwrap().to_string();
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let me = |node: &Node| {
        node.http
            .get(node.url("/session/me"))
            .header("cookie", &sid_cookie)
            .send()
    };
    let r = me(&b).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "ada");
    // Nothing of it is in the database.
    let rows: i64 = {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM server_sessions")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(rows, 0, "the session is in Redis, not in the database");
    // Logout on one node ends it on the other.
    let r = b
        .http
        .post(b.url("/session/logout"))
        .header("cookie", format!("{sid_cookie}; tessera_csrf={csrf}"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&a).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    a.stop().await;
    b.stop().await;
}

/// Logs `access` out on `here`; whether `there` refuses it within one second.
async fn logged_out_reaches(here: &Node, there: &Node, access: &str) -> bool {
    let r = here
        .http
        .post(here.url("/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    eventually(Duration::from_secs(1), || async {
        there.me(access).await == StatusCode::UNAUTHORIZED
    })
    .await
    .is_some()
}

/// A `redis-server` of the test's own, on a Unix socket in a temporary directory.
struct OwnRedis {
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut me = Self { dir, child: None };
        me.restart();
        me
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("redis.sock")
    }

    fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(self.socket())
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package) must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.socket().exists() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn redis_stopped_and_restarted() {
    // Needs only the redis-server program; the machine's Redis is not used.
    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        common::skipped_because(
            "scale::redis_stopped_and_restarted",
            "redis-server not installed",
        );
        return;
    }
    let mut redis = OwnRedis::start();
    let db = TestDb::new(Backend::Sqlite, "redis-down").await.unwrap();
    let c = with_redis(config(&db), &redis.url(), "t:");
    let clock = Arc::new(ManualClock::starting_now());
    let a = Node::start(&c, clock.clone()).await;
    let b = Node::start(&c, clock.clone()).await;
    a.register("ada").await;
    let (t1, _) = a.login("ada").await;
    let (t2, _) = a.login("ada").await;
    let (t3, _) = a.login("ada").await;
    assert_eq!(b.readyz().await["status"], "ok");

    redis.stop();
    // Degraded, not unready; tokens still verify; logins still work (the limits
    // count in each node's memory meanwhile); a logout still reaches the other
    // node (through the database).
    let r = b.http.get(b.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ready: Value = r.json().await.unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["checks"]["redis"], "unavailable", "{ready}");
    assert_eq!(b.me(&t1).await, StatusCode::OK);
    let (t4, _) = b.login("ada").await;
    assert_eq!(a.me(&t4).await, StatusCode::OK);
    assert!(
        logged_out_reaches(&a, &b, &t1).await,
        "a logout while Redis is down did not reach node b within 1 s"
    );
    // Stateful sessions live in Redis: 503 with Retry-After, not 500.
    let r = a
        .post(
            "/session/login",
            json!({"username": "ada", "password": "correct horse"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );

    // Each node said so once, not once per request.
    assert_eq!(
        log_lines(&["\"dependency\":\"redis\"", "is unavailable"]),
        2,
        "one line per node"
    );

    redis.restart();
    let back = eventually(Duration::from_secs(15), || async {
        a.readyz().await["status"] == "ok" && b.readyz().await["status"] == "ok"
    })
    .await;
    assert!(back.is_some(), "the nodes did not find Redis again");
    // The broadcast works again: a logout on b is refused on a.
    assert!(
        logged_out_reaches(&b, &a, &t2).await,
        "after Redis returned, a logout did not reach node a within 1 s"
    );
    let r = a
        .http
        .get(a.url("/auth/me"))
        .bearer_auth(&t3)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = a
        .post(
            "/session/login",
            json!({"username": "ada", "password": "correct horse"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    a.stop().await;
    b.stop().await;
}
