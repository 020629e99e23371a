//! The parts of the chosen tables, each from its query in `sql/`: sizes, columns,
//! constraints, indexes, owned sequences and triggers.

use std::collections::{BTreeSet, HashMap};

use anyhow::Context;
use tokio_postgres::types::Oid;
use tokio_postgres::Client;

use super::read::query;
use super::*;
use crate::sql::{Ident, QualifiedName};

/// The chosen tables as their parts are read into them.
pub(super) struct Parts<'a> {
    pub(super) client: &'a Client,
    /// The chosen tables' oids, in the order of `tables`.
    pub(super) oids: Vec<Oid>,
    /// Partitions whose parent is not copied: they become plain tables and keep what they
    /// inherit.
    pub(super) standalone: Vec<Oid>,
    /// Each oid's place in `tables`.
    pub(super) position: HashMap<Oid, usize>,
    pub(super) tables: Vec<Table>,
}

impl<'a> Parts<'a> {
    /// The chosen tables, bare.
    pub(super) fn new(client: &'a Client, chosen: &[Candidate]) -> Parts<'a> {
        let oids: Vec<Oid> = chosen.iter().map(|c| c.oid).collect();
        let chosen_oids: BTreeSet<Oid> = oids.iter().copied().collect();
        let standalone: Vec<Oid> = chosen
            .iter()
            .filter(|c| c.parent_oid.is_some_and(|p| !chosen_oids.contains(&p)))
            .map(|c| c.oid)
            .collect();
        let tables: Vec<Table> = chosen
            .iter()
            .map(|c| Table {
                oid: c.oid,
                name: c.name.clone(),
                comment: c.comment.clone(),
                columns: Vec::new(),
                constraints: Vec::new(),
                indexes: Vec::new(),
                sequences: Vec::new(),
                estimated_rows: c.estimated_rows,
                total_bytes: 0,
                data_bytes: 0,
                rows_deleted: 0,
                partition_by: c.partkey.clone(),
                partition_of: None,
                partitions: Vec::new(),
                extent: None,
                user_rows: c.extension.as_ref().and(c.user_rows.clone()),
                requires: BTreeSet::new(),
                triggers: Vec::new(),
                inherits: Vec::new(),
                parents: c.parents.clone(),
                has_children: c.has_children,
            })
            .collect();
        let position = oids.iter().enumerate().map(|(i, o)| (*o, i)).collect();
        Parts {
            client,
            oids,
            standalone,
            position,
            tables,
        }
    }

    fn table(&mut self, oid: Oid) -> &mut Table {
        &mut self.tables[self.position[&oid]]
    }

    /// Sizes, only for the chosen tables: on a source with thousands of tables, measuring
    /// them all would stat every file of the database.
    pub(super) async fn sizes(&mut self) -> anyhow::Result<()> {
        let (client, oids) = (self.client, &self.oids);
        for r in client
            .query(
                "SELECT t.oid, pg_catalog.pg_total_relation_size(t.oid), \
             pg_catalog.pg_table_size(t.oid), pg_catalog.pg_stat_get_tuples_deleted(t.oid) \
             FROM unnest($1::oid[]) AS t(oid)",
                &[oids],
            )
            .await
            .context("could not read the sizes of the chosen tables on the source")?
        {
            let table = self.table(r.get::<_, Oid>(0));
            table.total_bytes = r.get(1);
            table.data_bytes = r.get(2);
            table.rows_deleted = r.get(3);
        }

        Ok(())
    }

    /// The columns; returns the types each table's columns use.
    pub(super) async fn columns(&mut self) -> anyhow::Result<HashMap<Oid, BTreeSet<Oid>>> {
        let (client, oids) = (self.client, &self.oids);
        let mut column_types: HashMap<Oid, BTreeSet<Oid>> = HashMap::new();
        for r in query(client, include_str!("sql/columns.sql"), oids, "columns").await? {
            let table_oid: Oid = r.get("attrelid");
            column_types
                .entry(table_oid)
                .or_default()
                .insert(r.get::<_, Oid>("atttypid"));
            let table = self.table(table_oid);
            table.columns.push(Column {
                name: Ident::new(r.get::<_, String>("attname")),
                type_sql: r.get("type_sql"),
                not_null: r.get("attnotnull"),
                default_sql: r.get("default_sql"),
                generated_sql: r.get("generated_sql"),
                identity: match r.get::<_, String>("identity").as_str() {
                    "a" => Some(Identity::Always),
                    "d" => Some(Identity::ByDefault),
                    _ => None,
                },
                collation_sql: r.get("collation_sql"),
                comment: r.get("comment"),
                local: r.get("attislocal"),
            });
        }

        Ok(column_types)
    }

    /// The constraints, and the indexes (those of constraints give them their index's body).
    pub(super) async fn constraints_and_indexes(&mut self) -> anyhow::Result<()> {
        let client = self.client;
        // Owned: the query's parameters live as long as the loop over its rows.
        let params = (self.oids.clone(), self.standalone.clone());
        for r in client
            .query(include_str!("sql/constraints.sql"), &[&params.0, &params.1])
            .await
            .context("could not read the constraints of the chosen tables from the source")?
        {
            let table = self.table(r.get::<_, Oid>("conrelid"));
            let kind = match r.get::<_, String>("contype").as_str() {
                "p" => ConstraintKind::PrimaryKey,
                "u" => ConstraintKind::Unique,
                "c" => ConstraintKind::Check,
                "x" => ConstraintKind::Exclude,
                _ => ConstraintKind::ForeignKey {
                    references: QualifiedName::new(
                        r.get::<_, String>("ref_schema"),
                        r.get::<_, String>("ref_table"),
                    ),
                },
            };
            table.constraints.push(Constraint {
                name: Ident::new(r.get::<_, String>("conname")),
                kind,
                definition: r.get("definition"),
                validated: r.get("convalidated"),
                columns: r
                    .get::<_, Vec<String>>("columns")
                    .into_iter()
                    .map(Ident::new)
                    .collect(),
                ref_columns: r
                    .get::<_, Vec<String>>("ref_columns")
                    .into_iter()
                    .map(Ident::new)
                    .collect(),
                local: r.get("conislocal"),
                deferrable: r.get("condeferrable"),
                // Filled in from the indexes, below.
                index_body: None,
            });
        }

        for r in client
            .query(include_str!("sql/indexes.sql"), &[&params.0, &params.1])
            .await
            .context("could not read the indexes of the chosen tables from the source")?
        {
            let table = self.table(r.get::<_, Oid>("indrelid"));
            match r.get::<_, Option<String>>("constraint_name") {
                Some(owner) => {
                    if let Some(c) = table.constraints.iter_mut().find(|c| c.name.raw() == owner) {
                        c.index_body = r.get("body");
                    }
                }
                None => table.indexes.push(Index {
                    name: Ident::new(r.get::<_, String>("index_name")),
                    definition: r.get("definition"),
                    body: r.get("body"),
                }),
            }
        }

        Ok(())
    }

    /// The sequences the tables' columns own (serial and identity).
    pub(super) async fn owned_sequences(&mut self) -> anyhow::Result<()> {
        let (client, oids) = (self.client, &self.oids);
        for r in query(client, include_str!("sql/sequences.sql"), oids, "sequences").await? {
            let sequence = super::read::sequence_of(
                &r,
                QualifiedName::new(r.get::<_, String>("nspname"), r.get::<_, String>("relname")),
                Ident::new(r.get::<_, String>("column_name")),
                r.get::<_, String>("deptype") == "i",
            );
            self.table(r.get::<_, Oid>("table_oid"))
                .sequences
                .push(sequence);
        }

        Ok(())
    }

    /// The user triggers.
    pub(super) async fn triggers(&mut self) -> anyhow::Result<()> {
        let client = self.client;
        // Owned: the query's parameters live as long as the loop over its rows.
        let params = (self.oids.clone(), self.standalone.clone());
        for r in client
            .query(include_str!("sql/triggers.sql"), &[&params.0, &params.1])
            .await
            .context("could not read the triggers of the chosen tables from the source")?
        {
            self.table(r.get::<_, Oid>("tgrelid"))
                .triggers
                .push(Trigger {
                    name: Ident::new(r.get::<_, String>("tgname")),
                    definition: r.get("definition"),
                    state: TriggerState::from_catalog(&r.get::<_, String>("enabled")),
                });
        }
        Ok(())
    }
}
