//! Storage behind a trait: the flows speak this vocabulary, never SQL. One
//! implementation per database ([`sqlite`] for one machine, [`postgres`] for many
//! nodes), one migrations folder per database; [`open`] picks one by the URL.
//!
//! Every operation that must be atomic (rotating a refresh token, creating a family
//! under the session limit, rotating keys) is one method, so each implementation
//! can run it in one transaction.

pub mod postgres;
pub mod sqlite;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::Database;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Opens (creating and migrating) the store `database` names, with the default
/// options.
pub async fn open(database: &Database) -> StoreResult<Arc<dyn Store>> {
    open_with(database, StoreOptions::default()).await
}

/// Opens (creating and migrating) the store `database` names.
pub async fn open_with(database: &Database, options: StoreOptions) -> StoreResult<Arc<dyn Store>> {
    Ok(match database {
        Database::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
        Database::Postgres(url) => {
            Arc::new(PostgresStore::open_with(url, options.max_connections).await?)
        }
    })
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// PostgreSQL: the most connections of this node's pool (SQLite keeps one writer
    /// and a few readers).
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
        }
    }
}

/// A failure of the store.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique value is taken (a username).
    Conflict,
    /// The user is at the session limit and the policy refuses new sessions.
    SessionLimit,
    /// The database failed; the text is for the log, never for a client.
    Backend(String),
    /// The database cannot be reached (connection refused or lost, no connection
    /// free in time): worth retrying later.
    Unavailable(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.to_string()),
            other => Self::Backend(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

impl From<String> for StoreError {
    fn from(e: String) -> Self {
        Self::Backend(e)
    }
}

impl From<&str> for StoreError {
    fn from(e: &str) -> Self {
        Self::Backend(e.to_owned())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conflict => f.write_str("conflict"),
            Self::SessionLimit => f.write_str("session limit reached"),
            Self::Backend(e) => write!(f, "database error: {e}"),
            Self::Unavailable(e) => write!(f, "database unavailable: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id (the `sub` of its tokens).
    pub id: String,
    /// Normalized username.
    pub username: String,
    /// PHC string of the argon2id hash.
    pub password_hash: String,
    /// Roles.
    pub roles: Vec<String>,
    /// When it was created.
    pub created_at: i64,
}

crate::redact::debug_redacted!(User { id, username, roles, created_at; password_hash });

/// A refresh family (a login session, or a user's grant to an OAuth client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Family {
    /// Its id, the `sid` of its access tokens.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// Login time.
    pub created_at: i64,
    /// Last refresh.
    pub last_used_at: i64,
    /// User-Agent at login.
    pub user_agent: Option<String>,
    /// Client address at login.
    pub ip: Option<String>,
    /// The OAuth client the family was granted to; `None` for an `/auth` login.
    pub client_id: Option<String>,
    /// An OAuth grant's scope (space-separated); `None` for an `/auth` login.
    pub scope: Option<String>,
    /// An OAuth grant's `auth_time`: when the user last logged in at the provider.
    pub auth_time: Option<i64>,
    /// An OAuth grant's provider session (the `sid` of its ID tokens): RP-initiated
    /// logout of that session ends the grant.
    pub op_sid: Option<String>,
}

/// An OAuth client as stored. The lists hold what the client was registered with,
/// already checked by [`crate::domain::oauth`]'s types.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    /// The client id.
    pub id: String,
    /// SHA-256 of the secret of a confidential client; `None` for a public client.
    pub secret_hash: Option<Vec<u8>>,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser back to.
    pub post_logout_redirect_uris: Vec<String>,
    /// Grant types (`authorization_code`, `refresh_token`, `client_credentials`).
    pub grants: Vec<String>,
    /// Scope tokens the client may ask for.
    pub scopes: Vec<String>,
    /// When it was registered.
    pub created_at: i64,
}

crate::redact::debug_redacted!(Client { id, redirect_uris, post_logout_redirect_uris, grants, scopes, created_at; secret_hash });

/// A refresh token about to be stored.
#[derive(Debug, Clone)]
pub struct NewRefresh {
    /// SHA-256 of the token.
    pub hash: Vec<u8>,
}

/// How long families live.
#[derive(Debug, Clone, Copy)]
pub struct FamilyPolicy {
    /// Seconds without use after which a family ends.
    pub idle: i64,
    /// Seconds after login after which a family ends.
    pub absolute: i64,
}

/// A limit on concurrent families per user.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimit {
    /// The most live families a user may have.
    pub max: u32,
    /// End the oldest (true) or refuse the new one (false).
    pub evict_oldest: bool,
}

