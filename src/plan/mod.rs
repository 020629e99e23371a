//! The plan: every statement a run will send to the target, decided up front.
//!
//! [`plan`] is a pure function of the source [`Catalog`], the [`TargetState`] and the options;
//! it does no I/O, so it is snapshot-tested and printed as the dry run (`snapcopy plan`).
//! Execution ([`crate::load`]) runs what the plan says and decides nothing.
//!
//! A plan has a setup (one transaction: dblink, the staging schema, the foreign server, the
//! types) and units. A unit is a group of tables joined by foreign keys; it runs in one target
//! transaction, reading the source through one dblink connection in one source transaction, so
//! its tables change together or not at all. What happens to the rows of a table that already
//! exists is the refresh mode's business ([`refresh`]).

mod refresh;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use crate::cli::{Mode, StagingKind};
use crate::conninfo::ConnInfo;
use crate::source::{
    Catalog, Constraint, ConstraintKind, Extent, Identity, Requirement, Sequence, SharedSequence,
    Table, TriggerState, TypeKind,
};
use crate::sql::{literal, truncate_bytes, Ident, QualifiedName};
use crate::target::registry;
pub use crate::target::{ExtensionState, StagingObject, TargetState};

pub use refresh::{Full, Incremental, Refresh};

/// Choices that shape the SQL.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Refresh mode.
    pub mode: Mode,
    /// Staging object kind.
    pub staging: StagingKind,
    /// Schema for snapcopy's objects.
    pub staging_schema: Ident,
    /// How the target server reaches the source (foreign server and user mapping).
    pub link: ConnInfo,
    /// A label of the source for the registry (`user@host:port/db`, no password).
    pub source_label: String,
    /// Growing columns the configuration names per table, for incremental pushdown.
    pub cursors: BTreeMap<QualifiedName, Ident>,
    /// Take over same-named tables snapcopy did not create (drop them and copy).
    pub replace_unmanaged: bool,
    /// Full mode: drop and create managed tables anew instead of truncating them.
    pub rebuild: bool,
    /// Bytes of source table per batch for large tables; 0 loads every table in one
    /// statement.
    pub batch_bytes: i64,
    /// Tables created in this run from at least this many bytes on the source are split into
    /// `split_ranges` ranges loaded at once; 0 never splits.
    pub split_bytes: i64,
    /// How many ranges a split table is divided into (the run's sessions).
    pub split_ranges: usize,
}

/// The default batch: large enough that the per-batch overhead is small, small enough to bound
/// the target's temp space and to report progress every second or so.
pub const DEFAULT_BATCH_BYTES: i64 = 32 * 1024 * 1024;

/// The default size from which a table is split: below it, the sessions are better used on
/// other tables, and the split's own cost (one session per range) is not worth a few seconds.
pub const DEFAULT_SPLIT_BYTES: i64 = 256 * 1024 * 1024;

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Statements run once, in one transaction, before any table.
    pub setup: Vec<Step>,
    /// Units of tables, each loaded in one transaction.
    pub units: Vec<Unit>,
    /// Tables that will not be copied, and why (each makes the run exit 1).
    pub refused: Vec<(QualifiedName, String)>,
    /// Things the user should know (skipped foreign keys, ...).
    pub warnings: Vec<String>,
}

/// Tables that load together.
#[derive(Debug, Clone)]
pub struct Unit {
    /// The unit's tables, in load order.
    pub tables: Vec<TableInfo>,
    /// Statements in order; see [`Phase`] for which run inside the transaction.
    pub steps: Vec<Step>,
    /// Tables whose rows come in ranges, loaded before the unit's transaction opens.
    pub splits: Vec<Split>,
    /// Undoes a table's block (see [`Phase::TableStart`]) on both sides after one of its
    /// statements failed: the table is then not copied, and the unit goes on without it.
    pub undo_table: String,
}

/// A large table loaded by several sessions at once, each reading one range of its rows in
/// the run's snapshot and committing it into a load table: the table as the catalog describes
/// it, made by the setup in the staging schema under a load name. The unit's transaction then
/// moves the load table into place, renames it and builds its keys, so the table appears with
/// all its rows or not at all; a unit that does not commit drops the load table.
#[derive(Debug, Clone)]
pub struct Split {
    /// Index into the unit's tables.
    pub table: usize,
    /// The load table.
    pub load_table: QualifiedName,
    /// Each range's statements, for a session and a transaction of its own.
    pub ranges: Vec<Vec<Step>>,
    /// Index builds on the load table, each in a session of its own once every range has
    /// committed: the unit then adds keys `USING INDEX` and renames the others, instead of
    /// building them one after another in its transaction.
    pub indexes: Vec<Step>,
    /// Drops the load table and the rows the ranges put in it.
    pub discard: String,
}

/// What the summary and progress need to know of a planned table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Schema and name.
    pub name: QualifiedName,
    /// What happens to it.
    pub action: Action,
    /// What changed on the source since the last copy (for a rebuild).
    pub changes: Vec<String>,
    /// Why a table is rebuilt when its source did not change (taken over, asked for).
    pub reason: Option<String>,
    /// How incremental mode chooses the rows to read.
    pub pushdown: Option<Pushdown>,
    /// The source's row estimate.
    pub estimated_rows: i64,
    /// For a split table: how many ranges of what (`2 ranges of id`).
    pub split: Option<String>,
}

/// What happens to a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The table does not exist on the target: create it, load it, build its indexes.
    Create,
    /// snapcopy made it before: truncate and reload it in the same transaction.
    Reload,
    /// Its shape changed on the source: drop it and create it anew (full mode).
    Rebuild,
    /// Insert the rows whose key is missing (incremental mode).
    Insert,
    /// Add the rows an extension marks as user data to the table the extension made.
    UserRows,
}

/// How incremental mode chooses the rows to read from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushdown {
    /// Only rows above the last copy's maximum of a growing column travel.
    Above(crate::source::Cursor),
    /// Every source row travels; the keys decide what is missing.
    AllKeys,
}

impl TableInfo {
    /// What the summary says besides the numbers: why a table was rebuilt, what changed, the
    /// pushdown used, how it was split.
    pub fn note(&self) -> String {
        let mut parts: Vec<String> = self.reason.iter().cloned().collect();
        if !self.changes.is_empty() {
            parts.push(format!("source changed: {}", self.changes.join("; ")));
        }
        match &self.pushdown {
            Some(Pushdown::Above(c)) => {
                parts.push(format!("{} {} last copy's max", c.column.raw(), c.operator))
            }
            Some(Pushdown::AllKeys) => parts.push("all keys compared".to_string()),
            None => {}
        }
        if let Some(split) = &self.split {
            parts.push(format!("loaded in {split} at once"));
        }
        parts.join("; ")
    }

    /// Whether only new rows were read from the source.
    pub fn pushed_down(&self) -> bool {
        matches!(self.pushdown, Some(Pushdown::Above(_)))
    }
}

impl Action {
    /// The past-tense word the summary uses.
    pub fn done_word(self) -> &'static str {
        match self {
            Action::Create => "created",
            Action::Reload => "reloaded",
            Action::Rebuild => "rebuilt",
            Action::Insert => "inserted",
            Action::UserRows => "user rows added",
        }
    }

    /// Whether the table is (re)created from the catalog in this run.
    pub fn creates(self) -> bool {
        matches!(self, Action::Create | Action::Rebuild)
    }
}

/// Where a statement belongs in a unit. `Connect` runs before the target transaction opens and
/// `Disconnect` after it ends; everything else runs inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Schemas, extensions, the foreign server, types (setup only).
    Setup,
    /// Open the dblink connection and its read-only source transaction, in the run's snapshot
    /// (`$1`, exported by the tool's own source session, which holds it open for the run).
    Connect,
    /// Empty, or drop, the tables being reloaded or rebuilt.
    Truncate,
    /// Opens the block of a table the run creates: a savepoint on the target and one in the
    /// source transaction. A failure inside the block undoes only it ([`Unit::undo_table`]),
    /// so that what cannot be made on the target fails alone.
    TableStart,
    /// Closes a table's block, keeping what it made.
    TableEnd,
    /// Sequences and the bare table.
    PreData,
    /// The staging view or materialized view.
    Staging,
    /// The rows: `INSERT ... SELECT` from the staging object; the command tag counts them.
    Data,
    /// One batch of rows from a cursor; repeated until a batch comes back short.
    Batch,
    /// The missing rows (incremental): returns rows read, rows inserted, new high-water mark.
    Insert,
    /// Primary keys, unique and exclusion constraints, indexes.
    PostData,
    /// Foreign keys, last.
    ForeignKeys,
    /// User triggers, once the rows are in: created on new tables, turned back on as they were
    /// on existing ones (turned off, in `Truncate`, so that they never fire on the load).
    Triggers,
    /// Sequences set from the source, never below the table's max.
    Sequences,
    /// The registry row; `$1` rows loaded, `$2` rows skipped, `$3` pushed down, `$4` the
    /// high-water mark read.
    Record,
    /// End the source transaction and close the dblink connection.
    Disconnect,
}

/// One statement.
#[derive(Debug, Clone)]
pub struct Step {
    /// Where it runs.
    pub phase: Phase,
    /// Index into the unit's tables, for steps about one table.
    pub table: Option<usize>,
    /// The SQL sent to the server.
    pub sql: String,
    /// What to show instead of `sql` when it holds a secret.
    pub shown: String,
    /// Transaction-local settings to bind (as parameters) before `sql` runs: how a secret
    /// reaches the server without being part of any statement's text.
    pub settings: Vec<(String, String)>,
    /// For a batch: the rows one run of it asks for.
    pub batch: Option<u64>,
    /// What the statement is for, when its failure needs words of its own.
    pub purpose: Purpose,
    /// Another table of the unit the statement involves (a foreign key's referenced table),
    /// and what the statement makes, for the warning when it is skipped because that table
    /// failed.
    pub also: Option<(usize, String)>,
}

/// Setup statements whose failure has a cause of its own to explain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Purpose {
    /// Nothing special.
    #[default]
    Other,
    /// `CREATE EXTENSION` of an extension snapcopy itself needs (dblink).
    Extension(String),
    /// Making something tables need: only those tables are refused when it fails.
    Prerequisite(Requirement),
    /// Making something one table needs (a split table's load table): only it is refused.
    ForTable(QualifiedName),
    /// The target server's first dblink connection to the source.
    LinkCheck,
}

