//! The `tessera key` and `tessera token` commands, run as the real binary, and the
//! server's commands on PostgreSQL (when `TESSERA_TEST_POSTGRES` names a database).
//!
//! Each test works in its own temporary directory and asserts stdout, stderr and the
//! exit code: 0 success, 1 a token or JWE refused, 2 bad usage or a key refused.
//! RSA keys are slow to generate, so one is generated (by the binary) and shared.
//!
//! Choice documented here (`verify_alg_outside_the_keys_family_is_usage`): an `--alg`
//! that the key can never verify with (HS256 with an RSA key, PS256 with a key
//! pinned to RS256, HS512 with a 32-byte secret) is bad usage, exit 2, whatever the
//! token: the mistake is on the command line. A *token* whose algorithm the key may
//! not verify is refused, exit 1.

use std::io::Read as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_jose::{Curve, Jwk};

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

const JWS_ALGS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA",
];
const JWE_ALGS: [&str; 10] = [
    "dir",
    "A128KW",
    "A192KW",
    "A256KW",
    "RSA-OAEP",
    "RSA-OAEP-256",
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
];
const ENCS: [&str; 6] = [
    "A128GCM",
    "A192GCM",
    "A256GCM",
    "A128CBC-HS256",
    "A192CBC-HS384",
    "A256CBC-HS512",
];

// ----- harness ------------------------------------------------------------------------

/// A fresh directory under Cargo's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "tessera-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// Asserts success; returns stdout without its final newline.
    fn ok(&self) -> String {
        assert_eq!(self.code, 0, "{self:?}");
        let text = self.text();
        assert!(text.ends_with('\n'), "{self:?}");
        text.trim_end_matches('\n').to_owned()
    }

    /// Asserts exit `code`, nothing on stdout, and one `tessera: ` line on stderr
    /// containing `needle`.
    fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
        assert!(self.stderr.starts_with("tessera: "), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "{self:?}");
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {self:?}"
        );
    }
}

fn run(dir: &TempDir, args: &[&str]) -> Out {
    run_stdin(dir, args, None)
}

fn run_stdin(dir: &TempDir, args: &[&str], stdin: Option<&[u8]>) -> Out {
    run_env(dir, args, stdin, &[])
}

fn run_env(dir: &TempDir, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Out {
    let mut child = Command::new(TESSERA)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(&dir.0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        // A separate thread, so that a large input cannot deadlock against stdout.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    // Read both pipes aside, and give the command a deadline: a command that should
    // have refused to start (a `serve` that ignored a bad setting) fails the test
    // instead of hanging it.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tessera {args:?} still running after 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Out {
        code: status.code().unwrap(),
        stdout: stdout.join().unwrap(),
        stderr: String::from_utf8(stderr.join().unwrap()).unwrap(),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JSON in part `i` of a compact token, decoded here (not by the binary).
fn part(token: &str, i: usize) -> Value {
    let segment = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

fn header(token: &str) -> Value {
    part(token, 0)
}

fn payload(token: &str) -> Value {
    part(token, 1)
}

/// One RSA key for the whole suite, generated by the binary, *without* its `alg`
/// so that it serves every RSA algorithm.
fn rsa_jwk() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = TempDir::new();
        let out = run(&dir, &["key", "generate", "--alg", "RS256"]);
        let mut v = out.json();
        v.as_object_mut().unwrap().remove("alg");
        v.to_string()
    })
}

/// A private key file for a JWS algorithm, unpinned (no `alg`) for RSA.
fn jws_key(dir: &TempDir, alg: &str) -> String {
    let jwk = if alg.starts_with("RS") || alg.starts_with("PS") {
        rsa_jwk().to_owned()
    } else {
        run(dir, &["key", "generate", "--alg", alg]).ok()
    };
    dir.write(&format!("{alg}.jwk"), jwk)
}

fn sign(dir: &TempDir, key: &str, extra: &[&str]) -> String {
    let mut args = vec!["--key", key];
    args.extend_from_slice(extra);
    sign_args(dir, &args)
}

/// `tessera token sign ARGS`, which must succeed; the token.
fn sign_args(dir: &TempDir, args: &[&str]) -> String {
    let mut all = vec!["token", "sign"];
    all.extend_from_slice(args);
    run(dir, &all).ok()
}

/// A token signed by the library with exactly these claims (no `iat` added).
fn lib_token(key: &Jwk, alg: tessera_jose::Algorithm, claims: &Value) -> String {
    tessera_jose::jwt::encode(&tessera_jose::jws::Header::new(alg), claims, key).unwrap()
}

// ----- key generate / key public ---------------------------------------------------------

#[test]
fn generate_every_algorithm_gives_one_private_jwk_with_alg_and_thumbprint_kid() {
    let dir = TempDir::new();
    /// (alg, extra flags, kty, crv, oct length or RSA bits)
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static str,
        Option<&'static str>,
        usize,
    );
    let expect: &[Case] = &[
        // (alg, extra flags, kty, crv, oct length or RSA bits)
        ("HS256", &[], "oct", None, 32),
        ("HS384", &[], "oct", None, 48),
        ("HS512", &[], "oct", None, 64),
        ("RS256", &[], "RSA", None, 2048),
        ("RS384", &[], "RSA", None, 2048),
        ("RS512", &[], "RSA", None, 2048),
        ("PS256", &[], "RSA", None, 2048),
        ("PS384", &[], "RSA", None, 2048),
        ("PS512", &[], "RSA", None, 2048),
        ("ES256", &[], "EC", Some("P-256"), 0),
        ("ES384", &[], "EC", Some("P-384"), 0),
        ("ES512", &[], "EC", Some("P-521"), 0),
        ("EdDSA", &[], "OKP", Some("Ed25519"), 0),
        ("dir", &[], "oct", None, 32),
        ("A128KW", &[], "oct", None, 16),
        ("A192KW", &[], "oct", None, 24),
        ("A256KW", &[], "oct", None, 32),
        ("RSA-OAEP", &[], "RSA", None, 2048),
        ("RSA-OAEP-256", &[], "RSA", None, 2048),
        ("ECDH-ES", &[], "EC", Some("P-256"), 0),
        ("ECDH-ES+A128KW", &[], "EC", Some("P-256"), 0),
        ("ECDH-ES+A192KW", &[], "EC", Some("P-256"), 0),
        ("ECDH-ES+A256KW", &[], "EC", Some("P-256"), 0),
        // Choices.
        ("ES384", &["--crv", "P-384"], "EC", Some("P-384"), 0),
        ("EdDSA", &["--crv", "Ed25519"], "OKP", Some("Ed25519"), 0),
        ("ECDH-ES", &["--crv", "X25519"], "OKP", Some("X25519"), 0),
        (
            "ECDH-ES+A256KW",
            &["--crv", "P-521"],
            "EC",
            Some("P-521"),
            0,
        ),
        ("RSA-OAEP-256", &["--bits", "3072"], "RSA", None, 3072),
        ("HS256", &["--bits", "512"], "oct", None, 64),
        ("dir", &["--enc", "A128GCM"], "oct", None, 16),
        ("dir", &["--enc", "A192GCM"], "oct", None, 24),
        ("dir", &["--enc", "A128CBC-HS256"], "oct", None, 32),
        ("dir", &["--enc", "A192CBC-HS384"], "oct", None, 48),
        ("dir", &["--enc", "A256CBC-HS512"], "oct", None, 64),
    ];
    for &(alg, extra, kty, crv, size) in expect {
        let mut args = vec!["key", "generate", "--alg", alg];
        args.extend_from_slice(extra);
        let out = run(&dir, &args);
        let line = out.ok();
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(out.stderr.is_empty(), "{out:?}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["kty"], kty, "{alg} {extra:?}");
        assert_eq!(v["alg"], alg, "{alg} {extra:?}");
        assert_eq!(v.get("crv").and_then(Value::as_str), crv, "{alg} {extra:?}");
        assert!(
            v.get("use").is_none() && v.get("key_ops").is_none(),
            "{line}"
        );
        let key = Jwk::from_json(&line).unwrap();
        assert!(key.is_private(), "{alg}");
        assert_eq!(v["kid"].as_str(), Some(key.thumbprint().as_str()), "{alg}");
        match kty {
            "oct" => assert_eq!(key.secret_len(), Some(size), "{alg} {extra:?}"),
            "RSA" => assert_eq!(key.rsa_bits(), Some(size), "{alg} {extra:?}"),
            _ => assert!(v["d"].is_string()),
        }
    }
    // --kid replaces the thumbprint.
    let v = run(
        &dir,
        &["key", "generate", "--alg", "ES256", "--kid", "2026-11"],
    )
    .json();
    assert_eq!(v["kid"], "2026-11");
    // Two keys are never the same.
    let a = run(&dir, &["key", "generate", "--alg", "EdDSA"]).ok();
    let b = run(&dir, &["key", "generate", "--alg", "EdDSA"]).ok();
    assert_ne!(a, b);
}

#[test]
fn generate_refuses_contradictions_and_unknown_names() {
    let dir = TempDir::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--alg", "ES256", "--crv", "P-384"],
            "ES256 uses the curve P-256",
        ),
        (
            &["--alg", "ES384", "--crv", "P-256"],
            "ES384 uses the curve P-384",
        ),
        (
            &["--alg", "ES512", "--crv", "Ed25519"],
            "ES512 uses the curve P-521",
        ),
        (
            &["--alg", "EdDSA", "--crv", "X25519"],
            "EdDSA uses the curve Ed25519",
        ),
        (
            &["--alg", "ECDH-ES", "--crv", "Ed25519"],
            "P-256, P-384, P-521 or X25519",
        ),
        (
            &["--alg", "ECDH-ES", "--crv", "P-999"],
            "P-256, P-384, P-521 or X25519",
        ),
        (
            &["--alg", "HS256", "--crv", "P-256"],
            "--crv does not apply to HS256",
        ),
        (&["--alg", "RS256", "--bits", "1024"], "under 2048 bits"),
        (
            &["--alg", "RSA-OAEP", "--bits", "2500"],
            "2048, 3072, 4096 or 8192",
        ),
        (&["--alg", "HS512", "--bits", "256"], "at least 512 bits"),
        (&["--alg", "HS256", "--bits", "300"], "multiple of 8"),
        (&["--alg", "A128KW", "--bits", "256"], "exactly 128 bits"),
        (
            &["--alg", "ES256", "--bits", "256"],
            "--bits does not apply to ES256",
        ),
        (
            &["--alg", "ES256", "--enc", "A128GCM"],
            "--enc applies only to --alg dir",
        ),
        (
            &["--alg", "dir", "--enc", "A512GCM"],
            "unknown content encryption",
        ),
        (&["--alg", "none"], "unknown algorithm \"none\""),
        (&["--alg", "RSA1_5"], "unknown algorithm \"RSA1_5\""),
        (&["--alg", "hs256"], "unknown algorithm"),
        (&["--alg", "ES256", "--kid", ""], "--kid cannot be empty"),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["key", "generate"];
        args.extend_from_slice(flags);
        run(&dir, &args).fails(2, needle);
    }
    // clap's own usage errors: exit 2, one `tessera: ` line.
    run(&dir, &["key", "generate"]).fails(2, "--alg <ALG>");
    run(&dir, &["key", "generate", "--alg", "ES256", "--frobnicate"]).fails(2, "--frobnicate");
}

