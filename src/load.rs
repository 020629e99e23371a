//! Execution: runs a plan's units on the target, each in its own session and transaction.
//!
//! A unit's rows flow from the source to the target server through dblink; this process only
//! sends SQL and reads command tags. The dblink connection is named after the foreign server,
//! and dblink looks a name up among open connections before treating it as a server, so the
//! staging objects (`dblink('<server>', ...)`) read through the unit's connection and its
//! read-only source transaction. A failure rolls the unit back: its tables keep their previous
//! contents, and the other units go on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use futures::stream::{self, StreamExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{CancelToken, GenericClient};

use crate::conninfo::ConnInfo;
use crate::link::{connect, describe, first_line, Side};
use crate::plan::{Action, Phase, Split, Step, TableInfo, Unit};
use crate::progress::{Progress, TableProgress};
use crate::report::{TableOutcome, TableStatus};
use crate::settings::Verbosity;

/// Cancel tokens of the sessions whose queries are running, so that an interrupted run can
/// stop them on the servers instead of leaving them to finish unseen.
static RUNNING: Mutex<Vec<CancelToken>> = Mutex::new(Vec::new());

/// Remembers a session to cancel if the run is interrupted.
pub fn register(client: &tokio_postgres::Client) {
    lock(&RUNNING).push(client.cancel_token());
}

/// Asks the server to cancel whatever each registered session is running. Their transactions
/// roll back, so every table keeps its previous contents.
pub async fn cancel_running() {
    let tokens: Vec<CancelToken> = lock(&RUNNING).drain(..).collect();
    // All at once, and not for long: a server that does not answer must not hold the exit up
    // (its sessions end when the process does, and roll back).
    let cancels = futures::future::join_all(
        tokens
            .iter()
            .map(|token| token.cancel_query(tokio_postgres::NoTls)),
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), cancels).await;
}

/// Where and how a run's sessions work: the target, the source snapshot they read in, how much
/// they say, and the role the target server reads the source as (for messages).
pub struct Run<'a> {
    /// The target's conninfo; each session opens its own connection.
    pub target: &'a ConnInfo,
    /// The id of the source snapshot every session reads in.
    pub snapshot: &'a str,
    /// How much to say on stderr.
    pub verbosity: Verbosity,
    /// The role of the target server's connections to the source.
    pub source_role: &'a str,
    /// The run's lock on the target, checked before each commit (`None`: no check).
    pub lock: Option<&'a crate::guard::RunLock>,
}

/// Runs the units, `jobs` sessions at a time, and returns one outcome per table. `snapshot`
/// is the id of the source snapshot every session reads in.
///
/// The ranges of split tables go first, so that a large table is never the last thing left;
/// then their index builds, each waiting for its table's ranges; then the units, largest
/// first. A unit with split tables waits for their index builds, then moves the tables into
/// place and adds their keys while the other sessions load other units.
pub async fn run_units(
    run: &Run<'_>,
    units: &[Unit],
    jobs: usize,
    progress: &Progress,
) -> Vec<TableOutcome> {
    let mut ranges = Vec::new();
    let mut indexes = Vec::new();
    let mut waits = Vec::new();
    for unit in units {
        let mut unit_waits = Vec::new();
        for split in &unit.splits {
            let shared = Arc::new(SplitRun::new(unit, split, progress));
            let part = |k| SplitPart {
                shared: shared.clone(),
                k,
                seconds: 0.0,
            };
            let mut receivers = Vec::new();
            for (k, steps) in split.ranges.iter().enumerate() {
                let (done, receive) = oneshot::channel();
                receivers.push(receive);
                ranges.push(Task::Part {
                    steps,
                    after: None,
                    run: part(k),
                    done,
                });
            }
            let loaded = slowest(receivers).boxed_local().shared();
            let mut built = Vec::new();
            for step in &split.indexes {
                let (done, receive) = oneshot::channel();
                built.push(receive);
                indexes.push(Task::Part {
                    steps: std::slice::from_ref(step),
                    after: Some(loaded.clone()),
                    // An index build counts no rows.
                    run: part(0),
                    done,
                });
            }
            unit_waits.push(SplitWait {
                shared: shared.clone(),
                loaded,
                built,
            });
        }
        waits.push(unit_waits);
    }
    // Every range is under way before an index build waits for its table's ranges, and every
    // index build before a unit waits for them: a waiting task never holds the slot that what
    // it waits for needs.
    let tasks = ranges.into_iter().chain(indexes).chain(
        units
            .iter()
            .zip(waits)
            .map(|(unit, splits)| Task::Unit { unit, splits }),
    );
    let results: Vec<Vec<TableOutcome>> = stream::iter(tasks)
        .map(|task| task.run(run, progress))
        .buffer_unordered(jobs)
        .collect()
        .await;
    results.into_iter().flatten().collect()
}

