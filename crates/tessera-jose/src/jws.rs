//! JSON Web Signature (RFC 7515), compact serialization.
//!
//! [`sign`] produces a compact JWS. [`Unverified::parse`] splits and decodes a token
//! without trusting it; only [`Unverified::verify`] yields the payload, as [`Verified`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::alg::Algorithm;
use crate::b64;
use crate::error::{Error, ErrorKind, Result};
use crate::json;
use crate::jwk::{Jwk, KeySource};

/// Default limit on the size of a compact token: 64 KiB.
pub const DEFAULT_MAX_SIZE: usize = 64 * 1024;

/// A JWS protected header.
///
/// Only `alg`, `typ`, `cty` and `kid` are typed; other parameters go in `extra` when
/// signing. Headers read from a token carry the typed members only; the raw JSON is
/// available from [`Unverified::header_json`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The signature algorithm.
    pub alg: Algorithm,
    /// The media type of the whole JWS (`JWT`, `at+jwt`, ...).
    pub typ: Option<String>,
    /// The media type of the payload (`JWT` for a nested token).
    pub cty: Option<String>,
    /// The key id.
    pub kid: Option<String>,
    /// Further parameters, written after the typed ones when signing.
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Header {
    /// A header with just `alg`.
    pub fn new(alg: Algorithm) -> Self {
        Self {
            alg,
            typ: None,
            cty: None,
            kid: None,
            extra: BTreeMap::new(),
        }
    }

    /// Sets `typ`.
    pub fn with_typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Sets `cty`.
    pub fn with_cty(mut self, cty: impl Into<String>) -> Self {
        self.cty = Some(cty.into());
        self
    }

    /// Sets `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Adds any other parameter.
    pub fn with_param(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }

    pub(crate) fn to_json(&self) -> Result<Vec<u8>> {
        let mut map = serde_json::Map::new();
        map.insert("alg".into(), self.alg.name().into());
        if let Some(t) = &self.typ {
            map.insert("typ".into(), t.clone().into());
        }
        if let Some(c) = &self.cty {
            map.insert("cty".into(), c.clone().into());
        }
        if let Some(k) = &self.kid {
            map.insert("kid".into(), k.clone().into());
        }
        for (k, v) in &self.extra {
            if matches!(k.as_str(), "alg" | "typ" | "cty" | "kid") {
                return Err(Error::malformed(format!(
                    "header parameter {k} must be set through its typed field"
                )));
            }
            map.insert(k.clone(), v.clone());
        }
        serde_json::to_vec(&map).map_err(|e| Error::malformed(json::clean(&e)))
    }
}

/// Limits and the algorithm allow-list for verifying a JWS.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) algorithms: Option<Vec<Algorithm>>,
    pub(crate) max_size: usize,
    pub(crate) max_depth: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            algorithms: None,
            max_size: DEFAULT_MAX_SIZE,
            max_depth: json::DEFAULT_MAX_DEPTH,
        }
    }
}

impl Policy {
    /// The defaults: any algorithm of the key's own family, tokens up to 64 KiB,
    /// JSON nested at most 32 deep.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept only these algorithms (still only those of the key's family).
    pub fn algorithms(mut self, algs: &[Algorithm]) -> Self {
        self.algorithms = Some(algs.to_vec());
        self
    }

    /// The largest token accepted, in bytes; larger ones are refused unparsed.
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }

    /// The deepest JSON nesting accepted in header and payload.
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.as_ref().is_none_or(|a| a.contains(&alg))
    }
}

/// Signs `payload` under `header` with `key`, returning the compact serialization.
pub fn sign(header: &Header, payload: &[u8], key: &Jwk) -> Result<String> {
    let header_json = header.to_json()?;
    let mut out = String::with_capacity((header_json.len() + payload.len()) * 4 / 3 + 8 + 700);
    b64::encode_into(&header_json, &mut out);
    out.push('.');
    b64::encode_into(payload, &mut out);
    let sig = key.sign_raw(header.alg, out.as_bytes())?;
    out.push('.');
    b64::encode_into(&sig, &mut out);
    Ok(out)
}

