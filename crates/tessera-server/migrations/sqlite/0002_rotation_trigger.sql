-- Rotation in one statement: spending a refresh token (used_at set, successor_hash
-- given) inserts its successor and touches its family, atomically with the UPDATE that
-- decides which of concurrent refreshes wins. One round trip to the single writer
-- instead of five.
ALTER TABLE refresh_tokens ADD COLUMN successor_hash BLOB;

CREATE TRIGGER refresh_tokens_rotated AFTER UPDATE OF used_at ON refresh_tokens
WHEN OLD.used_at IS NULL AND NEW.used_at IS NOT NULL AND NEW.successor_hash IS NOT NULL
BEGIN
    INSERT INTO refresh_tokens (hash, family_id, created_at)
        VALUES (NEW.successor_hash, NEW.family_id, NEW.used_at);
    UPDATE refresh_families SET last_used_at = NEW.used_at WHERE id = NEW.family_id;
END;

-- Nothing looks refresh tokens up by family, and families are never deleted: the
-- index only cost a B-tree write per refresh.
DROP INDEX IF EXISTS refresh_tokens_by_family;
