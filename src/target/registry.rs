//! snapcopy's registry: the table `managed_tables` in the staging schema that lists the tables
//! snapcopy made, how and when each was last refreshed, and the source's shape then. This is
//! the one module that makes, reads and writes it; teardown drops it with the staging schema.

use anyhow::Context;
use tokio_postgres::Client;

use crate::plan::staging_name;
use crate::report::StatusRow;
use crate::source::{Cursor, Shape, Table};
use crate::sql::{literal, Ident, QualifiedName};

/// The registry table's name in the staging schema.
pub const REGISTRY: &str = "managed_tables";

/// The registry table, qualified with the staging schema.
pub fn table(staging_schema: &Ident) -> QualifiedName {
    QualifiedName {
        schema: staging_schema.clone(),
        name: Ident::new(REGISTRY),
    }
}

/// The setup's statements that make the registry, or bring one made by an earlier version up
/// to date (columns added since).
pub fn setup_sql(staging_schema: &Ident) -> Vec<String> {
    let registry = table(staging_schema);
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {registry} (\n    \
             table_schema text NOT NULL,\n    \
             table_name text NOT NULL,\n    \
             source text NOT NULL,\n    \
             source_schema text NOT NULL,\n    \
             source_table text NOT NULL,\n    \
             staging_object text NOT NULL,\n    \
             staging_kind text NOT NULL,\n    \
             mode text NOT NULL,\n    \
             created_at timestamptz NOT NULL DEFAULT now(),\n    \
             refreshed_at timestamptz NOT NULL DEFAULT now(),\n    \
             source_snapshot_at timestamptz,\n    \
             rows_loaded bigint,\n    \
             rows_skipped bigint,\n    \
             rows_total bigint,\n    \
             pushed_down boolean,\n    \
             high_water text,\n    \
             source_shape jsonb,\n    \
             table_oid oid,\n    \
             PRIMARY KEY (table_schema, table_name)\n)"
        ),
        format!("ALTER TABLE {registry} ADD COLUMN IF NOT EXISTS table_oid oid"),
        format!("ALTER TABLE {registry} ADD COLUMN IF NOT EXISTS link text"),
        format!("ALTER TABLE {registry} ADD COLUMN IF NOT EXISTS data_only boolean"),
        format!("ALTER TABLE {registry} ADD COLUMN IF NOT EXISTS source_mark text"),
        format!("ALTER TABLE {registry} ADD COLUMN IF NOT EXISTS target_mark text"),
        format!("ALTER TABLE {registry} ADD COLUMN IF NOT EXISTS key_buckets integer"),
        format!("ALTER TABLE {registry} ADD COLUMN IF NOT EXISTS key_counts bigint[]"),
        format!("ALTER TABLE {registry} ADD COLUMN IF NOT EXISTS key_xors bigint[]"),
    ]
}

/// The buckets of a table's keys' hashes as its last sync left them (`b int4, n int8, x int8`:
/// the bucket, its keys' count and the XOR of their hashes; empty buckets left out), when
/// that sync summed them up in `buckets` buckets: a query. They are what the target's own
/// would sum up to as long as its keys are those that sync left, which the sync that reads
/// them checks by the keys' totals (see `plan::sync`).
pub fn key_sums(staging_schema: &Ident, name: &QualifiedName, buckets: i64) -> String {
    format!(
        "SELECT (u.g - 1)::int4 AS b, u.n, u.x FROM {} r, \
         ROWS FROM (pg_catalog.unnest(r.key_counts), pg_catalog.unnest(r.key_xors)) \
         WITH ORDINALITY AS u(n, x, g) \
         WHERE r.table_schema = {} AND r.table_name = {} AND r.key_buckets = {buckets} \
         AND u.n > 0",
        table(staging_schema),
        literal(name.schema.raw()),
        literal(name.name.raw()),
    )
}

