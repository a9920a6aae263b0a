//! RFC 7520 (JOSE cookbook) JWS and JWK examples, plus the RFC 8037 Ed25519 example
//! and the RFC 7638 thumbprint example, through the public API only.
//!
//! Missing vectors fail every test that reads them when `CI` is set, and print
//! `SKIPPED` otherwise (see `common::Vectors`).

mod common;

use serde_json::{Value, json};
use tessera_jose::jws::{self, Header, Policy};
use tessera_jose::{Algorithm, ContentEncryption, ErrorKind, Jwk, JwkSet};

use common::{b64, jwk, load, load_dir, s, unb64};

/// The JWS files, with the cookbook's Ed25519 file (RFC 8037 A.4) after them.
fn jws_files() -> Option<Vec<(String, Value)>> {
    let mut files = load_dir("rfc7520/jws")?;
    files.push((
        "curve25519/jws.json".into(),
        load("jose-cookbook-extra/curve25519/jws.json")?,
    ));
    Some(files)
}

/// One signature of a JWS file: its key, algorithm, protected header and signature.
struct Sig {
    key: Value,
    alg: Algorithm,
    protected_b64: String,
    signature: Vec<u8>,
}

fn signatures(file: &Value) -> Vec<Sig> {
    let keys: Vec<Value> = match &file["input"]["key"] {
        Value::Array(a) => a.clone(),
        k => vec![k.clone()],
    };
    let sigs = file["output"]["json"]["signatures"]
        .as_array()
        .expect("signatures");
    assert_eq!(keys.len(), sigs.len());
    keys.into_iter()
        .zip(sigs)
        .map(|(key, sig)| {
            let protected_b64 = sig["protected"].as_str().unwrap_or("").to_owned();
            let protected: Value = if protected_b64.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(&unb64(&protected_b64)).expect("protected header")
            };
            let alg = protected["alg"]
                .as_str()
                .or_else(|| sig["header"]["alg"].as_str())
                .expect("alg")
                .parse()
                .expect("a supported alg");
            Sig {
                key,
                alg,
                protected_b64,
                signature: unb64(s(sig, "signature")),
            }
        })
        .collect()
}

fn payload_b64(file: &Value) -> String {
    match file["output"]["json"]["payload"].as_str() {
        Some(p) => p.to_owned(),
        // 4.5: detached content, the payload travels separately.
        None => b64(s(&file["input"], "payload")),
    }
}

#[test]
fn every_jws_signature_verifies_through_the_signature_primitive() {
    let Some(files) = jws_files() else { return };
    let mut count = 0;
    for (name, file) in &files {
        let payload = payload_b64(file);
        assert_eq!(
            unb64(&payload),
            s(&file["input"], "payload").as_bytes(),
            "{name}"
        );
        for sig in signatures(file) {
            let key = jwk(&sig.key).unwrap_or_else(|e| panic!("{name}: key: {e:?}"));
            let input = format!("{}.{payload}", sig.protected_b64);
            jws::verify_detached(sig.alg, &key, input.as_bytes(), &sig.signature)
                .unwrap_or_else(|e| panic!("{name} {}: {e:?}", sig.alg));
            if key.key_type() != tessera_jose::KeyType::Oct {
                let public = key.to_public().unwrap();
                jws::verify_detached(sig.alg, &public, input.as_bytes(), &sig.signature)
                    .unwrap_or_else(|e| panic!("{name} {} public: {e:?}", sig.alg));
            }
            // One flipped bit in the signature, the payload or the header is refused.
            let mut bad = sig.signature.clone();
            bad[sig.signature.len() / 2] ^= 1;
            let err = jws::verify_detached(sig.alg, &key, input.as_bytes(), &bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidSignature, "{name}");
            let other = format!("{}.{}", sig.protected_b64, b64("It's a dangerous business"));
            let err =
                jws::verify_detached(sig.alg, &key, other.as_bytes(), &sig.signature).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidSignature, "{name}");
            count += 1;
        }
    }
    // 4.1-4.7 one signature each, 4.8 three, Ed25519 one.
    assert_eq!(count, 11);
    println!("rfc7520 jws: {count} signatures verified");
}

