//! What the target has, read before planning: dblink, the staging objects and which link made
//! them, which chosen tables
//! exist (with their constraints, triggers and inheritance children), and which of the types,
//! extensions, collations and functions the tables need are there. Only reads (`snapcopy plan`
//! calls it too); each query lives in `sql/`, one a file.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use super::registry::Managed;
use crate::cli::StagingKind;
use crate::plan::staging_name;
use crate::source::{Catalog, ChangeMark, ConstraintKind, Shape, Table, TriggerState};
use crate::sql::{Ident, QualifiedName};

/// What the target already has, as the plan needs to know it.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    /// The schema holding the dblink functions, when the extension is installed.
    pub dblink_schema: Option<Ident>,
    /// Tables snapcopy created (its registry in the staging schema), with the source shape
    /// recorded at their last refresh.
    pub managed: BTreeMap<QualifiedName, Option<Shape>>,
    /// Which of the chosen tables exist on the target.
    pub existing_tables: BTreeSet<QualifiedName>,
    /// Objects in the staging schema, by raw name.
    pub staging_objects: BTreeMap<String, StagingObject>,
    /// The needed types that exist on the target, with their labels in sort order when they
    /// are enums (empty for other types).
    pub existing_types: BTreeMap<QualifiedName, Vec<String>>,
    /// Constraint names present on the chosen tables that exist on the target.
    pub existing_constraints: BTreeSet<(QualifiedName, String)>,
    /// What the target can do about each extension the tables need (absent: it can create
    /// it).
    pub extensions: BTreeMap<String, ExtensionState>,
    /// The needed collations that exist on the target.
    pub existing_collations: BTreeSet<QualifiedName>,
    /// The needed functions that exist on the target, by [`crate::source::Function::key`].
    pub existing_functions: BTreeSet<String>,
    /// The user triggers of the chosen tables (and their partitions) that exist on the
    /// target, with their states: a load into an existing table turns them off and back on.
    pub triggers: BTreeMap<QualifiedName, Vec<(Ident, TriggerState)>>,
    /// The inheritance children each chosen table has on the target (dropping a parent with
    /// CASCADE would drop them).
    pub children: BTreeMap<QualifiedName, Vec<QualifiedName>>,
    /// The link each managed table's staging object was made through.
    pub links: BTreeMap<QualifiedName, String>,
    /// The high-water mark each managed table's last copy read, as text.
    pub high_water: BTreeMap<QualifiedName, String>,
    /// Where the source stood when each managed table's last run read all of its rows.
    pub marks: BTreeMap<QualifiedName, crate::source::ChangeMark>,
    /// Where the target stood when each managed table's last run left it equal to the source.
    pub local_marks: BTreeMap<QualifiedName, super::LocalMark>,
    /// The target's transaction ids now, if the server tells.
    pub clock: Option<super::Clock>,
    /// Tables the registry lists whose name the target now gives to another table (dropped and
    /// made again): not snapcopy's any more.
    pub replaced: BTreeSet<QualifiedName>,
    /// Managed tables a full refresh brought along because of a table it reloads, with why.
    pub along: BTreeMap<QualifiedName, String>,
    /// Tables for which the setup could not make something they need, with why: they are
    /// refused, and the units are planned without them.
    pub cannot_make: BTreeMap<QualifiedName, String>,
    /// The key constraints and indexes of the chosen tables on the target, by table and name,
    /// each with whether something keeps it in place (see `sql/indexes.sql`): a large reload
    /// drops the others and builds them after its rows.
    pub indexes: BTreeMap<QualifiedName, BTreeMap<String, bool>>,
    /// The managed tables that must keep their identity (their oid) through a full reload,
    /// with why: something the user built on the target depends on them, or they differ from
    /// what snapcopy makes (see `sql/identity.sql`). The others may be reloaded into a new
    /// table swapped in for the old one.
    pub keeps_identity: BTreeMap<QualifiedName, String>,
    /// The chosen tables' fingerprints on the target (see [`fingerprint`]), as the plan read
    /// them: a table reloaded into a new one is dropped only if its fingerprint is the same
    /// when its unit runs.
    pub fingerprints: BTreeMap<QualifiedName, String>,
    /// The tables the registry lists as loaded data-only: the user's, never snapcopy's.
    pub data_only: BTreeSet<QualifiedName>,
    /// The chosen tables on the target that snapcopy did not make, as a data-only load needs
    /// to know them (read for data-only runs; see [`super::user_tables`]).
    pub user_tables: BTreeMap<QualifiedName, super::user_tables::UserTable>,
}

