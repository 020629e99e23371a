//! Execution: runs a plan on the target and decides nothing. The setup runs in one
//! transaction ([`setup`]); each unit in a session and transaction of its own ([`unit`]), the
//! ranges of a split table before it in sessions of their own ([`split`]), `--jobs` at a time.
//!
//! A unit's rows flow from the source to the target server through the link (dblink or
//! postgres_fdw); this process only sends SQL and reads command tags. dblink's connection is
//! named after the foreign server, and dblink looks a name up among open connections before
//! treating it as a server, so the staging objects (`dblink('<server>', ...)`) read through the
//! unit's connection and its
//! read-only source transaction. A failure rolls the unit back: its tables keep their previous
//! contents, and the other units go on.

mod build;
mod explain;
pub mod session;
mod setup;
mod split;
mod unit;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use futures::stream::{self, StreamExt};

pub use explain::{link_failure, package_for};
pub use session::{cancel_running, connect, describe, Side};
pub use setup::run_setup;

use crate::conninfo::ConnInfo;
use crate::plan::{Step, Unit};
use crate::progress::Progress;
use crate::report::TableOutcome;
use crate::settings::Verbosity;
use build::Board;
use explain::{During, StepError};
use split::{SplitPart, SplitRun};
use unit::{execute, run_unit, Isolated, Session};

/// Where and how a run's sessions work: the target, the source snapshot they read in, how much
/// they say, and the role the target server reads the source as (for messages).
pub struct Run<'a> {
    /// The target's conninfo; each session opens its own connection.
    pub target: &'a ConnInfo,
    /// The source snapshot every session reads in (dblink), or was started after
    /// (postgres_fdw).
    pub snapshot: &'a crate::source::Snapshot,
    /// How much to say on stderr.
    pub verbosity: Verbosity,
    /// The role of the target server's connections to the source.
    pub source_role: &'a str,
    /// The run's lock on the target, checked before each commit (`None`: no check).
    pub lock: Option<&'a crate::guard::RunLock>,
    /// The mask key, set on every session of a run that masks (bound, never in a statement).
    pub mask_key: Option<&'a crate::mask::MaskKey>,
    /// A session opened ahead (see [`Run::open_spare`]), which the first task to need one
    /// takes instead of opening its own.
    pub spare: Mutex<Option<tokio_postgres::Client>>,
    /// Whether the source wrote rows of a table since its last run, asked while the run
    /// planned (incremental runs).
    pub probe: Option<std::sync::Arc<crate::source::Probe>>,
}

impl Run<'_> {
    /// Opens a loading session ahead of the units, while the setup runs, for the first of
    /// them to take: a new connection and its settings take a few milliseconds of every run.
    /// Best effort: if it fails, the task opens its own and says why.
    pub async fn open_spare(&self) {
        if let Ok(client) = session::open_session(self).await {
            *lock(&self.spare) = Some(client);
        }
    }
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
    let boards: Vec<Board> = units.iter().map(Board::new).collect();
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
            for (k, range) in split.ranges.iter().enumerate() {
                let (done, receive) = oneshot::channel();
                receivers.push(receive);
                ranges.push(Task::Part {
                    steps: &range.steps,
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
    // it waits for needs. A unit waits only for the builds its helpers have started.
    let helpers = units.iter().zip(&boards).flat_map(|(unit, board)| {
        (0..unit.builds.helpers).map(move |_| Task::Help { unit, board })
    });
    let tasks = ranges.into_iter().chain(indexes).chain(helpers).chain(
        units
            .iter()
            .zip(waits)
            .zip(&boards)
            .map(|((unit, splits), board)| Task::Unit {
                unit,
                splits,
                board,
            }),
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
                failure.get_or_insert(StepError::new(
                    During::Split,
                    "a part of the split load stopped without a result".into(),
                ));
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
    /// A unit, with its split tables to wait for and the tables it shares with helpers.
    Unit {
        unit: &'a Unit,
        splits: Vec<SplitWait<'a>>,
        board: &'a Board<'a>,
    },
    /// A helper session building some of a unit's new tables.
    Help {
        unit: &'a Unit,
        board: &'a Board<'a>,
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
                    Err(StepError::new(
                        During::Split,
                        "skipped: another part of the split load failed".into(),
                    ))
                } else {
                    let session = Session {
                        steps,
                        undo_table: None,
                        tables: &[],
                    };
                    execute(
                        ctx,
                        &session,
                        &mut run,
                        Isolated::default(),
                        &mut Default::default(),
                        None,
                    )
                    .await
                    .map(|_| run.seconds)
                };
                if result.is_err() {
                    run.shared.failed.store(true, Ordering::Relaxed);
                }
                let _ = done.send(result);
                Vec::new()
            }
            Task::Unit {
                unit,
                splits,
                board,
            } => run_unit(ctx, unit, splits, board, progress).await,
            Task::Help { unit, board } => {
                build::help(ctx, unit, board).await;
                Vec::new()
            }
        }
    }
}

/// A mutex's contents, even if a thread panicked while holding it (the data stays usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
