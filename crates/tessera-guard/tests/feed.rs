//! The revocation feed against a fake Server-Sent Events server on a random port,
//! enforced through a real `Guard`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tessera_guard::{
    Guard, RejectionKind, Revocation, RevocationFeed, RevocationView, access_token_validation,
};
use tessera_jose::jws::Header;
use tessera_jose::{Algorithm, Curve, Jwk, JwkSet, jwt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;

const ISS: &str = "https://issuer.test";
const AUD: &str = "https://api.test";
const T0: i64 = 1_800_000_000;
const FEED_TOKEN: &str = "feed-s3cret";

// ----- the fake server ----------------------------------------------------------------

/// What the fake server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    accept: Option<String>,
    last_event_id: Option<String>,
}

struct Shared {
    seen: Mutex<Vec<Seen>>,
    /// The status to answer; 200 opens a stream.
    answer: AtomicU16,
    /// The stream of the latest connection; dropping it ends that stream.
    stream: Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
}

/// `GET /auth/revocations`, answering what the test says, on 127.0.0.1:0.
struct FakeFeed {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeFeed {
    async fn start() -> Self {
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            answer: AtomicU16::new(200),
            stream: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, shared)
    }

    fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> Self {
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/auth/revocations", get(feed))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            shared,
            server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/auth/revocations", self.addr)
    }

    /// Stops listening and ends the open stream: the server is down.
    async fn stop(self) -> (SocketAddr, Arc<Shared>) {
        self.server.abort();
        self.end_stream();
        let _ = self.server.await;
        (self.addr, self.shared)
    }

    /// Listens again on the same address (the feed's URL does not change).
    async fn restart(addr: SocketAddr, shared: Arc<Shared>) -> Self {
        let listener = eventually_async("the port to be free again", || async move {
            tokio::net::TcpListener::bind(addr).await.ok()
        })
        .await;
        Self::serve(listener, shared)
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }

    fn answer(&self, status: u16) {
        self.shared.answer.store(status, Ordering::SeqCst);
    }

    /// Sends raw bytes on the open stream.
    fn send(&self, bytes: impl Into<Bytes>) {
        let stream = self.shared.stream.lock().unwrap();
        stream
            .as_ref()
            .expect("no open stream")
            .send(bytes.into())
            .expect("the client went away");
    }

    fn revoke(&self, id: u64, entry: &Value) {
        self.send(format!("event: revoked\nid: {id}\ndata: {entry}\n\n"));
    }

    /// Ends the open stream, as a server that drops the connection.
    fn end_stream(&self) {
        self.shared.stream.lock().unwrap().take();
    }
}

async fn feed(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let status = shared.answer.load(Ordering::SeqCst);
    let mut response = StatusCode::from_u16(status).unwrap().into_response();
    if status == 200 {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        *shared.stream.lock().unwrap() = Some(tx);
        let body = Body::from_stream(UnboundedReceiverStream::new(rx).map(Ok::<_, Infallible>));
        response = ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response();
    }
    // Recorded last: once a test sees the connection, its stream is open.
    shared.seen.lock().unwrap().push(Seen {
        authorization: text("authorization"),
        accept: text("accept"),
        last_event_id: text("last-event-id"),
    });
    response
}

// ----- the guard side -----------------------------------------------------------------

struct Fixture {
    server: FakeFeed,
    feed: RevocationFeed,
    guard: Guard,
    key: Jwk,
    clock: Arc<AtomicI64>,
}

impl Fixture {
    async fn start() -> Self {
        Self::start_with(|f| f).await
    }

    /// A fake server, a feed on it (fast backoff, no leeway, configured further by
    /// `configure`) started and connected, and a guard that consults it.
    async fn start_with(configure: impl FnOnce(RevocationFeed) -> RevocationFeed) -> Self {
        let server = FakeFeed::start().await;
        let clock = Arc::new(AtomicI64::new(T0));
        let t = Arc::clone(&clock);
        let hook: Arc<dyn tessera_guard::Clock> = Arc::new(move || t.load(Ordering::SeqCst));
        let feed = RevocationFeed::new(&server.url(), FEED_TOKEN)
            .unwrap()
            .backoff(Duration::from_millis(10), Duration::from_millis(50))
            .leeway(Duration::ZERO)
            .with_clock(Arc::clone(&hook));
        let feed = configure(feed);
        let key = Jwk::generate_curve(Curve::P256).unwrap().with_kid("k1");
        let guard = Guard::builder(JwkSet::new(vec![key.to_public().unwrap()]))
            .validation(access_token_validation(ISS, AUD))
            .with_revocation(Arc::new(feed.clone()))
            .with_clock(hook)
            .build();
        feed.start();
        let f = Self {
            server,
            feed,
            guard,
            key,
            clock,
        };
        f.wait_connected(1).await;
        f
    }

