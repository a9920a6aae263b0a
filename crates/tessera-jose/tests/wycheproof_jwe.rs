//! Wycheproof primitive files for JWE, through the library's JWE code path: the
//! `jwe::primitives` hooks call the very functions `jwe::decrypt` calls after key
//! selection (CEK unwrap for AES-KW, RSA-OAEP and ECDH-ES; content decryption for
//! AES-GCM and AES-CBC-HMAC), and every key is imported from its JWK form.
//!
//! Each file prints one summary line; run with `--nocapture` to see them. Missing
//! vectors fail every test when `CI` is set, and print `SKIPPED` otherwise (see
//! `common::Vectors`).

mod common;

use aws_lc_rs::{digest, hmac};
use serde_json::Value;
use tessera_jose::jwe::{self, Decrypter, primitives};
use tessera_jose::{ContentEncryption, ErrorKind, Jwk, KeyManagement};

use common::{Tally, Vectors, b64, hex, jwk, load, s};

fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .expect("a number")
}

fn groups(doc: &Value) -> &Vec<Value> {
    doc["testGroups"].as_array().unwrap()
}

fn tests(group: &Value) -> &Vec<Value> {
    group["tests"].as_array().unwrap()
}

#[test]
fn aes_gcm_as_a128gcm_a192gcm_a256gcm() {
    let Some(doc) = load("wycheproof/aes_gcm_test.json") else {
        return;
    };
    let mut tally = Tally::new("wycheproof/aes_gcm_test.json");
    for group in groups(&doc) {
        // JWE uses 96-bit IVs and 128-bit tags only.
        if num(&group["ivSize"]) != 96 || num(&group["tagSize"]) != 128 {
            tests(group).iter().for_each(|_| tally.skip());
            continue;
        }
        let enc = match num(&group["keySize"]) {
            128 => ContentEncryption::A128Gcm,
            192 => ContentEncryption::A192Gcm,
            _ => ContentEncryption::A256Gcm,
        };
        for t in tests(group) {
            let [key, iv, aad, ct, tag, msg] =
                ["key", "iv", "aad", "ct", "tag", "msg"].map(|m| hex(s(t, m)));
            let r = primitives::content_decrypt(enc, &key, &iv, &aad, &ct, &tag);
            if t["result"] == "valid" {
                // And the encryption direction gives exactly the vector's output.
                let out = primitives::content_encrypt(enc, &key, &iv, &aad, &msg).unwrap();
                assert_eq!(
                    out,
                    (ct.clone(), tag.clone()),
                    "tcId {}: encryption",
                    t["tcId"]
                );
            }
            check_decryption(&mut tally, t, r, &msg);
        }
    }
    tally.finish();
}

/// Records a decryption: a success must give `want`; a failure must be the single
/// `DecryptionFailed` (no oracle telling padding from MAC from anything else).
fn check_decryption(tally: &mut Tally, t: &Value, r: tessera_jose::Result<Vec<u8>>, want: &[u8]) {
    match &r {
        Ok(pt) => assert_eq!(pt, want, "tcId {}: wrong plaintext", t["tcId"]),
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::DecryptionFailed,
            "tcId {}: {e:?}",
            t["tcId"]
        ),
    }
    tally.record(t, r.is_ok(), &format!("{:?}", r.map(|p| p.len())));
}

