//! One unit: the context every unit's SQL needs, and the order of a unit's statements, from
//! opening the source transaction to the registry rows.

use std::collections::BTreeSet;

use super::ddl::{
    create_table_steps, move_steps, post_data_steps, still_replaceable, trigger_steps, Inheritance,
};
use super::graph::load_order;
use super::key_checks;
use super::link::Link;
use super::refresh::Refresh;
use super::rows::loaded_columns;
use super::split::{prebuilt_indexes, LoadNames};
use super::{
    Action, Bounds, Branch, Build, Builds, Phase, PlanOptions, Purpose, Pushdown, Range, Split,
    Step, StepKind, TableInfo, TableIx, Unit,
};
use crate::source::{Constraint, ConstraintKind, Index, SharedSequence, Table, TriggerState};
use crate::sql::{Ident, QualifiedName};
use crate::target::{registry, TargetState};

/// What [`UnitContext::clear`] did: its statements, the constraints it dropped for the reload
/// (added back after the rows), and the tables it dropped for their rebuild.
struct Cleared<'t> {
    steps: Vec<Step>,
    readd: Vec<(QualifiedName, &'t Constraint)>,
    rebuilt: BTreeSet<QualifiedName>,
    /// Indexes dropped for a large reload, built again after the table's rows.
    reindex: Vec<(QualifiedName, &'t Index)>,
}

/// How a unit loads one of its tables.
struct Loading<'l> {
    /// Its split table's load table, which holds its rows already (a new table), or will
    /// hold those of every range but the first (a reload in parts).
    load: Option<&'l LoadNames>,
    /// The first range of a split table.
    first: Option<&'l Bounds>,
    /// Whether its rows come by a statement of its own (not: with others', see [`together`]).
    own_rows: bool,
    /// Its indexes a large reload dropped, to build after its rows.
    indexes: Vec<&'l Index>,
}

/// What every unit needs to know to write its SQL.
pub(super) struct UnitContext<'a> {
    pub(super) options: &'a PlanOptions,
    pub(super) target: &'a TargetState,
    pub(super) mode: &'a dyn Refresh,
    /// How the target server reads the source.
    pub(super) link: &'a dyn Link,
    /// The conditions that pick the subset of each table a row filter limits.
    pub(super) subsets: &'a super::subset::Subsets,
    pub(super) registry: &'a QualifiedName,
    /// Sequences that defaults call without their table owning them.
    pub(super) shared: &'a [SharedSequence],
    /// Every table of the run (a child's parents, for inheritance).
    pub(super) tables: &'a [Table],
}

