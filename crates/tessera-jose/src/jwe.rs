//! JSON Web Encryption (RFC 7516, RFC 7518 §4–5), compact serialization.
//!
//! Key management: `dir`, `A128KW`, `A192KW`, `A256KW`, `RSA-OAEP`, `RSA-OAEP-256`,
//! `ECDH-ES` and `ECDH-ES+A{128,192,256}KW` (P-256, P-384, P-521, X25519).
//! Content: `A{128,192,256}GCM` and `A{128,192,256}CBC-HS{256,384,512}`.
//! `RSA1_5` is refused (Bleichenbacher). `zip` is refused unless enabled, and then the
//! inflated plaintext is bounded.
//!
//! Every primitive comes from aws-lc-rs, except AES Key Wrap (RFC 3394), which comes
//! whole from RustCrypto's `aes-kw` for all three key sizes (`A*KW` and
//! `ECDH-ES+A*KW`): aws-lc-rs has no 192-bit key wrap. One construction is composed
//! here from aws-lc-rs primitives, exactly as RFC 7518 §5.2 defines it: AES-CBC + HMAC.
//!
//! All failures after key selection answer the same [`ErrorKind::DecryptionFailed`],
//! so that no step can be told apart from another (no padding or unwrap oracle).

use std::borrow::Cow;
use std::io::Read;

use aes_kw::{KeyInit as _, KwAes128, KwAes192, KwAes256};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    self, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::{agreement, constant_time, hmac, kdf, rand};
use serde::Deserialize;
use serde::de::IgnoredAny;
use zeroize::Zeroizing;

use crate::alg::{ContentEncryption, KeyManagement};
use crate::b64;
use crate::error::{Error, ErrorKind, Result};
use crate::json;
use crate::jwk::{Curve, Jwk, KeyOp, KeySource, KeyType};
use crate::jws::DEFAULT_MAX_SIZE;

/// Default bound on the inflated plaintext when `zip` is enabled: 256 KiB.
pub const DEFAULT_MAX_PLAINTEXT: usize = 256 * 1024;

/// The protected header of a JWE, as read from a token.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JweHeader {
    /// Key management algorithm.
    pub alg: KeyManagement,
    /// Content encryption algorithm.
    pub enc: ContentEncryption,
    /// Key id.
    pub kid: Option<String>,
    /// Media type of the whole JWE.
    pub typ: Option<String>,
    /// Media type of the plaintext (`JWT` for a nested token).
    pub cty: Option<String>,
    /// Whether the plaintext was compressed (`zip: DEF`).
    pub zip: bool,
}

/// How to encrypt.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct EncryptOptions {
    /// Key management algorithm.
    pub alg: KeyManagement,
    /// Content encryption algorithm.
    pub enc: ContentEncryption,
    /// Key id to put in the header; by default the key's own `kid`.
    pub kid: Option<String>,
    /// `typ` header.
    pub typ: Option<String>,
    /// `cty` header (`JWT` for a nested token).
    pub cty: Option<String>,
    /// Compress the plaintext with DEFLATE (`zip: DEF`) before encrypting.
    pub zip: bool,
}

impl EncryptOptions {
    /// Options for `alg` and `enc`, no other header.
    pub fn new(alg: KeyManagement, enc: ContentEncryption) -> Self {
        Self {
            alg,
            enc,
            kid: None,
            typ: None,
            cty: None,
            zip: false,
        }
    }

    /// Sets `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
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

    /// Compresses the plaintext (`zip: DEF`). Recipients refuse it unless they enable it.
    pub fn with_zip(mut self) -> Self {
        self.zip = true;
        self
    }
}

/// What a recipient accepts. Defaults: every supported algorithm pair, tokens up to
/// 64 KiB, no `zip`.
#[derive(Debug, Clone)]
pub struct Decrypter {
    algorithms: Option<Vec<KeyManagement>>,
    encryptions: Option<Vec<ContentEncryption>>,
    max_size: usize,
    max_depth: usize,
    zip_limit: Option<usize>,
}

impl Default for Decrypter {
    fn default() -> Self {
        Self {
            algorithms: None,
            encryptions: None,
            max_size: DEFAULT_MAX_SIZE,
            max_depth: json::DEFAULT_MAX_DEPTH,
            zip_limit: None,
        }
    }
}

impl Decrypter {
    /// The safe defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept only these key management algorithms.
    pub fn algorithms(mut self, algs: &[KeyManagement]) -> Self {
        self.algorithms = Some(algs.to_vec());
        self
    }

