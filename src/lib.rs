//! snapcopy: clone PostgreSQL tables server to server through dblink.
//!
//! Data flow, one direction: flags and config become [`settings::Settings`]; the source catalog
//! becomes a [`catalog::Catalog`]; catalog, target state and settings become a [`plan::Plan`]
//! (pure, printable); [`load`] runs the plan on the target; [`report`] prints the summary.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod conninfo;
pub mod link;
pub mod load;
pub mod pattern;
pub mod plan;
pub mod report;
pub mod settings;
pub mod sql;

use anyhow::{bail, Context};

use crate::catalog::Candidate;
use crate::cli::{Cli, Command, CopyArgs, InitArgs};
use crate::conninfo::Env;
use crate::link::{connect, Side};
use crate::plan::PlanOptions;
use crate::report::TableStatus;
use crate::settings::{Settings, Verbosity};

/// How a run ended, for the exit code: 0 all done, 1 some table failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every table was copied.
    Success,
    /// Some tables failed; the others finished, and the summary says which.
    SomeFailed,
}

/// Runs a command. An `Err` means nothing changed on the target (exit 2).
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Some(Command::Init(args)) => init(&args),
        Some(Command::Plan(args)) => copy(&args, true).await,
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
    let settings = Settings::from_args(args, &Env::from_process())?;
    let quiet = settings.verbosity == Verbosity::Quiet;

    let source = connect(&settings.source, Side::Source).await?;
    source
        .batch_execute("SET search_path = ''")
        .await
        .context("could not prepare the source session")?;
    let candidates = catalog::candidates(&source).await?;
    let (chosen, refused) = choose(&settings, &candidates)?;
    let catalog = catalog::introspect(&source, &chosen).await?;

    let mut target = connect(&settings.target, Side::Target).await?;
    let state = link::target_state(&target, &settings.staging_schema, &catalog).await?;
    let options = PlanOptions {
        mode: settings.mode,
        staging: settings.staging,
        staging_schema: settings.staging_schema.clone(),
        link: settings.link.clone(),
        source_label: settings.source.label(),
    };
    let mut plan = plan::plan(&catalog, &state, &options);
    plan.refused.extend(refused);

    if !quiet {
        for warning in &plan.warnings {
            eprintln!("warning: {warning}");
        }
    }
    if dry_run {
        print!("{plan}");
        return Ok(Outcome::Success);
    }

    link::run_setup(
        &mut target,
        &plan.setup,
        settings.verbosity == Verbosity::Verbose,
    )
    .await?;
    let mut outcomes = load::run_units(
        &settings.target,
        &plan.units,
        settings.jobs,
        settings.verbosity,
    )
    .await;
    for (name, reason) in &plan.refused {
        if !quiet {
            eprintln!("error: {reason}");
        }
        outcomes.push(report::TableOutcome {
            name: name.clone(),
            action: plan::Action::Create,
            status: TableStatus::Failed(reason.clone()),
            rows: 0,
            bytes: None,
            seconds: 0.0,
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

/// Applies the patterns to the source's tables. A pattern that names nothing is an error
/// before anything changes, as is an empty selection. Partitioned tables and partitions are
/// refused per table for now: recreating partition trees is planned separately.
type Refusal = (sql::QualifiedName, String);

fn choose(
    settings: &Settings,
    candidates: &[Candidate],
) -> anyhow::Result<(Vec<Candidate>, Vec<Refusal>)> {
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
    let mut chosen = Vec::new();
    let mut refused = Vec::new();
    for c in candidates {
        let included = settings.include.iter().any(|p| p.matches(&c.name));
        let excluded = settings.exclude.iter().any(|p| p.matches(&c.name));
        if !included || excluded {
            continue;
        }
        if c.relkind == "p" || c.is_partition {
            refused.push((
                c.name.clone(),
                format!(
                    "{} is partitioned or a partition, which this version of snapcopy does not \
                     copy yet; leave it out with --exclude",
                    c.name.human()
                ),
            ));
        } else {
            chosen.push(c.clone());
        }
    }
    if chosen.is_empty() && refused.is_empty() {
        bail!("every table the patterns matched is excluded; nothing to copy");
    }
    Ok((chosen, refused))
}
