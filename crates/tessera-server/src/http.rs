//! HTTP plumbing shared by the routes: the application state, extractors whose
//! rejection is our [`ApiError`], cookies, and the bearer/cookie authentication.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::crypto;
use crate::error::ApiError;
use crate::flows::{AuthMethod, ClientCredentials, Core};
use crate::proxy::TrustedProxies;
use crate::tokens::AccessClaims;

/// The header that echoes the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The CSRF cookie (readable by scripts).
pub const CSRF_COOKIE: &str = "tessera_csrf";
/// The refresh cookie (scoped to /auth).
pub const REFRESH_COOKIE: &str = "tessera_rt";

/// Shared by every request.
#[derive(Clone, Debug)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The application: the flows plus what only HTTP needs.
#[derive(Debug)]
pub struct App {
    /// The flows.
    pub core: Core,
    /// Cookie attributes.
    pub cookies: CookiePolicy,
    /// The OpenAPI document, JSON.
    pub openapi: String,
    /// SHA-256 of each token that may read the revocation feed.
    pub feed_tokens: Vec<Vec<u8>>,
    /// Turns true when the server stops: long-lived answers end.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// How cookies are written.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    /// Secure attribute and `__Host-` prefix.
    pub secure: bool,
}

/// A cookie's SameSite attribute.
#[derive(Debug, Clone, Copy)]
pub enum SameSite {
    /// Lax.
    Lax,
    /// Strict.
    Strict,
}

impl CookiePolicy {
    /// The access-token cookie's name.
    pub fn access_name(&self) -> &'static str {
        if self.secure {
            "__Host-tessera_at"
        } else {
            "tessera_at"
        }
    }

    /// The stateful session cookie's name.
    pub fn session_name(&self) -> &'static str {
        if self.secure {
            "__Host-tessera_sid"
        } else {
            "tessera_sid"
        }
    }

    /// The provider's single sign-on session cookie's name.
    pub fn op_session_name(&self) -> &'static str {
        if self.secure {
            "__Host-tessera_op"
        } else {
            "tessera_op"
        }
    }

    /// The cookie of an authorization request waiting for its login or consent.
    pub fn transaction_name(&self) -> &'static str {
        if self.secure {
            "__Host-tessera_authz"
        } else {
            "tessera_authz"
        }
    }

    /// A `Set-Cookie` value.
    pub fn set(
        &self,
        name: &str,
        value: &str,
        path: &str,
        http_only: bool,
        same_site: SameSite,
        max_age: i64,
    ) -> HeaderValue {
        let mut s = format!("{name}={value}; Path={path}; Max-Age={}", max_age.max(0));
        if http_only {
            s.push_str("; HttpOnly");
        }
        s.push_str(match same_site {
            SameSite::Lax => "; SameSite=Lax",
            SameSite::Strict => "; SameSite=Strict",
        });
        if self.secure {
            s.push_str("; Secure");
        }
        // Values are base64url or JWTs and names are fixed, so the header is valid.
        HeaderValue::from_str(&s)
            .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// The `Set-Cookie` values that clear every token cookie.
    pub fn clear_all(&self) -> Vec<HeaderValue> {
        vec![
            self.set(self.access_name(), "", "/", true, SameSite::Lax, 0),
            self.set(REFRESH_COOKIE, "", "/auth", true, SameSite::Strict, 0),
            self.set(CSRF_COOKIE, "", "/", false, SameSite::Lax, 0),
        ]
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Whether the request's `X-CSRF-Token` equals its `tessera_csrf` cookie and, when
/// given, the expected token; compared in constant time.
pub fn csrf_ok(headers: &HeaderMap, expected: Option<&str>) -> bool {
    let Some(sent) = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(cookie) = cookie(headers, CSRF_COOKIE) else {
        return false;
    };
    if sent.is_empty() || !crypto::ct_eq(sent.as_bytes(), cookie.as_bytes()) {
        return false;
    }
    expected.is_none_or(|e| crypto::ct_eq(sent.as_bytes(), e.as_bytes()))
}

/// How request bodies are read: at most `limit` bytes, all of them within `timeout`.
/// The router puts this in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    /// The largest body, in bytes.
    pub limit: usize,
    /// How long the whole body may take to arrive.
    pub timeout: Duration,
}

impl Default for BodyRules {
    fn default() -> Self {
        Self {
            limit: 64 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The deepest nesting of arrays and objects that a JSON body may have.
pub const MAX_JSON_DEPTH: usize = 32;

/// A JSON body whose rejection is our error shape: 415 for another content type,
/// 413 over the body limit, 408 when it is too slow to arrive, 400 for anything else.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(not_json());
        }
        parse_json(&read_body(req).await?).map(Self)
    }
}

/// An optional JSON body: an empty body, or JSON `null`, is `None`; anything else
/// must be JSON.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let json = json_content_type(req.headers());
        let bytes = read_body(req).await?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !json {
            return Err(not_json());
        }
        parse_json::<Option<T>>(&bytes).map(Self)
    }
}

