-- Sequences that the column defaults of the chosen tables ($1) call (pg_depend from pg_attrdef,
-- deptype 'n'), with their options and the column that owns each on the source, if any. A
-- sequence its own table owns is read by sequences.sql too; the rest are free-standing (or
-- owned by another table) and must exist on the target before the tables that call them.
SELECT ad.adrelid AS table_oid,
       a.attname AS column_name,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS column_type,
       n.nspname,
       c.relname,
       pg_catalog.format_type(s.seqtypid, NULL) AS data_type,
       s.seqstart,
       s.seqincrement,
       s.seqmin,
       s.seqmax,
       s.seqcache,
       s.seqcycle,
       owner.refobjid AS owner_oid,
       owner_n.nspname AS owner_schema,
       owner_c.relname AS owner_table,
       owner_a.attname AS owner_column
FROM pg_catalog.pg_attrdef ad
JOIN pg_catalog.pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
JOIN pg_catalog.pg_depend d
  ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
 AND d.objid = ad.oid
 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
 AND d.deptype = 'n'
JOIN pg_catalog.pg_class c ON c.oid = d.refobjid AND c.relkind = 'S'
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
LEFT JOIN pg_catalog.pg_depend owner
  ON owner.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
 AND owner.objid = c.oid
 AND owner.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
 AND owner.deptype IN ('a', 'i')
LEFT JOIN pg_catalog.pg_class owner_c ON owner_c.oid = owner.refobjid
LEFT JOIN pg_catalog.pg_namespace owner_n ON owner_n.oid = owner_c.relnamespace
LEFT JOIN pg_catalog.pg_attribute owner_a
  ON owner_a.attrelid = owner.refobjid AND owner_a.attnum = owner.refobjsubid
WHERE ad.adrelid = ANY ($1::oid[])
  AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY ad.adrelid, a.attnum, n.nspname, c.relname
