//! `keyhook log`: the delivery log, newest first.

use std::io::Write;

use anyhow::anyhow;
use comfy_table::{Table, presets};

use super::sending::local_time;
use super::{Context, printable, success};
use crate::cli::LogArgs;
use crate::definitions::settings::parse_duration;
use crate::error::{Error, Result};
use crate::state::deliveries::{LogEntry, LogFilter, Status};

pub fn run(context: &Context, args: &LogArgs, out: &mut impl Write) -> Result {
    let filter = filter(context, args)?;
    if !context.state_exists()? {
        writeln!(
            out,
            "no deliveries yet ({} does not exist)",
            context.state_path.display()
        )?;
        return success();
    }
    let state = context.state()?;
    let entries = state.log(&filter).map_err(Error::runtime)?;
    if args.json {
        for entry in &entries {
            let mut json = serde_json::to_value(entry).map_err(|e| Error::runtime(anyhow!(e)))?;
            if args.attempts {
                let attempts = state.attempts(&entry.id).map_err(Error::runtime)?;
                json["attempts"] =
                    serde_json::to_value(attempts).map_err(|e| Error::runtime(anyhow!(e)))?;
            }
            writeln!(out, "{json}")?;
        }
        return success();
    }
    if entries.is_empty() {
        writeln!(out, "no deliveries match")?;
        return success();
    }
    writeln!(out, "{}", table(context, &entries))?;
    if args.attempts {
        for entry in &entries {
            writeln!(
                out,
                "\n{} ({}, {}):",
                entry.id,
                printable::short(&entry.activation_key),
                entry.status.as_str()
            )?;
            for attempt in state.attempts(&entry.id).map_err(Error::runtime)? {
                let outcome = attempt
                    .error
                    .map(|error| printable::short(&error))
                    .unwrap_or_else(|| format!("HTTP {}", attempt.status.unwrap_or(0)));
                writeln!(
                    out,
                    "  {}  {:>5} ms  {outcome}",
                    local_time(context, attempt.at_ms / 1000),
                    attempt.duration_ms
                )?;
            }
        }
    }
    success()
}

fn filter(context: &Context, args: &LogArgs) -> Result<LogFilter> {
    let task = match &args.task {
        Some(name) => Some(context.task(name)?.stem.clone()),
        None => None,
    };
    let since = match &args.since {
        Some(text) => {
            let age = parse_duration(text).map_err(|e| Error::config(anyhow!("--since: {e}")))?;
            Some(context.clock.now().timestamp() - age.as_secs() as i64)
        }
        None => None,
    };
    Ok(LogFilter {
        task,
        status: args.status.as_deref().and_then(Status::parse),
        since,
        limit: Some(args.limit),
    })
}

fn table(context: &Context, entries: &[LogEntry]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "Delivery",
        "Task",
        "License",
        "Status",
        "Tries",
        "Created",
        "Next try",
        "Last error",
    ]);
    for entry in entries {
        table.add_row([
            entry.id.clone(),
            entry.task.clone(),
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
            entry
                .last_error
                .as_deref()
                .map(printable::short)
                .unwrap_or_default(),
        ]);
    }
    table
}
