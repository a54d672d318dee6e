//! `keyhook dry-run`: what a search or task matches, and what would be sent. Sends nothing.

use std::io::Write;

use anyhow::anyhow;
use chrono::NaiveDateTime;
use comfy_table::{ContentArrangement, Table, presets};

use super::{Context, success};
use crate::cli::DryRunArgs;
use crate::definitions::task::shown_url;
use crate::definitions::{Search, Task};
use crate::delivery::http::DELIVERY_HEADER;
use crate::delivery::payload;
use crate::error::{Error, Result};
use crate::licenses::database::LicenseDatabase;
use crate::licenses::license_info::{License, RowError};
use crate::licenses::macros::DATE_FORMAT;
use crate::licenses::query::format_value;

/// The columns of the preview table: (heading, LicenseInfo field).
const COLUMNS: [(&str, &str); 7] = [
    ("Key", "ActivationKey"),
    ("Name", "FullName"),
    ("Email", "Email"),
    ("Product", "ProductName"),
    ("Expiry", "ExpiryDate"),
    ("Maintenance", "MaintenanceRenewalDate"),
    ("Order", "OrderDate"),
];

pub fn run(context: &Context, args: &DryRunArgs, out: &mut impl Write) -> Result {
    let definitions = &context.definitions;
    let (task, search) = match definitions.task(&args.name) {
        Some(task) => (Some(task), context.search_of(task)?),
        None => match definitions.search(&args.name) {
            Some(search) => (None, search),
            None => return Err(not_found(context, &args.name)),
        },
    };
    if args.payloads && task.is_none() {
        return Err(Error::config(anyhow!(
            "--payloads needs a task: `{}` is a search, and only a task has a webhook",
            args.name
        )));
    }
    context.ensure_valid(&search.path)?;
    let mut last_run = None;
    if let Some(task) = task {
        context.ensure_valid(&task.path)?;
        let state = super::preview_state(context, task)?;
        // The run refuses a first run whose `first_run_since` lies ahead: so does its preview.
        if let Some(problem) = super::first_run_since_ahead(context, task, state.last_run) {
            return Err(Error::config(anyhow!("{}: {problem}", task.path.display())));
        }
        last_run = Some(super::date_placeholder(context, task, &state));
    }
    let values = super::placeholder_values(context, task, search, last_run)?;
    let mut db = context.license_db()?;
    let fail = |error| super::query_error(search, error);
    if args.count {
        let count = db.count(&search.template, &values).map_err(fail)?;
        writeln!(out, "{count}")?;
        return success();
    }
    if args.json {
        return json(db.as_mut(), search, &values, args.limit, out);
    }
    describe(context, task, search, &values, out)?;
    let limit = args.limit.unwrap_or(u64::MAX);
    let (shown, bad, seen) = first_rows(db.as_mut(), search, &values, limit)?;
    let total = if seen < limit {
        seen
    } else {
        db.count(&search.template, &values).map_err(fail)?
    };
    match (task, args.payloads) {
        (Some(task), true) => payloads(context, task, &shown, out)?,
        _ => table(&shown, out)?,
    }
    bad_rows(&bad, out)?;
    summary(total, seen, out)?;
    success()
}

/// The first `limit` rows the search reaches: licenses, bad rows, and how many in all.
fn first_rows(
    db: &mut dyn LicenseDatabase,
    search: &Search,
    values: &[NaiveDateTime],
    limit: u64,
) -> Result<(Vec<License>, Vec<RowError>, u64)> {
    let (mut shown, mut bad) = (Vec::new(), Vec::new());
    if limit == 0 {
        return Ok((shown, bad, 0));
    }
    let seen = db
        .for_each(&search.template, values, |row| {
            match row {
                Ok(license) => shown.push(license),
                Err(error) => bad.push(error),
            }
            ((shown.len() + bad.len()) as u64) < limit
        })
        .map_err(|error| super::query_error(search, error))?;
    Ok((shown, bad, seen))
}

/// `dry-run --json`: one `LicenseInfo` per line; bad rows are named on standard error, so
/// standard output stays one JSON object a line.
fn json(
    db: &mut dyn LicenseDatabase,
    search: &Search,
    values: &[NaiveDateTime],
    limit: Option<u64>,
    out: &mut impl Write,
) -> Result {
    let (mut written, mut left) = (Ok(()), limit.unwrap_or(u64::MAX));
    if left == 0 {
        return success();
    }
    db.for_each(&search.template, values, |row| {
        written = match row {
            Ok(license) => serde_json::to_writer(&mut *out, &license.info)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out)),
            Err(error) => writeln!(std::io::stderr(), "bad row: {error}"),
        };
        left -= 1;
        written.is_ok() && left > 0
    })
    .map_err(|error| super::query_error(search, error))?;
    written?;
    success()
}

