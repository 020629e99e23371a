//! One unit: its session's statements in order, its tables' blocks undone alone when they
//! fail, the run's lock checked before it commits, and what each table's outcome is.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::GenericClient;

use super::build::Board;
use super::explain::explain;
use super::explain::{During, StepError};
use super::session::{connect, describe, open_session, Side};
use super::{lock, slowest, Run, SplitWait};
use crate::plan::{Action, Branch, Phase, Step, StepKind, TableInfo, TableIx, Unit};
use crate::progress::{Progress, TableProgress};
use crate::report::{SyncCounts, TableOutcome, TableStatus};
use crate::settings::Verbosity;

/// Where a session's results go: a unit's outcomes, or one range's share of a split table.
pub(super) trait Tally {
    /// A statement about table `i` starts.
    fn touch(&mut self, i: TableIx);
    /// Rows this session has inserted into table `i` so far; `periodic` for batches, whose
    /// progress lines show as they come (a table loaded in one statement gets its final line).
    fn rows(&mut self, i: TableIx, rows: i64, periodic: bool);
    /// An incremental insert's result: rows read, rows inserted, the new high-water mark.
    fn inserted(&mut self, i: TableIx, read: i64, inserted: i64, high_water: Option<String>);
    /// Rows copied into table `i` from its load table, on top of those counted so far.
    fn merged(&mut self, i: TableIx, rows: i64);
    /// Counts of a sync's statement about table `i`, on top of those so far.
    fn synced(&mut self, i: TableIx, counts: &SyncCounts);
    /// What the registry row of table `i` says of the run.
    fn record(&self, i: TableIx) -> Recorded;
    /// Time spent on table `i`.
    fn seconds(&mut self, i: TableIx, seconds: f64);
}

/// The registry row's parameters (see [`StepKind::Record`]).
#[derive(Debug, Default)]
pub(super) struct Recorded {
    /// Rows loaded.
    rows: i64,
    /// Rows read but not inserted (their key was there).
    skipped: i64,
    /// Whether only new rows were read.
    pushed_down: bool,
    /// The highest cursor value read (incremental).
    high_water: Option<String>,
    /// Rows the table gained (sync: inserted less deleted).
    gained: i64,
}

/// A unit's tables as they run: outcomes, and progress started when a table's first
/// statement runs.
pub(super) struct UnitRun<'a> {
    pub(super) unit: &'a Unit,
    pub(super) progress: &'a Progress,
    pub(super) outcomes: Vec<TableOutcome>,
    pub(super) bars: Vec<Option<TableProgress>>,
}

impl Tally for UnitRun<'_> {
    fn touch(&mut self, i: TableIx) {
        if self.bars[i].is_none() {
            self.bars[i] = Some(start_bar(self.progress, &self.unit.tables[i]));
        }
    }

    fn rows(&mut self, i: TableIx, rows: i64, periodic: bool) {
        self.outcomes[i].rows = rows;
        self.touch(i);
        if let Some(bar) = self.bars[i].as_mut() {
            bar.rows(rows, periodic);
        }
    }

    fn inserted(&mut self, i: TableIx, read: i64, inserted: i64, high_water: Option<String>) {
        self.rows(i, inserted, false);
        self.outcomes[i].skipped = read - inserted;
        self.outcomes[i].high_water = high_water;
    }

    fn merged(&mut self, i: TableIx, rows: i64) {
        let total = self.outcomes[i].rows + rows;
        self.rows(i, total, false);
    }

    fn synced(&mut self, i: TableIx, counts: &SyncCounts) {
        let sync = self.outcomes[i]
            .sync
            .get_or_insert_with(SyncCounts::default);
        sync.add(counts);
        let written = sync.inserted + sync.updated;
        self.rows(i, written, true);
    }

    fn record(&self, i: TableIx) -> Recorded {
        let o = &self.outcomes[i];
        Recorded {
            rows: o.rows,
            skipped: o.skipped,
            pushed_down: self.unit.tables[i].pushed_down(),
            high_water: o.high_water.clone(),
            gained: o.sync.as_ref().map_or(0, |s| s.inserted - s.deleted),
        }
    }

    fn seconds(&mut self, i: TableIx, seconds: f64) {
        self.outcomes[i].seconds += seconds;
    }
}

