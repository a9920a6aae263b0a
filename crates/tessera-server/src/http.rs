//! HTTP plumbing shared by the routes: the application state, extractors whose
//! rejection is our [`ApiError`], cookies, and the bearer/cookie authentication.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use serde::de::DeserializeOwned;

use crate::crypto;
use crate::error::ApiError;
use crate::flows::Core;
use crate::tokens::AccessClaims;

/// The header that echoes the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The CSRF cookie (readable by scripts).
pub const CSRF_COOKIE: &str = "tessera_csrf";
/// The refresh cookie (scoped to /auth).
pub const REFRESH_COOKIE: &str = "tessera_rt";

/// Shared by every request.
#[derive(Clone, Debug)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The application: the flows plus what only HTTP needs.
#[derive(Debug)]
pub struct App {
    /// The flows.
    pub core: Core,
    /// Cookie attributes.
    pub cookies: CookiePolicy,
    /// The OpenAPI document, JSON.
    pub openapi: String,
}

/// How cookies are written.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    /// Secure attribute and `__Host-` prefix.
    pub secure: bool,
}

/// A cookie's SameSite attribute.
#[derive(Debug, Clone, Copy)]
pub enum SameSite {
    /// Lax.
    Lax,
    /// Strict.
    Strict,
}

impl CookiePolicy {
    /// The access-token cookie's name.
    pub fn access_name(&self) -> &'static str {
        if self.secure {
            "__Host-tessera_at"
        } else {
            "tessera_at"
        }
    }

    /// The stateful session cookie's name.
    pub fn session_name(&self) -> &'static str {
        if self.secure {
            "__Host-tessera_sid"
        } else {
            "tessera_sid"
        }
    }

    /// A `Set-Cookie` value.
    pub fn set(
        &self,
        name: &str,
        value: &str,
        path: &str,
        http_only: bool,
        same_site: SameSite,
        max_age: i64,
    ) -> HeaderValue {
        let mut s = format!("{name}={value}; Path={path}; Max-Age={}", max_age.max(0));
        if http_only {
            s.push_str("; HttpOnly");
        }
        s.push_str(match same_site {
            SameSite::Lax => "; SameSite=Lax",
            SameSite::Strict => "; SameSite=Strict",
        });
        if self.secure {
            s.push_str("; Secure");
        }
        // Values are base64url or JWTs and names are fixed, so the header is valid.
        HeaderValue::from_str(&s)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// The `Set-Cookie` values that clear every token cookie.
    pub fn clear_all(&self) -> Vec<HeaderValue> {
        vec![
            self.set(self.access_name(), "", "/", true, SameSite::Lax, 0),
            self.set(REFRESH_COOKIE, "", "/auth", true, SameSite::Strict, 0),
            self.set(CSRF_COOKIE, "", "/", false, SameSite::Lax, 0),
        ]
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Whether the request's `X-CSRF-Token` equals its `tessera_csrf` cookie and, when
/// given, the expected token; compared in constant time.
pub fn csrf_ok(headers: &HeaderMap, expected: Option<&str>) -> bool {
    let Some(sent) = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(cookie) = cookie(headers, CSRF_COOKIE) else {
        return false;
    };
    if sent.is_empty() || !crypto::ct_eq(sent.as_bytes(), cookie.as_bytes()) {
        return false;
    }
    expected.is_none_or(|e| crypto::ct_eq(sent.as_bytes(), e.as_bytes()))
}

/// A JSON body whose rejection is our error shape (400, 413, 415).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(r) => Err(r.into()),
        }
    }
}

/// An optional JSON body: an empty body is `None`; anything else must be JSON.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large()
            } else {
                ApiError::invalid_request("the body could not be read")
            }
        })?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if json_type != Some(true) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "the body must be JSON, with Content-Type: application/json",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(|v| Self(Some(v)))
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Data => {
                    ApiError::invalid_request("the body does not have the expected shape")
                }
                _ => ApiError::invalid_request("the body is not valid JSON"),
            })
    }
}

/// The client's address and User-Agent.
#[derive(Debug, Clone)]
pub struct Client {
    /// The peer address (no port), or "unknown".
    pub ip: String,
    /// The User-Agent header.
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        Ok(Self { ip, user_agent })
    }
}

/// A request authenticated by a bearer token, or by the access-token cookie (then
/// a state-changing request must pass the CSRF check).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The verified claims.
    pub claims: Arc<AccessClaims>,
    /// Whether the cookie carried the token.
    pub via_cookie: bool,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let core = &state.core;
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
            let token = auth
                .to_str()
                .ok()
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim())
                .filter(|t| !t.is_empty());
            let Some(token) = token else {
                return Err(ApiError::missing_token());
            };
            let claims = core
                .verify_access(token)
                .await
                .map_err(|r| ApiError::invalid_token(r.0))?;
            return Ok(Self {
                claims,
                via_cookie: false,
            });
        }
        let Some(token) = cookie(&parts.headers, state.cookies.access_name()) else {
            return Err(ApiError::missing_token());
        };
        let claims = core
            .verify_access(token)
            .await
            .map_err(|r| ApiError::invalid_token(r.0))?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && !csrf_ok(&parts.headers, Some(&core.csrf_for(&claims.sid))) {
            return Err(ApiError::csrf());
        }
        Ok(Self {
            claims,
            via_cookie: true,
        })
    }
}
