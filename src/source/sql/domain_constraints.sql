-- CHECK constraints of the given domains.
SELECT contypid, conname, pg_catalog.pg_get_constraintdef(oid) AS definition
FROM pg_catalog.pg_constraint
WHERE contypid = ANY ($1::oid[])
ORDER BY contypid, conname
