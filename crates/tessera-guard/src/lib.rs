//! # tessera-guard
//!
//! The resource-server side of Tessera: verify the bearer access tokens that a
//! Tessera server (or any JOSE issuer) signs, in axum and tower services.
//!
//! ## The design in one paragraph
//!
//! A [`Guard`] holds the keys ([`Keys`]: a [`StaticKeys`] set, or a [`RemoteJwks`]
//! URL fetched and cached), a [`Validation`] policy from tessera-jose, and two hooks:
//! a [`Revocation`] check (such as a [`RevocationFeed`]) and a [`Clock`]. [`Guard::layer`] makes a [`GuardLayer`]
//! that verifies the token of every request of a router, checks required roles and
//! scopes, and inserts a [`Principal`] into the request's extensions. Handlers read
//! it with the extractors [`Principal`] and [`Authenticated<C>`] (the claims typed
//! as `C`). **The extractors need the layer**: a route that uses them without it
//! answers 500 `server_error`, failing closed. Handlers that need a role only on some
//! routes use [`Principal::require_role`] / [`Principal::require_scope`], or a
//! second layer with `route_layer`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use tessera_guard::{Authenticated, Guard, RemoteJwks, access_token_validation};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let jwks = RemoteJwks::new("https://auth.example/.well-known/jwks.json")?;
//! let guard = Guard::builder(jwks)
//!     .validation(access_token_validation("https://auth.example", "https://auth.example"))
//!     .build();
//!
//! async fn me(Authenticated { claims, .. }: Authenticated) -> String {
//!     claims.sub.unwrap_or_default()
//! }
//! let app: Router = Router::new()
//!     .route("/admin", get(|| async { "hello admin" }))
//!     .route_layer(guard.layer().require_role("admin"))
//!     .route("/me", get(me))
//!     .route_layer(guard.layer());
//! # Ok(()) }
//! ```
//!
//! Prefer `route_layer` to `layer`: with `route_layer` a path that matches no route
//! stays a 404 instead of becoming a 401.
//!
//! ## In the authentication server itself
//!
//! A server that signs the tokens holds its public keys in a [`StaticKeys`] and
//! [replaces](StaticKeys::replace) them when it rotates; its denylist is the
//! [`Revocation`] hook, and its clock the [`Clock`]:
//!
//! ```
//! use std::sync::Arc;
//! use tessera_guard::{Guard, RevocationView, StaticKeys, access_token_validation};
//! use tessera_jose::{Curve, Jwk, JwkSet};
//!
//! let signing = Jwk::generate_curve(Curve::P256)?.with_kid("2026-11");
//! let keys = StaticKeys::new(JwkSet::new(vec![signing.to_public()?]));
//! let guard = Guard::builder(keys.clone())
//!     .validation(access_token_validation("http://127.0.0.1:8080", "http://127.0.0.1:8080"))
//!     .with_revocation(Arc::new(|t: &RevocationView<'_>| t.jti == Some("logged-out")))
//!     .with_clock(Arc::new(|| 1_800_000_000_i64))
//!     .build();
//! // After a rotation: the next request sees the new set.
//! let next = Jwk::generate_curve(Curve::P256)?.with_kid("2026-12");
//! keys.replace(JwkSet::new(vec![signing.to_public()?, next.to_public()?]));
//! # let _ = guard;
//! # Ok::<(), tessera_jose::Error>(())
//! ```
//!
//! ## Revocation feed
//!
//! A token stays valid until its `exp`, wherever it is verified: a logout at the
//! server does not reach a resource server that verifies on its own. A
//! [`RevocationFeed`] closes that gap. It subscribes to the server's
//! `GET /auth/revocations` (Server-Sent Events, authenticated with a feed token that
//! the server's `revocation_feed_tokens` lists), keeps every revocation in memory
//! until it expires, and is the guard's [`Revocation`] hook: a token whose `jti` or
//! `sid` is listed, or whose subject was logged out everywhere after the token's
//! `iat`, is refused with 401 `invalid_token`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tessera_guard::{Guard, RemoteJwks, RevocationFeed, access_token_validation};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let jwks = RemoteJwks::new("https://auth.example/.well-known/jwks.json")?;
//! let feed = RevocationFeed::new("https://auth.example/auth/revocations", "feed-token")?;
//! feed.start(); // the background task: connects, follows, reconnects
//! let guard = Guard::builder(jwks)
//!     .validation(access_token_validation("https://auth.example", "https://auth.example"))
//!     .with_revocation(Arc::new(feed.clone()))
//!     .build();
//! # let _ = guard;
//! # Ok(()) }
//! ```
//!
//! The lookup on each request is a read-locked hash lookup, with no I/O. The feed
//! reconnects by itself (with `Last-Event-ID`, so nothing is missed), and while it is
//! down the guard keeps refusing what it already knows and accepts the rest: a
//! revocation made during an outage takes effect when the feed is back. Its
//! defaults (backoff, idle timeout, event size, entry limit, leeway) are on
//! [`RevocationFeed`]; give it the guard's clock with
//! [`with_clock`](RevocationFeed::with_clock), and a [`leeway`](RevocationFeed::leeway)
//! at least the guard's validation leeway.
//!
//! [`Guard::verify`] and [`Guard::authorize`] give the same checks without the layer
//! (for a token read from a cookie, say), and [`GuardError`] is an axum response.
//!
//! ## Answers (RFC 6750)
//!
//! Every refusal is a [`GuardError`], answered as JSON `{"error", "error_description"}`:
//!
//! | case | status | `WWW-Authenticate` |
//! | --- | --- | --- |
//! | no `Authorization: Bearer` | 401 | `Bearer` |
//! | token refused (garbled, tampered, expired, wrong `iss`/`aud`/`typ`, unknown key, algorithm outside the key's family, revoked) | 401 | `Bearer error="invalid_token", error_description="..."` |
//! | two `Authorization` headers | 400 | `Bearer error="invalid_request", ...` |
//! | role or scope missing | 403 | `Bearer error="insufficient_scope", ...` (with `scope="..."` for scopes) |
//! | JWKS never fetched successfully | 503 | none (`Retry-After: 5`) |
//!
//! ## Defaults, and why
//!
//! | default | reason |
//! | --- | --- |
//! | algorithms: the key's own family only (tessera-jose) | algorithm confusion; `none` never verifies |
//! | `exp` required, leeway 0 | inherited from [`Validation::new`]; set issuer and audience too ([`access_token_validation`]) |
//! | tokens with a `cnf` claim are refused | they are bound to a key (DPoP, mTLS); accepting them as bearer tokens would undo the binding |
//! | JWKS refetch on unknown `kid`: at most once per 30 s | a flood of forged `kid`s must not hammer the provider |
//! | JWKS fetch: 5 s timeout, 256 KiB, no redirects, `oct` keys dropped | bounded work; a published secret is no key |
//! | cached JWKS refreshed in the background after 5 min | withdrawn keys stop verifying |
//! | revocation feed: reconnect after 100 ms doubling to 5 s; 45 s without a byte drops the connection | quick catch-up, no hammering; the server sends a comment every 15 s |
//! | revocation feed: 64 KiB per event, 1,000,000 entries (then those expiring first go), entries kept 60 s past `expires_at` | bounded memory; covers a guard's leeway and clock skew |
//!
//! ## Hot path
//!
//! One JOSE verification (tessera-jose parses and checks the token once), one parse
//! of the few claims the guard reads (`sub`, `jti`, `sid`, `iat`, `exp`, `roles`,
//! `scope`), the revocation hook, and the role and scope checks. The key set is an
//! `Arc` snapshot taken under a read lock held for one pointer copy; no lock is held
//! across an await. A second parse happens only for a token whose `kid` is unknown.
//!
//! ## Extension point: DPoP
//!
//! Proof-of-possession (RFC 9449) is a later issue. It will plug in where
//! [`bearer_token`] reads the `Authorization` header (the `DPoP` scheme and the
//! `DPoP` proof header) and where key-bound tokens are refused today
//! ([`Principal`] keeps the raw payload, so `cnf.jkt` is at hand).
#![forbid(unsafe_code)]

