//! The source catalog: what the chosen tables are made of, read once from the source server.
//!
//! Introspection runs with `search_path = ''`, so every type, collation and expression text that
//! PostgreSQL prints is schema-qualified and means the same thing on the target. The queries
//! live in `sql/*.sql`, one a file, and take the table oids as a bind parameter.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Context;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

use crate::sql::{Ident, QualifiedName};

mod depends;

pub use depends::{Collation, Function, Requirement};

/// Everything the plan needs to know about the source.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The chosen tables, in the order the patterns matched them (schema, then name).
    pub tables: Vec<Table>,
    /// User-defined types the tables' columns need, dependencies first.
    pub types: Vec<UserType>,
    /// Extensions the tables need (for types, functions, operator classes, their own tables),
    /// each after the extensions it requires, with the schema it lives in on the source.
    pub extensions: Vec<Extension>,
    /// Sequences that column defaults call but that the calling table does not own:
    /// free-standing ones (restored old dumps, hand-written schemas) and ones another table
    /// owns. They must exist before the tables that call them.
    pub sequences: Vec<SharedSequence>,
    /// User functions the tables' defaults, checks, generated columns, indexes, triggers and
    /// domain checks call (not those of extensions, which come with their extension).
    pub functions: Vec<Function>,
    /// Collations the tables' columns, indexes and types use.
    pub collations: Vec<Collation>,
}

/// A sequence that column defaults of the chosen tables call without owning it.
#[derive(Debug, Clone)]
pub struct SharedSequence {
    /// The sequence and its options; `column` is the owning column, when a table owns it.
    pub sequence: Sequence,
    /// The table owning it on the source (`OWNED BY`), if any.
    pub owner: Option<QualifiedName>,
    /// The chosen tables whose defaults call it, with the column, in catalog order.
    pub users: Vec<SequenceUser>,
}

/// A column whose default calls a shared sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceUser {
    /// The calling table.
    pub table: QualifiedName,
    /// The column.
    pub column: Ident,
    /// Whether the column holds integers, so its maximum bounds the sequence.
    pub integer: bool,
}

impl SharedSequence {
    /// Whether `table` calls it or owns it.
    pub fn involves(&self, table: &QualifiedName) -> bool {
        self.owner.as_ref() == Some(table) || self.users.iter().any(|u| &u.table == table)
    }
}

/// An extension the copied columns need.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Extension {
    /// The extension's name (`citext`, `postgis`).
    pub name: String,
    /// The schema its objects live in; types are printed qualified with it.
    pub schema: Ident,
}

/// One source table.
#[derive(Debug, Clone)]
pub struct Table {
    /// The source oid, used only to join catalog rows.
    pub oid: Oid,
    /// Schema and name, the same on the target.
    pub name: QualifiedName,
    /// `COMMENT ON TABLE`, if any.
    pub comment: Option<String>,
    /// Columns in `attnum` order, dropped columns left out.
    pub columns: Vec<Column>,
    /// PRIMARY KEY, UNIQUE, CHECK, EXCLUDE and FOREIGN KEY constraints.
    pub constraints: Vec<Constraint>,
    /// Indexes that no constraint owns.
    pub indexes: Vec<Index>,
    /// Sequences owned by the table's columns (serial and identity).
    pub sequences: Vec<Sequence>,
    /// The planner's row estimate (`reltuples`), for progress and ordering.
    pub estimated_rows: i64,
    /// Table, TOAST and index size on the source.
    pub total_bytes: i64,
    /// `pg_get_partkeydef` of a partitioned table (`RANGE (at)`).
    pub partition_by: Option<String>,
    /// For a partition copied with its parent: the parent and the bound
    /// (`FOR VALUES FROM (...) TO (...)`, `DEFAULT`).
    pub partition_of: Option<(QualifiedName, String)>,
    /// For a partitioned table: every partition below it, parents before their children.
    pub partitions: Vec<Table>,
    /// How the rows of a large table divide into ranges, read in the run's snapshot (only for
    /// tables that may be split; see [`read_extents`]).
    pub extent: Option<Extent>,
    /// For a table an extension makes: the condition (`WHERE ...`, or empty) picking the rows
    /// the extension marks as user data. The extension creates the table on the target; only
    /// those rows are copied into it.
    pub user_rows: Option<String>,
    /// Everything it needs on the target first, in full (with what those need in turn);
    /// partitions' needs included.
    pub requires: BTreeSet<Requirement>,
    /// User triggers, by name (none when the run leaves triggers out).
    pub triggers: Vec<Trigger>,
    /// Its inheritance parents on the source, in `INHERITS` order.
    pub parents: Vec<QualifiedName>,
    /// The parents it inherits from on the target too, which the plan decides: all of
    /// [`Table::parents`] when each is in the run or on the target already, none otherwise
    /// (the table is then one of its own, with all its columns).
    pub inherits: Vec<QualifiedName>,
}

