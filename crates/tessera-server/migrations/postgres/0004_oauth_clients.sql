-- OAuth clients, as in migrations/sqlite/0005. A confidential client's secret (256
-- random bits, shown once) is stored as its SHA-256; a public client has none. The
-- lists are JSON arrays of strings (as users.roles); redirect URIs are kept exactly
-- as registered.
CREATE TABLE oauth_clients (
    id                        TEXT PRIMARY KEY,
    secret_hash               BYTEA,
    redirect_uris             TEXT NOT NULL DEFAULT '[]',
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]',
    grants                    TEXT NOT NULL DEFAULT '[]',
    scopes                    TEXT NOT NULL DEFAULT '[]',
    created_at                BIGINT NOT NULL
);

-- A refresh family may belong to a client (a user's grant to it); NULL for the
-- families of /auth logins. Removing a client ends its families and their tokens.
ALTER TABLE refresh_families ADD COLUMN client_id TEXT REFERENCES oauth_clients(id) ON DELETE CASCADE;
CREATE INDEX refresh_families_by_client ON refresh_families (client_id) WHERE client_id IS NOT NULL;
