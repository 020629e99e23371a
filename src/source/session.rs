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
}

/// Opens the run's snapshot on the source session and returns it. The session must stay
/// open, in its transaction, while the loads run: it must not be ended for idling in it.
/// Expressions the catalog prints (defaults, bounds, checks) must parse on any target: as
/// pg_dump does, constants print in ISO dates, postgres-style intervals and exact floats, and
/// every name is qualified (`search_path = ''`).
pub async fn open_snapshot(source: &Client) -> anyhow::Result<Snapshot> {
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
            "SELECT pg_catalog.pg_export_snapshot(), pg_catalog.now()::text",
            &[],
        )
        .await
        .context("could not export a snapshot on the source")?;
    Ok(Snapshot {
        id: row.get(0),
        at: row.get(1),
    })
}
