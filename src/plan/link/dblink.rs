//! dblink: each session opens a dblink connection to the source, begins a read-only
//! transaction there and imports the run's snapshot, so every table of a run is read as of one
//! moment. Queries travel as text; results come back whole (a large read goes in batches from
//! a cursor).

use super::{extension_step, server_options, server_steps, Cursor, Link, Read, Second};
use crate::cli::LinkKind;
use crate::plan::{Phase, PlanOptions, Purpose, Step};
use crate::source::Table;
use crate::sql::{literal, Ident, QualifiedName};

/// The name of a session's second connection to the source (see [`Link::second`]).
const SECOND: &str = "snapcopy_source_second";

/// The target session's setting that holds the run's snapshot.
const SNAPSHOT_SETTING: &str = "snapcopy.snapshot";

/// The dblink link.
#[derive(Clone)]
pub(in crate::plan) struct Dblink<'a> {
    options: &'a PlanOptions,
    /// The foreign server's name, which is also the connection's.
    server: String,
    /// The connection's name: the server's, or [`SECOND`]'s.
    connection: String,
    /// The schema of dblink's functions: the target's, or the staging schema where the setup
    /// creates the extension.
    schema: Ident,
    /// Whether the setup creates the extension.
    create_extension: bool,
    /// Whether the run masks: its source transactions get the key.
    masked: bool,
}

impl<'a> Dblink<'a> {
    pub(in crate::plan) fn new(
        options: &'a PlanOptions,
        server: &str,
        installed: Option<&Ident>,
    ) -> Dblink<'a> {
        Dblink {
            options,
            server: server.to_string(),
            connection: server.to_string(),
            schema: installed
                .cloned()
                .unwrap_or_else(|| options.staging_schema.clone()),
            create_extension: installed.is_none(),
            masked: options.masks.any(),
        }
    }

    fn conn(&self) -> String {
        literal(&self.connection)
    }

    /// What opens the connection and begins its source transaction in the run's snapshot
    /// (`snapshot`: SQL of type text with the snapshot's id).
    fn opening(&self, snapshot: &str) -> Vec<String> {
        let (dblink, conn) = (&self.schema, self.conn());
        let mut sql = vec![
            format!(
                "SELECT {dblink}.dblink_connect({conn}, {})",
                literal(&self.server)
            ),
            self.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
            format!(
                "SELECT {dblink}.dblink_exec({conn}, 'SET TRANSACTION SNAPSHOT ' || \
                 pg_catalog.quote_literal({snapshot}))"
            ),
        ];
        // The key, from the target session's setting, for this source transaction only.
        if self.masked {
            sql.push(format!(
                "SELECT {dblink}.dblink_exec({conn}, 'SET LOCAL {key} = ' \
                 || pg_catalog.quote_literal(pg_catalog.current_setting({setting})))",
                key = crate::mask::KEY_SETTING,
                setting = literal(crate::mask::KEY_SETTING),
            ));
        }
        sql
    }

    /// `SELECT dblink_exec(<conn>, <command>)`.
    fn exec(&self, command: &str) -> String {
        format!(
            "SELECT {}.dblink_exec({}, {})",
            self.schema,
            self.conn(),
            literal(command)
        )
    }

    /// The `SELECT` the source runs for a table, as an expression the target evaluates into
    /// its text: loaded columns only, `FROM ONLY`. A table with no column to load (none at
    /// all, or only generated ones) still has rows to count: the source selects a constant per
    /// row, since a dblink column list cannot be empty.
    fn remote_select(read: &Read) -> String {
        let table = read.table;
        let columns = if read.columns.is_empty() {
            "1".to_string()
        } else {
            read.columns.join(", ")
        };
        let select = format!("SELECT {columns} FROM {}", table.own_rows());
        match (&read.condition, &read.computed) {
            (None, None) => literal(&select),
            (Some(c), None) => literal(&format!("{select} WHERE {c}")),
            (None, Some(e)) => format!("{} || {e}", literal(&format!("{select} WHERE "))),
            (Some(c), Some(e)) => {
                format!("{} || {e}", literal(&format!("{select} WHERE ({c}) AND ")))
            }
        }
    }

    /// `AS t(<column> <exact source type>, ...)`: dblink parses each value with the declared
    /// type's input function, so the type must be the source's own. A table with no column to
    /// load reads the constant of [`Dblink::remote_select`].
    fn column_definitions(table: &Table) -> String {
        let definitions: Vec<String> = table
            .columns
            .iter()
            .filter(|c| c.is_loaded())
            .map(|c| format!("{} {}", c.name, c.type_sql))
            .collect();
        if definitions.is_empty() {
            return "snapcopy_row integer".to_string();
        }
        definitions.join(", ")
    }
}

