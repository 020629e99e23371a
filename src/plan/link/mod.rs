//! How the target server reads the source: the link's objects (made by the setup), how a
//! session opens and ends its source transaction, and how a statement reads a table's rows or a
//! sequence's state. One type per link behind [`Link`]; the rest of the planner writes the same
//! SQL around the FROM items they return.

mod dblink;
mod fdw;

pub(super) use dblink::Dblink;
pub(super) use fdw::PostgresFdw;
pub use fdw::PROXY_MARKER;

use super::{Phase, PlanOptions, Purpose, Step, StepKind};
use crate::cli::LinkKind;
use crate::source::Table;
use crate::sql::{literal, Ident, QualifiedName};

/// A way for the target server to read the source.
pub(super) trait Link {
    /// Which link this is.
    fn kind(&self) -> LinkKind;

    /// The setup's statements that make the link: its extension when the target lacks it, the
    /// foreign server and the user mapping.
    fn setup_steps(&self) -> Vec<Step>;

    /// The setup's statements, once the types the tables use exist, that check that the target
    /// server reaches the source and make what reading `tables` and `sequences` takes.
    fn reach_steps(&self, tables: &[&Table], sequences: &[&QualifiedName]) -> Vec<Step>;

    /// What a session runs before its target transaction opens (`$1`: the run's snapshot).
    fn connect_steps(&self) -> Vec<Step>;

    /// What a session runs after its target transaction ends.
    fn disconnect_steps(&self) -> Vec<Step>;

    /// `command` (`SAVEPOINT`, `RELEASE SAVEPOINT`) for a table's block, on the target and in
    /// the source transaction when the link holds one of its own.
    fn block_sql(&self, command: &str) -> String;

    /// Undoes a table's block on both sides.
    fn undo_sql(&self) -> String;

    /// A FROM item, aliased `t`, with what `read` takes of its table, evaluated on the source.
    fn read(&self, read: &Read) -> String;

    /// A FROM item, aliased `t`, with the rows of a query the source runs, typed by
    /// `definitions` (`a integer, b text`): for what a link's setup, walk or key comparison
    /// reads besides tables. `select` is SQL of type text that the target evaluates when the
    /// statement runs (a literal, or text built from what the target has). Only dblink can:
    /// the others are refused (or not planned) what needs it.
    fn read_query(&self, select: &str, definitions: &str) -> String;

    /// The `SELECT` the source runs for `read`, as SQL of type text the target evaluates (see
    /// [`Link::read_query`]), for a query around a table's rows; only dblink can.
    fn select_text(&self, read: &Read) -> String;

    /// A statement that starts `select` (as for [`Link::read_query`]) on the source and
    /// returns at once, so that the target can work meanwhile; [`Link::result`] then reads
    /// its rows, and [`Link::finish_sql`] ends it. Only dblink can.
    fn send_sql(&self, select: &str) -> String;

    /// A FROM item, aliased `t`, with the rows of the query [`Link::send_sql`] started, typed
    /// by `definitions`.
    fn result(&self, definitions: &str) -> String;

    /// Ends the query [`Link::send_sql`] started, once its rows are read, so that the
    /// connection takes the next.
    fn finish_sql(&self) -> String;

    /// A FROM item `s(last_value, is_called)` with a source sequence's state.
    fn read_sequence(&self, sequence: &QualifiedName) -> String;

    /// A FROM item `s(name, last_value, is_called)` with the states of several source
    /// sequences read at once (`name` as given), or `None` for a link that reads each apart.
    fn read_sequences(&self, sequences: &[&QualifiedName]) -> Option<String>;

    /// For a link that holds a whole result on the target before the first row is inserted
    /// (dblink), the statements that read the rows in batches from a cursor instead; `None`
    /// for a link that streams.
    fn cursor(&self, read: &Read, batch: i64) -> Option<Cursor>;

    /// Whether every session of a run reads in the run's snapshot. When not, each session
    /// reads in one of its own, taken at its first read.
    fn one_snapshot(&self) -> bool;

    /// The statement that runs `command` (a `SET LOCAL`) in the source transaction, when the
    /// link holds one of its own.
    fn on_source(&self, command: &str) -> Option<String>;

    /// Whether staging objects made through this link last time are still there after the
    /// setup (postgres_fdw's go with the foreign tables the setup makes anew).
    fn keeps_staging_objects(&self) -> bool;

    /// A second connection to the source in the run's snapshot, for a table's statements that
    /// have the source run two queries at once (sync's two passes over a large table): the
    /// statements that open it and close it, and the link that reads through it. Only dblink
    /// has one.
    fn second(&self) -> Option<Second<'_>> {
        None
    }
}

/// A second connection to the source (see [`Link::second`]).
pub(super) struct Second<'a> {
    /// Opens it (closing one a failed table left open) and begins its transaction.
    pub(super) open: Vec<String>,
    /// Ends its transaction and closes it.
    pub(super) close: Vec<String>,
    /// Reads through it.
    pub(super) link: Box<dyn Link + 'a>,
}

/// Why `link` cannot read `table`, if it cannot: postgres_fdw reads an inheritance parent
/// together with its children's rows (it has no way to ask for `ONLY`).
pub(super) fn cannot_read(link: LinkKind, table: &Table) -> Option<String> {
    (link == LinkKind::PostgresFdw && table.has_children).then(|| {
        format!(
            "{} has inheritance children on the source, and postgres_fdw reads a table together \
             with its children's rows: copy it with --link dblink",
            table.name.human()
        )
    })
}

