//! Guards that keep a run from doing damage: the target is never the source itself, only one
//! snapcopy run works on a target database at a time, and no unit takes more locks than a
//! server has room for.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use tokio_postgres::Client;

use crate::conninfo::ConnInfo;
use crate::plan::Unit;
use crate::source::{Catalog, Table};
use crate::sql::{Ident, QualifiedName};

/// What identifies a database on a running server. The system identifier alone is not enough:
/// a restored or cloned cluster shares it with its origin (and our test servers share an initdb
/// template), so the postmaster's start time and port come with it.
async fn identity(client: &Client) -> anyhow::Result<String> {
    let sql =
        "SELECT concat_ws(' ', (SELECT system_identifier FROM pg_catalog.pg_control_system()), \
               pg_catalog.pg_postmaster_start_time(), pg_catalog.current_setting('port'), \
               pg_catalog.current_database())";
    let fallback = "SELECT concat_ws(' ', pg_catalog.pg_postmaster_start_time(), \
                    pg_catalog.current_setting('port'), pg_catalog.current_database())";
    match client.query_one(sql, &[]).await {
        Ok(row) => Ok(row.get(0)),
        // pg_control_system() may be closed to this role; the rest still tells servers apart.
        Err(_) => Ok(client.query_one(fallback, &[]).await?.get(0)),
    }
}

/// Refuses to run when the target database is the source database: the copy would truncate the
/// very tables it reads.
pub async fn refuse_same_database(
    source: &Client,
    target: &Client,
    source_info: &ConnInfo,
    target_info: &ConnInfo,
) -> anyhow::Result<()> {
    let (s, t) = futures::try_join!(identity(source), identity(target))?;
    if s == t {
        bail!(
            "the target {} is the source database {} itself; give a target in another database \
             or on another server",
            target_info.label(),
            source_info.label()
        );
    }
    Ok(())
}

/// Takes the run lock on the target database (a session-level advisory lock, released when the
/// session ends, also if the process is killed) and names the run: this session and every
/// session of the run are called `snapcopy run <pid of this session>`, so that one query can end
/// them all. Returns the run's lock; if another run holds it, the error says who and how to
/// stop it safely.
pub async fn lock_target(target: &Client, staging_schema: &Ident) -> anyhow::Result<RunLock> {
    let row = target
        .query_one(
            "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext('snapcopy'), \
             pg_catalog.hashtext($1)), pg_catalog.pg_backend_pid()",
            &[&staging_schema.raw()],
        )
        .await
        .context("could not take snapcopy's lock on the target")?;
    let (got, pid): (bool, i32) = (row.get(0), row.get(1));
    if got {
        let lock = RunLock {
            holder: pid,
            staging_schema: staging_schema.raw().to_string(),
        };
        target
            .execute(
                "SELECT pg_catalog.set_config('application_name', $1, false)",
                &[&lock.name()],
            )
            .await
            .context("could not name snapcopy's session on the target")?;
        return Ok(lock);
    }
    let holder = target
        .query_opt(
            "SELECT format('pid %s, user %s, application %s, from %s, since %s', a.pid, a.usename, \
             a.application_name, coalesce(pg_catalog.host(a.client_addr), 'a local socket'), \
             pg_catalog.to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ')), a.pid \
             FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
             AND l.classid = pg_catalog.hashtext('snapcopy')::oid \
             AND l.objid = pg_catalog.hashtext($1)::oid \
             AND l.database = (SELECT oid FROM pg_catalog.pg_database \
                               WHERE datname = pg_catalog.current_database())",
            &[&staging_schema.raw()],
        )
        .await?;
    match holder {
        Some(row) => {
            let (who, pid): (String, i32) = (row.get(0), row.get(1));
            bail!(
                "another snapcopy run is working on this target database ({who}); wait for it \
                 to finish, or stop it where it runs (Ctrl-C), or end all of its sessions at \
                 once, which rolls its loads back: SELECT pg_terminate_backend(pid) FROM \
                 pg_stat_activity WHERE application_name = 'snapcopy run {pid}' OR pid = {pid}"
            )
        }
        None => {
            bail!("another snapcopy run is working on this target database; wait for it to finish")
        }
    }
}

