//! Register, login, refresh, logout, logout-all, sessions.

use crate::crypto::{self, SealKey};
use crate::domain::{Password, Username};
use crate::metrics::TokenOp;
use crate::password::Hasher;
use crate::ratelimit::LimitKey;
use crate::redact::debug_redacted;
use crate::store::{DenyEntry, DenyKind, Family, NewRefresh, RotateRequest, Rotation, Store, User};
use crate::tokens::{self, AccessClaims};

use super::{AuthError, Core};

/// The label under which a refresh token derives the key that seals its successor.
const SUCCESSOR_LABEL: &str = "tessera refresh successor";

/// A token pair just issued.
pub struct Issued {
    /// The access token.
    pub access_token: String,
    /// Its lifetime, seconds.
    pub expires_in: i64,
    /// The refresh token (shown once; the store keeps its hash).
    pub refresh_token: String,
    /// Seconds until the family ends if unused.
    pub refresh_expires_in: i64,
    /// The session (family) id.
    pub sid: String,
    /// The user.
    pub user: User,
}

debug_redacted!(Issued { expires_in, refresh_expires_in, sid, user; access_token, refresh_token });

/// A refresh token spent: its family and user, and the successor to hand out.
pub(crate) struct Spent {
    pub(crate) family: Family,
    pub(crate) user: User,
    pub(crate) successor: String,
}

/// A session as `/auth/sessions` lists it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Family id (= `sid`).
    pub id: String,
    /// Login time.
    pub created_at: i64,
    /// Last refresh.
    pub last_used_at: i64,
    /// User-Agent at login.
    pub user_agent: Option<String>,
    /// Address at login.
    pub ip: Option<String>,
}

impl Core {
    /// Registers a user with no roles.
    pub async fn register(&self, username: &str, password: String) -> Result<User, AuthError> {
        self.create_user(username, password, Vec::new()).await
    }

    /// Creates a user with roles.
    pub async fn create_user(
        &self,
        username: &str,
        password: String,
        roles: Vec<String>,
    ) -> Result<User, AuthError> {
        add_user(
            self.store.as_ref(),
            &self.hasher,
            self.now(),
            username,
            password,
            roles,
        )
        .await
    }

    /// Checks a username and password under the brute-force limits; the same
    /// answer, in the same time, for an unknown user and a wrong password.
    pub async fn check_password(
        &self,
        username: &str,
        password: String,
        ip: &str,
    ) -> Result<User, AuthError> {
        let now = self.now();
        let normalized = Username::lookup(username);
        let s = &self.settings;
        let account = LimitKey::account(
            normalized.as_ref().map_or("", |u| u.as_str()),
            s.account_failures,
        );
        let address = LimitKey::address(ip, s.address_failures);
        // The failure is reserved before the hash, so no more guesses than the
        // limit are ever in flight or done for this account or address.
        let reservation = match self.limiter.reserve(&[address, account.clone()], now).await {
            Ok(r) => r,
            Err(wait) => {
                self.metrics.rate_limited();
                tracing::warn!(target: "audit", event = "login_rate_limited", ip, "login refused by the brute-force limit");
                return Err(AuthError::RateLimited(wait));
            }
        };
        let user = match &normalized {
            Some(u) => self.store.user_by_username(u.as_str()).await?,
            None => None,
        };
        let password = Password::presented(password);
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self
            .hasher
            .verify_async(password, phc)
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        match user {
            Some(user) if ok => {
                self.limiter.refund_and_clear(reservation, &account).await;
                Ok(user)
            }
            _ => {
                // The reserved failure stays counted.
                drop(reservation);
                self.metrics.login_failure();
                tracing::info!(target: "audit", event = "login_failure", ip, "login failed");
                Err(AuthError::InvalidGrant)
            }
        }
    }

