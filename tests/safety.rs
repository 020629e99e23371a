//! Safety promises: the source is only read, the target must be local unless allowed and is
//! never the source, one run at a time, only snapcopy's own tables are touched, and passwords
//! appear nowhere.

mod common;

use std::process::Stdio;

use common::{checksum, Link, Pair};
use predicates::prelude::*;

const SHOP: &str = "CREATE TABLE public.items (id serial PRIMARY KEY, name text NOT NULL); \
    INSERT INTO public.items (name) SELECT 'item ' || g FROM generate_series(1, 100) g; \
    CREATE TABLE public.notes (id int PRIMARY KEY, body text); \
    INSERT INTO public.notes VALUES (1, 'one')";

#[test]
fn a_remote_target_needs_to_be_allowed_on_purpose() {
    let pair = Pair::start();
    pair.source.psql("app", SHOP);
    let remote = format!(
        "host=dev-db.example.com hostaddr=127.0.0.1 port={} dbname=dev user=postgres",
        pair.target.port
    );
    pair.snapcopy()
        .args(["--target", &remote, "items"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the target postgres@dev-db.example.com:",
        ))
        .stderr(predicate::str::contains(
            "is not on this machine; snapcopy writes to its target, so a remote one must be chosen on purpose: pass --allow-remote-target",
        ));
    assert_eq!(
        pair.target
            .psql("dev", "SELECT to_regclass('public.items') IS NULL"),
        "t"
    );
    pair.snapcopy()
        .args(["--target", &remote, "--allow-remote-target", "items"])
        .assert()
        .success();
    std::fs::write(
        pair.home.path().join("snapcopy.toml"),
        "[target]\nallow_remote = true\n",
    )
    .unwrap();
    pair.snapcopy()
        .args(["--target", &remote, "items"])
        .assert()
        .success();
}

#[test]
fn the_source_database_is_never_the_target() {
    let pair = Pair::start();
    pair.source.psql("app", SHOP);
    pair.snapcopy()
        .args(["--target", &pair.source.conninfo("app"), "items"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is the source database postgres@"));
    // Another database of the same server is a fine target.
    pair.source.create_db("app_dev");
    pair.snapcopy()
        .args(["--target", &pair.source.conninfo("app_dev"), "items"])
        .assert()
        .success();
}

fn a_role_with_only_select_on_the_source_is_enough(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql(
        "app",
        &format!(
            "{SHOP}; CREATE ROLE reader LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader; \
             GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO reader"
        ),
    );
    let reader = pair.source.conninfo_as("app", "reader");
    pair.snapcopy()
        .args(["--source", &reader, "--require-read-only-role", "public.*"])
        .assert()
        .success()
        .stderr(predicate::str::contains("the source role").not());
    assert_eq!(
        checksum(&pair.target, "dev", "public.items"),
        checksum(&pair.source, "app", "public.items")
    );
    pair.snapcopy()
        .args(["verify", "--source", &reader])
        .assert()
        .success();
}

#[test]
fn a_second_run_on_the_same_target_says_who_holds_it() {
    let pair = Pair::start();
    pair.source.psql("app", SHOP);
    let mut holder = pair
        .target
        .psql_command("dev")
        .arg("-c")
        .arg("SELECT pg_advisory_lock(hashtext('snapcopy'), hashtext('snapcopy')), pg_sleep(60)")
        .env("PGAPPNAME", "the other run")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while pair.target.psql(
        "dev",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
    ) != "1"
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    pair.snapcopy()
        .arg("items")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "another snapcopy run is working on this target database (pid ",
        ))
        .stderr(predicate::str::contains("application the other run"))
        .stderr(predicate::str::contains("pg_terminate_backend("));
    holder.kill().unwrap();
    let _ = holder.wait();
    pair.target.psql("dev", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'the other run'");
    pair.snapcopy().arg("items").assert().success();
}

fn teardown_drops_what_snapcopy_set_up_and_only_its_own_tables(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql("app", SHOP);
    pair.target.psql(
        "dev",
        "CREATE TABLE public.mine (id int); INSERT INTO public.mine VALUES (1)",
    );
    pair.snapcopy()
        .args(["--staging", "matview", "items", "notes"])
        .assert()
        .success();
    pair.snapcopy()
        .arg("teardown")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "kept the 2 copied tables (--drop-tables drops them)",
        ));
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'snapcopy%') || ' ' || \
             (SELECT count(*) FROM pg_foreign_server) || ' ' || (SELECT count(*) FROM pg_user_mappings) || ' ' || \
             (SELECT count(*) FROM public.items)"
        ),
        "0 0 0 100"
    );
    // Copy again, then drop the copies too: the developer's own table stays.
    pair.snapcopy()
        .args(["--replace-unmanaged", "items", "notes"])
        .assert()
        .success();
    pair.snapcopy()
        .args(["teardown", "--drop-tables"])
        .assert()
        .success();
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
        ),
        "mine"
    );
}

