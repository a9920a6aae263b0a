//! JSON Web Keys (RFC 7517, 7518, 8037), JWK Sets, thumbprints (RFC 7638), PEM.
//!
//! A [`Jwk`] is parsed once into typed key material: the aws-lc-rs key objects that
//! sign, verify, encrypt or agree are built when the key is loaded, never per token.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair,
};
use aws_lc_rs::{agreement, digest, hmac, rand, rsa};
use pkcs8::der::asn1::{AnyRef, BitStringRef, Null, ObjectIdentifier, OctetStringRef, UintRef};
use pkcs8::der::{Decode, Encode};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::alg::{Algorithm, Family};
use crate::b64;
use crate::error::{Error, ErrorKind, Result};
use crate::json;

/// The `kty` of a key.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// A symmetric key (`oct`).
    Oct,
    /// An RSA key.
    Rsa,
    /// An elliptic-curve key on a NIST curve (`EC`).
    Ec,
    /// An octet key pair (`OKP`): Ed25519 or X25519.
    Okp,
}

impl KeyType {
    /// The registered `kty` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Oct => "oct",
            Self::Rsa => "RSA",
            Self::Ec => "EC",
            Self::Okp => "OKP",
        }
    }
}

/// A named curve (`crv`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
    /// NIST P-521.
    P521,
    /// Ed25519, for EdDSA signatures.
    Ed25519,
    /// X25519, for ECDH-ES.
    X25519,
}

impl Curve {
    /// The registered `crv` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
            Self::Ed25519 => "Ed25519",
            Self::X25519 => "X25519",
        }
    }

    /// Length of a coordinate or private scalar in bytes.
    pub(crate) fn coord_len(self) -> usize {
        match self {
            Self::P256 | Self::Ed25519 | Self::X25519 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::P256 => OID_P256,
            Self::P384 => OID_P384,
            Self::P521 => OID_P521,
            Self::Ed25519 => OID_ED25519,
            Self::X25519 => OID_X25519,
        }
    }

    pub(crate) fn agreement_alg(self) -> &'static agreement::Algorithm {
        match self {
            Self::P256 => &agreement::ECDH_P256,
            Self::P384 => &agreement::ECDH_P384,
            Self::P521 => &agreement::ECDH_P521,
            Self::Ed25519 | Self::X25519 => &agreement::X25519,
        }
    }

    fn ecdsa_signing(self) -> &'static signature::EcdsaSigningAlgorithm {
        match self {
            Self::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Self::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            _ => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        }
    }

    fn ecdsa_verifying(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Self::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::P521 => &signature::ECDSA_P521_SHA512_FIXED,
            _ => &signature::ECDSA_P256_SHA256_FIXED,
        }
    }
}

