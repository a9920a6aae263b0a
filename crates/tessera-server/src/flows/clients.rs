//! OAuth clients: registered, listed and removed by `tessera client`, beside a
//! running server or not (the server reads a client from the store on every use, so
//! a change is seen at once).

use zeroize::Zeroizing;

use crate::crypto;
use crate::domain::{ClientId, GrantType, RedirectUri, Scope};
use crate::redact::debug_redacted;
use crate::store::{Client, Store, StoreError};

/// A client to register, as the command line gives it (unchecked).
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// The client id.
    pub id: String,
    /// Confidential (a secret is generated) or public.
    pub confidential: bool,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes: each a scope token, or several separated by single spaces.
    pub scopes: Vec<String>,
    /// Grant types; none: the defaults (`authorization_code`, `refresh_token`, and
    /// `client_credentials` for a confidential client).
    pub grants: Vec<String>,
}

/// A client just registered, with its secret (shown once; only its hash is kept).
pub struct Registered {
    /// The client as stored.
    pub client: Client,
    /// The secret of a confidential client.
    pub secret: Option<Zeroizing<String>>,
}

debug_redacted!(Registered { client; secret });

/// Why a client command failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// A value breaks a rule (exit 2).
    Invalid(String),
    /// The client id is taken.
    Taken,
    /// No such client.
    NotFound,
    /// The store failed.
    Store(StoreError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(m) => f.write_str(m),
            Self::Taken => f.write_str("the client id is taken"),
            Self::NotFound => f.write_str("no such client"),
            Self::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::Taken,
            other => Self::Store(other),
        }
    }
}

/// Checks `new` and registers it; a confidential client gets a secret of 256
/// random bits, stored as its SHA-256.
pub async fn add_client(
    store: &dyn Store,
    now: i64,
    new: NewClient,
) -> Result<Registered, ClientError> {
    let invalid =
        |what: &str, e: crate::domain::InvalidInput| ClientError::Invalid(format!("{what}: {e}"));
    let id = ClientId::parse(&new.id).map_err(|e| invalid("client id", e))?;
    let mut redirect_uris: Vec<String> = Vec::new();
    for u in &new.redirect_uris {
        let u = RedirectUri::parse(u).map_err(|e| invalid(&format!("redirect URI {u:?}"), e))?;
        if !redirect_uris.iter().any(|r| r == u.as_str()) {
            redirect_uris.push(u.as_str().to_string());
        }
    }
    let mut post_logout: Vec<String> = Vec::new();
    for u in &new.post_logout_redirect_uris {
        let u = RedirectUri::parse(u)
            .map_err(|e| invalid(&format!("post-logout redirect URI {u:?}"), e))?;
        if !post_logout.iter().any(|r| r == u.as_str()) {
            post_logout.push(u.as_str().to_string());
        }
    }
    let scope = if new.scopes.is_empty() {
        Scope::default()
    } else {
        Scope::from_tokens(new.scopes.iter().flat_map(|s| s.split(' ')))
            .map_err(|e| invalid("scope", e))?
    };
    let grants: Vec<GrantType> = if new.grants.is_empty() {
        let mut g = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
        if new.confidential {
            g.push(GrantType::ClientCredentials);
        }
        g
    } else {
        let mut g: Vec<GrantType> = Vec::new();
        for raw in &new.grants {
            let grant = GrantType::parse(raw).map_err(|e| invalid(&format!("grant {raw:?}"), e))?;
            if !g.contains(&grant) {
                g.push(grant);
            }
        }
        g
    };
    if !new.confidential && grants.contains(&GrantType::ClientCredentials) {
        return Err(ClientError::Invalid(
            "a public client cannot have the client_credentials grant (RFC 6749 §4.4: \
             confidential clients only); add --secret"
                .into(),
        ));
    }
    if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(ClientError::Invalid(
            "a client with the authorization_code grant needs at least one --redirect-uri \
             (a client that only acts for itself: --grant client_credentials)"
                .into(),
        ));
    }
    let secret = if new.confidential {
        Some(Zeroizing::new(
            crypto::random_token().map_err(|e| ClientError::Invalid(e.to_string()))?,
        ))
    } else {
        None
    };
    let client = Client {
        id: id.as_str().to_string(),
        secret_hash: secret.as_ref().map(|s| crypto::hash_secret(s)),
        redirect_uris,
        post_logout_redirect_uris: post_logout,
        grants: grants.iter().map(|g| g.as_str().to_string()).collect(),
        scopes: scope.tokens().map(str::to_string).collect(),
        created_at: now,
    };
    store.create_client(&client).await?;
    tracing::info!(target: "audit", event = "client_created", client_id = %client.id, confidential = new.confidential, "OAuth client registered");
    Ok(Registered { client, secret })
}

/// Every client, by id.
pub async fn list_clients(store: &dyn Store) -> Result<Vec<Client>, ClientError> {
    Ok(store.clients().await?)
}

/// Removes a client and its refresh families (its users' grants end).
pub async fn remove_client(store: &dyn Store, id: &str) -> Result<(), ClientError> {
    if ClientId::parse(id).is_err() || !store.delete_client(id).await? {
        return Err(ClientError::NotFound);
    }
    tracing::info!(target: "audit", event = "client_removed", client_id = %id, "OAuth client removed");
    Ok(())
}
