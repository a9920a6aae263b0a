//! Integration tests on SQLite: the real server on a random port with a fresh
//! database, driven over HTTP. The cases (`api/cases.rs`) run on PostgreSQL too, in
//! `api_postgres.rs`; the tests below them need no database.

mod common;

const BACKEND: common::Backend = common::Backend::Sqlite;

include!("api/cases.rs");

/// Every type that holds a password, a token, a session id, a CSRF token or a
/// password hash prints `[redacted]` for it in `Debug`.
#[test]
fn secrets_never_print_in_debug() {
    use tessera_server::flows::{Issued, StatefulLogin};
    use tessera_server::routes::auth::{
        CookieTokenResponse, LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest,
        TokenResponse,
    };
    use tessera_server::routes::session::{SessionLoginRequest, SessionLoginResponse};
    use tessera_server::store::User;

    const SECRET: &str = "s3cret-VALUE";
    let user = User {
        id: "u1".into(),
        username: "ada".into(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${SECRET}"),
        roles: vec!["admin".into()],
        created_at: 1,
    };
    let printed = [
        format!(
            "{:?}",
            RegisterRequest {
                username: "ada".into(),
                password: SECRET.into()
            }
        ),
        format!(
            "{:?}",
            LoginRequest {
                username: "ada".into(),
                password: SECRET.into(),
                delivery: None
            }
        ),
        format!(
            "{:?}",
            SessionLoginRequest {
                username: "ada".into(),
                password: SECRET.into()
            }
        ),
        format!(
            "{:?}",
            RefreshRequest {
                refresh_token: Some(SECRET.into())
            }
        ),
        format!(
            "{:?}",
            LogoutRequest {
                refresh_token: Some(SECRET.into())
            }
        ),
        format!(
            "{:?}",
            TokenResponse {
                access_token: SECRET.into(),
                token_type: "Bearer",
                expires_in: 900,
                refresh_token: SECRET.into(),
                refresh_expires_in: 60,
            }
        ),
        format!(
            "{:?}",
            CookieTokenResponse {
                token_type: "Bearer",
                expires_in: 900,
                refresh_expires_in: 60,
                csrf_token: SECRET.into(),
            }
        ),
        format!(
            "{:?}",
            SessionLoginResponse {
                username: "ada".into(),
                csrf_token: SECRET.into()
            }
        ),
        format!(
            "{:?}",
            StatefulLogin {
                session_id: SECRET.into(),
                csrf_token: SECRET.into(),
                user: user.clone(),
            }
        ),
        format!(
            "{:?}",
            Issued {
                access_token: SECRET.into(),
                expires_in: 900,
                refresh_token: SECRET.into(),
                refresh_expires_in: 60,
                sid: "sid1".into(),
                user: user.clone(),
            }
        ),
        format!("{user:?}"),
    ];
    for p in printed {
        assert!(!p.contains(SECRET), "a secret printed: {p}");
        assert!(p.contains("[redacted]"), "{p}");
    }
}

/// The verified-token cache: a reload that finds the same keys keeps what it
/// remembers, a full cache forgets gradually, and a key that leaves takes its
/// tokens with it.
#[tokio::test]
async fn the_verified_token_cache_survives_reloads_and_fills_gradually() {
    use tessera_jose::jws::Header;
    use tessera_jose::{Algorithm, Curve, Jwk, JwkSet, jwt};
    use tessera_server::denylist::Denylist;
    use tessera_server::tokens::{AccessClaims, CACHE_ENTRIES, Issue, Verifier};

    let clock = Arc::new(ManualClock::starting_now());
    let key = |kid: &str| {
        Jwk::generate_curve(Curve::P256)
            .unwrap()
            .with_kid(kid)
            .with_alg("ES256")
    };
    let (k1, k2) = (key("k1"), key("k2"));
    let set = |keys: &[&Jwk]| JwkSet::new(keys.iter().map(|k| k.to_public().unwrap()).collect());
    let verifier = Verifier::new(
        "https://i",
        "https://i",
        set(&[&k1]),
        Arc::new(Denylist::new()),
        clock.clone(),
    );
    let now = clock.now();
    let token = |k: &Jwk, n: usize| {
        let issue = Issue {
            iss: "https://i".into(),
            aud: "https://i".into(),
            iat: now,
            exp: now + 900,
            jti: format!("j{n}"),
        };
        let claims = AccessClaims::session(issue, "u", "s", "ada", vec![], "api");
        let header = Header::new(Algorithm::ES256)
            .with_typ("at+jwt")
            .with_kid(k.kid().unwrap());
        jwt::encode(&header, &claims, k).unwrap()
    };
    let first = token(&k1, 0);
    verifier.verify(&first).await.unwrap();
    verifier.verify(&first).await.unwrap();
    assert_eq!(verifier.cache_stats().hits, 1);
    // A reload that found the same key ids: still remembered.
    verifier.set_keys(set(&[&k1]));
    verifier.verify(&first).await.unwrap();
    assert_eq!(
        verifier.cache_stats().hits,
        2,
        "kept over a reload of the same keys"
    );
    // Past the capacity, entries leave a few at a time, never all at once.
    for n in 1..=CACHE_ENTRIES + 500 {
        verifier.verify(&token(&k1, n)).await.unwrap();
        assert!(
            n < 100 || verifier.cache_stats().entries >= 100.min(n),
            "the cache was emptied at {n}"
        );
    }
    let entries = verifier.cache_stats().entries;
    assert!(
        (CACHE_ENTRIES * 8 / 10..=CACHE_ENTRIES).contains(&entries),
        "{entries}"
    );
    // A new key set: the old key's tokens are refused, not served from memory.
    verifier.set_keys(set(&[&k2]));
    assert!(verifier.verify(&first).await.is_err());
    verifier.verify(&token(&k2, 0)).await.unwrap();
}
