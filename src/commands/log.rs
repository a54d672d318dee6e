//! `keyhook log`: the delivery log, newest first.

use std::io::Write;

use anyhow::anyhow;
use comfy_table::{Table, presets};

use super::sending::local_time;
use super::{Context, printable, success};
use crate::cli::LogArgs;
use crate::error::{Error, Result};
use crate::events::names;
use crate::schedule::clock;
use crate::state::State;
use crate::state::deliveries::{BadRowEntry, LogEntry, LogFilter, Status};

pub fn run(context: &Context, args: &LogArgs, out: &mut impl Write) -> Result {
    let filter = filter(context, args)?;
    if !context.state_exists()? {
        if let Some(key) = &args.task {
            // No log to hold a removed task's stem: a task of the files, or the usual error.
            context.task(key)?;
        }
        if let Some(name) = &args.event {
            known_event(context, name)?;
        }
        let note = format!(
            "no deliveries yet ({} does not exist)",
            context.state_path.display()
        );
        // `--json` prints one object per delivery, so none at all here; the note is not one.
        match args.json {
            true => eprintln!("{note}"),
            false => writeln!(out, "{note}")?,
        }
        return success();
    }
    let state = context.open_state()?;
    let mut filter = filter;
    if let Some(key) = &args.task {
        filter.task = Some(task_stem(context, &state, key)?);
    }
    if let Some(key) = &args.webhook {
        filter.webhook = Some(webhook_name(context, &state, key)?);
    }
    let (entries, bad) = read(&state, &filter, args.status.as_deref())?;
    if entries.is_empty() && bad.is_empty() {
        unknown_webhook(context, &state, &filter)?;
        unknown_event(context, &state, &filter)?;
        if let Some(key) = &args.task {
            // Neither a task of the files nor one the log holds: the usual error.
            context.task(key)?;
        }
    }
    if args.json {
        print_json(&state, &entries, &bad, args.attempts, out)?;
        return success();
    }
    if entries.is_empty() && bad.is_empty() {
        writeln!(out, "no deliveries match")?;
        return success();
    }
    if !bad.is_empty() {
        writeln!(out, "{BAD_ROWS}\n{}", bad_table(context, &bad))?;
    }
    if entries.is_empty() {
        return success();
    }
    writeln!(out, "{}", table(context, &entries, state.is_shared()))?;
    if args.attempts {
        print_attempts(context, &state, &entries, out)?;
    }
    success()
}

/// One JSON object per line: the bad rows, then the deliveries (with their attempts).
fn print_json(
    state: &State,
    entries: &[LogEntry],
    bad: &[BadRowEntry],
    attempts: bool,
    out: &mut impl Write,
) -> Result<()> {
    for row in bad {
        let json = serde_json::to_string(row).map_err(|e| Error::runtime(anyhow!(e)))?;
        writeln!(out, "{json}")?;
    }
    for entry in entries {
        let mut json = serde_json::to_value(entry).map_err(|e| Error::runtime(anyhow!(e)))?;
        if attempts {
            let attempts = state.attempts(&entry.id)?;
            json["attempts"] =
                serde_json::to_value(attempts).map_err(|e| Error::runtime(anyhow!(e)))?;
        }
        writeln!(out, "{json}")?;
    }
    Ok(())
}

/// Each delivery's attempts, under the table.
fn print_attempts(
    context: &Context,
    state: &State,
    entries: &[LogEntry],
    out: &mut impl Write,
) -> Result<()> {
    for entry in entries {
        writeln!(
            out,
            "\n{} ({}, {}):",
            entry.id,
            printable::short(&entry.activation_key),
            entry.status.as_str()
        )?;
        for attempt in state.attempts(&entry.id)? {
            let outcome = attempt
                .error
                .map(|error| printable::short(&error))
                .unwrap_or_else(|| format!("HTTP {}", attempt.status.unwrap_or(0)));
            let host = attempt
                .host
                .map(|host| format!("  from {host}"))
                .unwrap_or_default();
            writeln!(
                out,
                "  {}  {:>5} ms  {outcome}{host}",
                local_time(context, attempt.at_ms / 1000),
                attempt.duration_ms
            )?;
        }
    }
    Ok(())
}

