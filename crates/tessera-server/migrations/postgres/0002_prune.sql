-- Dead data is pruned in bounded batches, each an index range scan: families by
-- each way a family dies, their tokens by the cascade, expired stateful sessions.
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_families_revoked ON refresh_families (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_families_by_last_use ON refresh_families (last_used_at);
CREATE INDEX refresh_families_by_creation ON refresh_families (created_at);
CREATE INDEX server_sessions_by_expiry ON server_sessions (expires_at);
-- Deleting a user deletes its sessions by cascade.
CREATE INDEX server_sessions_by_user ON server_sessions (user_id);