/// How a part of a split table ended: its seconds, or why it failed.
type PartResult = Result<f64, StepError>;

/// The end of every range of a split table, which its index builds and its unit wait for.
type Loaded<'a> = Shared<LocalBoxFuture<'a, PartResult>>;

/// Waits for parts and gives the slowest one's seconds, or the first failure.
async fn slowest(parts: Vec<oneshot::Receiver<PartResult>>) -> PartResult {
    let mut seconds: f64 = 0.0;
    let mut failure = None;
    for part in parts {
        match part.await {
            Ok(Ok(s)) => seconds = seconds.max(s),
            // The first failure is the one to tell; the others were skipped for it.
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(oneshot::Canceled) => {
                failure.get_or_insert(StepError {
                    table: None,
                    phase: Phase::Batch,
                    message: "a part of the split load stopped without a result".into(),
                });
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(seconds),
    }
}

/// One session's work.
enum Task<'a> {
    /// A range of a split table, or one of its index builds (`after` its ranges).
    Part {
        steps: &'a [Step],
        after: Option<Loaded<'a>>,
        run: SplitPart<'a>,
        done: oneshot::Sender<PartResult>,
    },
    /// A unit, with its split tables to wait for.
    Unit {
        unit: &'a Unit,
        splits: Vec<SplitWait<'a>>,
    },
}

/// What a unit waits for before it moves a split table into place.
struct SplitWait<'a> {
    shared: Arc<SplitRun<'a>>,
    loaded: Loaded<'a>,
    built: Vec<oneshot::Receiver<PartResult>>,
}

impl Task<'_> {
    async fn run(self, ctx: &Run<'_>, progress: &Progress) -> Vec<TableOutcome> {
        match self {
            Task::Part {
                steps,
                after,
                mut run,
                done,
            } => {
                let ready = match after {
                    Some(loaded) => loaded.await.map(|_| ()),
                    None => Ok(()),
                };
                // A sibling failed: the table will not be copied, spare the servers the work.
                let result = if ready.is_err() || run.shared.failed.load(Ordering::Relaxed) {
                    Err(StepError {
                        table: None,
                        phase: Phase::Connect,
                        message: "skipped: another part of the split load failed".into(),
                    })
                } else {
                    let session = Session {
                        steps,
                        undo_table: None,
                        tables: &[],
                    };
                    execute(ctx, &session, &mut run, Isolated::default())
                        .await
                        .map(|_| run.seconds)
                };
                if result.is_err() {
                    run.shared.failed.store(true, Ordering::Relaxed);
                }
                let _ = done.send(result);
                Vec::new()
            }
            Task::Unit { unit, splits } => run_unit(ctx, unit, splits, progress).await,
        }
    }
}

/// A failed statement, with the table it was about.
#[derive(Clone)]
struct StepError {
    table: Option<usize>,
    phase: Phase,
    message: String,
}

/// Where a session's results go: a unit's outcomes, or one range's share of a split table.
trait Tally {
    /// A statement about table `i` starts.
    fn touch(&mut self, i: usize);
    /// Rows this session has inserted into table `i` so far; `periodic` for batches, whose
    /// progress lines show as they come (a table loaded in one statement gets its final line).
    fn rows(&mut self, i: usize, rows: i64, periodic: bool);
    /// An incremental insert's result: rows read, rows inserted, the new high-water mark.
    fn inserted(&mut self, i: usize, read: i64, inserted: i64, high_water: Option<String>);
    /// The registry row's parameters for table `i`.
    fn record(&self, i: usize) -> (i64, i64, bool, Option<String>);
    /// Time spent on table `i`.
    fn seconds(&mut self, i: usize, seconds: f64);
}

