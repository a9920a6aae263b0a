//! Wycheproof (C2SP) vectors for signatures and keys, through the library's own code
//! paths: compact tokens through `jws::verify`, primitive files through
//! `jws::verify_detached` (the same `Jwk` verification the token path calls), with
//! every key imported from its JWK form.
//!
//! Each file prints one summary line; run with `--nocapture` to see them. Missing
//! vectors fail every test when `CI` is set, and print `SKIPPED` otherwise (see
//! `common::Vectors`).

mod common;

use serde_json::Value;
use tessera_jose::jws::{self, Policy};
use tessera_jose::{Algorithm, ErrorKind, Jwk};

use common::{Keys, Tally, hex, jwk, keys, load, s};

fn verify_token(token: &str, keys: &Keys) -> tessera_jose::Result<Vec<u8>> {
    let v = match keys {
        Keys::One(k) => jws::verify(token, k, &Policy::new()),
        Keys::Set(set) => jws::verify(token, set, &Policy::new()),
    };
    v.map(|v| v.payload().to_vec())
}

/// Runs every `jws` test of a JOSE-level file. Groups whose key is refused at import
/// count as refusing each of their tests. JSON-serialized tokens are not supported
/// (compact only): they must be refused as `Malformed`, and count as skipped if valid.
fn run_jws_file(file: &str, known: &[(u64, &'static str)]) {
    let Some(doc) = load(file) else { return };
    let mut tally = Tally::new(file).known(known);
    for group in doc["testGroups"].as_array().unwrap() {
        let key_json = group.get("public").unwrap_or(&group["private"]);
        let keys = keys(key_json);
        for test in group["tests"].as_array().unwrap() {
            let Some(token) = test["jws"].as_str() else {
                continue; // a JWE test in json_web_crypto_test: see wycheproof_jwe.rs
            };
            if token.trim_start().starts_with('{') {
                let err = match &keys {
                    Ok(k) => verify_token(token, k).unwrap_err(),
                    Err(e) => e.clone(),
                };
                if test["result"] == "valid" {
                    assert!(
                        matches!(err.kind(), ErrorKind::Malformed | ErrorKind::InvalidKey),
                        "tcId {}: {err:?}",
                        test["tcId"]
                    );
                    tally.skip();
                } else {
                    tally.record(test, false, "JSON serialization");
                }
                continue;
            }
            match &keys {
                Err(e) => tally.record(test, false, &format!("key refused: {e:?}")),
                Ok(k) => {
                    let r = verify_token(token, k);
                    let detail = format!("{r:?}");
                    tally.record(test, r.is_ok(), &detail);
                }
            }
        }
    }
    tally.finish();
}

const PINNED: &str = "Wycheproof gives this RFC 7520 key an alg (PS256, or the unregistered ES521) \
     other than the token's (PS384, ES512); a JWK's alg pins it (RFC 7517 §4.4), so it is refused";
const SAME_AS_357: &str = "the token in the file is byte for byte the valid tcId 357 (the \
     padding the comment speaks of is not in the data), so it verifies";
const INSERTED_CHAR: &str = "labelled valid although a '?' is inserted into a base64url part; \
     only canonical base64url is accepted (RFC 7515 §2), so it is refused";
const MIXED_SET: &str = "a set with one oct and one EC key: keys are chosen by kid and by the \
     token algorithm's family, so the HS256 token finds the oct key (RFC 7517 allows mixed sets)";
const DUPLICATE_KID: &str = "the second key's k has non-zero trailing bits, so the set skips it as \
     unusable and one key with that kid remains (two usable keys with one kid are refused: \
     secure_defaults.rs)";

#[test]
fn json_web_signature() {
    run_jws_file(
        "wycheproof/json_web_signature_test.json",
        &[
            (346, PINNED),
            (347, PINNED),
            (350, PINNED),
            (351, PINNED),
            (367, SAME_AS_357),
            (370, SAME_AS_357),
            (372, INSERTED_CHAR),
            (373, INSERTED_CHAR),
        ],
    );
}

#[test]
fn json_web_signature_quirks_are_what_the_known_list_says() {
    let Some(doc) = load("wycheproof/json_web_signature_test.json") else {
        return;
    };
    let tests: Vec<&Value> = doc["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["tests"].as_array().unwrap())
        .collect();
    let token = |id: u64| {
        tests
            .iter()
            .find(|t| t["tcId"] == id)
            .map(|t| s(t, "jws"))
            .unwrap()
    };
    assert_eq!(token(367), token(357));
    assert_eq!(token(370), token(357));
    assert!(token(372).contains('?') && token(373).contains('?'));
}

#[test]
fn json_web_key() {
    run_jws_file(
        "wycheproof/json_web_key_test.json",
        &[(1, MIXED_SET), (4, DUPLICATE_KID)],
    );
}

#[test]
fn json_web_crypto_jws() {
    run_jws_file("wycheproof/json_web_crypto_test.json", &[(47, MIXED_SET)]);
}

/// Runs a primitive signature file: `msg` and `sig` through `jws::verify_detached`
/// with the group's JWK (`jwk_member`) under `alg`.
fn run_signature_file(file: &str, jwk_member: &str, alg: Algorithm) {
    let Some(doc) = load(file) else { return };
    let mut tally = Tally::new(file);
    for group in doc["testGroups"].as_array().unwrap() {
        // A few special-case groups have no JWK form: import their SPKI instead.
        let key = match group.get(jwk_member) {
            Some(j) => jwk(j),
            None => Jwk::from_spki_der(&hex(s(group, "publicKeyDer"))),
        };
        // The same key through the SPKI DER and PEM importers is the same key.
        if let (Ok(k), Some(der), Some(pem)) = (
            &key,
            group["publicKeyDer"].as_str(),
            group["publicKeyPem"].as_str(),
        ) {
            let from_der = Jwk::from_spki_der(&hex(der)).unwrap();
            assert_eq!(from_der.thumbprint(), k.thumbprint(), "{file}: SPKI import");
            assert_eq!(
                Jwk::from_pem(pem).unwrap().thumbprint(),
                k.thumbprint(),
                "{file}: PEM"
            );
            assert_eq!(k.to_spki_der().unwrap(), hex(der), "{file}: SPKI export");
        }
        for test in group["tests"].as_array().unwrap() {
            let (msg, sig) = (hex(s(test, "msg")), hex(s(test, "sig")));
            match &key {
                Err(e) => tally.record(test, false, &format!("key refused: {e:?}")),
                Ok(k) => {
                    let r = jws::verify_detached(alg, k, &msg, &sig);
                    if let Err(e) = &r {
                        // A refusal of a well-formed key is a signature failure, nothing else.
                        assert_eq!(
                            e.kind(),
                            ErrorKind::InvalidSignature,
                            "tcId {}",
                            test["tcId"]
                        );
                    }
                    tally.record(test, r.is_ok(), &format!("{r:?}"));
                }
            }
        }
    }
    tally.finish();
}

#[test]
fn ecdsa_p256_p1363_as_es256() {
    run_signature_file(
        "wycheproof/ecdsa_secp256r1_sha256_p1363_test.json",
        "publicKeyJwk",
        Algorithm::ES256,
    );
}

#[test]
fn ecdsa_p384_p1363_as_es384() {
    run_signature_file(
        "wycheproof/ecdsa_secp384r1_sha384_p1363_test.json",
        "publicKeyJwk",
        Algorithm::ES384,
    );
}

#[test]
fn ecdsa_p521_p1363_as_es512() {
    run_signature_file(
        "wycheproof/ecdsa_secp521r1_sha512_p1363_test.json",
        "publicKeyJwk",
        Algorithm::ES512,
    );
}

#[test]
fn ed25519_as_eddsa() {
    run_signature_file(
        "wycheproof/ed25519_test.json",
        "publicKeyJwk",
        Algorithm::EdDSA,
    );
}

#[test]
fn rsa_pkcs1_2048_sha256_as_rs256() {
    run_signature_file(
        "wycheproof/rsa_signature_2048_sha256_test.json",
        "keyJwk",
        Algorithm::RS256,
    );
}

#[test]
fn rsa_pkcs1_3072_sha384_as_rs384() {
    run_signature_file(
        "wycheproof/rsa_signature_3072_sha384_test.json",
        "keyJwk",
        Algorithm::RS384,
    );
}

#[test]
fn rsa_pkcs1_4096_sha512_as_rs512() {
    run_signature_file(
        "wycheproof/rsa_signature_4096_sha512_test.json",
        "keyJwk",
        Algorithm::RS512,
    );
}

#[test]
fn rsa_pss_2048_sha256_as_ps256() {
    run_signature_file(
        "wycheproof/rsa_pss_2048_sha256_mgf1_32_test.json",
        "publicKeyJwk",
        Algorithm::PS256,
    );
}

fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .expect("a number")
}

/// HMAC files through `verify_detached` with an `oct` key. JWS uses full-length tags
/// only; keys shorter than the hash are refused by policy (RFC 7518 §3.2), which the
/// test asserts for every such group instead of running its vectors.
fn run_hmac_file(file: &str, alg: Algorithm, hash_bits: u64) {
    let Some(doc) = load(file) else { return };
    let mut tally = Tally::new(file);
    for group in doc["testGroups"].as_array().unwrap() {
        let tests = group["tests"].as_array().unwrap();
        if num(&group["tagSize"]) != hash_bits {
            tests.iter().for_each(|_| tally.skip());
            continue;
        }
        for test in tests {
            let (key, msg, tag) = (
                hex(s(test, "key")),
                hex(s(test, "msg")),
                hex(s(test, "tag")),
            );
            let k = Jwk::from_secret(&key).unwrap();
            let r = jws::verify_detached(alg, &k, &msg, &tag);
            if (key.len() as u64) * 8 < hash_bits {
                assert_eq!(
                    r.unwrap_err().kind(),
                    ErrorKind::InvalidKey,
                    "tcId {}",
                    test["tcId"]
                );
                tally.skip();
                continue;
            }
            if let Err(e) = &r {
                assert_eq!(
                    e.kind(),
                    ErrorKind::InvalidSignature,
                    "tcId {}",
                    test["tcId"]
                );
            }
            tally.record(test, r.is_ok(), &format!("{r:?}"));
        }
    }
    tally.finish();
}

#[test]
fn hmac_sha256_as_hs256() {
    run_hmac_file("wycheproof/hmac_sha256_test.json", Algorithm::HS256, 256);
}

#[test]
fn hmac_sha384_as_hs384() {
    run_hmac_file("wycheproof/hmac_sha384_test.json", Algorithm::HS384, 384);
}

#[test]
fn hmac_sha512_as_hs512() {
    run_hmac_file("wycheproof/hmac_sha512_test.json", Algorithm::HS512, 512);
}

// ----- JWE --------------------------------------------------------------------------

/// Runs every `jwe` test of a JOSE-level file through `jwe::decrypt` with the group's
/// private key (or key set). Tokens whose algorithm is deliberately not supported
/// (`RSA1_5`, refused; `A*GCMKW`, not implemented) must be refused with exactly that
/// reason, and count as skipped when Wycheproof calls them valid.
fn run_jwe_file(file: &str, known: &[(u64, &'static str)]) {
    use tessera_jose::jwe::{self, Decrypter};
    let Some(doc) = load(file) else { return };
    let mut tally = Tally::new(file).known(known);
    for group in doc["testGroups"].as_array().unwrap() {
        let keys = keys(&group["private"]);
        for test in group["tests"].as_array().unwrap() {
            let Some(token) = test["jwe"].as_str() else {
                continue; // a JWS test in json_web_crypto_test
            };
            let keys = match &keys {
                Ok(k) => k,
                Err(e) => {
                    tally.record(test, false, &format!("key refused: {e:?}"));
                    continue;
                }
            };
            let decrypt = |d: &Decrypter| match keys {
                Keys::One(k) => jwe::decrypt(token, k, d),
                Keys::Set(set) => jwe::decrypt(token, set, d),
            };
            let header = tessera_jose::dangerous::insecure_decode(token)
                .ok()
                .map(|(h, _)| h);
            let alg = header
                .as_ref()
                .and_then(|h| h["alg"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut r = decrypt(&Decrypter::new());
            if header.is_some_and(|h| h.get("zip").is_some()) {
                // Compression is refused unless enabled: check that, then enable it.
                let err = r.expect_err("zip accepted by default");
                assert_eq!(
                    err.kind(),
                    ErrorKind::UnsupportedHeader,
                    "tcId {}",
                    test["tcId"]
                );
                r = decrypt(&Decrypter::new().allow_zip(64 * 1024));
            }
            let unsupported = match alg.as_str() {
                "RSA1_5" => Some(ErrorKind::AlgorithmNotAllowed),
                "A128GCMKW" | "A192GCMKW" | "A256GCMKW" => Some(ErrorKind::UnsupportedAlgorithm),
                _ => None,
            };
            if let Some(kind) = unsupported {
                let err = r.as_ref().expect_err("an unsupported algorithm decrypted");
                assert_eq!(err.kind(), kind, "tcId {} ({alg})", test["tcId"]);
                if test["result"] == "valid" {
                    tally.skip();
                } else {
                    tally.record(test, false, &format!("{alg} refused"));
                }
                continue;
            }
            if let (Ok(d), Some(pt)) = (&r, test["pt"].as_str()) {
                assert_eq!(
                    common::to_hex(d.plaintext()),
                    pt,
                    "tcId {}: plaintext",
                    test["tcId"]
                );
            }
            let detail = format!("{:?}", r.as_ref().map(|d| d.header().clone()));
            tally.record(test, r.is_ok(), &detail);
        }
    }
    tally.finish();
}

#[test]
fn json_web_encryption() {
    run_jwe_file("wycheproof/json_web_encryption_test.json", &[]);
}

#[test]
fn json_web_crypto_jwe() {
    run_jwe_file("wycheproof/json_web_crypto_test.json", &[]);
}

#[test]
fn missing_vectors_fail_under_ci_and_are_reported_otherwise() {
    common::check_missing_vectors_are_never_silent(
        "missing_vectors_fail_under_ci_and_are_reported_otherwise",
        &[],
    );
}
