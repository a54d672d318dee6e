//! One field of a crontab line: its range and names, parsed into a bit set as Vixie cron
//! reads it; and the `@daily`-style shorthands.

/// One crontab field: its name, range, optional names (for `low`, `low + 1`, ...) and what to
/// tell a user who gets it wrong.
pub(super) struct Field {
    pub(super) name: &'static str,
    low: u32,
    high: u32,
    names: &'static [&'static str],
    takes: &'static str,
}

pub(super) const FIELDS: [Field; 5] = [
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

pub(super) const SHORTHANDS: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

pub(super) const ALL_HOURS: u64 = (1 << 24) - 1;
pub(super) const ALL_DAYS: u64 = ((1 << 32) - 1) & !1;
pub(super) const ALL_MONTHS: u64 = ((1 << 13) - 1) & !1;
pub(super) const ALL_WEEKDAYS: u64 = (1 << 7) - 1;
pub(super) const WEEKDAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The offending text and what is wrong with it.
pub(super) type FieldError = (String, String);

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

    pub(super) fn parse(&self, text: &str) -> Result<u64, FieldError> {
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
