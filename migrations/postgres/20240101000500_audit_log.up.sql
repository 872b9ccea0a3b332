-- audit.log: one row per changed row; filled by triggers of the security work.
CREATE TABLE audit.log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    op           text NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')),
    row_id       text,
    old_data     jsonb,
    new_data     jsonb,
    -- The application user when the service sets fwdb.actor, else the database role.
    actor        text NOT NULL DEFAULT coalesce(nullif(current_setting('fwdb.actor', true), ''), session_user),
    txid         bigint NOT NULL DEFAULT txid_current(),
    at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_audit_log_row ON audit.log (schema_name, table_name, row_id);
-- Append-only and time-ordered: a BRIN index is tiny and enough for ranges.
CREATE INDEX idx_audit_log_at ON audit.log USING brin (at);

COMMENT ON TABLE audit.log IS 'Audit trail: who changed which row, when, from what to what';
COMMENT ON COLUMN audit.log.txid IS 'Transaction id: rows changed together share it';
