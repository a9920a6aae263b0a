//! The guard in front of a real axum app on a random port, driven over HTTP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use tessera_guard::{
    Authenticated, Guard, Principal, RejectionKind, RemoteJwks, RevocationView, StaticKeys,
    access_token_validation,
};
use tessera_jose::jws::Header;
use tessera_jose::jwt;
use tessera_jose::{Algorithm, Curve, ErrorKind, Jwk, JwkSet};

const ISS: &str = "https://issuer.test";
const AUD: &str = "https://api.test";
const T0: i64 = 1_800_000_000;

// ----- helpers ----------------------------------------------------------------------

struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn new() -> Self {
        Self(Arc::new(AtomicI64::new(T0)))
    }
    fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    fn hook(&self) -> Arc<dyn tessera_guard::Clock> {
        let t = Arc::clone(&self.0);
        Arc::new(move || t.load(Ordering::SeqCst))
    }
}

fn es256(kid: &str) -> Jwk {
    Jwk::generate_curve(Curve::P256).unwrap().with_kid(kid)
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "ada", "iat": T0, "exp": T0 + 900,
        "jti": "jti-1", "sid": "sid-1", "roles": ["user"], "scope": "read profile",
    })
}

fn sign(key: &Jwk, claims: &Value) -> String {
    let header = Header::new(Algorithm::ES256)
        .with_kid(key.kid().unwrap())
        .with_typ("at+jwt");
    jwt::encode(&header, claims, key).unwrap()
}

fn with(mut base: Value, patch: Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

async fn spawn(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Answer {
    status: StatusCode,
    www: Option<String>,
    body: Value,
}

async fn get_with(addr: SocketAddr, path: &str, auth: Option<&str>) -> Answer {
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = req.send().await.unwrap();
    let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, www, body }
}

async fn call(addr: SocketAddr, path: &str, token: &str) -> Answer {
    get_with(addr, path, Some(&format!("Bearer {token}"))).await
}

fn assert_invalid_token(a: &Answer, description: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{:?}", a.body);
    assert_eq!(
        a.body,
        json!({"error": "invalid_token", "error_description": description})
    );
    assert_eq!(
        a.www.as_deref(),
        Some(
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\"").as_str()
        )
    );
}

async fn me(Authenticated { claims, principal }: Authenticated) -> impl IntoResponse {
    axum::Json(json!({
        "sub": claims.sub,
        "roles": principal.roles(),
        "scope": principal.scope(),
        "sid": principal.sid(),
    }))
}

#[derive(serde::Deserialize)]
struct Mine {
    sub: String,
    roles: Vec<String>,
}

async fn typed(Authenticated { claims, .. }: Authenticated<Mine>) -> String {
    format!("{}:{}", claims.sub, claims.roles.join(","))
}

/// `/me` (any valid token), `/typed` (typed claims), `/admin` (role admin),
/// `/read` (scope read), `/write` (scopes read and write), `/either` (role admin or
/// auditor), `/maybe` (optional), `/unguarded` (extractor without the layer).
fn app(guard: &Guard) -> Router {
    let maybe = Router::new()
        .route(
            "/maybe",
            get(|p: Option<Principal>| async move {
                p.and_then(|p| p.sub().map(str::to_owned))
                    .unwrap_or_else(|| "anonymous".into())
            }),
        )
        .route_layer(guard.layer().optional());
    Router::new()
        .route("/admin", get(|| async { "admin area" }))
        .route_layer(guard.layer().require_role("admin"))
        .merge(
            Router::new()
                .route("/read", get(|| async { "read" }))
                .route_layer(guard.layer().require_scope("read")),
        )
        .merge(
            Router::new()
                .route("/write", get(|| async { "write" }))
                .route_layer(guard.layer().require_scope("read").require_scope("write")),
        )
        .merge(
            Router::new()
                .route("/either", get(|| async { "either" }))
                .route_layer(guard.layer().require_any_role(["admin", "auditor"])),
        )
        .merge(
            Router::new()
                .route("/me", get(me))
                .route("/typed", get(typed))
                .route_layer(guard.layer()),
        )
        .merge(maybe)
        .route("/unguarded", get(me))
}

