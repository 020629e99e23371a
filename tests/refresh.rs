//! Refreshes after the first copy: full reloads, incremental inserts with pushdown, schema
//! drift, and `snapcopy status`.

mod common;

use common::{checksum, definition, summary_row, Link, Pair};
use predicates::prelude::*;

/// A parent/child pair and a keyless table, 1,000 orders.
const SHOP: &str = "
    CREATE TABLE public.customers (id serial PRIMARY KEY, name text NOT NULL);
    CREATE TABLE public.orders (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        customer_id integer NOT NULL REFERENCES public.customers (id),
        amount numeric(10,2) NOT NULL,
        note text
    );
    CREATE TABLE public.events (at timestamptz NOT NULL, what text);
    INSERT INTO public.customers (name) SELECT 'c' || g FROM generate_series(1, 100) g;
    INSERT INTO public.orders (customer_id, amount) SELECT 1 + g % 100, g FROM generate_series(1, 1000) g;
    INSERT INTO public.events SELECT now(), 'boot';
    ANALYZE;
";

fn start(link: Link) -> Pair {
    let pair = Pair::start().with_link(link);
    pair.source.psql("app", SHOP);
    pair
}

/// `snapcopy --mode incremental --json TABLE...`, which must succeed.
fn incremental(pair: &Pair, tables: &[&str]) -> std::process::Output {
    let assert = pair
        .snapcopy()
        .args(["--mode", "incremental", "--json"])
        .args(tables)
        .assert()
        .success();
    assert.get_output().clone()
}

fn same(pair: &Pair, table: &str) {
    assert_eq!(
        checksum(&pair.target, "dev", table),
        checksum(&pair.source, "app", table),
        "rows of {table}"
    );
}

/// Rows the source has handed out of a table so far (sequential and index reads), once the
/// statistics of every finished backend are in.
fn tuples_read(pair: &Pair, table: &str) -> i64 {
    let sql = format!(
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables \
         WHERE relid = '{table}'::regclass"
    );
    // A backend reports its counts when it exits; give the dblink session's backend a moment.
    let mut last = pair.source.psql("app", &sql);
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = pair.source.psql("app", &sql);
        if now == last {
            break;
        }
        last = now;
    }
    last.parse().unwrap()
}

/// `snapcopy` with batches and splits small enough for the tests' tables: they load in
/// batches, and large ones load (and reload) in parts.
fn in_parts(pair: &Pair) -> assert_cmd::Command {
    let mut cmd = pair.snapcopy();
    cmd.env("SNAPCOPY_BATCH_MB", "1")
        .env("SNAPCOPY_SPLIT_MB", "1");
    cmd
}

/// `owners` (100 rows), `docs` (30,000 uuid-keyed rows referencing them: about 4 MB, so it
/// loads in parts) and `notes` (`notes` rows referencing docs, about 100 bytes each).
fn docs_and_notes(notes: u32) -> String {
    format!(
        "CREATE TABLE public.owners (id integer PRIMARY KEY);
         INSERT INTO public.owners SELECT generate_series(0, 99);
         CREATE TABLE public.docs (id uuid PRIMARY KEY, n bigserial,
                                   owner integer NOT NULL REFERENCES public.owners,
                                   title text UNIQUE, body text,
                                   shout text GENERATED ALWAYS AS (upper(title)) STORED);
         COMMENT ON TABLE public.docs IS 'the documents';
         COMMENT ON COLUMN public.docs.title IS 'shown in lists';
         CREATE INDEX docs_owner_idx ON public.docs (owner);
         CREATE TABLE public.notes (id integer PRIMARY KEY, doc_id uuid NOT NULL REFERENCES public.docs, body text);
         INSERT INTO public.docs (id, owner, title, body) SELECT md5(g::text)::uuid, g % 100, 'title ' || g,
                repeat(md5(g::text), 3) FROM generate_series(1, 30000) g;
         INSERT INTO public.notes SELECT g, md5((1 + g % 30000)::text)::uuid, repeat('note ', 20)
         FROM generate_series(1, {notes}) g;
         ANALYZE"
    )
}

fn a_full_refresh_makes_the_target_equal_to_the_source(link: Link) {
    let pair = start(link);
    pair.snapcopy()
        .args(["customers", "orders"])
        .assert()
        .success();
    pair.source.psql(
        "app",
        "INSERT INTO public.customers (name) VALUES ('new'); \
         INSERT INTO public.orders (customer_id, amount) SELECT 101, 5 FROM generate_series(1, 10); \
         UPDATE public.orders SET note = 'changed' WHERE id % 7 = 0; \
         DELETE FROM public.orders WHERE id % 11 = 0",
    );
    pair.target.psql(
        "dev",
        "UPDATE public.orders SET note = 'local edit' WHERE id = 1",
    );
    // No table named: every managed table is refreshed.
    pair.snapcopy()
        .args(["--mode", "full"])
        .assert()
        .success()
        .stdout(predicate::str::contains("reloaded"));
    same(&pair, "public.customers");
    same(&pair, "public.orders");
    assert_eq!(
        definition(&pair.target, "dev", "public.orders"),
        definition(&pair.source, "app", "public.orders")
    );
}

