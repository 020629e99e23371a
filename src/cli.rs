//! The command line as the user types it (clap derive). Nothing here is validated beyond
//! syntax; [`crate::settings`] turns these raw flags and the config file into [`Settings`].
//!
//! [`Settings`]: crate::settings::Settings

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Clone PostgreSQL tables server to server through dblink: same columns, keys, constraints,
/// indexes and sequences, writable on the target, refreshable later. The source is only read.
#[derive(Debug, Parser)]
#[command(name = "snapcopy", version, args_conflicts_with_subcommands = true)]
#[command(after_help = "Examples:\n  \
    snapcopy --source postgresql://ro@prod/app --target postgresql:///app_dev 'public.*'\n  \
    snapcopy plan --exclude 'public.audit_*' 'public.*'\n  \
    snapcopy init")]
pub struct Cli {
    /// A subcommand; without one, snapcopy copies or refreshes the tables.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the copy.
    #[command(flatten)]
    pub copy: CopyArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the SQL a copy would run, in order, and change nothing.
    Plan(CopyArgs),
    /// List the tables snapcopy manages on the target: mode, last refresh, rows.
    Status(StatusArgs),
    /// Compare target tables with the source: rows, checksums and definitions, computed on
    /// each server. Exits 1 when any table differs.
    Verify(VerifyArgs),
    /// List the columns of the chosen tables that look sensitive (emails, phones, names,
    /// addresses, secrets, ...) and have no mask rule; reads only the source. Exits 1 when
    /// any.
    Audit(CopyArgs),
    /// Write a commented snapcopy.toml to start from.
    Init(InitArgs),
    /// Drop snapcopy's staging schema, foreign server and user mapping; keep the copied tables
    /// unless --drop-tables.
    Teardown(TeardownArgs),
}

/// Where the target is and where snapcopy keeps its objects there: shared by every command.
#[derive(Debug, Args, Clone, Default)]
pub struct TargetOpts {
    /// Target database: libpq URL or key=value conninfo; missing parts come from PGHOST,
    /// PGPORT, PGUSER, PGPASSWORD, PGDATABASE and ~/.pgpass.
    #[arg(
        long,
        env = "SNAPCOPY_TARGET",
        value_name = "CONNINFO",
        hide_env_values = true
    )]
    pub target: Option<String>,

    /// Configuration file [default: ./snapcopy.toml when it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Schema on the target for snapcopy's own objects [default: snapcopy].
    #[arg(long, value_name = "SCHEMA")]
    pub staging_schema: Option<String>,

    /// Allow a target that is not on this machine (snapcopy writes to the target; a remote
    /// one must be chosen on purpose). Config: target.allow_remote.
    #[arg(long)]
    pub allow_remote_target: bool,
}

/// Which source tables, and where the source is: shared by the copy, `plan` and `verify`.
#[derive(Debug, Args, Clone, Default)]
pub struct SourceOpts {
    /// Tables: schema.table, a bare name (schema public), or a glob such as 'public.*' or
    /// 'sales.order_*'. Double quotes keep case, dots and spaces: '"My Schema"."Order.Items"'.
    /// Without any (here or in the config), every table snapcopy manages.
    #[arg(value_name = "TABLE")]
    pub tables: Vec<String>,

    /// Leave out tables matching this pattern (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,

    /// Source database: libpq URL or key=value conninfo; missing parts come from PGHOST, PGPORT,
    /// PGUSER, PGPASSWORD, PGDATABASE and ~/.pgpass. Only ever read.
    #[arg(
        long,
        env = "SNAPCOPY_SOURCE",
        value_name = "CONNINFO",
        hide_env_values = true
    )]
    pub source: Option<String>,

    /// How the target *server* reaches the source, when that differs from --source (a
    /// container, a tunnel): parameters given here replace the source's, the rest is kept.
    #[arg(
        long,
        env = "SNAPCOPY_SOURCE_VIA",
        value_name = "CONNINFO",
        hide_env_values = true
    )]
    pub source_via: Option<String>,

    /// Refuse to run when the source role may write to a chosen table (INSERT, UPDATE, DELETE
    /// or TRUNCATE, or a superuser): only a SELECT-only role makes the link itself read-only.
    /// Config: source.require_read_only.
    #[arg(long)]
    pub require_read_only_role: bool,
}