mod error;
mod feed;
mod keys;
mod layer;
mod principal;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use tessera_jose::jws;
pub use tessera_jose::jwt::Validation;
use tessera_jose::{ErrorKind, JwkSet};

pub use error::{GuardError, RejectionKind};
pub use feed::RevocationFeed;
pub use keys::{ConfigError, Keys, RemoteJwks, StaticKeys};
pub use layer::{GuardLayer, GuardService};
pub use principal::{Authenticated, Principal, RevocationView};

/// A revocation hook, consulted on every request after the token verified: return
/// `true` to refuse the token (401 `invalid_token`, "the token has been revoked").
///
/// It runs on the hot path, synchronously: keep it an in-memory lookup.
/// Closures `Fn(&RevocationView<'_>) -> bool` implement it.
pub trait Revocation: Send + Sync + 'static {
    /// Whether the token is revoked.
    fn is_revoked(&self, token: &RevocationView<'_>) -> bool;
}

impl<F> Revocation for F
where
    F: Fn(&RevocationView<'_>) -> bool + Send + Sync + 'static,
{
    fn is_revoked(&self, token: &RevocationView<'_>) -> bool {
        self(token)
    }
}

/// The source of the current time in seconds since the Unix epoch, for token
/// validation and the JWKS cooldown. Closures `Fn() -> i64` implement it, so a test
/// can share an `AtomicI64` and move time.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> i64;
}

