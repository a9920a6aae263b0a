// The HTTP integration cases, written once: included by `api.rs` (SQLite) and
// `api_postgres.rs` (PostgreSQL), each of which sets `const BACKEND`. Every app runs
// the real server on a random port with a fresh database of that backend, driven
// over HTTP. Time is moved with a ManualClock, never slept.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use tessera_server::clock::{Clock, ManualClock};
use tessera_server::config::Config;
use tessera_server::{Running, spawn};

use common::TestDb;

struct TestApp {
    base: String,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
    config: Config,
    running: Option<Running>,
    db: TestDb,
}

fn test_config(db: &TestDb) -> Config {
    let mut config = Config {
        addr: "127.0.0.1:0".into(),
        database: db.url.clone(),
        // Cheap argon2 for tests; the production defaults are tested in config.rs.
        argon2_memory_kib: 256,
        argon2_iterations: 1,
        argon2_parallelism: 1,
        ..Config::default()
    };
    if BACKEND == common::Backend::Postgres {
        // Required with PostgreSQL (shared by nodes); a loopback http issuer keeps
        // the cookie rules of the SQLite runs, whose issuer is the listen address.
        config.issuer = Some("http://127.0.0.1".into());
        config.key_encryption_key = Some(common::TEST_KEK.into());
    }
    config
}

/// The name of the test function this is expanded in.
macro_rules! test_name {
    () => {{
        fn here() {}
        let name = std::any::type_name_of_val(&here);
        let name = name.strip_suffix("::here").unwrap_or(name);
        name.strip_suffix("::{{closure}}").unwrap_or(name)
    }};
}

/// The app of this test on `BACKEND`, tuned by an optional closure; ends the test
/// (SKIPPED on stderr) when the backend is PostgreSQL and none is configured.
macro_rules! spawn_app {
    () => {
        spawn_app!(|_| {})
    };
    ($tune:expr) => {
        match spawn_app_with(test_name!(), $tune).await {
            Some(app) => app,
            None => return,
        }
    };
}

async fn spawn_app_with(test: &str, tune: impl FnOnce(&mut Config)) -> Option<TestApp> {
    common::captured_logs();
    let db = TestDb::new(BACKEND, test).await?;
    let mut config = test_config(&db);
    tune(&mut config);
    let clock = Arc::new(ManualClock::starting_now());
    let running = spawn(&config, clock.clone()).await.unwrap();
    // reqwest is built with rustls but no default provider (tessera-guard's choice).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Some(TestApp {
        base: format!("http://{}", running.addr),
        clock,
        http: reqwest::Client::new(),
        config,
        running: Some(running),
        db,
    })
}

