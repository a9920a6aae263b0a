//! JSON Web Tokens (RFC 7519): typed registered claims and a validation policy.
//!
//! [`decode`] verifies the signature, then validates the registered claims against a
//! [`Validation`], then deserializes the claims into the caller's type. A claim of
//! the wrong JSON type (an `exp` that is a string) is refused, never skipped.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::alg::Algorithm;
use crate::error::{Error, ErrorKind, Result};
use crate::json::{self, CowStr};
use crate::jwk::{Jwk, KeySource};
use crate::jws::{self, Header, Policy, Unverified};

/// Seconds since the Unix epoch (RFC 7519 §2). Fractional values are floored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NumericDate(pub i64);

impl NumericDate {
    /// The current time.
    pub fn now() -> Self {
        Self(unix_now())
    }
}

impl Serialize for NumericDate {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a NumericDate (a JSON number of seconds)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<NumericDate, E> {
                i64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("NumericDate out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<NumericDate, E> {
                if v.is_finite() && v.abs() < 9.0e15 {
                    Ok(NumericDate(v.floor() as i64))
                } else {
                    Err(E::custom("NumericDate out of range"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The `aud` claim: one string, or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// `"aud": "x"`.
    One(String),
    /// `"aud": ["x", "y"]`.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `name` is among the audiences.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Self::One(a) => a == name,
            Self::Many(v) => v.iter().any(|a| a == name),
        }
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::One(a) => s.serialize_str(a),
            Self::Many(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match AudRef::deserialize(d)? {
            AudRef::One(a) => Audience::One(a.into_owned()),
            AudRef::Many(v) => Audience::Many(v.into_iter().map(Cow::into_owned).collect()),
        })
    }
}

/// Registered claims plus any custom claims `T`.
///
/// ```
/// use tessera_jose::jwt::Claims;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Extra { roles: Vec<String> }
/// let c: Claims<Extra> = serde_json::from_str(r#"{"sub":"ada","exp":2,"roles":["admin"]}"#).unwrap();
/// assert_eq!(c.sub.as_deref(), Some("ada"));
/// assert_eq!(c.custom.roles, ["admin"]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims<T = serde_json::Map<String, serde_json::Value>> {
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Expiration time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<NumericDate>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<NumericDate>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<NumericDate>,
    /// JWT id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub custom: T,
}

impl<T: Default> Default for Claims<T> {
    fn default() -> Self {
        Self {
            iss: None,
            sub: None,
            aud: None,
            exp: None,
            nbf: None,
            iat: None,
            jti: None,
            custom: T::default(),
        }
    }
}

/// What a token must satisfy beyond its signature.
///
/// Defaults, each with its reason:
/// - algorithms: those of the key's own family only (RFC 8725 §3.1: the key decides);
/// - `exp` is required: a token without an end is a credential forever;
/// - leeway 0 s: clocks are assumed synchronized; widen it explicitly;
/// - `nbf` and `iat` are checked when present (`iat` may not lie in the future);
/// - `iss`, `aud`, `sub` and `typ` are checked only when configured;
/// - tokens over 64 KiB and JSON nested over 32 deep are refused before parsing.
#[derive(Debug, Clone)]
pub struct Validation {
    policy: Policy,
    leeway: u64,
    require_exp: bool,
    required: Vec<String>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    subject: Option<String>,
    typ: Option<String>,
    now: Option<i64>,
}

impl Default for Validation {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            leeway: 0,
            require_exp: true,
            required: Vec::new(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            subject: None,
            typ: None,
            now: None,
        }
    }
}

impl Validation {
    /// The safe defaults described on [`Validation`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept only these algorithms (and still only those of the key's family).
    pub fn algorithms(mut self, algs: &[Algorithm]) -> Self {
        self.policy = self.policy.algorithms(algs);
        self
    }

    /// Accept one of these issuers; may be called repeatedly to add more.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuers.push(iss.into());
        self
    }

    /// Accept tokens whose `aud` names one of these; may be called repeatedly.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Require this exact `sub`.
    pub fn subject(mut self, sub: impl Into<String>) -> Self {
        self.subject = Some(sub.into());
        self
    }

