//! Refresh modes: what happens to a table snapcopy already manages, and how its rows come.
//!
//! Each mode is one type behind [`Refresh`]. `full` truncates and reloads (or rebuilds a table
//! whose shape changed on the source); `incremental` inserts the rows whose key is missing,
//! reading from the source only the rows above the last copy's high-water mark when the key
//! only grows.

use super::{Action, Decision, Phase, Pushdown, Step, TableInfo, UnitContext};
use crate::source::Table;
use crate::sql::{literal, Ident};

/// One refresh mode.
pub trait Refresh {
    /// The mode's name in the registry and messages.
    fn name(&self) -> &'static str;

    /// The verdict on a table snapcopy manages that exists on the target: what to do, or why
    /// not (`Err` refuses the table, with a message that says what to do instead). `changes`
    /// lists what changed on the source since the last copy; `cursor` is the configured
    /// growing column, if any.
    fn existing(
        &self,
        table: &Table,
        changes: Vec<String>,
        cursor: Option<&Ident>,
    ) -> Result<Decision, String>;

    /// The statements that bring the rows of one table.
    fn rows(&self, ctx: &UnitContext, table: &Table, info: &TableInfo, i: usize) -> Vec<Step>;
}

/// Truncate and reload; rebuild when the source's shape changed.
pub struct Full;

/// Insert what is missing.
pub struct Incremental;

impl Refresh for Full {
    fn name(&self) -> &'static str {
        "full"
    }

    fn existing(
        &self,
        _table: &Table,
        changes: Vec<String>,
        _cursor: Option<&Ident>,
    ) -> Result<Decision, String> {
        Ok(if changes.is_empty() {
            Decision::new(Action::Reload)
        } else {
            Decision {
                changes,
                ..Decision::new(Action::Rebuild)
            }
        })
    }

    /// The staging object, then `INSERT ... SELECT` from it. A large table read through a view
    /// comes in batches instead, from a cursor in the unit's source transaction: dblink would
    /// otherwise stage the whole result in the target's temp files before the first insert,
    /// and batches let progress move.
    fn rows(&self, ctx: &UnitContext, table: &Table, info: &TableInfo, i: usize) -> Vec<Step> {
        let mut steps = ctx.staging_steps(table, info, i);
        if ctx.options.staging == crate::cli::StagingKind::View {
            if let Some(batch) = batch_rows(table, ctx.options.batch_bytes) {
                steps.extend(ctx.batched_load(
                    table,
                    i,
                    batch,
                    &ctx.remote_select(table),
                    &table.name,
                ));
                return steps;
            }
        }
        steps.push(Step::new(
            Phase::Data,
            Some(i),
            format!(
                "{} SELECT {} FROM {}",
                ctx.insert_head(table, &table.name),
                super::loaded_columns(table),
                ctx.staging_ident(&table.name)
            ),
        ));
        steps
    }
}

/// Rows per batch for a table worth loading in batches (at least two batches' worth of data),
/// from the source's size estimates and the batch size in bytes (0: never batch).
pub(super) fn batch_rows(table: &Table, batch_bytes: i64) -> Option<i64> {
    if batch_bytes <= 0 {
        return None;
    }
    let bytes = table.bytes_with_partitions();
    let rows = table.estimated_rows.max(0)
        + table
            .partitions
            .iter()
            .map(|p| p.estimated_rows.max(0))
            .sum::<i64>();
    if bytes < 2 * batch_bytes {
        return None;
    }
    Some(if rows > 0 {
        (batch_bytes as f64 * rows as f64 / bytes as f64).max(10_000.0) as i64
    } else {
        100_000
    })
}

impl Refresh for Incremental {
    fn name(&self) -> &'static str {
        "incremental"
    }

    fn existing(
        &self,
        table: &Table,
        changes: Vec<String>,
        cursor: Option<&Ident>,
    ) -> Result<Decision, String> {
        let name = table.name.human();
        if !changes.is_empty() {
            return Err(format!(
                "{name} changed on the source since the last copy ({}); incremental mode only \
                 inserts rows into an unchanged table: run snapcopy --mode full {name} to \
                 rebuild it",
                changes.join("; ")
            ));
        }
        if let Some(column) = cursor {
            if !table.columns.iter().any(|c| &c.name == column) {
                return Err(format!(
                    "the key column {} configured for {name} does not exist on the source; fix \
                     [table.\"{name}\"] in snapcopy.toml",
                    column.raw()
                ));
            }
        }
        let Some(key) = table.key(cursor) else {
            return Err(format!(
                "{name} has no primary key and no unique key on NOT NULL columns, so \
                 incremental mode cannot tell which rows are missing; use --mode full for it"
            ));
        };
        Ok(Decision {
            pushdown: Some(match key.cursor {
                Some(cursor) => Pushdown::Above(cursor),
                None => Pushdown::AllKeys,
            }),
            ..Decision::new(Action::Insert)
        })
    }

    /// A new table loads like a full copy. An existing one gets the rows the source has and it
    /// lacks: when the key grows, the predicate goes into the remote query text (dblink's query
    /// is opaque, a local WHERE would filter after the whole transfer), built on the target from
    /// the high-water mark in the registry; `ON CONFLICT DO NOTHING` leaves local rows as they
    /// are. The statement returns rows read, rows inserted and the new high-water mark.
    fn rows(&self, ctx: &UnitContext, table: &Table, info: &TableInfo, i: usize) -> Vec<Step> {
        if info.action != Action::Insert {
            return Full.rows(ctx, table, info, i);
        }
        let select = literal(&ctx.remote_select(table));
        let (remote, high) = match &info.pushdown {
            Some(Pushdown::Above(c)) => {
                let registry = ctx.registry;
                let predicate = literal(&format!(" WHERE {} {} ", c.column, c.operator));
                (
                    format!(
                        "{select} || coalesce({predicate} || pg_catalog.quote_literal({}), '')",
                        crate::target::registry::high_water_sql(registry, &table.name),
                    ),
                    format!("(SELECT max({})::text FROM src)", c.column),
                )
            }
            _ => (select, "NULL::text".to_string()),
        };
        vec![Step::new(
            Phase::Insert,
            Some(i),
            format!(
                "WITH src AS MATERIALIZED (SELECT * FROM {dblink}.dblink({conn}, {remote}) AS t({defs})), \
                 ins AS ({head} SELECT {columns} FROM src ON CONFLICT DO NOTHING RETURNING 1) \
                 SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM ins), {high}",
                dblink = ctx.dblink_schema,
                conn = literal(ctx.server),
                defs = ctx.column_definitions(table),
                head = ctx.insert_head(table, &table.name),
                columns = super::loaded_columns(table),
            ),
        )]
    }
}
