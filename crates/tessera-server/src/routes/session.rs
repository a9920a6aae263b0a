//! `/session/*`: the stateful mode.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::http::{ApiJson, AppState, CSRF_COOKIE, CSRF_HEADER, Client, SameSite, cookie};
use crate::redact::debug_redacted;

/// `POST /session/login` body.
#[derive(Deserialize, ToSchema)]
pub struct SessionLoginRequest {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

/// `POST /session/login` answer (the session id is in the cookie).
#[derive(Serialize, ToSchema)]
pub struct SessionLoginResponse {
    /// The normalized username.
    pub username: String,
    /// The CSRF token to echo in `X-CSRF-Token`.
    pub csrf_token: String,
}

debug_redacted!(SessionLoginRequest { username; password });
debug_redacted!(SessionLoginResponse { username; csrf_token });

/// `GET /session/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionMeResponse {
    /// The user id.
    pub sub: String,
    /// The username.
    pub username: String,
    /// The roles.
    pub roles: Vec<String>,
}

/// Logs in to a server-side session.
#[utoipa::path(post, path = "/session/login", request_body = SessionLoginRequest,
    responses(
        (status = 200, body = SessionLoginResponse),
        (status = 400, body = crate::routes::ErrorBody),
        (status = 401, body = crate::routes::ErrorBody),
        (status = 413, body = crate::routes::ErrorBody),
        (status = 415, body = crate::routes::ErrorBody),
        (status = 429, body = crate::routes::ErrorBody),
    ))]
pub async fn login(
    State(s): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<SessionLoginRequest>,
) -> Result<Response, ApiError> {
    let l = s
        .core
        .session_login(&body.username, body.password, &client.ip)
        .await?;
    let ttl = s.core.settings.session_ttl;
    let c = &s.cookies;
    let mut res = Json(SessionLoginResponse {
        username: l.user.username,
        csrf_token: l.csrf_token.clone(),
    })
    .into_response();
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        c.set(
            c.session_name(),
            &l.session_id,
            "/",
            true,
            SameSite::Lax,
            ttl,
        ),
    );
    h.append(
        header::SET_COOKIE,
        c.set(CSRF_COOKIE, &l.csrf_token, "/", false, SameSite::Lax, ttl),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The session's user.
#[utoipa::path(get, path = "/session/me",
    responses((status = 200, body = SessionMeResponse), (status = 401, body = crate::routes::ErrorBody)))]
pub async fn me(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SessionMeResponse>, ApiError> {
    let id = cookie(&headers, s.cookies.session_name()).ok_or_else(no_session)?;
    let (_, user) = s.core.session_user(id).await?.ok_or_else(no_session)?;
    Ok(Json(SessionMeResponse {
        sub: user.id,
        username: user.username,
        roles: user.roles,
    }))
}

/// Ends the session (needs `X-CSRF-Token`).
#[utoipa::path(post, path = "/session/logout",
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, body = crate::routes::ErrorBody),
        (status = 403, body = crate::routes::ErrorBody),
    ))]
pub async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let id = cookie(&headers, s.cookies.session_name()).ok_or_else(no_session)?;
    let Some(csrf) = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::csrf());
    };
    if s.core.session_user(id).await?.is_none() {
        return Err(no_session());
    }
    if !s.core.session_logout(id, csrf).await? {
        return Err(ApiError::csrf());
    }
    let c = &s.cookies;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        c.set(c.session_name(), "", "/", true, SameSite::Lax, 0),
    );
    res.headers_mut().append(
        header::SET_COOKIE,
        c.set(CSRF_COOKIE, "", "/", false, SameSite::Lax, 0),
    );
    Ok(res)
}

fn no_session() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_session",
        "no valid session cookie",
    )
}