#[test]
fn key_public_prints_the_public_half_and_refuses_secrets() {
    let dir = TempDir::new();
    for alg in ["ES384", "EdDSA", "ECDH-ES+A128KW"] {
        let private = run(&dir, &["key", "generate", "--alg", alg]).ok();
        let file = dir.write("k.jwk", &private);
        let public = run(&dir, &["key", "public", &file]).json();
        let mut want: Value = serde_json::from_str(&private).unwrap();
        want.as_object_mut().unwrap().remove("d");
        assert_eq!(public, want, "{alg}");
    }
    let rsa = dir.write("rsa.jwk", rsa_jwk());
    let public = run(&dir, &["key", "public", &rsa]).json();
    for private_member in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(public.get(private_member).is_none(), "{public}");
    }
    assert!(public["n"].is_string() && public["e"] == "AQAB");

    // PEM in, JWK out.
    let ed = Jwk::generate_curve(Curve::Ed25519).unwrap();
    let pem = dir.write("ed.pem", ed.to_pem().unwrap());
    let public = run(&dir, &["key", "public", &pem]).json();
    assert_eq!(
        public,
        serde_json::from_str::<Value>(&ed.to_public().unwrap().to_json()).unwrap()
    );

    // A secret has no public half: exit 2, and the secret is not printed.
    let secret = run(&dir, &["key", "generate", "--alg", "HS256"]).ok();
    let k = serde_json::from_str::<Value>(&secret).unwrap()["k"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = dir.write("hs.jwk", &secret);
    let out = run(&dir, &["key", "public", &file]);
    out.fails(2, "no public part");
    assert!(!out.stderr.contains(&k));

    // A JWK Set: the public set; a secret inside it refuses the whole set.
    let a = Jwk::generate_curve(Curve::P256).unwrap().with_kid("a");
    let b = Jwk::generate_curve(Curve::X25519).unwrap().with_kid("b");
    let set = tessera_jose::JwkSet::new(vec![a.clone(), b.clone()]);
    let file = dir.write("set.jwks", set.to_json());
    let public = run(&dir, &["key", "public", &file]).json();
    let want = tessera_jose::JwkSet::new(vec![a.to_public().unwrap(), b.to_public().unwrap()]);
    assert_eq!(
        public,
        serde_json::from_str::<Value>(&want.to_json()).unwrap()
    );
    let with_secret = tessera_jose::JwkSet::new(vec![a, Jwk::generate_oct(32).unwrap()]);
    let file = dir.write("secret.jwks", with_secret.to_json());
    run(&dir, &["key", "public", &file]).fails(2, "no public part");

    run(&dir, &["key", "public", "missing.jwk"]).fails(2, "no such file");
    let junk = dir.write("junk", "hello");
    run(&dir, &["key", "public", &junk]).fails(2, "neither a JWK");
}

// ----- sign and verify -----------------------------------------------------------------

#[test]
fn sign_and_verify_round_trip_for_every_jws_algorithm() {
    let dir = TempDir::new();
    for alg in JWS_ALGS {
        let key = jws_key(&dir, alg);
        let token = sign(&dir, &key, &["--alg", alg, "--sub", "ada", "--exp", "1h"]);
        assert_eq!(token.split('.').count(), 3, "{alg}: {token}");

        let before = now();
        let claims = run(&dir, &["token", "verify", "--key", &key, &token]);
        let claims_json = claims.json();
        assert_eq!(claims.code, 0);
        assert!(claims.stderr.is_empty(), "{claims:?}");
        assert_eq!(claims_json["sub"], "ada", "{alg}");
        let iat = claims_json["iat"].as_i64().unwrap();
        let exp = claims_json["exp"].as_i64().unwrap();
        assert_eq!(exp - iat, 3600, "{alg}");
        assert!((before - 60..=before + 1).contains(&iat), "{alg}");
        assert_eq!(claims_json.as_object().unwrap().len(), 3, "{claims_json}");

        // The header: alg, typ, and the key's kid when it has one.
        let decoded = json!({"header": header(&token), "payload": payload(&token)});
        assert_eq!(decoded["header"]["alg"], alg);
        assert_eq!(decoded["header"]["typ"], "JWT");
        let key_json: Value =
            serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
        assert_eq!(decoded["header"]["kid"], key_json["kid"], "{alg}");

        // Asymmetric: the public key alone verifies, and --alg narrows to it.
        if !alg.starts_with("HS") {
            let public = run(&dir, &["key", "public", &key]).ok();
            let public = dir.write("pub.jwk", public);
            let out = run(
                &dir,
                &["token", "verify", "--key", &public, "--alg", alg, &token],
            );
            assert_eq!(out.json()["sub"], "ada", "{alg}");
            // And a public key cannot sign.
            run(&dir, &["token", "sign", "--key", &public])
                .fails(2, "signing needs the private key");
        }
    }
}

#[test]
fn sign_without_alg_uses_the_keys_alg_or_its_familys_default() {
    let dir = TempDir::new();
    let rsa = dir.write("rsa.jwk", rsa_jwk());
    let ec384 = Jwk::generate_curve(Curve::P384).unwrap();
    let ec384 = dir.write("ec384.jwk", ec384.to_json());
    let ed = dir.write(
        "ed.jwk",
        Jwk::generate_curve(Curve::Ed25519).unwrap().to_json(),
    );
    let pinned = dir.write(
        "ps.jwk",
        run(&dir, &["key", "generate", "--alg", "HS512"]).ok(),
    );
    let cases = [
        (&rsa, "RS256"),
        (&ec384, "ES384"),
        (&ed, "EdDSA"),
        (&pinned, "HS512"),
    ];
    for (key, want) in cases {
        let token = sign(&dir, key, &[]);
        let decoded = json!({"header": header(&token), "payload": payload(&token)});
        assert_eq!(decoded["header"]["alg"], want);
        // The key's kid, or none (the library-made keys have none).
        let key_json: Value = serde_json::from_str(&std::fs::read_to_string(key).unwrap()).unwrap();
        assert_eq!(
            decoded["header"].get("kid"),
            key_json.get("kid"),
            "{decoded}"
        );
    }
    let token = sign_args(&dir, &["--secret", "0123456789abcdef0123456789abcdef"]);
    let decoded = json!({"header": header(&token), "payload": payload(&token)});
    assert_eq!(decoded["header"]["alg"], "HS256");
    // --kid overrides the key's kid in the header.
    let token = sign(&dir, &pinned, &["--kid", "other"]);
    assert_eq!(header(&token)["kid"], "other");
}

#[test]
fn a_pinned_key_verifies_only_its_algorithm() {
    let dir = TempDir::new();
    let mut pinned: Value = serde_json::from_str(rsa_jwk()).unwrap();
    pinned["alg"] = json!("RS256");
    let pinned = dir.write("pinned.jwk", pinned.to_string());
    let unpinned = dir.write("unpinned.jwk", rsa_jwk());

    let rs = sign(&dir, &unpinned, &["--alg", "RS256", "--exp", "5m"]);
    let ps = sign(&dir, &unpinned, &["--alg", "PS256", "--exp", "5m"]);
    run(&dir, &["token", "verify", "--key", &pinned, &rs]).ok();
    run(&dir, &["token", "verify", "--key", &unpinned, &ps]).ok();
    // Same key material, but the JWK pins RS256: the PS256 token is refused.
    run(&dir, &["token", "verify", "--key", &pinned, &ps]).fails(1, "invalid token");
    // Asking for what the pin forbids is a usage error.
    run(
        &dir,
        &["token", "verify", "--key", &pinned, "--alg", "PS256", &rs],
    )
    .fails(2, "pinned to RS256");
    run(&dir, &["token", "sign", "--key", &pinned, "--alg", "PS256"]).fails(2, "pinned to RS256");
    // --alg narrows: an unpinned key told RS256 refuses the PS256 token.
    run(
        &dir,
        &["token", "verify", "--key", &unpinned, "--alg", "RS256", &ps],
    )
    .fails(1, "PS256 is not among the allowed algorithms");
    run(
        &dir,
        &[
            "token", "verify", "--key", &unpinned, "--alg", "RS256", "--alg", "PS256", &ps,
        ],
    )
    .ok();
}

