//! The definitions of a table the run makes: serial sequences and the bare table (with its
//! inheritance), moving a split table's load table into place, and after the rows its keys,
//! indexes and triggers; dropping a table a rebuild makes anew.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::split::{LoadNames, Prebuilt, PrebuiltFor};
use super::unit::UnitContext;
use super::{Phase, Step, TableIx};
use crate::source::{Column, Constraint, ConstraintKind, Identity, Sequence, Table, TriggerState};
use crate::sql::{literal, Ident, QualifiedName};

/// How a table that keeps its inheritance parents is made.
pub(super) enum Inheritance<'a> {
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
    pub(super) fn of(table: &Table, tables: &'a [Table]) -> Option<Inheritance<'a>> {
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
pub(super) fn create_table_steps(
    table: &Table,
    i: TableIx,
    load: Option<&LoadNames>,
    inheritance: Option<&Inheritance>,
) -> Vec<Step> {
    let d = Definition {
        table,
        i,
        load,
        inheritance,
    };
    let name = d.table_name();
    let mut steps: Vec<Step> = d
        .serials()
        .map(|(k, seq)| {
            d.step(format!(
                "CREATE SEQUENCE IF NOT EXISTS {} {}",
                d.seq_name(k),
                seq.options_sql()
            ))
        })
        .collect();
    steps.push(d.create_table());
    steps.extend(d.inheritance_steps());
    steps.extend(d.partition_steps());
    steps.extend(d.serials().map(|(k, seq)| {
        d.step(format!(
            "ALTER SEQUENCE {} OWNED BY {name}.{}",
            d.seq_name(k),
            seq.column
        ))
    }));
    if let Some(comment) = &table.comment {
        steps.push(d.step(format!("COMMENT ON TABLE {name} IS {}", literal(comment))));
    }
    for col in &table.columns {
        if let Some(comment) = &col.comment {
            steps.push(d.step(format!(
                "COMMENT ON COLUMN {name}.{} IS {}",
                col.name,
                literal(comment)
            )));
        }
    }
    steps
}

/// A table as the run makes it: under its load names for a split load, and with its
/// inheritance.
struct Definition<'a> {
    table: &'a Table,
    i: TableIx,
    load: Option<&'a LoadNames>,
    inheritance: Option<&'a Inheritance<'a>>,
}

impl Definition<'_> {
    fn step(&self, sql: String) -> Step {
        Step::new(Phase::PreData, Some(self.i), sql)
    }

    fn table_name(&self) -> &QualifiedName {
        self.load.map_or(&self.table.name, |l| &l.table)
    }

    /// The name of the table's `k`th sequence.
    fn seq_name(&self, k: usize) -> &QualifiedName {
        self.load
            .map_or(&self.table.sequences[k].name, |l| &l.sequences[k])
    }

    /// Serial sequences (identity ones come with their column), by position.
    fn serials(&self) -> impl Iterator<Item = (usize, &Sequence)> {
        self.table
            .sequences
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.identity)
    }

    /// The parents the table is made `INHERITS`, if it is.
    fn declared(&self) -> Option<&Vec<&Table>> {
        match self.inheritance {
            Some(Inheritance::Declared(parents)) => Some(parents),
            _ => None,
        }
    }

    /// `CREATE TABLE` with the columns (with INHERITS, only those the table defines itself:
    /// the parents' are theirs to make) and valid CHECKs.
    fn create_table(&self) -> Step {
        let table = self.table;
        let declared = self.declared();
        let mut lines: Vec<String> = table
            .columns
            .iter()
            .filter(|c| c.local || declared.is_none())
            .map(|col| self.column_line(col))
            .collect();
        for c in &table.constraints {
            if c.kind == ConstraintKind::Check && c.validated && (c.local || declared.is_none()) {
                lines.push(format!("    CONSTRAINT {} {}", c.name, c.definition));
            }
        }
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
        self.step(format!(
            "CREATE TABLE {} (\n{}\n){inherits}{}",
            self.table_name(),
            lines.join(",\n"),
            partition_clause(table)
        ))
    }

    /// One column's line in `CREATE TABLE`.
    fn column_line(&self, col: &Column) -> String {
        let mut line = format!("    {} {}", col.name, col.type_sql);
        if let Some(c) = &col.collation_sql {
            write!(line, " COLLATE {c}").unwrap();
        }
        if let Some(identity) = col.identity {
            let seq = self
                .table
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
                    self.seq_name(k),
                    seq.options_sql()
                        .trim_start_matches(&format!("AS {} ", seq.data_type))
                )
                .unwrap();
            }
        }
        if let Some(g) = &col.generated_sql {
            write!(line, " GENERATED ALWAYS AS ({g}) STORED").unwrap();
        }
        if let Some(d) = col.default_sql.as_ref().filter(|_| self.load.is_none()) {
            write!(line, " DEFAULT {d}").unwrap();
        }
        if col.not_null {
            line.push_str(" NOT NULL");
        }
        line
    }

    /// Made `INHERITS`: what the table changed on a column it inherits (its default, NOT
    /// NULL). Attached: its columns were made in its own order, now attach it to its parents.
    fn inheritance_steps(&self) -> Vec<Step> {
        let (table, table_name) = (self.table, self.table_name());
        let mut steps = Vec::new();
        match self.inheritance {
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
                            Some(self.i),
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
                        Some(self.i),
                        format!("ALTER TABLE {table_name} INHERIT {parent}"),
                    ));
                }
            }
            None => {}
        }
        steps
    }

    /// Partitions take their columns from the parent; parents come before their children.
    fn partition_steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        for part in &self.table.partitions {
            let Some((parent, bound)) = &part.partition_of else {
                continue;
            };
            let sub = partition_clause(part);
            steps.push(Step::new(
                Phase::PreData,
                Some(self.i),
                format!(
                    "CREATE TABLE {} PARTITION OF {parent} {bound}{sub}",
                    part.name
                ),
            ));
            if let Some(comment) = &part.comment {
                steps.push(Step::new(
                    Phase::PreData,
                    Some(self.i),
                    format!("COMMENT ON TABLE {} IS {}", part.name, literal(comment)),
                ));
            }
        }
        steps
    }
}