/// A staging object found on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagingObject {
    /// View or materialized view.
    pub kind: StagingKind,
    /// Whether it has a unique index (so a materialized view can refresh CONCURRENTLY).
    pub unique_index: bool,
}

/// Whether the target database has an extension, or its server can install it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionState {
    /// Installed in the target database.
    Installed,
    /// Its package is on the target server (`pg_available_extensions`): it can be created.
    Available,
    /// Its package is not on the target server.
    Missing,
}

/// Reads what the plan needs to know about the target for `catalog`'s tables. `managed` is the
/// registry (see [`super::registry::managed`]). `swaps` says whether the run may reload a
/// table into a new one swapped in (full mode, with splitting): only then are the tables'
/// fingerprints and what keeps their identity read (`sql/identity.sql`, the costliest of these
/// queries, a few milliseconds of every run); without them a reload stays in place.
pub async fn read(
    client: &Client,
    staging_schema: &Ident,
    managed: Vec<Managed>,
    catalog: &Catalog,
    swaps: bool,
) -> anyhow::Result<TargetState> {
    let mut state = TargetState::default();
    let dblink = client
        .query_opt(include_str!("sql/dblink.sql"), &[])
        .await
        .context("could not read the target's extensions")?;
    state.dblink_schema = dblink.map(|r| Ident::new(r.get::<_, String>(0)));
    for m in managed {
        if m.data_only {
            // The user's table: remade by their migrations or not, it is loaded the same way.
            if let Some(hw) = m.high_water {
                state.high_water.insert(m.name.clone(), hw);
            }
            state.links.insert(m.name.clone(), m.link);
            state.data_only.insert(m.name);
            continue;
        }
        if m.replaced {
            state.replaced.insert(m.name);
            continue;
        }
        if let Some(hw) = m.high_water {
            state.high_water.insert(m.name.clone(), hw);
        }
        if let Some(mark) = m.source_mark.as_deref().and_then(ChangeMark::parse) {
            state.marks.insert(m.name.clone(), mark);
        }
        if let Some(mark) = m.target_mark.as_deref().and_then(super::LocalMark::parse) {
            state.local_marks.insert(m.name.clone(), mark);
        }
        state.links.insert(m.name.clone(), m.link);
        state.managed.insert(m.name, m.shape);
    }
    state.staging_objects = staging_objects(client, staging_schema, catalog).await?;
    state.clock = super::Clock::read(client).await;

    let tables: Vec<&QualifiedName> = catalog.tables.iter().map(|t| &t.name).collect();
    for r in by_name(client, include_str!("sql/tables.sql"), &tables, "tables").await? {
        let name = qualified(&r, 0);
        if let Some(con) = r.get::<_, Option<String>>(2) {
            state.existing_constraints.insert((name.clone(), con));
        }
        state.existing_tables.insert(name);
    }
    let types: Vec<&QualifiedName> = catalog.types.iter().map(|t| &t.name).collect();
    for r in by_name(client, include_str!("sql/types.sql"), &types, "types").await? {
        state.existing_types.insert(qualified(&r, 0), r.get(2));
    }
    // Partitions too: a load into an existing partitioned table turns their triggers off.
    let with_partitions: Vec<&QualifiedName> = catalog
        .tables
        .iter()
        .flat_map(|t| std::iter::once(t).chain(&t.partitions))
        .map(|t: &Table| &t.name)
        .collect();
    for r in by_name(
        client,
        include_str!("sql/triggers.sql"),
        &with_partitions,
        "triggers",
    )
    .await?
    {
        state.triggers.entry(qualified(&r, 0)).or_default().push((
            Ident::new(r.get::<_, String>(2)),
            TriggerState::from_catalog(&r.get::<_, String>(3)),
        ));
    }
    for r in by_name(client, include_str!("sql/indexes.sql"), &tables, "indexes").await? {
        state
            .indexes
            .entry(qualified(&r, 0))
            .or_default()
            .insert(r.get(3), r.get(4));
    }
    let identity = include_str!("sql/identity.sql").replace("FINGERPRINT", &fingerprint("w.oid"));
    let managed_tables: Vec<&QualifiedName> = tables
        .iter()
        .copied()
        .filter(|n| swaps && state.managed.contains_key(*n))
        .collect();
    let identities = if managed_tables.is_empty() {
        Vec::new()
    } else {
        by_name(client, &identity, &managed_tables, "tables").await?
    };
    for r in identities {
        let name = qualified(&r, 0);
        state.fingerprints.insert(name.clone(), r.get(5));
        let Some(table) = catalog.tables.iter().find(|t| t.name == name) else {
            continue;
        };
        let comments: BTreeMap<String, String> =
            serde_json::from_str(&r.get::<_, String>(4)).unwrap_or_default();
        let why = r
            .get::<_, Option<String>>(2)
            .or_else(|| differs_from_source(table, &state, r.get(3), &comments));
        if let Some(why) = why {
            state.keeps_identity.insert(name, why);
        }
    }
    for r in by_name(
        client,
        include_str!("sql/children.sql"),
        &tables,
        "inheritance",
    )
    .await?
    {
        state
            .children
            .entry(qualified(&r, 0))
            .or_default()
            .push(qualified(&r, 2));
    }
    state.extensions = extensions(client, catalog).await?;
    let collations: Vec<&QualifiedName> = catalog.collations.iter().map(|c| &c.name).collect();
    for r in by_name(
        client,
        include_str!("sql/collations.sql"),
        &collations,
        "collations",
    )
    .await?
    {
        state.existing_collations.insert(qualified(&r, 0));
    }
    let functions: Vec<&QualifiedName> = catalog.functions.iter().map(|f| &f.name).collect();
    for r in by_name(
        client,
        include_str!("sql/functions.sql"),
        &functions,
        "functions",
    )
    .await?
    {
        state.existing_functions.insert(r.get(0));
    }
    Ok(state)
}

