//! `keyhook prune`: delete settled deliveries of old runs, so the state file stays bounded.

use std::io::Write;

use anyhow::anyhow;

use super::{Context, success};
use crate::cli::PruneArgs;
use crate::error::{Error, Result};
use crate::schedule::clock;
use crate::state::State;

pub fn run(context: &Context, args: &PruneArgs, out: &mut impl Write) -> Result {
    if args.removed_tasks {
        give_up_removed(context, out)?;
    }
    if args.removed_webhooks {
        give_up_removed_webhooks(context, out)?;
    }
    match args.older_than {
        Some(age) => prune(context, age, out),
        None => success(),
    }
}

/// Gives up the waiting deliveries of every task whose file is gone from tasks/, each under
/// the task's lock, and says so per task; a task whose file is there (invalid) keeps them.
fn give_up_removed(context: &Context, out: &mut impl Write) -> Result<()> {
    // Without the tasks/ folder every task looks removed (a wrong --config, or a folder of
    // webhooks alone sharing the state): refuse rather than give up every task's deliveries.
    let tasks = context.definitions.dir.join("tasks");
    if !tasks.is_dir() {
        return Err(Error::config(anyhow!(
            "--removed-tasks: {} is not a folder: every task would look removed; point \
             --config (or KEYHOOK_CONFIG) at the folder that holds tasks/",
            tasks.display()
        )));
    }
    let state = context.open_state()?;
    let now = context.clock.now().timestamp();
    let mut any = false;
    for stem in state.tasks_with_due(i64::MAX)? {
        if context.definitions.task_by_stem(&stem).is_some() || state.is_webhook_source(&stem)? {
            continue;
        }
        any = true;
        let file = tasks.join(format!("{stem}.toml"));
        if file.exists() {
            writeln!(
                out,
                "{stem}: {} is there but invalid (`keyhook check` says why): its deliveries \
                 are kept",
                file.display()
            )?;
            continue;
        }
        let Some(_lock) = super::sending::lock_in(context, &state, &stem)? else {
            writeln!(
                out,
                "{stem}: another keyhook process holds the task's lock: its deliveries are kept"
            )?;
            continue;
        };
        let reason = format!("given up: its task's file {} was removed", file.display());
        let given_up = state.give_up(&stem, &reason, now)?;
        writeln!(
            out,
            "{stem}: {} was removed: gave up {given_up} waiting deliveries (now dead; \
             `keyhook log --task {stem}` lists them)",
            file.display()
        )?;
    }
    if !any {
        writeln!(out, "no removed task has waiting deliveries")?;
    }
    Ok(())
}

/// Gives up the waiting deliveries of every webhook URL no file defines any more
/// ([`stranded`](super::webhook_sources::stranded)), each under its source's lock.
fn give_up_removed_webhooks(context: &Context, out: &mut impl Write) -> Result<()> {
    let broken = context.definitions.webhook_problems();
    if let Some(problem) = broken.first() {
        return Err(Error::config(anyhow!(
            "--removed-webhooks: a webhook definition has problems and is not read, and it may \
             be the one that defines them; nothing was given up: fix it first ({problem})"
        )));
    }
    if !context.state_exists()? {
        writeln!(out, "no removed webhook has waiting deliveries")?;
        return Ok(());
    }
    let state = context.open_state()?;
    let now = context.clock.now().timestamp();
    let summaries = state.source_summaries()?;
    let stranded = super::webhook_sources::stranded(&context.definitions, &summaries);
    if stranded.is_empty() {
        writeln!(out, "no removed webhook has waiting deliveries")?;
    }
    for summary in stranded {
        let source = &summary.source;
        let Some(_lock) = super::sending::lock_in(context, &state, source)? else {
            writeln!(
                out,
                "{source}: another keyhook process holds its lock: its deliveries are kept"
            )?;
            continue;
        };
        let why = match super::webhook_sources::defined_url(&context.definitions, summary) {
            Some(_) => format!("its URLs moved in the list, away from {}", summary.url),
            None => "no webhook file defines it".to_string(),
        };
        let reason = format!("given up: {why} (webhook `{}`)", summary.webhook);
        let given_up = state.give_up(source, &reason, now)?;
        writeln!(
            out,
            "{source}: {why}: gave up {given_up} waiting deliveries (now dead; `keyhook log \
             --webhook {}` lists them)",
            super::printable::shell_word(&summary.webhook)
        )?;
    }
    Ok(())
}

fn prune(context: &Context, age: std::time::Duration, out: &mut impl Write) -> Result {
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
