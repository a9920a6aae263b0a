-- The denylist gets a cursor: seq grows with every entry written, so nodes and the
-- revocation feed ask for what came after the last seq they saw. Writers take a
-- transaction-scoped advisory lock (see PostgresStore::deny), so entries commit in
-- seq order and a reader never sees seq N+1 before N. An entry extended to a later
-- expiry is written again under a new seq. (kind, value) stays unique.
CREATE TABLE denylist_v2 (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    UNIQUE (kind, value)
);
INSERT INTO denylist_v2 (kind, value, expires_at)
    SELECT kind, value, expires_at FROM denylist ORDER BY expires_at;
DROP TABLE denylist;
ALTER TABLE denylist_v2 RENAME TO denylist;
CREATE INDEX denylist_by_expiry ON denylist (expires_at);
