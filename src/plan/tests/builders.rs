//! The SQL of each builder on its own: a table's DDL, the rows of each action, one split's
//! ranges. Long statements are broken on several lines (see `pretty`).

use super::*;

/// The statements of `table`'s unit that are about it and of one of `phases`, in order.
fn steps_of(plan: &Plan, table: &str, phases: &[Phase]) -> Vec<Step> {
    let unit = unit_of(plan, table);
    unit.steps
        .iter()
        .filter(|s| {
            s.table
                .is_some_and(|i| unit.tables[i].name.human() == table)
        })
        .filter(|s| phases.contains(&s.phase))
        .cloned()
        .collect()
}

fn first_copy(staging: StagingKind) -> Plan {
    plan(&fixture(), &TargetState::default(), &options(staging))
}

fn second_run(catalog: &Catalog, opts: &PlanOptions) -> Plan {
    plan(catalog, &copied(catalog), opts)
}

#[test]
fn ddl_of_a_table_with_a_serial_key_a_collation_and_comments() {
    let plan = first_copy(StagingKind::View);
    let ddl = steps_of(
        &plan,
        "public.customers",
        &[Phase::PreData, Phase::PostData, Phase::ForeignKeys],
    );
    insta::assert_snapshot!(pretty(&ddl));
}

#[test]
fn ddl_of_a_table_with_identity_generated_columns_checks_and_indexes() {
    let plan = first_copy(StagingKind::View);
    let ddl = steps_of(
        &plan,
        "public.orders",
        &[Phase::PreData, Phase::PostData, Phase::ForeignKeys],
    );
    insta::assert_snapshot!(pretty(&ddl));
}

#[test]
fn rows_of_a_new_table_read_through_a_view() {
    let plan = first_copy(StagingKind::View);
    let rows = steps_of(&plan, "public.orders", &[Phase::Staging, Phase::Data]);
    insta::assert_snapshot!(pretty(&rows));
}

#[test]
fn rows_of_a_new_table_read_through_a_matview() {
    let plan = first_copy(StagingKind::Matview);
    let rows = steps_of(&plan, "public.orders", &[Phase::Staging, Phase::Data]);
    insta::assert_snapshot!(pretty(&rows));
}

#[test]
fn rows_of_a_reload_from_a_refreshed_matview() {
    let plan = second_run(&fixture(), &options(StagingKind::Matview));
    let rows = steps_of(
        &plan,
        "public.orders",
        &[Phase::Truncate, Phase::Staging, Phase::Data],
    );
    insta::assert_snapshot!(pretty(&rows));
}

#[test]
fn rows_of_a_large_table_in_batches_from_a_cursor() {
    let mut catalog = fixture();
    catalog.tables[2].total_bytes = 1 << 30;
    catalog.tables[2].estimated_rows = 10_000_000;
    let mut opts = options(StagingKind::View);
    // One session: not split.
    opts.split_ranges = 1;
    let plan = plan(&catalog, &TargetState::default(), &opts);
    let rows = steps_of(&plan, "public.orders", &[Phase::Staging, Phase::Data]);
    assert!(matches!(rows[2].kind, StepKind::Batch { size } if size > 0));
    insta::assert_snapshot!(pretty(&rows));
}

#[test]
fn missing_rows_above_the_last_copys_max() {
    let mut opts = options(StagingKind::View);
    opts.mode = Mode::Incremental;
    let plan = second_run(&fixture(), &opts);
    let rows = steps_of(&plan, "public.orders", &[Phase::Staging, Phase::Data]);
    insta::assert_snapshot!(pretty(&rows));
}

#[test]
fn missing_rows_of_a_key_that_does_not_grow_compared_by_key() {
    let mut catalog = fixture();
    let customers = &mut catalog.tables[1];
    customers
        .constraints
        .retain(|c| c.kind != ConstraintKind::PrimaryKey);
    assert_eq!(customers.name.human(), "public.customers");
    let mut opts = options(StagingKind::View);
    opts.mode = Mode::Incremental;
    let plan = second_run(&catalog, &opts);
    assert_eq!(
        unit_of(&plan, "public.customers").tables[0].pushdown,
        Some(Pushdown::AllKeys)
    );
    let rows = steps_of(&plan, "public.customers", &[Phase::Staging, Phase::Data]);
    insta::assert_snapshot!(pretty(&rows));
}