/// An `application/x-www-form-urlencoded` body, as the OAuth endpoints take it
/// (RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1), whose rejection is our error
/// shape: another content type (JSON included) is 400 `invalid_request`, as is an
/// OAuth parameter given twice ([`OAUTH_PARAMETERS`]); a parameter without a value
/// is treated as omitted (RFC 6749 §3.1). Other parameters are ignored, as RFC 6749
/// §3.1 asks, however often they come.
#[derive(Debug)]
pub struct OAuthForm(pub FormParams);

/// The request parameters of the OAuth endpoints (RFC 6749, 7009, 7636, 7662, 8707,
/// OpenID Connect Core): each may be given once; the endpoints read no other.
pub const OAUTH_PARAMETERS: &[&str] = &[
    "grant_type",
    "scope",
    "client_id",
    "client_secret",
    "token",
    "token_type_hint",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "resource",
];

/// The parameters of a form body. Their values may be secrets: `Debug` prints the
/// names only.
#[derive(Default)]
pub struct FormParams(Vec<(String, zeroize::Zeroizing<String>)>);

impl std::fmt::Debug for FormParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl FormParams {
    /// Parses a form body, keeping the parameters named in `known`; `Err(name)`
    /// names one of them given twice.
    pub fn parse(body: &[u8], known: &[&str]) -> Result<Self, String> {
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<(String, zeroize::Zeroizing<String>)> = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            if !known.contains(&k.as_ref()) {
                continue;
            }
            // A parameter given twice, once empty, is still given twice.
            if !seen.insert(k.clone()) {
                return Err(k.into_owned());
            }
            if !v.is_empty() {
                out.push((k.into_owned(), zeroize::Zeroizing::new(v.into_owned())));
            }
        }
        Ok(Self(out))
    }

    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        if !form_content_type(req.headers()) {
            return Err(ApiError::invalid_request(
                "the body must be application/x-www-form-urlencoded (RFC 6749 section 3.2)",
            ));
        }
        let bytes = read_body(req).await?;
        FormParams::parse(&bytes, OAUTH_PARAMETERS)
            .map(Self)
            .map_err(|name| {
                ApiError::invalid_request(format!(
                    "{name} is given more than once (RFC 6749 section 3.2)"
                ))
            })
    }
}

/// The fields the hosted pages' forms post (and RP-initiated logout's POST).
pub const PAGE_FIELDS: &[&str] = &[
    "username",
    "password",
    "csrf_token",
    "decision",
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
];

/// A form posted by a hosted page, or why it could not be read: a page shows the
/// error itself (its rejection never answers JSON to a browser).
#[derive(Debug)]
pub struct PageForm(pub Result<FormParams, ApiError>);

impl<S: Send + Sync> FromRequest<S> for PageForm {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(browser_form(req, PAGE_FIELDS).await))
    }
}

/// An authorization request sent by POST (OpenID Connect Core §3.1.2.1), or why
/// it could not be read.
#[derive(Debug)]
pub struct AuthorizeForm(pub Result<FormParams, ApiError>);

