//! A split table's parts: the sessions that load its ranges and build its indexes before its
//! unit moves it into place, sharing one progress bar and one failure flag.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::lock;
use super::unit::{start_bar, Recorded, Tally};
use crate::plan::{Split, TableInfo, TableIx, Unit};
use crate::progress::{Progress, TableProgress};
use crate::report::SyncCounts;

/// A split table while its ranges load: one progress bar for all of them.
pub(super) struct SplitRun<'a> {
    pub(super) split: &'a Split,
    pub(super) info: &'a TableInfo,
    pub(super) progress: &'a Progress,
    pub(super) bar: Mutex<Option<TableProgress>>,
    /// Rows each range has inserted so far.
    pub(super) rows: Mutex<Vec<i64>>,
    /// Whether a range failed (the others that have not started skip their work).
    pub(super) failed: AtomicBool,
}

impl<'a> SplitRun<'a> {
    pub(super) fn new(unit: &'a Unit, split: &'a Split, progress: &'a Progress) -> SplitRun<'a> {
        SplitRun {
            split,
            info: &unit.tables[split.table],
            progress,
            bar: Mutex::new(None),
            rows: Mutex::new(vec![0; split.ranges.len()]),
            failed: AtomicBool::new(false),
        }
    }

    pub(super) fn total_rows(&self) -> i64 {
        lock(&self.rows).iter().sum()
    }
}

/// One range or index build of a split table.
pub(super) struct SplitPart<'a> {
    pub(super) shared: Arc<SplitRun<'a>>,
    pub(super) k: usize,
    pub(super) seconds: f64,
}

impl Tally for SplitPart<'_> {
    fn touch(&mut self, _: TableIx) {
        let mut bar = lock(&self.shared.bar);
        // A table reloaded in parts shows on its unit's bar.
        if bar.is_none() && !self.shared.split.merged {
            *bar = Some(start_bar(self.shared.progress, self.shared.info));
        }
    }

    fn rows(&mut self, i: TableIx, rows: i64, periodic: bool) {
        self.touch(i);
        lock(&self.shared.rows)[self.k] = rows;
        let total = self.shared.total_rows();
        if let Some(bar) = lock(&self.shared.bar).as_mut() {
            bar.rows(total, periodic);
        }
    }

    fn inserted(&mut self, i: TableIx, _read: i64, inserted: i64, _high_water: Option<String>) {
        self.rows(i, inserted, false);
    }

    fn merged(&mut self, i: TableIx, rows: i64) {
        self.rows(i, rows, false);
    }

    fn synced(&mut self, _: TableIx, _: &SyncCounts) {}

    /// A range has no registry row of its own.
    fn record(&self, _: TableIx) -> Recorded {
        Recorded::default()
    }

    fn seconds(&mut self, _: TableIx, seconds: f64) {
        self.seconds += seconds;
    }
}