impl Link for Dblink<'_> {
    fn kind(&self) -> LinkKind {
        LinkKind::Dblink
    }

    fn setup_steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        if self.create_extension {
            steps.push(extension_step("dblink", &self.options.staging_schema));
        }
        steps.extend(server_steps(
            self.options,
            &self.server,
            "dblink_fdw",
            &server_options(self.options, &[]),
        ));
        steps
    }

    fn reach_steps(&self, _tables: &[&Table], _sequences: &[&QualifiedName]) -> Vec<Step> {
        vec![Step::new(
            Phase::Setup,
            None,
            format!(
                "SELECT {dblink}.dblink_connect('snapcopy_link_check', {server}); \
                 SELECT {dblink}.dblink_disconnect('snapcopy_link_check')",
                dblink = self.schema,
                server = self.conn()
            ),
        )
        .with_purpose(Purpose::LinkCheck(LinkKind::Dblink))]
    }

    /// The session keeps the run's snapshot in a setting (`set_config` returns it) for the
    /// second connection it may open (see [`Link::second`]).
    fn connect_steps(&self) -> Vec<Step> {
        self.opening(&format!(
            "pg_catalog.set_config({}, $1::text, false)",
            literal(SNAPSHOT_SETTING)
        ))
        .into_iter()
        .map(|sql| Step::new(Phase::Connect, None, sql))
        .collect()
    }

    fn disconnect_steps(&self) -> Vec<Step> {
        vec![
            Step::new(Phase::Disconnect, None, self.exec("COMMIT")),
            Step::new(
                Phase::Disconnect,
                None,
                format!("SELECT {}.dblink_disconnect({})", self.schema, self.conn()),
            ),
        ]
    }

    fn block_sql(&self, command: &str) -> String {
        format!(
            "{command} snapcopy_table; {}",
            self.exec(&format!("{command} snapcopy_table"))
        )
    }

    fn undo_sql(&self) -> String {
        format!(
            "ROLLBACK TO SAVEPOINT snapcopy_table; RELEASE SAVEPOINT snapcopy_table; {}; {}",
            self.exec("ROLLBACK TO SAVEPOINT snapcopy_table"),
            self.exec("RELEASE SAVEPOINT snapcopy_table")
        )
    }

    fn read(&self, read: &Read) -> String {
        format!(
            "{}.dblink({}, {}) AS t({})",
            self.schema,
            self.conn(),
            Self::remote_select(read),
            Self::column_definitions(read.table)
        )
    }

    fn read_query(&self, select: &str, definitions: &str) -> String {
        format!(
            "{}.dblink({}, {}) AS t({definitions})",
            self.schema,
            self.conn(),
            select
        )
    }

    fn select_text(&self, read: &Read) -> String {
        Self::remote_select(read)
    }

    fn send_sql(&self, select: &str) -> String {
        format!(
            "SELECT {}.dblink_send_query({}, {select})",
            self.schema,
            self.conn()
        )
    }

    fn result(&self, definitions: &str) -> String {
        format!(
            "{}.dblink_get_result({}) AS t({definitions})",
            self.schema,
            self.conn()
        )
    }

    /// dblink takes the next query once it has read the empty result that ends this one.
    fn finish_sql(&self) -> String {
        format!(
            "SELECT FROM {}.dblink_get_result({}) AS t(done text)",
            self.schema,
            self.conn()
        )
    }

    fn read_sequence(&self, sequence: &QualifiedName) -> String {
        format!(
            "{}.dblink({}, {}) AS s(last_value bigint, is_called boolean)",
            self.schema,
            self.conn(),
            literal(&format!("SELECT last_value, is_called FROM {sequence}"))
        )
    }

    fn read_sequences(&self, sequences: &[&QualifiedName]) -> Option<String> {
        let query = sequences
            .iter()
            .map(|s| {
                format!(
                    "SELECT {}::text, last_value, is_called FROM {s}",
                    literal(&s.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        Some(format!(
            "{}.dblink({}, {}) AS s(name text, last_value bigint, is_called boolean)",
            self.schema,
            self.conn(),
            literal(&query)
        ))
    }

    fn cursor(&self, read: &Read, batch: i64) -> Option<Cursor> {
        Some(Cursor {
            declare: format!(
                "SELECT {}.dblink_exec({}, {})",
                self.schema,
                self.conn(),
                // One literal when the query is known now, the text built when it runs else.
                match Self::remote_select(read).strip_prefix('\'') {
                    Some(quoted) if read.computed.is_none() =>
                        format!("'DECLARE snapcopy_rows NO SCROLL CURSOR FOR {quoted}"),
                    _ => format!(
                        "'DECLARE snapcopy_rows NO SCROLL CURSOR FOR ' || {}",
                        Self::remote_select(read)
                    ),
                }
            ),
            fetch: format!(
                "{}.dblink({}, 'FETCH {batch} FROM snapcopy_rows') AS t({})",
                self.schema,
                self.conn(),
                Self::column_definitions(read.table)
            ),
            close: self.exec("CLOSE snapcopy_rows"),
        })
    }

    fn one_snapshot(&self) -> bool {
        true
    }

    fn on_source(&self, command: &str) -> Option<String> {
        Some(self.exec(command))
    }

    fn keeps_staging_objects(&self) -> bool {
        true
    }

    fn second(&self) -> Option<Second<'_>> {
        let second = Dblink {
            connection: SECOND.to_string(),
            ..self.clone()
        };
        let conn = second.conn();
        let dblink = &self.schema;
        // A table's block that failed may have left it open.
        let mut open = vec![format!(
            "SELECT {dblink}.dblink_disconnect(c) \
             FROM pg_catalog.unnest({dblink}.dblink_get_connections()) c WHERE c = {conn}"
        )];
        open.extend(second.opening(&format!(
            "pg_catalog.current_setting({})",
            literal(SNAPSHOT_SETTING)
        )));
        let close = vec![
            second.exec("COMMIT"),
            format!("SELECT {dblink}.dblink_disconnect({conn})"),
        ];
        Some(Second {
            open,
            close,
            link: Box::new(second),
        })
    }
}
