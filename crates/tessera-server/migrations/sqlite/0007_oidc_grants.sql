-- The authorization code flow of OpenID Connect.

-- Authorization codes, by the SHA-256 of the code. A code is redeemed once, by a
-- conditional UPDATE (redeemed_at IS NULL); its redemption records the refresh
-- family and the access token it issued, so that a replay can revoke them
-- (RFC 6749 4.1.2). Kept an hour past expiry, then pruned.
CREATE TABLE oauth_codes (
    hash           BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    scope          TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    nonce          TEXT,
    auth_time      INTEGER NOT NULL,
    op_sid         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    redeemed_at    INTEGER,
    family_id      TEXT,
    access_jti     TEXT
);
CREATE INDEX oauth_codes_by_expiry ON oauth_codes(expires_at);
CREATE INDEX oauth_codes_by_client ON oauth_codes(client_id);
CREATE INDEX oauth_codes_by_user ON oauth_codes(user_id);

-- Consent, one row per user, client and scope token: granting more adds rows, so
-- extending a consent is an insert that cannot lose a concurrent one.
CREATE TABLE oauth_consents (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
    scope_token TEXT NOT NULL,
    granted_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id, scope_token)
);
CREATE INDEX oauth_consents_by_client ON oauth_consents(client_id);

-- A grant's refresh family carries its scope, the user's auth_time and the provider
-- session it was made in (RP-initiated logout ends the grants of the session).
ALTER TABLE refresh_families ADD COLUMN scope TEXT;
ALTER TABLE refresh_families ADD COLUMN auth_time INTEGER;
ALTER TABLE refresh_families ADD COLUMN op_sid TEXT;
CREATE INDEX refresh_families_by_op_sid ON refresh_families(op_sid) WHERE op_sid IS NOT NULL;
CREATE INDEX refresh_families_by_user_client ON refresh_families(user_id, client_id) WHERE client_id IS NOT NULL;