fn filter(context: &Context, args: &LogArgs) -> Result<LogFilter> {
    // `--task` is settled once the state is open ([`task_stem`]): a removed task's stem is
    // found by what the log holds.
    let task = None;
    let since = match args.since {
        Some(age) => Some(
            clock::before(context.clock.now(), age)
                .ok_or_else(|| Error::config(anyhow!("--since: reaches before any time")))?
                .timestamp(),
        ),
        None => None,
    };
    Ok(LogFilter {
        task,
        status: args.status.as_deref().and_then(Status::parse),
        since,
        limit: Some(args.limit),
        // By file stem or name, as everywhere; a name no file has any more is taken as it is:
        // a removed webhook's deliveries stay in the log.
        webhook: args.webhook.as_ref().map(|key| {
            context
                .definitions
                .webhook(key)
                .map_or_else(|| key.clone(), |webhook| webhook.name.clone())
        }),
        // In any of its names (QLM's `license_released`, an alias) as the log keeps it: by
        // its canonical name. One the catalog no longer has is taken as it is.
        event: args.event.as_ref().map(|name| {
            let name = name.trim();
            names::canonical(name, &context.definitions.catalog).unwrap_or_else(|| name.to_string())
        }),
    })
}

/// `--event` naming no event of the catalog: a configuration error naming the closest ones,
/// as in a webhook's `events`, rather than "no deliveries match".
fn known_event(context: &Context, name: &str) -> Result<()> {
    let catalog = &context.definitions.catalog;
    if names::canonical(name.trim(), catalog).is_some() {
        return Ok(());
    }
    match names::resolve(&[name.to_string()], catalog) {
        Err(error) => Err(Error::config(anyhow!("--event: {error}"))),
        Ok(_) => Err(Error::config(anyhow!(
            "--event: `{}` is a pattern; --event takes one event's name (`keyhook events \
             catalog` lists them)",
            name.trim()
        ))),
    }
}

/// [`known_event`], unless the log holds deliveries of that type (an event since removed
/// from the catalog).
fn unknown_event(context: &Context, state: &State, filter: &LogFilter) -> Result<()> {
    let Some(event) = &filter.event else {
        return Ok(());
    };
    let any = LogFilter {
        event: Some(event.clone()),
        limit: Some(1),
        ..LogFilter::default()
    };
    if !state.log(&any)?.is_empty() {
        return Ok(());
    }
    known_event(context, event)
}

/// The stem `--task KEY` stands for: a task file's stem; else a stem the log holds (a removed
/// task's, even if another task is now called that); else a task's `name`; else KEY as it is
/// (`run` then refuses it as an unknown task if the log holds nothing under it either).
fn task_stem(context: &Context, state: &State, key: &str) -> Result<String> {
    let definitions = &context.definitions;
    let key = key.trim();
    let key = key.strip_suffix(".toml").unwrap_or(key);
    if let Some(task) = definitions.task_by_stem(key) {
        return Ok(task.stem.clone());
    }
    let held = LogFilter {
        task: Some(key.to_string()),
        limit: Some(1),
        ..LogFilter::default()
    };
    // A task's deliveries: an event webhook called like a task's `name` keeps its own under
    // that name, and they are not the task's.
    let holds_task = state
        .log(&held)?
        .first()
        .is_some_and(|entry| entry.event_type.is_none());
    if holds_task || !state.bad_rows(&held)?.is_empty() {
        return Ok(key.to_string());
    }
    Ok(definitions
        .task(key)
        .map_or_else(|| key.to_string(), |task| task.stem.clone()))
}

/// The webhook `--webhook KEY` stands for: a webhook called KEY; else a name the log holds
/// (a renamed or removed webhook's, even if its old file now defines another name); else the
/// webhook of the file KEY; else KEY as it is.
fn webhook_name(context: &Context, state: &State, key: &str) -> Result<String> {
    let definitions = &context.definitions;
    let key = key.trim();
    if let Some(webhook) = definitions
        .webhooks
        .iter()
        .find(|webhook| crate::definitions::same_name(&webhook.name, key))
    {
        return Ok(webhook.name.clone());
    }
    let held = LogFilter {
        webhook: Some(key.to_string()),
        limit: Some(1),
        ..LogFilter::default()
    };
    if !state.log(&held)?.is_empty() {
        return Ok(key.to_string());
    }
    Ok(definitions
        .webhook(key)
        .map_or_else(|| key.to_string(), |webhook| webhook.name.clone()))
}