    /// Waits for connection number `n` to be up.
    async fn wait_connected(&self, n: usize) {
        eventually("the connection", || {
            self.server.connections() >= n && self.feed.is_connected()
        })
        .await;
    }

    async fn wait_applied(&self, n: u64) {
        eventually(&format!("{n} events applied"), || {
            self.feed.applied_count() >= n
        })
        .await;
    }

    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    /// A token valid for 15 minutes from T0.
    fn token(&self, jti: &str, sid: &str, sub: &str, iat: Option<i64>) -> String {
        let mut claims = json!({
            "iss": ISS, "aud": AUD, "sub": sub, "exp": T0 + 900, "jti": jti, "sid": sid,
        });
        if let Some(iat) = iat {
            claims["iat"] = json!(iat);
        }
        let header = Header::new(Algorithm::ES256)
            .with_kid("k1")
            .with_typ("at+jwt");
        jwt::encode(&header, &claims, &self.key).unwrap()
    }

    /// Whether the guard accepts the token of (jti, sid, sub, iat); panics on any
    /// refusal other than "revoked".
    async fn accepts(&self, jti: &str, sid: &str, sub: &str, iat: Option<i64>) -> bool {
        match self.guard.verify(&self.token(jti, sid, sub, iat)).await {
            Ok(_) => true,
            Err(e) => {
                assert_eq!(e.kind(), RejectionKind::InvalidToken, "{e:?}");
                assert_eq!(e.description(), "the token has been revoked");
                false
            }
        }
    }

    async fn accepts_jti(&self, jti: &str) -> bool {
        self.accepts(jti, "sid-other", "sub-other", Some(T0)).await
    }
}

fn jti(value: &str, expires_at: i64) -> Value {
    json!({"kind": "jti", "value": value, "expires_at": expires_at})
}

fn sid(value: &str, expires_at: i64) -> Value {
    json!({"kind": "sid", "value": value, "expires_at": expires_at})
}

fn user(value: &str, issued_before: i64, expires_at: i64) -> Value {
    json!({"kind": "user", "value": value, "issued_before": issued_before, "expires_at": expires_at})
}