/// Keeps the buckets of the table's keys (`b`, `n`, `x` of the query `sums`, in `buckets`
/// buckets) for its next sync (see [`key_sums`]); none where `kept` (SQL) is false.
pub fn keep_key_sums(
    staging_schema: &Ident,
    name: &QualifiedName,
    sums: &str,
    buckets: i64,
    kept: &str,
) -> String {
    // Both arrays, every bucket in order (an empty one 0), from one pass over `sums`.
    format!(
        "UPDATE {} SET key_buckets = {buckets}, (key_counts, key_xors) = \
         (SELECT pg_catalog.array_agg(coalesce(s.n, 0) ORDER BY g.b), \
         pg_catalog.array_agg(coalesce(s.x, 0) ORDER BY g.b) \
         FROM pg_catalog.generate_series(0, {}) g(b) LEFT JOIN ({sums}) s ON s.b = g.b) \
         WHERE table_schema = {} AND table_name = {} AND {kept}",
        table(staging_schema),
        buckets - 1,
        literal(name.schema.raw()),
        literal(name.name.raw()),
    )
}

/// A table snapcopy's registry lists.
#[derive(Debug, Clone)]
pub struct Managed {
    /// Its name on the target.
    pub name: QualifiedName,
    /// The source's shape at its last refresh.
    pub shape: Option<Shape>,
    /// A table of that name exists on the target, but not the one snapcopy made (it was
    /// dropped and made again since): snapcopy treats it as a table it did not create.
    pub replaced: bool,
    /// The link its staging object reads through (`dblink` for a registry older than the
    /// column).
    pub link: String,
    /// The highest value of its growing column that the last copy read, as text.
    pub high_water: Option<String>,
    /// Where the source stood when its last run read all of its rows (see
    /// [`crate::source::ChangeMark`]), as text.
    pub source_mark: Option<String>,
    /// Where the target stood when its last run left it equal to the source's rows (see
    /// [`super::LocalMark`]), as text.
    pub target_mark: Option<String>,
    /// The table is the user's (made by their migrations): snapcopy loads its rows and never
    /// makes, drops or changes it (`--data-only`).
    pub data_only: bool,
}

/// The tables snapcopy manages on the target, with the source shape recorded at their last
/// refresh and whether each is still the table snapcopy made; empty when the staging schema
/// has no registry yet.
pub async fn managed(client: &Client, staging_schema: &Ident) -> anyhow::Result<Vec<Managed>> {
    let Some(column) = columns(client, staging_schema).await? else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT r.table_schema, r.table_name, r.source_shape::text, \
         coalesce({} <> c.oid, false), coalesce({}, 'dblink'), r.high_water, \
         coalesce({}, false), {}, {} \
         FROM {} r \
         LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = r.table_schema \
         LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = r.table_name \
         ORDER BY r.table_schema, r.table_name",
        column("table_oid", "oid"),
        column("link", "text"),
        column("data_only", "boolean"),
        column("source_mark", "text"),
        column("target_mark", "text"),
        table(staging_schema)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .context("could not read snapcopy's registry of managed tables")?;
    Ok(rows
        .iter()
        .map(|r| Managed {
            name: QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
            shape: r
                .get::<_, Option<String>>(2)
                .and_then(|json| serde_json::from_str(&json).ok()),
            replaced: r.get(3),
            link: r.get(4),
            high_water: r.get(5),
            data_only: r.get(6),
            source_mark: r.get(7),
            target_mark: r.get(8),
        })
        .collect())
}

