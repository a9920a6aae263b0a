//! The browser-facing routes of the provider: the authorization endpoint with its
//! login and consent pages, and the end-session endpoint (RP-Initiated Logout 1.0).
//!
//! They answer HTML pages and redirects, not JSON, so they are left out of the
//! OpenAPI document (whose contract the fuzzer holds every route to is JSON in, JSON
//! out); their behaviour is pinned by the API tests instead.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::flows::{
    AUTHORIZE_PARAMETERS, AuthError, AuthorizeError, AuthorizeRequest, AuthorizeResponse, Next,
    OpSession,
};
use crate::http::{AppState, AuthorizeForm, Client, FormParams, PageForm, SameSite, cookie};
use crate::pages::{self, ConsentPage, FormPostPage, LoginPage, LogoutPage, MessagePage};

/// Where the login page posts.
pub const LOGIN_PATH: &str = "/oauth/authorize/login";
/// Where the consent page posts.
pub const CONSENT_PATH: &str = "/oauth/authorize/consent";

/// `GET /oauth/authorize`: checks the request, then signs the user in (or finds
/// the session), asks for consent when needed, and answers the client.
pub async fn authorize(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let query = q.unwrap_or_default();
    match FormParams::parse(query.as_bytes(), AUTHORIZE_PARAMETERS) {
        Ok(params) => authorize_with(&s, &headers, &params).await,
        Err(name) => error_page(
            StatusCode::BAD_REQUEST,
            &format!("The request gives {name} more than once."),
        ),
    }
}

/// `POST /oauth/authorize`: the same request, form-encoded in the body (OpenID
/// Connect Core §3.1.2.1 asks for both methods).
pub async fn authorize_post(
    State(s): State<AppState>,
    headers: HeaderMap,
    AuthorizeForm(form): AuthorizeForm,
) -> Response {
    match form {
        Ok(params) => authorize_with(&s, &headers, &params).await,
        Err(_) => error_page(
            StatusCode::BAD_REQUEST,
            "The request could not be read (a form, each parameter once).",
        ),
    }
}

async fn authorize_with(s: &AppState, headers: &HeaderMap, params: &FormParams) -> Response {
    let req = match s.core.parse_authorize(params).await {
        Ok(r) => r,
        Err(e) => return refused(s, e),
    };
    let session = match s
        .core
        .op_session(cookie(headers, s.cookies.op_session_name()))
        .await
    {
        Ok(session) => session,
        Err(e) => return failed(e),
    };
    match s
        .core
        .authorize_next(&req, session.as_ref(), false, false)
        .await
    {
        Ok(next) => proceed(s, &req, session.as_ref(), next, None, HeaderMap::new()),
        Err(e) => refused(s, e),
    }
}

