//! JWE decryption.
//!
//! The first byte picks a mode:
//! - 0: the rest is a compact JWE, decrypted with a key set holding a key for every
//!   algorithm (with and without `zip` allowed); it must never panic, and a `zip`
//!   plaintext must stay within its bound;
//! - 1: the next two bytes pick `alg` and `enc`, the rest is a plaintext: it is
//!   encrypted, must decrypt to itself, and one changed byte must make it fail.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tessera_jose::jwe::{self, Decrypter, EncryptOptions};
use tessera_jose::{ContentEncryption, Curve, Jwk, JwkSet, KeyManagement};

const ZIP_LIMIT: usize = 64 * 1024;

static KEYS: LazyLock<JwkSet> = LazyLock::new(|| {
    let mut keys: Vec<Jwk> = [16, 24, 32, 48, 64]
        .iter()
        .map(|&n| {
            let secret: Vec<u8> = (0..n).map(|i| i as u8).collect();
            Jwk::from_secret(secret)
                .expect("secret")
                .with_kid(format!("o{n}"))
        })
        .collect();
    keys.push(Jwk::generate_rsa(2048).expect("rsa").with_kid("rsa"));
    keys.push(
        Jwk::generate_curve(Curve::P256)
            .expect("p256")
            .with_kid("p256"),
    );
    keys.push(
        Jwk::generate_curve(Curve::X25519)
            .expect("x25519")
            .with_kid("x25519"),
    );
    JwkSet::new(keys)
});

fn key(kid: &str) -> &'static Jwk {
    KEYS.keys()
        .iter()
        .find(|k| k.kid() == Some(kid))
        .expect("a key with this kid")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        let _ = jwe::decrypt(token, &*KEYS, &Decrypter::new());
        if let Ok(d) = jwe::decrypt(token, &*KEYS, &Decrypter::new().allow_zip(ZIP_LIMIT)) {
            assert!(
                d.plaintext().len() <= ZIP_LIMIT || !d.header().zip,
                "zip bound broken"
            );
        }
        return;
    }
    let [a, e, ref plaintext @ ..] = *rest else {
        return;
    };
    let alg = KeyManagement::ALL[usize::from(a) % KeyManagement::ALL.len()];
    let enc = ContentEncryption::ALL[usize::from(e) % ContentEncryption::ALL.len()];
    let kid = match alg {
        KeyManagement::Dir => format!("o{}", enc.key_len()),
        KeyManagement::A128KW => "o16".into(),
        KeyManagement::A192KW => "o24".into(),
        KeyManagement::A256KW => "o32".into(),
        KeyManagement::RsaOaep | KeyManagement::RsaOaep256 => "rsa".into(),
        _ if a & 0x80 == 0 => "p256".into(),
        _ => "x25519".into(),
    };
    let private = key(&kid);
    let public = match private.key_type() {
        tessera_jose::KeyType::Oct => private.clone(),
        _ => private.to_public().expect("public half"),
    };
    let mut opts = EncryptOptions::new(alg, enc).with_kid(kid);
    let zip = e & 0x80 != 0;
    if zip {
        opts = opts.with_zip();
    }
    let token = jwe::encrypt(plaintext, &public, &opts).expect("encrypt");
    let policy = Decrypter::new().max_size(usize::MAX).allow_zip(usize::MAX);
    let opened = jwe::decrypt(&token, &*KEYS, &policy).expect("round trip");
    assert_eq!(opened.plaintext(), plaintext);
    assert_eq!(
        (
            opened.header().alg,
            opened.header().enc,
            opened.header().zip
        ),
        (alg, enc, zip)
    );
    let mut bytes = token.into_bytes();
    let at = (usize::from(a) << 8 | usize::from(e)) * 7919 % bytes.len();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    if let Ok(tampered) = String::from_utf8(bytes) {
        assert!(
            jwe::decrypt(&tampered, &*KEYS, &policy).is_err(),
            "a changed byte decrypted"
        );
    }
});