/// A user trigger: an ordinary or constraint trigger, not one PostgreSQL makes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// Its name (unique per table).
    pub name: Ident,
    /// `pg_get_triggerdef`: the `CREATE [CONSTRAINT] TRIGGER` statement.
    pub definition: String,
    /// Whether and when it fires.
    pub state: TriggerState,
}

/// When a trigger fires (`pg_trigger.tgenabled`), as `ALTER TABLE ... ENABLE` sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerState {
    /// Enabled, as created (`O`): fires unless the session replicates.
    Enabled,
    /// Disabled (`D`).
    Disabled,
    /// Fires only in replica sessions (`R`).
    Replica,
    /// Fires in every session (`A`).
    Always,
}

impl TriggerState {
    /// The state `pg_trigger.tgenabled` stands for.
    pub fn from_catalog(tgenabled: &str) -> TriggerState {
        match tgenabled {
            "D" => TriggerState::Disabled,
            "R" => TriggerState::Replica,
            "A" => TriggerState::Always,
            _ => TriggerState::Enabled,
        }
    }

    /// The `ALTER TABLE` action that sets this state on trigger `name`.
    pub fn action(self, name: &Ident) -> String {
        match self {
            TriggerState::Enabled => format!("ENABLE TRIGGER {name}"),
            TriggerState::Disabled => format!("DISABLE TRIGGER {name}"),
            TriggerState::Replica => format!("ENABLE REPLICA TRIGGER {name}"),
            TriggerState::Always => format!("ENABLE ALWAYS TRIGGER {name}"),
        }
    }

    /// How a shape records the state: nothing for the usual one.
    fn shape_suffix(self) -> &'static str {
        match self {
            TriggerState::Enabled => "",
            TriggerState::Disabled => " (disabled)",
            TriggerState::Replica => " (enabled for replicas only)",
            TriggerState::Always => " (enabled always)",
        }
    }
}

/// How a large table's rows divide into ranges that several sessions can read at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extent {
    /// An integer key column (primary key, or unique and NOT NULL) and its smallest and
    /// largest values.
    Key {
        /// The key column.
        column: Ident,
        /// Its smallest value.
        min: i64,
        /// Its largest value.
        max: i64,
    },
    /// The heap's blocks, read by `ctid` ranges (TID range scans, PostgreSQL 14 and later).
    Blocks(i64),
}

/// One column.
#[derive(Debug, Clone)]
pub struct Column {
    /// The column name.
    pub name: Ident,
    /// `format_type()` text: the exact declared type, schema-qualified for user types.
    pub type_sql: String,
    /// NOT NULL.
    pub not_null: bool,
    /// The default expression (not for generated columns).
    pub default_sql: Option<String>,
    /// The generation expression of a stored generated column.
    pub generated_sql: Option<String>,
    /// Identity kind, if the column is an identity column.
    pub identity: Option<Identity>,
    /// A collation other than the type's default, qualified.
    pub collation_sql: Option<String>,
    /// `COMMENT ON COLUMN`, if any.
    pub comment: Option<String>,
    /// Whether the table defines it itself; false for a column that only comes from an
    /// inheritance parent (or a partitioned parent).
    pub local: bool,
}

impl Column {
    /// Whether the load writes this column (stored generated columns compute themselves).
    pub fn is_loaded(&self) -> bool {
        self.generated_sql.is_none()
    }

    /// The column's definition as the shape records it: everything but the name.
    fn shape(&self) -> String {
        let mut s = self.type_sql.clone();
        if let Some(c) = &self.collation_sql {
            s.push_str(&format!(" COLLATE {c}"));
        }
        match self.identity {
            Some(Identity::Always) => s.push_str(" GENERATED ALWAYS AS IDENTITY"),
            Some(Identity::ByDefault) => s.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
            None => {}
        }
        if let Some(g) = &self.generated_sql {
            s.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
        }
        if let Some(d) = &self.default_sql {
            s.push_str(&format!(" DEFAULT {d}"));
        }
        if self.not_null {
            s.push_str(" NOT NULL");
        }
        s
    }
}

/// A table's shape as the source had it at the last copy: columns, constraints and indexes by
/// name. Stored in the registry, so that a later run can tell what changed on the source.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    /// Column name to definition.
    pub columns: BTreeMap<String, String>,
    /// Constraint name to definition.
    pub constraints: BTreeMap<String, String>,
    /// Index name to definition.
    pub indexes: BTreeMap<String, String>,
    /// For a partitioned table: each partition below it, with its bound and key.
    #[serde(default)]
    pub partitions: BTreeMap<String, String>,
    /// Trigger name to definition and state.
    #[serde(default)]
    pub triggers: BTreeMap<String, String>,
    /// Inheritance parent to its place in `INHERITS`.
    #[serde(default)]
    pub parents: BTreeMap<String, String>,
}

