//! The classic stateful mode: an opaque session id in a cookie, the state in the
//! store (id and CSRF token stored hashed).

use crate::crypto;
use crate::redact::debug_redacted;
use crate::store::{ServerSession, User};

use super::{AuthError, Core};

/// A stateful login just made.
pub struct StatefulLogin {
    /// The session id (cookie value; the store keeps its hash).
    pub session_id: String,
    /// The CSRF token to echo in `X-CSRF-Token`.
    pub csrf_token: String,
    /// The user.
    pub user: User,
}

debug_redacted!(StatefulLogin { user; session_id, csrf_token });

impl Core {
    /// Where sessions live, if it answers: a Redis known to be down is not tried
    /// (each try would wait for its timeout); the health check finds it again.
    pub(super) fn session_store(&self) -> Result<&dyn crate::store::SessionStore, AuthError> {
        if self.redis.as_ref().is_some_and(|h| !h.is_up()) {
            return Err(AuthError::Unavailable("Redis is unavailable".into()));
        }
        Ok(self.sessions.as_ref())
    }

    /// Logs in to a stateful session.
    pub async fn session_login(
        &self,
        username: &str,
        password: String,
        ip: &str,
    ) -> Result<StatefulLogin, AuthError> {
        let user = self.check_password(username, password, ip).await?;
        let now = self.now();
        let session_id = crypto::random_token()?;
        let csrf_token = crypto::random_token()?;
        self.session_store()?
            .create_server_session(&ServerSession {
                id_hash: crypto::hash_secret(&session_id),
                user_id: user.id.clone(),
                csrf_hash: crypto::hash_secret(&csrf_token),
                created_at: now,
                last_used_at: now,
                expires_at: now + self.settings.session_ttl,
            })
            .await?;
        tracing::info!(target: "audit", event = "session_login", user_id = %user.id, ip, "stateful login");
        Ok(StatefulLogin {
            session_id,
            csrf_token,
            user,
        })
    }

    /// The session's user, or `None` when the id is unknown or expired.
    pub async fn session_user(
        &self,
        session_id: &str,
    ) -> Result<Option<(ServerSession, User)>, AuthError> {
        if session_id.is_empty() || session_id.len() > 128 {
            return Ok(None);
        }
        let Some(session) = self
            .session_store()?
            .touch_server_session(
                &crypto::hash_secret(session_id),
                self.now(),
                self.settings.session_ttl,
            )
            .await?
        else {
            return Ok(None);
        };
        // A session outlives nothing: the user's deletion ends it.
        Ok(self
            .store
            .user_by_id(&session.user_id)
            .await?
            .map(|user| (session, user)))
    }

    /// Ends a stateful session when `csrf_token` is its CSRF token; `Ok(false)` when
    /// there is no such session or the CSRF token is wrong.
    pub async fn session_logout(
        &self,
        session_id: &str,
        csrf_token: &str,
    ) -> Result<bool, AuthError> {
        let Some((session, user)) = self.session_user(session_id).await? else {
            return Ok(false);
        };
        if !crypto::ct_eq(&crypto::hash_secret(csrf_token), &session.csrf_hash) {
            return Ok(false);
        }
        self.sessions
            .delete_server_session(&session.id_hash)
            .await?;
        tracing::info!(target: "audit", event = "session_logout", user_id = %user.id, "stateful logout");
        Ok(true)
    }
}
