//! The setup's statements: snapcopy's own objects (the staging schema, the registry), the
//! link's (its extension, the foreign server and user mapping), then what the tables need that
//! the target lacks, each after what it needs, and last what the link needs to read them.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::link::Link;
use super::{Phase, PlanOptions, Purpose, Step, LOAD_MARKER};
use crate::source::{Catalog, Requirement, Table, TypeKind};
use crate::sql::{literal, Ident, QualifiedName};
use crate::target::{registry, ExtensionState, TargetState};

/// The setup's statements: snapcopy's own objects and the link, then what the tables need that
/// the target lacks, each after what it needs; nothing in `skip` (needed only by refused
/// tables).
pub(super) fn setup_steps(
    catalog: &Catalog,
    target: &TargetState,
    options: &PlanOptions,
    link: &dyn Link,
    skip: &BTreeSet<Requirement>,
    reached: &[&Table],
) -> Vec<Step> {
    let mut steps = own_objects(options);
    steps.extend(link.setup_steps());
    let needs = Needs {
        catalog,
        target,
        skip,
    };
    steps.extend(needs.extensions_and_schemas());
    steps.extend(needs.collations());
    steps.extend(needs.types_and_functions());
    steps.extend(needs.shared_sequences());
    let mut sequences: Vec<&QualifiedName> = reached
        .iter()
        .flat_map(|t| t.sequences.iter().map(|s| &s.name))
        .chain(
            catalog
                .sequences
                .iter()
                .map(|s| &s.sequence.name)
                .filter(|name| !skip.contains(&Requirement::Sequence((*name).clone()))),
        )
        .collect();
    sequences.sort();
    sequences.dedup();
    steps.extend(link.reach_steps(reached, &sequences));
    steps
}

/// The staging schema, marked as snapcopy's, the registry, and the sweep of load tables an
/// interrupted run left.
fn own_objects(options: &PlanOptions) -> Vec<Step> {
    let staging = &options.staging_schema;
    // Marked as snapcopy's, so that teardown never drops a schema snapcopy did not make.
    let mut steps = vec![
        Step::new(
            Phase::Setup,
            None,
            format!("CREATE SCHEMA IF NOT EXISTS {staging}"),
        ),
        Step::new(
            Phase::Setup,
            None,
            format!(
                "COMMENT ON SCHEMA {staging} IS {}",
                literal(crate::guard::STAGING_MARKER)
            ),
        ),
    ];
    steps.extend(
        registry::setup_sql(staging)
            .into_iter()
            .map(|sql| Step::new(Phase::Setup, None, sql)),
    );
    // A split load that was interrupted (the process killed before it could clean up) left its
    // load tables; no other run is using them, since runs take the target's run lock. Only
    // tables snapcopy marked as its load tables go.
    let sweep = format!(
        "DO {}",
        crate::sql::dollar_quoted(&format!(
            " DECLARE t text; BEGIN FOR t IN SELECT pg_catalog.format('%I.%I', n.nspname, \
             c.relname) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = \
             c.relnamespace WHERE n.nspname = {} AND c.relkind = 'r' AND c.relname LIKE 'load %' \
             AND pg_catalog.obj_description(c.oid, 'pg_class') = {} LOOP EXECUTE 'DROP TABLE ' \
             || t || ' CASCADE'; END LOOP; END ",
            literal(staging.raw()),
            literal(LOAD_MARKER)
        ))
    );
    steps.push(
        Step::new(Phase::Setup, None, sweep)
            .with_note("load tables left by an interrupted split load".into()),
    );
    steps
}

/// What the tables need that the target may lack, from the catalog, and what not to make
/// (`skip`: needed only by refused tables).
struct Needs<'a> {
    catalog: &'a Catalog,
    target: &'a TargetState,
    skip: &'a BTreeSet<Requirement>,
}

/// CREATE SCHEMA checks the CREATE privilege before IF NOT EXISTS, so `public`, which every
/// database has, is never named.
fn create_schema(schema: &Ident) -> Option<Step> {
    (schema.raw() != "public").then(|| {
        Step::new(
            Phase::Setup,
            None,
            format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
        )
    })
}

