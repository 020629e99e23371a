//! `snapcopy audit`: which columns of the chosen tables look sensitive and have no mask rule.
//! It reads the source's catalog (and a sample of `jsonb` values for their keys) and changes
//! nothing anywhere. A copy with `strict_masks = true` runs it first.

use anyhow::Context;
use tokio_postgres::Client;

use super::select;
use crate::cli::CopyArgs;
use crate::conninfo::Env;
use crate::exec::{connect, Side};
use crate::mask::audit::{self, Finding};
use crate::mask::Masks;
use crate::report::out;
use crate::settings::Settings;
use crate::source::{self, Catalog};
use crate::Outcome;

/// The columns of `catalog`'s tables (and partitions) that look sensitive and that `masks`
/// covers neither with a rule nor with `keep`.
pub async fn findings(
    source: &Client,
    catalog: &Catalog,
    masks: &Masks,
) -> anyhow::Result<Vec<Finding>> {
    let mut found = Vec::new();
    for table in &catalog.tables {
        found.extend(audit::columns(table, masks));
        for column in table.columns.iter().filter(|c| c.type_sql == "jsonb") {
            if masks.rule(&table.name, &column.name).is_some()
                || masks
                    .kept
                    .contains(&(table.name.clone(), column.name.clone()))
            {
                continue;
            }
            let keys: Vec<String> = source
                .query(&audit::json_keys_sql(&table.name, column), &[])
                .await
                .with_context(|| {
                    format!(
                        "could not read the keys of {}.{} on the source",
                        table.name.human(),
                        column.name.raw()
                    )
                })?
                .iter()
                .map(|r| r.get(0))
                .collect();
            found.extend(audit::json_findings(table, column, &keys));
        }
    }
    Ok(found)
}

/// Prints findings, one a line (or JSON).
pub fn print(found: &[Finding], tables: usize, json: bool) {
    if json {
        return crate::report::print_json(&found);
    }
    if found.is_empty() {
        out(&format!(
            "no column of the {tables} tables looks sensitive without a mask rule\n"
        ));
        return;
    }
    let width = found
        .iter()
        .map(|f| f.table.len() + f.column.len() + 1)
        .max()
        .unwrap_or(0);
    for f in found {
        let name = format!("{}.{}", f.table, f.column);
        out(&format!(
            "{name:width$}  looks like {} ({}), no mask rule\n",
            f.looks_like, f.because
        ));
    }
    out(
        "give each a rule (--mask 'TABLE.COLUMN=RULE', or [table.\"s.t\".mask] in \
         snapcopy.toml), or keep for a column that is not sensitive\n",
    );
}

/// Runs `snapcopy audit`: exit 1 when some column looks sensitive and has no rule.
pub async fn audit(args: &CopyArgs) -> anyhow::Result<Outcome> {
    let mut settings = Settings::from_args(args, &Env::from_process())?;
    let source = connect(&settings.source, Side::Source).await?;
    let target = connect(&settings.target, Side::Target).await?;
    source
        .batch_execute("SET search_path = ''")
        .await
        .context("could not prepare the source session")?;
    let candidates = source::candidates(&source).await?;
    let managed = crate::target::registry::managed(&target, &settings.staging_schema).await?;
    select::tables_to_use(&mut settings, &managed, &candidates)?;
    let chosen = select::choose(&settings, &candidates)?;
    let catalog = source::introspect(&source, &chosen, false).await?;
    let masks = crate::mask::resolve(&catalog, &settings.masks).map_err(anyhow::Error::msg)?;
    let found = findings(&source, &catalog, &masks).await?;
    print(&found, catalog.tables.len(), settings.json);
    Ok(if found.is_empty() {
        Outcome::Success
    } else {
        Outcome::SomeFailed
    })
}
