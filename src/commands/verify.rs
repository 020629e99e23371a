//! `snapcopy verify`: proves a copy, table by table, without moving rows to the tool.
//!
//! Each server computes a row count and an order-independent checksum of its own rows (the sum
//! of a 64-bit prefix of each row text's md5), with the same output settings so that the same
//! value prints the same way on both. Definitions are compared through the same catalog
//! queries the copy uses, read on both servers.

use anyhow::Context;
use serde::Serialize;
use tokio_postgres::Client;

use super::select;
use crate::cli::VerifyArgs;
use crate::conninfo::Env;
use crate::exec::{connect, Side};
use crate::report::out;
use crate::settings::Settings;
use crate::source::{self, Candidate, Shape, Table};
use crate::sql::QualifiedName;
use crate::Outcome;

/// Settings that decide how values print as text; pinned on both servers so that row text, and
/// so the checksum, compares across servers whatever their configuration.
pub const OUTPUT_SETTINGS: &str = "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
    SET TimeZone = 'UTC'; SET extra_float_digits = 1; SET bytea_output = 'hex'; \
    SET search_path = ''";

/// The verdict on one table.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Schema and name.
    pub table: String,
    /// Rows on the source.
    pub source_rows: i64,
    /// Rows on the target (None when the table is missing there).
    pub target_rows: Option<i64>,
    /// Every difference found, in words; empty when the copy is the same.
    pub differences: Vec<String>,
    /// What `--repair` found and synced, when it did: the differences before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<String>,
}