impl<S: Send + Sync> FromRequest<S> for AuthorizeForm {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            browser_form(req, crate::flows::AUTHORIZE_PARAMETERS).await,
        ))
    }
}

async fn browser_form(req: Request, known: &[&str]) -> Result<FormParams, ApiError> {
    if !form_content_type(req.headers()) {
        return Err(ApiError::invalid_request(
            "the form must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = read_body(req).await?;
    FormParams::parse(&bytes, known)
        .map_err(|name| ApiError::invalid_request(format!("{name} is given more than once")))
}

/// Whether the Content-Type is `application/x-www-form-urlencoded` (with no charset
/// but UTF-8).
fn form_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
        && parts.all(|param| match param.split_once('=') {
            Some((name, v)) if name.trim().eq_ignore_ascii_case("charset") => {
                let v = v.trim().trim_matches('"');
                v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
            }
            _ => true,
        })
}

/// The client credentials of an OAuth request (RFC 6749 §2.3.1): HTTP Basic, whose
/// id and secret are each form-urlencoded before they are joined with `:`, or
/// `client_id` and `client_secret` in the body, or `client_id` alone (a public
/// client). `Ok(None)` when there are none. Two methods at once, or a body
/// `client_id` other than the Basic one, is `invalid_request`; Basic credentials
/// that do not decode are `invalid_client`. An `Authorization` header of another
/// scheme carries no client credentials and is ignored.
pub fn client_credentials(
    headers: &HeaderMap,
    form: &FormParams,
) -> Result<Option<ClientCredentials>, ApiError> {
    let basic = basic_credentials(headers)?;
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    Ok(match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => {
            return Err(ApiError::invalid_request(
                "the client authenticated twice (HTTP Basic and client_secret in the body); use one method",
            ));
        }
        (Some(b), Some(id), None) if id != b.client_id => {
            return Err(ApiError::invalid_request(
                "client_id in the body is not the client of the Authorization header",
            ));
        }
        (Some(b), _, None) => Some(b),
        (None, Some(id), Some(secret)) => Some(ClientCredentials {
            client_id: id.to_string(),
            secret: Some(zeroize::Zeroizing::new(secret.to_string())),
            method: AuthMethod::ClientSecretPost,
        }),
        (None, Some(id), None) => Some(ClientCredentials {
            client_id: id.to_string(),
            secret: None,
            method: AuthMethod::None,
        }),
        // A secret without an id authenticates no one.
        (None, None, _) => None,
    })
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<ClientCredentials>, ApiError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid_request(
            "the request has more than one Authorization header",
        ));
    }
    let Ok(value) = value.to_str() else {
        return Ok(None);
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let garbled = || ApiError::invalid_client("the Basic credentials are not base64 of id:secret");
    let encoded = rest.trim_matches(' ');
    let decoded = zeroize::Zeroizing::new(
        STANDARD
            .decode(encoded)
            .or_else(|_| STANDARD_NO_PAD.decode(encoded))
            .map_err(|_| garbled())?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| garbled())?;
    let (id, secret) = text.split_once(':').ok_or_else(garbled)?;
    let id = form_decode(id).ok_or_else(garbled)?;
    let secret = zeroize::Zeroizing::new(form_decode(secret).ok_or_else(garbled)?);
    Ok(Some(if secret.is_empty() {
        // `id:` with no secret: a public client naming itself.
        ClientCredentials {
            client_id: id,
            secret: None,
            method: AuthMethod::None,
        }
    } else {
        ClientCredentials {
            client_id: id,
            secret: Some(secret),
            method: AuthMethod::ClientSecretBasic,
        }
    }))
}

/// The application/x-www-form-urlencoded decoding of one value: `+` is a space,
/// `%XX` a byte; `None` when the bytes are not UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// A path parameter whose rejection (say, percent-encoded bytes that are not UTF-8)
/// is our error shape.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|_| ApiError::invalid_request("the path is not valid"))
    }
}

