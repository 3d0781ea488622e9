-- lsready: a read-only ClickHouse user for LangSmith's trace store.
--
-- Run once as an administrator (a user with access management). Replace CHANGE-ME with a strong
-- password and, if LangSmith's database is not `default` (clickhouse.external.database), replace
-- `default.` in the grants on LangSmith's tables. Access entities live on each server unless the
-- cluster uses replicated access storage: then run this once; otherwise add
-- `ON CLUSTER '<cluster>'` after each CREATE / GRANT keyword, or run it on every replica.
--
-- What the probes read, and why each grant is needed:
--   system.clusters, system.one            replica list; which replicas answer (items 18-20, 61)
--   system.tables, system.columns          LangSmith tables' engines, SETTINGS and the runs time key
--   system.replicas                        replica health: read-only, active, queue, delay (item 18)
--   system.asynchronous_metrics,           CPUs and memory per node (item 24); settings are the
--     system.settings, system.server_settings  fallback when asynchronous_metrics is absent
--   system.disks, system.parts             disk usage and system log size (item 28), part counts
--   system.merge_tree_settings,            parts_to_delay_insert / parts_to_throw_insert, running
--     system.merges, system.mutations        merges and stuck mutations (part pressure)
--   system.processes, system.events        running queries and disk I/O counters (item 29)
--   system.query_log, system.part_log      P95 duration, timeouts (items 29, 59), collectability (61)
--   system.backups                         the latest BACKUPs, as evidence for the restore drill (63)
--   SHOW ROW POLICIES                      row policies that hide LangSmith rows (item 22)
--   SHOW USERS, SHOW ROLES                 SHOW GRANTS FOR LangSmith's user (item 22); reveals
--                                          grants and role names, never passwords
--   SHOW TABLES, SHOW COLUMNS ON default.* system.tables/parts/replicas/columns list only tables the
--                                          user may see; this is metadata, not rows
--   SELECT ON default.runs                 tenant volume (item 56) and ingestion delay, always
--                                          bounded by the partition / sort key time column
--   SELECT ON default.schema_migrations    migration state (item 23)
--   REMOTE, CREATE TEMPORARY TABLE         clusterAllReplicas(<cluster>, system.*) reads each replica;
--                                          readonly = 2 still forbids creating anything
--
-- The settings profile makes the user read-only. readonly = 2 (not 1) lets lsready set
-- max_execution_time, skip_unavailable_shards and max_rows_to_read on its own queries; it can
-- never change `readonly` itself. max_execution_time here is a backstop for every query.

CREATE SETTINGS PROFILE IF NOT EXISTS lsready_profile SETTINGS readonly = 2, max_execution_time = 30;

CREATE ROLE IF NOT EXISTS lsready_reader;

GRANT SELECT ON system.clusters TO lsready_reader;
GRANT SELECT ON system.one TO lsready_reader;
GRANT SELECT ON system.tables TO lsready_reader;
GRANT SELECT ON system.columns TO lsready_reader;
GRANT SELECT ON system.replicas TO lsready_reader;
GRANT SELECT ON system.asynchronous_metrics TO lsready_reader;
GRANT SELECT ON system.settings TO lsready_reader;
GRANT SELECT ON system.server_settings TO lsready_reader;
GRANT SELECT ON system.disks TO lsready_reader;
GRANT SELECT ON system.parts TO lsready_reader;
GRANT SELECT ON system.merge_tree_settings TO lsready_reader;
GRANT SELECT ON system.merges TO lsready_reader;
GRANT SELECT ON system.mutations TO lsready_reader;
GRANT SELECT ON system.processes TO lsready_reader;
GRANT SELECT ON system.events TO lsready_reader;
GRANT SELECT ON system.query_log TO lsready_reader;
GRANT SELECT ON system.backups TO lsready_reader;
GRANT SELECT ON system.part_log TO lsready_reader;
GRANT SELECT ON system.row_policies TO lsready_reader;
GRANT SHOW ROW POLICIES ON *.* TO lsready_reader;
GRANT SHOW USERS, SHOW ROLES ON *.* TO lsready_reader;
GRANT SHOW TABLES, SHOW COLUMNS ON default.* TO lsready_reader;
GRANT SELECT ON default.runs TO lsready_reader;
GRANT SELECT ON default.schema_migrations TO lsready_reader;
GRANT REMOTE ON *.* TO lsready_reader;
GRANT CREATE TEMPORARY TABLE ON *.* TO lsready_reader;

CREATE USER IF NOT EXISTS lsready IDENTIFIED WITH sha256_password BY 'CHANGE-ME'
    SETTINGS PROFILE 'lsready_profile';

-- A newly granted role is a default role of a user created without DEFAULT ROLE.
GRANT lsready_reader TO lsready;
