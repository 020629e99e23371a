//! Bad input and refusals: a one-line message that names the object and the next step, the
//! exit code, and an unchanged target.

mod common;

use common::{Link, Pair, PgServer};
use predicates::prelude::*;

fn snapcopy_offline() -> assert_cmd::Command {
    let home = std::env::temp_dir();
    let mut cmd = assert_cmd::Command::cargo_bin("snapcopy").unwrap();
    cmd.env("HOME", &home)
        .current_dir(&home)
        .env_remove("SNAPCOPY_SOURCE")
        .env_remove("SNAPCOPY_TARGET");
    cmd
}

fn target_untouched(target: &PgServer) {
    assert_eq!(
        target.psql(
            "dev",
            "SELECT count(*) FROM pg_class WHERE relnamespace <> 'pg_catalog'::regnamespace \
             AND relnamespace <> 'information_schema'::regnamespace AND relnamespace <> 'pg_toast'::regnamespace"
        ),
        "0"
    );
}

#[test]
fn an_unknown_table_names_itself_and_the_source() {
    let pair = Pair::start();
    pair.snapcopy()
        .arg("public.nope")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "table public.nope not found on the source",
        ));
    target_untouched(&pair.target);
}

#[test]
fn a_pattern_matching_nothing_is_an_error() {
    let pair = Pair::start();
    pair.source.psql("app", "CREATE TABLE public.t (id int)");
    pair.snapcopy()
        .arg("sales.*")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the pattern sales.* matches no table",
        ));
    target_untouched(&pair.target);
}

#[test]
fn no_tables_and_nothing_managed_yet_says_what_to_name() {
    let pair = Pair::start();
    pair.snapcopy()
        .args(["--mode", "incremental"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no tables named, and snapcopy manages none in the target database yet",
        ));
    target_untouched(&pair.target);
}

#[test]
fn a_malformed_conninfo_is_named_without_its_password() {
    snapcopy_offline()
        .args([
            "--source",
            "host=x password=hunter2 port",
            "--target",
            "host=/t",
            "t",
        ])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(
                "--source: invalid connection string: missing \"=\" after \"port\"",
            )
            .and(predicate::str::contains("hunter2").not()),
        );
}

#[test]
fn an_unknown_config_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("snapcopy.toml"),
        "tables = [\"t\"]\nstagin = \"view\"\n",
    )
    .unwrap();
    snapcopy_offline()
        .current_dir(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown field `stagin`"));
}

#[test]
fn missing_connections_say_where_to_give_them() {
    snapcopy_offline()
        .arg("t")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no target database: give --target, set SNAPCOPY_TARGET, or set target.conninfo",
        ));
    snapcopy_offline()
        .args(["--target", "host=/tmp", "t"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no source database: give --source, set SNAPCOPY_SOURCE, or set source.conninfo",
        ));
}

#[test]
fn zero_jobs_is_refused() {
    snapcopy_offline()
        .args([
            "--source", "host=/a", "--target", "host=/b", "--jobs", "0", "t",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--jobs must be at least 1"));
}

#[test]
fn an_unreachable_source_is_an_error_before_anything_changes() {
    let target = PgServer::start();
    target.create_db("dev");
    let dir = tempfile::tempdir().unwrap();
    snapcopy_offline()
        .args([
            "--source",
            &format!(
                "host={} port=1 dbname=app user=postgres password=pw123",
                dir.path().display()
            ),
            "--target",
            &target.conninfo("dev"),
            "t",
        ])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("could not connect to the source database postgres@")
                .and(predicate::str::contains("pw123").not()),
        );
    target_untouched(&target);
}

#[test]
fn a_target_role_without_privileges_gets_told_what_it_needs() {
    let pair = Pair::start();
    pair.source.psql("app", "CREATE TABLE public.t (id int)");
    pair.target.psql("dev", "CREATE ROLE dev LOGIN");
    pair.snapcopy()
        .args(["--target", &pair.target.conninfo_as("dev", "dev"), "t"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the target role lacks a privilege snapcopy needs",
        ));
    target_untouched(&pair.target);
}

fn the_link_to_the_source_is_read_only(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql(
        "app",
        "CREATE TABLE public.t (id int); INSERT INTO public.t VALUES (1)",
    );
    pair.snapcopy().arg("t").assert().success();
    let options = pair.target.psql(
        "dev",
        "SELECT array_to_string(srvoptions, ',') FROM pg_foreign_server WHERE srvname = 'snapcopy_source'",
    );
    assert!(
        options.contains("options=-c default_transaction_read_only=on"),
        "{options}"
    );
    // Even a statement sent through the link by hand cannot write to the source: through
    // dblink, any statement; through postgres_fdw, an insert into the foreign table.
    let write = match link {
        Link::Dblink => {
            "SELECT snapcopy.dblink_exec('snapcopy_source', 'CREATE TABLE public.written (id int)')"
        }
        Link::PostgresFdw => "INSERT INTO \"snapcopy.public\".t VALUES (2)",
    };
    let out = pair.target.try_psql("dev", write);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read-only transaction"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pair.source.psql(
            "app",
            "SELECT (to_regclass('public.written') IS NULL) || ' ' || (SELECT count(*) FROM public.t)"
        ),
        "true 1"
    );
}

