//! Whether the source wrote any row of a table since the table's last run, asked while the run
//! still plans.
//!
//! An incremental run of a table whose key does not grow reads the rows written since its last
//! run (`xmin` at or after that run's mark, see [`ChangeMark`]): a scan of the whole table on
//! the source, most of the time a run takes when nothing is new. The probe asks the same
//! question in the run's snapshot, on a connection of its own, as soon as the tables are chosen
//! and their marks read; when a unit comes to the table, the answer is there or on its way, and
//! a table the source wrote nothing of since is not read again (see `exec::unit`). The tail of
//! the table is looked at first (rows appended since are there), so that a table with new rows
//! costs the probe little.
//!
//! Best effort: a probe that cannot connect or fails answers nothing, and its tables are read
//! as ever. A table the probe has not started on when its unit needs it is taken off the
//! probe's list (the unit's own read costs the same); one it is scanning is waited for.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_postgres::Client;

use super::ChangeMark;
use crate::sql::QualifiedName;

/// Tables smaller than this many pages are not probed: reading one costs little more than
/// asking.
const SMALLEST_PAGES: i32 = 128;

/// At most this many tables are probed in a run (the largest), one after another.
const MOST_TABLES: i64 = 64;

/// The tail looked at first is this share of the table's pages.
const TAIL_SHARE: i32 = 32;

/// A table to ask about: the rows written since this transaction id (see
/// [`ChangeMark::since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    pub table: QualifiedName,
    pub xid: u32,
}

/// Where the probe is with a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started on yet.
    Queued,
    /// Being scanned.
    Scanning,
    /// Scanned: whether any row was written since.
    Found { written: bool },
    /// Left to the unit: it needed the table first, the plan does not read it since its mark,
    /// or the probe failed.
    Left,
}

/// The probe of a run: its tables' states, which its task moves on and units wait on.
pub struct Probe {
    states: watch::Sender<BTreeMap<QualifiedName, (u32, State)>>,
    /// Stops the probe's query on the source.
    cancel: Option<tokio_postgres::CancelToken>,
}

impl Probe {
    /// Starts probing `tables` on `client` (a source connection of its own, which the probe
    /// keeps) in the snapshot `snapshot`.
    pub fn start(client: Client, snapshot: &str, tables: Vec<Probed>) -> Arc<Probe> {
        let probe = Arc::new(Probe::of(tables, Some(client.cancel_token())));
        let snapshot = snapshot.to_string();
        let task = Arc::clone(&probe);
        tokio::spawn(async move {
            // Whatever ends the task (a failure, a panic), no unit waits on it after.
            let _leave = LeaveOnDrop(&task);
            let _ = task.run(&client, &snapshot).await;
        });
        probe
    }

    /// `tables`, none started on yet.
    fn of(tables: Vec<Probed>, cancel: Option<tokio_postgres::CancelToken>) -> Probe {
        let states = tables
            .into_iter()
            .map(|p| (p.table, (p.xid, State::Queued)))
            .collect();
        Probe {
            states: watch::Sender::new(states),
            cancel,
        }
    }

    /// Whether the source wrote no row of `table` since transaction `xid`, as of the run's
    /// snapshot: true only when the probe found so. Waits while the probe scans the table; a
    /// table it has not started on is left to the caller.
    pub async fn unwritten(&self, table: &QualifiedName, xid: u32) -> bool {
        let mut states = self.states.subscribe();
        self.leave(|name, _| name == table);
        let Ok(states) = states
            .wait_for(|s| !matches!(s.get(table), Some((_, State::Scanning))))
            .await
        else {
            return false;
        };
        states.get(table) == Some(&(xid, State::Found { written: false }))
    }

    /// Stops the probe, if it still scans a table (the run no longer needs its answer: a
    /// scan left running goes on on the source until it ends).
    pub async fn stop(&self) {
        self.leave(|_, _| true);
        let scanning = self
            .states
            .borrow()
            .values()
            .any(|(_, s)| *s == State::Scanning);
        if let (true, Some(cancel)) = (scanning, &self.cancel) {
            let _ = cancel.cancel_query(tokio_postgres::NoTls).await;
        }
    }

    /// Takes off the probe's list the tables the plan reads otherwise than by `reads` (the
    /// rows written since a transaction id).
    pub fn keep_only(&self, reads: &[Probed]) {
        self.leave(|name, xid| !reads.iter().any(|p| &p.table == name && p.xid == xid));
    }

    /// Leaves to their units the tables (with the transaction id each is asked since) that
    /// `which` picks and the probe has not started on.
    fn leave(&self, which: impl Fn(&QualifiedName, u32) -> bool) {
        self.states.send_if_modified(|states| {
            let mut changed = false;
            for (name, (xid, state)) in states.iter_mut() {
                if *state == State::Queued && which(name, *xid) {
                    *state = State::Left;
                    changed = true;
                }
            }
            changed
        });
    }