#[test]
fn user_rows_of_a_table_an_extension_made() {
    let mut catalog = fixture();
    catalog.tables[0].user_rows = Some("WHERE id > 100".into());
    let plan = plan(
        &catalog,
        &TargetState::default(),
        &options(StagingKind::View),
    );
    let rows = steps_of(&plan, "public.audit", &[Phase::Data]);
    insta::assert_snapshot!(pretty(&rows));
}

#[test]
fn one_split_tables_load_table_ranges_and_index_builds() {
    let plan = large_first_copy();
    let unit = unit_of(&plan, "public.orders");
    let split = unit
        .splits
        .iter()
        .find(|s| unit.tables[s.table].name.human() == "public.orders")
        .unwrap();
    let load: Vec<Step> = plan
        .setup
        .iter()
        .filter(|s| s.purpose == Purpose::ForTable(QualifiedName::new("public", "orders")))
        .cloned()
        .collect();
    let mut text = format!("-- the load table, made by the setup\n{}", pretty(&load));
    for (k, range) in split.ranges.iter().enumerate() {
        writeln!(text, "-- range {}: {}", k + 1, range.bounds.predicate()).unwrap();
        text.push_str(&pretty(&range.steps));
    }
    text.push_str("-- index builds\n");
    text.push_str(&pretty(&split.indexes));
    text.push_str("-- in the unit\n");
    text.push_str(&pretty(&steps_of(
        &plan,
        "public.orders",
        &[Phase::PreData, Phase::Staging, Phase::PostData],
    )));
    insta::assert_snapshot!(text);
}

#[test]
fn setup_of_a_first_copy() {
    let plan = first_copy(StagingKind::View);
    insta::assert_snapshot!(pretty(&plan.setup));
}

#[test]
fn sequences_after_a_reload_move_past_the_source_and_the_rows() {
    let plan = second_run(&fixture(), &options(StagingKind::View));
    let unit = unit_of(&plan, "public.orders");
    let sequences: Vec<Step> = unit
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Sequences)
        .cloned()
        .collect();
    insta::assert_snapshot!(pretty(&sequences));
}

fn through_fdw(staging: StagingKind) -> PlanOptions {
    PlanOptions {
        link_kind: LinkKind::PostgresFdw,
        ..options(staging)
    }
}

#[test]
fn setup_through_postgres_fdw_imports_each_table_and_reads_sequences_through_foreign_tables() {
    let mut catalog = fixture();
    // Rows of about 80 kB: fewer of them per fetch.
    catalog.tables[1].data_bytes = 8 << 20;
    catalog.tables[1].estimated_rows = 100;
    let plan = plan(
        &catalog,
        &TargetState::default(),
        &through_fdw(StagingKind::View),
    );
    insta::assert_snapshot!(pretty(&plan.setup));
}

#[test]
fn rows_and_sequences_through_postgres_fdw() {
    let plan = plan(
        &fixture(),
        &TargetState::default(),
        &through_fdw(StagingKind::View),
    );
    let steps = steps_of(
        &plan,
        "public.customers",
        &[
            Phase::TableStart,
            Phase::Staging,
            Phase::Data,
            Phase::Sequences,
            Phase::TableEnd,
        ],
    );
    let unit = unit_of(&plan, "public.customers");
    let mut text = pretty(&steps);
    writeln!(text, "-- undo\n{};", unit.undo_table).unwrap();
    insta::assert_snapshot!(text);
}

#[test]
fn missing_rows_through_postgres_fdw_above_the_last_copys_max() {
    let mut opts = through_fdw(StagingKind::View);
    opts.mode = Mode::Incremental;
    let plan = second_run(&fixture(), &opts);
    let rows = steps_of(&plan, "public.orders", &[Phase::Staging, Phase::Data]);
    insta::assert_snapshot!(pretty(&rows));
}

