//! Execution: runs a plan's units on the target, each in its own session and transaction.
//!
//! A unit's rows flow from the source to the target server through dblink; this process only
//! sends SQL and reads command tags. The dblink connection is named after the foreign server,
//! and dblink looks a name up among open connections before treating it as a server, so the
//! staging objects (`dblink('<server>', ...)`) read through the unit's connection and its
//! read-only source transaction. A failure rolls the unit back: its tables keep their previous
//! contents, and the other units go on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{CancelToken, GenericClient};

use crate::conninfo::ConnInfo;
use crate::link::{connect, describe, Side};
use crate::plan::{Action, Phase, Unit};
use crate::progress::{Progress, TableProgress};
use crate::report::{TableOutcome, TableStatus};
use crate::settings::Verbosity;

/// Cancel tokens of the sessions whose queries are running, so that an interrupted run can
/// stop them on the servers instead of leaving them to finish unseen.
static RUNNING: Mutex<Vec<CancelToken>> = Mutex::new(Vec::new());

/// Remembers a session to cancel if the run is interrupted.
pub fn register(client: &tokio_postgres::Client) {
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(client.cancel_token());
}

/// Asks the server to cancel whatever each registered session is running. Their transactions
/// roll back, so every table keeps its previous contents.
pub async fn cancel_running() {
    let tokens: Vec<CancelToken> = RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    for token in tokens {
        let _ = token.cancel_query(tokio_postgres::NoTls).await;
    }
}

/// Runs the units, `jobs` at a time, and returns one outcome per table. `snapshot` is the id
/// of the source snapshot every unit reads in.
pub async fn run_units(
    target: &ConnInfo,
    units: &[Unit],
    jobs: usize,
    snapshot: &str,
    verbosity: Verbosity,
    progress: &Progress,
) -> Vec<TableOutcome> {
    let results: Vec<Vec<TableOutcome>> = stream::iter(units)
        .map(|unit| run_unit(target, unit, snapshot, verbosity, progress))
        .buffer_unordered(jobs)
        .collect()
        .await;
    results.into_iter().flatten().collect()
}

/// A failed statement, with the table it was about.
struct StepError {
    table: Option<usize>,
    phase: Phase,
    message: String,
}

/// A unit's tables as they run: outcomes, and progress started when a table's first
/// statement runs.
struct UnitRun<'a> {
    unit: &'a Unit,
    progress: &'a Progress,
    outcomes: Vec<TableOutcome>,
    bars: Vec<Option<TableProgress>>,
}

impl UnitRun<'_> {
    fn touch(&mut self, i: usize) {
        if self.bars[i].is_none() {
            let t = &self.unit.tables[i];
            let verb = match t.action {
                Action::Create => "copying",
                Action::Reload => "reloading",
                Action::Rebuild => "rebuilding",
                Action::Insert => "adding missing rows to",
            };
            self.bars[i] = Some(self.progress.start(&t.name, verb, t.estimated_rows));
        }
    }

    /// Rows inserted so far; `periodic` for batches, whose progress lines show as they come
    /// (a table loaded in one statement just gets its final line).
    fn rows(&mut self, i: usize, rows: i64, periodic: bool) {
        self.outcomes[i].rows = rows;
        self.touch(i);
        if let Some(bar) = self.bars[i].as_mut() {
            bar.rows(rows, periodic);
        }
    }
}

