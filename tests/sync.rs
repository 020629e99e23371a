//! `--mode sync`: the target's tables become equal to the source's (inserts, updates, deletes,
//! local edits reverted), only the rows that differ are written, and what does not compare
//! falls back to a full reload that says why.

mod common;

use std::process::Command;

use common::{checksum, summary_row, Link, Pair};
use predicates::prelude::*;

/// Keys of four kinds, values that only a careful comparison tells apart, and a parent and
/// child tied by a foreign key.
const SCHEMA: &str = r#"
    CREATE TABLE public.items (
        id uuid PRIMARY KEY,
        title text,
        score double precision,
        price numeric,
        span interval,
        attrs jsonb
    );
    INSERT INTO public.items
    SELECT md5(g::text)::uuid, 'item ' || g, g * 0.5, g, g * interval '1 hour', jsonb_build_object('g', g)
    FROM generate_series(1, 5000) g;
    CREATE TABLE public.pairs (a text, b integer, v text, PRIMARY KEY (a, b));
    INSERT INTO public.pairs SELECT w, g, 'v' FROM generate_series(1, 30) g,
        unnest(ARRAY['plain', 'x"y', 'a,b', '{c}', 'back\slash', ' sp ', 'NULL', '']) w;
    CREATE TABLE public.authors (id integer PRIMARY KEY, name text NOT NULL);
    CREATE TABLE public.books (
        id bigint PRIMARY KEY,
        author_id integer NOT NULL REFERENCES public.authors,
        title text NOT NULL
    );
    INSERT INTO public.authors SELECT g, 'author ' || g FROM generate_series(1, 200) g;
    INSERT INTO public.books SELECT g, 1 + g % 200, 'book ' || g FROM generate_series(1, 2000) g;
    CREATE TABLE public.log (at integer, what text);
    INSERT INTO public.log SELECT g, 'line' FROM generate_series(1, 10) g;
    ANALYZE;
"#;

const TABLES: [&str; 5] = [
    "public.items",
    "public.pairs",
    "public.authors",
    "public.books",
    "public.log",
];

fn same(pair: &Pair, table: &str) {
    assert_eq!(
        checksum(&pair.target, "dev", table),
        checksum(&pair.source, "app", table),
        "rows of {table}"
    );
}

fn sync(pair: &Pair) -> Vec<u8> {
    sync_of(pair, &TABLES)
}

/// A sync of `tables`, its JSON summary, after checking that each equals the source's.
fn sync_of(pair: &Pair, tables: &[&str]) -> Vec<u8> {
    let out = pair
        .snapcopy()
        .args(["--mode", "sync", "--json"])
        .args(tables)
        .assert()
        .success();
    for table in tables {
        same(pair, table);
    }
    out.get_output().stdout.clone()
}

/// The titles of the first `n` rows (by their number) of `public.items` whose key falls in
/// bucket `b` of 64 (a sync of its 5,000 rows sums their keys up in 64 buckets).
fn titles_in_bucket(pair: &Pair, b: i64, n: usize) -> Vec<String> {
    let titles = pair.source.psql(
        "app",
        &format!(
            "SELECT string_agg(title, ',' ORDER BY g) FROM (SELECT title, \
             substr(title, 6)::int AS g FROM public.items \
             WHERE (pg_catalog.uuid_hash_extended(id, 0) & 63) = {b} ORDER BY g LIMIT {n}) s"
        ),
    );
    titles.split(',').map(str::to_string).collect()
}

/// The sync counts of `table` in a summary: inserted, updated, deleted.
fn changed(out: &[u8], table: &str) -> (i64, i64, i64) {
    let row = summary_row(out, table);
    let sync = &row["sync"];
    assert_eq!(row["action"], "sync", "{row}");
    (
        sync["inserted"].as_i64().unwrap(),
        sync["updated"].as_i64().unwrap(),
        sync["deleted"].as_i64().unwrap(),
    )
}

