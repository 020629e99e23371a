//! postgres_fdw: the setup imports each table as a foreign table (`IMPORT FOREIGN SCHEMA ...
//! LIMIT TO`) into a proxy schema per source schema, next to the staging schema, and makes a
//! foreign table per sequence; statements read those, and postgres_fdw ships their conditions
//! to the source. postgres_fdw opens its own source connection per session and begins a
//! `REPEATABLE READ` transaction there at the session's first read, with no way to import a
//! snapshot: each session reads as of its own moment, the tables of one unit together.

use super::{extension_step, server_options, server_steps, Cursor, Link, Read};
use crate::cli::LinkKind;
use crate::plan::{fnv1a, Phase, PlanOptions, Purpose, Step};
use crate::source::Table;
use crate::sql::{literal, truncate_bytes, Ident, QualifiedName};

/// The comment that marks a proxy schema as snapcopy's: the setup and teardown drop only
/// schemas that carry it.
pub const PROXY_MARKER: &str =
    "snapcopy proxy schema: foreign tables of one source schema, made anew by every run";

/// Rows postgres_fdw fetches per round trip (its default, 100, makes a large table's transfer
/// a matter of latency: 10,000 loads 1M narrow rows over loopback in about 60% of the time).
const FETCH_SIZE: i64 = 10_000;

/// What one fetch may hold: a table whose rows are wide fetches fewer of them at a time, so
/// that the target's memory stays bounded.
const FETCH_BYTES: i64 = 8 * 1024 * 1024;

/// Rows per fetch for `table`, from the source's estimate of what its rows weigh.
fn fetch_size(table: &Table) -> i64 {
    let rows = table.rows_with_partitions();
    let bytes = table.data_bytes_with_partitions();
    if rows <= 0 || bytes <= 0 {
        return FETCH_SIZE;
    }
    (FETCH_BYTES / (bytes / rows).max(1)).clamp(100, FETCH_SIZE)
}

/// The postgres_fdw link.
pub(in crate::plan) struct PostgresFdw<'a> {
    options: &'a PlanOptions,
    /// The foreign server's name.
    server: String,
}

/// The proxy schema for the source schema `schema`: `<staging>.<schema>`, shortened with a
/// hash when it would pass 63 bytes.
pub fn proxy_schema(staging_schema: &Ident, schema: &Ident) -> Ident {
    let full = format!("{}.{}", staging_schema.raw(), schema.raw());
    if full.len() <= 63 {
        return Ident::new(full);
    }
    Ident::new(format!(
        "{}.{}~{:08x}",
        truncate_bytes(staging_schema.raw(), 26),
        truncate_bytes(schema.raw(), 27),
        fnv1a(full.as_bytes()) as u32
    ))
}

impl<'a> PostgresFdw<'a> {
    pub(in crate::plan) fn new(options: &'a PlanOptions, server: &str) -> PostgresFdw<'a> {
        PostgresFdw {
            options,
            server: server.to_string(),
        }
    }

    /// Where a source table or sequence is read on the target.
    fn proxy(&self, name: &QualifiedName) -> QualifiedName {
        QualifiedName {
            schema: proxy_schema(&self.options.staging_schema, &name.schema),
            name: name.name.clone(),
        }
    }
}

impl Link for PostgresFdw<'_> {
    fn kind(&self) -> LinkKind {
        LinkKind::PostgresFdw
    }

    fn setup_steps(&self) -> Vec<Step> {
        let mut steps = vec![extension_step("postgres_fdw", &self.options.staging_schema)];
        // Connection parameters postgres_fdw sets itself are not allowed on its servers.
        let fetch = FETCH_SIZE.to_string();
        let mut options = server_options(self.options, &[("fetch_size", &fetch)]);
        options.retain(|(k, _)| k != "client_encoding" && k != "fallback_application_name");
        steps.extend(server_steps(
            self.options,
            &self.server,
            "postgres_fdw",
            &options,
        ));
        steps
    }

