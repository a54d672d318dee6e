//! Global settings: the optional `keyhook.toml` beside `searches/` and `tasks/`.

use std::path::Path;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use super::qlm_events::QlmEvents;
use super::retry::{self, RetryFields, ScheduleField};
use super::tls::TlsFiles;
use super::{Problem, read_toml_partly};
use crate::schedule::zone;

/// The file the settings are read from, in the configuration folder.
pub const FILE: &str = "keyhook.toml";

/// The TOML form of the settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    /// IANA zone that "today" and schedules are read in; default the machine's zone.
    timezone: Option<String>,
    /// How long a search may run before it is stopped, e.g. "5s".
    query_timeout: Option<String>,
    /// QLM's `webHooksEnabled`: false evaluates and logs runs but sends nothing.
    webhooks_enabled: Option<bool>,
    /// QLM's `webHookMaxRetries`: retries after the first attempt.
    max_retries: Option<u32>,
    /// QLM's `webHookRetryInterval`: a fixed wait between attempts, e.g. "10m".
    retry_interval: Option<String>,
    /// "standard" (5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 24h) or a list of waits.
    retry_schedule: Option<ScheduleField>,
    /// A delivery older than this is not retried again, e.g. "3d".
    give_up_after: Option<String>,
    /// Retry 4xx answers other than 408 and 429 too.
    retry_4xx: Option<bool>,
    /// PEM file of private CA certificates trusted beside the system's, for every task that
    /// sets none (relative to this file).
    ca_file: Option<String>,
    /// QLM's event webhooks: one `;`-separated URL string per QLM event name, and QLM's
    /// `webHookMaxRetries`, `webHookRetryInterval`, `webHookSecretKey`, `webHooksEnabled`.
    events: Option<QlmEvents>,
}

/// Validated global settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None`: the machine's local zone.
    pub timezone: Option<Tz>,
    pub query_timeout: Duration,
    pub webhooks_enabled: bool,
    /// The retry keys, applied under each task's own.
    pub retry: RetryFields,
    /// `ca_file`, for tasks that set none.
    pub tls: TlsFiles,
    /// The `[events]` table, turned into webhooks by [`super::Definitions::load`].
    pub events: Option<QlmEvents>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timezone: None,
            query_timeout: Duration::from_secs(5),
            webhooks_enabled: true,
            retry: RetryFields::default(),
            tls: TlsFiles::default(),
            events: None,
        }
    }
}

impl Settings {
    /// Reads `dir/keyhook.toml`; a missing file means the defaults. Every field's problem is
    /// said, not only the first.
    pub fn load(dir: &Path) -> Result<Settings, Vec<Problem>> {
        let path = dir.join(FILE);
        let problem = |message: String| Problem {
            file: path.clone(),
            message,
        };
        if !present(&path).map_err(|why| vec![problem(why)])? {
            return Ok(Settings::default());
        }
        let (file, mut problems): (SettingsFile, _) = read_toml_partly(&path)?;
        let defaults = Settings::default();
        let mut check = |result: Result<(), String>| {
            if let Err(message) = result {
                problems.push(problem(message));
            }
        };
        let retry = RetryFields {
            max_retries: file.max_retries,
            retry_interval: file.retry_interval,
            retry_schedule: file.retry_schedule,
            give_up_after: file.give_up_after,
            retry_4xx: file.retry_4xx,
        };
        // Checked now, so a mistake is reported against this file rather than every task.
        check(
            retry::policy(&RetryFields::default(), &retry)
                .map(drop)
                .map_err(|error| error.to_string()),
        );
        let tls = TlsFiles::from_fields(file.ca_file, None, None, dir)
            .map_err(|error| check(Err(error.to_string())))
            .unwrap_or_default();
        let timezone = file
            .timezone
            .map(|name| zone::parse(&name))
            .transpose()
            .map_err(|error| check(Err(format!("field `timezone`: {error}"))))
            .unwrap_or_default();
        let query_timeout = file
            .query_timeout
            .map(|text| parse_duration(&text))
            .transpose()
            .map_err(|error| check(Err(format!("field `query_timeout`: {error}"))))
            .unwrap_or_default()
            .unwrap_or(defaults.query_timeout);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Settings {
            retry,
            tls,
            events: file.events,
            timezone,
            query_timeout,
            webhooks_enabled: file.webhooks_enabled.unwrap_or(defaults.webhooks_enabled),
        })
    }

    /// The zone "today" is read in.
    pub fn zone(&self) -> Tz {
        self.timezone.unwrap_or_else(zone::local)
    }
}

