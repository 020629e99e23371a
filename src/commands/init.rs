//! `snapcopy init`: writes a commented snapcopy.toml to start from.

use anyhow::{bail, Context};

use crate::cli::InitArgs;
use crate::{config, Outcome};

/// Writes the template config to `args.path`, refusing to overwrite a file without `--force`.
pub fn init(args: &InitArgs) -> anyhow::Result<Outcome> {
    if args.path.exists() && !args.force {
        bail!(
            "{} already exists; edit it, or pass --force to overwrite it",
            args.path.display()
        );
    }
    std::fs::write(&args.path, config::TEMPLATE)
        .with_context(|| format!("could not write {}", args.path.display()))?;
    if !args.quiet {
        eprintln!("wrote {}", args.path.display());
    }
    Ok(Outcome::Success)
}
