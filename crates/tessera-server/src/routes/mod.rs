//! The HTTP surface: `router(state)` builds the whole application.

pub mod auth;
pub mod authorize;
pub mod feed;
pub mod oauth;
pub mod session;

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes, SecurityScheme,
};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::ApiError;
use crate::http::{AppState, BodyRules};
use crate::proxy::TrustedProxies;

/// The error shape of every failure.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A machine-readable code (`invalid_request`, `invalid_grant`,
    /// `invalid_client`, ...).
    pub error: String,
    /// A human-readable description.
    pub error_description: String,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ok`, or `degraded` (a dependency is down; tokens are still verified).
    pub status: &'static str,
    /// Each dependency: `ok`, `unavailable`, or `off` when not configured.
    pub checks: Checks,
}

/// The dependencies `/readyz` reports.
#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    /// The database.
    pub database: &'static str,
    /// Redis.
    pub redis: &'static str,
}

/// The OpenAPI description of the server, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tessera", description = "The Tessera authentication server."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::logout_all, auth::me,
        auth::sessions, auth::delete_session, auth::consents, auth::withdraw_consent,
        feed::revocations,
        session::login, session::me, session::logout,
        oauth::openid_configuration, oauth::authorization_server,
        oauth::token, oauth::introspect, oauth::revoke,
        oauth::userinfo_get, oauth::userinfo_post,
        // Left out: GET and POST /oauth/authorize, POST /oauth/authorize/{login,consent} and
        // GET|POST /oauth/logout answer HTML pages and redirects to browsers, not the
        // JSON this document (and the fuzzer that holds routes to it) is about.
        jwks, healthz, readyz, metrics,
    ),
    components(schemas(ErrorBody, Health, Ready, Checks)),
    modifiers(&BearerScheme),
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        // The OAuth endpoints authenticate clients with HTTP Basic (the id and the
        // secret each form-urlencoded, RFC 6749 §2.3.1), or in the body.
        components.add_security_scheme(
            "client_secret_basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        // What the provider issues at its token endpoint; no route of this document
        // takes these tokens yet (userinfo will).
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::ClientCredentials(ClientCredentials::new(
                    oauth::TOKEN_PATH,
                    Scopes::new(),
                ))],
                "Access tokens of the provider (RFC 9068 JWTs).",
            )),
        );
    }
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_json().unwrap_or_else(|_| "{}".into())
}

/// The application's router, with its body rules, CORS, metrics and fallbacks.
pub fn router(
    state: AppState,
    body: BodyRules,
    cors_origins: &[String],
    proxies: TrustedProxies,
) -> Router {
    let mut r = Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/logout-all", post(auth::logout_all))
        .route("/auth/me", get(auth::me))
        .route("/auth/sessions", get(auth::sessions))
        .route("/auth/sessions/{id}", delete(auth::delete_session))
        .route("/auth/revocations", get(feed::revocations))
        .route("/session/login", post(session::login))
        .route("/session/me", get(session::me))
        .route("/session/logout", post(session::logout))
        .route(oauth::JWKS_PATH, get(jwks))
        .route(
            oauth::OPENID_CONFIGURATION_PATH,
            get(oauth::openid_configuration),
        )
        .route(
            oauth::AUTHORIZATION_SERVER_PATH,
            get(oauth::authorization_server),
        )
        .route(oauth::TOKEN_PATH, post(oauth::token))
        .route(oauth::INTROSPECT_PATH, post(oauth::introspect))
        .route(oauth::REVOKE_PATH, post(oauth::revoke))
        .route(
            oauth::AUTHORIZE_PATH,
            get(authorize::authorize).post(authorize::authorize_post),
        )
        .route(authorize::LOGIN_PATH, post(authorize::login))
        .route(authorize::CONSENT_PATH, post(authorize::consent))
        .route(
            oauth::USERINFO_PATH,
            get(oauth::userinfo_get).post(oauth::userinfo_post),
        )
        .route(
            oauth::END_SESSION_PATH,
            get(authorize::logout_get).post(authorize::logout_post),
        )
        .route("/auth/consents", get(auth::consents))
        .route("/auth/consents/{client_id}", delete(auth::withdraw_consent))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(body))
        .layer(Extension(Arc::new(proxies)))
        .layer(middleware::from_fn_with_state(state.clone(), observe));
    let origins: Vec<HeaderValue> = cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if !origins.is_empty() {
        r = r.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    "x-csrf-token".parse().unwrap_or(header::ACCEPT),
                ])
                .allow_credentials(true),
        );
    }
    r.with_state(state)
}

/// The public signing keys: previous, current and next.
#[utoipa::path(get, path = "/.well-known/jwks.json",
    responses((status = 200, description = "A JWK Set (RFC 7517)", content_type = "application/json", body = Object)))]
pub async fn jwks(State(s): State<AppState>) -> Response {
    let keys = s.core.keys.current();
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=60"),
            ),
        ],
        keys.jwks_json.to_string(),
    )
        .into_response()
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Readiness: the node verifies tokens (always, once started: its keys are in
/// memory), and the state of what it depends on. A node whose database or Redis is down is `degraded`,
/// not unready: it still verifies access tokens with what it holds.
#[utoipa::path(get, path = "/readyz",
    responses((status = 200, body = Ready)))]
pub async fn readyz(State(s): State<AppState>) -> Response {
    // A probe has its own deadline (Kubernetes: 1 s by default): a dependency that
    // does not answer within half of that is reported unavailable.
    let within = std::time::Duration::from_millis(500);
    let database = match tokio::time::timeout(within, s.core.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "readiness: the database does not answer");
            "unavailable"
        }
        Err(_) => "unavailable",
    };
    let redis = match &s.core.redis {
        None => "off",
        Some(health) => match tokio::time::timeout(within, s.core.hot.ping()).await {
            Ok(Ok(())) => {
                health.up();
                "ok"
            }
            Ok(Err(e)) => {
                health.down(&e);
                "unavailable"
            }
            Err(_) => {
                health.down(&"no answer within 500 ms");
                "unavailable"
            }
        },
    };
    let checks = Checks { database, redis };
    // A started node holds its signing and verification keys in memory, so it can
    // always verify: down dependencies make it degraded, never unready.
    let status = if checks.database == "ok" && checks.redis != "unavailable" {
        "ok"
    } else {
        "degraded"
    };
    axum::Json(Ready { status, checks }).into_response()
}

/// Prometheus metrics: OpenMetrics text to a scraper that asks for it, the same
/// page as Prometheus text otherwise.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        s.core.metrics.render(s.core.denylist.len()),
    )
        .into_response()
}

async fn openapi(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        s.openapi.clone(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "this route does not take that method",
    )
}

/// Counts and times every request by route, and logs it: method, route and status
/// only (no query, no header), so that no token reaches a log line.
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let personal = ["/auth/", "/session/", "/oauth/"]
        .iter()
        .any(|p| req.uri().path().starts_with(p));
    let mut res = next.run(req).await;
    // Answers about a user (tokens, sessions, who is logged in) are never cached.
    if personal && !res.headers().contains_key(header::CACHE_CONTROL) {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let status = res.status().as_u16();
    let route = route
        .as_ref()
        .map_or(crate::metrics::UNMATCHED_ROUTE, MatchedPath::as_str);
    s.core
        .metrics
        .request(method.as_str(), route, status, elapsed);
    tracing::debug!(method = %method, route, status, latency_ms = elapsed * 1000.0, "request");
    res
}
