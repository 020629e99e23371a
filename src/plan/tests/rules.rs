//! The rules that pick what happens to each table, and whole-plan snapshots of the order of
//! the statements.

use super::*;
use crate::plan::unit::BUILDS_FROM;

#[test]
fn first_copy_with_views() {
    let plan = plan(
        &fixture(),
        &TargetState::default(),
        &options(StagingKind::View),
    );
    insta::assert_snapshot!(order(&plan));
}

#[test]
fn second_run_reloads_parents_first_and_replaces_staging_objects() {
    let catalog = fixture();
    let plan = plan(&catalog, &copied(&catalog), &options(StagingKind::View));
    insta::assert_snapshot!(order(&plan));
}

#[test]
fn matviews_of_unchanged_tables_are_refreshed_not_recreated() {
    let catalog = fixture();
    let plan = plan(&catalog, &copied(&catalog), &options(StagingKind::Matview));
    let text = plan.to_string();
    assert!(text.contains("REFRESH MATERIALIZED VIEW CONCURRENTLY \"snapcopy\".\"public.orders\""));
    assert!(
        text.contains("REFRESH MATERIALIZED VIEW \"snapcopy\".\"public.audit\""),
        "{text}"
    );
    assert!(!text.contains("CREATE MATERIALIZED VIEW"), "{text}");
}

#[test]
fn a_changed_source_table_is_rebuilt_and_the_change_named() {
    let mut catalog = fixture();
    let state = copied(&catalog);
    catalog.tables[1].columns.push(column("note", "text"));
    catalog.tables[1].columns[0].type_sql = "bigint".into();
    let plan = plan(&catalog, &state, &options(StagingKind::View));
    let unit = unit_of(&plan, "public.customers");
    assert_eq!(unit.tables[0].action, Action::Rebuild);
    assert_eq!(
        unit.tables[0].changes,
        [
            "column id changed (integer DEFAULT nextval('public.customers_id_seq'::regclass) \
             NOT NULL -> bigint DEFAULT nextval('public.customers_id_seq'::regclass) NOT NULL)",
            "column note added (text)"
        ]
    );
    let text = plan.to_string();
    assert!(
        text.contains("DROP TABLE IF EXISTS \"public\".\"customers\" CASCADE;"),
        "{text}"
    );
    assert!(
        text.contains("TRUNCATE ONLY \"public\".\"orders\";"),
        "{text}"
    );
    // orders' foreign key went with the CASCADE and comes back.
    assert!(
        text.contains("ADD CONSTRAINT \"orders_customer_id_fkey\""),
        "{text}"
    );
}

#[test]
fn incremental_pushes_the_key_predicate_into_the_remote_query() {
    let catalog = fixture();
    let mut opts = options(StagingKind::View);
    opts.mode = Mode::Incremental;
    let plan = plan(&catalog, &copied(&catalog), &opts);
    insta::assert_snapshot!(order(&plan));
}

#[test]
fn incremental_refuses_drift_and_keyless_tables_with_the_way_out() {
    let mut catalog = fixture();
    let state = copied(&catalog);
    catalog.tables[2].indexes.pop();
    let mut opts = options(StagingKind::View);
    opts.mode = Mode::Incremental;
    let plan = plan(&catalog, &state, &opts);
    let reasons: Vec<&str> = plan.refused.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].starts_with("public.audit has no primary key"),
        "{}",
        reasons[0]
    );
    assert!(reasons[0].contains("use --mode full"));
    assert!(
        reasons[1].contains("index orders_details_idx dropped")
            && reasons[1].contains("run snapcopy --mode full public.orders"),
        "{}",
        reasons[1]
    );
}

