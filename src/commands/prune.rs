//! `keyhook prune`: delete settled deliveries of old runs, so the state file stays bounded.

use std::io::Write;

use anyhow::anyhow;

use super::{Context, success};
use crate::cli::PruneArgs;
use crate::error::{Error, Result};
use crate::schedule::clock;

pub fn run(context: &Context, args: &PruneArgs, out: &mut impl Write) -> Result {
    let age = args.older_than;
    let before = clock::before(context.clock.now(), age)
        .ok_or_else(|| Error::config(anyhow!("--older-than: reaches before any time")))?
        .timestamp();
    let state = context.open_state()?;
    let deleted = state.prune(before)?;
    writeln!(
        out,
        "deleted {deleted} settled deliveries of runs older than {}; pending and failed ones are kept",
        humantime::format_duration(age)
    )?;
    success()
}
