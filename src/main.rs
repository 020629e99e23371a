//! The snapcopy binary: parse the command line, run, turn the outcome into an exit code.
//! 0: every table done; 1: some tables failed (the summary says which); 2: usage,
//! configuration or connection error before anything changed; 128 + the signal's number when
//! interrupted (130 SIGINT, 143 SIGTERM, 129 SIGHUP): the running loads cancelled and rolled
//! back, in whatever phase the run was, connecting included.

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
            outcome = snapcopy::run(cli) => Ok(outcome),
            signal = interrupted() => {
                // Stop the server-side work; the open transactions roll back.
                snapcopy::cancel_running().await;
                Err(signal)
            }
        }
    });
    // Shutting the runtime down closes every session, which ends the dblink connections too;
    // a task blocked in the operating system (a host name lookup) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(Ok(snapcopy::Outcome::Success)) => ExitCode::SUCCESS,
        Ok(Ok(snapcopy::Outcome::SomeFailed)) => ExitCode::from(1),
        Ok(Err(e)) => {
            eprintln!("error: {}", snapcopy::sql::printable(&format!("{e:#}")));
            ExitCode::from(2)
        }
        Err(signal) => {
            eprintln!(
                "interrupted ({}): the running loads were cancelled and rolled back; every \
                 table keeps its previous contents",
                signal.name
            );
            ExitCode::from(128 + signal.number)
        }
    }
}

/// A signal that ends a run.
struct Signal {
    name: &'static str,
    number: u8,
}

/// Resolves on SIGINT (Ctrl-C), SIGTERM (what `timeout`, systemd and container runtimes send)
/// or SIGHUP (a closed terminal), with which one.
async fn interrupted() -> Signal {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return Signal {
            name: "SIGINT",
            number: 2,
        };
    };
    tokio::select! {
        _ = int.recv() => Signal { name: "SIGINT", number: 2 },
        _ = term.recv() => Signal { name: "SIGTERM", number: 15 },
        _ = hup.recv() => Signal { name: "SIGHUP", number: 1 },
    }
}