/// What `snapcopy status` shows of each managed table.
pub async fn status(client: &Client, staging_schema: &Ident) -> anyhow::Result<Vec<StatusRow>> {
    let Some(column) = columns(client, staging_schema).await? else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT pg_catalog.quote_ident(table_schema) || '.' || \
         pg_catalog.quote_ident(table_name), source, \
         pg_catalog.quote_ident(source_schema) || '.' || pg_catalog.quote_ident(source_table), \
         staging_kind, mode, \
         pg_catalog.to_char(refreshed_at, 'YYYY-MM-DD HH24:MI:SS TZ'), \
         pg_catalog.to_char(source_snapshot_at, 'YYYY-MM-DD HH24:MI:SS TZ'), \
         rows_loaded, rows_total, pushed_down, coalesce({}, 'dblink'), coalesce({}, false) \
         FROM {} r ORDER BY table_schema, table_name",
        column("link", "text"),
        column("data_only", "boolean"),
        table(staging_schema)
    );
    Ok(client
        .query(&sql, &[])
        .await
        .context("could not read snapcopy's registry")?
        .iter()
        .map(|r| StatusRow {
            table: r.get(0),
            source: r.get(1),
            source_table: r.get(2),
            staging: r.get(3),
            mode: r.get(4),
            refreshed_at: r.get(5),
            source_snapshot_at: r.get(6),
            rows_loaded: r.get(7),
            rows_total: r.get(8),
            pushed_down: r.get(9),
            link: r.get(10),
            data_only: r.get(11),
        })
        .collect())
}

/// How a query reads a column of the staging schema's registry, if it has one: a function of
/// the column's name and type that gives `r.<column>`, or a NULL of that type where the
/// registry lacks the column (made by an older snapcopy, until the next setup adds it).
async fn columns(
    client: &Client,
    staging_schema: &Ident,
) -> anyhow::Result<Option<impl Fn(&str, &str) -> String>> {
    let names: Vec<String> = client
        .query(
            "SELECT a.attname::text FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid = pg_catalog.to_regclass(pg_catalog.quote_ident($1) || '.' || \
             pg_catalog.quote_ident($2)) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&staging_schema.raw(), &REGISTRY],
        )
        .await
        .context("could not look for snapcopy's registry")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let has = !names.is_empty();
    Ok(has.then_some(move |name: &str, ty: &str| {
        if names.iter().any(|n| n == name) {
            format!("r.{}", Ident::new(name))
        } else {
            format!("NULL::{ty}")
        }
    }))
}

/// The last high-water mark the registry holds for `table`, as SQL text that reads it on the
/// target (NULL before the first refresh that recorded one).
pub fn high_water_sql(registry: &QualifiedName, table: &QualifiedName) -> String {
    format!(
        "(SELECT high_water FROM {registry} WHERE table_schema = {} AND table_name = {})",
        literal(table.schema.raw()),
        literal(table.name.raw()),
    )
}

/// What a unit records of one table once its rows are in.
pub struct Record<'a> {
    /// The registry table.
    pub registry: QualifiedName,
    /// The source label (`user@host:port/db`, no password).
    pub source_label: &'a str,
    /// `view` or `matview`.
    pub staging_kind: &'a str,
    /// The refresh mode's name.
    pub mode: &'a str,
    /// Whether rows were added to the table as it was (incremental), not loaded anew.
    pub incremental: bool,
    /// Whether the table was synced: rows inserted, updated and deleted where they differed.
    pub sync: bool,
    /// The column whose values only grow, whose maximum is the next refresh's high-water mark.
    pub cursor: Option<&'a Cursor>,
    /// The link its staging object reads through.
    pub link: &'a str,
    /// The table is the user's; snapcopy only loads its rows.
    pub data_only: bool,
    /// Where the source stood, when the run read every row of the table (else none).
    pub mark: Option<String>,
    /// Whether the run leaves the table equal to the source's rows: the registry then keeps
    /// the target's mark the unit took (see [`super::LocalMark::take`]).
    pub local_mark: bool,
}

