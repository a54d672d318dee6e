//! `keyhook check`: every definition file, placeholder, SQL statement and secret, validated
//! by the same code a run uses; every problem printed, not just the first.

use std::io::Write;

use super::license_outbox::LicenseOutbox;
use super::{Context, sending, webhook_sources};
use super::{moment, placeholder_values};
use crate::definitions::secret::SecretSource;
use crate::definitions::tls::TlsFiles;
use crate::definitions::{Problem, Task, settings};
use crate::error::{Exit, Result};
use crate::licenses::placeholders;

pub fn run(context: &Context, out: &mut impl Write) -> Result {
    let definitions = &context.definitions;
    let mut problems: Vec<Problem> = definitions.problems.clone();
    problems.extend(search_problems(context));
    problems.extend(task_problems(context));
    problems.extend(webhook_problems(context));
    problems.extend(bad_rows(context));
    problems.extend(super::events::check_problems(context));
    problems.extend(outbox_problem(context));
    if let Some(problem) = &context.url_problems.state {
        problems.push(Problem {
            file: context.state_path.clone(),
            message: problem.clone(),
        });
    }
    if let Err(error) = definitions.settings.tls.load() {
        problems.push(Problem {
            file: definitions.dir.join(settings::FILE),
            message: error.to_string(),
        });
    }
    problems.sort_by(|a, b| a.file.cmp(&b.file));
    for problem in &problems {
        writeln!(out, "error: {problem}")?;
    }
    for task in &definitions.tasks {
        for warning in warnings(task) {
            writeln!(out, "warning: {}: {warning}", task.path.display())?;
        }
    }
    for (file, warning) in webhook_warnings(context) {
        writeln!(out, "warning: {}: {warning}", file.display())?;
    }
    for (file, warning) in gone_warnings(context) {
        writeln!(out, "warning: {}: {warning}", file.display())?;
    }
    for folder in ["searches", "tasks", "webhooks"] {
        for (path, why) in crate::definitions::not_read(&definitions.dir.join(folder)) {
            writeln!(out, "warning: {}: {why}", path.display())?;
        }
    }
    if let Some(warning) = role_warning(context) {
        writeln!(out, "warning: {warning}")?;
    }
    if let Some(warning) = date_warning(context) {
        writeln!(out, "warning: {}: {warning}", context.db_path.display())?;
    }
    let (searches, tasks) = (definitions.searches.len(), definitions.tasks.len());
    if problems.is_empty() {
        match definitions.webhooks.len() {
            0 => writeln!(out, "ok: {searches} searches and {tasks} tasks are valid")?,
            webhooks => writeln!(
                out,
                "ok: {searches} searches, {tasks} tasks and {webhooks} webhooks are valid"
            )?,
        }
        return Ok(Exit::Success);
    }
    writeln!(out, "{} problem(s) found", problems.len())?;
    Ok(Exit::Config)
}

/// Active webhooks (in the runner's environment) while events are not installed: every
/// `dispatch`, `watch` and `run-due` would stop on it, so `check` says it too.
fn outbox_problem(context: &Context) -> Option<Problem> {
    let environment = context.environment();
    let now = context.clock.now();
    let sources = webhook_sources::load(&context.definitions, environment, now).ok()?;
    let first = sources.first()?;
    let why = LicenseOutbox::not_installed_problem(context)?;
    let webhook = context.definitions.webhook(&first.route.webhook);
    Some(Problem {
        file: webhook.map_or_else(|| context.definitions.dir.clone(), |w| w.path.clone()),
        message: format!(
            "{why} ({} URL(s) of environment `{environment}` subscribe to events; dispatch and \
             watch stop on it, and run-due says it on every call, until then)",
            sources.len()
        ),
    })
}

/// Each search's SQL against the database, and its placeholders computed for now.
fn search_problems(context: &Context) -> Vec<Problem> {
    let definitions = &context.definitions;
    let mut problems = Vec::new();
    for search in &definitions.searches {
        let now = context.clock.now().timestamp();
        if let Err(error) = placeholders::values(&search.template, moment(context, None), Some(now))
        {
            problems.push(Problem {
                file: search.path.clone(),
                message: format!("field `sql`: {error}"),
            });
        }
    }
    match context.license_db() {
        Ok(mut db) => {
            for search in &definitions.searches {
                if let Err(error) = db.check(&search.template) {
                    problems.push(Problem {
                        file: search.path.clone(),
                        message: format!("field `sql`: {error}"),
                    });
                }
            }
        }
        Err(error) => problems.push(Problem {
            file: context.db_path.clone(),
            message: format!("searches cannot be checked: {error}"),
        }),
    }
    problems
}