#[test]
fn init_writes_a_config_and_keeps_an_existing_one() {
    let dir = tempfile::tempdir().unwrap();
    snapcopy_offline()
        .current_dir(dir.path())
        .arg("init")
        .assert()
        .success();
    let text = std::fs::read_to_string(dir.path().join("snapcopy.toml")).unwrap();
    assert!(text.contains("[source]") && text.contains("tables = [\"public.*\"]"));
    snapcopy_offline()
        .current_dir(dir.path())
        .arg("init")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "snapcopy.toml already exists; edit it, or pass --force",
        ));
}

#[test]
fn a_wrong_password_is_reported_without_the_password() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.t (id int); CREATE ROLE reader LOGIN PASSWORD 'right-pw'",
    );
    pair.source
        .prepend_hba("host all reader 127.0.0.1/32 scram-sha-256");
    let source = format!(
        "host=127.0.0.1 port={} dbname=app user=reader password=wrong-pw",
        pair.source.port
    );
    pair.snapcopy()
        .args(["--source", &source, "t"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("password authentication failed for user \"reader\"")
                .and(predicate::str::contains("wrong-pw").not()),
        );
    target_untouched(&pair.target);
}

#[test]
fn a_missing_database_is_named() {
    let pair = Pair::start();
    pair.snapcopy()
        .args(["--source", &pair.source.conninfo("nope"), "t"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "could not connect to the source database postgres@",
        ))
        .stderr(predicate::str::contains("database \"nope\" does not exist"));
    target_untouched(&pair.target);
}

#[test]
fn conflicting_flags_are_a_usage_error() {
    snapcopy_offline()
        .args(["-v", "-q", "t"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
    snapcopy_offline()
        .args(["--mode", "sometimes", "t"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "invalid value 'sometimes' for '--mode <MODE>'",
        ));
}

#[test]
fn a_table_dropped_on_the_source_during_the_run_fails_alone() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.a_big (id int PRIMARY KEY, pad text); \
         INSERT INTO public.a_big SELECT g, repeat('x', 200) FROM generate_series(1, 600000) g; \
         CREATE TABLE public.z_gone (id int PRIMARY KEY); INSERT INTO public.z_gone VALUES (1)",
    );
    // One session, so z_gone loads after a_big.
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("snapcopy"))
        .args(["--jobs", "1", "public.*"])
        .env("HOME", pair.home.path())
        .current_dir(pair.home.path())
        .env("SNAPCOPY_SOURCE", pair.source.conninfo("app"))
        .env("SNAPCOPY_TARGET", pair.target.conninfo("dev"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while pair.target.psql(
        "dev",
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO \"public\".\"a_big\"%'",
    ) != "1"
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    pair.source.psql("app", "DROP TABLE public.z_gone");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("public.z_gone")
            && stdout.contains("dropped or renamed on the source during the run"),
        "{stdout}"
    );
    assert_eq!(
        pair.target.psql("dev", "SELECT count(*) FROM public.a_big"),
        "600000"
    );
    assert_eq!(
        pair.target
            .psql("dev", "SELECT to_regclass('public.z_gone') IS NULL"),
        "t"
    );
}

