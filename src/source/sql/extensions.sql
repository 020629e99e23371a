-- Every extension of the source database: its schema and the extensions it requires (they
-- must be created first, each in its own schema).
SELECT e.extname,
       n.nspname,
       ARRAY(SELECT r.extname::text
               FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_extension r ON r.oid = d.refobjid
              WHERE d.classid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                AND d.objid = e.oid
                AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
              ORDER BY r.extname) AS requires
FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
ORDER BY e.extname
