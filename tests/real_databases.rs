//! What real databases contain that textbook schemas do not (issue 10): each test loads a
//! fixture that has it, copies, and compares definitions, sequences and rows with the source.

mod common;

use common::{assert_copied_exactly, source_tables, Pair};
use predicates::prelude::*;

/// The sequences of a schema with their options and which column owns each, one a line.
fn sequences_of(server: &common::PgServer, db: &str, schema: &str) -> String {
    server.psql(
        db,
        &format!(
            "SELECT string_agg(format('%s %s %s %s %s %s %s owned by %s', s.sequencename, \
             s.data_type, s.start_value, s.min_value, s.max_value, s.increment_by, s.cache_size, \
             coalesce((SELECT d.refobjid::regclass || '.' || a.attname FROM pg_depend d \
                       JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                       WHERE d.objid = format('%I.%I', s.schemaname, s.sequencename)::regclass \
                       AND d.deptype = 'a'), 'nobody')), E'\\n' ORDER BY s.sequencename) \
             FROM pg_sequences s WHERE s.schemaname = '{schema}'"
        ),
    )
}

/// The value the next `nextval` of a sequence gives, without drawing it.
fn next_value(server: &common::PgServer, db: &str, sequence: &str) -> i64 {
    server
        .psql(
            db,
            &format!(
                "SELECT CASE WHEN q.is_called THEN q.last_value + s.increment_by \
                 ELSE q.last_value END FROM {sequence} q, pg_sequences s \
                 WHERE format('%I.%I', s.schemaname, s.sequencename) = '{sequence}'"
            ),
        )
        .parse()
        .unwrap()
}

// Regression: `CREATE TABLE` failed with `relation "..._seq" does not exist` for sequences
// that no column owns, and `SELECT  FROM` broke the staging view of zero-column tables.
#[test]
fn free_standing_and_shared_sequences_and_tables_without_columns_copy() {
    let pair = Pair::start();
    pair.load_fixture("old_dump.sql");
    pair.snapcopy().arg("legacy.*").assert().success();
    let tables = source_tables(&pair, &["legacy"]);
    assert_eq!(tables.len(), 7);
    assert_copied_exactly(&pair, &tables);
    // Created with the source's options, and owned only where the source has OWNED BY.
    assert_eq!(
        sequences_of(&pair.target, "dev", "legacy"),
        sequences_of(&pair.source, "app", "legacy")
    );
    assert!(
        sequences_of(&pair.target, "dev", "legacy")
            .contains("tickets_id_seq integer 1 1 2147483647 1 1 owned by legacy.tickets.id"),
        "{}",
        sequences_of(&pair.target, "dev", "legacy")
    );
    // Never behind the copied data: the shared numbering goes above the hand-numbered credit
    // note, which its source position is not.
    assert!(next_value(&pair.source, "app", "legacy.document_no") < 99995);
    assert_eq!(
        next_value(&pair.target, "dev", "legacy.document_no"),
        100000
    );
    for (sequence, source_next) in [
        ("legacy.customers_id_seq", 31),
        ("legacy.tickets_id_seq", 26),
    ] {
        assert_eq!(next_value(&pair.source, "app", sequence), source_next);
        assert_eq!(next_value(&pair.target, "dev", sequence), source_next);
    }
    // The defaults work on the target: new rows take the next numbers.
    assert_eq!(
        pair.target.psql(
            "dev",
            "INSERT INTO legacy.credit_notes DEFAULT VALUES RETURNING no; \
             INSERT INTO legacy.heartbeat DEFAULT VALUES; SELECT count(*) FROM legacy.heartbeat"
        ),
        "100000\n8"
    );

    // A second full run and an incremental one keep it all, and never move a shared sequence
    // back (the insert above reserved CACHE 3 values of it on the target).
    let reserved = next_value(&pair.target, "dev", "legacy.document_no");
    assert!(reserved > 100005, "{reserved}");
    pair.source.psql(
        "app",
        "INSERT INTO legacy.invoices (customer_id, amount) VALUES (3, 9); \
         INSERT INTO legacy.heartbeat SELECT FROM generate_series(1, 2)",
    );
    pair.snapcopy().arg("legacy.*").assert().success();
    assert_copied_exactly(&pair, &tables);
    assert_eq!(
        next_value(&pair.target, "dev", "legacy.document_no"),
        reserved
    );
    pair.source
        .psql("app", "INSERT INTO legacy.customers (name) VALUES ('late')");
    pair.snapcopy()
        .args([
            "--mode",
            "incremental",
            "legacy.customers",
            "legacy.tickets",
        ])
        .assert()
        .success();
    assert_eq!(
        next_value(&pair.target, "dev", "legacy.customers_id_seq"),
        32
    );
}

