//! Standard 5-field crontab lines: each field parsed into a bit set as Vixie cron reads it, the
//! matching wall-clock minutes found by the `cron` crate, and cron(8)'s daylight-saving rules
//! applied on top (see the parent module).

use chrono::{
    DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};
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

/// One crontab field: its name, range, optional names (for `low`, `low + 1`, ...) and what to
/// tell a user who gets it wrong.
struct Field {
    name: &'static str,
    low: u32,
    high: u32,
    names: &'static [&'static str],
    takes: &'static str,
}

const FIELDS: [Field; 5] = [
    Field::new("minute", 0, 59, &[], "0-59"),
    Field::new("hour", 0, 23, &[], "0-23"),
    Field::new("day of month", 1, 31, &[], "1-31"),
    Field::new("month", 1, 12, &MONTHS, "1-12 or JAN-DEC"),
    Field::new(
        "day of week",
        0,
        7,
        &WEEKDAYS,
        "0-7 (0 and 7 are Sunday) or SUN-SAT",
    ),
];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const SHORTHANDS: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

const ALL_HOURS: u64 = (1 << 24) - 1;
const ALL_DAYS: u64 = ((1 << 32) - 1) & !1;
const ALL_MONTHS: u64 = ((1 << 13) - 1) & !1;
const ALL_WEEKDAYS: u64 = (1 << 7) - 1;
const WEEKDAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// How many clock changes a search may step over before giving up.
const MAX_CHANGES: usize = 8;

/// The offending text and what is wrong with it.
type FieldError = (String, String);

