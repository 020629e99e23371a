//! Sync mode: a table snapcopy manages is made equal to the source's rows (as the run's masks
//! and subsets shape them) by writing only the rows that differ. Where the table's last run
//! left it equal to the source's rows and both servers' marks of that run hold (see
//! [`UnitContext::synced_since`]), they are the rows each side wrote since, and the deletes
//! found by the keys' hashes ([`UnitContext::changed_since`]). Else they are found by comparing
//! every row's hash where the rows live:
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

use super::compare::{buckets, key_hash, keys_of_batch, table_rows, KeyColumns, KEYS_PER_BATCH};
use super::link::Link;
use super::unit::UnitContext;
use super::{Phase, Pushdown, Step, StepKind, TableInfo, TableIx};
use crate::source::{Column, ConstraintKind, Table};
use crate::sql::literal;

/// About this many rows of a table fall in one bucket when rows are hashed: the buckets'
/// summaries cross the link whole, and every row of a bucket that differs does (its key and
/// hash).
const ROWS_PER_BUCKET: i64 = 8;

/// About this many keys fall in one bucket when only keys are hashed (a sync since the last
/// run): fewer buckets cost less to sum up (a 1M-row table's 16k take two thirds of the time of
/// 32k), and only the keys of the few that differ, those with deleted rows, cross the link.
const KEYS_PER_BUCKET: i64 = 100;

/// A table of at least this many rows, synced since its last run, has the source read its
/// written keys and every key at once, on two connections (see `UnitContext::changed_since`):
/// opening the second costs a few milliseconds, what a pass over 100,000 rows takes.
const SECOND_FROM: i64 = 100_000;

/// At most this many of the target's keys are looked up on the source by key to tell which
/// of them it lacks (their text is part of the query); more, and their buckets' keys are read
/// from the source whole.
const PROBED_KEYS: i64 = 50_000;

/// The columns a temporary table of keys holds besides the key's own, named apart from any
/// column a key may have.
const BUCKET: &str = "\"snapcopy bucket\"";
const HASH: &str = "\"snapcopy hash\"";

/// The column of the target's totals (see `UnitContext::changed_since`) that gathers the `n`th
/// column of the keys written on it since its mark.
fn local_column(n: usize) -> String {
    format!("\"snapcopy local {}\"", n + 1)
}

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
    /// The source's keys written since its mark that the target lacks.
    added: String,
    /// The one key more of the buckets where the target has one more, and the two keys more
    /// of those where it has two whose hashes tell them (with their bucket).
    single: String,
    /// The target's keys in the other buckets that differ, looked up on the source.
    probed: String,
    /// The buckets whose difference the keys the source lacks do not account for.
    unbalanced: String,
    /// Whether the keys' totals agree on both sides (then no bucket is compared).
    same: String,
    /// Whether the buckets the last sync kept are the target's.
    kept: String,
    /// The target's keys' count and the XOR of their hashes, and the keys written on it since
    /// its mark.
    our_totals: String,
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
            added: name("added"),
            single: name("single"),
            probed: name("probed"),
            unbalanced: name("unbalanced"),
            same: name("same"),
            kept: name("kept"),
            our_totals: name("our_totals"),
        }
    }

    fn all(&self) -> Vec<String> {
        [
            &self.ours,
            &self.theirs,
            &self.differ,
            &self.our_rows,
            &self.their_rows,
            &self.fetch,
            &self.gone,
            &self.added,
            &self.single,
            &self.probed,
            &self.unbalanced,
            &self.same,
            &self.kept,
            &self.our_totals,
        ]
        .into_iter()
        .cloned()
        .collect()
    }
}

