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
       rn.nspname AS ref_schema,
       rc.relname AS ref_table,
       -- A key's index after USING (see indexes.sql), to build it before the constraint.
       CASE WHEN con.contype IN ('p', 'u')
                 AND pg_catalog.left(d.definition, pg_catalog.length(d.head)) = d.head
            THEN pg_catalog.substr(d.definition, pg_catalog.length(d.head) + 1) END AS index_body
FROM pg_catalog.pg_constraint con
LEFT JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
JOIN pg_catalog.pg_class t ON t.oid = con.conrelid
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
LEFT JOIN pg_catalog.pg_class ic ON ic.oid = con.conindid
LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = con.conindid
CROSS JOIN LATERAL (
    SELECT pg_catalog.pg_get_indexdef(con.conindid) AS definition,
           'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
           || pg_catalog.quote_ident(ic.relname) || ' ON '
           || CASE WHEN t.relkind = 'p' THEN 'ONLY ' ELSE '' END
           || pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.relname)
           || ' USING ' AS head) d
WHERE con.conrelid = ANY ($1::oid[])
  AND con.contype IN ('p', 'u', 'c', 'x', 'f')
  AND (con.conparentid = 0 OR con.conrelid = ANY ($2::oid[]))
ORDER BY con.conrelid, con.contype, con.conname