// Regression: a glob such as 'public.*' took PostGIS's spatial_ref_sys as a table to create,
// which CREATE EXTENSION postgis had made on the target already.
#[test]
fn tables_of_extensions_are_left_to_them_and_their_user_rows_added() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE EXTENSION postgis; \
         INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text) \
         VALUES (910001, 'local', 1, 'LOCAL_CS[\"site grid\"]', ''); \
         CREATE TABLE public.sites (id integer PRIMARY KEY, at geometry(Point, 4326)); \
         INSERT INTO public.sites SELECT g, ST_SetSRID(ST_MakePoint(g, g), 4326) \
         FROM generate_series(1, 10) g",
    );
    let out = pair.snapcopy().arg("public.*").assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(
            "note: public.spatial_ref_sys belongs to the extension postgis, which creates it on \
             the target; the rows the extension marks as user data are added to it"
        ),
        "{stderr}"
    );
    assert_copied_exactly(&pair, &["public.sites"]);
    let srs =
        "SELECT count(*) || ' ' || count(*) FILTER (WHERE srid = 910001) FROM spatial_ref_sys";
    assert_eq!(pair.target.psql("dev", srs), pair.source.psql("app", srs));
    // Not snapcopy's table: not in its registry, and a second run adds nothing twice.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(table_name, ',') FROM snapcopy.managed_tables"
        ),
        "sites"
    );
    pair.snapcopy().arg("public.*").assert().success();
    assert_eq!(pair.target.psql("dev", srs), pair.source.psql("app", srs));

    // Named on its own, it is refused with the reason, and the rest of the run goes on.
    pair.snapcopy()
        .args(["public.spatial_ref_sys", "public.sites"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "public.spatial_ref_sys belongs to the extension postgis, which creates it on the \
             target (CREATE EXTENSION), so snapcopy does not copy it, as pg_dump does not; the \
             rows the extension marks as user data come along with a pattern that covers it, \
             such as 'public.*'",
        ));
}

/// One line per function of a schema: its full definition.
fn functions_of(server: &common::PgServer, db: &str, schema: &str, except: &str) -> String {
    server.psql(
        db,
        &format!(
            "SELECT string_agg(pg_get_functiondef(p.oid), '' ORDER BY p.proname) FROM pg_proc p \
             WHERE p.pronamespace = '{schema}'::regnamespace AND p.proname <> '{except}'"
        ),
    )
}

