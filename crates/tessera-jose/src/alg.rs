//! Algorithm identifiers (RFC 7518, RFC 8037).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorKind};

macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The registered name, as it appears in a JOSE header.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(Error::new(
                        ErrorKind::UnsupportedAlgorithm,
                        format!("unsupported algorithm {:?}", crate::alg::short(s)),
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

names! {
    /// A JWS signature or MAC algorithm. `none` is deliberately absent: it cannot be named.
    Algorithm {
        /// HMAC with SHA-256.
        HS256 = "HS256",
        /// HMAC with SHA-384.
        HS384 = "HS384",
        /// HMAC with SHA-512.
        HS512 = "HS512",
        /// RSASSA-PKCS1-v1_5 with SHA-256.
        RS256 = "RS256",
        /// RSASSA-PKCS1-v1_5 with SHA-384.
        RS384 = "RS384",
        /// RSASSA-PKCS1-v1_5 with SHA-512.
        RS512 = "RS512",
        /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256.
        PS256 = "PS256",
        /// RSASSA-PSS with SHA-384 and MGF1 with SHA-384.
        PS384 = "PS384",
        /// RSASSA-PSS with SHA-512 and MGF1 with SHA-512.
        PS512 = "PS512",
        /// ECDSA on P-256 with SHA-256.
        ES256 = "ES256",
        /// ECDSA on P-384 with SHA-384.
        ES384 = "ES384",
        /// ECDSA on P-521 with SHA-512.
        ES512 = "ES512",
        /// EdDSA on Ed25519 (RFC 8037).
        EdDSA = "EdDSA",
    }
}

names! {
    /// A JWE key management algorithm. `RSA1_5` is deliberately absent: it is refused.
    KeyManagement {
        /// The shared key is the content encryption key.
        Dir = "dir",
        /// AES Key Wrap with a 128-bit key.
        A128KW = "A128KW",
        /// AES Key Wrap with a 192-bit key.
        A192KW = "A192KW",
        /// AES Key Wrap with a 256-bit key.
        A256KW = "A256KW",
        /// RSAES-OAEP with SHA-1 and MGF1 with SHA-1.
        RsaOaep = "RSA-OAEP",
        /// RSAES-OAEP with SHA-256 and MGF1 with SHA-256.
        RsaOaep256 = "RSA-OAEP-256",
        /// ECDH-ES, the agreed key used directly.
        EcdhEs = "ECDH-ES",
        /// ECDH-ES, the agreed key wrapping the CEK with A128KW.
        EcdhEsA128KW = "ECDH-ES+A128KW",
        /// ECDH-ES, the agreed key wrapping the CEK with A192KW.
        EcdhEsA192KW = "ECDH-ES+A192KW",
        /// ECDH-ES, the agreed key wrapping the CEK with A256KW.
        EcdhEsA256KW = "ECDH-ES+A256KW",
    }
}

names! {
    /// A JWE content encryption algorithm.
    ContentEncryption {
        /// AES-128-CBC with HMAC-SHA-256, truncated to 128 bits.
        A128CbcHs256 = "A128CBC-HS256",
        /// AES-192-CBC with HMAC-SHA-384, truncated to 192 bits.
        A192CbcHs384 = "A192CBC-HS384",
        /// AES-256-CBC with HMAC-SHA-512, truncated to 256 bits.
        A256CbcHs512 = "A256CBC-HS512",
        /// AES-128-GCM.
        A128Gcm = "A128GCM",
        /// AES-192-GCM.
        A192Gcm = "A192GCM",
        /// AES-256-GCM.
        A256Gcm = "A256GCM",
    }
}

/// The family of keys an algorithm works with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Hmac,
    Rsa,
    Ec(crate::jwk::Curve),
    Ed25519,
}

impl Algorithm {
    pub(crate) fn family(self) -> Family {
        use crate::jwk::Curve;
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => Family::Hmac,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                Family::Rsa
            }
            Self::ES256 => Family::Ec(Curve::P256),
            Self::ES384 => Family::Ec(Curve::P384),
            Self::ES512 => Family::Ec(Curve::P521),
            Self::EdDSA => Family::Ed25519,
        }
    }

    /// For HMAC, the hash output length: the shortest secret accepted (RFC 7518 §3.2).
    pub(crate) fn min_hmac_key_len(self) -> usize {
        match self {
            Self::HS384 => 48,
            Self::HS512 => 64,
            _ => 32,
        }
    }
}

impl KeyManagement {
    /// The AES key length of the key-wrapping step, where there is one.
    pub(crate) fn kw_key_len(self) -> Option<usize> {
        match self {
            Self::A128KW | Self::EcdhEsA128KW => Some(16),
            Self::A192KW | Self::EcdhEsA192KW => Some(24),
            Self::A256KW | Self::EcdhEsA256KW => Some(32),
            _ => None,
        }
    }
}

impl ContentEncryption {
    /// Length of the content encryption key in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::A128Gcm => 16,
            Self::A192Gcm => 24,
            Self::A256Gcm | Self::A128CbcHs256 => 32,
            Self::A192CbcHs384 => 48,
            Self::A256CbcHs512 => 64,
        }
    }

    pub(crate) fn iv_len(self) -> usize {
        match self {
            Self::A128Gcm | Self::A192Gcm | Self::A256Gcm => 12,
            _ => 16,
        }
    }
}

/// At most 40 characters of attacker-supplied text, for error messages.
pub(crate) fn short(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_none_is_unknown() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>().unwrap(), *a);
        }
        for a in KeyManagement::ALL {
            assert_eq!(a.name().parse::<KeyManagement>().unwrap(), *a);
        }
        for a in ContentEncryption::ALL {
            assert_eq!(a.name().parse::<ContentEncryption>().unwrap(), *a);
        }
        for bad in ["none", "None", "NONE", "hs256", "RSA1_5", ""] {
            assert!(bad.parse::<Algorithm>().is_err());
            assert!(bad.parse::<KeyManagement>().is_err());
        }
    }
}
