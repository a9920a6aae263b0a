//! The hosted pages: login, consent, the `form_post` answer, and messages (errors,
//! "signed out"). Plain HTML that works without JavaScript, rendered by askama from
//! `templates/` (compiled in; every value HTML-escaped), served with security
//! headers: a Content-Security-Policy that allows nothing but the page's own inline
//! style (by hash), its own script where there is one (by hash), and forms to this
//! server and the client's redirect origin; no framing; no caching; no referrer.

use std::sync::LazyLock;

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::crypto;

/// The pages' one stylesheet, inline (allowed by its hash).
const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
main{max-width:24rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:.5rem;box-shadow:0 1px 4px #0002}\
h1{font-size:1.4rem;margin-top:0}label{display:block;margin:1rem 0 .25rem;font-weight:600}\
input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #99a;border-radius:.25rem}\
button{margin-top:1.25rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:.25rem;background:#2450c8;color:#fff;cursor:pointer}\
button.secondary{background:#e4e6ea;color:#1d2330;margin-left:.5rem}\
.error{color:#a01818;background:#fdeaea;padding:.5rem;border-radius:.25rem}.who{color:#556}\
ul.scopes{padding-left:1.2rem}code{background:#eef;padding:0 .2rem}";

/// The `form_post` page's script: it submits the form at once; without JavaScript
/// the visible Continue button does.
const SUBMIT_SCRIPT: &str = "document.forms[0].submit();";

static STYLE_HASH: LazyLock<String> = LazyLock::new(|| crypto::csp_hash(STYLE));
static SCRIPT_HASH: LazyLock<String> = LazyLock::new(|| crypto::csp_hash(SUBMIT_SCRIPT));

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    style: &'static str,
    /// The client the user signs in for.
    pub client_id: &'a str,
    /// The username to prefill (`login_hint`, or what was typed).
    pub username: &'a str,
    /// What went wrong, shown on the page.
    pub error: Option<&'a str>,
    /// The CSRF token of the authorization request.
    pub csrf_token: &'a str,
    /// Where the form posts.
    pub action: &'a str,
}

impl<'a> LoginPage<'a> {
    /// The login page for `client_id`.
    pub fn new(
        client_id: &'a str,
        username: &'a str,
        error: Option<&'a str>,
        csrf_token: &'a str,
        action: &'a str,
    ) -> Self {
        Self {
            style: STYLE,
            client_id,
            username,
            error,
            csrf_token,
            action,
        }
    }
}

/// One scope as the consent page names it.
#[derive(Debug, Clone)]
pub struct ScopeLine {
    /// The scope token.
    pub token: String,
    /// What it lets the client do.
    pub description: &'static str,
}

impl ScopeLine {
    /// The line of a scope token.
    pub fn of(token: &str) -> Self {
        let description = match token {
            "openid" => "confirm who you are (your user id)",
            "profile" => "see your username",
            "offline_access" => "keep access while you are away (a refresh token)",
            "email" => "see your email address",
            _ => "use this part of the API for you",
        };
        Self {
            token: token.to_string(),
            description,
        }
    }
}

/// The consent page.
#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    style: &'static str,
    /// The client asking.
    pub client_id: &'a str,
    /// Each scope asked for.
    pub scopes: Vec<ScopeLine>,
    /// Who is signed in.
    pub username: &'a str,
    /// The CSRF token of the authorization request.
    pub csrf_token: &'a str,
    /// Where the form posts.
    pub action: &'a str,
}

impl<'a> ConsentPage<'a> {
    /// The consent page.
    pub fn new(
        client_id: &'a str,
        scopes: &[String],
        username: &'a str,
        csrf_token: &'a str,
        action: &'a str,
    ) -> Self {
        Self {
            style: STYLE,
            client_id,
            scopes: scopes.iter().map(|s| ScopeLine::of(s)).collect(),
            username,
            csrf_token,
            action,
        }
    }
}

/// A message: an error, or "signed out".
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    style: &'static str,
    /// The heading.
    pub title: &'a str,
    /// The text.
    pub message: &'a str,
    /// Whether it is an error.
    pub error: bool,
}

impl<'a> MessagePage<'a> {
    /// An error page.
    pub fn error(message: &'a str) -> Self {
        Self {
            style: STYLE,
            title: "Something went wrong",
            message,
            error: true,
        }
    }

    /// A page that tells something.
    pub fn info(title: &'a str, message: &'a str) -> Self {
        Self {
            style: STYLE,
            title,
            message,
            error: false,
        }
    }
}

/// The confirmation of a logout that no `id_token_hint` vouches for.
#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    style: &'static str,
    /// Who is signed in.
    pub username: &'a str,
    /// The CSRF token of the provider session.
    pub csrf_token: &'a str,
    /// Where the form posts.
    pub action: &'a str,
    /// The request's parameters, posted again (each checked again on the POST).
    pub params: &'a [(&'static str, String)],
}

