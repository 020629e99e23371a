//! Dev data that is safe: masks computed on the source, so that no raw value of a masked
//! column reaches the target; keyed and deterministic, so that joined columns stay joined,
//! unique ones unique, and a re-run masks the same way; `snapcopy audit` for what has no rule.

mod common;

use common::{definition, summary_row, Link, Pair};
use predicates::prelude::*;

const KEY: &str = "a-key-for-tests-0123456789";

/// People with personal data, orders that reference them by email (a masked key), and notes
/// with a jsonb column whose keys say what is inside.
const PEOPLE: &str = "
    CREATE TABLE public.users (
        id serial PRIMARY KEY,
        email text NOT NULL UNIQUE,
        full_name text,
        phone text,
        ssn varchar(11) UNIQUE,
        notes text,
        plan text NOT NULL DEFAULT 'free'
    );
    CREATE TABLE public.orders (
        id serial PRIMARY KEY,
        user_email text NOT NULL REFERENCES public.users (email),
        amount integer NOT NULL
    );
    CREATE TABLE public.events (id serial PRIMARY KEY, data jsonb);
    INSERT INTO public.users (email, full_name, phone, ssn, notes)
    SELECT 'person' || g || '@corp.example', 'Real Person ' || g, '+33 6 ' || lpad(g::text, 8, '0'),
           substr(lpad(g::text, 9, '0'), 1, 3) || '-' || substr(lpad(g::text, 9, '0'), 4, 2) || '-' ||
           substr(lpad(g::text, 9, '0'), 6, 4),
           'private note number ' || g
    FROM generate_series(1, 500) g;
    INSERT INTO public.orders (user_email, amount)
    SELECT 'person' || (1 + g % 500) || '@corp.example', g FROM generate_series(1, 1500) g;
    INSERT INTO public.events (data) SELECT jsonb_build_object('kind', 'login', 'ip_address', '10.0.0.' || g % 250)
    FROM generate_series(1, 50) g;
";

const MASKS: &str = "
[table.\"public.users\".mask]
email = \"email\"
full_name = \"name\"
phone = \"phone\"
ssn = \"digits\"
notes = \"null\"
";

fn start() -> Pair {
    let pair = Pair::start_with(&[], &["log_statement = 'all'"]);
    pair.source.psql("app", PEOPLE);
    pair
}

/// Writes the config and a key file readable by its owner only.
fn configure(pair: &Pair, key: &str) {
    let key_file = pair.home.path().join("mask.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        pair.home.path().join("snapcopy.toml"),
        format!("[mask]\nkey_file = \"mask.key\"\n{MASKS}"),
    )
    .unwrap();
}

/// Every value of the masked columns on the source, one a line.
fn raw_values(pair: &Pair) -> Vec<String> {
    pair.source
        .psql(
            "app",
            "SELECT v FROM public.users, LATERAL (VALUES (email), (full_name), (phone), (ssn), (notes)) x(v)",
        )
        .lines()
        .map(str::to_string)
        .collect()
}

fn pg_dump(pair: &Pair) -> String {
    let out = std::process::Command::new(common::pg_bin().join("pg_dump"))
        .arg("-h")
        .arg(pair.target.socket_dir())
        .args(["-p", &pair.target.port.to_string(), "-U", "postgres", "dev"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn masked_values_never_reach_the_target_and_stay_joined_unique_and_the_same_on_a_rerun() {
    let pair = start();
    configure(&pair, KEY);
    pair.snapcopy()
        .args(["--staging", "matview", "public.*"])
        .assert()
        .success();
    // The tables are defined as on the source, the foreign key holds (made VALID).
    for table in ["public.users", "public.orders", "public.events"] {
        assert_eq!(
            definition(&pair.target, "dev", table),
            definition(&pair.source, "app", table)
        );
    }
    // Unmasked columns are the source's; masked ones all differ, look right, stay unique.
    assert_eq!(
        pair.target.psql("dev", "SELECT count(*) || ' ' || sum(id) || ' ' || string_agg(DISTINCT plan, ',') FROM public.users"),
        pair.source.psql("app", "SELECT count(*) || ' ' || sum(id) || ' ' || string_agg(DISTINCT plan, ',') FROM public.users")
    );
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FILTER (WHERE email LIKE 'u%@example.com') || ' ' || count(DISTINCT email) || ' ' || \
             count(DISTINCT ssn) || ' ' || count(*) FILTER (WHERE ssn ~ '^[0-9]{3}-[0-9]{2}-[0-9]{4}$') || ' ' || \
             count(*) FILTER (WHERE phone ~ '^\\+[0-9]{2} [0-9] [0-9]{8}$') || ' ' || count(notes) FROM public.users"
        ),
        "500 500 500 500 500 0"
    );
    let dump = pg_dump(&pair);
    for raw in raw_values(&pair) {
        assert!(
            !dump.contains(&raw),
            "a raw value reached the target: {raw}"
        );
    }
    assert!(!dump.contains(KEY), "the key is in the target's dump");
    assert!(
        !pair.target.log().contains(KEY),
        "the key is in the target's statement log"
    );
    // The same input masks the same way wherever it appears: every order still finds its user.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM public.orders o JOIN public.users u ON u.email = o.user_email"
        ),
        "1500"
    );
    // A staging object refreshed by hand, without snapcopy's key, fails instead of reading raw
    // values.
    let refresh = pair
        .target
        .try_psql("dev", "REFRESH MATERIALIZED VIEW snapcopy.\"public.users\"");
    assert!(!refresh.status.success());
    assert!(String::from_utf8_lossy(&refresh.stderr).contains("snapcopy.mask_key"));

    // A re-run with the same key masks the same way; verify agrees.
    let masked = "SELECT md5(string_agg(email || full_name || phone || ssn, ',' ORDER BY id)) FROM public.users";
    let first = pair.target.psql("dev", masked);
    pair.snapcopy().args(["public.*"]).assert().success();
    assert_eq!(pair.target.psql("dev", masked), first);
    pair.snapcopy().arg("verify").assert().success();
    // New rows come masked in incremental mode too.
    pair.source.psql(
        "app",
        "INSERT INTO public.users (email, full_name) VALUES ('newcomer@corp.example', 'New Comer')",
    );
    pair.snapcopy()
        .args(["--mode", "incremental", "public.users"])
        .assert()
        .success();
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) FROM public.users WHERE email LIKE 'newcomer%' OR full_name = 'New Comer'"
        ),
        "0"
    );
    assert_eq!(
        pair.target.psql("dev", "SELECT count(*) FROM public.users"),
        "501"
    );
    // Another key, other values.
    configure(&pair, "another-key-for-tests-98765");
    pair.snapcopy().args(["public.*"]).assert().success();
    assert_ne!(pair.target.psql("dev", masked), first);
}

