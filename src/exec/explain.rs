//! What to say when a statement fails: the server's words, and what to do next, from the
//! SQLSTATE and what the statement was for; and the failure a session reports, with the table
//! and what it was doing.

use tokio_postgres::error::SqlState;

use super::session::describe;
use crate::cli::LinkKind;
use crate::plan::{Phase, Step, StepKind, TableIx};

/// A session's failure: the table it was about, what the session was doing, and the message.
#[derive(Debug, Clone)]
pub(super) struct StepError {
    /// The unit's table the failed statement was about, if any.
    pub(super) table: Option<TableIx>,
    /// What the session was doing.
    pub(super) during: During,
    /// What happened and what to do next.
    pub(super) message: String,
}

/// What a session was doing when it failed: the words in parentheses of the error line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum During {
    /// Running a statement of the plan, of this phase.
    Step(Phase),
    /// Opening a target session or its transaction.
    Opening,
    /// Waiting for the other parts of a split load (one failed, or stopped).
    Split,
    /// Checking, before the commit, that the run still holds its lock.
    LockCheck,
    /// Committing the unit.
    Commit,
}

impl During {
    /// The words: `loading its rows`, `committing`.
    pub(super) fn words(self) -> &'static str {
        match self {
            During::Step(phase) => phase.doing(),
            During::Opening => "opening a target session",
            During::Split => "loading its ranges",
            During::LockCheck => "checking the run's lock",
            During::Commit => "committing",
        }
    }
}

impl StepError {
    /// A failure of the session as a whole, about no table in particular.
    pub(super) fn new(during: During, message: String) -> StepError {
        StepError {
            table: None,
            during,
            message,
        }
    }

    /// The error line for the table or tables named `who`.
    pub(super) fn line(&self, who: &str) -> String {
        format!("error: {who} ({}): {}", self.during.words(), self.message)
    }
}

/// Turns a server error into a message that says what to do next. `source_role` is the role
/// the target server reads the source as.
pub(super) fn explain(step: &Step, e: &tokio_postgres::Error, source_role: &str) -> String {
    let message = describe(e);
    let code = e.code();
    match step.phase {
        Phase::Truncate if code == Some(&SqlState::FEATURE_NOT_SUPPORTED) => format!(
            "could not truncate for the reload: {message}; name the referencing table in the \
             same run, or drop its foreign key on the target"
        ),
        Phase::Connect => link_failure(LinkKind::Dblink, code, &message),
        // The source's rows, as of one moment, break a foreign key that the target has: one
        // made there, or one the source does not enforce (NOT VALID, or its triggers off).
        Phase::ForeignKeys if code == Some(&SqlState::FOREIGN_KEY_VIOLATION) => format!(
            "{message}: the source's rows break a foreign key the target has; nothing changed: \
             fix the rows on the source, or drop or change the key on the target, and run again"
        ),
        // What reads rows reads the source through the link from objects snapcopy made itself:
        // a privilege it lacks is the source role's (both links pass the source's SQLSTATE on).
        Phase::Staging | Phase::Data if code == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            format!(
                "{message} on the source: the source role {source_role} may not read it; grant \
                 it SELECT there (the source's owner can), or leave the table out of the run"
            )
        }
        _ if code == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => format!(
            "{message} (while running: {}); grant the target role that privilege, or run \
             snapcopy as a role that has it",
            first_line(step.text())
        ),
        // The link passes the source's SQLSTATE on: the table the catalog listed is gone.
        Phase::Staging | Phase::Data if code == Some(&SqlState::UNDEFINED_TABLE) => {
            format!(
                "{message}: the table was dropped or renamed on the source during the run; run \
                 snapcopy again"
            )
        }
        _ if code == Some(&SqlState::UNDEFINED_FUNCTION) => format!(
            "{message}: the target lacks a function that the table's defaults, checks, indexes \
             or triggers reach; snapcopy creates the functions they call, but not those called \
             only from inside another function's body: create it on the target (as on the \
             source) and run again"
        ),
        // A sync writes the rows that differ one key at a time, so a unique value that moved
        // between rows, a local index, or a foreign key to a column that changed can stop it.
        Phase::Data
            if matches!(step.kind, StepKind::Synced { .. })
                && (code == Some(&SqlState::UNIQUE_VIOLATION)
                    || code == Some(&SqlState::FOREIGN_KEY_VIOLATION)) =>
        {
            format!(
                "{message}: a sync updates the rows that differ one by one, and the target's \
                 constraint refused one of them (a unique value that moved between rows on the \
                 source, an index made on the target, a foreign key to a column that changed); \
                 nothing changed: reload the table with --mode full, or drop the target's own \
                 index, and run again"
            )
        }
        // The table was made from the source's catalog, so a value it refuses meets a type
        // that was on the target already (snapcopy keeps those as they are).
        Phase::Data if code.is_some_and(refused_value) => format!(
            "{message}: a value from the source does not fit the table on the target, because \
             of a type or domain the target already had (snapcopy keeps those) or a change made \
             to the table there; make the target's definition match the source's (or drop it \
             there so that snapcopy creates the source's) and run again"
        ),
        // The lock table is full (a count before the run refuses the units sure to fill it):
        // told by the server's hint, whose setting name no translation changes.
        _ if code == Some(&SqlState::OUT_OF_MEMORY)
            && e.as_db_error()
                .and_then(|d| d.hint())
                .is_some_and(|h| h.contains("max_locks_per_transaction")) =>
        {
            format!(
                "{message} (while running: {}): the target's lock table is full; a unit holds a \
                 lock on each table, index, sequence and staging object it makes or writes until \
                 it commits, and tables tied by foreign keys are one unit; nothing changed: raise \
                 max_locks_per_transaction on the target (postgresql.conf, then restart it) and \
                 run again",
                first_line(step.text())
            )
        }
        _ => format!("{message} (while running: {})", first_line(step.text())),
    }
}

