//! Tests of the planner on a fixture catalog: the rules that pick what happens (`rules`),
//! with whole-plan snapshots that keep only the order of the statements, and the SQL of each
//! builder on its own (`builders`), so that a change to one statement changes one snapshot.

mod builders;
mod rules;

use std::fmt::Write as _;

use super::*;
use crate::source::{
    Column, Constraint, ConstraintKind, Extension, Extent, Identity, Index, Sequence, Table,
    TypeKind, UserType,
};

fn column(name: &str, type_sql: &str) -> Column {
    Column {
        name: Ident::new(name),
        type_sql: type_sql.into(),
        not_null: false,
        default_sql: None,
        generated_sql: None,
        identity: None,
        collation_sql: None,
        comment: None,
        local: true,
    }
}

fn constraint(name: &str, kind: ConstraintKind, definition: &str) -> Constraint {
    // The key columns, read back from `... (a, b)` the way pg_get_constraintdef prints them.
    let index_body = match kind {
        ConstraintKind::PrimaryKey | ConstraintKind::Unique => definition
            .find('(')
            .map(|at| format!("btree {}", &definition[at..])),
        _ => None,
    };
    let list = |text: &str| -> Vec<Ident> {
        text.split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(cols, _)| cols.split(", ").map(Ident::new).collect())
            .unwrap_or_default()
    };
    let columns = match kind {
        ConstraintKind::PrimaryKey | ConstraintKind::Unique | ConstraintKind::ForeignKey { .. } => {
            list(definition)
        }
        _ => Vec::new(),
    };
    // `FOREIGN KEY (a) REFERENCES s.t(b)`: the referenced columns follow REFERENCES.
    let ref_columns = match kind {
        ConstraintKind::ForeignKey { .. } => definition
            .split_once(" REFERENCES ")
            .map(|(_, rest)| list(rest))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Constraint {
        name: Ident::new(name),
        kind,
        definition: definition.into(),
        validated: !definition.ends_with("NOT VALID"),
        columns,
        ref_columns,
        local: true,
        deferrable: definition.contains(" DEFERRABLE"),
        index_body,
    }
}

fn sequence(table: &str, column: &str, identity: bool) -> Sequence {
    Sequence {
        name: QualifiedName::new("public", format!("{table}_{column}_seq")),
        column: Ident::new(column),
        identity,
        data_type: "bigint".into(),
        start: 1,
        increment: 1,
        min: 1,
        max: i64::MAX,
        cache: 1,
        cycle: false,
    }
}

fn table(name: &str) -> Table {
    Table {
        oid: 0,
        name: QualifiedName::new("public", name),
        comment: None,
        columns: Vec::new(),
        constraints: Vec::new(),
        indexes: Vec::new(),
        sequences: Vec::new(),
        estimated_rows: 100,
        total_bytes: 8192,
        data_bytes: 8192,
        rows_deleted: 0,
        partition_by: None,
        partition_of: None,
        partitions: Vec::new(),
        extent: None,
        user_rows: None,
        requires: Default::default(),
        triggers: Vec::new(),
        parents: Vec::new(),
        inherits: Vec::new(),
        has_children: false,
    }
}

/// customers (serial key, citext email, comment) ← orders (identity ALWAYS, enum, domain,
/// generated column, FK, check, partial and GIN indexes) and a lone audit table whose FK points
/// outside the run.
fn fixture() -> Catalog {
    Catalog {
        sequences: Vec::new(),
        functions: Vec::new(),
        collations: Vec::new(),
        tables: vec![audit(), customers(), orders()],
        types: shop_types(),
        extensions: vec![Extension {
            name: "citext".into(),
            schema: Ident::new("public"),
        }],
    }
}

/// customers: a serial key, a citext email, a collation and comments.
fn customers() -> Table {
    let mut customers = table("customers");
    customers.comment = Some("People who order; it's them".into());
    customers.columns = vec![
        Column {
            not_null: true,
            default_sql: Some("nextval('public.customers_id_seq'::regclass)".into()),
            ..column("id", "integer")
        },
        Column {
            not_null: true,
            comment: Some("login".into()),
            ..column("email", "public.citext")
        },
        Column {
            collation_sql: Some("pg_catalog.\"C\"".into()),
            ..column("Name", "text")
        },
    ];
    customers.constraints = vec![
        constraint(
            "customers_pkey",
            ConstraintKind::PrimaryKey,
            "PRIMARY KEY (id)",
        ),
        constraint(
            "customers_email_key",
            ConstraintKind::Unique,
            "UNIQUE (email)",
        ),
    ];
    customers.sequences = vec![Sequence {
        data_type: "integer".into(),
        max: i32::MAX as i64,
        ..sequence("customers", "id", false)
    }];
    customers
}