#[test]
fn masks_need_a_key_a_link_that_computes_them_and_columns_they_fit() {
    let pair = Pair::start();
    pair.source.psql("app", PEOPLE);
    let before = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace";
    let untouched = pair.target.psql("dev", before);
    pair.snapcopy()
        .args(["--mask", "users.email=email", "users"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "masks are configured, but no key: set SNAPCOPY_MASK_KEY",
        ));
    pair.snapcopy()
        .env("SNAPCOPY_MASK_KEY", "short")
        .args(["--mask", "users.email=email", "users"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("use a secret of at least 16"));
    pair.snapcopy()
        .env("SNAPCOPY_MASK_KEY", KEY)
        .args([
            "--link",
            "postgres_fdw",
            "--mask",
            "users.email=email",
            "users",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "masks are computed on the source, which postgres_fdw cannot do",
        ));
    for (mask, says) in [
        (
            "users.plan=null",
            "mask null on public.users.plan, which is NOT NULL",
        ),
        (
            "users.ssn=value:x",
            "gives every row of public.users.ssn the same value, but public.users.ssn is unique",
        ),
        (
            "users.id=email",
            "mask email makes text, but public.users.id is integer",
        ),
        ("users.nope=hash", "public.users has no column nope"),
        ("users.email=nonsense", "unknown mask rule \"nonsense\""),
        (
            "orders.user_email=hash",
            "are joined by foreign keys, so they must be masked alike",
        ),
    ] {
        let mut cmd = pair.snapcopy();
        cmd.env("SNAPCOPY_MASK_KEY", KEY).args([
            "--mask",
            mask,
            "--mask",
            "users.email=email",
            "users",
            "orders",
        ]);
        cmd.assert().code(2).stderr(predicate::str::contains(says));
    }
    // A key file others can read is refused.
    let key_file = pair.home.path().join("open.key");
    std::fs::write(&key_file, KEY).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        pair.home.path().join("snapcopy.toml"),
        "[mask]\nkey_file = \"open.key\"\n[table.\"public.users\".mask]\nemail = \"email\"\n",
    )
    .unwrap();
    pair.snapcopy()
        .arg("users")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is readable by other users: chmod 600 it",
        ));
    assert_eq!(pair.target.psql("dev", before), untouched);
}

