//! The values a search's placeholders take: `now` and the day and month boundaries in the
//! task's zone, and `[date]`, the task's last run. Computed here only; the command layer
//! passes the facts (the clock, the zone, what the state database knows of the task).

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;

use super::macros::{self, MacroError, Template};
use crate::definitions::task::FirstRunSince;
use crate::schedule::clock;

/// The instant placeholders are computed at, and the zone their wall clock is read in.
#[derive(Debug, Clone, Copy)]
pub struct Moment {
    pub now: DateTime<Utc>,
    pub zone: Tz,
}

/// What the state database knows of a task, for `[date]`.
#[derive(Debug, Clone, Copy)]
pub struct History {
    /// When it last ran (Unix seconds).
    pub last_run: Option<i64>,
    /// When keyhook first saw it (Unix seconds).
    pub first_seen: i64,
}

/// `[date]` for a run at `moment` (Unix seconds): the last run, else the task's
/// `first_run_since`, else when the task was first seen.
pub fn last_run(history: &History, first_run_since: Option<&FirstRunSince>, moment: Moment) -> i64 {
    if let Some(last_run) = history.last_run {
        return last_run;
    }
    let since = match first_run_since {
        Some(FirstRunSince::Age(age)) => clock::before(moment.now, *age).map(|at| at.timestamp()),
        Some(FirstRunSince::Time(time)) => {
            clock::resolve_local(*time, moment.zone).map(|at| at.timestamp())
        }
        None => None,
    };
    since.unwrap_or(history.first_seen)
}

/// What placeholders are evaluated against: now and `[date]` (`last_run`, Unix seconds),
/// as wall clock in `moment.zone`.
pub fn context(moment: Moment, last_run: Option<i64>) -> macros::Context {
    let zone = moment.zone;
    let last_run = last_run
        .and_then(|unix| DateTime::from_timestamp(unix, 0))
        .map(|at| at.with_timezone(&zone).naive_local());
    macros::Context {
        now: moment.now.with_timezone(&zone).naive_local(),
        zone,
        last_run,
    }
}

/// The values of `template`'s placeholders at `moment`, with `[date]` at `last_run`.
pub fn values(
    template: &Template,
    moment: Moment,
    last_run: Option<i64>,
) -> Result<Vec<NaiveDateTime>, MacroError> {
    template.values(&context(moment, last_run))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_is_the_last_run_else_first_run_since_else_first_seen() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let moment = Moment {
            now,
            zone: chrono_tz::UTC,
        };
        let seen = History {
            last_run: None,
            first_seen: 5,
        };
        let ran = History {
            last_run: Some(7),
            ..seen
        };
        let age = FirstRunSince::Age(std::time::Duration::from_secs(100));
        let time = FirstRunSince::Time(DateTime::from_timestamp(60, 0).unwrap().naive_utc());
        let cases = [
            (ran, Some(&age), 7),
            (seen, Some(&age), 999_900),
            (seen, Some(&time), 60),
            (seen, None, 5),
        ];
        for (history, since, expected) in cases {
            assert_eq!(last_run(&history, since, moment), expected, "{since:?}");
        }
    }
}
