//! Access tokens: minted here through tessera-jose, and checked here, and only
//! here, through tessera-guard (the same verifier resource servers use), with the
//! server's denylist as the guard's revocation hook.
//!
//! Every access token is an RFC 9068 JWT (header `typ: at+jwt`; claims `iss`, `sub`,
//! `aud`, `exp`, `iat`, `jti`, `scope`), signed by the same keys, checked by the one
//! [`Verifier`] and revocable by the one denylist (`jti`, `sid`, or a user's
//! cutoff). There are three kinds ([`TokenKind`]), told apart by what they carry:
//!
//! | kind | `sub` | `client_id` | `sid` | `roles`, `username` |
//! | --- | --- | --- | --- | --- |
//! | a user's `/auth` session | the user | — | the session | yes |
//! | a user's grant to an OAuth client | the user | the client | where there is a session | — |
//! | a client acting for itself (`client_credentials`) | the client id | the client | — | — |
//!
//! The `/auth` routes take only the first kind.

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

/// The claims of an access token, of any [`TokenKind`]. Build one with
/// [`AccessClaims::session`], [`AccessClaims::user_grant`] or
/// [`AccessClaims::client`], so that each kind carries what it should.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// The user id, or the client id of a client acting for itself.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Token id (the denylist key of logout and revocation).
    pub jti: String,
    /// The OAuth client the token was issued to (RFC 9068 §2.2); none for `/auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Session (refresh family) id, where there is a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Roles (`/auth` sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Scope, space-separated.
    pub scope: String,
    /// The normalized username (`/auth` sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// What an access token stands for; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind<'a> {
    /// A user's `/auth` session.
    Session {
        /// The session id.
        sid: &'a str,
        /// The username.
        username: &'a str,
    },
    /// A user's grant to an OAuth client.
    UserGrant {
        /// The client.
        client_id: &'a str,
        /// The session, if there is one.
        sid: Option<&'a str>,
    },
    /// A client acting for itself: `sub` is its id.
    Client {
        /// The client.
        client_id: &'a str,
    },
}

/// The registered claims every kind has: issuer, audience, times and id.
#[derive(Debug, Clone)]
pub struct Issue {
    /// `iss`.
    pub iss: String,
    /// `aud`.
    pub aud: String,
    /// `iat`.
    pub iat: i64,
    /// `exp`.
    pub exp: i64,
    /// `jti`.
    pub jti: String,
}

impl AccessClaims {
    /// The token of a user's `/auth` session.
    pub fn session(
        issue: Issue,
        user_id: &str,
        sid: &str,
        username: &str,
        roles: Vec<String>,
        scope: &str,
    ) -> Self {
        Self {
            iss: issue.iss,
            sub: user_id.to_string(),
            aud: issue.aud,
            exp: issue.exp,
            iat: issue.iat,
            jti: issue.jti,
            client_id: None,
            sid: Some(sid.to_string()),
            roles: Some(roles),
            scope: scope.to_string(),
            username: Some(username.to_string()),
        }
    }

    /// The token of a user's grant to `client_id`, with the session where there
    /// is one.
    pub fn user_grant(
        issue: Issue,
        user_id: &str,
        client_id: &str,
        sid: Option<&str>,
        scope: &str,
    ) -> Self {
        Self {
            iss: issue.iss,
            sub: user_id.to_string(),
            aud: issue.aud,
            exp: issue.exp,
            iat: issue.iat,
            jti: issue.jti,
            client_id: Some(client_id.to_string()),
            sid: sid.map(str::to_string),
            roles: None,
            scope: scope.to_string(),
            username: None,
        }
    }

    /// The token of a client acting for itself (`client_credentials`): `sub` is the
    /// client id (RFC 9068 §2.2).
    pub fn client(issue: Issue, client_id: &str, scope: &str) -> Self {
        Self {
            iss: issue.iss,
            sub: client_id.to_string(),
            aud: issue.aud,
            exp: issue.exp,
            iat: issue.iat,
            jti: issue.jti,
            client_id: Some(client_id.to_string()),
            sid: None,
            roles: None,
            scope: scope.to_string(),
            username: None,
        }
    }

