//! `/auth/*`: register, login, refresh, logout, logout-all, me, sessions.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::flows::Issued;
use crate::http::{
    ApiJson, ApiPath, AppState, Authenticated, CSRF_COOKIE, Client, OptionalJson, REFRESH_COOKIE,
    SameSite, cookie, csrf_ok,
};
use crate::redact::debug_redacted;

/// `POST /auth/register` body.
#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 1 to 64 characters after normalization (NFKC, case folded), without control or
    /// invisible formatting characters, nor whitespace at either end. The pattern
    /// says so for the characters before normalization (a few, like U+FB01 `ﬁ`,
    /// become two).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB]([^\x00-\x1F\x7F-\x9F\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB])?$"
    )]
    pub username: String,
    /// 8 to 1,024 bytes of UTF-8. JSON Schema counts characters, not bytes: the
    /// lengths given here (8 to 256 characters) are the ones that are within the byte
    /// limits whatever the characters; a longer password of one-byte characters, up to
    /// 1,024, is accepted too.
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

/// A registered user.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// The user id.
    pub id: String,
    /// The normalized username.
    pub username: String,
}

/// How the tokens of a login are delivered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// In the JSON body.
    #[default]
    Json,
    /// In cookies, with a CSRF token.
    Cookie,
}

/// `POST /auth/login` body.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
    /// `json` (default) or `cookie`.
    #[serde(default)]
    pub delivery: Option<Delivery>,
}

/// A token pair (JSON delivery).
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access token (a JWT, `typ: at+jwt`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token (opaque; good once).
    pub refresh_token: String,
    /// Seconds until the session ends if the refresh token is not used.
    pub refresh_expires_in: i64,
}

/// The answer of a cookie-delivery login or refresh: no token in the body.
#[derive(Serialize, ToSchema)]
pub struct CookieTokenResponse {
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Seconds until the session ends if not refreshed.
    pub refresh_expires_in: i64,
    /// The CSRF token to echo in `X-CSRF-Token`.
    pub csrf_token: String,
}

/// The 200 answer of login and refresh: tokens in the body (JSON delivery), or only
/// lifetimes and a CSRF token (cookie delivery; the tokens are in `Set-Cookie`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum TokenAnswer {
    /// JSON delivery.
    Json(TokenResponse),
    /// Cookie delivery.
    Cookie(CookieTokenResponse),
}

/// `POST /auth/refresh` body (empty in cookie mode).
#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token.
    pub refresh_token: Option<String>,
}

/// `POST /auth/logout` body (optional).
#[derive(Deserialize, ToSchema)]
pub struct LogoutRequest {
    /// The session's refresh token, ended too.
    pub refresh_token: Option<String>,
}

debug_redacted!(RegisterRequest { username; password });
debug_redacted!(LoginRequest { username, delivery; password });
debug_redacted!(TokenResponse { token_type, expires_in, refresh_expires_in; access_token, refresh_token });
debug_redacted!(CookieTokenResponse { token_type, expires_in, refresh_expires_in; csrf_token });
debug_redacted!(RefreshRequest { ; refresh_token });
debug_redacted!(LogoutRequest { ; refresh_token });

/// `GET /auth/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The user id.
    pub sub: String,
    /// The username.
    pub username: String,
    /// The roles.
    pub roles: Vec<String>,
    /// The session id.
    pub sid: String,
}

/// One session of `GET /auth/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionItem {
    /// The session id (the `sid` of its access tokens).
    pub id: String,
    /// Login time, Unix seconds.
    pub created_at: i64,
    /// Last refresh, Unix seconds.
    pub last_used_at: i64,
    /// User-Agent at login.
    pub user_agent: Option<String>,
    /// Client address at login.
    pub ip: Option<String>,
    /// Whether this is the session of the calling token.
    pub current: bool,
}

/// `GET /auth/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsResponse {
    /// The live sessions, oldest first.
    pub sessions: Vec<SessionItem>,
}

/// Registers a user.
#[utoipa::path(post, path = "/auth/register", request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisterResponse),
        (status = 400, body = crate::routes::ErrorBody),
        (status = 409, body = crate::routes::ErrorBody),
        (status = 413, body = crate::routes::ErrorBody),
        (status = 415, body = crate::routes::ErrorBody),
    ))]
pub async fn register(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let user = s.core.register(&body.username, body.password).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            id: user.id,
            username: user.username,
        }),
    )
        .into_response())
}

