//! `snapcopy status`: the tables snapcopy manages on the target, from its registry.

use crate::cli::StatusArgs;
use crate::conninfo::Env;
use crate::exec::{connect, Side};
use crate::settings::TargetSettings;
use crate::target::registry;
use crate::{report, Outcome};

/// Prints the registry of the target's staging schema.
pub async fn status(args: &StatusArgs) -> anyhow::Result<Outcome> {
    let settings = TargetSettings::from_opts(&args.to, args.json, &Env::from_process())?;
    let target = connect(&settings.target, Side::Target).await?;
    let rows = registry::status(&target, &settings.staging_schema).await?;
    report::print_status(&rows, settings.json, args.quiet);
    Ok(Outcome::Success)
}
