//! Signing keys: kept in the store with their private parts sealed under the
//! key-encryption key (KEK); published: every previous key that may still have live
//! tokens, the current one and the next one.
//!
//! Rotation publishes the next key before it signs anything: a key is generated as
//! `next` (in every JWKS, verifying nothing yet), and `tessera key rotate` makes it
//! `current`, the old current `previous` (published until every token it signed has
//! expired, however many rotations come before that), and generates a new `next`.
//!
//! There are two such sets, one per [`KeyPurpose`]: access tokens (`signing_alg`,
//! ES256 by default) and OpenID Connect ID tokens (`id_token_signing_alg`, RS256 by
//! default, as OpenID Connect requires). Both are published in the one JWKS and
//! rotated together; the access-token verifier trusts the access keys only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use secrecy::ExposeSecret;
use tessera_jose::{Algorithm, Curve, Jwk, JwkSet};

use crate::config::{Config, Database};
use crate::crypto::SealKey;
use crate::store::{KeyPurpose, KeyState, Store, StoreError, StoredKey};

/// A key-ring error.
#[derive(Debug)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl From<StoreError> for KeyError {
    fn from(e: StoreError) -> Self {
        Self(e.to_string())
    }
}

impl From<tessera_jose::Error> for KeyError {
    fn from(e: tessera_jose::Error) -> Self {
        Self(e.to_string())
    }
}

/// The keys in force: the signers and the published sets.
#[derive(Debug)]
pub struct Keys {
    /// The current private key of access tokens.
    pub signer: Jwk,
    /// Its algorithm.
    pub alg: Algorithm,
    /// Its kid.
    pub kid: String,
    /// Every published public key of access tokens (previous, current, next): what
    /// the access-token verifier trusts.
    pub published: JwkSet,
    /// The current private key of ID tokens.
    pub id_signer: Jwk,
    /// Its algorithm.
    pub id_alg: Algorithm,
    /// Its kid.
    pub id_kid: String,
    /// Every published public key of ID tokens (what an `id_token_hint` is checked
    /// against).
    pub id_published: JwkSet,
    /// Both published sets as one JWKS (access keys first), served at
    /// /.well-known/jwks.json.
    pub jwks_json: Arc<str>,
}

/// The algorithms of new keys, one per purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAlgs {
    /// Access tokens.
    pub access: Algorithm,
    /// ID tokens.
    pub id_token: Algorithm,
}

impl KeyAlgs {
    fn of(self, purpose: KeyPurpose) -> Algorithm {
        match purpose {
            KeyPurpose::IdToken => self.id_token,
            _ => self.access,
        }
    }
}

const PURPOSES: [KeyPurpose; 2] = [KeyPurpose::Access, KeyPurpose::IdToken];

/// The key ring shared by every request; reloaded from the store.
#[derive(Debug)]
pub struct KeyRing {
    keys: RwLock<Arc<Keys>>,
    kek: SealKey,
}

impl KeyRing {
    /// Loads the keys, creating current and next ones of each purpose the store has
    /// none of.
    pub async fn load(
        store: &dyn Store,
        kek: SealKey,
        algs: KeyAlgs,
        now: i64,
    ) -> Result<Self, KeyError> {
        for purpose in PURPOSES {
            ensure_keys(store, &kek, purpose, algs.of(purpose), now).await?;
        }
        let keys = read_keys(store, &kek, now).await?;
        Ok(Self {
            keys: RwLock::new(Arc::new(keys)),
            kek,
        })
    }