    /// Accept only these content encryption algorithms.
    pub fn encryptions(mut self, encs: &[ContentEncryption]) -> Self {
        self.encryptions = Some(encs.to_vec());
        self
    }

    /// The largest token accepted, in bytes; larger ones are refused unparsed.
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }

    /// Accept `zip: DEF`, inflating to at most `max_plaintext` bytes.
    pub fn allow_zip(mut self, max_plaintext: usize) -> Self {
        self.zip_limit = Some(max_plaintext);
        self
    }
}

/// A decrypted JWE.
#[derive(Debug, Clone)]
pub struct Decrypted {
    header: JweHeader,
    plaintext: Zeroizing<Vec<u8>>,
}

impl Decrypted {
    /// The protected header.
    pub fn header(&self) -> &JweHeader {
        &self.header
    }

    /// The plaintext.
    pub fn plaintext(&self) -> &[u8] {
        &self.plaintext
    }

    /// The plaintext, by value.
    pub fn into_plaintext(self) -> Vec<u8> {
        self.plaintext.to_vec()
    }
}

/// Encrypts `plaintext` to `key` and returns the compact serialization.
pub fn encrypt(plaintext: &[u8], key: &Jwk, opts: &EncryptOptions) -> Result<String> {
    let (alg, enc) = (opts.alg, opts.enc);
    if !fits(key, alg, enc) {
        return Err(mismatch(key, alg, enc));
    }
    key.check_use(KeyOp::Encrypt, pinned_name(key, alg, enc))?;

    let mut header = serde_json::Map::new();
    header.insert("alg".into(), alg.name().into());
    header.insert("enc".into(), enc.name().into());
    if opts.zip {
        header.insert("zip".into(), "DEF".into());
    }
    if let Some(kid) = opts.kid.as_deref().or(key.kid()) {
        header.insert("kid".into(), kid.into());
    }
    if let Some(t) = &opts.typ {
        header.insert("typ".into(), t.clone().into());
    }
    if let Some(c) = &opts.cty {
        header.insert("cty".into(), c.clone().into());
    }

    // The content encryption key and its encrypted form.
    let (cek, encrypted_key): (Zeroizing<Vec<u8>>, Vec<u8>) = match alg {
        KeyManagement::Dir => (Zeroizing::new(oct(key)?.to_vec()), Vec::new()),
        KeyManagement::A128KW | KeyManagement::A192KW | KeyManagement::A256KW => {
            let cek = random_key(enc.key_len())?;
            let wrapped = aes_kw_wrap(oct(key)?, &cek)?;
            (cek, wrapped)
        }
        KeyManagement::RsaOaep | KeyManagement::RsaOaep256 => {
            let cek = random_key(enc.key_len())?;
            let rsa = key.rsa().ok_or_else(|| mismatch(key, alg, enc))?;
            let public = rsa.oaep_public()?;
            let mut out = vec![0u8; rsa.modulus_len()];
            let written = public.encrypt(oaep_alg(alg), &cek, &mut out, None)?.len();
            out.truncate(written);
            (cek, out)
        }
        _ => {
            // ECDH-ES: an ephemeral key on the recipient's curve.
            let (crv, peer_point) = key
                .agreement_public()
                .ok_or_else(|| mismatch(key, alg, enc))?;
            let ephemeral = agreement::PrivateKey::generate(crv.agreement_alg())?;
            let epk_point = ephemeral.compute_public_key()?.as_ref().to_vec();
            let epk = Jwk::from_agreement_public(crv, &epk_point)?;
            header.insert(
                "epk".into(),
                serde_json::to_value(&epk).map_err(|e| Error::crypto(json::clean(&e)))?,
            );
            let kek_len = alg.kw_key_len().unwrap_or(enc.key_len());
            let alg_id = if alg == KeyManagement::EcdhEs {
                enc.name()
            } else {
                alg.name()
            };
            let derived = ecdh_derive(&ephemeral, crv, &peer_point, alg_id, b"", b"", kek_len)
                .map_err(|_| Error::crypto("ECDH key agreement failed"))?;
            if alg == KeyManagement::EcdhEs {
                (derived, Vec::new())
            } else {
                let cek = random_key(enc.key_len())?;
                let wrapped = aes_kw_wrap(&derived, &cek)?;
                (cek, wrapped)
            }
        }
    };

    let header_json = serde_json::to_vec(&header).map_err(|e| Error::crypto(json::clean(&e)))?;
    let header_b64 = b64::encode(&header_json);
    let mut iv = vec![0u8; enc.iv_len()];
    rand::fill(&mut iv)?;
    let compressed;
    let body = if opts.zip {
        compressed = deflate(plaintext)?;
        &compressed[..]
    } else {
        plaintext
    };
    let (ciphertext, tag) = content_encrypt(enc, &cek, &iv, header_b64.as_bytes(), body)?;

    let mut out = header_b64;
    for part in [&encrypted_key[..], &iv, &ciphertext, &tag] {
        out.push('.');
        b64::encode_into(part, &mut out);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    enc: Cow<'a, str>,
    #[serde(borrow, default)]
    zip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cty: Option<Cow<'a, str>>,
    #[serde(default)]
    epk: Option<serde_json::Value>,
    #[serde(borrow, default)]
    apu: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    apv: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// Decrypts a compact JWE with the key `keys` selects, under `policy`.
pub fn decrypt(token: &str, keys: &impl KeySource, policy: &Decrypter) -> Result<Decrypted> {
    if token.len() > policy.max_size {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("the token is larger than {} bytes", policy.max_size),
        ));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(k), Some(i), Some(c), Some(t), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(Error::malformed(
            "a compact JWE has five parts separated by dots",
        ));
    };
    let header_json = b64::decode(h, "the JWE header")?;
    let encrypted_key = b64::decode(k, "the JWE encrypted key")?;
    let iv = b64::decode(i, "the JWE initialization vector")?;
    let ciphertext = b64::decode(c, "the JWE ciphertext")?;
    let tag = b64::decode(t, "the JWE authentication tag")?;
    let raw: RawHeader<'_> =
        json::from_slice(&header_json, policy.max_depth, "invalid JWE header")?;
    if raw.crit.is_some() {
        return Err(Error::new(
            ErrorKind::UnsupportedHeader,
            "the token names critical header extensions (crit), and none are understood",
        ));
    }
    if raw.alg == "RSA1_5" {
        return Err(Error::new(
            ErrorKind::AlgorithmNotAllowed,
            "RSA1_5 key encryption is refused (padding-oracle attacks); use RSA-OAEP",
        ));
    }
    let alg: KeyManagement = raw.alg.parse()?;
    let enc: ContentEncryption = raw.enc.parse()?;
    if policy
        .algorithms
        .as_ref()
        .is_some_and(|a| !a.contains(&alg))
        || policy
            .encryptions
            .as_ref()
            .is_some_and(|e| !e.contains(&enc))
    {
        return Err(Error::new(
            ErrorKind::AlgorithmNotAllowed,
            format!("{alg} with {enc} is not among the allowed algorithms"),
        ));
    }
    let zip = match raw.zip.as_deref() {
        None => false,
        Some("DEF") if policy.zip_limit.is_some() => true,
        Some("DEF") => {
            return Err(Error::new(
                ErrorKind::UnsupportedHeader,
                "compressed JWE (zip) is refused unless enabled",
            ));
        }
        Some(_) => {
            return Err(Error::new(
                ErrorKind::UnsupportedHeader,
                "unknown zip algorithm",
            ));
        }
    };
    let header = JweHeader {
        alg,
        enc,
        kid: raw.kid.as_deref().map(str::to_owned),
        typ: raw.typ.as_deref().map(str::to_owned),
        cty: raw.cty.as_deref().map(str::to_owned),
        zip,
    };
    let key = keys.select(header.kid.as_deref(), &|k: &Jwk| fits(k, alg, enc))?;
    key.check_use(KeyOp::Decrypt, pinned_name(key, alg, enc))?;

    // From here on every failure is the same DecryptionFailed.
    let cek = unwrap_cek(key, &raw, alg, enc, &encrypted_key)?;
    if cek.len() != enc.key_len() || iv.len() != enc.iv_len() {
        return Err(Error::decryption_failed());
    }
    let body = content_decrypt(enc, &cek, &iv, h.as_bytes(), &ciphertext, &tag)?;
    let plaintext = if zip {
        inflate(&body, policy.zip_limit.unwrap_or(DEFAULT_MAX_PLAINTEXT))?
    } else {
        body
    };
    Ok(Decrypted { header, plaintext })
}