impl<'a> LogoutPage<'a> {
    /// The confirmation page.
    pub fn new(
        username: &'a str,
        csrf_token: &'a str,
        action: &'a str,
        params: &'a [(&'static str, String)],
    ) -> Self {
        Self {
            style: STYLE,
            username,
            csrf_token,
            action,
            params,
        }
    }
}

/// The `form_post` answer (OAuth 2.0 Form Post Response Mode).
#[derive(Template)]
#[template(path = "form_post.html")]
pub struct FormPostPage<'a> {
    style: &'static str,
    script: &'static str,
    /// The client's redirect URI.
    pub action: &'a str,
    /// The response parameters.
    pub params: &'a [(&'static str, String)],
}

impl<'a> FormPostPage<'a> {
    /// The page posting `params` to `action`.
    pub fn new(action: &'a str, params: &'a [(&'static str, String)]) -> Self {
        Self {
            style: STYLE,
            script: SUBMIT_SCRIPT,
            action,
            params,
        }
    }
}

/// A rendered page with its status and security headers. `form_target`: the
/// redirect URI the page's form (or the redirect after it) may go to, whose origin
/// joins `form-action` (browsers apply it to the redirects that follow a form
/// submission); `script`: the page runs the `form_post` script.
pub fn respond(
    status: StatusCode,
    page: &impl Template,
    form_target: Option<&str>,
    script: bool,
    extra: HeaderMap,
) -> Response {
    let html = match page.render() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "a page did not render");
            return (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response();
        }
    };
    let mut form_action = String::from("'self'");
    if let Some(origin) = form_target.and_then(csp_origin) {
        form_action.push(' ');
        form_action.push_str(&origin);
    }
    let mut csp = format!(
        "default-src 'none'; style-src {}; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        *STYLE_HASH
    );
    if script {
        csp.push_str("; script-src ");
        csp.push_str(&SCRIPT_HASH);
    }
    let mut res = (status, extra, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// The CSP source of a redirect URI's origin: `scheme://host[:port]` for http(s),
/// `scheme:` for a private-use scheme; `None` when it holds a character a CSP source
/// may not (registered URIs may hold `;` or `,` in their authority).
fn csp_origin(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let ok_scheme = scheme
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !ok_scheme || scheme.is_empty() {
        return None;
    }
    let lower = scheme.to_ascii_lowercase();
    if lower != "http" && lower != "https" {
        return Some(format!("{lower}:"));
    }
    let authority = rest.strip_prefix("//")?.split(['/', '?']).next()?;
    let ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then(|| format!("{lower}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_of_redirect_uris() {
        assert_eq!(
            csp_origin("https://app.example:8443/cb?x=1").as_deref(),
            Some("https://app.example:8443")
        );
        assert_eq!(
            csp_origin("http://127.0.0.1:9000/cb").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            csp_origin("com.example.app:/cb").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(csp_origin("https://a;b.example/cb"), None);
        assert_eq!(csp_origin("https://a'x/cb"), None);
    }

    #[test]
    fn pages_escape_what_they_show() {
        let html = LoginPage::new("<app>", "\"x\" onfocus=", Some("<b>"), "t", "/a")
            .render()
            .unwrap();
        assert!(!html.contains("<app>") && !html.contains("<b>"));
        assert!(!html.contains("\"x\" onfocus="));
        assert!(html.contains(r#"<label for="username">Username</label>"#));
        assert!(html.contains(r#"<label for="password">Password</label>"#));
        assert!(html.contains(">Sign in</button>"));
        assert!(html.contains(r#"name="csrf_token" value="t""#));
    }
}
