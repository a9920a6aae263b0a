//! The server's uses of aws-lc-rs: random identifiers and tokens, hashes of
//! secrets, constant-time comparison, and sealing bytes under a key (AES-256-GCM).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

/// A failure of the system random generator or of a seal/open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoError;

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cryptographic operation failed")
    }
}

impl std::error::Error for CryptoError {}

/// `n` random bytes from the system generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError)?;
    Ok(out)
}

/// A random identifier: 128 bits, base64url (22 characters).
pub fn random_id() -> Result<String, CryptoError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<16>()?))
}

/// A random secret token: 256 bits, base64url (43 characters).
pub fn random_token() -> Result<String, CryptoError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// SHA-256 of a secret, the form in which the store keeps it.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    digest(&SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2): base64url of its SHA-256.
pub fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// The `at_hash` of an access token for an ID token signed with an algorithm of
/// SHA-256 (RS256, ES256: the two this server signs ID tokens with): base64url of
/// the left half of the hash of its ASCII (OpenID Connect Core §3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    let d = digest(&SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

/// The CSP source of an inline script or style: `sha256-` and the standard base64
/// of its SHA-256.
pub fn csp_hash(text: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    format!(
        "'sha256-{}'",
        STANDARD.encode(digest(&SHA256, text.as_bytes()))
    )
}

/// Constant-time equality of two byte strings (the lengths may leak).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// A 256-bit AES-GCM key.
pub struct SealKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// The key with these bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self::new(random_bytes::<32>()?))
    }

    /// A key derived from a high-entropy secret token (SHA-256 under a label, so it
    /// differs from [`hash_secret`] of the same token).
    pub fn derive(label: &str, secret: &str) -> Self {
        let mut input = Zeroizing::new(Vec::with_capacity(label.len() + 1 + secret.len()));
        input.extend_from_slice(label.as_bytes());
        input.push(0);
        input.extend_from_slice(secret.as_bytes());
        let d = digest(&SHA256, &input);
        let mut k = [0u8; 32];
        k.copy_from_slice(d.as_ref());
        Self::new(k)
    }

    /// A 32-byte key for another purpose, derived from this one under `label`.
    pub fn subkey(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let mut input = Zeroizing::new(Vec::with_capacity(label.len() + 33));
        input.extend_from_slice(label.as_bytes());
        input.push(0);
        input.extend_from_slice(&*self.0);
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(digest(&SHA256, &input).as_ref());
        k
    }

    /// The key's bytes, base64url.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(URL_SAFE_NO_PAD.encode(*self.0))
    }

    /// Parses 32 bytes written in base64url (padding and whitespace tolerated).
    pub fn from_base64(text: &str) -> Option<Self> {
        let t = text.trim().trim_end_matches('=');
        let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(t).ok()?);
        let arr: [u8; 32] = bytes.as_slice().try_into().ok()?;
        Some(Self::new(arr))
    }

    /// Encrypts `plaintext` bound to `aad`: nonce || ciphertext || tag.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &*self.0).map_err(|_| CryptoError)?);
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| CryptoError)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`SealKey::seal`] produced with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError);
        }
        let key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &*self.0).map_err(|_| CryptoError)?);
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_tamper() {
        let k = SealKey::generate().unwrap();
        let s = k.seal(b"hello", b"aad").unwrap();
        assert_eq!(&**k.open(&s, b"aad").unwrap(), b"hello");
        assert!(k.open(&s, b"other").is_err());
        let mut t = s.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(k.open(&t, b"aad").is_err());
        assert!(k.open(&s[..5], b"aad").is_err());
        let k2 = SealKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(&**k2.open(&s, b"aad").unwrap(), b"hello");
    }

    #[test]
    fn pkce_and_at_hash_follow_their_rfcs() {
        // RFC 7636 Appendix B.
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        // OpenID Connect Core A.3/A.4 (the access token of the examples).
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token().unwrap());
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert_ne!(hash_secret(&a), SealKey::derive("x", &a).0.to_vec());
    }
}
