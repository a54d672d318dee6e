//! `keyhook list`: the searches and tasks found, one line each.

use std::io::Write;

use comfy_table::{Table, presets};

use super::{Context, success};
use crate::definitions::Task;
use crate::error::Result;
use crate::state::runs::TaskState;

pub fn run(context: &Context, out: &mut impl Write) -> Result {
    let definitions = &context.definitions;
    writeln!(
        out,
        "Searches in {}:",
        definitions.dir.join("searches").display()
    )?;
    let mut searches = plain_table();
    for search in &definitions.searches {
        let description = search.description.as_deref().unwrap_or("").trim();
        searches.add_row(vec![
            search.stem.as_str(),
            search.name.as_str(),
            description,
        ]);
    }
    write_table(&searches, definitions.searches.is_empty(), out)?;
    writeln!(out, "Tasks in {}:", definitions.dir.join("tasks").display())?;
    // Last runs come from the state file, when there is one; `list` never creates it.
    let last_runs = match context.state_exists()? {
        true => context
            .open_state()?
            .task_states()
            .map_err(crate::error::Error::runtime)?,
        false => Vec::new(),
    };
    let mut tasks = plain_table();
    for task in &definitions.tasks {
        tasks.add_row(task_row(context, task, &last_runs));
    }
    write_table(&tasks, definitions.tasks.is_empty(), out)?;
    super::say_broken_files(context, out)?;
    success()
}

/// A task's line: stem, name, schedule, last and next run, search, whether it is enabled.
fn task_row(context: &Context, task: &Task, last_runs: &[(String, TaskState)]) -> Vec<String> {
    let schedule = task.schedule.describe();
    let refused = context.refuses(task);
    let next = task
        .schedule
        .next_after(
            super::next_from(context, task, last_runs),
            context.zone_of(task),
        )
        .map(|at| {
            format!(
                "next {}",
                at.with_timezone(&context.zone_of(task))
                    .format("%Y-%m-%d %H:%M %Z")
            )
        })
        .unwrap_or_else(|| "no next run".into());
    let next = match refused {
        true => "not run: see `keyhook check`".to_string(),
        false => next,
    };
    let last = last_runs
        .iter()
        .find(|(stem, _)| *stem == task.stem)
        .and_then(|(_, state)| state.last_run)
        .map(|at| format!("last {}", super::sending::local_time(context, at)))
        .unwrap_or_else(|| "never ran".into());
    let state = match (task.enabled, task.webhook.enabled) {
        (true, true) => "enabled",
        (true, false) => "webhook disabled",
        (false, _) => "disabled",
    };
    vec![
        task.stem.clone(),
        task.name.clone(),
        schedule,
        last,
        next,
        format!("search: {}", task.search),
        state.to_string(),
    ]
}

fn plain_table() -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table
}

fn write_table(table: &Table, empty: bool, out: &mut impl Write) -> std::io::Result<()> {
    if empty {
        writeln!(out, "  (none)")
    } else {
        writeln!(out, "{table}")
    }
}