fn unwrap_cek(
    key: &Jwk,
    raw: &RawHeader<'_>,
    alg: KeyManagement,
    enc: ContentEncryption,
    encrypted_key: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    fn fail<E>(_: E) -> Error {
        Error::decryption_failed()
    }
    match alg {
        KeyManagement::Dir => {
            if !encrypted_key.is_empty() {
                return Err(Error::decryption_failed());
            }
            Ok(Zeroizing::new(oct(key)?.to_vec()))
        }
        KeyManagement::A128KW | KeyManagement::A192KW | KeyManagement::A256KW => {
            aes_kw_unwrap(oct(key)?, encrypted_key).map_err(fail)
        }
        KeyManagement::RsaOaep | KeyManagement::RsaOaep256 => {
            let rsa = key.rsa().ok_or_else(Error::decryption_failed)?;
            let private = rsa.oaep_private()?;
            let mut out = Zeroizing::new(vec![0u8; rsa.modulus_len()]);
            let n = private
                .decrypt(oaep_alg(alg), encrypted_key, &mut out, None)
                .map_err(fail)?
                .len();
            out.truncate(n);
            Ok(out)
        }
        _ => {
            let epk = raw
                .epk
                .as_ref()
                .ok_or_else(|| Error::malformed("ECDH-ES needs an epk header parameter"))?;
            let epk = Jwk::from_json(
                serde_json::to_vec(epk).map_err(|e| Error::malformed(json::clean(&e)))?,
            )
            .map_err(|e| Error::malformed(format!("invalid epk: {}", e.message())))?;
            let (crv, point) = epk
                .agreement_public()
                .ok_or_else(|| Error::malformed("the epk is not an ECDH public key"))?;
            if epk.is_private() || Some(crv) != key.curve() {
                return Err(Error::malformed(
                    "the epk is not a public key on the recipient's curve",
                ));
            }
            let apu = match &raw.apu {
                Some(a) => b64::decode(a.as_bytes(), "apu")?,
                None => Vec::new(),
            };
            let apv = match &raw.apv {
                Some(a) => b64::decode(a.as_bytes(), "apv")?,
                None => Vec::new(),
            };
            let private = key
                .agreement_private()?
                .ok_or_else(Error::decryption_failed)?;
            let kek_len = alg.kw_key_len().unwrap_or(enc.key_len());
            let alg_id = if alg == KeyManagement::EcdhEs {
                enc.name()
            } else {
                alg.name()
            };
            let derived =
                ecdh_derive(&private, crv, &point, alg_id, &apu, &apv, kek_len).map_err(fail)?;
            if alg == KeyManagement::EcdhEs {
                if !encrypted_key.is_empty() {
                    return Err(Error::decryption_failed());
                }
                Ok(derived)
            } else {
                aes_kw_unwrap(&derived, encrypted_key).map_err(fail)
            }
        }
    }
}

