//! The snapcopy binary: parse the command line, run, turn the outcome into an exit code.
//! 0: every table done; 1: some tables failed (the summary says which); 2: usage,
//! configuration or connection error before anything changed; 130: interrupted (SIGINT or
//! SIGTERM), the running loads cancelled and rolled back.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = snapcopy::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = snapcopy::run(cli) => Some(outcome),
            () = interrupted() => {
                // Stop the server-side work; the open transactions roll back.
                snapcopy::cancel_running().await;
                None
            }
        }
    });
    // Dropping the runtime closes every session, which ends the dblink connections too.
    drop(runtime);
    match outcome {
        Some(Ok(snapcopy::Outcome::Success)) => ExitCode::SUCCESS,
        Some(Ok(snapcopy::Outcome::SomeFailed)) => ExitCode::from(1),
        Some(Err(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        None => {
            eprintln!(
                "interrupted: the running loads were cancelled and rolled back; every table \
                 keeps its previous contents"
            );
            ExitCode::from(130)
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
