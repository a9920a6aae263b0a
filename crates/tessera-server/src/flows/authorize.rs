//! The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2): the
//! request checked in the order that decides where an error may go, the provider's
//! single sign-on session, consent, and the code.
//!
//! - The client and the redirect URI are checked first. Until both are known good
//!   (the URI registered for the client, character for character), an error is
//!   shown on a page and never redirected: a redirect would make the server an
//!   open redirector (RFC 6749 §4.1.2.1, RFC 9700 §4.1).
//! - Every later error is redirected to the client, with `state` and `iss`.
//! - The provider's session is a cookie of its own whose id is kept hashed in the
//!   [`SessionStore`](crate::store::SessionStore) (the database, or Redis shared by
//!   the nodes), with the login time as `auth_time`. A second client, or the same
//!   one later, gets a code without the password until the session ends, or
//!   `max_age` or `prompt=login` asks again.
//! - A request waiting for the login or consent page is sealed (AES-256-GCM under a
//!   key derived from the key-encryption key, so any node opens it) into a cookie
//!   that lives ten minutes, with a CSRF token the page's form must echo: the POSTs
//!   of the pages carry no request parameter at all, and nothing of the request is
//!   trusted from a hidden field.

use serde::{Deserialize, Serialize};

use crate::crypto::{self, SealKey};
use crate::domain::{GrantType, Scope};
use crate::http::FormParams;
use crate::metrics::OAuthOp;
use crate::redact::debug_redacted;
use crate::store::{AuthCode, Client, ServerSession, StoreError, User};

use super::{AuthError, Core};

/// How long an authorization code may be redeemed, seconds.
pub const CODE_TTL: i64 = 60;
/// How long a request may wait for its login and consent, seconds.
pub const TRANSACTION_TTL: i64 = 600;

/// The parameters the authorization endpoint reads; each may be given once.
pub const AUTHORIZE_PARAMETERS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "response_mode",
    "request",
    "request_uri",
];

const MAX_STATE: usize = 1024;
const MAX_NONCE: usize = 512;
const MAX_LOGIN_HINT: usize = 256;

/// An authorization request whose client and redirect URI are known good, and whose
/// every parameter passed its rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// The client.
    pub client_id: String,
    /// The redirect URI, as registered.
    pub redirect_uri: String,
    /// `response_mode=form_post`.
    pub form_post: bool,
    /// `state`, returned as sent.
    pub state: Option<String>,
    /// `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// The scope asked for, within the client's.
    pub scope: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// `prompt=none`.
    pub prompt_none: bool,
    /// `prompt=login`.
    pub prompt_login: bool,
    /// `prompt=consent`.
    pub prompt_consent: bool,
    /// `max_age`, seconds.
    pub max_age: Option<i64>,
    /// `login_hint`, to prefill the username.
    pub login_hint: Option<String>,
}

impl AuthorizeRequest {
    /// Where and how its answer goes.
    pub fn return_to(&self) -> ReturnTo {
        ReturnTo {
            redirect_uri: self.redirect_uri.clone(),
            form_post: self.form_post,
            state: self.state.clone(),
        }
    }
}

/// Where and how an authorization response goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTo {
    /// The client's redirect URI.
    pub redirect_uri: String,
    /// An auto-submitting form (`form_post`) instead of a redirect (`query`).
    pub form_post: bool,
    /// `state`, returned as sent.
    pub state: Option<String>,
}

/// An authorization response: its parameters, `iss` (RFC 9207) and `state`
/// included, and where they go.
#[derive(Clone)]
pub struct AuthorizeResponse {
    /// Where.
    pub to: ReturnTo,
    /// What, in order.
    pub params: Vec<(&'static str, String)>,
}

debug_redacted!(AuthorizeResponse { to; params });

/// Why an authorization request was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthorizeError {
    /// The client or the redirect URI is not known good: shown on a page (400),
    /// never redirected.
    Page(String),
    /// Redirected to the client.
    Redirect(AuthorizeResponse),
    /// The database cannot be reached (503).
    Unavailable(String),
    /// Something failed inside (500).
    Internal(String),
}

