//! Data-only loads (`--data-only`): the source's rows go into tables the user made on the
//! target (their migrations), whose definitions snapcopy never creates, drops or changes.
//!
//! A table is loaded this way when the run asks for it and the table exists on the target
//! without being snapcopy's, or when the registry lists it as loaded so before (it stays the
//! user's). Its rows come through the same statements as a managed table's, written for a
//! *load table*: the source table cut to the columns the target has (matched by name, its
//! generated columns left to compute themselves, its identity columns overridden), with the
//! target's foreign keys (for the load order) instead of the source's definitions, and nothing
//! the setup would make for it. Full mode truncates and loads it in the unit's transaction;
//! incremental inserts the rows whose key it lacks. Either way its oid stays.

use std::collections::BTreeSet;

use super::decide::Decision;
use super::refresh::Refresh;
use super::{Action, PlanOptions};
use crate::cli::Mode;
use crate::source::{Column, Constraint, ConstraintKind, Table};
use crate::sql::QualifiedName;
use crate::target::{TargetState, UserTable};

/// How a chosen table is loaded in a data-only run.
pub(super) enum Way<'a> {
    /// Into the user's own table.
    Theirs(&'a UserTable),
    /// It is missing on the target: refused, with why.
    Missing(String),
    /// As any other table: snapcopy's own, or created (`--create-missing`).
    Managed,
}

/// Whether `table` is loaded into the user's own table.
pub(super) fn way<'a>(table: &Table, target: &'a TargetState, options: &PlanOptions) -> Way<'a> {
    let name = &table.name;
    if let Some(theirs) = target.user_tables.get(name) {
        if target.data_only.contains(name)
            || (options.data_only && !target.managed.contains_key(name))
        {
            return Way::Theirs(theirs);
        }
    }
    let exists = target.existing_tables.contains(name);
    if options.data_only && !exists && !options.create_missing {
        return Way::Missing(format!(
            "{} does not exist on the target, and --data-only loads only into tables that do: \
             create it there (run your migrations), pass --create-missing to have snapcopy \
             create it, or leave it out with --exclude",
            name.human()
        ));
    }
    Way::Managed
}

/// What a data-only load does to `table` (the source's), and the load table its statements are
/// written for, with the warnings the user should see; or why it cannot (`Err`). `chosen` is
/// every table of the run.
pub(super) fn verdict(
    table: &Table,
    theirs: &UserTable,
    target: &TargetState,
    options: &PlanOptions,
    mode: &dyn Refresh,
    chosen: &BTreeSet<&QualifiedName>,
) -> Result<(Decision, Table, Vec<String>), String> {
    let name = table.name.human();
    if !theirs.unassignable.is_empty() {
        return Err(format!(
            "{name} cannot be loaded into the target's table: {}; change the column there (a \
             migration), or leave the table out with --exclude",
            theirs.unassignable.join("; ")
        ));
    }
    let mut decision = match options.mode {
        Mode::Full => {
            // TRUNCATE empties the tables that reference it too, or refuses: they must be part
            // of the run.
            let outside: Vec<String> = theirs
                .referenced_by
                .iter()
                .filter(|(t, _)| !chosen.contains(t))
                .map(|(t, key)| format!("{} (foreign key {key})", t.human()))
                .collect();
            if !outside.is_empty() {
                return Err(format!(
                    "{name} is referenced on the target by {}, which this run does not load; \
                     a full load empties {name} first, which PostgreSQL refuses while they \
                     reference it: add them to the run, or use --mode incremental",
                    outside.join(", ")
                ));
            }
            Decision::new(Action::Reload)
        }
        Mode::Incremental => {
            if !theirs.unique_key {
                return Err(format!(
                    "{name} has no primary key or unique index on the target, so an \
                     incremental load cannot tell which rows it has; add one there, or use \
                     --mode full for it"
                ));
            }
            mode.existing(table, Vec::new(), options.cursors.get(&table.name))?
        }
        Mode::Sync => {
            // Sync's fallback, a full reload, would empty the user's table: refused instead.
            let sync = super::refresh::Sync {
                link: options.link_kind,
            };
            let why = sync.unsyncable(table).or_else(|| {
                (!theirs.unique_key)
                    .then(|| "the target's table has no primary key or unique index".into())
            });
            if let Some(why) = why {
                return Err(format!(
                    "{name} cannot be synced row by row: {why}; use --mode full or --mode \
                     incremental for it"
                ));
            }
            Decision::new(Action::Sync)
        }
    };
    decision.reason = Some("data only: rows into the target's own table".into());
    let (load, left_out) = load_table(table, theirs);
    // The growing column must be one the load reads, for its maximum.
    if let Some(super::Pushdown::Above(c)) = &decision.pushdown {
        if !load.columns.iter().any(|col| col.name == c.column) {
            decision.pushdown = Some(super::Pushdown::AllKeys);
        }
    }
    let mut warnings: Vec<String> = left_out
        .iter()
        .map(|(column, why)| format!("{}.{} {why}: left out", name, column))
        .collect();
    let fires = target.triggers.get(&table.name).is_some_and(|t| {
        t.iter()
            .any(|(_, s)| *s != crate::source::TriggerState::Disabled)
    });
    if fires && !theirs.owned {
        warnings.push(format!(
            "the triggers of {name} fire on the load: the target role does not own the table, \
             so it cannot turn them off for it"
        ));
    }
    Ok((decision, load, warnings))
}