#[test]
fn every_compact_jws_verifies_and_yields_the_payload() {
    let Some(files) = jws_files() else { return };
    let mut count = 0;
    for (name, file) in &files {
        let Some(compact) = file["output"]["compact"].as_str() else {
            continue;
        };
        let key = jwk(&file["input"]["key"]).unwrap();
        let want = s(&file["input"], "payload").as_bytes();
        let alg: Algorithm = s(&file["input"], "alg").parse().unwrap();
        if name.starts_with("4_5") {
            // Detached content: the compact form's payload is empty, so the token alone
            // does not verify; with the payload put back it does.
            assert_eq!(
                jws::verify(compact, &key, &Policy::new())
                    .unwrap_err()
                    .kind(),
                ErrorKind::InvalidSignature
            );
            let (h, rest) = compact.split_once("..").unwrap();
            let attached = format!("{h}.{}.{rest}", b64(want));
            let v = jws::verify(&attached, &key, &Policy::new()).unwrap();
            assert_eq!(v.payload(), want);
            count += 1;
            continue;
        }
        let v =
            jws::verify(compact, &key, &Policy::new()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(v.payload(), want, "{name}");
        assert_eq!(v.header().alg, alg, "{name}");
        assert_eq!(
            v.header().kid.as_deref(),
            file["input"]["key"]["kid"].as_str(),
            "{name}"
        );
        // The flattened JSON form carries the same three parts.
        let flat = &file["output"]["json_flat"];
        let from_flat = format!(
            "{}.{}.{}",
            s(flat, "protected"),
            s(flat, "payload"),
            s(flat, "signature")
        );
        assert_eq!(from_flat, compact, "{name}");
        // With the policy pinned to another algorithm of the same family: refused.
        let other = match alg {
            Algorithm::HS256 => Algorithm::HS512,
            Algorithm::EdDSA => Algorithm::ES256,
            _ => Algorithm::RS512,
        };
        let err = jws::verify(compact, &key, &Policy::new().algorithms(&[other])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed, "{name}");
        if key.is_private() && key.key_type() != tessera_jose::KeyType::Oct {
            let v = jws::verify(compact, &key.to_public().unwrap(), &Policy::new()).unwrap();
            assert_eq!(v.payload(), want, "{name}");
        }
        count += 1;
    }
    assert_eq!(count, 6, "4.1-4.5 and Ed25519 have a compact form");
}

#[test]
fn a_jwk_set_of_every_cookbook_key_selects_by_kid_and_family() {
    let Some(files) = jws_files() else { return };
    // 4.1 (RSA) and 4.3 (EC P-521) share the kid bilbo.baggins: the family decides.
    let mut keys: Vec<Jwk> = Vec::new();
    for name in [
        "3_3.rsa_public_key.json",
        "3_1.ec_public_key.json",
        "3_5.symmetric_key_mac_computation.json",
    ] {
        keys.push(jwk(&load(&format!("rfc7520/jwk/{name}")).unwrap()).unwrap());
    }
    let set = JwkSet::new(keys);
    let mut count = 0;
    for (name, file) in &files {
        let Some(compact) = file["output"]["compact"].as_str() else {
            continue;
        };
        if name.starts_with("4_5") || name.starts_with("curve") {
            continue;
        }
        let v =
            jws::verify(compact, &set, &Policy::new()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(v.payload(), s(&file["input"], "payload").as_bytes());
        count += 1;
    }
    assert_eq!(count, 4);
}

#[test]
fn deterministic_algorithms_re_sign_byte_for_byte() {
    let Some(files) = jws_files() else { return };
    let mut count = 0;
    for (name, file) in &files {
        if file["reproducible"] != json!(true) || file["input"]["key"].is_array() {
            continue;
        }
        let signing = &file["signing"];
        let Some(protected) = signing.get("protected") else {
            continue; // 4.7: no protected header at all, so no compact form to make.
        };
        let key = jwk(&file["input"]["key"]).unwrap();
        let mut header = Header::new(s(protected, "alg").parse().unwrap());
        if let Some(kid) = protected["kid"].as_str() {
            header = header.with_kid(kid);
        }
        let token = jws::sign(&header, s(&file["input"], "payload").as_bytes(), &key)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let (h, rest) = token.split_once('.').unwrap();
        let (p, sig) = rest.split_once('.').unwrap();
        assert_eq!(h, s(signing, "protected_b64u"), "{name}: header bytes");
        assert_eq!(
            format!("{h}.{p}"),
            s(signing, "sig-input"),
            "{name}: signing input"
        );
        assert_eq!(sig, s(signing, "sig"), "{name}: signature");
        if let Some(compact) = file["output"]["compact"].as_str()
            && !name.starts_with("4_5")
        {
            assert_eq!(token, compact, "{name}");
        }
        count += 1;
    }
    // 4.1 RS256, 4.4, 4.5, 4.6 HS256, Ed25519.
    assert_eq!(count, 5);
}

/// The RFC 7638 §3 canonical form, built here independently of the library.
fn reference_thumbprint(v: &Value) -> String {
    let members: &[&str] = match s(v, "kty") {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "oct" => &["k", "kty"],
        other => panic!("kty {other}"),
    };
    let canonical: serde_json::Map<String, Value> = members
        .iter()
        .map(|m| ((*m).to_owned(), v[*m].clone()))
        .collect();
    let text = serde_json::to_string(&canonical).unwrap();
    b64(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        text.as_bytes(),
    ))
}

#[test]
fn jwk_examples_parse_serialize_and_thumbprint() {
    let Some(files) = load_dir("rfc7520/jwk") else {
        return;
    };
    assert_eq!(files.len(), 6);
    for (name, v) in &files {
        let key = jwk(v).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let back: Value = serde_json::from_str(&key.to_json()).unwrap();
        assert_eq!(&back, v, "{name}: members differ after a round trip");
        assert_eq!(key.kid(), v["kid"].as_str(), "{name}");
        assert_eq!(key.key_use(), v["use"].as_str(), "{name}");
        assert_eq!(key.alg(), v["alg"].as_str(), "{name}");
        assert_eq!(key.thumbprint(), reference_thumbprint(v), "{name}");
        assert_eq!(
            key.is_private(),
            v.get("d").is_some() || v.get("k").is_some(),
            "{name}"
        );
        // Parsing our own output gives the same key.
        assert_eq!(
            Jwk::from_json(key.to_json()).unwrap().to_json(),
            key.to_json()
        );
        match key.to_public() {
            Ok(public) => {
                assert!(!public.is_private(), "{name}");
                assert_eq!(public.thumbprint(), key.thumbprint(), "{name}");
                let pv: Value = serde_json::from_str(&public.to_json()).unwrap();
                for private_member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                    assert!(
                        pv.get(private_member).is_none(),
                        "{name}: {private_member} leaked"
                    );
                }
            }
            Err(e) => {
                assert_eq!(v["kty"], "oct", "{name}");
                assert_eq!(e.kind(), ErrorKind::InvalidKey);
            }
        }
    }
    let file = |n: &str| {
        files
            .iter()
            .find(|(f, _)| f.starts_with(n))
            .unwrap()
            .1
            .clone()
    };
    // The private keys' public halves are exactly the published public keys.
    for (private, public) in [("3_2", "3_1"), ("3_4", "3_3")] {
        let derived: Value =
            serde_json::from_str(&jwk(&file(private)).unwrap().to_public().unwrap().to_json())
                .unwrap();
        assert_eq!(derived, file(public), "{private} -> {public}");
    }
    // The key sizes are what the RFC says.
    assert_eq!(jwk(&file("3_3")).unwrap().rsa_bits(), Some(2048));
    assert_eq!(
        jwk(&file("3_1")).unwrap().curve(),
        Some(tessera_jose::Curve::P521)
    );
    assert_eq!(jwk(&file("3_5")).unwrap().secret_len(), Some(32));
}

