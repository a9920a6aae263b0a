//! Inputs found by the fuzz targets in fuzz/ (docs/fuzzing.md), kept so the bugs they
//! exposed stay fixed. Each test names the target and the artifact it came from.

use tessera_jose::{Curve, Jwk, KeyType};

/// fuzz target `jwk`, crash-252b06fe2ba74aeffda99373c6bdba6ac8365959: an X25519
/// PKCS#8 key imported fine but could not be exported again (aws-lc-rs does not write
/// X25519 PKCS#8), so `to_pkcs8_der` and `to_pem` failed for every X25519 private key.
const X25519_PKCS8: &[u8] = &[
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
    0x10, 0x24, 0x78, 0x11, 0xc8, 0x58, 0xa8, 0x39, 0xe0, 0x2d, 0x90, 0xcc, 0xf6, 0x37, 0x9f, 0x0e,
    0x36, 0xe8, 0xb0, 0xba, 0xfc, 0x57, 0xc1, 0x54, 0x92, 0xc7, 0x84, 0x0f, 0x00, 0x8f, 0xbb, 0x7a,
];

#[test]
fn x25519_private_key_exports_to_pkcs8_and_back() {
    let key = Jwk::from_pkcs8_der(X25519_PKCS8).unwrap();
    assert_eq!(key.key_type(), KeyType::Okp);
    assert_eq!(key.curve(), Some(Curve::X25519));
    let der = key.to_pkcs8_der().unwrap();
    // RFC 8410's encoding is canonical DER, so the import is written back byte for byte.
    assert_eq!(&der[..], X25519_PKCS8);
    let again = Jwk::from_pkcs8_der(&der).unwrap();
    assert_eq!(again.thumbprint(), key.thumbprint());
    assert!(again.is_private());
}

#[test]
fn generated_x25519_key_round_trips_through_pem() {
    let key = Jwk::generate_curve(Curve::X25519).unwrap();
    let pem = key.to_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let again = Jwk::from_pem(&pem).unwrap();
    assert_eq!(again.thumbprint(), key.thumbprint());
    assert!(again.is_private());
    assert_eq!(again.to_json(), key.to_json());
}

/// `jwt::decode` reads the registered claims from the members' text after a strict
/// check instead of parsing the payload twice; `validate_payload` still checks then
/// parses the whole payload. On every payload here both must give the same verdict
/// (the same error kind), whatever sits outside the registered claims. The fuzz
/// target `jwt` asserts the same on arbitrary payloads.
#[test]
fn decode_agrees_with_a_full_parse_of_the_claims() {
    use tessera_jose::jws::Header;
    use tessera_jose::jwt::{self, Claims, Validation};
    use tessera_jose::{Algorithm, ErrorKind};

    let key = Jwk::from_secret([7u8; 32]).unwrap();
    let validation = Validation::new().issuer("iss").audience("aud").at(1000);
    let payloads: &[&str] = &[
        r#"{"iss":"iss","aud":"aud","exp":2000}"#,
        r#"{"iss":"iss","aud":["x","aud"],"exp":2000.5,"nbf":999,"iat":1000}"#,
        r#"{"\u0069ss":"iss","aud":"aud","exp":2000}"#,
        r#"{"iss":"i\u0073s","aud":"aud","exp":2000}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"x":01}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"x":1.}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"x":-}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"x":1e}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"x":1E+9,"y":-0.5e-3}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"x":tru}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"x":nulll}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"x":[true,false,null,{"a":{}}]}"#,
        "{\"iss\":\"iss\",\"aud\":\"aud\",\"exp\":2000,\"x\":\"a\u{1}b\"}",
        "{\"iss\":\"iss\",\"aud\":\"aud\",\"exp\":2000,\"x\u{1f}\":1}",
        r#"{"iss":"iss","aud":"aud","exp":"2000"}"#,
        r#"{"iss":"iss","aud":"aud","exp":null}"#,
        r#"{"iss":"iss","aud":"aud","exp":1e999}"#,
        r#"{"iss":"iss","aud":"aud","exp":500}"#,
        r#"{"iss":"iss","aud":"aud","exp":-5,"nbf":-0,"iat":-999999999999999999}"#,
        r#"{"iss":"iss","aud":"aud","exp":999999999999999999}"#,
        r#"{"iss":"iss","aud":"aud","exp":9999999999999999999}"#,
        r#"{"iss":"iss","aud":"aud","exp":99999999999999999999999}"#,
        r#"{"iss":"iss","aud":"aud","exp":2e3,"nbf":1000.0}"#,
        r#"{"iss":"iss","aud":"\u0061ud","exp":2000,"sub":"\n"}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"sub":"\ud800"}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"jti":7}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"sub":null}"#,
        r#"{"iss":"iss","aud":"aud"}"#,
        r#"{"iss":"other","aud":"aud","exp":2000}"#,
        r#"{"iss":"iss","aud":[1],"exp":2000}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"exp":2000}"#,
        r#"{"iss":"iss","aud":"aud","exp":2000,"\u0065xp":2000}"#,
        r#"["iss","sub","aud",2000]"#,
        r#"[]"#,
        r#""iss""#,
        r#"{"iss":"iss","aud":"aud","exp":2000} x"#,
    ];
    let header = Header::new(Algorithm::HS256);
    for payload in payloads {
        let token = tessera_jose::jws::sign(&header, payload.as_bytes(), &key).unwrap();
        let reference = validation.validate_payload(&header, payload.as_bytes(), 1000);
        let decoded = jwt::decode::<Claims>(&token, &key, &validation);
        match reference {
            Err(e) => assert_eq!(
                decoded.as_ref().map(|_| ()).map_err(|e| e.kind()),
                Err(e.kind()),
                "{payload}"
            ),
            Ok(()) => assert!(
                decoded.is_ok() || decoded.unwrap_err().kind() == ErrorKind::Malformed,
                "{payload}"
            ),
        }
    }
}

/// fuzz target `jwe`, crash-b4683830ee1d6cb6dcd2686c8e501d65560993f6 (alg dir, enc
/// A128GCM, zip, plaintext "hello"): `allow_zip(usize::MAX)` overflowed computing the
/// inflate bound; in a release build it wrapped to 0 and the plaintext came out empty.
#[test]
fn zip_with_an_unbounded_limit_decrypts_the_whole_plaintext() {
    use tessera_jose::jwe::{self, Decrypter, EncryptOptions};
    use tessera_jose::{ContentEncryption, KeyManagement};

    let key = Jwk::from_secret([9u8; 16]).unwrap();
    let opts = EncryptOptions::new(KeyManagement::Dir, ContentEncryption::A128Gcm).with_zip();
    let token = jwe::encrypt(b"hello", &key, &opts).unwrap();
    let opened = jwe::decrypt(&token, &key, &Decrypter::new().allow_zip(usize::MAX)).unwrap();
    assert_eq!(opened.plaintext(), b"hello");
    assert!(opened.header().zip);
}