impl TestApp {
    /// The issuer: the configured one, else (the default) `http://` + the address.
    fn issuer(&self) -> String {
        self.config
            .issuer
            .clone()
            .unwrap_or_else(|| self.base.clone())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs `body` as it is, labelled JSON.
    async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn register(&self, username: &str, password: &str) -> reqwest::Response {
        self.post(
            "/auth/register",
            json!({"username": username, "password": password}),
        )
        .await
    }

    async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post(
            "/auth/login",
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// Registers `username` and logs in; returns the token answer.
    async fn user(&self, username: &str) -> Value {
        assert_eq!(
            self.register(username, "correct horse").await.status(),
            StatusCode::CREATED
        );
        self.tokens(username).await
    }

    async fn tokens(&self, username: &str) -> Value {
        let r = self.login(username, "correct horse").await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn refresh(&self, rt: &str) -> reqwest::Response {
        self.post("/auth/refresh", json!({"refresh_token": rt}))
            .await
    }

    async fn get_bearer(&self, path: &str, at: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(at)
            .send()
            .await
            .unwrap()
    }

    async fn post_bearer(&self, path: &str, at: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(at)
            .send()
            .await
            .unwrap()
    }

    /// Stops the server and starts it again on the same address and database.
    async fn restart(&mut self) {
        let running = self.running.take().unwrap();
        self.config.addr = running.addr.to_string();
        running.stop().await.unwrap();
        let running = spawn(&self.config, self.clock.clone()).await.unwrap();
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    fn state(&self) -> &tessera_server::http::AppState {
        &self.running.as_ref().unwrap().state
    }
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no string {k} in {v}"))
        .to_string()
}

async fn error_of(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert!(v["error_description"].is_string(), "error shape: {v}");
    (status, s(&v, "error"))
}

fn set_cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn cookie_value(set: &[String], name: &str) -> String {
    let prefix = format!("{name}=");
    let c = set
        .iter()
        .find(|c| c.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no cookie {name} in {set:?}"));
    c[prefix.len()..].split(';').next().unwrap().to_string()
}

fn b64_json(part: &str) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

// ----- register and login ------------------------------------------------------------

#[tokio::test]
async fn register_login_me() {
    let app = spawn_app!();
    let r = app.register("Ada", "correct horse").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["username"], "ada");
    let id = s(&v, "id");

    assert_eq!(
        error_of(app.register("ADA", "another pass").await).await,
        (StatusCode::CONFLICT, "username_taken".into())
    );
    for (u, p) in [
        ("", "correct horse"),
        (&"x".repeat(65)[..], "correct horse"),
        ("bob", "short"),
        ("bob", &"p".repeat(1025)[..]),
    ] {
        assert_eq!(
            error_of(app.register(u, p).await).await,
            (StatusCode::BAD_REQUEST, "invalid_request".into()),
            "{u:?}"
        );
    }
    assert_eq!(
        app.register(&"x".repeat(64), &"p".repeat(1024))
            .await
            .status(),
        StatusCode::CREATED
    );

    let t = app.tokens("ＡＤＡ").await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 900);
    assert_eq!(t["refresh_expires_in"], 14 * 86_400);
    assert_eq!(s(&t, "refresh_token").len(), 43);
    let me: Value = app
        .get_bearer("/auth/me", &s(&t, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["sub"], id.as_str());
    assert_eq!(me["username"], "ada");
    assert_eq!(me["roles"], json!([]));
    assert!(me["sid"].is_string());
}

#[tokio::test]
async fn access_token_has_the_rfc9068_shape_and_verifies_with_the_jwks() {
    let app = spawn_app!();
    let t = app.user("ada").await;
    let at = s(&t, "access_token");
    let parts: Vec<&str> = at.split('.').collect();
    let header = b64_json(parts[0]);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims = b64_json(parts[1]);
    for k in [
        "iss", "sub", "aud", "exp", "iat", "jti", "sid", "roles", "scope",
    ] {
        assert!(!claims[k].is_null(), "claim {k} missing: {claims}");
    }
    assert_eq!(claims["iss"], app.issuer().as_str());
    assert_eq!(claims["aud"], app.issuer().as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );

    let jwks = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let set = tessera_jose::JwkSet::from_json(&jwks).unwrap();
    assert_eq!(
        set.keys().len(),
        4,
        "current and next, of access tokens and of ID tokens"
    );
    assert!(set.keys().iter().all(|k| !k.is_private()));
    let v = tessera_jose::jwt::Validation::new()
        .typ("at+jwt")
        .issuer(app.issuer())
        .audience(app.issuer());
    let data = tessera_jose::jwt::decode_at::<Value>(&at, &set, &v, app.clock.now()).unwrap();
    assert_eq!(data.claims["username"], "ada");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = spawn_app!();
    app.user("ada").await;
    let a = app.login("ada", "wrong horse").await;
    let b = app.login("nobody", "wrong horse").await;
    let c = app.login("", "").await;
    assert_eq!(a.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(b.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(c.status(), StatusCode::UNAUTHORIZED);
    let (ha, hb) = (a.headers().clone(), b.headers().clone());
    let (ta, tb, tc) = (
        a.text().await.unwrap(),
        b.text().await.unwrap(),
        c.text().await.unwrap(),
    );
    assert_eq!(ta, tb);
    assert_eq!(ta, tc);
    assert_eq!(ha.get("content-type"), hb.get("content-type"));
    let v: Value = serde_json::from_str(&ta).unwrap();
    assert_eq!(v["error"], "invalid_grant");
}

// ----- refresh -----------------------------------------------------------------------

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app!();
    let t0 = app.user("ada").await;
    let rt0 = s(&t0, "refresh_token");

    let r1: Value = app.refresh(&rt0).await.json().await.unwrap();
    let rt1 = s(&r1, "refresh_token");
    assert_ne!(rt1, rt0);
    assert_ne!(s(&r1, "access_token"), s(&t0, "access_token"));

    // Within the reuse interval (10 s) the spent token answers the same successor.
    app.clock.advance(5);
    let again: Value = app.refresh(&rt0).await.json().await.unwrap();
    assert_eq!(s(&again, "refresh_token"), rt1);
    assert_eq!(
        app.get_bearer("/auth/me", &s(&again, "access_token"))
            .await
            .status(),
        StatusCode::OK
    );

    // After it, the spent token is theft: the family is revoked.
    app.clock.advance(6);
    assert_eq!(
        error_of(app.refresh(&rt0).await).await,
        (StatusCode::UNAUTHORIZED, "invalid_grant".into())
    );
    assert_eq!(
        error_of(app.refresh(&rt1).await).await,
        (StatusCode::UNAUTHORIZED, "invalid_grant".into())
    );
    let r = app.get_bearer("/auth/me", &s(&r1, "access_token")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );

    // Another login is unaffected.
    let t = app.tokens("ada").await;
    assert_eq!(
        app.refresh(&s(&t, "refresh_token")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        error_of(app.refresh("not-a-token").await).await,
        (StatusCode::UNAUTHORIZED, "invalid_grant".into())
    );
    assert_eq!(
        error_of(app.post("/auth/refresh", json!({})).await).await,
        (StatusCode::UNAUTHORIZED, "invalid_grant".into())
    );
}

#[tokio::test]
async fn fifty_concurrent_refreshes_yield_one_successor() {
    let app = Arc::new(spawn_app!());
    let t = app.user("ada").await;
    let rt = s(&t, "refresh_token");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let app = app.clone();
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            let r = app.refresh(&rt).await;
            assert_eq!(r.status(), StatusCode::OK);
            let v: Value = r.json().await.unwrap();
            s(&v, "refresh_token")
        }));
    }
    let mut successors = std::collections::BTreeSet::new();
    for t in tasks {
        successors.insert(t.await.unwrap());
    }
    assert_eq!(
        successors.len(),
        1,
        "one successor for 50 concurrent refreshes"
    );
    let successor = successors.into_iter().next().unwrap();
    let sessions: Value = app
        .get_bearer("/auth/sessions", &s(&t, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        1,
        "never two live families"
    );
    assert_eq!(app.refresh(&successor).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn expiry_follows_the_clock() {
    let app = spawn_app!(|c| {
        c.refresh_idle_ttl = 3600;
        c.refresh_absolute_ttl = 3 * 3600;
    });
    let t = app.user("ada").await;
    let at = s(&t, "access_token");
    app.clock.advance(899);
    assert_eq!(
        app.get_bearer("/auth/me", &at).await.status(),
        StatusCode::OK
    );
    app.clock.advance(1);
    let r = app.get_bearer("/auth/me", &at).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error_description"], "the token has expired");

    // Idle timeout: used every 59 minutes the family lives, up to its absolute end.
    let t = app.tokens("ada").await;
    let mut rt = s(&t, "refresh_token");
    for _ in 0..2 {
        app.clock.advance(59 * 60);
        let r: Value = app.refresh(&rt).await.json().await.unwrap();
        rt = s(&r, "refresh_token");
    }
    app.clock.advance(3600);
    assert_eq!(
        app.refresh(&rt).await.status(),
        StatusCode::UNAUTHORIZED,
        "idle"
    );

    let t = app.tokens("ada").await;
    let mut rt = s(&t, "refresh_token");
    for _ in 0..3 {
        app.clock.advance(55 * 60);
        let r = app.refresh(&rt).await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        rt = s(&v, "refresh_token");
    }
    app.clock.advance(16 * 60);
    assert_eq!(
        app.refresh(&rt).await.status(),
        StatusCode::UNAUTHORIZED,
        "absolute"
    );
}

// ----- logout and sessions -----------------------------------------------------------

#[tokio::test]
async fn logout_makes_the_access_token_fail_at_once() {
    let app = spawn_app!();
    let t = app.user("ada").await;
    let other = app.tokens("ada").await;
    let at = s(&t, "access_token");
    let r = app
        .http
        .post(app.url("/auth/logout"))
        .bearer_auth(&at)
        .json(&json!({"refresh_token": s(&t, "refresh_token")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.get_bearer("/auth/me", &at).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(
        app.refresh(&s(&t, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The other session lives on.
    assert_eq!(
        app.get_bearer("/auth/me", &s(&other, "access_token"))
            .await
            .status(),
        StatusCode::OK
    );
    // Without a token: 401 with a bare Bearer challenge.
    let r = app.http.post(app.url("/auth/logout")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn logout_all_ends_every_session() {
    let app = spawn_app!();
    let a = app.user("ada").await;
    let b = app.tokens("ada").await;
    let bob = app.user("bob").await;
    assert_eq!(
        app.post_bearer("/auth/logout-all", &s(&a, "access_token"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    for t in [&a, &b] {
        assert_eq!(
            app.get_bearer("/auth/me", &s(t, "access_token"))
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&s(t, "refresh_token")).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.get_bearer("/auth/me", &s(&bob, "access_token"))
            .await
            .status(),
        StatusCode::OK
    );
    // A login in the same second after logout-all works.
    let c = app.tokens("ada").await;
    assert_eq!(
        app.get_bearer("/auth/me", &s(&c, "access_token"))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn sessions_are_listed_and_ended() {
    let app = spawn_app!();
    let a = app.user("ada").await;
    app.clock.advance(1);
    let b = app.tokens("ada").await;
    let bob = app.user("bob").await;
    let at = s(&a, "access_token");
    let v: Value = app
        .get_bearer("/auth/sessions", &at)
        .await
        .json()
        .await
        .unwrap();
    let list = v["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[1]["current"], false);
    assert_eq!(list[0]["ip"], "127.0.0.1");
    for k in ["id", "created_at", "last_used_at", "user_agent"] {
        assert!(list[0].get(k).is_some(), "{k}");
    }
    assert!(list[1]["created_at"].as_i64() > list[0]["created_at"].as_i64());
    let b_sid = s(&list[1], "id");

    // Another user's session: 404, and it lives on.
    let r = app
        .http
        .delete(app.url(&format!("/auth/sessions/{b_sid}")))
        .bearer_auth(s(&bob, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    assert_eq!(
        app.get_bearer("/auth/me", &s(&b, "access_token"))
            .await
            .status(),
        StatusCode::OK
    );

    let r = app
        .http
        .delete(app.url(&format!("/auth/sessions/{b_sid}")))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_bearer("/auth/me", &s(&b, "access_token"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&s(&b, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let v: Value = app
        .get_bearer("/auth/sessions", &at)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 1);
    let r = app
        .http
        .delete(app.url(&format!("/auth/sessions/{b_sid}")))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn session_limit_refuse() {
    let app = spawn_app!(|c| c.session_limit = 2);
    let a = app.user("ada").await;
    app.tokens("ada").await;
    assert_eq!(
        error_of(app.login("ada", "correct horse").await).await,
        (StatusCode::FORBIDDEN, "session_limit_reached".into())
    );
    // Ending one makes room.
    assert_eq!(
        app.post_bearer("/auth/logout", &s(&a, "access_token"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.login("ada", "correct horse").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_session_limit_holds_under_concurrent_logins() {
    let app = Arc::new(spawn_app!(|c| c.session_limit = 2));
    assert_eq!(
        app.register("ada", "correct horse").await.status(),
        StatusCode::CREATED
    );
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.login("ada", "correct horse").await.status()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            other => assert_eq!(other, StatusCode::FORBIDDEN),
        }
    }
    assert_eq!(ok, 2, "exactly the limit succeeds");
}

#[tokio::test]
async fn session_limit_evict_oldest() {
    let app = spawn_app!(|c| {
        c.session_limit = 2;
        c.session_limit_policy = tessera_server::config::SessionLimitPolicy::EvictOldest;
    });
    let a = app.user("ada").await;
    app.clock.advance(1);
    let b = app.tokens("ada").await;
    app.clock.advance(1);
    let c = app.tokens("ada").await;
    assert_eq!(
        app.get_bearer("/auth/me", &s(&a, "access_token"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&s(&a, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_bearer("/auth/me", &s(&b, "access_token"))
            .await
            .status(),
        StatusCode::OK
    );
    let v: Value = app
        .get_bearer("/auth/sessions", &s(&c, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 2);
}

// ----- the database going away --------------------------------------------------------

#[tokio::test]
async fn without_its_database_a_node_answers_503_and_keeps_verifying() {
    let app = spawn_app!();
    let t = app.user("ada").await;
    let at = s(&t, "access_token");
    let rt = s(&t, "refresh_token");
    app.running.as_ref().unwrap().state.core.store.close().await;
    for r in [
        app.login("ada", "correct horse").await,
        app.refresh(&rt).await,
        app.register("bob", "correct horse").await,
    ] {
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry: i64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1, "{retry}");
        assert_eq!(error_of(r).await.1, "temporarily_unavailable");
    }
    // Access tokens are still verified, from memory.
    assert_eq!(
        app.get_bearer("/auth/me", &at).await.status(),
        StatusCode::OK
    );
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let v: Value = ready.json().await.unwrap();
    assert_eq!(
        v,
        json!({"status": "degraded", "checks": {"database": "unavailable", "redis": "off"}})
    );
}

// ----- behind a load balancer ---------------------------------------------------------

/// A login with `X-Forwarded-For: xff`; the status and, on success, the session's
/// recorded address.
async fn login_via(
    app: &TestApp,
    user: &str,
    password: &str,
    xff: &str,
) -> (StatusCode, Option<String>) {
    let r = app
        .http
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", xff)
        .header(
            "forwarded",
            xff.split(", ")
                .map(|a| format!("for={a}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    if status != StatusCode::OK {
        return (status, None);
    }
    let v: Value = r.json().await.unwrap();
    let list: Value = app
        .get_bearer("/auth/sessions", &s(&v, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    let current = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["current"] == true)
        .unwrap()["ip"]
        .as_str()
        .map(str::to_string);
    (status, current)
}

#[tokio::test]
async fn forwarding_headers_count_only_from_a_trusted_proxy() {
    let limits = |c: &mut Config| {
        c.rate_limit_account_failures = 100;
        c.rate_limit_address_failures = 2;
        c.rate_limit_window = 60;
    };
    // By default no forwarding header is believed: a spoofed one changes neither the
    // recorded address nor the address limit.
    let app = spawn_app!(limits);
    app.user("ada").await;
    let (status, ip) = login_via(&app, "ada", "correct horse", "198.51.100.7").await;
    assert_eq!((status, ip.as_deref()), (StatusCode::OK, Some("127.0.0.1")));
    for i in 0..2 {
        let (status, _) = login_via(&app, "ada", "wrong", &format!("203.0.113.{i}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = login_via(&app, "ada", "wrong", "203.0.113.99").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Behind a trusted proxy, the first address the proxies did not write is the
    // client: what the client prepended itself is ignored.
    let app = spawn_app!(|c: &mut Config| {
        limits(c);
        c.trusted_proxies = vec!["127.0.0.0/8".into()];
    });
    app.user("ada").await;
    let (status, ip) = login_via(&app, "ada", "correct horse", "6.6.6.6, 198.51.100.7").await;
    assert_eq!(
        (status, ip.as_deref()),
        (StatusCode::OK, Some("198.51.100.7"))
    );
    for _ in 0..2 {
        let (status, _) = login_via(&app, "ada", "wrong", "6.6.6.6, 198.51.100.7").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = login_via(&app, "ada", "wrong", "1.2.3.4, 198.51.100.7").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the limit is the client's"
    );
    let (status, _) = login_via(&app, "ada", "wrong", "198.51.100.8").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another client is not limited"
    );
}

// ----- brute force -------------------------------------------------------------------

#[tokio::test]
async fn brute_force_gets_429_per_account_and_per_address() {
    let app = spawn_app!(|c| {
        c.rate_limit_account_failures = 3;
        c.rate_limit_address_failures = 6;
        c.rate_limit_window = 60;
    });
    app.user("ada").await;
    for _ in 0..3 {
        assert_eq!(
            app.login("ada", "wrong horse").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app.login("ada", "correct horse").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(error_of(r).await.1, "too_many_requests");
    app.clock.advance(61);
    assert_eq!(
        app.login("ada", "correct horse").await.status(),
        StatusCode::OK
    );

    // Per address: failures on many accounts.
    for i in 0..6 {
        assert_eq!(
            app.login(&format!("nobody{i}"), "wrong horse")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.login("ada", "correct horse").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.refresh("garbage").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.clock.advance(61);
    assert_eq!(
        app.login("ada", "correct horse").await.status(),
        StatusCode::OK
    );
    let m = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("tessera_login_failures_total 9"), "{m}");
}

/// Forty wrong passwords at once for one account with a limit of 3: exactly three
/// are checked (401), the rest are refused before any hash (429), and so is the
/// right password afterwards. The same for an address over many accounts.
#[tokio::test]
async fn concurrent_guesses_never_pass_the_limit() {
    let app = Arc::new(spawn_app!(|c| {
        c.rate_limit_account_failures = 3;
        c.rate_limit_address_failures = 8;
        c.rate_limit_window = 60;
    }));
    app.user("ada").await;
    let statuses = |names: Vec<String>| {
        let app = app.clone();
        async move {
            let tasks: Vec<_> = names
                .into_iter()
                .map(|name| {
                    let app = app.clone();
                    tokio::spawn(async move { app.login(&name, "wrong horse").await.status() })
                })
                .collect();
            let mut counts = std::collections::BTreeMap::new();
            for t in tasks {
                *counts.entry(t.await.unwrap().as_u16()).or_insert(0) += 1;
            }
            counts
        }
    };
    let counts = statuses(vec!["ada".to_string(); 40]).await;
    assert_eq!(
        counts,
        [(401, 3), (429, 37)].into_iter().collect(),
        "per account"
    );
    assert_eq!(
        app.login("ada", "correct horse").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.clock.advance(61);
    let counts = statuses((0..40).map(|i| format!("nobody{i}")).collect()).await;
    assert_eq!(
        counts,
        [(401, 8), (429, 32)].into_iter().collect(),
        "per address"
    );
    app.clock.advance(61);
    assert_eq!(
        app.login("ada", "correct horse").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn rate_limits_can_be_turned_off() {
    let app = spawn_app!(|c| {
        c.rate_limits = tessera_server::config::Switch::Off;
        c.rate_limit_account_failures = 1;
    });
    app.user("ada").await;
    for _ in 0..5 {
        assert_eq!(
            app.login("ada", "wrong horse").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.login("ada", "correct horse").await.status(),
        StatusCode::OK
    );
}

// ----- cookies and CSRF --------------------------------------------------------------

#[tokio::test]
async fn cookie_delivery_sets_the_right_attributes_and_needs_csrf() {
    let app = spawn_app!(|c| c.cookie_secure = tessera_server::config::CookieSecure::Always);
    app.register("ada", "correct horse").await;
    let r = app
        .post(
            "/auth/login",
            json!({"username": "ada", "password": "correct horse", "delivery": "cookie"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let set = set_cookies(r.headers());
    let body: Value = r.json().await.unwrap();
    assert!(
        body.get("access_token").is_none() && body.get("refresh_token").is_none(),
        "{body}"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let csrf = s(&body, "csrf_token");
    let at = cookie_value(&set, "__Host-tessera_at");
    let rt = cookie_value(&set, "tessera_rt");
    assert_eq!(cookie_value(&set, "tessera_csrf"), csrf);
    let attrs = |name: &str| -> String {
        let c = set
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap();
        c.split_once(';').unwrap().1.to_string()
    };
    assert_eq!(
        attrs("__Host-tessera_at"),
        " Path=/; Max-Age=900; HttpOnly; SameSite=Lax; Secure"
    );
    assert_eq!(
        attrs("tessera_rt"),
        format!(
            " Path=/auth; Max-Age={}; HttpOnly; SameSite=Strict; Secure",
            14 * 86_400
        )
    );
    assert_eq!(
        attrs("tessera_csrf"),
        format!(" Path=/; Max-Age={}; SameSite=Lax; Secure", 14 * 86_400)
    );

    let jar = format!("__Host-tessera_at={at}; tessera_rt={rt}; tessera_csrf={csrf}");
    let me = app
        .http
        .get(app.url("/auth/me"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    // State-changing requests without (or with a wrong) X-CSRF-Token are refused.
    let r = app
        .http
        .post(app.url("/auth/logout"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::FORBIDDEN, "invalid_csrf_token".into())
    );
    let r = app
        .http
        .post(app.url("/auth/logout"))
        .header("cookie", &jar)
        .header("x-csrf-token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .http
        .post(app.url("/auth/refresh"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::FORBIDDEN, "invalid_csrf_token".into())
    );
    // A forged pair (cookie and header equal but not this session's) is refused too.
    let forged = format!("__Host-tessera_at={at}; tessera_rt={rt}; tessera_csrf=forged");
    let r = app
        .http
        .post(app.url("/auth/logout"))
        .header("cookie", &forged)
        .header("x-csrf-token", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Cookie refresh: empty body, the refresh cookie, and the CSRF header.
    let r = app
        .http
        .post(app.url("/auth/refresh"))
        .header("cookie", &jar)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set2 = set_cookies(r.headers());
    let body2: Value = r.json().await.unwrap();
    assert!(body2.get("refresh_token").is_none());
    let rt2 = cookie_value(&set2, "tessera_rt");
    assert_ne!(rt2, rt);
    let at2 = cookie_value(&set2, "__Host-tessera_at");
    let jar2 = format!("__Host-tessera_at={at2}; tessera_rt={rt2}; tessera_csrf={csrf}");

    let r = app
        .http
        .post(app.url("/auth/logout"))
        .header("cookie", &jar2)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(r.headers());
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("__Host-tessera_at=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let me = app
        .http
        .get(app.url("/auth/me"))
        .header("cookie", &jar2)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&rt2).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn http_loopback_cookies_drop_secure_and_the_prefix() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    let r = app
        .post(
            "/auth/login",
            json!({"username": "ada", "password": "correct horse", "delivery": "cookie"}),
        )
        .await;
    let set = set_cookies(r.headers());
    let at = set.iter().find(|c| c.starts_with("tessera_at=")).unwrap();
    assert!(
        at.ends_with("; Path=/; Max-Age=900; HttpOnly; SameSite=Lax"),
        "{at}"
    );
    assert!(
        !set.iter()
            .any(|c| c.contains("Secure") || c.starts_with("__Host-"))
    );
}

#[tokio::test]
async fn stateful_mode() {
    let app = spawn_app!(|c| c.cookie_secure = tessera_server::config::CookieSecure::Always);
    let reg: Value = app
        .register("Ada", "correct horse")
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .post(
            "/session/login",
            json!({"username": "ada", "password": "correct horse"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let set = set_cookies(r.headers());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["username"], "ada");
    let csrf = s(&body, "csrf_token");
    let sid = cookie_value(&set, "__Host-tessera_sid");
    let c = set
        .iter()
        .find(|c| c.starts_with("__Host-tessera_sid="))
        .unwrap();
    assert!(
        c.ends_with("; Path=/; Max-Age=28800; HttpOnly; SameSite=Lax; Secure"),
        "{c}"
    );
    let jar = format!("__Host-tessera_sid={sid}; tessera_csrf={csrf}");

    let me = app
        .http
        .get(app.url("/session/me"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(
        me,
        json!({"sub": reg["id"], "username": "ada", "roles": []})
    );

    let r = app
        .http
        .post(app.url("/session/logout"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::FORBIDDEN, "invalid_csrf_token".into())
    );
    let r = app
        .http
        .post(app.url("/session/logout"))
        .header("cookie", &jar)
        .header("x-csrf-token", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .http
        .post(app.url("/session/logout"))
        .header("cookie", &jar)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let me = app
        .http
        .get(app.url("/session/me"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(me).await,
        (StatusCode::UNAUTHORIZED, "invalid_session".into())
    );
    let me = app.http.get(app.url("/session/me")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    // The session store keeps only hashes.
    let raw = app.db.raw_contents().await;
    assert!(!raw.windows(sid.len()).any(|w| w == sid.as_bytes()));

    // Sessions expire by the clock.
    let r = app
        .post(
            "/session/login",
            json!({"username": "ada", "password": "correct horse"}),
        )
        .await;
    let sid = cookie_value(&set_cookies(r.headers()), "__Host-tessera_sid");
    app.clock.advance(8 * 3600);
    let me = app
        .http
        .get(app.url("/session/me"))
        .header("cookie", format!("__Host-tessera_sid={sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

// ----- keys, restart, shared database ------------------------------------------------

/// The kids of the access-token keys of a JWKS (ES256 by default; the ID-token
/// keys beside them are RS256).
fn kids(jwks: &Value) -> Vec<String> {
    kids_of_alg(jwks, "ES256")
}

fn kids_of_alg(jwks: &Value, alg: &str) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == alg)
        .map(|k| s(k, "kid"))
        .collect()
}

async fn jwks(app: &TestApp) -> Value {
    app.http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn kid_of(token: &str) -> String {
    s(&b64_json(token.split('.').next().unwrap()), "kid")
}

#[tokio::test]
async fn key_rotation_publishes_next_first_and_keeps_previous_until_expiry() {
    let app = spawn_app!();
    let before = kids(&jwks(&app).await);
    assert_eq!(before.len(), 2);
    let id_before = kids_of_alg(&jwks(&app).await, "RS256");
    assert_eq!(id_before.len(), 2, "ID-token keys are published beside them");
    let t = app.user("ada").await;
    let old_at = s(&t, "access_token");
    let (current, next) = (before[0].clone(), before[1].clone());
    assert_eq!(kid_of(&old_at), current);

    // What `tessera key rotate` does, against the same database.
    let store = tessera_server::startup::open_store(&app.config)
        .await
        .unwrap();
    let alg = app.config.signing_algorithm().unwrap();
    tessera_server::cli::rotate_with(&app.config, store.as_ref(), alg, app.clock.now())
        .await
        .unwrap();
    let core = &app.state().core;
    core.keys
        .reload(core.store.as_ref(), app.clock.now())
        .await
        .unwrap();

    let after = kids(&jwks(&app).await);
    assert_eq!(after.len(), 3, "previous, current, next: {after:?}");
    let id_after = kids_of_alg(&jwks(&app).await, "RS256");
    assert_eq!(&id_after[..2], &id_before[..], "the ID-token keys rotate too");
    assert_eq!(id_after.len(), 3);
    assert_eq!(&after[..2], &[current.clone(), next.clone()]);
    let new_next = after[2].clone();
    assert!(!before.contains(&new_next));
    // The old token still verifies; new tokens are signed by the key published before.
    assert_eq!(
        app.get_bearer("/auth/me", &old_at).await.status(),
        StatusCode::OK
    );
    let t2 = app.tokens("ada").await;
    let mid_at = s(&t2, "access_token");
    assert_eq!(kid_of(&mid_at), next);

    // A second rotation a minute later, while tokens of both earlier keys are alive:
    // neither key leaves the JWKS, and both tokens still verify.
    app.clock.advance(60);
    tessera_server::cli::rotate_with(&app.config, store.as_ref(), alg, app.clock.now())
        .await
        .unwrap();
    core.keys
        .reload(core.store.as_ref(), app.clock.now())
        .await
        .unwrap();
    let twice = kids(&jwks(&app).await);
    assert_eq!(twice.len(), 4, "two previous, current, next: {twice:?}");
    for kid in [&current, &next, &new_next] {
        assert!(twice.contains(kid), "{kid} in {twice:?}");
    }
    let newest_next = twice.iter().find(|k| !after.contains(k)).unwrap().clone();
    for at in [&old_at, &mid_at] {
        assert_eq!(
            app.get_bearer("/auth/me", at).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        kid_of(&s(&app.tokens("ada").await, "access_token")),
        new_next
    );

    // Once every token of a previous key has expired, it is no longer published:
    // first the older one, then the other.
    let publish_for = app.config.access_ttl + app.config.key_reload_interval + 60;
    app.clock.advance(publish_for - 60 + 1);
    core.keys
        .reload(core.store.as_ref(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(
        kids(&jwks(&app).await),
        vec![next.clone(), new_next.clone(), newest_next.clone()]
    );
    app.clock.advance(60);
    core.keys
        .reload(core.store.as_ref(), app.clock.now())
        .await
        .unwrap();
    assert_eq!(kids(&jwks(&app).await), vec![new_next, newest_next]);
    store.close().await;
}

#[tokio::test]
async fn restart_keeps_users_families_keys_and_the_denylist() {
    let mut app = spawn_app!();
    let out = app.user("ada").await;
    let kept = app.tokens("ada").await;
    assert_eq!(
        app.post_bearer("/auth/logout", &s(&out, "access_token"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let keys_before = kids(&jwks(&app).await);

    app.restart().await;

    assert_eq!(kids(&jwks(&app).await), keys_before);
    assert_eq!(
        app.get_bearer("/auth/me", &s(&kept, "access_token"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_bearer("/auth/me", &s(&out, "access_token"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&s(&kept, "refresh_token")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.refresh(&s(&out, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("ada", "correct horse").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_user_added_beside_the_running_server_logs_in_at_once() {
    let app = spawn_app!();
    // What `tessera user add` does: its own connection to the same database.
    let store = tessera_server::startup::open_store(&app.config)
        .await
        .unwrap();
    let hasher = tessera_server::password::Hasher::new(256, 1, 1).unwrap();
    let u = tessera_server::flows::add_user(
        store.as_ref(),
        &hasher,
        app.clock.now(),
        "Grace",
        "correct horse".into(),
        vec!["admin".into(), "ops".into(), "admin".into()],
    )
    .await
    .unwrap();
    assert_eq!(u.username, "grace");
    assert_eq!(u.roles, ["admin", "ops"], "a role given twice is held once");
    let t = app.tokens("grace").await;
    let me: Value = app
        .get_bearer("/auth/me", &s(&t, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["admin", "ops"]));
    store.close().await;
}

// ----- hostile input -----------------------------------------------------------------

#[tokio::test]
async fn bad_requests_get_4xx_in_our_json_shape() {
    let app = spawn_app!();
    let r = app.post_raw("/auth/login", "{\"username\":").await;
    assert_eq!(
        error_of(r).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let r = app
        .http
        .post(app.url("/auth/login"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_request".into())
    );
    let r = app
        .http
        .post(app.url("/auth/login"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = app
        .post("/auth/login", json!({"username": 5, "password": []}))
        .await;
    assert_eq!(
        error_of(r).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let r = app
        .post(
            "/auth/login",
            json!({"username": "a", "password": "b", "delivery": "carrier-pigeon"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .http
        .post(app.url("/auth/refresh"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // No refresh token at all (no body, no cookie, or a null one): log in again.
    for body in ["", "null", "{}", r#"{"refresh_token":null}"#] {
        let r = app.post_raw("/auth/refresh", body).await;
        assert_eq!(
            error_of(r).await,
            (StatusCode::UNAUTHORIZED, "invalid_grant".into()),
            "{body:?}"
        );
    }
    let r = app.post_raw("/auth/refresh", "[").await;
    assert_eq!(
        error_of(r).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let r = app
        .http
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let r = app.http.put(app.url("/auth/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    error_of(r).await;
    let r = app.get_bearer("/auth/me", "not.a.jwt").await;
    assert_eq!(
        error_of(r).await,
        (StatusCode::UNAUTHORIZED, "invalid_token".into())
    );
    let r = app
        .http
        .get(app.url("/auth/me"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let r = app.post_raw("/auth/login", deep).await;
    assert_eq!(
        error_of(r).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let r = app.get_bearer("/auth/me", &"a".repeat(100_000)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_10_mib_body_gets_413() {
    let app = spawn_app!();
    for path in [
        "/auth/login",
        "/auth/register",
        "/auth/refresh",
        "/session/login",
    ] {
        let body = vec![b' '; 10 * 1024 * 1024];
        let r = app.post_raw(path, body).await;
        assert_eq!(
            error_of(r).await,
            (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request".into()),
            "{path}"
        );
    }
    // Without a Content-Length (chunked), the limit holds as the body arrives.
    let chunk = 70 * 1024;
    let mut request = format!(
        "POST /auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk:x}\r\n"
    )
    .into_bytes();
    request.extend(std::iter::repeat_n(b' ', chunk));
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    let (answer, _) = raw_exchange(&app, &request, std::time::Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn a_1_mib_header_gets_4xx() {
    let app = spawn_app!();
    let r = app
        .http
        .get(app.url("/auth/me"))
        .header("x-big", "a".repeat(1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Sends `request` on a new connection and reads until the server closes it or
/// `wait` passes; what came back, and whether the server closed the connection.
async fn raw_exchange(app: &TestApp, request: &[u8], wait: std::time::Duration) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.running.as_ref().unwrap().addr;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
    let app = spawn_app!();
    // No 100 Continue: the client is told at once not to send its 20 MB.
    let (answer, _) = raw_exchange(
        &app,
        b"POST /auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 20000000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(10),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""error":"invalid_request""#), "{answer}");
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off() {
    let app = spawn_app!(|c| c.http_read_timeout = 1);
    let wait = std::time::Duration::from_secs(10);
    // Half a request head, then nothing (slowloris): the connection is closed.
    let (_, closed) = raw_exchange(&app, b"GET /healthz HTTP/1.1\r\nHost: t\r\n", wait).await;
    assert!(closed, "a half-sent head holds its connection open");
    // A connection that never sends a byte.
    let (_, closed) = raw_exchange(&app, b"", wait).await;
    assert!(closed, "a silent connection stays open");
    // A body that stops short of its length: 408 in our shape.
    let (answer, closed) = raw_exchange(
        &app,
        b"POST /auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"us",
        wait,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"invalid_request""#), "{answer}");
    assert!(closed);
    // The server still answers.
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn bodies_paths_and_caching_in_odd_forms() {
    let app = spawn_app!();
    let body = r#"{"username":"ada","password":"correct horse"}"#;
    // Content-Type parameters: whitespace is allowed around `;`; a charset other than
    // UTF-8 is not JSON as RFC 8259 has it.
    for (ct, status) in [
        ("application/json ; charset=utf-8", StatusCode::CREATED),
        ("Application/JSON;charset=\"UTF-8\"", StatusCode::CONFLICT),
        (
            "application/json; charset=latin1",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ] {
        let r = app
            .http
            .post(app.url("/auth/register"))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{ct}");
    }
    // Nesting: 32 levels pass, even in a member nobody reads; 33 do not.
    let nested = |depth: usize| {
        format!(
            r#"{{"username":"nest{depth}","password":"correct horse","x":{}{}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    };
    for (depth, status) in [(32, StatusCode::CREATED), (33, StatusCode::BAD_REQUEST)] {
        let r = app.post_raw("/auth/register", nested(depth)).await;
        assert_eq!(r.status(), status, "depth {depth}");
    }
    // A member named twice is refused, as in tokens, even one nobody reads (serde
    // would refuse a known one itself).
    let r = app
        .post_raw(
            "/auth/login",
            r#"{"username":"ada","password":"correct horse","x":1,"x":2}"#,
        )
        .await;
    assert_eq!(
        error_of(r).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    // A wrong JSON type is a shape error, not a syntax error.
    let r = app
        .post(
            "/auth/login",
            json!({"username": "ada", "password": "correct horse", "delivery": 1}),
        )
        .await;
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error_description"]
            .as_str()
            .unwrap()
            .contains("expected shape"),
        "{e}"
    );
    // A path that is not UTF-8 once decoded: our error shape, not plain text.
    let t = app.tokens("ada").await;
    let at = s(&t, "access_token");
    let r = app
        .http
        .delete(app.url("/auth/sessions/%FF"))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    // Answers about the user are never cached.
    for path in ["/auth/me", "/auth/sessions"] {
        let r = app.get_bearer(path, &at).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }
    let r = app.get_bearer("/auth/me", "bad").await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    // Two Authorization headers: malformed (RFC 6750 §3.1), even if one is good.
    let r = app
        .http
        .get(app.url("/auth/me"))
        .header("authorization", format!("Bearer {at}"))
        .header("authorization", format!("Bearer {at}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_request\""
    );
    assert_eq!(
        error_of(r).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
}

// ----- operations --------------------------------------------------------------------

#[tokio::test]
async fn health_metrics_and_openapi() {
    let app = spawn_app!();
    let h: Value = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h, json!({"status": "ok"}));
    let r: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r,
        json!({"status": "ok", "checks": {"database": "ok", "redis": "off"}})
    );
    app.user("ada").await;
    let m = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let m = m.text().await.unwrap();
    assert!(
        m.contains(
            "tessera_http_requests_total{method=\"POST\",route=\"/auth/login\",status=\"200\"} 1"
        ),
        "{m}"
    );
    assert!(m.contains(
        "tessera_http_request_duration_seconds_count{method=\"POST\",route=\"/auth/login\"} 1"
    ));
    assert!(m.contains("tessera_token_operations_total{op=\"access_issued\"} 1"));
    let doc: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/logout-all",
        "/auth/me",
        "/auth/sessions",
        "/auth/sessions/{id}",
        "/session/login",
        "/session/me",
        "/session/logout",
        "/.well-known/jwks.json",
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/oauth/token",
        "/oauth/introspect",
        "/oauth/revoke",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} missing from /openapi.json"
        );
    }
    // The OAuth endpoints take forms, as their RFCs say, and the schema says so.
    for p in ["/oauth/token", "/oauth/introspect", "/oauth/revoke"] {
        let content = &doc["paths"][p]["post"]["requestBody"]["content"];
        assert!(
            content.get("application/x-www-form-urlencoded").is_some(),
            "{p}: {content}"
        );
        assert!(content.get("application/json").is_none(), "{p}: {content}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["client_secret_basic"]["scheme"],
        "basic"
    );
}

/// The samples of a metrics page without their values: one line per series.
fn metric_series(page: &str) -> Vec<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            l.rsplit_once(' ')
                .map_or(l, |(series, _)| series)
                .to_string()
        })
        .collect()
}

/// The sum of the samples of `name` whose labels hold `label`.
fn metric_sum(page: &str, name: &str, label: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A made-up word of letters only, distinct for every `i`.
fn made_up(i: usize) -> String {
    let mut i = i;
    let mut w = String::from("QZ");
    loop {
        w.push(char::from(b'A' + (i % 26) as u8));
        i /= 26;
        if i == 0 {
            return w;
        }
    }
}

#[tokio::test]
async fn a_flood_of_made_up_methods_and_paths_does_not_grow_metrics() {
    let app = spawn_app!();
    let send = |method: &str, path: String| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.http.request(method, app.url(&path)).send()
    };
    // Every kind of request the flood sends, once, and two scrapes, so that the
    // page already holds every series the flood and the scrape can touch.
    send("QZWARM", "/made-up/warm".into()).await.unwrap();
    send("QZWARM", "/auth/login".into()).await.unwrap();
    send("GET", "/made-up/warm".into()).await.unwrap();
    let scrape = || async {
        app.http
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    scrape().await;
    let before = scrape().await;
    for i in 0..1000 {
        let word = made_up(i);
        assert_ne!(
            send(&word, format!("/made-up/{word}"))
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        send(&word, "/auth/login".into()).await.unwrap();
        send("GET", format!("/{word}/{i}")).await.unwrap();
    }
    let after = scrape().await;
    assert_eq!(metric_series(&before), metric_series(&after));
    let shape = |page: &str| -> String {
        page.lines()
            .map(|l| match l.rsplit_once(' ') {
                Some((series, _)) if !l.starts_with('#') => series,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(shape(&before).len(), shape(&after).len());
    // The made-up methods were counted, under `other`.
    let others = |page: &str| metric_sum(page, "tessera_http_requests_total", "method=\"other\"");
    assert_eq!(others(&after) - others(&before), 2000.0, "{after}");
    assert!(!after.contains("QZ"), "{after}");
    assert!(!after.contains("made-up"), "{after}");
}

#[tokio::test]
async fn cors_is_off_unless_allowed() {
    let preflight = |app: &TestApp, origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let app = spawn_app!();
    let r = preflight(&app, "https://app.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let app = spawn_app!(|c| c.cors_allow_origins = vec!["https://app.example".into()]);
    let r = preflight(&app, "https://app.example").await.unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let r = preflight(&app, "https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn audit_events_are_logged_and_no_secret_ever_is() {
    let logs = common::captured_logs();
    let app = spawn_app!();
    let mut secrets = vec!["correct horse".to_string(), "wrong horse".to_string()];
    let t = app.user("ada").await;
    assert_eq!(
        app.login("ada", "wrong horse").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r: Value = app
        .refresh(&s(&t, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    app.clock.advance(60);
    assert_eq!(
        app.refresh(&s(&t, "refresh_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let t2 = app.tokens("ada").await;
    assert_eq!(
        app.post_bearer("/auth/logout", &s(&t2, "access_token"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let c = app
        .post(
            "/auth/login",
            json!({"username": "ada", "password": "correct horse", "delivery": "cookie"}),
        )
        .await;
    let set = set_cookies(c.headers());
    let body: Value = c.json().await.unwrap();
    let sl = app
        .post(
            "/session/login",
            json!({"username": "ada", "password": "correct horse"}),
        )
        .await;
    let sid = cookie_value(&set_cookies(sl.headers()), "tessera_sid");
    for v in [&t, &r, &t2] {
        secrets.push(s(v, "access_token"));
        secrets.push(s(v, "refresh_token"));
    }
    secrets.push(cookie_value(&set, "tessera_at"));
    secrets.push(cookie_value(&set, "tessera_rt"));
    secrets.push(s(&body, "csrf_token"));
    secrets.push(sid);
    let kek = match &app.config.key_encryption_key {
        Some(k) => secrecy::ExposeSecret::expose_secret(k).to_string(),
        None => {
            std::fs::read_to_string(format!("{}.key", app.config.sqlite_path().unwrap())).unwrap()
        }
    };
    secrets.push(kek.trim().to_string());

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for event in [
        "login_success",
        "login_failure",
        "refresh_reuse",
        "logout",
        "session_login",
        "keys_created",
    ] {
        assert!(
            text.contains(&format!("\"event\":\"{event}\"")),
            "no audit event {event} in the logs"
        );
    }
    for secret in &secrets {
        // Tokens are checked whole and by their signature/last part.
        let tail = &secret[secret.len().saturating_sub(20)..];
        assert!(!text.contains(tail), "a secret reached the logs");
    }
}

// ----- OAuth: clients, the token endpoint, introspection, revocation, discovery ------

/// Registers a client beside the running server, as `tessera client add` does (its
/// own connection to the same database); returns the secret of a confidential one.
async fn add_client(
    app: &TestApp,
    id: &str,
    confidential: bool,
    scopes: &[&str],
    grants: &[&str],
) -> Option<String> {
    let store = tessera_server::startup::open_store(&app.config)
        .await
        .unwrap();
    let r = tessera_server::flows::add_client(
        store.as_ref(),
        app.clock.now(),
        tessera_server::flows::NewClient {
            id: id.into(),
            confidential,
            redirect_uris: vec![format!("https://{id}.example/cb")],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            grants: grants.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    store.close().await;
    r.secret.map(|s| s.to_string())
}

impl TestApp {
    /// POSTs a form, with HTTP Basic client credentials when given.
    async fn post_form(
        &self,
        path: &str,
        params: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let mut r = self.http.post(self.url(path)).form(params);
        if let Some((id, secret)) = basic {
            r = r.basic_auth(id, Some(secret));
        }
        r.send().await.unwrap()
    }

    /// A `client_credentials` token of client `id`; panics unless 200.
    async fn client_token(&self, id: &str, secret: &str, scope: Option<&str>) -> Value {
        let mut params = vec![("grant_type", "client_credentials")];
        if let Some(sc) = scope {
            params.push(("scope", sc));
        }
        let r = self
            .post_form("/oauth/token", &params, Some((id, secret)))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn introspect(&self, client: (&str, &str), token: &str) -> Value {
        let r = self
            .post_form("/oauth/introspect", &[("token", token)], Some(client))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["cache-control"], "no-store");
        r.json().await.unwrap()
    }

    async fn metrics_page(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// An OAuth error answer: (status, code, WWW-Authenticate). Its description keeps
/// to the characters RFC 6749 §5.2 allows.
async fn oauth_error(r: reqwest::Response) -> (StatusCode, String, Option<String>) {
    let status = r.status();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let v: Value = r.json().await.unwrap();
    let description = s(&v, "error_description");
    assert!(
        description
            .chars()
            .all(|c| matches!(c, '\u{20}'..='\u{21}' | '\u{23}'..='\u{5B}' | '\u{5D}'..='\u{7E}')),
        "error_description outside RFC 6749's characters: {description:?}"
    );
    (status, s(&v, "error"), challenge)
}

const BASIC_CHALLENGE: &str = "Basic realm=\"tessera\"";

fn invalid_client() -> (StatusCode, String, Option<String>) {
    (
        StatusCode::UNAUTHORIZED,
        "invalid_client".into(),
        Some(BASIC_CHALLENGE.into()),
    )
}

fn bad(code: &str) -> (StatusCode, String, Option<String>) {
    (StatusCode::BAD_REQUEST, code.into(), None)
}

#[tokio::test]
async fn client_credentials_issues_a_client_token_that_verifies_with_the_jwks() {
    let app = spawn_app!();
    let secret = add_client(
        &app,
        "svc",
        true,
        &["orders:read", "orders:write", "openid"],
        &[],
    )
    .await
    .unwrap();
    let r = app
        .post_form(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("scope", "orders:read")],
            Some(("svc", &secret)),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 900);
    assert_eq!(t["scope"], "orders:read");
    assert!(t.get("refresh_token").is_none(), "no refresh token (RFC 6749 4.4.3)");
    let at = s(&t, "access_token");
    let parts: Vec<&str> = at.split('.').collect();
    assert_eq!(b64_json(parts[0])["typ"], "at+jwt");
    let claims = b64_json(parts[1]);
    assert_eq!(claims["sub"], "svc");
    assert_eq!(claims["client_id"], "svc");
    assert_eq!(claims["scope"], "orders:read");
    assert_eq!(claims["iss"], app.issuer().as_str());
    assert_eq!(claims["aud"], app.issuer().as_str());
    for absent in ["sid", "roles", "username"] {
        assert!(claims.get(absent).is_none(), "{absent} in {claims}");
    }

    // It verifies with the published keys, with tessera-jose and with a guard.
    let set = tessera_jose::JwkSet::from_json(jwks(&app).await.to_string()).unwrap();
    let v = tessera_jose::jwt::Validation::new()
        .typ("at+jwt")
        .issuer(app.issuer())
        .audience(app.issuer());
    tessera_jose::jwt::decode_at::<Value>(&at, &set, &v, app.clock.now()).unwrap();
    let clock = app.clock.clone();
    let guard = tessera_guard::Guard::builder(tessera_guard::StaticKeys::new(set))
        .validation(
            tessera_guard::access_token_validation(&app.issuer(), &app.issuer())
                .require("client_id"),
        )
        .with_clock(Arc::new(move || clock.now()))
        .build();
    let p = guard.verify(&at).await.unwrap();
    assert_eq!(p.client_id(), Some("svc"));
    assert!(p.has_scope("orders:read") && !p.has_scope("orders:write"));

    // Without a scope: the client's, less those about a user. By client_secret_post.
    let r = app
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "svc"),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["scope"], "orders:read orders:write");
    // HTTP Basic with the id and secret form-urlencoded (RFC 6749 2.3.1): "%73vc" is "svc".
    let r = app
        .post_form(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some(("%73vc", &secret)),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // A client's token is not for the /auth routes.
    let r = app.get_bearer("/auth/me", &at).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(error_of(r).await.1, "invalid_token");
    assert_eq!(
        app.post_bearer("/auth/logout-all", &at).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let m = app.metrics_page().await;
    assert!(
        m.contains(
            "tessera_oauth_token_requests_total{grant=\"client_credentials\",outcome=\"issued\"} 3"
        ),
        "{m}"
    );
}

#[tokio::test]
async fn token_endpoint_refusals_carry_the_rfc_6749_codes() {
    let app = spawn_app!();
    let secret = add_client(&app, "svc", true, &["orders:read", "openid"], &[])
        .await
        .unwrap();
    add_client(&app, "spa", false, &["openid"], &[]).await;
    let web = add_client(&app, "web", true, &["openid"], &["authorization_code"])
        .await
        .unwrap();
    let cc = [("grant_type", "client_credentials")];
    let token = |params: &'static [(&'static str, &'static str)], basic| {
        app.post_form("/oauth/token", params, basic)
    };

    // A client whose only scopes are about users has none to be granted for itself:
    // invalid_scope (RFC 6749 §3.3), not a token with an empty scope.
    let users_only = add_client(&app, "users-only", true, &["openid", "profile"], &[])
        .await
        .unwrap();
    let r = app
        .post_form("/oauth/token", &cc, Some(("users-only", &users_only)))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(oauth_error(r).await.1, "invalid_scope");

    // Client authentication: 401 invalid_client with a Basic challenge, whichever way.
    let wrong = Some(("svc", "not-the-secret"));
    assert_eq!(
        oauth_error(app.post_form("/oauth/token", &cc, wrong).await).await,
        invalid_client()
    );
    let r = app
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "svc"),
                ("client_secret", "not-the-secret"),
            ],
            None,
        )
        .await;
    assert_eq!(oauth_error(r).await, invalid_client());
    for basic in [
        Some(("nobody", "x")),
        Some(("svc", "")),
        Some(("bad id!", "x")),
        None,
    ] {
        assert_eq!(
            oauth_error(app.post_form("/oauth/token", &cc, basic).await).await,
            invalid_client(),
            "{basic:?}"
        );
    }
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", "Basic !!not-base64")
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await, invalid_client());
    // A public client has no credentials to authenticate with (RFC 6749 4.4).
    let r = token(
        &[("grant_type", "client_credentials"), ("client_id", "spa")],
        None,
    )
    .await;
    assert_eq!(oauth_error(r).await, invalid_client());
    let r = app
        .post_form("/oauth/token", &cc, Some(("spa", "made-up")))
        .await;
    assert_eq!(oauth_error(r).await, invalid_client());

    // An authenticated client without the grant: unauthorized_client.
    assert_eq!(
        oauth_error(app.post_form("/oauth/token", &cc, Some(("web", &web))).await).await,
        bad("unauthorized_client")
    );
    // Scopes outside the client's, about a user, or malformed: invalid_scope.
    let ok = Some(("svc", secret.as_str()));
    for scope in ["orders:write", "orders:read admin", "openid", "a  b", " a", "a\"b"] {
        let r = app
            .post_form(
                "/oauth/token",
                &[("grant_type", "client_credentials"), ("scope", scope)],
                ok,
            )
            .await;
        assert_eq!(oauth_error(r).await, bad("invalid_scope"), "{scope:?}");
    }
    // Grants this server does not take: unsupported_grant_type.
    for grant in ["password", "implicit"] {
        let r = app
            .post_form("/oauth/token", &[("grant_type", grant)], ok)
            .await;
        assert_eq!(oauth_error(r).await, bad("unsupported_grant_type"), "{grant}");
    }
    // The grants it takes say what they miss.
    for grant in ["authorization_code", "refresh_token"] {
        let r = app
            .post_form("/oauth/token", &[("grant_type", grant)], ok)
            .await;
        assert_eq!(oauth_error(r).await, bad("invalid_request"), "{grant}");
    }
    for (name, value) in [("code", "no-such-code"), ("refresh_token", "no-such-token")] {
        let grant = if name == "code" { "authorization_code" } else { "refresh_token" };
        let r = app
            .post_form(
                "/oauth/token",
                &[
                    ("grant_type", grant),
                    (name, value),
                    ("redirect_uri", "https://svc.example/cb"),
                    ("code_verifier", &"v".repeat(43)),
                ],
                ok,
            )
            .await;
        assert_eq!(oauth_error(r).await, bad("invalid_grant"), "{grant}");
    }
    // No grant_type, or an empty one (a parameter without a value is omitted).
    for params in [&[][..], &[("grant_type", "")][..]] {
        let r = app.post_form("/oauth/token", params, ok).await;
        assert_eq!(oauth_error(r).await, bad("invalid_request"));
    }
    // JSON is refused; the body is a form (RFC 6749 3.2).
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("svc", Some(&secret))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await, bad("invalid_request"));
    // Two authentication methods at once, a parameter twice: invalid_request.
    let r = app
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_secret", secret.as_str()),
            ],
            ok,
        )
        .await;
    assert_eq!(oauth_error(r).await, bad("invalid_request"));
    let r = app
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("scope", "orders:read"),
                ("scope", "orders:read"),
            ],
            ok,
        )
        .await;
    assert_eq!(oauth_error(r).await, bad("invalid_request"));
    // After all that, the right credentials still work (the limits count 8 failures
    // of svc, under the default 10).
    app.client_token("svc", &secret, None).await;
    let m = app.metrics_page().await;
    assert!(
        m.contains("tessera_oauth_operations_total{op=\"client_auth_failure\"}"),
        "{m}"
    );
    assert!(
        metric_sum(&m, "tessera_oauth_token_requests_total", "outcome=\"refused\"") >= 20.0,
        "{m}"
    );
}

#[tokio::test]
async fn failed_client_authentications_are_limited_per_client_and_per_address() {
    let app = spawn_app!(|c| {
        c.rate_limit_account_failures = 3;
        c.rate_limit_address_failures = 5;
    });
    let secret = add_client(&app, "svc", true, &["api"], &[]).await.unwrap();
    let other = add_client(&app, "other", true, &["api"], &[]).await.unwrap();
    let cc = [("grant_type", "client_credentials")];
    for _ in 0..3 {
        let r = app.post_form("/oauth/token", &cc, Some(("svc", "wrong"))).await;
        assert_eq!(oauth_error(r).await, invalid_client());
    }
    // The client's counter is full: even the right secret waits.
    let r = app
        .post_form("/oauth/token", &cc, Some(("svc", &secret)))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(error_of(r).await.1, "too_many_requests");
    // Another client is not held back by svc's failures...
    app.client_token("other", &other, None).await;
    // ...until this address has failed too often.
    for _ in 0..2 {
        let r = app
            .post_form("/oauth/token", &cc, Some(("nobody", "x")))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app
        .post_form("/oauth/token", &cc, Some(("other", &other)))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // The introspection and revocation endpoints count the same failures.
    let r = app
        .post_form("/oauth/introspect", &[("token", "x")], Some(("other", &other)))
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // The window passes.
    app.clock.advance(app.config.rate_limit_window + 1);
    app.client_token("svc", &secret, None).await;
}

#[tokio::test]
async fn introspection_tells_active_tokens_from_everything_else() {
    let app = spawn_app!();
    let rs = add_client(&app, "rs", true, &[], &[]).await.unwrap();
    let svc = add_client(&app, "svc", true, &["orders:read"], &[])
        .await
        .unwrap();
    add_client(&app, "spa", false, &["openid"], &[]).await;
    let rs = ("rs", rs.as_str());
    let inactive = json!({"active": false});

    // A client's token.
    let t = app.client_token("svc", &svc, None).await;
    let at = s(&t, "access_token");
    let claims = b64_json(at.split('.').nth(1).unwrap());
    let v = app.introspect(rs, &at).await;
    assert_eq!(
        v,
        json!({
            "active": true,
            "scope": "orders:read",
            "client_id": "svc",
            "token_type": "Bearer",
            "sub": "svc",
            "exp": claims["exp"],
            "iat": claims["iat"],
            "iss": app.issuer(),
            "aud": app.issuer(),
            "jti": claims["jti"],
        })
    );
    // A user's /auth tokens: the access token with the username, the refresh token.
    let u = app.user("ada").await;
    let v = app.introspect(rs, &s(&u, "access_token")).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["username"], "ada");
    assert_eq!(v["scope"], "api");
    assert!(v.get("client_id").is_none(), "{v}");
    let user_id = v["sub"].clone();
    let rt = s(&u, "refresh_token");
    let v = app.introspect(rs, &rt).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["token_type"], "refresh_token");
    assert_eq!(v["sub"], user_id);
    assert_eq!(v["username"], "ada");
    assert_eq!(v["exp"], app.clock.now() + 14 * 86_400);
    // Spent by a refresh: the old one is no longer active, the new one is.
    let r: Value = app.refresh(&rt).await.json().await.unwrap();
    assert_eq!(app.introspect(rs, &rt).await, inactive);
    assert_eq!(
        app.introspect(rs, &s(&r, "refresh_token")).await["active"],
        true
    );
    // Revoked (logout): inactive, nothing more said.
    assert_eq!(
        app.post_bearer("/auth/logout", &s(&r, "access_token"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.introspect(rs, &s(&r, "access_token")).await, inactive);
    assert_eq!(app.introspect(rs, &s(&r, "refresh_token")).await, inactive);
    // Garbled, tampered or unknown: inactive.
    let mut tampered = at.clone();
    tampered.pop();
    tampered.push(if at.ends_with('A') { 'B' } else { 'A' });
    for garbage in [
        "abc.def.ghi",
        "not-a-token",
        tampered.as_str(),
        &"x".repeat(5000),
        "a.b",
    ] {
        assert_eq!(app.introspect(rs, garbage).await, inactive, "{garbage:.20}");
    }
    // Expired, by the clock.
    assert_eq!(app.introspect(rs, &at).await["active"], true);
    app.clock.advance(901);
    assert_eq!(app.introspect(rs, &at).await, inactive);

    // Introspection needs an authenticated client: not a public one, not no one.
    let r = app
        .post_form("/oauth/introspect", &[("token", &at), ("client_id", "spa")], None)
        .await;
    assert_eq!(oauth_error(r).await, invalid_client());
    let r = app.post_form("/oauth/introspect", &[("token", &at)], None).await;
    assert_eq!(oauth_error(r).await, invalid_client());
    let r = app
        .post_form("/oauth/introspect", &[("token", &at)], Some(("rs", "wrong")))
        .await;
    assert_eq!(oauth_error(r).await, invalid_client());
    let r = app.post_form("/oauth/introspect", &[], Some(rs)).await;
    assert_eq!(oauth_error(r).await, bad("invalid_request"));
    let m = app.metrics_page().await;
    assert!(m.contains("tessera_oauth_operations_total{op=\"introspection_active\"}"));
}

#[tokio::test]
async fn revocation_reaches_introspection_and_a_guard_on_the_revocation_feed() {
    const FEED_TOKEN: &str = "a-feed-token-for-resource-servers";
    let logs = common::captured_logs();
    let app = spawn_app!(|c| c.revocation_feed_tokens = vec![FEED_TOKEN.into()]);
    let svc = add_client(&app, "svc", true, &["api"], &[]).await.unwrap();
    let other = add_client(&app, "other", true, &["api"], &[])
        .await
        .unwrap();
    add_client(&app, "spa", false, &["openid"], &[]).await;
    let svc_c = ("svc", svc.as_str());
    let other_c = ("other", other.as_str());
    let at = s(&app.client_token("svc", &svc, None).await, "access_token");

    // A resource server's guard, on the JWKS and the revocation feed.
    let set = tessera_jose::JwkSet::from_json(jwks(&app).await.to_string()).unwrap();
    let feed = tessera_guard::RevocationFeed::new(&app.url("/auth/revocations"), FEED_TOKEN)
        .unwrap()
        .backoff(
            std::time::Duration::from_millis(50),
            std::time::Duration::from_millis(200),
        );
    let _task = feed.start();
    let clock = app.clock.clone();
    let guard = tessera_guard::Guard::builder(tessera_guard::StaticKeys::new(set))
        .validation(
            tessera_guard::access_token_validation(&app.issuer(), &app.issuer())
                .require("client_id"),
        )
        .with_revocation(Arc::new(feed.clone()))
        .with_clock(Arc::new(move || clock.now()))
        .build();
    assert!(guard.verify(&at).await.is_ok());

    // Another client's revocation of it: 200, and nothing revoked (RFC 7009 2.1).
    let r = app
        .post_form("/oauth/revoke", &[("token", &at)], Some(other_c))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.introspect(other_c, &at).await["active"], true);
    // A public client may revoke, with its id alone; another's token stays too.
    let r = app
        .post_form("/oauth/revoke", &[("token", &at), ("client_id", "spa")], None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.introspect(other_c, &at).await["active"], true);

    // Its own client revokes it: inactive at once, and the guard hears of it.
    let r = app
        .post_form(
            "/oauth/revoke",
            &[("token", &at), ("token_type_hint", "access_token")],
            Some(svc_c),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(app.introspect(other_c, &at).await, json!({"active": false}));
    let since = std::time::Instant::now();
    while guard.verify(&at).await.is_ok() {
        assert!(
            since.elapsed() < std::time::Duration::from_secs(10),
            "the guard still accepts a revoked token"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Again, garbled, unknown, or with the wrong hint: 200 all the same.
    for (token, hint) in [
        (at.as_str(), "access_token"),
        (at.as_str(), "refresh_token"),
        ("abc.def.ghi", "access_token"),
        ("not-a-token", "refresh_token"),
    ] {
        let r = app
            .post_form(
                "/oauth/revoke",
                &[("token", token), ("token_type_hint", hint)],
                Some(svc_c),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{token} {hint}");
    }
    // A hint of a kind this server has none of; no token; no client.
    let r = app
        .post_form(
            "/oauth/revoke",
            &[("token", "x"), ("token_type_hint", "id_token")],
            Some(svc_c),
        )
        .await;
    assert_eq!(oauth_error(r).await, bad("unsupported_token_type"));
    let r = app.post_form("/oauth/revoke", &[], Some(svc_c)).await;
    assert_eq!(oauth_error(r).await, bad("invalid_request"));
    let r = app
        .post_form("/oauth/revoke", &[("token", "x")], Some(("svc", "wrong")))
        .await;
    assert_eq!(oauth_error(r).await, invalid_client());
    let r = app.post_form("/oauth/revoke", &[("token", "x")], None).await;
    assert_eq!(oauth_error(r).await, invalid_client());

    // Refresh tokens: a user's grant to svc (made in the store, as the authorization
    // code flow will) is revoked with its family by svc, not by another client.
    let u = app.user("ada").await;
    let user_id = b64_json(s(&u, "access_token").split('.').nth(1).unwrap())["sub"]
        .as_str()
        .unwrap()
        .to_string();
    let store = tessera_server::startup::open_store(&app.config)
        .await
        .unwrap();
    let granted = "a-refresh-token-of-a-grant-to-svc-0123456789";
    let now = app.clock.now();
    store
        .create_family(
            &tessera_server::store::Family {
                id: "grant-family".into(),
                user_id,
                created_at: now,
                last_used_at: now,
                user_agent: None,
                ip: None,
                client_id: Some("svc".into()),
                ..Default::default()
            },
            &tessera_server::store::NewRefresh {
                hash: tessera_server::crypto::hash_secret(granted),
            },
            app.config_family_policy(),
            None,
        )
        .await
        .unwrap();
    store.close().await;
    let v = app.introspect(other_c, granted).await;
    assert_eq!((v["active"].clone(), v["client_id"].clone()), (json!(true), json!("svc")));
    let r = app
        .post_form("/oauth/revoke", &[("token", granted)], Some(other_c))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.introspect(other_c, granted).await["active"], true);
    let r = app
        .post_form(
            "/oauth/revoke",
            &[("token", granted), ("token_type_hint", "refresh_token")],
            Some(svc_c),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.introspect(other_c, granted).await, json!({"active": false}));
    // An /auth refresh token is no client's: nothing revoked, it still refreshes.
    let r = app
        .post_form(
            "/oauth/revoke",
            &[("token", &s(&u, "refresh_token"))],
            Some(svc_c),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.refresh(&s(&u, "refresh_token")).await.status(),
        StatusCode::OK
    );

    let m = app.metrics_page().await;
    assert!(
        m.contains("tessera_oauth_operations_total{op=\"revocation\"} 2"),
        "{m}"
    );
    // Audit: the failures and the revocations, and never a secret.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for event in ["client_auth_failure", "token_revoked", "client_created"] {
        assert!(
            text.contains(&format!("\"event\":\"{event}\"")),
            "no audit event {event}"
        );
    }
    for secret in [&svc, &other, &at] {
        assert!(!text.contains(&secret[secret.len() - 20..]), "a secret reached the logs");
    }
}

impl TestApp {
    fn config_family_policy(&self) -> tessera_server::store::FamilyPolicy {
        tessera_server::store::FamilyPolicy {
            idle: self.config.refresh_idle_ttl,
            absolute: self.config.refresh_absolute_ttl,
        }
    }
}

#[tokio::test]
async fn a_client_added_or_removed_beside_the_running_server_counts_at_once() {
    let app = spawn_app!();
    let cc = [("grant_type", "client_credentials")];
    let r = app.post_form("/oauth/token", &cc, Some(("late", "x"))).await;
    assert_eq!(oauth_error(r).await, invalid_client());
    let secret = add_client(&app, "late", true, &["api"], &[]).await.unwrap();
    app.client_token("late", &secret, None).await;
    let store = tessera_server::startup::open_store(&app.config)
        .await
        .unwrap();
    tessera_server::flows::remove_client(store.as_ref(), "late")
        .await
        .unwrap();
    store.close().await;
    // A removed client stops authenticating within the server's client cache time
    // (one second), on every node.
    let removed_at = std::time::Instant::now();
    loop {
        let r = app.post_form("/oauth/token", &cc, Some(("late", &secret))).await;
        if r.status() == StatusCode::UNAUTHORIZED {
            assert_eq!(oauth_error(r).await, invalid_client());
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            removed_at.elapsed() < tessera_server::flows::CLIENT_CACHE_FOR * 3,
            "a removed client still authenticates after {:?}",
            removed_at.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn discovery_documents_name_only_real_endpoints() {
    let app = spawn_app!(|c| c.oauth_scopes = vec!["orders:read".into()]);
    let app = &app;
    let get = |path: &'static str| async move {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.json::<Value>().await.unwrap()
    };
    let oidc = get("/.well-known/openid-configuration").await;
    let rfc8414 = get("/.well-known/oauth-authorization-server").await;
    assert_eq!(oidc, rfc8414);
    let issuer = app.issuer();
    assert_eq!(oidc["issuer"], issuer.as_str());
    let endpoints = [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
    ];
    for name in endpoints {
        let url = s(&oidc, name);
        let path = url
            .strip_prefix(&issuer)
            .unwrap_or_else(|| panic!("{name} {url} is not under the issuer {issuer}"));
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let r = app
                .http
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap();
            assert_ne!(r.status(), StatusCode::NOT_FOUND, "{method} {name} {path}");
            assert!(!r.status().is_server_error(), "{method} {name}: {}", r.status());
        }
    }
    let array = |name: &str| oidc[name].clone();
    assert_eq!(array("response_types_supported"), json!(["code"]));
    assert_eq!(array("response_modes_supported"), json!(["query", "form_post"]));
    assert_eq!(
        array("grant_types_supported"),
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(array("code_challenge_methods_supported"), json!(["S256"]));
    assert_eq!(
        array("token_endpoint_auth_methods_supported"),
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(array("subject_types_supported"), json!(["public"]));
    assert_eq!(
        array("scopes_supported"),
        json!(["openid", "profile", "offline_access", "orders:read"])
    );
    // ID tokens are signed by keys of their own, RS256 by default, published in
    // the JWKS.
    assert_eq!(array("id_token_signing_alg_values_supported"), json!(["RS256"]));
    assert_eq!(kids_of_alg(&jwks(app).await, "RS256").len(), 2);
    assert_eq!(oidc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(oidc["request_uri_parameter_supported"], false);
    assert!(array("claims_supported").as_array().unwrap().contains(&json!("sub")));
    // The authorization endpoint without a client answers a page, not a redirect.
    let r = app.http.get(app.url("/oauth/authorize")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}

// ----- OpenID Connect: the authorization code flow, driven like a browser ------------

/// Registers an OpenID Connect client beside the running server: redirect URI
/// `https://ID.example/cb`, post-logout URI `https://ID.example/bye`, the default
/// grants; returns the secret of a confidential one.
async fn add_oidc_client(app: &TestApp, id: &str, confidential: bool, scopes: &[&str]) -> Option<String> {
    let store = tessera_server::startup::open_store(&app.config)
        .await
        .unwrap();
    let r = tessera_server::flows::add_client(
        store.as_ref(),
        app.clock.now(),
        tessera_server::flows::NewClient {
            id: id.into(),
            confidential,
            redirect_uris: vec![format!("https://{id}.example/cb")],
            post_logout_redirect_uris: vec![format!("https://{id}.example/bye")],
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            grants: vec![],
        },
    )
    .await
    .unwrap();
    store.close().await;
    r.secret.map(|s| s.to_string())
}

/// A browser without JavaScript: it follows nothing by itself and keeps its cookies
/// by hand, as a server sets them.
struct Browser {
    http: reqwest::Client,
    cookies: std::collections::BTreeMap<String, String>,
}

/// An answer as a browser saw it.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    /// The value of the hidden (or any) input `name` of the page's form.
    fn field(&self, name: &str) -> String {
        let needle = format!("name=\"{name}\" value=\"");
        let at = self
            .body
            .find(&needle)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body));
        let rest = &self.body[at + needle.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    /// The parameters of the redirect's Location, which must start with `prefix`.
    fn redirected_to(&self, prefix: &str) -> std::collections::HashMap<String, String> {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        let location = self.headers["location"].to_str().unwrap();
        assert!(location.starts_with(prefix), "{location} is not under {prefix}");
        let query = location.split_once('?').map_or("", |(_, q)| q);
        form_urlencoded::parse(query.as_bytes()).into_owned().collect()
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .to_string()
    }
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, r: reqwest::Response) -> Page {
        for c in set_cookies(r.headers()) {
            let (pair, attrs) = c.split_once(';').unwrap_or((&c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            assert!(attrs.contains("HttpOnly"), "{c}");
            assert!(attrs.contains("SameSite=Lax") && attrs.contains("Path=/"), "{c}");
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
        Page {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        let r = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.take(r).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.take(r).await
    }
}

/// A PKCE pair: (verifier, S256 challenge).
fn pkce() -> (String, String) {
    let verifier = format!("{}-verifier-{}", tessera_server::crypto::random_token().unwrap(), "x".repeat(8));
    let challenge = tessera_server::crypto::pkce_s256(&verifier);
    (verifier, challenge)
}

impl TestApp {
    /// The authorization URL of client `id` with these parameters on top of a good
    /// request's (`response_type=code`, its redirect URI, `scope=openid`, S256).
    fn authorize_url(&self, id: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
        let mut params: Vec<(&str, String)> = vec![
            ("response_type", "code".into()),
            ("client_id", id.into()),
            ("redirect_uri", format!("https://{id}.example/cb")),
            ("scope", "openid".into()),
            ("state", "st-1".into()),
            ("code_challenge", challenge.into()),
            ("code_challenge_method", "S256".into()),
        ];
        for (k, v) in extra {
            params.retain(|(n, _)| n != k);
            if !v.is_empty() {
                params.push((k, v.to_string()));
            }
        }
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            q.append_pair(k, v);
        }
        self.url(&format!("/oauth/authorize?{}", q.finish()))
    }

    /// Drives the pages: login (when asked) as `username`, consent (when asked)
    /// allowed; returns the code the client got, checked with its state and iss.
    async fn code_for(&self, b: &mut Browser, id: &str, challenge: &str, extra: &[(&str, &str)], username: &str) -> String {
        let mut page = b.get(&self.authorize_url(id, challenge, extra)).await;
        if page.body.contains(">Sign in</button>") {
            assert_eq!(page.status, StatusCode::OK);
            let csrf = page.field("csrf_token");
            page = b
                .post(
                    &self.url("/oauth/authorize/login"),
                    &[("csrf_token", &csrf), ("username", username), ("password", "correct horse")],
                )
                .await;
        }
        if page.body.contains(">Allow</button>") {
            assert_eq!(page.status, StatusCode::OK);
            let csrf = page.field("csrf_token");
            page = b
                .post(
                    &self.url("/oauth/authorize/consent"),
                    &[("csrf_token", &csrf), ("decision", "allow")],
                )
                .await;
        }
        let p = page.redirected_to(&format!("https://{id}.example/cb?"));
        let want_state = extra
            .iter()
            .find(|(k, _)| *k == "state")
            .map_or("st-1", |(_, v)| v);
        assert_eq!(p.get("state").map(String::as_str), Some(want_state));
        assert_eq!(p["iss"], self.issuer());
        p["code"].clone()
    }

    /// Redeems a code at the token endpoint.
    async fn redeem(&self, id: &str, secret: Option<&str>, code: &str, verifier: Option<&str>) -> reqwest::Response {
        let redirect = format!("https://{id}.example/cb");
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        match secret {
            Some(sec) => self.post_form("/oauth/token", &form, Some((id, sec))).await,
            None => {
                form.push(("client_id", id));
                self.post_form("/oauth/token", &form, None).await
            }
        }
    }
}

/// The claims of an ID token verified with the published JWKS as a relying party
/// would: RS256, issuer, audience.
async fn verified_id_token(app: &TestApp, id_token: &str, client: &str) -> Value {
    let header = b64_json(id_token.split('.').next().unwrap());
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    let set = tessera_jose::JwkSet::from_json(jwks(app).await.to_string()).unwrap();
    let v = tessera_jose::jwt::Validation::new()
        .algorithms(&[tessera_jose::Algorithm::RS256])
        .issuer(app.issuer())
        .audience(client);
    tessera_jose::jwt::decode_at::<Value>(id_token, &set, &v, app.clock.now())
        .unwrap()
        .claims
}

#[tokio::test]
async fn the_code_flow_issues_tokens_and_an_id_token_that_verifies_with_the_jwks() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    let secret = add_oidc_client(&app, "web", true, &["openid", "profile", "offline_access", "api"])
        .await
        .unwrap();
    let (verifier, challenge) = pkce();
    let mut b = Browser::new();

    // The login page: labels, button, CSRF token, security headers; the username
    // prefilled from login_hint.
    let page = b
        .get(&app.authorize_url(
            "web",
            &challenge,
            &[("scope", "openid profile"), ("nonce", "n-123"), ("login_hint", "ada")],
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-type").starts_with("text/html"));
    for needle in [
        r#"<label for="username">Username</label>"#,
        r#"<label for="password">Password</label>"#,
        r#"<button type="submit">Sign in</button>"#,
        r#"name="username" type="text""#,
        r#"value="ada""#,
    ] {
        assert!(page.body.contains(needle), "{needle} in {}", page.body);
    }
    assert!(page.body.contains(r#"id="username""#) && page.body.contains(r#"id="password""#));
    let csp = page.header("content-security-policy");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("form-action 'self' https://web.example"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("script-src"), "{csp}");
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("cache-control"), "no-store");
    assert!(!page.body.contains("<script"), "the login page needs no JavaScript");
    let csrf = page.field("csrf_token");
    assert!(csrf.len() >= 32);

    // Signing in leads to the consent page, which names the client and each scope.
    let page = b
        .post(
            &app.url("/oauth/authorize/login"),
            &[("csrf_token", &csrf), ("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let op_cookie = b.cookies.keys().find(|k| k.ends_with("tessera_op")).cloned();
    assert_eq!(op_cookie.as_deref(), Some("tessera_op"), "{:?}", b.cookies);
    for needle in [
        "<strong>web</strong>",
        "<code>openid</code>",
        "<code>profile</code>",
        r#"name="decision" value="allow">Allow</button>"#,
        r#"name="decision" value="deny" class="secondary">Deny</button>"#,
    ] {
        assert!(page.body.contains(needle), "{needle} in {}", page.body);
    }
    assert_eq!(page.field("csrf_token"), csrf);
    let page = b
        .post(
            &app.url("/oauth/authorize/consent"),
            &[("csrf_token", &csrf), ("decision", "allow")],
        )
        .await;
    let p = page.redirected_to("https://web.example/cb?");
    assert_eq!((p["state"].as_str(), p["iss"].as_str()), ("st-1", app.issuer().as_str()));
    assert!(!b.cookies.keys().any(|k| k.ends_with("tessera_authz")), "the request's cookie went");
    let code = p["code"].clone();

    // The code for tokens: no refresh token without offline_access.
    let r = app.redeem("web", Some(&secret), &code, Some(&verifier)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "openid profile");
    assert!(t.get("refresh_token").is_none(), "{t}");
    let at = s(&t, "access_token");
    let claims = b64_json(at.split('.').nth(1).unwrap());
    assert_eq!(b64_json(at.split('.').next().unwrap())["typ"], "at+jwt");
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["scope"], "openid profile");
    let grant_sid = s(&claims, "sid");
    for absent in ["roles", "username"] {
        assert!(claims.get(absent).is_none(), "{absent}: {claims}");
    }

    // The ID token, verified with the JWKS as a relying party does.
    let id = verified_id_token(&app, &s(&t, "id_token"), "web").await;
    let user_id = s(&claims, "sub");
    assert_eq!(id["sub"], user_id.as_str());
    assert_eq!(id["aud"], "web");
    assert_eq!(id["azp"], "web");
    assert_eq!(id["nonce"], "n-123");
    assert_eq!(id["at_hash"], tessera_server::crypto::at_hash(&at).as_str());
    let now = app.clock.now();
    assert!((now - 5..=now).contains(&id["auth_time"].as_i64().unwrap()), "{id}");
    assert!(id["exp"].as_i64().unwrap() > now);
    let op_sid = s(&id, "sid");
    assert_ne!(op_sid, grant_sid, "the ID token names the provider session");
    assert!(!b.cookies.values().any(|v| v == &op_sid), "the sid is not the cookie");

    // Userinfo, by GET and by POST.
    for post in [false, true] {
        let req = if post { app.http.post(app.url("/oauth/userinfo")) } else { app.http.get(app.url("/oauth/userinfo")) };
        let r = req.bearer_auth(&at).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let u: Value = r.json().await.unwrap();
        assert_eq!(u, json!({"sub": user_id, "preferred_username": "ada"}));
    }
    // Userinfo refusals carry their RFC 6750 challenge.
    let r = app.http.get(app.url("/oauth/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = app.get_bearer("/oauth/userinfo", "garbage.token.here").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
    let session = app.tokens("ada").await;
    let r = app.get_bearer("/oauth/userinfo", &s(&session, "access_token")).await;
    assert_eq!(error_of(r).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
    let cc = app.client_token("web", &secret, Some("api")).await;
    let r = app.get_bearer("/oauth/userinfo", &s(&cc, "access_token")).await;
    assert_eq!(error_of(r).await.1, "invalid_token", "a client's own token has no user");

    // A grant's token is not for /auth.
    assert_eq!(app.get_bearer("/auth/me", &at).await.status(), StatusCode::UNAUTHORIZED);

    // Introspection sees it; revocation ends it, and introspection and userinfo see that.
    let i = app.introspect(("web", &secret), &at).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], "web");
    assert_eq!(i["username"], "ada");
    let r = app
        .post_form("/oauth/revoke", &[("token", &at)], Some(("web", &secret)))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.introspect(("web", &secret), &at).await, json!({"active": false}));
    let r = app.get_bearer("/oauth/userinfo", &at).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Without profile: no username at userinfo; without openid: no ID token, and
    // userinfo answers insufficient_scope.
    let (v2, c2) = pkce();
    let code = app.code_for(&mut b, "web", &c2, &[("scope", "openid")], "ada").await;
    let t: Value = app.redeem("web", Some(&secret), &code, Some(&v2)).await.json().await.unwrap();
    let u: Value = app.get_bearer("/oauth/userinfo", &s(&t, "access_token")).await.json().await.unwrap();
    assert_eq!(u, json!({"sub": user_id}));
    let (v3, c3) = pkce();
    let code = app.code_for(&mut b, "web", &c3, &[("scope", "api")], "ada").await;
    let t: Value = app.redeem("web", Some(&secret), &code, Some(&v3)).await.json().await.unwrap();
    assert!(t.get("id_token").is_none(), "{t}");
    let r = app.get_bearer("/oauth/userinfo", &s(&t, "access_token")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\", scope=\"openid\""
    );

    let m = app.metrics_page().await;
    for line in [
        "tessera_oauth_token_requests_total{grant=\"authorization_code\",outcome=\"issued\"} 3",
        "tessera_oauth_operations_total{op=\"code_issued\"} 3",
        "tessera_oauth_operations_total{op=\"code_redeemed\"} 3",
        "tessera_oauth_operations_total{op=\"consent_granted\"} 2",
    ] {
        assert!(m.contains(line), "{line} in {m}");
    }
}

#[tokio::test]
async fn oauth_refresh_tokens_rotate_and_a_reuse_revokes_the_grant() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    add_oidc_client(&app, "spa", false, &["openid", "offline_access"]).await;
    let (verifier, challenge) = pkce();
    let mut b = Browser::new();
    let code = app
        .code_for(&mut b, "spa", &challenge, &[("scope", "openid offline_access"), ("nonce", "n1")], "ada")
        .await;
    // A public client redeems with its client_id alone.
    let r = app.redeem("spa", None, &code, Some(&verifier)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    let rt = s(&t, "refresh_token");
    let first_at = s(&t, "access_token");

    let refresh = |token: String| {
        let app = &app;
        async move {
            app.post_form(
                "/oauth/token",
                &[("grant_type", "refresh_token"), ("refresh_token", &token), ("client_id", "spa")],
                None,
            )
            .await
        }
    };
    let r = refresh(rt.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t2: Value = r.json().await.unwrap();
    let rt2 = s(&t2, "refresh_token");
    assert_ne!(rt2, rt, "rotated");
    assert_eq!(t2["scope"], "openid offline_access");
    let id = verified_id_token(&app, &s(&t2, "id_token"), "spa").await;
    assert!(id.get("nonce").is_none(), "no nonce at a refresh: {id}");
    assert_eq!(id["auth_time"], verified_id_token(&app, &s(&t, "id_token"), "spa").await["auth_time"]);
    // Within the reuse interval the spent token answers the same successor.
    let again: Value = refresh(rt.clone()).await.json().await.unwrap();
    assert_eq!(s(&again, "refresh_token"), rt2);
    // A refresh token of the grant is no /auth refresh token, and no other client's.
    let r = app.refresh(&rt2).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    add_oidc_client(&app, "other", false, &["openid"]).await;
    let r = app
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &rt2), ("client_id", "other")],
            None,
        )
        .await;
    assert_eq!(oauth_error(r).await, bad("invalid_grant"));
    // Narrowing the scope is allowed, widening is not.
    let r = app
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &rt2), ("client_id", "spa"), ("scope", "openid profile")],
            None,
        )
        .await;
    assert_eq!(oauth_error(r).await, bad("invalid_scope"));
    let r = app
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &rt2), ("client_id", "spa"), ("scope", "openid")],
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let t3: Value = r.json().await.unwrap();
    assert_eq!(t3["scope"], "openid");
    let live_at = s(&t3, "access_token");
    assert_eq!(app.get_bearer("/oauth/userinfo", &live_at).await.status(), StatusCode::OK);

    // After the reuse interval, a spent token is theft: the grant ends, its access
    // tokens with it.
    app.clock.advance(11);
    let r = refresh(rt.clone()).await;
    assert_eq!(oauth_error(r).await, bad("invalid_grant"));
    let r = refresh(s(&t3, "refresh_token")).await;
    assert_eq!(oauth_error(r).await, bad("invalid_grant"), "the family is revoked");
    for at in [&first_at, &live_at] {
        assert_eq!(app.get_bearer("/oauth/userinfo", at).await.status(), StatusCode::UNAUTHORIZED);
    }
    let m = app.metrics_page().await;
    assert!(
        m.contains("tessera_oauth_token_requests_total{grant=\"refresh_token\",outcome=\"issued\"} 3"),
        "{m}"
    );
}

#[tokio::test]
async fn single_sign_on_reaches_a_second_client_without_the_password() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    let s1 = add_oidc_client(&app, "one", true, &["openid"]).await.unwrap();
    let s2 = add_oidc_client(&app, "two", true, &["openid"]).await.unwrap();
    let mut b = Browser::new();
    let (v1, c1) = pkce();
    let code = app.code_for(&mut b, "one", &c1, &[], "ada").await;
    let t1: Value = app.redeem("one", Some(&s1), &code, Some(&v1)).await.json().await.unwrap();
    let id1 = verified_id_token(&app, &s(&t1, "id_token"), "one").await;

    // The second client: no login page, only its consent; the same provider session.
    app.clock.advance(30);
    let (v2, c2) = pkce();
    let page = b.get(&app.authorize_url("two", &c2, &[])).await;
    assert!(!page.body.contains("Sign in"), "{}", page.body);
    assert!(page.body.contains(">Allow</button>"), "{}", page.body);
    let csrf = page.field("csrf_token");
    let page = b
        .post(&app.url("/oauth/authorize/consent"), &[("csrf_token", &csrf), ("decision", "allow")])
        .await;
    let code = page.redirected_to("https://two.example/cb?")["code"].clone();
    let t2: Value = app.redeem("two", Some(&s2), &code, Some(&v2)).await.json().await.unwrap();
    let id2 = verified_id_token(&app, &s(&t2, "id_token"), "two").await;
    assert_eq!(id2["sid"], id1["sid"]);
    assert_eq!(id2["auth_time"], id1["auth_time"], "no new login");
    assert_eq!(id2["sub"], id1["sub"]);

    // The same client later: consent is remembered, so the code comes at once.
    let (_, c3) = pkce();
    let page = b.get(&app.authorize_url("one", &c3, &[])).await;
    page.redirected_to("https://one.example/cb?");
    // prompt=none answers with a code too.
    let page = b.get(&app.authorize_url("one", &c3, &[("prompt", "none")])).await;
    assert!(page.redirected_to("https://one.example/cb?").contains_key("code"));

    // max_age shorter than the session's age, or prompt=login, asks again.
    for extra in [[("max_age", "10")], [("prompt", "login")]] {
        let page = b.get(&app.authorize_url("one", &c3, &extra)).await;
        assert!(page.body.contains(">Sign in</button>"), "{extra:?}: {}", page.body);
    }
    let page = b
        .get(&app.authorize_url("one", &c3, &[("max_age", "10"), ("prompt", "none")]))
        .await;
    assert_eq!(page.redirected_to("https://one.example/cb?")["error"], "login_required");
    let (v4, c4) = pkce();
    let code = app.code_for(&mut b, "one", &c4, &[("prompt", "login")], "ada").await;
    let t4: Value = app.redeem("one", Some(&s1), &code, Some(&v4)).await.json().await.unwrap();
    let id4 = verified_id_token(&app, &s(&t4, "id_token"), "one").await;
    assert_eq!(id4["auth_time"], app.clock.now());
    assert_ne!(id4["sid"], id1["sid"], "a new login is a new provider session");

    // Another browser has no session.
    let mut other = Browser::new();
    let page = other.get(&app.authorize_url("one", &c3, &[("prompt", "none")])).await;
    assert_eq!(page.redirected_to("https://one.example/cb?")["error"], "login_required");
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_and_redirects_only_to_a_registered_uri() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    let secret = add_oidc_client(&app, "web", true, &["openid", "offline_access"]).await.unwrap();
    add_oidc_client(&app, "evil", true, &["openid"]).await;
    let mut b = Browser::new();
    let (v, c) = pkce();
    let code = app.code_for(&mut b, "web", &c, &[("scope", "openid offline_access")], "ada").await;
    let t: Value = app.redeem("web", Some(&secret), &code, Some(&v)).await.json().await.unwrap();
    let id_token = s(&t, "id_token");
    let at = s(&t, "access_token");

    // A post-logout URI not registered for the client: signed out, but no redirect.
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("id_token_hint", &id_token)
        .append_pair("post_logout_redirect_uri", "https://evil.example/bye")
        .append_pair("state", "s9");
    let page = b.get(&app.url(&format!("/oauth/logout?{}", q.finish()))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("signed out"), "{}", page.body);
    assert!(page.headers.get("location").is_none());
    assert!(!b.cookies.keys().any(|k| k.ends_with("tessera_op")), "the session cookie is cleared");
    // The session and its grants ended: the refresh token, the access token.
    let r = app
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &s(&t, "refresh_token"))],
            Some(("web", &secret)),
        )
        .await;
    assert_eq!(oauth_error(r).await, bad("invalid_grant"));
    assert_eq!(app.get_bearer("/oauth/userinfo", &at).await.status(), StatusCode::UNAUTHORIZED);
    // The browser's old cookie no longer signs in.
    let page = b.get(&app.authorize_url("web", &c, &[("prompt", "none")])).await;
    assert_eq!(page.redirected_to("https://web.example/cb?")["error"], "login_required");

    // A registered URI, by POST with client_id: redirected, with the state.
    let (v, c) = pkce();
    let code = app.code_for(&mut b, "web", &c, &[], "ada").await;
    let t: Value = app.redeem("web", Some(&secret), &code, Some(&v)).await.json().await.unwrap();
    let page = b
        .post(
            &app.url("/oauth/logout"),
            &[
                ("id_token_hint", &s(&t, "id_token")),
                ("client_id", "web"),
                ("post_logout_redirect_uri", "https://web.example/bye"),
                ("state", "s10"),
            ],
        )
        .await;
    assert_eq!(page.redirected_to("https://web.example/bye?")["state"], "s10");
    // The hint names another client than client_id: no redirect.
    let page = b
        .post(
            &app.url("/oauth/logout"),
            &[
                ("id_token_hint", &s(&t, "id_token")),
                ("client_id", "evil"),
                ("post_logout_redirect_uri", "https://evil.example/bye"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    // Without anything: the page.
    let page = b.get(&app.url("/oauth/logout")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("x-frame-options"), "DENY");

    // Without an id_token_hint, a signed-in user confirms first (another site could
    // have sent the browser here): a form bound to the session.
    let (v, c) = pkce();
    let code = app.code_for(&mut b, "web", &c, &[], "ada").await;
    let t: Value = app.redeem("web", Some(&secret), &code, Some(&v)).await.json().await.unwrap();
    let page = b
        .get(&app.url("/oauth/logout?client_id=web&post_logout_redirect_uri=https%3A%2F%2Fweb.example%2Fbye&state=s11"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(">Sign out</button>"), "{}", page.body);
    let csrf = page.field("csrf_token");
    assert!(b.cookies.keys().any(|k| k.ends_with("tessera_op")), "not signed out yet");
    assert_eq!(
        app.get_bearer("/oauth/userinfo", &s(&t, "access_token")).await.status(),
        StatusCode::OK
    );
    let forged = b
        .post(
            &app.url("/oauth/logout"),
            &[("csrf_token", "forged"), ("client_id", "web")],
        )
        .await;
    assert!(forged.body.contains(">Sign out</button>"), "asked again");
    let page = b
        .post(
            &app.url("/oauth/logout"),
            &[
                ("csrf_token", &csrf),
                ("client_id", &page.field("client_id")),
                ("post_logout_redirect_uri", &page.field("post_logout_redirect_uri")),
                ("state", &page.field("state")),
            ],
        )
        .await;
    assert_eq!(page.redirected_to("https://web.example/bye?")["state"], "s11");
    assert_eq!(
        app.get_bearer("/oauth/userinfo", &s(&t, "access_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_wrong_redirect_uri_or_client_gets_an_error_page_and_no_redirect() {
    let app = spawn_app!();
    add_oidc_client(&app, "web", true, &["openid"]).await;
    let (_, c) = pkce();
    let mut b = Browser::new();
    for extra in [
        vec![("redirect_uri", "https://evil.example/cb")],
        vec![("redirect_uri", "https://web.example/cb/")],
        vec![("redirect_uri", "https://web.example/cb?x=1")],
        vec![("redirect_uri", "HTTPS://web.example/cb")],
        vec![("redirect_uri", "")],
        vec![("client_id", "nobody")],
        vec![("client_id", "")],
        // Even with other errors, nothing is redirected before the URI is good.
        vec![("redirect_uri", "https://evil.example/cb"), ("response_type", "token")],
    ] {
        let page = b.get(&app.authorize_url("web", &c, &extra)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{extra:?}");
        assert!(page.headers.get("location").is_none(), "{extra:?}");
        assert!(page.header("content-type").starts_with("text/html"));
        assert!(page.body.contains("class=\"error\""), "{}", page.body);
        assert!(!page.body.contains("evil.example"), "{}", page.body);
    }
    // A parameter given twice: a page too.
    let url = format!("{}&client_id=web", app.authorize_url("web", &c, &[]));
    assert_eq!(b.get(&url).await.status, StatusCode::BAD_REQUEST);
    // By POST (OpenID Connect Core 3.1.2.1): the same checks, the same pages.
    let page = b
        .post(
            &app.url("/oauth/authorize"),
            &[
                ("response_type", "code"),
                ("client_id", "web"),
                ("redirect_uri", "https://evil.example/cb"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.headers.get("location").is_none());
    let page = b
        .post(
            &app.url("/oauth/authorize"),
            &[
                ("response_type", "code"),
                ("client_id", "web"),
                ("redirect_uri", "https://web.example/cb"),
                ("scope", "openid"),
                ("code_challenge", &c),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(">Sign in</button>"));
}

#[tokio::test]
async fn authorization_request_errors_are_redirected_with_their_codes() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    add_oidc_client(&app, "web", true, &["openid"]).await;
    add_oidc_client(&app, "m2m", true, &["api"]).await;
    let (_, c) = pkce();
    let mut b = Browser::new();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        // The implicit and hybrid flows are refused (RFC 9700).
        (vec![("response_type", "token")], "unsupported_response_type"),
        (vec![("response_type", "id_token token")], "unsupported_response_type"),
        (vec![("response_type", "")], "invalid_request"),
        // PKCE with S256, for every client.
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (vec![("code_challenge", "short")], "invalid_request"),
        (vec![("scope", "openid admin")], "invalid_scope"),
        (vec![("scope", "")], "invalid_scope"),
        (vec![("prompt", "none login")], "invalid_request"),
        (vec![("prompt", "select_account")], "invalid_request"),
        (vec![("max_age", "soon")], "invalid_request"),
        (vec![("response_mode", "fragment")], "invalid_request"),
        (vec![("request", "eyJ.x.y")], "request_not_supported"),
        (vec![("request_uri", "https://x.example/r")], "request_uri_not_supported"),
    ];
    for (extra, code) in cases {
        let page = b.get(&app.authorize_url("web", &c, &extra)).await;
        let p = page.redirected_to("https://web.example/cb?");
        assert_eq!(p["error"], code, "{extra:?}");
        assert_eq!(p["state"], "st-1");
        assert_eq!(p["iss"], app.issuer());
        assert!(!p.contains_key("code"));
    }
    // No session: prompt=none is login_required. With a session but no consent:
    // consent_required.
    let page = b.get(&app.authorize_url("web", &c, &[("prompt", "none")])).await;
    assert_eq!(page.redirected_to("https://web.example/cb?")["error"], "login_required");
    let page = b.get(&app.authorize_url("web", &c, &[])).await;
    let csrf = page.field("csrf_token");
    let page = b
        .post(
            &app.url("/oauth/authorize/login"),
            &[("csrf_token", &csrf), ("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert!(page.body.contains(">Allow</button>"));
    let page = b.get(&app.authorize_url("web", &c, &[("prompt", "none")])).await;
    assert_eq!(page.redirected_to("https://web.example/cb?")["error"], "consent_required");
    // A client without the authorization_code grant.
    let store = tessera_server::startup::open_store(&app.config).await.unwrap();
    tessera_server::flows::add_client(
        store.as_ref(),
        app.clock.now(),
        tessera_server::flows::NewClient {
            id: "svc".into(),
            confidential: true,
            redirect_uris: vec!["https://svc.example/cb".into()],
            scopes: vec!["openid".into()],
            grants: vec!["client_credentials".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    store.close().await;
    let page = b.get(&app.authorize_url("svc", &c, &[])).await;
    assert_eq!(page.redirected_to("https://svc.example/cb?")["error"], "unauthorized_client");
    let _ = app.authorize_url("m2m", &c, &[]);
}

#[tokio::test]
async fn consent_denied_is_access_denied() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    add_oidc_client(&app, "web", true, &["openid"]).await;
    let (_, c) = pkce();
    let mut b = Browser::new();
    let page = b.get(&app.authorize_url("web", &c, &[("state", "keep me")])).await;
    let csrf = page.field("csrf_token");
    let page = b
        .post(
            &app.url("/oauth/authorize/login"),
            &[("csrf_token", &csrf), ("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert!(page.body.contains(">Deny</button>"), "{}", page.body);
    let page = b
        .post(&app.url("/oauth/authorize/consent"), &[("csrf_token", &csrf), ("decision", "deny")])
        .await;
    let p = page.redirected_to("https://web.example/cb?");
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "keep me");
    assert!(!p.contains_key("code"));
    let m = app.metrics_page().await;
    assert!(m.contains("tessera_oauth_operations_total{op=\"consent_denied\"} 1"), "{m}");
}

#[tokio::test]
async fn pkce_verifiers_are_checked_at_the_token_endpoint() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    let secret = add_oidc_client(&app, "web", true, &["openid"]).await.unwrap();
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let (other_verifier, _) = pkce();
    let code = app.code_for(&mut b, "web", &challenge, &[], "ada").await;
    for v in [None, Some(other_verifier.as_str()), Some("short"), Some(&verifier[..42])] {
        let r = app.redeem("web", Some(&secret), &code, v).await;
        assert_eq!(oauth_error(r).await, bad("invalid_grant"), "{v:?}");
    }
    // A wrong redirect_uri is refused as well; the code was not spent by any of it.
    let r = app
        .post_form(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://web.example/other"),
                ("code_verifier", &verifier),
            ],
            Some(("web", &secret)),
        )
        .await;
    assert_eq!(oauth_error(r).await, bad("invalid_grant"));
    let r = app.redeem("web", Some(&secret), &code, Some(&verifier)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    let secret = add_oidc_client(&app, "web", true, &["openid", "offline_access"]).await.unwrap();
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let code = app
        .code_for(&mut b, "web", &challenge, &[("scope", "openid offline_access")], "ada")
        .await;
    let t: Value = app.redeem("web", Some(&secret), &code, Some(&verifier)).await.json().await.unwrap();
    let at = s(&t, "access_token");
    assert_eq!(app.get_bearer("/oauth/userinfo", &at).await.status(), StatusCode::OK);
    // The same code again, on "another node" (a restart would do; the store decides).
    let r = app.redeem("web", Some(&secret), &code, Some(&verifier)).await;
    assert_eq!(oauth_error(r).await, bad("invalid_grant"));
    // What it issued is revoked: the access token, the refresh token.
    assert_eq!(app.get_bearer("/oauth/userinfo", &at).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.introspect(("web", &secret), &at).await, json!({"active": false}));
    let r = app
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &s(&t, "refresh_token"))],
            Some(("web", &secret)),
        )
        .await;
    assert_eq!(oauth_error(r).await, bad("invalid_grant"));
    // Another client presenting the code: invalid_grant, and nothing of the code's
    // changes (it is not theirs to revoke).
    let other = add_oidc_client(&app, "other", true, &["openid"]).await.unwrap();
    let r = app.redeem("other", Some(&other), &code, Some(&verifier)).await;
    assert_eq!(oauth_error(r).await, bad("invalid_grant"));
    let m = app.metrics_page().await;
    assert!(m.contains("tessera_oauth_operations_total{op=\"code_replay\"} 1"), "{m}");

    // Concurrent redemptions of a fresh code: one wins, and the replay revokes it.
    let (verifier, challenge) = pkce();
    let code = app.code_for(&mut b, "web", &challenge, &[], "ada").await;
    let results = futures_util::future::join_all(
        (0..8).map(|_| app.redeem("web", Some(&secret), &code, Some(&verifier))),
    )
    .await;
    let ok: Vec<_> = results.iter().filter(|r| r.status() == StatusCode::OK).collect();
    assert_eq!(ok.len(), 1, "one redemption wins");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    let secret = add_oidc_client(&app, "web", true, &["openid"]).await.unwrap();
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let code = app.code_for(&mut b, "web", &challenge, &[], "ada").await;
    app.clock.advance(60);
    let r = app.redeem("web", Some(&secret), &code, Some(&verifier)).await;
    assert_eq!(oauth_error(r).await, bad("invalid_grant"));
    // One second younger, it would have been good.
    let (verifier, challenge) = pkce();
    let code = app.code_for(&mut b, "web", &challenge, &[], "ada").await;
    app.clock.advance(59);
    let r = app.redeem("web", Some(&secret), &code, Some(&verifier)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_client_secret_or_no_authentication_is_invalid_client() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    add_oidc_client(&app, "web", true, &["openid"]).await.unwrap();
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let code = app.code_for(&mut b, "web", &challenge, &[], "ada").await;
    let r = app.redeem("web", Some("not-the-secret"), &code, Some(&verifier)).await;
    assert_eq!(oauth_error(r).await, invalid_client());
    // A confidential client cannot pass as a public one.
    let r = app.redeem("web", None, &code, Some(&verifier)).await;
    assert_eq!(oauth_error(r).await, invalid_client());
}

#[tokio::test]
async fn the_login_page_shows_errors_and_keeps_the_brute_force_limits() {
    let app = spawn_app!(|c| c.rate_limit_account_failures = 3);
    app.register("ada", "correct horse").await;
    add_oidc_client(&app, "web", true, &["openid"]).await;
    let (_, c) = pkce();
    let mut b = Browser::new();
    let page = b.get(&app.authorize_url("web", &c, &[])).await;
    let csrf = page.field("csrf_token");
    let attempt = |user: &'static str, password: &'static str| {
        let csrf = csrf.clone();
        async move { (user, password, csrf) }
    };
    let mut answers = Vec::new();
    for (user, password) in [("ada", "wrong horse"), ("nobody", "wrong horse")] {
        let (u, p, csrf) = attempt(user, password).await;
        let page = b
            .post(&app.url("/oauth/authorize/login"), &[("csrf_token", &csrf), ("username", u), ("password", p)])
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("Wrong username or password."), "{}", page.body);
        assert!(page.body.contains(">Sign in</button>"));
        assert!(page.body.contains(&format!("value=\"{u}\"")), "what was typed stays");
        answers.push(page.body.replace(u, "USER"));
    }
    assert_eq!(answers[0], answers[1], "the same page for an unknown user");
    // The third failure of ada's account reaches the limit; the next is refused,
    // even with the right password.
    for _ in 0..2 {
        let page = b
            .post(
                &app.url("/oauth/authorize/login"),
                &[("csrf_token", &csrf), ("username", "ada"), ("password", "x")],
            )
            .await;
        assert_ne!(page.status, StatusCode::OK);
    }
    let page = b
        .post(
            &app.url("/oauth/authorize/login"),
            &[("csrf_token", &csrf), ("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.body.contains("Too many attempts"), "{}", page.body);
    assert!(page.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn page_posts_without_the_right_csrf_token_or_request_are_refused_on_the_page() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    add_oidc_client(&app, "web", true, &["openid"]).await;
    let (_, c) = pkce();
    let mut b = Browser::new();
    let page = b.get(&app.authorize_url("web", &c, &[])).await;
    let csrf = page.field("csrf_token");
    for bad_token in ["", "wrong", &csrf[..csrf.len() - 1]] {
        let page = b
            .post(
                &app.url("/oauth/authorize/login"),
                &[("csrf_token", bad_token), ("username", "ada"), ("password", "correct horse")],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{bad_token:?}");
        assert!(page.header("content-type").starts_with("text/html"));
        assert!(page.body.contains("security token"), "{}", page.body);
    }
    assert!(!b.cookies.keys().any(|k| k.ends_with("tessera_op")), "not signed in");
    // Another browser (no request cookie) cannot post the form either, even with
    // the right token.
    let mut other = Browser::new();
    let page = other
        .post(
            &app.url("/oauth/authorize/login"),
            &[("csrf_token", &csrf), ("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    // The consent form checks it too.
    let page = b
        .post(
            &app.url("/oauth/authorize/login"),
            &[("csrf_token", &csrf), ("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert!(page.body.contains(">Allow</button>"));
    let page = b
        .post(&app.url("/oauth/authorize/consent"), &[("csrf_token", "forged"), ("decision", "allow")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // A request waits ten minutes at most.
    app.clock.advance(601);
    let page = b
        .post(&app.url("/oauth/authorize/consent"), &[("csrf_token", &csrf), ("decision", "allow")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("expired"), "{}", page.body);
}

#[tokio::test]
async fn form_post_answers_with_a_form_that_works_without_javascript() {
    let app = spawn_app!();
    app.register("ada", "correct horse").await;
    let secret = add_oidc_client(&app, "web", true, &["openid"]).await.unwrap();
    let (verifier, c) = pkce();
    let mut b = Browser::new();
    let page = b.get(&app.authorize_url("web", &c, &[("response_mode", "form_post")])).await;
    let csrf = page.field("csrf_token");
    b.post(
        &app.url("/oauth/authorize/login"),
        &[("csrf_token", &csrf), ("username", "ada"), ("password", "correct horse")],
    )
    .await;
    let page = b
        .post(&app.url("/oauth/authorize/consent"), &[("csrf_token", &csrf), ("decision", "allow")])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"<form method="post" action="https://web.example/cb">"#), "{}", page.body);
    assert!(page.body.contains(">Continue</button>"));
    assert_eq!(page.field("state"), "st-1");
    assert_eq!(page.field("iss"), app.issuer());
    let csp = page.header("content-security-policy");
    assert!(csp.contains("form-action 'self' https://web.example"), "{csp}");
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    let code = page.field("code");
    let r = app.redeem("web", Some(&secret), &code, Some(&verifier)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Errors go the same way.
    let page = b
        .get(&app.authorize_url("web", &c, &[("response_mode", "form_post"), ("response_type", "token")]))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.field("error"), "unsupported_response_type");
}

#[tokio::test]
async fn consents_are_listed_and_withdrawn_with_their_grants() {
    let app = spawn_app!();
    let session = app.user("ada").await;
    let bearer = s(&session, "access_token");
    let secret = add_oidc_client(&app, "web", true, &["openid", "offline_access"]).await.unwrap();
    let mut b = Browser::new();
    let (v, c) = pkce();
    let code = app.code_for(&mut b, "web", &c, &[("scope", "openid offline_access")], "ada").await;
    let t: Value = app.redeem("web", Some(&secret), &code, Some(&v)).await.json().await.unwrap();
    // The grant is no /auth session.
    let sessions: Value = app.get_bearer("/auth/sessions", &bearer).await.json().await.unwrap();
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1, "{sessions}");
    let r = app.get_bearer("/auth/consents", &bearer).await;
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["consents"][0]["client_id"], "web");
    assert_eq!(list["consents"][0]["scope"], "offline_access openid");
    let del = |id: &'static str| {
        let app = &app;
        let bearer = bearer.clone();
        async move {
            app.http
                .delete(app.url(&format!("/auth/consents/{id}")))
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(del("web").await.status(), StatusCode::NO_CONTENT);
    assert_eq!(del("web").await.status(), StatusCode::NOT_FOUND);
    let list: Value = app.get_bearer("/auth/consents", &bearer).await.json().await.unwrap();
    assert_eq!(list, json!({"consents": []}));
    // The grant ended with it.
    let r = app
        .post_form(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &s(&t, "refresh_token"))],
            Some(("web", &secret)),
        )
        .await;
    assert_eq!(oauth_error(r).await, bad("invalid_grant"));
    assert_eq!(
        app.get_bearer("/oauth/userinfo", &s(&t, "access_token")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The next authorization asks again.
    let page = b.get(&app.authorize_url("web", &c, &[])).await;
    assert!(page.body.contains(">Allow</button>"), "{}", page.body);
    // The routes need an /auth session's token.
    let r = app.http.get(app.url("/auth/consents")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_code_flow_logs_its_audit_events_and_none_of_its_secrets() {
    let logs = common::captured_logs();
    let app = spawn_app!();
    app.register("grace", "correct horse").await;
    let secret = add_oidc_client(&app, "audited", true, &["openid", "offline_access"])
        .await
        .unwrap();
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    let page = b
        .get(&app.authorize_url("audited", &challenge, &[("scope", "openid offline_access"), ("nonce", "nonce-audited")]))
        .await;
    let csrf = page.field("csrf_token");
    let tx_cookie = b.cookies["tessera_authz"].clone();
    b.post(
        &app.url("/oauth/authorize/login"),
        &[("csrf_token", &csrf), ("username", "grace"), ("password", "correct horse")],
    )
    .await;
    let op_cookie = b.cookies["tessera_op"].clone();
    let page = b
        .post(&app.url("/oauth/authorize/consent"), &[("csrf_token", &csrf), ("decision", "allow")])
        .await;
    let code = page.redirected_to("https://audited.example/cb?")["code"].clone();
    let t: Value = app
        .redeem("audited", Some(&secret), &code, Some(&verifier))
        .await
        .json()
        .await
        .unwrap();
    // A replay, and a logout.
    app.redeem("audited", Some(&secret), &code, Some(&verifier)).await;
    b.post(&app.url("/oauth/logout"), &[("id_token_hint", &s(&t, "id_token"))])
        .await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for event in [
        "provider_login",
        "consent_granted",
        "code_issued",
        "code_redeemed",
        "code_replay",
        "provider_logout",
    ] {
        assert!(
            text.contains(&format!("\"event\":\"{event}\"")),
            "no audit event {event} in the logs"
        );
    }
    let secrets = [
        code,
        verifier,
        csrf,
        tx_cookie,
        op_cookie,
        secret,
        s(&t, "access_token"),
        s(&t, "refresh_token"),
        s(&t, "id_token"),
    ];
    for secret in &secrets {
        let tail = &secret[secret.len().saturating_sub(20)..];
        assert!(!text.contains(tail), "a secret reached the logs");
    }
}

#[tokio::test]
async fn the_steps_of_one_flow_may_go_to_different_nodes() {
    // Two nodes on one database (and one Redis, when the tests have one): the
    // pending request, the provider session and the code are found on either.
    let redis = std::env::var(common::REDIS_VAR).ok().filter(|u| !u.is_empty());
    let prefix = common::redis_prefix();
    let app = spawn_app!(|c| {
        c.issuer = Some("http://127.0.0.1".into());
        if let Some(url) = &redis {
            c.redis = Some(url.clone().into());
            c.redis_key_prefix = prefix.clone();
        }
    });
    let other = spawn(&app.config, app.clock.clone()).await.unwrap();
    let there = |path: &str| format!("http://{}{path}", other.addr);
    app.register("ada", "correct horse").await;
    let secret = add_oidc_client(&app, "web", true, &["openid"]).await.unwrap();
    let mut b = Browser::new();
    let (verifier, challenge) = pkce();
    // Here: the authorization request and the login page.
    let page = b.get(&app.authorize_url("web", &challenge, &[])).await;
    let csrf = page.field("csrf_token");
    // There: the login and the consent.
    let page = b
        .post(
            &there("/oauth/authorize/login"),
            &[("csrf_token", &csrf), ("username", "ada"), ("password", "correct horse")],
        )
        .await;
    assert!(page.body.contains(">Allow</button>"), "{}", page.body);
    let page = b
        .post(&there("/oauth/authorize/consent"), &[("csrf_token", &csrf), ("decision", "allow")])
        .await;
    let code = page.redirected_to("https://web.example/cb?")["code"].clone();
    // Here: the token; there: a replay, refused.
    let r = app.redeem("web", Some(&secret), &code, Some(&verifier)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .http
        .post(there("/oauth/token"))
        .basic_auth("web", Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://web.example/cb"),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(r).await, bad("invalid_grant"));
    // There: the provider session signs the user in to a second request at once.
    let (_, c2) = pkce();
    let url = app.authorize_url("web", &c2, &[("prompt", "none")]);
    let url = url.replace(&app.base, &format!("http://{}", other.addr));
    let page = b.get(&url).await;
    assert!(page.redirected_to("https://web.example/cb?").contains_key("code"));
    other.stop().await.unwrap();
}