    /// Logs in: a new family and a token pair.
    pub async fn login(
        &self,
        username: &str,
        password: String,
        user_agent: Option<String>,
        ip: &str,
    ) -> Result<Issued, AuthError> {
        let user = self.check_password(username, password, ip).await?;
        let now = self.now();
        let family = Family {
            id: crypto::random_id()?,
            user_id: user.id.clone(),
            created_at: now,
            last_used_at: now,
            user_agent: user_agent.map(|ua| ua.chars().take(256).collect()),
            ip: Some(ip.to_string()),
            ..Family::default()
        };
        let refresh = crypto::random_token()?;
        let evicted = match self
            .store
            .create_family(
                &family,
                &NewRefresh {
                    hash: crypto::hash_secret(&refresh),
                },
                self.settings.family,
                self.settings.session_limit,
            )
            .await
        {
            Ok(ev) => ev,
            Err(crate::store::StoreError::SessionLimit) => {
                tracing::info!(target: "audit", event = "session_limit_refused", user_id = %user.id, "login refused at the session limit");
                return Err(AuthError::SessionLimit);
            }
            Err(e) => return Err(e.into()),
        };
        if !evicted.is_empty() {
            tracing::info!(target: "audit", event = "session_limit_evicted", user_id = %user.id, count = evicted.len(), "oldest sessions ended at the session limit");
            self.deny_sessions(&evicted, now).await?;
        }
        self.metrics.op(TokenOp::RefreshIssued);
        tracing::info!(target: "audit", event = "login_success", user_id = %user.id, sid = %family.id, ip, "login");
        self.issue(user, &family, refresh, now)
    }

    /// Spends a refresh token for a new pair.
    pub async fn refresh(&self, refresh_token: &str, ip: &str) -> Result<Issued, AuthError> {
        let now = self.now();
        let address = LimitKey::address(ip, self.settings.address_failures);
        let reservation = match self.limiter.reserve(&[address], now).await {
            Ok(r) => r,
            Err(wait) => {
                self.metrics.rate_limited();
                return Err(AuthError::RateLimited(wait));
            }
        };
        let outcome = self.rotate(refresh_token, ip, now).await;
        match &outcome {
            // A refused token keeps its reserved failure.
            Err(AuthError::InvalidGrant) => {
                drop(reservation);
                self.metrics.login_failure();
                self.metrics.op(TokenOp::RefreshRefused);
            }
            // Success, or a failure of ours (the database), is no guess.
            _ => self.limiter.refund(reservation).await,
        }
        outcome
    }

    async fn rotate(&self, refresh_token: &str, ip: &str, now: i64) -> Result<Issued, AuthError> {
        let spent = self.spend_refresh(refresh_token, None, ip, now).await?;
        self.issue(spent.user, &spent.family, spent.successor, now)
    }

    /// Spends a refresh token of an `/auth` family (`client_id` `None`) or of a
    /// grant to `client_id`, with rotation, the reuse interval and reuse detection:
    /// a token spent before the reuse interval revokes its family and denies its
    /// access tokens. A token of another kind is `InvalidGrant`, and untouched.
    pub(crate) async fn spend_refresh(
        &self,
        refresh_token: &str,
        client_id: Option<&str>,
        ip: &str,
        now: i64,
    ) -> Result<Spent, AuthError> {
        if refresh_token.is_empty() || refresh_token.len() > 128 {
            return Err(AuthError::InvalidGrant);
        }
        let presented = crypto::hash_secret(refresh_token);
        let successor = crypto::random_token()?;
        let seal = SealKey::derive(SUCCESSOR_LABEL, refresh_token);
        let successor_sealed = seal.seal(successor.as_bytes(), &presented)?;
        let req = RotateRequest {
            presented: presented.clone(),
            successor: NewRefresh {
                hash: crypto::hash_secret(&successor),
            },
            successor_sealed,
            now,
            reuse_interval: self.settings.reuse_interval,
            policy: self.settings.family,
            client_id: client_id.map(str::to_string),
        };
        match self.store.rotate_refresh(&req).await? {
            Rotation::Rotated { family, user } => {
                self.metrics.op(TokenOp::RefreshRotated);
                Ok(Spent {
                    family,
                    user,
                    successor,
                })
            }
            Rotation::Replayed {
                family,
                user,
                successor_sealed,
            } => {
                let plain = seal
                    .open(&successor_sealed, &presented)
                    .map_err(|_| AuthError::Internal("a sealed successor did not open".into()))?;
                let successor = String::from_utf8(plain.to_vec())
                    .map_err(|_| AuthError::Internal("a sealed successor is not text".into()))?;
                self.metrics.op(TokenOp::RefreshReplayed);
                tracing::info!(target: "audit", event = "refresh_replayed", user_id = %user.id, sid = %family.id, "spent refresh token within the reuse interval; same successor answered");
                Ok(Spent {
                    family,
                    user,
                    successor,
                })
            }
            Rotation::ReuseDetected { family_id, user_id } => {
                self.metrics.op(TokenOp::RefreshReuse);
                tracing::warn!(target: "audit", event = "refresh_reuse", user_id = %user_id, sid = %family_id, client_id = client_id.unwrap_or(""), ip, "a spent refresh token was presented again; its family is revoked");
                self.deny_sessions(std::slice::from_ref(&family_id), now)
                    .await?;
                Err(AuthError::InvalidGrant)
            }
            _ => Err(AuthError::InvalidGrant),
        }
    }

