//! What a plan is made of: the plan, its units and split tables, what happens to each table,
//! and the statements with where they run.

use crate::source::Requirement;
use crate::sql::QualifiedName;

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
    /// How the target server reads the source.
    pub link: crate::cli::LinkKind,
}

impl Plan {
    /// The tables whose units read the rows written since a transaction id, which the run's
    /// probe may answer for (see [`crate::source::Probe`]).
    pub fn probed(&self) -> Vec<crate::source::Probed> {
        self.units
            .iter()
            .flat_map(|u| &u.steps)
            .filter_map(|s| match &s.kind {
                StepKind::InsertMissing { probed } => probed.clone(),
                _ => None,
            })
            .collect()
    }
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
    /// New tables that helper sessions may build while the unit loads the others.
    pub builds: Builds,
}

/// New tables of a unit that helper sessions build at the same time as the unit, each into a
/// load table in a transaction of its own (made, loaded in the run's snapshot, indexed,
/// committed), which the unit then moves into place: a unit of hundreds of small tables (all
/// tied to one hub by foreign keys) is otherwise one session's work, statement after
/// statement. The unit takes the tables from the front of the list as it reaches them
/// ([`StepKind::Claim`]: then it makes and loads the table itself, as usual), the helpers from
/// the back; what a helper built, the unit moves in after its own tables
/// ([`StepKind::Built`]). Each table still appears in the unit's transaction, with all its
/// rows or not at all: a unit that does not commit drops the load tables, and a table whose
/// build failed fails alone, as one whose block failed does.
#[derive(Debug, Clone, Default)]
pub struct Builds {
    /// The tables, in the unit's load order.
    pub tables: Vec<Build>,
    /// How many helper sessions to start at most (one of them per `jobs` session left).
    pub helpers: usize,
    /// What a helper runs before its first table (the link's connection, in the run's
    /// snapshot) and after its last.
    pub connect: Vec<Step>,
    pub disconnect: Vec<Step>,
}

/// One table a helper session may build.
#[derive(Debug, Clone)]
pub struct Build {
    /// The table.
    pub table: TableIx,
    /// Its load table made, loaded and indexed, in a transaction of its own.
    pub steps: Vec<Step>,
    /// Drops the load table (that of a unit that did not commit, or of a table that failed).
    pub discard: String,
}

impl Unit {
    /// The statements that drop the load tables of the unit's split and built tables, with
    /// their tables.
    pub fn discards(&self) -> impl Iterator<Item = (TableIx, &str)> {
        let splits = self.splits.iter().map(|s| (s.table, s.discard.as_str()));
        splits.chain(
            self.builds
                .tables
                .iter()
                .map(|b| (b.table, b.discard.as_str())),
        )
    }
}

/// A large table loaded by several sessions at once, each reading one range of its rows in
/// the run's snapshot and committing it into a load table: the table as the catalog describes
/// it, made by the setup in the staging schema under a load name. The unit's transaction then
/// moves the load table into place, renames it and builds its keys, so the table appears with
/// all its rows or not at all; a unit that does not commit drops the load table.
#[derive(Debug, Clone)]
pub struct Split {
    /// The table.
    pub table: TableIx,
    /// The load table.
    pub load_table: QualifiedName,
    /// Its ranges, each loaded in a session and a transaction of its own.
    pub ranges: Vec<Range>,
    /// Index builds on the load table, each in a session of its own once every range has
    /// committed: the unit then adds keys `USING INDEX` and renames the others, instead of
    /// building them one after another in its transaction.
    pub indexes: Vec<Step>,
    /// Drops the load table and the rows the ranges put in it.
    pub discard: String,
    /// A reload in parts: the unit loads the first range itself and copies the others' rows
    /// from the load table (a [`StepKind::Merge`] step waits for them), instead of moving a
    /// new table into place.
    pub merged: bool,
}

/// One range of a split table's rows.
#[derive(Debug, Clone)]
pub struct Range {
    /// The rows it holds.
    pub bounds: Bounds,
    /// Its statements, for a session and a transaction of its own.
    pub steps: Vec<Step>,
}

/// Where a range of a split table starts and ends, in values of the column it divides (SQL
/// literals): the first range has no lower bound and the last no upper one, so that a row
/// outside the bounds read is never missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// The column, quoted (`"id"`, or `ctid` for ranges of blocks).
    pub column: String,
    /// Its first value in the range.
    pub lower: Option<String>,
    /// The first value after the range.
    pub upper: Option<String>,
}

