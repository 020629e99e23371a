//! Refresh modes: what happens to a table snapcopy already manages. A mode decides; the row
//! SQL for what it decided is [`super::rows`]'s business.
//!
//! Each mode is one type behind [`Refresh`]. `full` truncates and reloads (or rebuilds a table
//! whose shape changed on the source); `incremental` inserts the rows whose key is missing,
//! reading from the source only the rows above the last copy's high-water mark when the key
//! only grows.

use super::decide::Decision;
use super::{Action, Pushdown};
use crate::source::Table;
use crate::sql::Ident;

/// One refresh mode.
pub trait Refresh {
    /// The mode's name in the registry and messages.
    fn name(&self) -> &'static str;

    /// The verdict on a table snapcopy manages that exists on the target: what to do, or why
    /// not (`Err` refuses the table, with a message that says what to do instead). `changes`
    /// lists what changed on the source since the last copy; `cursor` is the configured
    /// growing column, if any.
    fn existing(
        &self,
        table: &Table,
        changes: Vec<String>,
        cursor: Option<&Ident>,
    ) -> Result<Decision, String>;
}

/// Truncate and reload; rebuild when the source's shape changed.
pub struct Full;

/// Insert what is missing.
pub struct Incremental;

impl Refresh for Full {
    fn name(&self) -> &'static str {
        "full"
    }

    fn existing(
        &self,
        _table: &Table,
        changes: Vec<String>,
        _cursor: Option<&Ident>,
    ) -> Result<Decision, String> {
        Ok(if changes.is_empty() {
            Decision::new(Action::Reload)
        } else {
            Decision {
                changes,
                ..Decision::new(Action::Rebuild)
            }
        })
    }
}

impl Refresh for Incremental {
    fn name(&self) -> &'static str {
        "incremental"
    }

    fn existing(
        &self,
        table: &Table,
        changes: Vec<String>,
        cursor: Option<&Ident>,
    ) -> Result<Decision, String> {
        let name = table.name.human();
        if !changes.is_empty() {
            return Err(format!(
                "{name} changed on the source since the last copy ({}); incremental mode only \
                 inserts rows into an unchanged table: run snapcopy --mode full {name} to \
                 rebuild it",
                changes.join("; ")
            ));
        }
        if let Some(column) = cursor {
            if !table.columns.iter().any(|c| &c.name == column) {
                return Err(format!(
                    "the key column {} configured for {name} does not exist on the source; fix \
                     [table.\"{name}\"] in snapcopy.toml",
                    column.raw()
                ));
            }
        }
        let Some(key) = table.key(cursor) else {
            return Err(format!(
                "{name} has no primary key and no unique key on NOT NULL columns, so \
                 incremental mode cannot tell which rows are missing; use --mode full for it"
            ));
        };
        Ok(Decision {
            pushdown: Some(match key.cursor {
                Some(cursor) => Pushdown::Above(cursor),
                None => Pushdown::AllKeys,
            }),
            ..Decision::new(Action::Insert)
        })
    }
}
