//! What differs between the links, tested on postgres_fdw where dblink's tests say nothing:
//! conditions shipped to the source (read in `EXPLAIN VERBOSE`'s remote SQL), and a managed
//! table moving from one link to the other without being rebuilt.

mod common;

use common::{checksum, Link, Pair};
use predicates::prelude::*;

const BIG: &str = "CREATE TABLE public.big (id bigint PRIMARY KEY, pad text); \
    INSERT INTO public.big SELECT g, repeat('p', 300) FROM generate_series(1, 20000) g; ANALYZE";

/// The remote SQL postgres_fdw would send for `sql`, run on the target.
fn remote_sql(pair: &Pair, sql: &str) -> String {
    pair.target
        .psql("dev", &format!("EXPLAIN VERBOSE {sql}"))
        .lines()
        .filter(|l| l.contains("Remote SQL:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn postgres_fdw_ships_the_incremental_key_and_a_split_range_to_the_source() {
    let pair = Pair::start().with_link(Link::PostgresFdw);
    pair.source.psql("app", BIG);
    // A first copy, split in two ranges (each range a session, its condition shipped).
    pair.snapcopy()
        .env("SNAPCOPY_SPLIT_MB", "1")
        .args(["-j", "2", "big"])
        .assert()
        .success()
        .stdout(predicate::str::contains("loaded in 2 ranges of id at once"));
    assert_eq!(
        checksum(&pair.target, "dev", "public.big"),
        checksum(&pair.source, "app", "public.big")
    );
    let plan = pair
        .snapcopy()
        .env("SNAPCOPY_SPLIT_MB", "1")
        .args(["plan", "-j", "2", "--rebuild", "big"])
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    let range = plan
        .lines()
        .find(|l| l.starts_with("INSERT INTO \"snapcopy\".\"load ") && l.contains(" WHERE "))
        .unwrap_or_else(|| panic!("{plan}"));
    let read = range[range.find("FROM (SELECT").unwrap()..].trim_end_matches(';');
    assert!(
        remote_sql(&pair, &format!("SELECT * {read}"))
            .contains("Remote SQL: SELECT id, pad FROM public.big WHERE ((id < 10001))"),
        "{range}"
    );

    // Incremental: only the rows above the last copy's max travel.
    pair.source.psql(
        "app",
        "INSERT INTO public.big SELECT g, 'new' FROM generate_series(20001, 20010) g",
    );
    let plan = pair
        .snapcopy()
        .args(["plan", "--mode", "incremental", "big"])
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    let insert = plan
        .lines()
        .find(|l| l.starts_with("WITH src AS MATERIALIZED"))
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(
        remote_sql(&pair, insert.trim_end_matches(';'))
            .contains("Remote SQL: SELECT id, pad FROM public.big WHERE ((id > 20000::bigint))"),
        "{insert}"
    );
    pair.snapcopy()
        .args(["--mode", "incremental", "big"])
        .assert()
        .success()
        .stdout(predicate::str::contains("id > last copy's max"));
    assert_eq!(
        checksum(&pair.target, "dev", "public.big"),
        checksum(&pair.source, "app", "public.big")
    );
}

// A table snapcopy manages moves between links with a reload: its staging object is made anew,
// the table (and whatever the target built on it) stays.
#[test]
fn switching_the_link_remakes_the_staging_object_and_keeps_the_table() {
    let pair = Pair::start();
    pair.source.psql("app", BIG);
    pair.snapcopy()
        .args(["--staging", "matview", "big"])
        .assert()
        .success();
    let oid = || {
        pair.target
            .psql("dev", "SELECT 'public.big'::regclass::oid")
    };
    let table = oid();
    pair.target.psql(
        "dev",
        "CREATE VIEW public.big_ids AS SELECT id FROM public.big",
    );
    let link_of = || {
        pair.target.psql(
            "dev",
            "SELECT link FROM snapcopy.managed_tables WHERE table_name = 'big'",
        )
    };
    assert_eq!(link_of(), "dblink");
    for (link, wrapper) in [
        (Link::PostgresFdw, "postgres_fdw"),
        (Link::Dblink, "dblink_fdw"),
    ] {
        pair.source.psql(
            "app",
            "INSERT INTO public.big SELECT max(id) + 1, 'more' FROM public.big",
        );
        pair.snapcopy()
            .args(["--staging", "matview", "--link", link.as_str(), "big"])
            .assert()
            .success()
            .stdout(predicate::str::contains("reloaded"))
            .stdout(predicate::str::contains(format!(
                "read through {}",
                link.as_str()
            )));
        assert_eq!(oid(), table, "the table was not made anew");
        assert_eq!(link_of(), link.as_str());
        assert_eq!(
            pair.target.psql(
                "dev",
                "SELECT fdwname FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw"
            ),
            wrapper
        );
        assert_eq!(
            checksum(&pair.target, "dev", "public.big"),
            checksum(&pair.source, "app", "public.big")
        );
        assert_eq!(
            checksum(&pair.target, "dev", "snapcopy.\"public.big\""),
            checksum(&pair.source, "app", "public.big")
        );
        pair.snapcopy()
            .args(["status"])
            .env("COLUMNS", "200")
            .assert()
            .success()
            .stdout(predicate::str::contains(link.as_str()));
    }
    assert_eq!(
        pair.target
            .psql("dev", "SELECT count(*) FROM public.big_ids"),
        pair.source.psql("app", "SELECT count(*) FROM public.big")
    );
}