/// Warns, once, when `role` (the role the target server reads the source as) may write to one
/// of the chosen tables: snapcopy's own sessions are read-only, but anyone who can use the link
/// on the target could turn that off and write. With `require`, refuses to run instead.
pub async fn check_source_role(
    source: &Client,
    role: &str,
    tables: &[crate::source::Candidate],
    require: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    let oids: Vec<tokio_postgres::types::Oid> = tables.iter().map(|t| t.oid).collect();
    let row = source
        .query_one(
            "SELECT coalesce((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1), false), \
             ARRAY(SELECT c.oid::pg_catalog.regclass::text FROM unnest($2::oid[]) AS c(oid) \
                   WHERE pg_catalog.has_table_privilege($1, c.oid, \
                         'INSERT, UPDATE, DELETE, TRUNCATE') ORDER BY 1)",
            &[&role, &oids],
        )
        .await
        .context("could not read the source role's privileges")?;
    let (superuser, writable): (bool, Vec<String>) = (row.get(0), row.get(1));
    if !superuser && writable.is_empty() {
        return Ok(());
    }
    let what = if superuser {
        "is a superuser".to_string()
    } else {
        let shown: Vec<&str> = writable.iter().take(5).map(String::as_str).collect();
        format!(
            "may write to {} of the chosen tables ({}{})",
            writable.len(),
            shown.join(", "),
            if writable.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        )
    };
    let why = format!(
        "the source role {role} {what}: snapcopy's own sessions on the source are read-only, \
         but anyone who can use the link on the target could turn that off and write with it"
    );
    if require {
        bail!(
            "{why}; connect as a role with only SELECT on the tables and their sequences (as \
             --require-read-only-role asks), or run without that option"
        );
    }
    if !quiet {
        eprintln!(
            "warning: {why}; a role with only SELECT on the tables and their sequences makes the \
             link read-only (--require-read-only-role refuses to run otherwise)"
        );
    }
    Ok(())
}

/// How many more sessions a server can take from this role in this database: the fewest of the
/// server's free connections (`max_connections` less the reserved ones and those in use), the
/// role's (`CONNECTION LIMIT`) and the database's, less two left for others (the developer's
/// psql, say).
pub async fn connection_room(client: &Client) -> anyhow::Result<i64> {
    let row = client
        .query_one(
            // pg_stat_get_activity() rather than the pg_stat_activity view: the same rows,
            // planned in a tenth of the time (the view's joins took 4-5 ms of every run).
            "SELECT current_setting('max_connections')::int \
               - current_setting('superuser_reserved_connections')::int \
               - coalesce(current_setting('reserved_connections', true)::int, 0) \
               - (SELECT count(*) FROM pg_catalog.pg_stat_get_activity(NULL) a \
                  WHERE a.backend_type = 'client backend'), \
             (SELECT CASE WHEN r.rolconnlimit < 0 THEN NULL ELSE r.rolconnlimit - \
                (SELECT count(*) FROM pg_catalog.pg_stat_get_activity(NULL) a \
                 WHERE a.usesysid = r.oid) \
                END FROM pg_catalog.pg_roles r WHERE r.rolname = current_user), \
             (SELECT CASE WHEN d.datconnlimit < 0 THEN NULL ELSE d.datconnlimit - \
                (SELECT count(*) FROM pg_catalog.pg_stat_get_activity(NULL) a \
                 WHERE a.datid = d.oid) \
                END FROM pg_catalog.pg_database d WHERE d.datname = current_database())",
            &[],
        )
        .await
        .context("could not read how many connections the server has free")?;
    let free = [row.get::<_, Option<i64>>(0), row.get(1), row.get(2)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0);
    Ok((free - 2).max(1))
}

/// A run's hold on its target: the session holding the advisory lock, which the run's other
/// sessions check before they commit, so that a run whose lock was taken from it (its session
/// terminated) rolls back instead of loading alongside the next run.
#[derive(Debug, Clone)]
pub struct RunLock {
    /// The backend pid of the session holding the lock.
    pub holder: i32,
    /// The staging schema, the lock's second key.
    pub staging_schema: String,
}

impl RunLock {
    /// The application name every target session of the run carries.
    pub fn name(&self) -> String {
        format!("snapcopy run {}", self.holder)
    }

    /// Whether the run still holds its lock, asked from another of its sessions.
    pub async fn held(&self, client: &impl tokio_postgres::GenericClient) -> bool {
        client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.pid = $1 \
                 AND l.classid = pg_catalog.hashtext('snapcopy')::oid \
                 AND l.objid = pg_catalog.hashtext($2)::oid)",
                &[&self.holder, &self.staging_schema],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(false)
    }
}