/// `--webhook` naming no webhook, of the files or of the log (whatever the other filters): a
/// configuration error, as an unknown `--task` is, rather than "no deliveries match". A
/// webhook the log does not hold and whose file is broken is said so.
fn unknown_webhook(context: &Context, state: &State, filter: &LogFilter) -> Result<()> {
    let Some(key) = &filter.webhook else {
        return Ok(());
    };
    let definitions = &context.definitions;
    let any = LogFilter {
        webhook: Some(key.clone()),
        limit: Some(1),
        ..LogFilter::default()
    };
    if definitions.webhook(key).is_some() || !state.log(&any)?.is_empty() {
        return Ok(());
    }
    if let Some(problem) = definitions.broken("webhooks", key) {
        return Err(Error::config(anyhow!("{problem}")));
    }
    Err(Error::config(anyhow!(
        "no webhook is called `{key}` in {} (webhooks: {}), and the log holds no delivery of one",
        definitions.dir.join("webhooks").display(),
        crate::definitions::names(&definitions.webhooks, |w| &w.name)
    )))
}

const BAD_ROWS: &str =
    "License rows that could not be read (not sent; fix them in the license database):";

/// The deliveries and the bad rows that `--status` asks for (`bad`: only bad rows).
fn read(
    state: &State,
    filter: &LogFilter,
    status: Option<&str>,
) -> Result<(Vec<LogEntry>, Vec<BadRowEntry>)> {
    let only_bad = status == Some("bad");
    let entries = if only_bad {
        Vec::new()
    } else {
        state.log(filter)?
    };
    let about_events = filter.webhook.is_some() || filter.event.is_some();
    let bad = if (status.is_none() || only_bad) && !about_events {
        state.bad_rows(filter)?
    } else {
        Vec::new()
    };
    Ok((entries, bad))
}

fn bad_table(context: &Context, rows: &[BadRowEntry]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(["Task", "Run", "License", "Status", "Found", "Why"]);
    for row in rows {
        table.add_row([
            row.task.clone(),
            row.run_id.to_string(),
            format!("{} {}", row.license_id, row.activation_key),
            row.status.to_string(),
            local_time(context, row.created_at),
            row.error.clone(),
        ]);
    }
    table
}

/// The deliveries; with a shared state, which host made each one's last attempt.
fn table(context: &Context, entries: &[LogEntry], shared: bool) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    let mut header = vec![
        "Delivery",
        "Task",
        "License",
        "Status",
        "Tries",
        "Created",
        "Next try",
        "Last error",
    ];
    if shared {
        header.push("Host");
    }
    table.set_header(header);
    for entry in entries {
        let mut row = vec![
            entry.id.clone(),
            match &entry.event_type {
                Some(event) => format!("{} {event}", entry.task),
                None => entry.task.clone(),
            },
            format!(
                "{} {}",
                entry.license_id,
                printable::short(&entry.activation_key)
            ),
            entry.status.as_str().to_string(),
            entry.attempts.to_string(),
            local_time(context, entry.created_at),
            entry
                .next_attempt_at
                .map(|at| local_time(context, at))
                .unwrap_or_default(),
            last_column(entry),
        ];
        if shared {
            row.push(entry.host.clone().unwrap_or_default());
        }
        table.add_row(row);
    }
    table
}

/// The last error, or for an event delivery held back by an earlier one, why it waits.
fn last_column(entry: &LogEntry) -> String {
    if let Some(earlier) = &entry.waiting_for {
        let entity = entry.order_key.as_deref().unwrap_or_default();
        return format!("waiting for {earlier} (earlier event of the same {entity})");
    }
    entry
        .last_error
        .as_deref()
        .map(printable::short)
        .unwrap_or_default()
}
