-- avatar.avatars (architecture 7.1).
CREATE TABLE avatar.avatars (
    id            uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    user_id       uuid NOT NULL REFERENCES shared.users (id) ON DELETE CASCADE,
    name          varchar(255) NOT NULL,
    status        varchar(50)  NOT NULL DEFAULT 'pending',

    -- Measurements (JSONB for flexibility)
    measurements  jsonb DEFAULT '{}'::jsonb CHECK (jsonb_typeof(measurements) = 'object'),

    -- 3D model reference (stored in MongoDB)
    model_ref     varchar(255),

    -- Timestamps
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz NULL,

    -- Audit
    created_by    uuid REFERENCES shared.users (id),
    updated_by    uuid REFERENCES shared.users (id)
);

-- A user's live avatars; also serves the foreign key on user deletion.
CREATE INDEX idx_avatars_user_id ON avatar.avatars (user_id) WHERE deleted_at IS NULL;

CREATE TRIGGER avatars_set_updated_at
    BEFORE UPDATE ON avatar.avatars
    FOR EACH ROW EXECUTE FUNCTION shared.set_updated_at();

COMMENT ON TABLE avatar.avatars IS 'User avatars; the 3D model lives in MongoDB (model_ref); soft-deleted by deleted_at';
COMMENT ON COLUMN avatar.avatars.measurements IS 'Body measurements, a JSON object';
COMMENT ON COLUMN avatar.avatars.model_ref IS 'Id of the 3D model document in MongoDB';
