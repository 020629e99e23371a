//! Where the target stood when a run left a managed table equal to the source's rows: the next
//! sync finds the target's local edits by their `xmin` instead of hashing every row.

use tokio_postgres::Client;

/// The target's transaction ids as a run reads them: their origin (see
/// [`crate::source::origin`]) and the next id to be given out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    /// `<system identifier>/<timeline>/<database oid>`.
    pub origin: String,
    /// The next transaction id, with its epoch.
    pub next: u64,
}

impl Clock {
    /// The target's clock; none when the server keeps its control data from this role.
    pub async fn read(client: &Client) -> Option<Clock> {
        let origin = crate::source::origin(client).await?;
        let next: i64 = client
            .query_one(
                "SELECT pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot())",
                &[],
            )
            .await
            .ok()?
            .get(0);
        Some(Clock {
            origin,
            next: next as u64,
        })
    }
}

/// Where the target's transactions stood when a run recorded a table in the registry, after
/// the table's last row went in: the run's last transaction id (`last`: a subtransaction's,
/// begun for this, after every id the run wrote rows with) and the transaction ids then
/// `running` in other sessions: those of a snapshot of a statement that began after it, and
/// (since a snapshot lists no subtransaction) every id whose lock a session holds, as each
/// transaction and subtransaction holds its own until its transaction ends. A row written on
/// the target later, a local edit, carries an `xmin` after `last` or among `running`: other
/// writers were locked out of the table until the run committed (sync locks it, a reload
/// truncates it, a new table is the run's own), so a transaction whose id is older wrote into
/// it before the run read it, or was running when the mark was taken.
///
/// It holds only on the same database of the same cluster and timeline (another one may reuse
/// the ids; the registry's table oid tells the same table) and for fewer than 2^29 ids since,
/// so that 32-bit ages tell the ids apart. Deleted rows leave no `xmin`: sync finds them by
/// comparing keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMark {
    /// The clock's origin when it was recorded.
    pub origin: String,
    /// The run's last transaction id (32 bits, as `xmin` reads).
    pub last: u32,
    /// The snapshot's first transaction id not yet completed, with its epoch.
    pub xmax: u64,
    /// The transaction ids running then in other sessions (32 bits).
    pub running: Vec<u32>,
}

/// Where the unit's statements find the mark they record, once [`LocalMark::take`] took it.
pub const TAKEN: &str = "(SELECT mark FROM pg_temp.snapcopy_mark)";

impl LocalMark {
    /// The statements that take the mark in the run's transaction, after the last row went in,
    /// for the registry's rows to read as [`TAKEN`]: a subtransaction whose first write (a
    /// temporary table) gives it an id after all the run's, then the mark as text,
    /// `<origin>:<last>:<xmin>:<xmax>:<running,...>:<locked,...>` (`txid_snapshot`'s text, then
    /// the ids whose locks other sessions hold).
    pub fn take(clock: &Clock) -> Vec<String> {
        vec![
            "SAVEPOINT snapcopy_mark".to_string(),
            "CREATE TEMPORARY TABLE snapcopy_mark (mark text) ON COMMIT DROP".to_string(),
            format!(
                "INSERT INTO pg_temp.snapcopy_mark SELECT {} || ':' || c.xmin::text || ':' || \
                 pg_catalog.txid_current_snapshot()::text || ':' || coalesce((SELECT \
                 pg_catalog.string_agg(l.transactionid::text, ',') FROM pg_catalog.pg_locks l \
                 WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted \
                 AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()), '') \
                 FROM pg_catalog.pg_class c \
                 WHERE c.oid = 'pg_temp.snapcopy_mark'::pg_catalog.regclass",
                crate::sql::literal(&clock.origin)
            ),
        ]
    }

