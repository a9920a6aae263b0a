//! JWK and JWK Set parsing, and PEM/DER import.
//!
//! The first byte picks the parser: a JWK, a JWK Set (JSON), PEM text, PKCS#8 DER or
//! SPKI DER. Whatever parses must survive serialization: written out and read back,
//! it is the same key (same thumbprint), and its public half parses too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_jose::{Jwk, JwkSet, KeyType};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => {
            if let Ok(key) = Jwk::from_json(rest) {
                round_trip(&key);
            }
        }
        1 => {
            if let Ok(set) = JwkSet::from_json(rest) {
                for key in set.keys() {
                    round_trip(key);
                }
                let again = JwkSet::from_json(set.to_json()).expect("a set re-parses");
                assert_eq!(again.keys().len(), set.keys().len());
            }
        }
        2 => {
            if let Ok(text) = std::str::from_utf8(rest)
                && let Ok(key) = Jwk::from_pem(text)
            {
                round_trip(&key);
            }
        }
        3 => {
            if let Ok(key) = Jwk::from_pkcs8_der(rest) {
                round_trip(&key);
            }
        }
        _ => {
            if let Ok(key) = Jwk::from_spki_der(rest) {
                round_trip(&key);
            }
        }
    }
});

fn round_trip(key: &Jwk) {
    let thumbprint = key.thumbprint();
    let again = Jwk::from_json(key.to_json()).expect("a parsed key re-parses from its JSON");
    assert_eq!(again.thumbprint(), thumbprint);
    assert_eq!(again.is_private(), key.is_private());
    assert_eq!(again.kid(), key.kid());
    if key.key_type() == KeyType::Oct {
        return;
    }
    let public = key
        .to_public()
        .expect("an asymmetric key has a public half");
    assert!(!public.is_private());
    assert_eq!(public.thumbprint(), thumbprint);
    let spki = public.to_spki_der().expect("SPKI export");
    let from_spki = Jwk::from_spki_der(&spki).expect("SPKI re-import");
    assert_eq!(from_spki.thumbprint(), thumbprint);
    if key.is_private() {
        let der = key.to_pkcs8_der().expect("PKCS#8 export");
        let from_der = Jwk::from_pkcs8_der(&der).expect("PKCS#8 re-import");
        assert_eq!(from_der.thumbprint(), thumbprint);
        let pem = key.to_pem().expect("PEM export");
        assert_eq!(
            Jwk::from_pem(&pem).expect("PEM re-import").thumbprint(),
            thumbprint
        );
    }
}
