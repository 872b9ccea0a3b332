-- Extensions and schemas of the Fashion Wallet databases (architecture 7.1).
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS ltree;

-- Shared schema: cross-service data.
CREATE SCHEMA IF NOT EXISTS shared;
COMMENT ON SCHEMA shared IS 'Cross-service data (users)';

-- One schema per service.
CREATE SCHEMA IF NOT EXISTS avatar;
COMMENT ON SCHEMA avatar IS 'Avatar service';
CREATE SCHEMA IF NOT EXISTS catalog;
COMMENT ON SCHEMA catalog IS 'Catalog service';
CREATE SCHEMA IF NOT EXISTS design;
COMMENT ON SCHEMA design IS 'Design service (designs themselves live in MongoDB)';
CREATE SCHEMA IF NOT EXISTS audit;
COMMENT ON SCHEMA audit IS 'Audit trail of changes to the other schemas';

-- Keeps updated_at current on every UPDATE, whatever the client sends.
CREATE FUNCTION shared.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION shared.set_updated_at() IS 'BEFORE UPDATE trigger: sets updated_at to now()';
