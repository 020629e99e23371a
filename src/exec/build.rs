//! Helper sessions that build a unit's new tables at the same time as the unit (see
//! [`crate::plan::Builds`]), and the board through which the unit and the helpers share them
//! out: the unit takes the tables from the front as it reaches them, the helpers from the
//! back, so that each table is made once, and a table a helper has taken is one the unit moves
//! in once the helper has committed it.

use std::time::Instant;

use super::explain::{explain, During, StepError};
use super::session::{describe, open_session};
use super::unit::{elapsed, execute_with, log_step, run_step, Recorded, Tally};
use super::Run;
use crate::claims::Claims;
use crate::plan::{Build, TableIx, Unit};
use crate::report::SyncCounts;

/// What a helper's build of one table gave: its rows and seconds, or why it failed.
pub(super) type Built = Result<(i64, f64), StepError>;

/// Who has taken which of a unit's tables helpers may build: the unit claims them as it
/// reaches them, helpers take the last one open (see [`Claims`]).
pub(super) struct Board<'a> {
    builds: &'a [Build],
    claims: Claims<TableIx, Built>,
}

impl<'a> Board<'a> {
    pub(super) fn new(unit: &'a Unit) -> Board<'a> {
        Board {
            builds: &unit.builds.tables,
            claims: Claims::new(unit.builds.tables.iter().map(|b| b.table)),
        }
    }

    /// The unit reaches table `i`: whether it makes the table itself (no helper has taken
    /// it; from now on none will).
    pub(super) fn take_for_unit(&self, i: TableIx) -> bool {
        self.claims.claim(&i)
    }

    /// What the helper that took table `i` made of it, once it has committed.
    pub(super) async fn built(&self, i: TableIx) -> Built {
        let stopped = || StepError {
            table: Some(i),
            ..StepError::new(
                During::Split,
                "the helper session that built it stopped without a result (its connection \
                 was lost, or snapcopy has a bug); run again, or with --jobs 1, where the unit \
                 makes every table itself"
                    .into(),
            )
        };
        let built = self
            .claims
            .answer(&i)
            .await
            .unwrap_or_else(|| Err(stopped()));
        built.map_err(|e| StepError {
            table: Some(i),
            ..e
        })
    }

    /// Takes every table no one has taken away from the helpers and waits for those they are
    /// building: after it, no helper writes a load table of the unit (which is then safe to
    /// drop).
    pub(super) async fn close(&self) {
        self.claims.settle().await;
    }
}

/// A helper session: opened when a table is left to build, it takes tables from the board
/// until none is left, each made, loaded and indexed in a transaction of its own. A helper
/// that cannot open its session or the link's leaves the tables to the unit.
pub(super) async fn help(ctx: &Run<'_>, unit: &Unit, board: &Board<'_>) {
    if !board.claims.any_open() {
        return;
    }
    // `-v` says why a helper did not start (its unit then makes every table itself).
    let not_started = |why: String| {
        log_step(
            ctx.verbosity,
            &format!("-- a helper session did not start ({why}): its unit makes the tables"),
        )
    };
    let mut client = match open_session(ctx).await {
        Ok(client) => client,
        Err(e) => return not_started(e.message),
    };
    // What a helper commits is a load table, which only the unit's commit makes anyone's: it
    // need not wait for its WAL (the unit's commit flushes it).
    let _ = client.batch_execute("SET synchronous_commit = off").await;
    for step in &unit.builds.connect {
        log_step(ctx.verbosity, step.text());
        if let Err(e) = execute_with(&client, &step.sql, &[&ctx.snapshot.id]).await {
            return not_started(describe(&e));
        }
    }
    while let Some(taking) = board.claims.take_last() {
        let build = board
            .builds
            .iter()
            .find(|b| b.table == *taking.key())
            .expect("the board's tables are the unit's builds");
        taking.answer(build_one(ctx, &mut client, build).await);
        if client.is_closed() {
            // The tables left go to the unit.
            return;
        }
    }
    for step in &unit.builds.disconnect {
        log_step(ctx.verbosity, step.text());
        let _ = client.batch_execute(&step.sql).await;
    }
}

/// One table's build, committed: its rows and seconds.
async fn build_one(ctx: &Run<'_>, client: &mut tokio_postgres::Client, build: &Build) -> Built {
    let started = Instant::now();
    let opening = |e: tokio_postgres::Error| StepError {
        table: Some(build.table),
        ..StepError::new(During::Opening, describe(&e))
    };
    let tx = client.transaction().await.map_err(opening)?;
    let mut tally = Rows(0);
    for step in &build.steps {
        log_step(ctx.verbosity, step.text());
        run_step(&tx, step, &mut tally, ctx)
            .await
            .map_err(|e| StepError {
                table: Some(build.table),
                during: During::Step(step.phase),
                message: explain(step, &e, ctx.source_role),
            })?;
    }
    tx.commit().await.map_err(|e| StepError {
        table: Some(build.table),
        ..StepError::new(During::Commit, describe(&e))
    })?;
    Ok((tally.0, elapsed(started)))
}

/// The rows a build loaded.
struct Rows(i64);

impl Tally for Rows {
    fn touch(&mut self, _: TableIx) {}

    fn rows(&mut self, _: TableIx, rows: i64, _: bool) {
        self.0 = rows;
    }

    fn inserted(&mut self, i: TableIx, _: i64, inserted: i64, _: Option<String>) {
        self.rows(i, inserted, false);
    }

    fn merged(&mut self, _: TableIx, rows: i64) {
        self.0 += rows;
    }

    fn synced(&mut self, _: TableIx, _: &SyncCounts) {}

    fn record(&self, _: TableIx) -> Recorded {
        Recorded::default()
    }

    fn seconds(&mut self, _: TableIx, _: f64) {}
}
