//! The OAuth 2.0 / OpenID Connect provider's endpoints: discovery (OpenID Connect
//! Discovery 1.0 and RFC 8414, one document), the token endpoint (RFC 6749 §3.2;
//! `client_credentials` for now), introspection (RFC 7662) and revocation (RFC 7009).
//!
//! The OAuth endpoints take `application/x-www-form-urlencoded` bodies, as the RFCs
//! require, and answer errors in the server's JSON shape with the codes of RFC 6749
//! §5.2 (`invalid_client` always with 401 and `WWW-Authenticate: Basic`).
//!
//! Discovery names every endpoint of the provider. The authorization and
//! end-session endpoints answer HTML pages and redirects (`routes::authorize`) and
//! are left out of the OpenAPI document; userinfo is here.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::GrantType;
use crate::error::ApiError;
use crate::flows::{Introspection, TokenHint, TokenRequest};
use crate::http::{AppState, Client, OAuthForm, client_credentials};
use crate::metrics::GrantLabel;
use crate::redact::debug_redacted;

/// The authorization endpoint (authorization code with PKCE; the next part).
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// The token endpoint.
pub const TOKEN_PATH: &str = "/oauth/token";
/// The userinfo endpoint (the next part).
pub const USERINFO_PATH: &str = "/oauth/userinfo";
/// The introspection endpoint.
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
/// The revocation endpoint.
pub const REVOKE_PATH: &str = "/oauth/revoke";
/// The end-session endpoint of RP-Initiated Logout (the next part).
pub const END_SESSION_PATH: &str = "/oauth/logout";
/// The JWKS.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// OpenID Connect Discovery 1.0.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// RFC 8414.
pub const AUTHORIZATION_SERVER_PATH: &str = "/.well-known/oauth-authorization-server";

/// The provider's metadata: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 (one
/// document serves both). It names only what the provider supports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderMetadata {
    /// The issuer: the `iss` of every token.
    pub issuer: String,
    /// Authorization code with PKCE (S256).
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// Userinfo (OpenID Connect Core §5.3).
    pub userinfo_endpoint: String,
    /// The public signing keys.
    pub jwks_uri: String,
    /// RFC 7662.
    pub introspection_endpoint: String,
    /// RFC 7009.
    pub revocation_endpoint: String,
    /// OpenID Connect RP-Initiated Logout 1.0.
    pub end_session_endpoint: String,
    /// `openid`, `profile`, `offline_access`, then the configured `oauth_scopes`.
    pub scopes_supported: Vec<String>,
    /// `code` only (RFC 9700: no implicit flow).
    pub response_types_supported: Vec<&'static str>,
    /// `query` and `form_post`.
    pub response_modes_supported: Vec<&'static str>,
    /// `authorization_code`, `refresh_token`, `client_credentials`.
    pub grant_types_supported: Vec<&'static str>,
    /// `S256` only.
    pub code_challenge_methods_supported: Vec<&'static str>,
    /// `client_secret_basic`, `client_secret_post`, `none` (public clients).
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Confidential clients only.
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Public clients (`none`) may revoke their own tokens.
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// `public`.
    pub subject_types_supported: Vec<&'static str>,
    /// The algorithm of the current ID-token signing key.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// The claims of ID tokens and userinfo.
    pub claims_supported: Vec<&'static str>,
    /// `none`, `login`, `consent`.
    pub prompt_values_supported: Vec<&'static str>,
    /// RFC 9207: the `iss` parameter in every authorization response.
    pub authorization_response_iss_parameter_supported: bool,
    /// No `claims` request parameter.
    pub claims_parameter_supported: bool,
    /// No request objects.
    pub request_parameter_supported: bool,
    /// No `request_uri` (its default in OpenID Connect Discovery is true).
    pub request_uri_parameter_supported: bool,
}

/// `application/x-www-form-urlencoded` body of `POST /oauth/token`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// The grant.
    #[schema(inline)]
    grant_type: GrantTypeName,
    /// `authorization_code`: the code the authorization endpoint issued.
    #[schema(nullable = false)]
    code: Option<String>,
    /// `authorization_code`: the redirect URI of the authorization request.
    #[schema(nullable = false)]
    redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636), 43 to 128 characters.
    #[schema(nullable = false)]
    code_verifier: Option<String>,
    /// `refresh_token`: the refresh token.
    #[schema(nullable = false)]
    refresh_token: Option<String>,
    /// Space-separated scope tokens (RFC 6749 §3.3). `client_credentials`: within
    /// the client's, by default all of the client's that do not name a user.
    /// `refresh_token`: within the grant's (by default all of it).
    #[schema(nullable = false)]
    scope: Option<String>,
    /// `client_secret_post`: the client id (or a public client naming itself).
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// `client_secret_post`: the secret. Not together with HTTP Basic.
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