/// What a statement reads of a table from the source.
pub(super) struct Read<'a> {
    /// The table.
    pub(super) table: &'a Table,
    /// Its loaded columns in order, each `"column"` or, masked, `<expression> AS "column"`.
    pub(super) columns: Vec<String>,
    /// Whether any column is masked (a link that cannot evaluate expressions on the source
    /// must not be given one).
    pub(super) masked: bool,
    /// The rows: those where this holds (SQL over the table's columns).
    pub(super) condition: Option<String>,
    /// More of the condition, as an expression the *target* evaluates into SQL text when the
    /// statement runs (a subset's rows, found by the unit's walk): ANDed to `condition`.
    pub(super) computed: Option<String>,
}

/// A cursor over a table's rows in the source transaction, read in batches.
pub(super) struct Cursor {
    /// Opens it.
    pub(super) declare: String,
    /// A FROM item, aliased `t`, with the next batch.
    pub(super) fetch: String,
    /// Closes it.
    pub(super) close: String,
}

/// The link for `options`, its objects under `server` in the staging schema; `dblink_schema`
/// is where the target has dblink's functions, if it has them.
pub(super) fn link_for<'a>(
    options: &'a PlanOptions,
    server: &str,
    dblink_schema: Option<&Ident>,
) -> Box<dyn Link + 'a> {
    match options.link_kind {
        LinkKind::Dblink => Box::new(Dblink::new(options, server, dblink_schema)),
        LinkKind::PostgresFdw => Box::new(PostgresFdw::new(options, server)),
    }
}

/// The foreign server's options: the source's connection parameters without the role's
/// (those go in the user mapping), read-only sessions, exact floats, and snapcopy's
/// application name unless one is given.
pub(super) fn server_options(
    options: &PlanOptions,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut server_options = options.link.server_options();
    // Read-only, and floats printed exactly: dblink matches DateStyle and IntervalStyle to the
    // source's when parsing, but a source set to extra_float_digits = 0 would round floats.
    // No JIT: it compiles the link's queries for longer than they run (most of a second for a
    // subset's walk or a mask, for nothing on a plain scan).
    let read_only = "-c default_transaction_read_only=on -c extra_float_digits=3 -c jit=off";
    match server_options.iter_mut().find(|(k, _)| k == "options") {
        Some((_, v)) => *v = format!("{v} {read_only}"),
        None => server_options.push(("options".into(), read_only.into())),
    }
    if !server_options.iter().any(|(k, _)| k == "application_name") {
        server_options.push(("application_name".into(), "snapcopy".into()));
    }
    server_options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    server_options
}

/// `DROP SERVER` and `CREATE SERVER` for the link's foreign-data wrapper, then the user
/// mapping. The mapping's options (the password among them) reach the server as a bound
/// parameter in a transaction-local setting, and a DO block builds the statement from it:
/// neither pg_stat_activity.query nor a log of DDL statements ever holds the password. Should
/// the statement fail (an event trigger, a duplicate), its error is raised again without the
/// statement, which the server would otherwise log in the error's context.
pub(super) fn server_steps(
    options: &PlanOptions,
    server: &str,
    wrapper: &str,
    server_options: &[(String, String)],
) -> Vec<Step> {
    let server_ident = Ident::new(server);
    let mut steps = vec![
        Step::new(
            Phase::Setup,
            None,
            format!("DROP SERVER IF EXISTS {server_ident} CASCADE"),
        ),
        Step::new(
            Phase::Setup,
            None,
            format!(
                "CREATE SERVER {server_ident} FOREIGN DATA WRAPPER {wrapper} OPTIONS ({})",
                options_list(server_options, false)
            ),
        ),
    ];
    let mapping = options.link.user_mapping_options();
    if mapping.is_empty() {
        steps.push(Step::new(
            Phase::Setup,
            None,
            format!("CREATE USER MAPPING FOR CURRENT_USER SERVER {server_ident}"),
        ));
        return steps;
    }
    let secret = StepKind::Secret {
        shown: format!(
            "CREATE USER MAPPING FOR CURRENT_USER SERVER {server_ident} OPTIONS ({})",
            options_list(&mapping, true)
        ),
        settings: vec![
            ("snapcopy.server".into(), server.to_string()),
            (
                "snapcopy.user_mapping".into(),
                options_list(&mapping, false),
            ),
        ],
    };
    steps.push(
        Step::new(
            Phase::Setup,
            None,
            "DO $snapcopy$ BEGIN EXECUTE pg_catalog.format(\
             'CREATE USER MAPPING FOR CURRENT_USER SERVER %I OPTIONS (%s)', \
             pg_catalog.current_setting('snapcopy.server'), \
             pg_catalog.current_setting('snapcopy.user_mapping')); \
             EXCEPTION WHEN OTHERS THEN \
             RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = SQLERRM; END $snapcopy$"
                .to_string(),
        )
        .of_kind(secret)
        .with_note(
            "run as a DO block, its options bound as a parameter: the password stays out of \
             pg_stat_activity and statement logs"
                .into(),
        ),
    );
    steps
}

/// `CREATE EXTENSION` of the link's extension, in the staging schema, for a target that lacks
/// it.
pub(super) fn extension_step(name: &str, staging_schema: &Ident) -> Step {
    Step::new(
        Phase::Setup,
        None,
        format!("CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA {staging_schema}"),
    )
    .with_purpose(Purpose::Extension(name.into()))
}

/// `key 'value', ...` for a foreign server or user mapping, with the passwords masked when
/// `redact`.
pub(super) fn options_list(options: &[(String, String)], redact: bool) -> String {
    options
        .iter()
        .map(|(k, v)| {
            let value = if redact && (k == "password" || k == "sslpassword") {
                literal("********")
            } else {
                literal(v)
            };
            format!("{} {value}", Ident::new(k.as_str()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