impl From<StoreError> for AuthorizeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(c) => Self::Unavailable(c),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<AuthError> for AuthorizeError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unavailable(c) => Self::Unavailable(c),
            other => Self::Internal(format!("{other:?}")),
        }
    }
}

impl From<crypto::CryptoError> for AuthorizeError {
    fn from(e: crypto::CryptoError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// The provider's single sign-on session of a browser.
#[derive(Debug, Clone)]
pub struct OpSession {
    /// Its public id: the `sid` of ID tokens (not the cookie's secret value).
    pub sid: String,
    /// Its user.
    pub user: User,
    /// When the user logged in.
    pub auth_time: i64,
    id_hash: Vec<u8>,
}

/// What an authorization request needs next.
#[derive(Debug)]
#[non_exhaustive]
pub enum Next {
    /// The login page.
    Login,
    /// The consent page, for these scope tokens of this client.
    Consent {
        /// The client.
        client: Box<Client>,
        /// Every scope token asked for (the page names each).
        scopes: Vec<String>,
    },
    /// The answer to the client.
    Respond(AuthorizeResponse),
}

/// A request waiting for its login or consent, sealed into a cookie.
#[derive(Serialize, Deserialize)]
pub struct Transaction {
    /// The request.
    pub request: AuthorizeRequest,
    /// The CSRF token the page's form echoes.
    pub csrf: String,
    /// It ends then.
    pub exp: i64,
}

debug_redacted!(Transaction { request, exp; csrf });

impl Core {
    /// Checks an authorization request, client and redirect URI first.
    pub async fn parse_authorize(
        &self,
        params: &FormParams,
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        let Some(client_id) = params.get("client_id") else {
            return Err(AuthorizeError::Page(
                "The request names no client (client_id is missing).".into(),
            ));
        };
        let client = match crate::domain::ClientId::parse(client_id) {
            Ok(id) => self.store.client_by_id(id.as_str()).await?,
            Err(_) => None,
        };
        let Some(client) = client else {
            return Err(AuthorizeError::Page(
                "The application that sent you here is not registered with this server.".into(),
            ));
        };
        let Some(redirect_uri) = params.get("redirect_uri") else {
            return Err(AuthorizeError::Page(
                "The request has no redirect_uri; the application must send the one it registered."
                    .into(),
            ));
        };
        if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
            return Err(AuthorizeError::Page(
                "The redirect_uri is not one the application registered, so you were not sent back to it."
                    .into(),
            ));
        }
        // From here on, errors go back to the client.
        let form_post = params.get("response_mode") == Some("form_post");
        let state = params.get("state").map(str::to_string);
        let to = ReturnTo {
            redirect_uri: redirect_uri.to_string(),
            form_post,
            state: state.clone().filter(|s| s.len() <= MAX_STATE),
        };
        let refuse = |error: &'static str, description: &str| {
            AuthorizeError::Redirect(self.error_response(&to, error, description))
        };
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
            return Err(refuse("invalid_request", "state is longer than 1024 bytes"));
        }
        match params.get("response_mode") {
            None | Some("query" | "form_post") => {}
            Some(_) => {
                return Err(refuse(
                    "invalid_request",
                    "response_mode must be query or form_post",
                ));
            }
        }
        if params.get("request").is_some() {
            return Err(refuse(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        if params.get("request_uri").is_some() {
            return Err(refuse(
                "request_uri_not_supported",
                "request_uri is not supported",
            ));
        }
        match params.get("response_type") {
            Some("code") => {}
            None => return Err(refuse("invalid_request", "response_type is missing")),
            Some(_) => {
                return Err(refuse(
                    "unsupported_response_type",
                    "only response_type=code is supported (no implicit or hybrid flow, RFC 9700)",
                ));
            }
        }
        if !client
            .grants
            .iter()
            .any(|g| g == GrantType::AuthorizationCode.as_str())
        {
            return Err(refuse(
                "unauthorized_client",
                "this client may not use the authorization code grant",
            ));
        }
        let Some(raw_scope) = params.get("scope") else {
            return Err(refuse("invalid_scope", "scope is missing"));
        };
        let Ok(scope) = Scope::parse(raw_scope) else {
            return Err(refuse("invalid_scope", "the scope is malformed"));
        };
        let registered = Scope::from_tokens(client.scopes.iter().map(String::as_str))
            .map_err(|e| AuthorizeError::Internal(format!("a stored scope does not parse: {e}")))?;
        if scope.outside(&registered).next().is_some() {
            return Err(refuse(
                "invalid_scope",
                "the scope asks for more than the client is registered for",
            ));
        }
        let Some(challenge) = params.get("code_challenge") else {
            return Err(refuse(
                "invalid_request",
                "code_challenge is missing: PKCE (S256) is required for every client",
            ));
        };
        if params.get("code_challenge_method") != Some("S256") {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not accepted)",
            ));
        }
        if challenge.len() != 43
            || !challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(refuse(
                "invalid_request",
                "code_challenge is not a base64url SHA-256 (43 characters)",
            ));
        }
        let nonce = params.get("nonce").map(str::to_string);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE) {
            return Err(refuse("invalid_request", "nonce is longer than 512 bytes"));
        }
        let (mut none, mut login, mut consent) = (false, false, false);
        if let Some(prompt) = params.get("prompt") {
            for p in prompt.split(' ') {
                match p {
                    "none" => none = true,
                    "login" => login = true,
                    "consent" => consent = true,
                    _ => {
                        return Err(refuse(
                            "invalid_request",
                            "prompt must be none, login or consent",
                        ));
                    }
                }
            }
            if none && (login || consent) {
                return Err(refuse(
                    "invalid_request",
                    "prompt=none cannot go with another prompt value",
                ));
            }
        }
        let max_age = match params.get("max_age") {
            None => None,
            Some(m) => match m.parse::<i64>() {
                Ok(v) if (0..=10 * 365 * 86_400).contains(&v) => Some(v),
                _ => {
                    return Err(refuse(
                        "invalid_request",
                        "max_age must be a number of seconds",
                    ));
                }
            },
        };
        let login_hint = params
            .get("login_hint")
            .filter(|h| h.len() <= MAX_LOGIN_HINT)
            .map(str::to_string);
        Ok(AuthorizeRequest {
            client_id: client.id,
            redirect_uri: redirect_uri.to_string(),
            form_post,
            state,
            nonce,
            scope: scope.to_string(),
            code_challenge: challenge.to_string(),
            prompt_none: none,
            prompt_login: login,
            prompt_consent: consent,
            max_age,
            login_hint,
        })
    }

    /// What the request needs next, given the browser's session. `just_logged_in`:
    /// the session was started by this request's login page (`prompt=login` and
    /// `max_age` are then met); `consented`: its consent page was just allowed.
    pub async fn authorize_next(
        &self,
        req: &AuthorizeRequest,
        session: Option<&OpSession>,
        just_logged_in: bool,
        consented: bool,
    ) -> Result<Next, AuthorizeError> {
        let to = req.return_to();
        let now = self.now();
        let fresh = session.filter(|s| {
            just_logged_in
                || (!req.prompt_login && req.max_age.is_none_or(|m| now - s.auth_time <= m))
        });
        let Some(session) = fresh else {
            if req.prompt_none {
                return Ok(Next::Respond(self.error_response(
                    &to,
                    "login_required",
                    "the user is not signed in, and prompt=none forbids asking",
                )));
            }
            return Ok(Next::Login);
        };
        if !consented {
            let given = self
                .store
                .consented_scopes(&session.user.id, &req.client_id)
                .await?;
            let missing = req.scope.split(' ').any(|t| !given.iter().any(|g| g == t));
            if missing || req.prompt_consent {
                if req.prompt_none {
                    return Ok(Next::Respond(self.error_response(
                        &to,
                        "consent_required",
                        "the user has not consented to this scope, and prompt=none forbids asking",
                    )));
                }
                let Some(client) = self.store.client_by_id(&req.client_id).await? else {
                    return Err(AuthorizeError::Page(
                        "The application is no longer registered.".into(),
                    ));
                };
                return Ok(Next::Consent {
                    client: Box::new(client),
                    scopes: req.scope.split(' ').map(str::to_string).collect(),
                });
            }
        }
        self.issue_code(req, session).await.map(Next::Respond)
    }

    /// Records the user's consent to the request's scope.
    pub async fn consent(&self, req: &AuthorizeRequest, user: &User) -> Result<(), AuthError> {
        let scopes: Vec<String> = req.scope.split(' ').map(str::to_string).collect();
        self.store
            .grant_consent(&user.id, &req.client_id, &scopes, self.now())
            .await?;
        self.metrics.oauth(OAuthOp::ConsentGranted);
        tracing::info!(target: "audit", event = "consent_granted", user_id = %user.id, client_id = %req.client_id, scope = %req.scope, "consent granted");
        Ok(())
    }

    /// The answer to a denied consent: `access_denied`, redirected.
    pub fn consent_denied(&self, req: &AuthorizeRequest, user: &User) -> AuthorizeResponse {
        self.metrics.oauth(OAuthOp::ConsentDenied);
        tracing::info!(target: "audit", event = "consent_denied", user_id = %user.id, client_id = %req.client_id, scope = %req.scope, "consent denied");
        self.error_response(
            &req.return_to(),
            "access_denied",
            "the user denied the request",
        )
    }

    async fn issue_code(
        &self,
        req: &AuthorizeRequest,
        session: &OpSession,
    ) -> Result<AuthorizeResponse, AuthorizeError> {
        let now = self.now();
        let code = crypto::random_token()?;
        self.store
            .create_code(&AuthCode {
                hash: crypto::hash_secret(&code),
                client_id: req.client_id.clone(),
                user_id: session.user.id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                scope: req.scope.clone(),
                code_challenge: req.code_challenge.clone(),
                nonce: req.nonce.clone(),
                auth_time: session.auth_time,
                op_sid: session.sid.clone(),
                created_at: now,
                expires_at: now + CODE_TTL,
            })
            .await?;
        self.metrics.oauth(OAuthOp::CodeIssued);
        tracing::info!(target: "audit", event = "code_issued", user_id = %session.user.id, client_id = %req.client_id, scope = %req.scope, "authorization code issued");
        let mut params = vec![("code", code)];
        if let Some(s) = &req.state {
            params.push(("state", s.clone()));
        }
        params.push(("iss", self.settings.issuer.clone()));
        Ok(AuthorizeResponse {
            to: req.return_to(),
            params,
        })
    }

    /// An error answer to the client: `error`, `error_description`, `state`, `iss`.
    pub fn error_response(
        &self,
        to: &ReturnTo,
        error: &'static str,
        description: &str,
    ) -> AuthorizeResponse {
        let mut params = vec![
            ("error", error.to_string()),
            ("error_description", description.to_string()),
        ];
        if let Some(s) = &to.state {
            params.push(("state", s.clone()));
        }
        params.push(("iss", self.settings.issuer.clone()));
        AuthorizeResponse {
            to: to.clone(),
            params,
        }
    }

    // ----- the provider's session ------------------------------------------------

    /// The live provider session of this cookie value, if any (extending it when
    /// due), with its user.
    pub async fn op_session(&self, cookie: Option<&str>) -> Result<Option<OpSession>, AuthError> {
        let Some(id) = cookie.filter(|c| !c.is_empty() && c.len() <= 128) else {
            return Ok(None);
        };
        let id_hash = op_session_hash(id);
        let Some(s) = self
            .session_store()?
            .touch_server_session(&id_hash, self.now(), self.settings.session_ttl)
            .await?
        else {
            return Ok(None);
        };
        let Some(user) = self.store.user_by_id(&s.user_id).await? else {
            return Ok(None);
        };
        Ok(Some(OpSession {
            sid: op_sid(id),
            user,
            auth_time: s.created_at,
            id_hash,
        }))
    }

    /// Starts a provider session for `user`, who just logged in: the cookie value
    /// (secret; the store keeps its hash) and the session.
    pub async fn start_op_session(&self, user: User) -> Result<(String, OpSession), AuthError> {
        let now = self.now();
        let id = crypto::random_token()?;
        let id_hash = op_session_hash(&id);
        let sid = op_sid(&id);
        self.session_store()?
            .create_server_session(&ServerSession {
                id_hash: id_hash.clone(),
                user_id: user.id.clone(),
                // The provider session has no CSRF token of its own (its forms are
                // bound to the authorization request): the field holds its sid's hash.
                csrf_hash: crypto::hash_secret(&sid),
                created_at: now,
                last_used_at: now,
                expires_at: now + self.settings.session_ttl,
            })
            .await?;
        tracing::info!(target: "audit", event = "provider_login", user_id = %user.id, sid = %sid, "signed in at the provider");
        Ok((
            id,
            OpSession {
                sid,
                user,
                auth_time: now,
                id_hash,
            },
        ))
    }

    /// Ends a provider session (its cookie is cleared by the caller).
    pub async fn drop_op_session(&self, session: &OpSession) -> Result<(), AuthError> {
        self.session_store()?
            .delete_server_session(&session.id_hash)
            .await?;
        Ok(())
    }

    // ----- the sealed request ----------------------------------------------------

    /// Seals `request` for the login and consent pages: the cookie value and the
    /// CSRF token the pages' forms carry.
    pub fn seal_transaction(
        &self,
        request: &AuthorizeRequest,
    ) -> Result<(String, String), AuthError> {
        let csrf = crypto::random_token()?;
        let tx = Transaction {
            request: request.clone(),
            csrf: csrf.clone(),
            exp: self.now() + TRANSACTION_TTL,
        };
        let json = serde_json::to_vec(&tx).map_err(|e| AuthError::Internal(e.to_string()))?;
        let sealed = self.tx_key.seal(&json, TX_AAD)?;
        use base64::Engine as _;
        Ok((
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed),
            csrf,
        ))
    }

    /// The request sealed in a transaction cookie, if it opens and has not expired.
    pub fn open_transaction(&self, cookie: Option<&str>) -> Option<Transaction> {
        use base64::Engine as _;
        let raw = cookie.filter(|c| c.len() <= 8 * 1024)?;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .ok()?;
        let json = self.tx_key.open(&sealed, TX_AAD).ok()?;
        let tx: Transaction = serde_json::from_slice(&json).ok()?;
        (tx.exp > self.now()).then_some(tx)
    }
}

/// The additional data every transaction cookie is sealed with.
const TX_AAD: &[u8] = b"tessera authorization transaction";

/// The key transaction cookies are sealed under, derived from the key-encryption
/// key (so every node opens what any node sealed).
pub(crate) fn transaction_key(kek: &SealKey) -> SealKey {
    SealKey::new(*kek.subkey("tessera authorization transaction"))
}

/// How a provider session id is stored: hashed under a label of its own, so that
/// the value of one kind of cookie never finds a session of another kind.
fn op_session_hash(id: &str) -> Vec<u8> {
    crypto::hash_secret(&format!("tessera provider session\0{id}"))
}

/// The public id of a provider session (its ID tokens' `sid`): 128 bits of a hash
/// of the secret id under another label.
fn op_sid(id: &str) -> String {
    use base64::Engine as _;
    let h = crypto::hash_secret(&format!("tessera provider sid\0{id}"));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h[..16])
}
