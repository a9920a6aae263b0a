//! The OpenID Connect grants at the token endpoint (`authorization_code` with PKCE,
//! `refresh_token` of a grant), ID tokens, userinfo, RP-initiated logout, and the
//! user's consents.
//!
//! Every grant's redemption creates a refresh family (its `sid` is the `sid` of
//! the grant's access tokens, so revoking the family denies them), carrying the
//! client, scope, `auth_time` and the provider session it was made in. Its refresh
//! token is handed out only for `offline_access`; without it nobody holds the
//! family's token, and the family only names the grant.

use serde::Serialize;
use tessera_jose::jws::Header;
use tessera_jose::jwt;

use crate::crypto;
use crate::domain::{GrantType, Scope};
use crate::metrics::{OAuthOp, TokenOp};
use crate::store::{Consent, DenyEntry, DenyKind, Family, NewRefresh, StoredCode, User};
use crate::tokens::{self, AccessClaims, TokenKind};

use super::oauth::{AuthenticatedClient, IssuedToken, OAuthError, TokenRequest};
use super::{AuthError, Core};

/// The claims of an ID token (OpenID Connect Core §2).
#[derive(Debug, Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
    azp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
}

/// What userinfo answers (OpenID Connect Core §5.3).
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    /// The user id.
    pub sub: String,
    /// The username, for the `profile` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

/// An `id_token_hint` that verified with the provider's ID-token keys (expired or
/// not: RP-Initiated Logout 1.0 §2 asks the provider to take an expired one).
#[derive(Debug, Clone)]
pub struct IdTokenHint {
    /// Its `aud`: the client.
    pub client_id: String,
    /// Its `sid`: the provider session.
    pub sid: Option<String>,
}

/// What RP-initiated logout did.
#[derive(Debug, Clone, Default)]
pub struct LoggedOut {
    /// Where to send the browser: a registered post-logout URI of the client, with
    /// `state`; `None`: show the "signed out" page.
    pub redirect: Option<String>,
}

