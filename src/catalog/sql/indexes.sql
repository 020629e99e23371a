-- Indexes that no constraint owns (those come back with their constraint). Indexes attached to
-- a partitioned parent's index come from the parent, except on partitions copied on their own
-- ($2).
SELECT i.indrelid,
       ic.relname AS index_name,
       pg_catalog.pg_get_indexdef(i.indexrelid) AS definition
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY ($1::oid[])
  AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_constraint con
        WHERE con.conindid = i.indexrelid
          AND con.conrelid = i.indrelid
          AND con.contype IN ('p', 'u', 'x'))
  AND (NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_inherits inh WHERE inh.inhrelid = i.indexrelid)
       OR i.indrelid = ANY ($2::oid[]))
ORDER BY i.indrelid, ic.relname
