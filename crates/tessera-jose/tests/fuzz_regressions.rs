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