async fn run_unit(
    target: &ConnInfo,
    unit: &Unit,
    snapshot: &str,
    verbosity: Verbosity,
    progress: &Progress,
) -> Vec<TableOutcome> {
    let mut run = UnitRun {
        unit,
        progress,
        outcomes: unit
            .tables
            .iter()
            .map(|t| TableOutcome {
                name: t.name.clone(),
                action: Some(t.action),
                status: TableStatus::Failed(String::new()),
                rows: 0,
                skipped: 0,
                bytes: None,
                seconds: 0.0,
                note: t.note(),
                high_water: None,
            })
            .collect(),
        bars: unit.tables.iter().map(|_| None).collect(),
    };
    let result = execute_unit(target, unit, snapshot, verbosity, &mut run).await;
    for i in 0..unit.tables.len() {
        run.touch(i);
    }
    let bars: Vec<TableProgress> = run.bars.iter_mut().filter_map(Option::take).collect();
    let mut outcomes = run.outcomes;
    match result {
        Ok(client) => {
            for ((o, bar), info) in outcomes.iter_mut().zip(bars).zip(&unit.tables) {
                o.status = TableStatus::Done;
                let size = client
                    .query_one(
                        "SELECT coalesce((SELECT sum(pg_catalog.pg_total_relation_size(relid)) \
                         FROM pg_catalog.pg_partition_tree($1::text::regclass))::bigint, \
                         pg_catalog.pg_total_relation_size($1::text::regclass))",
                        &[&o.name.to_string()],
                    )
                    .await;
                o.bytes = size.ok().and_then(|r| r.try_get(0).ok());
                progress.finish(bar, &format!("{} rows in {:.1} s", o.rows, o.seconds));
                // Without pushdown every row already copied counts as skipped: no news there.
                if o.skipped > 0 && info.pushed_down() {
                    progress.say(&format!(
                        "warning: {}: {} source rows were not inserted because a row with the \
                         same key exists on the target (kept as it is); rows inserted locally \
                         may collide with newer source rows: --mode full takes the source's",
                        o.name.human(),
                        o.skipped
                    ));
                }
            }
        }
        Err(err) => {
            let culprit = err.table.map(|i| unit.tables[i].name.human());
            for ((i, o), bar) in outcomes.iter_mut().enumerate().zip(bars) {
                o.rows = 0;
                let message = match (&culprit, err.table) {
                    (Some(_), Some(t)) if t == i => err.message.clone(),
                    (Some(c), _) => format!(
                        "not changed: {c}, which foreign keys tie to it, failed in the same \
                         transaction"
                    ),
                    (None, _) => err.message.clone(),
                };
                progress.finish(bar, "failed, not changed");
                o.status = TableStatus::Failed(message);
            }
            progress.say(&format!(
                "error: {} ({:?} phase): {}",
                culprit.unwrap_or_else(|| "unit".into()),
                err.phase,
                err.message
            ));
        }
    }
    outcomes
}

async fn execute_unit(
    target: &ConnInfo,
    unit: &Unit,
    snapshot: &str,
    verbosity: Verbosity,
    run: &mut UnitRun<'_>,
) -> Result<tokio_postgres::Client, StepError> {
    let mut client = connect(target, Side::Target).await.map_err(|e| StepError {
        table: None,
        phase: Phase::Connect,
        message: format!("{e:#}"),
    })?;
    register(&client);
    // If this process dies (even by SIGKILL), the server notices within a second and rolls the
    // load back instead of finishing it for nobody; the setting exists since PostgreSQL 14.
    let _ = client
        .batch_execute("SET client_connection_check_interval = '1s'")
        .await;
    // Index and key builds after the rows want memory; raise it (never lower it) for this
    // session.
    let _ = client
        .batch_execute(
            "SELECT pg_catalog.set_config('maintenance_work_mem', '262144', false) \
             FROM pg_catalog.pg_settings WHERE name = 'maintenance_work_mem' \
             AND setting::bigint < 262144",
        )
        .await;
    // A bulk load must not be cut short by the target's own timeouts.
    client
        .batch_execute(
            "SET statement_timeout = 0; SET lock_timeout = 0; \
             SET idle_in_transaction_session_timeout = 0",
        )
        .await
        .map_err(|e| StepError {
            table: None,
            phase: Phase::Connect,
            message: describe(&e),
        })?;

    let fail = |step: &crate::plan::Step, e: tokio_postgres::Error| StepError {
        table: step.table,
        phase: step.phase,
        message: explain(step, &e),
    };
    for step in unit.steps.iter().filter(|s| s.phase == Phase::Connect) {
        log_step(verbosity, &step.shown);
        execute_with(&client, &step.sql, &[&snapshot])
            .await
            .map_err(|e| fail(step, e))?;
    }
    let tx = client.transaction().await.map_err(|e| StepError {
        table: None,
        phase: Phase::Connect,
        message: describe(&e),
    })?;
    let inside = unit
        .steps
        .iter()
        .filter(|s| !matches!(s.phase, Phase::Connect | Phase::Disconnect));
    for step in inside {
        log_step(verbosity, &step.shown);
        let started = Instant::now();
        if let Some(i) = step.table {
            run.touch(i);
        }
        match step.phase {
            Phase::Data => {
                let rows = tx
                    .execute(&step.sql, &[])
                    .await
                    .map_err(|e| fail(step, e))?;
                if let Some(i) = step.table {
                    run.rows(i, rows as i64, false);
                }
            }
            Phase::Batch => {
                // The same statement, batch after batch, until the cursor runs dry.
                let size = step.batch.unwrap_or(u64::MAX);
                let mut total = 0;
                loop {
                    let rows = tx
                        .execute(&step.sql, &[])
                        .await
                        .map_err(|e| fail(step, e))?;
                    total += rows as i64;
                    if let Some(i) = step.table {
                        run.rows(i, total, true);
                    }
                    if rows < size {
                        break;
                    }
                }
            }
            Phase::Insert => {
                let row = tx
                    .query_one(&step.sql, &[])
                    .await
                    .map_err(|e| fail(step, e))?;
                if let Some(i) = step.table {
                    let read: i64 = row.get(0);
                    let inserted: i64 = row.get(1);
                    run.rows(i, inserted, false);
                    run.outcomes[i].skipped = read - inserted;
                    run.outcomes[i].high_water = row.get(2);
                }
            }
            Phase::Record => {
                let Some(i) = step.table else { continue };
                let o = &run.outcomes[i];
                let pushed_down = unit.tables[i].pushed_down();
                execute_with(
                    &tx,
                    &step.sql,
                    &[&o.rows, &o.skipped, &pushed_down, &o.high_water],
                )
                .await
                .map_err(|e| fail(step, e))?;
            }
            _ => tx
                .batch_execute(&step.sql)
                .await
                .map_err(|e| fail(step, e))?,
        }
        if let Some(i) = step.table {
            run.outcomes[i].seconds += elapsed(started);
        }
    }
    tx.commit().await.map_err(|e| StepError {
        table: None,
        phase: Phase::ForeignKeys,
        message: format!(
            "the commit failed, so these tables keep their previous contents: {} (a deferred \
             constraint is checked at commit; fix the rows it names, on the source or in the \
             target's other tables, and run again)",
            describe(&e)
        ),
    })?;
    for step in unit.steps.iter().filter(|s| s.phase == Phase::Disconnect) {
        log_step(verbosity, &step.shown);
        // The target transaction is committed; closing the read-only source side cannot
        // undo anything, and the session's end would close it anyway.
        let _ = client.batch_execute(&step.sql).await;
    }
    Ok(client)
}

