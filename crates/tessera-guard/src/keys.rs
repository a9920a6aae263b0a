//! Where the guard's verification keys come from: a [`StaticKeys`] set (replaceable,
//! for a server that rotates its own keys) or a [`RemoteJwks`] URL, fetched and cached.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tessera_jose::{Jwk, JwkSet};

use crate::error::{GuardError, RejectionKind};

/// The guard's key source.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum Keys {
    /// A key set held in memory.
    Static(StaticKeys),
    /// A JWKS URL, fetched and cached.
    Remote(RemoteJwks),
}

impl From<StaticKeys> for Keys {
    fn from(k: StaticKeys) -> Self {
        Self::Static(k)
    }
}

impl From<RemoteJwks> for Keys {
    fn from(k: RemoteJwks) -> Self {
        Self::Remote(k)
    }
}

impl From<JwkSet> for Keys {
    fn from(set: JwkSet) -> Self {
        Self::Static(StaticKeys::new(set))
    }
}

impl From<Jwk> for Keys {
    fn from(key: Jwk) -> Self {
        Self::Static(StaticKeys::new(JwkSet::new(vec![key])))
    }
}

/// A key set in memory, shared by every clone: [`replace`](Self::replace) it when the
/// keys rotate and every guard holding a clone sees the new set on its next request.
///
/// Readers take an `Arc` snapshot under a read lock held for one pointer copy; no
/// lock is ever held across an await or a signature check.
#[derive(Clone)]
pub struct StaticKeys {
    set: Arc<RwLock<Arc<JwkSet>>>,
}

impl StaticKeys {
    /// Holds `set`.
    pub fn new(set: JwkSet) -> Self {
        Self {
            set: Arc::new(RwLock::new(Arc::new(set))),
        }
    }

    /// Swaps in a new set (after a key rotation).
    pub fn replace(&self, set: JwkSet) {
        let mut guard = self.set.write().unwrap_or_else(PoisonError::into_inner);
        *guard = Arc::new(set);
    }

    /// The current set.
    pub fn current(&self) -> Arc<JwkSet> {
        Arc::clone(&self.set.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeys")
            .field("keys", &self.current().keys().len())
            .finish()
    }
}

/// An error in the guard's configuration (not in a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub(crate) String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A JWKS URL, fetched on first use and cached; clones share the cache.
///
/// - A token whose `kid` is not in the cached set triggers one refetch, then one
///   retry. Such refetches happen **at most once per cooldown** (default 30 s), however
///   many unknown `kid`s arrive, so a flood of forged tokens cannot make the guard
///   hammer the identity provider. Concurrent requests wait for a fetch in flight
///   instead of starting their own.
/// - The set is refreshed in the background when older than `max_age` (default
///   5 min), so a key withdrawn by the provider stops verifying; the old set keeps
///   serving until the new one arrives, and a failed refresh keeps the old set. A
///   provider that says its set goes stale sooner (`Cache-Control: max-age`, less any
///   `Age`; `no-cache` and `no-store` count as 0) is refreshed that much sooner, but
///   never more often than once per cooldown; a longer `max-age` does not stretch
///   `max_age`.
/// - Each fetch has a timeout (default 5 s) and a body limit (default 256 KiB);
///   redirects are not followed. Symmetric (`oct`) keys and private members in a
///   fetched set are dropped: a published secret would let anyone forge tokens.
/// - Time (cooldown, age) is read from the guard's [`Clock`](crate::Clock), so tests
///   move time instead of sleeping.
///
/// The client is hyper-util's over hyper-rustls, with a rustls configuration on the
/// aws-lc-rs provider and the Mozilla roots of `webpki-roots`. Why not reqwest:
/// without its `ring` features, reqwest's rustls mode panics in every
/// `reqwest::Client::new()` of a process that has not installed a crypto provider,
/// and Cargo's feature unification would spread that to every crate of the
/// workspace that uses reqwest; with them, it brings a second crypto library. hyper
/// is already in the build (axum), and the guard needs little of reqwest: one GET
/// with a timeout and a body limit, no redirects, no cookies. Proxies are not
/// supported. `http://` URLs are accepted for development and tests; use `https://`
/// in production.
#[derive(Clone)]
pub struct RemoteJwks {
    url: Uri,
    cooldown: i64,
    max_age: i64,
    timeout: Duration,
    max_bytes: usize,
    state: Arc<State>,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

struct State {
    client: HttpsClient,
    current: RwLock<Option<Snapshot>>,
    fetch_lock: tokio::sync::Mutex<()>,
    /// Bumped (SeqCst) after every successful swap.
    generation: AtomicU64,
    /// True while a fetch triggered by an unknown kid is in flight.
    fetching: AtomicBool,
    /// When the last fetch triggered by an unknown kid (or the first use) started.
    last_forced: AtomicI64,
    /// When the next background refresh may start.
    next_refresh: AtomicI64,
    /// How long the last fetched set stays fresh, in seconds (from `max_age` and the
    /// answer's Cache-Control).
    fresh_for: AtomicI64,
    refreshing: AtomicBool,
    fetches: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct Snapshot {
    pub(crate) set: Arc<JwkSet>,
    pub(crate) generation: u64,
}

const NEVER: i64 = i64::MIN;

impl RemoteJwks {
    /// A JWKS at `url` (`https://`, or `http://` for development), with the defaults
    /// above.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let url = http_url(url, "JWKS")?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https_connector()?);
        Ok(Self {
            url,
            cooldown: 30,
            max_age: 300,
            timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
            state: Arc::new(State {
                client,
                current: RwLock::new(None),
                fetch_lock: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
                fetching: AtomicBool::new(false),
                last_forced: AtomicI64::new(NEVER),
                next_refresh: AtomicI64::new(NEVER),
                fresh_for: AtomicI64::new(300),
                refreshing: AtomicBool::new(false),
                fetches: AtomicU64::new(0),
            }),
        })
    }

