//! What a verified token says: [`Principal`], the typed [`Authenticated`] extractor,
//! and the [`RevocationView`] given to a revocation hook.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use tessera_jose::jws::Header;
use tessera_jose::jwt::{Claims, NumericDate};

use crate::error::{GuardError, RejectionKind};

/// A verified, validated access token: the claims the guard itself reads, plus the
/// raw payload for typed access through [`Principal::claims`] or [`Authenticated`].
///
/// The layer inserts it into the request's extensions; handlers take it as an
/// extractor (`principal: Principal`, or `Option<Principal>` behind an
/// [optional](crate::GuardLayer::optional) layer). Cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct Principal(Arc<Inner>);

struct Inner {
    header: Header,
    payload: Vec<u8>,
    std: StdClaims,
}

/// The claims the guard reads, with their JSON types enforced: a `roles` that is not
/// an array of strings, or a `scope` that is not a string, refuses the token.
#[derive(Deserialize)]
pub(crate) struct StdClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    iat: Option<NumericDate>,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    cnf: Option<IgnoredAny>,
}

impl Principal {
    pub(crate) fn parse(header: Header, payload: Vec<u8>) -> Result<Self, GuardError> {
        // serde's message could quote claim values; the answer names only the rule.
        let std: StdClaims = serde_json::from_slice(&payload).map_err(|_| {
            GuardError::invalid_token(
                "the token's claims have the wrong JSON types \
                 (roles must be an array of strings, scope a string)",
            )
        })?;
        Ok(Self(Arc::new(Inner {
            header,
            payload,
            std,
        })))
    }

    pub(crate) fn is_key_bound(&self) -> bool {
        self.0.std.cnf.is_some()
    }

    /// `iss`.
    pub fn iss(&self) -> Option<&str> {
        self.0.std.iss.as_deref()
    }

    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.0.std.sub.as_deref()
    }

    /// `jti`.
    pub fn jti(&self) -> Option<&str> {
        self.0.std.jti.as_deref()
    }

    /// `sid`, the session (refresh-token family) the token belongs to.
    pub fn sid(&self) -> Option<&str> {
        self.0.std.sid.as_deref()
    }

    /// `client_id` (RFC 9068), for OAuth tokens.
    pub fn client_id(&self) -> Option<&str> {
        self.0.std.client_id.as_deref()
    }

    /// `iat`, in seconds since the epoch.
    pub fn iat(&self) -> Option<i64> {
        self.0.std.iat.map(|d| d.0)
    }

    /// `exp`, in seconds since the epoch.
    pub fn exp(&self) -> Option<i64> {
        self.0.std.exp.map(|d| d.0)
    }

    /// The `roles` claim (empty when absent).
    pub fn roles(&self) -> &[String] {
        self.0.std.roles.as_deref().unwrap_or(&[])
    }

    /// The `scope` claim as written: space-separated (RFC 8693 §4.2).
    pub fn scope(&self) -> Option<&str> {
        self.0.std.scope.as_deref()
    }

    /// The scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// Whether `roles` contains `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().iter().any(|r| r == role)
    }

    /// Whether `scope` contains `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The verified protected header.
    pub fn header(&self) -> &Header {
        &self.0.header
    }

    /// The verified payload (the claims as JSON bytes).
    pub fn payload(&self) -> &[u8] {
        &self.0.payload
    }

    /// The claims deserialized into `C`; a token whose claims do not fit `C` is
    /// refused as `invalid_token`.
    pub fn claims<C: DeserializeOwned>(&self) -> Result<C, GuardError> {
        serde_json::from_slice(&self.0.payload).map_err(|_| {
            GuardError::invalid_token(
                "the token's claims do not have the shape this service expects",
            )
        })
    }

    /// What a [`Revocation`](crate::Revocation) hook sees of this token.
    pub fn revocation_view(&self) -> RevocationView<'_> {
        RevocationView {
            jti: self.jti(),
            sub: self.sub(),
            sid: self.sid(),
            iat: self.iat(),
            exp: self.exp(),
            client_id: self.client_id(),
        }
    }
}

impl std::fmt::Debug for Principal {
    /// Names the token's subject and ids, never its signature or raw payload.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("sub", &self.sub())
            .field("jti", &self.jti())
            .field("sid", &self.sid())
            .field("roles", &self.roles())
            .field("scope", &self.scope())
            .finish_non_exhaustive()
    }
}

/// The identifiers of a verified token that a denylist is keyed on.
///
/// `#[non_exhaustive]`: more fields may come (e.g. a DPoP key thumbprint); build one
/// in tests with `RevocationView::default()` and field assignment.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevocationView<'a> {
    /// `jti`: deny one token.
    pub jti: Option<&'a str>,
    /// `sub`: with `iat`, deny every token of a user issued before a moment (logout-all).
    pub sub: Option<&'a str>,
    /// `sid`: deny every token of a session.
    pub sid: Option<&'a str>,
    /// `iat`, seconds since the epoch.
    pub iat: Option<i64>,
    /// `exp`, seconds since the epoch (how long a denylist entry must live).
    pub exp: Option<i64>,
    /// `client_id`, for OAuth tokens.
    pub client_id: Option<&'a str>,
}

/// An axum extractor giving the verified claims of the request's token, typed as `C`.
///
/// It reads the [`Principal`] that a [`GuardLayer`](crate::GuardLayer) inserted, and
/// deserializes its payload into `C` (by default [`Claims`], the registered claims
/// plus a map of the others). A route reached without the layer answers 500
/// `server_error` ([`RejectionKind::NotGuarded`]): misconfiguration fails closed.
///
/// ```
/// use tessera_guard::Authenticated;
/// #[derive(serde::Deserialize)]
/// struct MyClaims { sub: String, roles: Vec<String> }
/// async fn handler(Authenticated { claims, .. }: Authenticated<MyClaims>) -> String {
///     format!("hello {} ({})", claims.sub, claims.roles.join(","))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated<C = Claims> {
    /// The claims, typed.
    pub claims: C,
    /// The token's principal (roles, scopes, ids, header, raw payload).
    pub principal: Principal,
}

impl<S, C> FromRequestParts<S> for Authenticated<C>
where
    S: Send + Sync,
    C: DeserializeOwned + Send,
{
    type Rejection = GuardError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = principal_of(parts)?;
        let claims = principal.claims::<C>()?;
        Ok(Self { claims, principal })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = GuardError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal_of(parts)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

fn principal_of(parts: &Parts) -> Result<Principal, GuardError> {
    match parts.extensions.get::<Principal>() {
        Some(p) => Ok(p.clone()),
        None if parts.extensions.get::<crate::layer::Passed>().is_some() => {
            Err(GuardError::missing_token())
        }
        None => {
            tracing::error!(
                "an extractor of tessera-guard ran on a route without GuardLayer; answering 500"
            );
            Err(GuardError::new(
                RejectionKind::NotGuarded,
                "this route is not behind the tessera-guard layer",
            ))
        }
    }
}