impl Step {
    fn new(phase: Phase, table: Option<usize>, sql: String) -> Step {
        Step {
            phase,
            table,
            shown: sql.clone(),
            sql,
            settings: Vec::new(),
            batch: None,
            purpose: Purpose::Other,
            also: None,
        }
    }

    fn with_purpose(self, purpose: Purpose) -> Step {
        Step { purpose, ..self }
    }

    fn secret(phase: Phase, sql: String, shown: String, settings: Vec<(String, String)>) -> Step {
        Step {
            phase,
            table: None,
            sql,
            shown,
            settings,
            batch: None,
            purpose: Purpose::Other,
            also: None,
        }
    }
}

/// The comment that marks a split table's load table as snapcopy's, so that a sweep after an
/// interrupted run drops only those.
pub const LOAD_MARKER: &str =
    "snapcopy load table: the rows of a split load, until its unit moves it into place";

/// The foreign server's name, derived from the staging schema so that two staging schemas in
/// one database can point at two sources.
pub fn server_name(staging_schema: &Ident) -> String {
    truncate_bytes(&format!("{}_source", staging_schema.raw()), 63).to_string()
}

/// The staging object's name: `schema.table` as one identifier (it always holds a dot, so it
/// never collides with the registry), shortened with a hash when it would pass 63 bytes.
pub fn staging_name(table: &QualifiedName) -> String {
    let full = format!("{}.{}", table.schema.raw(), table.name.raw());
    if full.len() <= 63 {
        return full;
    }
    format!(
        "{}.{}~{:08x}",
        truncate_bytes(table.schema.raw(), 27),
        truncate_bytes(table.name.raw(), 26),
        fnv1a(full.as_bytes()) as u32
    )
}

