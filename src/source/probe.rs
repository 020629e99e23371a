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

use tokio_postgres::Client;

use super::ChangeMark;
use crate::claims::Claims;
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

/// The probe of a run: its tables, each with the transaction id it is asked since, and the
/// answers (whether any row was written since), which its task gives and units wait on.
pub struct Probe {
    xids: BTreeMap<QualifiedName, u32>,
    claims: Claims<QualifiedName, bool>,
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
            // A table the task stops on without an answer (a failure, a panic) is left to its
            // unit (see `Taking`).
            let _ = task.run(&client, &snapshot).await;
        });
        probe
    }

    /// `tables`, none started on yet.
    fn of(tables: Vec<Probed>, cancel: Option<tokio_postgres::CancelToken>) -> Probe {
        let xids: BTreeMap<QualifiedName, u32> =
            tables.into_iter().map(|p| (p.table, p.xid)).collect();
        Probe {
            claims: Claims::new(xids.keys().cloned()),
            xids,
            cancel,
        }
    }

    /// Whether the source wrote no row of `table` since transaction `xid`, as of the run's
    /// snapshot: true only when the probe found so. Waits while the probe scans the table; a
    /// table it has not started on is left to the caller, and so is one asked since another
    /// transaction than the probe's.
    pub async fn unwritten(&self, table: &QualifiedName, xid: u32) -> bool {
        if self.xids.get(table) != Some(&xid) || self.claims.claim(table) {
            self.claims.leave(|name| name == table);
            return false;
        }
        self.claims.answer(table).await == Some(false)
    }

    /// Stops the probe, if it still scans a table (the run no longer needs its answer: a
    /// scan left running goes on on the source until it ends).
    pub async fn stop(&self) {
        self.claims.leave(|_| true);
        if let (true, Some(cancel)) = (self.claims.any_taken(), &self.cancel) {
            let _ = cancel.cancel_query(tokio_postgres::NoTls).await;
        }
    }

    /// Takes off the probe's list the tables the plan reads otherwise than by `reads` (the
    /// rows written since a transaction id).
    pub fn keep_only(&self, reads: &[Probed]) {
        self.claims.leave(|name| {
            !reads
                .iter()
                .any(|p| &p.table == name && self.xids.get(name) == Some(&p.xid))
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
        let tables: BTreeMap<String, &QualifiedName> =
            self.xids.keys().map(|n| (n.to_string(), n)).collect();
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
            .filter_map(|r| Some((*tables.get(r.get::<_, &str>(0))?, r.get(1), r.get(2))))
            .collect();
        self.claims
            .leave(|name| !sized.iter().any(|(n, _, _)| *n == name));
        for (table, pages, version) in sized {
            // A unit took it first.
            let Some(taking) = self.claims.take(table) else {
                continue;
            };
            let xid = self.xids[table];
            let written = client
                .query_one(&written_query(table, xid, pages, version), &[])
                .await?
                .get(0);
            taking.answer(written);
        }
        client.batch_execute("COMMIT").await
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
        let probe = probe_of(&[("a", 5), ("b", 5)]);
        for (table, written, unwritten) in [("a", false, true), ("b", true, false)] {
            let taking = probe.claims.take(&name(table)).unwrap();
            let waiting = tokio::spawn({
                let probe = Arc::clone(&probe);
                async move { probe.unwritten(&name(table), 5).await }
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiting.is_finished(), "{table}: answered while scanned");
            taking.answer(written);
            assert_eq!(answer(waiting).await, unwritten, "{table}");
        }
    }

    #[tokio::test]
    async fn a_table_asked_for_before_the_probe_starts_on_it_or_since_another_xid_is_the_units() {
        let probe = probe_of(&[("a", 5), ("b", 5)]);
        assert!(!probe.unwritten(&name("a"), 5).await);
        assert!(probe.claims.take(&name("a")).is_none());
        // Asked since another transaction: the unit reads it, the probe does not.
        assert!(!probe.unwritten(&name("b"), 6).await);
        assert!(probe.claims.take(&name("b")).is_none());
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
        assert!(probe.claims.take(&name("a")).is_some());
        assert!(probe.claims.take(&name("b")).is_none());
        assert!(probe.claims.take(&name("c")).is_none());
    }

    #[tokio::test]
    async fn a_probe_that_stops_on_a_table_leaves_it_to_its_unit() {
        let probe = probe_of(&[("a", 5)]);
        let taking = probe.claims.take(&name("a")).unwrap();
        let waiting = tokio::spawn({
            let probe = Arc::clone(&probe);
            async move { probe.unwritten(&name("a"), 5).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(taking);
        assert!(!answer(waiting).await);
    }
}
