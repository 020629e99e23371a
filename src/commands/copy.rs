//! The main job, and `snapcopy plan`: reads the source's catalog in one snapshot, decides the
//! plan against the target's state, and (unless it only prints the plan) runs the setup and
//! the units, then prints the summary.

use std::collections::BTreeMap;

use anyhow::Context;

use super::select;
use crate::cli::CopyArgs;
use crate::conninfo::Env;
use crate::exec::{connect, Side};
use crate::plan::{PlanOptions, TargetState};
use crate::report::TableStatus;
use crate::settings::{Settings, Verbosity};
use crate::{cli, exec, guard, plan, progress, report, source, sql, Outcome};
use tokio_postgres::Client;

/// Copies (or, with `dry_run`, prints the plan of a copy of) the chosen tables.
pub async fn copy(args: &CopyArgs, dry_run: bool) -> anyhow::Result<Outcome> {
    let mut settings = Settings::from_args(args, &Env::from_process())?;
    let quiet = settings.verbosity == Verbosity::Quiet;

    let (source, mut target) = futures::try_join!(
        connect(&settings.source, Side::Source),
        connect(&settings.target, Side::Target)
    )?;
    guard::refuse_same_database(&source, &target, &settings.source, &settings.target).await?;
    let lock = if dry_run {
        None
    } else {
        Some(guard::lock_target(&target, &settings.staging_schema).await?)
    };
    guard::check_staging_schema(&target, &settings.staging_schema).await?;
    fit_jobs(&mut settings, &source, &target, quiet).await?;
    let mut snapshot = source::open_snapshot(&source).await?;
    if args.hash_rows {
        snapshot.mark = None;
    }
    let mut planned = plan_copy(&source, &target, &mut settings, &snapshot, quiet).await?;
    refuse_units_beyond_locks(&source, &target, &mut planned).await?;
    if !quiet {
        for warning in &planned.plan.warnings {
            eprintln!("warning: {}", sql::printable(warning));
        }
    }
    if dry_run {
        report::out(&planned.plan.to_string());
        return Ok(Outcome::Success);
    }
    let run = exec::Run {
        target: &settings.target,
        snapshot: &snapshot,
        verbosity: settings.verbosity,
        source_role: settings.link.get("user").unwrap_or_default(),
        lock: lock.as_ref(),
        // Only a run that masks needs the key on its sessions.
        mask_key: settings
            .mask_key
            .as_ref()
            .filter(|_| planned.options.masks.any()),
        spare: Default::default(),
    };
    // The first loading session opens while the setup runs.
    let (set, ()) = futures::join!(
        set_up(&mut target, &mut planned, &settings, quiet),
        run.open_spare()
    );
    set?;
    let plan = &planned.plan;
    let table_count = plan.units.iter().map(|u| u.tables.len()).sum();
    let progress = progress::Progress::new(settings.verbosity, table_count);
    let outcomes = exec::run_units(&run, &plan.units, settings.jobs, &progress).await;
    progress.done();
    // The snapshot is needed no longer; end the read-only transaction cleanly.
    let _ = source.batch_execute("COMMIT").await;
    Ok(summarize(
        outcomes,
        &plan.refused,
        settings.json,
        quiet,
        args.no_summary,
    ))
}

/// Each loading session holds a connection to the target and, through dblink, one to the
/// source: `--jobs` cannot be more than either has free.
async fn fit_jobs(
    settings: &mut Settings,
    source: &Client,
    target: &Client,
    quiet: bool,
) -> anyhow::Result<()> {
    let (target_room, source_room) = futures::try_join!(
        guard::connection_room(target),
        guard::connection_room(source)
    )?;
    let room = target_room.min(source_room);
    if settings.jobs as i64 > room {
        if !quiet {
            eprintln!(
                "note: --jobs {} is more sessions than the servers have connections free; using \
                 {room}",
                settings.jobs
            );
        }
        settings.jobs = room as usize;
    }
    Ok(())
}

/// A run's plan, and what it was made from.
struct Planned {
    catalog: source::Catalog,
    state: TargetState,
    options: PlanOptions,
    plan: plan::Plan,
    /// Tables refused before the catalog was read (named but gone, extension-owned).
    refused: Vec<(crate::sql::QualifiedName, String)>,
}

