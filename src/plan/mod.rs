//! The plan: every statement a run will send to the target, decided up front.
//!
//! [`plan`] is a pure function of the source [`Catalog`], the [`TargetState`] and the options;
//! it does no I/O, so it is snapshot-tested and printed as the dry run (`snapcopy plan`).
//! Execution ([`crate::exec`]) runs what the plan says and decides nothing.
//!
//! A plan has a setup (one transaction: the link, the staging schema, the foreign server, the
//! types) and units. A unit is a group of tables joined by foreign keys; it runs in one target
//! transaction, reading the source through one link connection in one source transaction, so
//! its tables change together or not at all. What happens to the rows of a table that already
//! exists is the refresh mode's business ([`refresh`]).
//!
//! One module per part of the decision: `decide` gives each table its action and the reason;
//! `graph` groups tables by foreign keys and orders them; `unit` orders a unit's statements,
//! which `ddl` (definitions), `rows` (staging objects and row SQL, a `match` on the action),
//! `split` (ranges of a large new table), `reindex` (keys built after a large reload's rows) and
//! `sequences` write; `data_only` decides and shapes loads into the user's own tables; `setup`
//! writes what runs once before the units; `link` says how the target server reads the source
//! (dblink, postgres_fdw); `step` is what a plan is made of; `render` prints it as the dry run.

mod compare;
mod data_only;
mod ddl;
mod decide;
mod graph;
mod key_checks;
mod link;
mod refresh;
mod reindex;
mod render;
mod rows;
mod sequences;
mod setup;
mod split;
mod step;
mod subset;
mod sync;
mod unit;

use std::collections::{BTreeMap, BTreeSet};

pub use crate::target::{ExtensionState, StagingObject, TargetState};
pub use link::PROXY_MARKER;
pub use refresh::{Full, Incremental, Refresh, Sync};
pub use step::{
    Action, Bounds, Branch, Build, Builds, Phase, Plan, Purpose, Pushdown, Range, Split, Step,
    StepKind, TableInfo, TableIx, Unit,
};
pub use subset::{conditions as subset_conditions, resolve_filters, RowFilter};

use crate::cli::{LinkKind, Mode, StagingKind};
use crate::conninfo::ConnInfo;
use crate::source::{Catalog, Requirement, Table};
use crate::sql::{truncate_bytes, Ident, QualifiedName};
use crate::target::registry;
use decide::{decide, Decided};
use unit::UnitContext;

/// Choices that shape the SQL.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Refresh mode.
    pub mode: Mode,
    /// Staging object kind.
    pub staging: StagingKind,
    /// How the target server reads the source.
    pub link_kind: LinkKind,
    /// What columns become before they leave the source.
    pub masks: crate::mask::Masks,
    /// Row filters: each filtered table's condition, evaluated on the source (the rows of the
    /// tables that reference it follow; see `subset`).
    pub filters: BTreeMap<QualifiedName, String>,
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
    /// Load rows into the target's own tables (see `decide::data_only`), never changing them.
    pub data_only: bool,
    /// With `data_only`: create the chosen tables the target lacks, as managed tables.
    pub create_missing: bool,
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
    /// Where the source's transactions stood at the run's snapshot: recorded for the tables
    /// the run reads whole, and compared with the mark each table's last run recorded.
    pub mark: Option<crate::source::ChangeMark>,
}

/// The default batch: large enough that the per-batch overhead is small, small enough to bound
/// the target's temp space and to report progress every second or so.
pub const DEFAULT_BATCH_BYTES: i64 = 32 * 1024 * 1024;

/// The default size from which a table is split: below it, the sessions are better used on
/// other tables, and the split's own cost (one session per range) is not worth a few seconds.
pub const DEFAULT_SPLIT_BYTES: i64 = 256 * 1024 * 1024;

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
    let link = link::link_for(options, &server, target.dblink_schema.as_ref());
    let registry = registry::table(staging_schema);
    let sync = Sync {
        link: options.link_kind,
    };
    let mode: &dyn Refresh = match options.mode {
        Mode::Full => &Full,
        Mode::Incremental => &Incremental,
        Mode::Sync => &sync,
    };

    let subsets = subset::conditions(&catalog.tables, &options.filters);
    let Decided {
        accepted,
        refused,
        warnings,
    } = decide(catalog, target, options, mode, &subsets);
    let mut plan = Plan {
        setup: Vec::new(),
        units: Vec::new(),
        refused,
        warnings,
        link: options.link_kind,
    };

    // What only refused tables need is not made, nor what the user's own tables would need
    // to be made (data-only loads: they need none).
    let needed: BTreeSet<&Requirement> = accepted.iter().flat_map(|(t, _)| &t.requires).collect();
    let skip: BTreeSet<Requirement> = catalog
        .tables
        .iter()
        .flat_map(|t| t.requires.iter())
        .filter(|r| !needed.contains(r))
        .cloned()
        .collect();
    let tables: Vec<Table> = accepted.iter().map(|(t, _)| t.clone()).collect();
    let reached: Vec<&Table> = tables.iter().collect();
    plan.setup = setup::setup_steps(catalog, target, options, link.as_ref(), &skip, &reached);

    let ctx = UnitContext {
        options,
        target,
        mode,
        link: link.as_ref(),
        subsets: &subsets,
        registry: &registry,
        shared: &catalog.sequences,
        tables: &tables,
    };
    let mut units: Vec<(i64, Unit)> = Vec::new();
    for group in graph::foreign_key_groups(&tables) {
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

#[cfg(test)]
mod tests;