#[test]
fn tokens_never_cross_key_families() {
    let dir = TempDir::new();
    let rsa = dir.write("rsa.jwk", rsa_jwk());
    let rsa_public_pem = Jwk::from_json(rsa_jwk())
        .unwrap()
        .to_public()
        .unwrap()
        .to_pem()
        .unwrap();
    let rsa_pem = dir.write("rsa.pem", &rsa_public_pem);

    // The classic confusion: HS256 keyed with the RSA public key's PEM text.
    let forged = sign_args(
        &dir,
        &["--secret", &rsa_public_pem, "--alg", "HS256", "--exp", "5m"],
    );
    for key in [&rsa, &rsa_pem] {
        run(&dir, &["token", "verify", "--key", key, &forged]).fails(1, "invalid token");
    }
    // ES256 against a P-384 key; EdDSA against an EC key; ES256 against a secret.
    let p256 = jws_key(&dir, "ES256");
    let es256 = sign(&dir, &p256, &["--exp", "5m"]);
    let p384 = dir.write(
        "p384.jwk",
        Jwk::generate_curve(Curve::P384).unwrap().to_json(),
    );
    run(&dir, &["token", "verify", "--key", &p384, &es256]).fails(1, "invalid token");
    let ed = jws_key(&dir, "EdDSA");
    let eddsa = sign(&dir, &ed, &["--exp", "5m"]);
    run(&dir, &["token", "verify", "--key", &p384, &eddsa]).fails(1, "invalid token");
    run(
        &dir,
        &["token", "verify", "--secret", &"s".repeat(64), &es256],
    )
    .fails(1, "invalid token");
}

#[test]
fn verify_alg_outside_the_keys_family_is_usage() {
    let dir = TempDir::new();
    let rsa = dir.write("rsa.jwk", rsa_jwk());
    let token = sign(&dir, &rsa, &["--exp", "5m"]);
    run(
        &dir,
        &["token", "verify", "--key", &rsa, "--alg", "HS256", &token],
    )
    .fails(2, "HS256 cannot be used with an RSA key");
    run(
        &dir,
        &[
            "token", "verify", "--key", &rsa, "--alg", "RS256", "--alg", "ES256", &token,
        ],
    )
    .fails(2, "ES256 cannot be used with an RSA key");
    run(&dir, &["token", "sign", "--key", &rsa, "--alg", "EdDSA"])
        .fails(2, "EdDSA cannot be used with an RSA key");
    let x = dir.write(
        "x.jwk",
        Jwk::generate_curve(Curve::X25519).unwrap().to_json(),
    );
    run(&dir, &["token", "verify", "--key", &x, &token]).fails(2, "cannot sign or verify");
    run(&dir, &["token", "sign", "--key", &x]).fails(2, "cannot sign or verify");
    let enc = dir.write(
        "enc.jwk",
        run(&dir, &["key", "generate", "--alg", "ECDH-ES"]).ok(),
    );
    run(&dir, &["token", "verify", "--key", &enc, &token]).fails(2, "not a signature algorithm");
    // Unknown names, and `none`, are refused by the flag parser.
    run(
        &dir,
        &["token", "verify", "--key", &rsa, "--alg", "none", &token],
    )
    .fails(2, "none");
    run(&dir, &["token", "sign", "--key", &rsa, "--alg", "RSA-OAEP"])
        .fails(2, "not a JWS algorithm");
}

