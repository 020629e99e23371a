//! `snapcopy teardown`: drops what snapcopy set up on the target (its foreign server and user
//! mappings, its staging schema with the staging objects and the registry) and, with
//! `--drop-tables`, the tables it made. Never what it did not make: a staging schema that is
//! not snapcopy's, or that holds objects snapcopy did not put there, is refused; so is dropping
//! a table that other objects depend on, unless `--cascade` says to drop those too.

use anyhow::{bail, Context};
use tokio_postgres::Client;

use crate::cli::TeardownArgs;
use crate::conninfo::Env;
use crate::exec::{connect, Side};
use crate::settings::TargetSettings;
use crate::sql::{Ident, QualifiedName};
use crate::{guard, plan, Outcome};

/// Runs `snapcopy teardown`, in one transaction: all or nothing. Says what it dropped.
pub async fn teardown(args: &TeardownArgs) -> anyhow::Result<Outcome> {
    let settings = TargetSettings::from_opts(&args.to, false, &Env::from_process())?;
    let staging = &settings.staging_schema;
    let mut target = connect(&settings.target, Side::Target).await?;
    guard::lock_target(&target, staging).await?;
    guard::check_staging_schema(&target, staging).await?;
    let strangers = strangers(&target, staging).await?;
    if !strangers.is_empty() {
        bail!(
            "the staging schema {} holds objects snapcopy did not make: {}; teardown drops the \
             schema, so move them to another schema (or drop them yourself) and run snapcopy \
             teardown again; nothing was dropped",
            staging.raw(),
            strangers.join(", ")
        );
    }
    let managed = crate::target::registry::managed(&target, staging).await?;
    // Tables loaded data-only are the user's: never dropped, even with --drop-tables.
    let (users, managed): (Vec<_>, Vec<_>) = managed.into_iter().partition(|m| m.data_only);
    let (own, replaced): (Vec<_>, Vec<_>) = managed.into_iter().partition(|m| !m.replaced);
    let own: Vec<QualifiedName> = own.into_iter().map(|m| m.name).collect();
    let mut dropped: Vec<String> = Vec::new();
    let tx = target.transaction().await?;
    if args.drop_tables {
        let dependents = dependents(&tx, &own).await?;
        if !dependents.is_empty() && !args.cascade {
            bail!(
                "other objects on the target depend on the tables snapcopy made: {}; dropping \
                 the tables would drop them too: drop or change them yourself, or pass --cascade \
                 to drop them with the tables; nothing was dropped",
                dependents
                    .iter()
                    .map(|(what, on)| format!("{what} (on {})", on.human()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for name in &own {
            let existed = tx
                .query_one(
                    "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
                    &[&name.to_string()],
                )
                .await?
                .get::<_, bool>(0);
            if !existed {
                continue;
            }
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {name} CASCADE"))
                .await
                .with_context(|| {
                    format!(
                        "could not drop {}; nothing was dropped (teardown is one transaction)",
                        name.human()
                    )
                })?;
            dropped.push(format!("table {}", name.human()));
            dropped.extend(
                dependents
                    .iter()
                    .filter(|(_, on)| on == name)
                    .map(|(what, _)| format!("{what}, which depended on it")),
            );
        }
        for m in &replaced {
            eprintln!(
                "kept table {}: it is not the table snapcopy made (it was dropped and made \
                 again since)",
                m.name.human()
            );
        }
    }
    let server = plan::server_name(staging);
    let server_existed = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_server WHERE srvname = $1)",
            &[&server],
        )
        .await?
        .get::<_, bool>(0);
    if server_existed {
        tx.batch_execute(&format!("DROP SERVER {} CASCADE", Ident::new(&server)))
            .await
            .context("could not drop snapcopy's foreign server; nothing was dropped")?;
        dropped.push(format!("the foreign server {server} and its user mappings"));
    }
    // postgres_fdw's proxy schemas, marked as snapcopy's; their foreign tables went with the
    // server.
    let prefix = format!("{}.", staging.raw());
    let proxies: Vec<String> = tx
        .query(
            "SELECT nspname FROM pg_catalog.pg_namespace \
             WHERE pg_catalog.obj_description(oid, 'pg_namespace') = $1 ORDER BY 1",
            &[&plan::PROXY_MARKER],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|name| name.starts_with(&prefix))
        .collect();
    for proxy in proxies {
        tx.batch_execute(&format!("DROP SCHEMA {}", Ident::new(&proxy)))
            .await
            .with_context(|| {
                format!(
                    "could not drop snapcopy's proxy schema {proxy}: it holds objects snapcopy \
                     did not make; move them to another schema and run snapcopy teardown \
                     again; nothing was dropped"
                )
            })?;
        dropped.push(format!("the proxy schema {proxy}"));
    }
    let schema_existed = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
            &[&staging.raw()],
        )
        .await?
        .get::<_, bool>(0);
    if schema_existed {
        tx.batch_execute(&format!("DROP SCHEMA {staging} CASCADE"))
            .await
            .context("could not drop snapcopy's staging schema; nothing was dropped")?;
        dropped.push(format!(
            "the staging schema {} with its staging objects and registry",
            staging.raw()
        ));
    }
    tx.commit().await?;
    if args.quiet {
        return Ok(Outcome::Success);
    }
    if dropped.is_empty() {
        eprintln!("nothing to drop: snapcopy has nothing set up in this database");
    }
    for what in &dropped {
        eprintln!("dropped {what}");
    }
    if !users.is_empty() {
        eprintln!(
            "kept the {} tables loaded with --data-only: they are yours, not snapcopy's",
            users.len()
        );
    }
    if !args.drop_tables && !own.is_empty() {
        eprintln!(
            "kept the {} copied tables (--drop-tables drops them)",
            own.len()
        );
    }
    Ok(Outcome::Success)
}

/// The objects in the staging schema that snapcopy did not put there: anything but its
/// registry, staging objects (named `schema.table`) and marked load tables (`load ...`) with
/// their indexes, sequences and row types, and the dblink extension's objects. In words, for a
/// message.
async fn strangers(target: &Client, staging: &Ident) -> anyhow::Result<Vec<String>> {
    let rows = target
        .query(
            "WITH n AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1), \
             ext AS (SELECT classid, objid FROM pg_catalog.pg_depend WHERE deptype = 'e'), \
             rel AS (SELECT c.oid, c.relname, c.relkind, c.reltype FROM pg_catalog.pg_class c \
                     JOIN n ON c.relnamespace = n.oid), \
             ours AS (SELECT oid FROM rel WHERE relname::text IN ($2::text, $2::text || '_pkey') \
                      OR relname LIKE '%.%' OR relkind = 't' \
                      OR (relname LIKE 'load %' AND (relkind <> 'r' \
                          OR pg_catalog.obj_description(oid, 'pg_class') = $3)) \
                      UNION SELECT objid FROM ext \
                      WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                      UNION SELECT rel.oid FROM rel JOIN ext ON ext.objid = rel.reltype \
                      AND ext.classid = 'pg_catalog.pg_type'::pg_catalog.regclass) \
             SELECT pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, \
                    oid, 0) FROM rel WHERE oid NOT IN (SELECT oid FROM ours) \
             UNION ALL \
             SELECT pg_catalog.pg_describe_object('pg_catalog.pg_proc'::pg_catalog.regclass, \
                    p.oid, 0) FROM pg_catalog.pg_proc p JOIN n ON p.pronamespace = n.oid \
              WHERE p.oid NOT IN (SELECT objid FROM ext \
                    WHERE classid = 'pg_catalog.pg_proc'::pg_catalog.regclass) \
             UNION ALL \
             SELECT pg_catalog.pg_describe_object('pg_catalog.pg_type'::pg_catalog.regclass, \
                    t.oid, 0) FROM pg_catalog.pg_type t JOIN n ON t.typnamespace = n.oid \
              WHERE t.oid NOT IN (SELECT objid FROM ext \
                    WHERE classid = 'pg_catalog.pg_type'::pg_catalog.regclass) \
                AND t.typrelid NOT IN (SELECT oid FROM rel) \
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.oid = t.typelem \
                    AND (e.typrelid IN (SELECT oid FROM rel) OR e.oid IN (SELECT objid FROM ext \
                         WHERE classid = 'pg_catalog.pg_type'::pg_catalog.regclass))) \
             ORDER BY 1",
            &[
                &staging.raw(),
                &crate::target::registry::REGISTRY,
                &plan::LOAD_MARKER,
            ],
        )
        .await
        .context("could not read what the staging schema holds")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The objects outside `tables` that depend on one of them (views and materialized views,
/// foreign keys of other tables, inheritance children, functions whose bodies read them), each
/// in words with the table it depends on.
async fn dependents(
    client: &tokio_postgres::Transaction<'_>,
    tables: &[QualifiedName],
) -> anyhow::Result<Vec<(String, QualifiedName)>> {
    let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    let rows = client
        .query(
            "WITH t AS (SELECT pg_catalog.to_regclass(n)::oid AS oid FROM unnest($1::text[]) AS u(n) \
                        WHERE pg_catalog.to_regclass(n) IS NOT NULL) \
             SELECT DISTINCT pg_catalog.pg_describe_object( \
                    CASE WHEN r.oid IS NULL THEN d.classid \
                         ELSE 'pg_catalog.pg_class'::pg_catalog.regclass END, \
                    coalesce(r.ev_class, d.objid), 0), \
                    pn.nspname, pc.relname \
             FROM pg_catalog.pg_depend d \
             JOIN pg_catalog.pg_class pc ON pc.oid = d.refobjid \
             JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
             LEFT JOIN pg_catalog.pg_rewrite r \
                    ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid = d.objid \
             LEFT JOIN pg_catalog.pg_constraint k \
                    ON d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND k.oid = d.objid \
             WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
               AND d.refobjid IN (SELECT oid FROM t) AND d.deptype = 'n' \
               AND NOT (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                        AND d.objid IN (SELECT oid FROM t)) \
               AND coalesce(r.ev_class NOT IN (SELECT oid FROM t), true) \
               AND coalesce(k.conrelid NOT IN (SELECT oid FROM t), true) \
             ORDER BY 1",
            &[&names],
        )
        .await
        .context("could not read what depends on the tables snapcopy made")?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                QualifiedName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
            )
        })
        .collect())
}
