//! Access tokens: minted here through tessera-jose, and checked here, and only
//! here, through tessera-guard (the same verifier resource servers use), with the
//! server's denylist as the guard's revocation hook. RFC 9068 shape: header
//! `typ: at+jwt`; claims `iss`, `sub`, `aud`, `exp`, `iat`, `jti`, `sid`, `roles`,
//! `scope` (plus `username`, which `/auth/me` answers).

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tessera_guard::{Guard, RevocationView, StaticKeys, access_token_validation};
use tessera_jose::JwkSet;
use tessera_jose::jws::Header;
use tessera_jose::jwt;

use crate::clock::Clock;
use crate::denylist::Denylist;
use crate::keys::KeyRing;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Token id (the denylist key of logout).
    pub jti: String,
    /// Session (refresh family) id.
    pub sid: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Scope, space-separated.
    pub scope: String,
    /// The normalized username.
    pub username: String,
}

/// Why a bearer token was refused (the description goes to the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// Signs access tokens with the ring's current key.
pub fn mint(ring: &KeyRing, claims: &AccessClaims) -> Result<String, tessera_jose::Error> {
    let keys = ring.current();
    let header = Header::new(keys.alg)
        .with_typ("at+jwt")
        .with_kid(keys.kid.clone());
    jwt::encode(&header, claims, &keys.signer)
}

/// The most verified tokens remembered; past it the least used are forgotten
/// first, one at a time (S3-FIFO), never all at once.
pub const CACHE_ENTRIES: usize = 10_000;

/// Checks bearer tokens: signature by a published key, `typ`, `iss`, `aud`, `exp`
/// (by the server's clock), then the denylist.
///
/// A token that verified is remembered (by its exact text) until the set of
/// published key ids changes, so a client that sends its token on every call costs one signature
/// check per token, not per request; `exp` and the denylist are still checked on
/// every request.
pub struct Verifier {
    guard: Guard,
    keys: StaticKeys,
    denylist: Arc<Denylist>,
    clock: Arc<dyn Clock>,
    cache: quick_cache::sync::Cache<Box<str>, Arc<AccessClaims>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for tokens of this issuer and audience, signed by a key of `published`.
    pub fn new(
        issuer: &str,
        audience: &str,
        published: JwkSet,
        denylist: Arc<Denylist>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let keys = StaticKeys::new(published);
        let validation = access_token_validation(issuer, audience)
            .require("iat")
            .require("jti")
            .require("sid")
            .max_size(8 * 1024);
        let hook_list = Arc::clone(&denylist);
        let hook_clock = Arc::clone(&clock);
        let guard_clock = Arc::clone(&clock);
        let guard = Guard::builder(keys.clone())
            .validation(validation)
            .with_revocation(Arc::new(move |v: &RevocationView<'_>| {
                hook_list.is_denied_parts(v.jti, v.sid, v.sub, v.iat, hook_clock.now())
            }))
            .with_clock(Arc::new(move || guard_clock.now()))
            .build();
        Self {
            guard,
            keys,
            denylist,
            clock,
            cache: quick_cache::sync::Cache::new(CACHE_ENTRIES),
        }
    }

    /// Publishes a new key set to the verifier (after a reload of the key ring).
    /// Nothing changes unless the set of key ids did: a reload that found the same
    /// keys keeps every verified token remembered. When a key leaves, the tokens it
    /// signed are forgotten with it (all of them: rotations are rare).
    pub fn set_keys(&self, published: JwkSet) {
        if kids(&self.keys.current()) == kids(&published) {
            return;
        }
        self.keys.replace(published);
        self.cache.clear();
    }

    /// Remembered tokens, hits and misses (for metrics and tests).
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            entries: self.cache.len(),
            hits: self.cache.hits(),
            misses: self.cache.misses(),
        }
    }

    /// The verified, not revoked claims of `token`.
    pub async fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, Refused> {
        let now = self.clock.now();
        if let Some(claims) = self.cache.get(token) {
            if claims.exp <= now {
                return Err(Refused("the token has expired".into()));
            }
            if self.denylist.is_denied(&claims, now) {
                return Err(Refused("the token has been revoked".into()));
            }
            return Ok(claims);
        }
        let principal = self
            .guard
            .verify(token)
            .await
            .map_err(|e| Refused(e.description().to_string()))?;
        let claims: Arc<AccessClaims> = Arc::new(principal.claims().map_err(|_| {
            Refused("the access token's claims do not have the expected shape".into())
        })?);
        self.cache.insert(token.into(), Arc::clone(&claims));
        Ok(claims)
    }
}

/// What the verified-token cache holds and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Tokens remembered now.
    pub entries: usize,
    /// Lookups that found a verified token.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
}

fn kids(set: &JwkSet) -> BTreeSet<Option<&str>> {
    set.keys().iter().map(|k| k.kid()).collect()
}