// Regression: a default calling uuid_generate_v4(), a gin_trgm_ops index, an exclusion
// constraint needing btree_gist, a collation of the schema's own and functions of checks,
// generated columns and indexes made the table (and its foreign-key group) fail.
#[test]
fn extensions_collations_and_functions_the_tables_need_are_created() {
    let pair = Pair::start();
    pair.load_fixture("needs.sql");
    // A function the target has already is left as it is, even when it differs.
    pair.target.psql(
        "dev",
        "CREATE SCHEMA util; CREATE FUNCTION util.is_positive(integer) RETURNS boolean \
         LANGUAGE sql IMMUTABLE RETURN $1 >= 1",
    );
    pair.snapcopy().arg("rooms.*").assert().success();
    assert_copied_exactly(&pair, &["rooms.bookings"]);
    assert_eq!(
        functions_of(&pair.target, "dev", "util", "is_positive"),
        functions_of(&pair.source, "app", "util", "is_positive")
    );
    assert!(
        functions_of(&pair.target, "dev", "util", "-").contains("RETURN ($1 >= 1)"),
        "the target's own is_positive stays"
    );
    let collations = "SELECT string_agg(format('%s %s %s %s', collname, collprovider, \
        colliculocale, collisdeterministic), ',' ORDER BY collname) FROM pg_collation \
        WHERE collnamespace = 'util'::regnamespace";
    assert_eq!(
        pair.target.psql("dev", collations),
        pair.source.psql("app", collations)
    );
    let extensions = "SELECT string_agg(extname || ' in ' || extnamespace::regnamespace, ', ' \
        ORDER BY extname) FROM pg_extension WHERE extname <> 'dblink'";
    assert_eq!(
        pair.target.psql("dev", extensions),
        "btree_gist in public, pg_trgm in public, plpgsql in pg_catalog, uuid-ossp in public"
    );
    // What they are for works on the target: the default, the exclusion, the domain's check.
    assert_eq!(
        pair.target.psql(
            "dev",
            "INSERT INTO rooms.bookings (room, during, title) \
             VALUES (9, '[2030-01-01, 2030-01-02)', 'New one') RETURNING length(id::text), slug"
        ),
        "36|new-one"
    );
    for refused in [
        "INSERT INTO rooms.bookings (room, during, title) VALUES (9, '[2030-01-01, 2030-01-03)', 'x')",
        "INSERT INTO rooms.bookings (room, during, title, seats) VALUES (8, '[2031-01-01, 2031-01-02)', 'x', 3)",
    ] {
        let out = pair.target.try_psql("dev", refused);
        assert!(!out.status.success(), "{refused} must be refused");
    }
    // A second run finds it all there.
    pair.snapcopy().arg("rooms.*").assert().success();
    assert_copied_exactly(&pair, &["rooms.bookings"]);
}

/// Every user trigger of a schema: its table, definition and state, one a line.
fn triggers_of(server: &common::PgServer, db: &str, schema: &str) -> String {
    server.psql(
        db,
        &format!(
            "SELECT string_agg(t.tgrelid::regclass || ': ' || pg_get_triggerdef(t.oid) || ' ' \
             || t.tgenabled::text, E'\\n' ORDER BY t.tgrelid::regclass::text, t.tgname) \
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             WHERE NOT t.tgisinternal AND c.relnamespace = '{schema}'::regnamespace"
        ),
    )
}