    fn reach_steps(&self, tables: &[&Table], sequences: &[&QualifiedName]) -> Vec<Step> {
        let server = Ident::new(&self.server);
        let staging = &self.options.staging_schema;
        // A catalog of the source read through the server: the target server reaches the
        // source and the source takes the user mapping's credentials.
        let check = Ident::new("link check");
        let mut steps = vec![Step::new(
            Phase::Setup,
            None,
            format!(
                "CREATE FOREIGN TABLE {staging}.{check} (datname name) SERVER {server} \
                 OPTIONS (schema_name 'pg_catalog', table_name 'pg_database'); \
                 SELECT count(*) FROM {staging}.{check}; DROP FOREIGN TABLE {staging}.{check}"
            ),
        )
        .with_purpose(Purpose::LinkCheck(LinkKind::PostgresFdw))];
        // The proxy schemas of the last run are empty now (their foreign tables went with the
        // server); they are made anew, so that one no run needs any more does not stay.
        steps.push(
            Step::new(
                Phase::Setup,
                None,
                format!(
                    "DO {}",
                    crate::sql::dollar_quoted(&format!(
                        " DECLARE s text; BEGIN FOR s IN SELECT pg_catalog.quote_ident(n.nspname) \
                         FROM pg_catalog.pg_namespace n WHERE pg_catalog.obj_description(n.oid, \
                         'pg_namespace') = {} AND n.nspname LIKE {} LOOP EXECUTE 'DROP SCHEMA ' \
                         || s; END LOOP; END ",
                        literal(PROXY_MARKER),
                        literal(&format!(
                            "{}.%",
                            staging
                                .raw()
                                .replace('\\', "\\\\")
                                .replace('%', "\\%")
                                .replace('_', "\\_")
                        ))
                    ))
                ),
            )
            .with_note("the proxy schemas of the last run".into()),
        );
        let mut schemas: Vec<&Ident> = tables
            .iter()
            .map(|t| &t.name.schema)
            .chain(sequences.iter().map(|s| &s.schema))
            .collect();
        schemas.sort();
        schemas.dedup();
        for schema in schemas {
            let proxy = proxy_schema(staging, schema);
            steps.push(Step::new(
                Phase::Setup,
                None,
                format!(
                    "CREATE SCHEMA {proxy}; COMMENT ON SCHEMA {proxy} IS {}",
                    literal(PROXY_MARKER)
                ),
            ));
        }
        // One import per table, so that a table whose types the target cannot have fails
        // alone. Defaults, collations and NOT NULL stay on the source: the foreign table only
        // reads. Wide rows come fewer at a time.
        for table in tables {
            let mut sql = format!(
                "IMPORT FOREIGN SCHEMA {} LIMIT TO ({}) FROM SERVER {server} INTO {} \
                 OPTIONS (import_default 'false', import_collate 'false', import_not_null 'false')",
                table.name.schema,
                table.name.name,
                proxy_schema(staging, &table.name.schema)
            );
            let fetch = fetch_size(table);
            if fetch < FETCH_SIZE {
                sql.push_str(&format!(
                    "; ALTER FOREIGN TABLE {} OPTIONS (ADD fetch_size '{fetch}')",
                    self.proxy(&table.name)
                ));
            }
            steps.push(
                Step::new(Phase::Setup, None, sql)
                    .with_purpose(Purpose::ForTable(table.name.clone())),
            );
        }
        for sequence in sequences {
            steps.push(Step::new(
                Phase::Setup,
                None,
                format!(
                    "CREATE FOREIGN TABLE {} (last_value bigint, is_called boolean) \
                     SERVER {server} OPTIONS (schema_name {}, table_name {})",
                    self.proxy(sequence),
                    literal(sequence.schema.raw()),
                    literal(sequence.name.raw())
                ),
            ));
        }
        steps
    }

    fn connect_steps(&self) -> Vec<Step> {
        Vec::new()
    }

    fn disconnect_steps(&self) -> Vec<Step> {
        Vec::new()
    }

    // postgres_fdw mirrors the target's savepoints in its source transaction itself.
    fn block_sql(&self, command: &str) -> String {
        format!("{command} snapcopy_table")
    }

    fn undo_sql(&self) -> String {
        "ROLLBACK TO SAVEPOINT snapcopy_table; RELEASE SAVEPOINT snapcopy_table".to_string()
    }

    // Masks are refused before planning with this link: postgres_fdw ships conditions to the
    // source, not the expressions of a select list, so a mask would be computed here, after
    // the raw values crossed.
    fn read(&self, read: &Read) -> String {
        assert!(
            !read.masked && read.computed.is_none(),
            "masks and subsets are refused with postgres_fdw"
        );
        let proxy = self.proxy(&read.table.name);
        match &read.condition {
            Some(c) => format!("(SELECT * FROM {proxy} WHERE {c}) AS t"),
            None => format!("{proxy} AS t"),
        }
    }

    fn read_query(&self, _select: &str, _definitions: &str) -> String {
        unreachable!("row filters are refused with postgres_fdw")
    }

    fn select_text(&self, _read: &Read) -> String {
        unreachable!("sync is planned through dblink only")
    }

    fn send_sql(&self, _select: &str) -> String {
        unreachable!("sync is planned through dblink only")
    }

    fn result(&self, _definitions: &str) -> String {
        unreachable!("sync is planned through dblink only")
    }

    fn finish_sql(&self) -> String {
        unreachable!("sync is planned through dblink only")
    }

    fn read_sequence(&self, sequence: &QualifiedName) -> String {
        format!("{} AS s", self.proxy(sequence))
    }

    /// Each sequence has a foreign table of its own.
    fn read_sequences(&self, _sequences: &[&QualifiedName]) -> Option<String> {
        None
    }

    fn cursor(&self, _read: &Read, _batch: i64) -> Option<Cursor> {
        None
    }

    fn one_snapshot(&self) -> bool {
        false
    }

    fn on_source(&self, _command: &str) -> Option<String> {
        None
    }

    fn keeps_staging_objects(&self) -> bool {
        false
    }
}
