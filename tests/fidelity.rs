//! Real-world schemas copy exactly: partitions, inheritance, types, constraints, columns, odd
//! names, odd values and extension types, each checked by definitions, rows and checksums, and
//! by `snapcopy verify`.

mod common;

use common::{assert_copied_exactly, checksum, source_tables, Link, Pair};
use predicates::prelude::*;

fn assert_verify_same(pair: &Pair, args: &[&str]) {
    let out = pair.snapcopy().arg("verify").args(args).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(!stdout.contains("DIFFERS"), "{stdout}");
    assert!(stdout.contains("same"), "{stdout}");
}

fn types_constraints_columns_and_values_copy_exactly_across_differently_configured_servers(
    link: Link,
) {
    let pair = Pair::start_with(
        &[
            "timezone = 'America/New_York'",
            "datestyle = 'German, DMY'",
            "intervalstyle = 'iso_8601'",
            "extra_float_digits = 0",
        ],
        &[
            "timezone = 'Asia/Kolkata'",
            "datestyle = 'SQL, MDY'",
            "intervalstyle = 'sql_standard'",
        ],
    )
    .with_link(link);
    pair.load_fixture("real_world.sql");
    let mut all = source_tables(&pair, &["app"]);
    if link == Link::PostgresFdw {
        // postgres_fdw cannot read a parent without its children's rows: the inheritance pair
        // is refused, with the way out, and the rest loads.
        pair.snapcopy()
            .arg("app.animals")
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                "app.animals has inheritance children on the source, and postgres_fdw reads a \
                 table together with its children's rows: copy it with --link dblink",
            ));
        all.retain(|t| t != "app.animals" && t != "app.dogs");
        pair.snapcopy()
            .args(["app.*", "--exclude", "app.animals", "--exclude", "app.dogs"])
            .assert()
            .success();
    } else {
        pair.snapcopy().arg("app.*").assert().success();
    }
    assert_copied_exactly(&pair, &all);
    assert_verify_same(&pair, &[]);
    // Sequence options (the custom identity's START, INCREMENT, CYCLE, CACHE) and positions.
    let sequences = "SELECT string_agg(format('%s.%s %s %s %s %s %s %s %s %s', schemaname, sequencename, \
        data_type, start_value, min_value, max_value, increment_by, cycle, cache_size, last_value), ',' \
        ORDER BY schemaname, sequencename) FROM pg_sequences";
    assert_eq!(
        pair.target.psql("dev", sequences),
        pair.source.psql("app", sequences)
    );

    // Enum labels keep their sort order, not their oid order.
    assert_eq!(
        pair.target
            .psql("dev", "SELECT enum_range(NULL::types.status)::text"),
        "{new,working,done}"
    );
    // NOT VALID constraints stay NOT VALID; the deferrable key stays deferrable.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(conname || '=' || convalidated || '/' || condeferred, ',' ORDER BY conname) \
             FROM pg_constraint WHERE conname IN ('accounts_qty_check', 'transfers_account_nv', 'transfers_account_fk')"
        ),
        "accounts_qty_check=false/false,transfers_account_fk=true/true,transfers_account_nv=false/false"
    );
    // Inheritance is kept: the parent holds its own rows, and with its child's, as many as on
    // the source.
    let inheritance = if link == Link::Dblink {
        vec![
            "SELECT count(*) FROM ONLY app.animals",
            "SELECT count(*) FROM app.animals",
            "SELECT string_agg(inhrelid::regclass || ' ' || inhparent::regclass, ',') FROM pg_inherits",
        ]
    } else {
        Vec::new()
    };
    for count in &inheritance {
        assert_eq!(
            pair.target.psql("dev", count),
            pair.source.psql("app", count)
        );
    }
    if link == Link::Dblink {
        assert_eq!(
            pair.target.psql("dev", "SELECT count(*) FROM app.animals"),
            "4"
        );
    }
    // 50 MB of bytea arrived whole.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT length(payload) || ' ' || md5(payload) FROM app.big_bytes"
        ),
        pair.source.psql(
            "app",
            "SELECT length(payload) || ' ' || md5(payload) FROM app.big_bytes"
        )
    );

    // A second run (the foreign-key cycle and NOT VALID keys reloaded) stays exact.
    pair.source.psql(
        "app",
        "INSERT INTO app.players VALUES (51, 3); UPDATE app.teams SET captain_id = 51 WHERE id = 3",
    );
    // Every managed table.
    pair.snapcopy().assert().success();
    assert_copied_exactly(&pair, &all);
    assert_verify_same(&pair, &[]);
}