/// A unit's tables as they run: outcomes, and progress started when a table's first
/// statement runs.
struct UnitRun<'a> {
    unit: &'a Unit,
    progress: &'a Progress,
    outcomes: Vec<TableOutcome>,
    bars: Vec<Option<TableProgress>>,
}

impl Tally for UnitRun<'_> {
    fn touch(&mut self, i: usize) {
        if self.bars[i].is_none() {
            self.bars[i] = Some(start_bar(self.progress, &self.unit.tables[i]));
        }
    }

    fn rows(&mut self, i: usize, rows: i64, periodic: bool) {
        self.outcomes[i].rows = rows;
        self.touch(i);
        if let Some(bar) = self.bars[i].as_mut() {
            bar.rows(rows, periodic);
        }
    }

    fn inserted(&mut self, i: usize, read: i64, inserted: i64, high_water: Option<String>) {
        self.rows(i, inserted, false);
        self.outcomes[i].skipped = read - inserted;
        self.outcomes[i].high_water = high_water;
    }

    fn record(&self, i: usize) -> (i64, i64, bool, Option<String>) {
        let o = &self.outcomes[i];
        let pushed_down = self.unit.tables[i].pushed_down();
        (o.rows, o.skipped, pushed_down, o.high_water.clone())
    }

    fn seconds(&mut self, i: usize, seconds: f64) {
        self.outcomes[i].seconds += seconds;
    }
}

fn start_bar(progress: &Progress, table: &TableInfo) -> TableProgress {
    let verb = match table.action {
        Action::Create => "copying",
        Action::Reload => "reloading",
        Action::Rebuild => "rebuilding",
        Action::Insert => "adding missing rows to",
        Action::UserRows => "adding user rows to",
    };
    progress.start(&table.name, verb, table.estimated_rows)
}

/// A split table while its ranges load: one progress bar for all of them.
struct SplitRun<'a> {
    split: &'a Split,
    info: &'a TableInfo,
    progress: &'a Progress,
    bar: Mutex<Option<TableProgress>>,
    /// Rows each range has inserted so far.
    rows: Mutex<Vec<i64>>,
    /// Whether a range failed (the others that have not started skip their work).
    failed: AtomicBool,
}

impl<'a> SplitRun<'a> {
    fn new(unit: &'a Unit, split: &'a Split, progress: &'a Progress) -> SplitRun<'a> {
        SplitRun {
            split,
            info: &unit.tables[split.table],
            progress,
            bar: Mutex::new(None),
            rows: Mutex::new(vec![0; split.ranges.len()]),
            failed: AtomicBool::new(false),
        }
    }

    fn total_rows(&self) -> i64 {
        lock(&self.rows).iter().sum()
    }
}

/// One range or index build of a split table.
struct SplitPart<'a> {
    shared: Arc<SplitRun<'a>>,
    k: usize,
    seconds: f64,
}

impl Tally for SplitPart<'_> {
    fn touch(&mut self, _: usize) {
        let mut bar = lock(&self.shared.bar);
        if bar.is_none() {
            *bar = Some(start_bar(self.shared.progress, self.shared.info));
        }
    }

    fn rows(&mut self, i: usize, rows: i64, periodic: bool) {
        self.touch(i);
        lock(&self.shared.rows)[self.k] = rows;
        let total = self.shared.total_rows();
        if let Some(bar) = lock(&self.shared.bar).as_mut() {
            bar.rows(total, periodic);
        }
    }

    fn inserted(&mut self, i: usize, _read: i64, inserted: i64, _high_water: Option<String>) {
        self.rows(i, inserted, false);
    }

    fn record(&self, _: usize) -> (i64, i64, bool, Option<String>) {
        (0, 0, false, None)
    }

    fn seconds(&mut self, _: usize, seconds: f64) {
        self.seconds += seconds;
    }
}

