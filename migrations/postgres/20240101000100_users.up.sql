-- shared.users (architecture 7.1). Email uniqueness among live rows is the
-- partial unique index of the next migration, built CONCURRENTLY (6.2).
CREATE TABLE shared.users (
    id          uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    email       varchar(255) NOT NULL CHECK (email = btrim(email) AND position('@' IN email) > 1),
    first_name  varchar(100) NOT NULL,
    last_name   varchar(100) NOT NULL,
    role        varchar(50)  NOT NULL DEFAULT 'user',

    -- Timestamps
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz NULL,

    -- Audit
    created_by  uuid REFERENCES shared.users (id),
    updated_by  uuid REFERENCES shared.users (id)
);

CREATE TRIGGER users_set_updated_at
    BEFORE UPDATE ON shared.users
    FOR EACH ROW EXECUTE FUNCTION shared.set_updated_at();

COMMENT ON TABLE shared.users IS 'Core user accounts; soft-deleted by setting deleted_at';
COMMENT ON COLUMN shared.users.email IS 'Unique, ignoring case, among rows whose deleted_at is null';
COMMENT ON COLUMN shared.users.deleted_at IS 'Soft delete: set, never DELETE; null for live rows';
COMMENT ON COLUMN shared.users.updated_at IS 'Kept current by trigger users_set_updated_at';
