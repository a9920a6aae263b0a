//! The OAuth 2.0 flows of the token, introspection and revocation endpoints: client
//! authentication (RFC 6749 §2.3.1), the `client_credentials` grant (§4.4),
//! introspection (RFC 7662) and revocation (RFC 7009).
//!
//! Error descriptions here reach clients as `error_description`, which RFC 6749
//! §5.2 limits to printable ASCII without `"` and `\`: they are written so.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::{self, CryptoError};
use crate::domain::oauth::USER_SCOPES;
use crate::domain::{ClientId, GrantType, Scope};
use crate::metrics::{GrantLabel, OAuthOp, TokenOp};
use crate::ratelimit::LimitKey;
use crate::redact::debug_redacted;
use crate::store::{Client, DenyEntry, DenyKind, Family, StoreError};
use crate::tokens::{self, AccessClaims, TokenKind};

use super::Core;

/// How a client authenticated at an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// HTTP Basic with the form-urlencoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// `client_id` alone: a public client identifies itself, it does not
    /// authenticate.
    None,
}

/// The client credentials of a request, as sent.
pub struct ClientCredentials {
    /// The client id.
    pub client_id: String,
    /// The secret, if any.
    pub secret: Option<Zeroizing<String>>,
    /// Where they came from.
    pub method: AuthMethod,
}

debug_redacted!(ClientCredentials { client_id, method; secret });

/// A client whose credentials were checked.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    /// The client as stored.
    pub client: Client,
    /// How it authenticated; [`AuthMethod::None`] for a public client.
    pub method: AuthMethod,
}

impl AuthenticatedClient {
    /// Whether the client proved a secret (a confidential client).
    pub fn is_authenticated(&self) -> bool {
        self.method != AuthMethod::None
    }

    pub(crate) fn has_grant(&self, grant: GrantType) -> bool {
        self.client.grants.iter().any(|g| g == grant.as_str())
    }
}

/// Why an OAuth request was refused: the error codes of RFC 6749 §5.2 and RFC 7009
/// §2.2.1, plus the server's own (429, 503, 500).
#[derive(Debug)]
#[non_exhaustive]
pub enum OAuthError {
    /// `invalid_request` (400).
    InvalidRequest(String),
    /// `invalid_client` (401 with `WWW-Authenticate: Basic`).
    InvalidClient(String),
    /// `invalid_grant` (400).
    InvalidGrant(String),
    /// `unauthorized_client` (400).
    UnauthorizedClient(String),
    /// `unsupported_grant_type` (400).
    UnsupportedGrantType(String),
    /// `invalid_scope` (400).
    InvalidScope(String),
    /// `unsupported_token_type` (400, RFC 7009).
    UnsupportedTokenType(String),
    /// Too many failures; retry after this many seconds (429).
    RateLimited(i64),
    /// The database cannot be reached (503).
    Unavailable(String),
    /// Something failed inside; logged, never shown (500).
    Internal(String),
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<CryptoError> for OAuthError {
    fn from(e: CryptoError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<super::AuthError> for OAuthError {
    fn from(e: super::AuthError) -> Self {
        match e {
            super::AuthError::Unavailable(cause) => Self::Unavailable(cause),
            other => Self::Internal(format!("{other:?}")),
        }
    }
}

/// A token request, once its client credentials are read.
#[derive(Default)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `code` (`authorization_code`).
    pub code: Option<String>,
    /// `redirect_uri` (`authorization_code`).
    pub redirect_uri: Option<String>,
    /// `code_verifier` (`authorization_code`, PKCE).
    pub code_verifier: Option<String>,
    /// `refresh_token` (`refresh_token`).
    pub refresh_token: Option<String>,
}

debug_redacted!(TokenRequest { grant_type, scope, redirect_uri; code, code_verifier, refresh_token });

/// What the token endpoint issued.
pub struct IssuedToken {
    /// The access token.
    pub access_token: String,
    /// Its lifetime, seconds.
    pub expires_in: i64,
    /// The scope granted.
    pub scope: String,
    /// A refresh token (a grant with `offline_access`).
    pub refresh_token: Option<String>,
    /// An ID token (a grant with `openid`).
    pub id_token: Option<String>,
}

debug_redacted!(IssuedToken { expires_in, scope; access_token, refresh_token, id_token });

/// The kind of token a client says it presents (`token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

impl TokenHint {
    /// The hint of a `token_type_hint` value; `None` for a value this server has no
    /// such tokens of.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "access_token" => Some(Self::AccessToken),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }
}

/// What introspection found (RFC 7662 §2.2).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Introspection {
    /// Revoked, expired, garbled, unknown, or never this server's: nothing more is
    /// said.
    Inactive,
    /// A live access token.
    Access {
        /// Its verified claims.
        claims: Arc<AccessClaims>,
        /// The user's name, for a user's token.
        username: Option<String>,
    },
    /// A live, unspent refresh token.
    Refresh {
        /// Its family.
        family: Family,
        /// When the family ends if unused.
        exp: i64,
        /// The user's name.
        username: Option<String>,
    },
}

/// A byte that may appear in an RFC 6749 `error_description`.
fn description_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{21}' | '\u{23}'..='\u{5B}' | '\u{5D}'..='\u{7E}')
}