#[test]
fn a_permission_error_during_the_load_names_the_privilege() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE SCHEMA sales; CREATE TABLE sales.orders (id int PRIMARY KEY); INSERT INTO sales.orders VALUES (1); \
         CREATE TABLE public.ok (id int PRIMARY KEY)",
    );
    // The developer's role may set snapcopy up, but the schema sales belongs to someone else.
    pair.target.psql(
        "dev",
        "CREATE ROLE dev LOGIN SUPERUSER; CREATE SCHEMA sales; CREATE ROLE other; ALTER SCHEMA sales OWNER TO other",
    );
    pair.target.psql("dev", "ALTER ROLE dev NOSUPERUSER; ALTER DATABASE dev OWNER TO dev; CREATE EXTENSION dblink; GRANT USAGE ON FOREIGN DATA WRAPPER dblink_fdw TO dev");
    pair.source.psql("app", "CREATE ROLE reader LOGIN PASSWORD 'pw'; GRANT USAGE ON SCHEMA sales TO reader; GRANT SELECT ON ALL TABLES IN SCHEMA sales, public TO reader");
    pair.source
        .prepend_hba("host all reader 127.0.0.1/32 scram-sha-256");
    let source = format!(
        "host=127.0.0.1 port={} dbname=app user=reader password=pw",
        pair.source.port
    );
    let target = pair.target.conninfo_as("dev", "dev");
    pair.snapcopy()
        .args([
            "--source",
            &source,
            "--target",
            &target,
            "sales.orders",
            "public.ok",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "permission denied for schema sales",
        ))
        .stdout(predicate::str::contains(
            "grant the target role that privilege",
        ));
    assert_eq!(
        pair.target
            .psql("dev", "SELECT to_regclass('sales.orders') IS NULL"),
        "t"
    );
    assert_eq!(
        pair.target
            .psql("dev", "SELECT to_regclass('public.ok') IS NOT NULL"),
        "t"
    );
}

fn the_link_that_the_target_role_may_not_install_is_named(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql("app", "CREATE TABLE public.t (id int)");
    // The developer owns the database, but neither dblink nor postgres_fdw is a trusted
    // extension.
    pair.target.psql(
        "dev",
        "CREATE ROLE dev LOGIN; ALTER DATABASE dev OWNER TO dev",
    );
    let name = link.as_str();
    pair.snapcopy()
        .args(["--target", &pair.target.conninfo_as("dev", "dev"), "t"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "the target role may not create the extension {name}"
        )))
        .stderr(predicate::str::contains(format!(
            "ask a superuser to run CREATE EXTENSION {name}"
        )));
    target_untouched(&pair.target);
}

per_link!(
    the_link_to_the_source_is_read_only,
    the_link_that_the_target_role_may_not_install_is_named,
);

// Regression: malformed connection strings echoed the password (`invalid percent-encoded token
// in "<password>"`, `invalid port number "<part of password>"` for an unencoded / or ?).
#[test]
fn a_malformed_url_never_echoes_its_password() {
    for source in [
        "postgresql://reader:Qx7%zzK@prod/app",
        "postgresql://reader:Qx7/zzK@prod/app",
        "postgresql://reader:Qx7?zzK@prod/app",
        "host=prod password=Qx7 zzK dbname=app",
    ] {
        snapcopy_offline()
            .args(["--source", source, "--target", "host=/t", "t"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "--source: invalid connection string: ",
            ))
            .stderr(predicate::str::contains("Qx7").not())
            .stderr(predicate::str::contains("zzK").not());
    }
}

// Regression: a TOML error on a line holding a password printed that line.
#[test]
fn a_config_error_masks_the_password_on_the_line_it_shows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapcopy.toml");
    std::fs::write(
        &path,
        "[source]\nconninfo = \"postgresql://reader:Qx7zzK@prod/app\n",
    )
    .unwrap();
    snapcopy_offline()
        .arg("--config")
        .arg(&path)
        .arg("t")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "conninfo = \"postgresql://reader:********@prod/app",
        ))
        .stderr(predicate::str::contains("Qx7zzK").not());
}

// Regression: `--config /dev/zero` read without end (23 GB, then the OOM killer).
#[test]
fn a_config_that_is_no_regular_file_or_too_large_is_refused_unread() {
    snapcopy_offline()
        .args(["--config", "/dev/zero", "t"])
        .timeout(std::time::Duration::from_secs(10))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "config file /dev/zero: not a regular file",
        ));
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; 2 * 1024 * 1024]).unwrap();
    snapcopy_offline()
        .arg("--config")
        .arg(&big)
        .arg("t")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "more than a config file holds (at most 1 MiB)",
        ));
}

/// Copies `tables` and checks that the run is refused with `error` (exit 1) and that the target
/// has no table whose name matches `made` (a regular expression) afterwards; returns stderr.
fn refused_for_locks(pair: &Pair, tables: &str, error: &str, made: &str) -> String {
    let out = pair
        .snapcopy()
        .arg(tables)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(error));
    assert_eq!(
        pair.target.psql(
            "dev",
            &format!("SELECT count(*) FROM pg_class WHERE relname ~ '{made}'")
        ),
        "0"
    );
    String::from_utf8(out.get_output().stderr.clone()).unwrap()
}