fn replace_unmanaged_takes_over_a_table_in_the_way(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql("app", SHOP);
    pair.target.psql("dev", "CREATE TABLE public.items (id int, other text); INSERT INTO public.items VALUES (1, 'old')");
    pair.snapcopy()
        .arg("items")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--replace-unmanaged"));
    assert_eq!(
        pair.target.psql("dev", "SELECT other FROM public.items"),
        "old"
    );
    pair.snapcopy()
        .args(["--replace-unmanaged", "items"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "took over a table snapcopy did not create",
        ));
    assert_eq!(
        checksum(&pair.target, "dev", "public.items"),
        checksum(&pair.source, "app", "public.items")
    );
    // From then on it is snapcopy's: a plain rerun reloads it.
    pair.snapcopy()
        .arg("items")
        .assert()
        .success()
        .stdout(predicate::str::contains("reloaded"));
}

fn the_password_appears_nowhere(link: Link) {
    let password = "Pa55-w0rd-never-shown";
    let pair = Pair::start_with(
        &[],
        &["log_statement = 'all'", "log_min_error_statement = 'error'"],
    )
    .with_link(link);
    pair.source.psql("app", SHOP);
    let source = format!("{} password={password}", pair.source.conninfo("app"));
    let mut seen = String::new();
    for args in [
        vec!["plan", "public.*"],
        vec!["public.*"],
        vec!["--staging", "matview", "public.*"],
        vec!["--mode", "incremental"],
        vec!["-v", "public.*"],
        vec!["status"],
        vec!["verify"],
        vec!["--json", "public.*"],
        vec!["nosuchtable"],
    ] {
        let out = pair
            .snapcopy()
            .args(["--source", &source])
            .args(&args)
            .output()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert!(seen.contains("CREATE USER MAPPING"), "the plan was printed");
    assert!(!seen.contains(password), "password in the output");
    for sql in [
        "SELECT coalesce(string_agg(definition, ' '), '') FROM pg_views",
        "SELECT coalesce(string_agg(definition, ' '), '') FROM pg_matviews",
        "SELECT coalesce(string_agg(query, ' '), '') FROM pg_stat_activity",
        "SELECT coalesce(string_agg(array_to_string(srvoptions, ','), ' '), '') FROM pg_foreign_server",
        "SELECT coalesce(string_agg(array_to_string(ftoptions, ','), ' '), '') FROM pg_foreign_table",
    ] {
        assert!(!pair.target.psql("dev", sql).contains(password), "{sql}");
    }
    let log = pair.target.log();
    assert!(log.contains("CREATE SERVER"), "ddl was logged");
    assert!(
        !log.contains(password),
        "password in the target's statement log"
    );
    // It is in the user mapping, where the link reads it, and nowhere else.
    assert!(pair
        .target
        .psql(
            "dev",
            "SELECT array_to_string(umoptions, ',') FROM pg_user_mappings"
        )
        .contains(password));
}

/// A developer's role that owns its database and may use the pair's link (a superuser made
/// its extension), but is no superuser.
fn non_superuser_target(pair: &Pair) -> String {
    pair.target.psql(
        "dev",
        &format!(
            "CREATE ROLE dev LOGIN; ALTER DATABASE dev OWNER TO dev; CREATE EXTENSION {}; \
             GRANT USAGE ON FOREIGN DATA WRAPPER {} TO dev",
            pair.link.as_str(),
            pair.link.wrapper()
        ),
    );
    pair.target.conninfo_as("dev", "dev")
}

fn a_target_role_that_is_no_superuser_works_when_the_source_asks_for_a_password(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql(
        "app",
        &format!("{SHOP}; CREATE TABLE public.lines (id int PRIMARY KEY, item_id int NOT NULL REFERENCES public.items); \
                  INSERT INTO public.lines SELECT g, g FROM generate_series(1, 50) g; \
                  CREATE ROLE reader LOGIN PASSWORD 'reader-pw'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader; GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO reader"),
    );
    pair.source
        .prepend_hba("host all reader 127.0.0.1/32 scram-sha-256\nlocal all reader scram-sha-256");
    let target = non_superuser_target(&pair);
    let source = format!(
        "host=127.0.0.1 port={} dbname=app user=reader password=reader-pw",
        pair.source.port
    );
    // A reload too: the role may not turn the row-by-row foreign-key checks off, and keeps
    // them.
    for _ in 0..2 {
        pair.snapcopy()
            .args(["--source", &source, "--target", &target, "public.*"])
            .assert()
            .success();
        for table in ["public.items", "public.lines"] {
            assert_eq!(
                checksum(&pair.target, "dev", table),
                checksum(&pair.source, "app", table)
            );
        }
    }
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'items'"
        ),
        "dev"
    );
}

