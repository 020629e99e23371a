-- The functions of the given schemas and names ($1, $2), each as its identity key: schema,
-- name and argument types by schema and name (`public.f(pg_catalog.int4)`), which is the same
-- text on two servers exactly when the functions are the same one (source/sql/depends.sql
-- computes the source's the same way).
SELECT n.nspname || '.' || p.proname || '(' || coalesce((
           SELECT pg_catalog.string_agg(tn.nspname || '.' || t.typname, ',' ORDER BY a.ord)
             FROM unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY AS a(typ, ord)
             JOIN pg_catalog.pg_type t ON t.oid = a.typ
             JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace), '') || ')'
FROM unnest($1::text[], $2::text[]) AS w(schema_name, function_name)
JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema_name
JOIN pg_catalog.pg_proc p ON p.pronamespace = n.oid AND p.proname = w.function_name
