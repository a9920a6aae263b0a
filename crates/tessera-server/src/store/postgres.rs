//! The PostgreSQL store, for any number of nodes sharing one database: the same
//! behaviour as [`super::SqliteStore`], made safe under concurrency from other
//! connections at READ COMMITTED (PostgreSQL's default) with row locks and
//! conditional updates instead of SQLite's single writer.
//!
//! - Rotating a refresh token locks its family row first (`FOR NO KEY UPDATE`), so
//!   every change to a family's tokens is serialized per family; the conditional
//!   `UPDATE ... WHERE used_at IS NULL` then admits exactly one winner, and the
//!   winner's successor, family touch and answer are one statement.
//! - A login under a session limit locks its user row, so counting, evicting and
//!   inserting cannot interleave with another login of that user on any node.
//! - Key initialisation and rotation lock the `signing_keys` table (readers are not
//!   blocked), so nodes started at once on an empty database agree on one set.
//! - Migrations run in one transaction under an advisory lock scoped to the schema.
//!
//! Every table lives in the first schema of the connection's `search_path`; a URL
//! may choose one with `?options=-csearch_path%3DNAME` (libpq's `options`), which
//! is how the tests give each case a schema of its own. The schema must exist.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row};

use super::{
    AuthCode, CODE_RETENTION, Client, Consent, DenyEntry, Family, FamilyPolicy, KeyPurpose,
    KeyState, NewRefresh, Pruned, REVOKED_RETENTION, Revoked, RotateRequest, Rotation,
    SESSION_TOUCH_EVERY, ServerSession, SessionLimit, SessionStore, Store, StoreError, StoreResult,
    StoredCode, StoredKey, User, revoked_from_row, stored_deny_value,
};

// Pruning, one bounded batch per statement; SKIP LOCKED leaves rows a request (or
// another node's pruning) holds to the next batch.
const Q_PRUNE_REVOKED: &str = "DELETE FROM refresh_families WHERE id IN \
     (SELECT id FROM refresh_families WHERE revoked_at IS NOT NULL AND revoked_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";
const Q_PRUNE_IDLE: &str = "DELETE FROM refresh_families WHERE id IN \
     (SELECT id FROM refresh_families WHERE last_used_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";
const Q_PRUNE_ABSOLUTE: &str = "DELETE FROM refresh_families WHERE id IN \
     (SELECT id FROM refresh_families WHERE created_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";
const Q_PRUNE_DENYLIST: &str = "DELETE FROM denylist WHERE seq IN \
     (SELECT seq FROM denylist WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";
const Q_PRUNE_SESSIONS: &str = "DELETE FROM server_sessions WHERE id_hash IN \
     (SELECT id_hash FROM server_sessions WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";
const Q_PRUNE_CODES: &str = "DELETE FROM oauth_codes WHERE hash IN \
     (SELECT hash FROM oauth_codes WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// The migrations, in order: (version, SQL). Each runs in the migration transaction
/// (PostgreSQL's DDL is transactional: a failed migration leaves nothing behind).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (2, include_str!("../../migrations/postgres/0002_prune.sql")),
    (
        3,
        include_str!("../../migrations/postgres/0003_denylist_cursor.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_oauth_clients.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_id_token_keys.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_oidc_grants.sql"),
    ),
];