/// The tables on the target with a foreign key to one of `tables` (TRUNCATE refuses to empty a
/// referenced table alone), each with the table it references and the key's name.
pub async fn referencing(
    client: &Client,
    tables: &[&QualifiedName],
) -> anyhow::Result<Vec<(QualifiedName, QualifiedName, String)>> {
    let rows = by_name(
        client,
        include_str!("sql/referencing.sql"),
        tables,
        "foreign keys",
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| (qualified(r, 0), qualified(r, 2), r.get(4)))
        .collect())
}

/// The staging objects of the chosen tables (only theirs matter; the map keeps lookups
/// cheap).
async fn staging_objects(
    client: &Client,
    staging_schema: &Ident,
    catalog: &Catalog,
) -> anyhow::Result<BTreeMap<String, StagingObject>> {
    let wanted: BTreeSet<String> = catalog
        .tables
        .iter()
        .map(|t| staging_name(&t.name))
        .collect();
    let rows = client
        .query(
            include_str!("sql/staging_objects.sql"),
            &[&staging_schema.raw()],
        )
        .await
        .context("could not read the target's staging objects")?;
    Ok(rows
        .iter()
        .filter(|r| wanted.contains(&r.get::<_, String>(0)))
        .map(|r| {
            let kind = if r.get::<_, String>(1) == "m" {
                StagingKind::Matview
            } else {
                StagingKind::View
            };
            let object = StagingObject {
                kind,
                unique_index: r.get(2),
            };
            (r.get::<_, String>(0), object)
        })
        .collect())
}