/// FNV-1a: a stable hash (std's hasher may change between Rust releases; names must not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// Plans a run.
pub fn plan(catalog: &Catalog, target: &TargetState, options: &PlanOptions) -> Plan {
    let staging_schema = &options.staging_schema;
    let server = server_name(staging_schema);
    let dblink_schema = target
        .dblink_schema
        .clone()
        .unwrap_or_else(|| staging_schema.clone());
    let registry = registry::table(staging_schema);
    let mode: &dyn Refresh = match options.mode {
        Mode::Full => &Full,
        Mode::Incremental => &Incremental,
    };

    let mut plan = Plan {
        setup: Vec::new(),
        units: Vec::new(),
        refused: Vec::new(),
        warnings: Vec::new(),
    };

    // What the target server cannot have refuses the tables that need it, before anything
    // changes; the other tables go on.
    let unavailable = unavailable(catalog, target);
    let chosen: BTreeSet<&QualifiedName> = catalog.tables.iter().map(|t| &t.name).collect();
    let mut accepted: Vec<(Table, TableInfo)> = Vec::new();
    for table in &catalog.tables {
        let missing = table
            .requires
            .iter()
            .find_map(|r| unavailable.get(r).map(|why| (r, why)));
        if let Some((requirement, why)) = missing {
            plan.refused.push((
                table.name.clone(),
                format!(
                    "{} needs the {requirement}, which {why}",
                    table.name.human()
                ),
            ));
            continue;
        }
        if let Some(why) = target.cannot_make.get(&table.name) {
            plan.refused.push((table.name.clone(), why.clone()));
            continue;
        }
        let exists = target.existing_tables.contains(&table.name);
        let decision = match (exists, target.managed.get(&table.name)) {
            _ if table.user_rows.is_some() => Ok(Decision {
                reason: Some("the extension makes the table; its user rows are added".into()),
                ..Decision::new(Action::UserRows)
            }),
            (false, _) => Ok(Decision::new(Action::Create)),
            (true, None) if options.replace_unmanaged => Ok(Decision {
                reason: Some("took over a table snapcopy did not create".into()),
                ..Decision::new(Action::Rebuild)
            }),
            (true, None) if target.replaced.contains(&table.name) => Err(format!(
                "{} on the target is not the table snapcopy made: it was dropped and made \
                 again there since the last copy, so snapcopy leaves it and its rows alone; \
                 drop or rename it there, leave it out with --exclude, or take it over with \
                 --replace-unmanaged",
                table.name.human()
            )),
            (true, None) => Err(format!(
                "{} already exists on the target and snapcopy did not create it; drop or \
                 rename it there, leave it out with --exclude, or take it over with \
                 --replace-unmanaged",
                table.name.human()
            )),
            (true, Some(stored)) => {
                let changes = stored
                    .as_ref()
                    .map(|old| table.shape().changes_since(old))
                    .unwrap_or_default();
                if options.rebuild {
                    Ok(Decision {
                        changes,
                        reason: Some("dropped and created anew (--rebuild)".into()),
                        ..Decision::new(Action::Rebuild)
                    })
                } else {
                    mode.existing(table, changes, options.cursors.get(&table.name))
                }
            }
        };
        let decision = decision.map(|mut d| {
            if d.reason.is_none() {
                d.reason = target.along.get(&table.name).cloned();
            }
            d
        });
        match decision {
            Ok(d) => accepted.push((
                table.clone(),
                TableInfo {
                    name: table.name.clone(),
                    action: d.action,
                    changes: d.changes,
                    reason: d.reason,
                    pushdown: d.pushdown,
                    estimated_rows: table.estimated_rows,
                    split: None,
                },
            )),
            Err(reason) => plan.refused.push((table.name.clone(), reason)),
        }
    }
    // A table made in this run inherits from its parents when each is part of the run or is on
    // the target already; otherwise it is one of its own.
    let in_run: BTreeSet<QualifiedName> = accepted.iter().map(|(t, _)| t.name.clone()).collect();
    for (table, _) in &mut accepted {
        if table
            .parents
            .iter()
            .all(|p| in_run.contains(p) || target.managed.contains_key(p))
        {
            table.inherits = table.parents.clone();
        }
    }
    // Dropping an inheritance parent drops its children: those in the run are made anew with
    // it; those only the target has are detached first and keep their rows.
    loop {
        let rebuilt: BTreeSet<QualifiedName> = accepted
            .iter()
            .filter(|(_, i)| i.action == Action::Rebuild)
            .map(|(t, _)| t.name.clone())
            .collect();
        let mut changed = false;
        for (table, info) in &mut accepted {
            if info.action != Action::Reload {
                continue;
            }
            if let Some(parent) = table.inherits.iter().find(|p| rebuilt.contains(*p)) {
                info.action = Action::Rebuild;
                info.reason = Some(format!(
                    "made anew with its parent {}, which is rebuilt",
                    parent.human()
                ));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for (table, info) in &accepted {
        if info.action != Action::Rebuild {
            continue;
        }
        for child in target.children.get(&table.name).into_iter().flatten() {
            if !in_run.contains(child) {
                plan.warnings.push(format!(
                    "{} inherits from {} on the target and is not part of this run: it is \
                     detached (NO INHERIT) before {} is rebuilt, and keeps its rows",
                    child.human(),
                    table.name.human(),
                    table.name.human()
                ));
            }
        }
    }
    // A foreign key to a table outside the run, or to one refused, is skipped where the run
    // makes the table; one the target has already stays (a reload keeps it), with nothing to
    // say.
    let copied: BTreeSet<&QualifiedName> = accepted.iter().map(|(t, _)| &t.name).collect();
    for (table, info) in &accepted {
        let stays = |c: &Constraint| {
            !info.action.creates()
                && target
                    .existing_constraints
                    .contains(&(table.name.clone(), c.name.raw().to_string()))
        };
        for c in &table.constraints {
            if let ConstraintKind::ForeignKey { references } = &c.kind {
                if !copied.contains(references) && !stays(c) && info.action != Action::UserRows {
                    plan.warnings.push(if chosen.contains(references) {
                        format!(
                            "foreign key {} of {} is skipped: it references {}, which is not \
                             copied (its error says why)",
                            c.name.raw(),
                            table.name.human(),
                            references.human()
                        )
                    } else {
                        format!(
                            "foreign key {} of {} is skipped: it references {}, which is not \
                             part of this run; copy both tables in one run to keep it",
                            c.name.raw(),
                            table.name.human(),
                            references.human()
                        )
                    });
                }
            }
        }
    }

    // What only refused tables need is not made.
    let needed: BTreeSet<&Requirement> = accepted.iter().flat_map(|(t, _)| &t.requires).collect();
    let skip: BTreeSet<Requirement> = catalog
        .tables
        .iter()
        .filter(|t| plan.refused.iter().any(|(name, _)| name == &t.name))
        .flat_map(|t| t.requires.iter())
        .filter(|r| !needed.contains(r))
        .cloned()
        .collect();
    plan.setup = setup_steps(catalog, target, options, &server, &skip);

    let tables: Vec<Table> = accepted.iter().map(|(t, _)| t.clone()).collect();
    let ctx = UnitContext {
        options,
        target,
        mode,
        server: &server,
        dblink_schema: &dblink_schema,
        registry: &registry,
        shared: &catalog.sequences,
        tables: &tables,
    };
    let mut units: Vec<(i64, Unit)> = Vec::new();
    for group in crate::source::foreign_key_groups(&tables) {
        let members: Vec<(&Table, &TableInfo)> = group
            .iter()
            .map(|&i| (&accepted[i].0, &accepted[i].1))
            .collect();
        let bytes = members.iter().map(|(t, _)| t.bytes_with_partitions()).sum();
        let (unit, prepare) = ctx.unit(&members);
        plan.setup.extend(prepare);
        units.push((bytes, unit));
    }
    // Largest first, so that the last unit to finish is a small one.
    units.sort_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
    plan.units = units.into_iter().map(|(_, unit)| unit).collect();
    plan
}

/// What the tables need that the target server cannot have, with why, in words that follow
/// "which": an extension whose package is not installed there, a collation of the operating
/// system's locales that it lacks.
fn unavailable(catalog: &Catalog, target: &TargetState) -> BTreeMap<Requirement, String> {
    let mut out = BTreeMap::new();
    for ext in &catalog.extensions {
        if target.extensions.get(&ext.name) == Some(&ExtensionState::Missing) {
            out.insert(
                Requirement::Extension(ext.name.clone()),
                format!(
                    "is not installed on the target server: install its package there ({}) and \
                     run snapcopy again",
                    crate::exec::package_for(&ext.name)
                ),
            );
        }
    }
    for collation in &catalog.collations {
        if collation.options.is_none() && !target.existing_collations.contains(&collation.name) {
            out.insert(
                Requirement::Collation(collation.name.clone()),
                "comes from the operating system's locales and the target server lacks it: \
                 install that locale on the target server's machine, run SELECT \
                 pg_import_system_collations('pg_catalog') there as a superuser, and run \
                 snapcopy again"
                    .to_string(),
            );
        }
    }
    out
}

/// A refresh mode's verdict on one table.
pub struct Decision {
    action: Action,
    changes: Vec<String>,
    reason: Option<String>,
    pushdown: Option<Pushdown>,
}

impl Decision {
    fn new(action: Action) -> Decision {
        Decision {
            action,
            changes: Vec::new(),
            reason: None,
            pushdown: None,
        }
    }
}

/// The setup's statements: snapcopy's own objects and the link, then what the tables need that
/// the target lacks, each after what it needs; nothing in `skip` (needed only by refused
/// tables).
fn setup_steps(
    catalog: &Catalog,
    target: &TargetState,
    options: &PlanOptions,
    server: &str,
    skip: &BTreeSet<Requirement>,
) -> Vec<Step> {
    let staging = &options.staging_schema;
    // Marked as snapcopy's, so that teardown never drops a schema snapcopy did not make.
    let mut steps = vec![
        Step::new(
            Phase::Setup,
            None,
            format!("CREATE SCHEMA IF NOT EXISTS {staging}"),
        ),
        Step::new(
            Phase::Setup,
            None,
            format!(
                "COMMENT ON SCHEMA {staging} IS {}",
                literal(crate::guard::STAGING_MARKER)
            ),
        ),
    ];
    if target.dblink_schema.is_none() {
        steps.push(
            Step::new(
                Phase::Setup,
                None,
                format!("CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA {staging}"),
            )
            .with_purpose(Purpose::Extension("dblink".into())),
        );
    }
    steps.extend(
        registry::setup_sql(staging)
            .into_iter()
            .map(|sql| Step::new(Phase::Setup, None, sql)),
    );
    // A split load that was interrupted (the process killed before it could clean up) left its
    // load tables; no other run is using them, since runs take the target's run lock. Only
    // tables snapcopy marked as its load tables go.
    let sweep = format!(
        "DO {}",
        crate::sql::dollar_quoted(&format!(
            " DECLARE t text; BEGIN FOR t IN SELECT pg_catalog.format('%I.%I', n.nspname, \
             c.relname) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = \
             c.relnamespace WHERE n.nspname = {} AND c.relkind = 'r' AND c.relname LIKE 'load %' \
             AND pg_catalog.obj_description(c.oid, 'pg_class') = {} LOOP EXECUTE 'DROP TABLE ' \
             || t || ' CASCADE'; END LOOP; END ",
            literal(staging.raw()),
            literal(LOAD_MARKER)
        ))
    );
    steps.push(Step {
        shown: format!("-- load tables left by an interrupted split load\n{sweep}"),
        ..Step::new(Phase::Setup, None, sweep)
    });
    let server_ident = Ident::new(server);
    steps.push(Step::new(
        Phase::Setup,
        None,
        format!("DROP SERVER IF EXISTS {server_ident} CASCADE"),
    ));
    let mut server_options = options.link.server_options();
    // Read-only, and floats printed exactly: dblink matches DateStyle and IntervalStyle to the
    // source's when parsing, but a source set to extra_float_digits = 0 would round floats.
    let read_only = "-c default_transaction_read_only=on -c extra_float_digits=3";
    match server_options.iter_mut().find(|(k, _)| k == "options") {
        Some((_, v)) => *v = format!("{v} {read_only}"),
        None => server_options.push(("options".into(), read_only.into())),
    }
    if !server_options.iter().any(|(k, _)| k == "application_name") {
        server_options.push(("application_name".into(), "snapcopy".into()));
    }
    steps.push(Step::new(
        Phase::Setup,
        None,
        format!(
            "CREATE SERVER {server_ident} FOREIGN DATA WRAPPER dblink_fdw OPTIONS ({})",
            options_list(&server_options, false)
        ),
    ));
    let mapping = options.link.user_mapping_options();
    if mapping.is_empty() {
        steps.push(Step::new(
            Phase::Setup,
            None,
            format!("CREATE USER MAPPING FOR CURRENT_USER SERVER {server_ident}"),
        ));
    } else {
        // The options (the password among them) reach the server as a bound parameter in a
        // transaction-local setting, and a DO block builds the statement from it: neither
        // pg_stat_activity.query nor a log of DDL statements ever holds the password. Should
        // the statement fail (an event trigger, a duplicate), its error is raised again without
        // the statement, which the server would otherwise log in the error's context.
        steps.push(Step::secret(
            Phase::Setup,
            "DO $snapcopy$ BEGIN EXECUTE pg_catalog.format(\
             'CREATE USER MAPPING FOR CURRENT_USER SERVER %I OPTIONS (%s)', \
             pg_catalog.current_setting('snapcopy.server'), \
             pg_catalog.current_setting('snapcopy.user_mapping')); \
             EXCEPTION WHEN OTHERS THEN \
             RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = SQLERRM; END $snapcopy$"
                .to_string(),
            format!(
                "-- run as a DO block, its options bound as a parameter: the password stays out \
                 of pg_stat_activity and statement logs\n\
                 CREATE USER MAPPING FOR CURRENT_USER SERVER {server_ident} OPTIONS ({})",
                options_list(&mapping, true)
            ),
            vec![
                ("snapcopy.server".into(), server.to_string()),
                (
                    "snapcopy.user_mapping".into(),
                    options_list(&mapping, false),
                ),
            ],
        ));
    }

    // CREATE SCHEMA checks the CREATE privilege before IF NOT EXISTS, so `public`, which
    // every database has, is never named.
    let create_schema = |schema: &Ident| {
        (schema.raw() != "public").then(|| {
            Step::new(
                Phase::Setup,
                None,
                format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
            )
        })
    };
    let wanted = |r: &Requirement| !skip.contains(r);
    for ext in &catalog.extensions {
        let requirement = Requirement::Extension(ext.name.clone());
        let state = target.extensions.get(&ext.name);
        if !wanted(&requirement)
            || matches!(
                state,
                Some(ExtensionState::Installed | ExtensionState::Missing)
            )
        {
            continue;
        }
        steps.extend(create_schema(&ext.schema));
        steps.push(
            Step::new(
                Phase::Setup,
                None,
                format!(
                    "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}",
                    Ident::new(&ext.name),
                    ext.schema
                ),
            )
            .with_purpose(Purpose::Prerequisite(requirement)),
        );
    }
    let mut schemas: BTreeSet<&Ident> = catalog.tables.iter().map(|t| &t.name.schema).collect();
    schemas.extend(catalog.types.iter().map(|t| &t.name.schema));
    for schema in schemas {
        steps.extend(create_schema(schema));
    }
    for collation in &catalog.collations {
        let requirement = Requirement::Collation(collation.name.clone());
        let (Some(options), false) = (
            &collation.options,
            target.existing_collations.contains(&collation.name),
        ) else {
            continue;
        };
        if wanted(&requirement) {
            steps.extend(create_schema(&collation.name.schema));
            steps.push(
                Step::new(
                    Phase::Setup,
                    None,
                    format!(
                        "CREATE COLLATION IF NOT EXISTS {} ({options})",
                        collation.name
                    ),
                )
                .with_purpose(Purpose::Prerequisite(requirement)),
            );
        }
    }
    // Types and functions in one order, each after what it needs: a function may take a user
    // type, a domain's check may call a function. A function the target has is left as it is.
    // Function bodies are checked when they run, not when they are made (as pg_dump does):
    // one may name tables that do not exist yet.
    let mut bodies_unchecked = false;
    for requirement in creation_order(catalog) {
        if !wanted(&requirement) {
            continue;
        }
        match &requirement {
            Requirement::Type(name) => {
                let Some(ty) = catalog.types.iter().find(|t| &t.name == name) else {
                    continue;
                };
                let sql: Vec<String> = match (target.existing_types.get(&ty.name), &ty.kind) {
                    (None, _) => vec![create_type_sql(ty)],
                    (Some(have), TypeKind::Enum { labels }) => {
                        enum_additions(&ty.name, labels, have)
                    }
                    (Some(_), _) => Vec::new(),
                };
                steps.extend(sql.into_iter().map(|sql| {
                    Step::new(Phase::Setup, None, sql)
                        .with_purpose(Purpose::Prerequisite(requirement.clone()))
                }));
            }
            Requirement::Function(signature) => {
                let Some(f) = catalog.functions.iter().find(|f| &f.signature == signature) else {
                    continue;
                };
                if target.existing_functions.contains(&f.key) {
                    continue;
                }
                if !bodies_unchecked {
                    steps.push(Step::new(
                        Phase::Setup,
                        None,
                        "SET LOCAL check_function_bodies = off".to_string(),
                    ));
                    bodies_unchecked = true;
                }
                steps.extend(create_schema(&f.name.schema));
                steps.push(
                    Step::new(Phase::Setup, None, f.definition.trim_end().to_string())
                        .with_purpose(Purpose::Prerequisite(requirement.clone())),
                );
            }
            _ => {}
        }
    }
    // Sequences that defaults call without owning them: made once, free-standing (a table of
    // the run that owns one on the source takes it over with OWNED BY when it is created).
    for shared in &catalog.sequences {
        let requirement = Requirement::Sequence(shared.sequence.name.clone());
        if !wanted(&requirement) {
            continue;
        }
        steps.extend(create_schema(&shared.sequence.name.schema));
        steps.push(
            Step::new(
                Phase::Setup,
                None,
                format!(
                    "CREATE SEQUENCE IF NOT EXISTS {} {}",
                    shared.sequence.name,
                    shared.sequence.options_sql()
                ),
            )
            .with_purpose(Purpose::Prerequisite(requirement)),
        );
    }
    // Try the link before any table: if the target server cannot reach the source, or dblink
    // refuses the credentials, the setup rolls back and nothing has changed.
    let dblink = target.dblink_schema.as_ref().unwrap_or(staging);
    steps.push(
        Step::new(
            Phase::Setup,
            None,
            format!(
                "SELECT {dblink}.dblink_connect('snapcopy_link_check', {server}); \
                 SELECT {dblink}.dblink_disconnect('snapcopy_link_check')",
                server = literal(server)
            ),
        )
        .with_purpose(Purpose::LinkCheck),
    );
    steps
}

/// Labels the source's enum has and the target's lacks, added where the source has them: after
/// the label before them in the source's order (or before the next one, for a new first
/// label). Labels only the target has stay; an enum label cannot be dropped. The setup commits
/// before any load, as PostgreSQL requires before a new label may be used.
fn enum_additions(name: &QualifiedName, source: &[String], target: &[String]) -> Vec<String> {
    let have = |l: &String, present: &[String]| present.contains(l);
    let mut present: Vec<String> = target.to_vec();
    let mut out = Vec::new();
    for (i, label) in source.iter().enumerate() {
        if have(label, &present) {
            continue;
        }
        let placement = match source[..i].iter().rev().find(|l| have(l, &present)) {
            Some(before) => format!(" AFTER {}", literal(before)),
            None => match source[i + 1..].iter().find(|l| have(l, &present)) {
                Some(after) => format!(" BEFORE {}", literal(after)),
                None => String::new(),
            },
        };
        out.push(format!(
            "ALTER TYPE {name} ADD VALUE IF NOT EXISTS {}{placement}",
            literal(label)
        ));
        let at = source[..i]
            .iter()
            .rev()
            .find_map(|l| present.iter().position(|p| p == l).map(|p| p + 1))
            .unwrap_or(0);
        present.insert(at, label.clone());
    }
    out
}

/// The user types and functions in an order that creates each after the types and functions it
/// needs (depth first, from the catalog's order: types, then functions).
fn creation_order(catalog: &Catalog) -> Vec<Requirement> {
    fn needs<'c>(r: &Requirement, catalog: &'c Catalog) -> Vec<&'c Requirement> {
        match r {
            Requirement::Type(name) => catalog
                .types
                .iter()
                .find(|t| &t.name == name)
                .map(|t| t.requires.iter().collect())
                .unwrap_or_default(),
            Requirement::Function(signature) => catalog
                .functions
                .iter()
                .find(|f| &f.signature == signature)
                .map(|f| f.requires.iter().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
    fn visit(
        r: &Requirement,
        catalog: &Catalog,
        visiting: &mut BTreeSet<Requirement>,
        out: &mut Vec<Requirement>,
    ) {
        // `visiting` ends a cycle (which no order could satisfy anyway).
        if !matches!(r, Requirement::Type(_) | Requirement::Function(_))
            || !visiting.insert(r.clone())
        {
            return;
        }
        for need in needs(r, catalog) {
            visit(need, catalog, visiting, out);
        }
        out.push(r.clone());
    }
    let mut visiting = BTreeSet::new();
    let mut out = Vec::new();
    let all = catalog
        .types
        .iter()
        .map(|t| Requirement::Type(t.name.clone()))
        .chain(
            catalog
                .functions
                .iter()
                .map(|f| Requirement::Function(f.signature.clone())),
        );
    for r in all {
        visit(&r, catalog, &mut visiting, &mut out);
    }
    out
}

/// `key 'value', ...` for OPTIONS clauses, secrets replaced when `redact`.
fn options_list(options: &[(String, String)], redact: bool) -> String {
    options
        .iter()
        .map(|(k, v)| {
            let value = if redact && (k == "password" || k == "sslpassword") {
                literal("********")
            } else {
                literal(v)
            };
            format!("{} {value}", Ident::new(k.as_str()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn create_type_sql(ty: &crate::source::UserType) -> String {
    match &ty.kind {
        TypeKind::Enum { labels } => format!(
            "CREATE TYPE {} AS ENUM ({})",
            ty.name,
            labels
                .iter()
                .map(|l| literal(l))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TypeKind::Domain {
            base_sql,
            collation_sql,
            default_sql,
            not_null,
            checks,
        } => {
            let mut sql = format!("CREATE DOMAIN {} AS {base_sql}", ty.name);
            if let Some(c) = collation_sql {
                write!(sql, " COLLATE {c}").unwrap();
            }
            if let Some(d) = default_sql {
                write!(sql, " DEFAULT {d}").unwrap();
            }
            if *not_null {
                sql.push_str(" NOT NULL");
            }
            for (name, def) in checks {
                write!(sql, " CONSTRAINT {name} {def}").unwrap();
            }
            sql
        }
        TypeKind::Composite { attributes } => format!(
            "CREATE TYPE {} AS ({})",
            ty.name,
            attributes
                .iter()
                .map(|(n, t, c)| match c {
                    Some(c) => format!("{n} {t} COLLATE {c}"),
                    None => format!("{n} {t}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TypeKind::Range { subtype_sql } => {
            format!("CREATE TYPE {} AS RANGE (SUBTYPE = {subtype_sql})", ty.name)
        }
    }
}

/// What every unit needs to know to write its SQL.
pub struct UnitContext<'a> {
    options: &'a PlanOptions,
    target: &'a TargetState,
    mode: &'a dyn Refresh,
    server: &'a str,
    dblink_schema: &'a Ident,
    registry: &'a QualifiedName,
    /// Sequences that defaults call without their table owning them.
    shared: &'a [SharedSequence],
    /// Every table of the run (a child's parents, for inheritance).
    tables: &'a [Table],
}

impl UnitContext<'_> {
    /// The unit, and the statements the setup runs for it: its split tables' load tables.
    fn unit(&self, group: &[(&Table, &TableInfo)]) -> (Unit, Vec<Step>) {
        let tables: Vec<&Table> = group.iter().map(|(t, _)| *t).collect();
        let (ordered, cyclic) = load_order(&tables);
        let info_of = |name: &QualifiedName| {
            group
                .iter()
                .find(|(t, _)| &t.name == name)
                .map(|(_, i)| (*i).clone())
                .expect("every ordered table is in the group")
        };
        let mut infos: Vec<TableInfo> = ordered.iter().map(|t| info_of(&t.name)).collect();
        // Split tables: their ranges, and the names they load under.
        let loads: Vec<Option<(Vec<String>, LoadNames)>> = ordered
            .iter()
            .zip(infos.iter_mut())
            .map(|(table, info)| {
                let (predicates, by) = self.ranges(table, info)?;
                info.split = Some(format!("{} ranges of {by}", predicates.len()));
                Some((predicates, self.load_names(table)))
            })
            .collect();
        let mut prepare = Vec::new();
        let mut splits = Vec::new();
        for (i, (table, split)) in ordered.iter().zip(&loads).enumerate() {
            let Some((predicates, load)) = split else {
                continue;
            };
            let first = prepare.len();
            prepare.extend(
                create_table_steps(table, i, Some(load), None)
                    .into_iter()
                    .map(|s| {
                        Step::new(Phase::Setup, None, s.sql)
                            .with_purpose(Purpose::ForTable(table.name.clone()))
                    }),
            );
            prepare.push(
                Step::new(
                    Phase::Setup,
                    None,
                    format!(
                        "COMMENT ON TABLE {} IS {}",
                        load.table,
                        literal(LOAD_MARKER)
                    ),
                )
                .with_purpose(Purpose::ForTable(table.name.clone())),
            );
            prepare[first].shown = format!(
                "-- {} loads in {} ranges at once into this load table; its unit moves it into \
                 place\n{}",
                table.name.human(),
                predicates.len(),
                prepare[first].sql
            );
            splits.push(Split {
                table: i,
                ranges: predicates
                    .iter()
                    .map(|p| self.range_steps(table, i, &load.table, p))
                    .collect(),
                indexes: prebuilt_indexes(table, load)
                    .into_iter()
                    .map(|p| Step::new(Phase::PostData, Some(i), p.create))
                    .collect(),
                discard: format!("DROP TABLE IF EXISTS {} CASCADE", load.table),
                load_table: load.table.clone(),
            });
        }
        let in_unit: BTreeSet<&QualifiedName> = ordered.iter().map(|t| &t.name).collect();
        let rebuilt: BTreeSet<&QualifiedName> = infos
            .iter()
            .filter(|i| i.action == Action::Rebuild)
            .map(|i| &i.name)
            .collect();
        let mut steps = self.connect_steps();

        // User triggers never fire on snapcopy's loads: those of existing tables are off until
        // the rows are in (in this transaction only, so no other session notices).
        for (table, info) in ordered.iter().zip(&infos) {
            if matches!(info.action, Action::Reload | Action::Insert) {
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
        for (table, info) in ordered.iter().zip(&infos) {
            if info.action != Action::Reload {
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
        for name in &rebuilt {
            steps.extend(self.drop_steps(name, &in_unit));
        }
        let reloads: Vec<String> = infos
            .iter()
            .filter(|i| i.action == Action::Reload)
            .map(|i| {
                // ONLY: an inheritance parent's children keep their rows (those in the run
                // are truncated in their own right); a partitioned table has none of its own.
                let partitioned = ordered
                    .iter()
                    .any(|t| t.name == i.name && t.is_partitioned());
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

        // Rows checked by an existing deferred key leave trigger events pending, and PostgreSQL
        // refuses ALTER TABLE while they are: after each such table's rows they are checked
        // (parents are loaded first, so they hold).
        let deferred_checks = ordered.iter().any(|t| {
            t.constraints.iter().any(|c| {
                c.deferrable
                    && matches!(c.kind, ConstraintKind::ForeignKey { .. })
                    && self.has_constraint(&t.name, c)
            })
        });
        for (i, (table, info)) in ordered.iter().zip(&infos).enumerate() {
            // A table the run creates is made in a block of its own: if something of it
            // cannot be made on the target, it alone is not copied.
            let block = info.action == Action::Create;
            if block {
                steps.push(self.block_step(Phase::TableStart, i, "SAVEPOINT"));
            }
            if let Some((_, load)) = &loads[i] {
                // The rows are in the load table already.
                steps.extend(move_steps(table, i, load));
                steps.extend(self.staging_steps(table, info, i));
            } else {
                if info.action.creates() {
                    steps.extend(create_table_steps(
                        table,
                        i,
                        None,
                        Inheritance::of(table, self.tables).as_ref(),
                    ));
                }
                if info.action == Action::UserRows {
                    steps.push(self.user_rows_step(table, i));
                } else {
                    steps.extend(self.mode.rows(self, table, info, i));
                }
            }
            if !info.action.creates() && deferred_checks {
                steps.push(Step::new(
                    Phase::Data,
                    None,
                    "SET CONSTRAINTS ALL IMMEDIATE".to_string(),
                ));
            }
            if let Some((_, load)) = &loads[i] {
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
            // A new table's triggers come once its rows are in; no later statement of the
            // unit writes to it.
            if info.action.creates() {
                steps.extend(trigger_steps(table, i));
            }
            if block {
                steps.push(self.block_step(Phase::TableEnd, i, "RELEASE SAVEPOINT"));
            }
        }

        steps.extend(self.foreign_key_steps(&ordered, &infos, &readd, &rebuilt));

        steps.extend(self.trigger_restore_steps(&ordered, &infos));
        steps.extend(self.sequence_steps(&ordered, &infos));
        // snapcopy manages the tables it creates; an extension's table stays the extension's.
        for (i, (table, info)) in ordered
            .iter()
            .zip(&infos)
            .enumerate()
            .filter(|(_, (_, i))| i.action != Action::UserRows)
        {
            let cursor = table
                .key(self.options.cursors.get(&table.name))
                .and_then(|k| k.cursor);
            let record = registry::Record {
                registry: self.registry.clone(),
                source_label: &self.options.source_label,
                staging_kind: self.options.staging.as_str(),
                mode: self.mode.name(),
                incremental: info.action == Action::Insert,
                cursor: cursor.as_ref(),
                dblink: self.dblink_schema,
                server: self.server,
            };
            steps.push(Step::new(Phase::Record, Some(i), record.record_sql(table)));
        }
        steps.extend(self.disconnect_steps());
        let dblink = self.dblink_schema;
        let conn = literal(self.server);
        (
            Unit {
                tables: infos,
                steps,
                splits,
                undo_table: format!(
                    "ROLLBACK TO SAVEPOINT snapcopy_table; RELEASE SAVEPOINT snapcopy_table; \
                     SELECT {dblink}.dblink_exec({conn}, 'ROLLBACK TO SAVEPOINT snapcopy_table'); \
                     SELECT {dblink}.dblink_exec({conn}, 'RELEASE SAVEPOINT snapcopy_table')"
                ),
            },
            prepare,
        )
    }

    /// Drops a table the unit rebuilds. Its inheritance children that the unit does not make
    /// anew are detached first (they keep their rows), and so is a sequence it owns that
    /// other tables' defaults call (CASCADE would take those defaults with it; the table takes
    /// it back when it is created anew).
    fn drop_steps(&self, name: &QualifiedName, in_unit: &BTreeSet<&QualifiedName>) -> Vec<Step> {
        let mut steps = Vec::new();
        for child in self.target.children.get(name).into_iter().flatten() {
            if !in_unit.contains(child) {
                steps.push(Step::new(
                    Phase::Truncate,
                    None,
                    format!("ALTER TABLE {child} NO INHERIT {name}"),
                ));
            }
        }
        for shared in self
            .shared
            .iter()
            .filter(|s| s.owner.as_ref() == Some(name))
        {
            steps.push(Step::new(
                Phase::Truncate,
                None,
                format!(
                    "ALTER SEQUENCE IF EXISTS {} OWNED BY NONE",
                    shared.sequence.name
                ),
            ));
        }
        // IF EXISTS: an inheritance child goes with its parent's CASCADE.
        steps.push(Step::new(
            Phase::Truncate,
            None,
            format!("DROP TABLE IF EXISTS {name} CASCADE"),
        ));
        steps
    }

    /// The foreign keys between the unit's tables that the target lacks after the rows: those
    /// of tables made anew, those dropped for the reload (`readd`), those a rebuilt table's
    /// CASCADE took. Each names the referenced table, so that it is skipped, with a warning, if
    /// that table failed.
    fn foreign_key_steps(
        &self,
        ordered: &[&Table],
        infos: &[TableInfo],
        readd: &[(QualifiedName, &Constraint)],
        rebuilt: &BTreeSet<&QualifiedName>,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        // An extension's table keeps the keys the extension gave it.
        for (i, (table, info)) in ordered
            .iter()
            .zip(infos)
            .enumerate()
            .filter(|(_, (_, i))| i.action != Action::UserRows)
        {
            for c in &table.constraints {
                let ConstraintKind::ForeignKey { references } = &c.kind else {
                    continue;
                };
                let Some(j) = ordered.iter().position(|t| &t.name == references) else {
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
    fn trigger_restore_steps(&self, ordered: &[&Table], infos: &[TableInfo]) -> Vec<Step> {
        let mut steps = Vec::new();
        for (i, (table, info)) in ordered.iter().zip(infos).enumerate() {
            if matches!(info.action, Action::Reload | Action::Insert) {
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

    /// Every sequence the unit's tables own or draw from, set from the source's state but never
    /// behind the copied data.
    fn sequence_steps(&self, ordered: &[&Table], infos: &[TableInfo]) -> Vec<Step> {
        let mut steps = Vec::new();
        for (i, (table, info)) in ordered.iter().zip(infos).enumerate() {
            for seq in table.sequences.iter().filter(|s| !self.is_shared(&s.name)) {
                steps.push(Step::new(
                    Phase::Sequences,
                    Some(i),
                    self.setval_sql(
                        seq,
                        &[(&table.name, &seq.column)],
                        matches!(info.action, Action::Insert | Action::UserRows),
                    ),
                ));
            }
        }
        // A shared sequence is set above every column of the unit that draws from it, and
        // never moved back: other units, and tables outside the run, may draw from it too. One
        // statement per table, so that a table that failed takes only its own with it.
        for shared in self.shared {
            for (i, table) in ordered.iter().enumerate() {
                let mut bounds: Vec<(&QualifiedName, &Ident)> = Vec::new();
                if shared.owner.as_ref() == Some(&table.name) {
                    bounds.push((&table.name, &shared.sequence.column));
                }
                for user in shared
                    .users
                    .iter()
                    .filter(|u| u.table == table.name && u.integer)
                {
                    if !bounds.contains(&(&user.table, &user.column)) {
                        bounds.push((&user.table, &user.column));
                    }
                }
                if shared.involves(&table.name) {
                    steps.push(Step::new(
                        Phase::Sequences,
                        Some(i),
                        self.setval_sql(&shared.sequence, &bounds, true),
                    ));
                }
            }
        }
        steps
    }

    /// Opens (`SAVEPOINT`) or closes (`RELEASE SAVEPOINT`) a table's block on the target and
    /// in the source transaction, where a failure may have left an error or an open cursor.
    fn block_step(&self, phase: Phase, i: usize, command: &str) -> Step {
        Step::new(
            phase,
            Some(i),
            format!(
                "{command} snapcopy_table; SELECT {}.dblink_exec({}, '{command} snapcopy_table')",
                self.dblink_schema,
                literal(self.server)
            ),
        )
    }

    /// Opens the dblink connection and its read-only source transaction in the run's snapshot.
    fn connect_steps(&self) -> Vec<Step> {
        let dblink = self.dblink_schema;
        let conn = literal(self.server);
        vec![
            Step::new(
                Phase::Connect,
                None,
                format!("SELECT {dblink}.dblink_connect({conn}, {conn})"),
            ),
            Step::new(
                Phase::Connect,
                None,
                format!(
                    "SELECT {dblink}.dblink_exec({conn}, \
                     'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')"
                ),
            ),
            Step::new(
                Phase::Connect,
                None,
                format!(
                    "SELECT {dblink}.dblink_exec({conn}, 'SET TRANSACTION SNAPSHOT ' || \
                     pg_catalog.quote_literal($1::text))"
                ),
            ),
        ]
    }

    /// Ends the source transaction and closes the dblink connection.
    fn disconnect_steps(&self) -> Vec<Step> {
        let dblink = self.dblink_schema;
        let conn = literal(self.server);
        vec![
            Step::new(
                Phase::Disconnect,
                None,
                format!("SELECT {dblink}.dblink_exec({conn}, 'COMMIT')"),
            ),
            Step::new(
                Phase::Disconnect,
                None,
                format!("SELECT {dblink}.dblink_disconnect({conn})"),
            ),
        ]
    }

    /// The ranges a table created in this run is split into, as conditions for the source's
    /// query, with what they divide (`id`, `blocks`); `None` loads it in one piece. Tables are
    /// split from `split_bytes` on, into `split_ranges` ranges of equal width: of the integer
    /// key's values, else of the heap's blocks. The first and last ranges are open, so a row
    /// outside the bounds read is never missed.
    fn ranges(&self, table: &Table, info: &TableInfo) -> Option<(Vec<String>, String)> {
        let options = self.options;
        let splittable = options.split_ranges >= 2
            && options.split_bytes > 0
            && table.total_bytes >= options.split_bytes
            && info.action.creates()
            && options.staging == StagingKind::View
            && !table.is_partitioned()
            && table.partitions.is_empty()
            // An inheritance child is made INHERITS its parents, a parent before them.
            && table.inherits.is_empty()
            && !self.tables.iter().any(|t| t.inherits.contains(&table.name))
            // Owned sequences move with the table into its schema; one that other tables'
            // defaults call must keep its name throughout.
            && table
                .sequences
                .iter()
                .all(|s| s.name.schema == table.name.schema && !self.is_shared(&s.name));
        if !splittable {
            return None;
        }
        let (column, low, high, by, bound): (String, i128, i128, String, fn(i128) -> String) =
            match table.extent.as_ref()? {
                Extent::Key { column, min, max } => (
                    column.to_string(),
                    i128::from(*min),
                    i128::from(*max) + 1,
                    column.raw().to_string(),
                    |v| v.to_string(),
                ),
                Extent::Blocks(blocks) => (
                    "ctid".to_string(),
                    0,
                    i128::from(*blocks),
                    "blocks".to_string(),
                    |v| format!("'({v},0)'::pg_catalog.tid"),
                ),
            };
        let n = options.split_ranges as i128;
        let mut bounds: Vec<i128> = (1..n).map(|k| low + (high - low) * k / n).collect();
        bounds.dedup();
        bounds.retain(|b| *b > low && *b < high);
        if bounds.is_empty() {
            return None;
        }
        let mut predicates = Vec::new();
        for k in 0..=bounds.len() {
            let lower = k.checked_sub(1).map(|k| bound(bounds[k]));
            let upper = bounds.get(k).map(|b| bound(*b));
            predicates.push(match (lower, upper) {
                (None, Some(u)) => format!("{column} < {u}"),
                (Some(l), Some(u)) => format!("{column} >= {l} AND {column} < {u}"),
                (Some(l), None) => format!("{column} >= {l}"),
                (None, None) => unreachable!("there is at least one bound"),
            });
        }
        Some((predicates, by))
    }

    /// Where a split table is made and loaded: the staging schema, under a name that no
    /// staging object has (theirs hold a dot), its sequences likewise.
    fn load_names(&self, table: &Table) -> LoadNames {
        let tag = format!(
            "load {:08x}",
            fnv1a(table.name.to_string().as_bytes()) as u32
        );
        let name = |n: String| QualifiedName {
            schema: self.options.staging_schema.clone(),
            name: Ident::new(n),
        };
        LoadNames {
            sequences: (0..table.sequences.len())
                .map(|k| name(format!("{tag} seq {k}")))
                .collect(),
            index_tag: format!("{tag} idx"),
            table: name(tag),
        }
    }

    /// One range of a split table, in a session of its own: the rows the condition picks, in
    /// the run's snapshot, into the load table, batch by batch for a large range.
    fn range_steps(
        &self,
        table: &Table,
        i: usize,
        load_table: &QualifiedName,
        predicate: &str,
    ) -> Vec<Step> {
        let select = format!("{} WHERE {predicate}", self.remote_select(table));
        let per_range = table.total_bytes / self.options.split_ranges as i64;
        let mut steps = self.connect_steps();
        match refresh::batch_rows(table, self.options.batch_bytes) {
            Some(batch) if per_range >= 2 * self.options.batch_bytes => {
                steps.extend(self.batched_load(table, i, batch, &select, load_table))
            }
            _ => steps.push(Step::new(
                Phase::Data,
                Some(i),
                format!(
                    "{} SELECT {} FROM {}.dblink({}, {}) AS t({})",
                    self.insert_head(table, load_table),
                    loaded_columns(table),
                    self.dblink_schema,
                    literal(self.server),
                    literal(&select),
                    self.column_definitions(table)
                ),
            )),
        }
        steps.extend(self.disconnect_steps());
        steps
    }

    /// The table and its partitions that have user triggers on the target that fire, each
    /// with those triggers and their states.
    fn enabled_triggers<'t>(
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

    fn has_constraint(&self, table: &QualifiedName, c: &Constraint) -> bool {
        self.target
            .existing_constraints
            .contains(&(table.clone(), c.name.raw().to_string()))
    }

    fn staging_ident(&self, table: &QualifiedName) -> QualifiedName {
        QualifiedName {
            schema: self.options.staging_schema.clone(),
            name: Ident::new(staging_name(table)),
        }
    }

    /// The `SELECT` the source runs for a table: loaded columns only, `FROM ONLY`. A table
    /// with no column to load (none at all, or only generated ones) still has rows to count:
    /// the source selects a constant per row, since a dblink column list cannot be empty.
    fn remote_select(&self, table: &Table) -> String {
        let only = if table.is_partitioned() { "" } else { "ONLY " };
        let columns = loaded_columns(table);
        let columns = if columns.is_empty() { "1" } else { &columns };
        format!("SELECT {columns} FROM {only}{}", table.name)
    }

    /// `AS t(<column> <exact source type>, ...)`: dblink parses each value with the declared
    /// type's input function, so the type must be the source's own. A table with no column to
    /// load reads the constant of [`UnitContext::remote_select`].
    fn column_definitions(&self, table: &Table) -> String {
        let definitions: Vec<String> = table
            .columns
            .iter()
            .filter(|c| c.is_loaded())
            .map(|c| format!("{} {}", c.name, c.type_sql))
            .collect();
        if definitions.is_empty() {
            return "snapcopy_row integer".to_string();
        }
        definitions.join(", ")
    }

    /// Brings the staging object up to date. An existing materialized view of an unchanged
    /// table is refreshed (CONCURRENTLY when it has a unique index); anything else is dropped
    /// and created. Either way a materialized view reads the source here, once, through the
    /// unit's dblink connection.
    fn staging_steps(&self, table: &Table, info: &TableInfo, i: usize) -> Vec<Step> {
        let name = self.staging_ident(&table.name);
        let existing = self.target.staging_objects.get(name.name.raw());
        let mut steps = Vec::new();
        if let Some(obj) = existing {
            if obj.kind == StagingKind::Matview
                && self.options.staging == StagingKind::Matview
                && info.action == Action::Reload
            {
                let concurrently = if obj.unique_index {
                    " CONCURRENTLY"
                } else {
                    ""
                };
                steps.push(Step::new(
                    Phase::Staging,
                    Some(i),
                    format!("REFRESH MATERIALIZED VIEW{concurrently} {name}"),
                ));
                return steps;
            }
            steps.push(Step::new(
                Phase::Staging,
                Some(i),
                match obj.kind {
                    StagingKind::View => format!("DROP VIEW {name}"),
                    StagingKind::Matview => format!("DROP MATERIALIZED VIEW {name}"),
                },
            ));
        }
        let kind = match self.options.staging {
            StagingKind::View => "VIEW",
            StagingKind::Matview => "MATERIALIZED VIEW",
        };
        steps.push(Step::new(
            Phase::Staging,
            Some(i),
            format!(
                "CREATE {kind} {name} AS SELECT * FROM {}.dblink({}, {}) AS t({})",
                self.dblink_schema,
                literal(self.server),
                literal(&self.remote_select(table)),
                self.column_definitions(table)
            ),
        ));
        if self.options.staging == StagingKind::Matview {
            if let Some(pk) = table
                .constraints
                .iter()
                .find(|c| c.kind == ConstraintKind::PrimaryKey && !c.columns.is_empty())
            {
                steps.push(Step::new(
                    Phase::Staging,
                    Some(i),
                    format!(
                        "CREATE UNIQUE INDEX ON {name} ({})",
                        pk.columns
                            .iter()
                            .map(|c| c.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        steps
    }

    /// Declares a cursor for `select` (the table's rows, or a range of them) in the source
    /// transaction, inserts from it into `into` `batch` rows at a time (the executor repeats
    /// the batch until a short one), and closes it.
    fn batched_load(
        &self,
        table: &Table,
        i: usize,
        batch: i64,
        select: &str,
        into: &QualifiedName,
    ) -> Vec<Step> {
        let dblink = self.dblink_schema;
        let conn = literal(self.server);
        let declare = format!("DECLARE snapcopy_rows NO SCROLL CURSOR FOR {select}");
        let mut fetch = Step::new(
            Phase::Batch,
            Some(i),
            format!(
                "{} SELECT {} FROM {dblink}.dblink({conn}, 'FETCH {batch} FROM snapcopy_rows') AS t({})",
                self.insert_head(table, into),
                loaded_columns(table),
                self.column_definitions(table)
            ),
        );
        fetch.batch = Some(batch as u64);
        vec![
            Step::new(
                Phase::Staging,
                Some(i),
                format!("SELECT {dblink}.dblink_exec({conn}, {})", literal(&declare)),
            ),
            fetch,
            Step::new(
                Phase::Staging,
                Some(i),
                format!("SELECT {dblink}.dblink_exec({conn}, 'CLOSE snapcopy_rows')"),
            ),
        ]
    }

    /// Adds the rows the extension marks as user data (its condition, in the remote query) to
    /// the table the extension made on the target, leaving the rows it has: those with a key
    /// the target has already are skipped (or, without a unique key, rows equal to one there).
    fn user_rows_step(&self, table: &Table, i: usize) -> Step {
        let condition = table.user_rows.as_deref().unwrap_or_default();
        let remote = format!("{} {condition}", self.remote_select(table));
        let rows = format!(
            "SELECT {} FROM {}.dblink({}, {}) AS t({})",
            loaded_columns(table),
            self.dblink_schema,
            literal(self.server),
            literal(remote.trim_end()),
            self.column_definitions(table)
        );
        let unique = table
            .constraints
            .iter()
            .any(|c| matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique))
            || table
                .indexes
                .iter()
                .any(|x| x.definition.starts_with("CREATE UNIQUE INDEX "));
        let head = self.insert_head(table, &table.name);
        Step::new(
            Phase::Data,
            Some(i),
            if unique {
                format!("{head} {rows} ON CONFLICT DO NOTHING")
            } else {
                format!(
                    "{head} {rows} EXCEPT SELECT {} FROM ONLY {}",
                    loaded_columns(table),
                    table.name
                )
            },
        )
    }

    /// `INSERT INTO <into> (<the table's loaded columns>) [OVERRIDING SYSTEM VALUE]`; without
    /// a column to load, no column list (`INSERT INTO t SELECT FROM ...` inserts empty rows).
    fn insert_head(&self, table: &Table, into: &QualifiedName) -> String {
        let overriding = if table
            .columns
            .iter()
            .any(|c| c.identity == Some(Identity::Always))
        {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        match loaded_columns(table) {
            columns if columns.is_empty() => format!("INSERT INTO {into}{overriding}"),
            columns => format!("INSERT INTO {into} ({columns}){overriding}"),
        }
    }

    /// Sets a sequence from the source's state, read through the unit's dblink connection (so
    /// in the same source transaction as the rows), but never behind the extreme value of the
    /// columns in `bounds` (tables and columns that draw from it), so that the next local
    /// insert cannot collide; with `keep_local`, never behind the target sequence's own
    /// position either (incremental mode and shared sequences move forward only). When the
    /// source's state wins it is copied as it is (`is_called` included).
    fn setval_sql(
        &self,
        seq: &Sequence,
        bounds: &[(&QualifiedName, &Ident)],
        keep_local: bool,
    ) -> String {
        let remote = format!("SELECT last_value, is_called FROM {}", seq.name);
        let inc = seq.increment;
        let (pick, agg) = if inc >= 0 {
            ("greatest", "max")
        } else {
            ("least", "min")
        };
        // Each table that draws from the sequence is a bound of its own: ONLY, so that an
        // inheritance child that does not draw from it does not count.
        let mut candidates: String = bounds
            .iter()
            .map(|(table, column)| {
                let only = if self
                    .tables
                    .iter()
                    .any(|t| &t.name == *table && t.is_partitioned())
                {
                    ""
                } else {
                    "ONLY "
                };
                format!(", (SELECT {agg}({column}) FROM {only}{table})::bigint + {inc}")
            })
            .collect();
        if keep_local {
            write!(
                candidates,
                ", (SELECT CASE WHEN is_called THEN last_value + {inc} ELSE last_value END FROM {})",
                seq.name
            )
            .unwrap();
        }
        format!(
            "SELECT CASE WHEN n.want = x.src \
             THEN pg_catalog.setval({seq_name}::regclass, s.last_value, s.is_called) \
             ELSE pg_catalog.setval({seq_name}::regclass, n.want - {inc}, true) END \
             FROM {dblink}.dblink({conn}, {remote}) AS s(last_value bigint, is_called boolean) \
             CROSS JOIN LATERAL (SELECT CASE WHEN s.is_called THEN s.last_value + {inc} \
             ELSE s.last_value END AS src) AS x \
             CROSS JOIN LATERAL (SELECT {pick}(x.src{candidates}) AS want) AS n",
            seq_name = literal(&seq.name.to_string()),
            dblink = self.dblink_schema,
            conn = literal(self.server),
            remote = literal(&remote),
        )
    }

    /// Whether a sequence is shared: called by the defaults of a table that does not own it.
    fn is_shared(&self, name: &QualifiedName) -> bool {
        self.shared.iter().any(|s| &s.sequence.name == name)
    }
}

/// The loaded columns (stored generated columns compute themselves), quoted, in order.
fn loaded_columns(table: &Table) -> String {
    table
        .columns
        .iter()
        .filter(|c| c.is_loaded())
        .map(|c| c.name.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Orders tables so that a referenced table loads before the tables that reference it (an
/// existing foreign key checks each inserted row), and an inheritance parent before its
/// children (which are made INHERITS it). Tables on a cycle keep their catalog order and are
/// returned in the second set.
fn load_order<'a>(group: &[&'a Table]) -> (Vec<&'a Table>, BTreeSet<QualifiedName>) {
    let names: BTreeSet<&QualifiedName> = group.iter().map(|t| &t.name).collect();
    let mut remaining: Vec<&Table> = group.to_vec();
    let mut ordered = Vec::new();
    let mut placed: BTreeSet<QualifiedName> = BTreeSet::new();
    loop {
        let ready = remaining.iter().position(|t| {
            let before = |other: &QualifiedName| {
                other == &t.name || !names.contains(other) || placed.contains(other)
            };
            t.inherits.iter().all(before)
                && t.constraints.iter().all(|c| match &c.kind {
                    ConstraintKind::ForeignKey { references } => before(references),
                    _ => true,
                })
        });
        match ready {
            Some(i) => {
                let t = remaining.remove(i);
                placed.insert(t.name.clone());
                ordered.push(t);
            }
            None => break,
        }
    }
    let cyclic = remaining.iter().map(|t| t.name.clone()).collect();
    ordered.extend(remaining);
    (ordered, cyclic)
}

/// The names a split table and its sequences have until its unit moves them into place.
struct LoadNames {
    table: QualifiedName,
    /// In the order of the table's sequences.
    sequences: Vec<QualifiedName>,
    /// The start of its indexes' names.
    index_tag: String,
}

/// An index of a split table built on its load table before the unit runs.
struct Prebuilt<'a> {
    /// What the index is for.
    of: PrebuiltFor<'a>,
    /// Its name until the unit names it.
    load_name: Ident,
    /// The statement that builds it on the load table.
    create: String,
}

enum PrebuiltFor<'a> {
    /// A primary key or unique constraint, added `USING INDEX` (which renames the index).
    Key(&'a Constraint),
    /// An index no constraint owns, renamed.
    Index(&'a crate::source::Index),
}

/// The indexes of a split table that can be built before its unit: primary keys and unique
/// constraints that are not deferrable (added `USING INDEX` afterwards), and plain indexes,
/// when the catalog gave their definitions in a form that can be moved to the load table.
fn prebuilt_indexes<'a>(table: &'a Table, load: &LoadNames) -> Vec<Prebuilt<'a>> {
    let keys = table.constraints.iter().filter_map(|c| {
        let body = c.index_body.as_ref()?;
        let key = matches!(c.kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique);
        (key && !c.deferrable).then_some((PrebuiltFor::Key(c), true, body))
    });
    let indexes = table.indexes.iter().filter_map(|idx| {
        let body = idx.body.as_ref()?;
        let unique = idx.definition.starts_with("CREATE UNIQUE INDEX ");
        Some((PrebuiltFor::Index(idx), unique, body))
    });
    keys.chain(indexes)
        .enumerate()
        .map(|(k, (of, unique, body))| {
            let load_name = Ident::new(format!("{} {k}", load.index_tag));
            let unique = if unique { "UNIQUE " } else { "" };
            Prebuilt {
                of,
                create: format!(
                    "CREATE {unique}INDEX {load_name} ON {} USING {body}",
                    load.table
                ),
                load_name,
            }
        })
        .collect()
}

/// How a table that keeps its inheritance parents is made.
enum Inheritance<'a> {
    /// `CREATE TABLE ... INHERITS (...)` with only what the table defines itself (its local
    /// columns and constraints): the parents' come with them. Its parents, in order.
    Declared(Vec<&'a Table>),
    /// Every column in the table's own order, then `ALTER TABLE ... INHERIT` each parent: for
    /// a table whose columns are not in the order INHERITS would give (it was attached to its
    /// parents after it was made).
    Attached,
}

impl<'a> Inheritance<'a> {
    /// How `table` is made, given every table of the run; `None` for a table of its own.
    fn of(table: &Table, tables: &'a [Table]) -> Option<Inheritance<'a>> {
        if table.inherits.is_empty() {
            return None;
        }
        let parents: Vec<&Table> = table
            .inherits
            .iter()
            .filter_map(|p| tables.iter().find(|t| &t.name == p))
            .collect();
        // INHERITS puts the parents' columns first, merged by name, then the table's own.
        let mut order: Vec<&Ident> = Vec::new();
        for column in parents
            .iter()
            .flat_map(|p| &p.columns)
            .chain(table.columns.iter().filter(|c| c.local))
        {
            if !order.contains(&&column.name) {
                order.push(&column.name);
            }
        }
        let own: Vec<&Ident> = table.columns.iter().map(|c| &c.name).collect();
        Some(if parents.len() == table.inherits.len() && order == own {
            Inheritance::Declared(parents)
        } else {
            Inheritance::Attached
        })
    }
}

/// Serial sequences, the bare table (valid CHECKs inline: cheaper than a scan afterwards),
/// sequence ownership and comments. With `load`, the table and its sequences take those names
/// and the columns no defaults (which would name the sequences where they will be, not where
/// they are); [`move_steps`] does the rest.
fn create_table_steps(
    table: &Table,
    i: usize,
    load: Option<&LoadNames>,
    inheritance: Option<&Inheritance>,
) -> Vec<Step> {
    let table_name = load.map_or(&table.name, |l| &l.table);
    let declared = match inheritance {
        Some(Inheritance::Declared(parents)) => Some(parents),
        _ => None,
    };
    let seq_name = |k: usize| load.map_or(&table.sequences[k].name, |l| &l.sequences[k]);
    // Serial sequences (identity ones come with their column), by position.
    let serials = || {
        table
            .sequences
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.identity)
    };
    let mut steps = Vec::new();
    for (k, seq) in serials() {
        steps.push(Step::new(
            Phase::PreData,
            Some(i),
            format!(
                "CREATE SEQUENCE IF NOT EXISTS {} {}",
                seq_name(k),
                seq.options_sql()
            ),
        ));
    }
    let mut lines = Vec::new();
    // With INHERITS, the columns that only come from the parents are theirs to make.
    for col in table
        .columns
        .iter()
        .filter(|c| c.local || declared.is_none())
    {
        let mut line = format!("    {} {}", col.name, col.type_sql);
        if let Some(c) = &col.collation_sql {
            write!(line, " COLLATE {c}").unwrap();
        }
        if let Some(identity) = col.identity {
            let seq = table
                .sequences
                .iter()
                .enumerate()
                .find(|(_, s)| s.identity && s.column == col.name);
            write!(
                line,
                " GENERATED {} AS IDENTITY",
                match identity {
                    Identity::Always => "ALWAYS",
                    Identity::ByDefault => "BY DEFAULT",
                }
            )
            .unwrap();
            if let Some((k, seq)) = seq {
                write!(
                    line,
                    " (SEQUENCE NAME {} {})",
                    seq_name(k),
                    seq.options_sql()
                        .trim_start_matches(&format!("AS {} ", seq.data_type))
                )
                .unwrap();
            }
        }
        if let Some(g) = &col.generated_sql {
            write!(line, " GENERATED ALWAYS AS ({g}) STORED").unwrap();
        }
        if let Some(d) = col.default_sql.as_ref().filter(|_| load.is_none()) {
            write!(line, " DEFAULT {d}").unwrap();
        }
        if col.not_null {
            line.push_str(" NOT NULL");
        }
        lines.push(line);
    }
    for c in &table.constraints {
        if c.kind == ConstraintKind::Check && c.validated && (c.local || declared.is_none()) {
            lines.push(format!("    CONSTRAINT {} {}", c.name, c.definition));
        }
    }
    let partition_by = partition_clause(table);
    let inherits = match declared {
        Some(_) => format!(
            " INHERITS ({})",
            table
                .inherits
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    };
    steps.push(Step::new(
        Phase::PreData,
        Some(i),
        format!(
            "CREATE TABLE {table_name} (\n{}\n){inherits}{partition_by}",
            lines.join(",\n")
        ),
    ));
    match inheritance {
        // What the table changed on a column it inherits: its default, NOT NULL.
        Some(Inheritance::Declared(parents)) => {
            for col in table.columns.iter().filter(|c| !c.local) {
                let from_parent = parents
                    .iter()
                    .find_map(|p| p.columns.iter().find(|c| c.name == col.name));
                let (default, not_null) = from_parent
                    .map(|c| (c.default_sql.as_ref(), c.not_null))
                    .unwrap_or_default();
                let alter = |what: String| {
                    Step::new(
                        Phase::PreData,
                        Some(i),
                        format!(
                            "ALTER TABLE ONLY {table_name} ALTER COLUMN {} {what}",
                            col.name
                        ),
                    )
                };
                if col.default_sql.as_ref() != default && col.generated_sql.is_none() {
                    steps.push(alter(match &col.default_sql {
                        Some(d) => format!("SET DEFAULT {d}"),
                        None => "DROP DEFAULT".to_string(),
                    }));
                }
                if col.not_null && !not_null {
                    steps.push(alter("SET NOT NULL".to_string()));
                }
            }
        }
        // Columns made in the table's own order, then attached to the parents.
        Some(Inheritance::Attached) => {
            for parent in &table.inherits {
                steps.push(Step::new(
                    Phase::PreData,
                    Some(i),
                    format!("ALTER TABLE {table_name} INHERIT {parent}"),
                ));
            }
        }
        None => {}
    }
    // Partitions take their columns from the parent; parents come before their children.
    for part in &table.partitions {
        let Some((parent, bound)) = &part.partition_of else {
            continue;
        };
        let sub = partition_clause(part);
        steps.push(Step::new(
            Phase::PreData,
            Some(i),
            format!(
                "CREATE TABLE {} PARTITION OF {parent} {bound}{sub}",
                part.name
            ),
        ));
        if let Some(comment) = &part.comment {
            steps.push(Step::new(
                Phase::PreData,
                Some(i),
                format!("COMMENT ON TABLE {} IS {}", part.name, literal(comment)),
            ));
        }
    }
    for (k, seq) in serials() {
        steps.push(Step::new(
            Phase::PreData,
            Some(i),
            format!(
                "ALTER SEQUENCE {} OWNED BY {table_name}.{}",
                seq_name(k),
                seq.column
            ),
        ));
    }
    if let Some(comment) = &table.comment {
        steps.push(Step::new(
            Phase::PreData,
            Some(i),
            format!("COMMENT ON TABLE {table_name} IS {}", literal(comment)),
        ));
    }
    for col in &table.columns {
        if let Some(comment) = &col.comment {
            steps.push(Step::new(
                Phase::PreData,
                Some(i),
                format!(
                    "COMMENT ON COLUMN {table_name}.{} IS {}",
                    col.name,
                    literal(comment)
                ),
            ));
        }
    }
    steps
}

/// Moves a split table's load table into place under the table's name, its sequences
/// with it, and gives its columns their defaults (which may name those sequences).
fn move_steps(table: &Table, i: usize, load: &LoadNames) -> Vec<Step> {
    let moved = |name: &QualifiedName| QualifiedName {
        schema: table.name.schema.clone(),
        name: name.name.clone(),
    };
    let mut steps = vec![
        Step::new(
            Phase::PreData,
            Some(i),
            format!(
                "ALTER TABLE {} SET SCHEMA {}",
                load.table, table.name.schema
            ),
        ),
        Step::new(
            Phase::PreData,
            Some(i),
            format!(
                "ALTER TABLE {} RENAME TO {}",
                moved(&load.table),
                table.name.name
            ),
        ),
    ];
    for (seq, loaded) in table.sequences.iter().zip(&load.sequences) {
        steps.push(Step::new(
            Phase::PreData,
            Some(i),
            format!(
                "ALTER SEQUENCE {} RENAME TO {}",
                moved(loaded),
                seq.name.name
            ),
        ));
    }
    for col in &table.columns {
        if let Some(d) = &col.default_sql {
            steps.push(Step::new(
                Phase::PreData,
                Some(i),
                format!(
                    "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {d}",
                    table.name, col.name
                ),
            ));
        }
    }
    // The load table's marker gives way to the source's comment.
    steps.push(Step::new(
        Phase::PreData,
        Some(i),
        format!(
            "COMMENT ON TABLE {} IS {}",
            table.name,
            table.comment.as_deref().map_or("NULL".to_string(), literal)
        ),
    ));
    steps
}

/// A new table's user triggers (and its partitions' own), once its rows are in, each set to
/// the state it has on the source.
fn trigger_steps(table: &Table, i: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    for t in std::iter::once(table).chain(&table.partitions) {
        for trigger in &t.triggers {
            steps.push(Step::new(
                Phase::Triggers,
                Some(i),
                trigger.definition.clone(),
            ));
            if trigger.state != TriggerState::Enabled {
                steps.push(Step::new(
                    Phase::Triggers,
                    Some(i),
                    format!(
                        "ALTER TABLE ONLY {} {}",
                        t.name,
                        trigger.state.action(&trigger.name)
                    ),
                ));
            }
        }
    }
    steps
}

/// ` PARTITION BY <key>` for a partitioned table, nothing otherwise.
fn partition_clause(table: &Table) -> String {
    table
        .partition_by
        .as_ref()
        .map(|key| format!(" PARTITION BY {key}"))
        .unwrap_or_default()
}

/// After the rows: primary key, unique and exclusion constraints, NOT VALID checks (they stay
/// NOT VALID), then every other index. Keys and indexes in `prebuilt` exist already under a
/// load name: keys are added `USING INDEX`, indexes renamed.
fn post_data_steps(
    table: &Table,
    i: usize,
    prebuilt: &[Prebuilt],
    inheritance: Option<&Inheritance>,
) -> Vec<Step> {
    // Constraints that come from inheritance parents were made with the table.
    let from_parents =
        |c: &Constraint| !c.local && matches!(inheritance, Some(Inheritance::Declared(_)));
    let key_index = |c: &Constraint| {
        prebuilt.iter().find_map(|p| match p.of {
            PrebuiltFor::Key(k) if k.name == c.name => Some(&p.load_name),
            _ => None,
        })
    };
    let index_name = |idx: &crate::source::Index| {
        prebuilt.iter().find_map(|p| match p.of {
            PrebuiltFor::Index(x) if x.name == idx.name => Some(&p.load_name),
            _ => None,
        })
    };
    let rank = |k: &ConstraintKind| match k {
        ConstraintKind::PrimaryKey => 0,
        ConstraintKind::Unique => 1,
        ConstraintKind::Exclude => 2,
        ConstraintKind::Check => 3,
        ConstraintKind::ForeignKey { .. } => 4,
    };
    let mut steps = Vec::new();
    // The parent's constraints and indexes first: on a partitioned table they recurse into
    // every partition. Then what partitions have of their own (their CHECKs too: a partition
    // is created without a column list, so it has no inline constraints).
    let members = std::iter::once((table, false)).chain(table.partitions.iter().map(|p| (p, true)));
    for (t, is_partition) in members {
        let mut constraints: Vec<_> = t
            .constraints
            .iter()
            .filter(|c| is_partition || !from_parents(c))
            .filter(|c| match c.kind {
                ConstraintKind::Check => is_partition || !c.validated,
                ConstraintKind::ForeignKey { .. } => false,
                _ => true,
            })
            .collect();
        constraints.sort_by_key(|c| rank(&c.kind));
        steps.extend(constraints.into_iter().map(|c| {
            let sql = match key_index(c) {
                Some(index) => format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {} USING INDEX {index}",
                    t.name,
                    c.name,
                    if c.kind == ConstraintKind::PrimaryKey {
                        "PRIMARY KEY"
                    } else {
                        "UNIQUE"
                    }
                ),
                None => format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} {}",
                    t.name, c.name, c.definition
                ),
            };
            Step::new(Phase::PostData, Some(i), sql)
        }));
        steps.extend(t.indexes.iter().map(|idx| {
            // pg_get_indexdef says ON ONLY for a partitioned parent's index; without ONLY the
            // index is built on every partition too, once, as on the source.
            let sql = match index_name(idx) {
                Some(built) => format!(
                    "ALTER INDEX {}.{built} RENAME TO {}",
                    t.name.schema, idx.name
                ),
                None if t.is_partitioned() => idx.definition.replacen(" ON ONLY ", " ON ", 1),
                None => idx.definition.clone(),
            };
            Step::new(Phase::PostData, Some(i), sql)
        }));
    }
    steps
}

impl fmt::Display for Plan {
    /// The dry run: SQL a person can read, and run by hand, in execution order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "-- setup, in one transaction")?;
        writeln!(f, "BEGIN;")?;
        for step in &self.setup {
            writeln!(f, "{};", step.shown)?;
        }
        writeln!(f, "COMMIT;")?;
        for (name, reason) in &self.refused {
            writeln!(f, "\n-- {} is not copied: {reason}", name.human())?;
        }
        for (n, unit) in self.units.iter().enumerate() {
            let names: Vec<String> = unit
                .tables
                .iter()
                .map(|t| {
                    format!(
                        "{} ({})",
                        t.name.human(),
                        match t.action {
                            Action::Create => "create",
                            Action::Reload => "reload",
                            Action::Rebuild => "rebuild",
                            Action::Insert => "insert missing rows",
                            Action::UserRows => "add the extension's user rows",
                        }
                    )
                })
                .collect();
            writeln!(f, "\n-- unit {}: {}", n + 1, names.join(", "))?;
            for split in &unit.splits {
                let table = &unit.tables[split.table];
                writeln!(
                    f,
                    "-- {} first, in {} ranges at once (a session and a transaction each) into \
                     {}; the unit moves it into place",
                    table.name.human(),
                    split.ranges.len(),
                    split.load_table
                )?;
                for (k, range) in split.ranges.iter().enumerate() {
                    writeln!(f, "-- range {} of {}", k + 1, split.ranges.len())?;
                    write_steps(f, range)?;
                }
                if !split.indexes.is_empty() {
                    writeln!(
                        f,
                        "-- then its indexes on the load table, at once, a session each"
                    )?;
                    for step in &split.indexes {
                        writeln!(f, "{};", step.shown)?;
                    }
                }
            }
            if !unit.splits.is_empty() {
                writeln!(f, "-- the unit, once every range has committed")?;
            }
            write_steps(f, &unit.steps)?;
            if unit.steps.iter().any(|s| s.phase == Phase::TableStart) {
                writeln!(
                    f,
                    "-- if a statement between a table's SAVEPOINT and RELEASE fails, that table \
                     alone is undone (and not copied), and the unit goes on:\n{};",
                    unit.undo_table
                )?;
            }
            for split in &unit.splits {
                writeln!(f, "-- if the unit does not commit:\n{};", split.discard)?;
            }
        }
        Ok(())
    }
}

/// Statements of one session, with the transaction they run in.
fn write_steps(f: &mut fmt::Formatter<'_>, steps: &[Step]) -> fmt::Result {
    let mut in_transaction = false;
    for step in steps {
        let inside = !matches!(step.phase, Phase::Connect | Phase::Disconnect);
        if inside && !in_transaction {
            writeln!(f, "BEGIN;")?;
            in_transaction = true;
        }
        if !inside && in_transaction {
            writeln!(f, "COMMIT;")?;
            in_transaction = false;
        }
        if step.phase == Phase::Batch {
            writeln!(f, "-- repeated until it inserts fewer rows than it fetches")?;
        }
        if step.phase == Phase::Record {
            writeln!(
                f,
                "-- $1 rows inserted, $2 rows skipped, $3 pushed down, $4 highest key read"
            )?;
        }
        writeln!(f, "{};", step.shown)?;
    }
    if in_transaction {
        writeln!(f, "COMMIT;")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
