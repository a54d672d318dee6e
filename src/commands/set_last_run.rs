//! `keyhook set-last-run`: rewind or advance a task's last run, as QLM's "Last Ran" edit does.
//! It also repairs a task that a wrong clock (or `--now`) left with a slot in the future.

use std::io::Write;

use anyhow::anyhow;

use super::sending::local_time;
use super::{Context, success};
use crate::cli::SetLastRunArgs;
use crate::error::{Error, Result};
use crate::schedule::clock;

pub fn run(context: &Context, args: &SetLastRunArgs, out: &mut impl Write) -> Result {
    let task = context.task(&args.task)?;
    let zone = context.zone_of(task);
    // Read in the task's zone; a time pasted from keyhook's output is shown in the configured
    // zone, and its abbreviation may be that zone's.
    let at = match clock::parse_instant(&args.time, zone) {
        Err(clock::InstantError::OtherZone { .. }) if zone != context.clock.zone() => {
            clock::parse_instant(&args.time, context.clock.zone())
        }
        parsed => parsed,
    }
    .map_err(|error| Error::config(anyhow!("time: {error}")))?;
    let now = context.clock.now();
    if chrono::Datelike::year(&at.with_timezone(&zone)) < 1 {
        // `[date]` is the last run: before year 1 it is outside the calendar the license
        // database's dates are in, and every run of the task would stop on it.
        return Err(Error::config(anyhow!(
            "time: {} is before year 1; `[date]` in the task's search would be outside the \
             calendar: give a time in year 1 or later",
            args.time.trim()
        )));
    }
    if at > now {
        return Err(Error::config(anyhow!(
            "time: {} is later than now ({}): a last run in the future would hold task `{}` \
             back until then; give a time at or before now",
            local_time(context, at.timestamp()),
            local_time(context, now.timestamp()),
            task.stem
        )));
    }
    let slot = task
        .schedule
        .latest_at_or_before(at, zone)
        .map(|slot| slot.timestamp());
    let state = context.open_state()?;
    // Not while a run of the task goes on: its end would record its own last run over this.
    let Some(_lock) = super::sending::lock_in(context, &state, &task.stem)? else {
        return Err(super::sending::locked(task));
    };
    state.set_last_run(&task.stem, at.timestamp(), slot, now.timestamp())?;
    writeln!(
        out,
        "{}: last run set to {}; its next run's [date] is that time",
        task.name,
        local_time(context, at.timestamp())
    )?;
    success()
}
