//! What the guard costs on top of the JOSE decode: `jwt::decode` alone against
//! `Guard::verify` (static keys, revocation hook, the claims the guard reads) and the
//! whole layer (header parsing, requirements, the `Principal` in the extensions),
//! for ES256 and HS256 access tokens.
//!
//! Run: `cargo bench -p tessera-guard --bench verify`

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tessera_guard::{Guard, RevocationView, access_token_validation};
use tessera_jose::jws::Header;
use tessera_jose::jwt::{self, Claims};
use tessera_jose::{Algorithm, Curve, Jwk, JwkSet};
use tower::{Layer, ServiceExt};

const ISS: &str = "https://issuer.test";
const NOW: i64 = 1_800_000_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let claims = json!({
        "iss": ISS, "aud": ISS, "sub": "0190a5c2-7e1b-7c3e-9a41-2f1d6c8b9e01", "iat": NOW,
        "exp": NOW + 900, "jti": "0190a5c2-7e1b-7c3e-9a41-2f1d6c8b9e02",
        "sid": "0190a5c2-7e1b-7c3e-9a41-2f1d6c8b9e03", "roles": ["user"], "scope": "read profile",
    });
    let validation = access_token_validation(ISS, ISS).at(NOW);
    for (name, key, alg) in [
        (
            "ES256",
            Jwk::generate_curve(Curve::P256).expect("key").with_kid("k"),
            Algorithm::ES256,
        ),
        (
            "HS256",
            Jwk::from_secret([7u8; 32]).expect("key").with_kid("k"),
            Algorithm::HS256,
        ),
    ] {
        let verify_key = if alg == Algorithm::HS256 {
            key.clone()
        } else {
            key.to_public().expect("public")
        };
        let set = JwkSet::new(vec![verify_key]);
        let token = jwt::encode(
            &Header::new(alg).with_kid("k").with_typ("at+jwt"),
            &claims,
            &key,
        )
        .expect("token");
        let guard = Guard::builder(set.clone())
            .validation(validation.clone())
            .with_revocation(Arc::new(|t: &RevocationView<'_>| t.jti == Some("denied")))
            .with_clock(Arc::new(|| NOW))
            .build();
        assert!(rt.block_on(guard.verify(&token)).is_ok());

        let mut g = c.benchmark_group(name);
        g.bench_function("jose decode", |b| {
            b.iter(|| jwt::decode::<Claims>(black_box(&token), &set, &validation).expect("ok"))
        });
        g.bench_function("guard verify", |b| {
            b.iter(|| rt.block_on(guard.verify(black_box(&token))).expect("ok"))
        });
        let svc = guard.layer().require_scope("read").layer(tower::service_fn(
            |_req: Request<Body>| async {
                Ok::<_, std::convert::Infallible>(axum::response::Response::new(Body::empty()))
            },
        ));
        let bearer = format!("Bearer {token}");
        g.bench_function("guard layer", |b| {
            b.iter(|| {
                let req = Request::get("/")
                    .header("authorization", &bearer)
                    .body(Body::empty())
                    .expect("request");
                let res = rt.block_on(svc.clone().oneshot(req)).expect("response");
                assert_eq!(res.status(), 200);
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
