//! The worked examples in the appendices of RFC 7515 (JWS), RFC 7516 (JWE), RFC 7517
//! (JWK), RFC 7519 (JWT) and RFC 8037 (OKP keys), through the public API only.
//!
//! Every value below is copied from the RFC text; values the RFC breaks across lines
//! are written one piece per string literal and joined with `concat!` (the RFC's line
//! breaks are display-only). Each value is checked by the operation that uses it: a
//! wrong character would fail a signature, a decryption or a key consistency check. The RFC 7520
//! cookbook, RFC 7638 §3.1, RFC 8037 A.3 and RFC 7518 Appendix C are in `rfc7520.rs`.
//!
//! RFC 3394 §4 (AES Key Wrap) is here too, its six wrapped keys as JWE encrypted keys.
//!
//! Not covered here, on purpose:
//! - RFC 7517 Appendix C (an encrypted RSA private key) uses `PBES2-HS256+A128KW`,
//!   which this crate does not support (PBES2 is out of scope, see `jwe`).
//! - RFC 7516 A.4 and A.5 are the JWE JSON serializations; only the compact
//!   serialization is implemented.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tessera_jose::jwe::{self, Decrypter};
use tessera_jose::jws::{self, Header, Policy, Unverified};
use tessera_jose::jwt::{self, Claims, Validation};
use tessera_jose::{
    Algorithm, ContentEncryption, Curve, ErrorKind, Jwk, JwkSet, KeyManagement, KeySource, KeyType,
};

// ----- helpers ----------------------------------------------------------------------

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn jwk(v: &Value) -> Jwk {
    Jwk::from_json(v.to_string()).expect("the RFC key parses")
}

/// `token` with one character in the middle of its `segment`-th dot-separated part
/// replaced by another base64url character. A middle character carries no padding
/// bits, so the result is still canonical base64url: only the content changes.
fn tamper(token: &str, segment: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let part = &mut parts[segment];
    assert!(
        part.len() >= 4,
        "segment {segment} is too short to tamper with"
    );
    let mid = part.len() / 2;
    let old = part.as_bytes()[mid];
    let new = if old == b'A' { "B" } else { "A" };
    part.replace_range(mid..mid + 1, new);
    parts.join(".")
}

/// The JWS Payload shared by RFC 7515 A.1–A.3 and A.5 and RFC 7519 §3.1, as the RFC
/// gives it in octets: the claims with CRLF line breaks and one leading space.
const JOE_CLAIMS: &[u8] =
    b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

/// BASE64URL(JOE_CLAIMS), RFC 7515 A.1.1.
const JOE_CLAIMS_B64: &str = concat!(
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
);

// ----- RFC 7515 Appendix A.1: HS256 -------------------------------------------------

/// RFC 7515 A.1.1: the HMAC key.
fn rfc7515_a1_key() -> Jwk {
    jwk(&json!({
        "kty": "oct",
        "k": concat!(
            "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75",
            "aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
        ),
    }))
}

/// RFC 7515 A.1.1 (and RFC 7519 §3.1): the complete JWS.
const RFC7515_A1_JWS: &str = concat!(
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
);

#[test]
fn rfc7515_a1_hs256_verifies_with_the_exact_header_and_payload_octets() {
    let key = rfc7515_a1_key();
    assert_eq!(key.key_type(), KeyType::Oct);
    assert_eq!(key.secret_len(), Some(64));

    // A.1.1: the protected header, in octets (CRLF and a leading space included).
    let unverified = Unverified::parse(RFC7515_A1_JWS, &Policy::new()).unwrap();
    assert_eq!(
        unverified.header_json(),
        [
            123, 34, 116, 121, 112, 34, 58, 34, 74, 87, 84, 34, 44, 13, 10, 32, 34, 97, 108, 103,
            34, 58, 34, 72, 83, 50, 53, 54, 34, 125
        ]
    );
    let verified = unverified.verify(&key, &Policy::new()).unwrap();
    assert_eq!(verified.header().alg, Algorithm::HS256);
    assert_eq!(verified.header().typ.as_deref(), Some("JWT"));
    assert_eq!(verified.payload(), JOE_CLAIMS);
    assert_eq!(unb64(JOE_CLAIMS_B64), JOE_CLAIMS);

    // The same through the one-step API, pinned to HS256.
    let v = jws::verify(
        RFC7515_A1_JWS,
        &key,
        &Policy::new().algorithms(&[Algorithm::HS256]),
    )
    .unwrap();
    assert_eq!(v.payload(), JOE_CLAIMS);
}

#[test]
fn rfc7515_a1_hs256_mac_is_checked_over_the_exact_signing_input() {
    // `jws::sign` writes its own compact header (no CRLF), so the published JWS cannot
    // be re-signed through it byte for byte. The MAC is checked instead over the
    // published JWS Signing Input with the detached primitive, which is deterministic
    // for HMAC: the published value verifies, and any other does not.
    let key = rfc7515_a1_key();
    let (signing_input, sig_b64) = RFC7515_A1_JWS.rsplit_once('.').unwrap();
    let mac = unb64(sig_b64);
    assert_eq!(mac.len(), 32);
    jws::verify_detached(Algorithm::HS256, &key, signing_input.as_bytes(), &mac).unwrap();

    for i in [0, 15, 31] {
        let mut bad = mac.clone();
        bad[i] ^= 0x01;
        let err = jws::verify_detached(Algorithm::HS256, &key, signing_input.as_bytes(), &bad)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSignature, "byte {i}");
    }
    // The MAC of this input under HS384/HS512 is another value entirely.
    let err =
        jws::verify_detached(Algorithm::HS512, &key, signing_input.as_bytes(), &mac).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature);
    // One byte more of signing input changes the MAC.
    let longer = format!("{signing_input}A");
    let err = jws::verify_detached(Algorithm::HS256, &key, longer.as_bytes(), &mac).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature);
}

#[test]
fn rfc7515_a1_hs256_one_changed_character_is_refused() {
    let key = rfc7515_a1_key();
    for segment in 0..3 {
        let bad = tamper(RFC7515_A1_JWS, segment);
        assert_ne!(bad, RFC7515_A1_JWS);
        let err = jws::verify(&bad, &key, &Policy::new()).unwrap_err();
        // A changed header may no longer be JSON; otherwise the MAC fails.
        assert!(
            matches!(
                err.kind(),
                ErrorKind::InvalidSignature | ErrorKind::Malformed
            ),
            "segment {segment}: {err:?}"
        );
    }
    // The signature and payload segments decode fine when changed: MAC failure.
    for segment in [1, 2] {
        let err = jws::verify(&tamper(RFC7515_A1_JWS, segment), &key, &Policy::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSignature, "segment {segment}");
    }
    // Another HMAC key of the same length does not verify it.
    let other = Jwk::from_secret([0x42u8; 64]).unwrap();
    let err = jws::verify(RFC7515_A1_JWS, &other, &Policy::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature);
    // And an allow-list without HS256 refuses it before any MAC.
    let err = jws::verify(
        RFC7515_A1_JWS,
        &key,
        &Policy::new().algorithms(&[Algorithm::HS512]),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
}

// ----- RFC 7515 Appendix A.2: RS256 -------------------------------------------------

/// RFC 7515 A.2.1: the RSA key.
fn rfc7515_a2_key() -> Jwk {
    jwk(&rfc7515_a2_key_json())
}

fn rfc7515_a2_n() -> &'static str {
    concat!(
        "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx",
        "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs",
        "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH",
        "SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV",
        "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8",
        "NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
    )
}

fn rfc7515_a2_key_json() -> Value {
    json!({
        "kty": "RSA",
        "n": rfc7515_a2_n(),
        "e": "AQAB",
        "d": concat!(
            "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97I",
            "jlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0",
            "BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn",
            "439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYT",
            "CBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLh",
            "BOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ",
        ),
        "p": concat!(
            "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdi",
            "YrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPG",
            "BY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc",
        ),
        "q": concat!(
            "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxa",
            "ewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA",
            "-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc",
        ),
        "dp": concat!(
            "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3Q",
            "CLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb",
            "34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0",
        ),
        "dq": concat!(
            "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa",
            "7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-ky",
            "NlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU",
        ),
        "qi": concat!(
            "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2o",
            "y26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLU",
            "W0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U",
        ),
    })
}

