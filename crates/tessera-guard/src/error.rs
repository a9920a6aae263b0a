//! The guard's refusals: one type, rendered as RFC 6750 answers.

use std::borrow::Cow;
use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_jose::ErrorKind;

/// Why a request was refused, in a form programs match on.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionKind {
    /// No bearer token was presented (401, `WWW-Authenticate: Bearer` without an
    /// error code, as RFC 6750 §3.1 says).
    MissingToken,
    /// The request is malformed, e.g. two `Authorization` headers (400,
    /// `invalid_request`).
    InvalidRequest,
    /// A token was presented and refused: garbled, tampered, expired, wrong issuer or
    /// audience, unknown key, revoked (401, `invalid_token`).
    InvalidToken,
    /// The token is valid but lacks a required role or scope (403,
    /// `insufficient_scope`).
    InsufficientScope,
    /// The keys could not be obtained (the JWKS URL never answered): 503,
    /// `temporarily_unavailable`. Not the client's fault, so not a 401.
    KeysUnavailable,
    /// The route uses an extractor of this crate but no [`GuardLayer`](crate::GuardLayer)
    /// ran before it: a programming error, answered 500 (`server_error`).
    NotGuarded,
}

/// A refusal, answered as JSON `{"error", "error_description"}` with the fitting
/// status and `WWW-Authenticate` header.
///
/// The description is safe to show: it never contains the token or key material,
/// only names of claims and algorithms.
#[derive(Clone)]
pub struct GuardError {
    kind: RejectionKind,
    description: Cow<'static, str>,
    jose: Option<ErrorKind>,
    scope: Option<String>,
    realm: Option<std::sync::Arc<str>>,
}

impl GuardError {
    /// A refusal of `kind` with a human-readable description.
    pub fn new(kind: RejectionKind, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            description: description.into(),
            jose: None,
            scope: None,
            realm: None,
        }
    }

    /// No bearer token.
    pub fn missing_token() -> Self {
        Self::new(
            RejectionKind::MissingToken,
            "a bearer token is required (Authorization: Bearer <token>)",
        )
    }

    /// A presented token was refused.
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectionKind::InvalidToken, description)
    }

    /// The token lacks a role or scope. `scope` (space-separated) names what the
    /// resource needs, and is echoed in `WWW-Authenticate` when given.
    pub fn insufficient_scope(
        description: impl Into<Cow<'static, str>>,
        scope: Option<String>,
    ) -> Self {
        let mut e = Self::new(RejectionKind::InsufficientScope, description);
        e.scope = scope;
        e
    }

    /// What went wrong.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The tessera-jose error kind behind an `invalid_token`, when there is one.
    pub fn jose_kind(&self) -> Option<ErrorKind> {
        self.jose
    }

    /// The human-readable description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::MissingToken | RejectionKind::InvalidToken => StatusCode::UNAUTHORIZED,
            RejectionKind::InvalidRequest => StatusCode::BAD_REQUEST,
            RejectionKind::InsufficientScope => StatusCode::FORBIDDEN,
            RejectionKind::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            RejectionKind::NotGuarded => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` code of the JSON body (RFC 6750 §3.1 codes where they apply). No
    /// token at all is `invalid_request` (a required credential is missing), as the
    /// Tessera server answers it; the challenge then carries no error code.
    pub fn code(&self) -> &'static str {
        match self.kind {
            RejectionKind::InvalidToken => "invalid_token",
            RejectionKind::MissingToken | RejectionKind::InvalidRequest => "invalid_request",
            RejectionKind::InsufficientScope => "insufficient_scope",
            RejectionKind::KeysUnavailable => "temporarily_unavailable",
            RejectionKind::NotGuarded => "server_error",
        }
    }

    /// The `WWW-Authenticate` value of the answer, if it has one (RFC 6750 §3):
    /// `Bearer` alone without a token; `Bearer error="...", error_description="..."`
    /// for a refused token, a malformed request or a missing scope.
    pub fn www_authenticate(&self) -> Option<String> {
        let mut params: Vec<String> = Vec::new();
        if let Some(realm) = &self.realm {
            params.push(format!("realm=\"{}\"", quoted(realm)));
        }
        match self.kind {
            RejectionKind::MissingToken => {}
            RejectionKind::InvalidRequest
            | RejectionKind::InvalidToken
            | RejectionKind::InsufficientScope => {
                params.push(format!("error=\"{}\"", self.code()));
                params.push(format!(
                    "error_description=\"{}\"",
                    quoted(&self.description)
                ));
                if let Some(scope) = &self.scope {
                    params.push(format!("scope=\"{}\"", quoted(scope)));
                }
            }
            RejectionKind::KeysUnavailable | RejectionKind::NotGuarded => return None,
        }
        if params.is_empty() {
            Some("Bearer".to_owned())
        } else {
            Some(format!("Bearer {}", params.join(", ")))
        }
    }

    pub(crate) fn from_jose(e: &tessera_jose::Error) -> Self {
        let mut g = Self::invalid_token(e.message().to_owned());
        g.jose = Some(e.kind());
        g
    }

    pub(crate) fn with_realm(mut self, realm: Option<&std::sync::Arc<str>>) -> Self {
        self.realm = realm.cloned();
        self
    }
}

impl fmt::Debug for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardError")
            .field("kind", &self.kind)
            .field("description", &self.description)
            .field("jose", &self.jose)
            .finish()
    }
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.description)
    }
}

impl std::error::Error for GuardError {}

impl IntoResponse for GuardError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.code(),
            "error_description": self.description(),
        });
        let mut res = (self.status(), axum::Json(body)).into_response();
        if let Some(value) = self.www_authenticate()
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        if self.kind == RejectionKind::KeysUnavailable {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// The characters RFC 6750 §3 allows inside `error_description` and `scope`
/// (%x20-21 / %x23-5B / %x5D-7E): everything else, quotes and backslashes included,
/// is replaced, so the header can neither break nor be injected into.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_rfc_6750() {
        assert_eq!(
            GuardError::missing_token().www_authenticate().as_deref(),
            Some("Bearer")
        );
        assert_eq!(
            GuardError::invalid_token("bad \"x\"\n")
                .www_authenticate()
                .as_deref(),
            Some("Bearer error=\"invalid_token\", error_description=\"bad 'x'?\"")
        );
        let e = GuardError::insufficient_scope("needs admin", Some("admin".into()));
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            e.www_authenticate().as_deref(),
            Some(
                "Bearer error=\"insufficient_scope\", error_description=\"needs admin\", scope=\"admin\""
            )
        );
        let realm: std::sync::Arc<str> = "api".into();
        assert_eq!(
            GuardError::missing_token()
                .with_realm(Some(&realm))
                .www_authenticate()
                .as_deref(),
            Some("Bearer realm=\"api\"")
        );
    }
}
