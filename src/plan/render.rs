//! The dry run: the plan as SQL a person can read, and run by hand, in execution order.

use std::fmt;

use super::{Phase, Plan, Step, StepKind};
use crate::cli::LinkKind;

impl fmt::Display for Plan {
    /// The dry run: SQL a person can read, and run by hand, in execution order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "-- the target server reads the source through {}: {}",
            self.link.as_str(),
            match self.link {
                LinkKind::Dblink => "every session in the run's one snapshot",
                LinkKind::PostgresFdw =>
                    "each session in a snapshot of its own, taken at its first read",
            }
        )?;
        writeln!(f, "-- setup, in one transaction")?;
        writeln!(f, "BEGIN;")?;
        for step in &self.setup {
            write_step(f, step)?;
        }
        writeln!(f, "COMMIT;")?;
        for (name, reason) in &self.refused {
            writeln!(f, "\n-- {} is not copied: {reason}", name.human())?;
        }
        for (n, unit) in self.units.iter().enumerate() {
            let names: Vec<String> = unit
                .tables
                .iter()
                .map(|t| format!("{} ({})", t.name.human(), t.action.planned_word()))
                .collect();
            writeln!(f, "\n-- unit {}: {}", n + 1, names.join(", "))?;
            for split in &unit.splits {
                let table = &unit.tables[split.table];
                if split.merged {
                    writeln!(
                        f,
                        "-- {}: {} of its ranges at once (a session and a transaction each) into \
                         {}, while the unit loads the first; the unit then copies their rows{}",
                        table.name.human(),
                        split.ranges.len(),
                        split.load_table,
                        table
                            .reason
                            .as_ref()
                            .map(|r| format!(" (reloaded {r})"))
                            .unwrap_or_default()
                    )?;
                } else {
                    writeln!(
                        f,
                        "-- {} first, in {} ranges at once (a session and a transaction each) \
                         into {}; the unit moves it into place",
                        table.name.human(),
                        split.ranges.len(),
                        split.load_table
                    )?;
                }
                for (k, range) in split.ranges.iter().enumerate() {
                    writeln!(f, "-- range {} of {}", k + 1, split.ranges.len())?;
                    write_steps(f, &range.steps)?;
                }
                if !split.indexes.is_empty() {
                    writeln!(
                        f,
                        "-- then its indexes on the load table, at once, a session each"
                    )?;
                    for step in &split.indexes {
                        write_step(f, step)?;
                    }
                }
            }
            let builds = &unit.builds;
            if !builds.tables.is_empty() {
                writeln!(
                    f,
                    "-- at the same time as the unit, up to {} helper session(s) build the \
                     unit's new tables it has not reached yet, from the last one back, each \
                     into a load table in a transaction of its own; the unit moves them into \
                     place",
                    builds.helpers
                )?;
                write_steps(f, &builds.connect)?;
                for build in &builds.tables {
                    write_steps(f, &build.steps)?;
                }
                write_steps(f, &builds.disconnect)?;
            }
            if unit.splits.iter().any(|s| !s.merged) {
                writeln!(f, "-- the unit, once every range has committed")?;
            } else if !unit.splits.is_empty() {
                writeln!(f, "-- the unit, at the same time")?;
            }
            write_steps(f, &unit.steps)?;
            if unit.steps.iter().any(|s| s.phase == Phase::TableStart) {
                writeln!(
                    f,
                    "-- if a statement between a table's SAVEPOINT and RELEASE fails, that table \
                     alone is undone (and not copied), and the unit goes on:\n{};",
                    unit.undo_table
                )?;
            }
            for (_, discard) in unit.discards() {
                writeln!(f, "-- if the unit does not commit:\n{discard};")?;
            }
        }
        Ok(())
    }
}

/// Statements of one session, with the transaction they run in.
fn write_steps(f: &mut fmt::Formatter<'_>, steps: &[Step]) -> fmt::Result {
    let mut in_transaction = false;
    for step in steps {
        let inside = !matches!(step.phase, Phase::Connect | Phase::Disconnect);
        if inside && !in_transaction {
            writeln!(f, "BEGIN;")?;
            in_transaction = true;
        }
        if !inside && in_transaction {
            writeln!(f, "COMMIT;")?;
            in_transaction = false;
        }
        write_step(f, step)?;
    }
    if in_transaction {
        writeln!(f, "COMMIT;")?;
    }
    Ok(())
}

/// One statement, after what a reader needs to know about it.
fn write_step(f: &mut fmt::Formatter<'_>, step: &Step) -> fmt::Result {
    if let Some(note) = &step.note {
        writeln!(f, "-- {note}")?;
    }
    match step.kind {
        StepKind::Batch { .. } => {
            writeln!(f, "-- repeated until it inserts fewer rows than it fetches")?
        }
        StepKind::Synced { batch: Some(_) } => {
            writeln!(f, "-- repeated until it takes fewer keys than it asks for")?
        }
        StepKind::Record => writeln!(
            f,
            "-- $1 rows inserted, $2 rows skipped, $3 pushed down, $4 the source's time of the \
             run's snapshot, $5 highest key read"
        )?,
        _ => {}
    }
    // A step the executor answers itself (`Claim`, `Built`) has only its note.
    if step.sql.is_empty() {
        return Ok(());
    }
    writeln!(f, "{};", step.text())
}