/// One difference between two shapes: what kind of object, its name, and its definition on
/// each side (`None` where it is absent).
pub struct ShapeDifference<'a> {
    /// `column`, `constraint`, `index` or `partition`.
    pub what: &'static str,
    /// The object's name.
    pub name: &'a str,
    /// Its definition in `self`.
    pub this: Option<&'a str>,
    /// Its definition in the other shape.
    pub other: Option<&'a str>,
}

impl Shape {
    /// Objects whose definitions differ from `other`'s, or that only one side has.
    pub fn differences<'a>(&'a self, other: &'a Shape) -> Vec<ShapeDifference<'a>> {
        let mut out = Vec::new();
        for (what, this, that) in [
            ("column", &self.columns, &other.columns),
            ("constraint", &self.constraints, &other.constraints),
            ("index", &self.indexes, &other.indexes),
            ("partition", &self.partitions, &other.partitions),
            ("trigger", &self.triggers, &other.triggers),
            ("parent", &self.parents, &other.parents),
        ] {
            let names: BTreeSet<&String> = this.keys().chain(that.keys()).collect();
            for name in names {
                let (a, b) = (this.get(name), that.get(name));
                if a != b {
                    out.push(ShapeDifference {
                        what,
                        name,
                        this: a.map(String::as_str),
                        other: b.map(String::as_str),
                    });
                }
            }
        }
        out
    }

    /// What changed from `old` to `self`, one phrase per change (`column note added (text)`).
    pub fn changes_since(&self, old: &Shape) -> Vec<String> {
        self.differences(old)
            .into_iter()
            .map(|d| match (d.this, d.other) {
                (Some(def), None) => format!("{} {} added ({def})", d.what, d.name),
                (None, _) => format!("{} {} dropped", d.what, d.name),
                (Some(def), Some(before)) => {
                    format!("{} {} changed ({before} -> {def})", d.what, d.name)
                }
            })
            .collect()
    }
}

/// The key incremental mode compares rows by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The key's columns (primary key, or a unique key whose columns are all NOT NULL).
    pub columns: Vec<Ident>,
    /// The column whose values only grow, when there is one: an integer single-column key, or
    /// the cursor column the configuration names. Rows above the last copy's maximum are the
    /// only ones read from the source.
    pub cursor: Option<Cursor>,
}

/// A column whose values only grow, and how to compare with the last maximum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The column.
    pub column: Ident,
    /// `>` for a unique integer key; `>=` for a configured cursor column, whose values may
    /// repeat (rows at the boundary come again and are skipped as already present).
    pub operator: &'static str,
}

impl Table {
    /// The shape to store and compare.
    pub fn shape(&self) -> Shape {
        Shape {
            columns: self
                .columns
                .iter()
                .map(|c| (c.name.raw().to_string(), c.shape()))
                .collect(),
            constraints: self
                .constraints
                .iter()
                .map(|c| (c.name.raw().to_string(), c.definition.clone()))
                .collect(),
            indexes: self
                .indexes
                .iter()
                .map(|i| (i.name.raw().to_string(), i.definition.clone()))
                .collect(),
            partitions: self
                .partitions
                .iter()
                .map(|p| {
                    let (parent, bound) = p.partition_of.clone().unwrap_or_default();
                    let mut def = format!("of {} {bound}", parent.human());
                    if let Some(key) = &p.partition_by {
                        def.push_str(&format!(" PARTITION BY {key}"));
                    }
                    (p.name.human(), def)
                })
                .collect(),
            triggers: self
                .triggers
                .iter()
                .map(|t| {
                    (
                        t.name.raw().to_string(),
                        format!("{}{}", t.definition, t.state.shape_suffix()),
                    )
                })
                .collect(),
            parents: self
                .parents
                .iter()
                .enumerate()
                .map(|(k, p)| (p.human(), format!("inherited from, parent {}", k + 1)))
                .collect(),
        }
    }

    /// The source size of the table and every partition below it.
    pub fn bytes_with_partitions(&self) -> i64 {
        self.total_bytes + self.partitions.iter().map(|p| p.total_bytes).sum::<i64>()
    }

    /// Whether rows must be read through the whole partition tree (no `ONLY`).
    pub fn is_partitioned(&self) -> bool {
        self.partition_by.is_some()
    }

