-- Which of the named tables ($1 schemas, $2 names) exist, with the names of their constraints.
SELECT n.nspname, c.relname, con.conname
FROM unnest($1::text[], $2::text[]) AS w(schema_name, table_name)
JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema_name
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.table_name
LEFT JOIN pg_catalog.pg_constraint con ON con.conrelid = c.oid
