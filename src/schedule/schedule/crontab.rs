//! Standard 5-field crontab lines: each field parsed into a bit set as Vixie cron reads it, the
//! matching wall-clock minutes found by the `cron` crate, and cron(8)'s daylight-saving rules
//! applied on top (see the parent module).

mod field;
mod wall_clock;
mod words;

use field::{ALL_WEEKDAYS, FIELDS, SHORTHANDS};
#[cfg(test)]
pub(super) use wall_clock::MINUTE;
use wall_clock::{
    ceil_minute, first_change, floor_minute, instant, local_at, offset_at, plus_minute,
};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::{ScheduleError, wall_clock_instant};

/// How far a crontab search looks, back or ahead. Long enough for the rarest line that runs at
/// all (a Friday the 1st of January recurs up to 11 years apart; a 29th of February, 8).
const HORIZON: Duration = Duration::days(366 * 29);

/// Vixie cron applies its adjustments to clock changes of less than three hours.
const LARGEST_FALL_BACK: Duration = Duration::hours(3);

/// A 5-field crontab line, each field a bit set (bit n: value n allowed), read as Vixie cron
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Crontab {
    line: String,
    pub(super) minutes: u64,
    pub(super) hours: u64,
    days: u64,
    pub(super) months: u64,
    /// 0 = Sunday; a 7 in the line is folded into 0.
    weekdays: u64,
    /// crontab(5): when either day field starts with `*`, a day must match both (so the other
    /// alone decides); when both are restricted, matching either is enough.
    days_and: bool,
    /// cron(8): a `*` starting the minute or hour field makes the job follow real time across
    /// clock changes instead of being adjusted.
    pub(super) real_time: bool,
    pub(super) period: Duration,
    /// The `cron` crate's schedules that find matching wall-clock minutes: one when the day
    /// fields are ANDed, two (day of month alone, day of week alone) when they are ORed.
    engine: Vec<cron::Schedule>,
}

/// How many clock changes a search may step over before giving up.
const MAX_CHANGES: usize = 8;

impl Crontab {
    pub(super) fn parse(text: &str) -> Result<Crontab, ScheduleError> {
        let expanded = expand_shorthand(text)?;
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if !looks_like_crontab(expanded) {
            return Err(ScheduleError::Unknown(text.into()));
        }
        if fields.len() != FIELDS.len() {
            let count = fields.len();
            return Err(ScheduleError::FieldCount {
                line: text.into(),
                count,
            });
        }
        let mut masks = [0; 5];
        for ((mask, field), spec) in masks.iter_mut().zip(&fields).zip(&FIELDS) {
            *mask = spec
                .parse(field)
                .map_err(|(value, problem)| ScheduleError::Field {
                    line: text.into(),
                    field: spec.name,
                    value: if value.is_empty() {
                        (*field).into()
                    } else {
                        value
                    },
                    problem,
                })?;
        }
        let [minutes, hours, days, months, weekdays] = masks;
        let mut crontab = Crontab {
            line: text.into(),
            minutes,
            hours,
            days,
            months,
            // Vixie cron reads both 0 and 7 as Sunday.
            weekdays: (weekdays | weekdays >> 7) & ALL_WEEKDAYS,
            days_and: fields[2].starts_with('*') || fields[4].starts_with('*'),
            real_time: fields[0].starts_with('*') || fields[1].starts_with('*'),
            period: Duration::zero(),
            engine: Vec::new(),
        };
        crontab.engine = crontab
            .engine_schedules()
            .map_err(|detail| ScheduleError::Field {
                line: text.into(),
                field: "line",
                value: text.into(),
                problem: detail.to_string(),
            })?;
        crontab.period = crontab
            .shortest_gap()
            .ok_or_else(|| ScheduleError::NeverRuns(text.into()))?;
        Ok(crontab)
    }

    /// The shortest gap between the first 64 slots after a fixed reference, read on a clock
    /// without clock changes.
    fn shortest_gap(&self) -> Option<Duration> {
        let reference = NaiveDate::from_ymd_opt(2001, 1, 1)?.and_time(NaiveTime::MIN);
        let mut at = self.next_local(reference, reference.checked_add_signed(HORIZON)?)?;
        let mut shortest = HORIZON;
        for _ in 0..64 {
            let Some(next) = self.next_local(plus_minute(at)?, at.checked_add_signed(HORIZON)?)
            else {
                break;
            };
            shortest = shortest.min(next - at);
            at = next;
        }
        Some(shortest)
    }

    pub(super) fn latest_at_or_before(
        &self,
        now: DateTime<Utc>,
        zone: Tz,
    ) -> Option<DateTime<Utc>> {
        match self.real_time {
            true => self.latest_real_time(now, zone),
            false => self.latest_fixed(now, zone),
        }
    }

    pub(super) fn next_after(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        match self.real_time {
            true => self.next_real_time(after, zone),
            false => self.next_fixed(after, zone),
        }
    }