/// A refresh to perform atomically.
#[derive(Debug, Clone)]
pub struct RotateRequest {
    /// Hash of the presented token.
    pub presented: Vec<u8>,
    /// The successor, should the presented token be fresh.
    pub successor: NewRefresh,
    /// The successor sealed under a key only the presented token derives.
    pub successor_sealed: Vec<u8>,
    /// Now.
    pub now: i64,
    /// A spent token presented within this many seconds answers its successor again.
    pub reuse_interval: i64,
    /// Family lifetimes.
    pub policy: FamilyPolicy,
    /// Whose token it must be: `None` for an `/auth` family, `Some(client)` for a
    /// grant to that client. A token of another kind is [`Rotation::Unknown`] and is
    /// neither spent nor taken for a reuse.
    pub client_id: Option<String>,
}

/// An authorization code (RFC 6749 §4.1), as stored: by its hash, with what the
/// authorization request bound it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    /// SHA-256 of the code.
    pub hash: Vec<u8>,
    /// The client it was issued to.
    pub client_id: String,
    /// The user who granted it.
    pub user_id: String,
    /// The request's `redirect_uri`, which the token request must repeat.
    pub redirect_uri: String,
    /// The scope granted (space-separated).
    pub scope: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The request's `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// When the user logged in at the provider.
    pub auth_time: i64,
    /// The provider session it was issued in.
    pub op_sid: String,
    /// Issue time.
    pub created_at: i64,
    /// It may be redeemed before this time.
    pub expires_at: i64,
}

/// An authorization code as stored, with what its redemption issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    /// The code.
    pub code: AuthCode,
    /// When it was redeemed; `None` while it is unspent.
    pub redeemed_at: Option<i64>,
    /// The refresh family its redemption created.
    pub family_id: Option<String>,
    /// The `jti` of the access token its redemption issued.
    pub access_jti: Option<String>,
}

/// A user's consent to a client, as `/auth/consents` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The client.
    pub client_id: String,
    /// The scope tokens consented to, in bytewise order.
    pub scopes: Vec<String>,
    /// When consent was first given.
    pub granted_at: i64,
}

/// What a refresh did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Rotation {
    /// The token was fresh: it is now spent and the successor stored.
    Rotated {
        /// The family (after the update).
        family: Family,
        /// Its user.
        user: User,
    },
    /// The token was spent within the reuse interval: here is its successor, sealed.
    Replayed {
        /// The family.
        family: Family,
        /// Its user.
        user: User,
        /// The successor, as sealed when the token was spent.
        successor_sealed: Vec<u8>,
    },
    /// The token was spent before the reuse interval: the family is now revoked.
    ReuseDetected {
        /// The revoked family.
        family_id: String,
        /// Its user.
        user_id: String,
    },
    /// The token's family is revoked or has expired.
    Dead,
    /// No such token.
    Unknown,
}

/// A denylist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyEntry {
    /// What is denied.
    pub kind: DenyKind,
    /// The jti, the sid, or the user id.
    pub value: String,
    /// For `User`: tokens issued before this time are denied.
    pub cutoff: i64,
    /// The entry may be forgotten after this time (every token it denies has expired).
    pub expires_at: i64,
}

/// A denylist entry as stored, with its place in the order of revocations: `seq`
/// grows with every entry written (a new one, or a longer expiry of one already
/// there), and entries become visible to readers in `seq` order, so a reader that
/// has seen everything up to `seq` = N asks for what came after N and misses
/// nothing. It is the cursor of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The cursor.
    pub seq: i64,
    /// The entry.
    pub entry: DenyEntry,
}