/// Chooses the tables, reads their catalog in the run's snapshot and the target's state, and
/// plans the run.
async fn plan_copy(
    source: &Client,
    target: &Client,
    settings: &mut Settings,
    snapshot: &source::Snapshot,
    quiet: bool,
) -> anyhow::Result<Planned> {
    let (candidates, managed) = futures::try_join!(
        source::candidates(source),
        crate::target::registry::managed(target, &settings.staging_schema)
    )?;
    let mut refused = select::tables_to_use(settings, &managed, &candidates)?;
    let chosen = select::choose(settings, &candidates)?;
    let chosen = select::leave_extension_tables(settings, chosen, &mut refused);
    guard::check_source_role(
        source,
        settings.link.get("user").unwrap_or_default(),
        &chosen,
        settings.require_read_only,
        quiet,
    )
    .await?;
    let mut along = BTreeMap::new();
    let mut chosen = if settings.mode == cli::Mode::Full {
        select::bring_along(target, settings, &candidates, &managed, chosen, &mut along).await?
    } else {
        chosen
    };
    select::note_lone_children(settings, &chosen, &managed);
    let mut options = settings.plan_options();
    options.mark = snapshot.mark.clone();
    // A rebuilt inheritance parent takes its children with it: the managed ones come along and
    // are made anew with it, which takes another look at the source.
    loop {
        let mut catalog = source::introspect(source, &chosen, settings.triggers).await?;
        if settings.jobs >= 2 && settings.split_bytes > 0 {
            source::read_extents(source, &mut catalog, settings.split_bytes).await?;
        }
        // Only a full run reloads a table into a new one swapped in (a table of another mode
        // that falls back to a reload is reloaded in place).
        let swaps = settings.mode == cli::Mode::Full && settings.jobs >= 2;
        let mut state = crate::target::state::read(
            target,
            &settings.staging_schema,
            managed.clone(),
            &catalog,
            swaps,
        )
        .await?;
        state.along = along.clone();
        if settings.data_only || !state.data_only.is_empty() {
            let theirs: Vec<&crate::sql::QualifiedName> = catalog
                .tables
                .iter()
                .map(|t| &t.name)
                .filter(|n| state.existing_tables.contains(*n) && !state.managed.contains_key(*n))
                .collect();
            state.user_tables = crate::target::user_tables::read(target, &catalog, &theirs).await?;
        }
        options.masks =
            crate::mask::resolve(&catalog, &settings.masks).map_err(anyhow::Error::msg)?;
        options.filters = plan::resolve_filters(&catalog.tables, &settings.filters)
            .map_err(anyhow::Error::msg)?;
        if settings.strict_masks {
            let found = super::audit::findings(source, &catalog, &options.masks).await?;
            if !found.is_empty() {
                let names: Vec<String> = found
                    .iter()
                    .map(|f| format!("{}.{} ({})", f.table, f.column, f.looks_like))
                    .collect();
                anyhow::bail!(
                    "strict_masks is set and these columns look sensitive without a mask rule: \
                     {}; give each a rule, or keep for one that is not sensitive (snapcopy audit \
                     lists them); nothing was copied",
                    names.join(", ")
                );
            }
        }
        let mut plan = plan::plan(&catalog, &state, &options);
        let more = select::children_to_rebuild(&plan, &state, &chosen, &candidates, &mut along);
        if more.is_empty() {
            plan.refused.extend(refused.iter().cloned());
            return Ok(Planned {
                catalog,
                state,
                options,
                plan,
                refused,
            });
        }
        chosen.extend(source::with_partitions(&candidates, more).0);
    }
}