/// Polls `done` until it holds, for at most 10 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn eventually_async<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> T {
    for _ in 0..1000 {
        if let Some(t) = attempt().await {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

// ----- tests --------------------------------------------------------------------------

#[tokio::test]
async fn the_three_kinds_are_applied_and_enforced() {
    let f = Fixture::start().await;
    let exp = T0 + 900;
    assert!(f.accepts("j1", "s1", "ada", Some(T0)).await);
    assert!(f.accepts("j2", "s2", "bob", Some(T0)).await);
    assert!(f.accepts("j3", "s3", "cyd", Some(T0 - 10)).await);

    f.server.revoke(1, &jti("j1", exp));
    f.server.revoke(2, &sid("s2", exp));
    f.server.revoke(3, &user("cyd", T0, exp));
    f.wait_applied(3).await;
    assert_eq!(f.feed.len(), 3);
    assert_eq!(f.feed.last_event_id().as_deref(), Some("3"));

    // By jti, by session, by user: each refuses only what it names.
    assert!(!f.accepts("j1", "s1", "ada", Some(T0)).await);
    assert!(f.accepts("j1b", "s1", "ada", Some(T0)).await);
    assert!(!f.accepts("j2b", "s2", "bob", Some(T0)).await);
    assert!(f.accepts("j2c", "s2b", "bob", Some(T0)).await);
    assert!(!f.accepts("j3", "s3", "cyd", Some(T0 - 10)).await);
    assert!(f.accepts("j3", "s3", "cyd", Some(T0)).await);
    assert!(f.accepts("j4", "s4", "dan", Some(T0 - 10)).await);
}

#[tokio::test]
async fn a_user_entry_refuses_tokens_issued_before_its_cutoff() {
    let f = Fixture::start().await;
    f.server.revoke(1, &user("ada", T0, T0 + 900));
    f.wait_applied(1).await;
    assert!(!f.accepts("a", "s", "ada", Some(T0 - 1)).await);
    assert!(!f.accepts("b", "s", "ada", Some(T0 - 600)).await);
    // Issued at or after the cutoff: a new login, accepted.
    assert!(f.accepts("c", "s", "ada", Some(T0)).await);
    // Without iat (a guard that does not require it): cannot show it is newer, so
    // refused.
    let mut view = RevocationView::default();
    view.sub = Some("ada");
    assert!(f.feed.is_revoked(&view));
    view.iat = Some(T0);
    assert!(!f.feed.is_revoked(&view));
    // Another user with the same iat: accepted.
    assert!(f.accepts("e", "s", "bob", Some(T0 - 1)).await);
}

#[tokio::test]
async fn entries_expire_with_the_guards_clock() {
    let f = Fixture::start_with(|feed| feed.leeway(Duration::from_secs(30))).await;
    f.server.revoke(1, &jti("j1", T0 + 100));
    f.server.revoke(2, &user("ada", T0 + 1, T0 + 100));
    f.wait_applied(2).await;
    assert!(!f.accepts_jti("j1").await);
    assert!(!f.accepts("x", "s", "ada", Some(T0)).await);
    // Past expires_at, within the leeway: still refused.
    f.advance(110);
    assert!(!f.accepts_jti("j1").await);
    assert!(!f.accepts("x", "s", "ada", Some(T0)).await);
    // Past the leeway: the entries are dead (the token itself is still valid).
    f.advance(20);
    assert!(f.accepts_jti("j1").await);
    assert!(f.accepts("x", "s", "ada", Some(T0)).await);
    // An entry already dead on arrival is not even stored.
    f.server.revoke(3, &jti("j-old", T0));
    f.wait_applied(3).await;
    assert!(f.accepts_jti("j-old").await);
    // The dead entries are purged by the task once a minute of the clock: the next
    // bytes after that minute trigger it.
    f.advance(60);
    f.server.send(": keep-alive\n");
    eventually("the purge", || f.feed.is_empty()).await;
}

#[tokio::test]
async fn duplicates_are_idempotent_and_keep_the_latest_expiry_and_cutoff() {
    let f = Fixture::start().await;
    f.server.revoke(1, &jti("j1", T0 + 500));
    f.server.revoke(2, &jti("j1", T0 + 100));
    f.server.revoke(1, &jti("j1", T0 + 500));
    f.server.revoke(3, &user("ada", T0 - 100, T0 + 300));
    f.server.revoke(4, &user("ada", T0 - 10, T0 + 200));
    f.server.revoke(5, &user("ada", T0 - 50, T0 + 100));
    f.wait_applied(6).await;
    assert_eq!(f.feed.len(), 2);
    // The cutoff is the latest one (T0 - 10), the expiry the latest (T0 + 300).
    assert!(!f.accepts("x", "s", "ada", Some(T0 - 20)).await);
    assert!(f.accepts("x", "s", "ada", Some(T0 - 10)).await);
    f.advance(250);
    assert!(!f.accepts_jti("j1").await);
    assert!(!f.accepts("x", "s", "ada", Some(T0 - 20)).await);
    f.advance(100);
    assert!(!f.accepts_jti("j1").await);
    assert!(f.accepts("x", "s", "ada", Some(T0 - 20)).await);
    f.advance(200);
    assert!(f.accepts_jti("j1").await);
}

#[tokio::test]
async fn unknown_kinds_and_event_types_are_ignored() {
    let f = Fixture::start().await;
    let exp = T0 + 900;
    f.server.send(format!(
        "event: revoked\nid: 1\ndata: {}\n\n",
        json!({"kind": "client", "value": "j-client", "expires_at": exp, "new": {"x": 1}})
    ));
    f.server.send(format!(
        "event: rotated\nid: 2\ndata: {}\n\n",
        jti("j-rotated", exp)
    ));
    f.server
        .send(format!("id: 3\ndata: {}\n\n", jti("j-message", exp)));
    f.server.send(format!(
        "event: revoked\nid: 4\nretry: 1\nfuture: yes\ndata: {}\n\n",
        jti("j4", exp)
    ));
    f.wait_applied(1).await;
    assert_eq!(f.feed.len(), 1);
    assert!(!f.accepts_jti("j4").await);
    for other in ["j-client", "j-rotated", "j-message"] {
        assert!(f.accepts_jti(other).await, "{other}");
    }
    assert_eq!(f.feed.last_event_id().as_deref(), Some("4"));
    assert_eq!(f.server.connections(), 1);
    assert!(f.feed.is_connected());
}

#[tokio::test]
async fn a_garbled_event_does_not_kill_the_feed() {
    let f = Fixture::start().await;
    let exp = T0 + 900;
    f.server
        .send("event: revoked\nid: 1\ndata: {\"kind\": \"jti\", \"val\n\n");
    f.server
        .send("event: revoked\nid: 2\ndata: {\"kind\": \"jti\", \"value\": \"j2\"}\n\n");
    f.server
        .send("event: revoked\nid: 3\ndata: [\"jti\", \"j3\"]\n\n");
    f.server.send("event: revoked\nid: 4\ndata:\n\n");
    f.server.send("event: revoked\nid: 5\ndata: {\"kind\": \"jti\", \"value\": \"j5\", \"expires_at\": \"soon\"}\n\n");
    f.server
        .send(b"event: revoked\nid: 6\ndata: \xff\xfe{}\n\n".as_slice());
    f.server.revoke(7, &jti("j7", exp));
    f.wait_applied(1).await;
    assert_eq!(f.feed.len(), 1);
    assert!(!f.accepts_jti("j7").await);
    assert!(f.accepts_jti("j2").await);
    assert!(f.accepts_jti("j5").await);
    assert_eq!(f.server.connections(), 1);
    assert_eq!(f.feed.last_event_id().as_deref(), Some("7"));
}

#[tokio::test]
async fn an_event_cut_at_every_byte_is_parsed() {
    let f = Fixture::start().await;
    let event = |i: usize| {
        format!(
            "event: revoked\r\nid: {i:03}\r\ndata: {}\r\n\r\n",
            jti(&format!("cut-{i:03}"), T0 + 900)
        )
    };
    let len = event(0).len();
    for i in 1..len {
        let e = event(i);
        let (a, b) = e.as_bytes().split_at(i);
        f.server.send(a.to_vec());
        tokio::time::sleep(Duration::from_millis(1)).await;
        f.server.send(b.to_vec());
    }
    f.wait_applied(len as u64 - 1).await;
    assert_eq!(f.feed.len(), len - 1);
    for i in 1..len {
        assert!(!f.accepts_jti(&format!("cut-{i:03}")).await, "cut at {i}");
    }
    assert_eq!(f.server.connections(), 1);
}

#[tokio::test]
async fn the_feed_token_is_sent_as_a_bearer_token() {
    let f = Fixture::start().await;
    let seen = f.server.seen();
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer feed-s3cret"));
    assert_eq!(seen[0].accept.as_deref(), Some("text/event-stream"));
    assert_eq!(seen[0].last_event_id, None);
    assert!(!format!("{:?}", f.feed).contains(FEED_TOKEN));
}

#[tokio::test]
async fn after_a_dropped_connection_the_client_resumes_from_the_last_event_id() {
    let f = Fixture::start().await;
    let exp = T0 + 900;
    for id in 1..=3 {
        f.server.revoke(id, &jti(&format!("j{id}"), exp));
    }
    f.wait_applied(3).await;
    f.server.end_stream();
    f.wait_connected(2).await;
    let seen = f.server.seen();
    assert_eq!(seen[1].last_event_id.as_deref(), Some("3"));
    assert_eq!(seen[1].authorization.as_deref(), Some("Bearer feed-s3cret"));
    // What came before stays; what comes now is applied.
    f.server.revoke(4, &jti("j4", exp));
    f.wait_applied(4).await;
    for id in 1..=4 {
        assert!(!f.accepts_jti(&format!("j{id}")).await);
    }
    // An event cut by the drop is not counted: the cursor stays at the last whole one.
    f.server.send("event: revoked\nid: 5\ndata: {\"kind\":");
    tokio::time::sleep(Duration::from_millis(20)).await;
    f.server.end_stream();
    f.wait_connected(3).await;
    assert_eq!(f.server.seen()[2].last_event_id.as_deref(), Some("4"));
}

#[tokio::test]
async fn while_the_server_is_down_known_revocations_hold_and_others_pass() {
    let f = Fixture::start().await;
    let exp = T0 + 900;
    f.server.revoke(1, &jti("j1", exp));
    f.wait_applied(1).await;
    let Fixture {
        server,
        feed,
        guard,
        key,
        clock,
    } = f;
    let (addr, shared) = server.stop().await;
    eventually("the feed to notice", || !feed.is_connected()).await;
    // Connections refused for a while; then the server is back but answers 503.
    tokio::time::sleep(Duration::from_millis(100)).await;
    shared.answer.store(503, Ordering::SeqCst);
    let f = Fixture {
        server: FakeFeed::restart(addr, shared).await,
        feed,
        guard,
        key,
        clock,
    };
    let before = f.server.connections();
    eventually("attempts while down", || {
        f.server.connections() >= before + 2
    })
    .await;
    assert!(!f.feed.is_connected());
    assert!(!f.accepts_jti("j1").await);
    assert!(f.accepts_jti("j2").await);
    // Back: the client resumes after event 1 and learns of j2.
    f.server.answer(200);
    eventually("the reconnection", || f.feed.is_connected()).await;
    let last = f.server.seen().last().cloned().unwrap();
    assert_eq!(last.last_event_id.as_deref(), Some("1"));
    f.server.revoke(2, &jti("j2", exp));
    f.wait_applied(2).await;
    assert!(!f.accepts_jti("j1").await);
    assert!(!f.accepts_jti("j2").await);
}

#[tokio::test]
async fn a_401_or_404_is_retried_until_the_server_accepts() {
    let server = FakeFeed::start().await;
    server.answer(401);
    let feed = RevocationFeed::new(&server.url(), FEED_TOKEN)
        .unwrap()
        .backoff(Duration::from_millis(10), Duration::from_millis(50));
    feed.start();
    eventually("retries after 401", || server.connections() >= 3).await;
    assert!(!feed.is_connected());
    server.answer(404);
    let n = server.connections();
    eventually("retries after 404", || server.connections() >= n + 2).await;
    assert!(!feed.is_connected());
    server.answer(200);
    eventually("the connection", || feed.is_connected()).await;
    server.revoke(1, &jti("j1", 4_000_000_000));
    eventually("the event", || feed.applied_count() == 1).await;
    assert!(
        server
            .seen()
            .iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer feed-s3cret"))
    );
}

#[tokio::test]
async fn a_silent_connection_is_dropped_after_the_idle_timeout() {
    let f = Fixture::start_with(|feed| feed.idle_timeout(Duration::from_millis(200))).await;
    // The server sends nothing, not even a comment: the client gives up and
    // reconnects, again and again.
    f.wait_connected(3).await;
}

#[tokio::test]
async fn an_oversized_event_drops_the_connection() {
    let f = Fixture::start_with(|feed| feed.max_event_bytes(1024)).await;
    f.server.revoke(1, &jti("j1", T0 + 900));
    f.server.send(format!(
        "event: revoked\nid: 2\ndata: {}\n\n",
        "x".repeat(2000)
    ));
    f.wait_connected(2).await;
    assert_eq!(f.server.seen()[1].last_event_id.as_deref(), Some("1"));
    assert_eq!(f.feed.applied_count(), 1);
    // Many data lines adding up past the limit: the same.
    let line = format!("data: {}\n", "y".repeat(100));
    f.server
        .send(format!("event: revoked\nid: 2\n{}\n", line.repeat(11)));
    f.wait_connected(3).await;
    assert_eq!(f.server.seen()[2].last_event_id.as_deref(), Some("1"));
}

#[tokio::test]
async fn beyond_max_entries_the_entries_that_expire_first_go() {
    let f = Fixture::start_with(|feed| feed.max_entries(10)).await;
    for i in 0..11 {
        f.server
            .revoke(i, &jti(&format!("j{i}"), T0 + 100 + i as i64));
    }
    f.wait_applied(11).await;
    // Ten held, one too many: down to nine (a tenth of ten gone): j0 and j1 went.
    assert_eq!(f.feed.len(), 9);
    assert!(f.accepts_jti("j0").await);
    assert!(f.accepts_jti("j1").await);
    for i in 2..11 {
        assert!(!f.accepts_jti(&format!("j{i}")).await, "j{i}");
    }
}