    /// The least time between two fetches triggered by unknown `kid`s (whole
    /// seconds; default 30 s). Zero disables the protection: do not.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = secs(cooldown);
        self
    }

    /// How old the cached set may grow before a background refresh (default 5 min).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = secs(max_age);
        self
    }

    /// The timeout of one fetch, connection and body included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest JWKS document accepted, in bytes (default 256 KiB).
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The URL.
    pub fn url(&self) -> String {
        self.url.to_string()
    }

    /// How many fetches were attempted (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// The cached set, if a fetch has succeeded.
    pub fn cached(&self) -> Option<Arc<JwkSet>> {
        self.snapshot().map(|s| s.set)
    }

    /// Fetches the set now (at startup, to fail fast), whatever the cooldown.
    pub async fn fetch_now(&self) -> Result<(), ConfigError> {
        let _lock = self.state.fetch_lock.lock().await;
        self.fetch_and_swap().await.map(drop).map_err(ConfigError)
    }

    pub(crate) fn snapshot(&self) -> Option<Snapshot> {
        self.state
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys for a request at `now`: the cached set (starting a background refresh
    /// when it is old), or a first fetch.
    pub(crate) async fn keys(&self, now: i64) -> Result<Snapshot, GuardError> {
        if let Some(s) = self.snapshot() {
            self.maybe_refresh_in_background(now);
            return Ok(s);
        }
        match self.refetch(0, now).await {
            Some(s) => Ok(s),
            None => Err(GuardError::new(
                RejectionKind::KeysUnavailable,
                "the token cannot be checked now: the signing keys are unavailable",
            )),
        }
    }

    /// Called when a token's `kid` is not in the set of generation `seen`: returns a
    /// newer set when one is (or becomes) available, `None` when the cooldown forbids
    /// a fetch or the fetch fails.
    pub(crate) async fn refetch(&self, seen: u64, now: i64) -> Option<Snapshot> {
        let st = &self.state;
        // Fast refusal without the lock: cooling down and no fetch in flight. The
        // order of the loads matters: a fetch bumps the generation before it clears
        // `fetching`, so a fetch that ended in between shows up in the second load.
        if self.cooling(now) && !st.fetching.load(Ordering::SeqCst) {
            if st.generation.load(Ordering::SeqCst) == seen {
                return None;
            }
            return self.snapshot();
        }
        let _lock = st.fetch_lock.lock().await;
        if st.generation.load(Ordering::SeqCst) != seen {
            return self.snapshot();
        }
        if self.cooling(now) {
            return None;
        }
        st.last_forced.store(now, Ordering::SeqCst);
        st.fetching.store(true, Ordering::SeqCst);
        let result = self.fetch_and_swap().await;
        st.fetching.store(false, Ordering::SeqCst);
        match result {
            Ok(fresh_for) => {
                st.next_refresh
                    .store(now.saturating_add(fresh_for), Ordering::SeqCst);
                self.snapshot()
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed");
                None
            }
        }
    }

    fn cooling(&self, now: i64) -> bool {
        let last = self.state.last_forced.load(Ordering::SeqCst);
        last != NEVER && now >= last && now - last < self.cooldown
    }

    fn maybe_refresh_in_background(&self, now: i64) {
        let st = &self.state;
        let due = st.next_refresh.load(Ordering::SeqCst);
        if due == NEVER {
            // First look after a fetch that did not know the time (`fetch_now`).
            let _ = st.next_refresh.compare_exchange(
                NEVER,
                now.saturating_add(st.fresh_for.load(Ordering::SeqCst)),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            return;
        }
        if now < due || st.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            st.refreshing.store(false, Ordering::SeqCst);
            return;
        };
        let this = self.clone();
        rt.spawn(async move {
            let st = &this.state;
            let result = {
                let _lock = st.fetch_lock.lock().await;
                this.fetch_and_swap().await
            };
            let next = match result {
                Ok(fresh_for) => fresh_for,
                Err(e) => {
                    tracing::warn!(url = %this.url, error = %e, "JWKS background refresh failed; keeping the cached keys");
                    this.cooldown.max(1)
                }
            };
            st.next_refresh
                .store(now.saturating_add(next), Ordering::SeqCst);
            st.refreshing.store(false, Ordering::SeqCst);
        });
    }

    /// Fetches and installs a new set; how long it stays fresh, in seconds. The
    /// caller holds `fetch_lock`.
    async fn fetch_and_swap(&self) -> Result<i64, String> {
        let (set, cache_for) = self.fetch().await?;
        let floor = self.cooldown.max(1);
        let fresh_for = cache_for.map_or(self.max_age, |n| n.clamp(floor, self.max_age.max(floor)));
        let st = &self.state;
        let generation = st.generation.load(Ordering::SeqCst) + 1;
        *st.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Snapshot {
            set: Arc::new(set),
            generation,
        });
        st.generation.store(generation, Ordering::SeqCst);
        st.fresh_for.store(fresh_for, Ordering::SeqCst);
        Ok(fresh_for)
    }

    async fn fetch(&self) -> Result<(JwkSet, Option<i64>), String> {
        self.state.fetches.fetch_add(1, Ordering::SeqCst);
        let (body, cache_for) = tokio::time::timeout(self.timeout, self.fetch_body())
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))??;
        let set = JwkSet::from_json(&body).map_err(|e| format!("invalid JWKS: {e}"))?;
        // Public halves of asymmetric keys only: see the type's docs.
        Ok((set.to_public(), cache_for))
    }

    /// The body, and how long the answer says it stays fresh (seconds), if it says.
    async fn fetch_body(&self) -> Result<(Bytes, Option<i64>), String> {
        let req = Request::get(self.url.clone())
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("tessera-guard/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| format!("request: {e}"))?;
        let res = self
            .state
            .client
            .request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if res.status() != StatusCode::OK {
            return Err(format!("the JWKS URL answered {}", res.status()));
        }
        let too_large = || format!("the JWKS is larger than {} bytes", self.max_bytes);
        let declared = res
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_bytes as u64) {
            return Err(too_large());
        }
        let cache_for = freshness(res.headers());
        let collected = Limited::new(res.into_body(), self.max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large()
                } else {
                    format!("reading the JWKS failed: {e}")
                }
            })?;
        Ok((collected.to_bytes(), cache_for))
    }
}