impl Core {
    /// Checks a client's credentials under the brute-force limits (failures count
    /// per client id and per address, as failed logins do). The secret is hashed
    /// and compared in constant time, also for an unknown client.
    pub async fn authenticate_client(
        &self,
        creds: ClientCredentials,
        ip: &str,
    ) -> Result<AuthenticatedClient, OAuthError> {
        let now = self.now();
        let s = &self.settings;
        let id = ClientId::parse(&creds.client_id).ok();
        let client_key =
            LimitKey::client(id.as_ref().map_or("", |i| i.as_str()), s.account_failures);
        let address = LimitKey::address(ip, s.address_failures);
        let reservation = match self
            .limiter
            .reserve(&[address, client_key.clone()], now)
            .await
        {
            Ok(r) => r,
            Err(wait) => {
                self.metrics.rate_limited();
                tracing::warn!(target: "audit", event = "client_auth_rate_limited", ip, "client authentication refused by the brute-force limit");
                return Err(OAuthError::RateLimited(wait));
            }
        };
        let client = match &id {
            Some(id) => match self.client(id.as_str()).await {
                Ok(c) => c,
                Err(e) => {
                    // A failure of ours is no guess.
                    self.limiter.refund(reservation).await;
                    return Err(e.into());
                }
            },
            None => None,
        };
        let presented = creds.secret.as_deref().map(|s| crypto::hash_secret(s));
        let (ok, proved) = match (&client, &presented) {
            (Some(c), Some(p)) => (
                c.secret_hash
                    .as_deref()
                    .is_some_and(|h| crypto::ct_eq(h, p)),
                true,
            ),
            // A public client identifies itself with its id alone.
            (Some(c), None) => (
                c.secret_hash.is_none() && creds.method == AuthMethod::None,
                false,
            ),
            (None, Some(p)) => {
                // The same work as for a known client.
                let _ = crypto::ct_eq(&UNKNOWN_CLIENT_HASH, p);
                (false, false)
            }
            (None, None) => (false, false),
        };
        match client {
            Some(client) if ok => {
                if proved {
                    self.limiter
                        .refund_and_clear(reservation, &client_key)
                        .await;
                } else {
                    self.limiter.refund(reservation).await;
                }
                Ok(AuthenticatedClient {
                    client: Arc::unwrap_or_clone(client),
                    method: creds.method,
                })
            }
            _ => {
                // The reserved failure stays counted.
                drop(reservation);
                self.metrics.oauth(OAuthOp::ClientAuthFailure);
                let client_id = id.as_ref().map_or("(not a client id)", |i| i.as_str());
                tracing::info!(target: "audit", event = "client_auth_failure", client_id, ip, method = ?creds.method, "OAuth client authentication failed");
                Err(OAuthError::InvalidClient(
                    "client authentication failed".into(),
                ))
            }
        }
    }

    /// The token endpoint: authenticates the client, then runs its grant. Counted
    /// per grant and outcome.
    pub async fn token(
        &self,
        creds: Option<ClientCredentials>,
        req: TokenRequest,
        ip: &str,
    ) -> Result<IssuedToken, OAuthError> {
        let label = GrantLabel::of(req.grant_type.as_deref());
        let r = self.token_inner(creds, req, ip).await;
        self.metrics.grant(label, r.is_ok());
        r
    }

