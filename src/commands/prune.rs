//! `keyhook prune`: delete settled deliveries of old runs, so the state file stays bounded.

use std::io::Write;

use anyhow::anyhow;

use super::{Context, success};
use crate::cli::PruneArgs;
use crate::error::{Error, Result};
use crate::schedule::clock;
use crate::state::State;

pub fn run(context: &Context, args: &PruneArgs, out: &mut impl Write) -> Result {
    let age = args.older_than;
    let before = clock::before(context.clock.now(), age)
        .ok_or_else(|| Error::config(anyhow!("--older-than: reaches before any time")))?
        .timestamp();
    let state = context.open_state()?;
    let deleted = state.prune(before)?;
    writeln!(
        out,
        "deleted {deleted} settled deliveries of runs started before {} (older than {}); \
         pending and failed ones are kept",
        super::sending::local_time(context, before),
        whole_units(age)
    )?;
    if let State::Sqlite(db) = &state {
        // Every task's, a task whose file is gone included: its next run, which would remove
        // them, never comes.
        let mut removed = 0;
        for task in db.tasks_recording()? {
            removed += super::sending::clear_killed_recordings(context, &state, &task)?;
        }
        if removed > 0 {
            writeln!(
                out,
                "removed {removed} run(s) killed while they were being recorded (nothing of \
                 them was sent)"
            )?;
        }
    }
    success()
}

/// An age as written in whole days, hours, minutes or seconds (`90d`, not humantime's
/// `2months 29days 2h 52m 48s`).
fn whole_units(age: std::time::Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