#[test]
fn aes_cbc_pkcs5_inside_a128cbc_hs256_a192cbc_hs384_a256cbc_hs512() {
    // Wycheproof gives AES-CBC alone. JWE's composite (RFC 7518 §5.2) puts a MAC key
    // in front of the AES key and checks an HMAC tag first; the tag is computed here
    // over the vector's ciphertext, so the library's MAC check passes and what is left
    // to decide is its CBC decryption and padding check.
    let Some(doc) = load("wycheproof/aes_cbc_pkcs5_test.json") else {
        return;
    };
    let mut tally = Tally::new("wycheproof/aes_cbc_pkcs5_test.json");
    let aad = b"eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4Q0JDLUhTMjU2In0";
    for group in groups(&doc) {
        let (enc, hash) = match num(&group["keySize"]) {
            128 => (ContentEncryption::A128CbcHs256, hmac::HMAC_SHA256),
            192 => (ContentEncryption::A192CbcHs384, hmac::HMAC_SHA384),
            _ => (ContentEncryption::A256CbcHs512, hmac::HMAC_SHA512),
        };
        for t in tests(group) {
            let [key, iv, ct, msg] = ["key", "iv", "ct", "msg"].map(|m| hex(s(t, m)));
            let mac_key = vec![0x6d; key.len()];
            let mut mac = hmac::Context::with_key(&hmac::Key::new(hash, &mac_key));
            mac.update(aad);
            mac.update(&iv);
            mac.update(&ct);
            mac.update(&((aad.len() as u64) * 8).to_be_bytes());
            let tag = mac.sign().as_ref()[..key.len()].to_vec();
            let cek = [mac_key.clone(), key].concat();
            let r = primitives::content_decrypt(enc, &cek, &iv, aad, &ct, &tag);
            if t["result"] == "valid" {
                let out = primitives::content_encrypt(enc, &cek, &iv, aad, &msg).unwrap();
                assert_eq!(
                    out,
                    (ct.clone(), tag.clone()),
                    "tcId {}: encryption",
                    t["tcId"]
                );
            }
            // A wrong tag on the same input fails the same way, before any decryption.
            let mut bad = tag.clone();
            bad[0] ^= 1;
            let e = primitives::content_decrypt(enc, &cek, &iv, aad, &ct, &bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DecryptionFailed);
            check_decryption(&mut tally, t, r, &msg);
        }
    }
    tally.finish();
}

#[test]
fn aes_key_wrap_as_a128kw_a192kw_a256kw() {
    let Some(doc) = load("wycheproof/aes_wrap_test.json") else {
        return;
    };
    let mut tally = Tally::new("wycheproof/aes_wrap_test.json");
    for group in groups(&doc) {
        let alg = match num(&group["keySize"]) {
            128 => KeyManagement::A128KW,
            192 => KeyManagement::A192KW,
            _ => KeyManagement::A256KW,
        };
        for t in tests(group) {
            let [key, ct, msg] = ["key", "ct", "msg"].map(|m| hex(s(t, m)));
            let kek = Jwk::from_secret(&key).unwrap();
            let r = primitives::unwrap_key(&kek, alg, ContentEncryption::A128Gcm, None, &ct);
            if t["result"] == "valid" {
                let w = primitives::wrap_key(&kek, &msg).unwrap();
                assert_eq!(w, ct, "tcId {}: wrapping", t["tcId"]);
            }
            check_decryption(&mut tally, t, r, &msg);
        }
    }
    tally.finish();
}

/// The content encryption whose key is `len` bytes: where a wrapped key of that
/// length can travel in a JWE.
fn enc_for_cek(len: usize) -> Option<ContentEncryption> {
    ContentEncryption::ALL
        .iter()
        .copied()
        .find(|e| e.key_len() == len)
}

/// A compact JWE as a sender that wrapped `cek` into `encrypted_key` would make it:
/// the header names `alg` and `enc`, the content is sealed with `cek`.
fn jwe_with_encrypted_key(
    alg: KeyManagement,
    enc: ContentEncryption,
    encrypted_key: &[u8],
    cek: &[u8],
    plaintext: &[u8],
) -> String {
    let header = b64(format!(
        r#"{{"alg":"{}","enc":"{}"}}"#,
        alg.name(),
        enc.name()
    ));
    let iv_len = match enc {
        ContentEncryption::A128Gcm | ContentEncryption::A192Gcm | ContentEncryption::A256Gcm => 12,
        _ => 16,
    };
    let iv = vec![0x4a; iv_len];
    let (ct, tag) =
        primitives::content_encrypt(enc, cek, &iv, header.as_bytes(), plaintext).unwrap();
    format!(
        "{header}.{}.{}.{}.{}",
        b64(encrypted_key),
        b64(&iv),
        b64(&ct),
        b64(&tag)
    )
}

