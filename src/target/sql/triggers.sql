-- The user triggers of the named tables ($1 schemas, $2 names), with their enabled state.
SELECT n.nspname, c.relname, t.tgname, t.tgenabled::text
FROM unnest($1::text[], $2::text[]) AS w(schema_name, table_name)
JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema_name
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.table_name
JOIN pg_catalog.pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal
ORDER BY 1, 2, 3
