//! What happens to each table: the mode, the registry and the flags give each chosen table its
//! action and the reason, or refuse it with why; inheritance ties tables that are made together;
//! and foreign keys the run cannot keep are said.

use std::collections::{BTreeMap, BTreeSet};

use super::data_only;
use super::refresh::Refresh;
use super::{Action, PlanOptions, Pushdown, TableInfo};
use crate::source::{Catalog, Constraint, ConstraintKind, Requirement, Table};
use crate::sql::QualifiedName;
use crate::target::{ExtensionState, TargetState};

/// What the decisions of a run come to.
pub(super) struct Decided {
    /// The tables the run copies, each with what happens to it.
    pub(super) accepted: Vec<(Table, TableInfo)>,
    /// The tables it does not, with why.
    pub(super) refused: Vec<(QualifiedName, String)>,
    /// Things the user should know (foreign keys skipped, children detached).
    pub(super) warnings: Vec<String>,
}

/// Decides what happens to each of `catalog`'s tables.
pub(super) fn decide(
    catalog: &Catalog,
    target: &TargetState,
    options: &PlanOptions,
    mode: &dyn Refresh,
    subsets: &super::subset::Subsets,
) -> Decided {
    let mut refused = Vec::new();
    // What the target server cannot have refuses the tables that need it, before anything
    // changes; the other tables go on.
    let unavailable = unavailable(catalog, target);
    let chosen: BTreeSet<&QualifiedName> = catalog.tables.iter().map(|t| &t.name).collect();
    let mut accepted: Vec<(Table, TableInfo)> = Vec::new();
    let mut warnings = Vec::new();
    for table in &catalog.tables {
        // Into the user's own table, or as snapcopy's: each way says what happens, or why not.
        let judged = match data_only::way(table, target, options) {
            data_only::Way::Theirs(theirs) => data_only::verdict(
                table, theirs, target, options, mode, &chosen,
            )
            .map(|(decision, load, said)| {
                warnings.extend(said);
                (decision, load, true)
            }),
            data_only::Way::Missing(why) => Err(why),
            data_only::Way::Managed => managed(table, target, options, mode, &unavailable)
                .map(|decision| (decision, table.clone(), false)),
        };
        match judged {
            Ok((decision, load, data_only)) => {
                let info = table_info(table, decision, options, subsets, data_only);
                accepted.push((load, info));
            }
            Err(why) => refused.push((table.name.clone(), why)),
        }
    }
    tie_inheritance(&mut accepted, target);
    warnings.extend(detached_children(&accepted, target));
    warnings.extend(skipped_foreign_keys(&accepted, &chosen, target));
    Decided {
        accepted,
        refused,
        warnings,
    }
}

/// What happens to a table loaded as snapcopy's own: refused when the target cannot have
/// what it needs or the link cannot read it, else the verdict (with why it came along).
fn managed(
    table: &Table,
    target: &TargetState,
    options: &PlanOptions,
    mode: &dyn Refresh,
    unavailable: &BTreeMap<Requirement, String>,
) -> Result<Decision, String> {
    let missing = table
        .requires
        .iter()
        .find_map(|r| unavailable.get(r).map(|why| (r, why)));
    if let Some((requirement, why)) = missing {
        return Err(format!(
            "{} needs the {requirement}, which {why}",
            table.name.human()
        ));
    }
    if let Some(why) = target.cannot_make.get(&table.name) {
        return Err(why.clone());
    }
    if let Some(why) = super::link::cannot_read(options.link_kind, table) {
        return Err(why);
    }
    verdict(table, target, options, mode).map(|mut d| {
        if d.reason.is_none() {
            d.reason = target.along.get(&table.name).cloned();
        }
        d
    })
}

/// What the plan knows of an accepted table (`table` is the source's).
fn table_info(
    table: &Table,
    mut d: Decision,
    options: &PlanOptions,
    subsets: &super::subset::Subsets,
    data_only: bool,
) -> TableInfo {
    // A masked growing column cannot be compared with the source's: every key is. A subset is
    // read whole: a new row may reference an old one not copied before.
    if let Some(Pushdown::Above(c)) = &d.pushdown {
        if options.masks.rule(&table.name, &c.column).is_some() || subsets.limits(&table.name) {
            d.pushdown = Some(Pushdown::AllKeys);
        }
    }
    TableInfo {
        name: table.name.clone(),
        action: d.action,
        changes: d.changes,
        reason: d.reason,
        pushdown: d.pushdown,
        estimated_rows: table.rows_with_partitions(),
        estimated_bytes: table.data_bytes_with_partitions(),
        split: None,
        link: options.link_kind,
        subset: subsets.limits(&table.name),
        data_only,
    }
}

/// What happens to one table the target can have: made, taken over, refused, or what the
/// mode says for a table snapcopy manages.
fn verdict(
    table: &Table,
    target: &TargetState,
    options: &PlanOptions,
    mode: &dyn Refresh,
) -> Result<Decision, String> {
    let exists = target.existing_tables.contains(&table.name);
    match (exists, target.managed.get(&table.name)) {
        _ if table.user_rows.is_some() => Ok(Decision {
            reason: Some("the extension makes the table; its user rows are added".into()),
            ..Decision::new(Action::UserRows)
        }),
        (false, _) => Ok(Decision::new(Action::Create)),
        (true, None) if options.replace_unmanaged => Ok(Decision {
            reason: Some("took over a table snapcopy did not create".into()),
            ..Decision::new(Action::Rebuild)
        }),
        (true, None) if target.replaced.contains(&table.name) => Err(format!(
            "{} on the target is not the table snapcopy made: it was dropped and made \
                 again there since the last copy, so snapcopy leaves it and its rows alone; \
                 drop or rename it there, leave it out with --exclude, or take it over with \
                 --replace-unmanaged",
            table.name.human()
        )),
        (true, None) => Err(format!(
            "{} already exists on the target and snapcopy did not create it; drop or \
                 rename it there, leave it out with --exclude, or take it over with \
                 --replace-unmanaged",
            table.name.human()
        )),
        (true, Some(stored)) => {
            let changes = stored
                .as_ref()
                .map(|old| table.shape().changes_since(old))
                .unwrap_or_default();
            if options.rebuild {
                Ok(Decision {
                    changes,
                    reason: Some("dropped and created anew (--rebuild)".into()),
                    ..Decision::new(Action::Rebuild)
                })
            } else {
                mode.existing(table, changes, options.cursors.get(&table.name))
            }
        }
    }
}