    /// The key rows are told apart by: the primary key, else the first unique constraint
    /// whose columns are all NOT NULL. `cursor` names a configured growing column.
    pub fn key(&self, cursor: Option<&Ident>) -> Option<Key> {
        let not_null = |name: &Ident| self.columns.iter().any(|c| &c.name == name && c.not_null);
        let constraint = self
            .constraints
            .iter()
            .find(|c| c.kind == ConstraintKind::PrimaryKey)
            .or_else(|| {
                self.constraints.iter().find(|c| {
                    c.kind == ConstraintKind::Unique
                        && !c.columns.is_empty()
                        && c.columns.iter().all(not_null)
                })
            })?;
        let columns = constraint.columns.clone();
        let integer = |name: &Ident| {
            self.columns.iter().any(|c| {
                &c.name == name && matches!(c.type_sql.as_str(), "smallint" | "integer" | "bigint")
            })
        };
        let cursor = match cursor {
            Some(column) => Some(Cursor {
                column: column.clone(),
                operator: ">=",
            }),
            None if columns.len() == 1 && integer(&columns[0]) => Some(Cursor {
                column: columns[0].clone(),
                operator: ">",
            }),
            None => None,
        };
        Some(Key { columns, cursor })
    }
}

/// `GENERATED ALWAYS` or `GENERATED BY DEFAULT AS IDENTITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// `GENERATED ALWAYS AS IDENTITY`: inserts of explicit values need OVERRIDING SYSTEM VALUE.
    Always,
    /// `GENERATED BY DEFAULT AS IDENTITY`.
    ByDefault,
}

/// One table constraint with its definition as `pg_get_constraintdef` prints it.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// The constraint name.
    pub name: Ident,
    /// What kind of constraint it is.
    pub kind: ConstraintKind,
    /// The definition text (`PRIMARY KEY (id)`, `CHECK (...) NOT VALID`, ...).
    pub definition: String,
    /// False for NOT VALID constraints.
    pub validated: bool,
    /// The constrained columns, in key order (empty for expression-only constraints).
    pub columns: Vec<Ident>,
    /// False for a constraint only inherited from a parent table.
    pub local: bool,
    /// DEFERRABLE (initially deferred or not).
    pub deferrable: bool,
    /// For a key or exclusion constraint: its index's definition after `USING` (method, keys,
    /// INCLUDE, WITH), to build the index before adding a key `USING INDEX`.
    pub index_body: Option<String>,
}

/// The kinds of table constraints snapcopy recreates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintKind {
    /// PRIMARY KEY.
    PrimaryKey,
    /// UNIQUE.
    Unique,
    /// CHECK.
    Check,
    /// EXCLUDE.
    Exclude,
    /// FOREIGN KEY, with the referenced table.
    ForeignKey {
        /// The referenced table.
        references: QualifiedName,
    },
}

/// One index that no constraint owns.
#[derive(Debug, Clone)]
pub struct Index {
    /// The index name (in the table's schema).
    pub name: Ident,
    /// `pg_get_indexdef` text.
    pub definition: String,
    /// The definition after `USING` (method, keys, INCLUDE, WITH, WHERE), to build the same
    /// index under another name on another table.
    pub body: Option<String>,
}

/// A sequence owned by a column.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// The sequence's qualified name.
    pub name: QualifiedName,
    /// The owning column.
    pub column: Ident,
    /// Whether it is an identity column's sequence (created by the identity clause) rather than
    /// a serial's (created before the table, owned by the column after).
    pub identity: bool,
    /// `smallint`, `integer` or `bigint`.
    pub data_type: String,
    /// START WITH.
    pub start: i64,
    /// INCREMENT BY.
    pub increment: i64,
    /// MINVALUE.
    pub min: i64,
    /// MAXVALUE.
    pub max: i64,
    /// CACHE.
    pub cache: i64,
    /// CYCLE.
    pub cycle: bool,
}

impl Sequence {
    /// The sequence options in `CREATE SEQUENCE` / identity-clause syntax.
    pub fn options_sql(&self) -> String {
        format!(
            "AS {} START WITH {} INCREMENT BY {} MINVALUE {} MAXVALUE {} CACHE {}{}",
            self.data_type,
            self.start,
            self.increment,
            self.min,
            self.max,
            self.cache,
            if self.cycle { " CYCLE" } else { " NO CYCLE" }
        )
    }
}

/// A user-defined type that must exist on the target before the tables.
#[derive(Debug, Clone)]
pub struct UserType {
    /// The type's qualified name.
    pub name: QualifiedName,
    /// What it is.
    pub kind: TypeKind,
    /// What it needs first: the types it is built from, their extensions, the functions and
    /// collations of a domain.
    pub requires: BTreeSet<Requirement>,
}

/// The kinds of user-defined types snapcopy can recreate.
#[derive(Debug, Clone)]
pub enum TypeKind {
    /// An enum with its labels in sort order.
    Enum {
        /// The labels.
        labels: Vec<String>,
    },
    /// A domain with its base type, default, NOT NULL and checks.
    Domain {
        /// `format_type` of the base type.
        base_sql: String,
        /// A collation other than the base type's.
        collation_sql: Option<String>,
        /// DEFAULT expression.
        default_sql: Option<String>,
        /// NOT NULL.
        not_null: bool,
        /// Named CHECK constraints.
        checks: Vec<(Ident, String)>,
    },
    /// A composite type with its attributes.
    Composite {
        /// Attribute name, type text and collation.
        attributes: Vec<(Ident, String, Option<String>)>,
    },
    /// A range type over a subtype.
    Range {
        /// `format_type` of the subtype.
        subtype_sql: String,
    },
}