    async fn token_inner(
        &self,
        creds: Option<ClientCredentials>,
        req: TokenRequest,
        ip: &str,
    ) -> Result<IssuedToken, OAuthError> {
        let Some(creds) = creds else {
            return Err(OAuthError::InvalidClient(
                "no client authentication: use HTTP Basic, or client_id and client_secret in the body"
                    .into(),
            ));
        };
        let client = self.authenticate_client(creds, ip).await?;
        let Some(grant_type) = req.grant_type.as_deref() else {
            return Err(OAuthError::InvalidRequest("grant_type is missing".into()));
        };
        match GrantType::parse(grant_type) {
            Ok(GrantType::ClientCredentials) => {
                self.client_credentials(&client, req.scope.as_deref())
            }
            Ok(GrantType::AuthorizationCode) => self.authorization_code(&client, &req, ip).await,
            Ok(GrantType::RefreshToken) => self.refresh_grant(&client, &req, ip).await,
            Err(_) => Err(OAuthError::UnsupportedGrantType(
                "the grant type is not one this server supports".into(),
            )),
        }
    }

    /// The `client_credentials` grant (RFC 6749 §4.4): a confidential client acting
    /// for itself gets an access token whose `sub` is its id. The scope asked for
    /// must be within the client's; without one, the client's scopes are granted.
    /// Scopes that name something of a user (`openid`, `offline_access`, ...) mean
    /// nothing here and are refused (and left out of the default).
    pub fn client_credentials(
        &self,
        c: &AuthenticatedClient,
        scope: Option<&str>,
    ) -> Result<IssuedToken, OAuthError> {
        if !c.is_authenticated() {
            return Err(OAuthError::InvalidClient(
                "the client_credentials grant needs client authentication, and this client is public"
                    .into(),
            ));
        }
        if !c.has_grant(GrantType::ClientCredentials) {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use the client_credentials grant".into(),
            ));
        }
        let registered = Scope::from_tokens(c.client.scopes.iter().map(String::as_str))
            .map_err(|e| OAuthError::Internal(format!("a stored scope does not parse: {e}")))?;
        let granted = match scope {
            None => registered.without(|t| USER_SCOPES.contains(&t)),
            Some(raw) => {
                let asked = Scope::parse(raw).map_err(|e| {
                    OAuthError::InvalidScope(
                        format!("the scope is malformed: {e}")
                            .chars()
                            .filter(|&c| description_char(c))
                            .collect(),
                    )
                })?;
                if let Some(t) = asked.tokens().find(|t| USER_SCOPES.contains(t)) {
                    return Err(OAuthError::InvalidScope(format!(
                        "{t} is about a user, and a client acting for itself has none"
                    )));
                }
                let outside: Vec<&str> = asked.outside(&registered).collect();
                if !outside.is_empty() {
                    return Err(OAuthError::InvalidScope(format!(
                        "not registered for this client: {}",
                        outside.join(" ")
                    )));
                }
                asked
            }
        };
        let scope = granted.to_string();
        if scope.is_empty() {
            // RFC 6749 §3.3: no default to grant, so the request fails.
            return Err(OAuthError::InvalidScope(
                "this client has no scope a client acting for itself can be granted".into(),
            ));
        }
        let now = self.now();
        let claims = AccessClaims::client(self.token_issue(now)?, &c.client.id, &scope);
        let access_token =
            tokens::mint(&self.keys, &claims).map_err(|e| OAuthError::Internal(e.to_string()))?;
        self.metrics.op(TokenOp::AccessIssued);
        Ok(IssuedToken {
            access_token,
            expires_in: self.settings.access_ttl,
            scope,
            refresh_token: None,
            id_token: None,
        })
    }

    /// Introspection (RFC 7662): any authenticated (confidential) client may ask
    /// about any token. An access token that verifies and is not revoked, or a
    /// refresh token that is unspent in a live family, is active; anything else is
    /// `Inactive`, with nothing more said.
    pub async fn introspect(
        &self,
        c: &AuthenticatedClient,
        token: &str,
    ) -> Result<Introspection, OAuthError> {
        if !c.is_authenticated() {
            return Err(OAuthError::InvalidClient(
                "introspection needs client authentication, and this client is public".into(),
            ));
        }
        let found = if looks_like_jwt(token) {
            match self.verifier.verify(token).await {
                Ok(claims) => {
                    let username = match claims.kind() {
                        Some(TokenKind::Session { username, .. }) => Some(username.to_string()),
                        Some(TokenKind::UserGrant { .. }) => self
                            .store
                            .user_by_id(&claims.sub)
                            .await?
                            .map(|u| u.username),
                        _ => None,
                    };
                    Introspection::Access { claims, username }
                }
                Err(_) => Introspection::Inactive,
            }
        } else if looks_like_refresh(token) {
            let policy = self.settings.family;
            match self
                .store
                .unspent_refresh_family(&crypto::hash_secret(token), self.now(), policy)
                .await?
            {
                Some(family) => {
                    let exp = (family.last_used_at + policy.idle)
                        .min(family.created_at + policy.absolute);
                    let username = self
                        .store
                        .user_by_id(&family.user_id)
                        .await?
                        .map(|u| u.username);
                    Introspection::Refresh {
                        family,
                        exp,
                        username,
                    }
                }
                None => Introspection::Inactive,
            }
        } else {
            Introspection::Inactive
        };
        self.metrics.oauth(match found {
            Introspection::Inactive => OAuthOp::IntrospectionInactive,
            _ => OAuthOp::IntrospectionActive,
        });
        Ok(found)
    }

    /// Revocation (RFC 7009): a token of this client is revoked (an access token
    /// by its `jti` on the denylist, through the same path as logout, so that every
    /// node and the revocation feed see it; a refresh token with its whole family);
    /// a token that is unknown, already dead, or another client's changes nothing
    /// and is no error (§2.1). The hint only orders the search, which covers both
    /// kinds whatever it says.
    pub async fn revoke(
        &self,
        c: &AuthenticatedClient,
        token: &str,
        _hint: Option<TokenHint>,
    ) -> Result<(), OAuthError> {
        let now = self.now();
        if looks_like_jwt(token) {
            let Ok(claims) = self.verifier.verify(token).await else {
                return Ok(());
            };
            if claims.client_id.as_deref() != Some(c.client.id.as_str()) {
                tracing::debug!(client_id = %c.client.id, "revocation of a token of another client: nothing revoked");
                return Ok(());
            }
            let entry = DenyEntry {
                kind: DenyKind::Jti,
                value: claims.jti.clone(),
                cutoff: 0,
                expires_at: claims.exp + 1,
            };
            self.deny(std::slice::from_ref(&entry)).await?;
            self.metrics.op(TokenOp::Revoked);
            self.metrics.oauth(OAuthOp::Revocation);
            tracing::info!(target: "audit", event = "token_revoked", token_type = "access_token", client_id = %c.client.id, sub = %claims.sub, jti = %claims.jti, "access token revoked by its client");
            return Ok(());
        }
        if !looks_like_refresh(token) {
            return Ok(());
        }
        let Some(family) = self
            .store
            .family_of_refresh(&crypto::hash_secret(token), now, self.settings.family)
            .await?
        else {
            return Ok(());
        };
        if family.client_id.as_deref() != Some(c.client.id.as_str()) {
            tracing::debug!(client_id = %c.client.id, "revocation of a refresh token of another client: nothing revoked");
            return Ok(());
        }
        if self
            .store
            .revoke_family(&family.id, None, now, "oauth_revoke")
            .await?
        {
            self.deny_sessions(std::slice::from_ref(&family.id), now)
                .await?;
            self.metrics.op(TokenOp::Revoked);
            self.metrics.oauth(OAuthOp::Revocation);
            tracing::info!(target: "audit", event = "token_revoked", token_type = "refresh_token", client_id = %c.client.id, user_id = %family.user_id, sid = %family.id, "refresh token (and its family) revoked by its client");
        }
        Ok(())
    }
}

/// What an unknown client's presented secret is compared with, so that an unknown
/// client costs what a known one does.
const UNKNOWN_CLIENT_HASH: [u8; 32] = [0; 32];

/// A compact JWS has three parts; a refresh token is one base64url word.
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

fn looks_like_refresh(token: &str) -> bool {
    (1..=128).contains(&token.len())
}