/// Runs a statement with as many of `values` as it has parameters: each statement the plan
/// writes uses the leading ones it needs (the registry row of a full reload has no `$4`).
async fn execute_with(
    client: &impl GenericClient,
    sql: &str,
    values: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare(sql).await?;
    let used = statement.params().len();
    client.execute(&statement, &values[..used]).await
}

fn elapsed(started: Instant) -> f64 {
    Duration::as_secs_f64(&started.elapsed())
}

fn log_step(verbosity: Verbosity, sql: &str) {
    if verbosity == Verbosity::Verbose {
        eprintln!("{sql};");
    }
}

/// Turns a server error into a message that says what to do next.
fn explain(step: &crate::plan::Step, e: &tokio_postgres::Error) -> String {
    let message = describe(e);
    let code = e.code();
    match step.phase {
        Phase::Truncate if code == Some(&SqlState::FEATURE_NOT_SUPPORTED) => format!(
            "could not truncate for the reload: {message}; name the referencing table in the \
             same run, or drop its foreign key on the target"
        ),
        Phase::Connect => crate::link::link_failure(&message),
        _ if code == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => format!(
            "{message} (while running: {}); grant the target role that privilege, or run \
             snapcopy as a role that has it",
            first_line(&step.shown)
        ),
        // dblink passes the source's SQLSTATE on: the table the catalog listed is gone.
        Phase::Staging | Phase::Data | Phase::Insert
            if code == Some(&SqlState::UNDEFINED_TABLE) =>
        {
            format!(
                "{message}: the table was dropped or renamed on the source during the run; run \
                 snapcopy again"
            )
        }
        _ => format!("{message} (while running: {})", first_line(&step.shown)),
    }
}

/// The statement's first line, cut to 200 bytes, for messages.
fn first_line(sql: &str) -> String {
    let line = sql.lines().next().unwrap_or_default();
    let cut = crate::sql::truncate_bytes(line, 200);
    if cut.len() < line.len() {
        format!("{cut}...")
    } else {
        line.to_string()
    }
}
