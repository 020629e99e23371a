//! End-to-end copies between two throwaway servers: what a user checks after `snapcopy`.

mod common;

use common::{assert_copied_exactly, checksum, Pair};
use predicates::prelude::*;

const KIND_TABLES: &[&str] = &[
    "public.checks",
    "public.children",
    "public.empty_serial",
    "public.exclusions",
    "public.generated",
    "public.identity_always",
    "public.identity_default",
    "public.indexed",
    "public.no_key",
    "public.parents",
    "public.serial_keys",
    "public.typed",
    "public.uniques",
];

/// Asserts that every fixture table on the target matches the source: definition, rows and
/// checksum, and that each copied sequence's next value is above every key and equal to the
/// source's own next value.
fn assert_same_as_source(pair: &Pair) {
    let tables = pair.target.psql(
        "dev",
        "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class \
         WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
    );
    assert_eq!(
        tables,
        KIND_TABLES
            .iter()
            .map(|t| t.trim_start_matches("public."))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_copied_exactly(pair, KIND_TABLES);
    let next_values = "SELECT string_agg(format('%s.%s %s', schemaname, sequencename, \
        CASE WHEN last_value IS NULL THEN start_value ELSE last_value + increment_by END), ',' \
        ORDER BY sequencename) FROM pg_sequences";
    assert_eq!(
        pair.target.psql("dev", next_values),
        pair.source.psql("app", next_values),
        "sequences continue where the source's do"
    );
    let sequence_options = "SELECT string_agg(format('%s %s %s %s %s %s %s', sequencename, \
        data_type, start_value, min_value, max_value, increment_by, cycle), ',' \
        ORDER BY sequencename) FROM pg_sequences";
    assert_eq!(
        pair.target.psql("dev", sequence_options),
        pair.source.psql("app", sequence_options)
    );
    for (table, column) in [
        ("public.serial_keys", "id"),
        ("public.identity_always", "id"),
        ("public.identity_default", "id"),
    ] {
        let above = pair.target.psql(
            "dev",
            &format!(
                "SELECT nextval(pg_get_serial_sequence('{table}', '{column}')) > \
                 (SELECT max({column}) FROM {table})"
            ),
        );
        assert_eq!(above, "t", "nextval of {table}.{column} is above every key");
    }
}

fn assert_no_password_in_definitions(pair: &Pair, password: &str) {
    let definitions = pair.target.psql(
        "dev",
        "SELECT coalesce(string_agg(definition, ' '), '') FROM pg_views \
         WHERE schemaname = 'snapcopy'",
    ) + &pair.target.psql(
        "dev",
        "SELECT coalesce(string_agg(definition, ' '), '') FROM pg_matviews",
    );
    assert!(!definitions.contains(password), "{definitions}");
}

fn copy_every_object_kind(staging: &str) {
    let pair = Pair::start();
    pair.load_fixture("kinds.sql");
    // Trust authentication ignores the password, but it still travels into the user mapping,
    // so the test can prove it never reaches a definition or the output.
    let password = "Sekr1t-pw-4242";
    let source = format!("{} password={password}", pair.source.conninfo("app"));

    let first = pair
        .snapcopy()
        .args(["--source", &source, "--staging", staging, "public.*"])
        .assert()
        .success();
    let out = first.get_output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains(password) && !stderr.contains(password));
    assert!(
        stdout.contains("public.typed") && stdout.contains("400"),
        "{stdout}"
    );
    assert_same_as_source(&pair);
    assert_no_password_in_definitions(&pair, password);
    let staging_kind = pair.target.psql(
        "dev",
        "SELECT string_agg(DISTINCT relkind::text, ',') FROM pg_class \
         WHERE relnamespace = 'snapcopy'::regnamespace AND relkind IN ('v', 'm')",
    );
    assert_eq!(staging_kind, if staging == "view" { "v" } else { "m" });

    // A second run is a clean refresh: same result, every table reloaded.
    pair.source.psql(
        "app",
        "INSERT INTO public.parents VALUES (51, 'new parent')",
    );
    let second = pair
        .snapcopy()
        .args(["--source", &source, "--staging", staging, "public.*"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&second.get_output().stdout).into_owned();
    assert!(stdout.contains("reloaded"), "{stdout}");
    assert!(!stdout.contains("created"), "{stdout}");
    assert_same_as_source(&pair);
    assert_no_password_in_definitions(&pair, password);
    let registry = pair.target.psql(
        "dev",
        "SELECT count(*) || ' ' || sum(rows_total) FROM snapcopy.managed_tables",
    );
    let total: i64 = KIND_TABLES
        .iter()
        .map(|t| {
            checksum(&pair.source, "app", t)
                .split(' ')
                .next()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .sum();
    assert_eq!(registry, format!("{} {total}", KIND_TABLES.len()));
}

#[test]
fn copies_every_object_kind_through_views() {
    copy_every_object_kind("view");
}

#[test]
fn copies_every_object_kind_through_materialized_views() {
    copy_every_object_kind("matview");
}

#[test]
fn plan_prints_the_sql_and_changes_nothing() {
    let pair = Pair::start();
    pair.load_fixture("kinds.sql");
    let before = pair.target.psql("dev", "SELECT count(*) FROM pg_class");
    let assert = pair
        .snapcopy()
        .args(["plan", "public.parents", "public.children"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(
        stdout.contains("CREATE TABLE \"public\".\"parents\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("FROM ONLY \"public\".\"children\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("ADD CONSTRAINT \"children_parent_id_fkey\""),
        "{stdout}"
    );
    assert_eq!(
        pair.target.psql("dev", "SELECT count(*) FROM pg_class"),
        before
    );
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'snapcopy'"
        ),
        "0"
    );
    // A reader that goes away (`snapcopy plan | head`) ends the output quietly: no panic.
    // The pipe is closed before snapcopy has connected, so its first write meets it closed.
    let cmd = pair.snapcopy().get_program().to_owned();
    let mut child = std::process::Command::new(cmd)
        .args(["plan", "public.parents", "public.children"])
        .envs(
            pair.snapcopy()
                .get_envs()
                .filter_map(|(k, v)| Some((k, v?))),
        )
        .env_remove("PGHOST")
        .current_dir(pair.home.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn a_failed_reload_keeps_the_previous_rows() {
    let pair = Pair::start();
    pair.load_fixture("kinds.sql");
    pair.snapcopy()
        .args(["public.parents", "public.children", "public.generated"])
        .assert()
        .success();
    let parents = checksum(&pair.target, "dev", "public.parents");
    let children = checksum(&pair.target, "dev", "public.children");
    // A check the developer added locally refuses one of the new source rows, so the reload
    // fails after parents were truncated and reloaded: the unit must roll back as a whole.
    pair.target.psql(
        "dev",
        "ALTER TABLE public.children ADD CONSTRAINT local_rule CHECK (id <> 201)",
    );
    pair.source.psql(
        "app",
        "INSERT INTO public.parents VALUES (99, 'late'); \
         INSERT INTO public.children VALUES (201, 99, NULL); \
         INSERT INTO public.generated (id, price) VALUES (1000, 1)",
    );
    let assert = pair
        .snapcopy()
        .args(["public.parents", "public.children", "public.generated"])
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(
        stdout.contains("violates check constraint \"local_rule\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("not changed: public.children, which foreign keys tie to it, failed"),
        "{stdout}"
    );
    assert_eq!(checksum(&pair.target, "dev", "public.parents"), parents);
    assert_eq!(checksum(&pair.target, "dev", "public.children"), children);
    // The unrelated table was reloaded all the same.
    assert_eq!(
        checksum(&pair.target, "dev", "public.generated"),
        checksum(&pair.source, "app", "public.generated")
    );
}

#[test]
fn a_foreign_key_outside_the_run_is_skipped_with_a_warning() {
    let pair = Pair::start();
    pair.load_fixture("kinds.sql");
    pair.snapcopy()
        .arg("public.children")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "foreign key children_parent_id_fkey of public.children is skipped: it references \
             public.parents",
        ));
    let fks = pair.target.psql(
        "dev",
        "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint \
         WHERE conrelid = 'public.children'::regclass AND contype = 'f'",
    );
    assert_eq!(fks, "children_self_id_fkey");
}

#[test]
fn an_unmanaged_table_in_the_way_is_left_alone() {
    let pair = Pair::start();
    pair.load_fixture("kinds.sql");
    pair.target.psql(
        "dev",
        "CREATE TABLE public.parents (id int, mine text); INSERT INTO public.parents VALUES (7, 'keep me')",
    );
    pair.snapcopy()
        .args(["public.parents", "public.generated"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "public.parents already exists on the target and snapcopy did not create it",
        ))
        .stdout(predicate::str::is_match(r"public\.parents\s+┆ not copied").unwrap());
    assert_eq!(
        pair.target
            .psql("dev", "SELECT id || ' ' || mine FROM public.parents"),
        "7 keep me"
    );
    assert_eq!(
        checksum(&pair.target, "dev", "public.generated"),
        checksum(&pair.source, "app", "public.generated")
    );
}

#[test]
fn quoted_patterns_and_excludes_pick_exact_tables() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE SCHEMA \"My Schema\"; \
         CREATE TABLE \"My Schema\".\"Order.Items\" (id int PRIMARY KEY, \"Qty\" int); \
         INSERT INTO \"My Schema\".\"Order.Items\" VALUES (1, 2), (3, 4); \
         CREATE TABLE \"My Schema\".other (id int); \
         CREATE TABLE public.audit_log (id int)",
    );
    pair.snapcopy()
        .args(["\"My Schema\".*", "--exclude", "\"My Schema\".other"])
        .assert()
        .success();
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(relname, ',') FROM pg_class \
             WHERE relnamespace = '\"My Schema\"'::regnamespace AND relkind = 'r'"
        ),
        "Order.Items"
    );
    assert_eq!(
        checksum(&pair.target, "dev", "\"My Schema\".\"Order.Items\""),
        checksum(&pair.source, "app", "\"My Schema\".\"Order.Items\"")
    );
}

