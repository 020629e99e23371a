//! snapcopy: clone PostgreSQL tables server to server through dblink.
//!
//! Data flow, one direction: flags and config become [`settings::Settings`]; the source catalog
//! becomes a [`catalog::Catalog`]; catalog, target state and settings become a [`plan::Plan`]
//! (pure, printable); [`load`] runs the plan on the target; [`report`] prints the summary.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod conninfo;
pub mod guard;
pub mod link;
pub mod load;
pub mod pattern;
pub mod plan;
pub mod progress;
pub mod report;
pub mod settings;
pub mod sql;
pub mod teardown;
pub mod tls;
pub mod verify;

use std::collections::BTreeMap;

use anyhow::{bail, Context};

use crate::catalog::Candidate;
use crate::cli::{Cli, Command, CopyArgs, InitArgs, StatusArgs};
use crate::conninfo::Env;
use crate::link::{connect, Side};
use crate::plan::PlanOptions;
use crate::report::TableStatus;
use crate::settings::{Settings, TargetSettings, Verbosity};

/// How a run ended, for the exit code: 0 all done, 1 some table failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every table was copied.
    Success,
    /// Some tables failed; the others finished, and the summary says which.
    SomeFailed,
}

pub use load::cancel_running;

/// Runs a command. An `Err` means nothing changed on the target (exit 2).
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Some(Command::Init(args)) => init(&args),
        Some(Command::Plan(args)) => copy(&args, true).await,
        Some(Command::Status(args)) => status(&args).await,
        Some(Command::Verify(args)) => verify_tables(&args.as_copy_args()).await,
        Some(Command::Teardown(args)) => teardown::teardown(&args).await,
        None => copy(&cli.copy, false).await,
    }
}

fn init(args: &InitArgs) -> anyhow::Result<Outcome> {
    if args.path.exists() && !args.force {
        bail!(
            "{} already exists; edit it, or pass --force to overwrite it",
            args.path.display()
        );
    }
    std::fs::write(&args.path, config::TEMPLATE)
        .with_context(|| format!("could not write {}", args.path.display()))?;
    eprintln!("wrote {}", args.path.display());
    Ok(Outcome::Success)
}