/// A first copy, then scattered changes on the source (values equal to PostgreSQL's `=` but
/// not the same among them) and local edits on the target; `before_sync` runs, then a sync,
/// whose output it returns after checking that every table equals the source's, with the counts
/// each way of comparing must find, and that rows that did not change were not written.
fn scattered_changes_synced(pair: &Pair, before_sync: impl FnOnce()) -> Vec<u8> {
    pair.source.psql("app", SCHEMA);
    pair.snapcopy().args(TABLES).assert().success();
    let untouched = pair.target.psql(
        "dev",
        "SELECT string_agg(xmin::text, ',' ORDER BY id) FROM public.items WHERE title LIKE 'item 4_'",
    );
    pair.source.psql(
        "app",
        r#"UPDATE public.items SET title = title || ' (edited)' WHERE title IN ('item 17', 'item 2500', 'item 3999');
         UPDATE public.items SET score = '-0' WHERE title = 'item 1';
         UPDATE public.items SET score = 'NaN' WHERE title = 'item 2';
         UPDATE public.items SET price = 3.00 WHERE title = 'item 3';
         UPDATE public.items SET span = interval '1 day' WHERE title = 'item 24';
         UPDATE public.items SET title = NULL WHERE title = 'item 5';
         UPDATE public.items SET title = '' WHERE title = 'item 6';
         DELETE FROM public.items WHERE title IN ('item 100', 'item 1000', 'item 4999');
         INSERT INTO public.items SELECT md5((g * 7919)::text)::uuid, 'new ' || g, NULL, NULL, NULL, NULL
         FROM generate_series(1, 20) g;
         UPDATE public.pairs SET v = 'changed' WHERE (a, b) IN (('x"y', 3), ('', 30), ('back\slash', 1));
         DELETE FROM public.pairs WHERE (a, b) = ('{c}', 7);
         INSERT INTO public.pairs VALUES ('a,b', 31, 'new');
         DELETE FROM public.books WHERE author_id = 7;
         DELETE FROM public.authors WHERE id = 7;
         INSERT INTO public.authors VALUES (201, 'new author');
         INSERT INTO public.books VALUES (2001, 201, 'new book'), (2002, 201, 'another');
         UPDATE public.books SET author_id = 201 WHERE id = 5;
         INSERT INTO public.log VALUES (11, 'line')"#,
    );
    // Local edits on the target: an update, a delete, a row of its own; all reverted.
    pair.target.psql(
        "dev",
        "UPDATE public.items SET title = 'local' WHERE title = 'item 9';
         DELETE FROM public.items WHERE title = 'item 10';
         INSERT INTO public.items (id, title) VALUES ('00000000-0000-0000-0000-000000000001', 'mine');
         UPDATE public.items SET score = 0 WHERE title = 'item 11';
         DELETE FROM public.pairs WHERE (a, b) = ('plain', 4);",
    );
    pair.source.psql(
        "app",
        "UPDATE public.items SET score = '-0' WHERE title = 'item 11'",
    );
    before_sync();

    let out = sync(pair);
    // Items: 20 new rows and the one deleted locally; 10 rows edited on the source (item 11's
    // local zero is not the source's minus zero) and the one edited locally; 3 deletes and the
    // local row.
    assert_eq!(changed(&out, "public.items"), (21, 11, 4));
    assert_eq!(changed(&out, "public.pairs"), (2, 3, 1));
    assert_eq!(changed(&out, "public.authors"), (1, 0, 1));
    // Author 7's ten books go, two new ones come, one moves to the new author.
    assert_eq!(changed(&out, "public.books"), (2, 1, 10));
    let items = summary_row(&out, "public.items");
    assert!(items["sync"]["link_bytes"].as_i64().unwrap() > 0, "{items}");
    assert_eq!(items["rows"], 32, "rows written: {items}");
    // A table without a key is reloaded, and the summary says why.
    let log = summary_row(&out, "public.log");
    assert_eq!(log["action"], "reload", "{log}");
    assert!(
        log["note"]
            .as_str()
            .unwrap()
            .contains("no primary key nor unique key"),
        "{log}"
    );
    // Rows that did not change were not written.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(xmin::text, ',' ORDER BY id) FROM public.items WHERE title LIKE 'item 4_'",
        ),
        untouched
    );
    out
}

/// The buckets a sync compared for `table`, and how many differed.
fn buckets(out: &[u8], table: &str) -> (i64, i64) {
    let row = summary_row(out, table);
    (
        row["sync"]["ranges"].as_i64().unwrap(),
        row["sync"]["ranges_differed"].as_i64().unwrap(),
    )
}

