-- fwdb:no-transaction
-- The partial index of architecture 6.2, built without blocking writes.
-- Unique on lower(email) among live rows: a soft-deleted account frees its
-- address, and Ann@x.com cannot sign up next to ann@x.com. Queries must
-- use lower(email) = lower($1) AND deleted_at IS NULL to use it.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_users_email
    ON shared.users (lower(email))
    WHERE deleted_at IS NULL;