/// A grant type.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum GrantTypeName {
    /// §4.1.
    AuthorizationCode,
    /// §6.
    RefreshToken,
    /// §4.4.
    ClientCredentials,
}

/// `application/x-www-form-urlencoded` body of `POST /oauth/introspect` and
/// `POST /oauth/revoke`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenActionForm {
    /// The token: an access token or a refresh token. (An empty value is no
    /// value, RFC 6749 §3.1.)
    #[schema(min_length = 1)]
    token: String,
    /// What the token is, as the client believes.
    #[schema(inline, nullable = false)]
    token_type_hint: Option<TokenHintName>,
    /// `client_secret_post`: the client id (a public client may revoke with it alone).
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// `client_secret_post`: the secret. Not together with HTTP Basic.
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

/// A `token_type_hint`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum TokenHintName {
    /// An access token.
    AccessToken,
    /// A refresh token.
    RefreshToken,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
pub struct OAuthTokenResponse {
    /// The access token: an RFC 9068 JWT (`typ: at+jwt`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The scope granted, space-separated.
    pub scope: String,
    /// A refresh token: for a grant with `offline_access` (and at every refresh,
    /// its successor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// An ID token (OpenID Connect Core §2), for a grant with `openid`: signed by
    /// the ID-token key (`id_token_signing_alg`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

debug_redacted!(OAuthTokenResponse { token_type, expires_in, scope; access_token, refresh_token, id_token });

/// An introspection response (RFC 7662 §2.2): `{"active": false}` and nothing
/// else for a token that is not active.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct IntrospectionResponse {
    /// Whether the token is live.
    pub active: bool,
    /// Its scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client it was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The user's name, for a user's token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `Bearer` for an access token, `refresh_token` for a refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// Expiry (for a refresh token, the end of its family if unused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The user id, or the client id of a client acting for itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// OpenID Connect Discovery 1.0.
#[utoipa::path(get, path = "/.well-known/openid-configuration",
    responses((status = 200, body = ProviderMetadata)))]
pub async fn openid_configuration(State(s): State<AppState>) -> Response {
    metadata(&s)
}

/// OAuth 2.0 Authorization Server Metadata (RFC 8414): the same document.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server",
    responses((status = 200, body = ProviderMetadata)))]
pub async fn authorization_server(State(s): State<AppState>) -> Response {
    metadata(&s)
}

/// The token endpoint: `authorization_code` with PKCE (RFC 6749 §4.1.3, RFC 7636),
/// `refresh_token` (§6), `client_credentials` (§4.4).
#[utoipa::path(post, path = "/oauth/token",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, body = OAuthTokenResponse),
        (status = 400, description = "invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope", body = crate::routes::ErrorBody),
        (status = 401, description = "invalid_client", body = crate::routes::ErrorBody),
        (status = 413, body = crate::routes::ErrorBody),
        (status = 429, body = crate::routes::ErrorBody),
        (status = 503, body = crate::routes::ErrorBody),
    ))]
pub async fn token(
    State(s): State<AppState>,
    client: Client,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Result<Response, ApiError> {
    let grant_type = form.get("grant_type");
    let creds = match client_credentials(&headers, &form) {
        Ok(c) => c,
        Err(e) => {
            s.core.metrics.grant(GrantLabel::of(grant_type), false);
            return Err(e);
        }
    };
    let param = |name: &str| form.get(name).map(str::to_string);
    let req = TokenRequest {
        grant_type: grant_type.map(str::to_string),
        scope: param("scope"),
        code: param("code"),
        redirect_uri: param("redirect_uri"),
        code_verifier: param("code_verifier"),
        refresh_token: param("refresh_token"),
    };
    let issued = s.core.token(creds, req, &client.ip).await?;
    let mut res = Json(OAuthTokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope: issued.scope,
        refresh_token: issued.refresh_token,
        id_token: issued.id_token,
    })
    .into_response();
    no_store(&mut res);
    Ok(res)
}