impl Needs<'_> {
    fn wanted(&self, r: &Requirement) -> bool {
        !self.skip.contains(r)
    }

    /// The extensions the tables need that the target has not, then the tables' and types'
    /// schemas.
    fn extensions_and_schemas(&self) -> Vec<Step> {
        let (catalog, target) = (self.catalog, self.target);
        let mut steps = Vec::new();
        for ext in &catalog.extensions {
            let requirement = Requirement::Extension(ext.name.clone());
            let state = target.extensions.get(&ext.name);
            if !self.wanted(&requirement)
                || matches!(
                    state,
                    Some(ExtensionState::Installed | ExtensionState::Missing)
                )
            {
                continue;
            }
            steps.extend(create_schema(&ext.schema));
            steps.push(
                Step::new(
                    Phase::Setup,
                    None,
                    format!(
                        "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}",
                        Ident::new(&ext.name),
                        ext.schema
                    ),
                )
                .with_purpose(Purpose::Prerequisite(requirement)),
            );
        }
        let mut schemas: BTreeSet<&Ident> = catalog.tables.iter().map(|t| &t.name.schema).collect();
        schemas.extend(catalog.types.iter().map(|t| &t.name.schema));
        for schema in schemas {
            steps.extend(create_schema(schema));
        }
        steps
    }

    /// Collations the target lacks.
    fn collations(&self) -> Vec<Step> {
        let (catalog, target) = (self.catalog, self.target);
        let mut steps = Vec::new();
        for collation in &catalog.collations {
            let requirement = Requirement::Collation(collation.name.clone());
            let (Some(options), false) = (
                &collation.options,
                target.existing_collations.contains(&collation.name),
            ) else {
                continue;
            };
            if self.wanted(&requirement) {
                steps.extend(create_schema(&collation.name.schema));
                steps.push(
                    Step::new(
                        Phase::Setup,
                        None,
                        format!(
                            "CREATE COLLATION IF NOT EXISTS {} ({options})",
                            collation.name
                        ),
                    )
                    .with_purpose(Purpose::Prerequisite(requirement)),
                );
            }
        }
        steps
    }

    /// Types and functions in one order, each after what it needs: a function may take a user
    /// type, a domain's check may call a function. A function the target has is left as it
    /// is. Function bodies are checked when they run, not when they are made (as pg_dump does):
    /// one may name tables that do not exist yet.
    fn types_and_functions(&self) -> Vec<Step> {
        let (catalog, target) = (self.catalog, self.target);
        let mut steps = Vec::new();
        let mut bodies_unchecked = false;
        for requirement in creation_order(catalog) {
            if !self.wanted(&requirement) {
                continue;
            }
            match &requirement {
                Requirement::Type(name) => {
                    let Some(ty) = catalog.types.iter().find(|t| &t.name == name) else {
                        continue;
                    };
                    let sql: Vec<String> = match (target.existing_types.get(&ty.name), &ty.kind) {
                        (None, _) => vec![create_type_sql(ty)],
                        (Some(have), TypeKind::Enum { labels }) => {
                            enum_additions(&ty.name, labels, have)
                        }
                        (Some(_), _) => Vec::new(),
                    };
                    steps.extend(sql.into_iter().map(|sql| {
                        Step::new(Phase::Setup, None, sql)
                            .with_purpose(Purpose::Prerequisite(requirement.clone()))
                    }));
                }
                Requirement::Function(signature) => {
                    let Some(f) = catalog.functions.iter().find(|f| &f.signature == signature)
                    else {
                        continue;
                    };
                    if target.existing_functions.contains(&f.key) {
                        continue;
                    }
                    if !bodies_unchecked {
                        steps.push(Step::new(
                            Phase::Setup,
                            None,
                            "SET LOCAL check_function_bodies = off".to_string(),
                        ));
                        bodies_unchecked = true;
                    }
                    steps.extend(create_schema(&f.name.schema));
                    steps.push(
                        Step::new(Phase::Setup, None, f.definition.trim_end().to_string())
                            .with_purpose(Purpose::Prerequisite(requirement.clone())),
                    );
                }
                _ => {}
            }
        }
        steps
    }

    /// Sequences that defaults call without owning them: made once, free-standing (a table of
    /// the run that owns one on the source takes it over with OWNED BY when it is created).
    fn shared_sequences(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        for shared in &self.catalog.sequences {
            let requirement = Requirement::Sequence(shared.sequence.name.clone());
            if !self.wanted(&requirement) {
                continue;
            }
            steps.extend(create_schema(&shared.sequence.name.schema));
            steps.push(
                Step::new(
                    Phase::Setup,
                    None,
                    format!(
                        "CREATE SEQUENCE IF NOT EXISTS {} {}",
                        shared.sequence.name,
                        shared.sequence.options_sql()
                    ),
                )
                .with_purpose(Purpose::Prerequisite(requirement)),
            );
        }
        steps
    }
}

