//! Strict JSON checks that serde_json does not make: duplicate member names and
//! nesting depth. A document passes [`check`] before it is deserialized.
//!
//! The scanner holds the whole document to JSON's grammar (numbers, literals,
//! escapes, control characters), so a serde_json pass after it cannot fail on syntax.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::error::{Error, Result};

/// Default limit on how deep objects and arrays may nest.
pub(crate) const DEFAULT_MAX_DEPTH: usize = 32;

/// The deepest nesting ever scanned, whatever the caller allows: serde_json refuses
/// deeper documents anyway, and the scanner recurses once per level, so a larger limit
/// would let a 64 KiB token of `[` overflow the stack.
pub(crate) const DEPTH_CAP: usize = 128;

/// Member names per object compared on the stack before spilling to the heap.
const INLINE_NAMES: usize = 12;

/// `bytes` as text: JSON is UTF-8.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|_| Error::malformed("JSON string is not UTF-8"))
}

/// Refuses `bytes` if it is not JSON, if any object repeats a member name (compared
/// after unescaping) or if objects and arrays nest deeper than `max_depth`.
pub(crate) fn check(bytes: &[u8], max_depth: usize) -> Result<()> {
    // One UTF-8 pass over the whole document instead of one per string: outside
    // strings only ASCII is valid JSON anyway, so this refuses exactly the same input.
    utf8(bytes)?;
    Scanner::new(bytes, max_depth, &[]).document()
}

/// Most names [`check_members`] can look for.
pub(crate) const MAX_NAMES: usize = 8;

/// [`check`], and for a document that is an object, the text of its top-level members named in
/// `names` (compared after unescaping), by index in `names`. `None`: not an object.
///
/// This lets a caller read a few members without parsing the whole document again.
pub(crate) fn check_members<'a>(
    text: &'a str,
    max_depth: usize,
    names: &[&str],
) -> Result<Option<[Option<&'a str>; MAX_NAMES]>> {
    let bytes = text.as_bytes();
    let mut s = Scanner::new(bytes, max_depth, names);
    s.document()?;
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Ok(None);
    }
    Ok(Some(
        // Members start and end at ASCII bytes: always character boundaries.
        s.found
            .map(|f| f.and_then(|(start, end)| text.get(start..end))),
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

/// A member's text, as [`check_members`] found it, read as an optional string: absent
/// and `null` are `None`, any other non-string is an error. A string without escapes
/// (the check found it UTF-8, without control characters) is borrowed as it is.
pub(crate) fn opt_str(raw: Option<&str>) -> serde_json::Result<Option<Cow<'_, str>>> {
    match raw {
        None | Some("null") => Ok(None),
        Some(raw) => match plain_str(raw) {
            Some(s) => Ok(Some(Cow::Borrowed(s))),
            None => serde_json::from_str::<CowStr<'_>>(raw).map(|c| Some(c.0)),
        },
    }
}

/// The text of a JSON string without escapes, as it is in the document; `None` for
/// anything else (not a string, or one with escapes).
pub(crate) fn plain_str(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    // A loop, not `contains` (memchr): these strings are short.
    (!inner.bytes().any(|b| b == b'\\')).then_some(inner)
}

/// A JSON string, borrowed from the document unless it had escapes.
pub(crate) struct CowStr<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct W<'a>(#[serde(borrow)] Cow<'a, str>);
        W::deserialize(d).map(|w| CowStr(w.0))
    }
}

/// A serde_json error message without the input position noise, never with input text.
pub(crate) fn clean(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Bytes that end a run of plain string content: the closing quote, a backslash, and
/// the control characters JSON forbids inside strings.
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    max_depth: usize,
    /// Top-level member names whose value spans go in `found`.
    names: &'a [&'a str],
    found: [Option<(usize, usize)>; MAX_NAMES],
}