impl Bounds {
    /// The condition the source's query gets.
    pub fn predicate(&self) -> String {
        let column = &self.column;
        match (&self.lower, &self.upper) {
            (None, Some(u)) => format!("{column} < {u}"),
            (Some(l), Some(u)) => format!("{column} >= {l} AND {column} < {u}"),
            (Some(l), None) => format!("{column} >= {l}"),
            (None, None) => "true".to_string(),
        }
    }
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
    /// What its rows weigh on the source (table and TOAST), for progress in MB/s.
    pub estimated_bytes: i64,
    /// For a split table: how many ranges of what (`2 ranges of id`).
    pub split: Option<String>,
    /// How the target server reads its rows.
    pub link: crate::cli::LinkKind,
    /// Whether a row filter limits its rows (its own, or one that reached it through foreign
    /// keys).
    pub subset: bool,
    /// Loaded into the user's own table (`--data-only`), whose definition snapcopy leaves as
    /// it is.
    pub data_only: bool,
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
    /// snapcopy made it before and nothing on the target needs its identity (its oid): load
    /// a new table, split across sessions as a first copy is, and swap it in for the old one
    /// in the unit's transaction (full mode; see `UnitContext::replaces`). The user sees a
    /// reload.
    #[serde(rename = "reload")]
    Replace,
    /// Insert the rows whose key is missing (incremental mode).
    Insert,
    /// Insert, update and delete the rows that differ from the source's (sync mode).
    Sync,
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
    /// Hashes of these key columns are compared on both servers; only the missing rows travel
    /// (see `plan::compare`).
    KeyHashes(Vec<crate::sql::Ident>),
    /// Only the rows written on the source since the table's last run travel: those whose
    /// `xmin` is at or after this transaction id (see [`crate::source::ChangeMark`]).
    Since(u32),
}

impl TableInfo {
    /// What the summary says besides the numbers: why a table was rebuilt, what changed, the
    /// pushdown used, how it was split.
    pub fn note(&self) -> String {
        let mut parts: Vec<String> = self.reason.iter().cloned().collect();
        if self.subset {
            parts.push("a subset (--where)".to_string());
        }
        if !self.changes.is_empty() {
            parts.push(format!("source changed: {}", self.changes.join("; ")));
        }
        match &self.pushdown {
            Some(Pushdown::Above(c)) => {
                parts.push(format!("{} {} last copy's max", c.column.raw(), c.operator))
            }
            Some(Pushdown::AllKeys) => parts.push("all keys compared".to_string()),
            Some(Pushdown::KeyHashes(_)) => parts.push("key hashes compared".to_string()),
            Some(Pushdown::Since(_)) => parts.push("rows written since the last run".to_string()),
            None => {}
        }
        if let Some(split) = &self.split {
            parts.push(format!("loaded in {split} at once"));
        }
        parts.join("; ")
    }

    /// Whether only new rows were read from the source.
    pub fn pushed_down(&self) -> bool {
        matches!(
            self.pushdown,
            Some(Pushdown::Above(_) | Pushdown::KeyHashes(_) | Pushdown::Since(_))
        )
    }

    /// Whether a source row that was read but not inserted means that a local row took its
    /// key. (Rows written since the last run include rows updated on the source, which the
    /// target has already.)
    pub fn skips_mean_collisions(&self) -> bool {
        matches!(
            self.pushdown,
            Some(Pushdown::Above(_) | Pushdown::KeyHashes(_))
        )
    }
}

/// An action's words, one for each place that names it.
struct Words {
    /// In the dry run: `create`.
    planned: &'static str,
    /// On a progress line, before the table's name: `copying`.
    doing: &'static str,
    /// In the summary: `created`.
    done: &'static str,
}

impl Action {
    fn words(self) -> Words {
        let (planned, doing, done) = match self {
            Action::Create => ("create", "copying", "created"),
            Action::Reload => ("reload", "reloading", "reloaded"),
            Action::Rebuild => ("rebuild", "rebuilding", "rebuilt"),
            Action::Replace => ("reload", "reloading", "reloaded"),
            Action::Insert => ("insert missing rows", "adding missing rows to", "inserted"),
            Action::Sync => ("sync", "syncing", "synced"),
            Action::UserRows => (
                "add the extension's user rows",
                "adding user rows to",
                "user rows added",
            ),
        };
        Words {
            planned,
            doing,
            done,
        }
    }