/// A license database on a server whose role could write the license table: the checks on a
/// search are a second line, a SELECT-only role the first.
fn role_warning(context: &Context) -> Option<String> {
    let mut db = context.license_db().ok()?;
    match db.write_warning() {
        Ok(warning) => warning,
        Err(error) => Some(format!("could not check what the role may do: {error}")),
    }
}

/// License dates kept in more than one shape, which placeholders cannot all compare with.
fn date_warning(context: &Context) -> Option<String> {
    let mut db = context.license_db().ok()?;
    let searches: Vec<&str> = context
        .definitions
        .searches
        .iter()
        .map(|search| search.template.sql.as_str())
        .collect();
    match db.date_warning(&searches) {
        Ok(warning) => warning,
        Err(error) => Some(format!("could not check how dates are stored: {error}")),
    }
}

/// What a run of each task resolves before sending: its secrets, signer and retry policy,
/// and its search's placeholders in the task's own zone, with its `[date]`.
fn task_problems(context: &Context) -> Vec<Problem> {
    let mut problems = Vec::new();
    // What the state says of each task, as `run-due` reads it (a state ahead of now).
    let states = match context.state_exists() {
        Ok(true) => context
            .open_state()
            .and_then(|state| Ok(state.task_states()?))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    for task in &context.definitions.tasks {
        let problem = |message: String| Problem {
            file: task.path.clone(),
            message,
        };
        if let Err(error) = sending::resolve_target(context, task) {
            problems.push(problem(format!("[webhook]: {error}")));
        }
        let state = states.iter().find(|(stem, _)| *stem == task.stem);
        if let Some(ahead) = state.and_then(|(_, state)| super::future_state(context, task, state))
        {
            problems.push(problem(ahead));
        }
        let last_run = state.and_then(|(_, state)| state.last_run);
        if let Some(ahead) = super::first_run_since_ahead(context, task, last_run) {
            problems.push(problem(ahead));
        }
        let Some(search) = context.definitions.search_of(task) else {
            continue;
        };
        if task.timezone.is_none() {
            continue; // the search's own check covered the global zone
        }
        let last_run = super::last_run_for_preview(context, task).ok().flatten();
        if let Err(error) =
            placeholders::values(&search.template, moment(context, Some(task)), last_run)
        {
            problems.push(problem(format!(
                "search `{}` in this task's zone: {error}",
                search.name
            )));
        }
    }
    problems
}

/// Every license row that a task's search reaches now and that a run could not read (and so
/// would record as bad and not send), one problem each, against the task's file.
fn bad_rows(context: &Context) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Ok(mut db) = context.license_db() else {
        return problems;
    };
    for task in &context.definitions.tasks {
        let Ok(search) = context.search_of(task) else {
            continue;
        };
        let last_run = super::last_run_for_preview(context, task).ok().flatten();
        let Ok(values) = placeholder_values(context, Some(task), search, last_run) else {
            continue;
        };
        let ran = db.for_each(&search.template, &values, |row| {
            if let Err(error) = row {
                problems.push(Problem {
                    file: task.path.clone(),
                    message: format!(
                        "search `{}` reaches a license row a run cannot send: {error}",
                        search.name
                    ),
                });
            }
            true
        });
        // What stops the search stops the run too: a deadline, an error SQLite meets only
        // while stepping (malformed JSON, an integer overflow, a bound on memory).
        if let Err(error) = ran {
            problems.push(Problem {
                file: task.path.clone(),
                message: format!(
                    "search `{}` ({}) fails when run now, as a run would: {error}",
                    search.name,
                    search.path.display()
                ),
            });
        }
    }
    problems
}

/// What is allowed but unwise in a task: secrets others can read, signatures sent in clear.
fn warnings(task: &Task) -> Vec<String> {
    let webhook = &task.webhook;
    let urls = [("[webhook] url", webhook.url.as_str())];
    let mut warnings = endpoint_warnings(&task.path, &webhook.secret, &webhook.tls, &urls);
    if task.schedule.moves_from_day_to_day() {
        warnings.push(format!(
            "field `schedule`: `{}` does not divide a day, so its runs land at other times each \
             day (counted from midnight of 1970-01-01); set `start` to anchor them",
            task.schedule.describe()
        ));
    }
    warnings
}

