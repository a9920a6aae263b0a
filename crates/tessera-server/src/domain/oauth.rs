//! The OAuth vocabulary, parsed: a [`ClientId`], a [`RedirectUri`], a [`Scope`] of
//! [`ScopeToken`]s and a [`GrantType`]. A value of these types has passed its rules;
//! each rule has a test of its own below.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::InvalidInput;

/// A client id: 1 to 64 characters of the URI's unreserved set (`A-Z a-z 0-9 - . _
/// ~`), so that it needs no escaping in a URL, a form, a log line, or HTTP Basic
/// authentication (where a `:` would end it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// The longest client id, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() {
            return Err(InvalidInput("the client id is empty"));
        }
        if raw.len() > Self::MAX_CHARS {
            return Err(InvalidInput("the client id is longer than 64 characters"));
        }
        if !raw.bytes().all(unreserved) {
            return Err(InvalidInput(
                "the client id may hold only letters, digits, '-', '.', '_' and '~'",
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A redirect URI a client registers, kept exactly as given: a request's
/// `redirect_uri` is later compared to it as a string, character for character
/// (RFC 9700 §2.1; no pattern, no normalization).
///
/// Rules: an absolute URI (RFC 3986 syntax, ASCII only, at most 2,000 bytes) without
/// a fragment (RFC 6749 §3.1.2), whose scheme is
/// - `https`, with a host and no user information;
/// - `http`, only for a loopback host: `127.0.0.0/8`, `[::1]` or `localhost` (native
///   apps, RFC 8252 §7.3);
/// - or a private-use scheme, a reversed domain name such as `com.example.app`
///   (native apps, RFC 8252 §7.1), followed by a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// The longest redirect URI, in bytes.
    pub const MAX_BYTES: usize = 2000;

    /// Checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() {
            return Err(InvalidInput("the redirect URI is empty"));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(InvalidInput("the redirect URI is longer than 2000 bytes"));
        }
        if !raw.bytes().all(uri_char) {
            return Err(InvalidInput(
                "the redirect URI holds a character that a URI may not (a space, a control \
                 character, a non-ASCII letter, or one of \"<>\\^`{|})",
            ));
        }
        if !percent_encodings_are_whole(raw) {
            return Err(InvalidInput(
                "the redirect URI has a '%' not followed by two hexadecimal digits",
            ));
        }
        if raw.contains('#') {
            return Err(InvalidInput("the redirect URI has a fragment"));
        }
        let Some((scheme, rest)) = raw.split_once(':') else {
            return Err(InvalidInput(
                "the redirect URI is not absolute (it has no scheme)",
            ));
        };
        if !is_scheme(scheme) {
            return Err(InvalidInput(
                "the redirect URI is not absolute (it has no valid scheme)",
            ));
        }
        let lower = scheme.to_ascii_lowercase();
        match lower.as_str() {
            "https" => {
                authority_host(rest)?;
            }
            "http" => {
                let host = authority_host(rest)?;
                if !is_loopback_host(host) {
                    return Err(InvalidInput(
                        "an http redirect URI must name a loopback host (127.0.0.1, [::1] or \
                         localhost); use https",
                    ));
                }
            }
            _ if lower.contains('.') => {
                if rest.is_empty() || rest == "/" || rest == "//" {
                    return Err(InvalidInput(
                        "a private-use redirect URI needs a path after its scheme",
                    ));
                }
            }
            _ => {
                return Err(InvalidInput(
                    "the redirect URI's scheme must be https, http for a loopback host, or a \
                     private-use scheme in reverse domain order (com.example.app)",
                ));
            }
        }
        Ok(Self(raw.to_string()))
    }

    /// The URI as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One scope token (RFC 6749 §3.3): `1*( %x21 / %x23-5B / %x5D-7E )`, that is
/// printable ASCII except the space, `"` and `\`; at most 128 characters here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeToken(String);

impl ScopeToken {
    /// The longest scope token, in characters.
    pub const MAX_CHARS: usize = 128;

    /// Checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() {
            return Err(InvalidInput("a scope token is empty"));
        }
        if raw.len() > Self::MAX_CHARS {
            return Err(InvalidInput("a scope token is longer than 128 characters"));
        }
        if !raw
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        {
            return Err(InvalidInput(
                "a scope token may hold only printable ASCII, without spaces, double quotes or backslashes",
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A scope (RFC 6749 §3.3): scope tokens, each once, in the order first given,
/// written as a string with one space between tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(Vec<ScopeToken>);

impl Scope {
    /// The most tokens a scope may hold.
    pub const MAX_TOKENS: usize = 64;

    /// Parses a scope string: `scope-token *( SP scope-token )`. An empty string, a
    /// space at either end or two spaces in a row break that grammar and are
    /// refused; a token given twice is held once.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() {
            return Err(InvalidInput("the scope is empty"));
        }
        Self::from_tokens(raw.split(' '))
    }

    /// The scope of these tokens, each parsed; duplicates are held once.
    pub fn from_tokens<'a>(
        tokens: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, InvalidInput> {
        let mut out: Vec<ScopeToken> = Vec::new();
        for t in tokens {
            let t = ScopeToken::parse(t)?;
            if !out.contains(&t) {
                if out.len() == Self::MAX_TOKENS {
                    return Err(InvalidInput("the scope holds more than 64 tokens"));
                }
                out.push(t);
            }
        }
        Ok(Self(out))
    }

    /// The tokens.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(ScopeToken::as_str)
    }

    /// Whether it holds `token`.
    pub fn contains(&self, token: &str) -> bool {
        self.tokens().any(|t| t == token)
    }

    /// Whether it holds no token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tokens of this scope that `allowed` does not hold.
    pub fn outside<'a>(&'a self, allowed: &'a Scope) -> impl Iterator<Item = &'a str> {
        self.tokens().filter(|t| !allowed.contains(t))
    }

    /// This scope without the tokens that `drop` returns true for.
    pub fn without(&self, drop: impl Fn(&str) -> bool) -> Self {
        Self(
            self.0
                .iter()
                .filter(|t| !drop(t.as_str()))
                .cloned()
                .collect(),
        )
    }
}

impl fmt::Display for Scope {
    /// The tokens, one space between them (the form OAuth writes a scope in).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(t.as_str())?;
        }
        Ok(())
    }
}