/// Token introspection (RFC 7662), for authenticated (confidential) clients.
#[utoipa::path(post, path = "/oauth/introspect",
    request_body(content = TokenActionForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, body = IntrospectionResponse),
        (status = 400, description = "invalid_request", body = crate::routes::ErrorBody),
        (status = 401, description = "invalid_client", body = crate::routes::ErrorBody),
        (status = 413, body = crate::routes::ErrorBody),
        (status = 429, body = crate::routes::ErrorBody),
        (status = 503, body = crate::routes::ErrorBody),
    ))]
pub async fn introspect(
    State(s): State<AppState>,
    client: Client,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Result<Response, ApiError> {
    let Some(creds) = client_credentials(&headers, &form)? else {
        return Err(no_client());
    };
    let c = s.core.authenticate_client(creds, &client.ip).await?;
    let Some(token) = form.get("token") else {
        return Err(ApiError::invalid_request("token is missing"));
    };
    let body = match s.core.introspect(&c, token).await? {
        Introspection::Access { claims, username } => IntrospectionResponse {
            active: true,
            scope: Some(claims.scope.clone()),
            client_id: claims.client_id.clone(),
            username,
            token_type: Some("Bearer"),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            sub: Some(claims.sub.clone()),
            aud: Some(claims.aud.clone()),
            iss: Some(claims.iss.clone()),
            jti: Some(claims.jti.clone()),
        },
        Introspection::Refresh {
            family,
            exp,
            username,
        } => IntrospectionResponse {
            active: true,
            client_id: family.client_id,
            username,
            token_type: Some("refresh_token"),
            exp: Some(exp),
            sub: Some(family.user_id),
            iss: Some(s.core.settings.issuer.clone()),
            ..Default::default()
        },
        Introspection::Inactive => IntrospectionResponse::default(),
    };
    let mut res = Json(body).into_response();
    no_store(&mut res);
    Ok(res)
}

/// Token revocation (RFC 7009): 200 whether or not there was anything to revoke.
#[utoipa::path(post, path = "/oauth/revoke",
    request_body(content = TokenActionForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Revoked, or nothing of this client's to revoke"),
        (status = 400, description = "invalid_request, unsupported_token_type", body = crate::routes::ErrorBody),
        (status = 401, description = "invalid_client", body = crate::routes::ErrorBody),
        (status = 413, body = crate::routes::ErrorBody),
        (status = 429, body = crate::routes::ErrorBody),
        (status = 503, body = crate::routes::ErrorBody),
    ))]
pub async fn revoke(
    State(s): State<AppState>,
    client: Client,
    headers: HeaderMap,
    OAuthForm(form): OAuthForm,
) -> Result<Response, ApiError> {
    let Some(creds) = client_credentials(&headers, &form)? else {
        return Err(no_client());
    };
    let c = s.core.authenticate_client(creds, &client.ip).await?;
    let Some(token) = form.get("token") else {
        return Err(ApiError::invalid_request("token is missing"));
    };
    let hint = match form.get("token_type_hint") {
        None => None,
        Some(h) => Some(TokenHint::parse(h).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_token_type",
                "this server revokes access tokens and refresh tokens only",
            )
        })?),
    };
    s.core.revoke(&c, token, hint).await?;
    let mut res = StatusCode::OK.into_response();
    no_store(&mut res);
    Ok(res)
}

/// What userinfo answers (OpenID Connect Core §5.3).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfoResponse {
    /// The user id (the `sub` of the ID token).
    pub sub: String,
    /// The username, with the scope `profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

/// Userinfo (OpenID Connect Core §5.3): the user of a client's access token that
/// holds `openid`.
#[utoipa::path(get, path = "/oauth/userinfo", security(("bearer" = [])),
    responses(
        (status = 200, body = UserInfoResponse),
        (status = 400, description = "Malformed Authorization", body = crate::routes::ErrorBody),
        (status = 401, description = "No token, or a token refused (WWW-Authenticate: Bearer)", body = crate::routes::ErrorBody),
        (status = 403, description = "insufficient_scope: the token lacks openid", body = crate::routes::ErrorBody),
        (status = 503, body = crate::routes::ErrorBody),
    ))]