fn incremental_adds_exactly_the_new_rows_keeps_local_edits_and_reads_only_new_rows(link: Link) {
    let pair = start(link);
    pair.snapcopy()
        .args(["customers", "orders"])
        .assert()
        .success();
    pair.target.psql(
        "dev",
        "UPDATE public.orders SET note = 'local edit' WHERE id = 5; \
         DELETE FROM public.orders WHERE id = 6",
    );
    pair.source.psql(
        "app",
        "INSERT INTO public.customers (name) SELECT 'late' || g FROM generate_series(1, 5) g; \
         INSERT INTO public.orders (customer_id, amount) SELECT 100 + g % 5, g FROM generate_series(1, 10) g",
    );
    let before = tuples_read(&pair, "public.orders");
    let orders = summary_row(&incremental(&pair, &[]).stdout, "public.orders");
    assert_eq!(orders["rows"], 10, "{orders}");
    assert_eq!(orders["skipped"], 0);
    assert_eq!(orders["action"], "insert");
    assert_eq!(orders["note"], "id > last copy's max");
    // Only the new rows left the source (an index scan on id > 1000), not the 1,000 old ones.
    let read = tuples_read(&pair, "public.orders") - before;
    assert!(read <= 20, "the source handed out {read} rows of orders");

    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) || ' ' || count(*) FILTER (WHERE id = 6) || ' ' || \
             (SELECT note FROM public.orders WHERE id = 5) FROM public.orders"
        ),
        "1009 0 local edit",
        "new rows in, the local edit and the local delete kept"
    );
    assert_eq!(
        pair.target
            .psql("dev", "SELECT count(*) FROM public.customers"),
        "105"
    );
    // Sequences only move forward, past every key.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT nextval(pg_get_serial_sequence('public.orders', 'id')) > max(id) FROM public.orders"
        ),
        "t"
    );

    let status = pair
        .snapcopy()
        .args(["status", "--json"])
        .assert()
        .success();
    let status: serde_json::Value = serde_json::from_slice(&status.get_output().stdout).unwrap();
    let row = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.orders")
        .unwrap()
        .clone();
    assert_eq!(row["mode"], "incremental");
    assert_eq!(row["rows_loaded"], 10);
    // Rows snapcopy put there: 1,000 copied, 10 inserted (the local delete is not its count).
    assert_eq!(row["rows_total"], 1010);
    assert_eq!(row["pushed_down"], true);
    assert_eq!(row["staging"], "view");
    assert!(row["source_snapshot_at"].is_string());
    // The table fits the width it is given (COLUMNS, as on a terminal), counts read with
    // separators, and the source column names the server, not the table again.
    let status = pair
        .snapcopy()
        .arg("status")
        .env("COLUMNS", "120")
        .assert()
        .success();
    let text = String::from_utf8_lossy(&status.get_output().stdout).to_string();
    assert!(text.contains("public.orders"), "{text}");
    assert!(text.contains("incremental"), "{text}");
    assert!(text.contains("1,010"), "{text}");
    assert!(!text.contains("/app public.orders"), "{text}");
    assert!(
        text.lines().all(|l| l.chars().count() <= 120),
        "wider than 120 columns:\n{text}"
    );
    pair.target.psql("dev", "DROP SCHEMA snapcopy CASCADE");
    pair.snapcopy()
        .args(["status", "-q"])
        .assert()
        .success()
        .stdout("");
}

fn a_local_row_that_collides_with_a_new_source_row_is_kept_and_reported(link: Link) {
    let pair = start(link);
    pair.snapcopy().arg("customers").assert().success();
    // The developer inserts locally; the sequence hands out 101. The source later does too.
    pair.target
        .psql("dev", "INSERT INTO public.customers (name) VALUES ('mine')");
    pair.source.psql(
        "app",
        "INSERT INTO public.customers (name) VALUES ('theirs'), ('theirs too')",
    );
    pair.snapcopy()
        .args(["--mode", "incremental", "customers"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "public.customers: 1 source rows were not inserted because a row with the same key exists",
        ));
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT name FROM public.customers WHERE id IN (101, 102) ORDER BY id"
        ),
        "mine\ntheirs too"
    );
}

