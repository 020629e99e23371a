//! snapcopy: clone PostgreSQL tables server to server through dblink or postgres_fdw.
//!
//! Data flow, one direction: flags and config become [`settings::Settings`]; the source catalog
//! becomes a [`source::Catalog`] and the target's state a [`target::TargetState`]; with the
//! settings they become a [`plan::Plan`] (pure, printable); [`exec`] runs the plan on the
//! target; [`report`] prints the summary. Each command is a module of [`commands`]; this file
//! only dispatches. `ARCHITECTURE.md` maps the modules and where to make a change.

pub mod claims;
pub mod cli;
pub mod commands;
pub mod config;
pub mod conninfo;
pub mod exec;
pub mod guard;
pub mod human;
pub mod mask;
pub mod pattern;
pub mod plan;
pub mod progress;
pub mod report;
pub mod settings;
pub mod source;
pub mod sql;
pub mod target;
pub mod tls;

use crate::cli::{Cli, Command};
use crate::commands::{audit, copy, init, status, teardown, verify};

/// How a run ended, for the exit code: 0 all done, 1 some table failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every table was copied.
    Success,
    /// Some tables failed; the others finished, and the summary says which.
    SomeFailed,
}

pub use exec::cancel_running;

/// Runs a command. An `Err` means nothing changed on the target (exit 2).
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Some(Command::Init(args)) => init::init(&args),
        Some(Command::Plan(args)) => copy::copy(&args, true).await,
        Some(Command::Status(args)) => status::status(&args).await,
        Some(Command::Verify(args)) => verify::verify_tables(&args).await,
        Some(Command::Audit(args)) => audit::audit(&args).await,
        Some(Command::Teardown(args)) => teardown::teardown(&args).await,
        None => copy::copy(&cli.copy, false).await,
    }
}
