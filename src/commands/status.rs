//! `keyhook status`: per task, the last run, its counts, and pending and dead deliveries;
//! per event webhook URL, its last delivery, its waiting and failed deliveries, its 410 state.

use std::io::Write;

use comfy_table::{Table, presets};

use super::sending::local_time;
use super::webhook_sources::source_name;
use super::{Context, success};
use crate::definitions::Task;
use crate::definitions::task::shown_url;
use crate::error::Result;
use crate::state::State;
use crate::state::runs::{RunSummary, TaskState};
use crate::state::sources::SourceSummary;

pub fn run(context: &Context, out: &mut impl Write) -> Result {
    if !context.state_exists()? {
        writeln!(
            out,
            "no task has run yet ({} does not exist)",
            context.state_path.display()
        )?;
        return success();
    }
    let state = context.open_state()?;
    let runs = state.latest_runs()?;
    let shared = state.is_shared();
    let skips = state.latest_skips()?;
    let states = state.task_states()?;
    writeln!(out, "{}", tasks_table(context, &runs, &states, shared))?;
    super::say_broken_files(context, out)?;
    older_waiting(context, &state, &runs, out)?;
    webhooks(context, &state, out)?;
    for skip in &skips {
        if context.definitions.task_by_stem(&skip.task).is_none() {
            continue;
        }
        writeln!(
            out,
            "{}: skipped the slot at {} ({}); nothing was sent for it",
            skip.name,
            local_time(context, skip.slot.unwrap_or(skip.started_at)),
            skip.skipped.as_deref().unwrap_or("missed")
        )?;
    }
    success()
}

/// One row per task: its last run's counts and its webhook's state; with a shared state, the
/// host that ran it.
fn tasks_table(
    context: &Context,
    runs: &[RunSummary],
    states: &[(String, TaskState)],
    shared: bool,
) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    let mut header = vec![
        "Task",
        "Last run",
        "Matched",
        "Delivered",
        "Pending",
        "Failed",
        "Dead",
        "Bad rows",
        "Webhook",
    ];
    if shared {
        // Several hosts share the state: which one ran each task last.
        header.insert(2, "Host");
    }
    table.set_header(header);
    for task in &context.definitions.tasks {
        let run = runs.iter().find(|run| run.task == task.stem);
        let state = states
            .iter()
            .find(|(stem, _)| *stem == task.stem)
            .map(|(_, state)| state);
        let gone = state.and_then(|state| state.webhook_gone);
        let last_run = state.and_then(|state| state.last_run);
        let mut row = task_row(context, task, run, gone, last_run);
        if shared {
            row.insert(2, run.and_then(|run| run.host.clone()).unwrap_or_default());
        }
        table.add_row(row);
    }
    table
}

/// A task's row: its last run (if any) and whether its webhook is enabled, disabled in the
/// task file, or disabled since a 410 at `gone`. A run `prune` deleted is still the task's
/// `last_run`, shown without counts.
fn task_row(
    context: &Context,
    task: &Task,
    run: Option<&RunSummary>,
    gone: Option<i64>,
    last_run: Option<i64>,
) -> Vec<String> {
    let webhook = match (gone, task.webhook.enabled) {
        (Some(at), _) => format!("DISABLED: 410 Gone at {}", local_time(context, at)),
        (None, false) => "disabled in task file".into(),
        (None, true) => "enabled".into(),
    };
    let count = |pick: fn(&RunSummary) -> i64| run.map(pick).unwrap_or(0).to_string();
    vec![
        task.name.clone(),
        match (run, last_run) {
            (Some(run), _) => local_time(context, run.started_at),
            (None, Some(at)) => format!("{} (pruned)", local_time(context, at)),
            (None, None) => "never".into(),
        },
        count(|run| run.matched),
        count(|run| run.delivered),
        count(|run| run.pending),
        count(|run| run.failed),
        count(|run| run.dead),
        count(|run| run.bad_rows),
        webhook,
    ]
}

/// The table counts each task's last run; deliveries of earlier runs that still wait (a receiver
/// down, or disabled by a 410, over several runs) are said below it.
fn older_waiting(
    context: &Context,
    state: &State,
    runs: &[RunSummary],
    out: &mut impl Write,
) -> Result<()> {
    for (stem, waiting) in state.waiting_by_task()? {
        let Some(task) = context.definitions.task_by_stem(&stem) else {
            // A removed task's (an event webhook's source is said by its own section).
            if !state.is_webhook_source(&stem)? {
                writeln!(
                    out,
                    "{stem}: {waiting} deliveries wait, but tasks/{stem}.toml is gone or \
                     invalid; restore or fix it, or give them up with `keyhook prune \
                     --removed-tasks`"
                )?;
            }
            continue;
        };
        let last = runs
            .iter()
            .find(|run| run.task == stem)
            .map_or(0, |run| run.pending + run.failed);
        if waiting > last {
            writeln!(
                out,
                "{}: {waiting} deliveries wait in all (pending or failed), {} of them from \
                 earlier runs; `keyhook log --task {stem}` lists them",
                task.name,
                waiting - last
            )?;
        }
    }
    Ok(())
}

/// One row per URL of each event webhook, beside the tasks; nothing when there are none.
fn webhooks(context: &Context, state: &State, out: &mut impl Write) -> Result<()> {
    let webhooks = &context.definitions.webhooks;
    let summaries = state.source_summaries()?;
    for summary in super::webhook_sources::stranded(&context.definitions, &summaries) {
        writeln!(
            out,
            "{}",
            super::webhook_sources::stranded_words(&context.definitions, summary)
        )?;
    }
    if webhooks.is_empty() {
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "Webhook",
        "URL",
        "Last delivered",
        "Pending",
        "Failed",
        "Dead",
        "State",
    ]);
    for webhook in webhooks {
        for (index, url) in webhook.urls.iter().enumerate() {
            let source = source_name(webhook, index);
            let known = summaries.iter().find(|s| s.source == source);
            let summary = known.cloned().unwrap_or_default();
            let state = match (summary.gone, webhook.enabled) {
                (Some(at), _) => format!("DISABLED: 410 Gone at {}", local_time(context, at)),
                (None, false) => "inactive".into(),
                (None, true) => format!("active ({})", webhook.environment),
            };
            table.add_row([
                source,
                shown_url(url),
                last_delivered(context, &summary),
                summary.pending.to_string(),
                summary.failed.to_string(),
                summary.dead.to_string(),
                state,
            ]);
        }
    }
    writeln!(out, "{table}")?;
    Ok(())
}

fn last_delivered(context: &Context, summary: &SourceSummary) -> String {
    summary
        .last_delivered
        .map_or_else(|| "never".into(), |at| local_time(context, at))
}
