//! The flows: what each route does, in the store's vocabulary, without HTTP.
//! Time comes from the [`Clock`]; tokens are minted through [`crate::tokens`].

mod auth;
mod authorize;
mod clients;
mod oauth;
mod oidc;
mod stateful;

use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use auth::{Issued, SessionInfo, add_user};
pub use authorize::{
    AUTHORIZE_PARAMETERS, AuthorizeError, AuthorizeRequest, AuthorizeResponse, CODE_TTL, Next,
    OpSession, ReturnTo, TRANSACTION_TTL, Transaction,
};
pub use clients::{ClientError, NewClient, Registered, add_client, list_clients, remove_client};
pub use oauth::{
    AuthMethod, AuthenticatedClient, ClientCredentials, Introspection, IssuedToken, OAuthError,
    TokenHint, TokenRequest,
};
pub use oidc::{IdTokenHint, LoggedOut, UserInfo};
pub use stateful::StatefulLogin;

use crate::cache::{Health, HotState, MemoryHot, RedisHot};
use crate::clock::Clock;
use crate::denylist::Denylist;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::password::Hasher;
use crate::ratelimit::Limiter;
use crate::store::{
    DenyEntry, DenyKind, FamilyPolicy, Pruned, SessionLimit, SessionStore, Store, StoreError,
};
use crate::tokens::Verifier;

/// Why a flow refused, in terms the HTTP layer maps to a status.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthError {
    /// Input that breaks a rule (400).
    InvalidInput(String),
    /// Wrong credentials, or a bad, spent or expired refresh token (401).
    InvalidGrant,
    /// The username is taken (409).
    UsernameTaken,
    /// Too many failures; retry after this many seconds (429).
    RateLimited(i64),
    /// At the session limit, with policy `refuse`.
    SessionLimit,
    /// No such thing of this user (404).
    NotFound,
    /// The database cannot be reached; retry later (503).
    Unavailable(String),
    /// Something failed inside; logged, never shown.
    Internal(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::UsernameTaken,
            StoreError::SessionLimit => Self::SessionLimit,
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::crypto::CryptoError> for AuthError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// The flows' settings, derived from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `iss` of access tokens.
    pub issuer: String,
    /// `aud` of access tokens.
    pub audience: String,
    /// Access token lifetime, seconds.
    pub access_ttl: i64,
    /// Family lifetimes.
    pub family: FamilyPolicy,
    /// Refresh reuse interval, seconds.
    pub reuse_interval: i64,
    /// Stateful session lifetime (idle), seconds.
    pub session_ttl: i64,
    /// `scope` of access tokens.
    pub scope: String,
    /// The session limit, if any.
    pub session_limit: Option<SessionLimit>,
    /// Failures per account before 429.
    pub account_failures: u32,
    /// Failures per address before 429.
    pub address_failures: u32,
    /// Scopes named in discovery besides those of OpenID Connect.
    pub scopes_supported: Vec<String>,
}

/// Everything the flows use; one per server, shared by every request.
pub struct Core {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The hot state: this node's memory, or Redis shared by the nodes.
    pub hot: Arc<dyn HotState>,
    /// Where stateful sessions live: the store, or Redis.
    pub sessions: Arc<dyn SessionStore>,
    /// Redis' health as this node sees it; `None` without Redis.
    pub redis: Option<Arc<Health>>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Signing keys.
    pub keys: KeyRing,
    /// Revoked access tokens.
    pub denylist: Arc<Denylist>,
    /// Password hashing.
    pub hasher: Hasher,
    /// Brute-force limits.
    pub limiter: Limiter,
    /// Metrics.
    pub metrics: Metrics,
    /// Bearer verification.
    pub verifier: Verifier,
    /// Settings.
    pub settings: Settings,
    csrf_key: hmac::Key,
    tx_key: crate::crypto::SealKey,
    /// Clients read from the store, each for [`CLIENT_CACHE_FOR`] (see
    /// [`Core::client`]).
    clients: quick_cache::sync::Cache<String, (Arc<crate::store::Client>, std::time::Instant)>,
}