impl<'a> Scanner<'a> {
    fn new(bytes: &'a [u8], max_depth: usize, names: &'a [&'a str]) -> Self {
        Self {
            bytes,
            pos: 0,
            max_depth: max_depth.min(DEPTH_CAP),
            names: &names[..names.len().min(MAX_NAMES)],
            found: [None; MAX_NAMES],
        }
    }

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

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<()> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => Err(Error::malformed("invalid JSON")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Error::malformed("invalid JSON number or literal"))
        }
    }

    /// JSON's number grammar (RFC 8259 §6):
    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, followed by a byte that
    /// can end a value.
    fn number(&mut self) -> Result<()> {
        let b = self.bytes;
        let mut i = self.pos;
        let digits = |i: &mut usize| {
            let start = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > start
        };
        if b[i] == b'-' {
            i += 1;
        }
        let ok = match b.get(i) {
            Some(b'0') => {
                i += 1;
                true
            }
            Some(b'1'..=b'9') => digits(&mut i),
            _ => false,
        } && (b.get(i) != Some(&b'.') || {
            i += 1;
            digits(&mut i)
        }) && (!matches!(b.get(i), Some(b'e' | b'E')) || {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            digits(&mut i)
        }) && !matches!(
            b.get(i),
            Some(b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'.' | b'+' | b'-')
        );
        if !ok {
            return Err(Error::malformed("invalid JSON number or literal"));
        }
        self.pos = i;
        Ok(())
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
        // Objects in tokens are small: names without escapes are compared as slices of
        // the document (bytes: the document is UTF-8, so byte equality is string
        // equality), the first few kept on the stack; unescaped ones and the rest go
        // in a set.
        let mut seen = Seen::default();
        loop {
            self.skip_ws();
            let name = self.string()?;
            if seen.insert(name.clone()) {
                return Err(Error::malformed(format!(
                    "duplicate JSON member name {:?}",
                    truncate(&String::from_utf8_lossy(&name))
                )));
            }
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(Error::malformed("invalid JSON"));
            }
            self.pos += 1;
            self.skip_ws();
            let start = self.pos;
            self.value(depth)?;
            if depth == 1
                && let Some(i) = self.names.iter().position(|n| same(n.as_bytes(), &name))
            {
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

    /// Scans a string: its value, borrowed from the document unless it has escapes,
    /// which serde_json checks and resolves (a bad escape or a lone surrogate fails).
    fn string(&mut self) -> Result<Cow<'a, [u8]>> {
        let b = self.bytes;
        if b.get(self.pos) != Some(&b'"') {
            return Err(Error::malformed("invalid JSON"));
        }
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            while i < b.len() && !STRING_STOP[usize::from(b[i])] {
                i += 1;
            }
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                Some(_) => return Err(Error::malformed("control character in a JSON string")),
                None => return Err(Error::malformed("unterminated JSON string")),
            }
        }
        self.pos = i + 1;
        if !escaped {
            return Ok(Cow::Borrowed(&b[start..i]));
        }
        serde_json::from_slice::<String>(&b[start - 1..=i])
            .map(|s| Cow::Owned(s.into_bytes()))
            .map_err(|_| Error::malformed("invalid JSON string"))
    }
}

/// Byte equality, inlined: member names are short, and most differ in length or first
/// byte, so this beats a call to `memcmp` for each comparison.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The member names of one object so far.
#[derive(Default)]
struct Seen<'a> {
    /// The first names that had no escapes.
    inline: [&'a [u8]; INLINE_NAMES],
    count: usize,
    /// Every name, once there are more than fit inline or one had escapes.
    set: Option<HashSet<Cow<'a, [u8]>>>,
}

impl<'a> Seen<'a> {
    /// Records `name`; true if the object already had it.
    #[inline]
    fn insert(&mut self, name: Cow<'a, [u8]>) -> bool {
        if let (None, Cow::Borrowed(n)) = (&self.set, &name)
            && self.count < INLINE_NAMES
        {
            let dup = self.inline[..self.count].iter().any(|k| same(k, n));
            self.inline[self.count] = n;
            self.count += 1;
            return dup;
        }
        let inline = &self.inline[..self.count];
        let set = self
            .set
            .get_or_insert_with(|| inline.iter().map(|n| Cow::Borrowed(*n)).collect());
        !set.insert(name)
    }
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