/// Options of the copy and `plan`.
#[derive(Debug, Args, Clone, Default)]
pub struct CopyArgs {
    /// Print no summary on stdout (`verify --repair` prints its own).
    #[arg(skip)]
    pub no_summary: bool,

    /// Sync by hashing every row, whatever each side wrote since the last run (`verify
    /// --repair`: it repairs what verify found, which need not be a write). The run records no
    /// marks, so the next sync hashes every row too.
    #[arg(skip)]
    pub hash_rows: bool,

    /// Tables and source.
    #[command(flatten)]
    pub from: SourceOpts,

    /// Target.
    #[command(flatten)]
    pub to: TargetOpts,

    /// full: truncate and reload each table atomically (rebuild it if the source's shape
    /// changed). incremental: insert the rows whose key is missing, reading only new rows from
    /// the source when the key grows. sync: make each table equal to the source, inserting,
    /// updating and deleting only the rows that differ (found by comparing hashes on both
    /// servers; needs --link dblink and a key, else the table is reloaded in full)
    /// [default: full].
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,

    /// Staging object per table: a view over the link (rows written once) or a materialized
    /// view (a local copy of the source rows, written twice).
    #[arg(long, value_enum)]
    pub staging: Option<StagingKind>,

    /// Copy only the rows of TABLE where CONDITION holds (SQL evaluated on the source;
    /// repeatable): 'TABLE=CONDITION'. Tables that reference it get only the rows whose
    /// referenced row is copied, and every row a copied row references is copied. Config:
    /// [table."s.t"] where.
    #[arg(long = "where", value_name = "TABLE=CONDITION")]
    pub filters: Vec<String>,

    /// Mask a column before it leaves the source: 'TABLE.COLUMN=RULE' (repeatable), RULE one
    /// of null, email, name, phone, hash, digits, value:<literal>, sql:<expression>, keep. The
    /// key comes from SNAPCOPY_MASK_KEY or mask.key_file. Config: [table."s.t".mask].
    #[arg(long = "mask", value_name = "TABLE.COLUMN=RULE")]
    pub masks: Vec<String>,

    /// How the target server reads the source: dblink (every table in the run's one snapshot)
    /// or postgres_fdw (foreign tables; each group of tables in a snapshot of its own), for
    /// targets that offer only that [default: dblink]. Config: link.
    #[arg(long, value_enum, env = "SNAPCOPY_LINK")]
    pub link: Option<LinkKind>,

    /// Target sessions working at once: each loads a group of tables that foreign keys join
    /// (largest first), one range of a large table split across sessions
    /// (SNAPCOPY_SPLIT_MB, default 256), or some of a group's new tables, built alongside it
    /// [default: the number of CPU cores here, at most 4:
    /// dev targets usually run on this machine, and each session keeps one core busy].
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    /// Take over tables of the same name that snapcopy did not create: drop and copy them.
    #[arg(long, conflicts_with = "data_only")]
    pub replace_unmanaged: bool,

    /// Load the source's rows into tables that exist on the target (made by your migrations),
    /// matching columns by name; their definitions, indexes, constraints, triggers and grants
    /// stay as they are. A chosen table missing on the target is refused. Config: data_only.
    #[arg(long)]
    pub data_only: bool,

    /// With --data-only: create the chosen tables the target lacks, as managed tables (as
    /// without --data-only). Config: create_missing.
    #[arg(long)]
    pub create_missing: bool,

    /// Full mode: drop managed tables and create them anew from the source catalog instead of
    /// truncating them, so that large ones load split across sessions. What the target built on
    /// them goes too: views, grants, triggers, indexes and foreign keys added there.
    #[arg(long)]
    pub rebuild: bool,

    /// Leave the tables' triggers (and the functions only they call) out. Config: triggers =
    /// false.
    #[arg(long)]
    pub no_triggers: bool,

    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// More detail on stderr: every statement as it runs.
    #[arg(long, short = 'v', conflicts_with = "quiet")]
    pub verbose: bool,

