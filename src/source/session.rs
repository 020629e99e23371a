//! The run's source session: read-only from its first statement (see [`crate::exec::connect`]),
//! it reads the catalog in one `REPEATABLE READ READ ONLY` transaction and exports that
//! snapshot, which every dblink session of the run imports, so that all tables are read as of
//! one moment.

use anyhow::Context;
use tokio_postgres::Client;

/// The run's snapshot on the source.
pub struct Snapshot {
    /// Its id, for `SET TRANSACTION SNAPSHOT`.
    pub id: String,
    /// The source's time when it was taken, as text with its UTC offset.
    pub at: String,
    /// Where the source's transactions stood, for a later run to read only the rows written
    /// since; none when the source does not say which cluster it is.
    pub mark: Option<ChangeMark>,
}

/// Where a source's transactions stood when a snapshot was taken: its origin (the cluster's
/// system identifier and timeline, the database) and the snapshot's oldest transaction id
/// still running (64 bits, with its epoch). Every row version a later snapshot sees and this
/// one did not was written by a transaction at or after that id, so it carries an `xmin` at or
/// after it.
///
/// A run that read all of a table's rows records its mark, with the table's own identity (see
/// [`ChangeMark::of_table`]); the next incremental run of the table then reads only the rows
/// whose `xmin` is that recent (see `plan::rows`). The mark holds only for the same database
/// of the same cluster on the same timeline, and the same relations: a source restored into
/// another cluster (dump and restore), or rewound and promoted onto a new timeline, may reuse
/// ids; another table renamed into the table's place, or a partition attached, brings rows
/// written long before. There the keys are compared again. The 32-bit `xmin` of a row is
/// compared by its age, which is exact while fewer than 2^31 ids separate the two marks;
/// [`ChangeMark::since`] allows a quarter of that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMark {
    /// `<system identifier>/<timeline>/<database oid>`, and for a table `/<its oid>` and
    /// `.<oid>` of each partition.
    pub origin: String,
    /// The snapshot's oldest running transaction id, with its epoch.
    pub xmin: u64,
}

/// Transaction ids a mark stays usable for (a quarter of the 2^31 that ages can tell apart).
pub const MARK_SPAN: u64 = 1 << 29;

impl ChangeMark {
    /// The mark for one table: the run's, with the oids of the table and its partitions.
    pub fn of_table(&self, table: &crate::source::Table) -> ChangeMark {
        let mut mark = self.of_relation(table.oid);
        for part in &table.partitions {
            mark.origin.push_str(&format!(".{}", part.oid));
        }
        mark
    }

    /// The mark for one relation without partitions.
    pub fn of_relation(&self, oid: tokio_postgres::types::Oid) -> ChangeMark {
        ChangeMark {
            origin: format!("{}/{}", self.origin, oid),
            xmin: self.xmin,
        }
    }

    /// The source's rows written at or after transaction `xid`, by their `xmin`'s age, which
    /// the source computes against its newest id (ages tell ids apart across the 32-bit
    /// wraparound). Should the mark's own age read negative (more than 2^31 ids since, which
    /// [`ChangeMark::since`] rules out), every row is read. The mark's age is a subquery,
    /// computed once (a third of the scan's time when computed per row).
    pub fn written_since(xid: u32) -> String {
        format!(
            "pg_catalog.age(xmin) <= (SELECT CASE WHEN a < 0 THEN 2147483647 ELSE a END \
             FROM pg_catalog.age('{xid}'::pg_catalog.xid) a)"
        )
    }

    /// How the registry keeps it: `<origin>:<xmin>`.
    pub fn text(&self) -> String {
        format!("{}:{}", self.origin, self.xmin)
    }

    /// The mark the registry kept, if it reads as one.
    pub fn parse(text: &str) -> Option<ChangeMark> {
        let (origin, xmin) = text.rsplit_once(':')?;
        Some(ChangeMark {
            origin: origin.to_string(),
            xmin: xmin.parse().ok()?,
        })
    }

