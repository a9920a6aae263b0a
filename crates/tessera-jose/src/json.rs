//! Strict JSON checks that serde_json does not make: duplicate member names and
//! nesting depth. A document passes [`check`] before it is deserialized.
//!
//! The scanner walks the structure only; serde_json still validates numbers,
//! literals and escapes when it parses the document afterwards.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::error::{Error, Result};

/// Default limit on how deep objects and arrays may nest.
pub(crate) const DEFAULT_MAX_DEPTH: usize = 32;

/// Member names per object compared on the stack before spilling to the heap.
const INLINE_NAMES: usize = 12;

/// Refuses `bytes` if any object repeats a member name (compared after unescaping)
/// or if objects and arrays nest deeper than `max_depth`.
pub(crate) fn check(bytes: &[u8], max_depth: usize) -> Result<()> {
    // One UTF-8 pass over the whole document instead of one per string: outside
    // strings only ASCII is valid JSON anyway, so this refuses exactly the same input.
    if std::str::from_utf8(bytes).is_err() {
        return Err(Error::malformed("JSON string is not UTF-8"));
    }
    let mut s = Scanner {
        bytes,
        pos: 0,
        max_depth,
        strict: false,
        names: &[],
        found: [None; MAX_NAMES],
    };
    s.document()
}

/// Most names [`check_members`] can look for.
pub(crate) const MAX_NAMES: usize = 8;

/// [`check`], which here also holds numbers, literals and strings to JSON's exact
/// grammar (so that a full serde_json pass over `bytes` cannot fail on syntax), and
/// for a document that is an object, the text of its top-level members named in
/// `names` (compared after unescaping), by index in `names`. `None`: not an object.
///
/// This lets a caller read a few members without parsing the whole document again.
pub(crate) fn check_members<'a>(
    bytes: &'a [u8],
    max_depth: usize,
    names: &[&str],
) -> Result<Option<[Option<&'a [u8]>; MAX_NAMES]>> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(Error::malformed("JSON string is not UTF-8"));
    }
    let mut s = Scanner {
        bytes,
        pos: 0,
        max_depth,
        strict: true,
        names: &names[..names.len().min(MAX_NAMES)],
        found: [None; MAX_NAMES],
    };
    s.document()?;
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Ok(None);
    }
    Ok(Some(
        s.found.map(|f| f.map(|(start, end)| &bytes[start..end])),
    ))
}

/// Parses a JSON object after [`check`]ing it.
pub(crate) fn from_slice<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
    max_depth: usize,
    what: &'static str,
) -> Result<T> {
    check(bytes, max_depth)?;
    serde_json::from_slice(bytes).map_err(|e| Error::malformed(format!("{what}: {}", clean(&e))))
}

/// A serde_json error message without the input position noise, never with input text.
pub(crate) fn clean(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    max_depth: usize,
    /// Check numbers, literals and control characters too (see [`check_members`]).
    strict: bool,
    /// Top-level member names whose value spans go in `found`.
    names: &'a [&'a str],
    found: [Option<(usize, usize)>; MAX_NAMES],
}