fn against_a_source_that_trusts_dblinks_rule_is_explained_and_nothing_changes(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql("app", SHOP);
    let target = non_superuser_target(&pair);
    pair.snapcopy()
        .args(["--target", &target, "items"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{} lets a role that is not a superuser connect only with a password that the source actually asks for",
            link.as_str()
        )));
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'snapcopy') + (SELECT count(*) FROM pg_foreign_server)"
        ),
        "0"
    );
}

/// The tables, views and schemas a user would miss, one a line.
fn user_objects(pair: &Pair) -> String {
    pair.target.psql(
        "dev",
        "SELECT string_agg(n.nspname || '.' || c.relname || ' ' || c.relkind::text, E'\\n' \
         ORDER BY 1) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', \
         'information_schema', 'snapcopy')",
    )
}

// Regression: `snapcopy teardown --staging-schema X` dropped any schema X with CASCADE (public,
// a user schema with tables and views, information_schema) and exited 0.
fn teardown_and_setup_refuse_a_schema_snapcopy_did_not_make(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql("app", SHOP);
    pair.target.psql(
        "dev",
        "CREATE SCHEMA sales; CREATE TABLE sales.orders (id int); \
         INSERT INTO sales.orders VALUES (1); CREATE VIEW sales.order_count AS \
         SELECT count(*) FROM sales.orders",
    );
    let before = user_objects(&pair);
    for schema in ["public", "information_schema", "pg_catalog"] {
        pair.snapcopy()
            .args(["teardown", "--staging-schema", schema])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "--staging-schema {schema}: snapcopy keeps its objects in a schema of its own"
            )));
    }
    pair.snapcopy()
        .args(["teardown", "--staging-schema", "sales"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the schema sales exists on the target and is not snapcopy's (it holds",
        ));
    // Nor is it used for staging.
    pair.snapcopy()
        .args(["--staging-schema", "sales", "items"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not snapcopy's"));
    assert_eq!(user_objects(&pair), before);
    assert_eq!(
        pair.target
            .psql("dev", "SELECT count(*) FROM pg_foreign_server"),
        "0"
    );

    // An empty schema is taken and marked; objects a user puts in snapcopy's schema later stop
    // teardown, which then drops nothing.
    pair.target.psql("dev", "CREATE SCHEMA staging_here");
    pair.snapcopy()
        .args(["--staging-schema", "staging_here", "items"])
        .assert()
        .success();
    pair.target.psql(
        "dev",
        "CREATE TABLE staging_here.my_notes (body text); \
         CREATE TABLE staging_here.\"load mine\" (x int); INSERT INTO staging_here.\"load mine\" VALUES (7)",
    );
    // The next run's sweep of leftover load tables leaves the user's alone.
    pair.snapcopy()
        .args(["--staging-schema", "staging_here", "items"])
        .assert()
        .success();
    assert_eq!(
        pair.target
            .psql("dev", "SELECT x FROM staging_here.\"load mine\""),
        "7"
    );
    pair.snapcopy()
        .args(["teardown", "--staging-schema", "staging_here"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the staging schema staging_here holds objects snapcopy did not make: table \
             staging_here.\"load mine\", table staging_here.my_notes",
        ));
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM pg_foreign_server WHERE srvname = 'staging_here_source'"
        ),
        "1"
    );
    pair.target.psql(
        "dev",
        "DROP TABLE staging_here.my_notes, staging_here.\"load mine\"",
    );
    pair.snapcopy()
        .args(["teardown", "--staging-schema", "staging_here"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "dropped the staging schema staging_here with its staging objects and registry",
        ));
}