/// The comment that marks a schema as snapcopy's own: setup writes it when it makes (or adopts
/// an empty) staging schema, and setup and teardown act only on a schema that has it.
pub const STAGING_MARKER: &str =
    "snapcopy's staging schema: its staging objects and registry; snapcopy teardown drops it";

/// Whether the staging schema is snapcopy's to use: absent (setup makes it), marked as
/// snapcopy's, made by an earlier snapcopy before schemas were marked (it holds the registry),
/// or empty (setup adopts and marks it). Any other schema is refused: teardown drops the staging
/// schema, so it must never be one that holds what snapcopy did not make.
pub async fn check_staging_schema(target: &Client, staging_schema: &Ident) -> anyhow::Result<()> {
    let row = target
        .query_opt(
            "SELECT pg_catalog.obj_description(n.oid, 'pg_namespace') = $2, \
             (SELECT count(*) = 3 FROM pg_catalog.pg_attribute a \
               WHERE a.attrelid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', n.nspname, $3::text)) \
                 AND a.attname IN ('table_schema', 'table_name', 'source_shape')), \
             (SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid) \
             + (SELECT count(*) FROM pg_catalog.pg_proc p WHERE p.pronamespace = n.oid) \
             + (SELECT count(*) FROM pg_catalog.pg_type t WHERE t.typnamespace = n.oid) \
             FROM pg_catalog.pg_namespace n WHERE n.nspname = $1",
            &[&staging_schema.raw(), &STAGING_MARKER, &crate::target::registry::REGISTRY],
        )
        .await
        .context("could not read the staging schema on the target")?;
    let Some(row) = row else { return Ok(()) };
    let (marked, registry, objects): (Option<bool>, bool, i64) =
        (row.get(0), row.get(1), row.get(2));
    if marked == Some(true) || registry || objects == 0 {
        return Ok(());
    }
    bail!(
        "the schema {} exists on the target and is not snapcopy's (it holds {objects} objects, \
         and snapcopy did not make it); snapcopy keeps its objects in a schema of its own, which \
         teardown drops: choose another --staging-schema (a new name, or an empty schema)",
        crate::sql::human_ident(staging_schema.raw())
    )
}