/// Moves a split table's load table into place under the table's name, its sequences
/// with it, and gives its columns their defaults (which may name those sequences).
pub(super) fn move_steps(table: &Table, i: TableIx, load: &LoadNames) -> Vec<Step> {
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
pub(super) fn trigger_steps(table: &Table, i: TableIx) -> Vec<Step> {
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
pub(super) fn partition_clause(table: &Table) -> String {
    table
        .partition_by
        .as_ref()
        .map(|key| format!(" PARTITION BY {key}"))
        .unwrap_or_default()
}

/// After the rows: primary key, unique and exclusion constraints, NOT VALID checks (they stay
/// NOT VALID), then every other index. Keys and indexes in `prebuilt` exist already under a
/// load name: keys are added `USING INDEX`, indexes renamed.
pub(super) fn post_data_steps(
    table: &Table,
    i: TableIx,
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

impl UnitContext<'_> {
    /// Drops a table the unit rebuilds. Its inheritance children that the unit does not make
    /// anew are detached first (they keep their rows), and so is a sequence it owns that
    /// other tables' defaults call (CASCADE would take those defaults with it; the table takes
    /// it back when it is created anew).
    pub(super) fn drop_steps(
        &self,
        name: &QualifiedName,
        in_unit: &BTreeSet<&QualifiedName>,
    ) -> Vec<Step> {
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
}

/// The guard before a table reloaded into a new one drops the old one: locked, the table's
/// fingerprint must be the one the plan read (`fingerprint`, see
/// [`crate::target::state::fingerprint`]). If anything was made on it meanwhile (a view, a
/// grant, an index, a comment...), the unit fails before it changes anything and the table
/// keeps its rows; the next run sees what is on it now. What the drop's CASCADE takes is then
/// only the table's own parts and the unit's foreign keys to it, which the unit adds back.
/// Guards run first in the unit, before its other statements change the unit's tables.
pub(super) fn still_replaceable(name: &QualifiedName, fingerprint: &str) -> Step {
    let now = crate::target::state::fingerprint(&format!(
        "{}::pg_catalog.regclass",
        literal(&name.to_string())
    ));
    Step::new(
        Phase::Truncate,
        None,
        format!(
            "DO $snapcopy$ BEGIN LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE; \
             IF {now} IS DISTINCT FROM {then} THEN RAISE EXCEPTION USING ERRCODE = '55000', \
             MESSAGE = {message}; END IF; END $snapcopy$",
            then = literal(fingerprint),
            message = literal(&format!(
                "{} changed on the target while this run loaded its rows into a new table (a \
                 view, grant, index, comment or other object made on it, or a setting changed): \
                 nothing changed; run again, and the next run takes what is on it now into \
                 account",
                name.human()
            )),
        ),
    )
    .with_note(format!(
        "{} goes only if nothing has come to depend on it",
        name.human()
    ))
}