pub(super) fn start_bar(progress: &Progress, table: &TableInfo) -> TableProgress {
    progress.start(
        &table.name,
        table.action.doing_word(),
        table.estimated_rows,
        table.estimated_bytes,
    )
}

pub(super) async fn run_unit(
    ctx: &Run<'_>,
    unit: &Unit,
    splits: Vec<SplitWait<'_>>,
    board: &Board<'_>,
    progress: &Progress,
) -> Vec<TableOutcome> {
    let mut run = UnitRun {
        unit,
        progress,
        outcomes: unit.tables.iter().map(planned_outcome).collect(),
        bars: unit.tables.iter().map(|_| None).collect(),
    };
    // A table reloaded in parts is waited for where its unit copies the other ranges' rows;
    // a new split table before the unit starts.
    let (merges, starts): (Vec<_>, Vec<_>) =
        splits.into_iter().partition(|w| w.shared.split.merged);
    let mut merges: BTreeMap<TableIx, SplitWait> = merges
        .into_iter()
        .map(|w| (w.shared.split.table, w))
        .collect();
    let result = match wait_for_splits(&mut run, starts).await {
        Err(e) => Err(e),
        Ok(isolated) => {
            let session = Session {
                steps: &unit.steps,
                undo_table: Some(&unit.undo_table),
                tables: &unit.tables,
            };
            execute(ctx, &session, &mut run, isolated, &mut merges, Some(board)).await
        }
    };
    // No helper writes a load table of the unit from here on: those of the tables that
    // failed, or all of them, can go.
    board.close().await;
    for i in 0..unit.tables.len() {
        run.touch(TableIx(i));
    }
    let bars: Vec<TableProgress> = run.bars.iter_mut().filter_map(Option::take).collect();
    let mut outcomes = run.outcomes;
    match result {
        Ok((client, isolated)) => {
            committed(ctx, &client, unit, &mut outcomes, bars, &isolated, progress).await
        }
        Err(err) => rolled_back(ctx, unit, &mut outcomes, bars, &err, progress).await,
    }
    outcomes
}

/// A table's outcome before anything ran: failed, for want of news.
fn planned_outcome(t: &TableInfo) -> TableOutcome {
    TableOutcome {
        name: t.name.clone(),
        action: Some(t.action),
        status: TableStatus::Failed(String::new()),
        rows: 0,
        skipped: 0,
        bytes: None,
        seconds: 0.0,
        note: t.note(),
        high_water: None,
        link: Some(t.link),
        sync: None,
    }
}

/// Waits for the unit's split tables. One the run creates whose ranges or index builds failed
/// fails alone (the unit goes on without it, see [`Isolated`]); one that exists already takes
/// its unit with it (the `Err`).
async fn wait_for_splits(
    run: &mut UnitRun<'_>,
    splits: Vec<SplitWait<'_>>,
) -> Result<Isolated, StepError> {
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
                if run.unit.tables[i].action == Action::Create {
                    isolated.failed.insert(i, e);
                } else {
                    split_failed.get_or_insert(e);
                }
            }
        }
        run.outcomes[i].rows = wait.shared.total_rows();
        run.bars[i] = lock(&wait.shared.bar).take();
    }
    match split_failed {
        Some(e) => Err(e),
        None => Ok(isolated),
    }
}