fn incremental_without_a_key_or_after_drift_says_to_use_full(link: Link) {
    let pair = start(link);
    pair.snapcopy()
        .args(["customers", "orders", "events"])
        .assert()
        .success();
    pair.source
        .psql("app", "ALTER TABLE public.customers ADD COLUMN email text");
    let before = checksum(&pair.target, "dev", "public.customers");
    pair.snapcopy()
        .args(["--mode", "incremental"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains(
                "public.events has no primary key and no unique key on NOT NULL columns",
            )
            .and(predicate::str::contains("use --mode full"))
            .and(predicate::str::contains(
                "public.customers changed on the source since the last copy (column email added (text))",
            ))
            .and(predicate::str::contains("run snapcopy --mode full public.customers")),
        );
    assert_eq!(checksum(&pair.target, "dev", "public.customers"), before);

    // Full mode rebuilds the changed table, says what changed, and keeps the child's key.
    pair.snapcopy()
        .args(["--mode", "full", "customers", "orders"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("rebuilt").and(predicate::str::contains(
                "source changed: column email added",
            )),
        );
    for table in ["public.customers", "public.orders"] {
        assert_eq!(
            definition(&pair.target, "dev", table),
            definition(&pair.source, "app", table)
        );
        same(&pair, table);
    }
}

fn a_configured_cursor_column_pushes_down_for_a_table_without_a_growing_key(link: Link) {
    let pair = start(link);
    // The target prints dates day first: the high-water mark must reach the source as the
    // same moment (12 May, not 5 December, which would skip the rows in between).
    pair.target
        .psql("postgres", "ALTER DATABASE dev SET DateStyle = 'SQL, DMY'");
    pair.source.psql(
        "app",
        "CREATE TABLE public.visits (id uuid PRIMARY KEY, at timestamptz NOT NULL); \
         INSERT INTO public.visits SELECT md5(g::text)::uuid, timestamptz '2024-05-12' + g * interval '1 minute' \
         FROM generate_series(1, 500) g",
    );
    std::fs::write(
        pair.home.path().join("snapcopy.toml"),
        "[table.\"public.visits\"]\nkey = \"at\"\n",
    )
    .unwrap();
    pair.snapcopy().arg("visits").assert().success();
    pair.source.psql(
        "app",
        "INSERT INTO public.visits SELECT md5((g + 1000)::text)::uuid, timestamptz '2024-07-01' + g * interval '1 minute' \
         FROM generate_series(1, 7) g",
    );
    pair.snapcopy()
        .args(["--mode", "incremental", "visits"])
        .assert()
        .success()
        .stdout(predicate::str::contains("at >= last copy's max"));
    same(&pair, "public.visits");
}

fn a_matview_refresh_reads_the_source_once(link: Link) {
    let pair = start(link);
    pair.snapcopy()
        .args(["--staging", "matview", "customers", "orders"])
        .assert()
        .success();
    pair.source.psql(
        "app",
        "INSERT INTO public.orders (customer_id, amount) VALUES (1, 1)",
    );
    let before = tuples_read(&pair, "public.orders");
    pair.snapcopy()
        .args(["--staging", "matview", "--mode", "full"])
        .assert()
        .success();
    let read = tuples_read(&pair, "public.orders") - before;
    assert_eq!(read, 1001, "one pass over the source's 1,001 rows");
    same(&pair, "public.orders");
    same(&pair, "public.customers");
    // The target's matview is the source's rows too.
    assert_eq!(
        checksum(&pair.target, "dev", "snapcopy.\"public.orders\""),
        checksum(&pair.source, "app", "public.orders")
    );
}

fn enum_labels_added_on_the_source_reach_the_target_in_order(link: Link) {
    let pair = start(link);
    pair.source.psql(
        "app",
        "CREATE TYPE public.state AS ENUM ('new', 'paid'); \
         CREATE TABLE public.bills (id serial PRIMARY KEY, state public.state NOT NULL); \
         INSERT INTO public.bills (state) VALUES ('new'), ('paid')",
    );
    pair.snapcopy().arg("bills").assert().success();
    pair.source.psql(
        "app",
        "ALTER TYPE public.state ADD VALUE 'draft' BEFORE 'new'; \
         ALTER TYPE public.state ADD VALUE 'refunded' AFTER 'paid'",
    );
    pair.source.psql(
        "app",
        "INSERT INTO public.bills (state) VALUES ('draft'), ('refunded')",
    );
    pair.snapcopy()
        .args(["--mode", "incremental", "bills"])
        .assert()
        .success();
    let range = "SELECT enum_range(NULL::public.state)::text";
    assert_eq!(pair.target.psql("dev", range), "{draft,new,paid,refunded}");
    same(&pair, "public.bills");
}

/// Keys that do not grow (a uuid, a composite of text and integer with text that needs
/// quoting in an array, a key whose type has no hash we know): incremental mode inserts exactly
/// the new rows, keeps the target's own rows, and does nothing when nothing is new. Through
/// dblink only the rows written on the source since the last run travel (a row deleted on the
/// target stays deleted, as with a growing key); when the source is not the cluster the last
/// run read (restored elsewhere), the keys' hashes are compared on both servers and every
/// missing key comes back. postgres_fdw (and, without a mark, the key without a known hash)
/// compares every row's key on the target.
fn incremental_finds_missing_rows_of_keys_that_do_not_grow(link: Link) {
    let pair = start(link);
    pair.source.psql(
        "app",
        r#"CREATE TABLE public.tokens (id uuid PRIMARY KEY, label text NOT NULL);
         INSERT INTO public.tokens SELECT md5(g::text)::uuid, 'token ' || g FROM generate_series(1, 3000) g;
         CREATE TABLE public.pairs (a text, b integer, v text, PRIMARY KEY (a, b));
         INSERT INTO public.pairs SELECT w, g, 'v' FROM generate_series(1, 40) g,
             unnest(ARRAY['plain', 'x"y', 'a,b', '{c}', 'back\slash', ' sp ', 'NULL', '']) w;
         CREATE TABLE public.prices (amount money PRIMARY KEY, what text);
         INSERT INTO public.prices SELECT g::money, 'p' FROM generate_series(1, 50) g;
         CREATE TABLE public.readings (at timestamptz PRIMARY KEY, v integer);
         INSERT INTO public.readings SELECT timestamptz '2024-01-01 00:00:00+00' + g * interval '1 day', g
         FROM generate_series(0, 40) g;
         ANALYZE"#,
    );
    let tables = ["tokens", "pairs", "prices", "readings"];
    pair.snapcopy().args(tables).assert().success();
    // The target prints dates day first: keys sent to the source must still read back the same.
    pair.target
        .psql("postgres", "ALTER DATABASE dev SET DateStyle = 'SQL, DMY'");
    pair.target.psql(
        "dev",
        "INSERT INTO public.tokens VALUES ('00000000-0000-0000-0000-000000000001', 'local');          DELETE FROM public.tokens WHERE label = 'token 7'",
    );
    pair.source.psql(
        "app",
        r#"INSERT INTO public.tokens SELECT md5((g * 7919)::text)::uuid, 'new ' || g FROM generate_series(1, 30) g;
         INSERT INTO public.pairs VALUES ('x"y', 41, 'new'), ('{c}', 41, 'new'), ('back\slash', 0, 'new'), ('', -1, 'new');
         INSERT INTO public.prices VALUES (51, 'new');
         INSERT INTO public.readings VALUES ('2025-03-04 05:06:07.25+00', 1), ('2025-12-11 00:00:00+00', 2)"#,
    );
    let out = incremental(&pair, &tables).stdout;
    let (found, unknown_hash) = match link {
        Link::Dblink => (
            "rows written since the last run",
            "rows written since the last run",
        ),
        Link::PostgresFdw => ("all keys compared", "all keys compared"),
    };
    let tokens = summary_row(&out, "public.tokens");
    // 30 new rows; through postgres_fdw also the one deleted on the target (its key is
    // missing there), which through dblink the source did not write since the last run.
    let back = i64::from(link == Link::PostgresFdw);
    assert_eq!(tokens["rows"], 30 + back, "{tokens}");
    assert_eq!(tokens["note"], found);
    let pairs = summary_row(&out, "public.pairs");
    assert_eq!(pairs["rows"], 4, "{pairs}");
    assert_eq!(pairs["note"], found);
    let prices = summary_row(&out, "public.prices");
    assert_eq!(prices["rows"], 1, "{prices}");
    assert_eq!(prices["note"], unknown_hash);
    let readings = summary_row(&out, "public.readings");
    assert_eq!(readings["rows"], 2, "{readings}");
    assert_eq!(readings["note"], found);
    same(&pair, "public.readings");
    same(&pair, "public.pairs");
    same(&pair, "public.prices");
    let deleted = "SELECT count(*) FROM public.tokens WHERE label = 'token 7'";
    assert_eq!(pair.target.psql("dev", deleted), back.to_string());

    // A row the source updates is read again and left as the target has it, without a
    // warning about collisions.
    pair.source.psql(
        "app",
        "UPDATE public.tokens SET label = 'token 8 renamed' WHERE label = 'token 8'",
    );
    let output = incremental(&pair, &["tokens"]);
    let tokens = summary_row(&output.stdout, "public.tokens");
    assert_eq!(tokens["rows"], 0, "{tokens}");
    if link == Link::Dblink {
        assert_eq!(tokens["skipped"], 1, "{tokens}");
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("not inserted"), "{stderr}");
    pair.source.psql(
        "app",
        "UPDATE public.tokens SET label = 'token 8' WHERE label = 'token 8 renamed'",
    );

    // The source restored into another cluster: its transaction ids say nothing about the last
    // run, so the keys are compared again, and the key deleted on the target comes back.
    pair.target.psql(
        "dev",
        "UPDATE snapcopy.managed_tables SET source_mark = '1/1:' || split_part(source_mark, ':', 2)",
    );
    let out = incremental(&pair, &tables).stdout;
    let tokens = summary_row(&out, "public.tokens");
    assert_eq!(tokens["rows"], 1 - back, "{tokens}");
    if link == Link::Dblink {
        assert_eq!(tokens["note"], "key hashes compared");
        let prices = summary_row(&out, "public.prices");
        assert_eq!(prices["note"], "all keys compared");
    }
    // The target's own row stays; every source row is there.
    pair.target
        .psql("dev", "DELETE FROM public.tokens WHERE label = 'local'");
    same(&pair, "public.tokens");
    pair.target.psql(
        "dev",
        "INSERT INTO public.tokens VALUES ('00000000-0000-0000-0000-000000000001', 'local')",
    );

    // Nothing new: nothing inserted.
    let out = incremental(&pair, &tables).stdout;
    for table in [
        "public.tokens",
        "public.pairs",
        "public.prices",
        "public.readings",
    ] {
        assert_eq!(summary_row(&out, table)["rows"], 0, "{table}");
    }
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM public.tokens WHERE label = 'local'"
        ),
        "1"
    );
}