fn verify_reports_each_kind_of_difference_and_exits_1(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql(
        "app",
        "CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t SELECT g, 'v' FROM generate_series(1, 10) g; \
         CREATE TABLE public.u (id int PRIMARY KEY); INSERT INTO public.u VALUES (1)",
    );
    pair.snapcopy().args(["t", "u"]).assert().success();
    assert_verify_same(&pair, &["t", "u"]);
    pair.target.psql(
        "dev",
        "UPDATE public.t SET v = 'changed' WHERE id = 3; CREATE INDEX t_v_idx ON public.t (v); \
         INSERT INTO public.u VALUES (2); \
         ALTER TABLE public.u ALTER COLUMN id SET DEFAULT 0, DROP CONSTRAINT u_pkey",
    );
    pair.snapcopy().args(["verify"]).assert().code(1).stdout(
        predicate::str::contains(
            "public.t  DIFFERS  index t_v_idx only on the target; row contents differ",
        )
        .and(predicate::str::contains(
            "public.u  DIFFERS  column id differs (source: integer NOT NULL; target: integer \
             DEFAULT 0 NOT NULL); constraint u_pkey missing on the target; 1 rows on the source, \
             2 on the target",
        )),
    );
    // -q: only what differs.
    pair.target.psql("dev", "DROP INDEX public.t_v_idx");
    pair.target.psql("dev", "UPDATE public.t SET v = 'v'");
    let quiet = pair.snapcopy().args(["verify", "-q"]).assert().code(1);
    let text = String::from_utf8_lossy(&quiet.get_output().stdout).to_string();
    assert!(text.contains("public.u  DIFFERS"), "{text}");
    assert!(!text.contains("public.t"), "{text}");
}

fn a_partitioned_table_is_copied_as_a_tree_and_a_lone_partition_as_a_table(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.load_fixture("partitions.sql");
    pair.snapcopy()
        .arg("measurements")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "public.measurements is partitioned; its 5 partitions are copied with it",
        ))
        .stdout(predicate::str::contains("900"));
    let tree = source_tables(&pair, &["public"]);
    assert_eq!(tree.len(), 6);
    assert_copied_exactly(&pair, &tree);
    let layout =
        "SELECT string_agg(format('%s<%s %s', c.relid, coalesce(c.parentrelid::text, '-'), \
        coalesce(pg_get_expr(k.relpartbound, k.oid), 'root')), ', ' ORDER BY c.relid::text) \
        FROM pg_partition_tree('public.measurements') c JOIN pg_class k ON k.oid = c.relid";
    assert_eq!(
        pair.target.psql("dev", layout),
        pair.source.psql("app", layout)
    );
    // Each row sits in the same partition on both sides.
    let routed = "SELECT string_agg(tableoid::regclass || ':' || count, ',' ORDER BY tableoid::regclass::text) \
        FROM (SELECT tableoid, count(*) FROM public.measurements GROUP BY tableoid) s";
    assert_eq!(
        pair.target.psql("dev", routed),
        pair.source.psql("app", routed)
    );
    // The parent's index exists once on the parent, and once per leaf as on the source.
    let indexes = "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'measurements%region%'";
    assert_eq!(
        pair.target.psql("dev", indexes),
        pair.source.psql("app", indexes)
    );
    assert_verify_same(&pair, &[]);

    // Incremental through the root: the composite key is compared, new rows are routed.
    pair.source.psql(
        "app",
        "INSERT INTO public.measurements (at, region, value) VALUES ('2024-03-01', 'eu', 7), ('2025-03-01', 'us', 8)",
    );
    pair.snapcopy()
        .args(["--mode", "incremental"])
        .assert()
        .success()
        .stdout(predicate::str::contains(match link {
            Link::Dblink => "rows written since the last run",
            Link::PostgresFdw => "all keys compared",
        }));
    assert_eq!(
        pair.target.psql("dev", routed),
        pair.source.psql("app", routed)
    );
    assert_copied_exactly(&pair, &["public.measurements"]);

    // A refresh reloads the tree; a new partition on the source rebuilds it.
    pair.source.psql(
        "app",
        "CREATE TABLE public.measurements_2030 PARTITION OF public.measurements FOR VALUES FROM ('2030-01-01') TO ('2031-01-01'); \
         INSERT INTO public.measurements (at, region, value) VALUES ('2030-05-01', 'eu', 1)",
    );
    pair.snapcopy()
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "partition public.measurements_2030 added",
        ));
    assert_copied_exactly(&pair, &source_tables(&pair, &["public"]));

    // One partition alone becomes a plain table, and snapcopy says so.
    pair.target.create_db("other");
    pair.snapcopy()
        .args([
            "--target",
            &pair.target.conninfo("other"),
            "measurements_2025",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "public.measurements_2025 is a partition; it is copied as a plain table",
        ));
    assert_eq!(
        checksum(&pair.target, "other", "public.measurements_2025"),
        checksum(&pair.source, "app", "public.measurements_2025")
    );
    assert_eq!(
        pair.target.psql("other", "SELECT relkind::text || relispartition::text FROM pg_class WHERE oid = 'public.measurements_2025'::regclass"),
        "rfalse"
    );
}

