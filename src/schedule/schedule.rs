//! When a task runs: QLM-style `every N minutes|hours|days` and standard 5-field crontab lines,
//! evaluated in a time zone with Vixie cron's daylight-saving rules.
//!
//! Daylight saving, form by form:
//! - `every N minutes|hours` steps absolute time, so a clock change never adds or drops a slot.
//!   Without `start` the steps count from midnight in the zone's standard time (so `every 30
//!   minutes` fires at :00 and :30, and `every 6 hours` at 00:00, 06:00, ... standard time, which
//!   is 01:00, 07:00, ... while daylight saving time is on). The steps run on across midnight:
//!   an N that does not divide a day lands at other times each day (`check` warns).
//! - `every N days` and crontab lines with a fixed minute and hour are wall-clock times: a time
//!   skipped by a spring-forward runs once at the first instant after the jump, and a time
//!   repeated by a fall-back runs once, at its first occurrence (cron(8)).
//! - Crontab lines whose minute or hour field starts with `*` (and `@hourly`) follow real time,
//!   as cron(8) says: skipped times do not run, repeated times run in both passes.
//!
//! The `cron` crate finds the wall-clock minutes a crontab line matches, on a clock without
//! changes (see `crontab.rs`). Users never see it: on its own it reads 5-field lines as a
//! different 6-field layout, numbers weekdays from 1 = Sunday, ANDs day-of-month with
//! day-of-week, drops times in a spring-forward gap and runs fixed times twice in a fall-back;
//! this module does the parsing, the weekday numbering, the OR and the DST rules.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::{GapInfo, OffsetComponents, Tz};

use super::clock::resolve_local;

mod crontab;
mod every;

use crontab::Crontab;

/// A schedule as accepted by [`Schedule::parse`]; opaque so that no parser crate leaks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(Kind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `every N minutes|hours`: steps of absolute time from `start` (or standard midnight).
    Elapsed {
        count: u32,
        unit: Unit,
        start: Option<NaiveDateTime>,
    },
    /// `every N days`: calendar days, counted from `first` (1970-01-01 if none), at `time`.
    Days {
        count: u32,
        time: NaiveTime,
        first: Option<NaiveDate>,
    },
    Cron(Box<Crontab>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Minute,
    Hour,
    Day,
}

/// Why a schedule, `at` or `start` was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "`{0}` is not a schedule: write `every N minutes|hours|days`, a 5-field crontab line \
         such as `0 8 * * MON-FRI`, or @daily/@hourly/@weekly/@monthly"
    )]
    Unknown(String),
    #[error("`{0}` never comes round: the number of minutes, hours or days must be at least 1")]
    ZeroInterval(String),
    #[error("`{0}` is out of range: a period may be at most 100 years (36,525 days)")]
    TooLong(String),
    #[error(
        "`{line}` has {count} fields: keyhook takes standard 5-field crontab lines (minute hour \
         day-of-month month day-of-week, no seconds or years), such as `0 8 * * MON-FRI`"
    )]
    FieldCount { line: String, count: usize },
    #[error("`{line}`: {field} `{value}` {problem}")]
    Field {
        line: String,
        field: &'static str,
        value: String,
        problem: String,
    },
    #[error("`{0}` never runs: no month it allows has that day")]
    NeverRuns(String),
    #[error(
        "`@reboot` is not supported: keyhook runs tasks on a schedule, not at boot; \
         use @hourly, @daily, @weekly, @monthly or @yearly"
    )]
    Reboot,
    #[error(
        "`{0}` is not a schedule: the @ forms are @hourly, @daily (or @midnight), @weekly, \
         @monthly and @yearly (or @annually)"
    )]
    UnknownShorthand(String),
    #[error("`at = \"{0}\"` is not a time of day: write HH:MM such as 08:00")]
    BadAt(String),
    #[error(
        "`at` only sets the time of day of `every N days` schedules; `{0}` runs at fixed \
         intervals (use `start` to anchor it)"
    )]
    AtNeedsDays(String),
    #[error("`at` does not apply to the crontab line `{0}`: the line itself sets the time")]
    AtInCrontab(String),
    #[error(
        "`start = \"{0}\"` is not a start time: write YYYY-MM-DDTHH:MM[:SS] such as 2027-01-01T08:00"
    )]
    BadStart(String),
    #[error("`start` does not apply to the crontab line `{0}`: it anchors `every` schedules")]
    StartInCrontab(String),
    #[error(
        "`at = \"{at}\"` disagrees with the time in `start = \"{start}\"`: give the time of day \
         in only one of them"
    )]
    AtConflictsWithStart { at: String, start: String },
}

