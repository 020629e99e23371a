//! The row SQL of each action: the staging object and the load of a table the run creates or
//! reloads, the missing rows of an incremental refresh, an extension's user rows. The action
//! (decided in [`super::decide`]) chooses; this module only writes the SQL.

use super::unit::UnitContext;
use super::{staging_name, Action, Phase, Pushdown, Step, StepKind, TableInfo, TableIx};
use crate::cli::StagingKind;
use crate::source::{ConstraintKind, Identity, Table};
use crate::sql::{literal, Ident, QualifiedName};

impl UnitContext<'_> {
    /// The statements that bring the rows of one table, as its action says.
    pub(super) fn rows(&self, table: &Table, info: &TableInfo, i: TableIx) -> Vec<Step> {
        match info.action {
            Action::Insert => self.missing_rows(table, info, i),
            Action::UserRows => vec![self.user_rows_step(table, i)],
            Action::Create | Action::Reload | Action::Rebuild => self.full_rows(table, info, i),
        }
    }

    /// The staging object, then `INSERT ... SELECT` from it. A large table read through a view
    /// comes in batches instead, from a cursor in the unit's source transaction: dblink would
    /// otherwise stage the whole result in the target's temp files before the first insert,
    /// and batches let progress move.
    pub(super) fn full_rows(&self, table: &Table, info: &TableInfo, i: TableIx) -> Vec<Step> {
        let ctx = self;
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
        steps.push(
            Step::new(
                Phase::Data,
                Some(i),
                format!(
                    "{} SELECT {} FROM {}",
                    ctx.insert_head(table, &table.name),
                    loaded_columns(table),
                    ctx.staging_ident(&table.name)
                ),
            )
            .of_kind(StepKind::Rows),
        );
        steps
    }

    /// A new table loads like a full copy. An existing one gets the rows the source has and it
    /// lacks: when the key grows, the predicate goes into the remote query text (dblink's query
    /// is opaque, a local WHERE would filter after the whole transfer), built on the target from
    /// the high-water mark in the registry; `ON CONFLICT DO NOTHING` leaves local rows as they
    /// are. The statement returns rows read, rows inserted and the new high-water mark.
    pub(super) fn missing_rows(&self, table: &Table, info: &TableInfo, i: TableIx) -> Vec<Step> {
        let ctx = self;
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
            Phase::Data,
            Some(i),
            format!(
                "WITH src AS MATERIALIZED (SELECT * FROM {dblink}.dblink({conn}, {remote}) AS t({defs})), \
                 ins AS ({head} SELECT {columns} FROM src ON CONFLICT DO NOTHING RETURNING 1) \
                 SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM ins), {high}",
                dblink = ctx.dblink_schema,
                conn = literal(ctx.server),
                defs = ctx.column_definitions(table),
                head = ctx.insert_head(table, &table.name),
                columns = loaded_columns(table),
            ),
        )
        .of_kind(StepKind::InsertMissing)]
    }

    pub(super) fn staging_ident(&self, table: &QualifiedName) -> QualifiedName {
        QualifiedName {
            schema: self.options.staging_schema.clone(),
            name: Ident::new(staging_name(table)),
        }
    }

    /// The `SELECT` the source runs for a table: loaded columns only, `FROM ONLY`. A table
    /// with no column to load (none at all, or only generated ones) still has rows to count:
    /// the source selects a constant per row, since a dblink column list cannot be empty.
    pub(super) fn remote_select(&self, table: &Table) -> String {
        let only = if table.is_partitioned() { "" } else { "ONLY " };
        let columns = loaded_columns(table);
        let columns = if columns.is_empty() { "1" } else { &columns };
        format!("SELECT {columns} FROM {only}{}", table.name)
    }

    /// `AS t(<column> <exact source type>, ...)`: dblink parses each value with the declared
    /// type's input function, so the type must be the source's own. A table with no column to
    /// load reads the constant of [`UnitContext::remote_select`].
    pub(super) fn column_definitions(&self, table: &Table) -> String {
        let definitions: Vec<String> = table
            .columns
            .iter()
            .filter(|c| c.is_loaded())
            .map(|c| format!("{} {}", c.name, c.type_sql))
            .collect();
        if definitions.is_empty() {
            return "snapcopy_row integer".to_string();
        }
        definitions.join(", ")
    }

    /// Brings the staging object up to date. An existing materialized view of an unchanged
    /// table is refreshed (CONCURRENTLY when it has a unique index); anything else is dropped
    /// and created. Either way a materialized view reads the source here, once, through the
    /// unit's dblink connection.
    pub(super) fn staging_steps(&self, table: &Table, info: &TableInfo, i: TableIx) -> Vec<Step> {
        let name = self.staging_ident(&table.name);
        let existing = self.target.staging_objects.get(name.name.raw());
        let mut steps = Vec::new();
        if let Some(obj) = existing {
            if obj.kind == StagingKind::Matview
                && self.options.staging == StagingKind::Matview
                && info.action == Action::Reload
            {
                let concurrently = if obj.unique_index {
                    " CONCURRENTLY"
                } else {
                    ""
                };
                steps.push(Step::new(
                    Phase::Staging,
                    Some(i),
                    format!("REFRESH MATERIALIZED VIEW{concurrently} {name}"),
                ));
                return steps;
            }
            steps.push(Step::new(
                Phase::Staging,
                Some(i),
                match obj.kind {
                    StagingKind::View => format!("DROP VIEW {name}"),
                    StagingKind::Matview => format!("DROP MATERIALIZED VIEW {name}"),
                },
            ));
        }
        let kind = match self.options.staging {
            StagingKind::View => "VIEW",
            StagingKind::Matview => "MATERIALIZED VIEW",
        };
        steps.push(Step::new(
            Phase::Staging,
            Some(i),
            format!(
                "CREATE {kind} {name} AS SELECT * FROM {}.dblink({}, {}) AS t({})",
                self.dblink_schema,
                literal(self.server),
                literal(&self.remote_select(table)),
                self.column_definitions(table)
            ),
        ));
        if self.options.staging == StagingKind::Matview {
            if let Some(pk) = table
                .constraints
                .iter()
                .find(|c| c.kind == ConstraintKind::PrimaryKey && !c.columns.is_empty())
            {
                steps.push(Step::new(
                    Phase::Staging,
                    Some(i),
                    format!(
                        "CREATE UNIQUE INDEX ON {name} ({})",
                        pk.columns
                            .iter()
                            .map(|c| c.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        steps
    }

    /// Declares a cursor for `select` (the table's rows, or a range of them) in the source
    /// transaction, inserts from it into `into` `batch` rows at a time (the executor repeats
    /// the batch until a short one), and closes it.
    pub(super) fn batched_load(
        &self,
        table: &Table,
        i: TableIx,
        batch: i64,
        select: &str,
        into: &QualifiedName,
    ) -> Vec<Step> {
        let dblink = self.dblink_schema;
        let conn = literal(self.server);
        let declare = format!("DECLARE snapcopy_rows NO SCROLL CURSOR FOR {select}");
        let fetch = Step::new(
            Phase::Data,
            Some(i),
            format!(
                "{} SELECT {} FROM {dblink}.dblink({conn}, 'FETCH {batch} FROM snapcopy_rows') AS t({})",
                self.insert_head(table, into),
                loaded_columns(table),
                self.column_definitions(table)
            ),
        )
        .of_kind(StepKind::Batch {
            size: batch as u64,
        });
        vec![
            Step::new(
                Phase::Staging,
                Some(i),
                format!("SELECT {dblink}.dblink_exec({conn}, {})", literal(&declare)),
            ),
            fetch,
            Step::new(
                Phase::Staging,
                Some(i),
                format!("SELECT {dblink}.dblink_exec({conn}, 'CLOSE snapcopy_rows')"),
            ),
        ]
    }

    /// Adds the rows the extension marks as user data (its condition, in the remote query) to
    /// the table the extension made on the target, leaving the rows it has: those with a key
    /// the target has already are skipped (or, without a unique key, rows equal to one there).
    pub(super) fn user_rows_step(&self, table: &Table, i: TableIx) -> Step {
        let condition = table.user_rows.as_deref().unwrap_or_default();
        let remote = format!("{} {condition}", self.remote_select(table));
        let rows = format!(
            "SELECT {} FROM {}.dblink({}, {}) AS t({})",
            loaded_columns(table),
            self.dblink_schema,
            literal(self.server),
            literal(remote.trim_end()),
            self.column_definitions(table)
        );
        let unique = table
            .constraints
            .iter()
            .any(|c| matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique))
            || table
                .indexes
                .iter()
                .any(|x| x.definition.starts_with("CREATE UNIQUE INDEX "));
        let head = self.insert_head(table, &table.name);
        Step::new(
            Phase::Data,
            Some(i),
            if unique {
                format!("{head} {rows} ON CONFLICT DO NOTHING")
            } else {
                format!(
                    "{head} {rows} EXCEPT SELECT {} FROM ONLY {}",
                    loaded_columns(table),
                    table.name
                )
            },
        )
        .of_kind(StepKind::Rows)
    }

    /// `INSERT INTO <into> (<the table's loaded columns>) [OVERRIDING SYSTEM VALUE]`; without
    /// a column to load, no column list (`INSERT INTO t SELECT FROM ...` inserts empty rows).
    pub(super) fn insert_head(&self, table: &Table, into: &QualifiedName) -> String {
        let overriding = if table
            .columns
            .iter()
            .any(|c| c.identity == Some(Identity::Always))
        {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        match loaded_columns(table) {
            columns if columns.is_empty() => format!("INSERT INTO {into}{overriding}"),
            columns => format!("INSERT INTO {into} ({columns}){overriding}"),
        }
    }
}

/// Rows per batch for a table worth loading in batches (at least two batches' worth of data),
/// from the source's size estimates and the batch size in bytes (0: never batch).
pub(super) fn batch_rows(table: &Table, batch_bytes: i64) -> Option<i64> {
    if batch_bytes <= 0 {
        return None;
    }
    let bytes = table.bytes_with_partitions();
    let rows = table.rows_with_partitions();
    if bytes < 2 * batch_bytes {
        return None;
    }
    Some(if rows > 0 {
        (batch_bytes as f64 * rows as f64 / bytes as f64).max(10_000.0) as i64
    } else {
        100_000
    })
}

/// The loaded columns (stored generated columns compute themselves), quoted, in order.
pub(super) fn loaded_columns(table: &Table) -> String {
    table
        .columns
        .iter()
        .filter(|c| c.is_loaded())
        .map(|c| c.name.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
