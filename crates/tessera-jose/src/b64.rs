//! Strict base64url (RFC 7515 §2): no padding, no `+` or `/`, no stray trailing bits.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

/// Encodes bytes as unpadded base64url.
pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the unpadded base64url form of `bytes` to `out`.
pub(crate) fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes canonical unpadded base64url; anything else is `Malformed`.
///
/// The engine refuses padding, characters outside the URL-safe alphabet and
/// non-zero trailing bits, so every byte string has exactly one accepted encoding.
pub(crate) fn decode(text: impl AsRef<[u8]>, what: &'static str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Error::malformed(format!("{what} is not canonical base64url")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn round_trips() {
        for n in 0..40u8 {
            let bytes: Vec<u8> = (0..n).collect();
            assert_eq!(decode(encode(&bytes), "x").unwrap(), bytes);
        }
    }

    #[test]
    fn refuses_padding_standard_alphabet_and_stray_bits() {
        assert_eq!(decode("AA", "x").unwrap(), vec![0]);
        for bad in ["AA==", "AA=", "+w", "/w", "AB", "A", "A A", "AA\n"] {
            assert_eq!(
                decode(bad, "x").unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad}"
            );
        }
    }
}
