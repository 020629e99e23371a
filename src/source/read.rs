//! The reads that fill the catalog: the tables a pattern may name, then everything the chosen
//! ones are made of and need, in the run's snapshot. Each query lives in `sql/`, one a file.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

use super::parts::Parts;
use super::types::user_types;
use super::*;
use crate::sql::{Ident, QualifiedName};

/// Lists every table that patterns may name on the source.
pub async fn candidates(client: &Client) -> anyhow::Result<Vec<Candidate>> {
    let rows = client
        .query(include_str!("sql/tables.sql"), &[])
        .await
        .context("could not list the source's tables")?;
    Ok(rows
        .iter()
        .map(|r| Candidate {
            oid: r.get("oid"),
            name: QualifiedName::new(r.get::<_, String>("nspname"), r.get::<_, String>("relname")),
            relkind: r.get("relkind"),
            is_partition: r.get("relispartition"),
            parent_oid: r.get("parent_oid"),
            extension: extension_of(r),
            user_rows: r.get("user_rows"),
            parents: r
                .get::<_, Vec<String>>("parent_schemas")
                .into_iter()
                .zip(r.get::<_, Vec<String>>("parent_names"))
                .map(|(schema, name)| QualifiedName::new(schema, name))
                .collect(),
            has_children: r.get("has_children"),
            comment: r.get("comment"),
            estimated_rows: r.get("estimated_rows"),
            partkey: r.get("partkey"),
            bound: r.get("bound"),
        })
        .collect())
}

/// The extension a catalog row says owns the object (its `extension` and `extension_schema`
/// columns), if any.
pub(super) fn extension_of(r: &tokio_postgres::Row) -> Option<Extension> {
    r.get::<_, Option<String>>("extension")
        .map(|name| Extension {
            name,
            schema: Ident::new(r.get::<_, String>("extension_schema")),
        })
}

/// A sequence whose settings a catalog row gives (its `data_type`, `seqstart`, ...
/// `seqcycle` columns, as `pg_sequence` names them).
pub(super) fn sequence_of(
    r: &tokio_postgres::Row,
    name: QualifiedName,
    column: Ident,
    identity: bool,
) -> Sequence {
    Sequence {
        name,
        column,
        identity,
        data_type: r.get("data_type"),
        start: r.get("seqstart"),
        increment: r.get("seqincrement"),
        min: r.get("seqmin"),
        max: r.get("seqmax"),
        cache: r.get("seqcache"),
        cycle: r.get("seqcycle"),
    }
}

/// The chosen tables with the partitions of every chosen partitioned table added (a partition
/// tree is copied whole), and which chosen partitions stand alone (their parent is not
/// chosen: they become plain tables). Returns the expanded list and, for messages, each tree
/// root with its number of partitions.
pub fn with_partitions(
    all: &[Candidate],
    chosen: Vec<Candidate>,
) -> (Vec<Candidate>, Vec<(QualifiedName, usize)>) {
    let mut out: Vec<Candidate> = Vec::new();
    let mut trees = Vec::new();
    let chosen_oids: BTreeSet<Oid> = chosen.iter().map(|c| c.oid).collect();
    let parent_of: HashMap<Oid, Oid> = all
        .iter()
        .filter_map(|c| c.parent_oid.map(|p| (c.oid, p)))
        .collect();
    let has_chosen_ancestor = |mut oid: Oid| {
        while let Some(&parent) = parent_of.get(&oid) {
            if chosen_oids.contains(&parent) {
                return true;
            }
            oid = parent;
        }
        false
    };
    for c in chosen {
        if has_chosen_ancestor(c.oid) {
            continue;
        }
        let mut tree = vec![c.clone()];
        let mut i = 0;
        while i < tree.len() {
            let parent = tree[i].oid;
            tree.extend(all.iter().filter(|k| k.parent_oid == Some(parent)).cloned());
            i += 1;
        }
        if tree.len() > 1 {
            trees.push((c.name.clone(), tree.len() - 1));
        }
        out.extend(tree);
    }
    (out, trees)
}