#[test]
fn a_reload_through_postgres_fdw_remakes_its_matview() {
    let plan = second_run(&fixture(), &through_fdw(StagingKind::Matview));
    let rows = steps_of(&plan, "public.orders", &[Phase::Staging, Phase::Data]);
    insta::assert_snapshot!(pretty(&rows));
}

#[test]
fn a_subset_flows_down_the_foreign_keys_and_is_closed_up_on_the_source() {
    let mut opts = options(StagingKind::View);
    opts.filters.insert(
        QualifiedName::new("public", "customers"),
        "(\"Name\" LIKE 'A%')".into(),
    );
    let plan = plan(&fixture(), &TargetState::default(), &opts);
    let unit = unit_of(&plan, "public.orders");
    assert!(unit.tables.iter().all(|t| t.subset), "{:?}", unit.tables);
    assert!(!unit_of(&plan, "public.audit").tables[0].subset);
    let staging = steps_of(&plan, "public.orders", &[Phase::Staging]);
    insta::assert_snapshot!(pretty(&staging));
}

/// Teams and members that reference each other, into the user's own tables (`--data-only`)
/// whose keys are not deferrable: the triggers are turned off and back on, the rows of both go
/// in one statement, the sequence moves ahead of the rows; nothing is made or dropped.
#[test]
fn a_data_only_unit_loads_a_cycle_that_cannot_wait_in_one_statement() {
    use crate::target::{UserColumn, UserForeignKey, UserTable};
    let mut teams = table("teams");
    teams.columns = vec![column("id", "integer"), column("lead_id", "integer")];
    teams.constraints = vec![
        constraint("teams_pkey", ConstraintKind::PrimaryKey, "PRIMARY KEY (id)"),
        constraint(
            "teams_lead_id_fkey",
            ConstraintKind::ForeignKey {
                references: QualifiedName::new("public", "members"),
            },
            "FOREIGN KEY (lead_id) REFERENCES public.members(id)",
        ),
    ];
    let mut members = table("members");
    members.columns = vec![
        column("id", "integer"),
        column("team_id", "integer"),
        column("legacy", "text"),
    ];
    members.constraints = vec![constraint(
        "members_team_id_fkey",
        ConstraintKind::ForeignKey {
            references: QualifiedName::new("public", "teams"),
        },
        "FOREIGN KEY (team_id) REFERENCES public.teams(id)",
    )];
    let catalog = Catalog {
        tables: vec![teams, members],
        ..fixture()
    };
    let user = |columns: &[&str], references: &str, sequence: bool| UserTable {
        columns: columns
            .iter()
            .map(|c| UserColumn {
                name: Ident::new(*c),
                type_sql: "integer".into(),
                generated: false,
                identity: None,
                integer: true,
            })
            .collect(),
        foreign_keys: vec![UserForeignKey {
            name: Ident::new(format!("fk_{references}")),
            references: QualifiedName::new("public", references),
            deferrable: false,
        }],
        unique_key: true,
        owned: true,
        sequences: if sequence {
            vec![(
                Ident::new("id"),
                QualifiedName::new("public", "teams_id_seq"),
            )]
        } else {
            Vec::new()
        },
        ..UserTable::default()
    };
    let mut state = TargetState {
        dblink_schema: Some(Ident::new("public")),
        ..TargetState::default()
    };
    for (name, theirs) in [
        ("teams", user(&["id", "lead_id"], "members", true)),
        ("members", user(&["id", "team_id"], "teams", false)),
    ] {
        let name = QualifiedName::new("public", name);
        state.existing_tables.insert(name.clone());
        state.user_tables.insert(name, theirs);
    }
    state.triggers.insert(
        QualifiedName::new("public", "teams"),
        vec![(Ident::new("audit"), crate::source::TriggerState::Enabled)],
    );
    let mut opts = options(StagingKind::View);
    opts.data_only = true;
    let plan = plan(&catalog, &state, &opts);
    assert_eq!(
        plan.warnings,
        ["public.members.legacy is not on the target: left out"]
    );
    let unit = unit_of(&plan, "public.teams");
    let steps: Vec<Step> = unit
        .steps
        .iter()
        .filter(|s| s.phase != Phase::Record)
        .cloned()
        .collect();
    insta::assert_snapshot!(pretty(&steps));
}
