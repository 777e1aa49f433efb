-- Runs once, when the `postgres-data` volume is initialised (docker-entrypoint-initdb.d), in the
-- platform database. Migrations may create the same extensions again; IF NOT EXISTS keeps both
-- paths safe. pg_trgm ships with PostgreSQL (contrib), vector with the pgvector image.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
