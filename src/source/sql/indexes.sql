-- Indexes of the chosen tables. constraint_name names the key or exclusion constraint that owns
-- an index (the index comes back with its constraint; only its body is used). Indexes attached
-- to a partitioned parent's index come from the parent, except on partitions copied on their
-- own ($2).
-- body: the definition after USING (method, keys, INCLUDE, WITH, WHERE), when the definition
-- starts as expected, so that the index can be built under another name on another table.
SELECT i.indrelid,
       ic.relname AS index_name,
       con.conname AS constraint_name,
       d.definition,
       CASE WHEN pg_catalog.left(d.definition, pg_catalog.length(d.head)) = d.head
            THEN pg_catalog.substr(d.definition, pg_catalog.length(d.head) + 1) END AS body
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
LEFT JOIN pg_catalog.pg_constraint con
       ON con.conindid = i.indexrelid
      AND con.conrelid = i.indrelid
      AND con.contype IN ('p', 'u', 'x')
CROSS JOIN LATERAL (
    SELECT pg_catalog.pg_get_indexdef(i.indexrelid) AS definition,
           'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
           || pg_catalog.quote_ident(ic.relname) || ' ON '
           || CASE WHEN t.relkind = 'p' THEN 'ONLY ' ELSE '' END
           || pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.relname)
           || ' USING ' AS head) d
WHERE i.indrelid = ANY ($1::oid[])
  AND (NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_inherits inh WHERE inh.inhrelid = i.indexrelid)
       OR i.indrelid = ANY ($2::oid[]))
ORDER BY i.indrelid, ic.relname
