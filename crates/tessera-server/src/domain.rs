//! Parsed input: a value of these types has passed its rules.

pub mod oauth;

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

pub use oauth::{ClientId, GrantType, RedirectUri, Scope, ScopeToken};

/// A username: NFKC, lower-cased (as RFC 8265's UsernameCaseMapped profile maps
/// case) with the case foldings that lower case misses (ß and ẞ to ss, final ς to σ,
/// U+0345 to ι), then NFKC again; 1 to 64 characters; no control characters, no
/// invisible formatting characters (zero-width joiners, bidi overrides, variation
/// selectors: they let two names that look alike be different users), no
/// surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

/// Why an input was refused (a username, a password, a client id, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput(pub &'static str);

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Username {
    /// The longest username, in characters after normalization.
    pub const MAX_CHARS: usize = 64;

    /// Normalizes and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let folded: String = fold_case(&raw.nfkc().collect::<String>()).nfkc().collect();
        let n = folded.chars().count();
        if n == 0 {
            return Err(InvalidInput("the username is empty"));
        }
        if n > Self::MAX_CHARS {
            return Err(InvalidInput("the username is longer than 64 characters"));
        }
        if folded.chars().any(char::is_control) {
            return Err(InvalidInput("the username contains a control character"));
        }
        if folded.chars().any(invisible) {
            return Err(InvalidInput(
                "the username contains an invisible formatting character",
            ));
        }
        if folded.trim() != folded {
            return Err(InvalidInput("the username begins or ends with whitespace"));
        }
        Ok(Self(folded))
    }

    /// Normalizes `raw` for a lookup; `None` when no such user can exist.
    pub fn lookup(raw: &str) -> Option<Self> {
        Self::parse(raw).ok()
    }

    /// The normalized form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lower case, then the full case foldings of Unicode's CaseFolding.txt that differ
/// from lower case for a lower-cased letter: so `STRASSE`, `straße` and `Straße` are
/// one name, and so are `ΟΔΟΣ` and `οδοσ`.
fn fold_case(s: &str) -> String {
    let lower = s.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    for c in lower.chars() {
        match c {
            'ß' => out.push_str("ss"),
            'ς' => out.push('σ'),
            '\u{345}' => out.push('ι'),
            _ => out.push(c),
        }
    }
    out
}

/// Unicode's format characters (category Cf) and default-ignorable code points:
/// drawn as nothing, or as a change of direction.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{600}'..='\u{605}' | '\u{6DD}'
        | '\u{70F}' | '\u{890}'..='\u{891}' | '\u{8E2}' | '\u{110BD}' | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password: 8 to 1,024 bytes. Wiped on drop, never printed.
pub struct Password(Zeroizing<String>);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    /// The shortest password, in bytes.
    pub const MIN_BYTES: usize = 8;
    /// The longest password, in bytes.
    pub const MAX_BYTES: usize = 1024;

    /// Checks a new password's length.
    pub fn parse(raw: String) -> Result<Self, InvalidInput> {
        let raw = Zeroizing::new(raw);
        if raw.len() < Self::MIN_BYTES {
            return Err(InvalidInput("the password is shorter than 8 bytes"));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(InvalidInput("the password is longer than 1024 bytes"));
        }
        Ok(Self(raw))
    }

    /// A password presented at login: not checked for length (an old one may
    /// predate the rules), only capped so that hashing it stays cheap.
    pub fn presented(raw: String) -> Self {
        let mut raw = Zeroizing::new(raw);
        if raw.len() > Self::MAX_BYTES {
            let mut end = Self::MAX_BYTES;
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            raw.truncate(end);
        }
        Self(raw)
    }

    /// The bytes to hash.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_folded() {
        assert_eq!(Username::parse("Ada").unwrap().as_str(), "ada");
        assert_eq!(Username::parse("ＡＤＡ").unwrap().as_str(), "ada");
        assert_eq!(Username::parse("ﬁle").unwrap().as_str(), "file");
        assert_eq!(Username::parse("Ωmega").unwrap().as_str(), "ωmega");
        for same in ["strasse", "STRASSE", "straße", "Straße", "STRAẞE"] {
            assert_eq!(Username::parse(same).unwrap().as_str(), "strasse", "{same}");
        }
        for same in ["ΟΔΟΣ", "οδος", "οδοσ"] {
            assert_eq!(Username::parse(same).unwrap().as_str(), "οδοσ", "{same}");
        }
    }

    #[test]
    fn invisible_characters_are_refused() {
        for raw in [
            "a\u{200D}b",   // zero-width joiner
            "a\u{200B}b",   // zero-width space
            "a\u{202E}b",   // right-to-left override
            "a\u{2066}b",   // left-to-right isolate
            "a\u{FE0F}",    // variation selector
            "\u{FEFF}ada",  // byte-order mark
            "a\u{AD}da",    // soft hyphen
            "ad\u{E0061}a", // tag character
        ] {
            assert_eq!(
                Username::parse(raw).unwrap_err(),
                InvalidInput("the username contains an invisible formatting character"),
                "{raw:?}"
            );
        }
        assert!(Username::parse("ada_lovelace-1815").is_ok());
        assert!(Username::parse("josé").is_ok());
    }

    #[test]
    fn username_rules() {
        assert_eq!(
            Username::parse("").unwrap_err(),
            InvalidInput("the username is empty")
        );
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert!(Username::parse(&"é".repeat(64)).is_ok());
        assert!(Username::parse("a\u{0}b").is_err());
        assert!(Username::parse(" ada").is_err());
        assert!(Username::parse("ada ").is_err());
    }

    proptest::proptest! {
        #[test]
        fn normalization_is_idempotent_and_bounded(raw in "\\PC{0,80}") {
            if let Ok(u) = Username::parse(&raw) {
                let again = Username::parse(u.as_str()).unwrap();
                proptest::prop_assert_eq!(again.as_str(), u.as_str());
                let n = u.as_str().chars().count();
                proptest::prop_assert!((1..=64).contains(&n));
                proptest::prop_assert!(!u.as_str().chars().any(char::is_control));
            }
        }
    }

    #[test]
    fn password_rules() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        assert!(Password::parse("x".repeat(1024)).is_ok());
        assert!(Password::parse("x".repeat(1025)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("secret-pw".into()).unwrap()),
            "Password(..)"
        );
        assert_eq!(Password::presented("é".repeat(600)).as_bytes().len(), 1024);
    }
}
