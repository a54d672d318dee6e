//! A scheduled task: `tasks/<stem>.toml`, naming a search, a schedule and a webhook.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use super::endpoint::{Endpoint, EndpointError, with_endpoint_keys};
use super::retry::RetryFields;
use super::secret::SecretSource;
use super::settings::{DurationError, parse_duration};
use super::tls::TlsFiles;
use super::url::UrlError;
use super::{Fields, Problem, read_toml_partly, stem};
use crate::delivery::signature::Scheme;
use crate::schedule::schedule::Schedule;
use crate::schedule::{clock, zone};
use crate::secret::Secret;

/// The TOML form of a task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    /// Sent as `Name` in every payload.
    name: String,
    /// The search to run: its file stem or its name.
    search: String,
    /// `every 1 day`, `every 6 hours`, a crontab line, or `@daily`.
    schedule: String,
    /// Time of day for day-based `every` schedules, e.g. "08:00".
    #[serde(default)]
    at: Option<String>,
    /// QLM's "Starting on/at": anchors `every` schedules, e.g. "2027-01-01T08:00".
    #[serde(default)]
    start: Option<String>,
    /// How late a missed slot may still run, e.g. "6h"; default one period of the schedule.
    #[serde(default)]
    catch_up: Option<String>,
    /// What `[date]` is on the task's first run: a time ("2026-01-01") or an age ("30d");
    /// default the time keyhook first saw the task.
    #[serde(default)]
    first_run_since: Option<String>,
    /// A disabled task is never run by `run-due`.
    #[serde(default = "yes")]
    enabled: bool,
    /// IANA zone for this task's schedule and dates; default the global one.
    #[serde(default)]
    timezone: Option<String>,
    /// Requests in flight at once, each on its own keep-alive connection (default 1).
    #[serde(default)]
    concurrency: Option<usize>,
    /// Where and how to send.
    webhook: WebhookFile,
}

with_endpoint_keys! {
    /// The TOML form of a task's `[webhook]` table.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct WebhookFile {
        /// false: runs are evaluated and logged, nothing is sent.
        #[serde(default = "yes")]
        enabled: bool,
        /// http:// or https:// address to POST to.
        url: String,
        /// Sent as `WebHookUserData` in every payload.
        #[serde(default)]
        user_data: String,
    }
}

fn yes() -> bool {
    true
}

/// A validated task.
#[derive(Debug, Clone)]
pub struct Task {
    pub stem: String,
    pub path: PathBuf,
    pub name: String,
    pub search: String,
    /// The schedule as written, for messages.
    pub schedule_text: String,
    pub schedule: Schedule,
    pub at: Option<String>,
    pub catch_up: Option<chrono::Duration>,
    pub first_run_since: Option<FirstRunSince>,
    pub enabled: bool,
    pub timezone: Option<Tz>,
    pub concurrency: Option<usize>,
    pub webhook: Webhook,
}

/// The `[date]` of a task's first run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstRunSince {
    /// This long before the run.
    Age(Duration),
    /// This wall-clock time, in the task's zone.
    Time(chrono::NaiveDateTime),
}

/// A validated `[webhook]` table.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub enabled: bool,
    pub url: String,
    pub secret: SecretSource,
    pub user_data: String,
    pub timeout: Duration,
    /// The task's own retry keys; `Settings::retry` fills in the rest.
    pub retry: RetryFields,
    pub schemes: Vec<Scheme>,
    pub previous_secrets: Vec<Secret>,
    /// The task's own TLS files; `Settings::tls` fills in `ca_file`.
    pub tls: TlsFiles,
}

// Kept here too: commands show a task's URL through this path.
pub use super::url::{check_url, shown_url};

/// The request timeout when a task sets none.
pub use super::endpoint::DEFAULT_TIMEOUT;

impl Task {
    /// Loads and validates one task file.
    /// Loads and validates one task file; every field's problem, not only the first.
    pub fn load(path: &Path) -> Result<Task, Vec<Problem>> {
        let (file, problems): (TaskFile, _) = read_toml_partly(path)?;
        let mut fields = Fields::new(path);
        fields.problems = problems;
        for (field, value) in [("name", &file.name), ("search", &file.search)] {
            if value.trim().is_empty() {
                fields.say(format!("field `{field}` is empty"));
            }
        }
        let timezone = fields.take(
            file.timezone.as_deref().map(zone::parse).transpose(),
            |error| format!("field `timezone`: {error}"),
        );
        if let Some(concurrency) = file.concurrency {
            fields.take(check_concurrency(concurrency), |error| {
                format!("field `concurrency`: {error}")
            });
        }
        let schedule = fields.take(
            Schedule::parse(&file.schedule, file.at.as_deref(), file.start.as_deref()),
            |error| format!("field `{}`: {error}", error.field()),
        );
        let catch_up = fields.take(
            file.catch_up.as_deref().map(catch_up).transpose(),
            |error| format!("field `catch_up`: {error}"),
        );
        let first_run_since = fields.take(
            file.first_run_since.as_deref().map(first_run).transpose(),
            |error| format!("field `first_run_since`: {error}"),
        );
        let webhook = fields.take_each(Webhook::from_file(file.webhook, path), |error| {
            format!("[webhook] {error}")
        });
        let (Some(timezone), Some(schedule), Some(catch_up), Some(first_run_since), Some(webhook)) =
            (timezone, schedule, catch_up, first_run_since, webhook)
        else {
            return Err(fields.problems);
        };
        if !fields.problems.is_empty() {
            return Err(fields.problems);
        }
        Ok(Task {
            stem: stem(path),
            path: path.to_path_buf(),
            name: file.name,
            search: file.search,
            schedule_text: file.schedule,
            schedule,
            at: file.at,
            catch_up,
            first_run_since,
            enabled: file.enabled,
            timezone,
            concurrency: file.concurrency,
            webhook,
        })
    }
}

