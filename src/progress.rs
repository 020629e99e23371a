//! Progress on stderr: indicatif bars on a terminal (one per running table, one for the run),
//! plain log lines otherwise (at most one per table every second while rows arrive), nothing
//! with `--quiet`. Rows are counted as the target inserts them, batch by batch for large
//! tables, so a long single-table load moves. Rates read `682k rows/s, ~45 MB/s`: the megabytes
//! are estimated from what the table's rows weigh on the source (the rows themselves pass
//! from server to server, never through this process).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::human::{byte_rate, count, row_rate};

use crate::settings::Verbosity;
use crate::sql::QualifiedName;

/// How progress is shown.
enum Display {
    /// Bars on a terminal.
    Bars {
        all: MultiProgress,
        run: ProgressBar,
    },
    /// Log lines, for logs and CI.
    Lines,
    /// Nothing.
    Quiet,
}

/// The run's progress, shared by the units.
pub struct Progress {
    display: Display,
}

/// How often a plain log line may repeat for one table.
const LINE_EVERY: Duration = Duration::from_secs(1);

impl Progress {
    /// Chooses bars or lines by whether stderr is a terminal; `tables` is the run's size.
    pub fn new(verbosity: Verbosity, tables: usize) -> Progress {
        let display = match verbosity {
            Verbosity::Quiet => Display::Quiet,
            // Statements interleave with bars badly; -v gets lines.
            Verbosity::Verbose => Display::Lines,
            Verbosity::Normal if std::io::stderr().is_terminal() => {
                let all = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
                let run = all.add(ProgressBar::new(tables as u64));
                run.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30}] {pos}/{len} tables {elapsed}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                run.set_prefix("snapcopy");
                run.enable_steady_tick(Duration::from_millis(500));
                Display::Bars { all, run }
            }
            Verbosity::Normal => Display::Lines,
        };
        Progress { display }
    }

    /// Prints a line above the bars, or plainly.
    pub fn say(&self, line: &str) {
        let line = &crate::sql::printable(line);
        match &self.display {
            Display::Bars { all, .. } => {
                let _ = all.println(line);
            }
            Display::Lines => eprintln!("{line}"),
            Display::Quiet => {}
        }
    }

    /// A table starts; `estimated_rows` and `estimated_bytes` are the source's estimates of
    /// its rows and what they weigh (0 when unknown).
    pub fn start(
        &self,
        name: &QualifiedName,
        verb: &str,
        estimated_rows: i64,
        estimated_bytes: i64,
    ) -> TableProgress {
        let label = name.human();
        let row_bytes = if estimated_rows > 0 && estimated_bytes > 0 {
            estimated_bytes as f64 / estimated_rows as f64
        } else {
            0.0
        };
        let bar = match &self.display {
            Display::Bars { all, run } => {
                let bar = all.insert_before(run, ProgressBar::new(estimated_rows.max(0) as u64));
                let template = if estimated_rows > 0 {
                    "{prefix:>12} [{bar:30}] {human_pos}/~{human_len} rows, {rate} eta {eta}"
                } else {
                    "{prefix:>12} {spinner} {human_pos} rows, {rate}"
                };
                bar.set_style(
                    ProgressStyle::with_template(template)
                        .expect("a valid template")
                        .with_key(
                            "rate",
                            move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                                let _ = w.write_str(&rates(state.per_sec(), row_bytes));
                            },
                        )
                        .progress_chars("=> "),
                );
                bar.set_prefix(label.clone());
                bar.enable_steady_tick(Duration::from_millis(500));
                Some(bar)
            }
            Display::Lines => {
                if estimated_rows > 0 {
                    eprintln!("{verb} {label} (about {} rows)", count(estimated_rows));
                } else {
                    eprintln!("{verb} {label}");
                }
                None
            }
            Display::Quiet => None,
        };
        TableProgress {
            label,
            bar,
            lines: matches!(self.display, Display::Lines),
            estimated_rows,
            row_bytes,
            started: Instant::now(),
            last_line: Instant::now(),
            reported: false,
        }
    }

    /// A table is done (or failed); the run bar moves.
    pub fn finish(&self, table: TableProgress, outcome: &str) {
        if let Some(bar) = &table.bar {
            bar.finish_and_clear();
        }
        match &self.display {
            Display::Bars { run, all } => {
                let _ = all.println(format!("{}: {outcome}", table.label));
                run.inc(1);
            }
            Display::Lines => eprintln!("{}: {outcome}", table.label),
            Display::Quiet => {}
        }
    }

    /// The run is over: clear the bars.
    pub fn done(&self) {
        if let Display::Bars { run, .. } = &self.display {
            run.finish_and_clear();
        }
    }
}

/// One table's progress.
pub struct TableProgress {
    label: String,
    bar: Option<ProgressBar>,
    lines: bool,
    estimated_rows: i64,
    /// What a row weighs on the source, for MB/s (0 when unknown).
    row_bytes: f64,
    started: Instant,
    last_line: Instant,
    reported: bool,
}

impl TableProgress {
    /// Rows inserted so far; `lines` allows a progress line (batches).
    pub fn rows(&mut self, rows: i64, lines: bool) {
        if let Some(bar) = &self.bar {
            if rows as u64 > bar.length().unwrap_or(0) {
                bar.set_length(rows as u64);
            }
            bar.set_position(rows as u64);
        }
        // The first batch always shows (a large table moves from the start), then at most one
        // line a second.
        let first = !self.reported;
        if lines && self.lines && (first || self.last_line.elapsed() >= LINE_EVERY) {
            self.reported = true;
            self.last_line = Instant::now();
            let rate = rates(self.rate(rows), self.row_bytes);
            if self.estimated_rows > 0 {
                let percent = 100.0 * rows as f64 / self.estimated_rows as f64;
                eprintln!(
                    "{}: {} of about {} rows ({percent:.0}%), {rate}",
                    self.label,
                    count(rows),
                    count(self.estimated_rows)
                );
            } else {
                eprintln!("{}: {} rows, {rate}", self.label, count(rows));
            }
        }
    }
}

impl TableProgress {
    /// Rows a second since the table started.
    fn rate(&self, rows: i64) -> f64 {
        rows as f64 / self.started.elapsed().as_secs_f64().max(0.001)
    }
}

/// `682k rows/s, ~45 MB/s`; the megabytes only when what a row weighs is known.
fn rates(rows_per_second: f64, row_bytes: f64) -> String {
    if row_bytes > 0.0 {
        format!(
            "{}, ~{}",
            row_rate(rows_per_second),
            byte_rate(rows_per_second * row_bytes)
        )
    } else {
        row_rate(rows_per_second)
    }
}