/// After a run that left the tables equal to the source's, a sync starts from the rows each
/// side wrote since (by their `xmin`) and compares only the keys' hashes for deletes.
#[test]
fn sync_makes_the_target_equal_writing_only_the_rows_that_differ() {
    let pair = Pair::start();
    let out = scattered_changes_synced(&pair, || {});
    for table in ["public.items", "public.pairs", "public.books"] {
        let note = summary_row(&out, table)["note"].clone();
        assert_eq!(note, "rows written since the last run", "{table}");
    }
    // Buckets of about 100 keys: the deleted rows' differ.
    let (ranges, differed) = buckets(&out, "public.items");
    assert!(
        ranges >= 32 && (1..=5).contains(&differed),
        "{ranges} {differed}"
    );

    // The sequence of a synced table and the registry follow.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT mode || ' ' || rows_total FROM snapcopy.managed_tables WHERE table_name = 'books'"
        ),
        "sync 1992"
    );

    // Nothing new: nothing compared differs, nothing is written.
    let out = sync(&pair);
    for table in [
        "public.items",
        "public.pairs",
        "public.authors",
        "public.books",
    ] {
        assert_eq!(changed(&out, table), (0, 0, 0), "{table}");
        assert_eq!(
            summary_row(&out, table)["sync"]["ranges_differed"],
            0,
            "{table}"
        );
    }

    // verify agrees.
    pair.snapcopy()
        .args(["verify"])
        .args(TABLES)
        .assert()
        .success();

    // verify --repair syncs what differs, says so, and then exits 0.
    pair.target.psql(
        "dev",
        "UPDATE public.pairs SET v = 'local' WHERE b = 2; DELETE FROM public.books WHERE id = 2000",
    );
    pair.snapcopy()
        .args(["verify"])
        .args(TABLES)
        .assert()
        .code(1);
    let out = pair
        .snapcopy()
        .args(["verify", "--repair", "--json"])
        .args(TABLES)
        .assert()
        .success();
    let verdicts: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let repaired: Vec<&str> = verdicts["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.get("repaired").is_some())
        .map(|v| v["table"].as_str().unwrap())
        .collect();
    assert_eq!(repaired, ["public.books", "public.pairs"], "{verdicts}");
    same(&pair, "public.pairs");
    same(&pair, "public.books");
    pair.snapcopy()
        .args(["verify"])
        .args(TABLES)
        .assert()
        .success();
    // The repair hashed every row and recorded no marks: the next sync of those tables hashes
    // every row too; the others keep theirs.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(table_name || ' ' || (target_mark IS NOT NULL), ', ' \
             ORDER BY table_name) FROM snapcopy.managed_tables \
             WHERE table_name IN ('books', 'items', 'pairs')"
        ),
        "books false, items true, pairs false"
    );
    let out = sync(&pair);
    assert_eq!(summary_row(&out, "public.books")["note"], "");
    assert_eq!(
        summary_row(&out, "public.items")["note"],
        "rows written since the last run"
    );
}

