//! A resource server that trusts a Tessera authentication server: it fetches the
//! server's JWKS and verifies the bearer token of every request with tessera-guard.
//!
//! Configuration (environment):
//! - `ISSUER`: the Tessera server's issuer URL (default `http://127.0.0.1:8080`, what
//!   `tessera serve --addr 127.0.0.1:8080` uses);
//! - `JWKS_URL`: default `$ISSUER/.well-known/jwks.json`;
//! - `AUDIENCE`: default the issuer (Tessera's default audience);
//! - `ADDR`: where to listen (default `127.0.0.1:3000`);
//! - `REVOCATION_FEED_TOKEN`: when set, subscribe to the server's revocation feed
//!   with it, so that logouts take effect here too (off by default);
//! - `REVOCATIONS_URL`: the feed, default `$ISSUER/auth/revocations`.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use tessera_guard::{
    Authenticated, Guard, Principal, RemoteJwks, RevocationFeed, access_token_validation,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The guard logs with `tracing` (RUST_LOG, default info): show it.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let issuer = env_or("ISSUER", "http://127.0.0.1:8080");
    let jwks_url = env_or("JWKS_URL", &format!("{issuer}/.well-known/jwks.json"));
    let audience = env_or("AUDIENCE", &issuer);
    let addr = env_or("ADDR", "127.0.0.1:3000");

    let jwks = RemoteJwks::new(&jwks_url)?.cooldown(Duration::from_secs(30));
    // Fail loudly but keep going: the guard fetches again on the first request.
    if let Err(e) = jwks.fetch_now().await {
        eprintln!("warning: could not fetch {jwks_url} yet: {e}");
    }
    let mut builder =
        Guard::builder(jwks).validation(access_token_validation(&issuer, &audience).leeway(30));
    let revocations = match std::env::var("REVOCATION_FEED_TOKEN") {
        Ok(token) if !token.is_empty() => {
            let url = env_or("REVOCATIONS_URL", &format!("{issuer}/auth/revocations"));
            // Its default leeway (entries kept 60 s past their expiry) covers the 30 s
            // the validation allows.
            let feed = RevocationFeed::new(&url, token)?;
            feed.start();
            builder = builder.with_revocation(Arc::new(feed));
            format!("on, from {url}")
        }
        _ => "off (set REVOCATION_FEED_TOKEN to follow the server's logouts)".to_owned(),
    };
    let guard = builder.build();

    let app = router(&guard);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "resource server on http://{} (tokens from {issuer}, keys from {jwks_url})",
        listener.local_addr()?
    );
    println!("revocation feed: {revocations}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// `GET /hello` needs any valid token; `GET /admin` the role `admin`; `GET /healthz`
/// nothing.
fn router(guard: &Guard) -> Router {
    Router::new()
        .route("/admin", get(admin))
        .route_layer(guard.layer().require_role("admin"))
        .merge(
            Router::new()
                .route("/hello", get(hello))
                .route_layer(guard.layer()),
        )
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "this route does not take that method",
            )
        })
}

/// An error in the shape the guard's own rejections have.
fn error(status: StatusCode, code: &str, description: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
}

async fn hello(Authenticated { claims, principal }: Authenticated) -> Json<Value> {
    Json(json!({
        "hello": claims.sub,
        "roles": principal.roles(),
        "scope": principal.scope(),
        "expires_at": principal.exp(),
    }))
}

async fn admin(principal: Principal) -> Json<Value> {
    Json(json!({"admin": principal.sub()}))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}
