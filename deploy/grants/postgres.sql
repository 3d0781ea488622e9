-- lsready: a read-only monitoring role for LangSmith's PostgreSQL.
--
-- Run once as a superuser (or rds_superuser / cloudsqlsuperuser / azure_pg_admin), connected to
-- the LangSmith database. Replace `postgres` in the GRANT with that database's name if it differs,
-- then set a password out of band, e.g. in psql: \password lsready
--
-- pg_monitor (pg_read_all_settings + pg_read_all_stats + pg_stat_scan_tables) is all the probes
-- need: archive and preload settings, every session in pg_stat_activity, pg_stat_statements texts,
-- pg_database_size of every database and pg_ls_waldir(). The role owns nothing and writes nothing.
CREATE ROLE lsready WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 10
    IN ROLE pg_monitor;

-- Defence in depth: lsready already opens read-only sessions with a statement timeout.
ALTER ROLE lsready SET default_transaction_read_only = on;
ALTER ROLE lsready SET statement_timeout = '10s';

GRANT CONNECT ON DATABASE postgres TO lsready;