/// The rows that cannot be read as licenses: a run records them as bad and sends nothing.
fn bad_rows(bad: &[RowError], out: &mut impl Write) -> std::io::Result<()> {
    if bad.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{} bad row(s), which a run records as bad (`keyhook log --status bad`) and does not \
         send; fix them in the license database:",
        bad.len()
    )?;
    for error in bad {
        writeln!(out, "  bad row: {error}")?;
    }
    Ok(())
}

fn not_found(context: &Context, name: &str) -> Error {
    let definitions = &context.definitions;
    let broken = definitions
        .broken("tasks", name)
        .or(definitions.broken_search(name));
    if let Some(problem) = broken {
        return Error::config(anyhow!("{problem}"));
    }
    Error::config(anyhow!(
        "no search or task is called `{name}` in {} (searches: {}; tasks: {})",
        definitions.dir_name(),
        crate::definitions::stems_and_names(&definitions.searches, |s| (&s.stem, &s.name)),
        crate::definitions::stems_and_names(&definitions.tasks, |t| (&t.stem, &t.name)),
    ))
}

fn describe(
    context: &Context,
    task: Option<&Task>,
    search: &Search,
    values: &[NaiveDateTime],
    out: &mut impl Write,
) -> std::io::Result<()> {
    if let Some(task) = task {
        writeln!(out, "Task:      {} ({})", task.name, task.path.display())?;
        let webhook = &task.webhook;
        let state = if webhook.enabled && context.definitions.settings.webhooks_enabled {
            ""
        } else {
            " [disabled: nothing would be sent]"
        };
        writeln!(out, "Webhook:   POST {}{state}", shown_url(&webhook.url))?;
        writeln!(out, "Secret:    from {}", webhook.secret.describe())?;
        writeln!(out, "User data: {}", webhook.user_data)?;
    }
    writeln!(
        out,
        "Search:    {} ({})",
        search.name,
        search.path.display()
    )?;
    writeln!(out, "Condition: {}", search.sql.trim())?;
    for (placeholder, value) in search.template.placeholders.iter().zip(values) {
        writeln!(
            out,
            "           {} = {}",
            placeholder.text,
            format_value(value)
        )?;
    }
    let super::Moment { now, zone } = super::moment(context, task);
    let now = now.with_timezone(&zone);
    writeln!(
        out,
        "Now:       {} {} ({zone})",
        now.format(DATE_FORMAT),
        now.format("%:z")
    )?;
    writeln!(out)
}

fn table(licenses: &[License], out: &mut impl Write) -> std::io::Result<()> {
    if licenses.is_empty() {
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        table.set_content_arrangement(ContentArrangement::Dynamic);
    }
    let mut header = vec!["ID"];
    header.extend(COLUMNS.iter().map(|(heading, _)| *heading));
    header.insert(5, "Subscription");
    table.set_header(header);
    for license in licenses {
        let mut row = vec![license.id.to_string()];
        row.extend(
            COLUMNS
                .iter()
                .map(|(_, field)| super::printable::line(&license.info.text(field), 200)),
        );
        row.insert(5, license.subscription_expiry.clone().unwrap_or_default());
        table.add_row(row);
    }
    writeln!(out, "{table}")
}

fn payloads(
    context: &Context,
    task: &Task,
    licenses: &[License],
    out: &mut impl Write,
) -> Result<()> {
    let target = super::sending::target(context, task)?;
    for license in licenses {
        let body = payload::body(&task.name, &task.webhook.user_data, &license.info);
        writeln!(out, "POST {}", shown_url(&task.webhook.url))?;
        writeln!(out, "Content-Type: application/json")?;
        writeln!(out, "Content-Length: {}", body.len())?;
        // Real ids are assigned when a run records its deliveries; the preview signs with this.
        for (name, value) in target.signer.headers(PREVIEW_ID, &body) {
            writeln!(out, "{name}: {value}")?;
        }
        writeln!(
            out,
            "{DELIVERY_HEADER}: {PREVIEW_ID} (the real id is assigned when sent)"
        )?;
        writeln!(out)?;
        out.write_all(&body)?;
        writeln!(out, "\n")?;
    }
    Ok(())
}

/// The delivery id a payload preview is signed with.
const PREVIEW_ID: &str = "msg_preview";

fn summary(total: u64, shown: u64, out: &mut impl Write) -> std::io::Result<()> {
    let noun = if total == 1 {
        "license matches"
    } else {
        "licenses match"
    };
    if shown < total {
        writeln!(out, "{total} {noun} (showing {shown}).")
    } else {
        writeln!(out, "{total} {noun}.")
    }
}