    /// Whether serde_json parses `doc`, and it has no repeated names in any object,
    /// nor nests deeper than 4: what `check(doc, 4)` must accept, exactly. `None` for
    /// a number too large for an f64, which is JSON (the check accepts it) that
    /// serde_json refuses only when it is read as a number (skipped members pass).
    fn reference(doc: &[u8]) -> Option<bool> {
        fn fine(v: &serde_json::Value, depth: usize) -> bool {
            match v {
                serde_json::Value::Array(a) => depth < 4 && a.iter().all(|v| fine(v, depth + 1)),
                serde_json::Value::Object(o) => depth < 4 && o.values().all(|v| fine(v, depth + 1)),
                _ => true,
            }
        }
        // serde_json keeps the last of repeated names: count the names it saw by
        // parsing every object as a list of pairs instead.
        fn no_repeats(doc: &[u8]) -> bool {
            struct Pairs(bool);
            impl<'de> serde::Deserialize<'de> for Pairs {
                fn deserialize<D: serde::Deserializer<'de>>(
                    d: D,
                ) -> std::result::Result<Self, D::Error> {
                    struct V;
                    impl<'de> serde::de::Visitor<'de> for V {
                        type Value = Pairs;
                        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                            f.write_str("JSON")
                        }
                        fn visit_map<A: serde::de::MapAccess<'de>>(
                            self,
                            mut m: A,
                        ) -> std::result::Result<Pairs, A::Error> {
                            let mut names = HashSet::new();
                            let mut ok = true;
                            while let Some((k, v)) = m.next_entry::<String, Pairs>()? {
                                ok &= names.insert(k) && v.0;
                            }
                            Ok(Pairs(ok))
                        }
                        fn visit_seq<A: serde::de::SeqAccess<'de>>(
                            self,
                            mut s: A,
                        ) -> std::result::Result<Pairs, A::Error> {
                            let mut ok = true;
                            while let Some(v) = s.next_element::<Pairs>()? {
                                ok &= v.0;
                            }
                            Ok(Pairs(ok))
                        }
                        fn visit_bool<E>(self, _: bool) -> std::result::Result<Pairs, E> {
                            Ok(Pairs(true))
                        }
                        fn visit_i64<E>(self, _: i64) -> std::result::Result<Pairs, E> {
                            Ok(Pairs(true))
                        }
                        fn visit_u64<E>(self, _: u64) -> std::result::Result<Pairs, E> {
                            Ok(Pairs(true))
                        }
                        fn visit_f64<E>(self, _: f64) -> std::result::Result<Pairs, E> {
                            Ok(Pairs(true))
                        }
                        fn visit_str<E>(self, _: &str) -> std::result::Result<Pairs, E> {
                            Ok(Pairs(true))
                        }
                        fn visit_unit<E>(self) -> std::result::Result<Pairs, E> {
                            Ok(Pairs(true))
                        }
                    }
                    d.deserialize_any(V)
                }
            }
            serde_json::from_slice::<Pairs>(doc).is_ok_and(|p| p.0)
        }
        match serde_json::from_slice::<serde_json::Value>(doc) {
            Err(e) if e.to_string().contains("number out of range") => None,
            v => Some(v.is_ok_and(|v| fine(&v, 0)) && no_repeats(doc)),
        }
    }

    #[test]
    fn accepts_exactly_what_serde_json_parses_without_repeats_or_depth() {
        let seeds: [&[u8]; 8] = [
            br#"{"iss":"https://a.example","sub":"ada","aud":["x","y"],"exp":1700000000,"n":-1.5e+3}"#,
            br#"{"alg":"HS256","typ":"JWT","kid":"k\u00e9\n1"}"#,
            br#" [ true , false , null , 0 , -0.0 , 1E9 , "" , {} , [] ] "#,
            r#"{"a":{"b":{"c":[1]}},"\u0061x":"\ud83d\ude00","e":"é"}"#.as_bytes(),
            br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"a2":0}"#,
            b"\"plain\"",
            b"12",
            br#"{"x":"a\"b\\c\/d\b\f\n\r\t"}"#,
        ];
        // Every single-byte change and deletion of each seed, over bytes that matter
        // to JSON's grammar.
        let bytes = b"\"\\{}[]:,.-+eE0123456789tfnu aA\x00\x1f\x7f\xc3\xff";
        let mut checked = 0;
        for seed in seeds {
            let mut docs = vec![seed.to_vec()];
            for i in 0..seed.len() {
                let mut d = seed.to_vec();
                d.remove(i);
                docs.push(d);
                for &b in bytes {
                    let mut d = seed.to_vec();
                    d[i] = b;
                    docs.push(d);
                    let mut d = seed.to_vec();
                    d.insert(i, b);
                    docs.push(d);
                }
            }
            for d in docs {
                let Some(want) = reference(&d) else { continue };
                assert_eq!(
                    check(&d, 4).is_ok(),
                    want,
                    "{:?}",
                    String::from_utf8_lossy(&d)
                );
                checked += 1;
            }
        }
        assert!(checked > 10_000);
    }
}