impl Verdict {
    /// Whether the copy matches the source.
    pub fn same(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Count and checksum of a table's rows, computed by the server that holds them. A
/// partitioned table is read with its partitions; any other table `ONLY` itself. With
/// `columns` (a select list), the checksum is of those instead of the whole row; with
/// `condition`, of the rows where it holds (a subset).
async fn fingerprint(
    client: &Client,
    name: &QualifiedName,
    partitioned: bool,
    columns: Option<&str>,
    condition: Option<&str>,
) -> anyhow::Result<(i64, String)> {
    let only = if partitioned { "" } else { "ONLY " };
    let rows = match (columns, condition) {
        (None, None) => format!("{only}{name} AS t"),
        (list, condition) => format!(
            "(SELECT {} FROM {only}{name} WHERE {}) AS t",
            list.unwrap_or("*"),
            condition.unwrap_or("true")
        ),
    };
    let sql = format!(
        "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0)::text \
         FROM {rows}"
    );
    let row = client.query_one(&sql, &[]).await.with_context(|| {
        format!(
            "could not read {} to compare it; the roles need SELECT on it on both servers",
            name.human()
        )
    })?;
    Ok((row.get(0), row.get(1)))
}

/// Compares each table of the source catalog with the target's table of the same name
/// (triggers too, when `triggers`).
/// A masked table's rows are compared by their loaded columns, masked on the source as the
/// copy masks them (the source session holds the key); `masks` are the run's rules. A table a
/// row filter limits is compared with its subset on the source (`subsets`, the copy's
/// conditions).
pub async fn verify(
    source: &Client,
    target: &Client,
    source_catalog: &source::Catalog,
    triggers: bool,
    masks: &crate::mask::Masks,
    subsets: &std::collections::BTreeMap<QualifiedName, String>,
) -> anyhow::Result<Vec<Verdict>> {
    let target_candidates = source::candidates(target).await?;
    let mut verdicts = Vec::new();
    for table in &source_catalog.tables {
        let found: Vec<Candidate> = target_candidates
            .iter()
            .filter(|c| c.name == table.name)
            .cloned()
            .collect();
        let Some(target_candidate) = found.first().cloned() else {
            let (rows, _) = fingerprint(
                source,
                &table.name,
                table.is_partitioned(),
                None,
                subsets.get(&table.name).map(String::as_str),
            )
            .await?;
            verdicts.push(Verdict {
                table: table.name.human(),
                source_rows: rows,
                target_rows: None,
                differences: vec!["missing on the target".into()],
                repaired: Vec::new(),
            });
            continue;
        };
        let (tree, _) = source::with_partitions(&target_candidates, found);
        let target_catalog = source::introspect(target, &tree, triggers).await?;
        let target_table = &target_catalog.tables[0];
        // A table copied without its parents is one of its own by design: no difference,
        // unless its parents are compared too or it inherits on the target.
        let mut table = table.clone();
        if target_table.parents.is_empty()
            && !table
                .parents
                .iter()
                .all(|p| source_catalog.tables.iter().any(|t| &t.name == p))
        {
            table.parents.clear();
        }
        let table = &table;
        let (masked, plain) = masked_columns(table, masks);
        let (source_fp, target_fp) = tokio::join!(
            fingerprint(
                source,
                &table.name,
                table.is_partitioned(),
                masked.as_deref(),
                subsets.get(&table.name).map(String::as_str),
            ),
            fingerprint(
                target,
                &table.name,
                target_candidate.relkind == "p",
                plain.as_deref(),
                None,
            ),
        );
        let (source_rows, source_sum) = source_fp?;
        let (target_rows, target_sum) = target_fp?;
        let mut differences = shape_differences(table, target_table);
        if source_rows != target_rows {
            differences.push(format!(
                "{source_rows} rows on the source, {target_rows} on the target"
            ));
        }
        if source_sum != target_sum {
            differences.push("row contents differ (checksum)".into());
        }
        verdicts.push(Verdict {
            table: table.name.human(),
            source_rows,
            target_rows: Some(target_rows),
            differences,
            repaired: Vec::new(),
        });
    }
    Ok(verdicts)
}

/// For a table with masked columns: its loaded columns as the source must compute them
/// (masked) and as the target has them; `(None, None)` for a table without masks.
fn masked_columns(table: &Table, masks: &crate::mask::Masks) -> (Option<String>, Option<String>) {
    if !masks.columns.contains_key(&table.name) {
        return (None, None);
    }
    let loaded: Vec<&crate::source::Column> =
        table.columns.iter().filter(|c| c.is_loaded()).collect();
    let source: Vec<String> = loaded
        .iter()
        .map(|c| {
            match masks
                .rule(&table.name, &c.name)
                .and_then(|rule| crate::mask::sql::expression(table, c, rule))
            {
                Some(e) => format!("{e} AS {}", c.name),
                None => c.name.to_string(),
            }
        })
        .collect();
    let target: Vec<String> = loaded.iter().map(|c| c.name.to_string()).collect();
    (Some(source.join(", ")), Some(target.join(", ")))
}

/// Definitions that differ between the source table and the target's, in words.
fn shape_differences(source: &Table, target: &Table) -> Vec<String> {
    let (s, t): (Shape, Shape) = (source.shape(), target.shape());
    let mut out: Vec<String> = s
        .differences(&t)
        .into_iter()
        .map(|d| match (d.this, d.other) {
            (Some(_), None) => format!("{} {} missing on the target", d.what, d.name),
            (None, _) => format!("{} {} only on the target", d.what, d.name),
            (Some(def), Some(other)) => format!(
                "{} {} differs (source: {def}; target: {other})",
                d.what, d.name
            ),
        })
        .collect();
    let source_columns: Vec<&str> = source.columns.iter().map(|c| c.name.raw()).collect();
    let target_columns: Vec<&str> = target.columns.iter().map(|c| c.name.raw()).collect();
    if out.is_empty() && source_columns != target_columns {
        out.push("columns are in another order".into());
    }
    out
}

/// Prints one line per table on stdout (`quiet`: only for those that differ), or JSON.
pub fn print(verdicts: &[Verdict], json: bool, quiet: bool) {
    if json {
        return crate::report::print_json(&verdicts);
    }
    let width = verdicts.iter().map(|v| v.table.len()).max().unwrap_or(0);
    for v in verdicts {
        if v.same() {
            if !quiet || !v.repaired.is_empty() {
                let rows = crate::human::count(v.source_rows);
                let repaired = if v.repaired.is_empty() {
                    String::new()
                } else {
                    format!(" (repaired: {})", v.repaired.join("; "))
                };
                out(&format!(
                    "{:width$}  same     {rows} rows{repaired}\n",
                    v.table
                ));
            }
        } else {
            out(&format!(
                "{:width$}  DIFFERS  {}\n",
                v.table,
                v.differences.join("; ")
            ));
        }
    }
}

/// Runs `snapcopy verify`: the chosen tables (every managed one by default) compared on both
/// servers; exits 1 when any differs.
pub async fn verify_tables(args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let mut settings = Settings::from_args(&args.as_copy_args(), &Env::from_process())?;
    let source = connect(&settings.source, Side::Source).await?;
    let target = connect(&settings.target, Side::Target).await?;
    for client in [&source, &target] {
        client
            .batch_execute(OUTPUT_SETTINGS)
            .await
            .context("could not prepare a session for verify")?;
    }
    let candidates = source::candidates(&source).await?;
    let managed = crate::target::registry::managed(&target, &settings.staging_schema).await?;
    let gone = select::tables_to_use(&mut settings, &managed, &candidates)?;
    let chosen = select::choose(&settings, &candidates)?;
    let catalog = source::introspect(&source, &chosen, settings.triggers).await?;
    let masks = crate::mask::resolve(&catalog, &settings.masks).map_err(anyhow::Error::msg)?;
    if let (true, Some(key)) = (masks.any(), &settings.mask_key) {
        // The masks' expressions read the key on the source, as the copy's do; JIT would
        // compile them for longer than they run.
        source
            .execute(
                "SELECT pg_catalog.set_config($1, $2, false), pg_catalog.set_config('jit', 'off', false)",
                &[&crate::mask::KEY_SETTING, &key.expose()],
            )
            .await
            .context("could not prepare the source session for masked tables")?;
    }
    let filters = crate::plan::resolve_filters(&catalog.tables, &settings.filters)
        .map_err(anyhow::Error::msg)?;
    let subsets = crate::plan::subset_conditions(&catalog.tables, &filters).conditions;
    let compare = || {
        verify(
            &source,
            &target,
            &catalog,
            settings.triggers,
            &masks,
            &subsets,
        )
    };
    let mut verdicts = compare().await?;
    if args.repair && verdicts.iter().any(|v| !v.same()) {
        repair(args, settings.json, &verdicts).await?;
        verdicts = compare()
            .await?
            .into_iter()
            .zip(verdicts)
            .map(|(after, before)| Verdict {
                repaired: if after.same() && !before.same() {
                    before.differences
                } else {
                    Vec::new()
                },
                ..after
            })
            .collect();
    }
    verdicts.extend(gone.into_iter().map(|(name, reason)| Verdict {
        table: name.human(),
        source_rows: 0,
        target_rows: None,
        differences: vec![reason],
        repaired: Vec::new(),
    }));
    print(&verdicts, settings.json, args.quiet);
    Ok(if verdicts.iter().all(|v| v.same()) {
        Outcome::Success
    } else {
        Outcome::SomeFailed
    })
}

/// `verify --repair`: syncs the tables of `verdicts` that differ, as `--mode sync` does.
/// Progress and errors go to stderr as a copy's do; its summary goes to stdout before the
/// verdicts, except as JSON (the verdicts say what was repaired).
async fn repair(args: &VerifyArgs, json: bool, verdicts: &[Verdict]) -> anyhow::Result<()> {
    let mut copy = args.as_copy_args();
    copy.from.tables = verdicts
        .iter()
        .filter(|v| !v.same())
        .map(|v| v.table.clone())
        .collect();
    copy.from.exclude.clear();
    copy.mode = Some(crate::cli::Mode::Sync);
    copy.quiet = args.quiet;
    copy.no_summary = json;
    copy.hash_rows = true;
    super::copy::copy(&copy, false).await?;
    Ok(())
}
