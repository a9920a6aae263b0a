//! Footguns, named as such. Nothing here verifies anything.

use serde_json::Value;

use crate::b64;
use crate::error::{Error, ErrorKind, Result};
use crate::json;
use crate::jws::DEFAULT_MAX_SIZE;

/// Decodes a compact JWS (or the header of a compact JWE) **without verifying it**.
///
/// Returns the header and, for a JWS, the payload (as JSON if it is JSON, otherwise
/// as a string if it is UTF-8). A JWE's payload is encrypted: it is returned as `None`.
/// The same size, base64url and strict-JSON rules apply as for verification.
pub fn insecure_decode(token: &str) -> Result<(Value, Option<Value>)> {
    if token.len() > DEFAULT_MAX_SIZE {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("the token is larger than {DEFAULT_MAX_SIZE} bytes"),
        ));
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 && parts.len() != 5 {
        return Err(Error::malformed(
            "a compact token has three (JWS) or five (JWE) parts",
        ));
    }
    let header_bytes = b64::decode(parts[0], "the header")?;
    let header: Value = json::from_slice(&header_bytes, json::DEFAULT_MAX_DEPTH, "invalid header")?;
    if !header.is_object() {
        return Err(Error::malformed("the header is not a JSON object"));
    }
    if parts.len() == 5 {
        return Ok((header, None));
    }
    b64::decode(parts[2], "the signature")?;
    let payload_bytes = b64::decode(parts[1], "the payload")?;
    let payload =
        match json::from_slice::<Value>(&payload_bytes, json::DEFAULT_MAX_DEPTH, "payload") {
            Ok(v) => v,
            Err(_) => match String::from_utf8(payload_bytes) {
                Ok(s) => Value::String(s),
                Err(_) => {
                    return Err(Error::malformed(
                        "the payload is neither JSON nor UTF-8 text",
                    ));
                }
            },
        };
    Ok((header, Some(payload)))
}