impl UnitContext<'_> {
    /// The unit, and the statements the setup runs for it: its split tables' load tables.
    pub(super) fn unit(&self, group: &[(&Table, &TableInfo)]) -> (Unit, Vec<Step>) {
        let tables: Vec<&Table> = group.iter().map(|(t, _)| *t).collect();
        let (ordered, cyclic) = load_order(&tables);
        let mut infos: Vec<TableInfo> = ordered
            .iter()
            .map(|t| {
                group
                    .iter()
                    .find(|(g, _)| g.name == t.name)
                    .map(|(_, i)| (*i).clone())
                    .expect("every ordered table is in the group")
            })
            .collect();
        // Keys that do not grow: the rows written since the last run, or the keys compared by
        // their hashes, where the link can.
        for (table, info) in ordered.iter().zip(infos.iter_mut()) {
            if let Some(pushdown) = self.compared(table, info) {
                info.pushdown = Some(pushdown);
            }
        }
        // A large reload that nothing on the target ties to its table goes as a first copy
        // does: into a new table, split across sessions, swapped in for the old one.
        for (table, info) in ordered.iter().zip(infos.iter_mut()) {
            if self.replaces(table, info) {
                info.action = Action::Replace;
                info.reason = Some(
                    "into a new table swapped in for the old one (nothing on the target \
                     depends on it)"
                        .into(),
                );
            } else if self.reloads_in_parts(table, info) && info.reason.is_none() {
                let why = self.target.keeps_identity.get(&table.name);
                info.reason = why.map(|why| format!("in place, as {why}"));
            }
        }
        // Split tables: their ranges, and the names they load under.
        let loads: Vec<Option<(Vec<Bounds>, LoadNames)>> = ordered
            .iter()
            .zip(infos.iter_mut())
            .map(|(table, info)| {
                let (ranges, by) = self.ranges(table, info)?;
                info.split = Some(format!("{} ranges of {by}", ranges.len()));
                Some((ranges, self.load_names(table)))
            })
            .collect();
        let (prepare, splits) = self.splits(&ordered, &infos, &loads);
        let built = self.built(&ordered, &infos, &loads);
        let mut steps = self.connect_steps();
        steps.extend(self.subset_steps(&ordered));
        // The user's tables keep their foreign keys through the load: the deferrable ones wait
        // until every table of the unit has its rows (a cycle among them then holds), and are
        // checked before anything else changes a table.
        let users = infos.iter().any(|i| i.data_only);
        if users {
            steps.push(Step::new(
                Phase::Truncate,
                None,
                "SET CONSTRAINTS ALL DEFERRED".to_string(),
            ));
        }
        let cleared = self.clear(&ordered, &infos, &cyclic);
        let keys_once = self.checks_keys_once(&ordered, &infos);
        if keys_once {
            steps.push(Step::new(Phase::Truncate, None, key_checks::checks_off()));
        }
        steps.extend(cleared.steps);
        // Rows checked by an existing deferred key leave trigger events pending, and PostgreSQL
        // refuses ALTER TABLE while they are: after each such table's rows they are checked
        // (parents are loaded first, so they hold).
        let deferred_checks = !users
            && ordered.iter().any(|t| {
                t.constraints.iter().any(|c| {
                    c.deferrable
                        && matches!(c.kind, ConstraintKind::ForeignKey { .. })
                        && self.has_constraint(&t.name, c)
                })
            });
        let together = together(&ordered, &infos, &cyclic);
        // The tables helpers built, moved in after the unit's own.
        let mut moved = Vec::new();
        for (i, (table, info)) in ordered.iter().zip(&infos).enumerate() {
            let ix = TableIx(i);
            let load = loads[i].as_ref().map(|(_, load)| load);
            let loading = |load| Loading {
                load,
                first: loads[i].as_ref().map(|(ranges, _)| &ranges[0]),
                own_rows: !together.contains(&i),
                indexes: cleared
                    .reindex
                    .iter()
                    .filter(|(t, _)| t == &table.name)
                    .map(|(_, x)| *x)
                    .collect(),
            };
            let table_steps = |load| {
                self.table_steps(
                    table,
                    info,
                    ix,
                    loading(load),
                    &cleared.readd,
                    deferred_checks,
                )
            };
            if let Some(load) = &built[i] {
                let name = table.name.human();
                steps.push(waypoint(
                    StepKind::Claim,
                    ix,
                    format!("unless a helper session has taken {name}, the unit makes it:"),
                ));
                steps.extend(branch(table_steps(None), Branch::Own));
                moved.push(waypoint(
                    StepKind::Built,
                    ix,
                    format!("if a helper session built {name}, once it has committed:"),
                ));
                moved.extend(table_steps(Some(load)));
                continue;
            }
            steps.extend(table_steps(load));
            if together.last() == Some(&i) {
                let members: Vec<(&Table, &TableInfo, TableIx)> = together
                    .iter()
                    .map(|&k| (ordered[k], &infos[k], TableIx(k)))
                    .collect();
                steps.extend(self.rows_together(&members));
            }
        }
        steps.extend(branch(moved, Branch::Moved));
        if users {
            steps.push(Step::new(
                Phase::Data,
                None,
                "SET CONSTRAINTS ALL IMMEDIATE".to_string(),
            ));
        }
        if keys_once {
            let reloaded: Vec<&QualifiedName> = infos
                .iter()
                .filter(|i| i.action == Action::Reload)
                .map(|i| &i.name)
                .collect();
            steps.push(Step::new(
                Phase::ForeignKeys,
                None,
                key_checks::check_keys(&reloaded),
            ));
        }
        steps.extend(self.foreign_key_steps(&ordered, &infos, &cleared.readd, &cleared.rebuilt));
        steps.extend(self.trigger_restore_steps(&ordered, &infos));
        steps.extend(self.sequence_steps(&ordered, &infos));
        steps.extend(self.record_steps(&ordered, &infos));
        steps.extend(self.disconnect_steps());
        let unit = Unit {
            tables: infos,
            steps,
            splits,
            undo_table: self.link.undo_sql(),
            builds: self.builds(&ordered, &built),
        };
        (unit, prepare)
    }

    /// The load names of the unit's new tables that helper sessions may build (see
    /// [`Builds`]), by position: none unless the run has a session to spare and the unit at
    /// least [`BUILDS_FROM`] such tables. A table qualifies as a split one would (its rows
    /// read in the run's snapshot, no inheritance, no partitions, no row filter, only
    /// sequences of its own) and fails alone.
    fn built(
        &self,
        ordered: &[&Table],
        infos: &[TableInfo],
        loads: &[Option<(Vec<Bounds>, LoadNames)>],
    ) -> Vec<Option<LoadNames>> {
        let built: Vec<Option<LoadNames>> = ordered
            .iter()
            .zip(infos)
            .zip(loads)
            .map(|((table, info), split)| {
                let apart = split.is_none()
                    && info.action == Action::Create
                    && self.link.one_snapshot()
                    && self.loads_apart(table);
                apart.then(|| self.load_names(table))
            })
            .collect();
        let count = built.iter().flatten().count();
        if self.options.split_ranges < 2 || count < BUILDS_FROM {
            return ordered.iter().map(|_| None).collect();
        }
        built
    }

    /// What helper sessions run for the tables [`Self::built`] chose.
    fn builds(&self, ordered: &[&Table], built: &[Option<LoadNames>]) -> Builds {
        let tables: Vec<Build> = ordered
            .iter()
            .zip(built)
            .enumerate()
            .filter_map(|(i, (table, load))| {
                let load = load.as_ref()?;
                let i = TableIx(i);
                let mut steps = create_table_steps(table, i, Some(load), None);
                steps.push(Step::new(Phase::PreData, Some(i), load.marker()));
                steps.push(
                    Step::new(
                        Phase::Data,
                        Some(i),
                        self.insert_rows(
                            table,
                            &load.table,
                            &self.link.read(&self.read_of(table, None)),
                        ),
                    )
                    .of_kind(StepKind::Rows),
                );
                steps.extend(
                    prebuilt_indexes(table, load)
                        .into_iter()
                        .map(|p| Step::new(Phase::PostData, Some(i), p.create)),
                );
                Some(Build {
                    table: i,
                    steps,
                    discard: format!("DROP TABLE IF EXISTS {} CASCADE", load.table),
                })
            })
            .collect();
        if tables.is_empty() {
            return Builds::default();
        }
        Builds {
            helpers: (self.options.split_ranges - 1).min(tables.len() / BUILDS_FROM),
            connect: self.connect_steps(),
            disconnect: self.disconnect_steps(),
            tables,
        }
    }

    /// The split tables' load tables, made by the setup, and their ranges and index builds.
    /// A table reloaded in parts keeps its first range for its unit (see
    /// [`UnitContext::merged_rows`]); its load table is a bare, unlogged one (its rows are
    /// copied into the table and it goes).
    fn splits(
        &self,
        ordered: &[&Table],
        infos: &[TableInfo],
        loads: &[Option<(Vec<Bounds>, LoadNames)>],
    ) -> (Vec<Step>, Vec<Split>) {
        let mut prepare = Vec::new();
        let mut splits = Vec::new();
        for (i, ((table, info), split)) in ordered.iter().zip(infos).zip(loads).enumerate() {
            let i = TableIx(i);
            let Some((ranges, load)) = split else {
                continue;
            };
            let merged = !info.action.creates();
            let for_table = |s: String| {
                Step::new(Phase::Setup, None, s).with_purpose(Purpose::ForTable(table.name.clone()))
            };
            let first = prepare.len();
            if merged {
                prepare.push(for_table(format!(
                    "CREATE UNLOGGED TABLE {} AS SELECT {} FROM ONLY {} WITH NO DATA",
                    load.table,
                    loaded_columns(table),
                    table.name
                )));
            } else {
                prepare.extend(
                    create_table_steps(table, i, Some(load), None)
                        .into_iter()
                        .map(|s| for_table(s.sql)),
                );
            }
            prepare.push(for_table(load.marker()));
            prepare[first].note = Some(if merged {
                format!(
                    "{} reloads in {} ranges at once: its unit loads the first and copies the \
                     others' rows from this load table",
                    table.name.human(),
                    ranges.len(),
                )
            } else {
                format!(
                    "{} loads in {} ranges at once into this load table; its unit moves it into \
                     place",
                    table.name.human(),
                    ranges.len(),
                )
            });
            let parted = if merged { &ranges[1..] } else { &ranges[..] };
            splits.push(Split {
                table: i,
                ranges: parted
                    .iter()
                    .map(|bounds| Range {
                        steps: self.range_steps(table, i, &load.table, bounds),
                        bounds: bounds.clone(),
                    })
                    .collect(),
                indexes: if merged {
                    Vec::new()
                } else {
                    prebuilt_indexes(table, load)
                        .into_iter()
                        .map(|p| Step::new(Phase::PostData, Some(i), p.create))
                        .collect()
                },
                discard: format!("DROP TABLE IF EXISTS {} CASCADE", load.table),
                load_table: load.table.clone(),
                merged,
            });
        }
        (prepare, splits)
    }

    /// What goes before any table's rows: the existing tables' triggers turned off, the
    /// constraints a reload cannot keep dropped, rebuilt tables dropped, reloaded ones emptied.
    fn clear<'t>(
        &self,
        ordered: &[&'t Table],
        infos: &[TableInfo],
        cyclic: &BTreeSet<QualifiedName>,
    ) -> Cleared<'t> {
        // The tables reloaded into new ones are checked before anything changes the unit's
        // tables: then the old ones are as the plan read them.
        let mut steps: Vec<Step> = infos
            .iter()
            .filter(|i| i.action == Action::Replace)
            .map(|i| {
                let fingerprint = self.target.fingerprints.get(&i.name);
                still_replaceable(&i.name, fingerprint.expect("replaces() reads it"))
            })
            .collect();
        let in_unit: BTreeSet<&QualifiedName> = ordered.iter().map(|t| &t.name).collect();
        let rebuilt: BTreeSet<QualifiedName> = infos
            .iter()
            .filter(|i| i.action.drops())
            .map(|i| i.name.clone())
            .collect();
        // User triggers never fire on snapcopy's loads: those of existing tables are off until
        // the rows are in (in this transaction only, so no other session notices).
        for (table, info) in ordered.iter().zip(infos) {
            if self.turns_triggers_off(info) {
                for (name, _) in self.enabled_triggers(table) {
                    steps.push(Step::new(
                        Phase::Truncate,
                        None,
                        format!("ALTER TABLE ONLY {name} DISABLE TRIGGER USER"),
                    ));
                }
            }
        }

        // Constraints that a reload cannot keep while rows go in are dropped first and added
        // back after: foreign keys on a cycle (no load order satisfies them row by row) and
        // NOT VALID constraints (old rows that break them would be refused; they come back
        // NOT VALID, without a scan).
        let mut readd: Vec<(QualifiedName, &Constraint)> = Vec::new();
        for (table, info) in ordered.iter().zip(infos) {
            // The user's tables keep every constraint they have.
            if !matches!(info.action, Action::Reload | Action::Sync) || info.data_only {
                continue;
            }
            for c in &table.constraints {
                let exists = self.has_constraint(&table.name, c);
                let on_cycle = match &c.kind {
                    ConstraintKind::ForeignKey { references } => {
                        cyclic.contains(&table.name) && cyclic.contains(references)
                    }
                    _ => false,
                };
                if exists && (on_cycle || !c.validated) {
                    steps.push(Step::new(
                        Phase::Truncate,
                        None,
                        format!("ALTER TABLE {} DROP CONSTRAINT {}", table.name, c.name),
                    ));
                    readd.push((table.name.clone(), c));
                }
            }
        }
        let reindex = self.unindex(ordered, infos, &mut readd, &mut steps);
        // Synced tables are compared, and lose the rows the source lacks, children first.
        for (i, (table, info)) in ordered.iter().zip(infos).enumerate().rev() {
            if info.action == Action::Sync {
                steps.extend(self.sync_compare(table, info, TableIx(i)));
            }
        }
        for info in infos.iter().filter(|i| i.action.drops()) {
            steps.extend(self.drop_steps(&info.name, &in_unit));
        }
        let reloads: Vec<String> = infos
            .iter()
            .filter(|i| i.action == Action::Reload)
            .map(|i| {
                // ONLY: an inheritance parent's children keep their rows (those in the run
                // are truncated in their own right); a partitioned table has none of its own.
                let partitioned = match self.target.user_tables.get(&i.name) {
                    Some(theirs) if i.data_only => theirs.partitioned,
                    _ => ordered
                        .iter()
                        .any(|t| t.name == i.name && t.is_partitioned()),
                };
                format!("{}{}", if partitioned { "" } else { "ONLY " }, i.name)
            })
            .collect();
        if !reloads.is_empty() {
            steps.push(Step::new(
                Phase::Truncate,
                None,
                format!("TRUNCATE {}", reloads.join(", ")),
            ));
        }

        Cleared {
            steps,
            readd,
            rebuilt,
            reindex,
        }
    }

    /// One table's statements in the unit's transaction: made (or moved into place from its
    /// load table), loaded, its keys, indexes and triggers; a table the run creates in a block
    /// of its own.
    fn table_steps(
        &self,
        table: &Table,
        info: &TableInfo,
        i: TableIx,
        loading: Loading,
        readd: &[(QualifiedName, &Constraint)],
        deferred_checks: bool,
    ) -> Vec<Step> {
        let load = loading.load;
        let mut steps = Vec::new();
        // A table the run creates is made in a block of its own: if something of it
        // cannot be made on the target, it alone is not copied.
        let block = info.action == Action::Create;
        if block {
            steps.push(self.block_step(Phase::TableStart, i, "SAVEPOINT"));
        }
        if let (Some(load), true) = (load, info.action.creates()) {
            // The rows are in the load table already.
            steps.extend(move_steps(table, i, load));
            steps.extend(self.staging_steps(table, info, i));
        } else if let (Some(load), Some(first)) = (load, loading.first) {
            steps.extend(self.staging_steps(table, info, i));
            steps.extend(self.merged_rows(table, i, load, first));
        } else {
            if info.action.creates() {
                steps.extend(create_table_steps(
                    table,
                    i,
                    None,
                    Inheritance::of(table, self.tables).as_ref(),
                ));
            }
            if loading.own_rows {
                steps.extend(self.rows(table, info, i));
            }
        }
        if !info.action.creates() && deferred_checks {
            steps.push(Step::new(
                Phase::Data,
                None,
                "SET CONSTRAINTS ALL IMMEDIATE".to_string(),
            ));
        }
        if let (Some(load), true) = (load, info.action.creates()) {
            steps.extend(post_data_steps(
                table,
                i,
                &prebuilt_indexes(table, load),
                None,
            ));
        } else if info.action.creates() {
            steps.extend(post_data_steps(
                table,
                i,
                &[],
                Inheritance::of(table, self.tables).as_ref(),
            ));
        }
        for (_, c) in readd.iter().filter(|(t, c)| {
            *t == table.name && !matches!(c.kind, ConstraintKind::ForeignKey { .. })
        }) {
            steps.push(Step::new(
                Phase::PostData,
                Some(i),
                format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {}",
                    table.name, c.name, c.definition
                ),
            ));
        }
        for index in &loading.indexes {
            steps.push(Step::new(
                Phase::PostData,
                Some(i),
                index.definition.clone(),
            ));
        }
        // A new table's triggers come once its rows are in; no later statement of the
        // unit writes to it.
        if info.action.creates() {
            steps.extend(trigger_steps(table, i));
        }
        if block {
            steps.push(self.block_step(Phase::TableEnd, i, "RELEASE SAVEPOINT"));
        }
        steps
    }

    /// Whether the run reads `table` as the source's marks describe it: a managed table (not
    /// the user's), whole (not a subset), in the run's snapshot (through dblink: postgres_fdw
    /// reads each unit at a moment of its own).
    pub(super) fn reads_whole(&self, table: &Table, info: &TableInfo) -> bool {
        self.link.kind() == crate::cli::LinkKind::Dblink
            && !info.data_only
            && !self.subsets.limits(&table.name)
    }

    /// The run's mark (see [`crate::source::ChangeMark`]) as the registry keeps it, when the
    /// target holds every key the source had at the run's snapshot after the run: a table
    /// read whole (see [`Self::reads_whole`]), not by an incremental run above a high-water
    /// mark (which reads only the newer rows).
    fn mark(&self, table: &Table, info: &TableInfo) -> Option<String> {
        if !self.reads_whole(table, info) || matches!(info.pushdown, Some(Pushdown::Above(_))) {
            return None;
        }
        self.options.mark.as_ref().map(|m| m.of_table(table).text())
    }

    /// Whether the registry records where the target stands (see
    /// [`crate::target::LocalMark`]) for `table`: when the run leaves it equal to the source's
    /// rows at the run's mark, having read them all and loaded them in full or synced them.
    /// (An incremental run leaves local edits alone.)
    fn local_mark(&self, table: &Table, info: &TableInfo) -> bool {
        let equal = matches!(
            info.action,
            Action::Create | Action::Reload | Action::Rebuild | Action::Replace | Action::Sync
        );
        equal && self.mark(table, info).is_some() && self.target.clock.is_some()
    }

    /// The registry rows: snapcopy manages the tables it creates; an extension's table stays
    /// the extension's.
    fn record_steps(&self, ordered: &[&Table], infos: &[TableInfo]) -> Vec<Step> {
        let mut steps = Vec::new();
        // The target's mark, taken once for the unit, after its last row.
        let marked = ordered
            .iter()
            .zip(infos)
            .any(|(table, info)| self.local_mark(table, info));
        if let (true, Some(clock)) = (marked, &self.target.clock) {
            for sql in crate::target::LocalMark::take(clock) {
                steps.push(Step::new(Phase::Record, None, sql));
            }
        }
        for (i, (table, info)) in ordered
            .iter()
            .zip(infos)
            .enumerate()
            .filter(|(_, (_, i))| i.action != Action::UserRows)
        {
            let i = TableIx(i);
            let cursor = table
                .key(self.options.cursors.get(&table.name))
                .and_then(|k| k.cursor);
            let record = registry::Record {
                registry: self.registry.clone(),
                source_label: &self.options.source_label,
                staging_kind: self.options.staging.as_str(),
                mode: self.mode.name(),
                incremental: info.action == Action::Insert,
                sync: info.action == Action::Sync,
                cursor: cursor.as_ref(),
                link: self.link.kind().as_str(),
                data_only: info.data_only,
                mark: self.mark(table, info),
                local_mark: self.local_mark(table, info),
            };
            steps.push(
                Step::new(Phase::Record, Some(i), record.record_sql(table))
                    .of_kind(StepKind::Record),
            );
        }
        steps
    }

    /// The foreign keys between the unit's tables that the target lacks after the rows: those
    /// of tables made anew, those dropped for the reload (`readd`), those a rebuilt table's
    /// CASCADE took. Each names the referenced table, so that it is skipped, with a warning, if
    /// that table failed.
    pub(super) fn foreign_key_steps(
        &self,
        ordered: &[&Table],
        infos: &[TableInfo],
        readd: &[(QualifiedName, &Constraint)],
        rebuilt: &BTreeSet<QualifiedName>,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        // An extension's table keeps the keys the extension gave it.
        for (i, (table, info)) in ordered
            .iter()
            .zip(infos)
            .enumerate()
            .filter(|(_, (_, i))| i.action != Action::UserRows && !i.data_only)
        {
            let i = TableIx(i);
            for c in &table.constraints {
                let ConstraintKind::ForeignKey { references } = &c.kind else {
                    continue;
                };
                let Some(j) = ordered
                    .iter()
                    .position(|t| &t.name == references)
                    .map(TableIx)
                else {
                    continue;
                };
                let dropped = readd
                    .iter()
                    .any(|(t, d)| *t == table.name && d.name == c.name)
                    || rebuilt.contains(references);
                if info.action.creates() || !self.has_constraint(&table.name, c) || dropped {
                    steps.push(Step {
                        also: Some((
                            j,
                            format!("foreign key {} of {}", c.name.raw(), table.name.human()),
                        )),
                        ..Step::new(
                            Phase::ForeignKeys,
                            Some(i),
                            format!(
                                "ALTER TABLE {} ADD CONSTRAINT {} {}",
                                table.name, c.name, c.definition
                            ),
                        )
                    });
                }
            }
        }
        steps
    }

    /// The user triggers of the unit's existing tables, turned back on as they were once the
    /// rows are in (see the `Truncate` phase).
    pub(super) fn trigger_restore_steps(
        &self,
        ordered: &[&Table],
        infos: &[TableInfo],
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        for (i, (table, info)) in ordered.iter().zip(infos).enumerate() {
            let i = TableIx(i);
            if self.turns_triggers_off(info) {
                for (name, triggers) in self.enabled_triggers(table) {
                    let actions: Vec<String> =
                        triggers.iter().map(|(t, state)| state.action(t)).collect();
                    steps.push(Step::new(
                        Phase::Triggers,
                        Some(i),
                        format!("ALTER TABLE ONLY {name} {}", actions.join(", ")),
                    ));
                }
            }
        }
        steps
    }

    /// Whether the load turns the table's user triggers off (and back on): an existing table
    /// snapcopy loads, unless it is the user's and the target role does not own it (then
    /// they fire, as the plan's warnings say).
    fn turns_triggers_off(&self, info: &TableInfo) -> bool {
        matches!(info.action, Action::Reload | Action::Insert | Action::Sync)
            && (!info.data_only
                || self
                    .target
                    .user_tables
                    .get(&info.name)
                    .is_some_and(|theirs| theirs.owned))
    }

    /// Opens (`SAVEPOINT`) or closes (`RELEASE SAVEPOINT`) a table's block on the target and
    /// in the source transaction, where a failure may have left an error or an open cursor.
    pub(super) fn block_step(&self, phase: Phase, i: TableIx, command: &str) -> Step {
        Step::new(phase, Some(i), self.link.block_sql(command))
    }

    /// Opens the unit's source transaction, in the run's snapshot when the link can.
    pub(super) fn connect_steps(&self) -> Vec<Step> {
        self.link.connect_steps()
    }

    /// Ends the source transaction.
    pub(super) fn disconnect_steps(&self) -> Vec<Step> {
        self.link.disconnect_steps()
    }

    /// The table and its partitions that have user triggers on the target that fire, each
    /// with those triggers and their states.
    pub(super) fn enabled_triggers<'t>(
        &'t self,
        table: &'t Table,
    ) -> Vec<(&'t QualifiedName, Vec<&'t (Ident, TriggerState)>)> {
        std::iter::once(table)
            .chain(&table.partitions)
            .filter_map(|t| {
                let on: Vec<&(Ident, TriggerState)> = self
                    .target
                    .triggers
                    .get(&t.name)?
                    .iter()
                    .filter(|(_, state)| *state != TriggerState::Disabled)
                    .collect();
                (!on.is_empty()).then_some((&t.name, on))
            })
            .collect()
    }

    pub(super) fn has_constraint(&self, table: &QualifiedName, c: &Constraint) -> bool {
        self.target
            .existing_constraints
            .contains(&(table.clone(), c.name.raw().to_string()))
    }
}

