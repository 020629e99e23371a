-- Enum labels in their sort order, which may differ from oid order after ADD VALUE.
SELECT enumtypid, enumlabel
FROM pg_catalog.pg_enum
WHERE enumtypid = ANY ($1::oid[])
ORDER BY enumtypid, enumsortorder