/// `POST /oauth/authorize/login`: the login page's form.
pub async fn login(
    State(s): State<AppState>,
    client: Client,
    headers: HeaderMap,
    PageForm(form): PageForm,
) -> Response {
    let Ok(form) = form else {
        return error_page(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    let (tx, csrf) = match transaction(&s, &headers, &form) {
        Ok(t) => t,
        Err(res) => return *res,
    };
    let req = &tx.request;
    let username = form.get("username").unwrap_or_default();
    let password = form.get("password").unwrap_or_default().to_string();
    let user = match s.core.check_password(username, password, &client.ip).await {
        Ok(u) => u,
        Err(AuthError::RateLimited(wait)) => {
            let message = format!("Too many attempts. Try again in {wait} seconds.");
            let mut extra = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&wait.max(1).to_string()) {
                extra.insert(header::RETRY_AFTER, v);
            }
            let page = LoginPage::new(&req.client_id, username, Some(&message), &csrf, LOGIN_PATH);
            return pages::respond(
                StatusCode::TOO_MANY_REQUESTS,
                &page,
                Some(&req.redirect_uri),
                false,
                extra,
            );
        }
        Err(AuthError::InvalidGrant) => {
            // The same answer for an unknown user and a wrong password.
            let page = LoginPage::new(
                &req.client_id,
                username,
                Some("Wrong username or password."),
                &csrf,
                LOGIN_PATH,
            );
            return pages::respond(
                StatusCode::UNAUTHORIZED,
                &page,
                Some(&req.redirect_uri),
                false,
                HeaderMap::new(),
            );
        }
        Err(e) => return failed(e),
    };
    // A new login replaces the browser's session, whoever it was of.
    if let Ok(Some(old)) = s
        .core
        .op_session(cookie(&headers, s.cookies.op_session_name()))
        .await
    {
        let _ = s.core.drop_op_session(&old).await;
    }
    let (value, session) = match s.core.start_op_session(user).await {
        Ok(x) => x,
        Err(e) => return failed(e),
    };
    let mut extra = HeaderMap::new();
    extra.append(
        header::SET_COOKIE,
        s.cookies.set(
            s.cookies.op_session_name(),
            &value,
            "/",
            true,
            SameSite::Lax,
            s.core.settings.session_ttl,
        ),
    );
    match s
        .core
        .authorize_next(req, Some(&session), true, false)
        .await
    {
        Ok(next) => proceed(&s, req, Some(&session), next, Some(&csrf), extra),
        Err(e) => refused(&s, e),
    }
}

/// `POST /oauth/authorize/consent`: the consent page's form.
pub async fn consent(
    State(s): State<AppState>,
    headers: HeaderMap,
    PageForm(form): PageForm,
) -> Response {
    let Ok(form) = form else {
        return error_page(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    let (tx, csrf) = match transaction(&s, &headers, &form) {
        Ok(t) => t,
        Err(res) => return *res,
    };
    let req = &tx.request;
    let session = match s
        .core
        .op_session(cookie(&headers, s.cookies.op_session_name()))
        .await
    {
        Ok(Some(session)) => session,
        Ok(None) => {
            let page = LoginPage::new(
                &req.client_id,
                req.login_hint.as_deref().unwrap_or_default(),
                Some("Your session has ended. Sign in again."),
                &csrf,
                LOGIN_PATH,
            );
            return pages::respond(
                StatusCode::OK,
                &page,
                Some(&req.redirect_uri),
                false,
                HeaderMap::new(),
            );
        }
        Err(e) => return failed(e),
    };
    match form.get("decision") {
        Some("allow") => {
            if let Err(e) = s.core.consent(req, &session.user).await {
                return failed(e);
            }
            match s.core.authorize_next(req, Some(&session), true, true).await {
                Ok(next) => proceed(&s, req, Some(&session), next, Some(&csrf), HeaderMap::new()),
                Err(e) => refused(&s, e),
            }
        }
        Some("deny") => {
            let answer = s.core.consent_denied(req, &session.user);
            answer_client(&s, &answer, HeaderMap::new())
        }
        _ => error_page(StatusCode::BAD_REQUEST, "Choose Allow or Deny."),
    }
}

/// `GET /oauth/logout` (parameters in the query) and `POST /oauth/logout` (in the
/// form): RP-Initiated Logout 1.0.
pub async fn logout_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let query = q.unwrap_or_default();
    match FormParams::parse(query.as_bytes(), crate::http::PAGE_FIELDS) {
        Ok(params) => logout(&s, &headers, &params, false).await,
        Err(name) => error_page(
            StatusCode::BAD_REQUEST,
            &format!("The request gives {name} more than once."),
        ),
    }
}

/// See [`logout_get`].
pub async fn logout_post(
    State(s): State<AppState>,
    headers: HeaderMap,
    PageForm(form): PageForm,
) -> Response {
    match form {
        Ok(params) => logout(&s, &headers, &params, true).await,
        Err(_) => error_page(StatusCode::BAD_REQUEST, "The form could not be read."),
    }
}

async fn logout(
    s: &AppState,
    headers: &HeaderMap,
    params: &FormParams,
    confirmed_by_post: bool,
) -> Response {
    let hint = params
        .get("id_token_hint")
        .and_then(|t| s.core.id_token_hint(t));
    let session = match s
        .core
        .op_session(cookie(headers, s.cookies.op_session_name()))
        .await
    {
        Ok(session) => session,
        Err(e) => return failed(e),
    };
    // A logout that no valid id_token_hint vouches for could be any site's doing
    // (a top-level navigation carries the Lax cookie): the user confirms it, by a
    // form bound to the session (RP-Initiated Logout 1.0 §2 asks the provider to
    // ask).
    if let Some(session) = &session
        && hint.is_none()
    {
        let expected = s.core.csrf_for(&session.sid);
        let sent = params.get("csrf_token").unwrap_or_default();
        let confirmed = confirmed_by_post
            && !sent.is_empty()
            && crate::crypto::ct_eq(sent.as_bytes(), expected.as_bytes());
        if !confirmed {
            let carried: Vec<(&'static str, String)> =
                ["client_id", "post_logout_redirect_uri", "state"]
                    .into_iter()
                    .filter_map(|k| params.get(k).map(|v| (k, v.to_string())))
                    .collect();
            let page = LogoutPage::new(
                &session.user.username,
                &expected,
                crate::routes::oauth::END_SESSION_PATH,
                &carried,
            );
            // The redirect after the form goes only to a registered URI; its origin
            // joins form-action so that the browser follows it.
            let target = params.get("post_logout_redirect_uri");
            return pages::respond(StatusCode::OK, &page, target, false, HeaderMap::new());
        }
    }
    let done = match s
        .core
        .rp_logout(
            session.as_ref(),
            hint.as_ref(),
            params.get("client_id"),
            params.get("post_logout_redirect_uri"),
            params.get("state"),
        )
        .await
    {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    let mut extra = HeaderMap::new();
    extra.append(
        header::SET_COOKIE,
        s.cookies
            .set(s.cookies.op_session_name(), "", "/", true, SameSite::Lax, 0),
    );
    match done.redirect {
        Some(to) => redirect(&to, extra),
        None => pages::respond(
            StatusCode::OK,
            &MessagePage::info("Signed out", "You are signed out. You can close this page."),
            None,
            false,
            extra,
        ),
    }
}

/// The sealed request of a page's POST and its CSRF token, once the form's
/// `csrf_token` matched it; otherwise the page that refuses it.
fn transaction(
    s: &AppState,
    headers: &HeaderMap,
    form: &FormParams,
) -> Result<(crate::flows::Transaction, String), Box<Response>> {
    let Some(tx) = s
        .core
        .open_transaction(cookie(headers, s.cookies.transaction_name()))
    else {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in request has expired or was already finished. Go back to the application and start again.",
        )));
    };
    let sent = form.get("csrf_token").unwrap_or_default();
    if sent.is_empty() || !crate::crypto::ct_eq(sent.as_bytes(), tx.csrf.as_bytes()) {
        tracing::info!(target: "audit", event = "page_csrf_refused", client_id = %tx.request.client_id, "a hosted page's form came without its CSRF token");
        return Err(Box::new(error_page(
            StatusCode::FORBIDDEN,
            "This form could not be accepted: its security token is missing or wrong. Go back to the application and start again.",
        )));
    }
    let csrf = tx.csrf.clone();
    Ok((tx, csrf))
}

/// Shows the page `next` asks for, or answers the client. `csrf`: the request's
/// sealed already (a page's POST), else it is sealed now, with a cookie.
fn proceed(
    s: &AppState,
    req: &AuthorizeRequest,
    session: Option<&OpSession>,
    next: Next,
    csrf: Option<&str>,
    mut extra: HeaderMap,
) -> Response {
    if let Next::Respond(answer) = next {
        return answer_client(s, &answer, extra);
    }
    let csrf = match csrf {
        Some(c) => c.to_string(),
        None => match s.core.seal_transaction(req) {
            Ok((value, csrf)) => {
                extra.append(
                    header::SET_COOKIE,
                    s.cookies.set(
                        s.cookies.transaction_name(),
                        &value,
                        "/",
                        true,
                        SameSite::Lax,
                        crate::flows::TRANSACTION_TTL,
                    ),
                );
                csrf
            }
            Err(e) => return failed(e),
        },
    };
    match next {
        Next::Consent { client, scopes } => {
            let username = session.map_or("", |s| s.user.username.as_str());
            let page = ConsentPage::new(&client.id, &scopes, username, &csrf, CONSENT_PATH);
            pages::respond(StatusCode::OK, &page, Some(&req.redirect_uri), false, extra)
        }
        _ => {
            let page = LoginPage::new(
                &req.client_id,
                req.login_hint.as_deref().unwrap_or_default(),
                None,
                &csrf,
                LOGIN_PATH,
            );
            pages::respond(StatusCode::OK, &page, Some(&req.redirect_uri), false, extra)
        }
    }
}

/// The answer to the client: a 303 redirect with the parameters in the query, or
/// the `form_post` page. The request's transaction cookie goes.
fn answer_client(s: &AppState, answer: &AuthorizeResponse, mut extra: HeaderMap) -> Response {
    extra.append(
        header::SET_COOKIE,
        s.cookies.set(
            s.cookies.transaction_name(),
            "",
            "/",
            true,
            SameSite::Lax,
            0,
        ),
    );
    let to = &answer.to;
    if to.form_post {
        let page = FormPostPage::new(&to.redirect_uri, &answer.params);
        return pages::respond(StatusCode::OK, &page, Some(&to.redirect_uri), true, extra);
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &answer.params {
        query.append_pair(k, v);
    }
    let sep = if to.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    redirect(
        &format!("{}{sep}{}", to.redirect_uri, query.finish()),
        extra,
    )
}

fn redirect(location: &str, mut extra: HeaderMap) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            extra.insert(header::LOCATION, v);
            extra.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            extra.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            (StatusCode::SEE_OTHER, extra).into_response()
        }
        // Registered URIs and encoded parameters are ASCII: this does not happen.
        Err(_) => error_page(StatusCode::BAD_REQUEST, "The redirect URI cannot be used."),
    }
}