pub async fn userinfo_get(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    userinfo(&s, &headers).await
}

/// Userinfo by POST (OpenID Connect Core §5.3.1), the token in `Authorization`.
#[utoipa::path(post, path = "/oauth/userinfo", security(("bearer" = [])),
    responses(
        (status = 200, body = UserInfoResponse),
        (status = 400, description = "Malformed Authorization", body = crate::routes::ErrorBody),
        (status = 401, description = "No token, or a token refused (WWW-Authenticate: Bearer)", body = crate::routes::ErrorBody),
        (status = 403, description = "insufficient_scope: the token lacks openid", body = crate::routes::ErrorBody),
        (status = 413, body = crate::routes::ErrorBody),
        (status = 503, body = crate::routes::ErrorBody),
    ))]
pub async fn userinfo_post(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    userinfo(&s, &headers).await
}

async fn userinfo(s: &AppState, headers: &HeaderMap) -> Result<Response, ApiError> {
    let token = tessera_guard::bearer_token(headers).map_err(|e| match e.kind() {
        tessera_guard::RejectionKind::InvalidRequest => {
            ApiError::malformed_authorization(e.description().to_owned())
        }
        _ => ApiError::invalid_token(e.description().to_owned()),
    })?;
    let Some(token) = token else {
        return Err(ApiError::missing_token());
    };
    let claims = s
        .core
        .verify_access(token)
        .await
        .map_err(|r| ApiError::invalid_token(r.0))?;
    if !matches!(
        claims.kind(),
        Some(crate::tokens::TokenKind::UserGrant { .. })
    ) {
        return Err(ApiError::invalid_token(
            "userinfo takes the access token of a user's grant to a client",
        ));
    }
    if !crate::flows::Core::is_openid_grant(&claims) {
        return Err(ApiError::insufficient_scope(
            "the access token was not granted the scope openid",
        ));
    }
    let Some(info) = s.core.userinfo(&claims).await? else {
        return Err(ApiError::invalid_token("the token's user no longer exists"));
    };
    let mut res = Json(UserInfoResponse {
        sub: info.sub,
        preferred_username: info.preferred_username,
    })
    .into_response();
    no_store(&mut res);
    Ok(res)
}

fn no_client() -> ApiError {
    ApiError::invalid_client(
        "no client authentication: use HTTP Basic, or client_id and client_secret in the body",
    )
}

fn no_store(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn metadata(s: &AppState) -> Response {
    let settings = &s.core.settings;
    let base = settings.issuer.trim_end_matches('/');
    let url = |path: &str| format!("{base}{path}");
    let mut scopes: Vec<String> = ["openid", "profile", "offline_access"]
        .into_iter()
        .map(String::from)
        .collect();
    for sc in &settings.scopes_supported {
        if !scopes.contains(sc) {
            scopes.push(sc.clone());
        }
    }
    let doc = ProviderMetadata {
        issuer: settings.issuer.clone(),
        authorization_endpoint: url(AUTHORIZE_PATH),
        token_endpoint: url(TOKEN_PATH),
        userinfo_endpoint: url(USERINFO_PATH),
        jwks_uri: url(JWKS_PATH),
        introspection_endpoint: url(INTROSPECT_PATH),
        revocation_endpoint: url(REVOKE_PATH),
        end_session_endpoint: url(END_SESSION_PATH),
        scopes_supported: scopes,
        response_types_supported: vec!["code"],
        response_modes_supported: vec!["query", "form_post"],
        grant_types_supported: GrantType::ALL.iter().map(|g| g.as_str()).collect(),
        code_challenge_methods_supported: vec!["S256"],
        token_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        introspection_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
        ],
        revocation_endpoint_auth_methods_supported: vec![
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        subject_types_supported: vec!["public"],
        // ID tokens have keys of their own (id_token_signing_alg, RS256 by
        // default): the algorithm of the current one, and only it.
        id_token_signing_alg_values_supported: vec![
            s.core.keys.current().id_alg.name().to_string(),
        ],
        claims_supported: vec![
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "azp",
            "at_hash",
            "sid",
            "preferred_username",
        ],
        prompt_values_supported: vec!["none", "login", "consent"],
        authorization_response_iss_parameter_supported: true,
        claims_parameter_supported: false,
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
    };
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        )],
        Json(doc),
    )
        .into_response()
}