    /// Fixed times map to instants monotonically (see [`wall_clock_instant`]), so the latest
    /// slot is the latest matching wall-clock time whose instant is not after `now`.
    fn latest_fixed(&self, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&zone).naive_local();
        let mut best = self.prev_local(local, local.checked_sub_signed(HORIZON)?)?;
        // In a fall-back's second pass, times just ahead on the clock already ran in the first.
        let ahead = local.checked_add_signed(LARGEST_FALL_BACK)?;
        let mut from = plus_minute(floor_minute(local)?)?;
        while let Some(later) = self.next_local(from, ahead)
            && wall_clock_instant(later, zone).is_some_and(|at| at <= now)
        {
            best = later;
            from = plus_minute(later)?;
        }
        wall_clock_instant(best, zone)
    }

    fn next_fixed(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&zone).naive_local();
        let until = local.checked_add_signed(HORIZON)?;
        let mut from = plus_minute(floor_minute(local)?)?;
        loop {
            let found = self.next_local(from, until)?;
            let at = wall_clock_instant(found, zone)?;
            if at > after {
                return Some(at);
            }
            from = plus_minute(found)?;
        }
    }

    /// Searches one stretch of constant UTC offset at a time: a wall-clock match read with
    /// this stretch's offset is a slot only if it lands inside the stretch.
    fn latest_real_time(&self, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let mut to = now;
        for _ in 0..MAX_CHANGES {
            let offset = offset_at(to, zone);
            let local = local_at(to, offset)?;
            let found = self.prev_local(local, local.checked_sub_signed(HORIZON)?)?;
            let at = instant(found, offset)?;
            if offset_at(at, zone) == offset {
                return Some(at);
            }
            to = first_change(at, to, zone)? - Duration::seconds(1);
        }
        None
    }

    fn next_real_time(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let mut from = after;
        let mut offset = offset_at(after, zone);
        let mut local = plus_minute(floor_minute(local_at(after, offset)?)?)?;
        for _ in 0..MAX_CHANGES {
            let found = self.next_local(local, local.checked_add_signed(HORIZON)?)?;
            let at = instant(found, offset)?;
            if offset_at(at, zone) == offset {
                return Some(at);
            }
            from = first_change(from, at, zone)?;
            offset = offset_at(from, zone);
            local = ceil_minute(local_at(from, offset)?)?;
        }
        None
    }

    /// The `cron` crate's form of this line: six fields (seconds first), weekdays numbered
    /// from 1 = Sunday, and each field an explicit list, so its parser sees nothing it reads
    /// differently from cron(8). The crate ANDs the day fields, so an OR is two schedules.
    fn engine_schedules(&self) -> Result<Vec<cron::Schedule>, cron::error::Error> {
        let list = |mask: u64, shift: u32| -> String {
            (0..64)
                .filter(|bit| mask & (1 << bit) != 0)
                .map(|bit| (bit + shift).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let (minutes, hours, months) = (
            list(self.minutes, 0),
            list(self.hours, 0),
            list(self.months, 0),
        );
        let (days, weekdays) = (list(self.days, 0), list(self.weekdays, 1));
        let line =
            |days: &str, weekdays: &str| format!("0 {minutes} {hours} {days} {months} {weekdays}");
        let lines = match self.days_and {
            true => vec![line(&days, &weekdays)],
            false => vec![line(&days, "*"), line("*", &weekdays)],
        };
        lines
            .iter()
            .map(|line| line.parse::<cron::Schedule>())
            .collect()
    }

    /// The first matching wall-clock minute in `[from, until]`. Wall-clock time is handed to
    /// the crate as UTC, a zone without clock changes: the DST rules are this module's.
    fn next_local(&self, from: NaiveDateTime, until: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = Utc.from_utc_datetime(&(ceil_minute(from)? - Duration::seconds(1)));
        self.engine
            .iter()
            .filter_map(|schedule| schedule.after(&start).next())
            .map(|at| at.naive_utc())
            .min()
            .filter(|found| *found <= until)
    }

    /// The last matching wall-clock minute in `[since, to]`.
    fn prev_local(&self, to: NaiveDateTime, since: NaiveDateTime) -> Option<NaiveDateTime> {
        // Iterating backwards leaves out the starting instant itself, so start just past `to`.
        let start = Utc.from_utc_datetime(&(floor_minute(to)? + Duration::seconds(1)));
        self.engine
            .iter()
            .filter_map(|schedule| schedule.after(&start).next_back())
            .map(|at| at.naive_utc())
            .max()
            .filter(|found| *found >= since)
    }

    /// The day rule, written out for the tests' minute-by-minute model of cron(8).
    #[cfg(test)]
    pub(super) fn day_matches(&self, date: NaiveDate) -> bool {
        use chrono::Datelike;
        let day = has(self.days, date.day());
        let weekday = has(self.weekdays, date.weekday().num_days_from_sunday());
        match self.days_and {
            true => day && weekday,
            false => day || weekday,
        }
    }
}

fn expand_shorthand(text: &str) -> Result<&str, ScheduleError> {
    if !text.starts_with('@') {
        return Ok(text);
    }
    if text.eq_ignore_ascii_case("@reboot") {
        return Err(ScheduleError::Reboot);
    }
    SHORTHANDS
        .iter()
        .find(|(name, _)| text.eq_ignore_ascii_case(name))
        .map(|(_, line)| *line)
        .ok_or_else(|| ScheduleError::UnknownShorthand(text.into()))
}

/// Whether a line is meant as crontab (so a wrong field count deserves its own message).
fn looks_like_crontab(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_digit()) || text.contains('*')
}

pub(super) fn has(mask: u64, value: u32) -> bool {
    mask >> value & 1 == 1
}
