-- Every table a pattern may name: ordinary and partitioned tables outside the system schemas,
-- with what partitioning needs (the partition key, a partition's bound and parent).
SELECT c.oid,
       n.nspname,
       c.relname,
       c.relkind::text AS relkind,
       c.relispartition,
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
       greatest(c.reltuples, 0)::bigint AS estimated_rows,
       CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partkey,
       CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END AS bound,
       (SELECT i.inhparent FROM pg_catalog.pg_inherits i
         WHERE i.inhrelid = c.oid AND c.relispartition) AS parent_oid
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY n.nspname, c.relname
