//! The user types the columns (and functions) use, walked recursively from their oids: enums,
//! domains, composites and ranges to create, and what every type met requires on the target.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_postgres::types::Oid;
use tokio_postgres::Client;

use super::read::query;
use super::{Extension, Requirement, TypeKind, UserType};
use crate::sql::{Ident, QualifiedName};

/// One attribute of a composite type: name, type text, collation, and the type's oid (to
/// follow dependencies).
struct Attribute {
    name: Ident,
    type_sql: String,
    collation_sql: Option<String>,
    type_oid: Oid,
}

/// Attributes of composite types, by the type's `pg_class` oid.
type Attributes = HashMap<Oid, Vec<Attribute>>;

/// Facts about one type, as `types.sql` returns them.
struct TypeRow {
    name: QualifiedName,
    typtype: String,
    array_element: Oid,
    base: Oid,
    relid: Oid,
    range_subtype: Oid,
    extension: Option<Extension>,
    base_sql: Option<String>,
    collation_sql: Option<String>,
    default_sql: Option<String>,
    not_null: bool,
}

/// Walks from the columns' types to every user-defined type they need, and returns those in
/// dependency order (a type after everything it is built from) with the extensions used.
pub(super) async fn user_types(client: &Client, roots: BTreeSet<Oid>) -> anyhow::Result<TypeWalk> {
    let met = Met::read(client, &roots).await?;
    let user = met.user_types();
    let (mut labels, mut checks) = labels_and_checks(client, &user).await?;
    let (ordered, extensions) = met.order(&roots);
    let user: BTreeSet<Oid> = user.into_iter().collect();
    let requirement = met.requirements(&user);
    let types = ordered
        .into_iter()
        .filter(|o| user.contains(o))
        .map(|oid| {
            let f = &met.facts[&oid];
            let requires: BTreeSet<Requirement> = met
                .parts(oid)
                .into_iter()
                .filter(|p| *p != oid)
                .filter_map(|p| requirement.get(&p).cloned())
                .collect();
            let kind = met.kind(
                oid,
                labels.remove(&oid).unwrap_or_default(),
                checks.remove(&oid).unwrap_or_default(),
            );
            (
                oid,
                UserType {
                    name: f.name.clone(),
                    kind,
                    requires,
                },
            )
        })
        .collect();
    Ok(TypeWalk {
        types,
        requirement,
        extensions: extensions.into_iter().map(|e| (e.name, e.schema)).collect(),
    })
}

/// Every type met on the walk, and the attributes of the composite ones.
struct Met {
    facts: HashMap<Oid, TypeRow>,
    attrs: Attributes,
}

impl Met {
    /// Reads the types from `roots` on, through array elements, domain bases, range subtypes
    /// and composite attributes, until nothing new turns up. Types of extensions and built-in
    /// ones are met but not walked through.
    async fn read(client: &Client, roots: &BTreeSet<Oid>) -> anyhow::Result<Met> {
        let mut facts: HashMap<Oid, TypeRow> = HashMap::new();
        let mut composite_attrs: Attributes = HashMap::new();
        let mut pending: BTreeSet<Oid> = roots.clone();
        while !pending.is_empty() {
            let batch: Vec<Oid> = pending.iter().copied().collect();
            pending.clear();
            let rows = query(
                client,
                include_str!("sql/types.sql"),
                &batch,
                "column types",
            )
            .await?;
            let mut composites = Vec::new();
            for r in rows {
                let oid: Oid = r.get("oid");
                let schema: String = r.get("nspname");
                let row = TypeRow {
                    name: QualifiedName::new(schema.clone(), r.get::<_, String>("typname")),
                    typtype: r.get("typtype"),
                    array_element: r.get("array_element"),
                    base: r.get("typbasetype"),
                    relid: r.get("typrelid"),
                    range_subtype: r.get("range_subtype"),
                    extension: super::read::extension_of(&r),
                    base_sql: r.get("base_sql"),
                    collation_sql: r.get("collation_sql"),
                    default_sql: r.get("default_sql"),
                    not_null: r.get("typnotnull"),
                };
                let builtin = schema == "pg_catalog" || schema == "information_schema";
                if row.extension.is_none() && !builtin {
                    for dep in [row.array_element, row.base, row.range_subtype] {
                        if dep != 0 && !facts.contains_key(&dep) {
                            pending.insert(dep);
                        }
                    }
                    if row.typtype == "c" {
                        composites.push(row.relid);
                    }
                } else if row.array_element != 0 && !facts.contains_key(&row.array_element) {
                    pending.insert(row.array_element);
                }
                facts.insert(oid, row);
            }
            if !composites.is_empty() {
                for r in query(
                    client,
                    include_str!("sql/composite_attributes.sql"),
                    &composites,
                    "composite type attributes",
                )
                .await?
                {
                    let typ: Oid = r.get("atttypid");
                    composite_attrs
                        .entry(r.get("attrelid"))
                        .or_default()
                        .push(Attribute {
                            name: Ident::new(r.get::<_, String>("attname")),
                            type_sql: r.get("type_sql"),
                            collation_sql: r.get("collation_sql"),
                            type_oid: typ,
                        });
                    if !facts.contains_key(&typ) {
                        pending.insert(typ);
                    }
                }
            }
            pending.retain(|o| !facts.contains_key(o));
        }

        Ok(Met {
            facts,
            attrs: composite_attrs,
        })
    }

