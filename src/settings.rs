//! Validated settings: command-line flags, `SNAPCOPY_*` variables, the config file and the
//! `PG*` environment merged once (flags win over the file). A [`Settings`] exists only when
//! every part made sense, so the rest of the program never re-checks input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::cli::{CopyArgs, LinkKind, Mode, StagingKind, TargetOpts};
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
    /// How the target server reads the source.
    pub link_kind: LinkKind,
    /// Schema for snapcopy's objects on the target.
    pub staging_schema: Ident,
    /// Target sessions at once.
    pub jobs: usize,
    /// Growing columns named per table in the config (incremental pushdown).
    pub cursors: BTreeMap<QualifiedName, Ident>,
    /// Take over same-named tables snapcopy did not create.
    pub replace_unmanaged: bool,
    /// Load rows into the target's own tables, leaving their definitions alone.
    pub data_only: bool,
    /// With `data_only`: create the chosen tables the target lacks.
    pub create_missing: bool,
    /// Full mode: drop and create managed tables anew instead of truncating them.
    pub rebuild: bool,
    /// Copy (and verify) the tables' triggers.
    pub triggers: bool,
    /// Refuse to run when the source role may write to a chosen table.
    pub require_read_only: bool,
    /// Mask rules as given (resolved against the catalog when planning).
    pub masks: Vec<crate::mask::MaskSpec>,
    /// Row filters as given (resolved against the catalog when planning).
    pub filters: Vec<crate::plan::RowFilter>,
    /// The mask key, when one is set.
    pub mask_key: Option<crate::mask::MaskKey>,
    /// Audit before copying and refuse while sensitive-looking columns have no rule.
    pub strict_masks: bool,
    /// Batch size in bytes for large tables (`SNAPCOPY_BATCH_MB`; 0: one statement a table).
    pub batch_bytes: i64,
    /// Tables at least this large are split into `jobs` ranges loaded at once
    /// (`SNAPCOPY_SPLIT_MB`; 0: never split).
    pub split_bytes: i64,
    /// Summary as JSON.
    pub json: bool,
    /// stderr detail.
    pub verbosity: Verbosity,
}

impl Settings {
    /// What the planner needs to know of the run's choices. A split table loads in as many
    /// ranges as there are sessions.
    pub fn plan_options(&self) -> crate::plan::PlanOptions {
        crate::plan::PlanOptions {
            mode: self.mode,
            staging: self.staging,
            link_kind: self.link_kind,
            masks: crate::mask::Masks::default(),
            filters: BTreeMap::new(),
            staging_schema: self.staging_schema.clone(),
            link: self.link.clone(),
            source_label: self.source.label(),
            cursors: self.cursors.clone(),
            replace_unmanaged: self.replace_unmanaged,
            data_only: self.data_only,
            create_missing: self.create_missing,
            rebuild: self.rebuild,
            batch_bytes: self.batch_bytes,
            split_bytes: self.split_bytes,
            split_ranges: self.jobs,
            mark: None,
        }
    }

