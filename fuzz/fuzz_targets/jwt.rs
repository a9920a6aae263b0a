//! Token parsing and verification (JWS and JWT).
//!
//! The first byte picks a mode:
//! - 0: the rest is a compact token, verified against a key set of every family,
//!   parsed unverified, and decoded insecurely; none of it may panic;
//! - 1: the rest is `header JSON \0 payload JSON`, turned into a token with a valid
//!   HS256 MAC, so that header rules and claims validation are reached; whatever
//!   `decode` accepts must really be unexpired and from the right issuer;
//! - 2: the rest is a payload, signed and verified again with each kind of key; it
//!   must round-trip, and a token with one changed byte must be refused.
#![no_main]

use std::sync::LazyLock;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use tessera_jose::jws::{self, Header, Policy};
use tessera_jose::jwt::{self, Claims, Validation};
use tessera_jose::{Algorithm, Curve, Jwk, JwkSet, dangerous};

const SECRET: [u8; 32] = *b"fuzzing-secret-of-thirty-two-by!";
const NOW: i64 = 1_700_000_000;

struct Keys {
    private: Vec<Jwk>,
    public: JwkSet,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let private = vec![
        Jwk::from_secret(SECRET).expect("secret").with_kid("hs"),
        Jwk::generate_rsa(2048).expect("rsa").with_kid("rs"),
        Jwk::generate_curve(Curve::P256)
            .expect("p256")
            .with_kid("es"),
        Jwk::generate_curve(Curve::Ed25519)
            .expect("ed")
            .with_kid("ed"),
    ];
    let public = private
        .iter()
        .map(|k| {
            if k.kid() == Some("hs") {
                Ok(k.clone())
            } else {
                k.to_public()
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .expect("public keys");
    Keys {
        private,
        public: JwkSet::new(public),
    }
});

fn validation() -> Validation {
    Validation::new()
        .issuer("iss")
        .audience("aud")
        .leeway(30)
        .at(NOW)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = &*KEYS;
    match mode % 3 {
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            let _ = jwt::decode::<Claims>(token, &keys.public, &validation());
            let _ = jws::verify(token, &keys.public, &Policy::new());
            if let Ok(u) = jws::Unverified::parse(token, &Policy::new()) {
                let _ = u.header();
            }
            let _ = dangerous::insecure_decode(token);
        }
        1 => {
            let (header, payload) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b"{}"[..]),
            };
            let mut token = B64.encode(header);
            token.push('.');
            token.push_str(&B64.encode(payload));
            let mac = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, &SECRET),
                token.as_bytes(),
            );
            token.push('.');
            token.push_str(&B64.encode(mac.as_ref()));
            let decoded = jwt::decode::<Claims>(&token, &keys.public, &validation());
            // decode reads the registered claims without a second full parse; it must
            // agree with validate_payload, which checks then parses the whole payload.
            let header = Header::new(Algorithm::HS256);
            if let (Ok(_), Err(reference)) = (
                jws::verify(&token, &keys.public, &Policy::new()),
                validation().validate_payload(&header, payload, NOW),
            ) {
                let kind = decoded.as_ref().map(|_| ()).map_err(|e| e.kind());
                assert_eq!(
                    kind,
                    Err(reference.kind()),
                    "decode and validate_payload disagree"
                );
            }
            if let Ok(data) = decoded {
                let c = &data.claims;
                assert!(
                    c.exp.is_some_and(|e| NOW - 30 < e.0),
                    "accepted an expired token"
                );
                assert_eq!(c.iss.as_deref(), Some("iss"), "accepted a foreign issuer");
                assert!(
                    c.aud.as_ref().is_some_and(|a| a.contains("aud")),
                    "accepted a foreign audience"
                );
                assert!(
                    c.nbf.is_none_or(|n| n.0 <= NOW + 30),
                    "accepted a token before nbf"
                );
                assert!(
                    c.iat.is_none_or(|n| n.0 <= NOW + 30),
                    "accepted a token from the future"
                );
                assert_eq!(data.header.alg, Algorithm::HS256);
                // What verifies must also decode without verification.
                assert!(
                    dangerous::insecure_decode(&token).is_ok(),
                    "insecure_decode disagrees"
                );
            }
        }
        _ => {
            let Some((&which, payload)) = rest.split_first() else {
                return;
            };
            let key = &keys.private[usize::from(which) % keys.private.len()];
            let alg = key.default_algorithm().expect("signing key");
            let header = Header::new(alg).with_kid(key.kid().unwrap_or_default());
            let Ok(token) = jws::sign(&header, payload, key) else {
                // Only a payload too large for the size limit may fail to sign... and sign
                // has no limit, so nothing may fail.
                panic!("signing failed");
            };
            let verified = jws::verify(&token, &keys.public, &Policy::new().max_size(usize::MAX));
            assert_eq!(verified.expect("round trip").payload(), payload);
            // One changed byte anywhere is refused.
            let mut bytes = token.clone().into_bytes();
            let at = usize::from(which) * 7919 % bytes.len();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            if let Ok(tampered) = String::from_utf8(bytes) {
                assert!(
                    jws::verify(&tampered, &keys.public, &Policy::new().max_size(usize::MAX))
                        .is_err(),
                    "a changed byte verified"
                );
            }
        }
    }
});
