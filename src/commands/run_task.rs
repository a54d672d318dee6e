//! `keyhook run-task`: run one task now, whatever its schedule.

use std::io::{IsTerminal, Write};

use anyhow::anyhow;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::{Context, dry_run::placeholder_values};
use crate::cli::RunTaskArgs;
use crate::definitions::Task;
use crate::delivery::run::{self, Plan, Report, Sent};
use crate::error::{Error, Exit, Result};

/// One failed delivery, for the `--json` summary.
#[derive(Serialize)]
pub(super) struct Failure {
    license_id: i64,
    activation_key: String,
    delivery_id: String,
    status: Option<u16>,
    error: String,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    report: &'a Report,
    failures: &'a [Failure],
}

pub fn run(context: &Context, args: &RunTaskArgs, out: &mut impl Write) -> Result {
    let task = context.task(&args.name)?;
    let (report, failures) = execute(context, task, !args.json, out)?;
    if args.json {
        serde_json::to_writer_pretty(
            &mut *out,
            &JsonReport {
                report: &report,
                failures: &failures,
            },
        )
        .map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", summary(&report))?;
    }
    Ok(if report.failed > 0 {
        Exit::DeliveryFailed
    } else {
        Exit::Success
    })
}

/// Validates everything the task needs, then runs it; failures are printed as they happen
/// when `print_failures` is set.
pub(super) fn execute(
    context: &Context,
    task: &Task,
    print_failures: bool,
    out: &mut impl Write,
) -> Result<(Report, Vec<Failure>)> {
    let search = context.search_of(task)?;
    context.ensure_valid(&task.path)?;
    context.ensure_valid(&search.path)?;
    let secret = task.webhook.secret.resolve().map_err(|error| {
        Error::config(anyhow!(
            "task `{}` ({}): [webhook]: {error}",
            task.name,
            task.path.display()
        ))
    })?;
    let values = placeholder_values(context, Some(task), search)?;
    let mut db = context.license_db()?;
    let send = task.webhook.enabled && context.definitions.settings.webhooks_enabled;
    let progress = progress_bar(&mut db, search, &values, send);
    let plan = Plan {
        task,
        search,
        secret,
        values,
        send,
    };
    let mut failures = Vec::new();
    let mut write_error = Ok(());
    let report = run::execute(&mut db, &plan, |sent: &Sent| {
        progress.inc(1);
        let Some(error) = &sent.attempt.error else {
            return;
        };
        let key = sent.license.info.text("ActivationKey");
        if print_failures {
            let line = format!("failed: license {} ({key}): {error}", sent.license.id);
            if progress.is_hidden() {
                if write_error.is_ok() {
                    write_error = writeln!(out, "{line}");
                }
            } else {
                progress.println(line);
            }
        }
        failures.push(Failure {
            license_id: sent.license.id,
            activation_key: key,
            delivery_id: sent.delivery_id.to_string(),
            status: sent.attempt.status,
            error: error.clone(),
        });
    })
    .map_err(|error| super::query_error(search, error))?;
    progress.finish_and_clear();
    write_error?;
    if !send {
        let why = if task.webhook.enabled {
            format!(
                "webhooks_enabled = false in {}",
                crate::definitions::settings::FILE
            )
        } else {
            format!("[webhook] enabled = false in {}", task.path.display())
        };
        writeln!(
            out,
            "{}: webhook disabled ({why}); nothing was sent",
            task.name
        )?;
    }
    Ok((report, failures))
}

/// A progress bar on a terminal; hidden (and free) otherwise, so cron mails plain lines.
fn progress_bar(
    db: &mut crate::licenses::query::LicenseDb,
    search: &crate::definitions::Search,
    values: &[chrono::NaiveDateTime],
    send: bool,
) -> ProgressBar {
    if !send || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total = db.count(&search.template, values).unwrap_or(0);
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} sent, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// `Upcoming Renewals: 37 matched, 36 delivered, 1 failed in 0.42 s`.
pub fn summary(report: &Report) -> String {
    format!(
        "{}: {} matched, {} delivered, {} failed in {:.2} s",
        report.task,
        report.matched,
        report.delivered,
        report.failed,
        report.elapsed.as_secs_f64()
    )
}