/// orders: an identity key ALWAYS, an enum, a domain, a generated column, a foreign key to
/// customers, checks (one NOT VALID), partial and GIN indexes.
fn orders() -> Table {
    let mut orders = table("orders");
    orders.columns = vec![
        Column {
            not_null: true,
            identity: Some(Identity::Always),
            ..column("id", "bigint")
        },
        Column {
            not_null: true,
            ..column("customer_id", "integer")
        },
        Column {
            default_sql: Some("'new'::shop.order_status".into()),
            ..column("status", "shop.order_status")
        },
        column("total", "shop.money_amount"),
        column("tags", "text[]"),
        column("details", "jsonb"),
        Column {
            generated_sql: Some("(total * 1.2)".into()),
            ..column("total_with_tax", "numeric")
        },
    ];
    orders.constraints = vec![
        constraint(
            "orders_pkey",
            ConstraintKind::PrimaryKey,
            "PRIMARY KEY (id)",
        ),
        constraint(
            "orders_customer_id_fkey",
            ConstraintKind::ForeignKey {
                references: QualifiedName::new("public", "customers"),
            },
            "FOREIGN KEY (customer_id) REFERENCES public.customers(id) ON DELETE CASCADE",
        ),
        constraint(
            "orders_total_check",
            ConstraintKind::Check,
            "CHECK ((total >= (0)::numeric))",
        ),
        constraint(
            "orders_old_check",
            ConstraintKind::Check,
            "CHECK ((id > 0)) NOT VALID",
        ),
    ];
    orders.indexes = vec![
        Index {
            name: Ident::new("orders_open_idx"),
            definition: "CREATE INDEX orders_open_idx ON public.orders USING btree (customer_id) WHERE (status = 'new'::shop.order_status)".into(),
            body: Some("btree (customer_id) WHERE (status = 'new'::shop.order_status)".into()),
        },
        Index {
            name: Ident::new("orders_details_idx"),
            definition: "CREATE INDEX orders_details_idx ON public.orders USING gin (details)".into(),
            body: Some("gin (details)".into()),
        },
    ];
    orders.sequences = vec![sequence("orders", "id", true)];
    orders
}

/// audit: no key, and a foreign key to a table outside the run.
fn audit() -> Table {
    let mut audit = table("audit");
    audit.columns = vec![column("id", "bigint"), column("user_id", "integer")];
    audit.constraints = vec![constraint(
        "audit_user_id_fkey",
        ConstraintKind::ForeignKey {
            references: QualifiedName::new("auth", "users"),
        },
        "FOREIGN KEY (user_id) REFERENCES auth.users(id)",
    )];
    audit
}

/// The fixture's user types: an enum and a domain with a check.
fn shop_types() -> Vec<UserType> {
    vec![
        UserType {
            name: QualifiedName::new("shop", "order_status"),
            requires: Default::default(),
            kind: TypeKind::Enum {
                labels: vec!["new".into(), "paid".into(), "it's shipped".into()],
            },
        },
        UserType {
            name: QualifiedName::new("shop", "money_amount"),
            requires: Default::default(),
            kind: TypeKind::Domain {
                base_sql: "numeric(12,2)".into(),
                collation_sql: None,
                default_sql: None,
                not_null: false,
                checks: vec![(
                    Ident::new("money_amount_check"),
                    "CHECK ((VALUE >= (0)::numeric))".into(),
                )],
            },
        },
    ]
}

fn options(staging: StagingKind) -> PlanOptions {
    PlanOptions {
        mode: Mode::Full,
        staging,
        link_kind: LinkKind::Dblink,
        masks: crate::mask::Masks::default(),
        filters: BTreeMap::new(),
        staging_schema: Ident::new("snapcopy"),
        link: ConnInfo::parse("host=/tmp port=5432 dbname=prod user=reader password=s3cret")
            .unwrap(),
        source_label: "reader@/tmp:5432/prod".into(),
        cursors: BTreeMap::new(),
        replace_unmanaged: false,
        data_only: false,
        create_missing: false,
        rebuild: false,
        batch_bytes: DEFAULT_BATCH_BYTES,
        split_bytes: DEFAULT_SPLIT_BYTES,
        split_ranges: 2,
        mark: None,
    }
}