/// A compact JWS that has been split and decoded but not yet verified.
///
/// Its header is readable (to choose a key), its payload is not.
#[derive(Debug)]
pub struct Unverified<'a> {
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Vec<u8>,
    header_json: Vec<u8>,
    header: Header,
    max_depth: usize,
}

/// A JWS whose signature has been verified: header and payload.
#[derive(Debug, Clone)]
pub struct Verified {
    header: Header,
    payload: Vec<u8>,
}

impl Verified {
    /// The protected header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The verified payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Header and payload, by value.
    pub fn into_parts(self) -> (Header, Vec<u8>) {
        (self.header, self.payload)
    }
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(default)]
    b64: Option<bool>,
    #[serde(default)]
    zip: Option<IgnoredAny>,
}

impl<'a> Unverified<'a> {
    /// Splits and decodes `token` under `policy`'s limits. Checks structure,
    /// canonical base64url, strict JSON and header rules; not the signature.
    pub fn parse(token: &'a str, policy: &Policy) -> Result<Self> {
        if token.len() > policy.max_size {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("the token is larger than {} bytes", policy.max_size),
            ));
        }
        let (header_b64, rest) = token
            .split_once('.')
            .ok_or_else(|| Error::malformed("a compact JWS has three parts separated by dots"))?;
        let (payload_b64, sig_b64) = rest
            .split_once('.')
            .ok_or_else(|| Error::malformed("a compact JWS has three parts separated by dots"))?;
        if sig_b64.contains('.') {
            return Err(Error::malformed(
                "a compact JWS has three parts; this token has more (a JWE needs decrypting)",
            ));
        }
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        let header_json = b64::decode(header_b64, "the JWS header")?;
        let raw: RawHeader<'_> =
            json::from_slice(&header_json, policy.max_depth, "invalid JWS header")?;
        if raw.crit.is_some() {
            return Err(Error::new(
                ErrorKind::UnsupportedHeader,
                "the token names critical header extensions (crit), and none are understood",
            ));
        }
        if raw.b64 == Some(false) {
            return Err(Error::new(
                ErrorKind::UnsupportedHeader,
                "unencoded payloads (b64: false) are refused",
            ));
        }
        if raw.zip.is_some() {
            return Err(Error::new(
                ErrorKind::UnsupportedHeader,
                "zip is not a JWS header parameter",
            ));
        }
        if raw.alg == "none" || raw.alg.eq_ignore_ascii_case("none") {
            return Err(Error::new(
                ErrorKind::AlgorithmNotAllowed,
                "unsecured tokens (alg: none) are never accepted",
            ));
        }
        let alg: Algorithm = raw.alg.parse()?;
        let header = Header {
            alg,
            typ: raw.typ.map(Cow::into_owned),
            cty: raw.cty.map(Cow::into_owned),
            kid: raw.kid.map(Cow::into_owned),
            extra: BTreeMap::new(),
        };
        let signature = b64::decode(sig_b64, "the JWS signature")?;
        // Validate the payload's encoding now so that no later step sees bad input.
        if payload_b64.len() % 4 == 1 {
            return Err(Error::malformed(
                "the JWS payload is not canonical base64url",
            ));
        }
        Ok(Self {
            signing_input,
            payload_b64,
            signature,
            header_json,
            header,
            max_depth: policy.max_depth,
        })
    }

    /// The header, unauthenticated until [`verify`](Self::verify) succeeds.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The header's raw JSON, unauthenticated.
    pub fn header_json(&self) -> &[u8] {
        &self.header_json
    }

    /// Verifies the signature with the key that `keys` selects for this token,
    /// under `policy`'s allow-list, and yields the payload.
    pub fn verify(self, keys: &impl KeySource, policy: &Policy) -> Result<Verified> {
        let payload = self.verify_payload(keys, policy)?;
        Ok(Verified {
            header: self.header,
            payload,
        })
    }

    pub(crate) fn verify_payload(&self, keys: &impl KeySource, policy: &Policy) -> Result<Vec<u8>> {
        let alg = self.header.alg;
        if !policy.allows(alg) {
            return Err(Error::new(
                ErrorKind::AlgorithmNotAllowed,
                format!("{alg} is not among the allowed algorithms"),
            ));
        }
        let key = keys.select(self.header.kid.as_deref(), &|k: &Jwk| k.fits(alg))?;
        key.verify_raw(alg, self.signing_input.as_bytes(), &self.signature)?;
        b64::decode(self.payload_b64, "the JWS payload")
    }

    pub(crate) fn max_depth(&self) -> usize {
        self.max_depth
    }

    pub(crate) fn into_header(self) -> Header {
        self.header
    }
}

