-- Every table a pattern may name: ordinary and partitioned tables outside the system schemas.
SELECT c.oid,
       n.nspname,
       c.relname,
       c.relkind::text AS relkind,
       c.relispartition,
       EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid) AS is_child,
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
       greatest(c.reltuples, 0)::bigint AS estimated_rows,
       pg_catalog.pg_total_relation_size(c.oid) AS total_bytes
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY n.nspname, c.relname