/// Labels the source's enum has and the target's lacks, added where the source has them: after
/// the label before them in the source's order (or before the next one, for a new first
/// label). Labels only the target has stay; an enum label cannot be dropped. The setup commits
/// before any load, as PostgreSQL requires before a new label may be used.
pub(super) fn enum_additions(
    name: &QualifiedName,
    source: &[String],
    target: &[String],
) -> Vec<String> {
    let have = |l: &String, present: &[String]| present.contains(l);
    let mut present: Vec<String> = target.to_vec();
    let mut out = Vec::new();
    for (i, label) in source.iter().enumerate() {
        if have(label, &present) {
            continue;
        }
        let placement = match source[..i].iter().rev().find(|l| have(l, &present)) {
            Some(before) => format!(" AFTER {}", literal(before)),
            None => match source[i + 1..].iter().find(|l| have(l, &present)) {
                Some(after) => format!(" BEFORE {}", literal(after)),
                None => String::new(),
            },
        };
        out.push(format!(
            "ALTER TYPE {name} ADD VALUE IF NOT EXISTS {}{placement}",
            literal(label)
        ));
        let at = source[..i]
            .iter()
            .rev()
            .find_map(|l| present.iter().position(|p| p == l).map(|p| p + 1))
            .unwrap_or(0);
        present.insert(at, label.clone());
    }
    out
}

/// The user types and functions in an order that creates each after the types and functions it
/// needs (depth first, from the catalog's order: types, then functions).
fn creation_order(catalog: &Catalog) -> Vec<Requirement> {
    fn needs<'c>(r: &Requirement, catalog: &'c Catalog) -> Vec<&'c Requirement> {
        match r {
            Requirement::Type(name) => catalog
                .types
                .iter()
                .find(|t| &t.name == name)
                .map(|t| t.requires.iter().collect())
                .unwrap_or_default(),
            Requirement::Function(signature) => catalog
                .functions
                .iter()
                .find(|f| &f.signature == signature)
                .map(|f| f.requires.iter().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
    fn visit(
        r: &Requirement,
        catalog: &Catalog,
        visiting: &mut BTreeSet<Requirement>,
        out: &mut Vec<Requirement>,
    ) {
        // `visiting` ends a cycle (which no order could satisfy anyway).
        if !matches!(r, Requirement::Type(_) | Requirement::Function(_))
            || !visiting.insert(r.clone())
        {
            return;
        }
        for need in needs(r, catalog) {
            visit(need, catalog, visiting, out);
        }
        out.push(r.clone());
    }
    let mut visiting = BTreeSet::new();
    let mut out = Vec::new();
    let all = catalog
        .types
        .iter()
        .map(|t| Requirement::Type(t.name.clone()))
        .chain(
            catalog
                .functions
                .iter()
                .map(|f| Requirement::Function(f.signature.clone())),
        );
    for r in all {
        visit(&r, catalog, &mut visiting, &mut out);
    }
    out
}

fn create_type_sql(ty: &crate::source::UserType) -> String {
    match &ty.kind {
        TypeKind::Enum { labels } => format!(
            "CREATE TYPE {} AS ENUM ({})",
            ty.name,
            labels
                .iter()
                .map(|l| literal(l))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TypeKind::Domain {
            base_sql,
            collation_sql,
            default_sql,
            not_null,
            checks,
        } => {
            let mut sql = format!("CREATE DOMAIN {} AS {base_sql}", ty.name);
            if let Some(c) = collation_sql {
                write!(sql, " COLLATE {c}").unwrap();
            }
            if let Some(d) = default_sql {
                write!(sql, " DEFAULT {d}").unwrap();
            }
            if *not_null {
                sql.push_str(" NOT NULL");
            }
            for (name, def) in checks {
                write!(sql, " CONSTRAINT {name} {def}").unwrap();
            }
            sql
        }
        TypeKind::Composite { attributes } => format!(
            "CREATE TYPE {} AS ({})",
            ty.name,
            attributes
                .iter()
                .map(|(n, t, c)| match c {
                    Some(c) => format!("{n} {t} COLLATE {c}"),
                    None => format!("{n} {t}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TypeKind::Range { subtype_sql } => {
            format!("CREATE TYPE {} AS RANGE (SUBTYPE = {subtype_sql})", ty.name)
        }
    }
}