#[test]
fn the_config_file_supplies_connections_and_tables() {
    let pair = Pair::start();
    pair.load_fixture("kinds.sql");
    std::fs::write(
        pair.home.path().join("snapcopy.toml"),
        format!(
            "tables = [\"public.parents\"]\nstaging = \"matview\"\n[source]\nconninfo = \"{}\"\n\
             [target]\nconninfo = \"{}\"\n",
            pair.source.conninfo("app"),
            pair.target.conninfo("dev")
        ),
    )
    .unwrap();
    assert_cmd::Command::cargo_bin("snapcopy")
        .unwrap()
        .env("HOME", pair.home.path())
        .env_remove("SNAPCOPY_SOURCE")
        .env_remove("SNAPCOPY_TARGET")
        .current_dir(pair.home.path())
        .assert()
        .success();
    assert_eq!(
        checksum(&pair.target, "dev", "public.parents"),
        checksum(&pair.source, "app", "public.parents")
    );
    assert_eq!(
        pair.target
            .psql("dev", "SELECT staging_kind FROM snapcopy.managed_tables"),
        "matview"
    );
}

#[test]
fn environment_variables_complete_the_connection() {
    let pair = Pair::start();
    pair.load_fixture("kinds.sql");
    let mut cmd = assert_cmd::Command::cargo_bin("snapcopy").unwrap();
    cmd.env("HOME", pair.home.path())
        .current_dir(pair.home.path())
        .env("PGHOST", pair.source.socket_dir())
        .env("PGUSER", "postgres")
        .env_remove("PGPASSWORD")
        .env(
            "SNAPCOPY_SOURCE",
            format!("port={} dbname=app", pair.source.port),
        )
        .env(
            "SNAPCOPY_TARGET",
            format!(
                "postgresql://postgres@%2F{}:{}/dev",
                pair.target
                    .socket_dir()
                    .display()
                    .to_string()
                    .trim_start_matches('/')
                    .replace('/', "%2F"),
                pair.target.port
            ),
        )
        .arg("public.parents")
        .assert()
        .success();
    assert_eq!(
        checksum(&pair.target, "dev", "public.parents"),
        checksum(&pair.source, "app", "public.parents")
    );
}

