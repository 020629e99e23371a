//! Sessions and the server-to-server link.
//!
//! The tool opens one read-only session on the source (for the catalog) and sessions on the
//! target; rows never pass through it. On the target, the link is the dblink extension, a
//! `dblink_fdw` foreign server and a user mapping that holds the source credentials, so that
//! no view definition ever contains a password.

use anyhow::{anyhow, Context};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::conninfo::ConnInfo;
use crate::plan::{Purpose, Step};
use crate::source::Requirement;

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

/// Runs the plan's setup in one transaction. A statement that makes something only some tables
/// need ([`Purpose::Prerequisite`], [`Purpose::ForTable`]) runs in a savepoint: when it fails,
/// it is undone, the setup goes on, and it comes back with why, so that only the tables that
/// need it are refused. Any other failure changes nothing and comes back as an error that says
/// what to do: dblink or an extension missing, or a privilege lacking.
pub async fn run_setup(
    client: &mut Client,
    steps: &[Step],
    verbose: bool,
) -> anyhow::Result<Vec<(Purpose, String)>> {
    let tx = client.transaction().await?;
    let mut unmade: Vec<(Purpose, String)> = Vec::new();
    for step in steps {
        if verbose {
            eprintln!("{};", step.shown);
        }
        for (name, value) in &step.settings {
            tx.execute("SELECT pg_catalog.set_config($1, $2, true)", &[name, value])
                .await
                .map_err(|e| setup_error(&e, step))?;
        }
        if !matches!(
            step.purpose,
            Purpose::Prerequisite(_) | Purpose::ForTable(_)
        ) {
            if let Err(e) = tx.batch_execute(&step.sql).await {
                return Err(setup_error(&e, step));
            }
            continue;
        }
        tx.batch_execute("SAVEPOINT snapcopy_setup").await?;
        match tx.batch_execute(&step.sql).await {
            Ok(()) => tx.batch_execute("RELEASE SAVEPOINT snapcopy_setup").await?,
            Err(e) => {
                tx.batch_execute(
                    "ROLLBACK TO SAVEPOINT snapcopy_setup; RELEASE SAVEPOINT snapcopy_setup",
                )
                .await?;
                unmade.push((
                    step.purpose.clone(),
                    unmade_message(e.code(), &describe(&e), step),
                ));
            }
        }
    }
    tx.commit()
        .await
        .context("could not commit the setup on the target")?;
    Ok(unmade)
}

/// Why something tables need could not be made on the target, in words that follow "which
/// could not be made on the target: ".
fn unmade_message(code: Option<&SqlState>, message: &str, step: &Step) -> String {
    let what = first_line(&step.shown);
    match (&step.purpose, code) {
        (Purpose::Prerequisite(Requirement::Extension(ext)), Some(code))
            if *code == SqlState::UNDEFINED_FILE =>
        {
            format!(
                "its package is not installed on the target server ({message}): install it \
                 there ({}) and run snapcopy again",
                package_for(ext)
            )
        }
        (Purpose::Prerequisite(Requirement::Extension(ext)), Some(code))
            if *code == SqlState::INSUFFICIENT_PRIVILEGE =>
        {
            format!(
                "the target role may not create it ({message}): ask a superuser to run CREATE \
                 EXTENSION {ext} in the target database, or connect as a role that may"
            )
        }
        _ => format!(
            "{message} (while running: {what}); make it on the target by hand, as on the \
             source, and run snapcopy again"
        ),
    }
}