/// Reads columns, constraints, indexes, sequences, triggers (unless `triggers` is false: then
/// neither they nor their functions) and what they need, for the chosen tables. The client
/// must have `search_path = ''`.
pub async fn introspect(
    client: &Client,
    chosen: &[Candidate],
    triggers: bool,
) -> anyhow::Result<Catalog> {
    let mut parts = Parts::new(client, chosen);
    parts.sizes().await?;
    let column_types = parts.columns().await?;
    parts.constraints_and_indexes().await?;
    parts.owned_sequences().await?;
    if triggers {
        parts.triggers().await?;
    }
    let Parts {
        oids, mut tables, ..
    } = parts;
    let sequences = shared_sequences(client, chosen, &oids).await?;

    // The types the columns use and what the tables depend on feed each other: a function may
    // take a user type, a domain's check may call a function. Walk both until nothing new
    // turns up (usually once).
    let mut type_roots: BTreeSet<Oid> = column_types.values().flatten().copied().collect();
    let (walk, depends) = loop {
        let walk = user_types(client, type_roots.clone()).await?;
        let type_oids: Vec<Oid> = walk.types.iter().map(|(oid, _)| *oid).collect();
        let depends = depends::read(client, &oids, &type_oids, &walk.requirement, triggers).await?;
        if depends.function_types.is_subset(&type_roots) {
            break (walk, depends);
        }
        type_roots.extend(depends.function_types.iter().copied());
    };
    let source_extensions = depends::extensions(client).await?;

    // What each table needs directly: its columns' types, what its parts call, the shared
    // sequences its defaults call, and for an extension's table the extension.
    for (table, candidate) in tables.iter_mut().zip(chosen) {
        let mut requires: BTreeSet<Requirement> = column_types
            .get(&table.oid)
            .into_iter()
            .flatten()
            .filter_map(|t| walk.requirement.get(t).cloned())
            .collect();
        requires.extend(
            depends
                .tables
                .get(&table.oid)
                .into_iter()
                .flatten()
                .cloned(),
        );
        requires.extend(
            sequences
                .iter()
                .filter(|s| s.users.iter().any(|u| u.table == table.name))
                .map(|s| Requirement::Sequence(s.sequence.name.clone())),
        );
        if let Some(ext) = &candidate.extension {
            requires.insert(Requirement::Extension(ext.name.clone()));
        }
        table.requires = requires;
    }
    let mut types: Vec<UserType> = walk
        .types
        .into_iter()
        .map(|(oid, mut t)| {
            t.requires
                .extend(depends.types.get(&oid).into_iter().flatten().cloned());
            t
        })
        .collect();
    let functions: Vec<Function> = depends.functions.into_values().collect();
    // Every table's requirements in full: what its requirements need in turn.
    let needs = |r: &Requirement| -> Vec<Requirement> {
        match r {
            Requirement::Type(name) => types
                .iter()
                .find(|t| &t.name == name)
                .map(|t| t.requires.iter().cloned().collect())
                .unwrap_or_default(),
            Requirement::Function(signature) => functions
                .iter()
                .find(|f| &f.signature == signature)
                .map(|f| f.requires.iter().cloned().collect())
                .unwrap_or_default(),
            Requirement::Extension(name) => source_extensions
                .get(name)
                .map(|(_, requires)| {
                    requires
                        .iter()
                        .map(|r| Requirement::Extension(r.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            Requirement::Collation(_) | Requirement::Sequence(_) => Vec::new(),
        }
    };
    for table in &mut tables {
        table.requires = depends::closure(&table.requires, &needs);
    }
    let needed: BTreeSet<Requirement> = tables.iter().flat_map(|t| t.requires.clone()).collect();
    types.retain(|t| needed.contains(&Requirement::Type(t.name.clone())));
    let functions: Vec<Function> = functions
        .into_iter()
        .filter(|f| needed.contains(&Requirement::Function(f.signature.clone())))
        .collect();
    let extensions = extension_order(&needed, &source_extensions, &walk.extensions);
    Ok(Catalog {
        tables: nest_partitions(chosen, tables),
        types,
        extensions,
        sequences,
        functions,
        collations: depends.collations.into_values().collect(),
    })
}

/// The extensions the tables need, each after those it requires, with the schema it has on
/// the source.
fn extension_order(
    needed: &BTreeSet<Requirement>,
    source: &BTreeMap<String, (String, Vec<String>)>,
    known: &BTreeMap<String, Ident>,
) -> Vec<Extension> {
    fn visit(
        name: &str,
        source: &BTreeMap<String, (String, Vec<String>)>,
        known: &BTreeMap<String, Ident>,
        out: &mut Vec<Extension>,
    ) {
        if out.iter().any(|e| e.name == name) {
            return;
        }
        let (schema, requires) = match source.get(name) {
            Some((schema, requires)) => (Ident::new(schema.as_str()), requires.clone()),
            None => match known.get(name) {
                Some(schema) => (schema.clone(), Vec::new()),
                None => return,
            },
        };
        for r in &requires {
            visit(r, source, known, out);
        }
        out.push(Extension {
            name: name.to_string(),
            schema,
        });
    }
    let mut out = Vec::new();
    for r in needed {
        if let Requirement::Extension(name) = r {
            visit(name, source, known, &mut out);
        }
    }
    out
}

/// The sequences column defaults call without their table owning them (see
/// [`SharedSequence`]). A partition copied with its parent takes its defaults from the
/// parent, so it is not a caller of its own.
async fn shared_sequences(
    client: &Client,
    chosen: &[Candidate],
    oids: &[Oid],
) -> anyhow::Result<Vec<SharedSequence>> {
    let chosen_oids: BTreeSet<Oid> = oids.iter().copied().collect();
    let by_oid: HashMap<Oid, &Candidate> = chosen.iter().map(|c| (c.oid, c)).collect();
    let mut out: Vec<SharedSequence> = Vec::new();
    for r in query(
        client,
        include_str!("sql/default_sequences.sql"),
        oids,
        "sequences that defaults call",
    )
    .await?
    {
        let table_oid: Oid = r.get("table_oid");
        let owner_oid: Option<Oid> = r.get("owner_oid");
        let Some(candidate) = by_oid.get(&table_oid) else {
            continue;
        };
        if owner_oid == Some(table_oid)
            || candidate
                .parent_oid
                .is_some_and(|p| chosen_oids.contains(&p))
        {
            continue;
        }
        let name = QualifiedName::new(r.get::<_, String>("nspname"), r.get::<_, String>("relname"));
        let user = SequenceUser {
            table: candidate.name.clone(),
            column: Ident::new(r.get::<_, String>("column_name")),
            integer: matches!(
                r.get::<_, String>("column_type").as_str(),
                "smallint" | "integer" | "bigint"
            ),
        };
        match out.iter_mut().find(|s| s.sequence.name == name) {
            Some(shared) => {
                if !shared.users.contains(&user) {
                    shared.users.push(user);
                }
            }
            None => out.push(SharedSequence {
                sequence: sequence_of(
                    &r,
                    name,
                    Ident::new(
                        r.get::<_, Option<String>>("owner_column")
                            .unwrap_or_default(),
                    ),
                    false,
                ),
                owner: r
                    .get::<_, Option<String>>("owner_schema")
                    .map(|schema| QualifiedName::new(schema, r.get::<_, String>("owner_table"))),
                users: vec![user],
            }),
        }
    }
    Ok(out)
}

/// Moves every partition whose parent is chosen under its tree's root, parents first, with
/// its parent and bound recorded; what is left are the tables the plan handles one by one.
fn nest_partitions(chosen: &[Candidate], tables: Vec<Table>) -> Vec<Table> {
    let by_oid: HashMap<Oid, &Candidate> = chosen.iter().map(|c| (c.oid, c)).collect();
    let root_of = |mut oid: Oid| {
        while let Some(parent) = by_oid[&oid].parent_oid.filter(|p| by_oid.contains_key(p)) {
            oid = parent;
        }
        oid
    };
    let mut roots: Vec<Table> = Vec::new();
    let mut members: Vec<(Oid, Table)> = Vec::new();
    for (candidate, mut table) in chosen.iter().zip(tables) {
        match candidate.parent_oid.and_then(|p| by_oid.get(&p)) {
            Some(parent) => {
                table.partition_of = Some((
                    parent.name.clone(),
                    candidate.bound.clone().unwrap_or_default(),
                ));
                // What a partition inherits comes from its parent on the target too.
                table.constraints.retain(|c| c.local);
                members.push((root_of(candidate.oid), table));
            }
            None => roots.push(table),
        }
    }
    for (root, member) in members {
        if let Some(r) = roots.iter_mut().find(|t| t.oid == root) {
            // A partition is made with its root, so the root needs what it needs.
            r.requires.extend(member.requires.iter().cloned());
            r.partitions.push(member);
        }
    }
    roots
}

pub(super) async fn query(
    client: &Client,
    sql: &str,
    oids: &[Oid],
    what: &str,
) -> anyhow::Result<Vec<tokio_postgres::Row>> {
    client
        .query(sql, &[&oids])
        .await
        .with_context(|| format!("could not read the {what} of the chosen tables from the source"))
}

/// Reads how to divide the rows of every plain table of at least `min_bytes` (see [`Extent`]):
/// the range of its integer key where it has one (an index makes that cheap), else its number
/// of blocks when the source can scan `ctid` ranges. Runs in the run's snapshot, so the ranges
/// cover exactly the rows the load will read.
pub async fn read_extents(
    client: &Client,
    catalog: &mut Catalog,
    min_bytes: i64,
) -> anyhow::Result<()> {
    let large: Vec<&mut Table> = catalog
        .tables
        .iter_mut()
        .filter(|t| t.total_bytes >= min_bytes && !t.is_partitioned() && t.partitions.is_empty())
        .collect();
    if large.is_empty() {
        return Ok(());
    }
    let version: i32 = client
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::integer",
            &[],
        )
        .await
        .context("could not read the source's version")?
        .get(0);
    for table in large {
        let context = || format!("could not measure {} on the source", table.name.human());
        let key = table
            .key(None)
            .and_then(|k| k.cursor)
            .map(|cursor| cursor.column);
        table.extent = match key {
            Some(column) => {
                let row = client
                    .query_one(
                        &format!(
                            "SELECT min({column})::bigint, max({column})::bigint FROM ONLY {}",
                            table.name
                        ),
                        &[],
                    )
                    .await
                    .with_context(context)?;
                match (row.get(0), row.get(1)) {
                    (Some(min), Some(max)) => Some(Extent::Key { column, min, max }),
                    _ => None,
                }
            }
            None if version >= 140000 => {
                let blocks: i64 = client
                    .query_one(
                        "SELECT pg_catalog.pg_relation_size($1::oid::pg_catalog.regclass) \
                         / pg_catalog.current_setting('block_size')::bigint",
                        &[&table.oid],
                    )
                    .await
                    .with_context(context)?
                    .get(0);
                Some(Extent::Blocks(blocks))
            }
            None => None,
        };
    }
    Ok(())
}
