//! The source catalog's model: what the chosen tables are made of, as the reads in
//! [`super::read`] fill it in, and what the plan needs to know of each.

use std::collections::BTreeSet;

use tokio_postgres::types::Oid;

use super::{Collation, Function, Requirement};
use crate::sql::{Ident, QualifiedName};

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
#[derive(Debug, Clone, Default)]
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
    /// Table and TOAST size on the source, without indexes: about what its rows weigh.
    pub data_bytes: i64,
    /// The rows deleted from it on the source as its statistics count them
    /// (`pg_stat_get_tuples_deleted`, since they were last reset): a hint, never a fact; a
    /// sync compares the keys' totals before their buckets when it is zero.
    pub rows_deleted: i64,
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
    /// Whether other tables inherit from it on the source (a link that cannot read a table
    /// without its children, postgres_fdw, cannot copy it).
    pub has_children: bool,
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
    pub(super) fn shape_suffix(self) -> &'static str {
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
#[derive(Debug, Clone, Default)]
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
    /// The source size of the table and every partition below it.
    pub fn bytes_with_partitions(&self) -> i64 {
        self.total_bytes + self.partitions.iter().map(|p| p.total_bytes).sum::<i64>()
    }

    /// What the rows of the table and every partition below it weigh on the source (table
    /// and TOAST, without indexes).
    pub fn data_bytes_with_partitions(&self) -> i64 {
        self.data_bytes + self.partitions.iter().map(|p| p.data_bytes).sum::<i64>()
    }

    /// The row estimate of the table and every partition below it.
    pub fn rows_with_partitions(&self) -> i64 {
        self.estimated_rows.max(0)
            + self
                .partitions
                .iter()
                .map(|p| p.estimated_rows.max(0))
                .sum::<i64>()
    }

    /// Whether rows must be read through the whole partition tree (no `ONLY`).
    pub fn is_partitioned(&self) -> bool {
        self.partition_by.is_some()
    }

    /// The table's own rows as SQL names them: `ONLY <table>` (an inheritance parent's
    /// children are tables of their own), or a partitioned table with its partitions (it has
    /// no rows of its own).
    pub fn own_rows(&self) -> String {
        if self.is_partitioned() {
            self.name.to_string()
        } else {
            format!("ONLY {}", self.name)
        }
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
    /// For a foreign key: the referenced columns, in the order of [`Constraint::columns`].
    pub ref_columns: Vec<Ident>,
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
    /// Whether other tables inherit from it (inheritance, not partitioning).
    pub has_children: bool,
    pub(super) comment: Option<String>,
    pub(super) estimated_rows: i64,
    pub(super) partkey: Option<String>,
    pub(super) bound: Option<String>,
}
