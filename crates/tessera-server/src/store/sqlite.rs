//! The SQLite store: WAL mode, one writer connection (SQLite admits one writer at a
//! time; queuing writers in the pool instead of in SQLite's busy loop keeps latency
//! flat), several readers, and every multi-statement change in one transaction.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};

use super::{
    AuthCode, CODE_RETENTION, Client, Consent, DenyEntry, Family, FamilyPolicy, KeyPurpose,
    KeyState, NewRefresh, Pruned, REVOKED_RETENTION, Revoked, RotateRequest, Rotation,
    SESSION_TOUCH_EVERY, ServerSession, SessionLimit, SessionStore, Store, StoreError, StoreResult,
    StoredCode, StoredKey, User, revoked_from_row, stored_deny_value,
};

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_rotation_trigger.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_index_lookups.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_denylist_cursor.sql"),
    ),
    (
        5,
        include_str!("../../migrations/sqlite/0005_oauth_clients.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_id_token_keys.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_oidc_grants.sql"),
    ),
];

/// The SQLite implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if absent) the database file at `path` and migrates it.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(backend)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // A page cache that holds the working set of a store with many sessions
            // (the default is 2 MiB): per connection, an upper bound, not an allocation.
            .pragma("cache_size", "-65536");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await
            .map_err(backend)?;
        let store_writer = writer.clone();
        migrate(&store_writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await
            .map_err(backend)?;
        Ok(Self { writer, reader })
    }

    /// SQLite's plan (`EXPLAIN QUERY PLAN`) for every statement of the request paths
    /// and of pruning, by name: what a test holds to index lookups.
    #[doc(hidden)]
    pub async fn query_plans(&self) -> StoreResult<Vec<(&'static str, Vec<String>)>> {
        let mut out = Vec::with_capacity(EXPLAINED.len());
        for (name, sql) in EXPLAINED {
            let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(&self.writer)
                .await
                .map_err(backend)?;
            let mut plan = Vec::with_capacity(rows.len());
            for row in rows {
                plan.push(row.try_get::<String, _>("detail").map_err(backend)?);
            }
            out.push((*name, plan));
        }
        Ok(out)
    }

    /// Closes the pools (waits for connections to be returned).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
    sqlx::query("CREATE TABLE IF NOT EXISTS tessera_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM tessera_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
    for (version, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        // Several statements, as sqlx's own migrator runs them (its `raw_sql` future
        // is not `Send` for every lifetime, so a spawned open would not compile).
        sqlx::Executor::execute(&mut *tx, *sql)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO tessera_migrations (version, applied_at) VALUES (?, strftime('%s','now'))",
        )
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

fn backend(e: impl Into<StoreError>) -> StoreError {
    e.into()
}

/// The condition under which a family (aliased `f`) is live; binds now-idle, now-absolute.
macro_rules! live {
    () => {
        "f.revoked_at IS NULL AND f.last_used_at > ? AND f.created_at > ?"
    };
}

// The statements of the request paths. Each is an index lookup whatever the store
// holds; `query_plans` shows SQLite's plan for each, and a test holds them to it.
const Q_USER_BY_NAME: &str =
    "SELECT id, username, password_hash, roles, created_at FROM users WHERE username = ?";
const Q_USER_BY_ID: &str =
    "SELECT id, username, password_hash, roles, created_at FROM users WHERE id = ?";
const Q_LIVE_FAMILY_IDS: &str = concat!(
    "SELECT f.id FROM refresh_families f WHERE f.user_id = ? AND ",
    live!(),
    " ORDER BY f.created_at, f.rowid"
);
const Q_LIVE_FAMILIES: &str = concat!(
    "SELECT f.id, f.user_id, f.created_at, f.last_used_at, f.user_agent, f.ip, f.client_id, f.scope, f.auth_time, f.op_sid FROM refresh_families f \
     WHERE f.user_id = ? AND ",
    live!(),
    " ORDER BY f.created_at, f.rowid"
);
/// The arbiter of a rotation: the family is looked up by its key (a correlated
/// EXISTS), never by listing the live families.
const Q_ROTATE: &str = concat!(
    "UPDATE refresh_tokens SET used_at = ?, successor_sealed = ?, successor_hash = ? \
     WHERE hash = ? AND used_at IS NULL AND EXISTS \
     (SELECT 1 FROM refresh_families f WHERE f.id = refresh_tokens.family_id AND ",
    live!(),
    " AND f.client_id IS ?) RETURNING family_id"
);
const Q_TOKEN_AND_FAMILY: &str = "SELECT t.family_id, t.used_at, t.successor_sealed, f.user_id, f.revoked_at, f.last_used_at, f.created_at, f.client_id \
     FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = ?";
const Q_FAMILY_AND_USER: &str = "SELECT f.id, f.user_id, f.created_at, f.last_used_at, f.user_agent, f.ip, f.client_id, f.scope, f.auth_time, f.op_sid, \
     u.username, u.password_hash, u.roles, u.created_at AS user_created_at \
     FROM refresh_families f JOIN users u ON u.id = f.user_id WHERE f.id = ?";
const Q_FAMILY_OF_REFRESH: &str = concat!(
    "SELECT f.id, f.user_id, f.created_at, f.last_used_at, f.user_agent, f.ip, f.client_id, f.scope, f.auth_time, f.op_sid \
     FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = ? AND ",
    live!()
);
const Q_UNSPENT_FAMILY: &str = concat!(
    "SELECT f.id, f.user_id, f.created_at, f.last_used_at, f.user_agent, f.ip, f.client_id, f.scope, f.auth_time, f.op_sid \
     FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
     WHERE t.hash = ? AND t.used_at IS NULL AND ",
    live!()
);
const CLIENT_COLS: &str =
    "id, secret_hash, redirect_uris, post_logout_redirect_uris, grants, scopes, created_at";
const Q_CLIENT_BY_ID: &str = "SELECT id, secret_hash, redirect_uris, post_logout_redirect_uris, grants, scopes, created_at \
     FROM oauth_clients WHERE id = ?";
const Q_REVOKE_FAMILY: &str = "UPDATE refresh_families SET revoked_at = ?, revoke_reason = ? \
     WHERE id = ? AND revoked_at IS NULL AND (? IS NULL OR user_id = ?)";
const Q_REVOKE_USER_FAMILIES: &str = "UPDATE refresh_families SET revoked_at = ?, revoke_reason = ? \
     WHERE user_id = ? AND revoked_at IS NULL RETURNING id";
const Q_REUSE_REVOKE: &str =
    "UPDATE refresh_families SET revoked_at = ?, revoke_reason = 'refresh_reuse' WHERE id = ?";
// An entry is written under a new seq only when it is new or extends the one there:
// the shorter one is deleted, then the insert does nothing if a longer one stayed.
const Q_DENY_SHORTER: &str = "DELETE FROM denylist WHERE kind = ? AND value = ? AND expires_at < ?";
const Q_DENY: &str = "INSERT INTO denylist (kind, value, expires_at) VALUES (?, ?, ?) \
     ON CONFLICT (kind, value) DO NOTHING RETURNING seq";
const Q_REVOCATIONS_SINCE: &str = "SELECT seq, kind, value, expires_at FROM denylist \
     WHERE seq > ? AND expires_at > ? ORDER BY seq LIMIT ?";
const Q_SESSION: &str = "SELECT id_hash, user_id, csrf_hash, created_at, last_used_at, expires_at \
     FROM server_sessions WHERE id_hash = ? AND expires_at > ?";
const Q_TOUCH_SESSION: &str =
    "UPDATE server_sessions SET last_used_at = ?, expires_at = ? WHERE id_hash = ?";
const Q_DELETE_SESSION: &str = "DELETE FROM server_sessions WHERE id_hash = ?";

// Pruning, one bounded batch per statement, each an index range scan.
const Q_PRUNE_REVOKED: &str = "DELETE FROM refresh_families WHERE id IN \
     (SELECT id FROM refresh_families WHERE revoked_at IS NOT NULL AND revoked_at <= ? LIMIT ?)";
const Q_PRUNE_IDLE: &str = "DELETE FROM refresh_families WHERE id IN \
     (SELECT id FROM refresh_families WHERE last_used_at <= ? LIMIT ?)";
const Q_PRUNE_ABSOLUTE: &str = "DELETE FROM refresh_families WHERE id IN \
     (SELECT id FROM refresh_families WHERE created_at <= ? LIMIT ?)";
const Q_PRUNE_DENYLIST: &str = "DELETE FROM denylist WHERE rowid IN \
     (SELECT rowid FROM denylist WHERE expires_at <= ? LIMIT ?)";
const Q_PRUNE_SESSIONS: &str = "DELETE FROM server_sessions WHERE rowid IN \
     (SELECT rowid FROM server_sessions WHERE expires_at <= ? LIMIT ?)";
const Q_PRUNE_CODES: &str = "DELETE FROM oauth_codes WHERE rowid IN \
     (SELECT rowid FROM oauth_codes WHERE expires_at <= ? LIMIT ?)";

// The authorization code flow.
const CODE_COLS: &str = "hash, client_id, user_id, redirect_uri, scope, code_challenge, nonce, \
     auth_time, op_sid, created_at, expires_at, redeemed_at, family_id, access_jti";
const Q_CODE: &str = "SELECT hash, client_id, user_id, redirect_uri, scope, code_challenge, nonce, \
     auth_time, op_sid, created_at, expires_at, redeemed_at, family_id, access_jti \
     FROM oauth_codes WHERE hash = ?";
/// The arbiter of a redemption: of any number of concurrent ones, exactly one finds
/// the code unspent.
const Q_REDEEM_CODE: &str = "UPDATE oauth_codes SET redeemed_at = ?, family_id = ?, access_jti = ? \
     WHERE hash = ? AND redeemed_at IS NULL AND expires_at > ?";
const Q_CONSENTED: &str = "SELECT scope_token FROM oauth_consents \
     WHERE user_id = ? AND client_id = ? ORDER BY scope_token";
const Q_REVOKE_OP_SESSION: &str = "UPDATE refresh_families SET revoked_at = ?, revoke_reason = ? \
     WHERE op_sid = ? AND revoked_at IS NULL RETURNING id";

/// Every statement `query_plans` explains: the request paths and the pruning.
const EXPLAINED: &[(&str, &str)] = &[
    ("user_by_username", Q_USER_BY_NAME),
    ("user_by_id", Q_USER_BY_ID),
    ("live_family_ids", Q_LIVE_FAMILY_IDS),
    ("live_families", Q_LIVE_FAMILIES),
    ("rotate", Q_ROTATE),
    ("token_and_family", Q_TOKEN_AND_FAMILY),
    ("family_and_user", Q_FAMILY_AND_USER),
    ("family_of_refresh", Q_FAMILY_OF_REFRESH),
    ("unspent_refresh_family", Q_UNSPENT_FAMILY),
    ("client_by_id", Q_CLIENT_BY_ID),
    ("revoke_family", Q_REVOKE_FAMILY),
    ("revoke_user_families", Q_REVOKE_USER_FAMILIES),
    ("reuse_revoke", Q_REUSE_REVOKE),
    ("deny_shorter", Q_DENY_SHORTER),
    ("deny", Q_DENY),
    ("revocations_since", Q_REVOCATIONS_SINCE),
    ("session", Q_SESSION),
    ("touch_session", Q_TOUCH_SESSION),
    ("delete_session", Q_DELETE_SESSION),
    ("prune_revoked", Q_PRUNE_REVOKED),
    ("prune_idle", Q_PRUNE_IDLE),
    ("prune_absolute", Q_PRUNE_ABSOLUTE),
    ("prune_denylist", Q_PRUNE_DENYLIST),
    ("prune_sessions", Q_PRUNE_SESSIONS),
    ("prune_codes", Q_PRUNE_CODES),
    ("code", Q_CODE),
    ("redeem_code", Q_REDEEM_CODE),
    ("consented", Q_CONSENTED),
    ("revoke_op_session", Q_REVOKE_OP_SESSION),
];

fn user_from(row: &sqlx::sqlite::SqliteRow) -> StoreResult<User> {
    let roles: String = row.try_get("roles").map_err(backend)?;
    Ok(User {
        id: row.try_get("id").map_err(backend)?,
        username: row.try_get("username").map_err(backend)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        roles: serde_json::from_str(&roles).map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
    })
}

fn family_from(row: &sqlx::sqlite::SqliteRow) -> StoreResult<Family> {
    Ok(Family {
        id: row.try_get("id").map_err(backend)?,
        user_id: row.try_get("user_id").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        last_used_at: row.try_get("last_used_at").map_err(backend)?,
        user_agent: row.try_get("user_agent").map_err(backend)?,
        ip: row.try_get("ip").map_err(backend)?,
        client_id: row.try_get("client_id").map_err(backend)?,
        scope: row.try_get("scope").map_err(backend)?,
        auth_time: row.try_get("auth_time").map_err(backend)?,
        op_sid: row.try_get("op_sid").map_err(backend)?,
    })
}

fn code_from(row: &sqlx::sqlite::SqliteRow) -> StoreResult<StoredCode> {
    Ok(StoredCode {
        code: AuthCode {
            hash: row.try_get("hash").map_err(backend)?,
            client_id: row.try_get("client_id").map_err(backend)?,
            user_id: row.try_get("user_id").map_err(backend)?,
            redirect_uri: row.try_get("redirect_uri").map_err(backend)?,
            scope: row.try_get("scope").map_err(backend)?,
            code_challenge: row.try_get("code_challenge").map_err(backend)?,
            nonce: row.try_get("nonce").map_err(backend)?,
            auth_time: row.try_get("auth_time").map_err(backend)?,
            op_sid: row.try_get("op_sid").map_err(backend)?,
            created_at: row.try_get("created_at").map_err(backend)?,
            expires_at: row.try_get("expires_at").map_err(backend)?,
        },
        redeemed_at: row.try_get("redeemed_at").map_err(backend)?,
        family_id: row.try_get("family_id").map_err(backend)?,
        access_jti: row.try_get("access_jti").map_err(backend)?,
    })
}

fn client_from(row: &sqlx::sqlite::SqliteRow) -> StoreResult<Client> {
    let list = |name: &str| -> StoreResult<Vec<String>> {
        let text: String = row.try_get(name).map_err(backend)?;
        serde_json::from_str(&text).map_err(backend)
    };
    Ok(Client {
        id: row.try_get("id").map_err(backend)?,
        secret_hash: row.try_get("secret_hash").map_err(backend)?,
        redirect_uris: list("redirect_uris")?,
        post_logout_redirect_uris: list("post_logout_redirect_uris")?,
        grants: list("grants")?,
        scopes: list("scopes")?,
        created_at: row.try_get("created_at").map_err(backend)?,
    })
}

fn key_from(row: &sqlx::sqlite::SqliteRow) -> StoreResult<StoredKey> {
    let state: String = row.try_get("state").map_err(backend)?;
    let purpose: String = row.try_get("purpose").map_err(backend)?;
    Ok(StoredKey {
        kid: row.try_get("kid").map_err(backend)?,
        purpose: KeyPurpose::parse(&purpose)
            .ok_or_else(|| backend(format!("unknown key purpose {purpose}")))?,
        alg: row.try_get("alg").map_err(backend)?,
        state: KeyState::parse(&state)
            .ok_or_else(|| backend(format!("unknown key state {state}")))?,
        public_jwk: row.try_get("public_jwk").map_err(backend)?,
        private_sealed: row.try_get("private_sealed").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        publish_until: row.try_get("publish_until").map_err(backend)?,
    })
}

async fn family_and_user(
    conn: &mut SqliteConnection,
    family_id: &str,
) -> StoreResult<(Family, User)> {
    let row = sqlx::query(Q_FAMILY_AND_USER)
        .bind(family_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(backend)?;
    let family = family_from(&row)?;
    let roles: String = row.try_get("roles").map_err(backend)?;
    let user = User {
        id: family.user_id.clone(),
        username: row.try_get("username").map_err(backend)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        roles: serde_json::from_str(&roles).map_err(backend)?,
        created_at: row.try_get("user_created_at").map_err(backend)?,
    };
    Ok((family, user))
}

async fn insert_key(conn: &mut SqliteConnection, k: &StoredKey) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, state, public_jwk, private_sealed, created_at, publish_until, purpose) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&k.kid)
    .bind(&k.alg)
    .bind(k.state.as_str())
    .bind(&k.public_jwk)
    .bind(&k.private_sealed)
    .bind(k.created_at)
    .bind(k.publish_until)
    .bind(k.purpose.as_str())
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_server_session(&self, s: &ServerSession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO server_sessions (id_hash, user_id, csrf_hash, created_at, last_used_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id_hash)
        .bind(&s.user_id)
        .bind(&s.csrf_hash)
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.expires_at)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn touch_server_session(
        &self,
        id_hash: &[u8],
        now: i64,
        ttl: i64,
    ) -> StoreResult<Option<ServerSession>> {
        let row = sqlx::query(Q_SESSION)
            .bind(id_hash)
            .bind(now)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let mut session = ServerSession {
            id_hash: row.try_get("id_hash").map_err(backend)?,
            user_id: row.try_get("user_id").map_err(backend)?,
            csrf_hash: row.try_get("csrf_hash").map_err(backend)?,
            created_at: row.try_get("created_at").map_err(backend)?,
            last_used_at: row.try_get("last_used_at").map_err(backend)?,
            expires_at: row.try_get("expires_at").map_err(backend)?,
        };
        // Extending the session is a write; do it at most once a minute per session so
        // that reads stay reads.
        if now - session.last_used_at >= SESSION_TOUCH_EVERY {
            sqlx::query(Q_TOUCH_SESSION)
                .bind(now)
                .bind(now + ttl)
                .bind(id_hash)
                .execute(&self.writer)
                .await
                .map_err(backend)?;
            session.last_used_at = now;
            session.expires_at = now + ttl;
        }
        Ok(Some(session))
    }

    async fn delete_server_session(&self, id_hash: &[u8]) -> StoreResult<bool> {
        let r = sqlx::query(Q_DELETE_SESSION)
            .bind(id_hash)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(r.rows_affected() == 1)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let roles = serde_json::to_string(&user.roles).map_err(backend)?;
        let r = sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(roles)
        .bind(user.created_at)
        .execute(&self.writer)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict),
            Err(e) => Err(backend(e)),
        }
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(Q_USER_BY_NAME)
            .bind(username)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(Q_USER_BY_ID)
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn create_family(
        &self,
        family: &Family,
        first: &NewRefresh,
        policy: FamilyPolicy,
        limit: Option<SessionLimit>,
    ) -> StoreResult<Vec<String>> {
        // BEGIN IMMEDIATE takes the write lock first, so counting and inserting cannot
        // interleave with another login of the same user (in this or another process).
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let now = family.created_at;
        let mut evicted = Vec::new();
        if let Some(limit) = limit.filter(|l| l.max > 0) {
            let live: Vec<String> = sqlx::query_scalar(Q_LIVE_FAMILY_IDS)
                .bind(&family.user_id)
                .bind(now - policy.idle)
                .bind(now - policy.absolute)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
            let max = limit.max as usize;
            if live.len() >= max {
                if !limit.evict_oldest {
                    return Err(StoreError::SessionLimit);
                }
                for id in &live[..live.len() + 1 - max] {
                    sqlx::query(
                        "UPDATE refresh_families SET revoked_at = ?, revoke_reason = 'session_limit' WHERE id = ?",
                    )
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                    evicted.push(id.clone());
                }
            }
        }
        sqlx::query(
            "INSERT INTO refresh_families (id, user_id, created_at, last_used_at, user_agent, ip, client_id, scope, auth_time, op_sid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&family.id)
        .bind(&family.user_id)
        .bind(family.created_at)
        .bind(family.last_used_at)
        .bind(&family.user_agent)
        .bind(&family.ip)
        .bind(&family.client_id)
        .bind(&family.scope)
        .bind(family.auth_time)
        .bind(&family.op_sid)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("INSERT INTO refresh_tokens (hash, family_id, created_at) VALUES (?, ?, ?)")
            .bind(&first.hash)
            .bind(&family.id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(evicted)
    }

    async fn rotate_refresh(&self, req: &RotateRequest) -> StoreResult<Rotation> {
        let now = req.now;
        // The conditional UPDATE is the arbiter: of any number of concurrent refreshes
        // of one token, exactly one finds used_at NULL and wins. Its trigger
        // (migration 0002) inserts the successor and touches the family in the same
        // statement, hence atomically.
        let won: Option<String> = sqlx::query_scalar(Q_ROTATE)
            .bind(now)
            .bind(&req.successor_sealed)
            .bind(&req.successor.hash)
            .bind(&req.presented)
            .bind(now - req.policy.idle)
            .bind(now - req.policy.absolute)
            .bind(&req.client_id)
            .fetch_optional(&self.writer)
            .await
            .map_err(backend)?;
        if let Some(family_id) = won {
            // Read on a reader: the single writer does only what must be atomic.
            let mut conn = self.reader.acquire().await.map_err(backend)?;
            let (family, user) = family_and_user(&mut conn, &family_id).await?;
            return Ok(Rotation::Rotated { family, user });
        }
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let row = sqlx::query(Q_TOKEN_AND_FAMILY)
            .bind(&req.presented)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            return Ok(Rotation::Unknown);
        };
        let family_id: String = row.try_get("family_id").map_err(backend)?;
        let client_id: Option<String> = row.try_get("client_id").map_err(backend)?;
        if client_id != req.client_id {
            // Another kind's token (an OAuth grant's at /auth, or another
            // client's): not this caller's to spend nor to take for a reuse.
            return Ok(Rotation::Unknown);
        }
        let revoked: Option<i64> = row.try_get("revoked_at").map_err(backend)?;
        let last_used: i64 = row.try_get("last_used_at").map_err(backend)?;
        let created: i64 = row.try_get("created_at").map_err(backend)?;
        let live = revoked.is_none()
            && last_used > now - req.policy.idle
            && created > now - req.policy.absolute;
        if !live {
            return Ok(Rotation::Dead);
        }
        let used_at: Option<i64> = row.try_get("used_at").map_err(backend)?;
        let sealed: Option<Vec<u8>> = row.try_get("successor_sealed").map_err(backend)?;
        match (used_at, sealed) {
            (Some(used), Some(successor_sealed)) if now - used <= req.reuse_interval => {
                let (family, user) = family_and_user(&mut tx, &family_id).await?;
                tx.commit().await.map_err(backend)?;
                Ok(Rotation::Replayed {
                    family,
                    user,
                    successor_sealed,
                })
            }
            _ => {
                let user_id: String = row.try_get("user_id").map_err(backend)?;
                sqlx::query(Q_REUSE_REVOKE)
                    .bind(now)
                    .bind(&family_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok(Rotation::ReuseDetected { family_id, user_id })
            }
        }
    }

    async fn family_of_refresh(
        &self,
        hash: &[u8],
        now: i64,
        policy: FamilyPolicy,
    ) -> StoreResult<Option<Family>> {
        let row = sqlx::query(Q_FAMILY_OF_REFRESH)
            .bind(hash)
            .bind(now - policy.idle)
            .bind(now - policy.absolute)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(family_from).transpose()
    }

    async fn unspent_refresh_family(
        &self,
        hash: &[u8],
        now: i64,
        policy: FamilyPolicy,
    ) -> StoreResult<Option<Family>> {
        let row = sqlx::query(Q_UNSPENT_FAMILY)
            .bind(hash)
            .bind(now - policy.idle)
            .bind(now - policy.absolute)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(family_from).transpose()
    }

    async fn revoke_family(
        &self,
        family_id: &str,
        user_id: Option<&str>,
        now: i64,
        reason: &str,
    ) -> StoreResult<bool> {
        let r = sqlx::query(Q_REVOKE_FAMILY)
            .bind(now)
            .bind(reason)
            .bind(family_id)
            .bind(user_id)
            .bind(user_id)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(r.rows_affected() == 1)
    }

    async fn revoke_user_families(
        &self,
        user_id: &str,
        now: i64,
        reason: &str,
    ) -> StoreResult<Vec<String>> {
        let ids: Vec<String> = sqlx::query_scalar(Q_REVOKE_USER_FAMILIES)
            .bind(now)
            .bind(reason)
            .bind(user_id)
            .fetch_all(&self.writer)
            .await
            .map_err(backend)?;
        Ok(ids)
    }

    async fn live_families(
        &self,
        user_id: &str,
        now: i64,
        policy: FamilyPolicy,
    ) -> StoreResult<Vec<Family>> {
        let rows = sqlx::query(Q_LIVE_FAMILIES)
            .bind(user_id)
            .bind(now - policy.idle)
            .bind(now - policy.absolute)
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
        rows.iter().map(family_from).collect()
    }

    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        let json = |v: &Vec<String>| serde_json::to_string(v).map_err(backend);
        let r = sqlx::query(&format!(
            "INSERT INTO oauth_clients ({CLIENT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&client.id)
        .bind(&client.secret_hash)
        .bind(json(&client.redirect_uris)?)
        .bind(json(&client.post_logout_redirect_uris)?)
        .bind(json(&client.grants)?)
        .bind(json(&client.scopes)?)
        .bind(client.created_at)
        .execute(&self.writer)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict),
            Err(e) => Err(backend(e)),
        }
    }

    async fn client_by_id(&self, id: &str) -> StoreResult<Option<Client>> {
        let row = sqlx::query(Q_CLIENT_BY_ID)
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(backend)?;
        row.as_ref().map(client_from).transpose()
    }

    async fn clients(&self) -> StoreResult<Vec<Client>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLS} FROM oauth_clients ORDER BY id"
        ))
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter().map(client_from).collect()
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM oauth_clients WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(r.rows_affected() == 1)
    }

    async fn create_code(&self, code: &AuthCode) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO oauth_codes ({CODE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)"
        ))
        .bind(&code.hash)
        .bind(&code.client_id)
        .bind(&code.user_id)
        .bind(&code.redirect_uri)
        .bind(&code.scope)
        .bind(&code.code_challenge)
        .bind(&code.nonce)
        .bind(code.auth_time)
        .bind(&code.op_sid)
        .bind(code.created_at)
        .bind(code.expires_at)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn code(&self, hash: &[u8]) -> StoreResult<Option<StoredCode>> {
        // On the writer: a code issued a moment ago on this node must be found.
        let row = sqlx::query(Q_CODE)
            .bind(hash)
            .fetch_optional(&self.writer)
            .await
            .map_err(backend)?;
        row.as_ref().map(code_from).transpose()
    }

    async fn redeem_code(
        &self,
        hash: &[u8],
        now: i64,
        family_id: &str,
        access_jti: &str,
    ) -> StoreResult<bool> {
        let r = sqlx::query(Q_REDEEM_CODE)
            .bind(now)
            .bind(family_id)
            .bind(access_jti)
            .bind(hash)
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(r.rows_affected() == 1)
    }

    async fn consented_scopes(&self, user_id: &str, client_id: &str) -> StoreResult<Vec<String>> {
        let scopes: Vec<String> = sqlx::query_scalar(Q_CONSENTED)
            .bind(user_id)
            .bind(client_id)
            .fetch_all(&self.writer)
            .await
            .map_err(backend)?;
        Ok(scopes)
    }

    async fn grant_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        for token in scopes {
            sqlx::query(
                "INSERT INTO oauth_consents (user_id, client_id, scope_token, granted_at) \
                 VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(user_id)
            .bind(client_id)
            .bind(token)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn consents(&self, user_id: &str) -> StoreResult<Vec<Consent>> {
        let rows = sqlx::query(
            "SELECT client_id, scope_token, granted_at FROM oauth_consents \
             WHERE user_id = ? ORDER BY client_id, scope_token",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        let mut out: Vec<Consent> = Vec::new();
        for row in rows {
            let client_id: String = row.try_get("client_id").map_err(backend)?;
            let token: String = row.try_get("scope_token").map_err(backend)?;
            let at: i64 = row.try_get("granted_at").map_err(backend)?;
            match out.last_mut() {
                Some(c) if c.client_id == client_id => {
                    c.scopes.push(token);
                    c.granted_at = c.granted_at.min(at);
                }
                _ => out.push(Consent {
                    client_id,
                    scopes: vec![token],
                    granted_at: at,
                }),
            }
        }
        Ok(out)
    }

    async fn withdraw_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<Vec<String>>> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let r = sqlx::query("DELETE FROM oauth_consents WHERE user_id = ? AND client_id = ?")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE refresh_families SET revoked_at = ?, revoke_reason = 'consent_withdrawn' \
             WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(user_id)
        .bind(client_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(ids))
    }

    async fn revoke_op_session_families(
        &self,
        op_sid: &str,
        now: i64,
        reason: &str,
    ) -> StoreResult<Vec<String>> {
        let ids: Vec<String> = sqlx::query_scalar(Q_REVOKE_OP_SESSION)
            .bind(now)
            .bind(reason)
            .bind(op_sid)
            .fetch_all(&self.writer)
            .await
            .map_err(backend)?;
        Ok(ids)
    }

    async fn deny(&self, entries: &[DenyEntry]) -> StoreResult<Vec<Revoked>> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let mut written = Vec::with_capacity(entries.len());
        for e in entries {
            let value = stored_deny_value(e);
            sqlx::query(Q_DENY_SHORTER)
                .bind(e.kind.as_str())
                .bind(&value)
                .bind(e.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            let seq: Option<i64> = sqlx::query_scalar(Q_DENY)
                .bind(e.kind.as_str())
                .bind(&value)
                .bind(e.expires_at)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            if let Some(seq) = seq {
                written.push(Revoked {
                    seq,
                    entry: e.clone(),
                });
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(written)
    }

    async fn revocations_since(
        &self,
        after: i64,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<Revoked>> {
        let rows = sqlx::query(Q_REVOCATIONS_SINCE)
            .bind(after)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let kind: String = row.try_get("kind").map_err(backend)?;
            if let Some(r) = revoked_from_row(
                row.try_get("seq").map_err(backend)?,
                &kind,
                row.try_get("value").map_err(backend)?,
                row.try_get("expires_at").map_err(backend)?,
            ) {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, rowid")
            .fetch_all(&self.reader)
            .await
            .map_err(backend)?;
        rows.iter().map(key_from).collect()
    }

    async fn init_keys(&self, keys: &[StoredKey]) -> StoreResult<bool> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let purpose = keys.first().map_or(KeyPurpose::Access, |k| k.purpose);
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM signing_keys WHERE state IN ('current', 'next') AND purpose = ?",
        )
        .bind(purpose.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if n > 0 {
            return Ok(false);
        }
        for k in keys {
            insert_key(&mut tx, k).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn rotate_keys(
        &self,
        new_next: &StoredKey,
        now: i64,
        previous_until: i64,
    ) -> StoreResult<()> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let purpose = new_next.purpose.as_str();
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired' WHERE state = 'previous' AND publish_until <= ?",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'previous', publish_until = ? WHERE state = 'current' AND purpose = ?",
        )
        .bind(previous_until)
        .bind(purpose)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'current' WHERE state = 'next' AND purpose = ?",
        )
        .bind(purpose)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_key(&mut tx, new_next).await?;
        tx.commit().await.map_err(backend)
    }

    async fn retire_keys(&self, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE signing_keys SET state = 'retired' WHERE state = 'previous' AND publish_until <= ?")
            .bind(now)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn prune(&self, now: i64, policy: FamilyPolicy, batch: u32) -> StoreResult<Pruned> {
        let run = async |sql: &str, before: i64| -> StoreResult<u64> {
            let r = sqlx::query(sql)
                .bind(before)
                .bind(i64::from(batch))
                .execute(&self.writer)
                .await
                .map_err(backend)?;
            Ok(r.rows_affected())
        };
        let revoked = run(Q_PRUNE_REVOKED, now - REVOKED_RETENTION).await?;
        let idle = run(Q_PRUNE_IDLE, now - policy.idle).await?;
        let absolute = run(Q_PRUNE_ABSOLUTE, now - policy.absolute).await?;
        let denylist = run(Q_PRUNE_DENYLIST, now).await?;
        let sessions = run(Q_PRUNE_SESSIONS, now).await?;
        let codes = run(Q_PRUNE_CODES, now - CODE_RETENTION).await?;
        Ok(Pruned::of_parts(
            batch,
            [revoked, idle, absolute],
            denylist,
            sessions,
            codes,
        ))
    }
}
