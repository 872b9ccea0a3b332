-- fwdb:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS catalog.idx_items_updated_by;
DROP INDEX CONCURRENTLY IF EXISTS catalog.idx_items_created_by;
DROP INDEX CONCURRENTLY IF EXISTS avatar.idx_avatars_updated_by;
DROP INDEX CONCURRENTLY IF EXISTS avatar.idx_avatars_created_by;
DROP INDEX CONCURRENTLY IF EXISTS shared.idx_users_updated_by;
DROP INDEX CONCURRENTLY IF EXISTS shared.idx_users_created_by;
