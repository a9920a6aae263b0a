//! KEY: `--key FILE` (a JWK, a JWK Set or a PEM document), or `--secret TEXT` /
//! `--secret-file FILE` (raw bytes, nothing trimmed), and the algorithm rules that
//! decide what a key may be used for.

use std::path::{Path, PathBuf};

use clap::Args;
use tessera_jose::{Algorithm, Jwk, JwkSet, KeyType};
use zeroize::Zeroizing;

use super::{Failure, read_file};

/// Key files are small; anything larger is not a key.
const MAX_KEY_FILE: u64 = 1024 * 1024;

/// Exactly one of `--key`, `--secret`, `--secret-file`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct KeyArgs {
    /// A file holding a JWK, a JWK Set (the key is chosen by kid) or a PEM key
    /// (PKCS#8 private or SPKI public).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// A shared secret, for HMAC (HS*) and for dir / AxxxKW encryption.
    // A secret may begin with '-': never mistake it for a flag (and echo it in an error).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    secret: Option<String>,
    /// A file whose raw bytes (nothing trimmed) are the shared secret.
    #[arg(long = "secret-file", value_name = "FILE")]
    secret_file: Option<PathBuf>,
}

/// The key material a command works with.
pub(crate) enum Keys {
    /// One key: a JWK, a PEM key or a secret.
    One(Jwk),
    /// A JWK Set.
    Set(JwkSet),
}

impl KeyArgs {
    /// Loads the key; any problem with it is exit 2.
    pub(crate) fn load(&self) -> Result<Keys, Failure> {
        if let Some(path) = &self.key {
            return load_file(path);
        }
        let secret: Zeroizing<Vec<u8>> = match (&self.secret, &self.secret_file) {
            (Some(text), _) => Zeroizing::new(text.as_bytes().to_vec()),
            (None, Some(path)) => Zeroizing::new(read_file(path, MAX_KEY_FILE)?),
            // clap's group makes exactly one of the three present.
            (None, None) => return Err(Failure::usage("give --key, --secret or --secret-file")),
        };
        Jwk::from_secret(&*secret)
            .map(Keys::One)
            .map_err(|e| Failure::usage(format!("the secret is refused: {}", e.message())))
    }
}

/// Loads a key file: a PEM document, a JWK Set (`{"keys": [...]}`) or one JWK.
pub(crate) fn load_file(path: &Path) -> Result<Keys, Failure> {
    let bytes = Zeroizing::new(read_file(path, MAX_KEY_FILE)?);
    let name = path.display();
    let refused = |e: tessera_jose::Error| {
        Failure::usage(format!("the key in {name} is refused: {}", e.message()))
    };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Failure::usage(format!("{name} is not a text file (JWK, JWK Set or PEM)")))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with("-----BEGIN") {
        return Jwk::from_pem(text).map(Keys::One).map_err(refused);
    }
    if !trimmed.starts_with('{') {
        return Err(Failure::usage(format!(
            "{name} holds neither a JWK, a JWK Set nor a PEM key"
        )));
    }
    if is_key_set(text) {
        let set = JwkSet::from_json(text).map_err(refused)?;
        if set.keys().is_empty() {
            return Err(Failure::usage(format!(
                "the key set in {name} has no usable key"
            )));
        }
        Ok(Keys::Set(set))
    } else {
        Jwk::from_json(text).map(Keys::One).map_err(refused)
    }
}

/// Whether a JSON document is a JWK Set: an object with a `keys` member and no `kty`.
fn is_key_set(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        keys: Option<serde::de::IgnoredAny>,
        kty: Option<serde::de::IgnoredAny>,
    }
    matches!(
        serde_json::from_str::<Probe>(text),
        Ok(Probe {
            keys: Some(_),
            kty: None
        })
    )
}

/// The shortest HMAC secret accepted for `alg`: its hash output (RFC 7518 §3.2).
pub(crate) fn min_hmac_len(alg: Algorithm) -> Option<usize> {
    match alg {
        Algorithm::HS256 => Some(32),
        Algorithm::HS384 => Some(48),
        Algorithm::HS512 => Some(64),
        _ => None,
    }
}

/// The JWS algorithms `key` may sign or verify with: its family's, narrowed to its
/// `alg` when pinned, and for a secret to the hashes it is long enough for.
pub(crate) fn signature_algorithms(key: &Jwk) -> Vec<Algorithm> {
    if key.key_use().is_some_and(|u| u != "sig") {
        return Vec::new();
    }
    let pinned = key.alg();
    key.family_algorithms()
        .into_iter()
        .filter(|a| pinned.is_none_or(|p| p == a.name()))
        .filter(|a| match (min_hmac_len(*a), key.secret_len()) {
            (Some(min), Some(len)) => len >= min,
            _ => true,
        })
        .collect()
}

/// Why `alg` cannot be used with `key` (for signing or verifying); `None` if it can.
pub(crate) fn refusal(key: &Jwk, alg: Algorithm) -> Option<String> {
    if signature_algorithms(key).contains(&alg) {
        return None;
    }
    if let Some(u) = key.key_use().filter(|u| *u != "sig") {
        return Some(format!(
            "the key's use is {u:?}, not \"sig\": it cannot sign or verify"
        ));
    }
    if let Some(p) = key.alg().filter(|p| *p != alg.name()) {
        return Some(format!(
            "the key is pinned to {p} and may not be used with {alg}"
        ));
    }
    if !key.family_algorithms().contains(&alg) {
        return Some(format!("{alg} cannot be used with {}", describe(key)));
    }
    if let (Some(min), Some(len)) = (min_hmac_len(alg), key.secret_len()) {
        return Some(format!(
            "the secret is {len} bytes; {alg} needs at least {min} (the hash length)"
        ));
    }
    Some(format!("{alg} cannot be used with {}", describe(key)))
}

/// Why `key` can neither sign nor verify at all.
pub(crate) fn no_signature_algorithm(key: &Jwk) -> String {
    if let Some(u) = key.key_use().filter(|u| *u != "sig") {
        return format!("the key's use is {u:?}, not \"sig\": it cannot sign or verify");
    }
    if let Some(p) = key.alg()
        && p.parse::<Algorithm>().is_err()
    {
        return format!("the key is pinned to {p}, which is not a signature algorithm");
    }
    if let Some(len) = key.secret_len() {
        let need = key
            .alg()
            .and_then(|p| p.parse::<Algorithm>().ok())
            .and_then(min_hmac_len)
            .unwrap_or(32);
        return format!("the secret is {len} bytes; HMAC needs at least {need} (the hash length)");
    }
    if key.family_algorithms().is_empty() {
        return format!("{} cannot sign or verify", describe(key));
    }
    match key.alg() {
        Some(p) => format!(
            "the key is pinned to {p}, which {} cannot use",
            describe(key)
        ),
        None => format!("{} cannot sign or verify", describe(key)),
    }
}

/// "an RSA key", "an EC P-256 key", "a secret"... for messages.
pub(crate) fn describe(key: &Jwk) -> String {
    match (key.key_type(), key.curve()) {
        (KeyType::Oct, _) => "a secret (oct) key".to_owned(),
        (KeyType::Rsa, _) => "an RSA key".to_owned(),
        (_, Some(c)) => format!("a {c} key"),
        (t, None) => format!("a {} key", t.name()),
    }
}