#[test]
fn a_configured_cursor_column_is_compared_with_at_least() {
    let mut catalog = fixture();
    catalog.tables[0].constraints.push(constraint(
        "audit_pkey",
        ConstraintKind::PrimaryKey,
        "PRIMARY KEY (id)",
    ));
    catalog.tables[0].columns[0].not_null = true;
    catalog.tables[0]
        .columns
        .push(column("at", "timestamp with time zone"));
    let state = copied(&catalog);
    let mut opts = options(StagingKind::View);
    opts.mode = Mode::Incremental;
    opts.cursors
        .insert(catalog.tables[0].name.clone(), Ident::new("at"));
    let plan = plan(&catalog, &state, &opts);
    let text = plan.to_string();
    // The last copy's high-water mark, read from the registry when planning.
    assert!(text.contains(r#" WHERE "at" >= ''1000'''"#), "{text}");
    let audit = &unit_of(&plan, "public.audit").tables[0];
    assert_eq!(audit.note(), "at >= last copy's max");
    assert!(audit.pushed_down());
}

#[test]
fn the_password_is_in_no_statement_text_only_in_a_bound_setting() {
    let plan = plan(
        &fixture(),
        &TargetState::default(),
        &options(StagingKind::View),
    );
    let printed = plan.to_string();
    assert!(!printed.contains("s3cret"), "{printed}");
    assert!(
        printed.contains("OPTIONS (\"password\" '********', \"user\" 'reader')"),
        "{printed}"
    );
    let statements: Vec<&Step> = plan
        .setup
        .iter()
        .chain(plan.units.iter().flat_map(|u| &u.steps))
        .collect();
    assert!(statements.iter().all(|s| !s.sql.contains("s3cret")));
    let bound: Vec<&(String, String)> = statements.iter().flat_map(|s| s.settings()).collect();
    assert!(bound
        .iter()
        .any(|(k, v)| k == "snapcopy.user_mapping" && v.contains("'s3cret'")));
}

#[test]
fn an_unmanaged_table_in_the_way_is_refused_and_others_go_on() {
    let catalog = fixture();
    let mut state = TargetState::default();
    state
        .existing_tables
        .insert(QualifiedName::new("public", "audit"));
    let plan = plan(&catalog, &state, &options(StagingKind::View));
    assert_eq!(plan.refused.len(), 1);
    assert!(plan.refused[0]
        .1
        .contains("public.audit already exists on the target"));
    let planned: Vec<String> = plan
        .units
        .iter()
        .flat_map(|u| u.tables.iter().map(|t| t.name.human()))
        .collect();
    assert_eq!(planned, ["public.customers", "public.orders"]);
}

#[test]
fn foreign_keys_outside_the_run_are_warned_about_by_both_names() {
    let plan = plan(
        &fixture(),
        &TargetState::default(),
        &options(StagingKind::View),
    );
    assert_eq!(plan.warnings.len(), 1);
    let w = &plan.warnings[0];
    assert!(
        w.contains("audit_user_id_fkey") && w.contains("public.audit") && w.contains("auth.users"),
        "{w}"
    );
    assert!(!plan
        .to_string()
        .contains("ADD CONSTRAINT \"audit_user_id_fkey\""));
}

#[test]
fn related_tables_share_a_unit_and_unrelated_ones_do_not_largest_first() {
    let names = |plan: &Plan| -> Vec<Vec<String>> {
        plan.units
            .iter()
            .map(|u| u.tables.iter().map(|t| t.name.human()).collect())
            .collect()
    };
    let mut catalog = fixture();
    let state = TargetState::default();
    let plan_of = |c: &Catalog| plan(c, &state, &options(StagingKind::View));
    assert_eq!(
        names(&plan_of(&catalog)),
        [
            vec!["public.customers", "public.orders"],
            vec!["public.audit"]
        ]
    );
    catalog.tables[0].total_bytes = 1 << 20;
    assert_eq!(catalog.tables[0].name.human(), "public.audit");
    assert_eq!(
        names(&plan_of(&catalog)),
        [
            vec!["public.audit"],
            vec!["public.customers", "public.orders"]
        ]
    );
}

#[test]
fn long_names_get_short_unique_staging_names() {
    let long = "x".repeat(63);
    let a = staging_name(&QualifiedName::new(&long, format!("{long}a")));
    let b = staging_name(&QualifiedName::new(&long, format!("{long}b")));
    assert!(a.len() <= 63 && b.len() <= 63);
    assert_ne!(a, b);
    assert!(a.contains('.'));
    let unicode = "é".repeat(40);
    let c = staging_name(&QualifiedName::new("public", unicode));
    assert!(c.len() <= 63);
    assert_eq!(
        staging_name(&QualifiedName::new("public", "orders")),
        "public.orders"
    );
}

#[test]
fn enum_labels_the_target_lacks_are_added_in_the_source_order() {
    let name = QualifiedName::new("shop", "status");
    let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        super::setup::enum_additions(
            &name,
            &labels(&["draft", "new", "paid", "refunded", "shipped"]),
            &labels(&["new", "paid", "shipped"])
        ),
        [
            "ALTER TYPE \"shop\".\"status\" ADD VALUE IF NOT EXISTS 'draft' BEFORE 'new'",
            "ALTER TYPE \"shop\".\"status\" ADD VALUE IF NOT EXISTS 'refunded' AFTER 'paid'",
        ]
    );
    assert!(super::setup::enum_additions(
        &name,
        &labels(&["a", "b"]),
        &labels(&["a", "b", "local"])
    )
    .is_empty());
}

#[test]
fn large_new_tables_load_in_ranges_into_load_tables_that_the_unit_moves_into_place() {
    let plan = large_first_copy();
    let unit = unit_of(&plan, "public.orders");
    assert_eq!(unit.splits.len(), 2);
    assert!(unit_of(&plan, "public.audit").splits.is_empty());
    insta::assert_snapshot!(order(&plan));
}

#[test]
fn ranges_cover_every_row_with_open_ends() {
    let ranges_of = |extent: Extent, n: usize| -> Vec<(Option<String>, Option<String>)> {
        let mut opts = options(StagingKind::View);
        opts.split_ranges = n;
        let plan = plan(&large_fixture(extent), &TargetState::default(), &opts);
        let unit = unit_of(&plan, "public.orders");
        unit.splits
            .iter()
            .find(|s| unit.tables[s.table].name.name.raw() == "orders")
            .map(|s| {
                s.ranges
                    .iter()
                    .map(|r| (r.bounds.lower.clone(), r.bounds.upper.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let key = |min, max| Extent::Key {
        column: Ident::new("id"),
        min,
        max,
    };
    let bounds = |lower: Option<&str>, upper: Option<&str>| {
        (lower.map(str::to_string), upper.map(str::to_string))
    };
    assert_eq!(
        ranges_of(key(-5, 6), 3),
        [
            bounds(None, Some("-1")),
            bounds(Some("-1"), Some("3")),
            bounds(Some("3"), None)
        ]
    );
    assert_eq!(
        ranges_of(key(i64::MIN, i64::MAX), 2),
        [bounds(None, Some("0")), bounds(Some("0"), None)]
    );
    let block = "'(500,0)'::pg_catalog.tid";
    assert_eq!(
        ranges_of(Extent::Blocks(1000), 2),
        [bounds(None, Some(block)), bounds(Some(block), None)]
    );
    // Fewer distinct values than ranges: as many ranges as there is room for, or none.
    assert_eq!(ranges_of(key(7, 8), 4).len(), 2);
    assert!(ranges_of(key(7, 7), 2).is_empty());
    assert!(ranges_of(Extent::Blocks(1), 2).is_empty());
}

#[test]
fn only_large_tables_created_in_this_run_and_read_through_views_are_split() {
    let extent = Extent::Blocks(1000);
    let catalog = large_fixture(extent.clone());
    let splits = |plan: &Plan| plan.units.iter().map(|u| u.splits.len()).sum::<usize>();
    let new = TargetState::default();
    assert_eq!(
        splits(&plan(&catalog, &new, &options(StagingKind::View))),
        2
    );
    // A reload of a table nothing on the target depends on goes as a first copy: every range
    // into a new table, its indexes built there, the table swapped in.
    let reload = plan(&catalog, &copied(&catalog), &options(StagingKind::View));
    assert_eq!(splits(&reload), 2);
    for (split, unit) in reload
        .units
        .iter()
        .flat_map(|u| u.splits.iter().map(move |s| (s, u)))
    {
        assert!(!split.merged);
        assert_eq!(split.ranges.len(), 2);
        assert!(!split.indexes.is_empty(), "keys are built on the new table");
        assert_eq!(unit.tables[split.table.0].action, Action::Replace);
    }
    // One the target ties to its table (a view, a grant, ...) goes in parts: the unit loads the
    // first range into the table it truncated, sessions of their own the others into a load
    // table whose rows the unit copies in.
    let mut tied = copied(&catalog);
    for t in &catalog.tables {
        tied.keeps_identity
            .insert(t.name.clone(), "it has grants on the target".into());
    }
    let reload = plan(&catalog, &tied, &options(StagingKind::View));
    assert_eq!(splits(&reload), 2);
    for (split, unit) in reload
        .units
        .iter()
        .flat_map(|u| u.splits.iter().map(move |s| (s, u)))
    {
        assert!(split.merged);
        assert_eq!(split.ranges.len(), 1, "the first range is the unit's");
        assert!(split.indexes.is_empty(), "keys are built in the table");
        assert_eq!(unit.tables[split.table.0].action, Action::Reload);
        assert_eq!(
            unit.tables[split.table.0].reason.as_deref(),
            Some("in place, as it has grants on the target")
        );
    }
    assert_eq!(
        splits(&plan(&catalog, &new, &options(StagingKind::Matview))),
        0
    );
    // One session, a small table, or splitting turned off.
    let mut one = options(StagingKind::View);
    one.split_ranges = 1;
    assert_eq!(splits(&plan(&catalog, &new, &one)), 0);
    let mut off = options(StagingKind::View);
    off.split_bytes = 0;
    assert_eq!(splits(&plan(&catalog, &new, &off)), 0);
    let mut large = options(StagingKind::View);
    large.split_bytes = 2 << 30;
    assert_eq!(splits(&plan(&catalog, &new, &large)), 0);
    // A changed table is rebuilt from its ranges (the other one, tied, reloads in parts).
    let mut changed = catalog.clone();
    changed.tables[1].columns.push(column("note", "text"));
    let rebuilt = plan(&changed, &tied, &options(StagingKind::View));
    let moved: Vec<bool> = rebuilt
        .units
        .iter()
        .flat_map(|u| &u.splits)
        .map(|s| s.merged)
        .collect();
    assert_eq!(moved, [false, true]);
    let text = rebuilt.to_string();
    let dropped = text
        .find("DROP TABLE IF EXISTS \"public\".\"customers\" CASCADE;")
        .unwrap();
    let moved = text.find("ALTER TABLE \"snapcopy\".\"load ").unwrap();
    assert!(dropped < moved, "{text}");
}

/// The change mark: recorded for a table a run reads whole, not for one read above its
/// high-water mark; an incremental run of a key that does not grow reads the rows written
/// since the mark when it is the same origin's, else compares key hashes.
#[test]
fn the_change_mark_is_recorded_where_a_run_reads_every_row_and_used_from_the_same_origin() {
    use crate::source::ChangeMark;
    let mut catalog = fixture();
    let mut opts = options(StagingKind::View);
    let run = ChangeMark {
        origin: "42/1/5".into(),
        xmin: 77,
    };
    opts.mark = Some(run.clone());
    let mark = run.of_table(&catalog.tables[1]).text();
    let full = plan(&catalog, &copied(&catalog), &opts);
    assert!(record_of(&full, "customers").contains(&format!("'{mark}'::text")));
    // Above the high-water mark of an integer key: only newer rows are read, no mark.
    opts.mode = Mode::Incremental;
    let above = plan(&catalog, &copied(&catalog), &opts);
    assert!(record_of(&above, "customers").contains("NULL::text) ON CONFLICT"));

    // A uuid key: rows written since the last run's mark, from the same origin only.
    catalog.tables[1].columns[0] = Column {
        not_null: true,
        ..column("id", "uuid")
    };
    let mut state = copied(&catalog);
    let last = ChangeMark {
        xmin: 70,
        ..run.of_table(&catalog.tables[1])
    };
    state
        .marks
        .insert(catalog.tables[1].name.clone(), last.clone());
    let since = plan(&catalog, &state, &opts);
    assert_eq!(
        note_of(&since, "customers"),
        "rows written since the last run"
    );
    assert!(pretty(&since.units[0].steps).contains("pg_catalog.age(xmin) <= "));
    assert!(record_of(&since, "customers").contains(&format!("'{mark}'::text")));
    state.marks.insert(
        catalog.tables[1].name.clone(),
        ChangeMark {
            origin: "43/1/5".into(),
            ..last
        },
    );
    let other = plan(&catalog, &state, &opts);
    assert_eq!(note_of(&other, "customers"), "key hashes compared");
}

/// The target's mark: taken once per unit, recorded for a table a run leaves equal to the
/// source's rows (not after an incremental run); a sync starts from what either side wrote
/// since when both marks hold, else hashes every row.
#[test]
fn the_targets_mark_is_recorded_where_a_run_leaves_the_table_equal_and_sync_starts_from_both() {
    use crate::source::ChangeMark;
    use crate::target::{Clock, LocalMark};
    let taken = crate::target::mark::TAKEN;
    let catalog = fixture();
    let mut opts = options(StagingKind::View);
    let run = ChangeMark {
        origin: "42/1/5".into(),
        xmin: 77,
    };
    opts.mark = Some(run.clone());
    let mut state = copied(&catalog);
    state.clock = Some(Clock {
        origin: "7/1/9".into(),
        next: 500,
    });
    let full = plan(&catalog, &state, &opts);
    let steps = pretty(&full.units[0].steps);
    assert!(steps.contains("SAVEPOINT snapcopy_mark"), "{steps}");
    // Once for the unit's tables.
    assert!(full.units[0].tables.len() > 1);
    assert_eq!(steps.matches("SAVEPOINT snapcopy_mark").count(), 1);
    assert!(records(&full).iter().all(|r| r.contains(taken)));
    // An incremental run leaves local edits: no target mark.
    opts.mode = Mode::Incremental;
    let incremental = plan(&catalog, &state, &opts);
    assert!(records(&incremental).iter().all(|r| !r.contains(taken)));
    assert!(!pretty(&incremental.units[0].steps).contains("snapcopy_mark"));

    // Sync, both marks holding: each side's rows written since.
    opts.mode = Mode::Sync;
    for t in &catalog.tables {
        state.marks.insert(
            t.name.clone(),
            ChangeMark {
                xmin: 70,
                ..run.of_table(t)
            },
        );
        state.local_marks.insert(
            t.name.clone(),
            LocalMark {
                origin: "7/1/9".into(),
                last: 450,
                xmax: 449,
                running: vec![],
            },
        );
    }
    let since = plan(&catalog, &state, &opts);
    assert_eq!(
        note_of(&since, "customers"),
        "rows written since the last run"
    );
    let steps = pretty(&since.units[0].steps);
    assert!(steps.contains("pg_catalog.age(xmin) <= "), "{steps}");
    assert!(
        steps.contains("pg_catalog.age(xmin) < (SELECT pg_catalog.age('450'::pg_catalog.xid))"),
        "{steps}"
    );
    assert!(records(&since).iter().all(|r| r.contains(taken)));
    // The target restored elsewhere: every row is hashed.
    state.clock = Some(Clock {
        origin: "8/1/9".into(),
        next: 500,
    });
    let hashed = plan(&catalog, &state, &opts);
    assert_eq!(note_of(&hashed, "customers"), "");
    assert!(pretty(&hashed.units[0].steps).contains("pg_catalog.hash_record_extended"));
}

/// The locks a unit holds, counted before a run (see `guard::beyond_locks`): each partition
/// has an index for each of its root's and, with a column of unbounded length, a TOAST table
/// and its index; a new table's staging view counts on the target; the source counts what it
/// reads. Beyond a server's room (its nominal lock table and half again) the unit is refused.
#[test]
fn a_unit_beyond_a_lock_table_is_refused_with_what_it_locks() {
    use crate::guard::{beyond_locks, LockRoom};
    let mut root = table("events");
    root.columns = vec![
        column("id", "integer"),
        column("at", "integer"),
        column("body", "text"),
    ];
    root.constraints = vec![constraint(
        "events_pkey",
        ConstraintKind::PrimaryKey,
        "PRIMARY KEY (id, at)",
    )];
    root.partition_by = Some("LIST (at)".into());
    for k in 1..=2 {
        let mut partition = table(&format!("events_{k}"));
        partition.columns = root.columns.clone();
        partition.partition_of = Some((root.name.clone(), format!("FOR VALUES IN ({k})")));
        root.partitions.push(partition);
    }
    let catalog = Catalog {
        tables: vec![root],
        types: Vec::new(),
        extensions: Vec::new(),
        ..fixture()
    };
    let plan = plan(
        &catalog,
        &TargetState::default(),
        &options(StagingKind::View),
    );
    // On the target: the root and its key's index, each partition with its own index of the
    // key, TOAST table and TOAST index, and the staging view: 2 + 2 * 4 + 1.
    let roomy = LockRoom::new(100, 10);
    let refused = beyond_locks(&plan.units, &catalog, &LockRoom::new(1, 7), &roomy);
    assert!(
        refused[&QualifiedName::new("public", "events")].starts_with(
            "public.events and its 2 partitions load in one transaction, which holds a lock on \
             each of their 11 tables, indexes, sequences and views (at least) until it commits, \
             and the target's lock table has room for about 10 (max_locks_per_transaction 1 for \
             each of its 7 server processes, and some spare); nothing changed: set \
             max_locks_per_transaction to at least 4 on the target"
        ),
        "{refused:?}"
    );
    assert!(beyond_locks(&plan.units, &catalog, &LockRoom::new(1, 8), &roomy).is_empty());
    // On the source: the tables and their indexes it reads, 2 + 2 * 2.
    let refused = beyond_locks(&plan.units, &catalog, &roomy, &LockRoom::new(1, 3));
    assert!(
        refused[&QualifiedName::new("public", "events")].contains(
            "each of their 6 tables, indexes, sequences and views (at least) until it \
                       commits, and the source's lock table has room for about 4"
        ),
        "{refused:?}"
    );
    assert!(beyond_locks(&plan.units, &catalog, &roomy, &LockRoom::new(1, 4)).is_empty());
}

/// A unit creating at least `BUILDS_FROM` tables a helper can build (here a hub and the
/// tables referencing it) shares them with helper sessions when the run has a session to
/// spare: each such table has both ways in, the unit's own statements after a `Claim` and the
/// move of a helper's load table after a `Built`, and the foreign keys come after both.
#[test]
fn a_unit_of_enough_new_tables_shares_them_with_helper_sessions() {
    let catalog_of = |children: usize| {
        let mut hub = table("hub");
        hub.columns = vec![column("id", "integer")];
        hub.constraints = vec![constraint(
            "hub_pkey",
            ConstraintKind::PrimaryKey,
            "PRIMARY KEY (id)",
        )];
        let mut tables = vec![hub];
        for k in 1..=children {
            let mut t = table(&format!("c{k}"));
            t.columns = vec![column("id", "integer"), column("hub_id", "integer")];
            t.constraints = vec![
                constraint(
                    &format!("c{k}_pkey"),
                    ConstraintKind::PrimaryKey,
                    "PRIMARY KEY (id)",
                ),
                constraint(
                    &format!("c{k}_hub_id_fkey"),
                    ConstraintKind::ForeignKey {
                        references: QualifiedName::new("public", "hub"),
                    },
                    "FOREIGN KEY (hub_id) REFERENCES public.hub(id)",
                ),
            ];
            tables.push(t);
        }
        Catalog {
            tables,
            ..Default::default()
        }
    };
    let builds_of = |children: usize, jobs: usize| {
        let mut opts = options(StagingKind::View);
        opts.split_ranges = jobs;
        let plan = plan(&catalog_of(children), &TargetState::default(), &opts);
        assert_eq!(plan.units.len(), 1);
        plan.units[0].clone()
    };
    // Below the threshold, or without a session to spare: the unit makes every table.
    assert!(builds_of(BUILDS_FROM - 2, 2).builds.tables.is_empty());
    assert!(builds_of(BUILDS_FROM - 1, 1).builds.tables.is_empty());
    let unit = builds_of(BUILDS_FROM - 1, 2);
    assert_eq!(unit.builds.tables.len(), BUILDS_FROM);
    assert_eq!(unit.builds.helpers, 1);
    assert_eq!(builds_of(2 * BUILDS_FROM, 4).builds.helpers, 2);
    for build in &unit.builds.tables {
        let i = build.table;
        let name = &unit.tables[i].name;
        let of = |branch: Option<Branch>| -> Vec<String> {
            unit.steps
                .iter()
                .filter(|s| s.table == Some(i) && s.branch == branch)
                .map(what)
                .collect()
        };
        let own = of(Some(Branch::Own));
        let moved = of(Some(Branch::Moved));
        assert!(own.contains(&"CREATE TABLE".to_string()), "{name}: {own:?}");
        assert!(
            moved.contains(&"ALTER TABLE".to_string()),
            "{name}: {moved:?}"
        );
        let sql = |branch| {
            unit.steps
                .iter()
                .filter(|s| s.table == Some(i) && s.branch == Some(branch))
                .map(|s| s.sql.clone())
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(sql(Branch::Moved).contains("SET SCHEMA"), "{name}");
        assert!(!sql(Branch::Own).contains("load "), "{name}");
        let kinds = |kind: StepKind| {
            unit.steps
                .iter()
                .filter(|s| s.table == Some(i) && s.kind == kind)
                .count()
        };
        assert_eq!(
            (kinds(StepKind::Claim), kinds(StepKind::Built)),
            (1, 1),
            "{name}"
        );
        // The helper's statements: its load table, marked, loaded, its key's index.
        let helper: Vec<String> = build.steps.iter().map(what).collect();
        assert_eq!(
            helper,
            [
                "CREATE TABLE",
                "COMMENT ON TABLE",
                "INSERT INTO [rows]",
                "CREATE UNIQUE INDEX"
            ],
            "{name}"
        );
        assert!(
            build.steps[0].sql.contains("\"snapcopy\".\"load "),
            "{name}"
        );
    }
    // The foreign keys, on no branch, after every table's statements.
    let last_branch = unit.steps.iter().rposition(|s| s.branch.is_some()).unwrap();
    let first_key = unit
        .steps
        .iter()
        .position(|s| s.phase == Phase::ForeignKeys)
        .unwrap();
    assert!(first_key > last_branch);
    assert!(unit.steps[first_key].branch.is_none());
}

/// A large table's written rows go in during its sync's comparison, before its deletes, only
/// where the order cannot matter: its one key is the sync key, no foreign key, no trigger, and
/// snapcopy made it.
#[test]
fn a_synced_tables_rows_go_in_early_only_where_the_order_cannot_matter() {
    use crate::plan::sync::applies_early;
    use crate::source::{Trigger, TriggerState};
    let mut plain = table("plain");
    plain.columns = vec![
        Column {
            not_null: true,
            ..column("id", "bigint")
        },
        column("v", "text"),
    ];
    plain.constraints = vec![
        constraint("plain_pkey", ConstraintKind::PrimaryKey, "PRIMARY KEY (id)"),
        constraint(
            "plain_v_check",
            ConstraintKind::Check,
            "CHECK ((v <> ''::text))",
        ),
    ];
    let index = |name: &str, unique: &str| Index {
        name: Ident::new(name),
        definition: format!("CREATE {unique}INDEX {name} ON public.plain USING btree (v)"),
        body: Some("btree (v)".into()),
    };
    plain.indexes = vec![index("plain_v_idx", "")];
    assert!(applies_early(&plain, false));
    assert!(!applies_early(&plain, true), "a user's own table");

    let mut unique = plain.clone();
    unique.indexes.push(index("plain_v_key", "UNIQUE "));
    assert!(!applies_early(&unique, false), "a unique index");
    let mut triggered = plain.clone();
    triggered.triggers.push(Trigger {
        name: Ident::new("plain_audit"),
        definition: "CREATE TRIGGER plain_audit AFTER INSERT ON public.plain FOR EACH ROW \
                     EXECUTE FUNCTION public.audit()"
            .into(),
        state: TriggerState::Enabled,
    });
    assert!(!applies_early(&triggered, false), "a trigger");
    assert!(!applies_early(&customers(), false), "a second unique key");
    assert!(!applies_early(&orders(), false), "a foreign key");
}