async fn copy(args: &CopyArgs, dry_run: bool) -> anyhow::Result<Outcome> {
    let mut settings = Settings::from_args(args, &Env::from_process())?;
    let quiet = settings.verbosity == Verbosity::Quiet;

    // One snapshot for the run: this session reads the catalog in it and holds it open while
    // every dblink session imports it, so all tables are read as of one moment. It must not
    // be ended for idling in its transaction while the loads run. Expressions the catalog
    // prints (defaults, bounds, checks) must parse on any target: as pg_dump does, constants
    // print in ISO dates, postgres-style intervals and exact floats.
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
    source
        .batch_execute(
            "SET idle_in_transaction_session_timeout = 0; SET statement_timeout = 0; \
             SET search_path = ''; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; \
             SET extra_float_digits = 3; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )
        .await
        .context("could not prepare the source session")?;
    let snapshot: String = source
        .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
        .await
        .context("could not export a snapshot on the source")?
        .get(0);
    let candidates = catalog::candidates(&source).await?;
    let managed = link::managed_tables(&target, &settings.staging_schema).await?;
    let mut refused = tables_to_use(&mut settings, &managed, &candidates)?;
    let chosen = choose(&settings, &candidates)?;
    let chosen = leave_extension_tables(&settings, chosen, &mut refused);
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
        bring_along(
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
    note_lone_children(&settings, &chosen, &managed);
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
        let mut catalog = catalog::introspect(&source, &chosen, settings.triggers).await?;
        if settings.jobs >= 2 && settings.split_bytes > 0 {
            catalog::read_extents(&source, &mut catalog, settings.split_bytes).await?;
        }
        let mut state =
            link::target_state(&target, &settings.staging_schema, managed.clone(), &catalog)
                .await?;
        state.along = along.clone();
        let plan = plan::plan(&catalog, &state, &options);
        let more = children_to_rebuild(&plan, &state, &chosen, &candidates, &mut along);
        if more.is_empty() {
            break (catalog, state, plan);
        }
        chosen.extend(catalog::with_partitions(&candidates, more).0);
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

    let unmade = link::run_setup(
        &mut target,
        &plan.setup,
        settings.verbosity == Verbosity::Verbose,
    )
    .await?;
    if !unmade.is_empty() {
        // What the setup could not make refuses the tables that need it; the others are
        // planned again without them (the setup's work stands).
        state.cannot_make = tables_without(&catalog, &unmade);
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
    let run = load::Run {
        target: &settings.target,
        snapshot: &snapshot,
        verbosity: settings.verbosity,
        source_role: settings.link.get("user").unwrap_or_default(),
        lock: lock.as_ref(),
    };
    let mut outcomes = load::run_units(&run, &plan.units, settings.jobs, &progress).await;
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

/// The tables named, or every managed table that the source still has; the managed tables it
/// no longer has come back as refusals. `Err` when nothing is named and nothing is managed.
fn tables_to_use(
    settings: &mut Settings,
    managed: &[link::Managed],
    candidates: &[Candidate],
) -> anyhow::Result<Vec<Refusal>> {
    let mut gone = Vec::new();
    if !settings.include.is_empty() {
        return Ok(gone);
    }
    if managed.is_empty() {
        bail!(
            "no tables named, and snapcopy manages none in the target database yet: give \
             patterns such as 'public.*' or 'public.orders', or set tables in snapcopy.toml"
        );
    }
    for link::Managed { name, .. } in managed {
        if candidates.iter().any(|c| &c.name == name) {
            settings.include.push(pattern::TablePattern::exact(name));
        } else {
            gone.push((
                name.clone(),
                format!(
                    "{} is managed by snapcopy but no longer exists on the source; drop it on \
                     the target if it is not needed any more",
                    name.human()
                ),
            ));
        }
    }
    Ok(gone)
}

async fn verify_tables(args: &CopyArgs) -> anyhow::Result<Outcome> {
    let mut settings = Settings::from_args(args, &Env::from_process())?;
    let source = connect(&settings.source, Side::Source).await?;
    let target = connect(&settings.target, Side::Target).await?;
    for client in [&source, &target] {
        client
            .batch_execute(verify::OUTPUT_SETTINGS)
            .await
            .context("could not prepare a session for verify")?;
    }
    let candidates = catalog::candidates(&source).await?;
    let managed = link::managed_tables(&target, &settings.staging_schema).await?;
    let gone = tables_to_use(&mut settings, &managed, &candidates)?;
    let chosen = choose(&settings, &candidates)?;
    let catalog = catalog::introspect(&source, &chosen, settings.triggers).await?;
    let mut verdicts = verify::verify(&source, &target, &catalog, settings.triggers).await?;
    verdicts.extend(gone.into_iter().map(|(name, reason)| verify::Verdict {
        table: name.human(),
        source_rows: 0,
        target_rows: None,
        differences: vec![reason],
    }));
    verify::print(&verdicts, settings.json);
    Ok(if verdicts.iter().all(|v| v.same()) {
        Outcome::Success
    } else {
        Outcome::SomeFailed
    })
}

async fn status(args: &StatusArgs) -> anyhow::Result<Outcome> {
    let settings = TargetSettings::from_opts(&args.to, args.json, &Env::from_process())?;
    let target = connect(&settings.target, Side::Target).await?;
    let managed = link::managed_tables(&target, &settings.staging_schema).await?;
    let rows = if managed.is_empty() {
        Vec::new()
    } else {
        let sql = format!(
            "SELECT pg_catalog.quote_ident(table_schema) || '.' || \
             pg_catalog.quote_ident(table_name), source, \
             pg_catalog.quote_ident(source_schema) || '.' || pg_catalog.quote_ident(source_table), \
             staging_kind, mode, \
             pg_catalog.to_char(refreshed_at, 'YYYY-MM-DD HH24:MI:SS TZ'), \
             pg_catalog.to_char(source_snapshot_at, 'YYYY-MM-DD HH24:MI:SS TZ'), \
             rows_loaded, rows_total, pushed_down \
             FROM {}.{} ORDER BY table_schema, table_name",
            settings.staging_schema,
            sql::Ident::new(plan::REGISTRY)
        );
        target
            .query(&sql, &[])
            .await
            .context("could not read snapcopy's registry")?
            .iter()
            .map(|r| report::StatusRow {
                table: r.get(0),
                source: r.get(1),
                source_table: r.get(2),
                staging: r.get(3),
                mode: r.get(4),
                refreshed_at: r.get(5),
                source_snapshot_at: r.get(6),
                rows_loaded: r.get(7),
                rows_total: r.get(8),
                pushed_down: r.get(9),
            })
            .collect()
    };
    report::print_status(&rows, settings.json);
    Ok(Outcome::Success)
}

/// The managed inheritance children, on the target, of the tables the plan rebuilds that are not
/// part of the run yet (dropping a parent drops them), with why each comes along.
fn children_to_rebuild(
    plan: &plan::Plan,
    state: &plan::TargetState,
    chosen: &[Candidate],
    candidates: &[Candidate],
    along: &mut BTreeMap<sql::QualifiedName, String>,
) -> Vec<Candidate> {
    let mut more: Vec<Candidate> = Vec::new();
    let rebuilt = plan
        .units
        .iter()
        .flat_map(|u| &u.tables)
        .filter(|t| t.action == plan::Action::Rebuild);
    for parent in rebuilt {
        for child in state.children.get(&parent.name).into_iter().flatten() {
            let Some(candidate) = candidates.iter().find(|c| &c.name == child) else {
                continue;
            };
            if state.managed.contains_key(child)
                && !chosen.iter().any(|c| &c.name == child)
                && !more.iter().any(|c| &c.name == child)
            {
                along.insert(
                    child.clone(),
                    format!(
                        "came along: it inherits from {}, which is rebuilt",
                        parent.name.human()
                    ),
                );
                more.push(candidate.clone());
            }
        }
    }
    more
}

/// Says which chosen tables lose their inheritance: those whose parents are neither part of
/// the run nor on the target already become tables of their own.
fn note_lone_children(settings: &Settings, chosen: &[Candidate], managed: &[link::Managed]) {
    if settings.verbosity == Verbosity::Quiet {
        return;
    }
    for c in chosen {
        let missing: Vec<String> = c
            .parents
            .iter()
            .filter(|p| !chosen.iter().any(|o| &o.name == *p))
            .filter(|p| !managed.iter().any(|m| !m.replaced && &m.name == *p))
            .map(|p| p.human())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "note: {} inherits from {}, which this run does not copy; it is copied as a \
                 table of its own with all its columns (copy its parents in the same run to \
                 keep the inheritance)",
                c.name.human(),
                missing.join(", ")
            );
        }
    }
}

/// The tables that need what the setup could not make, each with the first such thing (the setup
/// makes things in dependency order, so the first is the cause) and why.
fn tables_without(
    catalog: &catalog::Catalog,
    unmade: &[(plan::Purpose, String)],
) -> BTreeMap<sql::QualifiedName, String> {
    let mut out = BTreeMap::new();
    for table in &catalog.tables {
        let reason = unmade.iter().find_map(|(purpose, why)| match purpose {
            plan::Purpose::Prerequisite(r) if table.requires.contains(r) => Some(format!(
                "{} needs the {r}, which could not be made on the target: {why}",
                table.name.human()
            )),
            plan::Purpose::ForTable(name) if name == &table.name => Some(format!(
                "{}: its load table could not be made on the target: {why}",
                table.name.human()
            )),
            _ => None,
        });
        if let Some(reason) = reason {
            out.insert(table.name.clone(), reason);
        }
    }
    out
}

/// Adds to a full refresh the managed tables it cannot leave behind on the target: those with a
/// foreign key to a table it reloads (TRUNCATE empties them together, in one transaction),
/// repeatedly, with why each came along. Tables excluded on purpose stay out.
async fn bring_along(
    target: &tokio_postgres::Client,
    settings: &Settings,
    candidates: &[Candidate],
    managed: &[link::Managed],
    mut chosen: Vec<Candidate>,
    along: &mut BTreeMap<sql::QualifiedName, String>,
) -> anyhow::Result<Vec<Candidate>> {
    loop {
        let names: Vec<&sql::QualifiedName> = chosen.iter().map(|c| &c.name).collect();
        let mut added = Vec::new();
        for (dependent, on) in link::referencing(target, &names).await? {
            let wanted = managed.iter().any(|m| !m.replaced && m.name == dependent)
                && !names.contains(&&dependent)
                && !added.iter().any(|c: &Candidate| c.name == dependent)
                && !settings.exclude.iter().any(|p| p.matches(&dependent));
            let Some(candidate) = candidates.iter().find(|c| c.name == dependent) else {
                continue;
            };
            if !wanted {
                continue;
            }
            along.insert(
                dependent.clone(),
                format!(
                    "came along: it has a foreign key to {}, which is reloaded",
                    on.human()
                ),
            );
            added.push(candidate.clone());
        }
        if added.is_empty() {
            return Ok(chosen);
        }
        chosen.extend(catalog::with_partitions(candidates, added).0);
    }
}

/// Leaves the tables that extensions make to `CREATE EXTENSION`, as pg_dump does: a glob passes
/// over them, except that the rows an extension marks as user data (pg_extension_config_dump,
/// such as PostGIS's own spatial reference systems) are added to the target's table; naming one
/// is refused with why.
fn leave_extension_tables(
    settings: &Settings,
    chosen: Vec<Candidate>,
    refused: &mut Vec<Refusal>,
) -> Vec<Candidate> {
    let quiet = settings.verbosity == Verbosity::Quiet;
    let mut kept = Vec::new();
    for c in chosen {
        let Some(ext) = &c.extension else {
            kept.push(c);
            continue;
        };
        let named = settings
            .include
            .iter()
            .any(|p| !p.is_glob() && p.matches(&c.name));
        let (name, schema) = (c.name.human(), sql::human_ident(c.name.schema.raw()));
        if named {
            refused.push((
                c.name.clone(),
                format!(
                    "{name} belongs to the extension {}, which creates it on the target (CREATE \
                     EXTENSION), so snapcopy does not copy it, as pg_dump does not; {}",
                    ext.name,
                    match &c.user_rows {
                        Some(_) => format!(
                            "the rows the extension marks as user data come along with a \
                             pattern that covers it, such as '{schema}.*'"
                        ),
                        None => "leave it out of the run".to_string(),
                    }
                ),
            ));
            continue;
        }
        if !quiet {
            eprintln!(
                "note: {name} belongs to the extension {}, which creates it on the target; {}",
                ext.name,
                if c.user_rows.is_some() {
                    "the rows the extension marks as user data are added to it"
                } else {
                    "it is left out"
                }
            );
        }
        if c.user_rows.is_some() {
            kept.push(c);
        }
    }
    kept
}

/// Applies the patterns to the source's tables. A pattern that names nothing is an error
/// before anything changes, as is an empty selection. A partitioned table comes with all its
/// partitions; a partition named without its parent is copied as a plain table. Both are said.
type Refusal = (sql::QualifiedName, String);

fn choose(settings: &Settings, candidates: &[Candidate]) -> anyhow::Result<Vec<Candidate>> {
    // Every managed table is gone from the source: nothing to choose, and each says why.
    if settings.include.is_empty() {
        return Ok(Vec::new());
    }
    for pattern in &settings.include {
        if !candidates.iter().any(|c| pattern.matches(&c.name)) {
            if pattern.is_glob() {
                bail!(
                    "the pattern {pattern} matches no table on the source {}; list the tables \
                     with psql's \\dt and check the schema name",
                    settings.source.label()
                );
            }
            bail!(
                "table {pattern} not found on the source {}; check the name (psql's \\dt lists \
                 the tables), and double-quote names with upper case",
                settings.source.label()
            );
        }
    }
    let chosen: Vec<Candidate> = candidates
        .iter()
        .filter(|c| {
            settings.include.iter().any(|p| p.matches(&c.name))
                && !settings.exclude.iter().any(|p| p.matches(&c.name))
        })
        .cloned()
        .collect();
    if chosen.is_empty() {
        bail!(
            "every table the patterns matched is excluded; nothing to copy: loosen --exclude \
             (or exclude in snapcopy.toml)"
        );
    }
    let chosen_oids: std::collections::BTreeSet<_> = chosen.iter().map(|c| c.oid).collect();
    let quiet = settings.verbosity == Verbosity::Quiet;
    for c in &chosen {
        if c.is_partition && !c.parent_oid.is_some_and(|p| chosen_oids.contains(&p)) && !quiet {
            eprintln!(
                "note: {} is a partition; it is copied as a plain table with its own rows \
                 (name its parent to copy the whole partitioned table)",
                c.name.human()
            );
        }
    }
    let (expanded, trees) = catalog::with_partitions(candidates, chosen);
    for (root, count) in trees {
        if !quiet {
            eprintln!(
                "note: {} is partitioned; its {count} partitions are copied with it",
                root.human()
            );
        }
    }
    Ok(expanded)
}
