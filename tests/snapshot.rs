//! One point in time: every table of a run is read from one source snapshot, even when the
//! tables load in separate target sessions while the source keeps changing (dblink). Through
//! postgres_fdw, which cannot import a snapshot, each group of tables tied by foreign keys is
//! read as of one moment, and the run says so.

mod common;

use std::process::{Child, Stdio};

use common::{Link, Pair};

/// Tables a and b (no foreign keys) and a parent with its child, 150,000 rows each in a and b.
const TABLES: &str = "CREATE TABLE public.a (id integer PRIMARY KEY, payload text); \
     CREATE TABLE public.b (id integer PRIMARY KEY, payload text); \
     CREATE TABLE public.parent (id integer PRIMARY KEY); \
     CREATE TABLE public.child (id integer PRIMARY KEY, parent_id integer REFERENCES public.parent); \
     INSERT INTO public.a SELECT g, repeat('x', 200) FROM generate_series(1, 150000) g; \
     INSERT INTO public.b SELECT g, repeat('y', 200) FROM generate_series(1, 150000) g; \
     ANALYZE";

/// Starts a writer on the source whose transactions each add the same id to a and b, and a
/// parent with its child; returns once it has committed 200 of them.
fn start_writer(pair: &Pair) -> Child {
    let mut script = String::new();
    for n in 1_000_000..1_005_000 {
        script.push_str(&format!(
            "BEGIN; INSERT INTO public.a VALUES ({n}, 'w'); INSERT INTO public.b VALUES ({n}, 'w'); \
             INSERT INTO public.parent VALUES ({n}); INSERT INTO public.child VALUES ({n}, {n}); COMMIT;\n"
        ));
    }
    let script_path = pair.home.path().join("writer.sql");
    std::fs::write(&script_path, script).unwrap();
    let writer = pair
        .source
        .psql_command("app")
        .arg("-f")
        .arg(&script_path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while pair
        .source
        .psql("app", "SELECT count(*) >= 200 FROM public.child")
        != "t"
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    writer
}

/// The writer's rows a table got: how many, and the highest id.
fn writer_rows(pair: &Pair, table: &str) -> String {
    pair.target.psql(
        "dev",
        &format!("SELECT count(*) || ' ' || coalesce(max(id), 0) FROM public.{table} WHERE id >= 1000000"),
    )
}

#[test]
fn tables_loaded_in_parallel_sessions_show_the_same_moment_of_a_busy_source() {
    let pair = Pair::start();
    pair.source.psql("app", TABLES);
    let mut writer = start_writer(&pair);

    pair.snapcopy()
        .args(["--jobs", "2", "public.*"])
        .assert()
        .success();
    assert!(writer.wait().unwrap().success());

    let ids = |table: &str| writer_rows(&pair, table);
    let a = ids("a");
    assert_eq!(a, ids("b"), "a and b were read at different moments");
    assert_eq!(a, ids("parent"));
    assert_eq!(a, ids("child"));
    let copied: i64 = a.split(' ').next().unwrap().parse().unwrap();
    let written: i64 = pair
        .source
        .psql("app", "SELECT count(*) FROM public.a WHERE id >= 1000000")
        .parse()
        .unwrap();
    assert!(
        copied >= 200 && copied < written,
        "the copy ran while the writer did: copied {copied} of {written} writer rows"
    );
    // Every foreign key holds on the target (the constraint was created and validated).
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.child'::regclass AND contype = 'f' AND convalidated"
        ),
        "1"
    );
}

// postgres_fdw begins each session's source transaction itself, with no way to import the
// run's snapshot: a parent and its child (one unit, one session) are read as of one moment, so
// their foreign key holds; unrelated tables may be read at different moments, and the run says
// so.
#[test]
fn through_postgres_fdw_each_group_of_tables_tied_by_foreign_keys_shows_one_moment() {
    let pair = Pair::start().with_link(Link::PostgresFdw);
    pair.source.psql("app", TABLES);
    let mut writer = start_writer(&pair);
    pair.snapcopy()
        .args(["--jobs", "2", "public.*"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "read through postgres_fdw, each group of tables tied by foreign keys as of a moment \
             of its own",
        ));
    assert!(writer.wait().unwrap().success());
    let parent = writer_rows(&pair, "parent");
    assert_eq!(parent, writer_rows(&pair, "child"));
    assert_ne!(parent, "0 0", "the copy ran while the writer did");
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.child'::regclass AND contype = 'f' AND convalidated"
        ),
        "1"
    );
    // The plan says what the link gives.
    pair.snapcopy()
        .args(["plan", "public.a"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "reads the source through postgres_fdw: each session in a snapshot of its own",
        ));
}
