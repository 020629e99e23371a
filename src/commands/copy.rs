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

    // An incremental run through dblink asks on a connection of its own, while it plans, which
    // tables the source wrote nothing of since their last run (see `source::Probe`; through
    // postgres_fdw it compares keys instead).
    let probes = settings.mode == cli::Mode::Incremental
        && settings.link_kind == cli::LinkKind::Dblink
        && !dry_run;
    let (connected, prober) = futures::join!(
        async {
            futures::try_join!(
                connect(&settings.source, Side::Source),
                connect(&settings.target, Side::Target)
            )
        },
        async {
            match probes {
                true => connect(&settings.source, Side::Source).await.ok(),
                false => None,
            }
        }
    );
    let (source, mut target) = connected?;
    if let Some(prober) = &prober {
        exec::session::register(prober);
    }
    // The snapshot is taken while the checks run (it only reads): a run that goes no further
    // ends its transaction with the session.
    let (snapshot, lock) = futures::join!(source::open_snapshot(&source), async {
        guard::refuse_same_database(&source, &target, &settings.source, &settings.target).await?;
        let lock = if dry_run {
            None
        } else {
            Some(guard::lock_target(&target, &settings.staging_schema).await?)
        };
        guard::check_staging_schema(&target, &settings.staging_schema).await?;
        fit_jobs(&mut settings, &source, &target, quiet).await?;
        anyhow::Ok(lock)
    });
    let lock = lock?;
    let mut snapshot = snapshot?;
    if args.hash_rows {
        snapshot.mark = None;
    }
    let mut planned = plan_copy(&source, &target, &mut settings, &snapshot, prober, quiet).await?;
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
        probe: planned.probe.clone(),
    };
    // The first loading session opens while the setup runs.
    let (set, ()) = futures::join!(
        set_up(&mut target, &mut planned, &settings, quiet),
        run.open_spare()
    );
    set?;
    let plan = &planned.plan;
    if let Some(probe) = &planned.probe {
        probe.keep_only(&plan.probed());
    }
    let table_count = plan.units.iter().map(|u| u.tables.len()).sum();
    let progress = progress::Progress::new(settings.verbosity, table_count);
    let outcomes = exec::run_units(&run, &plan.units, settings.jobs, &progress).await;
    progress.done();
    if let Some(probe) = &planned.probe {
        probe.stop().await;
    }
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
    /// The probe of the tables the source may have written nothing of since their last run.
    probe: Option<std::sync::Arc<source::Probe>>,
}

impl Planned {
    /// The plan again, with `refused` (table and why) refused too, as well as every table
    /// refused so far (the catalog's and the state's own).
    fn without(&mut self, refused: BTreeMap<crate::sql::QualifiedName, String>) -> plan::Plan {
        self.state.cannot_make.extend(refused);
        let mut again = plan::plan(&self.catalog, &self.state, &self.options);
        again.refused.extend(self.refused.iter().cloned());
        again
    }
}

/// Chooses the tables, reads their catalog in the run's snapshot and the target's state, and
/// plans the run.
async fn plan_copy(
    source: &Client,
    target: &Client,
    settings: &mut Settings,
    snapshot: &source::Snapshot,
    prober: Option<Client>,
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
    let probe = prober.and_then(|client| {
        let tables = probed(&chosen, &managed, snapshot.mark.as_ref()?, settings);
        (!tables.is_empty()).then(|| source::Probe::start(client, &snapshot.id, tables))
    });
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
        // Large tables split only with two sessions or more.
        let splits = settings.jobs >= 2 && settings.split_bytes > 0;
        if splits {
            source::read_extents(source, &mut catalog, settings.split_bytes).await?;
        }
        // Only a full run reloads a large table into a new one swapped in (a table of another
        // mode that falls back to a reload is reloaded in place).
        let swaps = splits && settings.mode == cli::Mode::Full;
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
            if let Some(probe) = &probe {
                probe.keep_only(&plan.probed());
            }
            plan.refused.extend(refused.iter().cloned());
            return Ok(Planned {
                catalog,
                state,
                options,
                plan,
                refused,
                probe,
            });
        }
        chosen.extend(source::with_partitions(&candidates, more).0);
    }
}

/// The chosen tables an incremental run may read only the rows written since their last run
/// of, before the catalog tells for sure (see [`plan::Plan::probed`]): ordinary tables without
/// children in a run without row filters (a subset reads rows by other tables' too), whose
/// last run recorded a mark of the same relation and no growing column's high-water mark (a
/// table read above one never scans its rows).
fn probed(
    chosen: &[source::Candidate],
    managed: &[crate::target::Managed],
    mark: &source::ChangeMark,
    settings: &Settings,
) -> Vec<source::Probed> {
    chosen
        .iter()
        .filter(|c| c.relkind == "r" && !c.has_children && settings.filters.is_empty())
        .filter_map(|c| {
            let m = managed.iter().find(|m| m.name == c.name)?;
            if m.high_water.is_some() || m.data_only {
                return None;
            }
            let last = source::ChangeMark::parse(m.source_mark.as_deref()?)?;
            let xid = mark.of_relation(c.oid).since(&last)?;
            Some(source::Probed {
                table: c.name.clone(),
                xid,
            })
        })
        .collect()
}

/// Refuses, before anything changes, the units that would hold more locks than either
/// server's lock table has room for (see [`guard::beyond_locks`]); the others are planned
/// again without them.
async fn refuse_units_beyond_locks(
    source: &Client,
    target: &Client,
    planned: &mut Planned,
) -> anyhow::Result<()> {
    let (target_room, source_room) =
        futures::try_join!(guard::LockRoom::of(target), guard::LockRoom::of(source))?;
    let refused = guard::beyond_locks(
        &planned.plan.units,
        &planned.catalog,
        &target_room,
        &source_room,
    );
    if !refused.is_empty() {
        planned.plan = planned.without(refused);
    }
    Ok(())
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
    let again = planned.without(select::tables_without(&planned.catalog, &unmade));
    let state = &planned.state;
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