/// Parses and verifies a compact JWS in one step.
pub fn verify(token: &str, keys: &impl KeySource, policy: &Policy) -> Result<Verified> {
    Unverified::parse(token, policy)?.verify(keys, policy)
}

/// Checks `signature` over `signing_input` with `key` under `alg`: the JWS signature
/// step of RFC 7515 §5.2 (step 8) on its own, for detached content (RFC 7515
/// Appendix F) and conformance tests.
///
/// It is the very check [`verify`] makes after parsing, with the same rules: the
/// algorithm must belong to the key's family, the key's `alg`, `use` and `key_ops`
/// must permit verification, HMAC secrets must be as long as the hash, and ECDSA
/// signatures must be `r || s` of the curve's exact length. Nothing is parsed here,
/// so no header rule (`crit`, `b64`, size) applies: prefer [`verify`] for tokens.
pub fn verify_detached(
    alg: Algorithm,
    key: &Jwk,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<()> {
    key.verify_raw(alg, signing_input, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs_key() -> Jwk {
        Jwk::from_secret([7u8; 32]).unwrap()
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let key = hs_key();
        let token = sign(&Header::new(Algorithm::HS256), b"hello", &key).unwrap();
        let v = verify(&token, &key, &Policy::new()).unwrap();
        assert_eq!(v.payload(), b"hello");
        assert_eq!(v.header().alg, Algorithm::HS256);
    }

    #[test]
    fn none_is_never_accepted() {
        let key = hs_key();
        for alg in ["none", "None", "NONE"] {
            let h = b64::encode(format!(r#"{{"alg":"{alg}"}}"#));
            let token = format!("{h}.{}.", b64::encode("{}"));
            let err = verify(&token, &key, &Policy::new()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed, "{alg}");
        }
    }

    #[test]
    fn crit_b64_false_and_oversize_are_refused() {
        let key = hs_key();
        let crit = Header::new(Algorithm::HS256)
            .with_param("crit", serde_json::json!(["exp"]))
            .with_param("exp", serde_json::json!(1));
        let token = sign(&crit, b"x", &key).unwrap();
        assert_eq!(
            verify(&token, &key, &Policy::new()).unwrap_err().kind(),
            ErrorKind::UnsupportedHeader
        );
        let b64false = Header::new(Algorithm::HS256).with_param("b64", false.into());
        let token = sign(&b64false, b"x", &key).unwrap();
        assert_eq!(
            verify(&token, &key, &Policy::new()).unwrap_err().kind(),
            ErrorKind::UnsupportedHeader
        );
        let token = sign(&Header::new(Algorithm::HS256), &[b'a'; 100], &key).unwrap();
        assert_eq!(
            verify(&token, &key, &Policy::new().max_size(50))
                .unwrap_err()
                .kind(),
            ErrorKind::TooLarge
        );
    }

    #[test]
    fn four_or_two_parts_are_malformed() {
        let key = hs_key();
        for t in ["a.b", "a.b.c.d", "", "..", "e30.e30.AA.AA"] {
            assert!(verify(t, &key, &Policy::new()).is_err(), "{t}");
        }
    }
}
