//! QLM's form of a schedule: `every N minutes|hours|days`, with `at` (the time of day of a
//! day-based schedule) and `start` (its anchor), checked against each other.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::{Kind, ScheduleError, Unit};
use crate::schedule::clock::parse_wall_clock;

/// The unit words of `every`, compared without regard to case.
const UNITS: [(&str, Unit); 12] = [
    ("minute", Unit::Minute),
    ("minutes", Unit::Minute),
    ("min", Unit::Minute),
    ("mins", Unit::Minute),
    ("hour", Unit::Hour),
    ("hours", Unit::Hour),
    ("h", Unit::Hour),
    ("hr", Unit::Hour),
    ("hrs", Unit::Hour),
    ("day", Unit::Day),
    ("days", Unit::Day),
    ("d", Unit::Day),
];

/// `every N minutes|hours|days`, with its `at` and `start`; `text` starts with the word
/// `every`.
pub(super) fn parse(
    text: &str,
    at: Option<&str>,
    start: Option<&str>,
) -> Result<Kind, ScheduleError> {
    let (count, unit) = every_interval(text).ok_or_else(|| ScheduleError::Unknown(text.into()))?;
    if count == 0 {
        return Err(ScheduleError::ZeroInterval(text.into()));
    }
    // As a duration may be: a longer period runs once in a lifetime, or never.
    let most = crate::definitions::settings::MAX_DURATION.as_secs();
    if i64::from(count) * unit.seconds() > i64::try_from(most).unwrap_or(i64::MAX) {
        return Err(ScheduleError::TooLong(text.into()));
    }
    if unit == Unit::Day {
        let (time, first) = day_time(at, start)?;
        return Ok(Kind::Days { count, time, first });
    }
    if at.is_some() {
        return Err(ScheduleError::AtNeedsDays(text.into()));
    }
    let start = start.map(parse_start).transpose()?.map(|(start, _)| start);
    Ok(Kind::Elapsed { count, unit, start })
}

/// `every N unit`, `every Nunit` or `every unit` (N = 1); `text` starts with the word `every`.
fn every_interval(text: &str) -> Option<(u32, Unit)> {
    let rest = text.get("every".len()..)?.trim();
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let count = match &rest[..digits] {
        "" => 1,
        number => number.parse().ok()?,
    };
    let word = rest[digits..].trim();
    let (_, unit) = UNITS
        .iter()
        .find(|(name, _)| word.eq_ignore_ascii_case(name))?;
    Some((count, *unit))
}

/// The time of day and first day of `every N days`: the time from `at`, else from `start`,
/// else midnight; days count from `start`'s date, else from 1970-01-01.
fn day_time(
    at: Option<&str>,
    start: Option<&str>,
) -> Result<(NaiveTime, Option<NaiveDate>), ScheduleError> {
    let at_time = at.map(parse_at).transpose()?;
    let parsed = start.map(parse_start).transpose()?;
    let start_time = parsed
        .filter(|(_, timed)| *timed)
        .map(|(start, _)| start.time());
    if let (Some(at_time), Some(start_time)) = (at_time, start_time)
        && at_time != start_time
    {
        return Err(ScheduleError::AtConflictsWithStart {
            at: at.unwrap_or_default().into(),
            start: start.unwrap_or_default().into(),
        });
    }
    let time = at_time.or(start_time).unwrap_or(NaiveTime::MIN);
    Ok((time, parsed.map(|(start, _)| start.date())))
}

fn parse_at(text: &str) -> Result<NaiveTime, ScheduleError> {
    let trimmed = text.trim();
    NaiveTime::parse_from_str(trimmed, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(trimmed, "%H:%M:%S"))
        .map_err(|_| ScheduleError::BadAt(text.into()))
}

/// A `start` and whether it gave a time of day (a bare date means midnight).
fn parse_start(text: &str) -> Result<(NaiveDateTime, bool), ScheduleError> {
    let trimmed = text.trim();
    let start = parse_wall_clock(trimmed).ok_or_else(|| ScheduleError::BadStart(text.into()))?;
    let timed = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").is_err();
    Ok((start, timed))
}