/// Whether the Content-Type is JSON (`application/json` or `application/*+json`),
/// with no charset but UTF-8 (RFC 8259: JSON exchanged between systems is UTF-8).
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    json && parts.all(|param| match param.split_once('=') {
        Some((name, v)) if name.trim().eq_ignore_ascii_case("charset") => {
            let v = v.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request",
        "the body must be JSON, with Content-Type: application/json (UTF-8)",
    )
}

/// The body, under the request's [`BodyRules`]: a declared length over the limit is
/// refused before a byte is read (so no `100 Continue` goes out), a longer body as
/// soon as the limit is passed, and a body that does not arrive in time with 408.
async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    let rules = req
        .extensions()
        .get::<BodyRules>()
        .copied()
        .unwrap_or_default();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > rules.limit as u64) {
        return Err(ApiError::too_large());
    }
    let read = axum::body::to_bytes(req.into_body(), rules.limit);
    match tokio::time::timeout(rules.timeout, read).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(ApiError::too_large());
                }
                source = err.source();
            }
            Err(ApiError::invalid_request("the body could not be read"))
        }
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request",
            "the body did not arrive in time",
        )),
    }
}

/// `bytes` as a `T`: first held to the JSON rules tokens are held to (syntax, no
/// member name twice, nesting at most [`MAX_JSON_DEPTH`]: a deep document costs a
/// scan, not a recursion), then read by serde, whose only complaint left is the shape.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    tessera_jose::check_json(bytes, MAX_JSON_DEPTH).map_err(|e| {
        ApiError::invalid_request(format!("the body is not valid JSON: {}", e.message()))
    })?;
    serde_json::from_slice(bytes).map_err(|e| {
        // serde's message names the member and the expected type; it may quote a
        // value of the client's own, so it is answered but never logged.
        ApiError::invalid_request(format!("the body does not have the expected shape: {e}"))
    })
}

/// The client's address (the peer, or what a trusted proxy says) and User-Agent.
#[derive(Debug, Clone)]
pub struct Client {
    /// The peer address (no port), or "unknown".
    pub ip: String,
    /// The User-Agent header.
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        let ip = match (peer, parts.extensions.get::<Arc<TrustedProxies>>()) {
            (Some(peer), Some(proxies)) => proxies.client_ip(peer.0.ip(), &parts.headers),
            (Some(peer), None) => peer.0.ip().to_canonical(),
            (None, _) => return Ok(Self::unknown(&parts.headers)),
        }
        .to_string();
        let user_agent = user_agent(&parts.headers);
        Ok(Self { ip, user_agent })
    }
}

impl Client {
    fn unknown(headers: &HeaderMap) -> Self {
        Self {
            ip: "unknown".into(),
            user_agent: user_agent(headers),
        }
    }
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect())
}

/// A request authenticated by the access token of an `/auth` session, as a bearer
/// token or in the access-token cookie (then a state-changing request must pass the
/// CSRF check). An OAuth client's token (one without `sid`, or with `client_id`) is
/// refused with 401 `invalid_token`: it is not for the `/auth` routes.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The verified claims, of an `/auth` session token ([`AccessClaims::session_id`]
    /// is `Some`).
    pub claims: Arc<AccessClaims>,
    /// Whether the cookie carried the token.
    pub via_cookie: bool,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let core = &state.core;
        if parts.headers.contains_key(header::AUTHORIZATION) {
            // The guard's reading of RFC 6750 §2.1: two headers are 400, a `Bearer`
            // credential that is not b64token syntax is invalid_token, and another
            // scheme is no bearer token at all.
            let token =
                tessera_guard::bearer_token(&parts.headers).map_err(|e| match e.kind() {
                    tessera_guard::RejectionKind::InvalidRequest => {
                        ApiError::malformed_authorization(e.description().to_owned())
                    }
                    _ => ApiError::invalid_token(e.description().to_owned()),
                })?;
            let Some(token) = token else {
                return Err(ApiError::missing_token());
            };
            let claims = session_token(core.verify_access(token).await)?;
            return Ok(Self {
                claims,
                via_cookie: false,
            });
        }
        let Some(token) = cookie(&parts.headers, state.cookies.access_name()) else {
            return Err(ApiError::missing_token());
        };
        let claims = session_token(core.verify_access(token).await)?;
        let sid = claims.session_id().unwrap_or_default();
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && !csrf_ok(&parts.headers, Some(&core.csrf_for(sid))) {
            return Err(ApiError::csrf());
        }
        Ok(Self {
            claims,
            via_cookie: true,
        })
    }
}

