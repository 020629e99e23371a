-- The keys of the named tables ($1 schemas, $2 names) that a data-only load must respect: their
-- foreign keys (kind 'out', with the referenced table and whether the key is deferrable; a
-- partition's copies of its parent's keys left out), and whether each has a unique index
-- ON CONFLICT can use (kind 'unique'). The keys that reference them: `referencing.sql`.
WITH w AS (
    SELECT c.oid, n.nspname, c.relname
    FROM unnest($1::text[], $2::text[]) AS u(schema_name, table_name)
    JOIN pg_catalog.pg_namespace n ON n.nspname = u.schema_name
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = u.table_name
)
SELECT w.nspname, w.relname, 'out', k.conname, rn.nspname, r.relname, k.condeferrable
FROM w
JOIN pg_catalog.pg_constraint k ON k.conrelid = w.oid AND k.contype = 'f' AND k.conparentid = 0
JOIN pg_catalog.pg_class r ON r.oid = k.confrelid
JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
UNION ALL
SELECT w.nspname, w.relname, 'unique', NULL, NULL, NULL, false
FROM w
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_index i
              WHERE i.indrelid = w.oid AND i.indisunique AND i.indpred IS NULL)
ORDER BY 1, 2, 3, 4
