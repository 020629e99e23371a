//! What the chosen tables need on the target besides their own definitions: extensions whose
//! functions, operator classes or types they use, collations, user functions (of defaults,
//! checks, generated columns, index expressions, triggers and domain checks), user types and
//! shared sequences. Each is a [`Requirement`]; every table knows the full set it needs, so
//! that what the target cannot get refuses only the tables that need it.
//!
//! The objects are found as pg_dump finds what to create first: through pg_depend
//! (`sql/depends.sql`). Objects of an extension come with the extension.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use anyhow::Context;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

use crate::sql::{literal, QualifiedName};

/// Something that must exist on the target before the tables that need it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Requirement {
    /// An extension, by name.
    Extension(String),
    /// A collation.
    Collation(QualifiedName),
    /// A user-defined type.
    Type(QualifiedName),
    /// A user function, by its signature (`public.f(integer)`).
    Function(String),
    /// A sequence that column defaults call without owning it.
    Sequence(QualifiedName),
}

impl fmt::Display for Requirement {
    /// What a message calls it: `extension postgis`, `function public.f(integer)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Extension(name) => write!(f, "extension {name}"),
            Requirement::Collation(name) => write!(f, "collation {}", name.human()),
            Requirement::Type(name) => write!(f, "type {}", name.human()),
            Requirement::Function(signature) => write!(f, "function {signature}"),
            Requirement::Sequence(name) => write!(f, "sequence {}", name.human()),
        }
    }
}

/// A user function that a table's default, check, generated column, index or trigger calls.
#[derive(Debug, Clone)]
pub struct Function {
    /// Its schema and name.
    pub name: QualifiedName,
    /// `schema.name(argument types)`, as `regprocedure` prints it on the source.
    pub signature: String,
    /// The same by schema and type names (`public.f(pg_catalog.int4)`): equal on two servers
    /// exactly when the functions are the same one, to tell whether the target has it.
    pub key: String,
    /// `pg_get_functiondef`: the `CREATE OR REPLACE FUNCTION` statement.
    pub definition: String,
    /// What it needs in turn (argument and result types, functions, its language's extension).
    pub requires: BTreeSet<Requirement>,
}

/// A collation the tables' columns, indexes or types use.
#[derive(Debug, Clone)]
pub struct Collation {
    /// Its schema and name.
    pub name: QualifiedName,
    /// The `CREATE COLLATION` options (`provider = icu, locale = '...'`), or `None` for one
    /// only the server's own initialisation makes (the `pg_catalog` ones, from the OS).
    pub options: Option<String>,
}

/// The edges found, turned into requirements: of each table (by oid), type and function.
#[derive(Debug, Default)]
pub struct Depends {
    /// What each chosen table needs directly, by the table's oid.
    pub tables: HashMap<Oid, BTreeSet<Requirement>>,
    /// What each user type needs directly, by the type's oid (functions of domain checks,
    /// collations).
    pub types: HashMap<Oid, BTreeSet<Requirement>>,
    /// The user functions found, by signature.
    pub functions: BTreeMap<String, Function>,
    /// The collations found, by name.
    pub collations: BTreeMap<QualifiedName, Collation>,
    /// Types that functions use, to be walked like column types.
    pub function_types: BTreeSet<Oid>,
}

/// Reads what the tables (`tables`, oids; their triggers when `triggers`) and the user types
/// (`types`) depend on. `type_of` says what a type oid requires (its user type or extension);
/// types it does not know yet are returned in [`Depends::function_types`].
pub async fn read(
    client: &Client,
    tables: &[Oid],
    types: &[Oid],
    type_of: &HashMap<Oid, Requirement>,
    triggers: bool,
) -> anyhow::Result<Depends> {
    let rows = client
        .query(
            include_str!("sql/depends.sql"),
            &[&tables, &types, &triggers],
        )
        .await
        .context("could not read what the chosen tables depend on from the source")?;
    let mut out = Depends::default();
    let mut function_needs: Vec<(Oid, Requirement)> = Vec::new();
    let mut signature_of: HashMap<Oid, String> = HashMap::new();
    for r in &rows {
        let from_class: String = r.get("from_class");
        let from: Oid = r.get("from_oid");
        let to_class: String = r.get("to_class");
        let to: Oid = r.get("to_oid");
        let requirement = match r.get::<_, Option<String>>("extension") {
            Some(ext) => Some(Requirement::Extension(ext)),
            None => match to_class.as_str() {
                "pg_proc" => {
                    let schema: String = r.get("function_schema");
                    let definition: Option<String> = r.get("function_definition");
                    match definition {
                        Some(definition) if !builtin_schema(&schema) => {
                            let signature: String = r.get("signature");
                            signature_of.insert(to, signature.clone());
                            out.functions
                                .entry(signature.clone())
                                .or_insert_with(|| Function {
                                    name: QualifiedName::new(
                                        schema,
                                        r.get::<_, String>("function_name"),
                                    ),
                                    signature: signature.clone(),
                                    key: r.get("function_key"),
                                    definition,
                                    requires: BTreeSet::new(),
                                });
                            Some(Requirement::Function(signature))
                        }
                        _ => None,
                    }
                }
                "pg_collation" => {
                    let name = QualifiedName::new(
                        r.get::<_, String>("collation_schema"),
                        r.get::<_, String>("collation_name"),
                    );
                    let row: String = r.get("collation");
                    out.collations
                        .entry(name.clone())
                        .or_insert_with(|| Collation {
                            options: collation_options(&name, &row),
                            name: name.clone(),
                        });
                    Some(Requirement::Collation(name))
                }
                "pg_type" => {
                    if from_class == "pg_proc" && !type_of.contains_key(&to) {
                        out.function_types.insert(to);
                    }
                    type_of.get(&to).cloned()
                }
                _ => None,
            },
        };
        let Some(requirement) = requirement else {
            continue;
        };
        match from_class.as_str() {
            "pg_class" => {
                out.tables.entry(from).or_default().insert(requirement);
            }
            "pg_type" => {
                out.types.entry(from).or_default().insert(requirement);
            }
            _ => function_needs.push((from, requirement)),
        }
    }
    for (from, requirement) in function_needs {
        if let Some(f) = signature_of
            .get(&from)
            .and_then(|s| out.functions.get_mut(s))
        {
            if requirement != Requirement::Function(f.signature.clone()) {
                f.requires.insert(requirement);
            }
        }
    }
    Ok(out)
}