/// A large table (100,000 rows or more) synced since its last run has the source read its keys
/// written since on a second connection, in the run's snapshot, while the first sums up every
/// key: both queries are under way before the target reads its own rows (the dry run shows the
/// order), and the sync finds what each side wrote and deleted as a small table's does.
#[test]
fn a_large_table_has_the_source_read_its_written_keys_and_every_key_at_once() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.events (id bigint PRIMARY KEY, v text NOT NULL);
         INSERT INTO public.events SELECT g, 'event ' || g FROM generate_series(1, 120000) g;
         DELETE FROM public.events WHERE id = 1;
         ANALYZE public.events;",
    );
    pair.snapcopy().args(["public.events"]).assert().success();
    pair.source.psql(
        "app",
        "INSERT INTO public.events SELECT g, 'new ' || g FROM generate_series(200001, 200100) g;
         UPDATE public.events SET v = 'edited' WHERE id % 2000 = 7;
         DELETE FROM public.events WHERE id % 4000 = 11;",
    );
    pair.target.psql(
        "dev",
        "UPDATE public.events SET v = 'local' WHERE id IN (500, 600);
         DELETE FROM public.events WHERE id = 700;
         INSERT INTO public.events VALUES (300000, 'mine');",
    );
    let plan = pair
        .snapcopy()
        .args(["plan", "--mode", "sync", "public.events"])
        .assert()
        .success();
    let plan = String::from_utf8_lossy(&plan.get_output().stdout).to_string();
    let at = |text: &str| {
        plan.find(text)
            .unwrap_or_else(|| panic!("no {text} in the plan:\n{plan}"))
    };
    let second = at("dblink_connect('snapcopy_source_second', 'snapcopy_source')");
    let written = at("dblink_send_query('snapcopy_source_second'");
    let every_key = at("dblink_send_query('snapcopy_source', 'SELECT (h & ");
    let local = at("CREATE TEMPORARY TABLE pg_temp.snapcopy_sync_our_totals_0");
    // The rows of the written keys go in through the second connection before the target
    // reads the source's buckets (the table has no other unique index, foreign key or
    // trigger), and the second connection closes then.
    let rows = at("dblink('snapcopy_source_second', 'SELECT \"id\", \"v\" FROM ONLY");
    let closed = at("dblink_disconnect('snapcopy_source_second')");
    let buckets = at("dblink_get_result('snapcopy_source') AS t(b int4");
    assert!(
        second < written
            && written < every_key
            && every_key < local
            && local < rows
            && rows < closed
            && closed < buckets,
        "{plan}"
    );
    let out = sync_of(&pair, &["public.events"]);
    assert_eq!(
        summary_row(&out, "public.events")["note"],
        "rows written since the last run"
    );
    // 99 inserted (200011 deleted again) and the one deleted on the target; 60 updated on the
    // source and 2 on the target; 30 deleted on the source and the one inserted on the target.
    assert_eq!(changed(&out, "public.events"), (100, 62, 31));
    // A small table's sync has no second connection.
    pair.source.psql("app", SCHEMA);
    pair.snapcopy().args(["public.items"]).assert().success();
    pair.snapcopy()
        .args(["plan", "--mode", "sync", "public.items"])
        .assert()
        .success()
        .stdout(predicate::str::contains("snapcopy_source_second").not());
}

/// Names with `%` in them (the target puts one of the comparison's statements together with
/// `format` when it runs): a table, its key and a column, synced since the last run.
#[test]
fn names_with_percent_signs_sync() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        r#"CREATE TABLE public."odd%name" ("k%L" integer PRIMARY KEY, "v%s" text);
           INSERT INTO public."odd%name" SELECT g, 'v' || g FROM generate_series(1, 3000) g;
           ANALYZE;"#,
    );
    pair.snapcopy().args(["public.odd%name"]).assert().success();
    pair.source.psql(
        "app",
        r#"DELETE FROM public."odd%name" WHERE "k%L" % 100 = 0;
           UPDATE public."odd%name" SET "v%s" = 'edited' WHERE "k%L" < 5;
           INSERT INTO public."odd%name" VALUES (5000, 'new');"#,
    );
    pair.target.psql(
        "dev",
        r#"UPDATE public."odd%name" SET "v%s" = 'mine' WHERE "k%L" = 7"#,
    );
    let out = pair
        .snapcopy()
        .args(["--mode", "sync", "--json", "public.odd%name"])
        .assert()
        .success();
    let out = out.get_output().stdout.clone();
    let name = r#"public."odd%name""#;
    same(&pair, name);
    assert_eq!(
        summary_row(&out, name)["note"],
        "rows written since the last run"
    );
    // 5000 in; 1-4 edited on the source and 7 on the target, back; every 100th gone.
    assert_eq!(changed(&out, name), (1, 5, 30));
}

