//! The summary of a run: one row per table on stdout, as a table or as JSON.

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
    /// Created or reloaded.
    pub action: Action,
    /// Done, or failed and why.
    pub status: TableStatus,
    /// Rows loaded.
    pub rows: i64,
    /// Size on the target after the load (table, TOAST, indexes).
    pub bytes: Option<i64>,
    /// Seconds spent on the table's statements.
    pub seconds: f64,
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

/// Prints the summary on stdout.
pub fn print(outcomes: &[TableOutcome], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "tables": outcomes }))
                .expect("outcomes serialize")
        );
        return;
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(["table", "action", "rows", "size", "seconds", "status"]);
    for o in outcomes {
        table.add_row(vec![
            Cell::new(o.name.human()),
            Cell::new(match o.action {
                Action::Create => "created",
                Action::Reload => "reloaded",
            }),
            Cell::new(o.rows).set_alignment(CellAlignment::Right),
            Cell::new(o.bytes.map(human_bytes).unwrap_or_default())
                .set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.2}", o.seconds)).set_alignment(CellAlignment::Right),
            Cell::new(match &o.status {
                TableStatus::Done => "ok".to_string(),
                TableStatus::Failed(why) => format!("FAILED: {why}"),
            }),
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