/// A group of tables tied by foreign keys loads in one transaction, which holds a lock on each
/// of their relations until it commits: a group the target's lock table cannot hold is refused
/// before anything is loaded, saying which setting to raise and to what; other groups go on.
#[test]
fn a_group_of_tables_beyond_the_targets_lock_table_is_refused_before_it_loads() {
    // Room for 10 locks per server process (62 of them: 40 connections and the server's own).
    let pair = Pair::start_with(&[], &["max_locks_per_transaction = 10"]);
    let mut schema = String::from(
        "CREATE TABLE public.hub (id int PRIMARY KEY);
         INSERT INTO public.hub SELECT generate_series(1, 10);
         CREATE TABLE public.small_hub (id int PRIMARY KEY);
         INSERT INTO public.small_hub VALUES (1);
         CREATE TABLE public.solo (id int PRIMARY KEY);
         INSERT INTO public.solo VALUES (1);",
    );
    for k in 1..=300 {
        schema.push_str(&format!(
            "CREATE TABLE public.t{k} (id bigserial PRIMARY KEY, hub_id int REFERENCES public.hub);
             CREATE INDEX ON public.t{k} (hub_id);
             INSERT INTO public.t{k} (hub_id) VALUES (1);"
        ));
    }
    for k in 1..=5 {
        schema.push_str(&format!(
            "CREATE TABLE public.s{k} (id int PRIMARY KEY REFERENCES public.small_hub);
             INSERT INTO public.s{k} VALUES (1);"
        ));
    }
    pair.source.psql("app", &schema);
    let stderr = refused_for_locks(
        &pair,
        "public.*",
        "error: public.hub and the 300 other tables tied to it by foreign keys load in one \
         transaction, which holds a lock on each of their 1,503 tables, indexes, sequences and \
         views (at least) until it commits, and the target's lock table has room for about 930 \
         (max_locks_per_transaction 10 for each of its 62 server processes, and some spare); \
         nothing changed: set max_locks_per_transaction to at least 49 on the target",
        "^(hub|t[0-9]+)$",
    );
    assert!(
        stderr
            .contains("error: public.t7 is refused with public.hub, to which foreign keys tie it"),
        "{stderr}"
    );
    // The other groups are copied.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT (SELECT count(*) FROM public.solo) + (SELECT count(*) FROM public.small_hub) \
             + (SELECT count(*) FROM public.s5)"
        ),
        "3"
    );
}

/// The same on the source, whose read-only transaction locks each relation it reads until the
/// unit commits (as pg_dump's does): a group its lock table cannot hold is refused, before the
/// run takes the locks other sessions of the source need.
#[test]
fn a_group_of_tables_beyond_the_sources_lock_table_is_refused_before_it_loads() {
    let pair = Pair::start_with(&["max_locks_per_transaction = 10"], &[]);
    pair.source
        .psql("app", "CREATE TABLE public.hub (id int PRIMARY KEY)");
    // In transactions of 20 tables: one of 760 would not fit the source's lock table either.
    for chunk in 0..38 {
        let mut sql = String::new();
        for k in chunk * 20 + 1..=chunk * 20 + 20 {
            sql.push_str(&format!(
                "CREATE TABLE public.t{k} (id int PRIMARY KEY, hub_id int REFERENCES public.hub);"
            ));
        }
        pair.source.psql("app", &sql);
    }
    refused_for_locks(
        &pair,
        "public.*",
        "error: public.hub and the 760 other tables tied to it by foreign keys load in one \
         transaction, which holds a lock on each of their 1,522 tables, indexes, sequences and \
         views (at least) until it commits, and the source's lock table has room for about 930 \
         (max_locks_per_transaction 10 for each of its 62 server processes, and some spare); \
         nothing changed: copy fewer of these tables in one run",
        "^(hub|t[0-9]+)$",
    );
}

/// A partitioned table loads with all its partitions in one transaction: one whose partitions
/// the target's lock table cannot hold is refused the same way.
#[test]
fn a_partitioned_table_beyond_the_targets_lock_table_is_refused_before_it_loads() {
    let pair = Pair::start_with(&[], &["max_locks_per_transaction = 10"]);
    let mut schema = String::from(
        "CREATE TABLE public.ev (id int, at int, PRIMARY KEY (id, at)) PARTITION BY LIST (at);",
    );
    for k in 1..=750 {
        schema.push_str(&format!(
            "CREATE TABLE public.ev_{k} PARTITION OF public.ev FOR VALUES IN ({k});"
        ));
    }
    pair.source.psql("app", &schema);
    refused_for_locks(
        &pair,
        "public.ev",
        "error: public.ev and its 750 partitions load in one transaction, which holds a lock on \
         each of their 1,503 tables, indexes, sequences and views (at least) until it commits, \
         and the target's lock table has room for about 930",
        "^ev",
    );
}
