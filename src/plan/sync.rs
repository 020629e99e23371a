//! Sync mode: a table snapcopy manages is made equal to the source's rows (as the run's masks
//! and subsets shape them) by writing only the rows that differ, found by comparing hashes
//! where the rows live:
//!
//! 1. every row's hash, summed up per bucket of its key's hash (count and XOR of row hashes),
//!    on both servers at once: the source's query runs while the target computes its own;
//! 2. for the buckets that differ, each row's key and hash, on both servers again;
//! 3. the target's rows whose key the source lacks are deleted, and the keys whose hashes
//!    differ or that the target lacks are kept in a temporary table (keys only); their rows are
//!    then read by key from the source, [`KEYS_PER_BATCH`] at a time, updating the target's row
//!    or inserting it.
//!
//! Buckets of the key's hash, not ranges of the key: they split any key type (uuid, text,
//! composite) into groups of equal size without sampling the key first, and the hash is
//! computed by both servers alike. A row's hash is `hash_record_extended` over its values, each
//! in a form that equals only when the values are the same (see [`hashed`]): -0 and 0, NaN, or
//! `1.0` and `1.00` count as different, NULL is not an empty string. Deletes run in reverse load
//! order before any table's inserts and updates (children first, then parents in load order),
//! so that foreign keys among a unit's tables hold when each statement ends.

use super::compare::{column_hash, keys_of_batch, KeyColumns};
use super::unit::UnitContext;
use super::{Phase, Step, StepKind, TableIx};
use crate::source::{Column, Table};

/// About this many rows of a table fall in one bucket: the buckets' summaries cross the link
/// whole, and every row of a bucket that differs does (its key and hash).
const ROWS_PER_BUCKET: i64 = 8;

/// The most buckets a table has.
const MAX_BUCKETS: i64 = 1 << 17;

/// Keys whose rows are read from the source per statement.
const KEYS_PER_BATCH: u64 = 10_000;

/// The temporary tables of one table's comparison, named after its place in the unit.
struct Temps {
    /// The target's buckets.
    ours: String,
    /// The source's buckets.
    theirs: String,
    /// The buckets that differ.
    differ: String,
    /// The target's keys and row hashes in those buckets.
    our_rows: String,
    /// The source's.
    their_rows: String,
    /// The keys to read from the source.
    fetch: String,
    /// The target's keys the source lacks.
    gone: String,
}

impl Temps {
    fn of(i: TableIx) -> Temps {
        let name = |what: &str| format!("pg_temp.snapcopy_sync_{what}_{}", i.0);
        Temps {
            ours: name("ours"),
            theirs: name("theirs"),
            differ: name("differ"),
            our_rows: name("our_rows"),
            their_rows: name("their_rows"),
            fetch: name("fetch"),
            gone: name("gone"),
        }
    }
}

