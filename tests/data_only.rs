//! `--data-only`: production rows into the tables a migration tool made on the target, whose
//! definitions (columns, keys, identity, triggers, oids) stay the user's.

mod common;

use common::{definition, summary_row, Pair};
use predicates::prelude::*;

/// Production: accounts with a column the dev schema dropped, users with a manager (a key to
/// themselves) whose managers come after them, orders, and teams and members that reference
/// each other.
const PRODUCTION: &str = "
    CREATE TABLE public.accounts (
        id serial PRIMARY KEY,
        name text NOT NULL,
        region text,
        legacy_code text,
        created_at timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00'
    );
    CREATE TABLE public.users (
        id integer PRIMARY KEY,
        account_id integer NOT NULL REFERENCES public.accounts,
        email text NOT NULL UNIQUE,
        manager_id integer REFERENCES public.users,
        bio text
    );
    CREATE TABLE public.orders (
        id bigserial PRIMARY KEY,
        user_id integer NOT NULL REFERENCES public.users,
        amount numeric(10,2) NOT NULL
    );
    CREATE TABLE public.teams (id integer PRIMARY KEY, name text NOT NULL, lead_id integer);
    CREATE TABLE public.members (id integer PRIMARY KEY, team_id integer NOT NULL REFERENCES public.teams);
    ALTER TABLE public.teams ADD FOREIGN KEY (lead_id) REFERENCES public.members;
    CREATE TABLE public.not_migrated (id integer PRIMARY KEY, note text);
    CREATE TABLE public.prefs (id integer PRIMARY KEY, settings jsonb);

    INSERT INTO public.accounts (name, region, legacy_code)
    SELECT 'account ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'eu-' || g % 5 END, 'L' || g
    FROM generate_series(1, 200) g;
    -- Each user's manager is the next one: a child comes before its parent in any scan.
    INSERT INTO public.users (id, account_id, email, manager_id, bio)
    SELECT g, 1 + g % 200, 'user' || g || '@example.com', NULLIF(g + 1, 30001),
           repeat('about me ', 10)
    FROM generate_series(1, 30000) g
    ORDER BY g;
    INSERT INTO public.orders (user_id, amount)
    SELECT 1 + g % 30000, (g % 1000) / 10.0 FROM generate_series(1, 5000) g;
    INSERT INTO public.teams (id, name) SELECT g, 'team ' || g FROM generate_series(1, 20) g;
    INSERT INTO public.members (id, team_id) SELECT g, 1 + g % 20 FROM generate_series(1, 100) g;
    UPDATE public.teams SET lead_id = id * 5;
    INSERT INTO public.not_migrated VALUES (1, 'left for later');
    INSERT INTO public.prefs VALUES (1, '{\"theme\": \"dark\"}');
    ANALYZE;
";