impl UnitContext<'_> {
    /// Whether the sync of `table` can start from what each side wrote since its last run:
    /// when that run left it equal to the source's rows at a mark that still holds on both
    /// servers (see [`crate::source::ChangeMark`] and [`crate::target::LocalMark`]), and the
    /// source's rows are its own (not a subset, no column masked: a changed rule or filter
    /// changes rows the source did not write).
    pub(super) fn synced_since(&self, table: &Table, info: &TableInfo) -> Option<Pushdown> {
        let own_rows = self.reads_whole(table, info)
            && !table
                .columns
                .iter()
                .any(|c| self.options.masks.rule(&table.name, &c.name).is_some());
        let local = self.target.local_marks.get(&table.name)?;
        if !own_rows || !local.holds(self.target.clock.as_ref()?) {
            return None;
        }
        let last = self.target.marks.get(&table.name)?;
        let now = self.options.mark.as_ref()?.of_table(table);
        now.since(last).map(Pushdown::Since)
    }

    /// The comparison of `table` with the source's rows and the deletes of the rows the source
    /// lacks: the unit runs these for each synced table, in reverse load order, before any
    /// table's rows go in. The table is locked against other writers first, so that what the
    /// comparison sees stays so until the run commits (and the registry's mark of the target
    /// tells the run's rows from later edits). Each reporting statement returns
    /// [`StepKind::Synced`]'s counts.
    pub(super) fn sync_compare(&self, table: &Table, info: &TableInfo, i: TableIx) -> Vec<Step> {
        let t = Temps::of(i);
        let step = |sql: String| Step::new(Phase::Data, Some(i), sql);
        let mut steps = vec![
            step(format!(
                "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
                table.name
            )),
            step(format!("DROP TABLE IF EXISTS {}", t.all().join(", "))),
            // Hashed: a temporary table has no statistics, and sorting both is slower.
            step("SET LOCAL enable_mergejoin = off".to_string()),
        ];
        match info.pushdown {
            Some(Pushdown::Since(xid)) => steps.extend(self.changed_since(table, info, xid, i)),
            _ => steps.extend(self.rows_hashed(table, i)),
        }
        // The target's rows whose key the source lacks, gone (by index, not a scan).
        let key = sync_key(table);
        steps.push(
            step(format!(
                "WITH gone AS (DELETE FROM {} d USING {} g WHERE {} RETURNING 1) \
                 SELECT 0::int8, 0::int8, 0::int8, 0::int8, 0::int8, count(*), 0::int8 FROM gone",
                table.own_rows(),
                t.gone,
                key.matched("d", "g"),
            ))
            .of_kind(StepKind::Synced { batch: None }),
        );
        // The keys to read stay for the rows' statements, and so do the new ones (see
        // `sync_rows`).
        let kept_for_rows = [&t.fetch, &t.added];
        let done: Vec<String> = t
            .all()
            .into_iter()
            .filter(|n| !kept_for_rows.contains(&n))
            .collect();
        steps.push(step(format!("DROP TABLE IF EXISTS {}", done.join(", "))));
        steps.push(step("RESET enable_mergejoin".to_string()));
        steps
    }

    /// Finds what differs by hashing every row, on both servers at once (see the module's
    /// doc): the keys to read from the source go in `fetch`, those the source lacks in `gone`.
    fn rows_hashed(&self, table: &Table, i: TableIx) -> Vec<Step> {
        let key = sync_key(table);
        let columns: Vec<&Column> = table.columns.iter().filter(|c| c.is_loaded()).collect();
        let key_names = key.names("");
        let definitions = key.definitions();
        let buckets = buckets(table_rows(table), ROWS_PER_BUCKET);
        let bucket = format!("({} & {})::int4", key_hash(&key.0), buckets - 1);
        let row = record_hash(&columns);
        let ours = table.own_rows();
        let t = Temps::of(i);
        // The source's rows as the run reads them (masked, a subset), as a subquery.
        let source = self.link.select_text(&self.read_of(table, None));
        let around = |before: &str, after: &str| {
            format!("{} || {source} || {}", literal(before), literal(after))
        };
        let step = |sql: String| Step::new(Phase::Data, Some(i), sql);
        let mut steps = vec![
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
        ];
        steps.extend(buckets_differing(self.link, &t, i));
        // 2. The rows of the buckets that differ: every row when most buckets do.
        steps.push(step(self.link.send_sql(&format!(
            "{} || {source} || ') r WHERE ' || {}",
            literal(&format!("SELECT {key_names}, {row} AS {HASH} FROM (")),
            differing(&format!("SELECT b FROM {}", t.differ), &bucket, buckets),
        ))));
        steps.push(step(format!(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {key_names}, {row} AS {HASH} \
             FROM {ours} WHERE {bucket} IN (SELECT b FROM {})",
            t.our_rows, t.differ
        )));
        steps.push(step(format!(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT * FROM {}",
            t.their_rows,
            self.link.result(&format!("{definitions}, {HASH} int8"))
        )));
        steps.push(step(self.link.finish_sql()));
        steps.push(found(&t, &buckets.to_string(), i));
        // 3. The keys to read from the source (those the target lacks, or whose row differs),
        // and the rows the source lacks.
        steps.push(step(format!(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {key_names} FROM {} s \
             WHERE NOT EXISTS (SELECT FROM {} o WHERE {} AND o.{HASH} = s.{HASH})",
            t.fetch,
            t.their_rows,
            t.our_rows,
            key.matched("o", "s")
        )));
        steps.push(gone(&t, &key, i));
        steps
    }

    /// Finds what differs from what each side wrote since the table's last run, which left it
    /// equal to the source's rows (see [`Self::synced_since`]): the rows the source wrote
    /// since (`xmin` at or after the source's mark) and those written on the target (local
    /// edits, by the target's mark) are read by key from the source again. Deletes leave no
    /// trace, on either side: the keys' hashes are summed up per bucket on both servers (the
    /// target's with the new keys it is about to get), and the keys of the buckets that differ
    /// compared: the target's, looked up on the source by key, and the source's own only where
    /// the target lacks some (a row deleted on the target). The keys to read go in `fetch`,
    /// those the source lacks in `gone`. No row is hashed whole; the source's table is scanned
    /// twice (for the rows written since, and for the buckets), a third time only for the
    /// buckets where the target lacks keys. The target's buckets are those the last sync kept
    /// in the registry (the source's then), as long as the target's keys are the ones it left:
    /// their count and hash (one scan, without the buckets' hash table) agree with the kept
    /// buckets'; else the target sums up its own.
    ///
    /// A table of [`SECOND_FROM`] rows or more has the source run its two scans at once, the
    /// rows written since on a second connection (see [`Link::second`]); where the order of
    /// writes cannot matter ([`applies_early`]), the rows of the keys to read go in through it
    /// too, while the source sums up its buckets, instead of after the deletes ([`Self::sync_rows`]
    /// then finds only the keys the comparison adds). On the bench's 1M rows, 1.4-1.8 s became
    /// 1.0-1.3 s: the window where both servers work grew, the target's work after it shrank.
    fn changed_since(&self, table: &Table, info: &TableInfo, xid: u32, i: TableIx) -> Vec<Step> {
        let local = self
            .target
            .local_marks
            .get(&table.name)
            .expect("a table synced since its marks has the target's");
        let key = sync_key(table);
        let names = key.names("");
        let definitions = key.definitions();
        let buckets = buckets(table_rows(table), KEYS_PER_BUCKET);
        let hash = key_hash(&key.0);
        let bucket = format!("({hash} & {})::int4", buckets - 1);
        let ours = table.own_rows();
        let t = Temps::of(i);
        let source = self.link.select_text(&self.read_of(table, None));
        let written = self
            .link
            .select_text(&self.read_of(table, Some(crate::source::ChangeMark::written_since(xid))));
        let step = |sql: String| Step::new(Phase::Data, Some(i), sql);
        let temporary = |name: &str, select: String| {
            step(format!(
                "CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS {select}"
            ))
        };
        // Each key hashed once, then grouped by a column the planner knows nothing of: it then
        // sizes the hash table for a few groups and lets it grow, where the key's uniqueness
        // would have it sized for a group per row, too large to stay in the CPU's caches (0.52
        // s against 0.58-0.75 s for 1M keys into 16,384 buckets).
        let (before, after) = (
            format!(
                "SELECT (h & {})::int4 AS b, count(*) AS n, bit_xor(h) AS x \
                 FROM (SELECT {hash} AS h FROM (",
                buckets - 1
            ),
            ") s OFFSET 0) r GROUP BY 1",
        );
        let buckets_of = |from: &str| format!("{before}SELECT * FROM {from}{after}");
        // Whether the keys' totals are compared first (see `same` below).
        let totals =
            table.rows_deleted == 0 && !table.is_partitioned() && table.partitions.is_empty();
        let source_totals = format!(
            "{} || {source} || {}",
            literal(&format!(
                "SELECT count(*) AS n, coalesce(bit_xor({hash}), 0) AS x FROM ("
            )),
            literal(") s")
        );
        let source_buckets = format!("{} || {source} || {}", literal(&before), literal(after));
        // The buckets the last sync kept, if it kept some in as many buckets.
        let registry = &self.options.staging_schema;
        let kept = crate::target::registry::key_sums(registry, &table.name, buckets);
        let has_kept = format!("EXISTS ({kept})");
        // Every row's key is read on the source from the heap: an index-only scan of a table
        // whose visibility map is behind (rows written since its last vacuum) visits the heap
        // in the index's order, page by page at random, several times slower than reading it
        // through (measured: 1.1-1.6 s against 0.6 s for 1M rows).
        let no_index_only = "SET LOCAL enable_indexonlyscan = off";
        let mut steps: Vec<Step> = self
            .link
            .on_source(no_index_only)
            .map(step)
            .into_iter()
            .collect();
        // The source's pass over every key (see 2. below).
        let every_key = step(self.link.send_sql(if totals {
            &source_totals
        } else {
            &source_buckets
        }));
        // A large table's source runs both of its passes at once: the keys written since on a
        // second connection, while the first reads every key (on 1M rows, the 0.2 s of the
        // first pass are then spent during the 0.45 s of the second).
        let second = self
            .link
            .second()
            .filter(|_| table_rows(table) >= SECOND_FROM);
        let written_link = match &second {
            Some(second) => second.link.as_ref(),
            None => self.link,
        };
        if let Some(second) = &second {
            steps.extend(second.open.iter().cloned().map(step));
        }
        // 1. The keys written since, on the source while the target finds its own.
        steps.push(step(written_link.send_sql(&format!(
            "{} || {written} || ') r'",
            literal(&format!("SELECT {names} FROM ("))
        ))));
        if second.is_some() {
            steps.push(every_key.clone());
        }
        // The target's keys' count and hash (to compare with the source's, and with the buckets
        // the last sync kept) and the keys written on it since its mark: one pass, while the
        // source reads. (Two passes took 0.24 s of the target's 0.36 s on 1M rows.)
        let local_keys: Vec<String> = key
            .0
            .iter()
            .enumerate()
            .map(|(n, c)| {
                format!(
                    "pg_catalog.array_agg({}) FILTER (WHERE {}) AS {}",
                    c.name,
                    local.written_after(),
                    local_column(n)
                )
            })
            .collect();
        let local_unnested: Vec<String> = (0..key.0.len())
            .map(|n| format!("pg_catalog.unnest(o.{})", local_column(n)))
            .collect();
        steps.extend([
            temporary(
                &t.our_totals,
                format!(
                    "SELECT count(*) AS n, coalesce(bit_xor({hash}), 0) AS x, {} FROM {ours}",
                    local_keys.join(", ")
                ),
            ),
            temporary(
                &t.fetch,
                format!("SELECT * FROM {}", written_link.result(&definitions)),
            ),
            step(written_link.finish_sql()),
        ]);
        // The rows of the keys written on either side go in early, through the second
        // connection, while the source sums up every key (see `applies_early`); else the second
        // connection is done.
        let early = second
            .as_ref()
            .filter(|_| applies_early(table, info.data_only));
        if let (Some(second), None) = (&second, early) {
            steps.extend(second.close.iter().cloned().map(step));
        }
        steps.extend([
            // What crossed the link for it.
            step(format!(
                "SELECT 0::int8, 0::int8, 0::int8, 0::int8, 0::int8, 0::int8, \
                 (SELECT coalesce(sum(pg_catalog.pg_column_size(f.*)), 0) FROM {} f)::int8",
                t.fetch
            ))
            .of_kind(StepKind::Synced { batch: None }),
            step(format!(
                "INSERT INTO {fetch} SELECT l.* FROM {our_totals} o, ROWS FROM ({}) AS l({names}) \
                 WHERE NOT EXISTS (SELECT FROM {fetch} f WHERE {})",
                local_unnested.join(", "),
                key.matched("f", "l"),
                fetch = t.fetch,
                our_totals = t.our_totals,
            )),
            // The source's new keys, which the target is about to get: by the key's index (a
            // table loaded since it was last analyzed may look cheaper to hash whole).
            step("SET LOCAL enable_hashjoin = off".to_string()),
            temporary(
                &t.added,
                format!(
                    "SELECT {} FROM {} f WHERE NOT EXISTS (SELECT FROM {ours} d WHERE {})",
                    key.names("f."),
                    t.fetch,
                    key.matched("d", "f")
                ),
            ),
            step("RESET enable_hashjoin".to_string()),
            // The target's keys are read from the heap too, for the same reason: its table has
            // the last run's writes and the local edits since (measured on 1M rows after a sync
            // of 17,000: 0.98 s against 0.31 s for the buckets, 0.78 s against 0.20 s for the
            // keys of the buckets that differ).
            step("SET LOCAL enable_indexonlyscan = off".to_string()),
        ]);
        // 2. The source's buckets (or its keys' totals first).
        if second.is_none() {
            steps.push(every_key);
        }
        // A table the source's statistics have never seen a row deleted from (append-only
        // tables, the common case for a daily sync) compares the keys' totals (count and XOR
        // of their hashes) first, the target's with the new keys it is about to get: when they
        // agree, no key is missing on either side, and the buckets are not compared. Elsewhere
        // they usually differ, and would cost a scan of the source for nothing. The statistics
        // are a hint: a key that changed, or a row deleted since they were reset, makes the
        // totals differ, and the buckets are compared as ever. Then the steps that scan every
        // key are given a condition: the source's query is none, the target's scans are
        // skipped (a condition that is constant gates a scan, which then reads nothing), no
        // bucket counts as compared.
        let same = totals.then(|| format!("(SELECT same FROM {})", t.same));
        let (compared, where_not_same) = match &same {
            Some(same) => {
                steps.extend([
                    temporary(
                        &t.same,
                        format!(
                            "SELECT t.n = o.n + a.n AND t.x = o.x # a.x AS same FROM {}, {} o, \
                             (SELECT count(*) AS n, coalesce(bit_xor({hash}), 0) AS x FROM {}) a",
                            self.link.result("n int8, x int8"),
                            t.our_totals,
                            t.added,
                        ),
                    ),
                    step(self.link.finish_sql()),
                    step(self.link.send_sql(&format!(
                        "CASE WHEN {same} THEN {} ELSE {source_buckets} END",
                        literal("SELECT 0::int4, 0::int8, 0::int8 WHERE false")
                    ))),
                ]);
                (
                    format!("CASE WHEN {same} THEN 0 ELSE {buckets} END"),
                    format!(" WHERE NOT {same}"),
                )
            }
            None => (buckets.to_string(), String::new()),
        };
        // The target's buckets, while the source sums up its own: the buckets the last sync
        // left, if the target's keys are still those (their count and hash agree with the
        // buckets'), else its own.
        let valid = format!("(SELECT valid FROM {})", t.kept);
        steps.extend([
            temporary(
                &t.kept,
                format!(
                    "SELECT {has_kept} AND (o.n, o.x) = (SELECT coalesce(sum(n), 0)::int8, \
                     coalesce(bit_xor(x), 0) FROM ({kept}) k) AS valid FROM {} o",
                    t.our_totals
                ),
            ),
            temporary(
                &t.ours,
                format!(
                    "SELECT b, sum(n)::int8 AS n, bit_xor(x) AS x FROM ({kept} AND {valid} \
                     UNION ALL {} UNION ALL {}) u{where_not_same} GROUP BY 1",
                    buckets_of(&format!("{ours} WHERE NOT {valid}")),
                    buckets_of(&t.added),
                ),
            ),
        ]);
        if let Some(second) = early {
            steps.push(self.rows_written(table, info, i, second.link.as_ref()));
            steps.extend(second.close.iter().cloned().map(step));
        }
        steps.extend(buckets_differing(self.link, &t, i));
        // The source's buckets are the target's once it has synced: kept for the next sync.
        steps.push(step(crate::target::registry::keep_key_sums(
            registry,
            &table.name,
            &format!("SELECT b, n, x FROM {}", t.theirs),
            buckets,
            &same
                .as_ref()
                .map_or("true".to_string(), |same| format!("NOT {same}")),
        )));
        let unless_same = |word: &str| {
            same.as_ref()
                .map(|same| format!(" {word} NOT {same}"))
                .unwrap_or_default()
        };
        // 3. The target's keys of the buckets that differ, with those it is about to get (it
        // has them already where they went in early).
        let new_keys = match early {
            Some(_) => String::new(),
            None => format!(
                " UNION ALL SELECT {names}, {bucket}, {hash} FROM {added} \
                 WHERE {bucket} IN (SELECT b FROM {differ})",
                differ = t.differ,
                added = t.added
            ),
        };
        // The buckets as a constant array (`%L` in a statement the target puts together when
        // it runs): a constant list is looked up through a hash table built once, where a
        // subquery's is probed through a subplan per row (on 1M rows, 0.23-0.24 s against
        // 0.28 s). `%` in the statement's own text is doubled for `format`.
        let double = |sql: String| sql.replace('%', "%%");
        let scan = format!(
            "{}%L{}",
            double(format!(
                "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS \
                 SELECT {names}, {bucket} AS {BUCKET}, {hash} AS {HASH} FROM {ours} \
                 WHERE {bucket} = ANY (",
                t.our_rows
            )),
            double(format!("::int4[]){}{new_keys}", unless_same("AND"))),
        );
        steps.push(step(format!(
            "DO $snapcopy$ BEGIN EXECUTE pg_catalog.format({}, \
             (SELECT pg_catalog.array_agg(b)::text FROM {})); END $snapcopy$",
            literal(&scan),
            t.differ
        )));
        steps.push(step("RESET enable_indexonlyscan".to_string()));
        // A bucket where the target has one key more (the common case: a row deleted on the
        // source) tells that key's hash: the XOR of the two sides' sums. Its key is found on
        // the target alone. So are two keys more, the one pair of the bucket's keys whose hashes
        // XOR to it (the next most common case: 120 of the 1,900 buckets of 2,000 deletes in a
        // 1M-row table, whose 7,800 keys were otherwise looked up on the source).
        steps.push(temporary(
            &t.single,
            format!(
                "WITH two AS MATERIALIZED (SELECT o.*, o.{HASH} # d.h AS partner \
                 FROM {our_rows} o JOIN {differ} d ON d.b = o.{BUCKET} AND d.extra = 2) \
                 SELECT o.{BUCKET}, {names_o} FROM {our_rows} o JOIN {differ} d \
                 ON d.b = o.{BUCKET} AND d.extra = 1 AND d.h = o.{HASH} \
                 UNION ALL SELECT p.{BUCKET}, {names_p} FROM (SELECT o.{BUCKET}, {names_o}, \
                 count(*) OVER (PARTITION BY o.{BUCKET}) AS found FROM two o \
                 JOIN two q ON q.{BUCKET} = o.{BUCKET} AND q.{HASH} = o.partner \
                 AND q.{HASH} <> o.{HASH}) p WHERE p.found = 2",
                names_o = key.names("o."),
                names_p = key.names("p."),
                our_rows = t.our_rows,
                differ = t.differ
            ),
        ));
        // The target's keys in the other buckets are looked up on the source, by its key's
        // index (listing a bucket's keys there would hash every row again): the keys it has go
        // in `their_rows`. Too many to send, none are, and the buckets are listed below.
        steps.push(temporary(
            &t.probed,
            format!(
                "SELECT {}, o.{BUCKET}, o.{HASH} FROM {} o \
                 WHERE NOT EXISTS (SELECT FROM {} s WHERE s.{BUCKET} = o.{BUCKET})",
                key.names("o."),
                t.our_rows,
                t.single
            ),
        ));
        let mut present = self.read_of(table, None);
        present.columns = key.0.iter().map(|c| c.name.to_string()).collect();
        present.computed = Some(keys_of_batch(&key.0));
        steps.push(temporary(
            &t.their_rows,
            format!(
                "WITH batch AS (SELECT {names} FROM {probed} \
                 WHERE (SELECT count(*) FROM {probed}) <= {PROBED_KEYS}) SELECT * FROM {}",
                self.link
                    .read_query(&self.link.select_text(&present), &definitions),
                probed = t.probed,
            ),
        ));
        // Where the keys the source lacks account for a bucket's difference (as many as the
        // target has more, their hashes XOR to the difference), they are what differs; else
        // the source has keys there the target lacks (a row deleted on the target), and its
        // keys of the bucket are read whole.
        steps.push(temporary(
            &t.unbalanced,
            format!(
                "SELECT d.b FROM {differ} d LEFT JOIN (SELECT p.{BUCKET} AS b, count(*) AS n, \
                 bit_xor(p.{HASH}) AS x FROM {probed} p WHERE NOT EXISTS (SELECT FROM \
                 {their_rows} s WHERE {}) GROUP BY 1) g ON g.b = d.b \
                 WHERE NOT EXISTS (SELECT FROM {single} s WHERE s.{BUCKET} = d.b) \
                 AND (d.extra <> coalesce(g.n, 0) OR d.h <> coalesce(g.x, 0))",
                key.matched("s", "p"),
                differ = t.differ,
                probed = t.probed,
                their_rows = t.their_rows,
                single = t.single,
            ),
        ));
        steps.push(step(self.link.send_sql(&format!(
            "{} || {source} || ') r WHERE ' || {}",
            literal(&format!("SELECT {names} FROM (")),
            differing(&format!("SELECT b FROM {}", t.unbalanced), &bucket, buckets),
        ))));
        steps.push(step(format!(
            "INSERT INTO {} SELECT * FROM {}",
            t.their_rows,
            self.link.result(&definitions)
        )));
        steps.push(step(self.link.finish_sql()));
        steps.push(found(&t, &compared, i));
        // The source's keys the target lacks (deleted on it) are read too. They are only in the
        // buckets read whole (elsewhere the target's keys the source lacks account for the
        // difference): both sides of the comparison are kept to those (the target's keys of
        // every bucket that differs took 25-35 ms to hash on 1M rows, for nothing).
        steps.push(step(format!(
            "INSERT INTO {fetch} SELECT {} FROM {their_rows} s \
             WHERE {bucket} IN (SELECT b FROM {unbalanced}) AND NOT EXISTS (SELECT FROM \
             {our_rows} o WHERE o.{BUCKET} IN (SELECT b FROM {unbalanced}) AND {})",
            key.names("s."),
            key.matched("o", "s"),
            fetch = t.fetch,
            their_rows = t.their_rows,
            our_rows = t.our_rows,
            unbalanced = t.unbalanced,
        )));
        // Gone: the keys more a bucket's sums tell, and in the others (the target's keys there
        // are `probed`'s) the keys the source lacks.
        steps.push(temporary(
            &t.gone,
            format!(
                "SELECT {names} FROM {} UNION ALL SELECT {} FROM {} o \
                 WHERE NOT EXISTS (SELECT FROM {} s WHERE {})",
                t.single,
                key.names("o."),
                t.probed,
                t.their_rows,
                key.matched("s", "o"),
            ),
        ));
        steps.extend(self.link.on_source("RESET enable_indexonlyscan").map(step));
        steps
    }

    /// The rows of `table` that differ from the source's, read by key from the source in
    /// batches: each updates the target's row with the key, or is inserted where it has none.
    pub(super) fn sync_rows(&self, table: &Table, info: &TableInfo, i: TableIx) -> Vec<Step> {
        vec![self.rows_written(table, info, i, self.link)]
    }

    /// The statement of [`Self::sync_rows`], reading through `link`: the next
    /// [`KEYS_PER_BATCH`] keys of the table's `fetch`, run until it takes fewer.
    fn rows_written(&self, table: &Table, info: &TableInfo, i: TableIx, link: &dyn Link) -> Step {
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
        // A key the comparison found new (since the last run) has no row to update: it is not
        // looked up (on 1M rows, 10,000 lookups of the key's index, 27 ms).
        let old = if matches!(info.pushdown, Some(Pushdown::Since(_))) {
            format!(
                " AND NOT EXISTS (SELECT FROM {} a WHERE {})",
                t.added,
                key.matched("a", "s")
            )
        } else {
            String::new()
        };
        let update = if set.is_empty() {
            // Every column is the key's: a row that differs is another key.
            format!(
                "SELECT {key_names} FROM {ours} d JOIN src s ON {}{old}",
                key.matched("d", "s")
            )
        } else {
            format!(
                "UPDATE {ours} d SET {} FROM src s WHERE {}{old} RETURNING {key_names}",
                set.join(", "),
                key.matched("d", "s"),
            )
        };
        Step::new(
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
                 (SELECT coalesce(sum(pg_catalog.pg_column_size(s.*)), 0) FROM src s)::int8",
                fetch = t.fetch,
                read = link.read(&rows),
                batch_match = key.matched("u", "s"),
                insert = self.insert_rows(table, &table.name, "new"),
            ),
        )
        .of_kind(StepKind::Synced {
            batch: Some(KEYS_PER_BATCH),
        })
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