/// `url` parsed, if it is an absolute `https://` URL (or `http://`, for development);
/// `what` names it in the error ("JWKS", "revocation feed").
pub(crate) fn http_url(url: &str, what: &str) -> Result<Uri, ConfigError> {
    let parsed: Uri = url
        .parse()
        .map_err(|e| ConfigError(format!("invalid {what} URL: {e}")))?;
    if !matches!(parsed.scheme_str(), Some("https" | "http")) || parsed.host().is_none() {
        return Err(ConfigError(format!(
            "the {what} URL must be an absolute https:// URL (or http:// for development)"
        )));
    }
    Ok(parsed)
}

/// The guard's HTTP connector: rustls on the aws-lc-rs provider with the Mozilla
/// roots, HTTP/1.1, `http://` allowed (see [`RemoteJwks`] for why not reqwest).
pub(crate) fn https_connector() -> Result<hyper_rustls::HttpsConnector<HttpConnector>, ConfigError>
{
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build())
}

/// How long an answer stays fresh by its `Cache-Control` (RFC 9111 §5.2.2: `max-age`,
/// less `Age`; `no-cache` and `no-store` mean it is stale at once), in seconds; `None`
/// when it does not say (or says it unreadably).
fn freshness(headers: &HeaderMap) -> Option<i64> {
    let mut max_age = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        for directive in value.to_str().ok()?.split(',') {
            let directive = directive.trim();
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                return Some(0);
            }
            if name.eq_ignore_ascii_case("max-age") {
                max_age = Some(arg.trim_matches('"').parse::<i64>().ok()?);
            }
        }
    }
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    max_age.map(|m| m.saturating_sub(age).max(0))
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .field("cooldown", &self.cooldown)
            .field("max_age", &self.max_age)
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(pairs: &[(&'static str, &'static str)]) -> Option<i64> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        freshness(&h)
    }

    #[test]
    fn freshness_reads_cache_control_and_age() {
        assert_eq!(fresh(&[]), None);
        assert_eq!(fresh(&[("cache-control", "public")]), None);
        assert_eq!(fresh(&[("cache-control", "public, max-age=60")]), Some(60));
        assert_eq!(fresh(&[("cache-control", "Max-Age=\"90\"")]), Some(90));
        assert_eq!(
            fresh(&[("cache-control", "max-age=60"), ("age", "15")]),
            Some(45)
        );
        assert_eq!(
            fresh(&[("cache-control", "max-age=60"), ("age", "600")]),
            Some(0)
        );
        assert_eq!(
            fresh(&[("cache-control", "max-age=600, no-cache")]),
            Some(0)
        );
        assert_eq!(
            fresh(&[("cache-control", "public"), ("cache-control", "no-store")]),
            Some(0)
        );
        assert_eq!(fresh(&[("cache-control", "max-age=soon")]), None);
        assert_eq!(fresh(&[("cache-control", "max-age=-5")]), Some(0));
    }
}