    /// What the dry run says will happen.
    pub fn planned_word(self) -> &'static str {
        self.words().planned
    }

    /// What a progress line says is happening, before the table's name.
    pub fn doing_word(self) -> &'static str {
        self.words().doing
    }

    /// The past-tense word the summary uses.
    pub fn done_word(self) -> &'static str {
        self.words().done
    }

    /// Whether the table is (re)created from the catalog in this run.
    pub fn creates(self) -> bool {
        matches!(self, Action::Create | Action::Rebuild | Action::Replace)
    }

    /// Whether the table the target has goes, and a new one takes its place.
    pub fn drops(self) -> bool {
        matches!(self, Action::Rebuild | Action::Replace)
    }
}

/// Index of a table in its unit's `tables`: how steps, splits and outcomes name a table of
/// their unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableIx(pub usize);

impl<T> std::ops::Index<TableIx> for [T] {
    type Output = T;

    fn index(&self, ix: TableIx) -> &T {
        &self[ix.0]
    }
}

impl<T> std::ops::IndexMut<TableIx> for [T] {
    fn index_mut(&mut self, ix: TableIx) -> &mut T {
        &mut self[ix.0]
    }
}

impl<T> std::ops::Index<TableIx> for Vec<T> {
    type Output = T;

    fn index(&self, ix: TableIx) -> &T {
        &self[ix.0]
    }
}

impl<T> std::ops::IndexMut<TableIx> for Vec<T> {
    fn index_mut(&mut self, ix: TableIx) -> &mut T {
        &mut self[ix.0]
    }
}

/// Where a statement belongs in a unit. `Connect` runs before the target transaction opens and
/// `Disconnect` after it ends; everything else runs inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Schemas, extensions, the foreign server, types (setup only).
    Setup,
    /// Open the link's connection and its read-only source transaction (dblink: in the run's
    /// snapshot
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
    /// The rows (see [`StepKind`] for how they are counted).
    Data,
    /// Primary keys, unique and exclusion constraints, indexes.
    PostData,
    /// Foreign keys, last.
    ForeignKeys,
    /// User triggers, once the rows are in: created on new tables, turned back on as they were
    /// on existing ones (turned off, in `Truncate`, so that they never fire on the load).
    Triggers,
    /// Sequences set from the source, never below the table's max.
    Sequences,
    /// The registry row.
    Record,
    /// End the source transaction and close the link's connection.
    Disconnect,
}

impl Phase {
    /// What a statement of the phase does, in the words of an error line
    /// (`error: public.orders (loading its rows): ...`).
    pub fn doing(self) -> &'static str {
        match self {
            Phase::Setup => "setting up the target",
            Phase::Connect => "connecting to the source",
            Phase::Truncate => "emptying it for the reload",
            Phase::TableStart | Phase::TableEnd => "marking its block",
            Phase::PreData => "creating it",
            Phase::Staging => "making its staging object",
            Phase::Data => "loading its rows",
            Phase::PostData => "building its keys and indexes",
            Phase::ForeignKeys => "adding its foreign keys",
            Phase::Triggers => "restoring its triggers",
            Phase::Sequences => "setting its sequences",
            Phase::Record => "recording it in the registry",
            Phase::Disconnect => "disconnecting from the source",
        }
    }
}

