//! Foreign keys checked once per key instead of once per row, where a reload allows it.
//!
//! A reload keeps the foreign keys of small tables in place, so PostgreSQL checks every row
//! it inserts against the referenced table, one query per row (about 7 ms per 1,000 rows,
//! most of a small table's reload). A unit that only reloads, creates and rebuilds managed
//! tables turns those per-row checks off instead (`session_replication_role = replica`, which
//! only a superuser may set: other roles keep the per-row checks) and, once every table has
//! its rows, checks each foreign key of the tables it wrote with one query: the one PostgreSQL
//! runs when it validates a key (`RI_Initial_Check`), with the key's own operators, match type
//! and collation. A row that breaks a key fails the unit with PostgreSQL's words for it, and
//! everything rolls back, as a per-row check would have.
//!
//! Replica mode turns off the user's triggers and rules too; a reload turns their triggers
//! off already, and their rules (which rewrite an `INSERT`) never belong on a reload's rows.

use super::unit::UnitContext;
use super::{Action, TableInfo};
use crate::source::{ConstraintKind, Table};
use crate::sql::{literal, QualifiedName};

/// Turns the row-by-row foreign-key checks off until the transaction ends, for a superuser.
const CHECKS_OFF: &str = "DO $snapcopy$ BEGIN \
    IF pg_catalog.current_setting('is_superuser')::boolean THEN \
    SET LOCAL session_replication_role = replica; END IF; END $snapcopy$";

impl UnitContext<'_> {
    /// Whether the unit checks its foreign keys once per key (see the module's comment): it
    /// reloads a table with a foreign key, and only reloads, creates and rebuilds snapcopy's
    /// own tables (an incremental or synced table would be checked whole for a few rows; the
    /// user's own tables keep their triggers).
    pub(super) fn checks_keys_once(&self, ordered: &[&Table], infos: &[TableInfo]) -> bool {
        let reloads_a_key = ordered.iter().zip(infos).any(|(table, info)| {
            info.action == Action::Reload
                && table
                    .constraints
                    .iter()
                    .any(|c| matches!(c.kind, ConstraintKind::ForeignKey { .. }))
        });
        reloads_a_key
            && infos.iter().all(|i| {
                matches!(
                    i.action,
                    Action::Reload | Action::Create | Action::Rebuild | Action::Replace
                ) && !i.data_only
            })
    }
}

/// The statement that turns the per-row checks off (a superuser's session only).
pub(super) fn checks_off() -> String {
    CHECKS_OFF.to_string()
}

/// The statement that checks, when the per-row checks were off, every foreign key that the
/// target has on `tables` and their partitions (the source's and any the developer added),
/// one query per key, and fails on the first row that breaks one. A key on a partition that
/// comes from its parent's is checked through the parent's.
pub(super) fn check_keys(tables: &[&QualifiedName]) -> String {
    let names = tables
        .iter()
        .map(|t| literal(&t.to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "DO $snapcopy$ -- each foreign key of the reloaded tables, checked once for all their rows
DECLARE
    k record;
    bad text;
BEGIN
    IF pg_catalog.current_setting('session_replication_role') <> 'replica' THEN
        RETURN;
    END IF;
    FOR k IN
        WITH tables AS (
            SELECT w.t FROM pg_catalog.unnest(ARRAY[{names}]::pg_catalog.regclass[]) AS w(t)
        ), written AS (
            -- A table that is neither partitioned nor a partition has no partition tree.
            SELECT t::pg_catalog.oid AS relid FROM tables
            UNION SELECT p.relid FROM tables, LATERAL pg_catalog.pg_partition_tree(t) AS p
        )
        SELECT c.conname, c.conrelid::pg_catalog.regclass AS fk_table,
            c.confrelid::pg_catalog.regclass AS pk_table,
            CASE WHEN fr.relkind = 'p' THEN '' ELSE 'ONLY ' END AS fk_only,
            CASE WHEN pr.relkind = 'p' THEN '' ELSE 'ONLY ' END AS pk_only,
            pg_catalog.string_agg(pg_catalog.format('(pk.%I)::%s OPERATOR(%I.%s) ((fk.%I)::%s%s)',
                pa.attname, pg_catalog.format_type(o.oprleft, NULL), ons.nspname, o.oprname,
                fa.attname, pg_catalog.format_type(o.oprright, NULL),
                CASE WHEN pa.attcollation <> fa.attcollation AND pa.attcollation <> 0 THEN
                    (SELECT pg_catalog.format(' COLLATE %I.%I', cns.nspname, co.collname)
                     FROM pg_catalog.pg_collation co
                     JOIN pg_catalog.pg_namespace cns ON cns.oid = co.collnamespace
                     WHERE co.oid = pa.attcollation)
                ELSE '' END), ' AND ' ORDER BY u.n) AS joined,
            pg_catalog.string_agg(pg_catalog.format('fk.%I IS NOT NULL', fa.attname),
                CASE c.confmatchtype WHEN 'f' THEN ' OR ' ELSE ' AND ' END ORDER BY u.n) AS keyed,
            pg_catalog.string_agg(pg_catalog.format('fk.%I', fa.attname), ', ' ORDER BY u.n)
                AS key_values,
            pg_catalog.string_agg(pg_catalog.quote_ident(fa.attname), ', ' ORDER BY u.n)
                AS key_names,
            (pg_catalog.array_agg(pg_catalog.quote_ident(pa.attname) ORDER BY u.n))[1] AS pk_first
        FROM pg_catalog.pg_constraint c
        JOIN pg_catalog.pg_class fr ON fr.oid = c.conrelid
        JOIN pg_catalog.pg_class pr ON pr.oid = c.confrelid
        CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(c.conkey), pg_catalog.unnest(c.confkey),
                pg_catalog.unnest(c.conpfeqop))
            WITH ORDINALITY AS u(fk_att, pk_att, op, n)
        JOIN pg_catalog.pg_attribute fa ON fa.attrelid = c.conrelid AND fa.attnum = u.fk_att
        JOIN pg_catalog.pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = u.pk_att
        JOIN pg_catalog.pg_operator o ON o.oid = u.op
        JOIN pg_catalog.pg_namespace ons ON ons.oid = o.oprnamespace
        WHERE c.contype = 'f'
            AND c.conrelid IN (SELECT relid FROM written)
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint pc
                WHERE pc.oid = c.conparentid AND pc.conrelid IN (SELECT relid FROM written))
            -- A key whose checks a superuser turned off (DISABLE TRIGGER ALL) stays unchecked.
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger t
                WHERE t.tgconstraint = c.oid AND t.tgrelid = c.conrelid AND t.tgenabled = 'D')
        GROUP BY c.oid, c.conname, c.conrelid, c.confrelid, fr.relkind, pr.relkind
    LOOP
        EXECUTE pg_catalog.format(
            'SELECT ROW(%s)::text FROM %s%s fk LEFT JOIN %s%s pk ON %s '
            'WHERE pk.%s IS NULL AND (%s) LIMIT 1',
            k.key_values, k.fk_only, k.fk_table, k.pk_only, k.pk_table, k.joined,
            k.pk_first, k.keyed)
        INTO bad;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'insert or update on table \"%\" violates foreign key constraint \"%\"',
                k.fk_table, k.conname
                USING ERRCODE = 'foreign_key_violation',
                DETAIL = pg_catalog.format('Key (%s)=%s is not present in table \"%s\".',
                    k.key_names, bad, k.pk_table);
        END IF;
    END LOOP;
END
$snapcopy$"
    )
}