/// Whether `key` can serve `alg` with `enc`.
fn fits(key: &Jwk, alg: KeyManagement, enc: ContentEncryption) -> bool {
    match alg {
        KeyManagement::Dir => key.secret_len() == Some(enc.key_len()),
        KeyManagement::A128KW | KeyManagement::A192KW | KeyManagement::A256KW => {
            key.secret_len() == alg.kw_key_len()
        }
        KeyManagement::RsaOaep | KeyManagement::RsaOaep256 => key.key_type() == KeyType::Rsa,
        _ => {
            matches!(
                key.curve(),
                Some(Curve::P256 | Curve::P384 | Curve::P521 | Curve::X25519)
            ) && key.key_type() != KeyType::Oct
        }
    }
}

/// The algorithm name a key's `alg` must equal. A `dir` key is the content key itself,
/// so its `alg` may name the content encryption instead (RFC 7520 §5.6 and JWK 3.6:
/// `"alg": "A128GCM"` on a `dir` key).
fn pinned_name(key: &Jwk, alg: KeyManagement, enc: ContentEncryption) -> &'static str {
    if alg == KeyManagement::Dir && key.alg() == Some(enc.name()) {
        enc.name()
    } else {
        alg.name()
    }
}

fn mismatch(key: &Jwk, alg: KeyManagement, enc: ContentEncryption) -> Error {
    let detail = match (alg, key.secret_len()) {
        (KeyManagement::Dir, Some(n)) => {
            format!(
                "dir with {enc} needs a {}-byte key, not {n} bytes",
                enc.key_len()
            )
        }
        (KeyManagement::A128KW | KeyManagement::A192KW | KeyManagement::A256KW, Some(n)) => {
            format!(
                "{alg} needs a {}-byte key, not {n} bytes",
                alg.kw_key_len().unwrap_or(0)
            )
        }
        _ => format!(
            "{alg} cannot be used with this {} key",
            key.key_type().name()
        ),
    };
    Error::new(ErrorKind::AlgorithmNotAllowed, detail)
}

