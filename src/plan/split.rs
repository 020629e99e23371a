//! Splitting a large table: its ranges as conditions for the source's query, the names it
//! loads under in the staging schema, each range's statements, and the index builds done on the
//! load table before its unit moves it into place.

use super::unit::UnitContext;
use super::{fnv1a, Bounds, Phase, Step, StepKind, TableInfo, TableIx};
use crate::cli::StagingKind;
use crate::source::{Constraint, ConstraintKind, Extent, Table};
use crate::sql::{Ident, QualifiedName};

impl UnitContext<'_> {
    /// The ranges a table created in this run is split into, as conditions for the source's
    /// query, with what they divide (`id`, `blocks`); `None` loads it in one piece. Tables are
    /// split from `split_bytes` on, into `split_ranges` ranges of equal width: of the integer
    /// key's values, else of the heap's blocks. The first and last ranges are open, so a row
    /// outside the bounds read is never missed.
    pub(super) fn ranges(&self, table: &Table, info: &TableInfo) -> Option<(Vec<Bounds>, String)> {
        let options = self.options;
        let splittable = options.split_ranges >= 2
            && options.split_bytes > 0
            && table.total_bytes >= options.split_bytes
            && (info.action.creates() || self.reloads_in_parts(table, info))
            && self.loads_apart(table);
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
        let ranges = (0..=bounds.len())
            .map(|k| Bounds {
                column: column.clone(),
                lower: k.checked_sub(1).map(|k| bound(bounds[k])),
                upper: bounds.get(k).map(|b| bound(*b)),
            })
            .collect();
        Some((ranges, by))
    }

    /// Whether `table` can be loaded apart from its unit, into a load table the unit moves
    /// into place (a split table's ranges, a helper's build): a table read through a view,
    /// whose rows go in the run's snapshot or matter to no other table, with no inheritance or
    /// partitions, no row filter, and only sequences of its own.
    pub(super) fn loads_apart(&self, table: &Table) -> bool {
        self.options.staging == StagingKind::View
            && !table.is_partitioned()
            && table.partitions.is_empty()
            // An inheritance child is made INHERITS its parents, a parent before them.
            && table.inherits.is_empty()
            && !self.tables.iter().any(|t| t.inherits.contains(&table.name))
            // Each range reads in a snapshot of its own when the link cannot share the run's:
            // then only a table no foreign key of the run ties to others, whose rows no other
            // table's must match.
            && (self.link.one_snapshot() || !self.tied_by_foreign_keys(table))
            // A subset is read by its rows' ctids, not in ranges.
            && !self.subsets.limits(&table.name)
            // Owned sequences move with the table into its schema; one that other tables'
            // defaults call must keep its name throughout.
            && table
                .sequences
                .iter()
                .all(|s| s.name.schema == table.name.schema && !self.is_shared(&s.name))
    }

    /// Whether a reload of `table` goes in parts: a large table whose keys are built after its
    /// rows, read through a link whose sessions share the run's snapshot. The unit loads the
    /// first range into the table itself while sessions of their own load the others into a
    /// load table, whose rows the unit then copies (a local copy, cheaper than reading them
    /// through the link one range after another).
    pub(super) fn reloads_in_parts(&self, table: &Table, info: &TableInfo) -> bool {
        info.action == super::Action::Reload
            && self.link.one_snapshot()
            && self.reindexes(table, info)
    }

    /// Whether a full reload of `table` goes into a new table swapped in for the old one,
    /// the way a first copy loads: a table that would reload in parts, which nothing the user
    /// built on the target needs (no view, grant, local index, comment, trigger, policy,
    /// setting: see [`crate::target::TargetState::keeps_identity`]). It saves the local copy
    /// of the other ranges' rows, and its indexes build at once in sessions of their own.
    pub(super) fn replaces(&self, table: &Table, info: &TableInfo) -> bool {
        info.action == super::Action::Reload
            && !info.data_only
            && self.target.fingerprints.contains_key(&table.name)
            && !self.target.keeps_identity.contains_key(&table.name)
            && self.ranges(table, info).is_some()
    }

    /// Whether a foreign key ties `table` to another table of the run, either way.
    fn tied_by_foreign_keys(&self, table: &Table) -> bool {
        let references = |from: &Table, to: &QualifiedName| {
            from.constraints.iter().any(|c| {
                matches!(&c.kind, ConstraintKind::ForeignKey { references } if references == to)
            })
        };
        self.tables.iter().any(|other| {
            other.name != table.name
                && (references(table, &other.name) || references(other, &table.name))
        })
    }

    /// Where a split table is made and loaded: the staging schema, under a name that no
    /// staging object has (theirs hold a dot), its sequences likewise.
    pub(super) fn load_names(&self, table: &Table) -> LoadNames {
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
    pub(super) fn range_steps(
        &self,
        table: &Table,
        i: TableIx,
        load_table: &QualifiedName,
        bounds: &Bounds,
    ) -> Vec<Step> {
        let mut steps = self.connect_steps();
        steps.extend(self.range_rows(table, i, load_table, bounds));
        steps.extend(self.disconnect_steps());
        steps
    }

    /// The rows of one range into `into`: batch by batch for a large range, else in one
    /// statement.
    pub(super) fn range_rows(
        &self,
        table: &Table,
        i: TableIx,
        into: &QualifiedName,
        bounds: &Bounds,
    ) -> Vec<Step> {
        let predicate = bounds.predicate();
        let per_range = table.total_bytes / self.options.split_ranges as i64;
        let batched = (per_range >= 2 * self.options.batch_bytes)
            .then(|| self.batched_load(table, i, Some(&predicate), into))
            .flatten();
        batched.unwrap_or_else(|| {
            vec![Step::new(
                Phase::Data,
                Some(i),
                self.insert_rows(
                    table,
                    into,
                    &self.link.read(&self.read_of(table, Some(predicate))),
                ),
            )
            .of_kind(StepKind::Rows)]
        })
    }

    /// A reload in parts, in its unit: the first range's rows into the table, then (once the
    /// other ranges have committed) the rows they put in the load table, which then goes.
    pub(super) fn merged_rows(
        &self,
        table: &Table,
        i: TableIx,
        load: &LoadNames,
        first: &Bounds,
    ) -> Vec<Step> {
        let mut steps = self.range_rows(table, i, &table.name, first);
        steps.push(
            Step::new(
                Phase::Data,
                Some(i),
                self.insert_rows(table, &table.name, &load.table.to_string()),
            )
            .of_kind(StepKind::Merge),
        );
        steps.push(Step::new(
            Phase::Data,
            Some(i),
            format!("DROP TABLE {}", load.table),
        ));
        steps
    }
}