/// Where the marks do not hold (the target's from another cluster, as after a restore
/// elsewhere), sync hashes every row and finds the same. An incremental run leaves local edits
/// alone, so after it the next sync hashes every row too.
#[test]
fn without_the_marks_sync_hashes_every_row_and_finds_the_same() {
    let pair = Pair::start();
    let out = scattered_changes_synced(&pair, || {
        pair.target.psql(
            "dev",
            "UPDATE snapcopy.managed_tables \
             SET target_mark = '1/1/1' || substr(target_mark, strpos(target_mark, ':'))",
        );
    });
    for table in ["public.items", "public.pairs", "public.books"] {
        assert_eq!(summary_row(&out, table)["note"], "", "{table}");
    }
    // Buckets of about 8 rows.
    let (ranges, differed) = buckets(&out, "public.items");
    assert!(
        ranges >= 512 && differed >= 1 && differed < ranges / 4,
        "{ranges} {differed}"
    );

    // A local edit, then an incremental run (which keeps it), then a sync.
    pair.target.psql(
        "dev",
        "UPDATE public.items SET title = 'kept by incremental' WHERE title = 'item 12'",
    );
    pair.snapcopy()
        .args(["--mode", "incremental", "public.items"])
        .assert()
        .success();
    let out = sync(&pair);
    same(&pair, "public.items");
    assert_eq!(changed(&out, "public.items"), (0, 1, 0));
    assert_eq!(summary_row(&out, "public.items")["note"], "");
}