fn oct(key: &Jwk) -> Result<&[u8]> {
    key.oct_bytes()
        .ok_or_else(|| Error::invalid_key("this algorithm needs a symmetric key"))
}

fn random_key(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut k = Zeroizing::new(vec![0u8; len]);
    rand::fill(&mut k)?;
    Ok(k)
}

fn oaep_alg(alg: KeyManagement) -> &'static aws_lc_rs::rsa::OaepAlgorithm {
    match alg {
        KeyManagement::RsaOaep256 => &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
        _ => &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1,
    }
}

// ----- ECDH-ES (RFC 7518 §4.6) ------------------------------------------------------

/// Agrees on Z with the peer's public key (validated on the curve by aws-lc-rs) and
/// derives `len` bytes with the Concat KDF (NIST SP 800-56A single-step, SHA-256).
pub(crate) fn ecdh_derive(
    private: &agreement::PrivateKey,
    crv: Curve,
    peer: &[u8],
    alg_id: &str,
    apu: &[u8],
    apv: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let peer = agreement::UnparsedPublicKey::new(crv.agreement_alg(), peer);
    let mut info = Vec::with_capacity(16 + alg_id.len() + apu.len() + apv.len());
    for field in [alg_id.as_bytes(), apu, apv] {
        let n = u32::try_from(field.len()).map_err(|_| Error::decryption_failed())?;
        info.extend_from_slice(&n.to_be_bytes());
        info.extend_from_slice(field);
    }
    let bits = u32::try_from(len * 8).map_err(|_| Error::decryption_failed())?;
    info.extend_from_slice(&bits.to_be_bytes());
    let kdf_alg = kdf::get_sskdf_digest_algorithm(kdf::SskdfDigestAlgorithmId::Sha256)
        .ok_or_else(|| Error::crypto("SSKDF-SHA256 is unavailable"))?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    agreement::agree(private, peer, Error::decryption_failed(), |z| {
        // An all-zero X25519 output means a low-order point: refuse it. (On the NIST
        // curves Z is an x-coordinate, and x = 0 is a valid point: not refused.)
        if crv == Curve::X25519 && z.iter().all(|b| *b == 0) {
            return Err(Error::decryption_failed());
        }
        kdf::sskdf_digest(kdf_alg, z, &info, &mut out).map_err(|_| Error::decryption_failed())
    })?;
    Ok(out)
}

// ----- AES Key Wrap (RFC 3394) ------------------------------------------------------

/// A key encryption key for RFC 3394 AES Key Wrap, from RustCrypto's `aes-kw` for all
/// three sizes (aws-lc-rs's `key_wrap` has no AES-192; one implementation keeps one
/// code path). The AES key schedule is wiped on drop (`aes-kw`'s `zeroize` feature).
enum Kek {
    A128(KwAes128),
    A192(KwAes192),
    A256(KwAes256),
}

impl Kek {
    fn new(kek: &[u8]) -> Result<Self> {
        fn bad<E>(_: E) -> Error {
            Error::invalid_key("AES key wrap needs a 16, 24 or 32-byte key")
        }
        Ok(match kek.len() {
            16 => Self::A128(KwAes128::new_from_slice(kek).map_err(bad)?),
            24 => Self::A192(KwAes192::new_from_slice(kek).map_err(bad)?),
            32 => Self::A256(KwAes256::new_from_slice(kek).map_err(bad)?),
            n => return Err(bad(n)),
        })
    }
}

/// RFC 3394 §2.2.1: wraps `cek` (at least two 64-bit blocks) under `kek`.
pub(crate) fn aes_kw_wrap(kek: &[u8], cek: &[u8]) -> Result<Vec<u8>> {
    // aes-kw would also wrap a single block; RFC 3394 needs n >= 2, and every CEK is
    // 16 bytes or more.
    if cek.len() < 16 || !cek.len().is_multiple_of(aes_kw::IV_LEN) {
        return Err(Error::crypto(
            "key wrap input must be a multiple of 8 bytes, at least 16",
        ));
    }
    let mut out = vec![0u8; cek.len() + aes_kw::IV_LEN];
    let wrapped = match Kek::new(kek)? {
        Kek::A128(k) => k.wrap_key(cek, &mut out),
        Kek::A192(k) => k.wrap_key(cek, &mut out),
        Kek::A256(k) => k.wrap_key(cek, &mut out),
    };
    wrapped.map_err(|_| Error::crypto("AES key wrap failed"))?;
    Ok(out)
}

