//! Sign and verify for HS256, RS256, ES256 and EdDSA, in one run, for four contenders:
//!
//! - `tessera`: this crate (`jwt::encode`, `jwt::decode`);
//! - `jsonwebtoken`: the `jsonwebtoken` crate on its aws-lc-rs backend;
//! - `jwt-simple`: the `jwt-simple` crate (pure-Rust build, without BoringSSL);
//! - `floor`: the bare aws-lc-rs primitive over the same signing input, with a key
//!   parsed once (HMAC with a prebuilt `hmac::Key`, `ParsedPublicKey::verify_sig`,
//!   a key pair's `sign`). No library can verify or sign faster than this.
//!
//! Verify means: decode, check the signature, and validate `exp`, `iss` and `aud` into
//! a typed claims struct. Every contender verifies the very same token (signed once by
//! tessera, header `{"alg":..,"typ":"JWT"}`) carrying the same claims, and signs the
//! same claims. `jwt-simple` can only deserialize into its own `JWTClaims<Custom>`, so
//! it gets the same custom claims (`name`, `admin`) through that wrapper.
//!
//! Run with `scripts/bench-jose`, which turns criterion's estimates into the table in
//! docs/benchmarks.md. Group names are `{alg}-{op}` and function names the contender,
//! so estimates land in `target/criterion/{alg}-{op}/{contender}/new/estimates.json`.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{KeyPair, ParsedPublicKey};
use aws_lc_rs::{hmac, rand, signature};
use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Bencher, Criterion};
use jwt_simple::prelude::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, EdDSAKeyPairLike, EdDSAPublicKeyLike, MACLike,
    RSAKeyPairLike, RSAPublicKeyLike,
};
use serde::{Deserialize, Serialize};
use tessera_jose::jws::Header;
use tessera_jose::jwt::{self, Validation};
use tessera_jose::{Algorithm, Curve, Jwk};

const ISS: &str = "https://auth.example";
const AUD: &str = "api.example";

/// The typed claims every contender signs and verifies into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BenchClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
    name: String,
    admin: bool,
}

/// The non-registered part of [`BenchClaims`], for jwt-simple's `JWTClaims<T>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Custom {
    name: String,
    admin: bool,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn claims() -> BenchClaims {
    let iat = now();
    BenchClaims {
        iss: ISS.into(),
        sub: "user-42".into(),
        aud: AUD.into(),
        exp: iat + 3600,
        iat,
        name: "Ada Lovelace".into(),
        admin: true,
    }
}

fn simple_claims(c: &BenchClaims) -> jwt_simple::prelude::JWTClaims<Custom> {
    use jwt_simple::prelude::*;
    JWTClaims {
        issued_at: Some(UnixTimeStamp::from_secs(c.iat as u64)),
        expires_at: Some(UnixTimeStamp::from_secs(c.exp as u64)),
        invalid_before: None,
        issuer: Some(c.iss.clone()),
        subject: Some(c.sub.clone()),
        audiences: Some(Audiences::AsString(c.aud.clone())),
        jwt_id: None,
        nonce: None,
        custom: Custom {
            name: c.name.clone(),
            admin: c.admin,
        },
    }
}

fn simple_options() -> jwt_simple::prelude::VerificationOptions {
    use std::collections::HashSet;
    jwt_simple::prelude::VerificationOptions {
        allowed_issuers: Some(HashSet::from([ISS.to_owned()])),
        allowed_audiences: Some(HashSet::from([AUD.to_owned()])),
        ..Default::default()
    }
}

fn jwt_validation(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v
}

/// One algorithm's keys in every contender's form, and the token they all verify.
struct Case {
    name: &'static str,
    alg: Algorithm,
    tessera_private: Jwk,
    tessera_public: Jwk,
    jwt_alg: jsonwebtoken::Algorithm,
    jwt_enc: jsonwebtoken::EncodingKey,
    jwt_dec: jsonwebtoken::DecodingKey,
    simple: SimpleKeys,
    floor: Floor,
    token: String,
}

// Four values, built once: boxing would only add an indirection to the timed calls.
#[allow(clippy::large_enum_variant)]
enum SimpleKeys {
    Hs(jwt_simple::prelude::HS256Key),
    Rs(
        jwt_simple::prelude::RS256KeyPair,
        jwt_simple::prelude::RS256PublicKey,
    ),
    Es(
        jwt_simple::prelude::ES256KeyPair,
        jwt_simple::prelude::ES256PublicKey,
    ),
    Ed(
        jwt_simple::prelude::Ed25519KeyPair,
        jwt_simple::prelude::Ed25519PublicKey,
    ),
}