    /// Only errors on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Arguments of `snapcopy verify`.
#[derive(Debug, Args, Clone, Default)]
pub struct VerifyArgs {
    /// Tables and source.
    #[command(flatten)]
    pub from: SourceOpts,

    /// Target.
    #[command(flatten)]
    pub to: TargetOpts,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,

    /// Do not compare triggers (for tables copied with --no-triggers). Config: triggers =
    /// false.
    #[arg(long)]
    pub no_triggers: bool,

    /// Print only the tables that differ (the exit status says whether any does).
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// The copy's mask rules ('TABLE.COLUMN=RULE', repeatable): masked tables are compared as
    /// the copy masked them. Config: [table."s.t".mask].
    #[arg(long = "mask", value_name = "TABLE.COLUMN=RULE")]
    pub masks: Vec<String>,

    /// The copy's row filters ('TABLE=CONDITION', repeatable): limited tables are compared
    /// with their subsets on the source. Config: [table."s.t"] where.
    #[arg(long = "where", value_name = "TABLE=CONDITION")]
    pub filters: Vec<String>,

    /// Sync the tables that differ (as --mode sync does, hashing every row: only the rows that
    /// differ are written, in one transaction per group of tables tied by foreign keys), then
    /// compare them again; exits 1 only when some still differ.
    #[arg(long)]
    pub repair: bool,
}

impl VerifyArgs {
    /// The same choices in the copy's terms, for the shared settings.
    pub fn as_copy_args(&self) -> CopyArgs {
        CopyArgs {
            from: self.from.clone(),
            to: self.to.clone(),
            json: self.json,
            no_triggers: self.no_triggers,
            masks: self.masks.clone(),
            filters: self.filters.clone(),
            quiet: true,
            ..CopyArgs::default()
        }
    }
}

/// Arguments of `snapcopy teardown`.
#[derive(Debug, Args, Clone, Default)]
pub struct TeardownArgs {
    /// Target.
    #[command(flatten)]
    pub to: TargetOpts,

    /// Also drop the tables snapcopy created (only those in its registry, and only those it
    /// made: a table dropped and made again since is kept).
    #[arg(long)]
    pub drop_tables: bool,

    /// With --drop-tables: also drop what depends on those tables (views, other tables'
    /// foreign keys, inheritance children), naming each; without it, teardown refuses.
    #[arg(long, requires = "drop_tables")]
    pub cascade: bool,

    /// Only errors on stderr, not what was dropped and kept.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Arguments of `snapcopy status`.
#[derive(Debug, Args, Clone, Default)]
pub struct StatusArgs {
    /// Target.
    #[command(flatten)]
    pub to: TargetOpts,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,

    /// Print nothing when snapcopy manages no tables in the database.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Arguments of `snapcopy init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the file.
    #[arg(default_value = "snapcopy.toml")]
    pub path: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    /// Do not say where the file was written.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Refresh modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Truncate and reload, atomically.
    Full,
    /// Insert the rows that are missing.
    Incremental,
    /// Make the table equal to the source: insert, update and delete only the rows that
    /// differ, found by comparing hashes on both servers.
    Sync,
}

/// How the target server reads the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
pub enum LinkKind {
    /// dblink: one connection per unit, in the run's one snapshot.
    #[value(name = "dblink")]
    #[serde(rename = "dblink")]
    Dblink,
    /// postgres_fdw: foreign tables imported per table; each unit reads in a snapshot of its
    /// own.
    #[value(name = "postgres_fdw")]
    #[serde(rename = "postgres_fdw")]
    PostgresFdw,
}

impl LinkKind {
    /// The word the registry, summaries and the plan use: the extension's name.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Dblink => "dblink",
            LinkKind::PostgresFdw => "postgres_fdw",
        }
    }
}

/// The staging object's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StagingKind {
    /// A view over dblink.
    View,
    /// A materialized view over dblink.
    Matview,
}

impl StagingKind {
    /// The word the registry and summaries use.
    pub fn as_str(self) -> &'static str {
        match self {
            StagingKind::View => "view",
            StagingKind::Matview => "matview",
        }
    }
}