// Regression: triggers were not copied at all; now they are, and must never fire on loads.
#[test]
fn triggers_are_copied_in_their_state_and_never_fire_on_loads() {
    let pair = Pair::start();
    pair.load_fixture("triggers.sql");
    // The log the audit trigger writes to is the developer's own on the target: it stays
    // empty as long as snapcopy's loads fire nothing.
    pair.target.psql(
        "dev",
        "CREATE SCHEMA sales; CREATE TABLE sales.audit_log (id bigserial, tab text, op text)",
    );
    let log = "SELECT count(*) FROM sales.audit_log";
    let tables = ["sales.products", "sales.orders", "sales.orders_2024"];
    pair.snapcopy()
        .args(["sales.products", "sales.orders"])
        .assert()
        .success();
    assert_copied_exactly(&pair, &tables);
    assert_eq!(
        triggers_of(&pair.target, "dev", "sales"),
        triggers_of(&pair.source, "app", "sales")
    );
    assert!(triggers_of(&pair.target, "dev", "sales").contains("products_forbid"));
    assert_eq!(pair.target.psql("dev", log), "0");

    // A reload (truncate and insert), an incremental insert and a rebuild fire nothing
    // either, and leave every trigger in its state.
    pair.snapcopy()
        .args(["sales.products", "sales.orders"])
        .assert()
        .success();
    for sql in [
        "ALTER TABLE sales.products DISABLE TRIGGER products_stamp",
        "INSERT INTO sales.products VALUES (41, 'late', '2024-05-05 10:00+00')",
        "ALTER TABLE sales.products ENABLE TRIGGER products_stamp",
        "INSERT INTO sales.orders VALUES (31, '2024-06-01')",
    ] {
        pair.source.psql("app", sql);
    }
    pair.snapcopy()
        .args(["--mode", "incremental", "sales.products", "sales.orders"])
        .assert()
        .success();
    pair.snapcopy()
        .args(["--rebuild", "sales.products"])
        .assert()
        .success();
    assert_copied_exactly(&pair, &tables);
    assert_eq!(
        triggers_of(&pair.target, "dev", "sales"),
        triggers_of(&pair.source, "app", "sales")
    );
    assert_eq!(pair.target.psql("dev", log), "0");
    pair.snapcopy().arg("verify").assert().success();

    // They work on the developer's own writes.
    pair.target.psql(
        "dev",
        "UPDATE sales.products SET name = 'renamed' WHERE id = 1; \
         INSERT INTO sales.orders VALUES (99, '2024-07-01')",
    );
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(tab || ' ' || op, ',' ORDER BY id) FROM sales.audit_log"
        ),
        "products UPDATE,products UPDATE,orders_2024 INSERT"
    );
    assert_eq!(
        pair.target
            .psql("dev", "SELECT updated_at FROM sales.products WHERE id = 1"),
        "2000-01-01 00:00:00+00"
    );

    // --no-triggers leaves them (and the functions only they call) out; verify says so unless
    // told the same.
    pair.target.create_db("bare");
    pair.snapcopy()
        .args([
            "--no-triggers",
            "--target",
            &pair.target.conninfo("bare"),
            "sales.products",
        ])
        .assert()
        .success();
    assert_eq!(triggers_of(&pair.target, "bare", "sales"), "");
    assert_eq!(
        pair.target.psql(
            "bare",
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'sales'::regnamespace"
        ),
        "0"
    );
    pair.snapcopy()
        .args([
            "verify",
            "--no-triggers",
            "--target",
            &pair.target.conninfo("bare"),
        ])
        .assert()
        .success();
    pair.snapcopy()
        .args(["verify", "--target", &pair.target.conninfo("bare")])
        .assert()
        .code(1)
        .stdout(predicates::str::contains(
            "trigger products_audit missing on the target",
        ));
}

/// Inheritance as a user would check it: each child's parents in order.
fn inheritance_of(server: &common::PgServer, db: &str) -> String {
    server.psql(
        db,
        "SELECT string_agg(inhrelid::regclass || ' <- ' || inhparent::regclass || ' #' || inhseqno, \
         ', ' ORDER BY inhrelid::regclass::text, inhseqno) FROM pg_inherits",
    )
}

