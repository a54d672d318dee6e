//! A scheduled task: `tasks/<stem>.toml`, naming a search, a schedule and a webhook.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use super::retry::{RetryFields, ScheduleField};
use super::secret::SecretSource;
use super::settings::parse_duration;
use super::{Problem, read_toml, stem};
use crate::schedule::zone;

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

/// The TOML form of a task's `[webhook]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    /// false: runs are evaluated and logged, nothing is sent.
    #[serde(default = "yes")]
    enabled: bool,
    /// http:// or https:// address to POST to.
    url: String,
    /// The secret key, written in the file (prefer `secret_env` or `secret_file`).
    #[serde(default)]
    secret: Option<String>,
    /// Name of an environment variable holding the secret key.
    #[serde(default)]
    secret_env: Option<String>,
    /// Path of a file holding the secret key (relative to the task file).
    #[serde(default)]
    secret_file: Option<String>,
    /// Sent as `WebHookUserData` in every payload.
    #[serde(default)]
    user_data: String,
    /// How long one request may take, e.g. "30s".
    #[serde(default)]
    timeout: Option<String>,
    /// Retries after the first attempt; default from keyhook.toml, else the schedule's length.
    #[serde(default)]
    max_retries: Option<u32>,
    /// A fixed wait between attempts (QLM's behaviour), e.g. "10m".
    #[serde(default)]
    retry_interval: Option<String>,
    /// "standard" or a list of waits such as ["30s", "5m", "1h"].
    #[serde(default)]
    retry_schedule: Option<ScheduleField>,
    /// A delivery older than this is not retried again, e.g. "3d".
    #[serde(default)]
    give_up_after: Option<String>,
    /// Retry 4xx answers other than 408 and 429 too.
    #[serde(default)]
    retry_4xx: Option<bool>,
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
    pub schedule: String,
    pub at: Option<String>,
    pub enabled: bool,
    pub timezone: Option<Tz>,
    pub concurrency: Option<usize>,
    pub webhook: Webhook,
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
}

/// The request timeout when a task sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Task {
    /// Loads and validates one task file.
    pub fn load(path: &Path) -> Result<Task, Problem> {
        let file: TaskFile = read_toml(path)?;
        let problem = |message: String| Problem {
            file: path.to_path_buf(),
            message,
        };
        for (field, value) in [("name", &file.name), ("search", &file.search)] {
            if value.trim().is_empty() {
                return Err(problem(format!("field `{field}` is empty")));
            }
        }
        let timezone = file
            .timezone
            .map(|name| zone::parse(&name))
            .transpose()
            .map_err(|error| problem(format!("field `timezone`: {error}")))?;
        if file.concurrency == Some(0) {
            return Err(problem("field `concurrency` must be at least 1".into()));
        }
        let webhook = Webhook::from_file(file.webhook, path)
            .map_err(|error| problem(format!("[webhook] {error}")))?;
        Ok(Task {
            stem: stem(path),
            path: path.to_path_buf(),
            name: file.name,
            search: file.search,
            schedule: file.schedule,
            at: file.at,
            enabled: file.enabled,
            timezone,
            concurrency: file.concurrency,
            webhook,
        })
    }
}

impl Webhook {
    fn from_file(file: WebhookFile, task_path: &Path) -> Result<Webhook, String> {
        check_url(&file.url).map_err(|error| format!("field `url`: {error}"))?;
        let task_dir = task_path.parent().unwrap_or(Path::new("."));
        let secret =
            SecretSource::from_fields(file.secret, file.secret_env, file.secret_file, task_dir)?;
        let timeout = match file.timeout {
            Some(text) => {
                parse_duration(&text).map_err(|error| format!("field `timeout`: {error}"))?
            }
            None => DEFAULT_TIMEOUT,
        };
        let retry = RetryFields {
            max_retries: file.max_retries,
            retry_interval: file.retry_interval,
            retry_schedule: file.retry_schedule,
            give_up_after: file.give_up_after,
            retry_4xx: file.retry_4xx,
        };
        super::retry::policy(&retry, &RetryFields::default())?;
        Ok(Webhook {
            retry,
            enabled: file.enabled,
            url: file.url,
            secret,
            user_data: file.user_data,
            timeout,
        })
    }
}

/// An absolute http:// or https:// URL with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|error| format!("`{url}` is not a URL ({error})"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("`{url}` must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Task, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("renewals.toml");
        std::fs::write(&path, text).unwrap();
        Task::load(&path).map_err(|problem| problem.message)
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

    #[test]
    fn urls() {
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("https://example.com").is_ok());
        assert!(check_url("example.com/hook").is_err());
        assert!(check_url("mailto:x@example.com").is_err());
    }
}