    /// The live family of a refresh token (for the CSRF check of cookie refresh).
    pub async fn family_of_refresh(
        &self,
        refresh_token: &str,
    ) -> Result<Option<Family>, AuthError> {
        if refresh_token.is_empty() || refresh_token.len() > 128 {
            return Ok(None);
        }
        Ok(self
            .store
            .family_of_refresh(
                &crypto::hash_secret(refresh_token),
                self.now(),
                self.settings.family,
            )
            .await?)
    }

    /// Logs out: the session ends and this access token is denied until it expires.
    /// `claims` are those of an `/auth` session token.
    pub async fn logout(
        &self,
        claims: &AccessClaims,
        refresh_token: Option<&str>,
    ) -> Result<(), AuthError> {
        let Some(sid) = claims.session_id() else {
            return Err(AuthError::InvalidInput(
                "only the access token of an /auth session logs out".into(),
            ));
        };
        let now = self.now();
        // This token stops working here at once, whatever the store answers next.
        self.denylist.insert(&[DenyEntry {
            kind: DenyKind::Jti,
            value: claims.jti.clone(),
            cutoff: 0,
            expires_at: claims.exp + 1,
        }]);
        let mut sids = vec![sid.to_string()];
        if let Some(rt) = refresh_token
            && let Some(f) = self.family_of_refresh(rt).await?
            && f.user_id == claims.sub
            && f.client_id.is_none()
            && f.id != sid
        {
            sids.push(f.id);
        }
        for sid in &sids {
            self.store
                .revoke_family(sid, Some(&claims.sub), now, "logout")
                .await?;
        }
        let mut entries = vec![DenyEntry {
            kind: DenyKind::Jti,
            value: claims.jti.clone(),
            cutoff: 0,
            expires_at: claims.exp + 1,
        }];
        entries.extend(sids.iter().map(|sid| DenyEntry {
            kind: DenyKind::Sid,
            value: sid.clone(),
            cutoff: 0,
            expires_at: now + self.settings.access_ttl + 1,
        }));
        self.deny(&entries).await?;
        self.metrics.op(TokenOp::Revoked);
        tracing::info!(target: "audit", event = "logout", user_id = %claims.sub, sid, "logout");
        Ok(())
    }

    /// Ends every session of the user and denies every access token issued to them
    /// before now.
    pub async fn logout_all(&self, user_id: &str) -> Result<(), AuthError> {
        let now = self.now();
        let sids = self
            .store
            .revoke_user_families(user_id, now, "logout_all")
            .await?;
        let mut entries: Vec<DenyEntry> = sids
            .iter()
            .map(|sid| DenyEntry {
                kind: DenyKind::Sid,
                value: sid.clone(),
                cutoff: 0,
                expires_at: now + self.settings.access_ttl + 1,
            })
            .collect();
        entries.push(DenyEntry {
            kind: DenyKind::User,
            value: user_id.to_string(),
            cutoff: now,
            expires_at: now + self.settings.access_ttl + 1,
        });
        self.deny(&entries).await?;
        self.metrics.op(TokenOp::Revoked);
        tracing::info!(target: "audit", event = "logout_all", user_id, sessions = sids.len(), "logout from every session");
        Ok(())
    }