impl Core {
    /// The `authorization_code` grant (RFC 6749 §4.1.3, RFC 7636 §4.6). A code is
    /// good once on every node; a spent one presented again is refused and revokes
    /// the family and the access token its redemption issued (§4.1.2).
    pub(super) async fn authorization_code(
        &self,
        client: &AuthenticatedClient,
        req: &TokenRequest,
        ip: &str,
    ) -> Result<IssuedToken, OAuthError> {
        if !client.has_grant(GrantType::AuthorizationCode) {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use the authorization_code grant".into(),
            ));
        }
        let Some(code) = req.code.as_deref() else {
            return Err(OAuthError::InvalidRequest("code is missing".into()));
        };
        let Some(redirect_uri) = req.redirect_uri.as_deref() else {
            return Err(OAuthError::InvalidRequest(
                "redirect_uri is missing (it must repeat the authorization request's)".into(),
            ));
        };
        let bad = |m: &str| OAuthError::InvalidGrant(m.into());
        if code.is_empty() || code.len() > 128 {
            return Err(bad("the code is unknown, expired or spent"));
        }
        let now = self.now();
        let hash = crypto::hash_secret(code);
        let Some(stored) = self.store.code(&hash).await? else {
            return Err(bad("the code is unknown, expired or spent"));
        };
        if stored.code.client_id != client.client.id {
            return Err(bad("the code was issued to another client"));
        }
        if stored.redeemed_at.is_some() {
            self.code_replayed(&stored, ip).await?;
            return Err(bad("the code is unknown, expired or spent"));
        }
        if stored.code.expires_at <= now {
            return Err(bad("the code is unknown, expired or spent"));
        }
        if stored.code.redirect_uri != redirect_uri {
            return Err(bad(
                "redirect_uri is not the one of the authorization request",
            ));
        }
        let Some(verifier) = req.code_verifier.as_deref() else {
            return Err(bad("code_verifier is missing (PKCE)"));
        };
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !well_formed
            || !crypto::ct_eq(
                crypto::pkce_s256(verifier).as_bytes(),
                stored.code.code_challenge.as_bytes(),
            )
        {
            return Err(bad("code_verifier does not match the code_challenge"));
        }
        let Some(user) = self.store.user_by_id(&stored.code.user_id).await? else {
            return Err(bad("the user of the code no longer exists"));
        };
        // The family exists before the code names it, so that a replay racing this
        // redemption always finds what to revoke.
        let family = Family {
            id: crypto::random_id()?,
            user_id: user.id.clone(),
            created_at: now,
            last_used_at: now,
            user_agent: None,
            ip: Some(ip.to_string()),
            client_id: Some(client.client.id.clone()),
            scope: Some(stored.code.scope.clone()),
            auth_time: Some(stored.code.auth_time),
            op_sid: Some(stored.code.op_sid.clone()),
        };
        let refresh = crypto::random_token()?;
        self.store
            .create_family(
                &family,
                &NewRefresh {
                    hash: crypto::hash_secret(&refresh),
                },
                self.settings.family,
                None,
            )
            .await?;
        let issue = self.token_issue(now)?;
        if !self
            .store
            .redeem_code(&hash, now, &family.id, &issue.jti)
            .await?
        {
            // Another redemption won (or the code expired meanwhile).
            self.store
                .revoke_family(&family.id, None, now, "code_replay")
                .await?;
            if let Some(stored) = self.store.code(&hash).await?
                && stored.redeemed_at.is_some()
            {
                self.code_replayed(&stored, ip).await?;
            }
            return Err(bad("the code is unknown, expired or spent"));
        }
        self.metrics.oauth(OAuthOp::CodeRedeemed);
        tracing::info!(target: "audit", event = "code_redeemed", user_id = %user.id, client_id = %client.client.id, sid = %family.id, "authorization code redeemed");
        let offline = stored.code.scope.split(' ').any(|t| t == "offline_access")
            && client.has_grant(GrantType::RefreshToken);
        if offline {
            self.metrics.op(TokenOp::RefreshIssued);
        }
        self.grant_tokens(
            &user,
            &family,
            &stored.code.scope,
            issue,
            offline.then_some(refresh),
            stored.code.nonce.as_deref(),
        )
    }

    /// A spent code presented again: the family and the access token its
    /// redemption issued are revoked.
    async fn code_replayed(&self, stored: &StoredCode, ip: &str) -> Result<(), OAuthError> {
        let now = self.now();
        self.metrics.oauth(OAuthOp::CodeReplay);
        tracing::warn!(target: "audit", event = "code_replay", client_id = %stored.code.client_id, user_id = %stored.code.user_id, sid = stored.family_id.as_deref().unwrap_or(""), ip, "a spent authorization code was presented again; what it issued is revoked");
        let mut entries = Vec::new();
        if let Some(f) = &stored.family_id {
            self.store
                .revoke_family(f, None, now, "code_replay")
                .await?;
            entries.push(DenyEntry {
                kind: DenyKind::Sid,
                value: f.clone(),
                cutoff: 0,
                expires_at: now + self.settings.access_ttl + 1,
            });
        }
        if let (Some(jti), Some(at)) = (&stored.access_jti, stored.redeemed_at) {
            entries.push(DenyEntry {
                kind: DenyKind::Jti,
                value: jti.clone(),
                cutoff: 0,
                expires_at: at + self.settings.access_ttl + 1,
            });
        }
        if !entries.is_empty() {
            self.deny(&entries).await?;
            self.metrics.op(TokenOp::Revoked);
        }
        Ok(())
    }

    /// The `refresh_token` grant of a client's grant: rotation, the reuse interval
    /// and reuse detection as at `/auth/refresh`. A `scope` may narrow the access
    /// token's scope, never widen it.
    pub(super) async fn refresh_grant(
        &self,
        client: &AuthenticatedClient,
        req: &TokenRequest,
        ip: &str,
    ) -> Result<IssuedToken, OAuthError> {
        if !client.has_grant(GrantType::RefreshToken) {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use the refresh_token grant".into(),
            ));
        }
        let Some(token) = req.refresh_token.as_deref() else {
            return Err(OAuthError::InvalidRequest(
                "refresh_token is missing".into(),
            ));
        };
        let now = self.now();
        let spent = match self
            .spend_refresh(token, Some(&client.client.id), ip, now)
            .await
        {
            Ok(s) => s,
            Err(AuthError::InvalidGrant) => {
                self.metrics.op(TokenOp::RefreshRefused);
                return Err(OAuthError::InvalidGrant(
                    "the refresh token is unknown, expired, revoked or spent".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let granted = spent.family.scope.clone().unwrap_or_default();
        let scope = match req.scope.as_deref() {
            None => granted,
            Some(raw) => {
                let asked = Scope::parse(raw)
                    .map_err(|_| OAuthError::InvalidScope("the scope is malformed".into()))?;
                let held = Scope::parse(&granted).unwrap_or_default();
                if asked.outside(&held).next().is_some() {
                    return Err(OAuthError::InvalidScope(
                        "the scope asks for more than was granted".into(),
                    ));
                }
                asked.to_string()
            }
        };
        let issue = self.token_issue(now)?;
        self.grant_tokens(
            &spent.user,
            &spent.family,
            &scope,
            issue,
            Some(spent.successor),
            None,
        )
    }

    /// The access token of a grant, its ID token for `openid`, and the refresh
    /// token when there is one to hand out.
    fn grant_tokens(
        &self,
        user: &User,
        family: &Family,
        scope: &str,
        issue: tokens::Issue,
        refresh_token: Option<String>,
        nonce: Option<&str>,
    ) -> Result<IssuedToken, OAuthError> {
        let client_id = family.client_id.as_deref().unwrap_or_default();
        let now = issue.iat;
        let claims = AccessClaims::user_grant(issue, &user.id, client_id, Some(&family.id), scope);
        let access_token =
            tokens::mint(&self.keys, &claims).map_err(|e| OAuthError::Internal(e.to_string()))?;
        self.metrics.op(TokenOp::AccessIssued);
        let id_token = if scope.split(' ').any(|t| t == "openid") {
            let keys = self.keys.current();
            let id = IdClaims {
                iss: &self.settings.issuer,
                sub: &user.id,
                aud: client_id,
                exp: now + self.settings.access_ttl,
                iat: now,
                auth_time: family.auth_time.unwrap_or(family.created_at),
                nonce,
                at_hash: crypto::at_hash(&access_token),
                azp: client_id,
                sid: family.op_sid.as_deref(),
            };
            let header = Header::new(keys.id_alg)
                .with_typ("JWT")
                .with_kid(keys.id_kid.clone());
            Some(
                jwt::encode(&header, &id, &keys.id_signer)
                    .map_err(|e| OAuthError::Internal(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(IssuedToken {
            access_token,
            expires_in: self.settings.access_ttl,
            scope: scope.to_string(),
            refresh_token,
            id_token,
        })
    }

    /// Userinfo: the user of a grant's access token that holds `openid`. `Ok(None)`
    /// when the user no longer exists.
    pub async fn userinfo(&self, claims: &AccessClaims) -> Result<Option<UserInfo>, AuthError> {
        let Some(user) = self.store.user_by_id(&claims.sub).await? else {
            return Ok(None);
        };
        let profile = claims.scope.split(' ').any(|t| t == "profile");
        Ok(Some(UserInfo {
            sub: user.id,
            preferred_username: profile.then_some(user.username),
        }))
    }

    /// Whether `claims` are a user's grant to a client that includes `openid`.
    pub fn is_openid_grant(claims: &AccessClaims) -> bool {
        matches!(claims.kind(), Some(TokenKind::UserGrant { .. }))
            && claims.scope.split(' ').any(|t| t == "openid")
    }

    /// Checks an `id_token_hint`: signed by one of the provider's published ID-token
    /// keys, issued by it; its expiry is not held against it.
    pub fn id_token_hint(&self, token: &str) -> Option<IdTokenHint> {
        #[derive(serde::Deserialize)]
        struct Hint {
            aud: String,
            sid: Option<String>,
        }
        let keys = self.keys.current();
        let v = jwt::Validation::new()
            .algorithms(&[keys.id_alg])
            .issuer(self.settings.issuer.clone())
            .allow_missing_exp()
            // An expired hint still names its client and session.
            .leeway(u64::try_from(self.settings.family.absolute).unwrap_or(0))
            .max_size(16 * 1024);
        let hint: Hint = jwt::decode_at(token, &keys.id_published, &v, self.now())
            .ok()?
            .claims;
        Some(IdTokenHint {
            client_id: hint.aud,
            sid: hint.sid,
        })
    }

    /// RP-initiated logout: ends the browser's provider session and every grant
    /// made in it (and in the session the hint names), denying their access tokens;
    /// answers where to send the browser: a post-logout URI registered exactly for
    /// the client, else nowhere.
    pub async fn rp_logout(
        &self,
        session: Option<&super::OpSession>,
        hint: Option<&IdTokenHint>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> Result<LoggedOut, AuthError> {
        let now = self.now();
        let mut sids: Vec<&str> = Vec::new();
        if let Some(s) = session {
            sids.push(&s.sid);
        }
        if let Some(sid) = hint.and_then(|h| h.sid.as_deref())
            && !sids.contains(&sid)
        {
            sids.push(sid);
        }
        let mut ended = Vec::new();
        for sid in &sids {
            ended.extend(
                self.store
                    .revoke_op_session_families(sid, now, "rp_logout")
                    .await?,
            );
        }
        self.deny_sessions(&ended, now).await?;
        if let Some(s) = session {
            self.drop_op_session(s).await?;
        }
        if !sids.is_empty() {
            self.metrics.oauth(OAuthOp::ProviderLogout);
            tracing::info!(target: "audit", event = "provider_logout", user_id = session.map_or("", |s| s.user.id.as_str()), grants = ended.len(), "provider session ended by RP-initiated logout");
        }
        // The client: the hint's audience, which client_id (when given) must equal.
        let client = match (hint.map(|h| h.client_id.as_str()), client_id) {
            (Some(a), Some(b)) if a != b => None,
            (Some(a), _) => Some(a),
            (None, b) => b,
        };
        let redirect = match (client, post_logout_redirect_uri) {
            (Some(c), Some(uri)) => match self.store.client_by_id(c).await? {
                Some(client) if client.post_logout_redirect_uris.iter().any(|u| u == uri) => {
                    let mut target = uri.to_string();
                    if let Some(state) = state {
                        let sep = if uri.contains('?') { '&' } else { '?' };
                        target.push(sep);
                        target.push_str(
                            &form_urlencoded::Serializer::new(String::new())
                                .append_pair("state", state)
                                .finish(),
                        );
                    }
                    Some(target)
                }
                _ => None,
            },
            _ => None,
        };
        Ok(LoggedOut { redirect })
    }

    /// The user's consents, by client.
    pub async fn consents(&self, user_id: &str) -> Result<Vec<Consent>, AuthError> {
        Ok(self.store.consents(user_id).await?)
    }

    /// Withdraws the user's consent to a client and ends the user's grants to it;
    /// `NotFound` when there was none.
    pub async fn withdraw_consent(&self, user_id: &str, client_id: &str) -> Result<(), AuthError> {
        let now = self.now();
        let Some(ended) = self.store.withdraw_consent(user_id, client_id, now).await? else {
            return Err(AuthError::NotFound);
        };
        self.deny_sessions(&ended, now).await?;
        self.metrics.oauth(OAuthOp::ConsentWithdrawn);
        tracing::info!(target: "audit", event = "consent_withdrawn", user_id, client_id, grants = ended.len(), "consent withdrawn; the client's grants ended");
        Ok(())
    }
}