    /// Merges flags, the config file and the environment, and checks them.
    pub fn from_args(args: &CopyArgs, env: &Env) -> anyhow::Result<Settings> {
        let (target, config) = TargetSettings::load(&args.to, args.json, env)?;
        let from = &args.from;
        let source = resolve_conninfo(
            "source",
            from.source.as_ref().or(config.source.conninfo.as_ref()),
            env,
        )?;
        let link = match from.source_via.clone().or(config.source.via.clone()) {
            Some(via) => source.overlay(&ConnInfo::parse(&via).context("--source-via")?),
            None => source.clone(),
        };
        source.to_driver_config().context("--source")?;

        let table_texts = if from.tables.is_empty() {
            config.tables.clone()
        } else {
            from.tables.clone()
        };
        let include = table_texts
            .iter()
            .map(|t| TablePattern::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        let exclude = from
            .exclude
            .iter()
            .chain(&config.exclude)
            .map(|t| TablePattern::parse(t))
            .collect::<Result<Vec<_>, _>>()?;

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
        let (masks, mask_key) = masks(args, &config, env)?;
        let filters = filters(args, &config)?;
        let link_kind = args.link.or(config.link).unwrap_or(LinkKind::Dblink);
        if link_kind == LinkKind::PostgresFdw && !filters.is_empty() {
            bail!(
                "row filters are computed on the source with a recursive query, which \
                 postgres_fdw cannot ship: use --link dblink"
            );
        }
        if link_kind == LinkKind::PostgresFdw && masks.iter().any(|m| m.rule.masks()) {
            bail!(
                "masks are computed on the source, which postgres_fdw cannot do (it ships \
                 conditions to the source, not expressions): use --link dblink"
            );
        }
        let mode = args.mode.or(config.mode).unwrap_or(Mode::Full);
        if args.rebuild && mode != Mode::Full {
            bail!(
                "--rebuild drops and recreates tables, which only --mode full does; leave out \
                 one of them"
            );
        }
        let data_only = args.data_only || config.data_only.unwrap_or(false);
        let create_missing = args.create_missing || config.create_missing.unwrap_or(false);
        if create_missing && !data_only {
            bail!(
                "--create-missing goes with --data-only (without it, snapcopy creates every \
                 table the target lacks anyway)"
            );
        }
        if data_only && (args.replace_unmanaged || args.rebuild) {
            bail!(
                "--data-only never drops or remakes your tables; leave out --replace-unmanaged \
                 and --rebuild"
            );
        }
        let jobs = args.jobs.or(config.jobs).unwrap_or_else(default_jobs);
        if jobs == 0 {
            bail!("--jobs must be at least 1");
        }

        Ok(Settings {
            source,
            link,
            target: target.target,
            include,
            exclude,
            mode,
            staging: args.staging.or(config.staging).unwrap_or(StagingKind::View),
            link_kind,
            masks,
            mask_key,
            filters,
            strict_masks: config.strict_masks.unwrap_or(false),
            staging_schema: target.staging_schema,
            jobs,
            cursors,
            replace_unmanaged: args.replace_unmanaged,
            data_only,
            create_missing,
            rebuild: args.rebuild,
            triggers: !args.no_triggers && config.triggers.unwrap_or(true),
            require_read_only: from.require_read_only_role || config.source.require_read_only,
            batch_bytes: megabytes(env, "SNAPCOPY_BATCH_MB", crate::plan::DEFAULT_BATCH_BYTES)?,
            split_bytes: megabytes(env, "SNAPCOPY_SPLIT_MB", crate::plan::DEFAULT_SPLIT_BYTES)?,
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

/// The row filters: `--where` first, then the config's table sections.
fn filters(args: &CopyArgs, config: &Config) -> anyhow::Result<Vec<crate::plan::RowFilter>> {
    use crate::plan::RowFilter;
    let mut filters = Vec::new();
    for text in &args.filters {
        filters.push(RowFilter::parse(text).map_err(anyhow::Error::msg)?);
    }
    for (table, section) in &config.table {
        if let Some(condition) = &section.where_ {
            let text = format!("[table.\"{table}\"] where = {condition:?}");
            filters.push(RowFilter::new(table, condition, &text).map_err(anyhow::Error::msg)?);
        }
    }
    Ok(filters)
}

/// The mask rules (`--mask` first, then the config's table sections) and the key. Rules that
/// mask without a key are an error: nothing may run that would mask differently next time.
fn masks(
    args: &CopyArgs,
    config: &Config,
    env: &Env,
) -> anyhow::Result<(Vec<crate::mask::MaskSpec>, Option<crate::mask::MaskKey>)> {
    use crate::mask::{MaskKey, MaskSpec};
    let mut specs = Vec::new();
    for text in &args.masks {
        specs.push(MaskSpec::parse(text).map_err(anyhow::Error::msg)?);
    }
    for (table, section) in &config.table {
        for (column, rule) in &section.mask {
            let text = format!("[table.\"{table}\".mask] {column} = {rule:?}");
            // Column names in the config are names, not SQL: kept as written.
            let quoted = format!("\"{}\"", column.replace('"', "\"\""));
            specs.push(MaskSpec::new(table, &quoted, rule, &text).map_err(anyhow::Error::msg)?);
        }
    }
    let key_file = config.mask.key_file.as_ref().map(|f| match &config.dir {
        Some(dir) if f.is_relative() => dir.join(f),
        _ => f.clone(),
    });
    let key = MaskKey::load(
        env.vars.get("SNAPCOPY_MASK_KEY").map(String::as_str),
        key_file.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    if key.is_none() && specs.iter().any(|s| s.rule.masks()) {
        bail!(
            "masks are configured, but no key: set SNAPCOPY_MASK_KEY, or mask.key_file in \
             snapcopy.toml, to a secret of at least {} characters (the same key masks the same \
             way on every run)",
            crate::mask::MIN_KEY_LEN
        );
    }
    Ok((specs, key))
}

/// The `side` ("source" or "target") database's conninfo, from its flag or variable or else
/// the config file, completed from the PG* variables and the password file as libpq does.
fn resolve_conninfo(side: &str, given: Option<&String>, env: &Env) -> anyhow::Result<ConnInfo> {
    let text = given.with_context(|| {
        format!(
            "no {side} database: give --{side}, set SNAPCOPY_{}, or set {side}.conninfo in \
             snapcopy.toml",
            side.to_uppercase()
        )
    })?;
    Ok(ConnInfo::parse(text)
        .with_context(|| format!("--{side}"))?
        .resolve(env))
}

/// A size in bytes from an environment variable counting whole megabytes, or `default`.
fn megabytes(env: &Env, name: &str, default: i64) -> anyhow::Result<i64> {
    match env.vars.get(name) {
        Some(mb) => mb
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|mb| *mb >= 0)
            .map(|mb| mb * 1024 * 1024)
            .with_context(|| format!("{name} must be a whole number of megabytes")),
        None => Ok(default),
    }
}

/// The default number of target sessions: the cores here, at most 4. Dev targets usually run
/// on this machine, and each loading session keeps a core busy.
fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(1)
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

/// What every command needs of the target: where it is (checked to be local unless allowed)
/// and where snapcopy's objects live there.
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
    /// Merges the target options with the config file and the environment.
    pub fn from_opts(opts: &TargetOpts, json: bool, env: &Env) -> anyhow::Result<TargetSettings> {
        Ok(Self::load(opts, json, env)?.0)
    }

    /// The settings and the config file they came with.
    fn load(opts: &TargetOpts, json: bool, env: &Env) -> anyhow::Result<(TargetSettings, Config)> {
        let config = match config_path(opts.config.as_deref()) {
            Some(path) => Config::load(&path)?,
            None => Config::default(),
        };
        let target = resolve_conninfo(
            "target",
            opts.target.as_ref().or(config.target.conninfo.as_ref()),
            env,
        )?;
        target.to_driver_config().context("--target")?;
        check_local(
            &target,
            opts.allow_remote_target || config.target.allow_remote,
        )?;
        let staging_schema = opts
            .staging_schema
            .clone()
            .or(config.staging_schema.clone())
            .unwrap_or_else(|| "snapcopy".into());
        if staging_schema.is_empty() || staging_schema.len() > 63 {
            bail!("--staging-schema must be 1 to 63 bytes long");
        }
        // Schemas every database has, whose loss teardown would make irreparable.
        if ["public", "information_schema"].contains(&staging_schema.as_str())
            || staging_schema.starts_with("pg_")
        {
            bail!(
                "--staging-schema {staging_schema}: snapcopy keeps its objects in a schema of its \
                 own, which snapcopy teardown drops; choose another name (the default is \
                 snapcopy)"
            );
        }
        let settings = TargetSettings {
            target,
            staging_schema: Ident::new(staging_schema),
            json,
        };
        Ok((settings, config))
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