impl ScheduleError {
    /// The task file's key the error is about: `at`, `start`, or `schedule` itself.
    pub fn field(&self) -> &'static str {
        match self {
            ScheduleError::BadAt(_)
            | ScheduleError::AtNeedsDays(_)
            | ScheduleError::AtInCrontab(_)
            | ScheduleError::AtConflictsWithStart { .. } => "at",
            ScheduleError::BadStart(_) | ScheduleError::StartInCrontab(_) => "start",
            _ => "schedule",
        }
    }
}

impl Schedule {
    /// Parses a task's `schedule`, with its optional `at` ("08:00") and `start`
    /// ("2027-01-01T08:00"). For `every N days`, `start` gives the first day and, unless it is
    /// a bare date, the time of day; `at` may repeat that time but not contradict it.
    pub fn parse(
        schedule: &str,
        at: Option<&str>,
        start: Option<&str>,
    ) -> Result<Schedule, ScheduleError> {
        let text = schedule.trim();
        let is_every = text
            .split_whitespace()
            .next()
            .is_some_and(|word| word.eq_ignore_ascii_case("every"));
        if is_every {
            return every::parse(text, at, start).map(Schedule);
        }
        let crontab = Crontab::parse(text)?;
        if at.is_some() {
            return Err(ScheduleError::AtInCrontab(text.into()));
        }
        if start.is_some() {
            return Err(ScheduleError::StartInCrontab(text.into()));
        }
        Ok(Schedule(Kind::Cron(Box::new(crontab))))
    }

    /// The most recent slot at or before `now`, in `zone` (None if there is none, e.g. before
    /// `start`, or none within the last 29 years).
    pub fn latest_at_or_before(&self, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        match &self.0 {
            Kind::Elapsed { count, unit, start } => {
                let (anchor, step) = elapsed_grid(*count, *unit, *start, now, zone)?;
                let since = now.timestamp().checked_sub(anchor)?;
                (since >= 0)
                    .then(|| anchor + since.div_euclid(step) * step)
                    .and_then(|at| DateTime::from_timestamp(at, 0))
            }
            Kind::Days { count, time, first } => {
                latest_day(*count, *time, first_day(*first), now, zone)
            }
            Kind::Cron(crontab) => crontab.latest_at_or_before(now, zone),
        }
    }

    /// The first slot strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        match &self.0 {
            Kind::Elapsed { count, unit, start } => {
                let (anchor, step) = elapsed_grid(*count, *unit, *start, after, zone)?;
                let since = after.timestamp().checked_sub(anchor)?;
                let steps = if since < 0 {
                    0
                } else {
                    since.div_euclid(step) + 1
                };
                DateTime::from_timestamp(anchor.checked_add(steps.checked_mul(step)?)?, 0)
            }
            Kind::Days { count, time, first } => {
                next_day(*count, *time, first_day(*first), after, zone)
            }
            Kind::Cron(crontab) => crontab.next_after(after, zone),
        }
    }

    /// Whether its slots land at other times each day: `every N minutes|hours` without `start`,
    /// N not dividing a day.
    pub fn moves_from_day_to_day(&self) -> bool {
        match &self.0 {
            Kind::Elapsed { count, unit, start } => {
                let step = unit.seconds() * i64::from(*count);
                let day = Unit::Day.seconds();
                start.is_none() && day % step != 0 && step % day != 0
            }
            _ => false,
        }
    }

    /// The nominal period: N units for `every`; for a crontab line, the shortest gap between
    /// consecutive slots. `run-due` uses it as the default catch-up window.
    pub fn period(&self) -> Duration {
        match &self.0 {
            Kind::Elapsed { count, unit, .. } => {
                Duration::seconds(unit.seconds() * i64::from(*count))
            }
            Kind::Days { count, .. } => Duration::days(i64::from(*count)),
            Kind::Cron(crontab) => crontab.period,
        }
    }

    /// The schedule in words, such as "every day at 08:00" or "at 08:00 on Monday through
    /// Friday"; crontab lines without a plain reading are quoted.
    pub fn describe(&self) -> String {
        match &self.0 {
            Kind::Elapsed { count, unit, start } => {
                let every = every_words(*count, unit.word());
                match start {
                    Some(start) => format!("{every}, from {}", wall_words(*start)),
                    None => every,
                }
            }
            Kind::Days { count, time, first } => {
                let every = format!("{} at {}", every_words(*count, "day"), clock_words(*time));
                match first {
                    Some(first) => format!("{every}, from {first}"),
                    None => every,
                }
            }
            Kind::Cron(crontab) => crontab.describe(),
        }
    }
}

