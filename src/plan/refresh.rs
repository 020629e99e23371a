//! Refresh modes: what happens to a table snapcopy already manages. A mode decides; the row
//! SQL for what it decided is [`super::rows`]'s business.
//!
//! Each mode is one type behind [`Refresh`]. `full` truncates and reloads (or rebuilds a table
//! whose shape changed on the source); `incremental` inserts the rows whose key is missing,
//! reading from the source only the rows above the last copy's high-water mark when the key
//! only grows; `sync` makes the table equal to the source, writing only the rows that differ
//! (see `plan::sync`), and reloads in full the tables it cannot compare, saying why.

use super::decide::Decision;
use super::{Action, Pushdown};
use crate::cli::LinkKind;
use crate::source::{Identity, Table};
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

/// Make the table equal to the source, moving only the rows that differ.
pub struct Sync {
    /// How the target server reads the source: only dblink runs the comparison's queries on
    /// the source.
    pub link: LinkKind,
}

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

impl Refresh for Sync {
    fn name(&self) -> &'static str {
        "sync"
    }

    /// A table sync cannot compare row by row is reloaded in full (rebuilt when its shape
    /// changed), and the summary says why.
    fn existing(
        &self,
        table: &Table,
        changes: Vec<String>,
        _cursor: Option<&Ident>,
    ) -> Result<Decision, String> {
        if !changes.is_empty() {
            return Ok(Decision {
                changes,
                reason: Some("its shape changed on the source, so sync rebuilds it".into()),
                ..Decision::new(Action::Rebuild)
            });
        }
        Ok(match self.unsyncable(table) {
            Some(why) => Decision {
                reason: Some(format!("{why}: reloaded in full")),
                ..Decision::new(Action::Reload)
            },
            None => Decision::new(Action::Sync),
        })
    }
}

impl Sync {
    /// Why `table` cannot be synced row by row, if it cannot.
    pub(super) fn unsyncable(&self, table: &Table) -> Option<String> {
        let Some(key) = table.key(None) else {
            return Some(
                "no primary key nor unique key on NOT NULL columns to match rows by".into(),
            );
        };
        if self.link != LinkKind::Dblink {
            return Some(format!(
                "{} cannot run sync's comparison on the source (--link dblink can)",
                self.link.as_str()
            ));
        }
        // An update cannot set a GENERATED ALWAYS identity column.
        table
            .columns
            .iter()
            .find(|c| c.identity == Some(Identity::Always) && !key.columns.contains(&c.name))
            .map(|c| {
                format!(
                    "its column {} is GENERATED ALWAYS AS IDENTITY outside the key, which an \
                     update cannot set",
                    c.name.raw()
                )
            })
    }
}