// Regression: children became tables of their own, so counting a parent's rows on the target
// gave fewer than on the source.
#[test]
fn inheritance_is_kept_when_parents_and_children_are_copied_together() {
    let pair = Pair::start();
    pair.load_fixture("inheritance.sql");
    let tables = source_tables(&pair, &["zoo"]);
    assert_eq!(tables.len(), 6);
    pair.snapcopy().arg("zoo.*").assert().success();
    assert_copied_exactly(&pair, &tables);
    assert_eq!(
        inheritance_of(&pair.target, "dev"),
        inheritance_of(&pair.source, "app")
    );
    let counts =
        "SELECT (SELECT count(*) FROM zoo.animals) || ' ' || (SELECT count(*) FROM zoo.birds) \
        || ' ' || (SELECT count(*) FROM zoo.tagged)";
    assert_eq!(
        pair.target.psql("dev", counts),
        pair.source.psql("app", counts)
    );
    assert_eq!(pair.target.psql("dev", counts), "11 4 4");
    pair.snapcopy().arg("verify").assert().success();
    // The inherited default the child changed works, and so does the shared sequence.
    assert_eq!(
        pair.target.psql(
            "dev",
            "INSERT INTO zoo.birds (name) VALUES ('owl') RETURNING id, born"
        ),
        "10|2000-01-01"
    );

    // Reloading the parent alone leaves its children's rows (TRUNCATE ONLY).
    pair.target
        .psql("dev", "DELETE FROM zoo.birds WHERE name = 'owl'");
    pair.snapcopy().arg("zoo.animals").assert().success();
    assert_eq!(
        pair.target.psql("dev", counts),
        pair.source.psql("app", counts)
    );

    // A child only the target has is detached, not dropped, when its parent is made anew.
    pair.target.psql(
        "dev",
        "CREATE TABLE zoo.cats (lives integer) INHERITS (zoo.animals); \
         INSERT INTO zoo.cats (id, name, lives) VALUES (500, 'tom', 9)",
    );
    pair.snapcopy()
        .args(["--rebuild", "zoo.*"])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "zoo.cats inherits from zoo.animals on the target and is not part of this run: it \
             is detached (NO INHERIT) before zoo.animals is rebuilt, and keeps its rows",
        ));
    assert_copied_exactly(&pair, &tables);
    assert_eq!(
        inheritance_of(&pair.target, "dev"),
        inheritance_of(&pair.source, "app")
    );
    assert_eq!(pair.target.psql("dev", "SELECT name FROM zoo.cats"), "tom");

    // A child copied without its parent is a table of its own, with all its columns.
    pair.target.create_db("alone");
    let alone = pair.target.conninfo("alone");
    pair.snapcopy()
        .args(["--target", &alone, "zoo.dogs"])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "note: zoo.dogs inherits from zoo.animals, which this run does not copy; it is \
             copied as a table of its own with all its columns",
        ));
    assert_eq!(
        pair.target.psql("alone", "SELECT count(*) FROM zoo.dogs"),
        "2"
    );
    assert_eq!(
        pair.target
            .psql("alone", "SELECT count(*) FROM pg_inherits"),
        "0"
    );
    pair.snapcopy()
        .args(["verify", "--target", &alone, "zoo.dogs"])
        .assert()
        .success();
}

