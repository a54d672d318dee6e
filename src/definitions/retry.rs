//! Retry settings as written in `keyhook.toml` (global) and a task's `[webhook]` (per task).

use std::time::Duration;

use serde::Deserialize;

use super::settings::{DurationError, parse_duration};
use crate::delivery::retry::{RetryPolicy, Waits};

/// `retry_schedule`: a named preset or a list of waits.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "`retry_schedule` is a preset (\"standard\") or a list of waits such as \
                 [\"30s\", \"5m\", \"1h\"]"
)]
pub enum ScheduleField {
    Preset(String),
    Waits(Vec<String>),
}

/// The retry keys of one level (global or task), as written.
#[derive(Debug, Clone, Default)]
pub struct RetryFields {
    pub max_retries: Option<u32>,
    pub retry_interval: Option<String>,
    pub retry_schedule: Option<ScheduleField>,
    pub give_up_after: Option<String>,
    pub retry_4xx: Option<bool>,
}

/// Why the retry keys of one level were rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetryError {
    #[error("set `retry_interval` or `retry_schedule`, not both")]
    IntervalAndSchedule,
    #[error("field `retry_interval`: {0}")]
    Interval(DurationError),
    #[error(
        "field `retry_schedule`: `{0}` is not a preset (use \"standard\" or a list such as [\"30s\", \"5m\", \"1h\"])"
    )]
    UnknownPreset(String),
    #[error("field `retry_schedule`: the list is empty")]
    EmptySchedule,
    #[error("field `retry_schedule`: {0}")]
    Schedule(DurationError),
    #[error("field `give_up_after`: {0}")]
    GiveUpAfter(DurationError),
}

/// The waits one level sets, if it sets any.
fn waits(fields: &RetryFields) -> Result<Option<Waits>, RetryError> {
    match (&fields.retry_interval, &fields.retry_schedule) {
        (Some(_), Some(_)) => Err(RetryError::IntervalAndSchedule),
        (Some(interval), None) => parse_duration(interval)
            .map(|wait| Some(Waits::Fixed(wait)))
            .map_err(RetryError::Interval),
        (None, Some(ScheduleField::Preset(name))) if name == "standard" => {
            Ok(Some(RetryPolicy::standard().waits))
        }
        (None, Some(ScheduleField::Preset(name))) => Err(RetryError::UnknownPreset(name.clone())),
        (None, Some(ScheduleField::Waits(list))) if list.is_empty() => {
            Err(RetryError::EmptySchedule)
        }
        (None, Some(ScheduleField::Waits(list))) => list
            .iter()
            .map(|text| parse_duration(text))
            .collect::<Result<Vec<Duration>, DurationError>>()
            .map(|waits| Some(Waits::Schedule(waits)))
            .map_err(RetryError::Schedule),
        (None, None) => Ok(None),
    }
}

/// Every problem of one file's own retry keys, where [`policy`] stops at the first.
pub fn problems(fields: &RetryFields) -> Vec<RetryError> {
    let mut found: Vec<RetryError> = waits(fields).err().into_iter().collect();
    if let Some(Err(error)) = fields.give_up_after.as_deref().map(parse_duration) {
        found.push(RetryError::GiveUpAfter(error));
    }
    found
}

/// The policy for a task: its own keys first, then the global ones, then the defaults.
pub fn policy(task: &RetryFields, global: &RetryFields) -> Result<RetryPolicy, RetryError> {
    let waits = match waits(task)? {
        Some(waits) => waits,
        None => waits(global)?.unwrap_or_else(|| RetryPolicy::standard().waits),
    };
    let default_retries = match &waits {
        Waits::Schedule(list) => list.len() as u32,
        Waits::Fixed(_) => 5,
    };
    let give_up_after = task
        .give_up_after
        .as_ref()
        .or(global.give_up_after.as_ref())
        .map(|text| parse_duration(text))
        .transpose()
        .map_err(RetryError::GiveUpAfter)?;
    Ok(RetryPolicy {
        waits,
        max_retries: task
            .max_retries
            .or(global.max_retries)
            .unwrap_or(default_retries),
        give_up_after,
        retry_4xx: task.retry_4xx.or(global.retry_4xx).unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_keys_override_global_ones_which_override_defaults() {
        let none = RetryFields::default();
        assert_eq!(policy(&none, &none).unwrap(), RetryPolicy::standard());
        let global = RetryFields {
            retry_interval: Some("10m".into()),
            give_up_after: Some("1d".into()),
            ..RetryFields::default()
        };
        let qlm = policy(&none, &global).unwrap();
        assert_eq!(qlm.waits, Waits::Fixed(Duration::from_secs(600)));
        assert_eq!(qlm.max_retries, 5);
        assert_eq!(qlm.give_up_after, Some(Duration::from_secs(86400)));
        let task = RetryFields {
            retry_schedule: Some(ScheduleField::Waits(vec!["1s".into(), "2s".into()])),
            max_retries: Some(7),
            ..RetryFields::default()
        };
        let mine = policy(&task, &global).unwrap();
        assert_eq!(
            mine.waits,
            Waits::Schedule(vec![Duration::from_secs(1), Duration::from_secs(2)])
        );
        assert_eq!(mine.max_retries, 7);
    }

    #[test]
    fn mistakes_are_named() {
        let both = RetryFields {
            retry_interval: Some("1m".into()),
            retry_schedule: Some(ScheduleField::Preset("standard".into())),
            ..RetryFields::default()
        };
        assert!(
            policy(&both, &RetryFields::default())
                .unwrap_err()
                .to_string()
                .contains("not both")
        );
        let preset = RetryFields {
            retry_schedule: Some(ScheduleField::Preset("fast".into())),
            ..RetryFields::default()
        };
        assert!(
            policy(&preset, &RetryFields::default())
                .unwrap_err()
                .to_string()
                .contains("`fast` is not a preset")
        );
    }
}
