//! The main job, and `snapcopy plan`: reads the source's catalog in one snapshot, decides the
//! plan against the target's state, and (unless it only prints the plan) runs the setup and
//! the units, then prints the summary.

use std::collections::BTreeMap;

use anyhow::Context;

use super::select;
use crate::cli::CopyArgs;
use crate::conninfo::Env;
use crate::exec::{connect, Side};
use crate::plan::PlanOptions;
use crate::report::TableStatus;
use crate::settings::{Settings, Verbosity};
use crate::{cli, exec, guard, plan, progress, report, source, sql, Outcome};

/// Copies (or, with `dry_run`, prints the plan of a copy of) the chosen tables.
pub async fn copy(args: &CopyArgs, dry_run: bool) -> anyhow::Result<Outcome> {
    let mut settings = Settings::from_args(args, &Env::from_process())?;
    let quiet = settings.verbosity == Verbosity::Quiet;

    let source = connect(&settings.source, Side::Source).await?;
    let mut target = connect(&settings.target, Side::Target).await?;
    guard::refuse_same_database(&source, &target, &settings.source, &settings.target).await?;
    let lock = if dry_run {
        None
    } else {
        Some(guard::lock_target(&target, &settings.staging_schema).await?)
    };
    guard::check_staging_schema(&target, &settings.staging_schema).await?;
    // Each loading session holds a connection to the target and, through dblink, one to the
    // source: --jobs cannot be more than either has free.
    let room = guard::connection_room(&target)
        .await?
        .min(guard::connection_room(&source).await?);
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
    let snapshot = source::open_snapshot(&source).await?;
    let candidates = source::candidates(&source).await?;
    let managed = crate::target::registry::managed(&target, &settings.staging_schema).await?;
    let mut refused = select::tables_to_use(&mut settings, &managed, &candidates)?;
    let chosen = select::choose(&settings, &candidates)?;
    let chosen = select::leave_extension_tables(&settings, chosen, &mut refused);
    guard::check_source_role(
        &source,
        settings.link.get("user").unwrap_or_default(),
        &chosen,
        settings.require_read_only,
        quiet,
    )
    .await?;
    let mut along = BTreeMap::new();
    let mut chosen = if settings.mode == cli::Mode::Full {
        select::bring_along(
            &target,
            &settings,
            &candidates,
            &managed,
            chosen,
            &mut along,
        )
        .await?
    } else {
        chosen
    };
    select::note_lone_children(&settings, &chosen, &managed);
    let options = PlanOptions {
        mode: settings.mode,
        staging: settings.staging,
        staging_schema: settings.staging_schema.clone(),
        link: settings.link.clone(),
        source_label: settings.source.label(),
        cursors: settings.cursors.clone(),
        replace_unmanaged: settings.replace_unmanaged,
        rebuild: settings.rebuild,
        batch_bytes: settings.batch_bytes,
        split_bytes: settings.split_bytes,
        split_ranges: settings.jobs,
    };
    // A rebuilt inheritance parent takes its children with it: the managed ones come along and
    // are made anew with it, which takes another look at the source.
    let (catalog, mut state, mut plan) = loop {
        let mut catalog = source::introspect(&source, &chosen, settings.triggers).await?;
        if settings.jobs >= 2 && settings.split_bytes > 0 {
            source::read_extents(&source, &mut catalog, settings.split_bytes).await?;
        }
        let mut state = crate::target::state::read(
            &target,
            &settings.staging_schema,
            managed.clone(),
            &catalog,
        )
        .await?;
        state.along = along.clone();
        let plan = plan::plan(&catalog, &state, &options);
        let more = select::children_to_rebuild(&plan, &state, &chosen, &candidates, &mut along);
        if more.is_empty() {
            break (catalog, state, plan);
        }
        chosen.extend(source::with_partitions(&candidates, more).0);
    };
    plan.refused.extend(refused.iter().cloned());

    if !quiet {
        for warning in &plan.warnings {
            eprintln!("warning: {}", sql::printable(warning));
        }
    }
    if dry_run {
        print!("{plan}");
        return Ok(Outcome::Success);
    }

    let unmade = exec::run_setup(
        &mut target,
        &plan.setup,
        settings.verbosity == Verbosity::Verbose,
    )
    .await?;
    if !unmade.is_empty() {
        // What the setup could not make refuses the tables that need it; the others are
        // planned again without them (the setup's work stands).
        state.cannot_make = select::tables_without(&catalog, &unmade);
        let again = plan::plan(&catalog, &state, &options);
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
        plan.refused.extend(refused);
    }
    let table_count = plan.units.iter().map(|u| u.tables.len()).sum();
    let progress = progress::Progress::new(settings.verbosity, table_count);
    let run = exec::Run {
        target: &settings.target,
        snapshot: &snapshot,
        verbosity: settings.verbosity,
        source_role: settings.link.get("user").unwrap_or_default(),
        lock: lock.as_ref(),
    };
    let mut outcomes = exec::run_units(&run, &plan.units, settings.jobs, &progress).await;
    progress.done();
    // The snapshot is needed no longer; end the read-only transaction cleanly.
    let _ = source.batch_execute("COMMIT").await;
    for (name, reason) in &plan.refused {
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
        });
    }
    outcomes.sort_by(|a, b| a.name.cmp(&b.name));
    report::print(&outcomes, settings.json);
    let failed = outcomes
        .iter()
        .any(|o| matches!(o.status, TableStatus::Failed(_)));
    Ok(if failed {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    })
}