fn odd_names_are_always_quoted_and_never_run(link: Link) {
    let pair = Pair::start().with_link(link);
    let long = "x".repeat(63);
    pair.source.psql(
        "app",
        &format!(
            r#"CREATE SCHEMA "Odd Schema; --";
            CREATE TYPE "Odd Schema; --"."Mood'""$" AS ENUM ('a''b', 'c"d', 'e\f');
            CREATE TABLE "Odd Schema; --"."Order ""Items""; DROP TABLE public.victim; --" (
                "Id $1" serial PRIMARY KEY,
                "naïve 列 \ ' ""q""" text CONSTRAINT "check; DROP TABLE public.victim" CHECK ("naïve 列 \ ' ""q""" <> 'x'),
                "MixedCase" "Odd Schema; --"."Mood'""$",
                "--comment" int
            );
            CREATE INDEX "idx'); DROP TABLE public.victim; --" ON "Odd Schema; --"."Order ""Items""; DROP TABLE public.victim; --" ("MixedCase");
            INSERT INTO "Odd Schema; --"."Order ""Items""; DROP TABLE public.victim; --" ("naïve 列 \ ' ""q""", "MixedCase", "--comment")
                VALUES ('val''ue', 'a''b', 1), ('🎉', 'e\f', NULL);
            CREATE TABLE public."{long}" (id int PRIMARY KEY);
            CREATE SCHEMA "{long}";
            CREATE TABLE "{long}"."{long}" (id int PRIMARY KEY);
            INSERT INTO "{long}"."{long}" VALUES (1);"#
        ),
    );
    pair.target.psql(
        "dev",
        "CREATE TABLE public.victim (id int); INSERT INTO public.victim VALUES (1)",
    );
    pair.snapcopy()
        .args(["\"Odd Schema; --\".*", "public.*", &format!("\"{long}\".*")])
        .assert()
        .success();
    assert_eq!(
        pair.target
            .psql("dev", "SELECT count(*) FROM public.victim"),
        "1",
        "no statement hidden in a name ran"
    );
    let all = source_tables(&pair, &["Odd Schema; --", &long]);
    assert_eq!(all.len(), 2);
    assert_copied_exactly(&pair, &all);
    assert_copied_exactly(&pair, &[format!("public.\"{long}\"")]);
    // The two 63-byte names got distinct staging objects of at most 63 bytes.
    let staging = pair.target.psql(
        "dev",
        "SELECT count(DISTINCT relname) || ' ' || max(octet_length(relname)) FROM pg_class \
         WHERE relnamespace = 'snapcopy'::regnamespace AND relkind = 'v'",
    );
    assert_eq!(staging, "3 63");
    assert_verify_same(&pair, &[]);
}