/// Deletes that share a bucket of the keys' hashes: two on the source in one bucket (two keys
/// more on the target, the one pair there whose hashes XOR to the sums' difference), and in
/// another a delete on the source and one on the target (their counts agree, so the source's
/// keys of that bucket are read whole). A third bucket has one delete on the source and a row
/// inserted on the target: two keys more on the target, both to go. A fourth has the same and a
/// delete on the target: one key more on the target, but no key there has the hash the sums
/// tell (its keys are looked up on the source).
#[test]
fn deletes_sharing_a_bucket_are_told_apart_from_the_targets_own() {
    let pair = Pair::start();
    pair.source.psql("app", SCHEMA);
    pair.snapcopy().args(["public.items"]).assert().success();
    // 5,000 rows: 64 buckets. The first keys of four buckets, by title.
    let pick = |b: i64, n: usize| titles_in_bucket(&pair, b, n);
    let quoted = |titles: &[String]| {
        titles
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let two = pick(1, 2);
    let mixed = pick(2, 2);
    let inserted = pick(3, 1);
    let unmatched = pick(4, 2);
    pair.source.psql(
        "app",
        &format!(
            "DELETE FROM public.items WHERE title IN ({}, '{}', '{}', '{}')",
            quoted(&two),
            mixed[0],
            inserted[0],
            unmatched[0]
        ),
    );
    // The target's own: a delete in the second bucket and in the fourth, a new row in the
    // third and in the fourth (its key found by trying: the first of 1..1000 whose hash falls
    // there).
    let mine = |b: i64| {
        format!(
            "INSERT INTO public.items (id, title) SELECT k, 'mine' FROM (SELECT md5('mine' || g)::uuid AS k \
             FROM generate_series(1, 1000) g) s WHERE (pg_catalog.uuid_hash_extended(k, 0) & 63) = {b} LIMIT 1"
        )
    };
    pair.target.psql(
        "dev",
        &format!(
            "DELETE FROM public.items WHERE title IN ('{}', '{}'); {}; {}",
            mixed[1],
            unmatched[1],
            mine(3),
            mine(4)
        ),
    );
    let out = sync_of(&pair, &["public.items"]);
    assert_eq!(
        summary_row(&out, "public.items")["note"],
        "rows written since the last run"
    );
    // The local deletes come back; the five rows deleted on the source and the local ones go.
    assert_eq!(changed(&out, "public.items"), (2, 0, 7));
    assert_eq!(buckets(&out, "public.items"), (64, 4));
}

/// A sync keeps the buckets of the keys it leaves, and the next one takes them for the target's
/// own while the target's keys are those (their count and hash agree), instead of summing up
/// every key again; a target whose keys changed since (a row deleted on it) sums up its own.
/// Seen by two buckets swapped in what was kept (the totals stay): taken, they differ.
#[test]
fn the_next_sync_takes_the_buckets_the_last_one_kept() {
    let pair = Pair::start();
    pair.source.psql("app", SCHEMA);
    pair.snapcopy().args(["public.items"]).assert().success();
    // Rows of buckets 10, 11 and 12 (the swapped ones are 0 and 1), by title.
    let delete = |server: &common::PgServer, db: &str, title: &str| {
        server.psql(
            db,
            &format!("DELETE FROM public.items WHERE title = '{title}'"),
        );
    };
    delete(&pair.source, "app", &titles_in_bucket(&pair, 10, 1)[0]);
    sync_of(&pair, &["public.items"]);
    let kept = "SELECT key_buckets, (SELECT sum(n) FROM unnest(key_counts) n) \
                FROM snapcopy.managed_tables WHERE table_name = 'items'";
    assert_eq!(pair.target.psql("dev", kept), "64|4999");
    let swap = "UPDATE snapcopy.managed_tables SET key_counts[1] = key_counts[2], \
                key_counts[2] = key_counts[1], key_xors[1] = key_xors[2], \
                key_xors[2] = key_xors[1] WHERE table_name = 'items'";
    pair.target.psql("dev", swap);
    delete(&pair.source, "app", &titles_in_bucket(&pair, 11, 1)[0]);
    let out = sync_of(&pair, &["public.items"]);
    assert_eq!(changed(&out, "public.items"), (0, 0, 1));
    assert_eq!(buckets(&out, "public.items"), (64, 3));
    assert_eq!(pair.target.psql("dev", kept), "64|4998");

    // A row deleted on the target: what was kept is not taken.
    pair.target.psql("dev", swap);
    delete(&pair.target, "dev", &titles_in_bucket(&pair, 12, 1)[0]);
    let out = sync_of(&pair, &["public.items"]);
    assert_eq!(changed(&out, "public.items"), (1, 0, 0));
    assert_eq!(buckets(&out, "public.items"), (64, 1));
}

/// A table the source never deleted from (an append-only log): the keys' count and hash are
/// compared first, and when they agree no bucket is (the summary says so). A row deleted on the
/// target, or a key changed on the source, makes them differ: the buckets are compared as ever.
#[test]
fn an_append_only_table_syncs_by_the_keys_totals() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.log (id bigint PRIMARY KEY, msg text);
         INSERT INTO public.log SELECT g, 'line ' || g FROM generate_series(1, 2000) g;",
    );
    pair.snapcopy().args(["public.log"]).assert().success();
    let sync_log = || sync_of(&pair, &["public.log"]);
    pair.source.psql(
        "app",
        "INSERT INTO public.log SELECT g, 'new ' || g FROM generate_series(2001, 2100) g;
         UPDATE public.log SET msg = 'edited' WHERE id <= 10;",
    );
    let out = sync_log();
    assert_eq!(changed(&out, "public.log"), (100, 10, 0));
    assert_eq!(buckets(&out, "public.log"), (0, 0));
    // The summary says so.
    pair.snapcopy()
        .args(["--mode", "sync", "public.log"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "the keys' count and hash agreed: 0 inserted, 0 updated, 0 deleted",
        ));

    // A row deleted on the target comes back.
    pair.target
        .psql("dev", "DELETE FROM public.log WHERE id = 1500");
    pair.source.psql(
        "app",
        "INSERT INTO public.log SELECT g, 'more' FROM generate_series(2101, 2105) g",
    );
    let out = sync_log();
    assert_eq!(changed(&out, "public.log"), (6, 0, 0));
    assert!(buckets(&out, "public.log").0 > 0);

    // A key changed on the source (no row deleted, as its statistics count them).
    pair.source
        .psql("app", "UPDATE public.log SET id = 100007 WHERE id = 7");
    let out = sync_log();
    assert_eq!(changed(&out, "public.log"), (1, 0, 1));
    assert!(buckets(&out, "public.log").0 > 0);
}

/// postgres_fdw cannot run the comparison on the source: the tables are reloaded in full, and
/// the summary says so.
#[test]
fn sync_through_postgres_fdw_reloads_and_says_why() {
    let pair = Pair::start().with_link(Link::PostgresFdw);
    pair.source.psql("app", SCHEMA);
    pair.snapcopy().args(TABLES).assert().success();
    pair.source.psql(
        "app",
        "UPDATE public.items SET title = 'x' WHERE title = 'item 1'",
    );
    let out = sync(&pair);
    let items = summary_row(&out, "public.items");
    assert_eq!(items["action"], "reload", "{items}");
    assert!(
        items["note"]
            .as_str()
            .unwrap()
            .contains("postgres_fdw cannot run sync's comparison on the source"),
        "{items}"
    );
    same(&pair, "public.items");
}

