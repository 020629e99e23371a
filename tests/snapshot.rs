//! One point in time: every table of a run is read from one source snapshot, even when the
//! tables load in separate target sessions while the source keeps changing.

mod common;

use std::process::{Command, Stdio};

use common::{pg_bin, Pair};

#[test]
fn tables_loaded_in_parallel_sessions_show_the_same_moment_of_a_busy_source() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.a (id integer PRIMARY KEY, payload text); \
         CREATE TABLE public.b (id integer PRIMARY KEY, payload text); \
         CREATE TABLE public.parent (id integer PRIMARY KEY); \
         CREATE TABLE public.child (id integer PRIMARY KEY, parent_id integer REFERENCES public.parent); \
         INSERT INTO public.a SELECT g, repeat('x', 200) FROM generate_series(1, 150000) g; \
         INSERT INTO public.b SELECT g, repeat('y', 200) FROM generate_series(1, 150000) g; \
         ANALYZE",
    );
    // The writer: each transaction adds the same id to a and b, and a parent with its child.
    let mut script = String::new();
    for n in 1_000_000..1_005_000 {
        script.push_str(&format!(
            "BEGIN; INSERT INTO public.a VALUES ({n}, 'w'); INSERT INTO public.b VALUES ({n}, 'w'); \
             INSERT INTO public.parent VALUES ({n}); INSERT INTO public.child VALUES ({n}, {n}); COMMIT;\n"
        ));
    }
    let script_path = pair.home.path().join("writer.sql");
    std::fs::write(&script_path, script).unwrap();
    let mut writer = Command::new(pg_bin().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(pair.source.socket_dir())
        .args([
            "-p",
            &pair.source.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "app",
            "-f",
        ])
        .arg(&script_path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Let the writer get going before the copy starts.
    while pair
        .source
        .psql("app", "SELECT count(*) >= 200 FROM public.child")
        != "t"
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    pair.snapcopy()
        .args(["--jobs", "2", "public.*"])
        .assert()
        .success();
    assert!(writer.wait().unwrap().success());

    let ids = |table: &str| {
        pair.target.psql(
            "dev",
            &format!("SELECT count(*) || ' ' || coalesce(max(id), 0) FROM public.{table} WHERE id >= 1000000"),
        )
    };
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