/// An incremental run asks while it plans whether the source wrote any row of a table since
/// its last run (its tail first, then the rest): a table it wrote nothing of is not read again,
/// and rows written anywhere in it, appended or in the middle, all arrive.
#[test]
fn a_table_the_source_wrote_nothing_of_since_its_last_run_is_not_read_again() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.papers (id uuid PRIMARY KEY, n integer NOT NULL, body text);
         INSERT INTO public.papers SELECT md5(g::text)::uuid, g, repeat(md5(g::text), 4)
         FROM generate_series(1, 20000) g;
         ANALYZE public.papers",
    );
    pair.snapcopy().arg("papers").assert().success();
    let run = |pair: &Pair| {
        let output = pair
            .snapcopy()
            .args(["--mode", "incremental", "--json", "-v", "papers"])
            .assert()
            .success()
            .get_output()
            .clone();
        let row = summary_row(&output.stdout, "public.papers");
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        (row["rows"].as_i64().unwrap(), stderr)
    };
    let not_read = "not run: the source wrote no row of the table since its last run";
    let (rows, stderr) = run(&pair);
    assert_eq!(rows, 0);
    assert!(stderr.contains(not_read), "{stderr}");
    same(&pair, "public.papers");

    // Appended rows, in the table's tail.
    pair.source.psql(
        "app",
        "INSERT INTO public.papers SELECT md5(g::text)::uuid, g, 'appended' FROM generate_series(20001, 20010) g",
    );
    let (rows, stderr) = run(&pair);
    assert_eq!(rows, 10);
    assert!(!stderr.contains(not_read), "{stderr}");
    same(&pair, "public.papers");

    // Rows in the middle of the table, where deleted rows left room: the tail has none.
    pair.source.psql(
        "app",
        "DELETE FROM public.papers WHERE n BETWEEN 5000 AND 7000",
    );
    pair.source.psql("app", "VACUUM public.papers");
    pair.source.psql(
        "app",
        "INSERT INTO public.papers SELECT md5(g::text)::uuid, g, 'in the middle' FROM generate_series(30001, 30100) g",
    );
    let tail = "SELECT count(*) FROM public.papers WHERE body = 'in the middle'                 AND (ctid::text::point)[0] >= (SELECT relpages - relpages / 32 FROM pg_class WHERE oid = 'public.papers'::regclass)";
    assert_eq!(
        pair.source.psql("app", tail),
        "0",
        "the new rows are in the middle"
    );
    let (rows, stderr) = run(&pair);
    assert_eq!(rows, 100);
    assert!(!stderr.contains(not_read), "{stderr}");
    let middle = "SELECT count(*) FROM public.papers WHERE body = 'in the middle'";
    assert_eq!(pair.target.psql("dev", middle), "100");

    // Nothing new again.
    let (rows, stderr) = run(&pair);
    assert_eq!(rows, 0);
    assert!(stderr.contains(not_read), "{stderr}");
}

/// Rows written since the last run are asked of the same relations only: a table filled long
/// ago and renamed into the place of the one the last run read has rows older than the mark
/// that the target lacks; the keys are compared then, and every one arrives. (A partition
/// attached with its old rows changes the table's shape: incremental mode refuses it, a full
/// refresh brings it, and the mark then names the new partition too.)
#[test]
fn rows_older_than_the_mark_come_when_another_table_takes_the_place() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.codes (id uuid PRIMARY KEY, label text NOT NULL);
         INSERT INTO public.codes SELECT md5(g::text)::uuid, 'code ' || g FROM generate_series(1, 100) g;
         CREATE TABLE public.codes_next (LIKE public.codes INCLUDING ALL);
         INSERT INTO public.codes_next SELECT md5(g::text)::uuid, 'code ' || g FROM generate_series(1, 150) g;
         CREATE TABLE public.marks (id uuid, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE public.marks_2024 PARTITION OF public.marks FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         INSERT INTO public.marks SELECT md5(g::text)::uuid, '2024-03-01' FROM generate_series(1, 20) g;
         CREATE TABLE public.marks_2025 (LIKE public.marks);
         INSERT INTO public.marks_2025 SELECT md5(g::text)::uuid, '2025-03-01' FROM generate_series(1, 30) g",
    );
    pair.snapcopy().args(["codes", "marks"]).assert().success();
    pair.source.psql(
        "app",
        "DROP TABLE public.codes;
         ALTER TABLE public.codes_next RENAME TO codes;
         ALTER INDEX public.codes_next_pkey RENAME TO codes_pkey;
         ALTER TABLE public.marks ATTACH PARTITION public.marks_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    );
    let codes = summary_row(&incremental(&pair, &["codes"]).stdout, "public.codes");
    assert_eq!(codes["rows"], 50, "{codes}");
    assert_eq!(codes["note"], "key hashes compared");
    same(&pair, "public.codes");
    // The attached partition changes the table's shape: a full refresh brings it, and the next
    // incremental run asks for rows written since.
    pair.snapcopy()
        .args(["--mode", "incremental", "marks"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "run snapcopy --mode full public.marks",
        ));
    pair.snapcopy().args(["marks"]).assert().success();
    same(&pair, "public.marks");
    let out = incremental(&pair, &["codes", "marks"]).stdout;
    assert_eq!(
        summary_row(&out, "public.codes")["note"],
        "rows written since the last run"
    );
    assert_eq!(
        summary_row(&out, "public.marks")["note"],
        "rows written since the last run"
    );
}