    /// The user-defined types met: enums, domains, composites and ranges outside the
    /// catalogs and extensions.
    fn user_types(&self) -> Vec<Oid> {
        let facts = &self.facts;
        facts
            .iter()
            .filter(|(_, f)| {
                f.extension.is_none()
                    && f.array_element == 0
                    && matches!(f.typtype.as_str(), "e" | "d" | "c" | "r")
                    && f.name.schema.raw() != "pg_catalog"
                    && f.name.schema.raw() != "information_schema"
            })
            .map(|(o, _)| *o)
            .collect()
    }

    /// The types a type is made of: element, base, subtype, attributes' types.
    fn parts(&self, oid: Oid) -> Vec<Oid> {
        let Some(f) = self.facts.get(&oid) else {
            return Vec::new();
        };
        let mut parts = vec![f.array_element, f.base, f.range_subtype];
        if let Some(a) = self.attrs.get(&f.relid) {
            parts.extend(a.iter().map(|attr| attr.type_oid));
        }
        parts.retain(|p| *p != 0);
        parts
    }

    /// Dependency order: depth-first from each root, a type after its parts; with the
    /// extensions whose types were met.
    fn order(&self, roots: &BTreeSet<Oid>) -> (Vec<Oid>, BTreeSet<Extension>) {
        fn visit(
            met: &Met,
            oid: Oid,
            seen: &mut BTreeSet<Oid>,
            ordered: &mut Vec<Oid>,
            extensions: &mut BTreeSet<Extension>,
        ) {
            if !seen.insert(oid) {
                return;
            }
            let Some(f) = met.facts.get(&oid) else { return };
            if let Some(ext) = &f.extension {
                extensions.insert(ext.clone());
                return;
            }
            for dep in met.parts(oid) {
                visit(met, dep, seen, ordered, extensions);
            }
            ordered.push(oid);
        }
        let mut ordered = Vec::new();
        let mut seen = BTreeSet::new();
        let mut extensions = BTreeSet::new();
        for root in roots {
            visit(self, *root, &mut seen, &mut ordered, &mut extensions);
        }
        (ordered, extensions)
    }

    /// What each type met requires on the target: itself when it is a user type, its
    /// extension, its element's requirement for an array, nothing for a built-in one.
    fn requirements(&self, user: &BTreeSet<Oid>) -> HashMap<Oid, Requirement> {
        fn requirement_of(
            oid: Oid,
            facts: &HashMap<Oid, TypeRow>,
            user: &BTreeSet<Oid>,
        ) -> Option<Requirement> {
            let f = facts.get(&oid)?;
            if let Some(ext) = &f.extension {
                return Some(Requirement::Extension(ext.name.clone()));
            }
            if user.contains(&oid) {
                return Some(Requirement::Type(f.name.clone()));
            }
            if f.array_element != 0 && f.array_element != oid {
                return requirement_of(f.array_element, facts, user);
            }
            None
        }
        self.facts
            .keys()
            .filter_map(|oid| Some((*oid, requirement_of(*oid, &self.facts, user)?)))
            .collect()
    }

    /// What a user type is, from its facts and its enum labels or domain checks.
    fn kind(&self, oid: Oid, labels: Vec<String>, checks: Vec<(Ident, String)>) -> TypeKind {
        let (f, facts, composite_attrs) = (&self.facts[&oid], &self.facts, &self.attrs);
        match f.typtype.as_str() {
            "e" => TypeKind::Enum { labels },
            "d" => TypeKind::Domain {
                base_sql: f.base_sql.clone().unwrap_or_default(),
                collation_sql: f.collation_sql.clone(),
                default_sql: f.default_sql.clone(),
                not_null: f.not_null,
                checks,
            },
            "r" => TypeKind::Range {
                subtype_sql: facts
                    .get(&f.range_subtype)
                    .map(|s| s.name.to_string())
                    .unwrap_or_default(),
            },
            _ => TypeKind::Composite {
                attributes: composite_attrs
                    .get(&f.relid)
                    .map(|a| {
                        a.iter()
                            .map(|a| (a.name.clone(), a.type_sql.clone(), a.collation_sql.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        }
    }
}

/// The labels of the enums and the checks of the domains among `user`.
async fn labels_and_checks(
    client: &Client,
    user: &[Oid],
) -> anyhow::Result<(
    HashMap<Oid, Vec<String>>,
    HashMap<Oid, Vec<(Ident, String)>>,
)> {
    let mut labels: HashMap<Oid, Vec<String>> = HashMap::new();
    let mut checks: HashMap<Oid, Vec<(Ident, String)>> = HashMap::new();
    if !user.is_empty() {
        for r in query(
            client,
            include_str!("sql/enum_labels.sql"),
            user,
            "enum labels",
        )
        .await?
        {
            labels
                .entry(r.get("enumtypid"))
                .or_default()
                .push(r.get("enumlabel"));
        }
        for r in query(
            client,
            include_str!("sql/domain_constraints.sql"),
            user,
            "domain constraints",
        )
        .await?
        {
            checks.entry(r.get("contypid")).or_default().push((
                Ident::new(r.get::<_, String>("conname")),
                r.get("definition"),
            ));
        }
    }

    Ok((labels, checks))
}

/// The user types that columns (and functions) need, and what every type met requires.
pub(super) struct TypeWalk {
    /// User types in dependency order, with their oids.
    pub(super) types: Vec<(Oid, UserType)>,
    /// What each type oid met requires on the target (see `requirement_of`).
    pub(super) requirement: HashMap<Oid, Requirement>,
    /// Extensions of the types met, with their schemas.
    pub(super) extensions: BTreeMap<String, Ident>,
}
