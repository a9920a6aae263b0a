//! Interoperability of the `tessera` command line with PyJWT, jwcrypto and npm `jose`.
//!
//! For every JWS algorithm and every JWE (alg, enc) pair, in both directions:
//! tessera signs or encrypts and each peer verifies or decrypts to the same claims or
//! bytes; each peer signs or encrypts with tessera's keys and `tessera token verify`
//! or `decrypt` gives back the same claims or bytes. Every case also has its negative:
//! the token, tampered, is refused by the other side (by tessera with exit 1).
//!
//! A few nested JWTs (signed, then encrypted) go both ways too.
//!
//! Keys come from `tessera key generate` (JWK) and `tessera key public`; a few JWS
//! cases hand the same keys over as PEM (PKCS#8 / SPKI) and a few as a raw secret file.
//! With a JWK, tessera is given no `--alg`: the JWK's `alg` chooses it.
//!
//! The peers run as two drivers, interop/peer.py (PyJWT, jwcrypto) and
//! interop/peer.mjs (jose), which take a JSON list of cases on stdin: one subprocess
//! per library per direction. They need interop/.venv and interop/node_modules:
//!
//! ```text
//! python3 -m venv interop/.venv && interop/.venv/bin/pip install -r interop/requirements.txt
//! npm ci --prefix interop
//! ```
//!
//! Without them the test prints SKIPPED and passes, except when `CI` is set, where a
//! missing peer is a failure. Run: `cargo test -p tessera --test interop -- --nocapture`;
//! `INTEROP_ONLY=ES256` (any substring of the case ids in the table) narrows the run.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

const JWS_ALGS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA",
];
/// JWS algorithms also exchanged as PEM (PKCS#8 private, SPKI public).
const PEM_ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "ES512", "EdDSA"];
const ENCS: [&str; 6] = [
    "A128GCM",
    "A192GCM",
    "A256GCM",
    "A128CBC-HS256",
    "A192CBC-HS384",
    "A256CBC-HS512",
];
const OCT_KMS: [&str; 4] = ["dir", "A128KW", "A192KW", "A256KW"];
const RSA_KMS: [&str; 2] = ["RSA-OAEP", "RSA-OAEP-256"];
const ECDH_KMS: [&str; 4] = [
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
];
/// Curves crossed with every ECDH algorithm and every `enc`.
const ECDH_FULL_CURVES: [&str; 2] = ["P-256", "X25519"];
/// Curves crossed with every ECDH algorithm, with A256GCM only.
const ECDH_EXTRA_CURVES: [&str; 2] = ["P-384", "P-521"];

/// Nested JWTs: (signature alg, key management alg, enc, name of the encryption key).
const NESTED: [(&str, &str, &str, &str); 5] = [
    ("HS256", "dir", "A256GCM", "dir-A256GCM"),
    ("RS256", "RSA-OAEP-256", "A256GCM", "RSA-OAEP-256"),
    ("PS384", "A128KW", "A128CBC-HS256", "A128KW"),
    (
        "ES256",
        "ECDH-ES+A256KW",
        "A256CBC-HS512",
        "ECDH-ES+A256KW-P-256",
    ),
    ("EdDSA", "ECDH-ES", "A128GCM", "ECDH-ES-X25519"),
];

const ISS: &str = "https://issuer.interop.example";
const AUD: &str = "tessera-interop";

/// Known gaps: a peer that genuinely lacks an algorithm. Cases whose id starts with
/// `prefix` are still sent to `lib`; a failure there is printed as skipped with the
/// reason, and a success fails the test (the gap is gone: remove the entry).
/// PyJWT has no JWE at all; that is not a gap but its scope, and its JWE cases are
/// not run (printed as n/a).
struct KnownGap {
    lib: &'static str,
    prefix: &'static str,
    reason: &'static str,
}

// With PyJWT 2.15.1, jwcrypto 1.6.1 and jose 6.2.17 on Node 20, every case is
// supported by every peer in its scope.
const KNOWN_GAPS: &[KnownGap] = &[];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lib {
    PyJwt,
    Jwcrypto,
    Jose,
}

impl Lib {
    const ALL: [Lib; 3] = [Lib::PyJwt, Lib::Jwcrypto, Lib::Jose];

    fn name(self) -> &'static str {
        match self {
            Lib::PyJwt => "pyjwt",
            Lib::Jwcrypto => "jwcrypto",
            Lib::Jose => "jose",
        }
    }

    fn does_jwe(self) -> bool {
        self != Lib::PyJwt
    }
}

/// How tessera and the peer are handed the key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Form {
    /// `--key FILE` with a JWK (the private one to sign and decrypt, the public one to
    /// verify and encrypt), no `--alg` for sign and verify; the peer gets the same JWK;
    /// the token is an argument.
    Jwk,
    /// `--key FILE` with PKCS#8 / SPKI PEM, converted from the JWK by the peer, and
    /// `--alg`; the token is read from stdin.
    Pem,
    /// `--secret-file FILE` with the raw bytes of an `oct` JWK's `k`, and `--alg`;
    /// the token is read from stdin.
    Secret,
}

#[derive(Clone, Debug)]
enum Kind {
    Jws {
        alg: &'static str,
    },
    Jwe {
        alg: &'static str,
        enc: &'static str,
    },
    /// A nested JWT: a JWS signed with `sig` (key `jws-{sig}`), then encrypted.
    Nested {
        sig: &'static str,
        alg: &'static str,
        enc: &'static str,
    },
}

/// One row of the matrix.
#[derive(Clone, Debug)]
struct Spec {
    id: String,
    kind: Kind,
    form: Form,
    /// Name of the tessera-generated key in `Keys`.
    key: String,
}