/// The target after a first copy of the whole fixture: everything exists and is managed, with
/// the shapes as they are now, and matviews as staging objects.
fn copied(catalog: &Catalog) -> TargetState {
    let mut state = TargetState {
        dblink_schema: Some(Ident::new("public")),
        ..TargetState::default()
    };
    for t in &catalog.tables {
        state.managed.insert(t.name.clone(), Some(t.shape()));
        state.links.insert(t.name.clone(), "dblink".into());
        // The last copy read keys up to 1000.
        state.high_water.insert(t.name.clone(), "1000".into());
        state.existing_tables.insert(t.name.clone());
        state
            .fingerprints
            .insert(t.name.clone(), format!("fingerprint of {}", t.name.human()));
        state.staging_objects.insert(
            staging_name(&t.name),
            StagingObject {
                kind: StagingKind::Matview,
                unique_index: t
                    .constraints
                    .iter()
                    .any(|c| c.kind == ConstraintKind::PrimaryKey),
            },
        );
        for c in &t.constraints {
            state
                .existing_constraints
                .insert((t.name.clone(), c.name.raw().to_string()));
        }
    }
    for ty in &catalog.types {
        let labels = match &ty.kind {
            TypeKind::Enum { labels } => labels.clone(),
            _ => Vec::new(),
        };
        state.existing_types.insert(ty.name.clone(), labels);
    }
    state
}

/// The unit that holds a table.
fn unit_of<'a>(plan: &'a Plan, table: &str) -> &'a Unit {
    plan.units
        .iter()
        .find(|u| u.tables.iter().any(|t| t.name.human() == table))
        .unwrap_or_else(|| panic!("no unit holds {table}"))
}

/// The summary's note of `table` (its bare name) in `plan`.
fn note_of(plan: &Plan, table: &str) -> String {
    plan.units
        .iter()
        .flat_map(|u| &u.tables)
        .find(|t| t.name.name.raw() == table)
        .unwrap_or_else(|| panic!("no unit holds {table}"))
        .note()
}

/// The registry statements of `plan`.
fn records(plan: &Plan) -> Vec<String> {
    plan.units
        .iter()
        .flat_map(|u| u.steps.iter())
        .filter(|s| s.kind == StepKind::Record)
        .map(|s| s.sql.clone())
        .collect()
}

/// The registry statement of `table` (its bare name) in `plan`.
fn record_of(plan: &Plan, table: &str) -> String {
    records(plan)
        .into_iter()
        .find(|sql| sql.contains(&format!("'{table}'")))
        .unwrap_or_else(|| panic!("no registry statement for {table}"))
}

/// The first copy, through views, of [`large_fixture`] with keys from 1 to 1,000,000.
fn large_first_copy() -> Plan {
    let extent = Extent::Key {
        column: Ident::new("id"),
        min: 1,
        max: 1_000_000,
    };
    plan(
        &large_fixture(extent),
        &TargetState::default(),
        &options(StagingKind::View),
    )
}

/// A catalog whose customers (serial key) and orders (identity key) are large.
fn large_fixture(extent: Extent) -> Catalog {
    let mut catalog = fixture();
    for t in &mut catalog.tables {
        if t.name.name.raw() != "audit" {
            t.total_bytes = 1 << 30;
            t.extent = Some(extent.clone());
        }
    }
    catalog
}

