//! Runs N verifications of one JWT, through `jwt::decode` or through the bare
//! aws-lc-rs primitive over the same signing input, for `scripts/bench-jose-instructions`,
//! which counts the instructions of each under callgrind (deterministic, unlike time
//! on a shared machine).
//!
//! `cargo run --release --example verify_cost -- ALG (tessera|floor) N [RSA_JWK_FILE]`

use aws_lc_rs::signature::{self, ParsedPublicKey};
use tessera_jose::jws::Header;
use tessera_jose::jwt::{self, Validation};
use tessera_jose::{Algorithm, Curve, Jwk};

#[derive(serde::Deserialize, serde::Serialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
    name: String,
    admin: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: verify_cost ALG (tessera|floor) N [RSA_JWK_FILE]";
    let (alg, who, n) = match (args.get(1), args.get(2), args.get(3)) {
        (Some(a), Some(w), Some(n)) => (a.parse::<Algorithm>()?, w.as_str(), n.parse::<usize>()?),
        _ => return Err(usage.into()),
    };
    let key = match alg {
        Algorithm::EdDSA => Jwk::generate_curve(Curve::Ed25519)?,
        Algorithm::ES256 => Jwk::generate_curve(Curve::P256)?,
        Algorithm::HS256 => Jwk::generate_oct(32)?,
        // RSA key generation takes a random amount of work: load a fixed key instead.
        Algorithm::RS256 => Jwk::from_json(std::fs::read(args.get(4).ok_or(usage)?)?)?,
        other => return Err(format!("{other} is not measured").into()),
    };
    let claims = Claims {
        iss: "https://auth.example".into(),
        sub: "ada".into(),
        aud: "api.example".into(),
        exp: 4_102_444_800,
        iat: 1_700_000_000,
        name: "Ada Lovelace".into(),
        admin: true,
    };
    let token = jwt::encode(&Header::new(alg).with_typ("JWT"), &claims, &key)?;
    let public = if alg == Algorithm::HS256 {
        key.clone()
    } else {
        key.to_public()?
    };
    let validation = Validation::new()
        .issuer("https://auth.example")
        .audience("api.example");
    let (signing_input, sig_b64) = token.rsplit_once('.').ok_or("no signature")?;
    use base64::Engine;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig_b64)?;
    if who == "tessera" {
        for _ in 0..n {
            std::hint::black_box(jwt::decode::<Claims>(&token, &public, &validation)?);
        }
    } else {
        let spki = public.to_spki_der()?;
        let (verify_alg, raw): (&'static dyn signature::VerificationAlgorithm, &[u8]) = match alg {
            Algorithm::EdDSA => (&signature::ED25519, &spki[spki.len() - 32..]),
            Algorithm::ES256 => (
                &signature::ECDSA_P256_SHA256_FIXED,
                &spki[spki.len() - 65..],
            ),
            _ => (&signature::RSA_PKCS1_2048_8192_SHA256, &spki[..]),
        };
        let parsed = ParsedPublicKey::new(verify_alg, raw)?;
        for _ in 0..n {
            parsed.verify_sig(std::hint::black_box(signing_input.as_bytes()), &sig)?;
        }
    }
    Ok(())
}