/// Logs in.
#[utoipa::path(post, path = "/auth/login", request_body = LoginRequest,
    responses(
        (status = 200, description = "A token pair (JSON delivery) or cookies and a CSRF token (cookie delivery)", body = TokenAnswer),
        (status = 400, body = crate::routes::ErrorBody),
        (status = 401, body = crate::routes::ErrorBody),
        (status = 403, body = crate::routes::ErrorBody),
        (status = 413, body = crate::routes::ErrorBody),
        (status = 415, body = crate::routes::ErrorBody),
        (status = 429, body = crate::routes::ErrorBody),
    ))]
pub async fn login(
    State(s): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let issued = s
        .core
        .login(&body.username, body.password, client.user_agent, &client.ip)
        .await?;
    Ok(answer(&s, issued, body.delivery.unwrap_or_default()))
}

/// Spends a refresh token for a new pair.
#[utoipa::path(post, path = "/auth/refresh", request_body(content = Option<RefreshRequest>, description = "Empty in cookie mode"),
    responses(
        (status = 200, description = "A new pair (or cookies, in cookie mode)", body = TokenAnswer),
        (status = 400, body = crate::routes::ErrorBody),
        (status = 401, body = crate::routes::ErrorBody),
        (status = 403, body = crate::routes::ErrorBody),
        (status = 413, body = crate::routes::ErrorBody),
        (status = 415, body = crate::routes::ErrorBody),
        (status = 429, body = crate::routes::ErrorBody),
    ))]
pub async fn refresh(
    State(s): State<AppState>,
    client: Client,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    if let Some(rt) = body.and_then(|b| b.refresh_token) {
        let issued = s.core.refresh(&rt, &client.ip).await?;
        return Ok(answer(&s, issued, Delivery::Json));
    }
    let Some(rt) = cookie(&headers, REFRESH_COOKIE) else {
        // No credential at all: as for a refresh token that is not good, the answer
        // is to log in again (a cookie-mode client whose cookie has expired lands here).
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "no refresh token: neither refresh_token in the body nor the refresh cookie",
        ));
    };
    let expected = s
        .core
        .family_of_refresh(rt)
        .await?
        .map(|f| s.core.csrf_for(&f.id));
    if !csrf_ok(&headers, expected.as_deref()) {
        return Err(ApiError::csrf());
    }
    let issued = s.core.refresh(rt, &client.ip).await?;
    Ok(answer(&s, issued, Delivery::Cookie))
}

/// Logs out: the session ends and the access token is refused from then on.
#[utoipa::path(post, path = "/auth/logout", request_body(content = Option<LogoutRequest>, description = "Optional"),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, body = crate::routes::ErrorBody),
        (status = 401, body = crate::routes::ErrorBody),
        (status = 403, body = crate::routes::ErrorBody),
        (status = 413, body = crate::routes::ErrorBody),
        (status = 415, body = crate::routes::ErrorBody),
    ))]
pub async fn logout(
    State(s): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> Result<Response, ApiError> {
    let rt = body.and_then(|b| b.refresh_token).or_else(|| {
        auth.via_cookie
            .then(|| cookie(&headers, REFRESH_COOKIE).map(str::to_string))
            .flatten()
    });
    s.core.logout(&auth.claims, rt.as_deref()).await?;
    Ok(no_content(&s, auth.via_cookie))
}

/// Ends every session of the user.
#[utoipa::path(post, path = "/auth/logout-all", security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session ended"),
        (status = 401, body = crate::routes::ErrorBody),
        (status = 403, body = crate::routes::ErrorBody),
    ))]
pub async fn logout_all(
    State(s): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    s.core.logout_all(&auth.claims.sub).await?;
    Ok(no_content(&s, auth.via_cookie))
}

/// The caller.
#[utoipa::path(get, path = "/auth/me", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = crate::routes::ErrorBody)))]
pub async fn me(auth: Authenticated) -> Json<MeView> {
    Json(MeView(auth.claims))
}

/// [`MeResponse`], serialized straight from the verified claims (no copies).
#[derive(Debug)]
pub struct MeView(std::sync::Arc<crate::tokens::AccessClaims>);

impl Serialize for MeView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let c = &self.0;
        let mut st = s.serialize_struct("MeResponse", 4)?;
        st.serialize_field("sub", &c.sub)?;
        st.serialize_field("username", &c.username)?;
        st.serialize_field("roles", &c.roles)?;
        st.serialize_field("sid", &c.sid)?;
        st.end()
    }
}

/// The caller's sessions.
#[utoipa::path(get, path = "/auth/sessions", security(("bearer" = [])),
    responses((status = 200, body = SessionsResponse), (status = 401, body = crate::routes::ErrorBody)))]