    /// The mark the registry kept, if it reads as one.
    pub fn parse(text: &str) -> Option<LocalMark> {
        let mut parts = text.rsplitn(6, ':');
        let locked = parts.next()?;
        let snapshot_running = parts.next()?;
        let xmax = parts.next()?.parse().ok()?;
        let _xmin: u64 = parts.next()?.parse().ok()?;
        let last = parts.next()?.parse().ok()?;
        let origin = parts.next()?.to_string();
        let ids = |list: &str| -> Option<Vec<u64>> {
            list.split(',')
                .filter(|x| !x.is_empty())
                .map(|x| x.parse().ok())
                .collect()
        };
        let mut running: Vec<u32> = ids(snapshot_running)?
            .into_iter()
            .chain(ids(locked)?)
            .map(|x| (x & u64::from(u32::MAX)) as u32)
            .collect();
        running.sort_unstable();
        running.dedup();
        Some(LocalMark {
            origin,
            last,
            xmax,
            running,
        })
    }

    /// Whether the target's rows written since can be told by their `xmin` now.
    pub fn holds(&self, now: &Clock) -> bool {
        self.origin == now.origin
            && self.xmax <= now.next
            && now.next - self.xmax < crate::source::MARK_SPAN
    }

    /// The condition on a row of the table that it was written after the mark: by its `xmin`'s
    /// age (computed once, as in `plan::rows`), or as one of the transactions then running.
    pub fn written_after(&self) -> String {
        let mut condition = format!(
            "pg_catalog.age(xmin) < (SELECT pg_catalog.age('{}'::pg_catalog.xid))",
            self.last
        );
        if !self.running.is_empty() {
            let running: Vec<String> = self.running.iter().map(u32::to_string).collect();
            condition = format!(
                "({condition} OR xmin = ANY ('{{{}}}'::pg_catalog.xid[]))",
                running.join(",")
            );
        }
        condition
    }
}

#[cfg(test)]
mod tests {
    use super::{Clock, LocalMark};

    fn clock(origin: &str, next: u64) -> Clock {
        Clock {
            origin: origin.into(),
            next,
        }
    }

    #[test]
    fn a_local_mark_reads_back_from_the_text_the_registry_kept() {
        let epoch = 5u64 << 32;
        // Running: one in the snapshot (with its epoch), one subtransaction's lock, and the
        // snapshot's one again among the locks.
        let text = format!(
            "7710845653820768374/1/16384:9:{}:{}:{}:950,3",
            epoch + 3,
            epoch + 7,
            epoch + 3
        );
        assert_eq!(
            LocalMark::parse(&text),
            Some(LocalMark {
                origin: "7710845653820768374/1/16384".into(),
                last: 9,
                xmax: epoch + 7,
                running: vec![3, 950],
            })
        );
        let none_running = LocalMark::parse("1/1/5:11:10:12::").unwrap();
        assert_eq!(
            (none_running.last, none_running.xmax, none_running.running),
            (11, 12, vec![])
        );
        assert_eq!(LocalMark::parse("1/1/5:11:10:12:"), None);
        assert_eq!(LocalMark::parse("1/1/5:11:10:x::"), None);
        assert_eq!(LocalMark::parse("1/1/5:11:10:12::y"), None);
    }

    #[test]
    fn local_edits_are_told_by_xmin_only_on_the_same_target_going_forward() {
        let m = LocalMark {
            origin: "42/1/5".into(),
            last: 101,
            xmax: (3 << 32) + 100,
            running: vec![90, 95],
        };
        assert!(m.holds(&clock("42/1/5", (3 << 32) + 100)));
        assert!(m.holds(&clock("42/1/5", (3 << 32) + 5000)));
        assert!(!m.holds(&clock("43/1/5", (3 << 32) + 5000)));
        assert!(!m.holds(&clock("42/2/5", (3 << 32) + 5000)));
        assert!(!m.holds(&clock("42/1/5", (3 << 32) + 99)));
        assert!(!m.holds(&clock("42/1/5", (3 << 32) + 100 + (1 << 29))));
        assert_eq!(
            m.written_after(),
            "(pg_catalog.age(xmin) < (SELECT pg_catalog.age('101'::pg_catalog.xid)) \
             OR xmin = ANY ('{90,95}'::pg_catalog.xid[]))"
        );
    }
}
