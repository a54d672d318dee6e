//! A crontab line in plain words for `next` and `list`: "every day at 08:00",
//! "at 09:00 on Monday through Friday"; the cron line itself for anything else.

use super::field::{ALL_DAYS, ALL_HOURS, ALL_MONTHS, ALL_WEEKDAYS, WEEKDAY_NAMES};
use super::{Crontab, has};

impl Crontab {
    pub(in crate::schedule::schedule) fn describe(&self) -> String {
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