/// A mutex's contents, even if a thread panicked while holding it (the data stays usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn run_unit(
    ctx: &Run<'_>,
    unit: &Unit,
    splits: Vec<SplitWait<'_>>,
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
    // A split table whose ranges or index builds failed: one the run creates fails alone, the
    // unit goes on without it; one that exists already takes its unit with it.
    let mut split_failed = None;
    let mut isolated = Isolated::default();
    for wait in splits {
        let i = wait.shared.split.table;
        let loaded = wait.loaded.await;
        let built = slowest(wait.built).await;
        match loaded.and_then(|l| built.map(|b| l + b)) {
            Ok(seconds) => run.outcomes[i].seconds = seconds,
            Err(e) => {
                let e = StepError {
                    table: Some(i),
                    ..e
                };
                if unit.tables[i].action == Action::Create {
                    isolated.failed.insert(i, e);
                } else {
                    split_failed.get_or_insert(e);
                }
            }
        }
        run.outcomes[i].rows = wait.shared.total_rows();
        run.bars[i] = lock(&wait.shared.bar).take();
    }
    let result = match split_failed {
        Some(e) => Err(e),
        None => {
            let session = Session {
                steps: &unit.steps,
                undo_table: Some(&unit.undo_table),
                tables: &unit.tables,
            };
            execute(ctx, &session, &mut run, isolated).await
        }
    };
    for i in 0..unit.tables.len() {
        run.touch(i);
    }
    let bars: Vec<TableProgress> = run.bars.iter_mut().filter_map(Option::take).collect();
    let mut outcomes = run.outcomes;
    match result {
        Ok((client, isolated)) => {
            for ((i, o), (bar, info)) in outcomes
                .iter_mut()
                .enumerate()
                .zip(bars.into_iter().zip(&unit.tables))
            {
                if let Some(e) = isolated.failed.get(&i) {
                    o.rows = 0;
                    o.status = TableStatus::Failed(e.message.clone());
                    progress.finish(bar, "failed, not copied");
                    progress.say(&format!(
                        "error: {} ({:?} phase): {}",
                        o.name.human(),
                        e.phase,
                        e.message
                    ));
                    continue;
                }
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
            for skipped in &isolated.skipped {
                progress.say(&format!("warning: {skipped}"));
            }
            let failed: Vec<usize> = isolated.failed.keys().copied().collect();
            discard(ctx, unit, &failed, progress).await;
        }
        Err(err) => {
            let all: Vec<usize> = (0..unit.tables.len()).collect();
            discard(ctx, unit, &all, progress).await;
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

/// Drops the load tables of the given tables' splits (those of a unit that did not commit, or
/// of tables that failed alone), with the rows their ranges put there. Should that fail too,
/// the next run's setup drops them.
async fn discard(ctx: &Run<'_>, unit: &Unit, tables: &[usize], progress: &Progress) {
    let sql: Vec<&str> = unit
        .splits
        .iter()
        .filter(|s| tables.contains(&s.table))
        .map(|s| s.discard.as_str())
        .collect();
    if sql.is_empty() {
        return;
    }
    let sql = sql.join("; ");
    log_step(ctx.verbosity, &sql);
    let result = match connect(ctx.target, Side::Target).await {
        Ok(client) => client.batch_execute(&sql).await.map_err(|e| describe(&e)),
        Err(e) => Err(format!("{e:#}")),
    };
    if let Err(e) = result {
        progress.say(&format!(
            "warning: could not drop the load tables of a failed split load ({e}); the next \
             snapcopy run or snapcopy teardown drops them"
        ));
    }
}

/// Opens a target session for loading: cancellable, named after the run, with the settings a
/// bulk load wants.
async fn open_session(ctx: &Run<'_>) -> Result<tokio_postgres::Client, StepError> {
    let client = connect(ctx.target, Side::Target)
        .await
        .map_err(|e| StepError {
            table: None,
            phase: Phase::Connect,
            message: format!("{e:#}"),
        })?;
    register(&client);
    if let Some(lock) = ctx.lock {
        let _ = client
            .execute(
                "SELECT pg_catalog.set_config('application_name', $1, false)",
                &[&lock.name()],
            )
            .await;
    }
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
    Ok(client)
}

/// The statements one session runs, and for a unit how a table's block is undone.
struct Session<'a> {
    /// The statements, in order.
    steps: &'a [Step],
    /// For a unit: what undoes a table's block after one of its statements failed (see
    /// [`Phase::TableStart`]).
    undo_table: Option<&'a str>,
    /// For a unit: its tables, to name them when a statement is skipped for one.
    tables: &'a [TableInfo],
}

/// The tables of a unit that failed alone (their blocks undone, the unit gone on without
/// them), and the statements skipped because of them, in words.
#[derive(Default)]
struct Isolated {
    failed: BTreeMap<usize, StepError>,
    skipped: Vec<String>,
}

/// Runs one session's statements: those of the `Connect` phase, then the rest in one target
/// transaction, committed, then those of the `Disconnect` phase. A statement of a table's
/// block that fails undoes the block and fails that table alone; any other failure fails the
/// session. Tables in `isolated` failed before (their split loads): their statements are left
/// out, and so are the foreign keys that reference them, with a warning.
async fn execute(
    ctx: &Run<'_>,
    session: &Session<'_>,
    tally: &mut dyn Tally,
    mut isolated: Isolated,
) -> Result<(tokio_postgres::Client, Isolated), StepError> {
    let (snapshot, verbosity) = (ctx.snapshot, ctx.verbosity);
    let mut client = open_session(ctx).await?;
    let fail = |step: &Step, e: tokio_postgres::Error| StepError {
        table: step.table,
        phase: step.phase,
        message: explain(step, &e, ctx.source_role),
    };
    let steps = session.steps;
    for step in steps.iter().filter(|s| s.phase == Phase::Connect) {
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
    let inside = steps
        .iter()
        .filter(|s| !matches!(s.phase, Phase::Connect | Phase::Disconnect));
    let mut block: Option<usize> = None;
    for step in inside {
        if step.table.is_some_and(|i| isolated.failed.contains_key(&i)) {
            continue;
        }
        if let Some((j, what)) = &step.also {
            if isolated.failed.contains_key(j) {
                isolated.skipped.push(format!(
                    "{what} is skipped: it references {}, which was not copied",
                    session.tables[*j].name.human()
                ));
                continue;
            }
        }
        log_step(verbosity, &step.shown);
        match step.phase {
            Phase::TableStart => block = step.table,
            Phase::TableEnd => block = None,
            _ => {}
        }
        let started = Instant::now();
        if let Some(i) = step.table {
            tally.touch(i);
        }
        if let Err(e) = run_step(&tx, step, tally).await {
            let failed = fail(step, e);
            match (block, step.table, session.undo_table) {
                (Some(b), Some(t), Some(undo)) if b == t => {
                    log_step(verbosity, undo);
                    tx.batch_execute(undo).await.map_err(|e| StepError {
                        message: format!(
                            "{}; undoing what was made of it failed too: {}",
                            failed.message,
                            describe(&e)
                        ),
                        ..failed.clone()
                    })?;
                    isolated.failed.insert(t, failed);
                    block = None;
                    continue;
                }
                _ => return Err(failed),
            }
        }
        if let Some(i) = step.table {
            tally.seconds(i, elapsed(started));
        }
    }
    // A run whose lock was taken from it (its session ended) must not load alongside the run
    // that may hold the lock now: its work rolls back.
    if let Some(lock) = ctx.lock {
        if !lock.held(&tx).await {
            return Err(StepError {
                table: None,
                phase: Phase::Record,
                message: "the run lost its lock on the target (the session holding it ended), \
                          so this work was rolled back and keeps the previous contents: \
                          another run may be loading now; run snapcopy again when it is done"
                    .into(),
            });
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
    for step in steps.iter().filter(|s| s.phase == Phase::Disconnect) {
        log_step(verbosity, &step.shown);
        // The target transaction is committed; closing the read-only source side cannot
        // undo anything, and the session's end would close it anyway.
        let _ = client.batch_execute(&step.sql).await;
    }
    Ok((client, isolated))
}

/// Runs one statement of a session's transaction and tells `tally` what it did.
async fn run_step(
    tx: &tokio_postgres::Transaction<'_>,
    step: &Step,
    tally: &mut dyn Tally,
) -> Result<(), tokio_postgres::Error> {
    match step.phase {
        Phase::Data => {
            let rows = tx.execute(&step.sql, &[]).await?;
            if let Some(i) = step.table {
                tally.rows(i, rows as i64, false);
            }
        }
        Phase::Batch => {
            // The same statement, batch after batch, until the cursor runs dry.
            let size = step.batch.unwrap_or(u64::MAX);
            let mut total = 0;
            loop {
                let rows = tx.execute(&step.sql, &[]).await?;
                total += rows as i64;
                if let Some(i) = step.table {
                    tally.rows(i, total, true);
                }
                if rows < size {
                    break;
                }
            }
        }
        Phase::Insert => {
            let row = tx.query_one(&step.sql, &[]).await?;
            if let Some(i) = step.table {
                tally.inserted(i, row.get(0), row.get(1), row.get(2));
            }
        }
        Phase::Record => {
            if let Some(i) = step.table {
                let (rows, skipped, pushed_down, high_water) = tally.record(i);
                execute_with(tx, &step.sql, &[&rows, &skipped, &pushed_down, &high_water]).await?;
            }
        }
        _ => tx.batch_execute(&step.sql).await?,
    }
    Ok(())
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

/// Turns a server error into a message that says what to do next. `source_role` is the role
/// the target server reads the source as.
fn explain(step: &Step, e: &tokio_postgres::Error, source_role: &str) -> String {
    let message = describe(e);
    let code = e.code();
    match step.phase {
        Phase::Truncate if code == Some(&SqlState::FEATURE_NOT_SUPPORTED) => format!(
            "could not truncate for the reload: {message}; name the referencing table in the \
             same run, or drop its foreign key on the target"
        ),
        Phase::Connect => crate::link::link_failure(code, &message),
        // What reads rows reads the source through dblink from objects snapcopy made itself:
        // a privilege it lacks is the source role's (dblink passes the source's SQLSTATE on).
        Phase::Staging | Phase::Data | Phase::Batch | Phase::Insert
            if code == Some(&SqlState::INSUFFICIENT_PRIVILEGE) =>
        {
            format!(
                "{message} on the source: the source role {source_role} may not read it; grant \
                 it SELECT there (the source's owner can), or leave the table out of the run"
            )
        }
        _ if code == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => format!(
            "{message} (while running: {}); grant the target role that privilege, or run \
             snapcopy as a role that has it",
            first_line(&step.shown)
        ),
        // dblink passes the source's SQLSTATE on: the table the catalog listed is gone.
        Phase::Staging | Phase::Data | Phase::Batch | Phase::Insert
            if code == Some(&SqlState::UNDEFINED_TABLE) =>
        {
            format!(
                "{message}: the table was dropped or renamed on the source during the run; run \
                 snapcopy again"
            )
        }
        _ if code == Some(&SqlState::UNDEFINED_FUNCTION) => format!(
            "{message}: the target lacks a function that the table's defaults, checks, indexes \
             or triggers reach; snapcopy creates the functions they call, but not those called \
             only from inside another function's body: create it on the target (as on the \
             source) and run again"
        ),
        // The table was made from the source's catalog, so a value it refuses meets a type
        // that was on the target already (snapcopy keeps those as they are).
        Phase::Data | Phase::Batch | Phase::Insert if code.is_some_and(refused_value) => format!(
            "{message}: a value from the source does not fit the table on the target, because \
             of a type or domain the target already had (snapcopy keeps those) or a change made \
             to the table there; make the target's definition match the source's (or drop it \
             there so that snapcopy creates the source's) and run again"
        ),
        _ => format!("{message} (while running: {})", first_line(&step.shown)),
    }
}

/// A value the target's type refused: a data exception (class 22), or a domain's CHECK or
/// NOT NULL.
fn refused_value(code: &SqlState) -> bool {
    code.code().starts_with("22")
        || *code == SqlState::CHECK_VIOLATION
        || *code == SqlState::NOT_NULL_VIOLATION
}
