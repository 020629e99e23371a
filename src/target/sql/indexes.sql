-- The indexes of the named tables ($1 schemas, $2 names) a reload may drop and build again
-- after its rows, each with whether something keeps it: kind 'key' for a primary key, unique
-- or exclusion constraint (kept when anything but a foreign key of the named tables depends on
-- it or its index: a view grouping by the key, a key of another table), kind 'index' for an
-- index no constraint owns (kept when anything depends on it).
WITH w AS (
    SELECT c.oid, n.nspname, c.relname
    FROM unnest($1::text[], $2::text[]) AS u(schema_name, table_name)
    JOIN pg_catalog.pg_namespace n ON n.nspname = u.schema_name
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = u.table_name
), ours AS (
    SELECT f.oid FROM pg_catalog.pg_constraint f JOIN w ON w.oid = f.conrelid WHERE f.contype = 'f'
)
SELECT w.nspname, w.relname, 'key', k.conname,
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
               WHERE d.deptype = 'n'
                 AND ((d.refclassid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
                       AND d.refobjid = k.oid)
                   OR (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                       AND d.refobjid = k.conindid))
                 AND NOT (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
                          AND d.objid IN (SELECT oid FROM ours)))
FROM w
JOIN pg_catalog.pg_constraint k ON k.conrelid = w.oid AND k.contype IN ('p', 'u', 'x')
UNION ALL
SELECT w.nspname, w.relname, 'index', i.relname,
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
               WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                 AND d.refobjid = x.indexrelid AND d.deptype = 'n')
FROM w
JOIN pg_catalog.pg_index x ON x.indrelid = w.oid
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = x.indexrelid
                  AND k.conrelid = w.oid)
ORDER BY 1, 2, 3, 4