/// What the target can do about each extension the tables need.
async fn extensions(
    client: &Client,
    catalog: &Catalog,
) -> anyhow::Result<BTreeMap<String, ExtensionState>> {
    let names: Vec<&str> = catalog.extensions.iter().map(|e| e.name.as_str()).collect();
    let rows = client
        .query(include_str!("sql/extensions.sql"), &[&names])
        .await
        .context("could not read the target's extensions")?;
    Ok(rows
        .iter()
        .map(|r| {
            let state = match (r.get::<_, bool>(1), r.get::<_, bool>(2)) {
                (true, _) => ExtensionState::Installed,
                (false, true) => ExtensionState::Available,
                (false, false) => ExtensionState::Missing,
            };
            (r.get(0), state)
        })
        .collect())
}

/// Runs a query whose parameters are the schemas and the names of `objects` (`$1`, `$2`).
pub(super) async fn by_name(
    client: &Client,
    sql: &str,
    objects: &[&QualifiedName],
    what: &str,
) -> anyhow::Result<Vec<Row>> {
    let schemas: Vec<&str> = objects.iter().map(|o| o.schema.raw()).collect();
    let names: Vec<&str> = objects.iter().map(|o| o.name.raw()).collect();
    let params: [&(dyn ToSql + Sync); 2] = [&schemas, &names];
    client
        .query(sql, &params)
        .await
        .with_context(|| format!("could not read the target's {what}"))
}

/// The SQL expression (a scalar subquery) of the fingerprint of the table whose oid is
/// `table_oid` (an SQL expression): an md5 of what a new table in its place would not carry
/// over (`sql/fingerprint.sql`).
pub fn fingerprint(table_oid: &str) -> String {
    include_str!("sql/fingerprint.sql")
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ")
        .replace("$table", table_oid)
}

/// What the target has on `table` that snapcopy would not make from the source's catalog
/// (comments, triggers, constraints, indexes), or an index that something depends on: the table must then
/// keep its identity through a reload. `comment` and `column_comments` are the target's.
fn differs_from_source(
    table: &Table,
    state: &TargetState,
    comment: Option<String>,
    column_comments: &BTreeMap<String, String>,
) -> Option<String> {
    if comment != table.comment {
        return Some("its comment is not the source's".into());
    }
    let theirs: BTreeMap<String, String> = table
        .columns
        .iter()
        .filter_map(|c| Some((c.name.raw().to_string(), c.comment.clone()?)))
        .collect();
    if &theirs != column_comments {
        return Some("its columns' comments are not the source's".into());
    }
    let mut triggers: Vec<(&str, TriggerState)> = state
        .triggers
        .get(&table.name)
        .into_iter()
        .flatten()
        .map(|(n, s)| (n.raw(), *s))
        .collect();
    let mut source: Vec<(&str, TriggerState)> = table
        .triggers
        .iter()
        .map(|t| (t.name.raw(), t.state))
        .collect();
    triggers.sort_by_key(|(n, _)| *n);
    source.sort_by_key(|(n, _)| *n);
    if triggers != source {
        return Some("its triggers are not the source's".into());
    }
    let constraints: BTreeSet<&str> = table.constraints.iter().map(|c| c.name.raw()).collect();
    if let Some((_, name)) = state
        .existing_constraints
        .iter()
        .find(|(t, name)| t == &table.name && !constraints.contains(name.as_str()))
    {
        return Some(format!("it has a constraint the source does not ({name})"));
    }
    let made: BTreeSet<&str> = table
        .constraints
        .iter()
        .filter(|c| {
            matches!(
                c.kind,
                ConstraintKind::PrimaryKey | ConstraintKind::Unique | ConstraintKind::Exclude
            )
        })
        .map(|c| c.name.raw())
        .chain(table.indexes.iter().map(|x| x.name.raw()))
        .collect();
    for (index, kept) in state.indexes.get(&table.name).into_iter().flatten() {
        if *kept {
            return Some(format!("something depends on its index or key {index}"));
        }
        if !made.contains(index.as_str()) {
            return Some(format!("it has an index the source does not ({index})"));
        }
    }
    None
}

/// The qualified name in columns `at` (schema) and `at + 1` (name) of a row.
pub(super) fn qualified(row: &Row, at: usize) -> QualifiedName {
    QualifiedName::new(row.get::<_, String>(at), row.get::<_, String>(at + 1))
}
