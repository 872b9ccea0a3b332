-- fwdb:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS shared.idx_users_email;