impl<'a> Scanner<'a> {
    fn document(&mut self) -> Result<()> {
        self.skip_ws();
        self.value(0)?;
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(Error::malformed(
                "trailing characters after the JSON document",
            ));
        }
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Error::malformed("invalid JSON"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<()> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(|_| ()),
            Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                // Numbers and literals: serde_json checks their exact grammar later,
                // unless strict.
                let start = self.pos;
                while let Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E') = self.peek()
                {
                    self.pos += 1;
                }
                let token = &self.bytes[start..self.pos];
                if self.strict
                    && !matches!(token, b"true" | b"false" | b"null")
                    && !is_number(token)
                {
                    return Err(Error::malformed("invalid JSON number or literal"));
                }
                Ok(())
            }
            _ => Err(Error::malformed("invalid JSON")),
        }
    }

    fn enter(&self, depth: usize) -> Result<()> {
        if depth > self.max_depth {
            return Err(Error::malformed(format!(
                "JSON nests deeper than {} levels",
                self.max_depth
            )));
        }
        Ok(())
    }

    fn object(&mut self, depth: usize) -> Result<()> {
        self.enter(depth)?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        // Objects in tokens are small: compare linearly, the first plain names kept on
        // the stack (no allocation for a header or ordinary claims), names that had
        // escapes and later ones in a Vec, and switch to a set past a few dozen. Names
        // compare as bytes: the document is UTF-8, so byte equality is string equality.
        let mut inline: [&'a [u8]; INLINE_NAMES] = [&[]; INLINE_NAMES];
        let mut count = 0;
        let mut keys: Vec<Cow<'a, [u8]>> = Vec::new();
        let mut set: Option<HashSet<Cow<'a, [u8]>>> = None;
        loop {
            self.skip_ws();
            let key = self.string()?;
            let wanted = match depth {
                1 => self.names.iter().position(|n| same(n.as_bytes(), &key)),
                _ => None,
            };
            let duplicate = match &mut set {
                Some(set) => !set.insert(key.clone()),
                None => {
                    let dup = inline[..count].iter().any(|k| same(k, &key))
                        || keys.iter().any(|k| same(k, &key));
                    match &key {
                        Cow::Borrowed(k) if count < INLINE_NAMES => {
                            inline[count] = k;
                            count += 1;
                        }
                        _ => keys.push(key.clone()),
                    }
                    if count + keys.len() > 32 {
                        set = Some(
                            inline[..count]
                                .iter()
                                .map(|k| Cow::Borrowed(*k))
                                .chain(keys.drain(..))
                                .collect(),
                        );
                    }
                    dup
                }
            };
            if duplicate {
                return Err(Error::malformed(format!(
                    "duplicate JSON member name {:?}",
                    truncate(&String::from_utf8_lossy(&key))
                )));
            }
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let start = self.pos;
            self.value(depth)?;
            if let Some(i) = wanted {
                self.found[i] = Some((start, self.pos));
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Error::malformed("invalid JSON")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<()> {
        self.enter(depth)?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            self.value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Error::malformed("invalid JSON")),
            }
        }
    }

    /// Scans a string and returns its unescaped value (UTF-8: [`check`] validated it).
    fn string(&mut self) -> Result<Cow<'a, [u8]>> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            // Jump to the next quote or backslash rather than stepping byte by byte.
            let rest = self.bytes.get(self.pos..).unwrap_or_default();
            let strict = self.strict;
            match rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || (strict && b < 0x20))
            {
                None => return Err(Error::malformed("unterminated JSON string")),
                Some(i) if rest[i] < 0x20 => {
                    return Err(Error::malformed("control character in a JSON string"));
                }
                Some(i) if rest[i] == b'"' => {
                    self.pos += i;
                    break;
                }
                Some(i) => {
                    escaped = true;
                    self.pos += i + 2;
                }
            }
        }
        let end = self.pos.min(self.bytes.len());
        self.pos += 1;
        let raw = &self.bytes[start..end];
        if escaped {
            // Include the quotes and let serde_json unescape (and validate) it.
            let quoted = &self.bytes[start - 1..end + 1];
            serde_json::from_slice::<String>(quoted)
                .map(|s| Cow::Owned(s.into_bytes()))
                .map_err(|_| Error::malformed("invalid JSON string"))
        } else {
            Ok(Cow::Borrowed(raw))
        }
    }
}

/// Byte equality, inlined: member names are short, and most differ in length or first
/// byte, so this beats a call to `memcmp` for each comparison.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// JSON's number grammar (RFC 8259 §6): `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_number(t: &[u8]) -> bool {
    fn digits(t: &[u8], i: &mut usize) -> usize {
        let start = *i;
        while t.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    }
    let mut i = 0;
    if t.first() == Some(&b'-') {
        i += 1;
    }
    match t.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(t, &mut i);
        }
        _ => return false,
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        if digits(t, &mut i) == 0 {
            return false;
        }
    }
    if let Some(b'e' | b'E') = t.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = t.get(i) {
            i += 1;
        }
        if digits(t, &mut i) == 0 {
            return false;
        }
    }
    i == t.len()
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn ok(s: &str) -> bool {
        check(s.as_bytes(), 4).is_ok()
    }

    #[test]
    fn accepts_ordinary_documents() {
        assert!(ok(r#"{"a":1,"b":[1,2,{"c":"d"}],"e":{"a":1}}"#));
        assert!(ok(r#" { "a" : "x\"y" , "b" : null } "#));
        assert!(ok("[]"));
    }

    #[test]
    fn refuses_duplicate_members_at_any_depth_and_after_unescaping() {
        assert!(!ok(r#"{"a":1,"a":2}"#));
        assert!(!ok(r#"{"x":{"a":1,"a":2}}"#));
        assert!(!ok(r#"{"alg":"HS256","\u0061lg":"none"}"#));
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":1")).collect();
        let doc = format!("{{{},\"k3\":2}}", many.join(","));
        assert_eq!(
            check(doc.as_bytes(), 4).unwrap_err().kind(),
            ErrorKind::Malformed
        );
    }

    #[test]
    fn refuses_deep_nesting_and_garbage() {
        assert!(ok("[[[[1]]]]"));
        assert!(!ok("[[[[[1]]]]]"));
        assert!(!ok(r#"{"a":1} x"#));
        assert!(!ok(r#"{"a":1"#));
        assert!(!ok(r#"{"a" 1}"#));
        assert!(!ok("\"abc"));
        assert!(!ok(""));
    }
}