/// The plan's statements in order, one line each: where each runs, its table, and what it does
/// (its leading keywords, and the dblink function it calls). A whole-plan snapshot of this
/// changes when the order changes, not when a statement does; the statements themselves are
/// in the builders' snapshots.
fn order(plan: &Plan) -> String {
    let mut out = String::from("setup\n");
    for step in &plan.setup {
        writeln!(out, "  {}", what(step)).unwrap();
    }
    for (name, _) in &plan.refused {
        writeln!(out, "refused {}", name.human()).unwrap();
    }
    for (n, unit) in plan.units.iter().enumerate() {
        let names: Vec<String> = unit
            .tables
            .iter()
            .map(|t| format!("{} ({})", t.name.human(), t.action.planned_word()))
            .collect();
        writeln!(out, "unit {}: {}", n + 1, names.join(", ")).unwrap();
        for split in &unit.splits {
            writeln!(
                out,
                "  split {}: {} ranges, {} index builds",
                unit.tables[split.table].name.human(),
                split.ranges.len(),
                split.indexes.len()
            )
            .unwrap();
            for step in &split.ranges[0].steps {
                writeln!(
                    out,
                    "    {:<11} {}",
                    format!("{:?}", step.phase),
                    what(step)
                )
                .unwrap();
            }
        }
        for step in &unit.steps {
            let table = step.table.map(|i| unit.tables[i].name.human());
            writeln!(
                out,
                "  {:<11} {:<17} {}",
                format!("{:?}", step.phase),
                table.unwrap_or_default(),
                what(step)
            )
            .unwrap();
        }
    }
    out
}

/// What a statement does, in a few words: `CREATE TABLE`, `SELECT dblink_exec`, and how it
/// runs when that is not plainly (`[rows]`).
fn what(step: &Step) -> String {
    let sql = step.text();
    let mut words: Vec<&str> = sql
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .take(3)
        .collect();
    let call = sql
        .find(".dblink")
        .map(|at| &sql[at + 1..])
        .and_then(|rest| rest.split('(').next());
    if let (Some(&"SELECT"), Some(call)) = (words.first(), call) {
        words.push(call);
    }
    let kind = match &step.kind {
        StepKind::Statement => "",
        StepKind::Rows => " [rows]",
        StepKind::Batch { .. } => " [batch]",
        StepKind::InsertMissing { .. } => " [insert missing]",
        StepKind::Merge => " [merge]",
        StepKind::Together { .. } => " [together]",
        StepKind::Synced { batch: None } => " [synced]",
        StepKind::Synced { batch: Some(_) } => " [synced batch]",
        StepKind::Record => " [record]",
        StepKind::Secret { .. } => " [secret]",
        StepKind::Claim => " [claim]",
        StepKind::Built => " [built]",
    };
    format!("{}{kind}", words.join(" "))
}

/// Statements as a snapshot shows them: each ends with `;`, and one longer than 100
/// characters is broken before its clauses (see `break_clauses`).
fn pretty(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        if let Some(note) = &step.note {
            writeln!(out, "-- {note}").unwrap();
        }
        let sql = step.text();
        if sql.len() <= 100 || sql.contains('\n') {
            writeln!(out, "{sql};").unwrap();
        } else {
            writeln!(out, "{};", break_clauses(sql)).unwrap();
        }
    }
    out
}

/// Puts a new line, indented by depth, before each clause of `sql` that is outside string
/// literals and at the top level or directly inside a long parenthesis (a CTE's body, not a
/// short subquery). The text is otherwise unchanged.
fn break_clauses(sql: &str) -> String {
    const CLAUSES: [&str; 8] = [
        " SELECT ",
        " FROM ",
        " WHERE ",
        " AS t(",
        " ON CONFLICT ",
        " EXCEPT ",
        ", ins AS (",
        "; SELECT ",
    ];
    let bytes = sql.as_bytes();
    // Where each parenthesis outside literals closes.
    let mut closes = std::collections::HashMap::new();
    let (mut open, mut quoted) = (Vec::new(), false);
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => open.push(i),
            b')' if !quoted => {
                if let Some(o) = open.pop() {
                    closes.insert(o, i);
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    let (mut stack, mut quoted) = (Vec::<bool>::new(), false);
    for (i, c) in sql.char_indices() {
        let breakable = !quoted
            && (stack.is_empty() || (stack.len() == 1 && stack[0]))
            && CLAUSES.iter().any(|k| sql[i..].starts_with(k))
            && !out.ends_with('(');
        if breakable {
            out.push('\n');
            out.push_str(&"    ".repeat(stack.len() + 1));
            if c == ' ' {
                continue;
            }
        }
        out.push(c);
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => stack.push(closes.get(&i).is_some_and(|e| e - i > 60)),
            ')' if !quoted => {
                stack.pop();
            }
            _ => {}
        }
    }
    out
}