// Regression: `snapcopy --mode full public.customers` failed on TRUNCATE when managed tables
// had foreign keys to it, and warned about a foreign key that stays on the target.
#[test]
fn a_full_refresh_of_a_referenced_table_brings_the_managed_tables_that_reference_it() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.customers (id integer PRIMARY KEY, name text); \
         CREATE TABLE public.orders (id integer PRIMARY KEY, \
             customer_id integer NOT NULL REFERENCES public.customers); \
         CREATE TABLE public.order_lines (order_id integer REFERENCES public.orders, qty integer); \
         CREATE TABLE public.notes (id integer PRIMARY KEY, body text); \
         INSERT INTO public.customers SELECT g, 'c' || g FROM generate_series(1, 10) g; \
         INSERT INTO public.orders SELECT g, 1 + g % 10 FROM generate_series(1, 30) g; \
         INSERT INTO public.order_lines SELECT 1 + g % 30, g FROM generate_series(1, 60) g; \
         INSERT INTO public.notes VALUES (1, 'n')",
    );
    let all = [
        "public.customers",
        "public.notes",
        "public.order_lines",
        "public.orders",
    ];
    pair.snapcopy().arg("public.*").assert().success();
    pair.source.psql(
        "app",
        "UPDATE public.customers SET name = 'renamed' WHERE id = 3; \
         INSERT INTO public.customers VALUES (11, 'new'); \
         INSERT INTO public.orders VALUES (31, 11); INSERT INTO public.order_lines VALUES (31, 5)",
    );
    let out = pair
        .snapcopy()
        .args(["--mode", "full", "public.customers"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("came along: it has a foreign key to public.customers, which is reloaded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("came along: it has a foreign key to public.orders, which is reloaded"),
        "{stdout}"
    );
    assert!(!stdout.contains("public.notes"), "{stdout}");
    assert_copied_exactly(&pair, &all);

    // The foreign key of a table reloaded alone stays on the target: nothing to warn about.
    pair.source
        .psql("app", "INSERT INTO public.order_lines VALUES (1, 99)");
    let out = pair
        .snapcopy()
        .args(["--mode", "full", "public.order_lines"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(!stderr.contains("is skipped"), "{stderr}");
    assert_copied_exactly(&pair, &all);
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'public.order_lines'::regclass"
        ),
        "1"
    );

    // Incremental mode inserts into the one table and touches no other.
    pair.source
        .psql("app", "INSERT INTO public.customers VALUES (12, 'newer')");
    pair.snapcopy()
        .args(["--mode", "incremental", "public.customers"])
        .assert()
        .success()
        .stdout(predicates::str::contains("public.orders").not());
    assert_copied_exactly(&pair, &["public.customers"]);
}

// Regression: one table that could not be made on the target failed its whole foreign-key
// group ("not changed: ..., which foreign keys tie to it, failed").
#[test]
fn a_failure_stays_with_its_table_and_the_rest_of_its_group_loads() {
    let pair = Pair::start();
    pair.load_fixture("one_group.sql");
    pair.target.psql(
        "dev",
        "CREATE SCHEMA shop; \
         CREATE FUNCTION shop.twice(integer) RETURNS integer IMMUTABLE LANGUAGE sql \
         AS 'SELECT $1 / 0'; \
         CREATE DOMAIN shop.amount AS integer CHECK (VALUE >= 0)",
    );
    let reader = pair.source.conninfo_as("app", "reader");
    // Everything but the table outside the run, read as the reader, large tables split.
    let copy = || {
        let mut cmd = pair.snapcopy();
        cmd.env("SNAPCOPY_SPLIT_MB", "1").args([
            "--source",
            &reader,
            "--jobs",
            "2",
            "shop.*",
            "--exclude",
            "shop.other",
        ]);
        cmd
    };
    let out = copy().output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for expected in [
        "shop.a_checked needs the function shop.others(), which could not be made on the \
         target: relation \"shop.other\" does not exist",
        "error: shop.b_indexed (building its keys and indexes): division by zero",
        "error: shop.c_secret",
        "permission denied for table c_secret on the source: the source role reader may not \
         read it; grant it SELECT there",
        "error: shop.f_big",
        "violates check constraint",
        "warning: foreign key d_orders_a_id_fkey of shop.d_orders is skipped: it references \
         shop.a_checked, which is not copied (its error says why)",
        "warning: foreign key d_orders_b_id_fkey of shop.d_orders is skipped: it references \
         shop.b_indexed, which was not copied",
        "warning: foreign key d_orders_c_id_fkey of shop.d_orders is skipped: it references \
         shop.c_secret, which was not copied",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    // The rest of the group is there, exactly, with the foreign keys between its own tables.
    for table in ["shop.d_orders", "shop.e_lines"] {
        assert_eq!(
            common::checksum(&pair.target, "dev", table),
            common::checksum(&pair.source, "app", table)
        );
    }
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint \
             WHERE contype = 'f' AND connamespace = 'shop'::regnamespace"
        ),
        "e_lines_order_id_fkey"
    );
    // Nothing half-made of the others: no table, no load table, no registry row.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM pg_class WHERE relname IN \
             ('a_checked', 'b_indexed', 'c_secret', 'f_big') OR relname LIKE 'load %'"
        ),
        "0"
    );
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM snapcopy.managed_tables"
        ),
        "d_orders,e_lines"
    );

    // Once what failed is fixed, the next run copies the rest and the foreign keys come back.
    pair.source.psql(
        "app",
        "GRANT SELECT ON shop.c_secret TO reader; UPDATE shop.f_big SET a = 1; \
         ALTER TABLE shop.a_checked DROP CONSTRAINT a_checked_n_check",
    );
    pair.target.psql("dev", "DROP FUNCTION shop.twice(integer)");
    copy().assert().success();
    let all: Vec<String> = source_tables(&pair, &["shop"])
        .into_iter()
        .filter(|t| t != "shop.other")
        .collect();
    assert_copied_exactly(&pair, &all);
}