impl FromStr for Curve {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "P-256" => Self::P256,
            "P-384" => Self::P384,
            "P-521" => Self::P521,
            "Ed25519" => Self::Ed25519,
            "X25519" => Self::X25519,
            _ => {
                return Err(Error::invalid_key(format!(
                    "unsupported curve {:?}",
                    crate::alg::short(s)
                )));
            }
        })
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a key is about to be used for; checked against `use` and `key_ops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyOp {
    Sign,
    Verify,
    /// Producing a JWE (encrypt, wrap or derive towards the recipient).
    Encrypt,
    /// Opening a JWE.
    Decrypt,
}

/// A JSON Web Key: typed key material plus its `kid`, `alg`, `use` and `key_ops`.
///
/// `Debug` never prints key material. Secret bytes are wiped when the key is dropped.
pub struct Jwk {
    material: Material,
    kid: Option<String>,
    alg: Option<String>,
    key_use: Option<String>,
    key_ops: Option<Vec<String>>,
}

enum Material {
    Oct(Box<OctKey>),
    Rsa(Box<RsaKey>),
    Ec(Box<EcKey>),
    Ed25519(Box<EdKey>),
    X25519(Box<XKey>),
}

struct OctKey {
    k: Zeroizing<Vec<u8>>,
    hmac: [OnceLock<hmac::Key>; 3],
}

pub(crate) struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
    bits: usize,
    verifiers: [OnceLock<ParsedPublicKey>; 6],
    private: Option<RsaPrivate>,
}

struct RsaPrivate {
    d: Zeroizing<Vec<u8>>,
    p: Zeroizing<Vec<u8>>,
    q: Zeroizing<Vec<u8>>,
    dp: Zeroizing<Vec<u8>>,
    dq: Zeroizing<Vec<u8>>,
    qi: Zeroizing<Vec<u8>>,
    pair: RsaKeyPair,
}

pub(crate) struct EcKey {
    pub(crate) crv: Curve,
    x: Vec<u8>,
    y: Vec<u8>,
    verifier: ParsedPublicKey,
    private: Option<(Zeroizing<Vec<u8>>, EcdsaKeyPair)>,
}

struct EdKey {
    x: Vec<u8>,
    verifier: ParsedPublicKey,
    private: Option<(Zeroizing<Vec<u8>>, Ed25519KeyPair)>,
}

struct XKey {
    x: Vec<u8>,
    d: Option<Zeroizing<Vec<u8>>>,
}

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_X25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// RSA moduli below this many bits are refused.
pub const MIN_RSA_BITS: usize = 2048;
/// RSA moduli above this many bits are refused (aws-lc-rs's limit, and a DoS bound).
pub const MAX_RSA_BITS: usize = 8192;

impl Jwk {
    // ----- construction -------------------------------------------------------------

    /// Parses a JWK from its JSON text, refusing duplicate members and keys that
    /// policy refuses (RSA under 2048 bits, points off the curve, inconsistent halves).
    pub fn from_json(text: impl AsRef<[u8]>) -> Result<Self> {
        let raw: RawJwk = json::from_slice(text.as_ref(), json::DEFAULT_MAX_DEPTH, "invalid JWK")
            .map_err(|e| Error::invalid_key(e.message().to_owned()))?;
        Self::from_raw(raw)
    }

    /// A symmetric (`oct`) key from raw secret bytes, for HMAC, `dir` and AES key wrap.
    pub fn from_secret(secret: impl AsRef<[u8]>) -> Result<Self> {
        let k = secret.as_ref();
        if k.is_empty() {
            return Err(Error::invalid_key("the secret is empty"));
        }
        Ok(Self::with_material(Material::Oct(Box::new(OctKey::new(
            k.to_vec(),
        )))))
    }

    /// Parses a PEM document: `PRIVATE KEY` (PKCS#8) or `PUBLIC KEY` (SPKI).
    pub fn from_pem(text: &str) -> Result<Self> {
        let (label, der) = pkcs8::der::pem::decode_vec(text.trim().as_bytes())
            .map_err(|_| Error::invalid_key("not a PEM document"))?;
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "PUBLIC KEY" => Self::from_spki_der(&der),
            other => Err(Error::invalid_key(format!(
                "unsupported PEM label {:?}: use PKCS#8 (PRIVATE KEY) or SPKI (PUBLIC KEY)",
                crate::alg::short(other)
            ))),
        }
    }

    /// Parses a PKCS#8 (RFC 5958) DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|_| Error::invalid_key("not a PKCS#8 private key"))?;
        let oid = info.algorithm.oid;
        if oid == OID_RSA {
            let k = pkcs1::RsaPrivateKey::from_der(info.private_key)
                .map_err(|_| Error::invalid_key("not a PKCS#1 RSA private key"))?;
            if k.other_prime_infos.is_some() {
                return Err(Error::invalid_key("multi-prime RSA keys are not supported"));
            }
            let comps = [
                k.modulus.as_bytes(),
                k.public_exponent.as_bytes(),
                k.private_exponent.as_bytes(),
                k.prime1.as_bytes(),
                k.prime2.as_bytes(),
                k.exponent1.as_bytes(),
                k.exponent2.as_bytes(),
                k.coefficient.as_bytes(),
            ];
            let [n, e, d, p, q, dp, dq, qi] = comps.map(|c| c.to_vec());
            let private = Some([d, p, q, dp, dq, qi].map(Zeroizing::new));
            Ok(Self::with_material(Material::Rsa(Box::new(RsaKey::new(
                n, e, private,
            )?))))
        } else if oid == OID_EC {
            let crv = curve_from_params(info.algorithm.parameters_oid().ok())?;
            let pair = EcdsaKeyPair::from_pkcs8(crv.ecdsa_signing(), der)?;
            let d = pair.private_key().as_be_bytes()?.as_ref().to_vec();
            let point = pair.public_key().as_ref().to_vec();
            let (x, y) = split_point(crv, &point)?;
            Ok(Self::with_material(Material::Ec(Box::new(EcKey::new(
                crv,
                x,
                y,
                Some(d),
            )?))))
        } else if oid == OID_ED25519 || oid == OID_X25519 {
            let seed = OctetStringRef::from_der(info.private_key)
                .map_err(|_| Error::invalid_key("malformed OKP private key"))?;
            let d = seed.as_bytes().to_vec();
            if oid == OID_ED25519 {
                let pair = Ed25519KeyPair::from_seed_unchecked(&d)?;
                let x = pair.public_key().as_ref().to_vec();
                Ok(Self::with_material(Material::Ed25519(Box::new(
                    EdKey::new(x, Some(d))?,
                ))))
            } else {
                let x = x25519_public(&d)?;
                Ok(Self::with_material(Material::X25519(Box::new(XKey::new(
                    x,
                    Some(d),
                )?))))
            }
        } else {
            Err(Error::invalid_key("unsupported PKCS#8 key algorithm"))
        }
    }

    /// Parses an X.509 SubjectPublicKeyInfo (RFC 5280) DER public key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let info = pkcs8::spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|_| Error::invalid_key("not an SPKI public key"))?;
        let bits = info
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| Error::invalid_key("malformed SPKI bit string"))?;
        let oid = info.algorithm.oid;
        let material = if oid == OID_RSA {
            let k = pkcs1::RsaPublicKey::from_der(bits)
                .map_err(|_| Error::invalid_key("not a PKCS#1 RSA public key"))?;
            Material::Rsa(Box::new(RsaKey::new(
                k.modulus.as_bytes().to_vec(),
                k.public_exponent.as_bytes().to_vec(),
                None,
            )?))
        } else if oid == OID_EC {
            let crv = curve_from_params(info.algorithm.parameters_oid().ok())?;
            let (x, y) = split_point(crv, bits)?;
            Material::Ec(Box::new(EcKey::new(crv, x, y, None)?))
        } else if oid == OID_ED25519 {
            Material::Ed25519(Box::new(EdKey::new(bits.to_vec(), None)?))
        } else if oid == OID_X25519 {
            Material::X25519(Box::new(XKey::new(bits.to_vec(), None)?))
        } else {
            return Err(Error::invalid_key("unsupported SPKI key algorithm"));
        };
        Ok(Self::with_material(material))
    }

    // ----- generation ---------------------------------------------------------------

    /// Generates a random symmetric key of `len` bytes.
    pub fn generate_oct(len: usize) -> Result<Self> {
        if len == 0 || len > 1024 {
            return Err(Error::invalid_key("a symmetric key is 1 to 1024 bytes"));
        }
        let mut k = Zeroizing::new(vec![0u8; len]);
        rand::fill(&mut k)?;
        Ok(Self::with_material(Material::Oct(Box::new(OctKey::new(
            k.to_vec(),
        )))))
    }

    /// Generates an RSA key of 2048, 3072, 4096 or 8192 bits.
    pub fn generate_rsa(bits: usize) -> Result<Self> {
        let size = match bits {
            2048 => rsa::KeySize::Rsa2048,
            3072 => rsa::KeySize::Rsa3072,
            4096 => rsa::KeySize::Rsa4096,
            8192 => rsa::KeySize::Rsa8192,
            _ => {
                return Err(Error::invalid_key(
                    "RSA keys are generated with 2048, 3072, 4096 or 8192 bits",
                ));
            }
        };
        let pair = RsaKeyPair::generate(size)?;
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)?;
        Self::from_pkcs8_der(der.as_ref())
    }

    /// Generates a key on `crv`: an ECDSA/ECDH key for the NIST curves, an Ed25519
    /// signing key, or an X25519 agreement key.
    pub fn generate_curve(crv: Curve) -> Result<Self> {
        let material = match crv {
            Curve::P256 | Curve::P384 | Curve::P521 => {
                let pair = EcdsaKeyPair::generate(crv.ecdsa_signing())?;
                let d = pair.private_key().as_be_bytes()?.as_ref().to_vec();
                let (x, y) = split_point(crv, pair.public_key().as_ref())?;
                Material::Ec(Box::new(EcKey::new(crv, x, y, Some(d))?))
            }
            Curve::Ed25519 => {
                let pair = Ed25519KeyPair::generate()?;
                let seed = pair.seed()?;
                let d = AsBigEndian::<aws_lc_rs::encoding::Curve25519SeedBin>::as_be_bytes(&seed)?
                    .as_ref()
                    .to_vec();
                Material::Ed25519(Box::new(EdKey::new(
                    pair.public_key().as_ref().to_vec(),
                    Some(d),
                )?))
            }
            Curve::X25519 => {
                let private = agreement::PrivateKey::generate(&agreement::X25519)?;
                let d =
                    AsBigEndian::<aws_lc_rs::encoding::Curve25519SeedBin>::as_be_bytes(&private)?
                        .as_ref()
                        .to_vec();
                let x = private.compute_public_key()?.as_ref().to_vec();
                Material::X25519(Box::new(XKey::new(x, Some(d))?))
            }
        };
        Ok(Self::with_material(material))
    }

    // ----- members ------------------------------------------------------------------

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        match &self.material {
            Material::Oct(_) => KeyType::Oct,
            Material::Rsa(_) => KeyType::Rsa,
            Material::Ec(_) => KeyType::Ec,
            Material::Ed25519(_) | Material::X25519(_) => KeyType::Okp,
        }
    }

    /// The curve, for `EC` and `OKP` keys.
    pub fn curve(&self) -> Option<Curve> {
        match &self.material {
            Material::Ec(k) => Some(k.crv),
            Material::Ed25519(_) => Some(Curve::Ed25519),
            Material::X25519(_) => Some(Curve::X25519),
            _ => None,
        }
    }

    /// Whether the key holds private (or secret) material.
    pub fn is_private(&self) -> bool {
        match &self.material {
            Material::Oct(_) => true,
            Material::Rsa(k) => k.private.is_some(),
            Material::Ec(k) => k.private.is_some(),
            Material::Ed25519(k) => k.private.is_some(),
            Material::X25519(k) => k.d.is_some(),
        }
    }

    /// For an RSA key, the size of the modulus in bits.
    pub fn rsa_bits(&self) -> Option<usize> {
        match &self.material {
            Material::Rsa(k) => Some(k.bits),
            _ => None,
        }
    }

    /// For an `oct` key, its length in bytes.
    pub fn secret_len(&self) -> Option<usize> {
        match &self.material {
            Material::Oct(k) => Some(k.k.len()),
            _ => None,
        }
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm this key is pinned to, if any (`alg`).
    pub fn alg(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    /// The intended use (`use`): `sig` or `enc`.
    pub fn key_use(&self) -> Option<&str> {
        self.key_use.as_deref()
    }

    /// The permitted operations (`key_ops`).
    pub fn key_ops(&self) -> Option<&[String]> {
        self.key_ops.as_deref()
    }

    /// Sets the key id.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Pins the key to one algorithm (`alg`).
    pub fn with_alg(mut self, alg: impl Into<String>) -> Self {
        self.alg = Some(alg.into());
        self
    }

    /// Sets the intended use (`use`).
    pub fn with_use(mut self, key_use: impl Into<String>) -> Self {
        self.key_use = Some(key_use.into());
        self
    }

    /// Sets the permitted operations (`key_ops`).
    pub fn with_key_ops(mut self, ops: Vec<String>) -> Self {
        self.key_ops = Some(ops);
        self
    }

    // ----- export -------------------------------------------------------------------

    /// The JWK as JSON, private members included when the key has them.
    pub fn to_json(&self) -> String {
        // Serializing our own plain struct cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The public half, with the same `kid`, `alg`, `use` and `key_ops`.
    /// A symmetric key has no public half: `InvalidKey`.
    pub fn to_public(&self) -> Result<Self> {
        let material = match &self.material {
            Material::Oct(_) => {
                return Err(Error::invalid_key(
                    "a symmetric (oct) key has no public part",
                ));
            }
            Material::Rsa(k) => {
                Material::Rsa(Box::new(RsaKey::new(k.n.clone(), k.e.clone(), None)?))
            }
            Material::Ec(k) => {
                Material::Ec(Box::new(EcKey::new(k.crv, k.x.clone(), k.y.clone(), None)?))
            }
            Material::Ed25519(k) => Material::Ed25519(Box::new(EdKey::new(k.x.clone(), None)?)),
            Material::X25519(k) => Material::X25519(Box::new(XKey::new(k.x.clone(), None)?)),
        };
        let key_ops = self.key_ops.as_ref().map(|ops| {
            ops.iter()
                .filter(|op| !matches!(op.as_str(), "sign" | "decrypt" | "unwrapKey"))
                .cloned()
                .collect()
        });
        Ok(Self {
            material,
            kid: self.kid.clone(),
            alg: self.alg.clone(),
            key_use: self.key_use.clone(),
            key_ops,
        })
    }

    /// The RFC 7638 thumbprint: SHA-256 over the required members, base64url.
    pub fn thumbprint(&self) -> String {
        let canonical = match &self.material {
            Material::Oct(k) => format!(r#"{{"k":"{}","kty":"oct"}}"#, b64::encode(&*k.k)),
            Material::Rsa(k) => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                b64::encode(&k.e),
                b64::encode(&k.n)
            ),
            Material::Ec(k) => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                k.crv.name(),
                b64::encode(&k.x),
                b64::encode(&k.y)
            ),
            Material::Ed25519(k) => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode(&k.x)
                )
            }
            Material::X25519(k) => {
                format!(
                    r#"{{"crv":"X25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode(&k.x)
                )
            }
        };
        b64::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }

    /// PEM: PKCS#8 for a private key, SPKI for a public one. `oct` keys have no PEM form.
    pub fn to_pem(&self) -> Result<String> {
        if self.is_private() {
            let der = self.to_pkcs8_der()?;
            pem("PRIVATE KEY", &der)
        } else {
            self.public_key_pem()
        }
    }

    /// The public key as an SPKI PEM document.
    pub fn public_key_pem(&self) -> Result<String> {
        pem("PUBLIC KEY", &self.to_spki_der()?)
    }

    /// The private key as PKCS#8 v1 DER.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        use aws_lc_rs::encoding::Pkcs8V1Der;
        let der = match &self.material {
            Material::Rsa(k) => match &k.private {
                Some(p) => AsDer::<Pkcs8V1Der>::as_der(&p.pair)?.as_ref().to_vec(),
                None => return Err(no_private()),
            },
            Material::Ec(k) => match &k.private {
                Some((_, pair)) => pair.to_pkcs8v1()?.as_ref().to_vec(),
                None => return Err(no_private()),
            },
            Material::Ed25519(k) => match &k.private {
                Some((_, pair)) => pair.to_pkcs8v1()?.as_ref().to_vec(),
                None => return Err(no_private()),
            },
            Material::X25519(k) => match &k.d {
                Some(d) => {
                    // aws-lc-rs does not write X25519 keys as PKCS#8, so write RFC 8410's
                    // form ourselves: the 32-byte key as an OCTET STRING in privateKey.
                    // (Found by fuzz/fuzz_targets/jwk.rs: every export used to fail.)
                    let enc =
                        |e: pkcs8::der::Error| Error::crypto(format!("DER encoding failed: {e}"));
                    let inner =
                        Zeroizing::new(OctetStringRef::new(d).map_err(enc)?.to_der().map_err(enc)?);
                    let info = pkcs8::PrivateKeyInfo::new(
                        pkcs8::AlgorithmIdentifierRef {
                            oid: OID_X25519,
                            parameters: None,
                        },
                        &inner,
                    );
                    info.to_der().map_err(enc)?
                }
                None => return Err(no_private()),
            },
            Material::Oct(_) => {
                return Err(Error::invalid_key(
                    "a symmetric (oct) key has no PKCS#8 form",
                ));
            }
        };
        Ok(Zeroizing::new(der))
    }

    /// The public key as X.509 SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Result<Vec<u8>> {
        let enc = |e: pkcs8::der::Error| Error::crypto(format!("DER encoding failed: {e}"));
        let (oid, params, key): (ObjectIdentifier, Option<AnyRef<'_>>, Vec<u8>) =
            match &self.material {
                Material::Oct(_) => {
                    return Err(Error::invalid_key(
                        "a symmetric (oct) key has no public part",
                    ));
                }
                Material::Rsa(k) => {
                    let public = pkcs1::RsaPublicKey {
                        modulus: UintRef::new(&k.n).map_err(enc)?,
                        public_exponent: UintRef::new(&k.e).map_err(enc)?,
                    };
                    (
                        OID_RSA,
                        Some(AnyRef::from(Null)),
                        public.to_der().map_err(enc)?,
                    )
                }
                Material::Ec(k) => {
                    let mut point = Vec::with_capacity(1 + 2 * k.x.len());
                    point.push(4);
                    point.extend_from_slice(&k.x);
                    point.extend_from_slice(&k.y);
                    (OID_EC, None, point)
                }
                Material::Ed25519(k) => (OID_ED25519, None, k.x.clone()),
                Material::X25519(k) => (OID_X25519, None, k.x.clone()),
            };
        let curve_oid = match &self.material {
            Material::Ec(k) => Some(k.crv.oid()),
            _ => None,
        };
        let params = match &curve_oid {
            Some(oid) => Some(AnyRef::from(oid)),
            None => params,
        };
        let info = pkcs8::spki::SubjectPublicKeyInfoRef {
            algorithm: pkcs8::spki::AlgorithmIdentifierRef {
                oid,
                parameters: params,
            },
            subject_public_key: BitStringRef::from_bytes(&key).map_err(enc)?,
        };
        info.to_der().map_err(enc)
    }

    // ----- use by the JWS and JWE code ---------------------------------------------

    fn with_material(material: Material) -> Self {
        Self {
            material,
            kid: None,
            alg: None,
            key_use: None,
            key_ops: None,
        }
    }

    /// Refuses the key for `op` with `alg_name` if `alg`, `use` or `key_ops` forbid it.
    pub(crate) fn check_use(&self, op: KeyOp, alg_name: &str) -> Result<()> {
        if let Some(pinned) = &self.alg
            && pinned != alg_name
        {
            return Err(Error::new(
                ErrorKind::AlgorithmNotAllowed,
                format!(
                    "the key is pinned to {} and may not be used with {}",
                    crate::alg::short(pinned),
                    alg_name
                ),
            ));
        }
        if let Some(u) = &self.key_use {
            let ok = match u.as_str() {
                "sig" => matches!(op, KeyOp::Sign | KeyOp::Verify),
                "enc" => matches!(op, KeyOp::Encrypt | KeyOp::Decrypt),
                _ => false,
            };
            if !ok {
                return Err(Error::invalid_key(format!(
                    "the key's use {:?} does not permit this operation",
                    crate::alg::short(u)
                )));
            }
        }
        if let Some(ops) = &self.key_ops {
            let wanted: &[&str] = match op {
                KeyOp::Sign => &["sign"],
                KeyOp::Verify => &["verify"],
                KeyOp::Encrypt => &["encrypt", "wrapKey", "deriveKey", "deriveBits"],
                KeyOp::Decrypt => &["decrypt", "unwrapKey", "deriveKey", "deriveBits"],
            };
            if !ops.iter().any(|o| wanted.contains(&o.as_str())) {
                return Err(Error::invalid_key(
                    "the key's key_ops do not permit this operation",
                ));
            }
        }
        Ok(())
    }

    /// Whether this key belongs to `alg`'s family (and is long enough, for HMAC).
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        match (alg.family(), &self.material) {
            (Family::Hmac, Material::Oct(_)) => true,
            (Family::Rsa, Material::Rsa(_)) => true,
            (Family::Ec(c), Material::Ec(k)) => k.crv == c,
            (Family::Ed25519, Material::Ed25519(_)) => true,
            _ => false,
        }
    }

    /// The algorithms of this key's family, as DESIGN.md defines them for verify.
    pub fn family_algorithms(&self) -> Vec<Algorithm> {
        Algorithm::ALL
            .iter()
            .copied()
            .filter(|a| self.fits(*a))
            .collect()
    }

    /// The default signing algorithm: the key's `alg`, else RS256, the ES of the
    /// curve, EdDSA or HS256.
    pub fn default_algorithm(&self) -> Result<Algorithm> {
        if let Some(a) = &self.alg {
            return a.parse();
        }
        Ok(match &self.material {
            Material::Oct(_) => Algorithm::HS256,
            Material::Rsa(_) => Algorithm::RS256,
            Material::Ec(k) => match k.crv {
                Curve::P384 => Algorithm::ES384,
                Curve::P521 => Algorithm::ES512,
                _ => Algorithm::ES256,
            },
            Material::Ed25519(_) => Algorithm::EdDSA,
            Material::X25519(_) => {
                return Err(Error::invalid_key("an X25519 key cannot sign"));
            }
        })
    }

    fn mismatch(&self, alg: Algorithm) -> Error {
        Error::new(
            ErrorKind::AlgorithmNotAllowed,
            format!(
                "{alg} cannot be used with this {} key",
                self.key_type().name()
            ),
        )
    }

    fn hmac_key(&self, alg: Algorithm) -> Result<&hmac::Key> {
        let Material::Oct(k) = &self.material else {
            return Err(self.mismatch(alg));
        };
        if k.k.len() < alg.min_hmac_key_len() {
            return Err(Error::invalid_key(format!(
                "{alg} needs a secret of at least {} bytes; this one has {}",
                alg.min_hmac_key_len(),
                k.k.len()
            )));
        }
        let (i, h) = match alg {
            Algorithm::HS384 => (1, hmac::HMAC_SHA384),
            Algorithm::HS512 => (2, hmac::HMAC_SHA512),
            _ => (0, hmac::HMAC_SHA256),
        };
        Ok(k.hmac[i].get_or_init(|| hmac::Key::new(h, &k.k)))
    }

    /// Signs `msg` with `alg`. The caller has checked that the algorithm fits.
    pub(crate) fn sign_raw(&self, alg: Algorithm, msg: &[u8]) -> Result<Vec<u8>> {
        if !self.fits(alg) {
            return Err(self.mismatch(alg));
        }
        self.check_use(KeyOp::Sign, alg.name())?;
        match &self.material {
            Material::Oct(_) => Ok(hmac::sign(self.hmac_key(alg)?, msg).as_ref().to_vec()),
            Material::Rsa(k) => {
                let p = k.private.as_ref().ok_or_else(no_private)?;
                let encoding: &'static dyn signature::RsaEncoding = match alg {
                    Algorithm::RS256 => &signature::RSA_PKCS1_SHA256,
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                let mut sig = vec![0u8; p.pair.public_modulus_len()];
                p.pair
                    .sign(encoding, &rand::SystemRandom::new(), msg, &mut sig)?;
                Ok(sig)
            }
            Material::Ec(k) => {
                let (_, pair) = k.private.as_ref().ok_or_else(no_private)?;
                Ok(pair
                    .sign(&rand::SystemRandom::new(), msg)?
                    .as_ref()
                    .to_vec())
            }
            Material::Ed25519(k) => {
                let (_, pair) = k.private.as_ref().ok_or_else(no_private)?;
                Ok(pair.sign(msg).as_ref().to_vec())
            }
            Material::X25519(_) => Err(self.mismatch(alg)),
        }
    }

    /// Verifies `sig` over `msg` with `alg`, in constant time for MACs.
    pub(crate) fn verify_raw(&self, alg: Algorithm, msg: &[u8], sig: &[u8]) -> Result<()> {
        if !self.fits(alg) {
            return Err(self.mismatch(alg));
        }
        self.check_use(KeyOp::Verify, alg.name())?;
        let bad = || Error::new(ErrorKind::InvalidSignature, "the signature does not verify");
        match &self.material {
            Material::Oct(_) => hmac::verify(self.hmac_key(alg)?, msg, sig).map_err(|_| bad()),
            Material::Rsa(k) => {
                if sig.len() != k.n.len() {
                    return Err(bad());
                }
                k.verifier(alg)?.verify_sig(msg, sig).map_err(|_| bad())
            }
            Material::Ec(k) => {
                if sig.len() != 2 * k.crv.coord_len() {
                    return Err(bad());
                }
                k.verifier.verify_sig(msg, sig).map_err(|_| bad())
            }
            Material::Ed25519(k) => {
                if sig.len() != 64 {
                    return Err(bad());
                }
                k.verifier.verify_sig(msg, sig).map_err(|_| bad())
            }
            Material::X25519(_) => Err(self.mismatch(alg)),
        }
    }

    pub(crate) fn oct_bytes(&self) -> Option<&[u8]> {
        match &self.material {
            Material::Oct(k) => Some(&k.k),
            _ => None,
        }
    }

    pub(crate) fn rsa(&self) -> Option<&RsaKey> {
        match &self.material {
            Material::Rsa(k) => Some(k),
            _ => None,
        }
    }

    /// For ECDH: the curve and the uncompressed public point (or raw X25519 key).
    pub(crate) fn agreement_public(&self) -> Option<(Curve, Vec<u8>)> {
        match &self.material {
            Material::Ec(k) => {
                let mut p = vec![4u8];
                p.extend_from_slice(&k.x);
                p.extend_from_slice(&k.y);
                Some((k.crv, p))
            }
            Material::X25519(k) => Some((Curve::X25519, k.x.clone())),
            _ => None,
        }
    }

    /// For ECDH: the private scalar as an aws-lc-rs agreement key.
    pub(crate) fn agreement_private(&self) -> Result<Option<agreement::PrivateKey>> {
        let (crv, d) = match &self.material {
            Material::Ec(k) => (k.crv, k.private.as_ref().map(|(d, _)| d)),
            Material::X25519(k) => (Curve::X25519, k.d.as_ref()),
            _ => return Ok(None),
        };
        match d {
            Some(d) => Ok(Some(agreement::PrivateKey::from_private_key(
                crv.agreement_alg(),
                d,
            )?)),
            None => Err(no_private()),
        }
    }

    /// Builds an EC or X25519 public JWK for an ephemeral key (`epk`).
    pub(crate) fn from_agreement_public(crv: Curve, point: &[u8]) -> Result<Self> {
        let material = match crv {
            Curve::X25519 => Material::X25519(Box::new(XKey::new(point.to_vec(), None)?)),
            Curve::Ed25519 => return Err(Error::invalid_key("Ed25519 keys do not agree")),
            _ => {
                let (x, y) = split_point(crv, point)?;
                Material::Ec(Box::new(EcKey::new(crv, x, y, None)?))
            }
        };
        Ok(Self::with_material(material))
    }

    fn from_raw(raw: RawJwk) -> Result<Self> {
        if raw.oth.is_some() {
            return Err(Error::invalid_key(
                "multi-prime RSA keys (oth) are not supported",
            ));
        }
        let field = |v: &Option<String>, name: &'static str| -> Result<Vec<u8>> {
            let text = v
                .as_deref()
                .ok_or_else(|| Error::invalid_key(format!("the JWK lacks the {name} member")))?;
            b64::decode(text, name).map_err(|_| {
                Error::invalid_key(format!("the JWK member {name} is not canonical base64url"))
            })
        };
        let opt = |v: &Option<String>, name: &'static str| -> Result<Option<Vec<u8>>> {
            v.as_ref().map(|_| field(v, name)).transpose()
        };
        let material = match raw.kty.as_str() {
            "oct" => {
                let k = field(&raw.k, "k")?;
                if k.is_empty() {
                    return Err(Error::invalid_key("the JWK's k is empty"));
                }
                Material::Oct(Box::new(OctKey::new(k)))
            }
            "RSA" => {
                let n = field(&raw.n, "n")?;
                let e = field(&raw.e, "e")?;
                let private = match opt(&raw.d, "d")? {
                    None => None,
                    Some(d) => Some([
                        d,
                        field(&raw.p, "p")?,
                        field(&raw.q, "q")?,
                        field(&raw.dp, "dp")?,
                        field(&raw.dq, "dq")?,
                        field(&raw.qi, "qi")?,
                    ]),
                };
                Material::Rsa(Box::new(RsaKey::new(
                    n,
                    e,
                    private.map(|p| p.map(Zeroizing::new)),
                )?))
            }
            "EC" => {
                let crv: Curve = raw
                    .crv
                    .as_deref()
                    .ok_or_else(|| Error::invalid_key("the JWK lacks the crv member"))?
                    .parse()?;
                if !matches!(crv, Curve::P256 | Curve::P384 | Curve::P521) {
                    return Err(Error::invalid_key(
                        "an EC key's crv must be P-256, P-384 or P-521",
                    ));
                }
                let x = field(&raw.x, "x")?;
                let y = field(&raw.y, "y")?;
                let d = opt(&raw.d, "d")?;
                Material::Ec(Box::new(EcKey::new(crv, x, y, d)?))
            }
            "OKP" => {
                let crv: Curve = raw
                    .crv
                    .as_deref()
                    .ok_or_else(|| Error::invalid_key("the JWK lacks the crv member"))?
                    .parse()?;
                let x = field(&raw.x, "x")?;
                let d = opt(&raw.d, "d")?;
                match crv {
                    Curve::Ed25519 => Material::Ed25519(Box::new(EdKey::new(x, d)?)),
                    Curve::X25519 => Material::X25519(Box::new(XKey::new(x, d)?)),
                    _ => {
                        return Err(Error::invalid_key(
                            "an OKP key's crv must be Ed25519 or X25519",
                        ));
                    }
                }
            }
            other => {
                return Err(Error::invalid_key(format!(
                    "unsupported key type {:?}",
                    crate::alg::short(other)
                )));
            }
        };
        // An unknown `use` is kept: `check_use` then refuses every operation.
        Ok(Self {
            material,
            kid: raw.kid,
            alg: raw.alg,
            key_use: raw.key_use,
            key_ops: raw.key_ops,
        })
    }
}

impl OctKey {
    fn new(k: Vec<u8>) -> Self {
        Self {
            k: Zeroizing::new(k),
            hmac: Default::default(),
        }
    }
}

impl RsaKey {
    fn new(n: Vec<u8>, e: Vec<u8>, private: Option<[Zeroizing<Vec<u8>>; 6]>) -> Result<Self> {
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        let bits = bit_len(&n);
        if bits < MIN_RSA_BITS {
            return Err(Error::invalid_key(format!(
                "RSA keys under {MIN_RSA_BITS} bits are refused (this one has {bits})"
            )));
        }
        if bits > MAX_RSA_BITS {
            return Err(Error::invalid_key(format!(
                "RSA keys over {MAX_RSA_BITS} bits are refused"
            )));
        }
        if e.is_empty() || e.len() > 4 || e[e.len() - 1] & 1 == 0 || (e.len() == 1 && e[0] < 3) {
            return Err(Error::invalid_key("the RSA public exponent is invalid"));
        }
        if n[n.len() - 1] & 1 == 0 {
            return Err(Error::invalid_key("the RSA modulus is even"));
        }
        if roca_fingerprint(&n) {
            return Err(Error::invalid_key(
                "the RSA modulus has the ROCA fingerprint (CVE-2017-15361): \
                 its private key can be computed from it; replace the key",
            ));
        }
        let components = rsa::PublicKeyComponents {
            n: &n[..],
            e: &e[..],
        };
        // Parse once for PKCS#1 v1.5 with SHA-256 now, to refuse a bad key at load.
        let first = components.to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)?;
        let verifiers: [OnceLock<ParsedPublicKey>; 6] = Default::default();
        let _ = verifiers[0].set(first);
        let private = match private {
            None => None,
            Some([d, p, q, dp, dq, qi]) => {
                let pair = RsaKeyPair::from_components(&rsa::KeyPairComponents {
                    public_key: rsa::PublicKeyComponents {
                        n: &n[..],
                        e: &e[..],
                    },
                    d: &d[..],
                    p: &p[..],
                    q: &q[..],
                    dP: &dp[..],
                    dQ: &dq[..],
                    qInv: &qi[..],
                })?;
                Some(RsaPrivate {
                    d,
                    p,
                    q,
                    dp,
                    dq,
                    qi,
                    pair,
                })
            }
        };
        Ok(Self {
            n,
            e,
            bits,
            verifiers,
            private,
        })
    }

    fn verifier(&self, alg: Algorithm) -> Result<&ParsedPublicKey> {
        let (i, params): (usize, &'static signature::RsaParameters) = match alg {
            Algorithm::RS256 => (0, &signature::RSA_PKCS1_2048_8192_SHA256),
            Algorithm::RS384 => (1, &signature::RSA_PKCS1_2048_8192_SHA384),
            Algorithm::RS512 => (2, &signature::RSA_PKCS1_2048_8192_SHA512),
            Algorithm::PS256 => (3, &signature::RSA_PSS_2048_8192_SHA256),
            Algorithm::PS384 => (4, &signature::RSA_PSS_2048_8192_SHA384),
            _ => (5, &signature::RSA_PSS_2048_8192_SHA512),
        };
        if let Some(v) = self.verifiers[i].get() {
            return Ok(v);
        }
        let parsed = rsa::PublicKeyComponents {
            n: &self.n[..],
            e: &self.e[..],
        }
        .to_parsed_public_key(params)?;
        Ok(self.verifiers[i].get_or_init(|| parsed))
    }

    pub(crate) fn modulus_len(&self) -> usize {
        self.n.len()
    }

    pub(crate) fn oaep_public(&self) -> Result<rsa::OaepPublicEncryptingKey> {
        let public: rsa::PublicEncryptingKey = rsa::PublicKeyComponents {
            n: &self.n[..],
            e: &self.e[..],
        }
        .try_into()?;
        Ok(rsa::OaepPublicEncryptingKey::new(public)?)
    }

    pub(crate) fn oaep_private(&self) -> Result<rsa::OaepPrivateDecryptingKey> {
        let p = self.private.as_ref().ok_or_else(no_private)?;
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&p.pair)?;
        let key = rsa::PrivateDecryptingKey::from_pkcs8(der.as_ref())?;
        Ok(rsa::OaepPrivateDecryptingKey::new(key)?)
    }
}

impl EcKey {
    fn new(crv: Curve, x: Vec<u8>, y: Vec<u8>, d: Option<Vec<u8>>) -> Result<Self> {
        let len = crv.coord_len();
        if x.len() != len || y.len() != len {
            return Err(Error::invalid_key(format!(
                "{crv} coordinates must be {len} bytes long"
            )));
        }
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(4);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        // Parsing validates that the point is on the curve.
        let verifier = ParsedPublicKey::new(crv.ecdsa_verifying(), &point)
            .map_err(|_| Error::invalid_key(format!("the point is not on {crv}")))?;
        let private = match d {
            None => None,
            Some(d) => {
                if d.len() != len {
                    return Err(Error::invalid_key(format!(
                        "a {crv} private key must be {len} bytes long"
                    )));
                }
                let pair =
                    EcdsaKeyPair::from_private_key_and_public_key(crv.ecdsa_signing(), &d, &point)
                        .map_err(|_| {
                            Error::invalid_key("the EC private key does not match its public key")
                        })?;
                Some((Zeroizing::new(d), pair))
            }
        };
        Ok(Self {
            crv,
            x,
            y,
            verifier,
            private,
        })
    }
}

impl EdKey {
    fn new(x: Vec<u8>, d: Option<Vec<u8>>) -> Result<Self> {
        if x.len() != 32 {
            return Err(Error::invalid_key("an Ed25519 public key is 32 bytes long"));
        }
        let verifier = ParsedPublicKey::new(&signature::ED25519, &x)
            .map_err(|_| Error::invalid_key("invalid Ed25519 public key"))?;
        let private = match d {
            None => None,
            Some(d) => {
                if d.len() != 32 {
                    return Err(Error::invalid_key(
                        "an Ed25519 private key is 32 bytes long",
                    ));
                }
                let pair = Ed25519KeyPair::from_seed_and_public_key(&d, &x).map_err(|_| {
                    Error::invalid_key("the Ed25519 private key does not match its public key")
                })?;
                Some((Zeroizing::new(d), pair))
            }
        };
        Ok(Self {
            x,
            verifier,
            private,
        })
    }
}

impl XKey {
    fn new(x: Vec<u8>, d: Option<Vec<u8>>) -> Result<Self> {
        if x.len() != 32 {
            return Err(Error::invalid_key("an X25519 public key is 32 bytes long"));
        }
        if let Some(d) = &d {
            if d.len() != 32 {
                return Err(Error::invalid_key("an X25519 private key is 32 bytes long"));
            }
            if x25519_public(d)? != x {
                return Err(Error::invalid_key(
                    "the X25519 private key does not match its public key",
                ));
            }
        }
        Ok(Self {
            x,
            d: d.map(Zeroizing::new),
        })
    }
}

fn x25519_public(d: &[u8]) -> Result<Vec<u8>> {
    if d.len() != 32 {
        return Err(Error::invalid_key("an X25519 private key is 32 bytes long"));
    }
    let private = agreement::PrivateKey::from_private_key(&agreement::X25519, d)?;
    Ok(private.compute_public_key()?.as_ref().to_vec())
}

fn curve_from_params(oid: Option<ObjectIdentifier>) -> Result<Curve> {
    match oid {
        Some(o) if o == OID_P256 => Ok(Curve::P256),
        Some(o) if o == OID_P384 => Ok(Curve::P384),
        Some(o) if o == OID_P521 => Ok(Curve::P521),
        _ => Err(Error::invalid_key("unsupported or missing EC curve")),
    }
}

fn split_point(crv: Curve, point: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let len = crv.coord_len();
    if point.len() != 1 + 2 * len || point[0] != 4 {
        return Err(Error::invalid_key(format!(
            "expected an uncompressed {crv} point"
        )));
    }
    Ok((point[1..1 + len].to_vec(), point[1 + len..].to_vec()))
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

/// Whether `n` has the fingerprint of the Infineon RSALib moduli of CVE-2017-15361
/// (ROCA). Their primes are `k·M + (65537^a mod M)` where `M` is the product of the
/// first 126 primes (2 to 701) for every key of 1984 to 3936 bits and of more primes
/// above, so for each odd prime `p` up to 701, `n mod p` lies in the subgroup generated
/// by 65537 mod `p`. Other moduli do so by chance with probability about 2^-170.
/// Valid for moduli of at least 1984 bits, which [`MIN_RSA_BITS`] guarantees.
/// Arithmetic on public data only: no secret is involved.
fn roca_fingerprint(n: &[u8]) -> bool {
    const _: () = assert!(MIN_RSA_BITS >= 1984);
    (3u32..=701)
        .step_by(2)
        .filter(|p| {
            (3..*p)
                .step_by(2)
                .take_while(|d| d * d <= *p)
                .all(|d| p % d != 0)
        })
        .all(|p| {
            let residue = n
                .iter()
                .fold(0u32, |acc, b| (acc * 256 + u32::from(*b)) % p);
            let generator = 65_537 % p;
            let mut x = 1;
            loop {
                if x == residue {
                    return true;
                }
                x = x * generator % p;
                if x == 1 {
                    return false;
                }
            }
        })
}

fn bit_len(v: &[u8]) -> usize {
    match v.first() {
        None => 0,
        Some(b) => (v.len() - 1) * 8 + (8 - b.leading_zeros() as usize),
    }
}

fn no_private() -> Error {
    Error::invalid_key(
        "this operation needs the private key, and the JWK holds only the public key",
    )
}

fn pem(label: &str, der: &[u8]) -> Result<String> {
    pkcs8::der::pem::encode_string(label, pkcs8::der::pem::LineEnding::LF, der)
        .map_err(|e| Error::crypto(format!("PEM encoding failed: {e}")))
}

// ----- serde ------------------------------------------------------------------------

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(rename = "use")]
    key_use: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<String>,
    n: Option<String>,
    e: Option<String>,
    p: Option<String>,
    q: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
    k: Option<String>,
    oth: Option<IgnoredAny>,
}

impl<'de> Deserialize<'de> for Jwk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = RawJwk::deserialize(d)?;
        Jwk::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Jwk {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kty", self.key_type().name())?;
        match &self.material {
            Material::Oct(k) => m.serialize_entry("k", &b64::encode(&*k.k))?,
            Material::Rsa(k) => {
                m.serialize_entry("n", &b64::encode(&k.n))?;
                m.serialize_entry("e", &b64::encode(&k.e))?;
                if let Some(p) = &k.private {
                    m.serialize_entry("d", &b64::encode(&*p.d))?;
                    m.serialize_entry("p", &b64::encode(&*p.p))?;
                    m.serialize_entry("q", &b64::encode(&*p.q))?;
                    m.serialize_entry("dp", &b64::encode(&*p.dp))?;
                    m.serialize_entry("dq", &b64::encode(&*p.dq))?;
                    m.serialize_entry("qi", &b64::encode(&*p.qi))?;
                }
            }
            Material::Ec(k) => {
                m.serialize_entry("crv", k.crv.name())?;
                m.serialize_entry("x", &b64::encode(&k.x))?;
                m.serialize_entry("y", &b64::encode(&k.y))?;
                if let Some((d, _)) = &k.private {
                    m.serialize_entry("d", &b64::encode(&**d))?;
                }
            }
            Material::Ed25519(k) => {
                m.serialize_entry("crv", "Ed25519")?;
                m.serialize_entry("x", &b64::encode(&k.x))?;
                if let Some((d, _)) = &k.private {
                    m.serialize_entry("d", &b64::encode(&**d))?;
                }
            }
            Material::X25519(k) => {
                m.serialize_entry("crv", "X25519")?;
                m.serialize_entry("x", &b64::encode(&k.x))?;
                if let Some(d) = &k.d {
                    m.serialize_entry("d", &b64::encode(&**d))?;
                }
            }
        }
        if let Some(kid) = &self.kid {
            m.serialize_entry("kid", kid)?;
        }
        if let Some(alg) = &self.alg {
            m.serialize_entry("alg", alg)?;
        }
        if let Some(u) = &self.key_use {
            m.serialize_entry("use", u)?;
        }
        if let Some(ops) = &self.key_ops {
            m.serialize_entry("key_ops", ops)?;
        }
        m.end()
    }
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.key_type().name())
            .field("crv", &self.curve().map(Curve::name))
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private", &self.is_private())
            .finish_non_exhaustive()
    }
}

impl Clone for Jwk {
    fn clone(&self) -> Self {
        // Rebuilding from our own canonical JSON cannot fail: it was valid when loaded.
        let json = Zeroizing::new(self.to_json());
        match Jwk::from_json(json.as_bytes()) {
            Ok(k) => k,
            Err(_) => unreachable!("a loaded key re-parses from its own serialization"),
        }
    }
}

// ----- JWK Set ----------------------------------------------------------------------

/// A JWK Set (RFC 7517 §5). Keys of unknown types, or that policy refuses, are
/// skipped when a set is parsed (RFC 7517 §5: "SHOULD ignore"), never trusted.
#[derive(Clone, Default, Debug)]
pub struct JwkSet {
    keys: Vec<Jwk>,
    skipped: usize,
}

impl JwkSet {
    /// A set of the given keys.
    pub fn new(keys: Vec<Jwk>) -> Self {
        Self { keys, skipped: 0 }
    }

    /// Parses `{"keys": [...]}`, refusing duplicate members in the document.
    pub fn from_json(text: impl AsRef<[u8]>) -> Result<Self> {
        #[derive(Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = json::from_slice(text.as_ref(), json::DEFAULT_MAX_DEPTH, "invalid JWK Set")
            .map_err(|e| Error::invalid_key(e.message().to_owned()))?;
        let mut set = Self::default();
        for value in raw.keys {
            match serde_json::from_value::<RawJwk>(value)
                .map_err(|_| ())
                .and_then(|r| Jwk::from_raw(r).map_err(|_| ()))
            {
                Ok(k) => set.keys.push(k),
                Err(()) => set.skipped += 1,
            }
        }
        Ok(set)
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// How many entries of the parsed document were skipped as unusable.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Adds a key.
    pub fn push(&mut self, key: Jwk) {
        self.keys.push(key);
    }

    /// The keys with this `kid`.
    pub fn find<'a>(&'a self, kid: &'a str) -> impl Iterator<Item = &'a Jwk> + 'a {
        self.keys.iter().filter(move |k| k.kid() == Some(kid))
    }

    /// The set as JSON, private members included where keys have them.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The public halves of every asymmetric key; symmetric keys are left out.
    pub fn to_public(&self) -> Self {
        Self::new(
            self.keys
                .iter()
                .filter_map(|k| k.to_public().ok())
                .collect(),
        )
    }
}

impl Serialize for JwkSet {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("JwkSet", 1)?;
        st.serialize_field("keys", &self.keys)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for JwkSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let text = serde_json::to_vec(&v).map_err(serde::de::Error::custom)?;
        JwkSet::from_json(text).map_err(serde::de::Error::custom)
    }
}

// ----- key selection ----------------------------------------------------------------

/// Where verification and decryption find their key: one [`Jwk`], or a [`JwkSet`]
/// searched by the token's `kid`. The token never supplies the key itself.
pub trait KeySource {
    /// The key for a token with this `kid` that `fits` accepts.
    fn select(&self, kid: Option<&str>, fits: &dyn Fn(&Jwk) -> bool) -> Result<&Jwk>;
}

impl KeySource for Jwk {
    fn select(&self, kid: Option<&str>, fits: &dyn Fn(&Jwk) -> bool) -> Result<&Jwk> {
        if let (Some(want), Some(have)) = (kid, self.kid())
            && want != have
        {
            return Err(Error::new(
                ErrorKind::KeyNotFound,
                "the token's kid does not match the key's kid",
            ));
        }
        if !fits(self) {
            return Err(Error::new(
                ErrorKind::AlgorithmNotAllowed,
                format!(
                    "the token's algorithm cannot be used with this {} key",
                    self.key_type().name()
                ),
            ));
        }
        Ok(self)
    }
}

impl KeySource for JwkSet {
    fn select(&self, kid: Option<&str>, fits: &dyn Fn(&Jwk) -> bool) -> Result<&Jwk> {
        let mut found = self
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.kid() == kid)
            .filter(|k| fits(k));
        match (found.next(), found.next()) {
            (Some(k), None) => Ok(k),
            (None, _) => Err(Error::new(
                ErrorKind::KeyNotFound,
                match kid {
                    Some(_) => "no key in the set has the token's kid and fits its algorithm",
                    None => "no key in the set fits the token's algorithm",
                },
            )),
            (Some(_), Some(_)) => Err(Error::new(
                ErrorKind::KeyNotFound,
                match kid {
                    Some(_) => "more than one key in the set has the token's kid",
                    None => "the token has no kid and more than one key in the set fits it",
                },
            )),
        }
    }
}

impl<T: KeySource + ?Sized> KeySource for &T {
    fn select(&self, kid: Option<&str>, fits: &dyn Fn(&Jwk) -> bool) -> Result<&Jwk> {
        (**self).select(kid, fits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shareable_across_threads_and_clone_whatever_their_members() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Jwk>();
        assert_send_sync::<JwkSet>();
        let k = Jwk::generate_oct(32)
            .unwrap()
            .with_use("bogus")
            .with_alg("x");
        let c = k.clone();
        assert_eq!(c.key_use(), Some("bogus"));
        assert!(c.check_use(KeyOp::Verify, "HS256").is_err());
    }

    #[test]
    fn debug_never_prints_key_material() {
        let k = Jwk::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        let text = format!("{k:?}");
        assert!(!text.contains("0123"), "{text}");
        assert!(!text.contains("MDEy"), "{text}");
    }

    #[test]
    fn rsa_under_2048_bits_is_refused() {
        let full = Jwk::generate_rsa(2048).unwrap();
        let n = full.rsa().unwrap().n.clone();
        // Drop 1 byte of a valid modulus and keep it odd: 2040 bits.
        let mut short = n[1..].to_vec();
        *short.last_mut().unwrap() |= 1;
        let json = format!(
            r#"{{"kty":"RSA","n":"{}","e":"AQAB"}}"#,
            b64::encode(&short)
        );
        assert_eq!(
            Jwk::from_json(&json).unwrap_err().kind(),
            ErrorKind::InvalidKey
        );
        let ok = format!(r#"{{"kty":"RSA","n":"{}","e":"AQAB"}}"#, b64::encode(&n));
        assert_eq!(Jwk::from_json(&ok).unwrap().rsa_bits(), Some(2048));
    }
}