#[allow(clippy::large_enum_variant)]
enum Floor {
    Hs(hmac::Key),
    Rs(signature::RsaKeyPair, ParsedPublicKey),
    Es(signature::EcdsaKeyPair, ParsedPublicKey),
    Ed(signature::Ed25519KeyPair, ParsedPublicKey),
}

impl Floor {
    fn sign(&self, rng: &rand::SystemRandom, msg: &[u8]) -> Vec<u8> {
        match self {
            Floor::Hs(k) => hmac::sign(k, msg).as_ref().to_vec(),
            Floor::Rs(pair, _) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, rng, msg, &mut sig)
                    .expect("RSA sign");
                sig
            }
            Floor::Es(pair, _) => pair.sign(rng, msg).expect("ECDSA sign").as_ref().to_vec(),
            Floor::Ed(pair, _) => pair.sign(msg).as_ref().to_vec(),
        }
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            Floor::Hs(k) => hmac::verify(k, msg, sig).is_ok(),
            Floor::Rs(_, p) | Floor::Es(_, p) | Floor::Ed(_, p) => p.verify_sig(msg, sig).is_ok(),
        }
    }
}

impl SimpleKeys {
    fn sign(&self, c: jwt_simple::prelude::JWTClaims<Custom>) -> String {
        match self {
            SimpleKeys::Hs(k) => k.authenticate(c),
            SimpleKeys::Rs(k, _) => k.sign(c),
            SimpleKeys::Es(k, _) => k.sign(c),
            SimpleKeys::Ed(k, _) => k.sign(c),
        }
        .expect("jwt-simple sign")
    }

    fn verify(
        &self,
        token: &str,
        o: jwt_simple::prelude::VerificationOptions,
    ) -> jwt_simple::prelude::JWTClaims<Custom> {
        match self {
            SimpleKeys::Hs(k) => k.verify_token::<Custom>(token, Some(o)),
            SimpleKeys::Rs(_, k) => k.verify_token::<Custom>(token, Some(o)),
            SimpleKeys::Es(_, k) => k.verify_token::<Custom>(token, Some(o)),
            SimpleKeys::Ed(_, k) => k.verify_token::<Custom>(token, Some(o)),
        }
        .expect("jwt-simple verify")
    }
}

