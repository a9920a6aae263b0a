//! One test per secure default of tessera-jose. Each test is built so that it fails
//! if its default is removed: the attacker's token is otherwise well formed and
//! correctly signed or MACed, so only the default stands between it and success.

mod common;

use aws_lc_rs::hmac;
use serde_json::{Value, json};
use tessera_jose::jws::{self, Header, Policy};
use tessera_jose::jwt::{self, Claims, Validation};
use tessera_jose::{Algorithm, Curve, ErrorKind, Jwk, JwkSet, dangerous};

use common::{b64, unb64};

const FAR_FUTURE: i64 = 4_102_444_800; // 2100-01-01

fn hs_key() -> Jwk {
    Jwk::from_secret([0x5a; 32]).unwrap()
}

/// A compact JWS over exactly these header and payload texts, MACed with `secret`
/// outside the library: what an attacker who holds (or guessed) the secret sends.
fn mac_token(header_b64: &str, payload_b64: &str, secret: &[u8], alg: hmac::Algorithm) -> String {
    let input = format!("{header_b64}.{payload_b64}");
    let tag = hmac::sign(&hmac::Key::new(alg, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

fn hs256(header: &Value, payload: &Value) -> String {
    mac_token(
        &b64(header.to_string()),
        &b64(payload.to_string()),
        &[0x5a; 32],
        hmac::HMAC_SHA256,
    )
}

fn verify_kind(token: &str, key: &impl tessera_jose::KeySource) -> ErrorKind {
    jws::verify(token, key, &Policy::new()).unwrap_err().kind()
}

fn decode_kind(token: &str, key: &impl tessera_jose::KeySource, v: &Validation) -> ErrorKind {
    jwt::decode::<Claims>(token, key, v).unwrap_err().kind()
}

#[test]
fn control_a_crafted_token_does_verify() {
    // The helpers above make tokens the library accepts; every test below changes one thing.
    let token = hs256(
        &json!({"alg": "HS256"}),
        &json!({"sub": "ada", "exp": FAR_FUTURE}),
    );
    let data = jwt::decode::<Claims>(&token, &hs_key(), &Validation::new()).unwrap();
    assert_eq!(data.claims.sub.as_deref(), Some("ada"));
}

#[test]
fn none_never_verifies() {
    let ec = Jwk::generate_curve(Curve::P256).unwrap();
    let set = JwkSet::new(vec![hs_key(), ec.to_public().unwrap()]);
    let payload = b64(json!({"sub": "admin", "exp": FAR_FUTURE}).to_string());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(json!({"alg": alg}).to_string());
        for sig in ["", "AAAA", "c2ln"] {
            let token = format!("{header}.{payload}.{sig}");
            assert_eq!(
                verify_kind(&token, &hs_key()),
                ErrorKind::AlgorithmNotAllowed,
                "{token}"
            );
            assert_eq!(verify_kind(&token, &ec), ErrorKind::AlgorithmNotAllowed);
            assert_eq!(verify_kind(&token, &set), ErrorKind::AlgorithmNotAllowed);
            let v = Validation::new();
            assert_eq!(
                decode_kind(&token, &set, &v),
                ErrorKind::AlgorithmNotAllowed
            );
        }
        assert!(
            alg.parse::<Algorithm>().is_err(),
            "none cannot even be named"
        );
    }
}

#[test]
fn embedded_jwk_jku_x5u_x5c_never_supply_the_key() {
    let real = Jwk::generate_curve(Curve::P256).unwrap().with_kid("real");
    let real_public = real.to_public().unwrap();
    let attacker = Jwk::generate_curve(Curve::P256).unwrap();
    let attacker_public: Value =
        serde_json::from_str(&attacker.to_public().unwrap().to_json()).unwrap();
    let params = [
        ("jwk", attacker_public),
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("x5c", json!([b64(attacker.to_spki_der().unwrap())])),
    ];
    let claims = json!({"sub": "admin", "exp": FAR_FUTURE});
    for (name, value) in params {
        for kid in [None, Some("real")] {
            let mut header = Header::new(Algorithm::ES256).with_param(name, value.clone());
            if let Some(kid) = kid {
                header = header.with_kid(kid);
            }
            let token = jwt::encode(&header, &claims, &attacker).unwrap();
            // The attacker's own key would accept it: only the header can point at it.
            assert!(jws::verify(&token, &attacker, &Policy::new()).is_ok());
            assert_eq!(
                verify_kind(&token, &real_public),
                ErrorKind::InvalidSignature,
                "{name}"
            );
            let set = JwkSet::new(vec![real_public.clone()]);
            assert_eq!(
                verify_kind(&token, &set),
                ErrorKind::InvalidSignature,
                "{name}"
            );
            assert_eq!(
                decode_kind(&token, &set, &Validation::new()),
                ErrorKind::InvalidSignature,
                "{name}"
            );
        }
    }
}

#[test]
fn unknown_crit_is_refused() {
    let payload = json!({"exp": FAR_FUTURE});
    for header in [
        json!({"alg": "HS256", "crit": ["exp"], "exp": 1}),
        json!({"alg": "HS256", "crit": ["http://example.invalid/x"], "http://example.invalid/x": true}),
        json!({"alg": "HS256", "crit": []}),
        json!({"alg": "HS256", "crit": "exp"}),
    ] {
        let token = hs256(&header, &payload);
        assert_eq!(
            verify_kind(&token, &hs_key()),
            ErrorKind::UnsupportedHeader,
            "{header}"
        );
        assert_eq!(
            decode_kind(&token, &hs_key(), &Validation::new()),
            ErrorKind::UnsupportedHeader
        );
    }
}

#[test]
fn b64_false_is_refused() {
    // RFC 7797: with b64 false the signing input holds the raw payload. A verifier that
    // ignored the flag would read the base64url as the payload; one that honoured it
    // without asking would accept unencoded content. Both are refused.
    let raw = r#"{"sub":"admin","exp":4102444800}"#;
    for header in [
        json!({"alg": "HS256", "b64": false, "crit": ["b64"]}),
        json!({"alg": "HS256", "b64": false}),
    ] {
        let h = b64(header.to_string());
        let input = format!("{h}.{raw}");
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &[0x5a; 32]),
            input.as_bytes(),
        );
        let detached = format!("{h}..{}", b64(tag.as_ref()));
        assert_eq!(
            verify_kind(&detached, &hs_key()),
            ErrorKind::UnsupportedHeader,
            "{header}"
        );
        let encoded = hs256(&header, &serde_json::from_str(raw).unwrap());
        assert_eq!(
            verify_kind(&encoded, &hs_key()),
            ErrorKind::UnsupportedHeader,
            "{header}"
        );
    }
    // b64: true is the default meaning and harmless without crit.
    let ok = hs256(
        &json!({"alg": "HS256", "b64": true}),
        &json!({"exp": FAR_FUTURE}),
    );
    assert!(jws::verify(&ok, &hs_key(), &Policy::new()).is_ok());
}