/// Kinds of denylist entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyKind {
    /// One access token, by `jti`.
    Jti,
    /// Every access token of a session, by `sid`.
    Sid,
    /// Every access token of a user issued before a cutoff.
    User,
}

impl DenyKind {
    /// The kind's name: `jti`, `sid` or `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jti => "jti",
            Self::Sid => "sid",
            Self::User => "user",
        }
    }

    /// The kind of a name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jti" => Some(Self::Jti),
            "sid" => Some(Self::Sid),
            "user" => Some(Self::User),
            _ => None,
        }
    }
}

/// How a denylist entry is stored: its kind, and its value (for `User`, the user id
/// and the cutoff, space-separated: a later logout-all is another entry).
fn stored_deny_value(e: &DenyEntry) -> String {
    match e.kind {
        DenyKind::User => format!("{} {}", e.value, e.cutoff),
        _ => e.value.clone(),
    }
}

/// A stored denylist row read back; `None` for a row this version cannot read.
fn revoked_from_row(seq: i64, kind: &str, value: String, expires_at: i64) -> Option<Revoked> {
    let kind = DenyKind::parse(kind)?;
    let (value, cutoff) = match kind {
        DenyKind::User => {
            let (user, cutoff) = value.rsplit_once(' ')?;
            (user.to_string(), cutoff.parse().ok()?)
        }
        _ => (value, 0),
    };
    Some(Revoked {
        seq,
        entry: DenyEntry {
            kind,
            value,
            cutoff,
            expires_at,
        },
    })
}

/// The state of a signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing.
    Current,
    /// Published until `publish_until`, no longer signing.
    Previous,
    /// Neither published nor signing.
    Retired,
}

impl KeyState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(Self::Next),
            "current" => Some(Self::Current),
            "previous" => Some(Self::Previous),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

/// What a signing key signs. Each purpose has its own next, current and previous
/// keys, rotated together but chosen apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyPurpose {
    /// Access tokens (`signing_alg`).
    Access,
    /// OpenID Connect ID tokens (`id_token_signing_alg`).
    IdToken,
}

impl KeyPurpose {
    /// Its name in the store: `access` or `id_token`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::IdToken => "id_token",
        }
    }

    /// The purpose of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(Self::Access),
            "id_token" => Some(Self::IdToken),
            _ => None,
        }
    }
}

/// A signing key as stored.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// Key id.
    pub kid: String,
    /// What it signs.
    pub purpose: KeyPurpose,
    /// JWS algorithm name.
    pub alg: String,
    /// State.
    pub state: KeyState,
    /// The public JWK, JSON.
    pub public_jwk: String,
    /// The private JWK, sealed.
    pub private_sealed: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
    /// For `Previous`: published until then.
    pub publish_until: Option<i64>,
}

/// A stateful-mode session.
#[derive(Debug, Clone)]
pub struct ServerSession {
    /// SHA-256 of the session id.
    pub id_hash: Vec<u8>,
    /// Its user.
    pub user_id: String,
    /// SHA-256 of its CSRF token.
    pub csrf_hash: Vec<u8>,
    /// Creation time.
    pub created_at: i64,
    /// Last use.
    pub last_used_at: i64,
    /// End (moved forward on use).
    pub expires_at: i64,
}

/// Where stateful-mode sessions live: the database on one node ([`Store`] is one),
/// Redis when nodes share it ([`crate::cache::RedisHot`]). Every implementation
/// passes the same contract suite (`tests/sessions.rs`).
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a stateful-mode session.
    async fn create_server_session(&self, s: &ServerSession) -> StoreResult<()>;
    /// The session with this id hash, if it is live at `now`. A use a minute or more
    /// after the last recorded one moves `last_used_at` to `now` and the end to `now
    /// + ttl` (so that reads stay reads); the answer is the session after that.
    async fn touch_server_session(
        &self,
        id_hash: &[u8],
        now: i64,
        ttl: i64,
    ) -> StoreResult<Option<ServerSession>>;
    /// Ends a stateful-mode session; false when there was none.
    async fn delete_server_session(&self, id_hash: &[u8]) -> StoreResult<bool>;
}