struct Fixture {
    addr: SocketAddr,
    key: Jwk,
    clock: TestClock,
    guard: Guard,
}

async fn fixture_with(revoked: Option<&'static str>) -> Fixture {
    let key = es256("k1");
    let clock = TestClock::new();
    let mut b = Guard::builder(JwkSet::new(vec![key.to_public().unwrap()]))
        .validation(access_token_validation(ISS, AUD))
        .with_clock(clock.hook());
    if let Some(jti) = revoked {
        b = b.with_revocation(Arc::new(move |t: &RevocationView<'_>| t.jti == Some(jti)));
    }
    let guard = b.build();
    let addr = spawn(app(&guard)).await;
    Fixture {
        addr,
        key,
        clock,
        guard,
    }
}

async fn fixture() -> Fixture {
    fixture_with(None).await
}

// ----- static keys ------------------------------------------------------------------

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_claims() {
    let f = fixture().await;
    let t = sign(&f.key, &claims());
    let a = call(f.addr, "/me", &t).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.body,
        json!({"sub": "ada", "roles": ["user"], "scope": "read profile", "sid": "sid-1"})
    );
    let a = call(f.addr, "/typed", &t).await;
    assert_eq!((a.status, a.body), (StatusCode::OK, json!("ada:user")));
    // The scheme name is case-insensitive (RFC 7235 §2.1).
    let a = get_with(f.addr, "/me", Some(&format!("bearer {t}"))).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn no_token_is_401_with_a_bare_bearer_challenge() {
    let f = fixture().await;
    for auth in [None, Some("Basic YWRhOnB3"), Some("DPoP abc")] {
        let a = get_with(f.addr, "/me", auth).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.www.as_deref(), Some("Bearer"));
        assert_eq!(
            a.body,
            json!({"error": "invalid_request",
                   "error_description": "a bearer token is required (Authorization: Bearer <token>)"})
        );
    }
}

#[tokio::test]
async fn tampered_expired_wrong_audience_and_unsigned_tokens_are_invalid_token() {
    let f = fixture().await;
    let good = sign(&f.key, &claims());

    // Tampered: the payload of another token under this token's signature.
    let other = sign(&f.key, &with(claims(), json!({"roles": ["admin"]})));
    let parts: Vec<&str> = good.split('.').collect();
    let other_parts: Vec<&str> = other.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
    let a = call(f.addr, "/me", &tampered).await;
    assert_invalid_token(&a, "the signature does not verify");
    let e = f.guard.verify(&tampered).await.unwrap_err();
    assert_eq!(e.jose_kind(), Some(ErrorKind::InvalidSignature));

    // alg: none, with and without a signature part.
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let payload = b64(&claims().to_string());
    for none in [
        format!("{}.{payload}.", b64(r#"{"alg":"none","kid":"k1"}"#)),
        format!("{}.{payload}.{}", b64(r#"{"alg":"none"}"#), parts[2]),
    ] {
        let e = f.guard.verify(&none).await.unwrap_err();
        assert_eq!(e.jose_kind(), Some(ErrorKind::AlgorithmNotAllowed));
        let a = call(f.addr, "/me", &none).await;
        assert_invalid_token(&a, "unsecured tokens (alg: none) are never accepted");
    }

    // Another family's algorithm under the EC key's kid: HS256 with a secret.
    let secret = Jwk::from_secret([7u8; 32]).unwrap();
    let hs = jwt::encode(
        &Header::new(Algorithm::HS256)
            .with_kid("k1")
            .with_typ("at+jwt"),
        &claims(),
        &secret,
    )
    .unwrap();
    let e = f.guard.verify(&hs).await.unwrap_err();
    assert_eq!(e.kind(), RejectionKind::InvalidToken);
    assert_eq!(e.jose_kind(), Some(ErrorKind::KeyNotFound));

    // RFC 9068 §2.2: sub, iat and jti are required of an access token.
    for claim in ["sub", "iat", "jti"] {
        let mut without = claims();
        without.as_object_mut().unwrap().remove(claim);
        let e = f.guard.verify(&sign(&f.key, &without)).await.unwrap_err();
        assert_eq!(e.jose_kind(), Some(ErrorKind::MissingClaim), "{claim}");
        let a = call(f.addr, "/me", &sign(&f.key, &without)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{claim}");
        assert_eq!(a.body["error"], "invalid_token", "{claim}");
    }

    // Wrong audience, wrong issuer, wrong typ.
    let e = f
        .guard
        .verify(&sign(&f.key, &with(claims(), json!({"aud": "elsewhere"}))))
        .await
        .unwrap_err();
    assert_eq!(e.jose_kind(), Some(ErrorKind::InvalidAudience));
    let a = call(
        f.addr,
        "/me",
        &sign(&f.key, &with(claims(), json!({"aud": "elsewhere"}))),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"], "invalid_token");
    assert!(a.www.unwrap().starts_with("Bearer error=\"invalid_token\""));
    let e = f
        .guard
        .verify(&sign(
            &f.key,
            &with(claims(), json!({"iss": "https://evil.test"})),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.jose_kind(), Some(ErrorKind::InvalidIssuer));
    let jwt_typ = jwt::encode(
        &Header::new(Algorithm::ES256).with_kid("k1").with_typ("JWT"),
        &claims(),
        &f.key,
    )
    .unwrap();
    let e = f.guard.verify(&jwt_typ).await.unwrap_err();
    assert_eq!(e.jose_kind(), Some(ErrorKind::InvalidType));

    // Expired: the same good token once the clock passes exp.
    assert_eq!(call(f.addr, "/me", &good).await.status, StatusCode::OK);
    f.clock.advance(900);
    let a = call(f.addr, "/me", &good).await;
    assert_invalid_token(&a, "the token has expired");

    // Garbage that is not even a token.
    let a = call(f.addr, "/me", "not-a-jwt").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"], "invalid_token");
    let a = get_with(f.addr, "/me", Some("Bearer a b")).await;
    assert_invalid_token(&a, "the bearer token is not a well-formed token");
    let a = get_with(f.addr, "/me", Some("Bearer ")).await;
    assert_invalid_token(&a, "the bearer token is empty");
}

#[tokio::test]
async fn claims_of_the_wrong_type_and_key_bound_tokens_are_refused() {
    let f = fixture().await;
    let a = call(
        f.addr,
        "/me",
        &sign(&f.key, &with(claims(), json!({"roles": "admin"}))),
    )
    .await;
    assert_invalid_token(
        &a,
        "the token's claims have the wrong JSON types (roles must be an array of strings, scope a string)",
    );
    let a = call(
        f.addr,
        "/me",
        &sign(&f.key, &with(claims(), json!({"cnf": {"jkt": "abc"}}))),
    )
    .await;
    assert_invalid_token(
        &a,
        "the token is bound to a key (cnf), and this resource server accepts only bearer tokens",
    );
    // A token without roles is fine for /me, but its claims do not fit `Mine`.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("roles");
    let t = sign(&f.key, &c);
    assert_eq!(call(f.addr, "/me", &t).await.status, StatusCode::OK);
    let a = call(f.addr, "/typed", &t).await;
    assert_invalid_token(
        &a,
        "the token's claims do not have the shape this service expects",
    );
}

#[tokio::test]
async fn missing_roles_and_scopes_are_403_insufficient_scope() {
    let f = fixture().await;
    let user = sign(&f.key, &claims());
    let a = call(f.addr, "/admin", &user).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.body,
        json!({"error": "insufficient_scope", "error_description": "the token lacks the role admin"})
    );
    assert_eq!(
        a.www.as_deref(),
        Some(
            "Bearer error=\"insufficient_scope\", error_description=\"the token lacks the role admin\""
        )
    );
    let admin = sign(&f.key, &with(claims(), json!({"roles": ["user", "admin"]})));
    let a = call(f.addr, "/admin", &admin).await;
    assert_eq!((a.status, a.body), (StatusCode::OK, json!("admin area")));

    assert_eq!(call(f.addr, "/read", &user).await.status, StatusCode::OK);
    let a = call(f.addr, "/write", &user).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["error"], "insufficient_scope");
    assert_eq!(
        a.www.as_deref(),
        Some(
            "Bearer error=\"insufficient_scope\", error_description=\"the token lacks the scope write\", scope=\"read write\""
        )
    );
    let rw = sign(&f.key, &with(claims(), json!({"scope": "write read"})));
    assert_eq!(call(f.addr, "/write", &rw).await.status, StatusCode::OK);
    // "readonly" is not "read": scopes are whole words.
    let ro = sign(&f.key, &with(claims(), json!({"scope": "readonly"})));
    assert_eq!(
        call(f.addr, "/read", &ro).await.status,
        StatusCode::FORBIDDEN
    );

    assert_eq!(
        call(f.addr, "/either", &user).await.status,
        StatusCode::FORBIDDEN
    );
    let auditor = sign(&f.key, &with(claims(), json!({"roles": ["auditor"]})));
    assert_eq!(
        call(f.addr, "/either", &auditor).await.status,
        StatusCode::OK
    );
    // A bad token on a role-protected route is still 401, not 403.
    f.clock.advance(10_000);
    assert_eq!(
        call(f.addr, "/admin", &admin).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_revocation_hook_refuses_a_denied_token() {
    let f = fixture_with(Some("jti-revoked")).await;
    let ok = sign(&f.key, &claims());
    assert_eq!(call(f.addr, "/me", &ok).await.status, StatusCode::OK);
    let revoked = sign(&f.key, &with(claims(), json!({"jti": "jti-revoked"})));
    let a = call(f.addr, "/me", &revoked).await;
    assert_invalid_token(&a, "the token has been revoked");
}

#[tokio::test]
async fn the_revocation_hook_sees_jti_sub_sid_and_iat() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let key = es256("k1");
    let guard = Guard::builder(key.to_public().unwrap())
        .validation(access_token_validation(ISS, AUD))
        .with_clock(TestClock::new().hook())
        .with_revocation(Arc::new(move |t: &RevocationView<'_>| {
            log.lock().unwrap().push(format!(
                "{:?} {:?} {:?} {:?} {:?}",
                t.jti, t.sub, t.sid, t.iat, t.exp
            ));
            // Logout-all at T0: every token of ada issued before that moment.
            t.sub == Some("ada") && t.iat.is_some_and(|iat| iat < T0)
        }))
        .build();
    let old = sign(&key, &with(claims(), json!({"iat": T0 - 10})));
    let e = guard.verify(&old).await.unwrap_err();
    assert_eq!(e.kind(), RejectionKind::InvalidToken);
    assert_eq!(e.description(), "the token has been revoked");
    assert!(guard.verify(&sign(&key, &claims())).await.is_ok());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            format!(
                "Some(\"jti-1\") Some(\"ada\") Some(\"sid-1\") Some({}) Some({})",
                T0 - 10,
                T0 + 900
            ),
            format!(
                "Some(\"jti-1\") Some(\"ada\") Some(\"sid-1\") Some({T0}) Some({})",
                T0 + 900
            ),
        ]
    );
}

#[tokio::test]
async fn malformed_requests_and_missing_layers() {
    let f = fixture().await;
    let t = sign(&f.key, &claims());
    // Two Authorization headers: 400 invalid_request.
    let res = reqwest::Client::new()
        .get(format!("http://{}/me", f.addr))
        .header("authorization", format!("Bearer {t}"))
        .header("authorization", format!("Bearer {t}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "invalid_request", "error_description": "the request has more than one Authorization header"})
    );
    // An extractor without the layer fails closed.
    let a = call(f.addr, "/unguarded", &t).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        a.body,
        json!({"error": "server_error", "error_description": "this route is not behind the tessera-guard layer"})
    );
    assert_eq!(a.www, None);
}

#[tokio::test]
async fn an_optional_layer_lets_anonymous_requests_through_but_not_bad_tokens() {
    let f = fixture().await;
    let a = get_with(f.addr, "/maybe", None).await;
    assert_eq!((a.status, a.body), (StatusCode::OK, json!("anonymous")));
    let a = call(f.addr, "/maybe", &sign(&f.key, &claims())).await;
    assert_eq!((a.status, a.body), (StatusCode::OK, json!("ada")));
    f.clock.advance(1000);
    let a = call(f.addr, "/maybe", &sign(&f.key, &claims())).await;
    assert_invalid_token(&a, "the token has expired");
}

#[tokio::test]
async fn static_keys_can_be_replaced_at_rotation() {
    let k1 = es256("k1");
    let k2 = es256("k2");
    let keys = StaticKeys::new(JwkSet::new(vec![k1.to_public().unwrap()]));
    let guard = Guard::builder(keys.clone())
        .validation(access_token_validation(ISS, AUD))
        .with_clock(TestClock::new().hook())
        .realm("api")
        .build();
    let t2 = sign(&k2, &claims());
    let e = guard.verify(&t2).await.unwrap_err();
    assert_eq!(e.jose_kind(), Some(ErrorKind::KeyNotFound));
    assert_eq!(
        e.www_authenticate().unwrap(),
        "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"no key in the set has the token's kid and fits its algorithm\""
    );
    keys.replace(JwkSet::new(vec![
        k1.to_public().unwrap(),
        k2.to_public().unwrap(),
    ]));
    assert_eq!(guard.verify(&t2).await.unwrap().sub(), Some("ada"));
    assert!(guard.verify(&sign(&k1, &claims())).await.is_ok());
}

#[tokio::test]
async fn the_algorithm_belongs_to_the_key_never_to_the_token() {
    // The signer may use any RSA algorithm; the verifier's JWK pins RS256.
    let rsa = Jwk::generate_rsa(2048).unwrap().with_kid("rsa");
    let public = rsa.to_public().unwrap().with_alg("RS256");
    let guard = Guard::builder(public.clone())
        .validation(access_token_validation(ISS, AUD))
        .with_clock(TestClock::new().hook())
        .build();
    // `Router::layer` (not only `route_layer`) accepts the guard.
    let addr = spawn(Router::new().route("/me", get(me)).layer(guard.layer())).await;
    let rs256 = jwt::encode(
        &Header::new(Algorithm::RS256)
            .with_kid("rsa")
            .with_typ("at+jwt"),
        &claims(),
        &rsa,
    )
    .unwrap();
    assert_eq!(call(addr, "/me", &rs256).await.status, StatusCode::OK);
    // Same key, same family, but the JWK pins RS256: PS256 is refused.
    let ps256 = jwt::encode(
        &Header::new(Algorithm::PS256)
            .with_kid("rsa")
            .with_typ("at+jwt"),
        &claims(),
        &rsa,
    )
    .unwrap();
    let e = guard.verify(&ps256).await.unwrap_err();
    assert!(refused_for_its_algorithm(&e), "{e:?}");
    assert_eq!(
        call(addr, "/me", &ps256).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The classic confusion: HS256 "signed" with the public key's bytes as the secret.
    let confused = Jwk::from_secret(public.to_spki_der().unwrap()).unwrap();
    let hs = jwt::encode(
        &Header::new(Algorithm::HS256)
            .with_kid("rsa")
            .with_typ("at+jwt"),
        &claims(),
        &confused,
    )
    .unwrap();
    let e = guard.verify(&hs).await.unwrap_err();
    assert!(refused_for_its_algorithm(&e), "{e:?}");
    let a = call(addr, "/me", &hs).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"], "invalid_token");
    // A validation that narrows the algorithms narrows them further.
    let narrow = Guard::builder(public)
        .validation(access_token_validation(ISS, AUD).algorithms(&[Algorithm::PS256]))
        .with_clock(TestClock::new().hook())
        .build();
    let e = narrow.verify(&rs256).await.unwrap_err();
    assert_eq!(e.jose_kind(), Some(ErrorKind::AlgorithmNotAllowed));
}

/// Refused because no key may verify the token's algorithm (tessera-jose reports a
/// key set without a fitting key as KeyNotFound, a refused pairing as
/// AlgorithmNotAllowed): never a signature check with the wrong primitive.
fn refused_for_its_algorithm(e: &tessera_guard::GuardError) -> bool {
    e.kind() == RejectionKind::InvalidToken
        && matches!(
            e.jose_kind(),
            Some(ErrorKind::KeyNotFound | ErrorKind::AlgorithmNotAllowed)
        )
}

// ----- JWKS URL -----------------------------------------------------------------------

/// A tiny identity provider: serves `jwks` (or 500 while `broken`), counting requests.
#[derive(Clone)]
struct Idp {
    jwks: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
    broken: Arc<AtomicBool>,
    cache_control: Arc<Mutex<Option<String>>>,
}

impl Idp {
    async fn start(keys: &[&Jwk]) -> (Self, String) {
        let idp = Idp {
            jwks: Arc::new(Mutex::new(String::new())),
            hits: Arc::new(AtomicUsize::new(0)),
            broken: Arc::new(AtomicBool::new(false)),
            cache_control: Arc::new(Mutex::new(None)),
        };
        idp.publish(keys);
        let app = Router::new()
            .route(
                "/.well-known/jwks.json",
                get(|State(idp): State<Idp>| async move {
                    idp.hits.fetch_add(1, Ordering::SeqCst);
                    let mut headers = axum::http::HeaderMap::new();
                    if let Some(cc) = idp.cache_control.lock().unwrap().clone() {
                        headers.insert("cache-control", cc.parse().unwrap());
                    }
                    if idp.broken.load(Ordering::SeqCst) {
                        return (StatusCode::INTERNAL_SERVER_ERROR, headers, String::new());
                    }
                    (StatusCode::OK, headers, idp.jwks.lock().unwrap().clone())
                }),
            )
            .with_state(idp.clone());
        let addr = spawn(app).await;
        (idp, format!("http://{addr}/.well-known/jwks.json"))
    }

    fn publish(&self, keys: &[&Jwk]) {
        let set = JwkSet::new(keys.iter().map(|k| k.to_public().unwrap()).collect());
        *self.jwks.lock().unwrap() = set.to_json();
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn remote_guard(url: &str, clock: &TestClock) -> (Guard, RemoteJwks) {
    let remote = RemoteJwks::new(url)
        .unwrap()
        .cooldown(Duration::from_secs(30));
    let guard = Guard::builder(remote.clone())
        .validation(access_token_validation(ISS, AUD))
        .with_clock(clock.hook())
        .build();
    (guard, remote)
}

#[tokio::test]
async fn jwks_url_rotation_to_a_new_kid_triggers_exactly_one_refetch() {
    let k1 = es256("k1");
    let k2 = es256("k2");
    let (idp, url) = Idp::start(&[&k1]).await;
    let clock = TestClock::new();
    let (guard, _) = remote_guard(&url, &clock);
    let addr = spawn(app(&guard)).await;

    assert_eq!(idp.hits(), 0, "nothing is fetched before the first request");
    let a = call(addr, "/me", &sign(&k1, &claims())).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(idp.hits(), 1);
    // Cached: more requests fetch nothing.
    for _ in 0..5 {
        assert_eq!(
            call(addr, "/me", &sign(&k1, &claims())).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(idp.hits(), 1);

    // The provider rotates; a token with the new kid arrives. The cooldown counts
    // from the last unknown-kid fetch: move past it (the first fetch counts).
    idp.publish(&[&k1, &k2]);
    clock.advance(31);
    let t2 = sign(&k2, &claims());
    // Many concurrent requests with the new kid share one fetch.
    let answers = futures_join(20, || {
        let t = t2.clone();
        async move { call(addr, "/me", &t).await }
    })
    .await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(idp.hits(), 2);
    assert_eq!(call(addr, "/me", &t2).await.status, StatusCode::OK);
    assert_eq!(
        call(addr, "/me", &sign(&k1, &claims())).await.status,
        StatusCode::OK
    );
    assert_eq!(idp.hits(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_refetches_at_most_once_per_cooldown() {
    let k1 = es256("k1");
    let (idp, url) = Idp::start(&[&k1]).await;
    let clock = TestClock::new();
    let (guard, remote) = remote_guard(&url, &clock);
    let addr = spawn(app(&guard)).await;
    assert_eq!(
        call(addr, "/me", &sign(&k1, &claims())).await.status,
        StatusCode::OK
    );
    assert_eq!(idp.hits(), 1);

    let attacker = Jwk::generate_curve(Curve::P256).unwrap();
    let forged = |i: usize| sign(&attacker.clone().with_kid(format!("forged-{i}")), &claims());

    // Within the cooldown of the first fetch: no fetch at all.
    for i in 0..30 {
        let a = call(addr, "/me", &forged(i)).await;
        assert_invalid_token(
            &a,
            "no key in the set has the token's kid and fits its algorithm",
        );
    }
    assert_eq!(idp.hits(), 1);

    // After the cooldown: a concurrent flood makes exactly one fetch.
    clock.advance(30);
    let answers = futures_join(40, {
        let mut i = 100;
        move || {
            i += 1;
            let t = forged(i);
            async move { call(addr, "/me", &t).await }
        }
    })
    .await;
    assert!(answers.iter().all(|a| a.status == StatusCode::UNAUTHORIZED));
    assert_eq!(idp.hits(), 2);

    // 29 s later: still cooling down.
    clock.advance(29);
    for i in 200..220 {
        assert_eq!(
            call(addr, "/me", &forged(i)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(idp.hits(), 2);
    clock.advance(1);
    for i in 300..320 {
        assert_eq!(
            call(addr, "/me", &forged(i)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(idp.hits(), 3);
    assert_eq!(remote.fetch_count(), 3);
    // Legitimate tokens kept working throughout.
    assert_eq!(
        call(addr, "/me", &sign(&k1, &claims())).await.status,
        StatusCode::OK
    );
    assert_eq!(idp.hits(), 3);
}

#[tokio::test]
async fn an_unreachable_jwks_is_503_and_retried_only_after_the_cooldown() {
    let k1 = es256("k1");
    let (idp, url) = Idp::start(&[&k1]).await;
    idp.broken.store(true, Ordering::SeqCst);
    let clock = TestClock::new();
    let (guard, _) = remote_guard(&url, &clock);
    let addr = spawn(app(&guard)).await;
    let t = sign(&k1, &claims());
    for _ in 0..5 {
        let a = call(addr, "/me", &t).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            a.body,
            json!({"error": "temporarily_unavailable",
                   "error_description": "the token cannot be checked now: the signing keys are unavailable"})
        );
        assert_eq!(a.www, None);
    }
    assert_eq!(idp.hits(), 1);
    // A garbled token is the client's fault: 401, whatever the keys.
    let a = call(addr, "/me", "abc.def.ghi").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["error"], "invalid_token");
    idp.broken.store(false, Ordering::SeqCst);
    clock.advance(30);
    assert_eq!(call(addr, "/me", &t).await.status, StatusCode::OK);
    assert_eq!(idp.hits(), 2);
}

#[tokio::test]
async fn a_jwks_over_the_size_limit_is_refused() {
    let k1 = es256("k1");
    let (idp, url) = Idp::start(&[&k1]).await;
    let clock = TestClock::new();
    let remote = RemoteJwks::new(&url).unwrap().max_bytes(64);
    let guard = Guard::builder(remote)
        .validation(access_token_validation(ISS, AUD))
        .with_clock(clock.hook())
        .build();
    let e = guard.verify(&sign(&k1, &claims())).await.unwrap_err();
    assert_eq!(e.kind(), RejectionKind::KeysUnavailable);
    assert_eq!(idp.hits(), 1);
}

#[tokio::test]
async fn secrets_published_in_a_jwks_are_never_used() {
    let k1 = es256("k1");
    let (idp, url) = Idp::start(&[&k1]).await;
    let secret = Jwk::from_secret([9u8; 32]).unwrap().with_kid("hs");
    // Publish the secret as it is (to_public would refuse it).
    *idp.jwks.lock().unwrap() = format!(
        r#"{{"keys":[{},{}]}}"#,
        k1.to_public().unwrap().to_json(),
        secret.to_json()
    );
    let clock = TestClock::new();
    let (guard, remote) = remote_guard(&url, &clock);
    let hs = jwt::encode(
        &Header::new(Algorithm::HS256)
            .with_kid("hs")
            .with_typ("at+jwt"),
        &claims(),
        &secret,
    )
    .unwrap();
    let e = guard.verify(&hs).await.unwrap_err();
    assert_eq!(e.jose_kind(), Some(ErrorKind::KeyNotFound));
    assert_eq!(remote.cached().unwrap().keys().len(), 1);
    assert!(guard.verify(&sign(&k1, &claims())).await.is_ok());
}

#[tokio::test]
async fn a_stale_jwks_is_refreshed_in_the_background_and_withdrawn_keys_stop_working() {
    let k1 = es256("k1");
    let k2 = es256("k2");
    let (idp, url) = Idp::start(&[&k1, &k2]).await;
    let clock = TestClock::new();
    let (guard, remote) = remote_guard(&url, &clock);
    let t1 = sign(&k1, &with(claims(), json!({"exp": T0 + 100_000})));
    assert!(guard.verify(&t1).await.is_ok());
    assert_eq!(idp.hits(), 1);
    // k1 is withdrawn; the cache is old enough to refresh (default max age 5 min).
    idp.publish(&[&k2]);
    clock.advance(301);
    assert!(
        guard.verify(&t1).await.is_ok(),
        "the stale set serves meanwhile"
    );
    // Wait (not time: the count) for the background refresh to land.
    for _ in 0..500 {
        if remote.cached().unwrap().find("k1").next().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(idp.hits(), 2);
    let e = guard.verify(&t1).await.unwrap_err();
    assert_eq!(e.jose_kind(), Some(ErrorKind::KeyNotFound));
}

/// Waits (for the count, not for time) until the background refresh has fetched
/// `hits` times in all, or a few seconds have gone by.
async fn wait_for_hits(idp: &Idp, hits: usize) {
    for _ in 0..500 {
        if idp.hits() >= hits {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_providers_cache_control_shortens_the_refresh_but_not_below_the_cooldown() {
    let k1 = es256("k1");
    let (idp, url) = Idp::start(&[&k1]).await;
    *idp.cache_control.lock().unwrap() = Some("public, max-age=60".into());
    let clock = TestClock::new();
    let (guard, _) = remote_guard(&url, &clock);
    let t1 = sign(&k1, &with(claims(), json!({"exp": T0 + 100_000})));
    assert!(guard.verify(&t1).await.is_ok());
    assert_eq!(idp.hits(), 1);
    // (the provider's Cache-Control from now on, seconds to move the clock, the IdP's
    // hits expected after a request at that time)
    let steps: [(Option<&str>, i64, usize, &str); 8] = [
        (
            None,
            59,
            1,
            "fresh for 60 s by the provider's word, not 5 min",
        ),
        (None, 2, 2, "stale at 61 s: refreshed"),
        (Some("no-store"), 61, 3, "stale"),
        (None, 29, 3, "no-store, but not within the 30 s cooldown"),
        (None, 2, 4, "no-store, past the cooldown"),
        (Some("max-age=86400"), 31, 5, "stale"),
        (None, 299, 5, "a day's max-age, yet..."),
        (None, 2, 6, "...refreshed after the guard's own 5 min"),
    ];
    for (cache_control, secs, hits, what) in steps {
        if let Some(cc) = cache_control {
            *idp.cache_control.lock().unwrap() = Some(cc.into());
        }
        clock.advance(secs);
        assert!(guard.verify(&t1).await.is_ok(), "{what}");
        wait_for_hits(&idp, hits).await;
        // Room for a refresh that should not have happened to show.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(idp.hits(), hits, "{what}");
    }
}

/// Runs `n` futures made by `make` concurrently and collects their outputs.
async fn futures_join<F, Fut>(n: usize, mut make: F) -> Vec<Answer>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer> + Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|_| tokio::spawn(make())).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