fn case(name: &'static str, alg: Algorithm) -> Case {
    let mut secret = vec![0u8; 32];
    rand::fill(&mut secret).expect("random secret");
    let tessera_private = match alg {
        Algorithm::HS256 => Jwk::from_secret(&secret),
        Algorithm::RS256 => Jwk::generate_rsa(2048),
        Algorithm::ES256 => Jwk::generate_curve(Curve::P256),
        _ => Jwk::generate_curve(Curve::Ed25519),
    }
    .expect("key generation");
    let (tessera_public, private_pem, public_pem) = if alg == Algorithm::HS256 {
        (tessera_private.clone(), String::new(), String::new())
    } else {
        (
            tessera_private.to_public().expect("public key"),
            tessera_private.to_pem().expect("PKCS#8 PEM"),
            tessera_private.public_key_pem().expect("SPKI PEM"),
        )
    };
    let pkcs8 = if alg == Algorithm::HS256 {
        Vec::new()
    } else {
        tessera_private.to_pkcs8_der().expect("PKCS#8").to_vec()
    };
    let spki = if alg == Algorithm::HS256 {
        Vec::new()
    } else {
        tessera_public.to_spki_der().expect("SPKI")
    };

    let (jwt_alg, jwt_enc, jwt_dec) = match alg {
        Algorithm::HS256 => (
            jsonwebtoken::Algorithm::HS256,
            jsonwebtoken::EncodingKey::from_secret(&secret),
            jsonwebtoken::DecodingKey::from_secret(&secret),
        ),
        Algorithm::RS256 => (
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("RSA PEM"),
            jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).expect("RSA PEM"),
        ),
        Algorithm::ES256 => (
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::EncodingKey::from_ec_pem(private_pem.as_bytes()).expect("EC PEM"),
            jsonwebtoken::DecodingKey::from_ec_pem(public_pem.as_bytes()).expect("EC PEM"),
        ),
        _ => (
            jsonwebtoken::Algorithm::EdDSA,
            jsonwebtoken::EncodingKey::from_ed_pem(private_pem.as_bytes()).expect("Ed PEM"),
            jsonwebtoken::DecodingKey::from_ed_pem(public_pem.as_bytes()).expect("Ed PEM"),
        ),
    };

    let simple = {
        use jwt_simple::prelude::*;
        match alg {
            Algorithm::HS256 => SimpleKeys::Hs(HS256Key::from_bytes(&secret)),
            Algorithm::RS256 => SimpleKeys::Rs(
                RS256KeyPair::from_pem(&private_pem).expect("RSA PEM"),
                RS256PublicKey::from_pem(&public_pem).expect("RSA PEM"),
            ),
            Algorithm::ES256 => SimpleKeys::Es(
                ES256KeyPair::from_pem(&private_pem).expect("EC PEM"),
                ES256PublicKey::from_pem(&public_pem).expect("EC PEM"),
            ),
            _ => SimpleKeys::Ed(
                Ed25519KeyPair::from_pem(&private_pem).expect("Ed PEM"),
                Ed25519PublicKey::from_pem(&public_pem).expect("Ed PEM"),
            ),
        }
    };

    let floor = match alg {
        Algorithm::HS256 => Floor::Hs(hmac::Key::new(hmac::HMAC_SHA256, &secret)),
        Algorithm::RS256 => Floor::Rs(
            signature::RsaKeyPair::from_pkcs8(&pkcs8).expect("RSA PKCS#8"),
            ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &spki).expect("SPKI"),
        ),
        Algorithm::ES256 => {
            let pair = signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &pkcs8,
            )
            .expect("EC PKCS#8");
            let public =
                ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, pair.public_key())
                    .expect("EC point");
            Floor::Es(pair, public)
        }
        _ => {
            let pair =
                signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).expect("Ed PKCS#8");
            let public =
                ParsedPublicKey::new(&signature::ED25519, pair.public_key()).expect("Ed point");
            Floor::Ed(pair, public)
        }
    };

    let header = Header::new(alg).with_typ("JWT");
    let token = jwt::encode(&header, &claims(), &tessera_private).expect("tessera sign");
    Case {
        name,
        alg,
        tessera_private,
        tessera_public,
        jwt_alg,
        jwt_enc,
        jwt_dec,
        simple,
        floor,
        token,
    }
}

/// Every contender verifies every other's token before anything is timed, so a
/// misconfigured contender fails loudly instead of benchmarking an error path.
fn cross_check(c: &Case) {
    let want = claims();
    let validation = Validation::new().issuer(ISS).audience(AUD);
    let jwt_header = jsonwebtoken::Header::new(c.jwt_alg);
    let tokens = [
        c.token.clone(),
        jsonwebtoken::encode(&jwt_header, &want, &c.jwt_enc).expect("jsonwebtoken sign"),
        c.simple.sign(simple_claims(&want)),
    ];
    for t in &tokens {
        let got = jwt::decode::<BenchClaims>(t, &c.tessera_public, &validation)
            .unwrap_or_else(|e| panic!("{}: tessera refuses a peer token: {e}", c.name))
            .claims;
        assert_eq!(got.sub, want.sub);
        let got = jsonwebtoken::decode::<BenchClaims>(t, &c.jwt_dec, &jwt_validation(c.jwt_alg))
            .unwrap_or_else(|e| panic!("{}: jsonwebtoken refuses a token: {e}", c.name))
            .claims;
        assert_eq!(got.sub, want.sub);
        let got = c.simple.verify(t, simple_options());
        assert_eq!(got.custom.name, want.name);
        let (input, sig) = split(t);
        assert!(c.floor.verify(input.as_bytes(), &sig), "{}: floor", c.name);
    }
}

fn split(token: &str) -> (&str, Vec<u8>) {
    use base64::Engine;
    let dot = token.rfind('.').expect("three parts");
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token[dot + 1..])
        .expect("signature is base64url");
    (&token[..dot], sig)
}