#[test]
fn rfc7638_and_rfc8037_published_thumbprints() {
    // RFC 7638 §3.1: the thumbprint ignores kid and alg.
    let rsa = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    assert_eq!(
        jwk(&rsa).unwrap().thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    // RFC 8037 A.3.
    let ed =
        json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    assert_eq!(
        jwk(&ed).unwrap().thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn private_and_public_jwks_survive_pem_round_trips() {
    let Some(files) = load_dir("rfc7520/jwk") else {
        return;
    };
    for (name, v) in files.iter().filter(|(_, v)| v["kty"] != "oct") {
        let key = jwk(v).unwrap();
        let pem = key.to_pem().unwrap();
        let back = Jwk::from_pem(&pem).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(back.thumbprint(), key.thumbprint(), "{name}");
        assert_eq!(back.is_private(), key.is_private(), "{name}");
    }
}

// ----- JWE (RFC 7520 §5, the cookbook's X25519 file) and nested JWT (§6) -------------

/// What the library does with each JWE file's compact form.
enum Expect {
    /// Decrypts to `input.plaintext` with the default policy.
    Decrypts,
    /// Decrypts only with `zip` enabled; refused by default.
    DecryptsWithZip,
    /// Refused with this kind, whatever the key.
    Refused(ErrorKind),
}

fn jwe_expectation(name: &str) -> Option<Expect> {
    Some(match &name[..name.find('.')?] {
        // RSA1_5 is refused by design (Bleichenbacher-style padding oracles).
        "5_1" => Expect::Refused(ErrorKind::AlgorithmNotAllowed),
        // PBES2 and AES-GCM key wrap are not implemented: unknown algorithm names.
        "5_3" | "5_7" => Expect::Refused(ErrorKind::UnsupportedAlgorithm),
        "5_9" => Expect::DecryptsWithZip,
        "5_2" | "5_4" | "5_5" | "5_6" | "5_8" | "curve25519/ecdh-es" => Expect::Decrypts,
        // 5.10-5.13 exist in JSON serialization only, which is not supported.
        _ => return None,
    })
}

fn jwe_files() -> Option<Vec<(String, Value)>> {
    let mut files = load_dir("rfc7520/jwe")?;
    files.push((
        "curve25519/ecdh-es.json".into(),
        load("jose-cookbook-extra/curve25519/ecdh-es.json")?,
    ));
    Some(files)
}

/// Another key of the same shape as `key`, to check that a wrong key fails.
fn stranger_like(key: &Jwk) -> Jwk {
    let k = match key.key_type() {
        tessera_jose::KeyType::Oct => Jwk::generate_oct(key.secret_len().unwrap()).unwrap(),
        tessera_jose::KeyType::Rsa => Jwk::generate_rsa(2048).unwrap(),
        _ => Jwk::generate_curve(key.curve().unwrap()).unwrap(),
    };
    match key.kid() {
        Some(kid) => k.with_kid(kid),
        None => k,
    }
}

#[test]
fn jwe_examples_decrypt_or_are_refused_with_the_documented_kind() {
    use tessera_jose::jwe::{self, Decrypter, EncryptOptions};
    let Some(files) = jwe_files() else { return };
    let (mut decrypted, mut refused) = (0, 0);
    for (name, file) in &files {
        let Some(expect) = jwe_expectation(name) else {
            assert!(
                file["output"].get("compact").is_none(),
                "{name} has a compact form"
            );
            continue;
        };
        let compact = s(&file["output"], "compact");
        let plaintext = s(&file["input"], "plaintext").as_bytes();
        // The flattened JSON form carries the same five parts.
        let flat = &file["output"]["json_flat"];
        let parts: Vec<&str> = ["protected", "encrypted_key", "iv", "ciphertext", "tag"]
            .iter()
            .map(|m| flat[*m].as_str().unwrap_or(""))
            .collect();
        assert_eq!(parts.join("."), compact, "{name}");
        let key = match file["input"].get("key") {
            Some(k) => jwk(k).unwrap_or_else(|e| panic!("{name}: {e:?}")),
            None => Jwk::from_secret(s(&file["input"], "pwd")).unwrap(), // 5.3: a password
        };
        let key_alg = file["input"]["alg"].as_str().unwrap();
        match expect {
            Expect::Refused(kind) => {
                let err = jwe::decrypt(compact, &key, &Decrypter::new()).unwrap_err();
                assert_eq!(err.kind(), kind, "{name}: {err:?}");
                // Naming the algorithm is refused the same way.
                assert!(
                    key_alg.parse::<tessera_jose::KeyManagement>().is_err(),
                    "{name}"
                );
                refused += 1;
            }
            Expect::Decrypts | Expect::DecryptsWithZip => {
                let zip = matches!(expect, Expect::DecryptsWithZip);
                if zip {
                    let err = jwe::decrypt(compact, &key, &Decrypter::new()).unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::UnsupportedHeader, "{name}");
                }
                let d = if zip {
                    Decrypter::new().allow_zip(4096)
                } else {
                    Decrypter::new()
                };
                let got =
                    jwe::decrypt(compact, &key, &d).unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert_eq!(got.plaintext(), plaintext, "{name}");
                let protected: Value = serde_json::from_slice(&unb64(s(
                    &file["encrypting_content"],
                    "protected_b64u",
                )))
                .unwrap();
                assert_eq!(got.header().alg.name(), s(&protected, "alg"), "{name}");
                assert_eq!(got.header().enc.name(), s(&protected, "enc"), "{name}");
                assert_eq!(
                    got.header().kid.as_deref(),
                    protected["kid"].as_str(),
                    "{name}"
                );
                assert_eq!(got.header().zip, zip, "{name}");
                // The wrong key of the same kind, and one changed ciphertext byte, fail alike.
                let err = jwe::decrypt(compact, &stranger_like(&key), &d).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{name}: wrong key");
                let mut p = parts.clone();
                let mut ct = unb64(p[3]);
                ct[0] ^= 1;
                let ct = b64(&ct);
                p[3] = &ct;
                let err = jwe::decrypt(&p.join("."), &key, &d).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{name}: tampered");
                // And our own encryption to the same key, with the same algorithms, opens.
                let mut opts = EncryptOptions::new(got.header().alg, got.header().enc);
                if zip {
                    opts = opts.with_zip();
                }
                let public = key.to_public().unwrap_or_else(|_| key.clone());
                let ours = jwe::encrypt(plaintext, &public, &opts)
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert_eq!(
                    jwe::decrypt(&ours, &key, &d).unwrap().plaintext(),
                    plaintext,
                    "{name}"
                );
                decrypted += 1;
            }
        }
    }
    // 5.2, 5.4, 5.5, 5.6, 5.8, 5.9 and X25519 decrypt; 5.1, 5.3 and 5.7 are refused.
    assert_eq!((decrypted, refused), (7, 3));
    println!("rfc7520 jwe: {decrypted} decrypted, {refused} refused as documented");
}

#[test]
fn nested_jwt_decrypts_then_verifies() {
    use tessera_jose::jwe::{self, Decrypter};
    use tessera_jose::jwt::{self, Claims, Validation};
    let Some(file) = load("rfc7520/6.nesting_signatures_and_encryption.json") else {
        return;
    };
    let (sign, encrypt) = (&file["sign"], &file["encrypt"]);
    let dec_key = jwk(&encrypt["input"]["key"]).unwrap();
    let sig_key = jwk(&sign["input"]["key"]).unwrap().to_public().unwrap();
    let token = s(&encrypt["output"], "compact");
    // Step by step: the JWE holds exactly the cookbook's JWS, which verifies.
    let outer = jwe::decrypt(token, &dec_key, &Decrypter::new()).unwrap();
    assert_eq!(outer.header().cty.as_deref(), Some("JWT"));
    assert_eq!(outer.plaintext(), s(&sign["output"], "compact").as_bytes());
    let inner = jws::verify(
        std::str::from_utf8(outer.plaintext()).unwrap(),
        &sig_key,
        &Policy::new(),
    )
    .unwrap();
    assert_eq!(inner.payload(), s(&sign["input"], "payload").as_bytes());
    assert_eq!(inner.header().alg, Algorithm::PS256);
    assert_eq!(inner.header().typ.as_deref(), Some("JWT"));
    // In one call, with the claims validated at a time when the token was valid.
    let v = Validation::new()
        .issuer("hobbiton.example")
        .at(1_300_819_000);
    let data =
        jwt::decode_nested::<Claims>(token, &dec_key, &Decrypter::new(), &sig_key, &v).unwrap();
    assert_eq!(data.claims.iss.as_deref(), Some("hobbiton.example"));
    assert_eq!(
        data.claims.custom["http://example.com/is_root"],
        json!(true)
    );
    // After exp it is expired; with the wrong verification key it does not verify.
    let late = Validation::new().at(1_300_819_380);
    let err = jwt::decode_nested::<Claims>(token, &dec_key, &Decrypter::new(), &sig_key, &late)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Expired);
    let other = jwk(&load("rfc7520/jwk/3_3.rsa_public_key.json").unwrap()).unwrap();
    let err =
        jwt::decode_nested::<Claims>(token, &dec_key, &Decrypter::new(), &other, &v).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::InvalidSignature | ErrorKind::KeyNotFound
        ),
        "{err:?}"
    );
}

