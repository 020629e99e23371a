//! Large tables split into ranges that several sessions load at once, in one snapshot, as one
//! atomic unit: the table appears with all its rows, keys, defaults and sequences, or the
//! target keeps what it had.

mod common;

use std::process::Stdio;

use common::{assert_copied_exactly, checksum, definition, Pair};

/// The target's load tables, and their indexes and sequences, by their names: none once a
/// run has ended, whatever became of it.
const LOAD_RELATIONS: &str = "SELECT count(*) FROM pg_class WHERE relname LIKE 'load %'";

/// Split from 1 MB, in batches of 1 MB: small tables exercise every path.
fn split_small(cmd: &mut assert_cmd::Command) -> &mut assert_cmd::Command {
    cmd.env("SNAPCOPY_SPLIT_MB", "1")
        .env("SNAPCOPY_BATCH_MB", "1")
}

#[test]
fn a_large_table_loads_in_ranges_from_parallel_sessions_in_one_snapshot() {
    let pair = Pair::start_with(
        &[],
        &["log_statement = 'all'", "log_line_prefix = '%m [%p] '"],
    );
    pair.source.psql(
        "app",
        "CREATE TABLE public.events (\
             id bigint GENERATED ALWAYS AS IDENTITY (START WITH 10) PRIMARY KEY, \
             seq_no serial NOT NULL, \
             kind text NOT NULL DEFAULT 'web' CHECK (kind <> ''), \
             n integer, \
             twice bigint GENERATED ALWAYS AS (n * 2) STORED, \
             note text); \
         COMMENT ON TABLE public.events IS 'what happened'; \
         COMMENT ON COLUMN public.events.note IS 'free text'; \
         CREATE INDEX events_kind_n_idx ON public.events (kind, n); \
         CREATE INDEX \"Events lower note\" ON public.events (lower(note)) WHERE n % 2 = 0; \
         ALTER TABLE public.events ADD CONSTRAINT events_seq_no_key UNIQUE (seq_no) INCLUDE (n); \
         INSERT INTO public.events (n, note) SELECT g, repeat(md5(g::text), 3) \
             FROM generate_series(1, 120000) g; \
         CREATE TABLE public.docs (key text PRIMARY KEY, body text); \
         INSERT INTO public.docs SELECT 'doc ' || g, repeat('b', 300) FROM generate_series(1, 20000) g; \
         ANALYZE",
    );

    // A writer adds, in each transaction, one row at each end of the key range: the first
    // range reads the low ids, the last the high ones, so both see the same transactions
    // only if they read in one snapshot.
    let mut script = String::new();
    for n in 1..=3000 {
        script.push_str(&format!(
            "BEGIN; INSERT INTO public.events (id, n) OVERRIDING SYSTEM VALUE VALUES (-{n}, {n}), \
             ({}, {n}); COMMIT;\n",
            10_000_000 + n
        ));
    }
    let script_path = pair.home.path().join("writer.sql");
    std::fs::write(&script_path, script).unwrap();
    let mut writer = pair
        .source
        .psql_command("app")
        .arg("-f")
        .arg(&script_path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while pair.source.psql(
        "app",
        "SELECT count(*) >= 100 FROM public.events WHERE id < 0",
    ) != "t"
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let out = split_small(&mut pair.snapcopy())
        .args(["--jobs", "2", "public.events", "public.docs"])
        .output()
        .unwrap();
    assert!(writer.wait().unwrap().success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("loaded in 2 ranges of id at once"),
        "{stdout}"
    );
    assert!(
        stdout.contains("loaded in 2 ranges of blocks at once"),
        "{stdout}"
    );

    // One moment: as many rows below the key range as above it.
    let ends = pair.target.psql(
        "dev",
        "SELECT count(*) FILTER (WHERE id < 0) || ' ' || count(*) FILTER (WHERE id > 10000000) \
         FROM public.events",
    );
    let (low, high) = ends.split_once(' ').unwrap();
    assert_eq!(low, high, "the ranges were read at different moments");
    assert!(low.parse::<i64>().unwrap() >= 100, "{ends}");

    // Both sessions inserted, at the same time.
    let log = pair.target.log();
    let mut sessions: std::collections::BTreeMap<String, (String, String)> = Default::default();
    for line in log
        .lines()
        .filter(|l| l.contains("INSERT INTO \"snapcopy\".\"load "))
    {
        let (stamp, rest) = line.split_once(" [").unwrap();
        let pid = rest.split(']').next().unwrap().to_string();
        let span = sessions
            .entry(pid)
            .or_insert_with(|| (stamp.to_string(), stamp.to_string()));
        span.1 = stamp.to_string();
    }
    // The keys were added on indexes built before the unit, not built again in it.
    for key in [
        "ADD CONSTRAINT \"events_pkey\" PRIMARY KEY USING INDEX",
        "ADD CONSTRAINT \"events_seq_no_key\" UNIQUE USING INDEX",
    ] {
        assert!(log.contains(key), "{key}");
    }
    let events_sessions = sessions.len();
    assert!(events_sessions >= 2, "{sessions:?}");
    let spans: Vec<&(String, String)> = sessions.values().collect();
    assert!(
        spans
            .iter()
            .any(|a| spans.iter().any(|b| a != b && a.0 <= b.1 && b.0 <= a.1)),
        "the range loads did not overlap: {sessions:?}"
    );

    // The writer is done: copy the finished source's state of the rows the copy saw, and
    // compare everything else a user would.
    pair.source.psql(
        "app",
        &format!(
            "DELETE FROM public.events WHERE id < 0 AND id < -{low} OR id > {}",
            10_000_000 + low.parse::<i64>().unwrap()
        ),
    );
    assert_copied_exactly(&pair, &["public.events", "public.docs"]);
    // Sequences: never behind the rows (the writer gave explicit ids above the source's own).
    for (seq, column) in [("events_id_seq", "id"), ("events_seq_no_seq", "seq_no")] {
        assert_eq!(
            pair.target.psql(
                "dev",
                &format!(
                    "SELECT s.last_value >= (SELECT max({column}) FROM public.events) \
                     AND s.is_called FROM public.{seq} s"
                )
            ),
            "t",
            "{seq}"
        );
    }
    let owners =
        "SELECT string_agg(c.relname || ' owned by ' || a.attname, ', ' ORDER BY c.relname) \
                  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid \
                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                  WHERE c.relkind = 'S' AND d.refobjid = 'public.events'::regclass";
    assert_eq!(
        pair.target.psql("dev", owners),
        "events_id_seq owned by id, events_seq_no_seq owned by seq_no"
    );
    // A local insert takes the next values, as it would on the source.
    assert_eq!(
        pair.target.psql(
            "dev",
            "INSERT INTO public.events (n) VALUES (1) RETURNING kind || ' ' || (seq_no > 120000)"
        ),
        "web true"
    );
    assert_eq!(pair.target.psql("dev", LOAD_RELATIONS), "0");
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT rows_loaded = (SELECT count(*) FROM public.docs) FROM snapcopy.managed_tables \
             WHERE table_name = 'docs'"
        ),
        "t"
    );

    // A full refresh truncates and reloads in one session; --rebuild drops and splits again.
    let out = split_small(&mut pair.snapcopy())
        .args(["--jobs", "2", "--rebuild", "public.events"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("dropped and created anew (--rebuild); loaded in 2 ranges of id at once"),
        "{stdout}"
    );
    assert_copied_exactly(&pair, &["public.events"]);
    let out = pair
        .snapcopy()
        .args(["--rebuild", "--mode", "incremental"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rebuild drops and recreates tables"));

    // Load tables left by an interrupted run (marked as snapcopy marks them) are dropped by the
    // next one.
    pair.target.psql(
        "dev",
        &format!(
            "CREATE TABLE snapcopy.\"load 0badf00d\" AS SELECT * FROM public.docs; \
             COMMENT ON TABLE snapcopy.\"load 0badf00d\" IS '{}'",
            snapcopy::plan::LOAD_MARKER
        ),
    );
    pair.snapcopy()
        .args(["--mode", "incremental"])
        .assert()
        .success();
    assert_eq!(pair.target.psql("dev", LOAD_RELATIONS), "0");
}

#[test]
fn a_range_or_index_build_that_fails_leaves_the_target_as_it_was() {
    let pair = Pair::start();
    // The target's own domain is stricter than the source's: the last row breaks it.
    pair.source.psql(
        "app",
        "CREATE DOMAIN public.amount AS integer; \
         CREATE TABLE public.big (id bigint PRIMARY KEY, a public.amount, pad text); \
         INSERT INTO public.big SELECT g, 1, repeat('p', 200) FROM generate_series(1, 40000) g; \
         UPDATE public.big SET a = -1 WHERE id = 40000; \
         ANALYZE",
    );
    pair.target.psql(
        "dev",
        "CREATE DOMAIN public.amount AS integer CHECK (VALUE >= 0)",
    );

    let out = split_small(&mut pair.snapcopy())
        .args(["--jobs", "2", "big"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: public.big"), "{stderr}");
    assert!(stderr.contains("violates check constraint"), "{stderr}");
    assert!(
        stderr.contains("does not fit the table on the target, because of a type or domain"),
        "{stderr}"
    );
    assert_eq!(
        pair.target
            .psql("dev", "SELECT to_regclass('public.big') IS NULL"),
        "t"
    );
    assert_eq!(pair.target.psql("dev", LOAD_RELATIONS), "0");
    assert_eq!(
        pair.target
            .psql("dev", "SELECT count(*) FROM snapcopy.managed_tables"),
        "0"
    );

    // Copied once; then the source changes shape and gains a bad row again: the rebuild fails
    // and the copy stays as it was.
    pair.source
        .psql("app", "UPDATE public.big SET a = 1 WHERE id = 40000");
    split_small(&mut pair.snapcopy())
        .args(["--jobs", "2", "big"])
        .assert()
        .success();
    let before = (
        checksum(&pair.target, "dev", "public.big"),
        definition(&pair.target, "dev", "public.big"),
    );
    assert_eq!(before.0, checksum(&pair.source, "app", "public.big"));
    pair.source.psql(
        "app",
        "ALTER TABLE public.big ADD COLUMN note text; UPDATE public.big SET a = -1 WHERE id = 39999",
    );
    let out = split_small(&mut pair.snapcopy())
        .args(["--jobs", "2", "big"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAILED: value for domain amount"),
        "{stdout}"
    );
    assert_eq!(
        (
            checksum(&pair.target, "dev", "public.big"),
            definition(&pair.target, "dev", "public.big"),
        ),
        before
    );
    assert_eq!(pair.target.psql("dev", LOAD_RELATIONS), "0");

    // The ranges land but an index build fails (the target's own function of that name, which
    // snapcopy leaves as it is, fails): the same.
    pair.source.psql(
        "app",
        "UPDATE public.big SET a = 1 WHERE id = 39999; \
         CREATE FUNCTION public.twice(integer) RETURNS integer IMMUTABLE LANGUAGE sql \
         AS 'SELECT $1 * 2'; \
         CREATE INDEX big_twice_idx ON public.big (public.twice(a))",
    );
    pair.target.psql(
        "dev",
        "CREATE FUNCTION public.twice(integer) RETURNS integer IMMUTABLE LANGUAGE sql \
         AS 'SELECT $1 / 0'",
    );
    let out = split_small(&mut pair.snapcopy())
        .args(["--jobs", "2", "big"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED: division by zero"), "{stdout}");
    assert_eq!(
        (
            checksum(&pair.target, "dev", "public.big"),
            definition(&pair.target, "dev", "public.big"),
        ),
        before
    );
    assert_eq!(pair.target.psql("dev", LOAD_RELATIONS), "0");
}

#[test]
fn a_unit_of_many_new_tables_is_built_by_helper_sessions_and_each_table_appears_whole() {
    let pair = Pair::start_with(
        &[],
        &["log_statement = 'all'", "log_line_prefix = '%m [%p] '"],
    );
    // Forty tables tied to one hub: one unit. The last two in load order: c40, whose last
    // row the target's stricter domain refuses, and c39, which references it.
    let mut sql = String::from(
        "CREATE DOMAIN public.amount AS integer; \
         CREATE TABLE public.hub (id bigint PRIMARY KEY, name text NOT NULL); \
         INSERT INTO public.hub SELECT g, 'hub ' || g FROM generate_series(1, 50) g; ",
    );
    for k in 1..=40 {
        let refs = if k == 39 { ", c40_id bigint" } else { "" };
        sql.push_str(&format!(
            "CREATE TABLE public.c{k:02} (id bigserial PRIMARY KEY, \
                 hub_id bigint NOT NULL REFERENCES public.hub (id), \
                 code integer GENERATED ALWAYS AS IDENTITY (START WITH 100) UNIQUE, \
                 label text NOT NULL DEFAULT 'x' CHECK (label <> ''), \
                 a public.amount, at timestamptz DEFAULT now(){refs}); \
             COMMENT ON TABLE public.c{k:02} IS 'table {k}'; \
             CREATE INDEX c{k:02}_hub_label_idx ON public.c{k:02} (hub_id, lower(label)); \
             INSERT INTO public.c{k:02} (hub_id, label, a, at) \
                 SELECT 1 + g % 50, 'row ' || g, g, timestamptz '2024-01-01' + g * interval '1 day' \
                 FROM generate_series(1, 300) g; "
        ));
    }
    sql.push_str(
        "ALTER TABLE public.c39 ADD FOREIGN KEY (c40_id) REFERENCES public.c40 (id); \
         UPDATE public.c39 SET c40_id = id; UPDATE public.c40 SET a = -1 WHERE id = 300; \
         CREATE TABLE public.lonely (id int PRIMARY KEY); ANALYZE",
    );
    pair.source.psql("app", &sql);

    // A unit that does not commit (its registry row for c05 is refused, after every table is
    // made) leaves nothing: not its own tables, not those the helper built.
    pair.snapcopy().arg("public.lonely").assert().success();
    pair.target.psql(
        "dev",
        "ALTER TABLE snapcopy.managed_tables ADD CONSTRAINT not_c05 CHECK (table_name <> 'c05')",
    );
    let out = pair
        .snapcopy()
        .args(["--jobs", "2", "--exclude", "public.lonely", "public.*"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not_c05"), "{stderr}");
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace \
             AND relname <> 'lonely' AND relname NOT LIKE 'lonely%'"
        ),
        "0"
    );
    assert!(
        pair.target
            .log()
            .contains("INSERT INTO \"snapcopy\".\"load "),
        "no helper loaded a table"
    );
    assert_eq!(pair.target.psql("dev", LOAD_RELATIONS), "0");
    pair.target.psql(
        "dev",
        "ALTER TABLE snapcopy.managed_tables DROP CONSTRAINT not_c05; \
         DROP DOMAIN IF EXISTS public.amount; \
         CREATE DOMAIN public.amount AS integer CHECK (VALUE >= 0)",
    );
    let logged = pair.target.log().len();

    let out = pair
        .snapcopy()
        .args(["--jobs", "2", "--exclude", "public.lonely", "public.*"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");

    // A helper built tables from the back of the unit (c40 among them, whose build failed:
    // it alone is not copied), the unit made the others itself, and moved the helper's in.
    let log = pair.target.log()[logged..].to_string();
    let moved = log.matches("SET SCHEMA \"public\"").count();
    let made = log.matches("CREATE TABLE \"public\".\"c").count();
    assert!(moved >= 1 && made >= 1, "moved {moved}, made {made}");
    assert_eq!(moved + made, 39, "moved {moved}, made {made}");
    assert!(
        log.contains("INSERT INTO \"snapcopy\".\"load "),
        "no helper loaded a table"
    );
    assert!(stderr.contains("error: public.c40"), "{stderr}");
    assert!(
        stderr.contains("does not fit the table on the target, because of a type or domain"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "foreign key c39_c40_id_fkey of public.c39 is skipped: it references public.c40, \
             which was not copied"
        ),
        "{stderr}"
    );
    assert_eq!(
        pair.target
            .psql("dev", "SELECT to_regclass('public.c40') IS NULL"),
        "t"
    );
    assert_eq!(pair.target.psql("dev", LOAD_RELATIONS), "0");

    // Every other table as on the source: definition (keys, identity, defaults, checks,
    // indexes, comment), rows, sequences, registry row.
    let tables: Vec<String> = std::iter::once("public.hub".to_string())
        .chain((1..=38).map(|k| format!("public.c{k:02}")))
        .collect();
    assert_copied_exactly(&pair, &tables);
    let c39 = definition(&pair.target, "dev", "public.c39");
    assert!(!c39.contains("c39_c40_id_fkey"), "{c39}");
    assert_eq!(
        checksum(&pair.target, "dev", "public.c39"),
        checksum(&pair.source, "app", "public.c39")
    );
    let sequences =
        "SELECT string_agg(sequencename || '=' || last_value, ',' ORDER BY sequencename) \
                     FROM pg_sequences WHERE schemaname = 'public' AND sequencename < 'c40'";
    assert_eq!(
        pair.target.psql("dev", sequences),
        pair.source.psql("app", sequences)
    );
    // Local inserts take the next values, as they would on the source, in a table a helper
    // built (the last ones) and in one the unit made (the first ones).
    for table in ["c01", "c38"] {
        assert_eq!(
            pair.target.psql(
                "dev",
                &format!(
                    "INSERT INTO public.{table} (hub_id) VALUES (1) \
                     RETURNING id || ' ' || code || ' ' || label"
                )
            ),
            "301 400 x",
            "{table}"
        );
    }
    assert_eq!(
        pair.target
            .psql("dev", "SELECT count(*) FROM snapcopy.managed_tables"),
        "41"
    );
}