per_link!(
    incremental_finds_missing_rows_of_keys_that_do_not_grow,
    a_full_refresh_makes_the_target_equal_to_the_source,
    incremental_adds_exactly_the_new_rows_keeps_local_edits_and_reads_only_new_rows,
    a_local_row_that_collides_with_a_new_source_row_is_kept_and_reported,
    incremental_without_a_key_or_after_drift_says_to_use_full,
    a_configured_cursor_column_pushes_down_for_a_table_without_a_growing_key,
    a_matview_refresh_reads_the_source_once,
    enum_labels_added_on_the_source_reach_the_target_in_order,
);

/// A large reload drops the table's keys and indexes and builds them after its rows, as a
/// first copy does; what the developer built on the table survives: a view, a grant, a local
/// index and its comment, and a view that needs the primary key (which then stays in place).
/// A reload that fails keeps the previous rows and every key.
#[test]
fn a_large_reload_builds_keys_after_its_rows_and_keeps_what_the_target_built() {
    let pair = Pair::start();
    pair.source.psql("app", &docs_and_notes(1000));
    let copy = |pair: &Pair| {
        let mut cmd = in_parts(pair);
        cmd.args(["public.docs", "public.notes", "public.owners"]);
        cmd
    };
    copy(&pair).assert().success();
    pair.target.psql(
        "dev",
        "CREATE ROLE reader; GRANT SELECT ON public.docs TO reader;
         CREATE VIEW public.doc_titles AS SELECT id, title FROM public.docs;
         CREATE INDEX docs_local_idx ON public.docs (lower(title));
         COMMENT ON INDEX public.docs_local_idx IS 'made here';",
    );
    let plan = |pair: &Pair| {
        let mut cmd = in_parts(pair);
        cmd.args(["plan", "public.docs", "public.notes", "public.owners"]);
        String::from_utf8(cmd.output().unwrap().stdout).unwrap()
    };
    let sql = plan(&pair);
    for dropped in [
        "ALTER TABLE \"public\".\"notes\" DROP CONSTRAINT \"notes_doc_id_fkey\"",
        "ALTER TABLE \"public\".\"docs\" DROP CONSTRAINT \"docs_owner_fkey\"",
        "ALTER TABLE \"public\".\"docs\" DROP CONSTRAINT \"docs_pkey\"",
        "ALTER TABLE \"public\".\"docs\" DROP CONSTRAINT \"docs_title_key\"",
        "DROP INDEX \"public\".\"docs_owner_idx\"",
    ] {
        assert!(sql.contains(dropped), "{dropped} not in\n{sql}");
    }
    assert!(!sql.contains("docs_local_idx"), "{sql}");
    // docs reloads in parts: the unit loads one range, another session the other, whose rows
    // the unit copies in.
    assert!(
        sql.contains("public.docs reloads in 2 ranges at once"),
        "{sql}"
    );
    pair.source.psql(
        "app",
        "UPDATE public.docs SET title = title || '!' WHERE owner = 7",
    );
    copy(&pair).assert().success();
    let after = |pair: &Pair| {
        for table in ["public.docs", "public.notes"] {
            assert_eq!(
                checksum(&pair.target, "dev", table),
                checksum(&pair.source, "app", table)
            );
        }
        assert_eq!(
            pair.target.psql(
                "dev",
                "SELECT (SELECT count(*) FROM public.doc_titles WHERE title LIKE '%!') || ' ' || \
                 has_table_privilege('reader', 'public.docs', 'SELECT') || ' ' || \
                 obj_description('public.docs_local_idx'::regclass, 'pg_class') || ' ' || \
                 (SELECT string_agg(conname || ':' || convalidated, ',' ORDER BY conname) \
                  FROM pg_constraint WHERE conrelid IN ('public.docs'::regclass, 'public.notes'::regclass)) || ' ' || \
                 (SELECT string_agg(indexrelid::regclass::text, ',' ORDER BY indexrelid::regclass::text) \
                  FROM pg_index WHERE indrelid = 'public.docs'::regclass)"
            ),
            "300 true made here docs_owner_fkey:true,docs_pkey:true,docs_title_key:true,notes_doc_id_fkey:true,notes_pkey:true \
             docs_local_idx,docs_owner_idx,docs_pkey,docs_title_key"
        );
    };
    after(&pair);
    // A view that groups by the key needs it: the key stays in place, the reload works.
    pair.target.psql(
        "dev",
        "CREATE VIEW public.doc_notes AS SELECT d.id, d.title, count(n.id) FROM public.docs d \
         LEFT JOIN public.notes n ON n.doc_id = d.id GROUP BY d.id",
    );
    let sql = plan(&pair);
    assert!(!sql.contains("DROP CONSTRAINT \"docs_pkey\""), "{sql}");
    assert!(sql.contains("DROP CONSTRAINT \"docs_title_key\""), "{sql}");
    copy(&pair).assert().success();
    after(&pair);
    // A reload that fails after the keys were dropped leaves the previous rows and keys.
    let before = checksum(&pair.target, "dev", "public.docs");
    pair.target.psql(
        "dev",
        "ALTER TABLE public.notes ADD CONSTRAINT local_rule CHECK (id < 1001)",
    );
    pair.source.psql(
        "app",
        "INSERT INTO public.notes SELECT 1001, id, 'late' FROM public.docs LIMIT 1",
    );
    copy(&pair).assert().code(1);
    assert_eq!(checksum(&pair.target, "dev", "public.docs"), before);
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'snapcopy'::regnamespace \
             AND relname LIKE 'load %'"
        ),
        "0",
        "the load table of the failed reload is gone"
    );
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.docs'::regclass"
        ),
        "3"
    );
}