/// The tables of the units that would hold more locks than either server's lock table has
/// room for, each with why: they are refused before anything changes. A unit's transaction on
/// the target keeps a lock on each relation it creates, truncates or writes (tables, indexes,
/// sequences, staging objects), and its read-only transaction on the source one on each
/// relation it reads (as pg_dump's does), until it commits; tables tied by foreign keys are one
/// unit, and a partitioned table loads with its partitions. A group of thousands of tables
/// would load for minutes and then fail with "out of shared memory", and on the source it
/// could leave other sessions short of locks meanwhile. The count is a lower bound (each table
/// and partition, its indexes and owned sequences, the TOAST table and its index of a table
/// with a column of unbounded length, the staging view a new table's unit makes) and the room
/// the lock table's nominal size and half again: its entries come from the server's spare
/// shared memory, which held 1.6 times the nominal size on PostgreSQL 15's defaults and 2.4
/// times on a small server (measured: one transaction creating tables until it failed), so
/// that a unit that fits is not refused.
pub fn beyond_locks(
    units: &[Unit],
    catalog: &Catalog,
    target: &LockRoom,
    source: &LockRoom,
) -> BTreeMap<QualifiedName, String> {
    // A table, its own indexes (a partition has one of each of its root's as well, which the
    // catalog lists on the root only) and sequences; on the target also the TOAST table and
    // index it makes (on the source, what a unit reads).
    fn relations(t: &Table, toast: bool) -> i64 {
        let indexes = |t: &Table| {
            let keys = t
                .constraints
                .iter()
                .filter(|c| c.index_body.is_some())
                .count();
            (t.indexes.len() + keys) as i64
        };
        let toasted = |t: &Table| {
            let unbounded = t.columns.iter().any(|c| {
                let ty = c.type_sql.as_str();
                matches!(
                    ty,
                    "text" | "bytea" | "jsonb" | "json" | "xml" | "character varying"
                ) || ty.ends_with("[]")
            });
            if toast && unbounded && !t.is_partitioned() {
                2
            } else {
                0
            }
        };
        let inherited = indexes(t);
        1 + inherited
            + t.sequences.len() as i64
            + toasted(t)
            + t.partitions
                .iter()
                .map(|p| 1 + inherited + indexes(p) + toasted(p))
                .sum::<i64>()
    }
    let mut refused = BTreeMap::new();
    for unit in units {
        let tables: Vec<(&Table, bool)> = unit
            .tables
            .iter()
            .filter_map(|info| {
                let table = catalog.tables.iter().find(|t| t.name == info.name)?;
                Some((table, info.action.creates()))
            })
            .collect();
        let on_target: i64 = tables
            .iter()
            .map(|(t, creates)| relations(t, true) + i64::from(*creates))
            .sum();
        let on_source: i64 = tables.iter().map(|(t, _)| relations(t, false)).sum();
        let tables: Vec<&Table> = tables.into_iter().map(|(t, _)| t).collect();
        let (side, room, locks, what_to_do) = if on_target > target.room() {
            let locks = on_target;
            let needed = target.needed(locks);
            (
                "the target",
                &target,
                locks,
                format!(
                    "set max_locks_per_transaction to at least {needed} on the target \
                     (postgresql.conf, then restart it) and run again"
                ),
            )
        } else if on_source > source.room() {
            let locks = on_source;
            let fewer = if tables.len() > 1 {
                "copy fewer of these tables in one run (foreign keys to tables left out are \
                 skipped), or "
            } else {
                ""
            };
            (
                "the source",
                &source,
                locks,
                format!(
                    "{fewer}have max_locks_per_transaction raised to at least {} on the source",
                    source.needed(locks)
                ),
            )
        } else {
            continue;
        };
        // What loads in the one transaction: a group tied by foreign keys, or a partitioned
        // table with its partitions.
        let what = match (tables.len(), tables[0].partitions.len()) {
            (1, 0) => format!("{} loads", tables[0].name.human()),
            (1, partitions) => format!(
                "{} and its {partitions} partitions load",
                tables[0].name.human()
            ),
            (n, _) => format!(
                "{} and the {} other tables tied to it by foreign keys load",
                tables[0].name.human(),
                n - 1
            ),
        };
        let reason = format!(
            "{what} in one transaction, which holds a lock on each of their {} tables, \
             indexes, sequences and views (at least) until it commits, and {side}'s lock table \
             has room for about {} (max_locks_per_transaction {} for each of its {} server \
             processes, and some spare); nothing changed: {what_to_do}",
            crate::human::count(locks),
            crate::human::count(room.room()),
            room.per_process,
            room.processes,
        );
        let first = tables[0].name.human();
        refused.insert(tables[0].name.clone(), reason);
        for t in &tables[1..] {
            refused.insert(
                t.name.clone(),
                format!(
                    "{} is refused with {first}, to which foreign keys tie it: their group \
                     needs more locks than {side} has room for (see {first})",
                    t.name.human()
                ),
            );
        }
    }
    refused
}

/// A server's lock table: `max_locks_per_transaction` for each process that may hold locks.
pub struct LockRoom {
    per_process: i64,
    processes: i64,
}

impl LockRoom {
    /// `per_process` locks (`max_locks_per_transaction`) for each of `processes`.
    pub fn new(per_process: i64, processes: i64) -> LockRoom {
        LockRoom {
            per_process,
            processes,
        }
    }

    /// The server's, from its settings.
    pub async fn of(client: &Client) -> anyhow::Result<LockRoom> {
        let row = client
            .query_one(
                "SELECT current_setting('max_locks_per_transaction')::int8, \
                 current_setting('max_connections')::int8 \
                 + current_setting('autovacuum_max_workers')::int8 + 1 \
                 + current_setting('max_worker_processes')::int8 \
                 + current_setting('max_wal_senders')::int8 \
                 + current_setting('max_prepared_transactions')::int8",
                &[],
            )
            .await
            .context("could not read the servers' lock settings")?;
        Ok(LockRoom::new(row.get(0), row.get(1)))
    }

    /// The locks it holds, with some of the server's spare shared memory.
    fn room(&self) -> i64 {
        self.per_process * self.processes * 3 / 2
    }

    /// A setting with room for twice `locks`.
    fn needed(&self, locks: i64) -> i64 {
        (2 * locks / self.processes + 1).max(self.per_process + 1)
    }
}
