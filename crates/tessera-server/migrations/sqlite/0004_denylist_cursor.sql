-- The denylist gets a cursor: seq grows with every entry written (AUTOINCREMENT never
-- reuses a value, even after pruning), so nodes and the revocation feed ask for what
-- came after the last seq they saw. An entry extended to a later expiry is written
-- again under a new seq. (kind, value) stays unique.
CREATE TABLE denylist_v2 (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (kind, value)
);
INSERT INTO denylist_v2 (kind, value, expires_at)
    SELECT kind, value, expires_at FROM denylist ORDER BY expires_at;
DROP TABLE denylist;
ALTER TABLE denylist_v2 RENAME TO denylist;
CREATE INDEX denylist_by_expiry ON denylist(expires_at);