    /// The kind of token these claims make; `None` for claims that fit no kind (a
    /// token without `client_id` that lacks its session or username).
    pub fn kind(&self) -> Option<TokenKind<'_>> {
        match (&self.client_id, &self.sid, &self.username) {
            (None, Some(sid), Some(username)) => Some(TokenKind::Session { sid, username }),
            (None, _, _) => None,
            (Some(client_id), None, None) if self.roles.is_none() && self.sub == *client_id => {
                Some(TokenKind::Client { client_id })
            }
            (Some(client_id), sid, _) => Some(TokenKind::UserGrant {
                client_id,
                sid: sid.as_deref(),
            }),
        }
    }

    /// The session id of an `/auth` session token; `None` for the other kinds.
    pub fn session_id(&self) -> Option<&str> {
        match self.kind() {
            Some(TokenKind::Session { sid, .. }) => Some(sid),
            _ => None,
        }
    }
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
        // `sid` is not required: only /auth session tokens carry it (the /auth
        // routes check the kind), and the scope is required by the claims' type.
        let validation = access_token_validation(issuer, audience)
            .require("iat")
            .require("jti")
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
        let claims: AccessClaims = principal.claims().map_err(|_| {
            Refused("the access token's claims do not have the expected shape".into())
        })?;
        if claims.kind().is_none() {
            return Err(Refused(
                "the access token's claims do not have the expected shape".into(),
            ));
        }
        let claims = Arc::new(claims);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn issue() -> Issue {
        Issue {
            iss: "https://i".into(),
            aud: "https://i".into(),
            iat: 1,
            exp: 901,
            jti: "j".into(),
        }
    }

    fn round_trip(c: &AccessClaims) -> serde_json::Value {
        let json = serde_json::to_value(c).unwrap();
        let back: AccessClaims = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(&back, c);
        json
    }

    #[test]
    fn each_kind_carries_what_it_should() {
        let session =
            AccessClaims::session(issue(), "u1", "s1", "ada", vec!["admin".into()], "api");
        assert_eq!(
            session.kind(),
            Some(TokenKind::Session {
                sid: "s1",
                username: "ada"
            })
        );
        let json = round_trip(&session);
        assert!(json.get("client_id").is_none());
        assert_eq!(json["roles"], serde_json::json!(["admin"]));

        let grant = AccessClaims::user_grant(issue(), "u1", "app", Some("s1"), "openid");
        assert_eq!(
            grant.kind(),
            Some(TokenKind::UserGrant {
                client_id: "app",
                sid: Some("s1")
            })
        );
        assert_eq!(grant.session_id(), None, "not an /auth session");
        let json = round_trip(&grant);
        assert!(json.get("roles").is_none() && json.get("username").is_none());
        let offline = AccessClaims::user_grant(issue(), "u1", "app", None, "openid");
        assert_eq!(
            offline.kind(),
            Some(TokenKind::UserGrant {
                client_id: "app",
                sid: None
            })
        );

        let client = AccessClaims::client(issue(), "svc", "orders.read");
        assert_eq!(client.kind(), Some(TokenKind::Client { client_id: "svc" }));
        let json = round_trip(&client);
        assert_eq!(json["sub"], "svc");
        for absent in ["sid", "roles", "username"] {
            assert!(json.get(absent).is_none(), "{absent}: {json}");
        }
    }

    #[test]
    fn claims_of_no_kind_are_recognized() {
        let mut c = AccessClaims::session(issue(), "u1", "s1", "ada", vec![], "api");
        c.sid = None;
        assert_eq!(c.kind(), None, "a session token without its session");
        let mut c = AccessClaims::session(issue(), "u1", "s1", "ada", vec![], "api");
        c.username = None;
        assert_eq!(c.kind(), None);
    }
}