#[test]
fn audit_names_sensitive_columns_without_a_rule_and_strict_masks_refuses_to_copy() {
    let pair = Pair::start().with_link(Link::Dblink);
    pair.source.psql("app", PEOPLE);
    pair.snapcopy()
        .args(["audit", "public.*"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::is_match(
                r"(?m)^public\.users\.email +looks like email \(its name\), no mask rule$",
            )
            .unwrap(),
        )
        .stdout(predicate::str::contains("public.users.ssn"))
        .stdout(predicate::str::contains("public.orders.user_email"))
        .stdout(predicate::str::contains(
            "looks like IP address (a key of its values)",
        ))
        .stdout(predicate::str::contains("public.users.plan").not());
    std::fs::write(
        pair.home.path().join("snapcopy.toml"),
        format!("strict_masks = true\n{MASKS}"),
    )
    .unwrap();
    pair.snapcopy()
        .env("SNAPCOPY_MASK_KEY", KEY)
        .arg("public.*")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "strict_masks is set and these columns look sensitive without a mask rule: \
             public.events.data->'ip_address' (IP address)",
        ));
    assert_eq!(
        pair.target
            .psql("dev", "SELECT to_regclass('public.users') IS NULL"),
        "t"
    );
    // With a rule for the rest (keep for what is not sensitive), audit is clean and the copy
    // goes.
    std::fs::write(
        pair.home.path().join("snapcopy.toml"),
        format!("strict_masks = true\n{MASKS}\n[table.\"public.events\".mask]\ndata = \"keep\"\n"),
    )
    .unwrap();
    pair.snapcopy()
        .env("SNAPCOPY_MASK_KEY", KEY)
        .args(["audit", "public.*"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "no column of the 3 tables looks sensitive without a mask rule",
        ));
    pair.snapcopy()
        .env("SNAPCOPY_MASK_KEY", KEY)
        .arg("public.*")
        .assert()
        .success();
}

/// Several levels of foreign keys (order_items -> orders -> customers -> countries, orders ->
/// products), a self-reference (customers.referrer_id) and a two-table cycle (teams <->
/// players, players -> customers).
const SHOP: &str = "
    CREATE TABLE public.countries (code text PRIMARY KEY, name text);
    CREATE TABLE public.customers (
        id int PRIMARY KEY, country text REFERENCES public.countries,
        referrer_id int REFERENCES public.customers (id), name text);
    CREATE TABLE public.products (id int PRIMARY KEY, active boolean NOT NULL);
    CREATE TABLE public.orders (
        id int PRIMARY KEY, customer_id int NOT NULL REFERENCES public.customers,
        product_id int REFERENCES public.products);
    CREATE TABLE public.order_items (order_id int REFERENCES public.orders, line int, PRIMARY KEY (order_id, line));
    CREATE TABLE public.teams (id int PRIMARY KEY, captain_id int);
    CREATE TABLE public.players (
        id int PRIMARY KEY, team_id int REFERENCES public.teams, customer_id int REFERENCES public.customers);
    ALTER TABLE public.teams ADD FOREIGN KEY (captain_id) REFERENCES public.players DEFERRABLE INITIALLY DEFERRED;
    INSERT INTO public.countries VALUES ('FR', 'France'), ('DE', 'Germany'), ('US', 'USA');
    INSERT INTO public.products SELECT g, g % 3 <> 0 FROM generate_series(1, 50) g;
    INSERT INTO public.customers
    SELECT g, (ARRAY['FR', 'DE', 'US'])[1 + g % 3], CASE WHEN g > 1 THEN g - 1 END, 'c' || g
    FROM generate_series(1, 300) g;
    INSERT INTO public.orders SELECT g, 1 + g % 300, 1 + g % 50 FROM generate_series(1, 3000) g;
    INSERT INTO public.order_items SELECT o, l FROM generate_series(1, 3000) o, generate_series(1, 2) l;
    BEGIN;
    INSERT INTO public.teams SELECT g, g * 10 FROM generate_series(1, 10) g;
    INSERT INTO public.players SELECT g, 1 + g % 10, 1 + g % 300 FROM generate_series(1, 100) g;
    COMMIT;
    ANALYZE;
";

/// What the subset is, computed on the source by plain SQL: the filtered customers and active
/// products, their orders and items, the players of those customers and every captain, then
/// every customer those reference, with their referrers, all the way up.
const EXPECTED: &str = "
    WITH RECURSIVE
    own AS (SELECT id FROM public.customers WHERE country = 'FR' AND id < 100),
    orders_kept AS (SELECT id, customer_id FROM public.orders
                    WHERE customer_id IN (SELECT id FROM own)
                      AND product_id IN (SELECT id FROM public.products WHERE active)),
    players_kept AS (SELECT id, customer_id FROM public.players
                     WHERE customer_id IN (SELECT id FROM own)
                        OR id IN (SELECT captain_id FROM public.teams)),
    customers_kept AS (
        SELECT id FROM own
        UNION SELECT customer_id FROM orders_kept
        UNION SELECT customer_id FROM players_kept
        UNION SELECT c.referrer_id FROM public.customers c JOIN customers_kept k ON c.id = k.id
              WHERE c.referrer_id IS NOT NULL)
    SELECT (SELECT count(*) FROM customers_kept) || ' ' || (SELECT count(*) FROM orders_kept) || ' ' ||
           (SELECT count(*) FROM public.order_items WHERE order_id IN (SELECT id FROM orders_kept)) || ' ' ||
           (SELECT count(*) FROM players_kept) || ' ' ||
           (SELECT count(*) FROM public.products WHERE active)
