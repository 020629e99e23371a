//! The row SQL of each action: the staging object and the load of a table the run creates or
//! reloads, the missing rows of an incremental refresh, an extension's user rows. The action
//! (decided in [`super::decide`]) chooses; this module only writes the SQL, around what the
//! link reads (see [`super::link`]).

use super::link::Read;
use super::unit::UnitContext;
use super::{staging_name, Action, Phase, Pushdown, Step, StepKind, TableInfo, TableIx};
use crate::cli::StagingKind;
use crate::source::{ConstraintKind, Identity, Table};
use crate::sql::{literal, Ident, QualifiedName};

impl UnitContext<'_> {
    /// The statements that bring the rows of one table, as its action says.
    pub(super) fn rows(&self, table: &Table, info: &TableInfo, i: TableIx) -> Vec<Step> {
        match info.action {
            Action::Insert => match &info.pushdown {
                Some(Pushdown::KeyHashes(key)) => self.compared_rows(table, key, i),
                _ => self.missing_rows(table, info, i),
            },
            Action::UserRows => vec![self.user_rows_step(table, i)],
            Action::Sync => self.sync_rows(table, info, i),
            Action::Create | Action::Reload | Action::Rebuild | Action::Replace => {
                self.full_rows(table, info, i)
            }
        }
    }

    /// The staging object, then `INSERT ... SELECT` from it. A large table read through a view
    /// comes in batches instead, from a cursor in the unit's source transaction, when the link
    /// would otherwise stage the whole result in the target's temp files before the first
    /// insert (dblink); batches also let progress move.
    pub(super) fn full_rows(&self, table: &Table, info: &TableInfo, i: TableIx) -> Vec<Step> {
        let mut steps = self.staging_steps(table, info, i);
        // A user's table whose foreign key to itself cannot wait takes its rows in one
        // statement: the key is checked when the statement ends, with every row in.
        let whole = info.data_only && super::data_only::must_load_whole(table);
        if self.options.staging == StagingKind::View && !whole {
            if let Some(batched) = self.batched_load(table, i, None, &table.name) {
                steps.extend(batched);
                return steps;
            }
        }
        let from = self.full_from(table);
        steps.push(
            Step::new(
                Phase::Data,
                Some(i),
                self.insert_rows(table, &table.name, &from),
            )
            .of_kind(StepKind::Rows),
        );
        steps
    }

    /// What a full load reads: the staging object, or for a subset read through a view, the
    /// unit's walk (not the view's own).
    fn full_from(&self, table: &Table) -> String {
        if self.subsets.limits(&table.name) && self.options.staging == StagingKind::View {
            self.link.read(&self.read_of(table, None))
        } else {
            self.staging_ident(&table.name).to_string()
        }
    }

    /// What an incremental load reads of `table`, and the expression of the new high-water
    /// mark over `read` (the name the rows read go by in the statement).
    fn missing_from(&self, table: &Table, info: &TableInfo, read: &str) -> (String, String) {
        let (condition, high) = match &info.pushdown {
            Some(Pushdown::Above(c)) => (
                self.target
                    .high_water
                    .get(&table.name)
                    .map(|hw| format!("{} {} {}", c.column, c.operator, literal(hw))),
                format!("(SELECT max({})::text FROM {read})", c.column),
            ),
            Some(Pushdown::Since(xid)) => (
                Some(crate::source::ChangeMark::written_since(*xid)),
                "NULL::text".to_string(),
            ),
            _ => (None, "NULL::text".to_string()),
        };
        (self.link.read(&self.read_of(table, condition)), high)
    }

    /// The rows of tables that must go in by one statement: a cycle of the user's foreign keys
    /// (`--data-only`) that cannot wait, being not deferrable. Each is read as its action says
    /// and inserted by a part of the statement; the keys are checked when it ends, with every
    /// table's rows in. It returns rows read, rows inserted and the high-water mark per table.
    pub(super) fn rows_together(&self, members: &[(&Table, &TableInfo, TableIx)]) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut parts = Vec::new();
        let mut results = Vec::new();
        for (n, (table, info, i)) in members.iter().enumerate() {
            let read = format!("read{n}");
            let (from, conflict, high) = if info.action == Action::Insert {
                let (from, high) = self.missing_from(table, info, &read);
                (from, " ON CONFLICT DO NOTHING", high)
            } else {
                steps.extend(self.staging_steps(table, info, *i));
                (self.full_from(table), "", "NULL::text".to_string())
            };
            parts.push(format!("{read} AS MATERIALIZED (SELECT * FROM {from})"));
            parts.push(format!(
                "put{n} AS ({}{conflict} RETURNING 1)",
                self.insert_rows(table, &table.name, &read)
            ));
            results.push(format!(
                "(SELECT count(*) FROM {read}), (SELECT count(*) FROM put{n}), {high}"
            ));
        }
        steps.push(
            Step::new(
                Phase::Data,
                Some(members[0].2),
                format!("WITH {} SELECT {}", parts.join(", "), results.join(", ")),
            )
            .of_kind(StepKind::Together {
                tables: members.iter().map(|(_, _, i)| *i).collect(),
            }),
        );
        steps
    }

    /// A new table loads like a full copy. An existing one gets the rows the source has and it
    /// lacks: when the key grows, the condition above the last copy's high-water mark (which
    /// the registry holds) is evaluated on the source, so that only new rows travel; `ON
    /// CONFLICT DO NOTHING` leaves local rows as they are. The statement returns rows read,
    /// rows inserted and the new high-water mark.
    pub(super) fn missing_rows(&self, table: &Table, info: &TableInfo, i: TableIx) -> Vec<Step> {
        let (from, high) = self.missing_from(table, info, "src");
        vec![Step::new(
            Phase::Data,
            Some(i),
            format!(
                "WITH src AS MATERIALIZED (SELECT * FROM {from}), \
                 ins AS ({insert} ON CONFLICT DO NOTHING RETURNING 1) \
                 SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM ins), {high}",
                insert = self.insert_rows(table, &table.name, "src"),
            ),
        )
        .of_kind(StepKind::InsertMissing {
            probed: match info.pushdown {
                Some(Pushdown::Since(xid)) => Some(crate::source::Probed {
                    table: table.name.clone(),
                    xid,
                }),
                _ => None,
            },
        })]
    }

    /// What a statement reads of `table`: its loaded columns, each masked as the run's rules
    /// say (the source computes the mask), of the rows where `condition` holds.
    pub(super) fn read_of<'t>(&self, table: &'t Table, condition: Option<String>) -> Read<'t> {
        let mut masked = false;
        let columns = table
            .columns
            .iter()
            .filter(|c| c.is_loaded())
            .map(|c| {
                let expression = self
                    .options
                    .masks
                    .rule(&table.name, &c.name)
                    .and_then(|rule| crate::mask::sql::expression(table, c, rule));
                match expression {
                    Some(e) => {
                        masked = true;
                        format!("{e} AS {}", c.name)
                    }
                    None => c.name.to_string(),
                }
            })
            .collect();
        // A subset's rows are those the unit's walk reached (see `subset_steps`).
        let computed = self
            .subsets
            .limits(&table.name)
            .then(|| reached_rows(table, &self.subsets.partitioned));
        Read {
            table,
            columns,
            masked,
            condition,
            computed,
        }
    }

    /// What the staging object of `table` reads: a subset's rows by its whole definition (the
    /// walk inside), since a staging object outlives the unit's walk.
    fn staging_read<'t>(&self, table: &'t Table) -> Read<'t> {
        let mut read = self.read_of(table, None);
        if let Some(condition) = self.subsets.conditions.get(&table.name) {
            read.computed = None;
            read.condition = Some(condition.clone());
        }
        read
    }

    /// For a unit with subsets: the walk of each of their groups, run once on the source, its
    /// rows kept in a temporary table that each limited table then reads its rows by.
    pub(super) fn subset_steps(&self, ordered: &[&Table]) -> Vec<Step> {
        let mut walks: Vec<&String> = ordered
            .iter()
            .filter_map(|t| self.subsets.walks.get(&t.name))
            .collect();
        walks.sort();
        walks.dedup();
        if walks.is_empty() {
            return Vec::new();
        }
        let mut steps = vec![Step::new(
            Phase::Staging,
            None,
            "CREATE TEMPORARY TABLE snapcopy_keep (tbl text, rel oid, tid tid) ON COMMIT DROP"
                .to_string(),
        )];
        for walk in walks {
            steps.push(Step::new(
                Phase::Staging,
                None,
                format!(
                    "INSERT INTO pg_temp.snapcopy_keep SELECT tbl, rel, tid FROM {}",
                    self.link.read_query(
                        &literal(&format!("{walk} SELECT tbl, rel, tid FROM keep")),
                        "tbl text, rel oid, tid tid"
                    )
                ),
            ));
        }
        steps
    }

    pub(super) fn staging_ident(&self, table: &QualifiedName) -> QualifiedName {
        QualifiedName {
            schema: self.options.staging_schema.clone(),
            name: Ident::new(staging_name(table)),
        }
    }

    /// Brings the staging object up to date. An existing materialized view of an unchanged
    /// table, made through the same link, is refreshed (CONCURRENTLY when it has a unique
    /// index); anything else is dropped and created. Either way a materialized view reads the
    /// source here, once, in the unit's source transaction. A staging object the setup may
    /// have dropped (one made through postgres_fdw goes with its foreign table) is dropped
    /// only if it still exists.
    pub(super) fn staging_steps(&self, table: &Table, info: &TableInfo, i: TableIx) -> Vec<Step> {
        let name = self.staging_ident(&table.name);
        let existing = self.target.staging_objects.get(name.name.raw());
        let link = self.link.kind().as_str();
        let kept = self.link.keeps_staging_objects()
            && self
                .target
                .links
                .get(&table.name)
                .is_none_or(|recorded| recorded == link);
        let mut steps = Vec::new();
        if let Some(obj) = existing {
            if kept
                && obj.kind == StagingKind::Matview
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
            let if_exists = if kept { "" } else { "IF EXISTS " };
            steps.push(Step::new(
                Phase::Staging,
                Some(i),
                match obj.kind {
                    StagingKind::View => format!("DROP VIEW {if_exists}{name}"),
                    StagingKind::Matview => format!("DROP MATERIALIZED VIEW {if_exists}{name}"),
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
                "CREATE {kind} {name} AS SELECT * FROM {}",
                self.link.read(&self.staging_read(table))
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

    /// For a table worth loading in batches, when the link reads through a cursor: declares
    /// one for the table's rows (those where `condition` holds) in the source transaction,
    /// inserts from it into `into` a batch at a time (the executor repeats the batch until a
    /// short one), and closes it.
    pub(super) fn batched_load(
        &self,
        table: &Table,
        i: TableIx,
        condition: Option<&str>,
        into: &QualifiedName,
    ) -> Option<Vec<Step>> {
        let batch = batch_rows(table, self.options.batch_bytes)?;
        let cursor = self
            .link
            .cursor(&self.read_of(table, condition.map(str::to_string)), batch)?;
        let fetch = Step::new(
            Phase::Data,
            Some(i),
            self.insert_rows(table, into, &cursor.fetch),
        )
        .of_kind(StepKind::Batch { size: batch as u64 });
        Some(vec![
            Step::new(Phase::Staging, Some(i), cursor.declare),
            fetch,
            Step::new(Phase::Staging, Some(i), cursor.close),
        ])
    }

    /// Adds the rows the extension marks as user data (its condition, evaluated on the source)
    /// to the table the extension made on the target, leaving the rows it has: those with a
    /// key the target has already are skipped (or, without a unique key, rows equal to one
    /// there).
    pub(super) fn user_rows_step(&self, table: &Table, i: TableIx) -> Step {
        let condition = table.user_rows.as_deref().unwrap_or_default().trim();
        // pg_extension_config_dump keeps the condition with its WHERE.
        let condition = match condition.get(..6) {
            Some(w) if w.eq_ignore_ascii_case("WHERE ") => condition[6..].trim(),
            _ => condition,
        };
        let insert = self.insert_rows(
            table,
            &table.name,
            &self.link.read(&self.read_of(
                table,
                (!condition.is_empty()).then(|| condition.to_string()),
            )),
        );
        let unique = table
            .constraints
            .iter()
            .any(|c| matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique))
            || table
                .indexes
                .iter()
                .any(|x| x.definition.starts_with("CREATE UNIQUE INDEX "));
        Step::new(
            Phase::Data,
            Some(i),
            if unique {
                format!("{insert} ON CONFLICT DO NOTHING")
            } else {
                format!(
                    "{insert} EXCEPT SELECT {} FROM ONLY {}",
                    loaded_columns(table),
                    table.name
                )
            },
        )
        .of_kind(StepKind::Rows)
    }

    /// `INSERT INTO <into> (<the table's loaded columns>) [OVERRIDING SYSTEM VALUE] SELECT
    /// <the same columns> FROM <from>`; without a column to load, no column list (`INSERT INTO
    /// t SELECT FROM ...` inserts empty rows).
    pub(super) fn insert_rows(&self, table: &Table, into: &QualifiedName, from: &str) -> String {
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
            columns if columns.is_empty() => {
                format!("INSERT INTO {into}{overriding} SELECT FROM {from}")
            }
            columns => {
                format!("INSERT INTO {into} ({columns}){overriding} SELECT {columns} FROM {from}")
            }
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

/// The condition text, as an expression the target evaluates when the statement runs, that
/// picks the rows of `table` the unit's walk reached (kept in `pg_temp.snapcopy_keep`): by
/// their ctids, and for a partitioned table by partition and ctid.
fn reached_rows(
    table: &Table,
    partitioned: &std::collections::BTreeMap<QualifiedName, bool>,
) -> String {
    let name = literal(&table.name.to_string());
    let kept = |expr: &str, ty: &str| {
        format!(
            "pg_catalog.quote_literal((SELECT coalesce(pg_catalog.array_agg({expr} ORDER BY rel, tid), \
             '{{}}')::text FROM pg_temp.snapcopy_keep WHERE tbl = {name})) || '::pg_catalog.{ty}[]'"
        )
    };
    if partitioned.get(&table.name).copied().unwrap_or(false) {
        format!(
            "'(tableoid, ctid) IN (SELECT * FROM pg_catalog.unnest(' || {} || ', ' || {} || '))'",
            kept("rel", "oid"),
            kept("tid", "tid")
        )
    } else {
        format!("'ctid = ANY (' || {} || ')'", kept("tid", "tid"))
    }
}