impl<F> Clock for F
where
    F: Fn() -> i64 + Send + Sync + 'static,
{
    fn now(&self) -> i64 {
        self()
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The validation of RFC 9068 access tokens from `issuer` for `audience`:
/// `typ: at+jwt`, `iss` and `aud` checked, `exp`, `sub`, `iat` and `jti` required
/// (RFC 9068 §2.2; `client_id` too is required there, but Tessera's own `/auth`
/// tokens have none: a guard for OAuth clients' tokens adds `.require("client_id")`),
/// leeway 0.
pub fn access_token_validation(issuer: &str, audience: &str) -> Validation {
    Validation::new()
        .issuer(issuer)
        .audience(audience)
        .typ("at+jwt")
        .require("sub")
        .require("iat")
        .require("jti")
}

/// Verifies bearer tokens. Cheap to clone (one `Arc`); build one per key source with
/// [`Guard::builder`] and share it.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Keys,
    validation: Validation,
    revocation: Option<Arc<dyn Revocation>>,
    clock: Arc<dyn Clock>,
    realm: Option<Arc<str>>,
}

/// Configures a [`Guard`].
pub struct GuardBuilder {
    keys: Keys,
    validation: Validation,
    revocation: Option<Arc<dyn Revocation>>,
    clock: Arc<dyn Clock>,
    realm: Option<Arc<str>>,
}

impl Guard {
    /// Starts a guard over `keys`: a [`StaticKeys`], a [`RemoteJwks`], a `JwkSet` or
    /// a single `Jwk`.
    pub fn builder(keys: impl Into<Keys>) -> GuardBuilder {
        GuardBuilder {
            keys: keys.into(),
            validation: Validation::new(),
            revocation: None,
            clock: Arc::new(SystemClock),
            realm: None,
        }
    }

    /// A layer that guards every route below it (see [`GuardLayer`]).
    pub fn layer(&self) -> GuardLayer {
        GuardLayer::new(self.clone())
    }

    /// The key source.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Reads the bearer token from `headers` and verifies it; the layer without the
    /// service, for code that is not a tower stack.
    pub async fn authorize(&self, headers: &HeaderMap) -> Result<Principal, GuardError> {
        match bearer_token(headers) {
            Ok(Some(token)) => self.verify(token).await,
            Ok(None) => Err(self.finish_err(GuardError::missing_token())),
            Err(e) => Err(self.finish_err(e)),
        }
    }

    /// Verifies `token` (the compact JWS, without `Bearer `): signature with the key
    /// its `kid` selects, the [`Validation`] at the [`Clock`]'s time, the claim types
    /// the guard reads, no key binding, and the [`Revocation`] hook.
    pub async fn verify(&self, token: &str) -> Result<Principal, GuardError> {
        self.verify_inner(token)
            .await
            .map_err(|e| self.finish_err(e))
    }

    async fn verify_inner(&self, token: &str) -> Result<Principal, GuardError> {
        let now = self.inner.clock.now();
        let principal = match &self.inner.keys {
            Keys::Static(keys) => self.check_signature(&keys.current(), token, now)?,
            Keys::Remote(remote) => {
                if remote.snapshot().is_none() {
                    // No keys yet: a token that is not even well-formed is the
                    // client's fault (401), and must not cost a fetch.
                    jws::Unverified::parse(token, self.inner.validation.policy())
                        .map_err(|e| GuardError::from_jose(&e))?;
                }
                let snap = remote.keys(now).await?;
                match self.check_signature(&snap.set, token, now) {
                    Err(e)
                        if e.jose_kind() == Some(ErrorKind::KeyNotFound)
                            && self.kid_is_unknown(token, &snap.set) =>
                    {
                        match remote.refetch(snap.generation, now).await {
                            Some(newer) => self.check_signature(&newer.set, token, now)?,
                            None => return Err(e),
                        }
                    }
                    other => other?,
                }
            }
        };
        if principal.is_key_bound() {
            return Err(GuardError::invalid_token(
                "the token is bound to a key (cnf), and this resource server accepts only bearer tokens",
            ));
        }
        if let Some(hook) = &self.inner.revocation
            && hook.is_revoked(&principal.revocation_view())
        {
            return Err(GuardError::invalid_token("the token has been revoked"));
        }
        Ok(principal)
    }

    fn check_signature(
        &self,
        keys: &JwkSet,
        token: &str,
        now: i64,
    ) -> Result<Principal, GuardError> {
        let v = &self.inner.validation;
        let verified =
            jws::verify(token, keys, v.policy()).map_err(|e| GuardError::from_jose(&e))?;
        v.validate_payload(verified.header(), verified.payload(), now)
            .map_err(|e| GuardError::from_jose(&e))?;
        let (header, payload) = verified.into_parts();
        Principal::parse(header, payload)
    }

    /// Whether the token names a `kid` that no key of `keys` has (the case a refetch
    /// can fix; a duplicate `kid` or a missing `kid` is not).
    fn kid_is_unknown(&self, token: &str, keys: &JwkSet) -> bool {
        jws::Unverified::parse(token, self.inner.validation.policy())
            .ok()
            .and_then(|u| u.header().kid.clone())
            .is_some_and(|kid| keys.find(&kid).next().is_none())
    }

    pub(crate) fn finish_err(&self, e: GuardError) -> GuardError {
        e.with_realm(self.inner.realm.as_ref())
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("keys", &self.inner.keys)
            .field("validation", &self.inner.validation)
            .field("revocation", &self.inner.revocation.is_some())
            .field("realm", &self.inner.realm)
            .finish_non_exhaustive()
    }
}

impl GuardBuilder {
    /// The validation policy (issuer, audience, `typ`, leeway, algorithms, limits).
    /// Its time is ignored: the guard validates at its [`Clock`]'s time.
    pub fn validation(mut self, validation: Validation) -> Self {
        self.validation = validation;
        self
    }

    /// A revocation hook consulted on every request.
    pub fn with_revocation(mut self, revocation: Arc<dyn Revocation>) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// The clock (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A `realm` for `WWW-Authenticate` (none by default).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(Arc::from(realm.into()));
        self
    }

    /// The guard.
    pub fn build(self) -> Guard {
        Guard {
            inner: Arc::new(Inner {
                keys: self.keys,
                validation: self.validation,
                revocation: self.revocation,
                clock: self.clock,
                realm: self.realm,
            }),
        }
    }
}

