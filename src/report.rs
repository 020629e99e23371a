//! What the user reads on stdout: the summary of a run, and `snapcopy status`. Each as a table
//! or, with `--json`, as JSON.

use comfy_table::{
    presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table,
    Width,
};
use serde::Serialize;

use crate::cli::LinkKind;
use crate::human::{bytes, count};
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
    /// How the target server read its rows; none for a table refused before anything was
    /// done to it.
    pub link: Option<LinkKind>,
    /// What a sync compared and changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncCounts>,
}

/// What a sync of one table compared and changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SyncCounts {
    /// Ranges (buckets of the key's hash) compared between the servers.
    pub ranges: i64,
    /// Of those, the ranges whose rows differed.
    pub ranges_differed: i64,
    /// Rows inserted.
    pub inserted: i64,
    /// Rows updated to the source's values.
    pub updated: i64,
    /// Rows deleted (the source has none with their key).
    pub deleted: i64,
    /// Bytes read from the source through the link: range summaries, keys and hashes, rows
    /// (as the text the link carries them in).
    pub link_bytes: i64,
}

impl SyncCounts {
    /// Adds the counts of one statement.
    pub fn add(&mut self, other: &SyncCounts) {
        self.ranges += other.ranges;
        self.ranges_differed += other.ranges_differed;
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.link_bytes += other.link_bytes;
    }

    /// The summary's words: `12 of 131,072 ranges differed: 10 inserted, 3 updated, 1
    /// deleted; 2.1 MB read`.
    pub fn words(&self) -> String {
        if self.ranges == 0 {
            // The keys' totals agreed: no bucket was compared.
            return format!(
                "the keys' count and hash agreed: {} inserted, {} updated, {} deleted; {} read",
                count(self.inserted),
                count(self.updated),
                count(self.deleted),
                bytes(self.link_bytes)
            );
        }
        format!(
            "{} of {} ranges differed: {} inserted, {} updated, {} deleted; {} read",
            count(self.ranges_differed),
            count(self.ranges),
            count(self.inserted),
            count(self.updated),
            count(self.deleted),
            bytes(self.link_bytes)
        )
    }
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

/// A table with `header` that fits the terminal's width by wrapping the cells of the columns
/// numbered in `wrap`, each kept at least as wide as given (names and numbers stay whole): on a
/// terminal its width, elsewhere `COLUMNS` when set (as shells export it), else unbounded so
/// that a pipe gets whole lines.
fn new_table(header: &[&str], wrap: &[(usize, u16)]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    for (k, column) in table.column_iter_mut().enumerate() {
        column.set_constraint(match wrap.iter().find(|(w, _)| *w == k) {
            Some((_, least)) => ColumnConstraint::LowerBoundary(Width::Fixed(*least)),
            None => ColumnConstraint::ContentWidth,
        });
    }
    if !table.is_tty() {
        if let Some(width) = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<u16>().ok())
            .filter(|w| *w >= 40)
        {
            table.set_width(width);
        }
    }
    table
}

/// Writes `text` to stdout. A reader that went away (`snapcopy plan | head`) is not an error:
/// the rest is dropped quietly, as psql and the shell's tools do.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: could not write to stdout: {e}");
        }
    }
}

/// Prints `{"tables": [...]}` on stdout, the shape of every `--json` output.
pub fn print_json(tables: &impl serde::Serialize) {
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(&serde_json::json!({ "tables": tables }))
            .expect("report rows serialize")
    ));
}

/// Prints the summary of a run on stdout.
pub fn print(outcomes: &[TableOutcome], json: bool) {
    if json {
        return print_json(&outcomes);
    }
    let mut table = new_table(
        &[
            "table", "action", "rows", "skipped", "size", "seconds", "status", "note",
        ],
        &[(6, 24), (7, 16)],
    );
    for o in outcomes {
        table.add_row(vec![
            Cell::new(o.name.human()),
            Cell::new(o.action.map_or("not copied", Action::done_word)),
            right(count(o.rows)),
            right(count(o.skipped)),
            right(o.bytes.map(bytes).unwrap_or_default()),
            right(format!("{:.2}", o.seconds)),
            Cell::new(match &o.status {
                TableStatus::Done => "ok".to_string(),
                TableStatus::Failed(why) => format!("FAILED: {}", crate::sql::printable(why)),
            }),
            Cell::new(crate::sql::printable(&match &o.sync {
                Some(s) if o.note.is_empty() => s.words(),
                Some(s) => format!("{}; {}", o.note, s.words()),
                None => o.note.clone(),
            })),
        ]);
    }
    let mut links: Vec<LinkKind> = outcomes.iter().filter_map(|o| o.link).collect();
    links.sort_by_key(|l| l.as_str());
    links.dedup();
    let read = match links.as_slice() {
        [] => String::new(),
        [LinkKind::Dblink] => "read through dblink, every table as of one moment\n".into(),
        [LinkKind::PostgresFdw] => "read through postgres_fdw, each group of tables tied by \
                                    foreign keys as of a moment of its own\n"
            .into(),
        _ => "read through dblink and postgres_fdw\n".into(),
    };
    out(&format!("{table}\n{read}"));
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
    /// The link its staging object reads through.
    pub link: String,
    /// The table is the user's (`--data-only`): snapcopy loads its rows, never its definition.
    pub data_only: bool,
}

/// Prints `snapcopy status`; `quiet` says nothing of an empty registry.
pub fn print_status(rows: &[StatusRow], json: bool, quiet: bool) {
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() && quiet {
        return;
    }
    if rows.is_empty() {
        out("snapcopy manages no tables in this database yet\n");
        return;
    }
    let mut table = new_table(
        &[
            "table",
            "mode",
            "staging",
            "link",
            "last refresh",
            "rows",
            "loaded",
            "source snapshot",
            "source",
        ],
        // A timestamp wraps at its spaces: `2026-11-22`, `02:41:47`, `UTC` (12 with padding).
        &[(4, 12), (7, 12), (8, 10)],
    );
    for r in rows {
        table.add_row(vec![
            Cell::new(&r.table),
            Cell::new(if r.data_only {
                format!("{} data only", r.mode)
            } else {
                r.mode.clone()
            }),
            Cell::new(&r.staging),
            Cell::new(&r.link),
            Cell::new(&r.refreshed_at),
            right(r.rows_total.map(count).unwrap_or_default()),
            right(r.rows_loaded.map(count).unwrap_or_default()),
            Cell::new(r.source_snapshot_at.clone().unwrap_or_default()),
            // The source table only when its name is not the target's.
            Cell::new(if r.source_table == r.table {
                r.source.clone()
            } else {
                format!("{} {}", r.source, r.source_table)
            }),
        ]);
    }
    out(&format!("{table}\n"));
}