/// The dev schema as a migration tool made it: an extra column with a default, a column
/// dropped, a key widened to bigint, an identity column, a generated column, a trigger that
/// must not fire on the load, and every foreign key not deferrable (but the orders one).
const MIGRATIONS: &str = "
    CREATE TABLE public.accounts (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        region text,
        plan text NOT NULL DEFAULT 'free',
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE public.users (
        id integer PRIMARY KEY,
        account_id bigint NOT NULL REFERENCES public.accounts,
        email text NOT NULL UNIQUE,
        email_domain text GENERATED ALWAYS AS (split_part(email, '@', 2)) STORED,
        manager_id integer REFERENCES public.users,
        bio text
    );
    CREATE INDEX users_account_idx ON public.users (account_id);
    CREATE TABLE public.orders (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id integer NOT NULL REFERENCES public.users DEFERRABLE,
        amount numeric(10,2) NOT NULL
    );
    CREATE TABLE public.teams (id integer PRIMARY KEY, name text NOT NULL, lead_id integer);
    CREATE TABLE public.members (id integer PRIMARY KEY, team_id integer NOT NULL REFERENCES public.teams);
    ALTER TABLE public.teams ADD FOREIGN KEY (lead_id) REFERENCES public.members;
    CREATE TABLE public.prefs (id integer PRIMARY KEY, settings integer);
    CREATE TABLE public.audit_log (at timestamptz DEFAULT now(), what text);
    CREATE FUNCTION public.log_user() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN INSERT INTO public.audit_log (what) VALUES ('user ' || NEW.id); RETURN NEW; END $$;
    CREATE TRIGGER users_audit AFTER INSERT ON public.users
        FOR EACH ROW EXECUTE FUNCTION public.log_user();
    GRANT SELECT ON public.users TO PUBLIC;
";

const TABLES: [&str; 5] = [
    "public.accounts",
    "public.users",
    "public.orders",
    "public.teams",
    "public.members",
];

/// The rows of the columns both sides have, with the output pinned.
fn shared_rows(pair: &Pair, on_source: bool, table: &str) -> String {
    let columns = match table {
        "public.accounts" => "id, name, region",
        "public.users" => "id, account_id, email, manager_id, bio",
        "public.orders" => "id, user_id, amount",
        "public.teams" => "id, name, lead_id",
        _ => "id, team_id",
    };
    let sql = format!(
        "SELECT count(*) || ' ' || md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) \
         FROM (SELECT {columns} FROM {table}) r"
    );
    if on_source {
        pair.source.psql("app", &sql)
    } else {
        pair.target.psql("dev", &sql)
    }
}

fn oids(pair: &Pair) -> String {
    pair.target.psql(
        "dev",
        "SELECT string_agg(oid::text, ',' ORDER BY relname) FROM pg_class \
         WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
    )
}

fn definitions(pair: &Pair) -> Vec<String> {
    TABLES
        .iter()
        .map(|t| definition(&pair.target, "dev", t))
        .collect()
}

fn assert_rows_equal(pair: &Pair) {
    for table in TABLES {
        assert_eq!(
            shared_rows(pair, false, table),
            shared_rows(pair, true, table),
            "rows of {table}"
        );
    }
}

#[test]
fn data_only_loads_into_the_migrated_schema_and_leaves_it_as_it_was() {
    let pair = Pair::start();
    pair.source.psql("app", PRODUCTION);
    pair.target.psql("dev", MIGRATIONS);
    let before = definitions(&pair);
    let oids_before = oids(&pair);

    // Small batches: users is loaded in one statement all the same, since its key to itself
    // cannot wait and its managers come after their reports.
    pair.snapcopy()
        .env("SNAPCOPY_BATCH_MB", "1")
        .args(["--data-only"])
        .args(TABLES)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "public.accounts.legacy_code is not on the target",
        ));
    assert_rows_equal(&pair);
    assert_eq!(definitions(&pair), before, "definitions changed");
    assert_eq!(oids(&pair), oids_before, "a table was made anew");
    // The target's own column took its default; its generated column computed itself.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(DISTINCT plan, ',') || ' ' || \
             (SELECT count(*) FROM public.users WHERE email_domain = 'example.com') FROM public.accounts"
        ),
        "free 30000"
    );
    // The trigger did not fire on the load, and is on again.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT (SELECT count(*) FROM public.audit_log) || ' ' || tgenabled::text \
             FROM pg_trigger WHERE tgname = 'users_audit'"
        ),
        "0 O"
    );
    // Sequences are ahead of the rows: the next local insert does not collide.
    let next = pair.target.psql(
        "dev",
        "BEGIN; \
         INSERT INTO public.accounts (name) VALUES ('local') RETURNING id; \
         INSERT INTO public.orders (user_id, amount) VALUES (1, 1) RETURNING id; \
         ROLLBACK",
    );
    assert_eq!(next.lines().collect::<Vec<_>>(), ["201", "5001"]);
    // The registry says whose the tables are; status shows it.
    pair.snapcopy()
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("full data only"));

    // New production rows: an incremental run (the registry remembers the mode) brings them,
    // a new cycle of team and lead included.
    pair.source.psql(
        "app",
        "INSERT INTO public.accounts (name, region) VALUES ('new account', 'us-1'); \
         INSERT INTO public.users VALUES (30001, 201, 'new@example.com', NULL, NULL); \
         INSERT INTO public.orders (user_id, amount) VALUES (30001, 5); \
         BEGIN; \
         INSERT INTO public.teams VALUES (21, 'team 21', NULL); \
         INSERT INTO public.members VALUES (101, 21); \
         UPDATE public.teams SET lead_id = 101 WHERE id = 21; \
         COMMIT;",
    );
    let assert = pair
        .snapcopy()
        .args(["--mode", "incremental", "--json"])
        .assert()
        .success();
    // Only the new rows travelled: the first load recorded each key's high-water mark.
    let users = summary_row(&assert.get_output().stdout, "public.users");
    assert_eq!(users["action"], "insert", "{users}");
    assert_eq!(users["rows"], 1, "{users}");
    assert_eq!(users["skipped"], 0, "{users}");
    assert_rows_equal(&pair);
    assert_eq!(definitions(&pair), before);
    assert_eq!(oids(&pair), oids_before);
    assert_eq!(
        pair.target
            .psql("dev", "SELECT count(*) FROM public.audit_log"),
        "0"
    );

    // A full reload of everything, again without --data-only: the same rows, the same tables.
    pair.target.psql(
        "dev",
        "UPDATE public.accounts SET name = 'edited locally' WHERE id = 1",
    );
    pair.snapcopy().assert().success();
    assert_rows_equal(&pair);
    assert_eq!(oids(&pair), oids_before);

    // teardown --drop-tables never drops the user's tables.
    pair.snapcopy()
        .args(["teardown", "--drop-tables"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "kept the 5 tables loaded with --data-only",
        ));
    assert_eq!(oids(&pair), oids_before);
}

