//! `keyhook set-last-run`: rewind or advance a task's last run, as QLM's "Last Ran" edit does.

use std::io::Write;

use anyhow::anyhow;

use super::sending::local_time;
use super::{Context, success};
use crate::cli::SetLastRunArgs;
use crate::error::{Error, Result};
use crate::schedule::clock;

pub fn run(context: &Context, args: &SetLastRunArgs, out: &mut impl Write) -> Result {
    let task = context.task(&args.task)?;
    let at = clock::parse_instant(&args.time, context.zone_of(task))
        .map_err(|error| Error::config(anyhow!("time: {error}")))?;
    let state = context.state()?;
    state
        .set_last_run(&task.stem, at.timestamp())
        .map_err(Error::runtime)?;
    writeln!(
        out,
        "{}: last run set to {}; its next run's [date] is that time",
        task.name,
        local_time(context, at.timestamp())
    )?;
    success()
}
