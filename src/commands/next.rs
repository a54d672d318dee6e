//! `keyhook next`: the next run times, with zone and UTC offset.

use std::io::Write;

use super::{Context, success};
use crate::cli::NextArgs;
use crate::definitions::Task;
use crate::error::Result;

pub fn run(context: &Context, args: &NextArgs, out: &mut impl Write) -> Result {
    let tasks: Vec<&Task> = match &args.task {
        Some(name) => vec![context.task(name)?],
        None => context
            .definitions
            .tasks
            .iter()
            .filter(|task| task.enabled)
            .collect(),
    };
    // A state recorded ahead of now holds `run-due` back until then: so are the times here.
    // Only a hint here: a state that cannot be read (a server down) leaves the times from now.
    let read = context.state_exists().and_then(|exists| match exists {
        true => Ok(context.open_state()?.task_states()?),
        false => Ok(Vec::new()),
    });
    let states = read.unwrap_or_else(|error| {
        eprintln!("warning: the state could not be read ({error}); times from now");
        Vec::new()
    });
    for task in tasks {
        let zone = context.zone_of(task);
        writeln!(out, "{} ({}, {zone}):", task.name, task.schedule.describe())?;
        if context.refuses(task) {
            writeln!(
                out,
                "  (not run while its file or its search's has problems: `keyhook check` says which)"
            )?;
            continue;
        }
        if !task.enabled {
            writeln!(
                out,
                "  (disabled in its file: `enabled = false`; run-due never runs it)"
            )?;
            continue;
        }
        if let Some((_, state)) = states.iter().find(|(stem, _)| *stem == task.stem)
            && let Some(warning) = super::future_state(context, task, state)
        {
            eprintln!("warning: {warning}");
        }
        let mut after = super::next_from(context, task, &states);
        for _ in 0..args.count {
            let Some(at) = task.schedule.next_after(after, zone) else {
                writeln!(out, "  (no further runs)")?;
                break;
            };
            writeln!(
                out,
                "  {}",
                at.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %:z %a")
            )?;
            after = at;
        }
    }
    if args.task.is_none() {
        super::say_broken_files(context, out)?;
    }
    success()
}