/// Whether the settings file is there: absent means the defaults, but a link to nothing, or
/// a file that cannot be looked at, is not known to be absent (running with the defaults
/// could send what it says not to).
fn present(path: &Path) -> Result<bool, String> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            crate::file_access::dangling_link(path).map_or(Ok(false), Err)
        }
        Err(error) => Err(format!("could not read it: {error}")),
    }
}

/// The longest duration keyhook takes from a user (flags, TOML, environment): a hundred years
/// (of 365.25 days) is beyond any sensible wait or age, and small enough that adding it to or
/// taking it from any time keyhook handles cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// Why a duration was rejected; each names the text as written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DurationError {
    #[error("`{text}` is not a duration ({reason}); write e.g. 30s, 5m, 2h")]
    NotADuration {
        text: String,
        reason: humantime::DurationError,
    },
    #[error("`{0}` is zero; it must be longer than that")]
    Zero(String),
    #[error("`{0}` is out of range: a duration may be at most 100 years")]
    TooLong(String),
}

/// Parses a positive duration such as `30s`, `5m`, `2h 30m`, `1d`, at most [`MAX_DURATION`].
/// Out of range is an error, never a wrap: `300000000000y` must not become a negative age.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let duration =
        humantime::parse_duration(text.trim()).map_err(|reason| DurationError::NotADuration {
            text: text.to_string(),
            reason,
        })?;
    if duration.is_zero() {
        return Err(DurationError::Zero(text.to_string()));
    }
    if duration > MAX_DURATION {
        return Err(DurationError::TooLong(text.to_string()));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2h 30m"), Ok(Duration::from_secs(9000)));
        assert_eq!(parse_duration(" 500ms "), Ok(Duration::from_millis(500)));
        assert!(
            parse_duration("0s")
                .unwrap_err()
                .to_string()
                .contains("zero")
        );
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .to_string()
                .contains("`soon`")
        );
        assert_eq!(parse_duration("100y"), Ok(MAX_DURATION));
        for huge in [
            "101y",
            "300000000000y",
            "9223372036854775808s",
            "99999999999999999999d",
        ] {
            let error = parse_duration(huge).unwrap_err().to_string();
            assert!(error.contains(&format!("`{huge}`")), "{error}");
        }
    }

    #[test]
    fn settings_file_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Settings::load(dir.path()).unwrap().webhooks_enabled);
        std::fs::write(dir.path().join(FILE), "timezone = \"Mars/Olympus\"\n").unwrap();
        let problem = &Settings::load(dir.path()).unwrap_err()[0];
        assert!(
            problem
                .to_string()
                .contains("keyhook.toml: field `timezone`"),
            "{problem}"
        );
        std::fs::write(dir.path().join(FILE), "timezon = \"UTC\"\n").unwrap();
        let problem = &Settings::load(dir.path()).unwrap_err()[0];
        assert!(
            problem.message.contains("unknown field `timezon`"),
            "{problem}"
        );
        std::fs::write(
            dir.path().join(FILE),
            "timezone = \"Europe/Berln\"\nquery_timeout = \"0s\"\nretry_interval = \"0s\"\n",
        )
        .unwrap();
        let problems: Vec<String> = Settings::load(dir.path())
            .unwrap_err()
            .iter()
            .map(|problem| problem.message.clone())
            .collect();
        assert_eq!(problems.len(), 3, "every field's: {problems:?}");
        assert!(problems[0].contains("retry_interval"), "{problems:?}");
        assert!(problems[1].contains("field `timezone`"), "{problems:?}");
        assert!(
            problems[2].contains("field `query_timeout`"),
            "{problems:?}"
        );
        std::fs::write(
            dir.path().join(FILE),
            "timezone = \"Europe/Paris\"\nquery_timeout = \"2s\"\nwebhooks_enabled = false\n",
        )
        .unwrap();
        let settings = Settings::load(dir.path()).unwrap();
        assert_eq!(settings.zone(), chrono_tz::Europe::Paris);
        assert_eq!(settings.query_timeout, Duration::from_secs(2));
        assert!(!settings.webhooks_enabled);
    }
}