/// A large reload of a table that nothing on the target depends on goes as a first copy does:
/// into a new table, split across sessions, with its indexes built at once, swapped in for the
/// old one in the unit's transaction (here two of them in one unit, one with a generated
/// column). The tables come out as the source's (rows, definitions, the foreign keys among
/// them, the sequence), and the registry follows them (the next run knows them as
/// snapcopy's). Something made on the table while its rows load (a grant, a view) fails the
/// unit before the old table goes: the table keeps its rows and what was made, and the next
/// run reloads it in place, saying why.
#[test]
fn a_large_reload_nothing_depends_on_goes_into_a_new_table_swapped_in() {
    let pair = Pair::start();
    pair.source.psql("app", &docs_and_notes(30000));
    let tables = ["public.docs", "public.notes", "public.owners"];
    let copy = |pair: &Pair| {
        let mut cmd = in_parts(pair);
        cmd.arg("--json").args(tables);
        cmd
    };
    let note = |out: &std::process::Output, table: &str| {
        let row = summary_row(&out.stdout, table);
        assert_eq!(row["action"], "reload", "{row}");
        row["note"].as_str().unwrap().to_string()
    };
    copy(&pair).assert().success();
    pair.source.psql(
        "app",
        "UPDATE public.docs SET title = title || '!' WHERE owner = 7;
         DELETE FROM public.notes WHERE id > 900;
         DELETE FROM public.docs WHERE owner = 8 AND id NOT IN (SELECT doc_id FROM public.notes);
         INSERT INTO public.docs (id, owner, title) SELECT md5('new' || g)::uuid, 1, 'new ' || g
         FROM generate_series(1, 500) g",
    );
    let out = copy(&pair).assert().success().get_output().clone();
    for table in ["public.docs", "public.notes"] {
        let note = note(&out, table);
        assert!(
            note.contains("into a new table swapped in for the old one"),
            "{note}"
        );
    }
    let same_as_source = |pair: &Pair| {
        for table in tables {
            same(pair, table);
            assert_eq!(
                definition(&pair.target, "dev", table),
                definition(&pair.source, "app", table),
                "{table}"
            );
        }
        let sequence = "SELECT last_value FROM public.docs_n_seq";
        assert_eq!(
            pair.target.psql("dev", sequence),
            pair.source.psql("app", sequence)
        );
    };
    same_as_source(&pair);
    // The registry knows the new table: an incremental run takes it as snapcopy's.
    pair.snapcopy()
        .args(["--mode", "incremental", "public.docs"])
        .assert()
        .success();

    // Something made on docs while its rows load (when an index of its new table is built).
    pair.target.psql(
        "dev",
        "CREATE ROLE reader;
         CREATE TABLE public.late_rule (sql text);
         CREATE FUNCTION public.late() RETURNS event_trigger LANGUAGE plpgsql AS $$
         DECLARE todo text;
         BEGIN
           IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands()
                      WHERE schema_name = 'snapcopy' AND object_identity LIKE '%load %') THEN
             -- Once, whichever index build comes first.
             DELETE FROM public.late_rule RETURNING sql INTO todo;
             IF todo IS NOT NULL THEN
               EXECUTE todo;
             END IF;
           END IF;
         END $$;
         CREATE EVENT TRIGGER late ON ddl_command_end WHEN TAG IN ('CREATE INDEX')
         EXECUTE FUNCTION public.late();",
    );
    pair.source.psql(
        "app",
        "UPDATE public.docs SET body = 'changed' WHERE owner = 9",
    );
    let before = checksum(&pair.target, "dev", "public.docs");
    for (made, kept, undone) in [
        (
            "GRANT SELECT ON public.docs TO reader",
            "SELECT has_table_privilege('reader', 'public.docs', 'SELECT')",
            "REVOKE ALL ON public.docs FROM reader",
        ),
        (
            "CREATE OR REPLACE VIEW public.late AS SELECT id, title FROM public.docs",
            "SELECT count(*) > 0 FROM public.late",
            "SELECT 1",
        ),
    ] {
        pair.target.psql(
            "dev",
            &format!("TRUNCATE public.late_rule; INSERT INTO public.late_rule VALUES ($${made}$$)"),
        );
        copy(&pair).assert().code(1).stderr(
            predicate::str::contains(
                "public.docs changed on the target while this run loaded its rows into a new table",
            )
            .and(predicate::str::contains("nothing changed; run again")),
        );
        assert_eq!(
            checksum(&pair.target, "dev", "public.docs"),
            before,
            "{made}"
        );
        assert_eq!(pair.target.psql("dev", kept), "t", "{made}");
        pair.target.psql("dev", undone);
    }
    pair.target.psql("dev", "DROP EVENT TRIGGER late");
    let out = copy(&pair).assert().success().get_output().clone();
    let in_place = note(&out, "public.docs");
    assert!(
        in_place.contains("in place, as rule _RETURN on view late depends on it"),
        "{in_place}"
    );
    same_as_source(&pair);
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM public.late WHERE title LIKE '%!'"
        ),
        "300"
    );
}