/// A unit that committed: its tables are done, but for those that failed alone; each gets its
/// size on the target, its progress line and its warnings.
async fn committed(
    ctx: &Run<'_>,
    client: &tokio_postgres::Client,
    unit: &Unit,
    outcomes: &mut [TableOutcome],
    bars: Vec<TableProgress>,
    isolated: &Isolated,
    progress: &Progress,
) {
    // Every table's size on the target, in one statement for the unit (a partitioned table's
    // is its tree's).
    let names: Vec<String> = outcomes.iter().map(|o| o.name.to_string()).collect();
    let sizes: Vec<Option<i64>> = client
        .query_one(
            "SELECT pg_catalog.array_agg((SELECT coalesce((SELECT sum(\
             pg_catalog.pg_total_relation_size(p.relid)) FROM pg_catalog.pg_partition_tree(\
             c.oid) p)::bigint, pg_catalog.pg_total_relation_size(c.oid)) \
             FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(n)) ORDER BY k) \
             FROM unnest($1::text[]) WITH ORDINALITY AS u(n, k)",
            &[&names],
        )
        .await
        .ok()
        .and_then(|r| r.try_get(0).ok())
        .unwrap_or_default();
    for ((i, o), (bar, info)) in outcomes
        .iter_mut()
        .enumerate()
        .zip(bars.into_iter().zip(&unit.tables))
    {
        if let Some(e) = isolated.failed.get(&TableIx(i)) {
            o.rows = 0;
            o.status = TableStatus::Failed(e.message.clone());
            progress.finish(bar, "failed, not copied");
            progress.say(&e.line(&o.name.human()));
            continue;
        }
        o.status = TableStatus::Done;
        o.bytes = sizes.get(i).copied().flatten();
        progress.finish(
            bar,
            &format!("{} rows in {:.1} s", crate::human::count(o.rows), o.seconds),
        );
        // Without pushdown every row already copied counts as skipped: no news there.
        if o.skipped > 0 && info.skips_mean_collisions() {
            progress.say(&format!(
                "warning: {}: {} source rows were not inserted because a row with the same key \
                 exists on the target (kept as it is); rows inserted locally may collide with \
                 newer source rows: --mode full takes the source's",
                o.name.human(),
                crate::human::count(o.skipped)
            ));
        }
    }
    for skipped in &isolated.skipped {
        progress.say(&format!("warning: {skipped}"));
    }
    let failed: Vec<TableIx> = isolated.failed.keys().copied().collect();
    discard(ctx, unit, &failed, progress).await;
}

/// A unit that rolled back: none of its tables changed. The one that failed gets the error;
/// the others are told which table took them along.
async fn rolled_back(
    ctx: &Run<'_>,
    unit: &Unit,
    outcomes: &mut [TableOutcome],
    bars: Vec<TableProgress>,
    err: &StepError,
    progress: &Progress,
) {
    let all: Vec<TableIx> = (0..unit.tables.len()).map(TableIx).collect();
    discard(ctx, unit, &all, progress).await;
    let culprit = err.table.map(|i| unit.tables[i].name.human());
    for ((i, o), bar) in outcomes.iter_mut().enumerate().zip(bars) {
        o.rows = 0;
        let message = match (&culprit, err.table) {
            (Some(_), Some(t)) if t == TableIx(i) => err.message.clone(),
            (Some(c), _) => format!(
                "not changed: {c}, which foreign keys tie to it, failed in the same transaction"
            ),
            (None, _) => err.message.clone(),
        };
        progress.finish(bar, "failed, not changed");
        o.status = TableStatus::Failed(message);
    }
    let names: Vec<String> = unit.tables.iter().map(|t| t.name.human()).collect();
    progress.say(&err.line(&culprit.unwrap_or_else(|| names.join(", "))));
}

/// Drops the load tables of the given tables' splits (those of a unit that did not commit, or
/// of tables that failed alone), with the rows their ranges put there. Should that fail too,
/// the next run's setup drops them.
pub(super) async fn discard(ctx: &Run<'_>, unit: &Unit, tables: &[TableIx], progress: &Progress) {
    let sql: Vec<&str> = unit
        .discards()
        .filter(|(t, _)| tables.contains(t))
        .map(|(_, sql)| sql)
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

/// The statements one session runs, and for a unit how a table's block is undone.
pub(super) struct Session<'a> {
    /// The statements, in order.
    pub(super) steps: &'a [Step],
    /// For a unit: what undoes a table's block after one of its statements failed (see
    /// [`Phase::TableStart`]).
    pub(super) undo_table: Option<&'a str>,
    /// For a unit: its tables, to name them when a statement is skipped for one.
    pub(super) tables: &'a [TableInfo],
}

/// The tables of a unit that failed alone (their blocks undone, the unit gone on without
/// them), and the statements skipped because of them, in words.
#[derive(Default)]
pub(super) struct Isolated {
    pub(super) failed: BTreeMap<TableIx, StepError>,
    pub(super) skipped: Vec<String>,
}

