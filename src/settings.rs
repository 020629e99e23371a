//! Validated settings: command-line flags, `SNAPCOPY_*` variables, the config file and the
//! `PG*` environment merged once (flags win over the file). A [`Settings`] exists only when
//! every part made sense, so the rest of the program never re-checks input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::cli::{CopyArgs, Mode, StagingKind, StatusArgs, TeardownArgs};
use crate::config::Config;
use crate::conninfo::{ConnInfo, Env};
use crate::pattern::TablePattern;
use crate::sql::{Ident, QualifiedName};

/// How much to say on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Progress and warnings.
    Normal,
    /// Every statement too.
    Verbose,
}

/// Everything a copy or a plan needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The tool's connection to the source.
    pub source: ConnInfo,
    /// The conninfo the target server uses to reach the source (the dblink foreign server and
    /// user mapping).
    pub link: ConnInfo,
    /// The tool's connection to the target.
    pub target: ConnInfo,
    /// Tables to copy.
    pub include: Vec<TablePattern>,
    /// Tables to leave out.
    pub exclude: Vec<TablePattern>,
    /// Refresh mode.
    pub mode: Mode,
    /// Staging object kind.
    pub staging: StagingKind,
    /// Schema for snapcopy's objects on the target.
    pub staging_schema: Ident,
    /// Target sessions at once.
    pub jobs: usize,
    /// Growing columns named per table in the config (incremental pushdown).
    pub cursors: BTreeMap<QualifiedName, Ident>,
    /// Take over same-named tables snapcopy did not create.
    pub replace_unmanaged: bool,
    /// Summary as JSON.
    pub json: bool,
    /// stderr detail.
    pub verbosity: Verbosity,
}

impl Settings {
    /// Merges flags, the config file and the environment, and checks them.
    pub fn from_args(args: &CopyArgs, env: &Env) -> anyhow::Result<Settings> {
        let config = match config_path(args.config.as_deref()) {
            Some(path) => Config::load(&path)?,
            None => Config::default(),
        };

        let source_text = args
            .source
            .clone()
            .or(config.source.conninfo.clone())
            .context(
                "no source database: give --source, set SNAPCOPY_SOURCE, or set source.conninfo \
                 in snapcopy.toml",
            )?;
        let target_text = args
            .target
            .clone()
            .or(config.target.conninfo.clone())
            .context(
                "no target database: give --target, set SNAPCOPY_TARGET, or set target.conninfo \
                 in snapcopy.toml",
            )?;
        let source = ConnInfo::parse(&source_text)
            .context("--source")?
            .resolve(env);
        let target = ConnInfo::parse(&target_text)
            .context("--target")?
            .resolve(env);
        let link = match args.source_via.clone().or(config.source.via.clone()) {
            Some(via) => source.overlay(&ConnInfo::parse(&via).context("--source-via")?),
            None => source.clone(),
        };
        source.to_driver_config().context("--source")?;
        target.to_driver_config().context("--target")?;
        check_local(
            &target,
            args.allow_remote_target || config.target.allow_remote,
        )?;

        let table_texts = if args.tables.is_empty() {
            config.tables.clone()
        } else {
            args.tables.clone()
        };
        let include = table_texts
            .iter()
            .map(|t| TablePattern::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        let exclude = args
            .exclude
            .iter()
            .chain(&config.exclude)
            .map(|t| TablePattern::parse(t))
            .collect::<Result<Vec<_>, _>>()?;

        let mode = args.mode.or(config.mode).unwrap_or(Mode::Full);
        let mut cursors = BTreeMap::new();
        for (table, section) in &config.table {
            let pattern = TablePattern::parse(table)?;
            let Some(name) = pattern.exact_name() else {
                bail!("config file: [table.\"{table}\"] must name one table, without wildcards");
            };
            if let Some(key) = &section.key {
                cursors.insert(name, Ident::new(key.as_str()));
            }
        }
        let jobs = args.jobs.or(config.jobs).unwrap_or(1);
        if jobs == 0 {
            bail!("--jobs must be at least 1");
        }
        let staging_schema = args
            .staging_schema
            .clone()
            .or(config.staging_schema.clone())
            .unwrap_or_else(|| "snapcopy".into());
        if staging_schema.is_empty() || staging_schema.len() > 63 {
            bail!("--staging-schema must be 1 to 63 bytes long");
        }

        Ok(Settings {
            source,
            link,
            target,
            include,
            exclude,
            mode,
            staging: args.staging.or(config.staging).unwrap_or(StagingKind::View),
            staging_schema: Ident::new(staging_schema),
            jobs,
            cursors,
            replace_unmanaged: args.replace_unmanaged,
            json: args.json,
            verbosity: if args.quiet {
                Verbosity::Quiet
            } else if args.verbose {
                Verbosity::Verbose
            } else {
                Verbosity::Normal
            },
        })
    }
}

/// Refuses a target that is not on this machine unless it was allowed on purpose: snapcopy
/// truncates and drops on the target, so pointing it at a shared server must be deliberate.
fn check_local(target: &ConnInfo, allowed: bool) -> anyhow::Result<()> {
    if !allowed && !target.is_local() {
        bail!(
            "the target {} is not on this machine; snapcopy writes to its target, so a remote \
             one must be chosen on purpose: pass --allow-remote-target or set \
             target.allow_remote = true in snapcopy.toml",
            target.label()
        );
    }
    Ok(())
}

/// What the target-only commands (`status`, `teardown`) need.
#[derive(Debug, Clone)]
pub struct TargetSettings {
    /// The tool's connection to the target.
    pub target: ConnInfo,
    /// Schema for snapcopy's objects on the target.
    pub staging_schema: Ident,
    /// JSON output.
    pub json: bool,
}

impl TargetSettings {
    /// Merges `status` flags with the config file and the environment.
    pub fn from_status(args: &StatusArgs, env: &Env) -> anyhow::Result<TargetSettings> {
        Self::from_parts(
            args.target.clone(),
            args.config.as_deref(),
            args.staging_schema.clone(),
            args.json,
            env,
        )
    }

