//! The revocation feed: a subscription to the server's `GET /auth/revocations`
//! (Server-Sent Events), kept in an in-memory denylist that the guard consults as
//! its [`Revocation`] hook.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::keys::{ConfigError, http_url, https_connector};
use crate::{Clock, Revocation, RevocationView, SystemClock};

/// A subscription to a Tessera server's revocation feed (`GET /auth/revocations`,
/// Server-Sent Events), held in memory and consulted as the guard's [`Revocation`]
/// hook. Cheap to clone: clones share the subscription and the denylist.
///
/// - [`start`](Self::start) spawns the background task that connects, follows the
///   stream and applies each `revoked` event. Configure first, then start: the task
///   runs with the configuration of the feed it was started from.
/// - Entries are `jti` (one token), `sid` (every token of a session) and `user`
///   (every token of a subject whose `iat` is before a cutoff; a token without `iat`
///   counts as before). Each has an `expires_at`, after which it no longer refuses
///   anything (plus the [`leeway`](Self::leeway)). Duplicates are idempotent: the
///   larger `expires_at` and the larger cutoff win. Unknown kinds and unknown event
///   types are ignored, and so is an event whose JSON is garbled (logged as a warning).
/// - On any error, end of stream, idle timeout or oversized event, the task
///   reconnects with backoff and sends `Last-Event-ID` (the id of the last event it
///   applied), so it catches up on what it missed. Meanwhile the guard keeps
///   refusing what it already knows: **entries stay while the feed is down**, and a
///   token revoked during the outage is accepted until the feed is back.
/// - An answer of 401/403 (feed token refused) or 404 (no feed configured on the
///   server) is logged once, when it starts, and retried with backoff: the server may
///   be configured later.
/// - Lookups ([`Revocation::is_revoked`]) take a read lock for three hash lookups: no
///   await, no I/O. Expired entries are purged by the task once a minute (of the
///   [`Clock`]'s time), not on lookups.
///
/// | default | value | reason |
/// | --- | --- | --- |
/// | [`backoff`](Self::backoff) | 100 ms doubling to 5 s, jittered | quick catch-up after a blip, no hammering of a server that is down |
/// | [`idle_timeout`](Self::idle_timeout) | 45 s | the server sends a comment at least every 15 s: three missed means the connection is dead |
/// | [`max_event_bytes`](Self::max_event_bytes) | 64 KiB | one line or one event's data; beyond it the connection is dropped |
/// | [`max_entries`](Self::max_entries) | 1,000,000 | about 150 MB with 36-character ids (measured); when full, a tenth of the limit is dropped, those that expire first |
/// | [`leeway`](Self::leeway) | 60 s | an entry outlives its `expires_at` by this much, to cover a guard's validation leeway and clock skew |
///
/// The SSE `retry:` field is ignored (the backoff above governs), and so is any
/// event other than `revoked`. Like [`RemoteJwks`](crate::RemoteJwks), the client is
/// hyper-util's over rustls on aws-lc-rs; `http://` is accepted for development.
#[derive(Clone)]
pub struct RevocationFeed {
    config: Arc<Config>,
    state: Arc<State>,
}

