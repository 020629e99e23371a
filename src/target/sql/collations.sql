-- Which of the named collations ($1 schemas, $2 names) exist and can be used in this
-- database (collations of another encoding than the database's cannot).
SELECT n.nspname, c.collname
FROM unnest($1::text[], $2::text[]) AS w(schema_name, collation_name)
JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema_name
JOIN pg_catalog.pg_collation c ON c.collnamespace = n.oid AND c.collname = w.collation_name
WHERE c.collencoding IN (-1, pg_catalog.pg_char_to_encoding(pg_catalog.getdatabaseencoding()))