    /// Merges `teardown` flags with the config file and the environment; the target must be
    /// local unless allowed.
    pub fn from_teardown(args: &TeardownArgs, env: &Env) -> anyhow::Result<TargetSettings> {
        let settings = Self::from_parts(
            args.target.clone(),
            args.config.as_deref(),
            args.staging_schema.clone(),
            false,
            env,
        )?;
        let config = match config_path(args.config.as_deref()) {
            Some(path) => Config::load(&path)?,
            None => Config::default(),
        };
        check_local(
            &settings.target,
            args.allow_remote_target || config.target.allow_remote,
        )?;
        Ok(settings)
    }

    fn from_parts(
        target: Option<String>,
        config: Option<&Path>,
        staging_schema: Option<String>,
        json: bool,
        env: &Env,
    ) -> anyhow::Result<TargetSettings> {
        let args = StatusArgs {
            target,
            config: config.map(Path::to_path_buf),
            staging_schema,
            json,
        };
        let config = match config_path(args.config.as_deref()) {
            Some(path) => Config::load(&path)?,
            None => Config::default(),
        };
        let target_text = args
            .target
            .clone()
            .or(config.target.conninfo.clone())
            .context(
                "no target database: give --target, set SNAPCOPY_TARGET, or set target.conninfo \
                 in snapcopy.toml",
            )?;
        let target = ConnInfo::parse(&target_text)
            .context("--target")?
            .resolve(env);
        target.to_driver_config().context("--target")?;
        Ok(TargetSettings {
            target,
            staging_schema: Ident::new(
                args.staging_schema
                    .clone()
                    .or(config.staging_schema)
                    .unwrap_or_else(|| "snapcopy".into()),
            ),
            json: args.json,
        })
    }
}

/// `--config FILE`, or `./snapcopy.toml` when it exists.
fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let default = PathBuf::from("snapcopy.toml");
            default.is_file().then_some(default)
        }
    }
}
