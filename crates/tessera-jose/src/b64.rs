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

/// The value of each base64url character, and [`INVALID`] for every other byte.
static DECODE: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Not a base64url character. Valid values are below 64, so ORing the values of a run
/// of characters and testing the two high bits tells whether any was invalid.
const INVALID: u8 = 0xFF;

/// How many bytes `chars` characters of unpadded base64url decode to; `None` for a
/// length no encoding has (one character past a multiple of four).
pub(crate) fn decoded_len(chars: usize) -> Option<usize> {
    match chars % 4 {
        1 => None,
        rest => Some(chars / 4 * 3 + rest.saturating_sub(1)),
    }
}

/// Decodes canonical unpadded base64url; anything else is `Malformed`.
///
/// Padding, characters outside the URL-safe alphabet and non-zero trailing bits are
/// refused, so every byte string has exactly one accepted encoding.
pub(crate) fn decode(text: impl AsRef<[u8]>, what: &'static str) -> Result<Vec<u8>> {
    let text = text.as_ref();
    let mut out = vec![0; decoded_len(text.len()).ok_or_else(|| not_canonical(what))?];
    if decode_exact(text, &mut out) {
        Ok(out)
    } else {
        Err(not_canonical(what))
    }
}

/// [`decode`] into the start of `buf`, without allocating: the decoded bytes, or
/// `None` when they do not fit in `buf` (the text is not checked then).
pub(crate) fn decode_to<'b>(
    text: &[u8],
    buf: &'b mut [u8],
    what: &'static str,
) -> Result<Option<&'b [u8]>> {
    let len = decoded_len(text.len()).ok_or_else(|| not_canonical(what))?;
    let Some(out) = buf.get_mut(..len) else {
        return Ok(None);
    };
    if decode_exact(text, out) {
        Ok(Some(out))
    } else {
        Err(not_canonical(what))
    }
}

fn not_canonical(what: &'static str) -> Error {
    Error::malformed(format!("{what} is not canonical base64url"))
}

/// Decodes `text` into `out`, which is exactly `decoded_len(text.len())` long; false
/// if `text` is not canonical base64url.
fn decode_exact(text: &[u8], out: &mut [u8]) -> bool {
    let whole = text.len() / 4;
    let (body, tail) = text.split_at(whole * 4);
    let (out_body, out_tail) = out.split_at_mut(whole * 3);
    let mut seen = 0u8;
    // Eight characters (48 bits, six bytes) at a time, then one group of four.
    let mut chars = body.chunks_exact(8);
    let mut bytes = out_body.chunks_exact_mut(6);
    for (c, b) in (&mut chars).zip(&mut bytes) {
        let mut n = 0u64;
        for &ch in c {
            let v = DECODE[usize::from(ch)];
            seen |= v;
            n = n << 6 | u64::from(v);
        }
        b.copy_from_slice(&n.to_be_bytes()[2..]);
    }
    if let [a, b, c, d] = *chars.remainder() {
        let [a, b, c, d] = [a, b, c, d].map(|ch| DECODE[usize::from(ch)]);
        seen |= a | b | c | d;
        let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
        bytes
            .into_remainder()
            .copy_from_slice(&n.to_be_bytes()[1..]);
    }
    if seen & 0xC0 != 0 {
        return false;
    }
    let v = |i: usize| DECODE[usize::from(tail[i])];
    match (tail.len(), out_tail) {
        (0, []) => true,
        // Two characters carry 12 bits for one byte: the last 4 must be zero.
        (2, [x]) => {
            let (a, b) = (v(0), v(1));
            if (a | b) & 0xC0 != 0 || b & 0x0F != 0 {
                return false;
            }
            *x = a << 2 | b >> 4;
            true
        }
        // Three characters carry 18 bits for two bytes: the last 2 must be zero.
        (3, [x, y]) => {
            let (a, b, c) = (v(0), v(1), v(2));
            if (a | b | c) & 0xC0 != 0 || c & 0x03 != 0 {
                return false;
            }
            *x = a << 2 | b >> 4;
            *y = b << 4 | c >> 2;
            true
        }
        _ => false,
    }
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
    fn agrees_with_the_base64_crate_on_every_short_text() {
        // Every text of up to 3 characters over an alphabet that has valid, invalid
        // and padding characters, and longer ones built around them: our decoder
        // accepts exactly what the base64 crate's strict engine accepts, to the
        // same bytes.
        let chars = b"AQgw_-+/=. \x00\xffz9";
        let mut texts: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=3 {
            let start = texts.len();
            let prev: Vec<Vec<u8>> = texts
                .iter()
                .filter(|t| t.len() == len - 1)
                .cloned()
                .collect();
            for t in prev {
                for &c in chars {
                    let mut n = t.clone();
                    n.push(c);
                    texts.push(n);
                }
            }
            assert!(texts.len() > start);
        }
        for t in texts.clone() {
            // The text at the end (the partial group), and in front of valid groups of
            // four and eight (the bodies decoded four and eight characters at a time).
            for (prefix, suffix) in [
                (&b""[..], &b""[..]),
                (b"AAAA", b""),
                (b"ab-_cd01", b""),
                (b"", b"AAAA"),
                (b"", b"ab-_cd01"),
                (b"QUJD", b"ab-_cd01zz"),
            ] {
                let mut text = prefix.to_vec();
                text.extend_from_slice(&t);
                text.extend_from_slice(suffix);
                let ours = decode(&text, "x").ok();
                let theirs = URL_SAFE_NO_PAD.decode(&text).ok();
                assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(&text));
                let mut buf = [0u8; 24];
                let to = decode_to(&text, &mut buf, "x")
                    .ok()
                    .flatten()
                    .map(<[u8]>::to_vec);
                assert_eq!(to, theirs, "{:?}", String::from_utf8_lossy(&text));
            }
        }
    }

    #[test]
    fn decode_to_says_when_the_buffer_is_too_small() {
        let mut buf = [0u8; 2];
        assert_eq!(decode_to(b"AAAA", &mut buf, "x").unwrap(), None);
        assert_eq!(
            decode_to(b"AAA", &mut buf, "x").unwrap(),
            Some(&[0u8, 0][..])
        );
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