/// Schemas every server has with the same objects.
fn builtin_schema(schema: &str) -> bool {
    schema == "pg_catalog" || schema == "information_schema"
}

/// The `CREATE COLLATION` options for a `pg_collation` row (as JSON, whatever the server's
/// version calls its columns), or `None` when only the server's initialisation can make it.
fn collation_options(name: &QualifiedName, row: &str) -> Option<String> {
    if builtin_schema(name.schema.raw()) {
        return None;
    }
    let row: serde_json::Value = serde_json::from_str(row).ok()?;
    let text = |key: &str| row.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let mut options = match text("collprovider").as_deref() {
        // PostgreSQL 17 names the ICU locale colllocale, 15 and 16 colliculocale, older
        // versions keep it in collcollate.
        Some("i") => format!(
            "provider = icu, locale = {}",
            literal(
                &text("colllocale")
                    .or_else(|| text("colliculocale"))
                    .or_else(|| text("collcollate"))
                    .unwrap_or_default()
            )
        ),
        Some("c") => format!(
            "provider = libc, lc_collate = {}, lc_ctype = {}",
            literal(&text("collcollate").unwrap_or_default()),
            literal(&text("collctype").unwrap_or_default())
        ),
        _ => return None,
    };
    if let Some(rules) = text("collicurules") {
        options.push_str(&format!(", rules = {}", literal(&rules)));
    }
    if row.get("collisdeterministic").and_then(|v| v.as_bool()) == Some(false) {
        options.push_str(", deterministic = false");
    }
    Some(options)
}

/// Extensions of the source: schema and the extensions each requires.
pub async fn extensions(
    client: &Client,
) -> anyhow::Result<BTreeMap<String, (String, Vec<String>)>> {
    let rows = client
        .query(include_str!("sql/extensions.sql"), &[])
        .await
        .context("could not list the source's extensions")?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>("extname"),
                (r.get("nspname"), r.get("requires")),
            )
        })
        .collect())
}

/// Every requirement reachable from `start`, following what each requirement needs in turn.
pub fn closure(
    start: &BTreeSet<Requirement>,
    needs: &dyn Fn(&Requirement) -> Vec<Requirement>,
) -> BTreeSet<Requirement> {
    let mut out = BTreeSet::new();
    let mut pending: Vec<Requirement> = start.iter().cloned().collect();
    while let Some(r) = pending.pop() {
        if out.insert(r.clone()) {
            pending.extend(needs(&r));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collations_are_made_from_their_catalog_row_whatever_the_version() {
        let name = QualifiedName::new("public", "ci");
        let pg15 = r#"{"collprovider": "i", "colliculocale": "und-u-ks-level2", "collcollate": null, "collisdeterministic": false}"#;
        assert_eq!(
            collation_options(&name, pg15).as_deref(),
            Some("provider = icu, locale = 'und-u-ks-level2', deterministic = false")
        );
        let pg17 = r#"{"collprovider": "i", "colllocale": "de-DE", "collicurules": "&a < b", "collisdeterministic": true}"#;
        assert_eq!(
            collation_options(&name, pg17).as_deref(),
            Some("provider = icu, locale = 'de-DE', rules = '&a < b'")
        );
        let libc = r#"{"collprovider": "c", "collcollate": "C", "collctype": "C", "collisdeterministic": true}"#;
        assert_eq!(
            collation_options(&name, libc).as_deref(),
            Some("provider = libc, lc_collate = 'C', lc_ctype = 'C'")
        );
        assert_eq!(
            collation_options(&QualifiedName::new("pg_catalog", "de_DE.utf8"), libc),
            None
        );
    }

    #[test]
    fn a_closure_follows_what_each_requirement_needs() {
        let f = Requirement::Function("public.f()".into());
        let t = Requirement::Type(QualifiedName::new("public", "t"));
        let e = Requirement::Extension("postgis".into());
        let needs = |r: &Requirement| match r {
            Requirement::Function(_) => vec![t.clone()],
            Requirement::Type(_) => vec![e.clone(), f.clone()],
            _ => Vec::new(),
        };
        let start = BTreeSet::from([f.clone()]);
        assert_eq!(closure(&start, &needs), BTreeSet::from([f, t, e]));
    }
}