impl Record<'_> {
    /// The registry row: what was copied, how, and the source's shape and time. `$1` rows
    /// loaded, `$2` rows skipped, `$3` pushed down, `$4` the source's time of the run's
    /// snapshot (as text), `$5` the highest cursor value read (incremental only), `$6` rows
    /// gained (sync only).
    pub fn record_sql(&self, table: &Table) -> String {
        let registry = &self.registry;
        let (cursor, incremental) = (self.cursor, self.incremental);
        let previous_total = format!(
            "coalesce((SELECT rows_total FROM {registry} WHERE table_schema = {} AND \
             table_name = {}), 0)",
            literal(table.name.schema.raw()),
            literal(table.name.name.raw())
        );
        let (rows_total, high_water) = match (cursor, incremental) {
            // Rows snapcopy has put in the table: a count(*) would read the whole table, which
            // an incremental refresh exists to avoid.
            (_, true) => (
                format!("{previous_total} + $1::bigint"),
                "$5::text".to_string(),
            ),
            (Some(c), false) => (
                "$1::bigint".to_string(),
                format!("(SELECT max({})::text FROM {})", c.column, table.own_rows()),
            ),
            (None, false) => ("$1::bigint".to_string(), "NULL::text".to_string()),
        };
        // A sync reads no table whole either: what it inserted less what it deleted. (It reads
        // no high-water mark: `$5` is NULL.)
        let (rows_total, high_water) = if self.sync {
            (
                format!("{previous_total} + $6::bigint"),
                format!("coalesce($5::text, {high_water})"),
            )
        } else {
            (rows_total, high_water)
        };
        let staging_update = if incremental || self.sync {
            format!("high_water = coalesce(EXCLUDED.high_water, {registry}.high_water)")
        } else {
            "staging_object = EXCLUDED.staging_object, staging_kind = EXCLUDED.staging_kind, \
             high_water = EXCLUDED.high_water"
                .to_string()
        };
        // A user's table is never rebuilt, so no shape is compared: none is kept.
        let shape = if self.data_only {
            "NULL".to_string()
        } else {
            literal(&serde_json::to_string(&table.shape()).expect("a shape serializes"))
        };
        format!(
            "INSERT INTO {registry} (table_schema, table_name, source, source_schema, \
             source_table, staging_object, staging_kind, mode, source_snapshot_at, rows_loaded, \
             rows_skipped, rows_total, pushed_down, high_water, source_shape, table_oid, link, \
             data_only, source_mark, target_mark) \
             VALUES ({schema}, {name}, {source}, {schema}, {name}, {staging}, {kind}, {mode}, \
             $4::text::timestamptz, $1::bigint, $2::bigint, {rows_total}, $3::boolean, \
             {high_water}, {shape}::jsonb, {oid}::regclass::oid, {link}, {data_only}, \
             {mark}::text, {local_mark}) \
             ON CONFLICT (table_schema, table_name) DO UPDATE SET source = EXCLUDED.source, \
             mode = EXCLUDED.mode, link = EXCLUDED.link, refreshed_at = now(), \
             source_snapshot_at = EXCLUDED.source_snapshot_at, \
             rows_loaded = EXCLUDED.rows_loaded, rows_skipped = EXCLUDED.rows_skipped, \
             rows_total = EXCLUDED.rows_total, pushed_down = EXCLUDED.pushed_down, \
             source_shape = EXCLUDED.source_shape, table_oid = EXCLUDED.table_oid, \
             data_only = EXCLUDED.data_only, source_mark = EXCLUDED.source_mark, \
             target_mark = EXCLUDED.target_mark, \
             {staging_update}",
            schema = literal(table.name.schema.raw()),
            name = literal(table.name.name.raw()),
            source = literal(self.source_label),
            staging = literal(&staging_name(&table.name)),
            kind = literal(self.staging_kind),
            mode = literal(self.mode),
            link = literal(self.link),
            data_only = self.data_only,
            mark = self.mark.as_deref().map_or("NULL".to_string(), literal),
            local_mark = if self.local_mark {
                super::mark::TAKEN
            } else {
                "NULL::text"
            },
            oid = literal(&table.name.to_string()),
        )
    }
}