// Regression: the registry knew tables by name only, so a table the user dropped and made
// again, with rows of their own, was reloaded and their rows were gone.
fn a_table_the_user_made_again_is_not_reloaded_or_dropped(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql("app", SHOP);
    pair.snapcopy().args(["items", "notes"]).assert().success();
    pair.target.psql(
        "dev",
        "DROP TABLE public.items; CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL); \
         INSERT INTO public.items VALUES (1, 'mine')",
    );
    pair.snapcopy()
        .args(["--mode", "full"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "public.items on the target is not the table snapcopy made: it was dropped and made \
             again there since the last copy",
        ))
        .stdout(predicate::str::contains("--replace-unmanaged"));
    assert_eq!(
        pair.target.psql("dev", "SELECT name FROM public.items"),
        "mine"
    );
    pair.snapcopy()
        .args(["teardown", "--drop-tables"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "kept table public.items: it is not the table snapcopy made",
        ))
        .stderr(predicate::str::contains("dropped table public.notes"));
    assert_eq!(
        pair.target.psql("dev", "SELECT name FROM public.items"),
        "mine"
    );
}

// Regression: `teardown --drop-tables` dropped the user's views and foreign keys that depended
// on managed tables, without a word.
fn teardown_drop_tables_refuses_to_drop_what_depends_on_them_unless_told(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql("app", SHOP);
    pair.snapcopy().args(["items", "notes"]).assert().success();
    pair.target.psql(
        "dev",
        "CREATE VIEW public.item_names AS SELECT name FROM public.items; \
         CREATE TABLE public.mine (note_id int REFERENCES public.notes); \
         INSERT INTO public.mine VALUES (1)",
    );
    let before = user_objects(&pair);
    pair.snapcopy()
        .args(["teardown", "--drop-tables"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "other objects on the target depend on the tables snapcopy made: constraint \
             mine_note_id_fkey on table mine (on public.notes), view item_names (on \
             public.items)",
        ))
        .stderr(predicate::str::contains("--cascade"));
    assert_eq!(user_objects(&pair), before);
    pair.snapcopy()
        .args(["teardown", "--drop-tables", "--cascade"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "dropped view item_names, which depended on it",
        ))
        .stderr(predicate::str::contains(
            "dropped constraint mine_note_id_fkey on table mine, which depended on it",
        ));
    // The user's table stays, without the foreign key to a table that is gone.
    assert_eq!(
        pair.target.psql("dev", "SELECT count(*) FROM public.mine"),
        "1"
    );
}