impl Spec {
    fn uses_key(&self, name: &str) -> bool {
        match self.kind {
            Kind::Nested { sig, .. } if name.strip_prefix("jws-") == Some(sig) => true,
            _ => self.key == name,
        }
    }

    fn is_jwe(&self) -> bool {
        matches!(self.kind, Kind::Jwe { .. } | Kind::Nested { .. })
    }
}

/// How a key is generated: `tessera key generate` with these flags.
#[derive(Clone, Debug)]
struct KeyReq {
    name: String,
    alg: &'static str,
    crv: Option<&'static str>,
    enc: Option<&'static str>,
}

/// A tessera-generated key on disk.
struct KeyFiles {
    private_jwk: Value,
    public_jwk: Value,
    private_path: PathBuf,
    public_path: PathBuf,
    /// Raw secret bytes (`oct` keys only).
    secret_path: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
enum Dir {
    /// tessera signs or encrypts, the peer verifies or decrypts.
    TesseraToPeer,
    /// the peer signs or encrypts, tessera verifies or decrypts.
    PeerToTessera,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    Fail(String),
    Skip(String),
}

#[test]
fn interop_with_pyjwt_jwcrypto_and_jose() {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let interop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop");
    let interop = interop.canonicalize().unwrap_or(interop);
    let peers = Peers::detect(&interop);
    if let Some(missing) = peers.missing() {
        let message = format!(
            "SKIPPED interop: {missing}; run\n  python3 -m venv interop/.venv && \
             interop/.venv/bin/pip install -r interop/requirements.txt\n  npm ci --prefix interop"
        );
        if ci {
            panic!("CI is set and the interop peers are missing: {message}");
        }
        println!("{message}");
        return;
    }

    let work =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("interop-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("create the work dir");
    let mut run = Run::new(work.clone(), peers);
    run.all();
    let failed = run.report();
    if failed.is_empty() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        panic!(
            "{} interop case(s) failed (work dir kept: {}):\n{}",
            failed.len(),
            work.display(),
            failed.join("\n")
        );
    }
}

// ---------------------------------------------------------------- the run

struct Run {
    work: PathBuf,
    peers: Peers,
    now: i64,
    specs: Vec<Spec>,
    keys: HashMap<String, Result<KeyFiles, String>>,
    /// (lib, direction) -> spec id -> status.
    cells: BTreeMap<(String, Dir), HashMap<String, Status>>,
    notes: Vec<String>,
    versions: Vec<String>,
}

impl Run {
    fn new(work: PathBuf, peers: Peers) -> Run {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        Run {
            work,
            peers,
            now,
            specs: specs(),
            keys: HashMap::new(),
            cells: BTreeMap::new(),
            notes: Vec::new(),
            versions: Vec::new(),
        }
    }

    fn all(&mut self) {
        let needed = key_requests()
            .into_iter()
            .filter(|r| self.specs.iter().any(|s| s.uses_key(&r.name)));
        for req in needed {
            let key = self.generate(&req);
            self.keys.insert(req.name.clone(), key);
        }
        // Tokens that tessera makes once from its own JWK or secret and every peer
        // checks; PEM tokens are made per peer, from the PEM that peer converted.
        let mut shared: HashMap<String, Result<Produced, String>> = HashMap::new();
        for spec in self.specs.clone() {
            if spec.form != Form::Pem {
                let produced = self
                    .key_of(&spec)
                    .and_then(|k| self.tessera_produce(&spec, k, None));
                shared.insert(spec.id.clone(), produced);
            }
        }
        for lib in Lib::ALL {
            self.run_lib(lib, &shared);
        }
    }

    fn key_of(&self, spec: &Spec) -> Result<&KeyFiles, String> {
        match self.keys.get(&spec.key) {
            Some(Ok(k)) => Ok(k),
            Some(Err(e)) => Err(format!("tessera key generate failed: {e}")),
            None => Err(format!("no key {}", spec.key)),
        }
    }

    /// The signing key of a nested JWT.
    fn sig_key_of(&self, spec: &Spec) -> Result<&KeyFiles, String> {
        let Kind::Nested { sig, .. } = spec.kind else {
            return Err(format!("{} is not a nested JWT", spec.id));
        };
        match self.keys.get(&format!("jws-{sig}")) {
            Some(Ok(k)) => Ok(k),
            Some(Err(e)) => Err(format!("tessera key generate failed: {e}")),
            None => Err(format!("no key jws-{sig}")),
        }
    }

    /// The claims every JWS case carries (tessera adds `iat` when it signs).
    fn claims(&self, spec: &Spec) -> Value {
        json!({
            "sub": format!("interop {}", spec.id),
            "iss": ISS,
            "aud": AUD,
            "exp": self.now + 3600,
            "nbf": self.now - 60,
            "jti": format!("jti-{}", spec.id),
            "roles": ["reader", "writer"],
            "unicode": "Grüße, 世界 🎫",
            "nested": {"n": 9_007_199_254_740_991_i64, "f": 1.5, "t": true, "z": null, "e": []},
        })
    }

    /// The plaintext of every JWE case: not UTF-8, with a trailing newline, so that
    /// "the bytes as they are" is checked.
    fn plaintext(&self, spec: &Spec) -> Vec<u8> {
        let mut bytes = format!("interop {} Grüße ", spec.id).into_bytes();
        bytes.extend_from_slice(&[0x00, 0xff, 0xfe, 0x80, b'\r', b'\n']);
        bytes
    }