fn refused(s: &AppState, e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Page(message) => error_page(StatusCode::BAD_REQUEST, &message),
        AuthorizeError::Redirect(answer) => answer_client(s, &answer, HeaderMap::new()),
        AuthorizeError::Unavailable(cause) => unavailable(&cause),
        AuthorizeError::Internal(cause) => internal(&cause),
    }
}

fn failed(e: AuthError) -> Response {
    match e {
        AuthError::Unavailable(cause) => unavailable(&cause),
        other => internal(&format!("{other:?}")),
    }
}

fn unavailable(cause: &dyn std::fmt::Display) -> Response {
    tracing::debug!(error = %cause, "a dependency is unavailable");
    let mut extra = HeaderMap::new();
    extra.insert(
        header::RETRY_AFTER,
        HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER),
    );
    pages::respond(
        StatusCode::SERVICE_UNAVAILABLE,
        &MessagePage::error("The server cannot reach its storage. Try again shortly."),
        None,
        false,
        extra,
    )
}

fn internal(cause: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %cause, "internal error");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The server failed; the error was logged.",
    )
}

fn error_page(status: StatusCode, message: &str) -> Response {
    pages::respond(
        status,
        &MessagePage::error(message),
        None,
        false,
        HeaderMap::new(),
    )
}
