-- Tessera schema, PostgreSQL: the tables of the SQLite schema (migrations/sqlite),
-- with the indexes that keep every query on a request path an index lookup. Times
-- are Unix seconds; secrets are stored as SHA-256 hashes. Every table lives in the
-- first schema of the connection's search_path.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL DEFAULT '[]',
    created_at    BIGINT NOT NULL
);

-- One refresh family per login: the "session" of /auth/sessions (its id is the sid).
-- seq orders families created in the same second, as SQLite's rowid does.
CREATE TABLE refresh_families (
    id            TEXT PRIMARY KEY,
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT NOT NULL,
    user_agent    TEXT,
    ip            TEXT,
    revoked_at    BIGINT,
    revoke_reason TEXT
);
-- A user's unrevoked families, oldest first: the session list, the session limit,
-- "log out everywhere". Revoked families (never deleted) leave the index.
CREATE INDEX refresh_families_live_by_user ON refresh_families (user_id, created_at, seq)
    WHERE revoked_at IS NULL;

-- Every refresh token ever issued, by hash. used_at marks it spent; successor_sealed
-- is its successor encrypted under a key derived from this token (only its holder can
-- open it), successor_hash the successor's hash. Nothing looks tokens up by family.
CREATE TABLE refresh_tokens (
    hash             BYTEA PRIMARY KEY,
    family_id        TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    created_at       BIGINT NOT NULL,
    used_at          BIGINT,
    successor_sealed BYTEA,
    successor_hash   BYTEA
);

-- Revoked access tokens: kind 'jti' (one token), 'sid' (a session), 'user' (every
-- token of the user issued before value's cutoff, stored as "user_id cutoff").
CREATE TABLE denylist (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);
-- Forgetting expired entries without reading the live ones.
CREATE INDEX denylist_by_expiry ON denylist (expires_at);

-- Signing keys; state is next, current, previous or retired. The private JWK is
-- sealed (AES-256-GCM) under the key-encryption key. seq orders keys created in the
-- same second.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    seq            BIGINT GENERATED ALWAYS AS IDENTITY,
    alg            TEXT NOT NULL,
    state          TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    private_sealed BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    publish_until  BIGINT
);

-- Stateful mode: the session id and its CSRF token are stored hashed.
CREATE TABLE server_sessions (
    id_hash      BYTEA PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_hash    BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
