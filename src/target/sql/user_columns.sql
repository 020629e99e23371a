-- The columns of the named tables ($1 schemas, $2 names) as a data-only load matches them by
-- name: type, generated, identity, whether the type is an integer; and of the table, whether
-- the connecting role owns it (may turn its triggers off) and whether it is partitioned.
SELECT n.nspname, c.relname, a.attname,
       pg_catalog.format_type(a.atttypid, a.atttypmod),
       a.attgenerated <> '', a.attidentity::text,
       a.atttypid IN ('pg_catalog.int2'::pg_catalog.regtype, 'pg_catalog.int4'::pg_catalog.regtype,
                      'pg_catalog.int8'::pg_catalog.regtype),
       pg_catalog.pg_has_role(c.relowner, 'USAGE'), c.relkind = 'p'
FROM unnest($1::text[], $2::text[]) AS w(schema_name, table_name)
JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema_name
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.table_name
    AND c.relkind IN ('r', 'p')
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
    AND NOT a.attisdropped
ORDER BY 1, 2, a.attnum
