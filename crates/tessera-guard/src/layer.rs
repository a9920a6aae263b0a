//! The tower layer: verifies the bearer token of every request of a router, checks
//! required roles and scopes, and hands the [`Principal`] to handlers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::Guard;
use crate::error::GuardError;
use crate::principal::Principal;

/// A [`tower::Layer`] that guards every route below it; made by [`Guard::layer`].
///
/// On success the request continues with a [`Principal`] in its extensions; on
/// failure the layer answers itself (401, 403, 400 or 503; see
/// [`RejectionKind`](crate::RejectionKind)) and the handler never runs.
///
/// Requirements add up: every [`require_role`](Self::require_role) and
/// [`require_scope`](Self::require_scope) must hold, and at least one role of each
/// [`require_any_role`](Self::require_any_role) call.
#[derive(Clone)]
pub struct GuardLayer {
    guard: Guard,
    rules: Arc<Rules>,
}

#[derive(Clone, Default)]
struct Rules {
    roles: Vec<String>,
    any_roles: Vec<Vec<String>>,
    scopes: Vec<String>,
    optional: bool,
}

/// Marks a request that passed an [optional](GuardLayer::optional) layer without a
/// token, so extractors answer 401 rather than "not guarded".
#[derive(Clone, Copy)]
pub(crate) struct Passed;

impl GuardLayer {
    pub(crate) fn new(guard: Guard) -> Self {
        Self {
            guard,
            rules: Arc::new(Rules::default()),
        }
    }

    /// Requires `role` in the token's `roles` claim (403 `insufficient_scope` if absent).
    pub fn require_role(mut self, role: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.rules).roles.push(role.into());
        self
    }

    /// Requires at least one of `roles`.
    pub fn require_any_role<I, R>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        let roles = roles.into_iter().map(Into::into).collect();
        Arc::make_mut(&mut self.rules).any_roles.push(roles);
        self
    }

    /// Requires `scope` among the token's space-separated `scope` claim (403
    /// `insufficient_scope`, with the required scopes in `WWW-Authenticate`).
    pub fn require_scope(mut self, scope: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.rules).scopes.push(scope.into());
        self
    }

    /// Lets requests without any bearer token through, without a [`Principal`]
    /// (handlers take `Option<Principal>`). A token that is presented is still
    /// verified, and refused when bad; requirements apply to it.
    pub fn optional(mut self) -> Self {
        Arc::make_mut(&mut self.rules).optional = true;
        self
    }

    /// What the layer does for one request, without the service around it:
    /// `Ok(None)` only for an optional layer and a request without a token.
    pub async fn check(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Option<Principal>, GuardError> {
        let token = match crate::bearer_token(headers) {
            Ok(Some(t)) => t,
            Ok(None) if self.rules.optional => return Ok(None),
            Ok(None) => return Err(self.guard.finish_err(GuardError::missing_token())),
            Err(e) => return Err(self.guard.finish_err(e)),
        };
        let principal = self.guard.verify(token).await?;
        self.rules
            .check(&principal)
            .map_err(|e| self.guard.finish_err(e))?;
        Ok(Some(principal))
    }
}

impl Rules {
    fn check(&self, p: &Principal) -> Result<(), GuardError> {
        for role in &self.roles {
            if !p.has_role(role) {
                return Err(GuardError::insufficient_scope(
                    format!("the token lacks the role {role}"),
                    None,
                ));
            }
        }
        for any in &self.any_roles {
            if !any.iter().any(|r| p.has_role(r)) {
                return Err(GuardError::insufficient_scope(
                    format!("the token has none of the roles {}", any.join(", ")),
                    None,
                ));
            }
        }
        if let Some(missing) = self.scopes.iter().find(|s| !p.has_scope(s)) {
            return Err(GuardError::insufficient_scope(
                format!("the token lacks the scope {missing}"),
                Some(self.scopes.join(" ")),
            ));
        }
        Ok(())
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`GuardLayer`].
#[derive(Clone)]
pub struct GuardService<S> {
    inner: S,
    layer: GuardLayer,
}

impl<S> Service<Request> for GuardService<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The service that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            match layer.check(req.headers()).await {
                Ok(Some(principal)) => {
                    req.extensions_mut().insert(principal);
                }
                Ok(None) => {
                    req.extensions_mut().insert(Passed);
                }
                Err(e) => return Ok(e.into_response()),
            }
            inner.call(req).await
        })
    }
}