impl Field {
    const fn new(
        name: &'static str,
        low: u32,
        high: u32,
        names: &'static [&'static str],
        takes: &'static str,
    ) -> Field {
        Field {
            name,
            low,
            high,
            names,
            takes,
        }
    }

    fn parse(&self, text: &str) -> Result<u64, FieldError> {
        text.split(',')
            .try_fold(0, |mask, item| Ok(mask | self.item(item)?))
    }

    /// `*`, `v`, `a-b`, each optionally `/step`; `v/step` runs from v to the field's end, as
    /// in cronie.
    fn item(&self, item: &str) -> Result<u64, FieldError> {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(self.step(item, step)?)),
            None => (item, None),
        };
        let (low, high) = match range.split_once('-') {
            _ if range == "*" => (self.low, self.high),
            Some((low, high)) => (self.value(low)?, self.value(high)?),
            None if step.is_some() => (self.value(range)?, self.high),
            None => (self.value(range)?, self.value(range)?),
        };
        if low > high {
            return Err((
                item.into(),
                "runs backwards: write ranges from low to high".into(),
            ));
        }
        let values = (low..=high).step_by(step.unwrap_or(1));
        Ok(values.fold(0, |mask, value| mask | 1 << value))
    }

    fn value(&self, text: &str) -> Result<u32, FieldError> {
        let value = match !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            true => text.parse().ok(),
            false => self.named(text),
        };
        value
            .filter(|value| (self.low..=self.high).contains(value))
            .ok_or_else(|| {
                (
                    text.into(),
                    format!(
                        "is not allowed: the {} field takes {}",
                        self.name, self.takes
                    ),
                )
            })
    }

    fn named(&self, text: &str) -> Option<u32> {
        let index = self
            .names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))?;
        Some(self.low + u32::try_from(index).ok()?)
    }

    fn step(&self, item: &str, text: &str) -> Result<usize, FieldError> {
        let step = text
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse().ok())
            .flatten();
        step.filter(|step| *step >= 1).ok_or_else(|| {
            (
                item.into(),
                "has a bad step: write a whole number of at least 1, as in */15".into(),
            )
        })
    }
}

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
                problem: detail,
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
    fn engine_schedules(&self) -> Result<Vec<cron::Schedule>, String> {
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
            .map(|line| {
                line.parse::<cron::Schedule>()
                    .map_err(|error| error.to_string())
            })
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

    pub(super) fn describe(&self) -> String {
        self.in_words()
            .unwrap_or_else(|| format!("cron `{}`", self.line))
    }

    /// Plain words for the common shapes: one minute, one or every hour, simple days.
    fn in_words(&self) -> Option<String> {
        let minute = single(self.minutes)?;
        if self.hours == ALL_HOURS && self.every_day() {
            return Some(format!("every hour at :{minute:02}"));
        }
        let time = format!("{:02}:{minute:02}", single(self.hours)?);
        if self.every_day() {
            return Some(format!("every day at {time}"));
        }
        Some(format!("at {time} on {}", self.days_in_words()?))
    }

    fn every_day(&self) -> bool {
        let (all_days, all_weekdays) = (self.days == ALL_DAYS, self.weekdays == ALL_WEEKDAYS);
        let days = match self.days_and {
            true => all_days && all_weekdays,
            false => all_days || all_weekdays,
        };
        days && self.months == ALL_MONTHS
    }

    fn days_in_words(&self) -> Option<String> {
        let shape = (
            self.days == ALL_DAYS,
            self.weekdays == ALL_WEEKDAYS,
            self.months == ALL_MONTHS,
        );
        match shape {
            _ if !self.days_and => None,
            (true, false, true) => Some(weekdays_in_words(self.weekdays)),
            (false, true, true) => Some(format!("day {} of every month", single(self.days)?)),
            (false, true, false) => {
                let month = chrono::Month::try_from(u8::try_from(single(self.months)?).ok()?);
                Some(format!("{} {}", month.ok()?.name(), single(self.days)?))
            }
            _ => None,
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

fn single(mask: u64) -> Option<u32> {
    (mask.count_ones() == 1).then(|| mask.trailing_zeros())
}

/// "Monday through Friday" for a run of three or more (which may wrap past Saturday), else a
/// list such as "Monday, Wednesday and Friday".
fn weekdays_in_words(mask: u64) -> String {
    let count = mask.count_ones();
    let run_start = (0..7).find(|day| has(mask, *day) && !has(mask, (day + 6) % 7));
    if count >= 3
        && let Some(first) = run_start
        && (0..count).all(|offset| has(mask, (first + offset) % 7))
    {
        let last = (first + count - 1) % 7;
        return format!(
            "{} through {}",
            WEEKDAY_NAMES[first as usize], WEEKDAY_NAMES[last as usize]
        );
    }
    let names: Vec<&str> = [1, 2, 3, 4, 5, 6, 0]
        .into_iter()
        .filter(|day| has(mask, *day))
        .map(|day| WEEKDAY_NAMES[day as usize])
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

fn offset_at(at: DateTime<Utc>, zone: Tz) -> FixedOffset {
    zone.offset_from_utc_datetime(&at.naive_utc()).fix()
}

fn local_at(at: DateTime<Utc>, offset: FixedOffset) -> Option<NaiveDateTime> {
    at.naive_utc().checked_add_offset(offset)
}

fn instant(local: NaiveDateTime, offset: FixedOffset) -> Option<DateTime<Utc>> {
    local.checked_sub_offset(offset).map(|utc| utc.and_utc())
}

/// The first instant after `low` whose UTC offset differs from `low`'s; `high`'s must differ.
fn first_change(low: DateTime<Utc>, high: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
    let offset = offset_at(low, zone);
    let (mut low, mut high) = (low.timestamp(), high.timestamp());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        let changed = DateTime::from_timestamp(middle, 0).map(|at| offset_at(at, zone) != offset);
        match changed? {
            true => high = middle,
            false => low = middle,
        }
    }
    DateTime::from_timestamp(high, 0)
}

fn floor_minute(local: NaiveDateTime) -> Option<NaiveDateTime> {
    local.with_second(0)?.with_nanosecond(0)
}

fn ceil_minute(local: NaiveDateTime) -> Option<NaiveDateTime> {
    let floor = floor_minute(local)?;
    match floor == local {
        true => Some(floor),
        false => floor.checked_add_signed(MINUTE),
    }
}

fn plus_minute(local: NaiveDateTime) -> Option<NaiveDateTime> {
    local.checked_add_signed(MINUTE)
}

pub(super) const MINUTE: Duration = Duration::minutes(1);
