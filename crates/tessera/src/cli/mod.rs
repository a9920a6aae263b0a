//! The `key` and `token` commands: everything the binary does without a server.
//!
//! Every command returns `Result<(), Failure>`; `main` prints a failure as one line,
//! `tessera: ...`, and exits with its code: 1 for a token or JWE that is refused,
//! 2 for bad usage, unreadable input, or a key that policy refuses.

pub(crate) mod duration;
pub(crate) mod key;
pub(crate) mod keyfile;
pub(crate) mod token;

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

/// Exit code: the token or JWE is refused.
pub(crate) const EXIT_TOKEN: u8 = 1;
/// Exit code: bad usage, unreadable input, or a key refused by policy.
pub(crate) const EXIT_USAGE: u8 = 2;

/// Why a command failed, and with which exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// The token (or JWE) is refused: exit 1.
    pub(crate) fn token(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_TOKEN,
            message: message.into(),
        }
    }

    /// Bad usage, unreadable input or a key refused by policy: exit 2.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// The process exit code.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Reads a whole file, with its name (never its content) in the error.
pub(crate) fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, Failure> {
    let file = std::fs::File::open(path).map_err(|e| {
        Failure::usage(format!("cannot read {}: {}", path.display(), io_reason(&e)))
    })?;
    read_bounded(file, limit, &path.display().to_string())
}

/// Reads all of `r`, refusing more than `limit` bytes (exit 2).
pub(crate) fn read_bounded(r: impl Read, limit: u64, what: &str) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    r.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Failure::usage(format!("cannot read {what}: {}", io_reason(&e))))?;
    if buf.len() as u64 > limit {
        return Err(Failure::usage(format!(
            "{what} is larger than {limit} bytes"
        )));
    }
    Ok(buf)
}

/// The token named on the command line: itself, or `-` for standard input (whose
/// surrounding whitespace is trimmed). Input over `limit` bytes is a refused token.
pub(crate) fn token_arg(arg: &str, limit: usize) -> Result<String, Failure> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    // Whitespace around the token is allowed on top of the limit, within reason.
    let cap = limit.saturating_add(64 * 1024) as u64;
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Failure::usage(format!("cannot read standard input: {}", io_reason(&e))))?;
    if buf.len() as u64 > cap {
        return Err(Failure::token(format!(
            "the token is larger than {limit} bytes"
        )));
    }
    let text = String::from_utf8(buf)
        .map_err(|_| Failure::token("the token on standard input is not UTF-8 text"))?;
    Ok(text.trim().to_owned())
}

/// Writes `bytes` to standard output and flushes it.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| {
            Failure::usage(format!(
                "cannot write to standard output: {}",
                io_reason(&e)
            ))
        })
}

/// Writes one line of text to standard output.
pub(crate) fn print_line(text: &str) -> Result<(), Failure> {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    write_stdout(line.as_bytes())
}

/// An I/O error's reason without the OS error number noise.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}