/// Tasks whose webhook a 410 Gone disabled (in the state, when there is one): valid files,
/// but every run and retry of theirs sends nothing (exit 1) until `keyhook enable`.
fn gone_warnings(context: &Context) -> Vec<(std::path::PathBuf, String)> {
    if !context.state_exists().unwrap_or(false) {
        return Vec::new();
    }
    let Ok(state) = context.open_state() else {
        // An unusable state is every other command's error, said there.
        return Vec::new();
    };
    let Ok(states) = state.task_states() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (stem, task_state) in states {
        let (Some(gone), Some(task)) = (
            task_state.webhook_gone,
            context.definitions.task_by_stem(&stem),
        ) else {
            continue;
        };
        let since = super::sending::local_time(context, gone);
        found.push((
            task.path.clone(),
            format!(
                "webhook DISABLED since {since}, when its receiver answered 410 Gone: runs and \
                 retries send nothing until `keyhook enable {}`",
                super::printable::shell_word(&stem)
            ),
        ));
    }
    found
}

/// [`warnings`] for each webhook file, and once for QLM's `[events]` (they share a secret).
fn webhook_warnings(context: &Context) -> Vec<(std::path::PathBuf, String)> {
    let mut found: Vec<(std::path::PathBuf, String)> = Vec::new();
    for webhook in &context.definitions.webhooks {
        let urls: Vec<(&str, &str)> = webhook.urls.iter().map(|u| ("url", u.as_str())).collect();
        let endpoint = &webhook.endpoint;
        for warning in endpoint_warnings(&webhook.path, &endpoint.secret, &endpoint.tls, &urls) {
            let warning = (webhook.path.clone(), warning);
            if !found.contains(&warning) {
                found.push(warning);
            }
        }
    }
    found
}

fn endpoint_warnings(
    file: &std::path::Path,
    secret: &SecretSource,
    tls: &TlsFiles,
    urls: &[(&str, &str)],
) -> Vec<String> {
    let mut warnings = Vec::new();
    if matches!(secret, SecretSource::Literal(_)) && readable_by_others(file) {
        warnings.push(
            "holds a literal `secret` and other users can read the file; chmod 600 it, or use \
             secret_env, secret_file or secret_credential"
                .to_string(),
        );
    }
    if let Some(client) = &tls.client
        && readable_by_others(&client.key)
    {
        warnings.push(format!(
            "other users can read client_key {}; chmod 600 it",
            client.key.display()
        ));
    }
    for (field, url) in urls {
        if let Some(host) = cleartext_host(url) {
            warnings.push(format!(
                "{field} sends payloads and their signatures unencrypted to {host}, which is \
                 not this machine; use https://"
            ));
        }
    }
    warnings
}

/// What a send to each webhook resolves first, by the same code: its secrets (with those a
/// rotation keeps), signer, retry policy and TLS files. Its event names were checked on load.
fn webhook_problems(context: &Context) -> Vec<Problem> {
    let settings = &context.definitions.settings;
    let mut problems: Vec<Problem> = Vec::new();
    for webhook in &context.definitions.webhooks {
        if let Err(error) = webhook.endpoint.resolve(settings, context.clock.now()) {
            let problem = Problem {
                file: webhook.path.clone(),
                message: error.to_string(),
            };
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    problems
}

/// The host of an `http://` url that leaves this machine.
fn cleartext_host(url: &str) -> Option<String> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| host.to_string())
}

/// Whether users other than the owner may read `path` (group or world read bit).
fn readable_by_others(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|metadata| metadata.permissions().mode() & 0o044 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleartext_is_only_warned_about_off_this_machine() {
        let cases = [
            ("http://crm.example.com/hook", Some("crm.example.com")),
            ("http://10.0.0.5:8080/hook", Some("10.0.0.5")),
            ("http://127.0.0.1:8080/hook", None),
            ("http://127.1.2.3/hook", None),
            ("http://localhost:8080/hook", None),
            ("http://[::1]:8080/hook", None),
            ("https://crm.example.com/hook", None),
        ];
        for (url, expected) in cases {
            assert_eq!(cleartext_host(url).as_deref(), expected, "{url}");
        }
    }
}