/// RFC 7515 A.2.1: the complete JWS.
const RFC7515_A2_JWS: &str = concat!(
    "eyJhbGciOiJSUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7",
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4",
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K",
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv",
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB",
    "p0igcN_IoypGlUPQGe77Rw",
);

#[test]
fn rfc7515_a2_rs256_verifies_with_the_public_key() {
    let key = rfc7515_a2_key();
    assert!(key.is_private());
    assert_eq!(key.rsa_bits(), Some(2048));
    let public = key.to_public().unwrap();
    assert!(!public.is_private());
    let v = jws::verify(RFC7515_A2_JWS, &public, &Policy::new()).unwrap();
    assert_eq!(v.header().alg, Algorithm::RS256);
    assert_eq!(v.header().typ, None);
    assert_eq!(v.payload(), JOE_CLAIMS);

    for segment in [1, 2] {
        let err =
            jws::verify(&tamper(RFC7515_A2_JWS, segment), &public, &Policy::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSignature, "segment {segment}");
    }
    // RS256 is not PS256: the same bytes under another RSA algorithm do not verify.
    let (input, sig) = RFC7515_A2_JWS.rsplit_once('.').unwrap();
    let err =
        jws::verify_detached(Algorithm::PS256, &public, input.as_bytes(), &unb64(sig)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature);
    // The key decides the family: an EC key cannot verify an RS256 token.
    let err = jws::verify(RFC7515_A2_JWS, &rfc7515_a3_key(), &Policy::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
}

#[test]
fn rfc7515_a2_rs256_re_signs_byte_for_byte() {
    // RSASSA-PKCS1-v1_5 is deterministic and the A.2 header is exactly
    // {"alg":"RS256"}, which is what `jws::sign` writes for a bare RS256 header.
    let token = jws::sign(
        &Header::new(Algorithm::RS256),
        JOE_CLAIMS,
        &rfc7515_a2_key(),
    )
    .unwrap();
    assert_eq!(token, RFC7515_A2_JWS);
    // A different payload gives a different signature (the comparison can fail).
    let other = jws::sign(
        &Header::new(Algorithm::RS256),
        b"Payload",
        &rfc7515_a2_key(),
    )
    .unwrap();
    assert_ne!(
        other.rsplit_once('.').unwrap().1,
        RFC7515_A2_JWS.rsplit_once('.').unwrap().1
    );
}

// ----- RFC 7515 Appendix A.3: ES256 -------------------------------------------------

/// RFC 7515 A.3.1: the P-256 key.
fn rfc7515_a3_key() -> Jwk {
    jwk(&json!({
        "kty": "EC",
        "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
    }))
}

/// RFC 7515 A.3.1: the complete JWS.
const RFC7515_A3_JWS: &str = concat!(
    "eyJhbGciOiJFUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSA",
    "pmWQxfKTUJqPP3-Kg6NU1Q",
);

#[test]
fn rfc7515_a3_es256_verifies() {
    let key = rfc7515_a3_key();
    assert_eq!(key.curve(), Some(Curve::P256));
    let public = key.to_public().unwrap();
    let v = jws::verify(RFC7515_A3_JWS, &public, &Policy::new()).unwrap();
    assert_eq!(v.header().alg, Algorithm::ES256);
    assert_eq!(v.payload(), JOE_CLAIMS);
    // The signature is R || S, 64 octets (A.3.1).
    assert_eq!(unb64(RFC7515_A3_JWS.rsplit_once('.').unwrap().1).len(), 64);

    for segment in [1, 2] {
        let err =
            jws::verify(&tamper(RFC7515_A3_JWS, segment), &public, &Policy::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSignature, "segment {segment}");
    }
    // ECDSA is randomized: a fresh signature differs from the published one, and verifies.
    let fresh = jws::sign(&Header::new(Algorithm::ES256), JOE_CLAIMS, &key).unwrap();
    assert_ne!(fresh, RFC7515_A3_JWS);
    assert_eq!(
        jws::verify(&fresh, &public, &Policy::new())
            .unwrap()
            .payload(),
        JOE_CLAIMS
    );
}

// ----- RFC 7515 Appendix A.4: ES512 -------------------------------------------------

/// RFC 7515 A.4.1: the P-521 key.
fn rfc7515_a4_key() -> Jwk {
    jwk(&json!({
        "kty": "EC",
        "crv": "P-521",
        "x": concat!(
            "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_",
            "NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
        ),
        "y": concat!(
            "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDl",
            "y79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2",
        ),
        "d": concat!(
            "AY5pb7A0UFiB3RELSD64fTLOSV_jazdF7fLYyuTw8lOfRhWg6Y6rUrPA",
            "xerEzgdRhajnu0ferB0d53vM9mE15j2C",
        ),
    }))
}

/// RFC 7515 A.4.1: the complete JWS; its payload is the ASCII string "Payload".
const RFC7515_A4_JWS: &str = concat!(
    "eyJhbGciOiJFUzUxMiJ9",
    ".",
    "UGF5bG9hZA",
    ".",
    "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZq",
    "wqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8Kp",
    "EHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn",
);

#[test]
fn rfc7515_a4_es512_verifies() {
    let key = rfc7515_a4_key();
    assert_eq!(key.curve(), Some(Curve::P521));
    let public = key.to_public().unwrap();
    let v = jws::verify(RFC7515_A4_JWS, &public, &Policy::new()).unwrap();
    assert_eq!(v.header().alg, Algorithm::ES512);
    assert_eq!(v.payload(), b"Payload");
    // R || S, 66 octets each (A.4.1).
    assert_eq!(unb64(RFC7515_A4_JWS.rsplit_once('.').unwrap().1).len(), 132);

    for segment in [1, 2] {
        let err =
            jws::verify(&tamper(RFC7515_A4_JWS, segment), &public, &Policy::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSignature, "segment {segment}");
    }
    // The P-256 key of A.3 is of the wrong curve for ES512.
    let err = jws::verify(RFC7515_A4_JWS, &rfc7515_a3_key(), &Policy::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
}

// ----- RFC 7515 Appendix A.5: unsecured JWS -----------------------------------------

/// RFC 7515 A.5: the unsecured JWS, `{"alg":"none"}` and an empty signature.
const RFC7515_A5_JWS: &str = concat!(
    "eyJhbGciOiJub25lIn0",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
);

#[test]
fn rfc7515_a5_unsecured_jws_is_refused() {
    assert_eq!(unb64("eyJhbGciOiJub25lIn0"), br#"{"alg":"none"}"#);
    // Refused whatever the key, and by the JWT layer too.
    let keys: [Jwk; 4] = [
        rfc7515_a1_key(),
        rfc7515_a2_key().to_public().unwrap(),
        rfc7515_a3_key().to_public().unwrap(),
        rfc8037_a1_key(),
    ];
    for key in &keys {
        let err = jws::verify(RFC7515_A5_JWS, key, &Policy::new()).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::AlgorithmNotAllowed,
            "{:?}",
            key.key_type()
        );
        let err = jwt::decode::<Claims>(RFC7515_A5_JWS, key, &Validation::new().at(1300819370))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
    }
    // Already at parsing, before any key is looked at.
    let err = Unverified::parse(RFC7515_A5_JWS, &Policy::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
    // "none" cannot be named as an algorithm either.
    assert_eq!(
        "none".parse::<Algorithm>().unwrap_err().kind(),
        ErrorKind::UnsupportedAlgorithm
    );
    // Grafting the A.1 MAC onto the unsecured token does not help.
    let grafted = format!("{RFC7515_A5_JWS}dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    let err = jws::verify(&grafted, &rfc7515_a1_key(), &Policy::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
}

// ----- RFC 7516 Appendix A: JWE -----------------------------------------------------

/// RFC 7516 A.1.3: the RSA key.
fn rfc7516_a1_key() -> Jwk {
    jwk(&json!({
        "kty": "RSA",
        "n": concat!(
            "oahUIoWw0K0usKNuOR6H4wkf4oBUXHTxRvgb48E-BVvxkeDNjbC4he8rUW",
            "cJoZmds2h7M70imEVhRU5djINXtqllXI4DFqcI1DgjT9LewND8MW2Krf3S",
            "psk_ZkoFnilakGygTwpZ3uesH-PFABNIUYpOiN15dsQRkgr0vEhxN92i2a",
            "sbOenSZeyaxziK72UwxrrKoExv6kc5twXTq4h-QChLOln0_mtUZwfsRaMS",
            "tPs6mS6XrgxnxbWhojf663tuEQueGC-FCMfra36C9knDFGzKsNa7LZK2dj",
            "YgyD3JR_MB_4NUJW_TqOQtwHYbxevoJArm-L5StowjzGy-_bq6Gw",
        ),
        "e": "AQAB",
        "d": concat!(
            "kLdtIj6GbDks_ApCSTYQtelcNttlKiOyPzMrXHeI-yk1F7-kpDxY4-WY5N",
            "WV5KntaEeXS1j82E375xxhWMHXyvjYecPT9fpwR_M9gV8n9Hrh2anTpTD9",
            "3Dt62ypW3yDsJzBnTnrYu1iwWRgBKrEYY46qAZIrA2xAwnm2X7uGR1hghk",
            "qDp0Vqj3kbSCz1XyfCs6_LehBwtxHIyh8Ripy40p24moOAbgxVw3rxT_vl",
            "t3UVe4WO3JkJOzlpUf-KTVI2Ptgm-dARxTEtE-id-4OJr0h-K-VFs3VSnd",
            "VTIznSxfyrj8ILL6MG_Uv8YAu7VILSB3lOW085-4qE3DzgrTjgyQ",
        ),
        "p": concat!(
            "1r52Xk46c-LsfB5P442p7atdPUrxQSy4mti_tZI3Mgf2EuFVbUoDBvaRQ-",
            "SWxkbkmoEzL7JXroSBjSrK3YIQgYdMgyAEPTPjXv_hI2_1eTSPVZfzL0lf",
            "fNn03IXqWF5MDFuoUYE0hzb2vhrlN_rKrbfDIwUbTrjjgieRbwC6Cl0",
        ),
        "q": concat!(
            "wLb35x7hmQWZsWJmB_vle87ihgZ19S8lBEROLIsZG4ayZVe9Hi9gDVCOBm",
            "UDdaDYVTSNx_8Fyw1YYa9XGrGnDew00J28cRUoeBB_jKI1oma0Orv1T9aX",
            "IWxKwd4gvxFImOWr3QRL9KEBRzk2RatUBnmDZJTIAfwTs0g68UZHvtc",
        ),
        "dp": concat!(
            "ZK-YwE7diUh0qR1tR7w8WHtolDx3MZ_OTowiFvgfeQ3SiresXjm9gZ5KL",
            "hMXvo-uz-KUJWDxS5pFQ_M0evdo1dKiRTjVw_x4NyqyXPM5nULPkcpU827",
            "rnpZzAJKpdhWAgqrXGKAECQH0Xt4taznjnd_zVpAmZZq60WPMBMfKcuE",
        ),
        "dq": concat!(
            "Dq0gfgJ1DdFGXiLvQEZnuKEN0UUmsJBxkjydc3j4ZYdBiMRAy86x0vHCj",
            "ywcMlYYg4yoC4YZa9hNVcsjqA3FeiL19rk8g6Qn29Tt0cj8qqyFpz9vNDB",
            "UfCAiJVeESOjJDZPYHdHY8v1b-o-Z2X5tvLx-TCekf7oxyeKDUqKWjis",
        ),
        "qi": concat!(
            "VIMpMYbPf47dT1w_zDUXfPimsSegnMOA1zTaX7aGk_8urY6R8-ZW1FxU7",
            "AlWAyLWybqq6t16VFd7hQd0y6flUK4SlOydB61gwanOsXGOAOv82cHq0E3",
            "eL4HrtZkUuKvnPrMnsUUFlfUdybVzxyjz9JF_XyaY14ardLSjf4L_FNY",
        ),
    }))
}

/// RFC 7516 A.1.7: the complete JWE (RSA-OAEP, A256GCM).
const RFC7516_A1_JWE: &str = concat!(
    "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.",
    "OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe",
    "ipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDb",
    "Sv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaV",
    "mqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je8",
    "1860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi",
    "6UklfCpIMfIjf7iGdXKHzg.",
    "48V1_ALb6US04U3b.",
    "5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6ji",
    "SdiwkIr3ajwQzaBtQD_A.",
    "XFBoMYUZodetZdvTiFvSkQ",
);

/// RFC 7516 A.2.3: the RSA key of the RSA1_5 example (and of RFC 7519 A.1 and A.2).
fn rfc7516_a2_key() -> Jwk {
    jwk(&json!({
        "kty": "RSA",
        "n": concat!(
            "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1Wl",
            "UzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDpre",
            "cbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_",
            "7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBI",
            "Y2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU",
            "7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
        ),
        "e": "AQAB",
        "d": concat!(
            "VFCWOqXr8nvZNyaaJLXdnNPXZKRaWCjkU5Q2egQQpTBMwhprMzWzpR8Sxq",
            "1OPThh_J6MUD8Z35wky9b8eEO0pwNS8xlh1lOFRRBoNqDIKVOku0aZb-ry",
            "nq8cxjDTLZQ6Fz7jSjR1Klop-YKaUHc9GsEofQqYruPhzSA-QgajZGPbE_",
            "0ZaVDJHfyd7UUBUKunFMScbflYAAOYJqVIVwaYR5zWEEceUjNnTNo_CVSj",
            "-VvXLO5VZfCUAVLgW4dpf1SrtZjSt34YLsRarSb127reG_DUwg9Ch-Kyvj",
            "T1SkHgUWRVGcyly7uvVGRSDwsXypdrNinPA4jlhoNdizK2zF2CWQ",
        ),
        "p": concat!(
            "9gY2w6I6S6L0juEKsbeDAwpd9WMfgqFoeA9vEyEUuk4kLwBKcoe1x4HG68",
            "ik918hdDSE9vDQSccA3xXHOAFOPJ8R9EeIAbTi1VwBYnbTp87X-xcPWlEP",
            "krdoUKW60tgs1aNd_Nnc9LEVVPMS390zbFxt8TN_biaBgelNgbC95sM",
        ),
        "q": concat!(
            "uKlCKvKv_ZJMVcdIs5vVSU_6cPtYI1ljWytExV_skstvRSNi9r66jdd9-y",
            "BhVfuG4shsp2j7rGnIio901RBeHo6TPKWVVykPu1iYhQXw1jIABfw-MVsN",
            "-3bQ76WLdt2SDxsHs7q7zPyUyHXmps7ycZ5c72wGkUwNOjYelmkiNS0",
        ),
        "dp": concat!(
            "w0kZbV63cVRvVX6yk3C8cMxo2qCM4Y8nsq1lmMSYhG4EcL6FWbX5h9yuv",
            "ngs4iLEFk6eALoUS4vIWEwcL4txw9LsWH_zKI-hwoReoP77cOdSL4AVcra",
            "Hawlkpyd2TWjE5evgbhWtOxnZee3cXJBkAi64Ik6jZxbvk-RR3pEhnCs",
        ),
        "dq": concat!(
            "o_8V14SezckO6CNLKs_btPdFiO9_kC1DsuUTd2LAfIIVeMZ7jn1Gus_Ff",
            "7B7IVx3p5KuBGOVF8L-qifLb6nQnLysgHDh132NDioZkhH7mI7hPG-PYE_",
            "odApKdnqECHWw0J-F0JWnUd6D2B_1TvF9mXA2Qx-iGYn8OVV1Bsmp6qU",
        ),
        "qi": concat!(
            "eNho5yRBEBxhGBtQRww9QirZsB66TrfFReG_CcteI1aCneT0ELGhYlRlC",
            "tUkTRclIfuEPmNsNDPbLoLqqCVznFbvdB7x-Tl-m0l_eFTj2KiqwGqE9PZ",
            "B9nNTwMVvH3VRRSLWACvPnSiwP8N5Usy-WRXS-V7TbpxIhvepTfE0NNo",
        ),
    }))
}

/// RFC 7516 A.2.7: the complete JWE (RSA1_5, A128CBC-HS256).
const RFC7516_A2_JWE: &str = concat!(
    "eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMTI4Q0JDLUhTMjU2In0.",
    "UGhIOguC7IuEvf_NPVaXsGMoLOmwvc1GyqlIKOK1nN94nHPoltGRhWhw7Zx0-kFm",
    "1NJn8LE9XShH59_i8J0PH5ZZyNfGy2xGdULU7sHNF6Gp2vPLgNZ__deLKxGHZ7Pc",
    "HALUzoOegEI-8E66jX2E4zyJKx-YxzZIItRzC5hlRirb6Y5Cl_p-ko3YvkkysZIF",
    "NPccxRU7qve1WYPxqbb2Yw8kZqa2rMWI5ng8OtvzlV7elprCbuPhcCdZ6XDP0_F8",
    "rkXds2vE4X-ncOIM8hAYHHi29NX0mcKiRaD0-D-ljQTP-cFPgwCp6X-nZZd9OHBv",
    "-B3oWh2TbqmScqXMR4gp_A.",
    "AxY8DCtDaGlsbGljb3RoZQ.",
    "KDlTtXchhZTGufMYmOYGS4HffxPSUrfmqCHXaI9wOGY.",
    "9hH0vgRfYgPnAHOd8stkvw",
);

/// RFC 7516 A.3.3: the AES key wrap key.
const RFC7516_A3_KEK: &str = "GawgguFyGrWKav7AX4VKUg";

/// RFC 7516 A.3.7: the complete JWE (A128KW, A128CBC-HS256).
const RFC7516_A3_JWE: &str = concat!(
    "eyJhbGciOiJBMTI4S1ciLCJlbmMiOiJBMTI4Q0JDLUhTMjU2In0.",
    "6KB707dM9YTIgHtLvtgWQ8mKwboJW3of9locizkDTHzBC2IlrT1oOQ.",
    "AxY8DCtDaGlsbGljb3RoZQ.",
    "KDlTtXchhZTGufMYmOYGS4HffxPSUrfmqCHXaI9wOGY.",
    "U0m_YmjN04DJvceFICbCVQ",
);

#[test]
fn rfc7516_a1_rsa_oaep_a256gcm_decrypts() {
    let key = rfc7516_a1_key();
    assert_eq!(key.rsa_bits(), Some(2048));
    let opened = jwe::decrypt(RFC7516_A1_JWE, &key, &Decrypter::new()).unwrap();
    assert_eq!(
        opened.plaintext(),
        b"The true sign of intelligence is not knowledge but imagination."
    );
    assert_eq!(opened.header().alg, KeyManagement::RsaOaep);
    assert_eq!(opened.header().enc, ContentEncryption::A256Gcm);
    assert_eq!(opened.header().kid, None);
    assert!(!opened.header().zip);

    // One changed character in the encrypted key, ciphertext or tag: refused as one
    // indistinguishable failure (no decryption oracle).
    for segment in [1, 3, 4] {
        let err =
            jwe::decrypt(&tamper(RFC7516_A1_JWE, segment), &key, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "segment {segment}");
    }
    // The IV is 12 octets and authenticated: a changed one fails too.
    let err = jwe::decrypt(&tamper(RFC7516_A1_JWE, 2), &key, &Decrypter::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed);
    // Another RSA private key cannot open it.
    let err = jwe::decrypt(RFC7516_A1_JWE, &rfc7516_a2_key(), &Decrypter::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed);
    // A policy without RSA-OAEP (SHA-1) refuses it before decrypting.
    let only256 = Decrypter::new().algorithms(&[KeyManagement::RsaOaep256]);
    let err = jwe::decrypt(RFC7516_A1_JWE, &key, &only256).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
}

#[test]
fn rfc7516_a2_rsa1_5_is_refused() {
    let key = rfc7516_a2_key();
    assert_eq!(key.rsa_bits(), Some(2048));
    assert_eq!(
        unb64("eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMTI4Q0JDLUhTMjU2In0"),
        br#"{"alg":"RSA1_5","enc":"A128CBC-HS256"}"#
    );
    let err = jwe::decrypt(RFC7516_A2_JWE, &key, &Decrypter::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
    // Whatever the key, and however permissive the rest of the policy.
    let err = jwe::decrypt(
        RFC7516_A2_JWE,
        &rfc7516_a1_key(),
        &Decrypter::new().encryptions(&[ContentEncryption::A128CbcHs256]),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
    // RSA1_5 cannot be named as a key management algorithm.
    assert!("RSA1_5".parse::<KeyManagement>().is_err());
}

#[test]
fn rfc7516_a3_a128kw_a128cbc_hs256_decrypts() {
    let key = jwk(&json!({"kty": "oct", "k": RFC7516_A3_KEK}));
    assert_eq!(key.secret_len(), Some(16));
    let opened = jwe::decrypt(RFC7516_A3_JWE, &key, &Decrypter::new()).unwrap();
    assert_eq!(opened.plaintext(), b"Live long and prosper.");
    assert_eq!(opened.header().alg, KeyManagement::A128KW);
    assert_eq!(opened.header().enc, ContentEncryption::A128CbcHs256);

    // Encrypted key, ciphertext, tag and IV are all protected.
    for segment in 1..5 {
        let err =
            jwe::decrypt(&tamper(RFC7516_A3_JWE, segment), &key, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "segment {segment}");
    }
    // Another 128-bit key-encryption key fails the key unwrap.
    let other = Jwk::from_secret([0x19u8; 16]).unwrap();
    let err = jwe::decrypt(RFC7516_A3_JWE, &other, &Decrypter::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed);
    // The AAD is the encoded header (RFC 7516 §5.2 step 14): the same header
    // re-encoded differently (a space added) gives a different AAD, so the tag fails.
    let respaced = b64(br#"{"alg":"A128KW", "enc":"A128CBC-HS256"}"#);
    let (_, rest) = RFC7516_A3_JWE.split_once('.').unwrap();
    let err = jwe::decrypt(&format!("{respaced}.{rest}"), &key, &Decrypter::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed);
}

// ----- RFC 3394 §4: AES Key Wrap, as JWE encrypted keys -----------------------------

/// RFC 3394 §4.1–4.6: (KEK, key data, wrapped key data), in hex as the RFC prints them.
const RFC3394_4: [(&str, &str, &str); 6] = [
    (
        "000102030405060708090A0B0C0D0E0F",
        "00112233445566778899AABBCCDDEEFF",
        "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5",
    ),
    (
        "000102030405060708090A0B0C0D0E0F1011121314151617",
        "00112233445566778899AABBCCDDEEFF",
        "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D",
    ),
    (
        "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
        "00112233445566778899AABBCCDDEEFF",
        "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7",
    ),
    (
        "000102030405060708090A0B0C0D0E0F1011121314151617",
        "00112233445566778899AABBCCDDEEFF0001020304050607",
        "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2",
    ),
    (
        "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
        "00112233445566778899AABBCCDDEEFF0001020304050607",
        "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1",
    ),
    (
        "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
        "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
        "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21",
    ),
];

/// A compact JWE under `alg` whose encrypted key is `encrypted_key` and whose content
/// is AES-GCM under `cek` (A128GCM, A192GCM or A256GCM by its length), sealed here
/// with aws-lc-rs directly.
fn seal_gcm(alg: &str, encrypted_key: &[u8], cek: &[u8], plaintext: &[u8]) -> String {
    use aws_lc_rs::aead::{AES_128_GCM, AES_192_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce};
    let (enc, aead) = match cek.len() {
        16 => ("A128GCM", &AES_128_GCM),
        24 => ("A192GCM", &AES_192_GCM),
        _ => ("A256GCM", &AES_256_GCM),
    };
    let h = b64(json!({"alg": alg, "enc": enc}).to_string());
    let key = LessSafeKey::new(aws_lc_rs::aead::UnboundKey::new(aead, cek).unwrap());
    let iv = [9u8; 12];
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

#[test]
fn rfc3394_4_wrapped_keys_open_as_a128kw_a192kw_a256kw_encrypted_keys() {
    // Each RFC 3394 wrapped key is the encrypted key of a JWE whose content is sealed
    // with the key data as its CEK: `jwe::decrypt` must unwrap exactly the key data.
    for (i, (kek, data, wrapped)) in RFC3394_4.iter().enumerate() {
        let (kek, data, wrapped) = (hex(kek), hex(data), hex(wrapped));
        let section = format!("RFC 3394 §4.{}", i + 1);
        let alg = match kek.len() {
            16 => KeyManagement::A128KW,
            24 => KeyManagement::A192KW,
            _ => KeyManagement::A256KW,
        };
        let key = Jwk::from_secret(&kek).unwrap();
        let token = seal_gcm(alg.name(), &wrapped, &data, b"key data, unwrapped");
        let opened = jwe::decrypt(&token, &key, &Decrypter::new())
            .unwrap_or_else(|e| panic!("{section}: {e:?}"));
        assert_eq!(opened.plaintext(), b"key data, unwrapped", "{section}");
        assert_eq!(opened.header().alg, alg, "{section}");

        // Any changed bit of the wrapped key, in its integrity block or in the key
        // data, fails the unwrap: one indistinguishable DecryptionFailed.
        for byte in [0, 7, 8, wrapped.len() - 1] {
            let mut bad = wrapped.clone();
            bad[byte] ^= 0x01;
            let token = seal_gcm(alg.name(), &bad, &data, b"x");
            let err = jwe::decrypt(&token, &key, &Decrypter::new()).unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::DecryptionFailed,
                "{section} byte {byte}"
            );
        }
        // Another KEK of the same size fails the same way.
        let other = Jwk::from_secret(vec![0x5c; kek.len()]).unwrap();
        let err = jwe::decrypt(&token, &other, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{section}");
    }
}

// ----- RFC 7517 Appendix A and B: JWK and JWK Set -----------------------------------

/// RFC 7517 A.1: the example public keys.
fn rfc7517_a1_set() -> Value {
    json!({"keys": [
        {
            "kty": "EC",
            "crv": "P-256",
            "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
            "use": "enc",
            "kid": "1"
        },
        {
            "kty": "RSA",
            "n": concat!(
                "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx",
                "4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs",
                "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2",
                "QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbI",
                "SD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqb",
                "w0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            ),
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }
    ]})
}

/// RFC 7517 A.2: the example private keys.
fn rfc7517_a2_set() -> Value {
    json!({"keys": [
        {
            "kty": "EC",
            "crv": "P-256",
            "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
            "d": "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE",
            "use": "enc",
            "kid": "1"
        },
        {
            "kty": "RSA",
            "n": concat!(
                "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4",
                "cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMst",
                "n64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Q",
                "vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbIS",
                "D08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw",
                "0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            ),
            "e": "AQAB",
            "d": concat!(
                "X4cTteJY_gn4FYPsXB8rdXix5vwsg1FLN5E3EaG6RJoVH-HLLKD9",
                "M7dx5oo7GURknchnrRweUkC7hT5fJLM0WbFAKNLWY2vv7B6NqXSzUvxT0_YSfqij",
                "wp3RTzlBaCxWp4doFk5N2o8Gy_nHNKroADIkJ46pRUohsXywbReAdYaMwFs9tv8d",
                "_cPVY3i07a3t8MN6TNwm0dSawm9v47UiCl3Sk5ZiG7xojPLu4sbg1U2jx4IBTNBz",
                "nbJSzFHK66jT8bgkuqsk0GjskDJk19Z4qwjwbsnn4j2WBii3RL-Us2lGVkY8fkFz",
                "me1z0HbIkfz0Y6mqnOYtqc0X4jfcKoAC8Q",
            ),
            "p": concat!(
                "83i-7IvMGXoMXCskv73TKr8637FiO7Z27zv8oj6pbWUQyLPQBQxtPV",
                "nwD20R-60eTDmD2ujnMt5PoqMrm8RfmNhVWDtjjMmCMjOpSXicFHj7XOuVIYQyqV",
                "WlWEh6dN36GVZYk93N8Bc9vY41xy8B9RzzOGVQzXvNEvn7O0nVbfs",
            ),
            "q": concat!(
                "3dfOR9cuYq-0S-mkFLzgItgMEfFzB2q3hWehMuG0oCuqnb3vobLyum",
                "qjVZQO1dIrdwgTnCdpYzBcOfW5r370AFXjiWft_NGEiovonizhKpo9VVS78TzFgx",
                "kIdrecRezsZ-1kYd_s1qDbxtkDEgfAITAG9LUnADun4vIcb6yelxk",
            ),
            "dp": concat!(
                "G4sPXkc6Ya9y8oJW9_ILj4xuppu0lzi_H7VTkS8xj5SdX3coE0oim",
                "YwxIi2emTAue0UOa5dpgFGyBJ4c8tQ2VF402XRugKDTP8akYhFo5tAA77Qe_Nmtu",
                "YZc3C3m3I24G2GvR5sSDxUyAN2zq8Lfn9EUms6rY3Ob8YeiKkTiBj0",
            ),
            "dq": concat!(
                "s9lAH9fggBsoFR8Oac2R_E2gw282rT2kGOAhvIllETE1efrA6huUU",
                "vMfBcMpn8lqeW6vzznYY5SSQF7pMdC_agI3nG8Ibp1BUb0JUiraRNqUfLhcQb_d9",
                "GF4Dh7e74WbRsobRonujTYN1xCaP6TO61jvWrX-L18txXw494Q_cgk",
            ),
            "qi": concat!(
                "GyM_p6JrXySiz1toFgKbWV-JdI3jQ4ypu9rbMWx3rQJBfmt0FoYzg",
                "UIZEVFEcOqwemRN81zoDAaa-Bk0KWNGDjJHZDdDmFhW3AN7lI-puxk_mHZGJ11rx",
                "yR8O55XLSe3SPmRfKwZI6yU24ZxvQKFYItdldUKGzO6Ia6zTKhAVRU",
            ),
            "alg": "RS256",
            "kid": "2011-04-29"
        }
    ]})
}

/// RFC 7517 A.3: the example symmetric keys.
fn rfc7517_a3_set() -> Value {
    json!({"keys": [
        {"kty": "oct", "alg": "A128KW", "k": "GawgguFyGrWKav7AX4VKUg"},
        {
            "kty": "oct",
            "k": concat!(
                "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75",
                "aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
            ),
            "kid": "HMAC key used in JWS spec Appendix A.1 example"
        }
    ]})
}

#[test]
fn rfc7517_a1_public_keys_parse_and_are_selected_by_kid() {
    let set = JwkSet::from_json(rfc7517_a1_set().to_string()).unwrap();
    assert_eq!(set.keys().len(), 2);
    assert_eq!(set.skipped(), 0);

    let ec: Vec<&Jwk> = set.find("1").collect();
    assert_eq!(ec.len(), 1);
    assert_eq!(ec[0].key_type(), KeyType::Ec);
    assert_eq!(ec[0].curve(), Some(Curve::P256));
    assert_eq!(ec[0].key_use(), Some("enc"));
    assert!(!ec[0].is_private());

    let rsa: Vec<&Jwk> = set.find("2011-04-29").collect();
    assert_eq!(rsa.len(), 1);
    assert_eq!(rsa[0].key_type(), KeyType::Rsa);
    assert_eq!(rsa[0].rsa_bits(), Some(2048));
    assert_eq!(rsa[0].alg(), Some("RS256"));
    assert_eq!(rsa[0].key_use(), None);
    assert_eq!(set.find("2011-04-30").count(), 0);

    // Selection through KeySource: by kid, and only keys that fit.
    let picked = set.select(Some("2011-04-29"), &|_| true).unwrap();
    assert_eq!(picked.kid(), Some("2011-04-29"));
    let picked = set.select(Some("1"), &|_| true).unwrap();
    assert_eq!(picked.kid(), Some("1"));
    let err = set
        .select(Some("1"), &|k: &Jwk| k.key_type() == KeyType::Rsa)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyNotFound);
    let err = set.select(Some("3"), &|_| true).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyNotFound);
}

#[test]
fn rfc7517_a2_private_keys_match_the_a1_public_keys_and_sign_for_them() {
    let public = JwkSet::from_json(rfc7517_a1_set().to_string()).unwrap();
    let private = JwkSet::from_json(rfc7517_a2_set().to_string()).unwrap();
    assert_eq!(private.keys().len(), 2);
    for (pr, pu) in private.keys().iter().zip(public.keys()) {
        assert!(pr.is_private());
        assert_eq!(pr.kid(), pu.kid());
        assert_eq!(pr.thumbprint(), pu.thumbprint(), "{:?}", pr.kid());
        assert_eq!(
            pr.to_public().unwrap().to_spki_der().unwrap(),
            pu.to_spki_der().unwrap()
        );
    }
    // The set's public halves are the A.1 keys.
    assert_eq!(private.to_public().keys().len(), 2);
    assert!(private.to_public().keys().iter().all(|k| !k.is_private()));

    // A token signed with the A.2 RSA key under kid 2011-04-29 verifies against the
    // A.1 set; under kid "1" it finds only the EC key, which cannot verify RS256.
    let rsa = private.find("2011-04-29").next().unwrap();
    let claims = json!({"iss": "joe", "exp": 1300819380});
    let token = jwt::encode(
        &Header::new(Algorithm::RS256).with_kid("2011-04-29"),
        &claims,
        rsa,
    )
    .unwrap();
    let v = Validation::new().at(1300819379);
    let data = jwt::decode::<Claims>(&token, &public, &v).unwrap();
    assert_eq!(data.claims.iss.as_deref(), Some("joe"));
    assert_eq!(data.header.kid.as_deref(), Some("2011-04-29"));

    let wrong_kid =
        jwt::encode(&Header::new(Algorithm::RS256).with_kid("1"), &claims, rsa).unwrap();
    let err = jwt::decode::<Claims>(&wrong_kid, &public, &v).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyNotFound);
    // The key's "alg": "RS256" pins it: a PS256 token under its kid is refused
    // before any signature check (signed here by a stranger's key).
    let ps = jwt::encode(
        &Header::new(Algorithm::PS256).with_kid("2011-04-29"),
        &claims,
        &Jwk::generate_rsa(2048).unwrap(),
    )
    .unwrap();
    let err = jwt::decode::<Claims>(&ps, &public, &v).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
    // The EC key has "use": "enc": it may not sign.
    let ec_private = private.find("1").next().unwrap();
    let err = jws::sign(&Header::new(Algorithm::ES256), b"x", ec_private).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
}

#[test]
fn rfc7517_a3_symmetric_keys_parse_and_work_where_the_rfcs_use_them() {
    let set = JwkSet::from_json(rfc7517_a3_set().to_string()).unwrap();
    assert_eq!(set.keys().len(), 2);
    let kw = &set.keys()[0];
    assert_eq!(kw.key_type(), KeyType::Oct);
    assert_eq!(kw.alg(), Some("A128KW"));
    assert_eq!(kw.kid(), None);
    assert_eq!(kw.secret_len(), Some(16));
    let hmac: Vec<&Jwk> = set
        .find("HMAC key used in JWS spec Appendix A.1 example")
        .collect();
    assert_eq!(hmac.len(), 1);
    assert_eq!(hmac[0].secret_len(), Some(64));

    // The HMAC key is the RFC 7515 A.1 key: it verifies that JWS.
    let v = jws::verify(RFC7515_A1_JWS, hmac[0], &Policy::new()).unwrap();
    assert_eq!(v.payload(), JOE_CLAIMS);
    // The A128KW key is the RFC 7516 A.3 key: it opens that JWE, and its "alg"
    // pins it to A128KW, so it may not serve as an HMAC key.
    let opened = jwe::decrypt(RFC7516_A3_JWE, kw, &Decrypter::new()).unwrap();
    assert_eq!(opened.plaintext(), b"Live long and prosper.");
    let err = jws::sign(&Header::new(Algorithm::HS256), b"x", kw).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
}

/// RFC 7517 Appendix B: a JWK with an `x5c` member.
fn rfc7517_b_key_json() -> Value {
    json!({
        "kty": "RSA",
        "use": "sig",
        "kid": "1b94c",
        "n": concat!(
            "vrjOfz9Ccdgx5nQudyhdoR17V-IubWMeOZCwX_jj0hgAsz2J_pqYW08",
            "PLbK_PdiVGKPrqzmDIsLI7sA25VEnHU1uCLNwBuUiCO11_-7dYbsr4iJmG0Q",
            "u2j8DsVyT1azpJC_NG84Ty5KKthuCaPod7iI7w0LK9orSMhBEwwZDCxTWq4a",
            "YWAchc8t-emd9qOvWtVMDC2BXksRngh6X5bUYLy6AyHKvj-nUy1wgzjYQDwH",
            "MTplCoLtU-o-8SNnZ1tmRoGE9uJkBLdh5gFENabWnU5m1ZqZPdwS-qo-meMv",
            "VfJb6jJVWRpl2SUtCnYG2C32qvbWbjZ_jBPD5eunqsIo1vQ",
        ),
        "e": "AQAB",
        "x5c": [concat!(
            "MIIDQjCCAiqgAwIBAgIGATz/FuLiMA0GCSqGSIb3DQEBBQUAMGIxCzAJB",
            "gNVBAYTAlVTMQswCQYDVQQIEwJDTzEPMA0GA1UEBxMGRGVudmVyMRwwGgYD",
            "VQQKExNQaW5nIElkZW50aXR5IENvcnAuMRcwFQYDVQQDEw5CcmlhbiBDYW1",
            "wYmVsbDAeFw0xMzAyMjEyMzI5MTVaFw0xODA4MTQyMjI5MTVaMGIxCzAJBg",
            "NVBAYTAlVTMQswCQYDVQQIEwJDTzEPMA0GA1UEBxMGRGVudmVyMRwwGgYDV",
            "QQKExNQaW5nIElkZW50aXR5IENvcnAuMRcwFQYDVQQDEw5CcmlhbiBDYW1w",
            "YmVsbDCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAL64zn8/QnH",
            "YMeZ0LncoXaEde1fiLm1jHjmQsF/449IYALM9if6amFtPDy2yvz3YlRij66",
            "s5gyLCyO7ANuVRJx1NbgizcAblIgjtdf/u3WG7K+IiZhtELto/A7Fck9Ws6",
            "SQvzRvOE8uSirYbgmj6He4iO8NCyvaK0jIQRMMGQwsU1quGmFgHIXPLfnpn",
            "fajr1rVTAwtgV5LEZ4Iel+W1GC8ugMhyr4/p1MtcIM42EA8BzE6ZQqC7VPq",
            "PvEjZ2dbZkaBhPbiZAS3YeYBRDWm1p1OZtWamT3cEvqqPpnjL1XyW+oyVVk",
            "aZdklLQp2Btgt9qr21m42f4wTw+Xrp6rCKNb0CAwEAATANBgkqhkiG9w0BA",
            "QUFAAOCAQEAh8zGlfSlcI0o3rYDPBB07aXNswb4ECNIKG0CETTUxmXl9KUL",
            "+9gGlqCz5iWLOgWsnrcKcY0vXPG9J1r9AqBNTqNgHq2G03X09266X5CpOe1",
            "zFo+Owb1zxtp3PehFdfQJ610CDLEaS9V9Rqp17hCyybEpOGVwe8fnk+fbEL",
            "2Bo3UPGrpsHzUoaGpDftmWssZkhpBJKVMJyf/RuP2SmmaIzmnw9JiSlYhzo",
            "4tpzd5rFXhjRbg4zW9C+2qok+2+qDM1iJ684gPHMIY8aLWrdgQTxkumGmTq",
            "gawR+N5MDtdPTEQ0XfIBc2cJEUyMTY5MPvACWpkA6SdS4xSvdXK3IVfOWA==",
        )]
    })
}

#[test]
fn rfc7517_b_x5c_key_parses_and_its_key_comes_from_n_never_from_x5c() {
    let v = rfc7517_b_key_json();
    let key = jwk(&v);
    assert_eq!(key.key_type(), KeyType::Rsa);
    assert_eq!(key.kid(), Some("1b94c"));
    assert_eq!(key.key_use(), Some("sig"));
    assert_eq!(key.rsa_bits(), Some(2048));

    // The certificate (standard base64 DER, RFC 7517 §4.7) holds the same public key:
    // its SubjectPublicKeyInfo is the key's SPKI, verbatim.
    let cert = STANDARD.decode(v["x5c"][0].as_str().unwrap()).unwrap();
    let spki = key.to_spki_der().unwrap();
    assert!(
        cert.windows(spki.len()).any(|w| w == spki.as_slice()),
        "the x5c certificate does not contain the key's SPKI"
    );
    // x5c is not kept: serializing the key writes no certificate.
    let out: Value = serde_json::from_str(&key.to_json()).unwrap();
    assert!(out.get("x5c").is_none(), "{out}");
    assert_eq!(out["n"], v["n"]);

    // The key material is n and e, never the certificate: with n swapped for the
    // RFC 7515 A.2 modulus (the certificate left as it is), the key verifies the
    // A.2 JWS, which the certificate's key cannot.
    let mut swapped = v.clone();
    swapped["n"] = json!(rfc7515_a2_n());
    let swapped = jwk(&swapped);
    assert!(!swapped.to_spki_der().unwrap().is_empty());
    let ok = jws::verify(RFC7515_A2_JWS, &swapped, &Policy::new()).unwrap();
    assert_eq!(ok.payload(), JOE_CLAIMS);
    let err = jws::verify(RFC7515_A2_JWS, &key, &Policy::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature);
    // An x5c member without n is not a key.
    let mut only_cert = v.clone();
    only_cert.as_object_mut().unwrap().remove("n");
    assert!(Jwk::from_json(only_cert.to_string()).is_err());
}

// ----- RFC 7519 §3.1 and Appendix A -------------------------------------------------

#[test]
fn rfc7519_3_1_jwt_decodes_before_exp_and_is_expired_from_exp_on() {
    // §3.1: the same JWS as RFC 7515 A.1, MACed with the RFC 7515 A.1 key.
    let key = rfc7515_a1_key();
    let exp = 1_300_819_380;

    let before = Validation::new().at(exp - 1);
    let data = jwt::decode::<Claims>(RFC7515_A1_JWS, &key, &before).unwrap();
    assert_eq!(data.header.alg, Algorithm::HS256);
    assert_eq!(data.header.typ.as_deref(), Some("JWT"));
    assert_eq!(data.claims.iss.as_deref(), Some("joe"));
    assert_eq!(data.claims.exp.map(|d| d.0), Some(exp));
    assert_eq!(data.claims.sub, None);
    assert_eq!(
        data.claims.custom.get("http://example.com/is_root"),
        Some(&Value::Bool(true))
    );
    assert_eq!(data.claims.custom.len(), 1);
    // With the documented checks configured: issuer joe, typ JWT.
    let strict = Validation::new()
        .at(exp - 1)
        .issuer("joe")
        .typ("JWT")
        .algorithms(&[Algorithm::HS256]);
    assert!(jwt::decode::<Claims>(RFC7515_A1_JWS, &key, &strict).is_ok());
    // As plain JSON too.
    let raw = jwt::decode::<Value>(RFC7515_A1_JWS, &key, &before).unwrap();
    assert_eq!(raw.claims["http://example.com/is_root"], json!(true));

    // "exp": on or after it the JWT must not be accepted (§4.1.4).
    for now in [exp, exp + 1, 1_800_000_000] {
        let err =
            jwt::decode::<Claims>(RFC7515_A1_JWS, &key, &Validation::new().at(now)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Expired, "at {now}");
    }
    // Leeway is opt-in and widens exactly as asked.
    let lenient = Validation::new().at(exp + 30).leeway(31);
    assert!(jwt::decode::<Claims>(RFC7515_A1_JWS, &key, &lenient).is_ok());
    let lenient = Validation::new().at(exp + 30).leeway(30);
    let err = jwt::decode::<Claims>(RFC7515_A1_JWS, &key, &lenient).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Expired);
    // Another issuer is refused; a changed character is refused before any claim.
    let err =
        jwt::decode::<Claims>(RFC7515_A1_JWS, &key, &before.clone().issuer("jane")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidIssuer);
    let err = jwt::decode::<Claims>(&tamper(RFC7515_A1_JWS, 2), &key, &before).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature);
}

/// RFC 7519 A.1: the encrypted JWT (RSA1_5, A128CBC-HS256, RFC 7516 A.2 key).
const RFC7519_A1_JWT: &str = concat!(
    "eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMTI4Q0JDLUhTMjU2In0.",
    "QR1Owv2ug2WyPBnbQrRARTeEk9kDO2w8qDcjiHnSJflSdv1iNqhWXaKH4MqAkQtM",
    "oNfABIPJaZm0HaA415sv3aeuBWnD8J-Ui7Ah6cWafs3ZwwFKDFUUsWHSK-IPKxLG",
    "TkND09XyjORj_CHAgOPJ-Sd8ONQRnJvWn_hXV1BNMHzUjPyYwEsRhDhzjAD26ima",
    "sOTsgruobpYGoQcXUwFDn7moXPRfDE8-NoQX7N7ZYMmpUDkR-Cx9obNGwJQ3nM52",
    "YCitxoQVPzjbl7WBuB7AohdBoZOdZ24WlN1lVIeh8v1K4krB8xgKvRU8kgFrEn_a",
    "1rZgN5TiysnmzTROF869lQ.",
    "AxY8DCtDaGlsbGljb3RoZQ.",
    "MKOle7UQrG6nSxTLX6Mqwt0orbHvAKeWnDYvpIAeZ72deHxz3roJDXQyhxx0wKaM",
    "HDjUEOKIwrtkHthpqEanSBNYHZgmNOV7sln1Eu9g3J8.",
    "fiK51VwhsxJ-siBMR-YFiA",
);

/// RFC 7519 A.2: the nested JWT (the RFC 7515 A.2 JWS, encrypted with RSA1_5).
const RFC7519_A2_JWT: &str = concat!(
    "eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiY3R5IjoiSldU",
    "In0.",
    "g_hEwksO1Ax8Qn7HoN-BVeBoa8FXe0kpyk_XdcSmxvcM5_P296JXXtoHISr_DD_M",
    "qewaQSH4dZOQHoUgKLeFly-9RI11TG-_Ge1bZFazBPwKC5lJ6OLANLMd0QSL4fYE",
    "b9ERe-epKYE3xb2jfY1AltHqBO-PM6j23Guj2yDKnFv6WO72tteVzm_2n17SBFvh",
    "DuR9a2nHTE67pe0XGBUS_TK7ecA-iVq5COeVdJR4U4VZGGlxRGPLRHvolVLEHx6D",
    "YyLpw30Ay9R6d68YCLi9FYTq3hIXPK_-dmPlOUlKvPr1GgJzRoeC9G5qCvdcHWsq",
    "JGTO_z3Wfo5zsqwkxruxwA.",
    "UmVkbW9uZCBXQSA5ODA1Mg.",
    "VwHERHPvCNcHHpTjkoigx3_ExK0Qc71RMEParpatm0X_qpg-w8kozSjfNIPPXiTB",
    "BLXR65CIPkFqz4l1Ae9w_uowKiwyi9acgVztAi-pSL8GQSXnaamh9kX1mdh3M_TT",
    "-FZGQFQsFhu0Z72gJKGdfGE-OE7hS1zuBD5oEUfk0Dmb0VzWEzpxxiSSBbBAzP10",
    "l56pPfAtrjEYw-7ygeMkwBl6Z_mLS6w6xUgKlvW6ULmkV-uLC4FUiyKECK4e3WZY",
    "Kw1bpgIqGYsw2v_grHjszJZ-_I5uM-9RA8ycX9KqPRp9gc6pXmoU_-27ATs9XCvr",
    "ZXUtK2902AUzqpeEUJYjWWxSNsS-r1TJ1I-FMJ4XyAiGrfmo9hQPcNBYxPz3GQb2",
    "8Y5CLSQfNgKSGt0A4isp1hBUXBHAndgtcslt7ZoQJaKe_nNJgNliWtWpJ_ebuOpE",
    "l8jdhehdccnRMIwAmU1n7SPkmhIl1HlSOpvcvDfhUN5wuqU955vOBvfkBOh5A11U",
    "zBuo2WlgZ6hYi9-e3w29bR0C2-pp3jbqxEDw3iWaf2dc5b-LnR0FEYXvI_tYk5rd",
    "_J9N0mg0tQ6RbpxNEMNoA9QWk5lgdPvbh9BaO195abQ.",
    "AVO9iT5AV4CzvDJCdhSFlQ",
);

#[test]
fn rfc7519_a1_and_a2_rsa1_5_jwts_are_refused() {
    let dec_key = rfc7516_a2_key();
    assert_eq!(
        unb64(RFC7519_A2_JWT.split('.').next().unwrap()),
        br#"{"alg":"RSA1_5","enc":"A128CBC-HS256","cty":"JWT"}"#
    );
    // A.2's IV is the ASCII octets listed in the RFC.
    assert_eq!(
        unb64(RFC7519_A2_JWT.split('.').nth(2).unwrap()),
        [
            82, 101, 100, 109, 111, 110, 100, 32, 87, 65, 32, 57, 56, 48, 53, 50
        ]
    );
    for token in [RFC7519_A1_JWT, RFC7519_A2_JWT] {
        let err = jwe::decrypt(token, &dec_key, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
    }
    let err = jwt::decode_nested::<Claims>(
        RFC7519_A2_JWT,
        &dec_key,
        &Decrypter::new(),
        &rfc7515_a2_key().to_public().unwrap(),
        &Validation::new().at(1300819379),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
    // Not a JWS either: five parts are not three.
    let err =
        jwt::decode::<Claims>(RFC7519_A1_JWT, &rfc7515_a1_key(), &Validation::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
}

// ----- RFC 8037 Appendix A ----------------------------------------------------------

/// RFC 8037 A.1: the Ed25519 private key.
fn rfc8037_a1_key() -> Jwk {
    jwk(&json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    }))
}

/// RFC 8037 A.4: the JWS over "Example of Ed25519 signing".
const RFC8037_A4_JWS: &str = concat!(
    "eyJhbGciOiJFZERTQSJ9",
    ".",
    "RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc",
    ".",
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
);

#[test]
fn rfc8037_a4_ed25519_verifies_and_re_signs_byte_for_byte() {
    let key = rfc8037_a1_key();
    assert_eq!(key.curve(), Some(Curve::Ed25519));
    assert!(key.is_private());
    // A.2: the public key is the private key without "d".
    let public = key.to_public().unwrap();
    let a2 = jwk(&json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    }));
    assert_eq!(public.to_spki_der().unwrap(), a2.to_spki_der().unwrap());

    let v = jws::verify(RFC8037_A4_JWS, &a2, &Policy::new()).unwrap();
    assert_eq!(v.header().alg, Algorithm::EdDSA);
    assert_eq!(v.payload(), b"Example of Ed25519 signing");

    // Ed25519 is deterministic: signing again gives the published JWS exactly.
    let token = jws::sign(
        &Header::new(Algorithm::EdDSA),
        b"Example of Ed25519 signing",
        &key,
    )
    .unwrap();
    assert_eq!(token, RFC8037_A4_JWS);

    for segment in [1, 2] {
        let err = jws::verify(&tamper(RFC8037_A4_JWS, segment), &a2, &Policy::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSignature, "segment {segment}");
    }
    // The signing input with a byte more does not verify under the signature.
    let (input, sig) = RFC8037_A4_JWS.rsplit_once('.').unwrap();
    let err = jws::verify_detached(
        Algorithm::EdDSA,
        &a2,
        format!("{input}A").as_bytes(),
        &unb64(sig),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature);
    // Another Ed25519 key does not verify it.
    let other = Jwk::generate_curve(Curve::Ed25519).unwrap();
    let err = jws::verify(RFC8037_A4_JWS, &other, &Policy::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature);
}

// RFC 8037 A.6 (ECDH-ES with X25519) gives Bob's public key, the ephemeral secret and
// public keys and the shared secret Z, but no JWE. The public API cannot inject an
// ephemeral key into `jwe::encrypt`, and `jwe::decrypt` never reveals Z. What it can
// check is the agreement itself: X25519 is symmetric, so a JWE whose `epk` is Bob's
// public key, decrypted with the ephemeral key pair as the recipient, makes the
// library compute X25519(ephemeral secret, Bob's public key), which A.6 says is Z.
// The test seals such a JWE under the Concat KDF (RFC 7518 §4.6.2) of the published
// Z, computed here independently; it opens only if the library's Z is that Z.

const RFC8037_A6_BOB_X: &str = "3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08";
const RFC8037_A6_EPHEMERAL_SECRET: &str = concat!(
    "77 07 6d 0a 73 18 a5 7d 3c 16 c1 72 51 b2 66 45 df 4c 2f 87 eb",
    "c0 99 2a b1 77 fb a5 1d b9 2c 2a",
);
const RFC8037_A6_EPHEMERAL_X: &str = "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo";
const RFC8037_A6_Z: &str = concat!(
    "4a 5d 9d 5b a4 ce 2d e1 72 8e 3b f4 80 35 0f 25 e0 7e 21 c9 47",
    "d1 9e 33 76 f0 9b 3c 1e 16 17 42",
);

/// The Concat KDF of RFC 7518 §4.6.2 for `ECDH-ES` with `enc` of `key_bits`, no
/// apu/apv: one SHA-256 round is enough for up to 256 bits.
fn concat_kdf(z: &[u8], enc: &str, key_bits: u32) -> Vec<u8> {
    let mut input = Vec::new();
    input.extend_from_slice(&1u32.to_be_bytes());
    input.extend_from_slice(z);
    input.extend_from_slice(&(enc.len() as u32).to_be_bytes());
    input.extend_from_slice(enc.as_bytes());
    input.extend_from_slice(&0u32.to_be_bytes()); // PartyUInfo: empty
    input.extend_from_slice(&0u32.to_be_bytes()); // PartyVInfo: empty
    input.extend_from_slice(&key_bits.to_be_bytes());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    digest.as_ref()[..(key_bits / 8) as usize].to_vec()
}

/// A compact `ECDH-ES` + `A128GCM` JWE of `plaintext` under `header`, sealed with `cek`.
fn seal_a128gcm(header: &Value, cek: &[u8], plaintext: &[u8]) -> String {
    use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let h = b64(header.to_string());
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, cek).unwrap());
    let iv = [7u8; 12];
    let mut buf = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(iv),
            Aad::from(h.as_bytes()),
            &mut buf,
        )
        .unwrap();
    format!("{h}..{}.{}.{}", b64(iv), b64(&buf), b64(tag.as_ref()))
}

#[test]
fn rfc8037_a6_x25519_agreement_yields_the_published_z() {
    let secret = hex(RFC8037_A6_EPHEMERAL_SECRET);
    let z = hex(RFC8037_A6_Z);
    assert_eq!((secret.len(), z.len()), (32, 32));
    // The ephemeral key pair as published: the library accepts d with this x.
    let ephemeral = jwk(&json!({
        "kty": "OKP",
        "crv": "X25519",
        "x": RFC8037_A6_EPHEMERAL_X,
        "d": b64(&secret),
    }));
    assert_eq!(ephemeral.curve(), Some(Curve::X25519));
    let bob = jwk(&json!({"kty": "OKP", "crv": "X25519", "x": RFC8037_A6_BOB_X}));
    assert!(!bob.is_private());

    let header = json!({
        "alg": "ECDH-ES",
        "enc": "A128GCM",
        "epk": {"kty": "OKP", "crv": "X25519", "x": RFC8037_A6_BOB_X},
    });
    let cek = concat_kdf(&z, "A128GCM", 128);
    let token = seal_a128gcm(&header, &cek, b"RFC 8037 A.6");
    let opened = jwe::decrypt(&token, &ephemeral, &Decrypter::new()).unwrap();
    assert_eq!(opened.plaintext(), b"RFC 8037 A.6");
    assert_eq!(opened.header().alg, KeyManagement::EcdhEs);
    assert_eq!(opened.header().enc, ContentEncryption::A128Gcm);

    // Sealed under a Z one bit off, the JWE does not open: the agreement is checked.
    let mut wrong_z = z.clone();
    wrong_z[31] ^= 0x01;
    let token = seal_a128gcm(&header, &concat_kdf(&wrong_z, "A128GCM", 128), b"x");
    let err = jwe::decrypt(&token, &ephemeral, &Decrypter::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed);
    // Nor with an epk that is not Bob's key (the ephemeral public key itself).
    let mut other_epk = header.clone();
    other_epk["epk"]["x"] = json!(RFC8037_A6_EPHEMERAL_X);
    let token = seal_a128gcm(&other_epk, &cek, b"x");
    let err = jwe::decrypt(&token, &ephemeral, &Decrypter::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed);
}