/// Non-canonical spellings of the same bytes: each decodes, leniently, to what `part`
/// decodes to.
fn non_canonical(part: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match part.len() % 4 {
        2 => out.push(("padding", format!("{part}=="))),
        3 => out.push(("padding", format!("{part}="))),
        _ => {}
    }
    if part.contains('-') {
        out.push(("'+' for '-'", part.replace('-', "+")));
    }
    if part.contains('_') {
        out.push(("'/' for '_'", part.replace('_', "/")));
    }
    // Set the unused low bits of the last character.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused_bits = match part.len() % 4 {
        2 => 4,
        3 => 2,
        _ => 0,
    };
    if unused_bits > 0 {
        let last = *part.as_bytes().last().unwrap();
        let v = ALPHABET.iter().position(|c| *c == last).unwrap();
        let stray = ALPHABET[v | 1] as char;
        out.push(("stray bits", format!("{}{stray}", &part[..part.len() - 1])));
    }
    out
}

#[test]
fn non_canonical_base64url_is_refused_in_every_part() {
    // Search for a header, payload and MAC whose encodings contain '-' and '_' and have
    // unused bits, so that every kind of non-canonical spelling applies to every part.
    let usable = |p: &str| p.contains('-') && p.contains('_') && !p.len().is_multiple_of(4);
    let mut found = None;
    for i in 0..20_000 {
        let pad = "x".repeat(i % 4);
        let h = b64(
            json!({"alg": "HS256", "kid": format!("k{pad}{i}\u{ff}\u{fe}\u{3fe}")}).to_string(),
        );
        let p =
            b64(json!({"exp": FAR_FUTURE, "n": format!("{i}{pad}\u{fbff}\u{3ff}")}).to_string());
        let t = mac_token(&h, &p, &[0x5a; 32], hmac::HMAC_SHA256);
        if t.split('.').all(usable) {
            found = Some(t);
            break;
        }
    }
    let token = found.expect("a token whose three parts contain '-' and '_'");
    assert!(jws::verify(&token, &hs_key(), &Policy::new()).is_ok());
    let parts: Vec<&str> = token.split('.').collect();
    let mut checked = 0;
    for (index, part) in parts.iter().enumerate() {
        let variants = non_canonical(part);
        assert_eq!(variants.len(), 4, "part {index}: {variants:?}");
        for (what, variant) in variants {
            let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
            p[index] = variant;
            // Re-MAC header and payload variants, so that only the encoding is wrong.
            let bad = if index < 2 {
                mac_token(&p[0], &p[1], &[0x5a; 32], hmac::HMAC_SHA256)
            } else {
                p.join(".")
            };
            let err = jws::verify(&bad, &hs_key(), &Policy::new()).unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::Malformed,
                "part {index}, {what}: {err:?}"
            );
            let err = jwt::decode::<Claims>(&bad, &hs_key(), &Validation::new()).unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::Malformed,
                "part {index}, {what}: {err:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn duplicate_json_members_are_refused_in_header_and_payload() {
    let key = hs_key();
    let payload = b64(json!({"exp": FAR_FUTURE}).to_string());
    // Members serde would otherwise drop silently, and an escaped spelling of alg.
    for header in [
        r#"{"alg":"HS256","x":1,"x":2}"#,
        r#"{"alg":"HS256","kid":"a","kid":"b"}"#,
        r#"{"alg":"HS256","\u0061lg":"HS256"}"#,
    ] {
        let token = mac_token(&b64(header), &payload, &[0x5a; 32], hmac::HMAC_SHA256);
        assert_eq!(verify_kind(&token, &key), ErrorKind::Malformed, "{header}");
    }
    let header = b64(r#"{"alg":"HS256"}"#);
    for claims in [
        r#"{"exp":4102444800,"role":"user","role":"admin"}"#,
        r#"{"exp":4102444800,"sub":"ada","sub":"root"}"#,
        r#"{"exp":1,"exp":4102444800}"#,
        r#"{"exp":4102444800,"nested":{"a":1,"a":2}}"#,
    ] {
        let token = mac_token(&header, &b64(claims), &[0x5a; 32], hmac::HMAC_SHA256);
        let v = Validation::new();
        assert_eq!(
            decode_kind(&token, &key, &v),
            ErrorKind::Malformed,
            "{claims}"
        );
        let err = jwt::decode::<Value>(&token, &key, &v).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed, "{claims}");
    }
}

#[test]
fn registered_claims_of_the_wrong_json_type_are_refused_not_skipped() {
    let key = hs_key();
    let lax = Validation::new().allow_missing_exp();
    for claims in [
        json!({"exp": "1"}),
        json!({"exp": "4102444800"}),
        json!({"exp": null}),
        json!({"exp": [1]}),
        json!({"exp": FAR_FUTURE, "nbf": "0"}),
        json!({"exp": FAR_FUTURE, "sub": 7}),
        json!({"exp": FAR_FUTURE, "iss": null}),
        json!({"exp": FAR_FUTURE, "aud": null}),
        json!({"exp": FAR_FUTURE, "iat": null}),
    ] {
        let token = hs256(&json!({"alg": "HS256"}), &claims);
        for v in [&Validation::new(), &lax] {
            assert_eq!(
                decode_kind(&token, &key, v),
                ErrorKind::Malformed,
                "{claims}"
            );
        }
    }
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` from a fixed-length `r || s`.
fn der(sig: &[u8]) -> Vec<u8> {
    let int = |x: &[u8]| {
        let x: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
        let mut v = vec![0x02];
        let pad = x.first().is_none_or(|b| b & 0x80 != 0);
        v.push((x.len() + usize::from(pad)) as u8);
        if pad {
            v.push(0);
        }
        v.extend(x);
        v
    };
    let (r, s) = sig.split_at(sig.len() / 2);
    let body = [int(r), int(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

#[test]
fn ecdsa_signatures_must_be_fixed_length_r_s_and_zero_never_verifies() {
    let key = Jwk::generate_curve(Curve::P256).unwrap();
    let token = jwt::encode(
        &Header::new(Algorithm::ES256),
        &json!({"exp": FAR_FUTURE}),
        &key,
    )
    .unwrap();
    let (input, sig_b64) = token.rsplit_once('.').unwrap();
    let sig = unb64(sig_b64);
    assert_eq!(sig.len(), 64);
    let with = |s: &[u8]| format!("{input}.{}", b64(s));
    assert!(jws::verify(&with(&sig), &key, &Policy::new()).is_ok());
    let (r, s) = sig.split_at(32);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("DER", der(&sig)),
        ("63 bytes", sig[1..].to_vec()),
        ("65 bytes, zero first", [&[0u8][..], &sig].concat()),
        ("65 bytes, zero last", [&sig[..], &[0u8]].concat()),
        ("r || s || r || s", [&sig[..], &sig].concat()),
        ("empty", Vec::new()),
        ("r = s = 0", vec![0; 64]),
        ("r = 0", [&[0u8; 32][..], s].concat()),
        ("s = 0", [r, &[0u8; 32]].concat()),
    ];
    for (what, bad) in cases {
        let t = with(&bad);
        assert_eq!(verify_kind(&t, &key), ErrorKind::InvalidSignature, "{what}");
        assert_eq!(
            jws::verify_detached(Algorithm::ES256, &key, input.as_bytes(), &bad)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidSignature,
            "{what}"
        );
    }
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    let full: Value = serde_json::from_str(
        &Jwk::generate_rsa(2048)
            .unwrap()
            .to_public()
            .unwrap()
            .to_json(),
    )
    .unwrap();
    let n = unb64(full["n"].as_str().unwrap());
    assert_eq!(n.len(), 256);
    // 2047 bits: the top bit cleared. 2040 and 1024 bits: bytes dropped. All odd.
    let mut n2047 = n.clone();
    n2047[0] &= 0x7f;
    n2047[0] |= 0x40;
    let n2040 = n[1..].to_vec();
    let n1024 = [&n[..127], &[n[255] | 1][..]].concat();
    for (bits, modulus) in [(2047, n2047), (2040, n2040), (1024, n1024)] {
        let jwk = json!({"kty": "RSA", "n": b64(&modulus), "e": "AQAB"}).to_string();
        let err = Jwk::from_json(&jwk).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{bits} bits");
        // The same key inside a set is skipped, never trusted.
        let set = JwkSet::from_json(format!(r#"{{"keys":[{jwk}]}}"#)).unwrap();
        assert_eq!((set.keys().len(), set.skipped()), (0, 1), "{bits} bits");
    }
    assert_eq!(
        Jwk::from_json(full.to_string()).unwrap().rsa_bits(),
        Some(2048)
    );
}

#[test]
fn hmac_secrets_shorter_than_the_hash_are_refused() {
    for (alg, hash, len) in [
        (Algorithm::HS256, hmac::HMAC_SHA256, 32),
        (Algorithm::HS384, hmac::HMAC_SHA384, 48),
        (Algorithm::HS512, hmac::HMAC_SHA512, 64),
    ] {
        let short = vec![7u8; len - 1];
        let key = Jwk::from_secret(&short).unwrap();
        // A correct MAC under the short secret: only the length rule refuses it.
        let token = mac_token(
            &b64(json!({"alg": alg.name()}).to_string()),
            &b64("{}"),
            &short,
            hash,
        );
        assert_eq!(verify_kind(&token, &key), ErrorKind::InvalidKey, "{alg}");
        let err = jws::sign(&Header::new(alg), b"{}", &key).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{alg}");
        // At exactly the hash length it works.
        let exact = vec![7u8; len];
        let token = mac_token(
            &b64(json!({"alg": alg.name()}).to_string()),
            &b64("{}"),
            &exact,
            hash,
        );
        assert!(jws::verify(&token, &Jwk::from_secret(&exact).unwrap(), &Policy::new()).is_ok());
    }
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    // Garbage that any parser would call malformed: the size check must come first.
    let huge = "!".repeat(64 * 1024 + 1);
    assert_eq!(verify_kind(&huge, &hs_key()), ErrorKind::TooLarge);
    assert_eq!(
        decode_kind(&huge, &hs_key(), &Validation::new()),
        ErrorKind::TooLarge
    );
    assert_eq!(
        dangerous::insecure_decode(&huge).unwrap_err().kind(),
        ErrorKind::TooLarge
    );
    let small = "!".repeat(64 * 1024);
    assert_eq!(verify_kind(&small, &hs_key()), ErrorKind::Malformed);
    // A valid token over a configured limit is refused too.
    let token = hs256(
        &json!({"alg": "HS256"}),
        &json!({"exp": FAR_FUTURE, "pad": "x".repeat(500)}),
    );
    let err = jws::verify(&token, &hs_key(), &Policy::new().max_size(token.len() - 1)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(jws::verify(&token, &hs_key(), &Policy::new().max_size(token.len())).is_ok());
}

#[test]
fn an_rsa_public_key_is_never_an_hmac_secret() {
    let rsa = Jwk::generate_rsa(2048).unwrap().with_kid("rsa");
    let public = rsa.to_public().unwrap();
    let n = unb64(
        serde_json::from_str::<Value>(&public.to_json()).unwrap()["n"]
            .as_str()
            .unwrap(),
    );
    // Every public form of the key an attacker might try as the HS256 secret.
    let secrets: Vec<Vec<u8>> = vec![
        public.public_key_pem().unwrap().into_bytes(),
        public.to_spki_der().unwrap(),
        public.to_json().into_bytes(),
        n,
    ];
    let set = JwkSet::new(vec![public.clone()]);
    for secret in secrets {
        for kid in [None, Some("rsa")] {
            let mut header = json!({"alg": "HS256"});
            if let Some(k) = kid {
                header["kid"] = json!(k);
            }
            let token = mac_token(
                &b64(header.to_string()),
                &b64(json!({"sub": "admin", "exp": FAR_FUTURE}).to_string()),
                &secret,
                hmac::HMAC_SHA256,
            );
            assert_eq!(verify_kind(&token, &public), ErrorKind::AlgorithmNotAllowed);
            assert_eq!(verify_kind(&token, &set), ErrorKind::KeyNotFound);
            let v = Validation::new().algorithms(&[Algorithm::HS256, Algorithm::RS256]);
            assert_eq!(
                decode_kind(&token, &public, &v),
                ErrorKind::AlgorithmNotAllowed
            );
        }
    }
}

#[test]
fn kid_selection_never_crosses_key_families() {
    let rsa = Jwk::generate_rsa(2048).unwrap().with_kid("shared");
    let ec = Jwk::generate_curve(Curve::P256).unwrap().with_kid("ec");
    let ed = Jwk::generate_curve(Curve::Ed25519).unwrap().with_kid("ed");
    let set = JwkSet::new(vec![
        rsa.to_public().unwrap(),
        ec.to_public().unwrap(),
        ed.to_public().unwrap(),
    ]);
    let claims = json!({"exp": FAR_FUTURE});
    // Each key verifies its own tokens through the set.
    for (key, alg) in [
        (&rsa, Algorithm::RS256),
        (&ec, Algorithm::ES256),
        (&ed, Algorithm::EdDSA),
    ] {
        let t = jwt::encode(&Header::new(alg).with_kid(key.kid().unwrap()), &claims, key).unwrap();
        assert!(
            jwt::decode::<Claims>(&t, &set, &Validation::new()).is_ok(),
            "{alg}"
        );
    }
    // A token naming the RSA key's kid but another family's algorithm finds no key,
    // whoever signed it; so does one naming the EC kid with ES384 (another curve).
    let attacker = Jwk::generate_curve(Curve::P256).unwrap();
    let t = jwt::encode(
        &Header::new(Algorithm::ES256).with_kid("shared"),
        &claims,
        &attacker,
    )
    .unwrap();
    assert_eq!(verify_kind(&t, &set), ErrorKind::KeyNotFound);
    let t = jwt::encode(&Header::new(Algorithm::ES256).with_kid("ed"), &claims, &ec).unwrap();
    assert_eq!(verify_kind(&t, &set), ErrorKind::KeyNotFound);
    let p384 = Jwk::generate_curve(Curve::P384).unwrap();
    let t = jwt::encode(
        &Header::new(Algorithm::ES384).with_kid("ec"),
        &claims,
        &p384,
    )
    .unwrap();
    assert_eq!(verify_kind(&t, &set), ErrorKind::KeyNotFound);
    let t = hs256(&json!({"alg": "HS256", "kid": "shared"}), &claims);
    assert_eq!(verify_kind(&t, &set), ErrorKind::KeyNotFound);
    // Two usable keys of one family under one kid: ambiguous, refused.
    let twin = Jwk::generate_curve(Curve::P256).unwrap().with_kid("ec");
    let mut ambiguous = set.clone();
    ambiguous.push(twin.to_public().unwrap());
    let t = jwt::encode(&Header::new(Algorithm::ES256).with_kid("ec"), &claims, &ec).unwrap();
    assert_eq!(verify_kind(&t, &ambiguous), ErrorKind::KeyNotFound);
    // Without a kid, a token is tried only against the keys of its family.
    let t = jwt::encode(&Header::new(Algorithm::EdDSA), &claims, &ed).unwrap();
    assert!(jws::verify(&t, &set, &Policy::new()).is_ok());
}

#[test]
fn a_jwks_alg_pins_it_within_its_family() {
    let rsa = Jwk::generate_rsa(2048).unwrap();
    let pinned = rsa.to_public().unwrap().with_alg("RS256");
    let claims = json!({"exp": FAR_FUTURE});
    let ok = jwt::encode(&Header::new(Algorithm::RS256), &claims, &rsa).unwrap();
    assert!(jws::verify(&ok, &pinned, &Policy::new()).is_ok());
    for alg in [Algorithm::PS256, Algorithm::RS512] {
        let t = jwt::encode(&Header::new(alg), &claims, &rsa).unwrap();
        assert!(
            jws::verify(&t, &rsa, &Policy::new()).is_ok(),
            "{alg} verifies unpinned"
        );
        assert_eq!(
            verify_kind(&t, &pinned),
            ErrorKind::AlgorithmNotAllowed,
            "{alg}"
        );
    }
}

#[test]
fn a_keys_use_and_key_ops_are_enforced() {
    let ec = Jwk::generate_curve(Curve::P256).unwrap();
    let claims = json!({"exp": FAR_FUTURE});
    let t = jwt::encode(&Header::new(Algorithm::ES256), &claims, &ec).unwrap();
    let public = ec.to_public().unwrap();
    assert!(jws::verify(&t, &public.clone().with_use("sig"), &Policy::new()).is_ok());
    assert_eq!(
        verify_kind(&t, &public.clone().with_use("enc")),
        ErrorKind::InvalidKey
    );
    let ops = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(
        jws::verify(
            &t,
            &public.clone().with_key_ops(ops(&["verify"])),
            &Policy::new()
        )
        .is_ok()
    );
    assert_eq!(
        verify_kind(&t, &public.clone().with_key_ops(ops(&["encrypt", "sign"]))),
        ErrorKind::InvalidKey
    );
}

#[test]
fn exp_is_required_and_leeway_is_zero_by_default() {
    let v = Validation::new().at(1_000);
    let tok = |c: Value| hs256(&json!({"alg": "HS256"}), &c);
    assert_eq!(
        decode_kind(&tok(json!({})), &hs_key(), &v),
        ErrorKind::MissingClaim
    );
    assert_eq!(
        decode_kind(&tok(json!({"exp": 1_000})), &hs_key(), &v),
        ErrorKind::Expired
    );
    assert!(jwt::decode::<Claims>(&tok(json!({"exp": 1_001})), &hs_key(), &v).is_ok());
}

#[test]
fn json_nested_deeper_than_32_levels_is_refused() {
    let nest = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    // The claims object itself is level 1.
    let ok = format!(r#"{{"exp":{FAR_FUTURE},"x":{}}}"#, nest(31));
    let deep = format!(r#"{{"exp":{FAR_FUTURE},"x":{}}}"#, nest(32));
    let header = b64(r#"{"alg":"HS256"}"#);
    let v = Validation::new();
    let token = |c: &str| mac_token(&header, &b64(c), &[0x5a; 32], hmac::HMAC_SHA256);
    assert!(jwt::decode::<Claims>(&token(&ok), &hs_key(), &v).is_ok());
    assert_eq!(
        decode_kind(&token(&deep), &hs_key(), &v),
        ErrorKind::Malformed
    );
    let deep_header = format!(r#"{{"alg":"HS256","x":{}}}"#, nest(32));
    let t = mac_token(
        &b64(deep_header),
        &b64("{}"),
        &[0x5a; 32],
        hmac::HMAC_SHA256,
    );
    assert_eq!(verify_kind(&t, &hs_key()), ErrorKind::Malformed);
    // Far deeper (a stack-exhaustion attempt) is refused the same way, not a crash.
    let abyss = format!(r#"{{"exp":{FAR_FUTURE},"x":{}}}"#, nest(50_000));
    assert_eq!(
        decode_kind(&token(&abyss), &hs_key(), &v.max_size(1 << 20)),
        ErrorKind::Malformed
    );
}

#[test]
fn keys_errors_and_debug_output_never_show_secrets_or_tokens() {
    let keys = [
        Jwk::from_secret(b"a very secret hmac key of 32 byt").unwrap(),
        Jwk::generate_rsa(2048).unwrap(),
        Jwk::generate_curve(Curve::P256).unwrap(),
        Jwk::generate_curve(Curve::Ed25519).unwrap(),
        Jwk::generate_curve(Curve::X25519).unwrap(),
    ];
    for key in &keys {
        let members: Value = serde_json::from_str(&key.to_json()).unwrap();
        let debug = format!("{key:?} {:?}", JwkSet::new(vec![key.clone()]));
        for secret in ["k", "d", "p", "q", "dp", "dq", "qi"] {
            if let Some(v) = members[secret].as_str() {
                assert!(!debug.contains(&v[..16]), "{secret} shows in {debug}");
            }
        }
    }
    assert!(!format!("{:?}", keys[0]).contains("very secret"));
    // An error about a token names no part of it.
    let token = hs256(
        &json!({"alg": "HS256", "kid": "kid-SENTINEL"}),
        &json!({"sub": "SENTINEL"}),
    );
    let tampered = format!("{}x", &token[..token.len() - 1]);
    for err in [
        jws::verify(&tampered, &keys[0], &Policy::new()).unwrap_err(),
        jwt::decode::<Claims>(&token, &keys[0], &Validation::new()).unwrap_err(),
        jwt::decode::<Claims>(&token, &hs_key(), &Validation::new()).unwrap_err(),
    ] {
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("SENTINEL") && !text.contains(&token[..20]),
            "{text}"
        );
    }
}

// ----- JWE ---------------------------------------------------------------------------

mod jwe_defaults {
    use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use aws_lc_rs::rsa::{Pkcs1PublicEncryptingKey, PublicEncryptingKey};
    use serde_json::{Value, json};
    use tessera_jose::jwe::{self, Decrypter, EncryptOptions};
    use tessera_jose::{ContentEncryption, Curve, ErrorKind, Jwk, KeyManagement};

    use super::{b64, unb64};

    /// A correct compact JWE under `header` with A128GCM and this CEK, made outside the
    /// library: what a sender (or an attacker who knows the CEK) can produce.
    fn gcm_token(header: &Value, encrypted_key: &[u8], cek: &[u8; 16], plaintext: &[u8]) -> String {
        let h = b64(header.to_string());
        let iv = [9u8; 12];
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, cek).unwrap());
        let mut buf = plaintext.to_vec();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(h.as_bytes()),
                &mut buf,
            )
            .unwrap();
        format!(
            "{h}.{}.{}.{}.{}",
            b64(encrypted_key),
            b64(iv),
            b64(&buf),
            b64(tag.as_ref())
        )
    }

    fn dir_key() -> Jwk {
        Jwk::from_secret([0x42u8; 16]).unwrap()
    }

    #[test]
    fn control_a_crafted_jwe_does_decrypt() {
        let t = gcm_token(
            &json!({"alg": "dir", "enc": "A128GCM"}),
            &[],
            &[0x42; 16],
            b"hello",
        );
        assert_eq!(
            jwe::decrypt(&t, &dir_key(), &Decrypter::new())
                .unwrap()
                .plaintext(),
            b"hello"
        );
    }

    #[test]
    fn rsa1_5_is_refused_even_when_correct() {
        let rsa = Jwk::generate_rsa(2048).unwrap();
        let public = PublicEncryptingKey::from_der(&rsa.to_spki_der().unwrap()).unwrap();
        let pkcs1 = Pkcs1PublicEncryptingKey::new(public).unwrap();
        let cek = [0x17u8; 16];
        let mut out = vec![0u8; 256];
        let wrapped = pkcs1.encrypt(&cek, &mut out).unwrap().to_vec();
        let t = gcm_token(
            &json!({"alg": "RSA1_5", "enc": "A128GCM"}),
            &wrapped,
            &cek,
            b"secret",
        );
        let err = jwe::decrypt(&t, &rsa, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
        // Nor can it be asked for when encrypting: the name does not parse.
        assert!("RSA1_5".parse::<KeyManagement>().is_err());
    }

    #[test]
    fn zip_is_refused_unless_enabled_and_then_bounded() {
        let key = Jwk::from_secret([1u8; 32]).unwrap();
        let bomb = vec![0u8; 1 << 20];
        let opts =
            EncryptOptions::new(KeyManagement::A256KW, ContentEncryption::A256Gcm).with_zip();
        let t = jwe::encrypt(&bomb, &key, &opts).unwrap();
        assert!(
            t.len() < 8 * 1024,
            "1 MiB of zeros compresses to {} bytes",
            t.len()
        );
        let err = jwe::decrypt(&t, &key, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedHeader);
        let err = jwe::decrypt(&t, &key, &Decrypter::new().allow_zip(64 * 1024)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        let ok = jwe::decrypt(&t, &key, &Decrypter::new().allow_zip(1 << 20)).unwrap();
        assert_eq!(ok.plaintext().len(), 1 << 20);
        // An unknown zip value is refused even when DEFLATE is enabled.
        let t = gcm_token(
            &json!({"alg": "dir", "enc": "A128GCM", "zip": "GZIP"}),
            &[],
            &[0x42; 16],
            b"x",
        );
        let err = jwe::decrypt(&t, &dir_key(), &Decrypter::new().allow_zip(1024)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedHeader);
    }

    #[test]
    fn oversized_jwe_is_refused_before_parsing() {
        let huge = format!("{}....", "!".repeat(64 * 1024));
        let err = jwe::decrypt(&huge, &dir_key(), &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        let t = gcm_token(
            &json!({"alg": "dir", "enc": "A128GCM"}),
            &[],
            &[0x42; 16],
            &[b'a'; 300],
        );
        let err =
            jwe::decrypt(&t, &dir_key(), &Decrypter::new().max_size(t.len() - 1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
    }

    #[test]
    fn unknown_crit_is_refused_in_a_jwe() {
        let t = gcm_token(
            &json!({"alg": "dir", "enc": "A128GCM", "crit": ["exp"], "exp": 1}),
            &[],
            &[0x42; 16],
            b"x",
        );
        let err = jwe::decrypt(&t, &dir_key(), &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedHeader);
    }

    #[test]
    fn duplicate_members_are_refused_in_a_jwe_header() {
        let h = r#"{"alg":"dir","enc":"A128GCM","x":1,"x":2}"#;
        let t = gcm_token(
            &serde_json::from_str::<Value>(h).unwrap(),
            &[],
            &[0x42; 16],
            b"x",
        );
        // gcm_token re-serializes (dropping the duplicate): splice the raw header in.
        let rest = t.split_once('.').unwrap().1;
        let raw_h = b64(h);
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[0x42; 16]).unwrap());
        let mut buf = b"x".to_vec();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([9; 12]),
                Aad::from(raw_h.as_bytes()),
                &mut buf,
            )
            .unwrap();
        let parts: Vec<&str> = rest.split('.').collect();
        let t = format!(
            "{raw_h}.{}.{}.{}.{}",
            parts[0],
            parts[1],
            b64(&buf),
            b64(tag.as_ref())
        );
        let err = jwe::decrypt(&t, &dir_key(), &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed);
    }

    #[test]
    fn every_failure_after_key_selection_is_one_indistinguishable_error() {
        let key = Jwk::from_secret([7u8; 32]).unwrap();
        let opts = EncryptOptions::new(KeyManagement::Dir, ContentEncryption::A128CbcHs256);
        let t = jwe::encrypt(b"attack at dawn", &key, &opts).unwrap();
        let parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let with = |i: usize, v: Vec<u8>| {
            let mut p = parts.clone();
            p[i] = b64(v);
            p.join(".")
        };
        let flip = |i: usize| {
            let mut v = unb64(&parts[i]);
            v[0] ^= 1;
            with(i, v)
        };
        let cases = [
            ("iv", flip(2)),
            ("ciphertext", flip(3)),
            ("tag", flip(4)),
            ("short tag", with(4, unb64(&parts[4])[..15].to_vec())),
            ("short iv", with(2, unb64(&parts[2])[..12].to_vec())),
            ("encrypted key with dir", with(1, vec![1; 16])),
        ];
        let wrong_key = Jwk::from_secret([8u8; 32]).unwrap();
        let reference = jwe::decrypt(&t, &wrong_key, &Decrypter::new()).unwrap_err();
        assert_eq!(reference.kind(), ErrorKind::DecryptionFailed);
        for (what, bad) in cases {
            let err = jwe::decrypt(&bad, &key, &Decrypter::new()).unwrap_err();
            assert_eq!(
                err, reference,
                "{what}: kind and message must not tell failures apart"
            );
        }
    }

    #[test]
    fn an_ephemeral_key_off_the_curve_or_on_another_curve_is_refused() {
        let recipient = Jwk::generate_curve(Curve::P256).unwrap();
        let opts = EncryptOptions::new(KeyManagement::EcdhEsA128KW, ContentEncryption::A128Gcm);
        let t = jwe::encrypt(b"x", &recipient.to_public().unwrap(), &opts).unwrap();
        let (h, rest) = t.split_once('.').unwrap();
        let header: Value = serde_json::from_slice(&unb64(h)).unwrap();
        let p384: Value = serde_json::from_str(
            &Jwk::generate_curve(Curve::P384)
                .unwrap()
                .to_public()
                .unwrap()
                .to_json(),
        )
        .unwrap();
        let mut off_curve = header["epk"].clone();
        off_curve["y"] = json!(b64([0u8; 32]));
        let x25519: Value = serde_json::from_str(
            &Jwk::generate_curve(Curve::X25519)
                .unwrap()
                .to_public()
                .unwrap()
                .to_json(),
        )
        .unwrap();
        for (what, epk) in [
            ("off the curve", off_curve),
            ("P-384", p384),
            ("X25519", x25519),
        ] {
            let mut h2 = header.clone();
            h2["epk"] = epk;
            let bad = format!("{}.{rest}", b64(h2.to_string()));
            let err = jwe::decrypt(&bad, &recipient, &Decrypter::new()).unwrap_err();
            // Refused while reading the header, before any agreement is computed.
            assert_eq!(err.kind(), ErrorKind::Malformed, "{what}: {err:?}");
        }
        let mut private_epk = header.clone();
        private_epk["epk"] =
            serde_json::from_str(&Jwk::generate_curve(Curve::P256).unwrap().to_json()).unwrap();
        let bad = format!("{}.{rest}", b64(private_epk.to_string()));
        assert_eq!(
            jwe::decrypt(&bad, &recipient, &Decrypter::new())
                .unwrap_err()
                .kind(),
            ErrorKind::Malformed
        );
    }

    #[test]
    fn a_pinned_content_key_serves_only_its_algorithm() {
        // A dir key pinned to A256GCM may not be used with A128CBC-HS256, though both
        // take 32-byte keys.
        let key = Jwk::from_secret([3u8; 32]).unwrap().with_alg("A256GCM");
        let ok = EncryptOptions::new(KeyManagement::Dir, ContentEncryption::A256Gcm);
        let t = jwe::encrypt(b"x", &key, &ok).unwrap();
        assert!(jwe::decrypt(&t, &key, &Decrypter::new()).is_ok());
        let cbc = EncryptOptions::new(KeyManagement::Dir, ContentEncryption::A128CbcHs256);
        let err = jwe::encrypt(b"x", &key, &cbc).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
        let unpinned = Jwk::from_secret([3u8; 32]).unwrap();
        let t = jwe::encrypt(b"x", &unpinned, &cbc).unwrap();
        let err = jwe::decrypt(&t, &key, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
    }

    #[test]
    fn a_jwe_key_is_chosen_by_kid_and_kind_never_from_the_token() {
        // A JWE names its recipient key by kid; a key of the wrong kind under that kid
        // is never used, and an RSA key never becomes an AES key.
        let rsa = Jwk::generate_rsa(2048).unwrap().with_kid("k");
        let aes = Jwk::from_secret([5u8; 16]).unwrap().with_kid("a");
        let set = tessera_jose::JwkSet::new(vec![rsa.clone(), aes]);
        let t = gcm_token(
            &json!({"alg": "dir", "enc": "A128GCM", "kid": "k"}),
            &[],
            &[5; 16],
            b"x",
        );
        let err = jwe::decrypt(&t, &set, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyNotFound);
        let err = jwe::decrypt(&t, &rsa, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
        let t = gcm_token(
            &json!({"alg": "dir", "enc": "A128GCM", "kid": "a"}),
            &[],
            &[5; 16],
            b"x",
        );
        assert!(jwe::decrypt(&t, &set, &Decrypter::new()).is_ok());
    }
}

/// However deep the caller allows JSON to nest, a deeply nested token is refused with an
/// error, not a stack overflow: nesting stops at serde_json's own limit (128 levels).
#[test]
fn deep_nesting_is_refused_even_when_the_limit_is_raised() {
    let key = Jwk::from_secret([7u8; 32]).unwrap();
    let depth = 60_000;
    let payload = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let token = jws::sign(&Header::new(Algorithm::HS256), payload.as_bytes(), &key).unwrap();
    for limit in [64, 1_000, usize::MAX] {
        let v = Validation::new()
            .max_depth(limit)
            .max_size(1 << 20)
            .allow_missing_exp();
        let err = jwt::decode::<serde_json::Value>(&token, &key, &v).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed, "limit {limit}");
    }
    // The header too.
    let header = format!(
        "{{\"alg\":\"HS256\",\"x\":{}{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let token = format!("{}.{}.AAAA", b64(header), b64("{}"));
    let policy = Policy::new().max_depth(usize::MAX).max_size(1 << 20);
    let err = jws::verify(&token, &key, &policy).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
}