/// The claims of a verified token if it is an `/auth` session's; 401 otherwise.
fn session_token(
    verified: Result<Arc<AccessClaims>, crate::tokens::Refused>,
) -> Result<Arc<AccessClaims>, ApiError> {
    let claims = verified.map_err(|r| ApiError::invalid_token(r.0))?;
    if claims.session_id().is_none() {
        return Err(ApiError::invalid_token(
            "this route takes the access token of an /auth session, not an OAuth client's",
        ));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> HeaderMap {
        use base64::Engine as _;
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(user_pass);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {v}")).unwrap(),
        );
        h
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        let c = client_credentials(&basic("my%20app:s%3Ac+r%2Bt"), &FormParams::default())
            .unwrap()
            .unwrap();
        assert_eq!(c.client_id, "my app");
        assert_eq!(c.secret.as_deref().map(String::as_str), Some("s:c r+t"));
        assert_eq!(c.method, AuthMethod::ClientSecretBasic);
        let c = client_credentials(&basic("pub:"), &FormParams::default())
            .unwrap()
            .unwrap();
        assert_eq!((c.secret.is_none(), c.method), (true, AuthMethod::None));
        for bad in ["no-colon", "a:%ff"] {
            let e = client_credentials(&basic(bad), &FormParams::default()).unwrap_err();
            assert_eq!(
                (e.status().as_u16(), e.code()),
                (401, "invalid_client"),
                "{bad}"
            );
        }
    }

    #[test]
    fn one_client_authentication_method_at_a_time() {
        let form = |body: &str| FormParams::parse(body.as_bytes(), OAUTH_PARAMETERS).unwrap();
        let e = client_credentials(&basic("a:s"), &form("client_secret=s")).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        let e = client_credentials(&basic("a:s"), &form("client_id=b")).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        let c = client_credentials(&basic("a:s"), &form("client_id=a"))
            .unwrap()
            .unwrap();
        assert_eq!(c.method, AuthMethod::ClientSecretBasic);
        let c = client_credentials(&HeaderMap::new(), &form("client_id=a&client_secret=s"))
            .unwrap()
            .unwrap();
        assert_eq!(c.method, AuthMethod::ClientSecretPost);
        assert!(
            client_credentials(&HeaderMap::new(), &form("client_secret=s"))
                .unwrap()
                .is_none()
        );
        // Another scheme carries no client credentials.
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(client_credentials(&bearer, &form("")).unwrap().is_none());
    }

    #[test]
    fn form_parameters_are_given_once_and_empty_ones_are_omitted() {
        let known = &["a", "b", "c"];
        let f = FormParams::parse(b"a=1&b=&c=x+y%21&d=1&d=2", known).unwrap();
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("b"), None);
        assert_eq!(f.get("c"), Some("x y!"));
        assert_eq!(
            f.get("d"),
            None,
            "unknown parameters are ignored, however often"
        );
        assert_eq!(FormParams::parse(b"a=1&a=2", known).unwrap_err(), "a");
        assert_eq!(FormParams::parse(b"a=&a=2", known).unwrap_err(), "a");
        assert!(!format!("{f:?}").contains("x y"), "values never print");
    }

    #[test]
    fn json_content_types() {
        let ct = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            json_content_type(&h)
        };
        for yes in [
            "application/json",
            "application/json; charset=utf-8",
            "application/json ; charset=UTF-8",
            "APPLICATION/JSON;charset=\"utf8\"",
            "application/merge-patch+json",
        ] {
            assert!(ct(yes), "{yes}");
        }
        for no in [
            "text/plain",
            "application/jsonx",
            "application/json; charset=latin1",
            "text/json+xml",
            "",
        ] {
            assert!(!ct(no), "{no}");
        }
        assert!(!json_content_type(&HeaderMap::new()));
    }
}
