//! An HTTP client for the nodes: the `/auth` routes the tests use, each answer as a
//! [`Reply`] (status, `Retry-After`, body) to assert on.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::cluster::Node;

/// The password of every test user.
pub(crate) const PASSWORD: &str = "correct horse battery";

/// A client for every node (one connection pool); cheap to clone into tasks.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
}

/// One answer.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<String>,
    pub(crate) body: Value,
    text: String,
}

/// What a login or a refresh hands out.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: String,
}

impl Api {
    pub(crate) fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                // No request hangs a test: a node that does not answer fails it.
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    /// `POST /auth/register`; asserts 201.
    pub(crate) async fn register(&self, node: &Node, username: &str) {
        let r = self
            .post(
                node,
                "/auth/register",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            r.status,
            201,
            "register {username} on {}: {r:?}{}",
            node.name(),
            node.tail()
        );
    }

    /// `POST /auth/login`; asserts 200.
    pub(crate) async fn login(&self, node: &Node, username: &str) -> Tokens {
        let r = self.login_reply(node, username).await;
        assert_eq!(
            r.status,
            200,
            "login {username} on {}: {r:?}{}",
            node.name(),
            node.tail()
        );
        r.tokens()
    }

    /// `POST /auth/login`, whatever it answers.
    pub(crate) async fn login_reply(&self, node: &Node, username: &str) -> Reply {
        self.post(
            node,
            "/auth/login",
            None,
            json!({"username": username, "password": PASSWORD}),
        )
        .await
    }

    /// `POST /auth/refresh`, whatever it answers; fails the test if the node does
    /// not answer.
    pub(crate) async fn refresh(&self, node: &Node, refresh_token: &str) -> Reply {
        self.try_refresh(node, refresh_token)
            .await
            .unwrap_or_else(|e| panic!("refresh on {}: {e}{}", node.name(), node.tail()))
    }

    /// `POST /auth/refresh`; `Err` when the node does not answer (a dead node).
    pub(crate) async fn try_refresh(
        &self,
        node: &Node,
        refresh_token: &str,
    ) -> Result<Reply, reqwest::Error> {
        self.send(
            self.http
                .post(format!("{}/auth/refresh", node.url()))
                .json(&json!({"refresh_token": refresh_token})),
        )
        .await
    }

    /// `POST /auth/logout` with `access`, and `refresh_token` if given.
    pub(crate) async fn logout(
        &self,
        node: &Node,
        access: &str,
        refresh_token: Option<&str>,
    ) -> Reply {
        let body = match refresh_token {
            Some(rt) => json!({"refresh_token": rt}),
            None => json!({}),
        };
        self.post(node, "/auth/logout", Some(access), body).await
    }

    /// `DELETE /auth/sessions/{sid}` with `access`.
    pub(crate) async fn delete_session(&self, node: &Node, access: &str, sid: &str) -> Reply {
        let req = self
            .http
            .delete(format!("{}/auth/sessions/{sid}", node.url()))
            .bearer_auth(access);
        self.expect_answer(node, req).await
    }

    /// `POST /auth/logout-all` with `access`.
    pub(crate) async fn logout_all(&self, node: &Node, access: &str) -> Reply {
        let req = self
            .http
            .post(format!("{}/auth/logout-all", node.url()))
            .bearer_auth(access);
        self.expect_answer(node, req).await
    }

    /// The status of `GET /auth/me` with `access`.
    pub(crate) async fn me(&self, node: &Node, access: &str) -> u16 {
        let req = self
            .http
            .get(format!("{}/auth/me", node.url()))
            .bearer_auth(access);
        self.expect_answer(node, req).await.status
    }

    /// `GET /.well-known/jwks.json`; asserts 200.
    pub(crate) async fn jwks(&self, node: &Node) -> Value {
        let req = self
            .http
            .get(format!("{}/.well-known/jwks.json", node.url()));
        let r = self.expect_answer(node, req).await;
        assert_eq!(
            r.status,
            200,
            "jwks on {}: {r:?}{}",
            node.name(),
            node.tail()
        );
        r.body
    }

    /// `GET /readyz`.
    pub(crate) async fn readyz(&self, node: &Node) -> Reply {
        let req = self.http.get(format!("{}/readyz", node.url()));
        self.expect_answer(node, req).await
    }

    async fn post(&self, node: &Node, path: &str, bearer: Option<&str>, body: Value) -> Reply {
        let mut req = self.http.post(format!("{}{path}", node.url())).json(&body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        self.expect_answer(node, req).await
    }

    async fn expect_answer(&self, node: &Node, req: reqwest::RequestBuilder) -> Reply {
        self.send(req)
            .await
            .unwrap_or_else(|e| panic!("{} did not answer: {e}{}", node.name(), node.tail()))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
        let res = req.send().await?;
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let text = res.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            retry_after,
            body,
            text,
        })
    }
}

impl Reply {
    /// The `error` code of an error answer.
    pub(crate) fn error(&self) -> Option<&str> {
        self.body["error"].as_str()
    }

    /// The token pair of a 200 from login or refresh.
    pub(crate) fn tokens(&self) -> Tokens {
        let field = |name: &str| {
            self.body[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {self:?}"))
                .to_owned()
        };
        Tokens {
            access: field("access_token"),
            refresh: field("refresh_token"),
        }
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(r) = &self.retry_after {
            write!(f, " (Retry-After: {r})")?;
        }
        write!(f, " {}", self.text)
    }
}

/// A claim of an access token, decoded here without verification (the tests only
/// read `sid` and `jti` of tokens a node just handed them).
pub(crate) fn claim(access: &str, name: &str) -> String {
    let payload = access.split('.').nth(1).expect("a compact JWS");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string claim {name} in {claims}"))
        .to_owned()
}

/// The `kid` of a compact JWS's header.
pub(crate) fn header_kid(token: &str) -> String {
    let header = token.split('.').next().expect("a compact JWS");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().expect("a kid").to_owned()
}