    /// Require this `typ` header (compared as RFC 7515 §4.1.9 says: case-insensitively,
    /// with an optional `application/` prefix), e.g. `at+jwt` for RFC 9068 tokens.
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Require a claim to be present.
    pub fn require(mut self, claim: impl Into<String>) -> Self {
        self.required.push(claim.into());
        self
    }

    /// Accept tokens without `exp` (an `exp` that is present is still checked).
    pub fn allow_missing_exp(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// Seconds of tolerated clock skew for `exp`, `nbf` and `iat`.
    pub fn leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// The largest token accepted, in bytes.
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.policy = self.policy.max_size(bytes);
        self
    }

    /// The deepest JSON nesting accepted; never more than 128 levels (serde_json's own
    /// limit), whatever is asked.
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.policy = self.policy.max_depth(depth);
        self
    }

    /// Validate as if the time were `now` (seconds since the epoch), not the clock's.
    pub fn at(mut self, now: i64) -> Self {
        self.now = Some(now);
        self
    }

    /// The JWS policy (algorithms and limits) inside this validation.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Checks the registered claims in `payload` (a JSON object) at time `now`.
    pub fn validate_payload(&self, header: &Header, payload: &[u8], now: i64) -> Result<()> {
        json::check(payload, self.policy.max_depth)?;
        claims_object(payload)?;
        let reg: Registered<'_> = serde_json::from_slice(payload)
            .map_err(|e| Error::malformed(format!("invalid claims: {}", json::clean(&e))))?;
        self.validate(header, &reg, payload, now)
    }

    fn validate(
        &self,
        header: &Header,
        reg: &Registered<'_>,
        payload: &[u8],
        now: i64,
    ) -> Result<()> {
        let leeway = i64::try_from(self.leeway).unwrap_or(i64::MAX);
        if let Some(want) = &self.typ {
            let ok = header.typ.as_deref().is_some_and(|t| typ_eq(t, want));
            if !ok {
                return Err(Error::new(
                    ErrorKind::InvalidType,
                    format!("the token's typ is not {want}"),
                ));
            }
        }
        match reg.exp {
            Some(exp) if now.saturating_sub(leeway) >= exp.0 => {
                return Err(Error::new(ErrorKind::Expired, "the token has expired"));
            }
            Some(_) => {}
            None if self.require_exp => {
                return Err(Error::new(
                    ErrorKind::MissingClaim,
                    "the token has no exp claim",
                ));
            }
            None => {}
        }
        if let Some(nbf) = reg.nbf
            && now.saturating_add(leeway) < nbf.0
        {
            return Err(Error::new(
                ErrorKind::NotYetValid,
                "the token is not valid yet (nbf)",
            ));
        }
        if let Some(iat) = reg.iat
            && now.saturating_add(leeway) < iat.0
        {
            return Err(Error::new(
                ErrorKind::IssuedInFuture,
                "the token was issued in the future (iat)",
            ));
        }
        if !self.issuers.is_empty() {
            let ok = reg
                .iss
                .as_deref()
                .is_some_and(|i| self.issuers.iter().any(|w| w == i));
            if !ok {
                return Err(Error::new(
                    ErrorKind::InvalidIssuer,
                    "the token's issuer is not accepted",
                ));
            }
        }
        if !self.audiences.is_empty() {
            let ok = match &reg.aud {
                Some(AudRef::One(a)) => self.audiences.iter().any(|w| w == a),
                Some(AudRef::Many(v)) => v.iter().any(|a| self.audiences.iter().any(|w| w == a)),
                None => false,
            };
            if !ok {
                return Err(Error::new(
                    ErrorKind::InvalidAudience,
                    "the token is not meant for this audience",
                ));
            }
        }
        if let Some(want) = &self.subject
            && reg.sub.as_deref() != Some(want.as_str())
        {
            return Err(Error::new(
                ErrorKind::InvalidSubject,
                "the token's subject is not accepted",
            ));
        }
        for claim in &self.required {
            let present = match claim.as_str() {
                "exp" => reg.exp.is_some(),
                "nbf" => reg.nbf.is_some(),
                "iat" => reg.iat.is_some(),
                "iss" => reg.iss.is_some(),
                "sub" => reg.sub.is_some(),
                "aud" => reg.aud.is_some(),
                "jti" => reg.jti.is_some(),
                other => has_member(payload, other)?,
            };
            if !present {
                return Err(Error::new(
                    ErrorKind::MissingClaim,
                    format!(
                        "the token lacks the required claim {}",
                        crate::alg::short(claim)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn now(&self) -> i64 {
        self.now.unwrap_or_else(unix_now)
    }
}

/// A verified and validated token.
#[derive(Debug, Clone)]
pub struct TokenData<T> {
    /// The protected header.
    pub header: Header,
    /// The claims, deserialized.
    pub claims: T,
}

/// Serializes `claims` and signs them under `header` with `key`.
pub fn encode<T: Serialize + ?Sized>(header: &Header, claims: &T, key: &Jwk) -> Result<String> {
    let payload = serde_json::to_vec(claims).map_err(|e| Error::malformed(json::clean(&e)))?;
    jws::sign(header, &payload, key)
}

/// Verifies `token` with the key `keys` selects, validates its claims, and
/// deserializes them into `T`.
pub fn decode<T: DeserializeOwned>(
    token: &str,
    keys: &impl KeySource,
    validation: &Validation,
) -> Result<TokenData<T>> {
    decode_at(token, keys, validation, validation.now())
}

/// [`decode`] at an explicit time, for callers with their own clock.
pub fn decode_at<T: DeserializeOwned>(
    token: &str,
    keys: &impl KeySource,
    validation: &Validation,
    now: i64,
) -> Result<TokenData<T>> {
    let unverified = Unverified::parse(token, &validation.policy)?;
    let payload = unverified.verify_payload(keys, &validation.policy)?;
    let text = json::utf8(&payload)?;
    let reg = Registered::parse(text, unverified.max_depth())?;
    let header = unverified.into_header();
    validation.validate(&header, &reg, &payload, now)?;
    // From the text checked above: serde_json need not check each string's UTF-8 again.
    let claims = serde_json::from_str(text)
        .map_err(|e| Error::malformed(format!("invalid claims: {}", json::clean(&e))))?;
    Ok(TokenData { header, claims })
}

/// Whether `payload` is a claims set that [`decode`] would accept under `validation`'s
/// limits, time aside: UTF-8, strict JSON (no member name twice, nesting within the
/// limit), an object, and the registered claims of their JSON types. For an issuer
/// that takes claims from elsewhere (a command line, a file) and would rather refuse
/// them at signing time than mint a token that no verifier accepts.
pub fn check_claims(payload: &[u8], validation: &Validation) -> Result<()> {
    let text = json::utf8(payload)?;
    Registered::parse(text, validation.policy.max_depth).map(|_| ())
}

/// Signs `claims` with `sign_key`, then encrypts the JWS to `enc_key`
/// (a nested JWT, RFC 7519 §5.2: `cty: "JWT"` on the outer JWE).
pub fn encode_nested<T: Serialize + ?Sized>(
    header: &Header,
    claims: &T,
    sign_key: &Jwk,
    enc_key: &Jwk,
    opts: &crate::jwe::EncryptOptions,
) -> Result<String> {
    let inner = encode(header, claims, sign_key)?;
    let opts = opts.clone().with_cty("JWT");
    crate::jwe::encrypt(inner.as_bytes(), enc_key, &opts)
}

/// Decrypts a nested JWT, then verifies and validates the inner JWS as [`decode`] does.
/// The outer JWE must say `cty: "JWT"`.
pub fn decode_nested<T: DeserializeOwned>(
    token: &str,
    dec_keys: &impl KeySource,
    decrypter: &crate::jwe::Decrypter,
    verify_keys: &impl KeySource,
    validation: &Validation,
) -> Result<TokenData<T>> {
    let outer = crate::jwe::decrypt(token, dec_keys, decrypter)?;
    if !outer
        .header()
        .cty
        .as_deref()
        .is_some_and(|c| typ_eq(c, "JWT"))
    {
        return Err(Error::malformed(
            "the JWE does not contain a JWT (cty is not JWT)",
        ));
    }
    let inner = std::str::from_utf8(outer.plaintext())
        .map_err(|_| Error::malformed("the nested JWT is not UTF-8"))?;
    decode(inner, verify_keys, validation)
}

/// The registered claims, borrowed, with their JSON types enforced.
///
/// A member that is present must have its type: `"exp": null` is refused, not read as
/// an absent `exp` (which `allow_missing_exp` would then accept).
#[derive(Deserialize)]
struct Registered<'a> {
    #[serde(borrow, default, deserialize_with = "present_str")]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present_str")]
    sub: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    aud: Option<AudRef<'a>>,
    #[serde(default, deserialize_with = "present")]
    exp: Option<NumericDate>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<NumericDate>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<NumericDate>,
    #[serde(borrow, default, deserialize_with = "present_str")]
    jti: Option<Cow<'a, str>>,
}

impl<'a> Registered<'a> {
    /// Exactly `json::check` then `serde_json::from_slice::<Registered>`, the same input
    /// refused with the same kind, but without a second pass over the whole payload:
    /// the strict check leaves serde_json nothing to refuse outside the registered
    /// members, so only their values are parsed.
    fn parse(text: &'a str, max_depth: usize) -> Result<Self> {
        let payload = text.as_bytes();
        const NAMES: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];
        let bad =
            |e: serde_json::Error| Error::malformed(format!("invalid claims: {}", json::clean(&e)));
        // serde_json stops at 128 levels of nesting: past that, let it say so as before.
        if max_depth >= 120 {
            json::check(payload, max_depth)?;
            claims_object(payload)?;
            return serde_json::from_slice(payload).map_err(bad);
        }
        let Some(m) = json::check_members(text, max_depth, &NAMES)? else {
            return Err(not_an_object());
        };
        fn member<'a, T: Deserialize<'a>>(
            raw: Option<&'a str>,
        ) -> std::result::Result<Option<T>, serde_json::Error> {
            raw.map(serde_json::from_str).transpose()
        }
        // The common shapes are read directly, to the value serde_json would give:
        // a string without escapes borrows its text; an integer of at most 18 digits
        // is an i64.
        fn string<'a>(
            raw: Option<&'a str>,
        ) -> std::result::Result<Option<Cow<'a, str>>, serde_json::Error> {
            match raw.and_then(json::plain_str) {
                Some(s) => Ok(Some(Cow::Borrowed(s))),
                None => Ok(member::<CowStr<'a>>(raw)?.map(|c| c.0)),
            }
        }
        fn date(raw: Option<&str>) -> std::result::Result<Option<NumericDate>, serde_json::Error> {
            if let Some(t) = raw.map(str::as_bytes) {
                let digits = t.strip_prefix(b"-").unwrap_or(t);
                if !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit)
                {
                    // At most 18 digits: no overflow.
                    let n = digits
                        .iter()
                        .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
                    return Ok(Some(NumericDate(if t[0] == b'-' { -n } else { n })));
                }
            }
            member(raw)
        }
        let aud = match m[2].and_then(json::plain_str) {
            Some(a) => Some(AudRef::One(Cow::Borrowed(a))),
            None => member(m[2]).map_err(bad)?,
        };
        Ok(Registered {
            iss: string(m[0]).map_err(bad)?,
            sub: string(m[1]).map_err(bad)?,
            aud,
            exp: date(m[3]).map_err(bad)?,
            nbf: date(m[4]).map_err(bad)?,
            iat: date(m[5]).map_err(bad)?,
            jti: string(m[6]).map_err(bad)?,
        })
    }
}

/// RFC 7519 §7.2: the claims set is a JSON object. Checked on text that has passed
/// `json::check`, so its first byte past whitespace says what it is. (serde would read
/// an array into the registered claims by position.)
fn claims_object(payload: &[u8]) -> Result<()> {
    match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(not_an_object()),
    }
}