    /// The probe's work: the tables' sizes, then each table large enough, largest first.
    async fn run(&self, client: &Client, snapshot: &str) -> Result<(), tokio_postgres::Error> {
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                crate::sql::literal(snapshot)
            ))
            .await?;
        let tables: BTreeMap<String, QualifiedName> = self
            .states
            .borrow()
            .keys()
            .map(|n| (n.to_string(), n.clone()))
            .collect();
        let names: Vec<&String> = tables.keys().collect();
        // Sizes from the catalog's estimate: asking the relations themselves would lock each.
        let rows = client
            .query(
                "SELECT n, c.relpages, pg_catalog.current_setting('server_version_num')::int4 \
                 FROM pg_catalog.unnest($1::text[]) n \
                 JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(n) \
                 WHERE c.relpages >= $2 ORDER BY c.relpages DESC LIMIT $3",
                &[&names, &SMALLEST_PAGES, &MOST_TABLES],
            )
            .await?;
        let sized: Vec<(&QualifiedName, i32, i32)> = rows
            .iter()
            .filter_map(|r| Some((tables.get(r.get::<_, &str>(0))?, r.get(1), r.get(2))))
            .collect();
        self.leave(|name, _| !sized.iter().any(|(n, _, _)| *n == name));
        for (table, pages, version) in sized {
            let Some(xid) = self.begin(table) else {
                continue;
            };
            let written = client
                .query_one(&written_query(table, xid, pages, version), &[])
                .await?
                .get(0);
            self.found(table, written);
        }
        client.batch_execute("COMMIT").await
    }

    /// Starts on `table`, unless a unit took it first: the transaction id to ask since.
    fn begin(&self, table: &QualifiedName) -> Option<u32> {
        let mut xid = None;
        self.states
            .send_if_modified(|states| match states.get_mut(table) {
                Some((x, state)) if *state == State::Queued => {
                    *state = State::Scanning;
                    xid = Some(*x);
                    true
                }
                _ => false,
            });
        xid
    }

    /// The answer for `table`.
    fn found(&self, table: &QualifiedName, written: bool) {
        self.states.send_modify(|states| {
            if let Some((_, state)) = states.get_mut(table) {
                *state = State::Found { written };
            }
        });
    }
}

/// Leaves every table the probe has not answered to its unit when the probe's task ends.
struct LeaveOnDrop<'a>(&'a Probe);

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        self.0.states.send_if_modified(|states| {
            let mut changed = false;
            for (_, state) in states.values_mut() {
                if matches!(*state, State::Queued | State::Scanning) {
                    *state = State::Left;
                    changed = true;
                }
            }
            changed
        });
    }
}

/// Whether any row of `table`, of about `pages` pages, was written since `xid`: its tail
/// first, by a TID range scan where the server has them (PostgreSQL 14), which finds appended
/// rows without reading the rest; only if the tail has none, the whole table by a sequential
/// scan (the tail again, a thirty-second of it), which reads through a small ring of buffers
/// where a TID range scan of a large table would push the rest of the source's cache out.
fn written_query(table: &QualifiedName, xid: u32, pages: i32, version: i32) -> String {
    let written = ChangeMark::written_since(xid);
    let whole = format!("EXISTS (SELECT FROM ONLY {table} WHERE {written})");
    if version < 140000 {
        return format!("SELECT {whole}");
    }
    let tail = format!("'({},0)'::pg_catalog.tid", pages - pages / TAIL_SHARE);
    format!(
        "SELECT EXISTS (SELECT FROM ONLY {table} WHERE ctid >= {tail} AND {written}) OR {whole}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn name(table: &str) -> QualifiedName {
        QualifiedName::new("public".to_string(), table.to_string())
    }

    /// A waiting unit's answer, which must come.
    async fn answer(waiting: tokio::task::JoinHandle<bool>) -> bool {
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the unit is still waiting")
            .unwrap()
    }

    fn probe_of(tables: &[(&str, u32)]) -> Arc<Probe> {
        let tables = tables
            .iter()
            .map(|(t, xid)| Probed {
                table: name(t),
                xid: *xid,
            })
            .collect();
        Arc::new(Probe::of(tables, None))
    }

    #[tokio::test]
    async fn a_unit_waits_while_its_table_is_scanned_and_takes_the_answer() {
        let probe = probe_of(&[("a", 5), ("b", 5), ("c", 5)]);
        for (table, written, asked, unwritten) in [
            ("a", false, 5, true),
            ("b", true, 5, false),
            ("c", false, 6, false),
        ] {
            assert_eq!(probe.begin(&name(table)), Some(5));
            let waiting = tokio::spawn({
                let probe = Arc::clone(&probe);
                async move { probe.unwritten(&name(table), asked).await }
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiting.is_finished(), "{table}: answered while scanned");
            probe.found(&name(table), written);
            assert_eq!(answer(waiting).await, unwritten, "{table}");
        }
    }

    #[tokio::test]
    async fn a_table_asked_for_before_the_probe_starts_on_it_is_left_to_the_unit() {
        let probe = probe_of(&[("a", 5)]);
        assert!(!probe.unwritten(&name("a"), 5).await);
        assert_eq!(probe.begin(&name("a")), None);
        // A table the probe never had.
        assert!(!probe.unwritten(&name("z"), 5).await);
    }

    #[tokio::test]
    async fn the_tables_the_plan_reads_otherwise_are_left() {
        let probe = probe_of(&[("a", 5), ("b", 7), ("c", 9)]);
        probe.keep_only(&[
            Probed {
                table: name("a"),
                xid: 5,
            },
            Probed {
                table: name("b"),
                xid: 8,
            },
        ]);
        assert_eq!(probe.begin(&name("a")), Some(5));
        assert_eq!(probe.begin(&name("b")), None);
        assert_eq!(probe.begin(&name("c")), None);
    }

    #[tokio::test]
    async fn a_probe_that_ends_leaves_its_tables_to_the_units() {
        let probe = probe_of(&[("a", 5), ("b", 5)]);
        assert_eq!(probe.begin(&name("a")), Some(5));
        let waiting = tokio::spawn({
            let probe = Arc::clone(&probe);
            async move { probe.unwritten(&name("a"), 5).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(LeaveOnDrop(&probe));
        assert!(!answer(waiting).await);
        assert_eq!(probe.begin(&name("b")), None);
    }
}
