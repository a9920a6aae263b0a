//! JSON Web Signature (RFC 7515), compact serialization.
//!
//! [`sign`] produces a compact JWS. [`Unverified::parse`] splits and decodes a token
//! without trusting it; only [`Unverified::verify`] yields the payload, as [`Verified`].

use std::borrow::Cow;
use std::collections::BTreeMap;

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

    /// The deepest JSON nesting accepted in header and payload; never more than 128
    /// levels (serde_json's own limit), whatever is asked.
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
    signature: Signature,
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

/// A decoded signature: on the stack up to the longest fixed-size one (ECDSA P-521,
/// 132 bytes), longer (RSA) ones on the heap.
#[derive(Debug)]
enum Signature {
    Inline { len: usize, bytes: [u8; 132] },
    Heap(Vec<u8>),
}

impl Signature {
    fn decode(text: &str) -> Result<Self> {
        const WHAT: &str = "the JWS signature";
        let mut bytes = [0u8; 132];
        match b64::decode_to(text.as_bytes(), &mut bytes, WHAT)? {
            Some(sig) => Ok(Self::Inline {
                len: sig.len(),
                bytes,
            }),
            None => b64::decode(text, WHAT).map(Self::Heap),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..*len],
            Self::Heap(v) => v,
        }
    }
}

/// The JOSE header members [`parse_header`] reads, by index.
const HEADER_MEMBERS: [&str; 7] = ["alg", "typ", "cty", "kid", "crit", "b64", "zip"];

/// Reads a JWS protected header: strict JSON (no duplicate names, bounded depth), an
/// object whose `alg`, `typ`, `cty` and `kid` are strings (`null` counts as absent,
/// except for `alg`, which is required) and whose `b64`, if present, is a boolean. A
/// `crit` or `zip` member in any form, or `b64: false`, which nothing here
/// understands, refuses the token.
fn parse_header(header_json: &[u8], max_depth: usize) -> Result<Header> {
    let bad = |what: &str| Error::malformed(format!("invalid JWS header: {what}"));
    let Some(m) = json::check_members(json::utf8(header_json)?, max_depth, &HEADER_MEMBERS)? else {
        return Err(bad("not a JSON object"));
    };
    fn text(raw: Option<&str>) -> Result<Option<Cow<'_, str>>> {
        json::opt_str(raw)
            .map_err(|e| Error::malformed(format!("invalid JWS header: {}", json::clean(&e))))
    }
    let alg = text(m[0])?.ok_or_else(|| bad("missing field `alg`"))?;
    let (typ, cty, kid) = (text(m[1])?, text(m[2])?, text(m[3])?);
    let b64 = match m[5] {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(bad("b64 is not a boolean")),
    };
    if m[4].is_some() {
        return Err(Error::new(
            ErrorKind::UnsupportedHeader,
            "the token names critical header extensions (crit), and none are understood",
        ));
    }
    if b64 == Some(false) {
        return Err(Error::new(
            ErrorKind::UnsupportedHeader,
            "unencoded payloads (b64: false) are refused",
        ));
    }
    if m[6].is_some() {
        return Err(Error::new(
            ErrorKind::UnsupportedHeader,
            "zip is not a JWS header parameter",
        ));
    }
    if alg.eq_ignore_ascii_case("none") {
        return Err(Error::new(
            ErrorKind::AlgorithmNotAllowed,
            "unsecured tokens (alg: none) are never accepted",
        ));
    }
    Ok(Header {
        alg: alg.parse()?,
        typ: typ.map(Cow::into_owned),
        cty: cty.map(Cow::into_owned),
        kid: kid.map(Cow::into_owned),
        extra: BTreeMap::new(),
    })
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
        let header = parse_header(&header_json, policy.max_depth)?;
        let signature = Signature::decode(sig_b64)?;
        // Validate the payload's encoding now so that no later step sees bad input.
        if b64::decoded_len(payload_b64.len()).is_none() {
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
        key.verify_raw(
            alg,
            self.signing_input.as_bytes(),
            self.signature.as_slice(),
        )?;
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
    fn the_header_is_an_object_with_typed_members() {
        let key = hs_key();
        let with_header = |h: &str| {
            let input = format!("{}.{}", b64::encode(h), b64::encode("{}"));
            let sig = key.sign_raw(Algorithm::HS256, input.as_bytes()).unwrap();
            format!("{input}.{}", b64::encode(sig))
        };
        let kind = |h: &str| {
            verify(&with_header(h), &key, &Policy::new())
                .map(|v| v.header().clone())
                .map_err(|e| e.kind())
        };
        // Escapes are read; null is absent.
        let h = kind(r#"{"alg":"\u0048S256","kid":"k\n","typ":null}"#).unwrap();
        assert_eq!(
            (h.alg, h.kid.as_deref(), h.typ),
            (Algorithm::HS256, Some("k\n"), None)
        );
        for (header, want) in [
            (r#"["HS256"]"#, ErrorKind::Malformed),
            (r#""HS256""#, ErrorKind::Malformed),
            (r#"{"typ":"JWT"}"#, ErrorKind::Malformed),
            (r#"{"alg":null}"#, ErrorKind::Malformed),
            (r#"{"alg":"HS256","typ":5}"#, ErrorKind::Malformed),
            (r#"{"alg":"HS256","kid":["a"]}"#, ErrorKind::Malformed),
            (r#"{"alg":"HS256","b64":"false"}"#, ErrorKind::Malformed),
            (r#"{"alg":"HS256","b64":null}"#, ErrorKind::Malformed),
            (r#"{"alg":"HS256","alg":"HS256"}"#, ErrorKind::Malformed),
            (
                r#"{"alg":"HS256","crit":null}"#,
                ErrorKind::UnsupportedHeader,
            ),
            (
                r#"{"alg":"HS256","zip":"DEF"}"#,
                ErrorKind::UnsupportedHeader,
            ),
            (
                r#"{"alg":"HS256","b64":false}"#,
                ErrorKind::UnsupportedHeader,
            ),
            (r#"{"alg":"n\u006fne"}"#, ErrorKind::AlgorithmNotAllowed),
        ] {
            assert_eq!(kind(header).unwrap_err(), want, "{header}");
        }
        assert!(kind(r#"{"alg":"HS256","b64":true}"#).is_ok());
    }

    #[test]
    fn four_or_two_parts_are_malformed() {
        let key = hs_key();
        for t in ["a.b", "a.b.c.d", "", "..", "e30.e30.AA.AA"] {
            assert!(verify(t, &key, &Policy::new()).is_err(), "{t}");
        }
    }
}