/// Whether the rows of a large table's keys written on either side may go in while its
/// comparison runs, before the rows the source lacks are deleted (see
/// `UnitContext::changed_since`): when the table is snapcopy's (its constraints are the
/// source's), no other key or unique index could meet a value a row about to be deleted still
/// holds, and no foreign key has it wait for another table's rows (a unit writes its tables'
/// rows in load order, after every table's deletes). Its triggers see the same writes in
/// another order, so a table with triggers waits too.
pub(super) fn applies_early(table: &Table, data_only: bool) -> bool {
    let key = sync_key(table);
    let is_key = |columns: &[crate::sql::Ident]| {
        columns.len() == key.0.len() && columns.iter().zip(&key.0).all(|(a, b)| a == &b.name)
    };
    !data_only
        && table.triggers.is_empty()
        && !table.is_partitioned()
        && table.partitions.is_empty()
        && table.constraints.iter().all(|c| match c.kind {
            ConstraintKind::Check => true,
            ConstraintKind::PrimaryKey | ConstraintKind::Unique => is_key(&c.columns),
            ConstraintKind::Exclude | ConstraintKind::ForeignKey { .. } => false,
        })
        && !table
            .indexes
            .iter()
            .any(|x| x.definition.starts_with("CREATE UNIQUE"))
}

