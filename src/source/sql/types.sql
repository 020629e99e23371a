-- Facts about the given types, to find the user-defined ones a column needs and what they need
-- in turn (array elements, domain bases, composite attributes, range subtypes).
SELECT t.oid,
       n.nspname,
       t.typname,
       t.typtype::text AS typtype,
       CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END::oid AS array_element,
       t.typbasetype,
       t.typrelid,
       t.typnotnull,
       pg_catalog.pg_get_expr(t.typdefaultbin, 0) AS default_sql,
       CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END AS base_sql,
       CASE WHEN t.typtype = 'd' AND t.typcollation <> bt.typcollation
            THEN pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
       END AS collation_sql,
       (SELECT e.extname
          FROM pg_catalog.pg_depend dep
          JOIN pg_catalog.pg_extension e ON e.oid = dep.refobjid
         WHERE dep.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
           AND dep.objid = t.oid
           AND dep.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND dep.deptype = 'e') AS extension,
       (SELECT en.nspname
          FROM pg_catalog.pg_depend dep
          JOIN pg_catalog.pg_extension e ON e.oid = dep.refobjid
          JOIN pg_catalog.pg_namespace en ON en.oid = e.extnamespace
         WHERE dep.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
           AND dep.objid = t.oid
           AND dep.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND dep.deptype = 'e') AS extension_schema,
       COALESCE(r.rngsubtype, 0)::oid AS range_subtype,
       pg_catalog.obj_description(t.oid, 'pg_type') AS comment
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
LEFT JOIN pg_catalog.pg_collation co ON co.oid = t.typcollation
LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
LEFT JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
WHERE t.oid = ANY ($1::oid[])
