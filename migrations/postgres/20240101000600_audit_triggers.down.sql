DROP TRIGGER IF EXISTS log_no_truncate ON audit.log;
DROP TRIGGER IF EXISTS log_append_only ON audit.log;
DROP FUNCTION IF EXISTS audit.refuse_change();
DROP TRIGGER IF EXISTS items_audit ON catalog.items;
DROP TRIGGER IF EXISTS avatars_audit ON avatar.avatars;
DROP TRIGGER IF EXISTS users_audit ON shared.users;
DROP FUNCTION IF EXISTS audit.record_change();
ALTER TABLE audit.log DROP COLUMN IF EXISTS db_user;