impl UnitContext<'_> {
    /// The comparison of `table` with the source's rows and the deletes of the rows the source
    /// lacks: the unit runs these for each synced table, in reverse load order, before any
    /// table's rows go in. Each reporting statement returns [`StepKind::Synced`]'s counts.
    pub(super) fn sync_compare(&self, table: &Table, i: TableIx) -> Vec<Step> {
        let key = sync_key(table);
        let columns: Vec<&Column> = table.columns.iter().filter(|c| c.is_loaded()).collect();
        let key_names = key.names("");
        let definitions = key.definitions();
        // A table never analyzed has no row estimate: its size says about how many.
        let rows = match table.rows_with_partitions() {
            n if n > 0 => n,
            _ => table.data_bytes_with_partitions() / 100,
        };
        let buckets = buckets(rows);
        let bucket = format!("({} & {})::int4", key_hash(&key.0), buckets - 1);
        let row = record_hash(&columns);
        let ours = table.own_rows();
        let t = Temps::of(i);
        // The source's rows as the run reads them (masked, a subset), as a subquery.
        let source = self.link.select_text(&self.read_of(table, None));
        let around = |before: &str, after: &str| {
            format!(
                "{} || {source} || {}",
                crate::sql::literal(before),
                crate::sql::literal(after)
            )
        };
        let step = |sql: String| Step::new(Phase::Data, Some(i), sql);
        let mut steps = vec![
            step(format!(
                "DROP TABLE IF EXISTS {}, {}, {}, {}, {}, {}, {}",
                t.ours, t.theirs, t.differ, t.our_rows, t.their_rows, t.fetch, t.gone
            )),
            // 1. Buckets: the source's query runs while the target sums up its own rows. (OFFSET
            // 0 keeps the planner from taking the key's uniqueness for the buckets' count, which
            // would sort every row instead of hashing into the buckets.)
            step(self.link.send_sql(&around(
                &format!(
                    "SELECT b, count(*) AS n, bit_xor(h) AS x FROM (SELECT {bucket} AS b, {row} \
                     AS h FROM ("
                ),
                ") r OFFSET 0) r GROUP BY 1",
            ))),
            step(format!(
                "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT b, count(*) AS n, bit_xor(h) \
                 AS x FROM (SELECT {bucket} AS b, {row} AS h FROM {ours} OFFSET 0) r GROUP BY 1",
                t.ours
            )),
            step(format!(
                "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT * FROM {}",
                t.theirs,
                self.link.result("b int4, n int8, x int8")
            )),
            step(self.link.finish_sql()),
            // Hashed: a temporary table has no statistics, and sorting both is slower.
            step("SET LOCAL enable_mergejoin = off".to_string()),
            step(format!(
                "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT coalesce(s.b, o.b) AS b \
                 FROM {} s FULL JOIN {} o ON o.b = s.b \
                 WHERE s.b IS NULL OR o.b IS NULL OR s.n <> o.n OR s.x <> o.x",
                t.differ, t.theirs, t.ours
            )),
        ];
        // 2. The rows of the buckets that differ: every row when most buckets do.
        let differing = format!(
            "CASE WHEN NOT EXISTS (SELECT FROM {differ}) THEN 'false' \
             WHEN (SELECT count(*) FROM {differ}) > {half} THEN 'true' \
             ELSE {bucket_is} || pg_catalog.quote_literal((SELECT pg_catalog.array_agg(b)::text \
             FROM {differ})) || '::int4[])' END",
            differ = t.differ,
            half = buckets / 2,
            bucket_is = crate::sql::literal(&format!("{bucket} = ANY (")),
        );
        steps.push(step(self.link.send_sql(&format!(
            "{} || {source} || ') r WHERE ' || {differing}",
            crate::sql::literal(&format!("SELECT {key_names}, {row} AS h FROM ("))
        ))));
        steps.push(step(format!(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {key_names}, {row} AS h \
             FROM {ours} WHERE {bucket} IN (SELECT b FROM {})",
            t.our_rows, t.differ
        )));
        steps.push(step(format!(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT * FROM {}",
            t.their_rows,
            self.link.result(&format!("{definitions}, h int8"))
        )));
        steps.push(step(self.link.finish_sql()));
        // What the comparison found, and what crossed the link for it: about the size of the
        // source's results as the target holds them (their text, which dblink carries, takes
        // twice as long to measure).
        steps.push(
            step(format!(
                "SELECT 0::int8, {buckets}::int8, (SELECT count(*) FROM {differ}), 0::int8, \
                 0::int8, 0::int8, (SELECT coalesce(sum(pg_catalog.pg_column_size(s.*)), 0) \
                 FROM {theirs} s)::int8 + (SELECT coalesce(sum(pg_catalog.pg_column_size(s.*)), \
                 0) FROM {their_rows} s)::int8",
                differ = t.differ,
                theirs = t.theirs,
                their_rows = t.their_rows,
            ))
            .of_kind(StepKind::Synced { batch: None }),
        );
        // 3. The keys to read from the source (those the target lacks, or whose row differs),
        // and the rows the source lacks, gone.
        steps.push(step(format!(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {key_names} FROM {} s \
             WHERE NOT EXISTS (SELECT FROM {} o WHERE {} AND o.h = s.h)",
            t.fetch,
            t.their_rows,
            t.our_rows,
            key.matched("o", "s")
        )));
        // The keys gone from the source first, then their rows by key (by index, not a scan).
        steps.push(step(format!(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} o WHERE NOT EXISTS \
             (SELECT FROM {} s WHERE {})",
            t.gone,
            key.names("o."),
            t.our_rows,
            t.their_rows,
            key.matched("s", "o")
        )));
        steps.push(
            step(format!(
                "WITH gone AS (DELETE FROM {ours} d USING {} g WHERE {} RETURNING 1) \
                 SELECT 0::int8, 0::int8, 0::int8, 0::int8, 0::int8, count(*), 0::int8 FROM gone",
                t.gone,
                key.matched("d", "g"),
            ))
            .of_kind(StepKind::Synced { batch: None }),
        );
        steps.push(step(format!(
            "DROP TABLE {}, {}, {}, {}, {}, {}",
            t.ours, t.theirs, t.differ, t.our_rows, t.their_rows, t.gone
        )));
        steps.push(step("RESET enable_mergejoin".to_string()));
        steps
    }

    /// The rows of `table` that differ from the source's, read by key from the source in
    /// batches: each updates the target's row with the key, or is inserted where it has none.
    pub(super) fn sync_rows(&self, table: &Table, i: TableIx) -> Vec<Step> {
        let key = sync_key(table);
        let t = Temps::of(i);
        let ours = table.own_rows();
        let mut rows = self.read_of(table, None);
        rows.computed = Some(keys_of_batch(&key.0));
        let key_names = key.names("d.");
        let set: Vec<String> = table
            .columns
            .iter()
            .filter(|c| c.is_loaded() && !key.0.iter().any(|k| k.name == c.name))
            .map(|c| format!("{0} = s.{0}", c.name))
            .collect();
        // Every row read updates the target's row with its key, if there is one: a key the
        // target holds in another form (an equal value that hashes apart, 1.0 and 1.00) is
        // updated, not inserted twice.
        let update = if set.is_empty() {
            // Every column is the key's: a row that differs is another key.
            format!(
                "SELECT {key_names} FROM {ours} d JOIN src s ON {}",
                key.matched("d", "s")
            )
        } else {
            format!(
                "UPDATE {ours} d SET {} FROM src s WHERE {} RETURNING {key_names}",
                set.join(", "),
                key.matched("d", "s"),
            )
        };
        vec![Step::new(
            Phase::Data,
            Some(i),
            format!(
                "WITH batch AS (DELETE FROM {fetch} WHERE ctid = ANY (ARRAY(SELECT ctid FROM \
                 {fetch} LIMIT {KEYS_PER_BATCH})) RETURNING *), \
                 src AS MATERIALIZED (SELECT * FROM {read}), \
                 upd AS ({update}), \
                 new AS (SELECT * FROM src s WHERE NOT EXISTS (SELECT FROM upd u WHERE \
                 {batch_match})), \
                 ins AS ({insert} RETURNING 1) \
                 SELECT (SELECT count(*) FROM batch), 0::int8, 0::int8, \
                 (SELECT count(*) FROM ins), (SELECT count(*) FROM upd), 0::int8, \
                 (SELECT coalesce(sum(pg_catalog.octet_length(s::text)), 0) FROM src s)::int8",
                fetch = t.fetch,
                read = self.link.read(&rows),
                batch_match = key.matched("u", "s"),
                insert = self.insert_rows(table, &table.name, "new"),
            ),
        )
        .of_kind(StepKind::Synced {
            batch: Some(KEYS_PER_BATCH),
        })]
    }
}

