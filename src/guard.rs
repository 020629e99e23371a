//! Guards that keep a run from doing damage: the target is never the source itself, and only
//! one snapcopy run works on a target database at a time.

use anyhow::{bail, Context};
use tokio_postgres::Client;

use crate::conninfo::ConnInfo;
use crate::sql::Ident;

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
    let (s, t) = (identity(source).await?, identity(target).await?);
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
/// session ends, also if the process is killed). If another run holds it, the error says who.
pub async fn lock_target(target: &Client, staging_schema: &Ident) -> anyhow::Result<()> {
    let got: bool = target
        .query_one(
            "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext('snapcopy'), \
             pg_catalog.hashtext($1))",
            &[&staging_schema.raw()],
        )
        .await
        .context("could not take snapcopy's lock on the target")?
        .get(0);
    if got {
        return Ok(());
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
                 to finish, or stop it with SELECT pg_terminate_backend({pid})"
            )
        }
        None => {
            bail!("another snapcopy run is working on this target database; wait for it to finish")
        }
    }
}
