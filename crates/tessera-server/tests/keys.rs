//! The signing algorithm is checked by its name: `signing_key_kind` says what key an
//! algorithm needs without generating one, and `generate` makes exactly that key.

use tessera_jose::{Algorithm, KeyType};
use tessera_server::keys::{self, SigningKeyKind};

#[test]
fn the_signing_algorithm_is_checked_by_name_and_matches_the_key_it_generates() {
    let mut publishable = 0;
    for &alg in Algorithm::ALL {
        match keys::signing_key_kind(alg) {
            Ok(kind) => {
                publishable += 1;
                let key = keys::generate(alg).unwrap();
                match kind {
                    SigningKeyKind::Curve(crv) => assert_eq!(key.curve(), Some(crv), "{alg:?}"),
                    SigningKeyKind::Rsa2048 => {
                        assert_eq!(key.key_type(), KeyType::Rsa, "{alg:?}");
                        assert_eq!(key.rsa_bits(), Some(2048), "{alg:?}");
                    }
                    _ => unreachable!("a new kind of signing key: test it"),
                }
            }
            Err(e) => {
                // Only symmetric algorithms (and `none`) cannot be published.
                assert!(
                    alg.name().starts_with("HS") || alg.name() == "none",
                    "{alg:?}: {e}"
                );
                assert!(keys::generate(alg).is_err(), "{alg:?}");
            }
        }
    }
    assert!(publishable >= 8, "{publishable}");
}