    /// The user's live `/auth` sessions, oldest first. (Grants to OAuth clients
    /// are families too; they are listed at `/auth/consents`, not here.)
    pub async fn sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>, AuthError> {
        let families = self
            .store
            .live_families(user_id, self.now(), self.settings.family)
            .await?;
        Ok(families
            .into_iter()
            .filter(|f| f.client_id.is_none())
            .map(|f| SessionInfo {
                id: f.id,
                created_at: f.created_at,
                last_used_at: f.last_used_at,
                user_agent: f.user_agent,
                ip: f.ip,
            })
            .collect())
    }

    /// Ends one session of the user; `NotFound` for another user's or an unknown one.
    pub async fn end_session(&self, user_id: &str, sid: &str) -> Result<(), AuthError> {
        let now = self.now();
        if !self
            .store
            .revoke_family(sid, Some(user_id), now, "session_deleted")
            .await?
        {
            return Err(AuthError::NotFound);
        }
        self.deny_sessions(&[sid.to_string()], now).await?;
        self.metrics.op(TokenOp::Revoked);
        tracing::info!(target: "audit", event = "session_ended", user_id, sid, "session ended");
        Ok(())
    }

    /// Verifies a bearer token.
    pub async fn verify_access(
        &self,
        token: &str,
    ) -> Result<std::sync::Arc<AccessClaims>, tokens::Refused> {
        let r = self.verifier.verify(token).await;
        if r.is_err() {
            self.metrics.op(TokenOp::AccessRefused);
        }
        r
    }

    /// The registered claims of an access token issued now.
    pub(crate) fn token_issue(&self, now: i64) -> Result<tokens::Issue, AuthError> {
        let s = &self.settings;
        Ok(tokens::Issue {
            iss: s.issuer.clone(),
            aud: s.audience.clone(),
            iat: now,
            exp: now + s.access_ttl,
            jti: crypto::random_id()?,
        })
    }

    fn issue(
        &self,
        user: User,
        family: &Family,
        refresh_token: String,
        now: i64,
    ) -> Result<Issued, AuthError> {
        let s = &self.settings;
        let claims = AccessClaims::session(
            self.token_issue(now)?,
            &user.id,
            &family.id,
            &user.username,
            user.roles.clone(),
            &s.scope,
        );
        let access_token =
            tokens::mint(&self.keys, &claims).map_err(|e| AuthError::Internal(e.to_string()))?;
        self.metrics.op(TokenOp::AccessIssued);
        let refresh_expires_in = (family.last_used_at.max(now) + s.family.idle)
            .min(family.created_at + s.family.absolute)
            - now;
        Ok(Issued {
            access_token,
            expires_in: s.access_ttl,
            refresh_token,
            refresh_expires_in,
            sid: family.id.clone(),
            user,
        })
    }
}

/// Creates a user (registration, and `tessera user add` without a running server).
pub async fn add_user(
    store: &dyn Store,
    hasher: &Hasher,
    now: i64,
    username: &str,
    password: String,
    mut roles: Vec<String>,
) -> Result<User, AuthError> {
    // A role given twice is held once; the order given is kept.
    let mut seen = std::collections::HashSet::new();
    roles.retain(|r| seen.insert(r.clone()));
    let username = Username::parse(username).map_err(|e| AuthError::InvalidInput(e.0.into()))?;
    let password = Password::parse(password).map_err(|e| AuthError::InvalidInput(e.0.into()))?;
    for r in &roles {
        if r.is_empty() || r.len() > 64 || r.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(AuthError::InvalidInput(
                "a role is 1 to 64 characters without spaces".into(),
            ));
        }
    }
    let hash = hasher
        .hash_async(password)
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))?;
    let user = User {
        id: crypto::random_id()?,
        username: username.as_str().to_string(),
        password_hash: hash,
        roles,
        created_at: now,
    };
    store.create_user(&user).await?;
    tracing::info!(target: "audit", event = "user_created", user_id = %user.id, "user created");
    Ok(user)
}
