//! Which tables a run works on: the patterns applied to the source's tables, or every managed
//! table; extension tables left to their extensions; the managed tables a full refresh must
//! bring along; and the tables refused before anything runs.

use std::collections::BTreeMap;

use anyhow::bail;

use crate::settings::{Settings, Verbosity};
use crate::source::{self, Candidate};
use crate::{pattern, plan, sql};

/// The tables named, or every managed table that the source still has; the managed tables it
/// no longer has come back as refusals. `Err` when nothing is named and nothing is managed.
pub fn tables_to_use(
    settings: &mut Settings,
    managed: &[crate::target::Managed],
    candidates: &[Candidate],
) -> anyhow::Result<Vec<Refusal>> {
    let mut gone = Vec::new();
    if !settings.include.is_empty() {
        return Ok(gone);
    }
    if managed.is_empty() {
        bail!(
            "no tables named, and snapcopy manages none in the target database yet: give \
             patterns such as 'public.*' or 'public.orders', or set tables in snapcopy.toml"
        );
    }
    for crate::target::Managed { name, .. } in managed {
        if candidates.iter().any(|c| &c.name == name) {
            settings.include.push(pattern::TablePattern::exact(name));
        } else {
            gone.push((
                name.clone(),
                format!(
                    "{} is managed by snapcopy but no longer exists on the source; drop it on \
                     the target if it is not needed any more",
                    name.human()
                ),
            ));
        }
    }
    Ok(gone)
}

/// The managed inheritance children, on the target, of the tables the plan rebuilds that are not
/// part of the run yet (dropping a parent drops them), with why each comes along.
pub fn children_to_rebuild(
    plan: &plan::Plan,
    state: &plan::TargetState,
    chosen: &[Candidate],
    candidates: &[Candidate],
    along: &mut BTreeMap<sql::QualifiedName, String>,
) -> Vec<Candidate> {
    let mut more: Vec<Candidate> = Vec::new();
    let rebuilt = plan
        .units
        .iter()
        .flat_map(|u| &u.tables)
        .filter(|t| t.action == plan::Action::Rebuild);
    for parent in rebuilt {
        for child in state.children.get(&parent.name).into_iter().flatten() {
            let Some(candidate) = candidates.iter().find(|c| &c.name == child) else {
                continue;
            };
            if state.managed.contains_key(child)
                && !chosen.iter().any(|c| &c.name == child)
                && !more.iter().any(|c| &c.name == child)
            {
                along.insert(
                    child.clone(),
                    format!(
                        "came along: it inherits from {}, which is rebuilt",
                        parent.name.human()
                    ),
                );
                more.push(candidate.clone());
            }
        }
    }
    more
}

/// Says which chosen tables lose their inheritance: those whose parents are neither part of
/// the run nor on the target already become tables of their own.
pub fn note_lone_children(
    settings: &Settings,
    chosen: &[Candidate],
    managed: &[crate::target::Managed],
) {
    if settings.verbosity == Verbosity::Quiet {
        return;
    }
    for c in chosen {
        let missing: Vec<String> = c
            .parents
            .iter()
            .filter(|p| !chosen.iter().any(|o| &o.name == *p))
            .filter(|p| !managed.iter().any(|m| !m.replaced && &m.name == *p))
            .map(|p| p.human())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "note: {} inherits from {}, which this run does not copy; it is copied as a \
                 table of its own with all its columns (copy its parents in the same run to \
                 keep the inheritance)",
                c.name.human(),
                missing.join(", ")
            );
        }
    }
}

/// The tables that need what the setup could not make, each with the first such thing (the setup
/// makes things in dependency order, so the first is the cause) and why.
pub fn tables_without(
    catalog: &source::Catalog,
    unmade: &[(plan::Purpose, String)],
) -> BTreeMap<sql::QualifiedName, String> {
    let mut out = BTreeMap::new();
    for table in &catalog.tables {
        let reason = unmade.iter().find_map(|(purpose, why)| match purpose {
            plan::Purpose::Prerequisite(r) if table.requires.contains(r) => Some(format!(
                "{} needs the {r}, which could not be made on the target: {why}",
                table.name.human()
            )),
            plan::Purpose::ForTable(name) if name == &table.name => Some(format!(
                "{}: its load table could not be made on the target: {why}",
                table.name.human()
            )),
            _ => None,
        });
        if let Some(reason) = reason {
            out.insert(table.name.clone(), reason);
        }
    }
    out
}