/// Refuses, before anything changes, the units that would hold more locks than either
/// server's lock table has room for. A unit's transaction on the target keeps a lock on each
/// relation it creates, truncates or writes (tables, indexes, sequences, staging objects), and
/// its read-only transaction on the source one on each relation it reads (as pg_dump's does),
/// until it commits; tables tied by foreign keys are one unit. A group of thousands of tables
/// would load for minutes and then fail with "out of shared memory", and on the source it
/// could leave other sessions short of locks meanwhile. The count is a lower bound (each table
/// and partition, its indexes and owned sequences, the TOAST table and its index of a table
/// with a column of unbounded length, the staging view a new table's unit makes) and the room
/// the lock table's nominal size and half again: its entries come from the server's spare
/// shared memory, which held 1.6 times the nominal size on PostgreSQL 15's defaults and 2.4
/// times on a small server (measured: one transaction creating tables until it failed), so
/// that a unit that fits is not refused.
async fn refuse_units_beyond_locks(
    source: &Client,
    target: &Client,
    planned: &mut Planned,
) -> anyhow::Result<()> {
    // A table, its own indexes (a partition has one of each of its root's as well, which the
    // catalog lists on the root only) and sequences; on the target also the TOAST table and
    // index it makes (on the source, what a unit reads).
    fn relations(t: &source::Table, toast: bool) -> i64 {
        let indexes = |t: &source::Table| {
            let keys = t
                .constraints
                .iter()
                .filter(|c| c.index_body.is_some())
                .count();
            (t.indexes.len() + keys) as i64
        };
        let toasted = |t: &source::Table| {
            let unbounded = t.columns.iter().any(|c| {
                let ty = c.type_sql.as_str();
                matches!(
                    ty,
                    "text" | "bytea" | "jsonb" | "json" | "xml" | "character varying"
                ) || ty.ends_with("[]")
            });
            if toast && unbounded && !t.is_partitioned() {
                2
            } else {
                0
            }
        };
        let inherited = indexes(t);
        1 + inherited
            + t.sequences.len() as i64
            + toasted(t)
            + t.partitions
                .iter()
                .map(|p| 1 + inherited + indexes(p) + toasted(p))
                .sum::<i64>()
    }
    let (target_room, source_room) =
        futures::try_join!(LockRoom::of(target), LockRoom::of(source))?;
    let mut refused = BTreeMap::new();
    for unit in &planned.plan.units {
        let tables: Vec<(&source::Table, bool)> = unit
            .tables
            .iter()
            .filter_map(|info| {
                let table = planned
                    .catalog
                    .tables
                    .iter()
                    .find(|t| t.name == info.name)?;
                Some((table, info.action.creates()))
            })
            .collect();
        let on_target: i64 = tables
            .iter()
            .map(|(t, creates)| relations(t, true) + i64::from(*creates))
            .sum();
        let on_source: i64 = tables.iter().map(|(t, _)| relations(t, false)).sum();
        let tables: Vec<&source::Table> = tables.into_iter().map(|(t, _)| t).collect();
        let (side, room, locks, what_to_do) = if on_target > target_room.room() {
            let locks = on_target;
            let needed = target_room.needed(locks);
            (
                "the target",
                &target_room,
                locks,
                format!(
                    "set max_locks_per_transaction to at least {needed} on the target \
                     (postgresql.conf, then restart it) and run again"
                ),
            )
        } else if on_source > source_room.room() {
            let locks = on_source;
            let fewer = if tables.len() > 1 {
                "copy fewer of these tables in one run (foreign keys to tables left out are \
                 skipped), or "
            } else {
                ""
            };
            (
                "the source",
                &source_room,
                locks,
                format!(
                    "{fewer}have max_locks_per_transaction raised to at least {} on the source",
                    source_room.needed(locks)
                ),
            )
        } else {
            continue;
        };
        // What loads in the one transaction: a group tied by foreign keys, or a partitioned
        // table with its partitions.
        let what = match (tables.len(), tables[0].partitions.len()) {
            (1, 0) => format!("{} loads", tables[0].name.human()),
            (1, partitions) => format!(
                "{} and its {partitions} partitions load",
                tables[0].name.human()
            ),
            (n, _) => format!(
                "{} and the {} other tables tied to it by foreign keys load",
                tables[0].name.human(),
                n - 1
            ),
        };
        let reason = format!(
            "{what} in one transaction, which holds a lock on each of their {} tables, \
             indexes, sequences and views (at least) until it commits, and {side}'s lock table \
             has room for about {} (max_locks_per_transaction {} for each of its {} server \
             processes, and some spare); nothing changed: {what_to_do}",
            crate::human::count(locks),
            crate::human::count(room.room()),
            room.per_process,
            room.processes,
        );
        let first = tables[0].name.human();
        refused.insert(tables[0].name.clone(), reason);
        for t in &tables[1..] {
            refused.insert(
                t.name.clone(),
                format!(
                    "{} is refused with {first}, to which foreign keys tie it: their group \
                     needs more locks than {side} has room for (see {first})",
                    t.name.human()
                ),
            );
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    let state = &mut planned.state;
    state.cannot_make.extend(refused);
    let again = plan::plan(&planned.catalog, state, &planned.options);
    planned.plan.units = again.units;
    planned.plan.setup = again.setup;
    planned.plan.refused = again.refused;
    planned.plan.refused.extend(planned.refused.iter().cloned());
    Ok(())
}

/// A server's lock table: `max_locks_per_transaction` for each process that may hold locks.
struct LockRoom {
    per_process: i64,
    processes: i64,
}

impl LockRoom {
    async fn of(client: &Client) -> anyhow::Result<LockRoom> {
        let row = client
            .query_one(
                "SELECT current_setting('max_locks_per_transaction')::int8, \
                 current_setting('max_connections')::int8 \
                 + current_setting('autovacuum_max_workers')::int8 + 1 \
                 + current_setting('max_worker_processes')::int8 \
                 + current_setting('max_wal_senders')::int8 \
                 + current_setting('max_prepared_transactions')::int8",
                &[],
            )
            .await
            .context("could not read the servers' lock settings")?;
        Ok(LockRoom {
            per_process: row.get(0),
            processes: row.get(1),
        })
    }

    /// The locks it holds, with some of the server's spare shared memory.
    fn room(&self) -> i64 {
        self.per_process * self.processes * 3 / 2
    }

    /// A setting with room for twice `locks`.
    fn needed(&self, locks: i64) -> i64 {
        (2 * locks / self.processes + 1).max(self.per_process + 1)
    }
}

/// Runs the setup. What it could not make refuses the tables that need it; the others are
/// planned again without them (the setup's work stands).
async fn set_up(
    target: &mut Client,
    planned: &mut Planned,
    settings: &Settings,
    quiet: bool,
) -> anyhow::Result<()> {
    let unmade = exec::run_setup(
        target,
        &planned.plan.setup,
        settings.verbosity == Verbosity::Verbose,
    )
    .await?;
    if unmade.is_empty() {
        return Ok(());
    }
    let state = &mut planned.state;
    state.cannot_make = select::tables_without(&planned.catalog, &unmade);
    let again = plan::plan(&planned.catalog, state, &planned.options);
    let plan = &mut planned.plan;
    if !quiet {
        for warning in again.warnings.iter().filter(|w| !plan.warnings.contains(w)) {
            eprintln!("warning: {}", sql::printable(warning));
        }
    }
    // A refused table's load table, if the setup made it, goes at once.
    for unit in &plan.units {
        for split in &unit.splits {
            if state
                .cannot_make
                .contains_key(&unit.tables[split.table].name)
            {
                target
                    .batch_execute(&split.discard)
                    .await
                    .context("could not drop the load table of a refused table")?;
            }
        }
    }
    plan.units = again.units;
    plan.refused = again.refused;
    plan.refused.extend(planned.refused.iter().cloned());
    Ok(())
}

/// Prints the summary, the refused tables among the outcomes, and says how the run ends.
fn summarize(
    mut outcomes: Vec<report::TableOutcome>,
    refused: &[(crate::sql::QualifiedName, String)],
    json: bool,
    quiet: bool,
    no_summary: bool,
) -> Outcome {
    for (name, reason) in refused {
        if !quiet {
            eprintln!("error: {}", sql::printable(reason));
        }
        outcomes.push(report::TableOutcome {
            name: name.clone(),
            action: None,
            status: TableStatus::Failed(reason.clone()),
            rows: 0,
            skipped: 0,
            bytes: None,
            seconds: 0.0,
            note: String::new(),
            high_water: None,
            link: None,
            sync: None,
        });
    }
    outcomes.sort_by(|a, b| a.name.cmp(&b.name));
    if !no_summary {
        report::print(&outcomes, json);
    }
    let failed = outcomes
        .iter()
        .any(|o| matches!(o.status, TableStatus::Failed(_)));
    if failed {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    }
}
