-- User triggers of the chosen tables ($1): ordinary and constraint triggers, not the ones
-- PostgreSQL makes for foreign keys (tgisinternal), with their enabled state. A trigger cloned
-- from a partitioned parent comes from the parent, except on partitions copied on their own
-- ($2). tgparentid exists from PostgreSQL 13 (older servers mark clones tgisinternal), hence
-- the JSON.
SELECT t.tgrelid,
       t.tgname,
       pg_catalog.pg_get_triggerdef(t.oid) AS definition,
       t.tgenabled::text AS enabled
FROM pg_catalog.pg_trigger t
WHERE t.tgrelid = ANY ($1::oid[])
  AND NOT t.tgisinternal
  AND (coalesce((pg_catalog.to_jsonb(t) ->> 'tgparentid')::oid, 0) = 0
       OR t.tgrelid = ANY ($2::oid[]))
ORDER BY t.tgrelid, t.tgname
