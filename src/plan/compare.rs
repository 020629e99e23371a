//! Incremental mode for a key that does not grow (uuid, text, composite): the rows the target
//! lacks are found by comparing hashes of the keys on both servers, so that only the missing
//! rows cross the link (see [`UnitContext::compared_rows`]).

use super::unit::UnitContext;
use super::{Action, Phase, Pushdown, Step, StepKind, TableInfo, TableIx};
use crate::source::{Column, Table};
use crate::sql::{literal, Ident};

/// Keys whose rows are read from the source per statement, by key (here and in sync).
pub(super) const KEYS_PER_BATCH: u64 = 10_000;

/// The most hash buckets a table's keys or rows are summed up in.
const MAX_BUCKETS: i64 = 1 << 17;

/// About this many rows of a table fall in one hash bucket of its keys.
const ROWS_PER_BUCKET: i64 = 1_000;

impl UnitContext<'_> {
    /// How incremental mode finds the rows an existing table whose key does not grow lacks,
    /// when the link can do better than read every row: through dblink (which can run queries
    /// of its own on the source), the whole table (not a subset). When the table's last run
    /// read all its rows from the same relations of the same source (database, cluster and
    /// timeline: see [`crate::source::ChangeMark`]), only the rows written since travel
    /// ([`Pushdown::Since`]); else its keys are compared by their hashes
    /// ([`Pushdown::KeyHashes`]), if no column is masked (the comparison is of the source's own
    /// keys) and each key column's type has a known hash function.
    ///
    /// Rows written since the last run are the ones a growing key finds above its high-water
    /// mark: a row deleted on the target that the source did not change since stays deleted,
    /// as a local edit (the key comparison would bring it back).
    ///
    /// A synced table reads what changed since its last run when it can (see
    /// [`UnitContext::synced_since`]).
    pub(super) fn compared(&self, table: &Table, info: &TableInfo) -> Option<Pushdown> {
        if info.action == Action::Sync {
            return self.synced_since(table, info);
        }
        let eligible = info.action == Action::Insert
            && info.pushdown == Some(Pushdown::AllKeys)
            && self.reads_whole(table, info);
        if !eligible {
            return None;
        }
        let last = self.target.marks.get(&table.name);
        let now = self.options.mark.as_ref().map(|m| m.of_table(table));
        if let Some(xid) = now.zip(last).and_then(|(now, last)| now.since(last)) {
            return Some(Pushdown::Since(xid));
        }
        let masked = table
            .columns
            .iter()
            .any(|c| self.options.masks.rule(&table.name, &c.name).is_some());
        if masked {
            return None;
        }
        let key = table.key(self.options.cursors.get(&table.name))?;
        let hashable = key.columns.iter().all(|k| {
            table
                .columns
                .iter()
                .any(|c| &c.name == k && column_hash(c).is_some())
        });
        hashable.then_some(Pushdown::KeyHashes(key.columns))
    }

    /// The missing rows of `table`, found by its keys' hashes, in three steps that each cost
    /// little when nothing is missing:
    ///
    /// 1. the count and XOR of the key hashes, on both servers: equal means nothing to do;
    /// 2. else the same per bucket of the hashes (about [`ROWS_PER_BUCKET`] rows each): the
    ///    buckets whose source side differs;
    /// 3. the source's keys in those buckets that the target lacks, kept in a temporary table
    ///    (keys only: the target's temp space holds no rows), then their rows, read by key from
    ///    the source and inserted [`KEYS_PER_BATCH`] keys at a time.
    ///
    /// Keys reach the source as text the target prints: in ISO, which every target session
    /// sets when it opens (see `exec::session`). Rows never pass through snapcopy; only the
    /// missing rows and the keys of differing buckets cross the link. Rows the target has that
    /// the source lacks stay.
    pub(super) fn compared_rows(&self, table: &Table, key: &[Ident], i: TableIx) -> Vec<Step> {
        let key = KeyColumns::of(table, key);
        let from = table.own_rows();
        let hash = key_hash(&key.0);
        let mask = buckets(table_rows(table), ROWS_PER_BUCKET) - 1;
        let names = key.names("");
        let definitions = key.definitions();
        let read = |select: String, definitions: &str| self.link.read_query(&select, definitions);
        let totals = format!(
            "SELECT count(*), coalesce(bit_xor(h), 0) FROM (SELECT {hash} AS h FROM {from}) r"
        );
        let per_bucket = format!(
            "SELECT (h & {mask})::int4, count(*), bit_xor(h) FROM (SELECT {hash} AS h FROM {from}) r GROUP BY 1"
        );
        let same = "(SELECT same FROM pg_temp.snapcopy_same)";
        let step = |sql: String| Step::new(Phase::Data, Some(i), sql);
        let mut steps = vec![
            step(
                "DROP TABLE IF EXISTS pg_temp.snapcopy_same, pg_temp.snapcopy_diff, \
                 pg_temp.snapcopy_missing"
                    .to_string(),
            ),
            step(format!(
                "CREATE TEMPORARY TABLE snapcopy_same ON COMMIT DROP AS \
                 SELECT t.n = d.n AND t.x = d.x AS same FROM {}, \
                 (SELECT count(*) AS n, coalesce(bit_xor({hash}), 0) AS x FROM {from}) d",
                read(literal(&totals), "n int8, x int8")
            )),
            step(format!(
                "CREATE TEMPORARY TABLE snapcopy_diff ON COMMIT DROP AS SELECT t.b FROM {} \
                 LEFT JOIN (SELECT (h & {mask})::int4 AS b, count(*) AS n, bit_xor(h) AS x \
                 FROM (SELECT {hash} AS h FROM {from} WHERE NOT {same}) r GROUP BY 1) d \
                 ON d.b = t.b WHERE d.b IS NULL OR t.n <> d.n OR t.x <> d.x",
                read(
                    format!(
                        "CASE WHEN {same} THEN {} ELSE {} END",
                        literal("SELECT 0, 0, 0 WHERE false"),
                        literal(&per_bucket)
                    ),
                    "b int4, n int8, x int8"
                )
            )),
            step(format!(
                "CREATE TEMPORARY TABLE snapcopy_missing ON COMMIT DROP AS SELECT {names} FROM {} \
                 WHERE NOT EXISTS (SELECT FROM {from} d WHERE {})",
                read(
                    format!(
                        "CASE WHEN NOT EXISTS (SELECT FROM pg_temp.snapcopy_diff) THEN {} \
                         WHEN (SELECT count(*) FROM pg_temp.snapcopy_diff) > {} THEN {} \
                         ELSE {} || pg_catalog.quote_literal((SELECT pg_catalog.array_agg(b)::text \
                         FROM pg_temp.snapcopy_diff)) || '::int4[])' END",
                        literal(&format!("SELECT {names} FROM {from} WHERE false")),
                        // Most buckets differ: every key, without hashing them again.
                        (mask + 1) / 2,
                        literal(&format!("SELECT {names} FROM {from}")),
                        literal(&format!(
                            "SELECT {names} FROM {from} WHERE ({hash} & {mask})::int4 = ANY ("
                        )),
                    ),
                    &definitions
                ),
                key.matched("d", "t")
            )),
        ];
        let mut rows = self.read_of(table, None);
        rows.computed = Some(keys_of_batch(&key.0));
        steps.push(
            step(format!(
                "WITH batch AS (DELETE FROM pg_temp.snapcopy_missing WHERE ctid = ANY (ARRAY(\
                 SELECT ctid FROM pg_temp.snapcopy_missing LIMIT {KEYS_PER_BATCH})) RETURNING *) \
                 {} ON CONFLICT DO NOTHING",
                self.insert_rows(table, &table.name, &self.link.read(&rows))
            ))
            .of_kind(StepKind::Batch {
                size: KEYS_PER_BATCH,
            }),
        );
        steps
    }
}