#[derive(Clone)]
struct Config {
    url: Uri,
    /// `Bearer <token>`, marked sensitive. Never printed.
    authorization: HeaderValue,
    backoff_start: Duration,
    backoff_max: Duration,
    idle_timeout: Duration,
    max_event_bytes: usize,
    max_entries: usize,
    leeway: i64,
    clock: Arc<dyn Clock>,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

struct State {
    client: HttpsClient,
    list: RwLock<Denylist>,
    /// The id of the last event applied: sent as `Last-Event-ID` on reconnection.
    last_event_id: Mutex<Option<String>>,
    connected: AtomicBool,
    /// True while a task started by `start` runs.
    running: AtomicBool,
    applied: AtomicU64,
    /// When (clock seconds) the next purge of expired entries is due.
    next_purge: AtomicI64,
}

/// Seconds between two purges of expired entries.
const PURGE_EVERY: i64 = 60;

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

impl RevocationFeed {
    /// A feed at `url` (`https://`, or `http://` for development), authenticated with
    /// `token` (sent as `Authorization: Bearer <token>`; it must be visible ASCII
    /// without spaces, and never appears in `Debug` or logs), with the defaults above.
    /// Nothing connects until [`start`](Self::start).
    pub fn new(url: &str, token: impl Into<String>) -> Result<Self, ConfigError> {
        let url = http_url(url, "revocation feed")?;
        let token = token.into();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError(
                "the revocation feed token must be non-empty visible ASCII without spaces".into(),
            ));
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ConfigError("the revocation feed token is not a header value".into()))?;
        authorization.set_sensitive(true);
        // One long-lived connection: no pool to keep (an answer such as a 401 may leave
        // its connection idle, and the next attempt is up to 5 s away).
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(https_connector()?);
        Ok(Self {
            config: Arc::new(Config {
                url,
                authorization,
                backoff_start: Duration::from_millis(100),
                backoff_max: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(45),
                max_event_bytes: 64 * 1024,
                max_entries: 1_000_000,
                leeway: 60,
                clock: Arc::new(SystemClock),
            }),
            state: Arc::new(State {
                client,
                list: RwLock::new(Denylist::default()),
                last_event_id: Mutex::new(None),
                connected: AtomicBool::new(false),
                running: AtomicBool::new(false),
                applied: AtomicU64::new(0),
                next_purge: AtomicI64::new(i64::MIN),
            }),
        })
    }

    /// The wait before reconnecting: `start` after the first failure, doubling up to
    /// `max` (defaults 100 ms and 5 s), each wait jittered down by up to half. It goes
    /// back to `start` once a connection delivers data.
    pub fn backoff(mut self, start: Duration, max: Duration) -> Self {
        let c = Arc::make_mut(&mut self.config);
        c.backoff_start = start;
        c.backoff_max = max.max(start);
        self
    }

    /// How long the connection may stay silent (no byte, not even a keep-alive
    /// comment) before it is dropped and made again (default 45 s). It bounds the wait
    /// for the answer's headers too.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        Arc::make_mut(&mut self.config).idle_timeout = idle;
        self
    }

    /// The longest line, and the most data in one event, in bytes (default 64 KiB). A
    /// longer one drops the connection (the next one resumes after the last event
    /// applied).
    pub fn max_event_bytes(mut self, max: usize) -> Self {
        Arc::make_mut(&mut self.config).max_event_bytes = max.max(1);
        self
    }

    /// The most entries held (default 1,000,000). Beyond it, expired entries are
    /// purged, and if that is not enough, the entries that expire first are dropped
    /// (a tenth of the limit at a time, with a warning): the tokens they refuse would
    /// expire soonest anyway. The limit bounds memory, at the price of forgetting.
    pub fn max_entries(mut self, max: usize) -> Self {
        Arc::make_mut(&mut self.config).max_entries = max.max(1);
        self
    }

    /// How long an entry keeps refusing after its `expires_at` (whole seconds;
    /// default 60 s). Set it at least to the guard's [`Validation`](crate::Validation)
    /// leeway: a token accepted that long after its `exp` must stay refused that long.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        Arc::make_mut(&mut self.config).leeway =
            i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// The clock that decides whether an entry has expired (default: the system
    /// clock). Give it the guard's clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        Arc::make_mut(&mut self.config).clock = clock;
        self
    }

    /// Spawns the background task that follows the feed, on the current Tokio
    /// runtime, and returns its handle: abort it to stop following (the entries
    /// stay). The task otherwise runs forever, reconnecting as needed. A second call
    /// while the task runs starts nothing (the handle it returns completes at once).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, like [`tokio::spawn`].
    pub fn start(&self) -> JoinHandle<()> {
        if self.state.running.swap(true, Ordering::SeqCst) {
            return tokio::spawn(async {});
        }
        // Built outside the future, so that it clears `running` even if the task is
        // aborted before its first poll.
        let running = Running(Arc::clone(&self.state));
        let this = self.clone();
        tokio::spawn(async move {
            let _running = running;
            this.run().await;
        })
    }

    /// The URL.
    pub fn url(&self) -> String {
        self.config.url.to_string()
    }

    /// Whether the stream is up now (answered 200 and not since lost).
    pub fn is_connected(&self) -> bool {
        self.state.connected.load(Ordering::SeqCst)
    }

    /// How many entries are held (expired ones included until the next purge).
    pub fn len(&self) -> usize {
        self.read_list().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many `revoked` events of a known kind have been applied (duplicates and
    /// already-expired ones included). It grows after the entries are visible to
    /// lookups, so a test that waits for it can then check the guard.
    pub fn applied_count(&self) -> u64 {
        self.state.applied.load(Ordering::SeqCst)
    }

    /// The id of the last whole event received (applied, or ignored as unknown or
    /// garbled), sent as `Last-Event-ID` on reconnection.
    pub fn last_event_id(&self) -> Option<String> {
        self.state
            .last_event_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn read_list(&self) -> std::sync::RwLockReadGuard<'_, Denylist> {
        self.state
            .list
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn run(self) {
        let mut backoff = Backoff::new(self.config.backoff_start, self.config.backoff_max);
        // What the log last said, so that a failure repeated on every attempt is
        // logged once.
        let mut logged: Option<FailKind> = None;
        let url = &self.config.url;
        loop {
            self.maybe_purge();
            match self.connect().await {
                Ok(body) => {
                    self.state.connected.store(true, Ordering::SeqCst);
                    let cursor = self.last_event_id();
                    tracing::info!(%url, last_event_id = ?cursor, "revocation feed connected");
                    logged = None;
                    let (why, got_data) = self.follow(body).await;
                    self.state.connected.store(false, Ordering::SeqCst);
                    tracing::warn!(
                        %url,
                        reason = %why,
                        "revocation feed lost; reconnecting (known revocations stay in force)"
                    );
                    if got_data {
                        backoff.reset();
                    }
                }
                Err(failure) if logged.as_ref() == Some(&failure.kind) => {
                    tracing::debug!(%url, error = %failure.detail, "revocation feed still unavailable");
                }
                Err(failure) => {
                    tracing::warn!(
                        %url,
                        error = %failure.detail,
                        "revocation feed unavailable; retrying with backoff \
                         (known revocations stay in force)"
                    );
                    logged = Some(failure.kind);
                }
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }

    /// Sends the request; the body of a 200 `text/event-stream` answer.
    async fn connect(
        &self,
    ) -> Result<impl HttpBody<Data = Bytes, Error: std::fmt::Display> + Unpin, Failure> {
        let mut req = Request::get(self.config.url.clone())
            .header(header::ACCEPT, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .header(
                header::USER_AGENT,
                concat!("tessera-guard/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::AUTHORIZATION, self.config.authorization.clone());
        if let Some(id) = self.last_event_id().filter(|id| !id.is_empty()) {
            match HeaderValue::from_str(&id) {
                Ok(v) => req = req.header(LAST_EVENT_ID, v),
                Err(_) => tracing::debug!(
                    "the last event id is not a header value; resuming from the start"
                ),
            }
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| Failure::new(FailKind::Unreachable, format!("request: {e}")))?;
        let idle = self.config.idle_timeout;
        let res = tokio::time::timeout(idle, self.state.client.request(req))
            .await
            .map_err(|_| Failure::new(FailKind::Unreachable, format!("no answer within {idle:?}")))?
            .map_err(|e| Failure::new(FailKind::Unreachable, format!("request failed: {e}")))?;
        let status = res.status();
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(Failure::new(
                    FailKind::Refused,
                    format!("the server refused the feed token ({status})"),
                ));
            }
            StatusCode::NOT_FOUND => {
                return Err(Failure::new(
                    FailKind::NotConfigured,
                    "the server has no revocation feed (404: not configured there?)".into(),
                ));
            }
            other => {
                return Err(Failure::new(
                    FailKind::Status(other.as_u16()),
                    format!("the server answered {other}"),
                ));
            }
        }
        let is_sse = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/event-stream"));
        if !is_sse {
            return Err(Failure::new(
                FailKind::NotEventStream,
                "the answer is not text/event-stream".into(),
            ));
        }
        Ok(res.into_body())
    }

    /// Reads the stream until it ends or breaks: why it ended, and whether any byte
    /// came.
    async fn follow<B>(&self, mut body: B) -> (String, bool)
    where
        B: HttpBody<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let idle = self.config.idle_timeout;
        let mut parser = SseParser::new(self.config.max_event_bytes);
        let mut batch = Vec::new();
        let mut got_data = false;
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => return (format!("nothing received for {idle:?}"), got_data),
                Ok(None) => return ("the server ended the stream".into(), got_data),
                Ok(Some(Err(e))) => return (format!("read error: {e}"), got_data),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(bytes) = frame.into_data() else {
                continue; // trailers
            };
            got_data |= !bytes.is_empty();
            let parsed = parser.feed(&bytes, &mut batch);
            // Apply what came before an oversized line, then drop the connection.
            self.apply(batch.drain(..));
            self.maybe_purge();
            if parsed.is_err() {
                return (
                    format!(
                        "a line or event larger than {} bytes",
                        self.config.max_event_bytes
                    ),
                    got_data,
                );
            }
        }
    }

    /// Applies the `revoked` events of `batch` under one write lock, then moves the
    /// cursor to the last id (after the entries are visible, so a reconnection never
    /// skips one).
    fn apply(&self, batch: impl Iterator<Item = Dispatch>) {
        let mut entries = Vec::new();
        let mut cursor = None;
        for d in batch {
            if let Some(data) = d.data
                && d.event_type == "revoked"
            {
                match serde_json::from_str::<WireEntry>(&data) {
                    Ok(WireEntry::Unknown) => {
                        tracing::debug!("ignoring a revocation of an unknown kind");
                    }
                    Ok(entry) => entries.push(entry),
                    // serde's message may quote the values: say only where.
                    Err(e) => tracing::warn!(
                        category = ?e.classify(),
                        line = e.line(),
                        column = e.column(),
                        "ignoring a garbled revocation event"
                    ),
                }
            }
            if d.last_id.is_some() {
                cursor = d.last_id;
            }
        }
        if !entries.is_empty() {
            let now = self.config.clock.now();
            let leeway = self.config.leeway;
            let n = entries.len() as u64;
            {
                let mut list = self
                    .state
                    .list
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                for entry in entries {
                    list.insert(entry, now, leeway);
                }
                let max = self.config.max_entries;
                if list.len() > max {
                    let dropped = list.make_room(max, now, leeway);
                    tracing::warn!(
                        limit = max,
                        dropped,
                        "revocation feed: too many entries; dropped those that expire first"
                    );
                }
            }
            self.state.applied.fetch_add(n, Ordering::SeqCst);
        }
        if let Some(id) = cursor {
            *self
                .state
                .last_event_id
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(id);
        }
    }

    fn maybe_purge(&self) {
        let now = self.config.clock.now();
        let due = self.state.next_purge.load(Ordering::SeqCst);
        if now < due {
            return;
        }
        self.state
            .next_purge
            .store(now.saturating_add(PURGE_EVERY), Ordering::SeqCst);
        let mut list = self
            .state
            .list
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        list.purge(now, self.config.leeway);
    }
}

impl Revocation for RevocationFeed {
    fn is_revoked(&self, token: &RevocationView<'_>) -> bool {
        let now = self.config.clock.now();
        self.read_list().refuses(token, now, self.config.leeway)
    }
}

impl std::fmt::Debug for RevocationFeed {
    /// The URL and the settings; never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("RevocationFeed")
            .field("url", &c.url)
            .field("backoff", &(c.backoff_start, c.backoff_max))
            .field("idle_timeout", &c.idle_timeout)
            .field("max_event_bytes", &c.max_event_bytes)
            .field("max_entries", &c.max_entries)
            .field("leeway", &c.leeway)
            .field("connected", &self.is_connected())
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

/// Clears `running` (and `connected`) when the task ends or is aborted.
struct Running(Arc<State>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.connected.store(false, Ordering::SeqCst);
        self.0.running.store(false, Ordering::SeqCst);
    }
}

/// Why a connection attempt failed, for the log: a change of kind is logged as a
/// warning, a repeat at debug level.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FailKind {
    Refused,
    NotConfigured,
    Status(u16),
    NotEventStream,
    Unreachable,
}

struct Failure {
    kind: FailKind,
    detail: String,
}

impl Failure {
    fn new(kind: FailKind, detail: String) -> Self {
        Self { kind, detail }
    }
}

/// Exponential backoff with jitter.
struct Backoff {
    start: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(start: Duration, max: Duration) -> Self {
        Self {
            start,
            max,
            current: start,
        }
    }

    fn reset(&mut self) {
        self.current = self.start;
    }

    /// The next wait: the current step less up to half of it (so that guards
    /// restarted together do not reconnect in step), then the step doubles.
    fn next_wait(&mut self) -> Duration {
        let step = self.current;
        self.current = step.saturating_mul(2).min(self.max);
        // Not cryptographic: std's per-call hasher keys are enough to spread waits.
        let r = RandomState::new().hash_one(0u8);
        let fraction = (r >> 11) as f64 / (1u64 << 53) as f64; // in [0, 1)
        step.mul_f64(1.0 - fraction / 2.0)
    }
}

// ----- the denylist ----------------------------------------------------------------

/// One entry of the feed, as the server sends it in `data:`.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum WireEntry {
    Jti {
        value: String,
        expires_at: i64,
    },
    Sid {
        value: String,
        expires_at: i64,
    },
    User {
        value: String,
        issued_before: i64,
        expires_at: i64,
    },
    /// A kind this version does not know: ignored (forward compatibility).
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cutoff {
    issued_before: i64,
    expires_at: i64,
}

/// The entries, by kind. An entry is live while `now < expires_at + leeway`.
#[derive(Default)]
struct Denylist {
    jti: HashMap<String, i64>,
    sid: HashMap<String, i64>,
    user: HashMap<String, Cutoff>,
}

fn live(expires_at: i64, now: i64, leeway: i64) -> bool {
    now < expires_at.saturating_add(leeway)
}

impl Denylist {
    fn len(&self) -> usize {
        self.jti.len() + self.sid.len() + self.user.len()
    }

    fn refuses(&self, t: &RevocationView<'_>, now: i64, leeway: i64) -> bool {
        let listed = |map: &HashMap<String, i64>, key: Option<&str>| {
            key.and_then(|k| map.get(k))
                .is_some_and(|&exp| live(exp, now, leeway))
        };
        listed(&self.jti, t.jti)
            || listed(&self.sid, t.sid)
            || t.sub.and_then(|s| self.user.get(s)).is_some_and(|c| {
                live(c.expires_at, now, leeway) && t.iat.is_none_or(|iat| iat < c.issued_before)
            })
    }

    /// Adds or merges (larger `expires_at`, larger cutoff); an entry already expired
    /// is not stored.
    fn insert(&mut self, entry: WireEntry, now: i64, leeway: i64) {
        match entry {
            WireEntry::Jti { value, expires_at } => {
                merge_expiry(&mut self.jti, value, expires_at, now, leeway);
            }
            WireEntry::Sid { value, expires_at } => {
                merge_expiry(&mut self.sid, value, expires_at, now, leeway);
            }
            WireEntry::User {
                value,
                issued_before,
                expires_at,
            } => {
                if !live(expires_at, now, leeway) {
                    return;
                }
                let c = self.user.entry(value).or_insert(Cutoff {
                    issued_before,
                    expires_at,
                });
                c.issued_before = c.issued_before.max(issued_before);
                c.expires_at = c.expires_at.max(expires_at);
            }
            WireEntry::Unknown => {}
        }
    }

    /// Drops the expired entries; how many.
    fn purge(&mut self, now: i64, leeway: i64) -> usize {
        let before = self.len();
        self.jti.retain(|_, exp| live(*exp, now, leeway));
        self.sid.retain(|_, exp| live(*exp, now, leeway));
        self.user.retain(|_, c| live(c.expires_at, now, leeway));
        before - self.len()
    }

    /// Brings the list from above `max` down to `max` less a tenth: expired entries
    /// first, then those that expire first. How many were dropped.
    fn make_room(&mut self, max: usize, now: i64, leeway: i64) -> usize {
        let mut dropped = self.purge(now, leeway);
        let target = max - max / 10;
        let len = self.len();
        if len <= target {
            return dropped;
        }
        let excess = len - target;
        let mut expiries: Vec<i64> = self
            .jti
            .values()
            .chain(self.sid.values())
            .copied()
            .chain(self.user.values().map(|c| c.expires_at))
            .collect();
        let (_, &mut threshold, _) = expiries.select_nth_unstable(excess - 1);
        // Everything before `threshold` goes, and as many at `threshold` as needed.
        let below = expiries.iter().filter(|&&e| e < threshold).count();
        let mut at_threshold = excess - below;
        let mut keep = |exp: i64| {
            if exp < threshold {
                false
            } else if exp == threshold && at_threshold > 0 {
                at_threshold -= 1;
                false
            } else {
                true
            }
        };
        self.jti.retain(|_, exp| keep(*exp));
        self.sid.retain(|_, exp| keep(*exp));
        self.user.retain(|_, c| keep(c.expires_at));
        dropped += excess;
        dropped
    }
}

fn merge_expiry(
    map: &mut HashMap<String, i64>,
    value: String,
    expires_at: i64,
    now: i64,
    leeway: i64,
) {
    if !live(expires_at, now, leeway) {
        return;
    }
    let exp = map.entry(value).or_insert(expires_at);
    *exp = (*exp).max(expires_at);
}

// ----- Server-Sent Events ----------------------------------------------------------

/// What the parser hands over at each blank line that ends an event (the WHATWG
/// "dispatch the event" step).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dispatch {
    /// The `event:` field, `message` when absent.
    event_type: String,
    /// The `data:` lines joined by `\n`; `None` when the event had no `data` line (the
    /// spec then fires nothing, but the id still moves).
    data: Option<String>,
    /// The last event id buffer (the most recent `id:` of the stream), if any.
    last_id: Option<String>,
}

/// A line, or an event's data, over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TooLarge;

/// An incremental `text/event-stream` parser (WHATWG HTML §9.2.6): feed it the bytes
/// as they come, cut anywhere.
///
/// Lines end with `\n`, `\r\n` or `\r` (a `\r` at the end of a chunk waits for the
/// next one to know whether a `\n` follows). A line starting with `:` is a comment; a
/// line without a colon is a field with an empty value; one space after the colon is
/// removed. `data` lines are joined by `\n`; `id` without NUL sets the last event id;
/// `retry` and unknown fields are ignored. Bytes are decoded as UTF-8 line by line,
/// invalid sequences replaced (a line break byte never occurs inside a UTF-8
/// sequence); a leading byte order mark is dropped.
struct SseParser {
    max: usize,
    line: Vec<u8>,
    after_cr: bool,
    at_start: bool,
    event_type: String,
    data: Option<String>,
    last_id: Option<String>,
    id_seen: bool,
}

impl SseParser {
    fn new(max: usize) -> Self {
        Self {
            max,
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            event_type: String::new(),
            data: None,
            last_id: None,
            id_seen: false,
        }
    }

    /// Parses `chunk`, pushing each completed event onto `out`. After an error the
    /// parser is spent: drop the connection.
    fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Dispatch>) -> Result<(), TooLarge> {
        loop {
            if chunk.is_empty() {
                return Ok(());
            }
            if self.after_cr {
                self.after_cr = false;
                if chunk[0] == b'\n' {
                    chunk = &chunk[1..];
                    continue;
                }
            }
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    if self.line.len() + chunk.len() > self.max {
                        return Err(TooLarge);
                    }
                    self.line.extend_from_slice(chunk);
                    return Ok(());
                }
                Some(i) => {
                    if self.line.len() + i > self.max {
                        return Err(TooLarge);
                    }
                    self.line.extend_from_slice(&chunk[..i]);
                    self.after_cr = chunk[i] == b'\r';
                    chunk = &chunk[i + 1..];
                    self.end_line(out)?;
                }
            }
        }
    }

    fn end_line(&mut self, out: &mut Vec<Dispatch>) -> Result<(), TooLarge> {
        let mut raw = std::mem::take(&mut self.line);
        let result = self.process_line(&raw, out);
        raw.clear();
        self.line = raw;
        result
    }

    fn process_line(&mut self, raw: &[u8], out: &mut Vec<Dispatch>) -> Result<(), TooLarge> {
        let mut raw = raw;
        if self.at_start {
            self.at_start = false;
            raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        }
        if raw.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if raw[0] == b':' {
            return Ok(()); // a comment
        }
        let line = String::from_utf8_lossy(raw);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event_type),
            "data" => {
                // As the spec does: each line followed by `\n`, the last one
                // removed at dispatch.
                let data = self.data.get_or_insert_with(String::new);
                if data.len() + value.len() + 1 > self.max {
                    return Err(TooLarge);
                }
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => {
                self.last_id = Some(value.to_owned());
                self.id_seen = true;
            }
            _ => {} // retry, and fields unknown to the spec
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Dispatch>) {
        let data = self.data.take().map(|mut d| {
            d.pop(); // the `\n` after the last line
            d
        });
        let event_type = std::mem::take(&mut self.event_type);
        if data.is_none() && !self.id_seen {
            return; // nothing happened since the last blank line
        }
        self.id_seen = false;
        out.push(Dispatch {
            event_type: if event_type.is_empty() {
                "message".into()
            } else {
                event_type
            },
            data,
            last_id: self.last_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event_type: &str, data: Option<&str>, last_id: Option<&str>) -> Dispatch {
        Dispatch {
            event_type: event_type.into(),
            data: data.map(str::to_owned),
            last_id: last_id.map(str::to_owned),
        }
    }

    fn parse_chunks(chunks: &[&[u8]]) -> Result<Vec<Dispatch>, TooLarge> {
        let mut p = SseParser::new(64);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out)?;
        }
        Ok(out)
    }

    fn parse(stream: &str) -> Vec<Dispatch> {
        parse_chunks(&[stream.as_bytes()]).unwrap()
    }

    /// The same events whether `stream` comes whole, cut in two anywhere, or a byte
    /// at a time.
    fn parse_every_way(stream: &str) -> Vec<Dispatch> {
        let bytes = stream.as_bytes();
        let whole = parse(stream);
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(
                parse_chunks(&[a, b]).unwrap(),
                whole,
                "cut at {i} of {stream:?}"
            );
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            parse_chunks(&bytewise).unwrap(),
            whole,
            "bytewise {stream:?}"
        );
        whole
    }

    #[test]
    fn one_event_of_the_feed() {
        let stream =
            "event: revoked\nid: 42\ndata: {\"kind\":\"jti\",\"value\":\"j\",\"expires_at\":9}\n\n";
        assert_eq!(
            parse_every_way(stream),
            vec![ev(
                "revoked",
                Some("{\"kind\":\"jti\",\"value\":\"j\",\"expires_at\":9}"),
                Some("42")
            )]
        );
    }

    #[test]
    fn lines_end_with_lf_crlf_or_cr() {
        let want = vec![
            ev("revoked", Some("a"), Some("1")),
            ev("message", Some("b"), Some("1")),
        ];
        assert_eq!(
            parse_every_way("event: revoked\nid: 1\ndata: a\n\ndata: b\n\n"),
            want
        );
        assert_eq!(
            parse_every_way("event: revoked\r\nid: 1\r\ndata: a\r\n\r\ndata: b\r\n\r\n"),
            want
        );
        assert_eq!(
            parse_every_way("event: revoked\rid: 1\rdata: a\r\rdata: b\r\r"),
            want
        );
        assert_eq!(
            parse_every_way("event: revoked\r\nid: 1\rdata: a\n\r\ndata: b\r\r\n"),
            want
        );
    }

    #[test]
    fn a_cr_at_the_end_of_a_chunk_waits_for_a_possible_lf() {
        // "\r" | "\n": one line break, not two (which would be a blank line).
        assert_eq!(
            parse_chunks(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]).unwrap(),
            vec![ev("message", Some("a\nb"), None)]
        );
        // "\r" | "\r": two line breaks.
        assert_eq!(
            parse_chunks(&[b"data: a\r", b"\r"]).unwrap(),
            vec![ev("message", Some("a"), None)]
        );
    }

    #[test]
    fn data_lines_are_joined_by_lf() {
        assert_eq!(
            parse_every_way("data: one\ndata:two\ndata\ndata:  four\n\n"),
            vec![ev("message", Some("one\ntwo\n\n four"), None)]
        );
        // An empty data line is an event with empty data.
        assert_eq!(
            parse_every_way("data\n\n"),
            vec![ev("message", Some(""), None)]
        );
        assert_eq!(
            parse_every_way("data:\n\n"),
            vec![ev("message", Some(""), None)]
        );
    }

    #[test]
    fn only_one_space_after_the_colon_is_removed_and_colons_in_values_stay() {
        assert_eq!(
            parse_every_way("event:revoked\ndata:  a: b:c \n\n"),
            vec![ev("revoked", Some(" a: b:c "), None)]
        );
    }

    #[test]
    fn comments_retry_and_unknown_fields_are_ignored() {
        assert_eq!(parse_every_way(": keep-alive\n\n:\n\n"), vec![]);
        assert_eq!(
            parse_every_way(": hi\nretry: 10\nfoo: bar\ndata : x\nDATA: y\ndata: z\n\n"),
            vec![ev("message", Some("z"), None)]
        );
    }

    #[test]
    fn the_event_type_is_reset_after_each_event() {
        assert_eq!(
            parse_every_way("event: revoked\ndata: a\n\ndata: b\n\nevent: other\n\ndata: c\n\n"),
            vec![
                ev("revoked", Some("a"), None),
                ev("message", Some("b"), None),
                ev("message", Some("c"), None),
            ]
        );
    }

    #[test]
    fn ids_persist_and_an_id_with_nul_is_ignored() {
        assert_eq!(
            parse_every_way("id: 1\ndata: a\n\ndata: b\n\nid: 2\0x\ndata: c\n\nid\ndata: d\n\n"),
            vec![
                ev("message", Some("a"), Some("1")),
                ev("message", Some("b"), Some("1")),
                ev("message", Some("c"), Some("1")),
                ev("message", Some("d"), Some("")),
            ]
        );
        // An event with an id but no data fires nothing, but moves the id.
        assert_eq!(
            parse_every_way("event: revoked\nid: 7\n\n"),
            vec![ev("revoked", None, Some("7"))]
        );
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        assert_eq!(parse_every_way("id: 3\ndata: a\n"), vec![]);
        assert_eq!(parse_every_way("data: a"), vec![]);
    }

    #[test]
    fn a_leading_bom_is_dropped_once_and_bad_utf8_is_replaced() {
        assert_eq!(
            parse_every_way("\u{feff}data: a\n\n\u{feff}data: b\n\n"),
            vec![ev("message", Some("a"), None)]
        );
        assert_eq!(
            parse_chunks(&[b"data: \xff\xc3", b"\xa9\n\n"]).unwrap(),
            vec![ev("message", Some("\u{fffd}\u{e9}"), None)]
        );
    }

    #[test]
    fn an_oversized_line_or_event_is_refused() {
        let long = "x".repeat(65);
        assert_eq!(parse_chunks(&[long.as_bytes()]), Err(TooLarge));
        assert_eq!(
            parse_chunks(&[&long.as_bytes()[..40], &long.as_bytes()[40..]]),
            Err(TooLarge)
        );
        assert_eq!(
            parse_chunks(&[format!("{long}\n").as_bytes()]),
            Err(TooLarge)
        );
        // Lines of 30 bytes each, adding up past 64 bytes of data.
        let line = format!("data: {}\n", "y".repeat(24));
        assert_eq!(parse_chunks(&[line.repeat(3).as_bytes()]), Err(TooLarge));
        // At the limit: fine.
        let exact = format!("data:{}\n\n", "z".repeat(59));
        assert_eq!(parse_chunks(&[exact.as_bytes()]).unwrap().len(), 1);
    }

    #[test]
    fn wire_entries_parse_and_unknown_kinds_are_unknown() {
        let p = |s: &str| serde_json::from_str::<WireEntry>(s);
        let jti_5 = p(r#"{"kind":"jti","value":"a","expires_at":5}"#);
        assert_eq!(jti_5.unwrap(), jti("a", 5));
        let with_extra = p(r#"{"kind":"sid","value":"s","expires_at":5,"extra":[1]}"#);
        assert_eq!(with_extra.unwrap(), sid("s", 5));
        let kind_last = p(r#"{"value":"u","issued_before":3,"expires_at":5,"kind":"user"}"#);
        assert_eq!(kind_last.unwrap(), user("u", 3, 5));
        assert_eq!(
            p(r#"{"kind":"client","value":7}"#).unwrap(),
            WireEntry::Unknown
        );
        assert!(p(r#"{"kind":"jti","value":"a"}"#).is_err());
        assert!(p(r#"{"kind":"user","value":"u","expires_at":5}"#).is_err());
        assert!(p(r#"{"value":"a","expires_at":5}"#).is_err());
        assert!(p(r#"{"kind":"jti","value":"a","expires_at":"soon"}"#).is_err());
        assert!(p("[1]").is_err());
        assert!(p("{").is_err());
    }

    fn jti(value: &str, expires_at: i64) -> WireEntry {
        WireEntry::Jti {
            value: value.into(),
            expires_at,
        }
    }

    fn sid(value: &str, expires_at: i64) -> WireEntry {
        WireEntry::Sid {
            value: value.into(),
            expires_at,
        }
    }

    fn user(value: &str, issued_before: i64, expires_at: i64) -> WireEntry {
        WireEntry::User {
            value: value.into(),
            issued_before,
            expires_at,
        }
    }

    fn view<'a>(
        jti: Option<&'a str>,
        sid: Option<&'a str>,
        sub: Option<&'a str>,
        iat: Option<i64>,
    ) -> RevocationView<'a> {
        RevocationView {
            jti,
            sid,
            sub,
            iat,
            ..RevocationView::default()
        }
    }

    #[test]
    fn the_denylist_refuses_live_entries_only() {
        let mut l = Denylist::default();
        l.insert(jti("j", 100), 0, 0);
        l.insert(sid("s", 100), 0, 0);
        l.insert(user("u", 50, 100), 0, 0);
        assert_eq!(l.len(), 3);
        let by_jti = view(Some("j"), None, None, None);
        assert!(l.refuses(&by_jti, 99, 0));
        assert!(!l.refuses(&by_jti, 100, 0));
        assert!(l.refuses(&by_jti, 100, 10));
        assert!(!l.refuses(&by_jti, 110, 10));
        assert!(l.refuses(&view(Some("x"), Some("s"), None, None), 99, 0));
        assert!(!l.refuses(&view(Some("x"), Some("t"), Some("v"), Some(1)), 99, 0));
        // The user cutoff: iat strictly before it; no iat counts as before.
        assert!(l.refuses(&view(None, None, Some("u"), Some(49)), 99, 0));
        assert!(!l.refuses(&view(None, None, Some("u"), Some(50)), 99, 0));
        assert!(l.refuses(&view(None, None, Some("u"), None), 99, 0));
        assert!(!l.refuses(&view(None, None, Some("u"), Some(1)), 100, 0));
        // Names are per kind: a sid or sub equal to a listed jti is not refused.
        assert!(!l.refuses(&view(None, Some("j"), Some("j"), Some(0)), 0, 0));
    }

    #[test]
    fn inserts_are_idempotent_and_keep_the_maxima() {
        let mut l = Denylist::default();
        l.insert(jti("j", 100), 0, 0);
        l.insert(jti("j", 50), 0, 0);
        l.insert(jti("j", 100), 0, 0);
        assert_eq!(l.jti.get("j"), Some(&100));
        l.insert(user("u", 50, 100), 0, 0);
        l.insert(user("u", 70, 90), 0, 0);
        l.insert(user("u", 60, 120), 0, 0);
        let want = Cutoff {
            issued_before: 70,
            expires_at: 120,
        };
        assert_eq!(l.user.get("u"), Some(&want));
        assert_eq!(l.len(), 2);
        // Already expired: not stored.
        l.insert(sid("s", 10), 10, 0);
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn purge_and_make_room_drop_what_expires_first() {
        let mut l = Denylist::default();
        for i in 0..20 {
            l.insert(jti(&format!("j{i}"), 100 + i), 0, 0);
            l.insert(sid(&format!("s{i}"), 100 + i), 0, 0);
        }
        l.insert(user("u", 1, 200), 0, 0);
        // At 105, the entries expiring at 100..=105 are dead.
        assert_eq!(l.purge(105, 0), 12);
        assert_eq!(l.len(), 29);
        // Down to 20 less a tenth: the 11 that expire first go (106..=110, and one of
        // the two at 111).
        assert_eq!(l.make_room(20, 105, 0), 11);
        assert_eq!(l.len(), 18);
        assert!(l.user.contains_key("u"));
        let left = || l.jti.values().chain(l.sid.values());
        assert!(left().all(|&e| e >= 111));
        assert_eq!(left().filter(|&&e| e == 111).count(), 1);
        // Equal expiries: exactly as many as needed go.
        let mut l = Denylist::default();
        for i in 0..10 {
            l.insert(jti(&format!("j{i}"), 100), 0, 0);
        }
        assert_eq!(l.make_room(5, 0, 0), 5);
        assert_eq!(l.len(), 5);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below_the_step() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let steps = [100, 200, 400, 500, 500];
        for ms in steps {
            let w = b.next_wait();
            let step = Duration::from_millis(ms);
            assert!(w <= step && w >= step / 2, "{w:?} for a step of {step:?}");
        }
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(100));
    }

    #[test]
    fn new_checks_the_url_and_the_token_and_debug_hides_the_token() {
        let feed =
            RevocationFeed::new("http://127.0.0.1:1/auth/revocations", "s3cret-token").unwrap();
        let debug = format!("{feed:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("127.0.0.1:1"), "{debug}");
        assert!(RevocationFeed::new("ftp://x/feed", "t").is_err());
        assert!(RevocationFeed::new("/auth/revocations", "t").is_err());
        assert!(RevocationFeed::new("https://x/feed", "").is_err());
        assert!(RevocationFeed::new("https://x/feed", "a b").is_err());
        assert!(RevocationFeed::new("https://x/feed", "é").is_err());
    }
}