/// A table made in this run inherits from its parents when each is part of the run or is on
/// the target already; otherwise it is one of its own. Dropping an inheritance parent drops
/// its children: those in the run are made anew with it.
fn tie_inheritance(accepted: &mut [(Table, TableInfo)], target: &TargetState) {
    let in_run: BTreeSet<QualifiedName> = accepted.iter().map(|(t, _)| t.name.clone()).collect();
    for (table, _) in accepted.iter_mut() {
        if table
            .parents
            .iter()
            .all(|p| in_run.contains(p) || target.managed.contains_key(p))
        {
            table.inherits = table.parents.clone();
        }
    }
    loop {
        let rebuilt: BTreeSet<QualifiedName> = accepted
            .iter()
            .filter(|(_, i)| i.action == Action::Rebuild)
            .map(|(t, _)| t.name.clone())
            .collect();
        let mut changed = false;
        for (table, info) in accepted.iter_mut() {
            if info.action != Action::Reload {
                continue;
            }
            if let Some(parent) = table.inherits.iter().find(|p| rebuilt.contains(*p)) {
                info.action = Action::Rebuild;
                info.reason = Some(format!(
                    "made anew with its parent {}, which is rebuilt",
                    parent.human()
                ));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// The warnings for the children only the target has of tables the run rebuilds: they are
/// detached first and keep their rows.
fn detached_children(accepted: &[(Table, TableInfo)], target: &TargetState) -> Vec<String> {
    let in_run: BTreeSet<&QualifiedName> = accepted.iter().map(|(t, _)| &t.name).collect();
    let mut warnings = Vec::new();
    for (table, info) in accepted {
        if info.action != Action::Rebuild {
            continue;
        }
        for child in target.children.get(&table.name).into_iter().flatten() {
            if !in_run.contains(child) {
                warnings.push(format!(
                    "{} inherits from {} on the target and is not part of this run: it is \
                     detached (NO INHERIT) before {} is rebuilt, and keeps its rows",
                    child.human(),
                    table.name.human(),
                    table.name.human()
                ));
            }
        }
    }
    warnings
}

/// The warnings for the foreign keys the run cannot keep: to a table outside the run, or to
/// one refused, a foreign key is skipped where the run makes the table; one the target has
/// already stays (a reload keeps it), with nothing to say.
fn skipped_foreign_keys(
    accepted: &[(Table, TableInfo)],
    chosen: &BTreeSet<&QualifiedName>,
    target: &TargetState,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let copied: BTreeSet<&QualifiedName> = accepted.iter().map(|(t, _)| &t.name).collect();
    for (table, info) in accepted {
        let stays = |c: &Constraint| {
            !info.action.creates()
                && target
                    .existing_constraints
                    .contains(&(table.name.clone(), c.name.raw().to_string()))
        };
        for c in &table.constraints {
            if let ConstraintKind::ForeignKey { references } = &c.kind {
                if !copied.contains(references) && !stays(c) && info.action != Action::UserRows {
                    warnings.push(if chosen.contains(references) {
                        format!(
                            "foreign key {} of {} is skipped: it references {}, which is not \
                             copied (its error says why)",
                            c.name.raw(),
                            table.name.human(),
                            references.human()
                        )
                    } else {
                        format!(
                            "foreign key {} of {} is skipped: it references {}, which is not \
                             part of this run; copy both tables in one run to keep it",
                            c.name.raw(),
                            table.name.human(),
                            references.human()
                        )
                    });
                }
            }
        }
    }
    warnings
}

/// A refresh mode's verdict on one table.
pub struct Decision {
    pub(super) action: Action,
    pub(super) changes: Vec<String>,
    pub(super) reason: Option<String>,
    pub(super) pushdown: Option<Pushdown>,
}

impl Decision {
    pub(super) fn new(action: Action) -> Decision {
        Decision {
            action,
            changes: Vec::new(),
            reason: None,
            pushdown: None,
        }
    }
}

/// What the tables need that the target server cannot have, with why, in words that follow
/// "which": an extension whose package is not installed there, a collation of the operating
/// system's locales that it lacks.
fn unavailable(catalog: &Catalog, target: &TargetState) -> BTreeMap<Requirement, String> {
    let mut out = BTreeMap::new();
    for ext in &catalog.extensions {
        if target.extensions.get(&ext.name) == Some(&ExtensionState::Missing) {
            out.insert(
                Requirement::Extension(ext.name.clone()),
                format!(
                    "is not installed on the target server: install its package there ({}) and \
                     run snapcopy again",
                    crate::exec::package_for(&ext.name)
                ),
            );
        }
    }
    for collation in &catalog.collations {
        if collation.options.is_none() && !target.existing_collations.contains(&collation.name) {
            out.insert(
                Requirement::Collation(collation.name.clone()),
                "comes from the operating system's locales and the target server lacks it: \
                 install that locale on the target server's machine, run SELECT \
                 pg_import_system_collations('pg_catalog') there as a superuser, and run \
                 snapcopy again"
                    .to_string(),
            );
        }
    }
    out
}