impl Unit {
    fn seconds(self) -> i64 {
        match self {
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
        }
    }
}

/// The anchor (Unix seconds) and step (seconds) of `every N minutes|hours`.
fn elapsed_grid(
    count: u32,
    unit: Unit,
    start: Option<NaiveDateTime>,
    at: DateTime<Utc>,
    zone: Tz,
) -> Option<(i64, i64)> {
    let step = unit.seconds() * i64::from(count);
    let anchor = match start {
        Some(start) => wall_clock_instant(start, zone)?.timestamp(),
        // Midnight in today's standard time, not in 1970's offset: zones such as
        // Asia/Kathmandu have moved by a fraction of an hour since.
        None => {
            let offset = zone.offset_from_utc_datetime(&at.naive_utc());
            -offset.base_utc_offset().num_seconds()
        }
    };
    Some((anchor, step))
}

fn first_day(first: Option<NaiveDate>) -> NaiveDate {
    first.unwrap_or(DateTime::UNIX_EPOCH.date_naive())
}

/// Slot number `index` of `every N days`: `first` + index × N days, at `time`.
fn day_slot(
    count: u32,
    time: NaiveTime,
    first: NaiveDate,
    index: i64,
    zone: Tz,
) -> Option<DateTime<Utc>> {
    let days = u64::try_from(index).ok()?.checked_mul(u64::from(count))?;
    let date = first.checked_add_days(chrono::Days::new(days))?;
    wall_clock_instant(date.and_time(time), zone)
}

/// The number of the last day slot on or before the calendar day of `at` in `zone`.
fn day_index(count: u32, first: NaiveDate, at: DateTime<Utc>, zone: Tz) -> i64 {
    let today = at.with_timezone(&zone).date_naive();
    (today - first).num_days().div_euclid(i64::from(count))
}

fn latest_day(
    count: u32,
    time: NaiveTime,
    first: NaiveDate,
    now: DateTime<Utc>,
    zone: Tz,
) -> Option<DateTime<Utc>> {
    let index = day_index(count, first, now, zone);
    [index, index - 1]
        .into_iter()
        .filter_map(|index| day_slot(count, time, first, index, zone))
        .find(|slot| *slot <= now)
}

fn next_day(
    count: u32,
    time: NaiveTime,
    first: NaiveDate,
    after: DateTime<Utc>,
    zone: Tz,
) -> Option<DateTime<Utc>> {
    let index = day_index(count, first, after, zone).max(0);
    [index, index + 1]
        .into_iter()
        .filter_map(|index| day_slot(count, time, first, index, zone))
        .find(|slot| *slot > after)
}

/// A wall-clock time as an instant, by cron(8)'s rule for fixed times: the first of two
/// occurrences, and for a time skipped by a spring-forward, the first instant after the jump.
fn wall_clock_instant(local: NaiveDateTime, zone: Tz) -> Option<DateTime<Utc>> {
    match resolve_local(local, zone) {
        Some(at) => Some(at.to_utc()),
        None => GapInfo::new(&local, &zone)?.end.map(|end| end.to_utc()),
    }
}

fn every_words(count: u32, unit: &str) -> String {
    match count {
        1 => format!("every {unit}"),
        _ => format!("every {count} {unit}s"),
    }
}

fn clock_words(time: NaiveTime) -> String {
    match time.second() {
        0 => time.format("%H:%M").to_string(),
        _ => time.format("%H:%M:%S").to_string(),
    }
}

fn wall_words(local: NaiveDateTime) -> String {
    format!("{} {}", local.date(), clock_words(local.time()))
}

#[cfg(test)]
mod tests;
