//! `snapcopy status`: the tables snapcopy manages on the target, from its registry.

use anyhow::Context;

use crate::cli::StatusArgs;
use crate::conninfo::Env;
use crate::link::{connect, Side};
use crate::settings::TargetSettings;
use crate::{link, plan, report, sql, Outcome};

/// Prints the registry of the target's staging schema.
pub async fn status(args: &StatusArgs) -> anyhow::Result<Outcome> {
    let settings = TargetSettings::from_opts(&args.to, args.json, &Env::from_process())?;
    let target = connect(&settings.target, Side::Target).await?;
    let managed = link::managed_tables(&target, &settings.staging_schema).await?;
    let rows = if managed.is_empty() {
        Vec::new()
    } else {
        let sql = format!(
            "SELECT pg_catalog.quote_ident(table_schema) || '.' || \
             pg_catalog.quote_ident(table_name), source, \
             pg_catalog.quote_ident(source_schema) || '.' || pg_catalog.quote_ident(source_table), \
             staging_kind, mode, \
             pg_catalog.to_char(refreshed_at, 'YYYY-MM-DD HH24:MI:SS TZ'), \
             pg_catalog.to_char(source_snapshot_at, 'YYYY-MM-DD HH24:MI:SS TZ'), \
             rows_loaded, rows_total, pushed_down \
             FROM {}.{} ORDER BY table_schema, table_name",
            settings.staging_schema,
            sql::Ident::new(plan::REGISTRY)
        );
        target
            .query(&sql, &[])
            .await
            .context("could not read snapcopy's registry")?
            .iter()
            .map(|r| report::StatusRow {
                table: r.get(0),
                source: r.get(1),
                source_table: r.get(2),
                staging: r.get(3),
                mode: r.get(4),
                refreshed_at: r.get(5),
                source_snapshot_at: r.get(6),
                rows_loaded: r.get(7),
                rows_total: r.get(8),
                pushed_down: r.get(9),
            })
            .collect()
    };
    report::print_status(&rows, settings.json);
    Ok(Outcome::Success)
}
