-- Table constraints of the chosen tables (NOT NULL is a column property in PostgreSQL 15).
-- Constraints cloned from a partitioned parent are left to the parent, except on partitions
-- copied on their own ($2), which become plain tables and keep them.
SELECT con.conrelid,
       con.conname,
       con.contype::text AS contype,
       pg_catalog.pg_get_constraintdef(con.oid) AS definition,
       con.convalidated,
       con.conislocal,
       con.condeferrable,
       ARRAY(SELECT a.attname::text
               FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_catalog.pg_attribute a
                 ON a.attrelid = con.conrelid AND a.attnum = k.attnum
              ORDER BY k.ord) AS columns,
       ARRAY(SELECT a.attname::text
               FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_catalog.pg_attribute a
                 ON a.attrelid = con.confrelid AND a.attnum = k.attnum
              ORDER BY k.ord) AS ref_columns,
       rn.nspname AS ref_schema,
       rc.relname AS ref_table
FROM pg_catalog.pg_constraint con
LEFT JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.conrelid = ANY ($1::oid[])
  AND con.contype IN ('p', 'u', 'c', 'x', 'f')
  AND (con.conparentid = 0 OR con.conrelid = ANY ($2::oid[]))
ORDER BY con.conrelid, con.contype, con.conname
