//! What real databases contain that textbook schemas do not (issue 10): each test loads a
//! fixture that has it, copies, and compares definitions, sequences and rows with the source.

mod common;

use common::{assert_copied_exactly, Pair};

/// Every ordinary and partitioned table in a schema, as `schema.table` SQL names.
fn tables_of(pair: &Pair, schema: &str) -> Vec<String> {
    pair.source
        .psql(
            "app",
            &format!(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND n.nspname = '{schema}' ORDER BY 1"
            ),
        )
        .lines()
        .map(str::to_string)
        .collect()
}

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
    let tables = tables_of(&pair, "legacy");
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