fn not_an_object() -> Error {
    Error::malformed("the claims are not a JSON object")
}

/// A present member: `null` is an error of type, like any other wrong type.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// [`present`] for strings, still borrowed from the payload where possible.
fn present_str<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Cow<'a, str>>, D::Error> {
    CowStr::deserialize(d).map(|s| Some(s.0))
}

enum AudRef<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for AudRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AudRef<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(AudRef::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(AudRef::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(CowStr(s)) = seq.next_element()? {
                    v.push(s);
                }
                Ok(AudRef::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn has_member(payload: &[u8], name: &str) -> Result<bool> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(payload)
        .map_err(|e| Error::malformed(format!("invalid claims: {}", json::clean(&e))))?;
    Ok(map.contains_key(name))
}

fn typ_eq(have: &str, want: &str) -> bool {
    fn strip(s: &str) -> &str {
        let lower_prefix = "application/";
        if s.len() > lower_prefix.len()
            && s[..lower_prefix.len()].eq_ignore_ascii_case(lower_prefix)
        {
            &s[lower_prefix.len()..]
        } else {
            s
        }
    }
    strip(have).eq_ignore_ascii_case(strip(want))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> Jwk {
        Jwk::from_secret([1u8; 32]).unwrap()
    }

    fn token(claims: serde_json::Value) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &key()).unwrap()
    }

    fn check(claims: serde_json::Value, v: &Validation) -> Result<Claims> {
        decode::<Claims>(&token(claims), &key(), v).map(|t| t.claims)
    }

    #[test]
    fn exp_is_required_by_default_and_checked() {
        let v = Validation::new().at(1000);
        assert_eq!(
            check(json!({}), &v).unwrap_err().kind(),
            ErrorKind::MissingClaim
        );
        assert_eq!(
            check(json!({"exp": 1000}), &v).unwrap_err().kind(),
            ErrorKind::Expired
        );
        assert!(check(json!({"exp": 1001}), &v).is_ok());
        assert!(check(json!({"exp": 990}), &v.clone().leeway(20)).is_ok());
        assert!(check(json!({}), &v.clone().allow_missing_exp()).is_ok());
    }

    #[test]
    fn wrong_json_types_are_refused_not_skipped() {
        let v = Validation::new().at(0).allow_missing_exp();
        for bad in [
            json!({"exp": "2000"}),
            json!({"nbf": true}),
            json!({"sub": 5}),
            json!({"iss": ["a"]}),
            json!({"aud": [1]}),
            json!({"aud": 1}),
            json!({"jti": {}}),
            // RFC 7519 §7.2: the claims set is an object; serde would read an array
            // into the registered claims by position (["iss", "sub", "aud", exp]).
            json!(["https://issuer", "alice", "api", 4_102_444_800_i64]),
            json!([]),
            json!("claims"),
            json!(5),
            json!(null),
        ] {
            assert_eq!(
                check(bad.clone(), &v).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad}"
            );
            // Also through the other entry points: a deep policy, and a payload
            // checked on its own.
            // Decoded as a Value, as `tessera token verify` does, so that nothing
            // after the claims check refuses it; and under a deep policy.
            for v in [
                &v,
                &Validation::new().at(0).allow_missing_exp().max_depth(126),
            ] {
                assert_eq!(
                    decode::<serde_json::Value>(&token(bad.clone()), &key(), v)
                        .unwrap_err()
                        .kind(),
                    ErrorKind::Malformed,
                    "{bad}"
                );
            }
            let header = Header::new(Algorithm::HS256);
            let payload = serde_json::to_vec(&bad).unwrap();
            assert_eq!(
                v.validate_payload(&header, &payload, 0).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn claims_are_checked_before_signing() {
        let v = Validation::new();
        assert!(check_claims(br#"{"sub":"ada","exp":"later"}"#, &v).is_err());
        assert!(check_claims(br#"{"sub":"ada","sub":"eve"}"#, &v).is_err());
        assert!(check_claims(br#"["ada"]"#, &v).is_err());
        let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(40), "]".repeat(40));
        assert!(check_claims(deep.as_bytes(), &v).is_err());
        assert!(check_claims(deep.as_bytes(), &v.clone().max_depth(64)).is_ok());
        // Time is not checked: an expired token may be minted on purpose.
        assert!(check_claims(br#"{"sub":"ada","exp":1}"#, &Validation::new()).is_ok());
    }

    #[test]
    fn nbf_iat_iss_aud_sub_typ() {
        let v = Validation::new().at(100).allow_missing_exp();
        assert_eq!(
            check(json!({"nbf": 101}), &v).unwrap_err().kind(),
            ErrorKind::NotYetValid
        );
        assert_eq!(
            check(json!({"iat": 101}), &v).unwrap_err().kind(),
            ErrorKind::IssuedInFuture
        );
        let v = v.issuer("a").issuer("b").audience("x").subject("s");
        assert!(check(json!({"iss": "b", "aud": ["y", "x"], "sub": "s"}), &v).is_ok());
        assert_eq!(
            check(json!({"iss": "c", "aud": "x", "sub": "s"}), &v)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidIssuer
        );
        assert_eq!(
            check(json!({"iss": "a", "aud": ["y"], "sub": "s"}), &v)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidAudience
        );
        assert_eq!(
            check(json!({"iss": "a", "sub": "s"}), &v)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidAudience
        );
        assert_eq!(
            check(json!({"iss": "a", "aud": "x", "sub": "t"}), &v)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidSubject
        );
        let typed = Validation::new().allow_missing_exp().typ("at+jwt");
        let t = encode(
            &Header::new(Algorithm::HS256).with_typ("application/AT+JWT"),
            &json!({}),
            &key(),
        )
        .unwrap();
        assert!(decode::<Claims>(&t, &key(), &typed).is_ok());
        let t = encode(
            &Header::new(Algorithm::HS256).with_typ("JWT"),
            &json!({}),
            &key(),
        )
        .unwrap();
        assert_eq!(
            decode::<Claims>(&t, &key(), &typed).unwrap_err().kind(),
            ErrorKind::InvalidType
        );
    }

    #[test]
    fn required_custom_claims() {
        let v = Validation::new()
            .allow_missing_exp()
            .require("roles")
            .require("jti");
        assert!(check(json!({"roles": [], "jti": "1"}), &v).is_ok());
        assert_eq!(
            check(json!({"jti": "1"}), &v).unwrap_err().kind(),
            ErrorKind::MissingClaim
        );
    }

    #[test]
    fn claims_must_be_an_object() {
        let v = Validation::new().allow_missing_exp();
        let t = jws::sign(&Header::new(Algorithm::HS256), b"[1]", &key()).unwrap();
        assert_eq!(
            decode::<Claims>(&t, &key(), &v).unwrap_err().kind(),
            ErrorKind::Malformed
        );
    }

    #[test]
    fn nested_jwt_round_trips() {
        use crate::jwe::{Decrypter, EncryptOptions};
        use crate::{ContentEncryption, KeyManagement, jwk::Curve};
        let sign = Jwk::generate_curve(Curve::Ed25519).unwrap();
        let enc = Jwk::generate_curve(Curve::X25519).unwrap();
        let opts = EncryptOptions::new(KeyManagement::EcdhEsA256KW, ContentEncryption::A256Gcm);
        let t = encode_nested(
            &Header::new(Algorithm::EdDSA),
            &json!({"sub": "ada"}),
            &sign,
            &enc,
            &opts,
        )
        .unwrap();
        assert_eq!(t.split('.').count(), 5);
        let v = Validation::new().allow_missing_exp();
        let d: TokenData<Claims> = decode_nested(&t, &enc, &Decrypter::new(), &sign, &v).unwrap();
        assert_eq!(d.claims.sub.as_deref(), Some("ada"));
        // A plain JWE without cty: JWT is refused as a nested token.
        let plain = crate::jwe::encrypt(b"{}", &enc, &opts).unwrap();
        assert!(decode_nested::<Claims>(&plain, &enc, &Decrypter::new(), &sign, &v).is_err());
    }

    #[test]
    fn fractional_numeric_dates_are_floored() {
        let c: Claims = serde_json::from_str(r#"{"exp": 10.9}"#).unwrap();
        assert_eq!(c.exp, Some(NumericDate(10)));
    }
}