// Regression: the lock message suggested pg_terminate_backend(pid) on the run's session, after
// which that run's loading sessions went on while a second run could start loading too.
fn a_run_that_loses_its_lock_rolls_back_instead_of_loading_alongside_another(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql("app", SHOP);
    pair.snapcopy().arg("items").assert().success();
    let before = checksum(&pair.target, "dev", "public.items");
    pair.source
        .psql("app", "INSERT INTO public.items (name) VALUES ('new')");
    std::thread::scope(|s| {
        // A reader on the target holds the table for a while, so the reload waits in its unit.
        let reader = s.spawn(|| {
            pair.target.psql(
                "dev",
                "BEGIN; LOCK TABLE public.items IN ACCESS SHARE MODE; SELECT pg_sleep(4); COMMIT",
            )
        });
        let wait_for = |sql: &str| {
            while pair.target.psql("dev", sql) != "t" {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        };
        wait_for(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'items' AND l.mode = 'AccessShareLock' AND l.granted)",
        );
        let run = s.spawn(|| pair.snapcopy().arg("items").output().unwrap());
        wait_for(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name LIKE \
             'snapcopy run %' AND wait_event_type = 'Lock')",
        );
        // What the old hint said to do: end the session that holds the run's lock.
        pair.target.psql(
            "dev",
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted",
        );
        reader.join().unwrap();
        let out = run.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("the run lost its lock on the target"),
            "{stdout}"
        );
    });
    assert_eq!(checksum(&pair.target, "dev", "public.items"), before);
}

// Regression: when CREATE USER MAPPING failed on the target (an event trigger, here), the
// server logged the statement, password and all, in the error's context.
fn a_user_mapping_that_fails_keeps_the_password_out_of_the_server_log(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql("app", SHOP);
    pair.target.psql(
        "dev",
        "CREATE FUNCTION no_mappings() RETURNS event_trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'user mappings are not allowed here'; END $$; \
         CREATE EVENT TRIGGER no_mappings ON ddl_command_start \
         WHEN TAG IN ('CREATE USER MAPPING') EXECUTE FUNCTION no_mappings()",
    );
    let source = format!("{} password=Qx7zzKpw", pair.source.conninfo("app"));
    pair.snapcopy()
        .args(["--source", &source, "items"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "user mappings are not allowed here",
        ))
        .stderr(predicate::str::contains("Qx7zzKpw").not());
    let log = pair.target.log();
    assert!(log.contains("user mappings are not allowed here"), "{log}");
    assert!(!log.contains("Qx7zzKpw"), "{log}");
}

// Regression: the README said a statement sent through the link by hand could not write to the
// source; it can, when the source role may write. snapcopy now says so, and can refuse.
fn a_source_role_that_may_write_is_warned_about_or_refused(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql(
        "app",
        &format!(
            "{SHOP}; CREATE ROLE writer LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO writer; \
             GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO writer; \
             GRANT INSERT ON public.notes TO writer"
        ),
    );
    let writer = pair.source.conninfo_as("app", "writer");
    pair.snapcopy()
        .args(["--source", &writer, "public.*"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: the source role writer may write to 1 of the chosen tables (public.notes): \
             snapcopy's own sessions on the source are read-only, but anyone who can use the \
             link on the target could turn that off and write with it",
        ));
    // A superuser is warned about too; with the option (or its config key) the run is refused
    // before anything changes.
    pair.snapcopy()
        .args(["--require-read-only-role", "items"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the source role postgres is a superuser",
        ));
    std::fs::write(
        pair.home.path().join("snapcopy.toml"),
        "[source]\nrequire_read_only = true\n",
    )
    .unwrap();
    let before = pair.target.psql(
        "dev",
        "SELECT refreshed_at FROM snapcopy.managed_tables WHERE table_name = 'items'",
    );
    pair.snapcopy()
        .args(["--source", &writer, "items", "notes"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "may write to 1 of the chosen tables",
        ));
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT refreshed_at FROM snapcopy.managed_tables WHERE table_name = 'items'"
        ),
        before
    );
}

