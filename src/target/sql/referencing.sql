-- The tables with a foreign key to one of the named tables ($1 schemas, $2 names), each with
-- the table it references and the key's name (a partition's copies of its parent's keys left
-- out).
WITH w AS (
    SELECT c.oid, n.nspname, c.relname
    FROM unnest($1::text[], $2::text[]) AS u(schema_name, table_name)
    JOIN pg_catalog.pg_namespace n ON n.nspname = u.schema_name
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = u.table_name
)
SELECT DISTINCT dn.nspname, d.relname, w.nspname, w.relname, k.conname
FROM w
JOIN pg_catalog.pg_constraint k ON k.confrelid = w.oid
JOIN pg_catalog.pg_class d ON d.oid = k.conrelid
JOIN pg_catalog.pg_namespace dn ON dn.oid = d.relnamespace
WHERE k.contype = 'f' AND k.conparentid = 0 AND k.conrelid <> k.confrelid
ORDER BY 1, 2, 3, 4, 5
