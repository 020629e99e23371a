//! Sessions: opening them (the tool's own read-only source session, target sessions for
//! loading), the server's words for their errors, and cancelling what they run when the run is
//! interrupted.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::anyhow;
use tokio_postgres::{CancelToken, Client, NoTls};

use super::explain::{During, StepError};
use super::lock;
use super::Run;
use crate::conninfo::ConnInfo;

/// Cancel tokens of the sessions whose queries are running, so that an interrupted run can
/// stop them on the servers instead of leaving them to finish unseen.
pub(super) static RUNNING: Mutex<Vec<CancelToken>> = Mutex::new(Vec::new());

/// Remembers a session to cancel if the run is interrupted.
pub fn register(client: &tokio_postgres::Client) {
    lock(&RUNNING).push(client.cancel_token());
}

/// Asks the server to cancel whatever each registered session is running. Their transactions
/// roll back, so every table keeps its previous contents.
pub async fn cancel_running() {
    let tokens: Vec<CancelToken> = lock(&RUNNING).drain(..).collect();
    // All at once, and not for long: a server that does not answer must not hold the exit up
    // (its sessions end when the process does, and roll back).
    let cancels = futures::future::join_all(
        tokens
            .iter()
            .map(|token| token.cancel_query(tokio_postgres::NoTls)),
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), cancels).await;
}

/// Which server a session belongs to, for messages.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    /// The production side, only read.
    Source,
    /// The developer's side.
    Target,
}

impl Side {
    fn word(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }
}

/// Opens a session; the driver task runs in the background until the client is dropped.
/// A source session is read-only from its first statement (`default_transaction_read_only`
/// as a startup option, so no statement can run before it applies).
pub async fn connect(info: &ConnInfo, side: Side) -> anyhow::Result<Client> {
    let mut config = info.to_driver_config()?;
    if let Side::Source = side {
        let options = match info.get("options") {
            Some(o) => format!("{o} -c default_transaction_read_only=on"),
            None => "-c default_transaction_read_only=on".to_string(),
        };
        config.options(&options);
    }
    let fail = |e: tokio_postgres::Error| {
        let message = describe(&e);
        let hint = match crate::tls::hint(&e) {
            Some(h) => format!("; {h}"),
            None if e.as_db_error().is_none() => {
                "; is the server running there and accepting connections?".to_string()
            }
            None => String::new(),
        };
        anyhow!(
            "could not connect to the {} database {}: {message}{hint}",
            side.word(),
            info.label(),
        )
    };
    // The driver task runs until the client is dropped; its error, if any, surfaces on the next
    // query through the client.
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let client = match crate::tls::connector(info, home.as_deref())? {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(fail)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
        None => {
            let (client, connection) = config.connect(NoTls).await.map_err(fail)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
    };
    Ok(client)
}

/// The server's own words for a database error, or the driver's for anything else, with the
/// source chain, never a conninfo.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = db.message().to_string();
            if let Some(detail) = db.detail() {
                s.push_str(&format!(" ({detail})"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            s
        }
    }
}

/// Opens a target session for loading: cancellable, named after the run, with the settings a
/// bulk load wants.
pub(super) async fn open_session(ctx: &Run<'_>) -> Result<tokio_postgres::Client, StepError> {
    if let Some(client) = super::lock(&ctx.spare).take() {
        return Ok(client);
    }
    let mut client = connect(ctx.target, Side::Target)
        .await
        .map_err(|e| StepError::new(During::Opening, format!("{e:#}")))?;
    register(&client);
    if let Some(key) = ctx.mask_key {
        let failed = |e: tokio_postgres::Error| StepError::new(During::Opening, describe(&e));
        let tx = client.transaction().await.map_err(failed)?;
        set_secrets(
            &tx,
            &[(
                crate::mask::KEY_SETTING.to_string(),
                key.expose().to_string(),
            )],
            false,
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
    // The settings go in one round trip (the statements are pipelined), each its own
    // statement so that one the server refuses leaves the others.
    let name = async {
        if let Some(lock) = ctx.lock {
            let _ = client
                .batch_execute(&format!(
                    "SELECT pg_catalog.set_config('application_name', {}, false)",
                    crate::sql::literal(&lock.name())
                ))
                .await;
        }
    };
    // If this process dies (even by SIGKILL), the server notices within a second and rolls the
    // load back instead of finishing it for nobody; the setting exists since PostgreSQL 14.
    let check = client.batch_execute("SET client_connection_check_interval = '1s'");
    // Values the target prints go to the source as text (a high-water mark, keys compared):
    // in formats every server reads back the same, whatever the target's DateStyle. A bulk
    // load must not be cut short by the target's own timeouts.
    let required = client.batch_execute(
        "SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; SET statement_timeout = 0; \
         SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0",
    );
    // The comparisons of incremental and sync modes keep keys and hashes in temporary tables
    // (of a few megabytes each): in memory, not written out, as far as 128 MB, before the
    // session touches a temporary table (later the server refuses).
    let temp = raise(&client, "temp_buffers", "128MB");
    // Index and key builds after the rows want memory.
    let maintenance = raise(&client, "maintenance_work_mem", "256MB");
    let ((), _, required, (), ()) = futures::join!(name, check, required, temp, maintenance);
    required.map_err(|e| StepError::new(During::Opening, describe(&e)))?;
    Ok(client)
}

/// Raises a memory setting to `value` for the session, never lowering it; best effort: the
/// load goes on with the server's setting if this fails.
async fn raise(client: &Client, name: &str, value: &str) {
    let _ = client
        .batch_execute(&format!(
            "SELECT pg_catalog.set_config({name}, {value}, false) \
             WHERE pg_catalog.pg_size_bytes(pg_catalog.current_setting({name})) \
             < pg_catalog.pg_size_bytes({value})",
            name = crate::sql::literal(name),
            value = crate::sql::literal(value),
        ))
        .await;
}

/// Sets `settings` (name, value) in the session of `tx`, for the transaction (`local`) or the
/// session, without any value in a statement's text or a bound parameter, which a server
/// logging every statement would log: the values travel as `COPY` data, which no log records,
/// into a temporary table dropped at once.
pub async fn set_secrets(
    tx: &tokio_postgres::Transaction<'_>,
    settings: &[(String, String)],
    local: bool,
) -> Result<(), tokio_postgres::Error> {
    use futures::SinkExt;
    if settings.is_empty() {
        return Ok(());
    }
    tx.batch_execute(
        "CREATE TEMPORARY TABLE snapcopy_secret (name text, value text) ON COMMIT DROP",
    )
    .await?;
    let escape = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t")
    };
    let data: String = settings
        .iter()
        .map(|(n, v)| format!("{}\t{}\n", escape(n), escape(v)))
        .collect();
    let sink = tx.copy_in("COPY snapcopy_secret FROM STDIN").await?;
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(data)).await?;
    sink.as_mut().finish().await?;
    tx.execute(
        &format!("SELECT pg_catalog.set_config(name, value, {local}) FROM snapcopy_secret"),
        &[],
    )
    .await?;
    tx.batch_execute("DROP TABLE snapcopy_secret").await
}
