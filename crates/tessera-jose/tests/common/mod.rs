//! Helpers shared by the conformance test binaries: locating the third-party
//! vectors, reading them, hex and base64url, and tallying Wycheproof results.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_jose::{Jwk, JwkSet};

/// Where the vectors live: `$TESSERA_VECTORS`, else `shared/vectors` beside the repo.
pub(crate) fn vectors_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("TESSERA_VECTORS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    dir.is_dir().then_some(dir)
}

/// Reads a vector file as JSON, or prints why it is skipped and returns `None`.
pub(crate) fn load(rel: &str) -> Option<Value> {
    let Some(dir) = vectors_dir() else {
        println!(
            "SKIPPED: test vectors not found (set TESSERA_VECTORS or put shared/vectors beside the repo)"
        );
        return None;
    };
    let path = dir.join(rel);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) => {
            println!("SKIPPED: {} unreadable: {e}", path.display());
            return None;
        }
    };
    Some(serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}")))
}

/// Every `*.json` file directly in `rel`, sorted by name, as (file name, JSON).
pub(crate) fn load_dir(rel: &str) -> Option<Vec<(String, Value)>> {
    let Some(dir) = vectors_dir() else {
        println!(
            "SKIPPED: test vectors not found (set TESSERA_VECTORS or put shared/vectors beside the repo)"
        );
        return None;
    };
    let dir = dir.join(rel);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    Some(
        names
            .into_iter()
            .map(|n| {
                let v = load(&format!("{rel}/{n}")).unwrap_or(Value::Null);
                (n, v)
            })
            .collect(),
    )
}

/// Decodes lower- or upper-case hex.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Encodes as lower-case hex.
pub(crate) fn to_hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// Unpadded base64url.
pub(crate) fn b64(b: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// Decodes unpadded base64url (test data is trusted to be canonical).
pub(crate) fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

/// A string member, or a panic naming it.
pub(crate) fn s<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} is not a string"))
}

/// Parses a JWK from a JSON value through the public API.
pub(crate) fn jwk(v: &Value) -> tessera_jose::Result<Jwk> {
    Jwk::from_json(serde_json::to_vec(v).expect("JSON"))
}

/// Parses a JWK Set from a JSON value through the public API.
pub(crate) fn jwk_set(v: &Value) -> tessera_jose::Result<JwkSet> {
    JwkSet::from_json(serde_json::to_vec(v).expect("JSON"))
}

/// A key or key set, as a Wycheproof group gives it.
pub(crate) enum Keys {
    One(Jwk),
    Set(JwkSet),
}

/// Builds the key source of a Wycheproof group member (`{keys:[...]}` or one JWK).
pub(crate) fn keys(v: &Value) -> tessera_jose::Result<Keys> {
    if v.get("keys").is_some() {
        jwk_set(v).map(Keys::Set)
    } else {
        jwk(v).map(Keys::One)
    }
}

/// Tally of one Wycheproof file, printed as one line per file at the end.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) file: String,
    pub(crate) valid_ok: usize,
    pub(crate) invalid_refused: usize,
    pub(crate) acceptable: usize,
    pub(crate) skipped: usize,
    pub(crate) divergent: usize,
    pub(crate) failures: Vec<String>,
    known: Vec<(u64, &'static str)>,
}

impl Tally {
    pub(crate) fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            ..Self::default()
        }
    }

    /// Declares tests where this library deliberately disagrees with the file, each
    /// with its reason. Such a test must still disagree: if it starts to agree, the
    /// entry is stale and the run fails.
    pub(crate) fn known(mut self, known: &[(u64, &'static str)]) -> Self {
        self.known = known.to_vec();
        self
    }

    /// Records the outcome of one test: `ok` is whether our code accepted it.
    pub(crate) fn record(&mut self, test: &Value, ok: bool, detail: &str) {
        let result = test["result"].as_str().unwrap_or("?");
        let id = test["tcId"]
            .as_u64()
            .or_else(|| test["tcId"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0);
        if let Some((_, why)) = self.known.iter().find(|(k, _)| *k == id) {
            let agrees = matches!((result, ok), ("valid", true) | ("invalid", false));
            if agrees {
                self.failures.push(format!(
                    "tcId {id}: listed as a known divergence ({why}) but now agrees"
                ));
            } else {
                println!(
                    "  tcId {id}: {result} upstream, {} here, by design: {why}",
                    if ok { "accepted" } else { "refused" }
                );
                self.divergent += 1;
            }
            return;
        }
        match (result, ok) {
            ("valid", true) => self.valid_ok += 1,
            ("invalid", false) => self.invalid_refused += 1,
            ("acceptable", _) => self.acceptable += 1,
            _ => self.failures.push(format!(
                "tcId {} ({}) expected {result}, got {}: {} flags={}",
                test["tcId"],
                test["comment"].as_str().unwrap_or(""),
                if ok { "accepted" } else { "refused" },
                detail,
                test["flags"]
            )),
        }
    }

    pub(crate) fn skip(&mut self) {
        self.skipped += 1;
    }

    pub(crate) fn ran(&self) -> usize {
        self.valid_ok
            + self.invalid_refused
            + self.acceptable
            + self.divergent
            + self.failures.len()
    }

    /// Prints the summary line and fails with every failure listed.
    pub(crate) fn finish(self) {
        println!(
            "{}: {} vectors ran ({} valid accepted, {} invalid refused, {} acceptable, {} known divergences), {} skipped, {} failed",
            self.file,
            self.ran(),
            self.valid_ok,
            self.invalid_refused,
            self.acceptable,
            self.divergent,
            self.skipped,
            self.failures.len()
        );
        assert!(
            self.failures.is_empty(),
            "{}: {} failures:\n{}",
            self.file,
            self.failures.len(),
            self.failures.join("\n")
        );
        assert!(self.ran() > 0, "{}: no vector ran", self.file);
    }
}