/// How long a request waits for a connection: a database that is down answers
/// within this, as an error, instead of holding the request.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The PostgreSQL implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`) and
    /// migrates it.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_with(url, super::StoreOptions::default().max_connections).await
    }

    /// [`PostgresStore::open`] with a pool of at most `max_connections`.
    pub async fn open_with(url: &str, max_connections: u32) -> StoreResult<Self> {
        // A statement that runs longer than this is cancelled: a database that accepts
        // connections but does not answer must not hold requests (and their
        // connections) for ever. Migrations lift it for their own transaction.
        let opts = PgConnectOptions::from_str(url)
            .map_err(backend)?
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await
            .map_err(backend)?;
        migrate(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// See [`PostgresStore::open`].
const STATEMENT_TIMEOUT: &str = "10s";

async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(backend)?;
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    let Some(schema) = schema else {
        return Err(StoreError::Backend(
            "the search_path names no existing schema to create the tables in".into(),
        ));
    };
    // Nodes started at once on an empty database: one migrates, the others wait
    // here and then find the work done. The lock is per schema, released at commit.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tessera_migrations ' || $1))")
        .bind(&schema)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS tessera_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
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
            "INSERT INTO tessera_migrations (version, applied_at) VALUES ($1, extract(epoch FROM now())::bigint)",
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

const USER_COLS: &str = "id, username, password_hash, roles, created_at";
const FAMILY_COLS: &str = "f.id, f.user_id, f.created_at, f.last_used_at, f.user_agent, f.ip, f.client_id, \
     f.scope, f.auth_time, f.op_sid";
const CODE_COLS: &str = "hash, client_id, user_id, redirect_uri, scope, code_challenge, nonce, \
     auth_time, op_sid, created_at, expires_at, redeemed_at, family_id, access_jti";
const CLIENT_COLS: &str =
    "id, secret_hash, redirect_uris, post_logout_redirect_uris, grants, scopes, created_at";

/// Spends a fresh token in one statement: lock its live family, mark the token spent
/// (the conditional UPDATE is the arbiter), insert the successor, touch the family,
/// and answer the family and its user. No row when the token was not fresh.
///
/// $1 now, $2 successor sealed, $3 successor hash, $4 presented hash,
/// $5 now - idle, $6 now - absolute, $7 the client whose token it must be (NULL:
/// an /auth family).
const ROTATE: &str = "\
WITH family AS (
    SELECT f.id FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
    WHERE t.hash = $4 AND t.used_at IS NULL
      AND f.revoked_at IS NULL AND f.last_used_at > $5 AND f.created_at > $6
      AND f.client_id IS NOT DISTINCT FROM $7
    FOR NO KEY UPDATE OF f
), spent AS (
    UPDATE refresh_tokens t SET used_at = $1, successor_sealed = $2, successor_hash = $3
    FROM family WHERE t.hash = $4 AND t.used_at IS NULL AND t.family_id = family.id
    RETURNING t.family_id
), successor AS (
    INSERT INTO refresh_tokens (hash, family_id, created_at) SELECT $3, family_id, $1 FROM spent
), touched AS (
    UPDATE refresh_families f SET last_used_at = $1 FROM spent WHERE f.id = spent.family_id
    RETURNING f.id, f.user_id, f.created_at, f.last_used_at, f.user_agent, f.ip, f.client_id,
              f.scope, f.auth_time, f.op_sid
)
SELECT touched.id, touched.user_id, touched.created_at, touched.last_used_at,
       touched.user_agent, touched.ip, touched.client_id,
       touched.scope, touched.auth_time, touched.op_sid,
       u.username, u.password_hash, u.roles, u.created_at AS user_created_at
FROM touched JOIN users u ON u.id = touched.user_id";

fn user_from(row: &PgRow) -> StoreResult<User> {
    let roles: String = row.try_get("roles").map_err(backend)?;
    Ok(User {
        id: row.try_get("id").map_err(backend)?,
        username: row.try_get("username").map_err(backend)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        roles: serde_json::from_str(&roles).map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
    })
}

fn family_from(row: &PgRow) -> StoreResult<Family> {
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

fn code_from(row: &PgRow) -> StoreResult<StoredCode> {
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

fn client_from(row: &PgRow) -> StoreResult<Client> {
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

/// A family row joined with its user's columns (`username`, `password_hash`,
/// `roles`, `user_created_at`).
fn family_and_user_from(row: &PgRow) -> StoreResult<(Family, User)> {
    let family = family_from(row)?;
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

fn key_from(row: &PgRow) -> StoreResult<StoredKey> {
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

async fn family_and_user(conn: &mut PgConnection, family_id: &str) -> StoreResult<(Family, User)> {
    let row = sqlx::query(&format!(
        "SELECT {FAMILY_COLS}, u.username, u.password_hash, u.roles, u.created_at AS user_created_at \
         FROM refresh_families f JOIN users u ON u.id = f.user_id WHERE f.id = $1"
    ))
    .bind(family_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)?;
    family_and_user_from(&row)
}

/// Serializes the writers of `signing_keys` (key creation and rotation, on every
/// node) until the transaction ends; plain reads go on.
async fn lock_keys(conn: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

async fn insert_key(conn: &mut PgConnection, k: &StoredKey) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, state, public_jwk, private_sealed, created_at, publish_until, purpose) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
impl SessionStore for PostgresStore {
    async fn create_server_session(&self, s: &ServerSession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO server_sessions (id_hash, user_id, csrf_hash, created_at, last_used_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.id_hash)
        .bind(&s.user_id)
        .bind(&s.csrf_hash)
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.expires_at)
        .execute(&self.pool)
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
        let row = sqlx::query(
            "SELECT id_hash, user_id, csrf_hash, created_at, last_used_at, expires_at \
             FROM server_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
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
            sqlx::query(
                "UPDATE server_sessions SET last_used_at = $1, expires_at = $2 WHERE id_hash = $3",
            )
            .bind(now)
            .bind(now + ttl)
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
            session.last_used_at = now;
            session.expires_at = now + ttl;
        }
        Ok(Some(session))
    }

    async fn delete_server_session(&self, id_hash: &[u8]) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM server_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(r.rows_affected() == 1)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn close(&self) {
        PostgresStore::close(self).await;
    }

    async fn create_user(&self, user: &User) -> StoreResult<()> {
        let roles = serde_json::to_string(&user.roles).map_err(backend)?;
        let r = sqlx::query(
            "INSERT INTO users (id, username, password_hash, roles, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(roles)
        .bind(user.created_at)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict),
            Err(e) => Err(backend(e)),
        }
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
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
        let now = family.created_at;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let mut evicted = Vec::new();
        if let Some(limit) = limit.filter(|l| l.max > 0) {
            // The user's row lock serializes the logins of one user (on every node):
            // the count below sees every family committed before it.
            sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE")
                .bind(&family.user_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            let live: Vec<String> = sqlx::query_scalar(
                "SELECT f.id FROM refresh_families f WHERE f.user_id = $1 AND f.revoked_at IS NULL \
                 AND f.last_used_at > $2 AND f.created_at > $3 ORDER BY f.created_at, f.seq",
            )
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
                let oldest = &live[..live.len() + 1 - max];
                sqlx::query(
                    "UPDATE refresh_families SET revoked_at = $1, revoke_reason = 'session_limit' WHERE id = ANY($2)",
                )
                .bind(now)
                .bind(oldest)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                evicted.extend_from_slice(oldest);
            }
        }
        sqlx::query(
            "WITH f AS (INSERT INTO refresh_families (id, user_id, created_at, last_used_at, user_agent, ip, client_id, scope, auth_time, op_sid) \
             VALUES ($1, $2, $3, $4, $5, $6, $8, $9, $10, $11) RETURNING id) \
             INSERT INTO refresh_tokens (hash, family_id, created_at) SELECT $7, id, $3 FROM f",
        )
        .bind(&family.id)
        .bind(&family.user_id)
        .bind(family.created_at)
        .bind(family.last_used_at)
        .bind(&family.user_agent)
        .bind(&family.ip)
        .bind(&first.hash)
        .bind(&family.client_id)
        .bind(&family.scope)
        .bind(family.auth_time)
        .bind(&family.op_sid)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(evicted)
    }

    async fn rotate_refresh(&self, req: &RotateRequest) -> StoreResult<Rotation> {
        let now = req.now;
        let idle_after = now - req.policy.idle;
        let absolute_after = now - req.policy.absolute;
        // The common case, one round trip: the token is fresh and this call wins.
        let won = sqlx::query(ROTATE)
            .bind(now)
            .bind(&req.successor_sealed)
            .bind(&req.successor.hash)
            .bind(&req.presented)
            .bind(idle_after)
            .bind(absolute_after)
            .bind(&req.client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        if let Some(row) = won {
            let (family, user) = family_and_user_from(&row)?;
            return Ok(Rotation::Rotated { family, user });
        }
        // Otherwise decide under the family's lock, which every rotation of this
        // family takes first: what is read here cannot change until the commit.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let row = sqlx::query(
            "SELECT t.family_id, t.used_at, t.successor_sealed, f.user_id, f.revoked_at, f.last_used_at, f.created_at, f.client_id \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = $1 \
             FOR NO KEY UPDATE OF f",
        )
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
        let live = revoked.is_none() && last_used > idle_after && created > absolute_after;
        if !live {
            return Ok(Rotation::Dead);
        }
        let used_at: Option<i64> = row.try_get("used_at").map_err(backend)?;
        let sealed: Option<Vec<u8>> = row.try_get("successor_sealed").map_err(backend)?;
        match (used_at, sealed) {
            (None, _) => {
                // Fresh after all (its family changed between the two statements):
                // spend it here, under the lock, where nothing can race.
                let row = sqlx::query(ROTATE)
                    .bind(now)
                    .bind(&req.successor_sealed)
                    .bind(&req.successor.hash)
                    .bind(&req.presented)
                    .bind(idle_after)
                    .bind(absolute_after)
                    .bind(&req.client_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?
                    .ok_or_else(|| backend("a fresh refresh token could not be spent"))?;
                let (family, user) = family_and_user_from(&row)?;
                tx.commit().await.map_err(backend)?;
                Ok(Rotation::Rotated { family, user })
            }
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
                sqlx::query(
                    "UPDATE refresh_families SET revoked_at = $1, revoke_reason = 'refresh_reuse' WHERE id = $2",
                )
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
        let row = sqlx::query(&format!(
            "SELECT {FAMILY_COLS} FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
             WHERE t.hash = $1 AND f.revoked_at IS NULL AND f.last_used_at > $2 AND f.created_at > $3"
        ))
        .bind(hash)
        .bind(now - policy.idle)
        .bind(now - policy.absolute)
        .fetch_optional(&self.pool)
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
        let row = sqlx::query(&format!(
            "SELECT {FAMILY_COLS} FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
             WHERE t.hash = $1 AND t.used_at IS NULL \
             AND f.revoked_at IS NULL AND f.last_used_at > $2 AND f.created_at > $3"
        ))
        .bind(hash)
        .bind(now - policy.idle)
        .bind(now - policy.absolute)
        .fetch_optional(&self.pool)
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
        let r = sqlx::query(
            "UPDATE refresh_families SET revoked_at = $1, revoke_reason = $2 \
             WHERE id = $3 AND revoked_at IS NULL AND ($4::text IS NULL OR user_id = $4)",
        )
        .bind(now)
        .bind(reason)
        .bind(family_id)
        .bind(user_id)
        .execute(&self.pool)
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
        // The user's row is locked first, as a login under a session limit does, so
        // the two never lock the user's families in different orders.
        let ids: Vec<String> = sqlx::query_scalar(
            "WITH u AS (SELECT id FROM users WHERE id = $3 FOR NO KEY UPDATE) \
             UPDATE refresh_families SET revoked_at = $1, revoke_reason = $2 \
             WHERE user_id = (SELECT id FROM u) AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(reason)
        .bind(user_id)
        .fetch_all(&self.pool)
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
        let rows = sqlx::query(&format!(
            "SELECT {FAMILY_COLS} FROM refresh_families f WHERE f.user_id = $1 AND f.revoked_at IS NULL \
             AND f.last_used_at > $2 AND f.created_at > $3 ORDER BY f.created_at, f.seq"
        ))
        .bind(user_id)
        .bind(now - policy.idle)
        .bind(now - policy.absolute)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(family_from).collect()
    }

    async fn create_client(&self, client: &Client) -> StoreResult<()> {
        let json = |v: &Vec<String>| serde_json::to_string(v).map_err(backend);
        let r = sqlx::query(&format!(
            "INSERT INTO oauth_clients ({CLIENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&client.id)
        .bind(&client.secret_hash)
        .bind(json(&client.redirect_uris)?)
        .bind(json(&client.post_logout_redirect_uris)?)
        .bind(json(&client.grants)?)
        .bind(json(&client.scopes)?)
        .bind(client.created_at)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict),
            Err(e) => Err(backend(e)),
        }
    }

    async fn client_by_id(&self, id: &str) -> StoreResult<Option<Client>> {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLS} FROM oauth_clients WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(client_from).transpose()
    }

    async fn clients(&self) -> StoreResult<Vec<Client>> {
        // Bytewise order, as SQLite's: the database's collation may differ.
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLS} FROM oauth_clients ORDER BY id COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(client_from).collect()
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM oauth_clients WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(r.rows_affected() == 1)
    }

    async fn create_code(&self, code: &AuthCode) -> StoreResult<()> {
        sqlx::query(&format!(
            "INSERT INTO oauth_codes ({CODE_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, NULL)"
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
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn code(&self, hash: &[u8]) -> StoreResult<Option<StoredCode>> {
        let row = sqlx::query(&format!(
            "SELECT {CODE_COLS} FROM oauth_codes WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
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
        // The arbiter: at READ COMMITTED a concurrent UPDATE of the same row waits
        // for the first to commit, then re-checks redeemed_at and finds it set.
        let r = sqlx::query(
            "UPDATE oauth_codes SET redeemed_at = $1, family_id = $2, access_jti = $3 \
             WHERE hash = $4 AND redeemed_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(family_id)
        .bind(access_jti)
        .bind(hash)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(r.rows_affected() == 1)
    }

    async fn consented_scopes(&self, user_id: &str, client_id: &str) -> StoreResult<Vec<String>> {
        let scopes: Vec<String> = sqlx::query_scalar(
            "SELECT scope_token FROM oauth_consents WHERE user_id = $1 AND client_id = $2 \
             ORDER BY scope_token COLLATE \"C\"",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_all(&self.pool)
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
        sqlx::query(
            "INSERT INTO oauth_consents (user_id, client_id, scope_token, granted_at) \
             SELECT $1, $2, t, $4 FROM unnest($3::text[]) AS t ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scopes)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn consents(&self, user_id: &str) -> StoreResult<Vec<Consent>> {
        let rows = sqlx::query(
            "SELECT client_id, scope_token, granted_at FROM oauth_consents WHERE user_id = $1 \
             ORDER BY client_id COLLATE \"C\", scope_token COLLATE \"C\"",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The user's row first, as logins and logout-all lock it.
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let r = sqlx::query("DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE refresh_families SET revoked_at = $1, revoke_reason = 'consent_withdrawn' \
             WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL RETURNING id",
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
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE refresh_families SET revoked_at = $1, revoke_reason = $2 \
             WHERE op_sid = $3 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(reason)
        .bind(op_sid)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(ids)
    }

    async fn deny(&self, entries: &[DenyEntry]) -> StoreResult<Vec<Revoked>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Writers of the denylist take turns, so that entries commit in the order of
        // their seq: a node reading "after N" can never see N+1 committed while N is
        // still to come (and so skip N for ever). Revocations are short and rare next
        // to verifications; the lock is held for this transaction only.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('tessera_denylist ' || current_schema()))",
        )
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let mut written = Vec::with_capacity(entries.len());
        for e in entries {
            let value = stored_deny_value(e);
            // Only a new entry, or one that extends the one there, is written (under
            // a new seq): the shorter one goes, and the insert does nothing if a
            // longer one stayed.
            sqlx::query("DELETE FROM denylist WHERE kind = $1 AND value = $2 AND expires_at < $3")
                .bind(e.kind.as_str())
                .bind(&value)
                .bind(e.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            let seq: Option<i64> = sqlx::query_scalar(
                "INSERT INTO denylist (kind, value, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (kind, value) DO NOTHING RETURNING seq",
            )
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
        let rows = sqlx::query(
            "SELECT seq, kind, value, expires_at FROM denylist \
             WHERE seq > $1 AND expires_at > $2 ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        let rows = sqlx::query(
            "SELECT kid, alg, state, public_jwk, private_sealed, created_at, publish_until, purpose \
             FROM signing_keys ORDER BY created_at, seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(key_from).collect()
    }

    async fn init_keys(&self, keys: &[StoredKey]) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Of nodes started at once on an empty database, the first to get the lock
        // stores its keys; the others then count them and store nothing.
        lock_keys(&mut tx).await?;
        let purpose = keys.first().map_or(KeyPurpose::Access, |k| k.purpose);
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM signing_keys WHERE state IN ('current', 'next') AND purpose = $1",
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
        let mut tx = self.pool.begin().await.map_err(backend)?;
        lock_keys(&mut tx).await?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired' WHERE state = 'previous' AND publish_until <= $1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let purpose = new_next.purpose.as_str();
        sqlx::query(
            "UPDATE signing_keys SET state = 'previous', publish_until = $1 WHERE state = 'current' AND purpose = $2",
        )
        .bind(previous_until)
        .bind(purpose)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'current' WHERE state = 'next' AND purpose = $1",
        )
        .bind(purpose)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_key(&mut tx, new_next).await?;
        tx.commit().await.map_err(backend)
    }

    async fn retire_keys(&self, now: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE signing_keys SET state = 'retired' WHERE state = 'previous' AND publish_until <= $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn prune(&self, now: i64, policy: FamilyPolicy, batch: u32) -> StoreResult<Pruned> {
        let run = async |sql: &str, before: i64| -> StoreResult<u64> {
            let r = sqlx::query(sql)
                .bind(before)
                .bind(i64::from(batch))
                .execute(&self.pool)
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
