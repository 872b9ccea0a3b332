-- fwdb:no-transaction
-- Indexes for the created_by / updated_by foreign keys (found by
-- `fwdb check queries`): without them, deleting or re-keying a user scans
-- every referencing table. Built CONCURRENTLY so live tables keep taking writes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_created_by ON shared.users (created_by);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_updated_by ON shared.users (updated_by);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_avatars_created_by ON avatar.avatars (created_by);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_avatars_updated_by ON avatar.avatars (updated_by);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_items_created_by ON catalog.items (created_by);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_items_updated_by ON catalog.items (updated_by);