/// Why a task's `[webhook]` table was rejected.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("field `url`: {0}")]
    Url(UrlError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

impl Webhook {
    /// The table's webhook, or every field's problem (a bad `url` does not hide the rest).
    fn from_file(mut file: WebhookFile, task_path: &Path) -> Result<Webhook, Vec<WebhookError>> {
        let url = check_url(&file.url).map_err(WebhookError::Url);
        let task_dir = task_path.parent().unwrap_or(Path::new("."));
        let endpoint = match (
            url,
            Endpoint::from_keys(file.take_endpoint_keys(), task_dir),
        ) {
            (Ok(()), Ok(endpoint)) => endpoint,
            (url, endpoint) => {
                let mut problems: Vec<WebhookError> = url.err().into_iter().collect();
                let endpoint = endpoint.err().into_iter().flatten();
                problems.extend(endpoint.map(WebhookError::Endpoint));
                return Err(problems);
            }
        };
        Ok(Webhook {
            enabled: file.enabled,
            url: file.url,
            secret: endpoint.secret,
            user_data: file.user_data,
            timeout: endpoint.timeout,
            retry: endpoint.retry,
            schemes: endpoint.schemes,
            previous_secrets: endpoint.previous_secrets,
            tls: endpoint.tls,
        })
    }
}

/// Why `catch_up` or `first_run_since` was rejected.
#[derive(Debug, thiserror::Error)]
pub enum WhenError {
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error("{0}")]
    OutOfRange(chrono::OutOfRangeError),
    #[error("`{0}` is neither a time (2026-01-01T00:00) nor an age (30d)")]
    NeitherTimeNorAge(String),
}

fn catch_up(text: &str) -> Result<chrono::Duration, WhenError> {
    chrono::Duration::from_std(parse_duration(text)?).map_err(WhenError::OutOfRange)
}

fn first_run(text: &str) -> Result<FirstRunSince, WhenError> {
    if let Some(time) = clock::parse_wall_clock(text.trim()) {
        return Ok(FirstRunSince::Time(time));
    }
    if humantime::parse_duration(text.trim()).is_err() {
        return Err(WhenError::NeitherTimeNorAge(text.to_string()));
    }
    // An age, but perhaps out of range: say so rather than "neither".
    Ok(FirstRunSince::Age(parse_duration(text)?))
}

/// The most requests a task may have in flight: each is a thread and a connection.
pub const MAX_CONCURRENCY: usize = 256;

/// Why a concurrency was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConcurrencyError {
    #[error("{0} is out of range: from 1 to {MAX_CONCURRENCY} requests in flight")]
    OutOfRange(usize),
    #[error("`{0}` is not a whole number from 1 to {MAX_CONCURRENCY}")]
    NotANumber(String),
}

/// `concurrency` (TOML) and `--concurrency` (flag and `KEYHOOK_CONCURRENCY`): 1 to
/// [`MAX_CONCURRENCY`].
pub fn check_concurrency(concurrency: usize) -> Result<usize, ConcurrencyError> {
    if (1..=MAX_CONCURRENCY).contains(&concurrency) {
        Ok(concurrency)
    } else {
        Err(ConcurrencyError::OutOfRange(concurrency))
    }
}

/// [`check_concurrency`] for a flag's text.
pub fn parse_concurrency(text: &str) -> Result<usize, ConcurrencyError> {
    let concurrency = text
        .trim()
        .parse::<usize>()
        .map_err(|_| ConcurrencyError::NotANumber(text.to_string()))?;
    check_concurrency(concurrency)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Task, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("renewals.toml");
        std::fs::write(&path, text).unwrap();
        Task::load(&path).map_err(|problems| {
            let messages: Vec<String> = problems.into_iter().map(|p| p.message).collect();
            messages.join("\n")
        })
    }

    const VALID: &str = r#"
name = "Upcoming Renewals"
search = "upcoming-renewals"
schedule = "every 1 day"

[webhook]
url = "https://crm.example.com/hooks/qlm"
secret_env = "RENEWALS_SECRET"
user_data = "my user data"
timeout = "10s"
"#;

    #[test]
    fn a_valid_task_loads() {
        let task = load(VALID).unwrap();
        assert_eq!(task.stem, "renewals");
        assert!(task.enabled && task.webhook.enabled);
        assert_eq!(task.webhook.timeout, Duration::from_secs(10));
        assert_eq!(
            task.webhook.secret,
            SecretSource::Env("RENEWALS_SECRET".into())
        );
    }

    #[test]
    fn problems_name_the_field() {
        let cases = [
            (
                VALID.replace("user_data", "userdata"),
                "unknown field `userdata`",
            ),
            (VALID.replace("https://crm", "ftp://crm"), "field `url`"),
            (VALID.replace("10s", "ten"), "field `timeout`"),
            (
                VALID.replace("secret_env = \"RENEWALS_SECRET\"\n", ""),
                "no secret",
            ),
            (
                VALID.replace("name = \"Upcoming Renewals\"\n", ""),
                "missing field `name`",
            ),
            (
                VALID.replace("search = \"upcoming-renewals\"", "search = \" \""),
                "field `search` is empty",
            ),
            (
                format!("timezone = \"Nowhere/Land\"\n{VALID}"),
                "field `timezone`",
            ),
        ];
        for (text, expected) in cases {
            let error = load(&text).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }
}