/// The names a split table and its sequences have until its unit moves them into place.
pub(super) struct LoadNames {
    pub(super) table: QualifiedName,
    /// In the order of the table's sequences.
    pub(super) sequences: Vec<QualifiedName>,
    /// The start of its indexes' names.
    pub(super) index_tag: String,
}

impl LoadNames {
    /// Marks the load table as snapcopy's (see [`super::LOAD_MARKER`]), for the sweep after
    /// an interrupted run.
    pub(super) fn marker(&self) -> String {
        format!(
            "COMMENT ON TABLE {} IS {}",
            self.table,
            crate::sql::literal(super::LOAD_MARKER)
        )
    }
}

/// An index of a split table built on its load table before the unit runs.
pub(super) struct Prebuilt<'a> {
    /// What the index is for.
    pub(super) of: PrebuiltFor<'a>,
    /// Its name until the unit names it.
    pub(super) load_name: Ident,
    /// The statement that builds it on the load table.
    pub(super) create: String,
}

pub(super) enum PrebuiltFor<'a> {
    /// A primary key or unique constraint, added `USING INDEX` (which renames the index).
    Key(&'a Constraint),
    /// An index no constraint owns, renamed.
    Index(&'a crate::source::Index),
}

/// The indexes of a split table that can be built before its unit: primary keys and unique
/// constraints that are not deferrable (added `USING INDEX` afterwards), and plain indexes,
/// when the catalog gave their definitions in a form that can be moved to the load table.
pub(super) fn prebuilt_indexes<'a>(table: &'a Table, load: &LoadNames) -> Vec<Prebuilt<'a>> {
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
