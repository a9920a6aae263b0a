//! One error type for every answer that is not a success, with one `IntoResponse`:
//! `{"error": CODE, "error_description": TEXT}` and the fitting status.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::flows::{AuthError, OAuthError};

/// Seconds a client is told to wait when the database does not answer.
pub const UNAVAILABLE_RETRY_AFTER: i64 = 5;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    description: Cow<'static, str>,
    www_authenticate: Option<&'static str>,
    retry_after: Option<i64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ApiError {
    /// Any status, code and description.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            www_authenticate: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 401 `invalid_grant`: the credentials or the refresh token are not good.
    pub fn invalid_grant() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "the credentials or the refresh token are invalid",
        )
    }

    /// 401 from a bearer-protected route without a token.
    pub fn missing_token() -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "this route needs a bearer token",
        );
        e.www_authenticate = Some("Bearer");
        e
    }

    /// 400 from a bearer-protected route whose `Authorization` is malformed (two of
    /// them, say), as RFC 6750 §3.1 has it.
    pub fn malformed_authorization(description: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request", description);
        e.www_authenticate = Some("Bearer error=\"invalid_request\"");
        e
    }

    /// 401 from a bearer-protected route whose token was refused.
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_token", description);
        e.www_authenticate = Some("Bearer error=\"invalid_token\"");
        e
    }

    /// 403 with `WWW-Authenticate: Bearer error="insufficient_scope"` (RFC 6750
    /// §3.1): the token is good but lacks the scope `openid`.
    pub fn insufficient_scope(description: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(StatusCode::FORBIDDEN, "insufficient_scope", description);
        e.www_authenticate = Some("Bearer error=\"insufficient_scope\", scope=\"openid\"");
        e
    }

    /// 403: a cookie-authenticated change without the right `X-CSRF-Token`.
    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_csrf_token",
            "X-CSRF-Token is missing or does not match the tessera_csrf cookie",
        )
    }

    /// 404 `not_found`.
    pub fn not_found(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", description)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after: i64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many failed attempts; try again later",
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 503 `temporarily_unavailable` with `Retry-After`: the database or Redis does
    /// not answer. The cause is logged at debug level, never sent: the outage itself
    /// is logged once, when the node's background work notices it (`sync`), not
    /// once per request.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::debug!(error = %cause, "a dependency is unavailable");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the server's storage does not answer; try again shortly",
        );
        e.retry_after = Some(UNAVAILABLE_RETRY_AFTER);
        e
    }

    /// 500 with a generic body; the cause is logged here, once, and never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the server failed; the error was logged",
        )
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(Body {
                error: self.code,
                error_description: &self.description,
            }),
        )
            .into_response();
        if let Some(w) = self.www_authenticate {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(w));
        }
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

impl ApiError {
    /// 413.
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the request body is too large",
        )
    }
}

impl ApiError {
    /// 401 `invalid_client` with `WWW-Authenticate: Basic realm="tessera"`: the
    /// client did not authenticate. RFC 6749 §5.2 asks for 401 and the challenge when
    /// Basic was used and allows 400 otherwise; the answer is 401 always (a 401
    /// carries a challenge, RFC 9110 §15.5.2), as most providers answer.
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description);
        e.www_authenticate = Some("Basic realm=\"tessera\"");
        e
    }
}

impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        let bad = |code, m| Self::new(StatusCode::BAD_REQUEST, code, m);
        match e {
            OAuthError::InvalidRequest(m) => Self::invalid_request(m),
            OAuthError::InvalidClient(m) => Self::invalid_client(m),
            OAuthError::InvalidGrant(m) => bad("invalid_grant", m),
            OAuthError::UnauthorizedClient(m) => bad("unauthorized_client", m),
            OAuthError::UnsupportedGrantType(m) => bad("unsupported_grant_type", m),
            OAuthError::InvalidScope(m) => bad("invalid_scope", m),
            OAuthError::UnsupportedTokenType(m) => bad("unsupported_token_type", m),
            OAuthError::RateLimited(secs) => Self::rate_limited(secs),
            OAuthError::Unavailable(cause) => Self::unavailable(cause),
            OAuthError::Internal(cause) => Self::internal(cause),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidInput(msg) => Self::invalid_request(msg),
            AuthError::InvalidGrant => Self::invalid_grant(),
            AuthError::UsernameTaken => Self::new(
                StatusCode::CONFLICT,
                "username_taken",
                "the username is taken",
            ),
            AuthError::RateLimited(secs) => Self::rate_limited(secs),
            AuthError::SessionLimit => Self::new(
                StatusCode::FORBIDDEN,
                "session_limit_reached",
                "the user has the most concurrent sessions allowed; end one first",
            ),
            AuthError::NotFound => Self::not_found("no such session"),
            AuthError::Unavailable(cause) => Self::unavailable(cause),
            AuthError::Internal(cause) => Self::internal(cause),
        }
    }
}