/// What ties a managed table to its identity keeps a large reload in place, each thing with
/// its reason in the plan (the reload then copies the other ranges' rows into the table it
/// truncated); undone, the table is swapped again. A foreign key to a table the run leaves
/// out, and a constraint of the target's own, would go with the old table, so they count too.
#[test]
fn what_the_target_built_on_a_table_keeps_its_reload_in_place() {
    let pair = Pair::start();
    pair.source.psql("app", &docs_and_notes(1000));
    let all = ["public.docs", "public.notes", "public.owners"];
    in_parts(&pair).args(all).assert().success();
    pair.target.psql("dev", "CREATE ROLE reader");
    let plan = |tables: &[&str]| {
        let out = in_parts(&pair).arg("plan").args(tables).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let swapped = "-- public.docs first, in 2 ranges at once";
    assert!(plan(&all).contains(swapped), "{}", plan(&all));
    for (made, why, undone) in [
        (
            "GRANT SELECT ON public.docs TO reader",
            "it has grants on the target",
            "REVOKE ALL ON public.docs FROM reader",
        ),
        (
            "GRANT SELECT (title) ON public.docs TO reader",
            "its column title has grants on the target",
            "REVOKE ALL (title) ON public.docs FROM reader",
        ),
        (
            "ALTER TABLE public.docs OWNER TO reader",
            "another role owns it",
            "ALTER TABLE public.docs OWNER TO postgres",
        ),
        (
            "ALTER TABLE public.docs ENABLE ROW LEVEL SECURITY",
            "row security is on for it",
            "ALTER TABLE public.docs DISABLE ROW LEVEL SECURITY",
        ),
        (
            "ALTER TABLE public.docs SET (fillfactor = 90)",
            "it has storage parameters set",
            "ALTER TABLE public.docs RESET (fillfactor)",
        ),
        (
            "ALTER TABLE public.docs REPLICA IDENTITY FULL",
            "it has a replica identity set",
            "ALTER TABLE public.docs REPLICA IDENTITY DEFAULT",
        ),
        (
            "ALTER TABLE public.docs ALTER title SET STATISTICS 500",
            "its column title has statistics or options set",
            "ALTER TABLE public.docs ALTER title SET STATISTICS -1",
        ),
        (
            "ALTER TABLE public.docs CLUSTER ON docs_owner_idx",
            "it is clustered on an index",
            "ALTER TABLE public.docs SET WITHOUT CLUSTER",
        ),
        (
            "CREATE VIEW public.v AS SELECT title FROM public.docs",
            "rule _RETURN on view v depends on it",
            "DROP VIEW public.v",
        ),
        (
            "CREATE POLICY mine ON public.docs USING (owner = 1)",
            "policy mine on table docs depends on it",
            "DROP POLICY mine ON public.docs",
        ),
        (
            "CREATE STATISTICS st ON owner, title FROM public.docs",
            "statistics object st depends on it",
            "DROP STATISTICS st",
        ),
        (
            "CREATE PUBLICATION pub FOR TABLE public.docs",
            "publication of table docs in publication pub depends on it",
            "DROP PUBLICATION pub",
        ),
        (
            "CREATE FUNCTION public.f(public.docs) RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "function f(docs) depends on it",
            "DROP FUNCTION public.f(public.docs)",
        ),
        (
            "CREATE TABLE public.holder (d public.docs)",
            "column d of table holder depends on it",
            "DROP TABLE public.holder",
        ),
        (
            "COMMENT ON TABLE public.docs IS 'mine'",
            "its comment is not the source's",
            "COMMENT ON TABLE public.docs IS 'the documents'",
        ),
        (
            "COMMENT ON COLUMN public.docs.body IS 'mine'",
            "its columns' comments are not the source's",
            "COMMENT ON COLUMN public.docs.body IS NULL",
        ),
        (
            "CREATE TRIGGER t BEFORE UPDATE ON public.docs FOR EACH ROW \
          EXECUTE FUNCTION suppress_redundant_updates_trigger()",
            "its triggers are not the source's",
            "DROP TRIGGER t ON public.docs",
        ),
        (
            "CREATE INDEX mine ON public.docs (body)",
            "it has an index the source does not (mine)",
            "DROP INDEX public.mine",
        ),
        (
            "ALTER TABLE public.docs ADD CONSTRAINT mine CHECK (owner >= 0)",
            "it has a constraint the source does not (mine)",
            "ALTER TABLE public.docs DROP CONSTRAINT mine",
        ),
    ] {
        pair.target.psql("dev", made);
        let sql = plan(&all);
        assert!(
            sql.contains(&format!("copies their rows (reloaded in place, as {why})")),
            "{made}:\n{sql}"
        );
        pair.target.psql("dev", undone);
        assert!(plan(&all).contains(swapped), "after {undone}");
    }
    let alone = plan(&["public.docs", "public.notes"]);
    assert!(
        alone.contains(
            "(reloaded in place, as its foreign key docs_owner_fkey references owners, which is \
             not in the run)"
        ),
        "{alone}"
    );
}

/// A reload in parts copies the other ranges' rows in only once their sessions have committed
/// them, and all of them: here the other range's session is slowed down on the target (a
/// trigger that an event trigger puts on snapcopy's load table), then made to lose a row
/// there. The slow range's rows all arrive; the lost row fails the run, which names the table
/// and keeps its previous rows.
#[test]
fn a_reload_in_parts_waits_for_its_other_ranges_and_takes_all_their_rows() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.docs (id uuid PRIMARY KEY, title text, body text);
         INSERT INTO public.docs SELECT md5(g::text)::uuid, 'title ' || g, repeat(md5(g::text), 3)
         FROM generate_series(1, 30000) g;
         ANALYZE",
    );
    let copy = |pair: &Pair| {
        let mut cmd = in_parts(pair);
        cmd.arg("public.docs");
        cmd
    };
    copy(&pair).assert().success();
    // A grant on the table keeps it in place (its unit copies the other range's rows in).
    pair.target.psql(
        "dev",
        "GRANT SELECT ON public.docs TO PUBLIC;
         CREATE TABLE public.load_rule (what text);
         INSERT INTO public.load_rule VALUES ('slow');
         CREATE FUNCTION public.on_load() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF (SELECT what FROM public.load_rule) = 'slow' THEN
             PERFORM pg_sleep(3);
           ELSE
             EXECUTE format('DELETE FROM %s WHERE ctid = (SELECT min(ctid) FROM %s)',
                            TG_RELID::regclass, TG_RELID::regclass);
           END IF;
           RETURN NULL;
         END $$;
         CREATE FUNCTION public.watch_loads() RETURNS event_trigger LANGUAGE plpgsql AS $$
         DECLARE t record;
         BEGIN
           FOR t IN SELECT object_identity FROM pg_event_trigger_ddl_commands()
                    WHERE schema_name = 'snapcopy' AND object_type = 'table' LOOP
             EXECUTE format('CREATE TRIGGER on_load AFTER INSERT ON %s
                             FOR EACH STATEMENT EXECUTE FUNCTION public.on_load()',
                            t.object_identity);
           END LOOP;
         END $$;
         CREATE EVENT TRIGGER watch_loads ON ddl_command_end WHEN TAG IN ('CREATE TABLE AS')
         EXECUTE FUNCTION public.watch_loads();",
    );
    let mut plan = in_parts(&pair);
    plan.args(["plan", "public.docs"]);
    let plan = String::from_utf8(plan.output().unwrap().stdout).unwrap();
    assert!(
        plan.contains("public.docs reloads in 2 ranges at once"),
        "{plan}"
    );
    pair.source.psql(
        "app",
        "UPDATE public.docs SET title = title || '!' WHERE id < '10000000-0000-0000-0000-000000000000'",
    );
    copy(&pair).assert().success();
    assert_eq!(
        checksum(&pair.target, "dev", "public.docs"),
        checksum(&pair.source, "app", "public.docs")
    );
    // The load table loses a row after the other range inserted it.
    let before = checksum(&pair.target, "dev", "public.docs");
    pair.target
        .psql("dev", "UPDATE public.load_rule SET what = 'lose a row'");
    pair.source
        .psql("app", "UPDATE public.docs SET title = title || '?'");
    copy(&pair).assert().code(1).stderr(
        predicate::str::contains("public.docs")
            .and(predicate::str::contains("rows, but"))
            .and(predicate::str::contains(
                "the reload was rolled back and the table keeps its previous rows",
            )),
    );
    assert_eq!(checksum(&pair.target, "dev", "public.docs"), before);
}

