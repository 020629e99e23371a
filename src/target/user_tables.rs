//! The user's own tables on the target (made by their migrations), as a data-only load needs to
//! know them: columns to match by name, the keys to respect, whether the connecting role owns
//! them, the sequences their columns draw from, and which of the source's column types the
//! target can assign to theirs. Only reads; queries in `sql/`.

use std::collections::BTreeMap;

use anyhow::Context;
use tokio_postgres::Client;

use super::state::{by_name, qualified};
use crate::source::{Catalog, Identity, Table};
use crate::sql::{Ident, QualifiedName};

/// One of the user's tables.
#[derive(Debug, Clone, Default)]
pub struct UserTable {
    /// Its columns, in order.
    pub columns: Vec<UserColumn>,
    /// Its foreign keys.
    pub foreign_keys: Vec<UserForeignKey>,
    /// The foreign keys of other tables that reference it: (table, key name).
    pub referenced_by: Vec<(QualifiedName, String)>,
    /// Whether it has a unique index (without a predicate), so that `ON CONFLICT DO NOTHING`
    /// can tell a row is there already.
    pub unique_key: bool,
    /// The connecting role owns it (or is a member of its owner): it may turn the table's
    /// triggers off for the load.
    pub owned: bool,
    /// A partitioned table.
    pub partitioned: bool,
    /// The sequences its columns draw from (owned, identity, or called by a default), each
    /// with the column.
    pub sequences: Vec<(Ident, QualifiedName)>,
    /// The source's columns that cannot go into its same-named column, with why (both types
    /// named).
    pub unassignable: Vec<String>,
}

/// A column of a user's table.
#[derive(Debug, Clone)]
pub struct UserColumn {
    /// The name the source's column must have.
    pub name: Ident,
    /// `format_type()` text.
    pub type_sql: String,
    /// A generated column: computes itself, never loaded.
    pub generated: bool,
    /// An identity column.
    pub identity: Option<Identity>,
    /// smallint, integer or bigint (a sequence it draws from is set from its maximum).
    pub integer: bool,
}

/// A foreign key of a user's table.
#[derive(Debug, Clone)]
pub struct UserForeignKey {
    /// Its name.
    pub name: Ident,
    /// The table it references.
    pub references: QualifiedName,
    /// DEFERRABLE: checked at the end of the unit's load.
    pub deferrable: bool,
}

impl UserTable {
    /// The column of that name.
    pub fn column(&self, name: &Ident) -> Option<&UserColumn> {
        self.columns.iter().find(|c| &c.name == name)
    }
}

/// Reads the user's tables among `names` that exist on the target, and asks the target (by
/// preparing, never running, an insert) whether each of the source's columns can go into the
/// same-named column where their types differ.
pub async fn read(
    client: &Client,
    catalog: &Catalog,
    names: &[&QualifiedName],
) -> anyhow::Result<BTreeMap<QualifiedName, UserTable>> {
    let mut tables: BTreeMap<QualifiedName, UserTable> = BTreeMap::new();
    if names.is_empty() {
        return Ok(tables);
    }
    for r in by_name(
        client,
        include_str!("sql/user_columns.sql"),
        names,
        "columns",
    )
    .await?
    {
        let table = tables.entry(qualified(&r, 0)).or_default();
        table.owned = r.get(7);
        table.partitioned = r.get(8);
        let Some(name) = r.get::<_, Option<String>>(2) else {
            continue;
        };
        table.columns.push(UserColumn {
            name: Ident::new(name),
            type_sql: r.get(3),
            generated: r.get(4),
            identity: match r.get::<_, String>(5).as_str() {
                "a" => Some(Identity::Always),
                "d" => Some(Identity::ByDefault),
                _ => None,
            },
            integer: r.get(6),
        });
    }
    for r in by_name(client, include_str!("sql/user_keys.sql"), names, "keys").await? {
        let Some(table) = tables.get_mut(&qualified(&r, 0)) else {
            continue;
        };
        match r.get::<_, &str>(2) {
            "out" => table.foreign_keys.push(UserForeignKey {
                name: Ident::new(r.get::<_, String>(3)),
                references: qualified(&r, 4),
                deferrable: r.get(6),
            }),
            _ => table.unique_key = true,
        }
    }
    for (dependent, on, key) in super::state::referencing(client, names).await? {
        if let Some(table) = tables.get_mut(&on) {
            table.referenced_by.push((dependent, key));
        }
    }
    for r in by_name(
        client,
        include_str!("sql/user_sequences.sql"),
        names,
        "sequences",
    )
    .await?
    {
        if let Some(table) = tables.get_mut(&qualified(&r, 0)) {
            table
                .sequences
                .push((Ident::new(r.get::<_, String>(2)), qualified(&r, 3)));
        }
    }
    for source in &catalog.tables {
        if let Some(table) = tables.get_mut(&source.name) {
            table.unassignable = unassignable(client, source, table).await?;
        }
    }
    Ok(tables)
}

/// The source's columns whose type differs from the same-named target column's and that the
/// target cannot assign (no assignment cast, or a type it lacks), each in words.
async fn unassignable(
    client: &Client,
    source: &Table,
    table: &UserTable,
) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for column in &source.columns {
        let Some(theirs) = table.column(&column.name).filter(|c| !c.generated) else {
            continue;
        };
        if theirs.type_sql == column.type_sql {
            continue;
        }
        // Parse analysis applies the assignment cast, or says there is none; nothing runs.
        let probe = format!(
            "INSERT INTO {} ({}) SELECT NULL::{}",
            source.name, column.name, column.type_sql
        );
        if let Err(e) = client.prepare(&probe).await {
            let why = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            if e.as_db_error().is_none() {
                return Err(e).context("could not compare column types on the target");
            }
            found.push(format!(
                "{}.{} is {} on the source and {} on the target, which PostgreSQL cannot \
                 assign ({why})",
                source.name.human(),
                column.name.raw(),
                column.type_sql,
                theirs.type_sql
            ));
        }
    }
    Ok(found)
}
