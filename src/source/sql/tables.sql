-- Every table a pattern may name: ordinary and partitioned tables outside the system schemas,
-- with what partitioning needs (the partition key, a partition's bound and parent), its
-- inheritance parents and whether it has inheritance children, and for a
-- table that belongs to an extension (pg_depend deptype 'e'), the extension, its schema, and
-- the condition that picks the rows the extension marks as user data
-- (pg_extension_config_dump: '' for all of them; NULL when it marks none).
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
         WHERE i.inhrelid = c.oid AND c.relispartition) AS parent_oid,
       -- Inheritance parents (not a partition's), in INHERITS order.
       ARRAY(SELECT pn.nspname::text FROM pg_catalog.pg_inherits i
               JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
               JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
              WHERE i.inhrelid = c.oid AND NOT c.relispartition
              ORDER BY i.inhseqno) AS parent_schemas,
       ARRAY(SELECT p.relname::text FROM pg_catalog.pg_inherits i
               JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
              WHERE i.inhrelid = c.oid AND NOT c.relispartition
              ORDER BY i.inhseqno) AS parent_names,
       c.relkind = 'r' AND EXISTS (SELECT FROM pg_catalog.pg_inherits i
                                    WHERE i.inhparent = c.oid) AS has_children,
       e.extname AS extension,
       en.nspname AS extension_schema,
       (SELECT u.condition
          FROM unnest(e.extconfig, e.extcondition) AS u(config, condition)
         WHERE u.config = c.oid) AS user_rows
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_depend d
       ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.objid = c.oid
      AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
      AND d.deptype = 'e'
LEFT JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
LEFT JOIN pg_catalog.pg_namespace en ON en.oid = e.extnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY n.nspname, c.relname