/// RFC 3394 §2.2.2: unwraps and checks the integrity value; any failure is the one
/// [`ErrorKind::DecryptionFailed`].
pub(crate) fn aes_kw_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(aes_kw::IV_LEN) {
        return Err(Error::decryption_failed());
    }
    let mut out = Zeroizing::new(vec![0u8; wrapped.len() - aes_kw::IV_LEN]);
    let unwrapped = match Kek::new(kek)? {
        Kek::A128(k) => k.unwrap_key(wrapped, &mut out).map(<[u8]>::len),
        Kek::A192(k) => k.unwrap_key(wrapped, &mut out).map(<[u8]>::len),
        Kek::A256(k) => k.unwrap_key(wrapped, &mut out).map(<[u8]>::len),
    };
    // aes-kw wipes its output when the integrity check fails.
    let n = unwrapped.map_err(|_| Error::decryption_failed())?;
    out.truncate(n);
    Ok(out)
}

// ----- content encryption (RFC 7518 §5) ---------------------------------------------

fn content_encrypt(
    enc: ContentEncryption,
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>)> {
    match enc {
        ContentEncryption::A128Gcm | ContentEncryption::A192Gcm | ContentEncryption::A256Gcm => {
            let key = LessSafeKey::new(UnboundKey::new(gcm_alg(enc), cek)?);
            let nonce = Nonce::try_assume_unique_for_key(iv)?;
            let mut buf = plaintext.to_vec();
            let tag = key.seal_in_place_separate_tag(nonce, Aad::from(aad), &mut buf)?;
            Ok((buf, tag.as_ref().to_vec()))
        }
        _ => {
            let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
            let iv16: [u8; 16] = iv.try_into().map_err(|_| Error::crypto("bad IV length"))?;
            let key =
                PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(cbc_alg(enc), enc_key)?)?;
            let mut buf = plaintext.to_vec();
            key.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(FixedLength::from(iv16)))?;
            let tag = cbc_hmac_tag(enc, mac_key, aad, iv, &buf);
            Ok((buf, tag))
        }
    }
}

fn content_decrypt(
    enc: ContentEncryption,
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    fn fail<E>(_: E) -> Error {
        Error::decryption_failed()
    }
    match enc {
        ContentEncryption::A128Gcm | ContentEncryption::A192Gcm | ContentEncryption::A256Gcm => {
            if tag.len() != 16 {
                return Err(Error::decryption_failed());
            }
            let key = LessSafeKey::new(UnboundKey::new(gcm_alg(enc), cek).map_err(fail)?);
            let nonce = Nonce::try_assume_unique_for_key(iv).map_err(fail)?;
            let mut buf = Zeroizing::new(Vec::with_capacity(ciphertext.len() + 16));
            buf.extend_from_slice(ciphertext);
            buf.extend_from_slice(tag);
            let n = key
                .open_in_place(nonce, Aad::from(aad), &mut buf)
                .map_err(fail)?
                .len();
            buf.truncate(n);
            Ok(buf)
        }
        _ => {
            let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
            let expected = cbc_hmac_tag(enc, mac_key, aad, iv, ciphertext);
            constant_time::verify_slices_are_equal(&expected, tag).map_err(fail)?;
            let iv16: [u8; 16] = iv.try_into().map_err(fail)?;
            let key = PaddedBlockDecryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(cbc_alg(enc), enc_key).map_err(fail)?,
            )
            .map_err(fail)?;
            let mut buf = Zeroizing::new(ciphertext.to_vec());
            let n = key
                .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv16)))
                .map_err(fail)?
                .len();
            buf.truncate(n);
            Ok(buf)
        }
    }
}