/// A sync interrupted while it writes rows, or that fails, leaves every table as it was; the
/// next one finishes the job.
#[test]
fn an_interrupted_or_failed_sync_leaves_the_previous_contents() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.big (id bigint PRIMARY KEY, code text NOT NULL, pad text);
         INSERT INTO public.big SELECT g, 'c' || g, repeat(md5(g::text), 4) FROM generate_series(1, 200000) g;
         ANALYZE",
    );
    pair.snapcopy()
        .args(["-q", "public.big"])
        .assert()
        .success();
    pair.source.psql(
        "app",
        "UPDATE public.big SET pad = 'changed' WHERE id % 2 = 0; DELETE FROM public.big WHERE id % 7 = 0",
    );
    let before = checksum(&pair.target, "dev", "public.big");

    // SIGINT while the changed rows go in (a large table of snapcopy's: during the comparison,
    // through the second connection).
    let child = pair.spawn(&["-q", "--mode", "sync", "public.big"]);
    pair.wait_for_target_statement("WITH batch AS (DELETE FROM pg_temp.snapcopy_sync");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert_eq!(checksum(&pair.target, "dev", "public.big"), before);

    // A unique index of the target's own that the source's rows break: the sync fails, names
    // the table and the index, says what to do, and changes nothing.
    pair.target.psql(
        "dev",
        "CREATE UNIQUE INDEX big_pad_local ON public.big (pad) WHERE id > 100",
    );
    pair.snapcopy()
        .args(["--mode", "sync", "public.big"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("public.big"))
        .stderr(predicates::str::contains("big_pad_local"))
        .stderr(predicates::str::contains(
            "reload the table with --mode full, or drop the target's own index",
        ));
    assert_eq!(checksum(&pair.target, "dev", "public.big"), before);

    pair.target.psql("dev", "DROP INDEX public.big_pad_local");
    pair.snapcopy()
        .args(["-q", "--mode", "sync", "public.big"])
        .assert()
        .success();
    same(&pair, "public.big");
}

const KEY: &str = "a-key-for-tests-0123456789";