    fn run_lib(&mut self, lib: Lib, shared: &HashMap<String, Result<Produced, String>>) {
        let specs: Vec<Spec> = self
            .specs
            .iter()
            .filter(|s| lib.does_jwe() || !s.is_jwe())
            .cloned()
            .collect();
        if !lib.does_jwe() {
            self.notes
                .push(format!("{}: JWE n/a (PyJWT has no JWE)", lib.name()));
        }

        // Call A: the peer signs or encrypts with tessera's keys.
        let mut cases = Vec::new();
        let mut pre_failed: HashMap<String, String> = HashMap::new();
        for spec in &specs {
            let key = match self.key_of(spec) {
                Ok(k) => k,
                Err(e) => {
                    pre_failed.insert(spec.id.clone(), e);
                    continue;
                }
            };
            let sig_key = match spec.kind {
                Kind::Nested { .. } => match self.sig_key_of(spec) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        pre_failed.insert(spec.id.clone(), e);
                        continue;
                    }
                },
                _ => None,
            };
            cases.push(match spec.kind {
                Kind::Jws { alg } => json!({
                    "id": spec.id, "op": "sign", "alg": alg, "jwk": key.private_jwk,
                    "claims": self.claims(spec), "pem": spec.form == Form::Pem,
                }),
                Kind::Jwe { alg, enc } => json!({
                    "id": spec.id, "op": "encrypt", "alg": alg, "enc": enc,
                    "jwk": key.public_jwk, "plaintext_b64": STANDARD.encode(self.plaintext(spec)),
                }),
                Kind::Nested { sig, alg, enc } => json!({
                    "id": spec.id, "op": "sign_encrypt", "sig_alg": sig,
                    "sig_jwk": sig_key.map(|k| &k.private_jwk), "claims": self.claims(spec),
                    "alg": alg, "enc": enc, "jwk": key.public_jwk,
                }),
            });
        }
        let produced = self.peers.call(lib, &cases, &mut self.versions);

        // tessera checks the peer's tokens, and refuses them tampered.
        let mut pem_tokens: HashMap<String, Result<Produced, String>> = HashMap::new();
        for spec in &specs {
            let outcome = if let Some(e) = pre_failed.get(&spec.id) {
                Status::Fail(e.clone())
            } else {
                match peer_result(&produced, &spec.id) {
                    Err(e) => Status::Fail(format!("{} could not produce: {e}", lib.name())),
                    Ok(r) if spec.form == Form::Pem => {
                        // The peer's PEM also makes tessera's own PEM token for call B.
                        let pem = self.write_pems(lib, spec, r);
                        let token = pem.clone().and_then(|p| {
                            let key = self.key_of(spec)?;
                            self.tessera_produce(spec, key, Some(&p))
                        });
                        pem_tokens.insert(spec.id.clone(), token);
                        match pem {
                            Ok(p) => self.tessera_consume(spec, r, Some(&p)),
                            Err(e) => Status::Fail(e),
                        }
                    }
                    Ok(r) => self.tessera_consume(spec, r, None),
                }
            };
            self.record(lib, spec, Dir::PeerToTessera, outcome);
        }