/// How a statement runs and what its result tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// Runs as it is; its result tells nothing.
    Statement,
    /// `INSERT ... SELECT` of a table's rows; the command tag counts them.
    Rows,
    /// One batch of rows from a cursor, run again until it inserts fewer than `size` rows.
    Batch {
        /// The rows one run asks for.
        size: u64,
    },
    /// The missing rows (incremental): returns rows read, rows inserted, the new high-water
    /// mark. With `probed` (rows written since a transaction), the run's probe may have found
    /// none written, and the statement is not run (see [`crate::source::Probe`]).
    InsertMissing {
        /// The table and the transaction id its rows are read since.
        probed: Option<crate::source::Probed>,
    },
    /// The rows the other ranges of a table reloaded in parts put in its load table, copied
    /// into the table once those ranges have committed (the executor waits for them); the
    /// command tag counts them, added to the rows the unit loaded itself.
    Merge,
    /// The rows of several tables in one statement (a cycle of foreign keys that cannot wait):
    /// returns rows read, rows inserted and the new high-water mark of each, in this order.
    Together {
        /// The tables, in the order of the results.
        tables: Vec<TableIx>,
    },
    /// Part of a table's sync (see `plan::sync`): returns keys taken, ranges compared, ranges
    /// that differed, rows inserted, updated and deleted, and bytes read from the source, each
    /// an `int8`, added to the table's counts. With `batch`, it runs again until it takes
    /// fewer keys than that.
    Synced {
        /// The keys one run takes.
        batch: Option<u64>,
    },
    /// Where the unit reaches a table helper sessions may build (see [`Builds`]): the unit
    /// takes the table unless a helper has, and then runs the table's [`Branch::Own`]
    /// statements; no SQL.
    Claim,
    /// Where the unit moves in a table a helper built: it waits for the build, whose failure
    /// fails the table alone, then runs the table's [`Branch::Moved`] statements; no SQL.
    Built,
    /// The registry row; `$1` rows loaded, `$2` rows skipped, `$3` pushed down, `$4` the
    /// source's time of the run's snapshot, `$5` the high-water mark read, `$6` how many rows
    /// the table gained (sync).
    Record,
    /// A statement that reaches a secret: `settings` are bound (as parameters, into
    /// transaction-local settings) before it runs, so that the secret is part of no
    /// statement's text, and `shown` is what the dry run and logs print instead of it.
    Secret {
        /// The statement as a person may see it, the secret masked.
        shown: String,
        /// Setting names and values, bound before the statement runs.
        settings: Vec<(String, String)>,
    },
}

/// One statement.
#[derive(Debug, Clone)]
pub struct Step {
    /// Where it runs.
    pub phase: Phase,
    /// The table of the unit it is about, if any.
    pub table: Option<TableIx>,
    /// The SQL sent to the server.
    pub sql: String,
    /// How it runs.
    pub kind: StepKind,
    /// A comment the dry run prints above it.
    pub note: Option<String>,
    /// What the statement is for, when its failure needs words of its own.
    pub purpose: Purpose,
    /// Another table of the unit the statement involves (a foreign key's referenced table),
    /// and what the statement makes, for the warning when it is skipped because that table
    /// failed.
    pub also: Option<(TableIx, String)>,
    /// For a table helper sessions may build: whether the statement runs when the unit made
    /// the table itself, or when a helper did (see [`Builds`]).
    pub branch: Option<Branch>,
}

/// Which way a table helper sessions may build came into the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// The unit took it ([`StepKind::Claim`]) and makes it as any other new table.
    Own,
    /// A helper built it, and the unit moves it into place ([`StepKind::Built`]).
    Moved,
}

/// Setup statements whose failure has a cause of its own to explain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Purpose {
    /// Nothing special.
    #[default]
    Other,
    /// `CREATE EXTENSION` of an extension snapcopy itself needs (the link's).
    Extension(String),
    /// Making something tables need: only those tables are refused when it fails.
    Prerequisite(Requirement),
    /// Making something one table needs (a split table's load table): only it is refused.
    ForTable(QualifiedName),
    /// The target server's first connection to the source through the link.
    LinkCheck(crate::cli::LinkKind),
}

impl Step {
    /// A plain statement.
    pub fn new(phase: Phase, table: Option<TableIx>, sql: String) -> Step {
        Step {
            phase,
            table,
            sql,
            kind: StepKind::Statement,
            note: None,
            purpose: Purpose::Other,
            also: None,
            branch: None,
        }
    }

    /// The statement run the way `kind` says.
    pub(super) fn of_kind(self, kind: StepKind) -> Step {
        Step { kind, ..self }
    }

    /// The statement with a purpose its failure is explained by.
    pub(super) fn with_purpose(self, purpose: Purpose) -> Step {
        Step { purpose, ..self }
    }

    /// The statement with a comment for the dry run.
    pub(super) fn with_note(self, note: String) -> Step {
        Step {
            note: Some(note),
            ..self
        }
    }

    /// The statement as the dry run, logs and error messages show it: a secret masked.
    pub fn text(&self) -> &str {
        match &self.kind {
            StepKind::Secret { shown, .. } => shown,
            _ => &self.sql,
        }
    }

    /// The settings to bind before the statement runs.
    pub fn settings(&self) -> &[(String, String)] {
        match &self.kind {
            StepKind::Secret { settings, .. } => settings,
            _ => &[],
        }
    }
}
