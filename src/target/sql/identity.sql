-- Of the named tables ($1 schemas, $2 names), what on the target needs each one to keep its
-- identity (its oid) through a full reload: the first of the things snapcopy does not make
-- itself that a new table in its place would lose, or that would go with the old one (grants,
-- a role other than the run's owning it, row security, storage or statistics settings, a
-- replica identity, a clustered index, inheritance, a foreign key to a table not named, any
-- object that depends on it or on its row type other than its own parts and the named tables'
-- foreign keys), or NULL; then its comment and its columns' comments (the plan compares them
-- with the source's), and its fingerprint (sql/fingerprint.sql, spliced in for FINGERPRINT).
WITH w AS (
    SELECT c.oid, n.nspname, c.relname, c.reltype
    FROM unnest($1::text[], $2::text[]) AS u(schema_name, table_name)
    JOIN pg_catalog.pg_namespace n ON n.nspname = u.schema_name
    JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = u.table_name
    WHERE c.relkind = 'r'
), named AS (
    SELECT oid FROM w
), dependents AS (
    -- What depends on each table or its row type (and its array type), its own parts left out.
    SELECT w.oid AS table_oid,
           pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what
    FROM w
    JOIN pg_catalog.pg_type t ON t.oid = w.reltype
    JOIN pg_catalog.pg_depend d
      ON (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = w.oid)
      OR (d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass
          AND d.refobjid IN (w.reltype, t.typarray))
    WHERE d.deptype <> 'i'
      AND NOT (d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.objid = t.typarray)
      -- Its indexes and owned sequences, its defaults and its own constraints.
      AND NOT (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype = 'a'
               AND (EXISTS (SELECT 1 FROM pg_catalog.pg_index x
                            WHERE x.indexrelid = d.objid AND x.indrelid = w.oid)
                    OR EXISTS (SELECT 1 FROM pg_catalog.pg_class s
                               WHERE s.oid = d.objid AND s.relkind = 'S')))
      AND NOT (d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass)
      -- Constraints of the named tables: their own, and foreign keys among them.
      AND NOT (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
               AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                           WHERE k.oid = d.objid AND k.conrelid IN (SELECT oid FROM named)))
      -- Triggers: the table's own (the plan compares them with the source's), and those of the
      -- named tables' foreign keys.
      AND NOT (d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass
               AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                           LEFT JOIN pg_catalog.pg_constraint k ON k.oid = g.tgconstraint
                           WHERE g.oid = d.objid
                             AND (g.tgrelid = w.oid OR k.conrelid IN (SELECT oid FROM named))))
)
SELECT w.nspname, w.relname,
       coalesce(
           CASE WHEN c.relacl <> pg_catalog.acldefault('r', c.relowner)
                THEN 'it has grants on the target' END,
           (SELECT 'its column ' || pg_catalog.quote_ident(a.attname) || ' has grants on the target'
            FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = w.oid AND a.attnum > 0 AND a.attacl <> '{}'
            ORDER BY a.attnum LIMIT 1),
           CASE WHEN c.relowner <> (SELECT r.oid FROM pg_catalog.pg_roles r
                                    WHERE r.rolname = current_user)
                THEN 'another role owns it' END,
           CASE WHEN c.relrowsecurity OR c.relforcerowsecurity
                THEN 'row security is on for it' END,
           CASE WHEN c.reloptions <> '{}' THEN 'it has storage parameters set' END,
           CASE WHEN c.relreplident <> 'd' THEN 'it has a replica identity set' END,
           (SELECT 'its column ' || pg_catalog.quote_ident(a.attname)
                   || ' has statistics or options set'
            FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = w.oid AND a.attnum > 0 AND NOT a.attisdropped
              AND (a.attstattarget >= 0 OR a.attoptions IS NOT NULL)
            ORDER BY a.attnum LIMIT 1),
           (SELECT 'it is clustered on an index' FROM pg_catalog.pg_index x
            WHERE x.indrelid = w.oid AND x.indisclustered LIMIT 1),
           CASE WHEN c.relhassubclass OR c.relispartition
                     OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = w.oid)
                THEN 'it takes part in inheritance' END,
           (SELECT 'its foreign key ' || pg_catalog.quote_ident(k.conname) || ' references '
                   || k.confrelid::pg_catalog.regclass::text || ', which is not in the run'
            FROM pg_catalog.pg_constraint k
            WHERE k.conrelid = w.oid AND k.contype = 'f'
              AND k.confrelid NOT IN (SELECT oid FROM named)
            ORDER BY k.conname LIMIT 1),
           (SELECT min(dep.what) || ' depends on it' FROM dependents dep
            WHERE dep.table_oid = w.oid)
       ),
       pg_catalog.obj_description(w.oid, 'pg_class'),
       coalesce((SELECT pg_catalog.jsonb_object_agg(a.attname, s.description)
                 FROM pg_catalog.pg_attribute a
                 JOIN pg_catalog.pg_description s
                   ON s.objoid = w.oid AND s.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
                  AND s.objsubid = a.attnum
                 WHERE a.attrelid = w.oid AND a.attnum > 0), '{}')::text,
       FINGERPRINT
FROM w
JOIN pg_catalog.pg_class c ON c.oid = w.oid
ORDER BY 1, 2