/// RFC 7518 §5.2.2.1: HMAC over AAD ‖ IV ‖ ciphertext ‖ AL, truncated to half.
fn cbc_hmac_tag(
    enc: ContentEncryption,
    mac_key: &[u8],
    aad: &[u8],
    iv: &[u8],
    ct: &[u8],
) -> Vec<u8> {
    let h = match enc {
        ContentEncryption::A192CbcHs384 => hmac::HMAC_SHA384,
        ContentEncryption::A256CbcHs512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    };
    let key = hmac::Key::new(h, mac_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(aad);
    ctx.update(iv);
    ctx.update(ct);
    ctx.update(&((aad.len() as u64) * 8).to_be_bytes());
    let full = ctx.sign();
    full.as_ref()[..mac_key.len()].to_vec()
}

fn gcm_alg(enc: ContentEncryption) -> &'static aead::Algorithm {
    match enc {
        ContentEncryption::A128Gcm => &aead::AES_128_GCM,
        ContentEncryption::A192Gcm => &aead::AES_192_GCM,
        _ => &aead::AES_256_GCM,
    }
}

fn cbc_alg(enc: ContentEncryption) -> &'static cipher::Algorithm {
    match enc {
        ContentEncryption::A128CbcHs256 => &cipher::AES_128,
        ContentEncryption::A192CbcHs384 => &cipher::AES_192,
        _ => &cipher::AES_256,
    }
}

// ----- zip (RFC 7516 §4.1.3) ---------------------------------------------------------

fn deflate(plaintext: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(plaintext)
        .and_then(|()| e.finish())
        .map_err(|_| Error::crypto("compression failed"))
}

/// Inflates at most `limit` bytes; more is `TooLarge` (a decompression bomb).
fn inflate(compressed: &[u8], limit: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::new());
    // Saturating: allow_zip(usize::MAX) overflowed here (found by fuzz target jwe);
    // in release it wrapped to take(0) and every zip plaintext came out empty.
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut reader = flate2::read::DeflateDecoder::new(compressed).take(cap);
    reader
        .read_to_end(&mut out)
        .map_err(|_| Error::decryption_failed())?;
    if out.len() > limit {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("the decompressed plaintext exceeds {limit} bytes"),
        ));
    }
    Ok(out)
}

// ----- test hooks --------------------------------------------------------------------

/// The steps of [`decrypt`] after key selection, one at a time, for conformance vectors
/// that test a primitive rather than a token (Wycheproof's AES-KW, RSA-OAEP, ECDH,
/// AES-GCM and AES-CBC files). Each calls the very function `decrypt` calls.
///
/// Not part of the API: no stability promise, no use outside tests.
#[doc(hidden)]
pub mod primitives {
    use super::*;

    /// The content encryption key from `encrypted_key` under `alg`, as `decrypt`
    /// recovers it: `dir`, `A*KW`, `RSA-OAEP*`, or `ECDH-ES*` with `epk` as the
    /// sender's ephemeral public key (for `ECDH-ES` itself, the derived key).
    pub fn unwrap_key(
        key: &Jwk,
        alg: KeyManagement,
        enc: ContentEncryption,
        epk: Option<&Jwk>,
        encrypted_key: &[u8],
    ) -> Result<Vec<u8>> {
        let epk = epk
            .map(|k| serde_json::to_value(k).map_err(|e| Error::malformed(json::clean(&e))))
            .transpose()?;
        let raw = RawHeader {
            alg: Cow::Borrowed(alg.name()),
            enc: Cow::Borrowed(enc.name()),
            zip: None,
            kid: None,
            typ: None,
            cty: None,
            epk,
            apu: None,
            apv: None,
            crit: None,
        };
        unwrap_cek(key, &raw, alg, enc, encrypted_key).map(|k| k.to_vec())
    }

    /// Authenticates and decrypts one JWE body under `enc`, with the length checks
    /// `decrypt` makes first.
    pub fn content_decrypt(
        enc: ContentEncryption,
        cek: &[u8],
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
    ) -> Result<Vec<u8>> {
        if cek.len() != enc.key_len() || iv.len() != enc.iv_len() {
            return Err(Error::decryption_failed());
        }
        super::content_decrypt(enc, cek, iv, aad, ciphertext, tag).map(|p| p.to_vec())
    }

    /// Encrypts one JWE body under `enc` with a given CEK and IV, as `encrypt` does
    /// with random ones: `(ciphertext, tag)`.
    pub fn content_encrypt(
        enc: ContentEncryption,
        cek: &[u8],
        iv: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        if cek.len() != enc.key_len() || iv.len() != enc.iv_len() {
            return Err(Error::crypto("wrong CEK or IV length"));
        }
        super::content_encrypt(enc, cek, iv, aad, plaintext)
    }