    /// The 32-bit transaction id from which a row of the source, as it is at this mark, was
    /// written after `earlier`: when both have the same origin and are not too many ids apart
    /// (else nothing: the keys must be compared).
    pub fn since(&self, earlier: &ChangeMark) -> Option<u32> {
        let same = self.origin == earlier.origin
            && earlier.xmin <= self.xmin
            && self.xmin - earlier.xmin < MARK_SPAN;
        same.then_some((earlier.xmin & u64::from(u32::MAX)) as u32)
    }
}

/// The origin of a server's transaction ids, `<system identifier>/<timeline>/<database oid>`
/// (see [`ChangeMark`]); none when the server keeps its control data from this role. The
/// timeline: on a primary, the one its WAL is written on (a promoted server's new one at once);
/// on a standby, its last checkpoint's.
pub async fn origin(client: &Client) -> Option<String> {
    client
        .query_one(
            "SELECT s.system_identifier::text || '/' || CASE WHEN pg_catalog.pg_is_in_recovery() \
             THEN c.timeline_id ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(\
             pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END::text || '/' || \
             d.oid::text \
             FROM pg_catalog.pg_control_system() s, pg_catalog.pg_control_checkpoint() c, \
             pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()",
            &[],
        )
        .await
        .ok()
        .map(|r| r.get::<_, String>(0))
}

/// Opens the run's snapshot on the source session and returns it. The session must stay
/// open, in its transaction, while the loads run: it must not be ended for idling in it.
/// Expressions the catalog prints (defaults, bounds, checks) must parse on any target: as
/// pg_dump does, constants print in ISO dates, postgres-style intervals and exact floats, and
/// every name is qualified (`search_path = ''`).
pub async fn open_snapshot(source: &Client) -> anyhow::Result<Snapshot> {
    // Before the transaction: a failed query would end it.
    let origin = origin(source).await;
    source
        .batch_execute(
            "SET idle_in_transaction_session_timeout = 0; SET statement_timeout = 0; \
             SET search_path = ''; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; \
             SET extra_float_digits = 3; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )
        .await
        .context("could not prepare the source session")?;
    let row = source
        .query_one(
            "SELECT pg_catalog.pg_export_snapshot(), pg_catalog.now()::text, \
             pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot())",
            &[],
        )
        .await
        .context("could not export a snapshot on the source")?;
    let xmin: i64 = row.get(2);
    Ok(Snapshot {
        id: row.get(0),
        at: row.get(1),
        mark: origin.map(|origin| ChangeMark {
            origin,
            xmin: xmin as u64,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::ChangeMark;

    fn mark(origin: &str, xmin: u64) -> ChangeMark {
        ChangeMark {
            origin: origin.into(),
            xmin,
        }
    }

    #[test]
    fn a_mark_reads_back_from_the_registry() {
        let m = mark("7710845653820768374/2", (5 << 32) + 17);
        assert_eq!(m.text(), "7710845653820768374/2:21474836497");
        assert_eq!(ChangeMark::parse(&m.text()), Some(m));
        assert_eq!(ChangeMark::parse("nonsense"), None);
        assert_eq!(ChangeMark::parse("1/1:x"), None);
    }

    #[test]
    fn rows_written_since_a_mark_count_only_from_the_same_origin_going_forward() {
        // The 32-bit id, across an epoch.
        let before_epoch = mark("42/1", (3 << 32) + u64::from(u32::MAX - 100));
        assert_eq!(
            mark("42/1", (4 << 32) + 5).since(&before_epoch),
            Some(u32::MAX - 100)
        );
        let last = mark("42/1", (3 << 32) + 1000);
        assert_eq!(mark("42/1", (3 << 32) + 1000).since(&last), Some(1000));
        // Restored elsewhere, promoted onto another timeline, rewound, or too far apart.
        assert_eq!(mark("43/1", (3 << 32) + 2000).since(&last), None);
        assert_eq!(mark("42/2", (3 << 32) + 2000).since(&last), None);
        assert_eq!(mark("42/1", (3 << 32) + 999).since(&last), None);
        assert_eq!(
            mark("42/1", (3 << 32) + 1000 + (1 << 29)).since(&last),
            None
        );
    }
}
