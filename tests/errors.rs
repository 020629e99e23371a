//! Bad input and refusals: a one-line message that names the object and the next step, the
//! exit code, and an unchanged target.

mod common;

use common::{Pair, PgServer};
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
            "no source database: give --source",
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
        .args([
            "--target",
            &pair
                .target
                .conninfo("dev")
                .replace("user=postgres", "user=dev"),
            "t",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the target role lacks a privilege snapcopy needs",
        ));
    target_untouched(&pair.target);
}

#[test]
fn the_link_to_the_source_is_read_only() {
    let pair = Pair::start();
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
    // Even a statement sent through the link by hand cannot write to the source.
    let out = std::process::Command::new(common::pg_bin().join("psql"))
        .args(["-X", "-h"])
        .arg(pair.target.socket_dir())
        .args(["-p", &pair.target.port.to_string(), "-U", "postgres", "-d", "dev", "-c"])
        .arg("SELECT snapcopy.dblink_exec('snapcopy_source', 'CREATE TABLE public.written (id int)')")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read-only transaction"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pair.source
            .psql("app", "SELECT to_regclass('public.written') IS NULL"),
        "t"
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