pub async fn sessions(
    State(s): State<AppState>,
    auth: Authenticated,
) -> Result<Json<SessionsResponse>, ApiError> {
    let list = s.core.sessions(&auth.claims.sub).await?;
    Ok(Json(SessionsResponse {
        sessions: list
            .into_iter()
            .map(|f| SessionItem {
                current: auth.claims.session_id() == Some(f.id.as_str()),
                id: f.id,
                created_at: f.created_at,
                last_used_at: f.last_used_at,
                user_agent: f.user_agent,
                ip: f.ip,
            })
            .collect(),
    }))
}

/// Ends one of the caller's sessions.
#[utoipa::path(delete, path = "/auth/sessions/{id}", security(("bearer" = [])),
    params(("id" = String, Path, description = "The session id")),
    responses(
        (status = 204, description = "Session ended"),
        (status = 400, description = "The id is not valid UTF-8 once decoded", body = crate::routes::ErrorBody),
        (status = 401, body = crate::routes::ErrorBody),
        (status = 403, body = crate::routes::ErrorBody),
        (status = 404, body = crate::routes::ErrorBody),
    ))]
pub async fn delete_session(
    State(s): State<AppState>,
    auth: Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    s.core.end_session(&auth.claims.sub, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /auth/consents`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentsResponse {
    /// The caller's consents, by client id.
    pub consents: Vec<ConsentItem>,
}

/// One consent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentItem {
    /// The client.
    pub client_id: String,
    /// The scope consented to, space-separated.
    pub scope: String,
    /// When consent was first given (Unix seconds).
    pub granted_at: i64,
}

/// The OAuth clients the caller consented to, and to what.
#[utoipa::path(get, path = "/auth/consents", security(("bearer" = [])),
    responses((status = 200, body = ConsentsResponse), (status = 401, body = crate::routes::ErrorBody),
        (status = 503, body = crate::routes::ErrorBody)))]
pub async fn consents(
    State(s): State<AppState>,
    auth: Authenticated,
) -> Result<Json<ConsentsResponse>, ApiError> {
    let list = s.core.consents(&auth.claims.sub).await?;
    Ok(Json(ConsentsResponse {
        consents: list
            .into_iter()
            .map(|c| ConsentItem {
                client_id: c.client_id,
                scope: c.scopes.join(" "),
                granted_at: c.granted_at,
            })
            .collect(),
    }))
}

/// Withdraws the caller's consent to a client; the caller's grants to it (refresh
/// tokens, and the access tokens issued with them) end too.
#[utoipa::path(delete, path = "/auth/consents/{client_id}", security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client")),
    responses(
        (status = 204, description = "Consent withdrawn"),
        (status = 400, description = "The id is not valid UTF-8 once decoded", body = crate::routes::ErrorBody),
        (status = 401, body = crate::routes::ErrorBody),
        (status = 403, body = crate::routes::ErrorBody),
        (status = 404, description = "No consent to this client", body = crate::routes::ErrorBody),
        (status = 503, body = crate::routes::ErrorBody),
    ))]
pub async fn withdraw_consent(
    State(s): State<AppState>,
    auth: Authenticated,
    ApiPath(client_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    match s.core.withdraw_consent(&auth.claims.sub, &client_id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(crate::flows::AuthError::NotFound) => {
            Err(ApiError::not_found("no consent to this client"))
        }
        Err(e) => Err(e.into()),
    }
}

fn answer(s: &AppState, issued: Issued, delivery: Delivery) -> Response {
    let mut res = match delivery {
        Delivery::Json => Json(TokenResponse {
            access_token: issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            refresh_token: issued.refresh_token,
            refresh_expires_in: issued.refresh_expires_in,
        })
        .into_response(),
        Delivery::Cookie => {
            let csrf = s.core.csrf_for(&issued.sid);
            let c = &s.cookies;
            let mut res = Json(CookieTokenResponse {
                token_type: "Bearer",
                expires_in: issued.expires_in,
                refresh_expires_in: issued.refresh_expires_in,
                csrf_token: csrf.clone(),
            })
            .into_response();
            let h = res.headers_mut();
            h.append(
                header::SET_COOKIE,
                c.set(
                    c.access_name(),
                    &issued.access_token,
                    "/",
                    true,
                    SameSite::Lax,
                    issued.expires_in,
                ),
            );
            h.append(
                header::SET_COOKIE,
                c.set(
                    REFRESH_COOKIE,
                    &issued.refresh_token,
                    "/auth",
                    true,
                    SameSite::Strict,
                    issued.refresh_expires_in,
                ),
            );
            h.append(
                header::SET_COOKIE,
                c.set(
                    CSRF_COOKIE,
                    &csrf,
                    "/",
                    false,
                    SameSite::Lax,
                    issued.refresh_expires_in,
                ),
            );
            res
        }
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn no_content(s: &AppState, clear_cookies: bool) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    if clear_cookies {
        for v in s.cookies.clear_all() {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}