/// The columns sync matches rows by: the key incremental mode would use (the refresh mode
/// only syncs a table that has one).
fn sync_key(table: &Table) -> KeyColumns<'_> {
    KeyColumns::of(
        table,
        &table.key(None).map(|k| k.columns).unwrap_or_default(),
    )
}

/// The number of buckets for a table of `rows` rows: a power of two, about
/// [`ROWS_PER_BUCKET`] rows each, from 1 to [`MAX_BUCKETS`].
fn buckets(rows: i64) -> i64 {
    let wanted = (rows.max(0) / ROWS_PER_BUCKET).clamp(1, MAX_BUCKETS);
    (wanted as u64).next_power_of_two() as i64
}

/// The hash of a row's key that picks its bucket: each column's own hash function (equal keys
/// fall in one bucket, even when their forms differ), or the hash of its text for a type
/// without a known one; chained through the previous column's hash as the seed.
fn key_hash(key: &[&Column]) -> String {
    key.iter()
        .map(|c| {
            column_hash(c).unwrap_or_else(|| {
                format!(
                    "pg_catalog.hashtextextended({}::text COLLATE pg_catalog.\"C\", 0)",
                    c.name
                )
            })
        })
        .reduce(|seed, h| format!("pg_catalog.hashint8extended({h}, {seed})"))
        .unwrap_or_else(|| "0::int8".to_string())
}

/// A 64-bit hash of `columns`' values, the same on both servers for the same values.
fn record_hash(columns: &[&Column]) -> String {
    let values: Vec<String> = columns.iter().map(|c| hashed(c)).collect();
    format!(
        "pg_catalog.hash_record_extended(ROW({}), 0)",
        values.join(", ")
    )
}

/// A column's value in a form whose hash tells different values apart, hashed the same by
/// both servers: the value itself for types whose hash function hashes every bit of it
/// (text-like ones in the "C" collation, so that a nondeterministic collation does not hide a
/// change of case); the binary send form for those whose equality forgets something (floats:
/// -0 and 0, NaN's; numeric: its scale; interval: 1 day and 24 hours; money has no hash); the
/// text form for the others (no hash function, or an enum, whose hash is of its OID, which
/// differs between servers).
fn hashed(c: &Column) -> String {
    let name = &c.name;
    let ty = c.type_sql.as_str();
    match ty {
        "real" => format!("pg_catalog.float4send({name})"),
        "double precision" => format!("pg_catalog.float8send({name})"),
        "interval" => format!("pg_catalog.interval_send({name})"),
        "money" => format!("pg_catalog.cash_send({name})"),
        _ if ty.starts_with("numeric") => format!("pg_catalog.numeric_send({name})"),
        "text" | "name" => format!("({name} COLLATE pg_catalog.\"C\")"),
        _ if ty.starts_with("character") => format!("({name} COLLATE pg_catalog.\"C\")"),
        "uuid" | "smallint" | "integer" | "bigint" | "oid" | "boolean" | "bytea" | "date"
        | "inet" | "cidr" | "macaddr" | "macaddr8" | "jsonb" | "\"char\"" => name.to_string(),
        _ if ty.starts_with("timestamp") || ty.starts_with("time ") || ty.starts_with("time(") => {
            name.to_string()
        }
        _ => format!("({name}::text COLLATE pg_catalog.\"C\")"),
    }
}
