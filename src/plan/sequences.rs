//! Sequences: each set from the source's state, read in the unit's source transaction, but
//! never behind the copied data.

use std::fmt::Write as _;

use super::unit::UnitContext;
use super::{Action, Phase, Step, TableInfo, TableIx};
use crate::source::{Sequence, Table};
use crate::sql::{literal, Ident, QualifiedName};

impl UnitContext<'_> {
    /// Every sequence the unit's tables own or draw from, set from the source's state but never
    /// behind the copied data.
    pub(super) fn sequence_steps(&self, ordered: &[&Table], infos: &[TableInfo]) -> Vec<Step> {
        let mut steps = Vec::new();
        let prefetch = self.prefetch_sequences(ordered, infos);
        let read = |seq: &QualifiedName| match &prefetch {
            Some(_) => format!(
                "(SELECT last_value, is_called FROM pg_temp.snapcopy_sequences WHERE name = {}) \
                 AS s",
                literal(&seq.to_string())
            ),
            None => self.link.read_sequence(seq),
        };
        if let Some(step) = &prefetch {
            steps.push(step.clone());
        }
        for (i, (table, info)) in ordered.iter().zip(infos).enumerate() {
            let i = TableIx(i);
            if info.data_only {
                steps.extend(self.user_sequence_steps(table, i));
                continue;
            }
            for seq in table.sequences.iter().filter(|s| !self.is_shared(&s.name)) {
                steps.push(Step::new(
                    Phase::Sequences,
                    Some(i),
                    self.setval_sql(
                        seq,
                        &[(&table.name, &seq.column)],
                        matches!(info.action, Action::Insert | Action::UserRows),
                        &read(&seq.name),
                    ),
                ));
            }
        }
        // A shared sequence is set above every column of the unit that draws from it, and
        // never moved back: other units, and tables outside the run, may draw from it too. One
        // statement per table, so that a table that failed takes only its own with it.
        for shared in self.shared {
            for (i, (table, info)) in ordered.iter().zip(infos).enumerate() {
                let i = TableIx(i);
                if info.data_only {
                    continue;
                }
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
                        self.setval_sql(
                            &shared.sequence,
                            &bounds,
                            true,
                            &read(&shared.sequence.name),
                        ),
                    ));
                }
            }
        }
        steps
    }

    /// With two sequences or more to set, the statement that reads all their states from the
    /// source at once, into a temporary table (one round trip to the source instead of one per
    /// sequence); `None` reads each where it is set. Each is still set in a statement of its
    /// own table's, so that a table that failed takes only its own with it.
    fn prefetch_sequences(&self, ordered: &[&Table], infos: &[TableInfo]) -> Option<Step> {
        let mut names: Vec<&QualifiedName> = ordered
            .iter()
            .zip(infos)
            .filter(|(_, info)| !info.data_only)
            .flat_map(|(table, _)| table.sequences.iter().map(|s| &s.name))
            .filter(|name| !self.is_shared(name))
            .collect();
        for shared in self.shared {
            if ordered
                .iter()
                .zip(infos)
                .any(|(t, info)| !info.data_only && shared.involves(&t.name))
            {
                names.push(&shared.sequence.name);
            }
        }
        names.sort();
        names.dedup();
        if names.len() < 2 {
            return None;
        }
        let from = self.link.read_sequences(&names)?;
        Some(Step::new(
            Phase::Sequences,
            None,
            format!(
                "CREATE TEMPORARY TABLE snapcopy_sequences ON COMMIT DROP AS \
                 SELECT name, last_value, is_called FROM {from}"
            ),
        ))
    }

    /// Sets a sequence from the source's state, read through the unit's link (so
    /// in the same source transaction as the rows), but never behind the extreme value of the
    /// columns in `bounds` (tables and columns that draw from it), so that the next local
    /// insert cannot collide; with `keep_local`, never behind the target sequence's own
    /// position either (incremental mode and shared sequences move forward only). When the
    /// source's state wins it is copied as it is (`is_called` included).
    pub(super) fn setval_sql(
        &self,
        seq: &Sequence,
        bounds: &[(&QualifiedName, &Ident)],
        keep_local: bool,
        remote: &str,
    ) -> String {
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
             FROM {remote} \
             CROSS JOIN LATERAL (SELECT CASE WHEN s.is_called THEN s.last_value + {inc} \
             ELSE s.last_value END AS src) AS x \
             CROSS JOIN LATERAL (SELECT {pick}(x.src{candidates}) AS want) AS n",
            seq_name = literal(&seq.name.to_string()),
        )
    }

    /// The sequences a user's table draws from (`--data-only`), moved ahead of its rows: to
    /// the largest value of the integer column that draws from each, unless the sequence is
    /// there already (it never moves back, and is never set from the source's, whose name
    /// may differ).
    fn user_sequence_steps(&self, table: &Table, i: TableIx) -> Vec<Step> {
        let Some(theirs) = self.target.user_tables.get(&table.name) else {
            return Vec::new();
        };
        let only = if theirs.partitioned { "" } else { "ONLY " };
        theirs
            .sequences
            .iter()
            .filter(|(column, _)| theirs.column(column).is_some_and(|c| c.integer))
            .map(|(column, seq)| {
                Step::new(
                    Phase::Sequences,
                    Some(i),
                    format!(
                        "SELECT CASE WHEN m.v IS NULL OR m.v < s.last_value \
                         OR (m.v = s.last_value AND s.is_called) THEN NULL \
                         ELSE pg_catalog.setval({}::regclass, m.v, true) END \
                         FROM (SELECT max({column})::bigint AS v FROM {only}{}) AS m, {seq} AS s",
                        literal(&seq.to_string()),
                        table.name
                    ),
                )
            })
            .collect()
    }

    /// Whether a sequence is shared: called by the defaults of a table that does not own it.
    pub(super) fn is_shared(&self, name: &QualifiedName) -> bool {
        self.shared.iter().any(|s| &s.sequence.name == name)
    }
}
