-- Every query on a request path is an index lookup, and dead data is pruned in
-- bounded batches, each an index range scan.

-- Pruning a family deletes its tokens by cascade: look them up, do not scan.
CREATE INDEX refresh_tokens_by_family ON refresh_tokens(family_id);

-- One user's live sessions (the session limit, /auth/sessions, logout-all), in
-- creation order.
DROP INDEX IF EXISTS refresh_families_by_user;
CREATE INDEX refresh_families_live_by_user ON refresh_families(user_id, revoked_at, created_at);

-- Dead families, by each way a family dies.
CREATE INDEX refresh_families_revoked ON refresh_families(revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_families_by_last_use ON refresh_families(last_used_at);
CREATE INDEX refresh_families_by_creation ON refresh_families(created_at);

CREATE INDEX denylist_by_expiry ON denylist(expires_at);
CREATE INDEX server_sessions_by_expiry ON server_sessions(expires_at);
-- Deleting a user deletes its sessions by cascade.
CREATE INDEX server_sessions_by_user ON server_sessions(user_id);