#[test]
fn aes_key_wrap_vectors_as_jwe_encrypted_keys() {
    // The same file through the public `jwe::decrypt`: each `ct` is the encrypted key
    // of a JWE whose content is sealed with `msg` as the CEK. A valid vector must open
    // to the plaintext; an invalid one must fail as the single DecryptionFailed.
    // Vectors whose key data cannot be a CEK (8 or 384 bytes) are covered by the
    // primitive test above only; invalid ones still run, with an A128GCM body.
    let Some(doc) = load("wycheproof/aes_wrap_test.json") else {
        return;
    };
    let mut tally = Tally::new("wycheproof/aes_wrap_test.json as JWE encrypted keys");
    let plaintext = b"wrapped by Wycheproof";
    for group in groups(&doc) {
        let alg = match num(&group["keySize"]) {
            128 => KeyManagement::A128KW,
            192 => KeyManagement::A192KW,
            _ => KeyManagement::A256KW,
        };
        for t in tests(group) {
            let [key, ct, msg] = ["key", "ct", "msg"].map(|m| hex(s(t, m)));
            let (enc, cek) = match enc_for_cek(msg.len()) {
                Some(enc) => (enc, msg.clone()),
                None if t["result"] == "invalid" => (ContentEncryption::A128Gcm, vec![0x33; 16]),
                None => {
                    tally.skip();
                    continue;
                }
            };
            let kek = Jwk::from_secret(&key).unwrap();
            let token = jwe_with_encrypted_key(alg, enc, &ct, &cek, plaintext);
            let r = jwe::decrypt(&token, &kek, &Decrypter::new()).map(|d| d.into_plaintext());
            check_decryption(&mut tally, t, r, plaintext);
        }
    }
    tally.finish();
}

fn run_oaep(file: &str, alg: KeyManagement) {
    let Some(doc) = load(file) else { return };
    let mut tally = Tally::new(file);
    for group in groups(&doc) {
        let key = jwk(&group["privateKeyJwk"]).unwrap_or_else(|e| panic!("{file}: key: {e:?}"));
        for t in tests(group) {
            // JWE uses OAEP with an empty label.
            if !s(t, "label").is_empty() {
                tally.skip();
                continue;
            }
            let [ct, msg] = ["ct", "msg"].map(|m| hex(s(t, m)));
            let r = primitives::unwrap_key(&key, alg, ContentEncryption::A128Gcm, None, &ct);
            check_decryption(&mut tally, t, r, &msg);
        }
    }
    tally.finish();
}

#[test]
fn rsa_oaep_sha1_as_rsa_oaep() {
    run_oaep(
        "wycheproof/rsa_oaep_2048_sha1_mgf1sha1_test.json",
        KeyManagement::RsaOaep,
    );
}

#[test]
fn rsa_oaep_sha256_as_rsa_oaep_256() {
    run_oaep(
        "wycheproof/rsa_oaep_2048_sha256_mgf1sha256_test.json",
        KeyManagement::RsaOaep256,
    );
}

/// The RFC 7518 §4.6.2 Concat KDF for `ECDH-ES` with A256GCM and no `apu`/`apv`,
/// computed here from Wycheproof's shared secret: one SHA-256 block.
fn concat_kdf_a256gcm(z: &[u8]) -> Vec<u8> {
    let alg_id = b"A256GCM";
    let mut input = 1u32.to_be_bytes().to_vec();
    input.extend_from_slice(z);
    input.extend_from_slice(&(alg_id.len() as u32).to_be_bytes());
    input.extend_from_slice(alg_id);
    input.extend_from_slice(&0u32.to_be_bytes());
    input.extend_from_slice(&0u32.to_be_bytes());
    input.extend_from_slice(&256u32.to_be_bytes());
    digest::digest(&digest::SHA256, &input).as_ref().to_vec()
}