#[test]
fn expiry_leeway_and_no_exp() {
    let dir = TempDir::new();
    let key = jws_key(&dir, "ES256");
    let jwk = Jwk::from_json(std::fs::read_to_string(&key).unwrap()).unwrap();
    let alg = tessera_jose::Algorithm::ES256;

    let expired = sign(
        &dir,
        &key,
        &["--claims", &format!(r#"{{"exp": {}}}"#, now() - 30)],
    );
    run(&dir, &["token", "verify", "--key", &key, &expired]).fails(1, "expired");
    run(
        &dir,
        &["token", "verify", "--key", &key, "--leeway", "5", &expired],
    )
    .fails(1, "expired");
    run(
        &dir,
        &[
            "token", "verify", "--key", &key, "--leeway", "120", &expired,
        ],
    )
    .ok();
    run(
        &dir,
        &["token", "verify", "--key", &key, "--leeway", "2m", &expired],
    )
    .ok();
    run(
        &dir,
        &["token", "verify", "--key", &key, "--leeway", "1h", &expired],
    )
    .ok();
    // --no-exp does not excuse an exp that is present.
    run(
        &dir,
        &["token", "verify", "--key", &key, "--no-exp", &expired],
    )
    .fails(1, "expired");

    let endless = sign(&dir, &key, &["--sub", "ada"]);
    run(&dir, &["token", "verify", "--key", &key, &endless]).fails(1, "no exp claim");
    let out = run(
        &dir,
        &["token", "verify", "--key", &key, "--no-exp", &endless],
    );
    assert_eq!(out.json()["sub"], "ada");

    // nbf in the future, iat in the future.
    let early = lib_token(&jwk, alg, &json!({"exp": now() + 600, "nbf": now() + 300}));
    run(&dir, &["token", "verify", "--key", &key, &early]).fails(1, "not valid yet");
    run(
        &dir,
        &["token", "verify", "--key", &key, "--leeway", "10m", &early],
    )
    .ok();
    let future = lib_token(&jwk, alg, &json!({"exp": now() + 600, "iat": now() + 300}));
    run(&dir, &["token", "verify", "--key", &key, &future]).fails(1, "issued in the future");

    // Registered claims of the wrong JSON type are refused, never skipped.
    let stringy = lib_token(&jwk, alg, &json!({"exp": "4102444800"}));
    run(&dir, &["token", "verify", "--key", &key, &stringy]).fails(1, "invalid token");
    let numeric_sub = lib_token(&jwk, alg, &json!({"exp": now() + 600, "sub": 42}));
    run(&dir, &["token", "verify", "--key", &key, &numeric_sub]).fails(1, "invalid token");
    // ... and sign does not make such tokens.
    run(
        &dir,
        &[
            "token",
            "sign",
            "--key",
            &key,
            "--claims",
            r#"{"exp":"soon"}"#,
        ],
    )
    .fails(2, "the claims are invalid");

    // Bad durations are usage errors.
    // "-5" reads as a flag, not a value: clap's own error, still exit 2.
    run(&dir, &["token", "sign", "--key", &key, "--exp", "-5"]).fails(2, "'-5'");
    for bad in ["5w", "1.5h", "", "m", "+5"] {
        run(
            &dir,
            &["token", "verify", "--key", &key, "--leeway", bad, &endless],
        )
        .fails(2, "--leeway");
        run(&dir, &["token", "sign", "--key", &key, "--exp", bad]).fails(2, "--exp");
    }
}

#[test]
fn issuer_and_audience_are_checked_only_when_asked() {
    let dir = TempDir::new();
    let key = jws_key(&dir, "EdDSA");
    let token = sign(
        &dir,
        &key,
        &["--iss", "https://auth", "--aud", "api", "--exp", "5m"],
    );
    let verify = |extra: &[&str]| {
        let mut args = vec!["token", "verify", "--key", key.as_str()];
        args.extend_from_slice(extra);
        args.push(&token);
        run(&dir, &args)
    };
    verify(&[]).ok();
    verify(&["--iss", "https://auth"]).ok();
    verify(&["--iss", "https://evil"]).fails(1, "issuer");
    verify(&["--iss", "https://evil", "--iss", "https://auth"]).ok();
    verify(&["--aud", "api"]).ok();
    verify(&["--aud", "web"]).fails(1, "audience");
    verify(&["--aud", "web", "--aud", "api"]).ok();
    verify(&["--iss", "https://auth", "--aud", "web"]).fails(1, "audience");

    // A token without iss/aud fails only when they are asked for.
    let bare = sign(&dir, &key, &["--exp", "5m"]);
    run(&dir, &["token", "verify", "--key", &key, &bare]).ok();
    run(
        &dir,
        &["token", "verify", "--key", &key, "--iss", "x", &bare],
    )
    .fails(1, "issuer");
    run(
        &dir,
        &["token", "verify", "--key", &key, "--aud", "x", &bare],
    )
    .fails(1, "audience");

    // An array aud: any one of them matches.
    let many = sign(&dir, &key, &["--aud", "a", "--aud", "b", "--exp", "5m"]);
    run(
        &dir,
        &["token", "verify", "--key", &key, "--aud", "b", &many],
    )
    .ok();
    run(
        &dir,
        &["token", "verify", "--key", &key, "--aud", "c", &many],
    )
    .fails(1, "audience");
}

#[test]
fn aud_once_is_a_string_and_repeated_an_array() {
    let dir = TempDir::new();
    let key = jws_key(&dir, "HS256");
    let claims = |extra: &[&str]| {
        let token = sign(&dir, &key, extra);
        payload(&token).clone()
    };
    assert_eq!(claims(&["--aud", "api"])["aud"], json!("api"));
    assert_eq!(
        claims(&["--aud", "api", "--aud", "web"])["aud"],
        json!(["api", "web"])
    );
    assert!(claims(&[]).get("aud").is_none());
}

#[test]
fn claims_from_json_or_file_and_flags_win() {
    let dir = TempDir::new();
    let key = jws_key(&dir, "ES384");
    let file = dir.write(
        "claims.json",
        r#"{"sub": "from-file", "iss": "file-iss", "aud": ["x", "y"], "roles": ["admin"], "exp": 1, "iat": 7, "nested": {"a": [1, 2]}}"#,
    );
    let at = format!("@{file}");
    let token = sign(
        &dir,
        &key,
        &[
            "--claims", &at, "--sub", "ada", "--aud", "api", "--exp", "10m",
        ],
    );
    let claims = payload(&token);
    assert_eq!(claims["sub"], "ada");
    assert_eq!(claims["iss"], "file-iss");
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(claims["nested"], json!({"a": [1, 2]}));
    // An iat given in the claims is kept; exp from --exp wins over the file's.
    assert_eq!(claims["iat"], 7);
    assert!(claims["exp"].as_i64().unwrap() >= now() + 590);
    // verify prints exactly the claims object.
    let verified = run(&dir, &["token", "verify", "--key", &key, &token]).json();
    assert_eq!(verified, claims);

    let inline = sign(
        &dir,
        &key,
        &["--claims", r#"{"scope":"read write"}"#, "--iss", "me"],
    );
    let claims = payload(&inline);
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["iss"], "me");
    assert!(claims["iat"].is_i64());

    for bad in ["[1, 2]", "\"sub\"", "42", "null"] {
        run(&dir, &["token", "sign", "--key", &key, "--claims", bad])
            .fails(2, "must be a JSON object");
    }
    run(&dir, &["token", "sign", "--key", &key, "--claims", "{nope"]).fails(2, "not valid JSON");
    // What verify would refuse is not minted: a member twice, a registered claim of
    // the wrong type.
    for bad in [r#"{"a":1,"a":2}"#, r#"{"exp":"soon"}"#] {
        run(&dir, &["token", "sign", "--key", &key, "--claims", bad])
            .fails(2, "the claims are invalid");
    }
    run(
        &dir,
        &["token", "sign", "--key", &key, "--claims", "@missing.json"],
    )
    .fails(2, "no such file");
}

#[test]
fn tampered_garbled_and_unsecured_tokens_exit_1() {
    let dir = TempDir::new();
    let key = jws_key(&dir, "HS384");
    let token = sign(&dir, &key, &["--sub", "ada", "--exp", "5m"]);
    let parts: Vec<&str> = token.split('.').collect();

    // A different payload under the original signature.
    let evil_payload = b64(br#"{"sub":"admin","exp":4102444800}"#);
    let swapped = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
    run(&dir, &["token", "verify", "--key", &key, &swapped]).fails(1, "invalid token");
    // One signature byte changed.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
    run(&dir, &["token", "verify", "--key", &key, &flipped]).fails(1, "signature");

    // alg: none, with and without a signature; and its case variants.
    let none_token = |alg: &str| {
        format!(
            "{}.{}.",
            b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes()),
            parts[1]
        )
    };
    for alg in ["none", "None", "NONE"] {
        run(&dir, &["token", "verify", "--key", &key, &none_token(alg)]).fails(1, "none");
        run(
            &dir,
            &[
                "token",
                "verify",
                "--key",
                &key,
                "--no-exp",
                &none_token(alg),
            ],
        )
        .fails(1, "none");
    }

    for garbled in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!.??.**",
        &format!("{token}."),
    ] {
        run(&dir, &["token", "verify", "--key", &key, garbled]).fails(1, "invalid token");
    }
    // A JWE handed to verify.
    let jwe =
        "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA";
    run(&dir, &["token", "verify", "--key", &key, jwe]).fails(1, "invalid token");
}

#[test]
fn oversize_tokens_exit_1_unless_max_size_allows_them() {
    let dir = TempDir::new();
    let key = jws_key(&dir, "ES256");
    let big = json!({"blob": "x".repeat(70 * 1024)}).to_string();
    let file = dir.write("big.json", &big);
    let token = sign(
        &dir,
        &key,
        &["--claims", &format!("@{file}"), "--exp", "5m"],
    );
    assert!(token.len() > 64 * 1024);
    run(&dir, &["token", "verify", "--key", &key, &token]).fails(1, "larger than 65536 bytes");
    let ok = run(
        &dir,
        &[
            "token",
            "verify",
            "--key",
            &key,
            "--max-size",
            "200000",
            &token,
        ],
    );
    assert_eq!(ok.json()["blob"].as_str().unwrap().len(), 70 * 1024);
    // Through stdin too.
    let out = run_stdin(
        &dir,
        &["token", "verify", "--key", &key, "-"],
        Some(token.as_bytes()),
    );
    out.fails(1, "larger than 65536 bytes");
    let out = run_stdin(
        &dir,
        &[
            "token",
            "verify",
            "--key",
            &key,
            "--max-size",
            "200000",
            "-",
        ],
        Some(token.as_bytes()),
    );
    out.ok();
    // And a small limit refuses a normal token.
    let small = sign(&dir, &key, &["--exp", "5m"]);
    run(
        &dir,
        &[
            "token",
            "verify",
            "--key",
            &key,
            "--max-size",
            "100",
            &small,
        ],
    )
    .fails(1, "larger than 100 bytes");
    run(
        &dir,
        &[
            "token",
            "verify",
            "--key",
            &key,
            "--max-size",
            "lots",
            &small,
        ],
    )
    .fails(2, "--max-size");
    // JSON nested deeper than 32 is refused, however large the size limit: sign will
    // not mint it, and verify refuses one minted elsewhere.
    let mut deep = String::from("1");
    for _ in 0..40 {
        deep = format!("[{deep}]");
    }
    let deep_claims = format!(r#"{{"d":{deep},"exp":4102444800}}"#);
    run(
        &dir,
        &["token", "sign", "--key", &key, "--claims", &deep_claims],
    )
    .fails(2, "deeper than 32");
    let jwk = Jwk::from_json(std::fs::read(&key).unwrap()).unwrap();
    let deep = lib_token(
        &jwk,
        tessera_jose::Algorithm::ES256,
        &serde_json::from_str(&deep_claims).unwrap(),
    );
    run(
        &dir,
        &[
            "token",
            "verify",
            "--key",
            &key,
            "--max-size",
            "200000",
            &deep,
        ],
    )
    .fails(1, "invalid token");
}

#[test]
fn verify_prints_the_claims_as_the_token_has_them_and_only_an_object() {
    let dir = TempDir::new();
    let key = jws_key(&dir, "ES256");
    let jwk = Jwk::from_json(std::fs::read(&key).unwrap()).unwrap();
    // Numbers keep their digits (a round trip through f64 would print 1.2345678901234568e29).
    let payload_text = r#"{"n":123456789012345678901234567890,"e":1e2,"z":-0,"exp":4102444800}"#;
    let token = tessera_jose::jws::sign(
        &tessera_jose::jws::Header::new(tessera_jose::Algorithm::ES256),
        payload_text.as_bytes(),
        &jwk,
    )
    .unwrap();
    let out = run(&dir, &["token", "verify", "--key", &key, &token]).ok();
    assert_eq!(out, payload_text);
    // RFC 7519 §7.2: the claims set is an object. An array is not read by position.
    for claims in [
        json!(["https://issuer", "alice", "api", 4_102_444_800_i64]),
        json!([]),
        json!(5),
    ] {
        let token = lib_token(&jwk, tessera_jose::Algorithm::ES256, &claims);
        run(
            &dir,
            &["token", "verify", "--key", &key, "--no-exp", &token],
        )
        .fails(1, "not a JSON object");
    }
    // A size limit of 0 is a mistake of usage, not a verdict on the token.
    let good = sign(&dir, &key, &["--exp", "5m"]);
    run(
        &dir,
        &["token", "verify", "--key", &key, "--max-size", "0", &good],
    )
    .fails(2, "--max-size");
}

#[test]
fn short_hmac_secrets_are_refused_up_front() {
    let dir = TempDir::new();
    let s31 = "k".repeat(31);
    let s32 = "k".repeat(32);
    let s48 = "k".repeat(48);
    run(&dir, &["token", "sign", "--secret", &s31]).fails(2, "the secret is 31 bytes");
    run(&dir, &["token", "sign", "--secret", &s32, "--alg", "HS384"])
        .fails(2, "HS384 needs at least 48");
    run(&dir, &["token", "sign", "--secret", &s48, "--alg", "HS512"])
        .fails(2, "HS512 needs at least 64");
    let token = sign_args(&dir, &["--secret", &s32, "--exp", "5m"]);
    run(&dir, &["token", "verify", "--secret", &s31, &token]).fails(2, "the secret is 31 bytes");
    run(
        &dir,
        &[
            "token", "verify", "--secret", &s32, "--alg", "HS512", &token,
        ],
    )
    .fails(2, "HS512 needs at least 64");
    run(&dir, &["token", "verify", "--secret", &s32, &token]).ok();
    // A 32-byte secret never verifies HS512: that token is refused (exit 1), not the key.
    let hs512 = sign_args(
        &dir,
        &["--secret", &"k".repeat(64), "--alg", "HS512", "--exp", "5m"],
    );
    run(&dir, &["token", "verify", "--secret", &s32, &hs512])
        .fails(1, "HS512 is not among the allowed");
    // A short oct JWK is refused the same way; the secret never appears in messages.
    let short = dir.write(
        "short.jwk",
        json!({"kty": "oct", "k": b64(b"tiny-secret")}).to_string(),
    );
    let out = run(&dir, &["token", "sign", "--key", &short]);
    out.fails(2, "the secret is 11 bytes");
    assert!(!out.stderr.contains("tiny") && !out.stderr.contains(&b64(b"tiny-secret")));
    run(&dir, &["token", "verify", "--key", &short, &token]).fails(2, "the secret is 11 bytes");
    // An empty secret.
    run(&dir, &["token", "sign", "--secret", ""]).fails(2, "empty");
}

#[test]
fn secret_file_is_read_raw_nothing_trimmed() {
    let dir = TempDir::new();
    let s32 = "0123456789abcdef0123456789abcdef";
    let with_newline = dir.write("secret.txt", format!("{s32}\n"));
    let exact = dir.write("exact.bin", s32);
    let token = sign_args(&dir, &["--secret-file", &with_newline, "--exp", "5m"]);
    // 33 bytes (the newline included) verify it; the 32 without the newline do not.
    run(
        &dir,
        &["token", "verify", "--secret-file", &with_newline, &token],
    )
    .ok();
    run(
        &dir,
        &["token", "verify", "--secret", &format!("{s32}\n"), &token],
    )
    .ok();
    run(&dir, &["token", "verify", "--secret", s32, &token]).fails(1, "signature");
    run(&dir, &["token", "verify", "--secret-file", &exact, &token]).fails(1, "signature");
    // Binary secrets are fine.
    let binary = dir.write("bin.key", (0u8..=255).collect::<Vec<u8>>());
    let token = sign_args(
        &dir,
        &["--secret-file", &binary, "--alg", "HS512", "--exp", "5m"],
    );
    run(&dir, &["token", "verify", "--secret-file", &binary, &token]).ok();
    run(&dir, &["token", "sign", "--secret-file", "nope.bin"]).fails(2, "no such file");
}

#[test]
fn key_arguments_exactly_one() {
    let dir = TempDir::new();
    let key = jws_key(&dir, "EdDSA");
    let s = "k".repeat(32);
    run(&dir, &["token", "sign"]).fails(2, "--key <FILE>|--secret <TEXT>|--secret-file <FILE>");
    run(&dir, &["token", "sign", "--key", &key, "--secret", &s]).fails(2, "cannot be used with");
    run(
        &dir,
        &["token", "sign", "--secret", &s, "--secret-file", &key],
    )
    .fails(2, "cannot be used with");
    run(&dir, &["token", "verify", "--key", &key]).fails(2, "<TOKEN|->");
    run(&dir, &["token", "sign", "--key", "missing.jwk"]).fails(2, "no such file");
    let garbage = dir.write(
        "garbage.jwk",
        r#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}"#,
    );
    run(&dir, &["token", "sign", "--key", &garbage]).fails(2, "is refused");
    let dup = dir.write("dup.jwk", r#"{"kty":"oct","k":"AAAA","k":"BBBB"}"#);
    run(&dir, &["token", "sign", "--key", &dup]).fails(2, "is refused");
    // Help exits 0 on stdout; an unknown subcommand or flag exits 2.
    let help = run(&dir, &["token", "verify", "--help"]);
    assert_eq!(help.code, 0);
    assert!(help.text().contains("--no-exp"), "{help:?}");
    assert!(help.stderr.is_empty());
    assert_eq!(run(&dir, &["--help"]).code, 0);
    // The server's commands are in the tree (their behaviour is tested with the server).
    for cmd in [
        &["serve"][..],
        &["user", "add"],
        &["client", "add"],
        &["key", "rotate"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = run(&dir, &args);
        assert_eq!(out.code, 0, "{cmd:?}: {out:?}");
        assert!(out.text().contains("--database"), "{cmd:?}: {out:?}");
    }
    assert_eq!(run(&dir, &["--version"]).code, 0);
    run(&dir, &["token", "frob"]).fails(2, "frob");
    run(&dir, &["token", "sign", "--key", &key, "--what"]).fails(2, "--what");
    let bare = run(&dir, &[]);
    assert_eq!(bare.code, 2, "{bare:?}");
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    let dir = TempDir::new();
    let generated = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
        ])
        .arg(dir.0.join("rsa1024.pem"))
        .stderr(Stdio::null())
        .status();
    if !generated.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED rsa_keys_under_2048_bits_are_refused: openssl is not available");
        return;
    }
    let pem = dir.0.join("rsa1024.pem").to_str().unwrap().to_owned();
    run(&dir, &["token", "sign", "--key", &pem]).fails(2, "is refused");
    run(&dir, &["token", "verify", "--key", &pem, "a.b.c"]).fails(2, "is refused");
    run(&dir, &["key", "public", &pem]).fails(2, "is refused");
    run(
        &dir,
        &[
            "token", "encrypt", "--key", &pem, "--alg", "RSA-OAEP", "--enc", "A128GCM", &pem,
        ],
    )
    .fails(2, "is refused");
    // Its public half too.
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(public.status.success());
    let public = dir.write("rsa1024.pub.pem", public.stdout);
    run(&dir, &["token", "verify", "--key", &public, "a.b.c"]).fails(2, "is refused");
}

#[test]
fn a_jwk_set_is_searched_by_kid() {
    let dir = TempDir::new();
    let a = Jwk::generate_curve(Curve::P256).unwrap().with_kid("a");
    let b = Jwk::generate_curve(Curve::Ed25519).unwrap().with_kid("b");
    let c = Jwk::generate_curve(Curve::P256).unwrap().with_kid("c");
    let private_set = tessera_jose::JwkSet::new(vec![a.clone(), b.clone()]);
    let private = dir.write("private.jwks", private_set.to_json());
    let public = dir.write("public.jwks", private_set.to_public().to_json());
    let c_file = dir.write("c.jwk", c.to_json());

    // Signing with a set needs --kid (two private keys), which also goes in the header.
    run(&dir, &["token", "sign", "--key", &private]).fails(2, "choose one with --kid");
    run(&dir, &["token", "sign", "--key", &private, "--kid", "z"])
        .fails(2, "no private key in the set has kid \"z\"");
    let by_a = sign(
        &dir,
        &private,
        &["--kid", "a", "--exp", "5m", "--sub", "by-a"],
    );
    let by_b = sign(
        &dir,
        &private,
        &["--kid", "b", "--exp", "5m", "--sub", "by-b"],
    );
    assert_eq!(header(&by_b)["alg"], "EdDSA");
    assert_eq!(header(&by_a)["kid"], "a");

    let verify = |token: &str| run(&dir, &["token", "verify", "--key", &public, token]);
    assert_eq!(verify(&by_a).json()["sub"], "by-a");
    assert_eq!(verify(&by_b).json()["sub"], "by-b");
    // A key outside the set, same curve as "a": its kid is unknown.
    let by_c = sign(&dir, &c_file, &["--exp", "5m"]);
    verify(&by_c).fails(1, "no key in the set has the token's kid");
    // c's token claiming to be "a" fails the signature.
    let as_a = sign(&dir, &c_file, &["--exp", "5m", "--kid", "a"]);
    verify(&as_a).fails(1, "signature");
    // --alg narrows across the set, and must be something the set can verify.
    run(
        &dir,
        &["token", "verify", "--key", &public, "--alg", "ES256", &by_b],
    )
    .fails(1, "EdDSA is not among the allowed algorithms");
    run(
        &dir,
        &["token", "verify", "--key", &public, "--alg", "RS256", &by_b],
    )
    .fails(2, "no key in the set can verify it");
    // A set with one private key signs without --kid; an empty set is refused.
    let single = dir.write("single.jwks", tessera_jose::JwkSet::new(vec![a]).to_json());
    let t = sign(&dir, &single, &["--exp", "5m"]);
    run(&dir, &["token", "verify", "--key", &public, &t]).ok();
    let empty = dir.write("empty.jwks", r#"{"keys": []}"#);
    run(&dir, &["token", "verify", "--key", &empty, &t]).fails(2, "no usable key");
    run(&dir, &["token", "sign", "--key", &public]).fails(2, "no private key");
}

#[test]
fn pem_keys_are_imported() {
    let dir = TempDir::new();
    let keys = [
        ("RS256", Jwk::from_json(rsa_jwk()).unwrap()),
        ("PS384", Jwk::from_json(rsa_jwk()).unwrap()),
        ("ES256", Jwk::generate_curve(Curve::P256).unwrap()),
        ("ES384", Jwk::generate_curve(Curve::P384).unwrap()),
        ("ES512", Jwk::generate_curve(Curve::P521).unwrap()),
        ("EdDSA", Jwk::generate_curve(Curve::Ed25519).unwrap()),
    ];
    for (alg, key) in keys {
        let private = dir.write("k.pem", key.to_pem().unwrap());
        let public = dir.write("k.pub.pem", key.to_public().unwrap().to_pem().unwrap());
        assert!(
            std::fs::read_to_string(&public)
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        let token = sign(&dir, &private, &["--alg", alg, "--exp", "5m", "--sub", alg]);
        let hdr = header(&token);
        assert_eq!(
            hdr,
            json!({"alg": alg, "typ": "JWT"}),
            "PEM keys have no kid"
        );
        assert_eq!(
            run(&dir, &["token", "verify", "--key", &public, &token]).json()["sub"],
            alg
        );
        // The JWK the library exported verifies the token made from the PEM.
        let jwk = dir.write("k.jwk", key.to_public().unwrap().to_json());
        run(&dir, &["token", "verify", "--key", &jwk, &token]).ok();
        // A public PEM cannot sign.
        run(&dir, &["token", "sign", "--key", &public]).fails(2, "signing needs the private key");
    }
    let bad = dir.write(
        "bad.pem",
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    );
    run(&dir, &["token", "sign", "--key", &bad]).fails(2, "is refused");
}

#[test]
fn decode_shows_header_and_payload_and_says_nothing_was_verified() {
    let dir = TempDir::new();
    let key = jws_key(&dir, "EdDSA");
    let token = sign(
        &dir,
        &key,
        &["--sub", "ada", "--aud", "api", "--claims", r#"{"n": 1}"#],
    );
    let out = run(&dir, &["token", "decode", &token]);
    assert_eq!(out.code, 0);
    let v = out.json();
    assert_eq!(v.as_object().unwrap().len(), 2);
    assert_eq!(v["header"]["alg"], "EdDSA");
    assert_eq!(v["payload"]["sub"], "ada");
    assert_eq!(v["payload"]["n"], 1);
    assert!(
        out.stderr
            .starts_with("tessera: warning: nothing was verified"),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1);

    // decode works on any signature, even a wrong one, and on expired tokens: that is its point.
    let other = jws_key(&dir, "ES256");
    let forged = sign(&dir, &other, &["--claims", r#"{"exp": 1}"#]);
    assert_eq!(
        run(&dir, &["token", "decode", &forged]).json()["payload"]["exp"],
        1
    );

    // A JWE: the header only.
    let jwe =
        "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA";
    let out = run(&dir, &["token", "decode", jwe]);
    assert_eq!(
        out.json(),
        json!({"header": {"alg": "dir", "enc": "A256GCM"}, "payload": null})
    );
    assert!(out.stderr.contains("nothing was verified"));

    for garbled in [
        "",
        "abc",
        "a.b.c",
        "e30.e30",
        "e30.!!.e30",
        "e30.e30.e30.e30",
    ] {
        run(&dir, &["token", "decode", garbled]).fails(1, "cannot decode the token");
    }
}

#[test]
fn tokens_from_stdin_have_whitespace_trimmed() {
    let dir = TempDir::new();
    let key = jws_key(&dir, "ES512");
    let token = sign(&dir, &key, &["--sub", "ada", "--exp", "5m"]);
    for wrapped in [
        format!("{token}\n"),
        format!("  \r\n\t{token} \r\n\n"),
        token.clone(),
    ] {
        let out = run_stdin(
            &dir,
            &["token", "verify", "--key", &key, "-"],
            Some(wrapped.as_bytes()),
        );
        assert_eq!(out.json()["sub"], "ada");
        let out = run_stdin(&dir, &["token", "decode", "-"], Some(wrapped.as_bytes()));
        assert_eq!(out.json()["payload"]["sub"], "ada");
    }
    // On the command line the token is taken as it is.
    run(
        &dir,
        &["token", "verify", "--key", &key, &format!("{token}\n")],
    )
    .fails(1, "invalid token");
    // Empty or non-UTF-8 stdin: a refused token.
    run_stdin(
        &dir,
        &["token", "verify", "--key", &key, "-"],
        Some(b"  \n"),
    )
    .fails(1, "invalid token");
    run_stdin(
        &dir,
        &["token", "verify", "--key", &key, "-"],
        Some(b"\xff\xfe"),
    )
    .fails(1, "not UTF-8");
}

// ----- encrypt and decrypt ---------------------------------------------------------------

/// The (private file, public file) pair for a JWE algorithm with `enc`.
fn jwe_keys(dir: &TempDir, alg: &str, enc: &str, crv: Option<&str>) -> (String, String) {
    let name = format!("{alg}-{enc}-{}", crv.unwrap_or("default"));
    let private = if alg.starts_with("RSA") {
        rsa_jwk().to_owned()
    } else {
        let mut args = vec!["key", "generate", "--alg", alg];
        if alg == "dir" {
            args.extend_from_slice(&["--enc", enc]);
        }
        if let Some(c) = crv {
            args.extend_from_slice(&["--crv", c]);
        }
        run(dir, &args).ok()
    };
    let private = dir.write(&format!("{name}.jwk"), private);
    let public = if alg == "dir" || alg.starts_with('A') {
        private.clone()
    } else {
        let public = run(dir, &["key", "public", &private]).ok();
        dir.write(&format!("{name}.pub.jwk"), public)
    };
    (private, public)
}

#[test]
fn a_jwe_over_the_default_size_says_so_and_decrypts_with_max_size() {
    let dir = TempDir::new();
    let (private, public) = jwe_keys(&dir, "ECDH-ES+A256KW", "A256GCM", None);
    let plaintext: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    let file = dir.write("big.bin", &plaintext);
    let out = run(
        &dir,
        &[
            "token",
            "encrypt",
            "--key",
            &public,
            "--alg",
            "ECDH-ES+A256KW",
            "--enc",
            "A256GCM",
            &file,
        ],
    );
    let jwe = out.ok();
    assert!(jwe.len() > 65_536);
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("--max-size"),
        "{out:?}"
    );
    run(&dir, &["token", "decrypt", "--key", &private, &jwe]).fails(1, "larger than 65536");
    let limit = jwe.len().to_string();
    let decrypt = ["token", "decrypt", "--key", &private, "--max-size", &limit];
    // As an argument and through stdin.
    for (token, stdin) in [(jwe.as_str(), None), ("-", Some(jwe.as_bytes()))] {
        let mut args = decrypt.to_vec();
        args.push(token);
        let opened = run_stdin(&dir, &args, stdin);
        assert_eq!(opened.code, 0, "{opened:?}");
        assert_eq!(opened.stdout, plaintext);
    }
    run(
        &dir,
        &[
            "token",
            "decrypt",
            "--key",
            &private,
            "--max-size",
            "0",
            &jwe,
        ],
    )
    .fails(2, "--max-size");
}

#[test]
fn encrypt_and_decrypt_round_trip_for_every_alg_and_enc() {
    let dir = TempDir::new();
    // Bytes that are neither UTF-8 nor free of newlines come back exactly.
    let mut plaintext = b"hello \xff\x00 world\r\n".to_vec();
    plaintext.extend_from_slice(&[b'\n'; 3]);
    let payload = dir.write("payload.bin", &plaintext);
    for alg in JWE_ALGS {
        // One key per algorithm (per enc only for dir, whose key length is the enc's).
        let mut keys = None;
        for enc in ENCS {
            if alg == "dir" || keys.is_none() {
                keys = Some(jwe_keys(&dir, alg, enc, None));
            }
            let (private, public) = keys.clone().unwrap();
            let jwe = run(
                &dir,
                &[
                    "token", "encrypt", "--key", &public, "--alg", alg, "--enc", enc, &payload,
                ],
            )
            .ok();
            assert_eq!(jwe.split('.').count(), 5, "{alg} {enc}");
            let hdr = header(&jwe);
            assert_eq!(hdr["alg"], alg);
            assert_eq!(hdr["enc"], enc);
            assert!(hdr.get("cty").is_none(), "{hdr}");
            let out = run(&dir, &["token", "decrypt", "--key", &private, &jwe]);
            assert_eq!(out.code, 0, "{alg} {enc}: {out:?}");
            assert_eq!(out.stdout, plaintext, "{alg} {enc}");
            assert!(out.stderr.is_empty());
        }
    }
    // The other curves of ECDH-ES.
    for crv in ["P-384", "P-521", "X25519"] {
        for alg in ["ECDH-ES", "ECDH-ES+A256KW"] {
            let (private, public) = jwe_keys(&dir, alg, "A256GCM", Some(crv));
            let jwe = run_stdin(
                &dir,
                &[
                    "token",
                    "encrypt",
                    "--key",
                    &public,
                    "--alg",
                    alg,
                    "--enc",
                    "A128CBC-HS256",
                    "-",
                ],
                Some(&plaintext),
            )
            .ok();
            let out = run_stdin(
                &dir,
                &["token", "decrypt", "--key", &private, "-"],
                Some(format!("\n{jwe}\n").as_bytes()),
            );
            assert_eq!(out.stdout, plaintext, "{alg} {crv}");
        }
    }
    // A raw secret works for dir and AES-KW, from --secret and from stdin payload by default.
    let s16 = "0123456789abcdef";
    let jwe = run_stdin(
        &dir,
        &[
            "token", "encrypt", "--secret", s16, "--alg", "A128KW", "--enc", "A256GCM",
        ],
        Some(b"x"),
    )
    .ok();
    assert_eq!(
        run(&dir, &["token", "decrypt", "--secret", s16, &jwe]).stdout,
        b"x"
    );
    // An empty payload is a valid plaintext.
    let empty = dir.write("empty", b"");
    let jwe = run(
        &dir,
        &[
            "token", "encrypt", "--secret", s16, "--alg", "A128KW", "--enc", "A128GCM", &empty,
        ],
    )
    .ok();
    let out = run(&dir, &["token", "decrypt", "--secret", s16, &jwe]);
    assert_eq!((out.code, out.stdout.len()), (0, 0));
}

#[test]
fn nested_jwt_is_marked_and_comes_back_as_the_inner_jws() {
    let dir = TempDir::new();
    let sig_key = jws_key(&dir, "EdDSA");
    let (enc_private, enc_public) = jwe_keys(&dir, "ECDH-ES+A256KW", "A256GCM", Some("X25519"));
    let jws = sign(&dir, &sig_key, &["--sub", "ada", "--exp", "5m"]);
    // As `tessera token sign > file` leaves it: with a newline.
    let file = dir.write("inner.jwt", format!("{jws}\n"));
    let jwe = run(
        &dir,
        &[
            "token",
            "encrypt",
            "--key",
            &enc_public,
            "--alg",
            "ECDH-ES+A256KW",
            "--enc",
            "A256GCM",
            &file,
        ],
    )
    .ok();
    let hdr = header(&jwe);
    assert_eq!(hdr["cty"], "JWT");
    let out = run(&dir, &["token", "decrypt", "--key", &enc_private, &jwe]);
    assert_eq!(out.text(), jws, "the inner compact JWS, exactly");
    let inner = run_stdin(
        &dir,
        &["token", "verify", "--key", &sig_key, "-"],
        Some(&out.stdout),
    );
    assert_eq!(inner.json()["sub"], "ada");
    // Something that merely has two dots is not a JWS.
    let dotted = dir.write("dotted.txt", "a.b.c");
    let jwe = run(
        &dir,
        &[
            "token",
            "encrypt",
            "--key",
            &enc_public,
            "--alg",
            "ECDH-ES+A256KW",
            "--enc",
            "A128GCM",
            &dotted,
        ],
    )
    .ok();
    assert!(header(&jwe).get("cty").is_none());
}

#[test]
fn bad_jwes_exit_1_and_bad_keys_exit_2() {
    let dir = TempDir::new();
    let (private, public) = jwe_keys(&dir, "RSA-OAEP-256", "A256GCM", None);
    let payload = dir.write("p.txt", "secret stuff");
    let jwe = run(
        &dir,
        &[
            "token",
            "encrypt",
            "--key",
            &public,
            "--alg",
            "RSA-OAEP-256",
            "--enc",
            "A256GCM",
            &payload,
        ],
    )
    .ok();
    let parts: Vec<&str> = jwe.split('.').collect();

    // Tampered ciphertext, tag, IV, encrypted key, header.
    for i in 0..5 {
        let mut bytes = URL_SAFE_NO_PAD.decode(parts[i]).unwrap();
        if bytes.is_empty() {
            continue;
        }
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        p[i] = b64(&bytes);
        let out = run(&dir, &["token", "decrypt", "--key", &private, &p.join(".")]);
        assert_eq!(out.code, 1, "part {i}: {out:?}");
        assert!(out.stdout.is_empty() && out.stderr.starts_with("tessera: "));
    }
    // A key of another family, garbage, an empty token; the same RSA key as PEM works.
    let other_ec = jwe_keys(&dir, "ECDH-ES", "A256GCM", None).0;
    run(&dir, &["token", "decrypt", "--key", &other_ec, &jwe]).fails(1, "cannot decrypt the token");
    let other_rsa = dir.write(
        "other.pem",
        Jwk::from_json(rsa_jwk()).unwrap().to_pem().unwrap(),
    );
    let out = run(&dir, &["token", "decrypt", "--key", &other_rsa, &jwe]);
    assert_eq!((out.code, out.stdout.as_slice()), (0, &b"secret stuff"[..]));
    let (other_private, _) = jwe_keys(&dir, "ECDH-ES", "A256GCM", Some("P-384"));
    run(&dir, &["token", "decrypt", "--key", &other_private, &jwe])
        .fails(1, "cannot decrypt the token");
    for garbled in ["", "a.b.c.d.e", "a.b.c", &format!("{jwe}.x")] {
        run(&dir, &["token", "decrypt", "--key", &private, garbled])
            .fails(1, "cannot decrypt the token");
    }
    // RSA1_5 and zip are refused.
    let rsa15 = format!(
        "{}.{}",
        b64(br#"{"alg":"RSA1_5","enc":"A128GCM"}"#),
        parts[1..].join(".")
    );
    run(&dir, &["token", "decrypt", "--key", &private, &rsa15]).fails(1, "RSA1_5");
    let s32 = "k".repeat(32);
    let zipped = format!(
        "{}..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA",
        b64(br#"{"alg":"dir","enc":"A256GCM","zip":"DEF"}"#)
    );
    run(&dir, &["token", "decrypt", "--secret", &s32, &zipped]).fails(1, "zip");
    // A wrong secret with dir.
    let dir_jwe = run(
        &dir,
        &[
            "token", "encrypt", "--secret", &s32, "--alg", "dir", "--enc", "A256GCM", &payload,
        ],
    )
    .ok();
    run(
        &dir,
        &["token", "decrypt", "--secret", &"j".repeat(32), &dir_jwe],
    )
    .fails(1, "could not be decrypted");
    let out = run(&dir, &["token", "decrypt", "--secret", &s32, &dir_jwe]);
    assert_eq!((out.code, out.stdout.as_slice()), (0, &b"secret stuff"[..]));

    // Keys that cannot do the job: exit 2.
    run(&dir, &["token", "decrypt", "--key", &public, &jwe])
        .fails(2, "decrypting needs the private key");
    let ed = jws_key(&dir, "EdDSA");
    run(&dir, &["token", "decrypt", "--key", &ed, &jwe]).fails(2, "Ed25519 key cannot decrypt");
    run(
        &dir,
        &[
            "token", "encrypt", "--key", &ed, "--alg", "ECDH-ES", "--enc", "A128GCM", &payload,
        ],
    )
    .fails(2, "cannot encrypt");
    run(
        &dir,
        &[
            "token", "encrypt", "--secret", "short", "--alg", "dir", "--enc", "A256GCM", &payload,
        ],
    )
    .fails(2, "needs a 32-byte key, not 5 bytes");
    run(
        &dir,
        &[
            "token", "encrypt", "--secret", &s32, "--alg", "A128KW", "--enc", "A256GCM", &payload,
        ],
    )
    .fails(2, "needs a 16-byte key, not 32 bytes");
    run(
        &dir,
        &[
            "token", "encrypt", "--key", &public, "--alg", "RSA1_5", "--enc", "A256GCM", &payload,
        ],
    )
    .fails(2, "not a JWE key management algorithm");
    run(
        &dir,
        &[
            "token", "encrypt", "--key", &public, "--alg", "RSA-OAEP", "--enc", "A512GCM", &payload,
        ],
    )
    .fails(2, "not a JWE content encryption");
    run(
        &dir,
        &[
            "token", "encrypt", "--key", &public, "--enc", "A256GCM", &payload,
        ],
    )
    .fails(2, "--alg");
    run(
        &dir,
        &[
            "token", "encrypt", "--key", &public, "--alg", "RSA-OAEP", "--enc", "A256GCM",
            "nope.txt",
        ],
    )
    .fails(2, "no such file");
    // A key pinned to one JWE algorithm refuses another.
    let pinned = jwe_keys(&dir, "ECDH-ES+A128KW", "A128GCM", None).1;
    run(
        &dir,
        &[
            "token", "encrypt", "--key", &pinned, "--alg", "ECDH-ES", "--enc", "A128GCM", &payload,
        ],
    )
    .fails(2, "pinned");
}

#[test]
fn encrypt_with_a_jwk_set_chooses_by_kid_or_fit() {
    let dir = TempDir::new();
    let a = Jwk::generate_curve(Curve::P256).unwrap().with_kid("a");
    let b = Jwk::generate_curve(Curve::X25519).unwrap().with_kid("b");
    let k = Jwk::generate_oct(16).unwrap().with_kid("k");
    let set = tessera_jose::JwkSet::new(vec![a, b, k]);
    let private = dir.write("set.jwks", set.to_json());
    let public = dir.write("set.pub.jwks", set.to_public().to_json());
    let payload = dir.write("p", "hi");
    // Two keys fit ECDH-ES: --kid chooses.
    run(
        &dir,
        &[
            "token", "encrypt", "--key", &public, "--alg", "ECDH-ES", "--enc", "A128GCM", &payload,
        ],
    )
    .fails(2, "choose one with --kid");
    for kid in ["a", "b"] {
        let jwe = run(
            &dir,
            &[
                "token", "encrypt", "--key", &public, "--kid", kid, "--alg", "ECDH-ES", "--enc",
                "A128GCM", &payload,
            ],
        )
        .ok();
        assert_eq!(header(&jwe)["kid"], kid);
        assert_eq!(
            run(&dir, &["token", "decrypt", "--key", &private, &jwe]).stdout,
            b"hi"
        );
    }
    // Only the 16-byte secret fits A128KW.
    let jwe = run(
        &dir,
        &[
            "token", "encrypt", "--key", &private, "--alg", "A128KW", "--enc", "A128GCM", &payload,
        ],
    )
    .ok();
    assert_eq!(
        run(&dir, &["token", "decrypt", "--key", &private, &jwe]).stdout,
        b"hi"
    );
    run(
        &dir,
        &[
            "token", "encrypt", "--key", &public, "--alg", "RSA-OAEP", "--enc", "A128GCM", &payload,
        ],
    )
    .fails(2, "no key in the set fits RSA-OAEP");
}

#[test]
fn a_misspelt_variable_or_an_unpublishable_signing_alg_stops_the_server_commands() {
    let dir = TempDir::new();
    let db = format!("sqlite://{}", dir.0.join("t.db").display());
    let password: &[u8] = b"correct horse battery\n";
    for args in [
        &["serve", "--addr", "127.0.0.1:0", "--database", &db][..],
        &["user", "add", "ada", "--database", &db],
        &["key", "rotate", "--database", &db],
    ] {
        let out = run_env(&dir, args, Some(password), &[("TESSERA_ACESS_TTL", "5m")]);
        out.fails(2, "TESSERA_ACESS_TTL");
        // HS256 is a JWS algorithm, but its key cannot be published: refused by
        // name, before any database or key is touched.
        let out = run_env(
            &dir,
            args,
            Some(password),
            &[("TESSERA_SIGNING_ALG", "HS256")],
        );
        out.fails(2, "HS256 cannot sign published tokens");
    }
    assert!(!dir.0.join("t.db").exists(), "no database was created");
    // The harnesses' own variables are not configuration.
    let out = run_env(
        &dir,
        &["user", "add", "ada", "--database", &db],
        Some(password),
        &[
            ("TESSERA_TEST_POSTGRES", "postgres://x"),
            ("TESSERA_BENCH_CLOCK", "wall"),
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
}

// ----- the server's commands on PostgreSQL --------------------------------------------

const PG_VAR: &str = "TESSERA_TEST_POSTGRES";
/// 32 bytes, base64url: the key-encryption key every node of a PostgreSQL
/// deployment must share.
const KEK: &str = "dGVzc2VyYS10ZXN0LWtleS1lbmNyeXB0aW9uLWtleTA";

/// A schema of the test's own in the database `TESSERA_TEST_POSTGRES` names,
/// dropped on drop; `None` (SKIPPED on stderr) when the variable is unset.
struct PgSchema {
    server: String,
    name: String,
    url: String,
}

impl PgSchema {
    fn create(test: &str) -> Option<Self> {
        let Some(server) = std::env::var(PG_VAR).ok().filter(|u| !u.is_empty()) else {
            // Straight to stderr: the harness shows `eprintln!` only for failures.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: cli::{test} on PostgreSQL ({PG_VAR} unset)"
            );
            return None;
        };
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "tessera_cli_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        pg_execute(&server, &format!("CREATE SCHEMA \"{name}\"")).unwrap();
        let sep = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{sep}options=-csearch_path%3D{name}");
        Some(Self { server, name, url })
    }

    /// The usernames in the schema's `users` table.
    fn usernames(&self) -> Vec<String> {
        let sql = format!(
            "SELECT username FROM \"{}\".users ORDER BY username",
            self.name
        );
        pg_rt()
            .block_on(async {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(&self.server).await?;
                sqlx::query_scalar(&sql).fetch_all(&mut conn).await
            })
            .unwrap()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        if pg_execute(&self.server, &sql).is_err() {
            let _ = writeln!(std::io::stderr(), "could not drop schema {}", self.name);
        }
    }
}

fn pg_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn pg_execute(server: &str, sql: &str) -> Result<(), sqlx::Error> {
    pg_rt().block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(server).await?;
        sqlx::query(sql).execute(&mut conn).await?;
        conn.close().await
    })
}

#[test]
fn user_add_and_key_rotate_work_on_postgres() {
    let Some(schema) = PgSchema::create("user_add_and_key_rotate_work_on_postgres") else {
        return;
    };
    let dir = TempDir::new();
    let env = [
        ("TESSERA_ISSUER", "https://auth.example"),
        ("TESSERA_KEY_ENCRYPTION_KEY", KEK),
        ("TESSERA_ARGON2_MEMORY_KIB", "256"),
        ("TESSERA_ARGON2_ITERATIONS", "1"),
    ];
    let db = schema.url.as_str();
    let add = |name: &str| {
        run_env(
            &dir,
            &["user", "add", name, "--role", "admin", "--database", db],
            Some(b"correct horse battery\n"),
            &env,
        )
    };
    // The command creates the tables (in the schema the URL names) and the user.
    let out = add("Ada");
    out.ok();
    let v = out.json();
    assert_eq!(v["username"], "ada");
    assert_eq!(v["roles"], json!(["admin"]));
    assert!(v["id"].is_string());
    add("grace").ok();
    add("ADA").fails(1, "the username is taken");
    assert_eq!(schema.usernames(), ["ada", "grace"]);

    // Keys: the first rotation makes them (current and next), then rotates; the
    // second finds them where the first left them.
    let rotate = || {
        let out = run_env(&dir, &["key", "rotate", "--database", db], None, &env);
        out.ok();
        out.json()
    };
    let first = rotate();
    let published = |v: &Value| -> Vec<String> {
        v["published"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    let p1 = published(&first);
    assert_eq!(p1.len(), 3, "previous, current, next: {first}");
    assert_eq!(first["current"], p1[1].as_str());
    let second = rotate();
    let p2 = published(&second);
    assert_eq!(p2.len(), 4, "two previous, current, next: {second}");
    assert_eq!(&p2[..3], &p1[..], "the keys the first rotation left");
    assert_eq!(
        second["current"],
        p1[2].as_str(),
        "the next key became current"
    );
    // Without a shared key-encryption key the keys cannot be read.
    let out = run_env(
        &dir,
        &["key", "rotate", "--database", db],
        None,
        &[
            ("TESSERA_ISSUER", "https://auth.example"),
            (
                "TESSERA_KEY_ENCRYPTION_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
        ],
    );
    out.fails(1, "cannot decrypt signing key");
    // ...and the refused rotation wrote nothing: the next one goes on from the second.
    let third = rotate();
    let p3 = published(&third);
    assert_eq!(p3.len(), 5, "{third}");
    assert_eq!(&p3[..4], &p2[..]);
    assert_eq!(third["current"], p2[3].as_str());
}

#[test]
fn postgres_without_issuer_or_key_encryption_key_exits_2_naming_it() {
    let dir = TempDir::new();
    // Refused before any connection: no server is needed.
    let db = "postgres://tessera@127.0.0.1:1/tessera";
    let password: &[u8] = b"correct horse battery\n";
    for args in [
        &["serve", "--addr", "127.0.0.1:0", "--database", db][..],
        &["user", "add", "ada", "--database", db],
        &["key", "rotate", "--database", db],
    ] {
        let out = run_env(&dir, args, Some(password), &[]);
        out.fails(2, "issuer (TESSERA_ISSUER)");
        assert!(out.stderr.contains("key_encryption_key"), "{out:?}");
        let out = run_env(
            &dir,
            args,
            Some(password),
            &[("TESSERA_ISSUER", "https://auth.example")],
        );
        out.fails(2, "key_encryption_key (TESSERA_KEY_ENCRYPTION_KEY)");
        assert!(!out.stderr.contains("issuer"), "{out:?}");
        let out = run_env(
            &dir,
            args,
            Some(password),
            &[("TESSERA_KEY_ENCRYPTION_KEY", KEK)],
        );
        out.fails(2, "issuer (TESSERA_ISSUER)");
        assert!(!out.stderr.contains("key_encryption_key"), "{out:?}");
    }
    // The same from a configuration file.
    let config = dir.write("t.toml", format!("database = \"{db}\"\n"));
    let out = run_env(
        &dir,
        &["serve", "--addr", "127.0.0.1:0", "--config", &config],
        None,
        &[],
    );
    out.fails(2, "issuer (TESSERA_ISSUER)");
    // A database URL of no known kind is bad usage too.
    let out = run_env(
        &dir,
        &["user", "add", "ada", "--database", "mysql://x/y"],
        Some(password),
        &[],
    );
    out.fails(2, "database must be");
}

#[test]
fn an_unreachable_postgres_is_an_error_not_a_hang_or_a_panic() {
    let dir = TempDir::new();
    // Nothing listens on port 1.
    let out = run_env(
        &dir,
        &[
            "user",
            "add",
            "ada",
            "--database",
            "postgres://tessera@127.0.0.1:1/tessera",
        ],
        Some(b"correct horse battery\n"),
        &[
            ("TESSERA_ISSUER", "https://auth.example"),
            ("TESSERA_KEY_ENCRYPTION_KEY", KEK),
        ],
    );
    out.fails(1, "database unavailable");
}

// ----- tessera client ------------------------------------------------------------------

/// The keys of a JSON object, sorted.
fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// `client add`, `list` and `remove` on one database, with `env`; returns the
/// confidential client's secret.
fn client_commands_work(dir: &TempDir, db: &str, env: &[(&str, &str)]) -> String {
    let client = |args: &[&str]| {
        let mut all = vec!["client"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--database", db]);
        run_env(dir, &all, None, env)
    };
    // A confidential client: its secret, shown once; scopes repeated or space-separated.
    let out = client(&[
        "add",
        "svc",
        "--secret",
        "--scope",
        "api",
        "--scope",
        "orders:read orders:write",
        "--grant",
        "client_credentials",
    ]);
    out.ok();
    let v = out.json();
    assert_eq!(
        keys_of(&v),
        ["client_id", "client_secret", "redirect_uris", "scope"]
    );
    assert_eq!(v["client_id"], "svc");
    assert_eq!(v["scope"], "api orders:read orders:write");
    assert_eq!(v["redirect_uris"], json!([]));
    let secret = v["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    // A public client: no secret; redirect URIs as given; the default grants.
    let out = client(&[
        "add",
        "spa",
        "--redirect-uri",
        "https://spa.example/cb",
        "--redirect-uri",
        "com.example.app:/cb",
        "--post-logout-redirect-uri",
        "https://spa.example/bye",
        "--scope",
        "openid",
    ]);
    out.ok();
    let v = out.json();
    assert_eq!(keys_of(&v), ["client_id", "redirect_uris", "scope"]);
    assert_eq!(
        v["redirect_uris"],
        json!(["https://spa.example/cb", "com.example.app:/cb"])
    );
    assert_eq!(v["scope"], "openid");
    // A confidential client with the default grants: client_credentials among them.
    let out = client(&[
        "add",
        "web",
        "--secret",
        "--redirect-uri",
        "https://web.example/cb",
    ]);
    out.ok();
    let web_secret = out.json()["client_secret"].as_str().unwrap().to_owned();

    // Refusals: a taken id exits 1; values that break a rule, and bad flags, exit 2.
    client(&["add", "svc", "--secret", "--grant", "client_credentials"])
        .fails(1, "the client id is taken");
    client(&["add", "pub", "--grant", "client_credentials"]).fails(2, "public client");
    client(&["add", "pub", "--redirect-uri", "http://app.example/cb"]).fails(2, "loopback");
    client(&["add", "pub", "--redirect-uri", "https://app.example/cb#x"]).fails(2, "fragment");
    client(&["add", "pub", "--redirect-uri", "cb"]).fails(2, "not absolute");
    client(&["add", "a b", "--redirect-uri", "https://a.example/cb"]).fails(2, "client id");
    client(&[
        "add",
        "pub",
        "--redirect-uri",
        "https://a.example/cb",
        "--scope",
        "a\"b",
    ])
    .fails(2, "scope");
    client(&[
        "add",
        "pub",
        "--redirect-uri",
        "https://a.example/cb",
        "--grant",
        "password",
    ])
    .fails(2, "grant");
    client(&["add", "pub"]).fails(2, "needs at least one --redirect-uri");
    client(&["add", "pub", "--bogus"]).fails(2, "--bogus");

    // The list: every client by id, never a secret.
    let out = client(&["list"]);
    out.ok();
    assert!(!out.text().contains(&secret) && !out.text().contains(&web_secret));
    assert!(!out.text().contains("secret\""), "{}", out.text());
    let list = out.json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["spa", "svc", "web"]);
    let by_id = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["client_id"] == id)
            .unwrap()
            .clone()
    };
    let spa = by_id("spa");
    assert_eq!(spa["token_endpoint_auth_method"], "none");
    assert_eq!(
        spa["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        spa["post_logout_redirect_uris"],
        json!(["https://spa.example/bye"])
    );
    assert_eq!(by_id("svc")["grant_types"], json!(["client_credentials"]));
    assert_eq!(
        by_id("web")["grant_types"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        by_id("web")["token_endpoint_auth_method"],
        "client_secret_basic"
    );

    // Remove: 0, then 1 for a client that is not there.
    client(&["remove", "spa"]).ok();
    client(&["remove", "spa"]).fails(1, "no such client");
    client(&["remove", "bad id"]).fails(1, "no such client");
    let out = client(&["list"]);
    out.ok();
    assert_eq!(out.json().as_array().unwrap().len(), 2);
    secret
}

#[test]
fn client_add_list_and_remove() {
    let dir = TempDir::new();
    let file = dir.0.join("t.db");
    let db = format!("sqlite://{}", file.display());
    let secret = client_commands_work(&dir, &db, &[]);
    // Only the secret's hash is stored.
    let bytes = std::fs::read(&file).unwrap();
    let wal = std::fs::read(dir.0.join("t.db-wal")).unwrap_or_default();
    for stored in [&bytes, &wal] {
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the client secret is stored in plain"
        );
    }
}

#[test]
fn client_add_list_and_remove_work_on_postgres() {
    let Some(schema) = PgSchema::create("client_add_list_and_remove_work_on_postgres") else {
        return;
    };
    let dir = TempDir::new();
    let env = [
        ("TESSERA_ISSUER", "https://auth.example"),
        ("TESSERA_KEY_ENCRYPTION_KEY", KEK),
    ];
    client_commands_work(&dir, &schema.url, &env);
}

/// A client added by the command line is used by a server already running on the
/// same database, at once (the server reads clients from the store on every use).
#[test]
fn a_client_added_by_the_cli_gets_tokens_from_a_running_server() {
    let dir = TempDir::new();
    let db = format!("sqlite://{}", dir.0.join("t.db").display());
    let mut server = Command::new(TESSERA)
        .args(["serve", "--addr", "127.0.0.1:0", "--database", &db])
        .current_dir(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("tessera listening on ")
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let out = run(
        &dir,
        &[
            "client",
            "add",
            "svc",
            "--secret",
            "--scope",
            "api",
            "--grant",
            "client_credentials",
            "--database",
            &db,
        ],
    );
    out.ok();
    let secret = out.json()["client_secret"].as_str().unwrap().to_owned();
    let rt = pg_rt();
    let answer = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{base}/oauth/token"))
            .basic_auth("svc", Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
    });
    let _ = server.kill();
    let _ = server.wait();
    let answer = answer.unwrap();
    assert_eq!(answer.status(), 200);
    let v: Value = rt.block_on(answer.json()).unwrap();
    assert_eq!(v["scope"], "api");
    assert_eq!(payload(v["access_token"].as_str().unwrap())["sub"], "svc");
}