/// A table the patterns may choose from, before it is introspected.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The source oid.
    pub oid: Oid,
    /// Schema and name.
    pub name: QualifiedName,
    /// `r` ordinary or `p` partitioned.
    pub relkind: String,
    /// Whether it is a partition of a partitioned table.
    pub is_partition: bool,
    /// The partitioned parent's oid, for a partition.
    pub parent_oid: Option<Oid>,
    /// The extension the table belongs to (`CREATE EXTENSION` makes it), with its schema.
    pub extension: Option<Extension>,
    /// For a table of an extension: the condition (`WHERE ...`, or empty for every row) that
    /// picks the rows the extension marks as user data; `None` when it marks none.
    pub user_rows: Option<String>,
    /// Inheritance parents (not a partition's parent), in `INHERITS` order.
    pub parents: Vec<QualifiedName>,
    comment: Option<String>,
    estimated_rows: i64,
    partkey: Option<String>,
    bound: Option<String>,
}

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
            extension: r
                .get::<_, Option<String>>("extension")
                .map(|name| Extension {
                    name,
                    schema: Ident::new(r.get::<_, String>("extension_schema")),
                }),
            user_rows: r.get("user_rows"),
            parents: r
                .get::<_, Vec<String>>("parent_schemas")
                .into_iter()
                .zip(r.get::<_, Vec<String>>("parent_names"))
                .map(|(schema, name)| QualifiedName::new(schema, name))
                .collect(),
            comment: r.get("comment"),
            estimated_rows: r.get("estimated_rows"),
            partkey: r.get("partkey"),
            bound: r.get("bound"),
        })
        .collect())
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
    let oids: Vec<Oid> = chosen.iter().map(|c| c.oid).collect();
    let chosen_oids: BTreeSet<Oid> = oids.iter().copied().collect();
    // Partitions whose parent is not copied become plain tables and keep what they inherit.
    let standalone: Vec<Oid> = chosen
        .iter()
        .filter(|c| c.parent_oid.is_some_and(|p| !chosen_oids.contains(&p)))
        .map(|c| c.oid)
        .collect();
    let mut tables: Vec<Table> = chosen
        .iter()
        .map(|c| Table {
            oid: c.oid,
            name: c.name.clone(),
            comment: c.comment.clone(),
            columns: Vec::new(),
            constraints: Vec::new(),
            indexes: Vec::new(),
            sequences: Vec::new(),
            estimated_rows: c.estimated_rows,
            total_bytes: 0,
            partition_by: c.partkey.clone(),
            partition_of: None,
            partitions: Vec::new(),
            extent: None,
            user_rows: c.extension.as_ref().and(c.user_rows.clone()),
            requires: BTreeSet::new(),
            triggers: Vec::new(),
            inherits: Vec::new(),
            parents: c.parents.clone(),
        })
        .collect();
    let position: HashMap<Oid, usize> = oids.iter().enumerate().map(|(i, o)| (*o, i)).collect();

    // Sizes only for the chosen tables: on a source with thousands of tables, measuring them
    // all would stat every file of the database.
    for r in client
        .query(
            "SELECT t.oid, pg_catalog.pg_total_relation_size(t.oid) \
             FROM unnest($1::oid[]) AS t(oid)",
            &[&oids],
        )
        .await
        .context("could not read the sizes of the chosen tables on the source")?
    {
        tables[position[&r.get::<_, Oid>(0)]].total_bytes = r.get(1);
    }

    let mut column_types: HashMap<Oid, BTreeSet<Oid>> = HashMap::new();
    for r in query(client, include_str!("sql/columns.sql"), &oids, "columns").await? {
        let table_oid: Oid = r.get("attrelid");
        column_types
            .entry(table_oid)
            .or_default()
            .insert(r.get::<_, Oid>("atttypid"));
        let table = &mut tables[position[&table_oid]];
        table.columns.push(Column {
            name: Ident::new(r.get::<_, String>("attname")),
            type_sql: r.get("type_sql"),
            not_null: r.get("attnotnull"),
            default_sql: r.get("default_sql"),
            generated_sql: r.get("generated_sql"),
            identity: match r.get::<_, String>("identity").as_str() {
                "a" => Some(Identity::Always),
                "d" => Some(Identity::ByDefault),
                _ => None,
            },
            collation_sql: r.get("collation_sql"),
            comment: r.get("comment"),
            local: r.get("attislocal"),
        });
    }

    for r in client
        .query(include_str!("sql/constraints.sql"), &[&oids, &standalone])
        .await
        .context("could not read the constraints of the chosen tables from the source")?
    {
        let table = &mut tables[position[&r.get::<_, Oid>("conrelid")]];
        let kind = match r.get::<_, String>("contype").as_str() {
            "p" => ConstraintKind::PrimaryKey,
            "u" => ConstraintKind::Unique,
            "c" => ConstraintKind::Check,
            "x" => ConstraintKind::Exclude,
            _ => ConstraintKind::ForeignKey {
                references: QualifiedName::new(
                    r.get::<_, String>("ref_schema"),
                    r.get::<_, String>("ref_table"),
                ),
            },
        };
        table.constraints.push(Constraint {
            name: Ident::new(r.get::<_, String>("conname")),
            kind,
            definition: r.get("definition"),
            validated: r.get("convalidated"),
            columns: r
                .get::<_, Vec<String>>("columns")
                .into_iter()
                .map(Ident::new)
                .collect(),
            local: r.get("conislocal"),
            deferrable: r.get("condeferrable"),
            // Filled in from the indexes, below.
            index_body: None,
        });
    }

    for r in client
        .query(include_str!("sql/indexes.sql"), &[&oids, &standalone])
        .await
        .context("could not read the indexes of the chosen tables from the source")?
    {
        let table = &mut tables[position[&r.get::<_, Oid>("indrelid")]];
        match r.get::<_, Option<String>>("constraint_name") {
            Some(owner) => {
                if let Some(c) = table.constraints.iter_mut().find(|c| c.name.raw() == owner) {
                    c.index_body = r.get("body");
                }
            }
            None => table.indexes.push(Index {
                name: Ident::new(r.get::<_, String>("index_name")),
                definition: r.get("definition"),
                body: r.get("body"),
            }),
        }
    }

    for r in query(
        client,
        include_str!("sql/sequences.sql"),
        &oids,
        "sequences",
    )
    .await?
    {
        let table = &mut tables[position[&r.get::<_, Oid>("table_oid")]];
        table.sequences.push(Sequence {
            name: QualifiedName::new(r.get::<_, String>("nspname"), r.get::<_, String>("relname")),
            column: Ident::new(r.get::<_, String>("column_name")),
            identity: r.get::<_, String>("deptype") == "i",
            data_type: r.get("data_type"),
            start: r.get("seqstart"),
            increment: r.get("seqincrement"),
            min: r.get("seqmin"),
            max: r.get("seqmax"),
            cache: r.get("seqcache"),
            cycle: r.get("seqcycle"),
        });
    }

    if triggers {
        for r in client
            .query(include_str!("sql/triggers.sql"), &[&oids, &standalone])
            .await
            .context("could not read the triggers of the chosen tables from the source")?
        {
            tables[position[&r.get::<_, Oid>("tgrelid")]]
                .triggers
                .push(Trigger {
                    name: Ident::new(r.get::<_, String>("tgname")),
                    definition: r.get("definition"),
                    state: TriggerState::from_catalog(&r.get::<_, String>("enabled")),
                });
        }
    }
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
                sequence: Sequence {
                    name,
                    column: Ident::new(
                        r.get::<_, Option<String>>("owner_column")
                            .unwrap_or_default(),
                    ),
                    identity: false,
                    data_type: r.get("data_type"),
                    start: r.get("seqstart"),
                    increment: r.get("seqincrement"),
                    min: r.get("seqmin"),
                    max: r.get("seqmax"),
                    cache: r.get("seqcache"),
                    cycle: r.get("seqcycle"),
                },
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

