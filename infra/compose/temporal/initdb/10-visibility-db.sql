-- Runs once, when the `temporal-db-data` volume is initialised. POSTGRES_DB creates `temporal`;
-- Temporal also needs its visibility database. The `temporal-schema` job then creates or upgrades
-- the schemas of both.
CREATE DATABASE temporal_visibility OWNER temporal;