/// How often, at most, a session's use is written: see
/// [`SessionStore::touch_server_session`].
pub const SESSION_TOUCH_EVERY: i64 = 60;

/// Everything the server keeps.
#[async_trait]
pub trait Store: SessionStore {
    /// Whether the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Closes the connections, waiting for those in use to be returned; every
    /// later call fails with [`StoreError::Unavailable`].
    async fn close(&self);

    /// Adds a user; `Conflict` when the username is taken.
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    /// The user with this normalized username.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// The user with this id.
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;

    /// Starts a family with its first refresh token, honouring `limit` atomically.
    /// Returns the ids of families ended to make room (policy evict-oldest).
    async fn create_family(
        &self,
        family: &Family,
        first: &NewRefresh,
        policy: FamilyPolicy,
        limit: Option<SessionLimit>,
    ) -> StoreResult<Vec<String>>;
    /// Spends a refresh token, atomically: see [`Rotation`].
    async fn rotate_refresh(&self, req: &RotateRequest) -> StoreResult<Rotation>;
    /// The live family of a refresh token, without spending it.
    async fn family_of_refresh(
        &self,
        hash: &[u8],
        now: i64,
        policy: FamilyPolicy,
    ) -> StoreResult<Option<Family>>;
    /// Ends a family (of `user_id`, when given); false when there was no such live family.
    async fn revoke_family(
        &self,
        family_id: &str,
        user_id: Option<&str>,
        now: i64,
        reason: &str,
    ) -> StoreResult<bool>;
    /// Ends every family of a user; returns their ids.
    async fn revoke_user_families(
        &self,
        user_id: &str,
        now: i64,
        reason: &str,
    ) -> StoreResult<Vec<String>>;
    /// The live family of a refresh token that is not spent (a spent one is no
    /// longer a token, whatever its reuse interval answers).
    async fn unspent_refresh_family(
        &self,
        hash: &[u8],
        now: i64,
        policy: FamilyPolicy,
    ) -> StoreResult<Option<Family>>;
    /// The user's live families, oldest first.
    async fn live_families(
        &self,
        user_id: &str,
        now: i64,
        policy: FamilyPolicy,
    ) -> StoreResult<Vec<Family>>;

    /// Registers an OAuth client; `Conflict` when the id is taken.
    async fn create_client(&self, client: &Client) -> StoreResult<()>;
    /// The client with this id.
    async fn client_by_id(&self, id: &str) -> StoreResult<Option<Client>>;
    /// Every client, by id (bytewise order).
    async fn clients(&self) -> StoreResult<Vec<Client>>;
    /// Removes a client, and with it its refresh families; false when there was none.
    async fn delete_client(&self, id: &str) -> StoreResult<bool>;

    /// Stores an authorization code.
    async fn create_code(&self, code: &AuthCode) -> StoreResult<()>;
    /// The code with this hash, spent or not (a spent one tells what its redemption
    /// issued, for a replay to revoke).
    async fn code(&self, hash: &[u8]) -> StoreResult<Option<StoredCode>>;
    /// Redeems a code, exactly once across nodes: one conditional UPDATE of an
    /// unspent code unexpired at `now`, recording the family and access token
    /// issued with it. False when it was spent (by this or a concurrent call),
    /// expired or unknown.
    async fn redeem_code(
        &self,
        hash: &[u8],
        now: i64,
        family_id: &str,
        access_jti: &str,
    ) -> StoreResult<bool>;

