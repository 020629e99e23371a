//! What the user reads on stdout: the summary of a run, and `snapcopy status`. Each as a table
//! or, with `--json`, as JSON.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use serde::Serialize;

use crate::plan::Action;
use crate::sql::QualifiedName;

/// What happened to one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableOutcome {
    /// Schema and name.
    #[serde(serialize_with = "human_name")]
    pub name: QualifiedName,
    /// Created, reloaded, rebuilt, or missing rows inserted; none for a table refused before
    /// anything was done to it.
    pub action: Option<Action>,
    /// Done, or failed and why.
    #[serde(flatten)]
    pub status: TableStatus,
    /// Rows inserted.
    pub rows: i64,
    /// Rows read from the source but not inserted because their key exists on the target.
    pub skipped: i64,
    /// Size on the target after the load (table, TOAST, indexes).
    pub bytes: Option<i64>,
    /// Seconds spent on the table's statements.
    pub seconds: f64,
    /// Pushdown used, or what changed on the source.
    pub note: String,
    /// The highest cursor value read (incremental).
    #[serde(skip)]
    pub high_water: Option<String>,
}

/// The end state of a table.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", content = "error", rename_all = "lowercase")]
pub enum TableStatus {
    /// Loaded and committed.
    Done,
    /// Not changed, with the reason.
    Failed(String),
}

fn human_name<S: serde::Serializer>(name: &QualifiedName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&name.human())
}

fn right(value: impl ToString) -> Cell {
    Cell::new(value.to_string()).set_alignment(CellAlignment::Right)
}

/// A count with thousands separators, the way the progress bars print them: `1,234,567`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Prints `{"tables": [...]}` on stdout, the shape of every `--json` output.
pub fn print_json(tables: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "tables": tables }))
            .expect("report rows serialize")
    );
}

/// Prints the summary of a run on stdout.
pub fn print(outcomes: &[TableOutcome], json: bool) {
    if json {
        return print_json(&outcomes);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "table", "action", "rows", "skipped", "size", "seconds", "status", "note",
    ]);
    for o in outcomes {
        table.add_row(vec![
            Cell::new(o.name.human()),
            Cell::new(o.action.map_or("not copied", Action::done_word)),
            right(o.rows),
            right(o.skipped),
            right(o.bytes.map(human_bytes).unwrap_or_default()),
            right(format!("{:.2}", o.seconds)),
            Cell::new(match &o.status {
                TableStatus::Done => "ok".to_string(),
                TableStatus::Failed(why) => format!("FAILED: {}", crate::sql::printable(why)),
            }),
            Cell::new(crate::sql::printable(&o.note)),
        ]);
    }
    println!("{table}");
}

/// One managed table as `snapcopy status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    /// Schema and name on the target.
    pub table: String,
    /// The source it came from (`user@host:port/db`).
    pub source: String,
    /// The source table.
    pub source_table: String,
    /// `view` or `matview`.
    pub staging: String,
    /// The mode of the last refresh.
    pub mode: String,
    /// When the last refresh committed.
    pub refreshed_at: String,
    /// The source's time of the snapshot the last refresh read.
    pub source_snapshot_at: Option<String>,
    /// Rows the last refresh inserted.
    pub rows_loaded: Option<i64>,
    /// Rows snapcopy has put in the table: the last full load and the inserts since (rows the
    /// developer added or deleted are not counted).
    pub rows_total: Option<i64>,
    /// Whether the last refresh read only new rows from the source.
    pub pushed_down: Option<bool>,
}

/// Prints `snapcopy status`.
pub fn print_status(rows: &[StatusRow], json: bool) {
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("snapcopy manages no tables in this database yet");
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "table",
        "mode",
        "staging",
        "last refresh",
        "rows",
        "loaded",
        "source snapshot",
        "source",
    ]);
    for r in rows {
        table.add_row(vec![
            Cell::new(&r.table),
            Cell::new(&r.mode),
            Cell::new(&r.staging),
            Cell::new(&r.refreshed_at),
            right(r.rows_total.map(|n| n.to_string()).unwrap_or_default()),
            right(r.rows_loaded.map(|n| n.to_string()).unwrap_or_default()),
            Cell::new(r.source_snapshot_at.clone().unwrap_or_default()),
            Cell::new(format!("{} {}", r.source, r.source_table)),
        ]);
    }
    println!("{table}");
}

/// Sizes the way `pg_size_pretty` prints them.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value.abs() >= 10240.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{:.0} {}", value, UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_pg_size_pretty() {
        assert_eq!(human_bytes(8192), "8192 bytes");
        assert_eq!(human_bytes(16384), "16 kB");
        assert_eq!(human_bytes(50 * 1024 * 1024), "50 MB");
    }
}
