//! Startup: open the store, load keys and the denylist, bind, serve, shut down
//! gracefully. Tests bind port 0 and get the real address back.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cache::{Health, RedisHot};
use crate::clock::Clock;
use crate::config::{Config, CookieSecure, SessionLimitPolicy, Switch};
use crate::denylist::Denylist;
use crate::flows::{Core, Settings};
use crate::http::{App, AppState, CookiePolicy};
use crate::keys::{self, KeyRing};
use crate::password::Hasher;
use crate::ratelimit::Limiter;
use crate::routes;
use crate::store::{self, FamilyPolicy, SessionLimit, Store};

/// Startup failed.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn err(e: impl std::fmt::Display) -> StartError {
    StartError(e.to_string())
}

/// Opens the store named by the config, SQLite or PostgreSQL (creating and
/// migrating it).
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    let database = config.database().map_err(err)?;
    let options = store::StoreOptions {
        max_connections: config.database_max_connections,
    };
    store::open_with(&database, options).await.map_err(err)
}

/// A server bound to its address, ready to run.
#[derive(Debug)]
pub struct Prepared {
    listener: TcpListener,
    state: AppState,
    router: axum::Router,
    reload_every: Duration,
    read_timeout: Duration,
}

impl Prepared {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The application state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let state = self.state.clone();
        let store = Arc::clone(&self.state.core.store);
        let every = self.reload_every;
        let mut tasks = crate::sync::spawn(&self.state);
        tasks.push(tokio::spawn(crate::sync::prune(self.state.clone(), every)));
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let core = &state.core;
                let now = core.now();
                if let Err(e) = core.reload_keys().await {
                    // An outage of the database is logged once by the catch-up
                    // (sync.rs); the keys in memory keep signing and verifying.
                    tracing::debug!(error = %e, "reloading signing keys failed");
                }
                core.denylist.purge(now);
            }
        }));
        let stopping = self.state.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            // Long-lived answers (the revocation feed) end now, so that graceful
            // shutdown waits only for ordinary requests.
            let _ = stopping.send(true);
        };
        let r = serve(self.listener, self.router, self.read_timeout, shutdown).await;
        for t in tasks {
            t.abort();
        }
        store.close().await;
        r.map_err(err)
    }
}