/// A statement's first line, cut to 200 bytes, for messages.
pub fn first_line(sql: &str) -> String {
    let line = sql.lines().next().unwrap_or_default();
    let cut = crate::sql::truncate_bytes(line, 200);
    if cut.len() < line.len() {
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

fn setup_error(e: &tokio_postgres::Error, step: &Step) -> anyhow::Error {
    setup_message(e.code(), &describe(e), step)
}

/// The message for a failed setup statement, from its SQLSTATE, the server's words and what
/// the statement was for: what is missing and what to do.
fn setup_message(code: Option<&SqlState>, message: &str, step: &Step) -> anyhow::Error {
    let shown = &step.shown;
    let extension = match &step.purpose {
        Purpose::LinkCheck => return anyhow!("{}", link_failure(code, message)),
        Purpose::Extension(name)
        | Purpose::Prerequisite(crate::source::Requirement::Extension(name)) => Some(name),
        Purpose::Prerequisite(_) | Purpose::ForTable(_) | Purpose::Other => None,
    };
    match (code, extension) {
        (Some(code), Some(ext)) if *code == SqlState::UNDEFINED_FILE => anyhow!(
            "the extension {ext} is not installed on the target server ({message}); install its \
             package there ({}) and run snapcopy again",
            package_for(ext)
        ),
        (Some(code), Some(ext)) if *code == SqlState::INSUFFICIENT_PRIVILEGE => anyhow!(
            "the target role may not create the extension {ext} ({message}); ask a superuser to \
             run CREATE EXTENSION {ext} in the target database, or connect as a role that may"
        ),
        (Some(code), None) if *code == SqlState::INSUFFICIENT_PRIVILEGE => anyhow!(
            "the target role lacks a privilege snapcopy needs for its setup ({message}); it \
             needs CREATE on the target database and USAGE on the dblink_fdw foreign-data \
             wrapper. The statement was: {shown}"
        ),
        _ => anyhow!(
            "setup on the target failed: {message}. The statement was: {shown}. Nothing was \
             changed (the setup rolled back); fix what PostgreSQL names and run snapcopy again"
        ),
    }
}

/// What to say when the target server cannot open its dblink connection to the source.
pub fn link_failure(code: Option<&SqlState>, message: &str) -> String {
    // dblink's own refusal of a connection without a password, for a role that is not a
    // superuser.
    if code == Some(&SqlState::S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED) {
        format!(
            "the target server's dblink refused to connect to the source: {message}. dblink lets \
             a role that is not a superuser connect only with a password that the source \
             actually asks for: give the source role a password in the connection string (or \
             ~/.pgpass) and have the source's pg_hba.conf use scram-sha-256 or md5 for \
             connections from the target server, or run snapcopy as a superuser of the target"
        )
    } else {
        format!(
            "the target server could not open its dblink connection to the source: {message}. \
             Check that the target server can reach the source (see --source-via) and that the \
             source accepts the credentials in the user mapping"
        )
    }
}

/// The Debian package that ships an extension, for error messages.
pub fn package_for(extension: &str) -> String {
    match extension {
        "postgis" | "postgis_raster" | "postgis_topology" | "postgis_sfcgal" => {
            "Debian: postgresql-15-postgis-3".into()
        }
        "dblink" | "citext" | "hstore" | "ltree" | "pg_trgm" | "cube" | "isn" | "btree_gist"
        | "btree_gin" | "uuid-ossp" | "pgcrypto" | "tablefunc" | "intarray" | "seg" => {
            "Debian: postgresql-contrib".into()
        }
        other => format!("the package that provides {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The setup's CREATE EXTENSION step for `name`.
    fn create_extension(name: &str) -> Step {
        let sql = format!("CREATE EXTENSION IF NOT EXISTS \"{name}\" WITH SCHEMA \"public\"");
        Step {
            phase: crate::plan::Phase::Setup,
            table: None,
            shown: sql.clone(),
            sql,
            settings: Vec::new(),
            batch: None,
            purpose: Purpose::Extension(name.into()),
            also: None,
        }
    }

    #[test]
    fn a_missing_extension_names_its_package() {
        let err = setup_message(
            Some(&SqlState::UNDEFINED_FILE),
            "could not open extension control file \"/usr/share/postgresql/15/extension/postgis.control\"",
            &create_extension("postgis"),
        )
        .to_string();
        assert!(
            err.starts_with("the extension postgis is not installed on the target server")
                && err.contains("Debian: postgresql-15-postgis-3"),
            "{err}"
        );
        let err = setup_message(
            Some(&SqlState::UNDEFINED_FILE),
            "could not open extension control file",
            &create_extension("dblink"),
        )
        .to_string();
        assert!(
            err.contains("the extension dblink is not installed")
                && err.contains("postgresql-contrib"),
            "{err}"
        );
    }
}