/// The source's buckets, read through `link` while the target made its own (`ours`), and
/// those that differ, with how many rows the target has more and the XOR of both sides' hashes.
fn buckets_differing(link: &dyn Link, t: &Temps, i: TableIx) -> Vec<Step> {
    let step = |sql: String| Step::new(Phase::Data, Some(i), sql);
    vec![
        step(format!(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT * FROM {}",
            t.theirs,
            link.result("b int4, n int8, x int8")
        )),
        step(link.finish_sql()),
        step(format!(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT coalesce(s.b, o.b) AS b, \
             coalesce(o.n, 0) - coalesce(s.n, 0) AS extra, \
             coalesce(o.x, 0) # coalesce(s.x, 0) AS h \
             FROM {} s FULL JOIN {} o ON o.b = s.b \
             WHERE s.b IS NULL OR o.b IS NULL OR s.n <> o.n OR s.x <> o.x",
            t.differ, t.theirs, t.ours
        )),
    ]
}

/// The condition, as SQL text the target builds when the statement runs, that picks on the
/// source the rows of the buckets `chosen` (a query of the target's) selects: every row when
/// most buckets are.
fn differing(chosen: &str, bucket: &str, buckets: i64) -> String {
    format!(
        "(WITH c AS MATERIALIZED ({chosen}) SELECT CASE \
         WHEN NOT EXISTS (SELECT FROM c) THEN 'false' \
         WHEN (SELECT count(*) FROM c) > {half} THEN 'true' \
         ELSE {bucket_is} || pg_catalog.quote_literal((SELECT pg_catalog.array_agg(b)::text \
         FROM c)) || '::int4[])' END)",
        half = buckets / 2,
        bucket_is = literal(&format!("{bucket} = ANY (")),
    )
}

