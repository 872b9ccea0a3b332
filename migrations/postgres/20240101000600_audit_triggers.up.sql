-- Audit triggers (architecture 2.2): every INSERT, UPDATE and DELETE on the
-- shared, avatar and catalog tables writes a row to audit.log; audit.log
-- itself is append-only, for every role that is not allowed to disable triggers.

-- The database role of the session, next to the application actor.
ALTER TABLE audit.log ADD COLUMN db_user text NOT NULL DEFAULT session_user;
COMMENT ON COLUMN audit.log.db_user IS 'Database role of the session that made the change';

-- SECURITY DEFINER: application roles have no privilege on audit.log; only
-- this function (owned by the migrator) writes to it.
CREATE FUNCTION audit.record_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old_row jsonb;
    new_row jsonb;
    old_cols jsonb := '{}'::jsonb;
    new_cols jsonb := '{}'::jsonb;
    k text;
    who text;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN new_row := to_jsonb(NEW); END IF;
    who := coalesce(
        nullif(current_setting('fwdb.actor', true), ''),
        new_row ->> 'updated_by',
        new_row ->> 'created_by',
        session_user);
    IF TG_OP = 'UPDATE' THEN
        FOR k IN SELECT jsonb_object_keys(new_row) LOOP
            IF (new_row -> k) IS DISTINCT FROM (old_row -> k) THEN
                old_cols := old_cols || jsonb_build_object(k, old_row -> k);
                new_cols := new_cols || jsonb_build_object(k, new_row -> k);
            END IF;
        END LOOP;
        INSERT INTO audit.log (schema_name, table_name, op, row_id, old_data, new_data, actor, txid, at)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, new_row ->> 'id', old_cols, new_cols, who, txid_current(), clock_timestamp());
    ELSE
        INSERT INTO audit.log (schema_name, table_name, op, row_id, old_data, new_data, actor, txid, at)
        VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, coalesce(new_row, old_row) ->> 'id', old_row, new_row, who, txid_current(), clock_timestamp());
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION audit.record_change() IS 'AFTER row trigger: writes the change to audit.log';
REVOKE ALL ON FUNCTION audit.record_change() FROM PUBLIC;

CREATE TRIGGER users_audit AFTER INSERT OR UPDATE OR DELETE ON shared.users
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();
CREATE TRIGGER avatars_audit AFTER INSERT OR UPDATE OR DELETE ON avatar.avatars
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();
CREATE TRIGGER items_audit AFTER INSERT OR UPDATE OR DELETE ON catalog.items
    FOR EACH ROW EXECUTE FUNCTION audit.record_change();

-- Append-only: even the table's owner cannot change or remove audit rows
-- (retention is a superuser's job: ALTER TABLE audit.log DISABLE TRIGGER ...).
CREATE FUNCTION audit.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit.log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER log_append_only BEFORE UPDATE OR DELETE ON audit.log
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER log_no_truncate BEFORE TRUNCATE ON audit.log
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
