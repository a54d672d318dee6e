//! `keyhook prune`: delete settled deliveries of old runs, so the state file stays bounded.

use std::io::Write;

use anyhow::anyhow;

use super::{Context, success};
use crate::cli::PruneArgs;
use crate::definitions::settings::parse_duration;
use crate::error::{Error, Result};

pub fn run(context: &Context, args: &PruneArgs, out: &mut impl Write) -> Result {
    let age = parse_duration(&args.older_than)
        .map_err(|error| Error::config(anyhow!("--older-than: {error}")))?;
    let before = context.clock.now().timestamp() - age.as_secs() as i64;
    let state = context.state()?;
    let deleted = state.prune(before).map_err(Error::runtime)?;
    writeln!(
        out,
        "deleted {deleted} settled deliveries of runs older than {}; pending and failed ones are kept",
        humantime::format_duration(age)
    )?;
    success()
}