/// The scopes that name something of a user (OpenID Connect Core §5.4, §11): they
/// mean nothing for a client acting for itself.
pub const USER_SCOPES: [&str; 6] = [
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

/// A grant type this server knows (RFC 6749).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrantType {
    /// `authorization_code` (§4.1).
    AuthorizationCode,
    /// `refresh_token` (§6).
    RefreshToken,
    /// `client_credentials` (§4.4): a confidential client acting for itself.
    ClientCredentials,
}

impl GrantType {
    /// Every grant type, in the order discovery lists them.
    pub const ALL: [GrantType; 3] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
    ];

    /// Its name as OAuth writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// The grant type of a name.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == raw)
            .ok_or(InvalidInput(
                "the grant type must be authorization_code, refresh_token or client_credentials",
            ))
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3986 `unreserved`.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// A byte that may appear in a URI: `unreserved`, `reserved` (gen-delims and
/// sub-delims) or `%`.
fn uri_char(b: u8) -> bool {
    unreserved(b)
        || matches!(
            b,
            b':' | b'/'
                | b'?'
                | b'#'
                | b'['
                | b']'
                | b'@'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b'%'
        )
}

fn percent_encodings_are_whole(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// RFC 3986 `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// The host of `//authority/...`, refusing a missing authority, user information, an
/// empty host and a port that is not digits.
fn authority_host(rest: &str) -> Result<&str, InvalidInput> {
    let Some(after) = rest.strip_prefix("//") else {
        return Err(InvalidInput(
            "the redirect URI has no host (no //authority)",
        ));
    };
    let authority = after.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(InvalidInput(
            "the redirect URI holds user information (user@)",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((inside, after)) = v6.split_once(']') else {
            return Err(InvalidInput(
                "the redirect URI's IPv6 host has no closing ']'",
            ));
        };
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(InvalidInput(
                "the redirect URI has something other than a port after its IPv6 host",
            ))?),
        };
        (&authority[..inside.len() + 2], port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(InvalidInput("the redirect URI has no host"));
    }
    if port.is_some_and(|p| p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(InvalidInput("the redirect URI's port is not a number"));
    }
    Ok(host)
}

fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    }
    host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<impl fmt::Debug, InvalidInput>) -> &'static str {
        r.unwrap_err().0
    }

    // ----- ClientId: one test per rule ------------------------------------------

    #[test]
    fn a_client_id_is_not_empty() {
        assert_eq!(refused(ClientId::parse("")), "the client id is empty");
    }

    #[test]
    fn a_client_id_is_at_most_64_characters() {
        assert!(ClientId::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            refused(ClientId::parse(&"a".repeat(65))),
            "the client id is longer than 64 characters"
        );
    }

    #[test]
    fn a_client_id_is_of_the_unreserved_characters() {
        assert_eq!(
            ClientId::parse("Web-App_2.0~x").unwrap().as_str(),
            "Web-App_2.0~x"
        );
        for bad in ["a:b", "a b", "a/b", "a%20", "é", "a+b", "a\u{0}"] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
    }

    // ----- RedirectUri: one test per rule ---------------------------------------

    #[test]
    fn a_redirect_uri_is_not_empty_nor_over_2000_bytes() {
        assert_eq!(refused(RedirectUri::parse("")), "the redirect URI is empty");
        let long = format!("https://a.example/{}", "p".repeat(2000));
        assert_eq!(
            refused(RedirectUri::parse(&long)),
            "the redirect URI is longer than 2000 bytes"
        );
    }

    #[test]
    fn a_redirect_uri_holds_only_uri_characters() {
        for bad in [
            "https://a.example/a b",
            "https://a.example/\u{e9}",
            "https://a.example/<x>",
            "https://a.example/\t",
            "https://a.example/{x}",
        ] {
            assert!(
                refused(RedirectUri::parse(bad)).contains("a character that a URI may not"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_redirect_uri_has_whole_percent_encodings() {
        assert!(RedirectUri::parse("https://a.example/%2Fx").is_ok());
        for bad in [
            "https://a.example/%",
            "https://a.example/%2",
            "https://a.example/%zz",
        ] {
            assert!(refused(RedirectUri::parse(bad)).contains("'%'"), "{bad:?}");
        }
    }

    #[test]
    fn a_redirect_uri_has_no_fragment() {
        assert_eq!(
            refused(RedirectUri::parse("https://a.example/cb#x")),
            "the redirect URI has a fragment"
        );
        assert_eq!(
            refused(RedirectUri::parse("https://a.example/cb#")),
            "the redirect URI has a fragment"
        );
    }

    #[test]
    fn a_redirect_uri_is_absolute() {
        for bad in [
            "/cb",
            "a.example/cb",
            "//a.example/cb",
            "1http://a/cb",
            ":x",
        ] {
            assert!(
                refused(RedirectUri::parse(bad)).contains("is not absolute"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_https_redirect_uri_has_a_host_and_no_user_information() {
        assert!(RedirectUri::parse("https://app.example/cb?x=1").is_ok());
        assert!(RedirectUri::parse("https://app.example:8443/cb").is_ok());
        assert!(RedirectUri::parse("HTTPS://app.example").is_ok());
        assert!(RedirectUri::parse("https://[2001:db8::1]/cb").is_ok());
        assert_eq!(
            refused(RedirectUri::parse("https:app.example/cb")),
            "the redirect URI has no host (no //authority)"
        );
        assert_eq!(
            refused(RedirectUri::parse("https:///cb")),
            "the redirect URI has no host"
        );
        assert_eq!(
            refused(RedirectUri::parse("https://user:pw@app.example/cb")),
            "the redirect URI holds user information (user@)"
        );
        assert_eq!(
            refused(RedirectUri::parse("https://app.example:http/cb")),
            "the redirect URI's port is not a number"
        );
        assert!(RedirectUri::parse("https://[::1/cb").is_err());
    }

    #[test]
    fn an_http_redirect_uri_names_a_loopback_host() {
        for ok in [
            "http://127.0.0.1:8080/cb",
            "http://127.1.2.3/cb",
            "http://[::1]:9000/cb",
            "http://localhost:3000/callback",
            "http://LOCALHOST/cb",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "http://10.0.0.1/cb",
            "http://localhost.evil.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://[2001:db8::1]/cb",
        ] {
            assert!(
                refused(RedirectUri::parse(bad)).contains("must name a loopback host"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_private_use_redirect_uri_is_a_reversed_domain_with_a_path() {
        assert!(RedirectUri::parse("com.example.app:/oauth2redirect").is_ok());
        assert!(RedirectUri::parse("com.example.app://callback").is_ok());
        assert_eq!(
            refused(RedirectUri::parse("com.example.app:")),
            "a private-use redirect URI needs a path after its scheme"
        );
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "myapp:/cb",
            "ftp://a.example/cb",
        ] {
            assert!(
                refused(RedirectUri::parse(bad)).contains("scheme must be https"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_redirect_uri_is_kept_exactly_as_given() {
        let given = "https://App.Example:443/cb/?b=2&a=1";
        assert_eq!(RedirectUri::parse(given).unwrap().as_str(), given);
    }

    proptest::proptest! {
        #[test]
        fn an_accepted_redirect_uri_has_no_fragment_space_or_non_ascii(raw in "\\PC{0,60}") {
            if let Ok(u) = RedirectUri::parse(&raw) {
                proptest::prop_assert!(!u.as_str().contains('#'));
                proptest::prop_assert!(u.as_str().is_ascii());
                proptest::prop_assert!(!u.as_str().contains(' '));
                proptest::prop_assert_eq!(u.as_str(), raw.as_str());
            }
        }

        #[test]
        fn an_accepted_client_id_is_unreserved_and_bounded(raw in "\\PC{0,80}") {
            if let Ok(id) = ClientId::parse(&raw) {
                proptest::prop_assert!((1..=64).contains(&id.as_str().len()));
                proptest::prop_assert!(id.as_str().bytes().all(unreserved));
            }
        }
    }

    // ----- scope tokens and scopes: one test per rule ---------------------------

    #[test]
    fn a_scope_token_is_not_empty() {
        assert_eq!(refused(ScopeToken::parse("")), "a scope token is empty");
    }

    #[test]
    fn a_scope_token_is_at_most_128_characters() {
        assert!(ScopeToken::parse(&"s".repeat(128)).is_ok());
        assert_eq!(
            refused(ScopeToken::parse(&"s".repeat(129))),
            "a scope token is longer than 128 characters"
        );
    }

    #[test]
    fn a_scope_token_is_printable_ascii_without_space_quote_or_backslash() {
        for ok in ["openid", "read:orders", "https://api.example/x", "!#[]^~"] {
            assert!(ScopeToken::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a b", "a\"b", "a\\b", "a\tb", "\u{7f}", "é"] {
            assert!(ScopeToken::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_scope_is_tokens_separated_by_single_spaces() {
        let s = Scope::parse("openid profile api").unwrap();
        assert_eq!(s.to_string(), "openid profile api");
        for bad in ["", " openid", "openid ", "openid  profile"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_scope_holds_each_token_once_in_the_order_first_given() {
        let s = Scope::parse("b a b c a").unwrap();
        assert_eq!(s.to_string(), "b a c");
        assert!(s.contains("c") && !s.contains("d"));
    }

    #[test]
    fn a_scope_holds_at_most_64_tokens() {
        let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
        assert!(Scope::parse(&many[..64].join(" ")).is_ok());
        assert_eq!(
            refused(Scope::parse(&many.join(" "))),
            "the scope holds more than 64 tokens"
        );
    }

    #[test]
    fn scopes_compare_by_token() {
        let allowed = Scope::parse("a b c").unwrap();
        let asked = Scope::parse("c d a e").unwrap();
        assert_eq!(asked.outside(&allowed).collect::<Vec<_>>(), ["d", "e"]);
        assert_eq!(asked.without(|t| t == "d").to_string(), "c a e");
    }

    #[test]
    fn grant_types_are_the_three_of_rfc_6749() {
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()).unwrap(), g);
        }
        for bad in ["password", "implicit", "", "CLIENT_CREDENTIALS"] {
            assert!(GrantType::parse(bad).is_err(), "{bad}");
        }
    }
}
