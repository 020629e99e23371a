-- What the chosen tables ($1; their user triggers too when $3) and the user types they use
-- ($2) depend on besides their column types, found as pg_dump finds what to create first:
-- pg_depend edges (deptype 'n') from each
-- table's parts (columns, defaults, constraints, indexes, user triggers) and from each type's
-- constraints (domain checks) to functions, collations, operator classes, operators and types;
-- then, recursively, from each user function to what it needs (argument and result types,
-- functions its SQL-standard body calls, its language). Objects of pg_catalog are pinned and
-- have no pg_depend rows, so they never appear.
-- from_class / from_oid: the table (pg_class), type (pg_type) or function (pg_proc) that
-- needs the object; to_class / to_oid: the object. An object that belongs to an extension
-- comes with the extension's name; it is not walked into (the extension brings it).
WITH RECURSIVE
parts(root_class, root, classid, objid) AS (
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::oid, t.oid,
           'pg_catalog.pg_class'::pg_catalog.regclass::oid, t.oid
      FROM unnest($1::oid[]) AS t(oid)
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::oid, d.adrelid,
           'pg_catalog.pg_attrdef'::pg_catalog.regclass::oid, d.oid
      FROM pg_catalog.pg_attrdef d WHERE d.adrelid = ANY ($1::oid[])
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::oid, c.conrelid,
           'pg_catalog.pg_constraint'::pg_catalog.regclass::oid, c.oid
      FROM pg_catalog.pg_constraint c WHERE c.conrelid = ANY ($1::oid[])
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::oid, i.indrelid,
           'pg_catalog.pg_class'::pg_catalog.regclass::oid, i.indexrelid
      FROM pg_catalog.pg_index i WHERE i.indrelid = ANY ($1::oid[])
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::oid, g.tgrelid,
           'pg_catalog.pg_trigger'::pg_catalog.regclass::oid, g.oid
      FROM pg_catalog.pg_trigger g
     WHERE g.tgrelid = ANY ($1::oid[]) AND NOT g.tgisinternal AND $3::boolean
    UNION ALL
    SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::oid, c.contypid,
           'pg_catalog.pg_constraint'::pg_catalog.regclass::oid, c.oid
      FROM pg_catalog.pg_constraint c WHERE c.contypid = ANY ($2::oid[])
),
edges(from_class, from_oid, to_class, to_oid) AS (
    SELECT p.root_class, p.root, d.refclassid, d.refobjid
      FROM parts p
      JOIN pg_catalog.pg_depend d ON d.classid = p.classid AND d.objid = p.objid
     WHERE d.deptype = 'n'
       AND d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass,
                            'pg_catalog.pg_collation'::pg_catalog.regclass,
                            'pg_catalog.pg_opclass'::pg_catalog.regclass,
                            'pg_catalog.pg_operator'::pg_catalog.regclass,
                            'pg_catalog.pg_type'::pg_catalog.regclass)
    UNION
    SELECT e.to_class, e.to_oid, d.refclassid, d.refobjid
      FROM edges e
      JOIN pg_catalog.pg_depend d ON d.classid = e.to_class AND d.objid = e.to_oid
     WHERE e.to_class = 'pg_catalog.pg_proc'::pg_catalog.regclass
       AND d.deptype = 'n'
       AND d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass,
                            'pg_catalog.pg_collation'::pg_catalog.regclass,
                            'pg_catalog.pg_type'::pg_catalog.regclass,
                            'pg_catalog.pg_language'::pg_catalog.regclass)
       AND NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_depend x
             WHERE x.classid = e.to_class AND x.objid = e.to_oid
               AND x.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
               AND x.deptype = 'e')
)
SELECT e.from_class::pg_catalog.regclass::text AS from_class,
       e.from_oid,
       e.to_class::pg_catalog.regclass::text AS to_class,
       e.to_oid,
       x.extname AS extension,
       -- A function: its schema, name, signature, identity key (argument types by schema and
       -- name, comparable across servers) and definition, for plain functions of no extension.
       pn.nspname AS function_schema,
       p.proname AS function_name,
       CASE WHEN p.oid IS NOT NULL THEN p.oid::pg_catalog.regprocedure::text END AS signature,
       CASE WHEN p.oid IS NOT NULL THEN
            pn.nspname || '.' || p.proname || '(' || coalesce((
                SELECT pg_catalog.string_agg(tn.nspname || '.' || t.typname, ',' ORDER BY a.ord)
                  FROM unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY AS a(typ, ord)
                  JOIN pg_catalog.pg_type t ON t.oid = a.typ
                  JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace), '') || ')'
       END AS function_key,
       CASE WHEN p.prokind = 'f' AND x.extname IS NULL
            THEN pg_catalog.pg_get_functiondef(p.oid) END AS function_definition,
       -- A collation: its schema, name and row (to_jsonb keeps the query version-independent).
       cn.nspname AS collation_schema,
       co.collname AS collation_name,
       CASE WHEN co.oid IS NOT NULL THEN pg_catalog.to_jsonb(co)::text END AS collation
FROM edges e
LEFT JOIN pg_catalog.pg_depend xd
       ON xd.classid = e.to_class AND xd.objid = e.to_oid
      AND xd.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND xd.deptype = 'e'
LEFT JOIN pg_catalog.pg_extension x ON x.oid = xd.refobjid
LEFT JOIN pg_catalog.pg_proc p
       ON e.to_class = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.oid = e.to_oid
LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
LEFT JOIN pg_catalog.pg_collation co
       ON e.to_class = 'pg_catalog.pg_collation'::pg_catalog.regclass AND co.oid = e.to_oid
LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
ORDER BY 1, 2, 3, 4