#[test]
fn rfc7518_appendix_c_ecdh_es_with_apu_and_apv() {
    use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use tessera_jose::jwe::{self, Decrypter};
    // RFC 7518 Appendix C: Alice's ephemeral key, Bob's key, apu "Alice", apv "Bob";
    // the Concat KDF gives the A128GCM key VqqN6vgjbSBcIijNcacQGg. A JWE made with that
    // key must open with Bob's key, and only if apu and apv are taken into account.
    let bob = jwk(&json!({
        "kty": "EC", "crv": "P-256",
        "x": "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ",
        "y": "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck",
        "d": "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw"
    }))
    .unwrap();
    let epk = json!({
        "kty": "EC", "crv": "P-256",
        "x": "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0",
        "y": "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps"
    });
    let cek = unb64("VqqN6vgjbSBcIijNcacQGg");
    let seal = |header: &Value| {
        let h = b64(header.to_string());
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).unwrap());
        let mut buf = b"Alice to Bob".to_vec();
        let iv = [1u8; 12];
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(h.as_bytes()),
                &mut buf,
            )
            .unwrap();
        format!("{h}..{}.{}.{}", b64(iv), b64(&buf), b64(tag.as_ref()))
    };
    let header =
        json!({"alg": "ECDH-ES", "enc": "A128GCM", "apu": "QWxpY2U", "apv": "Qm9i", "epk": epk});
    let opened = jwe::decrypt(&seal(&header), &bob, &Decrypter::new()).unwrap();
    assert_eq!(opened.plaintext(), b"Alice to Bob");
    for drop in ["apu", "apv"] {
        let mut h = header.clone();
        h.as_object_mut().unwrap().remove(drop);
        let err = jwe::decrypt(&seal(&h), &bob, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "without {drop}");
    }
    // apu in non-canonical base64url is malformed, not silently reinterpreted.
    let mut h = header.clone();
    h["apu"] = json!("QWxpY2U=");
    let err = jwe::decrypt(&seal(&h), &bob, &Decrypter::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
}

