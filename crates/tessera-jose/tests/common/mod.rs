//! Helpers shared by the conformance test binaries: locating the third-party
//! vectors (and failing under CI when they are missing), reading them, hex and
//! base64url, and tallying Wycheproof results.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_jose::{Jwk, JwkSet};

/// Where the vectors live and what a missing one means.
///
/// A test that finds its vectors missing fails when `CI` is set (non-empty), as the
/// interop test does with its peers. Otherwise it passes and says `SKIPPED` on stderr,
/// written straight to the process's stderr: libtest captures `print!`/`eprint!` of a
/// passing test but not direct writes, so the line shows in every plain `cargo test`.
pub(crate) struct Vectors {
    root: PathBuf,
    ci: bool,
}

impl Vectors {
    /// `$TESSERA_VECTORS`, else `shared/vectors` beside the repository; strict when
    /// `CI` is set and not empty.
    pub(crate) fn from_env() -> Self {
        let root = match std::env::var_os("TESSERA_VECTORS") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
        };
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        Self::new(root, ci)
    }

    /// Vectors under `root`; with `ci`, a missing one is a failure.
    pub(crate) fn new(root: PathBuf, ci: bool) -> Self {
        let root = root.canonicalize().unwrap_or(root);
        Self { root, ci }
    }

    /// Reads the vector file `rel` as JSON; `None` (after saying so) if it is missing.
    pub(crate) fn load(&self, rel: &str) -> Option<Value> {
        let path = self.root.join(rel);
        match std::fs::read(&path) {
            Ok(text) => Some(
                serde_json::from_slice(&text)
                    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display())),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.missing(&path),
            Err(e) => panic!("{} is unreadable: {e}", path.display()),
        }
    }

    /// Every `*.json` file directly in `rel`, sorted by name, as (file name, JSON);
    /// `None` (after saying so) if the folder is missing or holds none.
    pub(crate) fn load_dir(&self, rel: &str) -> Option<Vec<(String, Value)>> {
        let dir = self.root.join(rel);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.missing(&dir),
            Err(e) => panic!("{} is unreadable: {e}", dir.display()),
        };
        let mut names: Vec<String> = entries
            .map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", dir.display())))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        if names.is_empty() {
            return self.missing(&dir.join("*.json"));
        }
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let v = self.load(&format!("{rel}/{n}"))?;
                Some((n, v))
            })
            .collect()
    }

    /// Fails under CI; otherwise reports the skip where it is seen, and gives `None`.
    fn missing<T>(&self, path: &Path) -> Option<T> {
        let test = std::thread::current()
            .name()
            .unwrap_or("<unnamed test>")
            .to_owned();
        if self.ci {
            panic!(
                "{test}: CI is set and the test vectors are missing: {} not found \
                 (set TESSERA_VECTORS, or put shared/vectors beside the repository)",
                path.display()
            );
        }
        let line = format!(
            "SKIPPED: {test}: vectors not found at {} (set CI=1 to make this fail)\n",
            path.display()
        );
        // Not eprintln!: that would be captured and shown only if the test failed.
        let _ = std::io::stderr().write_all(line.as_bytes());
        None
    }
}

/// [`Vectors::load`] with the vectors the environment names.
pub(crate) fn load(rel: &str) -> Option<Value> {
    Vectors::from_env().load(rel)
}

/// [`Vectors::load_dir`] with the vectors the environment names.
pub(crate) fn load_dir(rel: &str) -> Option<Vec<(String, Value)>> {
    Vectors::from_env().load_dir(rel)
}

/// Runs this very test binary again, with `TESSERA_VECTORS` naming a folder that does
/// not exist, leaving out `self_test` (the caller) and the tests in `vector_free`
/// (those that need no vectors). With `CI` set, every test must fail and name the
/// missing path; without it, every test must pass and have said `SKIPPED` on stderr.
pub(crate) fn check_missing_vectors_are_never_silent(self_test: &str, vector_free: &[&str]) {
    let nowhere = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-vectors-here");
    assert!(!nowhere.exists(), "{} must not exist", nowhere.display());
    let run = |ci: bool| -> (Output, Vec<String>, Vec<String>) {
        let exe = std::env::current_exe().expect("the path of this test binary");
        let mut cmd = Command::new(exe);
        cmd.args([
            "--exact",
            "--test-threads=1",
            "--color=never",
            "--format=pretty",
        ]);
        for skip in std::iter::once(&self_test).chain(vector_free) {
            cmd.args(["--skip", skip]);
        }
        cmd.env("TESSERA_VECTORS", &nowhere)
            .env_remove("RUST_TEST_NOCAPTURE");
        if ci {
            cmd.env("CI", "1");
        } else {
            cmd.env_remove("CI");
        }
        let out = cmd.output().expect("run this test binary");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (mut passed, mut failed) = (Vec::new(), Vec::new());
        for line in stdout.lines() {
            if let Some((name, outcome)) = line
                .strip_prefix("test ")
                .and_then(|l| l.rsplit_once(" ... "))
            {
                match outcome {
                    "ok" => passed.push(name.to_owned()),
                    "FAILED" => failed.push(name.to_owned()),
                    other => panic!("test {name}: unexpected outcome {other:?}"),
                }
            }
        }
        (out, passed, failed)
    };
    let text = |o: &Output| {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    let (out, passed, failed) = run(true);
    assert!(
        !out.status.success(),
        "CI=1 without vectors passed:\n{}",
        text(&out)
    );
    assert!(
        passed.is_empty(),
        "with CI=1 and no vectors these tests still passed: {passed:?} (if they need no \
         vectors, list them as vector-free)\n{}",
        text(&out)
    );
    assert!(!failed.is_empty(), "no test ran:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for name in &failed {
        let why = format!(
            "{name}: CI is set and the test vectors are missing: {}",
            nowhere.display()
        );
        assert!(
            stdout.contains(&why),
            "{name} failed for another reason:\n{}",
            text(&out)
        );
    }

    let (out, passed, skipped_failed) = run(false);
    assert!(
        out.status.success(),
        "without CI and vectors a test failed:\n{}",
        text(&out)
    );
    assert!(skipped_failed.is_empty());
    assert_eq!(passed, failed, "the same tests, with and without CI");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in &passed {
        let said = format!(
            "SKIPPED: {name}: vectors not found at {}",
            nowhere.display()
        );
        assert!(
            stderr.contains(&said),
            "{name} passed silently:\n{}",
            text(&out)
        );
    }
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