/// The fewest new tables a unit has for helper sessions to build some of them (see
/// [`Builds`]): below it, a helper's own session (a connection, the link's, the snapshot) and
/// the moves cost about what it saves.
pub(super) const BUILDS_FROM: usize = 8;

/// A step the executor answers itself, without SQL ([`StepKind::Claim`], [`StepKind::Built`]),
/// with what the dry run says of it.
fn waypoint(kind: StepKind, i: TableIx, note: String) -> Step {
    Step::new(Phase::PreData, Some(i), String::new())
        .of_kind(kind)
        .with_note(note)
}

/// The statements, marked as run on one branch (see [`Branch`]).
fn branch(steps: Vec<Step>, branch: Branch) -> Vec<Step> {
    steps
        .into_iter()
        .map(|s| Step {
            branch: Some(branch),
            ..s
        })
        .collect()
}

/// The user's tables of a unit (`--data-only`) that must take their rows in one statement:
/// those on a cycle of foreign keys where a key between two of them is not deferrable (no
/// order of loads satisfies it, and it cannot wait for the end of the load). Their positions
/// in `ordered`; none when fewer than two.
fn together(
    ordered: &[&Table],
    infos: &[TableInfo],
    cyclic: &BTreeSet<QualifiedName>,
) -> Vec<usize> {
    let members: Vec<usize> = (0..ordered.len())
        .filter(|&k| {
            infos[k].data_only
                && matches!(infos[k].action, Action::Reload | Action::Insert)
                && cyclic.contains(&ordered[k].name)
        })
        .collect();
    let names: BTreeSet<&QualifiedName> = members.iter().map(|&k| &ordered[k].name).collect();
    let urgent = members.iter().any(|&k| {
        ordered[k].constraints.iter().any(|c| {
            !c.deferrable
                && matches!(&c.kind, ConstraintKind::ForeignKey { references }
                    if references != &ordered[k].name && names.contains(references))
        })
    });
    if urgent && members.len() >= 2 {
        members
    } else {
        Vec::new()
    }
}