/// The source table as the load into the user's table sees it, and the source's columns left
/// out, each with why.
fn load_table(table: &Table, theirs: &UserTable) -> (Table, Vec<(String, &'static str)>) {
    let mut left_out = Vec::new();
    let columns: Vec<Column> = table
        .columns
        .iter()
        .filter_map(|c| {
            let Some(target) = theirs.column(&c.name) else {
                left_out.push((c.name.raw().to_string(), "is not on the target"));
                return None;
            };
            if target.generated {
                left_out.push((
                    c.name.raw().to_string(),
                    "is generated on the target (it computes itself)",
                ));
                return None;
            }
            Some(Column {
                // A source column generated there is read like any other.
                generated_sql: None,
                default_sql: None,
                identity: target.identity,
                ..c.clone()
            })
        })
        .collect();
    // The source's keys the load reads whole (the registry's high-water mark follows the
    // key), then the target's foreign keys (the load order follows them); nothing of them is
    // ever made or dropped.
    let loaded = |name: &crate::sql::Ident| columns.iter().any(|c| &c.name == name);
    let keys = table.constraints.iter().filter(|c| {
        matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique)
            && !c.columns.is_empty()
            && c.columns.iter().all(loaded)
    });
    let constraints = keys
        .cloned()
        .chain(theirs.foreign_keys.iter().map(|fk| Constraint {
            name: fk.name.clone(),
            kind: ConstraintKind::ForeignKey {
                references: fk.references.clone(),
            },
            definition: String::new(),
            validated: true,
            columns: Vec::new(),
            ref_columns: Vec::new(),
            local: true,
            deferrable: fk.deferrable,
            index_body: None,
        }))
        .collect();
    let load = Table {
        oid: table.oid,
        name: table.name.clone(),
        columns,
        constraints,
        estimated_rows: table.rows_with_partitions(),
        total_bytes: table.bytes_with_partitions(),
        data_bytes: table.data_bytes_with_partitions(),
        // The source's: it says how the source is read (`ONLY` or not); the target's own
        // decides how its table is emptied (see `UnitContext::clear`).
        partition_by: table.partition_by.clone(),
        ..Table::default()
    };
    (load, left_out)
}

/// Whether a foreign key of a data-only load table can hold while its unit's rows go in one
/// statement at a time: deferrable ones wait for the end of the load.
pub(super) fn must_load_whole(table: &Table) -> bool {
    table.constraints.iter().any(|c| {
        !c.deferrable
            && matches!(&c.kind, ConstraintKind::ForeignKey { references } if references == &table.name)
    })
}
