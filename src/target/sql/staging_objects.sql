-- Views and materialized views in the staging schema ($1), each with whether it has a unique
-- index (a materialized view can then be refreshed CONCURRENTLY).
SELECT c.relname,
       c.relkind::text,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisunique)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1
  AND c.relkind IN ('v', 'm')