    /// The scope tokens `user_id` consented to for `client_id`.
    async fn consented_scopes(&self, user_id: &str, client_id: &str) -> StoreResult<Vec<String>>;
    /// Records consent to these scope tokens (adding to any given before).
    async fn grant_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        now: i64,
    ) -> StoreResult<()>;
    /// The user's consents, by client id (bytewise order).
    async fn consents(&self, user_id: &str) -> StoreResult<Vec<Consent>>;
    /// Withdraws the user's consent to a client and, in the same transaction, ends
    /// the user's grants (refresh families) to that client. `None` when there was no
    /// consent; else the ids of the families ended.
    async fn withdraw_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<Vec<String>>>;
    /// Ends every live grant (refresh family) made in the provider session `op_sid`
    /// (RP-initiated logout); returns their ids.
    async fn revoke_op_session_families(
        &self,
        op_sid: &str,
        now: i64,
        reason: &str,
    ) -> StoreResult<Vec<String>>;

    /// Persists denylist entries, in one transaction: an entry already there keeps
    /// the later expiry. Returns the entries written (new, or extended), each with
    /// its new cursor; an entry that changed nothing is not returned.
    async fn deny(&self, entries: &[DenyEntry]) -> StoreResult<Vec<Revoked>>;
    /// At most `limit` entries in force at `now` whose cursor is past `after`, in
    /// cursor order (an index range: the cost is the number of entries returned).
    async fn revocations_since(
        &self,
        after: i64,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<Revoked>>;

    /// Every signing key.
    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>>;
    /// Stores `keys` (all of one purpose, that of the first) only if there are no
    /// current or next signing keys of that purpose yet; true when stored. Nodes
    /// started at once agree on one set per purpose.
    async fn init_keys(&self, keys: &[StoredKey]) -> StoreResult<bool>;
    /// Rotates the keys of `new_next`'s purpose atomically: current → previous (published until `previous_until`),
    /// next → current, and `new_next` in. Earlier previous keys stay published until
    /// their own time is up (a second rotation within one token lifetime must not
    /// take a key off the JWKS while tokens it signed are alive); those whose time
    /// is up at `now` are retired.
    async fn rotate_keys(
        &self,
        new_next: &StoredKey,
        now: i64,
        previous_until: i64,
    ) -> StoreResult<()>;
    /// Retires previous keys whose publication has ended.
    async fn retire_keys(&self, now: i64) -> StoreResult<()>;

    /// Deletes one bounded batch of dead data: at most `batch` families of each way a
    /// family dies (revoked more than [`REVOKED_RETENTION`] ago, idle, past its
    /// absolute lifetime), with their refresh tokens; at most `batch` expired
    /// denylist entries and stateful sessions, and authorization codes expired more
    /// than [`CODE_RETENTION`] ago. Each part is its own short
    /// transaction, so requests interleave with pruning. A caller repeats while
    /// [`Pruned::full`] says a batch was full.
    async fn prune(&self, now: i64, policy: FamilyPolicy, batch: u32) -> StoreResult<Pruned>;
}

/// How long an authorization code is kept past its expiry, seconds: a replay within
/// it still finds what the code's redemption issued, and revokes it.
pub const CODE_RETENTION: i64 = 3600;

/// How long a revoked family is kept (for the record) before it is pruned, seconds.
/// A token of a revoked family is refused whether or not its family is still kept.
pub const REVOKED_RETENTION: i64 = 3600;

/// What one [`Store::prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Refresh families (their tokens went with them).
    pub families: u64,
    /// Denylist entries.
    pub denylist: u64,
    /// Stateful sessions.
    pub sessions: u64,
    /// Authorization codes.
    pub codes: u64,
    /// Whether some part filled its batch (more may be left).
    pub full: bool,
}

impl Pruned {
    /// What one prune deleted of each part, each part at most `batch` rows: families
    /// revoked, idle and past their absolute lifetime, denylist entries, sessions.
    pub fn of_parts(
        batch: u32,
        families: [u64; 3],
        denylist: u64,
        sessions: u64,
        codes: u64,
    ) -> Self {
        let batch = u64::from(batch);
        let mut parts = families.into_iter().chain([denylist, sessions, codes]);
        Self {
            families: families.iter().sum(),
            denylist,
            sessions,
            codes,
            full: parts.any(|n| n >= batch),
        }
    }
}