#[test]
fn jwe_content_encryption_and_key_wrap_match_the_cookbook_byte_for_byte() {
    // With the cookbook's generated CEK and IV injected, the library's content
    // encryption gives exactly the published ciphertext and tag (RFC 7516 §5.1 step 14
    // for the AAD), and its AES key wrap exactly the published encrypted key.
    use tessera_jose::jwe::primitives;
    let Some(mut files) = load_dir("rfc7520/jwe") else {
        return;
    };
    let Some(nested) = load("rfc7520/6.nesting_signatures_and_encryption.json") else {
        return;
    };
    files.push(("6.nesting".into(), nested["encrypt"].clone()));
    let (mut encrypted, mut wrapped) = (0, 0);
    for (name, file) in &files {
        let content = &file["encrypting_content"];
        let protected_b64 = content["protected_b64u"].as_str().unwrap_or("");
        let header: Value = if protected_b64.is_empty() {
            content["unprotected"].clone()
        } else {
            serde_json::from_slice(&unb64(protected_b64)).unwrap()
        };
        let enc: ContentEncryption = s(&header, "enc").parse().unwrap();
        let generated = &file["generated"];
        let cek = match (
            generated["cek"].as_str(),
            file["encrypting_key"]["cek"].as_str(),
        ) {
            (Some(c), _) | (None, Some(c)) => unb64(c),
            // 5.6: dir, the key is the CEK.
            (None, None) => unb64(s(&file["input"]["key"], "k")),
        };
        let iv = unb64(s(generated, "iv"));
        let aad = match generated["aad_b64u"].as_str() {
            Some(extra) => format!("{protected_b64}.{extra}"),
            None => protected_b64.to_owned(),
        };
        let plaintext = match generated["plaintext_c"].as_str() {
            Some(compressed) => unb64(compressed), // 5.9: compressed before encryption
            None => s(&file["input"], "plaintext").as_bytes().to_vec(),
        };
        let (ct, tag) = primitives::content_encrypt(enc, &cek, &iv, aad.as_bytes(), &plaintext)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(b64(&ct), s(content, "ciphertext"), "{name}: ciphertext");
        assert_eq!(b64(&tag), s(content, "tag"), "{name}: tag");
        encrypted += 1;
        if file["input"]["alg"] == "A128KW" {
            let kek = jwk(&file["input"]["key"]).unwrap();
            let w = primitives::wrap_key(&kek, &cek).unwrap();
            assert_eq!(
                b64(&w),
                s(&file["encrypting_key"], "encrypted_key"),
                "{name}: wrapped CEK"
            );
            wrapped += 1;
        }
    }
    // Every RFC 7520 JWE (5.1-5.13) and the nested JWT; 5.8-5.12 use A128KW.
    assert_eq!((encrypted, wrapped), (14, 5));
}

#[test]
fn missing_vectors_fail_under_ci_and_are_reported_otherwise() {
    common::check_missing_vectors_are_never_silent(
        "missing_vectors_fail_under_ci_and_are_reported_otherwise",
        &[
            "rfc7638_and_rfc8037_published_thumbprints",
            "rfc7518_appendix_c_ecdh_es_with_apu_and_apv",
        ],
    );
}