/// A key's columns, and the SQL that names and matches them.
pub(super) struct KeyColumns<'t>(pub(super) Vec<&'t Column>);

impl<'t> KeyColumns<'t> {
    /// The columns of `table` named by `key`.
    pub(super) fn of(table: &'t Table, key: &[Ident]) -> KeyColumns<'t> {
        KeyColumns(
            key.iter()
                .filter_map(|k| table.columns.iter().find(|c| &c.name == k))
                .collect(),
        )
    }

    /// `<prefix>"a", <prefix>"b"`.
    pub(super) fn names(&self, prefix: &str) -> String {
        let names: Vec<String> = self
            .0
            .iter()
            .map(|c| format!("{prefix}{}", c.name))
            .collect();
        names.join(", ")
    }

    /// `"a" <type>, "b" <type>`, for a result's column definitions.
    pub(super) fn definitions(&self) -> String {
        let definitions: Vec<String> = self
            .0
            .iter()
            .map(|c| format!("{} {}", c.name, c.type_sql))
            .collect();
        definitions.join(", ")
    }

    /// `<a>."a" = <b>."a" AND ...`: rows of `a` and `b` with the same key.
    pub(super) fn matched(&self, a: &str, b: &str) -> String {
        let matched: Vec<String> = self
            .0
            .iter()
            .map(|c| format!("{a}.{0} = {b}.{0}", c.name))
            .collect();
        matched.join(" AND ")
    }
}

/// The condition, as SQL text the target builds when the statement runs, that picks on the
/// source the rows of the keys a statement's `batch` holds: `(k1, k2) IN (SELECT * FROM ROWS
/// FROM (unnest(<k1s>), unnest(<k2s>)))`, the arrays built from the batch's keys.
pub(super) fn keys_of_batch(key: &[&Column]) -> String {
    let names: Vec<String> = key.iter().map(|c| c.name.to_string()).collect();
    let arrays: Vec<String> = key
        .iter()
        .map(|c| {
            format!(
                "'pg_catalog.unnest(' || pg_catalog.quote_literal((SELECT \
                 pg_catalog.array_agg({})::text FROM batch)) || {}",
                c.name,
                literal(&format!("::{}[])", c.type_sql))
            )
        })
        .collect();
    format!(
        "(CASE WHEN NOT EXISTS (SELECT FROM batch) THEN 'false' ELSE {} || {} || '))' END)",
        literal(&format!(
            "({}) IN (SELECT * FROM ROWS FROM (",
            names.join(", ")
        )),
        arrays.join(" || ', ' || ")
    )
}

/// The number of hash buckets for a table of `rows` rows: a power of two, about `per_bucket`
/// rows each, from 1 to [`MAX_BUCKETS`].
pub(super) fn buckets(rows: i64, per_bucket: i64) -> i64 {
    let wanted = (rows.max(0) / per_bucket).clamp(1, MAX_BUCKETS);
    (wanted as u64).next_power_of_two() as i64
}

/// About how many rows `table` has: a table never analyzed has no row estimate, its size says.
pub(super) fn table_rows(table: &Table) -> i64 {
    match table.rows_with_partitions() {
        n if n > 0 => n,
        _ => table.data_bytes_with_partitions() / 100,
    }
}

/// A 64-bit hash of the key columns, the same on both servers, that picks a key's bucket:
/// each column's own hash function (equal keys fall in one bucket, even when their forms
/// differ), or the hash of its text for a type without a known one; chained through the
/// previous column's hash as the seed.
pub(super) fn key_hash(key: &[&Column]) -> String {
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

/// The expression hashing one key column to an `int8`, for the types whose hash is known
/// (their default hash operator class's extended function); `None` for the others.
pub(super) fn column_hash(c: &Column) -> Option<String> {
    let ty = c.type_sql.as_str();
    let function = match ty {
        "uuid" => "uuid_hash_extended",
        "smallint" => "hashint2extended",
        "integer" => "hashint4extended",
        "bigint" => "hashint8extended",
        "oid" => "hashoidextended",
        "text" => "hashtextextended",
        "bytea" => "hashvarlenaextended",
        _ if ty.starts_with("character varying") => "hashtextextended",
        _ if ty.starts_with("numeric") => "hash_numeric_extended",
        // Hashed through a one-column record: each by its type's own hash function.
        "date" | "boolean" | "interval" | "inet" | "cidr" | "macaddr" | "jsonb" => {
            return Some(format!(
                "pg_catalog.hash_record_extended(ROW({}), 0)",
                c.name
            ))
        }
        _ if ty.starts_with("timestamp")
            || ty.starts_with("time ")
            || ty.starts_with("character(")
            || ty == "character" =>
        {
            return Some(format!(
                "pg_catalog.hash_record_extended(ROW({}), 0)",
                c.name
            ))
        }
        _ => return None,
    };
    Some(format!("pg_catalog.{function}({}, 0)", c.name))
}