fn extension_types_come_with_their_extension(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql(
        "app",
        "CREATE EXTENSION citext; CREATE EXTENSION hstore; CREATE EXTENSION postgis; \
         CREATE TYPE public.kind AS ENUM ('shop', 'park'); \
         CREATE TABLE public.places ( \
             id integer PRIMARY KEY, \
             name citext NOT NULL UNIQUE, \
             aliases citext[], \
             kinds public.kind[], \
             tags hstore, \
             geom geometry(Point, 4326), \
             area geography(Polygon, 4326) \
         ); \
         CREATE INDEX places_geom_idx ON public.places USING GIST (geom); \
         CREATE INDEX places_tags_idx ON public.places USING gin (tags); \
         INSERT INTO public.places \
         SELECT g, 'Place ' || g, ARRAY['P' || g, 'p' || g]::citext[], ARRAY['shop', 'park']::public.kind[], \
                hstore('k', g::text), ST_SetSRID(ST_MakePoint(g / 10.0, g / 20.0), 4326), \
                ST_GeogFromText('SRID=4326;POLYGON((0 0, 0 1, 1 1, 1 0, 0 0))') \
         FROM generate_series(1, 200) g",
    );
    pair.snapcopy().arg("places").assert().success();
    assert_copied_exactly(&pair, &["public.places".to_string()]);
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension WHERE extname IN ('citext', 'hstore', 'postgis')"
        ),
        "citext,hstore,postgis"
    );
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT ST_AsText(geom) FROM public.places WHERE id = 15"
        ),
        "POINT(1.5 0.75)"
    );
    assert_verify_same(&pair, &[]);
}

// The table that needs an extension the target role may not create is refused alone, named
// with why; the others load.
fn an_extension_the_target_role_may_not_create_refuses_only_the_tables_that_need_it(link: Link) {
    let pair = Pair::start().with_link(link);
    pair.source.psql(
        "app",
        "CREATE EXTENSION postgis; CREATE TABLE public.spots (id int PRIMARY KEY, geom geometry); \
         CREATE TABLE public.notes (id int PRIMARY KEY, body text); \
         INSERT INTO public.notes VALUES (1, 'kept'); \
         CREATE ROLE reader LOGIN PASSWORD 'reader-pw'; \
         GRANT SELECT ON public.spots, public.notes TO reader",
    );
    pair.source
        .prepend_hba("host all reader 127.0.0.1/32 scram-sha-256");
    let source = format!(
        "host=127.0.0.1 port={} dbname=app user=reader password=reader-pw",
        pair.source.port
    );
    // The developer's role owns the database and has the link, but is no superuser: PostGIS
    // is not a trusted extension.
    pair.target.psql(
        "dev",
        &format!(
            "CREATE ROLE dev LOGIN; ALTER DATABASE dev OWNER TO dev; CREATE EXTENSION {}; \
             GRANT USAGE ON FOREIGN DATA WRAPPER {} TO dev",
            link.as_str(),
            link.wrapper()
        ),
    );
    pair.snapcopy()
        .args([
            "--source",
            &source,
            "--target",
            &pair.target.conninfo_as("dev", "dev"),
            "spots",
            "notes",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "public.spots needs the extension postgis, which could not be made on the target: \
             the target role may not create it",
        ));
    assert_eq!(
        pair.target
            .psql("dev", "SELECT to_regclass('public.spots') IS NULL"),
        "t"
    );
    assert_eq!(
        pair.target.psql("dev", "SELECT body FROM public.notes"),
        "kept"
    );
}

per_link!(
    types_constraints_columns_and_values_copy_exactly_across_differently_configured_servers,
    verify_reports_each_kind_of_difference_and_exits_1,
    a_partitioned_table_is_copied_as_a_tree_and_a_lone_partition_as_a_table,
    odd_names_are_always_quoted_and_never_run,
    extension_types_come_with_their_extension,
    an_extension_the_target_role_may_not_create_refuses_only_the_tables_that_need_it,
);