#[test]
fn data_only_refuses_what_it_cannot_load_and_names_it() {
    let pair = Pair::start();
    pair.source.psql("app", PRODUCTION);
    pair.target.psql("dev", MIGRATIONS);

    // A table the migrations did not make.
    pair.snapcopy()
        .args(["--data-only", "public.not_migrated"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "public.not_migrated does not exist on the target",
        ))
        .stderr(predicate::str::contains("--create-missing"));
    // A column whose types have no assignment cast: both types named.
    pair.snapcopy()
        .args(["--data-only", "public.prefs"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "public.prefs.settings is jsonb on the source and integer on the target",
        ));
    // A full load would empty a table that tables outside the run reference.
    pair.snapcopy()
        .args(["--data-only", "public.accounts"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "public.accounts is referenced on the target by public.users",
        ));
    assert_eq!(
        pair.target
            .psql("dev", "SELECT count(*) FROM public.accounts"),
        "0"
    );
    // --create-missing makes the missing one as snapcopy would, with its rows.
    pair.snapcopy()
        .args(["--data-only", "--create-missing", "public.not_migrated"])
        .assert()
        .success();
    assert_eq!(
        definition(&pair.target, "dev", "public.not_migrated"),
        definition(&pair.source, "app", "public.not_migrated")
    );
    // Masks apply to the user's tables as to snapcopy's, computed on the source.
    pair.snapcopy()
        .env("SNAPCOPY_MASK_KEY", "a-key-for-tests-0123456789")
        .args(["--data-only", "--mask", "public.users.bio=null"])
        .args(["--mask", "public.users.email=email"])
        .args(TABLES)
        .assert()
        .success();
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(bio) || ' ' || count(*) FILTER (WHERE email LIKE 'user%') || ' ' || \
             count(DISTINCT email) || ' ' || (SELECT count(*) FROM public.orders) FROM public.users"
        ),
        "0 0 30000 5000"
    );
    // Options that would remake the user's tables do not go with it.
    pair.snapcopy()
        .args(["--data-only", "--rebuild", "public.users"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--data-only never drops"));
}