async fn query(
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

/// One attribute of a composite type: name, type text, collation, and the type's oid (to
/// follow dependencies).
struct Attribute {
    name: Ident,
    type_sql: String,
    collation_sql: Option<String>,
    type_oid: Oid,
}

/// Attributes of composite types, by the type's `pg_class` oid.
type Attributes = HashMap<Oid, Vec<Attribute>>;

/// Facts about one type, as `types.sql` returns them.
struct TypeRow {
    name: QualifiedName,
    typtype: String,
    array_element: Oid,
    base: Oid,
    relid: Oid,
    range_subtype: Oid,
    extension: Option<Extension>,
    base_sql: Option<String>,
    collation_sql: Option<String>,
    default_sql: Option<String>,
    not_null: bool,
}

/// Walks from the columns' types to every user-defined type they need, and returns those in
/// dependency order (a type after everything it is built from) with the extensions used.
async fn user_types(client: &Client, roots: BTreeSet<Oid>) -> anyhow::Result<TypeWalk> {
    let mut facts: HashMap<Oid, TypeRow> = HashMap::new();
    let mut composite_attrs: Attributes = HashMap::new();
    let mut pending: BTreeSet<Oid> = roots.clone();
    while !pending.is_empty() {
        let batch: Vec<Oid> = pending.iter().copied().collect();
        pending.clear();
        let rows = query(
            client,
            include_str!("sql/types.sql"),
            &batch,
            "column types",
        )
        .await?;
        let mut composites = Vec::new();
        for r in rows {
            let oid: Oid = r.get("oid");
            let schema: String = r.get("nspname");
            let row = TypeRow {
                name: QualifiedName::new(schema.clone(), r.get::<_, String>("typname")),
                typtype: r.get("typtype"),
                array_element: r.get("array_element"),
                base: r.get("typbasetype"),
                relid: r.get("typrelid"),
                range_subtype: r.get("range_subtype"),
                extension: r
                    .get::<_, Option<String>>("extension")
                    .map(|name| Extension {
                        name,
                        schema: Ident::new(r.get::<_, String>("extension_schema")),
                    }),
                base_sql: r.get("base_sql"),
                collation_sql: r.get("collation_sql"),
                default_sql: r.get("default_sql"),
                not_null: r.get("typnotnull"),
            };
            let builtin = schema == "pg_catalog" || schema == "information_schema";
            if row.extension.is_none() && !builtin {
                for dep in [row.array_element, row.base, row.range_subtype] {
                    if dep != 0 && !facts.contains_key(&dep) {
                        pending.insert(dep);
                    }
                }
                if row.typtype == "c" {
                    composites.push(row.relid);
                }
            } else if row.array_element != 0 && !facts.contains_key(&row.array_element) {
                pending.insert(row.array_element);
            }
            facts.insert(oid, row);
        }
        if !composites.is_empty() {
            for r in query(
                client,
                include_str!("sql/composite_attributes.sql"),
                &composites,
                "composite type attributes",
            )
            .await?
            {
                let typ: Oid = r.get("atttypid");
                composite_attrs
                    .entry(r.get("attrelid"))
                    .or_default()
                    .push(Attribute {
                        name: Ident::new(r.get::<_, String>("attname")),
                        type_sql: r.get("type_sql"),
                        collation_sql: r.get("collation_sql"),
                        type_oid: typ,
                    });
                if !facts.contains_key(&typ) {
                    pending.insert(typ);
                }
            }
        }
        pending.retain(|o| !facts.contains_key(o));
    }

    let user: Vec<Oid> = facts
        .iter()
        .filter(|(_, f)| {
            f.extension.is_none()
                && f.array_element == 0
                && matches!(f.typtype.as_str(), "e" | "d" | "c" | "r")
                && f.name.schema.raw() != "pg_catalog"
                && f.name.schema.raw() != "information_schema"
        })
        .map(|(o, _)| *o)
        .collect();
    let mut labels: HashMap<Oid, Vec<String>> = HashMap::new();
    let mut checks: HashMap<Oid, Vec<(Ident, String)>> = HashMap::new();
    if !user.is_empty() {
        for r in query(
            client,
            include_str!("sql/enum_labels.sql"),
            &user,
            "enum labels",
        )
        .await?
        {
            labels
                .entry(r.get("enumtypid"))
                .or_default()
                .push(r.get("enumlabel"));
        }
        for r in query(
            client,
            include_str!("sql/domain_constraints.sql"),
            &user,
            "domain constraints",
        )
        .await?
        {
            checks.entry(r.get("contypid")).or_default().push((
                Ident::new(r.get::<_, String>("conname")),
                r.get("definition"),
            ));
        }
    }

    // Dependency order: depth-first from each root, a type emitted after its parts.
    let mut ordered = Vec::new();
    let mut seen = BTreeSet::new();
    let mut extensions = BTreeSet::new();
    fn visit(
        oid: Oid,
        facts: &HashMap<Oid, TypeRow>,
        attrs: &Attributes,
        seen: &mut BTreeSet<Oid>,
        ordered: &mut Vec<Oid>,
        extensions: &mut BTreeSet<Extension>,
    ) {
        if !seen.insert(oid) {
            return;
        }
        let Some(f) = facts.get(&oid) else { return };
        if let Some(ext) = &f.extension {
            extensions.insert(ext.clone());
            return;
        }
        let mut deps = vec![f.array_element, f.base, f.range_subtype];
        if let Some(a) = attrs.get(&f.relid) {
            deps.extend(a.iter().map(|attr| attr.type_oid));
        }
        for dep in deps.into_iter().filter(|d| *d != 0) {
            visit(dep, facts, attrs, seen, ordered, extensions);
        }
        ordered.push(oid);
    }
    for root in &roots {
        visit(
            *root,
            &facts,
            &composite_attrs,
            &mut seen,
            &mut ordered,
            &mut extensions,
        );
    }

    // What each type found requires on the target: itself when it is a user type, its
    // extension, its element's requirement for an array, nothing for a built-in one.
    let mut requirement: HashMap<Oid, Requirement> = HashMap::new();
    let user: BTreeSet<Oid> = user.into_iter().collect();
    fn requirement_of(
        oid: Oid,
        facts: &HashMap<Oid, TypeRow>,
        user: &BTreeSet<Oid>,
    ) -> Option<Requirement> {
        let f = facts.get(&oid)?;
        if let Some(ext) = &f.extension {
            return Some(Requirement::Extension(ext.name.clone()));
        }
        if user.contains(&oid) {
            return Some(Requirement::Type(f.name.clone()));
        }
        if f.array_element != 0 && f.array_element != oid {
            return requirement_of(f.array_element, facts, user);
        }
        None
    }
    for oid in facts.keys() {
        if let Some(r) = requirement_of(*oid, &facts, &user) {
            requirement.insert(*oid, r);
        }
    }
    let types = ordered
        .into_iter()
        .filter(|o| user.contains(o))
        .map(|oid| {
            let f = &facts[&oid];
            let mut parts = vec![f.array_element, f.base, f.range_subtype];
            if let Some(a) = composite_attrs.get(&f.relid) {
                parts.extend(a.iter().map(|attr| attr.type_oid));
            }
            let requires: BTreeSet<Requirement> = parts
                .into_iter()
                .filter(|p| *p != 0 && *p != oid)
                .filter_map(|p| requirement.get(&p).cloned())
                .collect();
            let kind = match f.typtype.as_str() {
                "e" => TypeKind::Enum {
                    labels: labels.remove(&oid).unwrap_or_default(),
                },
                "d" => TypeKind::Domain {
                    base_sql: f.base_sql.clone().unwrap_or_default(),
                    collation_sql: f.collation_sql.clone(),
                    default_sql: f.default_sql.clone(),
                    not_null: f.not_null,
                    checks: checks.remove(&oid).unwrap_or_default(),
                },
                "r" => TypeKind::Range {
                    subtype_sql: facts
                        .get(&f.range_subtype)
                        .map(|s| s.name.to_string())
                        .unwrap_or_default(),
                },
                _ => TypeKind::Composite {
                    attributes: composite_attrs
                        .get(&f.relid)
                        .map(|a| {
                            a.iter()
                                .map(|a| {
                                    (a.name.clone(), a.type_sql.clone(), a.collation_sql.clone())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                },
            };
            (
                oid,
                UserType {
                    name: f.name.clone(),
                    kind,
                    requires,
                },
            )
        })
        .collect();
    Ok(TypeWalk {
        types,
        requirement,
        extensions: extensions.into_iter().map(|e| (e.name, e.schema)).collect(),
    })
}

/// The user types that columns (and functions) need, and what every type met requires.
struct TypeWalk {
    /// User types in dependency order, with their oids.
    types: Vec<(Oid, UserType)>,
    /// What each type oid met requires on the target (see `requirement_of`).
    requirement: HashMap<Oid, Requirement>,
    /// Extensions of the types met, with their schemas.
    extensions: BTreeMap<String, Ident>,
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

/// Groups tables into units that must load in one transaction: tables joined by foreign keys
/// (in either direction, within the chosen set) belong together, so that truncating and
/// reloading them is atomic and the keys can be checked when the unit commits; so do
/// inheritance children and their parents.
pub fn foreign_key_groups(tables: &[Table]) -> Vec<Vec<usize>> {
    let index: BTreeMap<&QualifiedName, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (&t.name, i))
        .collect();
    let mut parent: Vec<usize> = (0..tables.len()).collect();
    fn find(parent: &mut [usize], i: usize) -> usize {
        let mut root = i;
        while parent[root] != root {
            root = parent[root];
        }
        parent[i] = root;
        root
    }
    for (i, t) in tables.iter().enumerate() {
        let references = t.constraints.iter().filter_map(|c| match &c.kind {
            ConstraintKind::ForeignKey { references } => Some(references),
            _ => None,
        });
        // An inheritance child is made INHERITS its parents: it needs them in its unit.
        for other in references.chain(&t.inherits) {
            if let Some(&j) = index.get(other) {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..tables.len() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(i);
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(columns: &[(&str, &str)], indexes: &[(&str, &str)]) -> Shape {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Shape {
            columns: map(columns),
            indexes: map(indexes),
            ..Shape::default()
        }
    }

    #[test]
    fn shape_changes_name_what_was_added_changed_and_dropped() {
        let old = shape(
            &[("id", "integer"), ("gone", "text")],
            &[("t_idx", "btree (id)")],
        );
        let new = shape(
            &[("id", "bigint"), ("note", "text")],
            &[("t_idx", "btree (id)")],
        );
        assert_eq!(
            new.changes_since(&old),
            [
                "column gone dropped",
                "column id changed (integer -> bigint)",
                "column note added (text)",
            ]
        );
        assert!(new.changes_since(&new).is_empty());
    }
}