// Regression: -j had no upper bound: -j 10000 with a split took nearly all the target's
// connections and stalled.
#[test]
fn jobs_are_capped_at_the_connections_the_servers_have_free() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.big (id bigint PRIMARY KEY, pad text); \
         INSERT INTO public.big SELECT g, repeat('p', 200) FROM generate_series(1, 20000) g; ANALYZE",
    );
    let out = pair
        .snapcopy()
        .env("SNAPCOPY_SPLIT_MB", "1")
        .args(["-j", "10000", "big"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    // The test servers allow 40 connections, 3 of them reserved for superusers.
    let note = stderr
        .lines()
        .find(|l| l.starts_with("note: --jobs 10000 is more sessions than the servers have"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let used: usize = note.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((2..=35).contains(&used), "{note}");
    assert_eq!(
        checksum(&pair.target, "dev", "public.big"),
        checksum(&pair.source, "app", "public.big")
    );
}

// Regression: a staging schema name containing `$snapcopy$` broke the setup's DO block.
fn a_staging_schema_whose_name_holds_the_dollar_tag_works(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql("app", SHOP);
    for _ in 0..2 {
        pair.snapcopy()
            .args(["--staging-schema", "x$snapcopy$y", "items"])
            .assert()
            .success();
    }
    pair.snapcopy()
        .args(["teardown", "--staging-schema", "x$snapcopy$y"])
        .assert()
        .success();
}

// Regression: control characters and ANSI escapes from patterns and source names reached the
// terminal raw.
#[test]
fn control_characters_in_names_and_patterns_are_shown_escaped() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.\"red\u{1b}[31mtable\" (id int); INSERT INTO public.\"red\u{1b}[31mtable\" VALUES (1)",
    );
    let out = pair.snapcopy().arg("public.*").assert().success();
    let output = out.get_output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("public.\"red\\x1B[31mtable\""), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}') && !String::from_utf8_lossy(&output.stderr).contains('\u{1b}')
    );
    pair.snapcopy()
        .arg("public.\"x\u{1b}[2Jy\"")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("\\x1B[2J"))
        .stderr(predicate::str::contains("\u{1b}").not());
}

// Regression: teardown reported dropping a schema, server and mappings that did not exist.
#[test]
fn teardown_reports_only_what_it_dropped() {
    let pair = Pair::start();
    pair.snapcopy()
        .arg("teardown")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "nothing to drop: snapcopy has nothing set up in this database",
        ))
        .stderr(predicate::str::contains("dropped").not());
}

per_link!(
    a_role_with_only_select_on_the_source_is_enough,
    teardown_drops_what_snapcopy_set_up_and_only_its_own_tables,
    replace_unmanaged_takes_over_a_table_in_the_way,
    the_password_appears_nowhere,
    a_target_role_that_is_no_superuser_works_when_the_source_asks_for_a_password,
    against_a_source_that_trusts_dblinks_rule_is_explained_and_nothing_changes,
    teardown_and_setup_refuse_a_schema_snapcopy_did_not_make,
    a_table_the_user_made_again_is_not_reloaded_or_dropped,
    teardown_drop_tables_refuses_to_drop_what_depends_on_them_unless_told,
    a_run_that_loses_its_lock_rolls_back_instead_of_loading_alongside_another,
    a_user_mapping_that_fails_keeps_the_password_out_of_the_server_log,
    a_source_role_that_may_write_is_warned_about_or_refused,
    a_staging_schema_whose_name_holds_the_dollar_tag_works,
);