/// How long a client read from the store is used before it is read again: a client
/// removed by `tessera client remove` (on any node) stops authenticating within this.
/// A client that is not found is never remembered, so one just added works at once.
pub const CLIENT_CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// Assembles the core. The CSRF key is derived from the key-encryption key, so
    /// CSRF tokens survive a restart.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keys: KeyRing,
        denylist: Arc<Denylist>,
        hasher: Hasher,
        limiter: Limiter,
        settings: Settings,
    ) -> Self {
        let csrf_key = hmac::Key::new(
            hmac::HMAC_SHA256,
            keys.kek().subkey("tessera csrf").as_slice(),
        );
        let verifier = Verifier::new(
            &settings.issuer,
            &settings.audience,
            keys.current().published.clone(),
            Arc::clone(&denylist),
            Arc::clone(&clock),
        );
        let sessions: Arc<dyn SessionStore> = store.clone();
        let tx_key = authorize::transaction_key(keys.kek());
        Self {
            store,
            hot: Arc::new(MemoryHot::new()),
            sessions,
            redis: None,
            clock,
            keys,
            denylist,
            hasher,
            limiter,
            metrics: Metrics::new(),
            verifier,
            settings,
            csrf_key,
            tx_key,
            clients: quick_cache::sync::Cache::new(10_000),
        }
    }

    /// The client with this id: from the store, or as read from it less than
    /// [`CLIENT_CACHE_FOR`] ago. The token and introspection endpoints look their
    /// client up on every request; without this, that lookup is half of a
    /// client_credentials grant's cost (docs/benchmarks.md).
    pub async fn client(&self, id: &str) -> Result<Option<Arc<crate::store::Client>>, StoreError> {
        if let Some((c, at)) = self.clients.get(id)
            && at.elapsed() < CLIENT_CACHE_FOR
        {
            return Ok(Some(c));
        }
        let Some(c) = self.store.client_by_id(id).await? else {
            self.clients.remove(id);
            return Ok(None);
        };
        let c = Arc::new(c);
        self.clients
            .insert(id.to_string(), (Arc::clone(&c), std::time::Instant::now()));
        Ok(Some(c))
    }

    /// Keeps the hot state and the stateful sessions in `redis`, shared by the
    /// nodes (the limiter is given it by the caller: [`Limiter::shared`]).
    pub fn with_redis(mut self, redis: Arc<RedisHot>, health: Arc<Health>) -> Self {
        self.hot = redis.clone();
        self.sessions = redis;
        self.redis = Some(health);
        self
    }

    /// Now, by the clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The CSRF token of a session (cookie delivery): an HMAC of its id, so it is
    /// bound to the session and needs no storage.
    pub fn csrf_for(&self, sid: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.csrf_key, sid.as_bytes()).as_ref())
    }

    /// Re-reads the signing keys (a rotation by the CLI, or the end of a previous
    /// key's publication) and hands the published set to the verifier.
    pub async fn reload_keys(&self) -> Result<(), crate::keys::KeyError> {
        self.keys.reload(self.store.as_ref(), self.now()).await?;
        self.verifier
            .set_keys(self.keys.current().published.clone());
        Ok(())
    }

    /// Reads what the store's denylist holds past the node's cursor into memory (at
    /// start, everything in force; then what other nodes revoked): an index range
    /// from the cursor, in pages. Returns how many entries were read.
    pub async fn catch_up(&self) -> Result<usize, StoreError> {
        const PAGE: u32 = 1000;
        let mut read = 0;
        loop {
            let page = self
                .store
                .revocations_since(self.denylist.cursor(), self.now(), PAGE)
                .await?;
            let Some(last) = page.last().map(|r| r.seq) else {
                return Ok(read);
            };
            read += page.len();
            self.denylist.caught_up(&page, last);
            if page.len() < PAGE as usize {
                return Ok(read);
            }
        }
    }

    /// Prunes one bounded batch of dead data from the store (see [`Store::prune`]).
    pub async fn prune(&self, batch: u32) -> Result<Pruned, StoreError> {
        self.store
            .prune(self.now(), self.settings.family, batch)
            .await
    }

    /// Denies every access token of these sessions, in memory and in the store.
    async fn deny_sessions(&self, sids: &[String], now: i64) -> Result<(), AuthError> {
        if sids.is_empty() {
            return Ok(());
        }
        let entries: Vec<DenyEntry> = sids
            .iter()
            .map(|sid| DenyEntry {
                kind: DenyKind::Sid,
                value: sid.clone(),
                cutoff: 0,
                expires_at: now + self.settings.access_ttl + 1,
            })
            .collect();
        self.deny(&entries).await
    }

    async fn deny(&self, entries: &[DenyEntry]) -> Result<(), AuthError> {
        // Memory first: the revocation takes effect here at once even if the write
        // fails (the error is still reported).
        self.denylist.insert(entries);
        let written = self.store.deny(entries).await?;
        self.denylist.apply(&written);
        // Then the other nodes, at once through the broadcast. Should it fail, they
        // read it from the store within their catch-up interval all the same.
        if self.redis.as_ref().is_none_or(|h| h.is_up())
            && let Err(e) = self.hot.publish(&written).await
            && let Some(h) = &self.redis
        {
            h.down(&e);
        }
        Ok(())
    }
}
