//! One error type for everything in this crate, with a kind that callers match on.

use std::borrow::Cow;
use std::fmt;

/// What went wrong, in a form a caller can match on.
///
/// The message of an [`Error`] is for people; the kind is for programs. New kinds
/// may be added, so a `match` needs a wildcard arm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is not a well-formed token, key or JSON document: wrong number of
    /// parts, non-canonical base64url, invalid JSON, duplicate members, excessive nesting,
    /// or a member of the wrong JSON type.
    Malformed,
    /// The input is larger than the configured limit; nothing was parsed.
    TooLarge,
    /// The signature or MAC does not verify.
    InvalidSignature,
    /// The token's algorithm is not allowed by the policy, does not belong to the key's
    /// family, or is `none`.
    AlgorithmNotAllowed,
    /// The algorithm is unknown or not supported by this crate.
    UnsupportedAlgorithm,
    /// No key in the key set fits the token (`kid` unknown, or no key of the right type).
    KeyNotFound,
    /// The key is malformed, inconsistent, or refused by policy (too short, wrong use).
    InvalidKey,
    /// A header parameter is refused: an unknown `crit` entry, `b64: false`, `zip` when
    /// compression is not enabled.
    UnsupportedHeader,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// `iss` is absent or not one of the accepted issuers.
    InvalidIssuer,
    /// `aud` is absent or names none of the accepted audiences.
    InvalidAudience,
    /// `sub` is absent or not the expected subject.
    InvalidSubject,
    /// The `typ` header is absent or not the expected type.
    InvalidType,
    /// A claim that the policy requires is absent.
    MissingClaim,
    /// A JWE could not be decrypted: wrong key, tampered ciphertext, tag mismatch.
    DecryptionFailed,
    /// The underlying cryptographic library failed in an unexpected way.
    Crypto,
}

/// The error of every fallible operation in this crate.
///
/// Messages never contain key material, and never echo token contents beyond names
/// of algorithms, claims and header parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct Error(Box<Inner>);

#[derive(Clone, PartialEq, Eq)]
struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self(Box::new(Inner {
            kind,
            message: message.into(),
        }))
    }

    /// The kind of error, for matching.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub(crate) fn malformed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Malformed, message)
    }

    pub(crate) fn invalid_key(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidKey, message)
    }

    pub(crate) fn crypto(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Crypto, message)
    }

    pub(crate) fn decryption_failed() -> Self {
        Self::new(
            ErrorKind::DecryptionFailed,
            "the JWE could not be decrypted",
        )
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {}

impl From<aws_lc_rs::error::Unspecified> for Error {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        Self::crypto("the cryptographic operation failed")
    }
}

impl From<aws_lc_rs::error::KeyRejected> for Error {
    fn from(e: aws_lc_rs::error::KeyRejected) -> Self {
        Self::invalid_key(format!("the key was rejected: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small_and_matchable() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
        let e = Error::new(ErrorKind::Expired, "the token has expired");
        assert_eq!(e.kind(), ErrorKind::Expired);
        assert_eq!(e.to_string(), "the token has expired");
    }
}