/// What the comparison found, and what crossed the link for it: about the size of the
/// source's results as the target holds them (their text, which dblink carries, takes twice
/// as long to measure).
fn found(t: &Temps, buckets: &str, i: TableIx) -> Step {
    Step::new(
        Phase::Data,
        Some(i),
        format!(
            "SELECT 0::int8, ({buckets})::int8, (SELECT count(*) FROM {differ}), 0::int8, \
             0::int8, 0::int8, (SELECT coalesce(sum(pg_catalog.pg_column_size(s.*)), 0) \
             FROM {theirs} s)::int8 + (SELECT coalesce(sum(pg_catalog.pg_column_size(s.*)), \
             0) FROM {their_rows} s)::int8",
            differ = t.differ,
            theirs = t.theirs,
            their_rows = t.their_rows,
        ),
    )
    .of_kind(StepKind::Synced { batch: None })
}

/// The target's keys, of the buckets that differ, that the source lacks.
fn gone(t: &Temps, key: &KeyColumns, i: TableIx) -> Step {
    Step::new(
        Phase::Data,
        Some(i),
        format!(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} o WHERE NOT EXISTS \
             (SELECT FROM {} s WHERE {})",
            t.gone,
            key.names("o."),
            t.our_rows,
            t.their_rows,
            key.matched("s", "o")
        ),
    )
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