        // Call B: the peer checks tessera's tokens, and refuses them tampered.
        let mut cases = Vec::new();
        for spec in &specs {
            let token = match pem_tokens.get(&spec.id).or_else(|| shared.get(&spec.id)) {
                Some(Ok(p)) => p,
                _ => continue,
            };
            let key = self.key_of(spec).expect("a token was produced");
            for (suffix, tok) in [
                ("", token.token.clone()),
                ("#tampered", tamper(&token.token, spec)),
            ] {
                let id = format!("{}{suffix}", spec.id);
                cases.push(match spec.kind {
                    Kind::Jws { alg } => {
                        let mut c = json!({
                            "id": id, "op": "verify", "alg": alg, "token": tok, "aud": AUD, "iss": ISS,
                        });
                        match &token.public_pem {
                            Some(pem) => c["public_pem"] = json!(pem),
                            None => c["jwk"] = key.public_jwk.clone(),
                        }
                        c
                    }
                    Kind::Jwe { alg, enc } => json!({
                        "id": id, "op": "decrypt", "alg": alg, "enc": enc, "jwk": key.private_jwk,
                        "token": tok,
                    }),
                    Kind::Nested { sig, alg, enc } => json!({
                        "id": id, "op": "decrypt_verify", "alg": alg, "enc": enc,
                        "jwk": key.private_jwk, "sig_alg": sig,
                        "sig_jwk": self.sig_key_of(spec).expect("a token was produced").public_jwk,
                        "token": tok, "aud": AUD, "iss": ISS,
                    }),
                });
            }
        }
        let checked = self.peers.call(lib, &cases, &mut self.versions);
        for spec in &specs {
            let outcome = match pem_tokens.get(&spec.id).or_else(|| shared.get(&spec.id)) {
                None => Status::Fail("no tessera token".into()),
                Some(Err(e)) => Status::Fail(format!("tessera could not produce: {e}")),
                Some(Ok(_)) => self.peer_consumed(lib, spec, &checked),
            };
            self.record(lib, spec, Dir::TesseraToPeer, outcome);
        }
    }

    fn record(&mut self, lib: Lib, spec: &Spec, dir: Dir, status: Status) {
        let gap = KNOWN_GAPS
            .iter()
            .find(|g| g.lib == lib.name() && spec.id.starts_with(g.prefix));
        let status = match (gap, status) {
            (Some(g), Status::Ok) => Status::Fail(format!(
                "listed as a known gap ({}) but it works now: remove it from KNOWN_GAPS",
                g.reason
            )),
            (Some(g), Status::Fail(_)) => Status::Skip(g.reason.to_string()),
            (_, s) => s,
        };
        self.cells
            .entry((lib.name().to_string(), dir))
            .or_default()
            .insert(spec.id.clone(), status);
    }

    // ------------------------------------------------------------ tessera side

    fn generate(&self, req: &KeyReq) -> Result<KeyFiles, String> {
        let mut args = vec!["key", "generate", "--alg", req.alg];
        if let Some(crv) = req.crv {
            // P-256 is the default for ECDH-ES*: leave it to the default.
            if crv != "P-256" {
                args.extend(["--crv", crv]);
            }
        }
        if let Some(enc) = req.enc {
            args.extend(["--enc", enc]);
        }
        let out = tessera(&args, None);
        let private_jwk =
            parse_json_output(&out).map_err(|e| format!("{}: {e}", args.join(" ")))?;
        check_generated(req, &private_jwk)?;
        let private_path = self
            .work
            .join(format!("{}.private.jwk", file_name(&req.name)));
        write(
            &private_path,
            &serde_json::to_vec(&private_jwk).expect("JSON"),
        )?;
        let (public_jwk, public_path, secret_path) = if private_jwk["kty"] == "oct" {
            let k = private_jwk["k"].as_str().ok_or("oct JWK without k")?;
            let bytes = URL_SAFE_NO_PAD
                .decode(k)
                .map_err(|e| format!("oct k: {e}"))?;
            let secret_path = self.work.join(format!("{}.secret", file_name(&req.name)));
            write(&secret_path, &bytes)?;
            (private_jwk.clone(), private_path.clone(), Some(secret_path))
        } else {
            let path = private_path.to_str().ok_or("non UTF-8 path")?;
            let out = tessera(&["key", "public", path], None);
            let public_jwk =
                parse_json_output(&out).map_err(|e| format!("key public ({}): {e}", req.name))?;
            if public_jwk.get("d").is_some() || public_jwk.get("p").is_some() {
                return Err(format!("key public ({}) printed private members", req.name));
            }
            let public_path = self
                .work
                .join(format!("{}.public.jwk", file_name(&req.name)));
            write(
                &public_path,
                &serde_json::to_vec(&public_jwk).expect("JSON"),
            )?;
            (public_jwk, public_path, None)
        };
        Ok(KeyFiles {
            private_jwk,
            public_jwk,
            private_path,
            public_path,
            secret_path,
        })
    }

    /// `--key FILE` or `--secret-file FILE`: the private (or secret) key when
    /// `private`, else the public one.
    fn key_args(form: Form, key: &KeyFiles, pem: Option<&Pems>, private: bool) -> Vec<String> {
        match (form, pem) {
            (Form::Secret, _) => vec![
                "--secret-file".into(),
                path_arg(key.secret_path.as_ref().expect("secret form on an oct key")),
            ],
            (_, Some(p)) => vec![
                "--key".into(),
                path_arg(if private { &p.private } else { &p.public }),
            ],
            _ => vec![
                "--key".into(),
                path_arg(if private {
                    &key.private_path
                } else {
                    &key.public_path
                }),
            ],
        }
    }

    /// `tessera token sign`. With a JWK, the JWK's `alg` chooses the algorithm (no
    /// `--alg`); with PEM or a secret, `--alg` does.
    fn tessera_sign(
        &self,
        form: Form,
        key: &KeyFiles,
        pem: Option<&Pems>,
        alg: &str,
        spec: &Spec,
    ) -> Result<String, String> {
        let claims_path = self
            .work
            .join(format!("{}.claims.json", file_name(&spec.id)));
        write(
            &claims_path,
            &serde_json::to_vec(&self.claims(spec)).expect("JSON"),
        )?;
        let mut args: Vec<String> = vec!["token".into(), "sign".into()];
        args.extend(Self::key_args(form, key, pem, true));
        if form != Form::Jwk {
            args.extend(["--alg".into(), alg.into()]);
        }
        args.extend(["--claims".into(), format!("@{}", path_arg(&claims_path))]);
        token_output(&args, 3)
    }

    /// `tessera token encrypt` of a payload file, with the public (or secret) key.
    fn tessera_encrypt(
        &self,
        form: Form,
        key: &KeyFiles,
        (alg, enc): (&str, &str),
        payload: &[u8],
        spec: &Spec,
    ) -> Result<String, String> {
        let payload_path = self.work.join(format!("{}.payload", file_name(&spec.id)));
        write(&payload_path, payload)?;
        let mut args: Vec<String> = vec!["token".into(), "encrypt".into()];
        args.extend(Self::key_args(form, key, None, false));
        args.extend(["--alg".into(), alg.into(), "--enc".into(), enc.into()]);
        args.push(path_arg(&payload_path));
        token_output(&args, 5)
    }

    /// `tessera token verify` with the public (or secret) key, `--iss` and `--aud`.
    /// As for signing, `--alg` only when the key is not a JWK (whose `alg` pins it).
    fn tessera_verify(
        form: Form,
        key: &KeyFiles,
        pem: Option<&Pems>,
        alg: &str,
        token: &str,
    ) -> Output {
        let mut args: Vec<String> = vec!["token".into(), "verify".into()];
        args.extend(Self::key_args(form, key, pem, false));
        if form != Form::Jwk {
            args.extend(["--alg".into(), alg.into()]);
        }
        for a in ["--iss", ISS, "--aud", AUD] {
            args.push(a.into());
        }
        with_token(form, args, token)
    }

    /// `tessera token decrypt` with the private (or secret) key.
    fn tessera_decrypt(form: Form, key: &KeyFiles, token: &str) -> Output {
        let mut args: Vec<String> = vec!["token".into(), "decrypt".into()];
        args.extend(Self::key_args(form, key, None, true));
        with_token(form, args, token)
    }

    /// tessera signs (private key) or encrypts (public key); for a nested JWT, signs
    /// with the signing key and encrypts that JWS.
    fn tessera_produce(
        &self,
        spec: &Spec,
        key: &KeyFiles,
        pem: Option<&Pems>,
    ) -> Result<Produced, String> {
        let token = match spec.kind {
            Kind::Jws { alg } => self.tessera_sign(spec.form, key, pem, alg, spec)?,
            Kind::Jwe { alg, enc } => {
                self.tessera_encrypt(spec.form, key, (alg, enc), &self.plaintext(spec), spec)?
            }
            Kind::Nested { sig, alg, enc } => {
                let sig_key = self.sig_key_of(spec)?;
                let jws = self.tessera_sign(Form::Jwk, sig_key, None, sig, spec)?;
                self.tessera_encrypt(spec.form, key, (alg, enc), jws.as_bytes(), spec)?
            }
        };
        Ok(Produced {
            token,
            public_pem: pem.map(|p| p.public_text.clone()),
        })
    }

    /// tessera verifies or decrypts the peer's token, then refuses it tampered.
    fn tessera_consume(&self, spec: &Spec, result: &Value, pem: Option<&Pems>) -> Status {
        match self.try_consume(spec, result, pem) {
            Ok(()) => Status::Ok,
            Err(e) => Status::Fail(e),
        }
    }

    fn try_consume(&self, spec: &Spec, result: &Value, pem: Option<&Pems>) -> Result<(), String> {
        let token = result["token"]
            .as_str()
            .ok_or("peer answer without a token")?;
        let key = self.key_of(spec)?;
        let consume = |token: &str| match spec.kind {
            Kind::Jws { alg } => Self::tessera_verify(spec.form, key, pem, alg, token),
            Kind::Jwe { .. } | Kind::Nested { .. } => Self::tessera_decrypt(spec.form, key, token),
        };
        let verb = if spec.is_jwe() { "decrypt" } else { "verify" };

        let out = consume(token);
        if out.status.code() != Some(0) {
            return Err(describe_failure(&["token", verb], &out));
        }
        match spec.kind {
            Kind::Jws { .. } => self.check_claims_output(spec, &out)?,
            Kind::Jwe { .. } => {
                if out.stdout != self.plaintext(spec) {
                    return Err(format!(
                        "tessera decrypt wrote other bytes ({} bytes, expected {})",
                        out.stdout.len(),
                        self.plaintext(spec).len()
                    ));
                }
            }
            Kind::Nested { sig, .. } => {
                // decrypt writes the inner compact JWS; tessera then verifies it.
                let inner = String::from_utf8(out.stdout)
                    .map_err(|_| "tessera decrypt of a nested JWT wrote no UTF-8")?;
                if inner.split('.').count() != 3 {
                    return Err("tessera decrypt of a nested JWT wrote no compact JWS".into());
                }
                let sig_key = self.sig_key_of(spec)?;
                let out = Self::tessera_verify(Form::Jwk, sig_key, None, sig, &inner);
                if out.status.code() != Some(0) {
                    return Err(describe_failure(&["token verify (inner JWS)"], &out));
                }
                self.check_claims_output(spec, &out)?;
            }
        }

        let out = consume(&tamper(token, spec));
        if out.status.code() != Some(1) || !out.stdout.is_empty() {
            return Err(format!(
                "tessera {verb} accepted or mishandled the tampered token: exit {:?}, {} bytes \
                 on stdout (expected exit 1, nothing on stdout)",
                out.status.code(),
                out.stdout.len()
            ));
        }
        Ok(())
    }

    /// `tessera token verify` printed exactly the claims the peer signed.
    fn check_claims_output(&self, spec: &Spec, out: &Output) -> Result<(), String> {
        let claims: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("tessera verify printed no JSON: {e}"))?;
        if claims != self.claims(spec) {
            return Err(format!(
                "tessera verify printed other claims: {}",
                diff(&self.claims(spec), &claims)
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------ peer side

    fn write_pems(&self, lib: Lib, spec: &Spec, r: &Value) -> Result<Pems, String> {
        let (Some(private), Some(public)) = (r["private_pem"].as_str(), r["public_pem"].as_str())
        else {
            return Err(format!("{} returned no PEM", lib.name()));
        };
        let base = format!("{}.{}", file_name(&spec.id), lib.name());
        let private_path = self.work.join(format!("{base}.pkcs8.pem"));
        let public_path = self.work.join(format!("{base}.spki.pem"));
        write(&private_path, private.as_bytes())?;
        write(&public_path, public.as_bytes())?;
        Ok(Pems {
            private: private_path,
            public: public_path,
            public_text: public.to_string(),
        })
    }

    /// Did the peer verify or decrypt tessera's token to the right thing, and refuse
    /// the tampered one?
    fn peer_consumed(
        &self,
        lib: Lib,
        spec: &Spec,
        checked: &Result<HashMap<String, Value>, String>,
    ) -> Status {
        let name = lib.name();
        let r = match peer_result(checked, &spec.id) {
            Ok(r) => r,
            Err(e) => return Status::Fail(format!("{name} refused tessera's token: {e}")),
        };
        let checked_ok = match spec.kind {
            Kind::Jws { .. } => self.check_peer_claims(name, spec, r),
            Kind::Jwe { alg, enc } => {
                let got = r["plaintext_b64"]
                    .as_str()
                    .and_then(|b| STANDARD.decode(b).ok());
                if got.as_deref() != Some(&self.plaintext(spec)[..]) {
                    Err(format!("{name} decrypted other bytes"))
                } else {
                    check_header(name, r, alg, enc, None)
                }
            }
            Kind::Nested { alg, enc, .. } => self
                .check_peer_claims(name, spec, r)
                .and_then(|()| check_header(name, r, alg, enc, Some("JWT"))),
        };
        if let Err(e) = checked_ok {
            return Status::Fail(e);
        }
        match peer_result(checked, &format!("{}#tampered", spec.id)) {
            Ok(_) => Status::Fail(format!("{name} accepted tessera's token tampered")),
            Err(e) if e.starts_with("no answer") => Status::Fail(e),
            Err(_) => Status::Ok,
        }
    }

    /// The peer verified exactly our claims, plus the `iat` that tessera adds.
    fn check_peer_claims(&self, name: &str, spec: &Spec, r: &Value) -> Result<(), String> {
        let mut claims = r["claims"].clone();
        let iat = claims.as_object_mut().and_then(|m| m.remove("iat"));
        if !iat.as_ref().is_some_and(Value::is_i64) {
            return Err(format!(
                "tessera sign set no integer iat (peer saw {iat:?})"
            ));
        }
        if claims != self.claims(spec) {
            return Err(format!(
                "{name} verified other claims: {}",
                diff(&self.claims(spec), &claims)
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------ report

    /// Prints the table and returns every failure, one line each.
    fn report(&self) -> Vec<String> {
        let columns: Vec<(String, Dir)> = Lib::ALL
            .iter()
            .flat_map(|l| {
                [
                    (l.name().to_string(), Dir::TesseraToPeer),
                    (l.name().to_string(), Dir::PeerToTessera),
                ]
            })
            .collect();
        let width = self.specs.iter().map(|s| s.id.len()).max().unwrap_or(10);
        let mut table = String::new();
        let _ = writeln!(table, "\ninterop peers: {}", self.versions.join(", "));
        let _ = writeln!(
            table,
            "columns: t>p = tessera signs/encrypts, the peer verifies/decrypts; p>t = the reverse;"
        );
        let _ = writeln!(
            table,
            "each cell also checks that the other side refuses the token tampered.\n"
        );
        let _ = write!(table, "{:width$}", "case");
        for (lib, dir) in &columns {
            let d = if *dir == Dir::TesseraToPeer {
                "t>p"
            } else {
                "p>t"
            };
            let _ = write!(table, " | {:>12}", format!("{lib} {d}"));
        }
        table.push('\n');
        let (mut ok, mut skipped, mut failures) = (0, Vec::new(), Vec::new());
        for spec in &self.specs {
            let _ = write!(table, "{:width$}", spec.id);
            for (lib, dir) in &columns {
                let cell = self
                    .cells
                    .get(&(lib.clone(), *dir))
                    .and_then(|m| m.get(spec.id.as_str()));
                let text = match cell {
                    None => "n/a",
                    Some(Status::Ok) => {
                        ok += 1;
                        "ok"
                    }
                    Some(Status::Skip(reason)) => {
                        skipped.push(format!("SKIP {lib} {dir:?} {}: {reason}", spec.id));
                        "skip"
                    }
                    Some(Status::Fail(reason)) => {
                        failures.push(format!("FAIL {lib} {dir:?} {}: {reason}", spec.id));
                        "FAIL"
                    }
                };
                let _ = write!(table, " | {text:>12}");
            }
            table.push('\n');
        }
        for note in &self.notes {
            let _ = writeln!(table, "note: {note}");
        }
        if KNOWN_GAPS.is_empty() {
            let _ = writeln!(table, "known gaps: none");
        }
        for gap in KNOWN_GAPS {
            let _ = writeln!(
                table,
                "known gap: {} {}*: {}",
                gap.lib, gap.prefix, gap.reason
            );
        }
        for s in &skipped {
            let _ = writeln!(table, "{s}");
        }
        let _ = writeln!(
            table,
            "interop summary: {ok} ok, {} failed, {} skipped (known gaps)",
            failures.len(),
            skipped.len()
        );
        println!("{table}");
        failures
    }
}

struct Produced {
    token: String,
    /// The SPKI PEM that verifies it, for PEM cases.
    public_pem: Option<String>,
}

#[derive(Clone)]
struct Pems {
    private: PathBuf,
    public: PathBuf,
    public_text: String,
}

// ---------------------------------------------------------------- the matrix

fn specs() -> Vec<Spec> {
    let mut specs = all_specs();
    if let Ok(only) = std::env::var("INTEROP_ONLY") {
        specs.retain(|s| s.id.contains(&only));
        println!("INTEROP_ONLY={only}: {} of the cases", specs.len());
    }
    specs
}

fn all_specs() -> Vec<Spec> {
    let mut specs = Vec::new();
    for alg in JWS_ALGS {
        let key = format!("jws-{alg}");
        specs.push(Spec {
            id: alg.to_string(),
            kind: Kind::Jws { alg },
            form: Form::Jwk,
            key: key.clone(),
        });
        if PEM_ALGS.contains(&alg) {
            specs.push(Spec {
                id: format!("{alg} pem"),
                kind: Kind::Jws { alg },
                form: Form::Pem,
                key,
            });
        } else if alg == "HS256" {
            specs.push(Spec {
                id: format!("{alg} secret-file"),
                kind: Kind::Jws { alg },
                form: Form::Secret,
                key,
            });
        }
    }
    for enc in ENCS {
        let jwe = |alg: &'static str, id: String, key: String, form: Form| Spec {
            id,
            kind: Kind::Jwe { alg, enc },
            form,
            key,
        };
        for alg in OCT_KMS {
            let key = if alg == "dir" {
                format!("dir-{enc}")
            } else {
                alg.to_string()
            };
            specs.push(jwe(alg, format!("{alg} {enc}"), key, Form::Jwk));
        }
        for alg in RSA_KMS {
            specs.push(jwe(alg, format!("{alg} {enc}"), alg.to_string(), Form::Jwk));
        }
        for crv in ECDH_FULL_CURVES {
            for alg in ECDH_KMS {
                specs.push(jwe(
                    alg,
                    format!("{alg} {enc} {crv}"),
                    format!("{alg}-{crv}"),
                    Form::Jwk,
                ));
            }
        }
    }
    for crv in ECDH_EXTRA_CURVES {
        for alg in ECDH_KMS {
            let enc = "A256GCM";
            specs.push(Spec {
                id: format!("{alg} {enc} {crv}"),
                kind: Kind::Jwe { alg, enc },
                form: Form::Jwk,
                key: format!("{alg}-{crv}"),
            });
        }
    }
    // Nested JWTs: signed with tessera's JWS key, then encrypted.
    for (sig, alg, enc, key) in NESTED {
        specs.push(Spec {
            id: match key.strip_prefix(alg).and_then(|k| k.strip_prefix('-')) {
                Some(crv) if alg.starts_with("ECDH") => {
                    format!("nested {sig} in {alg} {enc} {crv}")
                }
                _ => format!("nested {sig} in {alg} {enc}"),
            },
            kind: Kind::Nested { sig, alg, enc },
            form: Form::Jwk,
            key: key.to_string(),
        });
    }
    for (alg, key) in [("dir", "dir-A256GCM"), ("A256KW", "A256KW")] {
        let enc = "A256GCM";
        specs.push(Spec {
            id: format!("{alg} {enc} secret-file"),
            kind: Kind::Jwe { alg, enc },
            form: Form::Secret,
            key: key.to_string(),
        });
    }
    specs
}

fn key_requests() -> Vec<KeyReq> {
    let mut reqs = Vec::new();
    let req = |name: String, alg, crv, enc| KeyReq {
        name,
        alg,
        crv,
        enc,
    };
    for alg in JWS_ALGS {
        reqs.push(req(format!("jws-{alg}"), alg, None, None));
    }
    for enc in ENCS {
        reqs.push(req(format!("dir-{enc}"), "dir", None, Some(enc)));
    }
    for alg in ["A128KW", "A192KW", "A256KW"].into_iter().chain(RSA_KMS) {
        reqs.push(req(alg.to_string(), alg, None, None));
    }
    for crv in ECDH_FULL_CURVES.into_iter().chain(ECDH_EXTRA_CURVES) {
        for alg in ECDH_KMS {
            reqs.push(req(format!("{alg}-{crv}"), alg, Some(crv), None));
        }
    }
    reqs
}

/// What `tessera key generate` must give for the request (DESIGN.md, "Command line").
fn check_generated(req: &KeyReq, jwk: &Value) -> Result<(), String> {
    let name = &req.name;
    if jwk["alg"] != req.alg {
        return Err(format!(
            "{name}: generated JWK has alg {}, expected {}",
            jwk["alg"], req.alg
        ));
    }
    if jwk["kid"].as_str().is_none_or(str::is_empty) {
        return Err(format!("{name}: generated JWK has no kid"));
    }
    if let Some(crv) = req.crv
        && jwk["crv"] != crv
    {
        return Err(format!(
            "{name}: generated JWK has crv {}, expected {crv}",
            jwk["crv"]
        ));
    }
    let want_len = match (req.alg, req.enc) {
        ("dir", Some(enc)) => Some(enc_key_len(enc)),
        ("A128KW", _) => Some(16),
        ("A192KW", _) => Some(24),
        ("A256KW", _) => Some(32),
        _ => None,
    };
    if let Some(want) = want_len {
        let len = jwk["k"]
            .as_str()
            .and_then(|k| URL_SAFE_NO_PAD.decode(k).ok())
            .map(|k| k.len());
        if len != Some(want) {
            return Err(format!(
                "{name}: generated oct key of {len:?} bytes, expected {want}"
            ));
        }
    }
    Ok(())
}

fn enc_key_len(enc: &str) -> usize {
    match enc {
        "A128GCM" => 16,
        "A192GCM" => 24,
        "A256GCM" | "A128CBC-HS256" => 32,
        "A192CBC-HS384" => 48,
        _ => 64,
    }
}

// ---------------------------------------------------------------- peers

struct Peers {
    python: PathBuf,
    node: PathBuf,
    py_driver: PathBuf,
    node_driver: PathBuf,
    py_missing: Option<String>,
    node_missing: Option<String>,
}

impl Peers {
    fn detect(interop: &Path) -> Peers {
        let python = interop.join(".venv/bin/python");
        let py_missing = if !python.exists() {
            Some(format!("{} is absent", python.display()))
        } else {
            let ok = Command::new(&python)
                .args(["-c", "import jwt, jwcrypto"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            (!ok).then(|| format!("{} cannot import jwt and jwcrypto", python.display()))
        };
        let node = PathBuf::from("node");
        let jose = interop.join("node_modules/jose/package.json");
        let node_missing = if Command::new(&node)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            Some("node is not on PATH".to_string())
        } else if !jose.exists() {
            Some(format!("{} is absent", jose.display()))
        } else {
            None
        };
        Peers {
            python,
            node,
            py_driver: interop.join("peer.py"),
            node_driver: interop.join("peer.mjs"),
            py_missing,
            node_missing,
        }
    }

    fn missing(&self) -> Option<String> {
        match (&self.py_missing, &self.node_missing) {
            (None, None) => None,
            (Some(a), None) | (None, Some(a)) => Some(a.clone()),
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        }
    }

    /// One subprocess: the driver runs every case and answers per case id.
    fn call(
        &self,
        lib: Lib,
        cases: &[Value],
        versions: &mut Vec<String>,
    ) -> Result<HashMap<String, Value>, String> {
        let (program, driver) = match lib {
            Lib::Jose => (&self.node, &self.node_driver),
            _ => (&self.python, &self.py_driver),
        };
        let request =
            serde_json::to_vec(&json!({"lib": lib.name(), "cases": cases})).expect("JSON");
        let mut child = Command::new(program)
            .arg(driver)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        // Written from a thread so that a large answer cannot deadlock the pipes.
        let mut stdin = child.stdin.take().expect("piped stdin");
        let writer = std::thread::spawn(move || stdin.write_all(&request));
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{} driver: {e}", lib.name()))?;
        let _ = writer.join();
        if !out.status.success() {
            return Err(format!(
                "{} driver exited {:?}: {}",
                lib.name(),
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
                    .chars()
                    .take(2000)
                    .collect::<String>()
            ));
        }
        let answer: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{} driver answered no JSON: {e}", lib.name()))?;
        if let Some(v) = answer["version"].as_str()
            && !versions.iter().any(|x| x == v)
        {
            versions.push(v.to_string());
        }
        let results = answer["results"]
            .as_array()
            .ok_or("driver answer without results")?;
        Ok(results
            .iter()
            .filter_map(|r| Some((r["id"].as_str()?.to_string(), r.clone())))
            .collect())
    }
}

/// The JWE header the peer saw: our `alg` and `enc`, and `cty` when expected
/// (tessera sets `cty: "JWT"` on a nested JWT).
fn check_header(
    name: &str,
    r: &Value,
    alg: &str,
    enc: &str,
    cty: Option<&str>,
) -> Result<(), String> {
    let h = &r["header"];
    if h["alg"] != alg || h["enc"] != enc {
        return Err(format!(
            "{name} saw header alg {} enc {}",
            h["alg"], h["enc"]
        ));
    }
    if let Some(cty) = cty
        && h["cty"] != cty
    {
        return Err(format!(
            "{name} saw header cty {}, expected {cty:?}",
            h["cty"]
        ));
    }
    Ok(())
}

/// The peer's answer for one case: Ok(result) when it succeeded, Err(reason) otherwise.
fn peer_result<'a>(
    answers: &'a Result<HashMap<String, Value>, String>,
    id: &str,
) -> Result<&'a Value, String> {
    let answers = answers.as_ref().map_err(Clone::clone)?;
    let r = answers
        .get(id)
        .ok_or_else(|| format!("no answer for case {id}"))?;
    if r["ok"] == true {
        Ok(r)
    } else {
        Err(r["error"]
            .as_str()
            .unwrap_or("failed, no reason given")
            .to_string())
    }
}

// ---------------------------------------------------------------- helpers

fn tessera(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(TESSERA);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run the tessera binary");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input).expect("write tessera's stdin");
    }
    child.wait_with_output().expect("wait for tessera")
}

/// Runs a `tessera token sign|encrypt` and takes its token: one compact token of
/// `parts` parts, then a newline.
fn token_output(args: &[String], parts: usize) -> Result<String, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tessera(&args, None);
    if out.status.code() != Some(0) {
        return Err(describe_failure(&args[..2], &out));
    }
    let stdout = String::from_utf8(out.stdout).map_err(|_| "token is not UTF-8".to_string())?;
    let token = stdout
        .strip_suffix('\n')
        .ok_or("token not followed by a newline")?;
    if token.split('.').count() != parts || token.contains(char::is_whitespace) {
        return Err(format!(
            "tessera {} printed no compact token of {parts} parts",
            args[1]
        ));
    }
    Ok(token.to_string())
}

/// Runs tessera with the token last: JWK cases pass it as an argument; PEM and
/// secret-file cases read it from stdin (`-`), with a newline that tessera must trim.
fn with_token(form: Form, mut args: Vec<String>, token: &str) -> Output {
    if form == Form::Jwk {
        args.push(token.into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tessera(&args, None)
    } else {
        args.push("-".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tessera(&args, Some(format!("{token}\n").as_bytes()))
    }
}

fn parse_json_output(out: &Output) -> Result<Value, String> {
    if out.status.code() != Some(0) {
        return Err(describe_failure(&[], out));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("stdout is not JSON: {e}"))
}

/// The exit code and the first line of stderr (never stdout: it may hold a token).
fn describe_failure(what: &[&str], out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(300)
        .collect::<String>();
    let what: String = what.iter().map(|w| format!(" {w}")).collect();
    format!("tessera{what} exited {:?}: {first}", out.status.code())
}

/// The token with its content changed: a JWS gets another payload (sub replaced)
/// under the same signature; a JWE gets one bit of its ciphertext flipped.
fn tamper(token: &str, spec: &Spec) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let index = if spec.is_jwe() { 3 } else { 1 };
    let Some(part) = parts.get_mut(index) else {
        return format!("{token}x");
    };
    let mut bytes = URL_SAFE_NO_PAD.decode(part.as_bytes()).unwrap_or_default();
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut claims) if !spec.is_jwe() => {
            claims["sub"] = json!("mallory");
            bytes = serde_json::to_vec(&claims).expect("JSON");
        }
        _ => match bytes.first_mut() {
            Some(b) => *b ^= 1,
            None => bytes.push(0),
        },
    }
    *part = URL_SAFE_NO_PAD.encode(&bytes);
    parts.join(".")
}

/// The members that differ between two claim sets (names only for brevity).
fn diff(want: &Value, got: &Value) -> String {
    let (Some(w), Some(g)) = (want.as_object(), got.as_object()) else {
        return format!("expected an object, got {got}");
    };
    let mut out = Vec::new();
    for (k, v) in w {
        match g.get(k) {
            None => out.push(format!("missing {k}")),
            Some(x) if x != v => out.push(format!("{k}: want {v}, got {x}")),
            _ => {}
        }
    }
    for k in g.keys().filter(|k| !w.contains_key(*k)) {
        out.push(format!("extra {k}"));
    }
    out.join("; ")
}

fn file_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("work dir paths are UTF-8").to_string()
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("write {}: {e}", path.display()))
}