/// Runs one session's statements: those of the `Connect` phase, then the rest in one target
/// transaction, committed, then those of the `Disconnect` phase. A statement of a table's
/// block that fails undoes the block and fails that table alone; any other failure fails the
/// session. Tables in `isolated` failed before (their split loads): their statements are left
/// out, and so are the foreign keys that reference them, with a warning.
pub(super) async fn execute(
    ctx: &Run<'_>,
    session: &Session<'_>,
    tally: &mut dyn Tally,
    mut isolated: Isolated,
    merges: &mut BTreeMap<TableIx, SplitWait<'_>>,
    board: Option<&Board<'_>>,
) -> Result<(tokio_postgres::Client, Isolated), StepError> {
    let (snapshot, verbosity) = (ctx.snapshot, ctx.verbosity);
    let mut client = open_session(ctx).await?;
    let fail = |step: &Step, e: tokio_postgres::Error| StepError {
        table: step.table,
        during: During::Step(step.phase),
        message: explain(step, &e, ctx.source_role),
    };
    let steps = session.steps;
    for step in steps.iter().filter(|s| s.phase == Phase::Connect) {
        log_step(verbosity, step.text());
        execute_with(&client, &step.sql, &[&snapshot.id])
            .await
            .map_err(|e| fail(step, e))?;
    }
    let tx = client
        .transaction()
        .await
        .map_err(|e| StepError::new(During::Opening, describe(&e)))?;
    let inside: Vec<&Step> = steps
        .iter()
        .filter(|s| !matches!(s.phase, Phase::Connect | Phase::Disconnect))
        .collect();
    // Which tables helpers may build the unit made itself (`true`) or left to a helper.
    let mut own: BTreeMap<TableIx, bool> = BTreeMap::new();
    // Whether a step runs, or is left out because a table it belongs to or references failed,
    // or because it is for the other way the table came in (see `Branch`).
    let runs = |step: &Step, isolated: &mut Isolated, own: &BTreeMap<TableIx, bool>| {
        if step.table.is_some_and(|i| isolated.failed.contains_key(&i)) {
            return false;
        }
        if let (Some(branch), Some(i)) = (step.branch, step.table) {
            let taken = own.get(&i).copied().unwrap_or(true);
            if taken != (branch == Branch::Own) {
                return false;
            }
        }
        if let Some((j, what)) = &step.also {
            if isolated.failed.contains_key(j) {
                isolated.skipped.push(format!(
                    "{what} is skipped: it references {}, which was not copied",
                    session.tables[*j].name.human()
                ));
                return false;
            }
        }
        true
    };
    let mut block: Option<TableIx> = None;
    let mut next = 0;
    while next < inside.len() {
        let step = inside[next];
        next += 1;
        if !runs(step, &mut isolated, &own) {
            continue;
        }
        // Statements whose result nothing reads go together (see `pipelined`).
        let mut window = vec![step];
        if pipelined(step) && step.phase != Phase::TableEnd {
            while let Some(&more) = inside.get(next) {
                if window.len() == PIPELINE || !pipelined(more) || more.phase == Phase::TableStart {
                    break;
                }
                // A table's block goes alone: a failure inside it undoes only its statements.
                if block
                    .or(step.table.filter(|_| step.phase == Phase::TableStart))
                    .is_some()
                    && more.table != step.table
                {
                    break;
                }
                next += 1;
                if runs(more, &mut isolated, &own) {
                    window.push(more);
                }
                if more.phase == Phase::TableEnd {
                    break;
                }
            }
        }
        // The block each statement runs in.
        let blocks: Vec<Option<TableIx>> = window
            .iter()
            .map(|s| {
                match s.phase {
                    Phase::TableStart => block = s.table,
                    Phase::TableEnd => block = None,
                    _ => {}
                }
                log_step(verbosity, s.text());
                if let Some(i) = s.table {
                    tally.touch(i);
                }
                block
            })
            .collect();
        let started = Instant::now();
        let failure = if window.len() > 1 {
            let results = join_all(window.iter().map(|s| tx.batch_execute(&s.sql))).await;
            // The first failure is the one to tell: the statements after it met an aborted
            // transaction.
            results
                .into_iter()
                .zip(window.iter().zip(&blocks))
                .find_map(|(r, (s, b))| r.err().map(|e| (*s, *b, e)))
        } else if let (StepKind::Merge, Some(i)) = (&step.kind, step.table) {
            merge(&tx, step, i, merges.remove(&i), tally, &fail).await?;
            None
        } else if let (StepKind::Claim, Some(i)) = (&step.kind, step.table) {
            own.insert(i, board.is_none_or(|b| b.take_for_unit(i)));
            None
        } else if let (StepKind::Built, Some(i), Some(board)) = (&step.kind, step.table, board) {
            match board.built(i).await {
                Ok((rows, seconds)) => {
                    tally.rows(i, rows, false);
                    tally.seconds(i, seconds);
                }
                Err(e) => {
                    isolated.failed.insert(i, e);
                }
            }
            None
        } else {
            run_step(&tx, step, tally, ctx)
                .await
                .err()
                .map(|e| (step, blocks[0], e))
        };
        if let Some((step, in_block, e)) = failure {
            let failed = fail(step, e);
            match (in_block, step.table, session.undo_table) {
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
        let share = elapsed(started) / window.len() as f64;
        for s in &window {
            if let Some(i) = s.table {
                tally.seconds(i, share);
            }
        }
    }
    // A run whose lock was taken from it (its session ended) must not load alongside the run
    // that may hold the lock now: its work rolls back.
    if let Some(lock) = ctx.lock {
        if !lock.held(&tx).await {
            return Err(StepError::new(
                During::LockCheck,
                "the run lost its lock on the target (the session holding it ended), so this \
                 work was rolled back and keeps the previous contents: another run may be \
                 loading now; run snapcopy again when it is done"
                    .into(),
            ));
        }
    }
    tx.commit().await.map_err(|e| {
        StepError::new(
            During::Commit,
            format!(
                "the commit failed, so these tables keep their previous contents: {} (a \
                 deferred constraint is checked at commit; fix the rows it names, on the source \
                 or in the target's other tables, and run again)",
                describe(&e)
            ),
        )
    })?;
    for step in steps.iter().filter(|s| s.phase == Phase::Disconnect) {
        log_step(verbosity, step.text());
        // The target transaction is committed; closing the read-only source side cannot
        // undo anything, and the session's end would close it anyway.
        let _ = client.batch_execute(&step.sql).await;
    }
    Ok((client, isolated))
}

/// The most statements sent at once.
const PIPELINE: usize = 256;

/// Whether a statement may be sent with those around it without waiting for their results
/// (one round trip for a run of them instead of one each; PostgreSQL runs them in order, and
/// after a failure refuses the rest, as the transaction is aborted): a plain statement, whose
/// result nothing reads, that carries no secret.
fn pipelined(step: &Step) -> bool {
    matches!(step.kind, StepKind::Statement)
}

/// Copies into table `i` the rows the other ranges of its reload in parts put in its load
/// table: once they have all committed (`wait`), and all of them, or the unit fails (it rolls
/// back, and the table keeps its previous rows): a reload in parts must never commit a table
/// with rows missing.
async fn merge(
    tx: &tokio_postgres::Transaction<'_>,
    step: &Step,
    i: TableIx,
    wait: Option<SplitWait<'_>>,
    tally: &mut dyn Tally,
    fail: &dyn Fn(&Step, tokio_postgres::Error) -> StepError,
) -> Result<(), StepError> {
    let failed = |message: String| StepError {
        table: Some(i),
        during: During::Step(step.phase),
        message,
    };
    let Some(wait) = wait else {
        return Err(failed(
            "snapcopy lost track of the other ranges of its reload in parts (a bug): the \
             reload was rolled back and the table keeps its previous rows; run again with \
             --jobs 1, which reloads it in one piece, and report it"
                .into(),
        ));
    };
    if let Err(e) = wait.loaded.await {
        return Err(StepError {
            table: Some(i),
            ..e
        });
    }
    let loaded = wait.shared.total_rows();
    let copied = tx
        .execute(&step.sql, &[])
        .await
        .map_err(|e| fail(step, e))? as i64;
    if copied != loaded {
        return Err(failed(format!(
            "its other ranges loaded {loaded} rows, but {copied} were there to copy in: the \
             reload was rolled back and the table keeps its previous rows (something on the \
             target changed snapcopy's load table; run again, or with --jobs 1, which reloads \
             it in one piece)"
        )));
    }
    tally.merged(i, copied);
    Ok(())
}

/// Runs one statement of a session's transaction the way its kind says, and tells `tally`
/// what it did.
pub(super) async fn run_step(
    tx: &tokio_postgres::Transaction<'_>,
    step: &Step,
    tally: &mut dyn Tally,
    ctx: &Run<'_>,
) -> Result<(), tokio_postgres::Error> {
    let Some(i) = step.table else {
        return tx.batch_execute(&step.sql).await;
    };
    match step.kind {
        StepKind::Rows => {
            let rows = tx.execute_typed(&step.sql, &[]).await?;
            tally.rows(i, rows as i64, false);
        }
        StepKind::Batch { size } => {
            // The same statement, batch after batch, until the cursor runs dry.
            let mut total = 0;
            loop {
                let rows = tx.execute_typed(&step.sql, &[]).await?;
                total += rows as i64;
                tally.rows(i, total, true);
                if rows < size {
                    break;
                }
            }
        }
        // `execute` takes a table (see `Board`) and waits for a helper's build.
        StepKind::Claim | StepKind::Built => {}
        // `execute` runs a merge (see `merge`), which waits for the other ranges and counts.
        StepKind::Merge => {
            let rows = tx.execute_typed(&step.sql, &[]).await?;
            tally.merged(i, rows as i64);
        }
        StepKind::InsertMissing { ref probed } => {
            if let (Some(p), Some(probe)) = (probed, &ctx.probe) {
                if probe.unwritten(&p.table, p.xid).await {
                    log_step(
                        ctx.verbosity,
                        "-- not run: the source wrote no row of the table since its last run",
                    );
                    tally.inserted(i, 0, 0, None);
                    return Ok(());
                }
            }
            let row = tx.query_typed_one(&step.sql, &[]).await?;
            tally.inserted(i, row.get(0), row.get(1), row.get(2));
        }
        StepKind::Together { ref tables } => {
            let row = tx.query_typed_one(&step.sql, &[]).await?;
            for (k, &t) in tables.iter().enumerate() {
                tally.touch(t);
                tally.inserted(t, row.get(3 * k), row.get(3 * k + 1), row.get(3 * k + 2));
            }
        }
        StepKind::Synced { batch } => loop {
            let row = tx.query_typed_one(&step.sql, &[]).await?;
            let counts = SyncCounts {
                ranges: row.get(1),
                ranges_differed: row.get(2),
                inserted: row.get(3),
                updated: row.get(4),
                deleted: row.get(5),
                link_bytes: row.get(6),
            };
            tally.synced(i, &counts);
            let taken: i64 = row.get(0);
            if batch.is_none_or(|size| taken < size as i64) {
                break;
            }
        },
        StepKind::Record => {
            let Recorded {
                rows,
                skipped,
                pushed_down,
                high_water,
                gained,
            } = tally.record(i);
            // Typed parameters: one round trip, where preparing first would take two (`$5`
            // and `$6` go unused by most records).
            tx.execute_typed(
                &step.sql,
                &[
                    (&rows, Type::INT8),
                    (&skipped, Type::INT8),
                    (&pushed_down, Type::BOOL),
                    (&ctx.snapshot.at.as_str(), Type::TEXT),
                    (&high_water, Type::TEXT),
                    (&gained, Type::INT8),
                ],
            )
            .await?;
        }
        StepKind::Statement | StepKind::Secret { .. } => tx.batch_execute(&step.sql).await?,
    }
    Ok(())
}

/// Runs a statement with as many of `values` as it has parameters: each statement the plan
/// writes uses the leading ones it needs (the registry row of a full reload has no `$5`).
pub(super) async fn execute_with(
    client: &impl GenericClient,
    sql: &str,
    values: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare(sql).await?;
    let used = statement.params().len();
    client.execute(&statement, &values[..used]).await
}

pub(super) fn elapsed(started: Instant) -> f64 {
    Duration::as_secs_f64(&started.elapsed())
}

pub(super) fn log_step(verbosity: Verbosity, sql: &str) {
    if verbosity == Verbosity::Verbose {
        eprintln!("{sql};");
    }
}
