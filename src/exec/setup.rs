//! The setup: one transaction on the target that makes snapcopy's objects and what the tables
//! need, each of the latter in a savepoint so that what cannot be made refuses only the tables
//! that need it.

use anyhow::{anyhow, Context};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::explain::{first_line, link_failure, package_for};
use super::session::describe;
use crate::plan::{Purpose, Step};
use crate::source::Requirement;

/// Runs the plan's setup in one transaction. A statement that makes something only some tables
/// need ([`Purpose::Prerequisite`], [`Purpose::ForTable`]) runs in a savepoint: when it fails,
/// it is undone, the setup goes on, and it comes back with why, so that only the tables that
/// need it are refused. Any other failure changes nothing and comes back as an error that says
/// what to do: the link's extension or another one missing, or a privilege lacking.
pub async fn run_setup(
    client: &mut Client,
    steps: &[Step],
    verbose: bool,
) -> anyhow::Result<Vec<(Purpose, String)>> {
    let tx = client.transaction().await?;
    let mut unmade: Vec<(Purpose, String)> = Vec::new();
    for step in steps {
        if verbose {
            eprintln!("{};", step.text());
        }
        super::session::set_secrets(&tx, step.settings(), true)
            .await
            .map_err(|e| setup_error(&e, step))?;
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
pub(super) fn unmade_message(code: Option<&SqlState>, message: &str, step: &Step) -> String {
    let what = first_line(step.text());
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

pub(super) fn setup_error(e: &tokio_postgres::Error, step: &Step) -> anyhow::Error {
    setup_message(e.code(), &describe(e), step)
}

/// The message for a failed setup statement, from its SQLSTATE, the server's words and what
/// the statement was for: what is missing and what to do.
pub(super) fn setup_message(code: Option<&SqlState>, message: &str, step: &Step) -> anyhow::Error {
    let shown = step.text();
    let extension = match &step.purpose {
        Purpose::LinkCheck(link) => return anyhow!("{}", link_failure(*link, code, message)),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The setup's CREATE EXTENSION step for `name`.
    fn create_extension(name: &str) -> Step {
        let sql = format!("CREATE EXTENSION IF NOT EXISTS \"{name}\" WITH SCHEMA \"public\"");
        Step {
            purpose: Purpose::Extension(name.into()),
            ..Step::new(crate::plan::Phase::Setup, None, sql)
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