/// A reload as a superuser turns PostgreSQL's row-by-row foreign-key checks off and checks
/// each key once its tables have their rows, as PostgreSQL validates a key: a cross-type key,
/// keys between columns of different collations, a composite key whose NULLs let a row pass
/// (MATCH SIMPLE), a partitioned table's key. A key made on the target that the source's rows
/// break fails the reload and changes nothing: MATCH FULL with a half-NULL key, then a key of
/// one partition of its own.
#[test]
fn a_reload_checks_each_foreign_key_once_as_postgresql_would() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.parent (id bigint PRIMARY KEY, code text COLLATE \"C\" UNIQUE);
         INSERT INTO public.parent SELECT g, 'p' || g FROM generate_series(1, 100) g;
         CREATE TABLE public.pairs (a int, b int, PRIMARY KEY (a, b));
         INSERT INTO public.pairs VALUES (1, 1), (2, 2);
         CREATE TABLE public.child (id int PRIMARY KEY, parent_id int REFERENCES public.parent,
             code text COLLATE \"POSIX\" REFERENCES public.parent (code), a int, b int,
             FOREIGN KEY (a, b) REFERENCES public.pairs (a, b));
         INSERT INTO public.child SELECT g, g % 100 + 1, 'p' || (g % 100 + 1), 1, 1
         FROM generate_series(1, 500) g;
         INSERT INTO public.child VALUES (501, NULL, NULL, 7, NULL);
         CREATE TABLE public.events (id int, parent_id bigint REFERENCES public.parent, at date)
             PARTITION BY RANGE (at);
         CREATE TABLE public.events_2024 PARTITION OF public.events
             FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE TABLE public.events_2025 PARTITION OF public.events
             FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         INSERT INTO public.events SELECT g, g % 100 + 1, date '2024-06-01' + g
         FROM generate_series(1, 400) g;",
    );
    let tables = [
        "public.parent",
        "public.pairs",
        "public.child",
        "public.events",
    ];
    pair.snapcopy().args(tables).assert().success();
    let plan = String::from_utf8(
        pair.snapcopy()
            .arg("plan")
            .args(tables)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        plan.contains("SET LOCAL session_replication_role = replica"),
        "{plan}"
    );
    assert!(
        plan.contains("-- each foreign key of the reloaded tables, checked once"),
        "{plan}"
    );
    pair.source
        .psql("app", "UPDATE public.child SET code = 'p7' WHERE id = 3");
    pair.snapcopy().args(tables).assert().success();
    let same = |pair: &Pair| {
        for table in tables {
            assert_eq!(
                checksum(&pair.target, "dev", table),
                checksum(&pair.source, "app", table),
                "{table}"
            );
        }
    };
    same(&pair);
    // The target's own keys, which the source's rows break.
    for (key, broken) in [
        (
            "ALTER TABLE public.child ADD CONSTRAINT local_full FOREIGN KEY (a, b) \
             REFERENCES public.pairs (a, b) MATCH FULL NOT VALID",
            "local_full",
        ),
        (
            "ALTER TABLE public.events_2025 ADD CONSTRAINT local_part FOREIGN KEY (id) \
             REFERENCES public.parent (id) NOT VALID",
            "local_part",
        ),
    ] {
        pair.target.psql("dev", key);
        pair.source.psql(
            "app",
            "UPDATE public.child SET code = 'p8' WHERE id = 4; \
             INSERT INTO public.events VALUES (1000, 1, '2025-06-01')",
        );
        let before: Vec<String> = tables
            .iter()
            .map(|t| checksum(&pair.target, "dev", t))
            .collect();
        pair.snapcopy()
            .args(tables)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!(
                "violates foreign key constraint \"{broken}\""
            )))
            .stderr(predicate::str::contains(
                "the source's rows break a foreign key the target has; nothing changed",
            ));
        let after: Vec<String> = tables
            .iter()
            .map(|t| checksum(&pair.target, "dev", t))
            .collect();
        assert_eq!(after, before, "{broken}: the tables keep their rows");
        pair.target.psql(
            "dev",
            &format!(
                "ALTER TABLE {} DROP CONSTRAINT {broken}",
                if broken == "local_full" {
                    "public.child"
                } else {
                    "public.events_2025"
                }
            ),
        );
    }
    pair.snapcopy().args(tables).assert().success();
    same(&pair);
}

/// A registry an older snapcopy made lacks the columns added since: status reads it (the link
/// taken for dblink), and a run takes its tables for snapcopy's and adds the columns back.
#[test]
fn a_registry_an_older_snapcopy_made_is_read_and_brought_up_to_date() {
    let pair = start(Link::Dblink);
    pair.snapcopy()
        .args(["public.customers", "public.orders", "public.events"])
        .assert()
        .success();
    let optional = "'table_oid', 'link', 'data_only', 'source_mark', 'target_mark', \
                    'key_buckets', 'key_counts', 'key_xors'";
    pair.target.psql(
        "dev",
        "ALTER TABLE snapcopy.managed_tables DROP COLUMN table_oid, DROP COLUMN link, \
         DROP COLUMN data_only, DROP COLUMN source_mark, DROP COLUMN target_mark, \
         DROP COLUMN key_buckets, DROP COLUMN key_counts, DROP COLUMN key_xors",
    );
    let status = pair
        .snapcopy()
        .args(["status", "--json"])
        .assert()
        .success();
    let status: serde_json::Value = serde_json::from_slice(&status.get_output().stdout).unwrap();
    assert_eq!(status["tables"].as_array().unwrap().len(), 3, "{status}");
    assert!(
        status["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["link"] == "dblink"),
        "{status}"
    );
    let out = incremental(&pair, &["public.customers", "public.orders"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        summary_row(&out.stdout, "public.orders")["action"],
        "insert"
    );
    assert_eq!(
        pair.target.psql(
            "dev",
            &format!(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'snapcopy' \
                 AND table_name = 'managed_tables' AND column_name IN ({optional})"
            )
        ),
        "8"
    );
}
