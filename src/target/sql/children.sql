-- The inheritance children (not partitions) of the named tables ($1 schemas, $2 names).
SELECT pn.nspname, p.relname, cn.nspname, c.relname
FROM unnest($1::text[], $2::text[]) AS w(schema_name, table_name)
JOIN pg_catalog.pg_namespace pn ON pn.nspname = w.schema_name
JOIN pg_catalog.pg_class p ON p.relnamespace = pn.oid AND p.relname = w.table_name
JOIN pg_catalog.pg_inherits i ON i.inhparent = p.oid
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid AND NOT c.relispartition
JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
ORDER BY 1, 2, 3, 4