fn bench<M: Measurement>(cr: &mut Criterion<M>) {
    let rng = rand::SystemRandom::new();
    let cases = [
        case("HS256", Algorithm::HS256),
        case("RS256", Algorithm::RS256),
        case("ES256", Algorithm::ES256),
        case("EdDSA", Algorithm::EdDSA),
    ];
    for c in &cases {
        cross_check(c);
    }
    // TESSERA_BENCH_ROTATE=k starts each group with its k-th contender.
    let rotate = std::env::var("TESSERA_BENCH_ROTATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for c in &cases {
        let claims = claims();
        let header = Header::new(c.alg).with_typ("JWT");
        let jwt_header = jsonwebtoken::Header::new(c.jwt_alg);
        let (input, _) = split(&c.token);
        let input = input.as_bytes();

        let sign: Vec<Contender<'_, M>> = vec![
            (
                "tessera",
                Box::new(|b| {
                    b.iter(|| {
                        jwt::encode(&header, black_box(&claims), &c.tessera_private).expect("sign")
                    })
                }),
            ),
            (
                "jsonwebtoken",
                Box::new(|b| {
                    b.iter(|| {
                        jsonwebtoken::encode(&jwt_header, black_box(&claims), &c.jwt_enc)
                            .expect("sign")
                    })
                }),
            ),
            // Building jwt-simple's claims wrapper is part of its signing API.
            (
                "jwt-simple",
                Box::new(|b| b.iter(|| c.simple.sign(simple_claims(black_box(&claims))))),
            ),
            (
                "floor",
                Box::new(|b| b.iter(|| c.floor.sign(&rng, black_box(input)))),
            ),
        ];
        run_group(cr, &format!("{}-sign", c.name), sign, rotate);

        let validation = Validation::new().issuer(ISS).audience(AUD);
        let jwt_v = jwt_validation(c.jwt_alg);
        let token = c.token.as_str();
        let (input, sig) = split(token);
        let input = input.as_bytes();
        // The options are moved into verify_token, so a clone is part of each call.
        let o = simple_options();
        let verify: Vec<Contender<'_, M>> = vec![
            (
                "tessera",
                Box::new(|b| {
                    b.iter(|| {
                        jwt::decode::<BenchClaims>(black_box(token), &c.tessera_public, &validation)
                            .expect("verify")
                    })
                }),
            ),
            (
                "jsonwebtoken",
                Box::new(|b| {
                    b.iter(|| {
                        jsonwebtoken::decode::<BenchClaims>(black_box(token), &c.jwt_dec, &jwt_v)
                            .expect("verify")
                    })
                }),
            ),
            (
                "jwt-simple",
                Box::new(|b| b.iter(|| c.simple.verify(black_box(token), o.clone()))),
            ),
            (
                "floor",
                Box::new(|b| b.iter(|| assert!(c.floor.verify(black_box(input), black_box(&sig))))),
            ),
        ];
        run_group(cr, &format!("{}-verify", c.name), verify, rotate);
    }
}

type Contender<'a, M> = (&'static str, Box<dyn FnMut(&mut Bencher<'_, M>) + 'a>);

/// Runs a group's contenders, the order rotated by `rotate`: scripts/bench-jose
/// rotates it between passes so that no contender always runs first (or last) on a
/// machine whose load drifts.
fn run_group<M: Measurement>(
    cr: &mut Criterion<M>,
    name: &str,
    mut contenders: Vec<Contender<'_, M>>,
    rotate: usize,
) {
    let n = contenders.len();
    contenders.rotate_left(rotate % n);
    let mut g = cr.benchmark_group(name);
    for (who, mut f) in contenders {
        g.bench_function(who, |b| f(b));
    }
    g.finish();
}

/// Thread CPU time: unlike wall time, it does not count the time this thread waits
/// while other processes run, so figures stay comparable on a busy shared machine.
/// For single-threaded code that never blocks it equals wall time on an idle one.
struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = ThreadTime;
    type Value = Duration;

    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }
    fn end(&self, i: ThreadTime) -> Duration {
        i.elapsed()
    }
    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, val: &Duration) -> f64 {
        val.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

fn config<M: Measurement>(m: M) -> Criterion<M> {
    // Short by default so that the whole run takes a few minutes on two cores;
    // command-line flags (--measurement-time, --sample-size, ...) still override.
    Criterion::default()
        .with_measurement(m)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args()
}

fn main() {
    // TESSERA_BENCH_CLOCK=wall measures wall time instead of thread CPU time.
    if std::env::var("TESSERA_BENCH_CLOCK").as_deref() == Ok("wall") {
        let mut c = config(WallTime);
        bench(&mut c);
        c.final_summary();
    } else {
        let mut c = config(CpuTime);
        bench(&mut c);
        c.final_summary();
    }
}