/// ECDH files with JWK keys: the library agrees with `public` as a sender's `epk`
/// and derives the `ECDH-ES` A256GCM key, which must be the KDF of Wycheproof's Z.
fn run_ecdh_jwk(file: &str) {
    let Some(doc) = load(file) else { return };
    let mut tally = Tally::new(file);
    for group in groups(&doc) {
        for t in tests(group) {
            let private =
                jwk(&t["private"]).unwrap_or_else(|e| panic!("tcId {}: {e:?}", t["tcId"]));
            let r = jwk(&t["public"]).and_then(|public| {
                primitives::unwrap_key(
                    &private,
                    KeyManagement::EcdhEs,
                    ContentEncryption::A256Gcm,
                    Some(&public),
                    &[],
                )
            });
            if let Ok(derived) = &r {
                let want = concat_kdf_a256gcm(&hex(s(t, "shared")));
                assert_eq!(derived, &want, "tcId {}: derived key", t["tcId"]);
            }
            tally.record(t, r.is_ok(), &format!("{:?}", r.as_ref().map(|k| k.len())));
        }
    }
    tally.finish();
}

#[test]
fn x25519_jwk_as_ecdh_es() {
    run_ecdh_jwk("wycheproof/x25519_jwk_test.json");
}

#[test]
fn ecdh_p256_webcrypto_as_ecdh_es() {
    run_ecdh_jwk("wycheproof/ecdh_secp256r1_webcrypto_test.json");
}

#[test]
fn ecdh_p384_webcrypto_as_ecdh_es() {
    run_ecdh_jwk("wycheproof/ecdh_secp384r1_webcrypto_test.json");
}

#[test]
fn ecdh_p521_webcrypto_as_ecdh_es() {
    run_ecdh_jwk("wycheproof/ecdh_secp521r1_webcrypto_test.json");
}

#[test]
fn x448_keys_are_refused_at_import() {
    // X448 is not supported: every key of the file must be refused, none half-parsed.
    let Some(doc) = load("wycheproof/x448_jwk_test.json") else {
        return;
    };
    let mut n = 0;
    for group in groups(&doc) {
        for t in tests(group) {
            for member in ["public", "private"] {
                if t[member]["crv"] == "X448" {
                    let err = jwk(&t[member]).unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::InvalidKey, "tcId {}", t["tcId"]);
                    n += 1;
                }
            }
        }
    }
    println!("wycheproof/x448_jwk_test.json: {n} X448 keys refused at import (X448 unsupported)");
    assert!(n > 0);
}

#[test]
fn rsa1_5_cannot_even_be_named() {
    // rsa_pkcs1_2048_test.json tests RSA1_5 decryption, which is refused by design:
    // nothing of it can run, so check the refusal instead.
    assert!("RSA1_5".parse::<KeyManagement>().is_err());
    let Some(doc) = load("wycheproof/rsa_pkcs1_2048_test.json") else {
        return;
    };
    let key = jwk(&groups(&doc)[0]["privateKeyJwk"]).unwrap();
    // Its key is pinned to RSA1_5, so it may not serve RSA-OAEP either.
    let opts =
        tessera_jose::jwe::EncryptOptions::new(KeyManagement::RsaOaep, ContentEncryption::A128Gcm);
    let err = tessera_jose::jwe::encrypt(b"x", &key.to_public().unwrap(), &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);
}

#[test]
fn missing_vectors_fail_under_ci_and_are_reported_otherwise() {
    common::check_missing_vectors_are_never_silent(
        "missing_vectors_fail_under_ci_and_are_reported_otherwise",
        &["a_missing_file_beside_present_ones_fails_under_ci"],
    );
}

#[test]
fn a_missing_file_beside_present_ones_fails_under_ci() {
    // The folder is there, one file is not (a partial copy of the vectors).
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    assert!(root.is_dir());
    let vectors = Vectors::new(root.clone(), true);
    let panic = std::panic::catch_unwind(|| vectors.load("wycheproof/no_such_test.json"))
        .expect_err("CI is set: a missing file must fail the test");
    let message = panic
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    let path = root
        .canonicalize()
        .unwrap()
        .join("wycheproof/no_such_test.json");
    assert!(
        message.contains(&format!(
            "CI is set and the test vectors are missing: {} not found",
            path.display()
        )),
        "{message}"
    );
}
