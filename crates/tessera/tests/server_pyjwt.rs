//! Black-box, through the contract of DESIGN.md: `tessera serve` starts with no
//! configuration in an empty directory, and PyJWT verifies an access token from
//! `/auth/login` with the keys it fetches from `/.well-known/jwks.json`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Server {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The interop virtualenv's Python, if it has PyJWT.
fn python() -> Option<PathBuf> {
    let py = repo_root().join("interop/.venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import jwt"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(py)
}

fn spawn_server() -> Server {
    let dir = std::env::temp_dir().join(format!(
        "tessera-pyjwt-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .current_dir(&dir)
        .env("TESSERA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tessera serve");
    // The URL may be printed on stdout or stderr: watch both.
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut seen = Vec::new();
    let url = loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                if let Some(i) = line.find("http://127.0.0.1:") {
                    let url: String = line[i..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',')
                        .collect();
                    break url.trim_end_matches('/').to_owned();
                }
                seen.push(line);
            }
            Err(_) => panic!(
                "tessera serve printed no URL; it said:\n{}",
                seen.join("\n")
            ),
        }
    };
    assert!(
        dir.join("tessera.db").exists(),
        "zero-config start creates ./tessera.db"
    );
    Server { child, url, dir }
}

#[test]
fn pyjwt_verifies_a_login_access_token_through_the_jwks() {
    let Some(py) = python() else {
        if std::env::var_os("CI").is_some() {
            panic!("CI must provide interop/.venv with PyJWT (see .ci/run)");
        }
        println!(
            "SKIPPED pyjwt_verifies_a_login_access_token_through_the_jwks: no interop/.venv; run \
             python3 -m venv interop/.venv && interop/.venv/bin/pip install -r interop/requirements.txt"
        );
        return;
    };
    let server = spawn_server();
    let out = Command::new(py)
        .arg(repo_root().join("crates/tessera/tests/support/pyjwt_login.py"))
        .arg(&server.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PyJWT script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["header"]["typ"], "at+jwt", "RFC 9068 access token type");
    assert_eq!(v["header"]["alg"], "ES256", "ES256 is the default");
    assert!(v["header"]["kid"].is_string(), "the header names its key");
    let claims = &v["claims"];
    assert_eq!(claims["iss"], server.url.as_str());
    assert!(claims["sub"].is_string() && claims["jti"].is_string() && claims["sid"].is_string());
    assert!(claims["roles"].is_array(), "roles is an array: {claims}");
    assert!(claims.get("scope").is_some(), "scope is present: {claims}");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 900, "access tokens live 15 minutes by default");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["tampered_refused"], true);
}
