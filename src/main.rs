//! The snapcopy binary: parse the command line, run, turn the outcome into an exit code.
//! 0: every table done; 1: some tables failed (the summary says which); 2: usage,
//! configuration or connection error before anything changed.

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
    match runtime.block_on(snapcopy::run(cli)) {
        Ok(snapcopy::Outcome::Success) => ExitCode::SUCCESS,
        Ok(snapcopy::Outcome::SomeFailed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
