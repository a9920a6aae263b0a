//! # tessera-jose
//!
//! JWS, JWE, JWK/JWK Set and JWT validation with safe defaults, built on
//! [aws-lc-rs](https://docs.rs/aws-lc-rs), with AES Key Wrap (RFC 3394) from RustCrypto's
//! [aes-kw](https://docs.rs/aes-kw). Nothing cryptographic is written here: this
//! crate is the format (RFC 7515–7519, 7638, 8037), the policy and the plumbing.
//!
//! ## Sign and verify a JWT
//!
//! ```
//! use tessera_jose::{Algorithm, Jwk, jws::Header, jwt::{self, Claims, NumericDate, Validation}};
//!
//! let key = Jwk::generate_curve(tessera_jose::Curve::P256)?.with_kid("2026-11");
//! let claims = Claims::<serde_json::Map<_, _>> {
//!     iss: Some("https://auth.example".into()),
//!     sub: Some("ada".into()),
//!     exp: Some(NumericDate(NumericDate::now().0 + 900)),
//!     ..Default::default()
//! };
//! let token = jwt::encode(&Header::new(Algorithm::ES256).with_kid("2026-11"), &claims, &key)?;
//!
//! let validation = Validation::new().issuer("https://auth.example");
//! let data = jwt::decode::<Claims>(&token, &key.to_public()?, &validation)?;
//! assert_eq!(data.claims.sub.as_deref(), Some("ada"));
//! # Ok::<(), tessera_jose::Error>(())
//! ```
//!
//! ## Verify with a JWK Set
//!
//! The key is chosen by the token's `kid` among the set's keys, and must belong to the
//! family of the token's algorithm. The token itself never supplies a key.
//!
//! ```
//! use tessera_jose::{Algorithm, ErrorKind, Jwk, JwkSet, jws::Header, jwt::{self, Claims, Validation}};
//!
//! let old = Jwk::generate_curve(tessera_jose::Curve::Ed25519)?.with_kid("old");
//! let new = Jwk::generate_curve(tessera_jose::Curve::Ed25519)?.with_kid("new");
//! let jwks = JwkSet::from_json(JwkSet::new(vec![old.to_public()?, new.to_public()?]).to_json())?;
//!
//! let token = jwt::encode(
//!     &Header::new(Algorithm::EdDSA).with_kid("new"),
//!     &serde_json::json!({"sub": "ada", "exp": 4102444800_i64}),
//!     &new,
//! )?;
//! let data = jwt::decode::<Claims>(&token, &jwks, &Validation::new())?;
//! assert_eq!(data.header.kid.as_deref(), Some("new"));
//!
//! // The same token with an unknown kid finds no key.
//! let stranger = Jwk::generate_curve(tessera_jose::Curve::Ed25519)?;
//! let forged = jwt::encode(&Header::new(Algorithm::EdDSA).with_kid("x"), &serde_json::json!({"exp": 4102444800_i64}), &stranger)?;
//! let err = jwt::decode::<Claims>(&forged, &jwks, &Validation::new()).unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::KeyNotFound);
//! # Ok::<(), tessera_jose::Error>(())
//! ```
//!
//! ## Encrypt and decrypt
//!
//! ```
//! use tessera_jose::{ContentEncryption, Jwk, KeyManagement, jwe::{self, Decrypter, EncryptOptions}};
//!
//! let recipient = Jwk::generate_curve(tessera_jose::Curve::X25519)?;
//! let opts = EncryptOptions::new(KeyManagement::EcdhEsA256KW, ContentEncryption::A256Gcm);
//! let token = jwe::encrypt(b"the secret", &recipient.to_public()?, &opts)?;
//!
//! let opened = jwe::decrypt(&token, &recipient, &Decrypter::new())?;
//! assert_eq!(opened.plaintext(), b"the secret");
//! # Ok::<(), tessera_jose::Error>(())
//! ```
//!
//! ## Defaults, and why
//!
//! | default | reason |
//! | --- | --- |
//! | `none` cannot be named and never verifies | unsecured tokens are the classic bypass |
//! | the key decides the algorithm family; a JWK's `alg` pins it | algorithm confusion (RS256 key as HS256 secret) |
//! | `jwk`, `jku`, `x5u`, `x5c` headers are ignored | a token must never bring its own key |
//! | any `crit` is refused, and `b64: false` | unknown semantics must not be silently ignored |
//! | canonical base64url only; duplicate JSON members refused | one token, one meaning: no parser differentials |
//! | registered claims must have their JSON type | an `exp` that is a string must not be skipped |
//! | `exp` required; leeway 0 s | a token without an end is forever; skew is opt-in |
//! | ECDSA signatures are raw r‖s of exact length | DER/short forms are how malleability creeps in |
//! | RSA ≥ 2048 bits; HMAC secret ≥ hash length | RFC 7518 §3.2 and §3.3 |
//! | tokens ≤ 64 KiB, JSON depth ≤ 32, checked before parsing | bounded work on hostile input |
//! | `RSA1_5` refused; `zip` refused unless enabled, then bounded | padding oracles; decompression bombs |
//! | JWE failures after key selection are one error | no decryption oracle |
//! | keys never print in `Debug`; secret bytes are zeroized on drop | no leaks through logs |
#![forbid(unsafe_code)]

pub mod alg;
mod b64;
pub mod dangerous;
pub mod error;
mod json;
pub mod jwe;
pub mod jwk;
pub mod jws;
pub mod jwt;

pub use alg::{Algorithm, ContentEncryption, KeyManagement};
pub use error::{Error, ErrorKind, Result};
pub use jwk::{Curve, Jwk, JwkSet, KeySource, KeyType};

/// Holds `bytes` to the JSON rules every token header, payload and key is held to:
/// UTF-8, RFC 8259 syntax, no member name twice in an object (compared after
/// unescaping), and arrays and objects nested at most `max_depth` deep (never more
/// than 128). For services that want their other JSON input checked the same way,
/// before a parser recurses into it.
///
/// ```
/// assert!(tessera_jose::check_json(br#"{"a":[1,{"b":null}]}"#, 32).is_ok());
/// assert!(tessera_jose::check_json(br#"{"a":1,"a":2}"#, 32).is_err());
/// assert!(tessera_jose::check_json(b"[[[]]]", 2).is_err());
/// ```
pub fn check_json(bytes: &[u8], max_depth: usize) -> Result<()> {
    json::check(bytes, max_depth)
}
