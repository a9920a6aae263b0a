-- Tessera schema, SQLite. Times are Unix seconds; secrets are stored as SHA-256 hashes.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL
);

-- One refresh family per login: the "session" of /auth/sessions (its id is the sid).
CREATE TABLE refresh_families (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL,
    user_agent    TEXT,
    ip            TEXT,
    revoked_at    INTEGER,
    revoke_reason TEXT
);
CREATE INDEX refresh_families_by_user ON refresh_families(user_id, revoked_at);

-- Every refresh token ever issued, by hash. used_at marks it spent; successor_sealed is
-- its successor encrypted under a key derived from this token (only its holder can open it).
CREATE TABLE refresh_tokens (
    hash             BLOB PRIMARY KEY,
    family_id        TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    created_at       INTEGER NOT NULL,
    used_at          INTEGER,
    successor_sealed BLOB
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens(family_id);

-- Revoked access tokens: kind 'jti' (one token), 'sid' (a session), 'user' (every token
-- of the user issued before value's cutoff, stored as "user_id cutoff").
CREATE TABLE denylist (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
);

-- Signing keys; state is next, current, previous or retired. The private JWK is sealed
-- (AES-256-GCM) under the key-encryption key.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    state          TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    private_sealed BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    publish_until  INTEGER
);

-- Stateful mode: the session id and its CSRF token are stored hashed.
CREATE TABLE server_sessions (
    id_hash      BLOB PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_hash    BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