    /// The keys in force.
    pub fn current(&self) -> Arc<Keys> {
        // A poisoned lock only means a writer panicked between two whole values.
        match self.keys.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Re-reads the keys (a rotation by the CLI, or the end of a previous key's
    /// publication).
    pub async fn reload(&self, store: &dyn Store, now: i64) -> Result<(), KeyError> {
        store.retire_keys(now).await?;
        let keys = Arc::new(read_keys(store, &self.kek, now).await?);
        match self.keys.write() {
            Ok(mut g) => *g = keys,
            Err(p) => *p.into_inner() = keys,
        }
        Ok(())
    }

    /// The key-encryption key.
    pub fn kek(&self) -> &SealKey {
        &self.kek
    }
}

/// Rotates each purpose's keys: next → current, current → previous (published
/// until `now + publish_for`), and a new next. Earlier previous keys stay published
/// until their own time is up.
pub async fn rotate(
    store: &dyn Store,
    kek: &SealKey,
    algs: KeyAlgs,
    now: i64,
    publish_for: i64,
) -> Result<(), KeyError> {
    for purpose in PURPOSES {
        let alg = algs.of(purpose);
        ensure_keys(store, kek, purpose, alg, now).await?;
        let next = new_key(kek, purpose, alg, KeyState::Next, now)?;
        store.rotate_keys(&next, now, now + publish_for).await?;
        tracing::info!(target: "audit", event = "key_rotated", purpose = purpose.as_str(), next_kid = %next.kid, "signing keys rotated");
    }
    Ok(())
}

/// What kind of key signs with `alg`; an error for an algorithm that cannot sign
/// published tokens. A check of the name alone: nothing is generated.
pub fn signing_key_kind(alg: Algorithm) -> Result<SigningKeyKind, KeyError> {
    Ok(match alg.name() {
        "ES256" => SigningKeyKind::Curve(Curve::P256),
        "ES384" => SigningKeyKind::Curve(Curve::P384),
        "ES512" => SigningKeyKind::Curve(Curve::P521),
        "EdDSA" | "Ed25519" => SigningKeyKind::Curve(Curve::Ed25519),
        n if n.starts_with("RS") || n.starts_with("PS") => SigningKeyKind::Rsa2048,
        name => {
            return Err(KeyError(format!(
                "{name} cannot sign published tokens (a JWKS holds public keys only); use ES256, ES384, ES512, EdDSA, RS* or PS*"
            )));
        }
    })
}

/// The key a signing algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigningKeyKind {
    /// An EC or OKP key on this curve.
    Curve(Curve),
    /// A 2048-bit RSA key.
    Rsa2048,
}

/// Generates a private signing key for `alg`.
pub fn generate(alg: Algorithm) -> Result<Jwk, KeyError> {
    let key = match signing_key_kind(alg)? {
        SigningKeyKind::Curve(crv) => Jwk::generate_curve(crv)?,
        SigningKeyKind::Rsa2048 => Jwk::generate_rsa(2048)?,
    };
    let kid = key.thumbprint();
    Ok(key.with_kid(kid).with_alg(alg.name()).with_use("sig"))
}

/// The key-encryption key: `key_encryption_key` from the config or environment,
/// else the file `key_encryption_key_file`, else (SQLite only) `DATABASE.key` beside
/// the database. A SQLite deployment gets the file created (with a warning) when it
/// is absent; with PostgreSQL every node must hold the same key, so a missing one is
/// an error rather than a new key that only this node would know.
pub fn load_kek(config: &Config) -> Result<SealKey, KeyError> {
    if let Some(text) = &config.key_encryption_key {
        return SealKey::from_base64(text.expose_secret())
            .ok_or_else(|| KeyError("key_encryption_key must be 32 bytes in base64url".into()));
    }
    let database = config.database().map_err(|e| KeyError(e.to_string()))?;
    let (path, create) = match (&config.key_encryption_key_file, &database) {
        (Some(p), Database::Sqlite(_)) => (PathBuf::from(p), true),
        (Some(p), _) => (PathBuf::from(p), false),
        (None, Database::Sqlite(db_path)) => {
            let mut p = db_path.as_os_str().to_owned();
            p.push(".key");
            (PathBuf::from(p), true)
        }
        (None, _) => {
            return Err(KeyError(
                "with a PostgreSQL database, set key_encryption_key or key_encryption_key_file"
                    .into(),
            ));
        }
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => SealKey::from_base64(&text).ok_or_else(|| {
            KeyError(format!(
                "{} does not hold 32 bytes in base64url",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let key = SealKey::generate().map_err(|e| KeyError(e.to_string()))?;
            write_private(&path, key.to_base64().as_bytes())
                .map_err(|e| KeyError(format!("cannot create {}: {e}", path.display())))?;
            tracing::warn!(
                path = %path.display(),
                "created a key-encryption key beside the database; keep it secret and back it up, \
                 or set TESSERA_KEY_ENCRYPTION_KEY"
            );
            Ok(key)
        }
        Err(e) => Err(KeyError(format!("cannot read {}: {e}", path.display()))),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

async fn ensure_keys(
    store: &dyn Store,
    kek: &SealKey,
    purpose: KeyPurpose,
    alg: Algorithm,
    now: i64,
) -> Result<(), KeyError> {
    let existing = store.signing_keys().await?;
    if existing
        .iter()
        .any(|k| k.state == KeyState::Current && k.purpose == purpose)
    {
        return Ok(());
    }
    let current = new_key(kek, purpose, alg, KeyState::Current, now)?;
    let next = new_key(kek, purpose, alg, KeyState::Next, now)?;
    if store.init_keys(&[current, next]).await? {
        tracing::info!(target: "audit", event = "keys_created", purpose = purpose.as_str(), alg = alg.name(), "created signing keys");
    }
    Ok(())
}

fn new_key(
    kek: &SealKey,
    purpose: KeyPurpose,
    alg: Algorithm,
    state: KeyState,
    now: i64,
) -> Result<StoredKey, KeyError> {
    let jwk = generate(alg)?;
    let kid = jwk.kid().unwrap_or_default().to_string();
    let public = jwk.to_public()?.to_json();
    let private = zeroize::Zeroizing::new(jwk.to_json());
    let sealed = kek
        .seal(private.as_bytes(), kid.as_bytes())
        .map_err(|e| KeyError(e.to_string()))?;
    Ok(StoredKey {
        kid,
        purpose,
        alg: alg.name().to_string(),
        state,
        public_jwk: public,
        private_sealed: sealed,
        created_at: now,
        publish_until: None,
    })
}

async fn read_keys(store: &dyn Store, kek: &SealKey, now: i64) -> Result<Keys, KeyError> {
    let stored = store.signing_keys().await?;
    let mut published = Vec::new();
    let mut id_published = Vec::new();
    let mut signer = None;
    let mut id_signer = None;
    for k in &stored {
        let visible = match k.state {
            KeyState::Next | KeyState::Current => true,
            KeyState::Previous => k.publish_until.is_none_or(|t| t > now),
            _ => false,
        };
        if !visible {
            continue;
        }
        let public = Jwk::from_json(&k.public_jwk)?;
        let id_token = k.purpose == KeyPurpose::IdToken;
        if id_token {
            id_published.push(public);
        } else {
            published.push(public);
        }
        if k.state == KeyState::Current {
            let private = kek.open(&k.private_sealed, k.kid.as_bytes()).map_err(|_| {
                KeyError(format!(
                    "cannot decrypt signing key {}: wrong key-encryption key, or the database was altered",
                    k.kid
                ))
            })?;
            let jwk = Jwk::from_json(&*private)?;
            let alg: Algorithm = k.alg.parse()?;
            let slot = if id_token {
                &mut id_signer
            } else {
                &mut signer
            };
            *slot = Some((jwk, alg, k.kid.clone()));
        }
    }
    let (signer, alg, kid) =
        signer.ok_or_else(|| KeyError("the store has no current signing key".into()))?;
    let (id_signer, id_alg, id_kid) = id_signer
        .ok_or_else(|| KeyError("the store has no current ID-token signing key".into()))?;
    let all = JwkSet::new(published.iter().chain(&id_published).cloned().collect());
    let jwks_json: Arc<str> = all.to_json().into();
    Ok(Keys {
        signer,
        alg,
        kid,
        published: JwkSet::new(published),
        id_signer,
        id_alg,
        id_kid,
        id_published: JwkSet::new(id_published),
        jwks_json,
    })
}
