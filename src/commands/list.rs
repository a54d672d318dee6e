//! `keyhook list`: the searches and tasks found, one line each.

use std::io::Write;

use comfy_table::{Table, presets};

use super::{Context, success};
use crate::error::Result;

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
    let mut tasks = plain_table();
    for task in &definitions.tasks {
        let schedule = match &task.at {
            Some(at) => format!("{} at {at}", task.schedule),
            None => task.schedule.clone(),
        };
        let state = match (task.enabled, task.webhook.enabled) {
            (true, true) => "enabled",
            (true, false) => "webhook disabled",
            (false, _) => "disabled",
        };
        tasks.add_row(vec![
            task.stem.clone(),
            task.name.clone(),
            schedule,
            format!("search: {}", task.search),
            state.to_string(),
        ]);
    }
    write_table(&tasks, definitions.tasks.is_empty(), out)?;
    if !definitions.problems.is_empty() {
        writeln!(
            out,
            "{} definition file(s) have problems; run `keyhook check` to see them.",
            definitions.problems.len()
        )?;
    }
    success()
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
