-- For each named extension ($1): whether the database has it, and whether the server can
-- install it (its package is there).
SELECT w.name,
       EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname = w.name),
       EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions a WHERE a.name = w.name)
FROM unnest($1::text[]) AS w(name)