/// A value the target's type refused: a data exception (class 22), or a domain's CHECK or
/// NOT NULL.
pub(super) fn refused_value(code: &SqlState) -> bool {
    code.code().starts_with("22")
        || *code == SqlState::CHECK_VIOLATION
        || *code == SqlState::NOT_NULL_VIOLATION
}

/// A statement's first line, cut to 200 bytes, for messages.
pub fn first_line(sql: &str) -> String {
    let line = sql.lines().next().unwrap_or_default();
    let cut = crate::sql::truncate_bytes(line, 200);
    if cut.len() < line.len() {
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

/// What to say when the target server cannot open its link's connection to the source.
pub fn link_failure(link: LinkKind, code: Option<&SqlState>, message: &str) -> String {
    let link = link.as_str();
    // dblink's and postgres_fdw's own refusal of a connection without a password, for a role
    // that is not a superuser.
    if code == Some(&SqlState::S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED) {
        format!(
            "the target server's {link} refused to connect to the source: {message}. {link} lets \
             a role that is not a superuser connect only with a password that the source \
             actually asks for: give the source role a password in the connection string (or \
             ~/.pgpass) and have the source's pg_hba.conf use scram-sha-256 or md5 for \
             connections from the target server, or run snapcopy as a superuser of the target"
        )
    } else {
        format!(
            "the target server could not open its {link} connection to the source: {message}. \
             Check that the target server can reach the source (see --source-via) and that the \
             source accepts the credentials in the user mapping"
        )
    }
}

/// The Debian package that ships an extension, for error messages.
pub fn package_for(extension: &str) -> String {
    match extension {
        "postgis" | "postgis_raster" | "postgis_topology" | "postgis_sfcgal" => {
            "Debian: postgresql-15-postgis-3".into()
        }
        "dblink" | "postgres_fdw" | "citext" | "hstore" | "ltree" | "pg_trgm" | "cube" | "isn"
        | "btree_gist" | "btree_gin" | "uuid-ossp" | "pgcrypto" | "tablefunc" | "intarray"
        | "seg" => "Debian: postgresql-contrib".into(),
        other => format!("the package that provides {other}"),
    }
}