/// Builds everything and binds `config.addr` (port 0 picks a free port).
pub async fn prepare(config: &Config, clock: Arc<dyn Clock>) -> Result<Prepared, StartError> {
    let addr = config.listen_addr().map_err(err)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| StartError(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_err(err)?;
    let issuer = config
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let audience = config.audience.clone().unwrap_or_else(|| issuer.clone());

    let store = open_store(config).await?;
    let kek = keys::load_kek(config).map_err(err)?;
    let algs = keys::KeyAlgs {
        access: config.signing_algorithm().map_err(err)?,
        id_token: config.id_token_algorithm().map_err(err)?,
    };
    let ring = KeyRing::load(store.as_ref(), kek, algs, clock.now())
        .await
        .map_err(err)?;
    let hasher = Hasher::new(
        config.argon2_memory_kib,
        config.argon2_iterations,
        config.argon2_parallelism,
    )
    .map_err(err)?;
    let settings = Settings {
        issuer: issuer.clone(),
        audience,
        access_ttl: config.access_ttl,
        family: FamilyPolicy {
            idle: config.refresh_idle_ttl,
            absolute: config.refresh_absolute_ttl,
        },
        reuse_interval: config.refresh_reuse_interval,
        session_ttl: config.session_ttl,
        scope: config.scope.clone(),
        session_limit: (config.session_limit > 0).then_some(SessionLimit {
            max: config.session_limit,
            evict_oldest: config.session_limit_policy == SessionLimitPolicy::EvictOldest,
        }),
        account_failures: config.rate_limit_account_failures,
        address_failures: config.rate_limit_address_failures,
        scopes_supported: config.oauth_scopes.clone(),
    };
    let mut limiter = Limiter::new(config.rate_limits == Switch::On, config.rate_limit_window);
    if config.rate_limits == Switch::Off {
        tracing::warn!("rate limits are OFF (TESSERA_RATE_LIMITS=off): for benchmarks only");
    }
    let redis = match &config.redis {
        Some(url) => {
            use secrecy::ExposeSecret as _;
            let redis = Arc::new(
                RedisHot::new(url.expose_secret(), &config.redis_key_prefix).map_err(err)?,
            );
            let health = Arc::new(Health::new("redis"));
            // A node starts while Redis is down: degraded, not dead (see /readyz).
            if let Err(e) = crate::cache::HotState::ping(redis.as_ref()).await {
                health.down(&e);
            }
            limiter = limiter.shared(redis.clone(), Arc::clone(&health));
            Some((redis, health))
        }
        None => None,
    };
    let mut core = Core::new(
        store,
        clock,
        ring,
        Arc::new(Denylist::new()),
        hasher,
        limiter,
        settings,
    );
    if let Some((redis, health)) = redis {
        core = core.with_redis(redis, health);
    }
    core.catch_up().await.map_err(err)?;
    let cookies = CookiePolicy {
        secure: cookie_secure(config.cookie_secure, &issuer),
    };
    let feed_tokens = config
        .revocation_feed_tokens
        .iter()
        .map(|t| {
            use secrecy::ExposeSecret as _;
            crate::crypto::hash_secret(t.expose_secret())
        })
        .collect();
    let state = AppState(Arc::new(App {
        core,
        cookies,
        openapi: routes::openapi_json(),
        feed_tokens,
        stopping: tokio::sync::watch::channel(false).0,
    }));
    let read_timeout =
        Duration::from_secs(u64::try_from(config.http_read_timeout).unwrap_or(30).max(1));
    let router = routes::router(
        state.clone(),
        crate::http::BodyRules {
            limit: config.max_body_bytes,
            timeout: read_timeout,
        },
        &config.cors_allow_origins,
        crate::proxy::TrustedProxies::parse(&config.trusted_proxies).map_err(err)?,
    );
    Ok(Prepared {
        listener,
        state,
        router,
        reload_every: Duration::from_secs(u64::try_from(config.key_reload_interval).unwrap_or(5)),
        read_timeout,
    })
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, then stops accepting and
/// lets every connection finish the request in flight (idle ones close at once).
///
/// Each connection gets `read_timeout` to send a request's head, which is also how
/// long an idle keep-alive connection is kept: a client that sends a few bytes and
/// then nothing (slowloris) is cut off instead of holding a socket for ever. The body
/// has its own deadline, in the extractors that read it (`http::BodyRules`).
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // A connection reset before accept, or no file descriptor left:
                    // not the listener's end. Back off a little and go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            },
        );
        let conn = http.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A server running in the background (tests, embedding).
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), StartError>>,
}

impl Running {
    /// Stops accepting, finishes what is in flight, and waits for the end.
    pub async fn stop(mut self) -> Result<(), StartError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(err(e)),
        }
    }
}

/// Prepares and runs a server in the background.
pub async fn spawn(config: &Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    let prepared = prepare(config, clock).await?;
    let addr = prepared.local_addr();
    let state = prepared.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(prepared.run(async move {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        state,
        stop: Some(tx),
        task,
    })
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Whether cookies get Secure and the `__Host-` prefix.
pub fn cookie_secure(policy: CookieSecure, issuer: &str) -> bool {
    match policy {
        CookieSecure::Always => true,
        CookieSecure::Never => {
            if issuer.starts_with("https://") {
                tracing::warn!(
                    "cookie_secure = false with an https issuer: cookies lack Secure and __Host-"
                );
            }
            false
        }
        _ => {
            let loopback_http = issuer
                .strip_prefix("http://")
                .map(|rest| rest.split('/').next().unwrap_or_default())
                .is_some_and(is_loopback_authority);
            if loopback_http {
                tracing::warn!(
                    issuer,
                    "cookie_secure = auto with an http:// loopback issuer: cookies lack Secure and the __Host- prefix (development only)"
                );
            }
            !loopback_http
        }
    }
}

fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_security_by_issuer() {
        assert!(!cookie_secure(CookieSecure::Auto, "http://127.0.0.1:8080"));
        assert!(!cookie_secure(
            CookieSecure::Auto,
            "http://localhost:8080/x"
        ));
        assert!(!cookie_secure(CookieSecure::Auto, "http://[::1]:80"));
        assert!(cookie_secure(CookieSecure::Auto, "http://10.0.0.1:8080"));
        assert!(cookie_secure(CookieSecure::Auto, "https://127.0.0.1"));
        assert!(cookie_secure(
            CookieSecure::Auto,
            "https://auth.example.com"
        ));
        assert!(cookie_secure(CookieSecure::Always, "http://127.0.0.1"));
        assert!(!cookie_secure(
            CookieSecure::Never,
            "https://auth.example.com"
        ));
    }
}