/// The bearer token of a request (RFC 6750 §2.1): `Ok(None)` when there is no
/// `Authorization` header or it names another scheme (which is, for this guard, no
/// token: RFC 6750 answers it with a bare `Bearer` challenge); `invalid_request` for
/// two `Authorization` headers or one that is not visible ASCII; `invalid_token` for
/// a `Bearer` credential that is not b64token syntax.
///
/// DPoP (RFC 9449) will extend this: the `DPoP` scheme, with its proof header.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, GuardError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(GuardError::new(
            RejectionKind::InvalidRequest,
            "the request has more than one Authorization header",
        ));
    }
    let value = value.to_str().map_err(|_| {
        GuardError::new(
            RejectionKind::InvalidRequest,
            "the Authorization header is not visible ASCII",
        )
    })?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(GuardError::invalid_token("the bearer token is empty"));
    }
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
    {
        return Err(GuardError::invalid_token(
            "the bearer token is not a well-formed token",
        ));
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn kind(values: &[&[u8]]) -> Result<Option<String>, RejectionKind> {
        bearer_token(&headers(values))
            .map(|t| t.map(str::to_owned))
            .map_err(|e| e.kind())
    }

    #[test]
    fn bearer_token_follows_rfc_6750_syntax() {
        assert_eq!(kind(&[]), Ok(None));
        assert_eq!(
            kind(&[b"Bearer abc.def-_~+/.g=="]),
            Ok(Some("abc.def-_~+/.g==".into()))
        );
        assert_eq!(kind(&[b"bEaReR  abc "]), Ok(Some("abc".into())));
        assert_eq!(kind(&[b"Basic YWRh"]), Ok(None));
        assert_eq!(kind(&[b"DPoP abc"]), Ok(None));
        assert_eq!(kind(&[b"Bearerabc"]), Ok(None));
        assert_eq!(kind(&[b"Bearer"]), Err(RejectionKind::InvalidToken));
        assert_eq!(kind(&[b"Bearer a b"]), Err(RejectionKind::InvalidToken));
        assert_eq!(kind(&[b"Bearer a=b"]), Err(RejectionKind::InvalidToken));
        assert_eq!(kind(&[b"Bearer ==="]), Err(RejectionKind::InvalidToken));
        assert_eq!(kind(&[b"Bearer a\tb"]), Err(RejectionKind::InvalidToken));
        assert_eq!(
            kind(&[b"Bearer \xc3\xa9"]),
            Err(RejectionKind::InvalidRequest)
        );
        assert_eq!(
            kind(&[b"Bearer a", b"Bearer a"]),
            Err(RejectionKind::InvalidRequest)
        );
    }
}
