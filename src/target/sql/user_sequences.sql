-- The sequences the columns of the named tables ($1 schemas, $2 names) draw from: owned by a
-- column (serial, identity) or called by a column's default.
WITH w AS (
    SELECT c.oid, n.nspname, c.relname
    FROM unnest($1::text[], $2::text[]) AS u(schema_name, table_name)
    JOIN pg_catalog.pg_namespace n ON n.nspname = u.schema_name
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = u.table_name
), uses AS (
    SELECT w.nspname, w.relname, d.refobjsubid AS attnum, d.objid AS seq
    FROM w
    JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
        AND d.refobjid = w.oid AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
        AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
    UNION
    SELECT w.nspname, w.relname, ad.adnum, d.refobjid
    FROM w
    JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = w.oid
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
        AND d.objid = ad.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
)
SELECT u.nspname, u.relname, a.attname, sn.nspname, s.relname
FROM uses u
JOIN pg_catalog.pg_class s ON s.oid = u.seq AND s.relkind = 'S'
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
JOIN w ON w.nspname = u.nspname AND w.relname = u.relname
JOIN pg_catalog.pg_attribute a ON a.attrelid = w.oid AND a.attnum = u.attnum
ORDER BY 1, 2, 3, 4, 5
