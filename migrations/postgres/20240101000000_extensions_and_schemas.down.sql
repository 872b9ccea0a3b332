DROP FUNCTION IF EXISTS shared.set_updated_at();
-- RESTRICT (the default): a schema still holding objects is not silently emptied.
DROP SCHEMA IF EXISTS audit;
DROP SCHEMA IF EXISTS design;
DROP SCHEMA IF EXISTS catalog;
DROP SCHEMA IF EXISTS avatar;
DROP SCHEMA IF EXISTS shared;
DROP EXTENSION IF EXISTS ltree;
DROP EXTENSION IF EXISTS pg_trgm;
DROP EXTENSION IF EXISTS pgcrypto;
DROP EXTENSION IF EXISTS "uuid-ossp";