/// Adds to a full refresh the managed tables it cannot leave behind on the target: those with a
/// foreign key to a table it reloads (TRUNCATE empties them together, in one transaction),
/// repeatedly, with why each came along. Tables excluded on purpose stay out.
pub async fn bring_along(
    target: &tokio_postgres::Client,
    settings: &Settings,
    candidates: &[Candidate],
    managed: &[crate::target::Managed],
    mut chosen: Vec<Candidate>,
    along: &mut BTreeMap<sql::QualifiedName, String>,
) -> anyhow::Result<Vec<Candidate>> {
    loop {
        let names: Vec<&sql::QualifiedName> = chosen.iter().map(|c| &c.name).collect();
        let mut added = Vec::new();
        for (dependent, on, _) in crate::target::state::referencing(target, &names).await? {
            let wanted = managed.iter().any(|m| !m.replaced && m.name == dependent)
                && !names.contains(&&dependent)
                && !added.iter().any(|c: &Candidate| c.name == dependent)
                && !settings.exclude.iter().any(|p| p.matches(&dependent));
            let Some(candidate) = candidates.iter().find(|c| c.name == dependent) else {
                continue;
            };
            if !wanted {
                continue;
            }
            along.insert(
                dependent.clone(),
                format!(
                    "came along: it has a foreign key to {}, which is reloaded",
                    on.human()
                ),
            );
            added.push(candidate.clone());
        }
        if added.is_empty() {
            return Ok(chosen);
        }
        chosen.extend(source::with_partitions(candidates, added).0);
    }
}

/// Leaves the tables that extensions make to `CREATE EXTENSION`, as pg_dump does: a glob passes
/// over them, except that the rows an extension marks as user data (pg_extension_config_dump,
/// such as PostGIS's own spatial reference systems) are added to the target's table; naming one
/// is refused with why.
pub fn leave_extension_tables(
    settings: &Settings,
    chosen: Vec<Candidate>,
    refused: &mut Vec<Refusal>,
) -> Vec<Candidate> {
    let quiet = settings.verbosity == Verbosity::Quiet;
    let mut kept = Vec::new();
    for c in chosen {
        let Some(ext) = &c.extension else {
            kept.push(c);
            continue;
        };
        let named = settings
            .include
            .iter()
            .any(|p| !p.is_glob() && p.matches(&c.name));
        let (name, schema) = (c.name.human(), sql::human_ident(c.name.schema.raw()));
        if named {
            refused.push((
                c.name.clone(),
                format!(
                    "{name} belongs to the extension {}, which creates it on the target (CREATE \
                     EXTENSION), so snapcopy does not copy it, as pg_dump does not; {}",
                    ext.name,
                    match &c.user_rows {
                        Some(_) => format!(
                            "the rows the extension marks as user data come along with a \
                             pattern that covers it, such as '{schema}.*'"
                        ),
                        None => "leave it out of the run".to_string(),
                    }
                ),
            ));
            continue;
        }
        if !quiet {
            eprintln!(
                "note: {name} belongs to the extension {}, which creates it on the target; {}",
                ext.name,
                if c.user_rows.is_some() {
                    "the rows the extension marks as user data are added to it"
                } else {
                    "it is left out"
                }
            );
        }
        if c.user_rows.is_some() {
            kept.push(c);
        }
    }
    kept
}

/// Applies the patterns to the source's tables. A pattern that names nothing is an error
/// before anything changes, as is an empty selection. A partitioned table comes with all its
/// partitions; a partition named without its parent is copied as a plain table. Both are said.
pub type Refusal = (sql::QualifiedName, String);

pub fn choose(settings: &Settings, candidates: &[Candidate]) -> anyhow::Result<Vec<Candidate>> {
    // Every managed table is gone from the source: nothing to choose, and each says why.
    if settings.include.is_empty() {
        return Ok(Vec::new());
    }
    for pattern in &settings.include {
        if !candidates.iter().any(|c| pattern.matches(&c.name)) {
            if pattern.is_glob() {
                bail!(
                    "the pattern {pattern} matches no table on the source {}; list the tables \
                     with psql's \\dt and check the schema name",
                    settings.source.label()
                );
            }
            bail!(
                "table {pattern} not found on the source {}; check the name (psql's \\dt lists \
                 the tables), and double-quote names with upper case",
                settings.source.label()
            );
        }
    }
    let chosen: Vec<Candidate> = candidates
        .iter()
        .filter(|c| {
            settings.include.iter().any(|p| p.matches(&c.name))
                && !settings.exclude.iter().any(|p| p.matches(&c.name))
        })
        .cloned()
        .collect();
    if chosen.is_empty() {
        bail!(
            "every table the patterns matched is excluded; nothing to copy: loosen --exclude \
             (or exclude in snapcopy.toml)"
        );
    }
    let chosen_oids: std::collections::BTreeSet<_> = chosen.iter().map(|c| c.oid).collect();
    let quiet = settings.verbosity == Verbosity::Quiet;
    for c in &chosen {
        if c.is_partition && !c.parent_oid.is_some_and(|p| chosen_oids.contains(&p)) && !quiet {
            eprintln!(
                "note: {} is a partition; it is copied as a plain table with its own rows \
                 (name its parent to copy the whole partitioned table)",
                c.name.human()
            );
        }
    }
    let (expanded, trees) = source::with_partitions(candidates, chosen);
    for (root, count) in trees {
        if !quiet {
            eprintln!(
                "note: {} is partitioned; its {count} partitions are copied with it",
                root.human()
            );
        }
    }
    Ok(expanded)
}
