//! Reloads at the speed of a first copy: a large managed table's keys and indexes are dropped
//! inside its unit's transaction and built after its rows (see [`UnitContext::unindex`]).

use super::unit::UnitContext;
use super::{Action, Phase, Step, TableInfo};
use crate::source::{Constraint, ConstraintKind, Index, Table};
use crate::sql::QualifiedName;

impl UnitContext<'_> {
    /// A large table reloads as fast as it was first copied: its keys and indexes are dropped
    /// before its rows go in and built after them (a sort, not an insert per row into each
    /// index), as a first copy builds them; the unit's foreign keys to it, and its own to the
    /// unit's tables, go and come back with them (checked once each, not per row). What
    /// something else needs (a view grouping by the key, a foreign key from a table outside
    /// the unit) stays in place, and so does every index the target added.
    /// Drops are added to `steps` and what they dropped to `readd`; returns the indexes to
    /// build again.
    pub(super) fn unindex<'t>(
        &self,
        ordered: &[&'t Table],
        infos: &[TableInfo],
        readd: &mut Vec<(QualifiedName, &'t Constraint)>,
        steps: &mut Vec<Step>,
    ) -> Vec<(QualifiedName, &'t Index)> {
        let mut reindex = Vec::new();
        // The user's tables keep their keys, and their foreign keys have no definition to
        // add back.
        if infos.iter().any(|i| i.data_only) {
            return reindex;
        }
        // Drops a constraint for the reload and records it to add back, once.
        fn drop<'t>(
            steps: &mut Vec<Step>,
            readd: &mut Vec<(QualifiedName, &'t Constraint)>,
            table: &QualifiedName,
            c: &'t Constraint,
        ) {
            if readd.iter().any(|(t, d)| t == table && d.name == c.name) {
                return;
            }
            steps.push(Step::new(
                Phase::Truncate,
                None,
                format!("ALTER TABLE {table} DROP CONSTRAINT {}", c.name),
            ));
            readd.push((table.clone(), c));
        }
        for (table, info) in ordered.iter().zip(infos) {
            if !self.reindexes(table, info) {
                continue;
            }
            let on_target = self.target.indexes.get(&table.name);
            let free = |name: &str| on_target.and_then(|m| m.get(name)) == Some(&false);
            let keys: Vec<&Constraint> = table
                .constraints
                .iter()
                .filter(|c| {
                    matches!(
                        c.kind,
                        ConstraintKind::PrimaryKey
                            | ConstraintKind::Unique
                            | ConstraintKind::Exclude
                    ) && free(c.name.raw())
                })
                .collect();
            if !keys.is_empty() {
                for other in ordered {
                    for c in &other.constraints {
                        let to_it = matches!(&c.kind,
                            ConstraintKind::ForeignKey { references } if references == &table.name);
                        if to_it && self.has_constraint(&other.name, c) {
                            drop(steps, readd, &other.name, c);
                        }
                    }
                }
            }
            // Its own foreign keys to the unit's tables are checked once, after the rows, by one
            // query each, not by a lookup per inserted row.
            let in_unit = |name: &QualifiedName| ordered.iter().any(|t| &t.name == name);
            for c in &table.constraints {
                let within = matches!(&c.kind,
                    ConstraintKind::ForeignKey { references } if in_unit(references));
                if within && self.has_constraint(&table.name, c) {
                    drop(steps, readd, &table.name, c);
                }
            }
            for c in keys {
                drop(steps, readd, &table.name, c);
            }
            for index in table.indexes.iter().filter(|x| free(x.name.raw())) {
                steps.push(Step::new(
                    Phase::Truncate,
                    None,
                    format!("DROP INDEX {}.{}", table.name.schema, index.name),
                ));
                reindex.push((table.name.clone(), index));
            }
        }
        reindex
    }

    /// Whether a reload drops the table's keys and indexes and builds them after its rows: a
    /// managed table large enough to load in batches, with no partitions, inheritance parents
    /// or children (whose indexes and keys are tied to its own).
    pub(super) fn reindexes(&self, table: &Table, info: &TableInfo) -> bool {
        info.action == Action::Reload
            && !info.data_only
            && super::rows::batch_rows(table, self.options.batch_bytes).is_some()
            && !table.is_partitioned()
            && table.partitions.is_empty()
            && table.inherits.is_empty()
            && !table.has_children
            && !self.target.children.contains_key(&table.name)
    }
}