// The measure of done: a whole database of several schemas, with everything above,
// copies in one run, verify agrees, and a second run is clean.
#[test]
fn a_whole_database_of_several_schemas_copies_in_one_run_and_again_cleanly() {
    let pair = Pair::start();
    for fixture in [
        "kinds.sql",
        "partitions.sql",
        "old_dump.sql",
        "needs.sql",
        "triggers.sql",
        "inheritance.sql",
    ] {
        pair.load_fixture(fixture);
    }
    pair.source.psql(
        "app",
        "CREATE EXTENSION postgis; \
         INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text) \
         VALUES (910002, 'local', 2, 'LOCAL_CS[\"plant\"]', ''); \
         CREATE TABLE zoo.enclosures (id integer PRIMARY KEY, area geometry(Polygon, 4326), \
             keeper_id integer REFERENCES legacy.customers); \
         INSERT INTO zoo.enclosures VALUES (1, ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))', 4326), 1)",
    );
    let schemas = ["public", "legacy", "util", "rooms", "sales", "zoo"];
    let tables: Vec<String> = source_tables(&pair, &schemas)
        .into_iter()
        .filter(|t| t != "public.spatial_ref_sys")
        .collect();
    let sequences = "SELECT string_agg(format('%s.%s %s %s %s %s %s', schemaname, sequencename, \
        data_type, start_value, min_value, max_value, increment_by), ',' \
        ORDER BY schemaname, sequencename) FROM pg_sequences";
    let srs = "SELECT count(*) FROM spatial_ref_sys";

    for run in ["first", "second"] {
        let out = pair.snapcopy().arg("*.*").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{run} run:\n{stderr}");
        // Nothing to warn about but the test's source role, a superuser.
        assert!(
            !stderr
                .lines()
                .any(|l| l.starts_with("warning") && !l.contains("the source role postgres")),
            "{run} run:\n{stderr}"
        );
        assert_copied_exactly(&pair, &tables);
        for schema in ["util", "sales"] {
            assert_eq!(
                functions_of(&pair.target, "dev", schema, "-"),
                functions_of(&pair.source, "app", schema, "-")
            );
        }
        for schema in schemas {
            assert_eq!(
                triggers_of(&pair.target, "dev", schema),
                triggers_of(&pair.source, "app", schema)
            );
        }
        assert_eq!(
            inheritance_of(&pair.target, "dev"),
            inheritance_of(&pair.source, "app")
        );
        assert_eq!(
            pair.target.psql("dev", sequences),
            pair.source.psql("app", sequences)
        );
        assert_eq!(pair.target.psql("dev", srs), pair.source.psql("app", srs));
        let verify = pair.snapcopy().arg("verify").output().unwrap();
        let report = String::from_utf8_lossy(&verify.stdout).into_owned();
        assert!(verify.status.success(), "{run} run:\n{report}");
        // One line per managed table (a partitioned table with its partitions), each same.
        assert_eq!(
            report
                .lines()
                .filter(|l| l.contains(" same "))
                .count()
                .to_string(),
            pair.target
                .psql("dev", "SELECT count(*) FROM snapcopy.managed_tables"),
            "{report}"
        );
    }
}