    /// Wraps `cek` with the `oct` key `kek` (`A128KW`, `A192KW`, `A256KW`), as
    /// `encrypt` does.
    pub fn wrap_key(kek: &Jwk, cek: &[u8]) -> Result<Vec<u8>> {
        aes_kw_wrap(oct(kek)?, cek)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_for(alg: KeyManagement, enc: ContentEncryption) -> Vec<Jwk> {
        match alg {
            KeyManagement::Dir => vec![Jwk::generate_oct(enc.key_len()).unwrap()],
            KeyManagement::A128KW => vec![Jwk::generate_oct(16).unwrap()],
            KeyManagement::A192KW => vec![Jwk::generate_oct(24).unwrap()],
            KeyManagement::A256KW => vec![Jwk::generate_oct(32).unwrap()],
            KeyManagement::RsaOaep | KeyManagement::RsaOaep256 => vec![rsa().clone()],
            _ => vec![
                Jwk::generate_curve(Curve::P256).unwrap(),
                Jwk::generate_curve(Curve::P521).unwrap(),
                Jwk::generate_curve(Curve::X25519).unwrap(),
            ],
        }
    }

    fn rsa() -> &'static Jwk {
        static K: std::sync::OnceLock<Jwk> = std::sync::OnceLock::new();
        K.get_or_init(|| Jwk::generate_rsa(2048).unwrap())
    }

    #[test]
    fn every_pair_round_trips_and_refuses_tampering() {
        for alg in KeyManagement::ALL {
            for enc in ContentEncryption::ALL {
                for key in keys_for(*alg, *enc) {
                    let opts = EncryptOptions::new(*alg, *enc).with_cty("JWT");
                    let token = encrypt(b"attack at dawn", &key, &opts).unwrap();
                    let d = decrypt(&token, &key, &Decrypter::new()).unwrap();
                    assert_eq!(d.plaintext(), b"attack at dawn", "{alg} {enc}");
                    assert_eq!(d.header().cty.as_deref(), Some("JWT"));
                    // Flip one bit in the ciphertext part.
                    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
                    let mut ct = b64::decode(&parts[3], "ct").unwrap();
                    ct[0] ^= 1;
                    parts[3] = b64::encode(&ct);
                    let err = decrypt(&parts.join("."), &key, &Decrypter::new()).unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{alg} {enc}");
                }
            }
        }
    }

    #[test]
    fn rsa1_5_and_zip_are_refused_by_default_and_zip_is_bounded() {
        let key = Jwk::generate_oct(32).unwrap();
        let h = b64::encode(r#"{"alg":"RSA1_5","enc":"A128GCM"}"#);
        let err = decrypt(&format!("{h}.AA.AA.AA.AA"), &key, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlgorithmNotAllowed);

        let opts =
            EncryptOptions::new(KeyManagement::A256KW, ContentEncryption::A256Gcm).with_zip();
        let bomb = vec![0u8; 100_000];
        let token = encrypt(&bomb, &key, &opts).unwrap();
        assert!(token.len() < 2_000);
        let err = decrypt(&token, &key, &Decrypter::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedHeader);
        let err = decrypt(&token, &key, &Decrypter::new().allow_zip(10_000)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        let d = decrypt(&token, &key, &Decrypter::new().allow_zip(100_000)).unwrap();
        assert_eq!(d.plaintext(), &bomb[..]);
    }

    #[test]
    fn ecdh_refuses_an_epk_off_the_curve() {
        let key = Jwk::generate_curve(Curve::P256).unwrap();
        let opts = EncryptOptions::new(KeyManagement::EcdhEs, ContentEncryption::A128Gcm);
        let token = encrypt(b"x", &key, &opts).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut header: serde_json::Value =
            serde_json::from_slice(&b64::decode(parts[0], "h").unwrap()).unwrap();
        // Move y by one: the point leaves the curve.
        let y = header["epk"]["y"].as_str().unwrap().to_owned();
        let mut yb = b64::decode(&y, "y").unwrap();
        yb[31] ^= 1;
        header["epk"]["y"] = b64::encode(&yb).into();
        let forged = format!(
            "{}.{}",
            b64::encode(serde_json::to_vec(&header).unwrap()),
            parts[1..].join(".")
        );
        assert!(decrypt(&forged, &key, &Decrypter::new()).is_err());
    }
}