";

const COUNTS: &str = "SELECT (SELECT count(*) FROM public.customers) || ' ' || (SELECT count(*) FROM public.orders) \
    || ' ' || (SELECT count(*) FROM public.order_items) || ' ' || (SELECT count(*) FROM public.players) \
    || ' ' || (SELECT count(*) FROM public.products)";

#[test]
fn a_subset_follows_foreign_keys_down_and_up_and_every_key_holds() {
    let pair = Pair::start();
    pair.source.psql("app", SHOP);
    let wheres = [
        "--where",
        "customers=country = 'FR' AND id < 100",
        "--where",
        "public.products=active",
    ];
    pair.snapcopy()
        .args(wheres)
        .arg("public.*")
        .assert()
        .success()
        .stdout(predicate::str::contains("a subset (--where)"));
    let expected = pair.source.psql("app", EXPECTED);
    assert_eq!(expected, "101 170 340 40 34", "the oracle itself");
    assert_eq!(pair.target.psql("dev", COUNTS), expected);
    // Tables no filter reaches are whole; definitions are the source's; every key is VALID.
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT (SELECT count(*) FROM public.countries) || ' ' || (SELECT count(*) FROM public.teams)"
        ),
        "3 10"
    );
    for table in [
        "public.customers",
        "public.orders",
        "public.order_items",
        "public.players",
        "public.teams",
    ] {
        assert_eq!(
            definition(&pair.target, "dev", table),
            definition(&pair.source, "app", table)
        );
    }
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) || ' ' || count(*) FILTER (WHERE convalidated) FROM pg_constraint WHERE contype = 'f'"
        ),
        "8 8"
    );
    pair.snapcopy()
        .arg("verify")
        .args(wheres)
        .assert()
        .success();
    // The plan shows each table's query, as the source runs it.
    pair.snapcopy()
        .arg("plan")
        .args(wheres)
        .arg("public.*")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "WITH RECURSIVE keep(tbl, rel, tid)",
        ));

    // Incremental: a new order of a kept customer comes, with the new product it references;
    // one of a customer outside the subset does not.
    pair.source.psql(
        "app",
        "INSERT INTO public.products VALUES (51, true); \
         INSERT INTO public.orders VALUES (3001, 3, 51), (3002, 200, 51)",
    );
    pair.snapcopy()
        .args(wheres)
        .args(["--mode", "incremental"])
        .assert()
        .success();
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM public.orders WHERE id > 3000"
        ),
        "3001"
    );
    assert_eq!(
        pair.target
            .psql("dev", "SELECT count(*) FROM public.products WHERE id = 51"),
        "1"
    );
}

/// A masked table whose key does not grow: incremental mode reads the rows written since the
/// last run, and they come masked too.
#[test]
fn rows_written_since_the_last_run_come_masked() {
    let pair = Pair::start();
    pair.source.psql(
        "app",
        "CREATE TABLE public.contacts (id uuid PRIMARY KEY, email text NOT NULL);
         INSERT INTO public.contacts SELECT md5(g::text)::uuid, 'contact' || g || '@corp.example'
         FROM generate_series(1, 100) g;",
    );
    let run = |mode: &str| {
        let out = pair
            .snapcopy()
            .env("SNAPCOPY_MASK_KEY", KEY)
            .args(["--mask", "contacts.email=email", "--mode", mode, "--json"])
            .arg("public.contacts")
            .assert()
            .success();
        out.get_output().stdout.clone()
    };
    run("full");
    pair.source.psql(
        "app",
        "INSERT INTO public.contacts VALUES ('00000000-0000-0000-0000-00000000000a', 'newcomer@corp.example')",
    );
    let out = run("incremental");
    let row = summary_row(&out, "public.contacts");
    assert_eq!(row["note"], "rows written since the last run", "{row}");
    assert_eq!(row["rows"], 1, "{row}");
    assert_eq!(
        pair.target.psql(
            "dev",
            "SELECT count(*) || ' ' || count(*) FILTER (WHERE email LIKE '%@corp.example') \
             FROM public.contacts"
        ),
        "101 0"
    );
}
