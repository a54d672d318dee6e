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
    for task in tasks {
        let zone = context.zone_of(task);
        writeln!(out, "{} ({}, {zone}):", task.name, task.schedule.describe())?;
        let mut after = context.clock.now();
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
    success()
}
