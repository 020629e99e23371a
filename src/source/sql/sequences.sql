-- Sequences owned by columns of the chosen tables: serial ('a') and identity ('i').
SELECT d.refobjid AS table_oid,
       a.attname AS column_name,
       n.nspname,
       c.relname,
       d.deptype::text AS deptype,
       pg_catalog.format_type(s.seqtypid, NULL) AS data_type,
       s.seqstart,
       s.seqincrement,
       s.seqmin,
       s.seqmax,
       s.seqcache,
       s.seqcycle
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_class c ON c.oid = d.objid AND c.relkind = 'S'
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
  AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
  AND d.refobjid = ANY ($1::oid[])
  AND d.deptype IN ('a', 'i')
ORDER BY d.refobjid, a.attnum