/// Sync compares with the source's rows as the run shapes them (masked, a subset), syncs a
/// partitioned table through its parent, and loads the user's own table (`--data-only`)
/// when it has a key, refusing one without.
#[test]
fn sync_of_masked_subsets_partitions_and_the_users_own_tables() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.customers (id integer PRIMARY KEY, email text NOT NULL, country text NOT NULL);
         INSERT INTO public.customers SELECT g, 'c' || g || '@example.com', CASE WHEN g % 2 = 0 THEN 'FR' ELSE 'DE' END
         FROM generate_series(1, 100) g;
         CREATE TABLE public.orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES public.customers, amount integer);
         INSERT INTO public.orders SELECT g, 1 + g % 100, g FROM generate_series(1, 500) g;
         CREATE TABLE public.measurements (id integer, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE public.measurements_2024 PARTITION OF public.measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE public.measurements_2025 PARTITION OF public.measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO public.measurements SELECT g, date '2024-06-01' + g * 3, 'v' FROM generate_series(1, 100) g;
         CREATE TABLE public.accounts (id integer PRIMARY KEY, name text NOT NULL);
         INSERT INTO public.accounts SELECT g, 'a' || g FROM generate_series(1, 50) g;
         CREATE TABLE public.notes (body text);
         INSERT INTO public.notes VALUES ('one'), ('two');
         ANALYZE",
    );
    // The user's own tables, as a migration made them.
    pair.target.psql(
        "dev",
        "CREATE TABLE public.accounts (id integer PRIMARY KEY, name text NOT NULL);
         CREATE TABLE public.notes (body text);",
    );
    let shaped = [
        "--mask",
        "customers.email=email",
        "--where",
        "customers=country = 'FR'",
    ];
    let managed = ["public.customers", "public.orders", "public.measurements"];
    let run = |mode: &str| {
        let out = pair
            .snapcopy()
            .env("SNAPCOPY_MASK_KEY", KEY)
            .args(["--mode", mode, "--json"])
            .args(shaped)
            .args(managed)
            .assert()
            .success();
        out.get_output().stdout.clone()
    };
    run("full");
    pair.snapcopy()
        .args(["-q", "--data-only", "public.accounts", "public.notes"])
        .assert()
        .success();

    pair.source.psql(
        "app",
        "UPDATE public.customers SET email = 'changed@example.com' WHERE id = 6;
         UPDATE public.customers SET country = 'DE' WHERE id = 2;
         INSERT INTO public.orders VALUES (501, 4, 1), (502, 4, 2), (503, 4, 3);
         UPDATE public.measurements SET v = 'w' WHERE id = 10;
         DELETE FROM public.measurements WHERE id = 20;
         INSERT INTO public.measurements VALUES (101, '2025-03-01', 'v');
         UPDATE public.accounts SET name = 'renamed' WHERE id = 7",
    );
    // A local edit in a partition.
    pair.target.psql(
        "dev",
        "UPDATE public.measurements SET v = 'local' WHERE id = 30",
    );
    let out = run("sync");
    // Customer 2 left the subset with its five orders; customer 6's masked email changed.
    assert_eq!(changed(&out, "public.customers"), (0, 1, 1));
    assert_eq!(changed(&out, "public.orders"), (3, 0, 5));
    // The partitioned table, its own rows (no mask, no subset): from what each side wrote since
    // the full copy, through its parent.
    assert_eq!(changed(&out, "public.measurements"), (1, 2, 1));
    assert_eq!(
        summary_row(&out, "public.measurements")["note"],
        "rows written since the last run"
    );
    assert_eq!(
        summary_row(&out, "public.customers")["note"],
        "a subset (--where)"
    );
    same(&pair, "public.measurements");
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM public.customers WHERE email IN ('c4@example.com', \
             'changed@example.com') OR country <> 'FR'"
        ),
        "0",
        "the emails stay masked, the subset stays French"
    );
    pair.snapcopy()
        .env("SNAPCOPY_MASK_KEY", KEY)
        .args(["verify"])
        .args(shaped)
        .args(managed)
        .assert()
        .success();
    // The masks give the same values each run: nothing differs the second time.
    let out = run("sync");
    for table in managed {
        assert_eq!(changed(&out, table), (0, 0, 0), "{table}");
    }

    // The user's table with a key is synced; the one without is refused, saying what to do.
    pair.snapcopy()
        .args(["-q", "--data-only", "--mode", "sync", "public.accounts"])
        .assert()
        .success();
    same(&pair, "public.accounts");
    pair.snapcopy()
        .args(["--data-only", "--mode", "sync", "public.notes"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "public.notes cannot be synced row by row: no primary key nor unique key on NOT \
             NULL columns to match rows by; use --mode full or --mode incremental for it",
        ));
}

/// A local edit by a transaction that was running when a sync took the target's mark, written
/// after it committed from a subtransaction whose id was given before (a snapshot lists no
/// subtransaction): the next sync reverts it.
#[test]
fn a_local_edit_from_a_subtransaction_running_during_a_sync_is_reverted_by_the_next() {
    use std::io::Write;
    let pair = Pair::start();
    pair.source.psql("app", SCHEMA);
    pair.target
        .psql("dev", "CREATE TABLE public.other (x integer)");
    pair.snapcopy().args(TABLES).assert().success();
    let mut session = pair
        .target
        .psql_command("dev")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = session.stdin.take().unwrap();
    // The transaction and its subtransaction get their ids before the sync.
    writeln!(
        input,
        "BEGIN; SAVEPOINT s; INSERT INTO public.other VALUES (1);"
    )
    .unwrap();
    input.flush().unwrap();
    let idle = "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' \
                AND backend_xid IS NOT NULL";
    for _ in 0..200 {
        if pair.target.psql("dev", idle) == "1" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(pair.target.psql("dev", idle), "1");
    sync(&pair);
    writeln!(
        input,
        "UPDATE public.items SET title = 'late' WHERE title = 'item 42'; COMMIT;"
    )
    .unwrap();
    drop(input);
    assert!(session.wait().unwrap().success());

    let out = sync(&pair);
    assert_eq!(
        summary_row(&out, "public.items")["note"],
        "rows written since the last run"
    );
    assert_eq!(changed(&out, "public.items"), (0, 1, 0));
    same(&pair, "public.items");
}