#[test]
fn source_via_is_how_the_target_server_reaches_the_source() {
    let pair = Pair::start();
    pair.load_fixture("kinds.sql");
    // The tool reads the catalog over the unix socket; the target server goes over TCP.
    pair.snapcopy()
        .args(["--source-via", "host=127.0.0.1", "public.parents"])
        .assert()
        .success();
    let options = pair.target.psql(
        "dev",
        "SELECT array_to_string(srvoptions, ',') FROM pg_foreign_server WHERE srvname = 'snapcopy_source'",
    );
    assert!(options.contains("host=127.0.0.1"), "{options}");
    assert!(
        options.contains(&format!("port={}", pair.source.port)),
        "{options}"
    );
    assert_eq!(
        checksum(&pair.target, "dev", "public.parents"),
        checksum(&pair.source, "app", "public.parents")
    );
    // A way the target server cannot use fails that table cleanly and says what to check.
    let before = checksum(&pair.target, "dev", "public.parents");
    pair.snapcopy()
        .args(["--source-via", "host=127.0.0.1 port=1", "public.parents"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the target server could not open its dblink connection to the source",
        ))
        .stderr(predicate::str::contains("--source-via"));
    // The setup rolled back: the link still points where it did.
    assert!(pair
        .target
        .psql(
            "dev",
            "SELECT array_to_string(srvoptions, ',') FROM pg_foreign_server"
        )
        .contains(&format!("port={}", pair.source.port)));
    assert_eq!(checksum(&pair.target, "dev", "public.parents"), before);
}
