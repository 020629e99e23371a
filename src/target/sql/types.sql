-- Which of the named types ($1 schemas, $2 names) exist, with their enum labels in sort order
-- (none for other types).
SELECT n.nspname,
       t.typname,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
              WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
FROM unnest($1::text[], $2::text[]) AS w(schema_name, type_name)
JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema_name
JOIN pg_catalog.pg_type t ON t.typnamespace = n.oid AND t.typname = w.type_name
